//! A MachineDeployment's Machines and their Nodes: listed, scaled, marked for deletion, and
//! waited for until Cluster API and kwok-machine have done their part.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::json;

use super::objects::{DELETE_MACHINE_ANNOTATION, DEPLOYMENT_NAME_LABEL, Kind, condition, field};
use super::{CapiCluster, node_ref};
use crate::{POOL_LABEL, eventually, is_node_ready};

/// What the Machines of a MachineDeployment should come to.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// How many Machines.
    pub count: usize,
    /// The value of their Nodes' pool label ([`POOL_LABEL`], set in the template's `nodeLabels`).
    pub pool: &'a str,
    /// Their Nodes' `osImage`.
    pub image: &'a str,
}

impl CapiCluster {
    /// The Machines of the MachineDeployment `md`.
    pub async fn deployment_machines(&self, md: &str) -> Result<Vec<DynamicObject>> {
        let selector = format!("{DEPLOYMENT_NAME_LABEL}={md}");
        Ok(self
            .api(Kind::Machine)
            .list(&ListParams::default().labels(&selector))
            .await?
            .items)
    }

    /// Sets the MachineDeployment's `replicas`.
    pub async fn scale(&self, md: &str, replicas: u32) -> Result<()> {
        let patch = json!({ "spec": { "replicas": replicas } });
        self.patch(Kind::MachineDeployment, md, patch).await?;
        Ok(())
    }

    /// Annotates the Machine `cluster.x-k8s.io/delete-machine`: it goes first when its MachineSet
    /// scales down.
    pub async fn mark_for_deletion(&self, machine: &str) -> Result<()> {
        let patch = json!({ "metadata": { "annotations": { DELETE_MACHINE_ANNOTATION: "yes" } } });
        self.patch(Kind::Machine, machine, patch).await?;
        Ok(())
    }

    /// Waits until the MachineDeployment `md` has exactly `expected.count` Machines, none
    /// deleting, each Running and Ready with a Node; and until the pool's Nodes are exactly those,
    /// each Ready, with its Machine's provider ID, the expected image and the Machines'
    /// Kubernetes version. Returns each Machine's Node.
    pub async fn wait_for_machines(
        &self,
        md: &str,
        expected: &Expected<'_>,
    ) -> Result<BTreeMap<String, String>> {
        let what = format!(
            "{} Running Machines of {md}, each with its Ready Node",
            expected.count
        );
        eventually(&what, || async {
            let machines = self
                .deployment_machines(md)
                .await
                .map_err(|e| e.to_string())?;
            let selector = format!("{POOL_LABEL}={}", expected.pool);
            let nodes = Api::<Node>::all(self.client())
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?
                .items;
            self.check_machines(&machines, &nodes, expected).map(Some)
        })
        .await
    }

    fn check_machines(
        &self,
        machines: &[DynamicObject],
        nodes: &[Node],
        expected: &Expected<'_>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut machine_nodes = BTreeMap::new();
        // Node → the provider ID its Machine reports.
        let mut provider_ids = BTreeMap::new();
        for m in machines {
            let name = m.name_any();
            let node = match (m.metadata.deletion_timestamp.is_some(), node_ref(m)) {
                (true, _) => return Err(format!("Machine {name} is being deleted")),
                (false, None) => return Err(format!("Machine {name} has no nodeRef yet")),
                (false, Some(node)) => node.to_string(),
            };
            if field(m, "/status/phase") != Some("Running") || condition(m, "Ready") != Some("True")
            {
                return Err(format!(
                    "Machine {name} is not Running and Ready: {:?}",
                    m.data
                ));
            }
            provider_ids.insert(
                node.clone(),
                field(m, "/spec/providerID").map(str::to_string),
            );
            machine_nodes.insert(name, node);
        }
        if machines.len() != expected.count {
            return Err(format!("{} Machines: {machine_nodes:?}", machines.len()));
        }
        let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        let referenced: BTreeSet<String> = machine_nodes.values().cloned().collect();
        if names != referenced {
            return Err(format!(
                "pool Nodes {names:?}, Machines' Nodes {referenced:?}"
            ));
        }
        for n in nodes {
            let info = n.status.as_ref().and_then(|s| s.node_info.as_ref());
            let id = n.spec.as_ref().and_then(|s| s.provider_id.clone());
            if !is_node_ready(n)
                || id.is_none()
                || provider_ids.get(&n.name_any()) != Some(&id)
                || info.map(|i| i.os_image.as_str()) != Some(expected.image)
                || info.map(|i| i.kubelet_version.as_str()) != Some(self.version())
            {
                return Err(format!(
                    "Node {} is not as its Machine says: {n:?}",
                    n.name_any()
                ));
            }
        }
        Ok(machine_nodes)
    }
}
