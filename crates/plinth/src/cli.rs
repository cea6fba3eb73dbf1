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
    /// Write the whole catalog store as JSON lines: locations, the files read
    /// for them, entities (uids, etags, state, relations), conflicts.
    ///
    /// Reads a consistent snapshot; a running server may keep serving.
    Export(ExportArgs),
    /// Load an export into an empty store, in one transaction: on any bad
    /// line nothing is written, and the line is named.
    Import(ImportArgs),
    /// Check an API token with a plinth server and keep it for the client
    /// commands (in ~/.config/plinth/credentials.json, readable only by you).
    Login(ServerArgs),
    /// Forget the token kept for a server.
    Logout(ServerArgs),
    /// API tokens, on the server's machine (its store directly): the first
    /// admin token of a server that requires tokens, or any token later.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret, once.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(TokenStoreArgs),
    /// Revoke a token at once.
    Revoke {
        /// The token's id (from plinth token list).
        id: String,
        #[command(flatten)]
        store: TokenStoreArgs,
    },
}

#[derive(Debug, Args)]
pub struct TokenStoreArgs {
    /// The data directory of the server's store (as for `plinth serve`).
    #[arg(long, env = "PLINTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The PostgreSQL database instead of SQLite in the data directory.
    #[arg(long, env = "PLINTH_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token is for (a machine, a CI job).
    #[arg(long)]
    pub name: String,
    /// read, write or admin.
    #[arg(long, value_name = "SCOPE")]
    pub scope: String,
    /// A person's token: their User entity, as user:default/name.
    #[arg(
        long,
        value_name = "REF",
        conflicts_with = "service",
        required_unless_present = "service"
    )]
    pub user: Option<String>,
    /// A service's token, with --role.
    #[arg(long, value_name = "NAME", requires = "role")]
    pub service: Option<String>,
    /// A service token's role: viewer, developer or platform-admin.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Days until it expires; default: until revoked.
    #[arg(long, value_name = "DAYS")]
    pub expires_in_days: Option<u32>,
    #[command(flatten)]
    pub store: TokenStoreArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The data directory of the store to export (as for `plinth serve`).
    #[arg(long, env = "PLINTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The PostgreSQL database to use instead of SQLite in the data
    /// directory: postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "PLINTH_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    /// Where to write; default: standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export to load (`-` for standard input).
    pub file: PathBuf,
    /// The data directory of the (empty) store to load into.
    #[arg(long, env = "PLINTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The PostgreSQL database to use instead of SQLite in the data
    /// directory: postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "PLINTH_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
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

    /// The PostgreSQL database to use instead of SQLite in the data
    /// directory (which still holds git checkouts): postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "PLINTH_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,

    /// Register a location at start: a catalog file, a glob, or a directory
    /// (repeatable). Its directory becomes an allowed root.
    #[arg(long = "catalog", value_name = "PATH")]
    pub catalogs: Vec<PathBuf>,

    /// Load the example organisation, ready to browse.
    #[arg(long)]
    pub demo: bool,

    /// Callers without an API token: local (they act as the one local user;
    /// only on a loopback address) or none (every call needs a token).
    /// Overrides access.anonymous.
    #[arg(long, env = "PLINTH_ANONYMOUS", value_enum, value_name = "WHO")]
    pub anonymous: Option<crate::config::Anonymous>,

    /// How people sign in to the portal: oidc (an OpenID Connect provider,
    /// set up in [access.oidc] of plinth.toml; its client secret in
    /// PLINTH_OIDC_CLIENT_SECRET) or local (accounts kept by plinth).
    /// Overrides access.sign_in.
    #[arg(long, env = "PLINTH_SIGN_IN", value_enum, value_name = "HOW")]
    pub sign_in: Option<crate::config::SignIn>,

    /// Log format: text for people, json for log collectors.
    #[arg(long, env = "PLINTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log levels, as `info` or `plinth=debug,info`.
    #[arg(
        long,
        env = "PLINTH_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,

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
    /// Show one entity from a running plinth.
    Get {
        /// The entity: [kind:][namespace/]name; the kind defaults to Component.
        entity_ref: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Search a running plinth's catalog, best matches first.
    Search {
        /// Words to find in names, titles, tags, owners, descriptions...
        #[arg(required = true)]
        words: Vec<String>,
        /// Most results.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List entities from a running plinth.
    List {
        /// A filter as in the API: key=value[,key=value...] (repeatable; any may match).
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        /// Most entities to list.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Register a location (a catalog file, glob or directory) with a running plinth.
    Register {
        /// Path to a catalog file, a glob, or a directory.
        target: String,
        /// Location type; default: dir for directories, file otherwise.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Refresh the file an entity came from now (its whole location when
    /// that file leads to others), or every location with --all.
    Refresh {
        /// The entity whose file to refresh.
        #[arg(required_unless_present = "all")]
        entity_ref: Option<String>,
        /// Refresh every location.
        #[arg(long, conflicts_with = "entity_ref")]
        all: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Which plinth server, and the token to show it.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The plinth server.
    #[arg(
        long,
        env = "PLINTH_SERVER",
        default_value = "http://127.0.0.1:7007",
        value_name = "URL"
    )]
    pub server: String,
    /// An API token, for a server that requires one (plinth token create,
    /// or POST /api/tokens); sent as Authorization: Bearer. Default: the
    /// one plinth login kept for this server (plinth login itself reads it
    /// from standard input, out of the shell's history).
    #[arg(
        long,
        env = "PLINTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// How client commands reach plinth.
#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Output: a table for people, JSON for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
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
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per problem, for people and editors.
    Text,
    /// One JSON document with a summary and every finding, for scripts.
    Json,
}
