//! Throughput of the embedded pipeline against the targets: ingest end to end
//! (event log to feature state, offline history and checkpoint) and the two per-event
//! feature costs (the state update, and a feature vector from state).
//!
//! Key decision: the end-to-end figure is measured next to controls taken from the
//! same log in the same run (raw log read, contract validation alone, the read-only
//! replay that rebuilds state without writing anything), so the report can say which
//! stage costs what instead of quoting one number. Results and their reading are in
//! `docs/benchmarks.md`. Nothing here asserts on time; the assertions only check that
//! every run did the work it claims (all events ingested).
//!
//! Run: `cargo bench -p driftline-features --bench pipeline`.

use std::collections::HashMap;
use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use driftline_core::config::{Config, Settings};
use driftline_core::contract::{IdSource, ValidateContext};
use driftline_core::event::{Event, Record};
use driftline_core::time::Timestamp;
use driftline_features::compute::FeatureEngine;
use driftline_features::ingest::Ingestor;
use driftline_features::online::{EmbeddedOnlineStore, OnlineStore};
use driftline_features::paths::DataPaths;
use driftline_features::state::{AsOf, EntityState, EventKey};
use driftline_stream::generator::{GeneratedEvent, Generator, GeneratorConfig};
use driftline_stream::log::{FsyncPolicy, LogConfig, LogReader, LogWriter, OwnedRecord, RecordBatch};

/// Events in the log that every ingest iteration consumes.
const N: usize = 200_000;
/// Events scored per `features/vector` iteration (the ones that follow the first `N`).
const QUERIES: usize = 20_000;
/// Events in the single long-history user's state.
const LONG_HISTORY: usize = 1_500;
/// Events scored against it: few enough that its whole history stays in the 30-day
/// window for every one of them.
const LONG_QUERIES: usize = 500;

/// The default settings (fraud contract and features, 4096-record batches, one
/// checkpoint per 500k records) with the log's fsync off, as a benchmark should run.
fn bench_config(data_dir: &Path, checkpoint_every: Option<usize>) -> Config {
    let mut settings = Settings {
        data_dir: Some(data_dir.to_path_buf()),
        ..Settings::default()
    };
    settings.log.fsync = false;
    if let Some(every) = checkpoint_every {
        settings.ingest.checkpoint_every = every;
    }
    Config::check(settings).expect("benchmark config is valid")
}

/// The first `count` events of a generated stream, as the JSON payloads `driftline gen`
/// writes.
fn payloads(generator: GeneratorConfig, count: usize) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(generator).expect("generator config is valid");
    let mut event = GeneratedEvent::default();
    (0..count)
        .map(|_| {
            generator.next_into(&mut event);
            let mut json = Vec::with_capacity(192);
            event.write_json(&mut json);
            json
        })
        .collect()
}

fn write_log(paths: &DataPaths, payloads: &[Vec<u8>]) {
    let mut writer = LogWriter::open(
        &paths.log(),
        LogConfig {
            fsync: FsyncPolicy::Never,
            ..LogConfig::default()
        },
    )
    .expect("opening the benchmark log");
    for p in payloads {
        writer
            .append(p, chrono::Utc::now().timestamp_micros())
            .expect("appending to the benchmark log");
    }
    writer.flush().expect("flushing the benchmark log");
}

/// Removes everything ingest writes, keeping the log: the next ingest starts afresh.
fn reset(paths: &DataPaths) {
    for dir in [paths.state(), paths.offline()] {
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                panic!("removing {}: {e}", dir.display())
            }
            _ => {}
        }
    }
    match fs::remove_file(paths.dead_letters()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("removing dead letters: {e}"),
        _ => {}
    }
}

fn read_all(paths: &DataPaths) -> Vec<OwnedRecord> {
    let mut reader = LogReader::open(&paths.log()).expect("opening the log");
    let mut records = Vec::with_capacity(N);
    let mut batch = Vec::new();
    while reader.read_batch(4096, &mut batch).expect("reading the log") > 0 {
        records.append(&mut batch);
    }
    records
}

/// Validates the way ingest does: the append time is "now", ids derived from the bytes.
fn validate(config: &Config, payload: &[u8], append_ts_micros: i64) -> Result<Record, String> {
    let ctx = ValidateContext {
        now: Timestamp(append_ts_micros),
        default_entity: None,
        path_prefix: "",
        ids: IdSource::DerivedFrom(payload),
    };
    config
        .contract
        .validate_json(payload, &ctx)
        .map_err(|e| e.to_string())
}

fn events_of(config: &Config, payloads: &[Vec<u8>]) -> Vec<Event> {
    let now = chrono::Utc::now().timestamp_micros();
    payloads
        .iter()
        .map(|p| match validate(config, p, now) {
            Ok(Record::Event(event)) => event,
            other => panic!("generated payload is not a valid event: {other:?}"),
        })
        .collect()
}

/// Entity index per event, and the number of distinct entities.
fn entity_indices(events: &[Event]) -> (Vec<usize>, HashMap<String, usize>) {
    let mut ids: HashMap<String, usize> = HashMap::new();
    let indices = events
        .iter()
        .map(|e| {
            let next = ids.len();
            *ids.entry(e.entity.clone()).or_insert(next)
        })
        .collect();
    (indices, ids)
}

fn ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = DataPaths::new(dir.path());
    let payloads = payloads(GeneratorConfig::default(), N);
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    write_log(&paths, &payloads);
    drop(payloads);
    eprintln!(
        "ingest fixture: {N} events, {:.1} MB of JSON payloads ({} B/event), log in {}",
        bytes as f64 / 1e6,
        bytes / N,
        paths.log().display()
    );

    let mut group = c.benchmark_group("ingest");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1));

    group.measurement_time(Duration::from_secs(12));
    for (name, every) in [("end_to_end", None), ("end_to_end_checkpoint_50k", Some(50_000))] {
        let config = bench_config(dir.path(), every);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    reset(&paths);
                    let started = Instant::now();
                    let mut ingestor = Ingestor::open(config.clone(), paths.clone()).expect("opening ingest");
                    let mut reader = LogReader::open(&paths.log()).expect("opening the log");
                    ingestor.run(&mut reader, false, &mut |_| {}).expect("ingesting");
                    total += started.elapsed();
                    let stats = ingestor.stats();
                    assert_eq!(stats.events, N as u64, "every event ingested: {stats:?}");
                }
                total
            })
        });
    }

    let config = bench_config(dir.path(), None);
    group.bench_function("replay_read_only", |b| {
        reset(&paths);
        b.iter(|| {
            let ingestor = Ingestor::restore(config.clone(), paths.clone()).expect("replaying");
            assert_eq!(ingestor.stats().events, N as u64);
            ingestor
        })
    });

    group.measurement_time(Duration::from_secs(4));
    group.bench_function("log_read_only", |b| {
        let mut batch = RecordBatch::new();
        let batch_size = config.settings.ingest.batch_size;
        b.iter(|| {
            let mut reader = LogReader::open(&paths.log()).expect("opening the log");
            let mut records = 0;
            let mut bytes = 0;
            while reader.read_into(batch_size, &mut batch).expect("reading") > 0 {
                records += batch.len();
                bytes += batch.iter().map(|r| r.payload.len()).sum::<usize>();
            }
            assert_eq!(records, N);
            bytes
        })
    });

    let records = read_all(&paths);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("validate_only", |b| {
        b.iter(|| {
            for record in &records {
                let record = validate(&config, &record.payload, record.append_ts_micros);
                black_box(record.is_ok());
            }
        })
    });
    group.finish();
}

fn features(c: &mut Criterion) {
    let config = Config::fraud_default();
    let spec = &config.features;
    let width = config.contract.fields().len();
    let engine = FeatureEngine::from_config(&config);

    let stream = payloads(GeneratorConfig::default(), N + QUERIES);
    let all = events_of(&config, &stream);
    drop(stream);
    let (history, queries) = all.split_at(N);
    let (indices, ids) = entity_indices(history);

    let mut group = c.benchmark_group("features");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("apply_event", |b| {
        b.iter_batched(
            || vec![EntityState::new(width); ids.len()],
            |mut states| {
                for (event, &i) in history.iter().zip(&indices) {
                    black_box(states[i].apply(event, spec));
                }
                states
            },
            BatchSize::PerIteration,
        )
    });

    // What ingest pays per event for the same update: entity lookup in the sharded map,
    // the shard lock and the apply, in the ingest's 4096-event batches.
    group.bench_function("apply_event_via_store", |b| {
        b.iter_batched(
            EmbeddedOnlineStore::default,
            |store| {
                for chunk in history.chunks(config.settings.ingest.batch_size) {
                    let entities: Vec<&str> = chunk.iter().map(|e| e.entity.as_str()).collect();
                    store
                        .update_each(&entities, width, &mut |i, state| {
                            black_box(state.apply(&chunk[i], spec));
                        })
                        .expect("embedded update");
                }
                store
            },
            BatchSize::PerIteration,
        )
    });

    // State after N events, then the vector of each of the next events as it would be
    // scored: strictly before the event, from everything the user did so far.
    let mut states = vec![EntityState::new(width); ids.len()];
    for (event, &i) in history.iter().zip(&indices) {
        states[i].apply(event, spec);
    }
    let empty = EntityState::new(width);
    let scored: Vec<(&EntityState, &Event)> = queries
        .iter()
        .map(|e| (ids.get(&e.entity).map_or(&empty, |&i| &states[i]), e))
        .collect();
    let lens: Vec<usize> = scored.iter().map(|(s, _)| s.len()).collect();
    let mut sorted = lens.clone();
    sorted.sort_unstable();
    eprintln!(
        "vector fixture: {} users after {N} events; scored events' users hold {:.0} events on average (median {}, p99 {}, max {})",
        ids.len(),
        lens.iter().sum::<usize>() as f64 / lens.len() as f64,
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 99 / 100],
        sorted[sorted.len() - 1]
    );
    group.throughput(Throughput::Elements(QUERIES as u64));
    group.bench_function("vector", |b| {
        b.iter(|| {
            for (state, event) in &scored {
                black_box(engine.vector(state, Some(event), AsOf::Before(EventKey::of(event))));
            }
        })
    });

    group.bench_function("vector_no_history", |b| {
        b.iter(|| {
            for (_, event) in &scored {
                black_box(engine.vector(&empty, Some(event), AsOf::Before(EventKey::of(event))));
            }
        })
    });

    // One user with a long history: every event in the 30-day z-score window, spread
    // over the 1h/24h/7d windows (one event every ~17 minutes of event time).
    let one_user = GeneratorConfig {
        users: 1,
        mean_interarrival_ms: 1_000_000.0,
        ..GeneratorConfig::default()
    };
    let long = events_of(&config, &payloads(one_user, LONG_HISTORY + LONG_QUERIES));
    let (long_history, long_queries) = long.split_at(LONG_HISTORY);
    let mut long_state = EntityState::new(width);
    for event in long_history {
        long_state.apply(event, spec);
    }
    let span_days =
        (long_history[LONG_HISTORY - 1].ts.micros() - long_history[0].ts.micros()) as f64 / 86_400e6;
    eprintln!(
        "long-history fixture: {} events over {span_days:.1} days of event time",
        long_state.len()
    );
    group.throughput(Throughput::Elements(long_queries.len() as u64));
    group.bench_function(format!("vector_long_history_{LONG_HISTORY}"), |b| {
        b.iter(|| {
            for event in long_queries {
                black_box(engine.vector(&long_state, Some(event), AsOf::Before(EventKey::of(event))));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, features);
criterion_main!(benches);
