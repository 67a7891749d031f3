//! The provider port on the real control plane with a provider that names its
//! nodes itself (kwok's `generateNames`, as Cluster API and Karpenter do): molt
//! finds new nodes by slot, never by a name it made up, forward and back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use anyhow::Result;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::Api;
use molt_e2e::checker::ensure_none;
use molt_e2e::k8s::wait_nodes_gone;
use molt_e2e::molt::{batch_nodes, label, marks, nodes_matching, status};
use molt_e2e::scenario::Scenario;
use molt_e2e::workloads::{App, Budget, install, wait_ready};
use molt_e2e::{FAULT_LABEL, NodePoolSpec, unique_name};
use serde_json::{Value, json};

const SLOT_LABEL: &str = "molt.dev/slot";

/// `status.batches[].slotNodes`: slot → the node the provider named for it.
fn slot_nodes(plan: &kube::api::DynamicObject) -> Vec<(String, String)> {
    status(plan)["batches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("slotNodes").and_then(Value::as_object))
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_named_by_the_provider_roll_forward_and_back() -> Result<()> {
    let mut sc = Scenario::new("named", NodePoolSpec::new("named", 2)).await?;
    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 2).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let plan = unique_name("named");
    let spec = sc.plan_spec(
        "img-2",
        1,
        json!({"provider": {"kwok": {"generateNames": true}}}),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    let done = sc.wait_phase(&plan, "Succeeded").await?;

    // Every slot is filled by a node whose name the API server chose, labelled with its slot.
    let slots = batch_nodes(&done, "newNodes");
    let filled = slot_nodes(&done);
    assert_eq!(filled.len(), 2, "{:#}", status(&done));
    let nodes = nodes_matching(sc.client(), &sc.pool.label_selector()).await?;
    let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    for (slot, node) in &filled {
        assert!(slots.contains(slot), "{slot} is not a slot of the plan");
        assert_ne!(slot, node, "the node was named after its slot");
        assert!(node.starts_with(&format!("{slot}-")), "{node}");
        assert!(names.contains(node), "{node} missing; pool: {names:?}");
        let n = Api::<Node>::all(sc.client()).get(node).await?;
        assert_eq!(label(&n, SLOT_LABEL), Some(slot.as_str()));
        assert_eq!(label(&n, marks::PLAN_LABEL), Some(plan.as_str()));
    }
    assert_eq!(
        names.len(),
        2,
        "old nodes gone, only the new ones: {names:?}"
    );
    let new: Vec<String> = filled.iter().map(|(_, n)| n.clone()).collect();
    wait_ready(&sc.ns, "web", 2, |n| new.iter().any(|x| x == n)).await?;
    let provisioned = checker.provisioned();
    assert_eq!(provisioned.len(), 2, "{provisioned:?}");
    ensure_none(&checker.finish().await?)?;

    // A bad image on the same kind of provider: the rollback finds and removes its nodes by slot.
    let bad = unique_name("named-bad");
    let spec = sc.plan_spec(
        "img-bad",
        1,
        json!({
            "provider": {"kwok": {"generateNames": true, "nodeTemplate": {"labels": {FAULT_LABEL: "not-ready"}}}},
            "health": {"readyTimeout": "15s"}
        }),
    );
    let checker = sc.create_plan(&bad, spec).await?;
    let rolled = sc.wait_phase(&bad, "RolledBack").await?;
    assert_eq!(slot_nodes(&rolled).len(), 1, "{:#}", status(&rolled));
    wait_nodes_gone(
        sc.client(),
        &format!("{}={bad}", marks::PLAN_LABEL),
        "the bad plan's nodes removed",
    )
    .await?;
    wait_ready(&sc.ns, "web", 2, |n| new.iter().any(|x| x == n)).await?;
    ensure_none(&checker.finish().await?)
}
