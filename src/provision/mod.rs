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

pub mod kwok;

use crate::engine::NewNode;
use crate::engine::observed::{NodeView, SlotView};
use futures::future::BoxFuture;
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
}
