//! `plinth-bench`: tools for measuring plinth, kept out of the product.
//!
//! `plinth-bench generate --entities N --out DIR` writes a deterministic,
//! realistic synthetic organisation of about N entities, spread over many
//! `catalog-info.yaml` files the way real repositories are.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod generate;

// mimalloc for every allocation of the process, SQLite's included (its
// `override` feature): a first ingest spent a quarter of its time in
// glibc's malloc, and runs 15-25% faster (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "plinth-bench", about = "Benchmark tools for plinth")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a synthetic organisation of catalog files.
    Generate {
        /// About how many entities to write.
        #[arg(long, default_value_t = 10_000)]
        entities: usize,
        /// Directory to write into (created; must be empty or absent).
        #[arg(long)]
        out: PathBuf,
        /// Seed for the deterministic choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Measure API latency against a running plinth: each scenario's
    /// requests from several concurrent clients, reported as p50/p99.
    Query {
        /// The catalog API base, for example http://127.0.0.1:7007/api/catalog.
        #[arg(long)]
        base: String,
        /// Requests per scenario.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Only the scenarios whose name contains this text.
        #[arg(long)]
        only: Option<String>,
    },
    /// Ingest a directory into a fresh store (SQLite, or PostgreSQL with --postgres), twice (first read, then
    /// an unchanged refresh), and print the timings.
    Ingest {
        /// The catalog directory (for example from `generate`).
        #[arg(long)]
        dir: PathBuf,
        /// The database file to create (removed first).
        #[arg(long)]
        db: PathBuf,
        /// Ingest into PostgreSQL instead: a new database on the server at
        /// this URL (of any database there), dropped afterwards.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// On SQLite, load the first read as `plinth serve` loads a new
        /// store: into a side file outside the WAL, then put in place (the
        /// time includes putting it in place).
        #[arg(long, conflicts_with = "postgres")]
        first_load: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            entities,
            out,
            seed,
        } => {
            let summary = generate::write_organisation(&out, entities, seed)?;
            eprintln!("{summary}");
            Ok(())
        }
        Command::Ingest {
            dir,
            db,
            postgres,
            first_load,
        } => ingest(&dir, &db, postgres.as_deref(), first_load),
        Command::Query {
            base,
            requests,
            clients,
            only,
        } => query(&base, requests, clients, only.as_deref()),
    }
}

/// The scenarios of the catalog benchmark; `{i}` is replaced by a request
/// number, so lookups spread over the generated organisation.
const SCENARIOS: &[(&str, &str)] = &[
    (
        "by-name",
        "/entities/by-name/component/default/orders-{i:06}",
    ),
    (
        "by-query, 2 filters, limit 50",
        "/entities/by-query?filter=kind=component,spec.lifecycle=production&limit=50",
    ),
    (
        "by-query, full text",
        "/entities/by-query?fullTextFilterTerm=billing-0{i:04}&fullTextFilterFields=metadata.name&limit=20",
    ),
    (
        "by-query, filter, ordered by name, offset up to 40,000",
        "/entities/by-query?filter=kind=component&orderField=metadata.name,asc&limit=25&offset={i}",
    ),
    (
        "entity-facets kind, type, lifecycle, owner",
        "/entity-facets?facet=kind&facet=spec.type&facet=spec.lifecycle&facet=spec.owner",
    ),
    // Outside the catalog API: paths from the server's root (the search
    // API and the portal's pages).
    (
        "ranked search, two words",
        "/api/search?term=billing%20{i:04}",
    ),
    (
        "portal: explorer, kind and lifecycle, by name",
        "/catalog?kind=component&lifecycle=production&sort=name",
    ),
    (
        "portal: entity page",
        "/catalog/default/component/orders-{i:06}",
    ),
    ("portal: group page", "/catalog/default/group/team-{i:05}"),
    // The floor: an answer without store work, through the same HTTP
    // server and client, on the same cores.
    ("floor: /healthz", "/healthz"),
];

fn query(base: &str, requests: usize, clients: usize, only: Option<&str>) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    println!("| scenario | requests | clients | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, template) in SCENARIOS {
        if only.is_some_and(|only| !name.contains(only)) {
            continue;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut latencies: Vec<f64> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..clients)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= requests {
                                break;
                            }
                            // Names in the generator cycle through 24 words; pick existing ones.
                            let n = (i * 24) % 100_000;
                            let path = template
                                .replace("{i:06}", &format!("{n:06}"))
                                .replace("{i:04}", &format!("{:04}", i % 10_000))
                                .replace("{i:05}", &format!("{:05}", i % 1_990))
                                .replace("{i}", &format!("{}", (i * 25) % 40_000));
                            let started = std::time::Instant::now();
                            // `/api/...`, the portal's `/catalog...` and
                            // `/healthz` are paths from the server's root.
                            let from_root = ["/api/", "/catalog", "/healthz"]
                                .iter()
                                .any(|p| path.starts_with(p));
                            let url = if from_root {
                                format!(
                                    "{}{path}",
                                    base.trim_end_matches('/').trim_end_matches("/api/catalog")
                                )
                            } else {
                                format!("{base}{path}")
                            };
                            // The whole answer is read: its time counts, and
                            // the connection is reused as a client would.
                            let status = agent.get(url).call().and_then(|r| {
                                let status = r.status().as_u16();
                                r.into_body()
                                    .with_config()
                                    .limit(u64::MAX)
                                    .read_to_vec()
                                    .map(|_| status)
                            });
                            mine.push((
                                started.elapsed().as_secs_f64() * 1000.0,
                                status.unwrap_or(0),
                            ));
                        }
                        mine
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .map(|(ms, status)| {
                    if status == 200 || status == 404 {
                        ms
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        });
        let failed = latencies.iter().filter(|l| l.is_nan()).count();
        latencies.retain(|l| !l.is_nan());
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "| {name} | {requests}{} | {clients} | {:.2} | {:.2} | {:.2} |",
            if failed > 0 {
                format!(" ({failed} failed)")
            } else {
                String::new()
            },
            pct(0.50),
            pct(0.99),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn ingest(
    dir: &std::path::Path,
    db: &std::path::Path,
    postgres: Option<&str>,
    first_load: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use plinth_catalog::ingest::{IngestOptions, check_location, refresh_location};
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        // Kept to the end: dropping it drops the PostgreSQL database.
        let scratch = match postgres {
            Some(server) => Some(
                plinth_store::testing::TestDb::create_on(
                    server,
                    plinth_store::Dialect::Postgres,
                    dir,
                )
                .await
                .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let options = IngestOptions::default();
        let target = check_location("dir", &dir.display().to_string(), &options)
            .map_err(anyhow::Error::msg)?;
        let mut rounds = vec!["first refresh", "unchanged refresh"];
        if first_load {
            let load = plinth_store::FirstLoad::begin(db)
                .await?
                .context("a store was made meanwhile")?;
            let location = load.store().add_location("dir", &target, None).await?;
            let started = std::time::Instant::now();
            let report = refresh_location(load.store(), &location, &options).await?;
            let read = started.elapsed().as_secs_f64();
            anyhow::ensure!(load.install().await?, "a store was made meanwhile");
            println!(
                "first load: {:.2} s (put in place after {read:.2} s), {:?}",
                started.elapsed().as_secs_f64(),
                report.summary
            );
            rounds.remove(0);
        }
        let store = match &scratch {
            Some(db) => plinth_store::Store::open_url(&db.url).await?,
            None => plinth_store::Store::open_sqlite(db).await?,
        };
        let location = match store.location_by_target("dir", &target).await? {
            Some(location) => location,
            None => store.add_location("dir", &target, None).await?,
        };
        for round in rounds {
            let started = std::time::Instant::now();
            let report = refresh_location(&store, &location, &options).await?;
            println!(
                "{round}: {:.2} s, {:?}",
                started.elapsed().as_secs_f64(),
                report.summary
            );
        }
        Ok(())
    })
}
