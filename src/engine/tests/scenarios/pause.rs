//! Pausing: no new batch, no provisioning, no new eviction; the health gate keeps watching.

use super::*;
use crate::api::BatchPhase;
use crate::api::condition::reasons;

fn pause(w: &mut World, paused: bool) {
    w.edit(|p| p.spec.paused = paused);
}

#[test]
fn a_plan_paused_from_the_start_touches_nothing() {
    let mut w = World::with_nodes(plan_yaml("  paused: true"), 1);
    let d = w.step();
    assert_idle(&d);
    assert_eq!(w.phase(), Phase::Paused);
    assert_eq!(w.status().started_at, None);
    assert_cond(w.status(), types::PAUSED, "True", reasons::PAUSED);
    assert_cond(w.status(), types::PROGRESSING, "False", reasons::PAUSED);
    assert!(w.node("old-0").claimed_by().is_none());

    pause(&mut w, false);
    let d = w.step();
    assert_eq!(events(&d), [reasons::PLAN_STARTED, reasons::BATCH_STARTED]);
    assert_eq!(
        acts(&d),
        [
            "Claim old-0".to_string(),
            format!("Provision {} for old-0", new_name(0, 0, 0))
        ]
    );
    assert_eq!(w.phase(), Phase::Progressing);
    assert_cond(w.status(), types::PAUSED, "False", reasons::NOT_APPLICABLE);
}

#[test]
fn a_pause_holds_back_provisioning() {
    let mut w = World::with_nodes(plan(), 1);
    let mut d = w.decide();
    d.actions.retain(|a| !matches!(a, Action::Provision(_))); // not carried out before the pause
    w.apply(&d);
    pause(&mut w, true);
    let d = w.step();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(w.phase(), Phase::Paused);
    assert!(
        cond(w.status(), types::PROGRESSING)
            .message
            .starts_with("paused: ")
    );

    pause(&mut w, false);
    let d = w.step();
    assert_eq!(
        acts(&d),
        [format!("Provision {} for old-0", new_name(0, 0, 0))]
    );
}

#[test]
fn a_pause_holds_back_the_cordon() {
    let mut w = World::with_nodes(plan(), 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.step();
    pause(&mut w, true);
    w.tick(30);
    w.ready_new_nodes();
    let d = w.step();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::NODES_READY]);
    assert_eq!(
        (w.phase(), w.batch(0).phase),
        (Phase::Paused, BatchPhase::Provisioning)
    );
    assert!(
        cond(w.status(), types::PROGRESSING)
            .message
            .contains("old nodes not cordoned while paused")
    );
    assert!(!w.node("old-0").unschedulable);

    pause(&mut w, false);
    w.tick(5);
    let d = w.step();
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);
}

#[test]
fn a_pause_holds_back_evictions_without_timing_the_drain_out() {
    let mut w = World::with_nodes(plan_yaml("  drain: {onTimeout: Rollback}"), 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.add_pod(pod("web-1", "old-0", "web", t0()));
    w.obs.pdbs = vec![pdb("web-pdb", "web", 1, 3, 2)];
    w.step();
    w.tick(30);
    w.ready_new_nodes();
    let d = w.step();
    assert_eq!(acts(&d), ["Cordon old-0", "Evict default/web-0"]);

    pause(&mut w, true);
    w.tick(5);
    w.gone();
    let d = w.step();
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "no new eviction while paused"
    );
    assert_eq!(
        (w.phase(), w.batch(0).phase),
        (Phase::Paused, BatchPhase::Draining)
    );

    // Paused for longer than drain.timeout: molt held the drain back, so the drain did not time out.
    w.tick(3600);
    let d = w.step();
    assert_eq!(w.phase(), Phase::Paused, "{:?}", events(&d));
    assert_idle(&d);

    // Unpaused, the drain goes on with its full timeout ahead.
    pause(&mut w, false);
    w.tick(5);
    let d = w.step();
    assert_eq!(acts(&d), ["Evict default/web-1"]);
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(w.batch(0).drain_started_at, time(w.now));
    w.tick(1799);
    w.step();
    assert_eq!(w.phase(), Phase::Progressing);
}

#[test]
fn a_pause_holds_back_the_next_batch() {
    let mut w = World::with_nodes(plan_yaml("  health: {soak: 1m}"), 2);
    w.step();
    w.tick(20);
    w.ready_new_nodes();
    w.step(); // cordoned
    w.step(); // drained, soaking
    pause(&mut w, true);
    w.tick(60);
    let d = w.step();
    assert_eq!(
        events(&d),
        [reasons::HEALTH_GATE_PASSED, reasons::BATCH_COMPLETED]
    );
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(w.status().batches.len(), 1);
    assert_eq!(w.phase(), Phase::Paused);
    assert!(
        cond(w.status(), types::PROGRESSING)
            .message
            .contains("no new batch while paused")
    );

    pause(&mut w, false);
    let d = w.step();
    assert_eq!(events(&d), [reasons::BATCH_STARTED]);
    assert_eq!(
        acts(&d),
        [format!("Provision {} for old-1", new_name(0, 1, 0))]
    );
}

#[test]
fn a_pause_holds_back_the_point_of_no_return() {
    let mut w = World::with_nodes(plan_yaml("  health: {soak: 1m}"), 1);
    w.step();
    w.tick(20);
    w.ready_new_nodes();
    w.step(); // cordoned
    w.step(); // drained, soaking
    pause(&mut w, true);
    w.tick(60);
    let d = w.step();
    assert_eq!(
        events(&d),
        [reasons::HEALTH_GATE_PASSED, reasons::BATCH_COMPLETED]
    );
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(w.status().point_of_no_return_at, None);
    assert!(w.has_node("old-0"));
}

#[test]
fn a_failure_while_paused_still_stops_the_plan() {
    let (mut w, _) = soaking(plan());
    let new = new_name(0, 0, 0);
    pause(&mut w, true);
    w.pod_mut("web-1").ready = true;
    w.tick(10);
    w.step();
    assert_eq!(w.phase(), Phase::Paused);
    assert_eq!(
        w.status().health.as_ref().unwrap().verdict,
        crate::api::Verdict::Healthy,
        "the gate keeps watching"
    );

    w.pod_mut("web-1").restarts = 4;
    w.tick(10);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        events(&d),
        [reasons::HEALTH_GATE_FAILED, reasons::ROLLBACK_STARTED]
    );
    // Capacity comes back at once; the new node is drained only when the pause ends.
    assert_eq!(acts(&d), ["Uncordon old-0"]);
    assert!(
        cond(w.status(), types::PROGRESSING)
            .message
            .contains("paused: no eviction or removal until unpaused")
    );

    pause(&mut w, false);
    let d = w.step();
    assert_eq!(
        acts(&d),
        [format!("Cordon {new}"), "Evict default/web-1".to_string()]
    );
    assert_eq!(events(&d), Vec::<&str>::new());
}

#[test]
fn a_failure_while_paused_halts_with_on_failure_halt() {
    let (mut w, _) = soaking(plan_yaml("  onFailure: Halt\n  paused: false"));
    pause(&mut w, true);
    w.pod_mut("web-1").phase = PodPhase::Failed;
    w.tick(10);
    let d = w.step();
    assert_eq!(w.phase(), Phase::Halted);
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::HEALTH_GATE_FAILED, reasons::HALTED]);
}

#[test]
fn a_node_request_held_back_by_a_pause_does_not_time_out() {
    let mut w = World::with_nodes(plan(), 1);
    let mut d = w.decide();
    d.actions.retain(|a| !matches!(a, Action::Provision(_))); // not carried out before the pause
    w.apply(&d);
    pause(&mut w, true);
    // Paused longer than nodeReadyTimeout (10m), looked at every minute.
    for _ in 0..15 {
        w.tick(60);
        let d = w.step();
        assert_eq!(w.phase(), Phase::Paused, "{:?}", events(&d));
        assert_idle(&d);
    }
    pause(&mut w, false);
    let d = w.step();
    assert_eq!(
        acts(&d),
        [format!("Provision {} for old-0", new_name(0, 0, 0))]
    );
    assert_eq!(
        w.batch(0).provisioned_at,
        time(w.now),
        "the request is made now"
    );
}
