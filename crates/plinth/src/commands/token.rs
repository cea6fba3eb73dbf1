//! `plinth token`: API tokens, made on the server's machine against its
//! store. This is how a server that requires tokens gets its first one;
//! people and services with an admin token can also use `POST /api/tokens`.

use std::process::ExitCode;

use plinth_access::Subject;
use plinth_access::token::TokenSpec;

use crate::cli::{TokenCommand, TokenCreateArgs, TokenStoreArgs};

pub fn run(command: &TokenCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            TokenCommand::Create(args) => create(args).await,
            TokenCommand::List(store) => list(store).await,
            TokenCommand::Revoke { id, store } => revoke(id, store).await,
        }
    })
}

async fn open(args: &TokenStoreArgs) -> anyhow::Result<plinth_store::Store> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => super::serve::default_data_dir()?,
    };
    if args.database.is_none() && !dir.join("plinth.db").is_file() {
        anyhow::bail!(
            "no store in {}: give the data directory of the plinth server (--data-dir or PLINTH_DATA_DIR), or its --database",
            dir.display()
        );
    }
    Ok(super::open_store(args.database.as_deref(), &dir).await?.0)
}

async fn create(args: &TokenCreateArgs) -> anyhow::Result<ExitCode> {
    let spec = TokenSpec::parse(
        &args.name,
        &args.scope,
        args.user.as_deref(),
        args.service.as_deref(),
        args.role.as_deref(),
        &Subject::Local,
    )
    .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let store = open(&args.store).await?;
    // Recorded with the token, in one transaction.
    let audit = |record: &plinth_store::TokenRecord| plinth_store::AuditEntry {
        actor: "local".into(),
        action: "token.create".into(),
        target: record.id.clone(),
        source: "plinth token create".into(),
        before: None,
        after: serde_json::to_value(record).ok(),
    };
    let (record, secret) = plinth_server::audit::issue_token(
        &store,
        &spec,
        "local",
        args.expires_in_days,
        Some(&audit),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    eprintln!(
        "plinth: token {} for {} ({} scope{}); it is shown once, here:",
        record.id,
        record.subject,
        record.scope,
        record
            .expires_at
            .as_deref()
            .map(|t| format!(", expires {t}"))
            .unwrap_or_default()
    );
    println!("{}", secret.expose());
    Ok(ExitCode::SUCCESS)
}

async fn list(args: &TokenStoreArgs) -> anyhow::Result<ExitCode> {
    let store = open(args).await?;
    println!(
        "{:<36}  {:<20}  {:<28}  {:<6}  STATE",
        "ID", "NAME", "SUBJECT", "SCOPE"
    );
    for t in store.tokens(None).await? {
        let state = match (&t.revoked_at, &t.expires_at) {
            (Some(at), _) => format!("revoked {at}"),
            (None, Some(at)) => format!("expires {at}"),
            (None, None) => "active".into(),
        };
        println!(
            "{:<36}  {:<20}  {:<28}  {:<6}  {state}",
            t.id, t.name, t.subject, t.scope
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(id: &str, args: &TokenStoreArgs) -> anyhow::Result<ExitCode> {
    let store = open(args).await?;
    let Some(before) = store.token(id).await? else {
        anyhow::bail!("no token with id {id}; plinth token list shows them");
    };
    let before = serde_json::to_value(&before)?;
    let audit = |after: &plinth_store::TokenRecord| plinth_store::AuditEntry {
        actor: "local".into(),
        action: "token.revoke".into(),
        target: id.to_owned(),
        source: "plinth token revoke".into(),
        before: Some(before.clone()),
        after: serde_json::to_value(after).ok(),
    };
    store.revoke_token(id, Some(&audit)).await?;
    eprintln!("plinth: token {id} revoked");
    Ok(ExitCode::SUCCESS)
}
