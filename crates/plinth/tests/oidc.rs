//! Signing in with OpenID Connect, end to end: a real provider (the
//! certified `oidc-provider` package from npm, with its own login and
//! consent pages), `plinth serve` with `access.sign_in = "oidc"`, and
//! headless Chromium clicking through both, as a person would.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::browser::Browser;
use common::{Scratch, Server, free_port, npm_package, unavailable};

const CLIENT_SECRET: &str = "a-client-secret-for-tests";

/// The provider, killed on drop.
struct Provider(Child);

impl Provider {
    fn start(dir: &std::path::Path, port: u16, redirect: &str) -> Provider {
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg(port.to_string())
            .args(["plinth", CLIENT_SECRET, redirect])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l == "listening")),
            "the OpenID Connect provider did not start"
        );
        // Read on, so the provider never writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Provider(child)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The catalog people are matched against: Amara by e-mail, in a team
/// whose parent group is the platform team (platform admins); Bo by the
/// subject annotation, with no e-mail in the catalog.
const CATALOG: &str = "apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: amara
spec:
  profile:
    email: Amara@Example.com
  memberOf: [checkout]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bo
  annotations:
    plinth.dev/oidc-subject: bo-7f3a
spec:
  memberOf: []
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: checkout
spec:
  type: team
  parent: platform
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: platform
spec:
  type: department
  children: [checkout]
";

/// Signs in at the provider's own pages as `login` (any password), and
/// gives consent when asked.
fn sign_in_at_provider(browser: &Browser, login: &str) {
    browser.click(&browser.find("#sign-in-provider"));
    let name = browser.find("input[name=login]");
    browser.type_text(&name, login);
    browser.type_text(&browser.find("input[name=password]"), "any password");
    browser.click(&browser.find("button[type=submit]"));
    // The consent page ("Continue"), once per person and client.
    browser.wait("consent or plinth", || {
        let url = browser.current_url();
        if url.contains("/interaction/") {
            let text = browser.page_text();
            if text.contains("Authorize") || text.contains("Continue") {
                browser.click(&browser.find("button[type=submit]"));
            }
            None
        } else {
            Some(())
        }
    });
}

#[test]
fn people_sign_in_with_a_real_provider_in_chromium_and_are_matched_to_catalog_users() {
    if Command::new("node").arg("--version").output().is_err() {
        return unavailable("node and npm (Debian: apt-get install nodejs npm)");
    }
    let Some(provider_dir) = npm_package(
        "oidc_provider",
        &["package.json", "package-lock.json", "provider.mjs"],
        "oidc-provider",
    ) else {
        return unavailable("npm ci of oidc-provider (no registry?)");
    };
    let Some(browser) = Browser::start() else {
        return;
    };
    let scratch = Scratch::new("oidc-e2e");
    let (provider_port, plinth_port) = (free_port(), free_port());
    let root = format!("http://127.0.0.1:{plinth_port}");
    let issuer = format!("http://127.0.0.1:{provider_port}");
    let _provider = Provider::start(
        &provider_dir,
        provider_port,
        &format!("{root}/sign-in/oidc/callback"),
    );
    std::fs::write(scratch.0.join("catalog-info.yaml"), CATALOG).unwrap();
    std::fs::write(
        scratch.0.join("plinth.toml"),
        format!(
            "[access]\nsign_in = \"oidc\"\nplatform_admins = [\"group:default/platform\"]\n\n\
             [access.oidc]\nissuer = \"{issuer}\"\nclient_id = \"plinth\"\nname = \"Test IdP\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["serve", "--listen", &format!("127.0.0.1:{plinth_port}")])
        .args(["--catalog", "catalog-info.yaml", "--data-dir", "data"])
        .current_dir(&scratch.0)
        .env_remove("PLINTH_CONFIG")
        .env("PLINTH_OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .stderr(Stdio::piped())
        .spawn()
        .expect("plinth starts");
    let server = Server::from_child(child);
    server
        .wait_for(
            &format!("plinth: people sign in with {issuer}"),
            Duration::from_secs(60),
        )
        .expect("plinth reads the provider's configuration at start");
    server.base_url();

    // A page asked for without a session leads to sign-in, to the
    // provider, and back to the page.
    browser.goto(&format!("{root}/locations"));
    browser.wait_for_url("/sign-in?next=");
    assert!(browser.page_text().contains("Sign in with Test IdP"));
    let axe = common::browser::axe();
    let mut violations = Vec::new();
    if let Some(axe) = &axe {
        violations.extend(browser.accessibility_violations(axe));
    }
    sign_in_at_provider(&browser, "amara");
    browser.wait_for_url(&format!("{root}/locations"));
    browser.find("main h1");
    browser.find_with_text("header a", "Sign out");
    // Home shows her own team.
    browser.goto(&format!("{root}/"));
    let team = browser.wait_text("section[aria-labelledby=team-h]", |t| t.contains("member"));
    assert!(
        team.contains("checkout") && team.contains("part of group:platform"),
        "{team}"
    );

    // Matched by e-mail (case aside), with groups from the catalog: the
    // parent of her team is listed as platform admins.
    browser.goto(&format!("{root}/api/identity"));
    let identity: serde_json::Value = serde_json::from_str(&browser.page_text()).unwrap();
    assert_eq!(identity["subject"], "user:default/amara", "{identity}");
    assert_eq!(identity["role"], "platform-admin", "{identity}");
    let groups = identity["groups"].to_string();
    assert!(
        groups.contains("group:default/checkout") && groups.contains("group:default/platform"),
        "{identity}"
    );
    // The sign-in is in the audit log, with the provider's subject.
    browser.goto(&format!("{root}/api/audit?action=session.create"));
    let audit: serde_json::Value = serde_json::from_str(&browser.page_text()).unwrap();
    let entry = &audit["items"][0];
    assert_eq!(entry["actor"], "user:default/amara", "{audit}");
    assert_eq!(entry["after"]["provider"], issuer.as_str(), "{audit}");
    assert_eq!(entry["after"]["subject"], "amara", "{audit}");

    // Signing out ends the session: pages lead to sign-in again.
    browser.goto(&format!("{root}/"));
    browser.click(&browser.find_with_text("header a", "Sign out"));
    browser.click(&browser.find_with_text("main button", "Sign out"));
    browser.goto(&format!("{root}/locations"));
    browser.wait_for_url("/sign-in?next=");

    // Bo is matched by the subject annotation (the catalog has no e-mail
    // for him). A fresh browser state: the provider forgets Amara.
    browser.delete_cookies();
    browser.goto(&format!("{root}/sign-in"));
    sign_in_at_provider(&browser, "bo-7f3a");
    browser.goto(&format!("{root}/api/identity"));
    let identity: serde_json::Value = serde_json::from_str(&browser.page_text()).unwrap();
    assert_eq!(identity["subject"], "user:default/bo", "{identity}");
    assert_eq!(identity["role"], "developer", "{identity}");

    // Someone the provider knows but the catalog does not: refused, told why.
    browser.delete_cookies();
    browser.goto(&format!("{root}/sign-in"));
    sign_in_at_provider(&browser, "stranger");
    let page = browser.wait_text("main", |t| t.contains("stranger@example.com"));
    assert!(page.contains("Not in the catalog"), "{page}");
    if let Some(axe) = &axe {
        violations.extend(browser.accessibility_violations(axe));
    }
    assert!(violations.is_empty(), "accessibility: {violations:?}");
    assert!(
        page.contains("no User in the catalog has spec.profile.email"),
        "{page}"
    );
    browser.goto(&format!("{root}/locations"));
    browser.wait_for_url("/sign-in?next=");

    // An e-mail the provider has not verified names no one.
    browser.delete_cookies();
    browser.goto(&format!("{root}/sign-in"));
    sign_in_at_provider(&browser, "unverified");
    let page = browser.wait_text("main", |t| t.contains("not verified"));
    assert!(page.contains("unverified@example.com"), "{page}");

    // Answers that do not belong to a sign-in this browser started.
    let (status, body) = common::http(
        &format!("{root}/sign-in/oidc/callback?code=stolen&state=guessed"),
        None,
    );
    assert_eq!(status, 400);
    assert!(
        body.as_str()
            .unwrap_or_default()
            .contains("no sign-in in progress"),
        "{body}"
    );
    let (status, body) = common::http(
        &format!(
            "{root}/sign-in/oidc/callback?error=access_denied&error_description=End-User+aborted+interaction"
        ),
        None,
    );
    assert_eq!(status, 401);
    assert!(
        body.as_str()
            .unwrap_or_default()
            .contains("access_denied: End-User aborted interaction"),
        "{body}"
    );
    // A callback with a state other than the one in the attempt's cookie.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let started = agent
        .get(format!("{root}/sign-in/oidc?next=/catalog"))
        .call()
        .unwrap();
    assert_eq!(started.status().as_u16(), 303);
    let to = started.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(&format!("{issuer}/auth?")), "{to}");
    assert!(to.contains("code_challenge_method=S256"), "{to}");
    let cookie = started.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let attempt = cookie.split(';').next().unwrap().to_owned();
    let mut wrong_state = agent
        .get(format!(
            "{root}/sign-in/oidc/callback?code=c&state=not-the-one"
        ))
        .header("cookie", &attempt)
        .call()
        .unwrap();
    assert_eq!(wrong_state.status().as_u16(), 400);
    let text = wrong_state.body_mut().read_to_string().unwrap();
    assert!(text.contains("another sign-in"), "{text}");
    // A code the provider never gave, with the right state: the provider refuses it.
    let state = attempt
        .split('=')
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let mut forged = agent
        .get(format!(
            "{root}/sign-in/oidc/callback?code=forged&state={state}"
        ))
        .header("cookie", &attempt)
        .call()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let text = forged.body_mut().read_to_string().unwrap();
    assert!(text.contains("invalid_grant"), "{text}");
}

/// Bad settings stop `plinth serve` with the key to change.
#[test]
fn bad_oidc_settings_name_what_to_change() {
    let scratch = Scratch::new("oidc-settings");
    let cases = [
        (
            "[access]\nsign_in = \"oidc\"\n",
            "",
            "[access.oidc] is missing",
        ),
        (
            "[access]\nsign_in = \"oidc\"\n[access.oidc]\nclient_id = \"plinth\"\n",
            "s",
            "access.oidc.issuer is missing",
        ),
        (
            "[access]\nsign_in = \"oidc\"\n[access.oidc]\nissuer = \"http://id.example.com\"\nclient_id = \"plinth\"\n",
            "s",
            "access.oidc.issuer: \"http://id.example.com\" is plain HTTP",
        ),
        (
            "[access]\nsign_in = \"oidc\"\n[access.oidc]\nissuer = \"https://id.example.com\"\nclient_id = \"plinth\"\n",
            "",
            "PLINTH_OIDC_CLIENT_SECRET",
        ),
        (
            "[access]\n[access.oidc]\nissuer = \"https://id.example.com\"\nclient_id = \"plinth\"\n",
            "s",
            "set access.sign_in = \"oidc\"",
        ),
        (
            "[access]\nsign_in = \"oidc\"\n[access.oidc]\nissuer = \"https://id.example.com\"\nclient_id = \"plinth\"\nredirect_url = \"https://plinth.example.com/callback\"\n",
            "s",
            "must end with /sign-in/oidc/callback",
        ),
    ];
    for (config, secret, expected) in cases {
        std::fs::write(scratch.0.join("plinth.toml"), config).unwrap();
        let run = common::plinth_env(
            &scratch.0,
            &["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"],
            &[("PLINTH_OIDC_CLIENT_SECRET", secret)],
        );
        assert_ne!(run.code, 0, "{config}");
        assert!(run.stderr.contains(expected), "{config}\n{}", run.stderr);
    }
    // A provider that answers with another issuer: refused at start.
    let provider = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = provider.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in provider.incoming().take(1) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = r#"{"issuer": "http://127.0.0.1:1/elsewhere"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    std::fs::write(
        scratch.0.join("plinth.toml"),
        format!("[access]\nsign_in = \"oidc\"\n[access.oidc]\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"plinth\"\n"),
    )
    .unwrap();
    let run = common::plinth_env(
        &scratch.0,
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"],
        &[("PLINTH_OIDC_CLIENT_SECRET", "s")],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("set access.oidc.issuer to \\\"http://127.0.0.1:1/elsewhere\\\"")
            || run
                .stderr
                .contains("set access.oidc.issuer to \"http://127.0.0.1:1/elsewhere\""),
        "{}",
        run.stderr
    );
}
