//! `/metrics`, `/healthz` and `/readyz`.

use crate::controller::context::Stores;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::{Arc, PoisonError, RwLock};

/// What this replica is doing, as `/readyz` reports it.
#[derive(Clone, Default)]
pub struct Readiness(Arc<RwLock<Role>>);

#[derive(Clone, Default)]
enum Role {
    #[default]
    Starting,
    Standby,
    Leading(Stores),
}

impl Readiness {
    /// Waiting for the Lease: ready, so that a rolling update of the Deployment can proceed.
    pub fn standby(&self) {
        self.set(Role::Standby);
    }

    /// Reconciling: ready once every cache has synced.
    pub fn leading(&self, stores: Stores) {
        self.set(Role::Leading(stores));
    }

    fn set(&self, role: Role) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = role;
    }

    async fn check(&self) -> Result<&'static str, String> {
        let role = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match role {
            Role::Starting => Err("starting".into()),
            Role::Standby => Ok("ok: standby, another replica holds the lease"),
            Role::Leading(stores) => stores.ready().await.map(|()| "ok"),
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

async fn render_metrics(State(s): State<AppState>) -> (StatusCode, String) {
    match s.metrics.render() {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}"),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready on standby, or once every cache has listed its objects while leading.
async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    match s.readiness.check().await {
        Ok(msg) => (StatusCode::OK, msg.into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Serve on an already bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, readiness });
    axum::serve(listener, app).await
}
