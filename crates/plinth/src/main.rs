//! The `plinth` binary: one executable, roles as subcommands.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod config;
mod demo;

// mimalloc for every allocation of the process, SQLite's included (its
// `override` feature): a first ingest spent a quarter of its time in
// glibc's malloc, and runs 15-25% faster (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
