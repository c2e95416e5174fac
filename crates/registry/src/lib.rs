//! driftline-registry: which model versions exist, which one serves, and who changed it.
//!
//! - [`types`]: the records (versions, lineage, aliases, audit entries) and name rules.
//! - [`error`]: [`RegistryError`] and [`ArtifactError`].
//! - [`registry`]: the [`Registry`] trait every backend implements, and the rollback
//!   semantics shared by all of them.
//! - [`election`]: which one process controls a model's rollouts and retraining.
//! - [`migrate`]: the embedded-migration runner's plan, shared by backends.
//! - `sql`: what every change does, written once over the queries a SQL backend answers.
//! - [`sqlite`]: the embedded backend, one SQLite file safe for several processes.
//! - [`postgres`]: the scale-out backend, one PostgreSQL database shared by every replica,
//!   with changes pushed to watchers by LISTEN/NOTIFY (cargo feature `postgres`).
//! - [`artifacts`]: content-addressed, hash-verified model bytes in a local directory or
//!   an S3 bucket (cargo feature `s3`).
//! - [`config`]: the backends chosen in `driftline.toml` ([`RegistryConfig`],
//!   [`ArtifactConfig`]) and [`open`], which the CLI and the server both call.
//!
//! Key decision: metadata (versions, aliases, audit) lives in a database and bytes live in
//! an object store; they meet only in [`ArtifactRef`], whose sha256 every read verifies.

#![warn(missing_docs)]

pub mod artifacts;
pub mod config;
pub mod election;
pub mod error;
pub mod migrate;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod registry;
mod sql;
pub mod sqlite;
pub mod types;

#[cfg(test)]
mod suite;
#[cfg(all(test, any(feature = "postgres", feature = "s3")))]
mod testenv;

pub use artifacts::ArtifactStore;
#[cfg(feature = "s3")]
pub use artifacts::S3Options;
pub use config::{ArtifactConfig, RegistryConfig, Stores, open};
pub use election::Leadership;
pub use error::{ArtifactError, OpenError, RegistryError};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresRegistry};
pub use registry::{Registry, rollback_target};
pub use sqlite::{SqliteOptions, SqliteRegistry};
pub use types::{
    Alias, ArtifactRef, AuditAction, AuditEntry, CHALLENGER, CHAMPION, Lineage, ModelVersion, NewVersion,
    VersionStatus,
};
