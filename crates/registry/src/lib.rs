//! driftline-registry: which model versions exist, which one serves, and who changed it.
//!
//! - [`types`]: the records (versions, lineage, aliases, audit entries) and name rules.
//! - [`error`]: [`RegistryError`] and [`ArtifactError`].
//! - [`registry`]: the [`Registry`] trait every backend implements, and the rollback
//!   semantics shared by all of them.
//! - [`migrate`]: the embedded-migration runner's plan, shared by backends.
//! - [`sqlite`]: the embedded backend, one SQLite file safe for several processes.
//! - [`artifacts`]: content-addressed, hash-verified model bytes in an object store.
//! - [`config`]: [`RegistryConfig`], the serde-tagged backend choice that builds a
//!   `Arc<dyn Registry>`.
//!
//! Key decision: metadata (versions, aliases, audit) lives in a database and bytes live in
//! an object store; they meet only in [`ArtifactRef`], whose sha256 every read verifies.

#![warn(missing_docs)]

pub mod artifacts;
pub mod config;
pub mod error;
pub mod migrate;
pub mod registry;
pub mod sqlite;
pub mod types;

#[cfg(test)]
mod suite;

pub use artifacts::ArtifactStore;
pub use config::RegistryConfig;
pub use error::{ArtifactError, RegistryError};
pub use registry::{Registry, rollback_target};
pub use sqlite::{SqliteOptions, SqliteRegistry};
pub use types::{
    Alias, ArtifactRef, AuditAction, AuditEntry, CHALLENGER, CHAMPION, Lineage, ModelVersion, NewVersion,
    VersionStatus,
};
