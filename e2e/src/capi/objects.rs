//! Cluster API's own objects (`cluster.x-k8s.io/v1beta2`), used untyped as a user writes and
//! reads them: the kinds, the labels and annotations the tests rely on, the fields they read, and
//! a MachineDeployment as the Cluster API suites write it.

use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::infra;

/// Cluster API's core group and the version it stores.
pub const GROUP: &str = "cluster.x-k8s.io";
pub const VERSION: &str = "v1beta2";

/// The cluster an object belongs to.
pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// The MachineDeployment a MachineSet or Machine belongs to.
pub const DEPLOYMENT_NAME_LABEL: &str = "cluster.x-k8s.io/deployment-name";
/// Marks a control-plane Machine.
pub const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
/// A Machine so annotated goes first when its MachineSet scales down.
pub const DELETE_MACHINE_ANNOTATION: &str = "cluster.x-k8s.io/delete-machine";
/// The bootstrap data Secret every Machine names: there is no bootstrap provider, and Cluster
/// API does not read the Secret (kwok needs no bootstrap data).
pub const BOOTSTRAP_SECRET: &str = "noop-bootstrap";

/// A kind of Cluster API's core group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cluster,
    Machine,
    MachineSet,
    MachineDeployment,
    MachineHealthCheck,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cluster => "Cluster",
            Kind::Machine => "Machine",
            Kind::MachineSet => "MachineSet",
            Kind::MachineDeployment => "MachineDeployment",
            Kind::MachineHealthCheck => "MachineHealthCheck",
        }
    }

    pub fn resource(self) -> ApiResource {
        let kind = self.name();
        ApiResource {
            group: GROUP.into(),
            version: VERSION.into(),
            api_version: format!("{GROUP}/{VERSION}"),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
        }
    }

    /// The objects of this kind in `namespace`.
    pub fn api(self, client: Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client, namespace, &self.resource())
    }
}

/// The Machine that owns `obj` (an infrastructure machine), once Cluster API has set it as the
/// controller owner.
pub fn owning_machine(obj: &impl ResourceExt) -> Option<String> {
    obj.owner_references()
        .iter()
        .find(|o| o.kind == "Machine" && o.api_version.starts_with(&format!("{GROUP}/")))
        .map(|o| o.name.clone())
}

/// A field of an untyped object by JSON pointer (`/status/nodeRef/name`), as a string.
pub fn field<'a>(obj: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    obj.data.pointer(pointer).and_then(Value::as_str)
}

/// The status (`True`, `False`, `Unknown`) of the condition `type_` in `status.conditions`.
pub fn condition<'a>(obj: &'a DynamicObject, type_: &str) -> Option<&'a str> {
    obj.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .get("status")?
        .as_str()
}

/// The Node a Machine reports (`status.nodeRef.name`).
pub fn node_ref(machine: &DynamicObject) -> Option<&str> {
    field(machine, "/status/nodeRef/name")
}

/// The reference a Machine or Machine template makes to a KwokMachine or KwokMachineTemplate.
pub fn infrastructure_ref(kind: &str, name: &str) -> Value {
    json!({ "apiGroup": infra::GROUP, "kind": kind, "name": name })
}

/// A MachineDeployment of `replicas` Machines of the cluster `cluster`, from the
/// KwokMachineTemplate `template`, at Kubernetes `version` (the version kwok-machine's Nodes then
/// report, so Machines read up to date). Its strategy is `OnDelete`: Cluster API replaces no
/// Machine on its own; a template change reaches only Machines created afterwards.
pub fn machine_deployment(
    cluster: &str,
    name: &str,
    replicas: u32,
    template: &str,
    version: &str,
) -> Value {
    let labels = json!({ CLUSTER_NAME_LABEL: cluster, DEPLOYMENT_NAME_LABEL: name });
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "MachineDeployment",
        "metadata": { "name": name, "labels": { CLUSTER_NAME_LABEL: cluster } },
        "spec": {
            "clusterName": cluster,
            "replicas": replicas,
            "selector": { "matchLabels": labels },
            "rollout": { "strategy": { "type": "OnDelete" } },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "clusterName": cluster,
                    "version": version,
                    "bootstrap": { "dataSecretName": BOOTSTRAP_SECRET },
                    "infrastructureRef": infrastructure_ref("KwokMachineTemplate", template)
                }
            }
        }
    })
}
