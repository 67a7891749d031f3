//! Everything the stories need before a plan is applied: the CRD, a molt process, the worker pool
//! and the shop's workloads; and the cleanup of an earlier demo.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use molt_e2e::molt::{Molt, MoltOptions, annotation, is_unschedulable};
pub use molt_e2e::workloads::Budget;
use molt_e2e::workloads::{Container, DeploymentBuilder, pdb};
use molt_e2e::{Cluster, NOT_READY_TAINT, NodePoolSpec, has_taint, is_node_ready, wait_for};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::plan;

/// Label on every plan and node of the demo (new nodes inherit it from the nodes they replace).
pub const DEMO_LABEL: &str = "app.kubernetes.io/part-of";
pub const DEMO_LABEL_VALUE: &str = "molt-demo";
/// The namespace of the demo's workloads.
pub const NAMESPACE: &str = "shop";
/// The pool label the sample plans select.
pub const POOL: (&str, &str) = ("pool", "workers");
/// Deployments of the shop: name, image, replicas, PDB (`minAvailable` or `maxUnavailable`).
pub const DEPLOYMENTS: [(&str, &str, i32, Budget); 3] = [
    ("web", "nginx:1.27", 6, Budget::MaxUnavailable(1)),
    (
        "api",
        "ghcr.io/example/shop-api:2.4.1",
        4,
        Budget::MinAvailable(3),
    ),
    ("cart", "redis:7.4", 3, Budget::MinAvailable(2)),
];
pub const DAEMONSET: &str = "node-exporter";

/// Paths the demo prints for the reader to try kubectl on the cluster.
pub struct Tools {
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Tools {
    pub fn new(cluster: &Cluster) -> Result<Self> {
        Ok(Self {
            kubectl: molt_e2e::tools::kubectl()?,
            kubeconfig: cluster.kubeconfig().to_path_buf(),
        })
    }
}

/// Installs (or updates) the CRD and waits until it is served.
pub async fn install_crd(cluster: &Cluster) -> Result<()> {
    molt_e2e::molt::install_crd(cluster).await?;
    // Right after the CRD is created, requests for plans are answered 429 ("storage is
    // (re)initializing") for a moment.
    let plans = plan::api(&cluster.client());
    molt_e2e::eventually("the NodeUpdatePlan API to be served", || {
        let plans = plans.clone();
        async move {
            match plans.list(&ListParams::default().limit(1)).await {
                Ok(_) => Ok(Some(())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}

/// Starts `molt run` in the background as the cluster's administrator, logging to
/// `<cluster dir>/logs/molt-demo.log`. It reconciles only the demo's plans (`--plan-selector`);
/// it is killed when dropped (also on an error or Ctrl-C).
pub async fn start_molt(cluster: &Cluster) -> Result<Molt> {
    let logs = molt_e2e::cluster_dir().join("logs");
    std::fs::create_dir_all(&logs)?;
    Molt::start_with(
        cluster,
        "demo",
        MoltOptions {
            instance: Some("molt-demo".into()),
            plan_selector: Some(format!("{DEMO_LABEL}={DEMO_LABEL_VALUE}")),
            as_admin: true,
            log: Some(logs.join("molt-demo.log")),
            env: vec![("MOLT_LOG".into(), "info".into())],
            ..Default::default()
        },
    )
    .await
}

/// Removes what an earlier (perhaps interrupted) demo left: its plans (molt, already running,
/// uncordons what they cordoned), the shop namespace and the worker nodes.
pub async fn clean_up_earlier_demo(client: &Client) -> Result<bool> {
    let plans = plan::api(client);
    let selector = format!("{DEMO_LABEL}={DEMO_LABEL_VALUE}");
    let lp = ListParams::default().labels(&selector);
    let nodes: Api<Node> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let had_plans = !plans.list(&lp).await?.items.is_empty();
    let had_nodes = !nodes.list(&lp).await?.items.is_empty();
    let had_ns = namespaces.get_opt(NAMESPACE).await?.is_some();
    if !(had_plans || had_nodes || had_ns) {
        return Ok(false);
    }
    plan::delete_all(client, Duration::from_secs(120)).await?;
    match namespaces
        .delete(NAMESPACE, &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e).context("deleting the shop namespace"),
    }
    molt_e2e::eventually("the old shop namespace to be gone", || {
        let namespaces = namespaces.clone();
        async move {
            match namespaces.get_opt(NAMESPACE).await {
                Ok(None) => Ok(Some(())),
                Ok(Some(_)) => Err("still there".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await?;
    for n in nodes.list(&lp).await?.items {
        match nodes.delete(&n.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).context("deleting an old demo node"),
        }
    }
    Ok(true)
}

/// Creates the worker pool (`worker-1` … `worker-<count>`, label `pool=workers`) and waits
/// until the scheduler can use every node.
pub async fn create_pool(client: &Client, count: usize) -> Result<Vec<String>> {
    let spec = NodePoolSpec::new("workers", count)
        .label(POOL.0, POOL.1)
        .label(DEMO_LABEL, DEMO_LABEL_VALUE)
        .label("topology.kubernetes.io/zone", "sim-a")
        .label("node.kubernetes.io/instance-type", "sim.large");
    let nodes: Api<Node> = Api::all(client.clone());
    let mut names = Vec::new();
    for i in 1..=count {
        let name = format!("worker-{i}");
        let mut node = spec.node("workers", &name)?;
        let zone = ["sim-a", "sim-b", "sim-c"][i % 3];
        node.labels_mut()
            .insert("topology.kubernetes.io/zone".into(), zone.into());
        nodes
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating node {name}"))?;
        names.push(name);
    }
    for name in &names {
        wait_for(&nodes, name, "the node to be Ready and untainted", |n| {
            n.is_some_and(|n| is_node_ready(n) && !has_taint(n, NOT_READY_TAINT))
        })
        .await?;
    }
    Ok(names)
}

fn container(name: &str, image: &str, port: i32, cpu: &str, memory: &str) -> Container {
    Container::new(name, image)
        .port(port, None)
        .readiness(5, Some(3))
        .liveness(10)
        .requests(cpu, memory)
        .memory_limit()
}

fn deployment(name: &str, image: &str, replicas: i32) -> Result<Deployment> {
    let pool = BTreeMap::from([(POOL.0.to_string(), POOL.1.to_string())]);
    DeploymentBuilder::new(name, replicas, &pool)
        .namespace(NAMESPACE)
        .surge()
        .spread_loosely()
        .grace_seconds(10)
        .container(container(name, image, 8080, "250m", "256Mi"))
        .build()
}

fn daemonset() -> Value {
    let agent = container(
        DAEMONSET,
        "quay.io/prometheus/node-exporter:v1.8.2",
        9100,
        "50m",
        "64Mi",
    );
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": DAEMONSET, "namespace": NAMESPACE, "labels": { "app": DAEMONSET } },
        "spec": {
            "selector": { "matchLabels": { "app": DAEMONSET } },
            "template": {
                "metadata": { "labels": { "app": DAEMONSET } },
                "spec": {
                    "nodeSelector": { POOL.0: POOL.1 },
                    "containers": [agent.to_json()]
                }
            }
        }
    })
}

async fn apply<K>(api: &Api<K>, object: impl serde::Serialize) -> Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + DeserializeOwned + serde::Serialize,
{
    let object = serde_json::to_value(object)?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply("molt-demo").force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    Ok(())
}

/// Creates the shop: three Deployments with PDBs and readiness probes, and a DaemonSet.
pub async fn create_workloads(client: &Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    apply(
        &namespaces,
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NAMESPACE } }),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NAMESPACE);
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    // Pods can only be created once the namespace's default ServiceAccount exists.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), NAMESPACE);
    wait_for(&sas, "default", "the shop's default ServiceAccount", |s| {
        s.is_some()
    })
    .await?;
    for (name, image, replicas, budget) in DEPLOYMENTS {
        apply(&deployments, deployment(name, image, replicas)?).await?;
        apply(&pdbs, pdb(&format!("{name}-pdb"), name, budget)?).await?;
    }
    apply(&daemonsets, daemonset()).await?;
    Ok(())
}

/// Ready/desired per workload, e.g. `web 6/6`.
pub async fn workload_readiness(client: &Client) -> Result<Vec<(String, i32, i32)>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let mut out = Vec::new();
    for d in deployments.list(&ListParams::default()).await?.items {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        out.push((d.name_any(), ready, want));
    }
    for d in daemonsets.list(&ListParams::default()).await?.items {
        let status = d.status.clone().unwrap_or_default();
        out.push((
            d.name_any(),
            status.number_ready,
            status.desired_number_scheduled,
        ));
    }
    Ok(out)
}

/// Waits until every workload of the shop is Ready, all its pods on schedulable pool nodes.
pub async fn wait_workloads_ready(client: &Client) -> Result<()> {
    let c = client.clone();
    molt_e2e::eventually("every shop workload to be Ready", move || {
        let c = c.clone();
        async move {
            let ready = workload_readiness(&c).await.map_err(|e| e.to_string())?;
            let pending: Vec<String> = ready
                .iter()
                .filter(|(_, r, w)| r < w || *w == 0)
                .map(|(n, r, w)| format!("{n} {r}/{w}"))
                .collect();
            if ready.len() == DEPLOYMENTS.len() + 1 && pending.is_empty() {
                Ok(Some(()))
            } else {
                Err(format!("not yet Ready: {}", pending.join(", ")))
            }
        }
    })
    .await
}

/// One row per pool node: name, image, schedulable, pods on it.
pub struct NodeRow {
    pub name: String,
    pub image: String,
    pub cordoned: bool,
    pub ready: bool,
    pub pods: usize,
}

pub async fn pool_nodes(client: &Client) -> Result<Vec<NodeRow>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pods = pods.list(&ListParams::default()).await?.items;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        if p.metadata.deletion_timestamp.is_none()
            && let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone())
        {
            *counts.entry(n).or_default() += 1;
        }
    }
    let lp = ListParams::default().labels(&format!("{}={}", POOL.0, POOL.1));
    let mut rows: Vec<NodeRow> = nodes
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| NodeRow {
            name: n.name_any(),
            image: annotation(&n, "molt.dev/image")
                .unwrap_or("(original)")
                .to_string(),
            cordoned: is_unschedulable(&n),
            ready: is_node_ready(&n),
            pods: counts.get(&n.name_any()).copied().unwrap_or(0),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}
