//! Signing in with an OpenID Connect provider: the authorization code flow
//! with PKCE. `/sign-in/oidc` sends the browser to the provider with a
//! fresh attempt (state, nonce, code verifier) kept in a short-lived cookie;
//! `/sign-in/oidc/callback` checks the answer against that cookie, redeems
//! the code, verifies the ID token, matches the person to a catalog User
//! and starts a session as local sign-in does.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use plinth_access::oidc::Attempt;
use plinth_store::Account;
use serde_json::json;

use super::sign_in::{over_https, safe_next, secure, start_session};
use super::{Page, PageError, cookie, encode, pairs, param};
use crate::AppState;
use crate::access::SignIn;
use crate::oidc::{OidcClient, SignInError, match_user};

/// The cookie holding an attempt while the browser is at the provider.
const ATTEMPT_COOKIE: &str = "plinth_oidc";

/// How long a person may take at the provider.
const ATTEMPT: Duration = Duration::from_secs(600);

fn client(state: &AppState) -> Result<&OidcClient, PageError> {
    match &state.access.sign_in {
        SignIn::Oidc(client) => Ok(client),
        _ => Err(PageError {
            status: StatusCode::NOT_FOUND,
            title: "Signing in with a provider is not configured".into(),
            message: "This plinth has no OpenID Connect provider: set access.sign_in = \"oidc\" and [access.oidc] in plinth.toml.".into(),
        }),
    }
}

/// This server's callback URL: configured, or from the request (behind a
/// proxy that sets `X-Forwarded-Proto`).
fn redirect_uri(client: &OidcClient, headers: &HeaderMap) -> Result<String, PageError> {
    if let Some(url) = &client.config.redirect_url {
        return Ok(url.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| PageError {
            status: StatusCode::BAD_REQUEST,
            title: "Sign-in failed".into(),
            message: "The request names no usable Host, so plinth cannot tell the provider where to send you back; set access.oidc.redirect_url.".into(),
        })?;
    let scheme = if over_https(headers) { "https" } else { "http" };
    Ok(format!("{scheme}://{host}/sign-in/oidc/callback"))
}

fn provider_error(e: SignInError) -> PageError {
    match e {
        SignInError::Provider(message) | SignInError::Unreachable(message) => {
            tracing::warn!(error = %message, "sign-in: the OpenID Connect provider failed");
            PageError {
                status: StatusCode::BAD_GATEWAY,
                title: "The sign-in provider did not answer as expected".into(),
                message: format!(
                    "{message}. Try again shortly; if it persists, the operator should check access.oidc in plinth.toml."
                ),
            }
        }
        SignInError::Rejected(message) => PageError {
            status: StatusCode::UNAUTHORIZED,
            title: "Sign-in failed".into(),
            message: format!("{message}. Sign in again."),
        },
        SignInError::Unknown(message) => PageError {
            status: StatusCode::FORBIDDEN,
            title: "Not in the catalog".into(),
            message,
        },
        SignInError::Store(e) => e.into(),
    }
}

/// `GET /sign-in/oidc?next=`: off to the provider.
pub(crate) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let client = client(&state)?;
    let p = pairs(raw.as_deref());
    let next = param(&p, "next").unwrap_or_default();
    let attempt = Attempt::generate().map_err(|_| PageError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        title: "Sign-in failed".into(),
        message: "The server has no randomness to start a sign-in with.".into(),
    })?;
    let to = client
        .authorization_url(&redirect_uri(client, &headers)?, &attempt)
        .await
        .map_err(provider_error)?;
    // `next` last: it may hold dots, the others never do (base64url).
    let kept = format!(
        "{}.{}.{}.{}",
        attempt.state,
        attempt.nonce,
        attempt.verifier,
        encode(safe_next(&next))
    );
    let cookie = format!(
        "{ATTEMPT_COOKIE}={kept}; Path=/sign-in/oidc; Max-Age={}; HttpOnly; SameSite=Lax{}",
        ATTEMPT.as_secs(),
        secure(&headers)
    );
    let mut res = Redirect::to(&to).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /sign-in/oidc/callback?code=&state=` (or `error=`): back from the
/// provider.
pub(crate) async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let cleared = format!(
        "{ATTEMPT_COOKIE}=; Path=/sign-in/oidc; Max-Age=0; HttpOnly; SameSite=Lax{}",
        secure(&headers)
    );
    let mut res = match finish(&state, peer, &headers, raw.as_deref()).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    // The attempt is used up, however it ended.
    if let Ok(v) = HeaderValue::from_str(&cleared) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn finish(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Page {
    let client = client(state)?;
    let p = pairs(raw);
    let again = |message: String| PageError {
        status: StatusCode::BAD_REQUEST,
        title: "Sign-in failed".into(),
        message: format!("{message} Start again from the sign-in page (/sign-in)."),
    };
    if let Some(error) = param(&p, "error") {
        let description = param(&p, "error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(PageError {
            status: StatusCode::UNAUTHORIZED,
            title: "Sign-in failed".into(),
            message: format!("The provider did not sign you in ({error}{description})."),
        });
    }
    let kept = cookie(headers, ATTEMPT_COOKIE).unwrap_or_default();
    let mut parts = kept.splitn(4, '.');
    let (Some(sent_state), Some(nonce), Some(verifier), Some(next)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(again(
            "This browser holds no sign-in in progress: it was started elsewhere, took longer than ten minutes, or cookies are blocked.".into(),
        ));
    };
    if param(&p, "state").as_deref() != Some(sent_state) {
        return Err(again(
            "The provider's answer is for another sign-in than this browser's.".into(),
        ));
    }
    let attempt = Attempt {
        state: sent_state.to_owned(),
        nonce: nonce.to_owned(),
        verifier: verifier.to_owned(),
    };
    // RFC 9207: a provider that names itself must be the one configured.
    if let Some(iss) = param(&p, "iss")
        && iss != client.config.issuer
    {
        return Err(again(format!(
            "The answer comes from {iss}, not from this plinth's provider."
        )));
    }
    let Some(code) = param(&p, "code").filter(|c| !c.is_empty()) else {
        return Err(again(
            "The provider's answer holds no authorization code.".into(),
        ));
    };
    let redirect = redirect_uri(client, headers)?;
    let claims = client
        .redeem(&code, &redirect, &attempt)
        .await
        .map_err(provider_error)?;
    let user = match_user(&state.store, &claims)
        .await
        .map_err(provider_error)?;
    let account = Account {
        name: format!("oidc:{}", claims.subject),
        user_ref: user.entity_ref.clone(),
        role: None,
        password_hash: String::new(),
    };
    state
        .store
        .provider_account(&account.name, &account.user_ref)
        .await?;
    let next = crate::params::decode(next);
    start_session(
        state,
        headers,
        &account,
        peer.ip().to_string(),
        json!({"provider": client.config.issuer, "subject": claims.subject, "email": claims.email}),
        &next,
    )
    .await
}
