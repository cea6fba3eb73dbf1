//! Three `plinth serve` processes on one PostgreSQL database: a scheduled
//! refresh runs on one replica at a time, the replica killed in the middle
//! of one leaves it to another within the lease time (nothing half-written,
//! nothing lost), and a write through one replica is visible through the
//! others at once.

use std::path::Path;
use std::time::{Duration, Instant};

use plinth_store::testing::TestDb;
use plinth_store::{Dialect, Store};

mod common;
use common::{Scratch, Server, component_counts, http, write_components};

const ENTITIES: usize = 8000;
const LEASE_SECONDS: u64 = 3;
const INTERVAL_SECONDS: u64 = 2;

/// Starts a replica; returns it with its lease holder name.
fn replica(cwd: &Path, data: &Path, db: &TestDb, catalog: &str) -> (Server, String) {
    let server = Server::start(
        cwd,
        data,
        &[
            "--database",
            &db.url,
            "--catalog",
            catalog,
            "--config",
            "plinth.toml",
        ],
    );
    let started = server
        .wait_for("plinth: data in", Duration::from_secs(60))
        .expect("the replica opened the database");
    let holder = started
        .rsplit_once("replica ")
        .map(|(_, h)| h.to_owned())
        .expect("the replica names itself");
    (server, holder)
}

/// Refreshes logged by a replica since the last call.
fn refreshes(server: &Server) -> usize {
    server
        .lines
        .try_iter()
        .filter(|l| l.contains(" refreshed dir:"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_jobs_and_writes() {
    let root = Scratch::new("replicas");
    let dir = &root.0;
    let Some(db) = TestDb::create(Dialect::Postgres, dir).await else {
        return;
    };
    let catalog = dir.join("catalog");
    write_components(&catalog, ENTITIES);
    let catalog_arg = catalog.display().to_string();
    std::fs::write(
        dir.join("plinth.toml"),
        format!(
            "[catalog]\nrefresh_interval_seconds = {INTERVAL_SECONDS}\nlease_seconds = {LEASE_SECONDS}\n"
        ),
    )
    .unwrap();
    let store = Store::open_url(&db.url).await.unwrap();

    // The first replica registers the location and takes its first refresh.
    let (mut first, first_holder) = replica(dir, &dir.join("a"), &db, &catalog_arg);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !store
        .leases()
        .await
        .unwrap()
        .iter()
        .any(|(_, holder, _)| *holder == first_holder)
    {
        assert!(Instant::now() < deadline, "the first replica took no job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Two more while it works: they find the job taken and serve.
    let (second, second_holder) = replica(dir, &dir.join("b"), &db, &catalog_arg);
    let (third, third_holder) = replica(dir, &dir.join("c"), &db, &catalog_arg);
    let (b, c) = (second.base_url(), third.base_url());
    let leases = store.leases().await.unwrap();
    assert_eq!(leases.len(), 1, "one job, one holder: {leases:?}");
    assert_eq!(leases[0].1, first_holder, "still with the first replica");
    assert_eq!(
        component_counts(&store).await,
        (0, 0),
        "the first refresh ended before the kill; raise ENTITIES"
    );

    // SIGKILL in the middle of the job.
    let killed_at = Instant::now();
    first.kill();
    assert_eq!(
        component_counts(&store).await,
        (0, 0),
        "nothing half-written"
    );

    // Another replica takes the job when the lease runs out, and finishes it.
    let mut takers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for (_, holder, _) in store.leases().await.unwrap() {
            if !takers.contains(&holder) {
                takers.push(holder);
            }
        }
        if component_counts(&store).await == (ENTITIES as u64, ENTITIES as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "no replica finished the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took_over = killed_at.elapsed();
    assert!(
        took_over >= Duration::from_secs(LEASE_SECONDS) - Duration::from_millis(500),
        "taken before the dead replica's lease ran out: {took_over:?}"
    );
    takers.retain(|h| *h != first_holder);
    let logs: Vec<String> = second
        .lines
        .try_iter()
        .chain(third.lines.try_iter())
        .filter(|l| !l.contains(" INFO "))
        .collect();
    assert_eq!(
        takers.len(),
        1,
        "one replica took it over: {takers:?}\n{}",
        logs.join("\n")
    );
    assert!(takers[0] == second_holder || takers[0] == third_holder);

    // Once at a time across replicas: over a few intervals the two replicas
    // together refresh about once per interval, not once each.
    refreshes(&second);
    refreshes(&third);
    let window = Duration::from_secs(4 * INTERVAL_SECONDS);
    tokio::time::sleep(window).await;
    let (by_second, by_third) = (refreshes(&second), refreshes(&third));
    let runs = by_second + by_third;
    assert!(
        (1..=5).contains(&runs),
        "{runs} refreshes in {window:?} at one per {INTERVAL_SECONDS} s (second {by_second}, third {by_third})"
    );

    // A write through one replica is visible through the others at once.
    std::fs::write(
        dir.join("new.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: just-registered\nspec:\n  type: service\n  lifecycle: production\n  owner: team-1\n",
    )
    .unwrap();
    let target = dir.join("new.yaml").display().to_string();
    let (status, body) = http(
        &format!("{b}/locations"),
        Some(&serde_json::json!({"type": "file", "target": target})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, seen) = http(
        &format!("{c}/entities/by-name/component/default/just-registered"),
        None,
    );
    assert_eq!(status, 200, "{seen}");
    let (_, through_b) = http(
        &format!("{b}/entities/by-name/component/default/just-registered"),
        None,
    );
    assert_eq!(seen["metadata"]["uid"], through_b["metadata"]["uid"]);

    drop(second);
    drop(third);
    store.close().await;
}
