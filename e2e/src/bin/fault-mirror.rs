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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
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

fn ready_file_from_args() -> anyhow::Result<Option<PathBuf>> {
    let mut args = std::env::args().skip(1);
    let mut ready = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ready-file" => {
                ready =
                    Some(PathBuf::from(args.next().ok_or_else(|| {
                        anyhow::anyhow!("--ready-file needs a path")
                    })?));
            }
            // How e2e/cluster.sh learns where cargo put the binary it just built.
            "--print-path" => {
                println!("{}", std::env::current_exe()?.display());
                std::process::exit(0);
            }
            other => {
                anyhow::bail!(
                    "unknown argument {other:?}; usage: fault-mirror [--ready-file PATH | --print-path]"
                )
            }
        }
    }
    Ok(ready)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ready_file = ready_file_from_args()?;
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

    let run = controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|res| async move {
            if let Err(e) = res {
                eprintln!("fault-mirror: {e}");
            }
        });
    let ready = async move {
        // Store::wait_until_ready wakes only one of several concurrent
        // waiters (the controller waits on it too), so ask again now and then.
        loop {
            match tokio::time::timeout(Duration::from_millis(200), pod_store.wait_until_ready())
                .await
            {
                Ok(res) => break res.map_err(|e| anyhow::anyhow!("pod cache: {e}"))?,
                Err(_) => continue,
            }
        }
        if let Some(path) = ready_file {
            std::fs::write(&path, b"ready\n")?;
        }
        eprintln!("fault-mirror: watching nodes and pods");
        anyhow::Ok(())
    };
    let ready = tokio::spawn(async move {
        if let Err(e) = ready.await {
            eprintln!("fault-mirror: {e}");
            std::process::exit(1);
        }
    });
    run.await;
    ready.abort();
    Ok(())
}
