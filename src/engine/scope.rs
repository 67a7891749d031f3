//! Which nodes a plan covers, how they are grouped into batches, and what replaces each one.

use super::action::NewNode;
use super::observed::{NodeView, Observed};
use super::selector;
use crate::api::{BatchStatus, NodeUpdatePlan, keys};
use kube::ResourceExt;
use std::collections::BTreeSet;

/// Nodes the selector picks, outside the control plane and not being deleted.
pub fn selected<'a>(plan: &NodeUpdatePlan, observed: &'a Observed) -> Vec<&'a NodeView> {
    observed
        .nodes
        .iter()
        .filter(|n| !n.is_control_plane() && !n.deleting)
        .filter(|n| selector::matches(&plan.spec.node_selector, &n.labels))
        .collect()
}

/// Selected nodes the provider does not report on the target (old nodes), by name.
pub fn old_nodes<'a>(plan: &NodeUpdatePlan, observed: &'a Observed) -> Vec<&'a NodeView> {
    let mut v: Vec<&NodeView> = selected(plan, observed)
        .into_iter()
        .filter(|n| !n.on_target)
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Old nodes no batch has taken yet, in the order batches take them: nodes already unschedulable
/// first (draining them costs no capacity), then by name.
pub fn untaken<'a>(
    plan: &NodeUpdatePlan,
    observed: &'a Observed,
    batches: &[BatchStatus],
) -> Vec<&'a NodeView> {
    let taken: BTreeSet<&str> = batches
        .iter()
        .flat_map(|b| b.old_nodes.iter().map(String::as_str))
        .collect();
    let mut v: Vec<&NodeView> = old_nodes(plan, observed)
        .into_iter()
        .filter(|n| !taken.contains(n.name.as_str()))
        .collect();
    v.sort_by(|a, b| (!a.unschedulable, &a.name).cmp(&(!b.unschedulable, &b.name)));
    v
}

/// Deterministic id of the slot at position `slot` of `batch` in `attempt`: the same inputs
/// always give the same id, so a restart finds the node instead of provisioning another. It is a
/// valid node name and label value (at most 30 + 1 + 5 + 1 + 12 characters).
pub fn slot_id(plan: &NodeUpdatePlan, attempt: u32, batch: u32, slot: usize) -> String {
    let name = plan.name_any();
    let mut prefix: String = name.chars().take(30).collect();
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    let uid: String = plan
        .uid()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(5)
        .collect::<String>()
        .to_ascii_lowercase();
    let uid = if uid.is_empty() { "0".to_string() } else { uid };
    format!("{prefix}-{uid}-a{attempt}b{batch}n{slot}")
}

/// The node that fills `slot` in place of `old`: its labels, taints and capacity, plus the
/// template and molt's marks.
pub fn replacement(plan: &NodeUpdatePlan, old: &NodeView, slot: String, batch: u32) -> NewNode {
    let target = plan.spec.target.image.clone();
    let kwok = plan.spec.provider.kwok.clone().unwrap_or_default();
    let template = kwok.node_template;
    let mut labels = old.labels.clone();
    for k in keys::NODE_IDENTITY_LABELS {
        labels.remove(k);
    }
    labels.extend(template.labels.clone());
    labels.remove(keys::IMAGE_LABEL);
    labels.insert(
        keys::IMAGE_HASH_LABEL.into(),
        keys::image_label_value(&target),
    );
    labels.insert(keys::PLAN_LABEL.into(), plan.name_any());
    labels.insert(keys::SLOT_LABEL.into(), slot.clone());
    let mut taints: Vec<_> = old
        .taints
        .iter()
        .filter(|t| {
            !t.key.starts_with("node.kubernetes.io/")
                && !t.key.starts_with("node.cloudprovider.kubernetes.io/")
        })
        .cloned()
        .collect();
    for t in template.taints {
        if !taints
            .iter()
            .any(|x| x.key == t.key && x.effect == t.effect)
        {
            taints.push(t);
        }
    }
    let annotations = [
        (keys::REPLACES_ANNOTATION.to_string(), old.name.clone()),
        (keys::BATCH_ANNOTATION.to_string(), batch.to_string()),
        (keys::IMAGE_ANNOTATION.to_string(), target.clone()),
        // Born claimed: another plan must never take a new node for one of its old nodes.
        (keys::CLAIMED_BY_ANNOTATION.to_string(), plan.name_any()),
    ]
    .into_iter()
    .collect();
    NewNode {
        name: slot.clone(),
        generate_name: kwok.generate_names,
        slot,
        image: target,
        replaces: old.name.clone(),
        labels,
        annotations,
        taints,
        capacity: old.capacity.clone(),
        allocatable: old.allocatable.clone(),
    }
}
