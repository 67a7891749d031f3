//! The Cluster API stand of a test: the Cluster API manager and the kwok-machine provider running
//! on the local cluster (`e2e/cluster.sh capi-up`, once per test process), and a workload cluster
//! of the test's own in its namespace.
//!
//! The workload cluster is the local cluster itself ("self-hosted"): a `Cluster` on a
//! `KwokCluster` that holds only the API server's address as `controlPlaneEndpoint`, its
//! `<cluster>-kubeconfig` Secret holding the local cluster's admin kubeconfig, and one
//! control-plane Machine whose kwok Node lets Cluster API set `ControlPlaneInitialized`, which
//! worker Machines wait for. There is no control-plane or bootstrap provider.

use std::fmt::Debug;
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, Config, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::infra::{KwokCluster, KwokMachine, KwokMachineSpec, KwokMachineTemplate};
use super::objects::{
    BOOTSTRAP_SECRET, CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, Kind, condition, infrastructure_ref,
    machine_deployment,
};
use crate::cluster::run_cluster_script;
use crate::fixtures::cleanup_in_background;
use crate::{Cluster, TestNamespace, ensure_cluster, eventually, tools, unique_name, wait_for};

static ENSURED: Mutex<bool> = Mutex::new(false);

/// Makes sure the Cluster API manager and the kwok-machine provider run on the local cluster.
///
/// `e2e/cluster.sh capi-up` runs once per process, after the cluster is ensured: it returns at
/// once when both run, and otherwise installs the CRDs and webhooks and starts them (building the
/// manager first when it is not cached). With `MOLT_E2E_KUBECONFIG` set, Cluster API is taken to
/// run on that cluster already.
pub fn ensure_capi() -> Result<()> {
    ensure_cluster()?;
    if std::env::var_os("MOLT_E2E_KUBECONFIG").is_some() {
        return Ok(());
    }
    let mut ensured = ENSURED
        .lock()
        .map_err(|_| anyhow!("Cluster API start-up lock poisoned"))?;
    if !*ensured {
        run_cluster_script("capi-up")?;
        *ensured = true;
    }
    Ok(())
}

/// The Kubernetes release of the local control plane, e.g. `v1.35.4`: the version the tests'
/// Machines ask for and their Nodes report.
pub fn kubernetes_version() -> Result<String> {
    let go_mod = crate::paths::workspace_file("e2e/tools/kubernetes/go.mod");
    tools::module_version(&go_mod, "k8s.io/kubernetes")
}

/// A workload cluster in a test's namespace; deleted (with everything Cluster API made for it)
/// on drop.
pub struct CapiCluster {
    name: String,
    namespace: String,
    version: String,
    client: Client,
    config: Config,
}

impl CapiCluster {
    /// Starts Cluster API if needed, creates the cluster in `ns` and waits until its control
    /// plane is initialized.
    pub async fn create(cluster: &Cluster, ns: &TestNamespace) -> Result<Self> {
        ensure_capi()?;
        let capi = Self {
            name: unique_name("capi"),
            namespace: ns.name().to_string(),
            version: kubernetes_version()?,
            client: cluster.client(),
            config: cluster.config.clone(),
        };
        capi.create_kubeconfig_secret(cluster).await?;
        let url = cluster.config.cluster_url.clone();
        let (host, port) = (
            url.host().unwrap_or("127.0.0.1"),
            url.port_u16().unwrap_or(443),
        );
        capi.create_typed::<KwokCluster>(json!({
            "metadata": { "name": capi.name },
            "spec": { "controlPlaneEndpoint": { "host": host, "port": port } }
        }))
        .await?;
        capi.create_object(
            Kind::Cluster,
            json!({
                "metadata": { "name": capi.name },
                "spec": { "infrastructureRef": infrastructure_ref("KwokCluster", &capi.name) }
            }),
        )
        .await?;
        capi.create_control_plane_machine().await?;
        wait_for(
            &capi.api(Kind::Cluster),
            &capi.name,
            "the cluster's control plane to be initialized",
            |c| c.and_then(|c| condition(c, "ControlPlaneInitialized")) == Some("True"),
        )
        .await?;
        Ok(capi)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// An administrator client of the local cluster.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The Kubernetes version of its Machines.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The objects of a Cluster API kind in the cluster's namespace.
    pub fn api(&self, kind: Kind) -> Api<DynamicObject> {
        kind.api(self.client.clone(), &self.namespace)
    }

    /// Creates an object of `kind` from `object` (metadata and spec) in the namespace.
    pub async fn create_object(&self, kind: Kind, mut object: Value) -> Result<DynamicObject> {
        let resource = kind.resource();
        object["apiVersion"] = json!(resource.api_version);
        object["kind"] = json!(resource.kind);
        let object: DynamicObject = serde_json::from_value(object)?;
        let name = object.metadata.name.clone().unwrap_or_default();
        self.api(kind)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating {} {name}", resource.kind))
    }

    /// Merge-patches the object `name` of `kind` with `patch`.
    pub async fn patch(&self, kind: Kind, name: &str, patch: Value) -> Result<DynamicObject> {
        self.api(kind)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("patching {} {name}", kind.name()))
    }

    /// Creates the KwokMachineTemplate `name` whose machines have `spec`.
    pub async fn create_template(&self, name: &str, spec: KwokMachineSpec) -> Result<()> {
        self.create_typed::<KwokMachineTemplate>(json!({
            "metadata": { "name": name },
            "spec": { "template": { "spec": spec } }
        }))
        .await?;
        Ok(())
    }

    /// Creates a `K` from `object` in the namespace.
    async fn create_typed<K>(&self, object: Value) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
        K::DynamicType: Default,
    {
        let object: K = serde_json::from_value(object)?;
        let name = object.meta().name.clone().unwrap_or_default();
        Api::<K>::namespaced(self.client.clone(), &self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating {} {name}", K::kind(&Default::default())))
    }

    /// Creates an `OnDelete` MachineDeployment of `replicas` Machines from the KwokMachineTemplate
    /// `template` (see [`machine_deployment`]).
    pub async fn create_machine_deployment(
        &self,
        name: &str,
        replicas: u32,
        template: &str,
    ) -> Result<DynamicObject> {
        let md = machine_deployment(&self.name, name, replicas, template, &self.version);
        self.create_object(Kind::MachineDeployment, md).await
    }

    async fn create_kubeconfig_secret(&self, cluster: &Cluster) -> Result<()> {
        let kubeconfig = std::fs::read_to_string(cluster.kubeconfig())
            .with_context(|| format!("reading {}", cluster.kubeconfig().display()))?;
        self.create_typed::<Secret>(json!({
            "metadata": {
                "name": format!("{}-kubeconfig", self.name),
                "labels": { CLUSTER_NAME_LABEL: self.name }
            },
            "type": "cluster.x-k8s.io/secret",
            "stringData": { "value": kubeconfig }
        }))
        .await?;
        Ok(())
    }

    /// One control-plane Machine on a KwokMachine whose Node carries the control-plane role
    /// label and taint, as a kubeadm node would.
    async fn create_control_plane_machine(&self) -> Result<()> {
        let name = format!("{}-cp", self.name);
        let role = "node-role.kubernetes.io/control-plane";
        let spec = KwokMachineSpec::new("molt-sim")
            .label(role, "")
            .taint(serde_json::from_value(
                json!({ "key": role, "effect": "NoSchedule" }),
            )?);
        self.create_typed::<KwokMachine>(json!({ "metadata": { "name": name }, "spec": spec }))
            .await?;
        self.create_object(
            Kind::Machine,
            json!({
                "metadata": {
                    "name": name,
                    "labels": { CLUSTER_NAME_LABEL: self.name, CONTROL_PLANE_LABEL: "" }
                },
                "spec": {
                    "clusterName": self.name,
                    "version": self.version,
                    "bootstrap": { "dataSecretName": BOOTSTRAP_SECRET },
                    "infrastructureRef": infrastructure_ref("KwokMachine", &name)
                }
            }),
        )
        .await?;
        Ok(())
    }
}

/// Deletes the Cluster and waits until Cluster API has deleted everything it made for it
/// (MachineDeployments, MachineSets, Machines and, through kwok-machine, their Nodes).
async fn delete_cluster(client: Client, namespace: String, name: String) -> Result<()> {
    let clusters = Kind::Cluster.api(client, &namespace);
    match clusters.delete(&name, &Default::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("deleting Cluster {name}")),
    }
    eventually(&format!("Cluster {namespace}/{name} to be deleted"), || {
        let clusters = clusters.clone();
        let name = name.clone();
        async move {
            match clusters.get_opt(&name).await {
                Ok(None) => Ok(Some(())),
                Ok(Some(_)) => Err("it still exists".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}

impl Drop for CapiCluster {
    fn drop(&mut self) {
        let (namespace, name) = (self.namespace.clone(), self.name.clone());
        cleanup_in_background(self.config.clone(), move |client| {
            delete_cluster(client, namespace, name)
        });
    }
}
