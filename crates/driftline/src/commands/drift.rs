//! `driftline drift report` and `driftline drift validate`: batch drift between two files,
//! with the verdicts of Evidently's data-drift preset.
//!
//! Key decision: this is a thin adapter. Reading, testing and rendering live in
//! `driftline-drift`; here flags and configuration (`[drift]`, `[drift.columns.NAME]`,
//! with `--test` flags winning field by field) become a `DriftConfig` and a column
//! selection, and a report's dataset verdict becomes the exit status of `validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use driftline_core::config::Config;
use driftline_core::contract::FieldKind;
use driftline_core::features::FeatureKind;
use driftline_drift::data::{ReadOptions, Table, read_table_with_progress};
use driftline_drift::profile::{profile_is_sampled, table_from_profile};
use driftline_drift::report::ColumnSelection;
use driftline_drift::{ColumnOverride, DriftConfig, DriftReport, StatTest};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::emit;
use crate::commands::registry::Models;
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
    /// Reference data (.csv, .parquet, .jsonl), or `model:ALIAS` / `model:VERSION` for the
    /// reference profile stored with a registered version of the configured model (the
    /// current file must then hold its feature columns). Default `drift.reference_path`
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
    /// Per-column test and/or threshold instead of Evidently's default, repeatable:
    /// `--test amount=psi`, `--test amount=psi:0.2`, `--test amount=:0.01`. Tests: ks,
    /// chisquare, z, jensenshannon, wasserstein, psi, hellinger. Each given part overrides
    /// `[drift.columns.COLUMN]` in the configuration.
    #[arg(long = "test", value_name = "COLUMN=TEST[:THRESHOLD]")]
    pub tests: Vec<String>,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "FILE.html")]
    pub out: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
    /// No progress bar (it is drawn on stderr, and only when stderr is a terminal).
    #[arg(long, short)]
    pub quiet: bool,
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
    let bar = report_progress(args.quiet, &[&reference, &current]);
    let on_bytes = |n: u64| bar.inc(n);
    let read = |path: &PathBuf| {
        read_table_with_progress(path, &options, &on_bytes).map_err(|e| UsageError(e.to_string()))
    };
    let model_reference = reference
        .to_str()
        .and_then(|r| r.strip_prefix("model:"))
        .map(str::to_string);
    let (reference_table, current_table) = match &model_reference {
        Some(alias) => {
            let mut current_table = read(&current)?;
            encode_request_categories(&config, &mut current_table);
            (model_profile_table(&config, alias)?, current_table)
        }
        None => {
            // The two files are read at once, one thread each: reading is most of the time.
            let (reference_table, current_table) = std::thread::scope(|scope| {
                let current = scope.spawn(|| read(&current));
                let reference = read(&reference);
                (
                    reference,
                    current.join().expect("the reading thread does not panic"),
                )
            });
            (reference_table?, current_table?)
        }
    };
    if model_reference.is_some() {
        let missing: Vec<&str> = reference_table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| current_table.column(name).is_none())
            .collect();
        if missing.len() == reference_table.columns.len() {
            return Err(UsageError(format!(
                "{} has none of the model's feature columns ({}); pass a file of feature rows, e.g. \
                 from `driftline features training-set --out FILE`",
                current.display(),
                reference_table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
    }
    let selection = ColumnSelection {
        only: args.columns,
        excluded,
    };
    let mut drift_config = DriftConfig {
        p_value_threshold: settings.p_value_threshold,
        columns: settings.columns.clone(),
        ..DriftConfig::default()
    };
    for spec in &args.tests {
        let (column, flag) = parse_override(spec)?;
        let chosen = drift_config.columns.entry(column).or_default();
        chosen.test = flag.test.or(chosen.test);
        chosen.threshold = flag.threshold.or(chosen.threshold);
    }
    drift_config.check().map_err(UsageError)?;
    bar.set_position(0);
    bar.set_length(reference_table.columns.len() as u64);
    bar.set_message("testing");
    let on_column = || bar.inc(1);
    let report = DriftReport::build_with_progress(
        &reference_table,
        &current_table,
        &selection,
        &drift_config,
        &on_column,
    )
    .map_err(|e| UsageError(e.to_string()))?;
    bar.finish_and_clear();
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.out {
        std::fs::write(path, report.to_html()).with_context(|| format!("writing {}", path.display()))?;
    }
    emit(&summary(&report))?;
    Ok(ExitCode::SUCCESS)
}

/// The bar of a report: bytes of the input files while reading, then columns tested.
/// Hidden with `--quiet` (and by indicatif when stderr is not a terminal).
fn report_progress(quiet: bool, inputs: &[&PathBuf]) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bytes: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(bytes).with_style(
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {percent:>3}% ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("reading");
    bar
}

/// The reference profile stored with a registered model version (alias or number) of
/// the configured model, as a reference table.
fn model_profile_table(config: &Config, reference: &str) -> anyhow::Result<Table> {
    let models = Models::open(config)?;
    let model = &config.settings.model.name;
    let version = models.lookup(model, reference)?;
    let bundle = models.bundle(&version)?;
    if profile_is_sampled(&bundle.profile) {
        tracing::warn!(
            model = %model,
            version = version.version,
            sample_size = bundle.profile.params.sample_size,
            "numeric columns are compared with the profile's sample of the training data, not all of it"
        );
    }
    Ok(table_from_profile(
        &bundle.profile,
        &format!("model:{model} v{}", version.version),
    ))
}

/// A model's profile counts category features by contract code (the value's position in
/// the field's `values`); raw events hold the text. Text columns of those features are
/// encoded so both sides count the same keys.
fn encode_request_categories(config: &Config, table: &mut Table) {
    for feature in &config.features.columns {
        let FeatureKind::RequestCategory { field } = feature.kind else {
            continue;
        };
        let FieldKind::Category { values } = &config.contract.fields()[field].kind else {
            continue;
        };
        if let Some(column) = table.columns.iter_mut().find(|c| c.name == feature.name) {
            column.encode_categories(values);
        }
    }
}

/// `COLUMN=TEST[:THRESHOLD]` or `COLUMN=:THRESHOLD`.
fn parse_override(spec: &str) -> Result<(String, ColumnOverride), UsageError> {
    let bad = |why: &str| UsageError(format!("--test {spec}: {why} (expected COLUMN=TEST[:THRESHOLD])"));
    let (column, choice) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
    let (test, threshold) = match choice.split_once(':') {
        Some((test, threshold)) => (test, Some(threshold)),
        None => (choice, None),
    };
    let test = match test {
        "" => None,
        name => Some(StatTest::from_name(name).ok_or_else(|| bad(&format!("unknown test '{name}'")))?),
    };
    let threshold = threshold
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| bad(&format!("threshold '{t}' is not a number")))
        })
        .transpose()?;
    if column.is_empty() || (test.is_none() && threshold.is_none()) {
        return Err(bad("nothing to override"));
    }
    Ok((column.to_string(), ColumnOverride { test, threshold }))
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
