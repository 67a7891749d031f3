//! Build the engine's snapshot from the caches.

use super::context::{Context, Stores};
use crate::api::{NodeUpdatePlan, NodeUpdatePlanStatus, Target};
use crate::engine::observed::{
    EvictionFeedback, NodeView, Observed, PdbView, PodView, SlotView, WorkloadView,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    let pods_on = |node: &str| ctx.pods.pods_on(node);
    let provider = Report {
        slots: |nodes: &[NodeView]| ctx.provisioner.slots(nodes),
        on_target: |node: &Node, target: &Target| ctx.provisioner.on_target(node, target),
    };
    match ctx.feedback.lock() {
        Ok(mut all) => observe(
            &ctx.stores,
            plan,
            pods_on,
            provider,
            all.entry(name).or_default(),
        ),
        // A poisoned memory of answers is only a missed hint: the engine reads PDB status.
        Err(_) => observe(&ctx.stores, plan, pods_on, provider, &mut vec![]),
    }
}

/// What the snapshot asks the provider: its slots
/// ([`Provider::slots`](crate::provision::Provider::slots)) and which nodes run the target
/// ([`Provider::on_target`](crate::provision::Provider::on_target)).
pub struct Report<S, T> {
    pub slots: S,
    pub on_target: T,
}

/// The snapshot from the caches, the pods of each node (`None` while its watch has not listed
/// them), the provider's report and the plan's remembered eviction answers, which are pruned
/// here to the pods that still exist: an answer about a pod that is gone says nothing about the
/// drain any more.
pub fn observe<S, T>(
    stores: &Stores,
    plan: &NodeUpdatePlan,
    pods_on: impl Fn(&str) -> Option<Vec<Arc<Pod>>>,
    provider: Report<S, T>,
    feedback: &mut Vec<EvictionFeedback>,
) -> Observed
where
    S: Fn(&[NodeView]) -> BTreeMap<String, SlotView>,
    T: Fn(&Node, &Target) -> bool,
{
    let name = plan.name_any();
    let mut pods = vec![];
    let mut observed_on = BTreeSet::new();
    for node in in_flight(plan.status.as_ref()) {
        if let Some(list) = pods_on(&node) {
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
    feedback.retain(|e| live.contains(e.uid.as_str()));
    let eviction_feedback = feedback.clone();
    let nodes: Vec<NodeView> = stores
        .nodes
        .state()
        .iter()
        .map(|n| NodeView {
            on_target: (provider.on_target)(n, &plan.spec.target),
            ..NodeView::from(n.as_ref())
        })
        .collect();
    // Only this plan's slots: the rest of the pool's provider state is none of its business.
    let wanted: BTreeSet<&String> = plan
        .status
        .iter()
        .flat_map(|s| &s.batches)
        .flat_map(|b| &b.new_nodes)
        .collect();
    let mut slots = (provider.slots)(&nodes);
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
        measurements: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BatchStatus, Phase};
    use crate::engine::observed::EvictionOutcome;
    use crate::engine::slots;
    use kube::Resource;
    use kube::runtime::reflector::{self, Store};
    use kube::runtime::watcher::Event;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    fn object<K: DeserializeOwned>(v: Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    /// A store as a reflector leaves it after these watcher events.
    fn store<K>(events: Vec<Event<K>>) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let (store, mut writer) = reflector::store();
        for e in &events {
            writer.apply_watcher_event(e);
        }
        store
    }

    fn applied<K: DeserializeOwned>(objects: Vec<Value>) -> Vec<Event<K>> {
        objects
            .into_iter()
            .map(|o| Event::Apply(object(o)))
            .collect()
    }

    fn node(name: &str, pool: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"pool": pool}}})
    }

    fn pod(name: &str, node: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running"}
        })
    }

    /// A plan called `name` in `phase`, whose batches name these old and new nodes.
    fn plan(name: &str, phase: Phase, batches: &[(&[&str], &[&str])]) -> NodeUpdatePlan {
        let mut p: NodeUpdatePlan = serde_yaml_ng::from_str(&format!(
            "apiVersion: molt.dev/v1alpha1\nkind: NodeUpdatePlan\nmetadata: {{name: {name}}}\n\
             spec:\n  nodeSelector: {{matchLabels: {{pool: workers}}}}\n  target: {{image: v2}}\n  provider: {{kwok: {{}}}}\n"
        ))
        .unwrap();
        p.status = Some(NodeUpdatePlanStatus {
            phase: Some(phase),
            batches: batches
                .iter()
                .enumerate()
                .map(|(i, (old, new))| BatchStatus {
                    index: i as u32,
                    old_nodes: old.iter().map(|s| s.to_string()).collect(),
                    new_nodes: new.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        p
    }

    type SlotsOf = fn(&[NodeView]) -> BTreeMap<String, SlotView>;
    type OnTarget = fn(&Node, &Target) -> bool;

    /// The provider's report as kwok gives it.
    fn kwok_report() -> Report<SlotsOf, OnTarget> {
        Report {
            slots: |n: &[NodeView]| slots::from_labels(n),
            on_target: crate::provision::kwok::runs,
        }
    }

    fn stores(
        plans: Vec<NodeUpdatePlan>,
        nodes: Vec<Event<k8s_openapi::api::core::v1::Node>>,
    ) -> Stores {
        Stores {
            plans: store(plans.into_iter().map(Event::Apply).collect()),
            nodes: store(nodes),
            pdbs: store(applied(vec![json!({
                "metadata": {"name": "web-pdb", "namespace": "shop", "generation": 1},
                "spec": {"selector": {"matchLabels": {"app": "web"}}},
                "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2,
                    "expectedPods": 3, "observedGeneration": 1}
            })])),
            replica_sets: store(applied(vec![json!({
                "metadata": {"name": "web-1", "namespace": "shop"},
                "spec": {"replicas": 3, "selector": {}},
                "status": {"replicas": 3, "readyReplicas": 2}
            })])),
            stateful_sets: store(applied(vec![json!({
                "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"replicas": 1, "selector": {}, "template": {}, "serviceName": "db"},
                "status": {"replicas": 1, "readyReplicas": 1}
            })])),
            daemon_sets: store(applied(vec![json!({
                "metadata": {"name": "agent", "namespace": "kube-system"},
                "spec": {"selector": {}, "template": {}},
                "status": {"desiredNumberScheduled": 4, "numberReady": 4,
                    "currentNumberScheduled": 4, "numberMisscheduled": 0}
            })])),
            namespaces: store(applied(vec![
                json!({"metadata": {"name": "shop", "labels": {"tier": "prod"}}}),
            ])),
        }
    }

    #[test]
    fn in_flight_names_the_old_and_the_new_nodes_of_every_batch() {
        let p = plan(
            "workers-v2",
            Phase::Progressing,
            &[(&["old-0"], &["new-0"]), (&["old-1", "old-0"], &["new-1"])],
        );
        let names: Vec<String> = in_flight(p.status.as_ref()).into_iter().collect();
        assert_eq!(names, ["new-0", "new-1", "old-0", "old-1"]);
        assert!(in_flight(None).is_empty());
    }

    #[test]
    fn pods_are_seen_only_on_nodes_a_batch_names_whose_watch_has_listed_them() {
        let me = plan(
            "workers-v2",
            Phase::Progressing,
            &[(&["old-0", "old-1"], &["new-0"])],
        );
        let on_old_0 = store::<Pod>(applied(vec![pod("web-0", "old-0")]));
        let elsewhere = store::<Pod>(applied(vec![pod("web-9", "other")]));
        let pods_on = |node: &str| match node {
            "old-0" => Some(on_old_0.state()),
            "new-0" => Some(vec![]),
            "other" => Some(elsewhere.state()),
            _ => None, // old-1: its watch is still listing
        };
        let seen = observe(
            &stores(vec![me.clone()], vec![]),
            &me,
            pods_on,
            kwok_report(),
            &mut vec![],
        );
        let names: Vec<&str> = seen.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web-0"]);
        let observed: Vec<&str> = seen.pods_observed_on.iter().map(String::as_str).collect();
        assert_eq!(
            observed,
            ["new-0", "old-0"],
            "a node still listing is not claimed as observed (it would look empty)"
        );
    }

    #[test]
    fn answers_about_pods_that_are_gone_are_forgotten() {
        let me = plan("workers-v2", Phase::Progressing, &[(&["old-0"], &[])]);
        let on_old_0 = store::<Pod>(applied(vec![pod("web-0", "old-0")]));
        let answer = |pod: &str| EvictionFeedback {
            namespace: "shop".into(),
            pod: pod.into(),
            uid: format!("uid-{pod}"),
            outcome: EvictionOutcome::Blocked("budget".into()),
        };
        let mut memory = vec![answer("web-0"), answer("web-gone")];
        let seen = observe(
            &stores(vec![me.clone()], vec![]),
            &me,
            |_| Some(on_old_0.state()),
            kwok_report(),
            &mut memory,
        );
        assert_eq!(seen.eviction_feedback, [answer("web-0")]);
        assert_eq!(
            memory,
            [answer("web-0")],
            "pruned in memory too, not only in the snapshot"
        );
    }

    #[test]
    fn the_snapshot_is_the_caches_as_the_watches_left_them() {
        let me = plan("workers-v2", Phase::Progressing, &[]);
        let others = vec![
            me.clone(),
            plan("workers-v3", Phase::Halted, &[]),
            plan("workers-v1", Phase::Succeeded, &[]),
        ];
        let nodes = vec![
            Event::Apply(object(node("old-0", "workers"))),
            Event::Apply(object(node("old-1", "workers"))),
            Event::Apply(object(node("old-2", "workers"))),
            // old-1 is deleted; old-0 is relabelled; then a relist finds only old-0 and old-3
            // (old-2 went while the watch was down).
            Event::Delete(object(node("old-1", "workers"))),
            Event::Apply(object(node("old-0", "db"))),
            Event::Init,
            Event::InitApply(object(node("old-0", "db"))),
            Event::InitApply(object(node("old-3", "workers"))),
            Event::InitDone,
        ];
        let seen = observe(
            &stores(others, nodes),
            &me,
            |_| None,
            kwok_report(),
            &mut vec![],
        );

        let mut nodes: Vec<(&str, &str)> = seen
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.labels["pool"].as_str()))
            .collect();
        nodes.sort();
        assert_eq!(nodes, [("old-0", "db"), ("old-3", "workers")]);

        let mut workloads: Vec<(String, i32, i32)> = seen
            .workloads
            .iter()
            .map(|w| {
                (
                    format!("{}/{}", w.workload.kind, w.workload.name),
                    w.desired,
                    w.ready,
                )
            })
            .collect();
        workloads.sort();
        assert_eq!(
            workloads,
            [
                ("DaemonSet/agent".to_string(), 4, 4),
                ("ReplicaSet/web-1".to_string(), 3, 2),
                ("StatefulSet/db".to_string(), 1, 1),
            ]
        );
        assert_eq!(seen.pdbs.len(), 1);
        assert_eq!(
            (seen.pdbs[0].name.as_str(), seen.pdbs[0].disruptions_allowed),
            ("web-pdb", 1)
        );
        assert_eq!(seen.namespaces["shop"]["tier"], "prod");
        assert_eq!(
            seen.other_plans,
            BTreeMap::from([
                ("workers-v1".to_string(), false),
                ("workers-v3".to_string(), true),
            ]),
            "the other plans and whether they own their nodes; never the plan itself"
        );
    }

    #[test]
    fn each_node_carries_the_providers_answer_for_this_plans_target() {
        let me = plan("workers-v2", Phase::Progressing, &[]);
        let marked = |name: &str, image: &str| {
            let mut n = node(name, "workers");
            n["metadata"]["annotations"] = json!({"molt.dev/image": image});
            Event::Apply(object(n))
        };
        let nodes = vec![
            marked("new-0", "v2"),
            marked("older-0", "v1"),
            Event::Apply(object(node("old-0", "workers"))),
        ];
        let runs: Vec<(String, bool)> = observe(
            &stores(vec![me.clone()], nodes.clone()),
            &me,
            |_| None,
            kwok_report(),
            &mut vec![],
        )
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.on_target))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
        assert_eq!(
            runs,
            [
                ("new-0".to_string(), true),
                ("old-0".to_string(), false),
                ("older-0".to_string(), false)
            ]
        );

        // Another provider's answer is taken as it is, whatever molt's marks say.
        let asked: std::cell::RefCell<Vec<String>> = Default::default();
        let seen = observe(
            &stores(vec![me.clone()], nodes),
            &me,
            |_| None,
            Report {
                slots: |n: &[NodeView]| slots::from_labels(n),
                on_target: |n: &Node, t: &Target| {
                    asked.borrow_mut().push(t.image.clone());
                    n.name_any() == "old-0"
                },
            },
            &mut vec![],
        );
        let on: Vec<&str> = seen
            .nodes
            .iter()
            .filter(|n| n.on_target)
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(on, ["old-0"]);
        assert_eq!(
            asked.into_inner(),
            ["v2", "v2", "v2"],
            "asked about the plan's target"
        );
    }
}
