//! Which registry and artifact store to open, from `[registry]`, `[postgres]` and
//! `[object_store]` in `driftline.toml`.
//!
//! Key decision: core parses and checks the user-facing keys; this module turns them into
//! [`RegistryConfig`] and [`ArtifactConfig`], whose `build()` returns the trait object or
//! the store, and [`open`] is the one function the CLI and the server call, so a backend
//! chosen in configuration is the same everywhere. Heavy backends sit behind the cargo
//! features `postgres` and `s3` (on by default); choosing one that was compiled out is
//! an error that names the feature.
//!
//! ```toml
//! [registry]
//! backend = "postgres"     # default "sqlite"
//! [object_store]
//! backend = "s3"           # default "local"
//! endpoint = "http://127.0.0.1:9000"
//! bucket = "models"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use driftline_core::config::{
    ArtifactBackend, ObjectStoreSettings, PostgresSettings, RegistryBackend, RegistrySettings, Settings,
};

use crate::artifacts::ArtifactStore;
use crate::error::{ArtifactError, OpenError, RegistryError};
use crate::registry::Registry;
use crate::sqlite::{SqliteOptions, SqliteRegistry};

/// The directory of local artifacts inside the data directory.
pub const LOCAL_ARTIFACTS_DIR: &str = "artifacts";

/// The registry backend and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryConfig {
    /// The embedded backend: one SQLite file, shareable by processes on one machine.
    Sqlite {
        /// The database file; a relative path is inside the data directory.
        path: PathBuf,
        /// How often changes made by other processes are looked for.
        poll_interval: Duration,
    },
    /// The scale-out backend: a PostgreSQL database shared by every replica.
    Postgres(PostgresSettings),
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self::from_settings(&RegistrySettings::default(), &PostgresSettings::default())
    }
}

impl RegistryConfig {
    /// The registry `[registry]` names (with `[postgres]` for the `postgres` backend).
    pub fn from_settings(registry: &RegistrySettings, postgres: &PostgresSettings) -> Self {
        match registry.backend {
            RegistryBackend::Sqlite => RegistryConfig::Sqlite {
                path: registry.path.clone(),
                poll_interval: Duration::from_millis(registry.poll_interval_ms.max(1)),
            },
            RegistryBackend::Postgres => RegistryConfig::Postgres(postgres.clone()),
        }
    }

    /// The backend's name as written in `registry.backend`.
    pub fn backend(&self) -> &'static str {
        match self {
            RegistryConfig::Sqlite { .. } => "sqlite",
            RegistryConfig::Postgres(_) => "postgres",
        }
    }

    /// Opens the configured registry, resolving relative paths against `data_dir`.
    pub async fn build(&self, data_dir: &Path) -> Result<Arc<dyn Registry>, RegistryError> {
        match self {
            RegistryConfig::Sqlite { path, poll_interval } => {
                let options = SqliteOptions {
                    poll_interval: *poll_interval,
                    ..SqliteOptions::default()
                };
                Ok(Arc::new(
                    SqliteRegistry::open(&data_dir.join(path), &options).await?,
                ))
            }
            RegistryConfig::Postgres(settings) => open_postgres(settings).await,
        }
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(settings: &PostgresSettings) -> Result<Arc<dyn Registry>, RegistryError> {
    use crate::postgres::{PostgresOptions, PostgresRegistry};
    let mut connect = sqlx::postgres::PgConnectOptions::new()
        .host(&settings.host)
        .port(settings.port)
        .username(&settings.user)
        .database(&settings.database);
    if !settings.password.is_empty() {
        connect = connect.password(&settings.password);
    }
    let registry = PostgresRegistry::open(&PostgresOptions::new(connect)).await?;
    Ok(Arc::new(registry))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &PostgresSettings) -> Result<Arc<dyn Registry>, RegistryError> {
    Err(RegistryError::NotCompiled {
        backend: "postgres",
        feature: "postgres",
    })
}

/// The artifact store and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactConfig {
    /// `<data_dir>/artifacts`.
    Local,
    /// A bucket in S3 or an S3-compatible server.
    S3(ObjectStoreSettings),
}

impl ArtifactConfig {
    /// The store `[object_store]` names.
    pub fn from_settings(settings: &ObjectStoreSettings) -> Self {
        match settings.backend {
            ArtifactBackend::Local => ArtifactConfig::Local,
            ArtifactBackend::S3 => ArtifactConfig::S3(settings.clone()),
        }
    }

    /// The backend's name as written in `object_store.backend`.
    pub fn backend(&self) -> &'static str {
        match self {
            ArtifactConfig::Local => "local",
            ArtifactConfig::S3(_) => "s3",
        }
    }

    /// Opens the store (creating the local directory if absent; an S3 bucket must exist).
    pub fn build(&self, data_dir: &Path) -> Result<ArtifactStore, ArtifactError> {
        match self {
            ArtifactConfig::Local => ArtifactStore::local(&data_dir.join(LOCAL_ARTIFACTS_DIR)),
            ArtifactConfig::S3(settings) => open_s3(settings),
        }
    }
}

#[cfg(feature = "s3")]
fn open_s3(settings: &ObjectStoreSettings) -> Result<ArtifactStore, ArtifactError> {
    let options = crate::artifacts::S3Options {
        endpoint: settings.endpoint.clone(),
        bucket: settings.bucket.clone(),
        region: settings.region.clone(),
        access_key: settings.access_key.clone(),
        secret_key: settings.secret_key.clone(),
    };
    ArtifactStore::s3(&options)
}

#[cfg(not(feature = "s3"))]
fn open_s3(_: &ObjectStoreSettings) -> Result<ArtifactStore, ArtifactError> {
    Err(ArtifactError::NotCompiled {
        backend: "s3",
        feature: "s3",
    })
}

/// The registry and the artifact store a process works with.
#[derive(Clone)]
pub struct Stores {
    /// Versions, aliases and the audit log.
    pub registry: Arc<dyn Registry>,
    /// Model bytes.
    pub artifacts: ArtifactStore,
}

/// Opens the registry and artifact store that `settings` configure, relative paths inside
/// its data directory: what every command and the server work with.
pub async fn open(settings: &Settings) -> Result<Stores, OpenError> {
    let data_dir = settings.data_dir();
    let registry_config = RegistryConfig::from_settings(&settings.registry, &settings.postgres);
    let registry = registry_config
        .build(&data_dir)
        .await
        .map_err(|source| OpenError::Registry {
            backend: registry_config.backend(),
            source,
        })?;
    let artifact_config = ArtifactConfig::from_settings(&settings.object_store);
    let artifacts = artifact_config
        .build(&data_dir)
        .map_err(|source| OpenError::Artifacts {
            backend: artifact_config.backend(),
            source,
        })?;
    Ok(Stores { registry, artifacts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_sqlite_and_a_local_directory() {
        let settings = Settings::default();
        let config = RegistryConfig::from_settings(&settings.registry, &settings.postgres);
        assert_eq!(
            config,
            RegistryConfig::Sqlite {
                path: "registry.db".into(),
                poll_interval: Duration::from_millis(200),
            }
        );
        assert_eq!(config, RegistryConfig::default());
        assert_eq!(
            ArtifactConfig::from_settings(&settings.object_store),
            ArtifactConfig::Local
        );
    }

    #[test]
    fn the_backend_keys_choose_postgres_and_s3() {
        let settings = Settings::from_toml(
            "[registry]\nbackend = \"postgres\"\n[postgres]\ndatabase = \"reg\"\n\
             [object_store]\nbackend = \"s3\"\nbucket = \"models\"\n",
        )
        .unwrap();
        let registry = RegistryConfig::from_settings(&settings.registry, &settings.postgres);
        let RegistryConfig::Postgres(postgres) = &registry else {
            panic!("expected postgres, got {registry:?}");
        };
        assert_eq!(postgres.database, "reg");
        let ArtifactConfig::S3(s3) = ArtifactConfig::from_settings(&settings.object_store) else {
            panic!("expected s3");
        };
        assert_eq!(s3.bucket, "models");
    }

    #[tokio::test]
    async fn open_uses_the_data_dir_for_the_embedded_backends() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::from_toml(&format!(
            "data_dir = {:?}\n[registry]\npath = \"nested/reg.db\"\npoll_interval_ms = 50\n",
            dir.path().display().to_string()
        ))
        .unwrap();
        let stores = open(&settings).await.unwrap();
        assert!(stores.registry.models().await.unwrap().is_empty());
        assert!(dir.path().join("nested/reg.db").exists());
        let artifact = stores.artifacts.put("m", b"bytes".to_vec()).await.unwrap();
        assert!(dir.path().join(LOCAL_ARTIFACTS_DIR).join(&artifact.key).exists());
    }
}
