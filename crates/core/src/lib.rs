//! driftline-core: the contract every other crate speaks, with no I/O.
//!
//! - [`config`]: typed configuration (`driftline.toml`), precedence defaults < file <
//!   environment < flags, checked into [`config::Config`].
//! - [`drift`]: the named drift tests and per-column overrides that configuration spells.
//! - [`contract`]: the event schema declared in configuration and the validator that
//!   turns raw JSON or CSV records into typed [`event::Event`]s, reporting every bad field.
//! - [`features`]: declarative feature definitions and the column layout of a
//!   [`features::FeatureVector`].
//! - [`profile`]: the reference profile of a training set that drift tests compare live traffic with.
//! - [`time`]: event-time timestamps (microseconds, UTC) and window spans ("1h", "7d").
//!
//! Key decision: everything here is pure (no files, no clock, no network), so the same
//! validation and feature definitions run unchanged in ingest, training and serving.

pub mod config;
pub mod contract;
pub mod drift;
pub mod event;
pub mod features;
pub mod profile;
pub mod time;
