//! Detection quality of driftline's drift monitors on the generator's scenarios: false
//! alarms per million drift-free events, and detection delay (events after onset) for each
//! drift scenario. The numbers are recorded in `docs/drift.md`.
//!
//! Key decision: every step is the production code path, in memory. Events come from
//! `driftline_stream::generator`, are validated by the fraud contract as `/predict` does
//! (rejected events are counted and never scored, as the server answers them 400), get
//! their point-in-time vector from `FeatureEngine` + `EntityState` exactly as training
//! replay computes it (the row before the event is applied), and the model and
//! `ReferenceProfile` are fitted as `training::pipeline::fit_candidate` fits them (time
//! split, training rows profiled with their scores; the window spread and the hourly
//! score calibration measured, and the out-of-range rule's ranges widened, on the latest
//! `SPREAD_ROWS` events before the reference period ends, as training's replay of the
//! whole history keeps them: `training::pipeline::{recent_window_spread,
//! calibrate_on_recent}`, `ReferenceProfile::widen_ranges`). The stream is
//! warmed up for `--warmup` events first, so 30-day features are in steady state before
//! the reference period; then `StreamMonitor` (default `[drift.monitor]`) is evaluated
//! every `--evaluate-every` events and `ConceptMonitor` sees every labelled error.
//!
//! ```text
//! cargo run --release -p driftline --example detection_quality -- --scenario none --events 1000000
//! cargo run --release -p driftline --example detection_quality -- --scenario all
//! ```

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use driftline_core::config::{Config, RetrainSettings, SplitKind};
use driftline_core::contract::{IdSource, ValidateContext};
use driftline_core::event::Record;
use driftline_core::features::FeatureSpec;
use driftline_core::profile::ReferenceProfile;
use driftline_core::time::Timestamp;
use driftline_drift::concept::{ConceptMonitor, DetectorKind, DetectorState, HourlyCalibration};
use driftline_drift::monitor::{
    ColumnVerdict, HeldOutDistances, MonitorConfig, MonitorSnapshot, MonitorStatus, NOISE_SDS, ReferenceRows,
    SPREAD_ROWS, StreamMonitor, held_out_distances,
};
use driftline_features::compute::FeatureEngine;
use driftline_features::state::{AsOf, EntityState, EventKey};
use driftline_models::estimator::FittedModel;
use driftline_models::metrics::Metrics;
use driftline_models::model::Model;
use driftline_serve::monitor::{RECENT, RecentErrors, harmful};
use driftline_stream::generator::{GeneratedEvent, Generator, GeneratorConfig, Scenario};
use driftline_training::config::TrainingConfig;
use driftline_training::pipeline::{
    calibrate_on_recent, profile_params, profile_training_rows, recent_window_spread,
};
use driftline_training::rows::{LabelledRows, RecentEvents, RecentRows, Split};

#[derive(Parser, Debug)]
struct Args {
    /// none, covariate, covariate10, categorical, concept, quality, or all. `covariate10`
    /// is the `none` stream with every amount from the onset on multiplied by
    /// `--amount-scale` (default 1.1: a 10% shift), abrupt.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Events streamed through the monitors after the reference period.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Events replayed before the reference period so 7-day windows are full
    /// (1,296,000 = 30 days at the default 2 s spacing: the z-score against the user's
    /// 30-day history is still maturing after a shorter warm-up, and drifts for real).
    #[arg(long, default_value_t = 1_296_000)]
    warmup: u64,
    /// Events of the reference period the model and profile are fitted on.
    #[arg(long, default_value_t = 100_000)]
    train: u64,
    /// Events between the end of the reference period and the drift's onset.
    #[arg(long, default_value_t = 20_000)]
    lead: u64,
    /// Events over which the drift grows to full strength (0 = abrupt).
    #[arg(long, default_value_t = 10_000)]
    ramp: u64,
    /// Events between evaluations of the data-drift window.
    #[arg(long, default_value_t = 1_000)]
    evaluate_every: u64,
    /// Labelled events within which 2 of the 3 concept detectors must agree (the server's
    /// 60 s vote window at ~16 labelled events a second).
    #[arg(long, default_value_t = 1_000)]
    vote_window: u64,
    /// `covariate10`: the factor amounts are multiplied by after the onset.
    #[arg(long, default_value_t = 1.1)]
    amount_scale: f64,
    /// Predictions in the monitor's window (default: `[drift.monitor] window`).
    #[arg(long)]
    window: Option<usize>,
    /// Print every evaluation's drifted columns.
    #[arg(long)]
    trace: bool,
    /// Profile without hour-of-day strata (the whole reference, as before seasons; no
    /// window spread either).
    #[arg(long)]
    no_seasons: bool,
    /// Profile without the reference's window spread (the thresholds alone, as before).
    #[arg(long)]
    no_spread: bool,
    /// Feed the concept detectors the raw 0/1 errors (river's input) instead of the
    /// excess errors.
    #[arg(long)]
    raw_errors: bool,
    /// Expect errors from the bare scores, without the profile's hourly recalibration.
    #[arg(long)]
    no_calibration: bool,
    /// Measure the hourly recalibration on the training rows only, not on the latest
    /// `--spread-history` events as training does.
    #[arg(long)]
    calibrate_on_training_rows: bool,
    /// Measure the noise floor (window spread) over this many events ending with the
    /// reference period (training keeps `SPREAD_ROWS`; the model and profile come from
    /// the reference period's labelled rows either way): how much history steadies it.
    #[arg(long, default_value_t = SPREAD_ROWS)]
    spread_history: usize,
    /// Put the noise floor this many standard deviations above the mean held-out
    /// distance instead of `NOISE_SDS` (the profile's spreads are rescaled to that
    /// effect), to sweep the constant without rebuilding.
    #[arg(long)]
    noise_sds: Option<f64>,
    /// Also judge the stream with floors at each of these standard deviations
    /// (comma-separated), one more monitor each, and report each one's alarms: a sweep
    /// in one run.
    #[arg(long, value_delimiter = ',')]
    sweep_sds: Vec<f64>,
    /// Also judge the stream by rules `SINGLE/PAIR[/RUN]` (comma-separated): drift when one
    /// column stands SINGLE standard deviations above its mean held-out distance, or two
    /// columns PAIR, each with the p-value and configured threshold passed, in each of the
    /// latest RUN evaluations (default 1). Read off the main monitor's distances, so every
    /// rule costs nothing extra.
    #[arg(long, value_delimiter = ',', value_parser = parse_rule)]
    sweep_rules: Vec<(f64, f64, u32)>,
    /// Write the held-out distances the noise floors are measured from and every
    /// evaluation's distances to this file, as JSON lines (`{"held_out": {column:
    /// [distance, ...]}}` first, then `{"at": event, "columns": {column: [distance,
    /// passed, floor]}}`; `passed` is 1 when the p-value and the configured threshold
    /// are cleared): to study the floor's tail model offline, in one run per seed.
    #[arg(long)]
    dump: Option<std::path::PathBuf>,
    /// Judge each held-out block against a profile of this many consecutive rows beside
    /// it instead of as many as the monitored profile has (training's choice); 0 judges
    /// it against all the other blocks (session 8's floor).
    #[arg(long)]
    spread_profile_rows: Option<usize>,
    /// Measure the noise floor on windows of the history before the reference period
    /// judged against the monitored profile itself (experiment).
    #[arg(long)]
    spread_own_profile: bool,
    /// Judge out-of-range values against the training rows' minimum and maximum only,
    /// not widened to the latest `--spread-history` events' as training widens them
    /// (session 9's range).
    #[arg(long)]
    range_from_training_rows: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 2_000)]
    users: u32,
}

/// One alarm: the event index (after the reference period) and what raised it.
#[derive(Debug, Clone)]
struct Alarm {
    at: u64,
    what: String,
}

#[derive(Debug, Default)]
struct Outcome {
    data_alarms: Vec<Alarm>,
    concept_alarms: Vec<Alarm>,
    /// Concept alarms the retrainer would act on (votes only above its error-rate floor).
    retrain_triggers: Vec<Alarm>,
    /// Evaluations whose quality rates cross the alert rules' thresholds
    /// (deploy/prometheus: missing rate 0.05 above the reference's, out of range > 0.05,
    /// unknown category > 0.01), as transitions.
    quality_alarms: Vec<Alarm>,
    in_quality_alarm: bool,
    /// Drifts each concept detector reported (ADWIN, Page–Hinkley, DDM), votes or not.
    detector_drifts: [u64; 3],
    /// Evaluations whose status was Drift, of those judged.
    drift_evaluations: u64,
    evaluations: u64,
    /// Each judged evaluation: where, and whether its status was Drift.
    statuses: Vec<(u64, bool)>,
    rejected: u64,
    scored: u64,
    labelled: u64,
    errors: u64,
    holdout_auc: f64,
    max_missing_rate: f64,
    max_out_of_range: f64,
    max_unknown: f64,
    seconds: f64,
    /// One per `--sweep-sds` value.
    swept: Vec<SweptFloor>,
    /// One per `--sweep-rules` rule.
    rules: Vec<SweptRule>,
}

fn parse_rule(text: &str) -> Result<(f64, f64, u32), String> {
    let parts: Vec<&str> = text.split('/').collect();
    let number = |t: &str| t.trim().parse::<f64>().map_err(|e| format!("'{t}': {e}"));
    match parts[..] {
        [single, pair] => Ok((number(single)?, number(pair)?, 1)),
        [single, pair, run] => Ok((
            number(single)?,
            number(pair)?,
            run.trim().parse().map_err(|e| format!("'{run}': {e}"))?,
        )),
        _ => Err(format!("a rule is SINGLE/PAIR[/RUN], not '{text}'")),
    }
}

/// The alarms of one `--sweep-rules` rule.
#[derive(Debug)]
struct SweptRule {
    single: f64,
    pair: f64,
    run: u32,
    /// Consecutive evaluations that met the rule, up to now.
    streak: u32,
    in_drift: bool,
    alarms: Vec<(u64, String)>,
    drift_evaluations: u64,
}

/// The data-drift alarms of one extra monitor of a `--sweep-sds` run.
#[derive(Debug)]
struct SweptFloor {
    sds: f64,
    monitor: StreamMonitor,
    in_drift: bool,
    /// Event indices of transitions into drift.
    alarms: Vec<u64>,
    drift_evaluations: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scenarios: Vec<&str> = if args.scenario == "all" {
        vec![
            "none",
            "covariate",
            "covariate10",
            "categorical",
            "concept",
            "quality",
        ]
    } else {
        vec![args.scenario.as_str()]
    };
    println!(
        "warmup {} + reference {} events, then {} monitored; onset {} events into the monitored part, \
         ramp {}; evaluate every {}; concept vote window {} labelled events",
        args.warmup, args.train, args.events, args.lead, args.ramp, args.evaluate_every, args.vote_window
    );
    for name in scenarios {
        let outcome = run(&args, name)?;
        report(&args, name, &outcome);
    }
    Ok(())
}

fn report(args: &Args, name: &str, o: &Outcome) {
    let per_million = |n: usize| n as f64 * 1e6 / args.events as f64;
    let onset = if name == "none" { u64::MAX } else { args.lead };
    let before = |alarms: &[Alarm]| alarms.iter().filter(|a| a.at < onset).count();
    let first_after = |alarms: &[Alarm]| alarms.iter().find(|a| a.at >= onset).cloned();
    println!("\n## {name}  ({:.1} s)", o.seconds);
    println!(
        "scored {} events ({} rejected by the contract), {} labelled, model error rate {:.4}, reference \
         holdout ROC AUC {:.4}; max over windows: missing {:.4}, out of range {:.4}, unknown category {:.4}",
        o.scored,
        o.rejected,
        o.labelled,
        o.errors as f64 / o.labelled.max(1) as f64,
        o.holdout_auc,
        o.max_missing_rate,
        o.max_out_of_range,
        o.max_unknown
    );
    println!(
        "data drift: {} alarms ({} before onset), {}/{} evaluations in drift",
        o.data_alarms.len(),
        before(&o.data_alarms),
        o.drift_evaluations,
        o.evaluations
    );
    report_persistence(&o.statuses, onset);
    println!(
        "concept drift (2 of 3 within {}): {} alarms ({} before onset)",
        args.vote_window,
        o.concept_alarms.len(),
        before(&o.concept_alarms)
    );
    println!(
        "retraining triggers (the same vote, counting drifts only while the latest {RECENT} \
         labelled errors run at least {}x the holdout's and the expected rate): {} ({} before onset)",
        1.0 + RetrainSettings::default().concept_min_error_increase,
        o.retrain_triggers.len(),
        before(&o.retrain_triggers)
    );
    println!(
        "data quality (alert-rule thresholds): {} alarms ({} before onset); concept detectors alone: {:?}",
        o.quality_alarms.len(),
        before(&o.quality_alarms),
        o.detector_drifts
    );
    for swept in &o.swept {
        println!(
            "  floor at mean + {} sd: {} data alarms ({} before onset), first after onset at {}, {}/{} evaluations in drift",
            swept.sds,
            swept.alarms.len(),
            swept.alarms.iter().filter(|&&a| a < onset).count(),
            swept
                .alarms
                .iter()
                .find(|&&a| a >= onset)
                .map_or("none".to_string(), |a| (a - onset).to_string()),
            swept.drift_evaluations,
            o.evaluations
        );
    }
    for rule in &o.rules {
        println!(
            "  one column at {} sd or two at {}, {} evaluation(s) running: {} data alarms ({} before onset), first after onset at {}, {}/{} evaluations in drift",
            rule.single,
            rule.pair,
            rule.run,
            rule.alarms.len(),
            rule.alarms.iter().filter(|(a, _)| *a < onset).count(),
            rule.alarms
                .iter()
                .find(|(a, _)| *a >= onset)
                .map_or("none".to_string(), |(a, what)| format!("{} ({what})", a - onset)),
            rule.drift_evaluations,
            o.evaluations
        );
        if name == "none" {
            for (at, what) in rule.alarms.iter().take(5) {
                println!("    at {at}: {what}");
            }
        }
    }
    if name == "none" {
        println!(
            "false alarms per million events: data {:.1}, concept {:.1} (retraining triggers {:.1}), quality {:.1}",
            per_million(o.data_alarms.len()),
            per_million(o.concept_alarms.len()),
            per_million(o.retrain_triggers.len()),
            per_million(o.quality_alarms.len())
        );
        for a in o
            .data_alarms
            .iter()
            .chain(&o.concept_alarms)
            .chain(&o.quality_alarms)
            .take(20)
        {
            println!("  alarm at {}: {}", a.at, a.what);
        }
        for a in &o.retrain_triggers {
            println!("  retraining trigger at {}: {}", a.at, a.what);
        }
        return;
    }
    for (kind, alarms) in [
        ("data", &o.data_alarms),
        ("concept", &o.concept_alarms),
        ("retraining", &o.retrain_triggers),
        ("quality", &o.quality_alarms),
    ] {
        match first_after(alarms) {
            Some(a) => println!("{kind}: detected {} events after onset: {}", a.at - onset, a.what),
            None => println!("{kind}: not detected"),
        }
    }
}

/// How long the status stays in drift: the longest run of Drift evaluations before and
/// after the onset, and, for spans of 10 and 30 evaluations, the largest share of a span
/// in drift before the onset and the first evaluation after it whose trailing span is a
/// quarter and half in drift (what an alert on the share of time in drift would see).
fn report_persistence(statuses: &[(u64, bool)], onset: u64) {
    let longest = |before: bool| {
        let mut run = 0;
        let mut longest = 0;
        for &(_, drift) in statuses.iter().filter(|(at, _)| (*at < onset) == before) {
            run = if drift { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        longest
    };
    println!(
        "  longest run in drift: {} evaluations before onset, {} after",
        longest(true),
        longest(false)
    );
    for span in [10usize, 30] {
        let mut max_before: f64 = 0.0;
        let mut first = [None, None];
        for end in span..=statuses.len() {
            let window = &statuses[end - span..end];
            let share = window.iter().filter(|(_, d)| *d).count() as f64 / span as f64;
            let at = window[span - 1].0;
            if at < onset {
                max_before = max_before.max(share);
            } else {
                for (slot, bar) in first.iter_mut().zip([0.25, 0.5]) {
                    if slot.is_none() && share >= bar {
                        *slot = Some(at - onset);
                    }
                }
            }
        }
        let show = |v: Option<u64>| v.map_or("never".to_string(), |v| v.to_string());
        println!(
            "  share of {span} evaluations in drift: at most {max_before:.2} before onset; after onset reaches 0.25 at {}, 0.5 at {}",
            show(first[0]),
            show(first[1])
        );
    }
}

fn run(args: &Args, name: &str) -> Result<Outcome> {
    let started = Instant::now();
    let (scenario, extra_scale) = match name {
        "covariate10" => (Scenario::None, Some(args.amount_scale)),
        other => (other.parse::<Scenario>()?, None),
    };
    let reference_end = args.warmup + args.train;
    let onset = reference_end + args.lead;
    let mut generator = Generator::new(GeneratorConfig {
        seed: args.seed,
        users: args.users,
        scenario,
        onset,
        ramp: args.ramp,
        ..GeneratorConfig::default()
    })?;
    let config = Config::fraud_default();
    let training = TrainingConfig::from_settings(&config.settings.model, &config.settings.gates)?;
    let engine = FeatureEngine::from_config(&config);
    let spec = engine.spec().clone();
    let contract = &config.contract;
    let width = spec.names().count();

    let mut states: HashMap<String, EntityState> = HashMap::new();
    let mut rows = LabelledRows::new(&spec);
    // The latest events before the reference period ends, as training's replay keeps them.
    let mut recent = RecentRows::new(width, args.spread_history);
    let mut event = GeneratedEvent::default();
    let mut json = Vec::with_capacity(256);
    let mut out = Outcome {
        rules: args
            .sweep_rules
            .iter()
            .map(|&(single, pair, run)| SweptRule {
                single,
                pair,
                run,
                streak: 0,
                in_drift: false,
                alarms: Vec::new(),
                drift_evaluations: 0,
            })
            .collect(),
        ..Outcome::default()
    };
    let mut live: Option<Live> = None;
    let mut reference_accepted = 0usize;
    for index in 0..reference_end + args.events {
        generator.next_into(&mut event);
        if let (Some(scale), true) = (extra_scale, index >= onset) {
            event.transaction_amount = event
                .transaction_amount
                .map(|a| (a * scale * 100.0).round() / 100.0);
        }
        json.clear();
        event.write_json(&mut json);
        let ctx = ValidateContext {
            now: Timestamp::parse_rfc3339(&event.event_ts).map_err(anyhow::Error::msg)?,
            default_entity: None,
            path_prefix: "",
            ids: IdSource::DerivedFrom(&json),
        };
        let record = match contract.validate_json(&json, &ctx) {
            Ok(Record::Event(e)) => e,
            Ok(_) => bail!("the generator wrote a label-only record"),
            Err(_) => {
                if index >= reference_end {
                    out.rejected += 1;
                }
                continue;
            }
        };
        let state = states
            .entry(record.entity.clone())
            .or_insert_with(|| EntityState::new(record.values.len()));
        let vector = engine.vector(state, Some(&record), AsOf::Before(EventKey::of(&record)));
        state.apply(&record, &spec);
        debug_assert_eq!(vector.values.len(), width);
        if index < reference_end {
            recent.push(&vector.values, record.label);
        }
        if index < args.warmup {
            continue;
        }
        if index < reference_end {
            reference_accepted += 1;
        }
        if index < reference_end {
            if let Some(label) = record.label {
                rows.features.extend_from_slice(&vector.values);
                rows.labels.push(label);
                rows.times.push(record.ts);
            }
            if index + 1 == reference_end {
                let history = std::mem::replace(&mut recent, RecentRows::none()).into_events();
                let (l, auc) = fit(
                    &rows,
                    &spec,
                    &training,
                    args,
                    &history,
                    reference_accepted,
                    &mut out.swept,
                )?;
                out.holdout_auc = auc;
                live = Some(l);
            }
            continue;
        }
        let live = live.as_mut().context("no reference period")?;
        let at = index - reference_end;
        let hour = record.ts.hour_of_day() as usize;
        live.observe(&vector.values, record.label, hour, at, args, &mut out)?;
        if (at + 1).is_multiple_of(args.evaluate_every) {
            live.evaluate(at, args.trace, &mut out);
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// The fitted reference and the monitors watching the stream after it.
struct Live {
    model: FittedModel,
    threshold: f64,
    monitor: StreamMonitor,
    concept: ConceptMonitor,
    /// The profile's hourly recalibration of the scores, for expected errors.
    calibration: HourlyCalibration,
    /// Drifts reported by each detector: the labelled index of the latest one.
    votes: [Option<u64>; 3],
    /// The same, counting only harmful drifts (`driftline_serve::monitor::harmful`), the
    /// retrainer's votes and `DriftlineConceptDrift`'s.
    retrain_votes: [Option<u64>; 3],
    /// The latest [`RECENT`] errors and expected errors.
    recent: RecentErrors,
    /// The holdout's error rate.
    holdout_error_rate: f64,
    in_drift: bool,
    /// Feed the concept detectors raw errors instead of excess errors.
    raw_errors: bool,
    /// Each column's held-out distances (mean, std) and the monitor's multiplier, to
    /// read its distances as standard deviations for `--sweep-rules`.
    spread: HashMap<String, (f64, f64)>,
    noise_sds: f64,
    /// `--dump`'s file.
    dump: Option<std::io::BufWriter<std::fs::File>>,
}

impl Live {
    /// How many standard deviations of its held-out distances each column's distance
    /// stands above their mean, scaled to the window as the floor is; −∞ when its p-value
    /// or configured threshold clears it, +∞ when it drifts with no floor to stand above.
    fn levels(&self, snapshot: &MonitorSnapshot) -> Vec<(String, f64)> {
        let mut levels: Vec<(String, f64)> = judged_distances(snapshot)
            .map(|(name, v, score, passes)| {
                let level = match (passes, v.noise_floor, self.spread.get(name)) {
                    (false, _, _) => f64::NEG_INFINITY,
                    (true, Some(floor), Some(&(mean, std))) if std > 0.0 => {
                        let scale = floor / (mean + self.noise_sds * std);
                        (score / scale - mean) / std
                    }
                    (true, _, _) if v.drifted => f64::INFINITY,
                    (true, _, _) => f64::NEG_INFINITY,
                };
                (name.to_string(), level)
            })
            .collect();
        levels.sort_by(|a, b| b.1.total_cmp(&a.1));
        levels
    }

    fn judge_rules(&self, snapshot: &MonitorSnapshot, at: u64, out: &mut Outcome) {
        if out.rules.is_empty() {
            return;
        }
        let levels = self.levels(snapshot);
        let level = |i: usize| levels.get(i).map_or(f64::NEG_INFINITY, |l| l.1);
        for rule in &mut out.rules {
            let met = level(0) >= rule.single || level(1) >= rule.pair;
            rule.streak = if met { rule.streak + 1 } else { 0 };
            let drift = rule.streak >= rule.run;
            if drift && !rule.in_drift {
                let what = levels
                    .iter()
                    .take(3)
                    .map(|(name, l)| format!("{name} {l:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                rule.alarms.push((at, what));
            }
            rule.drift_evaluations += u64::from(drift);
            rule.in_drift = drift;
        }
    }
}

/// `profile` with its noise floors `sds` standard deviations above the mean held-out
/// distance: the monitor's `mean + NOISE_SDS · std`, with each std scaled by
/// `sds / NOISE_SDS`.
fn with_noise_sds(profile: &ReferenceProfile, sds: f64) -> ReferenceProfile {
    let mut profile = profile.clone();
    if let Some(spread) = &mut profile.window_spread {
        for d in spread.columns.values_mut() {
            d.std *= sds / NOISE_SDS;
        }
    }
    profile
}

fn fit(
    rows: &LabelledRows,
    spec: &FeatureSpec,
    training: &TrainingConfig,
    args: &Args,
    history: &RecentEvents,
    reference_accepted: usize,
    swept: &mut Vec<SweptFloor>,
) -> Result<(Live, f64)> {
    let split = Split::new(
        &rows.labels,
        SplitKind::Time,
        training.holdout_fraction,
        training.seed,
    )?;
    let train = rows.dataset(&split.train)?;
    let holdout = rows.dataset(&split.holdout)?;
    let model = training.estimator.fit(&train)?;
    let train_scores = model.predict_dataset(&train)?;
    let holdout_metrics = Metrics::compute(
        &model.predict_dataset(&holdout)?,
        holdout.labels(),
        training.decision_threshold,
    )?;
    let holdout_auc = holdout_metrics.roc_auc.unwrap_or(f64::NAN);
    let confusion = &holdout_metrics.confusion;
    let holdout_error_rate = (confusion.fp + confusion.fn_) as f64 / holdout_metrics.rows.max(1) as f64;
    let profile_rows = match args.spread_profile_rows {
        None => Some(train.labels().len()),
        Some(0) => None,
        Some(n) => Some(n),
    };
    println!(
        "profile rows {}, held-out profiles of {profile_rows:?}",
        train.labels().len()
    );
    let mut config = MonitorConfig::default();
    if let Some(window) = args.window {
        config.window = window;
    }
    let mut own_distances = None;
    let profile = if args.no_seasons {
        let mut params = profile_params(spec);
        params.season_column = None;
        ReferenceProfile::fit_row_major(
            &rows.columns,
            &rows.kinds,
            train.features(),
            Some(train.labels()),
            Some(&train_scores),
            &params,
        )?
    } else {
        let mut profile = profile_training_rows(rows, &train, &train_scores, spec)?;
        let mut scores = vec![0.0; history.labels.len()];
        model.predict_proba(&history.rows, &mut scores)?;
        if !args.no_spread {
            profile.window_spread =
                recent_window_spread(rows, history, &scores, spec, &config, profile_rows)?;
        }
        if args.spread_own_profile || args.dump.is_some() {
            let width = rows.columns.len();
            let before = history.labels.len().saturating_sub(reference_accepted);
            let own = distances_against_profile(
                &profile,
                &history.rows[..before * width],
                &scores[..before],
                &config,
                args.evaluate_every as usize,
            )?;
            if args.spread_own_profile {
                profile.window_spread = Some(own.spread(config.window));
            }
            own_distances = Some(own);
        }
        if !args.range_from_training_rows {
            profile.widen_ranges(&history.rows)?;
        }
        if !args.calibrate_on_training_rows {
            calibrate_on_recent(
                &mut profile,
                &rows.columns,
                history,
                &scores,
                training.decision_threshold,
            );
        }
        profile
    };
    let noise_sds = args.noise_sds.unwrap_or(NOISE_SDS);
    let dump = match &args.dump {
        Some(path) => {
            let held_out = block_distances(rows, history, &model, spec, &config, profile_rows)?;
            Some(start_dump(path, &held_out, own_distances.as_ref())?)
        }
        None => None,
    };
    if let Some(spread) = &profile.window_spread {
        println!(
            "window spread over {} held-out windows of {} rows (mean, std, max; floor = mean + {noise_sds} std):",
            spread.windows, spread.window,
        );
        for (name, d) in &spread.columns {
            println!(
                "  {name}: {:.3} {:.3} {:.3}; floor {:.3}",
                d.mean,
                d.std,
                d.max,
                d.mean + noise_sds * d.std
            );
        }
    }
    for &sds in &args.sweep_sds {
        swept.push(SweptFloor {
            sds,
            monitor: StreamMonitor::new(&with_noise_sds(&profile, sds), &config)?,
            in_drift: false,
            alarms: Vec::new(),
            drift_evaluations: 0,
        });
    }
    let spread = profile
        .window_spread
        .iter()
        .flat_map(|s| &s.columns)
        .map(|(name, d)| (name.clone(), (d.mean, d.std)))
        .collect();
    let profile = with_noise_sds(&profile, noise_sds);
    let monitor = StreamMonitor::new(&profile, &config)?;
    let live = Live {
        model,
        threshold: training.decision_threshold,
        monitor,
        concept: ConceptMonitor::default(),
        calibration: if args.no_calibration {
            HourlyCalibration::default()
        } else {
            HourlyCalibration::of(&profile)
        },
        votes: [None; 3],
        retrain_votes: [None; 3],
        recent: RecentErrors::default(),
        holdout_error_rate,
        in_drift: false,
        raw_errors: args.raw_errors,
        spread,
        noise_sds,
        dump,
    };
    Ok((live, holdout_auc))
}

/// The held-out distances of the windows the noise floors are measured on, measured
/// again for `--dump` (the profile keeps only their moments).
fn block_distances(
    rows: &LabelledRows,
    history: &RecentEvents,
    model: &FittedModel,
    spec: &FeatureSpec,
    config: &MonitorConfig,
    profile_rows: Option<usize>,
) -> Result<HeldOutDistances> {
    let mut scores = vec![0.0; history.labels.len()];
    model.predict_proba(&history.rows, &mut scores)?;
    let params = profile_params(spec);
    let reference = ReferenceRows {
        columns: &rows.columns,
        kinds: &rows.kinds,
        rows: &history.rows,
        scores: Some(&scores),
        params: &params,
        profile_rows,
    };
    held_out_distances(reference, config)?.context("too little history for held-out windows")
}

/// Opens `--dump`'s file and writes the held-out distances: the blocks' and, when
/// measured, those against the model's own profile.
fn start_dump(
    path: &std::path::Path,
    held_out: &HeldOutDistances,
    own: Option<&HeldOutDistances>,
) -> Result<std::io::BufWriter<std::fs::File>> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let line = serde_json::json!({
        "windows": held_out.windows,
        "held_out": held_out.distances,
        "own": own.map(|o| &o.distances),
    });
    writeln!(file, "{line}")?;
    Ok(file)
}

/// `--spread-own-profile`: the distances of windows of `rows` (row-major, oldest first,
/// none of them the profile's own rows) judged against `profile` itself, one window every
/// `step` rows, as the live monitor judges them: the noise of live windows against that
/// one profile, its own sample's offset included.
fn distances_against_profile(
    profile: &ReferenceProfile,
    rows: &[f64],
    scores: &[f64],
    config: &MonitorConfig,
    step: usize,
) -> Result<HeldOutDistances> {
    let mut bare = profile.clone();
    bare.window_spread = None;
    let monitor = StreamMonitor::new(&bare, config)?;
    let width = profile.columns.len();
    let mut distances: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut windows = 0;
    for (at, row) in rows.chunks_exact(width).enumerate() {
        monitor.observe(row, scores[at])?;
        let seen = at + 1;
        if seen >= config.window && (seen - config.window).is_multiple_of(step.max(1)) {
            windows += 1;
            let snapshot = monitor.evaluate();
            for (name, v, score, _) in judged_distances(&snapshot) {
                if !v.test.is_p_value() {
                    distances.entry(name.to_string()).or_default().push(score);
                }
            }
        }
    }
    anyhow::ensure!(windows > 0, "too little history before the reference period");
    Ok(HeldOutDistances { windows, distances })
}

/// Each judged column of `snapshot` (the score last) with a distance: its name, verdict,
/// distance, and whether it passed the p-value and the configured threshold (so only the
/// noise floor stands between it and drift).
fn judged_distances(snapshot: &MonitorSnapshot) -> impl Iterator<Item = (&str, &ColumnVerdict, f64, bool)> {
    snapshot
        .columns
        .iter()
        .chain(snapshot.score.as_ref())
        .filter_map(|c| {
            let v = c.drift.as_ref()?;
            let score = v.score?;
            let passed = v.significant && v.test.drifted(score, v.configured_threshold);
            Some((c.name.as_str(), v, score, passed))
        })
}

/// `--dump`'s line for one evaluation.
fn dump_evaluation(file: &mut impl std::io::Write, at: u64, snapshot: &MonitorSnapshot) -> Result<()> {
    let columns: serde_json::Map<String, serde_json::Value> = judged_distances(snapshot)
        .map(|(name, v, score, passed)| {
            (
                name.to_string(),
                serde_json::json!([score, u8::from(passed), v.noise_floor]),
            )
        })
        .collect();
    writeln!(file, "{}", serde_json::json!({"at": at, "columns": columns}))?;
    Ok(())
}

impl Live {
    fn observe(
        &mut self,
        values: &[f64],
        label: Option<bool>,
        hour: usize,
        at: u64,
        args: &Args,
        out: &mut Outcome,
    ) -> Result<()> {
        let score = self.model.predict_proba_row(values);
        self.monitor.observe(values, score)?;
        for swept in &mut out.swept {
            swept.monitor.observe(values, score)?;
        }
        out.scored += 1;
        let Some(label) = label else { return Ok(()) };
        let declined = score >= self.threshold;
        let error = declined != label;
        let labelled = out.labelled;
        out.labelled += 1;
        out.errors += u64::from(error);
        let expected = self.calibration.expected_error(score, declined, hour);
        self.recent.push(error, expected);
        let recent_error_rate = self.recent.rate();
        // As serve's `ConceptWatch` judges a drift for the retrainer and the alert.
        let harmful = harmful(
            recent_error_rate,
            self.recent.expected_rate(),
            Some(self.holdout_error_rate),
            RetrainSettings::default().concept_min_error_increase,
        );
        let news = if self.raw_errors {
            self.concept.update(error)
        } else {
            self.concept.update_expected(error, expected)
        };
        for news in news {
            if news.state != DetectorState::Drift {
                continue;
            }
            let slot = DetectorKind::ALL
                .iter()
                .position(|d| *d == news.detector)
                .expect("a known detector");
            out.detector_drifts[slot] += 1;
            self.votes[slot] = Some(labelled);
            let agreeing: Vec<&str> = DetectorKind::ALL
                .iter()
                .zip(&self.votes)
                .filter(|(_, v)| v.is_some_and(|v| labelled - v <= args.vote_window))
                .map(|(d, _)| d.name())
                .collect();
            if agreeing.len() >= 2 {
                out.concept_alarms.push(Alarm {
                    at,
                    what: format!(
                        "{} at hour {hour} (error rate since ADWIN's last change {:.4}, latest {RECENT} {:.4})",
                        agreeing.join(" and "),
                        self.concept.snapshot().recent_error_rate,
                        recent_error_rate
                    ),
                });
                // The retrainer consumes the votes when it fires.
                self.votes = [None; 3];
            }
            if harmful {
                self.retrain_votes[slot] = Some(labelled);
                let agreeing = self
                    .retrain_votes
                    .iter()
                    .filter(|v| v.is_some_and(|v| labelled - v <= args.vote_window))
                    .count();
                if agreeing >= 2 {
                    out.retrain_triggers.push(Alarm {
                        at,
                        what: format!(
                            "at hour {hour}, recent error rate {recent_error_rate:.4} (expected {:.4})",
                            self.recent.expected_rate()
                        ),
                    });
                    self.retrain_votes = [None; 3];
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, at: u64, trace: bool, out: &mut Outcome) {
        for swept in &mut out.swept {
            let drift = swept.monitor.evaluate().status == MonitorStatus::Drift;
            if drift && !swept.in_drift {
                swept.alarms.push(at);
            }
            swept.drift_evaluations += u64::from(drift);
            swept.in_drift = drift;
        }
        let snapshot = self.monitor.evaluate();
        if snapshot.status == MonitorStatus::WarmingUp {
            return;
        }
        out.evaluations += 1;
        if let Some(file) = &mut self.dump {
            dump_evaluation(file, at, &snapshot).expect("writing --dump");
        }
        self.judge_rules(&snapshot, at, out);
        let mut quality = Vec::new();
        for column in &snapshot.columns {
            let q = &column.quality;
            out.max_missing_rate = out.max_missing_rate.max(q.missing_rate);
            out.max_out_of_range = out.max_out_of_range.max(q.out_of_range_rate.unwrap_or(0.0));
            out.max_unknown = out.max_unknown.max(q.unknown_category_rate.unwrap_or(0.0));
            if q.missing_rate - q.reference_missing_rate > 0.05 {
                quality.push(format!("{} missing {:.3}", column.name, q.missing_rate));
            }
            if q.out_of_range_rate.is_some_and(|r| r > 0.05) {
                quality.push(format!("{} out of range", column.name));
            }
            if let Some(r) = q.unknown_category_rate.filter(|&r| r > 0.01) {
                quality.push(format!("{} unknown {r:.3}", column.name));
            }
        }
        if !quality.is_empty() && !out.in_quality_alarm {
            out.quality_alarms.push(Alarm {
                at,
                what: quality.join(", "),
            });
        }
        out.in_quality_alarm = !quality.is_empty();
        let drift = snapshot.status == MonitorStatus::Drift;
        out.drift_evaluations += u64::from(drift);
        out.statuses.push((at, drift));
        if trace || (drift && !self.in_drift) {
            let mut drifted: Vec<String> = snapshot
                .columns
                .iter()
                .chain(snapshot.score.as_ref())
                .filter_map(|c| {
                    c.drift.filter(|d| d.drifted).map(|d| {
                        format!(
                            "{} {:.3} (p {:.1e})",
                            c.name,
                            d.score.unwrap_or(f64::NAN),
                            d.p_value.unwrap_or(f64::NAN)
                        )
                    })
                })
                .collect();
            if !trace {
                drifted.truncate(6);
            }
            let share = snapshot.dataset.map_or(0.0, |d| d.share);
            if trace {
                println!(
                    "{at}: {:?} share {share:.2}: {}",
                    snapshot.status,
                    drifted.join(", ")
                );
            }
        }
        if drift && !self.in_drift {
            let share = snapshot.dataset.map_or(0.0, |d| d.share);
            out.data_alarms.push(Alarm {
                at,
                what: format!(
                    "drifted {} (dataset share {share:.2})",
                    snapshot.drifted_columns.join(", ")
                ),
            });
        }
        self.in_drift = drift;
    }
}
