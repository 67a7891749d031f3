//! The views built from Kubernetes objects: pure conversions, so tests build views from real
//! objects as easily as by hand.

use super::*;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

fn labels(m: &Option<BTreeMap<String, String>>) -> Labels {
    m.clone().unwrap_or_default()
}

fn quantities(
    m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Labels {
    m.iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

impl From<&Node> for NodeView {
    fn from(n: &Node) -> Self {
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        let readiness = match ready.map(|c| c.status.as_str()) {
            Some("True") => NodeReadiness::Ready,
            Some("False") => NodeReadiness::NotReady,
            _ => NodeReadiness::Unknown,
        };
        let spec = n.spec.clone().unwrap_or_default();
        let status = n.status.clone().unwrap_or_default();
        NodeView {
            name: n.metadata.name.clone().unwrap_or_default(),
            labels: labels(&n.metadata.labels),
            annotations: labels(&n.metadata.annotations),
            unschedulable: spec.unschedulable.unwrap_or(false),
            readiness,
            readiness_since: ready
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0),
            taints: spec.taints.unwrap_or_default(),
            capacity: quantities(&status.capacity),
            allocatable: quantities(&status.allocatable),
            deleting: n.metadata.deletion_timestamp.is_some(),
            troubles: status
                .conditions
                .iter()
                .flatten()
                .filter(|c| keys::NODE_TROUBLES.contains(&c.type_.as_str()) && c.status == "True")
                .map(|c| {
                    (
                        c.type_.clone(),
                        c.last_transition_time.as_ref().map(|t| t.0),
                    )
                })
                .collect(),
            // Only the provider can say; the shell asks it.
            on_target: false,
        }
    }
}

impl From<&Pod> for PodView {
    fn from(p: &Pod) -> Self {
        let spec = p.spec.clone().unwrap_or_default();
        let status = p.status.clone().unwrap_or_default();
        let controller = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| WorkloadRef {
                kind: o.kind.clone(),
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: o.name.clone(),
            });
        let phase = match status.phase.as_deref() {
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some("Pending") | None => PodPhase::Pending,
            Some(_) => PodPhase::Unknown,
        };
        let ready_condition = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        let ready_since = ready_condition
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        let containers = status.container_statuses.clone().unwrap_or_default();
        let restarts = containers.iter().map(|c| c.restart_count).sum();
        let problem = status.reason.clone().or_else(|| {
            containers.iter().find_map(|c| {
                let state = c.state.as_ref();
                state
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
                    .or_else(|| {
                        state
                            .and_then(|s| s.terminated.as_ref())
                            .and_then(|t| t.reason.clone())
                    })
                    .or_else(|| {
                        c.last_state
                            .as_ref()
                            .and_then(|s| s.terminated.as_ref())
                            .and_then(|t| t.reason.clone())
                    })
            })
        });
        let annotations = labels(&p.metadata.annotations);
        PodView {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            node: spec.node_name.clone().unwrap_or_default(),
            labels: labels(&p.metadata.labels),
            controller,
            phase,
            ready,
            ready_since,
            restarts,
            started_at: status
                .start_time
                .map(|t| t.0)
                .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            deleting_since: p.metadata.deletion_timestamp.as_ref().map(|t| t.0),
            mirror: annotations.contains_key(keys::MIRROR_POD_ANNOTATION),
            uses_empty_dir: spec.volumes.iter().flatten().any(|v| v.empty_dir.is_some()),
            problem,
        }
    }
}

impl From<&PodDisruptionBudget> for PdbView {
    fn from(p: &PodDisruptionBudget) -> Self {
        let status = p.status.clone().unwrap_or_default();
        let generation = p.metadata.generation.unwrap_or(0);
        PdbView {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            selector: p.spec.as_ref().and_then(|s| s.selector.clone()),
            disruptions_allowed: status.disruptions_allowed,
            current_healthy: status.current_healthy,
            desired_healthy: status.desired_healthy,
            up_to_date: status.observed_generation.unwrap_or(0) >= generation,
            always_allow_unhealthy: p
                .spec
                .as_ref()
                .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref())
                == Some("AlwaysAllow"),
        }
    }
}

fn workload_ref(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> WorkloadRef {
    WorkloadRef {
        kind: kind.to_string(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

impl From<&ReplicaSet> for WorkloadView {
    fn from(r: &ReplicaSet) -> Self {
        WorkloadView {
            workload: workload_ref("ReplicaSet", &r.metadata),
            desired: r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: r
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
        }
    }
}

impl From<&StatefulSet> for WorkloadView {
    fn from(s: &StatefulSet) -> Self {
        WorkloadView {
            workload: workload_ref("StatefulSet", &s.metadata),
            desired: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: s
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
        }
    }
}

impl From<&DaemonSet> for WorkloadView {
    fn from(d: &DaemonSet) -> Self {
        let status = d.status.clone().unwrap_or_default();
        WorkloadView {
            workload: workload_ref("DaemonSet", &d.metadata),
            desired: status.desired_number_scheduled,
            ready: status.number_ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_view_reads_readiness_cordon_marks_and_capacity() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"pool": "workers", "molt.dev/image": "v2",
                "node-role.kubernetes.io/control-plane": ""},
                "annotations": {"molt.dev/cordoned-by": "p", "molt.dev/claimed-by": "p"}},
            "spec": {"unschedulable": true, "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "16Gi"}, "allocatable": {"cpu": "3900m"},
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-20T10:00:00Z"}]}
        }))
        .unwrap();
        let v = NodeView::from(&node);
        assert_eq!(v.name, "n1");
        assert!(v.unschedulable);
        assert_eq!(v.readiness, NodeReadiness::NotReady);
        assert_eq!(
            v.readiness_since,
            Some("2026-11-20T10:00:00Z".parse().unwrap())
        );
        assert!(!v.on_target, "the provider's answer, not the conversion's");
        assert_eq!(v.cordoned_by(), Some("p"));
        assert_eq!(v.claimed_by(), Some("p"));
        assert!(v.is_control_plane());
        assert_eq!(v.capacity.get("memory").map(String::as_str), Some("16Gi"));
        assert_eq!(v.allocatable.get("cpu").map(String::as_str), Some("3900m"));
        assert_eq!(v.taints.len(), 1);

        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "n2"}})).unwrap();
        let v = NodeView::from(&bare);
        assert_eq!(v.readiness, NodeReadiness::Unknown);
        assert!(!v.is_control_plane() && !v.unschedulable);
    }

    #[test]
    fn pod_view_reads_controller_readiness_restarts_and_drain_facts() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "creationTimestamp": "2026-11-20T09:59:00Z",
                "annotations": {"kubernetes.io/config.mirror": "x"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "r", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [], "volumes": [{"name": "tmp", "emptyDir": {}}]},
            "status": {"phase": "Running", "startTime": "2026-11-20T10:00:00Z",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 4,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "b", "image": "i", "imageID": "", "ready": true, "restartCount": 1}]}
        }))
        .unwrap();
        let v = PodView::from(&pod);
        assert_eq!(v.key(), "shop/web-1");
        assert_eq!(v.node, "n1");
        assert_eq!(
            v.controller
                .as_ref()
                .map(|c| (c.kind.as_str(), c.name.as_str())),
            Some(("ReplicaSet", "web-abc"))
        );
        assert_eq!(v.phase, PodPhase::Running);
        assert!(!v.ready);
        assert_eq!(v.restarts, 5);
        assert_eq!(v.problem.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(v.started_at, Some("2026-11-20T10:00:00Z".parse().unwrap()));
        assert!(v.mirror && v.uses_empty_dir && !v.is_daemonset() && !v.is_finished());

        let failed: Pod = serde_json::from_value(json!({
            "metadata": {"name": "job-1", "namespace": "d", "creationTimestamp": "2026-11-20T09:00:00Z"},
            "status": {"phase": "Failed", "reason": "Evicted"}
        }))
        .unwrap();
        let v = PodView::from(&failed);
        assert!(v.is_finished() && v.controller.is_none());
        assert_eq!(v.problem.as_deref(), Some("Evicted"));
        assert_eq!(
            v.started_at,
            Some("2026-11-20T09:00:00Z".parse().unwrap()),
            "falls back to creation time"
        );
    }

    #[test]
    fn pdb_view_knows_when_its_status_is_stale() {
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "web-pdb", "namespace": "shop", "generation": 3},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 2, "disruptionsAllowed": 1, "currentHealthy": 3,
                "desiredHealthy": 2, "expectedPods": 3}
        }))
        .unwrap();
        let v = PdbView::from(&pdb);
        assert!(!v.up_to_date);
        assert_eq!(
            (v.disruptions_allowed, v.current_healthy, v.desired_healthy),
            (1, 3, 2)
        );
        assert!(v.selector.is_some());
    }

    #[test]
    fn workload_views_count_ready_against_desired() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {}},
            "status": {"replicas": 3, "readyReplicas": 2}
        }))
        .unwrap();
        let w = WorkloadView::from(&rs);
        assert_eq!(
            (w.workload.kind.as_str(), w.desired, w.ready),
            ("ReplicaSet", 3, 2)
        );
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "status": {"desiredNumberScheduled": 5, "numberReady": 5, "currentNumberScheduled": 5, "numberMisscheduled": 0}
        }))
        .unwrap();
        let w = WorkloadView::from(&ds);
        assert_eq!(
            (w.workload.kind.as_str(), w.desired, w.ready),
            ("DaemonSet", 5, 5)
        );
    }
}
