//! Drain: kubectl's rules for each pod (mirror, terminating, finished, DaemonSet, emptyDir,
//! unmanaged) and the workloads a drain displaces.

use super::*;

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
    let d = w.step();
    assert_eq!(acts(&d), ["Cordon old-0"]);
    assert_eq!(events(&d), [reasons::NODES_READY, reasons::DRAINING]);
    // Once the cordon is seen, the pod that will never report its end does not hold the drain.
    let d = w.step();
    assert_eq!(events(&d), [reasons::DRAIN_COMPLETED]);
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
}
