//! The foundation's purpose, checked end to end: a model trained on driftline's own
//! point-in-time features of the synthetic stream learns the fraud signal, and the
//! concept-drift scenario really breaks a model trained before its onset.

use driftline_core::config::{Config, Settings};
use driftline_drift::monitor::{BLOCKS, MonitorConfig};
use driftline_features::compute::FeatureEngine;
use driftline_features::ingest::Ingestor;
use driftline_features::offline::ParquetOfflineStore;
use driftline_features::paths::DataPaths;
use driftline_features::training::TrainingWindow;
use driftline_models::dataset::Dataset;
use driftline_models::gbt::GbtParams;
use driftline_models::logistic::LogisticRegressionParams;
use driftline_models::metrics::roc_auc;
use driftline_models::model::Model;
use driftline_stream::generator::{GeneratedEvent, Generator, GeneratorConfig, Scenario};
use driftline_stream::log::{FsyncPolicy, LogConfig, LogReader, LogWriter};
use driftline_training::config::TrainingConfig;
use driftline_training::pipeline::fit_candidate;
use driftline_training::rows::{LabelledRows, RecentRows, collect};

const EVENTS: u64 = 60_000;

/// A generated stream, ingested into a temporary directory's offline store.
struct History {
    _dir: tempfile::TempDir,
    engine: FeatureEngine,
    offline: ParquetOfflineStore,
    config: Config,
}

/// Generates and ingests a stream of [`EVENTS`] events.
fn history(scenario: Scenario) -> History {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths::new(dir.path());
    let mut settings = Settings::default();
    settings.log.fsync = false;
    let config = Config::check(settings).unwrap();
    let mut generator = Generator::new(GeneratorConfig {
        seed: 11,
        users: 500,
        scenario,
        onset: EVENTS / 2,
        ramp: 1,
        ..GeneratorConfig::default()
    })
    .unwrap();
    let mut writer = LogWriter::open(
        &paths.log(),
        LogConfig {
            fsync: FsyncPolicy::Never,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let (mut event, mut buf) = (GeneratedEvent::default(), Vec::new());
    for _ in 0..EVENTS {
        generator.next_into(&mut event);
        buf.clear();
        event.write_json(&mut buf);
        writer
            .append(&buf, chrono::Utc::now().timestamp_micros())
            .unwrap();
    }
    writer.flush().unwrap();
    let mut ingestor = Ingestor::open(config.clone(), paths.clone()).unwrap();
    ingestor
        .run(&mut LogReader::open(&paths.log()).unwrap(), false, &mut |_| {})
        .unwrap();
    History {
        _dir: dir,
        engine: FeatureEngine::from_config(&config),
        offline: ParquetOfflineStore::new(paths.offline(), config.contract.clone()),
        config,
    }
}

/// Generates, ingests and replays a stream; returns its labelled rows in event-time order.
fn rows(scenario: Scenario) -> LabelledRows {
    let history = history(scenario);
    let (rows, summary) = collect(
        &history.offline,
        &history.engine,
        TrainingWindow::default(),
        &mut RecentRows::none(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.rows, EVENTS, "every generated event has a row");
    rows
}

/// Rows `range` as a dataset, categorical columns typed so models one-hot encode them.
fn dataset(rows: &LabelledRows, range: std::ops::Range<usize>) -> Dataset {
    rows.dataset(&range.collect::<Vec<_>>()).unwrap()
}

fn holdout_auc(rows: &LabelledRows, train: std::ops::Range<usize>, test: std::ops::Range<usize>) -> f64 {
    let model = LogisticRegressionParams::default()
        .fit(&dataset(rows, train))
        .unwrap();
    let test_set = dataset(rows, test);
    roc_auc(&model.predict_dataset(&test_set).unwrap(), test_set.labels()).unwrap()
}

#[test]
fn a_model_on_point_in_time_features_learns_the_fraud_signal() {
    let rows = rows(Scenario::None);
    let split = rows.len() * 8 / 10;
    let auc = holdout_auc(&rows, 0..split, split..rows.len());
    println!("holdout ROC AUC without drift: {auc:.4}");
    assert!(auc > 0.85, "holdout ROC AUC {auc}");
}

#[test]
fn boosted_trees_on_the_same_features_beat_the_linear_model() {
    let rows = rows(Scenario::None);
    let split = rows.len() * 8 / 10;
    let linear = holdout_auc(&rows, 0..split, split..rows.len());
    let model = GbtParams::default().fit(&dataset(&rows, 0..split)).unwrap();
    let test_set = dataset(&rows, split..rows.len());
    let trees = roc_auc(&model.predict_dataset(&test_set).unwrap(), test_set.labels()).unwrap();
    println!("holdout ROC AUC: boosted trees {trees:.4}, logistic regression {linear:.4}");
    assert!(trees > linear, "trees {trees} vs linear {linear}");
}

#[test]
fn concept_drift_breaks_a_model_trained_before_the_onset() {
    let rows = rows(Scenario::Concept);
    let onset = rows.len() / 2;
    let before = holdout_auc(&rows, 0..onset * 8 / 10, onset * 8 / 10..onset);
    let after = holdout_auc(&rows, 0..onset * 8 / 10, onset + onset / 10..rows.len());
    println!("concept drift: AUC {before:.4} before the onset, {after:.4} after");
    assert!(before > 0.8, "pre-onset holdout AUC {before}");
    assert!(
        before - after > 0.1,
        "AUC before {before}, after the onset {after}"
    );
}

/// The drift monitor's noise floor and the hourly score calibration come from the
/// training window's latest events, not only the rows trained on: a model fitted on the
/// latest 2,000 labelled events (too few for a 1,000-row window in each of 8 blocks, and
/// a handful of fraud labels an hour) still gets both, measured over the whole
/// 60,000-event stream.
#[test]
fn noise_floor_and_calibration_are_measured_over_the_latest_events_not_the_rows_trained_on() {
    let history = history(Scenario::None);
    let settings = &history.config.settings;
    let mut training = TrainingConfig::from_settings(&settings.model, &settings.gates).unwrap();
    training.last_events = Some(2_000);
    training.monitor = MonitorConfig {
        window: 1_000,
        min_window: 500,
        ..MonitorConfig::default()
    };
    let candidate = fit_candidate(&training, &history.offline, &history.engine, &mut |_| {}).unwrap();
    assert_eq!(candidate.card.data.labelled, 2_000);
    assert_eq!(candidate.lineage.events, EVENTS);
    let spread = candidate
        .bundle
        .profile
        .window_spread
        .expect("a floor measured over the recent events");
    assert_eq!(spread.window, 1_000);
    // Blocks of 7,500 events hold about a dozen windows each; 1,600 training rows hold none.
    assert!(spread.windows >= 4 * BLOCKS, "{} windows", spread.windows);
    assert!(
        spread.columns.contains_key("transaction_amount"),
        "{:?}",
        spread.columns.keys()
    );
}
