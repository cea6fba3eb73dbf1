//! Prometheus metrics, in the text exposition format, kept in-process.
//!
//! Small on purpose: counters and fixed-bucket histograms behind one mutex,
//! rendered at `/metrics`. HTTP series are labelled by route template
//! (`/api/catalog/entities/by-name/{kind}/{namespace}/{name}`), never by raw
//! path, so their number stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Bucket bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Labels as `k="v",...`, sorted by name for stable output.
type Labels = String;

#[derive(Debug, Default)]
struct Series {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "plinth_http_requests_total",
        "counter",
        "HTTP requests answered, by method, route and status.",
    ),
    (
        "plinth_http_request_duration_seconds",
        "histogram",
        "HTTP request latency, by method and route.",
    ),
    (
        "plinth_catalog_refreshes_total",
        "counter",
        "Location refreshes, by outcome (ok, problems, failed, error).",
    ),
    (
        "plinth_catalog_refresh_duration_seconds",
        "histogram",
        "Location refresh duration.",
    ),
    (
        "plinth_catalog_refresh_entities_total",
        "counter",
        "Entities handled by refreshes, by change.",
    ),
    (
        "plinth_catalog_refresh_findings_total",
        "counter",
        "Problems found in catalog files by refreshes.",
    ),
];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    pub fn count(&self, name: &'static str, pairs: &[(&str, &str)], by: u64) {
        if let Ok(mut s) = self.series.lock() {
            *s.counters.entry((name, labels(pairs))).or_default() += by;
        }
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&str, &str)], took: Duration) {
        if let Ok(mut s) = self.series.lock() {
            s.histograms
                .entry((name, labels(pairs)))
                .or_default()
                .observe(took.as_secs_f64());
        }
    }

    /// Records one refresh of a location.
    pub fn refresh(
        &self,
        outcome: &str,
        took: Duration,
        summary: Option<&plinth_store::RefreshSummary>,
        findings: usize,
    ) {
        self.count("plinth_catalog_refreshes_total", &[("outcome", outcome)], 1);
        self.observe("plinth_catalog_refresh_duration_seconds", &[], took);
        if let Some(s) = summary {
            for (change, n) in [
                ("added", s.added),
                ("updated", s.updated),
                ("removed", s.removed),
                ("unchanged", s.unchanged),
                ("conflict", s.conflicts),
            ] {
                self.count(
                    "plinth_catalog_refresh_entities_total",
                    &[("change", change)],
                    n as u64,
                );
            }
        }
        self.count(
            "plinth_catalog_refresh_findings_total",
            &[],
            findings as u64,
        );
    }

    /// The text exposition format.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let Ok(s) = self.series.lock() else {
            return out;
        };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in s.counters.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", braces(l));
            }
            for ((n, l), h) in s.histograms.iter().filter(|((n, _), _)| n == name) {
                for (bound, c) in BUCKETS.iter().zip(h.counts) {
                    let le = format!("le=\"{bound}\"");
                    let _ = writeln!(out, "{n}_bucket{} {c}", braces(&join(l, &le)));
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    braces(&join(l, "le=\"+Inf\"")),
                    h.count
                );
                let _ = writeln!(out, "{n}_sum{} {}", braces(l), h.sum);
                let _ = writeln!(out, "{n}_count{} {}", braces(l), h.count);
            }
        }
        for (name, help, value) in extra {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

fn braces(l: &str) -> String {
    if l.is_empty() {
        String::new()
    } else {
        format!("{{{l}}}")
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a},{b}")
    }
}

/// Counts and times every request by its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    state.metrics.count(
        "plinth_http_requests_total",
        &[("method", &method), ("route", &route), ("status", &status)],
        1,
    );
    state.metrics.observe(
        "plinth_http_request_duration_seconds",
        &[("method", &method), ("route", &route)],
        started.elapsed(),
    );
    res
}
