//! New nodes by slot: the engine owns a deterministic slot per replacement; the provider makes
//! a node fill it and reports, as observed data, each slot's state and node, whatever the
//! provider called that node. Nothing in the engine looks a new node up by a name it invented.

use super::observed::{NodeView, Observed, SlotState};
use crate::api::BatchStatus;

/// The node that fills `slot` of `batch`: as the provider reports it, else as status recorded it.
pub fn node<'a>(observed: &'a Observed, batch: &BatchStatus, slot: &str) -> Option<&'a NodeView> {
    let reported = observed.slots.get(slot).and_then(|s| s.node.as_deref());
    reported
        .or(batch.slot_nodes.get(slot).map(String::as_str))
        .and_then(|n| observed.node(n))
}

/// The name of the node that fills `slot`, if it is known (it may no longer exist).
pub fn node_name<'a>(
    observed: &'a Observed,
    batch: &'a BatchStatus,
    slot: &str,
) -> Option<&'a str> {
    observed
        .slots
        .get(slot)
        .and_then(|s| s.node.as_deref())
        .or(batch.slot_nodes.get(slot).map(String::as_str))
}

/// The existing new nodes of `batch`, by name, in slot order.
pub fn existing(observed: &Observed, batch: &BatchStatus) -> Vec<String> {
    batch
        .new_nodes
        .iter()
        .filter_map(|slot| node(observed, batch, slot))
        .map(|n| n.name.clone())
        .collect()
}

/// Why the provider gave up on `slot`, if it did.
pub fn failure<'a>(observed: &'a Observed, slot: &str) -> Option<&'a str> {
    match observed.slots.get(slot).map(|s| &s.state) {
        Some(SlotState::Failed(reason)) => Some(reason),
        _ => None,
    }
}

/// Whether the provider knows of `slot` (asked for, being made, or made).
pub fn requested(observed: &Observed, slot: &str) -> bool {
    observed.slots.contains_key(slot)
}

/// Record in status the node each slot's provider reported, so people and a restarted controller
/// see the names (a node named by the provider is only known once it exists).
pub fn record(observed: &Observed, batch: &mut BatchStatus) {
    for slot in &batch.new_nodes {
        if let Some(name) = observed.slots.get(slot).and_then(|s| s.node.clone())
            && batch.slot_nodes.get(slot) != Some(&name)
            && name != *slot
        {
            batch.slot_nodes.insert(slot.clone(), name);
        }
    }
}

/// The slots `observed` knows from node labels: what a provider that labels its nodes with
/// `molt.dev/slot` reports (kwok does).
pub fn from_labels<'a>(
    nodes: impl IntoIterator<Item = &'a NodeView>,
) -> std::collections::BTreeMap<String, super::observed::SlotView> {
    nodes
        .into_iter()
        .filter(|n| !n.deleting)
        .filter_map(|n| {
            let slot = n.labels.get(crate::api::keys::SLOT_LABEL)?;
            let state = if n.is_ready() {
                SlotState::Ready
            } else {
                SlotState::Provisioning
            };
            Some((
                slot.clone(),
                super::observed::SlotView {
                    node: Some(n.name.clone()),
                    state,
                },
            ))
        })
        .collect()
}
