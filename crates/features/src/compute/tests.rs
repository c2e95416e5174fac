//! Feature values checked by hand on small histories: windows, derived and request features.

use super::*;
use crate::state::EventKey;
use driftline_core::config::Config;
use driftline_core::time::Timestamp;

const HOUR: i64 = 3600;

fn event(id: &str, ts: i64, amount: f64, country: u16, device: u16) -> Event {
    Event {
        event_id: id.into(),
        entity: "u".into(),
        ts: Timestamp::from_unix_seconds(ts),
        label: None,
        values: vec![
            FieldValue::Number(amount),
            FieldValue::Category(country),
            FieldValue::Category(device),
        ],
    }
}

fn column(engine: &FeatureEngine, vector: &FeatureVector, name: &str) -> f64 {
    let i = engine
        .spec()
        .names()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    vector.values[i]
}

fn engine_and_state(history: &[Event]) -> (FeatureEngine, EntityState) {
    let config = Config::fraud_default();
    let engine = FeatureEngine::from_config(&config);
    let mut state = EntityState::new(3);
    for e in history {
        state.apply(e, &config.features);
    }
    (engine, state)
}

#[test]
fn windows_aggregate_only_events_strictly_before_the_scored_event() {
    let t0 = 1_700_000_000;
    let history = [
        event("e1-00000000", t0, 10.0, 0, 0),
        event("e2-00000000", t0 + 23 * HOUR, 20.0, 1, 0),
        event("e3-00000000", t0 + 24 * HOUR + 1800, 30.0, 1, 1),
        event("e4-00000000", t0 + 24 * HOUR + 3000, 60.0, 3, 2),
    ];
    let (engine, state) = engine_and_state(&history);
    let scored = &history[3];
    let v = engine.vector(&state, Some(scored), AsOf::Before(EventKey::of(scored)));
    let get = |name| column(&engine, &v, name);
    // 1h before e4: only e3 (e4 itself is excluded).
    assert_eq!(get("transaction_amount_count_1h"), 1.0);
    assert_eq!(get("transaction_amount_sum_1h"), 30.0);
    assert_eq!(get("transaction_amount_std_1h"), 0.0);
    // 24h before e4 (t0 + 24h + 3000 s): e2 and e3; e1 is 24h + 3000 s old.
    assert_eq!(get("transaction_amount_count_24h"), 2.0);
    assert_eq!(get("transaction_amount_mean_24h"), 25.0);
    assert_eq!(get("transaction_amount_std_24h"), 5.0);
    assert_eq!(get("transaction_amount_max_24h"), 30.0);
    assert_eq!(get("country_distinct_count_24h"), 1.0);
    assert_eq!(get("device_distinct_count_7d"), 2.0);
    assert_eq!(get("transaction_amount_count_7d"), 3.0);
    // z-score of 60 against {10, 20, 30}: mean 20, population std sqrt(200/3).
    let expected = (60.0 - 20.0) / (200.0f64 / 3.0).sqrt();
    assert!((get("transaction_amount_zscore_30d") - expected).abs() < 1e-12);
    assert_eq!(get("seconds_since_last_event"), 1200.0);
    assert_eq!(get("country_changed"), 1.0);
    assert_eq!(get("device_changed"), 1.0);
    assert_eq!(get("transaction_amount"), 60.0);
    // Categories are their position in the contract's list: DE is the 4th country.
    assert_eq!(get("country"), 3.0);
    assert_eq!(get("device"), 2.0);
    assert_eq!(
        get("event_ts_hour_of_day"),
        Timestamp::from_unix_seconds(t0 + 24 * HOUR + 3000).hour_of_day() as f64
    );
}

#[test]
fn a_first_event_has_empty_windows_and_missing_history_features() {
    let first = event("e1-00000000", 1_700_000_000, 10.0, 0, 0);
    let (engine, state) = engine_and_state(std::slice::from_ref(&first));
    let v = engine.vector(&state, Some(&first), AsOf::Before(EventKey::of(&first)));
    assert_eq!(column(&engine, &v, "transaction_amount_count_7d"), 0.0);
    assert_eq!(column(&engine, &v, "transaction_amount_sum_7d"), 0.0);
    assert!(column(&engine, &v, "transaction_amount_mean_7d").is_nan());
    assert!(column(&engine, &v, "transaction_amount_zscore_30d").is_nan());
    assert!(column(&engine, &v, "seconds_since_last_event").is_nan());
    assert!(column(&engine, &v, "country_changed").is_nan());
    assert_eq!(column(&engine, &v, "transaction_amount"), 10.0);
}

#[test]
fn through_includes_the_latest_event_and_has_no_request_features() {
    let history = [
        event("e1-00000000", 1_700_000_000, 10.0, 0, 0),
        event("e2-00000000", 1_700_000_100, 20.0, 0, 0),
    ];
    let (engine, state) = engine_and_state(&history);
    let v = engine.vector(&state, None, AsOf::Through(history[1].ts));
    assert_eq!(column(&engine, &v, "transaction_amount_count_1h"), 2.0);
    assert_eq!(column(&engine, &v, "seconds_since_last_event"), 0.0);
    assert!(column(&engine, &v, "transaction_amount").is_nan());
    assert!(column(&engine, &v, "country").is_nan());
}

#[test]
fn same_timestamp_events_are_ordered_by_id_hash_and_see_each_other_once() {
    let a = event("same-ts-a-00", 1_700_000_000, 10.0, 0, 0);
    let b = event("same-ts-b-00", 1_700_000_000, 20.0, 0, 0);
    let (engine, state) = engine_and_state(&[a.clone(), b.clone()]);
    let va = engine.vector(&state, Some(&a), AsOf::Before(EventKey::of(&a)));
    let vb = engine.vector(&state, Some(&b), AsOf::Before(EventKey::of(&b)));
    let counts = [
        column(&engine, &va, "transaction_amount_count_1h"),
        column(&engine, &vb, "transaction_amount_count_1h"),
    ];
    let mut sorted = counts;
    sorted.sort_by(f64::total_cmp);
    assert_eq!(sorted, [0.0, 1.0], "exactly one of the two sees the other");
}

#[test]
fn std_stays_accurate_for_small_spread_around_a_large_mean() {
    let amounts = [4990.01, 4990.02, 4990.04, 4990.07, 4990.11];
    let history: Vec<Event> = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| event(&format!("big-{i:08}"), 1_700_000_000 + i as i64 * 60, *a, 0, 0))
        .collect();
    let (engine, state) = engine_and_state(&history);
    let v = engine.vector(&state, None, AsOf::Through(history[4].ts));
    let mean = amounts.iter().sum::<f64>() / 5.0;
    let two_pass = (amounts.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
    let std = column(&engine, &v, "transaction_amount_std_1h");
    assert!((std - two_pass).abs() < 1e-9, "{std} vs {two_pass}");
    assert_eq!(column(&engine, &v, "transaction_amount_max_1h"), 4990.11);
}

#[test]
fn min_and_last_follow_the_window() {
    use driftline_core::features::{AggFunction, AggregationConfig, FeaturesConfig};
    let settings = driftline_core::config::Settings {
        features: FeaturesConfig {
            aggregations: vec![AggregationConfig {
                field: "transaction_amount".into(),
                functions: vec![AggFunction::Min, AggFunction::Last],
                windows: vec!["1h".parse().unwrap(), "24h".parse().unwrap()],
            }],
            derived: vec![],
            request: vec![],
            ..FeaturesConfig::default()
        },
        ..Default::default()
    };
    let config = Config::check(settings).unwrap();
    let engine = FeatureEngine::from_config(&config);
    let mut state = EntityState::new(3);
    let t0 = 1_700_000_000;
    for (i, (dt, amount)) in [(0, 5.0), (7200, 50.0), (7300, 40.0)].iter().enumerate() {
        state.apply(
            &event(&format!("m-{i:09}"), t0 + dt, *amount, 0, 0),
            &config.features,
        );
    }
    let v = engine.vector(
        &state,
        None,
        AsOf::Through(Timestamp::from_unix_seconds(t0 + 7300)),
    );
    assert_eq!(v.values, [40.0, 40.0, 5.0, 40.0]);
    let later = engine.vector(
        &state,
        None,
        AsOf::Through(Timestamp::from_unix_seconds(t0 + 7300 + 4000)),
    );
    assert!(
        later.values[0].is_nan() && later.values[1].is_nan(),
        "the 1h window is empty"
    );
    assert_eq!(&later.values[2..], [5.0, 40.0]);
}
