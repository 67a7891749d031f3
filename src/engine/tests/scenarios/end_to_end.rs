//! Whole rollouts through the cluster model: the scheduler, kubelet and workload controllers move
//! pods as the engine's actions make room, and the product's invariants are checked at every step.

use super::super::sim::{Fault, Reconcile, Sim};
use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, StopPolicy};
use crate::engine::tests::image;

fn reasons_seen(sim: &Sim) -> Vec<&str> {
    sim.events.iter().map(|(r, _)| r.as_str()).collect()
}

fn count(seen: &[&str], reason: &str) -> usize {
    seen.iter().filter(|r| **r == reason).count()
}

#[test]
fn rolls_forward_to_succeeded() {
    let mut sim = Sim::new(plan(), 3);
    assert!(
        sim.run_until(&[Phase::Succeeded], 500),
        "phase {:?}, status {:#?}",
        sim.phase(),
        sim.plan.status
    );
    sim.assert_no_violations();
    let status = sim.plan.status.clone().unwrap();
    assert_eq!(status.batches.len(), 3);
    assert!(
        status
            .batches
            .iter()
            .all(|b| b.phase == BatchPhase::Completed)
    );
    assert_eq!(
        (
            status.summary.progress.as_str(),
            status.summary.batch.as_str()
        ),
        ("3/3", "3/3")
    );
    assert!(status.point_of_no_return_at.is_some());
    assert_cond(&status, types::COMPLETE, "True", reasons::SUCCEEDED);
    assert_cond(&status, types::DEGRADED, "False", reasons::NOT_APPLICABLE);

    let seen = reasons_seen(&sim);
    assert_eq!(seen.first(), Some(&reasons::PLAN_STARTED));
    assert_eq!(seen.last(), Some(&reasons::SUCCEEDED));
    for (reason, times) in [
        (reasons::BATCH_STARTED, 3),
        (reasons::NODES_READY, 3),
        (reasons::DRAIN_COMPLETED, 3),
        (reasons::HEALTH_GATE_PASSED, 3),
        (reasons::BATCH_COMPLETED, 3),
        (reasons::POINT_OF_NO_RETURN, 1),
        (reasons::SUCCEEDED, 1),
    ] {
        assert_eq!(count(&seen, reason), times, "{reason} in {seen:?}");
    }
    for bad in [
        reasons::HEALTH_GATE_FAILED,
        reasons::NODE_FAILED,
        reasons::ROLLBACK_STARTED,
        reasons::HALTED,
    ] {
        assert_eq!(count(&seen, bad), 0, "{bad} in {seen:?}");
    }

    let target = sim.target();
    assert_eq!(sim.nodes.len(), 3);
    assert!(sim.nodes.iter().all(|n| image(n) == Some(target.as_str())));
    assert!(
        sim.nodes
            .iter()
            .all(|n| !n.unschedulable && n.claimed_by().is_none())
    );
    sim.tick(30);
    assert!(sim.workloads_ready());
}

#[test]
fn a_crash_looping_image_is_caught_and_rolled_back() {
    let mut p = plan();
    p.spec.health.ready_timeout = secs(120);
    p.spec.drain.timeout = secs(600);
    let mut sim = Sim::new(p, 2);
    sim.fault = Fault::CrashLoop;
    assert!(
        sim.run_until(&[Phase::RolledBack], 500),
        "phase {:?}: {:?}",
        sim.phase(),
        sim.plan.status
    );
    sim.assert_no_violations();
    let seen = reasons_seen(&sim);
    assert_eq!(count(&seen, reasons::HEALTH_GATE_FAILED), 1, "{seen:?}");
    assert_eq!(count(&seen, reasons::ROLLBACK_STARTED), 1);
    assert_eq!(seen.last(), Some(&reasons::ROLLED_BACK));
    let (_, why) = sim
        .events
        .iter()
        .find(|(r, _)| r == reasons::HEALTH_GATE_FAILED)
        .unwrap();
    assert!(why.contains("CrashLoopBackOff"), "{why}");
    let status = sim.plan.status.clone().unwrap();
    assert_cond(
        &status,
        types::DEGRADED,
        "True",
        reasons::HEALTH_GATE_FAILED,
    );
    // Only the first batch ran; the cluster is back on its old nodes, all in service.
    assert_eq!(status.batches.len(), 1);
    let target = sim.target();
    assert!(
        sim.nodes
            .iter()
            .all(|n| image(n) != Some(target.as_str()) && !n.unschedulable)
    );
    assert_eq!(sim.nodes.len(), 2);
    sim.tick(30);
    assert!(sim.workloads_ready());
}

#[test]
fn a_halted_plan_deleted_leaves_nothing_cordoned() {
    let mut p = plan();
    p.spec.on_failure = StopPolicy::Halt;
    p.spec.health.ready_timeout = secs(120);
    let mut sim = Sim::new(p, 2);
    sim.fault = Fault::PodsNeverReady;
    assert!(
        sim.run_until(&[Phase::Halted], 500),
        "phase {:?}",
        sim.phase()
    );
    assert!(
        sim.nodes.iter().any(|n| n.cordoned_by() == Some(ME)),
        "the halt kept the old node cordoned"
    );
    sim.delete_plan();
    sim.assert_no_violations();
    assert!(
        sim.nodes
            .iter()
            .all(|n| !n.unschedulable && n.cordoned_by().is_none() && n.claimed_by().is_none())
    );
}

#[test]
fn a_controller_killed_at_every_step_reaches_the_same_end() {
    let mut calm = Sim::new(plan_yaml("  strategy: {batchSize: 2}"), 4);
    assert!(calm.run_until(&[Phase::Succeeded], 500));
    let mut calm_nodes: Vec<String> = calm.nodes.iter().map(|n| n.name.clone()).collect();
    calm_nodes.sort();

    let mut crashy = Sim::new(plan_yaml("  strategy: {batchSize: 2}"), 4);
    for i in 0..2000 {
        if crashy.phase() == Phase::Succeeded {
            break;
        }
        // Every other look dies part-way through its actions (or before writing status).
        let how = match i % 4 {
            0 => Reconcile::CrashAfter(i % 3),
            2 => Reconcile::CrashBeforeStatus,
            _ => Reconcile::Complete,
        };
        let d = crashy.reconcile(how);
        crashy.tick(
            d.requeue_after
                .map_or(10, |r| r.as_secs().clamp(1, 60) as i64),
        );
    }
    assert_eq!(crashy.phase(), Phase::Succeeded, "{:?}", crashy.plan.status);
    crashy.assert_no_violations();
    assert_eq!(
        reasons_seen(&crashy),
        reasons_seen(&calm),
        "every transition told once, even by a controller that died before its actions"
    );
    let mut crashy_nodes: Vec<String> = crashy.nodes.iter().map(|n| n.name.clone()).collect();
    crashy_nodes.sort();
    assert_eq!(
        crashy_nodes, calm_nodes,
        "the same new nodes, none provisioned twice"
    );
    assert!(crashy.nodes.iter().all(|n| !n.unschedulable));
}
