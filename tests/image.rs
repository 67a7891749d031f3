//! Image references that are not label values: new nodes carry the full reference in an
//! annotation and a hash of it in a label; nodes provisioned by earlier versions, which carry the
//! raw image in the old label, are still recognised (kwok's answer to which nodes run the target).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::core::v1::Node;
use molt::api::{NodeUpdatePlan, keys};
use molt::engine::Observed;
use molt::engine::observed::NodeView;
use molt::engine::scope::{old_nodes, replacement};
use molt::provision::{kwok, recorded_image};
use serde_json::json;

const DIGEST_REF: &str = "public.ecr.aws/bottlerocket/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn plan(image: &str) -> NodeUpdatePlan {
    serde_json::from_value(json!({
        "apiVersion": "molt.dev/v1alpha1",
        "kind": "NodeUpdatePlan",
        "metadata": {"name": "p", "uid": "abcdef12-0000"},
        "spec": {
            "nodeSelector": {"matchLabels": {"pool": "workers"}},
            "target": {"image": image},
            "provider": {"kwok": {}}
        }
    }))
    .unwrap()
}

fn object(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Node {
    let pairs = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let mut l = pairs(labels);
    l.insert("pool".into(), "workers".into());
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": l, "annotations": pairs(annotations)}
    }))
    .unwrap()
}

fn node(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> NodeView {
    NodeView::from(&object(name, labels, annotations))
}

/// The recorded image of a view.
fn image(n: &NodeView) -> Option<&str> {
    recorded_image(&n.labels, &n.annotations)
}

/// The snapshot the shell builds for `plan` with the kwok provider: each node with kwok's answer
/// to whether it runs the plan's target.
fn observed(plan: &NodeUpdatePlan, nodes: &[Node]) -> Observed {
    Observed {
        nodes: nodes
            .iter()
            .map(|n| NodeView {
                on_target: kwok::runs(n, &plan.spec.target),
                ..NodeView::from(n)
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_replacement_carries_the_full_reference_in_the_annotation_and_its_hash_in_the_label() {
    let plan = plan(DIGEST_REF);
    // The old node was provisioned by an earlier version: it carries the raw image label.
    let old = node("old-0", &[(keys::IMAGE_LABEL, "v1")], &[]);
    let new = replacement(&plan, &old, "new-0".into(), 0);
    assert_eq!(new.image, DIGEST_REF);
    assert_eq!(new.annotations[keys::IMAGE_ANNOTATION], DIGEST_REF);
    assert_eq!(
        new.labels[keys::IMAGE_HASH_LABEL],
        keys::image_label_value(DIGEST_REF)
    );
    assert!(
        !new.labels.contains_key(keys::IMAGE_LABEL),
        "{:?}",
        new.labels
    );
    for v in new.labels.values() {
        assert!(v.len() <= 63, "{v} is not a valid label value");
    }
}

#[test]
fn the_recorded_image_is_the_annotation_then_the_old_label() {
    let both = node(
        "n",
        &[(keys::IMAGE_LABEL, "stale"), (keys::IMAGE_HASH_LABEL, "x")],
        &[(keys::IMAGE_ANNOTATION, DIGEST_REF)],
    );
    assert_eq!(image(&both), Some(DIGEST_REF));
    let legacy = node("n", &[(keys::IMAGE_LABEL, "ami-0abc")], &[]);
    assert_eq!(image(&legacy), Some("ami-0abc"));
    // The hash label alone does not say which image the node runs.
    let hash_only = node("n", &[(keys::IMAGE_HASH_LABEL, "x")], &[]);
    assert_eq!(image(&hash_only), None);
}

#[test]
fn old_nodes_compare_full_references() {
    let target = "ghcr.io/siderolabs/installer:v1.9.0";
    let plan = plan(target);
    let done = object("done", &[], &[(keys::IMAGE_ANNOTATION, target)]);
    let other_tag = object(
        "other-tag",
        &[],
        &[(
            keys::IMAGE_ANNOTATION,
            "ghcr.io/siderolabs/installer:v1.8.0",
        )],
    );
    let legacy_done = object("legacy-done", &[(keys::IMAGE_LABEL, "v2")], &[]);
    let never = object("never", &[], &[]);
    let nodes = [done, other_tag, legacy_done, never];
    let seen = observed(&plan, &nodes);
    let names: Vec<&str> = old_nodes(&plan, &seen)
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names, ["legacy-done", "never", "other-tag"]);

    let legacy_plan = self::plan("v2");
    let seen = observed(&legacy_plan, &nodes);
    let names: Vec<&str> = old_nodes(&legacy_plan, &seen)
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names, ["done", "never", "other-tag"]);
}
