//! Opening the registry and artifact store for a command, and running its async calls.
//!
//! Key decision: commands stay synchronous; each registry call runs on a small
//! current-thread Tokio runtime owned by [`Models`], so only this module knows the
//! registry is async.

use std::sync::Arc;

use anyhow::Context;
use driftline_core::config::Config;
use driftline_registry::{ArtifactStore, ModelVersion, Registry, RegistryError};
use driftline_training::bundle::ModelBundle;
use driftline_training::pipeline::load_bundle;
use tokio::runtime::Runtime;

use crate::settings::UsageError;

/// The registry, the artifact store and the runtime their calls run on.
pub struct Models {
    pub runtime: Runtime,
    pub registry: Arc<dyn Registry>,
    pub artifacts: ArtifactStore,
}

impl Models {
    /// Opens (creating when absent, for the embedded backends) the registry and artifact
    /// store that the configuration names.
    pub fn open(config: &Config) -> anyhow::Result<Models> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let stores = runtime
            .block_on(driftline_registry::open(&config.settings))
            .context("opening the model registry and artifact store")?;
        Ok(Models {
            runtime,
            registry: stores.registry,
            artifacts: stores.artifacts,
        })
    }

    /// Runs one registry call; a refusal the user can fix (unknown name, bad name, a
    /// rejected version, nothing to roll back) becomes a usage error (exit status 2).
    pub fn call<T>(
        &self,
        what: impl FnOnce() -> String,
        call: impl Future<Output = Result<T, RegistryError>>,
    ) -> anyhow::Result<T> {
        self.runtime.block_on(call).map_err(|e| {
            let user_fixable = match &e {
                RegistryError::ModelNotFound { .. }
                | RegistryError::VersionNotFound { .. }
                | RegistryError::AliasNotFound { .. }
                | RegistryError::RejectedVersion { .. }
                | RegistryError::InvalidName { .. }
                | RegistryError::NothingToRollBack { .. }
                | RegistryError::NoChallenger { .. } => true,
                RegistryError::InvalidArtifact { .. }
                | RegistryError::Database { .. }
                | RegistryError::Migration { .. }
                | RegistryError::Corrupt { .. }
                | RegistryError::NotCompiled { .. }
                | RegistryError::Io { .. } => false,
            };
            if user_fixable {
                UsageError(format!("{}: {e}", what())).into()
            } else {
                anyhow::Error::new(e).context(what())
            }
        })
    }

    /// Resolves a version number or alias of `model`.
    pub fn lookup(&self, model: &str, reference: &str) -> anyhow::Result<ModelVersion> {
        self.call(
            || format!("finding {model} {reference}"),
            self.registry.lookup(model, reference),
        )
    }

    /// Loads a version's bundle, its sha256 verified.
    pub fn bundle(&self, version: &ModelVersion) -> anyhow::Result<ModelBundle> {
        self.runtime
            .block_on(load_bundle(version, &self.artifacts))
            .with_context(|| format!("loading the artifact of {} v{}", version.model, version.version))
    }
}
