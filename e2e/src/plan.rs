//! NodeUpdatePlans as a user sees them: created from JSON, read as JSON (not through molt's
//! Rust types), and removed after a test.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::molt::{TEST_LABEL, marks};
use crate::{Cluster, unique_name};

/// The NodeUpdatePlan resource, used untyped: the tests read status as the
/// JSON a user sees, not through molt's Rust types.
pub fn plan_resource() -> ApiResource {
    ApiResource {
        group: "molt.dev".into(),
        version: "v1alpha1".into(),
        api_version: "molt.dev/v1alpha1".into(),
        kind: "NodeUpdatePlan".into(),
        plural: "nodeupdateplans".into(),
    }
}

pub fn plans(client: Client) -> Api<DynamicObject> {
    Api::all_with(client, &plan_resource())
}

/// A NodeUpdatePlan carrying the test's label. `spec` is the plan's spec as a
/// user would write it.
pub fn plan_object(name: &str, test_id: &str, spec: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "molt.dev/v1alpha1",
        "kind": "NodeUpdatePlan",
        "metadata": { "name": name, "labels": { TEST_LABEL: test_id } },
        "spec": spec,
    }))?)
}

/// The plan's status as JSON (Null when the plan or its status is missing).
pub fn status(plan: &DynamicObject) -> &Value {
    plan.data.get("status").unwrap_or(&Value::Null)
}

/// `status.summary.updated`: old nodes replaced so far.
pub fn updated(plan: &DynamicObject) -> u64 {
    status(plan)
        .pointer("/summary/updated")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// `status.phase`, if any.
pub fn phase(plan: &DynamicObject) -> Option<&str> {
    status(plan).get("phase").and_then(Value::as_str)
}

/// Whether the plan has ended, whichever way: `Succeeded`, `RolledBack`, `Halted` or `Failed`.
pub fn ended(plan: &DynamicObject) -> bool {
    matches!(
        phase(plan),
        Some("Succeeded" | "RolledBack" | "Halted" | "Failed")
    )
}

/// The condition of the given type, if present.
pub fn condition<'a>(plan: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    status(plan)
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// Events about the plan (molt records them in `default`, the plan being
/// cluster-scoped; all namespaces are searched).
pub async fn plan_events(client: Client, plan: &str) -> Result<Vec<Event>> {
    let events: Api<Event> = Api::all(client);
    let list = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name={plan},involvedObject.kind=NodeUpdatePlan"
        )))
        .await
        .context("listing the plan's Events")?;
    Ok(list.items)
}

/// A unique id for one test: its `molt.dev/test` label value.
pub fn test_id(prefix: &str) -> String {
    unique_name(prefix)
}

/// Removes, when dropped, the plans a test created (finalizers stripped, since
/// molt may be dead by then) and the nodes molt provisioned for them.
pub struct PlanCleanup {
    client: Client,
    plans: Vec<String>,
}

impl PlanCleanup {
    pub fn new(cluster: &Cluster) -> Self {
        Self {
            client: cluster.client(),
            plans: Vec::new(),
        }
    }

    /// Registers a plan (and the nodes labelled `molt.dev/plan=<name>`).
    pub fn track(&mut self, plan: &str) {
        self.plans.push(plan.to_string());
    }
}

async fn cleanup_plans(client: Client, names: Vec<String>) -> Result<()> {
    let api = plans(client.clone());
    let nodes: Api<Node> = Api::all(client);
    for name in &names {
        if api.get_opt(name).await?.is_some() {
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .ok();
            api.delete(name, &DeleteParams::default()).await.ok();
        }
        let provisioned = nodes
            .list(&ListParams::default().labels(&format!("{}={name}", marks::PLAN_LABEL)))
            .await?;
        for node in provisioned.items {
            nodes
                .delete(&node.name_any(), &DeleteParams::default())
                .await
                .ok();
        }
    }
    Ok(())
}

impl Drop for PlanCleanup {
    fn drop(&mut self) {
        let client = self.client.clone();
        let names = std::mem::take(&mut self.plans);
        let handle = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cleanup_plans(client, names))
        });
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("e2e plan cleanup failed: {e:#}"),
            Err(_) => eprintln!("e2e plan cleanup thread panicked"),
        }
    }
}

/// The names in `status.batches[*].<field>` (e.g. `oldNodes`, `newNodes`).
pub fn batch_nodes(plan: &DynamicObject, field: &str) -> Vec<String> {
    status(plan)
        .get("batches")
        .and_then(Value::as_array)
        .map(|bs| {
            bs.iter()
                .filter_map(|b| b.get(field).and_then(Value::as_array))
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Labels of a simple equality selector, as a `matchLabels` map.
pub fn match_labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
