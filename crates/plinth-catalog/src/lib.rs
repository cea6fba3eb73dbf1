//! The catalog: reading catalog files into validated entities, and
//! ingesting registered locations into the store.
//!
//! This crate owns everything between files on disk and stored entities:
//! finding catalog files, reading them within limits, parsing YAML with
//! positions and validating each document, with every problem located at
//! `file:line:column` (`files`), and refreshing locations into the store
//! (`ingest`), and suggesting an entity for a location without one
//! (`analyze`).

pub mod analyze;
pub mod files;
pub mod ingest;

pub use files::{CheckReport, Finding, FindingCode, ReadOptions, check_paths, read_catalog_file};
