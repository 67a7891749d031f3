//! The model API server and provider: each of the engine's actions carried out as the shell would,
//! with PodDisruptionBudgets enforced and the invariants an action could break checked on the spot.

use super::Sim;
use crate::api::keys;
use crate::engine::Action;
use crate::engine::observed::{
    EvictionFeedback, EvictionOutcome, NodeReadiness, NodeView, PodPhase,
};

impl Sim {
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
}
