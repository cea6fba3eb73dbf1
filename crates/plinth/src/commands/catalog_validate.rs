//! `plinth catalog validate PATH...`

use std::io::{self, Write};
use std::process::ExitCode;

use plinth_catalog::{CheckReport, check_paths};

use crate::cli::{Format, ValidateArgs};
use crate::config::Config;

pub fn run(config: &Config, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let options = config.read_options(&args.catalog)?;
    let report = check_paths(&args.paths, &options);
    let written = match args.format {
        Format::Text => write_text(&report),
        Format::Json => write_json(&report),
    };
    // A closed pipe (`| head`) is not an error worth a message.
    if let Err(e) = written
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(exit_code(&report))
}

/// 2 when input could not be read or parsed, 1 when an entity is invalid.
fn exit_code(report: &CheckReport) -> ExitCode {
    if report.has_unreadable_input() {
        ExitCode::from(2)
    } else if report.invalid_entities > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn write_text(report: &CheckReport) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    for finding in &report.findings {
        writeln!(out, "{finding}")?;
    }
    out.flush()?;
    eprintln!("{}", summary(report));
    Ok(())
}

fn write_json(report: &CheckReport) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)?;
    out.flush()
}

fn summary(report: &CheckReport) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut s = format!(
        "checked {}: {} valid, {} invalid",
        plural(report.files, "catalog file", "catalog files"),
        plural(report.valid_entities, "entity", "entities"),
        report.invalid_entities,
    );
    let unreadable = report
        .findings
        .iter()
        .filter(|f| f.code != plinth_catalog::FindingCode::InvalidEntity)
        .count();
    if unreadable > 0 {
        s.push_str(&format!(
            ", {} reading or parsing",
            plural(unreadable, "problem", "problems")
        ));
    }
    if report.skipped_files > 0 {
        s.push_str(&format!(
            "; skipped {} without entities",
            plural(report.skipped_files, "YAML file", "YAML files")
        ));
    }
    if report.files == 0 {
        s.push_str("; no catalog files found");
    }
    s
}
