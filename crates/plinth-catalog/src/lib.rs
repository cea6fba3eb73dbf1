//! The catalog: reading catalog files into validated entities.
//!
//! This crate owns everything between files on disk and entities: finding
//! catalog files, reading them within limits, parsing YAML with positions
//! and validating each document, with every problem located at
//! `file:line:column`. Ingestion into a store and the catalog service come
//! with the store layer.

pub mod files;

pub use files::{CheckReport, Finding, FindingCode, ReadOptions, check_paths, read_catalog_file};
