//! Rolling back, capacity first; what blueGreen: false keeps; a new attempt after a rollback.

use super::*;
use crate::api::BatchPhase;
use crate::api::condition::reasons;

/// The one-node soak with `web-1` crash-looping on the new node: the gate fails on the next look.
fn failing(p: NodeUpdatePlan) -> World {
    let (mut w, _) = soaking(p);
    let p = w.pod_mut("web-1");
    p.ready = false;
    p.restarts = 4;
    p.problem = Some("CrashLoopBackOff".into());
    w.tick(10);
    w
}

#[test]
fn a_rollback_puts_old_capacity_back_before_touching_new_nodes() {
    let mut w = failing(plan());
    let new = new_name(0, 0, 0);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        acts(&d),
        [
            "Uncordon old-0".to_string(),
            format!("Cordon {new}"),
            "Evict default/web-1".to_string()
        ],
        "old nodes are uncordoned before any new node is cordoned or drained"
    );
    assert_eq!(
        events(&d),
        [reasons::HEALTH_GATE_FAILED, reasons::ROLLBACK_STARTED]
    );
    let (kind, note) = event(&d, reasons::ROLLBACK_STARTED);
    assert_eq!(kind, EventType::Warning);
    assert!(note.contains("pod default/web-1"), "{note}");
    assert!(
        note.contains(
            "restarted 4 times since it landed (health.maxRestarts 3) (CrashLoopBackOff)"
        ),
        "{note}"
    );
    assert!(note.ends_with("old nodes are uncordoned first"), "{note}");
    let c = assert_cond(
        w.status(),
        types::PROGRESSING,
        "True",
        reasons::ROLLING_BACK,
    );
    assert!(
        c.message
            .contains("1 old nodes to uncordon, 1 new nodes to remove (1 pods still on them)"),
        "{}",
        c.message
    );
    let c = assert_cond(
        w.status(),
        types::DEGRADED,
        "True",
        reasons::HEALTH_GATE_FAILED,
    );
    assert!(c.message.contains("pod default/web-1"), "{}", c.message);
    assert_eq!(w.status().failure.as_ref().unwrap().batch, Some(0));

    // The new node empties, then goes.
    w.tick(5);
    w.gone();
    let d = w.step();
    assert_eq!(acts(&d), [format!("RemoveSlot {new}")]);
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(w.phase(), Phase::RollingBack);

    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0"]);
    assert_eq!(events(&d), [reasons::ROLLED_BACK]);
    let s = w.status().clone();
    assert_eq!(
        (s.batches[0].phase, s.batches[0].completed_at.clone()),
        (BatchPhase::RolledBack, time(w.now))
    );
    assert_eq!(
        (s.completed_at.clone(), s.stopped_generation),
        (time(w.now), Some(1))
    );
    assert_cond(&s, types::COMPLETE, "True", reasons::ROLLED_BACK);
    assert_cond(&s, types::DEGRADED, "True", reasons::HEALTH_GATE_FAILED);
    let c = assert_cond(&s, types::PROGRESSING, "False", reasons::ROLLED_BACK);
    assert!(
        c.message.starts_with("rolled back after: ") && c.message.contains("web-1"),
        "{}",
        c.message
    );
    let old = w.node("old-0");
    assert!(!old.unschedulable && old.cordoned_by().is_none() && old.claimed_by().is_none());
    assert!(!w.has_node(&new));

    // Nothing more happens until the spec changes.
    w.tick(3600);
    let d = w.step();
    assert_idle(&d);
    assert_eq!(w.phase(), Phase::RolledBack);
}

#[test]
fn a_rollback_never_breaks_a_pdb_either() {
    let mut w = failing(plan());
    // Ready between two crashes: evicting it would cost the budget a healthy pod.
    w.pod_mut("web-1").ready = true;
    w.obs.pdbs = vec![pdb("web-pdb", "web", 0, 2, 2)];
    let d = w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    assert_eq!(
        acts(&d),
        [
            "Uncordon old-0".to_string(),
            format!("Cordon {}", new_name(0, 0, 0))
        ]
    );
    assert_cond(
        w.status(),
        types::BLOCKED,
        "True",
        reasons::DRAIN_BLOCKED_BY_PDB,
    );
    assert!(
        w.status().blockers[0]
            .reason
            .contains("PDB web-pdb allows 0 disruptions (needs 2 healthy, has 2)")
    );
}

#[test]
fn a_blue_green_rollback_undoes_every_batch() {
    let mut w = World::with_nodes(plan_yaml("  health: {soak: 1m}"), 2);
    let (n0, n1) = (new_name(0, 0, 0), new_name(0, 1, 0));
    w.step();
    w.tick(20);
    w.ready_new_nodes();
    w.step(); // batch 1 cordoned
    w.step(); // batch 1 drained, soaking
    w.tick(60);
    w.step(); // batch 1 passed, batch 2 provisioning
    w.tick(20);
    w.ready_new_nodes();
    w.step(); // batch 2 cordoned
    w.step(); // batch 2 drained, soaking
    assert_eq!(
        (w.batch(0).phase, w.batch(1).phase),
        (BatchPhase::Completed, BatchPhase::Soaking)
    );
    assert!(w.node("old-0").unschedulable && w.node("old-1").unschedulable);

    w.tick(10);
    w.set_not_ready(&n1);
    w.tick(60); // health.notReadyTimeout: no longer a blip
    let d = w.step();
    assert_eq!(
        events(&d),
        [reasons::NODE_FAILED, reasons::ROLLBACK_STARTED]
    );
    assert_eq!(
        acts(&d),
        [
            "Uncordon old-0".to_string(),
            "Uncordon old-1".into(),
            format!("Cordon {n0}"),
            format!("Cordon {n1}"),
            format!("RemoveSlot {n0}"),
            format!("RemoveSlot {n1}"),
        ]
    );
    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    assert_eq!(acts(&d), ["Release old-0", "Release old-1"]);
    assert!(
        w.status()
            .batches
            .iter()
            .all(|b| b.phase == BatchPhase::RolledBack)
    );
    assert!(
        !event(&d, reasons::ROLLED_BACK)
            .1
            .contains("stay on the new image")
    );
    let names: Vec<&str> = w.obs.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["old-0", "old-1"]);
}

#[test]
fn without_blue_green_only_the_batch_in_flight_is_rolled_back() {
    let mut w = World::with_nodes(
        plan_yaml("  strategy: {blueGreen: false}\n  health: {soak: 1m}"),
        2,
    );
    let (n0, n1) = (new_name(0, 0, 0), new_name(0, 1, 0));
    w.step();
    w.tick(20);
    w.ready_new_nodes();
    w.step(); // batch 1 cordoned
    w.step(); // batch 1 drained, soaking
    w.tick(60);
    w.step(); // batch 1 passed: old-0 removed
    w.tick(5);
    w.step(); // batch 1 completed, batch 2 provisioning
    w.tick(20);
    w.ready_new_nodes();
    w.step(); // batch 2 cordoned
    w.step(); // batch 2 drained, soaking
    assert_eq!(
        (w.batch(0).phase, w.batch(1).phase),
        (BatchPhase::Completed, BatchPhase::Soaking)
    );
    assert!(!w.has_node("old-0"));

    w.tick(10);
    w.set_not_ready(&n1);
    w.tick(60); // health.notReadyTimeout: no longer a blip
    let d = w.step();
    assert_eq!(
        acts(&d),
        [
            "Uncordon old-1".to_string(),
            format!("Cordon {n1}"),
            format!("RemoveSlot {n1}")
        ]
    );
    let kept = "batches 1 already passed and stay on the new image (blueGreen: false)";
    assert!(cond(w.status(), types::PROGRESSING).message.contains(kept));

    w.tick(5);
    let d = w.step();
    assert_eq!(w.phase(), Phase::RolledBack);
    // batch 1's new node stays, handed back.
    assert_eq!(
        acts(&d),
        [
            "Release old-1".to_string(),
            format!("Release {}", new_name(0, 0, 0))
        ]
    );
    assert!(event(&d, reasons::ROLLED_BACK).1.contains(kept));
    assert!(cond(w.status(), types::COMPLETE).message.contains(kept));
    assert_eq!(
        (w.batch(0).phase, w.batch(1).phase),
        (BatchPhase::Completed, BatchPhase::RolledBack)
    );
    let n = w.node(&n0);
    assert!(
        !n.unschedulable,
        "the passed batch's new node stays in service"
    );
    assert!(!w.has_node(&n1));
}

#[test]
fn a_spec_change_after_a_rollback_starts_a_new_attempt_with_new_names() {
    let mut w = failing(plan());
    w.drive_until(|w| w.phase() == Phase::RolledBack, 10);
    w.tick(600);
    w.edit(|p| p.spec.health.max_restarts = 5);
    let d = w.step();
    assert_eq!(
        events(&d),
        [
            reasons::RESUMED,
            reasons::PLAN_STARTED,
            reasons::BATCH_STARTED,
            // web lost its pod in the rollback and no replacement runs in this model: the new
            // attempt records that as its baseline.
            reasons::PREEXISTING_OUTAGE
        ]
    );
    assert_eq!(
        acts(&d),
        [
            "Claim old-0".to_string(),
            format!("Provision {} for old-0", new_name(1, 0, 0))
        ]
    );
    let s = w.status().clone();
    assert_eq!((s.attempt, s.phase), (1, Some(Phase::Progressing)));
    assert_eq!(
        (
            s.failure.clone(),
            s.stopped_generation,
            s.completed_at.clone()
        ),
        (None, None, None)
    );
    assert_eq!(s.started_at, time(w.now));
    assert_eq!(s.batches.len(), 1);
    assert_eq!(s.batches[0].new_nodes, [new_name(1, 0, 0)]);
    assert_cond(&s, types::DEGRADED, "False", reasons::NOT_APPLICABLE);
    assert_cond(&s, types::COMPLETE, "False", reasons::NOT_APPLICABLE);
}
