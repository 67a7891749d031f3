//! fault-mirror: carries simulated node faults onto the pods of the local cluster.
//!
//! kwok Stages only see the object they act on, so a pod's Stage cannot read
//! its node's `sim.molt.dev/fault` label. This process, started by
//! `e2e/cluster.sh up` and running as long as the cluster does, keeps the pod
//! annotation `sim.molt.dev/fault` equal to that label on the pod's node
//! (`none` when the node has no fault). It reacts to pods being bound and to
//! node labels changing, whoever creates the node or the pod. The pod Stages in
//! `e2e/kwok/stages.yaml` start a pod only once it carries the annotation, so
//! a pod never flashes Ready on a faulty node.
//!
//! Usage: `fault-mirror [--ready-file PATH]`, with the cluster taken from
//! `KUBECONFIG`. The ready file is written once the pod cache is filled.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use molt_e2e::{FAULT_ANNOTATION, FAULT_LABEL, KWOK_NODE_ANNOTATION, NO_FAULT};

#[derive(Debug, thiserror::Error)]
enum MirrorError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: Client,
}

/// The annotation value a pod on `node` should carry, or `None` when the node
/// is not simulated by kwok (then its pods are left alone).
fn desired_fault(node: &Node) -> Option<String> {
    node.annotations().get(KWOK_NODE_ANNOTATION)?;
    Some(
        node.labels()
            .get(FAULT_LABEL)
            .cloned()
            .unwrap_or_else(|| NO_FAULT.to_string()),
    )
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, MirrorError> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (Some(node_name), Some(namespace)) = (
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        pod.namespace(),
    ) else {
        return Ok(Action::await_change());
    };
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let Some(node) = nodes.get_opt(node_name).await? else {
        return Ok(Action::await_change());
    };
    let Some(want) = desired_fault(&node) else {
        return Ok(Action::await_change());
    };
    if pod.annotations().get(FAULT_ANNOTATION) == Some(&want) {
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({ "metadata": { "annotations": { FAULT_ANNOTATION: want } } });
    match pods
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            eprintln!(
                "fault-mirror: {namespace}/{} on {node_name}: {FAULT_ANNOTATION}={want}",
                pod.name_any()
            );
            Ok(Action::await_change())
        }
        // The pod went away in the meantime: nothing to do.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(pod: Arc<Pod>, err: &MirrorError, _ctx: Arc<Ctx>) -> Action {
    eprintln!("fault-mirror: {}: {err}; retrying", pod.name_any());
    Action::requeue(Duration::from_secs(1))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = molt_e2e::controller::args("fault-mirror", &[])?;
    let client = Client::try_default().await?;

    // Only scheduled pods matter.
    let controller = Controller::new(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields("spec.nodeName!="),
    );
    let pod_store = controller.store();
    let mapper_store = pod_store.clone();
    let controller = controller.watches(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        move |node: Node| {
            let name = node.name_any();
            mapper_store
                .state()
                .into_iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        },
    );
    let run =
        controller
            .shutdown_on_signal()
            .run(reconcile, error_policy, Arc::new(Ctx { client }));
    molt_e2e::controller::run("fault-mirror", run, pod_store, args.ready_file).await;
    Ok(())
}
