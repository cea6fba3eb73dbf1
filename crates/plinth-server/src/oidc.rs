//! The OpenID Connect client: talks to the provider (discovery, JWKS,
//! token endpoint) and matches the person to a catalog User. What is
//! checked lives in `plinth_access::oidc`; this module does the I/O.
//!
//! The discovery document and the JWKS are fetched when first needed and
//! kept for an hour; an ID token signed with a key not in the JWKS makes
//! one fresh fetch (the provider rotated its keys).

use std::sync::Arc;
use std::time::{Duration, Instant};

use plinth_access::oidc::{self, Attempt, Claims, Expected, OidcError, Provider};
use plinth_store::{EntityQuery, Filter, Store, StoredEntity};

/// The annotation naming a User's subject at the provider: matched before
/// the e-mail, for people whose e-mail is not in the catalog or changes.
pub const SUBJECT_ANNOTATION: &str = "plinth.dev/oidc-subject";

/// How plinth signs people in with a provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as its discovery document says.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where the provider sends people back: this server's
    /// `/sign-in/oidc/callback`. `None`: from the request's host (and
    /// `X-Forwarded-Proto`).
    pub redirect_url: Option<String>,
    /// Scopes to ask for; `openid` is always among them.
    pub scopes: Vec<String>,
    /// The provider's name on the sign-in button.
    pub name: String,
}

/// How long the discovery document and JWKS are trusted before a refetch.
const KEEP: Duration = Duration::from_secs(3600);

pub struct OidcClient {
    pub config: OidcConfig,
    agent: ureq::Agent,
    known: tokio::sync::Mutex<Option<Known>>,
}

struct Known {
    provider: Provider,
    jwks: Arc<Vec<u8>>,
    fetched: Instant,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of debug output.
        f.debug_struct("OidcClient")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in with the provider failed, for the page that says so.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The provider could not be reached or answered nonsense: the
    /// operator's or the provider's problem, not the person's.
    #[error("{0}")]
    Provider(String),
    /// The provider did not answer, or answered with a server error: worth
    /// asking again later.
    #[error("{0}")]
    Unreachable(String),
    /// The provider's answer is not one to accept.
    #[error("{0}")]
    Rejected(String),
    /// The person is known to the provider but not to the catalog.
    #[error("{0}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] plinth_store::StoreError),
}

impl OidcClient {
    pub fn new(mut config: OidcConfig) -> OidcClient {
        if !config.scopes.iter().any(|s| s == "openid") {
            config.scopes.insert(0, "openid".into());
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        OidcClient {
            config,
            agent,
            known: tokio::sync::Mutex::new(None),
        }
    }

    /// The provider's endpoints and keys, fetched when missing or old, or
    /// (`fresh_keys`) when a token names a key not seen yet.
    pub async fn provider(
        &self,
        fresh_keys: bool,
    ) -> Result<(Provider, Arc<Vec<u8>>), SignInError> {
        let mut known = self.known.lock().await;
        if let Some(k) = known.as_ref()
            && k.fetched.elapsed() < KEEP
            && !fresh_keys
        {
            return Ok((k.provider.clone(), k.jwks.clone()));
        }
        let issuer = self.config.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let document = self.fetch(&url, None).await?;
        let provider = Provider::from_discovery(&self.config.issuer, &document)
            .map_err(|e| SignInError::Provider(format!("{e} (from {url})")))?;
        let jwks = Arc::new(self.fetch(&provider.jwks_uri, None).await?);
        *known = Some(Known {
            provider: provider.clone(),
            jwks: jwks.clone(),
            fetched: Instant::now(),
        });
        Ok((provider, jwks))
    }

    /// A GET to the provider, with an `Authorization` header if given.
    async fn fetch(&self, url: &str, authorization: Option<&str>) -> Result<Vec<u8>, SignInError> {
        let agent = self.agent.clone();
        let target = url.to_owned();
        let authorization = authorization.map(str::to_owned);
        let answer = tokio::task::spawn_blocking(move || -> Result<(u16, Vec<u8>), String> {
            let mut req = agent.get(&target).header("accept", "application/json");
            if let Some(a) = &authorization {
                req = req.header("authorization", a);
            }
            answer_of(req.call())
        })
        .await
        .map_err(|e| SignInError::Provider(e.to_string()))?;
        match answer {
            Ok((200, body)) => Ok(body),
            Ok((status, _)) if status >= 500 => Err(SignInError::Unreachable(format!(
                "the provider answered HTTP {status} for {url}"
            ))),
            Ok((status, _)) => Err(SignInError::Provider(format!(
                "the provider answered HTTP {status} for {url}"
            ))),
            Err(e) => Err(SignInError::Unreachable(format!(
                "the provider did not answer at {url}: {e}"
            ))),
        }
    }

    /// Where to send a browser for this attempt.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        attempt: &Attempt,
    ) -> Result<String, SignInError> {
        let (provider, _) = self.provider(false).await?;
        Ok(provider.authorization_url(
            &self.config.client_id,
            redirect_uri,
            &self.config.scopes,
            attempt,
        ))
    }

    /// Redeems the code of `attempt` for a verified ID token's claims.
    pub async fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        attempt: &Attempt,
    ) -> Result<Claims, SignInError> {
        let (provider, jwks) = self.provider(false).await?;
        let (body, authorization) = oidc::token_request(
            &self.config.client_id,
            &self.config.client_secret,
            redirect_uri,
            code,
            &attempt.verifier,
        );
        let agent = self.agent.clone();
        let endpoint = provider.token_endpoint.clone();
        let answer = tokio::task::spawn_blocking(move || -> Result<(u16, Vec<u8>), String> {
            answer_of(
                agent
                    .post(&endpoint)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "application/json")
                    .header("authorization", &authorization)
                    .send(body.as_bytes()),
            )
        })
        .await
        .map_err(|e| SignInError::Provider(e.to_string()))?
        .map_err(|e| {
            SignInError::Unreachable(format!(
                "the provider's token endpoint {} did not answer: {e}",
                provider.token_endpoint
            ))
        })?;
        let tokens = oidc::tokens_of(answer.0, &answer.1).map_err(|e| match e {
            OidcError::Refused(_) => SignInError::Rejected(e.to_string()),
            other => SignInError::Provider(other.to_string()),
        })?;
        let expected = Expected {
            issuer: &provider.issuer,
            client_id: &self.config.client_id,
            nonce: &attempt.nonce,
            now: None,
        };
        let verified = match oidc::verify_id_token(&tokens.id_token, &jwks, &expected) {
            Err(OidcError::UnknownKey(_)) => {
                let (_, jwks) = self.provider(true).await?;
                oidc::verify_id_token(&tokens.id_token, &jwks, &expected)
            }
            other => other,
        };
        let claims = verified.map_err(rejected)?;
        // In the code flow a provider may keep the e-mail for UserInfo.
        match (
            &claims.email,
            &provider.userinfo_endpoint,
            &tokens.access_token,
        ) {
            (None, Some(endpoint), Some(access_token)) => {
                let body = self
                    .fetch(endpoint, Some(&format!("Bearer {access_token}")))
                    .await?;
                oidc::with_userinfo(claims, &body).map_err(rejected)
            }
            _ => Ok(claims),
        }
    }
}

/// A provider's answer: status and body (at most 1 MiB), or why none came.
fn answer_of(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Vec<u8>), String> {
    let mut res = sent.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = res
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

fn rejected(e: OidcError) -> SignInError {
    match e {
        OidcError::Provider { .. } => SignInError::Provider(e.to_string()),
        other => SignInError::Rejected(other.to_string()),
    }
}

/// The catalog User a person signed in as: the one annotated with their
/// subject, else the one whose `spec.profile.email` is their verified
/// e-mail. Exactly one must match.
pub async fn match_user(store: &Store, claims: &Claims) -> Result<StoredEntity, SignInError> {
    let by = |key: String, value: &str| EntityQuery {
        filter: vec![vec![
            Filter {
                key: "kind".into(),
                values: vec!["user".into()],
            },
            Filter {
                key,
                values: vec![value.to_lowercase()],
            },
        ]],
        limit: Some(10),
        ..EntityQuery::default()
    };
    // The index is case-insensitive; a subject is compared exactly.
    let annotated: Vec<StoredEntity> = store
        .query_entities(&by(
            format!("metadata.annotations.{SUBJECT_ANNOTATION}"),
            &claims.subject,
        ))
        .await?
        .entities
        .into_iter()
        .filter(|e| {
            e.body["metadata"]["annotations"][SUBJECT_ANNOTATION] == claims.subject.as_str()
        })
        .collect();
    if let Some(found) = one(
        annotated,
        &format!("{SUBJECT_ANNOTATION}: {}", claims.subject),
    )? {
        return Ok(found);
    }
    let Some(email) = &claims.email else {
        return Err(SignInError::Unknown(format!(
            "The provider gave no e-mail for you (is the email scope allowed for this client?), and no User in the catalog has the annotation {SUBJECT_ANNOTATION}: {}.",
            claims.subject
        )));
    };
    if claims.email_verified == Some(false) {
        return Err(SignInError::Unknown(format!(
            "The provider says your e-mail {email} is not verified, so it cannot name you in the catalog. Verify it with the provider, or ask a platform admin to annotate your User with {SUBJECT_ANNOTATION}: {}.",
            claims.subject
        )));
    }
    let by_email = store
        .query_entities(&by("spec.profile.email".into(), email))
        .await?
        .entities;
    match one(by_email, &format!("spec.profile.email {email}"))? {
        Some(found) => Ok(found),
        None => Err(SignInError::Unknown(format!(
            "You signed in at the provider as {email}, but no User in the catalog has spec.profile.email: {email} (or the annotation {SUBJECT_ANNOTATION}: {}). Ask a platform admin to add you to the catalog.",
            claims.subject
        ))),
    }
}

fn one(mut found: Vec<StoredEntity>, what: &str) -> Result<Option<StoredEntity>, SignInError> {
    if found.len() > 1 {
        let refs: Vec<String> = found.iter().map(|e| e.entity_ref.to_string()).collect();
        return Err(SignInError::Unknown(format!(
            "Several Users in the catalog have {what} ({}); a platform admin must leave only one.",
            refs.join(", ")
        )));
    }
    Ok(found.pop())
}
