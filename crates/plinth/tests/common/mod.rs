//! Starting the real `plinth serve` for tests.

#![allow(dead_code)] // Each test binary uses part of this.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running `plinth serve`; killed on drop.
pub struct Server {
    pub child: Child,
    /// Lines it writes to stderr.
    pub lines: Receiver<String>,
}

impl Server {
    /// Starts `plinth serve --listen 127.0.0.1:0 --data-dir DATA ARGS...` in `cwd`.
    pub fn start(cwd: &Path, data: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plinth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(args)
            .current_dir(cwd)
            .env_remove("PLINTH_CONFIG")
            .stderr(Stdio::piped())
            .spawn()
            .expect("plinth starts");
        let lines = Server::lines_of(&mut child);
        Server { child, lines }
    }

    /// A `plinth serve` the test started itself, with its stderr piped.
    pub fn from_child(mut child: Child) -> Server {
        let lines = Server::lines_of(&mut child);
        Server { child, lines }
    }

    fn lines_of(child: &mut Child) -> Receiver<String> {
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        lines
    }

    /// Waits for a stderr line starting with `prefix`; returns the rest.
    pub fn wait_for(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Some(rest.to_owned());
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Waits until it serves; returns its catalog API base URL.
    pub fn base_url(&self) -> String {
        self.wait_for(
            "plinth: serving the catalog API on ",
            Duration::from_secs(120),
        )
        .expect("plinth announces its address")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch directory under the target directory, removed on drop.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Skips with a printed reason on a developer's machine; fails under CI.
#[allow(unused_imports)] // not every test binary skips
pub use plinth_store::testing::unavailable;

pub mod browser;

/// Copies the test's npm package (`tests/<name>/`: `files`) into the target
/// directory and installs it there once (`npm ci` when a lockfile is among
/// the files, else `npm install`); `None` when npm fails (no registry?).
pub fn npm_package(name: &str, files: &[&str], installed: &str) -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    if !dir.join("node_modules").join(installed).exists() {
        let command = if files.contains(&"package-lock.json") {
            "ci"
        } else {
            "install"
        };
        let ok = Command::new("npm")
            .args([command, "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    Some(dir)
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// What a run of the `plinth` binary left.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `plinth` binary in `dir` with `args`, with no `PLINTH_*`
/// configuration from the environment.
pub fn plinth(dir: &Path, args: &[&str]) -> Run {
    plinth_env(dir, args, &[])
}

/// As [`plinth`], with these environment variables set.
pub fn plinth_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plinth"));
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PLINTH_") {
            command.env_remove(name);
        }
    }
    let out = command
        .envs(env.iter().copied())
        .output()
        .expect("plinth runs");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Writes `n` components, one file each, a hundred to a directory, each
/// depending on the next (so every one has a relation).
pub fn write_components(dir: &Path, n: usize) {
    for i in 0..n {
        let d = dir.join(format!("svc-{:03}", i / 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("c{i}.yaml")),
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: c{i}\n  tags: [rust]\nspec:\n  type: service\n  lifecycle: production\n  owner: team-{}\n  dependsOn: [component:c{}]\n",
                i % 50,
                (i + 1) % n
            ),
        )
        .unwrap();
    }
}

/// How many components the store holds, and how many of them have their
/// `dependsOn` relation: equal when nothing is half-written.
pub async fn component_counts(store: &plinth_store::Store) -> (u64, u64) {
    use plinth_store::{EntityQuery, Filter};
    let count = |key: &str, values: Vec<String>| EntityQuery {
        filter: vec![vec![Filter {
            key: key.into(),
            values,
        }]],
        limit: Some(0),
        ..EntityQuery::default()
    };
    let all = store
        .query_entities(&count("kind", vec!["component".into()]))
        .await
        .unwrap()
        .total;
    let related = store
        .query_entities(&count("relations.dependson", vec![]))
        .await
        .unwrap()
        .total;
    (all, related)
}

/// One HTTP call (GET without a body, POST with one): status and JSON body.
pub fn http(url: &str, body: Option<&serde_json::Value>) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = match body {
        None => agent.get(url).call(),
        Some(b) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(b.to_string().as_bytes()),
    }
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    let text = response.body_mut().read_to_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (response.status().as_u16(), json)
}

/// A port nothing listens on now, for a process that must be told its
/// port before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
