//! The kwok provider: new nodes are Node objects that kwok simulates.
//!
//! A node carrying kwok's annotation is adopted by the kwok controller, which reports it Ready
//! and runs its pods. Removing the node deletes the object; the pod garbage collector removes its pods.

use super::{NodeProvisioner, ProvisionError};
use crate::engine::NewNode;
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

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
    labels.insert("kubernetes.io/hostname".into(), n.name.clone());
    labels.insert("type".into(), "kwok".into());
    let mut annotations = n.annotations.clone();
    annotations.insert(KWOK_NODE_ANNOTATION.into(), "fake".into());
    annotations.insert("node.alpha.kubernetes.io/ttl".into(), "0".into());
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": n.name, "labels": labels, "annotations": annotations},
        "spec": {"providerID": format!("kwok://{}", n.name), "taints": n.taints},
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

impl NodeProvisioner for KwokProvisioner {
    fn create<'a>(&'a self, node: &'a NewNode) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            let object = node_object(node)?;
            match self.nodes.create(&PostParams::default(), &object).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>> {
        async move {
            match self.nodes.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }
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
}
