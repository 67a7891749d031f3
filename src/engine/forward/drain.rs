//! Cordon and drain a batch's old nodes, bounded by `drain.timeout`.

use crate::api::condition::reasons;
use crate::api::{BatchPhase, Blocker, BlockerKind};
use crate::engine::action::{Action, EventType};
use crate::engine::health;
use crate::engine::limits::{MAX_DISPLACED, MAX_QUOTED};
use crate::engine::settings::Settings;
use crate::engine::{RETRY, Step, drain};

use super::{Next, Stop};

impl Step<'_> {
    /// Provisioning → Draining: record the pre-drain ready counts; the drain stage cordons and
    /// evicts.
    pub(crate) fn start_drain(&mut self, settings: &Settings, i: usize) -> Next {
        let label = self.batch_label(i);
        if settings.paused {
            self.say(
                reasons::PAUSED,
                format!("{label}: new nodes Ready; old nodes not cordoned while paused"),
            );
            return Next::Wait;
        }
        let old: Vec<String> = self.status.batches[i].old_nodes.clone();
        let unobserved: Vec<&String> = old
            .iter()
            .filter(|n| {
                self.observed.node(n).is_some() && !self.observed.pods_observed_on.contains(*n)
            })
            .collect();
        if !unobserved.is_empty() {
            let list: Vec<&str> = unobserved.iter().map(|s| s.as_str()).collect();
            self.say(
                reasons::OBSERVING,
                format!(
                    "{label}: waiting to observe the pods on {}",
                    list.join(", ")
                ),
            );
            self.requeue_within(RETRY);
            return Next::Wait;
        }
        // Cordon only nodes this plan is seen to own: a claim that lost a race to another plan
        // (the shell's claim is conditional) must not be cordoned by both.
        let me = self.name();
        let unclaimed: Vec<&String> = old
            .iter()
            .filter(|n| {
                self.observed
                    .node(n)
                    .is_some_and(|v| v.claimed_by() != Some(me.as_str()))
            })
            .collect();
        if !unclaimed.is_empty() {
            let names: Vec<&str> = unclaimed.iter().map(|s| s.as_str()).collect();
            let elsewhere = self.claimed_elsewhere(&names);
            for (node, owner) in &elsewhere {
                self.blockers.push(Blocker::other_plan(node, owner));
            }
            let free: Vec<String> = unclaimed
                .iter()
                .filter(|n| !elsewhere.iter().any(|(e, _)| e == **n))
                .map(|n| n.to_string())
                .collect();
            self.claim(&free);
            self.say(
                reasons::CLAIMED_BY_ANOTHER_PLAN,
                format!(
                    "{label}: waiting to own {} before cordoning",
                    names.join(", ")
                ),
            );
            self.requeue_within(RETRY);
            return Next::Wait;
        }
        let displaced = health::displaced_by(&old, self.observed, settings, &self.plan.spec.health);
        let unrecorded = displaced.len().saturating_sub(MAX_DISPLACED);
        if unrecorded > 0 {
            self.event(
                EventType::Warning,
                reasons::DISPLACED_UNRECORDED,
                format!(
                    "{label}: the drain displaces {} workloads; the gate checks the first {MAX_DISPLACED} of them against their pre-drain ready count (lower batchSize to check all)",
                    displaced.len()
                ),
            );
        }
        let now = self.now_time();
        let batch = &mut self.status.batches[i];
        batch.displaced = displaced.into_iter().take(MAX_DISPLACED).collect();
        batch.displaced_unrecorded = unrecorded as u32;
        batch.drain_started_at = Some(now);
        batch.phase = BatchPhase::Draining;
        self.event(
            EventType::Normal,
            reasons::DRAINING,
            format!("{label}: cordoning and draining {}", old.join(", ")),
        );
        Next::Advance
    }

    /// Cordon the batch's old nodes (idempotently) and evict the next slice of pods. The drain is
    /// done once every old node is seen cordoned and empty; past `drain.timeout` it stops, before
    /// anything more is planned.
    pub(crate) fn draining(&mut self, settings: &Settings, i: usize) -> Next {
        let label = self.batch_label(i);
        let batch = self.status.batches[i].clone();
        let uncordoned: Vec<String> = batch
            .old_nodes
            .iter()
            .filter_map(|name| self.observed.node(name))
            .filter(|n| !n.unschedulable && !n.is_control_plane())
            .map(|n| n.name.clone())
            .collect();
        let mut progress = drain::plan(&batch.old_nodes, self.observed, settings, !settings.paused);
        self.explain_exhausted_budgets(&mut progress.blockers);
        let was_blocked = !self.status.blockers.is_empty();
        self.blockers.extend(progress.blockers.iter().cloned());
        let blockers: Vec<String> = progress
            .blockers
            .iter()
            .take(MAX_QUOTED)
            .map(|b| b.reason.clone())
            .collect();
        let started = batch.drain_started_at.as_ref().map_or(self.now, |t| t.0);
        let deadline = health::add(started, settings.drain_timeout);
        let done = progress.complete() && uncordoned.is_empty();
        // While paused molt itself holds the drain back, so the timeout does not run out; the
        // drain clock starts again when the pause ends.
        if !done && self.now >= deadline && !settings.paused {
            let message = format!(
                "{label}: the drain of {} did not finish within {} (drain.timeout); {} pods left{}",
                batch.old_nodes.join(", "),
                health::human(settings.drain_timeout),
                progress.remaining,
                if blockers.is_empty() {
                    String::new()
                } else {
                    format!("; {}", blockers.join("; "))
                }
            );
            return Next::Stop(Stop {
                policy: settings.on_timeout,
                reason: reasons::DRAIN_TIMEOUT,
                message,
            });
        }
        if done {
            let now = self.now_time();
            let b = &mut self.status.batches[i];
            b.drain_completed_at = Some(now);
            b.phase = BatchPhase::Soaking;
            b.soak_started_at = None;
            health::track_shortfalls(b, self.observed, self.now);
            self.event(
                EventType::Normal,
                reasons::DRAIN_COMPLETED,
                format!("{label}: {} drained", batch.old_nodes.join(", ")),
            );
            return Next::Advance;
        }
        if !settings.paused {
            for node in uncordoned {
                self.actions.push(Action::Cordon { node });
            }
        }
        self.actions.extend(progress.evictions.iter().cloned());
        self.requeue_at(deadline);
        if !progress.blockers.is_empty()
            || progress.terminating > 0
            || !progress.evictions.is_empty()
        {
            self.requeue_within(RETRY);
        }
        if !was_blocked && !progress.blockers.is_empty() {
            let reason = if progress.blocked_by_pdb() {
                reasons::DRAIN_BLOCKED_BY_PDB
            } else {
                reasons::DRAIN_BLOCKED_BY_POD
            };
            self.event(
                EventType::Warning,
                reason,
                format!("{label}: {}", blockers.join("; ")),
            );
        }
        let mut msg = format!(
            "{label}: draining {}: {} pods to go ({} terminating, {} evictions issued now)",
            batch.old_nodes.join(", "),
            progress.remaining,
            progress.terminating,
            progress.evictions.len()
        );
        if !blockers.is_empty() {
            msg.push_str(&format!("; blocked: {}", blockers.join("; ")));
        }
        if !progress.unobserved.is_empty() {
            msg.push_str(&format!(
                "; waiting to observe the pods on {}",
                progress.unobserved.join(", ")
            ));
            self.requeue_within(RETRY);
        }
        self.say(reasons::DRAINING, msg);
        Next::Wait
    }

    /// A budget that refuses because its workload was already short before the plan is that
    /// outage's doing, not the drain's: say so, since waiting will not help.
    fn explain_exhausted_budgets(&self, blockers: &mut [Blocker]) {
        for b in blockers.iter_mut().filter(|b| b.kind == BlockerKind::Pdb) {
            let Some(key) = &b.pod else { continue };
            let Some(pod) = self.observed.pods.iter().find(|p| &p.key() == key) else {
                continue;
            };
            let Some(outage) = self
                .status
                .preexisting
                .iter()
                .find(|o| pod.controller.as_ref() == Some(&o.workload))
            else {
                continue;
            };
            b.reason.push_str(&format!(
                "; {} was already short of Ready pods before the plan started ({} of {} Ready), which uses up the budget: fix that outage or relax the PDB, the drain cannot go on until then",
                outage.workload, outage.ready, outage.desired
            ));
        }
    }
}
