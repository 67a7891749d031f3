//! Scenario tests: given a plan, a cluster and a time, the engine decides these actions and this status.

use super::sim::{Fault, Reconcile, Sim};
use super::*;
use crate::api::Phase;
use crate::engine::Action;

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
    assert!(sim.nodes.iter().all(|n| n.image() == Some("v2")));
    assert!(sim.workloads_ready());
    let _ = Reconcile::Complete;
    let _ = Fault::None;
}

#[test]
fn debug_crashloop() {
    let mut p = plan();
    p.spec.health.ready_timeout = std::time::Duration::from_secs(120).into();
    p.spec.health.node_ready_timeout = std::time::Duration::from_secs(120).into();
    p.spec.drain.timeout = std::time::Duration::from_secs(600).into();
    let mut sim = Sim::new(p, 2);
    sim.fault = Fault::CrashLoop;
    for _ in 0..40 {
        let d = sim.reconcile(Reconcile::Complete);
        let st = sim.plan.status.clone().unwrap();
        eprintln!(
            "{} {:?} {:?} h={:?} acts={:?}",
            sim.now,
            st.phase,
            st.message,
            st.health.map(|h| (h.verdict, h.tracked_pods, h.unhealthy)),
            d.actions
                .iter()
                .filter(|a| !matches!(a, Action::Event { .. }))
                .collect::<Vec<_>>()
        );
        for p in &sim.pods {
            eprintln!(
                "   {} {} ready={} r={} del={:?}",
                p.name,
                p.node,
                p.ready,
                p.restarts,
                p.deleting_since.is_some()
            );
        }
        sim.tick(
            d.requeue_after
                .map_or(10, |r| r.as_secs().clamp(1, 60) as i64),
        );
    }
}
