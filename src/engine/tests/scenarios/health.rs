//! The health gate: what makes a pod or a new node unhealthy, tolerance, displaced workloads,
//! outages that predate the batch, selectors and the soak.

use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, DisplacedWorkload, Verdict};

fn unhealthy_reasons(w: &World) -> Vec<String> {
    w.status()
        .health
        .as_ref()
        .unwrap()
        .unhealthy
        .iter()
        .map(|u| u.reason.clone())
        .collect()
}

/// Decide at once and expect the gate to fail with `reason` naming `needle`.
#[track_caller]
fn assert_fails(w: &mut World, reason: &str, needle: &str) -> Decision {
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack, "{:?}", w.status().message);
    assert_eq!(events(&d), [reason, reasons::ROLLBACK_STARTED]);
    let (kind, note) = event(&d, reason);
    assert_eq!(kind, EventType::Warning);
    assert!(note.contains(needle), "{note}");
    let f = w.status().failure.clone().unwrap();
    assert_eq!((f.reason.as_str(), f.batch), (reason, Some(0)));
    let c = assert_cond(w.status(), types::DEGRADED, "True", reason);
    assert!(c.message.contains(needle), "{}", c.message);
    assert_eq!(
        w.status().health.as_ref().unwrap().verdict,
        Verdict::Unhealthy
    );
    assert_cond(
        w.status(),
        types::HEALTHY,
        "False",
        reasons::HEALTH_GATE_FAILED,
    );
    d
}

#[test]
fn a_pod_not_ready_within_ready_timeout_fails_the_gate() {
    let (mut w, drained) = soaking(plan());
    let new = new_name(0, 0, 0);
    w.pod_mut("web-1").ready = true;
    w.land("other-0", &new, "other");
    w.tick(299);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(
        (w.phase(), w.batch(0).phase),
        (Phase::Progressing, BatchPhase::Soaking)
    );
    assert_eq!(
        w.batch(0).soak_started_at,
        None,
        "a Pending gate does not soak"
    );
    let c = assert_cond(
        w.status(),
        types::HEALTHY,
        "Unknown",
        reasons::HEALTH_PENDING,
    );
    assert_eq!(c.message, "waiting for pod default/other-0 to become Ready");

    w.tick(1);
    assert_eq!(w.now, at(drained, 300));
    let d = assert_fails(
        &mut w,
        reasons::HEALTH_GATE_FAILED,
        &format!(
            "pod default/other-0 on {new}: not Ready 5m after it started (health.readyTimeout)"
        ),
    );
    let h = w.status().health.clone().unwrap();
    assert_eq!((h.tracked_pods, h.unhealthy_count), (2, 1));
    assert_eq!(
        (h.unhealthy[0].pod.as_str(), h.unhealthy[0].node.as_str()),
        ("other-0", new.as_str())
    );
    assert_eq!(h.unhealthy[0].since, time(drained));
    assert!(event(&d, reasons::ROLLBACK_STARTED).1.contains("other-0"));
}

#[test]
fn a_pod_that_restarts_more_than_max_restarts_fails_the_gate() {
    let (mut w, _) = soaking(plan());
    let p = w.pod_mut("web-1");
    p.ready = true;
    p.restarts = 3;
    w.tick(10);
    w.step();
    assert_eq!(
        w.status().health.as_ref().unwrap().verdict,
        Verdict::Healthy,
        "3 restarts are tolerated"
    );

    let p = w.pod_mut("web-1");
    p.restarts = 4;
    p.ready = false;
    p.problem = Some("CrashLoopBackOff".into());
    w.tick(10);
    assert_fails(
        &mut w,
        reasons::HEALTH_GATE_FAILED,
        "restarted 4 times since it landed (health.maxRestarts 3) (CrashLoopBackOff)",
    );
}

#[test]
fn a_failed_pod_fails_the_gate() {
    let (mut w, _) = soaking(plan());
    let p = w.pod_mut("web-1");
    p.phase = PodPhase::Failed;
    p.problem = Some("OOMKilled".into());
    w.tick(10);
    assert_fails(&mut w, reasons::HEALTH_GATE_FAILED, "pod default/web-1");
    assert_eq!(unhealthy_reasons(&w), ["failed (OOMKilled)"]);
}

#[test]
fn a_new_node_that_goes_not_ready_fails_the_batch_once_it_stays_so() {
    let (mut w, _) = soaking(plan());
    let new = new_name(0, 0, 0);
    w.pod_mut("web-1").ready = true;
    w.tick(60);
    w.set_not_ready(&new);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new(), "a blip, for now");
    assert_eq!(
        w.status().health.as_ref().unwrap().waiting_for[0],
        format!(
            "new node {new} to be Ready again (NotReady since {})",
            w.now
        )
    );
    w.tick(59);
    w.step();
    assert_eq!(w.phase(), Phase::Progressing);
    w.tick(1);
    assert_fails(
        &mut w,
        reasons::NODE_FAILED,
        &format!(
            "new node {new} went NotReady after it had been Ready and stayed so for 1m (health.notReadyTimeout)"
        ),
    );
}

#[test]
fn max_unhealthy_pods_tolerates_a_count() {
    let (mut w, _) = soaking(plan_yaml("  health: {maxUnhealthyPods: 1}"));
    let new = new_name(0, 0, 0);
    w.pod_mut("web-1").ready = true;
    w.land("bad-0", &new, "bad");
    w.pod_mut("bad-0").phase = PodPhase::Failed;
    w.tick(10);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = w.status().health.clone().unwrap();
    assert_eq!(
        (
            h.verdict,
            h.tracked_pods,
            h.tolerated_unhealthy,
            h.unhealthy_count
        ),
        (Verdict::Healthy, 2, 1, 1)
    );
    assert_eq!(
        h.unhealthy[0].pod, "bad-0",
        "a tolerated pod is still listed"
    );
    assert_eq!(w.batch(0).soak_started_at, time(w.now));

    w.land("bad-1", &new, "bad");
    w.pod_mut("bad-1").phase = PodPhase::Failed;
    w.tick(10);
    assert_fails(
        &mut w,
        reasons::HEALTH_GATE_FAILED,
        "2 unhealthy, 1 tolerated",
    );
}

#[test]
fn max_unhealthy_pods_tolerates_a_percentage_rounded_down() {
    // 4 tracked pods: 50% tolerates 2, 30% tolerates 1 (1.2 rounded down).
    for (percent, tolerated) in [("50%", 2), ("30%", 1)] {
        let (mut w, _) = soaking(plan_yaml(&format!(
            "  health: {{maxUnhealthyPods: '{percent}'}}"
        )));
        let new = new_name(0, 0, 0);
        w.pod_mut("web-1").ready = true;
        for i in 0..3 {
            w.land(&format!("bad-{i}"), &new, "bad");
        }
        for i in 0..tolerated {
            w.pod_mut(&format!("bad-{i}")).phase = PodPhase::Failed;
        }
        w.tick(10);
        w.step();
        let h = w.status().health.clone().unwrap();
        assert_eq!(
            (h.verdict, h.tracked_pods, h.tolerated_unhealthy),
            (Verdict::Pending, 4, tolerated),
            "{percent}"
        );
        w.pod_mut(&format!("bad-{tolerated}")).phase = PodPhase::Failed;
        w.tick(10);
        assert_fails(
            &mut w,
            reasons::HEALTH_GATE_FAILED,
            &format!("{} unhealthy, {tolerated} tolerated", tolerated + 1),
        );
    }
}

#[test]
fn a_displaced_workload_must_get_back_to_its_ready_count() {
    let (mut w, drained) = soaking_with(plan(), |w| {
        w.add_pod(pod("web-x", "old-0", "web", t0()));
        w.obs.workloads[0].desired = 2;
    });
    assert_eq!(
        w.batch(0).displaced,
        [DisplacedWorkload {
            workload: rs_ref("web"),
            ready_before: 2,
            short_since: time(drained), // one pod is still to come back
        }]
    );
    // One replacement is Ready, the other is still missing: Pending, the soak does not start.
    w.pod_mut("web-1").ready = true;
    w.tick(10);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = w.status().health.clone().unwrap();
    assert_eq!(h.verdict, Verdict::Pending);
    assert_eq!(
        h.waiting_for,
        ["ReplicaSet default/web to be back to 2 ready (has 1)"]
    );
    assert_eq!(w.batch(0).soak_started_at, None);

    // readyTimeout after the drain it still is not back: the gate fails.
    w.tick(289);
    w.step();
    assert_eq!(w.phase(), Phase::Progressing);
    w.tick(1);
    assert_eq!(w.now, at(drained, 300));
    assert_fails(
        &mut w,
        reasons::HEALTH_GATE_FAILED,
        "ReplicaSet default/web has 1 ready pods 5m after the drain; it had 2 before (health.readyTimeout)",
    );
}

#[test]
fn a_displaced_workload_that_recovers_lets_the_soak_start() {
    let (mut w, _) = soaking_with(plan(), |w| {
        w.add_pod(pod("web-x", "old-0", "web", t0()));
        w.obs.workloads[0].desired = 2;
    });
    w.pod_mut("web-1").ready = true;
    w.land("web-2", &new_name(0, 0, 0), "web");
    w.tick(100);
    w.pod_mut("web-2").ready = true;
    w.step();
    assert_eq!(
        w.status().health.as_ref().unwrap().verdict,
        Verdict::Healthy
    );
    assert_eq!(w.batch(0).soak_started_at, time(w.now));
}

#[test]
fn only_pods_the_health_selectors_pick_are_tracked() {
    let p = plan_yaml(
        "  health:\n    namespaceSelector: {matchLabels: {team: apps}}\n    podSelector: {matchExpressions: [{key: gate, operator: NotIn, values: ['off']}]}",
    );
    let (mut w, _) = soaking_with(p, |w| {
        w.obs.namespaces.insert(
            "default".into(),
            [("team".to_string(), "apps".to_string())].into(),
        );
        w.obs.namespaces.insert("tools".into(), Default::default());
    });
    let new = new_name(0, 0, 0);
    w.pod_mut("web-1").ready = true;
    // Failing, but in a namespace the gate does not watch…
    let mut lint = pod("lint-0", &new, "lint", w.now);
    lint.namespace = "tools".into();
    lint.phase = PodPhase::Failed;
    w.add_pod(lint);
    // … or carrying a label the pod selector excludes.
    let mut canary = pod("probe-0", &new, "probe", w.now);
    canary.labels.insert("gate".into(), "off".into());
    canary.phase = PodPhase::Failed;
    w.add_pod(canary);
    w.tick(10);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    let h = w.status().health.clone().unwrap();
    assert_eq!((h.verdict, h.tracked_pods), (Verdict::Healthy, 1));

    // A failing pod the selectors pick fails the gate.
    w.land("web-2", &new, "web");
    w.pod_mut("web-2").phase = PodPhase::Failed;
    w.tick(10);
    assert_fails(&mut w, reasons::HEALTH_GATE_FAILED, "pod default/web-2");
}

#[test]
fn a_displaced_workload_outside_the_health_selectors_does_not_gate() {
    let p = plan_yaml("  health:\n    namespaceSelector: {matchLabels: {team: apps}}");
    let tools = WorkloadRef {
        kind: "ReplicaSet".into(),
        namespace: "tools".into(),
        name: "lint".into(),
    };
    let (mut w, drained) = soaking_with(p, |w| {
        w.obs.namespaces.insert(
            "default".into(),
            [("team".to_string(), "apps".to_string())].into(),
        );
        w.obs.namespaces.insert("tools".into(), Default::default());
        let mut lint = pod("lint-0", "old-0", "lint", t0());
        lint.namespace = "tools".into();
        lint.controller = Some(tools.clone());
        w.add_pod(lint);
        w.obs.workloads.push(WorkloadView {
            workload: tools.clone(),
            desired: 1,
            ready: 0,
        });
    });
    assert_eq!(
        w.batch(0).displaced,
        [DisplacedWorkload {
            workload: rs_ref("web"),
            ready_before: 1,
            short_since: time(drained), // web-1 is not Ready yet
        }]
    );
    // The tools workload never comes back; the gate does not watch it.
    w.pod_mut("web-1").ready = true;
    w.tick(10);
    w.step();
    assert_eq!(
        w.status().health.as_ref().unwrap().verdict,
        Verdict::Healthy
    );
    w.now = at(drained, 310);
    let d = w.step();
    assert_eq!(w.phase(), Phase::Progressing, "{:?}", events(&d));
    assert_eq!(
        events(&d),
        [
            reasons::HEALTH_GATE_PASSED,
            reasons::BATCH_COMPLETED,
            reasons::POINT_OF_NO_RETURN
        ]
    );
}

#[test]
fn the_soak_needs_an_unbroken_healthy_stretch() {
    let (mut w, drained) = soaking(plan());
    w.pod_mut("web-1").ready = true;
    w.tick(10);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(w.batch(0).soak_started_at, time(at(drained, 10)));
    assert_cond(w.status(), types::HEALTHY, "True", reasons::HEALTH_OK);
    let c = assert_cond(w.status(), types::PROGRESSING, "True", reasons::SOAKING);
    assert!(
        c.message.contains("soaking, healthy since"),
        "{}",
        c.message
    );

    // A blip: the pod is not Ready for a while (within readyTimeout): Pending, the soak clock resets.
    w.tick(100);
    w.pod_mut("web-1").ready = false;
    w.step();
    assert_eq!(
        w.status().health.as_ref().unwrap().verdict,
        Verdict::Pending
    );
    assert_eq!(w.batch(0).soak_started_at, None);
    w.tick(10);
    w.pod_mut("web-1").ready = true;
    w.step();
    let restarted = at(drained, 120);
    assert_eq!(w.batch(0).soak_started_at, time(restarted));

    // Five minutes from the restart, not from the first healthy look.
    w.now = at(restarted, 299);
    let d = w.step();
    assert_eq!(
        (w.batch(0).phase, events(&d)),
        (BatchPhase::Soaking, vec![])
    );
    w.now = at(restarted, 300);
    let d = w.step();
    assert_eq!(
        events(&d),
        [
            reasons::HEALTH_GATE_PASSED,
            reasons::BATCH_COMPLETED,
            reasons::POINT_OF_NO_RETURN
        ]
    );
    assert_eq!(
        event(&d, reasons::HEALTH_GATE_PASSED).1,
        "batch 1/1: healthy for 5m"
    );
    let b = w.batch(0);
    assert_eq!(
        (b.phase, b.completed_at.clone()),
        (BatchPhase::Completed, time(w.now))
    );
    assert_eq!(w.status().summary.updated, 1);
}

#[test]
fn a_restart_in_the_soak_keeps_its_clock() {
    let (mut w, drained) = soaking(plan());
    w.pod_mut("web-1").ready = true;
    w.tick(10);
    w.step();
    let since = at(drained, 10);
    assert_eq!(w.batch(0).soak_started_at, time(since));

    // A restarted controller: its pod watches have not caught up, so no pod is observed.
    let new = w.batch(0).new_nodes[0].clone();
    w.tick(200);
    w.obs.pods_observed_on.remove(&new);
    let d = w.step();
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(
        w.batch(0).soak_started_at,
        time(since),
        "not seeing the pods is no reason to start the soak over"
    );
    let c = assert_cond(w.status(), types::PROGRESSING, "True", reasons::SOAKING);
    assert!(
        c.message
            .contains(&format!("waiting for the pods on {new} to be observed")),
        "{}",
        c.message
    );

    // Past the soak's end, still unobserved: it does not pass on what it has not seen.
    w.now = at(since, 300);
    let d = w.step();
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
    assert_eq!(events(&d), Vec::<&str>::new());

    // Observed again and healthy: it passes at once, on the clock it kept.
    w.obs.pods_observed_on.insert(new);
    let d = w.step();
    assert_eq!(events(&d)[0], reasons::HEALTH_GATE_PASSED);
}
