//! An invariant checker that runs beside each scenario.
//!
//! It has its own watches on the nodes, the test's pods and the plan, and judges
//! what it sees against product.md's invariants without any of molt's code.
//! [`Checker::finish`] returns every violation; each test asserts the list is
//! empty.
//!
//! What is checked, and how:
//!
//! 1. **No eviction a PDB forbids; molt never deletes a pod.** The API server is
//!    what enforces PDBs, so an eviction it accepted was allowed. The checker
//!    proves that pods leave the plan's nodes *only* through the Eviction API:
//!    every pod of the test's namespaces (DaemonSet pods aside) that starts
//!    terminating or disappears while bound to a node the plan selects must have
//!    a successful `pods/eviction` create by molt's identity in the API server's
//!    audit log (`<cluster dir>/logs/audit.log`, written by `cluster.sh`) — or one
//!    answered 504 because molt was killed while the API server handled it (the
//!    handler, PDB check included, goes on after the answer) — and
//!    molt's identity must never have sent a pod `DELETE`. A pod removed
//!    together with its node (the provider removing a node that still ran it)
//!    fails this check too.
//! 2. **At most a batch of old nodes cordoned and not replaced.** Whenever more
//!    than `batch_size` old nodes (selected, not annotated `molt.dev/image=<target>`)
//!    are unschedulable with `molt.dev/cordoned-by=<plan>`, the plan is read
//!    afresh (molt writes status before it acts) and the old nodes of batches in
//!    phase `Completed` or `RemovingOldNodes` are set aside; more than
//!    `batch_size` left is a violation.
//! 3. **Only molt's cordons are undone, and none are left behind.** A selected
//!    node that goes from unschedulable to schedulable while it did not carry
//!    `molt.dev/cordoned-by=<plan>` is a violation. At `finish`, if the plan is
//!    gone or `RolledBack`, no node may still carry molt's cordon mark.
//! 4. **Nothing toward the target after a halt or rollback decision.** The
//!    first plan revision whose phase is `Halted`, `RollingBack` or `RolledBack`
//!    opens a window that a spec change (new generation) closes. In it, no old
//!    node may be cordoned by molt, no pod may leave an old node, and no node
//!    labelled `molt.dev/plan=<plan>` with the target image may be created.
//!    Events are ordered by their `resourceVersion`s, which on this
//!    single-etcd cluster are etcd revisions: one global order across
//!    resources, independent of the order in which separate watches deliver.
//! 6. **Control-plane nodes untouched.** A selected node with the control-plane
//!    role label or taint must never become unschedulable, carry molt's claim or
//!    cordon marks, or lose a pod.
//!
//! Invariant 5 (restarts) is a property of a whole run; the kill scenario
//! compares end states and checks that no node name is provisioned twice, from
//! [`Checker::provisioned`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::molt::{marks, plans};

mod judge;
mod watches;
use watches::{Seen, check_batch_limit, on_node, on_plan, on_pod, revision, selected, watch};

/// What the checker is told about the scenario.
#[derive(Clone, Debug)]
pub struct CheckerConfig {
    /// The plan's name.
    pub plan: String,
    /// `spec.target.image`.
    pub target_image: String,
    /// `spec.strategy.batchSize` as a node count (the largest batch).
    pub batch_size: usize,
    /// The equality labels of the plan's node selector (new nodes copy them).
    pub selector: BTreeMap<String, String>,
    /// The namespaces whose pods run on the plan's nodes.
    pub namespaces: Vec<String>,
    /// The user name molt's requests carry (its ServiceAccount).
    pub molt_user: String,
}

/// A change the checker saw, with the etcd revision it happened at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub revision: u64,
    pub node: String,
    pub kind: ObservationKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservationKind {
    /// Became unschedulable; `by_molt` when it carries molt's cordon mark for the plan.
    Cordoned { by_molt: bool },
    /// Became schedulable.
    Uncordoned,
    /// A node was created.
    Added,
    /// A node was deleted.
    Deleted,
    /// A pod (namespace/name) started terminating or vanished from this node.
    PodLeft { pod: String, daemonset: bool },
}

#[derive(Clone, Debug, Default)]
struct NodeView {
    revision: u64,
    unschedulable: bool,
    cordoned_by: Option<String>,
    claimed_by: Option<String>,
    image: Option<String>,
    plan: Option<String>,
    control_plane: bool,
    selected: bool,
}

#[derive(Clone, Debug)]
struct PodView {
    revision: u64,
    node: Option<String>,
    leaving: bool,
}

#[derive(Clone, Debug)]
struct PlanObservation {
    revision: u64,
    generation: i64,
    phase: Option<String>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeView>,
    /// The last view of selected nodes that were deleted.
    gone: BTreeMap<String, NodeView>,
    pods: BTreeMap<String, PodView>,
    timeline: Vec<Observation>,
    plan: Vec<PlanObservation>,
    violations: Vec<String>,
    /// Departures of pods from selected nodes: (namespace, pod, node, revision, daemonset).
    departures: Vec<(String, String, String, u64, bool)>,
    /// Nodes created with the plan's label and target image: (name, revision).
    provisioned: Vec<(String, u64)>,
    watch_errors: Vec<String>,
}

/// Watches beside a scenario; see the module docs for what it judges.
pub struct Checker {
    cfg: CheckerConfig,
    client: Client,
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Checker {
    /// Starts the watches and returns once each has listed what exists, so
    /// nothing the scenario does afterwards is missed.
    pub async fn start(client: Client, cfg: CheckerConfig) -> Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let ready = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let mut expected = 2;

        // Nodes: a change that may put more nodes out of service than a batch allows is
        // judged against the plan's current state.
        {
            let (state, cfg, client) = (state.clone(), cfg.clone(), client.clone());
            let api: Api<Node> = Api::all(client.clone());
            tasks.push(watch(
                api,
                watcher::Config::default(),
                "node watch".into(),
                &ready,
                &state.clone(),
                move |n: Node, seen| {
                    let (state, cfg, client) = (state.clone(), cfg.clone(), client.clone());
                    async move {
                        if on_node(
                            &state,
                            &cfg,
                            &n,
                            seen == Seen::Deleted,
                            seen == Seen::Listed,
                        ) {
                            check_batch_limit(&state, &cfg, &client).await;
                        }
                    }
                },
            ));
        }
        // The plan.
        {
            let state_ = state.clone();
            tasks.push(watch(
                plans(client.clone()),
                watcher::Config::default().fields(&format!("metadata.name={}", cfg.plan)),
                "plan watch".into(),
                &ready,
                &state,
                move |p: DynamicObject, seen| {
                    if seen != Seen::Deleted {
                        on_plan(&state_, &p);
                    }
                    std::future::ready(())
                },
            ));
        }
        // Pods of each namespace.
        for ns in &cfg.namespaces {
            expected += 1;
            let state_ = state.clone();
            tasks.push(watch(
                Api::<Pod>::namespaced(client.clone(), ns),
                watcher::Config::default(),
                format!("pod watch {ns}"),
                &ready,
                &state,
                move |p: Pod, seen| {
                    on_pod(&state_, &p, seen == Seen::Deleted);
                    std::future::ready(())
                },
            ));
        }

        let checker = Self {
            cfg,
            client,
            state,
            tasks,
        };
        let deadline = tokio::time::Instant::now() + crate::default_timeout();
        while ready.load(Ordering::SeqCst) < expected {
            if tokio::time::Instant::now() >= deadline {
                bail!("the invariant checker's watches did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(checker)
    }

    /// Everything observed so far, in etcd order.
    pub fn timeline(&self) -> Vec<Observation> {
        let mut t = self.lock().timeline.clone();
        t.sort_by_key(|o| o.revision);
        t
    }

    /// Nodes created with the plan's label and the target image, in the order
    /// they were created; a name appearing twice was provisioned twice.
    pub fn provisioned(&self) -> Vec<String> {
        let mut p = self.lock().provisioned.clone();
        p.sort_by_key(|(_, rv)| *rv);
        p.into_iter().map(|(n, _)| n).collect()
    }

    /// Violations found so far by the watches (the audit log and the
    /// after-stop window are judged by [`Checker::finish`]).
    pub fn violations_so_far(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops the watches and returns every violation seen.
    pub async fn finish(self) -> Result<Vec<String>> {
        // Let the watches deliver what already happened: wait until the node
        // and pod views agree with a fresh read (or a short bound passes;
        // nothing is judged by this wait, it only lets events arrive).
        self.settle().await;
        for t in &self.tasks {
            t.abort();
        }
        let mut violations = self.lock().violations.clone();
        violations.extend(self.judge_after_stop());
        violations.extend(self.judge_end_state().await?);
        violations.extend(self.judge_audit().await?);
        let errors = self.lock().watch_errors.clone();
        if !errors.is_empty() {
            eprintln!("checker watch errors (retried): {errors:?}");
        }
        Ok(violations)
    }

    async fn settle(&self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        for _ in 0..40 {
            if self.caught_up(&nodes).await.unwrap_or(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the watches have delivered every node and pod change a fresh
    /// list shows.
    async fn caught_up(&self, nodes: &Api<Node>) -> Result<bool> {
        let node_list = nodes.list(&Default::default()).await?;
        let mut pod_rvs = BTreeMap::new();
        for ns in &self.cfg.namespaces {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            for p in pods.list(&Default::default()).await?.items {
                pod_rvs.insert(
                    p.uid().unwrap_or_default(),
                    revision(p.metadata.resource_version.as_ref()),
                );
            }
        }
        let st = self.lock();
        let nodes_ok = node_list
            .items
            .iter()
            .filter(|n| selected(&self.cfg, n))
            .all(|n| {
                st.nodes
                    .get(&n.name_any())
                    .is_some_and(|v| v.revision >= revision(n.metadata.resource_version.as_ref()))
            })
            && st
                .nodes
                .keys()
                .all(|k| node_list.items.iter().any(|n| &n.name_any() == k));
        let pods_ok = pod_rvs
            .iter()
            .all(|(uid, rv)| st.pods.get(uid).is_some_and(|v| v.revision >= *rv))
            && st.pods.keys().all(|uid| pod_rvs.contains_key(uid));
        Ok(nodes_ok && pods_ok)
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The API server's audit log, written by `e2e/cluster.sh`.
pub fn audit_log_path() -> PathBuf {
    crate::cluster_dir().join("logs").join("audit.log")
}

/// Asserts helper: turns a non-empty violation list into an error.
pub fn ensure_none(violations: &[String]) -> Result<()> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "invariant violations:\n  {}",
            violations.join("\n  ")
        ))
    }
}
