//! `plinth-bench`: tools for measuring plinth, kept out of the product.
//!
//! `plinth-bench generate --entities N --out DIR` writes a deterministic,
//! realistic synthetic organisation of about N entities, spread over many
//! `catalog-info.yaml` files the way real repositories are.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod generate;

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
    /// Ingest a directory into a fresh SQLite store, twice (first read, then
    /// an unchanged refresh), and print the timings.
    Ingest {
        /// The catalog directory (for example from `generate`).
        #[arg(long)]
        dir: PathBuf,
        /// The database file to create (removed first).
        #[arg(long)]
        db: PathBuf,
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
        Command::Ingest { dir, db } => ingest(&dir, &db),
    }
}

fn ingest(dir: &std::path::Path, db: &std::path::Path) -> anyhow::Result<()> {
    use plinth_catalog::ingest::{IngestOptions, check_location, refresh_location};
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let store = plinth_store::Store::open_sqlite(db).await?;
        let options = IngestOptions::default();
        let target = check_location("dir", &dir.display().to_string(), &options)
            .map_err(anyhow::Error::msg)?;
        let location = store.add_location("dir", &target).await?;
        for round in ["first refresh", "unchanged refresh"] {
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
