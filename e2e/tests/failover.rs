//! Two molt replicas elect a leader on one Lease. Mid-rollout the leader is frozen (SIGSTOP:
//! a stalled process or a paused VM, the hard case: it comes back believing it leads); the
//! standby takes over once the Lease expires and carries the rollout on; the frozen one,
//! woken, must write nothing and exit. Restarted, it stands by, and when the new leader is
//! killed outright it takes over in turn and the plan completes; stopped with SIGTERM, it
//! releases the Lease. The API server's audit log (every write a ServiceAccount makes, with
//! molt's per-replica User-Agent) is the judge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use molt_e2e::checker::{audit_log_path, ensure_none};
use molt_e2e::molt::{MOLT_NAMESPACE, Molt, MoltOptions, grant_lease, phase, status, updated};
use molt_e2e::scenario::Scenario;
use molt_e2e::workloads::{App, Budget, install};
use molt_e2e::{Cluster, NodePoolSpec, eventually, scrape, unique_name, wait_for_within};
use serde_json::{Value, json};

/// Short enough to keep the test quick, long enough for a noisy machine to renew in time.
const LEASE_SECONDS: u64 = 6;
const GRACE_SECONDS: u64 = 2;
/// How long after the Lease expires a standby may take to acquire it: it wakes at expiry,
/// releases the stale lock, waits up to a second against collisions, then locks.
const TAKEOVER_SLACK: Duration = Duration::from_secs(8);

fn options(instance: &str, lease: &str) -> MoltOptions {
    MoltOptions {
        instance: Some(instance.to_string()),
        args: [
            "--leader-elect",
            "--leader-election-namespace",
            MOLT_NAMESPACE,
            "--leader-election-name",
            lease,
            "--leader-election-lease-duration",
            &LEASE_SECONDS.to_string(),
            "--leader-election-renew-grace",
            &GRACE_SECONDS.to_string(),
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    }
}

/// The Lease once `holder` holds it.
async fn wait_holder(cluster: &Cluster, lease: &str, holder: &str) -> Result<Lease> {
    let api: Api<Lease> = Api::namespaced(cluster.client(), MOLT_NAMESPACE);
    wait_for_within(
        &api,
        lease,
        &format!("{holder} to hold the Lease"),
        Duration::from_secs(120),
        |l| {
            l.and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_deref())
                == Some(holder)
        },
    )
    .await
}

fn renewed(lease: &Lease) -> jiff::Timestamp {
    lease.spec.as_ref().unwrap().renew_time.clone().unwrap().0
}

fn acquired(lease: &Lease) -> jiff::Timestamp {
    lease.spec.as_ref().unwrap().acquire_time.clone().unwrap().0
}

/// A write recorded in the audit log.
#[derive(Debug)]
struct Write {
    at: jiff::Timestamp,
    agent: String,
    what: String,
}

/// Every write by molt's ServiceAccount in the audit log, leases aside (those are the
/// election itself: a standby releases an expired lock before it takes it).
fn writes_by(username: &str) -> Result<Vec<Write>> {
    let text = std::fs::read_to_string(audit_log_path()).context("reading the audit log")?;
    let mut out = vec![];
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or_default();
        if s("/user/username") != username
            || !matches!(
                s("/verb"),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
            || s("/objectRef/resource") == "leases"
        {
            continue;
        }
        let Ok(at) = s("/requestReceivedTimestamp").parse::<jiff::Timestamp>() else {
            continue;
        };
        out.push(Write {
            at,
            agent: s("/userAgent").to_string(),
            what: format!(
                "{} {}/{} {} ({})",
                s("/verb"),
                s("/objectRef/resource"),
                s("/objectRef/subresource"),
                s("/objectRef/name"),
                s("/responseStatus/code")
            ),
        });
    }
    Ok(out)
}

fn show(writes: &[&Write]) -> String {
    writes
        .iter()
        .map(|w| format!("{} {} {}", w.at, w.agent, w.what))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_replaced_writes_nothing_and_a_killed_one_too() -> Result<()> {
    let lease = unique_name("molt-lease");
    // Names of this run alone: the audit log outlives a test.
    let (a_name, b_name) = (unique_name("molt-a"), unique_name("molt-b"));
    let (a_agent, b_agent) = (format!("({a_name})"), format!("({b_name})"));
    let cluster = Cluster::connect().await?;
    grant_lease(&cluster, &lease).await?;
    let mut sc = Scenario::new_with(
        "failover",
        NodePoolSpec::new("fo", 4),
        options(&a_name, &lease),
    )
    .await?;
    wait_holder(&cluster, &lease, &a_name).await?;
    let mut b = Molt::start_with(&cluster, &sc.id, options(&b_name, &lease)).await?;

    // Both replicas answer: the leader says so, the standby is ready too.
    let (a_addr, b_addr) = (sc.molt.http_addr().await?, b.http_addr().await?);
    let (code, body) = scrape::get(&b_addr, "/readyz").await?;
    assert_eq!(code, 200, "a standby is ready: {body}");
    assert!(body.contains("standby"), "{body}");
    assert_eq!(
        scrape::metrics(&a_addr).await?.value("molt_leader"),
        Some(1.0)
    );
    assert_eq!(
        scrape::metrics(&b_addr).await?.value("molt_leader"),
        Some(0.0)
    );

    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 4).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let plan = unique_name("failover");
    let spec = sc.plan_spec("img-v2", 1, json!({"health": {"soak": "4s"}}));
    let checker = sc.create_plan(&plan, spec).await?;

    // Mid-rollout: freeze the leader.
    sc.wait_plan(&plan, "the first batch to complete", |p| updated(p) >= 1)
        .await?;
    let before = wait_holder(&cluster, &lease, &a_name).await?;
    sc.molt.signal("STOP")?;
    let first_takeover = wait_holder(&cluster, &lease, &b_name).await?;
    let t1 = acquired(&first_takeover);
    let waited = t1.duration_since(renewed(&before));
    println!("takeover after a freeze: {waited:#} after molt-a's last renewal");
    assert!(
        Duration::try_from(waited)? <= Duration::from_secs(LEASE_SECONDS) + TAKEOVER_SLACK,
        "molt-b took over {waited:#} after molt-a's last renewal"
    );
    eventually("molt-b to report itself the leader", || async {
        let m = scrape::metrics(&b_addr).await.map_err(|e| e.to_string())?;
        Ok((m.value("molt_leader") == Some(1.0)).then_some(()))
    })
    .await?;

    // Woken, the old leader finds its Lease gone and exits without writing.
    sc.molt.signal("CONT")?;
    let exit = sc.molt.wait_exit(Duration::from_secs(60)).await?;
    assert!(
        !exit.success(),
        "molt-a must exit with an error, got {exit}"
    );
    let log = std::fs::read_to_string(sc.molt.log_path())?;
    assert!(log.contains("lost the leader Lease"), "{log}");

    // The rollout goes on under molt-b; molt-a comes back as a standby.
    sc.wait_plan(&plan, "a batch completed under molt-b", |p| updated(p) >= 2)
        .await?;
    sc.molt.restart().await?;
    // Kill the leader outright, mid-rollout.
    sc.wait_plan(&plan, "the third batch to start", |p| {
        updated(p) >= 2 && phase(p) == Some("Progressing")
    })
    .await?;
    b.kill().await?;
    let second_takeover = wait_holder(&cluster, &lease, &a_name).await?;
    let t3 = acquired(&second_takeover);
    let done = sc.wait_phase(&plan, "Succeeded").await?;
    assert_eq!(updated(&done), 4, "{:#}", status(&done));

    // The audit log: who wrote when.
    let writes = writes_by(sc.molt.username())?;
    let by = |agent: &str| {
        let agent = agent.to_string();
        writes.iter().filter(move |w| w.agent.ends_with(&agent))
    };
    let a_after_loss: Vec<&Write> = by(&a_agent).filter(|w| w.at > t1 && w.at < t3).collect();
    assert!(
        a_after_loss.is_empty(),
        "molt-a wrote after it lost the Lease at {t1}:\n{}",
        show(&a_after_loss)
    );
    let b_as_standby: Vec<&Write> = by(&b_agent).filter(|w| w.at < t1).collect();
    assert!(
        b_as_standby.is_empty(),
        "molt-b wrote while standing by:\n{}",
        show(&b_as_standby)
    );
    let b_after_death: Vec<&Write> = by(&b_agent).filter(|w| w.at > t3).collect();
    assert!(b_after_death.is_empty(), "{}", show(&b_after_death));
    // The log does record each leader's work, so the checks above could fail.
    assert!(
        by(&a_agent).any(|w| w.at < t1),
        "no write of molt-a's first term"
    );
    assert!(
        by(&b_agent).any(|w| w.at > t1 && w.at < t3),
        "no write of molt-b's term"
    );
    assert!(
        by(&a_agent).any(|w| w.at > t3),
        "no write of molt-a's second term"
    );

    // A clean stop (SIGTERM, as in a rolling update) releases the Lease on the way out.
    sc.molt.signal("TERM")?;
    let exit = sc.molt.wait_exit(Duration::from_secs(60)).await?;
    assert!(
        exit.success(),
        "a SIGTERMed leader exits cleanly, got {exit}"
    );
    let api: Api<Lease> = Api::namespaced(cluster.client(), MOLT_NAMESPACE);
    let released = api.get(&lease).await?;
    assert_eq!(
        released
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone()),
        None,
        "the Lease is released: {:?}",
        released.spec
    );

    let provisioned = checker.provisioned();
    let unique: BTreeSet<_> = provisioned.iter().collect();
    assert_eq!(unique.len(), provisioned.len(), "{provisioned:?}");
    ensure_none(&checker.finish().await?)
}
