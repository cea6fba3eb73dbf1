//! OpenID Connect, as a relying party checks it: the provider's discovery
//! document, the authorization request with PKCE, the token request, and
//! the ID token's signature and claims. No I/O: the server fetches the
//! documents and calls the provider, and hands the answers here.
//!
//! What is checked follows OpenID Connect Core 1.0 §3.1.3.7 (ID token
//! validation) and RFC 7636 (PKCE, S256 only). Signatures are verified with
//! `ring` (RS256/384/512, PS256/384/512, ES256/384, EdDSA); `none` and the
//! HMAC algorithms are refused, since plinth never agreed a shared key.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How far clocks may disagree when judging `exp` and `iat`.
const LEEWAY_SECONDS: i64 = 120;

/// What went wrong, in words for the person signing in or the operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    /// The provider's discovery document or JWKS is unusable.
    #[error("the provider's {document}: {problem}")]
    Provider {
        document: &'static str,
        problem: String,
    },
    /// The provider answered the token request with an error.
    #[error("the provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token is not one plinth may accept.
    #[error("the ID token {0}")]
    IdToken(String),
    /// The ID token names a key the JWKS (as last fetched) does not hold.
    #[error("the ID token is signed with key {0:?}, which the provider's JWKS does not list")]
    UnknownKey(String),
}

/// The provider's endpoints, from `/.well-known/openid-configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// Where the person's claims are, when the ID token holds only `sub`
    /// (as the code flow allows).
    pub userinfo_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
}

impl Provider {
    /// Reads a discovery document fetched from `issuer`'s well-known URL.
    /// Its `issuer` must be the configured one exactly (Discovery §4.3),
    /// and every endpoint HTTPS unless on this machine.
    pub fn from_discovery(issuer: &str, document: &[u8]) -> Result<Provider, OidcError> {
        let problem = |problem: String| OidcError::Provider {
            document: "discovery document",
            problem,
        };
        #[derive(Deserialize)]
        struct Doc {
            issuer: Option<String>,
            authorization_endpoint: Option<String>,
            token_endpoint: Option<String>,
            jwks_uri: Option<String>,
            userinfo_endpoint: Option<String>,
            end_session_endpoint: Option<String>,
            code_challenge_methods_supported: Option<Vec<String>>,
        }
        let doc: Doc = serde_json::from_slice(document)
            .map_err(|e| problem(format!("not the JSON of an OpenID configuration: {e}")))?;
        let field = |value: Option<String>, name: &str| {
            let value = value.ok_or_else(|| problem(format!("{name} is missing")))?;
            check_url(&value).map_err(|e| problem(format!("{name}: {e}")))?;
            Ok::<_, OidcError>(value)
        };
        let said = field(doc.issuer, "issuer")?;
        if said != issuer {
            return Err(problem(format!(
                "it names its issuer {said:?}, but plinth is configured with {issuer:?}; set access.oidc.issuer to {said:?}"
            )));
        }
        if let Some(methods) = &doc.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(problem(format!(
                "it does not support PKCE with S256 (code_challenge_methods_supported: {methods:?})"
            )));
        }
        Ok(Provider {
            issuer: said,
            authorization_endpoint: field(doc.authorization_endpoint, "authorization_endpoint")?,
            token_endpoint: field(doc.token_endpoint, "token_endpoint")?,
            jwks_uri: field(doc.jwks_uri, "jwks_uri")?,
            userinfo_endpoint: doc.userinfo_endpoint.filter(|url| check_url(url).is_ok()),
            end_session_endpoint: doc
                .end_session_endpoint
                .filter(|url| check_url(url).is_ok()),
        })
    }

    /// Where to send a browser to sign in.
    pub fn authorization_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[String],
        attempt: &Attempt,
    ) -> String {
        let sep = if self.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", &scopes.join(" ")),
            ("state", &attempt.state),
            ("nonce", &attempt.nonce),
            ("code_challenge", &attempt.challenge()),
            ("code_challenge_method", "S256"),
        ];
        format!("{}{sep}{}", self.authorization_endpoint, form(&params))
    }
}

/// An issuer or endpoint URL plinth will talk to: HTTPS, or HTTP on this
/// machine only (a provider started for tests or development).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("{url:?} is not an http(s) URL"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is plain HTTP to another machine; use https:// (only a provider on this machine may use http://)"
        ))
    }
}

/// One sign-in attempt's secrets, kept by the browser (in a short-lived
/// cookie) between leaving for the provider and coming back.
#[derive(Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Sent to the provider and expected back: the answer is to this attempt.
    pub state: String,
    /// Expected in the ID token: the token was made for this attempt.
    pub nonce: String,
    /// The PKCE code verifier: only who started the attempt can redeem its code.
    pub verifier: String,
}

impl Attempt {
    /// Fresh random values (32 bytes each, base64url).
    pub fn generate() -> Result<Attempt, getrandom::Error> {
        let random = || {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map(|()| URL_SAFE_NO_PAD.encode(bytes))
        };
        Ok(Attempt {
            state: random()?,
            nonce: random()?,
            verifier: random()?,
        })
    }

    /// The S256 code challenge of the verifier.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attempt(..)")
    }
}

/// The token request for an authorization code: its form body and its
/// `Authorization` header (client_secret_basic, RFC 6749 §2.3.1).
pub fn token_request(
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> (String, String) {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ]);
    let credentials = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    (body, format!("Basic {}", STANDARD.encode(credentials)))
}

/// What the token endpoint gave for a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub id_token: String,
    /// For the UserInfo endpoint; never kept.
    pub access_token: Option<String>,
}

/// The tokens in the token endpoint's answer, or the provider's error.
pub fn tokens_of(status: u16, body: &[u8]) -> Result<Tokens, OidcError> {
    let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(error) = answer["error"].as_str() {
        let description = answer["error_description"]
            .as_str()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(OidcError::Refused(format!("{error}{description}")));
    }
    if status >= 400 {
        return Err(OidcError::Refused(format!(
            "the token endpoint answered HTTP {status}"
        )));
    }
    let id_token = answer["id_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| OidcError::Provider {
            document: "token answer",
            problem: "it holds no id_token (is the openid scope requested?)".into(),
        })?;
    Ok(Tokens {
        id_token,
        access_token: answer["access_token"].as_str().map(str::to_owned),
    })
}

/// Adds what the UserInfo endpoint says to the ID token's claims, where
/// the token is silent. Its `sub` must be the token's (Core §5.3.2), or
/// the answer is about someone else and is refused.
pub fn with_userinfo(mut claims: Claims, body: &[u8]) -> Result<Claims, OidcError> {
    let info: Value = serde_json::from_slice(body).map_err(|e| OidcError::Provider {
        document: "UserInfo answer",
        problem: format!("not JSON: {e}"),
    })?;
    if info["sub"].as_str() != Some(claims.subject.as_str()) {
        return Err(OidcError::IdToken(format!(
            "names {}, but the UserInfo endpoint answers for {}",
            claims.subject, info["sub"]
        )));
    }
    if claims.email.is_none() {
        claims.email = info["email"].as_str().map(str::to_owned);
        claims.email_verified = info["email_verified"].as_bool();
    }
    if claims.name.is_none() {
        claims.name = info["name"].as_str().map(str::to_owned);
    }
    Ok(claims)
}

/// What the ID token says about the person, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The provider's identifier for the person, unique per issuer.
    pub subject: String,
    pub email: Option<String>,
    /// `Some(false)` when the provider says the e-mail is not verified.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
}

/// What an ID token must show to be accepted.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Now, as seconds since the epoch; `None` for the system clock.
    pub now: Option<i64>,
}

/// Verifies an ID token's signature against the provider's JWKS and its
/// claims against what this attempt expects.
pub fn verify_id_token(
    token: &str,
    jwks: &[u8],
    expected: &Expected<'_>,
) -> Result<Claims, OidcError> {
    let bad = |what: &str| OidcError::IdToken(what.to_owned());
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("is not a compact JWS (three parts separated by dots)"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| bad(&format!("has a {what} that is not base64url")))
    };
    let header: Value = serde_json::from_slice(&decode(header_b64, "header")?)
        .map_err(|_| bad("has a header that is not JSON"))?;
    let alg = header["alg"].as_str().unwrap_or_default();
    let kid = header["kid"].as_str();
    let signature = decode(signature_b64, "signature")?;
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];

    let keys: Value = serde_json::from_slice(jwks).map_err(|e| OidcError::Provider {
        document: "JWKS",
        problem: format!("not JSON: {e}"),
    })?;
    let keys = keys["keys"].as_array().ok_or_else(|| OidcError::Provider {
        document: "JWKS",
        problem: "it has no keys array".into(),
    })?;
    let verifier = Verifier::for_alg(alg).ok_or_else(|| {
        bad(&format!(
            "is signed with {alg:?}, which plinth does not accept (RS256, PS256, ES256, EdDSA and their larger variants are)"
        ))
    })?;
    let usable = |k: &&Value| {
        k["kty"].as_str() == Some(verifier.kty())
            && k["use"].as_str().is_none_or(|u| u == "sig")
            && k["alg"].as_str().is_none_or(|a| a == alg)
    };
    let key = match kid {
        Some(kid) => keys
            .iter()
            .filter(usable)
            .find(|k| k["kid"].as_str() == Some(kid))
            .ok_or_else(|| OidcError::UnknownKey(kid.to_owned()))?,
        None => {
            let mut candidates = keys.iter().filter(usable);
            match (candidates.next(), candidates.next()) {
                (Some(k), None) => k,
                _ => return Err(OidcError::UnknownKey(String::new())),
            }
        }
    };
    verifier
        .verify(key, signed.as_bytes(), &signature)
        .map_err(|()| bad("has a signature that does not verify with the provider's key"))?;

    let claims: Value = serde_json::from_slice(&decode(payload_b64, "payload")?)
        .map_err(|_| bad("has a payload that is not JSON"))?;
    check_claims(&claims, expected)
}

fn check_claims(claims: &Value, expected: &Expected<'_>) -> Result<Claims, OidcError> {
    let bad = |what: String| Err(OidcError::IdToken(what));
    if claims["iss"].as_str() != Some(expected.issuer) {
        return bad(format!(
            "was issued by {}, not by {:?}",
            claims["iss"], expected.issuer
        ));
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return bad(format!(
            "is meant for {audiences:?}, not for client {:?}",
            expected.client_id
        ));
    }
    if audiences.len() > 1 && claims["azp"].as_str() != Some(expected.client_id) {
        return bad(format!(
            "has several audiences and its authorized party {} is not {:?}",
            claims["azp"], expected.client_id
        ));
    }
    let now = expected.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    match claims["exp"].as_i64() {
        Some(exp) if exp + LEEWAY_SECONDS > now => {}
        Some(_) => return bad("has expired (check that this machine's clock is right)".into()),
        None => return bad("has no expiry (exp)".into()),
    }
    if claims["iat"]
        .as_i64()
        .is_some_and(|iat| iat > now + LEEWAY_SECONDS)
    {
        return bad("was issued in the future (check that this machine's clock is right)".into());
    }
    if claims["nonce"].as_str() != Some(expected.nonce) {
        return bad("was not made for this sign-in (its nonce differs); sign in again".into());
    }
    let Some(subject) = claims["sub"].as_str().filter(|s| !s.is_empty()) else {
        return bad("names no subject (sub)".into());
    };
    Ok(Claims {
        subject: subject.to_owned(),
        email: claims["email"].as_str().map(str::to_owned),
        email_verified: claims["email_verified"].as_bool(),
        name: claims["name"].as_str().map(str::to_owned),
    })
}

/// The signature algorithms accepted, and how each reads its JWK.
enum Verifier {
    Rsa(&'static signature::RsaParameters),
    Ec(&'static signature::EcdsaVerificationAlgorithm, &'static str),
    Ed25519,
}

impl Verifier {
    fn for_alg(alg: &str) -> Option<Verifier> {
        Some(match alg {
            "RS256" => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            "RS384" => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            "RS512" => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            "PS256" => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
            "PS384" => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
            "PS512" => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
            "ES256" => Verifier::Ec(&signature::ECDSA_P256_SHA256_FIXED, "P-256"),
            "ES384" => Verifier::Ec(&signature::ECDSA_P384_SHA384_FIXED, "P-384"),
            "EdDSA" | "Ed25519" => Verifier::Ed25519,
            _ => return None,
        })
    }

    fn kty(&self) -> &'static str {
        match self {
            Verifier::Rsa(_) => "RSA",
            Verifier::Ec(..) => "EC",
            Verifier::Ed25519 => "OKP",
        }
    }

    fn verify(&self, key: &Value, message: &[u8], sig: &[u8]) -> Result<(), ()> {
        let part = |name: &str| {
            key[name]
                .as_str()
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or(())
        };
        match self {
            Verifier::Rsa(params) => signature::RsaPublicKeyComponents {
                n: part("n")?,
                e: part("e")?,
            }
            .verify(params, message, sig)
            .map_err(|_| ()),
            Verifier::Ec(alg, curve) => {
                if key["crv"].as_str() != Some(curve) {
                    return Err(());
                }
                // An uncompressed point: 0x04, x, y.
                let mut point = vec![4u8];
                point.extend(part("x")?);
                point.extend(part("y")?);
                UnparsedPublicKey::new(*alg, point)
                    .verify(message, sig)
                    .map_err(|_| ())
            }
            Verifier::Ed25519 => {
                if key["crv"].as_str() != Some("Ed25519") {
                    return Err(());
                }
                UnparsedPublicKey::new(&signature::ED25519, part("x")?)
                    .verify(message, sig)
                    .map_err(|_| ())
            }
        }
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but the unreserved characters (RFC 3986).
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://id.example.com";
    const NOW: i64 = 1_800_000_000;

    fn b64(v: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    /// A provider's ES256 key: signs tokens; its JWKS lists it as `kid`.
    struct Key {
        pair: EcdsaKeyPair,
        kid: &'static str,
    }

    impl Key {
        fn new(kid: &'static str) -> Key {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Key { pair, kid }
        }

        fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                   "x": b64(&point[1..33]), "y": b64(&point[33..65])})
        }

        fn sign(&self, header: Value, claims: &Value) -> String {
            let signed = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
            let sig = self
                .pair
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap();
            format!("{signed}.{}", b64(sig))
        }

        fn token(&self, claims: &Value) -> String {
            self.sign(json!({"alg": "ES256", "kid": self.kid}), claims)
        }
    }

    fn jwks(keys: &[&Key]) -> Vec<u8> {
        json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
            .to_string()
            .into_bytes()
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": "plinth", "sub": "248289761001", "exp": NOW + 300,
               "iat": NOW, "nonce": "n-0S6_WzA2Mj", "email": "Amara@Example.com",
               "email_verified": true, "name": "Amara"})
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            client_id: "plinth",
            nonce: "n-0S6_WzA2Mj",
            now: Some(NOW),
        }
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    #[test]
    fn a_valid_token_gives_its_claims() {
        let key = Key::new("k1");
        let other = Key::new("k2");
        let got = verify_id_token(&key.token(&claims()), &jwks(&[&other, &key]), &expected());
        assert_eq!(
            got,
            Ok(Claims {
                subject: "248289761001".into(),
                email: Some("Amara@Example.com".into()),
                email_verified: Some(true),
                name: Some("Amara".into()),
            })
        );
        // An audience list naming plinth as the authorized party.
        let many = with(claims(), "aud", json!(["plinth", "other"]));
        let many = with(many, "azp", json!("plinth"));
        assert!(verify_id_token(&key.token(&many), &jwks(&[&key]), &expected()).is_ok());
    }

    #[test]
    fn ed25519_tokens_verify() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let signed = format!(
            "{}.{}",
            b64(json!({"alg": "EdDSA"}).to_string()),
            b64(claims().to_string())
        );
        let token = format!("{signed}.{}", b64(pair.sign(signed.as_bytes())));
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key())}]});
        assert!(verify_id_token(&token, jwks.to_string().as_bytes(), &expected()).is_ok());
    }

    #[test]
    fn tokens_that_must_not_sign_anyone_in_are_refused() {
        let key = Key::new("k1");
        let keys = jwks(&[&key]);
        let refused = |token: String| verify_id_token(&token, &keys, &expected()).unwrap_err();
        let id_token = |e: OidcError, words: &str| match e {
            OidcError::IdToken(m) => assert!(m.contains(words), "{m:?} lacks {words:?}"),
            other => panic!("{other:?}, expected an ID token error about {words:?}"),
        };
        id_token(
            refused(key.token(&with(claims(), "iss", json!("https://evil.example")))),
            "issued by",
        );
        id_token(
            refused(key.token(&with(claims(), "aud", json!("someone-else")))),
            "meant for",
        );
        id_token(
            refused(key.token(&with(claims(), "aud", json!(["plinth", "other"])))),
            "authorized party",
        );
        id_token(
            refused(key.token(&with(claims(), "exp", json!(NOW - 600)))),
            "expired",
        );
        id_token(
            refused(key.token(&with(claims(), "iat", json!(NOW + 600)))),
            "future",
        );
        id_token(
            refused(key.token(&with(claims(), "nonce", json!("replayed")))),
            "nonce",
        );
        id_token(
            refused(key.token(&with(claims(), "sub", json!("")))),
            "subject",
        );
        // A payload changed after signing.
        let token = key.token(&claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(with(claims(), "sub", json!("admin")).to_string());
        parts[1] = &forged;
        id_token(refused(parts.join(".")), "signature");
        // Signed by a key the provider does not list.
        let stranger = Key::new("k1");
        id_token(refused(stranger.token(&claims())), "signature");
        assert_eq!(
            refused(Key::new("k9").token(&claims())),
            OidcError::UnknownKey("k9".into())
        );
        // No signature at all, or a shared-secret one.
        let unsigned = format!(
            "{}.{}.",
            b64(json!({"alg": "none"}).to_string()),
            b64(claims().to_string())
        );
        id_token(refused(unsigned), "\"none\"");
        id_token(
            refused(key.sign(json!({"alg": "HS256", "kid": "k1"}), &claims())),
            "HS256",
        );
        id_token(refused("not-a-token".into()), "compact JWS");
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        let attempt = Attempt {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            attempt.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let fresh = Attempt::generate().unwrap();
        assert_eq!(fresh.verifier.len(), 43);
        assert_ne!(fresh.state, fresh.nonce);
    }

    fn discovery(issuer: &str) -> Vec<u8> {
        json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/auth?tenant=a"),
               "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
               "code_challenge_methods_supported": ["S256"]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_discovery_document_must_name_the_configured_issuer_over_https() {
        let provider = Provider::from_discovery(ISSUER, &discovery(ISSUER)).unwrap();
        let attempt = Attempt {
            state: "st".into(),
            nonce: "no".into(),
            verifier: "v".repeat(43),
        };
        let url = provider.authorization_url(
            "plinth",
            "https://plinth.example.com/sign-in/oidc/callback",
            &["openid".into(), "email".into()],
            &attempt,
        );
        assert_eq!(
            url,
            format!(
                "https://id.example.com/auth?tenant=a&response_type=code&client_id=plinth&redirect_uri=https%3A%2F%2Fplinth.example.com%2Fsign-in%2Foidc%2Fcallback&scope=openid%20email&state=st&nonce=no&code_challenge={}&code_challenge_method=S256",
                attempt.challenge()
            )
        );
        let err = Provider::from_discovery("https://id.example.com/", &discovery(ISSUER))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("set access.oidc.issuer to \"https://id.example.com\""),
            "{err}"
        );
        let err =
            Provider::from_discovery("http://id.example.com", &discovery("http://id.example.com"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("use https://"), "{err}");
        assert!(
            Provider::from_discovery("http://127.0.0.1:4000", &discovery("http://127.0.0.1:4000"))
                .is_ok()
        );
        let err = Provider::from_discovery(ISSUER, b"<html>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the JSON"), "{err}");
    }

    #[test]
    fn the_token_request_authenticates_the_client_and_sends_the_verifier() {
        let (body, auth) = token_request("plinth", "s3cret:&", "https://p/cb", "c0de", "ver");
        assert_eq!(
            body,
            "grant_type=authorization_code&code=c0de&redirect_uri=https%3A%2F%2Fp%2Fcb&code_verifier=ver"
        );
        assert_eq!(
            auth,
            format!("Basic {}", STANDARD.encode("plinth:s3cret%3A%26"))
        );
        assert_eq!(
            tokens_of(200, br#"{"id_token": "a.b.c", "access_token": "at"}"#),
            Ok(Tokens {
                id_token: "a.b.c".into(),
                access_token: Some("at".into())
            })
        );
        assert_eq!(
            tokens_of(
                400,
                br#"{"error": "invalid_grant", "error_description": "grant expired"}"#
            ),
            Err(OidcError::Refused("invalid_grant (grant expired)".into()))
        );
        assert!(matches!(
            tokens_of(200, b"{}"),
            Err(OidcError::Provider { .. })
        ));
    }

    #[test]
    fn userinfo_fills_in_only_for_the_same_subject() {
        let bare = Claims {
            subject: "s1".into(),
            email: None,
            email_verified: None,
            name: None,
        };
        let info =
            br#"{"sub": "s1", "email": "a@example.com", "email_verified": false, "name": "A"}"#;
        assert_eq!(
            with_userinfo(bare.clone(), info),
            Ok(Claims {
                subject: "s1".into(),
                email: Some("a@example.com".into()),
                email_verified: Some(false),
                name: Some("A".into()),
            })
        );
        // The token's own e-mail wins.
        let own = Claims {
            email: Some("own@example.com".into()),
            email_verified: Some(true),
            ..bare.clone()
        };
        assert_eq!(with_userinfo(own.clone(), info).unwrap().email, own.email);
        let other = with_userinfo(bare, br#"{"sub": "s2", "email": "b@example.com"}"#).unwrap_err();
        assert!(other.to_string().contains("answers for \"s2\""), "{other}");
    }
}
