//! Rolling forward: start, batches (provision → cordon and drain → soak → advance), completion.

use super::action::{Action, EventType};
use super::health::{self, Gate, MAX_LISTED};
use super::settings::Settings;
use super::{RETRY, Step, drain, scope, slots};
use crate::api::condition::reasons;
use crate::api::{
    BatchPhase, BatchStatus, DisplacedWorkload, DrainTimeoutPolicy, Failure, FailurePolicy,
    HealthStatus, Phase, Verdict,
};
use std::collections::BTreeSet;

/// Why the plan stops going forward, and how.
pub(crate) enum Stop {
    Halt,
    Rollback,
}

impl From<FailurePolicy> for Stop {
    fn from(p: FailurePolicy) -> Self {
        match p {
            FailurePolicy::Halt => Stop::Halt,
            FailurePolicy::Rollback => Stop::Rollback,
        }
    }
}

impl From<DrainTimeoutPolicy> for Stop {
    fn from(p: DrainTimeoutPolicy) -> Self {
        match p {
            DrainTimeoutPolicy::Halt => Stop::Halt,
            DrainTimeoutPolicy::Rollback => Stop::Rollback,
        }
    }
}

impl Step<'_> {
    /// Nodes claimed by another active plan, among `names`.
    fn claimed_elsewhere(&self, names: &[&str]) -> Vec<(String, String)> {
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
    fn claim(&mut self, names: &[String]) {
        let me = self.name();
        for name in names {
            if let Some(n) = self.observed.node(name)
                && n.claimed_by() != Some(me.as_str())
            {
                self.actions.push(Action::Claim { node: name.clone() });
            }
        }
    }

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
                self.blockers.push(crate::api::Blocker {
                    node: node.clone(),
                    pod: None,
                    reason: format!("node {node} belongs to plan {owner}, which is still active"),
                });
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
        let gate = self.evaluate_gate(settings);
        self.record_health(&gate);
        if gate.verdict == Verdict::Unhealthy && self.status.point_of_no_return_at.is_none() {
            let reason = if gate
                .failures
                .iter()
                .any(|f| f.pod.is_empty() && !f.node.is_empty())
            {
                reasons::NODE_FAILED
            } else {
                reasons::HEALTH_GATE_FAILED
            };
            return self.stop(
                settings,
                settings.on_failure.into(),
                reason,
                gate.describe(),
            );
        }
        if let Some(at) = gate.next_deadline {
            self.requeue_at(at);
        }
        // A claim lost between the status write and its action (a crash) is made again, so the
        // pool stays this plan's for as long as the plan runs.
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
        match self
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
        }
        if settings.paused && self.phase() == Phase::Progressing {
            self.set_phase(Phase::Paused);
            self.message = format!("paused: {}", self.message);
        }
    }

    fn record_health(&mut self, gate: &Gate) {
        let mut unhealthy: Vec<_> = gate
            .failures
            .iter()
            .chain(&gate.unhealthy_pods)
            .cloned()
            .collect();
        let count = unhealthy.len() as u32;
        unhealthy.truncate(MAX_LISTED);
        let mut waiting = gate.waiting_for.clone();
        waiting.truncate(MAX_LISTED);
        self.status.health = Some(HealthStatus {
            verdict: gate.verdict,
            tracked_pods: gate.tracked,
            tolerated_unhealthy: gate.tolerated,
            unhealthy,
            unhealthy_count: count,
            waiting_for: waiting,
        });
    }

    /// Stop going forward: halt in place or roll back. Forward actions planned in this step are
    /// dropped, so nothing toward the target follows the decision.
    pub(crate) fn stop(
        &mut self,
        settings: &Settings,
        how: Stop,
        reason: &'static str,
        message: String,
    ) {
        self.actions
            .retain(|a| matches!(a, Action::Release { .. } | Action::Uncordon { .. }));
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
        match how {
            Stop::Halt => {
                self.set_phase(Phase::Halted);
                self.status.stopped_generation = Some(self.generation());
                self.event(
                    EventType::Warning,
                    reasons::HALTED,
                    "halted: nodes stay as they are; change the spec to resume, or delete the plan to uncordon",
                );
                self.say(reasons::HALTED, format!("halted: {message}"));
            }
            Stop::Rollback => {
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

    fn batch_label(&self, i: usize) -> String {
        format!(
            "batch {}/{}",
            i + 1,
            self.status.summary.batches.max(i as u32 + 1)
        )
    }

    /// Waiting for the batch's new nodes; Provision any that do not exist yet.
    fn provisioning(&mut self, settings: &Settings, i: usize) {
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
            .filter(|s| slots::node(self.observed, &batch, s).is_some_and(|n| n.is_ready()))
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
            return;
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
        self.start_drain(settings, i);
    }

    /// Provisioning → Draining: record the pre-drain ready counts, then cordon and evict.
    fn start_drain(&mut self, settings: &Settings, i: usize) {
        let label = self.batch_label(i);
        if settings.paused {
            self.say(
                reasons::PAUSED,
                format!("{label}: new nodes Ready; old nodes not cordoned while paused"),
            );
            return;
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
            return;
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
                self.blockers.push(crate::api::Blocker {
                    node: node.clone(),
                    pod: None,
                    reason: format!("node {node} belongs to plan {owner}, which is still active"),
                });
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
            return;
        }
        let mut displaced: BTreeSet<DisplacedWorkload> = BTreeSet::new();
        for node in &old {
            let view = self.observed.node(node);
            for pod in self.observed.pods_on(node) {
                if !matches!(
                    drain::classify(pod, view, settings),
                    drain::Disposition::Evict { .. }
                ) {
                    continue;
                }
                // Only workloads whose pods the gate watches (health selectors) gate the batch.
                if !health::counts(pod, self.observed, &self.plan.spec.health) {
                    continue;
                }
                if let Some(w) = pod
                    .controller
                    .as_ref()
                    .and_then(|c| self.observed.workload(c))
                {
                    displaced.insert(DisplacedWorkload {
                        workload: w.workload.clone(),
                        ready_before: w.ready,
                    });
                }
            }
        }
        let now = self.now_time();
        let batch = &mut self.status.batches[i];
        batch.displaced = displaced.into_iter().take(100).collect();
        batch.drain_started_at = Some(now);
        batch.phase = BatchPhase::Draining;
        self.event(
            EventType::Normal,
            reasons::DRAINING,
            format!("{label}: cordoning and draining {}", old.join(", ")),
        );
        self.draining(settings, i);
    }

    /// Cordon the batch's old nodes (idempotently) and evict the next slice of pods.
    fn draining(&mut self, settings: &Settings, i: usize) {
        let label = self.batch_label(i);
        let batch = self.status.batches[i].clone();
        if !settings.paused {
            for name in &batch.old_nodes {
                if let Some(n) = self.observed.node(name)
                    && !n.unschedulable
                    && !n.is_control_plane()
                {
                    self.actions.push(Action::Cordon { node: name.clone() });
                }
            }
        }
        let progress = drain::plan(&batch.old_nodes, self.observed, settings, !settings.paused);
        let was_blocked = !self.status.blockers.is_empty();
        self.actions.extend(progress.evictions.iter().cloned());
        self.blockers.extend(progress.blockers.iter().cloned());
        if progress.complete() {
            let now = self.now_time();
            let b = &mut self.status.batches[i];
            b.drain_completed_at = Some(now);
            b.phase = BatchPhase::Soaking;
            b.soak_started_at = None;
            self.event(
                EventType::Normal,
                reasons::DRAIN_COMPLETED,
                format!("{label}: {} drained", batch.old_nodes.join(", ")),
            );
            let gate = self.evaluate_gate(settings);
            self.record_health(&gate);
            return self.soaking(settings, i, &gate);
        }
        let started = batch.drain_started_at.as_ref().map_or(self.now, |t| t.0);
        let deadline = health::add(started, settings.drain_timeout);
        let blockers: Vec<String> = progress
            .blockers
            .iter()
            .take(3)
            .map(|b| b.reason.clone())
            .collect();
        // While paused molt itself holds the drain back, so the timeout does not run out; the
        // drain clock starts again when the pause ends.
        if self.now >= deadline && !settings.paused {
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
            return self.stop(
                settings,
                settings.on_timeout.into(),
                reasons::DRAIN_TIMEOUT,
                message,
            );
        }
        self.requeue_at(deadline);
        if !progress.blockers.is_empty()
            || progress.terminating > 0
            || !progress.evictions.is_empty()
        {
            self.requeue_within(RETRY);
        }
        if !was_blocked && !progress.blockers.is_empty() {
            let reason = if progress.blocked_by_pdb {
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
    }

    /// The gate must stay Healthy for `soak`, without a break.
    fn soaking(&mut self, settings: &Settings, i: usize, gate: &Gate) {
        let label = self.batch_label(i);
        if let Some(at) = gate.next_deadline {
            self.requeue_at(at);
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

    fn complete_batch(&mut self, i: usize) {
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
    fn remove_old(&mut self, settings: &Settings, nodes: &[String]) -> bool {
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

    fn removing(&mut self, settings: &Settings, i: usize) {
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

    /// Start the next batch, or finish the plan.
    fn next_batch(&mut self, settings: &Settings) {
        let me = self.name();
        let untaken: Vec<String> = scope::untaken(self.plan, self.observed, &self.status.batches)
            .into_iter()
            .filter(|n| {
                n.claimed_by().is_none_or(|c| {
                    c == me || !self.observed.other_plans.get(c).copied().unwrap_or(false)
                })
            })
            .map(|n| n.name.clone())
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
                    return;
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
            return;
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
    }

    fn start_batch(&mut self, settings: &Settings, untaken: Vec<String>) {
        let index = self.status.batches.len() as u32;
        if settings.paused {
            self.say(
                reasons::PAUSED,
                format!("{} nodes left; no new batch while paused", untaken.len()),
            );
            return;
        }
        let total = self.status.summary.nodes.max(1);
        let k = settings.size_of_batch(index, total) as usize;
        let old: Vec<String> = untaken.into_iter().take(k).collect();
        let new: Vec<String> = (0..old.len())
            .map(|slot| scope::slot_id(self.plan, self.status.attempt, index, slot))
            .collect();
        let mut preexisting = health::unhealthy_workloads(self.observed, &self.plan.spec.health);
        preexisting.truncate(100);
        self.claim(&old);
        self.status.batches.push(BatchStatus {
            index,
            phase: BatchPhase::Provisioning,
            old_nodes: old.clone(),
            new_nodes: new.clone(),
            provisioned_at: Some(self.now_time()),
            preexisting_unhealthy: preexisting.clone(),
            ..Default::default()
        });
        self.update_summary(settings);
        let label = self.batch_label(index as usize);
        let mut note = format!(
            "{label}: replacing {} with {}",
            old.join(", "),
            new.join(", ")
        );
        if !preexisting.is_empty() {
            let names: Vec<String> = preexisting.iter().take(5).map(|w| w.to_string()).collect();
            note.push_str(&format!(
                "; already unhealthy before the batch, excluded from the gate: {}",
                names.join(", ")
            ));
        }
        self.event(EventType::Normal, reasons::BATCH_STARTED, note);
        // The gate now covers the new batch (its nodes are pending).
        let gate = self.evaluate_gate(settings);
        self.record_health(&gate);
        self.provisioning(settings, index as usize);
    }

    /// The health gate over the batches recorded so far.
    pub(crate) fn evaluate_gate(&self, settings: &Settings) -> Gate {
        health::evaluate(
            settings,
            &self.plan.spec.health,
            self.observed,
            &self.status.batches,
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
