//! The backend-agnostic registry test suite: every case takes `&dyn Registry`, so each
//! backend's `tests.rs` runs the same cases against a fresh store of its own.
//!
//! Key decision: cases assert only what the [`Registry`] trait documents; anything that
//! needs the backend itself (raw SQL, files) lives in that backend's tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::artifacts::{artifact_key, sha256_hex};
use crate::error::RegistryError;
use crate::registry::Registry;
use crate::types::{ArtifactRef, AuditAction, CHALLENGER, CHAMPION, Lineage, NewVersion, VersionStatus};

/// A version of `model` with made-up bytes `seed`.
pub fn new_version(model: &str, status: VersionStatus, seed: &str) -> NewVersion {
    let sha256 = sha256_hex(seed.as_bytes());
    NewVersion {
        model: model.into(),
        status,
        artifact: ArtifactRef {
            key: artifact_key(model, &sha256),
            sha256,
            size: seed.len() as u64,
        },
        card: serde_json::json!({"metrics": {"roc_auc": 0.91}, "gates": {"passed": true}}),
        lineage: Lineage {
            data_from: Some("2026-01-01T00:00:00Z".into()),
            data_to: Some("2026-01-08T00:00:00Z".into()),
            events: 1000,
            rows_train: 800,
            rows_holdout: 200,
            label_rate: 0.02,
            feature_fingerprint: "f1".into(),
            params: serde_json::json!({"c": 1.0}),
            driftline_version: "0.1.0".into(),
            seed: Some(7),
            champion_at_training: None,
        },
        tags: BTreeMap::from([("team".to_string(), "risk".to_string())]),
        reason: format!("trained {seed}"),
        actor: "trainer".into(),
    }
}

/// Registers `n` registered versions of `model`.
async fn register_n(reg: &dyn Registry, model: &str, n: usize) {
    for i in 0..n {
        let seed = format!("{model}-{i}");
        reg.register(new_version(model, VersionStatus::Registered, &seed))
            .await
            .unwrap();
    }
}

/// Versions count 1, 2, 3… per model, independently, and read back as registered.
pub async fn numbering_is_per_model_and_monotonic(reg: &dyn Registry) {
    let mut numbers = Vec::new();
    for (model, seed) in [("a", "1"), ("b", "2"), ("a", "3"), ("a", "4"), ("b", "5")] {
        let v = reg
            .register(new_version(model, VersionStatus::Registered, seed))
            .await
            .unwrap();
        numbers.push((v.model.clone(), v.version));
        let read = reg.version(model, v.version).await.unwrap();
        assert_eq!(read, v, "read back");
        let text = |card: &serde_json::Value| serde_json::to_string(card).unwrap();
        assert_eq!(text(&read.card), text(&v.card), "the card keeps its key order");
    }
    let expected = [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)];
    let expected: Vec<_> = expected.iter().map(|(m, v)| (m.to_string(), *v)).collect();
    assert_eq!(numbers, expected);
    let a: Vec<u32> = reg
        .versions("a")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(a, [1, 2, 3]);
    assert_eq!(reg.models().await.unwrap(), ["a", "b"]);
    let registered = reg.audit(Some("b"), 10).await.unwrap();
    assert_eq!(registered.len(), 2);
    assert!(registered.iter().all(|e| e.action == AuditAction::Registered));
    assert_eq!(registered[0].reason, "trained 5");
    assert_eq!(registered[0].actor, "trainer");
}

/// Many tasks registering through two handles get 1..=n with no gap or duplicate.
pub async fn concurrent_registration_has_no_gaps(a: Arc<dyn Registry>, b: Arc<dyn Registry>, n: u32) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let reg = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            let seed = format!("concurrent-{i}");
            reg.register(new_version("m", VersionStatus::Registered, &seed))
                .await
                .map(|v| v.version)
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=n).collect::<Vec<_>>());
    let listed: Vec<u32> = b.versions("m").await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(listed, (1..=n).collect::<Vec<_>>());
    assert_eq!(a.audit(Some("m"), 1000).await.unwrap().len(), n as usize);
}

/// Promotions racing through two handles all succeed, and the audit log chains them:
/// each promotion's `from_version` is the previous promotion's `to_version`.
pub async fn concurrent_promotions_chain_in_the_audit_log(
    a: Arc<dyn Registry>,
    b: Arc<dyn Registry>,
    n: u32,
) {
    register_n(a.as_ref(), "m", 3).await;
    let mut tasks = Vec::new();
    for i in 0..n {
        let reg = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            reg.promote("m", Some(i % 3 + 1), "race", "ci").await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut log = b.audit(Some("m"), 1000).await.unwrap();
    log.reverse();
    let promotions: Vec<_> = log.iter().filter(|e| e.action == AuditAction::Promoted).collect();
    assert_eq!(promotions.len(), n as usize);
    assert_eq!(promotions[0].from_version, None);
    for pair in promotions.windows(2) {
        assert_eq!(pair[1].from_version, pair[0].to_version, "{pair:?}");
    }
    let last = promotions[promotions.len() - 1].to_version;
    assert_eq!(a.champion("m").await.unwrap().map(|v| v.version), last);
}

/// Aliases are set, moved, resolved, listed and removed, each change audited.
pub async fn aliases_set_resolve_and_remove(reg: &dyn Registry) {
    register_n(reg, "m", 2).await;
    let set = reg
        .set_alias("m", "canary", 1, "first canary", "alice")
        .await
        .unwrap();
    assert_eq!(set.action, AuditAction::AliasSet);
    assert_eq!((set.from_version, set.to_version), (None, Some(1)));
    assert_eq!(
        (set.reason.as_str(), set.actor.as_str()),
        ("first canary", "alice")
    );
    let moved = reg.set_alias("m", "canary", 2, "newer", "bob").await.unwrap();
    assert_eq!((moved.from_version, moved.to_version), (Some(1), Some(2)));
    assert_eq!(reg.resolve("m", "canary").await.unwrap().unwrap().version, 2);
    assert_eq!(reg.lookup("m", "canary").await.unwrap().version, 2);
    assert_eq!(reg.lookup("m", "1").await.unwrap().version, 1);
    let listed = reg.aliases("m").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].version), ("canary", 2));

    let removed = reg
        .remove_alias("m", "canary", "canary over", "carol")
        .await
        .unwrap();
    assert_eq!(removed.action, AuditAction::AliasRemoved);
    assert_eq!((removed.from_version, removed.to_version), (Some(2), None));
    assert_eq!(removed.alias.as_deref(), Some("canary"));
    assert_eq!(reg.resolve("m", "canary").await.unwrap(), None);
    assert!(reg.aliases("m").await.unwrap().is_empty());
    let again = reg.remove_alias("m", "canary", "twice", "carol").await;
    assert!(
        matches!(again, Err(RegistryError::AliasNotFound { .. })),
        "{again:?}"
    );

    let log = reg.audit(Some("m"), 3).await.unwrap();
    let who: Vec<_> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            ("carol", "canary over"),
            ("bob", "newer"),
            ("alice", "first canary")
        ]
    );
}

/// Unknown models, versions and aliases are errors naming what was missing.
pub async fn missing_things_are_named(reg: &dyn Registry) {
    let missing = reg.version("ghost", 1).await;
    assert!(matches!(missing, Err(RegistryError::ModelNotFound { ref model }) if model == "ghost"));
    assert!(matches!(
        reg.versions("ghost").await,
        Err(RegistryError::ModelNotFound { .. })
    ));
    register_n(reg, "m", 1).await;
    let missing = reg.version("m", 9).await;
    assert!(matches!(
        missing,
        Err(RegistryError::VersionNotFound { version: 9, .. })
    ));
    let missing = reg.set_alias("m", "canary", 9, "r", "a").await;
    assert!(matches!(
        missing,
        Err(RegistryError::VersionNotFound { version: 9, .. })
    ));
    let missing = reg.lookup("m", "nope").await;
    assert!(
        matches!(missing, Err(RegistryError::AliasNotFound { .. })),
        "{missing:?}"
    );
    let missing = reg.set_tag("m", 9, "k", "v", "a").await;
    assert!(matches!(missing, Err(RegistryError::VersionNotFound { .. })));
}

/// A rejected version is kept and audited, but no alias may point at it.
pub async fn rejected_versions_cannot_be_aliased(reg: &dyn Registry) {
    let rejected = reg
        .register(new_version("m", VersionStatus::Rejected, "bad"))
        .await
        .unwrap();
    assert_eq!(rejected.status, VersionStatus::Rejected);
    assert_eq!(
        reg.audit(Some("m"), 1).await.unwrap()[0].action,
        AuditAction::Rejected
    );
    for attempt in [
        reg.set_alias("m", CHALLENGER, 1, "r", "a").await,
        reg.promote("m", Some(1), "r", "a").await,
    ] {
        assert!(
            matches!(attempt, Err(RegistryError::RejectedVersion { version: 1, .. })),
            "{attempt:?}"
        );
    }
    assert!(reg.aliases("m").await.unwrap().is_empty());
    assert_eq!(
        reg.versions("m").await.unwrap()[0].status,
        VersionStatus::Rejected
    );
}

/// Bad model names, aliases and tag keys are refused with the rule they break.
pub async fn invalid_names_are_refused(reg: &dyn Registry) {
    let bad_model = reg
        .register(new_version("fraud/eu", VersionStatus::Registered, "x"))
        .await;
    assert!(
        matches!(bad_model, Err(RegistryError::InvalidName { what: "model", ref reason, .. }) if reason.contains("'/'")),
        "{bad_model:?}"
    );
    register_n(reg, "m", 1).await;
    let cases = [
        ("", "empty"),
        ("123", "digits"),
        ("has space", "not allowed"),
        (&"x".repeat(65)[..], "64"),
    ];
    for (alias, why) in cases {
        let err = reg.set_alias("m", alias, 1, "r", "a").await.unwrap_err();
        match err {
            RegistryError::InvalidName {
                what: "alias",
                reason,
                ..
            } => {
                assert!(reason.contains(why), "{alias:?}: {reason}")
            }
            other => panic!("{alias:?}: expected InvalidName, got {other:?}"),
        }
    }
    let tag = reg.set_tag("m", 1, "bad key", "v", "a").await;
    assert!(
        matches!(tag, Err(RegistryError::InvalidName { what: "tag key", .. })),
        "{tag:?}"
    );
    assert_eq!(
        reg.audit(Some("m"), 10).await.unwrap().len(),
        1,
        "nothing refused is audited"
    );
}

/// Tags are set, overwritten and audited as `key=value`.
pub async fn tags_are_set_and_audited(reg: &dyn Registry) {
    register_n(reg, "m", 1).await;
    reg.set_tag("m", 1, "stage", "shadow", "alice").await.unwrap();
    let entry = reg.set_tag("m", 1, "stage", "live", "bob").await.unwrap();
    assert_eq!(entry.action, AuditAction::TagSet);
    assert_eq!((entry.reason.as_str(), entry.to_version), ("stage=live", Some(1)));
    let tags = reg.version("m", 1).await.unwrap().tags;
    assert_eq!(tags.get("stage").map(String::as_str), Some("live"));
    assert_eq!(tags.get("team").map(String::as_str), Some("risk"));
}

/// Promoting the challenger makes it champion, removes the challenger, and records
/// the previous champion.
pub async fn promote_the_challenger(reg: &dyn Registry) {
    register_n(reg, "m", 2).await;
    reg.promote("m", Some(1), "bootstrap", "ci").await.unwrap();
    reg.set_alias("m", CHALLENGER, 2, "passed gates", "ci")
        .await
        .unwrap();
    let promoted = reg.promote("m", None, "beat champion", "alice").await.unwrap();
    assert_eq!(promoted.action, AuditAction::Promoted);
    assert_eq!(promoted.alias.as_deref(), Some(CHAMPION));
    assert_eq!((promoted.from_version, promoted.to_version), (Some(1), Some(2)));
    assert_eq!(reg.champion("m").await.unwrap().unwrap().version, 2);
    assert_eq!(reg.resolve("m", CHALLENGER).await.unwrap(), None);
    let log = reg.audit(Some("m"), 2).await.unwrap();
    assert_eq!(log[0].id, promoted.id);
    assert_eq!(log[1].action, AuditAction::AliasRemoved);
    assert_eq!(log[1].alias.as_deref(), Some(CHALLENGER));
    assert!(log[1].reason.contains("beat champion"), "{}", log[1].reason);
}

/// Promoting an explicit version leaves a challenger that points elsewhere alone.
pub async fn promote_an_explicit_version(reg: &dyn Registry) {
    register_n(reg, "m", 3).await;
    reg.set_alias("m", CHALLENGER, 3, "candidate", "ci")
        .await
        .unwrap();
    let promoted = reg.promote("m", Some(2), "hotfix", "alice").await.unwrap();
    assert_eq!((promoted.from_version, promoted.to_version), (None, Some(2)));
    assert_eq!(reg.champion("m").await.unwrap().unwrap().version, 2);
    assert_eq!(reg.resolve("m", CHALLENGER).await.unwrap().unwrap().version, 3);
}

/// Promote without a version and without a challenger is refused, changing nothing.
pub async fn promote_without_a_challenger(reg: &dyn Registry) {
    register_n(reg, "m", 1).await;
    let err = reg.promote("m", None, "r", "a").await;
    assert!(
        matches!(err, Err(RegistryError::NoChallenger { ref model }) if model == "m"),
        "{err:?}"
    );
    assert_eq!(reg.champion("m").await.unwrap(), None);
    assert_eq!(reg.audit(Some("m"), 10).await.unwrap().len(), 1);
}

/// Rollback walks back through the champion's history and stops at its start; a
/// promotion after a rollback is undone first (no redo, no ping-pong).
pub async fn rollback_walks_back_through_champions(reg: &dyn Registry) {
    register_n(reg, "m", 4).await;
    let err = reg.rollback("m", "r", "a").await;
    assert!(
        matches!(err, Err(RegistryError::NothingToRollBack { .. })),
        "{err:?}"
    );
    for v in 1..=3 {
        reg.promote("m", Some(v), "promote", "ci").await.unwrap();
    }
    let first = reg.rollback("m", "v3 misbehaves", "oncall").await.unwrap();
    assert_eq!(first.action, AuditAction::RolledBack);
    assert_eq!((first.from_version, first.to_version), (Some(3), Some(2)));
    assert_eq!(
        (first.reason.as_str(), first.actor.as_str()),
        ("v3 misbehaves", "oncall")
    );
    assert_eq!(champion_of(reg).await, Some(2));
    let second = reg.rollback("m", "v2 too", "oncall").await.unwrap();
    assert_eq!((second.from_version, second.to_version), (Some(2), Some(1)));
    let third = reg.rollback("m", "again", "oncall").await;
    assert!(
        matches!(third, Err(RegistryError::NothingToRollBack { .. })),
        "{third:?}"
    );
    assert_eq!(champion_of(reg).await, Some(1));

    reg.promote("m", Some(4), "new model", "ci").await.unwrap();
    let undo = reg.rollback("m", "v4 bad", "oncall").await.unwrap();
    assert_eq!((undo.from_version, undo.to_version), (Some(4), Some(1)));
    assert!(reg.rollback("m", "again", "oncall").await.is_err());
}

/// The champion's version number, if set.
async fn champion_of(reg: &dyn Registry) -> Option<u32> {
    reg.champion("m").await.unwrap().map(|v| v.version)
}

/// Rollback undoes a removed champion, and skips periods without one.
pub async fn rollback_restores_a_removed_champion(reg: &dyn Registry) {
    register_n(reg, "m", 2).await;
    reg.set_alias("m", CHAMPION, 1, "set", "a").await.unwrap();
    reg.remove_alias("m", CHAMPION, "oops", "a").await.unwrap();
    let undo = reg.rollback("m", "restore", "a").await.unwrap();
    assert_eq!((undo.from_version, undo.to_version), (None, Some(1)));
    assert_eq!(reg.champion("m").await.unwrap().unwrap().version, 1);
}

/// The audit log reads newest first, per model or across models, up to the limit.
pub async fn audit_is_newest_first_with_a_limit(reg: &dyn Registry) {
    register_n(reg, "a", 3).await;
    register_n(reg, "b", 2).await;
    reg.set_alias("a", "canary", 2, "r", "x").await.unwrap();
    let all = reg.audit(None, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all[0].action, AuditAction::AliasSet);
    let two = reg.audit(None, 2).await.unwrap();
    assert_eq!(two, all[..2]);
    let b = reg.audit(Some("b"), 100).await.unwrap();
    assert_eq!(
        b.iter().map(|e| e.to_version).collect::<Vec<_>>(),
        [Some(2), Some(1)]
    );
    assert!(reg.audit(Some("nobody"), 10).await.unwrap().is_empty());
    assert!(reg.audit(None, 0).await.unwrap().is_empty());
}

/// Waits for the watched id to reach `id`, failing after `within`.
async fn wait_for(rx: &mut tokio::sync::watch::Receiver<i64>, id: i64, within: Duration) {
    let reached = tokio::time::timeout(within, rx.wait_for(|latest| *latest >= id))
        .await
        .is_ok();
    let latest = *rx.borrow();
    assert!(reached, "watch stayed at {latest}, expected {id}");
    assert_eq!(latest, id);
}

/// A change through this handle is seen by its watchers at once.
pub async fn watch_sees_local_changes(reg: &dyn Registry) {
    let mut rx = reg.watch();
    register_n(reg, "m", 1).await;
    let entry = reg.set_alias("m", CHAMPION, 1, "r", "a").await.unwrap();
    assert!(rx.has_changed().unwrap(), "notified before the call returned");
    wait_for(&mut rx, entry.id, Duration::from_millis(10)).await;
}

/// A change through another handle on the same store is seen by polling.
pub async fn watch_sees_other_handles(watcher: &dyn Registry, writer: &dyn Registry) {
    let mut rx = watcher.watch();
    writer
        .register(new_version("m", VersionStatus::Registered, "elsewhere"))
        .await
        .unwrap();
    let entry = writer.promote("m", Some(1), "r", "a").await.unwrap();
    wait_for(&mut rx, entry.id, Duration::from_secs(5)).await;
}

/// Waits until exactly one of `standings` leads, returning its index; fails after `within`.
pub async fn sole_leader(standings: &[&crate::election::Leadership], within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let leaders: Vec<usize> = (0..standings.len())
            .filter(|&i| standings[i].is_leader())
            .collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let [leader] = leaders[..] {
            return leader;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody was elected within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Of three candidates (on two handles) exactly one leads, never two, and when the leader
/// withdraws another takes over within a few seconds; other roles elect independently.
pub async fn exactly_one_leader_and_a_successor(a: &dyn Registry, b: &dyn Registry) {
    let candidates = [
        a.campaign("controller:m"),
        b.campaign("controller:m"),
        b.campaign("controller:m"),
    ];
    let other_role = a.campaign("controller:other");
    let all: Vec<_> = candidates.iter().collect();
    let first = sole_leader(&all, Duration::from_secs(5)).await;
    // Stable: still the same single leader a few retry periods later.
    for _ in 0..10 {
        tokio::time::sleep(crate::election::RETRY / 4).await;
        assert_eq!(sole_leader(&all, Duration::ZERO).await, first);
    }
    let mut rest: Vec<_> = candidates.into_iter().collect();
    drop(rest.remove(first));
    let took = tokio::time::Instant::now();
    let remaining: Vec<_> = rest.iter().collect();
    sole_leader(&remaining, Duration::from_secs(5)).await;
    eprintln!(
        "a successor was elected {:?} after the leader withdrew",
        took.elapsed()
    );
    sole_leader(&[&other_role], Duration::from_secs(5)).await;
}
