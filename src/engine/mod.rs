//! The pure decision core.
//!
//! [`decide`] takes a plan (with the status it last recorded), a snapshot of the cluster and the
//! current time, and returns the actions to take, the complete next status and when to look again.
//! It has no client, no clock, no environment and no I/O, so every transition is testable as a
//! plain function call, and a restarted controller that re-observes the cluster decides exactly
//! as the one that crashed would have.

pub mod action;
pub mod analysis;
pub mod claims;
pub mod cleanup;
pub mod control_plane;
pub mod drain;
mod evacuate;
mod forward;
pub mod health;
pub mod limits;
pub mod observed;
mod rollback;
pub mod scope;
pub mod selector;
pub mod settings;
pub mod slots;
pub mod status;
#[cfg(test)]
mod tests;
pub mod window;

pub use action::{Action, Decision, Event, EventType, NewNode};
pub use cleanup::{cleanup, cleanup_done};
pub use observed::Observed;

use crate::api::condition::reasons;
use crate::api::{Blocker, Failure, NodeUpdatePlan, NodeUpdatePlanStatus, Phase};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use settings::Settings;
use std::time::Duration;

/// How soon to look again while waiting on something no watch reports (a PDB retry).
pub const RETRY: Duration = Duration::from_secs(5);
/// Safety net: look again at least this often while a plan is in motion.
pub const RESYNC: Duration = Duration::from_secs(60);

/// Decide what to do next for `plan`, given what the cluster looks like at `now`.
pub fn decide(plan: &NodeUpdatePlan, observed: &Observed, now: Timestamp) -> Decision {
    let mut step = Step {
        plan,
        observed,
        now,
        status: plan.status.clone().unwrap_or_default(),
        actions: vec![],
        events: vec![],
        blockers: vec![],
        requeue: None,
        reason: reasons::PENDING,
        message: String::new(),
        held: false,
    };
    // Set again below while the plan waits for a maintenance window.
    step.status.next_window_at = None;
    match Settings::from_spec(&plan.spec) {
        Ok(_) if step.target_changed() => {
            let was = step.status.target_image.clone().unwrap_or_default();
            step.hold(
                reasons::TARGET_CHANGED,
                format!(
                    "spec.target.image changed from {was} to {} after the plan started; restore it, or delete this plan and create a new one",
                    plan.spec.target.image
                ),
            )
        }
        Ok(settings) => step.run(&settings),
        Err(e) if step.in_flight() => step.hold(
            reasons::INVALID_SPEC,
            format!("the spec can no longer be carried out: {e}; fix it and the plan continues"),
        ),
        Err(e) => step.invalid(&e),
    }
    step.finish()
}

/// One decision in the making: the next status, the actions and the words that explain them.
pub(crate) struct Step<'a> {
    pub(crate) plan: &'a NodeUpdatePlan,
    pub(crate) observed: &'a Observed,
    pub(crate) now: Timestamp,
    pub(crate) status: NodeUpdatePlanStatus,
    pub(crate) actions: Vec<Action>,
    pub(crate) events: Vec<Event>,
    pub(crate) blockers: Vec<Blocker>,
    pub(crate) requeue: Option<Duration>,
    /// Reason of the Progressing condition.
    pub(crate) reason: &'static str,
    /// The decision in words.
    pub(crate) message: String,
    /// Holding in place: no action at all until the spec is fixed.
    pub(crate) held: bool,
}

impl Step<'_> {
    pub(crate) fn generation(&self) -> i64 {
        self.plan.metadata.generation.unwrap_or(0)
    }

    pub(crate) fn name(&self) -> String {
        kube::ResourceExt::name_any(self.plan)
    }

    pub(crate) fn phase(&self) -> Phase {
        self.status.phase.unwrap_or(Phase::Pending)
    }

    pub(crate) fn set_phase(&mut self, phase: Phase) {
        self.status.phase = Some(phase);
    }

    pub(crate) fn event(
        &mut self,
        type_: EventType,
        reason: &'static str,
        note: impl Into<String>,
    ) {
        self.events.push(Event {
            type_,
            reason,
            note: note.into(),
        });
    }

    pub(crate) fn say(&mut self, reason: &'static str, message: impl Into<String>) {
        self.reason = reason;
        self.message = message.into();
    }

    /// Look again no later than `after`.
    pub(crate) fn requeue_within(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    /// Look again no later than `at`.
    pub(crate) fn requeue_at(&mut self, at: Timestamp) {
        let wait = at.duration_since(self.now);
        let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
        // Deadlines are compared with `>=`, so one extra second lands safely past them.
        self.requeue_within(wait + Duration::from_secs(1));
    }

    pub(crate) fn now_time(&self) -> Time {
        Time(self.now)
    }

    fn run(&mut self, settings: &Settings) {
        // Which node fills each slot is recorded as soon as the provider reports it, whatever
        // happens next: the shell watches the pods of the nodes status names.
        for b in &mut self.status.batches {
            slots::record(self.observed, b);
        }
        let stopped_earlier = self
            .status
            .stopped_generation
            .is_some_and(|g| self.generation() <= g);
        match self.phase() {
            Phase::Pending => self.start(settings),
            Phase::Paused if self.status.started_at.is_none() => self.start(settings),
            Phase::Progressing | Phase::Paused => self.forward(settings),
            Phase::RollingBack => self.rollback(settings),
            Phase::Succeeded => self.succeeded(),
            Phase::Halted | Phase::RolledBack | Phase::Failed if stopped_earlier => self.stopped(),
            Phase::Halted => self.resume_after_halt(settings),
            Phase::RolledBack | Phase::Failed => self.new_attempt(settings),
        }
    }

    /// Why the plan stopped, in words (empty if it did not).
    pub(crate) fn failure_message(&self) -> String {
        self.status
            .failure
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_default()
    }

    /// The plan has touched the cluster and has not come to rest.
    fn in_flight(&self) -> bool {
        self.status.started_at.is_some() && !self.phase().at_rest()
    }

    /// `spec.target` differs from the image the plan started with, while it is in flight.
    fn target_changed(&self) -> bool {
        self.in_flight()
            && self
                .status
                .target_image
                .as_ref()
                .is_some_and(|t| *t != self.plan.spec.target.image)
    }

    /// Hold in place, whatever the phase: no cordon, eviction, provisioning, removal or uncordon
    /// until the spec is fixed. The phase and every record stay, so the fix continues exactly
    /// where the plan was (forward or back).
    fn hold(&mut self, reason: &'static str, message: String) {
        let was_held = status::condition(&self.status, crate::api::condition::types::PROGRESSING)
            .is_some_and(|c| c.reason == reason);
        if !was_held {
            self.event(EventType::Warning, reason, message.clone());
        }
        self.held = true;
        self.say(reason, message);
    }

    /// A spec the engine cannot carry out: Failed, with the reason, and nothing touched.
    fn invalid(&mut self, error: &settings::SpecError) {
        if self.phase() != Phase::Failed {
            self.event(EventType::Warning, reasons::INVALID_SPEC, error.to_string());
        }
        self.set_phase(Phase::Failed);
        self.status.stopped_generation = Some(self.generation());
        self.status.failure = Some(Failure {
            reason: reasons::INVALID_SPEC.into(),
            message: error.to_string(),
            at: self.now_time(),
            batch: None,
        });
        self.say(
            reasons::INVALID_SPEC,
            format!("the spec cannot be carried out: {error}; fix it and molt tries again"),
        );
    }

    /// After a stop, nothing happens until the spec changes.
    fn stopped(&mut self) {
        let why = self.failure_message();
        let phase = self.phase();
        let reason = match phase {
            Phase::Halted => reasons::HALTED,
            Phase::RolledBack => reasons::ROLLED_BACK,
            _ => reasons::INVALID_SPEC,
        };
        if phase == Phase::RolledBack {
            self.release_claims();
        }
        // What blocked when the plan stopped stays on record for the person who looks.
        if phase == Phase::Halted {
            self.blockers = self.status.blockers.clone();
        }
        self.say(
            reason,
            format!("{phase}: {why}; nothing more happens until the spec changes (or the plan is deleted)"),
        );
    }

    fn succeeded(&mut self) {
        self.release_claims();
        let n = self.status.summary.updated;
        self.say(
            reasons::SUCCEEDED,
            format!("all {n} nodes run {}", self.plan.spec.target.image),
        );
    }

    /// Remove this plan's claim from every node still carrying it.
    pub(crate) fn release_claims(&mut self) {
        let me = self.name();
        for n in &self.observed.nodes {
            if n.claimed_by() == Some(me.as_str()) {
                self.actions.push(Action::Release {
                    node: n.name.clone(),
                });
            }
        }
    }

    fn resume_after_halt(&mut self, settings: &Settings) {
        self.event(
            EventType::Normal,
            reasons::RESUMED,
            "the spec changed after the halt; resuming where the plan stopped",
        );
        self.status.failure = None;
        self.status.stopped_generation = None;
        self.set_phase(Phase::Progressing);
        // The halt was the person's time, not the batch's.
        self.restart_clocks(true);
        self.forward(settings);
    }

    /// The clocks of the batch in flight start again from now (and its soak too, if `soak`).
    pub(crate) fn restart_clocks(&mut self, soak: bool) {
        let now = self.now_time();
        if let Some(b) = self.status.batches.last_mut() {
            if soak {
                b.soak_started_at = None;
            }
            match b.phase {
                crate::api::BatchPhase::Provisioning => b.provisioned_at = Some(now),
                crate::api::BatchPhase::Draining => b.drain_started_at = Some(now),
                _ => {}
            }
        }
    }

    fn new_attempt(&mut self, settings: &Settings) {
        self.event(
            EventType::Normal,
            reasons::RESUMED,
            "the spec changed after the plan stopped; starting a new attempt",
        );
        self.status.attempt += 1;
        self.status.batches.clear();
        self.status.preexisting.clear();
        self.status.failure = None;
        self.status.stopped_generation = None;
        self.status.point_of_no_return_at = None;
        self.status.completed_at = None;
        self.status.started_at = None;
        self.set_phase(Phase::Pending);
        self.start(settings);
    }
}
