//! Drain: PodDisruptionBudgets as the API server applies them, bounded slices of evictions and
//! the API server's refusals.

use super::*;

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
fn a_pod_that_is_not_ready_under_a_budget_that_wants_none_healthy_needs_an_allowed_disruption() {
    // maxUnavailable 1 over one pod that is not Ready: desiredHealthy 0 and 0 disruptions allowed.
    // The API server refuses this eviction (its free pass needs desiredHealthy above zero).
    let mut sick = web("web-9", "old-0");
    sick.ready = false;
    let (_, d) = first_drain(
        plan(),
        1,
        vec![sick.clone()],
        vec![pdb("web-pdb", "web", 0, 0, 0)],
    );
    assert_eq!(acts(&d), ["Cordon old-0"]);
    assert_eq!(d.status.blockers[0].kind, BlockerKind::Pdb);
    // With a disruption allowed it goes, and takes it: a second such pod waits.
    let mut sick2 = web("web-8", "old-0");
    sick2.ready = false;
    let (_, d) = first_drain(
        plan(),
        1,
        vec![sick.clone(), sick2.clone()],
        vec![pdb("web-pdb", "web", 1, 0, 0)],
    );
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-8"]);
    // Under unhealthyPodEvictionPolicy: AlwaysAllow both go, whatever the budget.
    let mut always = pdb("web-pdb", "web", 0, 0, 0);
    always.always_allow_unhealthy = true;
    let (_, d) = first_drain(plan(), 1, vec![sick, sick2], vec![always]);
    assert_eq!(
        acts(&d),
        ["Cordon old-0", "Evict default/web-8", "Evict default/web-9"]
    );
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
