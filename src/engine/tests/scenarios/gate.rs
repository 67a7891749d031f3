//! The gate on hard cases: blips against failures, one failure counted once, outages that predate
//! the plan, nodes that are not up, node pressure, and what a halt keeps.

use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, PreexistingOutage, Subject, Verdict};

/// The pod's readiness changes now (its `Ready` condition's last transition).
fn flip(w: &mut World, pod: &str, ready: bool) {
    let now = w.now;
    let p = w.pod_mut(pod);
    p.ready = ready;
    p.ready_since = Some(now);
}

fn health(w: &World) -> crate::api::HealthStatus {
    w.status().health.clone().unwrap()
}

/// Soaking, `web-1` Ready since the drain + 10 s, past its `readyTimeout` (drain + 300 s).
fn soaking_past_start_up() -> (World, Timestamp) {
    let (mut w, drained) = soaking(plan());
    w.tick(10);
    flip(&mut w, "web-1", true);
    w.step();
    assert_eq!(w.batch(0).soak_started_at, time(at(drained, 10)));
    w.now = at(drained, 301);
    w.step();
    assert_eq!(health(&w).verdict, Verdict::Healthy);
    (w, drained)
}

#[test]
fn readiness_lost_for_less_than_not_ready_timeout_is_a_blip_that_keeps_the_soak_clock() {
    let (mut w, drained) = soaking_past_start_up();
    flip(&mut w, "web-1", false);
    let lost = w.now;
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = health(&w);
    assert_eq!(h.verdict, Verdict::Pending);
    assert_eq!(
        h.waiting_for,
        [format!(
            "pod default/web-1 to be Ready again (not Ready since {lost}; counts at {})",
            at(lost, 60)
        )]
    );
    assert_eq!(
        w.batch(0).soak_started_at,
        time(at(drained, 10)),
        "a blip does not start the soak over"
    );
    // The soak's end comes during the blip: it does not pass on a pod that is not Ready.
    w.now = at(drained, 310);
    let d = w.step();
    assert_eq!(
        (w.batch(0).phase, events(&d)),
        (BatchPhase::Soaking, vec![])
    );
    // Ready again 50 s after it was lost: the soak passes on the clock it kept.
    w.now = at(lost, 50);
    flip(&mut w, "web-1", true);
    let d = w.step();
    assert_eq!(events(&d)[0], reasons::HEALTH_GATE_PASSED);
}

#[test]
fn readiness_lost_for_not_ready_timeout_fails_the_gate() {
    let (mut w, _) = soaking_past_start_up();
    flip(&mut w, "web-1", false);
    let lost = w.now;
    w.step();
    w.now = at(lost, 59);
    w.step();
    assert_eq!(w.phase(), Phase::Progressing);
    w.now = at(lost, 60);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let (_, note) = event(&d, reasons::HEALTH_GATE_FAILED);
    assert!(
        note.contains(&format!(
            "pod default/web-1 on {}: not Ready for 1m without a break, since {lost} (health.notReadyTimeout)",
            new_name(0, 0, 0)
        )),
        "{note}"
    );
    let u = &health(&w).unhealthy[0];
    assert_eq!((u.subject, u.since.clone()), (Subject::Pod, time(lost)));
    assert_eq!(u.workload, Some(rs_ref("web")));
}

#[test]
fn a_new_pod_not_ready_yet_is_start_up_and_restarts_the_soak() {
    let (mut w, _) = soaking_past_start_up();
    w.land("late-0", &new_name(0, 0, 0), "late");
    w.tick(5);
    w.step();
    assert_eq!(
        w.batch(0).soak_started_at,
        None,
        "something new is starting: the soak starts again once it is Ready"
    );
}

/// A plan whose one node runs `n` pods of ReplicaSet `web` (and nothing else), soaking with all
/// `n` replacements landed on the new node; `not_ready` of them never get Ready.
fn many(spec: &str, n: usize, not_ready: usize) -> (World, Timestamp) {
    let mut w = World::with_nodes(plan_yaml(spec), 1);
    for i in 0..n {
        w.add_pod(pod(&format!("web-{i}"), "old-0", "web", t0()));
    }
    w.workload("web", n as i32);
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    while w.obs.pods.iter().any(|p| p.node == "old-0") {
        w.step();
        w.tick(5);
        w.gone();
    }
    for i in 0..n {
        w.land(&format!("web-new-{i}"), &new_name(0, 0, 0), "web");
        if i >= not_ready {
            w.pod_mut(&format!("web-new-{i}")).ready = true;
        }
    }
    w.step();
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
    let now = w.now;
    (w, now)
}

#[test]
fn one_failure_is_counted_once_and_the_tolerance_applies_to_it() {
    // One of 20 never Ready, maxUnhealthyPods 10%: tolerated. Its workload is one short of its
    // pre-drain count, and that shortfall is the pod, not a second failure.
    let (mut w, drained) = many("  health: {maxUnhealthyPods: '10%'}", 20, 1);
    w.now = at(drained, 300);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = health(&w);
    assert_eq!(
        (
            h.verdict,
            h.tracked_pods,
            h.unhealthy_count,
            h.tolerated_unhealthy
        ),
        (Verdict::Healthy, 20, 1, 2)
    );
    assert_eq!(h.unhealthy.len(), 1);
    assert_eq!(h.unhealthy[0].subject, Subject::Pod);
    assert_eq!(w.batch(0).soak_started_at, time(w.now));
}

#[test]
fn three_failures_among_twenty_exceed_ten_percent() {
    let (mut w, drained) = many("  health: {maxUnhealthyPods: '10%'}", 20, 3);
    w.now = at(drained, 300);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let (_, note) = event(&d, reasons::HEALTH_GATE_FAILED);
    assert!(note.starts_with("3 unhealthy, 2 tolerated"), "{note}");
}

#[test]
fn pods_that_never_came_back_count_against_the_tolerance_like_pods() {
    // web had 2 Ready pods; one replacement is Ready on the new node, the other never appears on
    // any node the gate sees: one pod missing, tolerated by maxUnhealthyPods 1.
    let (mut w, drained) = soaking_with(plan_yaml("  health: {maxUnhealthyPods: 1}"), |w| {
        w.add_pod(pod("web-x", "old-0", "web", t0()));
        w.obs.workloads[0].desired = 2;
    });
    w.pod_mut("web-1").ready = true;
    w.now = at(drained, 300);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = health(&w);
    assert_eq!(
        (h.verdict, h.unhealthy_count, h.tolerated_unhealthy),
        (Verdict::Healthy, 1, 1)
    );
    let u = &h.unhealthy[0];
    assert_eq!(
        (u.subject, u.missing, u.workload.clone()),
        (Subject::Workload, Some(1), Some(rs_ref("web")))
    );
}

#[test]
fn a_displaced_workload_that_dips_after_it_recovered_gets_not_ready_timeout() {
    // web has a second pod on a node outside the pool; it goes NotReady after the batch recovered.
    let (mut w, drained) = soaking_with(plan(), |w| {
        w.add_pod(pod("web-e", "elsewhere", "web", t0()));
        w.obs.workloads[0].desired = 2;
    });
    w.tick(10);
    flip(&mut w, "web-1", true);
    w.step();
    assert_eq!(health(&w).verdict, Verdict::Healthy);
    w.now = at(drained, 320);
    flip(&mut w, "web-e", false);
    let dipped = w.now;
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(w.batch(0).displaced[0].short_since, time(dipped));
    assert_eq!(w.batch(0).soak_started_at, time(at(drained, 10)));
    assert_eq!(health(&w).verdict, Verdict::Pending);

    // The dip is timed from status, so a restart (same status, fresh snapshot) keeps it.
    w.now = at(dipped, 60);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let (_, note) = event(&d, reasons::HEALTH_GATE_FAILED);
    assert!(
        note.contains("ReplicaSet default/web has 1 ready pods, below the 2 it had before the drain, for 1m without a break (health.notReadyTimeout)"),
        "{note}"
    );
}

#[test]
fn a_dip_that_ends_clears_its_clock() {
    let (mut w, drained) = soaking_with(plan_yaml("  health: {soak: 30m}"), |w| {
        w.add_pod(pod("web-e", "elsewhere", "web", t0()));
        w.obs.workloads[0].desired = 2;
    });
    w.tick(10);
    flip(&mut w, "web-1", true);
    w.step();
    assert_eq!(w.batch(0).displaced[0].short_since, None);
    w.now = at(drained, 320);
    flip(&mut w, "web-e", false);
    w.step();
    assert_eq!(w.batch(0).displaced[0].short_since, time(w.now));
    w.tick(30);
    flip(&mut w, "web-e", true);
    w.step();
    assert_eq!(w.batch(0).displaced[0].short_since, None);
    assert_eq!(health(&w).verdict, Verdict::Healthy);
}

/// `api`: 3 pods on `old-0`, one of them broken (never Ready) before the plan; `web` as usual.
fn partial_outage(spec: &str) -> World {
    let mut w = World::with_nodes(plan_yaml(spec), 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.workload("web", 1);
    for i in 0..3 {
        w.add_pod(pod(&format!("api-{i}"), "old-0", "api", t0()));
    }
    w.pod_mut("api-0").ready = false;
    w.workload("api", 3);
    w
}

/// Drive `partial_outage` through the drain; the replacements land, `api` ones Ready as `api_ready` says.
fn drain_partial_outage(w: &mut World, api_ready: [bool; 3]) -> Timestamp {
    w.step();
    assert_eq!(
        w.status().preexisting,
        [PreexistingOutage {
            workload: rs_ref("api"),
            desired: 3,
            ready: 2
        }]
    );
    w.tick(30);
    w.ready_new_nodes();
    w.drive_until(
        |w| w.batch(0).phase == BatchPhase::Soaking || w.obs.pods.iter().all(|p| p.node != "old-0"),
        5,
    );
    w.gone();
    let new = new_name(0, 0, 0);
    w.land("web-1", &new, "web");
    w.pod_mut("web-1").ready = true;
    for (i, ready) in api_ready.iter().enumerate() {
        let name = format!("api-new-{i}");
        w.land(&name, &new, "api");
        w.pod_mut(&name).ready = *ready;
    }
    w.step();
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
    w.now
}

#[test]
fn a_preexisting_outage_that_moves_to_the_new_nodes_does_not_trip_the_gate() {
    let mut w = partial_outage("");
    let landed = drain_partial_outage(&mut w, [false, true, true]);
    w.now = at(landed, 300);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = health(&w);
    assert_eq!(
        (h.verdict, h.unhealthy_count, h.excused),
        (Verdict::Healthy, 0, 1)
    );
}

#[test]
fn a_preexisting_outage_does_not_hide_its_moved_pods_failing() {
    // All three of api's pods fail on the new node: one is the old outage, two are new.
    let mut w = partial_outage("");
    let landed = drain_partial_outage(&mut w, [false, false, false]);
    w.now = at(landed, 300);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let h = health(&w);
    assert_eq!((h.unhealthy_count, h.excused), (2, 1));
    let (_, note) = event(&d, reasons::HEALTH_GATE_FAILED);
    assert!(note.contains("ReplicaSet default/api"), "{note}");
}

#[test]
fn an_outage_left_behind_does_not_excuse_a_failure_that_moved() {
    // The broken pod stays on an old node outside this batch; the two healthy ones move and fail.
    let mut w = World::with_nodes(plan(), 2);
    for (i, node) in ["old-1", "old-0", "old-0"].iter().enumerate() {
        w.add_pod(pod(&format!("api-{i}"), node, "api", t0()));
    }
    w.pod_mut("api-0").ready = false;
    w.workload("api", 3);
    w.step();
    assert_eq!(w.status().preexisting[0].missing(), 1);
    assert_eq!(w.batch(0).old_nodes, ["old-0"]);
    w.tick(30);
    w.ready_new_nodes();
    w.step();
    w.tick(5);
    w.gone();
    let new = new_name(0, 0, 0);
    w.land("api-new-0", &new, "api");
    w.land("api-new-1", &new, "api");
    w.step();
    w.tick(300);
    w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let h = health(&w);
    assert_eq!((h.unhealthy_count, h.excused), (2, 0));
}

#[test]
fn a_failure_tolerated_in_one_batch_is_not_excused_in_the_next() {
    // A DaemonSet pod fails on every new node; maxUnhealthyPods 1 tolerates the first only.
    let mut w = World::with_nodes(plan_yaml("  health: {maxUnhealthyPods: 1, soak: 0s}"), 2);
    let ds = WorkloadRef {
        kind: "DaemonSet".into(),
        namespace: "default".into(),
        name: "agent".into(),
    };
    w.obs.workloads.push(WorkloadView {
        workload: ds.clone(),
        desired: 2,
        ready: 2,
    });
    for i in 0..2 {
        w.add_pod(owned_pod(
            &format!("agent-{i}"),
            &format!("old-{i}"),
            "DaemonSet",
            "agent",
            t0(),
        ));
    }
    let mut landed = 0;
    let mut failed = None;
    for _ in 0..40 {
        let d = w.step();
        if w.phase() == Phase::RollingBack {
            failed = Some(d);
            break;
        }
        w.ready_new_nodes();
        w.gone();
        // The DaemonSet controller puts its pod on each new node; it never gets Ready.
        for n in w
            .status()
            .batches
            .iter()
            .flat_map(|b| b.new_nodes.clone())
            .collect::<Vec<_>>()
        {
            if w.has_node(&n) && !w.obs.pods.iter().any(|p| p.node == n) {
                let mut p = owned_pod(&format!("agent-{n}"), &n, "DaemonSet", "agent", w.now);
                p.ready = false;
                w.add_pod(p);
                landed += 1;
                w.obs
                    .workloads
                    .iter_mut()
                    .find(|x| x.workload == ds)
                    .unwrap()
                    .desired += 1;
            }
        }
        w.tick(60);
    }
    let d = failed.expect("the second failure is caught");
    assert_eq!(landed, 2);
    assert_eq!(w.status().failure.as_ref().unwrap().batch, Some(1));
    assert_eq!(health(&w).unhealthy_count, 2);
    assert!(w.status().preexisting.is_empty());
    assert!(
        event(&d, reasons::HEALTH_GATE_FAILED)
            .1
            .starts_with("2 unhealthy, 1 tolerated")
    );
}

#[test]
fn the_pods_of_a_node_that_never_became_ready_are_the_nodes_problem() {
    let mut w = World::with_nodes(plan_yaml("  health: {readyTimeout: 30s}"), 1);
    w.step();
    let new = new_name(0, 0, 0);
    // The DaemonSet's pod is bound to the new node at once; no kubelet ever runs it.
    let mut p = owned_pod("agent-x", &new, "DaemonSet", "agent", w.now);
    p.ready = false;
    w.add_pod(p);
    w.tick(31);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new(), "not the pod's failure");
    assert_eq!(
        health(&w).waiting_for,
        [format!("new node {new} to become Ready")]
    );
    w.now = at(t0(), 600);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let (_, note) = event(&d, reasons::NODE_FAILED);
    assert!(
        note.contains(&format!(
            "new node {new} not Ready 10m after it was requested (health.nodeReadyTimeout)"
        )),
        "{note}"
    );
    assert!(!note.contains("agent-x"), "{note}");
}

#[test]
fn a_new_node_under_memory_pressure_fails_the_gate() {
    let (mut w, _) = soaking(plan());
    let new = new_name(0, 0, 0);
    w.pod_mut("web-1").ready = true;
    w.tick(30);
    let now = w.now;
    w.node_mut(&new)
        .troubles
        .push(("MemoryPressure".into(), Some(now)));
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    let (_, note) = event(&d, reasons::NODE_FAILED);
    assert!(
        note.contains(&format!("new node {new} reports MemoryPressure")),
        "{note}"
    );
    let u = &health(&w).unhealthy[0];
    assert_eq!((u.subject, u.node.as_str()), (Subject::Node, new.as_str()));
}

#[test]
fn a_new_node_without_network_while_starting_is_waited_for() {
    let mut w = World::with_nodes(plan(), 1);
    w.step();
    let new = new_name(0, 0, 0);
    w.tick(10);
    w.set_ready(&new);
    let now = w.now;
    w.node_mut(&new)
        .troubles
        .push(("NetworkUnavailable".into(), Some(now)));
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(
        (w.phase(), w.batch(0).phase),
        (Phase::Progressing, BatchPhase::Provisioning),
        "no drain onto a node without network"
    );
    w.node_mut(&new).troubles.clear();
    let d = w.step();
    assert_eq!(events(&d)[0], reasons::NODES_READY);
}

#[test]
fn a_budget_used_up_by_an_outage_before_the_plan_is_named_and_kept_after_the_halt() {
    let mut w = partial_outage("  drain: {timeout: 10m, onTimeout: Halt}");
    w.obs.pdbs.push(pdb("api", "api", 0, 2, 3));
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    w.step();
    w.tick(5);
    w.gone();
    let d = w.step();
    let b = &w.status().blockers;
    assert!(!b.is_empty());
    assert!(
        b.iter().any(|b| b.reason.contains(
            "ReplicaSet default/api was already short of Ready pods before the plan started (2 of 3 Ready)"
        )),
        "{b:?}"
    );
    assert!(events(&d).contains(&reasons::DRAIN_BLOCKED_BY_PDB) || !w.status().blockers.is_empty());
    w.tick(600);
    let d = w.step();
    assert_eq!(w.phase(), Phase::Halted);
    assert!(
        event(&d, reasons::DRAIN_TIMEOUT)
            .1
            .contains("already short of Ready pods")
    );
    let kept = w.status().blockers.clone();
    assert!(!kept.is_empty());
    w.tick(60);
    w.step();
    assert_eq!(
        w.status().blockers,
        kept,
        "a halted plan keeps what blocked it"
    );
}
