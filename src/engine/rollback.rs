//! Rolling back, capacity first: uncordon the old nodes molt cordoned, then cordon, drain and
//! remove the new nodes. With `blueGreen: false`, batches that already passed stay on the new image.

use super::action::{Action, EventType};
use super::settings::Settings;
use super::{RETRY, Step, slots};
use crate::api::condition::reasons;
use crate::api::{BatchPhase, Phase};
use std::collections::{BTreeMap, BTreeSet};

impl Step<'_> {
    /// Batches the rollback undoes.
    fn rolled_back_batches(&self, settings: &Settings) -> Vec<usize> {
        self.status
            .batches
            .iter()
            .enumerate()
            .filter(|(_, b)| match b.phase {
                BatchPhase::RolledBack => false,
                // Its old nodes are (being) removed: nothing to go back to.
                BatchPhase::RemovingOldNodes => false,
                BatchPhase::Completed => settings.blue_green,
                BatchPhase::Provisioning | BatchPhase::Draining | BatchPhase::Soaking => true,
            })
            .map(|(i, _)| i)
            .collect()
    }

    pub(crate) fn rollback(&mut self, settings: &Settings) {
        self.set_phase(Phase::RollingBack);
        let me = self.name();
        let undo = self.rolled_back_batches(settings);
        // The new nodes that exist, by name, with their slots; and slots the provider is still
        // making a node for (nothing to drain, but something to release).
        let mut slot_of: BTreeMap<String, String> = BTreeMap::new();
        let mut unfilled: Vec<String> = vec![];
        for i in &undo {
            let b = &self.status.batches[*i];
            for slot in &b.new_nodes {
                match slots::node(self.observed, b, slot) {
                    Some(n) => {
                        slot_of.insert(n.name.clone(), slot.clone());
                    }
                    None if slots::requested(self.observed, slot) => unfilled.push(slot.clone()),
                    None => {}
                }
            }
        }
        let new_nodes: BTreeSet<String> = slot_of.keys().cloned().collect();
        let kept: Vec<u32> = self
            .status
            .batches
            .iter()
            .filter(|b| {
                matches!(
                    b.phase,
                    BatchPhase::Completed | BatchPhase::RemovingOldNodes
                ) && !settings.blue_green
            })
            .map(|b| b.index + 1)
            .collect();

        // 1. Capacity first: every old node this plan cordoned goes back into service.
        let mut uncordoned = 0;
        for n in &self.observed.nodes {
            if n.cordoned_by() == Some(me.as_str())
                && !new_nodes.contains(&n.name)
                && !n.is_control_plane()
            {
                self.actions.push(Action::Uncordon {
                    node: n.name.clone(),
                });
                uncordoned += 1;
            }
        }

        // 2. Cordon, drain and remove the new nodes.
        let existing: Vec<String> = new_nodes.iter().cloned().collect();
        let act = !settings.paused;
        let pods_left = self.evacuate(settings, &existing, act, |name| Action::RemoveSlot {
            slot: slot_of
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string()),
            node: Some(name.to_string()),
        });
        if act {
            for slot in &unfilled {
                self.actions.push(Action::RemoveSlot {
                    slot: slot.clone(),
                    node: None,
                });
            }
        }

        let kept_note = if kept.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = kept.iter().map(u32::to_string).collect();
            format!(
                "; batches {} already passed and stay on the new image (blueGreen: false)",
                list.join(", ")
            )
        };
        if existing.is_empty() && unfilled.is_empty() && uncordoned == 0 {
            let now = self.now_time();
            for i in &undo {
                let b = &mut self.status.batches[*i];
                b.phase = BatchPhase::RolledBack;
                b.completed_at = Some(now.clone());
            }
            // A batch caught removing its old nodes passed its gate: it is kept, as a completed one.
            for b in &mut self.status.batches {
                if b.phase == BatchPhase::RemovingOldNodes {
                    b.phase = BatchPhase::Completed;
                    b.completed_at = Some(now.clone());
                }
            }
            self.set_phase(Phase::RolledBack);
            self.status.completed_at = Some(now);
            self.status.stopped_generation = Some(self.generation());
            let why = self.failure_message();
            self.event(
                EventType::Normal,
                reasons::ROLLED_BACK,
                format!("rolled back: old nodes back in service, new nodes removed{kept_note}"),
            );
            self.say(
                reasons::ROLLED_BACK,
                format!("rolled back after: {why}{kept_note}"),
            );
            self.release_claims();
            return;
        }
        self.requeue_within(RETRY);
        let paused = if act {
            ""
        } else {
            " (paused: no eviction or removal until unpaused)"
        };
        self.say(
            reasons::ROLLING_BACK,
            format!(
                "rolling back{paused}: {uncordoned} old nodes to uncordon, {} new nodes to remove ({pods_left} pods still on them){kept_note}",
                existing.len()
            ),
        );
    }
}
