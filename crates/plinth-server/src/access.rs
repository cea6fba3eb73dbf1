//! Who is calling, and what they may do: every request but the probes
//! gets a [`Caller`] here, from an API token (`Authorization: Bearer`) or,
//! when plinth runs for one person on their own machine, as the local
//! user. The rules are `plinth_access`'s; handlers describe the action and
//! record what they changed in the audit log.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use plinth_access::{Action, Principal, Role, Scope, Subject, authorize, token};
use plinth_model::EntityRef;
use plinth_store::{AuditEntry, TokenRecord};
use serde_json::Value;

use crate::{ApiError, AppState};

/// How callers are identified and which roles they get.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// Callers without a token act as the local user (platform admin):
    /// one person on their own machine. `plinth serve` allows it only on a
    /// loopback address.
    pub anonymous: bool,
    /// Users and groups whose members are platform admins.
    pub platform_admins: Vec<EntityRef>,
    /// Users and groups whose members may only read.
    pub viewers: Vec<EntityRef>,
    /// How people sign in to the portal, if they do.
    pub sign_in: SignIn,
}

/// How people sign in to the portal (`/sign-in`); either way they are then
/// kept in sessions.
#[derive(Debug, Clone, Default)]
pub enum SignIn {
    /// No one signs in: API tokens, or the local user.
    #[default]
    Off,
    /// Accounts kept by plinth, with passwords.
    Local,
    /// An OpenID Connect provider.
    Oidc(std::sync::Arc<crate::oidc::OidcClient>),
}

impl SignIn {
    pub fn on(&self) -> bool {
        !matches!(self, SignIn::Off)
    }
}

impl Default for AccessConfig {
    fn default() -> AccessConfig {
        AccessConfig {
            anonymous: true,
            platform_admins: Vec::new(),
            viewers: Vec::new(),
            sign_in: SignIn::Off,
        }
    }
}

impl AccessConfig {
    /// A person's role: platform admin or viewer when they or one of their
    /// groups is listed (admin first), developer otherwise.
    fn role_of(&self, user: &EntityRef, groups: &BTreeSet<EntityRef>) -> Role {
        let listed = |list: &[EntityRef]| list.iter().any(|r| r == user || groups.contains(r));
        if listed(&self.platform_admins) {
            Role::PlatformAdmin
        } else if listed(&self.viewers) {
            Role::Viewer
        } else {
            Role::Developer
        }
    }
}

/// The caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The client's address, for the audit log.
    pub source: String,
    /// A signed-in session's form token, which the portal's forms must
    /// carry back; `None` for tokens and the local user.
    pub csrf: Option<String>,
}

impl Caller {
    /// Allowed, or 403 with the rules' reason.
    pub fn allow(&self, action: &Action<'_>) -> Result<(), ApiError> {
        authorize(&self.principal, action).map_err(|denied| ApiError::forbidden(denied.0))
    }

    /// The audit log entry of a change this caller makes; the store writes
    /// it in the change's own transaction.
    pub fn entry(
        &self,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.principal.subject.to_string(),
            action: action.into(),
            target: target.into(),
            source: self.source.clone(),
            before,
            after,
        }
    }
}

/// Paths any client may call without identifying: probes, metrics, the
/// sign-in pages and the portal's static files.
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/sign-in")
        || path.starts_with("/sign-in/")
        || path.starts_with("/assets/")
}

/// Finds the caller of every request (see the module's documentation).
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let presented = match req.headers().get(axum::http::header::AUTHORIZATION) {
        None => None,
        Some(value) => match value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            Some(token) => Some(token.trim().to_owned()),
            None => {
                return ApiError::unauthenticated(
                    "the Authorization header must be \"Bearer <token>\", with a token from plinth token create",
                )
                .into_response();
            }
        },
    };
    // A signed-in session, when no token is presented.
    let session = match (&presented, state.access.sign_in.on()) {
        (None, true) => match crate::portal::session_secret(req.headers()) {
            Some(secret) => match session_of(&state, &secret).await {
                Ok(found) => found,
                Err(e) => return e.into_response(),
            },
            None => None,
        },
        _ => None,
    };
    if let Some((principal, csrf)) = session {
        req.extensions_mut().insert(Caller {
            principal,
            source,
            csrf: Some(csrf),
        });
        return next.run(req).await;
    }
    let principal = match presented {
        Some(secret) => match principal_of_token(&state, &secret).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return ApiError::unauthenticated(
                    "the API token is unknown, expired or revoked; create a new one with plinth token create",
                )
                .into_response();
            }
            Err(e) => return e.into_response(),
        },
        None if state.access.anonymous => Principal::local(),
        None if public(req.uri().path()) => {
            return next.run(req).await;
        }
        None if state.access.sign_in.on() && !req.uri().path().starts_with("/api/") => {
            let wanted = req.uri().path_and_query().map_or("/", |p| p.as_str());
            return crate::portal::to_sign_in(wanted);
        }
        None if !req.uri().path().starts_with("/api/") => {
            // A person in a browser: a page, not JSON.
            return crate::portal::unauthenticated(
                "This plinth requires an API token for every call, and signing in is not set up here (access.sign_in = \"oidc\" or \"local\" in plinth.toml). Use the API or the plinth CLI with a token (plinth token create makes one).",
            );
        }
        None => {
            return ApiError::unauthenticated(
                "this plinth needs an API token: send Authorization: Bearer <token> (plinth token create makes one)",
            )
            .into_response();
        }
    };
    req.extensions_mut().insert(Caller {
        principal,
        source,
        csrf: None,
    });
    next.run(req).await
}

/// The principal of a live session and its form token.
async fn session_of(
    state: &AppState,
    secret: &str,
) -> Result<Option<(Principal, String)>, ApiError> {
    let Some(digest) = token::digest_of(secret) else {
        return Ok(None);
    };
    let Some(session) = state.store.session(&digest).await? else {
        return Ok(None);
    };
    let user: EntityRef =
        session.account.user_ref.parse().map_err(|e| {
            ApiError::internal(format!("account {}: user: {e}", session.account.name))
        })?;
    let groups = groups_of(state, &user).await?;
    let role = match session.account.role.as_deref().and_then(Role::parse) {
        Some(role) => role,
        None => state.access.role_of(&user, &groups),
    };
    let principal = Principal {
        subject: Subject::User(user),
        role,
        groups,
        scope: None,
    };
    Ok(Some((principal, session.csrf)))
}

async fn principal_of_token(state: &AppState, secret: &str) -> Result<Option<Principal>, ApiError> {
    let Some(digest) = token::digest_of(secret) else {
        return Ok(None);
    };
    let Some(record) = state.store.token_by_digest(&digest).await? else {
        return Ok(None);
    };
    principal_of(state, &record).await.map(Some)
}

/// The principal a token stands for, with its scope as the cap.
async fn principal_of(state: &AppState, record: &TokenRecord) -> Result<Principal, ApiError> {
    let scope = Scope::parse(&record.scope).unwrap_or(Scope::Read);
    if let Some(name) = record.subject.strip_prefix("service:") {
        return Ok(Principal {
            subject: Subject::Service(name.to_owned()),
            role: record
                .role
                .as_deref()
                .and_then(Role::parse)
                .unwrap_or(Role::Viewer),
            groups: BTreeSet::new(),
            scope: Some(scope),
        });
    }
    let user: EntityRef = record
        .subject
        .parse()
        .map_err(|e| ApiError::internal(format!("token {}: subject: {e}", record.id)))?;
    let groups = groups_of(state, &user).await?;
    Ok(Principal {
        role: state.access.role_of(&user, &groups),
        subject: Subject::User(user),
        groups,
        scope: Some(scope),
    })
}

/// A user's groups from the catalog: those they are a member of, and
/// their parents up the tree.
async fn groups_of(state: &AppState, user: &EntityRef) -> Result<BTreeSet<EntityRef>, ApiError> {
    Ok(state
        .store
        .groups_of(user)
        .await?
        .iter()
        .filter_map(|g| g.parse().ok())
        .collect())
}

/// The owners an entity names (its `ownedBy` relations).
pub fn owners(relations: &[(String, String)]) -> Vec<EntityRef> {
    relations
        .iter()
        .filter(|(t, _)| t == "ownedBy")
        .filter_map(|(_, target)| target.parse().ok())
        .collect()
}
