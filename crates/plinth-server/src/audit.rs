//! API tokens and the audit log, over HTTP: `/api/tokens` and `/api/audit`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_access::Action;
use plinth_access::token::{self, TokenSpec, parse_subject};
use plinth_store::{AuditQuery, NewToken};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Caller;
use crate::catalog::json_body;
use crate::params::{self, one};
use crate::{ApiError, AppState};

/// What `POST /api/tokens` takes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    name: String,
    scope: String,
    /// Days until it expires; none: until revoked.
    expires_in_days: Option<u32>,
    /// Whose token: a user (`user:default/ada`); default the caller.
    user: Option<String>,
    /// Or a service's, with `role`.
    service: Option<String>,
    role: Option<String>,
}

const TOKEN_BODY: &str = "body must be {\"name\": ..., \"scope\": \"read\"|\"write\"|\"admin\", \"expiresInDays\"?: N, \"user\"?: \"user:default/name\" | \"service\"?: \"name\", \"role\"?: \"viewer\"|\"developer\"|\"platform-admin\"}";

/// `GET /api/identity`: who the server takes the caller to be: subject,
/// role, groups and the token's scope (what `plinth login` shows).
pub async fn identity(Extension(caller): Extension<Caller>) -> Json<Value> {
    let p = &caller.principal;
    Json(json!({
        "subject": p.subject.to_string(),
        "role": p.role.as_str(),
        "groups": p.groups.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "scope": p.scope.map(|s| s.as_str()),
    }))
}

/// Creates a token for `spec`, expiring after `expires_in_days` if given:
/// the record, and the secret to hand over once.
pub async fn issue_token(
    store: &plinth_store::Store,
    spec: &TokenSpec,
    created_by: &str,
    expires_in_days: Option<u32>,
    audit: plinth_store::Audit<'_, plinth_store::TokenRecord>,
) -> Result<(plinth_store::TokenRecord, token::Secret), ApiError> {
    let secret = token::Secret::generate()
        .map_err(|e| ApiError::internal(format!("no randomness for a token: {e}")))?;
    let expires_at = expires_in_days.map(|days| {
        plinth_store::timestamp(
            std::time::SystemTime::now() + std::time::Duration::from_secs(u64::from(days) * 86_400),
        )
    });
    let record = store
        .create_token(
            &NewToken {
                name: spec.name.clone(),
                subject: spec.subject.to_string(),
                role: spec.role.map(|r| r.as_str().to_owned()),
                scope: spec.scope.as_str().to_owned(),
                digest: secret.digest(),
                created_by: created_by.to_owned(),
                expires_at,
            },
            audit,
        )
        .await?;
    Ok((record, secret))
}

/// `POST /api/tokens`: a new token, its secret in the answer and nowhere
/// else.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body, TOKEN_BODY)?;
    let spec = TokenSpec::parse(
        &body.name,
        &body.scope,
        body.user.as_deref(),
        body.service.as_deref(),
        body.role.as_deref(),
        &caller.principal.subject,
    )
    .map_err(ApiError::input)?;
    caller.allow(&Action::ManageTokens {
        subject: &spec.subject,
    })?;
    let created_by = caller.principal.subject.to_string();
    let audit = |record: &plinth_store::TokenRecord| {
        let listed = serde_json::to_value(record).unwrap_or_default();
        caller.entry("token.create", &record.id, None, Some(listed))
    };
    let (record, secret) = issue_token(
        &state.store,
        &spec,
        &created_by,
        body.expires_in_days,
        Some(&audit),
    )
    .await?;
    let mut answer = serde_json::to_value(&record).unwrap_or_default();
    answer["token"] = secret.expose().into();
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /api/tokens[?subject=]`: the caller's own tokens; a platform admin
/// sees everyone's.
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = params::pairs(raw.as_deref());
    let tokens = match one(&p, "subject") {
        Some(text) => {
            let asked =
                parse_subject(text).map_err(|e| ApiError::input(format!("subject: {e}")))?;
            caller.allow(&Action::ManageTokens { subject: &asked })?;
            state.store.tokens(Some(text)).await?
        }
        // Everyone's for a platform admin, one's own for anyone else.
        None if caller.allow(&Action::ManageEveryonesTokens).is_ok() => {
            state.store.tokens(None).await?
        }
        None => {
            let own = &caller.principal.subject;
            caller.allow(&Action::ManageTokens { subject: own })?;
            state.store.tokens(Some(&own.to_string())).await?
        }
    };
    Ok(Json(json!({ "items": tokens })))
}

/// `DELETE /api/tokens/{id}`: revoked at once, kept in the list.
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(record) = state.store.token(&id).await? else {
        return Err(ApiError::not_found(format!("no token with id {id}")));
    };
    let subject = parse_subject(&record.subject)
        .map_err(|e| ApiError::internal(format!("token {id}: subject: {e}")))?;
    caller.allow(&Action::ManageTokens { subject: &subject })?;
    let before = serde_json::to_value(&record).unwrap_or_default();
    let audit = |revoked: &plinth_store::TokenRecord| {
        let after = serde_json::to_value(revoked).unwrap_or_default();
        caller.entry("token.revoke", &id, Some(before.clone()), Some(after))
    };
    state.store.revoke_token(&id, Some(&audit)).await?;
    Ok(StatusCode::NO_CONTENT)
}

const MAX_AUDIT_PAGE: usize = 1_000;

/// The audit log's filters from query parameters (`actor`, `action`,
/// `target`, `since`, `until`, `cursor`, `limit`, `format`), as the API
/// and the portal take them; and whether JSON lines are asked for (then
/// without a limit unless one is given).
pub(crate) fn audit_query(
    p: &[(String, String)],
    page: usize,
) -> Result<(AuditQuery, bool), ApiError> {
    let text = |key: &str| one(p, key).filter(|v| !v.is_empty()).map(str::to_owned);
    let number = |key: &str| -> Result<Option<i64>, ApiError> {
        one(p, key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::input(format!("{key}: \"{v}\" is not a whole number")))
            })
            .transpose()
    };
    let jsonl = match one(p, "format") {
        None | Some("json") => false,
        Some("jsonl") => true,
        Some(other) => {
            return Err(ApiError::input(format!(
                "format: \"{other}\" is not a format; use json or jsonl"
            )));
        }
    };
    let limit = match number("limit")? {
        None if jsonl => usize::MAX,
        None => page,
        Some(n) if n >= 1 => (n as usize).min(MAX_AUDIT_PAGE),
        Some(n) => return Err(ApiError::input(format!("limit: {n} must be at least 1"))),
    };
    let query = AuditQuery {
        actor: text("actor"),
        action: text("action"),
        target: text("target"),
        since: text("since"),
        until: text("until"),
        before_id: number("cursor")?,
        limit: limit.min(i64::MAX as usize),
    };
    Ok((query, jsonl))
}

/// `GET /api/audit?actor=&action=&target=&since=&until=&cursor=&limit=&format=jsonl`:
/// newest first; `nextCursor` pages on. JSON lines (one entry a line) for
/// export.
pub async fn audit_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.allow(&Action::ReadAudit)?;
    let p = params::pairs(raw.as_deref());
    let (query, jsonl) = audit_query(&p, 100)?;
    let limit = query.limit;
    let entries = state.store.audit(&query).await?;
    if jsonl {
        let mut body = String::new();
        for e in &entries {
            body.push_str(&serde_json::to_string(e).unwrap_or_default());
            body.push('\n');
        }
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    }
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(json!({ "items": entries, "nextCursor": next })).into_response())
}
