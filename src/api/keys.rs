//! Label, annotation and finalizer keys: the marks molt leaves on cluster objects.
//!
//! These are part of the public contract (runbooks and other tools read them), so they live
//! together and never change meaning.

/// API group of molt's resources.
pub const GROUP: &str = "molt.dev";

/// Label on every node molt provisioned: the image it runs.
pub const IMAGE_LABEL: &str = "molt.dev/image";

/// Label on every node molt provisioned: the slot it fills (see `BatchStatus::new_nodes`). A
/// provider guarantees it, or reports the binding some other way.
pub const SLOT_LABEL: &str = "molt.dev/slot";

/// Label on every node molt provisioned: the plan that provisioned it.
pub const PLAN_LABEL: &str = "molt.dev/plan";

/// Annotation on a new node: the old node it replaces.
pub const REPLACES_ANNOTATION: &str = "molt.dev/replaces";

/// Annotation on a new node: the batch (index) that provisioned it.
pub const BATCH_ANNOTATION: &str = "molt.dev/batch";

/// Annotation on an old node: the plan that claimed it. A node belongs to at most one active plan.
pub const CLAIMED_BY_ANNOTATION: &str = "molt.dev/claimed-by";

/// Annotation on a node molt cordoned, written in the same patch as the cordon: the plan that did it.
/// molt only ever uncordons nodes that carry this annotation with its own plan's name.
pub const CORDONED_BY_ANNOTATION: &str = "molt.dev/cordoned-by";

/// Finalizer on every plan: deletion waits until molt has uncordoned what it cordoned.
pub const FINALIZER: &str = "molt.dev/cleanup";

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "molt";

/// Labels that mark a control-plane node; such nodes are never cordoned or drained.
pub const CONTROL_PLANE_LABELS: [&str; 2] = [
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// Annotation the kubelet puts on mirror pods (static pods); they cannot be evicted.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Node labels a new node must not inherit from the node it replaces: they name the old machine.
pub const NODE_IDENTITY_LABELS: [&str; 1] = ["kubernetes.io/hostname"];
