//! The one error of the training pipeline, wrapping the layers below it.
//!
//! Key decision: variants say which step failed (configuration, history, the data, the
//! fit, the registry, the artifact); a failed gate is *not* an error but an outcome
//! ([`crate::pipeline::TrainOutcome`]), because a rejected version is still registered.

use driftline_features::offline::OfflineError;
use driftline_models::error::ModelError;
use driftline_registry::{ArtifactError, RegistryError};

/// Why training, evaluation or loading a model could not be done.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// `[model]` is invalid; the message names the key.
    #[error("{0}")]
    Config(String),
    /// Reading offline history failed.
    #[error("reading offline history: {0}")]
    History(#[from] OfflineError),
    /// There is not enough (or not the right) labelled data to train or evaluate on.
    #[error("{0}")]
    Data(String),
    /// A data file could not be read.
    #[error("reading {path}: {reason}")]
    DataFile {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Fitting or applying the model failed.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// The registry refused or failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The artifact could not be stored or was refused on read.
    #[error("artifact: {0}")]
    Artifact(#[from] ArtifactError),
    /// A stored model bundle could not be decoded.
    #[error("model bundle: {0}")]
    Bundle(String),
}
