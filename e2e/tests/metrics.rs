//! Metrics analysis against a real Prometheus scraping an exporter the test controls: a value
//! that crosses the failure condition during a batch rolls the plan back, naming the metric; a
//! stopped Prometheus makes the plan wait with the reason, and it resumes and succeeds once
//! Prometheus answers again. The query is scoped to the batch's new nodes with `{{nodes}}`:
//! the old nodes serve a value that would fail it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::Result;
use kube::api::DynamicObject;
use molt_e2e::checker::ensure_none;
use molt_e2e::molt::{batch_nodes, condition, phase, status};
use molt_e2e::prometheus::{Exporter, Prometheus};
use molt_e2e::scenario::Scenario;
use molt_e2e::{NodePoolSpec, unique_name};
use serde_json::{Value, json};

const METRIC: &str = "error-ratio";

fn series(node: &str) -> String {
    format!("molt_e2e_error_ratio{{node=\"{node}\"}}")
}

/// The analysis: the error ratio of the batch's new nodes must stay at or below 0.5.
fn analysis(prometheus: &Prometheus) -> Value {
    json!({
        "prometheus": {"address": prometheus.url(), "timeout": "2s"},
        "metrics": [{
            "name": METRIC,
            "query": "max(molt_e2e_error_ratio{node=~\"{{nodes}}\"})",
            "failureCondition": {"operator": ">", "value": 0.5},
            "interval": "2s",
            "consecutiveErrorLimit": 1
        }]
    })
}

/// Every new node of `plan` serves a healthy 0 unless the test set it otherwise; old nodes
/// serve 0.9, which the scoped query must never see.
fn follow_new_nodes(sc: &Scenario, plan: &str, exporter: &Exporter) -> tokio::task::JoinHandle<()> {
    for n in sc.pool.nodes() {
        exporter.set(&series(n), 0.9);
    }
    let (plans, plan, exporter) = (sc.plans(), plan.to_string(), exporter.clone());
    tokio::spawn(async move {
        loop {
            if let Ok(Some(p)) = plans.get_opt(&plan).await {
                for n in batch_nodes(&p, "newNodes") {
                    exporter.set_default(&series(&n), 0.0);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    })
}

/// The analysis status of batch `i`'s metric.
fn measured(p: &DynamicObject, i: usize) -> Value {
    status(p)
        .pointer(&format!("/batches/{i}/analysis/0"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn successful(p: &DynamicObject, i: usize) -> u64 {
    measured(p, i)["successful"].as_u64().unwrap_or(0)
}

fn progressing(p: &DynamicObject) -> (String, String) {
    let c = condition(p, "Progressing").cloned().unwrap_or(Value::Null);
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("reason"), s("message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_crossing_its_failure_condition_rolls_the_batch_back() -> Result<()> {
    let mut sc = Scenario::new("metrics-fail", NodePoolSpec::new("metrics-fail", 2)).await?;
    let exporter = Exporter::start().await?;
    let prometheus = Prometheus::start(&sc.id, exporter.addr()).await?;
    let plan = unique_name("metrics-fail");
    let follow = follow_new_nodes(&sc, &plan, &exporter);
    let spec = sc.plan_spec(
        "img-2",
        1,
        json!({"health": {"soak": "5m"}, "analysis": analysis(&prometheus)}),
    );
    let checker = sc.create_plan(&plan, spec).await?;

    // The first batch soaks with the metric measured healthy on its new node.
    let soaking = sc
        .wait_plan(&plan, "a successful measurement in batch 1", |p| {
            successful(p, 0) >= 1
        })
        .await?;
    assert_eq!(phase(&soaking), Some("Progressing"));
    let new = batch_nodes(&soaking, "newNodes");
    assert_eq!(new.len(), 1, "{:#}", status(&soaking));

    // The new node's error ratio crosses 0.5.
    exporter.set(&series(&new[0]), 0.8);
    let done = sc.wait_phase(&plan, "RolledBack").await?;
    follow.abort();
    let failure = &status(&done)["failure"];
    assert_eq!(failure["reason"], "MetricFailed", "{failure:#}");
    let message = failure["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("metric {METRIC} failed in batch 1/2"))
            && message.contains("value 0.8 meets the failure condition > 0.5"),
        "{message}"
    );
    assert_eq!(failure["batch"], 0);
    ensure_none(&checker.finish().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_prometheus_makes_the_plan_wait_and_it_resumes_when_prometheus_returns()
-> Result<()> {
    let mut sc = Scenario::new("metrics-down", NodePoolSpec::new("metrics-down", 2)).await?;
    let exporter = Exporter::start().await?;
    let mut prometheus = Prometheus::start(&sc.id, exporter.addr()).await?;
    let plan = unique_name("metrics-down");
    let follow = follow_new_nodes(&sc, &plan, &exporter);
    let spec = sc.plan_spec(
        "img-2",
        1,
        json!({"health": {"soak": "20s"}, "analysis": analysis(&prometheus)}),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    sc.wait_plan(&plan, "a successful measurement in batch 1", |p| {
        successful(p, 0) >= 1
    })
    .await?;

    prometheus.stop().await?;
    let waiting = sc
        .wait_plan(&plan, "the plan waiting for its metric", |p| {
            progressing(p).0 == "MetricInconclusive"
        })
        .await?;
    let (_, message) = progressing(&waiting);
    assert!(
        message.contains(&format!("metric {METRIC} cannot be measured"))
            && message.contains(&format!("cannot query {}/api/v1/query", prometheus.url())),
        "{message}"
    );
    assert_eq!(
        phase(&waiting),
        Some("Progressing"),
        "{:#}",
        status(&waiting)
    );
    assert_eq!(status(&waiting)["batches"][0]["phase"], "Soaking");
    assert!(status(&waiting).get("failure").is_none_or(Value::is_null));

    prometheus.resume().await?;
    let done = sc.wait_phase(&plan, "Succeeded").await?;
    follow.abort();
    for i in 0..2 {
        let m = measured(&done, i);
        assert!(m["successful"].as_u64() >= Some(1), "batch {i}: {m:#}");
        assert_eq!(m["failed"], 0, "batch {i}: {m:#}");
    }
    assert!(
        measured(&done, 0)["error"].as_u64() >= Some(2),
        "the errors are counted: {:#}",
        measured(&done, 0)
    );
    ensure_none(&checker.finish().await?)
}
