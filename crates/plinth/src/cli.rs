//! Command-line arguments. Every flag that sets configuration also reads a
//! `PLINTH_*` environment variable, and overrides the configuration file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "plinth",
    version,
    about = "An internal developer platform in one binary"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./plinth.toml when it exists.
    #[arg(long, global = true, env = "PLINTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the catalog service: the Backstage-compatible API on one port.
    Serve(ServeArgs),
    /// Work with catalog files and the software catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(
        long,
        env = "PLINTH_LISTEN",
        default_value = "127.0.0.1:7007",
        value_name = "ADDR:PORT"
    )]
    pub listen: String,

    /// Where plinth keeps its database and working files. Default: the
    /// user's data directory ($XDG_DATA_HOME/plinth or ~/.local/share/plinth).
    #[arg(long, env = "PLINTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Register a location at start: a catalog file, a glob, or a directory
    /// (repeatable). Its directory becomes an allowed root.
    #[arg(long = "catalog", value_name = "PATH")]
    pub catalogs: Vec<PathBuf>,

    /// Load the example organisation, ready to browse.
    #[arg(long)]
    pub demo: bool,

    #[command(flatten)]
    pub catalog: CatalogFlags,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Check catalog files the way the catalog will read them.
    ///
    /// Reads each FILE, and every *.yaml and *.yml file that holds entities
    /// under each DIRECTORY, and reports every problem as
    /// `file:line:column: kind:namespace/name: message`.
    ///
    /// Exit status: 0 when every entity is valid, 1 when any entity is
    /// invalid, 2 when any input cannot be read or parsed.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files and directories to check.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    pub catalog: CatalogFlags,
}

/// Flags that override the `[catalog]` section of the configuration.
#[derive(Debug, Args)]
pub struct CatalogFlags {
    /// Accept a custom kind (repeatable); only its envelope is checked.
    #[arg(
        long = "kind",
        value_name = "KIND",
        env = "PLINTH_CATALOG_KINDS",
        value_delimiter = ','
    )]
    pub kinds: Vec<String>,

    /// Largest catalog file read, for example 16MiB.
    #[arg(long, value_name = "SIZE", env = "PLINTH_CATALOG_MAX_FILE_SIZE")]
    pub max_file_size: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per problem, for people and editors.
    Text,
    /// One JSON document with a summary and every finding, for scripts.
    Json,
}
