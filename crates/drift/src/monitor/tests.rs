use std::sync::Arc;

use driftline_core::drift::{ColumnOverride, StatTest};
use driftline_core::profile::{ColumnKind, ProfileParams, ReferenceProfile};

use super::*;

/// xorshift64*: deterministic uniforms in [0, 1) without a dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (sum of 12 uniforms).
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }

    /// A code in 0..weights.len() with the given weights.
    fn category(&mut self, weights: &[f64]) -> f64 {
        let mut u = self.uniform() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i as f64;
            }
            u -= w;
        }
        (weights.len() - 1) as f64
    }
}

const COUNTRY: [f64; 4] = [0.5, 0.3, 0.15, 0.05];

/// Traffic: amount ~ N(100 + shift·20, 20), country by weights, flag 10% ones, score
/// ~ N(0.3 + score_shift, 0.1).
#[derive(Clone, Copy)]
struct Traffic {
    shift: f64,
    country: [f64; 4],
    score_shift: f64,
}

const REFERENCE: Traffic = Traffic {
    shift: 0.0,
    country: COUNTRY,
    score_shift: 0.0,
};

fn row(rng: &mut Rng, t: Traffic) -> ([f64; 3], f64) {
    let amount = 100.0 + 20.0 * (rng.normal() + t.shift);
    let country = rng.category(&t.country);
    let flag = f64::from(u8::from(rng.uniform() < 0.1));
    let score = 0.3 + t.score_shift + 0.1 * rng.normal();
    ([amount, country, flag], score)
}

fn profile() -> ReferenceProfile {
    let mut rng = Rng(7);
    let (mut data, mut scores) = (Vec::new(), Vec::new());
    for _ in 0..20_000 {
        let (features, score) = row(&mut rng, REFERENCE);
        data.extend_from_slice(&features);
        scores.push(score);
    }
    ReferenceProfile::fit_row_major(
        &["amount".into(), "country".into(), "flag".into()],
        &[
            ColumnKind::Numeric,
            ColumnKind::Categorical,
            ColumnKind::Categorical,
        ],
        &data,
        None,
        Some(&scores),
        &ProfileParams::default(),
    )
    .unwrap()
}

fn config(window: usize, min_window: usize) -> MonitorConfig {
    MonitorConfig {
        window,
        min_window,
        ..MonitorConfig::default()
    }
}

fn feed(monitor: &StreamMonitor, n: usize, seed: u64, traffic: Traffic) {
    let mut rng = Rng(seed);
    for _ in 0..n {
        let (features, score) = row(&mut rng, traffic);
        monitor.observe(&features, score).unwrap();
    }
}

fn verdict<'a>(snapshot: &'a MonitorSnapshot, name: &str) -> &'a ColumnVerdict {
    snapshot.column(name).unwrap().drift.as_ref().unwrap()
}

#[test]
fn no_verdict_before_min_window() {
    let monitor = StreamMonitor::new(&profile(), &config(1000, 500)).unwrap();
    feed(&monitor, 499, 1, REFERENCE);
    let snapshot = monitor.evaluate();
    assert_eq!(snapshot.status, MonitorStatus::WarmingUp);
    assert_eq!((snapshot.observed, snapshot.observed_total), (499, 499));
    assert!(snapshot.dataset.is_none());
    for column in snapshot.columns.iter().chain(&snapshot.score) {
        assert!(column.drift.is_none() && column.skipped.as_deref().unwrap().starts_with("warming up"));
    }
    assert_eq!(snapshot.column("amount").unwrap().quality.missing_rate, 0.0);
    feed(&monitor, 1, 2, REFERENCE);
    assert_eq!(monitor.evaluate().status, MonitorStatus::Stable);
}

#[test]
fn traffic_like_the_reference_is_stable_with_p_values_beside() {
    let monitor = StreamMonitor::new(&profile(), &config(5000, 500)).unwrap();
    feed(&monitor, 5000, 11, REFERENCE);
    let snapshot = monitor.evaluate();
    assert_eq!(snapshot.status, MonitorStatus::Stable);
    let amount = verdict(&snapshot, "amount");
    assert_eq!(
        (amount.test, amount.p_value_test),
        (StatTest::Wasserstein, StatTest::Ks)
    );
    assert!(amount.score.unwrap() < 0.05 && !amount.drifted, "{amount:?}");
    assert!(amount.p_value.unwrap() > 0.001, "{amount:?}");
    let country = verdict(&snapshot, "country");
    assert_eq!(
        (country.test, country.p_value_test),
        (StatTest::JensenShannon, StatTest::ChiSquare)
    );
    assert!(!country.drifted && country.p_value.is_some());
    let dataset = snapshot.dataset.unwrap();
    assert_eq!(
        (dataset.columns, dataset.drifted_columns, dataset.drifted),
        (3, 0, false)
    );
    assert!(!verdict(&snapshot, "score").drifted);
}

#[test]
fn shifted_features_drift_the_dataset() {
    let monitor = StreamMonitor::new(&profile(), &config(2000, 500)).unwrap();
    let shifted = Traffic {
        shift: 1.0,
        country: [0.1, 0.2, 0.2, 0.5],
        ..REFERENCE
    };
    feed(&monitor, 2000, 3, shifted);
    let snapshot = monitor.evaluate();
    assert_eq!(snapshot.status, MonitorStatus::Drift);
    let amount = verdict(&snapshot, "amount");
    assert!(
        amount.drifted && (amount.score.unwrap() - 1.0).abs() < 0.15,
        "{amount:?}"
    );
    assert!(amount.p_value.unwrap() < 1e-10);
    assert!(verdict(&snapshot, "country").drifted);
    assert!(!verdict(&snapshot, "flag").drifted);
    let dataset = snapshot.dataset.unwrap();
    assert_eq!((dataset.drifted_columns, dataset.columns), (2, 3));
    assert!(dataset.drifted && (dataset.share - 2.0 / 3.0).abs() < 1e-12);
    assert!(!verdict(&snapshot, "score").drifted);
}

#[test]
fn a_score_shift_alone_is_prediction_drift() {
    let monitor = StreamMonitor::new(&profile(), &config(1000, 500)).unwrap();
    feed(
        &monitor,
        1000,
        4,
        Traffic {
            score_shift: 0.05,
            ..REFERENCE
        },
    );
    let snapshot = monitor.evaluate();
    assert!(!snapshot.dataset.unwrap().drifted);
    let score = snapshot.score.as_ref().unwrap();
    assert_eq!(score.name, SCORE_COLUMN);
    assert!(score.drift.unwrap().drifted, "{score:?}");
    assert_eq!(snapshot.status, MonitorStatus::Drift);
}

#[test]
fn a_small_shift_at_a_large_window_is_reported_but_not_judged_drift() {
    let monitor = StreamMonitor::new(&profile(), &config(5000, 500)).unwrap();
    feed(
        &monitor,
        5000,
        5,
        Traffic {
            shift: 0.08,
            ..REFERENCE
        },
    );
    let amount = *verdict(&monitor.evaluate(), "amount");
    assert!(
        amount.p_value.unwrap() < 0.05,
        "KS alone would cry wolf: {amount:?}"
    );
    assert!(!amount.drifted && amount.score.unwrap() < 0.1, "{amount:?}");
}

#[test]
fn values_inside_the_profile_s_widened_range_are_not_out_of_range() {
    let mut profile = profile();
    let stats = profile.column("amount").unwrap().summary.stats.clone().unwrap();
    let width = profile.columns.len();
    let mut recent = vec![0.0; width];
    recent[0] = stats.max + 2.0;
    profile.widen_ranges(&recent).unwrap();
    let monitor = StreamMonitor::new(&profile, &config(100, 10)).unwrap();
    for i in 0..100 {
        // Half beyond the trained rows' maximum but within the recent events' one, a
        // tenth beyond both.
        let amount = match i % 10 {
            0..5 => stats.max + 1.0,
            5 => stats.max + 3.0,
            _ => 100.0,
        };
        monitor.observe(&[amount, 0.0, 0.0], f64::NAN).unwrap();
    }
    let snapshot = monitor.evaluate();
    let amount = &snapshot.column("amount").unwrap().quality;
    assert_eq!(amount.out_of_range_rate, Some(0.1));
}

#[test]
fn data_quality_counts_missing_out_of_range_and_unknown_values() {
    let profile = profile();
    let stats = profile.column("amount").unwrap().summary.stats.clone().unwrap();
    let monitor = StreamMonitor::new(&profile, &config(100, 10)).unwrap();
    for i in 0..100 {
        let amount = match i % 10 {
            0 => f64::NAN,
            1 => stats.max + 1.0,
            2 => stats.min - 1.0,
            _ => 100.0,
        };
        // Codes 0..3 are known; 9 never appeared; 1.5 is not a code.
        let country = match i % 20 {
            0 => 9.0,
            1 => 1.5,
            2 => f64::NAN,
            _ => 0.0,
        };
        monitor.observe(&[amount, country, 0.0], f64::NAN).unwrap();
    }
    let snapshot = monitor.evaluate();
    let amount = snapshot.column("amount").unwrap();
    assert_eq!(amount.quality.missing_rate, 0.1);
    assert_eq!(amount.quality.out_of_range_rate, Some(20.0 / 90.0));
    assert_eq!(amount.quality.reference_missing_rate, 0.0);
    let ColumnHistogram::Numeric {
        edges,
        reference,
        current,
        current_below,
        current_above,
    } = &amount.histogram
    else {
        panic!("numeric histogram: {:?}", amount.histogram)
    };
    assert_eq!(edges.len(), reference.len() + 1);
    assert_eq!(reference.iter().sum::<u64>(), 20_000);
    assert_eq!(
        (current.iter().sum::<u64>(), *current_below, *current_above),
        (70, 10, 10)
    );
    let country = snapshot.column("country").unwrap();
    assert_eq!(country.quality.missing_rate, 0.05);
    assert_eq!(country.quality.unknown_category_rate, Some(10.0 / 95.0));
    let ColumnHistogram::Categorical {
        categories,
        current,
        current_unknown,
        ..
    } = &country.histogram
    else {
        panic!("categorical histogram: {:?}", country.histogram)
    };
    assert_eq!(
        (categories.as_slice(), current[0], *current_unknown),
        (&[0, 1, 2, 3][..], 85, 10)
    );
    let score = snapshot.score.as_ref().unwrap();
    assert_eq!(score.quality.missing_rate, 1.0);
    assert_eq!(
        score.skipped.as_deref(),
        Some("every value in the window is missing")
    );
}

#[test]
fn the_window_keeps_only_the_newest_rows() {
    let profile = profile();
    let monitor = StreamMonitor::new(&profile, &config(100, 10)).unwrap();
    for _ in 0..150 {
        monitor.observe(&[1e9, 0.0, 0.0], 0.3).unwrap();
    }
    feed(&monitor, 100, 6, REFERENCE);
    let snapshot = monitor.evaluate();
    assert_eq!((snapshot.observed, snapshot.observed_total), (100, 250));
    let amount = snapshot.column("amount").unwrap();
    assert!(
        amount.quality.out_of_range_rate.unwrap() < 0.05,
        "{:?}",
        amount.quality
    );
}

#[test]
fn per_column_overrides_pick_the_test_and_threshold() {
    let mut config = config(2000, 500);
    config.drift.columns.insert(
        "amount".into(),
        ColumnOverride {
            test: Some(StatTest::Ks),
            threshold: Some(0.01),
        },
    );
    config.drift.columns.insert(
        "country".into(),
        ColumnOverride {
            test: None,
            threshold: Some(0.9),
        },
    );
    let monitor = StreamMonitor::new(&profile(), &config).unwrap();
    feed(
        &monitor,
        2000,
        8,
        Traffic {
            shift: 1.0,
            country: [0.1, 0.2, 0.2, 0.5],
            ..REFERENCE
        },
    );
    let snapshot = monitor.evaluate();
    let amount = verdict(&snapshot, "amount");
    assert_eq!(
        (amount.test, amount.p_value_test, amount.threshold),
        (StatTest::Ks, StatTest::Ks, 0.01)
    );
    assert!(amount.drifted && amount.score == amount.p_value);
    let country = verdict(&snapshot, "country");
    assert_eq!((country.test, country.threshold), (StatTest::JensenShannon, 0.9));
    assert!(
        !country.drifted,
        "the raised threshold keeps it quiet: {country:?}"
    );
}

#[test]
fn a_numbers_only_test_on_a_categorical_column_is_refused_naming_it() {
    let mut wasserstein = config(100, 10);
    wasserstein.drift.columns.insert(
        "country".into(),
        ColumnOverride {
            test: Some(StatTest::Wasserstein),
            threshold: None,
        },
    );
    let err = StreamMonitor::new(&profile(), &wasserstein)
        .unwrap_err()
        .to_string();
    assert!(err.contains("column 'country'"), "{err}");
    let err = StreamMonitor::new(
        &profile(),
        &MonitorConfig {
            min_window: 0,
            ..config(100, 10)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("min_window"), "{err}");
}

#[test]
fn a_vector_of_the_wrong_width_is_refused() {
    let monitor = StreamMonitor::new(&profile(), &config(100, 10)).unwrap();
    assert_eq!(
        monitor.observe(&[1.0, 0.0], 0.5),
        Err(MonitorError::Width { got: 2, expected: 3 })
    );
    assert_eq!(monitor.evaluate().observed_total, 0);
    assert_eq!(
        monitor.columns().collect::<Vec<_>>(),
        ["amount", "country", "flag"]
    );
}

#[test]
fn observe_is_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<StreamMonitor>();
    let monitor = Arc::new(StreamMonitor::new(&profile(), &config(1000, 10)).unwrap());
    std::thread::scope(|s| {
        for t in 0..4 {
            let monitor = &monitor;
            s.spawn(move || feed(monitor, 10_000, 100 + t, REFERENCE));
        }
        s.spawn(|| {
            for _ in 0..5 {
                monitor.evaluate();
            }
        });
    });
    let snapshot = monitor.evaluate();
    assert_eq!((snapshot.observed, snapshot.observed_total), (1000, 40_000));
}

#[test]
fn the_snapshot_round_trips_through_json_and_names_its_fields() {
    let monitor = StreamMonitor::new(&profile(), &config(600, 500)).unwrap();
    feed(&monitor, 600, 9, REFERENCE);
    let snapshot = monitor.evaluate();
    let json = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(serde_json::from_str::<MonitorSnapshot>(&json).unwrap(), snapshot);
    for key in [
        r#""status":"stable""#,
        r#""observed_total":600"#,
        r#""test":"wasserstein""#,
        r#""p_value_test":"chisquare""#,
        r#""type":"numeric""#,
        r#""unknown_category_rate""#,
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
}

#[test]
fn settings_become_the_monitor_config() {
    let mut settings = DriftSettings::default();
    settings.monitor.window = 300;
    settings.monitor.distance_threshold = 0.2;
    settings.columns.insert("score".into(), ColumnOverride::default());
    let config = MonitorConfig::from_settings(&settings);
    assert_eq!((config.window, config.min_window), (300, 500));
    assert_eq!(config.drift.distance_threshold, 0.2);
    assert!(config.drift.columns.contains_key("score"));
    assert!(config.check().is_err(), "min_window 500 > window 300");
}

/// A day of traffic with a daily cycle: at night (hours 0..6) amounts are higher and so
/// are scores. Columns: amount, hour.
fn seasonal_row(rng: &mut Rng, hour: usize, amount_shift: f64) -> ([f64; 2], f64) {
    let night = hour < 6;
    let mean = if night { 160.0 } else { 100.0 };
    let amount = mean + 20.0 * (rng.normal() + amount_shift);
    let score = if night { 0.6 } else { 0.2 } + 0.05 * rng.normal();
    ([amount, hour as f64], score)
}

fn seasonal_profile(seasons: bool) -> ReferenceProfile {
    let mut rng = Rng(21);
    let (mut data, mut scores) = (Vec::new(), Vec::new());
    for i in 0..48_000 {
        let (features, score) = seasonal_row(&mut rng, i % 24, 0.0);
        data.extend_from_slice(&features);
        scores.push(score);
    }
    let params = ProfileParams {
        season_column: seasons.then(|| "hour".to_string()),
        ..ProfileParams::default()
    };
    ReferenceProfile::fit_row_major(
        &["amount".into(), "hour".into()],
        &[ColumnKind::Numeric, ColumnKind::Numeric],
        &data,
        None,
        Some(&scores),
        &params,
    )
    .unwrap()
}

/// `n` rows of the night hours 0..6, amounts shifted by `shift` standard deviations.
fn feed_night(monitor: &StreamMonitor, n: usize, shift: f64) {
    let mut rng = Rng(5);
    for i in 0..n {
        let (features, score) = seasonal_row(&mut rng, i % 6, shift);
        monitor.observe(&features, score).unwrap();
    }
}

#[test]
fn regression_a_night_window_against_whole_days_cries_wolf_and_the_seasonal_reference_does_not() {
    let whole = StreamMonitor::new(&seasonal_profile(false), &config(5000, 500)).unwrap();
    feed_night(&whole, 5000, 0.0);
    let snapshot = whole.evaluate();
    assert!(snapshot.season.is_none());
    assert_eq!(
        snapshot.status,
        MonitorStatus::Drift,
        "night is not the whole day"
    );
    assert!(snapshot.drifted_columns.contains(&"score".to_string()));

    let seasonal = StreamMonitor::new(&seasonal_profile(true), &config(5000, 500)).unwrap();
    feed_night(&seasonal, 5000, 0.0);
    let snapshot = seasonal.evaluate();
    assert_eq!(
        snapshot.status,
        MonitorStatus::Stable,
        "{:?}",
        snapshot.drifted_columns
    );
    let season = snapshot.season.as_ref().unwrap();
    assert_eq!(season.column, "hour");
    assert_eq!(season.window_hours[..7], [834, 834, 833, 833, 833, 833, 0]);
    let amount = verdict(&snapshot, "amount");
    assert!(amount.score.unwrap() < 0.05, "{amount:?}");
    // Six strata of 2,000 rows, a sixth of the window each: an effective size of 12,000.
    assert!((11_900..=12_100).contains(&amount.reference_size), "{amount:?}");
    assert!(verdict(&snapshot, "hour").score.unwrap() < 1e-3, "the same hours");
}

#[test]
fn a_shift_within_the_same_hours_drifts_against_the_seasonal_reference() {
    let seasonal = StreamMonitor::new(&seasonal_profile(true), &config(5000, 500)).unwrap();
    feed_night(&seasonal, 5000, 0.5);
    let snapshot = seasonal.evaluate();
    assert_eq!(snapshot.status, MonitorStatus::Drift);
    assert_eq!(snapshot.drifted_columns, vec!["amount".to_string()]);
    let amount = verdict(&snapshot, "amount");
    assert!(amount.exceeds_threshold && amount.significant, "{amount:?}");
    assert!((amount.score.unwrap() - 0.5).abs() < 0.1, "{amount:?}");
    assert_eq!(
        snapshot.dataset.unwrap().share,
        0.5,
        "Evidently's share, reported beside"
    );
}

#[test]
fn a_distance_past_its_threshold_in_a_small_window_is_not_drift_unless_significant() {
    let monitor = StreamMonitor::new(&profile(), &config(5000, 20)).unwrap();
    // 20 rows: the normed Wasserstein distance of a 0.3σ shift is noisy at this size.
    feed(
        &monitor,
        20,
        13,
        Traffic {
            shift: 0.3,
            ..REFERENCE
        },
    );
    let amount = *verdict(&monitor.evaluate(), "amount");
    assert!(amount.exceeds_threshold, "{amount:?}");
    assert!(!amount.significant && !amount.drifted, "{amount:?}");
    assert!(
        (amount.significance_level - 0.05 / 4.0).abs() < 1e-12,
        "3 features and the score"
    );
}

/// Events in the last hour, 0..=7 by `weights`, beside a continuous amount.
fn count_row(rng: &mut Rng, weights: &[f64; 8]) -> [f64; 2] {
    [rng.category(weights), 100.0 + 20.0 * rng.normal()]
}

const EVENTS_1H: [f64; 8] = [0.3, 0.25, 0.15, 0.1, 0.08, 0.06, 0.04, 0.02];

fn count_profile() -> ReferenceProfile {
    let mut rng = Rng(31);
    let data: Vec<f64> = (0..20_000)
        .flat_map(|_| count_row(&mut rng, &EVENTS_1H))
        .collect();
    ReferenceProfile::fit_row_major(
        &["events_1h".into(), "amount".into()],
        &[ColumnKind::Numeric, ColumnKind::Numeric],
        &data,
        None,
        None,
        &ProfileParams::default(),
    )
    .unwrap()
}

fn feed_counts(monitor: &StreamMonitor, n: usize, seed: u64, weights: &[f64; 8]) {
    let mut rng = Rng(seed);
    for _ in 0..n {
        monitor.observe(&count_row(&mut rng, weights), f64::NAN).unwrap();
    }
}

#[test]
fn a_number_with_at_most_20_values_is_judged_value_by_value() {
    let monitor = StreamMonitor::new(&count_profile(), &config(5000, 500)).unwrap();
    feed_counts(&monitor, 4990, 41, &EVENTS_1H);
    // Ten values the reference never took.
    for _ in 0..10 {
        monitor.observe(&[12.0, 100.0], f64::NAN).unwrap();
    }
    let snapshot = monitor.evaluate();
    let events = verdict(&snapshot, "events_1h");
    assert_eq!(
        (events.test, events.p_value_test),
        (StatTest::JensenShannon, StatTest::ChiSquare),
        "not a Wasserstein distance normed by a small count's deviation"
    );
    assert!(!events.drifted && events.score.unwrap() < 0.05, "{events:?}");
    let ColumnHistogram::Values {
        values,
        reference,
        current,
        current_other,
    } = &snapshot.column("events_1h").unwrap().histogram
    else {
        panic!("a histogram of values")
    };
    assert_eq!(values, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(reference.iter().sum::<u64>(), 5000, "the profile's sample");
    assert_eq!((current.iter().sum::<u64>(), *current_other), (4990, 10));
    assert!(current[0] > current[7] * 5, "{current:?}");
    assert_eq!(
        verdict(&snapshot, "amount").test,
        StatTest::Wasserstein,
        "a continuous column keeps the distance on numbers"
    );

    let busier = [0.1, 0.15, 0.15, 0.15, 0.15, 0.1, 0.1, 0.1];
    let shifted = StreamMonitor::new(&count_profile(), &config(5000, 500)).unwrap();
    feed_counts(&shifted, 5000, 42, &busier);
    let snapshot = shifted.evaluate();
    let events = verdict(&snapshot, "events_1h");
    assert!(events.drifted && events.p_value.unwrap() < 1e-10, "{events:?}");
    assert_eq!(snapshot.drifted_columns, vec!["events_1h".to_string()]);
}

/// A stream of two columns: `user_max`, a per-user state that repeats on each of a user's
/// events (runs of 1 to 99 rows of one lognormal value, scaled by `scale`), and `amount`,
/// an independent normal shifted by `shift` standard deviations.
fn clustered_rows(n: usize, seed: u64, scale: f64, shift: f64) -> Vec<f64> {
    let mut rng = Rng(seed);
    let mut rows = Vec::with_capacity(2 * n);
    let (mut state, mut left) = (0.0, 0usize);
    for _ in 0..n {
        if left == 0 {
            state = scale * rng.normal().exp();
            left = 1 + (rng.uniform() * 99.0) as usize;
        }
        left -= 1;
        rows.extend_from_slice(&[state, 100.0 + 20.0 * (rng.normal() + shift)]);
    }
    rows
}

fn clustered_profile(config: &MonitorConfig) -> ReferenceProfile {
    let columns = ["user_max".to_string(), "amount".to_string()];
    let kinds = [ColumnKind::Numeric, ColumnKind::Numeric];
    let rows = clustered_rows(80_000, 51, 1.0, 0.0);
    let params = ProfileParams::default();
    let mut profile = ReferenceProfile::fit_row_major(&columns, &kinds, &rows, None, None, &params).unwrap();
    let reference = ReferenceRows {
        columns: &columns,
        kinds: &kinds,
        rows: &rows,
        scores: None,
        params: &params,
        profile_rows: None,
    };
    profile.window_spread = measure_window_spread(reference, config).unwrap();
    profile
}

fn judge_clustered(
    profile: &ReferenceProfile,
    config: &MonitorConfig,
    scale: f64,
    shift: f64,
) -> MonitorSnapshot {
    let monitor = StreamMonitor::new(profile, config).unwrap();
    for row in clustered_rows(config.window, 52, scale, shift).chunks_exact(2) {
        monitor.observe(row, f64::NAN).unwrap();
    }
    monitor.evaluate()
}

#[test]
fn regression_a_per_user_state_repeated_on_its_events_cries_wolf_without_the_window_spread() {
    let config = config(4000, 500);
    let profile = clustered_profile(&config);
    let spread = profile
        .window_spread
        .as_ref()
        .expect("80,000 rows hold 8 blocks of 4,000");
    assert_eq!(spread.window, 4000);
    assert!(spread.windows >= 8 * 4, "{spread:?}");
    let floor = |name: &str| noise_floor(&spread.columns[name], 4000, 4000);
    assert!(
        floor("user_max") > 0.1,
        "repeated values are few draws: {spread:?}"
    );
    assert!(floor("amount") < 0.1, "independent rows are precise: {spread:?}");

    let mut without = profile.clone();
    without.window_spread = None;
    let snapshot = judge_clustered(&without, &config, 1.0, 0.0);
    let user_max = verdict(&snapshot, "user_max");
    assert!(user_max.drifted, "a drift-free window of 40 draws: {user_max:?}");

    let snapshot = judge_clustered(&profile, &config, 1.0, 0.0);
    assert_eq!(
        snapshot.status,
        MonitorStatus::Stable,
        "{:?}",
        snapshot.drifted_columns
    );
    let user_max = verdict(&snapshot, "user_max");
    assert!(
        !user_max.exceeds_threshold && user_max.significant,
        "{user_max:?}"
    );
    assert_eq!(user_max.noise_floor, Some(user_max.threshold));
    assert_eq!(user_max.configured_threshold, 0.1);
    let amount = verdict(&snapshot, "amount");
    assert_eq!(
        amount.threshold, 0.1,
        "the floor is below the configured threshold"
    );
}

#[test]
fn the_window_spread_keeps_real_changes_and_scales_with_the_rows_judged() {
    let config = config(4000, 500);
    let profile = clustered_profile(&config);
    let snapshot = judge_clustered(&profile, &config, 1.0, 0.5);
    assert_eq!(snapshot.drifted_columns, vec!["amount".to_string()]);
    let snapshot = judge_clustered(&profile, &config, 3.0, 0.0);
    assert!(
        verdict(&snapshot, "user_max").drifted,
        "tripled: {:?}",
        verdict(&snapshot, "user_max")
    );

    let spread = &profile.window_spread.as_ref().unwrap().columns["user_max"];
    let full = noise_floor(spread, 4000, 4000);
    assert!(
        (noise_floor(spread, 4000, 1000) - 2.0 * full).abs() < 1e-12,
        "a quarter of the rows"
    );
    assert!((full - (spread.mean + NOISE_SDS * spread.std)).abs() < 1e-12);
}

#[test]
fn a_configured_threshold_is_not_raised_by_the_window_spread() {
    let mut config = config(4000, 500);
    config.drift.columns.insert(
        "user_max".into(),
        ColumnOverride {
            test: None,
            threshold: Some(0.05),
        },
    );
    let profile = clustered_profile(&config);
    let user_max = *verdict(&judge_clustered(&profile, &config, 1.0, 0.0), "user_max");
    assert_eq!((user_max.threshold, user_max.noise_floor), (0.05, None));
}

#[test]
fn a_reference_too_short_for_its_blocks_has_no_window_spread() {
    let config = config(5000, 500);
    let columns = ["user_max".to_string(), "amount".to_string()];
    let kinds = [ColumnKind::Numeric, ColumnKind::Numeric];
    let reference = ReferenceRows {
        columns: &columns,
        kinds: &kinds,
        rows: &clustered_rows(39_999, 1, 1.0, 0.0),
        scores: None,
        params: &ProfileParams::default(),
        profile_rows: None,
    };
    assert_eq!(measure_window_spread(reference, &config).unwrap(), None);
}

/// One column, `amount`, whose level moves between periods of 10,000 rows (busy and quiet
/// days): periods alternate `+offset` and `-offset` standard deviations, the first
/// `first_sign`.
fn period_rows(n: usize, seed: u64, offset: f64, first_sign: f64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let sign = if (i / 10_000) % 2 == 0 {
                first_sign
            } else {
                -first_sign
            };
            100.0 + 20.0 * (rng.normal() + sign * offset)
        })
        .collect()
}

/// The monitored profile is one period's; live windows come from other periods. Held-out
/// windows judged against the seven other blocks together see a level between the two and
/// put the floor too low; judged against one period beside them, as the live ones are,
/// they put it where the live windows' distances lie.
#[test]
fn regression_the_floor_holds_the_noise_of_a_profile_the_monitored_ones_size() {
    let config = config(4000, 500);
    let columns = ["amount".to_string()];
    let kinds = [ColumnKind::Numeric];
    let params = ProfileParams::default();
    let history = period_rows(80_000, 61, 0.25, -1.0);
    let fitted_on = &history[70_000..];
    let profile_with = |profile_rows: Option<usize>| {
        let mut profile =
            ReferenceProfile::fit_row_major(&columns, &kinds, fitted_on, None, None, &params).unwrap();
        let reference = ReferenceRows {
            columns: &columns,
            kinds: &kinds,
            rows: &history,
            scores: None,
            params: &params,
            profile_rows,
        };
        profile.window_spread = measure_window_spread(reference, &config).unwrap();
        profile
    };
    let judge = |profile: &ReferenceProfile, rows: Vec<f64>| {
        let monitor = StreamMonitor::new(profile, &config).unwrap();
        for row in rows.chunks_exact(1).take(config.window) {
            monitor.observe(row, f64::NAN).unwrap();
        }
        *verdict(&monitor.evaluate(), "amount")
    };
    // The profile's period is at +0.25 sd; the next day is at -0.25.
    let next_day = || period_rows(4000, 62, 0.25, -1.0);

    let all_other_blocks = profile_with(None);
    let amount = judge(&all_other_blocks, next_day());
    assert!(
        amount.drifted,
        "the floor of every other block is too low: {amount:?}"
    );

    let one_period = profile_with(Some(10_000));
    let amount = judge(&one_period, next_day());
    assert!(!amount.drifted, "an ordinary day: {amount:?}");
    let shifted = period_rows(4000, 63, 1.5, -1.0);
    let amount = judge(&one_period, shifted);
    assert!(amount.drifted, "a real change still drifts: {amount:?}");
}

#[test]
fn a_held_out_block_s_profile_rows_lie_beside_it() {
    assert_eq!(
        spread::profile_span(80_000, (20_000, 30_000), Some(10_000)),
        (10_000, 20_000)
    );
    assert_eq!(
        spread::profile_span(80_000, (0, 10_000), Some(10_000)),
        (10_000, 20_000),
        "after"
    );
    assert_eq!(
        spread::profile_span(80_000, (5_000, 15_000), Some(10_000)),
        (15_000, 25_000)
    );
    assert_eq!(
        spread::profile_span(80_000, (0, 10_000), Some(75_000)),
        (0, 80_000),
        "no room"
    );
    assert_eq!(spread::profile_span(80_000, (0, 10_000), None), (0, 80_000));
}
