//! Pending → Progressing: the pool, its claims, and the start of the plan.

use crate::api::Phase;
use crate::api::condition::reasons;
use crate::engine::action::EventType;
use crate::engine::settings::Settings;
use crate::engine::{RETRY, Step, scope};
use std::collections::BTreeSet;

impl Step<'_> {
    /// Pending → Progressing: find the pool, make sure no other plan holds it, claim it.
    pub(crate) fn start(&mut self, settings: &Settings) {
        let selected = scope::selected(self.plan, self.observed);
        if selected.is_empty() {
            self.set_phase(Phase::Pending);
            self.say(
                reasons::NO_MATCHING_NODES,
                "no node outside the control plane matches spec.nodeSelector; waiting for nodes to match",
            );
            return;
        }
        let old: Vec<String> = scope::old_nodes(self.plan, self.observed)
            .iter()
            .map(|n| n.name.clone())
            .collect();
        let names: Vec<&str> = old.iter().map(String::as_str).collect();
        let conflicts = self.claimed_elsewhere(&names);
        if !conflicts.is_empty() {
            self.set_phase(Phase::Pending);
            // Give way entirely: a claim kept here could stop the plan that holds the rest.
            self.release_claims();
            for (node, owner) in &conflicts {
                self.blockers
                    .push(crate::api::Blocker::other_plan(node, owner));
            }
            let owners: BTreeSet<&str> = conflicts.iter().map(|(_, o)| o.as_str()).collect();
            let owners: Vec<&str> = owners.into_iter().collect();
            self.say(
                reasons::CLAIMED_BY_ANOTHER_PLAN,
                format!(
                    "{} of the selected nodes belong to active plan(s) {}; waiting for them to finish",
                    conflicts.len(),
                    owners.join(", ")
                ),
            );
            return;
        }
        if old.is_empty() {
            self.set_phase(Phase::Succeeded);
            self.status.completed_at = Some(self.now_time());
            self.event(
                EventType::Normal,
                reasons::SUCCEEDED,
                format!(
                    "all {} selected nodes already run {}",
                    selected.len(),
                    self.plan.spec.target.image
                ),
            );
            self.say(
                reasons::SUCCEEDED,
                format!(
                    "all {} selected nodes already run the target image",
                    selected.len()
                ),
            );
            return;
        }
        if settings.paused {
            self.set_phase(Phase::Paused);
            self.release_claims();
            self.say(
                reasons::PAUSED,
                "paused before starting: no node has been touched",
            );
            return;
        }
        if self.outside_window(settings, "not started: ") {
            // Like a pause: nothing is held, not even claims, while the plan waits.
            self.set_phase(Phase::Pending);
            self.release_claims();
            return;
        }
        // Ownership first: nothing is provisioned or cordoned until every old node is seen to
        // carry this plan's claim (each claim is a compare-and-set, see `claims`).
        let me = self.name();
        let unowned = old
            .iter()
            .filter(|n| {
                self.observed
                    .node(n)
                    .is_some_and(|v| v.claimed_by() != Some(me.as_str()))
            })
            .count();
        if unowned > 0 {
            self.claim(&old);
            self.set_phase(Phase::Pending);
            self.requeue_within(RETRY);
            self.say(
                reasons::CLAIMING,
                format!(
                    "claiming the {} selected nodes before touching any: {unowned} not yet this plan's",
                    old.len()
                ),
            );
            return;
        }
        self.set_phase(Phase::Progressing);
        self.status.started_at = Some(self.now_time());
        self.status.target_image = Some(self.plan.spec.target.image.clone());
        self.status.summary.nodes = old.len() as u32;
        self.event(
            EventType::Normal,
            reasons::PLAN_STARTED,
            format!(
                "rolling {} to {} nodes in {} batches",
                self.plan.spec.target.image,
                old.len(),
                settings.batches_for(old.len() as u32)
            ),
        );
        self.claim(&old);
        self.forward(settings);
    }
}
