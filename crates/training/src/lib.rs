//! driftline-training: offline history turned into a judged, registered model version.
//!
//! - [`config`]: `[model]` and `[gates]` checked into a [`config::TrainingConfig`].
//! - [`rows`]: labelled point-in-time rows from history, and the train / holdout split.
//! - [`pipeline`]: fit, evaluate and profile a candidate; judge it against the champion on
//!   the same holdout; store its artifact; register it; alias it.
//! - [`bundle`]: the versioned artifact (model, feature fingerprint, threshold, profile).
//! - [`card`]: the model card kept in the registry.
//! - [`evaluate`]: a registered model scored on a file of labelled feature rows.
//! - [`error`]: the one error type of the pipeline, `TrainError`.
//!
//! Key decision: this crate is the one place that knows the whole training path, so the
//! CLI's `train` and the retraining loop inside `serve` run the same code.

#![warn(missing_docs)]

pub mod bundle;
pub mod card;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod pipeline;
pub mod rows;
