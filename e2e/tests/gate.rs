//! The health gate on its hard cases, on the real control plane (docs/engine.md, "The health
//! gate"): readiness lost for less than `notReadyTimeout` is a blip, not a failure; one failing
//! pod is counted once and against `maxUnhealthyPods`; a workload already partly down before the
//! plan neither trips the gate nor hides its moved pods failing; a new node under
//! `MemoryPressure` fails the batch. Each scenario runs its own molt, pool and namespace, and an
//! invariant checker (`molt_e2e::checker`) whose violations fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{Result, bail, ensure};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use molt_e2e::checker::{Checker, ensure_none};
use molt_e2e::k8s::{label_node, set_node_condition, wait_nodes_gone};
use molt_e2e::molt::{condition, marks, nodes_matching, phase, status};
use molt_e2e::plan::ended;
use molt_e2e::scenario::Scenario;
use molt_e2e::workloads::{App, Budget, create_apps, install, wait_apps};
use molt_e2e::{
    FAULT_LABEL, Fault, NodePoolSpec, describe_pods, eventually, is_pod_ready, live_pods,
    pod_condition, pod_node, unique_name,
};
use serde_json::{Value, json};

/// Node label the tests pin single workloads with (new nodes copy it from the node they replace).
const ROLE: &str = "e2e.molt.dev/role";

fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn number(v: &Value, ptr: &str) -> Option<u64> {
    v.pointer(ptr).and_then(Value::as_u64)
}

/// The nodes provisioned for `plan`, by name.
async fn new_nodes(sc: &Scenario, plan: &str, extra: &str) -> Result<Vec<String>> {
    let selector = format!("{}={plan}{extra}", marks::PLAN_LABEL);
    let mut names: Vec<String> = nodes_matching(sc.client(), &selector)
        .await?
        .iter()
        .map(|n| n.name_any())
        .collect();
    names.sort();
    Ok(names)
}

/// The test's live pods on `node`.
async fn pods_on(sc: &Scenario, node: &str) -> Result<Vec<Pod>, String> {
    let list = sc
        .ns
        .api::<Pod>()
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// When the pod's `Ready` condition last changed.
fn ready_changed(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    ready.last_transition_time.as_ref().map(|t| t.0)
}

/// A selector of the pool's nodes carrying `role`.
fn with_role(sc: &Scenario, role: &str) -> std::collections::BTreeMap<String, String> {
    let mut selector = sc.selector();
    selector.insert(ROLE.into(), role.into());
    selector
}

/// Two nodes running `web` (2 pods, a PDB allowing one disruption) and the `agent` DaemonSet,
/// and a plan replacing both in one batch with the scenario defaults and `health`.
async fn web_plan(prefix: &str, health: Value) -> Result<(Scenario, String, Checker)> {
    let mut sc = Scenario::new(prefix, NodePoolSpec::new(prefix, 2)).await?;
    let web = App::new("web", 2).budget(Budget::MaxUnavailable(1));
    install(&sc.ns, &sc.selector(), &[web]).await?;
    let plan = unique_name(prefix);
    let spec = sc.plan_spec("img-2", 2, json!({ "health": health }));
    let checker = sc.create_plan(&plan, spec).await?;
    Ok((sc, plan, checker))
}

/// Waits until the clock reaches `t` (a precondition of a case, never a verdict).
async fn until(what: &str, t: Timestamp) -> Result<()> {
    eventually(what, || async {
        let now = Timestamp::now();
        if now >= t {
            Ok(Some(()))
        } else {
            Err(format!("{now} < {t}"))
        }
    })
    .await
}

async fn finish(checker: Checker) -> Result<()> {
    ensure_none(&checker.finish().await?)
}

// ------------------------------------------------------------------ blips

/// Pods Ready on the new nodes lose readiness for a few seconds while the batch soaks, after
/// their `readyTimeout` is over, and get it back: a blip, so the plan succeeds and the soak keeps
/// its clock. The flap is driven by the test (the `not-ready` fault put on the new node and taken
/// off again) and held until molt reports it, so the test cannot pass without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_image_with_a_flapping_pod_succeeds() -> Result<()> {
    let health = json!({"readyTimeout": "15s", "notReadyTimeout": "30s", "soak": "60s"});
    let (mut sc, plan, checker) = web_plan("flap", health).await?;
    let ready_timeout = SignedDuration::from_secs(15);

    // The batch soaks: drained, and every pod on the new nodes Ready.
    let soaking = sc
        .wait_plan(&plan, "batch 0 soaking", |p| {
            !text(status(p), "/batches/0/soakStartedAt").is_empty() || ended(p)
        })
        .await?;
    ensure!(!ended(&soaking), "{:#}", status(&soaking));
    let soak_started = text(status(&soaking), "/batches/0/soakStartedAt").to_string();
    let node = new_nodes(&sc, &plan, "").await?[0].clone();
    let ns = sc.ns.name().to_string();
    let on_node = pods_on(&sc, &node).await.map_err(anyhow::Error::msg)?;
    let Some(web) = on_node
        .into_iter()
        .find(|p| p.labels().get("app").map(String::as_str) == Some("web"))
    else {
        bail!("no web pod on {node}: {}", sc.report().await)
    };
    let name = web.name_any();
    let started = web
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .ok_or_else(|| anyhow::anyhow!("{name} has no startTime"))?;
    // The hard case: readiness lost once the pod's start-up grace is over, when "not Ready
    // readyTimeout after it started" would hold.
    let grace_over = started + ready_timeout + SignedDuration::from_secs(1);
    until(&format!("readyTimeout past {name}'s start"), grace_over).await?;

    let fault = Fault::PodNotReady.label_value();
    label_node(sc.client(), &node, &[(FAULT_LABEL, Some(fault))]).await?;
    let lost = eventually(&format!("{name} to lose readiness"), || async {
        let pods = pods_on(&sc, &node).await?;
        match pods.iter().find(|p| p.name_any() == name) {
            Some(p) if pod_condition(p, "Ready") == Some("False") => Ok(ready_changed(p)),
            _ => Err(describe_pods(&pods)),
        }
    })
    .await?;
    ensure!(
        lost > started + ready_timeout,
        "lost at {lost}, started {started}"
    );

    // molt sees a pod that is not Ready again yet; the fault stays at least until it says so.
    let blip = format!("pod {ns}/{name} to be Ready again");
    let seen = sc
        .wait_plan(&plan, "molt to report the blip", |p| {
            status(p)["health"]["waitingFor"]
                .to_string()
                .contains(&blip)
                || !status(p)["failure"].is_null()
                || ended(p)
        })
        .await?;
    let st = status(&seen);
    ensure!(
        phase(&seen) == Some("Progressing") && st["failure"].is_null(),
        "the blip was taken for a failure: {st:#}"
    );
    ensure!(
        text(st, "/batches/0/phase") == "Soaking" && text(st, "/health/verdict") == "Pending",
        "the blip came outside the soak: {st:#}"
    );
    // A few seconds of it, then the fault goes.
    until(
        "the blip to last a few seconds",
        lost + SignedDuration::from_secs(5),
    )
    .await?;
    label_node(sc.client(), &node, &[(FAULT_LABEL, None)]).await?;
    let back = eventually(&format!("{name} Ready again"), || async {
        let pods = pods_on(&sc, &node).await?;
        match pods.iter().find(|p| p.name_any() == name) {
            Some(p) if is_pod_ready(p) => Ok(ready_changed(p)),
            _ => Err(describe_pods(&pods)),
        }
    })
    .await?;
    eprintln!("{name} was not Ready from {lost} to {back}");

    let done = sc.wait_end(&plan).await?;
    let st = status(&done);
    ensure!(phase(&done) == Some("Succeeded"), "{st:#}");
    ensure!(st["failure"].is_null(), "{st:#}");
    ensure!(
        text(st, "/batches/0/soakStartedAt") == soak_started,
        "the blip started the soak over (was {soak_started}): {st:#}"
    );
    finish(checker).await
}

// ------------------------------------------------------------------ one failure, counted once

/// 20 tracked pods: `web` (19 pods, on the node labelled role=web) and `odd` (1 pod, on the
/// node labelled role=odd). odd's budget holds its pod on the old node until the test has put
/// the `not-ready` fault on odd's new node and removed the budget, so that pod, and only it, is
/// never Ready there.
/// Returns the scenario, the plan and its checker once odd's pod runs unready on its new node.
async fn one_of_twenty(prefix: &str, max_unhealthy: Value) -> Result<(Scenario, String, Checker)> {
    let mut sc = Scenario::new(prefix, NodePoolSpec::new(prefix, 2)).await?;
    let (odd_node, web_node) = (sc.pool.nodes()[0].clone(), sc.pool.nodes()[1].clone());
    label_node(sc.client(), &odd_node, &[(ROLE, Some("odd"))]).await?;
    label_node(sc.client(), &web_node, &[(ROLE, Some("web"))]).await?;
    let odd = App::new("odd", 1).budget(Budget::MinAvailable(1));
    let web = App::new("web", 19).spread_loosely();
    create_apps(&sc.ns, &with_role(&sc, "odd"), std::slice::from_ref(&odd)).await?;
    create_apps(&sc.ns, &with_role(&sc, "web"), std::slice::from_ref(&web)).await?;
    wait_apps(&sc.ns, &[odd.clone(), web]).await?;

    let plan = unique_name(prefix);
    let spec = sc.plan_spec(
        "img-2",
        2,
        json!({"health": {"readyTimeout": "15s", "soak": "10s", "maxUnhealthyPods": max_unhealthy}}),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    let pdb = odd.pdb_name();
    let blocked = sc
        .wait_plan(&plan, &format!("a blocker naming {pdb}"), |p| {
            status(p)["blockers"].to_string().contains(&pdb) || ended(p)
        })
        .await?;
    ensure!(!ended(&blocked), "{:#}", status(&blocked));
    let odd_new = new_nodes(&sc, &plan, &format!(",{ROLE}=odd")).await?;
    ensure!(odd_new.len() == 1, "odd's new node: {odd_new:?}");
    let fault = Fault::PodNotReady.label_value();
    label_node(sc.client(), &odd_new[0], &[(FAULT_LABEL, Some(fault))]).await?;
    // Removed rather than raised: with the default unhealthyPodEvictionPolicy, a budget over a
    // single pod that is never Ready allows no eviction of it (disruptionsAllowed is 0 whatever
    // the budget), so a rollback could not move it back.
    sc.ns
        .api::<PodDisruptionBudget>()
        .delete(&pdb, &DeleteParams::default())
        .await?;
    let pods = sc.ns.api::<Pod>();
    eventually("odd's pod running unready on its new node", || async {
        let live = live_pods(&pods, "app=odd").await?;
        match live.as_slice() {
            [p] if pod_node(p) == Some(odd_new[0].as_str())
                && pod_condition(p, "Ready") == Some("False") =>
            {
                Ok(Some(()))
            }
            _ => Err(describe_pods(&live)),
        }
    })
    .await?;
    Ok((sc, plan, checker))
}

/// One pod of 20 never Ready on the new nodes, `maxUnhealthyPods: 10%` (2): counted once (the
/// pod; its workload's shortfall is that pod, not a second failure), tolerated, `Succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_pod_within_max_unhealthy_pods_succeeds() -> Result<()> {
    let (mut sc, plan, checker) = one_of_twenty("tolerated", json!("10%")).await?;
    let judged = sc
        .wait_plan(&plan, "the gate to count odd's pod", |p| {
            number(status(p), "/health/unhealthyCount").unwrap_or(0) > 0 || ended(p)
        })
        .await?;
    let health = &status(&judged)["health"];
    let ns = sc.ns.name();
    ensure!(
        number(health, "/trackedPods") == Some(20)
            && number(health, "/unhealthyCount") == Some(1)
            && number(health, "/toleratedUnhealthy") == Some(2)
            && text(health, "/verdict") == "Healthy",
        "{health:#}"
    );
    let unhealthy = health["unhealthy"].as_array().cloned().unwrap_or_default();
    ensure!(
        unhealthy.len() == 1
            && text(&unhealthy[0], "/subject") == "Pod"
            && text(&unhealthy[0], "/namespace") == ns
            && text(&unhealthy[0], "/pod").starts_with("odd-"),
        "{health:#}"
    );
    let done = sc.wait_end(&plan).await?;
    ensure!(phase(&done) == Some("Succeeded"), "{:#}", status(&done));
    finish(checker).await
}

/// The same world with `maxUnhealthyPods: 0`: the one pod is beyond the tolerance, and the plan
/// rolls back naming it, so the tolerance is what decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_pod_beyond_max_unhealthy_pods_rolls_back() -> Result<()> {
    let (mut sc, plan, checker) = one_of_twenty("intolerant", json!(0)).await?;
    let done = sc.wait_end(&plan).await?;
    let st = status(&done);
    ensure!(phase(&done) == Some("RolledBack"), "{st:#}");
    let ns = sc.ns.name();
    ensure!(text(st, "/failure/reason") == "HealthGateFailed", "{st:#}");
    let message = text(st, "/failure/message");
    ensure!(
        message.starts_with(&format!("1 unhealthy, 0 tolerated: pod {ns}/odd-")),
        "{message}"
    );
    ensure!(
        number(st, "/health/trackedPods") == Some(20),
        "{:#}",
        st["health"]
    );
    finish(checker).await
}

// ------------------------------------------------------------------ outages before the plan

/// `api`, 6 replicas, 2 of them on a node with the `not-ready` fault before the plan (4/6
/// Ready). A faulty image: every new node has the fault, so api's pods moved there never get
/// Ready. Its old outage excuses 2 of them, not the rest: the plan rolls back, and the failure
/// names api's ReplicaSet (status, condition and Event). Each node takes two pods, so the
/// placement is exact before, during and after the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_outage_whose_moved_pods_fail_is_rolled_back_naming_the_workload() -> Result<()> {
    let pool = NodePoolSpec::new("outage", 3).capacity("4", "16Gi", "2");
    let mut sc = Scenario::new("outage", pool).await?;
    let sick = sc.pool.nodes()[0].clone();
    let fault = Fault::PodNotReady.label_value();
    label_node(sc.client(), &sick, &[(FAULT_LABEL, Some(fault))]).await?;
    let api = App::new("api", 6).spread_loosely();
    create_apps(&sc.ns, &sc.selector(), std::slice::from_ref(&api)).await?;
    let (pods, replicasets) = (sc.ns.api::<Pod>(), sc.ns.api::<ReplicaSet>());
    let pool_nodes = sc.pool.nodes().to_vec();
    // api at 4/6: its two pods on the sick node run unready, the others are Ready, and its
    // ReplicaSet says so (molt reads the ready count there).
    let partly_down = || async {
        let live = live_pods(&pods, "app=api").await?;
        let as_before = live.len() == 6
            && live.iter().all(|p| {
                let node = pod_node(p).unwrap_or_default();
                pool_nodes.iter().any(|n| n == node)
                    && pod_condition(p, "Ready").is_some()
                    && is_pod_ready(p) == (node != sick)
            })
            && live
                .iter()
                .filter(|p| pod_node(p) == Some(sick.as_str()))
                .count()
                == 2;
        let list = replicasets
            .list(&ListParams::default().labels("app=api"))
            .await
            .map_err(|e| e.to_string())?;
        match list.items.as_slice() {
            [rs] if as_before && rs.status.as_ref().and_then(|s| s.ready_replicas) == Some(4) => {
                Ok(Some(rs.name_any()))
            }
            _ => Err(describe_pods(&live)),
        }
    };
    let rs = eventually(
        "api at 4/6 Ready, its 2 pods on the sick node unready",
        &partly_down,
    )
    .await?;

    let plan = unique_name("outage");
    let spec = sc.plan_spec(
        "img-bad",
        3,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: fault}}}},
            "health": {"readyTimeout": "15s"}
        }),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    let done = sc.wait_end(&plan).await?;
    let st = status(&done);
    ensure!(
        phase(&done) == Some("RolledBack"),
        "api's pods failed on the new nodes and the plan did not roll back: {st:#}"
    );
    let ns = sc.ns.name().to_string();
    let preexisting = st["preexisting"].as_array().cloned().unwrap_or_default();
    ensure!(
        preexisting.iter().any(|o| text(o, "/name") == rs
            && number(o, "/desired") == Some(6)
            && number(o, "/ready") == Some(4)),
        "api's outage not recorded: {st:#}"
    );
    let workload = format!("ReplicaSet {ns}/{rs}");
    ensure!(text(st, "/failure/reason") == "HealthGateFailed", "{st:#}");
    ensure!(text(st, "/failure/message").contains(&workload), "{st:#}");
    let degraded = condition(&done, "Degraded").cloned().unwrap_or_default();
    ensure!(
        text(&degraded, "/message").contains(&workload),
        "{degraded:#}"
    );
    sc.wait_event(&plan, "HealthGateFailed", &workload).await?;
    // Two unready pods are the old outage; the ones counted are api's, each once.
    let health = &st["health"];
    let unhealthy = health["unhealthy"].as_array().cloned().unwrap_or_default();
    ensure!(
        number(health, "/excused") == Some(2)
            && !unhealthy.is_empty()
            && unhealthy
                .iter()
                .all(|u| text(u, "/subject") == "Pod"
                    && text(u, "/pod").starts_with(&format!("{rs}-"))),
        "{health:#}"
    );

    // Back where it was: new nodes gone, api at 4/6 on the old nodes.
    let new = format!("{}={plan}", marks::PLAN_LABEL);
    wait_nodes_gone(sc.client(), &new, "the plan's new nodes to be removed").await?;
    eventually("api back at 4/6 on the old nodes", &partly_down).await?;
    finish(checker).await
}

// ------------------------------------------------------------------ node conditions

/// While the batch soaks, a new node reports `MemoryPressure` (the test plays its kubelet): the
/// gate fails at once, naming the node and the condition, and the plan rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_under_memory_pressure_fails_the_gate() -> Result<()> {
    let (mut sc, plan, checker) = web_plan("pressure", json!({"soak": "60s"})).await?;
    let soaking = sc
        .wait_plan(&plan, "batch 0 soaking", |p| {
            text(status(p), "/batches/0/phase") == "Soaking" || ended(p)
        })
        .await?;
    ensure!(!ended(&soaking), "{:#}", status(&soaking));
    let node = new_nodes(&sc, &plan, "").await?[0].clone();
    set_node_condition(
        sc.client(),
        &node,
        "MemoryPressure",
        "True",
        "KubeletHasInsufficientMemory",
    )
    .await?;

    let done = sc.wait_end(&plan).await?;
    let st = status(&done);
    ensure!(phase(&done) == Some("RolledBack"), "{st:#}");
    let words = format!("new node {node} reports MemoryPressure");
    ensure!(text(st, "/failure/reason") == "NodeFailed", "{st:#}");
    ensure!(text(st, "/failure/message").contains(&words), "{st:#}");
    ensure!(number(st, "/failure/batch") == Some(0), "{st:#}");
    let degraded = condition(&done, "Degraded").cloned().unwrap_or_default();
    ensure!(text(&degraded, "/message").contains(&words), "{degraded:#}");
    sc.wait_event(&plan, "NodeFailed", &words).await?;
    ensure!(
        st["health"]["unhealthy"].as_array().is_some_and(|u| u
            .iter()
            .any(|u| text(u, "/subject") == "Node" && text(u, "/node") == node)),
        "{:#}",
        st["health"]
    );
    let new = format!("{}={plan}", marks::PLAN_LABEL);
    wait_nodes_gone(sc.client(), &new, "the plan's new nodes to be removed").await?;
    finish(checker).await
}
