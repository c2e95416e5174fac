//! `driftline gen`: write a synthetic stream to a file, standard output, the event log or
//! a Kafka topic (key = user id, value = the event JSON, the bytes a JSON-lines file holds).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use driftline_core::config::Config;
use driftline_core::time::Timestamp;
use driftline_features::paths::DataPaths;
use driftline_stream::generator::{CSV_HEADER, GeneratedEvent, Generator, GeneratorConfig, Scenario};
use driftline_stream::log::{LogConfig, LogReader, LogWriter, RecordBatch};

use super::{progress_bar, thousands};
use crate::settings::UsageError;

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Number of events to generate.
    #[arg(long)]
    pub count: u64,
    /// Seed: the same seed and options give byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of users (card holders).
    #[arg(long, default_value_t = 2_000)]
    pub users: u32,
    /// Drift to inject: none, covariate, categorical, concept or quality.
    #[arg(long, default_value = "none")]
    pub scenario: Scenario,
    /// Index of the first drifted event.
    #[arg(long, default_value_t = 50_000)]
    pub onset: u64,
    /// Events over which drift grows to full strength (0 = abrupt).
    #[arg(long, default_value_t = 10_000)]
    pub ramp: u64,
    /// Pace output at this many events per second (a live stream). Default: as fast as
    /// possible.
    #[arg(long, value_name = "EVENTS_PER_S")]
    pub rate: Option<f64>,
    /// Event time of the first event (RFC 3339). Default 2024-03-01T00:00:00Z, or with
    /// --to log a minute after the latest event already in the log.
    #[arg(long, value_name = "TS")]
    pub start: Option<Timestamp>,
    /// Share of events whose timestamp is set back 1-60 s, as late arrivals.
    #[arg(long, default_value_t = 0.0)]
    pub out_of_order: f64,
    /// Write to this file, or - for standard output (the default without --to).
    #[arg(long, value_name = "FILE|-", conflicts_with = "to")]
    pub out: Option<PathBuf>,
    /// Append to the event log (under --data-dir), or produce to the `[kafka]` topic
    /// (brokers from `REDPANDA_BROKERS`/`KAFKA_BROKERS`, topic from `EVENT_TOPIC`),
    /// instead of a file.
    #[arg(long, value_enum)]
    pub to: Option<Target>,
    /// File format. Default: csv for a .csv file, else JSON lines.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The embedded event log.
    Log,
    /// A Kafka topic (scale-out mode).
    Kafka,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl GenArgs {
    pub fn generator_config(&self) -> GeneratorConfig {
        let mut config = GeneratorConfig {
            seed: self.seed,
            users: self.users,
            scenario: self.scenario,
            onset: self.onset,
            ramp: self.ramp,
            out_of_order_fraction: self.out_of_order,
            ..GeneratorConfig::default()
        };
        if let Some(start) = self.start {
            config.start_ts = start.micros().div_euclid(1_000_000);
        }
        config
    }
}

pub fn run(config: Config, mut args: GenArgs) -> anyhow::Result<ExitCode> {
    if args.to == Some(Target::Log) && args.start.is_none() {
        let paths = DataPaths::new(config.settings.data_dir());
        if let Some(latest) = latest_event_time(&paths)? {
            // Appending to history: continue after it, or every event would arrive late.
            let start = Timestamp::from_unix_seconds(latest.micros().div_euclid(1_000_000) + 60);
            eprintln!("the log's events reach {latest}: continuing from {start} (--start overrides)");
            args.start = Some(start);
        }
    }
    let mut generator = Generator::new(args.generator_config()).map_err(|e| UsageError(e.to_string()))?;
    let started = Instant::now();
    match args.to {
        Some(Target::Kafka) => {
            let written = to_kafka(&mut generator, &args, &config)?;
            let kafka = &config.settings.kafka;
            eprintln!(
                "produced {} events to Kafka topic '{}' on {} in {:.2} s",
                thousands(written),
                kafka.topic,
                kafka.brokers,
                started.elapsed().as_secs_f64()
            );
        }
        Some(Target::Log) => {
            let paths = DataPaths::new(config.settings.data_dir());
            let written = to_log(&mut generator, &args, &paths, &config)?;
            eprintln!(
                "appended {} events to {} in {:.2} s",
                thousands(written),
                paths.log().display(),
                started.elapsed().as_secs_f64()
            );
        }
        None => {
            let path = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
            let csv = args.format == Some(Format::Csv)
                || (args.format.is_none() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")));
            let to_stdout = path.as_os_str() == "-";
            let out: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(File::create(&path).with_context(|| format!("creating {}", path.display()))?)
            };
            let written = to_writer(
                &mut generator,
                &args,
                BufWriter::with_capacity(1 << 20, out),
                csv,
                !to_stdout,
            )?;
            if !to_stdout {
                eprintln!(
                    "wrote {} events to {} in {:.2} s",
                    thousands(written),
                    path.display(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sleeps as needed so that `done` events took `done / rate` seconds.
struct Pacer {
    rate: Option<f64>,
    started: Instant,
}

impl Pacer {
    fn wait(&self, done: u64) {
        if let Some(rate) = self.rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(done as f64 / rate);
            if let Some(sleep) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(sleep);
            }
        }
    }

    /// Events per write batch: small enough for a smooth live stream.
    fn batch(&self) -> u64 {
        self.rate
            .map(|r| (r / 20.0).clamp(1.0, 8192.0) as u64)
            .unwrap_or(8192)
    }
}

fn to_writer(
    generator: &mut Generator,
    args: &GenArgs,
    mut out: impl Write,
    csv: bool,
    show_progress: bool,
) -> anyhow::Result<u64> {
    let bar = show_progress.then(|| progress_bar(Some(args.count), "generating"));
    let pacer = Pacer {
        rate: args.rate,
        started: Instant::now(),
    };
    let mut event = GeneratedEvent::default();
    let mut buf = Vec::with_capacity(1 << 16);
    if csv {
        buf.extend_from_slice(CSV_HEADER.as_bytes());
        buf.push(b'\n');
    }
    let mut done = 0;
    while done < args.count {
        let batch = pacer.batch().min(args.count - done);
        for _ in 0..batch {
            generator.next_into(&mut event);
            if csv {
                event.write_csv_row(&mut buf);
            } else {
                event.write_json(&mut buf);
            }
            buf.push(b'\n');
        }
        done += batch;
        out.write_all(&buf).context("writing events")?;
        buf.clear();
        if args.rate.is_some() {
            out.flush().context("writing events")?;
        }
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
        pacer.wait(done);
    }
    out.flush().context("writing events")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(done)
}

fn to_log(
    generator: &mut Generator,
    args: &GenArgs,
    paths: &DataPaths,
    config: &Config,
) -> anyhow::Result<u64> {
    let log_config = log_config(config);
    let mut writer = LogWriter::open(&paths.log(), log_config)
        .with_context(|| format!("opening the event log in {}", paths.log().display()))?;
    let bar = progress_bar(Some(args.count), "generating");
    let pacer = Pacer {
        rate: args.rate,
        started: Instant::now(),
    };
    let mut event = GeneratedEvent::default();
    let mut buf = Vec::with_capacity(256);
    let mut done = 0;
    while done < args.count {
        let batch = pacer.batch().min(args.count - done);
        let now = chrono::Utc::now().timestamp_micros();
        for _ in 0..batch {
            generator.next_into(&mut event);
            buf.clear();
            event.write_json(&mut buf);
            writer.append(&buf, now).context("appending to the event log")?;
        }
        writer.flush().context("flushing the event log")?;
        done += batch;
        bar.set_position(done);
        pacer.wait(done);
    }
    bar.finish_and_clear();
    Ok(done)
}

/// Produces every event to the `[kafka]` topic keyed by its user id; returns the count
/// delivered (all of them, or an error).
#[cfg(feature = "kafka")]
fn to_kafka(generator: &mut Generator, args: &GenArgs, config: &Config) -> anyhow::Result<u64> {
    let kafka = &config.settings.kafka;
    let mut sink = driftline_stream::kafka::KafkaSink::connect(kafka)
        .with_context(|| format!("connecting to Kafka at {}", kafka.brokers))?;
    let bar = progress_bar(Some(args.count), "producing");
    let pacer = Pacer {
        rate: args.rate,
        started: Instant::now(),
    };
    let mut event = GeneratedEvent::default();
    let mut buf = Vec::with_capacity(256);
    let mut done = 0;
    while done < args.count {
        let batch = pacer.batch().min(args.count - done);
        for _ in 0..batch {
            generator.next_into(&mut event);
            buf.clear();
            event.write_json(&mut buf);
            sink.send(event.user_id.as_bytes(), &buf)
                .context("producing to Kafka")?;
        }
        done += batch;
        bar.set_position(done);
        pacer.wait(done);
    }
    let report = sink
        .finish()
        .with_context(|| format!("delivering events to topic '{}'", kafka.topic))?;
    bar.finish_and_clear();
    Ok(report.delivered)
}

#[cfg(not(feature = "kafka"))]
fn to_kafka(_: &mut Generator, _: &GenArgs, _: &Config) -> anyhow::Result<u64> {
    Err(UsageError(
        "--to kafka needs the Kafka backend, which this build leaves out (cargo feature `kafka`); use --to log or --out".into(),
    )
    .into())
}

/// The event log settings of `config`.
pub fn log_config(config: &Config) -> LogConfig {
    LogConfig::from_settings(&config.settings.log)
}

/// The latest event time among the log's last records (the tail is enough: records are
/// appended in roughly event-time order, and a minute of margin covers the disorder).
fn latest_event_time(paths: &DataPaths) -> anyhow::Result<Option<Timestamp>> {
    const TAIL: usize = 4096;
    if !paths.log().exists() {
        return Ok(None);
    }
    let mut reader = LogReader::open(&paths.log()).context("reading the event log")?;
    let mut batch = RecordBatch::new();
    let mut tail = std::collections::VecDeque::with_capacity(TAIL);
    while reader.read_into(8192, &mut batch)? > 0 {
        for record in batch.iter() {
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(record.payload.to_vec());
        }
    }
    let latest = tail
        .iter()
        .filter_map(|payload| serde_json::from_slice::<serde_json::Value>(payload).ok())
        .filter_map(|value| value.get("event_ts")?.as_str()?.parse::<Timestamp>().ok())
        .max();
    Ok(latest)
}
