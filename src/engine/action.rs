//! What the engine asks the shell to do, and the decision that carries it.
//!
//! Every action is an idempotent intent: executing it twice, or after a crash, is harmless. The
//! shell writes `Decision::status` first (intent before effect), then publishes `events`, then
//! executes `actions` in order. Events are not actions: a transition's Event is emitted only by
//! the decision that makes the transition, so it must not wait behind an action that may fail.

use crate::api::NodeUpdatePlanStatus;
use k8s_openapi::api::core::v1::Taint;
use std::collections::BTreeMap;
use std::time::Duration;

/// The engine's answer for one look at the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Intents, in the order they must be carried out.
    pub actions: Vec<Action>,
    /// Events to publish on the plan once the status is written, whatever the actions do.
    pub events: Vec<Event>,
    /// The complete next status.
    pub status: NodeUpdatePlanStatus,
    /// Look again after this long even if nothing changes (a deadline or a retry).
    pub requeue_after: Option<Duration>,
}

/// A node to create: everything the provider needs, nothing it must decide.
#[derive(Clone, Debug, PartialEq)]
pub struct NewNode {
    /// The slot it fills (deterministic: plan, attempt, batch, position), also carried as the
    /// `molt.dev/slot` label. Creating a slot that is filled already does nothing.
    pub slot: String,
    /// The node's name when the provider names nodes after their slots (kwok by default); a
    /// provider that names nodes itself ignores it.
    pub name: String,
    /// Let the provider (the API server, for kwok) choose the node's name.
    pub generate_name: bool,
    /// The image to run (`spec.target.image`).
    pub image: String,
    /// The old node it replaces.
    pub replaces: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub capacity: BTreeMap<String, String>,
    pub allocatable: BTreeMap<String, String>,
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes Event on the plan, telling a person about a transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}

/// One idempotent intent.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Mark `node` as belonging to this plan (`molt.dev/claimed-by`), unless it already does.
    Claim { node: String },
    /// Remove this plan's claim from `node`.
    Release { node: String },
    /// Create a node unless one of that name exists.
    Provision(NewNode),
    /// Set `spec.unschedulable` and record `molt.dev/cordoned-by` in the same patch. The shell must
    /// not touch a node that is already unschedulable (someone else cordoned it).
    Cordon { node: String },
    /// Clear `spec.unschedulable` and molt's cordon annotation, only if the annotation names this plan.
    Uncordon { node: String },
    /// Evict a pod through the Eviction API with a UID precondition. Never a delete.
    Evict {
        namespace: String,
        pod: String,
        uid: String,
        node: String,
        grace_period_seconds: Option<i64>,
    },
    /// Remove an old node through the provider (which releases what runs it, not just the Node).
    RemoveNode { node: String },
    /// Release a slot through the provider: its node and whatever the provider made for it.
    RemoveSlot { slot: String, node: Option<String> },
}

impl Action {
    /// The node an action touches, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Action::Claim { node }
            | Action::Release { node }
            | Action::Cordon { node }
            | Action::Uncordon { node }
            | Action::RemoveNode { node }
            | Action::Evict { node, .. } => Some(node),
            Action::Provision(n) => Some(&n.name),
            Action::RemoveSlot { slot, node } => Some(node.as_deref().unwrap_or(slot)),
        }
    }
}
