//! `/metrics`, `/healthz` and `/readyz`.

use crate::controller::context::Stores;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    stores: Stores,
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

/// Ready once every cache has listed its objects.
async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    match s.stores.ready().await {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Serve on an already bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stores: Stores,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, stores });
    axum::serve(listener, app).await
}
