//! Drain planning with `kubectl drain`'s rules, through the Eviction API only.
//!
//! Per pod, in kubectl's order: mirror pods are skipped; finished pods are removed (the API server
//! does not consult PDBs for them); terminating pods are waited for (or skipped when their node is
//! unreachable, as Cluster API does); DaemonSet pods are skipped; emptyDir and controller-less pods
//! block the node unless the spec allows them. As in kubectl, a pod that blocks stops the whole
//! node's drain before anything on it is evicted. PDBs are checked here, from their status, so no
//! eviction is issued that a budget forbids; the API server remains the final judge.

use super::action::Action;
use super::observed::{EvictionOutcome, NodeView, Observed, PdbView, PodPhase, PodView};
use super::selector;
use super::settings::Settings;
use crate::api::{Blocker, BlockerKind, UnmanagedPodPolicy};
use std::collections::BTreeMap;

pub use super::limits::EVICTIONS_PER_PASS;

/// What the drain does with one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Left alone: it does not stop the drain (a mirror pod, a DaemonSet pod, a pod terminating
    /// on an unreachable node).
    Skip,
    /// Terminating: wait for it to go.
    Wait,
    /// To evict; `checks_pdb` is false for pods the API server evicts without consulting budgets.
    Evict { checks_pdb: bool },
    /// The drain rules refuse it: the node's drain stops here.
    Refuse(String),
}

/// Classify one pod with kubectl's filter order.
pub fn classify(pod: &PodView, node: Option<&NodeView>, rules: &Settings) -> Disposition {
    if pod.mirror {
        return Disposition::Skip;
    }
    if pod.deleting_since.is_some() {
        return match node {
            // Its kubelet cannot confirm the end: waiting would wait forever.
            Some(n) if !n.is_ready() => Disposition::Skip,
            _ => Disposition::Wait,
        };
    }
    if pod.is_finished() {
        return Disposition::Evict { checks_pdb: false };
    }
    if pod.is_daemonset() {
        return Disposition::Skip;
    }
    if pod.uses_empty_dir && !rules.delete_empty_dir_data {
        return Disposition::Refuse(
            "uses an emptyDir volume; set drain.deleteEmptyDirData: true to evict it (its emptyDir data is lost)".into(),
        );
    }
    if pod.controller.is_none() && rules.unmanaged_pods == UnmanagedPodPolicy::Block {
        return Disposition::Refuse(
            "has no controller, so nothing would recreate it; set drain.unmanagedPods: Evict to evict it anyway".into(),
        );
    }
    Disposition::Evict {
        checks_pdb: pod.phase != PodPhase::Pending,
    }
}

/// The state of a drain over a set of nodes, and the evictions to issue now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrainProgress {
    /// Evict actions for this pass (at most [`EVICTIONS_PER_PASS`]).
    pub evictions: Vec<Action>,
    /// What stops the drain, with reasons a person can act on.
    pub blockers: Vec<Blocker>,
    /// Pods that still have to leave (to evict, terminating or refused).
    pub remaining: usize,
    /// Terminating pods waited for.
    pub terminating: usize,
    /// Nodes whose pods have not been observed yet.
    pub unobserved: Vec<String>,
    /// Pods still to leave, per node (observed nodes only).
    pub remaining_on: BTreeMap<String, usize>,
}

impl DrainProgress {
    /// Every pod that had to leave is gone.
    pub fn complete(&self) -> bool {
        self.remaining == 0 && self.unobserved.is_empty()
    }

    /// Some PDB refuses an eviction.
    pub fn blocked_by_pdb(&self) -> bool {
        self.blockers.iter().any(|b| b.kind == BlockerKind::Pdb)
    }

    /// Nodes among those planned that exist, were observed and have nothing left to drain.
    pub fn drained_nodes(&self) -> impl Iterator<Item = &str> {
        self.remaining_on
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| k.as_str())
    }
}

/// Matching PDBs for a pod.
fn pdbs_for<'a>(pod: &PodView, pdbs: &'a [PdbView]) -> Vec<&'a PdbView> {
    pdbs.iter()
        .filter(|p| p.namespace == pod.namespace)
        .filter(|p| {
            p.selector
                .as_ref()
                .is_some_and(|s| selector::matches(s, &pod.labels))
        })
        .collect()
}

/// Plan the drain of `nodes` (in order). `evict` is false while paused or stopping: blockers and
/// progress are still reported, but no eviction is issued.
pub fn plan(nodes: &[String], observed: &Observed, rules: &Settings, evict: bool) -> DrainProgress {
    let mut progress = DrainProgress::default();
    // Disruptions each PDB still allows in this pass.
    let mut budget: BTreeMap<(String, String), i32> = observed
        .pdbs
        .iter()
        .map(|p| ((p.namespace.clone(), p.name.clone()), p.disruptions_allowed))
        .collect();
    for node_name in nodes {
        let node = observed.node(node_name);
        if node.is_none() {
            continue; // gone: nothing left to drain
        }
        if !observed.pods_observed_on.contains(node_name) {
            progress.unobserved.push(node_name.clone());
            continue;
        }
        let before = progress.remaining;
        let mut pods: Vec<&PodView> = observed.pods_on(node_name).collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let dispositions: Vec<(&PodView, Disposition)> = pods
            .into_iter()
            .map(|p| (p, classify(p, node, rules)))
            .collect();
        let node_refused = dispositions
            .iter()
            .any(|(_, d)| matches!(d, Disposition::Refuse(_)));
        for (pod, disposition) in dispositions {
            match disposition {
                Disposition::Skip => {}
                Disposition::Wait => {
                    progress.remaining += 1;
                    progress.terminating += 1;
                }
                Disposition::Refuse(reason) => {
                    progress.remaining += 1;
                    progress.blockers.push(Blocker {
                        node: node_name.clone(),
                        pod: Some(pod.key()),
                        reason: format!("pod {} {reason}", pod.key()),
                        kind: BlockerKind::DrainRule,
                    });
                }
                Disposition::Evict { checks_pdb } => {
                    progress.remaining += 1;
                    if node_refused {
                        continue; // kubectl: a refused pod stops the node's drain before any eviction
                    }
                    if checks_pdb {
                        let matching = pdbs_for(pod, &observed.pdbs);
                        let costs = match pdb_check(pod, &matching, &budget) {
                            Ok(costs) => costs,
                            Err(reason) => {
                                progress.blockers.push(Blocker {
                                    node: node_name.clone(),
                                    pod: Some(pod.key()),
                                    reason: format!("pod {}: {reason}", pod.key()),
                                    kind: BlockerKind::Pdb,
                                });
                                continue;
                            }
                        };
                        if progress.evictions.len() >= EVICTIONS_PER_PASS || !evict {
                            continue;
                        }
                        if costs {
                            for p in &matching {
                                if let Some(b) =
                                    budget.get_mut(&(p.namespace.clone(), p.name.clone()))
                                {
                                    *b -= 1;
                                }
                            }
                        }
                    } else if progress.evictions.len() >= EVICTIONS_PER_PASS || !evict {
                        continue;
                    }
                    if let Some(f) = observed.eviction_feedback.iter().find(|f| {
                        f.uid == pod.uid && f.namespace == pod.namespace && f.pod == pod.name
                    }) {
                        let (reason, kind) = match &f.outcome {
                            EvictionOutcome::Blocked(msg) => (
                                format!(
                                    "pod {}: the API server refused the eviction (a PDB blocks it): {msg}",
                                    pod.key()
                                ),
                                BlockerKind::Pdb,
                            ),
                            EvictionOutcome::Refused(msg) => (
                                format!(
                                    "pod {}: the API server refused the eviction: {msg}",
                                    pod.key()
                                ),
                                BlockerKind::EvictionRefused,
                            ),
                        };
                        progress.blockers.push(Blocker {
                            node: node_name.clone(),
                            pod: Some(pod.key()),
                            reason,
                            kind,
                        });
                    }
                    progress.evictions.push(Action::Evict {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        uid: pod.uid.clone(),
                        node: node_name.clone(),
                        grace_period_seconds: rules.grace_period_seconds,
                    });
                }
            }
        }
        progress
            .remaining_on
            .insert(node_name.clone(), progress.remaining - before);
    }
    progress
}

/// Whether the PDBs selecting a pod let it be evicted now: `Ok(costs)`, with whether the eviction
/// takes one of the budget's allowed disruptions, or `Err` with why not.
///
/// As the API server decides: a Ready pod needs a disruption the budget still allows; a pod that
/// is not Ready goes free under `unhealthyPodEvictionPolicy: AlwaysAllow`, or (the default
/// `IfHealthyBudget`) while the budget's healthy pods are at least its desired count and that count
/// is above zero; otherwise it too needs, and takes, an allowed disruption.
fn pdb_check(
    pod: &PodView,
    matching: &[&PdbView],
    budget: &BTreeMap<(String, String), i32>,
) -> Result<bool, String> {
    match matching {
        [] => Ok(false),
        [pdb] => {
            if !pdb.up_to_date {
                return Err(format!(
                    "PDB {} is still being processed by the disruption controller",
                    pdb.name
                ));
            }
            let left = budget
                .get(&(pdb.namespace.clone(), pdb.name.clone()))
                .copied()
                .unwrap_or(0);
            let spent = pdb.disruptions_allowed - left;
            // The API server's order: a pod that is not Ready goes free under AlwaysAllow, or
            // while the budget is met and asks for at least one healthy pod (IfHealthyBudget);
            // any other eviction needs, and takes, an allowed disruption.
            if !pod.ready
                && (pdb.always_allow_unhealthy
                    || (pdb.desired_healthy > 0
                        && pdb.current_healthy - spent >= pdb.desired_healthy))
            {
                return Ok(false);
            }
            if left > 0 {
                return Ok(true);
            }
            // A budget this very pass used up must not read as if it still allowed the eviction.
            let taken = if spent > 0 {
                format!(", taken by the {spent} evictions just issued")
            } else {
                String::new()
            };
            Err(format!(
                "PDB {} allows {} disruptions{taken} (needs {} healthy, has {})",
                pdb.name,
                pdb.disruptions_allowed.max(0),
                pdb.desired_healthy,
                pdb.current_healthy
            ))
        }
        many => Err(format!(
            "selected by {} PDBs ({}); the API server refuses to evict a pod that more than one PDB selects",
            many.len(),
            many.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
