//! Rolling forward: start, batches (provision → cordon and drain → soak → advance), completion.
//!
//! One file per stage: [`start`], [`provision`], [`drain`], [`soak`]. Each stage of a batch
//! returns what it decided ([`Next`]) instead of acting on the rest of the step; here the step
//! forward runs the stages until one waits or stops, and [`Step::stop`] is the one door to a
//! stop. A stage that stops does so before it plans any action toward the target, so nothing
//! planned has to be taken back.

mod drain;
mod provision;
mod soak;
mod start;

use super::action::{Action, EventType};
use super::health::{self, Gate};
use super::limits::MAX_LISTED;
use super::settings::Settings;
use super::{Step, scope, slots};
use crate::api::condition::reasons;
use crate::api::{BatchPhase, Failure, HealthStatus, Phase, StopPolicy, Verdict};
use std::collections::BTreeSet;

/// What a stage of the batch in flight decided in this step.
#[derive(Debug)]
pub(crate) enum Next {
    /// Stay in this stage: the step ends here.
    Wait,
    /// The stage is done and the batch's next stage is recorded: go on with it in this step.
    Advance,
    /// Stop going forward.
    Stop(Stop),
}

/// A decision to stop going forward, and why.
#[derive(Debug)]
pub(crate) struct Stop {
    /// Halt in place or roll back.
    pub(crate) policy: StopPolicy,
    /// The condition and Event reason.
    pub(crate) reason: &'static str,
    /// What happened, for a person.
    pub(crate) message: String,
}

/// Stages one step may pass through: provision → drain → soak → remove → next batch, with room
/// to spare. Each `Advance` records a later stage, so the bound is never reached; it only keeps a
/// mistake from looping.
const MAX_STAGES_PER_STEP: usize = 8;

impl Step<'_> {
    /// Nodes claimed by another active plan, among `names`.
    pub(crate) fn claimed_elsewhere(&self, names: &[&str]) -> Vec<(String, String)> {
        let me = self.name();
        names
            .iter()
            .filter_map(|n| self.observed.node(n))
            .filter_map(|n| n.claimed_by().map(|c| (n.name.clone(), c.to_string())))
            .filter(|(_, owner)| {
                *owner != me
                    && self
                        .observed
                        .other_plans
                        .get(owner)
                        .copied()
                        .unwrap_or(false)
            })
            .collect()
    }

    /// Claim the nodes in `names` that are not yet this plan's.
    pub(crate) fn claim(&mut self, names: &[String]) {
        let me = self.name();
        for name in names {
            if let Some(n) = self.observed.node(name)
                && n.claimed_by() != Some(me.as_str())
            {
                self.actions.push(Action::Claim { node: name.clone() });
            }
        }
    }

    /// One step forward, from wherever the plan is.
    pub(crate) fn forward(&mut self, settings: &Settings) {
        if self.phase() == Phase::Paused && !settings.paused {
            // The pause was the person's time, not the batch's.
            self.restart_clocks(false);
        }
        if settings.paused {
            // A node request held back by the pause has not been made: its clock has not started.
            let now = self.now_time();
            let observed = self.observed;
            if let Some(b) = self.status.batches.last_mut()
                && b.phase == BatchPhase::Provisioning
                && b.new_nodes.iter().any(|s| {
                    !slots::requested(observed, s) && slots::node(observed, b, s).is_none()
                })
            {
                b.provisioned_at = Some(now);
            }
        }
        self.set_phase(Phase::Progressing);
        let observed = self.observed;
        let now = self.now;
        for b in &mut self.status.batches {
            if matches!(b.phase, BatchPhase::Draining | BatchPhase::Soaking) {
                health::track_shortfalls(b, observed, now);
            }
        }
        let mut gate = self.evaluate_gate(settings);
        self.record_health(&gate);
        if gate.verdict == Verdict::Unhealthy && self.status.point_of_no_return_at.is_none() {
            let reason = if !gate.failures.is_empty() {
                reasons::NODE_FAILED
            } else {
                reasons::HEALTH_GATE_FAILED
            };
            return self.stop(
                settings,
                Stop {
                    policy: settings.on_failure,
                    reason,
                    message: gate.describe(),
                },
            );
        }
        if let Some(at) = gate.next_deadline {
            self.requeue_at(at);
        }
        self.reclaim();
        for _ in 0..MAX_STAGES_PER_STEP {
            let next = match self
                .status
                .batches
                .iter()
                .rposition(|b| b.phase != BatchPhase::Completed)
            {
                Some(i) => match self.status.batches[i].phase {
                    BatchPhase::Provisioning => self.provisioning(settings, i),
                    BatchPhase::Draining => self.draining(settings, i),
                    BatchPhase::Soaking => self.soaking(settings, i, &gate),
                    BatchPhase::RemovingOldNodes => self.removing(settings, i),
                    BatchPhase::Completed | BatchPhase::RolledBack => self.next_batch(settings),
                },
                None => self.next_batch(settings),
            };
            match next {
                Next::Wait => break,
                // The gate covers what the batch is doing now.
                Next::Advance => {
                    gate = self.evaluate_gate(settings);
                    self.record_health(&gate);
                }
                Next::Stop(stop) => return self.stop(settings, stop),
            }
        }
        if settings.paused && self.phase() == Phase::Progressing {
            self.set_phase(Phase::Paused);
            self.message = format!("paused: {}", self.message);
        }
    }

    pub(crate) fn record_health(&mut self, gate: &Gate) {
        let mut unhealthy: Vec<_> = gate
            .failures
            .iter()
            .chain(&gate.unhealthy)
            .cloned()
            .collect();
        unhealthy.truncate(MAX_LISTED);
        let mut waiting = gate.waiting_for();
        waiting.truncate(MAX_LISTED);
        self.status.health = Some(HealthStatus {
            verdict: gate.verdict,
            tracked_pods: gate.tracked,
            tolerated_unhealthy: gate.tolerated,
            unhealthy,
            unhealthy_count: gate.unhealthy_count(),
            excused: gate.excused,
            waiting_for: waiting,
        });
    }

    /// A claim lost between the status write and its action (a crash) is made again, so the pool
    /// stays this plan's for as long as the plan runs.
    fn reclaim(&mut self) {
        let old: Vec<&str> = scope::old_nodes(self.plan, self.observed)
            .into_iter()
            .map(|n| n.name.as_str())
            .collect();
        let elsewhere: BTreeSet<String> = self
            .claimed_elsewhere(&old)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mine: Vec<String> = old
            .into_iter()
            .filter(|n| !elsewhere.contains(*n))
            .map(String::from)
            .collect();
        self.claim(&mine);
    }

    /// Stop going forward: halt in place or roll back. The one door to a stop; what was planned
    /// before it in this step is kept (claims and uncordons only: a stage decides to stop before
    /// it plans anything toward the target).
    pub(crate) fn stop(&mut self, settings: &Settings, stop: Stop) {
        let Stop {
            policy,
            reason,
            message,
        } = stop;
        let batch = self
            .status
            .batches
            .iter()
            .rposition(|b| b.phase != BatchPhase::Completed)
            .map(|i| i as u32);
        self.status.failure = Some(Failure {
            reason: reason.into(),
            message: message.clone(),
            at: self.now_time(),
            batch,
        });
        self.event(EventType::Warning, reason, message.clone());
        match policy {
            StopPolicy::Halt => {
                self.set_phase(Phase::Halted);
                self.status.stopped_generation = Some(self.generation());
                self.event(
                    EventType::Warning,
                    reasons::HALTED,
                    "halted: nodes stay as they are; change the spec to resume, or delete the plan to uncordon",
                );
                self.say(reasons::HALTED, format!("halted: {message}"));
            }
            StopPolicy::Rollback => {
                self.set_phase(Phase::RollingBack);
                self.event(
                    EventType::Warning,
                    reasons::ROLLBACK_STARTED,
                    format!("rolling back: {message}; old nodes are uncordoned first"),
                );
                self.rollback(settings);
            }
        }
    }

    pub(crate) fn batch_label(&self, i: usize) -> String {
        format!(
            "batch {}/{}",
            i + 1,
            self.status.summary.batches.max(i as u32 + 1)
        )
    }

    /// The health gate over the batches recorded so far.
    pub(crate) fn evaluate_gate(&self, settings: &Settings) -> Gate {
        health::evaluate(
            settings,
            &self.plan.spec.health,
            self.observed,
            &self.status.batches,
            &self.status.preexisting,
            self.now,
        )
    }

    /// Recompute counts from the batches and the pool.
    pub(crate) fn update_summary(&mut self, settings: &Settings) {
        let taken: u32 = self
            .status
            .batches
            .iter()
            .map(|b| b.old_nodes.len() as u32)
            .sum();
        let untaken = scope::untaken(self.plan, self.observed, &self.status.batches).len() as u32;
        let s = &mut self.status.summary;
        s.nodes = taken + untaken;
        s.updated = self
            .status
            .batches
            .iter()
            .filter(|b| b.phase == BatchPhase::Completed)
            .map(|b| b.old_nodes.len() as u32)
            .sum();
        let done = self.status.batches.len() as u32;
        let k = settings.batch_size_for(s.nodes.max(1));
        let more = if done == 0 {
            settings.batches_for(untaken)
        } else {
            untaken.div_ceil(k)
        };
        s.batches = done + more;
        s.current_batch = done;
        s.progress = format!("{}/{}", s.updated, s.nodes);
        s.batch = format!("{}/{}", s.current_batch, s.batches);
    }
}
