//! Everything the stories need before a plan is applied: the CRD, a molt process, the worker pool
//! and the shop's workloads; and the cleanup of an earlier demo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use molt_e2e::{Cluster, NOT_READY_TAINT, NodePoolSpec, has_taint, is_node_ready, wait_for};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

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

#[derive(Clone, Copy)]
pub enum Budget {
    MinAvailable(i32),
    MaxUnavailable(i32),
}

/// Paths the demo uses.
pub struct Tools {
    pub repo: PathBuf,
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Tools {
    pub fn new(cluster: &Cluster) -> Result<Self> {
        let repo = plan::repo_dir().to_path_buf();
        let kubectl = match std::env::var_os("MOLT_KUBECTL") {
            Some(k) => PathBuf::from(k),
            None => {
                // The kubectl `make e2e-tools` built, at the version the scripts pin.
                let out = std::process::Command::new("bash")
                    .arg("-c")
                    .arg("source e2e/scripts/common.sh && bin_path kubectl")
                    .current_dir(&repo)
                    .output()
                    .context("locating kubectl")?;
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        if !kubectl.is_file() {
            bail!(
                "kubectl not found at {} (run `make e2e-tools`)",
                kubectl.display()
            );
        }
        Ok(Self {
            repo,
            kubectl,
            kubeconfig: cluster.kubeconfig().to_path_buf(),
        })
    }

    /// `kubectl <args>` against the demo cluster; fails with kubectl's message.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = std::process::Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .output()
            .with_context(|| format!("running kubectl {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A YAML manifest as JSON (kubectl does the parsing).
    pub fn manifest_json(&self, path: &Path) -> Result<Value> {
        let path = path.display().to_string();
        let json = self.kubectl(&["create", "--dry-run=client", "-o", "json", "-f", &path])?;
        serde_json::from_str(&json).with_context(|| format!("reading {path}"))
    }
}

/// Installs (or updates) the CRD and waits until it is served.
pub async fn install_crd(client: &Client, tools: &Tools) -> Result<()> {
    let crd = tools
        .repo
        .join("crds")
        .join("nodeupdateplans.molt.dev.yaml");
    tools.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &crd.display().to_string(),
    ])?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(
        &crds,
        "nodeupdateplans.molt.dev",
        "the CRD to be Established",
        |c| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        },
    )
    .await?;
    // Right after the CRD is created, requests for plans are answered 429 ("storage is
    // (re)initializing") for a moment.
    let plans = plan::api(client);
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

/// The molt process the demo runs; killed when dropped (also on an error or Ctrl-C).
pub struct Molt {
    child: Child,
    pub log: PathBuf,
}

impl Molt {
    /// Starts `molt run` in the background, logging to `<cluster dir>/logs/molt-demo.log`.
    /// It reconciles only the demo's plans (`--plan-selector`).
    pub fn start(tools: &Tools) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the demo binary")?;
        let molt = match std::env::var_os("MOLT_BIN") {
            Some(m) => PathBuf::from(m),
            None => exe
                .parent()
                .map(|d| d.join("molt"))
                .ok_or_else(|| anyhow!("no directory for {}", exe.display()))?,
        };
        if !molt.is_file() {
            bail!(
                "molt not found at {} (run `cargo build -p molt`)",
                molt.display()
            );
        }
        let logs = molt_e2e::cluster_dir().join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join("molt-demo.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(&molt)
            .args([
                "run",
                "--plan-selector",
                &format!("{DEMO_LABEL}={DEMO_LABEL_VALUE}"),
                "--instance",
                "molt-demo",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .env("KUBECONFIG", &tools.kubeconfig)
            .env("MOLT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", molt.display()))?;
        Ok(Self { child, log })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Fails if molt exited (its log tells why).
    pub fn check(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("molt exited ({status}); see {}", self.log.display());
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        self.child.kill().await?;
        Ok(())
    }
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

fn container(name: &str, image: &str, port: i32, cpu: &str, memory: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "ports": [{ "containerPort": port }],
        "readinessProbe": {
            "httpGet": { "path": "/healthz", "port": port },
            "periodSeconds": 5,
            "failureThreshold": 3
        },
        "livenessProbe": {
            "httpGet": { "path": "/healthz", "port": port },
            "periodSeconds": 10
        },
        "resources": {
            "requests": { "cpu": cpu, "memory": memory },
            "limits": { "memory": memory }
        }
    })
}

fn deployment(name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": NAMESPACE, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "strategy": { "rollingUpdate": { "maxUnavailable": 0, "maxSurge": 1 } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": { POOL.0: POOL.1 },
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": { "matchLabels": { "app": name } }
                    }],
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container(name, image, 8080, "250m", "256Mi")]
                }
            }
        }
    })
}

fn pdb(app: &str, budget: Budget) -> Value {
    let rule = match budget {
        Budget::MinAvailable(n) => json!({ "minAvailable": n }),
        Budget::MaxUnavailable(n) => json!({ "maxUnavailable": n }),
    };
    let mut spec = json!({ "selector": { "matchLabels": { "app": app } } });
    if let (Some(spec), Some(rule)) = (spec.as_object_mut(), rule.as_object()) {
        spec.extend(rule.clone());
    }
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": { "name": format!("{app}-pdb"), "namespace": NAMESPACE },
        "spec": spec
    })
}

fn daemonset() -> Value {
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
                    "containers": [container(DAEMONSET, "quay.io/prometheus/node-exporter:v1.8.2", 9100, "50m", "64Mi")]
                }
            }
        }
    })
}

async fn apply<K>(api: &Api<K>, object: Value) -> Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + DeserializeOwned + serde::Serialize,
{
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
        apply(&deployments, deployment(name, image, replicas)).await?;
        apply(&pdbs, pdb(name, budget)).await?;
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
            image: n
                .annotations()
                .get("molt.dev/image")
                .cloned()
                .unwrap_or_else(|| "(original)".into()),
            cordoned: n
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            ready: is_node_ready(&n),
            pods: counts.get(&n.name_any()).copied().unwrap_or(0),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}
