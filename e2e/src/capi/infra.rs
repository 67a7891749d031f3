//! The test-only Cluster API infrastructure provider's resources (`infrastructure.molt.dev/v1alpha1`):
//! `KwokCluster`, `KwokMachine` and `KwokMachineTemplate`, and the kwok Node a KwokMachine
//! stands for.
//!
//! They follow the v1beta2 InfraCluster and InfraMachine contracts as far as Cluster API reads
//! them (`internal/contract/infrastructure_{cluster,machine}.go`): the CRDs carry the label
//! `cluster.x-k8s.io/v1beta2: v1alpha1`; a KwokCluster holds `spec.controlPlaneEndpoint`; the
//! provider reports `status.initialization.provisioned` for both, and `spec.providerID` for a
//! machine; a template holds a machine spec under `spec.template.spec`, which a MachineSet clones
//! into each new KwokMachine. The `kwok-machine` controller (`src/bin/kwok-machine.rs`) acts on
//! them.

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{FAULT_LABEL, Fault, kwok_node};

/// API group of the test infrastructure provider.
pub const GROUP: &str = "infrastructure.molt.dev";
/// Its only version.
pub const VERSION: &str = "v1alpha1";
/// The label through which Cluster API learns which of a provider's versions implements which
/// contract (`cluster.x-k8s.io/<contract>: <versions>`).
pub const CONTRACT_LABEL: &str = "cluster.x-k8s.io/v1beta2";
/// The finalizer the controller keeps on a KwokMachine until its Node is gone.
pub const FINALIZER: &str = "infrastructure.molt.dev/kwok-machine";

/// The infrastructure of a workload cluster whose API server is the local cluster's: nothing to
/// provision but its address. (Cluster API refuses a Cluster without an infrastructure, control
/// plane or topology reference.)
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "infrastructure.molt.dev",
    version = "v1alpha1",
    kind = "KwokCluster",
    plural = "kwokclusters",
    namespaced,
    status = "ProvisioningStatus",
    doc = "The infrastructure of a workload cluster of the test infrastructure provider."
)]
#[serde(rename_all = "camelCase")]
pub struct KwokClusterSpec {
    /// The API server of the workload cluster.
    pub control_plane_endpoint: ApiEndpoint,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApiEndpoint {
    pub host: String,
    pub port: i32,
}

/// A simulated machine: a kwok Node named after the KwokMachine.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.molt.dev",
    version = "v1alpha1",
    kind = "KwokMachine",
    plural = "kwokmachines",
    namespaced,
    status = "ProvisioningStatus",
    doc = "A machine of the test infrastructure provider: a kwok Node named after it."
)]
#[serde(rename_all = "camelCase")]
pub struct KwokMachineSpec {
    /// `kwok://<name>`, set by the controller once the Node exists; Cluster API matches the
    /// Node by it.
    #[serde(
        rename = "providerID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_id: Option<String>,
    /// The Node's `status.nodeInfo.osImage`: the image the machine runs.
    pub os_image: String,
    /// The Node's `sim.molt.dev/fault` label (`not-ready`, `crashloop`, `node-not-ready`), so a
    /// bad image is just a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Labels of the Node, besides the ones every kwok node has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_labels: BTreeMap<String, String>,
    /// Taints of the Node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_taints: Vec<Taint>,
    /// Capacity (= allocatable) of the Node: `cpu`, `memory`, `pods`; 4 CPUs, 16Gi and 110
    /// pods when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, String>,
}

/// What the controller reports of a KwokCluster or KwokMachine.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ProvisioningStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Initialization {
    /// The infrastructure exists (for a machine: its Node), and Cluster API may go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<bool>,
}

/// `status.initialization.provisioned` of a KwokCluster or KwokMachine.
pub fn provisioned(status: Option<&ProvisioningStatus>) -> bool {
    status
        .and_then(|s| s.initialization.as_ref())
        .and_then(|i| i.provisioned)
        .unwrap_or(false)
}

/// The machine a MachineSet clones for each new Machine.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "infrastructure.molt.dev",
    version = "v1alpha1",
    kind = "KwokMachineTemplate",
    plural = "kwokmachinetemplates",
    namespaced,
    doc = "A template of KwokMachines, referenced by a MachineDeployment or MachineSet."
)]
pub struct KwokMachineTemplateSpec {
    pub template: KwokMachineTemplateResource,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KwokMachineTemplateResource {
    pub spec: KwokMachineSpec,
}

impl KwokMachineSpec {
    /// A healthy machine running `os_image`.
    pub fn new(os_image: &str) -> Self {
        Self {
            os_image: os_image.to_string(),
            ..Self::default()
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.node_labels.insert(key.into(), value.into());
        self
    }

    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault.label_value().into());
        self
    }

    pub fn taint(mut self, taint: Taint) -> Self {
        self.node_taints.push(taint);
        self
    }
}

/// The Node for the KwokMachine `spec`, named `name`, with the kubelet version of its Machine
/// (Cluster API holds a Machine not up to date while its Node reports another version).
pub fn node(name: &str, spec: &KwokMachineSpec, kubelet_version: &str) -> Result<Node> {
    let mut labels = spec.node_labels.clone();
    if let Some(fault) = &spec.fault {
        labels.insert(FAULT_LABEL.into(), fault.clone());
    }
    let mut resources = json!({ "cpu": "4", "memory": "16Gi", "pods": "110" });
    for (k, v) in &spec.capacity {
        resources[k] = json!(v);
    }
    let mut node = kwok_node(name, labels, resources, &spec.os_image, kubelet_version)?;
    if !spec.node_taints.is_empty()
        && let Some(s) = node.spec.as_mut()
    {
        s.taints = Some(spec.node_taints.clone());
    }
    Ok(node)
}

/// The CRDs, labelled with the contract they implement.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        KwokCluster::crd(),
        KwokMachine::crd(),
        KwokMachineTemplate::crd(),
    ]
    .into_iter()
    .map(|mut crd| {
        crd.metadata
            .labels
            .get_or_insert_default()
            .insert(CONTRACT_LABEL.into(), VERSION.into());
        crd
    })
    .collect()
}

/// [`crds`] as a YAML stream, for `kubectl apply`.
pub fn crds_yaml() -> Result<String> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KWOK_NODE_ANNOTATION, kwok_provider_id};

    #[test]
    fn a_machine_spec_becomes_its_node() {
        let mut spec = KwokMachineSpec::new("img-v2")
            .label("pool", "a")
            .fault(Fault::CrashLoop)
            .taint(Taint {
                key: "k".into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        spec.capacity.insert("cpu".into(), "2".into());
        let node = node("m-1", &spec, "v1.35.4").unwrap();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("pool").map(String::as_str), Some("a"));
        assert_eq!(
            labels.get(FAULT_LABEL).map(String::as_str),
            Some("crashloop")
        );
        assert_eq!(
            labels.get("kubernetes.io/hostname").map(String::as_str),
            Some("m-1")
        );
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get(KWOK_NODE_ANNOTATION).map(String::as_str),
            Some("fake")
        );
        let node_spec = node.spec.clone().unwrap_or_default();
        assert_eq!(node_spec.provider_id, Some(kwok_provider_id("m-1")));
        assert_eq!(node_spec.taints.map(|t| t.len()), Some(1));
        let status = node.status.unwrap_or_default();
        let info = status.node_info.unwrap_or_default();
        assert_eq!(
            (info.os_image.as_str(), info.kubelet_version.as_str()),
            ("img-v2", "v1.35.4")
        );
        let capacity = status.capacity.unwrap_or_default();
        assert_eq!(capacity.get("cpu").map(|q| q.0.as_str()), Some("2"));
        assert_eq!(capacity.get("pods").map(|q| q.0.as_str()), Some("110"));
    }

    #[test]
    fn the_crds_carry_the_contract_label() {
        let crds = crds();
        assert_eq!(crds.len(), 3);
        for crd in crds {
            let labels = crd.metadata.labels.unwrap_or_default();
            assert_eq!(
                labels.get(CONTRACT_LABEL).map(String::as_str),
                Some(VERSION)
            );
            assert_eq!(crd.spec.group, GROUP);
        }
    }
}
