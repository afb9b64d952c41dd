//! `--metrics ADDR`: backend-core's numbers (see `backend_core::observe`)
//! as Prometheus text on `/metrics`, and the pools' health on `/healthz`,
//! served by axum.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use backend_core::Engine;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder as the process's `metrics` recorder.
/// Call it before the engine is built: pools and rules take their metric
/// handles when they are built.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    // Histograms are kept in a window the recorder drains on upkeep.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Serves `/metrics` and `/healthz` on `addr` until the process exits.
/// Returns once the port is bound, with the address it is bound to.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    engine: Arc<Engine>,
) -> Result<SocketAddr, String> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let answer = healthz(&engine);
                async move { answer }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("metrics listener: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}

/// 200 when every pool is up (its last check succeeded and nothing since
/// found its server away); 503 naming each pool that is not.
fn healthz(engine: &Engine) -> impl IntoResponse {
    let mut failing = Vec::new();
    for p in engine.health() {
        if p.is_up() {
            continue;
        }
        let why = match (&p.away, &p.last_error) {
            (Some(away), _) => format!("server away: {away}"),
            (None, Some(e)) => format!("down: {e}"),
            (None, None) => format!("{:?}", p.state).to_lowercase(),
        };
        failing.push(format!(
            "pool {}: {why} ({} writes buffered)",
            p.pool, p.queued
        ));
    }
    if failing.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", failing.join("\n")),
        )
    }
}
