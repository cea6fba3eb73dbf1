//! The portal through a real socket: HTML snapshots of the main pages
//! against `plinth serve --demo`, and end-to-end flows in real headless
//! Chromium (WebDriver), which also take the screenshots in docs/.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::{Scratch, Server};

/// `plinth serve --demo` in a scratch directory, and its root URL.
struct Demo {
    _server: Server,
    root: String,
    scratch: Scratch,
}

impl Demo {
    fn start(name: &str) -> Demo {
        let scratch = Scratch::new(name);
        let data = scratch.0.join("data");
        let server = Server::start(&scratch.0, &data, &["--demo"]);
        let api = server.base_url();
        let root = api.trim_end_matches("/api/catalog").to_owned();
        Demo {
            _server: server,
            root,
            scratch,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        request(&format!("{}{path}", self.root), None, &[])
    }

    /// The page as the snapshot keeps it: generated ids, times and paths
    /// replaced by placeholders.
    fn snapshot_of(&self, path: &str) -> String {
        let (status, html) = self.get(path);
        assert_eq!(status, 200, "{path}: {html}");
        redact(&html, &self.scratch.0)
    }
}

fn request(url: &str, form: Option<&str>, headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = match form {
        None => {
            let mut r = agent.get(url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
        Some(body) => {
            let mut r = agent
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.send(body.as_bytes())
        }
    };
    let mut response = response.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    match location {
        Some(l) if (300..400).contains(&status) => (status, l),
        _ => (status, text),
    }
}

/// Replaces what differs from run to run: the scratch path, uuids (uids,
/// location ids), etags and timestamps.
fn redact(html: &str, scratch: &Path) -> String {
    let dir = scratch.display().to_string();
    let text = html
        .replace(&dir, "[DIR]")
        .replace(&dir.replace('/', "%2F"), "[DIR]");
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let boundary = |j: usize| j >= b.len() || !b[j].is_ascii_alphanumeric();
    while i < b.len() {
        let at_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let rest = &b[i..];
        if at_start && rest.len() >= 36 && boundary(i + 36) {
            let u = &rest[..36];
            if [8, 13, 18, 23].iter().all(|&k| u[k] == b'-')
                && hex(&u[..8])
                && hex(&u[9..13])
                && hex(&u[14..18])
                && hex(&u[19..23])
                && hex(&u[24..])
            {
                out.push_str("[UUID]");
                i += 36;
                continue;
            }
        }
        if at_start && rest.len() >= 32 && boundary(i + 32) && hex(&rest[..32]) {
            out.push_str("[ETAG]");
            i += 32;
            continue;
        }
        if rest.len() >= 24
            && digits(&rest[..4])
            && rest[4] == b'-'
            && rest[10] == b'T'
            && rest[23] == b'Z'
            && digits(&rest[11..13])
        {
            out.push_str("[TIME]");
            i += 24;
            continue;
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

#[test]
fn main_pages_as_html() {
    let demo = Demo::start("portal-html");
    let pages = [
        ("home", "/"),
        ("home_with_group", "/?group=checkout-team"),
        ("search", "/search?q=checkout"),
        ("explorer", "/catalog"),
        (
            "explorer_filtered_sorted",
            "/catalog?kind=component&lifecycle=production&sort=name&dir=desc",
        ),
        ("entity_openapi", "/catalog/default/api/checkout-api"),
        ("entity_asyncapi", "/catalog/default/api/order-events"),
        (
            "entity_component_depth2",
            "/catalog/default/component/checkout-service?depth=2",
        ),
        ("group", "/catalog/default/group/checkout-team"),
        ("user", "/catalog/default/user/amara.nwosu"),
        ("locations", "/locations"),
    ];
    for (name, path) in pages {
        insta::assert_snapshot!(name, demo.snapshot_of(path));
    }
}

#[test]
fn htmx_requests_get_only_the_part_that_changes() {
    let demo = Demo::start("portal-htmx");
    let (status, full) = demo.get("/catalog?kind=api");
    assert_eq!(status, 200);
    assert!(full.starts_with("<!doctype html>"), "{full}");
    let (status, part) = request(
        &format!("{}/catalog?kind=api", demo.root),
        None,
        &[("HX-Request", "true")],
    );
    assert_eq!(status, 200);
    assert!(
        !part.contains("<html") && !part.contains("<header"),
        "{part}"
    );
    assert!(
        part.starts_with(r#"<div class="explorer" id="explorer">"#),
        "{part}"
    );
    assert!(part.contains(r#"<span id="total">3</span>"#), "{part}");
    assert!(part.contains("Checkout API") && part.contains("Order events"));

    let (_, hits) = request(
        &format!("{}/search?q=paym", demo.root),
        None,
        &[("HX-Request", "true")],
    );
    assert!(!hits.contains("<html"), "{hits}");
    assert!(
        hits.contains("/catalog/default/component/payments-service"),
        "{hits}"
    );
}

#[test]
fn missing_pages_and_refused_forms_say_why() {
    let demo = Demo::start("portal-errors");
    let (status, html) = demo.get("/catalog/default/component/no-such-thing");
    assert_eq!(status, 404);
    assert!(
        html.contains("No entity component:default/no-such-thing"),
        "{html}"
    );

    let locations = format!("{}/locations", demo.root);
    // Outside the allowed roots: refused, the form keeps what was typed.
    let (status, html) = request(&locations, Some("type=file&target=%2Fetc%2Fpasswd"), &[]);
    assert_eq!(status, 400);
    assert!(
        html.contains(r#"role="alert""#) && html.contains("/etc/passwd"),
        "{html}"
    );
    let (status, html) = request(&locations, Some("type=svn&target=x"), &[]);
    assert_eq!(status, 400);
    assert!(
        html.contains("location type &quot;svn&quot; is not supported"),
        "{html}"
    );
    let (status, html) = request(&locations, Some("type=file&target="), &[]);
    assert_eq!(status, 400);
    assert!(html.contains("Enter a target"), "{html}");
    // Another site's page cannot register locations through a browser.
    let file = demo.scratch.0.join("elsewhere.yaml");
    std::fs::write(&file, COMPONENT).unwrap();
    let body = format!("type=file&target={}", file.display());
    let (status, _) = request(
        &locations,
        Some(&body),
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    );
    assert_eq!(status, 403);
    let (_, api) = common::http(
        &format!(
            "{}/api/catalog/entities?filter=metadata.name=from-the-portal",
            demo.root
        ),
        None,
    );
    assert_eq!(api, serde_json::json!([]), "nothing was registered");
    // The same form from plinth's own page is taken.
    let host = demo.root.trim_start_matches("http://").to_owned();
    let (status, to) = request(
        &locations,
        Some(&body),
        &[
            ("Origin", &demo.root),
            ("Host", &host),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(status, 303, "{to}");
    assert!(to.starts_with("/locations?added="), "{to}");
    let (_, page) = demo.get(&to);
    assert!(
        page.contains("Registered: 1 entity")
            && page.contains("/catalog/default/component/from-the-portal"),
        "{page}"
    );
}

const COMPONENT: &str = "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: from-the-portal
  title: From the portal
  description: Registered through the locations page.
spec:
  type: service
  lifecycle: experimental
  owner: checkout-team
";

/// Where screenshots go: the target directory, and docs/screenshots when
/// PLINTH_UPDATE_SCREENSHOTS is set (how the README's pictures are made).
fn save_screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG for {name}");
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")];
    if std::env::var_os("PLINTH_UPDATE_SCREENSHOTS").is_some() {
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    }
}

#[test]
fn a_person_finds_explores_follows_and_registers_in_chromium() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let demo = Demo::start("portal-e2e");
    let root = &demo.root;

    // Home: choose a team, then search as you type.
    browser.goto(&format!("{root}/?group=checkout-team"));
    browser.wait_text("#team-h", |t| t == "Your team");
    browser.find_with_text(".card a", "Checkout");
    let q = browser.find("#home-q");
    browser.type_text(&q, "payments");
    let hit = browser.find_with_text("#home-results a", "Payments API");
    save_screenshot(&browser, "home");
    browser.click(&hit);
    browser.wait_text("h1", |t| t.starts_with("Payments API"));

    // The explorer: filter by kind, the URL follows, the table answers.
    browser.goto(&format!("{root}/catalog"));
    let all: u64 = browser
        .wait_text("#total", |t| !t.is_empty())
        .parse()
        .unwrap();
    let api = browser.find(r#"#facet-kind option[value="api"]"#);
    browser.click(&api);
    browser.wait_text("#total", |t| t == "3");
    browser.wait("the URL to carry the filter", || {
        browser.current_url().contains("kind=api").then_some(())
    });
    assert!(all > 3);
    let lifecycle = browser.find(r#"#facet-lifecycle option[value="production"]"#);
    browser.click(&lifecycle);
    browser.wait("the URL to carry both filters", || {
        browser
            .current_url()
            .contains("lifecycle=production")
            .then_some(())
    });
    save_screenshot(&browser, "explorer");
    // A shared link opens the same view.
    let shared = browser.current_url();
    browser.goto(&shared);
    let shown = browser.wait_text("#total", |t| !t.is_empty());
    assert!(shown.parse::<u64>().unwrap() <= 3);

    // An entity page with its API definition.
    let link = browser.find_with_text("table.entities a", "Checkout API");
    browser.click(&link);
    browser.wait_text("h1", |t| t.starts_with("Checkout API"));
    browser.wait_text("#api-h", |t| t == "API definition");
    browser.find_with_text("details.operation summary", "/baskets/{basketId}");
    save_screenshot(&browser, "entity-api");

    // Follow a relation in the graph: the owner.
    let owner = browser.find(r#"svg.graph a[aria-label="group:default/checkout-team"]"#);
    browser.click(&owner);
    browser.wait_text("h1", |t| t.starts_with("Checkout Group"));
    browser.find_with_text("#members-h", "Members");
    browser.find_with_text("ul.plain a", "Amara Nwosu");
    save_screenshot(&browser, "group");

    // Register a location from the page and see its entities.
    let file = demo.scratch.0.join("new-service.yaml");
    std::fs::write(&file, COMPONENT).unwrap();
    browser.goto(&format!("{root}/locations"));
    let target = browser.find("#loc-target");
    browser.type_text(&target, &file.display().to_string());
    browser.click(&browser.find("form.register button"));
    browser.wait_text("#added-h", |t| t == "Registered: 1 entity");
    save_screenshot(&browser, "locations");
    let new = browser.find_with_text(".added a", "From the portal");
    browser.click(&new);
    browser.wait_text("h1", |t| t.starts_with("From the portal"));

    // The dark theme, for the README.
    browser.goto(&format!(
        "{root}/catalog/default/component/checkout-service"
    ));
    browser.click(&browser.find("#theme-toggle"));
    browser.wait("the dark theme", || {
        (browser.script("return document.documentElement.dataset.theme") == "dark").then_some(())
    });
    save_screenshot(&browser, "entity-dark");
    browser.goto(&format!(
        "{root}/catalog/default/component/checkout-service?depth=2"
    ));
    browser.find(r#"svg.graph a[aria-label="api:default/checkout-api"]"#);
    browser.script("document.getElementById('relations').scrollIntoView(); return true");
    save_screenshot(&browser, "graph");
    drop(demo);
}

/// Every main page, in both themes, passes axe-core's WCAG 2 A and AA rules
/// (labels, names, contrast, landmarks, ARIA) in real Chromium.
#[test]
fn main_pages_pass_an_accessibility_audit_in_both_themes() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let Some(axe) = common::browser::axe() else {
        return;
    };
    let demo = Demo::start("portal-a11y");
    let pages = [
        "/?group=checkout-team",
        "/search?q=checkout",
        "/catalog?kind=component&sort=name",
        "/catalog/default/api/checkout-api",
        "/catalog/default/component/checkout-service?depth=2",
        "/catalog/default/group/checkout-team",
        "/catalog/default/user/amara.nwosu",
        "/locations",
        "/audit",
    ];
    let mut found = Vec::new();
    for theme in ["light", "dark"] {
        for page in pages {
            browser.goto(&format!("{}{page}", demo.root));
            browser.find("main h1");
            browser.script(&format!(
                "document.documentElement.dataset.theme = '{theme}'; return true"
            ));
            for v in browser.accessibility_violations(&axe) {
                found.push(format!("{theme} {page}: {v}"));
            }
        }
    }
    drop(demo);

    // Local sign-in in the browser: the sign-in page, a wrong password,
    // the first admin's password, a page with the session, the sign-out
    // page; each audited as well.
    let scratch = Scratch::new("portal-a11y-sign-in");
    let data = scratch.0.join("data");
    let server = Server::start(&scratch.0, &data, &["--demo", "--sign-in", "local"]);
    let root = server
        .base_url()
        .trim_end_matches("/api/catalog")
        .to_owned();
    let password = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let mut audit = |page: &str| {
        browser.find("main h1");
        for v in browser.accessibility_violations(&axe) {
            found.push(format!("{page}: {v}"));
        }
    };
    browser.goto(&format!("{root}/catalog"));
    browser.wait_for_url("/sign-in?next=");
    audit("/sign-in");
    browser.type_text(&browser.find("#sign-in-name"), "admin");
    browser.type_text(&browser.find("#sign-in-password"), "not the password");
    browser.click(&browser.find("form.register button"));
    browser.wait_text("#sign-in-error", |t| t.contains("wrong"));
    audit("/sign-in with an error");
    browser.type_text(&browser.find("#sign-in-password"), password.trim());
    browser.click(&browser.find("form.register button"));
    browser.wait_for_url(&format!("{root}/catalog"));
    audit("/catalog signed in");
    browser.click(&browser.find_with_text("header a", "Sign out"));
    audit("/sign-out");
    browser.click(&browser.find_with_text("main button", "Sign out"));
    browser.goto(&format!("{root}/catalog"));
    browser.wait_for_url("/sign-in?next=");
    assert!(
        found.is_empty(),
        "accessibility violations:\n{}",
        found.join("\n")
    );
}
