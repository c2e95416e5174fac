//! Other processes' registry changes, pushed into the watch channel by LISTEN/NOTIFY.
//!
//! Key decision: every committing change calls `pg_notify` inside its transaction, so the
//! notification is delivered exactly when the change becomes visible. One task per
//! registry handle listens on a dedicated connection; after every (re)connection it reads
//! `MAX(id)` of the audit log, so changes committed while it was disconnected are not
//! missed, and it reconnects with a capped backoff for as long as the handle lives.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::sql;

/// The channel the registry notifies on; its payload is the new audit id.
pub(crate) const CHANNEL: &str = "driftline_registry";

/// The first wait before reconnecting; it doubles after each failure.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens for changes for as long as the task lives, reconnecting when the connection
/// is lost.
pub(crate) async fn relay_changes(pool: PgPool, changes: Arc<watch::Sender<i64>>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribe(&pool, &changes).await {
            Ok(listener) => {
                backoff = MIN_BACKOFF;
                let reason = relay(listener, &changes).await;
                tracing::warn!(%reason, "registry change listener disconnected; reconnecting");
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "registry change listener cannot connect");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens a listening connection, then catches up on what was committed before it.
async fn subscribe(pool: &PgPool, changes: &watch::Sender<i64>) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM audit_log")
        .fetch_one(pool)
        .await?;
    sql::raise(changes, latest.unwrap_or(0));
    Ok(listener)
}

/// Raises the watch for every notification until the connection fails; returns why.
async fn relay(mut listener: PgListener, changes: &watch::Sender<i64>) -> String {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match notification.payload().parse::<i64>() {
                Ok(id) => sql::raise(changes, id),
                Err(_) => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed registry notification"
                ),
            },
            Ok(None) => return "the connection was closed".into(),
            Err(error) => return error.to_string(),
        }
    }
}
