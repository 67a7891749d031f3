//! What every reconcile shares: the client, the caches, the pod watches, the provider and the
//! eviction answers the API server gave lately.

use super::pods::PodWatches;
use crate::api::NodeUpdatePlan;
use crate::engine::observed::EvictionFeedback;
use crate::provision::NodeProvisioner;
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
    /// Wait until every cache has listed its objects once: deciding on a half-filled cache could
    /// mistake a missing node for a removed one.
    pub async fn ready(&self) -> Result<(), String> {
        let e = |what: &str| format!("the {what} cache stopped");
        self.plans.wait_until_ready().await.map_err(|_| e("plan"))?;
        self.nodes.wait_until_ready().await.map_err(|_| e("node"))?;
        self.pdbs
            .wait_until_ready()
            .await
            .map_err(|_| e("PodDisruptionBudget"))?;
        self.replica_sets
            .wait_until_ready()
            .await
            .map_err(|_| e("ReplicaSet"))?;
        self.stateful_sets
            .wait_until_ready()
            .await
            .map_err(|_| e("StatefulSet"))?;
        self.daemon_sets
            .wait_until_ready()
            .await
            .map_err(|_| e("DaemonSet"))?;
        self.namespaces
            .wait_until_ready()
            .await
            .map_err(|_| e("namespace"))?;
        Ok(())
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub pods: PodWatches,
    pub provisioner: Arc<dyn NodeProvisioner>,
    pub recorder: Recorder,
    /// Recent eviction answers per plan. Memory only, by design: after a restart the engine
    /// derives blockers from PDB status again.
    pub feedback: Mutex<BTreeMap<String, Vec<EvictionFeedback>>>,
}
