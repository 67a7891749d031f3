//! The Helm chart on the real API server. `helm install` (and `helm upgrade`) into a namespace
//! that enforces the `restricted` Pod Security Standard, whose admission accepts the chart's
//! pods and refuses a pod without the hardening (so the check has teeth). Then molt runs
//! exactly as the chart's Deployment configures it — its args and environment, authenticated
//! as the chart's ServiceAccount with a token from the TokenRequest API, so with nothing but
//! the chart's RBAC (the API server authorizes Node,RBAC) — through a roll-forward and a
//! rollback, while its `/metrics` is scraped and the key series must move.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use molt_e2e::checker::ensure_none;
use molt_e2e::molt::{
    MoltOptions, annotation, install_crd, is_unschedulable, marks, nodes_matching, phase, status,
    updated,
};
use molt_e2e::scenario::Scenario;
use molt_e2e::scrape::{self, Metrics};
use molt_e2e::tools::tool;
use molt_e2e::workloads::{App, Budget, install};
use molt_e2e::{Cluster, FAULT_LABEL, NodePoolSpec, eventually, unique_name};
use serde_json::{Value, json};

fn chart_dir() -> PathBuf {
    molt_e2e::paths::workspace().join("charts").join("molt")
}

/// A Helm release of the chart; uninstalled, with its namespace, on drop.
struct Release {
    name: String,
    namespace: String,
    kubeconfig: PathBuf,
    helm: PathBuf,
}

impl Release {
    fn helm(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.helm)
            .args(args)
            .arg("--namespace")
            .arg(&self.namespace)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .output()
            .context("running helm")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "helm {args:?} failed ({}): {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.helm(&["uninstall", &self.name, "--wait=false"]);
        let _ = Command::new(tool("kubectl").unwrap_or_else(|_| "kubectl".into()))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .output();
    }
}

/// The chart's values for the test: the CRD is the suite's (already applied from crds/, the
/// same file), and the pods are pinned to no node, since kwok nodes run no containers.
const VALUES: [&str; 4] = [
    "--set",
    "crds.install=false",
    "--set-string",
    "nodeSelector.molt\\.dev/e2e-nowhere=true",
];

/// `env` of the chart's container, downward-API fields filled in as the kubelet would.
fn container_env(container: &Value, namespace: &str, pod: &str) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e["name"].as_str()?.to_string();
            let value = match (
                e["value"].as_str(),
                e.pointer("/valueFrom/fieldRef/fieldPath")
                    .and_then(Value::as_str),
            ) {
                (Some(v), _) => v.to_string(),
                (None, Some("metadata.namespace")) => namespace.to_string(),
                (None, Some("metadata.name")) => pod.to_string(),
                _ => return None,
            };
            Some((name, value))
        })
        .collect()
}

async fn scrape_until(addr: &str, what: &str, cond: impl Fn(&Metrics) -> bool) -> Result<Metrics> {
    eventually(what, || async {
        let m = scrape::metrics(addr).await.map_err(|e| e.to_string())?;
        if cond(&m) {
            Ok(Some(m))
        } else {
            Err(m
                .0
                .lines()
                .filter(|l| l.starts_with("molt_") && !l.contains("_bucket"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_under_restricted_pod_security_and_its_identity_runs_a_rollout()
-> Result<()> {
    let cluster = Cluster::connect().await?;
    install_crd(&cluster).await?;
    let namespace = unique_name("molt-chart");
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest"
                }}
            }))?,
        )
        .await?;
    let release = Release {
        name: namespace.clone(),
        namespace: namespace.clone(),
        kubeconfig: cluster.kubeconfig().to_path_buf(),
        helm: tool("helm")?,
    };
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let mut install_args = vec!["install", &release.name, chart];
    install_args.extend(VALUES);
    release.helm(&install_args)?;
    // An upgrade goes through too (the path a CRD or RBAC change takes).
    let mut upgrade_args = vec!["upgrade", &release.name, chart, "--set", "concurrency=2"];
    upgrade_args.extend(VALUES);
    release.helm(&upgrade_args)?;

    // The chart's CRD (installed by default; the suite's is the same file) is one the API
    // server accepts as an update of the CRD in place.
    let crd = release.helm(&[
        "template",
        &release.name,
        chart,
        "--show-only",
        "templates/crd.yaml",
    ])?;
    let mut apply = Command::new(tool("kubectl")?)
        .arg("--kubeconfig")
        .arg(&release.kubeconfig)
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        apply.stdin.take().unwrap().write_all(crd.as_bytes())?;
    }
    let applied = apply.wait_with_output()?;
    assert!(
        applied.status.success(),
        "the chart's CRD is refused: {}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // Pod Security admission accepted the chart's pods: the ReplicaSet created them.
    let pods: Api<Pod> = Api::namespaced(cluster.client(), &namespace);
    let sets: Api<ReplicaSet> = Api::namespaced(cluster.client(), &namespace);
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    eventually("the chart's two pods to be admitted", || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| e.to_string())?;
        let fresh: Vec<&Pod> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if fresh.len() >= 2 {
            return Ok(Some(()));
        }
        let failures: Vec<String> = sets
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| e.to_string())?
            .items
            .iter()
            .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .filter(|c| c.type_ == "ReplicaFailure")
            .map(|c| c.message.clone().unwrap_or_default())
            .collect();
        Err(format!(
            "{} pods; ReplicaSet failures: {failures:?}",
            fresh.len()
        ))
    })
    .await?;
    // The same namespace refuses a pod without the hardening.
    let bare: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "molt"}]}
    }))?;
    let refused = pods
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &bare,
        )
        .await
        .expect_err("a pod without securityContext must be refused");
    assert!(
        refused.to_string().contains("violates PodSecurity"),
        "{refused}"
    );

    // molt, as the chart's Deployment runs it.
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), &namespace);
    let deployment = deployments.get(&release.name).await?;
    let spec = serde_json::to_value(deployment.spec.as_ref().unwrap())?;
    let container = &spec["template"]["spec"]["containers"][0];
    let service_account = spec["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap()
        .to_string();
    let mut args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    args.remove(0);
    assert!(args.iter().any(|a| a == "--leader-elect"), "{args:?}");
    let instance = format!("{}-local", release.name);
    let mut sc = Scenario::new_with(
        "chart",
        NodePoolSpec::new("ch", 3),
        MoltOptions {
            instance: Some(instance.clone()),
            service_account: Some((namespace.clone(), service_account.clone())),
            args,
            env: container_env(container, &namespace, &instance),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        sc.molt.username(),
        format!("system:serviceaccount:{namespace}:{service_account}")
    );
    let addr = sc.molt.http_addr().await?;
    scrape_until(&addr, "molt to lead on the chart's Lease", |m| {
        m.value("molt_leader") == Some(1.0)
    })
    .await?;

    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 3).budget(Budget::MaxUnavailable(1))],
    )
    .await?;

    // Roll forward.
    let forward = unique_name("chart-fwd");
    let checker = sc
        .create_plan(&forward, sc.plan_spec("img-v2", 1, json!({})))
        .await?;
    let series = |name: &str, plan: &str| format!("{name}{{plan=\"{plan}\"}}");
    let phase_series =
        |plan: &str, phase: &str| format!("molt_plan_phase{{plan=\"{plan}\",phase=\"{phase}\"}}");
    sc.wait_plan(&forward, "the first batch to complete", |p| updated(p) >= 1)
        .await?;
    let mid = scrape_until(&addr, "progress to show mid-rollout", |m| {
        m.value_or_zero(&series("molt_plan_nodes_updated", &forward)) >= 1.0
            && m.value(&series("molt_plan_nodes", &forward)) == Some(3.0)
            && m.value_or_zero("molt_evictions_total{outcome=\"accepted\"}") >= 1.0
    })
    .await?;
    let done = sc.wait_phase(&forward, "Succeeded").await?;
    assert_eq!(updated(&done), 3);
    let after = scrape_until(&addr, "the roll-forward's end in the metrics", |m| {
        m.value(&phase_series(&forward, "Succeeded")) == Some(1.0)
            && m.value(&phase_series(&forward, "Progressing")) == Some(0.0)
            && m.value(&series("molt_plan_nodes_updated", &forward)) == Some(3.0)
    })
    .await?;
    let accepted = |m: &Metrics| m.value_or_zero("molt_evictions_total{outcome=\"accepted\"}");
    assert!(accepted(&after) > accepted(&mid), "evictions went on");
    assert!(after.value_or_zero("molt_health_gate_verdicts_total{outcome=\"Healthy\"}") >= 1.0);
    assert!(after.value_or_zero("molt_reconcile_duration_seconds_count") >= 1.0);
    ensure_none(&checker.finish().await?)?;
    sc.plans()
        .delete(&forward, &DeleteParams::default())
        .await?;
    eventually("the first plan to be deleted", || async {
        match sc.plans().get_opt(&forward).await {
            Ok(None) => Ok(Some(())),
            Ok(Some(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;

    // A faulty image on the new pool: rolled back.
    let back = unique_name("chart-back");
    let checker = sc
        .create_plan(
            &back,
            sc.plan_spec(
                "img-bad",
                1,
                json!({
                    "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "not-ready"}}}},
                    "health": {"readyTimeout": "15s"}
                }),
            ),
        )
        .await?;
    let rolled = sc.wait_phase(&back, "RolledBack").await?;
    assert_eq!(
        status(&rolled)
            .pointer("/failure/reason")
            .and_then(Value::as_str),
        Some("HealthGateFailed"),
        "{:#}",
        status(&rolled)
    );
    scrape_until(&addr, "the rollback in the metrics", |m| {
        m.value(&phase_series(&back, "RolledBack")) == Some(1.0)
            && m.value_or_zero("molt_health_gate_verdicts_total{outcome=\"Unhealthy\"}") >= 1.0
    })
    .await?;
    eventually("the pool schedulable and unmarked", || async {
        let nodes = nodes_matching(sc.client(), &sc.pool.label_selector())
            .await
            .map_err(|e| e.to_string())?;
        let wrong: Vec<String> = nodes
            .iter()
            .filter(|n| {
                is_unschedulable(n)
                    || annotation(n, marks::CORDONED_BY).is_some()
                    || annotation(n, marks::CLAIMED_BY).is_some()
            })
            .map(|n| n.name_any())
            .collect();
        if wrong.is_empty() {
            Ok(Some(()))
        } else {
            Err(format!("{wrong:?}"))
        }
    })
    .await?;
    assert_eq!(phase(&rolled), Some("RolledBack"));
    ensure_none(&checker.finish().await?)?;
    drop(sc);
    drop(release);
    Ok(())
}
