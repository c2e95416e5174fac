//! Tests of the generator as a whole: determinism, the event contract, the fraud signal
//! and each drift scenario, checked with plain statistics on generated data.
//!
//! Key decision: every statistical claim in the module docs has a test here with a
//! threshold it can miss; sample sizes are large enough that a correct generator passes
//! with a wide margin for any seed.

mod model;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Timelike};
use serde_json::Value;

use super::*;
use model::{FEATURES, LOG_AMOUNT, Logistic, auc, history_features};

const KEYS: [&str; 7] = [
    "event_id",
    "user_id",
    "transaction_amount",
    "country",
    "device",
    "event_ts",
    "label",
];

fn config(scenario: Scenario, onset: u64, ramp: u64) -> GeneratorConfig {
    GeneratorConfig {
        scenario,
        onset,
        ramp,
        ..GeneratorConfig::default()
    }
}

fn generate(config: GeneratorConfig, count: usize) -> Vec<GeneratedEvent> {
    Generator::new(config).unwrap().take(count).collect()
}

fn json_lines(events: &[GeneratedEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        event.write_json(&mut out);
        out.push(b'\n');
    }
    out
}

fn second_of(event: &GeneratedEvent) -> i64 {
    DateTime::parse_from_rfc3339(&event.event_ts).unwrap().timestamp()
}

fn fraud_rate(events: &[GeneratedEvent]) -> f64 {
    events.iter().filter(|e| e.label == 1).count() as f64 / events.len() as f64
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, count) = values.into_iter().fold((0.0, 0.0), |(s, c), v| (s + v, c + 1.0));
    sum / count
}

fn amount(event: &GeneratedEvent) -> f64 {
    event.transaction_amount.unwrap()
}

fn is_night(event: &GeneratedEvent) -> bool {
    DateTime::parse_from_rfc3339(&event.event_ts).unwrap().hour() < 6
}

// ---- determinism -------------------------------------------------------------------

#[test]
fn same_seed_gives_byte_identical_json() {
    let first = json_lines(&generate(config(Scenario::Concept, 3_000, 2_000), 10_000));
    let second = json_lines(&generate(config(Scenario::Concept, 3_000, 2_000), 10_000));
    assert_eq!(first, second);
}

#[test]
fn different_seeds_differ() {
    let a = generate(GeneratorConfig::default(), 1_000);
    let b = generate(
        GeneratorConfig {
            seed: 43,
            ..GeneratorConfig::default()
        },
        1_000,
    );
    let same_ids = a.iter().zip(&b).filter(|(x, y)| x.event_id == y.event_id).count();
    assert_eq!(same_ids, 0);
    assert_ne!(json_lines(&a), json_lines(&b));
}

#[test]
fn every_scenario_matches_none_before_the_onset() {
    let onset = 5_000;
    let stationary = json_lines(&generate(config(Scenario::None, onset, 0), onset as usize));
    for scenario in Scenario::ALL {
        let drifting = generate(config(scenario, onset, 0), onset as usize + 2_000);
        assert_eq!(
            json_lines(&drifting[..onset as usize]),
            stationary,
            "{scenario} differs before its onset"
        );
    }
}

#[test]
fn next_into_matches_the_iterator() {
    let expected = generate(GeneratorConfig::default(), 500);
    let mut generator = Generator::new(GeneratorConfig::default()).unwrap();
    let mut event = GeneratedEvent::default();
    for want in &expected {
        generator.next_into(&mut event);
        assert_eq!(&event, want);
    }
    assert_eq!(generator.position(), 500);
}

// ---- the event contract ------------------------------------------------------------

#[test]
fn json_lines_follow_the_contract() {
    let events = generate(GeneratorConfig::default(), 100_000);
    let text = String::from_utf8(json_lines(&events)).unwrap();
    let mut ids = HashSet::new();
    for line in text.lines() {
        let object: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected, "{line}");
        let positions: Vec<usize> = KEYS
            .iter()
            .map(|k| line.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "fields out of order: {line}");

        let id = object["event_id"].as_str().unwrap();
        assert_eq!(id.len(), 26);
        assert!(id.bytes().all(|c| format::CROCKFORD.contains(&c)), "{id}");
        assert!(ids.insert(id.to_owned()), "duplicate id {id}");

        let user = object["user_id"].as_str().unwrap();
        assert!(user.starts_with("user-") && user.len() == 10, "{user}");
        let amount = object["transaction_amount"].as_f64().unwrap();
        assert!((0.0..=5000.0).contains(&amount), "{line}");
        assert!(COUNTRIES.contains(&object["country"].as_str().unwrap()), "{line}");
        assert!(DEVICES.contains(&object["device"].as_str().unwrap()), "{line}");
        DateTime::parse_from_rfc3339(object["event_ts"].as_str().unwrap()).unwrap();
        assert!(matches!(object["label"].as_u64(), Some(0 | 1)), "{line}");
    }
}

#[test]
fn only_the_quality_scenario_breaks_the_contract() {
    for scenario in Scenario::ALL {
        let events = generate(config(scenario, 0, 0), 20_000);
        let valid = events.iter().all(|e| {
            e.transaction_amount.is_some_and(|a| a > 0.0 && a <= 5000.0)
                && e.country.is_some_and(|c| COUNTRIES.contains(&c))
                && e.device.is_some_and(|d| DEVICES.contains(&d))
        });
        assert_eq!(valid, scenario != Scenario::Quality, "{scenario}");
    }
}

#[test]
fn amounts_are_written_with_two_decimals() {
    for event in generate(GeneratorConfig::default(), 2_000) {
        let mut out = Vec::new();
        event.write_json(&mut out);
        let line = String::from_utf8(out).unwrap();
        let start = line.find("\"transaction_amount\":").unwrap() + 21;
        let end = start + line[start..].find(',').unwrap();
        let decimals = line[start..end].split('.').nth(1).unwrap();
        assert_eq!(decimals.len(), 2, "{line}");
    }
}

#[test]
fn event_time_never_decreases_and_starts_at_start_ts() {
    let events = generate(GeneratorConfig::default(), 100_000);
    assert_eq!(events[0].event_ts, "2024-03-01T00:00:00Z");
    let seconds: Vec<i64> = events.iter().map(second_of).collect();
    assert!(seconds.is_sorted());
    let mean_gap_ms = (seconds[seconds.len() - 1] - seconds[0]) as f64 * 1000.0 / seconds.len() as f64;
    assert!(
        (1_500.0..2_100.0).contains(&mean_gap_ms),
        "mean gap {mean_gap_ms} ms"
    );
}

#[test]
fn out_of_order_option_sets_a_few_events_back_by_at_most_a_minute() {
    let events = generate(
        GeneratorConfig {
            out_of_order_fraction: 0.05,
            ..GeneratorConfig::default()
        },
        20_000,
    );
    let seconds: Vec<i64> = events.iter().map(second_of).collect();
    let backwards = seconds.windows(2).filter(|w| w[1] < w[0]).count();
    assert!((200..1_500).contains(&backwards), "{backwards} steps back");
    let mut latest = seconds[0];
    for second in seconds {
        assert!(second >= latest - 60, "set back by more than a minute");
        latest = latest.max(second);
    }
}

#[test]
fn csv_rows_match_the_header_and_leave_nulls_empty() {
    let events = generate(config(Scenario::Quality, 0, 0), 5_000);
    let mut out = CSV_HEADER.as_bytes().to_vec();
    for event in &events {
        out.push(b'\n');
        event.write_csv_row(&mut out);
    }
    let mut reader = csv::Reader::from_reader(out.as_slice());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), KEYS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), events.len());
    for (row, event) in rows.iter().zip(&events) {
        assert_eq!(row.get(0), Some(event.event_id.as_str()));
        assert_eq!(row.get(2).unwrap().is_empty(), event.transaction_amount.is_none());
        assert_eq!(row.get(3).unwrap(), event.country.unwrap_or(""));
        assert_eq!(row.get(4).unwrap(), event.device.unwrap_or(""));
    }
    assert!(rows.iter().any(|row| row.get(2).unwrap().is_empty()));
}

#[test]
fn json_nulls_are_json_null() {
    let event = GeneratedEvent {
        event_id: "01HQA7F9G4G1YJ2R4D8K2J3A5S".into(),
        user_id: "user-00042".into(),
        transaction_amount: None,
        country: None,
        device: Some("web"),
        event_ts: "2024-03-01T12:00:00Z".into(),
        label: 1,
        drift_intensity: 0.5,
    };
    let mut out = Vec::new();
    event.write_json(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"event_id":"01HQA7F9G4G1YJ2R4D8K2J3A5S","user_id":"user-00042","transaction_amount":null,"country":null,"device":"web","event_ts":"2024-03-01T12:00:00Z","label":1}"#
    );
}

// ---- config and scenario names -------------------------------------------------------

#[test]
fn scenario_names_round_trip_and_errors_list_them() {
    for scenario in Scenario::ALL {
        assert_eq!(scenario.to_string().parse::<Scenario>(), Ok(scenario));
    }
    assert_eq!(" Concept ".parse::<Scenario>(), Ok(Scenario::Concept));
    let message = "seasonal".parse::<Scenario>().unwrap_err().to_string();
    assert!(message.contains("`seasonal`"), "{message}");
    for scenario in Scenario::ALL {
        assert!(message.contains(scenario.name()), "{message}");
    }
}

#[test]
fn config_rejects_what_the_generator_cannot_honour() {
    let bad = [
        GeneratorConfig {
            users: 0,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            mean_interarrival_ms: 0.0,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            mean_interarrival_ms: f64::NAN,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            out_of_order_fraction: 1.5,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            start_ts: -1,
            ..GeneratorConfig::default()
        },
    ];
    for config in bad {
        assert!(Generator::new(config.clone()).is_err(), "{config:?} accepted");
    }
}

#[test]
fn config_deserialises_with_defaults_and_rejects_unknown_fields() {
    let config: GeneratorConfig = serde_json::from_str(r#"{"seed": 7, "scenario": "covariate"}"#).unwrap();
    assert_eq!(config.seed, 7);
    assert_eq!(config.scenario, Scenario::Covariate);
    assert_eq!(config.users, GeneratorConfig::default().users);
    assert!(serde_json::from_str::<GeneratorConfig>(r#"{"sede": 7}"#).is_err());
    let start = DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
        .unwrap()
        .timestamp();
    assert_eq!(DEFAULT_START_TS, start);
}

// ---- the fraud signal ----------------------------------------------------------------

#[test]
fn fraud_rate_is_a_few_percent() {
    let rate = fraud_rate(&generate(GeneratorConfig::default(), 100_000));
    assert!((0.015..=0.06).contains(&rate), "fraud rate {rate}");
}

#[test]
fn fraud_is_large_for_the_user_and_nocturnal() {
    let events = generate(GeneratorConfig::default(), 100_000);
    let mut legit_amounts: HashMap<&str, Vec<f64>> = HashMap::new();
    for event in events.iter().filter(|e| e.label == 0) {
        legit_amounts
            .entry(&event.user_id)
            .or_default()
            .push(amount(event));
    }
    let typical: HashMap<&str, f64> = legit_amounts
        .into_iter()
        .map(|(user, mut amounts)| {
            amounts.sort_by(f64::total_cmp);
            (user, amounts[amounts.len() / 2])
        })
        .collect();
    let ratio = |label: u8| {
        mean(
            events
                .iter()
                .filter(|e| e.label == label)
                .filter_map(|e| typical.get(e.user_id.as_str()).map(|t| amount(e) / t)),
        )
    };
    let night_share = |label: u8| {
        mean(
            events
                .iter()
                .filter(|e| e.label == label)
                .map(|e| f64::from(u8::from(is_night(e)))),
        )
    };
    let (fraud_ratio, legit_ratio) = (ratio(1), ratio(0));
    assert!(
        fraud_ratio > 2.5 * legit_ratio,
        "fraud {fraud_ratio} vs legit {legit_ratio}"
    );
    let (fraud_night, legit_night) = (night_share(1), night_share(0));
    assert!(
        fraud_night > 0.5 && fraud_night > 3.0 * legit_night,
        "night share: fraud {fraud_night} vs legit {legit_night}"
    );
}

#[test]
fn history_features_predict_fraud_far_better_than_the_raw_amount() {
    let events = generate(GeneratorConfig::default(), 120_000);
    let rows = history_features(&events);
    let labels: Vec<u8> = events.iter().map(|e| e.label).collect();
    let (train, test) = (0..60_000, 60_000..120_000);
    let all: Vec<usize> = (0..FEATURES).collect();
    let model = Logistic::fit(&rows[train], &labels[..60_000], &all);
    let scores: Vec<f64> = rows[test.clone()].iter().map(|r| model.score(r)).collect();
    let model_auc = auc(&scores, &labels[test.clone()]);
    let amounts: Vec<f64> = rows[test.clone()].iter().map(|r| r[LOG_AMOUNT]).collect();
    let amount_auc = auc(&amounts, &labels[test]);
    eprintln!("model AUC {model_auc:.3}, raw amount AUC {amount_auc:.3}");
    assert!(model_auc > 0.9, "model AUC {model_auc}");
    assert!(
        amount_auc < model_auc - 0.1,
        "raw amount AUC {amount_auc} vs model {model_auc}"
    );
}

// ---- drift schedule ------------------------------------------------------------------

#[test]
fn intensity_is_zero_then_linear_then_one() {
    let schedule = DriftSchedule { onset: 100, ramp: 50 };
    assert_eq!(schedule.intensity(0), 0.0);
    assert_eq!(schedule.intensity(99), 0.0);
    assert_eq!(schedule.intensity(100), 1.0 / 50.0);
    assert_eq!(schedule.intensity(124), 25.0 / 50.0);
    assert_eq!(schedule.intensity(149), 1.0);
    assert_eq!(schedule.intensity(10_000), 1.0);
    let abrupt = DriftSchedule { onset: 100, ramp: 0 };
    assert_eq!((abrupt.intensity(99), abrupt.intensity(100)), (0.0, 1.0));
}

#[test]
fn events_carry_the_schedule() {
    let events = generate(config(Scenario::Covariate, 1_000, 500), 2_000);
    for (index, event) in events.iter().enumerate() {
        let expected = DriftSchedule {
            onset: 1_000,
            ramp: 500,
        }
        .intensity(index as u64);
        assert_eq!(event.drift_intensity, expected, "event {index}");
    }
    let stationary = generate(config(Scenario::None, 0, 0), 100);
    assert!(stationary.iter().all(|e| e.drift_intensity == 0.0));
}

// ---- scenarios -----------------------------------------------------------------------

/// Events before the onset and after the ramp.
fn before_and_after(
    scenario: Scenario,
    onset: usize,
    ramp: usize,
    after: usize,
) -> (Vec<GeneratedEvent>, Vec<GeneratedEvent>) {
    let mut events = generate(config(scenario, onset as u64, ramp as u64), onset + ramp + after);
    let drifted = events.split_off(onset + ramp);
    events.truncate(onset);
    (events, drifted)
}

#[test]
fn covariate_drift_raises_amounts() {
    let (before, after) = before_and_after(Scenario::Covariate, 50_000, 10_000, 50_000);
    let (before_mean, after_mean) = (mean(before.iter().map(amount)), mean(after.iter().map(amount)));
    assert!(
        after_mean > 1.5 * before_mean,
        "mean amount {before_mean} -> {after_mean}"
    );
    let rate = fraud_rate(&after);
    assert!((0.015..=0.06).contains(&rate), "fraud rate after drift {rate}");
}

#[test]
fn categorical_drift_moves_activity_to_india_and_brazil() {
    let (before, after) = before_and_after(Scenario::Categorical, 30_000, 10_000, 30_000);
    let share = |events: &[GeneratedEvent]| {
        mean(
            events
                .iter()
                .map(|e| f64::from(u8::from(matches!(e.country, Some("IN" | "BR"))))),
        )
    };
    let (share_before, share_after) = (share(&before), share(&after));
    assert!(
        share_after - share_before > 0.3,
        "IN+BR share {share_before} -> {share_after}"
    );
}

#[test]
fn quality_defects_appear_only_after_the_onset_at_the_capped_rate() {
    let (before, after) = before_and_after(Scenario::Quality, 20_000, 10_000, 40_000);
    let defective = |e: &GeneratedEvent| {
        e.transaction_amount.is_none_or(|a| !(0.0..=5000.0).contains(&a))
            || e.country.is_none_or(|c| !COUNTRIES.contains(&c))
            || e.device.is_none_or(|d| !DEVICES.contains(&d))
    };
    assert_eq!(before.iter().filter(|e| defective(e)).count(), 0);
    let rate = mean(after.iter().map(|e| f64::from(u8::from(defective(e)))));
    assert!(
        (0.13..0.17).contains(&rate),
        "defect rate {rate} at full intensity"
    );
    let kinds = [
        after.iter().any(|e| e.transaction_amount.is_none()),
        after
            .iter()
            .any(|e| e.transaction_amount.is_some_and(|a| a < 0.0)),
        after
            .iter()
            .any(|e| e.transaction_amount.is_some_and(|a| a > 5000.0)),
        after.iter().any(|e| e.country.is_none()),
        after.iter().any(|e| e.country == Some(UNKNOWN_COUNTRY)),
        after.iter().any(|e| e.device.is_none()),
        after.iter().any(|e| e.device == Some(UNKNOWN_DEVICE)),
    ];
    assert_eq!(kinds, [true; 7]);
}

#[test]
fn quality_defect_rate_follows_the_ramp() {
    let events = generate(config(Scenario::Quality, 0, 200_000), 100_000);
    let defects = events
        .iter()
        .filter(|e| {
            e.transaction_amount.is_none()
                || e.country.is_none()
                || e.device.is_none()
                || e.country == Some(UNKNOWN_COUNTRY)
                || e.device == Some(UNKNOWN_DEVICE)
                || e.transaction_amount.is_some_and(|a| !(0.0..=5000.0).contains(&a))
        })
        .count() as f64;
    let expected: f64 = events.iter().map(|e| e.drift_intensity * 0.15).sum();
    assert!(
        (defects / expected - 1.0).abs() < 0.1,
        "{defects} defects, expected {expected}"
    );
}

#[test]
fn concept_drift_turns_fraud_into_small_domestic_bursts() {
    let (before, after) = before_and_after(Scenario::Concept, 50_000, 10_000, 50_000);
    let foreign_fraud_share = |events: &[GeneratedEvent]| {
        let mut usual: HashMap<&str, &str> = HashMap::new();
        for event in events.iter().filter(|e| e.label == 0) {
            usual.entry(&event.user_id).or_insert(event.country.unwrap());
        }
        mean(events.iter().filter(|e| e.label == 1).filter_map(|e| {
            usual
                .get(e.user_id.as_str())
                .map(|home| f64::from(u8::from(e.country != Some(*home))))
        }))
    };
    let fraud_amount = |events: &[GeneratedEvent]| mean(events.iter().filter(|e| e.label == 1).map(amount));
    let (amount_before, amount_after) = (fraud_amount(&before), fraud_amount(&after));
    assert!(
        amount_after < 0.5 * amount_before,
        "fraud amount {amount_before} -> {amount_after}"
    );
    let (foreign_before, foreign_after) = (foreign_fraud_share(&before), foreign_fraud_share(&after));
    assert!(
        foreign_after < 0.5 * foreign_before,
        "foreign fraud {foreign_before} -> {foreign_after}"
    );
}

#[test]
fn concept_drift_breaks_a_model_fit_before_the_onset() {
    let (onset, ramp) = (60_000, 10_000);
    let events = generate(
        config(Scenario::Concept, onset as u64, ramp as u64),
        onset + ramp + 60_000,
    );
    let rows = history_features(&events);
    let labels: Vec<u8> = events.iter().map(|e| e.label).collect();
    let all: Vec<usize> = (0..FEATURES).collect();
    let model = Logistic::fit(&rows[..onset / 2], &labels[..onset / 2], &all);
    let auc_on = |range: std::ops::Range<usize>| {
        let scores: Vec<f64> = rows[range.clone()].iter().map(|r| model.score(r)).collect();
        auc(&scores, &labels[range])
    };
    let (auc_before, auc_after) = (auc_on(onset / 2..onset), auc_on(onset + ramp..events.len()));
    assert!(auc_before - auc_after > 0.1, "AUC {auc_before} -> {auc_after}");

    let (refit, holdout) = (
        onset + ramp..onset + ramp + 30_000,
        onset + ramp + 30_000..events.len(),
    );
    let retrained = Logistic::fit(&rows[refit.clone()], &labels[refit], &all);
    let scores: Vec<f64> = rows[holdout.clone()].iter().map(|r| retrained.score(r)).collect();
    let auc_retrained = auc(&scores, &labels[holdout]);
    eprintln!(
        "concept drift: AUC {auc_before:.3} before, {auc_after:.3} after, {auc_retrained:.3} retrained"
    );
    assert!(
        auc_retrained > 0.85,
        "a model refit after the drift reaches only {auc_retrained}"
    );
}

// ---- pinned output -------------------------------------------------------------------

/// Regression guard for "same seed, same bytes" across machines and dependency updates:
/// a change here means every stored demo stream and seed-based test fixture changes.
#[test]
fn output_for_the_default_seed_is_pinned() {
    let events = generate(config(Scenario::Concept, 5_000, 1_000), 10_000);
    let mut first = Vec::new();
    events[0].write_json(&mut first);
    let lines = json_lines(&events);
    assert_eq!(
        String::from_utf8(first).unwrap(),
        r#"{"event_id":"01HQVMZ100H07P4HHZVJX2Q20F","user_id":"user-00997","transaction_amount":12.95,"country":"US","device":"web","event_ts":"2024-03-01T00:00:00Z","label":0}"#
    );
    assert_eq!(crc32fast::hash(&lines), 0x47cf_dcfe);
}
