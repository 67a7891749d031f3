//! Engine tests: fixtures, a small cluster model that carries out the engine's actions, scenario
//! tests for every transition and property tests for the invariants of the product.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod properties;
mod rivals;
mod scenarios;
pub(crate) mod sim;

use super::observed::{NodeReadiness, NodeView, PodPhase, PodView};
use crate::api::{NodeUpdatePlan, WorkloadRef, keys};
use jiff::Timestamp;

/// A minimal plan, as a person would write it, with short timeouts for tests.
pub fn plan_yaml(extra_spec: &str) -> NodeUpdatePlan {
    let yaml = format!(
        r#"
apiVersion: molt.dev/v1alpha1
kind: NodeUpdatePlan
metadata: {{name: workers-v2, uid: 7f3c2a1b-0000-0000-0000-000000000000, generation: 1}}
spec:
  nodeSelector: {{matchLabels: {{pool: workers}}}}
  target: {{image: v2}}
  provider: {{kwok: {{}}}}
{extra_spec}
"#
    );
    serde_yaml_ng::from_str(&yaml).expect("test plan parses")
}

/// The default test plan: batch size 1, every other field defaulted as the API server would.
pub fn plan() -> NodeUpdatePlan {
    plan_yaml("")
}

/// A worker node in pool `workers`, Ready, on image v1.
pub fn node(name: &str) -> NodeView {
    NodeView {
        name: name.into(),
        labels: [("pool", "workers"), ("kubernetes.io/hostname", name)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        readiness: NodeReadiness::Ready,
        capacity: [
            ("cpu".to_string(), "4".to_string()),
            ("pods".to_string(), "110".to_string()),
        ]
        .into(),
        allocatable: [
            ("cpu".to_string(), "4".to_string()),
            ("pods".to_string(), "110".to_string()),
        ]
        .into(),
        ..Default::default()
    }
}

/// The image molt recorded on `n` (the model's and the tests' view of a node; the engine only
/// reads the provider's answer, `on_target`).
pub fn image(n: &NodeView) -> Option<&str> {
    crate::provision::recorded_image(&n.labels, &n.annotations)
}

/// kwok's answer to `Provider::on_target` for a view: molt's image mark names `target`.
pub fn kwok_on_target(n: &NodeView, target: &str) -> bool {
    image(n) == Some(target)
}

/// A control-plane node that also carries the pool label (it must still never be touched).
pub fn control_plane(name: &str) -> NodeView {
    let mut n = node(name);
    n.labels
        .insert(keys::CONTROL_PLANE_LABELS[0].into(), String::new());
    n
}

/// A running, ready pod of ReplicaSet `rs` in namespace `default`.
pub fn pod(name: &str, node: &str, rs: &str, at: Timestamp) -> PodView {
    PodView {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: node.into(),
        labels: [("app".to_string(), rs.to_string())].into(),
        controller: Some(WorkloadRef {
            kind: "ReplicaSet".into(),
            namespace: "default".into(),
            name: rs.into(),
        }),
        phase: PodPhase::Running,
        ready: true,
        started_at: Some(at),
        ..Default::default()
    }
}

/// A fixed starting instant.
pub fn t0() -> Timestamp {
    "2026-11-20T10:00:00Z".parse().expect("valid timestamp")
}

/// `t` plus `secs` seconds.
pub fn at(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("in range")
}
