//! `driftline models` and `driftline evaluate`: inspect versions, move aliases, promote,
//! roll back, read the audit log, and score a version on a file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use driftline_core::config::Config;
use driftline_registry::{AuditEntry, ModelVersion, RegistryError};
use driftline_training::evaluate::evaluate_file;

use super::registry::Models;
use super::{emit, thousands};

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// The model's name. Default: model.name from the configuration.
    #[arg(long, global = true, value_name = "NAME")]
    model: Option<String>,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// Every version with its status, headline metrics and aliases.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// One version (a number or an alias) with its card and lineage, as JSON.
    Show {
        #[arg(value_name = "VERSION")]
        reference: String,
    },
    /// Point or remove an alias (champion, challenger or any name).
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Make a version (default: the challenger) the champion.
    Promote {
        #[arg(value_name = "VERSION")]
        reference: Option<String>,
        #[arg(long, default_value = "manual promotion")]
        reason: String,
    },
    /// Point the champion back at the version it held before its latest change.
    Rollback {
        #[arg(long, default_value = "manual rollback")]
        reason: String,
    },
    /// The audit log, newest first: registrations, rejections and every alias change.
    Audit {
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// As JSON lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AliasCommand {
    /// Point alias NAME at VERSION (a number or another alias).
    Set {
        name: String,
        #[arg(value_name = "VERSION")]
        reference: String,
        #[arg(long, default_value = "set by hand")]
        reason: String,
    },
    /// Remove alias NAME.
    Rm {
        name: String,
        #[arg(long, default_value = "removed by hand")]
        reason: String,
    },
}

const ACTOR: &str = "driftline models";

pub fn run(config: Config, args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let model = args.model.unwrap_or_else(|| config.settings.model.name.clone());
    let models = Models::open(&config)?;
    let rt = &models.runtime;
    let registry = models.registry.as_ref();
    match args.command {
        ModelsCommand::List { json } => {
            let (versions, aliases) = match rt.block_on(registry.versions(&model)) {
                Err(RegistryError::ModelNotFound { .. }) => (Vec::new(), Vec::new()),
                versions => (
                    versions?,
                    models.call(|| format!("listing {model}"), registry.aliases(&model))?,
                ),
            };
            if json {
                emit(&serde_json::to_string_pretty(&versions)?)?;
            } else if versions.is_empty() {
                emit(&format!("no versions of {model} yet: run `driftline train`"))?;
            } else {
                emit(&format!(
                    "{:>7}  {:<10}  {:<20}  {:<8}  {:>7}  {:>7}  {:>9}  aliases",
                    "version", "status", "registered", "kind", "roc_auc", "avg_pr", "rows"
                ))?;
                for v in &versions {
                    let names: Vec<&str> = aliases
                        .iter()
                        .filter(|a| a.version == v.version)
                        .map(|a| a.name.as_str())
                        .collect();
                    emit(&list_line(v, &names.join(",")))?;
                }
            }
        }
        ModelsCommand::Show { reference } => {
            let v = models.lookup(&model, &reference)?;
            emit(&serde_json::to_string_pretty(&v)?)?;
        }
        ModelsCommand::Alias(AliasCommand::Set {
            name,
            reference,
            reason,
        }) => {
            let v = models.lookup(&model, &reference)?;
            let entry = models.call(
                || format!("setting {model} alias {name}"),
                registry.set_alias(&model, &name, v.version, &reason, ACTOR),
            )?;
            emit(&audit_line(&entry))?;
        }
        ModelsCommand::Alias(AliasCommand::Rm { name, reason }) => {
            let entry = models.call(
                || format!("removing {model} alias {name}"),
                registry.remove_alias(&model, &name, &reason, ACTOR),
            )?;
            emit(&audit_line(&entry))?;
        }
        ModelsCommand::Promote { reference, reason } => {
            let number = reference
                .map(|r| models.lookup(&model, &r))
                .transpose()?
                .map(|v| v.version);
            let entry = models.call(
                || format!("promoting {model}"),
                registry.promote(&model, number, &reason, ACTOR),
            )?;
            emit(&audit_line(&entry))?;
        }
        ModelsCommand::Rollback { reason } => {
            let entry = models.call(
                || format!("rolling back {model}"),
                registry.rollback(&model, &reason, ACTOR),
            )?;
            emit(&audit_line(&entry))?;
        }
        ModelsCommand::Audit { limit, json } => {
            for entry in models.call(
                || format!("reading the audit log of {model}"),
                registry.audit(Some(&model), limit),
            )? {
                emit(&if json {
                    serde_json::to_string(&entry)?
                } else {
                    audit_line(&entry)
                })?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_line(v: &ModelVersion, aliases: &str) -> String {
    let card = |key: &str| v.card.pointer(key).and_then(serde_json::Value::as_f64);
    let metric = |key: &str| card(key).map_or("-".into(), |x| format!("{x:.4}"));
    let status = serde_json::to_value(v.status)
        .ok()
        .and_then(|s| s.as_str().map(String::from));
    format!(
        "{:>7}  {:<10}  {:<20}  {:<8}  {:>7}  {:>7}  {:>9}  {}",
        v.version,
        status.unwrap_or_default(),
        v.created_at.format("%Y-%m-%d %H:%M:%S"),
        v.card.get("estimator").and_then(|e| e.as_str()).unwrap_or("-"),
        metric("/holdout/roc_auc"),
        metric("/holdout/average_precision"),
        thousands(v.lineage.rows_train + v.lineage.rows_holdout),
        aliases
    )
}

fn audit_line(e: &AuditEntry) -> String {
    let action = serde_json::to_value(e.action)
        .ok()
        .and_then(|s| s.as_str().map(String::from));
    let version = |v: Option<u32>| v.map_or("-".into(), |v| format!("v{v}"));
    let change = match (&e.alias, e.from_version, e.to_version) {
        (Some(alias), from, to) => format!("{alias}: {} -> {}", version(from), version(to)),
        (None, _, to) => version(to),
    };
    format!(
        "{}  {:<13}  {:<28}  {}  ({})",
        e.at.format("%Y-%m-%d %H:%M:%S"),
        action.unwrap_or_default(),
        change,
        e.reason,
        e.actor
    )
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The version: a number or an alias such as champion.
    #[arg(value_name = "VERSION")]
    reference: String,
    /// Labelled rows: feature rows (the .parquet or .csv of `driftline features
    /// training-set`, or any file with the model's columns and the label), or raw events
    /// (.csv or .jsonl), whose features are computed from the file's own history.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The model's name. Default: model.name from the configuration.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
}

pub fn evaluate(config: Config, args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let model = args.model.unwrap_or_else(|| config.settings.model.name.clone());
    let models = Models::open(&config)?;
    let version = models.lookup(&model, &args.reference)?;
    let bundle = models.bundle(&version)?;
    let engine = driftline_features::compute::FeatureEngine::from_config(&config);
    let evaluation = evaluate_file(&bundle, &args.data, &config.contract, &engine)
        .map_err(|e| crate::settings::UsageError(e.to_string()))?;
    let json = serde_json::json!({
        "model": version.model,
        "version": version.version,
        "data": args.data.display().to_string(),
        "unlabelled_rows": evaluation.unlabelled_rows,
        "metrics": evaluation.metrics,
    });
    emit(&serde_json::to_string_pretty(&json)?)?;
    Ok(ExitCode::SUCCESS)
}
