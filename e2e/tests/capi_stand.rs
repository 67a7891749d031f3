//! The Cluster API test stand on the real Cluster API controllers: a MachineDeployment of
//! KwokMachines gets its Machines and Nodes, grows by exactly the Machines asked for, and shrinks
//! by exactly the Machine marked for deletion, with its Node. These are the moves molt's Cluster
//! API provider makes.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use molt_e2e::capi::{
    CapiCluster, DELETE_MACHINE_ANNOTATION, Kind, KwokMachineSpec, condition, field, node_ref,
};
use molt_e2e::{Cluster, POOL_LABEL, eventually, is_node_ready, unique_name};
use serde_json::json;

/// Waits until the MachineDeployment `md` has exactly `count` Machines, none deleting, each
/// Running and Ready with a Node; and until the pool's Nodes are exactly those, Ready, with the
/// Machine's provider ID, `image` and the Machines' Kubernetes version. Returns Machine → Node.
async fn machines_with_nodes(
    cluster: &Cluster,
    capi: &CapiCluster,
    md: &str,
    pool: &str,
    image: &str,
    count: usize,
) -> Result<BTreeMap<String, String>> {
    let nodes: Api<Node> = Api::all(cluster.client());
    let what = format!("{count} Running Machines of {md}, each with its Ready Node");
    eventually(&what, || {
        let nodes = nodes.clone();
        async move {
            let machines = capi
                .deployment_machines(md)
                .await
                .map_err(|e| e.to_string())?;
            let mut machine_nodes = BTreeMap::new();
            let mut provider_ids = BTreeMap::new();
            for m in &machines {
                let name = m.name_any();
                let ready = condition(m, "Ready") == Some("True");
                match (m.metadata.deletion_timestamp.is_some(), node_ref(m)) {
                    (true, _) => return Err(format!("Machine {name} is being deleted")),
                    (false, None) => return Err(format!("Machine {name} has no nodeRef yet")),
                    (false, Some(node)) => machine_nodes.insert(name.clone(), node.to_string()),
                };
                if field(m, "/status/phase") != Some("Running") || !ready {
                    return Err(format!(
                        "Machine {name} is not Running and Ready: {:?}",
                        m.data
                    ));
                }
                provider_ids.insert(name, field(m, "/spec/providerID").map(str::to_string));
            }
            if machines.len() != count {
                return Err(format!("{} Machines: {machine_nodes:?}", machines.len()));
            }
            let selector = format!("{POOL_LABEL}={pool}");
            let pool_nodes = nodes
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?
                .items;
            let names: BTreeSet<String> = pool_nodes.iter().map(|n| n.name_any()).collect();
            let referenced: BTreeSet<String> = machine_nodes.values().cloned().collect();
            if names != referenced {
                return Err(format!(
                    "pool Nodes {names:?}, Machines' Nodes {referenced:?}"
                ));
            }
            for n in &pool_nodes {
                let info = n.status.as_ref().and_then(|s| s.node_info.as_ref());
                let id = n.spec.as_ref().and_then(|s| s.provider_id.clone());
                let machine = machine_nodes
                    .iter()
                    .find(|(_, node)| **node == n.name_any());
                let machine_id = machine.and_then(|(m, _)| provider_ids[m].clone());
                if !is_node_ready(n)
                    || id.is_none()
                    || id != machine_id
                    || info.map(|i| i.os_image.as_str()) != Some(image)
                    || info.map(|i| i.kubelet_version.as_str()) != Some(capi.version())
                {
                    return Err(format!(
                        "Node {} not as its Machine says: {n:?}",
                        n.name_any()
                    ));
                }
            }
            Ok(Some(machine_nodes))
        }
    })
    .await
}

#[tokio::test]
async fn machine_deployment_grows_and_shrinks_by_exactly_the_machines_asked_for() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let ns = cluster.namespace("capi-stand").await?;
    let capi = CapiCluster::create(&cluster, &ns).await?;
    let pool = unique_name("capi-pool");
    let md = "md-0";
    capi.create_template(
        "img-v1",
        KwokMachineSpec::new("img-v1").label(POOL_LABEL, &pool),
    )
    .await?;
    capi.create_machine_deployment(md, 3, "img-v1").await?;
    let first = machines_with_nodes(&cluster, &capi, md, &pool, "img-v1", 3).await?;

    // Surge: one more replica is one more Machine; none of the first three goes.
    capi.patch(
        Kind::MachineDeployment,
        md,
        json!({ "spec": { "replicas": 4 } }),
    )
    .await?;
    let grown = machines_with_nodes(&cluster, &capi, md, &pool, "img-v1", 4).await?;
    let kept: BTreeSet<_> = first.keys().collect();
    assert!(
        kept.iter().all(|m| grown.contains_key(*m)),
        "growing replicas removed a Machine: before {first:?}, after {grown:?}"
    );

    // Scale-down: the Machine marked for deletion goes, with its Node, and no other.
    let (chosen, chosen_node) = first
        .iter()
        .next()
        .map(|(m, n)| (m.clone(), n.clone()))
        .context("no Machine to choose")?;
    capi.patch(
        Kind::Machine,
        &chosen,
        json!({ "metadata": { "annotations": { DELETE_MACHINE_ANNOTATION: "yes" } } }),
    )
    .await?;
    capi.patch(
        Kind::MachineDeployment,
        md,
        json!({ "spec": { "replicas": 3 } }),
    )
    .await?;
    let shrunk = machines_with_nodes(&cluster, &capi, md, &pool, "img-v1", 3).await?;
    let mut expected = grown.clone();
    expected.remove(&chosen);
    assert_eq!(shrunk, expected, "not exactly {chosen} was removed");
    let nodes: Api<Node> = Api::all(cluster.client());
    assert!(
        nodes.get_opt(&chosen_node).await?.is_none(),
        "Node {chosen_node} of the removed Machine {chosen} still exists"
    );
    Ok(())
}
