//! The Cluster API test stand on the real Cluster API controllers: a MachineDeployment of
//! KwokMachines gets its Machines and Nodes, grows by exactly the Machines asked for, and shrinks
//! by exactly the Machine marked for deletion, with its Node. These are the moves molt's Cluster
//! API provider makes.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use molt_e2e::capi::{CapiCluster, Expected, KwokMachineSpec};
use molt_e2e::{Cluster, POOL_LABEL, unique_name};

#[tokio::test]
async fn machine_deployment_grows_and_shrinks_by_exactly_the_machines_asked_for() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let ns = cluster.namespace("capi-stand").await?;
    let capi = CapiCluster::create(&cluster, &ns).await?;
    let pool = unique_name("capi-pool");
    let md = "md-0";
    let spec = KwokMachineSpec::new("img-v1").label(POOL_LABEL, &pool);
    capi.create_template("img-v1", spec).await?;
    capi.create_machine_deployment(md, 3, "img-v1").await?;
    let expect = |count| Expected {
        count,
        pool: &pool,
        image: "img-v1",
    };
    let first = capi.wait_for_machines(md, &expect(3)).await?;

    // Surge: one more replica is one more Machine; none of the first three goes.
    capi.scale(md, 4).await?;
    let grown = capi.wait_for_machines(md, &expect(4)).await?;
    assert!(
        first.keys().all(|m| grown.contains_key(m)),
        "growing replicas removed a Machine: before {first:?}, after {grown:?}"
    );

    // Scale-down: the Machine marked for deletion goes, with its Node, and no other.
    let (chosen, chosen_node) = first.iter().next().context("no Machine to choose")?;
    capi.mark_for_deletion(chosen).await?;
    capi.scale(md, 3).await?;
    let shrunk = capi.wait_for_machines(md, &expect(3)).await?;
    let mut expected = grown.clone();
    expected.remove(chosen);
    assert_eq!(shrunk, expected, "not exactly {chosen} was removed");
    let nodes: Api<Node> = Api::all(cluster.client());
    assert!(
        nodes.get_opt(chosen_node).await?.is_none(),
        "Node {chosen_node} of the removed Machine {chosen} still exists"
    );
    Ok(())
}
