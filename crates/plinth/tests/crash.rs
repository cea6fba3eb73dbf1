//! SIGKILL in the middle of ingesting a large location, then restart: the
//! catalog is whole and consistent (all of the location or none of it, never
//! part), and the restart finishes the job. Both ways a location is first
//! read at start: into an existing store, and a new store's first load.

use std::path::Path;
use std::time::Duration;

use plinth_store::Store;

mod common;
use common::{Scratch, Server, component_counts, write_components};

const ENTITIES: usize = 6000;

async fn components(db: &Path) -> (u64, u64) {
    component_counts(&Store::open_sqlite(db).await.unwrap()).await
}

/// Starts `plinth serve --catalog CATALOG`, waits for `line`, lets the
/// first refresh run part-way and kills the server with SIGKILL.
fn kill_while_reading(catalog: &Path, data: &Path, line: &str) {
    let catalog_arg = catalog.display().to_string();
    let mut server = Server::start(catalog, data, &["--catalog", &catalog_arg]);
    server
        .wait_for(line, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("plinth said {line:?}"));
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
}

/// A restart reads the whole location.
async fn restart_finishes(catalog: &Path, data: &Path) {
    let catalog_arg = catalog.display().to_string();
    let mut server = Server::start(catalog, data, &["--catalog", &catalog_arg]);
    server.base_url();
    server.kill();
    assert_eq!(
        components(&data.join("plinth.db")).await,
        (ENTITIES as u64, ENTITIES as u64)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_ingestion_leaves_the_catalog_whole() {
    let root = Scratch::new("crash");
    let catalog = root.0.join("catalog");
    let data = root.0.join("data");
    write_components(&catalog, ENTITIES);
    // A store that exists already: the location is read into it.
    let mut empty = Server::start(&root.0, &data, &[]);
    empty.base_url();
    empty.kill();

    kill_while_reading(&catalog, &data, "plinth: data in");
    // Read the database as the crash left it: all or nothing, and consistent.
    let (count, related) = components(&data.join("plinth.db")).await;
    assert!(
        count == 0 || count == ENTITIES as u64,
        "half-ingested: {count} of {ENTITIES}"
    );
    assert_eq!(related, count, "entities without their relations");
    restart_finishes(&catalog, &data).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_first_load_leaves_no_store() {
    let root = Scratch::new("crash-first-load");
    let catalog = root.0.join("catalog");
    let data = root.0.join("data");
    write_components(&catalog, ENTITIES);

    kill_while_reading(&catalog, &data, "plinth: a new store at");
    // The store is put in place whole or not at all.
    assert!(
        !data.join("plinth.db").exists(),
        "a store was put in place before its first load ended"
    );
    restart_finishes(&catalog, &data).await;
    assert!(
        !data.join("plinth.db.loading").exists(),
        "the side file of the killed load is left"
    );
}
