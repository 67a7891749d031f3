//! `molt run`: the health and metrics endpoints, the leader election, and the controller while
//! this replica leads.
//!
//! A replica that loses the Lease exits with an error instead of trying to carry on: its
//! caches, pod watches and in-flight reconciles belong to a term that has ended, and a fresh
//! start (the kubelet restarts it) rejoins the election cleanly. On SIGTERM the leader lets
//! in-flight reconciles finish, then releases the Lease: a released Lease is free for the next
//! replica that looks, instead of held by a process that is gone.

use crate::controller::{self, RunConfig};
use crate::http::Readiness;
use crate::leader::{Campaign, ElectionConfig, ElectionError, Fence, fenced_client};
use crate::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Everything `molt run` was told.
#[derive(Debug, Clone)]
pub struct Options {
    pub controller: RunConfig,
    pub http_addr: SocketAddr,
    /// `None`: a single replica, no election.
    pub election: Option<ElectionConfig>,
}

/// Why `molt run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build a client for the cluster: {0}")]
    Client(#[from] kube::Error),
    #[error(transparent)]
    Election(#[from] ElectionError),
    #[error("lost the leader Lease ({0}); exiting so that a fresh start rejoins the election")]
    LostLease(String),
    #[error(transparent)]
    Controller(#[from] controller::error::Error),
}

/// Run until SIGINT/SIGTERM, or until this replica loses the Lease.
pub async fn run(config: kube::Config, options: Options) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::default());
    let readiness = Readiness::default();
    let listener = tokio::net::TcpListener::bind(options.http_addr)
        .await
        .map_err(|source| Error::Listen {
            addr: options.http_addr,
            source,
        })?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let (m, r) = (metrics.clone(), readiness.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::http::serve(listener, m, r).await {
            warn!(error = %e, "the metrics and health endpoints stopped");
        }
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let Some(election) = options.election else {
        metrics.leader.set(1);
        let client = fenced_client(config, Fence::Open)?;
        controller::run(client, options.controller, metrics, readiness, stopped()).await?;
        return Ok(());
    };

    let plain = kube::Client::try_from(config.clone())?;
    let (namespace, name, identity) = (
        election.namespace.clone(),
        election.name.clone(),
        election.identity.clone(),
    );
    let campaign = Campaign::join(plain, election).await?;
    metrics.leader.set(0);
    readiness.standby();
    info!(lease = %format!("{namespace}/{name}"), %identity, "standing by for the leader Lease");
    tokio::select! {
        () = campaign.acquired() => {}
        () = stopped() => {
            campaign.resign().await;
            return Ok(());
        }
    }
    metrics.leader.set(1);
    info!(lease = %format!("{namespace}/{name}"), %identity, "leading: this replica reconciles");
    let client = fenced_client(config, campaign.fence())?;
    let outcome = tokio::select! {
        result = controller::run(client, options.controller, metrics.clone(), readiness, stopped()) => {
            result.map_err(Error::from)
        }
        why = campaign.lost() => Err(Error::LostLease(why)),
    };
    metrics.leader.set(0);
    match &outcome {
        Err(Error::LostLease(why)) => error!(reason = %why, "lost the leader Lease"),
        _ => campaign.resign().await,
    }
    outcome
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
