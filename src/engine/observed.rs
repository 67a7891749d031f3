//! The observed snapshot of the cluster the engine decides on.
//!
//! The shell builds it from its caches; the engine only reads it. Views keep just what a decision
//! needs, and the `From` conversions from Kubernetes objects are pure, so tests can build views
//! either by hand or from real objects.

use crate::api::WorkloadRef;
use crate::api::keys;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// Labels or annotations.
pub type Labels = BTreeMap<String, String>;

/// Everything the engine may look at, gathered by the shell at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Every node (the engine filters by selector itself).
    pub nodes: Vec<NodeView>,
    /// Pods on the nodes listed in `pods_observed_on` (and possibly others).
    pub pods: Vec<PodView>,
    /// Nodes whose pods are completely listed in `pods`. The engine never drains or judges a node
    /// whose pods it has not seen; it waits for the shell to watch them.
    pub pods_observed_on: BTreeSet<String>,
    /// PodDisruptionBudgets in the namespaces of those pods.
    pub pdbs: Vec<PdbView>,
    /// Pod controllers (ReplicaSets, StatefulSets, DaemonSets…) with their ready counts.
    pub workloads: Vec<WorkloadView>,
    /// Labels of namespaces, for `health.namespaceSelector`.
    pub namespaces: BTreeMap<String, Labels>,
    /// Other plans in the cluster: name → whether its claims stand against this plan
    /// ([`claims::holds`](super::claims::holds)).
    pub other_plans: BTreeMap<String, bool>,
    /// What the API server answered to evictions recently, for pods still present. Lost on restart
    /// by design: the engine re-derives blockers from PDB status and only uses this to name the
    /// server's own reason.
    pub eviction_feedback: Vec<EvictionFeedback>,
    /// The provider's slots this plan asked for, by slot id, as the provider reports them. A slot
    /// missing here is one the provider knows nothing of (not asked for yet, or gone).
    pub slots: BTreeMap<String, SlotView>,
}

/// What a provider reports of one slot.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotView {
    /// The node that fills it, once there is one (named by the provider).
    pub node: Option<String>,
    pub state: SlotState,
}

/// Where a slot stands, as its provider says.
#[derive(Clone, Debug, PartialEq)]
pub enum SlotState {
    /// Asked for, being made (no node yet, or a node not Ready yet).
    Provisioning,
    /// Its node is Ready.
    Ready,
    /// The provider gave up (quota, a bad template…), with its reason.
    Failed(String),
}

impl Observed {
    /// The node called `name`, if it exists.
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Pods bound to `node`.
    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodView> + 'a {
        self.pods.iter().filter(move |p| p.node == node)
    }

    /// The workload `r`, if observed.
    pub fn workload(&self, r: &WorkloadRef) -> Option<&WorkloadView> {
        self.workloads.iter().find(|w| &w.workload == r)
    }
}

/// Readiness of a node (`Ready` condition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodeReadiness {
    /// `Ready=True`.
    Ready,
    /// `Ready=False`.
    NotReady,
    /// `Ready=Unknown` or no condition yet.
    #[default]
    Unknown,
}

/// What the engine needs of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub labels: Labels,
    pub annotations: Labels,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    pub readiness: NodeReadiness,
    /// Last transition of the Ready condition.
    pub readiness_since: Option<Timestamp>,
    pub taints: Vec<Taint>,
    pub capacity: Labels,
    pub allocatable: Labels,
    /// Being deleted.
    pub deleting: bool,
}

impl NodeView {
    /// A control-plane node: never cordoned, drained or selected.
    pub fn is_control_plane(&self) -> bool {
        keys::CONTROL_PLANE_LABELS
            .iter()
            .any(|k| self.labels.contains_key(*k) || self.taints.iter().any(|t| t.key == *k))
    }

    /// The image molt recorded on the node, if molt provisioned it: the full reference in the
    /// image annotation, or the old image label on nodes provisioned by earlier molt versions.
    pub fn image(&self) -> Option<&str> {
        self.annotations
            .get(keys::IMAGE_ANNOTATION)
            .or_else(|| self.labels.get(keys::IMAGE_LABEL))
            .map(String::as_str)
    }

    /// The plan that cordoned the node, if molt did.
    pub fn cordoned_by(&self) -> Option<&str> {
        self.annotations
            .get(keys::CORDONED_BY_ANNOTATION)
            .map(String::as_str)
    }

    /// The plan that claimed the node, if any.
    pub fn claimed_by(&self) -> Option<&str> {
        self.annotations
            .get(keys::CLAIMED_BY_ANNOTATION)
            .map(String::as_str)
    }

    /// Ready right now.
    pub fn is_ready(&self) -> bool {
        self.readiness == NodeReadiness::Ready
    }
}

/// Phase of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// What the engine needs of a pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.nodeName`.
    pub node: String,
    pub labels: Labels,
    /// The controlling owner (ownerReference with `controller: true`).
    pub controller: Option<WorkloadRef>,
    pub phase: PodPhase,
    /// `Ready=True`.
    pub ready: bool,
    /// Total container restarts.
    pub restarts: i32,
    /// When the kubelet started the pod (`status.startTime`), else when it was created.
    pub started_at: Option<Timestamp>,
    /// `metadata.deletionTimestamp`: the pod is terminating.
    pub deleting_since: Option<Timestamp>,
    /// Static pod mirrored by the kubelet.
    pub mirror: bool,
    /// Uses an emptyDir volume.
    pub uses_empty_dir: bool,
    /// A short reason for a failed pod or a waiting/terminated container (`OOMKilled`, `CrashLoopBackOff`…).
    pub problem: Option<String>,
}

impl PodView {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Finished: Succeeded or Failed.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// Owned by a DaemonSet.
    pub fn is_daemonset(&self) -> bool {
        self.controller
            .as_ref()
            .is_some_and(|c| c.kind == "DaemonSet")
    }
}

/// What the engine needs of a PodDisruptionBudget.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PdbView {
    pub namespace: String,
    pub name: String,
    /// `spec.selector`; `None` selects nothing (policy/v1: an empty selector selects every pod).
    pub selector: Option<LabelSelector>,
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    /// The disruption controller has processed the latest spec.
    pub up_to_date: bool,
}

/// A pod controller and how many of its pods are ready.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadView {
    pub workload: WorkloadRef,
    /// Pods it wants.
    pub desired: i32,
    /// Pods that are ready.
    pub ready: i32,
}

/// What the API server answered to an eviction.
#[derive(Clone, Debug, PartialEq)]
pub struct EvictionFeedback {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub outcome: EvictionOutcome,
}

/// Outcome of one eviction call.
#[derive(Clone, Debug, PartialEq)]
pub enum EvictionOutcome {
    /// 429: a PodDisruptionBudget refused; the server's message.
    Blocked(String),
    /// 500 and other refusals that retrying may not fix; the server's message.
    Refused(String),
}

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
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
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
        assert_eq!(v.image(), Some("v2"));
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
