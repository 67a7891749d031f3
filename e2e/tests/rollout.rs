//! molt on the real control plane: rollouts, the health gate, rollback, halt,
//! blocked drains, deletion and restarts. Each scenario runs its own molt
//! (`--plan-selector molt.dev/test=<id>`), its own pool and namespace, and an
//! invariant checker (`molt_e2e::checker`) whose violations fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject};
use molt_e2e::checker::{Checker, ObservationKind, ensure_none};
use molt_e2e::k8s::wait_nodes_gone;
use molt_e2e::molt::{
    annotation, batch_nodes, condition, cordon_by_hand, create_control_plane_node,
    is_unschedulable, label, marks, nodes_matching, phase, set_unschedulable, status,
};
use molt_e2e::scenario::Scenario;
use molt_e2e::workloads::{App, Budget, install, set_budget, wait_pdb_current, wait_ready};
use molt_e2e::{FAULT_LABEL, Fault, NodePoolSpec, eventually, unique_name};
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

/// Nodes provisioned for `plan` that still exist.
async fn new_nodes(sc: &Scenario, plan: &str) -> Result<Vec<Node>> {
    nodes_matching(sc.client(), &format!("{}={plan}", marks::PLAN_LABEL)).await
}

/// After a rollback: no node of the plan left, every old node schedulable and
/// without molt's marks (hand-cordoned nodes excepted).
async fn assert_rolled_back_cleanly(
    sc: &Scenario,
    plan: &str,
    hand_cordoned: &[String],
) -> Result<()> {
    wait_nodes_gone(
        sc.client(),
        &format!("{}={plan}", marks::PLAN_LABEL),
        "the plan's new nodes to be removed",
    )
    .await?;
    // molt releases its claims right after it records RolledBack.
    eventually("the pool back to its state before the plan", || async {
        let nodes = nodes_matching(sc.client(), &sc.pool.label_selector())
            .await
            .map_err(|e| e.to_string())?;
        let wrong: Vec<String> = nodes
            .iter()
            .filter(|n| {
                annotation(n, marks::CORDONED_BY).is_some()
                    || annotation(n, marks::CLAIMED_BY).is_some()
                    || is_unschedulable(n) != hand_cordoned.contains(&n.name_any())
            })
            .map(|n| {
                format!(
                    "{} unschedulable={} annotations={:?}",
                    n.name_any(),
                    is_unschedulable(n),
                    n.annotations()
                )
            })
            .collect();
        if wrong.is_empty() {
            Ok(Some(()))
        } else {
            Err(wrong.join("; "))
        }
    })
    .await?;
    // A hand-cordoned node never carries molt's mark, and stays cordoned.
    for n in nodes_matching(sc.client(), &sc.pool.label_selector()).await? {
        if hand_cordoned.contains(&n.name_any()) {
            assert!(is_unschedulable(&n) && annotation(&n, marks::CORDONED_BY).is_none());
        }
    }
    Ok(())
}

/// Waits until the plan is gone (its finalizer done).
async fn wait_deleted(sc: &Scenario, plan: &str) -> Result<()> {
    let plans = sc.plans();
    eventually("the plan to be deleted", || async {
        match plans.get_opt(plan).await {
            Ok(None) => Ok(Some(())),
            Ok(Some(p)) => Err(format!("still there: {:#}", status(&p))),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// After a plan's deletion: every old node schedulable, no molt mark left.
async fn assert_marks_gone(sc: &Scenario) -> Result<()> {
    for n in nodes_matching(sc.client(), &sc.pool.label_selector()).await? {
        if label(&n, marks::PLAN_LABEL).is_none() {
            assert!(!is_unschedulable(&n), "{} still cordoned", n.name_any());
        }
        assert_eq!(annotation(&n, marks::CORDONED_BY), None, "{}", n.name_any());
        assert_eq!(annotation(&n, marks::CLAIMED_BY), None, "{}", n.name_any());
    }
    Ok(())
}

/// The old nodes molt cordoned were all uncordoned before any new node was
/// cordoned or drained (capacity first), by etcd revision.
fn assert_capacity_first(checker: &Checker, old: &[String], new: &[String]) {
    let timeline = checker.timeline();
    let last_uncordon = timeline
        .iter()
        .filter(|o| old.contains(&o.node) && o.kind == ObservationKind::Uncordoned)
        .map(|o| o.revision)
        .max();
    let first_new_action = timeline
        .iter()
        .filter(|o| {
            new.contains(&o.node)
                && matches!(
                    o.kind,
                    ObservationKind::Cordoned { .. }
                        | ObservationKind::PodLeft {
                            daemonset: false,
                            ..
                        }
                )
        })
        .map(|o| o.revision)
        .min();
    let cordoned_old = timeline
        .iter()
        .any(|o| old.contains(&o.node) && o.kind == (ObservationKind::Cordoned { by_molt: true }));
    if cordoned_old {
        let last_uncordon = last_uncordon.expect("old nodes molt cordoned were never uncordoned");
        if let Some(first) = first_new_action {
            assert!(
                last_uncordon < first,
                "an old node was uncordoned (revision {last_uncordon}) after the rollback started on new nodes (revision {first}): {timeline:#?}"
            );
        }
    }
}

fn assert_provisioned_once(checker: &Checker) -> Vec<String> {
    let provisioned = checker.provisioned();
    let unique: BTreeSet<_> = provisioned.iter().collect();
    assert_eq!(
        unique.len(),
        provisioned.len(),
        "a node was provisioned twice: {provisioned:?}"
    );
    provisioned
}

// ------------------------------------------------------------------ scenarios

/// A pool of six nodes (plus a control-plane node the selector also matches)
/// rolls forward two at a time under PDBs; everything ends on new nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roll_forward_with_pdbs_succeeds() -> Result<()> {
    let mut sc = Scenario::new("fwd", NodePoolSpec::new("fwd", 6)).await?;
    let cp = create_control_plane_node(&sc.cluster, sc.pool.name()).await?;
    sc.extra_nodes.names.push(cp.clone());
    let apps = [
        App::new("web", 4).budget(Budget::MinAvailable(3)),
        App::new("api", 3).budget(Budget::MaxUnavailable(1)),
    ];
    install(&sc.ns, &sc.selector(), &apps).await?;
    let old: Vec<String> = sc.pool.nodes().to_vec();

    let plan = unique_name("fwd");
    let spec = sc.plan_spec("img-2", 2, json!({}));
    let checker = sc.create_plan(&plan, spec).await?;
    let done = sc.wait_phase(&plan, "Succeeded").await?;

    let st = status(&done);
    let batches = st["batches"].as_array().expect("batches");
    assert_eq!(batches.len(), 3, "{st:#}");
    for b in batches {
        assert_eq!(s(b, "/phase"), "Completed", "{b:#}");
        for field in [
            "provisionedAt",
            "readyAt",
            "drainStartedAt",
            "soakStartedAt",
            "completedAt",
        ] {
            assert!(
                !s(b, &format!("/{field}")).is_empty(),
                "batch without {field}: {b:#}"
            );
        }
    }
    assert!(condition(&done, "Complete").is_some_and(|c| s(c, "/status") == "True"));

    // Old nodes gone; six new nodes on the target image; the control-plane node untouched.
    let nodes_now: Vec<Node> = nodes_matching(sc.client(), &sc.pool.label_selector()).await?;
    let names: BTreeSet<String> = nodes_now.iter().map(|n| n.name_any()).collect();
    for o in &old {
        assert!(!names.contains(o), "old node {o} still exists");
    }
    let new: Vec<String> = new_nodes(&sc, &plan)
        .await?
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(new.len(), 6, "{new:?}");
    for n in &nodes_now {
        if n.name_any() != cp {
            assert_eq!(
                n.annotations()
                    .get(marks::IMAGE_ANNOTATION)
                    .map(String::as_str),
                Some("img-2")
            );
            assert!(label(n, marks::IMAGE_HASH_LABEL).is_some_and(|h| h.len() == 16));
        }
    }
    let cp_node = nodes_now
        .iter()
        .find(|n| n.name_any() == cp)
        .expect("cp node");
    assert!(!is_unschedulable(cp_node));

    // Workloads Ready on new nodes (the DaemonSet too).
    for app in &apps {
        wait_ready(&sc.ns, &app.name, app.replicas as usize, |n| {
            new.iter().any(|x| x == n)
        })
        .await?;
    }
    wait_ready(&sc.ns, "agent", 6, |n| new.iter().any(|x| x == n)).await?;

    let provisioned = assert_provisioned_once(&checker);
    assert_eq!(provisioned.len(), 6);
    finish(checker).await
}

/// New nodes whose pods never become Ready: the gate fails on readyTimeout and
/// molt rolls back, capacity first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_image_rolls_back() -> Result<()> {
    let mut sc = Scenario::new("notready", NodePoolSpec::new("nr", 4)).await?;
    let apps = [App::new("web", 4).budget(Budget::MaxUnavailable(1))];
    install(&sc.ns, &sc.selector(), &apps).await?;
    let plan = unique_name("notready");
    let spec = sc.plan_spec(
        "img-bad",
        2,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "not-ready"}}}},
            "health": {"readyTimeout": "15s"}
        }),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    sc.wait_phase(&plan, "RollingBack").await?;
    let done = sc.wait_phase(&plan, "RolledBack").await?;

    let st = status(&done);
    let ns = sc.ns.name().to_string();
    let failure = &st["failure"];
    let message = s(failure, "/message");
    assert_eq!(s(failure, "/reason"), "HealthGateFailed", "{st:#}");
    assert!(
        message.contains(&format!("pod {ns}/")) && message.contains("not Ready"),
        "{message}"
    );
    let degraded = condition(&done, "Degraded").expect("Degraded condition");
    assert!(
        s(degraded, "/message").contains(&format!("{ns}/")),
        "{degraded:#}"
    );
    sc.wait_event(&plan, "HealthGateFailed", &format!("{ns}/"))
        .await?;
    sc.wait_event(&plan, "RollbackStarted", "").await?;

    let old = batch_nodes(&done, "oldNodes");
    let new = batch_nodes(&done, "newNodes");
    assert_eq!(new.len(), 2, "{st:#}");
    assert_capacity_first(&checker, &old, &new);
    assert_rolled_back_cleanly(&sc, &plan, &[]).await?;
    let pool = sc.pool.nodes().to_vec();
    wait_ready(&sc.ns, "web", 4, |n| pool.iter().any(|x| x == n)).await?;
    assert_provisioned_once(&checker);
    finish(checker).await
}

/// New nodes whose pods crash-loop: the gate fails on restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashloop_image_rolls_back_on_restarts() -> Result<()> {
    let mut sc = Scenario::new("crash", NodePoolSpec::new("cl", 3)).await?;
    let apps = [App::new("web", 3).budget(Budget::MaxUnavailable(1))];
    install(&sc.ns, &sc.selector(), &apps).await?;
    let plan = unique_name("crash");
    let spec = sc.plan_spec(
        "img-crash",
        1,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "crashloop"}}}},
            "health": {"readyTimeout": "2m", "maxRestarts": 2}
        }),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    let done = sc.wait_phase(&plan, "RolledBack").await?;
    let st = status(&done);
    let message = s(&st["failure"], "/message");
    assert!(
        message.contains("restarted") && message.contains("maxRestarts"),
        "{st:#}"
    );
    sc.wait_event(&plan, "HealthGateFailed", "restarted")
        .await?;
    let (old, new) = (
        batch_nodes(&done, "oldNodes"),
        batch_nodes(&done, "newNodes"),
    );
    assert_capacity_first(&checker, &old, &new);
    assert_rolled_back_cleanly(&sc, &plan, &[]).await?;
    let pool = sc.pool.nodes().to_vec();
    wait_ready(&sc.ns, "web", 3, |n| pool.iter().any(|x| x == n)).await?;
    finish(checker).await
}

/// `onFailure: Halt`: the plan stops where it is, nothing happens afterwards
/// (also not after a restart of molt), and deleting the plan uncordons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_stops_everything_and_deletion_uncordons() -> Result<()> {
    let mut sc = Scenario::new("halt", NodePoolSpec::new("halt", 4)).await?;
    let apps = [App::new("web", 4).budget(Budget::MaxUnavailable(1))];
    install(&sc.ns, &sc.selector(), &apps).await?;
    let plan = unique_name("halt");
    let spec = sc.plan_spec(
        "img-bad",
        2,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "not-ready"}}}},
            "health": {"readyTimeout": "15s"},
            "onFailure": "Halt"
        }),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    let halted = sc.wait_phase(&plan, "Halted").await?;
    assert_eq!(
        s(&status(&halted)["failure"], "/reason"),
        "HealthGateFailed"
    );
    sc.wait_event(&plan, "Halted", "").await?;

    // Watch a while: restart molt so it re-observes everything, and let
    // several readyTimeouts pass. The checker flags any cordon, eviction or
    // provisioning; the nodes must look exactly as they did.
    let snapshot = |nodes: Vec<Node>| {
        nodes
            .into_iter()
            .map(|n| (n.name_any(), is_unschedulable(&n)))
            .collect::<Vec<_>>()
    };
    let before = snapshot(nodes_matching(sc.client(), &sc.pool.label_selector()).await?);
    sc.molt.restart().await?;
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    sc.molt.check_running()?;
    let after = snapshot(nodes_matching(sc.client(), &sc.pool.label_selector()).await?);
    assert_eq!(before, after, "nodes changed after the halt");
    let still = sc.plans().get(&plan).await?;
    assert_eq!(phase(&still), Some("Halted"));
    ensure_none(&checker.violations_so_far())?;

    // Deleting the plan uncordons what molt cordoned and removes its marks.
    sc.plans().delete(&plan, &DeleteParams::default()).await?;
    wait_deleted(&sc, &plan).await?;
    assert_marks_gone(&sc).await?;
    finish(checker).await
}

/// A PDB that allows no disruption blocks the drain and is named in status;
/// raising the budget lets the drain go on; a drain blocked past
/// drain.timeout follows onTimeout (here Rollback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdb_blocks_drain_until_budget_raised_then_timeout_rolls_back() -> Result<()> {
    // Node 1 carries a label the single-replica `db` is pinned to (its
    // replacement copies the label, so the pod could move there).
    let mut sc = Scenario::new("pdb", NodePoolSpec::new("pdb", 2)).await?;
    let db_node = sc.pool.nodes()[1].clone();
    let nodes: Api<Node> = Api::all(sc.client());
    nodes
        .patch(
            &db_node,
            &Default::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"e2e.molt.dev/role": "db"}}})),
        )
        .await?;
    let web = App::new("web", 2).budget(Budget::MinAvailable(2));
    install(&sc.ns, &sc.selector(), std::slice::from_ref(&web)).await?;
    let mut db_selector = sc.selector();
    db_selector.insert("e2e.molt.dev/role".into(), "db".into());
    install_db(&sc, &db_selector).await?;

    let plan = unique_name("pdb");
    let spec = sc.plan_spec(
        "img-2",
        1,
        json!({"drain": {"timeout": "20s", "onTimeout": "Rollback"}}),
    );
    let checker = sc.create_plan(&plan, spec).await?;

    // Batch 0 drains node 0, where one web pod runs: web-pdb allows 0.
    let blocked = sc
        .wait_plan(&plan, "a blocker naming web-pdb", |p| {
            status(p)["blockers"]
                .as_array()
                .is_some_and(|bs| bs.iter().any(|b| s(b, "/reason").contains("web-pdb")))
        })
        .await?;
    assert!(condition(&blocked, "Blocked").is_some_and(|c| s(c, "/status") == "True"));
    sc.wait_event(&plan, "DrainBlockedByPDB", "web-pdb").await?;

    set_budget(&sc.ns, &web.pdb_name(), Budget::MinAvailable(1)).await?;
    sc.wait_plan(&plan, "batch 0 drained", |p| {
        !s(status(p), "/batches/0/drainCompletedAt").is_empty()
    })
    .await?;

    // Batch 1 drains node 1: the db pod's PDB allows nothing, so the drain
    // times out and the plan rolls back.
    let done = sc.wait_phase(&plan, "RolledBack").await?;
    let st = status(&done);
    assert_eq!(s(&st["failure"], "/reason"), "DrainTimeout", "{st:#}");
    let (old, new) = (
        batch_nodes(&done, "oldNodes"),
        batch_nodes(&done, "newNodes"),
    );
    assert_capacity_first(&checker, &old, &new);
    assert_rolled_back_cleanly(&sc, &plan, &[]).await?;
    let pool = sc.pool.nodes().to_vec();
    wait_ready(&sc.ns, "web", 2, |n| pool.iter().any(|x| x == n)).await?;
    wait_ready(&sc.ns, "db", 1, |n| n == db_node).await?;
    finish(checker).await
}

async fn install_db(
    sc: &Scenario,
    selector: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::PostParams;
    sc.ns
        .api::<Deployment>()
        .create(
            &PostParams::default(),
            &molt_e2e::workloads::web_deployment("db", 1, selector)?,
        )
        .await?;
    sc.ns
        .api::<PodDisruptionBudget>()
        .create(
            &PostParams::default(),
            &molt_e2e::workloads::pdb("db-pdb", "db", Budget::MinAvailable(1))?,
        )
        .await?;
    wait_ready(&sc.ns, "db", 1, |_| true).await?;
    wait_pdb_current(&sc.ns, "db-pdb").await?;
    Ok(())
}

/// A workload that crash-loops before the plan neither trips the gate (a
/// healthy image succeeds beside it) nor hides a new failure (a faulty image
/// is still rolled back, and the failure names the new victims only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preexisting_crashloop_neither_trips_nor_hides() -> Result<()> {
    let mut sc = Scenario::new("pre", NodePoolSpec::new("pre", 3)).await?;
    // Node 0 crash-loops its pods and hosts `legacy`; its replacement copies
    // both labels, so legacy keeps crash-looping wherever it goes.
    let sick = sc.pool.nodes()[0].clone();
    let nodes: Api<Node> = Api::all(sc.client());
    nodes
        .patch(
            &sick,
            &Default::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {
                FAULT_LABEL: Fault::CrashLoop.label_value(), "e2e.molt.dev/role": "legacy"
            }}})),
        )
        .await?;
    let mut legacy_sel = sc.selector();
    legacy_sel.insert("e2e.molt.dev/role".into(), "legacy".into());
    let mut web_sel = sc.selector();
    web_sel.insert("e2e.molt.dev/role".into(), "web".into());
    for n in &sc.pool.nodes()[1..] {
        nodes
            .patch(
                n,
                &Default::default(),
                &kube::api::Patch::Merge(
                    json!({"metadata": {"labels": {"e2e.molt.dev/role": "web"}}}),
                ),
            )
            .await?;
    }
    let deployments = sc.ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    deployments
        .create(
            &Default::default(),
            &molt_e2e::workloads::web_deployment("legacy", 2, &legacy_sel)?,
        )
        .await?;
    install(
        &sc.ns,
        &web_sel,
        &[App::new("web", 2).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let pods: Api<Pod> = sc.ns.api();
    eventually("legacy to be crash-looping", || async {
        let live = molt_e2e::live_pods(&pods, "app=legacy").await?;
        if live.len() == 2 && live.iter().all(|p| molt_e2e::pod_restarts(p) > 2) {
            Ok(Some(()))
        } else {
            Err(molt_e2e::describe_pods(&live))
        }
    })
    .await?;

    // A healthy image: legacy lands on a new node, still crashing, and the plan succeeds: its
    // pods there are excused (it was that short before), not excluded.
    let plan1 = unique_name("pre-ok");
    let spec1 = sc.plan_spec(
        "img-2",
        3,
        json!({"health": {"maxRestarts": 1, "readyTimeout": "15s"}}),
    );
    let checker1 = sc.create_plan(&plan1, spec1).await?;
    let ok = sc.wait_phase(&plan1, "Succeeded").await?;
    let pre = status(&ok)["preexisting"].to_string();
    assert!(
        pre.contains("legacy"),
        "legacy not listed as pre-existing: {:#}",
        status(&ok)
    );
    finish(checker1).await?;
    let new1: Vec<String> = new_nodes(&sc, &plan1)
        .await?
        .iter()
        .map(|n| n.name_any())
        .collect();
    wait_ready(&sc.ns, "web", 2, |n| new1.iter().any(|x| x == n)).await?;

    // A faulty image: web's pods on the new nodes never become Ready; the
    // gate fails naming web, not legacy.
    let plan2 = unique_name("pre-bad");
    let spec2 = sc.plan_spec(
        "img-3",
        3,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "not-ready"}}}},
            "health": {"maxRestarts": 1, "readyTimeout": "15s"}
        }),
    );
    let checker2 = sc.create_plan(&plan2, spec2).await?;
    let done = sc.wait_phase(&plan2, "RolledBack").await?;
    let st = status(&done);
    let message = s(&st["failure"], "/message");
    // The new victims (web or the agent DaemonSet on the new nodes) are named; legacy is not.
    let ns = sc.ns.name().to_string();
    assert!(
        message.contains(&format!("pod {ns}/")) && message.contains("not Ready"),
        "{st:#}"
    );
    assert!(!message.contains("legacy-"), "{st:#}");
    assert!(
        !st["health"]["unhealthy"].to_string().contains("legacy-"),
        "{st:#}"
    );
    assert!(st["preexisting"].to_string().contains("legacy"), "{st:#}");
    finish(checker2).await?;
    wait_ready(&sc.ns, "web", 2, |n| new1.iter().any(|x| x == n)).await?;
    Ok(())
}

/// New nodes that never become Ready: rollback after nodeReadyTimeout; no old
/// node was ever cordoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_never_ready_rolls_back_after_node_ready_timeout() -> Result<()> {
    let mut sc = Scenario::new("nodenr", NodePoolSpec::new("nnr", 2)).await?;
    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 2).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let plan = unique_name("nodenr");
    let spec = sc.plan_spec(
        "img-dead",
        2,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "node-not-ready"}}}},
            "health": {"nodeReadyTimeout": "20s"}
        }),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    let done = sc.wait_phase(&plan, "RolledBack").await?;
    let st = status(&done);
    let message = s(&st["failure"], "/message");
    assert!(message.contains("nodeReadyTimeout"), "{st:#}");
    let pool = sc.pool.nodes().to_vec();
    for o in checker.timeline() {
        assert!(
            !(pool.contains(&o.node) && o.kind == ObservationKind::Cordoned { by_molt: true }),
            "an old node was cordoned although no new node became Ready: {o:?}"
        );
    }
    assert_rolled_back_cleanly(&sc, &plan, &[]).await?;
    finish(checker).await
}

/// A node a person cordoned before the plan stays cordoned through a
/// rollback, and never gets molt's mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_cordoned_node_stays_cordoned_after_rollback() -> Result<()> {
    let mut sc = Scenario::new("hand", NodePoolSpec::new("hand", 3)).await?;
    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 2).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let hand = sc.pool.nodes()[2].clone();
    cordon_by_hand(sc.client(), &hand).await?;
    let plan = unique_name("hand");
    let spec = sc.plan_spec(
        "img-bad",
        2,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "not-ready"}}}},
            "health": {"readyTimeout": "15s"}
        }),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    let done = sc.wait_phase(&plan, "RolledBack").await?;
    // molt takes already-unschedulable nodes first.
    assert!(
        batch_nodes(&done, "oldNodes").contains(&hand),
        "{:#}",
        status(&done)
    );
    assert_rolled_back_cleanly(&sc, &plan, std::slice::from_ref(&hand)).await?;
    finish(checker).await
}

/// Deleting a plan mid-rollout: every node molt cordoned is schedulable
/// again and molt's marks are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_deleted_mid_rollout_uncordons() -> Result<()> {
    let mut sc = Scenario::new("del", NodePoolSpec::new("del", 4)).await?;
    install(
        &sc.ns,
        &sc.selector(),
        &[App::new("web", 4).budget(Budget::MaxUnavailable(1))],
    )
    .await?;
    let plan = unique_name("del");
    let spec = sc.plan_spec("img-2", 2, json!({"health": {"soak": "10m"}}));
    let checker = sc.create_plan(&plan, spec).await?;
    let soaking = sc
        .wait_plan(&plan, "batch 0 soaking", |p| {
            s(status(p), "/batches/0/phase") == "Soaking"
        })
        .await?;
    let old = batch_nodes(&soaking, "oldNodes");
    for n in &old {
        let node: Node = Api::all(sc.client()).get(n).await?;
        assert!(
            is_unschedulable(&node) && annotation(&node, marks::CORDONED_BY) == Some(plan.as_str())
        );
    }
    sc.plans().delete(&plan, &DeleteParams::default()).await?;
    wait_deleted(&sc, &plan).await?;
    assert_marks_gone(&sc).await?;
    finish(checker).await
}

/// molt SIGKILLed at moments spread over a rollout (and once during a
/// rollback), restarted each time: same end state as an uninterrupted run, no
/// node provisioned twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_molt_reaches_the_same_end_state() -> Result<()> {
    let mut sc = Scenario::new("kill", NodePoolSpec::new("kill", 6)).await?;
    let apps = [
        App::new("web", 4).budget(Budget::MinAvailable(3)),
        App::new("api", 3).budget(Budget::MaxUnavailable(1)),
    ];
    install(&sc.ns, &sc.selector(), &apps).await?;
    let old: Vec<String> = sc.pool.nodes().to_vec();

    let plan = unique_name("kill");
    // A soak long enough that six kills fit in the rollout. A kill in the middle of an
    // eviction can leave the pod in the budget's `disruptedPods` without deleting it; the API
    // server then counts it as gone for 2 minutes (its deletion timeout), during which the
    // budget allows one disruption fewer. The drain timeout must outlast that.
    let spec = sc.plan_spec(
        "img-2",
        2,
        json!({"health": {"soak": "12s"}, "drain": {"timeout": "5m"}}),
    );
    let checker = sc.create_plan(&plan, spec).await?;
    // Kill points: moments of the rollout by progress (batch, then phase within
    // it), each "this far or further", so a moment passed between two looks is
    // not missed; each is followed by a random delay of up to 1.5 s, so molt
    // dies at varying points between its status write and its actions.
    let moments: [(&str, u64); 6] = [
        ("a batch recorded", progress_rank(0, "Provisioning")),
        ("batch 0 draining or later", progress_rank(0, "Draining")),
        ("batch 0 soaking or later", progress_rank(0, "Soaking")),
        ("batch 1 recorded", progress_rank(1, "Provisioning")),
        ("batch 1 soaking or later", progress_rank(1, "Soaking")),
        ("batch 2 recorded", progress_rank(2, "Provisioning")),
    ];
    let mut kills = 0;
    for (what, rank) in moments {
        let reached = sc
            .wait_plan(&plan, what, |p| {
                progress(p) >= rank || phase(p) == Some("Succeeded")
            })
            .await?;
        if phase(&reached) == Some("Succeeded") {
            break;
        }
        tokio::time::sleep(random_delay()).await;
        sc.molt.restart().await?;
        kills += 1;
    }
    assert!(
        kills >= 5,
        "only {kills} kills happened before the plan finished"
    );
    let done = sc.wait_phase(&plan, "Succeeded").await?;
    // The same end state as the uninterrupted run.
    let st = status(&done);
    assert_eq!(st["batches"].as_array().map(Vec::len), Some(3), "{st:#}");
    let new: Vec<String> = new_nodes(&sc, &plan)
        .await?
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(new.len(), 6);
    for o in &old {
        assert!(
            Api::<Node>::all(sc.client()).get_opt(o).await?.is_none(),
            "{o} still exists"
        );
    }
    for app in &apps {
        wait_ready(&sc.ns, &app.name, app.replicas as usize, |n| {
            new.iter().any(|x| x == n)
        })
        .await?;
    }
    let provisioned = assert_provisioned_once(&checker);
    assert_eq!(provisioned.len(), 6, "{provisioned:?}");
    finish(checker).await?;

    // A rollback interrupted by a kill: a faulty image on the new pool.
    let plan2 = unique_name("kill-rb");
    let spec2 = sc.plan_spec(
        "img-bad",
        2,
        json!({
            "provider": {"kwok": {"nodeTemplate": {"labels": {FAULT_LABEL: "not-ready"}}}},
            "health": {"readyTimeout": "15s"}
        }),
    );
    let checker2 = sc.create_plan(&plan2, spec2).await?;
    let rb = sc
        .wait_plan(&plan2, "rolling back (or done)", |p| {
            matches!(phase(p), Some("RollingBack" | "RolledBack"))
        })
        .await?;
    if phase(&rb) == Some("RollingBack") {
        tokio::time::sleep(random_delay()).await;
        sc.molt.restart().await?;
    } else {
        eprintln!("the rollback finished before molt could be killed during it");
    }
    let done2 = sc.wait_phase(&plan2, "RolledBack").await?;
    let (old2, new2) = (
        batch_nodes(&done2, "oldNodes"),
        batch_nodes(&done2, "newNodes"),
    );
    assert_capacity_first(&checker2, &old2, &new2);
    assert_rolled_back_cleanly(&sc, &plan2, &[]).await?;
    assert_eq!(assert_provisioned_once(&checker2).len(), 2);
    for app in &apps {
        wait_ready(&sc.ns, &app.name, app.replicas as usize, |n| {
            new.iter().any(|x| x == n)
        })
        .await?;
    }
    finish(checker2).await
}

/// Where a batch phase stands in a batch's life.
fn phase_rank(phase: &str) -> u64 {
    match phase {
        "Provisioning" => 1,
        "Draining" => 2,
        "Soaking" => 3,
        "RemovingOldNodes" => 4,
        "Completed" => 5,
        _ => 0,
    }
}

/// How far a rollout has come: batch `index` in `phase`, as one number.
fn progress_rank(index: u64, phase: &str) -> u64 {
    index * 10 + phase_rank(phase)
}

/// How far the plan's rollout has come (see [`progress_rank`]).
fn progress(p: &DynamicObject) -> u64 {
    let st = status(p);
    let batches = st["batches"].as_array().cloned().unwrap_or_default();
    match batches.last() {
        None => 0,
        Some(b) => progress_rank(
            batches.len() as u64 - 1,
            b["phase"].as_str().unwrap_or_default(),
        ),
    }
}

fn random_delay() -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    std::time::Duration::from_millis(u64::from(nanos % 1500))
}

/// The checker itself catches violations: a pod deleted instead of evicted
/// (1), more old nodes carrying molt's cordon mark than a batch (2), and a
/// hand-cordoned node uncordoned (3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_catches_violations() -> Result<()> {
    let mut sc = Scenario::new("chk", NodePoolSpec::new("chk", 4)).await?;
    install(&sc.ns, &sc.selector(), &[App::new("web", 2)]).await?;
    let hand = sc.pool.nodes()[3].clone();
    cordon_by_hand(sc.client(), &hand).await?;
    // A plan that cannot start moving (paused), so only the test acts.
    let plan = unique_name("chk");
    let spec = sc.plan_spec("img-2", 1, json!({"paused": true}));
    let checker = sc.create_plan(&plan, spec).await?;
    // Invariant 1: a pod deleted directly (not evicted) from a selected node.
    let pods: Api<Pod> = sc.ns.api();
    let victim = molt_e2e::live_pods(&pods, "app=web")
        .await
        .map_err(anyhow::Error::msg)?;
    let victim = victim.first().expect("a web pod").name_any();
    pods.delete(&victim, &DeleteParams::default()).await?;
    // Invariant 3: the hand-cordoned node is uncordoned.
    set_unschedulable(sc.client(), &hand, false).await?;
    // Invariant 2: two old nodes cordoned with molt's mark (batch size 1).
    let nodes: Api<Node> = Api::all(sc.client());
    for n in &sc.pool.nodes()[..2] {
        nodes
            .patch(
                n,
                &Default::default(),
                &kube::api::Patch::Merge(json!({
                    "metadata": {"annotations": {marks::CORDONED_BY: plan}},
                    "spec": {"unschedulable": true}
                })),
            )
            .await?;
    }
    let found = eventually("the checker to see both violations", || async {
        let v = checker.violations_so_far();
        if v.iter().any(|m| m.starts_with("invariant 3"))
            && v.iter().any(|m| m.starts_with("invariant 2"))
        {
            Ok(Some(v))
        } else {
            Err(format!("{v:?}"))
        }
    })
    .await?;
    assert!(found.iter().any(|m| m.contains(&hand)), "{found:?}");
    // Undo the fake marks so the plan's deletion has nothing to clean up.
    for n in &sc.pool.nodes()[..2] {
        nodes
            .patch(
                n,
                &Default::default(),
                &kube::api::Patch::Merge(json!({
                    "metadata": {"annotations": {marks::CORDONED_BY: null}},
                    "spec": {"unschedulable": false}
                })),
            )
            .await?;
    }
    let violations = checker.finish().await?;
    assert!(
        violations.iter().any(|m| m.starts_with("invariant 2")),
        "{violations:?}"
    );
    assert!(
        violations.iter().any(|m| m.starts_with("invariant 3")),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|m| m.starts_with("invariant 1") && m.contains(&victim)),
        "{violations:?}"
    );
    Ok(())
}
