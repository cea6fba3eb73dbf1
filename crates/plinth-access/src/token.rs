//! API token secrets: `plinth_` and 64 hexadecimal digits (32 random bytes
//! from the operating system). Only a token's SHA-256 digest is stored: a
//! token is as random as a key, so a fast digest is enough to make the
//! stored form useless to whoever reads the database (as GitHub stores its
//! tokens), and lookups stay one indexed equality.

use plinth_model::EntityRef;
use sha2::{Digest, Sha256};

use crate::{Role, Scope, Subject};

const PREFIX: &str = "plinth_";
const HEX_DIGITS: usize = 64;

/// A new token's secret, shown once to whoever created it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A fresh secret; fails only when the operating system has no
    /// randomness to give.
    pub fn generate() -> Result<Secret, getrandom::Error> {
        let mut bytes = [0u8; HEX_DIGITS / 2];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(format!("{PREFIX}{}", hex(&bytes))))
    }

    /// The secret as the caller sends it (`Authorization: Bearer ...`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    pub fn digest(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}

/// Never printed: logs and debug output show that a secret is there, not
/// what it is.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The stored digest of a presented token, or `None` when the text is not
/// shaped like a plinth token (it cannot match any, and is not looked up).
pub fn digest_of(presented: &str) -> Option<String> {
    let digits = presented.strip_prefix(PREFIX)?;
    let shaped = digits.len() == HEX_DIGITS
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    shaped.then(|| hex(&Sha256::digest(presented.as_bytes())))
}

/// What a new token is for, checked: each error starts with the field it
/// is about (`scope: ...`), so the API and the command line can both say
/// where the mistake is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub name: String,
    pub subject: Subject,
    /// A service token's own role.
    pub role: Option<Role>,
    pub scope: Scope,
}

impl TokenSpec {
    /// `user` or `service` (with `role`) says whose token it is; neither
    /// means the caller's own, when the caller is a person.
    pub fn parse(
        name: &str,
        scope: &str,
        user: Option<&str>,
        service: Option<&str>,
        role: Option<&str>,
        caller: &Subject,
    ) -> Result<TokenSpec, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err(
                "name: give the token a name, such as the machine or job that uses it".into(),
            );
        }
        let scope = Scope::parse(scope).ok_or_else(|| {
            format!("scope: \"{scope}\" is not a scope; use read, write or admin")
        })?;
        let role = role
            .map(|r| {
                Role::parse(r).ok_or_else(|| {
                    format!("role: \"{r}\" is not a role; use viewer, developer or platform-admin")
                })
            })
            .transpose()?;
        let subject = match (user, service) {
            (Some(_), Some(_)) => return Err("user: give either user or service, not both".into()),
            (Some(user), None) => {
                let user: EntityRef = user.parse().map_err(|e| format!("user: {e}"))?;
                if user.kind() != "user" {
                    return Err(format!("user: {user} is not a User entity reference"));
                }
                Subject::User(user)
            }
            (None, Some(service)) => {
                let valid = !service.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !valid {
                    return Err("service: a name of letters, digits, '-', '_' and '.'".into());
                }
                if role.is_none() {
                    return Err(
                        "role: a service token needs a role: viewer, developer or platform-admin"
                            .into(),
                    );
                }
                Subject::Service(service.to_owned())
            }
            (None, None) => match caller {
                Subject::User(_) => caller.clone(),
                _ => {
                    return Err("user: say whose token this is: a user (user:default/name), or a service with a role".into());
                }
            },
        };
        if role.is_some() && !matches!(subject, Subject::Service(_)) {
            return Err("role: only a service token has its own role; a person's comes from the configuration".into());
        }
        Ok(TokenSpec {
            name: name.to_owned(),
            subject,
            role,
            scope,
        })
    }
}

/// A subject as stored (`user:...`, `service:...`, `local`), read back.
pub fn parse_subject(text: &str) -> Result<Subject, String> {
    match text.strip_prefix("service:") {
        Some(name) => Ok(Subject::Service(name.to_owned())),
        None if text == "local" => Ok(Subject::Local),
        None => text.parse().map(Subject::User).map_err(|e| e.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_found_by_its_digest_and_never_printed() {
        let secret = Secret::generate().unwrap();
        assert!(secret.expose().starts_with("plinth_"));
        assert_eq!(secret.expose().len(), PREFIX.len() + HEX_DIGITS);
        assert_eq!(digest_of(secret.expose()), Some(secret.digest()));
        assert_eq!(secret.digest().len(), 64);
        assert_ne!(secret.digest(), secret.expose()[PREFIX.len()..]);
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_ne!(Secret::generate().unwrap(), secret);
    }

    #[test]
    fn a_token_spec_names_the_field_of_each_mistake() {
        let me = Subject::User("user:default/ada".parse().unwrap());
        let ok = TokenSpec::parse(" laptop ", "write", None, None, None, &me).unwrap();
        assert_eq!(
            (ok.name.as_str(), &ok.subject, ok.scope, ok.role),
            ("laptop", &me, Scope::Write, None)
        );
        let ci = TokenSpec::parse(
            "ci",
            "read",
            None,
            Some("ci-bot"),
            Some("developer"),
            &Subject::Local,
        )
        .unwrap();
        assert_eq!(
            (ci.subject, ci.role),
            (Subject::Service("ci-bot".into()), Some(Role::Developer))
        );
        for (args, error) in [
            (
                ("", "read", None, None, None),
                "name: give the token a name",
            ),
            (
                ("x", "all", None, None, None),
                "scope: \"all\" is not a scope",
            ),
            (
                ("x", "read", Some("group:default/a"), None, None),
                "user: group:default/a is not a User",
            ),
            (
                (
                    "x",
                    "read",
                    Some("user:default/a"),
                    Some("s"),
                    Some("viewer"),
                ),
                "user: give either",
            ),
            (
                ("x", "read", None, Some("ci bot"), Some("viewer")),
                "service: a name of letters",
            ),
            (
                ("x", "read", None, Some("ci"), None),
                "role: a service token needs a role",
            ),
            (
                ("x", "read", None, Some("ci"), Some("root")),
                "role: \"root\" is not a role",
            ),
            (
                ("x", "read", Some("user:default/b"), None, Some("viewer")),
                "role: only a service token",
            ),
        ] {
            let (name, scope, user, service, role) = args;
            let e = TokenSpec::parse(name, scope, user, service, role, &me).unwrap_err();
            assert!(e.starts_with(error), "{e}");
        }
        let e = TokenSpec::parse("x", "read", None, None, None, &Subject::Local).unwrap_err();
        assert!(e.starts_with("user: say whose token"), "{e}");
        assert_eq!(
            parse_subject("service:ci"),
            Ok(Subject::Service("ci".into()))
        );
        assert_eq!(parse_subject("local"), Ok(Subject::Local));
        assert_eq!(parse_subject("user:default/ada"), Ok(me));
    }

    #[test]
    fn text_not_shaped_like_a_token_has_no_digest() {
        for text in [
            "",
            "plinth_",
            "plinth_abc",
            "Bearer plinth_00",
            &format!("plinth_{}", "G".repeat(64)),
            &format!("plinth_{}", "A".repeat(64)),
            &format!("other_{}", "a".repeat(64)),
            &format!("plinth_{}", "a".repeat(65)),
        ] {
            assert_eq!(digest_of(text), None, "{text:?}");
        }
        // SHA-256 of a known input (from Python's hashlib), to pin the stored form.
        let known = format!("plinth_{}", "0".repeat(64));
        assert_eq!(
            digest_of(&known).unwrap(),
            "498f6d105953b2f11e253dae77d491f3bc13968336bfe49ad75bce0fca934e2c"
        );
    }
}
