//! The health gate's part of the status: its verdict, what it judged unhealthy and why, the
//! workloads each drain displaced and the outages that predate the plan.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workload (pod controller) that lost pods to a drain.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct DisplacedWorkload {
    /// The workload.
    #[serde(flatten)]
    pub workload: WorkloadRef,
    /// Ready pods it had just before the drain; the gate waits until it is back to this.
    pub ready_before: i32,
    /// Since when the gate has seen it below that count without a break (cleared once it is
    /// back). Kept in status so a dip is timed across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_since: Option<Time>,
}

/// A pod controller, by kind, namespace and name.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Controller kind (ReplicaSet, StatefulSet, DaemonSet, Job…).
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A workload already short of Ready pods before the plan touched anything. Up to that many of
/// its pods may be unhealthy on new nodes without counting; one more counts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PreexistingOutage {
    /// The workload.
    #[serde(flatten)]
    pub workload: WorkloadRef,
    /// Pods it wanted then.
    pub desired: i32,
    /// Pods that were Ready then. Updated at each later batch start only if the outage shrank,
    /// never when it grew, so a failure molt caused is never excused later.
    pub ready: i32,
}

impl PreexistingOutage {
    /// Pods missing before the plan: the most the gate excuses.
    pub fn missing(&self) -> i32 {
        (self.desired - self.ready).max(0)
    }
}

/// The health gate's verdict and its reasons.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// Healthy, Pending (not decided yet) or Unhealthy.
    pub verdict: Verdict,
    /// Pods on new nodes the gate counts.
    #[serde(default)]
    pub tracked_pods: u32,
    /// Unhealthy pods tolerated (`maxUnhealthyPods` resolved against the pods judged).
    #[serde(default)]
    pub tolerated_unhealthy: u32,
    /// Unhealthy pods, workloads and new nodes (bounded list; see `unhealthyCount` for the total).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<UnhealthyPod>,
    /// Total unhealthy pods (a workload's missing pods each count) and nodes, including any not listed.
    #[serde(default)]
    pub unhealthy_count: u32,
    /// Unhealthy pods not counted because their workload was already that short before the plan
    /// (`status.preexisting`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub excused: u32,
    /// What the gate still waits for when Pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Verdict of the health gate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Not decided yet: pods still starting or workloads not yet back to their pre-drain count.
    #[default]
    Pending,
    /// Every condition of the gate holds.
    Healthy,
    /// A condition failed; see `unhealthy`.
    Unhealthy,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What an unhealthy entry is about.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Subject {
    /// A pod on a new node.
    #[default]
    Pod,
    /// A new node.
    Node,
    /// A displaced workload whose pods did not come back (`missing` of them).
    Workload,
}

/// An unhealthy pod on a new node, an unhealthy new node or a workload missing pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyPod {
    /// What the entry is about.
    #[serde(default)]
    pub subject: Subject,
    /// Namespace of the pod or workload (empty for a node).
    #[serde(default)]
    pub namespace: String,
    /// Pod name (empty unless `subject` is `Pod`).
    #[serde(default)]
    pub pod: String,
    /// The node (empty for a workload).
    #[serde(default)]
    pub node: String,
    /// The pod's controller, or the workload itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    /// Pods missing, for a workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<u32>,
    /// Why it counts as unhealthy, in words.
    pub reason: String,
    /// Since when (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

impl UnhealthyPod {
    /// A failed new node.
    pub fn node(node: &str, reason: String, since: Option<Time>) -> Self {
        UnhealthyPod {
            subject: Subject::Node,
            namespace: String::new(),
            pod: String::new(),
            node: node.to_string(),
            workload: None,
            missing: None,
            reason,
            since,
        }
    }

    /// How many unhealthy pods the entry stands for (a node stands for none).
    pub fn pods(&self) -> u32 {
        match self.subject {
            Subject::Pod => 1,
            Subject::Node => 0,
            Subject::Workload => self.missing.unwrap_or(1),
        }
    }
}
