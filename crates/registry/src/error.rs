//! The errors of the registry and of the artifact store.
//!
//! Two enums, one per layer: [`RegistryError`] for versions, aliases and the audit log,
//! [`ArtifactError`] for stored bytes. Database errors carry what was being done, so
//! "database is locked" arrives as "registering a version: database is locked".

use std::path::PathBuf;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No version of this model was ever registered.
    #[error("model {model:?} not found: no version of it is registered")]
    ModelNotFound {
        /// The model asked for.
        model: String,
    },
    /// The model exists but not this version.
    #[error("version {version} of model {model:?} not found")]
    VersionNotFound {
        /// The model.
        model: String,
        /// The version asked for.
        version: u32,
    },
    /// The model has no alias of this name.
    #[error("alias {alias:?} of model {model:?} not found")]
    AliasNotFound {
        /// The model.
        model: String,
        /// The alias asked for.
        alias: String,
    },
    /// A rejected version cannot receive an alias.
    #[error(
        "version {version} of model {model:?} was rejected by its gates: \
         a rejected version cannot receive an alias"
    )]
    RejectedVersion {
        /// The model.
        model: String,
        /// The rejected version.
        version: u32,
    },
    /// A model name, alias or tag key breaks the naming rules.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// What was named: `model`, `alias` or `tag key`.
        what: &'static str,
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// An artifact reference is malformed.
    #[error("invalid artifact reference: {reason}")]
    InvalidArtifact {
        /// What is wrong.
        reason: String,
    },
    /// Rollback found no earlier champion to return to.
    #[error("nothing to roll back for model {model:?}: the champion has no earlier version")]
    NothingToRollBack {
        /// The model.
        model: String,
    },
    /// Promote without a version, but no challenger alias is set.
    #[error("model {model:?} has no challenger to promote: name a version or set the alias")]
    NoChallenger {
        /// The model.
        model: String,
    },
    /// The database refused or failed.
    #[error("{context}: {source}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A schema migration could not be applied, or the schema is newer than this program.
    #[error("schema migration {version} ({name}): {reason}")]
    Migration {
        /// The migration's number.
        version: i64,
        /// Its name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A stored row cannot be read back (bad JSON, unknown status, out-of-range number).
    #[error("corrupt registry row ({what}): {reason}")]
    Corrupt {
        /// Which row or column.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configured backend was compiled out of this program.
    #[error("the {backend} registry backend is not in this build (cargo feature {feature:?})")]
    NotCompiled {
        /// The backend as configured.
        backend: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// A file-system step failed (creating the database's directory).
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// An [`RegistryError::InvalidName`].
    pub fn invalid_name(what: &'static str, name: &str, reason: impl Into<String>) -> Self {
        RegistryError::InvalidName {
            what,
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// A [`RegistryError::Corrupt`].
    pub fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        RegistryError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(source: sqlx::Error) -> Self {
        RegistryError::Database {
            context: "database",
            source,
        }
    }
}

/// Adds what was being done to a database error.
pub(crate) trait DbContext<T> {
    /// Wraps the error in [`RegistryError::Database`] with `context`.
    fn ctx(self, context: &'static str) -> Result<T, RegistryError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, RegistryError> {
        self.map_err(|source| RegistryError::Database { context, source })
    }
}

/// Why artifact bytes could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The stored bytes do not hash to the recorded sha256: they are refused, never loaded.
    #[error(
        "artifact {key} refused: its sha256 does not match the registry \
         (expected {expected}, found {actual}); the stored file is corrupt or was replaced"
    )]
    Corrupt {
        /// The object key.
        key: String,
        /// The sha256 recorded at registration.
        expected: String,
        /// The sha256 of the bytes found.
        actual: String,
    },
    /// The bytes hash correctly but their length differs from the reference (a bad reference).
    #[error("artifact {key} refused: {actual} bytes stored but the reference says {expected}")]
    SizeMismatch {
        /// The object key.
        key: String,
        /// The size in the reference.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// No object at the key.
    #[error("artifact {key} not found in the artifact store")]
    NotFound {
        /// The object key.
        key: String,
    },
    /// A model name unusable in a key.
    #[error("invalid model name {name:?} for an artifact key: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The object store failed.
    #[error("artifact store, {key}: {source}")]
    Store {
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The store's settings are unusable (a malformed endpoint, say).
    #[error("artifact store settings: {source}")]
    Settings {
        /// What the object store refused.
        #[source]
        source: object_store::Error,
    },
    /// The configured backend was compiled out of this program.
    #[error("the {backend} artifact store is not in this build (cargo feature {feature:?})")]
    NotCompiled {
        /// The backend as configured.
        backend: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// A file-system step failed (creating the store's directory).
    #[error("creating artifact directory {}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Why the configured registry or artifact store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The registry failed to open (unreachable, refused, or migrated by a newer program).
    #[error("opening the {backend} model registry: {source}")]
    Registry {
        /// `registry.backend`.
        backend: &'static str,
        /// Why.
        #[source]
        source: RegistryError,
    },
    /// The artifact store failed to open.
    #[error("opening the {backend} artifact store: {source}")]
    Artifacts {
        /// `object_store.backend`.
        backend: &'static str,
        /// Why.
        #[source]
        source: ArtifactError,
    },
}
