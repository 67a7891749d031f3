//! The observed snapshot of the cluster the engine decides on.
//!
//! The shell builds it from its caches; the engine only reads it. Views keep just what a decision
//! needs, and the `From` conversions from Kubernetes objects are pure, so tests can build views
//! either by hand or from real objects.

use crate::api::WorkloadRef;
use crate::api::keys;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Taint;
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
    /// Answers to the metrics analysis' queries the shell ran for this decision
    /// ([`analysis::due`](super::analysis::due)); empty when none was due.
    pub measurements: Vec<super::analysis::Measurement>,
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
    /// Conditions that say the node is in trouble (`MemoryPressure`, `DiskPressure`,
    /// `PIDPressure`, `NetworkUnavailable`) that are `True`, with their last transition.
    pub troubles: Vec<(String, Option<Timestamp>)>,
    /// The provider's answer: the node already runs the plan's target
    /// ([`Provider::on_target`](crate::provision::Provider::on_target)). The engine tells old
    /// nodes from new by this alone; the conversion from a Node leaves it `false` and the shell
    /// sets it.
    pub on_target: bool,
}

impl NodeView {
    /// A control-plane node: never cordoned, drained or selected
    /// ([`control_plane`](super::control_plane::is_control_plane)).
    pub fn is_control_plane(&self) -> bool {
        super::control_plane::is_control_plane(&self.labels, &self.taints)
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

    /// Ready, and with a network: what a new node must be before its batch drains onto it.
    pub fn is_up(&self) -> bool {
        self.is_ready() && self.trouble("NetworkUnavailable").is_none()
    }

    /// A trouble condition that is `True`, by type.
    pub fn trouble(&self, type_: &str) -> Option<&(String, Option<Timestamp>)> {
        self.troubles.iter().find(|(t, _)| t == type_)
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
    /// Last transition of the `Ready` condition: since when the pod is (not) Ready.
    pub ready_since: Option<Timestamp>,
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
    /// `spec.unhealthyPodEvictionPolicy: AlwaysAllow`: a pod that is not Ready may always go.
    pub always_allow_unhealthy: bool,
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

mod from_objects;
