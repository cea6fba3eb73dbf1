//! `plinth export` and `plinth import`: moving a catalog between stores.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use plinth_store::transfer::ImportError;

use crate::cli::{ExportArgs, ImportArgs};

fn data_dir(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => super::serve::default_data_dir(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir(&args.data_dir)?;
    let db = dir.join("plinth.db");
    if args.database.is_none() && !db.is_file() {
        anyhow::bail!(
            "no store in {}: give the data directory of a plinth that has run (--data-dir or PLINTH_DATA_DIR)",
            dir.display()
        );
    }
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let (lines, from) = runtime()?.block_on(async {
        let (store, from) = super::open_store(args.database.as_deref(), &dir).await?;
        let lines = store
            .export(&mut |line| {
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")
            })
            .await?;
        anyhow::Ok((lines, from))
    })?;
    out.flush().context("cannot write the export")?;
    eprintln!("plinth: exported {lines} lines from {from}");
    Ok(ExitCode::SUCCESS)
}

pub fn import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir(&args.data_dir)?;
    if args.database.is_none() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        ))
    };
    let name = args.file.display().to_string();
    let mut lines = input.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (result, into) = runtime()?.block_on(async {
        let (store, into) = super::open_store(args.database.as_deref(), &dir).await?;
        anyhow::Ok((store.import(&mut lines).await, into))
    })?;
    match result {
        Ok(summary) => {
            eprintln!(
                "plinth: imported {} locations, {} files, {} entities, {} conflicts into {}",
                summary.locations, summary.files, summary.entities, summary.conflicts, into
            );
            Ok(ExitCode::SUCCESS)
        }
        // Bad input is the user's to fix: name the line, exit 1.
        Err(ImportError::Line { line, message }) => {
            eprintln!("{name}:{line}: {message}\nnothing was imported");
            Ok(ExitCode::from(1))
        }
        Err(e @ ImportError::NotEmpty(_)) => {
            eprintln!("error: {e}\nnothing was imported");
            Ok(ExitCode::from(1))
        }
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}
