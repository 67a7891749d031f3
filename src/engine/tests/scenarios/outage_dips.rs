//! A workload short before the plan whose healthy pods a later batch drains: the momentary dip
//! of its ready count is not one more failure.

use super::*;
use crate::api::condition::reasons;
use crate::api::{BatchPhase, Verdict};

#[test]
fn evicting_a_healthy_pod_of_an_outage_does_not_withdraw_the_excuse_of_a_broken_one() {
    // api wants 2 pods: api-0 on old-0 is broken (never Ready), api-1 on old-1 is healthy.
    let mut w = World::with_nodes(plan_yaml("  health: {soak: 1m}"), 2);
    w.add_pod(pod("api-0", "old-0", "api", t0()));
    w.add_pod(pod("api-1", "old-1", "api", t0()));
    w.pod_mut("api-0").ready = false;
    w.workload("api", 2);
    w.step();
    assert_eq!(w.status().preexisting[0].missing(), 1);
    w.tick(30);
    w.ready_new_nodes();
    let d = w.step();
    assert!(acts(&d).contains(&"Evict default/api-0".to_string()));
    w.tick(5);
    w.gone();
    // The replacement of the broken pod is as broken, on batch 1's new node: excused.
    w.land("api-2", &new_name(0, 0, 0), "api");
    w.step();
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
    w.tick(301);
    w.step();
    let h = w.status().health.clone().unwrap();
    assert_eq!((h.verdict, h.excused), (Verdict::Healthy, 1));
    // Batch 2 drains old-1: api-1, healthy, is evicted.
    w.drive_until(
        |w| w.status().batches.len() == 2 && w.batch(1).phase == BatchPhase::Draining,
        20,
    );
    assert!(w.obs.pods.iter().all(|p| p.name != "api-1"), "evicted");
    // api has 0 Ready pods of 2 until api-1's replacement is up: still the one broken pod the
    // outage accounts for, and one pod on its way.
    w.tick(1);
    let d = w.step();
    assert!(
        events(&d).iter().all(|e| *e == reasons::DRAIN_COMPLETED),
        "{:?}",
        events(&d)
    );
    assert_eq!(w.phase(), Phase::Progressing);
    let h = w.status().health.clone().unwrap();
    assert_ne!(h.verdict, Verdict::Unhealthy);
    assert_eq!((h.excused, h.unhealthy_count), (1, 0));
}
