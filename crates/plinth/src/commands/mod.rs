//! One module per subcommand; `run` dispatches.

use std::process::ExitCode;

use crate::cli::{CatalogCommand, Cli, Command};
use crate::config::Config;

mod catalog_client;
mod catalog_validate;
mod serve;
mod transfer;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => serve::run(&config, &args),
        Command::Catalog(CatalogCommand::Validate(args)) => catalog_validate::run(&config, &args),
        Command::Catalog(command) => catalog_client::run(command),
        Command::Export(args) => transfer::export(&args),
        Command::Import(args) => transfer::import(&args),
    }
}
