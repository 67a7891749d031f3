//! The provider port: how a plan's slots get nodes, and how nodes go away.
//!
//! The engine owns the *slots*: one deterministic id per replacement (plan, attempt, batch,
//! position), recorded in status before anything is asked for. A provider makes a node fill a
//! slot and reports, as observed data the engine reads, what each slot looks like now
//! ([`SlotView`]: provisioning, ready with the node's name whatever the provider called it, or
//! failed with the provider's reason). The engine never looks a new node up by a name it made up.
//!
//! The contract, which every provider (kwok, Cluster API, in-place) keeps:
//! - **Idempotent.** [`Provider::create`] of a slot that already has (or is getting) a node does
//!   nothing; [`Provider::remove_slot`] and [`Provider::remove_node`] of something gone succeed.
//!   The shell repeats any action after a crash, so each call must be safe to repeat.
//! - **Found by slot.** The node that fills a slot carries the `molt.dev/slot=<id>` label, or the
//!   provider reports the binding some other way in [`Provider::slots`].
//! - **What a restart sees.** [`Provider::slots`] is computed from watched objects alone (no
//!   memory of earlier calls), so a restarted molt sees exactly what the one before it left:
//!   a slot asked for but not reported yet is asked for again, harmlessly.
//! - **Removal releases the infrastructure**: for Cluster API the Machine, not just the Node.
//! - **Failures are data**: a slot the provider gave up on (quota, a bad template) is reported
//!   [`SlotState::Failed`] with a reason a person can act on; the gate fails the batch on it.
//! - **Which nodes run the target is the provider's answer.** [`Provider::on_target`] says
//!   whether a node already runs a plan's target; the shell puts the answer in
//!   [`NodeView::on_target`] and the engine looks at nothing else to tell old nodes from new.
//!   Like `slots`, it is computed from watched objects alone. kwok answers from molt's image mark
//!   ([`recorded_image`]); an in-place provider would read `status.nodeInfo.osImage`, a Cluster
//!   API provider the image of the Machine's template.

pub mod kwok;

use crate::api::{Target, keys};
use crate::engine::NewNode;
use crate::engine::observed::{Labels, NodeView, SlotView};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeMap;

pub use crate::engine::observed::SlotState;

/// A provider could not carry out a request.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the API server refused: {0}")]
    Api(#[from] kube::Error),
    #[error("cannot build the node object: {0}")]
    Build(#[from] serde_json::Error),
}

/// Gets nodes for slots and lets nodes go.
pub trait Provider: Send + Sync {
    /// Make a node fill `node.slot` (no-op if the slot has or is getting one).
    fn create<'a>(&'a self, node: &'a NewNode) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Release `slot`: its node (`node`, if known) and whatever the provider made for it.
    fn remove_slot<'a>(
        &'a self,
        slot: &'a str,
        node: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Release the old node `name` and what runs it (no-op if it is gone).
    fn remove_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Every slot the provider knows of, from watched state only. The default reads the
    /// `molt.dev/slot` label of the nodes.
    fn slots(&self, nodes: &[NodeView]) -> BTreeMap<String, SlotView> {
        crate::engine::slots::from_labels(nodes)
    }
    /// Whether `node` already runs `target`, from watched state only. Nodes answered `false` are
    /// the plan's old nodes (if its selector matches them); no default, since only the provider
    /// knows where the image a node runs is written down.
    fn on_target(&self, node: &Node, target: &Target) -> bool;
}

/// The image molt recorded on a node it provisioned: the full reference in the image
/// annotation, or the raw image label on nodes provisioned by earlier molt versions.
pub fn recorded_image<'a>(labels: &'a Labels, annotations: &'a Labels) -> Option<&'a str> {
    annotations
        .get(keys::IMAGE_ANNOTATION)
        .or_else(|| labels.get(keys::IMAGE_LABEL))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_recorded_image_is_the_annotation_else_the_label_of_earlier_versions() {
        let none = Labels::new();
        let label = marks(&[(keys::IMAGE_LABEL, "v1")]);
        let annotation = marks(&[(keys::IMAGE_ANNOTATION, "registry/os:v2")]);
        assert_eq!(recorded_image(&none, &none), None);
        assert_eq!(recorded_image(&label, &none), Some("v1"));
        assert_eq!(recorded_image(&none, &annotation), Some("registry/os:v2"));
        assert_eq!(
            recorded_image(&label, &annotation),
            Some("registry/os:v2"),
            "the annotation wins over a stale label"
        );
    }
}
