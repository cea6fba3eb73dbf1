//! SIGKILL in the middle of ingesting a large location, then restart: the
//! catalog is whole and consistent (all of the location or none of it, never
//! part), and the restart finishes the job.

use std::path::Path;
use std::time::Duration;

use plinth_store::Store;

mod common;
use common::{Scratch, Server, component_counts, write_components};

const ENTITIES: usize = 6000;

async fn components(db: &Path) -> (u64, u64) {
    component_counts(&Store::open_sqlite(db).await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_ingestion_leaves_the_catalog_whole() {
    let root = Scratch::new("crash");
    let catalog = root.0.join("catalog");
    let data = root.0.join("data");
    write_components(&catalog, ENTITIES);
    let catalog_arg = catalog.display().to_string();

    let mut server = Server::start(&catalog, &data, &["--catalog", &catalog_arg]);
    server
        .wait_for("plinth: data in", Duration::from_secs(60))
        .expect("plinth opened its store");
    // The first refresh of 6,000 files is under way now; kill it part-way.
    std::thread::sleep(Duration::from_millis(300));
    let finished_before_kill = server
        .lines
        .try_iter()
        .any(|l| l.starts_with("plinth: serving"));
    server.kill(); // SIGKILL
    assert!(
        !finished_before_kill,
        "the refresh ended before the kill; raise ENTITIES"
    );

    // Read the database as the crash left it: all or nothing, and consistent.
    let db = data.join("plinth.db");
    let (count, related) = components(&db).await;
    assert!(
        count == 0 || count == ENTITIES as u64,
        "half-ingested: {count} of {ENTITIES}"
    );
    assert_eq!(related, count, "entities without their relations");

    // A restart finishes the job.
    let mut server = Server::start(&catalog, &data, &["--catalog", &catalog_arg]);
    server.base_url();
    server.kill();
    assert_eq!(components(&db).await, (ENTITIES as u64, ENTITIES as u64));
}
