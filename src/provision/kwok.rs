//! The kwok provider: new nodes are Node objects that kwok simulates.
//!
//! A node carrying kwok's annotation is adopted by the kwok controller, which reports it Ready
//! and runs its pods. Removing the node deletes the object; the pod garbage collector removes its pods.

use super::{Provider, ProvisionError};
use crate::api::{Target, keys};
use crate::engine::NewNode;
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The label a kubelet sets to its node's name.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Annotation that hands a node to kwok.
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// Creates nodes for kwok to simulate.
pub struct KwokProvisioner {
    nodes: Api<Node>,
}

impl KwokProvisioner {
    pub fn new(client: Client) -> Self {
        Self {
            nodes: Api::all(client),
        }
    }
}

/// The Node object for `n`: its labels, taints and capacity, kwok's annotation, and the image
/// reported where a real kubelet would report it.
pub fn node_object(n: &NewNode) -> Result<Node, serde_json::Error> {
    let mut labels = n.labels.clone();
    let mut metadata = json!({"labels": {}, "annotations": {}});
    if n.generate_name {
        // Named by the API server, as Cluster API and Karpenter name theirs.
        metadata["generateName"] = json!(format!("{}-", n.slot));
    } else {
        metadata["name"] = json!(n.name);
        labels.insert(HOSTNAME_LABEL.into(), n.name.clone());
    }
    labels.insert("type".into(), "kwok".into());
    let mut annotations = n.annotations.clone();
    annotations.insert(KWOK_NODE_ANNOTATION.into(), "fake".into());
    annotations.insert("node.alpha.kubernetes.io/ttl".into(), "0".into());
    metadata["labels"] = json!(labels);
    metadata["annotations"] = json!(annotations);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": {"providerID": format!("kwok://{}", n.slot), "taints": n.taints},
        "status": {
            "capacity": n.capacity,
            "allocatable": n.allocatable,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "osImage": n.image,
                "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                "machineID": "", "systemUUID": ""
            }
        }
    }))
}

impl KwokProvisioner {
    /// Nodes that fill `slot`, read from the API server (not a cache, so a node created a moment
    /// ago is seen and never made twice).
    async fn filling(&self, slot: &str) -> Result<Vec<Node>, ProvisionError> {
        let selector = format!("{}={slot}", keys::SLOT_LABEL);
        Ok(self
            .nodes
            .list(&ListParams::default().labels(&selector))
            .await?
            .items)
    }

    async fn label_hostname(&self, node: &Node) -> Result<(), ProvisionError> {
        let name = kube::ResourceExt::name_any(node);
        if kube::ResourceExt::labels(node).get(HOSTNAME_LABEL) == Some(&name) {
            return Ok(());
        }
        let patch = json!({"metadata": {"labels": {HOSTNAME_LABEL: name}}});
        self.nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), ProvisionError> {
        match self.nodes.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Provider for KwokProvisioner {
    fn create<'a>(&'a self, node: &'a NewNode) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            if node.generate_name {
                // The name is the API server's; the hostname label a kubelet would set (and that
                // topology spread and anti-affinity rely on) follows once it is known, also after
                // a crash between the two calls.
                let made = match self.filling(&node.slot).await?.into_iter().next() {
                    Some(n) => n,
                    None => {
                        let object = node_object(node)?;
                        self.nodes.create(&PostParams::default(), &object).await?
                    }
                };
                return self.label_hostname(&made).await;
            }
            let object = node_object(node)?;
            match self.nodes.create(&PostParams::default(), &object).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn remove_slot<'a>(
        &'a self,
        slot: &'a str,
        node: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            if let Some(name) = node {
                return self.delete(name).await;
            }
            for n in self.filling(slot).await? {
                self.delete(&kube::ResourceExt::name_any(&n)).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn remove_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>> {
        self.delete(name).boxed()
    }

    fn on_target(&self, node: &Node, target: &Target) -> bool {
        runs(node, target)
    }
}

/// kwok's answer to [`Provider::on_target`]: the image molt recorded on the node when it made it
/// is the target. kwok simulates no OS, so molt's own mark is the only record there is.
pub fn runs(node: &Node, target: &Target) -> bool {
    super::recorded_image(
        kube::ResourceExt::labels(node),
        kube::ResourceExt::annotations(node),
    ) == Some(target.image.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::keys::image_label_value;
    use std::collections::BTreeMap;

    #[test]
    fn the_node_object_carries_what_the_engine_decided_and_kwok_needs() {
        let image = "ghcr.io/siderolabs/installer:v1.9.0";
        let n = NewNode {
            slot: "p-abcde-a0b0n0".into(),
            generate_name: false,
            name: "p-abcde-a0b0n0".into(),
            image: image.into(),
            replaces: "old-0".into(),
            labels: BTreeMap::from([
                ("pool".into(), "workers".into()),
                ("molt.dev/image-hash".into(), image_label_value(image)),
            ]),
            annotations: BTreeMap::from([
                ("molt.dev/replaces".into(), "old-0".into()),
                ("molt.dev/image".into(), image.into()),
            ]),
            taints: vec![k8s_openapi::api::core::v1::Taint {
                key: "dedicated".into(),
                effect: "NoSchedule".into(),
                value: Some("db".into()),
                ..Default::default()
            }],
            capacity: BTreeMap::from([("cpu".into(), "4".into())]),
            allocatable: BTreeMap::from([("cpu".into(), "3900m".into())]),
        };
        let node = node_object(&n).unwrap();
        let labels = node.metadata.labels.clone().unwrap();
        assert_eq!(labels["molt.dev/image-hash"], image_label_value(image));
        assert_eq!(labels["kubernetes.io/hostname"], "p-abcde-a0b0n0");
        let annotations = node.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[KWOK_NODE_ANNOTATION], "fake");
        assert_eq!(annotations["molt.dev/image"], image);
        assert_eq!(
            node.spec.clone().unwrap().taints.unwrap()[0].key,
            "dedicated"
        );
        let status = node.status.unwrap();
        assert_eq!(status.allocatable.unwrap()["cpu"].0, "3900m");
        assert_eq!(status.node_info.unwrap().os_image, image);
    }

    #[test]
    fn a_node_runs_the_target_when_molts_image_mark_names_it() {
        let target = |image: &str| Target {
            image: image.into(),
        };
        let node = |v: serde_json::Value| -> Node { serde_json::from_value(v).unwrap() };
        let made = node(json!({"metadata": {"name": "n",
            "annotations": {"molt.dev/image": "registry/os:v2"},
            "labels": {"molt.dev/image-hash": image_label_value("registry/os:v2")}}}));
        let legacy = node(json!({"metadata": {"name": "n", "labels": {"molt.dev/image": "v2"}}}));
        let unmarked = node(json!({"metadata": {"name": "n"},
            "status": {"nodeInfo": {"osImage": "v2", "architecture": "", "bootID": "",
                "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                "kubeletVersion": "", "machineID": "", "operatingSystem": "", "systemUUID": ""}}}));
        assert!(runs(&made, &target("registry/os:v2")));
        assert!(!runs(&made, &target("registry/os:v3")));
        assert!(runs(&legacy, &target("v2")));
        assert!(
            !runs(&unmarked, &target("v2")),
            "kwok reads molt's mark, not the simulated osImage"
        );
    }
}
