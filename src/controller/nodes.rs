//! Node writes: read the node, decide from the live object, patch with its resourceVersion.
//!
//! The compare-and-set turns a change that raced with molt (a person cordoning, another plan
//! claiming) into a conflict and a retry instead of a lost update. What to patch is decided by
//! pure functions over the node read, so the rules are tested without a cluster.

use super::error::Error;
use crate::api::keys;
use crate::engine::observed::NodeView;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// The node `name`, or `None` if it is gone.
pub async fn get_node(api: &Api<Node>, name: &str) -> Result<Option<Node>, Error> {
    Ok(api.get_opt(name).await?)
}

/// Merge-patch a node, failing with a conflict if it changed since `seen`.
pub async fn patch_node(api: &Api<Node>, seen: &Node, patch: Value) -> Result<(), Error> {
    api.patch(
        &seen.name_any(),
        &PatchParams::apply(keys::FIELD_MANAGER),
        &Patch::Merge(&guarded(patch, seen)),
    )
    .await
    .map(|_| ())
    .map_err(|e| conflict_or(e, &seen.name_any()))
}

/// `patch` made conditional on `seen`'s resourceVersion: the API server answers 409 if the node
/// changed since it was read.
fn guarded(mut patch: Value, seen: &Node) -> Value {
    patch["metadata"]["resourceVersion"] = json!(seen.resource_version());
    patch
}

/// A 409 is a race lost on node `name`, retried soon; anything else is an API error.
fn conflict_or(e: kube::Error, name: &str) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 409 => Error::Conflict {
            what: format!("node {name}"),
        },
        e => Error::Kube(e),
    }
}

/// The cordon of `n` for plan `me`, or `None` to leave it: a node already unschedulable was
/// cordoned by someone else (molt leaves it and leaves no mark of its own), and a control-plane
/// node is never touched.
pub fn cordon(n: &Node, me: &str) -> Option<Value> {
    let view = NodeView::from(n);
    if view.unschedulable || view.is_control_plane() {
        return None;
    }
    Some(json!({
        "metadata": {"annotations": {keys::CORDONED_BY_ANNOTATION: me}},
        "spec": {"unschedulable": true},
    }))
}

/// The uncordon of `n` for plan `me`, or `None` if molt's mark on it is not this plan's.
pub fn uncordon(n: &Node, me: &str) -> Option<Value> {
    (n.annotations()
        .get(keys::CORDONED_BY_ANNOTATION)
        .map(String::as_str)
        == Some(me))
    .then(|| {
        json!({
            "metadata": {"annotations": {keys::CORDONED_BY_ANNOTATION: null}},
            "spec": {"unschedulable": null},
        })
    })
}

/// The release of `n`'s claim for plan `me`, or `None` if the claim is not this plan's.
pub fn release(n: &Node, me: &str) -> Option<Value> {
    (n.annotations()
        .get(keys::CLAIMED_BY_ANNOTATION)
        .map(String::as_str)
        == Some(me))
    .then(|| json!({"metadata": {"annotations": {keys::CLAIMED_BY_ANNOTATION: null}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "workers-v2";

    fn node(v: Value) -> Node {
        let mut v = v;
        v["metadata"]["name"] = json!("old-0");
        v["metadata"]["resourceVersion"] = json!("41");
        serde_json::from_value(v).unwrap()
    }

    fn marked(cordoned_by: Option<&str>, claimed_by: Option<&str>, unschedulable: bool) -> Node {
        let mut annotations = serde_json::Map::new();
        if let Some(c) = cordoned_by {
            annotations.insert(keys::CORDONED_BY_ANNOTATION.into(), json!(c));
        }
        if let Some(c) = claimed_by {
            annotations.insert(keys::CLAIMED_BY_ANNOTATION.into(), json!(c));
        }
        node(json!({
            "metadata": {"annotations": annotations},
            "spec": {"unschedulable": unschedulable},
        }))
    }

    #[test]
    fn a_schedulable_worker_is_cordoned_with_molts_mark_in_the_same_patch() {
        let patch = cordon(&marked(None, Some(ME), false), ME);
        assert_eq!(
            patch,
            Some(json!({
                "metadata": {"annotations": {keys::CORDONED_BY_ANNOTATION: ME}},
                "spec": {"unschedulable": true},
            }))
        );
    }

    #[test]
    fn a_node_someone_else_cordoned_is_left_without_a_mark() {
        assert_eq!(cordon(&marked(None, Some(ME), true), ME), None);
    }

    #[test]
    fn a_control_plane_node_is_never_cordoned_whether_labelled_or_only_tainted() {
        let label = keys::CONTROL_PLANE_LABELS[0];
        let labelled = node(json!({"metadata": {"labels": {label: ""}}}));
        let tainted = node(json!({
            "metadata": {},
            "spec": {"taints": [{"key": label, "effect": "NoSchedule"}]},
        }));
        assert_eq!(cordon(&labelled, ME), None);
        assert_eq!(cordon(&tainted, ME), None);
    }

    #[test]
    fn only_this_plans_cordon_is_undone() {
        let patch = uncordon(&marked(Some(ME), None, true), ME);
        assert_eq!(
            patch,
            Some(json!({
                "metadata": {"annotations": {keys::CORDONED_BY_ANNOTATION: null}},
                "spec": {"unschedulable": null},
            }))
        );
        assert_eq!(uncordon(&marked(Some("workers-v3"), None, true), ME), None);
        assert_eq!(
            uncordon(&marked(None, None, true), ME),
            None,
            "a person's cordon"
        );
    }

    #[test]
    fn only_this_plans_claim_is_released() {
        assert_eq!(
            release(&marked(None, Some(ME), false), ME),
            Some(json!({"metadata": {"annotations": {keys::CLAIMED_BY_ANNOTATION: null}}}))
        );
        assert_eq!(release(&marked(None, Some("workers-v3"), false), ME), None);
        assert_eq!(release(&marked(None, None, false), ME), None);
    }

    #[test]
    fn every_patch_is_conditional_on_the_version_read() {
        let seen = marked(None, None, false);
        let patch = cordon(&seen, ME).map(|p| guarded(p, &seen));
        assert_eq!(
            patch.as_ref().map(|p| &p["metadata"]["resourceVersion"]),
            Some(&json!("41"))
        );
        assert_eq!(
            patch.as_ref().map(|p| &p["spec"]["unschedulable"]),
            Some(&json!(true)),
            "the version is added, nothing else changes"
        );
    }

    #[test]
    fn a_409_is_a_conflict_on_the_node_and_other_failures_stay_api_errors() {
        let status = |code| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "").with_code(code),
            ))
        };
        match conflict_or(status(409), "old-0") {
            Error::Conflict { what } => assert_eq!(what, "node old-0"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(matches!(conflict_or(status(422), "old-0"), Error::Kube(_)));
    }
}
