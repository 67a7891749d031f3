//! A spec that slipped past admission, and how conditions keep their transition times.

use super::*;
use crate::api::condition::reasons;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[track_caller]
fn assert_invalid(p: NodeUpdatePlan, field: &str) {
    let mut w = World::with_nodes(p, 2);
    let d = w.step();
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "{field}: nothing is touched"
    );
    assert_eq!(events(&d), [reasons::INVALID_SPEC], "{field}");
    let (kind, note) = event(&d, reasons::INVALID_SPEC);
    assert_eq!(kind, EventType::Warning);
    assert!(note.contains(field), "{field}: {note}");
    assert_eq!(w.phase(), Phase::Failed, "{field}");
    let s = w.status().clone();
    let f = s.failure.clone().unwrap();
    assert_eq!((f.reason.as_str(), f.batch), (reasons::INVALID_SPEC, None));
    assert_eq!(s.stopped_generation, Some(1));
    let c = assert_cond(&s, types::PROGRESSING, "False", reasons::INVALID_SPEC);
    assert!(
        c.message.starts_with("the spec cannot be carried out: ") && c.message.contains(field),
        "{}",
        c.message
    );
    assert_cond(&s, types::DEGRADED, "True", reasons::INVALID_SPEC);
    assert_cond(&s, types::COMPLETE, "False", reasons::NOT_APPLICABLE);
    assert_eq!(d.requeue_after, None);
    assert!(
        w.obs
            .nodes
            .iter()
            .all(|n| n.annotations.is_empty() && !n.unschedulable)
    );

    // Looking again says nothing new.
    w.tick(60);
    let d = w.step();
    assert!(
        d.actions.is_empty() && d.events.is_empty(),
        "{field}: {:?} {:?}",
        d.actions,
        d.events
    );
    assert_eq!(w.phase(), Phase::Failed);
}

#[test]
fn an_empty_selector_fails_the_plan() {
    let mut p = plan();
    p.spec.node_selector = LabelSelector::default();
    assert_invalid(p, "spec.nodeSelector is empty");
}

#[test]
fn a_zero_batch_size_fails_the_plan() {
    assert_invalid(
        plan_yaml("  strategy: {batchSize: '0%'}"),
        r#"spec.strategy.batchSize is "0%""#,
    );
    assert_invalid(
        plan_yaml("  strategy: {batchSize: 0}"),
        "spec.strategy.batchSize is \"0\"",
    );
    assert_invalid(
        plan_yaml("  strategy: {canary: {nodes: 0}}"),
        "spec.strategy.canary.nodes",
    );
}

#[test]
fn a_negative_or_zero_duration_fails_the_plan() {
    assert_invalid(plan_yaml("  drain: {timeout: -5m}"), "spec.drain.timeout");
    assert_invalid(
        plan_yaml("  health: {readyTimeout: 0s}"),
        "spec.health.readyTimeout",
    );
    assert_invalid(plan_yaml("  health: {soak: -1s}"), "spec.health.soak");
}

#[test]
fn other_values_out_of_range_fail_the_plan() {
    assert_invalid(
        plan_yaml("  health: {maxRestarts: -1}"),
        "spec.health.maxRestarts",
    );
    assert_invalid(
        plan_yaml("  health: {maxUnhealthyPods: '150%'}"),
        "spec.health.maxUnhealthyPods",
    );
    assert_invalid(
        plan_yaml("  drain: {gracePeriodSeconds: -3}"),
        "spec.drain.gracePeriodSeconds",
    );
    let mut p = plan();
    p.spec.provider.kwok = None;
    assert_invalid(p, "spec.provider must set exactly one provider");
}

#[test]
fn conditions_keep_their_transition_time_until_their_status_flips() {
    let mut p = plan();
    p.spec.node_selector = LabelSelector::default();
    let mut w = World::with_nodes(p, 1);
    w.step();
    let first = w.status().conditions.clone();
    assert!(
        first
            .iter()
            .all(|c| c.last_transition_time == Time(t0()) && c.observed_generation == Some(1))
    );

    // The same verdict later: every condition keeps its time.
    w.tick(600);
    w.step();
    assert_eq!(w.status().conditions, first);

    // Fixed: the conditions that flip get the new time, the others keep theirs.
    w.tick(60);
    w.edit(|p| p.spec.node_selector = plan().spec.node_selector);
    let d = w.step();
    assert_eq!(
        events(&d),
        [
            reasons::RESUMED,
            reasons::PLAN_STARTED,
            reasons::BATCH_STARTED
        ]
    );
    let s = w.status();
    assert_eq!(w.phase(), Phase::Progressing);
    let fixed = Time(w.now);
    let c = assert_cond(s, types::PROGRESSING, "True", reasons::PROVISIONING);
    assert_eq!(
        (c.last_transition_time.clone(), c.observed_generation),
        (fixed.clone(), Some(2))
    );
    let c = assert_cond(s, types::DEGRADED, "False", reasons::NOT_APPLICABLE);
    assert_eq!(c.last_transition_time, fixed);
    let c = assert_cond(s, types::COMPLETE, "False", reasons::NOT_APPLICABLE);
    assert_eq!(
        (c.last_transition_time.clone(), c.observed_generation),
        (Time(t0()), Some(2))
    );
    let c = assert_cond(s, types::PAUSED, "False", reasons::NOT_APPLICABLE);
    assert_eq!(c.last_transition_time, Time(t0()));
}

/// A plan in the middle of a drain, its old node cordoned and one pod evicted.
fn draining() -> World {
    let mut p = plan();
    p.spec.health.soak = secs(60);
    let mut w = World::with_nodes(p, 2);
    w.land("web-0", "old-0", "web");
    w.workload("web", 1);
    w.step();
    w.ready_new_nodes();
    w.tick(5);
    let d = w.step();
    assert_eq!(
        w.batch(0).phase,
        crate::api::BatchPhase::Draining,
        "{:?}",
        acts(&d)
    );
    w
}

#[test]
fn an_invalid_edit_mid_rollout_holds_in_place_and_the_fix_continues() {
    let mut w = draining();
    let before = w.status().clone();
    w.edit(|p| p.spec.strategy.batch_size = IntOrString::String("0%".into()));
    let d = w.step();
    assert_eq!(
        acts(&d),
        Vec::<String>::new(),
        "nothing is touched while the spec is invalid"
    );
    assert_eq!(events(&d), [reasons::INVALID_SPEC]);
    assert_eq!(
        w.phase(),
        Phase::Progressing,
        "the phase and its records stay"
    );
    assert_eq!(w.status().batches, before.batches);
    assert!(w.node("old-0").unschedulable, "nothing is undone either");
    let c = assert_cond(
        w.status(),
        types::PROGRESSING,
        "False",
        reasons::INVALID_SPEC,
    );
    assert!(c.message.contains("strategy.batchSize"), "{}", c.message);
    assert_cond(w.status(), types::DEGRADED, "True", reasons::INVALID_SPEC);
    // Looking again holds without a second Event.
    w.tick(30);
    let d = w.step();
    assert_idle(&d);

    // The fix continues the same batch: no new attempt, no second node.
    w.edit(|p| p.spec.strategy.batch_size = IntOrString::Int(1));
    let d = w.step();
    assert_eq!(w.status().attempt, 0);
    assert_eq!(w.status().batches.len(), 1);
    assert!(
        !acts(&d).iter().any(|a| a.starts_with("Provision")),
        "{:?}",
        acts(&d)
    );
    assert_cond(w.status(), types::PROGRESSING, "True", reasons::DRAINING);
}

#[test]
fn an_invalid_edit_during_a_rollback_holds_and_the_fix_keeps_rolling_back() {
    let mut w = draining();
    w.edit(|p| p.spec.drain.on_timeout = crate::api::StopPolicy::Rollback);
    w.tick(31 * 60);
    w.step();
    assert_eq!(w.phase(), Phase::RollingBack);
    w.edit(|p| p.spec.health.max_restarts = -1);
    let d = w.step();
    assert!(d.actions.is_empty(), "only Events: {:?}", acts(&d));
    assert_eq!(w.phase(), Phase::RollingBack);
    w.edit(|p| p.spec.health.max_restarts = 3);
    let d = w.step();
    assert!(
        matches!(w.phase(), Phase::RollingBack | Phase::RolledBack),
        "the fix resumes the rollback, not the rollout: {:?}",
        w.phase()
    );
    assert!(
        !acts(&d)
            .iter()
            .any(|a| a.starts_with("Provision") || a == "Cordon old-0"),
        "{:?}",
        acts(&d)
    );
}

#[test]
fn a_target_changed_after_the_start_holds_in_place() {
    let mut w = draining();
    w.edit(|p| p.spec.target.image = "v3".into());
    let d = w.step();
    assert_eq!(acts(&d), Vec::<String>::new());
    assert_eq!(events(&d), [reasons::TARGET_CHANGED]);
    let c = assert_cond(
        w.status(),
        types::PROGRESSING,
        "False",
        reasons::TARGET_CHANGED,
    );
    assert!(c.message.contains("from v2 to v3"), "{}", c.message);
    assert_eq!(w.status().target_image.as_deref(), Some("v2"));
    // Restoring it continues.
    w.edit(|p| p.spec.target.image = "v2".into());
    w.step();
    assert_cond(w.status(), types::PROGRESSING, "True", reasons::DRAINING);
}
