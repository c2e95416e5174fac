//! Cost of the streaming drift monitor at the size: a window of 5,000 predictions
//! of the fraud demo's 27 feature columns (23 numeric, 4 categorical) plus the score.
//!
//! Key decision: `observe` is measured alone (one thread) and under contention (2 and 4
//! threads sharing one monitor, the request path of a 2-core server), as nanoseconds per
//! call, so the figure can be set against the 40k requests/s budget (25 µs per request per
//! core). `evaluate` is measured on a full window; it runs off the request path every
//! `evaluate_interval_seconds`; beside it, as a control, the copy of the window it makes
//! under the lock (the only time it can delay `observe`). Nothing asserts on time.
//!
//! Run: `cargo bench -p driftline-drift --bench monitor`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use driftline_core::profile::{ColumnKind, ProfileParams, ReferenceProfile};
use driftline_drift::monitor::{MonitorConfig, StreamMonitor};

const COLUMNS: usize = 27;
const CATEGORICAL: [usize; 4] = [22, 23, 24, 25];
const WINDOW: usize = 5000;
const REFERENCE_ROWS: usize = 50_000;

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn kinds() -> Vec<ColumnKind> {
    (0..COLUMNS)
        .map(|j| {
            if CATEGORICAL.contains(&j) {
                ColumnKind::Categorical
            } else {
                ColumnKind::Numeric
            }
        })
        .collect()
}

/// One row: numeric columns on different scales (a few with missing values), categorical
/// codes 0..7; `shift` moves every numeric column.
fn row(rng: &mut Rng, kinds: &[ColumnKind], shift: f64, out: &mut [f64]) -> f64 {
    for (j, (kind, x)) in kinds.iter().zip(out.iter_mut()).enumerate() {
        *x = match kind {
            ColumnKind::Categorical => (rng.uniform() * 7.0).floor(),
            ColumnKind::Numeric if j % 9 == 0 && rng.uniform() < 0.05 => f64::NAN,
            ColumnKind::Numeric => (rng.uniform() + shift) * (j + 1) as f64 * 10.0,
        };
    }
    rng.uniform()
}

fn profile(kinds: &[ColumnKind]) -> ReferenceProfile {
    let mut rng = Rng(1);
    let mut data = vec![0.0; REFERENCE_ROWS * COLUMNS];
    let mut scores = Vec::with_capacity(REFERENCE_ROWS);
    for chunk in data.chunks_exact_mut(COLUMNS) {
        scores.push(row(&mut rng, kinds, 0.0, chunk));
    }
    let names: Vec<String> = (0..COLUMNS).map(|j| format!("f{j}")).collect();
    ReferenceProfile::fit_row_major(
        &names,
        kinds,
        &data,
        None,
        Some(&scores),
        &ProfileParams::default(),
    )
    .expect("a valid profile")
}

fn filled_monitor(profile: &ReferenceProfile, kinds: &[ColumnKind], shift: f64) -> StreamMonitor {
    let monitor = StreamMonitor::new(profile, &MonitorConfig::default()).expect("default config");
    let mut rng = Rng(2);
    let mut features = [0.0; COLUMNS];
    for _ in 0..WINDOW {
        let score = row(&mut rng, kinds, shift, &mut features);
        monitor.observe(&features, score).expect("27 columns");
    }
    monitor
}

fn observe(c: &mut Criterion) {
    let kinds = kinds();
    let profile = profile(&kinds);
    let monitor = filled_monitor(&profile, &kinds, 0.0);
    let mut rng = Rng(3);
    let rows: Vec<([f64; COLUMNS], f64)> = (0..1024)
        .map(|_| {
            let mut features = [0.0; COLUMNS];
            let score = row(&mut rng, &kinds, 0.0, &mut features);
            (features, score)
        })
        .collect();
    let mut group = c.benchmark_group("monitor/observe");
    group.measurement_time(Duration::from_secs(4));
    let mut i = 0;
    group.bench_function("1 thread", |b| {
        b.iter(|| {
            let (features, score) = &rows[i & 1023];
            i += 1;
            monitor.observe(black_box(features), black_box(*score)).unwrap();
        })
    });
    for threads in [2, 4] {
        group.bench_function(format!("{threads} threads, per call"), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let (monitor, rows) = (&monitor, &rows);
                        s.spawn(move || {
                            for k in 0..per_thread {
                                let (features, score) = &rows[(k as usize + t as usize * 97) & 1023];
                                monitor.observe(black_box(features), black_box(*score)).unwrap();
                            }
                        });
                    }
                });
                // Wall time per call across all threads: the server's throughput cost.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_thread * threads) as f64)
            })
        });
    }
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    let kinds = kinds();
    let profile = profile(&kinds);
    let mut group = c.benchmark_group("monitor/evaluate");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    // Control: what evaluate does while it holds the lock (copy the filled rows out).
    let rows = vec![0.5f64; WINDOW * (COLUMNS + 1)];
    group.bench_function("copy of the window (the time the lock is held)", |b| {
        b.iter(|| {
            let mut copy = Vec::with_capacity(rows.len());
            copy.extend_from_slice(black_box(&rows));
            black_box(copy)
        })
    });
    for (name, shift) in [("5000 x 27, no drift", 0.0), ("5000 x 27, drifted", 0.3)] {
        let monitor = filled_monitor(&profile, &kinds, shift);
        let snapshot = monitor.evaluate();
        assert_eq!(snapshot.observed, WINDOW);
        eprintln!(
            "{name}: status {:?}, {} of {} columns drifted, JSON {} bytes",
            snapshot.status,
            snapshot.dataset.unwrap().drifted_columns,
            snapshot.columns.len(),
            serde_json::to_string(&snapshot).unwrap().len()
        );
        group.bench_function(name, |b| b.iter(|| black_box(monitor.evaluate())));
    }
    group.finish();
}

criterion_group!(benches, observe, evaluate);
criterion_main!(benches);
