//! The registry's behaviour, written once for every SQL backend.
//!
//! Key decision: a backend supplies transactions ([`Tx`]: a dozen plain queries in its own
//! SQL and column types) and the locking that serialises writers; numbering, alias rules,
//! promotion, rollback and what each change appends to the audit log live here, so SQLite
//! and PostgreSQL cannot drift apart in behaviour. Each operation runs inside the caller's
//! transaction and returns the audit entry it appended; the caller commits and notifies.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::RegistryError;
use crate::registry::{Result, is_champion_change, rollback_target};
use crate::types::{
    Alias, AuditAction, AuditEntry, CHALLENGER, CHAMPION, ModelVersion, NewVersion, VersionStatus,
    check_alias_name, check_model_name, check_name,
};

/// Tags by version, then key.
pub(crate) type TagMap = BTreeMap<u32, BTreeMap<String, String>>;

/// The queries a backend's transaction answers. Versions come back without tags.
#[async_trait]
pub(crate) trait Tx: Send {
    /// Whether the model has a registered version.
    async fn model_exists(&mut self, model: &str) -> Result<bool>;
    /// Creates the model's counter row if absent, increments it and returns the new number.
    async fn next_version(&mut self, model: &str, at: DateTime<Utc>) -> Result<u32>;
    /// Inserts a version row (its tags are set separately).
    async fn insert_version(&mut self, version: &ModelVersion) -> Result<()>;
    /// One version (`Some`) or all of them, ordered by number, without tags.
    async fn version_rows(&mut self, model: &str, version: Option<u32>) -> Result<Vec<ModelVersion>>;
    /// The tags of one version or of all versions of a model.
    async fn tags(&mut self, model: &str, version: Option<u32>) -> Result<TagMap>;
    /// Sets a tag (insert or overwrite).
    async fn set_tag(&mut self, model: &str, version: u32, key: &str, value: &str) -> Result<()>;
    /// The version an alias points at, if set.
    async fn alias_target(&mut self, model: &str, alias: &str) -> Result<Option<u32>>;
    /// Creates or moves an alias.
    async fn upsert_alias(&mut self, model: &str, alias: &str, version: u32, at: DateTime<Utc>)
    -> Result<()>;
    /// Deletes an alias.
    async fn delete_alias(&mut self, model: &str, alias: &str) -> Result<()>;
    /// The model's aliases, sorted by name.
    async fn aliases(&mut self, model: &str) -> Result<Vec<Alias>>;
    /// The names of every model, sorted.
    async fn models(&mut self) -> Result<Vec<String>>;
    /// Appends an audit entry and returns its id.
    async fn append_audit(&mut self, entry: &NewAudit<'_>, at: DateTime<Utc>) -> Result<i64>;
    /// The latest `limit` audit entries, of one model or of all, newest first.
    async fn audit(&mut self, model: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Every audit entry of `model` about `alias`, oldest first.
    async fn alias_history(&mut self, model: &str, alias: &str) -> Result<Vec<AuditEntry>>;
}

/// An audit entry to append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewAudit<'a> {
    pub model: &'a str,
    pub action: AuditAction,
    pub alias: Option<&'a str>,
    pub from_version: Option<u32>,
    pub to_version: Option<u32>,
    pub reason: &'a str,
    pub actor: &'a str,
}

/// Appends `entry` now and returns it as stored.
async fn append(tx: &mut impl Tx, entry: NewAudit<'_>) -> Result<AuditEntry> {
    let at = now();
    let id = tx.append_audit(&entry, at).await?;
    Ok(AuditEntry {
        id,
        at,
        model: entry.model.to_owned(),
        action: entry.action,
        alias: entry.alias.map(str::to_owned),
        from_version: entry.from_version,
        to_version: entry.to_version,
        reason: entry.reason.to_owned(),
        actor: entry.actor.to_owned(),
    })
}

/// The current time, truncated to the microseconds every backend stores.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A stored version number as `u32`.
pub(crate) fn to_version(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| RegistryError::corrupt(what, format!("version {v} out of range")))
}

/// Parses a JSON column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| RegistryError::corrupt(what, e))
}

/// Serialises a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| RegistryError::corrupt(what, e))
}

/// A stored status or action, as a corrupt-row error when unknown.
pub(crate) fn parse_stored<T>(text: &str, what: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(text).ok_or_else(|| RegistryError::corrupt(what, format!("unknown value {text:?}")))
}

/// Fails with [`RegistryError::ModelNotFound`] unless the model has a version.
async fn require_model(tx: &mut impl Tx, model: &str) -> Result<()> {
    check_model_name(model)?;
    if tx.model_exists(model).await? {
        Ok(())
    } else {
        Err(RegistryError::ModelNotFound {
            model: model.to_owned(),
        })
    }
}

/// One version with its tags, or the not-found error naming the model or the version.
pub(crate) async fn version(tx: &mut impl Tx, model: &str, version: u32) -> Result<ModelVersion> {
    require_model(tx, model).await?;
    let mut found = tx
        .version_rows(model, Some(version))
        .await?
        .pop()
        .ok_or_else(|| RegistryError::VersionNotFound {
            model: model.to_owned(),
            version,
        })?;
    found.tags = tx
        .tags(model, Some(version))
        .await?
        .remove(&version)
        .unwrap_or_default();
    Ok(found)
}

/// Every version of a model with its tags, oldest first.
pub(crate) async fn versions(tx: &mut impl Tx, model: &str) -> Result<Vec<ModelVersion>> {
    require_model(tx, model).await?;
    let mut rows = tx.version_rows(model, None).await?;
    let mut tags = tx.tags(model, None).await?;
    for v in &mut rows {
        v.tags = tags.remove(&v.version).unwrap_or_default();
    }
    Ok(rows)
}

/// The model's aliases (the model must exist).
pub(crate) async fn aliases(tx: &mut impl Tx, model: &str) -> Result<Vec<Alias>> {
    require_model(tx, model).await?;
    tx.aliases(model).await
}

/// A version that may receive an alias: it exists and was not rejected.
async fn aliasable(tx: &mut impl Tx, model: &str, v: u32) -> Result<()> {
    match version(tx, model, v).await?.status {
        VersionStatus::Registered => Ok(()),
        VersionStatus::Rejected => Err(RegistryError::RejectedVersion {
            model: model.to_owned(),
            version: v,
        }),
    }
}

/// Checks what `register` is given, before any write.
fn check_new_version(new: &NewVersion) -> Result<()> {
    check_model_name(&new.model)?;
    new.artifact.check()?;
    if i64::try_from(new.artifact.size).is_err() {
        return Err(RegistryError::InvalidArtifact {
            reason: format!("size {} is too large", new.artifact.size),
        });
    }
    new.tags.keys().try_for_each(|k| check_name("tag key", k))
}

/// Registers a version under the next number; audit `Registered` or `Rejected`.
pub(crate) async fn register(tx: &mut impl Tx, new: NewVersion) -> Result<(ModelVersion, AuditEntry)> {
    check_new_version(&new)?;
    let created_at = now();
    let number = tx.next_version(&new.model, created_at).await?;
    let stored = ModelVersion {
        model: new.model,
        version: number,
        created_at,
        status: new.status,
        artifact: new.artifact,
        card: new.card,
        lineage: new.lineage,
        tags: new.tags,
    };
    tx.insert_version(&stored).await?;
    for (key, value) in &stored.tags {
        tx.set_tag(&stored.model, number, key, value).await?;
    }
    let action = match stored.status {
        VersionStatus::Registered => AuditAction::Registered,
        VersionStatus::Rejected => AuditAction::Rejected,
    };
    let entry = NewAudit {
        model: &stored.model,
        action,
        alias: None,
        from_version: None,
        to_version: Some(number),
        reason: &new.reason,
        actor: &new.actor,
    };
    let audit = append(tx, entry).await?;
    Ok((stored, audit))
}

/// Points `alias` at `version`; audit `AliasSet` from the previous target.
pub(crate) async fn set_alias(
    tx: &mut impl Tx,
    model: &str,
    alias: &str,
    version: u32,
    reason: &str,
    actor: &str,
) -> Result<AuditEntry> {
    check_model_name(model)?;
    check_alias_name(alias)?;
    aliasable(tx, model, version).await?;
    let previous = tx.alias_target(model, alias).await?;
    tx.upsert_alias(model, alias, version, now()).await?;
    let entry = NewAudit {
        model,
        action: AuditAction::AliasSet,
        alias: Some(alias),
        from_version: previous,
        to_version: Some(version),
        reason,
        actor,
    };
    append(tx, entry).await
}

/// Removes an alias that is set; audit `AliasRemoved` from the version it pointed at.
pub(crate) async fn remove_alias(
    tx: &mut impl Tx,
    model: &str,
    alias: &str,
    reason: &str,
    actor: &str,
) -> Result<AuditEntry> {
    check_alias_name(alias)?;
    require_model(tx, model).await?;
    let previous = tx
        .alias_target(model, alias)
        .await?
        .ok_or_else(|| RegistryError::AliasNotFound {
            model: model.to_owned(),
            alias: alias.to_owned(),
        })?;
    tx.delete_alias(model, alias).await?;
    let entry = NewAudit {
        model,
        action: AuditAction::AliasRemoved,
        alias: Some(alias),
        from_version: Some(previous),
        to_version: None,
        reason,
        actor,
    };
    append(tx, entry).await
}

/// Sets a tag of an existing version; audit `TagSet` with reason `key=value`.
pub(crate) async fn set_tag(
    tx: &mut impl Tx,
    model: &str,
    v: u32,
    key: &str,
    value: &str,
    actor: &str,
) -> Result<AuditEntry> {
    check_name("tag key", key)?;
    version(tx, model, v).await?;
    tx.set_tag(model, v, key, value).await?;
    let reason = format!("{key}={value}");
    let entry = NewAudit {
        model,
        action: AuditAction::TagSet,
        alias: None,
        from_version: None,
        to_version: Some(v),
        reason: &reason,
        actor,
    };
    append(tx, entry).await
}

/// Makes `version` (or the challenger's) the champion; see [`crate::Registry::promote`].
pub(crate) async fn promote(
    tx: &mut impl Tx,
    model: &str,
    version: Option<u32>,
    reason: &str,
    actor: &str,
) -> Result<AuditEntry> {
    require_model(tx, model).await?;
    let challenger = tx.alias_target(model, CHALLENGER).await?;
    let target = version
        .or(challenger)
        .ok_or_else(|| RegistryError::NoChallenger {
            model: model.to_owned(),
        })?;
    aliasable(tx, model, target).await?;
    let previous = tx.alias_target(model, CHAMPION).await?;
    if challenger == Some(target) {
        tx.delete_alias(model, CHALLENGER).await?;
        let removal_reason = format!("promoted to champion: {reason}");
        let removal = NewAudit {
            model,
            action: AuditAction::AliasRemoved,
            alias: Some(CHALLENGER),
            from_version: Some(target),
            to_version: None,
            reason: &removal_reason,
            actor,
        };
        append(tx, removal).await?;
    }
    tx.upsert_alias(model, CHAMPION, target, now()).await?;
    let entry = NewAudit {
        model,
        action: AuditAction::Promoted,
        alias: Some(CHAMPION),
        from_version: previous,
        to_version: Some(target),
        reason,
        actor,
    };
    append(tx, entry).await
}

/// Moves the champion back to [`rollback_target`] of its history; audit `RolledBack`.
pub(crate) async fn rollback(tx: &mut impl Tx, model: &str, reason: &str, actor: &str) -> Result<AuditEntry> {
    require_model(tx, model).await?;
    let current = tx.alias_target(model, CHAMPION).await?;
    let mut history = tx.alias_history(model, CHAMPION).await?;
    history.retain(is_champion_change);
    let target = rollback_target(&history, current).ok_or_else(|| RegistryError::NothingToRollBack {
        model: model.to_owned(),
    })?;
    aliasable(tx, model, target).await?;
    tx.upsert_alias(model, CHAMPION, target, now()).await?;
    let entry = NewAudit {
        model,
        action: AuditAction::RolledBack,
        alias: Some(CHAMPION),
        from_version: current,
        to_version: Some(target),
        reason,
        actor,
    };
    append(tx, entry).await
}

/// The audit log, newest first, with `limit` clamped to the database's integer.
pub(crate) async fn audit(tx: &mut impl Tx, model: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
    tx.audit(model, i64::try_from(limit).unwrap_or(i64::MAX)).await
}

/// Raises the watched id to `id`, never lowering it: news from this handle and from
/// other processes (polled or pushed) may arrive out of order.
pub(crate) fn raise(changes: &tokio::sync::watch::Sender<i64>, id: i64) {
    changes.send_if_modified(|latest| {
        let newer = id > *latest;
        if newer {
            *latest = id;
        }
        newer
    });
}
