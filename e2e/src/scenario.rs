//! One scenario's world: a namespace, a node pool, a molt process that sees
//! only this test's plans, and the plans with their invariant checkers.
//!
//! Fields drop in declaration order: molt is killed first, then the plans and
//! the nodes molt provisioned are removed, then the pool and the namespace.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

use crate::checker::{Checker, CheckerConfig};
use crate::molt::{
    Molt, MoltOptions, NodesCleanup, PlanCleanup, install_crd, plan_events, plan_object, plans,
};
use crate::{
    Cluster, NodePool, NodePoolSpec, TestNamespace, describe_pods, eventually, unique_name,
    wait_for,
};

pub struct Scenario {
    pub molt: Molt,
    pub plans_cleanup: PlanCleanup,
    pub extra_nodes: NodesCleanup,
    pub pool: NodePool,
    pub ns: TestNamespace,
    pub cluster: Cluster,
    pub id: String,
}

impl Scenario {
    /// Connects, installs the CRD, creates the namespace and the pool, and
    /// starts molt for this test's plans.
    pub async fn new(prefix: &str, pool: NodePoolSpec) -> Result<Self> {
        Self::new_with(prefix, pool, MoltOptions::default()).await
    }

    /// [`Scenario::new`] with molt started with `options`.
    pub async fn new_with(prefix: &str, pool: NodePoolSpec, options: MoltOptions) -> Result<Self> {
        let cluster = Cluster::connect().await?;
        install_crd(&cluster).await?;
        let id = unique_name(prefix);
        let ns = cluster.namespace(prefix).await?;
        let pool = cluster.node_pool(pool).await?;
        let molt = Molt::start_with(&cluster, &id, options).await?;
        Ok(Self {
            molt,
            plans_cleanup: PlanCleanup::new(&cluster),
            extra_nodes: NodesCleanup::new(&cluster),
            pool,
            ns,
            cluster,
            id,
        })
    }

    pub fn client(&self) -> Client {
        self.cluster.client()
    }

    pub fn plans(&self) -> Api<DynamicObject> {
        plans(self.client())
    }

    /// Selector of the test's pool (plans select it; pods are pinned to it).
    pub fn selector(&self) -> BTreeMap<String, String> {
        self.pool.selector()
    }

    /// A plan spec with the scenario defaults (short timeouts), deep-merged
    /// with `overrides`.
    pub fn plan_spec(&self, image: &str, batch_size: u32, overrides: Value) -> Value {
        let mut spec = json!({
            "nodeSelector": { "matchLabels": self.selector() },
            "target": { "image": image },
            "provider": { "kwok": { "nodeTemplate": { "labels": {} } } },
            "strategy": { "batchSize": batch_size, "blueGreen": true },
            "drain": { "timeout": "2m", "onTimeout": "Halt" },
            "health": {
                "readyTimeout": "20s",
                "maxRestarts": 2,
                "maxUnhealthyPods": 0,
                "nodeReadyTimeout": "45s",
                "soak": "5s"
            },
            "onFailure": "Rollback"
        });
        merge(&mut spec, overrides);
        spec
    }

    /// Starts a checker for the plan, then creates the plan (so the checker
    /// sees everything the plan causes).
    pub async fn create_plan(&mut self, name: &str, spec: Value) -> Result<Checker> {
        let checker = self.watch_plan(name, &spec).await?;
        self.plans()
            .create(&PostParams::default(), &plan_object(name, &self.id, spec)?)
            .await
            .with_context(|| format!("creating plan {name}"))?;
        Ok(checker)
    }

    /// Starts a checker for a plan the test creates itself (e.g. several in one
    /// `kubectl apply`), and deletes the plan when the scenario ends.
    pub async fn watch_plan(&mut self, name: &str, spec: &Value) -> Result<Checker> {
        let batch_size = spec
            .pointer("/strategy/batchSize")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let target_image = spec
            .pointer("/target/image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let checker = Checker::start(
            self.client(),
            CheckerConfig {
                plan: name.to_string(),
                target_image,
                batch_size,
                selector: self.selector(),
                namespaces: vec![self.ns.name().to_string()],
                molt_user: self.molt.username().to_string(),
            },
        )
        .await?;
        self.plans_cleanup.track(name);
        Ok(checker)
    }

    /// Waits until the plan satisfies `cond`; fails early if molt died.
    pub async fn wait_plan(
        &mut self,
        name: &str,
        what: &str,
        cond: impl Fn(&DynamicObject) -> bool,
    ) -> Result<DynamicObject> {
        self.molt.check_running()?;
        let waited = wait_for(&self.plans(), name, what, |p| p.is_some_and(&cond)).await;
        let plan = match waited {
            Ok(plan) => plan,
            Err(e) => {
                let world = self.report().await;
                return Err(e.context(format!(
                    "molt log: {}\n{world}",
                    self.molt.log_path().display()
                )));
            }
        };
        self.molt.check_running()?;
        Ok(plan)
    }

    /// The test's pods and the pool's nodes as they stand, for a failure message: where each
    /// pod runs, whether it is Ready, and why the scheduler left it pending.
    pub async fn report(&self) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client(), self.ns.name());
        let pods = match pods.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .map(|p| {
                    let scheduled = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                        .filter(|c| c.status != "True")
                        .and_then(|c| c.message.clone())
                        .map(|m| format!(" unschedulable: {m}"))
                        .unwrap_or_default();
                    format!("{}{scheduled}", describe_pods(std::slice::from_ref(p)))
                })
                .collect::<Vec<_>>()
                .join("\n  "),
            Err(e) => format!("cannot list pods: {e}"),
        };
        let nodes: Api<Node> = Api::all(self.client());
        let nodes = match nodes
            .list(&ListParams::default().labels(&self.pool.label_selector()))
            .await
        {
            Ok(list) => list
                .items
                .iter()
                .map(|n| {
                    let spec = n.spec.clone().unwrap_or_default();
                    let ready = n
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                        .map_or("-".to_string(), |c| c.status.clone());
                    let taints: Vec<String> = spec
                        .taints
                        .unwrap_or_default()
                        .iter()
                        .map(|t| format!("{}:{}", t.key, t.effect))
                        .collect();
                    format!(
                        "{} ready={ready} unschedulable={} taints={taints:?}",
                        n.metadata.name.clone().unwrap_or_default(),
                        spec.unschedulable.unwrap_or(false)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n  "),
            Err(e) => format!("cannot list nodes: {e}"),
        };
        format!("pods:\n  {pods}\nnodes:\n  {nodes}")
    }

    /// Waits for `status.phase == phase`.
    pub async fn wait_phase(&mut self, name: &str, phase: &str) -> Result<DynamicObject> {
        self.wait_plan(name, &format!("phase {phase}"), |p| {
            crate::molt::phase(p) == Some(phase)
        })
        .await
    }

    /// Waits until the plan has ended, whichever way (`Succeeded`, `RolledBack`, `Halted` or
    /// `Failed`), so a test expecting one end fails as soon as the plan reaches another.
    pub async fn wait_end(&mut self, name: &str) -> Result<DynamicObject> {
        self.wait_plan(name, "the plan to end", crate::plan::ended)
            .await
    }

    /// Events about the plan whose reason is `reason`, as "reason: note".
    pub async fn events_with(&self, plan: &str, reason: &str) -> Result<Vec<String>> {
        Ok(plan_events(self.client(), plan)
            .await?
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| format!("{}: {}", reason, e.message.unwrap_or_default()))
            .collect())
    }

    /// Waits for an Event about the plan with reason `reason` whose note contains `needle`.
    pub async fn wait_event(&self, plan: &str, reason: &str, needle: &str) -> Result<String> {
        eventually(
            &format!("an Event {reason} mentioning {needle}"),
            || async {
                let events = self
                    .events_with(plan, reason)
                    .await
                    .map_err(|e| e.to_string())?;
                match events.iter().find(|e| e.contains(needle)) {
                    Some(e) => Ok(Some(e.clone())),
                    None => Err(format!("{events:?}")),
                }
            },
        )
        .await
    }
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}
