//! End-to-end harness for molt: a real local control plane with kwok nodes.
//!
//! The cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//! kwok and the fault mirror) is run by `e2e/cluster.sh`; see
//! `docs/local-cluster.md`. This crate connects to it (starting it if needed),
//! gives each test an isolated namespace and its own pool of simulated nodes,
//! and waits for conditions with generous deadlines instead of sleeping.
//!
//! Tests share one cluster and run in parallel, so everything a test creates
//! is its own: pods are pinned to the test's node pool by a node selector
//! ([`NodePool::selector`]), and namespaces and nodes are removed on drop.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::await_condition;
use kube::{Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Node label that selects a simulated fault for the node and its pods.
pub const FAULT_LABEL: &str = "sim.molt.dev/fault";
/// Pod annotation the fault mirror keeps equal to the node's [`FAULT_LABEL`].
pub const FAULT_ANNOTATION: &str = "sim.molt.dev/fault";
/// Value of [`FAULT_ANNOTATION`] on pods of a healthy node.
pub const NO_FAULT: &str = "none";
/// Annotation that makes kwok manage a node (value `fake`).
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";
/// Label carried by every node of a [`NodePool`]; its value is the pool name.
pub const POOL_LABEL: &str = "sim.molt.dev/pool";

/// A simulated fault, keyed on the node label [`FAULT_LABEL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pods on the node run but never become Ready.
    PodNotReady,
    /// Pods on the node crash-loop; their restartCount keeps growing.
    CrashLoop,
    /// The node itself never becomes Ready.
    NodeNotReady,
}

impl Fault {
    /// The value of [`FAULT_LABEL`] for this fault.
    pub fn label_value(self) -> &'static str {
        match self {
            Fault::PodNotReady => "not-ready",
            Fault::CrashLoop => "crashloop",
            Fault::NodeNotReady => "node-not-ready",
        }
    }
}

/// How long waits last unless told otherwise: generous, as the machine may be
/// busy (two cores shared by the control plane, kwok and the tests).
/// `MOLT_E2E_TIMEOUT_SECS` overrides it.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("MOLT_E2E_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    Duration::from_secs(secs)
}

fn repo_dir() -> PathBuf {
    // e2e/ is one level below the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The state directory `e2e/cluster.sh` uses.
pub fn cluster_dir() -> PathBuf {
    std::env::var_os("MOLT_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_dir().join("target").join("e2e-cluster"))
}

static ENSURED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes sure the local cluster runs and returns its kubeconfig path.
///
/// With `MOLT_E2E_KUBECONFIG` set, that cluster is used as is. Otherwise
/// `e2e/cluster.sh ensure` runs once per process: it returns at once when the
/// cluster is up, and starts it (building what is missing) when it is not.
/// A cluster started this way keeps running; `make cluster-down` stops it.
pub fn ensure_cluster() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MOLT_E2E_KUBECONFIG") {
        return Ok(PathBuf::from(path));
    }
    let mut ensured = ENSURED
        .lock()
        .map_err(|_| anyhow!("cluster start-up lock poisoned"))?;
    if let Some(path) = ensured.as_ref() {
        return Ok(path.clone());
    }
    let script = repo_dir().join("e2e").join("cluster.sh");
    let mut command = std::process::Command::new("bash");
    command.arg(&script).arg("ensure");
    // Cargo builds the package's binaries next to the test executables'
    // deps/ directory; hand the fault mirror over instead of running cargo
    // again from inside a test.
    if let Some(mirror) = sibling_fault_mirror() {
        command.env("MOLT_FAULT_MIRROR_BIN", mirror);
    }
    let status = command
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} ensure failed ({status}); logs are in {}",
            script.display(),
            cluster_dir().join("logs").display()
        );
    }
    let path = cluster_dir().join("kubeconfig");
    *ensured = Some(path.clone());
    Ok(path)
}

fn sibling_fault_mirror() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let mirror = profile_dir.join("fault-mirror");
    mirror.is_file().then_some(mirror)
}

/// A connection to the local cluster as its administrator.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    config: Config,
    kubeconfig: PathBuf,
}

impl Cluster {
    /// Connects to the local cluster, starting it first if it is not running.
    pub async fn connect() -> Result<Self> {
        let kubeconfig = ensure_cluster()?;
        let kc = Kubeconfig::read_from(&kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig")?;
        // kube retries 429/503/504 answers by default, for up to minutes; a
        // refused eviction must reach the caller as the 429 it is.
        config.default_retry = false;
        let client = Client::try_from(config.clone()).context("building the client")?;
        client
            .apiserver_version()
            .await
            .context("the API server does not answer")?;
        Ok(Self {
            client,
            config,
            kubeconfig,
        })
    }

    /// An administrator client (group `system:masters`). It does not retry
    /// 429/503/504 answers, so tests see them as the API server sent them.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig written by `e2e/cluster.sh up`, e.g. for a molt process.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client acting as a ServiceAccount, with a fresh token from the
    /// TokenRequest API: requests go through RBAC like an in-cluster pod's.
    pub async fn client_for_service_account(&self, namespace: &str, name: &str) -> Result<Client> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let request: TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": { "expirationSeconds": 3600 }
        }))?;
        let token = sas
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for {namespace}/{name}"))?
            .status
            .map(|s| s.token)
            .ok_or_else(|| anyhow!("TokenRequest for {namespace}/{name} returned no token"))?;
        let mut config = self.config.clone();
        config.auth_info = serde_json::from_value::<AuthInfo>(json!({ "token": token }))?;
        Ok(Client::try_from(config)?)
    }

    /// Creates an isolated namespace named `molt-e2e-<prefix>-<suffix>` and
    /// waits until pods can be created in it (its default ServiceAccount exists).
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let name = unique_name(&format!("molt-e2e-{prefix}"));
        let namespaces: Api<Namespace> = Api::all(self.client());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { "molt.dev/e2e": "true" } }
        }))?;
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let ns = TestNamespace {
            name: name.clone(),
            client: self.client(),
            config: self.config.clone(),
            deleted: false,
        };
        let sas: Api<ServiceAccount> = Api::namespaced(self.client(), &name);
        wait_for(
            &sas,
            "default",
            "the namespace's default ServiceAccount",
            |sa| sa.is_some(),
        )
        .await?;
        Ok(ns)
    }

    /// Creates a pool of kwok nodes and waits until all of them are Ready
    /// (or, for [`Fault::NodeNotReady`], until kwok has reported them NotReady).
    pub async fn node_pool(&self, spec: NodePoolSpec) -> Result<NodePool> {
        let pool = unique_name(&spec.name);
        let nodes: Api<Node> = Api::all(self.client());
        let mut names = Vec::new();
        let mut created = NodePool {
            name: pool.clone(),
            nodes: Vec::new(),
            client: self.client(),
            config: self.config.clone(),
            deleted: false,
        };
        for i in 0..spec.count {
            let name = format!("{pool}-{i}");
            let node = spec.node(&pool, &name)?;
            nodes
                .create(&PostParams::default(), &node)
                .await
                .with_context(|| format!("creating node {name}"))?;
            names.push(name.clone());
            created.nodes.push(name);
        }
        // Wait for the state the scheduler acts on, not only the condition:
        // the node lifecycle controller derives the not-ready taint from the
        // Ready condition (and briefly drops the taint admission put on a new
        // node before kwok has reported any condition).
        for name in &names {
            if spec.fault == Some(Fault::NodeNotReady) {
                wait_for(&nodes, name, "the node to be NotReady and tainted", |n| {
                    n.is_some_and(|n| {
                        node_ready_status(n) == Some("False") && has_controller_not_ready_taint(n)
                    })
                })
                .await?;
            } else {
                wait_for(&nodes, name, "the node to be Ready and untainted", |n| {
                    n.is_some_and(|n| is_node_ready(n) && !has_taint(n, NOT_READY_TAINT))
                })
                .await?;
            }
        }
        Ok(created)
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A DNS-1123 name with a suffix unique across processes and runs.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mix = (std::process::id() as u64) << 32 ^ u64::from(nanos) ^ (u64::from(n) << 20);
    format!("{prefix}-{:06x}", mix % 0x100_0000)
}

/// What a [`NodePool`] looks like.
#[derive(Clone, Debug)]
pub struct NodePoolSpec {
    /// Prefix of the pool name; nodes are `<pool>-<i>`.
    pub name: String,
    /// Number of nodes.
    pub count: usize,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
    /// Capacity (= allocatable) of each node.
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    /// A simulated fault, set as the [`FAULT_LABEL`] node label.
    pub fault: Option<Fault>,
}

impl NodePoolSpec {
    /// `count` healthy nodes of 4 CPUs, 16 GiB and 110 pods each.
    pub fn new(name: &str, count: usize) -> Self {
        Self {
            name: name.to_string(),
            count,
            labels: BTreeMap::new(),
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: "110".into(),
            fault: None,
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn capacity(mut self, cpu: &str, memory: &str, pods: &str) -> Self {
        (self.cpu, self.memory, self.pods) = (cpu.into(), memory.into(), pods.into());
        self
    }

    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// The Node object for one member: a plain Node with kwok's annotation,
    /// exactly what any other client (molt's kwok provider included) creates.
    pub fn node(&self, pool: &str, name: &str) -> Result<Node> {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("kubernetes.io/os".into(), "linux".into()),
            ("kubernetes.io/arch".into(), "amd64".into()),
            ("type".into(), "kwok".into()),
            (POOL_LABEL.into(), pool.to_string()),
        ]);
        labels.extend(self.labels.clone());
        if let Some(fault) = self.fault {
            labels.insert(FAULT_LABEL.into(), fault.label_value().into());
        }
        let resources = json!({ "cpu": self.cpu, "memory": self.memory, "pods": self.pods });
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": { KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0" }
            },
            "spec": { "providerID": format!("kwok://{name}") },
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "fake",
                    "osImage": "molt-sim"
                }
            }
        }))?)
    }
}

/// Nodes created by [`Cluster::node_pool`]; deleted on drop (or by [`NodePool::delete`]).
pub struct NodePool {
    name: String,
    nodes: Vec<String>,
    client: Client,
    config: Config,
    deleted: bool,
}

impl NodePool {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// A node selector that pins pods to this pool.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(POOL_LABEL.to_string(), self.name.clone())])
    }

    /// The pool's label selector, for listing its nodes.
    pub fn label_selector(&self) -> String {
        format!("{POOL_LABEL}={}", self.name)
    }

    pub async fn delete(mut self) -> Result<()> {
        self.deleted = true;
        delete_nodes(&self.client, &self.nodes).await
    }
}

async fn delete_nodes(client: &Client, names: &[String]) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for name in names {
        match nodes.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting node {name}")),
        }
    }
    Ok(())
}

impl Drop for NodePool {
    fn drop(&mut self) {
        if !self.deleted {
            let names = self.nodes.clone();
            cleanup_in_background(self.config.clone(), move |client| async move {
                delete_nodes(&client, &names).await
            });
        }
    }
}

/// A namespace owned by one test; deleted on drop (or by [`TestNamespace::delete`]).
pub struct TestNamespace {
    name: String,
    client: Client,
    config: Config,
    deleted: bool,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    pub async fn delete(mut self) -> Result<()> {
        self.deleted = true;
        delete_namespace(&self.client, &self.name).await
    }
}

async fn delete_namespace(client: &Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting namespace {name}")),
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.deleted {
            let name = self.name.clone();
            cleanup_in_background(self.config.clone(), move |client| async move {
                delete_namespace(&client, &name).await
            });
        }
    }
}

/// Runs a cleanup on a runtime of its own (a test's runtime may be unwinding)
/// and waits for it; failures are printed, not raised.
fn cleanup_in_background<F, Fut>(config: Config, f: F)
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let client = Client::try_from(config)?;
            f(client).await
        })
    });
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("e2e cleanup failed: {e:#}"),
        Err(_) => eprintln!("e2e cleanup thread panicked"),
    }
}

// ---------------------------------------------------------------- waiting

/// Waits (watching, not polling) until `cond` holds for the named object, or
/// fails after [`default_timeout`] with the last state of the object.
/// `cond` receives `None` while the object does not exist.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    cond: impl Fn(Option<&K>) -> bool,
) -> Result<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    wait_for_within(api, name, what, default_timeout(), cond).await
}

/// [`wait_for`] with an explicit deadline.
pub async fn wait_for_within<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Fn(Option<&K>) -> bool,
) -> Result<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await;
    match waited {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => bail!("{name}: {what}: the object does not exist"),
        Ok(Err(e)) => Err(e).with_context(|| format!("{name}: watching for {what}")),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            bail!(
                "{name}: timed out after {}s waiting for {what}; last seen: {last:#?}",
                timeout.as_secs()
            )
        }
    }
}

/// Re-evaluates `check` until it yields `Some`, or fails after
/// [`default_timeout`] with the last message `check` gave. For conditions over
/// several objects (e.g. all pods of a Deployment); the interval only paces the
/// API calls, nothing is judged by time.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = tokio::time::Instant::now() + default_timeout();
    let mut last = String::from("(not evaluated)");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(msg) => last = msg,
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "timed out after {}s waiting for {what}; last: {last}",
                default_timeout().as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------- object helpers

/// Status of a node's Ready condition ("True", "False", "Unknown"), if any.
pub fn node_ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

pub fn is_node_ready(node: &Node) -> bool {
    node_ready_status(node) == Some("True")
}

/// Taint the node lifecycle controller keeps on nodes whose Ready condition is False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

pub fn has_taint(node: &Node, key: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == key))
}

/// The not-ready NoSchedule taint as set by the node lifecycle controller
/// (with a timeAdded; the copy admission puts on new nodes has none).
pub fn has_controller_not_ready_taint(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter().any(|t| {
                t.key == NOT_READY_TAINT && t.effect == "NoSchedule" && t.time_added.is_some()
            })
        })
}

/// Status of a pod condition ("True", "False"), if present.
pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_condition(pod, "Ready") == Some("True")
}

pub fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

pub fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Sum of the restart counts of the pod's containers.
pub fn pod_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// The live (not terminating) pods matching a label selector.
pub async fn live_pods(api: &Api<Pod>, selector: &str) -> Result<Vec<Pod>, String> {
    let pods = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| format!("listing pods {selector}: {e}"))?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// One line per pod: name, node, phase, Ready, restarts, fault annotation.
pub fn describe_pods(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            format!(
                "{} node={} phase={} ready={} restarts={} fault={}",
                p.name_any(),
                pod_node(p).unwrap_or("-"),
                pod_phase(p).unwrap_or("-"),
                pod_condition(p, "Ready").unwrap_or("-"),
                pod_restarts(p),
                p.annotations()
                    .get(FAULT_ANNOTATION)
                    .map(String::as_str)
                    .unwrap_or("-"),
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Deployment of `replicas` pods labelled `app=<name>`, pinned by
/// `node_selector`, spread at most one pod apart over nodes (hostname).
pub fn deployment(
    name: &str,
    replicas: i32,
    node_selector: &BTreeMap<String, String>,
) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": node_selector,
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": { "matchLabels": { "app": name } }
                    }],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "app",
                        "image": "registry.invalid/molt-e2e/app:1",
                        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } }
                    }]
                }
            }
        }
    }))?)
}

/// A PodDisruptionBudget for `app=<app>` with the given minAvailable.
pub fn pod_disruption_budget(
    name: &str,
    app: &str,
    min_available: i32,
) -> Result<PodDisruptionBudget> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": { "name": name },
        "spec": {
            "minAvailable": min_available,
            "selector": { "matchLabels": { "app": app } }
        }
    }))?)
}

pub mod checker;
pub mod molt;
pub mod scenario;
pub mod scrape;
pub mod tools;
pub mod workloads;
