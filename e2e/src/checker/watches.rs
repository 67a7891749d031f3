//! The checker's watches: one loop for every kind, and what each event adds to the state
//! (a timeline, departures of pods, nodes out of service at once).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::watcher};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

use super::*;

pub(super) fn revision(meta_rv: Option<&String>) -> u64 {
    meta_rv.and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub(super) fn is_control_plane(node: &Node) -> bool {
    node.labels().contains_key(marks::CONTROL_PLANE_LABEL)
        || node.labels().contains_key("node-role.kubernetes.io/master")
        || node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    t.key == marks::CONTROL_PLANE_LABEL || t.key == "node-role.kubernetes.io/master"
                })
            })
}

/// How a watched object was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// In the initial listing, before the watch was ready.
    Listed,
    /// Created or changed (a relist after a reconnection included).
    Applied,
    Deleted,
}

/// Runs one watch for the checker: counts `ready` up once the initial listing is complete,
/// hands every object to `on`, and records watch errors as violations of their own.
pub(super) fn watch<K, F, Fut>(
    api: Api<K>,
    config: watcher::Config,
    what: String,
    ready: &Arc<AtomicUsize>,
    state: &Arc<Mutex<State>>,
    mut on: F,
) -> JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: FnMut(K, Seen) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (ready, state) = (ready.clone(), state.clone());
    tokio::spawn(async move {
        let mut stream = watcher(api, config).default_backoff().boxed();
        let mut listing = true;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => {}
                Ok(Event::InitDone) => {
                    if listing {
                        listing = false;
                        ready.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(Event::InitApply(o)) => {
                    on(o, if listing { Seen::Listed } else { Seen::Applied }).await
                }
                Ok(Event::Apply(o)) => on(o, Seen::Applied).await,
                Ok(Event::Delete(o)) => on(o, Seen::Deleted).await,
                Err(e) => record_watch_error(&state, format!("{what}: {e}")),
            }
        }
    })
}

pub(super) fn record_watch_error(state: &Arc<Mutex<State>>, msg: String) {
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if st.watch_errors.len() < 20 {
        st.watch_errors.push(msg);
    }
}

pub(super) fn selected(cfg: &CheckerConfig, n: &Node) -> bool {
    let labels = n.labels();
    (!cfg.selector.is_empty() && cfg.selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
        || labels.get(marks::PLAN_LABEL) == Some(&cfg.plan)
}

/// Records a node event; returns true when the batch limit must be checked.
pub(super) fn on_node(
    state: &Arc<Mutex<State>>,
    cfg: &CheckerConfig,
    n: &Node,
    deleted: bool,
    initial: bool,
) -> bool {
    let name = n.name_any();
    let rv = revision(n.metadata.resource_version.as_ref());
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let view = NodeView {
        revision: rv,
        unschedulable: crate::molt::is_unschedulable(n),
        cordoned_by: n.annotations().get(marks::CORDONED_BY).cloned(),
        claimed_by: n.annotations().get(marks::CLAIMED_BY).cloned(),
        image: n.annotations().get(marks::IMAGE_ANNOTATION).cloned(),
        plan: n.labels().get(marks::PLAN_LABEL).cloned(),
        control_plane: is_control_plane(n),
        selected: selected(cfg, n),
    };
    if !view.selected {
        st.nodes.remove(&name);
        return false;
    }
    if deleted {
        st.nodes.remove(&name);
        st.gone.insert(name.clone(), view);
        st.timeline.push(Observation {
            revision: rv,
            node: name,
            kind: ObservationKind::Deleted,
        });
        return false;
    }
    let prev = st.nodes.insert(name.clone(), view.clone());
    let is_new = prev.is_none() && !initial;
    if is_new {
        st.timeline.push(Observation {
            revision: rv,
            node: name.clone(),
            kind: ObservationKind::Added,
        });
        if view.plan.as_deref() == Some(cfg.plan.as_str())
            && view.image.as_deref() == Some(cfg.target_image.as_str())
        {
            st.provisioned.push((name.clone(), rv));
        }
    }
    let was_unschedulable = prev.as_ref().is_some_and(|p| p.unschedulable);
    let molt_mark = view.cordoned_by.as_deref() == Some(cfg.plan.as_str());
    if view.control_plane
        && (view.unschedulable || view.cordoned_by.is_some() || view.claimed_by.is_some())
    {
        let msg = format!(
            "invariant 6: control-plane node {name} touched at revision {rv} (unschedulable={}, cordoned-by={:?}, claimed-by={:?})",
            view.unschedulable, view.cordoned_by, view.claimed_by
        );
        if !st.violations.contains(&msg) {
            st.violations.push(msg);
        }
    }
    if view.unschedulable && !was_unschedulable && prev.is_some() {
        st.timeline.push(Observation {
            revision: rv,
            node: name.clone(),
            kind: ObservationKind::Cordoned { by_molt: molt_mark },
        });
    }
    if !view.unschedulable && was_unschedulable {
        st.timeline.push(Observation {
            revision: rv,
            node: name.clone(),
            kind: ObservationKind::Uncordoned,
        });
        let prev_mark = prev
            .as_ref()
            .and_then(|p| p.cordoned_by.as_deref())
            .is_some_and(|m| m == cfg.plan);
        if !prev_mark {
            st.violations.push(format!(
                "invariant 3: node {name} was uncordoned at revision {rv} although molt had not cordoned it (no {}={} mark)",
                marks::CORDONED_BY,
                cfg.plan
            ));
        }
    }
    // Count old nodes cordoned by molt.
    let cordoned_old = st
        .nodes
        .values()
        .filter(|v| {
            v.unschedulable
                && v.cordoned_by.as_deref() == Some(cfg.plan.as_str())
                && v.image.as_deref() != Some(cfg.target_image.as_str())
        })
        .count();
    cordoned_old > cfg.batch_size
}

/// Invariant 2, judged against a fresh read of the plan.
pub(super) async fn check_batch_limit(
    state: &Arc<Mutex<State>>,
    cfg: &CheckerConfig,
    client: &Client,
) {
    let plan = match plans(client.clone()).get_opt(&cfg.plan).await {
        Ok(p) => p,
        Err(e) => {
            record_watch_error(state, format!("reading the plan: {e}"));
            return;
        }
    };
    let replaced: BTreeSet<String> = plan
        .as_ref()
        .and_then(|p| p.data.pointer("/status/batches"))
        .and_then(Value::as_array)
        .map(|bs| {
            bs.iter()
                .filter(|b| {
                    matches!(
                        b.get("phase").and_then(Value::as_str),
                        Some("Completed" | "RemovingOldNodes")
                    )
                })
                .filter_map(|b| b.get("oldNodes").and_then(Value::as_array))
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let offending: Vec<String> = st
        .nodes
        .iter()
        .filter(|(name, v)| {
            v.unschedulable
                && v.cordoned_by.as_deref() == Some(cfg.plan.as_str())
                && v.image.as_deref() != Some(cfg.target_image.as_str())
                && !replaced.contains(*name)
        })
        .map(|(n, _)| n.clone())
        .collect();
    if offending.len() > cfg.batch_size {
        let msg = format!(
            "invariant 2: {} old nodes cordoned by molt and not replaced (batch size {}): {offending:?}",
            offending.len(),
            cfg.batch_size
        );
        if !st.violations.contains(&msg) {
            st.violations.push(msg);
        }
    }
}

pub(super) fn on_plan(state: &Arc<Mutex<State>>, p: &DynamicObject) {
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    st.plan.push(PlanObservation {
        revision: revision(p.metadata.resource_version.as_ref()),
        generation: p.metadata.generation.unwrap_or(0),
        phase: p
            .data
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .map(str::to_string),
    });
}

pub(super) fn on_pod(state: &Arc<Mutex<State>>, p: &Pod, deleted: bool) {
    let Some(uid) = p.uid() else { return };
    let rv = revision(p.metadata.resource_version.as_ref());
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let daemonset = p
        .owner_references()
        .iter()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    let node = crate::pod_node(p).map(str::to_string);
    let leaving = deleted || p.metadata.deletion_timestamp.is_some();
    let prev = st.pods.insert(
        uid.clone(),
        PodView {
            revision: rv,
            node: node.clone(),
            leaving,
        },
    );
    let was_leaving = prev.as_ref().is_some_and(|v| v.leaving);
    if deleted {
        st.pods.remove(&uid);
    }
    let node = node.or_else(|| prev.and_then(|v| v.node));
    let (Some(node), true, false) = (node, leaving, was_leaving) else {
        return;
    };
    // Only pods of the plan's nodes (present or already deleted) count.
    let Some(view) = st.nodes.get(&node).or_else(|| st.gone.get(&node)).cloned() else {
        return;
    };
    record_departure(&mut st, p, &node, rv, daemonset, view.control_plane);
}

pub(super) fn record_departure(
    st: &mut State,
    p: &Pod,
    node: &str,
    rv: u64,
    daemonset: bool,
    control_plane: bool,
) {
    let ns = p.namespace().unwrap_or_default();
    let pod = p.name_any();
    st.timeline.push(Observation {
        revision: rv,
        node: node.to_string(),
        kind: ObservationKind::PodLeft {
            pod: format!("{ns}/{pod}"),
            daemonset,
        },
    });
    if control_plane && !daemonset {
        st.violations.push(format!(
            "invariant 6: pod {ns}/{pod} left control-plane node {node} at revision {rv}"
        ));
    }
    st.departures
        .push((ns, pod, node.to_string(), rv, daemonset));
}
