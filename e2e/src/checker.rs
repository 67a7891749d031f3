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
//!    audit log (`<cluster dir>/logs/audit.log`, written by `cluster.sh`), and
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

    /// Invariant 4: the window after the first halt/rollback revision.
    fn judge_after_stop(&self) -> Vec<String> {
        let st = self.lock();
        let mut plan = st.plan.clone();
        plan.sort_by_key(|p| p.revision);
        let stopped = ["Halted", "RollingBack", "RolledBack"];
        let Some(stop) = plan
            .iter()
            .find(|p| p.phase.as_deref().is_some_and(|ph| stopped.contains(&ph)))
        else {
            return Vec::new();
        };
        let end = plan
            .iter()
            .find(|p| p.revision > stop.revision && p.generation != stop.generation)
            .map(|p| p.revision)
            .unwrap_or(u64::MAX);
        let in_window = |rv: u64| rv > stop.revision && rv < end;
        let phase = stop.phase.clone().unwrap_or_default();
        let mut out = Vec::new();
        for o in &st.timeline {
            if !in_window(o.revision) {
                continue;
            }
            let old = st
                .nodes
                .get(&o.node)
                .or_else(|| st.gone.get(&o.node))
                .is_some_and(|n| n.image.as_deref() != Some(self.cfg.target_image.as_str()));
            match &o.kind {
                ObservationKind::Cordoned { by_molt: true } if old => out.push(format!(
                    "invariant 4: old node {} cordoned by molt at revision {} after the plan turned {phase} at revision {}",
                    o.node, o.revision, stop.revision
                )),
                ObservationKind::PodLeft {
                    pod,
                    daemonset: false,
                } if old => out.push(format!(
                    "invariant 4: pod {pod} left old node {} at revision {} after the plan turned {phase} at revision {}",
                    o.node, o.revision, stop.revision
                )),
                _ => {}
            }
        }
        for (name, rv) in &st.provisioned {
            if in_window(*rv) {
                out.push(format!(
                    "invariant 4: node {name} provisioned for the target at revision {rv} after the plan turned {phase} at revision {}",
                    stop.revision
                ));
            }
        }
        out
    }

    /// Invariant 3's end state: nothing left cordoned after rollback or deletion.
    async fn judge_end_state(&self) -> Result<Vec<String>> {
        let plan = plans(self.client.clone()).get_opt(&self.cfg.plan).await?;
        let phase = plan
            .as_ref()
            .and_then(|p| p.data.pointer("/status/phase"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let deleting = plan
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
        if plan.is_some() && phase.as_deref() != Some("RolledBack") || deleting {
            return Ok(Vec::new());
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut out = Vec::new();
        for n in nodes.list(&Default::default()).await?.items {
            if n.annotations().get(marks::CORDONED_BY) == Some(&self.cfg.plan) {
                out.push(format!(
                    "invariant 3: node {} still carries {}={} after the plan {}",
                    n.name_any(),
                    marks::CORDONED_BY,
                    self.cfg.plan,
                    if plan.is_none() {
                        "was deleted"
                    } else {
                        "rolled back"
                    }
                ));
            }
        }
        Ok(out)
    }

    /// Invariant 1 from the audit log.
    async fn judge_audit(&self) -> Result<Vec<String>> {
        let departures: Vec<(String, String, String, u64)> = {
            let st = self.lock();
            st.departures
                .iter()
                .filter(|(_, _, _, _, ds)| !ds)
                .map(|(ns, pod, node, rv, _)| (ns.clone(), pod.clone(), node.clone(), *rv))
                .collect()
        };
        let path = audit_log_path();
        let molt = self.cfg.molt_user.clone();
        let mut out;
        let mut attempts = 0;
        loop {
            attempts += 1;
            out = Vec::new();
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(vec![format!(
                        "invariant 1 cannot be checked: the audit log {} is unreadable: {e}",
                        path.display()
                    )]);
                }
            };
            let mut evicted: BTreeSet<(String, String)> = BTreeSet::new();
            for line in text.lines() {
                let Ok(ev) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or_default();
                let ns = s("/objectRef/namespace").to_string();
                if !self.cfg.namespaces.contains(&ns) || s("/user/username") != molt {
                    continue;
                }
                let name = s("/objectRef/name").to_string();
                let code = ev
                    .pointer("/responseStatus/code")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                match (s("/verb"), s("/objectRef/subresource")) {
                    ("delete" | "deletecollection", "") => out.push(format!(
                        "invariant 1: molt deleted pod {ns}/{name} directly (answer {code})"
                    )),
                    ("create", "eviction") if (200..300).contains(&code) => {
                        evicted.insert((ns, name));
                    }
                    _ => {}
                }
            }
            for (ns, pod, node, rv) in &departures {
                if !evicted.contains(&(ns.clone(), pod.clone())) {
                    out.push(format!(
                        "invariant 1: pod {ns}/{pod} left node {node} (revision {rv}) without an eviction by molt that the API server accepted"
                    ));
                }
            }
            // The audit entry of a request is written as its response
            // completes; read again briefly before judging a departure.
            if out.is_empty() || attempts >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(out)
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
