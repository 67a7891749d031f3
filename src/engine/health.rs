//! The health gate: the verdict on the workloads a plan touched.
//!
//! It watches every pod on the plan's new nodes, the new nodes themselves and the workloads each
//! drain displaced. Workloads that were already unhealthy when a batch began are excluded (and
//! listed), so a pre-existing outage neither trips the gate nor hides a new failure beside it.

use super::observed::{Observed, PodPhase, PodView};
use super::selector;
use super::settings::Settings;
use super::slots;
use crate::api::{BatchPhase, BatchStatus, HealthSpec, UnhealthyPod, Verdict, WorkloadRef};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeSet;

/// Entries kept in bounded status lists.
pub const MAX_LISTED: usize = 20;

/// The gate's full answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub verdict: Verdict,
    /// Pods counted.
    pub tracked: u32,
    /// Unhealthy pods tolerated.
    pub tolerated: u32,
    /// Unhealthy pods (all of them; status lists a bounded prefix).
    pub unhealthy_pods: Vec<UnhealthyPod>,
    /// Failed new nodes and unrecovered workloads: any one fails the gate.
    pub failures: Vec<UnhealthyPod>,
    /// What a Pending verdict waits for.
    pub waiting_for: Vec<String>,
    /// New nodes whose pods are not observed yet (a restarted controller's watches catching up).
    /// Not seeing is not a sign of ill health: the soak clock keeps running through it.
    pub unobserved: Vec<String>,
    /// The earliest moment a pending pod or node times out.
    pub next_deadline: Option<Timestamp>,
}

impl Gate {
    /// Pending only because some pods are not observed yet: nothing seen is unhealthy or starting.
    pub fn only_unobserved(&self) -> bool {
        self.verdict == Verdict::Pending
            && !self.unobserved.is_empty()
            && self.waiting_for.len() == self.unobserved.len()
    }

    /// A short sentence naming the first reasons, for conditions and Events.
    pub fn describe(&self) -> String {
        let all: Vec<&UnhealthyPod> = self.failures.iter().chain(&self.unhealthy_pods).collect();
        if all.is_empty() {
            return match self.verdict {
                Verdict::Healthy => format!("{} tracked pods healthy", self.tracked),
                _ => format!(
                    "waiting for {}",
                    self.waiting_for
                        .first()
                        .map_or("observations", String::as_str)
                ),
            };
        }
        let shown: Vec<String> = all.iter().take(3).map(|u| describe_one(u)).collect();
        let more = all.len().saturating_sub(3);
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        format!(
            "{} unhealthy, {} tolerated: {}{tail}",
            self.unhealthy_pods.len() + self.failures.len(),
            self.tolerated,
            shown.join("; ")
        )
    }
}

fn describe_one(u: &UnhealthyPod) -> String {
    if u.pod.is_empty() {
        u.reason.clone()
    } else {
        format!("pod {}/{} on {}: {}", u.namespace, u.pod, u.node, u.reason)
    }
}

/// Whether the health selectors pick `pod`.
pub(crate) fn counts(pod: &PodView, observed: &Observed, spec: &HealthSpec) -> bool {
    let ns_labels = observed
        .namespaces
        .get(&pod.namespace)
        .cloned()
        .unwrap_or_default();
    selector::matches_opt(spec.namespace_selector.as_ref(), &ns_labels)
        && selector::matches_opt(spec.pod_selector.as_ref(), &pod.labels)
}

/// `t` plus `d`, saturating at the end of time.
pub(crate) fn add(t: Timestamp, d: std::time::Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Workloads unhealthy right now (ready below desired), in the namespaces the gate watches.
pub fn unhealthy_workloads(observed: &Observed, spec: &HealthSpec) -> Vec<WorkloadRef> {
    let mut v: Vec<WorkloadRef> = observed
        .workloads
        .iter()
        .filter(|w| w.ready < w.desired)
        .filter(|w| {
            let ns = observed
                .namespaces
                .get(&w.workload.namespace)
                .cloned()
                .unwrap_or_default();
            selector::matches_opt(spec.namespace_selector.as_ref(), &ns)
        })
        .map(|w| w.workload.clone())
        .collect();
    v.sort();
    v
}

/// Evaluate the gate over `batches` (those not rolled back).
pub fn evaluate(
    settings: &Settings,
    spec: &HealthSpec,
    observed: &Observed,
    batches: &[BatchStatus],
    now: Timestamp,
) -> Gate {
    let live: Vec<&BatchStatus> = batches
        .iter()
        .filter(|b| b.phase != BatchPhase::RolledBack)
        .collect();
    let excluded: BTreeSet<&WorkloadRef> =
        live.iter().flat_map(|b| &b.preexisting_unhealthy).collect();
    let mut gate = Gate {
        verdict: Verdict::Pending,
        tracked: 0,
        tolerated: 0,
        unhealthy_pods: vec![],
        failures: vec![],
        waiting_for: vec![],
        unobserved: vec![],
        next_deadline: None,
    };
    let deadline = |t: Timestamp, gate: &mut Gate| {
        gate.next_deadline = Some(gate.next_deadline.map_or(t, |d| d.min(t)));
    };

    for batch in &live {
        for slot in &batch.new_nodes {
            let node = slots::node(observed, batch, slot);
            let name = &slots::node_name(observed, batch, slot)
                .unwrap_or(slot)
                .to_string();
            if let Some(reason) = slots::failure(observed, slot) {
                gate.failures.push(UnhealthyPod {
                    namespace: String::new(),
                    pod: String::new(),
                    node: name.clone(),
                    reason: format!("the provider could not make new node {name}: {reason}"),
                    since: batch.provisioned_at.clone(),
                });
                continue;
            }
            match (node, &batch.ready_at, &batch.provisioned_at) {
                (Some(n), Some(_), _) if !n.is_ready() => gate.failures.push(UnhealthyPod {
                    namespace: String::new(),
                    pod: String::new(),
                    node: name.clone(),
                    reason: format!(
                        "new node {name} went {:?} after it had been Ready",
                        n.readiness
                    ),
                    since: n.readiness_since.map(Time),
                }),
                (None, Some(_), _) => gate.failures.push(UnhealthyPod {
                    namespace: String::new(),
                    pod: String::new(),
                    node: name.clone(),
                    reason: format!("new node {name} disappeared after it had been Ready"),
                    since: None,
                }),
                (n, None, Some(requested)) if !n.is_some_and(|n| n.is_ready()) => {
                    let due = add(requested.0, settings.node_ready_timeout);
                    if now >= due {
                        let what = if n.is_some() {
                            "not Ready"
                        } else {
                            "not created"
                        };
                        gate.failures.push(UnhealthyPod {
                            namespace: String::new(),
                            pod: String::new(),
                            node: name.clone(),
                            reason: format!(
                                "new node {name} {what} {} after it was requested (health.nodeReadyTimeout)",
                                human(settings.node_ready_timeout)
                            ),
                            since: Some(requested.clone()),
                        });
                    } else {
                        gate.waiting_for
                            .push(format!("new node {name} to become Ready"));
                        deadline(due, &mut gate);
                    }
                }
                _ => {}
            }
            if node.is_none() {
                continue;
            }
            if !observed.pods_observed_on.contains(name) {
                gate.waiting_for
                    .push(format!("the pods on {name} to be observed"));
                gate.unobserved.push(name.clone());
                continue;
            }
            let mut pods: Vec<&PodView> = observed.pods_on(name).collect();
            pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            for pod in pods {
                if pod.deleting_since.is_some()
                    || pod.phase == PodPhase::Succeeded
                    || !counts(pod, observed, spec)
                {
                    continue;
                }
                if pod
                    .controller
                    .as_ref()
                    .is_some_and(|c| excluded.contains(c))
                {
                    continue;
                }
                gate.tracked += 1;
                let problem = pod
                    .problem
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default();
                let unhealthy = |reason: String| UnhealthyPod {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    node: name.clone(),
                    reason,
                    since: pod.started_at.map(Time),
                };
                if pod.phase == PodPhase::Failed {
                    gate.unhealthy_pods
                        .push(unhealthy(format!("failed{problem}")));
                } else if pod.restarts > settings.max_restarts {
                    gate.unhealthy_pods.push(unhealthy(format!(
                        "restarted {} times since it landed (health.maxRestarts {}){problem}",
                        pod.restarts, settings.max_restarts
                    )));
                } else if !pod.ready {
                    let due = add(pod.started_at.unwrap_or(now), settings.ready_timeout);
                    if now >= due {
                        gate.unhealthy_pods.push(unhealthy(format!(
                            "not Ready {} after it started (health.readyTimeout){problem}",
                            human(settings.ready_timeout)
                        )));
                    } else {
                        gate.waiting_for
                            .push(format!("pod {} to become Ready", pod.key()));
                        deadline(due, &mut gate);
                    }
                }
            }
        }
        // Displaced workloads must be back to their pre-drain ready count once the drain is over.
        if batch.phase == BatchPhase::Soaking {
            let drained_at = batch.drain_completed_at.as_ref().map_or(now, |t| t.0);
            let due = add(drained_at, settings.ready_timeout);
            for d in &batch.displaced {
                if excluded.contains(&d.workload) {
                    continue;
                }
                let Some(w) = observed.workload(&d.workload) else {
                    continue;
                };
                let want = d.ready_before.min(w.desired);
                if w.ready >= want {
                    continue;
                }
                if now >= due {
                    gate.failures.push(UnhealthyPod {
                        namespace: d.workload.namespace.clone(),
                        pod: String::new(),
                        node: String::new(),
                        reason: format!(
                            "{} has {} ready pods {} after the drain; it had {} before (health.readyTimeout)",
                            d.workload,
                            w.ready,
                            human(settings.ready_timeout),
                            d.ready_before
                        ),
                        since: batch.drain_completed_at.clone(),
                    });
                } else {
                    gate.waiting_for.push(format!(
                        "{} to be back to {want} ready (has {})",
                        d.workload, w.ready
                    ));
                    deadline(due, &mut gate);
                }
            }
        }
    }

    gate.tolerated = settings.tolerated_unhealthy(gate.tracked);
    gate.verdict = if !gate.failures.is_empty() || gate.unhealthy_pods.len() as u32 > gate.tolerated
    {
        Verdict::Unhealthy
    } else if gate.waiting_for.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Pending
    };
    gate
}

/// A duration the way people write it (`5m`, `90s`, `1h30m`).
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}
