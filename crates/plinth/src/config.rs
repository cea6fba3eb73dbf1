//! Configuration: one typed struct, read from an optional TOML file and
//! overridden by flags and `PLINTH_*` environment variables.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plinth_catalog::ReadOptions;
use plinth_catalog::files::DEFAULT_MAX_FILE_BYTES;
use plinth_model::{Kinds, rules};
use serde::Deserialize;

use crate::cli::CatalogFlags;

/// The configuration file's contents. Unknown keys are errors, so a typo
/// never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub access: AccessConfig,
}

/// Who may call plinth, and with which role.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Callers without a token: "local" (they act as the one local user,
    /// allowed only on a loopback address) or "none" (every call needs an
    /// API token). Default: local.
    pub anonymous: Option<Anonymous>,
    /// Users and groups (entity references) whose members are platform admins.
    #[serde(default)]
    pub platform_admins: Vec<String>,
    /// Users and groups whose members may only read.
    #[serde(default)]
    pub viewers: Vec<String>,
    /// How people sign in to the portal: "oidc" (an OpenID Connect
    /// provider, set up in [access.oidc]) or "local" (accounts kept by
    /// plinth; an admin account is made at first start). Default: no sign-in.
    pub sign_in: Option<SignIn>,
    /// The OpenID Connect provider, for sign_in = "oidc".
    pub oidc: Option<OidcSettings>,
}

/// `[access.oidc]`: the provider people sign in with.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its discovery document
    /// (ISSUER/.well-known/openid-configuration) names it.
    pub issuer: Option<String>,
    /// The client id plinth is registered with at the provider.
    pub client_id: Option<String>,
    /// The client's secret; better given as PLINTH_OIDC_CLIENT_SECRET,
    /// which wins, so that it stays out of files.
    pub client_secret: Option<String>,
    /// This server's callback as registered at the provider, such as
    /// https://plinth.example.com/sign-in/oidc/callback. Default: from the
    /// host each request names.
    pub redirect_url: Option<String>,
    /// Scopes to ask for. Default: openid, email, profile.
    pub scopes: Option<Vec<String>>,
    /// The provider's name on the sign-in button. Default: "your organisation".
    pub name: Option<String>,
}

impl OidcSettings {
    fn client(
        &self,
        secret_from_env: Option<String>,
    ) -> anyhow::Result<plinth_server::oidc::OidcClient> {
        let required = |value: &Option<String>, key: &str, what: &str| {
            value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("access.oidc.{key} is missing: set it to {what}"))
        };
        let issuer = required(&self.issuer, "issuer", "the provider's issuer URL")?;
        plinth_access::oidc::check_url(&issuer)
            .map_err(|e| anyhow::anyhow!("access.oidc.issuer: {e}"))?;
        if let Some(url) = &self.redirect_url {
            plinth_access::oidc::check_url(url)
                .map_err(|e| anyhow::anyhow!("access.oidc.redirect_url: {e}"))?;
            if !url.ends_with("/sign-in/oidc/callback") {
                bail!(
                    "access.oidc.redirect_url: {url:?} must end with /sign-in/oidc/callback, where plinth receives the provider's answer"
                );
            }
        }
        let client_secret = secret_from_env
            .or_else(|| self.client_secret.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow::anyhow!("the OpenID Connect client secret is missing: set PLINTH_OIDC_CLIENT_SECRET (or access.oidc.client_secret)"))?;
        Ok(plinth_server::oidc::OidcClient::new(
            plinth_server::oidc::OidcConfig {
                issuer,
                client_id: required(
                    &self.client_id,
                    "client_id",
                    "the client id plinth is registered with at the provider",
                )?,
                client_secret,
                redirect_url: self.redirect_url.clone(),
                scopes: self
                    .scopes
                    .clone()
                    .unwrap_or_else(|| ["openid", "email", "profile"].map(String::from).to_vec()),
                name: self
                    .name
                    .clone()
                    .unwrap_or_else(|| "your organisation".into()),
            },
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SignIn {
    /// Accounts kept by plinth, passwords hashed with Argon2.
    Local,
    /// An OpenID Connect provider ([access.oidc]).
    Oidc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    /// Callers without a token act as the one local user (loopback only).
    Local,
    /// Every call needs an API token.
    None,
}

impl AccessConfig {
    /// The server's access settings; `anonymous` from the command line wins.
    pub fn resolve(
        &self,
        anonymous: Option<Anonymous>,
        sign_in: Option<SignIn>,
        oidc_secret: Option<String>,
    ) -> anyhow::Result<plinth_server::access::AccessConfig> {
        let sign_in = sign_in.or(self.sign_in);
        if self.oidc.is_some() && sign_in != Some(SignIn::Oidc) {
            bail!(
                "[access.oidc] is set but people do not sign in with it: set access.sign_in = \"oidc\" (or remove [access.oidc])"
            );
        }
        let refs = |list: &[String], key: &str| -> anyhow::Result<Vec<plinth_model::EntityRef>> {
            list.iter()
                .enumerate()
                .map(|(i, text)| {
                    let r: plinth_model::EntityRef = text.parse().map_err(|e| {
                        anyhow::anyhow!("access.{key}[{i}]: \"{text}\" is not an entity reference: {e}; write it as user:default/name or group:default/name")
                    })?;
                    if !matches!(r.kind(), "user" | "group") {
                        bail!("access.{key}[{i}]: {r} is neither a user nor a group");
                    }
                    Ok(r)
                })
                .collect()
        };
        Ok(plinth_server::access::AccessConfig {
            // With sign-in, callers identify themselves unless told otherwise.
            anonymous: anonymous
                .or(self.anonymous)
                .unwrap_or(if sign_in.is_some() {
                    Anonymous::None
                } else {
                    Anonymous::Local
                })
                == Anonymous::Local,
            sign_in: match sign_in {
                None => plinth_server::access::SignIn::Off,
                Some(SignIn::Local) => plinth_server::access::SignIn::Local,
                Some(SignIn::Oidc) => {
                    let Some(settings) = &self.oidc else {
                        bail!(
                            "access.sign_in is \"oidc\" but [access.oidc] is missing: set its issuer and client_id (and PLINTH_OIDC_CLIENT_SECRET)"
                        );
                    };
                    plinth_server::access::SignIn::Oidc(std::sync::Arc::new(
                        settings.client(oidc_secret)?,
                    ))
                }
            },
            platform_admins: refs(&self.platform_admins, "platform_admins")?,
            viewers: refs(&self.viewers, "viewers")?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Custom kinds to accept; only their envelope is checked.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Largest catalog file read: a byte count or a size such as "16MiB".
    pub max_file_size: Option<Size>,
    /// Directories that file and dir locations must stay inside. Default:
    /// the directory plinth starts in.
    #[serde(default)]
    pub allowed_roots: Vec<PathBuf>,
    /// Seconds between scheduled refreshes of every location.
    pub refresh_interval_seconds: Option<u64>,
    /// Seconds a replica holds a location's scheduled refresh without
    /// renewing it; a replica that dies leaves the job to another after this.
    pub lease_seconds: Option<u64>,
    /// What happens to entities their location no longer defines.
    #[serde(default)]
    pub orphans: Orphans,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orphans {
    /// Removed, as in Backstage since catalog-backend 3.0.
    #[default]
    Delete,
    /// Kept with the annotation backstage.io/orphan: "true".
    Keep,
}

impl From<Orphans> for plinth_store::OrphanPolicy {
    fn from(o: Orphans) -> Self {
        match o {
            Orphans::Delete => plinth_store::OrphanPolicy::Delete,
            Orphans::Keep => plinth_store::OrphanPolicy::Keep,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl Config {
    /// Reads `path`, or `./plinth.toml` when no path is given and it exists.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("plinth.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read configuration file {}", path.display()));
            }
        };
        toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), e.message())
        })
    }

    /// How to read catalog files: this configuration with `flags` on top.
    pub fn read_options(&self, flags: &CatalogFlags) -> anyhow::Result<ReadOptions> {
        let mut kinds = Vec::new();
        for (kind, source) in self
            .catalog
            .kinds
            .iter()
            .map(|k| (k, "catalog.kinds"))
            .chain(flags.kinds.iter().map(|k| (k, "--kind")))
        {
            if let Err(reason) = rules::kind(kind) {
                bail!("{source}: \"{kind}\" is not a valid kind: it {reason}");
            }
            if !kinds.contains(kind) {
                kinds.push(kind.clone());
            }
        }
        let max_file_bytes = match (&flags.max_file_size, &self.catalog.max_file_size) {
            (Some(flag), _) => parse_size(flag).context("--max-file-size")?,
            (None, Some(Size::Bytes(n))) => *n,
            (None, Some(Size::Text(t))) => parse_size(t).context("catalog.max_file_size")?,
            (None, None) => DEFAULT_MAX_FILE_BYTES,
        };
        Ok(ReadOptions {
            max_file_bytes,
            kinds: Kinds::with_declared(kinds),
            ..ReadOptions::default()
        })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// `1000`, `512KiB`, `16MiB`, `1GiB`, also `KB`/`MB`/`GB` (powers of 1000).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => bail!(
            "\"{text}\" is not a size; write a number of bytes, optionally followed by KiB, MiB or GiB, for example 16MiB"
        ),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("\"{text}\" is not a size; write a number of bytes, optionally followed by KiB, MiB or GiB, for example 16MiB"))?;
    n.checked_mul(factor).filter(|&n| n > 0).ok_or_else(|| {
        anyhow::anyhow!("\"{text}\" is not a usable size; it must be above 0 and below 16 EiB")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("2 KiB").unwrap(), 2048);
        assert_eq!(parse_size("3MB").unwrap(), 3_000_000);
        assert_eq!(
            parse_size("lots").unwrap_err().to_string(),
            "\"lots\" is not a size; write a number of bytes, optionally followed by KiB, MiB or GiB, for example 16MiB"
        );
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }
}
