//! What the model cluster shows the engine: the snapshot the shell's watches would build.

use super::{Sim, Workload};
use crate::api::WorkloadRef;
use crate::engine::observed::{NodeView, Observed, PdbView, WorkloadView};
use crate::engine::tests::kwok_on_target;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

impl Sim {
    /// Nodes whose pods the controller watches: those the plan's status names.
    pub(super) fn in_flight(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        if let Some(st) = &self.plan.status {
            for b in &st.batches {
                s.extend(b.old_nodes.iter().cloned());
                s.extend(b.new_nodes.iter().cloned());
                s.extend(b.slot_nodes.values().cloned());
            }
        }
        s
    }

    pub fn observe(&self) -> Observed {
        let observed_on: BTreeSet<String> = if self.observe_in_flight_only {
            self.in_flight()
                .into_iter()
                .filter(|n| self.node(n).is_some())
                .collect()
        } else {
            self.nodes.iter().map(|n| n.name.clone()).collect()
        };
        let pods = self
            .pods
            .iter()
            .filter(|p| observed_on.contains(&p.node))
            .cloned()
            .collect();
        let pdbs = self
            .pdbs
            .iter()
            .map(|p| {
                let healthy = self.healthy(&p.app);
                PdbView {
                    namespace: "default".into(),
                    name: p.name.clone(),
                    selector: Some(LabelSelector {
                        match_labels: Some([("app".to_string(), p.app.clone())].into()),
                        ..Default::default()
                    }),
                    disruptions_allowed: (healthy - p.min_available).max(0),
                    current_healthy: healthy,
                    desired_healthy: p.min_available,
                    up_to_date: true,
                    always_allow_unhealthy: false,
                }
            })
            .collect();
        let workloads = self
            .workloads
            .iter()
            .map(|w| WorkloadView {
                workload: self.wref(w),
                desired: self.desired(w),
                ready: self.healthy(&w.name),
            })
            .collect();
        // Which nodes run the target is the provider's answer, as the shell asks kwok for it.
        let target = self.target();
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeView {
                on_target: kwok_on_target(n, &target),
                ..n.clone()
            })
            .collect();
        Observed {
            nodes,
            pods,
            pods_observed_on: observed_on,
            pdbs,
            workloads,
            namespaces: [("default".to_string(), BTreeMap::new())].into(),
            other_plans: self
                .rival
                .iter()
                .map(|(r, _)| {
                    let name = r.metadata.name.clone().unwrap_or_default();
                    (name, crate::engine::claims::holds(r, &self.plan))
                })
                .collect(),
            eviction_feedback: self.feedback.clone(),
            slots: crate::engine::slots::from_labels(&self.nodes),
            measurements: vec![],
        }
    }

    pub(super) fn wref(&self, w: &Workload) -> WorkloadRef {
        WorkloadRef {
            kind: if w.daemon { "DaemonSet" } else { "ReplicaSet" }.into(),
            namespace: "default".into(),
            name: w.name.clone(),
        }
    }

    pub(super) fn desired(&self, w: &Workload) -> i32 {
        if w.daemon {
            self.nodes.iter().filter(|n| !n.is_control_plane()).count() as i32
        } else {
            w.replicas
        }
    }

    pub(super) fn healthy(&self, app: &str) -> i32 {
        self.pods
            .iter()
            .filter(|p| {
                p.labels.get("app").map(String::as_str) == Some(app)
                    && p.ready
                    && p.deleting_since.is_none()
            })
            .count() as i32
    }
}
