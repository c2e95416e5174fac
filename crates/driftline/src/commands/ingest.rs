//! `driftline ingest`: append a file or standard input to the event log (if given), then
//! consume the log into feature state, offline history and dead letters. With
//! `--from kafka`, a consumer-group member feeds the topic into the log as it goes and
//! commits the group's offsets after each checkpoint (see `driftline_features::kafka`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use driftline_core::config::Config;
use driftline_features::ingest::{IngestError, IngestStats, Ingestor};
use driftline_features::paths::DataPaths;
use driftline_features::source::append_input;
use driftline_serve::metrics::IngestMetrics;
use driftline_stream::input::InputSource;
use driftline_stream::log::LogReader;

use super::generate::log_config;
use super::{emit, progress_bar, thousands};
use crate::settings::UsageError;

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Where events come from: `log` (the embedded event log), `kafka` (the `[kafka]`
    /// topic, as a member of its consumer group, through the log), a JSON-lines or CSV
    /// file (appended to the log first, resumably), or `-` for standard input.
    #[arg(long, default_value = "log", value_name = "log|kafka|FILE|-")]
    pub from: String,
    /// Keep consuming new records as they arrive, checkpointing periodically. Without
    /// it, ingest stops once it has consumed everything there was (with `kafka`: every
    /// partition assigned to this worker has reached its end).
    #[arg(long)]
    pub follow: bool,
    /// Serve Prometheus metrics (ingest rate, lag, dead letters, freshness) at
    /// `http://ADDR/metrics` while ingesting, for a worker that runs on its own.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

pub fn run(config: Config, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let paths = DataPaths::new(config.settings.data_dir());
    let metrics = match &args.metrics_addr {
        Some(addr) => Some(serve_metrics(addr)?),
        None => None,
    };
    let progress = Progress { bar: true, metrics };
    let summary = ingest(config, &paths, &args.from, args.follow, progress)?;
    emit(&summary)?;
    Ok(ExitCode::SUCCESS)
}

/// How a run reports its progress while it goes.
#[derive(Default)]
pub struct Progress {
    /// A progress bar on standard error.
    pub bar: bool,
    /// Metrics served over HTTP (`--metrics-addr`).
    pub metrics: Option<Arc<IngestMetrics>>,
}

impl Progress {
    /// Reports the ingestor's state after a batch.
    fn observe(&self, ingestor: &Ingestor) {
        if let Some(metrics) = &self.metrics {
            let stats = ingestor.stats();
            metrics.observe(ingestor.next_offset(), stats.events, stats.dead_lettered());
            metrics.observe_lag(ingestor.lag());
        }
    }
}

/// Serves `/metrics` (and `/health`) at `addr` on a thread of its own, for as long as
/// the process lives. The address is bound before returning, so a taken port is an error
/// before any work starts.
fn serve_metrics(addr: &str) -> anyhow::Result<Arc<IngestMetrics>> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("--metrics-addr {addr}"))?;
    listener.set_nonblocking(true)?;
    let metrics = Arc::new(IngestMetrics::default());
    let shared = metrics.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the metrics server's runtime")?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let render = move || {
                    let metrics = shared.clone();
                    async move {
                        let mut out = String::with_capacity(2048);
                        metrics.render(&mut out);
                        driftline_serve::metrics::render_trace_export(&mut out);
                        (
                            [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            out,
                        )
                    }
                };
                let app = axum::Router::new()
                    .route("/metrics", axum::routing::get(render))
                    .route("/health", axum::routing::get(|| async { "ok" }));
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(error) = axum::serve(listener, app).await {
                            tracing::error!(%error, "the metrics server stopped");
                        }
                    }
                    Err(error) => tracing::error!(%error, "the metrics server could not start"),
                }
            })
        })
        .context("starting the metrics server's thread")?;
    tracing::info!(addr, "serving ingest metrics");
    Ok(metrics)
}

/// Runs ingest and returns a human summary.
pub fn ingest(
    config: Config,
    paths: &DataPaths,
    from: &str,
    follow: bool,
    progress: Progress,
) -> anyhow::Result<String> {
    let show_progress = progress.bar;
    let mut lines = Vec::new();
    match from {
        "log" => {}
        "kafka" => return ingest_kafka(config, paths, follow, progress),
        other => {
            let source = if other == "-" {
                InputSource::Stdin
            } else {
                let path = PathBuf::from(other);
                if !path.is_file() {
                    return Err(UsageError(format!(
                        "--from {other}: no such file (expected log, kafka, a file or -)"
                    ))
                    .into());
                }
                InputSource::File(path)
            };
            let bar = show_progress.then(|| progress_bar(None, "appending"));
            let report = append_input(&source, paths, log_config(&config), &mut |n| {
                if let Some(bar) = &bar {
                    bar.set_position(n);
                }
            })
            .with_context(|| format!("appending {} to the event log", source.name()))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            lines.push(format!(
                "appended {} records from {} to the event log",
                thousands(report.appended),
                source.name()
            ));
            if report.resumed_at_byte > 0 || report.already_in_log > 0 {
                lines.push(format!(
                    "  resumed an earlier run at byte {} ({} records were already in the log)",
                    report.resumed_at_byte,
                    thousands(report.already_in_log)
                ));
            }
        }
    }
    std::fs::create_dir_all(paths.log()).with_context(|| format!("creating {}", paths.log().display()))?;
    let mut ingestor = match Ingestor::open(config, paths.clone()) {
        Err(IngestError::Locked(lock)) if !lines.is_empty() => {
            lines.push(format!(
                "another ingest process holds {lock}; it will consume the appended records"
            ));
            return Ok(lines.join("\n"));
        }
        other => other.context("opening the data directory for ingest")?,
    };
    let before = ingestor.stats();
    let mut reader = LogReader::open(&paths.log()).context("opening the event log")?;
    let end = reader.end_offset()?;
    let total = end.saturating_sub(ingestor.next_offset());
    let bar = show_progress.then(|| progress_bar((!follow).then_some(total), "ingesting"));
    let start_offset = ingestor.next_offset();
    let started = Instant::now();
    ingestor
        .run(&mut reader, follow, &mut |i| {
            if let Some(bar) = &bar {
                bar.set_position(i.next_offset() - start_offset);
            }
            progress.observe(i);
        })
        .context("ingesting the event log")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    summarize(
        &mut lines,
        &ingestor,
        before,
        started.elapsed().as_secs_f64(),
        paths,
    );
    Ok(lines.join("\n"))
}

/// Kafka -> event log -> ingest, in one loop; offsets committed after each checkpoint.
#[cfg(feature = "kafka")]
fn ingest_kafka(
    config: Config,
    paths: &DataPaths,
    follow: bool,
    progress: Progress,
) -> anyhow::Result<String> {
    let show_progress = progress.bar;
    let kafka = config.settings.kafka.clone();
    std::fs::create_dir_all(paths.log()).with_context(|| format!("creating {}", paths.log().display()))?;
    let mut ingestor =
        Ingestor::open(config.clone(), paths.clone()).context("opening the data directory for ingest")?;
    let mut feed =
        driftline_features::kafka::open_feed(&config, paths, log_config(&config)).with_context(|| {
            format!(
                "joining consumer group '{}' of topic '{}' on {}",
                kafka.group, kafka.topic, kafka.brokers
            )
        })?;
    if !follow {
        // A run meant to end must get partitions; a following one may stand by.
        feed.set_assignment_timeout(Some(std::time::Duration::from_secs(120)));
    }
    let before = ingestor.stats();
    let mut reader = LogReader::open(&paths.log()).context("opening the event log")?;
    let bar = show_progress.then(|| progress_bar(None, "ingesting from kafka"));
    let start_offset = ingestor.next_offset();
    let started = Instant::now();
    ingestor
        .run_fed(&mut reader, &mut feed, follow, &mut |i| {
            if let Some(bar) = &bar {
                bar.set_position(i.next_offset() - start_offset);
            }
            progress.observe(i);
        })
        .with_context(|| format!("ingesting topic '{}' from {}", kafka.topic, kafka.brokers))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let stats = feed.stats();
    let mut lines = vec![format!(
        "appended {} messages from Kafka topic '{}' (group '{}', partitions {:?}) to the event log; {} redelivered ones were already there; offsets committed {} times{}",
        thousands(stats.appended),
        kafka.topic,
        kafka.group,
        feed.assigned(),
        thousands(stats.skipped),
        stats.commits,
        if stats.failed_commits > 0 {
            format!(
                " ({} commits refused, retried at the next checkpoint)",
                stats.failed_commits
            )
        } else {
            String::new()
        }
    )];
    summarize(
        &mut lines,
        &ingestor,
        before,
        started.elapsed().as_secs_f64(),
        paths,
    );
    Ok(lines.join("\n"))
}

#[cfg(not(feature = "kafka"))]
fn ingest_kafka(_: Config, _: &DataPaths, _: bool, _: Progress) -> anyhow::Result<String> {
    Err(UsageError(
        "--from kafka needs the Kafka backend, which this build leaves out (cargo feature `kafka`); use --from log, a file or -".into(),
    )
    .into())
}

/// The human summary of a run: what was consumed, how fast, what was refused.
fn summarize(
    lines: &mut Vec<String>,
    ingestor: &Ingestor,
    before: IngestStats,
    elapsed: f64,
    paths: &DataPaths,
) {
    let run = delta(ingestor.stats(), before);
    lines.push(format!(
        "ingested {} records in {:.2} s ({}/s): {} events, {} labels, {} dead-lettered ({} invalid, {} duplicate, {} late)",
        thousands(run.records),
        elapsed,
        thousands((run.records as f64 / elapsed.max(1e-9)) as u64),
        thousands(run.events),
        thousands(run.labels),
        thousands(run.dead_lettered()),
        thousands(run.invalid),
        thousands(run.duplicates),
        thousands(run.late),
    ));
    if run.dead_lettered() > 0 {
        lines.push(format!(
            "dead letters, with reasons: {}",
            paths.dead_letters().display()
        ));
    }
    lines.push(format!(
        "state: {} entities; log offset {} committed",
        thousands(ingestor.store().len() as u64),
        thousands(ingestor.next_offset())
    ));
    if let Some(shared) = ingestor.shared_store() {
        lines.push(format!(
            "every changed entity's state written to Redis at {shared}"
        ));
    }
}

fn delta(after: IngestStats, before: IngestStats) -> IngestStats {
    IngestStats {
        records: after.records - before.records,
        events: after.events - before.events,
        labels: after.labels - before.labels,
        invalid: after.invalid - before.invalid,
        duplicates: after.duplicates - before.duplicates,
        late: after.late - before.late,
    }
}
