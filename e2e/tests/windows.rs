//! Maintenance windows on the real control plane: a plan created outside its only window waits,
//! saying when the window opens (status, condition, `kubectl get`), and starts once it is open.
//! The window is computed from the test's clock: it opens at the next minute boundary at least
//! 40 s ahead, in UTC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{Result, ensure};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use molt_e2e::NodePoolSpec;
use molt_e2e::checker::ensure_none;
use molt_e2e::molt::{annotation, condition, marks, nodes_matching, phase, status};
use molt_e2e::scenario::Scenario;
use molt_e2e::unique_name;
use serde_json::{Value, json};

fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The next whole minute at least `lead` ahead of `now`.
fn next_minute(now: Timestamp, lead: i64) -> Timestamp {
    let secs = now.as_second() + lead;
    let minute = (secs + 59).div_euclid(60) * 60;
    Timestamp::from_second(minute).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_outside_its_window_waits_then_starts_inside_it() -> Result<()> {
    let mut sc = Scenario::new("window", NodePoolSpec::new("win", 2)).await?;
    let opens = next_minute(Timestamp::now(), 40);
    let local = TimeZone::UTC.to_datetime(opens);
    let end = TimeZone::UTC.to_datetime(opens + SignedDuration::from_mins(30));
    let day = local.date().strftime("%a").to_string();
    let window = json!({
        "days": [day],
        "start": local.strftime("%H:%M").to_string(),
        "end": end.strftime("%H:%M").to_string(),
        "timeZone": "UTC"
    });

    let plan = unique_name("window");
    let spec = sc.plan_spec("img-2", 1, json!({"maintenanceWindows": [window]}));
    let checker = sc.create_plan(&plan, spec).await?;

    // Waiting: Pending, the reason and the opening in words and in status; nothing touched.
    let waiting = sc
        .wait_plan(&plan, "the plan to wait for its window", |p| {
            condition(p, "Progressing")
                .is_some_and(|c| s(c, "/reason") == "OutsideMaintenanceWindow")
        })
        .await?;
    let now = Timestamp::now();
    ensure!(
        now < opens,
        "the test saw the wait only after the window opened ({now} >= {opens}); nothing to judge"
    );
    ensure!(phase(&waiting) == Some("Pending"), "{:#}", status(&waiting));
    let message = s(status(&waiting), "/message");
    let words = format!(
        "waiting for the maintenance window: opens {day} {} UTC",
        local.strftime("%Y-%m-%d %H:%M")
    );
    ensure!(message.contains(&words), "{message:?} lacks {words:?}");
    let next: Timestamp = s(status(&waiting), "/nextWindowAt").parse()?;
    ensure!(next == opens, "nextWindowAt {next}, expected {opens}");
    for n in nodes_matching(sc.client(), &sc.pool.label_selector()).await? {
        ensure!(
            annotation(&n, marks::CLAIMED_BY).is_none()
                && annotation(&n, marks::CORDONED_BY).is_none(),
            "node touched while waiting: {:?}",
            n.metadata.annotations
        );
    }
    let table = kubectl_get(&sc, &plan).await?;
    ensure!(
        table.contains("NEXT-WINDOW")
            && table.contains(&opens.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        "kubectl get nup does not show the opening:\n{table}"
    );

    // Inside the window the plan starts and runs to the end.
    let done = sc.wait_phase(&plan, "Succeeded").await?;
    let st = status(&done);
    let started: Timestamp = s(st, "/startedAt").parse()?;
    ensure!(
        started >= opens,
        "started at {started}, before the window opened at {opens}"
    );
    ensure!(
        st.get("nextWindowAt").is_none(),
        "nextWindowAt kept: {st:#}"
    );
    ensure!(st["batches"].as_array().map(Vec::len) == Some(2), "{st:#}");
    ensure_none(&checker.finish().await?)
}

/// `kubectl get nup <plan>` as a person would run it.
async fn kubectl_get(sc: &Scenario, plan: &str) -> Result<String> {
    let out = tokio::process::Command::new(molt_e2e::tools::kubectl()?)
        .arg("--kubeconfig")
        .arg(sc.cluster.kubeconfig())
        .args(["get", "nup", plan])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "kubectl get nup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}
