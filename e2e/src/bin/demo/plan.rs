//! NodeUpdatePlans as the demo sees them: loading a sample, creating it, and reading its status.
//!
//! The demo reads plans as plain JSON through a `DynamicObject` API, the way any client that does
//! not link molt would, and deserializes only the status fields it shows.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::Value;

use crate::setup::{DEMO_LABEL, DEMO_LABEL_VALUE};

pub fn api(client: &Client) -> Api<DynamicObject> {
    molt_e2e::molt::plans(client.clone())
}

/// A plan manifest from `config/samples/`, as JSON.
pub fn load_sample(file: &str) -> Result<Value> {
    molt_e2e::molt::config_manifest(&format!("config/samples/{file}"))
}

/// Creates `manifest` under `name`, labelled so that only the demo's molt reconciles it.
pub async fn create(client: &Client, mut manifest: Value, name: &str) -> Result<DynamicObject> {
    let metadata = manifest
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("the plan manifest has no metadata"))?;
    metadata.insert("name".into(), Value::String(name.into()));
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(DEMO_LABEL.into(), Value::String(DEMO_LABEL_VALUE.into()));
    }
    let object: DynamicObject = serde_json::from_value(manifest)?;
    api(client)
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating NodeUpdatePlan {name}"))
}

/// Sets `spec.<section>.<field>` in a manifest.
pub fn set_spec(manifest: &mut Value, section: &str, field: &str, value: Value) -> Result<()> {
    let section = manifest
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("the plan manifest has no spec"))?
        .entry(section)
        .or_insert_with(|| Value::Object(Default::default()));
    section
        .as_object_mut()
        .ok_or_else(|| anyhow!("spec.{field}'s section is not an object"))?
        .insert(field.into(), value);
    Ok(())
}

/// Deletes every demo plan and waits until they are gone (molt's finalizer runs first).
pub async fn delete_all(client: &Client, timeout: Duration) -> Result<()> {
    let plans = api(client);
    let selector = format!("{DEMO_LABEL}={DEMO_LABEL_VALUE}");
    let lp = kube::api::ListParams::default().labels(&selector);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = plans.list(&lp).await.context("listing demo plans")?.items;
        if left.is_empty() {
            return Ok(());
        }
        for p in &left {
            if p.metadata.deletion_timestamp.is_none() {
                match plans.delete(&p.name_any(), &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e).context("deleting a demo plan"),
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let names: Vec<String> = left.iter().map(|p| p.name_any()).collect();
            bail!(
                "plans {} were not deleted within {}s (molt's finalizer removes them; is molt running?)",
                names.join(", "),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The part of a plan's status the demo shows.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    pub phase: Option<String>,
    pub conditions: Vec<Condition>,
    pub started_at: Option<Time>,
    pub completed_at: Option<Time>,
    pub summary: Summary,
    pub batches: Vec<Batch>,
    pub health: Option<Health>,
    pub blockers: Vec<Blocker>,
    pub failure: Option<Failure>,
    pub message: Option<String>,
    pub target_image: Option<String>,
}

impl Status {
    pub fn of(plan: &DynamicObject) -> Result<Self> {
        match plan.data.get("status") {
            Some(s) => serde_json::from_value(s.clone()).context("reading the plan's status"),
            None => Ok(Self::default()),
        }
    }

    pub fn phase(&self) -> &str {
        self.phase.as_deref().unwrap_or("-")
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: Option<Time>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Summary {
    pub nodes: u32,
    pub updated: u32,
    pub batches: u32,
    pub current_batch: u32,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Batch {
    pub index: u32,
    pub phase: String,
    pub old_nodes: Vec<String>,
    pub new_nodes: Vec<String>,
    pub provisioned_at: Option<Time>,
    pub ready_at: Option<Time>,
    pub drain_started_at: Option<Time>,
    pub drain_completed_at: Option<Time>,
    pub soak_started_at: Option<Time>,
    pub completed_at: Option<Time>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Health {
    pub verdict: String,
    pub tracked_pods: u32,
    pub unhealthy: Vec<Unhealthy>,
    pub unhealthy_count: u32,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Unhealthy {
    pub namespace: String,
    pub pod: String,
    pub node: String,
    pub reason: String,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Blocker {
    pub node: String,
    pub pod: Option<String>,
    pub reason: String,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Failure {
    pub reason: String,
    pub message: String,
    pub at: Option<Time>,
    pub batch: Option<u32>,
}

/// Seconds from `a` to `b`, when both are known.
pub fn secs(a: Option<&Time>, b: Option<&Time>) -> Option<f64> {
    let (a, b) = (a?, b?);
    Some(span(a.0, b.0))
}

/// Seconds from `a` to `b`.
pub fn span(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

/// `12s`, `1m05s`, or `-` when unknown.
pub fn human(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 1.0 => "<1s".into(),
        Some(s) if s < 60.0 => format!("{s:.0}s"),
        Some(s) => {
            let s = s.round() as u64;
            format!("{}m{:02}s", s / 60, s % 60)
        }
    }
}
