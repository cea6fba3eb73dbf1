//! Local sign-in: the sign-in and sign-out pages, sessions in a cookie,
//! and the form token that guards the portal's forms.
//!
//! A session's cookie holds a secret (as an API token's, stored only as
//! its digest), `HttpOnly` and `SameSite=Lax`, `Secure` behind HTTPS. Five
//! failed attempts for one account name within a quarter of an hour stop
//! further attempts until the oldest of them is that old.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use plinth_access::token::Secret;
use plinth_access::{Subject, password};
use plinth_store::Account;
use serde_json::json;

use super::{Page, PageError, encode, pairs, param, render, same_origin};
use crate::AppState;
use crate::access::{Caller, SignIn};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "plinth_session";

/// How long a session lasts.
const SESSION: Duration = Duration::from_secs(12 * 3600);

/// Failed attempts for one name within [`FAILURE_WINDOW`] that stop further ones.
const MAX_FAILURES: i64 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The session secret a request's cookies carry, if any.
pub(crate) fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Where to go after signing in: only a path on this server.
pub(super) fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

fn not_configured() -> PageError {
    PageError {
        status: StatusCode::NOT_FOUND,
        title: "Signing in is not configured".into(),
        message: "Signing in is not set up on this plinth: set access.sign_in = \"oidc\" (with [access.oidc]) or \"local\" in plinth.toml.".into(),
    }
}

/// `GET /sign-in?next=`
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let p = pairs(raw.as_deref());
    let next = param(&p, "next").unwrap_or_default();
    match &state.access.sign_in {
        SignIn::Off => Err(not_configured()),
        SignIn::Local => form(&headers, safe_next(&next), "", "", StatusCode::OK),
        SignIn::Oidc(client) => {
            let ctx = json!({
                "page": {"title": "Sign in", "nav": ""},
                "provider": client.config.name,
                "start": format!("/sign-in/oidc?next={}", super::encode(safe_next(&next))),
            });
            render("sign_in.html", &ctx, &headers, None)
        }
    }
}

fn form(headers: &HeaderMap, next: &str, name: &str, error: &str, status: StatusCode) -> Page {
    let ctx = json!({
        "page": {"title": "Sign in", "nav": ""},
        "next": next,
        "name": name,
        "error": error,
    });
    let mut res = render("sign_in.html", &ctx, headers, None)?;
    *res.status_mut() = status;
    Ok(res)
}

/// `POST /sign-in` (name, password, next).
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    if !matches!(state.access.sign_in, SignIn::Local) {
        return Err(not_configured());
    }
    if !same_origin(&headers) {
        return Err(PageError {
            status: StatusCode::FORBIDDEN,
            title: "Refused".into(),
            message: "This form may only be sent from plinth's own pages.".into(),
        });
    }
    let fields = pairs(std::str::from_utf8(&body).ok());
    let field = |name: &str| param(&fields, name).unwrap_or_default();
    let (name, given, next) = (field("name"), field("password"), field("next"));
    let next = safe_next(&next).to_owned();
    let source = client.ip().to_string();
    let (failures, first) = state
        .store
        .sign_in_failures(&name, std::time::SystemTime::now() - FAILURE_WINDOW)
        .await?;
    if failures >= MAX_FAILURES {
        let wait = first
            .map(|f| format!(" (the first of them at {f})"))
            .unwrap_or_default();
        return form(
            &headers,
            &next,
            &name,
            &format!(
                "Too many failed attempts for this name: try again a quarter of an hour after the first of them{wait}."
            ),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let account = state.store.account(&name).await?;
    // Verified on a blocking thread: Argon2 takes tens of milliseconds on purpose.
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || {
        // A missing account costs the same as a wrong password: one
        // verification, against a hash made once.
        static NO_ACCOUNT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let stored = stored.unwrap_or_else(|| {
            NO_ACCOUNT
                .get_or_init(|| password::hash("no such account").unwrap_or_default())
                .clone()
        });
        password::verify(&given, &stored)
    })
    .await
    .unwrap_or(false);
    let Some(account) = account.filter(|_| matches) else {
        let forget = std::time::SystemTime::now() - FAILURE_WINDOW;
        state
            .store
            .record_sign_in_failure(&name, &source, forget)
            .await?;
        return form(
            &headers,
            &next,
            &name,
            "The name or the password is wrong.",
            StatusCode::UNAUTHORIZED,
        );
    };
    start_session(
        &state,
        &headers,
        &account,
        source,
        json!({"account": account.name}),
        &next,
    )
    .await
}

/// Starts a session for `account` (after a password or a provider said
/// who it is): stored, audited, set as a cookie, and on to `next`.
pub(super) async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    account: &Account,
    source: String,
    audited: serde_json::Value,
    next: &str,
) -> Page {
    let secret = Secret::generate().map_err(|_| PageError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        title: "No session".into(),
        message: "The server has no randomness to make a session with.".into(),
    })?;
    let csrf = Secret::generate().map(|s| s.digest()).unwrap_or_default();
    let audit = |_: &()| plinth_store::AuditEntry {
        actor: account.user_ref.clone(),
        action: "session.create".into(),
        target: account.name.clone(),
        source: source.clone(),
        before: None,
        after: Some(audited.clone()),
    };
    state
        .store
        .create_session(
            &secret.digest(),
            &account.name,
            &csrf,
            SESSION,
            Some(&audit),
        )
        .await?;
    let cookie = format!(
        "{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        secret.expose(),
        SESSION.as_secs(),
        secure(headers)
    );
    let mut res = Redirect::to(safe_next(next)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Whether the request came over HTTPS, through a proxy that says so.
pub(super) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// `; Secure` when the request came over HTTPS, where the browser must
/// never send the cookie in clear.
pub(super) fn secure(headers: &HeaderMap) -> &'static str {
    if over_https(headers) { "; Secure" } else { "" }
}

/// A form sent with a session must carry the session's form token.
pub(crate) fn check_csrf(caller: &Caller, sent: &str) -> Result<(), PageError> {
    match &caller.csrf {
        Some(expected) if expected != sent => Err(PageError {
            status: StatusCode::FORBIDDEN,
            title: "Refused".into(),
            message: "This form was not sent from a page of your session; reload the page and send it again.".into(),
        }),
        _ => Ok(()),
    }
}

/// `GET /sign-out`: a button, so that signing out is a form (a link could
/// be followed by another site).
pub(crate) async fn sign_out_page(
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
) -> Page {
    let Some(csrf) = &caller.csrf else {
        return Ok(Redirect::to("/").into_response());
    };
    let subject = match &caller.principal.subject {
        Subject::User(r) => r.to_string(),
        other => other.to_string(),
    };
    let ctx = json!({"page": {"title": "Sign out", "nav": ""}, "subject": subject, "csrf": csrf});
    render("sign_out.html", &ctx, &headers, None)
}

/// `POST /sign-out`: ends the session and clears the cookie.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let fields = pairs(std::str::from_utf8(&body).ok());
    check_csrf(&caller, &param(&fields, "csrf").unwrap_or_default())?;
    if let Some(secret) = session_secret(&headers)
        && let Some(digest) = plinth_access::token::digest_of(&secret)
    {
        state.store.delete_session(&digest).await?;
    }
    let mut res = Redirect::to("/").into_response();
    let cleared = format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        secure(&headers)
    );
    if let Ok(v) = HeaderValue::from_str(&cleared) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Where a browser without a session goes: the sign-in page, then back.
pub(crate) fn to_sign_in(path_and_query: &str) -> Response {
    Redirect::to(&format!("/sign-in?next={}", encode(path_and_query))).into_response()
}
