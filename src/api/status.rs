//! The `NodeUpdatePlan`'s status: where the plan is, each batch, the gate's verdict and what
//! blocks it. Written only by molt; people and tools read it (`kubectl describe nup`).

use super::health::{DisplacedWorkload, HealthStatus, PreexistingOutage};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Observed state: where the plan is, why, and what it is waiting for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeUpdatePlanStatus {
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Standard conditions: Progressing, Healthy, Complete, Degraded, Blocked, Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// When the plan first acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,

    /// When the plan reached Succeeded, RolledBack or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,

    /// The image this plan started rolling out. Admission keeps `spec.target` immutable; should a
    /// change slip through, the plan holds in place instead of chasing two images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_image: Option<String>,

    /// Attempt number; a spec change after RolledBack starts a new attempt.
    #[serde(default)]
    pub attempt: u32,

    /// The generation whose failure stopped the plan (Halted, RolledBack, Failed); nothing retries
    /// until the spec's generation moves past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_generation: Option<i64>,

    /// Counts for people and printer columns.
    #[serde(default)]
    pub summary: Summary,

    /// One entry per batch started, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchStatus>,

    /// The last verdict of the health gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,

    /// Workloads already short of Ready pods when the plan started (bounded). Their missing pods
    /// neither trip the gate nor let the workload fall further: more missing than this counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preexisting: Vec<PreexistingOutage>,

    /// What currently stops progress (pods that cannot be evicted, nodes claimed by another plan…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<Blocker>,

    /// Why the plan halted or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,

    /// Set when old nodes started being removed at the end of a blue-green plan: the point of no
    /// return, after which a rollback is no longer possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_of_no_return_at: Option<Time>,

    /// When the next maintenance window opens, while the plan waits for one (unset otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window_at: Option<Time>,

    /// The last decision, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Lifecycle phase of a plan.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, not started (nothing selected yet, or waiting for another plan).
    Pending,
    /// Rolling forward.
    Progressing,
    /// `spec.paused` is set; stopped at a safe point.
    Paused,
    /// Every selected node runs the target image; old nodes removed.
    Succeeded,
    /// Stopped after a failure, nodes left as they were for a person to look (`onFailure`/`onTimeout: Halt`).
    Halted,
    /// Undoing: old nodes uncordoned, new nodes being drained and removed.
    RollingBack,
    /// Undone: the cluster runs on the old nodes again.
    RolledBack,
    /// The plan cannot be carried out as written (see conditions).
    Failed,
}

/// The one place that says what each phase means for the rest of molt: who owns nodes, who is
/// at rest, who is looked at again. Engine, claims and shell all ask these.
impl Phase {
    /// Come to rest: the plan acts on nothing (and holds nothing) until its spec changes.
    pub fn at_rest(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Failed)
    }

    /// Going forward toward the target, or paused on the way (`started` or not).
    pub fn forward(self) -> bool {
        matches!(self, Phase::Progressing | Phase::Paused)
    }

    /// Acting on the cluster right now (the Progressing condition is True).
    pub fn moving(self) -> bool {
        matches!(self, Phase::Progressing | Phase::RollingBack)
    }

    /// In motion: looked at again at least every resync period, whatever the watches say.
    pub fn in_motion(self) -> bool {
        self.forward() || self == Phase::RollingBack
    }

    /// Owns the nodes it claimed, so no other plan may take them over. A plan paused before it
    /// started has touched nothing and owns nothing.
    pub fn owns_nodes(self, started: bool) -> bool {
        match self {
            Phase::Progressing | Phase::RollingBack | Phase::Halted => true,
            Phase::Paused => started,
            Phase::Pending | Phase::Succeeded | Phase::RolledBack | Phase::Failed => false,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Counts for people and printer columns.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Nodes in scope: old nodes when the plan started plus any that joined the pool since.
    #[serde(default)]
    pub nodes: u32,
    /// Old nodes whose batch completed.
    #[serde(default)]
    pub updated: u32,
    /// Batches expected in total (grows if old nodes join the pool).
    #[serde(default)]
    pub batches: u32,
    /// 1-based number of the batch in flight, or of the last one.
    #[serde(default)]
    pub current_batch: u32,
    /// `updated/nodes`, for `kubectl get`.
    #[serde(default)]
    pub progress: String,
    /// `currentBatch/batches`, for `kubectl get`.
    #[serde(default)]
    pub batch: String,
}

/// One batch: K old nodes replaced by K new ones.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BatchStatus {
    /// 0-based position of the batch.
    pub index: u32,
    /// Where the batch is.
    pub phase: BatchPhase,
    /// Old nodes this batch replaces (recorded before any of them is touched).
    #[serde(default)]
    pub old_nodes: Vec<String>,
    /// The slots of the new nodes, one per old node: deterministic ids (a restart never
    /// provisions twice). The provider names the node that fills a slot; with kwok by default
    /// the node is named after its slot.
    #[serde(default)]
    pub new_nodes: Vec<String>,
    /// The node that fills each slot, as the provider named it, recorded once it is seen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slot_nodes: BTreeMap<String, String>,
    /// When the new nodes were requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_at: Option<Time>,
    /// When every new node was Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
    /// When the old nodes were cordoned and the first eviction was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_started_at: Option<Time>,
    /// When the last evictable pod left the old nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_completed_at: Option<Time>,
    /// Start of the current unbroken healthy stretch (reset when the gate stops being Healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_started_at: Option<Time>,
    /// When the batch passed (or was rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Workloads that lost pods to this batch's drain, with their ready count just before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub displaced: Vec<DisplacedWorkload>,
    /// Displaced workloads beyond what status records (`displaced` is bounded): the gate could
    /// not check them (a `DisplacedUnrecorded` Event says so). 0 unless a batch displaces more than 2,000.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub displaced_unrecorded: u32,
    /// Metrics analysis during the soak: one entry per metric (`spec.analysis`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<super::analysis::MetricStatus>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where a batch is.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BatchPhase {
    /// New nodes requested; waiting for them to be Ready.
    #[default]
    Provisioning,
    /// Old nodes cordoned; pods being evicted.
    Draining,
    /// Drained; the health gate must stay Healthy for `soak`.
    Soaking,
    /// Passed; old nodes being removed (`blueGreen: false`).
    RemovingOldNodes,
    /// Passed.
    Completed,
    /// Undone by a rollback.
    RolledBack,
}

/// Something that stops progress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// Node concerned.
    pub node: String,
    /// Pod concerned (`namespace/name`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// What blocks, in words a person can act on.
    pub reason: String,
    /// What kind of thing blocks: conditions and Events are derived from it, never from the words.
    #[serde(default)]
    pub kind: BlockerKind,
}

impl Blocker {
    /// `node` belongs to `owner`, another plan that still holds it.
    pub fn other_plan(node: &str, owner: &str) -> Self {
        Blocker {
            node: node.to_string(),
            pod: None,
            reason: format!("node {node} belongs to plan {owner}, which is still active"),
            kind: BlockerKind::OtherPlan,
        }
    }
}

/// What kind of thing blocks progress.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BlockerKind {
    /// A PodDisruptionBudget allows no disruption now (molt's own check, or the API server's 429).
    #[serde(rename = "PDB")]
    Pdb,
    /// A pod the drain rules refuse to evict (unmanaged, emptyDir, several PDBs…). Statuses
    /// written before kinds existed read as this; blockers are recomputed on every decision.
    #[default]
    DrainRule,
    /// The node belongs to another active plan.
    OtherPlan,
    /// The API server refused the eviction for another reason.
    EvictionRefused,
}

/// Why the plan stopped.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Machine-readable reason (same as the condition reason).
    pub reason: String,
    /// What happened, in words.
    pub message: String,
    /// When it was decided.
    pub at: Time,
    /// The batch in flight (0-based), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
}
