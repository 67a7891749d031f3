//! The soak, then the batch passes; old nodes removed per batch or at the point of no return.

use crate::api::condition::reasons;
use crate::api::{BatchPhase, Verdict};
use crate::engine::action::{Action, EventType};
use crate::engine::health::{self, Gate};
use crate::engine::settings::Settings;
use crate::engine::{RETRY, Step, analysis, drain};

impl Step<'_> {
    /// The gate must stay Healthy for `soak`, without a break.
    pub(crate) fn soaking(&mut self, settings: &Settings, i: usize, gate: &Gate) {
        let label = self.batch_label(i);
        if let Some(at) = gate.next_deadline {
            self.requeue_at(at);
        }
        let metrics = self.analyse(i);
        if self.metrics_stop_soak(settings, i, &metrics) {
            return;
        }
        if gate.only_unobserved() && self.status.batches[i].soak_started_at.is_some() {
            // A restarted controller has not seen the pods yet. The soak clock is in status and
            // keeps running; it passes only once they are seen healthy.
            self.requeue_within(RETRY);
            self.say(
                reasons::SOAKING,
                format!(
                    "{label}: soaking; waiting to observe the pods on {}",
                    gate.unobserved.join(", ")
                ),
            );
            return;
        }
        if gate.verdict != Verdict::Healthy {
            self.status.batches[i].soak_started_at = None;
            self.say(
                reasons::SOAKING,
                format!(
                    "{label}: soaking, health {}: {}",
                    gate.verdict,
                    gate.describe()
                ),
            );
            return;
        }
        let since = match &self.status.batches[i].soak_started_at {
            Some(t) => t.0,
            None => {
                self.status.batches[i].soak_started_at = Some(self.now_time());
                self.now
            }
        };
        let done_at = health::add(since, settings.soak);
        if let analysis::Verdict::Waiting(why) = &metrics {
            self.say(
                reasons::SOAKING,
                format!("{label}: soaking, healthy since {since}; the soak passes after {why}"),
            );
            return;
        }
        if self.now < done_at {
            self.requeue_at(done_at);
            self.say(
                reasons::SOAKING,
                format!(
                    "{label}: soaking, healthy since {since}; passes at {done_at} ({})",
                    gate.describe()
                ),
            );
            return;
        }
        self.event(
            EventType::Normal,
            reasons::HEALTH_GATE_PASSED,
            format!("{label}: healthy for {}", health::human(settings.soak)),
        );
        if settings.blue_green {
            self.complete_batch(i);
            self.next_batch(settings);
        } else {
            self.status.batches[i].phase = BatchPhase::RemovingOldNodes;
            self.event(
                EventType::Normal,
                reasons::REMOVING_OLD_NODES,
                format!(
                    "{label}: removing old nodes {}",
                    self.status.batches[i].old_nodes.join(", ")
                ),
            );
            self.removing(settings, i);
        }
    }

    pub(crate) fn complete_batch(&mut self, i: usize) {
        let label = self.batch_label(i);
        let now = self.now_time();
        let b = &mut self.status.batches[i];
        b.phase = BatchPhase::Completed;
        b.completed_at = Some(now);
        let nodes = b.old_nodes.join(", ");
        self.event(
            EventType::Normal,
            reasons::BATCH_COMPLETED,
            format!("{label} passed: {nodes} replaced"),
        );
    }

    /// Remove old nodes once they are drained (they may have taken pods again if someone uncordoned them).
    /// Returns whether all of them are gone.
    pub(crate) fn remove_old(&mut self, settings: &Settings, nodes: &[String]) -> bool {
        let existing: Vec<String> = nodes
            .iter()
            .filter(|n| self.observed.node(n).is_some())
            .cloned()
            .collect();
        if existing.is_empty() {
            return true;
        }
        if settings.paused {
            return false;
        }
        for name in &existing {
            if let Some(n) = self.observed.node(name)
                && !n.unschedulable
            {
                self.actions.push(Action::Cordon { node: name.clone() });
            }
        }
        let progress = drain::plan(&existing, self.observed, settings, true);
        self.blockers.extend(progress.blockers.iter().cloned());
        self.actions.extend(progress.evictions.iter().cloned());
        for name in progress.drained_nodes() {
            if self.observed.node(name).is_some_and(|n| !n.deleting) {
                self.actions.push(Action::RemoveNode {
                    node: name.to_string(),
                });
            }
        }
        self.requeue_within(RETRY);
        false
    }

    pub(crate) fn removing(&mut self, settings: &Settings, i: usize) {
        let label = self.batch_label(i);
        let old = self.status.batches[i].old_nodes.clone();
        if self.remove_old(settings, &old) {
            self.complete_batch(i);
            self.next_batch(settings);
        } else {
            self.say(
                reasons::REMOVING_OLD_NODES,
                format!("{label}: removing old nodes {}", old.join(", ")),
            );
        }
    }
}
