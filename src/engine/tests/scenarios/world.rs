//! The scenarios' world: a plan and a cluster snapshot that change only when a test changes them
//! or carries out the engine's actions.

use super::{ME, at, node, pod, rs_ref};
use crate::api::condition::types;
use crate::api::{BatchStatus, NodeUpdatePlan, NodeUpdatePlanStatus, Phase, WorkloadRef, keys};
use crate::engine::observed::{NodeReadiness, NodeView, Observed, PodView, WorkloadView};
use crate::engine::tests::t0;
use crate::engine::{Action, Decision, decide};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// A plan and a cluster snapshot at a moment. Nothing changes unless the test changes it or
/// carries out the engine's actions with [`World::apply`].
pub struct World {
    pub plan: NodeUpdatePlan,
    pub obs: Observed,
    pub now: Timestamp,
    /// Show the claiming round as a decision of its own (see [`World::decide`]).
    pub unfolded: bool,
    /// Slots the provider reports besides those its nodes' labels show (e.g. a failed one).
    pub reported: BTreeMap<String, crate::engine::observed::SlotView>,
    /// The provider's answer to "does this node run this target?" (kwok's unless a test says
    /// otherwise), asked afresh on every observation as the shell does.
    pub on_target: fn(&NodeView, &str) -> bool,
}

/// A decision that only claims nodes before the plan starts.
fn claiming(d: &Decision) -> bool {
    crate::engine::status::condition(&d.status, types::PROGRESSING)
        .is_some_and(|c| c.reason == crate::api::condition::reasons::CLAIMING)
}

impl World {
    /// A world at [`t0`] with these nodes, every node's pods observed, namespace `default`.
    pub fn new(plan: NodeUpdatePlan, nodes: Vec<NodeView>) -> World {
        let pods_observed_on = nodes.iter().map(|n| n.name.clone()).collect();
        World {
            plan,
            obs: Observed {
                nodes,
                pods_observed_on,
                namespaces: [("default".to_string(), BTreeMap::new())].into(),
                ..Default::default()
            },
            now: t0(),
            unfolded: false,
            reported: BTreeMap::new(),
            on_target: crate::engine::tests::kwok_on_target,
        }
    }

    /// A world with `n` worker nodes `old-0`, `old-1`, … and no pods.
    pub fn with_nodes(plan: NodeUpdatePlan, n: usize) -> World {
        World::new(plan, (0..n).map(|i| node(&format!("old-{i}"))).collect())
    }

    /// Ready counts of workloads follow their pods, as the workload controllers report them.
    fn sync_workloads(&mut self) {
        let mut ready: BTreeMap<&WorkloadRef, i32> = BTreeMap::new();
        for p in &self.obs.pods {
            if let Some(c) = &p.controller
                && p.ready
                && p.deleting_since.is_none()
            {
                *ready.entry(c).or_default() += 1;
            }
        }
        for w in &mut self.obs.workloads {
            w.ready = ready.get(&w.workload).copied().unwrap_or(0);
        }
    }

    /// The engine's decision now, without recording it.
    pub fn peek(&mut self) -> Decision {
        self.sync_workloads();
        // The provider reports slots from its nodes' labels (as kwok does), plus what a test says.
        self.obs.slots = crate::engine::slots::from_labels(&self.obs.nodes);
        self.obs.slots.extend(self.reported.clone());
        let target = self.plan.spec.target.image.clone();
        for n in &mut self.obs.nodes {
            n.on_target = (self.on_target)(n, &target);
        }
        decide(&self.plan, &self.obs, self.now)
    }

    /// Decide and record the status (as the shell does before acting); actions are not carried out.
    ///
    /// A plan claims its nodes in a round of its own before it starts. Unless `unfolded`, that round
    /// is carried out here and folded into the decision that starts the plan (its claims first), so
    /// a scenario reads as one start; the claiming round itself has scenarios of its own.
    pub fn decide(&mut self) -> Decision {
        let d = self.peek();
        self.plan.status = Some(d.status.clone());
        if self.unfolded || !claiming(&d) {
            return d;
        }
        self.apply(&d);
        let mut next = self.peek();
        self.plan.status = Some(next.status.clone());
        let (mut actions, mut events) = (d.actions, d.events);
        actions.append(&mut next.actions);
        events.append(&mut next.events);
        (next.actions, next.events) = (actions, events);
        next
    }

    /// Decide, record the status and carry out every action.
    pub fn step(&mut self) -> Decision {
        let d = self.decide();
        self.apply(&d);
        d
    }

    /// Carry out actions as the shell and the API server would, without anything else moving.
    pub fn apply(&mut self, d: &Decision) {
        for a in &d.actions {
            match a {
                Action::Claim { node } => {
                    // A compare-and-set, as the shell does: a claim that another plan holds stays.
                    let holders = self.obs.other_plans.clone();
                    let n = self.node_mut(node);
                    let held = n
                        .claimed_by()
                        .is_some_and(|o| o != ME && holders.get(o).copied().unwrap_or(false));
                    if !held {
                        n.annotations
                            .insert(keys::CLAIMED_BY_ANNOTATION.into(), ME.into());
                    }
                }
                Action::Release { node } => {
                    let n = self.node_mut(node);
                    if n.claimed_by() == Some(ME) {
                        n.annotations.remove(keys::CLAIMED_BY_ANNOTATION);
                    }
                }
                Action::Provision(new) => {
                    if self.obs.node(&new.name).is_none() {
                        self.obs.nodes.push(NodeView {
                            name: new.name.clone(),
                            labels: new.labels.clone(),
                            annotations: new.annotations.clone(),
                            taints: new.taints.clone(),
                            capacity: new.capacity.clone(),
                            allocatable: new.allocatable.clone(),
                            ..Default::default()
                        });
                        self.obs.pods_observed_on.insert(new.name.clone());
                    }
                }
                Action::Cordon { node } => {
                    let n = self.node_mut(node);
                    if !n.unschedulable {
                        n.unschedulable = true;
                        n.annotations
                            .insert(keys::CORDONED_BY_ANNOTATION.into(), ME.into());
                    }
                }
                Action::Uncordon { node } => {
                    let n = self.node_mut(node);
                    assert_eq!(
                        n.cordoned_by(),
                        Some(ME),
                        "uncordon of {node}, which molt did not cordon"
                    );
                    n.unschedulable = false;
                    n.annotations.remove(keys::CORDONED_BY_ANNOTATION);
                }
                Action::Evict {
                    namespace,
                    pod,
                    uid,
                    ..
                } => {
                    let now = self.now;
                    if let Some(p) = self
                        .obs
                        .pods
                        .iter_mut()
                        .find(|p| &p.namespace == namespace && &p.name == pod && &p.uid == uid)
                    {
                        p.deleting_since.get_or_insert(now);
                    }
                }
                Action::RemoveNode { node } => self.remove(node),
                Action::RemoveSlot { slot, node } => {
                    self.remove(node.as_deref().unwrap_or(slot));
                    self.reported.remove(slot);
                }
            }
        }
    }

    fn remove(&mut self, node: &str) {
        self.obs.nodes.retain(|n| n.name != node);
        self.obs.pods.retain(|p| p.node != node);
        self.obs.pods_observed_on.remove(node);
    }

    /// Let `secs` seconds pass (nothing else changes).
    pub fn tick(&mut self, secs: i64) {
        self.now = at(self.now, secs);
    }

    /// A person edits the spec: the generation moves on.
    pub fn edit(&mut self, f: impl FnOnce(&mut NodeUpdatePlan)) {
        f(&mut self.plan);
        self.plan.metadata.generation = Some(self.plan.metadata.generation.unwrap_or(1) + 1);
    }

    pub fn status(&self) -> &NodeUpdatePlanStatus {
        self.plan.status.as_ref().expect("a decision was recorded")
    }

    pub fn phase(&self) -> Phase {
        self.plan
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(Phase::Pending)
    }

    pub fn batch(&self, i: usize) -> &BatchStatus {
        &self.status().batches[i]
    }

    pub fn node(&self, name: &str) -> &NodeView {
        self.obs
            .node(name)
            .unwrap_or_else(|| panic!("node {name} exists"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut NodeView {
        self.obs
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("node {name} exists"))
    }

    pub fn has_node(&self, name: &str) -> bool {
        self.obs.node(name).is_some()
    }

    /// The node's Ready condition turns True now.
    pub fn set_ready(&mut self, name: &str) {
        let now = self.now;
        let n = self.node_mut(name);
        n.readiness = NodeReadiness::Ready;
        n.readiness_since = Some(now);
    }

    /// The node's Ready condition turns False now.
    pub fn set_not_ready(&mut self, name: &str) {
        let now = self.now;
        let n = self.node_mut(name);
        n.readiness = NodeReadiness::NotReady;
        n.readiness_since = Some(now);
    }

    /// Every node molt provisioned so far turns Ready.
    pub fn ready_new_nodes(&mut self) {
        let pending: Vec<String> = self
            .obs
            .nodes
            .iter()
            .filter(|n| {
                n.labels.contains_key(keys::PLAN_LABEL) && n.readiness != NodeReadiness::Ready
            })
            .map(|n| n.name.clone())
            .collect();
        for n in pending {
            self.set_ready(&n);
        }
    }

    pub fn add_pod(&mut self, p: PodView) {
        self.obs.pods.push(p);
    }

    /// A pod of ReplicaSet `rs` that the scheduler just placed on `node`: Running, not Ready yet.
    pub fn land(&mut self, name: &str, node: &str, rs: &str) {
        let mut p = pod(name, node, rs, self.now);
        p.ready = false;
        self.add_pod(p);
    }

    pub fn pod_mut(&mut self, name: &str) -> &mut PodView {
        self.obs
            .pods
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("pod {name} exists"))
    }

    /// Terminating pods finish terminating.
    pub fn gone(&mut self) {
        self.obs.pods.retain(|p| p.deleting_since.is_none());
    }

    /// Register ReplicaSet `rs` in `default` wanting `desired` pods (its ready count follows its pods).
    pub fn workload(&mut self, rs: &str, desired: i32) {
        self.obs.workloads.push(WorkloadView {
            workload: rs_ref(rs),
            desired,
            ready: 0,
        });
    }

    /// Step, turn new nodes Ready and let terminating pods go, until `done` holds (at most `max` rounds).
    pub fn drive_until(&mut self, done: impl Fn(&World) -> bool, max: usize) -> Vec<Decision> {
        let mut decisions = vec![];
        for _ in 0..max {
            if done(self) {
                return decisions;
            }
            let d = self.step();
            self.ready_new_nodes();
            self.gone();
            self.tick(
                d.requeue_after
                    .map_or(1, |r| r.as_secs().clamp(1, 60) as i64),
            );
            decisions.push(d);
        }
        assert!(
            done(self),
            "not reached after {max} rounds: {:?}: {:?}",
            self.phase(),
            self.status().message
        );
        decisions
    }
}
