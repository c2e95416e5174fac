//! The detectors against river: same streams, same parameters, same indices and the same
//! internal state to the last bit (fixture made by `tests/fixtures/make_concept_fixture.py`).

use serde_json::Value;

use super::*;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/concept_expected.json")).unwrap()
}

fn indices(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

fn stream(case: &Value) -> Vec<f64> {
    case["stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("a number, not {value}"))
}

/// A detector of the fixture's run `name`, built from the run's river parameters.
fn detector(fixture: &Value, name: &str) -> Box<dyn Inspect> {
    fn params<T: serde::de::DeserializeOwned>(fixture: &Value, name: &str) -> T {
        serde_json::from_value(fixture["params"][name].clone()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
    if name.starts_with("adwin") {
        Box::new(Adwin::new(params(fixture, name)).unwrap())
    } else if name.starts_with("page_hinkley") {
        Box::new(PageHinkley::new(params(fixture, name)).unwrap())
    } else {
        Box::new(Ddm::new(params(fixture, name)).unwrap())
    }
}

/// A detector whose internal state can be compared with river's `final` record.
trait Inspect: DriftDetector {
    fn check_final(&self, expected: &Value, context: &str);
}

impl Inspect for Adwin {
    fn check_final(&self, expected: &Value, context: &str) {
        assert_eq!(self.width(), number(&expected["width"]), "{context} width");
        assert_eq!(self.total, number(&expected["total"]), "{context} total");
        assert_eq!(self.variance, number(&expected["variance"]), "{context} variance");
    }
}

impl Inspect for PageHinkley {
    fn check_final(&self, expected: &Value, context: &str) {
        assert_eq!(self.mean.mean, number(&expected["mean"]), "{context} mean");
        assert_eq!(self.mean.n, number(&expected["n"]), "{context} n");
        assert_eq!(self.sum_increase, number(&expected["sum_increase"]), "{context}");
        assert_eq!(self.sum_decrease, number(&expected["sum_decrease"]), "{context}");
        let min_increase = expected["min_increase"].as_f64().unwrap_or(f64::INFINITY);
        assert_eq!(self.min_increase, min_increase, "{context} min_increase");
        assert_eq!(self.max_decrease, number(&expected["max_decrease"]), "{context}");
    }
}

impl Inspect for Ddm {
    fn check_final(&self, expected: &Value, context: &str) {
        assert_eq!(self.error_rate.mean, number(&expected["p"]), "{context} p");
        assert_eq!(self.error_rate.n, number(&expected["n"]), "{context} n");
        let best = expected["p_min"].as_f64().zip(expected["s_min"].as_f64());
        assert_eq!(self.best, best, "{context} (p_min, s_min)");
    }
}

#[test]
fn every_detector_matches_river_index_for_index_and_bit_for_bit() {
    let fixture = fixture();
    assert_eq!(fixture["river_version"], "0.26.1");
    let runs: Vec<&String> = fixture["params"].as_object().unwrap().keys().collect();
    assert_eq!(runs.len(), 8);
    let mut compared = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let values = stream(case);
        for &run in &runs {
            let Some(expected) = case.get(run.as_str()) else {
                continue;
            };
            let context = format!("{} / {run}", case["name"].as_str().unwrap());
            let mut detector = detector(&fixture, run);
            let mut at_drift = expected["at_drift"].as_array().unwrap().iter();
            let mut states = Vec::with_capacity(values.len());
            for (i, &x) in values.iter().enumerate() {
                states.push(detector.update(x));
                if states[i] == DetectorState::Drift {
                    let state = at_drift
                        .next()
                        .unwrap_or_else(|| panic!("{context}: extra drift at {i}"));
                    detector.check_final(state, &format!("{context} at drift {i}"));
                }
            }
            let at = |wanted| -> Vec<usize> { (0..states.len()).filter(|&i| states[i] == wanted).collect() };
            assert_eq!(
                at(DetectorState::Drift),
                indices(&expected["drift"]),
                "{context} drift"
            );
            let warnings = expected.get("warning").map(indices).unwrap_or_default();
            assert_eq!(at(DetectorState::Warning), warnings, "{context} warning");
            detector.check_final(&expected["final"], &context);
            compared += 1;
        }
    }
    assert!(compared >= 100, "{compared}");
}

#[test]
fn the_fixture_exercises_every_outcome_and_the_edges() {
    let fixture = fixture();
    let cases = fixture["cases"].as_array().unwrap();
    let total = |run: &str, kind: &str| -> usize {
        cases
            .iter()
            .map(|c| c.get(run).map_or(0, |d| d[kind].as_array().unwrap().len()))
            .sum()
    };
    for run in [
        "adwin",
        "adwin_clock_1",
        "page_hinkley",
        "page_hinkley_down",
        "ddm",
    ] {
        assert!(total(run, "drift") >= 5, "{run}");
    }
    assert!(total("ddm", "warning") >= 100);
    let case = |name: &str| cases.iter().find(|c| c["name"] == name).unwrap();
    assert!(indices(&case("no_change_20_pct")["adwin"]["drift"]).is_empty());
    // Page-Hinkley's first possible index (min_instances = 30) and DDM's (past warm_start).
    assert_eq!(indices(&case("real_jump_at_25")["page_hinkley"]["drift"]), [29]);
    assert_eq!(indices(&case("zeros_31_then_errors")["ddm"]["drift"]), [31]);
}

#[test]
fn the_monitor_counts_warning_zones_once_and_every_drift() {
    let fixture = fixture();
    let case = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "repeated_changes")
        .unwrap();
    let errors: Vec<bool> = stream(case).iter().map(|&x| x == 1.0).collect();
    let mut monitor = ConceptMonitor::default();
    let mut events = Vec::new();
    for &error in &errors {
        events.extend(monitor.update(error));
    }
    let snapshot = monitor.snapshot();
    assert_eq!(snapshot.observations, errors.len() as u64);
    assert_eq!(snapshot.errors, errors.iter().filter(|e| **e).count() as u64);
    for (status, kind) in snapshot.detectors.iter().zip(DetectorKind::ALL) {
        let expected = indices(&case[kind.name()]["drift"]);
        assert_eq!(status.drifts, expected.len() as u64, "{kind:?}");
        assert_eq!(status.last_drift_index, expected.last().map(|&i| i as u64));
        let drift_events: Vec<usize> = events
            .iter()
            .filter(|e| e.detector == kind && e.state == DetectorState::Drift)
            .map(|e| e.index as usize)
            .collect();
        assert_eq!(drift_events, expected, "{kind:?}");
    }
    let ddm = &snapshot.detectors[2];
    let warnings = indices(&case["ddm"]["warning"]);
    let zones = warnings.windows(2).filter(|w| w[1] != w[0] + 1).count() + 1;
    assert_eq!(ddm.warnings, zones as u64);
    assert_eq!(ddm.last_warning_index, warnings.last().map(|&i| i as u64));
    let final_adwin = &case["adwin"]["final"];
    let expected_rate = number(&final_adwin["total"]) / number(&final_adwin["width"]);
    assert_eq!(snapshot.recent_error_rate, expected_rate);
    let json = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(serde_json::from_str::<ConceptSnapshot>(&json).unwrap(), snapshot);
    assert!(json.contains(r#""detector":"page_hinkley""#), "{json}");
}

/// xorshift64*: deterministic uniforms in [0, 1).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Four days of 2,000 labelled predictions an hour: the model approves with score 1.5%
/// by day and 6% at night (hours 0..6), and errors happen at `factor` times that rate,
/// from prediction `onset` on. Returns every drift as (detector, index).
fn seasonal_errors(excess: bool, factor: f64, onset: usize) -> Vec<(DetectorKind, u64)> {
    let mut monitor = ConceptMonitor::default();
    let mut rng = Uniform(99);
    let mut drifts = Vec::new();
    for i in 0..4 * 24 * 2_000 {
        let hour = (i / 2_000) % 24;
        let score = if hour < 6 { 0.06 } else { 0.015 };
        let rate = if i >= onset { score * factor } else { score };
        let error = rng.next() < rate;
        let news = if excess {
            monitor.update_expected(error, expected_error(score, false))
        } else {
            monitor.update(error)
        };
        drifts.extend(
            news.into_iter()
                .filter(|e| e.state == DetectorState::Drift)
                .map(|e| (e.detector, e.index)),
        );
    }
    drifts
}

#[test]
fn regression_a_daily_cycle_of_errors_is_a_change_of_the_raw_stream_but_not_of_the_excess_errors() {
    let never = usize::MAX;
    let raw = seasonal_errors(false, 1.0, never);
    for kind in [DetectorKind::Adwin, DetectorKind::PageHinkley] {
        assert!(
            raw.iter().filter(|(d, _)| *d == kind).count() >= 4,
            "{kind:?} sees the night come and go: {raw:?}"
        );
    }
    // Errors as the scores foresee them. Page–Hinkley's fading sums (alpha 0.9999) can
    // still stray past lambda on noise alone once in a while, but no detector repeats
    // the daily cycle and no two agree (the retrainer's vote).
    let excess = seasonal_errors(true, 1.0, never);
    for kind in DetectorKind::ALL {
        assert!(
            excess.iter().filter(|(d, _)| *d == kind).count() <= 1,
            "{kind:?}: {excess:?}"
        );
    }
    for (i, a) in excess.iter().enumerate() {
        assert!(
            excess[i + 1..]
                .iter()
                .all(|b| b.0 == a.0 || b.1.abs_diff(a.1) > 1_000),
            "two detectors agree: {excess:?}"
        );
    }
}

/// DDM is the slowest: its rate is the mean since its last reset, 20,000 predictions here.
#[test]
fn errors_beyond_the_models_own_expectation_are_detected_by_every_detector() {
    let onset = 10 * 2_000; // 10:00 on the first day: errors 3.75% instead of 1.5%
    let drifts = seasonal_errors(true, 2.5, onset);
    for kind in DetectorKind::ALL {
        let first = drifts.iter().find(|(d, _)| *d == kind);
        let delay = first.map(|(_, at)| *at as i64 - onset as i64);
        assert!(
            delay.is_some_and(|d| (0..8_000).contains(&d)),
            "{kind:?}: first drift {delay:?} after the onset ({drifts:?})"
        );
    }
}

#[test]
fn expected_error_is_the_models_probability_of_the_other_label() {
    assert!((expected_error(0.9, true) - 0.1).abs() < 1e-12);
    assert_eq!(expected_error(0.3, false), 0.3);
    assert_eq!(expected_error(1.5, false), 1.0);
    assert_eq!(expected_error(f64::NAN, true), 1.0);
}

/// A model blind to the clock: every score 2.5%, while errors (missed fraud) run at 1.5%
/// by day and 6% at night (hours 0..6). Returns the drifts over four days of 2,000
/// labelled predictions an hour, with expected errors recalibrated by `calibration`.
fn clock_blind_errors(calibration: &HourlyCalibration) -> Vec<(DetectorKind, u64)> {
    let mut monitor = ConceptMonitor::default();
    let mut rng = Uniform(7);
    let mut drifts = Vec::new();
    for i in 0..4 * 24 * 2_000 {
        let hour = (i / 2_000) % 24;
        let rate = if hour < 6 { 0.06 } else { 0.015 };
        let error = rng.next() < rate;
        let expected = calibration.expected_error(0.025, false, hour);
        drifts.extend(
            monitor
                .update_expected(error, expected)
                .into_iter()
                .filter(|e| e.state == DetectorState::Drift)
                .map(|e| (e.detector, e.index)),
        );
    }
    drifts
}

/// The reference period of [`clock_blind_errors`]: two days of its predictions with
/// their labels, profiled by hour.
fn clock_blind_profile() -> driftline_core::profile::ReferenceProfile {
    let mut rng = Uniform(3);
    let (mut hours, mut labels) = (Vec::new(), Vec::new());
    for i in 0..2 * 24 * 2_000 {
        let hour = (i / 2_000) % 24;
        let rate = if hour < 6 { 0.06 } else { 0.015 };
        hours.push(hour as f64);
        labels.push(rng.next() < rate);
    }
    let scores = vec![0.025; hours.len()];
    hour_profile(&hours, &labels, &scores)
}

/// A profile of one hour-of-day column with labels and scores, split by the hour.
fn hour_profile(hours: &[f64], labels: &[bool], scores: &[f64]) -> driftline_core::profile::ReferenceProfile {
    use driftline_core::profile::{ColumnKind, ProfileParams, ReferenceProfile};
    let params = ProfileParams {
        season_column: Some("hour".into()),
        ..ProfileParams::default()
    };
    ReferenceProfile::fit_row_major(
        &["hour".to_string()],
        &[ColumnKind::Numeric],
        hours,
        Some(labels),
        Some(scores),
        &params,
    )
    .unwrap()
}

#[test]
fn scores_recalibrated_per_hour_keep_a_clock_blind_model_from_crying_drift_every_night() {
    let blind = clock_blind_errors(&HourlyCalibration::default());
    for kind in [DetectorKind::Adwin, DetectorKind::PageHinkley] {
        assert!(
            blind.iter().filter(|(d, _)| *d == kind).count() >= 4,
            "{kind:?} sees the night come and go: {blind:?}"
        );
    }
    let calibration = HourlyCalibration::of(&clock_blind_profile());
    let night = calibration.expected_error(0.025, false, 3);
    let day = calibration.expected_error(0.025, false, 15);
    assert!(
        (0.05..0.07).contains(&night) && (0.01..0.02).contains(&day),
        "{night} {day}"
    );
    assert_eq!(calibration.expected_error(0.025, false, 24), 0.025, "not an hour");
    let calibrated = clock_blind_errors(&calibration);
    // Two days of reference estimate each hour's rate within some 10-20% (hour 22 comes
    // out 1.1% for a true 1.5%), so a detector may still stray now and then; but the
    // nightly alarms are gone (20 -> 3 here) and no two detectors agree (the vote).
    assert!(
        calibrated.len() * 4 <= blind.len(),
        "{calibrated:?} against {blind:?}"
    );
    for (i, a) in calibrated.iter().enumerate() {
        assert!(
            calibrated[i + 1..]
                .iter()
                .all(|b| b.0 == a.0 || b.1.abs_diff(a.1) > 1_000),
            "two detectors agree: {calibrated:?}"
        );
    }
}

/// Hour 3: approvals scored 0.02 are wrong 10% of the time, declines scored 0.9 wrong 40%
/// of the time; the hour's one offset cannot give both, its decisions' offsets do.
#[test]
fn each_decision_expects_its_own_errors_where_the_profile_measured_them() {
    let (mut hours, mut labels, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for (score, rows, positives) in [(0.02, 900, 90), (0.9, 100, 60)] {
        for i in 0..rows {
            hours.push(3.0);
            labels.push(i < positives);
            scores.push(score);
        }
    }
    let mut profile = hour_profile(&hours, &labels, &scores);
    let by_hour = HourlyCalibration::of(&profile);
    let approved_by_hour = by_hour.expected_error(0.02, false, 3);
    assert!((0.04..0.07).contains(&approved_by_hour), "{approved_by_hour}");

    let seasons = profile.seasons.as_mut().unwrap();
    let history = hours
        .iter()
        .zip(&scores)
        .zip(&labels)
        .map(|((&h, &s), &l)| (driftline_core::profile::hour_of(h), s, l));
    seasons.calibrate(history, 0.5);
    let by_decision = HourlyCalibration::of(&profile);
    assert!((by_decision.expected_error(0.02, false, 3) - 0.1).abs() < 1e-9);
    assert!((by_decision.expected_error(0.9, true, 3) - 0.4).abs() < 1e-9);
    // Hours without any offset keep the bare score.
    assert_eq!(by_decision.expected_error(0.02, false, 5), 0.02);
}
