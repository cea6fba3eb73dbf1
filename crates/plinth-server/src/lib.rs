//! plinth's HTTP face: the Backstage-compatible catalog API under
//! `/api/catalog`, and the operational endpoints.
//!
//! Handlers are thin: they parse parameters into typed queries, call the
//! store or the catalog, and shape answers as Backstage does. Errors are
//! one [`ApiError`] type in Backstage's error shape.
//!
//! Architecture invariant: no domain logic here; nothing below this crate
//! knows about HTTP.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use plinth_catalog::ingest::IngestOptions;
use plinth_store::Store;
use tokio::net::TcpListener;

mod catalog;
pub mod error;
mod params;

pub use error::ApiError;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ingest: IngestOptions,
    /// Refreshes run one at a time, so two never write the same location.
    pub refresh_lock: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    pub fn new(store: Store, ingest: IngestOptions) -> AppState {
        AppState {
            store,
            ingest,
            refresh_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let catalog = Router::new()
        .route("/entities", get(catalog::get_entities))
        .route("/entities/by-query", get(catalog::query_entities))
        .route("/entities/by-refs", post(catalog::entities_by_refs))
        .route(
            "/entities/by-name/{kind}/{namespace}/{name}",
            get(catalog::entity_by_name),
        )
        .route(
            "/entities/by-uid/{uid}",
            get(catalog::entity_by_uid).delete(catalog::delete_entity_by_uid),
        )
        .route("/entity-facets", get(catalog::entity_facets))
        .route(
            "/locations",
            get(catalog::get_locations).post(catalog::add_location),
        )
        .route(
            "/locations/{id}",
            get(catalog::get_location).delete(catalog::delete_location),
        )
        .route("/locations/{id}/status", get(catalog::location_status))
        .route(
            "/locations/{id}/refresh",
            post(catalog::refresh_location_by_id),
        )
        .route(
            "/locations/by-entity/{kind}/{namespace}/{name}",
            get(catalog::location_by_entity),
        )
        .route("/refresh", post(catalog::refresh))
        .route("/validate-entity", post(catalog::validate_entity));
    Router::new()
        .nest("/api/catalog", catalog)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::from_fn(error::with_request))
        .with_state(state)
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, ApiError> {
    if state.store.ping().await {
        Ok("ready")
    } else {
        Err(ApiError::unavailable(
            "the catalog database is not available",
        ))
    }
}

/// Serves `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
