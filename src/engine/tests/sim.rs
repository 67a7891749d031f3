//! A small model of a cluster that carries out the engine's actions the way the API server, the
//! kubelet, the scheduler and the workload controllers would, and checks the product's invariants
//! after every step. The real thing is exercised end to end on a local control plane; this model
//! lets property tests drive thousands of random histories through the pure engine.

use super::{at, node, pod};
use crate::api::{BatchPhase, NodeUpdatePlan, Phase, WorkloadRef, keys};
use crate::engine::observed::{
    EvictionFeedback, EvictionOutcome, NodeReadiness, NodeView, Observed, PdbView, PodPhase,
    PodView, WorkloadView,
};
use crate::engine::{Action, Decision, cleanup, decide};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
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
}

/// A ReplicaSet-like controller (or a DaemonSet) keeping pods labelled `app=<name>`.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    pub replicas: i32,
    pub daemon: bool,
    /// Its pods never become Ready anywhere (an outage that predates the plan).
    pub broken: bool,
}

/// A PodDisruptionBudget with `minAvailable` over `app=<app>`.
#[derive(Clone, Debug)]
pub struct Pdb {
    pub name: String,
    pub app: String,
    pub min_available: i32,
}

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
                Workload {
                    name: "web".into(),
                    replicas: 3,
                    daemon: false,
                    broken: false,
                },
                Workload {
                    name: "api".into(),
                    replicas: 2,
                    daemon: false,
                    broken: false,
                },
                Workload {
                    name: "agent".into(),
                    replicas: 0,
                    daemon: true,
                    broken: false,
                },
            ],
            pdbs: vec![Pdb {
                name: "web-pdb".into(),
                app: "web".into(),
                min_available: 2,
            }],
            now: start,
            fault: Fault::None,
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
            .is_some_and(|n| n.image() == Some(self.target().as_str()))
            || self.provisioned.contains(name)
    }

    /// Nodes whose pods the controller watches: those the plan's status names.
    fn in_flight(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        if let Some(st) = &self.plan.status {
            for b in &st.batches {
                s.extend(b.old_nodes.iter().cloned());
                s.extend(b.new_nodes.iter().cloned());
                s.extend(b.slot_nodes.values().cloned());
            }
        }
        s
    }

    pub fn observe(&self) -> Observed {
        let observed_on: BTreeSet<String> = if self.observe_in_flight_only {
            self.in_flight()
                .into_iter()
                .filter(|n| self.node(n).is_some())
                .collect()
        } else {
            self.nodes.iter().map(|n| n.name.clone()).collect()
        };
        let pods = self
            .pods
            .iter()
            .filter(|p| observed_on.contains(&p.node))
            .cloned()
            .collect();
        let pdbs = self
            .pdbs
            .iter()
            .map(|p| {
                let healthy = self.healthy(&p.app);
                PdbView {
                    namespace: "default".into(),
                    name: p.name.clone(),
                    selector: Some(LabelSelector {
                        match_labels: Some([("app".to_string(), p.app.clone())].into()),
                        ..Default::default()
                    }),
                    disruptions_allowed: (healthy - p.min_available).max(0),
                    current_healthy: healthy,
                    desired_healthy: p.min_available,
                    up_to_date: true,
                }
            })
            .collect();
        let workloads = self
            .workloads
            .iter()
            .map(|w| WorkloadView {
                workload: self.wref(w),
                desired: self.desired(w),
                ready: self.healthy(&w.name),
            })
            .collect();
        Observed {
            nodes: self.nodes.clone(),
            pods,
            pods_observed_on: observed_on,
            pdbs,
            workloads,
            namespaces: [("default".to_string(), BTreeMap::new())].into(),
            other_plans: self
                .rival
                .iter()
                .map(|(r, _)| {
                    let name = r.metadata.name.clone().unwrap_or_default();
                    (name, crate::engine::claims::holds(r, &self.plan))
                })
                .collect(),
            eviction_feedback: self.feedback.clone(),
            slots: crate::engine::slots::from_labels(&self.nodes),
            measurements: vec![],
        }
    }

    fn wref(&self, w: &Workload) -> WorkloadRef {
        WorkloadRef {
            kind: if w.daemon { "DaemonSet" } else { "ReplicaSet" }.into(),
            namespace: "default".into(),
            name: w.name.clone(),
        }
    }

    fn desired(&self, w: &Workload) -> i32 {
        if w.daemon {
            self.nodes.iter().filter(|n| !n.is_control_plane()).count() as i32
        } else {
            w.replicas
        }
    }

    fn healthy(&self, app: &str) -> i32 {
        self.pods
            .iter()
            .filter(|p| {
                p.labels.get("app").map(String::as_str) == Some(app)
                    && p.ready
                    && p.deleting_since.is_none()
            })
            .count() as i32
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

    fn violation(&mut self, what: String) {
        self.violations
            .push(format!("t={} phase={:?}: {what}", self.now, self.phase()));
    }

    fn check_decision(&mut self, d: &Decision) {
        let stopping = matches!(
            d.status.phase,
            Some(Phase::Halted | Phase::RollingBack | Phase::RolledBack)
        );
        let stopped_before =
            self.stopped_in.is_some() && self.stopped_in == self.plan.metadata.generation;
        for a in &d.actions {
            let on_old = a.node().is_some_and(|n| !self.is_new(n));
            let toward_target = match a {
                Action::Provision(_) => true,
                Action::Cordon { .. } | Action::Evict { .. } => on_old,
                _ => false,
            };
            if (stopping || stopped_before) && toward_target {
                self.violation(format!("invariant 4: {a:?} after a halt/rollback decision"));
            }
            if let Some(n) = a.node()
                && self.node(n).is_some_and(|n| n.is_control_plane())
                && matches!(
                    a,
                    Action::Cordon { .. } | Action::Evict { .. } | Action::RemoveNode { .. }
                )
            {
                self.violation(format!("invariant 6: {a:?} on a control-plane node"));
            }
        }
    }

    fn check_state(&mut self) {
        let me = self.plan.metadata.name.clone().unwrap_or_default();
        let target = self.target();
        let status = self.plan.status.clone().unwrap_or_default();
        let replaced: BTreeSet<&String> = status
            .batches
            .iter()
            .filter(|b| b.phase == BatchPhase::Completed)
            .flat_map(|b| &b.old_nodes)
            .collect();
        let cordoned_not_replaced: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.unschedulable && n.cordoned_by() == Some(me.as_str()))
            .filter(|n| n.image() != Some(target.as_str()) && !self.provisioned.contains(&n.name))
            .filter(|n| !replaced.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        let k = self.max_batch();
        if cordoned_not_replaced.len() > k {
            self.violation(format!(
                "invariant 2: {} old nodes cordoned and not replaced (max {k}): {cordoned_not_replaced:?}",
                cordoned_not_replaced.len()
            ));
        }
        let humans: Vec<String> = self
            .human_cordoned
            .iter()
            .filter(|h| self.node(h).is_some_and(|n| !n.unschedulable))
            .cloned()
            .collect();
        for h in humans {
            self.violation(format!(
                "invariant 3: node {h}, cordoned by a person, was uncordoned"
            ));
        }
        if self.phase() == Phase::RolledBack {
            let left: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.unschedulable && n.cordoned_by() == Some(me.as_str()))
                .map(|n| n.name.clone())
                .collect();
            if !left.is_empty() {
                self.violation(format!(
                    "invariant 3: rolled back but {left:?} still cordoned by molt"
                ));
            }
        }
    }

    /// The largest batch the plan may have in flight.
    pub fn max_batch(&self) -> usize {
        // Batch sizing does not depend on the health fields a test may have made invalid.
        let mut spec = self.plan.spec.clone();
        spec.health.max_restarts = spec.health.max_restarts.max(0);
        let settings = crate::engine::settings::Settings::from_spec(&spec).expect("valid spec");
        let total = self
            .plan
            .status
            .as_ref()
            .map_or(self.nodes.len() as u32, |s| s.summary.nodes.max(1));
        settings
            .batch_size_for(total)
            .max(settings.canary.unwrap_or(0)) as usize
    }

    /// Carry out one action as the shell and the API server would.
    pub fn execute(&mut self, a: &Action) {
        let me = self.plan.metadata.name.clone().unwrap_or_default();
        // Ownership: no plan touches a node another plan holds.
        if matches!(
            a,
            Action::Cordon { .. }
                | Action::Evict { .. }
                | Action::RemoveNode { .. }
                | Action::RemoveSlot { .. }
        ) && let Some(owner) = a.node().and_then(|n| self.held_elsewhere(n))
        {
            self.violation(format!("ownership: {me} did {a:?} on a node {owner} holds"));
        }
        let stopped = self.stopped_in.is_some()
            && self.stopped_in == self.plan.metadata.generation
            && !self.deleted;
        match a {
            Action::Claim { node } => {
                // A compare-and-set, as the shell does: a claim another plan holds stays.
                if self.held_elsewhere(node).is_some() {
                    return;
                }
                if let Some(n) = self.node_mut(node) {
                    n.annotations.insert(keys::CLAIMED_BY_ANNOTATION.into(), me);
                }
            }
            Action::Release { node } => {
                if let Some(n) = self.node_mut(node)
                    && n.claimed_by() == Some(me.as_str())
                {
                    n.annotations.remove(keys::CLAIMED_BY_ANNOTATION);
                }
            }
            Action::Provision(new) => {
                if stopped {
                    self.violation(format!(
                        "invariant 4: provisioned {} after a stop",
                        new.name
                    ));
                }
                // Idempotent by slot, as the port's contract says.
                let filled = self
                    .nodes
                    .iter()
                    .any(|n| n.labels.get(keys::SLOT_LABEL) == Some(&new.slot) && !n.deleting);
                if filled || self.node(&new.name).is_some() {
                    return;
                }
                let name = if self.generated_names {
                    self.next_uid += 1;
                    format!("{}-g{}", new.slot, self.next_uid)
                } else {
                    new.name.clone()
                };
                if !self.provisioned.insert(name.clone()) {
                    self.violation(format!("node {name} provisioned twice"));
                }
                if !self.provisioned_slots.insert(new.slot.clone()) {
                    self.violation(format!("slot {} provisioned twice", new.slot));
                }
                self.created.insert(name.clone(), self.now);
                self.nodes.push(NodeView {
                    name,
                    labels: new.labels.clone(),
                    annotations: new.annotations.clone(),
                    taints: new.taints.clone(),
                    capacity: new.capacity.clone(),
                    allocatable: new.allocatable.clone(),
                    readiness: NodeReadiness::Unknown,
                    ..Default::default()
                });
            }
            Action::Cordon { node } => {
                let new = self.is_new(node);
                if stopped && !new {
                    self.violation(format!(
                        "invariant 4: cordoned old node {node} after a stop"
                    ));
                }
                if let Some(n) = self.node_mut(node)
                    && !n.unschedulable
                {
                    n.unschedulable = true;
                    n.annotations
                        .insert(keys::CORDONED_BY_ANNOTATION.into(), me);
                }
            }
            Action::Uncordon { node } => {
                let Some(n) = self.node_mut(node) else { return };
                if n.cordoned_by() != Some(me.as_str()) {
                    let name = n.name.clone();
                    self.violation(format!(
                        "invariant 3: asked to uncordon {name}, which molt did not cordon"
                    ));
                    return;
                }
                n.unschedulable = false;
                n.annotations.remove(keys::CORDONED_BY_ANNOTATION);
            }
            Action::Evict {
                namespace,
                pod,
                uid,
                node,
                ..
            } => {
                if stopped && !self.is_new(node) {
                    self.violation(format!(
                        "invariant 4: evicted {pod} from old node {node} after a stop"
                    ));
                }
                let Some(i) = self
                    .pods
                    .iter()
                    .position(|p| &p.namespace == namespace && &p.name == pod && &p.uid == uid)
                else {
                    return; // 404 / 409: gone already
                };
                let p = self.pods[i].clone();
                if p.deleting_since.is_some() {
                    return;
                }
                let app = p.labels.get("app").cloned().unwrap_or_default();
                if p.phase == PodPhase::Running
                    && let Some(pdb) = self.pdbs.iter().find(|d| d.app == app).cloned()
                {
                    let healthy = self.healthy(&app);
                    let allowed = if p.ready {
                        healthy - pdb.min_available > 0
                    } else {
                        healthy >= pdb.min_available
                    };
                    if !allowed {
                        self.violation(format!(
                            "invariant 1: eviction of {pod} issued while PDB {} allows no disruption",
                            pdb.name
                        ));
                        self.feedback.push(EvictionFeedback {
                            namespace: namespace.clone(),
                            pod: pod.clone(),
                            uid: uid.clone(),
                            outcome: EvictionOutcome::Blocked(format!("Cannot evict pod as it would violate the pod's disruption budget {}", pdb.name)),
                        });
                        return;
                    }
                }
                self.evictions += 1;
                self.pods[i].deleting_since = Some(self.now);
            }
            Action::RemoveNode { node } => {
                if self.node(node).is_some_and(|n| n.is_control_plane()) {
                    self.violation(format!("invariant 6: removed control-plane node {node}"));
                }
                self.nodes.retain(|n| &n.name != node);
                self.pods.retain(|p| &p.node != node);
            }
            Action::RemoveSlot { slot, node } => {
                if node.as_ref().is_some_and(|n| !self.provisioned.contains(n)) {
                    self.violation(format!(
                        "removed slot {slot} with node {node:?}, which molt did not provision"
                    ));
                }
                let gone: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.labels.get(keys::SLOT_LABEL) == Some(slot))
                    .map(|n| n.name.clone())
                    .collect();
                self.nodes.retain(|n| !gone.contains(&n.name));
                self.pods.retain(|p| !gone.contains(&p.node));
            }
        }
    }

    /// Let `secs` seconds pass: nodes and pods become Ready, terminating pods go, controllers
    /// replace missing pods, the scheduler places them.
    pub fn tick(&mut self, secs: i64) {
        self.now = at(self.now, secs);
        self.kubelet();
        self.controllers();
        self.kubelet();
        self.check_state();
    }

    fn kubelet(&mut self) {
        let target = self.target();
        let now = self.now;
        for n in &mut self.nodes {
            let born = self.created.get(&n.name).copied().unwrap_or(now);
            let faulty = self.fault == Fault::NodeNeverReady && n.image() == Some(target.as_str());
            if n.readiness == NodeReadiness::Unknown && !faulty && now >= at(born, 20) {
                n.readiness = NodeReadiness::Ready;
                n.readiness_since = Some(now);
            }
        }
        // The node lifecycle controller evicts pods from nodes NotReady for a minute (taint-based
        // eviction); their kubelet never confirms, so they stay terminating until the node goes.
        let unreachable: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|n| {
                n.readiness == NodeReadiness::NotReady
                    && n.readiness_since.is_some_and(|t| now >= at(t, 60))
            })
            .map(|n| n.name.clone())
            .collect();
        for p in &mut self.pods {
            if unreachable.contains(&p.node) && p.deleting_since.is_none() {
                p.deleting_since = Some(now);
            }
        }
        self.pods.retain(|p| {
            unreachable.contains(&p.node) || p.deleting_since.is_none_or(|d| now < at(d, 5))
        });
        let nodes = self.nodes.clone();
        let workloads = self.workloads.clone();
        for p in &mut self.pods {
            let Some(n) = nodes.iter().find(|n| n.name == p.node) else {
                continue;
            };
            if p.phase == PodPhase::Pending && n.is_ready() {
                p.phase = PodPhase::Running;
                p.started_at = Some(now);
            }
            if p.phase != PodPhase::Running || p.deleting_since.is_some() {
                continue;
            }
            let on_new = n.image() == Some(target.as_str());
            let broken = workloads
                .iter()
                .any(|w| w.broken && Some(&w.name) == p.labels.get("app"));
            let started = p.started_at.unwrap_or(now);
            match (self.fault, on_new, broken) {
                (_, _, true) | (Fault::PodsNeverReady, true, _) => {
                    p.ready = false;
                    p.problem = Some("ReadinessProbeFailed".into());
                }
                (Fault::CrashLoop, true, _) => {
                    p.ready = false;
                    p.restarts = (now.duration_since(started).as_secs() / 15) as i32;
                    p.problem = Some("CrashLoopBackOff".into());
                }
                _ => p.ready = now >= at(started, 10),
            }
        }
    }

    fn controllers(&mut self) {
        for w in self.workloads.clone() {
            let owned =
                |p: &PodView| p.labels.get("app") == Some(&w.name) && p.deleting_since.is_none();
            if w.daemon {
                let nodes: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| !n.is_control_plane())
                    .map(|n| n.name.clone())
                    .collect();
                for n in nodes {
                    if !self.pods.iter().any(|p| owned(p) && p.node == n) {
                        let p = self.new_pod(&w, &n);
                        self.pods.push(p);
                    }
                }
                continue;
            }
            let live = self.pods.iter().filter(|p| owned(p)).count() as i32;
            for _ in live..w.replicas {
                let p = self.new_pod(&w, "");
                self.pods.push(p);
            }
        }
        // The scheduler: unscheduled pods go to the schedulable Ready node with the fewest pods.
        for i in 0..self.pods.len() {
            if !self.pods[i].node.is_empty() {
                continue;
            }
            let best = self
                .nodes
                .iter()
                .filter(|n| !n.unschedulable && n.is_ready() && !n.is_control_plane())
                .min_by_key(|n| {
                    (
                        self.pods.iter().filter(|p| p.node == n.name).count(),
                        n.name.clone(),
                    )
                })
                .map(|n| n.name.clone());
            if let Some(b) = best {
                self.pods[i].node = b;
            }
        }
    }

    fn new_pod(&mut self, w: &Workload, node: &str) -> PodView {
        self.next_uid += 1;
        let mut p = pod(
            &format!("{}-{}", w.name, self.next_uid),
            node,
            &w.name,
            self.now,
        );
        p.controller = Some(self.wref(w));
        p.phase = PodPhase::Pending;
        p.ready = false;
        p.started_at = None;
        p
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

    /// Every workload has all its pods Ready.
    pub fn workloads_ready(&self) -> bool {
        self.workloads
            .iter()
            .filter(|w| !w.broken)
            .all(|w| self.healthy(&w.name) >= self.desired(w))
    }

    pub fn assert_no_violations(&self) {
        assert!(
            self.violations.is_empty(),
            "invariant violations:\n{}",
            self.violations.join("\n")
        );
    }
}
