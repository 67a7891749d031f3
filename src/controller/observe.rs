//! Build the engine's snapshot from the caches.

use super::context::Context;
use crate::api::{NodeUpdatePlan, NodeUpdatePlanStatus};
use crate::engine::observed::{NodeView, Observed, PdbView, PodView, WorkloadView};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// Nodes whose pods a plan needs: every node its batches name.
pub fn in_flight(status: Option<&NodeUpdatePlanStatus>) -> BTreeSet<String> {
    status
        .iter()
        .flat_map(|s| &s.batches)
        .flat_map(|b| {
            b.old_nodes
                .iter()
                .chain(&b.new_nodes)
                .chain(b.slot_nodes.values())
        })
        .cloned()
        .collect()
}

/// The cluster as the engine sees it for `plan`.
pub fn snapshot(ctx: &Context, plan: &NodeUpdatePlan) -> Observed {
    let name = plan.name_any();
    let stores = &ctx.stores;
    let mut pods = vec![];
    let mut observed_on = BTreeSet::new();
    for node in in_flight(plan.status.as_ref()) {
        if let Some(list) = ctx.pods.pods_on(&node) {
            pods.extend(list.iter().map(|p| PodView::from(p.as_ref())));
            observed_on.insert(node);
        }
    }
    let mut workloads: Vec<WorkloadView> = stores
        .replica_sets
        .state()
        .iter()
        .map(|r| WorkloadView::from(r.as_ref()))
        .collect();
    workloads.extend(
        stores
            .stateful_sets
            .state()
            .iter()
            .map(|s| WorkloadView::from(s.as_ref())),
    );
    workloads.extend(
        stores
            .daemon_sets
            .state()
            .iter()
            .map(|d| WorkloadView::from(d.as_ref())),
    );
    let other_plans: BTreeMap<String, bool> = stores
        .plans
        .state()
        .iter()
        .filter(|p| p.name_any() != name)
        .map(|p| (p.name_any(), crate::engine::claims::holds(p, plan)))
        .collect();
    let live: BTreeSet<&str> = pods.iter().map(|p: &PodView| p.uid.as_str()).collect();
    let eviction_feedback = ctx
        .feedback
        .lock()
        .map(|mut f| {
            let entry = f.entry(name.clone()).or_default();
            entry.retain(|e| live.contains(e.uid.as_str()));
            entry.clone()
        })
        .unwrap_or_default();
    let nodes: Vec<NodeView> = stores
        .nodes
        .state()
        .iter()
        .map(|n| NodeView::from(n.as_ref()))
        .collect();
    // Only this plan's slots: the rest of the pool's provider state is none of its business.
    let wanted: BTreeSet<&String> = plan
        .status
        .iter()
        .flat_map(|s| &s.batches)
        .flat_map(|b| &b.new_nodes)
        .collect();
    let mut slots = ctx.provisioner.slots(&nodes);
    slots.retain(|slot, _| wanted.contains(slot));
    Observed {
        nodes,
        slots,
        pods,
        pods_observed_on: observed_on,
        pdbs: stores
            .pdbs
            .state()
            .iter()
            .map(|p| PdbView::from(p.as_ref()))
            .collect(),
        workloads,
        namespaces: stores
            .namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect(),
        other_plans,
        eviction_feedback,
    }
}
