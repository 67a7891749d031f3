//! Cordon and drain: provenance of cordons, kubectl's pod rules, PodDisruptionBudgets, bounded
//! slices, the API server's answers, observation and the drain timeout.

use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, Blocker, BlockerKind, DisplacedWorkload};
use crate::engine::drain::EVICTIONS_PER_PASS;
use crate::engine::observed::{EvictionFeedback, EvictionOutcome};

/// `n` worker nodes with these pods and PDBs, taken to the decision that starts the first drain
/// (t0+30s, the new nodes just turned Ready). The decision is recorded, not carried out.
fn first_drain(
    p: NodeUpdatePlan,
    n: usize,
    pods: Vec<PodView>,
    pdbs: Vec<PdbView>,
) -> (World, Decision) {
    let mut w = World::with_nodes(p, n);
    for p in pods {
        w.add_pod(p);
    }
    w.obs.pdbs = pdbs;
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    let d = w.decide();
    (w, d)
}

fn web(name: &str, node: &str) -> PodView {
    pod(name, node, "web", t0())
}

// --- cordon ---

#[test]
fn the_draining_event_is_emitted_once_so_it_travels_apart_from_the_cordon() {
    let (mut w, d) = first_drain(plan(), 1, vec![web("web-0", "old-0")], vec![]);
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    assert!(events(&d).contains(&reasons::DRAINING), "{:?}", events(&d));
    // The status is recorded, then the cordon fails (a conflict): nothing else is carried out.
    w.tick(1);
    let again = w.decide();
    assert_eq!(
        acts(&again),
        ["Cordon old-0", "Evict default/web-0"],
        "the actions are asked for again"
    );
    assert!(
        !events(&again).contains(&reasons::DRAINING),
        "the transition's Event is not: the shell must publish it before the actions {:?}",
        events(&again)
    );
}

#[test]
fn molt_cordons_the_batch_before_evicting_and_records_that_it_did() {
    let (mut w, d) = first_drain(
        plan(),
        2,
        vec![web("web-0", "old-0"), web("web-1", "old-1")],
        vec![],
    );
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    assert_eq!(events(&d), [reasons::NODES_READY, reasons::DRAINING]);
    let (kind, note) = event(&d, reasons::DRAINING);
    assert_eq!(kind, EventType::Normal);
    assert!(note.contains("cordoning and draining old-0"), "{note}");
    w.apply(&d);
    assert_eq!(w.node("old-0").cordoned_by(), Some(ME));
    assert!(
        !w.node("old-1").unschedulable,
        "only the batch's nodes are cordoned"
    );
    // A cordon is never repeated once it holds.
    w.tick(5);
    let d = w.decide();
    assert!(
        !acts(&d).iter().any(|a| a.starts_with("Cordon")),
        "{:?}",
        acts(&d)
    );
}

#[test]
fn a_node_a_person_cordoned_is_not_cordoned_again_and_never_uncordoned() {
    let mut p = plan();
    p.spec.health.max_restarts = 0;
    let mut w = World::with_nodes(p, 2);
    w.node_mut("old-1").unschedulable = true; // a person's cordon: no molt annotation
    w.add_pod(web("web-0", "old-1"));
    let d = w.step();
    // Nodes already out of service go first: draining them costs no capacity.
    assert_eq!(w.batch(0).old_nodes, ["old-1"]);
    assert!(acts(&d).contains(&format!("Provision {} for old-1", new_name(0, 0, 0))));
    w.tick(30);
    w.ready_new_nodes();
    let d = w.step();
    assert_eq!(
        acts(&d),
        ["Evict default/web-0"],
        "no Cordon for a node that is already cordoned"
    );
    assert_eq!(w.node("old-1").cordoned_by(), None);

    // The new image fails; the rollback uncordons nothing a person cordoned.
    w.tick(5);
    w.gone();
    w.land("web-1", &new_name(0, 0, 0), "web");
    w.pod_mut("web-1").restarts = 1;
    let new = new_name(0, 0, 0);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        acts(&d),
        [format!("Cordon {new}"), "Evict default/web-1".to_string()]
    );
    w.tick(5);
    w.gone();
    let d = w.step();
    assert_eq!(acts(&d), [format!("RemoveSlot {new}")]);
    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0", "Release old-1"]);
    assert!(w.node("old-1").unschedulable, "the person's cordon stays");
}

// --- kubectl's pod rules ---

#[test]
fn the_drain_follows_kubectl_rules_for_each_pod() {
    let mut job_done = owned_pod("job-done", "old-0", "Job", "report", t0());
    job_done.phase = PodPhase::Succeeded;
    job_done.ready = false;
    let mut mirror = bare_pod("kube-proxy-old-0", "old-0", t0());
    mirror.mirror = true;
    let mut leaving = web("web-old", "old-0");
    leaving.deleting_since = Some(t0());
    let pods = vec![
        owned_pod("agent-x", "old-0", "DaemonSet", "agent", t0()),
        mirror,
        job_done,
        web("web-0", "old-0"),
        leaving,
    ];
    // A budget that allows nothing does not hold back a finished pod.
    let (mut w, d) = first_drain(plan(), 1, pods, vec![pdb("report-pdb", "report", 0, 1, 1)]);
    assert_eq!(
        acts(&d),
        [
            "Cordon old-0",
            "Evict default/job-done",
            "Evict default/web-0"
        ]
    );
    assert!(w.status().blockers.is_empty(), "{:?}", w.status().blockers);
    let c = assert_cond(w.status(), types::PROGRESSING, "True", reasons::DRAINING);
    assert!(
        c.message
            .contains("3 pods to go (1 terminating, 2 evictions issued now)"),
        "{}",
        c.message
    );
    let b = w.batch(0);
    assert_eq!(b.phase, BatchPhase::Draining);
    assert_eq!(b.drain_started_at, time(w.now));
    assert_eq!(b.drain_completed_at, None);

    // Pods on their way out are waited for, never evicted again.
    w.apply(&d);
    w.tick(5);
    let d = w.decide();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(w.batch(0).phase, BatchPhase::Draining);
    assert!(
        cond(w.status(), types::PROGRESSING)
            .message
            .contains("3 pods to go (3 terminating")
    );

    // Once they are gone the drain is complete; DaemonSet and mirror pods stay where they are.
    w.gone();
    w.tick(5);
    let d = w.decide();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::DRAIN_COMPLETED]);
    let b = w.batch(0);
    assert_eq!(b.phase, BatchPhase::Soaking);
    assert_eq!(b.drain_completed_at, time(w.now));
    let left: Vec<&str> = w.obs.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(left, ["agent-x", "kube-proxy-old-0"]);
}

#[test]
fn displaced_workloads_are_recorded_with_their_ready_count_before_the_drain() {
    let mut w = World::with_nodes(plan(), 1);
    for (name, node) in [
        ("web-0", "old-0"),
        ("web-1", "old-0"),
        ("web-2", "elsewhere"),
    ] {
        w.add_pod(web(name, node));
    }
    w.workload("web", 3);
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    w.decide();
    assert_eq!(
        w.batch(0).displaced,
        [DisplacedWorkload {
            workload: rs_ref("web"),
            ready_before: 3,
            short_since: None
        }]
    );
}

#[test]
fn an_empty_dir_pod_blocks_its_node_unless_delete_empty_dir_data() {
    let mut cache = pod("cache-0", "old-0", "cache", t0());
    cache.uses_empty_dir = true;
    let pods = vec![
        cache,
        web("web-0", "old-0"),
        pod("api-0", "old-1", "api", t0()),
    ];
    let p = plan_yaml("  strategy: {batchSize: 2}\n  drain: {deleteEmptyDirData: false}");
    let (w, d) = first_drain(p, 2, pods.clone(), vec![]);
    // Nothing on old-0 is evicted; old-1 drains.
    assert_eq!(
        acts(&d),
        ["Cordon old-0", "Cordon old-1", "Evict default/api-0"]
    );
    assert_eq!(
        w.status().blockers,
        [Blocker {
            node: "old-0".into(),
            pod: Some("default/cache-0".into()),
            reason: "pod default/cache-0 uses an emptyDir volume; set drain.deleteEmptyDirData: true to evict it (its emptyDir data is lost)".into(),
            kind: BlockerKind::DrainRule,
        }]
    );
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_POD,
    );
    assert_eq!(
        events(&d),
        [
            reasons::NODES_READY,
            reasons::DRAINING,
            reasons::DRAIN_BLOCKED_BY_POD
        ]
    );
    assert_eq!(
        event(&d, reasons::DRAIN_BLOCKED_BY_POD).0,
        EventType::Warning
    );

    let (w, d) = first_drain(plan_yaml("  strategy: {batchSize: 2}"), 2, pods, vec![]);
    assert_eq!(
        acts(&d),
        [
            "Cordon old-0",
            "Cordon old-1",
            "Evict default/cache-0",
            "Evict default/web-0",
            "Evict default/api-0"
        ]
    );
    assert_cond(w.status(), types::BLOCKED, "False", reasons::NOT_APPLICABLE);
}

#[test]
fn an_unmanaged_pod_blocks_or_is_evicted_as_the_spec_says() {
    let pods = vec![bare_pod("debug", "old-0", t0()), web("web-0", "old-0")];
    let (w, d) = first_drain(plan(), 1, pods.clone(), vec![]);
    assert_eq!(acts(&d), ["Cordon old-0"]);
    assert_eq!(w.status().blockers.len(), 1);
    assert_eq!(w.status().blockers[0].pod.as_deref(), Some("default/debug"));
    assert!(
        w.status().blockers[0].reason.contains("has no controller"),
        "{:?}",
        w.status().blockers
    );
    assert!(
        w.status().blockers[0]
            .reason
            .contains("drain.unmanagedPods: Evict")
    );
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_POD,
    );

    let (w, d) = first_drain(
        plan_yaml("  drain: {unmanagedPods: Evict}"),
        1,
        pods,
        vec![],
    );
    assert_eq!(
        acts(&d),
        ["Cordon old-0", "Evict default/debug", "Evict default/web-0"]
    );
    assert!(w.status().blockers.is_empty());
}

#[test]
fn a_terminating_pod_on_an_unreachable_node_does_not_hold_the_drain() {
    let mut stuck = web("web-0", "old-0");
    stuck.deleting_since = Some(t0());
    let mut w = World::with_nodes(plan(), 1);
    w.add_pod(stuck);
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    w.set_not_ready("old-0");
    let d = w.decide();
    assert_eq!(acts(&d), ["Cordon old-0"]);
    assert_eq!(
        events(&d),
        [
            reasons::NODES_READY,
            reasons::DRAINING,
            reasons::DRAIN_COMPLETED
        ]
    );
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
}

// --- PodDisruptionBudgets ---

#[test]
fn a_pdb_that_allows_no_disruption_holds_the_pod_and_says_so_once() {
    let (mut w, d) = first_drain(
        plan(),
        1,
        vec![web("web-0", "old-0")],
        vec![pdb("web-pdb", "web", 0, 3, 3)],
    );
    assert_eq!(acts(&d), ["Cordon old-0"], "no eviction a PDB forbids");
    let why = "pod default/web-0: PDB web-pdb allows 0 disruptions (needs 3 healthy, has 3)";
    assert_eq!(
        w.status().blockers,
        [Blocker {
            node: "old-0".into(),
            pod: Some("default/web-0".into()),
            reason: why.into(),
            kind: BlockerKind::Pdb,
        }]
    );
    let c = assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_PDB,
    );
    assert_eq!(c.message, why);
    let blocked_since = c.last_transition_time.clone();
    assert_eq!(blocked_since, Time(w.now));
    let c = assert_cond(w.status(), types::PROGRESSING, "True", reasons::DRAINING);
    assert!(
        c.message.contains(&format!("blocked: {why}")),
        "{}",
        c.message
    );
    assert_eq!(
        events(&d),
        [
            reasons::NODES_READY,
            reasons::DRAINING,
            reasons::DRAIN_BLOCKED_BY_PDB
        ]
    );
    let (kind, note) = event(&d, reasons::DRAIN_BLOCKED_BY_PDB);
    assert_eq!(kind, EventType::Warning);
    assert!(
        note.contains("PDB web-pdb allows 0 disruptions (needs 3 healthy, has 3)"),
        "{note}"
    );
    assert!(
        d.requeue_after.is_some_and(|r| r <= crate::engine::RETRY),
        "the drain retries: {:?}",
        d.requeue_after
    );

    // Still blocked on the next looks: no eviction, and no new Event.
    w.apply(&d);
    for _ in 0..3 {
        w.tick(5);
        let d = w.decide();
        assert_eq!(acts(&d), Vec::<String>::new());
        assert_eq!(events(&d), Vec::<&str>::new());
        let c = assert_cond(
            w.status(),
            types::BLOCKED,
            "True",
            reasons::DRAIN_BLOCKED_BY_PDB,
        );
        assert_eq!(c.last_transition_time, blocked_since);
    }

    // The budget opens: the pod goes and the block lifts.
    w.obs.pdbs = vec![pdb("web-pdb", "web", 1, 4, 3)];
    w.tick(5);
    let d = w.decide();
    assert_eq!(acts(&d), ["Evict default/web-0"]);
    assert!(w.status().blockers.is_empty());
    assert_cond(w.status(), types::BLOCKED, "False", reasons::NOT_APPLICABLE);
}

#[test]
fn a_pod_selected_by_two_pdbs_is_a_blocker() {
    let pdbs = vec![
        pdb("web-pdb", "web", 1, 3, 2),
        pdb("web-pdb-2", "web", 1, 3, 2),
    ];
    let (w, d) = first_drain(plan(), 1, vec![web("web-0", "old-0")], pdbs);
    assert_eq!(acts(&d), ["Cordon old-0"]);
    assert_eq!(w.status().blockers.len(), 1);
    assert!(
        w.status().blockers[0]
            .reason
            .starts_with("pod default/web-0: selected by 2 PDBs (web-pdb, web-pdb-2)"),
        "{:?}",
        w.status().blockers
    );
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_PDB,
    );
    assert_eq!(
        events(&d),
        [
            reasons::NODES_READY,
            reasons::DRAINING,
            reasons::DRAIN_BLOCKED_BY_PDB
        ]
    );
}

#[test]
fn one_pass_spends_a_pdb_budget_only_once() {
    let pods = vec![web("web-0", "old-0"), web("web-1", "old-0")];
    let (w, d) = first_drain(plan(), 1, pods, vec![pdb("web-pdb", "web", 1, 3, 2)]);
    assert_eq!(
        acts(&d),
        ["Cordon old-0", "Evict default/web-0"],
        "the budget allows one disruption"
    );
    assert!(
        cond(w.status(), types::PROGRESSING)
            .message
            .contains("2 pods to go")
    );
    // The pod held back says why, without claiming the budget still allows it.
    assert_eq!(
        w.status().blockers,
        [Blocker {
            node: "old-0".into(),
            pod: Some("default/web-1".into()),
            reason: "pod default/web-1: PDB web-pdb allows 1 disruptions, taken by the 1 evictions just issued (needs 2 healthy, has 3)".into(),
            kind: BlockerKind::Pdb,
        }]
    );
}

#[test]
fn a_pod_that_is_not_ready_may_go_while_the_budget_still_has_its_healthy_pods() {
    let mut sick = web("web-9", "old-0");
    sick.ready = false;
    let (_, d) = first_drain(
        plan(),
        1,
        vec![web("web-0", "old-0"), sick],
        vec![pdb("web-pdb", "web", 0, 3, 3)],
    );
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-9"]);
}

#[test]
fn evictions_go_in_bounded_slices() {
    let pods: Vec<PodView> = (0..20)
        .map(|i| pod(&format!("batch-{i:02}"), "old-0", "batch", t0()))
        .collect();
    let (mut w, d) = first_drain(plan(), 1, pods, vec![]);
    let evictions = acts(&d).iter().filter(|a| a.starts_with("Evict")).count();
    assert_eq!(evictions, EVICTIONS_PER_PASS);
    w.apply(&d);
    w.tick(5);
    w.gone();
    let d = w.decide();
    let rest: Vec<String> = acts(&d);
    assert_eq!(rest.len(), 20 - EVICTIONS_PER_PASS, "{rest:?}");
    assert!(rest.iter().all(|a| a.starts_with("Evict default/batch-")));
}

#[test]
fn the_api_servers_refusal_is_shown_as_a_blocker() {
    let (mut w, d) = first_drain(
        plan(),
        1,
        vec![web("web-0", "old-0")],
        vec![pdb("web-pdb", "web", 1, 3, 2)],
    );
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    // The PDB status was stale: the API server answers 429.
    w.obs.eviction_feedback = vec![EvictionFeedback {
        namespace: "default".into(),
        pod: "web-0".into(),
        uid: "uid-web-0".into(),
        outcome: EvictionOutcome::Blocked(
            "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        ),
    }];
    w.tick(5);
    let d = w.decide();
    assert_eq!(
        acts(&d),
        ["Cordon old-0", "Evict default/web-0"],
        "the eviction is retried"
    );
    let b = &w.status().blockers;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(
        b[0].reason,
        "pod default/web-0: the API server refused the eviction (a PDB blocks it): Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_PDB,
    );
    assert_eq!(events(&d), [reasons::DRAIN_BLOCKED_BY_PDB]);

    // Any other refusal is named too.
    w.obs.eviction_feedback[0].outcome =
        EvictionOutcome::Refused("Internal error occurred: etcd timeout".into());
    w.tick(5);
    w.decide();
    assert!(
        w.status().blockers[0].reason.contains("etcd timeout"),
        "{:?}",
        w.status().blockers
    );
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_POD,
    );
}

// --- observation ---

#[test]
fn no_drain_starts_before_the_nodes_pods_are_observed() {
    let mut w = World::with_nodes(plan(), 1);
    w.add_pod(web("web-0", "old-0"));
    w.obs.pods_observed_on.remove("old-0");
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    let d = w.decide();
    assert_eq!(acts(&d), Vec::<String>::new(), "no cordon, no eviction");
    assert_eq!(events(&d), [reasons::NODES_READY]);
    assert_eq!(w.batch(0).phase, BatchPhase::Provisioning);
    assert_eq!(w.batch(0).drain_started_at, None);
    let c = assert_cond(w.status(), types::PROGRESSING, "True", reasons::OBSERVING);
    assert!(
        c.message.contains("waiting to observe the pods on old-0"),
        "{}",
        c.message
    );
    assert!(d.requeue_after.is_some_and(|r| r <= crate::engine::RETRY));

    w.obs.pods_observed_on.insert("old-0".into());
    w.tick(1);
    let d = w.decide();
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
    assert_eq!(events(&d), [reasons::DRAINING]);
}

// --- drain timeout ---

fn stuck_on_pdb(extra: &str) -> (World, Timestamp) {
    let (mut w, d) = first_drain(
        plan_yaml(extra),
        1,
        vec![web("web-0", "old-0")],
        vec![pdb("web-pdb", "web", 0, 3, 3)],
    );
    w.apply(&d);
    let started = w.now;
    // drain.timeout is 30m from the start of the drain.
    w.tick(1799);
    let d = w.step();
    assert_eq!(
        (w.phase(), w.batch(0).phase),
        (Phase::Progressing, BatchPhase::Draining),
        "{:?}",
        events(&d)
    );
    w.tick(1);
    (w, started)
}

#[test]
fn a_drain_that_times_out_halts_by_default() {
    let (mut w, started) = stuck_on_pdb("");
    let d = w.step();
    assert_eq!(w.phase(), Phase::Halted);
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::DRAIN_TIMEOUT, reasons::HALTED]);
    let f = w.status().failure.clone().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.batch),
        (reasons::DRAIN_TIMEOUT, Some(0))
    );
    assert!(
        f.message.contains("did not finish within 30m (drain.timeout); 1 pods left; pod default/web-0: PDB web-pdb allows 0"),
        "{}",
        f.message
    );
    assert_cond(w.status(), types::DEGRADED, "True", reasons::DRAIN_TIMEOUT);
    assert_cond(w.status(), types::PROGRESSING, "False", reasons::HALTED);
    assert_eq!(w.batch(0).drain_started_at, time(started));
    assert_eq!(
        w.node("old-0").cordoned_by(),
        Some(ME),
        "a halt leaves the node as it is"
    );

    // The budget opening later changes nothing: no eviction after a halt.
    w.obs.pdbs = vec![pdb("web-pdb", "web", 1, 4, 3)];
    w.tick(60);
    let d = w.step();
    assert_idle(&d);
}

#[test]
fn a_drain_that_times_out_rolls_back_with_on_timeout_rollback() {
    let (mut w, _) = stuck_on_pdb("  drain: {onTimeout: Rollback}");
    let new = new_name(0, 0, 0);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        acts(&d),
        [
            "Uncordon old-0".to_string(),
            format!("Cordon {new}"),
            format!("RemoveSlot {new}")
        ]
    );
    assert_eq!(
        events(&d),
        [reasons::DRAIN_TIMEOUT, reasons::ROLLBACK_STARTED]
    );
    assert_cond(w.status(), types::DEGRADED, "True", reasons::DRAIN_TIMEOUT);
    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0"]);
    assert!(!w.node("old-0").unschedulable);
}
