//! `/healthz` (the process serves), `/readyz` (ready after the first full sync, while the
//! API's watches work and the kernel takes the rulesets; otherwise 503 and why) and
//! `/metrics` (OpenMetrics), and `/synced` (which object versions the kernel enforces).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::shared::Shared;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.not_ready() {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}

/// The digest of the object versions this node enforces (see `observed`), as JSON.
async fn synced(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(shared.synced_status())
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics.encode())
}

pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics)).route("/synced", get(synced)).with_state(shared);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the health and metrics listener stopped");
    }
}
