//! `plinth login` and `plinth logout`: a token per server, kept in the
//! user's configuration directory for the client commands.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ServerArgs;

/// `$XDG_CONFIG_HOME/plinth/credentials.json`, or under `~/.config`.
fn credentials_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME")
                .context("no HOME to keep credentials under; set XDG_CONFIG_HOME")?,
        )
        .join(".config"),
    };
    Ok(base.join("plinth").join("credentials.json"))
}

/// Server URL to token.
type Credentials = BTreeMap<String, String>;

fn key(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

fn read() -> anyhow::Result<Credentials> {
    let path = credentials_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not plinth's credentials; remove it and log in again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Written whole to a new file readable only by the user, then renamed
/// over the old one: never a half-written or world-readable secret.
fn write(credentials: &Credentials) -> anyhow::Result<PathBuf> {
    let path = credentials_path()?;
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let temporary = dir.join(format!(".credentials.{}.json", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(serde_json::to_string_pretty(credentials)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The token `plinth login` kept for `server`, if any.
pub fn kept_token(server: &str) -> Option<String> {
    read().ok()?.remove(&key(server))
}

pub fn login(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let token = match &args.token {
        Some(t) => t.trim().to_owned(),
        None => {
            eprintln!(
                "plinth: paste the API token for {} and press enter:",
                args.server
            );
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    if token.is_empty() {
        anyhow::bail!("no token given: pass --token, PLINTH_TOKEN, or paste it on standard input");
    }
    let identity = super::catalog_client::identity(&args.server, &token)?;
    let Some(identity) = identity else {
        return Ok(ExitCode::from(1));
    };
    let mut credentials = read()?;
    credentials.insert(key(&args.server), token);
    let path = write(&credentials)?;
    eprintln!(
        "plinth: logged in to {} as {} ({}, {} scope); the token is kept in {}",
        key(&args.server),
        identity["subject"].as_str().unwrap_or("?"),
        identity["role"].as_str().unwrap_or("?"),
        identity["scope"].as_str().unwrap_or("no"),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn logout(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let mut credentials = read()?;
    if credentials.remove(&key(&args.server)).is_none() {
        eprintln!("plinth: no token kept for {}", key(&args.server));
        return Ok(ExitCode::SUCCESS);
    }
    write(&credentials)?;
    eprintln!("plinth: forgot the token for {}", key(&args.server));
    Ok(ExitCode::SUCCESS)
}
