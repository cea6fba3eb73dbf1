//! `plinth serve`: the catalog service.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use plinth_catalog::ingest::{self, IngestOptions};
use plinth_server::AppState;

use crate::cli::{LogFormat, ServeArgs};
use crate::config::Config;
use crate::demo;

/// Default seconds between scheduled refreshes.
const DEFAULT_REFRESH_SECONDS: u64 = 180;

pub fn run(config: &Config, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config, args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: &Config, args: &ServeArgs) -> anyhow::Result<()> {
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&data_dir)?;

    let mut ingest = IngestOptions {
        read: config.read_options(&args.catalog)?,
        allowed_roots: config.catalog.allowed_roots.clone(),
        git_dir: Some(data_dir.join("git")),
        orphans: config.catalog.orphans.into(),
    };
    if ingest.allowed_roots.is_empty() {
        ingest.allowed_roots.push(std::env::current_dir()?);
    }
    let mut startup: Vec<(String, String)> = Vec::new();
    if args.demo {
        let root =
            demo::write(&data_dir.join("demo")).context("cannot write the example organisation")?;
        ingest.allowed_roots.push(data_dir.join("demo"));
        startup.push(("file".into(), root.display().to_string()));
    }
    for path in &args.catalogs {
        let meta =
            std::fs::metadata(path).with_context(|| format!("--catalog {}", path.display()))?;
        let path = std::fs::canonicalize(path)?;
        let (kind, root) = if meta.is_dir() {
            ("dir", path.clone())
        } else {
            ("file", path.parent().map(PathBuf::from).unwrap_or_default())
        };
        ingest.allowed_roots.push(root);
        startup.push((kind.into(), path.display().to_string()));
    }

    let (store, database) = super::open_store(args.database.as_deref(), &data_dir).await?;
    for (kind, target) in &startup {
        let target = ingest::check_location(kind, target, &ingest).map_err(anyhow::Error::msg)?;
        if store.location_by_target(kind, &target).await?.is_none() {
            store.add_location(kind, &target).await?;
        }
    }
    let state = AppState::new(store.clone(), ingest.clone());

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "plinth: data in {}, database {database}",
        data_dir.display()
    );
    refresh_all(&state).await;
    eprintln!("plinth: serving the catalog API on http://{addr}/api/catalog");

    let interval = Duration::from_secs(
        config
            .catalog
            .refresh_interval_seconds
            .unwrap_or(DEFAULT_REFRESH_SECONDS)
            .max(1),
    );
    let scheduled = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            refresh_all(&scheduled).await;
        }
    });
    plinth_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Structured logs on stderr. Secrets are never logged: nothing here logs
/// request bodies, headers or configuration values.
fn init_logging(args: &ServeArgs) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = args.log.parse().map_err(|e| {
        anyhow::anyhow!(
            "--log \"{}\": {e}; write a level such as info, or plinth=debug,info",
            args.log
        )
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json()).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// Refreshes every location, one at a time; problems are logged, not fatal.
async fn refresh_all(state: &AppState) {
    let locations = match state.store.locations().await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot list locations");
            return;
        }
    };
    for location in locations {
        let started = std::time::Instant::now();
        match state.refresh(&location).await {
            Ok(report) => {
                let outcome = match &report.outcome {
                    plinth_store::RefreshOutcome::Ok => "ok".to_owned(),
                    plinth_store::RefreshOutcome::Problems(m)
                    | plinth_store::RefreshOutcome::Failed(m) => m.clone(),
                };
                tracing::info!(
                    location.id = %location.id,
                    location.kind = %location.kind,
                    location.target = %location.target,
                    duration_ms = started.elapsed().as_millis() as u64,
                    added = report.summary.added,
                    updated = report.summary.updated,
                    removed = report.summary.removed,
                    unchanged = report.summary.unchanged,
                    conflicts = report.summary.conflicts,
                    problems = report.findings.len(),
                    files_read = report.files_read,
                    outcome = %outcome,
                    "refreshed {}:{}", location.kind, location.target
                );
            }
            Err(e) => tracing::error!(
                location.id = %location.id,
                location.target = %location.target,
                error = %e,
                "refresh of {}:{} failed", location.kind, location.target
            ),
        }
    }
}

pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("plinth"));
    }
    let home =
        std::env::var_os("HOME").context("HOME is not set; give --data-dir or PLINTH_DATA_DIR")?;
    Ok(PathBuf::from(home).join(".local/share/plinth"))
}
