//! Pods are watched only where a plan is in flight: one field-selected watch per node that some
//! plan's status names. Every pod event on such a node wakes the plans that care about it, so a
//! pod turning unready on a new node reaches the health gate within a second.

use crate::api::NodeUpdatePlan;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

struct NodeWatch {
    store: Store<Pod>,
    synced: Arc<AtomicBool>,
    plans: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The set of per-node pod watches.
pub struct PodWatches {
    client: Client,
    trigger: UnboundedSender<ObjectRef<NodeUpdatePlan>>,
    nodes: Mutex<BTreeMap<String, NodeWatch>>,
}

impl PodWatches {
    pub fn new(client: Client, trigger: UnboundedSender<ObjectRef<NodeUpdatePlan>>) -> Self {
        Self {
            client,
            trigger,
            nodes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Watch exactly `wanted` for `plan`: start the missing watches, drop those no plan needs.
    pub fn set(&self, plan: &str, wanted: &BTreeSet<String>) {
        let Ok(mut nodes) = self.nodes.lock() else {
            return;
        };
        for (name, w) in nodes.iter() {
            if let Ok(mut plans) = w.plans.lock() {
                if wanted.contains(name) {
                    plans.insert(plan.to_string());
                } else {
                    plans.remove(plan);
                }
            }
        }
        for name in wanted {
            if !nodes.contains_key(name) {
                let w = self.start(name, plan);
                nodes.insert(name.clone(), w);
            }
        }
        nodes.retain(|_, w| {
            let keep = w.plans.lock().map(|p| !p.is_empty()).unwrap_or(true);
            if !keep {
                w.task.abort();
            }
            keep
        });
    }

    fn start(&self, node: &str, plan: &str) -> NodeWatch {
        let (store, writer) = reflector::store();
        let synced = Arc::new(AtomicBool::new(false));
        let plans = Arc::new(Mutex::new(BTreeSet::from([plan.to_string()])));
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let stream = reflector::reflector(
            writer,
            watcher(Api::<Pod>::all(self.client.clone()), config),
        )
        .default_backoff();
        let (s, p, trigger, node_name) = (
            synced.clone(),
            plans.clone(),
            self.trigger.clone(),
            node.to_string(),
        );
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => s.store(true, Ordering::SeqCst),
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(node = %node_name, error = %e, "pod watch failed; retrying");
                        continue;
                    }
                }
                let plans: Vec<String> = p
                    .lock()
                    .map(|p| p.iter().cloned().collect())
                    .unwrap_or_default();
                for plan in plans {
                    let _ = trigger.unbounded_send(ObjectRef::new(&plan));
                }
            }
        });
        NodeWatch {
            store,
            synced,
            plans,
            task,
        }
    }

    /// Pods on `node`, if its watch has listed them completely.
    pub fn pods_on(&self, node: &str) -> Option<Vec<Arc<Pod>>> {
        let nodes = self.nodes.lock().ok()?;
        let w = nodes.get(node)?;
        w.synced.load(Ordering::SeqCst).then(|| w.store.state())
    }
}

impl Drop for PodWatches {
    fn drop(&mut self) {
        if let Ok(nodes) = self.nodes.lock() {
            for w in nodes.values() {
                w.task.abort();
            }
        }
    }
}
