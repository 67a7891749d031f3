//! Reading and changing plain Kubernetes objects: node and pod conditions, marks, taints and
//! listings.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::FAULT_ANNOTATION;

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

/// Node names and labels of the nodes matching a label selector.
pub async fn nodes_matching(client: Client, selector: &str) -> Result<Vec<Node>> {
    let nodes: Api<Node> = Api::all(client);
    Ok(nodes
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing nodes {selector}"))?
        .items)
}

pub fn is_unschedulable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

pub fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.labels().get(key).map(String::as_str)
}

pub fn annotation<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.annotations().get(key).map(String::as_str)
}

/// Cordons a node the way a person does (`kubectl cordon`): no molt mark.
pub async fn cordon_by_hand(client: Client, node: &str) -> Result<()> {
    set_unschedulable(client, node, true).await
}

pub async fn set_unschedulable(client: Client, node: &str, value: bool) -> Result<()> {
    let patch = json!({"spec": {"unschedulable": value}});
    patch_node(client, node, patch, || {
        format!("setting unschedulable={value} on {node}")
    })
    .await
}

/// A merge patch of a node; `what` names it in an error.
async fn patch_node(
    client: Client,
    node: &str,
    patch: serde_json::Value,
    what: impl FnOnce() -> String,
) -> Result<()> {
    Api::<Node>::all(client)
        .patch(node, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(what)?;
    Ok(())
}

/// Waits until no node matches `selector` (`what` names the wait in a failure).
pub async fn wait_nodes_gone(client: Client, selector: &str, what: &str) -> Result<()> {
    crate::wait::eventually(what, || async {
        let left = nodes_matching(client.clone(), selector)
            .await
            .map_err(|e| e.to_string())?;
        if left.is_empty() {
            Ok(Some(()))
        } else {
            Err(format!(
                "{:?}",
                left.iter().map(|n| n.name_any()).collect::<Vec<_>>()
            ))
        }
    })
    .await
}

/// Sets (`Some`) or removes (`None`) node labels, as `kubectl label` does.
pub async fn label_node(client: Client, node: &str, labels: &[(&str, Option<&str>)]) -> Result<()> {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let patch = json!({"metadata": {"labels": labels}});
    patch_node(client, node, patch, || format!("labelling node {node}")).await
}

/// Sets one condition of a node's status (`type_` = "True"/"False"), as its kubelet would
/// report it: through the status subresource, merged by type with the others. kwok's node
/// Stages rewrite the conditions only of a node that is not Ready yet, or on a heartbeat at
/// least ten minutes apart (`e2e/kwok/stages.yaml`), so the condition stays for a test's length.
pub async fn set_node_condition(
    client: Client,
    node: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<()> {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let condition = json!({
        "type": type_, "status": status, "reason": reason,
        "message": format!("{type_} set by the e2e test"),
        "lastHeartbeatTime": now, "lastTransitionTime": now
    });
    Api::<Node>::all(client)
        .patch_status(
            node,
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"conditions": [condition]}})),
        )
        .await
        .with_context(|| format!("setting {type_}={status} on node {node}"))?;
    Ok(())
}
