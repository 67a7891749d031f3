//! The I/O shell around the engine: watches feed caches, reconciles observe, decide, record and act.
//!
//! - [`context`]: what reconciles share (client, caches, pod watches, provider, recorder).
//! - [`observe`]: the engine's snapshot from the caches.
//! - [`reconcile`]: one reconcile and the error policy.
//! - [`carry_out`]: one decision carried out: status, then Events, then actions.
//! - [`execute`]: each action carried out idempotently.
//! - [`evict`]: one eviction and what the API server's answer means.
//! - [`nodes`]: node reads and compare-and-set patches (cordon, uncordon, release).
//! - [`pods`]: pod watches limited to the nodes in flight.
//! - [`metrics_query`]: the metrics analysis' Prometheus queries.

pub mod carry_out;
pub mod context;
pub mod error;
pub mod evict;
pub mod execute;
pub mod metrics_query;
pub mod nodes;
pub mod observe;
pub mod pods;
pub mod reconcile;

use crate::api::{NodeUpdatePlan, Phase};
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::provision::kwok::KwokProvisioner;
use context::{Context, Stores};
use error::Error;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

/// Settings of `molt run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Plans reconciled at the same time.
    pub concurrency: u16,
    /// Name reported on Events.
    pub reporter: String,
    /// Label selector limiting the plans this instance reconciles.
    pub plan_selector: Option<String>,
}

/// A cache of `K` fed by a cluster-wide watch, and the watch stream that feeds it.
fn cache<K>(
    client: &Client,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    (store, stream)
}

/// Wait until the NodeUpdatePlan CRD is served.
async fn wait_for_crd(client: &Client) {
    let api: Api<NodeUpdatePlan> = Api::all(client.clone());
    let mut delay = Duration::from_millis(500);
    loop {
        match api.list(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => return,
            Err(e) => {
                warn!(error = %e, "NodeUpdatePlan CRD not served yet; install crds/ (retrying)");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Plans that are moving (the ones a PDB, workload or pod change can matter to).
fn moving(plans: &Store<NodeUpdatePlan>) -> Vec<ObjectRef<NodeUpdatePlan>> {
    plans
        .state()
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase);
            !phase.is_some_and(Phase::at_rest)
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Run the controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    wait_for_crd(&client).await;
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded::<ObjectRef<NodeUpdatePlan>>();
    let (nodes, node_events) = cache::<Node>(&client);
    let (pdbs, pdb_events) = cache::<PodDisruptionBudget>(&client);
    let (replica_sets, rs_events) = cache::<ReplicaSet>(&client);
    let (stateful_sets, sts_events) = cache::<StatefulSet>(&client);
    let (daemon_sets, ds_events) = cache::<DaemonSet>(&client);
    let (namespaces, ns_events) = cache::<Namespace>(&client);

    let plan_watch = match &config.plan_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let controller = Controller::new(Api::<NodeUpdatePlan>::all(client.clone()), plan_watch)
        .with_config(
            ControllerConfig::default()
                .concurrency(config.concurrency)
                .debounce(Duration::from_millis(250)),
        );
    let plans = controller.store();
    let stores = Stores {
        plans: plans.clone(),
        nodes,
        pdbs,
        replica_sets,
        stateful_sets,
        daemon_sets,
        namespaces,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        stores,
        pods: pods::PodWatches::new(client.clone(), trigger_tx),
        provisioner: Arc::new(KwokProvisioner::new(client.clone())),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "molt".into(),
                instance: Some(config.reporter),
            },
        ),
        feedback: Mutex::new(BTreeMap::new()),
        metrics: metrics.clone(),
    });
    readiness.leading(ctx.stores.clone());

    let (p1, p2, p3, p4, p5, p6) = (
        plans.clone(),
        plans.clone(),
        plans.clone(),
        plans.clone(),
        plans.clone(),
        plans.clone(),
    );
    info!("molt is running");
    controller
        .watches_stream(node_events, move |_: Node| {
            // Any node can join a pool or fail; plans are few, so all of them look.
            p1.state()
                .iter()
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(pdb_events, move |_: PodDisruptionBudget| moving(&p2))
        .watches_stream(rs_events, move |_: ReplicaSet| moving(&p3))
        .watches_stream(sts_events, move |_: StatefulSet| moving(&p4))
        .watches_stream(ds_events, move |_: DaemonSet| moving(&p5))
        .watches_stream(ns_events, move |_: Namespace| moving(&p6))
        .reconcile_on(trigger_rx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile did not complete");
            }
        })
        .await;
    info!("molt stopped");
    Ok(())
}
