//! Time passing in the model: the kubelet, the node lifecycle controller, the workload
//! controllers and the scheduler.

use super::readiness::Report;
use super::{Fault, Outage, Sim, Workload};
use crate::engine::observed::{NodeReadiness, PodPhase, PodView};
use crate::engine::tests::image;
use crate::engine::tests::{at, pod};
use std::collections::BTreeSet;

impl Sim {
    /// Let `secs` seconds pass: nodes and pods become Ready, terminating pods go, controllers
    /// replace missing pods, the scheduler places them.
    pub fn tick(&mut self, secs: i64) {
        self.now = at(self.now, secs);
        self.kubelet();
        self.controllers();
        self.kubelet();
        self.check_state();
    }

    pub(super) fn kubelet(&mut self) {
        let target = self.target();
        let now = self.now;
        for n in &mut self.nodes {
            let born = self.created.get(&n.name).copied().unwrap_or(now);
            let faulty = self.fault == Fault::NodeNeverReady && image(n) == Some(target.as_str());
            if n.readiness == NodeReadiness::Unknown && !faulty && now >= at(born, 20) {
                n.readiness = NodeReadiness::Ready;
                n.readiness_since = Some(now);
            }
        }
        // The node lifecycle controller evicts pods from nodes NotReady for a minute (taint-based
        // eviction); their kubelet never confirms, so they stay terminating until the node goes.
        let unreachable: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|n| {
                n.readiness == NodeReadiness::NotReady
                    && n.readiness_since.is_some_and(|t| now >= at(t, 60))
            })
            .map(|n| n.name.clone())
            .collect();
        for p in &mut self.pods {
            if unreachable.contains(&p.node) && p.deleting_since.is_none() {
                p.deleting_since = Some(now);
            }
        }
        self.pods.retain(|p| {
            unreachable.contains(&p.node) || p.deleting_since.is_none_or(|d| now < at(d, 5))
        });
        for p in &mut self.pods {
            let Some(n) = self.nodes.iter().find(|n| n.name == p.node) else {
                continue;
            };
            if p.phase == PodPhase::Pending && n.is_ready() {
                p.phase = PodPhase::Running;
                p.started_at = Some(now);
                p.ready_since = Some(now);
            }
        }
        let reports: Vec<Option<Report>> = self
            .pods
            .iter()
            .map(|p| {
                let n = self.nodes.iter().find(|n| n.name == p.node)?;
                (p.phase == PodPhase::Running && p.deleting_since.is_none())
                    .then(|| self.report(p, n))
            })
            .collect();
        for (p, r) in self.pods.iter_mut().zip(reports) {
            if let Some(r) = r {
                p.ready = r.ready;
                p.ready_since = Some(r.since);
                p.restarts = r.restarts;
                p.problem = r.problem;
            }
        }
    }

    pub(super) fn controllers(&mut self) {
        for w in self.workloads.clone() {
            let owned =
                |p: &PodView| p.labels.get("app") == Some(&w.name) && p.deleting_since.is_none();
            if w.daemon {
                let nodes: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| !n.is_control_plane())
                    .map(|n| n.name.clone())
                    .collect();
                for n in nodes {
                    if !self.pods.iter().any(|p| owned(p) && p.node == n) {
                        let p = self.new_pod(&w, &n);
                        self.pods.push(p);
                    }
                }
                continue;
            }
            let live = self.pods.iter().filter(|p| owned(p)).count() as i32;
            for _ in live..w.replicas {
                let p = self.new_pod(&w, "");
                self.pods.push(p);
            }
        }
        // The scheduler: unscheduled pods go to the schedulable Ready node with the fewest pods.
        for i in 0..self.pods.len() {
            if !self.pods[i].node.is_empty() {
                continue;
            }
            let best = self
                .nodes
                .iter()
                .filter(|n| !n.unschedulable && n.is_ready() && !n.is_control_plane())
                .min_by_key(|n| {
                    (
                        self.pods.iter().filter(|p| p.node == n.name).count(),
                        n.name.clone(),
                    )
                })
                .map(|n| n.name.clone());
            if let Some(b) = best {
                self.pods[i].node = b;
            }
        }
    }

    pub(super) fn new_pod(&mut self, w: &Workload, node: &str) -> PodView {
        self.next_uid += 1;
        let mut p = pod(
            &format!("{}-{}", w.name, self.next_uid),
            node,
            &w.name,
            self.now,
        );
        p.controller = Some(self.wref(w));
        p.phase = PodPhase::Pending;
        p.ready = false;
        p.started_at = None;
        if let Outage::Pods(n) = w.outage {
            // The outage keeps `n` pods down: a replacement takes the place of one of them.
            let down = self
                .pods
                .iter()
                .filter(|q| q.deleting_since.is_none() && self.outage_pods.contains(&q.uid))
                .filter(|q| q.labels.get("app") == Some(&w.name))
                .count() as i32;
            if down < n {
                self.outage_pods.insert(p.uid.clone());
            }
        }
        p
    }
}
