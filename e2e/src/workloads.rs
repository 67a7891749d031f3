//! Realistic workloads for the scenarios: Deployments with several replicas,
//! readiness probes and resource requests, PodDisruptionBudgets, and a
//! DaemonSet, all pinned to one test's node pool.
//!
//! kwok plays kubelet: probes are never executed, a pod becomes Ready when
//! kwok's stages say so (see docs/local-cluster.md), but the objects are what a
//! real cluster would run, so the scheduler, the ReplicaSet and DaemonSet
//! controllers and the disruption controller treat them as they would in
//! production.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{TestNamespace, describe_pods, eventually, is_pod_ready, live_pods, pod_node};

/// A Deployment `app=<name>` of `replicas` pods with a readiness probe,
/// spread over the pool's nodes (at most one pod apart per node).
pub fn web_deployment(
    name: &str,
    replicas: i32,
    node_selector: &BTreeMap<String, String>,
) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": node_selector,
                    "tolerations": [{ "key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule" }],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": { "matchLabels": { "app": name } }
                    }],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "app",
                        "image": "registry.invalid/molt-e2e/web:1",
                        "ports": [{ "containerPort": 8080, "name": "http" }],
                        "readinessProbe": {
                            "httpGet": { "path": "/healthz", "port": "http" },
                            "periodSeconds": 2
                        },
                        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } }
                    }]
                }
            }
        }
    }))?)
}

/// A DaemonSet `app=<name>` on the pool's nodes (new nodes included: they copy the pool label).
pub fn daemonset(name: &str, node_selector: &BTreeMap<String, String>) -> Result<DaemonSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": node_selector,
                    "tolerations": [{ "key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule" }],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "agent",
                        "image": "registry.invalid/molt-e2e/agent:1",
                        "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } }
                    }]
                }
            }
        }
    }))?)
}

/// How a PDB limits disruptions.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    MinAvailable(i32),
    MaxUnavailable(i32),
}

pub fn pdb(name: &str, app: &str, budget: Budget) -> Result<PodDisruptionBudget> {
    let mut spec = json!({ "selector": { "matchLabels": { "app": app } } });
    match budget {
        Budget::MinAvailable(n) => spec["minAvailable"] = json!(n),
        Budget::MaxUnavailable(n) => spec["maxUnavailable"] = json!(n),
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": { "name": name },
        "spec": spec
    }))?)
}

/// A Deployment plus (optionally) its PDB.
#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    pub replicas: i32,
    pub budget: Option<Budget>,
}

impl App {
    pub fn new(name: &str, replicas: i32) -> Self {
        Self {
            name: name.into(),
            replicas,
            budget: None,
        }
    }

    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    pub fn pdb_name(&self) -> String {
        format!("{}-pdb", self.name)
    }
}

/// Creates the apps (Deployment + PDB) and a DaemonSet `agent`, all pinned by
/// `node_selector`, and waits until every Deployment's pods are Ready.
pub async fn install(
    ns: &TestNamespace,
    node_selector: &BTreeMap<String, String>,
    apps: &[App],
) -> Result<()> {
    let deployments = ns.api::<Deployment>();
    let pdbs = ns.api::<PodDisruptionBudget>();
    for app in apps {
        deployments
            .create(
                &PostParams::default(),
                &web_deployment(&app.name, app.replicas, node_selector)?,
            )
            .await
            .with_context(|| format!("creating deployment {}", app.name))?;
        if let Some(budget) = app.budget {
            pdbs.create(
                &PostParams::default(),
                &pdb(&app.pdb_name(), &app.name, budget)?,
            )
            .await
            .with_context(|| format!("creating the PDB of {}", app.name))?;
        }
    }
    ns.api::<DaemonSet>()
        .create(&PostParams::default(), &daemonset("agent", node_selector)?)
        .await
        .context("creating daemonset agent")?;
    for app in apps {
        wait_ready(ns, &app.name, app.replicas as usize, |_| true).await?;
        if app.budget.is_some() {
            wait_pdb_current(ns, &app.pdb_name()).await?;
        }
    }
    Ok(())
}

/// Waits until `app` has exactly `replicas` live pods, all Ready, each on a
/// node for which `on_node` holds. Returns the pods.
pub async fn wait_ready(
    ns: &TestNamespace,
    app: &str,
    replicas: usize,
    on_node: impl Fn(&str) -> bool,
) -> Result<Vec<Pod>> {
    let pods = ns.api::<Pod>();
    let selector = format!("app={app}");
    eventually(&format!("{replicas} Ready pods of {app}"), || {
        let (pods, selector, on_node) = (&pods, &selector, &on_node);
        async move {
            let live = live_pods(pods, selector).await?;
            let good = live.len() == replicas
                && live
                    .iter()
                    .all(|p| is_pod_ready(p) && pod_node(p).is_some_and(on_node));
            if good {
                Ok(Some(live))
            } else {
                Err(describe_pods(&live))
            }
        }
    })
    .await
}

/// Waits until the disruption controller has computed the PDB's status for
/// its current spec.
pub async fn wait_pdb_current(ns: &TestNamespace, name: &str) -> Result<PodDisruptionBudget> {
    crate::wait_for(
        &ns.api::<PodDisruptionBudget>(),
        name,
        "the PDB status to be current",
        |p| {
            p.is_some_and(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.observed_generation == p.metadata.generation && s.expected_pods > 0
                })
            })
        },
    )
    .await
}

/// Changes a PDB's budget.
pub async fn set_budget(ns: &TestNamespace, name: &str, budget: Budget) -> Result<()> {
    let patch = match budget {
        Budget::MinAvailable(n) => json!({"spec": {"minAvailable": n, "maxUnavailable": null}}),
        Budget::MaxUnavailable(n) => json!({"spec": {"maxUnavailable": n, "minAvailable": null}}),
    };
    ns.api::<PodDisruptionBudget>()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("patching PDB {name}"))?;
    Ok(())
}
