//! The `NodeUpdatePlan` resource (`molt.dev/v1alpha1`): the spec and its admission rules (the
//! status is in `status.rs`).
//!
//! The CRD in `crds/` is generated from these types (`molt crd`). Every rule a person can break is
//! checked at admission by the schema itself (OpenAPI + CEL), with a message that says how to fix it.

// `printcolumn(type_ = ...)` repeats by design; clippy reads the derive arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use super::status::NodeUpdatePlanStatus;
use super::window::MaintenanceWindow;
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// CEL: a Go duration string (`30s`, `5m`, `1h30m`), no sign.
const DURATION_RULE: &str =
    "self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || self == '0'";
/// CEL: a strictly positive Go duration.
pub(crate) const POSITIVE_DURATION_RULE: &str =
    "self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')";

/// Desired state: which nodes move to which image, how fast, and what counts as healthy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "molt.dev",
    version = "v1alpha1",
    kind = "NodeUpdatePlan",
    plural = "nodeupdateplans",
    singular = "nodeupdateplan",
    shortname = "nup",
    category = "molt",
    status = "NodeUpdatePlanStatus",
    doc = "A NodeUpdatePlan rolls a new OS image through the nodes it selects: new nodes first, old nodes cordoned and drained through the Eviction API, the moved workloads health-gated, batch by batch; it halts or rolls back the moment workload health degrades.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase of the plan"
    ),
    printcolumn(
        name = "Updated",
        type_ = "string",
        json_path = ".status.summary.progress",
        description = "Old nodes replaced / nodes in scope"
    ),
    printcolumn(
        name = "Batch",
        type_ = "string",
        json_path = ".status.summary.batch",
        description = "Current batch / batches"
    ),
    printcolumn(
        name = "Health",
        type_ = "string",
        json_path = ".status.health.verdict",
        description = "Verdict of the health gate"
    ),
    printcolumn(
        name = "Next-Window",
        type_ = "string",
        json_path = ".status.nextWindowAt",
        description = "When the next maintenance window opens, while the plan waits for it"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1,
        description = "The last decision, in words"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NodeUpdatePlanSpec {
    /// Selects the nodes to update (the pool). Must select something: an empty selector would
    /// match every node. Control-plane nodes are never selected, whatever this says.
    #[x_kube(validation = kube::core::Rule::new(
        "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)"
    ).message("nodeSelector must not be empty: give at least one matchLabels entry or matchExpressions term (an empty selector would select every node)"))]
    pub node_selector: LabelSelector,

    /// The image to roll out. Immutable: to roll out another image, create another plan.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf")
        .message("target is immutable: create a new NodeUpdatePlan to roll out a different image"))]
    pub target: Target,

    /// How new nodes are created and old ones removed. Exactly one member must be set.
    #[x_kube(validation = kube::core::Rule::new("[has(self.kwok)].filter(p, p).size() == 1")
        .message("provider must set exactly one of: kwok"))]
    pub provider: Provider,

    /// Batch sizing and whether old nodes are kept until the whole plan passes.
    #[serde(default)]
    pub strategy: Strategy,

    /// How old nodes are drained.
    #[serde(default)]
    pub drain: DrainSpec,

    /// What the health gate watches and tolerates.
    #[serde(default)]
    pub health: HealthSpec,

    /// Metrics analysis: Prometheus queries every batch's soak must pass (see `analysis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis::AnalysisSpec>,

    /// What to do when the health gate fails or a new node fails: `Rollback` (default) puts the
    /// cluster back on the old nodes; `Halt` stops where it is for a person to look.
    #[serde(default = "StopPolicy::rollback")]
    pub on_failure: StopPolicy,

    /// Stops new actions at a safe point: no new batch, no provisioning, no new eviction.
    /// The health gate keeps watching while paused.
    #[serde(default)]
    pub paused: bool,

    /// When batches may start: a batch (the first included) starts only while one of these
    /// windows is open; a batch in flight when its window closes finishes. Rollbacks are never
    /// held. Empty (default): always open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

/// The image the selected nodes move to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Image reference, opaque to molt and handed to the provider: an AMI id
    /// (`ami-0abcdef1234567890`), a registry reference (`ghcr.io/siderolabs/installer:v1.9.0`,
    /// `...@sha256:<digest>`), an Azure URN (`Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest`),
    /// a GCP image path (`projects/p/global/images/i`) or a plain name (`ubuntu-2404-20261120`).
    /// New nodes carry it in the `molt.dev/image` annotation and a hash of it in the
    /// `molt.dev/image-hash` label.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = kube::core::Rule::new("size(self) >= 1 && size(self) <= 512")
        .message("target.image must be 1-512 characters long"))]
    #[x_kube(validation = kube::core::Rule::new(r"!self.matches('[\\p{Z}\\p{Cc}]')")
        .message("target.image must not contain whitespace or control characters"))]
    pub image: String,
}

/// The port through which molt creates and removes nodes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// Simulated nodes managed by kwok: molt creates the Node objects itself. Used by the demo and tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwok: Option<KwokProvider>,
}

/// Settings of the kwok provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KwokProvider {
    /// Added to every new node on top of what it copies from the node it replaces.
    #[serde(default)]
    pub node_template: NodeTemplate,
    /// Let the API server name new nodes (`<slot>-<random>`), as Cluster API and Karpenter do,
    /// instead of naming each node after its slot. molt finds them by their `molt.dev/slot` label.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate_names: bool,
}

/// Extra labels and taints for new nodes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplate {
    /// Labels added to each new node (they win over labels copied from the replaced node).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints added to each new node, besides those copied from the replaced node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// Batch sizing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// Old nodes replaced per batch: a whole number (>= 1) or a percentage of the nodes in scope
    /// when the plan started (`25%`, rounded up, at least one node).
    #[serde(default = "default_batch_size")]
    #[x_kube(validation = kube::core::Rule::new(
        "string(self).matches('^([1-9][0-9]*|(100|[1-9][0-9]?)%)$')"
    ).message("batchSize must be a whole number of nodes >= 1 or a percentage from 1% to 100%, such as 25%"))]
    pub batch_size: IntOrString,

    /// An optional smaller first batch, to try the image on few nodes before the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,

    /// `true` (default): drained old nodes stay, cordoned, until the whole plan passes, so a rollback
    /// can bring every batch back. `false`: each batch's old nodes are removed once it passes; a
    /// later rollback only undoes the batch in flight.
    #[serde(default = "default_true")]
    pub blue_green: bool,
}

impl Default for Strategy {
    fn default() -> Self {
        Self {
            batch_size: default_batch_size(),
            canary: None,
            blue_green: true,
        }
    }
}

/// The first, smaller batch.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// Nodes in the canary batch.
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("canary.nodes must be at least 1"))]
    pub nodes: i32,
}

/// How old nodes are drained (the rules of `kubectl drain`, through the Eviction API only).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrainSpec {
    /// How long a batch's drain may take from its first eviction before `onTimeout` applies (Go duration, > 0).
    #[serde(default = "default_drain_timeout")]
    #[x_kube(validation = kube::core::Rule::new(POSITIVE_DURATION_RULE)
        .message("drain.timeout must be a positive duration such as 30m, 1h or 90s"))]
    pub timeout: Duration,

    /// Grace period handed to each eviction; unset means each pod's own terminationGracePeriodSeconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("drain.gracePeriodSeconds must be 0 or more"))]
    pub grace_period_seconds: Option<i64>,

    /// Evict pods that use emptyDir volumes (their data is lost). With `false`, such a pod blocks its node's drain.
    #[serde(default = "default_true")]
    pub delete_empty_dir_data: bool,

    /// Pods with no controller would not come back once evicted: `Block` (default) stops the node's
    /// drain and names them; `Evict` evicts them anyway.
    #[serde(default)]
    pub unmanaged_pods: UnmanagedPodPolicy,

    /// What happens when a drain outlives `timeout` (usually a PodDisruptionBudget that allows no
    /// disruption): `Halt` (default) or `Rollback`. molt never force-deletes pods.
    #[serde(default = "StopPolicy::halt")]
    pub on_timeout: StopPolicy,
}

impl Default for DrainSpec {
    fn default() -> Self {
        Self {
            timeout: default_drain_timeout(),
            grace_period_seconds: None,
            delete_empty_dir_data: true,
            unmanaged_pods: UnmanagedPodPolicy::default(),
            on_timeout: StopPolicy::halt(),
        }
    }
}

/// What to do with pods that have no controller.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnmanagedPodPolicy {
    /// Stop the drain of the node and report the pod as a blocker.
    #[default]
    Block,
    /// Evict the pod; nothing recreates it.
    Evict,
}

/// How a plan stops going forward: halt where it is, or roll back. One type for every stop
/// (`onFailure`, `drain.onTimeout`); each field keeps its own default.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopPolicy {
    /// Stop where it is: nodes stay as they are for a person to look.
    Halt,
    /// Put the cluster back on the old nodes: uncordon them, drain and remove the new ones.
    Rollback,
}

impl StopPolicy {
    /// The default of `drain.onTimeout`: a stuck drain waits for a person.
    pub fn halt() -> Self {
        StopPolicy::Halt
    }

    /// The default of `onFailure`: a bad image is rolled back.
    pub fn rollback() -> Self {
        StopPolicy::Rollback
    }
}

/// The health gate: which pods count and how much trouble is tolerated.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    /// Namespaces whose pods count (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Pods that count (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,

    /// A pod that lands on a new node must be Ready within this (Go duration, > 0).
    #[serde(default = "default_ready_timeout")]
    #[x_kube(validation = kube::core::Rule::new(POSITIVE_DURATION_RULE)
        .message("health.readyTimeout must be a positive duration such as 5m or 90s"))]
    pub ready_timeout: Duration,

    /// A pod on a new node that was Ready, or a displaced workload that was back to its count, and
    /// lost it counts as unhealthy once it stays so this long without a break (Go duration, > 0).
    /// Shorter dips are blips: they neither fail the batch nor restart the soak, but the soak does
    /// not pass during one.
    #[serde(default = "default_not_ready_timeout")]
    #[x_kube(validation = kube::core::Rule::new(POSITIVE_DURATION_RULE)
        .message("health.notReadyTimeout must be a positive duration such as 1m or 90s"))]
    pub not_ready_timeout: Duration,

    /// Container restarts after landing on a new node beyond which a pod counts as unhealthy.
    #[serde(default = "default_max_restarts")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("health.maxRestarts must be 0 or more"))]
    pub max_restarts: i32,

    /// Tracked pods tolerated unhealthy: a whole number (>= 0) or a percentage of tracked pods (`10%`, rounded down).
    #[serde(default = "default_max_unhealthy")]
    #[x_kube(validation = kube::core::Rule::new(
        "string(self).matches('^([0-9]+|(100|[1-9]?[0-9])%)$')"
    ).message("maxUnhealthyPods must be a whole number >= 0 or a percentage from 0% to 100%, such as 10%"))]
    pub max_unhealthy_pods: IntOrString,

    /// A new node must be Ready within this after it was requested (Go duration, > 0).
    #[serde(default = "default_node_ready_timeout")]
    #[x_kube(validation = kube::core::Rule::new(POSITIVE_DURATION_RULE)
        .message("health.nodeReadyTimeout must be a positive duration such as 10m"))]
    pub node_ready_timeout: Duration,

    /// How long a batch must stay healthy, without a break, after its drain before the next batch starts (Go duration; `0s` for none).
    #[serde(default = "default_soak")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE)
        .message("health.soak must be a duration such as 5m, 30s or 0s"))]
    pub soak: Duration,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            namespace_selector: None,
            pod_selector: None,
            ready_timeout: default_ready_timeout(),
            not_ready_timeout: default_not_ready_timeout(),
            max_restarts: default_max_restarts(),
            max_unhealthy_pods: default_max_unhealthy(),
            node_ready_timeout: default_node_ready_timeout(),
            soak: default_soak(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_batch_size() -> IntOrString {
    IntOrString::Int(1)
}
fn default_max_unhealthy() -> IntOrString {
    IntOrString::Int(0)
}
fn default_max_restarts() -> i32 {
    3
}
fn minutes(m: u64) -> Duration {
    Duration::from(std::time::Duration::from_secs(m * 60))
}
fn default_drain_timeout() -> Duration {
    minutes(30)
}
fn default_ready_timeout() -> Duration {
    minutes(5)
}
fn default_not_ready_timeout() -> Duration {
    minutes(1)
}
fn default_node_ready_timeout() -> Duration {
    minutes(10)
}
fn default_soak() -> Duration {
    minutes(5)
}
