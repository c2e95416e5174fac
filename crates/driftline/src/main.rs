//! The `driftline` command line: a thin layer that parses flags, loads configuration
//! and calls the library crates.
//!
//! Key decision: every subcommand returns `anyhow::Result`; errors print as one
//! sentence plus their cause chain, and the exit status says what kind of failure it
//! was (2 for bad usage or input, 1 for anything else), as the CLI contract promises.

mod commands;
mod logging;
mod settings;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::logging::LogFormat;
use crate::telemetry::Telemetry;

/// driftline: a real-time, drift-aware ML platform in one binary.
///
/// Events stream in, per-entity features stay fresh online and point-in-time correct
/// offline. Runs with zero infrastructure: everything lives under the data directory.
#[derive(Parser, Debug)]
#[command(name = "driftline", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Configuration file. Default: ./driftline.toml when it exists, else built-in
    /// defaults (the fraud demo). Env DRIFTLINE_CONFIG.
    #[arg(long, global = true, env = "DRIFTLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where embedded state lives. Default ./driftline-data. Env DRIFTLINE_DATA_DIR.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Log verbosity for diagnostics on stderr (error, warn, info, debug, trace). Default
    /// info, and error for `demo`, whose narrative is its output. Env RUST_LOG takes
    /// precedence.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,

    /// How diagnostics are written: text (default) or json, one object per line with
    /// timestamp, level, target, message, fields and, inside a traced span, trace_id.
    /// Env DRIFTLINE_LOG_FORMAT.
    #[arg(
        long,
        global = true,
        env = "DRIFTLINE_LOG_FORMAT",
        value_enum,
        value_name = "FORMAT"
    )]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole pipeline built so far on a fresh synthetic stream and narrate it.
    Demo(commands::demo::DemoArgs),
    /// Generate a synthetic transaction stream with a learnable fraud signal and
    /// optional drift.
    Gen(commands::generate::GenArgs),
    /// Consume events into feature state and offline history (from the event log, a
    /// file or standard input).
    Ingest(commands::ingest::IngestArgs),
    /// Inspect features: one entity's current vector, or a point-in-time training set.
    #[command(subcommand)]
    Features(commands::features::FeaturesCommand),
    /// Fit a model on offline history, judge it against the gates and the champion, and
    /// register it (rejected versions are kept for the audit trail).
    Train(commands::train::TrainArgs),
    /// Model versions: list, show, aliases, promote, rollback, audit log.
    Models(commands::models::ModelsArgs),
    /// Score a registered version on a file of labelled feature rows.
    Evaluate(commands::models::EvaluateArgs),
    /// Serve predictions over HTTP: ingests the log in-process, loads the registry's
    /// champion and swaps it without a restart when an alias changes.
    Serve(commands::serve::ServeArgs),
    /// Review what the shadow model did: agreement and score differences.
    #[command(subcommand)]
    Shadow(commands::shadow::ShadowCommand),
    /// Batch data drift between a reference and a current file: report and validate.
    #[command(subcommand)]
    Drift(commands::drift::DriftCommand),
    /// Print the configuration in effect (defaults < file < environment < flags) as TOML.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet_default = if matches!(cli.command, Command::Demo(_)) {
        "error"
    } else {
        "info"
    };
    let level = cli.log_level.as_deref().unwrap_or(quiet_default);
    let telemetry = match init_tracing(level, cli.log_format.unwrap_or_default()) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            report(&error);
            return ExitCode::from(2);
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(error) if commands::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            ExitCode::from(commands::exit_code(&error))
        }
    };
    telemetry.shutdown();
    code
}

/// One sentence plus the cause chain, on stderr.
fn report(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || settings::load(cli.config.as_deref(), cli.data_dir.as_deref());
    match cli.command {
        Command::Demo(args) => commands::demo::run(load()?, args),
        Command::Gen(args) => commands::generate::run(load()?, args),
        Command::Ingest(args) => commands::ingest::run(load()?, args),
        Command::Features(command) => commands::features::run(load()?, command),
        Command::Train(args) => commands::train::run(load()?, args),
        Command::Models(args) => commands::models::run(load()?, args),
        Command::Evaluate(args) => commands::models::evaluate(load()?, args),
        Command::Serve(args) => commands::serve::run(load()?, args),
        Command::Shadow(command) => commands::shadow::run(load()?, command),
        Command::Drift(command) => commands::drift::run(load()?, command),
        Command::Config => {
            let config = load()?;
            commands::emit(toml::to_string(&config.settings)?.trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Log lines at `level` (or RUST_LOG) in `format`, and trace export when the OpenTelemetry
/// environment asks for it (see [`telemetry`]); each layer has its own filter, so exported
/// spans never turn on log lines. An error names an OTEL_* variable that cannot be honoured.
fn init_tracing(level: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (traces, telemetry) = match telemetry::layer()? {
        Some((layer, telemetry)) => (Some(layer), telemetry),
        None => (None, Telemetry::off()),
    };
    let json = logging::JsonLines::default();
    let subscriber = tracing_subscriber::registry()
        .with(traces)
        .with(logging::layer(format, &json).with_filter(filter));
    let dispatch = tracing::Dispatch::new(subscriber);
    json.bind(&dispatch);
    dispatch.init();
    Ok(telemetry)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
