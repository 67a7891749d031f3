//! The finishing touches of a decision: conditions, summary, message and requeue.
//!
//! Conditions keep their `lastTransitionTime` unless their status flips, so a level-triggered
//! controller rewriting the same status does not make them look new.

use super::limits::{MAX_LISTED, MAX_QUOTED};
use super::{Action, Decision, RESYNC, Step};
use crate::api::condition::{reasons, types};
use crate::api::{BlockerKind, NodeUpdatePlanStatus, Phase, Subject, Verdict};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Set condition `type_` in `conditions`, keeping `lastTransitionTime` when the status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: i64,
    now: &Time,
) {
    let status = if status { "True" } else { "False" }.to_string();
    set_condition_status(conditions, type_, status, reason, message, generation, now);
}

/// As [`set_condition`], with `Unknown` possible.
pub fn set_condition_status(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: String,
    reason: &str,
    message: String,
    generation: i64,
    now: &Time,
) {
    let last = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: Some(generation),
        last_transition_time: last,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// The condition `type_`, if set.
pub fn condition<'a>(status: &'a NodeUpdatePlanStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

impl Step<'_> {
    /// Some blocker of the decision is of this kind.
    fn blocked_by(&self, kind: BlockerKind) -> bool {
        self.status.blockers.iter().any(|b| b.kind == kind)
    }

    pub(crate) fn finish(mut self) -> Decision {
        let generation = self.generation();
        let now = self.now_time();
        let phase = self.phase();
        self.status.observed_generation = Some(generation);
        if !self.held
            && let Ok(settings) = super::settings::Settings::from_spec(&self.plan.spec)
        {
            self.update_summary(&settings);
        }
        let mut blockers = std::mem::take(&mut self.blockers);
        blockers.truncate(MAX_LISTED);
        self.status.blockers = blockers;
        self.status.message = Some(self.message.clone());

        let reason = self.reason;
        let message = self.message.clone();
        let mut conditions = std::mem::take(&mut self.status.conditions);
        let moving = phase.moving() && !self.held;
        set_condition(
            &mut conditions,
            types::PROGRESSING,
            moving,
            reason,
            message.clone(),
            generation,
            &now,
        );

        let (h_status, h_reason, h_message) = match &self.status.health {
            None => (
                "Unknown",
                reasons::NOT_APPLICABLE,
                "no batch has started".to_string(),
            ),
            Some(h) => match h.verdict {
                Verdict::Healthy => (
                    "True",
                    reasons::HEALTH_OK,
                    format!("{} tracked pods healthy", h.tracked_pods),
                ),
                Verdict::Pending => (
                    "Unknown",
                    reasons::HEALTH_PENDING,
                    format!(
                        "waiting for {}",
                        h.waiting_for.first().map_or("observations", String::as_str)
                    ),
                ),
                Verdict::Unhealthy => {
                    let first: Vec<String> = h
                        .unhealthy
                        .iter()
                        .take(MAX_QUOTED)
                        .map(|u| match u.subject {
                            Subject::Pod => format!("{}/{}: {}", u.namespace, u.pod, u.reason),
                            Subject::Node | Subject::Workload => u.reason.clone(),
                        })
                        .collect();
                    (
                        "False",
                        reasons::HEALTH_GATE_FAILED,
                        format!("{} unhealthy: {}", h.unhealthy_count, first.join("; ")),
                    )
                }
            },
        };
        set_condition_status(
            &mut conditions,
            types::HEALTHY,
            h_status.into(),
            h_reason,
            h_message,
            generation,
            &now,
        );

        let complete = matches!(phase, Phase::Succeeded | Phase::RolledBack);
        let c_reason = match phase {
            Phase::Succeeded => reasons::SUCCEEDED,
            Phase::RolledBack => reasons::ROLLED_BACK,
            _ => reasons::NOT_APPLICABLE,
        };
        let c_message = if complete {
            message.clone()
        } else {
            format!("phase {phase}")
        };
        set_condition(
            &mut conditions,
            types::COMPLETE,
            complete,
            c_reason,
            c_message,
            generation,
            &now,
        );

        let failure = self.status.failure.clone();
        let degraded = self.held
            || matches!(
                phase,
                Phase::Halted | Phase::RollingBack | Phase::RolledBack | Phase::Failed
            );
        let (d_reason, d_message) = match (&failure, degraded) {
            _ if self.held => (reason.to_string(), message.clone()),
            (Some(f), true) => (f.reason.clone(), f.message.clone()),
            _ => (
                reasons::NOT_APPLICABLE.to_string(),
                "no failure".to_string(),
            ),
        };
        set_condition(
            &mut conditions,
            types::DEGRADED,
            degraded,
            &d_reason,
            d_message,
            generation,
            &now,
        );

        let blocked = !self.status.blockers.is_empty();
        let b_reason = if !blocked {
            reasons::NOT_APPLICABLE
        } else if reason == reasons::CLAIMED_BY_ANOTHER_PLAN
            || self.blocked_by(BlockerKind::OtherPlan)
        {
            reasons::CLAIMED_BY_ANOTHER_PLAN
        } else if self.blocked_by(BlockerKind::Pdb) {
            reasons::DRAIN_BLOCKED_BY_PDB
        } else {
            reasons::DRAIN_BLOCKED_BY_POD
        };
        let b_message = self
            .status
            .blockers
            .iter()
            .take(MAX_QUOTED)
            .map(|b| b.reason.clone())
            .collect::<Vec<_>>()
            .join("; ");
        set_condition(
            &mut conditions,
            types::BLOCKED,
            blocked,
            b_reason,
            b_message,
            generation,
            &now,
        );

        let paused = self.plan.spec.paused;
        let p_reason = if paused {
            reasons::PAUSED
        } else {
            reasons::NOT_APPLICABLE
        };
        let p_message = if paused {
            "spec.paused is true".to_string()
        } else {
            String::new()
        };
        set_condition(
            &mut conditions,
            types::PAUSED,
            paused,
            p_reason,
            p_message,
            generation,
            &now,
        );
        self.status.conditions = conditions;

        let mut requeue = self.requeue;
        if phase.in_motion() {
            requeue = Some(requeue.map_or(RESYNC, |r| r.min(RESYNC)));
        }
        // One intent once: steps of the same decision may ask for the same thing (a claim at the
        // start and again for the batch, a cordon by the drain and again by the removal).
        let mut actions: Vec<Action> = Vec::with_capacity(self.actions.len());
        for a in self.actions {
            if !actions.contains(&a) {
                actions.push(a);
            }
        }
        Decision {
            actions,
            events: self.events,
            status: self.status,
            requeue_after: requeue,
        }
    }
}
