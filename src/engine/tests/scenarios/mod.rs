//! Scenario tests: given a plan, a cluster and a time, the engine decides these actions and this status.
//!
//! Each test drives the pure engine through a [`World`]: a snapshot that changes only when the test
//! changes it (or carries out the engine's actions), so every assertion names the exact actions,
//! phases, timestamps, conditions and Events of one transition. Whole rollouts through the cluster
//! model live in `end_to_end`.

mod advance;
mod batches;
mod cleanup;
mod displaced;
mod drain;
mod end_to_end;
mod gate;
mod halt;
mod health;
mod metrics;
mod outage_dips;
mod pause;
mod provisioning;
mod rollback;
mod scope;
mod spec;
mod windows;
mod world;

pub use world::World;

use super::{at, control_plane, node, plan, plan_yaml, pod, t0};
use crate::api::condition::types;
use crate::api::{NodeUpdatePlan, NodeUpdatePlanStatus, Phase, WorkloadRef, keys};
use crate::engine::observed::{NodeView, PdbView, PodPhase, PodView, WorkloadView};
use crate::engine::{Action, Decision, EventType};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};

/// The test plan's name (see `plan_yaml`).
pub const ME: &str = "workers-v2";

/// The deterministic name of the node that fills `slot` of `batch` in `attempt` for the test plan.
pub fn new_name(attempt: u32, batch: u32, slot: u32) -> String {
    format!("workers-v2-7f3c2-a{attempt}b{batch}n{slot}")
}

/// `ReplicaSet default/<name>`.
pub fn rs_ref(name: &str) -> WorkloadRef {
    WorkloadRef {
        kind: "ReplicaSet".into(),
        namespace: "default".into(),
        name: name.into(),
    }
}

/// A PDB over `app=<app>` in `default`, with the status the disruption controller reports.
pub fn pdb(name: &str, app: &str, allowed: i32, healthy: i32, desired: i32) -> PdbView {
    PdbView {
        namespace: "default".into(),
        name: name.into(),
        selector: Some(LabelSelector {
            match_labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        }),
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: desired,
        up_to_date: true,
        always_allow_unhealthy: false,
    }
}

/// A pod with no controller.
pub fn bare_pod(name: &str, node: &str, at: Timestamp) -> PodView {
    PodView {
        controller: None,
        ..pod(name, node, name, at)
    }
}

/// A pod owned by a controller of `kind` (`DaemonSet`, `Job`, …).
pub fn owned_pod(name: &str, node: &str, kind: &str, owner: &str, at: Timestamp) -> PodView {
    let mut p = pod(name, node, owner, at);
    p.controller = Some(WorkloadRef {
        kind: kind.into(),
        namespace: "default".into(),
        name: owner.into(),
    });
    p
}

/// The cluster-changing actions of a decision, in order, in a compact form.
pub fn acts(d: &Decision) -> Vec<String> {
    d.actions
        .iter()
        .map(|a| match a {
            Action::Claim { node } => format!("Claim {node}"),
            Action::Release { node } => format!("Release {node}"),
            Action::Provision(n) => format!("Provision {} for {}", n.name, n.replaces),
            Action::Cordon { node } => format!("Cordon {node}"),
            Action::Uncordon { node } => format!("Uncordon {node}"),
            Action::Evict { namespace, pod, .. } => format!("Evict {namespace}/{pod}"),
            Action::RemoveNode { node } => format!("RemoveNode {node}"),
            Action::RemoveSlot { slot, node } => match node {
                Some(n) if n != slot => format!("RemoveSlot {slot} ({n})"),
                Some(_) => format!("RemoveSlot {slot}"),
                None => format!("RemoveSlot {slot} (no node)"),
            },
        })
        .collect()
}

/// Reasons of the Events a decision publishes, in order.
pub fn events(d: &Decision) -> Vec<&'static str> {
    d.events.iter().map(|e| e.reason).collect()
}

/// The Event with `reason`: its type and note.
pub fn event(d: &Decision, reason: &str) -> (EventType, String) {
    d.events
        .iter()
        .find(|e| e.reason == reason)
        .map(|e| (e.type_, e.note.clone()))
        .unwrap_or_else(|| panic!("no {reason} event in {:?}", events(d)))
}

/// Assert a decision does nothing at all: no action and no Event.
#[track_caller]
pub fn assert_idle(d: &Decision) {
    assert!(
        d.actions.is_empty() && d.events.is_empty(),
        "actions {:?}, events {:?}",
        acts(d),
        events(d)
    );
}

/// Condition `type_` of a status.
pub fn cond<'a>(s: &'a NodeUpdatePlanStatus, type_: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("condition {type_} is set"))
}

/// Assert condition `type_` has `status` and `reason`; returns it for further checks.
#[track_caller]
pub fn assert_cond<'a>(
    s: &'a NodeUpdatePlanStatus,
    type_: &str,
    status: &str,
    reason: &str,
) -> &'a Condition {
    let c = cond(s, type_);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (status, reason),
        "condition {type_}: {}",
        c.message
    );
    c
}

pub fn time(t: Timestamp) -> Option<Time> {
    Some(Time(t))
}

/// A one-node world with pod `web-0` (ReplicaSet `web`, 1 replica) on `old-0`, taken through the
/// drain: at return the batch is Soaking since `drain_completed_at` (= t0+35s, the returned
/// instant), the replacement `web-1` landed on the new node at that moment, Running but not Ready.
pub fn soaking(plan: NodeUpdatePlan) -> (World, Timestamp) {
    soaking_with(plan, |_| {})
}

/// As [`soaking`], with `setup` applied to the world before the plan's first look at it.
pub fn soaking_with(plan: NodeUpdatePlan, setup: impl FnOnce(&mut World)) -> (World, Timestamp) {
    let mut w = World::with_nodes(plan, 1);
    w.add_pod(pod("web-0", "old-0", "web", t0()));
    w.workload("web", 1);
    setup(&mut w);
    w.step(); // claim, provision
    w.tick(30);
    w.ready_new_nodes();
    let d = w.step(); // cordon, evict web-0
    let done = acts(&d);
    assert!(
        done.contains(&"Cordon old-0".into()) && done.contains(&"Evict default/web-0".into()),
        "{done:?}"
    );
    w.tick(5);
    w.gone();
    w.land("web-1", &new_name(0, 0, 0), "web");
    let d = w.step();
    assert_eq!(
        events(&d),
        [crate::api::condition::reasons::DRAIN_COMPLETED]
    );
    assert_eq!(w.batch(0).phase, crate::api::BatchPhase::Soaking);
    let drained = w.now;
    (w, drained)
}

/// Duration from seconds, as the spec holds it.
pub fn secs(s: u64) -> kube::core::Duration {
    std::time::Duration::from_secs(s).into()
}
