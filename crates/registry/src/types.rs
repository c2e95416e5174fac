//! The registry's records: versions, aliases, audit entries, and the checked names they use.
//!
//! Key decision: a version's card and lineage are stored as JSON documents, not columns,
//! so new lineage fields need no migration; the registry only interprets what it must
//! (model, version, status, artifact, aliases). Names are validated once here, for every
//! backend, and an alias may never be all digits so a `VERSION` argument given as a number
//! can never be mistaken for an alias.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// The alias serving follows: the version in production.
pub const CHAMPION: &str = "champion";
/// The alias of the candidate waiting to be promoted.
pub const CHALLENGER: &str = "challenger";
/// The longest model name, alias or tag key accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Whether a version passed its promotion gates when it was registered.
///
/// The status never changes after registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// A usable version: it may receive aliases.
    Registered,
    /// A version that failed its gates, kept for the audit trail; it can never be aliased.
    Rejected,
}

impl VersionStatus {
    /// The stored spelling: `registered` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Registered => "registered",
            VersionStatus::Rejected => "rejected",
        }
    }

    /// The status spelled `s`, as stored by [`VersionStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registered" => Some(VersionStatus::Registered),
            "rejected" => Some(VersionStatus::Rejected),
            _ => None,
        }
    }
}

/// Where a version's serialised model lives in the artifact store, and how to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The object-store key, e.g. `models/fraud/<sha256>.bin`.
    pub key: String,
    /// The SHA-256 of the bytes, as 64 lowercase hex digits.
    pub sha256: String,
    /// The length of the bytes.
    pub size: u64,
}

impl ArtifactRef {
    /// Checks that `sha256` is 64 lowercase hex digits and the key is non-empty.
    pub fn check(&self) -> Result<(), RegistryError> {
        let hex_ok = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(RegistryError::InvalidArtifact {
                reason: format!("sha256 {:?} is not 64 lowercase hex digits", self.sha256),
            });
        }
        if self.key.is_empty() {
            return Err(RegistryError::InvalidArtifact {
                reason: "the artifact key is empty".into(),
            });
        }
        Ok(())
    }
}

/// How a version was trained: what data, which parameters, which code.
///
/// Stored as JSON, so fields added later read as their defaults from older rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The earliest event time of the training window (RFC 3339), if bounded.
    #[serde(default)]
    pub data_from: Option<String>,
    /// The latest event time of the training window (RFC 3339), if bounded.
    #[serde(default)]
    pub data_to: Option<String>,
    /// The number of events read.
    pub events: u64,
    /// Rows in the training split.
    pub rows_train: u64,
    /// Rows in the holdout split.
    pub rows_holdout: u64,
    /// The share of positive labels in the training split.
    pub label_rate: f64,
    /// A fingerprint of the feature definitions, so serving can refuse a mismatch.
    pub feature_fingerprint: String,
    /// The estimator's parameters.
    #[serde(default)]
    pub params: serde_json::Value,
    /// The driftline version that trained it.
    pub driftline_version: String,
    /// The random seed, if the fit was seeded.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The champion version when this one was trained, if there was one.
    #[serde(default)]
    pub champion_at_training: Option<u32>,
}

/// A version to register; the registry assigns its number and timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewVersion {
    /// The model's name (see [`check_name`]).
    pub model: String,
    /// Whether it passed its gates.
    pub status: VersionStatus,
    /// The stored artifact.
    pub artifact: ArtifactRef,
    /// The model card (metrics, gate report); opaque to the registry.
    pub card: serde_json::Value,
    /// How it was trained.
    pub lineage: Lineage,
    /// Initial tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Why it is registered (or rejected), for the audit log.
    pub reason: String,
    /// Who registers it, for the audit log.
    pub actor: String,
}

/// A registered version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model's name.
    pub model: String,
    /// Its number: 1, 2, 3… per model, in registration order.
    pub version: u32,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Whether it passed its gates.
    pub status: VersionStatus,
    /// The stored artifact.
    pub artifact: ArtifactRef,
    /// The model card; opaque to the registry.
    pub card: serde_json::Value,
    /// How it was trained.
    pub lineage: Lineage,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// A named pointer to a version of a model (`champion`, `challenger`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// The model's name.
    pub model: String,
    /// The alias's name.
    pub name: String,
    /// The version it points at.
    pub version: u32,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A version was registered with status `registered`.
    Registered,
    /// A version was registered with status `rejected`.
    Rejected,
    /// An alias was set (created or moved).
    AliasSet,
    /// An alias was removed.
    AliasRemoved,
    /// A version was made champion by [`crate::Registry::promote`].
    Promoted,
    /// The champion was moved back by [`crate::Registry::rollback`].
    RolledBack,
    /// A tag was set on a version.
    TagSet,
}

impl AuditAction {
    /// Every action, for exhaustive tests and listings.
    pub const ALL: [AuditAction; 7] = [
        AuditAction::Registered,
        AuditAction::Rejected,
        AuditAction::AliasSet,
        AuditAction::AliasRemoved,
        AuditAction::Promoted,
        AuditAction::RolledBack,
        AuditAction::TagSet,
    ];

    /// The stored spelling, the same as the serde one (`alias_set`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Registered => "registered",
            AuditAction::Rejected => "rejected",
            AuditAction::AliasSet => "alias_set",
            AuditAction::AliasRemoved => "alias_removed",
            AuditAction::Promoted => "promoted",
            AuditAction::RolledBack => "rolled_back",
            AuditAction::TagSet => "tag_set",
        }
    }

    /// The action spelled `s`, as stored by [`AuditAction::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One append-only record of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Monotonic: a later change has a larger id.
    pub id: i64,
    /// When the change was made.
    pub at: DateTime<Utc>,
    /// The model changed.
    pub model: String,
    /// What was done.
    pub action: AuditAction,
    /// The alias concerned, for alias changes.
    pub alias: Option<String>,
    /// The version the alias pointed at before (None if it was absent).
    pub from_version: Option<u32>,
    /// The version registered, tagged, or pointed at after (None if removed).
    pub to_version: Option<u32>,
    /// Why, in the caller's words (for tags: `key=value`).
    pub reason: String,
    /// Who made the change.
    pub actor: String,
}

/// Checks a model name: non-empty, at most 64 characters of `[A-Za-z0-9_.-]`.
pub fn check_model_name(name: &str) -> Result<(), RegistryError> {
    check_name("model", name)
}

/// Checks an alias name: a valid name that is not all digits (digits mean a version).
pub fn check_alias_name(name: &str) -> Result<(), RegistryError> {
    check_name("alias", name)?;
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegistryError::invalid_name(
            "alias",
            name,
            "an alias cannot be all digits: a number names a version",
        ));
    }
    Ok(())
}

/// Checks a name of kind `what`: non-empty, at most 64 characters of `[A-Za-z0-9_.-]`,
/// and not `.` or `..` (names become path segments of artifact keys).
pub fn check_name(what: &'static str, name: &str) -> Result<(), RegistryError> {
    if name.is_empty() {
        return Err(RegistryError::invalid_name(what, name, "it is empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        let reason = format!("it is longer than {MAX_NAME_LEN} characters");
        return Err(RegistryError::invalid_name(what, name, reason));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        let reason = format!("{c:?} is not allowed: use letters, digits, '_', '.' and '-'");
        return Err(RegistryError::invalid_name(what, name, reason));
    }
    if name == "." || name == ".." {
        return Err(RegistryError::invalid_name(what, name, "it names a directory"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_allowed_alphabet() {
        assert!(check_model_name("fraud-v2.eu_west").is_ok());
        assert!(check_alias_name("canary-1").is_ok());
        assert!(check_model_name(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn names_are_refused_with_a_reason() {
        let reason = |r: Result<(), RegistryError>| match r {
            Err(RegistryError::InvalidName { reason, .. }) => reason,
            other => panic!("expected InvalidName, got {other:?}"),
        };
        assert!(reason(check_model_name("")).contains("empty"));
        assert!(reason(check_model_name(&"a".repeat(65))).contains("64"));
        assert!(reason(check_model_name("a/b")).contains("'/'"));
        assert!(reason(check_model_name("é")).contains("not allowed"));
        assert!(reason(check_alias_name("42")).contains("digits"));
        assert!(reason(check_model_name("..")).contains("directory"));
        assert!(check_model_name("42").is_ok(), "a model may be all digits");
    }

    #[test]
    fn stored_spellings_match_serde() {
        for action in AuditAction::ALL {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.as_str()));
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        for status in [VersionStatus::Registered, VersionStatus::Rejected] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(VersionStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn lineage_reads_rows_written_before_optional_fields_existed() {
        let old = serde_json::json!({
            "events": 10, "rows_train": 8, "rows_holdout": 2, "label_rate": 0.25,
            "feature_fingerprint": "abc", "driftline_version": "0.1.0"
        });
        let lineage: Lineage = serde_json::from_value(old).unwrap();
        assert_eq!(lineage.seed, None);
        assert_eq!(lineage.data_from, None);
        assert_eq!(lineage.champion_at_training, None);
        assert!(lineage.params.is_null());
    }

    #[test]
    fn artifact_refs_need_a_lowercase_sha256() {
        let mut a = ArtifactRef {
            key: "models/m/x.bin".into(),
            sha256: "ab".repeat(32),
            size: 3,
        };
        assert!(a.check().is_ok());
        a.sha256 = "AB".repeat(32);
        assert!(matches!(a.check(), Err(RegistryError::InvalidArtifact { .. })));
    }
}
