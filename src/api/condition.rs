//! Condition types and reasons: the words molt uses in status conditions and Events.
//!
//! Reasons are PascalCase constants so dashboards, alerts and runbooks can match on them.

/// Condition types molt sets on a plan.
pub mod types {
    /// True while the plan moves forward (or back) on its own.
    pub const PROGRESSING: &str = "Progressing";
    /// The health gate's verdict on the workloads the plan touched.
    pub const HEALTHY: &str = "Healthy";
    /// True once the plan reached an end: Succeeded or RolledBack.
    pub const COMPLETE: &str = "Complete";
    /// True when the plan failed: halted, rolling back or rolled back.
    pub const DEGRADED: &str = "Degraded";
    /// True while something outside molt stops progress (PDBs, unmanaged pods, another plan).
    pub const BLOCKED: &str = "Blocked";
    /// True while `spec.paused` holds the plan.
    pub const PAUSED: &str = "Paused";
}

/// Reasons of conditions and Events.
pub mod reasons {
    /// The plan has not started.
    pub const PENDING: &str = "Pending";
    /// The selector matches no node (outside the control plane).
    pub const NO_MATCHING_NODES: &str = "NoMatchingNodes";
    /// Selected nodes are claimed by another active plan.
    pub const CLAIMED_BY_ANOTHER_PLAN: &str = "ClaimedByAnotherPlan";
    /// Claiming the selected nodes before the plan starts.
    pub const CLAIMING: &str = "Claiming";
    /// No maintenance window is open: the next batch (or the plan) waits for one.
    pub const OUTSIDE_MAINTENANCE_WINDOW: &str = "OutsideMaintenanceWindow";
    /// The spec cannot be carried out as written.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The plan took its nodes and started.
    pub const PLAN_STARTED: &str = "PlanStarted";
    /// A batch started: new nodes requested.
    pub const BATCH_STARTED: &str = "BatchStarted";
    /// A batch's new nodes are being provisioned.
    pub const PROVISIONING: &str = "Provisioning";
    /// Every new node of the batch is Ready.
    pub const NODES_READY: &str = "NodesReady";
    /// Old nodes cordoned, pods being evicted.
    pub const DRAINING: &str = "Draining";
    /// A PodDisruptionBudget refuses an eviction.
    pub const DRAIN_BLOCKED_BY_PDB: &str = "DrainBlockedByPDB";
    /// A pod the drain rules refuse to evict (unmanaged, emptyDir).
    pub const DRAIN_BLOCKED_BY_POD: &str = "DrainBlockedByPod";
    /// Every evictable pod left the batch's old nodes.
    pub const DRAIN_COMPLETED: &str = "DrainCompleted";
    /// A drain displaced more workloads than status records; the gate checks the recorded ones.
    pub const DISPLACED_UNRECORDED: &str = "DisplacedUnrecorded";
    /// Workloads already short of Ready pods when the plan started: recorded as its baseline.
    pub const PREEXISTING_OUTAGE: &str = "PreexistingOutage";
    /// The drain outlived `drain.timeout`.
    pub const DRAIN_TIMEOUT: &str = "DrainTimeout";
    /// The health gate is watching the batch.
    pub const SOAKING: &str = "Soaking";
    /// The health gate passed for a batch.
    pub const HEALTH_GATE_PASSED: &str = "HealthGatePassed";
    /// The health gate found unhealthy pods beyond the tolerance.
    pub const HEALTH_GATE_FAILED: &str = "HealthGateFailed";
    /// A new node did not become Ready in time, went NotReady, or vanished.
    pub const NODE_FAILED: &str = "NodeFailed";
    /// A metric of the analysis failed more often than its failureLimit: the gate failed.
    pub const METRIC_FAILED: &str = "MetricFailed";
    /// A metric cannot be measured or decided (unreachable, errors, no data): the soak waits.
    pub const METRIC_INCONCLUSIVE: &str = "MetricInconclusive";
    /// Health gate verdict not decided yet.
    pub const HEALTH_PENDING: &str = "HealthPending";
    /// Health gate verdict Healthy.
    pub const HEALTH_OK: &str = "Healthy";
    /// A batch passed.
    pub const BATCH_COMPLETED: &str = "BatchCompleted";
    /// Old nodes of a passed batch are being removed.
    pub const REMOVING_OLD_NODES: &str = "RemovingOldNodes";
    /// The point of no return: old nodes of the whole plan are being removed.
    pub const POINT_OF_NO_RETURN: &str = "PointOfNoReturn";
    /// Every selected node runs the target image.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Stopped after a failure, nodes left as they were.
    pub const HALTED: &str = "Halted";
    /// Rollback started: old nodes first.
    pub const ROLLBACK_STARTED: &str = "RollbackStarted";
    /// Rollback in progress.
    pub const ROLLING_BACK: &str = "RollingBack";
    /// Rollback finished.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// The spec changed after a stop; the plan goes again.
    pub const RESUMED: &str = "Resumed";
    /// `spec.paused` holds the plan.
    pub const PAUSED: &str = "Paused";
    /// The target changed after the plan started (admission should have refused it).
    pub const TARGET_CHANGED: &str = "TargetChanged";
    /// molt is waiting for an observation it needs (pods of a node not yet listed).
    pub const OBSERVING: &str = "Observing";
    /// A condition that does not apply right now.
    pub const NOT_APPLICABLE: &str = "NotApplicable";
}
