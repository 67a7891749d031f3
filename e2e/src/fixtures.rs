//! What each test owns on the shared cluster: a namespace and a pool of kwok nodes, both
//! removed on drop, and unique names for them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Config, Resource};
use serde_json::json;

use crate::k8s::{
    NOT_READY_TAINT, has_controller_not_ready_taint, has_taint, is_node_ready, node_ready_status,
};
use crate::molt::marks;
use crate::{Cluster, wait_for};

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

impl Cluster {
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
        let mut labels = BTreeMap::from([(POOL_LABEL.to_string(), pool.to_string())]);
        labels.extend(self.labels.clone());
        if let Some(fault) = self.fault {
            labels.insert(FAULT_LABEL.into(), fault.label_value().into());
        }
        let resources = json!({ "cpu": self.cpu, "memory": self.memory, "pods": self.pods });
        kwok_node(name, labels, resources, "molt-sim", "fake")
    }
}

/// The provider ID of the kwok Node `name`: `kwok://<name>`.
pub fn kwok_provider_id(name: &str) -> String {
    format!("kwok://{name}")
}

/// A kwok Node as a kubelet would register it: kwok's annotation, the kubelet's standard labels
/// plus `labels`, `providerID kwok://<name>`, `resources` as capacity and allocatable, and the
/// image and kubelet version in its node info.
pub fn kwok_node(
    name: &str,
    labels: BTreeMap<String, String>,
    resources: serde_json::Value,
    os_image: &str,
    kubelet_version: &str,
) -> Result<Node> {
    let mut all = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), "amd64".into()),
        ("type".into(), "kwok".into()),
    ]);
    all.extend(labels);
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": all,
            "annotations": { KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0" }
        },
        "spec": { "providerID": kwok_provider_id(name) },
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": kubelet_version,
                "osImage": os_image
            }
        }
    }))?)
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
pub(crate) fn cleanup_in_background<F, Fut>(config: Config, f: F)
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

/// Creates a node in `pool` (as [`crate::NodePoolSpec::node`] would) with the
/// control-plane role label and taint. molt must never touch it even though
/// the plan's selector matches it. Removed by [`NodesCleanup`].
pub async fn create_control_plane_node(cluster: &Cluster, pool: &str) -> Result<String> {
    let name = unique_name(&format!("{pool}-cp"));
    let mut node = crate::NodePoolSpec::new(pool, 1)
        .label(marks::CONTROL_PLANE_LABEL, "")
        .node(pool, &name)?;
    if let Some(spec) = node.spec.as_mut() {
        spec.taints = Some(vec![serde_json::from_value(json!({
            "key": marks::CONTROL_PLANE_LABEL, "effect": "NoSchedule"
        }))?]);
    }
    let nodes: Api<Node> = Api::all(cluster.client());
    nodes
        .create(&PostParams::default(), &node)
        .await
        .with_context(|| format!("creating node {name}"))?;
    wait_for(&nodes, &name, "the control-plane node to be Ready", |n| {
        n.is_some_and(crate::is_node_ready)
    })
    .await?;
    Ok(name)
}

/// Deletes the named nodes on drop.
pub struct NodesCleanup {
    client: Client,
    pub names: Vec<String>,
}

impl NodesCleanup {
    pub fn new(cluster: &Cluster) -> Self {
        Self {
            client: cluster.client(),
            names: Vec::new(),
        }
    }
}

impl Drop for NodesCleanup {
    fn drop(&mut self) {
        let client = self.client.clone();
        let names = std::mem::take(&mut self.names);
        let handle = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let nodes: Api<Node> = Api::all(client);
                for name in names {
                    nodes.delete(&name, &DeleteParams::default()).await.ok();
                }
                Ok(())
            })
        });
        if !matches!(handle.join(), Ok(Ok(()))) {
            eprintln!("e2e node cleanup failed");
        }
    }
}
