//! SIGKILL in the middle of ingesting a large location, then restart: the
//! catalog is whole and consistent (all of the location or none of it, never
//! part), and the restart finishes the job.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plinth_store::{EntityQuery, Filter, Store};

const ENTITIES: usize = 6000;

fn write_location(dir: &Path) {
    for i in 0..ENTITIES {
        let d = dir.join(format!("svc-{:03}", i / 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("c{i}.yaml")),
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: c{i}\n  tags: [rust]\nspec:\n  type: service\n  lifecycle: production\n  owner: team-{}\n  dependsOn: [component:c{}]\n",
                i % 50,
                (i + 1) % ENTITIES
            ),
        )
        .unwrap();
    }
}

/// Starts `plinth serve` on the catalog directory; returns the child and the
/// lines it writes to stderr.
fn start(data: &Path, catalog: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--catalog")
        .arg(catalog)
        .current_dir(catalog)
        .stderr(Stdio::piped())
        .spawn()
        .expect("plinth starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_for(rx: &std::sync::mpsc::Receiver<String>, prefix: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

async fn components(db: &Path) -> (u64, u64) {
    let store = Store::open_sqlite(db).await.unwrap();
    let all = store
        .query_entities(&EntityQuery {
            filter: vec![vec![Filter { key: "kind".into(), values: vec!["component".into()] }]],
            limit: Some(0),
            ..EntityQuery::default()
        })
        .await
        .unwrap()
        .total;
    // Every stored entity has its relations: the dependsOn pairs all exist.
    let with_relation = store
        .query_entities(&EntityQuery {
            filter: vec![vec![Filter { key: "relations.dependson".into(), values: vec![] }]],
            limit: Some(0),
            ..EntityQuery::default()
        })
        .await
        .unwrap()
        .total;
    (all, with_relation)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_ingestion_leaves_the_catalog_whole() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let catalog = root.join("catalog");
    let data = root.join("data");
    write_location(&catalog);

    let (mut child, rx) = start(&data, &catalog);
    wait_for(&rx, "plinth: data in", Duration::from_secs(60)).expect("plinth opened its store");
    // The first refresh of 6,000 files is under way now; kill it part-way.
    std::thread::sleep(Duration::from_millis(300));
    let finished_before_kill = rx.try_iter().any(|l| l.starts_with("plinth: serving"));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!finished_before_kill, "the refresh ended before the kill; raise ENTITIES");

    // Read the database as the crash left it: all or nothing, and consistent.
    let db = data.join("plinth.db");
    let (count, related) = components(&db).await;
    assert!(count == 0 || count == ENTITIES as u64, "half-ingested: {count} of {ENTITIES}");
    assert_eq!(related, count, "entities without their relations");

    // A restart finishes the job.
    let (mut child, rx) = start(&data, &catalog);
    wait_for(&rx, "plinth: serving", Duration::from_secs(120)).expect("plinth restarted and refreshed");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(components(&db).await, (ENTITIES as u64, ENTITIES as u64));
    let _ = std::fs::remove_dir_all(&root);
}
