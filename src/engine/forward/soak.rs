//! The soak, then the batch passes; old nodes removed per batch or at the point of no return.

use crate::api::condition::reasons;
use crate::api::{BatchPhase, Verdict};
use crate::engine::action::EventType;
use crate::engine::health::{self, Gate};
use crate::engine::limits::MAX_QUOTED;
use crate::engine::settings::Settings;
use crate::engine::{RETRY, Step, analysis};

use super::Next;

impl Step<'_> {
    /// The gate must stay Healthy for `soak`, without a break.
    pub(crate) fn soaking(&mut self, settings: &Settings, i: usize, gate: &Gate) -> Next {
        let label = self.batch_label(i);
        if let Some(at) = gate.next_deadline {
            self.requeue_at(at);
        }
        let metrics = self.analyse(i);
        if let Some(next) = self.metrics_hold(settings, i, &metrics) {
            return next;
        }
        if gate.only_interruptions() && self.status.batches[i].soak_started_at.is_some() {
            // A blip, or a restarted controller that has not seen the pods yet. The soak clock
            // is in status and keeps running; it passes only once all is seen healthy again.
            self.requeue_within(RETRY);
            let what: Vec<String> = gate
                .interruptions()
                .iter()
                .take(MAX_QUOTED)
                .map(|w| w.what.clone())
                .collect();
            self.say(
                reasons::SOAKING,
                format!("{label}: soaking; waiting for {}", what.join(", ")),
            );
            return Next::Wait;
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
            return Next::Wait;
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
            return Next::Wait;
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
            return Next::Wait;
        }
        self.event(
            EventType::Normal,
            reasons::HEALTH_GATE_PASSED,
            format!("{label}: healthy for {}", health::human(settings.soak)),
        );
        if settings.blue_green {
            self.complete_batch(i);
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
        }
        Next::Advance
    }

    pub(crate) fn complete_batch(&mut self, i: usize) {
        let label = self.batch_label(i);
        let now = self.now_time();
        let b = &mut self.status.batches[i];
        b.phase = BatchPhase::Completed;
        b.completed_at = Some(now);
        // Only the batch in flight is checked against its displaced workloads; the list is
        // bounded per batch, not per plan.
        b.displaced.clear();
        let nodes = b.old_nodes.join(", ");
        self.event(
            EventType::Normal,
            reasons::BATCH_COMPLETED,
            format!("{label} passed: {nodes} replaced"),
        );
    }

    pub(crate) fn removing(&mut self, settings: &Settings, i: usize) -> Next {
        let label = self.batch_label(i);
        let old = self.status.batches[i].old_nodes.clone();
        if self.remove_old(settings, &old) {
            self.complete_batch(i);
            return Next::Advance;
        }
        self.say(
            reasons::REMOVING_OLD_NODES,
            format!("{label}: removing old nodes {}", old.join(", ")),
        );
        Next::Wait
    }
}
