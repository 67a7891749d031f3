//! Leader election on a `coordination.k8s.io` Lease, and the fence that keeps a replica that
//! does not lead from writing.
//!
//! Several replicas run; the one holding the Lease reconciles, the others wait.
//! kube-lease-manager acquires and renews the Lease. On top of it every request of the
//! controller passes a [`Fence`]: a write goes out only while this replica's own view of the
//! Lease names it the holder and was renewed less than the lease duration ago. A replica that
//! was frozen (a paused VM, a stalled process) and wakes after another took over therefore
//! sends no write, even before its renewal loop notices the loss. The fence closes `grace / 2`
//! before the Lease expires, so the old leader stops before the new one may start.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Where the Lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Namespace of the Lease (molt's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity in `holderIdentity` (its pod name).
    pub identity: String,
    /// How long a renewal holds the Lease.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

/// Why a configuration cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error(
        "--leader-election-renew-grace ({grace:?}) must be shorter than --leader-election-lease-duration ({duration:?})"
    )]
    GraceTooLong { duration: Duration, grace: Duration },
    #[error("cannot join the election on Lease {namespace}/{name}: {source}")]
    Join {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// A write refused because this replica does not lead.
#[derive(Debug, thiserror::Error)]
#[error("not the leader, refusing to write: {0}")]
pub struct NotLeader(pub String);

/// Decides whether this replica may write right now.
#[derive(Clone)]
pub enum Fence {
    /// No election: the only replica always writes.
    Open,
    /// Writes only while this replica's view of the Lease says it holds it.
    Lease(Arc<LeaseView>),
}

/// This replica's view of the Lease: the renewal loop's verdict and the Lease object as watched.
pub struct LeaseView {
    config: ElectionConfig,
    holding: watch::Receiver<bool>,
    lease: Store<Lease>,
}

impl Fence {
    /// Until when this replica may write, or why it may not.
    pub fn check(&self) -> Result<jiff::Timestamp, String> {
        let view = match self {
            Fence::Open => return Ok(jiff::Timestamp::MAX),
            Fence::Lease(view) => view,
        };
        let cfg = &view.config;
        if !*view.holding.borrow() {
            return Err(format!(
                "this replica does not hold the Lease {}/{}",
                cfg.namespace, cfg.name
            ));
        }
        let lease = view
            .lease
            .get(&ObjectRef::new(&cfg.name).within(&cfg.namespace))
            .ok_or_else(|| format!("the Lease {}/{} is not seen yet", cfg.namespace, cfg.name))?;
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.unwrap_or_default();
        if holder != cfg.identity {
            return Err(format!(
                "the Lease {}/{} is held by {:?}",
                cfg.namespace, cfg.name, holder
            ));
        }
        let (Some(renewed), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds) else {
            return Err("the Lease has no renewal time or duration".into());
        };
        let margin = cfg.grace / 2;
        let until = jiff::SignedDuration::try_from(Duration::from_secs(seconds.max(0) as u64))
            .ok()
            .and_then(|d| renewed.0.checked_add(d).ok())
            .and_then(|t| {
                jiff::SignedDuration::try_from(margin)
                    .ok()
                    .and_then(|m| t.checked_sub(m).ok())
            })
            .ok_or_else(|| "the Lease's renewal time is out of range".to_string())?;
        if until <= jiff::Timestamp::now() {
            return Err(format!(
                "the Lease was last renewed at {}, {seconds}s lease, and not since",
                renewed.0
            ));
        }
        Ok(until)
    }
}

/// A client whose writes pass `fence`: reads always go out, writes only while it is open.
///
/// Checked twice. A write is refused before it is queued, with a clear error; and the
/// connection tasks, which put the bytes on the wire, stop the moment they find the fence
/// closed. The second check matters for a replica frozen mid-request: when it wakes, a write
/// that passed the first check long ago is dropped with its connection instead of arriving
/// after another replica took over.
pub fn fenced_client(config: kube::Config, fence: Fence) -> Result<Client, kube::Error> {
    if matches!(fence, Fence::Open) {
        return Client::try_from(config);
    }
    let executor = FencedExecutor {
        fence: fence.clone(),
    };
    let builder = kube::client::ClientBuilder::try_from((config, executor))?;
    let layer = tower::filter::FilterLayer::new(
        move |req: http::Request<kube::client::Body>| -> Result<_, NotLeader> {
            if matches!(
                *req.method(),
                http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
            ) {
                return Ok(req);
            }
            fence.check().map(|_| req).map_err(NotLeader)
        },
    );
    Ok(builder.with_layer(&layer).build())
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Spawns the HTTP client's connection tasks so that each one ends as soon as the fence closes.
#[derive(Clone)]
struct FencedExecutor {
    fence: Fence,
}

impl hyper::rt::Executor<Task> for FencedExecutor {
    fn execute(&self, task: Task) {
        tokio::spawn(FencedTask {
            fence: self.fence.clone(),
            task,
        });
    }
}

/// A connection task that is polled only while the fence is open; once closed, the
/// connection is dropped with whatever it had not written yet.
struct FencedTask {
    fence: Fence,
    task: Task,
}

impl std::future::Future for FencedTask {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.fence.check().is_err() {
            return std::task::Poll::Ready(());
        }
        self.task.as_mut().poll(cx)
    }
}

/// This replica's part in the election: renews while it holds the Lease, waits otherwise.
pub struct Campaign {
    fence: Fence,
    holding: watch::Receiver<bool>,
    lease_changed: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    renewals: JoinHandle<()>,
    lease_watch: JoinHandle<()>,
}

impl Campaign {
    /// Join the election (creating the Lease if it does not exist yet).
    pub async fn join(client: Client, config: ElectionConfig) -> Result<Self, ElectionError> {
        if config.grace >= config.duration {
            return Err(ElectionError::GraceTooLong {
                duration: config.duration,
                grace: config.grace,
            });
        }
        let manager = LeaseManagerBuilder::new(client.clone(), &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration.as_secs().max(1))
            .with_grace(config.grace.as_secs())
            .with_field_manager(format!("molt-lease-{}", config.identity))
            .build()
            .await
            .map_err(|source| ElectionError::Join {
                namespace: config.namespace.clone(),
                name: config.name.clone(),
                source,
            })?;
        let (holding_tx, holding) = watch::channel(false);
        let (stop_tx, stop_rx) = oneshot::channel();
        let renewals = tokio::spawn(renew(manager, holding_tx, stop_rx));

        // The Lease as the API server has it, for the fence.
        let lease_changed = Arc::new(Notify::new());
        let (lease, writer) = reflector::store();
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let stream = reflector::reflector(
            writer,
            watcher(
                api,
                watcher::Config::default().fields(&format!("metadata.name={}", config.name)),
            ),
        )
        .default_backoff();
        let notify = lease_changed.clone();
        let lease_watch = tokio::spawn(async move {
            stream
                .for_each(|event| {
                    if let Err(e) = event {
                        warn!(error = %e, "watching the leader Lease failed; retrying");
                    }
                    notify.notify_waiters();
                    async {}
                })
                .await;
        });
        let fence = Fence::Lease(Arc::new(LeaseView {
            config,
            holding: holding.clone(),
            lease,
        }));
        Ok(Self {
            fence,
            holding,
            lease_changed,
            stop: Some(stop_tx),
            renewals,
            lease_watch,
        })
    }

    /// The fence the controller's client must pass.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Resolves once this replica holds the Lease and its fence is open.
    pub async fn acquired(&self) {
        self.settle(|checked| checked.is_ok().then_some(())).await
    }

    /// Resolves, with the reason, once this replica may no longer write: the Lease went to
    /// another replica, or was not renewed in time.
    pub async fn lost(&self) -> String {
        self.settle(|checked| checked.as_ref().err().cloned()).await
    }

    /// Checks the fence until `wanted` accepts the verdict, waking on what can change it: the
    /// renewal loop's verdict, the watched Lease, and the fence's own deadline.
    async fn settle<T>(&self, wanted: impl Fn(&Result<jiff::Timestamp, String>) -> Option<T>) -> T {
        loop {
            let notified = self.lease_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut holding = self.holding.clone();
            holding.borrow_and_update();
            let checked = self.fence.check();
            if let Some(v) = wanted(&checked) {
                return v;
            }
            let deadline = match &checked {
                Ok(until) => Duration::try_from(until.duration_since(jiff::Timestamp::now()))
                    .unwrap_or(Duration::ZERO),
                Err(_) => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(deadline) => {}
                changed = holding.changed() => {
                    if changed.is_err() {
                        // The renewal loop ended: only a resignation does that.
                        futures::future::pending::<()>().await;
                    }
                }
                _ = notified => {}
            }
        }
    }

    /// Stop renewing and release the Lease, so that it is free for the next replica that looks.
    pub async fn resign(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.renewals)
            .await
            .is_err()
        {
            warn!("releasing the leader Lease took too long; it expires by itself");
            self.renewals.abort();
        }
        self.lease_watch.abort();
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        self.lease_watch.abort();
    }
}

/// The renewal loop: publishes whether this replica holds the Lease until told to stop, then
/// releases it.
async fn renew(
    manager: LeaseManager,
    holding: watch::Sender<bool>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            changed = manager.changed() => match changed {
                Ok(now_holding) => {
                    info!(leader = now_holding, "leader election: lease state changed");
                    let _ = holding.send(now_holding);
                }
                Err(e) => {
                    warn!(error = %e, "leader election: cannot reach the Lease; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    let _ = holding.send(false);
    match manager.release().await {
        Ok(()) => info!("leader election: Lease released"),
        Err(e) => {
            warn!(error = %e, "leader election: cannot release the Lease; it expires by itself")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::runtime::watcher::Event;

    fn config() -> ElectionConfig {
        ElectionConfig {
            namespace: "molt-system".into(),
            name: "molt".into(),
            identity: "molt-a".into(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(4),
        }
    }

    fn lease(holder: &str, renewed_secs_ago: i64) -> Lease {
        Lease {
            metadata: kube::api::ObjectMeta {
                name: Some("molt".into()),
                namespace: Some("molt-system".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago),
                )),
                ..Default::default()
            }),
        }
    }

    /// A fence over `lease`, with the renewal loop's verdict `holding`.
    fn fence(holding: bool, lease: Option<Lease>) -> (Fence, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(holding);
        let (store, mut writer) = reflector::store();
        if let Some(l) = lease {
            writer.apply_watcher_event(&Event::Apply(l));
        }
        let f = Fence::Lease(Arc::new(LeaseView {
            config: config(),
            holding: rx,
            lease: store,
        }));
        (f, tx)
    }

    #[test]
    fn the_holder_of_a_fresh_lease_may_write_until_shortly_before_expiry() {
        let (f, _tx) = fence(true, Some(lease("molt-a", 2)));
        let until = f.check().unwrap();
        // renewed 2 s ago + 15 s lease - 2 s margin (grace / 2): about 11 s from now.
        let left = until.duration_since(jiff::Timestamp::now()).as_secs_f64();
        assert!((10.0..=11.5).contains(&left), "{left}");
    }

    #[test]
    fn a_replica_that_is_not_the_holder_may_not_write() {
        let (f, _tx) = fence(true, Some(lease("molt-b", 1)));
        assert!(f.check().unwrap_err().contains("held by \"molt-b\""));
        let (f, _tx) = fence(false, Some(lease("molt-a", 1)));
        assert!(f.check().unwrap_err().contains("does not hold"));
        let (f, _tx) = fence(true, None);
        assert!(f.check().unwrap_err().contains("not seen yet"));
    }

    #[test]
    fn a_leader_that_missed_its_renewals_may_not_write() {
        // Frozen for 14 s: the Lease has not expired yet, but is within the margin.
        let (f, _tx) = fence(true, Some(lease("molt-a", 14)));
        assert!(f.check().unwrap_err().contains("not since"));
        let (f, _tx) = fence(true, Some(lease("molt-a", 60)));
        assert!(f.check().is_err());
    }

    #[test]
    fn losing_the_renewal_verdict_closes_the_fence_at_once() {
        let (f, tx) = fence(true, Some(lease("molt-a", 0)));
        assert!(f.check().is_ok());
        tx.send(false).unwrap();
        assert!(f.check().is_err());
    }

    /// The fenced client refuses writes before they leave the process; reads are not refused.
    #[tokio::test]
    async fn the_fenced_client_sends_reads_and_refuses_writes() {
        let (f, _tx) = fence(true, Some(lease("molt-b", 0)));
        // Nothing listens there: a request that goes out fails to connect.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = fenced_client(config, f).unwrap();
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
        let read = nodes.get("n1").await.unwrap_err().to_string();
        assert!(!read.contains("not the leader"), "{read}");
        let write = nodes
            .patch(
                "n1",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"unschedulable": true}})),
            )
            .await
            .unwrap_err();
        let text = format!("{write} {:?}", std::error::Error::source(&write));
        assert!(text.contains("not the leader"), "{text}");
    }

    #[test]
    fn a_connection_task_runs_only_while_the_fence_is_open() {
        use futures::FutureExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        let run = |fence: Fence| {
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let task = FencedTask {
                fence,
                task: Box::pin(async move { flag.store(true, Ordering::SeqCst) }),
            };
            assert_eq!(task.now_or_never(), Some(()));
            ran.load(Ordering::SeqCst)
        };
        let (open, tx) = fence(true, Some(lease("molt-a", 0)));
        assert!(run(open.clone()), "an open fence lets the connection work");
        tx.send(false).unwrap();
        assert!(!run(open), "a closed fence drops the connection unpolled");
    }

    #[test]
    fn an_open_fence_never_closes() {
        assert!(Fence::Open.check().is_ok());
    }
}
