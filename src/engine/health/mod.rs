//! The health gate: the verdict on the workloads a plan touched.
//!
//! It judges the plan's new nodes ([`nodes`]), every pod on them ([`pods`]) and the workloads
//! each drain displaced ([`workloads`]); `docs/engine.md` has the table of signals, when each
//! counts and against which limit. Two rules run through all of them:
//! - **A failure is told from a blip by time.** Something new gets its start-up grace
//!   (`readyTimeout`, `nodeReadyTimeout`); something that was healthy and lost it counts only once
//!   it stays lost for `notReadyTimeout`. A blip keeps the verdict Pending, so the soak cannot
//!   pass during one, but it does not restart the soak.
//! - **An outage is baselined by count, not by exclusion.** A workload already short of Ready
//!   pods before the plan (`status.preexisting`) may have up to that many unhealthy pods on new
//!   nodes without counting; one more counts. Its shortfall never hides a new failure.
//!
//! Pods are counted once: a displaced workload's shortfall that its own unhealthy (or still
//! starting) pods on new nodes explain is those pods, and only the rest is the workload's.

mod nodes;
mod pods;
mod workloads;

pub use workloads::{displaced_by, outages, rebaseline, track_shortfalls};

use super::limits::MAX_QUOTED;
use super::observed::{Observed, PodPhase, PodView};
use super::selector;
use super::settings::Settings;
use crate::api::{
    BatchPhase, BatchStatus, HealthSpec, PreexistingOutage, Subject, UnhealthyPod, Verdict,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The gate's full answer.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Gate {
    pub verdict: Verdict,
    /// Pods on new nodes the health selectors pick.
    pub tracked: u32,
    /// Unhealthy pods not counted: their workload was already that short before the plan.
    pub excused: u32,
    /// What `maxUnhealthyPods` is resolved against: tracked pods less the excused, plus the
    /// displaced pods that did not come back.
    pub judged: u32,
    /// Unhealthy pods tolerated.
    pub tolerated: u32,
    /// Unhealthy pods and workloads missing pods: counted against `tolerated` (all of them;
    /// status lists a bounded prefix).
    pub unhealthy: Vec<UnhealthyPod>,
    /// Failed new nodes: any one fails the gate.
    pub failures: Vec<UnhealthyPod>,
    /// What a Pending verdict waits for.
    pub waits: Vec<Wait>,
    /// The earliest moment something waited for times out.
    pub next_deadline: Option<Timestamp>,
}

/// Something the gate waits for before it can say Healthy.
#[derive(Clone, Debug, PartialEq)]
pub struct Wait {
    /// In words: "pod default/web-1 to become Ready".
    pub what: String,
    pub kind: WaitKind,
}

/// Why the gate waits: for something new to start, or for something that was healthy to recover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// Within its start-up grace: the soak has not begun (or begins again).
    Starting,
    /// Was healthy, is not right now, for less than `notReadyTimeout`: the soak clock keeps
    /// running but cannot pass.
    Blip,
    /// The pods of a new node are not observed yet (a restarted controller's watches catching
    /// up). Not seeing is not a sign of ill health: like a blip.
    Unobserved,
}

impl Gate {
    fn wait(&mut self, kind: WaitKind, what: String, due: Option<Timestamp>) {
        self.waits.push(Wait { what, kind });
        if let Some(t) = due {
            self.next_deadline = Some(self.next_deadline.map_or(t, |d| d.min(t)));
        }
    }

    /// What the gate waits for, in words.
    pub fn waiting_for(&self) -> Vec<String> {
        self.waits.iter().map(|w| w.what.clone()).collect()
    }

    /// Pending only on blips and unobserved pods: nothing is starting or unhealthy. The soak
    /// clock, once started, keeps running through such a gap.
    pub fn only_interruptions(&self) -> bool {
        self.verdict == Verdict::Pending
            && !self.waits.is_empty()
            && self.waits.iter().all(|w| w.kind != WaitKind::Starting)
    }

    /// The interruptions the gate waits on, in words.
    pub fn interruptions(&self) -> Vec<&Wait> {
        self.waits
            .iter()
            .filter(|w| w.kind != WaitKind::Starting)
            .collect()
    }

    /// Unhealthy pods counted (a workload's missing pods each count), plus failed nodes.
    pub fn unhealthy_count(&self) -> u32 {
        self.failures.len() as u32 + self.unhealthy.iter().map(UnhealthyPod::pods).sum::<u32>()
    }

    /// A short sentence naming the first reasons, for conditions and Events.
    pub fn describe(&self) -> String {
        let all: Vec<&UnhealthyPod> = self.failures.iter().chain(&self.unhealthy).collect();
        if all.is_empty() {
            return match self.verdict {
                Verdict::Healthy => format!("{} tracked pods healthy", self.tracked),
                _ => format!(
                    "waiting for {}",
                    self.waits
                        .first()
                        .map_or("observations", |w| w.what.as_str())
                ),
            };
        }
        let shown: Vec<String> = all
            .iter()
            .take(MAX_QUOTED)
            .map(|u| describe_one(u))
            .collect();
        let more = all.len().saturating_sub(3);
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        let mut hit: Vec<String> = vec![];
        for w in all.iter().filter_map(|u| u.workload.as_ref()) {
            let w = w.to_string();
            if !hit.contains(&w) {
                hit.push(w);
            }
        }
        let hit = match hit.len() {
            0 => String::new(),
            n if n <= 5 => format!("; workloads hit: {}", hit.join(", ")),
            n => format!(
                "; workloads hit: {} and {} more",
                hit[..5].join(", "),
                n - 5
            ),
        };
        format!(
            "{} unhealthy, {} tolerated: {}{tail}{hit}",
            self.unhealthy_count(),
            self.tolerated,
            shown.join("; ")
        )
    }
}

fn describe_one(u: &UnhealthyPod) -> String {
    match u.subject {
        Subject::Pod => format!("pod {}/{} on {}: {}", u.namespace, u.pod, u.node, u.reason),
        Subject::Node | Subject::Workload => u.reason.clone(),
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

/// A tracked pod and what the gate made of it.
struct Seen<'a> {
    pod: &'a PodView,
    node: String,
    judgement: pods::Judgement,
    excused: bool,
}

/// Evaluate the gate over `batches` (those not rolled back), with the outages that predate the plan.
pub fn evaluate(
    settings: &Settings,
    spec: &HealthSpec,
    observed: &Observed,
    batches: &[BatchStatus],
    preexisting: &[PreexistingOutage],
    now: Timestamp,
) -> Gate {
    let live: Vec<&BatchStatus> = batches
        .iter()
        .filter(|b| b.phase != BatchPhase::RolledBack)
        .collect();
    let mut gate = Gate {
        verdict: Verdict::Pending,
        ..Default::default()
    };
    let mut seen: Vec<Seen> = vec![];
    for batch in &live {
        for slot in &batch.new_nodes {
            let Some(name) = nodes::judge(&mut gate, settings, observed, batch, slot, now) else {
                continue;
            };
            if !observed.pods_observed_on.contains(&name) {
                gate.wait(
                    WaitKind::Unobserved,
                    format!("the pods on {name} to be observed"),
                    None,
                );
                continue;
            }
            let mut on_node: Vec<&PodView> = observed
                .pods
                .iter()
                .filter(|p| p.node == name)
                .filter(|p| p.deleting_since.is_none() && p.phase != PodPhase::Succeeded)
                .filter(|p| counts(p, observed, spec))
                .collect();
            on_node.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            for pod in on_node {
                seen.push(Seen {
                    pod,
                    node: name.clone(),
                    judgement: pods::judge(pod, settings, now),
                    excused: false,
                });
            }
        }
    }
    gate.tracked = seen.len() as u32;
    workloads::excuse(&mut seen, settings, observed, &live, preexisting, now);
    for s in &seen {
        match &s.judgement {
            pods::Judgement::Healthy => {}
            pods::Judgement::Waiting { kind, what, due } => {
                gate.wait(*kind, what.clone(), Some(*due))
            }
            pods::Judgement::Unhealthy { .. } if s.excused => gate.excused += 1,
            pods::Judgement::Unhealthy { reason, since, .. } => gate.unhealthy.push(UnhealthyPod {
                subject: Subject::Pod,
                namespace: s.pod.namespace.clone(),
                pod: s.pod.name.clone(),
                node: s.node.clone(),
                workload: s.pod.controller.clone(),
                missing: None,
                reason: reason.clone(),
                since: since.map(Time),
            }),
        }
    }
    for batch in live.iter().filter(|b| b.phase == BatchPhase::Soaking) {
        workloads::shortfalls(&mut gate, settings, observed, batch, &seen, now);
    }
    let counted: u32 = gate.unhealthy.iter().map(UnhealthyPod::pods).sum();
    let missing: u32 = gate
        .unhealthy
        .iter()
        .filter(|u| u.subject == Subject::Workload)
        .map(UnhealthyPod::pods)
        .sum();
    gate.judged = gate.tracked - gate.excused + missing;
    gate.tolerated = settings.tolerated_unhealthy(gate.judged);
    gate.verdict = if !gate.failures.is_empty() || counted > gate.tolerated {
        Verdict::Unhealthy
    } else if gate.waits.is_empty() {
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
