//! What a control-plane node is, defined once: the engine never selects one, and the shell
//! refuses to cordon or remove one even if an action names it.

use super::observed::Labels;
use crate::api::keys;
use k8s_openapi::api::core::v1::{Node, Taint};

/// A node is a control-plane node when it carries a control-plane role as a label or as a taint
/// key: clusters mark their control plane one way or the other (or both), and either is enough.
pub fn is_control_plane(labels: &Labels, taints: &[Taint]) -> bool {
    keys::CONTROL_PLANE_LABELS
        .iter()
        .any(|k| labels.contains_key(*k) || taints.iter().any(|t| t.key == *k))
}

/// [`is_control_plane`] of a Node object, for the shell's checks on a node it just read.
pub fn is_control_plane_node(n: &Node) -> bool {
    let taints = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    is_control_plane(&n.metadata.labels.clone().unwrap_or_default(), taints)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn either_role_as_a_label_or_a_taint_marks_the_control_plane() {
        for role in keys::CONTROL_PLANE_LABELS {
            let labelled = node(json!({"metadata": {"name": "cp", "labels": {role: ""}}}));
            let tainted = node(json!({"metadata": {"name": "cp"},
                "spec": {"taints": [{"key": role, "effect": "NoSchedule"}]}}));
            assert!(is_control_plane_node(&labelled), "label {role}");
            assert!(is_control_plane_node(&tainted), "taint {role}");
        }
    }

    #[test]
    fn a_worker_is_not_one_whatever_else_it_carries() {
        let worker = node(json!({"metadata": {"name": "w",
                "labels": {"node-role.kubernetes.io/worker": "", "pool": "control-plane"}},
            "spec": {"taints": [{"key": "dedicated", "value": "control-plane", "effect": "NoSchedule"}]}}));
        assert!(!is_control_plane_node(&worker));
        assert!(!is_control_plane_node(&node(
            json!({"metadata": {"name": "bare"}})
        )));
    }
}
