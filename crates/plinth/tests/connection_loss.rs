//! Losing PostgreSQL: requests fail fast with 503, `/readyz` says not
//! ready, a write in between changes nothing, and the server recovers by
//! itself when the database is back. The database is reached through a TCP
//! proxy the test cuts and restores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plinth_store::Dialect;
use plinth_store::testing::TestDb;
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::{Scratch, Server, http};

/// Forwards connections to PostgreSQL until cut; while cut, existing
/// connections are closed and new ones dropped at once.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, c, upstream) = (open.clone(), connections.clone(), upstream.to_owned());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Calls `url` on a blocking thread: status, body and how long it took.
async fn call(url: String, body: Option<serde_json::Value>) -> (u16, serde_json::Value, Duration) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let (status, body) = http(&url, body.as_ref());
        (status, body, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_the_database_answers_503_and_recovers_by_itself() {
    let root = Scratch::new("connection-loss");
    let dir = &root.0;
    let Some(db) = TestDb::create(Dialect::Postgres, dir).await else {
        return;
    };
    let proxy = Proxy::start("127.0.0.1:5432").await;
    // The test database's URL, through the proxy.
    let (_, name) = db.url.rsplit_once('/').unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let server = Server::start(dir, &dir.join("data"), &["--demo", "--database", &url]);
    let api = server.base_url();
    let root_url = api.trim_end_matches("/api/catalog").to_owned();
    let entity = format!("{api}/entities/by-name/component/default/checkout-service");

    let (status, before, _) = call(entity.clone(), None).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(call(format!("{root_url}/readyz"), None).await.0, 200);

    proxy.cut();
    let (status, body, took) = call(entity.clone(), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["name"], "ServiceUnavailableError");
    assert!(took < Duration::from_secs(10), "failed fast: {took:?}");
    let (status, _, took) = call(format!("{root_url}/readyz"), None).await;
    assert_eq!(status, 503);
    assert!(
        took < Duration::from_secs(10),
        "readyz answered in {took:?}"
    );
    assert_eq!(call(format!("{root_url}/healthz"), None).await.0, 200);
    // A write while the database is gone is refused, and leaves nothing.
    std::fs::write(
        dir.join("new.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: written-in-the-outage\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .unwrap();
    let target = dir.join("new.yaml").display().to_string();
    let register = serde_json::json!({"type": "file", "target": target});
    let (status, body, _) = call(format!("{api}/locations"), Some(register)).await;
    assert_eq!(status, 503, "{body}");

    // Back: the same process answers again, without a restart.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let (status, body, _) = call(entity.clone(), None).await;
        if status == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "not back 30 s after the database: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after, before);
    assert_eq!(call(format!("{root_url}/readyz"), None).await.0, 200);
    let (status, locations, _) = call(format!("{api}/locations"), None).await;
    assert_eq!(status, 200);
    assert!(
        !locations.to_string().contains("new.yaml"),
        "the refused registration left nothing: {locations}"
    );
    let gone = format!("{api}/entities/by-name/component/default/written-in-the-outage");
    assert_eq!(call(gone, None).await.0, 404);
    drop(server);
}
