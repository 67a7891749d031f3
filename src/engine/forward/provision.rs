//! A batch begins: its slots are recorded and filled; the plan's next batch, or its end.

use crate::api::condition::reasons;
use crate::api::{BatchPhase, BatchStatus, Phase};
use crate::engine::action::{Action, EventType};
use crate::engine::health;
use crate::engine::limits::{MAX_PREEXISTING, MAX_QUOTED};
use crate::engine::settings::Settings;
use crate::engine::{Step, scope, slots};

use super::Next;

impl Step<'_> {
    /// Waiting for the batch's new nodes; Provision any that do not exist yet.
    pub(crate) fn provisioning(&mut self, settings: &Settings, i: usize) -> Next {
        let batch = self.status.batches[i].clone();
        let attempt = self.status.attempt;
        let mut keep = vec![true; batch.old_nodes.len()];
        for (slot, (old, new)) in batch.old_nodes.iter().zip(&batch.new_nodes).enumerate() {
            if let Some(n) = slots::node(self.observed, &batch, new) {
                // A provider that cannot set molt's annotation on the node: claim it on sight.
                if n.claimed_by().is_none() {
                    self.actions.push(Action::Claim {
                        node: n.name.clone(),
                    });
                }
                continue;
            }
            if slots::requested(self.observed, new) {
                // Asked for and being made: the provider reports the node once there is one.
                continue;
            }
            match self.observed.node(old) {
                // The old node left the pool before its replacement was made: nothing to replace.
                None => keep[slot] = false,
                Some(_) if settings.paused => {}
                Some(o) => {
                    let id = scope::slot_id(self.plan, attempt, batch.index, slot);
                    let node = scope::replacement(self.plan, o, id, batch.index);
                    self.actions.push(Action::Provision(node));
                }
            }
        }
        if keep.iter().any(|k| !k) {
            let b = &mut self.status.batches[i];
            let pairs: Vec<(String, String)> = b
                .old_nodes
                .iter()
                .cloned()
                .zip(b.new_nodes.iter().cloned())
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(p, _)| p)
                .collect();
            b.old_nodes = pairs.iter().map(|p| p.0.clone()).collect();
            b.new_nodes = pairs.iter().map(|p| p.1.clone()).collect();
        }
        let batch = self.status.batches[i].clone();
        let ready = batch
            .new_nodes
            .iter()
            .filter(|s| slots::node(self.observed, &batch, s).is_some_and(|n| n.is_up()))
            .count();
        if ready < batch.new_nodes.len() {
            let label = self.batch_label(i);
            self.say(
                reasons::PROVISIONING,
                format!(
                    "{label}: {ready}/{} new nodes Ready ({})",
                    batch.new_nodes.len(),
                    batch.new_nodes.join(", ")
                ),
            );
            return Next::Wait;
        }
        if batch.ready_at.is_none() {
            self.status.batches[i].ready_at = Some(self.now_time());
            self.event(
                EventType::Normal,
                reasons::NODES_READY,
                format!(
                    "{}: new nodes {} are Ready",
                    self.batch_label(i),
                    slots::existing(self.observed, &batch).join(", ")
                ),
            );
        }
        self.start_drain(settings, i)
    }

    /// Start the next batch, or finish the plan.
    pub(crate) fn next_batch(&mut self, settings: &Settings) -> Next {
        let pool: Vec<&str> = scope::untaken(self.plan, self.observed, &self.status.batches)
            .into_iter()
            .map(|n| n.name.as_str())
            .collect();
        let elsewhere = self.claimed_elsewhere(&pool);
        let untaken: Vec<String> = pool
            .into_iter()
            .filter(|n| !elsewhere.iter().any(|(e, _)| e == n))
            .map(String::from)
            .collect();
        if !untaken.is_empty() {
            return self.start_batch(settings, untaken);
        }
        let leftover: Vec<String> = self
            .status
            .batches
            .iter()
            .filter(|b| b.phase == BatchPhase::Completed)
            .flat_map(|b| b.old_nodes.clone())
            .filter(|n| self.observed.node(n).is_some())
            .collect();
        if !leftover.is_empty() {
            if self.status.point_of_no_return_at.is_none() {
                if settings.paused {
                    self.say(
                        reasons::PAUSED,
                        "every batch passed; old nodes are kept while paused",
                    );
                    return Next::Wait;
                }
                self.status.point_of_no_return_at = Some(self.now_time());
                self.event(
                    EventType::Normal,
                    reasons::POINT_OF_NO_RETURN,
                    format!("every batch passed; removing the {} old nodes: rollback is no longer possible", leftover.len()),
                );
            }
            self.remove_old(settings, &leftover);
            self.say(
                reasons::POINT_OF_NO_RETURN,
                format!(
                    "every batch passed; removing old nodes {} (point of no return)",
                    leftover.join(", ")
                ),
            );
            return Next::Wait;
        }
        self.set_phase(Phase::Succeeded);
        self.status.completed_at = Some(self.now_time());
        let n: usize = self.status.batches.iter().map(|b| b.old_nodes.len()).sum();
        self.event(
            EventType::Normal,
            reasons::SUCCEEDED,
            format!(
                "all {n} nodes replaced by nodes running {}",
                self.plan.spec.target.image
            ),
        );
        self.say(
            reasons::SUCCEEDED,
            format!("all {n} nodes run {}", self.plan.spec.target.image),
        );
        self.release_claims();
        Next::Wait
    }

    /// A new batch: its old nodes and slots recorded, to be provisioned by the next stage.
    pub(crate) fn start_batch(&mut self, settings: &Settings, untaken: Vec<String>) -> Next {
        let index = self.status.batches.len() as u32;
        if settings.paused {
            self.say(
                reasons::PAUSED,
                format!("{} nodes left; no new batch while paused", untaken.len()),
            );
            return Next::Wait;
        }
        if self.outside_window(settings, &crate::engine::window::nodes_left(untaken.len())) {
            return Next::Wait;
        }
        let total = self.status.summary.nodes.max(1);
        let k = settings.size_of_batch(index, total) as usize;
        let old: Vec<String> = untaken.into_iter().take(k).collect();
        let new: Vec<String> = (0..old.len())
            .map(|slot| scope::slot_id(self.plan, self.status.attempt, index, slot))
            .collect();
        let outage_note = self.baseline(index);
        self.claim(&old);
        self.status.batches.push(BatchStatus {
            index,
            phase: BatchPhase::Provisioning,
            old_nodes: old.clone(),
            new_nodes: new.clone(),
            provisioned_at: Some(self.now_time()),
            ..Default::default()
        });
        self.update_summary(settings);
        let label = self.batch_label(index as usize);
        let note = format!(
            "{label}: replacing {} with {}",
            old.join(", "),
            new.join(", ")
        );
        self.event(EventType::Normal, reasons::BATCH_STARTED, note);
        if let Some(outage) = outage_note {
            self.event(EventType::Normal, reasons::PREEXISTING_OUTAGE, outage);
        }
        Next::Advance
    }

    /// The outages the gate excuses: taken when the first batch starts, before the plan touched
    /// anything; at each later batch only shrunk. Returns the note for the first batch's Event.
    fn baseline(&mut self, index: u32) -> Option<String> {
        if index > 0 {
            health::rebaseline(&mut self.status.preexisting, self.observed);
            return None;
        }
        let (outages, more) = health::outages(self.observed, &self.plan.spec.health);
        self.status.preexisting = outages;
        if self.status.preexisting.is_empty() {
            return None;
        }
        let names: Vec<String> = self
            .status
            .preexisting
            .iter()
            .take(MAX_QUOTED)
            .map(|o| format!("{} ({}/{} Ready)", o.workload, o.ready, o.desired))
            .collect();
        let shown = self.status.preexisting.len().min(MAX_QUOTED);
        let rest = self.status.preexisting.len() - shown + more;
        Some(format!(
            "already short of Ready pods before the plan: {}{}; up to that many of their pods may be unhealthy on new nodes, one more counts{}",
            names.join(", "),
            if rest > 0 {
                format!(" and {rest} more")
            } else {
                String::new()
            },
            if more > 0 {
                format!(" ({more} beyond the {MAX_PREEXISTING} recorded are not excused)")
            } else {
                String::new()
            }
        ))
    }
}
