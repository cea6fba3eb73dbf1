//! SIGKILL in the middle of ingesting a large location, then restart: the
//! catalog is whole and consistent (all of the location or none of it, never
//! part), and the restart finishes the job.

use std::path::Path;
use std::time::Duration;

use plinth_store::{EntityQuery, Filter, Store};

mod common;
use common::{Scratch, Server};

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

async fn components(db: &Path) -> (u64, u64) {
    let store = Store::open_sqlite(db).await.unwrap();
    let all = store
        .query_entities(&EntityQuery {
            filter: vec![vec![Filter {
                key: "kind".into(),
                values: vec!["component".into()],
            }]],
            limit: Some(0),
            ..EntityQuery::default()
        })
        .await
        .unwrap()
        .total;
    // Every stored entity has its relations: the dependsOn pairs all exist.
    let with_relation = store
        .query_entities(&EntityQuery {
            filter: vec![vec![Filter {
                key: "relations.dependson".into(),
                values: vec![],
            }]],
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
    let root = Scratch::new("crash");
    let catalog = root.0.join("catalog");
    let data = root.0.join("data");
    write_location(&catalog);
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
