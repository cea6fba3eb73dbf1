//! One module per subcommand; `run` dispatches.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use plinth_store::Store;

use crate::cli::{CatalogCommand, Cli, Command};
use crate::config::Config;

mod catalog_client;
mod catalog_validate;
mod login;
mod serve;
mod token;
mod transfer;

/// Opens the store: PostgreSQL when `database` is given, else SQLite in
/// `data_dir`. Also says where it is, without any password.
pub(crate) async fn open_store(
    database: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(Store, String)> {
    match database {
        Some(url) => {
            let shown = without_password(url);
            let store = Store::open_postgres(url)
                .await
                .with_context(|| format!("cannot open the database {shown}"))?;
            Ok((store, shown))
        }
        None => {
            let db = data_dir.join("plinth.db");
            let store = Store::open_sqlite(&db)
                .await
                .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
            Ok((store, db.display().to_string()))
        }
    }
}

/// A database URL fit for logs: `postgres://user:***@host/db`.
pub(crate) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => serve::run(&config, &args),
        Command::Catalog(CatalogCommand::Validate(args)) => catalog_validate::run(&config, &args),
        Command::Catalog(command) => catalog_client::run(command),
        Command::Export(args) => transfer::export(&args),
        Command::Import(args) => transfer::import(&args),
        Command::Token(command) => token::run(&command),
        Command::Login(args) => login::login(&args),
        Command::Logout(args) => login::logout(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn passwords_are_hidden_from_messages() {
        assert_eq!(
            without_password("postgres://plinth:s3cret@db:5432/plinth"),
            "postgres://plinth:***@db:5432/plinth"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            without_password("postgres://db/x?a=b@c"),
            "postgres://db/x?a=b@c"
        );
    }
}
