//! Headless Chromium driven over WebDriver (chromedriver), for the portal's
//! end-to-end tests: plain HTTP and JSON, through the same client the other
//! tests use, so no browser-automation crate is needed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which WebDriver returns element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    url: String,
    agent: ureq::Agent,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `None` (after
    /// saying why, and failing under CI) when either is not installed.
    pub fn start() -> Option<Browser> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let driver_bin = ["/usr/bin/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let (Some(chromium), Some(driver_bin)) = (chromium, driver_bin) else {
            super::unavailable(
                "Chromium and chromedriver (Debian packages chromium and chromium-driver; .ci/run installs them)",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut browser = Browser {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser
            .agent
            .get(format!("{}/status", browser.url))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let session = browser.call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,900",
                             "--force-device-scale-factor=1", "--lang=en-GB"],
                },
            }}})),
        );
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_owned();
        browser.url = format!("{}/session/{id}", browser.url);
        Some(browser)
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.url);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or(json!({})).to_string().as_bytes()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status < 400, "{method} {path}: {status} {text}");
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn title(&self) -> String {
        self.call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn try_find(&self, css: &str) -> Option<Element> {
        let url = format!("{}/element", self.url);
        let mut response = self
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .send(
                json!({"using": "css selector", "value": css})
                    .to_string()
                    .as_bytes(),
            )
            .ok()?;
        if response.status().as_u16() >= 400 {
            return None;
        }
        let v: Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
        v["value"][ELEMENT]
            .as_str()
            .map(|id| Element(id.to_owned()))
    }

    /// The first element matching `css`, waiting up to ten seconds for it.
    pub fn find(&self, css: &str) -> Element {
        self.wait(&format!("an element {css}"), || self.try_find(css))
    }

    /// Waits up to ten seconds for `check` to give something.
    pub fn wait<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(t) = check() {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "waited 10 s for {what} at {}",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the browser is at a URL containing `part`.
    pub fn wait_for_url(&self, part: &str) {
        self.wait(&format!("a URL with {part}"), || {
            self.current_url().contains(part).then_some(())
        });
    }

    /// Waits until the text of the first element matching `css` satisfies `ok`.
    pub fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait(&format!("the text of {css}"), || {
            let e = self.try_find(css)?;
            let url = format!("{}/element/{}/text", self.url, e.0);
            let mut r = self.agent.get(&url).call().ok()?;
            let v: Value = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
            let t = v["value"].as_str()?.to_owned();
            ok(&t).then_some(t)
        })
    }

    /// The first element matching `css` whose text contains `text`.
    pub fn find_with_text(&self, css: &str, text: &str) -> Element {
        self.wait(&format!("{css} with text {text:?}"), || {
            let found = self.call(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            );
            found.as_array()?.iter().find_map(|e| {
                let id = e[ELEMENT].as_str()?;
                let t = self.call("GET", &format!("/element/{id}/text"), None);
                t.as_str()?.contains(text).then(|| Element(id.to_owned()))
            })
        })
    }

    pub fn text(&self, e: &Element) -> String {
        self.call("GET", &format!("/element/{}/text", e.0), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Forgets every cookie of the current page's host (all ports: a
    /// provider and plinth on 127.0.0.1 share them).
    pub fn delete_cookies(&self) {
        self.call("DELETE", "/cookie", None);
    }

    /// The text of the whole page, as the person sees it.
    pub fn page_text(&self) -> String {
        self.script("return document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// What axe-core (source `axe`, from [`axe`]) finds against WCAG 2.1 A
    /// and AA on the current page, one line per rule broken.
    pub fn accessibility_violations(&self, axe: &str) -> Vec<String> {
        self.script(&format!("{axe}\nreturn true;"));
        let violations = self.script_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
               .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                   + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
        );
        violations
            .as_array()
            .expect("a list of violations")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), None);
    }

    /// Types into an element, as keystrokes (input events fire).
    pub fn type_text(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    pub fn clear(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/clear", e.0), None);
    }

    /// Runs a script in the page; its return value.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Runs a script that calls its last argument with its answer (for
    /// promises); that answer.
    pub fn script_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// A PNG of the whole window.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.call("GET", "/screenshot", None);
        base64_decode(b64.as_str().expect("a screenshot"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.url).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}

/// axe-core's source (tests/portal_a11y, from npm); `None` (after saying
/// why, and failing under CI) when npm cannot install it.
pub fn axe() -> Option<String> {
    let Some(dir) = super::npm_package(
        "portal_a11y",
        &["package.json", "package-lock.json"],
        "axe-core",
    ) else {
        super::unavailable("axe-core from the npm registry");
        return None;
    };
    Some(std::fs::read_to_string(dir.join("node_modules/axe-core/axe.min.js")).unwrap())
}
