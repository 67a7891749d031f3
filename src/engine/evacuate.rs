//! Evacuating nodes: cordon, drain (PodDisruptionBudgets respected) and remove. Old nodes go this
//! way once their batch has passed, new nodes on a rollback; one helper, so both keep the same
//! order (cordons, then evictions, then removals) and the same care.

use super::action::Action;
use super::settings::Settings;
use super::{RETRY, Step, drain};

impl Step<'_> {
    /// One pass over `nodes` (all of which exist): cordon those still schedulable, evict what the
    /// drain allows, and `remove` each node with nothing left to drain unless it is already going.
    /// With `act` false (paused) nothing is cordoned, evicted or removed, but the drain's blockers
    /// are still reported. Returns how many pods are still on the nodes.
    pub(crate) fn evacuate(
        &mut self,
        settings: &Settings,
        nodes: &[String],
        act: bool,
        remove: impl Fn(&str) -> Action,
    ) -> usize {
        if act {
            for name in nodes {
                if let Some(n) = self.observed.node(name)
                    && !n.unschedulable
                {
                    self.actions.push(Action::Cordon { node: name.clone() });
                }
            }
        }
        let progress = drain::plan(nodes, self.observed, settings, act);
        self.blockers.extend(progress.blockers.iter().cloned());
        self.actions.extend(progress.evictions.iter().cloned());
        if act {
            for name in progress.drained_nodes() {
                if self.observed.node(name).is_some_and(|n| !n.deleting) {
                    self.actions.push(remove(name));
                }
            }
        }
        progress.remaining
    }

    /// Remove old nodes once they are drained (they may have taken pods again if someone
    /// uncordoned them). Returns whether all of them are gone.
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
        self.evacuate(settings, &existing, true, |node| Action::RemoveNode {
            node: node.to_string(),
        });
        self.requeue_within(RETRY);
        false
    }
}
