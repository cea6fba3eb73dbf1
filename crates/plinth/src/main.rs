//! The `plinth` binary: one executable, roles as subcommands.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod config;
mod demo;

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
