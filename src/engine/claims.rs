//! Who owns a node: the one rule for `molt.dev/claimed-by`, used by the engine and the shell.
//!
//! A plan claims its old nodes before it touches anything, and its new nodes as they appear.
//! A claim is taken with a compare-and-set (the shell patches with the node's resourceVersion),
//! and only from a plan that does not [`hold`](holds) it. A plan that has started holds its claims
//! for as long as it is active. Two plans that have not started yet (created back to back) both
//! claim; the older one (creation time, then name) holds and the younger one gives way, so
//! exactly one of them ever finds the whole pool its own and starts.

use crate::api::{NodeUpdatePlan, Phase};
use kube::ResourceExt;

/// Whether `owner`'s claims stand against `me`: `me` may neither take them over nor touch the
/// nodes they mark.
pub fn holds(owner: &NodeUpdatePlan, me: &NodeUpdatePlan) -> bool {
    if owner.name_any() == me.name_any() {
        return false;
    }
    let status = owner.status.as_ref();
    let phase = status.and_then(|s| s.phase).unwrap_or(Phase::Pending);
    let started = status.is_some_and(|s| s.started_at.is_some());
    if phase.owns_nodes(started) {
        true
    } else if phase.at_rest() {
        false
    } else {
        // Not started yet (Pending, or paused before the start): the plan that came first holds.
        precedes(owner, me)
    }
}

/// `a` came first: created earlier, or at the same second with the smaller name.
pub fn precedes(a: &NodeUpdatePlan, b: &NodeUpdatePlan) -> bool {
    let created = |p: &NodeUpdatePlan| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (created(a), a.name_any()) < (created(b), b.name_any())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::api::NodeUpdatePlanStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn plan(name: &str, created: &str, phase: Option<Phase>, started: bool) -> NodeUpdatePlan {
        let mut p = crate::engine::tests::plan();
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        p.status = phase.map(|phase| NodeUpdatePlanStatus {
            phase: Some(phase),
            started_at: started.then(|| Time(created.parse().unwrap())),
            ..Default::default()
        });
        p
    }

    const T1: &str = "2026-11-20T10:00:00Z";
    const T2: &str = "2026-11-20T10:00:01Z";

    #[test]
    fn a_started_active_plan_holds_against_anyone() {
        let me = plan("a", T1, None, false);
        for phase in [
            Phase::Progressing,
            Phase::Paused,
            Phase::RollingBack,
            Phase::Halted,
        ] {
            assert!(holds(&plan("b", T2, Some(phase), true), &me), "{phase}");
        }
        for phase in [Phase::Succeeded, Phase::RolledBack, Phase::Failed] {
            assert!(!holds(&plan("b", T1, Some(phase), true), &me), "{phase}");
        }
    }

    #[test]
    fn between_unstarted_plans_the_older_one_holds() {
        let older = plan("z-old", T1, Some(Phase::Pending), false);
        let younger = plan("a-young", T2, None, false);
        assert!(holds(&older, &younger));
        assert!(!holds(&younger, &older), "the younger gives way");
        // Same second: the name decides, and exactly one of the two holds.
        let a = plan("a", T1, None, false);
        let b = plan("b", T1, None, false);
        assert!(holds(&a, &b) && !holds(&b, &a));
    }

    #[test]
    fn an_unstarted_plan_at_rest_holds_nothing() {
        let me = plan("b", T2, None, false);
        assert!(!holds(&plan("a", T1, Some(Phase::Failed), false), &me));
        assert!(!holds(&me, &me), "a plan never stands against itself");
    }
}
