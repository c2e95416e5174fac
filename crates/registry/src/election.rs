//! Controller election: of all the processes serving one model, exactly one at a time is
//! its controller (the one that drives rollouts and retrains), and when it dies another
//! takes over within seconds.
//!
//! Key decision: the lock is held by something that dies with the process, never by a
//! lease that has to expire: a PostgreSQL *session* advisory lock on a connection of its
//! own (the server drops the lock as soon as the connection closes, so a `kill -9` frees
//! it at once), or, for the embedded SQLite registry, an exclusive OS file lock beside the
//! database (released by the kernel when the process exits). Candidates retry every
//! [`RETRY`]; a leader checks its hold every [`RETRY`] too and steps down the moment it
//! cannot prove it (a lost connection), so two leaders never act at once: a leader that
//! lost its connection learns it before another can have been elected for long.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How often a candidate tries to take the lock, and a leader checks it still holds it.
pub const RETRY: Duration = Duration::from_millis(500);

/// How long the database may take to answer a check before the hold counts as lost.
#[cfg(feature = "postgres")]
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// This process's standing in one election. Dropping it withdraws from the election (and
/// releases the lock if held).
#[derive(Debug)]
pub struct Leadership {
    leader: watch::Receiver<bool>,
    campaign: AbortHandle,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.campaign.abort();
    }
}

impl Leadership {
    /// Starts campaigning in the background. Must be called within a Tokio runtime.
    pub(crate) fn campaign<F>(run: impl FnOnce(watch::Sender<bool>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (sender, leader) = watch::channel(false);
        let campaign = tokio::spawn(run(sender)).abort_handle();
        Self { leader, campaign }
    }

    /// Whether this process is the leader now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// A receiver that sees every change of standing.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }
}

/// Reports a change of standing, with a log line when it is one.
fn stand(sender: &watch::Sender<bool>, role: &str, leader: bool) {
    if sender.send_replace(leader) != leader {
        if leader {
            tracing::info!(role, "elected controller");
        } else {
            tracing::warn!(role, "no longer the controller");
        }
    }
}

/// The file-lock election of processes sharing one SQLite registry file.
pub(crate) async fn campaign_with_file_lock(path: PathBuf, role: String, sender: watch::Sender<bool>) {
    let mut held: Option<std::fs::File> = None;
    loop {
        if held.is_none() {
            match try_file_lock(&path) {
                Ok(Some(file)) => {
                    held = Some(file);
                    stand(&sender, &role, true);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "controller lock file");
                }
            }
        }
        // A held file lock cannot be lost while the process lives: nothing to re-check.
        tokio::time::sleep(RETRY).await;
    }
}

/// The lock file opened and exclusively locked, `None` when another process holds it.
fn try_file_lock(path: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(error)) => Err(error),
    }
}

/// The advisory-lock election of processes sharing one PostgreSQL registry.
#[cfg(feature = "postgres")]
pub(crate) async fn campaign_with_advisory_lock(
    connect: sqlx::postgres::PgConnectOptions,
    lock_class: i32,
    role: String,
    sender: watch::Sender<bool>,
) {
    use sqlx::Connection;
    loop {
        match sqlx::PgConnection::connect_with(&connect).await {
            Ok(mut connection) => {
                // Returns when the connection fails; the lock went with it.
                let error = hold_advisory_lock(&mut connection, lock_class, &role, &sender).await;
                stand(&sender, &role, false);
                tracing::warn!(role, %error, "controller election connection lost; reconnecting");
                connection.close_hard().await.ok();
            }
            Err(error) => {
                stand(&sender, &role, false);
                tracing::warn!(role, %error, "controller election cannot connect; retrying");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Tries for the lock until taken, then proves the hold every [`RETRY`]; returns the
/// error that ended the connection.
#[cfg(feature = "postgres")]
async fn hold_advisory_lock(
    connection: &mut sqlx::PgConnection,
    lock_class: i32,
    role: &str,
    sender: &watch::Sender<bool>,
) -> String {
    let mut leader = false;
    loop {
        let query = async {
            if leader {
                // The lock lives as long as this session: a working session proves the hold.
                sqlx::query_scalar::<_, i32>("SELECT 1")
                    .fetch_one(&mut *connection)
                    .await
                    .map(|_| true)
            } else {
                sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1, hashtext($2))")
                    .bind(lock_class)
                    .bind(role)
                    .fetch_one(&mut *connection)
                    .await
            }
        };
        // A silent network must not keep a leader that can no longer prove its hold.
        match tokio::time::timeout(ANSWER_WITHIN, query).await {
            Ok(Ok(held)) => {
                leader = held;
                stand(sender, role, leader);
            }
            Ok(Err(error)) => return error.to_string(),
            Err(_) => return format!("no answer within {ANSWER_WITHIN:?}"),
        }
        tokio::time::sleep(RETRY).await;
    }
}
