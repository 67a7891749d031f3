//! The Cluster API test stand: the real Cluster API core manager (built from its pinned module,
//! started by `e2e/cluster.sh capi-up`) with a test-only infrastructure provider, `kwok-machine`,
//! whose machines are kwok Nodes. See `docs/local-cluster.md`.
//!
//! A test gets a workload cluster of its own with [`CapiCluster::create`], then creates
//! KwokMachineTemplates and MachineDeployments in it; Cluster API's controllers make the
//! MachineSets and Machines, kwok-machine the Nodes.

pub mod infra;
pub mod machines;
pub mod objects;
pub mod stand;

pub use infra::{KwokCluster, KwokMachine, KwokMachineSpec, KwokMachineTemplate};
pub use machines::Expected;
pub use objects::{
    CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, DELETE_MACHINE_ANNOTATION, DEPLOYMENT_NAME_LABEL,
    Kind, condition, field, node_ref,
};
pub use stand::{CapiCluster, ensure_capi, kubernetes_version};
