//! A small model of a cluster that carries out the engine's actions the way the API server, the
//! kubelet, the scheduler and the workload controllers would, and checks the product's invariants
//! after every step. The real thing is exercised end to end on a local control plane; this model
//! lets property tests drive thousands of random histories through the pure engine.

mod check;
mod controllers;
mod execute;
mod observe;
mod readiness;

use super::{at, image, node};
use crate::api::{NodeUpdatePlan, Phase};
use crate::engine::observed::{EvictionFeedback, NodeView, PodView};
use crate::engine::{Decision, cleanup, decide};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// How nodes on the target image misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Pods on new nodes never become Ready.
    PodsNeverReady,
    /// Pods on new nodes crash-loop.
    CrashLoop,
    /// New nodes never become Ready.
    NodeNeverReady,
    /// Pods on new nodes become Ready, then lose readiness and regain it.
    Flaps(Flap),
}

/// Readiness that comes and goes: a pod becomes Ready as usual, then `times` times it stays
/// Ready for `up` seconds and loses readiness for `down` seconds; after that it stays Ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flap {
    pub times: u32,
    pub up: i64,
    pub down: i64,
    /// Every pod on every node loses readiness at the same moments, not each pod on a new node
    /// on its own clock: a shared dependency that restarts, not the image. The first loss comes
    /// `up` seconds after [`FLAP_EPOCH`] seconds into the model's time.
    pub everywhere: bool,
}

/// Where the clock of shared flaps starts: after the model cluster settled, before any plan ran.
pub const FLAP_EPOCH: i64 = 60;

/// A ReplicaSet-like controller (or a DaemonSet) keeping pods labelled `app=<name>`.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    pub replicas: i32,
    pub daemon: bool,
    /// Pods of it that are never Ready, wherever they run: an outage that is not the plan's.
    pub outage: Outage,
}

/// An outage of a workload, independent of nodes and images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    None,
    /// This many of its pods are never Ready: the replacement of one of them is not Ready
    /// either, the replacement of a healthy pod is healthy.
    Pods(i32),
    /// None of its pods is ever Ready.
    All,
}

impl Workload {
    /// A healthy ReplicaSet of `replicas` pods.
    pub fn replica_set(name: &str, replicas: i32) -> Workload {
        Workload {
            name: name.into(),
            replicas,
            daemon: false,
            outage: Outage::None,
        }
    }

    /// Pods of it that may be not Ready without that being anyone's doing.
    fn allowed_down(&self) -> Option<i32> {
        match self.outage {
            Outage::None => Some(0),
            Outage::Pods(n) => Some(n),
            Outage::All => None,
        }
    }
}

/// A PodDisruptionBudget with `minAvailable` over `app=<app>`.
#[derive(Clone, Debug)]
pub struct Pdb {
    pub name: String,
    pub app: String,
    pub min_available: i32,
}

/// Seconds a crashed controller takes to be back and look again.
const RESTART: i64 = 5;

/// How a reconcile ends.
#[derive(Clone, Copy, Debug)]
pub enum Reconcile {
    /// Status written, every action carried out.
    Complete,
    /// Status written, then the controller died after `n` actions.
    CrashAfter(usize),
    /// The controller died before writing status: nothing happened.
    CrashBeforeStatus,
}

pub struct Sim {
    pub plan: NodeUpdatePlan,
    pub nodes: Vec<NodeView>,
    pub pods: Vec<PodView>,
    pub workloads: Vec<Workload>,
    pub pdbs: Vec<Pdb>,
    pub now: Timestamp,
    pub fault: Fault,
    /// The fault hits only this workload's pods (the new image breaks one application); node
    /// faults are not affected.
    pub fault_only: Option<String>,
    /// Pods (by uid) of the workloads' partial outages.
    outage_pods: BTreeSet<String>,
    /// When each node was created (for the model kubelet).
    created: BTreeMap<String, Timestamp>,
    next_uid: u64,
    /// Nodes a person cordoned; molt must never uncordon them.
    pub human_cordoned: BTreeSet<String>,
    /// The generation in which a halt or rollback was decided.
    stopped_in: Option<i64>,
    /// Every node name ever provisioned.
    provisioned: BTreeSet<String>,
    /// Every slot ever filled.
    provisioned_slots: BTreeSet<String>,
    pub violations: Vec<String>,
    pub feedback: Vec<EvictionFeedback>,
    pub events: Vec<(String, String)>,
    pub evictions: usize,
    /// Only pods on in-flight nodes are observed, as the controller's watches do.
    pub observe_in_flight_only: bool,
    pub deleted: bool,
    /// The provider names new nodes itself (`<slot>-<n>`), as Cluster API and Karpenter do.
    pub generated_names: bool,
    /// A second plan over the same cluster, with the generation of its stop decision; it runs
    /// through the same engine when [`Sim::reconcile_rival`] swaps it in.
    pub rival: Option<(NodeUpdatePlan, Option<i64>)>,
}

impl Sim {
    /// `n` worker nodes on v1, with a 3-replica `web` behind a minAvailable-2 PDB, a 2-replica
    /// `api` and a DaemonSet, already scheduled and Ready.
    pub fn new(plan: NodeUpdatePlan, n: usize) -> Sim {
        let start = super::t0();
        let mut sim = Sim {
            plan,
            nodes: (0..n).map(|i| node(&format!("old-{i}"))).collect(),
            pods: vec![],
            workloads: vec![
                Workload::replica_set("web", 3),
                Workload::replica_set("api", 2),
                Workload {
                    daemon: true,
                    ..Workload::replica_set("agent", 0)
                },
            ],
            pdbs: vec![Pdb {
                name: "web-pdb".into(),
                app: "web".into(),
                min_available: 2,
            }],
            now: start,
            fault: Fault::None,
            fault_only: None,
            outage_pods: BTreeSet::new(),
            created: BTreeMap::new(),
            next_uid: 0,
            human_cordoned: BTreeSet::new(),
            stopped_in: None,
            provisioned: BTreeSet::new(),
            provisioned_slots: BTreeSet::new(),
            violations: vec![],
            feedback: vec![],
            events: vec![],
            evictions: 0,
            observe_in_flight_only: true,
            deleted: false,
            generated_names: false,
            rival: None,
        };
        for n in &sim.nodes {
            sim.created.insert(n.name.clone(), start);
        }
        sim.controllers();
        // Let everything become Ready before the plan is looked at.
        sim.now = at(start, 30);
        sim.kubelet();
        sim.now = at(start, 45);
        sim.kubelet();
        assert!(sim.workloads_ready(), "the model cluster starts healthy");
        sim
    }

    pub fn target(&self) -> String {
        self.plan.spec.target.image.clone()
    }

    pub fn phase(&self) -> Phase {
        self.plan
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(Phase::Pending)
    }

    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.name == name)
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeView> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    fn is_new(&self, name: &str) -> bool {
        self.node(name)
            .is_some_and(|n| image(n) == Some(self.target().as_str()))
            || self.provisioned.contains(name)
    }

    /// Reconcile the second plan instead (the same controller, another object).
    pub fn reconcile_rival(&mut self, how: Reconcile) -> Option<Decision> {
        self.swap_rival()?;
        let d = self.reconcile(how);
        self.swap_rival();
        Some(d)
    }

    fn swap_rival(&mut self) -> Option<()> {
        let (plan, stopped) = self.rival.as_mut()?;
        std::mem::swap(&mut self.plan, plan);
        std::mem::swap(&mut self.stopped_in, stopped);
        Some(())
    }

    /// The node is claimed by a plan other than the one reconciled now, and that claim holds.
    fn held_elsewhere(&self, node: &str) -> Option<String> {
        let me = self.plan.metadata.name.clone().unwrap_or_default();
        let owner = self.node(node)?.claimed_by()?.to_string();
        let holds = self.rival.as_ref().is_some_and(|(r, _)| {
            r.metadata.name.as_deref() == Some(owner.as_str())
                && crate::engine::claims::holds(r, &self.plan)
        });
        (owner != me && holds).then_some(owner)
    }

    /// Ask the engine and carry out its decision as `how` says.
    pub fn reconcile(&mut self, how: Reconcile) -> Decision {
        let observed = self.observe();
        let decision = decide(&self.plan, &observed, self.now);
        self.check_decision(&decision);
        match how {
            Reconcile::CrashBeforeStatus => {}
            Reconcile::Complete => {
                self.persist(&decision);
                self.publish(&decision);
                for a in decision.actions.clone() {
                    self.execute(&a);
                }
            }
            Reconcile::CrashAfter(n) => {
                self.persist(&decision);
                self.publish(&decision);
                for a in decision.actions.iter().take(n).cloned().collect::<Vec<_>>() {
                    self.execute(&a);
                }
                // A restarted controller has lost whatever it only had in memory.
                self.feedback.clear();
            }
        }
        self.check_state();
        decision
    }

    fn persist(&mut self, d: &Decision) {
        let phase = d.status.phase;
        if matches!(
            phase,
            Some(Phase::Halted | Phase::RollingBack | Phase::RolledBack)
        ) && self.stopped_in.is_none()
        {
            self.stopped_in = self.plan.metadata.generation;
        }
        self.plan.status = Some(d.status.clone());
    }

    /// The Events, as the shell publishes them: after the status, before any action.
    fn publish(&mut self, d: &Decision) {
        for e in &d.events {
            self.events.push((e.reason.to_string(), e.note.clone()));
        }
    }

    /// A person edits the spec (generation moves on).
    pub fn edit_spec(&mut self, f: impl FnOnce(&mut NodeUpdatePlan)) {
        f(&mut self.plan);
        let g = self.plan.metadata.generation.unwrap_or(1) + 1;
        self.plan.metadata.generation = Some(g);
        self.stopped_in = None;
    }

    /// The plan is deleted: the finalizer runs until it is done.
    pub fn delete_plan(&mut self) {
        self.deleted = true;
        for _ in 0..3 {
            let actions = cleanup(&self.plan, &self.observe());
            for a in actions {
                self.execute(&a);
            }
        }
        let me = self.plan.metadata.name.clone().unwrap_or_default();
        for n in &self.nodes {
            if n.cordoned_by() == Some(me.as_str()) || n.claimed_by() == Some(me.as_str()) {
                self.violations.push(format!(
                    "after deletion node {} still carries molt's marks",
                    n.name
                ));
            }
        }
        self.check_state();
    }

    /// Reconcile and let time pass until the plan reaches one of `phases` (or `max` rounds pass).
    pub fn run_until(&mut self, phases: &[Phase], max: usize) -> bool {
        for _ in 0..max {
            let d = self.reconcile(Reconcile::Complete);
            if phases.contains(&self.phase()) {
                return true;
            }
            let wait = d
                .requeue_after
                .map_or(10, |r| r.as_secs().clamp(1, 60) as i64);
            self.tick(wait);
        }
        phases.contains(&self.phase())
    }

    /// As [`Sim::run_until`], but the controller wakes as its watches would: at its requeue, or
    /// earlier when a pod's readiness changes ([`Sim::next_change`]), or earlier still as by
    /// some other event (round `i` waits at most `wakes[i % wakes.len()]` seconds). It dies in
    /// its first rounds as `crashes` says (round `i` after `crashes[i]` actions, if any), and is
    /// back [`RESTART`] seconds later.
    pub fn run_until_with(
        &mut self,
        phases: &[Phase],
        max: usize,
        crashes: &[Option<usize>],
        wakes: &[i64],
    ) -> bool {
        for i in 0..max {
            let how = match crashes.get(i) {
                Some(Some(n)) => Reconcile::CrashAfter(*n),
                _ => Reconcile::Complete,
            };
            let d = self.reconcile(how);
            if phases.contains(&self.phase()) {
                return true;
            }
            let mut wait = d
                .requeue_after
                .map_or(10, |r| r.as_secs().clamp(1, 60) as i64);
            if matches!(how, Reconcile::CrashAfter(_)) {
                // The restarted controller looks at every plan as soon as its caches are filled.
                wait = wait.min(RESTART);
            }
            if let Some(t) = self.next_change() {
                wait = wait.min(t.duration_since(self.now).as_secs().max(1));
            }
            if !wakes.is_empty() {
                wait = wait.min(wakes[i % wakes.len()].max(1));
            }
            self.tick(wait);
        }
        phases.contains(&self.phase())
    }

    /// Every workload has all its pods Ready, but for those its outage keeps from it.
    pub fn workloads_ready(&self) -> bool {
        self.workloads.iter().all(|w| {
            w.allowed_down()
                .is_none_or(|down| self.healthy(&w.name) >= self.desired(w) - down)
        })
    }

    /// Ready pods of workload `app` now.
    pub fn ready_pods(&self, app: &str) -> i32 {
        self.healthy(app)
    }
}
