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
use axum::routing::{MethodRouter, delete, get, post, put};
use plinth_catalog::ingest::IngestOptions;
use plinth_store::Store;
use tokio::net::TcpListener;

pub mod access;
pub mod audit;
mod catalog;
pub mod error;
pub mod metrics;
pub mod oidc;
mod params;
mod portal;

pub use error::ApiError;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ingest: IngestOptions,
    /// Refreshes run one at a time, so two never write the same location.
    pub refresh_lock: Arc<tokio::sync::Mutex<()>>,
    pub metrics: Arc<metrics::Metrics>,
    /// How callers are identified and which roles they get.
    pub access: Arc<access::AccessConfig>,
}

impl AppState {
    pub fn new(store: Store, ingest: IngestOptions) -> AppState {
        AppState {
            store,
            ingest,
            refresh_lock: Arc::new(tokio::sync::Mutex::new(())),
            metrics: Arc::default(),
            access: Arc::default(),
        }
    }

    /// The same state with callers identified as `access` says.
    pub fn with_access(self, access: access::AccessConfig) -> AppState {
        AppState {
            access: Arc::new(access),
            ..self
        }
    }

    /// Refreshes one location now, one refresh at a time, counted and timed.
    /// Every refresh goes through here: API calls and the schedule alike.
    pub async fn refresh(
        &self,
        location: &plinth_store::Location,
    ) -> Result<plinth_catalog::ingest::RefreshReport, plinth_catalog::ingest::IngestError> {
        self.refresh_with(location, None, None).await
    }

    /// [`AppState::refresh`] asked for by a caller: `audit` makes the audit
    /// log entry, written in the refresh's own transaction.
    pub async fn refresh_audited(
        &self,
        location: &plinth_store::Location,
        audit: plinth_store::RefreshAudit,
    ) -> Result<plinth_catalog::ingest::RefreshReport, plinth_catalog::ingest::IngestError> {
        self.refresh_with(location, None, Some(audit)).await
    }

    /// Refreshes only the file `path` of `location` when that file can
    /// answer for itself (see `plinth_catalog::ingest::refresh_file`),
    /// else the whole location; audited either way.
    pub async fn refresh_file_audited(
        &self,
        location: &plinth_store::Location,
        path: &str,
        audit: plinth_store::RefreshAudit,
    ) -> Result<plinth_catalog::ingest::RefreshReport, plinth_catalog::ingest::IngestError> {
        let audit = {
            let _guard = self.refresh_lock.lock().await;
            let started = std::time::Instant::now();
            match plinth_catalog::ingest::refresh_file(
                &self.store,
                location,
                path,
                &self.ingest,
                audit,
            )
            .await
            {
                Ok(Ok(report)) => {
                    self.record(started.elapsed(), Some(&report));
                    return Ok(report);
                }
                Ok(Err(audit)) => audit,
                Err(e) => {
                    self.record(started.elapsed(), None);
                    return Err(e);
                }
            }
        };
        self.refresh_audited(location, audit).await
    }

    /// [`AppState::refresh`] as a scheduled job under `lease` (see
    /// `plinth_store::Lease`): written only while the lease holds.
    pub async fn refresh_leased(
        &self,
        location: &plinth_store::Location,
        lease: &plinth_store::Lease,
    ) -> Result<plinth_catalog::ingest::RefreshReport, plinth_catalog::ingest::IngestError> {
        self.refresh_with(location, Some(lease), None).await
    }

    async fn refresh_with(
        &self,
        location: &plinth_store::Location,
        lease: Option<&plinth_store::Lease>,
        audit: Option<plinth_store::RefreshAudit>,
    ) -> Result<plinth_catalog::ingest::RefreshReport, plinth_catalog::ingest::IngestError> {
        use plinth_catalog::ingest::{
            refresh_location, refresh_location_audited, refresh_location_leased,
        };
        let _guard = self.refresh_lock.lock().await;
        let started = std::time::Instant::now();
        let result = match (lease, audit) {
            (Some(lease), _) => {
                refresh_location_leased(&self.store, location, &self.ingest, lease).await
            }
            (None, Some(audit)) => {
                refresh_location_audited(&self.store, location, &self.ingest, audit).await
            }
            (None, None) => refresh_location(&self.store, location, &self.ingest).await,
        };
        self.record(started.elapsed(), result.as_ref().ok());
        result
    }

    /// Counts a refresh in the metrics; `None` when it failed.
    fn record(
        &self,
        took: std::time::Duration,
        report: Option<&plinth_catalog::ingest::RefreshReport>,
    ) {
        match report {
            Some(report) => {
                let outcome = match report.outcome {
                    plinth_store::RefreshOutcome::Ok => "ok",
                    plinth_store::RefreshOutcome::Problems(_) => "problems",
                    plinth_store::RefreshOutcome::Failed(_) => "failed",
                };
                self.metrics
                    .refresh(outcome, took, Some(&report.summary), report.findings.len());
            }
            None => self.metrics.refresh("error", took, None, 0),
        }
    }
}

/// Every route: method, path, handler. The router is built from this list,
/// and a test checks it against the OpenAPI document route by route.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/api/catalog/entities", get(catalog::get_entities)),
        (
            "GET",
            "/api/catalog/entities/by-query",
            get(catalog::query_entities),
        ),
        (
            "POST",
            "/api/catalog/entities/by-query",
            post(catalog::query_entities_by_predicate),
        ),
        (
            "POST",
            "/api/catalog/entities/by-refs",
            post(catalog::entities_by_refs),
        ),
        (
            "GET",
            "/api/catalog/entities/by-name/{kind}/{namespace}/{name}",
            get(catalog::entity_by_name),
        ),
        (
            "GET",
            "/api/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry",
            get(catalog::entity_ancestry),
        ),
        (
            "GET",
            "/api/catalog/entities/by-uid/{uid}",
            get(catalog::entity_by_uid),
        ),
        (
            "DELETE",
            "/api/catalog/entities/by-uid/{uid}",
            delete(catalog::delete_entity_by_uid),
        ),
        (
            "GET",
            "/api/catalog/entity-facets",
            get(catalog::entity_facets),
        ),
        (
            "POST",
            "/api/catalog/entity-facets",
            post(catalog::entity_facets_by_predicate),
        ),
        ("GET", "/api/catalog/locations", get(catalog::get_locations)),
        (
            "POST",
            "/api/catalog/locations",
            post(catalog::add_location),
        ),
        (
            "POST",
            "/api/catalog/locations/by-query",
            post(catalog::query_locations),
        ),
        (
            "GET",
            "/api/catalog/locations/{id}",
            get(catalog::get_location),
        ),
        (
            "PUT",
            "/api/catalog/locations/{id}",
            put(catalog::update_location),
        ),
        (
            "DELETE",
            "/api/catalog/locations/{id}",
            delete(catalog::delete_location),
        ),
        (
            "GET",
            "/api/catalog/locations/{id}/status",
            get(catalog::location_status),
        ),
        (
            "POST",
            "/api/catalog/locations/{id}/refresh",
            post(catalog::refresh_location_by_id),
        ),
        (
            "GET",
            "/api/catalog/locations/by-entity/{kind}/{namespace}/{name}",
            get(catalog::location_by_entity),
        ),
        ("POST", "/api/catalog/refresh", post(catalog::refresh)),
        (
            "POST",
            "/api/catalog/analyze-location",
            post(catalog::analyze_location),
        ),
        (
            "POST",
            "/api/catalog/validate-entity",
            post(catalog::validate_entity),
        ),
        ("GET", "/api/search", get(catalog::search)),
        ("GET", "/api/identity", get(audit::identity)),
        ("GET", "/api/tokens", get(audit::list_tokens)),
        ("POST", "/api/tokens", post(audit::create_token)),
        ("DELETE", "/api/tokens/{id}", delete(audit::revoke_token)),
        ("GET", "/api/audit", get(audit::audit_log)),
        ("GET", "/api/openapi.json", get(openapi)),
        ("GET", "/healthz", get(|| async { "ok" })),
        ("GET", "/readyz", get(readyz)),
        ("GET", "/metrics", get(metrics_text)),
    ]
}

/// The OpenAPI 3.1 document of every route.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// Largest request body: as large as the largest catalog file read by
/// default (an entity to validate may carry its whole API definition);
/// more is refused before it is read into memory.
pub const BODY_LIMIT: usize = 16 << 20;

/// All routes, with Backstage's error shape on every error.
pub fn router(state: AppState) -> Router {
    let mut by_path: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for (_, path, handler) in routes() {
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(handler),
            None => by_path.push((path, handler)),
        }
    }
    by_path
        .into_iter()
        .fold(portal::routes(), |r, (path, handler)| {
            r.route(path, handler)
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::identify,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::with_request))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn metrics_text(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let entities = state
        .store
        .entity_count()
        .await
        .map_or(f64::NAN, |n| n as f64);
    let body = state.metrics.render(&[(
        "plinth_catalog_entities",
        "Entities in the catalog.",
        entities,
    )]);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
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
    // The client's address reaches handlers for the audit log.
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
