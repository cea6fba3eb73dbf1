//! `plinth serve`: the catalog service.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use plinth_catalog::ingest::{self, IngestOptions};
use plinth_server::AppState;
use plinth_server::access::SignIn;

use crate::cli::{LogFormat, ServeArgs};
use crate::config::Config;
use crate::demo;

/// Default seconds between scheduled refreshes.
const DEFAULT_REFRESH_SECONDS: u64 = 180;

/// Default seconds a scheduled refresh's lease lasts without renewal.
const DEFAULT_LEASE_SECONDS: u64 = 60;

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
        batch_files: ingest::BATCH_FILES,
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

    let access = config.access.resolve(
        args.anonymous,
        args.sign_in,
        std::env::var("PLINTH_OIDC_CLIENT_SECRET").ok(),
    )?;
    let anonymous = access.anonymous;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Anonymous callers act as the local admin: safe only when no one else
    // can reach the server.
    if anonymous && !addr.ip().is_loopback() {
        anyhow::bail!(
            "plinth serve listens on {addr}, which other machines can reach, and callers without a token would act as the local admin.\n\
             Require identification: --anonymous none (or access.anonymous = \"none\" in plinth.toml, or PLINTH_ANONYMOUS=none) for API tokens \
             (create the first on this machine with plinth token create --service NAME --role platform-admin --scope admin), \
             and --sign-in oidc (access.sign_in = \"oidc\" with [access.oidc]) or --sign-in local for people in the portal; or listen on 127.0.0.1."
        );
    }
    let schedule = Schedule {
        replica: replica_id(),
        interval: Duration::from_secs(
            config
                .catalog
                .refresh_interval_seconds
                .unwrap_or(DEFAULT_REFRESH_SECONDS)
                .max(1),
        ),
        lease: Duration::from_secs(
            config
                .catalog
                .lease_seconds
                .unwrap_or(DEFAULT_LEASE_SECONDS)
                .max(1),
        ),
    };

    // A new SQLite store with locations to read is loaded in a side file
    // first (see `plinth_store::FirstLoad`); its state keeps the load's
    // metrics.
    let loaded = match args.database {
        None if !startup.is_empty() => {
            first_load(&data_dir.join("plinth.db"), &startup, &ingest, &schedule).await?
        }
        _ => None,
    };
    let (store, database) = super::open_store(args.database.as_deref(), &data_dir).await?;
    register(&store, &startup, &ingest).await?;
    match &access.sign_in {
        SignIn::Local => first_admin(&store, &data_dir).await?,
        SignIn::Oidc(client) => check_provider(client).await?,
        SignIn::Off => {}
    }
    let state = match loaded {
        Some(loaded) => AppState {
            store: store.clone(),
            ..loaded
        },
        None => AppState::new(store.clone(), ingest.clone()),
    }
    .with_access(access);
    eprintln!(
        "plinth: data in {}, database {database}, replica {}",
        data_dir.display(),
        schedule.replica
    );
    // Locations never read (registered now) are read before the server
    // answers, so its first answers hold them; what else is due runs just
    // after, while it serves what the store holds (a restart on a large
    // store is ready at once). What a dead process on this host held is
    // free at once, so a restart does not wait for its old lease.
    schedule.release_dead_leases(&state.store).await?;
    schedule.run_due(&state, Due::New).await;
    // Before the server says it serves: a signal sent the moment it does
    // must stop it cleanly, not kill it (the default until a handler is
    // installed).
    let stop = stop_signal()?;
    eprintln!("plinth: serving the catalog API on http://{addr}/api/catalog");
    eprintln!("plinth: the portal is at http://{addr}/");

    let scheduled = state.clone();
    let scheduler = tokio::spawn(async move {
        loop {
            schedule.run_due(&scheduled, Due::All).await;
            tokio::time::sleep(schedule.poll()).await;
        }
    });
    let store = state.store.clone();
    plinth_server::serve(listener, state, stop).await?;
    // A refresh still running is rolled back (its lease runs out for the
    // next replica). Closing the store's last connection lets SQLite
    // checkpoint its WAL and remove it: after a large refresh the next
    // start would otherwise read gigabytes of WAL before it answers.
    scheduler.abort();
    let _ = scheduler.await;
    store.close().await;
    eprintln!("plinth: stopped");
    Ok(())
}

/// Registers the start's locations (`(kind, target)`) not registered yet.
async fn register(
    store: &plinth_store::Store,
    startup: &[(String, String)],
    ingest: &IngestOptions,
) -> anyhow::Result<()> {
    for (kind, target) in startup {
        let target = ingest::check_location(kind, target, ingest).map_err(anyhow::Error::msg)?;
        if store.location_by_target(kind, &target).await?.is_none() {
            store.add_location(kind, &target, None).await?;
        }
    }
    Ok(())
}

/// Registers and reads the start's locations into a new SQLite store at
/// `db` through a side file, then puts it in place. `None` when the store
/// exists, or another process made one meanwhile (then the usual start
/// reads them into that one).
async fn first_load(
    db: &Path,
    startup: &[(String, String)],
    ingest: &IngestOptions,
    schedule: &Schedule,
) -> anyhow::Result<Option<AppState>> {
    let cannot = || format!("cannot make the database {}", db.display());
    let Some(load) = plinth_store::FirstLoad::begin(db)
        .await
        .with_context(cannot)?
    else {
        return Ok(None);
    };
    eprintln!(
        "plinth: a new store at {}; reading its locations before serving",
        db.display()
    );
    let state = AppState::new(load.store().clone(), ingest.clone());
    let registered = register(&state.store, startup, ingest).await;
    if let Err(e) = registered {
        load.discard().await;
        return Err(e);
    }
    let started = std::time::Instant::now();
    schedule.run_due(&state, Due::New).await;
    if !load.install().await.with_context(cannot)? {
        tracing::info!("another process made the store meanwhile; the locations are read into it");
        return Ok(None);
    }
    tracing::debug!(
        duration_ms = started.elapsed().as_millis() as u64,
        "new store loaded outside the WAL and put in place"
    );
    Ok(Some(state))
}

/// Ctrl-C, or SIGTERM (how Kubernetes and systemd stop a process). The
/// handlers are installed when this is called, not when the future is
/// first polled.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Asks the OpenID Connect provider for its configuration at start: a
/// wrong one stops the start with the reason; an unreachable provider is
/// only a warning (it is asked again at each sign-in until it answers).
async fn check_provider(client: &plinth_server::oidc::OidcClient) -> anyhow::Result<()> {
    use plinth_server::oidc::SignInError;
    match client.provider(false).await {
        Ok((provider, _)) => {
            eprintln!("plinth: people sign in with {}", provider.issuer);
            Ok(())
        }
        Err(SignInError::Unreachable(e)) => {
            tracing::warn!(error = %e, "the OpenID Connect provider is not reachable yet; sign-in waits for it");
            Ok(())
        }
        Err(e) => anyhow::bail!("access.oidc: {e}"),
    }
}

/// With local sign-in and no account yet: an `admin` account (a platform
/// admin) with a new password, written to a file only its owner may read,
/// never to the log.
async fn first_admin(store: &plinth_store::Store, data_dir: &Path) -> anyhow::Result<()> {
    if store.account_count().await? > 0 {
        return Ok(());
    }
    let password = plinth_access::password::generate().map_err(anyhow::Error::msg)?;
    let hash = plinth_access::password::hash(&password).map_err(anyhow::Error::msg)?;
    let file = data_dir.join("initial-admin-password");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options
            .open(&file)
            .with_context(|| format!("cannot write {}", file.display()))?,
        format!("{password}\n").as_bytes(),
    )?;
    let made = store
        .create_account(&plinth_store::Account {
            name: "admin".into(),
            user_ref: "user:default/admin".into(),
            role: Some("platform-admin".into()),
            password_hash: hash,
        })
        .await;
    match made {
        // Replicas starting together: another one made it, and holds its
        // password; this file would hold a password for nothing.
        Err(plinth_store::StoreError::AccountExists(_)) => {
            let _ = std::fs::remove_file(&file);
            return Ok(());
        }
        other => other?,
    }
    eprintln!(
        "plinth: made the local account admin (a platform admin); its password is in {} (readable only by you)",
        file.display()
    );
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

/// Which due locations a pass of the schedule takes.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// Only those never refreshed (registered at start).
    New,
    All,
}

/// Scheduled refreshes, shared with the other replicas on the database:
/// each location is a job taken under a lease (see `plinth_store::Lease`).
struct Schedule {
    /// This process, as lease holder.
    replica: String,
    interval: Duration,
    lease: Duration,
}

impl Schedule {
    /// How often to look for due jobs: often enough to take over a dead
    /// replica's job soon after its lease runs out.
    fn poll(&self) -> Duration {
        self.interval
            .min(self.lease / 2)
            .min(Duration::from_secs(10))
            .max(Duration::from_millis(200))
    }

    fn ms(d: Duration) -> i64 {
        d.as_millis().min(i64::MAX as u128) as i64
    }

    /// Releases leases held by processes of this host that are gone: the
    /// process id is not running, or is this process's own (a restarted
    /// container gets the same one). Holders on other hosts are left to
    /// their lease time.
    async fn release_dead_leases(&self, store: &plinth_store::Store) -> anyhow::Result<()> {
        let (host, pid) = holder_host_pid(&self.replica).unwrap_or_default();
        for (location, holder, _) in store.leases().await? {
            let Some((their_host, their_pid)) = holder_host_pid(&holder) else {
                continue;
            };
            if their_host == host
                && holder != self.replica
                && (their_pid == pid || !running(their_pid))
            {
                tracing::info!(location.id = %location, holder = %holder, "released the lease of a process that is gone");
                store.release_lease(&location, &holder).await?;
            }
        }
        Ok(())
    }

    /// Takes and runs due jobs, one at a time, until none is left; problems
    /// are logged, not fatal.
    async fn run_due(&self, state: &AppState, which: Due) {
        // A refresh that failed stays due; it waits for the next poll
        // rather than being taken again at once, again and again.
        let mut failed = std::collections::HashSet::new();
        loop {
            let now = plinth_store::now_ms();
            let until = now + Self::ms(self.lease);
            let claimed = match which {
                Due::New => {
                    state
                        .store
                        .claim_due_new_location(&self.replica, now, until)
                        .await
                }
                Due::All => {
                    state
                        .store
                        .claim_due_location(&self.replica, now, until)
                        .await
                }
            };
            let location = match claimed {
                Ok(Some(location)) => location,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot take a scheduled refresh");
                    return;
                }
            };
            if failed.contains(&location.id) {
                self.release(state, &location).await;
                return;
            }
            if !self.run(state, &location).await {
                failed.insert(location.id);
            }
        }
    }

    async fn release(&self, state: &AppState, location: &plinth_store::Location) {
        if let Err(e) = state.store.release_lease(&location.id, &self.replica).await {
            tracing::warn!(error = %e, "cannot release a lease");
        }
    }

    /// Runs one claimed refresh; whether it was stored.
    async fn run(&self, state: &AppState, location: &plinth_store::Location) -> bool {
        let lease = plinth_store::Lease {
            holder: self.replica.clone(),
            interval_ms: Self::ms(self.interval),
            ..Default::default()
        };
        // Renewed while the refresh reads, so a long one keeps its job;
        // once it writes, the job is its own until the commit.
        let renewing = {
            let (store, id, holder, duration, writing) = (
                state.store.clone(),
                location.id.clone(),
                self.replica.clone(),
                self.lease,
                lease.writing.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(duration / 3).await;
                    if writing.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let until = plinth_store::now_ms() + Schedule::ms(duration);
                    match store.renew_lease(&id, &holder, until).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => tracing::warn!(error = %e, "cannot renew a lease"),
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let result = state.refresh_leased(location, &lease).await;
        renewing.abort();
        match result {
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
                    replica = %self.replica,
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
                true
            }
            Err(e) => {
                tracing::error!(
                    location.id = %location.id,
                    location.target = %location.target,
                    error = %e,
                    "refresh of {}:{} failed", location.kind, location.target
                );
                // Left due, for whichever replica polls next.
                self.release(state, location).await;
                false
            }
        }
    }
}

/// `(host, pid)` of a holder written by [`replica_id`].
fn holder_host_pid(holder: &str) -> Option<(String, u32)> {
    let mut parts = holder.rsplitn(3, ':');
    let _random = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    Some((parts.next()?.to_owned(), pid))
}

/// Whether a process with this id runs on this host (Linux: /proc); else
/// assumed running, so its lease is left to run out.
fn running(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Unique per process: the host (the pod's name on Kubernetes), the
/// process id and a random part, so a restarted pod is a new holder.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("plinth"));
    }
    let home =
        std::env::var_os("HOME").context("HOME is not set; give --data-dir or PLINTH_DATA_DIR")?;
    Ok(PathBuf::from(home).join(".local/share/plinth"))
}
