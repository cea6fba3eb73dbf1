//! Catalog files on disk: finding them, reading them within limits, and
//! turning each YAML document into a valid entity or located problems.
//!
//! Nothing here stops at the first bad thing: an unreadable file, a broken
//! document or an invalid entity each become a [`Finding`] with a place, and
//! every other file and document is still read.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use plinth_model::{Entity, FieldPath, Kinds, Segment, validate_entity};
use plinth_yaml::{Limits, Pos, PosTree, Step, documents};
use serde::Serialize;

/// How catalog files are read and checked.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Files larger than this are refused unread.
    pub max_file_bytes: u64,
    pub yaml_limits: Limits,
    pub kinds: Kinds,
}

pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            yaml_limits: Limits::default(),
            kinds: Kinds::default(),
        }
    }
}

/// Why a finding was raised. The codes are stable: scripts read them from
/// `--format json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    /// The file could not be read (missing, unreadable, too large, binary,
    /// not UTF-8, a symlink loop).
    ReadError,
    /// A document is not well-formed YAML, or exceeds the YAML limits.
    ParseError,
    /// A document is an entity that breaks the rules.
    InvalidEntity,
}

/// One thing wrong, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// `kind:namespace/name` of the entity, where there is one.
    pub entity: Option<String>,
    /// The field the problem is about, where there is one.
    pub field: Option<String>,
    pub code: FindingCode,
    pub message: String,
}

/// `file:line:column: kind:namespace/name: message`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: ",
            self.file,
            self.line,
            self.column,
            self.entity.as_deref().unwrap_or("-")
        )?;
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Finding {
    /// A problem with a whole file or directory (it could not be read).
    pub fn read_error(file: &str, line: u32, message: String) -> Finding {
        Finding {
            file: file.to_owned(),
            line,
            column: 1,
            entity: None,
            field: None,
            code: FindingCode::ReadError,
            message,
        }
    }
}

/// A valid entity and where it was written.
#[derive(Debug, Clone)]
pub struct LocatedEntity {
    pub entity: Entity,
    pub line: u32,
    pub column: u32,
}

/// What one file held.
#[derive(Debug, Default)]
pub struct FileContents {
    pub entities: Vec<LocatedEntity>,
    /// Documents that were entities but invalid.
    pub invalid_entities: usize,
    pub findings: Vec<Finding>,
}

impl FileContents {
    fn read_error(file: &str, line: u32, message: String) -> FileContents {
        FileContents {
            findings: vec![Finding::read_error(file, line, message)],
            ..FileContents::default()
        }
    }
}

/// Reads one catalog file: every document becomes an entity or findings.
/// `display` is how the file is named in findings.
pub fn read_catalog_file(path: &Path, display: &str, options: &ReadOptions) -> FileContents {
    match read_text(path, options.max_file_bytes) {
        Ok(text) => parse_catalog_text(&text, display, options),
        Err((line, message)) => FileContents::read_error(display, line, message),
    }
}

/// Parses catalog YAML text: every document becomes an entity or findings.
/// Empty and null documents are skipped, as Backstage skips them.
pub fn parse_catalog_text(text: &str, display: &str, options: &ReadOptions) -> FileContents {
    let mut entities = Vec::new();
    let (invalid_entities, findings) =
        visit_catalog_text(text, display, options, |e| entities.push(e));
    FileContents {
        entities,
        invalid_entities,
        findings,
    }
}

/// Like [`parse_catalog_text`], handing each valid entity to `on_entity` as
/// it is read instead of keeping them; returns the number of invalid
/// entities and the findings.
pub fn visit_catalog_text(
    text: &str,
    display: &str,
    options: &ReadOptions,
    mut on_entity: impl FnMut(LocatedEntity),
) -> (usize, Vec<Finding>) {
    let mut invalid_entities = 0;
    let mut findings = Vec::new();
    for doc in documents(text, &options.yaml_limits) {
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                findings.push(Finding {
                    file: display.to_owned(),
                    line: e.pos.line,
                    column: e.pos.column,
                    entity: None,
                    field: None,
                    code: FindingCode::ParseError,
                    message: e.message,
                });
                continue;
            }
        };
        if doc.value.is_null() {
            continue;
        }
        let start = doc.positions.pos();
        match validate_entity(doc.value, &options.kinds) {
            Ok(entity) => on_entity(LocatedEntity {
                entity,
                line: start.line,
                column: start.column,
            }),
            Err(invalid) => {
                invalid_entities += 1;
                let entity = (invalid.label != "?").then_some(invalid.label);
                for problem in invalid.problems {
                    let pos = locate(&doc.positions, &problem.path);
                    findings.push(Finding {
                        file: display.to_owned(),
                        line: pos.line,
                        column: pos.column,
                        entity: entity.clone(),
                        field: (!problem.path.is_root()).then(|| problem.path.to_string()),
                        code: FindingCode::InvalidEntity,
                        message: problem.message,
                    });
                }
            }
        }
    }
    (invalid_entities, findings)
}

fn locate(positions: &PosTree, path: &FieldPath) -> Pos {
    positions.locate(path.segments().iter().map(|s| match s {
        Segment::Key(k) => Step::Key(k),
        Segment::Index(i) => Step::Index(*i),
    }))
}

/// Reads a file as UTF-8 text within `max_bytes`; on failure, the line to
/// report and what to do.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String, (u32, String)> {
    let io_error = |e: std::io::Error| {
        let message = match e.raw_os_error() {
            Some(40) => "cannot be read: it is a symbolic link loop".to_string(),
            _ if e.kind() == std::io::ErrorKind::NotFound => {
                if fs::symlink_metadata(path).is_ok() {
                    "cannot be read: it is a symbolic link to nothing".to_string()
                } else {
                    "cannot be read: no such file or directory".to_string()
                }
            }
            _ => format!("cannot be read: {e}"),
        };
        (1, message)
    };
    let file = fs::File::open(path).map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if meta.is_dir() {
        return Err((1, "is a directory, not a file".into()));
    }
    if meta.len() > max_bytes {
        return Err((1, too_large(meta.len(), max_bytes)));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The size may change between stat and read; never read past the limit.
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err((1, too_large(bytes.len() as u64, max_bytes)));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err((
            line_of(&bytes, at),
            "is a binary file, not YAML text (it holds a NUL byte); catalog files must be UTF-8 YAML".into(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = line_of(e.as_bytes(), at);
        (line, "is not UTF-8 text; save it as UTF-8".to_string())
    })
}

fn line_of(bytes: &[u8], at: usize) -> u32 {
    bytes[..at].iter().filter(|&&b| b == b'\n').count() as u32 + 1
}

fn too_large(size: u64, max: u64) -> String {
    format!(
        "is {} bytes, over the limit of {max} bytes; split it into several files, or raise the limit (--max-file-size, catalog.max_file_size)",
        size
    )
}

/// A file to read, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    pub path: PathBuf,
    /// Named on the command line (always read), or found in a directory
    /// (read only when it holds entities).
    pub explicit: bool,
}

/// The catalog files under `roots`: each root that is a file, and every
/// `*.yaml` or `*.yml` under each root that is a directory, sorted, each
/// once. Hidden directories and `node_modules` are not entered. Problems on
/// the way (a missing root, a symlink loop) become findings.
pub fn find_catalog_files(roots: &[PathBuf]) -> (Vec<FoundFile>, Vec<Finding>) {
    let mut files = Vec::new();
    let findings = walk_catalog_files(roots, &mut |f| {
        files.push(f);
        true
    });
    (files, findings)
}

/// [`find_catalog_files`], handing each file to `found` as the walk finds
/// it (in the same order), so that reading can begin before a large tree
/// is walked; the walk stops when `found` answers `false`.
pub fn walk_catalog_files(
    roots: &[PathBuf],
    found: &mut dyn FnMut(FoundFile) -> bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut seen = HashSet::new();
    for root in roots {
        let go_on = match fs::metadata(root) {
            Ok(m) if m.is_dir() => {
                let mut ancestors = Vec::new();
                let mut walker = Walker {
                    ancestors: &mut ancestors,
                    found: &mut *found,
                    findings: &mut findings,
                    seen: &mut seen,
                };
                let fd = rustix::fs::open(root, DIRECTORY, rustix::fs::Mode::empty());
                walker.walk(root, fd, file_id(&m))
            }
            Ok(m) => {
                !seen.insert(file_id(&m))
                    || found(FoundFile {
                        path: root.clone(),
                        explicit: true,
                    })
            }
            // Let the reader say precisely what is wrong.
            Err(_) => found(FoundFile {
                path: root.clone(),
                explicit: true,
            }),
        };
        if !go_on {
            break;
        }
    }
    findings
}

/// A file's identity on disk, the same through every link to it.
type FileId = (u64, u64);

fn file_id(meta: &fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

struct Walker<'a> {
    ancestors: &'a mut Vec<FileId>,
    found: &'a mut dyn FnMut(FoundFile) -> bool,
    findings: &'a mut Vec<Finding>,
    seen: &'a mut HashSet<FileId>,
}

/// How a directory is opened to be listed (following a link to it).
const DIRECTORY: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::DIRECTORY)
    .union(rustix::fs::OFlags::CLOEXEC);

fn stat_id(stat: &rustix::fs::Stat) -> FileId {
    #[allow(clippy::unnecessary_cast)] // the field types differ by platform
    (stat.st_dev as u64, stat.st_ino as u64)
}

impl Walker<'_> {
    /// Walks `dir`, opened as `fd`; `false` when told to stop. Directories
    /// are opened and looked into relative to their parent's descriptor:
    /// no path is resolved again, and a directory's identity is a `fstat`
    /// of its open descriptor.
    fn walk(&mut self, dir: &Path, fd: rustix::io::Result<OwnedFd>, id: FileId) -> bool {
        if self.ancestors.contains(&id) {
            let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            self.findings.push(Finding::read_error(
                &dir.display().to_string(),
                1,
                format!(
                    "is a symbolic link loop back to {}; skipped",
                    canonical.display()
                ),
            ));
            return true;
        }
        let unreadable = |e: rustix::io::Errno| {
            Finding::read_error(
                &dir.display().to_string(),
                1,
                format!("cannot be read: {}", std::io::Error::from(e)),
            )
        };
        let mut listing = match fd.and_then(rustix::fs::Dir::new) {
            Ok(listing) => listing,
            Err(e) => {
                self.findings.push(unreadable(e));
                return true;
            }
        };
        // The entry's type and inode come with the directory listing: only
        // directories and links cost a look of their own (a regular file is
        // on its directory's device), which matters in repositories of many
        // files.
        let mut children: Vec<(OsString, rustix::fs::FileType, u64)> = listing
            .by_ref()
            .filter_map(|e| e.ok())
            .map(|e| {
                let name = OsStr::from_bytes(e.file_name().to_bytes()).to_owned();
                (name, e.file_type(), e.ino())
            })
            .filter(|(name, _, _)| name != "." && name != "..")
            .collect();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        // Children are opened relative to it (infallible on Linux; where
        // not, the directory is reported like one that cannot be read).
        let here = match listing.fd() {
            Ok(here) => here,
            Err(e) => {
                self.findings.push(unreadable(e));
                return true;
            }
        };
        self.ancestors.push(id);
        let mut go_on = true;
        for (name, listed, ino) in children {
            use rustix::fs::FileType;
            let text = name.to_string_lossy();
            let is_yaml = text.ends_with(".yaml") || text.ends_with(".yml");
            // Whether it is a directory, and its identity when known here.
            let kind = match listed {
                FileType::RegularFile if !is_yaml => continue,
                FileType::RegularFile => Ok((false, Some((id.0, ino)))),
                FileType::Directory => Ok((true, None)),
                _ => rustix::fs::statat(here, name.as_os_str(), rustix::fs::AtFlags::empty()).map(
                    |s| {
                        let dir = FileType::from_raw_mode(s.st_mode) == FileType::Directory;
                        (dir, Some(stat_id(&s)))
                    },
                ),
            };
            let child = dir.join(&name);
            go_on = match kind {
                Ok((true, _)) if text.starts_with('.') || text == "node_modules" => true,
                Ok((true, known)) => {
                    let fd = rustix::fs::openat(
                        here,
                        name.as_os_str(),
                        DIRECTORY,
                        rustix::fs::Mode::empty(),
                    );
                    let child_id = match &fd {
                        Ok(fd) => rustix::fs::fstat(fd).map(|s| stat_id(&s)).ok(),
                        Err(_) => None,
                    };
                    let child_id = child_id.or(known).unwrap_or((id.0, ino));
                    self.walk(&child, fd, child_id)
                }
                Ok((false, Some(child_id))) if is_yaml => {
                    !self.seen.insert(child_id)
                        || (self.found)(FoundFile {
                            path: child,
                            explicit: false,
                        })
                }
                Ok(_) => true,
                // A broken or looping link named like a catalog file: report it.
                Err(_) if is_yaml => (self.found)(FoundFile {
                    path: child,
                    explicit: true,
                }),
                Err(_) => true,
            };
            if !go_on {
                break;
            }
        }
        self.ancestors.pop();
        go_on
    }
}

/// Whether a file found in a directory that holds no valid entity is still
/// a catalog file: it is named `catalog-info.yaml`, or its text looks like
/// Backstage entities (an apiVersion under `backstage.io/`, or a kind the
/// catalog knows), so that broken catalog files are still reported. Other
/// YAML in a repository (CI workflows, Kubernetes manifests, Helm charts,
/// OpenAPI files) is not.
fn holds_entities(path: &Path, text: &str, kinds: &Kinds) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name == "catalog-info.yaml" || name == "catalog-info.yml" || looks_like_entities(text, kinds)
}

fn looks_like_entities(text: &str, kinds: &Kinds) -> bool {
    text.lines().any(|line| {
        if let Some(v) = line.strip_prefix("apiVersion:") {
            return v
                .trim()
                .trim_matches(['"', '\''])
                .starts_with("backstage.io/");
        }
        if let Some(v) = line.strip_prefix("kind:") {
            let v = v.trim().trim_matches(['"', '\'']);
            return kinds.case_insensitive_match(v).is_some();
        }
        false
    })
}

/// Everything found by [`check_paths`].
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Catalog files read.
    pub files: usize,
    /// YAML files found in directories that hold no entities, left alone.
    pub skipped_files: usize,
    pub valid_entities: usize,
    pub invalid_entities: usize,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether any input could not be read or parsed.
    pub fn has_unreadable_input(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.code != FindingCode::InvalidEntity)
    }
}

/// Reads and validates every catalog file under `roots`, on all cores.
pub fn check_paths(roots: &[PathBuf], options: &ReadOptions) -> CheckReport {
    let (files, mut findings) = find_catalog_files(roots);
    let results = parallel_map(&files, |found| check_file(found, options));
    let mut report = CheckReport::default();
    for outcome in results {
        if !outcome.counted {
            report.skipped_files += 1;
            continue;
        }
        report.files += 1;
        report.valid_entities += outcome.valid;
        report.invalid_entities += outcome.invalid;
        findings.extend(outcome.findings);
    }
    findings.sort();
    report.findings = findings;
    report
}

/// `f` applied to every item on all cores, results in the items' order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// What checking one file leaves: counts and findings, not the entities, so
/// that checking a large tree needs little memory.
#[derive(Default)]
struct FileOutcome {
    counted: bool,
    valid: usize,
    invalid: usize,
    findings: Vec<Finding>,
}

fn check_file(found: &FoundFile, options: &ReadOptions) -> FileOutcome {
    let display = found.path.display().to_string();
    let text = match read_text(&found.path, options.max_file_bytes) {
        Ok(text) => text,
        Err((line, message)) => {
            return FileOutcome {
                counted: true,
                findings: FileContents::read_error(&display, line, message).findings,
                ..FileOutcome::default()
            };
        }
    };
    let mut valid = 0;
    let (invalid, findings) = visit_catalog_text(&text, &display, options, |_| valid += 1);
    let counted = found.explicit || valid > 0 || holds_entities(&found.path, &text, &options.kinds);
    if !counted {
        return FileOutcome::default();
    }
    FileOutcome {
        counted,
        valid,
        invalid,
        findings,
    }
}

#[cfg(test)]
mod tests;
