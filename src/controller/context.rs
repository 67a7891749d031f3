//! What every reconcile shares: the client, the caches, the pod watches, the provider and the
//! eviction answers the API server gave lately.

use super::pods::PodWatches;
use crate::api::NodeUpdatePlan;
use crate::engine::observed::EvictionFeedback;
use crate::provision::Provider;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Read-only caches fed by watches.
#[derive(Clone)]
pub struct Stores {
    pub plans: Store<NodeUpdatePlan>,
    pub nodes: Store<Node>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub replica_sets: Store<ReplicaSet>,
    pub stateful_sets: Store<StatefulSet>,
    pub daemon_sets: Store<DaemonSet>,
    pub namespaces: Store<Namespace>,
}

impl Stores {
    /// Whether every cache has listed its objects once: deciding on a half-filled cache could
    /// mistake a missing node for a removed one. Checked without waiting (a waiter on a store
    /// is not always woken when the store fills), so a reconcile that finds a cache still
    /// loading returns and is retried.
    pub async fn ready(&self) -> Result<(), String> {
        async fn check<K>(name: &str, store: &Store<K>) -> Result<(), String>
        where
            K: kube::Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            match tokio::time::timeout(
                std::time::Duration::from_millis(20),
                store.wait_until_ready(),
            )
            .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(format!("the {name} cache stopped")),
                Err(_) => Err(format!("the {name} cache is still loading")),
            }
        }
        check("plan", &self.plans).await?;
        check("node", &self.nodes).await?;
        check("PodDisruptionBudget", &self.pdbs).await?;
        check("ReplicaSet", &self.replica_sets).await?;
        check("StatefulSet", &self.stateful_sets).await?;
        check("DaemonSet", &self.daemon_sets).await?;
        check("namespace", &self.namespaces).await
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub pods: PodWatches,
    pub provisioner: Arc<dyn Provider>,
    pub recorder: Recorder,
    /// Recent eviction answers per plan. Memory only, by design: after a restart the engine
    /// derives blockers from PDB status again.
    pub feedback: Mutex<BTreeMap<String, Vec<EvictionFeedback>>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}
