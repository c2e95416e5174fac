//! `driftline drift report` and `driftline drift validate`: batch drift between two files,
//! with the verdicts of Evidently's data-drift preset.
//!
//! Key decision: this is a thin adapter. Reading, testing and rendering live in
//! `driftline-drift`; here flags and configuration become a `DriftConfig` and a column
//! selection, and a report's dataset verdict becomes the exit status of `validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use driftline_core::config::Config;
use driftline_drift::data::{ReadOptions, read_table};
use driftline_drift::report::ColumnSelection;
use driftline_drift::{DriftConfig, DriftReport};

use crate::commands::emit;
use crate::settings::UsageError;

#[derive(Subcommand, Debug)]
pub enum DriftCommand {
    /// Compare a current file with a reference file, column by column.
    Report(ReportArgs),
    /// Exit 1 when a JSON report says the dataset drifted (and `drift.fail_on_dataset`,
    /// env DRIFT_FAIL_ON_DATASET, is true), 0 otherwise, 2 when the file is not a report.
    Validate(ValidateArgs),
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Reference data (.csv, .parquet, .jsonl). Default `drift.reference_path`
    /// (env DRIFT_REFERENCE_PATH).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Current data. Default `drift.current_path` (env DRIFT_CURRENT_PATH).
    #[arg(long, value_name = "FILE")]
    pub current: Option<PathBuf>,
    /// Compare only these columns (comma-separated). Default: every shared column except
    /// the contract's event id, entity, timestamp and label, and identifier-like text
    /// columns (all reference values distinct over at least 50 rows).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub columns: Option<Vec<String>>,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "FILE.html")]
    pub out: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// A JSON report written by `drift report --json`.
    pub report: PathBuf,
}

pub fn run(config: Config, command: DriftCommand) -> anyhow::Result<ExitCode> {
    match command {
        DriftCommand::Report(args) => report(config, args),
        DriftCommand::Validate(args) => validate(config, args),
    }
}

fn report(config: Config, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let settings = &config.settings.drift;
    let reference = args
        .reference
        .or_else(|| settings.reference_path.clone())
        .ok_or_else(|| UsageError("--reference is required (or set DRIFT_REFERENCE_PATH)".into()))?;
    let current = args
        .current
        .or_else(|| settings.current_path.clone())
        .ok_or_else(|| UsageError("--current is required (or set DRIFT_CURRENT_PATH)".into()))?;
    if reference.to_string_lossy().starts_with("model:") {
        return Err(UsageError(
            "--reference model:NAME is not supported yet: export the model's training set with \
             `driftline features training-set --out FILE` and pass that file"
                .into(),
        )
        .into());
    }
    let contract = &config.contract;
    let excluded: Vec<String> = [
        contract.event_id_field(),
        contract.entity_field(),
        contract.timestamp_field(),
        contract.label_field(),
    ]
    .map(String::from)
    .to_vec();
    let options = ReadOptions {
        only: args.columns.clone(),
        skip: excluded.clone(),
    };
    let read = |path: &PathBuf| read_table(path, &options).map_err(|e| UsageError(e.to_string()));
    let reference_table = read(&reference)?;
    let current_table = read(&current)?;
    let selection = ColumnSelection {
        only: args.columns,
        excluded,
    };
    let drift_config = DriftConfig {
        p_value_threshold: settings.p_value_threshold,
        ..DriftConfig::default()
    };
    let report = DriftReport::build(&reference_table, &current_table, &selection, &drift_config)
        .map_err(|e| UsageError(e.to_string()))?;
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.out {
        std::fs::write(path, report.to_html()).with_context(|| format!("writing {}", path.display()))?;
    }
    emit(&summary(&report))?;
    Ok(ExitCode::SUCCESS)
}

/// A short table: one line per column, then the dataset verdict.
fn summary(report: &DriftReport) -> String {
    let mut lines = vec![format!(
        "{:<24} {:<12} {:<14} {:>12} {:>10}  drift",
        "column", "type", "test", "score", "threshold"
    )];
    for c in &report.columns {
        lines.push(format!(
            "{:<24} {:<12} {:<14} {:>12} {:>10}  {}",
            c.name,
            format!("{:?}", c.column_type).to_lowercase(),
            c.test.name(),
            c.score.map(|s| format!("{s:.6}")).unwrap_or_else(|| "-".into()),
            c.threshold,
            if c.drifted { "DRIFT" } else { "no" }
        ));
    }
    for s in &report.skipped {
        lines.push(format!("{:<24} skipped: {}", s.name, s.reason));
    }
    let d = &report.dataset;
    lines.push(format!(
        "dataset drift: {} ({} of {} columns, share {:.3} >= {:.3}?)",
        if d.drifted { "YES" } else { "no" },
        d.drifted_columns,
        d.columns,
        d.share,
        d.drift_share
    ));
    lines.join("\n")
}

fn validate(config: Config, args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.report)
        .map_err(|e| UsageError(format!("reading {}: {e}", args.report.display())))?;
    let report = DriftReport::from_json(&text)
        .map_err(|e| UsageError(format!("{} is not a drift report: {e}", args.report.display())))?;
    let d = &report.dataset;
    emit(&format!(
        "dataset drift: {} ({} of {} columns drifted)",
        if d.drifted { "YES" } else { "no" },
        d.drifted_columns,
        d.columns
    ))?;
    if d.drifted && config.settings.drift.fail_on_dataset {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
