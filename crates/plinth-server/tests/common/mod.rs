//! The catalog API's test server: a real store holding the example
//! organisation, served over a real TCP socket.

#![allow(dead_code)] // each test file uses its part

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use plinth_catalog::ingest::{IngestOptions, check_location, refresh_location};
use plinth_server::AppState;
use plinth_server::access::AccessConfig;
use plinth_store::testing::TestDb;
use plinth_store::{Dialect, Store};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running server on 127.0.0.1:<random port>, with the examples loaded.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub dir: PathBuf,
    pub store: Store,
    _db: TestDb,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The body as sent (what `body` cannot show, such as a key twice).
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl TestApp {
    /// `None` when the store's database is not there (the test skips).
    pub async fn spawn(dialect: Dialect) -> Option<TestApp> {
        TestApp::spawn_with(dialect, AccessConfig::default()).await
    }

    /// [`TestApp::spawn`] with callers identified as `access` says.
    pub async fn spawn_with(dialect: Dialect, access: AccessConfig) -> Option<TestApp> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "plinth-api-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"),
            &dir.join("catalog"),
        );
        let db = TestDb::create(dialect, &dir).await?;
        let store = db.open().await;
        let ingest = IngestOptions {
            allowed_roots: vec![dir.join("catalog")],
            ..IngestOptions::default()
        };
        let target = check_location(
            "file",
            &dir.join("catalog/catalog-info.yaml").display().to_string(),
            &ingest,
        )
        .unwrap();
        let location = store.add_location("file", &target, None).await.unwrap();
        refresh_location(&store, &location, &ingest).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(store.clone(), ingest).with_access(access);
        tokio::spawn(plinth_server::serve(
            listener,
            state,
            std::future::pending(),
        ));
        Some(TestApp {
            addr,
            dir,
            store,
            _db: db,
        })
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.request_as(None, method, path, body).await
    }

    /// A request with `Authorization: Bearer <token>` when a token is given.
    pub async fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.request_raw(method, path, &headers, &body).await
    }

    /// A request with exactly these headers (and Host, Connection, Content-Length).
    pub async fn request_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(": ")
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let text = body;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None).await
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join("catalog").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
