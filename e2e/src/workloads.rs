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
use serde_json::{Value, json};

use crate::{TestNamespace, describe_pods, eventually, is_pod_ready, live_pods, pod_node};

/// A container for the builders below. kwok runs no probe; they are there because a real
/// cluster's workloads have them, and the objects should look like one's.
#[derive(Clone, Debug)]
pub struct Container {
    name: String,
    image: String,
    requests: (String, String),
    memory_limit: bool,
    port: Option<(i32, Option<String>)>,
    readiness: Option<(i32, Option<i32>)>,
    liveness_period: Option<i32>,
}

impl Container {
    /// A container requesting 100m CPU and 64Mi of memory, without ports or probes.
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            requests: ("100m".into(), "64Mi".into()),
            memory_limit: false,
            port: None,
            readiness: None,
            liveness_period: None,
        }
    }

    pub fn requests(mut self, cpu: &str, memory: &str) -> Self {
        self.requests = (cpu.into(), memory.into());
        self
    }

    /// A memory limit equal to the request.
    pub fn memory_limit(mut self) -> Self {
        self.memory_limit = true;
        self
    }

    /// A container port, named or not; the probes check `/healthz` on it.
    pub fn port(mut self, port: i32, name: Option<&str>) -> Self {
        self.port = Some((port, name.map(str::to_string)));
        self
    }

    /// A readiness probe every `period` seconds (after `failure_threshold` failures, if given).
    pub fn readiness(mut self, period: i32, failure_threshold: Option<i32>) -> Self {
        self.readiness = Some((period, failure_threshold));
        self
    }

    /// A liveness probe every `period` seconds.
    pub fn liveness(mut self, period: i32) -> Self {
        self.liveness_period = Some(period);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut c = json!({
            "name": self.name,
            "image": self.image,
        });
        let probe_port = match &self.port {
            Some((port, name)) => {
                let mut p = json!({ "containerPort": port });
                if let Some(name) = name {
                    p["name"] = json!(name);
                }
                c["ports"] = json!([p]);
                name.as_ref().map_or(json!(port), |n| json!(n))
            }
            None => json!(8080),
        };
        if let Some((period, threshold)) = self.readiness {
            let mut probe = json!({
                "httpGet": { "path": "/healthz", "port": probe_port },
                "periodSeconds": period
            });
            if let Some(t) = threshold {
                probe["failureThreshold"] = json!(t);
            }
            c["readinessProbe"] = probe;
        }
        if let Some(period) = self.liveness_period {
            c["livenessProbe"] = json!({
                "httpGet": { "path": "/healthz", "port": probe_port },
                "periodSeconds": period
            });
        }
        let (cpu, memory) = &self.requests;
        c["resources"] = json!({ "requests": { "cpu": cpu, "memory": memory } });
        if self.memory_limit {
            c["resources"]["limits"] = json!({ "memory": memory });
        }
        c
    }
}

/// The one Deployment builder: `replicas` pods labelled `app=<name>`, pinned by a node
/// selector and spread over nodes by hostname (at most one pod apart).
#[derive(Clone, Debug)]
pub struct DeploymentBuilder {
    name: String,
    replicas: i32,
    node_selector: BTreeMap<String, String>,
    namespace: Option<String>,
    container: Container,
    surge: bool,
    tolerate_kwok: bool,
    spread_strictly: bool,
    grace_seconds: i64,
}

impl DeploymentBuilder {
    /// A Deployment whose container `app` runs `registry.invalid/molt-e2e/app:1`, spread
    /// strictly (`DoNotSchedule`), with no termination grace period.
    pub fn new(name: &str, replicas: i32, node_selector: &BTreeMap<String, String>) -> Self {
        Self {
            name: name.into(),
            replicas,
            node_selector: node_selector.clone(),
            namespace: None,
            container: Container::new("app", "registry.invalid/molt-e2e/app:1"),
            surge: false,
            tolerate_kwok: false,
            spread_strictly: true,
            grace_seconds: 0,
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn container(mut self, container: Container) -> Self {
        self.container = container;
        self
    }

    /// Roll by surging one pod, never going below the desired count.
    pub fn surge(mut self) -> Self {
        self.surge = true;
        self
    }

    /// Tolerate the `kwok.x-k8s.io/node` NoSchedule taint.
    pub fn tolerate_kwok(mut self) -> Self {
        self.tolerate_kwok = true;
        self
    }

    /// Spread as a preference (`ScheduleAnyway`) instead of a rule.
    pub fn spread_loosely(mut self) -> Self {
        self.spread_strictly = false;
        self
    }

    pub fn grace_seconds(mut self, seconds: i64) -> Self {
        self.grace_seconds = seconds;
        self
    }

    pub fn to_json(&self) -> Value {
        let name = &self.name;
        let mut metadata = json!({ "name": name, "labels": { "app": name } });
        if let Some(ns) = &self.namespace {
            metadata["namespace"] = json!(ns);
        }
        let mut pod = json!({
            "nodeSelector": self.node_selector,
            "topologySpreadConstraints": [{
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": if self.spread_strictly { "DoNotSchedule" } else { "ScheduleAnyway" },
                "labelSelector": { "matchLabels": { "app": name } }
            }],
            "terminationGracePeriodSeconds": self.grace_seconds,
            "containers": [self.container.to_json()]
        });
        if self.tolerate_kwok {
            pod["tolerations"] = kwok_toleration();
        }
        let mut spec = json!({
            "replicas": self.replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": pod }
        });
        if self.surge {
            spec["strategy"] = json!({
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 }
            });
        }
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec })
    }

    pub fn build(&self) -> Result<Deployment> {
        Ok(serde_json::from_value(self.to_json())?)
    }
}

fn kwok_toleration() -> Value {
    json!([{ "key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule" }])
}

/// A Deployment of `replicas` pods labelled `app=<name>`, pinned by
/// `node_selector`, spread at most one pod apart over nodes (hostname).
pub fn deployment(
    name: &str,
    replicas: i32,
    node_selector: &BTreeMap<String, String>,
) -> Result<Deployment> {
    DeploymentBuilder::new(name, replicas, node_selector).build()
}

/// A Deployment `app=<name>` of `replicas` pods with a readiness probe,
/// spread over the pool's nodes (at most one pod apart per node).
pub fn web_deployment(
    name: &str,
    replicas: i32,
    node_selector: &BTreeMap<String, String>,
) -> Result<Deployment> {
    web_builder(name, replicas, node_selector).build()
}

/// The builder behind [`web_deployment`], for a variant of it.
pub fn web_builder(
    name: &str,
    replicas: i32,
    node_selector: &BTreeMap<String, String>,
) -> DeploymentBuilder {
    DeploymentBuilder::new(name, replicas, node_selector)
        .surge()
        .tolerate_kwok()
        .container(
            Container::new("app", "registry.invalid/molt-e2e/web:1")
                .port(8080, Some("http"))
                .readiness(2, None),
        )
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
                    "tolerations": kwok_toleration(),
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        Container::new("agent", "registry.invalid/molt-e2e/agent:1")
                            .requests("10m", "16Mi")
                            .to_json()
                    ]
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

/// A PodDisruptionBudget `name` for the pods `app=<app>`.
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

/// A PodDisruptionBudget for `app=<app>` with the given minAvailable.
pub fn pod_disruption_budget(
    name: &str,
    app: &str,
    min_available: i32,
) -> Result<PodDisruptionBudget> {
    pdb(name, app, Budget::MinAvailable(min_available))
}

/// A Deployment plus (optionally) its PDB.
#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    pub replicas: i32,
    pub budget: Option<Budget>,
    /// Spread over nodes as a preference, not a rule (see [`App::spread_loosely`]).
    pub loose: bool,
}

impl App {
    pub fn new(name: &str, replicas: i32) -> Self {
        Self {
            name: name.into(),
            replicas,
            budget: None,
            loose: false,
        }
    }

    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Spread with `ScheduleAnyway`. The scheduler counts cordoned nodes as spread domains,
    /// so while a blue-green batch keeps its drained old nodes, a strictly spread workload
    /// fits at most one pod per new node; one with more pods than new nodes needs this.
    pub fn spread_loosely(mut self) -> Self {
        self.loose = true;
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
    create_apps(ns, node_selector, apps).await?;
    ns.api::<DaemonSet>()
        .create(&PostParams::default(), &daemonset("agent", node_selector)?)
        .await
        .context("creating daemonset agent")?;
    wait_apps(ns, apps).await
}

/// Creates the apps (Deployment + PDB) pinned by `node_selector`, without a DaemonSet and
/// without waiting for them.
pub async fn create_apps(
    ns: &TestNamespace,
    node_selector: &BTreeMap<String, String>,
    apps: &[App],
) -> Result<()> {
    let deployments = ns.api::<Deployment>();
    let pdbs = ns.api::<PodDisruptionBudget>();
    for app in apps {
        let mut builder = web_builder(&app.name, app.replicas, node_selector);
        if app.loose {
            builder = builder.spread_loosely();
        }
        deployments
            .create(&PostParams::default(), &builder.build()?)
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
    Ok(())
}

/// Waits until every app's pods are Ready (anywhere) and each PDB's status is current.
pub async fn wait_apps(ns: &TestNamespace, apps: &[App]) -> Result<()> {
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
