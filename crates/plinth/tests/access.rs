//! Secure defaults end to end: `plinth serve` refuses to let anonymous
//! callers in from other machines, and a server that requires tokens is
//! reached with one made by `plinth token create`.

use std::process::{Command, Stdio};

mod common;
use common::{Scratch, Server, plinth, plinth_env};

#[test]
fn anonymous_callers_are_allowed_only_on_a_loopback_address() {
    let scratch = Scratch::new("access-bind");
    let out = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(scratch.0.join("data"))
        .current_dir(&scratch.0)
        .env_remove("PLINTH_ANONYMOUS")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("listens on 0.0.0.0:"), "{err}");
    assert!(err.contains("--anonymous none"), "{err}");
    assert!(err.contains("plinth token create"), "{err}");

    // Requiring tokens, it starts on any address.
    let child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--anonymous",
            "none",
            "--data-dir",
        ])
        .arg(scratch.0.join("data"))
        .current_dir(&scratch.0)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Server::from_child(child);
    let url = server.base_url();
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
}

#[test]
fn a_server_that_requires_tokens_is_reached_with_one_from_plinth_token_create() {
    let scratch = Scratch::new("access-token");
    let data = scratch.0.join("data");
    // Every log line, to show that no secret reaches the log.
    let mut server = Server::start(
        &scratch.0,
        &data,
        &["--demo", "--anonymous", "none", "--log", "debug"],
    );
    let base = server.base_url();
    let server_url = base.trim_end_matches("/api/catalog");
    let get_keel = |env: &[(&str, &str)]| {
        plinth_env(
            &scratch.0,
            &[
                "catalog",
                "get",
                "group:default/keel",
                "--server",
                server_url,
            ],
            env,
        )
    };

    let refused = get_keel(&[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("needs an API token"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("HTTP 401"), "{}", refused.stderr);

    let data_dir = data.display().to_string();
    let create = |scope: &str, role: &str| {
        plinth(
            &scratch.0,
            &[
                "token",
                "create",
                "--data-dir",
                &data_dir,
                "--name",
                "ops",
                "--scope",
                scope,
                "--service",
                "ops",
                "--role",
                role,
            ],
        )
    };
    let bad = create("everything", "platform-admin");
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("--scope: \"everything\" is not a scope"),
        "{}",
        bad.stderr
    );

    let made = create("read", "viewer");
    assert_eq!(made.code, 0, "{}", made.stderr);
    let secret = made.stdout.trim();
    assert!(secret.starts_with("plinth_"), "{secret}");
    assert!(made.stderr.contains("shown once"), "{}", made.stderr);

    // plinth login checks a token with the server and keeps it for the
    // client commands; a token the server refuses is not kept.
    let config = scratch.0.join("config");
    let config_home = config.display().to_string();
    let home = [("XDG_CONFIG_HOME", config_home.as_str())];
    let wrong = format!("plinth_{}", "0".repeat(64));
    let refused_login = plinth_env(
        &scratch.0,
        &["login", "--server", server_url, "--token", &wrong],
        &home,
    );
    assert_eq!(refused_login.code, 1, "{}", refused_login.stderr);
    assert!(
        refused_login.stderr.contains("unknown, expired or revoked"),
        "{}",
        refused_login.stderr
    );
    assert!(!config.join("plinth/credentials.json").exists());
    let login = plinth_env(
        &scratch.0,
        &["login", "--server", server_url, "--token", secret],
        &home,
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(
        login.stderr.contains("as service:ops (viewer, read scope)"),
        "{}",
        login.stderr
    );
    let kept = config.join("plinth/credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let with_kept = get_keel(&home);
    assert_eq!(with_kept.code, 0, "{}", with_kept.stderr);
    let logout = plinth_env(&scratch.0, &["logout", "--server", server_url], &home);
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    let forgotten = get_keel(&home);
    assert!(
        forgotten.stderr.contains("HTTP 401"),
        "{}",
        forgotten.stderr
    );

    let got = plinth_env(
        &scratch.0,
        &[
            "catalog",
            "get",
            "group:default/keel",
            "--server",
            server_url,
            "--output",
            "json",
        ],
        &[("PLINTH_TOKEN", secret)],
    );
    assert_eq!(got.code, 0, "{}", got.stderr);
    let keel: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(keel["metadata"]["name"], "keel");

    // A viewer's token reads but does not write.
    let write = plinth_env(
        &scratch.0,
        &[
            "catalog",
            "refresh",
            "group:default/keel",
            "--server",
            server_url,
        ],
        &[("PLINTH_TOKEN", secret)],
    );
    assert_eq!(write.code, 1, "{}", write.stderr);
    assert!(write.stderr.contains("HTTP 403"), "{}", write.stderr);

    let listed = plinth(&scratch.0, &["token", "list", "--data-dir", &data_dir]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("service:ops") && !listed.stdout.contains(secret),
        "{}",
        listed.stdout
    );
    let id = listed
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let revoked = plinth(
        &scratch.0,
        &["token", "revoke", id, "--data-dir", &data_dir],
    );
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let after = get_keel(&[("PLINTH_TOKEN", secret)]);
    assert!(
        after.stderr.contains("unknown, expired or revoked"),
        "{}",
        after.stderr
    );
    server.kill();
    let logged: Vec<String> = server.lines.try_iter().collect();
    assert!(logged.len() > 10, "the server logged: {logged:?}");
    let digits = &secret["plinth_".len()..];
    assert!(
        logged.iter().all(|l| !l.contains(digits)),
        "a token in the log"
    );
}

#[test]
fn local_sign_in_makes_an_admin_at_first_start() {
    let scratch = Scratch::new("access-sign-in");
    let data = scratch.0.join("data");
    // Signing in identifies people, so it may listen on any address.
    let child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--sign-in",
            "local",
            "--demo",
            "--data-dir",
        ])
        .arg(&data)
        .current_dir(&scratch.0)
        .env_remove("PLINTH_ANONYMOUS")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Server::from_child(child);
    let said = server
        .wait_for(
            "plinth: made the local account admin",
            std::time::Duration::from_secs(60),
        )
        .expect("the first admin is announced");
    assert!(said.contains("initial-admin-password"), "{said}");
    let file = data.join("initial-admin-password");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(password.len(), 20);
    let base = server.base_url();
    let port = base.rsplit(':').next().unwrap().split('/').next().unwrap();
    let origin = format!("http://127.0.0.1:{port}");

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut answer = agent
        .post(format!("{origin}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("name=admin&password={password}&next=/locations").as_bytes())
        .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        303,
        "{}",
        answer.body_mut().read_to_string().unwrap()
    );
    let cookie = answer
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    let mut me = agent
        .get(format!("{origin}/api/identity"))
        .header("cookie", &session)
        .call()
        .unwrap();
    let me: serde_json::Value =
        serde_json::from_str(&me.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(me["subject"], "user:default/admin");
    assert_eq!(me["role"], "platform-admin");
    // A restart keeps the account and makes no second one.
    drop(server);
    let again = Server::start(&scratch.0, &data, &["--sign-in", "local"]);
    again.base_url();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), password);
}
