//! The product's invariants, checked on every decision and after every step of the model.

use super::Sim;
use crate::api::{BatchPhase, Phase};
use crate::engine::tests::image;
use crate::engine::{Action, Decision};
use std::collections::BTreeSet;

impl Sim {
    pub(super) fn violation(&mut self, what: String) {
        self.violations
            .push(format!("t={} phase={:?}: {what}", self.now, self.phase()));
    }

    pub(super) fn check_decision(&mut self, d: &Decision) {
        let stopping = matches!(
            d.status.phase,
            Some(Phase::Halted | Phase::RollingBack | Phase::RolledBack)
        );
        let stopped_before =
            self.stopped_in.is_some() && self.stopped_in == self.plan.metadata.generation;
        for a in &d.actions {
            let on_old = a.node().is_some_and(|n| !self.is_new(n));
            let toward_target = match a {
                Action::Provision(_) => true,
                Action::Cordon { .. } | Action::Evict { .. } => on_old,
                _ => false,
            };
            if (stopping || stopped_before) && toward_target {
                self.violation(format!("invariant 4: {a:?} after a halt/rollback decision"));
            }
            if let Some(n) = a.node()
                && self.node(n).is_some_and(|n| n.is_control_plane())
                && matches!(
                    a,
                    Action::Cordon { .. } | Action::Evict { .. } | Action::RemoveNode { .. }
                )
            {
                self.violation(format!("invariant 6: {a:?} on a control-plane node"));
            }
        }
    }

    pub(super) fn check_state(&mut self) {
        let me = self.plan.metadata.name.clone().unwrap_or_default();
        let target = self.target();
        let status = self.plan.status.clone().unwrap_or_default();
        let replaced: BTreeSet<&String> = status
            .batches
            .iter()
            .filter(|b| b.phase == BatchPhase::Completed)
            .flat_map(|b| &b.old_nodes)
            .collect();
        let cordoned_not_replaced: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.unschedulable && n.cordoned_by() == Some(me.as_str()))
            .filter(|n| image(n) != Some(target.as_str()) && !self.provisioned.contains(&n.name))
            .filter(|n| !replaced.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        let k = self.max_batch();
        if cordoned_not_replaced.len() > k {
            self.violation(format!(
                "invariant 2: {} old nodes cordoned and not replaced (max {k}): {cordoned_not_replaced:?}",
                cordoned_not_replaced.len()
            ));
        }
        let humans: Vec<String> = self
            .human_cordoned
            .iter()
            .filter(|h| self.node(h).is_some_and(|n| !n.unschedulable))
            .cloned()
            .collect();
        for h in humans {
            self.violation(format!(
                "invariant 3: node {h}, cordoned by a person, was uncordoned"
            ));
        }
        if self.phase() == Phase::RolledBack {
            let left: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.unschedulable && n.cordoned_by() == Some(me.as_str()))
                .map(|n| n.name.clone())
                .collect();
            if !left.is_empty() {
                self.violation(format!(
                    "invariant 3: rolled back but {left:?} still cordoned by molt"
                ));
            }
        }
    }

    /// The largest batch the plan may have in flight.
    pub fn max_batch(&self) -> usize {
        // Batch sizing does not depend on the health fields a test may have made invalid.
        let mut spec = self.plan.spec.clone();
        spec.health.max_restarts = spec.health.max_restarts.max(0);
        let settings = crate::engine::settings::Settings::from_spec(&spec).expect("valid spec");
        let total = self
            .plan
            .status
            .as_ref()
            .map_or(self.nodes.len() as u32, |s| s.summary.nodes.max(1));
        settings
            .batch_size_for(total)
            .max(settings.canary.unwrap_or(0)) as usize
    }

    pub fn assert_no_violations(&self) {
        assert!(
            self.violations.is_empty(),
            "invariant violations:\n{}",
            self.violations.join("\n")
        );
    }
}
