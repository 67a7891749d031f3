//! Advancing: blue-green keeps old nodes until the end (the point of no return), per-batch
//! removal otherwise, then success.

use super::*;
use crate::api::BatchPhase;
use crate::api::condition::reasons as r;

/// Two nodes, no pods, no soak: every batch passes as soon as its new node is Ready.
fn quick(blue_green: bool) -> World {
    World::with_nodes(
        plan_yaml(&format!(
            "  strategy: {{blueGreen: {blue_green}}}\n  health: {{soak: 0s}}"
        )),
        2,
    )
}

/// Let the new nodes become Ready, then decide and carry out.
fn next(w: &mut World) -> Decision {
    w.tick(20);
    w.ready_new_nodes();
    w.step()
}

#[test]
fn blue_green_keeps_old_nodes_until_every_batch_passed_then_removes_them() {
    let mut w = quick(true);
    let (n0, n1) = (new_name(0, 0, 0), new_name(0, 1, 0));
    let d = w.step();
    assert_eq!(
        acts(&d),
        [
            "Claim old-0".to_string(),
            "Claim old-1".into(),
            format!("Provision {n0} for old-0")
        ]
    );
    assert_eq!(events(&d), [r::PLAN_STARTED, r::BATCH_STARTED]);

    // The drain is done once the old node is seen cordoned, even with nothing on it.
    let d = next(&mut w);
    assert_eq!(acts(&d), ["Cordon old-0"]);
    assert_eq!(events(&d), [r::NODES_READY, r::DRAINING]);
    assert_eq!(w.batch(0).phase, BatchPhase::Draining);
    let d = w.step();
    assert_eq!(acts(&d), [format!("Provision {n1} for old-1")]);
    assert_eq!(
        events(&d),
        [
            r::DRAIN_COMPLETED,
            r::HEALTH_GATE_PASSED,
            r::BATCH_COMPLETED,
            r::BATCH_STARTED
        ]
    );
    assert_eq!(w.batch(0).phase, BatchPhase::Completed);
    assert_eq!(w.batch(0).completed_at, time(w.now));
    assert_eq!(w.batch(1).phase, BatchPhase::Provisioning);
    // The first batch's old node stays, cordoned: the whole plan can still be rolled back.
    assert!(w.node("old-0").unschedulable);
    assert_eq!(w.status().point_of_no_return_at, None);
    assert_eq!(
        (
            w.status().summary.updated,
            w.status().summary.batch.as_str()
        ),
        (1, "2/2")
    );

    let d = next(&mut w);
    assert_eq!(acts(&d), ["Cordon old-1"]);
    assert_eq!(events(&d), [r::NODES_READY, r::DRAINING]);
    let d = w.step();
    assert_eq!(acts(&d), ["RemoveNode old-0", "RemoveNode old-1"]);
    assert_eq!(
        events(&d),
        [
            r::DRAIN_COMPLETED,
            r::HEALTH_GATE_PASSED,
            r::BATCH_COMPLETED,
            r::POINT_OF_NO_RETURN
        ]
    );
    let (_, note) = event(&d, r::POINT_OF_NO_RETURN);
    assert!(note.contains("rollback is no longer possible"), "{note}");
    assert_eq!(w.status().point_of_no_return_at, time(w.now));
    assert_eq!(w.phase(), Phase::Progressing);
    assert_cond(
        w.status(),
        types::PROGRESSING,
        "True",
        r::POINT_OF_NO_RETURN,
    );

    let pnr = w.now;
    w.tick(5);
    let d = w.step();
    // New nodes are born claimed; success hands them back.
    assert_eq!(
        acts(&d),
        [
            format!("Release {}", new_name(0, 0, 0)),
            format!("Release {}", new_name(0, 1, 0))
        ]
    );
    assert_eq!(events(&d), [r::SUCCEEDED]);
    assert_eq!(w.phase(), Phase::Succeeded);
    assert_eq!(w.status().completed_at, time(w.now));
    assert_eq!(w.status().point_of_no_return_at, time(pnr));
    assert_cond(w.status(), types::COMPLETE, "True", r::SUCCEEDED);
    assert_cond(w.status(), types::PROGRESSING, "False", r::SUCCEEDED);
    let s = &w.status().summary;
    assert_eq!((s.progress.as_str(), s.batch.as_str()), ("2/2", "2/2"));
    let names: Vec<&str> = w.obs.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, [n0.as_str(), n1.as_str()]);
    assert!(
        w.obs
            .nodes
            .iter()
            .all(|n| !n.unschedulable && n.claimed_by().is_none())
    );

    // A finished plan stays finished and quiet.
    w.tick(3600);
    let d = w.step();
    assert_idle(&d);
    assert_eq!(d.requeue_after, None);
}

#[test]
fn without_blue_green_each_batch_removes_its_old_nodes_once_it_passed() {
    let mut w = quick(false);
    let n1 = new_name(0, 1, 0);
    w.step();
    let d = next(&mut w);
    assert_eq!(acts(&d), ["Cordon old-0"]);
    assert_eq!(events(&d), [r::NODES_READY, r::DRAINING]);
    let d = w.step();
    assert_eq!(acts(&d), ["RemoveNode old-0"]);
    assert_eq!(
        events(&d),
        [
            r::DRAIN_COMPLETED,
            r::HEALTH_GATE_PASSED,
            r::REMOVING_OLD_NODES
        ]
    );
    assert_eq!(w.batch(0).phase, BatchPhase::RemovingOldNodes);
    assert_eq!(w.batch(0).completed_at, None);
    assert_cond(
        w.status(),
        types::PROGRESSING,
        "True",
        r::REMOVING_OLD_NODES,
    );

    w.tick(5);
    let d = w.step();
    assert_eq!(acts(&d), [format!("Provision {n1} for old-1")]);
    assert_eq!(events(&d), [r::BATCH_COMPLETED, r::BATCH_STARTED]);
    assert_eq!(w.batch(0).phase, BatchPhase::Completed);
    assert_eq!(w.batch(0).completed_at, time(w.now));
    assert_eq!(w.status().summary.updated, 1);

    let d = next(&mut w);
    assert_eq!(acts(&d), ["Cordon old-1"]);
    let d = w.step();
    assert_eq!(acts(&d), ["RemoveNode old-1"]);
    w.tick(5);
    let d = w.step();
    assert_eq!(events(&d), [r::BATCH_COMPLETED, r::SUCCEEDED]);
    assert_eq!(w.phase(), Phase::Succeeded);
    assert_eq!(
        w.status().point_of_no_return_at,
        None,
        "no point of no return to announce"
    );
}

#[test]
fn success_releases_the_claims_still_held() {
    let mut w = quick(true);
    w.step();
    // A person moves old-1 out of the pool after the plan claimed it.
    w.node_mut("old-1")
        .labels
        .insert("pool".into(), "db".into());
    let decisions = w.drive_until(|w| w.phase() == Phase::Succeeded, 20);
    let last = decisions.last().unwrap();
    assert_eq!(events(last), [r::SUCCEEDED]);
    assert_eq!(
        acts(last),
        [
            "Release old-1".to_string(),
            format!("Release {}", new_name(0, 0, 0))
        ]
    );
    assert_eq!(w.node("old-1").claimed_by(), None);
    assert!(!w.node("old-1").unschedulable);
    assert_eq!(w.status().summary.nodes, 1);
}
