//! Workloads: the outages that predate the plan, and the workloads each drain displaced.

use super::pods::Judgement;
use super::{Gate, Seen, WaitKind, add, counts, human};
use crate::api::{
    BatchPhase, BatchStatus, DisplacedWorkload, HealthSpec, PreexistingOutage, Subject,
    UnhealthyPod, WorkloadRef,
};
use crate::engine::drain;
use crate::engine::limits::MAX_PREEXISTING;
use crate::engine::observed::Observed;
use crate::engine::settings::Settings;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, BTreeSet};

/// Workloads short of Ready pods right now, in the namespaces the gate watches (at most
/// [`MAX_PREEXISTING`]; the second value says how many more there were).
pub fn outages(observed: &Observed, spec: &HealthSpec) -> (Vec<PreexistingOutage>, usize) {
    let mut v: Vec<PreexistingOutage> = observed
        .workloads
        .iter()
        .filter(|w| w.ready < w.desired)
        .filter(|w| {
            let ns = observed
                .namespaces
                .get(&w.workload.namespace)
                .cloned()
                .unwrap_or_default();
            crate::engine::selector::matches_opt(spec.namespace_selector.as_ref(), &ns)
        })
        .map(|w| PreexistingOutage {
            workload: w.workload.clone(),
            desired: w.desired,
            ready: w.ready,
        })
        .collect();
    v.sort_by(|a, b| a.workload.cmp(&b.workload));
    let more = v.len().saturating_sub(MAX_PREEXISTING);
    v.truncate(MAX_PREEXISTING);
    (v, more)
}

/// At a later batch's start: an outage that shrank by itself is excused only as far as it still
/// goes; one that grew is not excused more (what grew may be this plan's doing).
pub fn rebaseline(recorded: &mut Vec<PreexistingOutage>, observed: &Observed) {
    for o in recorded.iter_mut() {
        if let Some(w) = observed.workload(&o.workload)
            && (w.desired - w.ready).max(0) < o.missing()
        {
            (o.desired, o.ready) = (w.desired, w.ready);
        }
    }
    recorded.retain(|o| o.missing() > 0);
}

/// The workloads a drain of `nodes` displaces (those whose pods the gate watches), with their
/// ready count now.
pub fn displaced_by(
    nodes: &[String],
    observed: &Observed,
    settings: &Settings,
    spec: &HealthSpec,
) -> BTreeSet<DisplacedWorkload> {
    let mut displaced = BTreeSet::new();
    for node in nodes {
        let view = observed.node(node);
        for pod in observed.pods_on(node) {
            if !matches!(
                drain::classify(pod, view, settings),
                drain::Disposition::Evict { .. }
            ) || !counts(pod, observed, spec)
            {
                continue;
            }
            if let Some(w) = pod.controller.as_ref().and_then(|c| observed.workload(c)) {
                displaced.insert(DisplacedWorkload {
                    workload: w.workload.clone(),
                    ready_before: w.ready,
                    short_since: None,
                });
            }
        }
    }
    displaced
}

/// Record since when each displaced workload of a soaking batch has been below its pre-drain
/// count (cleared once it is back), so a dip is timed across restarts.
pub fn track_shortfalls(batch: &mut BatchStatus, observed: &Observed, now: Timestamp) {
    for d in &mut batch.displaced {
        let short = observed
            .workload(&d.workload)
            .is_some_and(|w| w.ready < d.ready_before.min(w.desired));
        match (short, &d.short_since) {
            (true, None) => d.short_since = Some(Time(now)),
            (false, Some(_)) => d.short_since = None,
            _ => {}
        }
    }
}

/// Excuse unhealthy pods of workloads that were short before the plan, up to what the outage
/// can account for: its missing pods, less those missing elsewhere than on the new nodes (they
/// may be the old broken ones, so they are assumed to be). Pods a batch in flight took away and
/// that are not back yet (the workload below its pre-drain count) are on their way, not old
/// broken ones left behind, for as long as the displaced-workload check gives them grace; past
/// it, they count as left behind again.
pub(super) fn excuse(
    seen: &mut [Seen],
    settings: &Settings,
    observed: &Observed,
    batches: &[&BatchStatus],
    preexisting: &[PreexistingOutage],
    now_at: Timestamp,
) {
    let mut by_workload: BTreeMap<&WorkloadRef, Vec<usize>> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        if let Some(w) = &s.pod.controller {
            by_workload.entry(w).or_default().push(i);
        }
    }
    for outage in preexisting {
        let Some(idx) = by_workload.get(&outage.workload) else {
            continue;
        };
        let Some(now) = observed.workload(&outage.workload) else {
            continue;
        };
        let missing_now = (now.desired - now.ready).max(0);
        let not_ready = idx.iter().filter(|&&i| !seen[i].pod.ready).count() as i32;
        let in_transit: i32 = batches
            .iter()
            .filter(|b| matches!(b.phase, BatchPhase::Draining | BatchPhase::Soaking))
            .flat_map(|b| b.displaced.iter().map(move |d| (*b, d)))
            .filter(|(b, d)| d.workload == outage.workload && in_grace(settings, b, d, now_at))
            .map(|(_, d)| (d.ready_before.min(now.desired) - now.ready).max(0))
            .sum();
        let elsewhere = (missing_now - not_ready - in_transit).max(0);
        let mut excusable = (outage.missing() - elsewhere).max(0);
        let mut unhealthy: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| matches!(seen[i].judgement, Judgement::Unhealthy { .. }))
            .collect();
        // Not-Ready pods are the likelier old broken ones.
        unhealthy.sort_by_key(|&i| seen[i].pod.ready);
        for i in unhealthy {
            if excusable == 0 {
                break;
            }
            seen[i].excused = true;
            excusable -= 1;
        }
    }
}

/// Whether a displaced workload below its pre-drain count still has grace, its missing pods on
/// their way: while its batch drains, `readyTimeout` from the dip (a pod taken away has that long
/// to be back); once it soaks, until `readyTimeout` after the drain and `notReadyTimeout` after the
/// dip began are both over.
fn in_grace(
    settings: &Settings,
    batch: &BatchStatus,
    d: &DisplacedWorkload,
    now: Timestamp,
) -> bool {
    let short_since = d.short_since.as_ref().map_or(now, |t| t.0);
    if batch.phase == BatchPhase::Draining {
        return now < add(short_since, settings.ready_timeout);
    }
    let drained = batch.drain_completed_at.as_ref().map_or(now, |t| t.0);
    now < add(drained, settings.ready_timeout) || now < add(short_since, settings.not_ready_timeout)
}

/// Displaced workloads of a soaking batch below their pre-drain count, beyond what their own
/// not-Ready pods on new nodes explain: their missing pods count against `maxUnhealthyPods`,
/// once `readyTimeout` after the drain and `notReadyTimeout` after the dip began are over.
pub(super) fn shortfalls(
    gate: &mut Gate,
    settings: &Settings,
    observed: &Observed,
    batch: &BatchStatus,
    seen: &[Seen],
    now: Timestamp,
) {
    let drained = batch.drain_completed_at.as_ref().map_or(now, |t| t.0);
    let start_due = add(drained, settings.ready_timeout);
    for d in &batch.displaced {
        let Some(w) = observed.workload(&d.workload) else {
            continue;
        };
        let want = d.ready_before.min(w.desired);
        let explained = seen
            .iter()
            .filter(|s| s.pod.controller.as_ref() == Some(&d.workload))
            .filter(|s| !s.pod.ready && !s.excused)
            .count() as i32;
        let missing = want - w.ready - explained;
        if w.ready >= want || missing <= 0 {
            continue;
        }
        let short_since = d.short_since.as_ref().map_or(now, |t| t.0);
        let lost_due = add(short_since, settings.not_ready_timeout);
        if !in_grace(settings, batch, d, now) {
            let reason = if lost_due > start_due {
                format!(
                    "{} has {} ready pods, below the {} it had before the drain, for {} without a break (health.notReadyTimeout)",
                    d.workload,
                    w.ready,
                    d.ready_before,
                    human(settings.not_ready_timeout)
                )
            } else {
                format!(
                    "{} has {} ready pods {} after the drain; it had {} before (health.readyTimeout)",
                    d.workload,
                    w.ready,
                    human(settings.ready_timeout),
                    d.ready_before
                )
            };
            gate.unhealthy.push(UnhealthyPod {
                subject: Subject::Workload,
                namespace: d.workload.namespace.clone(),
                pod: String::new(),
                node: String::new(),
                workload: Some(d.workload.clone()),
                missing: Some(missing as u32),
                reason,
                since: Some(Time(if lost_due > start_due {
                    short_since
                } else {
                    drained
                })),
            });
        } else {
            let kind = if now < start_due {
                WaitKind::Starting
            } else {
                WaitKind::Blip
            };
            gate.wait(
                kind,
                format!(
                    "{} to be back to {want} ready (has {})",
                    d.workload, w.ready
                ),
                Some(start_due.max(lost_due)),
            );
        }
    }
}
