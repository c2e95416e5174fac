//! Loading configuration for a command: defaults < file < environment < flags.
//!
//! Key decision: only the binary touches the filesystem and the process environment;
//! `driftline-core` receives text and a lookup function.

use std::path::Path;

use anyhow::Context;
use driftline_core::config::{Config, Settings};
use driftline_training::config::TrainingConfig;

/// A configuration problem the user can fix: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn load(file: Option<&Path>, data_dir_flag: Option<&Path>) -> anyhow::Result<Config> {
    let default_file = Path::new("driftline.toml");
    let file = file.or(default_file.exists().then_some(default_file));
    let mut settings = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))
                .map_err(|e| UsageError(format!("{e:#}")))?;
            Settings::from_toml(&text).map_err(|e| UsageError(format!("config {}: {e}", path.display())))?
        }
        None => Settings::default(),
    };
    settings
        .apply_env(|name| std::env::var(name).ok())
        .map_err(|e| UsageError(e.to_string()))?;
    if let Some(dir) = data_dir_flag {
        settings.data_dir = Some(dir.to_path_buf());
    }
    let origin = file
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    let config = Config::check(settings).map_err(|e| UsageError(format!("config {origin}: {e}")))?;
    // The estimator table belongs to the trainer, which checks it.
    TrainingConfig::from_settings(&config.settings.model, &config.settings.gates)
        .map_err(|e| UsageError(format!("config {origin}: {e}")))?;
    Ok(config)
}
