//! Ingestion: reading a registered location into the store.
//!
//! A refresh reads every file the location reaches (its target, and the
//! targets of Location entities, recursively, relative to their own file),
//! skips files whose content did not change since the last refresh, and
//! hands the rest to the store in one transaction. Rules:
//! - an entity whose new version is invalid keeps its last valid version,
//!   and the problem shows on it and on its location;
//! - entities that vanish from their location are removed;
//! - a file that cannot be read or parsed removes nothing;
//! - targets outside the allowed roots are refused.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use plinth_model::EntityRef;
use plinth_store::{
    FileUpdate, KnownFile, Lease, Location, NewEntity, RefreshOutcome, RefreshSummary, Store,
    StoreError, Unchanged,
};
use serde_json::Value;

use crate::files::{self, Finding, FindingCode, ReadOptions};

/// How locations are read.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    pub read: ReadOptions,
    /// Where git locations are checked out; git locations are refused
    /// without it.
    pub git_dir: Option<PathBuf>,
    /// What happens to entities their location no longer defines.
    pub orphans: plinth_store::OrphanPolicy,
    /// Directories that file and dir locations, and the targets of Location
    /// entities, must stay inside.
    pub allowed_roots: Vec<PathBuf>,
    /// Files handed to the store together; 0 means [`BATCH_FILES`].
    pub batch_files: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the refresh task stopped: {0}")]
    Task(String),
}

/// What a refresh did.
#[derive(Debug, Clone)]
pub struct RefreshReport {
    pub summary: RefreshSummary,
    pub outcome: RefreshOutcome,
    pub findings: Vec<Finding>,
    /// Files whose content was read; the others were unchanged by their
    /// file system description and cost a `stat`.
    pub files_read: usize,
}

/// The location types plinth reads.
pub const LOCATION_TYPES: [&str; 3] = ["file", "dir", "git"];

/// Checks a location before it is registered: a known type, and a target
/// inside the allowed roots. Returns the target as it will be stored
/// (absolute).
pub fn check_location(kind: &str, target: &str, options: &IngestOptions) -> Result<String, String> {
    if !LOCATION_TYPES.contains(&kind) {
        return Err(format!(
            "location type \"{kind}\" is not supported; use \"file\" (a file or a glob), \"dir\" (a directory) or \"git\" (a repository)"
        ));
    }
    if kind == "git" {
        if options.git_dir.is_none() {
            return Err(
                "git locations need a data directory for their checkouts; run plinth serve".into(),
            );
        }
        let mut git = GitTarget::parse(target)?;
        if let Some(path) = git.local_path() {
            let path = absolute(&path);
            if !options.allowed_roots.is_empty() && !inside_roots(&path, &options.allowed_roots) {
                return Err(outside_roots_message(&path, &options.allowed_roots));
            }
            git.repository = path.display().to_string();
        }
        return Ok(git.to_string());
    }
    let path = absolute(Path::new(target));
    if !options.allowed_roots.is_empty() && !inside_roots(&glob_base(&path), &options.allowed_roots)
    {
        return Err(outside_roots_message(&path, &options.allowed_roots));
    }
    Ok(path.display().to_string())
}

/// A git location's target: `<repository>[#<branch>][:<path>]`, for example
/// `https://git.example.com/org/catalog.git#main:services/catalog-info.yaml`.
/// Without a branch, the repository's default branch; without a path,
/// `catalog-info.yaml` at the root. The path may name a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitTarget {
    pub repository: String,
    pub branch: Option<String>,
    pub path: String,
}

impl GitTarget {
    pub fn parse(target: &str) -> Result<GitTarget, String> {
        let (repository, rest) = match target.rsplit_once('#') {
            Some((repo, rest)) => (repo, Some(rest)),
            None => (target, None),
        };
        let (branch, path) = match rest {
            Some(rest) => match rest.split_once(':') {
                Some((b, p)) => (b, p),
                None => (rest, ""),
            },
            None => ("", ""),
        };
        if repository.trim().is_empty() {
            return Err(format!(
                "git target \"{target}\" has no repository; write <repository>[#<branch>][:<path>]"
            ));
        }
        if branch.starts_with('-') || repository.starts_with('-') {
            return Err(format!(
                "git target \"{target}\" may not start a part with \"-\""
            ));
        }
        let path = path.trim_start_matches('/');
        if Path::new(path)
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(format!(
                "git target \"{target}\": the path may not leave the repository (\"..\")"
            ));
        }
        Ok(GitTarget {
            repository: repository.to_owned(),
            branch: (!branch.is_empty()).then(|| branch.to_owned()),
            path: if path.is_empty() {
                "catalog-info.yaml".to_owned()
            } else {
                path.to_owned()
            },
        })
    }

    /// The repository as a local path, when it is one (a path or file:// URL).
    fn local_path(&self) -> Option<PathBuf> {
        if let Some(p) = self.repository.strip_prefix("file://") {
            return Some(PathBuf::from(p));
        }
        let scp_like = self.repository.contains('@') && self.repository.contains(':');
        (!self.repository.contains("://") && !scp_like).then(|| PathBuf::from(&self.repository))
    }
}

impl std::fmt::Display for GitTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}#{}:{}",
            self.repository,
            self.branch.as_deref().unwrap_or(""),
            self.path
        )
    }
}

/// Brings the checkout of a git location up to date: a shallow clone the
/// first time (into a temporary directory, renamed when complete), a fetch
/// and hard reset after. Returns the checkout directory.
fn sync_checkout(git: &GitTarget, git_dir: &Path) -> Result<PathBuf, String> {
    let key = format!(
        "{:016x}",
        fnv1a(
            b"git",
            format!("{}#{}", git.repository, git.branch.as_deref().unwrap_or("")).as_bytes()
        )
    );
    let checkout = git_dir.join(&key);
    let run = |args: &[&str], dir: Option<&Path>| -> Result<(), String> {
        let mut cmd = std::process::Command::new("git");
        if let Some(d) = dir {
            cmd.arg("-C").arg(d);
        }
        let out = cmd
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run git: {e}; install git"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .trim();
        Err(format!(
            "git {} of {} failed: {reason}; check the repository and branch, and that plinth can reach it",
            args[0], git.repository
        ))
    };
    if checkout.join(".git").is_dir() {
        let mut fetch = vec!["fetch", "--quiet", "--depth", "1", "--no-tags", "origin"];
        fetch.push(git.branch.as_deref().unwrap_or("HEAD"));
        run(&fetch, Some(&checkout))?;
        run(
            &["reset", "--quiet", "--hard", "FETCH_HEAD"],
            Some(&checkout),
        )?;
        return Ok(checkout);
    }
    std::fs::create_dir_all(git_dir)
        .map_err(|e| format!("cannot create {}: {e}", git_dir.display()))?;
    let partial = git_dir.join(format!("{key}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let partial_str = partial.display().to_string();
    let mut clone = vec!["clone", "--quiet", "--depth", "1", "--no-tags"];
    if let Some(b) = &git.branch {
        clone.extend(["--branch", b.as_str()]);
    }
    clone.extend(["--", git.repository.as_str(), partial_str.as_str()]);
    let result = run(&clone, None);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &checkout)
        .map_err(|e| format!("cannot move the checkout into place: {e}"))?;
    Ok(checkout)
}

/// Refreshes one location: reads what changed and stores it atomically.
pub async fn refresh_location(
    store: &Store,
    location: &Location,
    options: &IngestOptions,
) -> Result<RefreshReport, IngestError> {
    refresh(store, location, options, None, None).await
}

/// [`refresh_location`] asked for by someone: `audit` makes its audit log
/// entry, written in the refresh's own transaction.
pub async fn refresh_location_audited(
    store: &Store,
    location: &Location,
    options: &IngestOptions,
    audit: plinth_store::RefreshAudit,
) -> Result<RefreshReport, IngestError> {
    refresh(store, location, options, None, Some(audit)).await
}

/// [`refresh_location`] as a scheduled job under `lease`: stored only if
/// the lease is still held, and the commit ends the job.
pub async fn refresh_location_leased(
    store: &Store,
    location: &Location,
    options: &IngestOptions,
    lease: &Lease,
) -> Result<RefreshReport, IngestError> {
    refresh(store, location, options, Some(lease), None).await
}

/// Refreshes only the file `path` of `location` (where an entity came
/// from), as Backstage refreshes one entity: the file is read, its
/// entities are written, and entities it no longer defines are removed;
/// the location's other files are not looked at. Gives `audit` back when
/// one file cannot answer for itself, and the caller refreshes the whole
/// location instead: a git location (its checkout must be fetched), a file
/// the location does not list, a file with Location targets before or
/// after (what it leads to may change), or one that is gone, unreadable
/// or no longer a catalog file.
pub async fn refresh_file(
    store: &Store,
    location: &Location,
    path: &str,
    options: &IngestOptions,
    audit: plinth_store::RefreshAudit,
) -> Result<Result<RefreshReport, plinth_store::RefreshAudit>, IngestError> {
    if !matches!(location.kind.as_str(), "file" | "dir") {
        return Ok(Err(audit));
    }
    let Some(known) = store.location_file(&location.id, path).await? else {
        return Ok(Err(audit));
    };
    if !known.targets.is_empty()
        || (!options.allowed_roots.is_empty()
            && !inside_roots(Path::new(path), &options.allowed_roots))
    {
        return Ok(Err(audit));
    }
    let (key, opts) = (path.to_owned(), options.clone());
    let origin = format!("{}:{}", location.kind, location.target);
    let read = tokio::task::spawn_blocking(move || {
        let fingerprint = opts.read.kinds.declared().join(",");
        let previous = HashMap::from([(key.clone(), known)]);
        // Not explicit: a file that holds no entity any more is left to
        // the whole location's refresh, which knows whether it still
        // belongs to it.
        read_one(
            Path::new(&key),
            &key,
            false,
            &fingerprint,
            &previous,
            &origin,
            &opts,
        )
    })
    .await
    .map_err(|e| IngestError::Task(e.to_string()))?;
    let (files, unchanged, findings) = match read {
        Read::Changed(update, _) if !update.targets.is_empty() => return Ok(Err(audit)),
        Read::Changed(update, findings) => (vec![update], Vec::new(), findings),
        Read::Unchanged { stat, .. } => {
            let same = Unchanged {
                path: path.to_owned(),
                stat,
            };
            (Vec::new(), vec![same], Vec::new())
        }
        Read::Unreadable(_) | Read::NotCatalog => return Ok(Err(audit)),
    };
    let outcome = if findings.is_empty() {
        RefreshOutcome::Ok
    } else {
        RefreshOutcome::Problems(format!(
            "{} problem{} in {path}",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        ))
    };
    let mut writer = store
        .refresh_writer(&location.id, options.orphans, None)
        .files_only()
        .audited(audit);
    writer.write(&files, &unchanged).await?;
    let summary = writer.finish(&outcome).await?;
    Ok(Ok(RefreshReport {
        summary,
        outcome,
        findings,
        files_read: 1,
    }))
}

async fn refresh(
    store: &Store,
    location: &Location,
    options: &IngestOptions,
    lease: Option<&Lease>,
    audit: Option<plinth_store::RefreshAudit>,
) -> Result<RefreshReport, IngestError> {
    let started = std::time::Instant::now();
    // The known files are loaded while the reader walks the location (the
    // walk does not need them): at 500,000 files each takes seconds.
    let (known, previous) = tokio::sync::oneshot::channel();
    let (loc, opts) = (location.clone(), options.clone());
    // Batches go from the reading threads to this task, which writes each
    // while the next is read; the channel holds one, so memory stays at a
    // few batches however large the location.
    let (batches, mut incoming) = tokio::sync::mpsc::channel::<Batch>(1);
    let reader = tokio::task::spawn_blocking(move || {
        let origin = format!("{}:{}", loc.kind, loc.target);
        let mut previous = Known::Coming(previous);
        read_location(&loc, &opts, &mut previous, &origin, &mut |batch| {
            batches.blocking_send(batch).is_ok()
        })
    });
    let loaded = store.location_files(&location.id).await;
    let loaded = match loaded {
        Ok(files) => {
            let _ = known.send(files);
            Ok(())
        }
        // Dropping `known` stops the reader.
        Err(e) => Err(e),
    };
    let mut writer = store.refresh_writer(&location.id, options.orphans, lease);
    if let Some(audit) = audit {
        writer = writer.audited(audit);
    }
    let mut waited = std::time::Duration::ZERO;
    let written = async {
        loaded?;
        loop {
            let asked = std::time::Instant::now();
            let Some(batch) = incoming.recv().await else {
                break;
            };
            waited += asked.elapsed();
            writer.write(&batch.files, &batch.unchanged).await?;
            // Freeing the batch's entities (0.5 s of a 100,000-entity first
            // ingest) is done on another thread, not between two writes.
            tokio::task::spawn_blocking(move || drop(batch));
        }
        Ok::<_, StoreError>(())
    }
    .await;
    // On an error the reader stops at its next batch.
    drop(incoming);
    let plan = reader.await.map_err(|e| IngestError::Task(e.to_string()))?;
    written?;
    let summary = writer.finish(&plan.outcome).await?;
    // Where a slow refresh spends its time: waiting for the reading
    // threads, or writing (the store logs its own steps).
    tracing::debug!(
        location.id = %location.id,
        total_ms = started.elapsed().as_millis() as u64,
        waiting_for_reads_ms = waited.as_millis() as u64,
        "refresh timed"
    );
    Ok(RefreshReport {
        summary,
        outcome: plan.outcome,
        findings: plan.findings,
        files_read: plan.files_read,
    })
}

/// Files handed to the store together by default: enough to amortise each
/// statement, few enough that a batch of prepared entities stays small.
pub const BATCH_FILES: usize = 1_000;

/// Part of a location's files, in the order of the walk.
struct Batch {
    files: Vec<FileUpdate>,
    unchanged: Vec<Unchanged>,
}

/// The files a location had, as the store remembers them: on their way
/// while the reader walks, then at hand.
enum Known {
    Coming(tokio::sync::oneshot::Receiver<HashMap<String, KnownFile>>),
    Here(HashMap<String, KnownFile>),
    Failed,
}

impl Known {
    /// Waits for the files; `None` when they will not come (the store
    /// failed, and the refresh answers that error).
    fn get(&mut self) -> Option<&HashMap<String, KnownFile>> {
        if matches!(self, Known::Coming(_))
            && let Known::Coming(coming) = std::mem::replace(self, Known::Failed)
            && let Ok(files) = coming.blocking_recv()
        {
            *self = Known::Here(files);
        }
        match self {
            Known::Here(files) => Some(files),
            _ => None,
        }
    }
}

/// What reading a location gave, besides its batches.
struct Plan {
    files_read: usize,
    outcome: RefreshOutcome,
    findings: Vec<Finding>,
}

/// Reads a location, handing each batch of files to `sink` as it is read;
/// stops early when `sink` answers `false`. `origin` is the registered
/// location, as `type:target`, for the `managed-by-origin-location`
/// annotation.
fn read_location(
    location: &Location,
    options: &IngestOptions,
    previous: &mut Known,
    origin: &str,
    sink: &mut dyn FnMut(Batch) -> bool,
) -> Plan {
    let failed = |message: String| Plan {
        files_read: 0,
        outcome: RefreshOutcome::Failed(message),
        findings: Vec::new(),
    };
    if location.kind == "git" {
        // Read the path inside a fresh checkout, confined to it.
        let git = match GitTarget::parse(&location.target) {
            Ok(g) => g,
            Err(e) => return failed(e),
        };
        let Some(git_dir) = &options.git_dir else {
            return failed("git locations need a data directory for their checkouts".into());
        };
        let checkout = match sync_checkout(&git, git_dir) {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        let inside = checkout.join(&git.path);
        let local = Location {
            kind: if inside.is_dir() { "dir" } else { "file" }.into(),
            target: inside.display().to_string(),
            ..location.clone()
        };
        let scoped = IngestOptions {
            allowed_roots: vec![checkout],
            ..options.clone()
        };
        return read_location(&local, &scoped, previous, origin, sink);
    }
    let target = absolute(Path::new(&location.target));
    if !options.allowed_roots.is_empty()
        && !inside_roots(&glob_base(&target), &options.allowed_roots)
    {
        return failed(outside_roots_message(&target, &options.allowed_roots));
    }
    // The files the location itself names; `true` when they must hold
    // entities. A directory is walked on its own thread, its files read
    // as they are found.
    let listed: Vec<(PathBuf, bool)> = match location.kind.as_str() {
        "file" if is_glob(&target) => match expand_glob(&target) {
            Ok(paths) => paths.into_iter().map(|p| (p, true)).collect(),
            Err(e) => return failed(e),
        },
        "file" => {
            if !target.is_file() {
                return failed(format!("{} cannot be read: no such file", target.display()));
            }
            vec![(target.clone(), true)]
        }
        "dir" => {
            if !target.is_dir() {
                return failed(format!("{} is not a directory", target.display()));
            }
            Vec::new()
        }
        other => {
            return failed(format!(
                "location type \"{other}\" is not supported; use \"file\" or \"dir\""
            ));
        }
    };
    let batch_files = match options.batch_files {
        0 => BATCH_FILES,
        n => n,
    };
    std::thread::scope(|scope| {
        let first: Box<dyn Iterator<Item = (PathBuf, bool)>> = if location.kind == "dir" {
            // Unbounded: the walk goes on while the known files load (a
            // path each, as the whole walk held before it streamed).
            let (found, walked) = std::sync::mpsc::channel();
            let root = [target.clone()];
            scope.spawn(move || {
                files::walk_catalog_files(&root, &mut |f| found.send((f.path, false)).is_ok())
            });
            Box::new(walked.into_iter())
        } else {
            Box::new(listed.into_iter())
        };
        let waiting = std::time::Instant::now();
        let Some(previous) = previous.get() else {
            return failed("the store did not answer".into());
        };
        tracing::debug!(
            waited_ms = waiting.elapsed().as_millis() as u64,
            "known files loaded"
        );
        read_waves(first, batch_files, previous, origin, options, sink)
    })
}

/// Reads the files of `first`, then the targets of the Location entities
/// they hold, and so on: breadth first, one wave of files at a time, each
/// wave a batch at a time on every core. Batches keep the order of a
/// sequential walk, so which file defines an entity first never depends on
/// timing.
fn read_waves(
    first: Box<dyn Iterator<Item = (PathBuf, bool)> + '_>,
    batch_files: usize,
    previous: &HashMap<String, KnownFile>,
    origin: &str,
    options: &IngestOptions,
    sink: &mut dyn FnMut(Batch) -> bool,
) -> Plan {
    let fingerprint = options.read.kinds.declared().join(",");
    let mut plan = Plan {
        files_read: 0,
        outcome: RefreshOutcome::Ok,
        findings: Vec::new(),
    };
    let mut wave = first;
    let mut seen = HashSet::new();
    // Small batches first: the writer starts as soon as a few files are
    // read instead of idling through a whole batch, then they double.
    let mut size = (batch_files / 16).max(1);
    loop {
        let mut next: Vec<(PathBuf, bool)> = Vec::new();
        loop {
            let part: Vec<(PathBuf, String, bool)> = wave
                .by_ref()
                .filter_map(|(path, explicit)| {
                    // Found by walking the (absolute) directory: already
                    // absolute, and resolving each of 100,000 paths again
                    // costs seconds.
                    let path = if explicit { absolute(&path) } else { path };
                    let key = path.display().to_string();
                    seen.insert(key.clone()).then_some((path, key, explicit))
                })
                .take(size)
                .collect();
            if part.is_empty() {
                break;
            }
            size = (size * 2).min(batch_files);
            let read = files::parallel_map(&part, |(path, key, explicit)| {
                read_one(
                    path,
                    key,
                    *explicit,
                    &fingerprint,
                    previous,
                    origin,
                    options,
                )
            });
            let mut batch = Batch {
                files: Vec::new(),
                unchanged: Vec::new(),
            };
            for ((_, key, _), outcome) in part.iter().zip(read) {
                if !matches!(outcome, Read::Unchanged { read: false, .. }) {
                    plan.files_read += 1;
                }
                match outcome {
                    Read::Unreadable(finding) => {
                        plan.findings.push(finding);
                        // Unreadable: keep what it gave last time.
                        if previous.contains_key(key) {
                            batch.unchanged.push(Unchanged {
                                path: key.clone(),
                                stat: None,
                            });
                        }
                    }
                    Read::Unchanged { targets, stat, .. } => {
                        next.extend(targets.into_iter().map(|t| (PathBuf::from(t), true)));
                        batch.unchanged.push(Unchanged {
                            path: key.clone(),
                            stat,
                        });
                    }
                    Read::NotCatalog => {}
                    Read::Changed(update, findings) => {
                        plan.findings.extend(findings);
                        next.extend(update.targets.iter().map(|t| (PathBuf::from(t), true)));
                        batch.files.push(update);
                    }
                }
            }
            if !sink(batch) {
                return plan; // the writer stopped: its error is the answer
            }
        }
        if next.is_empty() {
            break;
        }
        wave = Box::new(next.into_iter());
    }
    if !plan.findings.is_empty() {
        plan.outcome = RefreshOutcome::Problems(format!(
            "{} problem{} in the location's files",
            plan.findings.len(),
            if plan.findings.len() == 1 { "" } else { "s" }
        ));
    }
    plan
}

/// What reading one file of a location gave.
enum Read {
    Unreadable(Finding),
    /// Same as last time: its entities stay; its targets are followed.
    /// `stat` is a newer description of the file to remember.
    Unchanged {
        targets: Vec<String>,
        stat: Option<String>,
        /// Whether its content was read to find that out.
        read: bool,
    },
    /// YAML without entities found in a directory: not a catalog file.
    NotCatalog,
    Changed(FileUpdate, Vec<Finding>),
}

fn read_one(
    path: &Path,
    key: &str,
    explicit: bool,
    fingerprint: &str,
    previous: &HashMap<String, KnownFile>,
    origin: &str,
    options: &IngestOptions,
) -> Read {
    let known = previous.get(key);
    // Unchanged by the file system's account: not even read.
    let stat = file_stat(path, fingerprint);
    if let (Some(stat), Some(known)) = (&stat, known)
        && known.stat == *stat
    {
        return Read::Unchanged {
            targets: known.targets.clone(),
            stat: None,
            read: false,
        };
    }
    let text = match files::read_text(path, options.read.max_file_bytes) {
        Ok(text) => text,
        Err((line, message)) => return Read::Unreadable(Finding::read_error(key, line, message)),
    };
    let hash = format!("{:016x}", fnv1a(fingerprint.as_bytes(), text.as_bytes()));
    let stat = stat.unwrap_or_default();
    if let Some(known) = known
        && known.hash == hash
    {
        return Read::Unchanged {
            targets: known.targets.clone(),
            stat: (known.stat != stat).then_some(stat),
            read: true,
        };
    }
    let mut findings = Vec::new();
    let mut update = read_file(path, key, &text, hash, origin, options, &mut findings);
    update.stat = stat;
    if !explicit && update.entities.is_empty() && update.findings.is_empty() {
        return Read::NotCatalog;
    }
    Read::Changed(update, findings)
}

/// How long after its last change a file's description is trusted: a file
/// written twice within the file system's timestamp granularity, with the
/// same size, would otherwise look unchanged.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// The file's device, inode, size, modification and change times, with the
/// reading configuration; `None` when it cannot be trusted (changed within
/// [`SETTLED`], or no metadata), so the file is read.
#[cfg(unix)]
fn file_stat(path: &Path, fingerprint: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let changed = std::time::UNIX_EPOCH
        + std::time::Duration::new(m.ctime().try_into().ok()?, m.ctime_nsec().try_into().ok()?);
    if changed.elapsed().map_or(true, |age| age < SETTLED) {
        return None;
    }
    Some(format!(
        "{:016x}:{}:{}:{}:{}.{}:{}.{}",
        fnv1a(fingerprint.as_bytes(), b""),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

#[cfg(not(unix))]
fn file_stat(_: &Path, _: &str) -> Option<String> {
    None
}

/// Parses one changed file into what the store needs.
fn read_file(
    path: &Path,
    key: &str,
    text: &str,
    hash: String,
    origin: &str,
    options: &IngestOptions,
    all_findings: &mut Vec<Finding>,
) -> FileUpdate {
    let mut located = Vec::new();
    let (_, mut findings) =
        files::visit_catalog_text(text, key, &options.read, |e| located.push(e));
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut update = FileUpdate {
        path: key.to_owned(),
        hash,
        ..FileUpdate::default()
    };
    for e in located {
        let entity = e.entity;
        if entity.kind() == "Location" {
            follow_targets(
                &entity,
                dir,
                key,
                e.line,
                options,
                &mut update.targets,
                &mut findings,
            );
        }
        let relations = entity.relations();
        let entity_ref = entity.entity_ref().clone();
        let mut body = entity.into_value();
        if let Some(annotations) = body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .map(|m| {
                m.entry("annotations")
                    .or_insert_with(|| Value::Object(Default::default()))
            })
            .and_then(Value::as_object_mut)
        {
            annotations.insert(
                "backstage.io/managed-by-location".into(),
                format!("file:{key}").into(),
            );
            annotations.insert(
                "backstage.io/managed-by-origin-location".into(),
                origin.into(),
            );
        }
        update
            .entities
            .push(NewEntity::new(entity_ref, &body, relations));
    }
    // The last valid version of an invalid entity stays, with its problems.
    let mut invalid: HashMap<EntityRef, Vec<Value>> = HashMap::new();
    for f in &findings {
        match f.code {
            FindingCode::InvalidEntity => {
                if let Some(r) = f
                    .entity
                    .as_deref()
                    .filter(|l| !l.contains('?'))
                    .and_then(|l| l.parse().ok())
                {
                    invalid.entry(r).or_default().push(serde_json::json!({
                        "type": "backstage.io/catalog-processing",
                        "level": "error",
                        "message": format!("{}:{}:{}: {}{}", f.file, f.line, f.column,
                            f.field.as_deref().map(|p| format!("{p}: ")).unwrap_or_default(), f.message),
                        "error": {"name": "InputError", "message": f.message},
                    }));
                }
            }
            FindingCode::ParseError | FindingCode::ReadError => update.incomplete = true,
        }
    }
    update.invalid = invalid.into_iter().collect();
    update.findings = findings
        .iter()
        .map(|f| serde_json::to_value(f).unwrap_or_default())
        .collect();
    all_findings.extend(findings);
    update
}

/// Resolves a Location entity's `target`/`targets` relative to its file.
fn follow_targets(
    entity: &plinth_model::Entity,
    dir: &Path,
    file: &str,
    line: u32,
    options: &IngestOptions,
    targets: &mut Vec<String>,
    findings: &mut Vec<Finding>,
) {
    let spec = entity.spec();
    let kind = entity.spec_str("type");
    let optional = entity.spec_str("presence") == Some("optional");
    let listed = spec
        .and_then(|s| s.get("targets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(entity.spec_str("target"));
    let mut problem = |message: String| {
        findings.push(Finding {
            file: file.to_owned(),
            line,
            column: 1,
            entity: Some(entity.entity_ref().to_string()),
            field: Some("spec.targets".into()),
            code: FindingCode::InvalidEntity,
            message,
        })
    };
    for t in listed {
        if let Some(k) = kind.filter(|k| !LOCATION_TYPES.contains(k)) {
            problem(format!(
                "target \"{t}\" has type \"{k}\", which plinth does not read; use \"file\" or \"dir\""
            ));
            continue;
        }
        if t.contains("://") {
            problem(format!(
                "target \"{t}\" is a URL; plinth reads file and dir targets"
            ));
            continue;
        }
        let path = absolute(&dir.join(t));
        if !options.allowed_roots.is_empty()
            && !inside_roots(&glob_base(&path), &options.allowed_roots)
        {
            problem(outside_roots_message(&path, &options.allowed_roots));
            continue;
        }
        let paths = if is_glob(&path) {
            expand_glob(&path).unwrap_or_default()
        } else if path.exists() {
            vec![path]
        } else {
            if !optional {
                problem(format!(
                    "target \"{t}\" does not exist ({})",
                    path.display()
                ));
            }
            continue;
        };
        targets.extend(paths.into_iter().map(|p| p.display().to_string()));
    }
}

/// An absolute, normalised path (`.` and `..` resolved lexically, then
/// symlinks resolved where the path exists), so that targets cannot escape
/// their roots through `..` or links.
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    std::fs::canonicalize(&out).unwrap_or(out)
}

fn inside_roots(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(absolute(r)))
}

fn outside_roots_message(path: &Path, roots: &[PathBuf]) -> String {
    format!(
        "{} is outside the allowed roots ({}); move it there or add its directory to catalog.allowed_roots",
        path.display(),
        roots
            .iter()
            .map(|r| absolute(r).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn is_glob(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// The directory a glob starts from: its components before the first wildcard.
fn glob_base(path: &Path) -> PathBuf {
    path.components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect()
}

/// Files matching a glob with `*`, `?` and `**`, sorted.
fn expand_glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let base = glob_base(pattern);
    let rest: Vec<String> = pattern
        .strip_prefix(&base)
        .unwrap_or(pattern)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    stack.push(path);
                }
            } else {
                let rel: Vec<String> = path
                    .strip_prefix(&base)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if glob_match(&rest, &rel) {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(format!("no file matches {}", pattern.display()));
    }
    Ok(out)
}

fn glob_match(pattern: &[String], path: &[String]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(p), _) if p == "**" => {
            glob_match(&pattern[1..], path) || (!path.is_empty() && glob_match(pattern, &path[1..]))
        }
        (Some(p), Some(s)) => {
            segment_match(p.as_bytes(), s.as_bytes()) && glob_match(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

fn segment_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            segment_match(&p[1..], s) || (!s.is_empty() && segment_match(p, &s[1..]))
        }
        (Some(b'?'), Some(_)) => segment_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => segment_match(&p[1..], &s[1..]),
        _ => false,
    }
}

/// FNV-1a, 64 bits: a stable content hash for change detection.
fn fnv1a(prefix: &[u8], bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in prefix.iter().chain([0u8].iter()).chain(bytes) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests;
