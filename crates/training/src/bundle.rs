//! The stored artifact of a model version: the fitted model with everything needed to use
//! it and watch it (its feature layout, decision threshold and reference profile).
//!
//! Key decision: one JSON document, written from deterministic values only (no clock, no
//! host name), so the same data and seed give byte-identical bytes and therefore the same
//! sha256. The format version is read first, on its own, so a bundle from a newer
//! driftline is refused with a sentence rather than a serde error.

use driftline_core::profile::{self, ReferenceProfile};
use driftline_models::estimator::FittedModel;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Bumped whenever the serialised shape of [`ModelBundle`] changes.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// A fitted model and what travels with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelBundle {
    /// [`BUNDLE_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The driftline release that trained it.
    pub driftline_version: String,
    /// The fingerprint of the feature definitions it was trained on: serving refuses to
    /// feed it vectors of another layout.
    pub feature_fingerprint: String,
    /// Scores at or above this are decided positive.
    pub decision_threshold: f64,
    /// The fitted model (its input columns included).
    pub model: FittedModel,
    /// The training data's reference profile, for the drift monitor.
    pub profile: ReferenceProfile,
}

#[derive(Deserialize)]
struct FormatOnly {
    format_version: u32,
}

impl ModelBundle {
    /// The bundle as bytes (compact JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a bundle of finite numbers serialises")
    }

    /// Decodes and checks a bundle: its format version and its profile's must be ones this
    /// build reads.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TrainError> {
        let format: FormatOnly = serde_json::from_slice(bytes)
            .map_err(|e| TrainError::Bundle(format!("not a driftline model bundle: {e}")))?;
        if format.format_version != BUNDLE_FORMAT_VERSION {
            return Err(TrainError::Bundle(format!(
                "format version {} is not {BUNDLE_FORMAT_VERSION}, the one this driftline reads; \
                 retrain the model or use the driftline release that wrote it",
                format.format_version
            )));
        }
        let bundle: ModelBundle =
            serde_json::from_slice(bytes).map_err(|e| TrainError::Bundle(format!("decoding: {e}")))?;
        if !profile::READABLE_FORMATS.contains(&bundle.profile.format_version) {
            return Err(TrainError::Bundle(format!(
                "reference profile format {} is not one this driftline reads ({:?}); retrain \
                 the model or use the driftline release that wrote it",
                bundle.profile.format_version,
                profile::READABLE_FORMATS
            )));
        }
        Ok(bundle)
    }
}
