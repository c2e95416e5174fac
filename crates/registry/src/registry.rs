//! The `Registry` trait: the one seam every registry backend implements.
//!
//! Key decision: every change (registration, alias, tag, promotion, rollback) is one
//! database transaction that also appends its audit entry, so the audit log explains the
//! alias table exactly, and rollback is computed from that log alone. Rollback is an undo
//! stack over the champion's history (see [`rollback_target`]): repeated rollbacks walk
//! further back instead of toggling between the last two champions.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::election::Leadership;
use crate::error::RegistryError;
use crate::types::{Alias, AuditAction, AuditEntry, CHAMPION, ModelVersion, NewVersion, check_alias_name};

/// The result of registry operations.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Versions, aliases and an append-only audit log of models.
///
/// Implementations are shared between tasks (`Send + Sync`) and used as
/// `Arc<dyn Registry>`; every method that changes state is atomic and appends exactly the
/// audit entries it documents.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Registers a version, numbered one more than the model's latest (starting at 1) even
    /// when several processes register at once, with audit action `Registered` or
    /// `Rejected` after its status.
    async fn register(&self, new: NewVersion) -> Result<ModelVersion>;

    /// One version of a model.
    async fn version(&self, model: &str, version: u32) -> Result<ModelVersion>;

    /// Every version of a model, oldest first.
    async fn versions(&self, model: &str) -> Result<Vec<ModelVersion>>;

    /// The names of every model with a registered version, sorted.
    async fn models(&self) -> Result<Vec<String>>;

    /// Points `alias` at `version` (creating or moving it); refuses rejected versions.
    /// Audit action `AliasSet`, from the previous target.
    async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u32,
        reason: &str,
        actor: &str,
    ) -> Result<AuditEntry>;

    /// Removes `alias`; [`RegistryError::AliasNotFound`] if it is not set.
    /// Audit action `AliasRemoved`, from the version it pointed at.
    async fn remove_alias(&self, model: &str, alias: &str, reason: &str, actor: &str) -> Result<AuditEntry>;

    /// The model's aliases, sorted by name.
    async fn aliases(&self, model: &str) -> Result<Vec<Alias>>;

    /// Sets tag `key` of a version to `value`. Audit action `TagSet`, reason `key=value`.
    async fn set_tag(
        &self,
        model: &str,
        version: u32,
        key: &str,
        value: &str,
        actor: &str,
    ) -> Result<AuditEntry>;

    /// Makes `version` the champion, or the challenger's version if `None`
    /// ([`RegistryError::NoChallenger`] if there is none). Removes the challenger alias if
    /// it pointed at the promoted version (audited as `AliasRemoved`), then appends
    /// `Promoted` with the previous champion as `from_version`; all in one transaction.
    async fn promote(
        &self,
        model: &str,
        version: Option<u32>,
        reason: &str,
        actor: &str,
    ) -> Result<AuditEntry>;

    /// Moves the champion back to [`rollback_target`] of its history: the version it held
    /// before its latest change not yet undone. [`RegistryError::NothingToRollBack`] when
    /// there is no earlier champion. Audit action `RolledBack`.
    async fn rollback(&self, model: &str, reason: &str, actor: &str) -> Result<AuditEntry>;

    /// The latest `limit` audit entries, of one model or of all, newest first.
    async fn audit(&self, model: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>>;

    /// A receiver of the latest audit id, updated after every change: at once for changes
    /// made through this handle, within the poll interval for changes made by others.
    fn watch(&self) -> watch::Receiver<i64>;

    /// Joins the election for `role` among every process sharing this registry; exactly
    /// one of them holds it at a time (see [`crate::election`]). Must be called within a
    /// Tokio runtime.
    fn campaign(&self, role: &str) -> Leadership;

    /// The version `alias` points at, or `None` if the alias is not set.
    async fn resolve(&self, model: &str, alias: &str) -> Result<Option<ModelVersion>> {
        check_alias_name(alias)?;
        let aliases = self.aliases(model).await?;
        match aliases.into_iter().find(|a| a.name == alias) {
            Some(a) => self.version(model, a.version).await.map(Some),
            None => Ok(None),
        }
    }

    /// The champion, if one is set.
    async fn champion(&self, model: &str) -> Result<Option<ModelVersion>> {
        self.resolve(model, CHAMPION).await
    }

    /// A version named by a user: all digits is a version number, anything else an alias
    /// ([`RegistryError::AliasNotFound`] if unset).
    async fn lookup(&self, model: &str, reference: &str) -> Result<ModelVersion> {
        if let Ok(version) = reference.parse::<u32>() {
            return self.version(model, version).await;
        }
        self.resolve(model, reference)
            .await?
            .ok_or_else(|| RegistryError::AliasNotFound {
                model: model.to_owned(),
                alias: reference.to_owned(),
            })
    }
}

/// Whether an audit entry changed (or re-set) the champion alias.
pub fn is_champion_change(entry: &AuditEntry) -> bool {
    entry.alias.as_deref() == Some(CHAMPION)
        && matches!(
            entry.action,
            AuditAction::AliasSet
                | AuditAction::AliasRemoved
                | AuditAction::Promoted
                | AuditAction::RolledBack
        )
}

/// The version a rollback returns the champion to, given the model's audit entries in
/// log order (others than champion changes are ignored) and the current champion.
///
/// Semantics: an undo stack. Each champion change that moved it (set, promote, removal)
/// pushes the value it replaced; each rollback pops back to the value it restored. The
/// target is the most recent pushed value that is a version and differs from the current
/// champion, so gaps without a champion are skipped. Consequently `1 → 2 → 3`, rollback,
/// rollback gives 2 then 1, and a third rollback is `None` (nothing to roll back). A
/// change made after a rollback is pushed as usual; there is no redo. Rejected versions
/// never appear: they can never be aliased and a status never changes.
pub fn rollback_target(entries: &[AuditEntry], current: Option<u32>) -> Option<u32> {
    let mut stack = champion_stack(entries);
    while let Some(previous) = stack.pop() {
        if let Some(v) = previous
            && Some(v) != current
        {
            return Some(v);
        }
    }
    None
}

/// Replays champion changes into the stack of replaced values (see [`rollback_target`]).
fn champion_stack(entries: &[AuditEntry]) -> Vec<Option<u32>> {
    let mut stack = Vec::new();
    for entry in entries.iter().filter(|e| is_champion_change(e)) {
        if entry.action == AuditAction::RolledBack {
            while let Some(popped) = stack.pop() {
                if popped == entry.to_version {
                    break;
                }
            }
        } else if entry.from_version != entry.to_version {
            stack.push(entry.from_version);
        }
    }
    stack
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CHALLENGER;
    use chrono::Utc;

    fn change(action: AuditAction, alias: &str, from: Option<u32>, to: Option<u32>) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: Utc::now(),
            model: "m".into(),
            action,
            alias: Some(alias.into()),
            from_version: from,
            to_version: to,
            reason: String::new(),
            actor: String::new(),
        }
    }

    /// Applies rollbacks as a backend would, returning each target in turn.
    fn roll(log: &mut Vec<AuditEntry>, mut current: Option<u32>, times: usize) -> Vec<Option<u32>> {
        let mut targets = Vec::new();
        for _ in 0..times {
            let target = rollback_target(log, current);
            if let Some(t) = target {
                log.push(change(AuditAction::RolledBack, CHAMPION, current, Some(t)));
                current = Some(t);
            }
            targets.push(target);
        }
        targets
    }

    #[test]
    fn rollbacks_walk_back_through_history_then_stop() {
        use AuditAction::Promoted;
        let mut log = vec![
            change(Promoted, CHAMPION, None, Some(1)),
            change(Promoted, CHAMPION, Some(1), Some(2)),
            change(Promoted, CHAMPION, Some(2), Some(3)),
        ];
        assert_eq!(roll(&mut log, Some(3), 3), [Some(2), Some(1), None]);
    }

    #[test]
    fn a_change_after_a_rollback_is_undone_first_and_there_is_no_redo() {
        use AuditAction::Promoted;
        let mut log = vec![
            change(Promoted, CHAMPION, None, Some(1)),
            change(Promoted, CHAMPION, Some(1), Some(2)),
        ];
        assert_eq!(roll(&mut log, Some(2), 1), [Some(1)]);
        log.push(change(Promoted, CHAMPION, Some(1), Some(4)));
        assert_eq!(roll(&mut log, Some(4), 2), [Some(1), None]);
    }

    #[test]
    fn removal_is_undone_and_gaps_without_a_champion_are_skipped() {
        use AuditAction::{AliasRemoved, AliasSet};
        let mut log = vec![
            change(AliasSet, CHAMPION, None, Some(1)),
            change(AliasRemoved, CHAMPION, Some(1), None),
        ];
        assert_eq!(rollback_target(&log, None), Some(1));
        log.push(change(AliasSet, CHAMPION, None, Some(2)));
        // Before 2 there was no champion; before that gap, 1.
        assert_eq!(roll(&mut log, Some(2), 2), [Some(1), None]);
    }

    #[test]
    fn re_setting_the_same_champion_and_other_aliases_do_not_count() {
        use AuditAction::{AliasSet, Promoted, TagSet};
        let log = vec![
            change(Promoted, CHAMPION, None, Some(1)),
            change(AliasSet, CHALLENGER, None, Some(2)),
            change(Promoted, CHAMPION, Some(1), Some(1)),
            change(TagSet, CHAMPION, None, Some(1)),
        ];
        assert_eq!(rollback_target(&log, Some(1)), None);
    }
}
