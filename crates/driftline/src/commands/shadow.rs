//! `driftline shadow report`: how the shadow model compared with the primary, from the
//! shadow log `driftline serve` writes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use driftline_core::config::Config;
use driftline_serve::server::shadow_log;
use driftline_serve::shadow::report;

use super::{emit, thousands};
use crate::settings::UsageError;

#[derive(Subcommand, Debug)]
pub enum ShadowCommand {
    /// Agreement and score differences per (primary, shadow) version pair.
    Report {
        /// The shadow log. Default: <data-dir>/shadow.jsonl.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: Config, command: ShadowCommand) -> anyhow::Result<ExitCode> {
    let ShadowCommand::Report { log, json } = command;
    let path = log.unwrap_or_else(|| shadow_log(&config.settings.data_dir()));
    if !path.exists() {
        return Err(UsageError(format!(
            "no shadow log at {}: run `driftline serve` with serve.shadow_enabled (SHADOW_ENABLED=true) \
             and a model aliased `shadow`",
            path.display()
        ))
        .into());
    }
    let report = report(&path).with_context(|| format!("reading {}", path.display()))?;
    if json {
        emit(&serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if report.comparisons.is_empty() {
        emit("the shadow log holds no pairs yet")?;
    }
    for c in &report.comparisons {
        emit(&format!(
            "primary v{} vs shadow v{}: {} pairs, decisions agree on {:.2}%; |score difference| mean {:.4}, p50 {:.4}, p95 {:.4}, max {:.4}; shadow latency p50 {} µs, p99 {} µs",
            c.primary_version,
            c.shadow_version,
            thousands(c.pairs),
            100.0 * c.agreement_rate,
            c.mean_abs_score_difference,
            c.p50_abs_score_difference,
            c.p95_abs_score_difference,
            c.max_abs_score_difference,
            c.shadow_latency_p50_us,
            c.shadow_latency_p99_us,
        ))?;
    }
    if report.unreadable_lines > 0 {
        emit(&format!("({} unreadable lines skipped)", report.unreadable_lines))?;
    }
    Ok(ExitCode::SUCCESS)
}
