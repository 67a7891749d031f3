//! Durable state and ownership on the real control plane: plans that overlap,
//! created in the same instant, take turns; a controller restarted more often
//! than the soak lasts still gets past it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use kube::ResourceExt;
use kube::api::DynamicObject;
use molt_e2e::checker::{Checker, ensure_none};
use molt_e2e::molt::{batch_nodes, label, marks, nodes_matching, phase, plan_object, status};
use molt_e2e::scenario::Scenario;
use molt_e2e::workloads::{App, Budget, install};
use molt_e2e::{NodePoolSpec, eventually, tools, unique_name};
use serde_json::{Value, json};

fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

async fn finish(checker: Checker) -> Result<()> {
    let violations = checker.finish().await?;
    ensure_none(&violations)
}

/// `kubectl apply` of several objects in one file, as a person or a GitOps tool does.
fn kubectl_apply(sc: &Scenario, objects: &[DynamicObject]) -> Result<()> {
    let mut yaml = String::new();
    for o in objects {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml_ng::to_string(o)?);
    }
    let mut child = Command::new(tools::tool("kubectl")?)
        .arg("--kubeconfig")
        .arg(sc.cluster.kubeconfig())
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running kubectl apply")?;
    child
        .stdin
        .take()
        .context("kubectl's stdin")?
        .write_all(yaml.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("kubectl apply failed: {status}");
    }
    Ok(())
}

fn sorted(v: Vec<String>) -> Vec<String> {
    let mut v = v;
    v.sort();
    v
}

/// Two plans over the same pool in one `kubectl apply`: exactly one runs, the
/// other waits until it is done, then rolls the first one's new nodes. Neither
/// ever takes the other's nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_plans_applied_together_take_turns() -> Result<()> {
    let mut sc = Scenario::new("overlap", NodePoolSpec::new("overlap", 4)).await?;
    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 3).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let pool: Vec<String> = sorted(sc.pool.nodes().to_vec());
    let names = [unique_name("overlap-a"), unique_name("overlap-b")];
    let mut checkers = vec![];
    let mut objects = vec![];
    for (name, image) in names.iter().zip(["img-a", "img-b"]) {
        let spec = sc.plan_spec(image, 2, json!({}));
        checkers.push(sc.watch_plan(name, &spec).await?);
        objects.push(plan_object(name, &sc.id, spec)?);
    }
    kubectl_apply(&sc, &objects)?;

    let mut done = vec![];
    for name in &names {
        done.push(sc.wait_phase(name, "Succeeded").await?);
    }
    let completed = |p: &DynamicObject| s(status(p), "/completedAt");
    let (first, second) = if completed(&done[0]) <= completed(&done[1]) {
        (&done[0], &done[1])
    } else {
        (&done[1], &done[0])
    };
    let started_second = s(status(second), "/startedAt");
    assert!(
        started_second >= completed(first),
        "both plans ran at once: {} started at {started_second}, before {} completed at {}",
        second.name_any(),
        first.name_any(),
        completed(first)
    );
    // The first plan replaced exactly the pool; the second exactly the first one's new nodes.
    assert_eq!(sorted(batch_nodes(first, "oldNodes")), pool);
    let first_new = sorted(batch_nodes(first, "newNodes"));
    assert_eq!(first_new.len(), 4, "{:#}", status(first));
    assert_eq!(sorted(batch_nodes(second, "oldNodes")), first_new);
    let second_new: BTreeSet<String> = batch_nodes(second, "newNodes").into_iter().collect();
    assert_eq!(second_new.len(), 4, "{:#}", status(second));
    for p in [first, second] {
        assert_eq!(
            status(p)
                .pointer("/summary/updated")
                .and_then(Value::as_u64),
            Some(4),
            "{:#}",
            status(p)
        );
    }
    // The pool ends as the second plan made it, with no claim left.
    let nodes = nodes_matching(sc.client(), &sc.pool.label_selector()).await?;
    let now: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    assert_eq!(now, second_new);
    for n in &nodes {
        assert_eq!(
            label(n, marks::PLAN_LABEL),
            Some(second.name_any().as_str())
        );
    }
    // molt releases its claims right after it records Succeeded.
    eventually("every claim released", || async {
        let nodes = nodes_matching(sc.client(), &sc.pool.label_selector())
            .await
            .map_err(|e| e.to_string())?;
        let claimed: Vec<String> = nodes
            .iter()
            .filter(|n| n.annotations().contains_key(marks::CLAIMED_BY))
            .map(|n| n.name_any())
            .collect();
        if claimed.is_empty() {
            Ok(Some(()))
        } else {
            Err(format!("still claimed: {claimed:?}"))
        }
    })
    .await?;
    for c in checkers {
        let provisioned = c.provisioned();
        assert_eq!(provisioned.len(), 4, "{provisioned:?}");
        finish(c).await?;
    }
    Ok(())
}

/// molt SIGKILLed every few seconds, more often than the soak lasts: the soak
/// clock is in status, so the batch still passes, on the clock it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_outlasts_restarts_more_frequent_than_itself() -> Result<()> {
    let mut sc = Scenario::new("soak", NodePoolSpec::new("soak", 2)).await?;
    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 2).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let plan = unique_name("soak");
    let spec = sc.plan_spec("img-2", 2, json!({"health": {"soak": "30s"}}));
    let checker = sc.create_plan(&plan, spec).await?;
    let soaking = sc
        .wait_plan(&plan, "the soak to start", |p| {
            !s(status(p), "/batches/0/soakStartedAt").is_empty()
        })
        .await?;
    let since = s(status(&soaking), "/batches/0/soakStartedAt");

    // A kill every 6 s: five or more fall inside the 30 s soak.
    let gap = std::time::Duration::from_secs(6);
    let mut kills = 0;
    loop {
        tokio::time::sleep(gap).await;
        let now = molt_e2e::molt::plans(sc.client()).get(&plan).await?;
        if phase(&now) == Some("Succeeded") {
            break;
        }
        if kills >= 20 {
            bail!(
                "the soak never passed through {kills} restarts {gap:?} apart; status: {:#}",
                status(&now)
            );
        }
        sc.molt.restart().await?;
        kills += 1;
    }
    assert!(kills >= 4, "only {kills} restarts fell inside the soak");
    let done = sc.wait_phase(&plan, "Succeeded").await?;
    assert_eq!(
        s(status(&done), "/batches/0/soakStartedAt"),
        since,
        "the soak started over"
    );
    finish(checker).await
}
