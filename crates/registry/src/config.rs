//! Which registry backend to use, as written in `driftline.toml`.
//!
//! Key decision: a `#[serde(tag = "type")]` enum whose [`RegistryConfig::build`] returns
//! the trait object, so adding Postgres is a new variant, not new call sites.
//!
//! ```toml
//! [registry]
//! type = "sqlite"
//! path = "registry.db"     # default: <data_dir>/registry.db
//! poll_interval_ms = 200   # default: 200
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::registry::Registry;
use crate::sqlite::{SqliteOptions, SqliteRegistry};

/// The default file name of the SQLite registry inside the data directory.
pub const DEFAULT_SQLITE_FILE: &str = "registry.db";
/// The default interval of the poll for other processes' changes.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 200;

/// The registry backend and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegistryConfig {
    /// The embedded backend: one SQLite file, shareable by processes on one machine.
    Sqlite {
        /// The database file; relative paths are inside the data directory.
        /// Default: `<data_dir>/registry.db`.
        #[serde(default)]
        path: Option<PathBuf>,
        /// How often, in milliseconds, changes made by other processes are looked for
        /// (serving hot-swaps models within this delay). Default: 200; at least 1.
        #[serde(default = "default_poll_interval_ms")]
        poll_interval_ms: u64,
    },
}

fn default_poll_interval_ms() -> u64 {
    DEFAULT_POLL_INTERVAL_MS
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::Sqlite {
            path: None,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
        }
    }
}

impl RegistryConfig {
    /// Checks the settings: the poll interval must be at least 1 ms.
    pub fn check(&self) -> Result<(), String> {
        match self {
            RegistryConfig::Sqlite {
                poll_interval_ms: 0, ..
            } => Err("registry.poll_interval_ms must be at least 1".into()),
            RegistryConfig::Sqlite { .. } => Ok(()),
        }
    }

    /// Opens the configured registry, resolving relative paths against `data_dir`.
    pub async fn build(&self, data_dir: &Path) -> Result<Arc<dyn Registry>, RegistryError> {
        match self {
            RegistryConfig::Sqlite {
                path,
                poll_interval_ms,
            } => {
                let file = data_dir.join(path.as_deref().unwrap_or(Path::new(DEFAULT_SQLITE_FILE)));
                let options = SqliteOptions {
                    poll_interval: Duration::from_millis((*poll_interval_ms).max(1)),
                    ..SqliteOptions::default()
                };
                Ok(Arc::new(SqliteRegistry::open(&file, &options).await?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_sqlite_section() {
        let config: RegistryConfig = serde_json::from_str(r#"{"type":"sqlite"}"#).unwrap();
        assert_eq!(config, RegistryConfig::default());
        assert!(config.check().is_ok());
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        let typo = serde_json::from_str::<RegistryConfig>(r#"{"type":"sqlite","pth":"x"}"#);
        assert!(typo.unwrap_err().to_string().contains("pth"));
        let backend = serde_json::from_str::<RegistryConfig>(r#"{"type":"oracle"}"#);
        assert!(backend.is_err());
    }

    #[test]
    fn a_zero_poll_interval_is_refused() {
        let config = RegistryConfig::Sqlite {
            path: None,
            poll_interval_ms: 0,
        };
        assert!(config.check().unwrap_err().contains("poll_interval_ms"));
    }

    #[tokio::test]
    async fn build_opens_the_file_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = RegistryConfig::Sqlite {
            path: Some("nested/reg.db".into()),
            poll_interval_ms: 50,
        };
        let registry = config.build(dir.path()).await.unwrap();
        assert!(registry.models().await.unwrap().is_empty());
        assert!(dir.path().join("nested/reg.db").exists());
    }
}
