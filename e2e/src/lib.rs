//! End-to-end harness for molt: a real local control plane with kwok nodes.
//!
//! The cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//! kwok and the fault mirror, and for the Cluster API suites the Cluster API
//! manager with the kwok-machine provider) is run by `e2e/cluster.sh`; see
//! `docs/local-cluster.md`. This crate connects to it (starting it if needed),
//! gives each test an isolated namespace and its own pool of simulated nodes,
//! and waits for conditions with generous deadlines instead of sleeping.
//!
//! Tests share one cluster and run in parallel, so everything a test creates
//! is its own: pods are pinned to the test's node pool by a node selector
//! ([`NodePool::selector`]), and namespaces and nodes are removed on drop.

pub mod capi;
pub mod checker;
pub mod cluster;
pub mod controller;
pub mod fixtures;
pub mod install;
pub mod k8s;
pub mod molt;
pub mod paths;
pub mod plan;
pub mod prometheus;
pub mod scenario;
pub mod scrape;
pub mod tools;
pub mod wait;
pub mod workloads;

pub use cluster::{Cluster, cluster_dir, ensure_cluster};
pub use fixtures::{
    FAULT_ANNOTATION, FAULT_LABEL, Fault, KWOK_NODE_ANNOTATION, NO_FAULT, NodePool, NodePoolSpec,
    POOL_LABEL, TestNamespace, kwok_node, kwok_provider_id, unique_name,
};
pub use k8s::{
    NOT_READY_TAINT, describe_pods, has_controller_not_ready_taint, has_taint, is_node_ready,
    is_pod_ready, live_pods, node_ready_status, pod_condition, pod_node, pod_phase, pod_restarts,
};
pub use wait::{default_timeout, eventually, wait_for, wait_for_within};
pub use workloads::{deployment, pod_disruption_budget};
