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
    }
}
