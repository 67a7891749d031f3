//! kwok-machine: the test-only Cluster API infrastructure provider of the local cluster.
//!
//! A `KwokCluster` has nothing to provision: it is reported provisioned at once. For each `KwokMachine` (`infrastructure.molt.dev/v1alpha1`) whose Machine exists and has its
//! bootstrap data, it creates a kwok Node named after it (`providerID kwok://<name>`, the
//! machine's labels, taints, capacity, `nodeInfo.osImage` and fault label, and the Machine's
//! Kubernetes version as kubelet version), then reports `spec.providerID` and
//! `status.initialization.provisioned=true`, which is all Cluster API reads of an infrastructure
//! machine. A deleted KwokMachine has its Node deleted before its finalizer goes. The Node is
//! created once: after that it is the cluster's, as a real machine is the cloud's.
//!
//! Usage: `kwok-machine [--ready-file PATH | --print-crds]`, with the cluster taken from
//! `KUBECONFIG`. `--print-crds` prints the CRDs (`e2e/cluster.sh capi-up` applies them).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use molt_e2e::capi::infra::{self, KwokCluster, KwokMachine};
use molt_e2e::capi::{Kind, field};
use molt_e2e::kwok_provider_id;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
enum MachineError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("building the Node: {0}")]
    Node(#[from] anyhow::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<MachineError>>),
}

struct Ctx {
    client: Client,
}

async fn reconcile(machine: Arc<KwokMachine>, ctx: Arc<Ctx>) -> Result<Action, MachineError> {
    let namespace = machine.namespace().unwrap_or_default();
    let machines: Api<KwokMachine> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&machines, infra::FINALIZER, machine, |event| async {
        match event {
            Event::Apply(m) => provision(&m, &ctx).await,
            Event::Cleanup(m) => deprovision(&m, &ctx).await,
        }
    })
    .await
    .map_err(|e| MachineError::Finalizer(Box::new(e)))
}

/// Creates the Node once the Machine is there with its bootstrap data, then reports it.
async fn provision(machine: &KwokMachine, ctx: &Ctx) -> Result<Action, MachineError> {
    if infra::provisioned(machine.status.as_ref()) {
        return Ok(Action::await_change());
    }
    let (name, namespace) = (machine.name_any(), machine.namespace().unwrap_or_default());
    // Cluster API makes the Machine the owner once it reconciles it; that changes the
    // KwokMachine, which brings it back here.
    let Some(owner) = molt_e2e::capi::objects::owning_machine(machine) else {
        return Ok(Action::await_change());
    };
    let owner = Kind::Machine
        .api(ctx.client.clone(), &namespace)
        .get_opt(&owner)
        .await?;
    let Some(owner) = owner.filter(|m| field(m, "/spec/bootstrap/dataSecretName").is_some()) else {
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let version = field(&owner, "/spec/version").unwrap_or("fake");

    let node = infra::node(&name, &machine.spec, version)?;
    match Api::<Node>::all(ctx.client.clone())
        .create(&PostParams::default(), &node)
        .await
    {
        Ok(_) => eprintln!("kwok-machine: {namespace}/{name}: created Node {name}"),
        // Created by an earlier reconcile that did not get to report it.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let machines: Api<KwokMachine> = Api::namespaced(ctx.client.clone(), &namespace);
    let spec = json!({ "spec": { "providerID": kwok_provider_id(&name) } });
    machines
        .patch(&name, &PatchParams::default(), &Patch::Merge(&spec))
        .await?;
    report_provisioned(&machines, &name).await
}

/// A KwokCluster needs nothing: it is provisioned as soon as it exists.
async fn reconcile_cluster(
    cluster: Arc<KwokCluster>,
    ctx: Arc<Ctx>,
) -> Result<Action, MachineError> {
    if infra::provisioned(cluster.status.as_ref()) {
        return Ok(Action::await_change());
    }
    let namespace = cluster.namespace().unwrap_or_default();
    let clusters: Api<KwokCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    report_provisioned(&clusters, &cluster.name_any()).await
}

/// Sets `status.initialization.provisioned=true`.
async fn report_provisioned<K>(api: &Api<K>, name: &str) -> Result<Action, MachineError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let status = json!({ "status": { "initialization": { "provisioned": true } } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    eprintln!(
        "kwok-machine: {} {name}: provisioned",
        K::kind(&Default::default())
    );
    Ok(Action::await_change())
}

/// Deletes the machine's Node (if it is still the machine's).
async fn deprovision(machine: &KwokMachine, ctx: &Ctx) -> Result<Action, MachineError> {
    let name = machine.name_any();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let ours = nodes.get_opt(&name).await?.is_some_and(|n| {
        n.spec.and_then(|s| s.provider_id).as_deref() == Some(&kwok_provider_id(&name))
    });
    if ours {
        match nodes.delete(&name, &DeleteParams::default()).await {
            Ok(_) => eprintln!("kwok-machine: deleted Node {name}"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

fn error_policy<K: ResourceExt>(obj: Arc<K>, err: &MachineError, _ctx: Arc<Ctx>) -> Action {
    eprintln!("kwok-machine: {}: {err}; retrying", obj.name_any());
    Action::requeue(Duration::from_secs(1))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = molt_e2e::controller::args("kwok-machine", &["--print-crds"])?;
    if args.flags.iter().any(|f| f == "--print-crds") {
        print!("{}", infra::crds_yaml()?);
        return Ok(());
    }
    let client = Client::try_default().await?;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    let machines = Controller::new(
        Api::<KwokMachine>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = machines.store();
    let machines = machines
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .map(|r| r.map(drop).map_err(|e| e.to_string()));
    let clusters = Controller::new(Api::<KwokCluster>::all(client), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile_cluster, error_policy, ctx)
        .map(|r| r.map(drop).map_err(|e| e.to_string()));
    let run = futures::stream::select(machines, clusters);
    molt_e2e::controller::run("kwok-machine", run, store, args.ready_file).await;
    Ok(())
}
