//! Halting: stop in place, say why, do nothing until the spec changes, then resume.

use super::*;
use crate::api::BatchPhase;
use crate::api::condition::reasons;

/// A one-node plan with `onFailure: Halt`, halted by a crash-looping pod in its soak.
fn halted() -> World {
    let (mut w, _) = soaking(plan_yaml("  onFailure: Halt"));
    let p = w.pod_mut("web-1");
    p.ready = true;
    p.restarts = 4;
    p.problem = Some("CrashLoopBackOff".into());
    w.tick(10);
    let d = w.step();
    assert_eq!(w.phase(), Phase::Halted);
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "a halt leaves every node and pod as it is"
    );
    assert_eq!(events(&d), [reasons::HEALTH_GATE_FAILED, reasons::HALTED]);
    w
}

#[test]
fn a_failure_with_on_failure_halt_stops_in_place_and_says_why() {
    let mut w = halted();
    let s = w.status().clone();
    assert_eq!(s.stopped_generation, Some(1));
    let f = s.failure.clone().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.batch, f.at),
        (reasons::HEALTH_GATE_FAILED, Some(0), Time(w.now))
    );
    let c = assert_cond(&s, types::DEGRADED, "True", reasons::HEALTH_GATE_FAILED);
    assert!(c.message.contains("pod default/web-1"), "{}", c.message);
    assert!(c.message.contains("restarted 4 times"), "{}", c.message);
    let c = assert_cond(&s, types::PROGRESSING, "False", reasons::HALTED);
    assert!(c.message.starts_with("halted: "), "{}", c.message);
    assert_cond(&s, types::COMPLETE, "False", reasons::NOT_APPLICABLE);
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
    assert_eq!(
        w.node("old-0").cordoned_by(),
        Some(ME),
        "the old node stays cordoned"
    );
    assert!(
        w.obs
            .pods
            .iter()
            .any(|p| p.name == "web-1" && p.deleting_since.is_none())
    );

    // Time passes, the pool grows, the pod even recovers: nothing happens while the spec is unchanged.
    w.obs.nodes.push(node("old-7"));
    w.obs.pods_observed_on.insert("old-7".into());
    w.pod_mut("web-1").restarts = 0;
    for _ in 0..3 {
        w.tick(3600);
        let d = w.step();
        assert_idle(&d);
        assert_eq!(w.phase(), Phase::Halted);
        assert_eq!(d.requeue_after, None);
    }
    let c = assert_cond(w.status(), types::PROGRESSING, "False", reasons::HALTED);
    assert!(
        c.message
            .contains("nothing more happens until the spec changes"),
        "{}",
        c.message
    );
    assert_cond(
        w.status(),
        types::DEGRADED,
        "True",
        reasons::HEALTH_GATE_FAILED,
    );
    assert!(!w.node("old-7").unschedulable && w.node("old-7").claimed_by().is_none());
}

#[test]
fn a_spec_change_resumes_a_halted_plan_where_it_stopped() {
    let mut w = halted();
    w.tick(600);
    w.edit(|p| p.spec.health.max_restarts = 10);
    let d = w.step();
    assert_eq!(events(&d), [reasons::RESUMED]);
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(w.phase(), Phase::Progressing);
    let s = w.status().clone();
    assert_eq!(
        (
            s.failure.clone(),
            s.stopped_generation,
            s.observed_generation
        ),
        (None, None, Some(2))
    );
    assert_eq!(s.batches.len(), 1, "the same batch continues");
    assert_eq!(
        w.batch(0).soak_started_at,
        time(w.now),
        "the soak starts over"
    );
    assert_cond(&s, types::DEGRADED, "False", reasons::NOT_APPLICABLE);
    let c = assert_cond(&s, types::PROGRESSING, "True", reasons::SOAKING);
    assert_eq!(c.observed_generation, Some(2));

    w.tick(300);
    let d = w.step();
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
fn resuming_a_drain_halted_by_its_timeout_gives_it_a_fresh_timeout() {
    let mut w = World::with_nodes(plan(), 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.obs.pdbs = vec![pdb("web-pdb", "web", 0, 3, 3)];
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    w.step();
    w.tick(1800);
    let d = w.step();
    assert_eq!(events(&d), [reasons::DRAIN_TIMEOUT, reasons::HALTED]);

    w.tick(60);
    w.edit(|p| p.spec.drain.timeout = secs(3600));
    let d = w.step();
    assert_eq!(events(&d), [reasons::RESUMED]);
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "the PDB still allows nothing"
    );
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(w.batch(0).drain_started_at, time(w.now));
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_PDB,
    );

    w.obs.pdbs = vec![pdb("web-pdb", "web", 1, 4, 3)];
    w.tick(5);
    let d = w.step();
    assert_eq!(acts(&d), ["Evict default/web-0"]);
}
