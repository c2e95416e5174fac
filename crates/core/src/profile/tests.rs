use proptest::prelude::*;

use super::*;

const NAN: f64 = f64::NAN;

fn names(ns: &[&str]) -> Vec<String> {
    ns.iter().map(|n| n.to_string()).collect()
}

fn one_column(values: &[f64], kind: ColumnKind, params: &ProfileParams) -> ReferenceProfile {
    ReferenceProfile::fit_row_major(&names(&["x"]), &[kind], values, None, None, params).unwrap()
}

fn stats(p: &ReferenceProfile, name: &str) -> Stats {
    p.column(name).unwrap().summary.stats.clone().unwrap()
}

fn assert_close(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "got {got}, want {want}"
    );
}

#[test]
fn quantiles_moments_and_histogram_match_numpy() {
    // Expected values from:
    // python3 -c "import numpy as np; x=np.array([3,1,4,1,5,9,2,6.]);
    //   print(np.quantile(x,[.01,.05,.1,.25,.5,.75,.9,.95,.99]), x.mean(), x.std(),
    //   np.histogram(x, bins=4))"
    let params = ProfileParams {
        bins: 4,
        ..ProfileParams::default()
    };
    let p = one_column(
        &[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0],
        ColumnKind::Numeric,
        &params,
    );
    let s = stats(&p, "x");
    let want = [
        1.0,
        1.0,
        1.0,
        1.75,
        3.5,
        5.25,
        6.8999999999999995,
        7.949999999999998,
        8.79,
    ];
    assert_eq!(s.quantiles.len(), want.len());
    for (q, w) in s.quantiles.iter().zip(want) {
        assert_close(q.value, w);
    }
    assert_eq!(s.quantiles[4].q, 0.5);
    assert_close(s.mean, 3.875);
    assert_close(s.std, 2.5708704751503917);
    assert_eq!((s.min, s.max), (1.0, 9.0));
    assert_eq!(s.histogram.edges, vec![1.0, 3.0, 5.0, 7.0, 9.0]);
    assert_eq!(s.histogram.counts, vec![3, 2, 2, 1]);
    assert_eq!(p.column("x").unwrap().summary.unique, 7);
}

#[test]
fn quantiles_interpolate_between_unevenly_spaced_values() {
    // python3 -c "import numpy as np; y=np.array([0.1,0.7,0.2,10.0,-3.5]);
    //   print(np.quantile(y,[0,.3,.5,.9,1]), y.mean(), y.std())"
    let params = ProfileParams {
        quantiles: vec![0.0, 0.3, 0.5, 0.9, 1.0],
        ..ProfileParams::default()
    };
    let p = one_column(&[0.1, 0.7, 0.2, 10.0, -3.5], ColumnKind::Numeric, &params);
    let s = stats(&p, "x");
    let want = [-3.5, 0.12, 0.2, 6.280000000000001, 10.0];
    for (q, w) in s.quantiles.iter().zip(want) {
        assert_close(q.value, w);
    }
    assert_close(s.mean, 1.5);
    assert_close(s.std, 4.5064398365006495);
}

#[test]
fn missing_values_are_counted_and_left_out_of_the_statistics() {
    let p = one_column(
        &[NAN, 2.0, NAN, 4.0],
        ColumnKind::Numeric,
        &ProfileParams::default(),
    );
    let c = &p.column("x").unwrap().summary;
    assert_eq!((c.count, c.missing), (2, 2));
    assert_eq!(c.missing_rate, 0.5);
    let s = c.stats.as_ref().unwrap();
    assert_eq!((s.mean, s.std, s.min, s.max), (3.0, 1.0, 2.0, 4.0));
    assert_eq!(c.sample, vec![2.0, 4.0]);
}

#[test]
fn an_all_missing_column_has_no_statistics() {
    let p = one_column(&[NAN, NAN, NAN], ColumnKind::Numeric, &ProfileParams::default());
    let c = &p.column("x").unwrap().summary;
    assert_eq!((c.count, c.missing, c.missing_rate, c.unique), (0, 3, 1.0, 0));
    assert!(c.stats.is_none());
    assert!(c.sample.is_empty());
    assert_eq!(p.rows, 3);
}

#[test]
fn a_constant_column_has_one_bin_and_zero_spread() {
    let p = one_column(&[7.5; 10], ColumnKind::Numeric, &ProfileParams::default());
    let s = stats(&p, "x");
    assert_eq!(s.histogram.edges, vec![7.5, 7.5]);
    assert_eq!(s.histogram.counts, vec![10]);
    assert_eq!(s.std, 0.0);
    assert!(s.quantiles.iter().all(|q| q.value == 7.5));
    assert_eq!(p.column("x").unwrap().summary.unique, 1);
}

#[test]
fn categorical_columns_record_counts_per_code() {
    let data = [
        1.0, 0.5, //
        0.0, 1.5, //
        1.0, NAN, //
        2.0, 2.5, //
        1.0, 3.5,
    ];
    let p = ReferenceProfile::fit_row_major(
        &names(&["code", "amount"]),
        &[ColumnKind::Categorical, ColumnKind::Numeric],
        &data,
        None,
        None,
        &ProfileParams::default(),
    )
    .unwrap();
    let code = p.column("code").unwrap();
    let want: BTreeMap<i64, usize> = [(0, 1), (1, 3), (2, 1)].into();
    assert_eq!(code.categories.as_ref(), Some(&want));
    assert_eq!(code.summary.unique, 3);
    assert!(code.summary.sample.is_empty());
    let amount = p.column("amount").unwrap();
    assert_eq!(amount.categories, None);
    assert_eq!((amount.summary.count, amount.summary.missing), (4, 1));
    assert!(p.column("nope").is_none());
}

#[test]
fn minus_zero_and_zero_are_one_category() {
    let p = one_column(
        &[-0.0, 0.0, 1.0],
        ColumnKind::Categorical,
        &ProfileParams::default(),
    );
    let c = p.column("x").unwrap();
    assert_eq!(c.summary.unique, 2);
    assert_eq!(c.categories.as_ref().unwrap()[&0], 2);
}

#[test]
fn histogram_counts_sum_to_the_non_missing_count_with_the_maximum_in_the_last_bin() {
    let values: Vec<f64> = (0..1000)
        .map(|i| if i % 7 == 0 { NAN } else { (i % 100) as f64 })
        .collect();
    let p = one_column(&values, ColumnKind::Numeric, &ProfileParams::default());
    let c = &p.column("x").unwrap().summary;
    let h = &c.stats.as_ref().unwrap().histogram;
    assert_eq!(h.counts.len(), 20);
    assert_eq!(h.edges.len(), 21);
    assert_eq!(h.counts.iter().sum::<usize>(), c.count);
    // 95..=99 fall in the last bin [94.05, 99].
    let last = values.iter().filter(|&&v| v >= 94.05).count();
    assert_eq!(h.counts[19], last);
}

#[test]
fn the_sample_is_capped_sorted_and_spans_the_data() {
    let values: Vec<f64> = (0..10_000).map(|i| ((i * 7919) % 10_000) as f64).collect();
    let params = ProfileParams {
        sample_size: 100,
        ..ProfileParams::default()
    };
    let p = one_column(&values, ColumnKind::Numeric, &params);
    let sample = &p.column("x").unwrap().summary.sample;
    assert_eq!(sample.len(), 100);
    assert!(sample.windows(2).all(|w| w[0] <= w[1]));
    // Midpoints of 100 slices of 0..10000: 50, 150, ..., 9950.
    assert_eq!(sample[0], 50.0);
    assert_eq!(sample[99], 9950.0);
}

#[test]
fn the_same_input_gives_identical_json() {
    let data: Vec<f64> = (0..30_000)
        .map(|i| match i % 3 {
            0 => ((i * 31) % 977) as f64 / 7.0,
            1 => (i % 4) as f64,
            _ if i % 11 == 0 => NAN,
            _ => (i as f64).sin(),
        })
        .collect();
    let fit = || {
        ReferenceProfile::fit_row_major(
            &names(&["a", "b", "c"]),
            &[ColumnKind::Numeric, ColumnKind::Categorical, ColumnKind::Numeric],
            &data,
            None,
            None,
            &ProfileParams {
                sample_size: 500,
                ..ProfileParams::default()
            },
        )
        .unwrap()
    };
    let a = serde_json::to_string(&fit()).unwrap();
    let b = serde_json::to_string(&fit()).unwrap();
    assert_eq!(a, b);
    // Every float survives the trip bit for bit.
    let back: ReferenceProfile = serde_json::from_str(&a).unwrap();
    assert_eq!(back, fit());
}

#[test]
fn json_round_trips_with_labels_and_scores() {
    let data = [1.0, 0.0, 2.5, 1.0, NAN, 1.0, -4.0, 0.0];
    let labels = [true, false, false, true];
    let scores = [0.9, 0.1, NAN, 0.7];
    let p = ReferenceProfile::fit_row_major(
        &names(&["x", "flag"]),
        &[ColumnKind::Numeric, ColumnKind::Categorical],
        &data,
        Some(&labels),
        Some(&scores),
        &ProfileParams::default(),
    )
    .unwrap();
    assert_eq!(p.format_version, FORMAT_VERSION);
    assert_eq!(p.rows, 4);
    let l = p.labels.as_ref().unwrap();
    assert_eq!((l.positives, l.rate), (2, 0.5));
    let s = p.scores.as_ref().unwrap();
    assert_eq!((s.count, s.missing), (3, 1));
    assert_eq!(s.sample, vec![0.1, 0.7, 0.9]);

    let json = serde_json::to_string_pretty(&p).unwrap();
    assert!(json.contains(&format!("\"format_version\": {FORMAT_VERSION}")));
    let back: ReferenceProfile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn kinds_follow_the_feature_spec() {
    let contract = crate::contract::Contract::new(&crate::contract::ContractConfig::default()).unwrap();
    let spec = FeatureSpec::new(&crate::features::FeaturesConfig::default(), &contract).unwrap();
    let kinds = ColumnKind::for_spec(&spec);
    assert_eq!(kinds.len(), spec.len());
    for (c, k) in spec.columns.iter().zip(&kinds) {
        let categorical = matches!(
            c.kind,
            FeatureKind::RequestCategory { .. } | FeatureKind::Changed { .. }
        );
        assert_eq!(*k == ColumnKind::Categorical, categorical, "{}", c.name);
    }
    assert!(kinds.contains(&ColumnKind::Categorical));
}

#[test]
fn errors_name_the_column_and_the_reason() {
    let params = ProfileParams::default();
    let fit = |cols: &[&str], kinds: &[ColumnKind], data: &[f64]| {
        ReferenceProfile::fit_row_major(&names(cols), kinds, data, None, None, &params).unwrap_err()
    };
    let num = ColumnKind::Numeric;

    let err = fit(&["a", "b"], &[num, num], &[1.0, 2.0, 3.0, f64::NEG_INFINITY]);
    assert_eq!(
        err,
        ProfileError::NonFinite {
            column: "b".into(),
            row: 1,
            value: f64::NEG_INFINITY
        }
    );
    assert!(err.to_string().contains("column 'b'"), "{err}");
    assert!(err.to_string().contains("-inf"), "{err}");

    let err = fit(&["a", "c"], &[num, ColumnKind::Categorical], &[1.0, 0.5]);
    assert!(matches!(err, ProfileError::NotACode { ref column, row: 0, .. } if column == "c"));
    assert_eq!(fit(&["a"], &[num], &[]), ProfileError::NoRows);
    assert_eq!(fit(&[], &[], &[1.0]), ProfileError::NoColumns);
    assert_eq!(
        fit(&["a"], &[num, num], &[1.0]),
        ProfileError::KindsMismatch { names: 1, kinds: 2 }
    );
    assert_eq!(
        fit(&["a", "a"], &[num, num], &[1.0, 2.0]),
        ProfileError::DuplicateColumn { column: "a".into() }
    );
    assert_eq!(
        fit(&["a", "b"], &[num, num], &[1.0, 2.0, 3.0]),
        ProfileError::RaggedData { len: 3, columns: 2 }
    );

    let rows: [&[f64]; 2] = [&[1.0, 2.0], &[3.0]];
    let err = ReferenceProfile::fit(&names(&["a", "b"]), &[num, num], rows, None, None, &params).unwrap_err();
    assert_eq!(
        err,
        ProfileError::RowLength {
            row: 1,
            len: 1,
            expected: 2
        }
    );

    let one = |labels: Option<&[bool]>, scores: Option<&[f64]>| {
        ReferenceProfile::fit_row_major(&names(&["a"]), &[num], &[1.0, 2.0], labels, scores, &params)
            .unwrap_err()
    };
    assert_eq!(
        one(Some(&[true]), None),
        ProfileError::LengthMismatch {
            what: "labels",
            len: 1,
            rows: 2
        }
    );
    assert_eq!(
        one(None, Some(&[0.1, 0.2, 0.3])),
        ProfileError::LengthMismatch {
            what: "scores",
            len: 3,
            rows: 2
        }
    );
    assert!(matches!(
        one(None, Some(&[0.1, f64::INFINITY])),
        ProfileError::NonFinite { ref column, row: 1, .. } if column == "score"
    ));
}

#[test]
fn bad_params_are_rejected() {
    let bad = [
        ProfileParams {
            bins: 0,
            ..ProfileParams::default()
        },
        ProfileParams {
            sample_size: 0,
            ..ProfileParams::default()
        },
        ProfileParams {
            quantiles: vec![0.5, 1.5],
            ..ProfileParams::default()
        },
        ProfileParams {
            quantiles: vec![NAN],
            ..ProfileParams::default()
        },
    ];
    for params in bad {
        assert!(
            matches!(params.check(), Err(ProfileError::Params(_))),
            "{params:?}"
        );
        let err = ReferenceProfile::fit_row_major(
            &names(&["a"]),
            &[ColumnKind::Numeric],
            &[1.0],
            None,
            None,
            &params,
        )
        .unwrap_err();
        assert!(matches!(err, ProfileError::Params(_)));
    }
    ProfileParams::default().check().unwrap();
}

#[test]
fn edges_stay_ordered_when_the_range_overflows() {
    let p = one_column(
        &[-f64::MAX, 0.0, f64::MAX],
        ColumnKind::Numeric,
        &ProfileParams::default(),
    );
    let h = stats(&p, "x").histogram;
    assert!(h.edges.iter().all(|e| e.is_finite()));
    assert!(h.edges.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(h.counts.iter().sum::<usize>(), 3);
    assert_eq!(h.counts[0], 1);
    assert_eq!(h.counts[19], 1);
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(NAN),
        4 => -1e6f64..1e6,
        2 => (-5i32..5).prop_map(f64::from),
    ]
}

proptest! {
    #[test]
    fn quantiles_are_monotone_within_range_and_histograms_count_every_value(
        values in prop::collection::vec(value(), 1..300),
        bins in 1usize..40,
        mut qs in prop::collection::vec(0.0f64..=1.0, 0..12),
    ) {
        qs.sort_by(f64::total_cmp);
        let params = ProfileParams { bins, quantiles: qs, sample_size: 50, ..ProfileParams::default() };
        let p = one_column(&values, ColumnKind::Numeric, &params);
        let c = &p.column("x").unwrap().summary;
        let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        prop_assert_eq!(c.count, present.len());
        prop_assert_eq!(c.missing, values.len() - present.len());
        prop_assert!(c.sample.len() <= 50);
        prop_assert!(c.sample.windows(2).all(|w| w[0] <= w[1]));
        if let Some(s) = &c.stats {
            prop_assert!(s.quantiles.windows(2).all(|w| w[0].value <= w[1].value));
            prop_assert!(s.quantiles.iter().all(|q| s.min <= q.value && q.value <= s.max));
            prop_assert!(s.min <= s.mean && s.mean <= s.max);
            prop_assert_eq!(s.histogram.counts.iter().sum::<usize>(), c.count);
            prop_assert_eq!(s.histogram.edges.len(), s.histogram.counts.len() + 1);
            prop_assert!(s.histogram.edges.windows(2).all(|w| w[0] <= w[1]));
            // Every value lies in the bin its edges give it.
            let last = s.histogram.counts.len() - 1;
            for (i, &n) in s.histogram.counts.iter().enumerate() {
                let (lo, hi) = (s.histogram.edges[i], s.histogram.edges[i + 1]);
                let inside = present.iter().filter(|&&v| lo <= v && (v < hi || (i == last && v <= hi))).count();
                prop_assert_eq!(inside, n, "bin {}", i);
            }
        } else {
            prop_assert!(present.is_empty());
        }
    }
}

#[test]
fn a_season_column_splits_rows_and_scores_by_hour() {
    // Columns: amount, hour, flag. Hour 25 and a missing hour belong to no stratum.
    let rows = [
        [10.0, 3.0, 1.0],
        [20.0, 3.0, 0.0],
        [NAN, 3.0, 1.0],
        [30.0, 7.0, 0.0],
        [40.0, 25.0, 0.0],
        [50.0, NAN, 1.0],
    ];
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    let scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    let params = ProfileParams {
        season_column: Some("hour".into()),
        season_sample_size: 1,
        ..ProfileParams::default()
    };
    let p = ReferenceProfile::fit_row_major(
        &names(&["amount", "hour", "flag"]),
        &[ColumnKind::Numeric, ColumnKind::Numeric, ColumnKind::Categorical],
        &data,
        None,
        Some(&scores),
        &params,
    )
    .unwrap();
    let seasons = p.seasons.as_ref().unwrap();
    assert_eq!((seasons.column.as_str(), seasons.hours.len()), ("hour", HOURS));
    let three = seasons.hour(3).unwrap();
    assert_eq!(three.rows, 3);
    let amount = &three.columns[0];
    assert_eq!((amount.count, amount.missing), (2, 1));
    assert_eq!(
        amount.sample,
        vec![20.0],
        "one order statistic: the upper median of 10, 20"
    );
    assert_eq!(three.columns[2].categories.as_ref().unwrap()[&1], 2);
    let scores3 = three.scores.as_ref().unwrap();
    assert_eq!((scores3.count, scores3.sample.len()), (3, 1));
    assert_eq!(seasons.hour(7).unwrap().rows, 1);
    let assigned: usize = seasons.hours.iter().map(|h| h.rows).sum();
    assert_eq!(assigned, 4, "hour 25 and a missing hour are in no stratum");
    assert_eq!(p.format_version, FORMAT_VERSION);
}

/// A profile of (x, hour) rows split by the hour column.
fn hourly_profile(data: &[f64], labels: Option<&[bool]>, scores: Option<&[f64]>) -> ReferenceProfile {
    let params = ProfileParams {
        season_column: Some("hour".into()),
        ..ProfileParams::default()
    };
    ReferenceProfile::fit_row_major(
        &names(&["x", "hour"]),
        &[ColumnKind::Numeric, ColumnKind::Numeric],
        data,
        labels,
        scores,
        &params,
    )
    .unwrap()
}

#[test]
fn each_hour_recalibrates_the_scores_to_its_own_label_rate() {
    // Hour 2: scores say 10% but 30% are positive; hour 14: scores say 10%, 10% are.
    // Hour 5: too few positives for a calibration.
    let mut data = Vec::new();
    let (mut labels, mut scores) = (Vec::new(), Vec::new());
    for (hour, rows, positives) in [(2.0, 200, 60), (14.0, 200, 20), (5.0, 200, 5)] {
        for i in 0..rows {
            data.extend([f64::from(i), hour]);
            labels.push(i < positives);
            scores.push(0.1);
        }
    }
    let p = hourly_profile(&data, Some(&labels), Some(&scores));
    let seasons = p.seasons.as_ref().unwrap();
    // σ(logit(0.1) + b) = 0.3 exactly when b = logit(0.3) − logit(0.1).
    let night = seasons.hour(2).unwrap().logit_offset.unwrap();
    let want = (0.3_f64 / 0.7).ln() - (0.1_f64 / 0.9).ln();
    assert!((night - want).abs() < 1e-9, "{night} vs {want}");
    assert!((recalibrate(0.1, night) - 0.3).abs() < 1e-9);
    assert!(seasons.hour(14).unwrap().logit_offset.unwrap().abs() < 1e-9);
    assert_eq!(seasons.hour(5).unwrap().logit_offset, None, "5 positives");
    assert_eq!(seasons.hour(9).unwrap().logit_offset, None, "no rows");
    // Recalibration keeps the order of scores and the ends of the scale.
    assert!(recalibrate(0.2, night) > recalibrate(0.1, night));
    assert!(recalibrate(1.0, night) <= 1.0 && recalibrate(0.0, night) >= 0.0);

    let json = serde_json::to_value(&p).unwrap();
    assert!(
        json["seasons"]["hours"][9].get("logit_offset").is_none(),
        "absent, no key"
    );
    let mut older = json.clone();
    older["format_version"] = 3.into();
    for hour in older["seasons"]["hours"].as_array_mut().unwrap() {
        hour.as_object_mut().unwrap().remove("logit_offset");
    }
    let read: ReferenceProfile = serde_json::from_value(older).unwrap();
    assert_eq!(
        read.seasons.unwrap().hour(2).unwrap().logit_offset,
        None,
        "a format-3 profile has none"
    );
}

#[test]
fn calibrating_on_other_rows_replaces_every_hours_offset() {
    // Fitted on hour 2 at 30% positives and hour 14 at 10%, both scored 0.1.
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for (hour, positives) in [(2.0, 60), (14.0, 20)] {
        for i in 0..200 {
            data.extend([f64::from(i), hour]);
            labels.push(i < positives);
        }
    }
    let scores = vec![0.1; labels.len()];
    let mut seasons = hourly_profile(&data, Some(&labels), Some(&scores))
        .seasons
        .unwrap();
    assert!(seasons.hour(14).unwrap().logit_offset.unwrap().abs() < 1e-9);
    // Over a longer history hour 14 runs at 20% and hour 2 has too few negatives; rows
    // without an hour or a score are skipped.
    let history = (0..400)
        .map(|i| (Some(14), 0.1, i < 80))
        .chain((0..100).map(|i| (Some(2), 0.1, i >= 10)))
        .chain([
            (None, 0.1, true),
            (Some(14), f64::NAN, true),
            (Some(24), 0.1, true),
        ]);
    seasons.calibrate(history, 0.5);
    let fourteen = seasons.hour(14).unwrap().logit_offset.unwrap();
    assert!((recalibrate(0.1, fourteen) - 0.2).abs() < 1e-9, "{fourteen}");
    assert_eq!(seasons.hour(2).unwrap().logit_offset, None, "10 negatives");
    assert_eq!(seasons.hour(9).unwrap().logit_offset, None, "no rows");
    assert_eq!(seasons.decision_threshold, Some(0.5));
}

#[test]
fn calibrating_by_decision_gives_each_decision_its_own_positives() {
    let data: Vec<f64> = (0..100).flat_map(|i| [f64::from(i), 3.0]).collect();
    let mut seasons = hourly_profile(&data, None, None).seasons.unwrap();
    // Hour 3: 900 approved at 0.02 of which 90 are positive (10%), 100 declined at 0.9 of
    // which 60 are positive (60%); 15 approved at hour 4, too few for any offset.
    let history = (0..900)
        .map(|i| (Some(3), 0.02, i < 90))
        .chain((0..100).map(|i| (Some(3), 0.9, i < 60)))
        .chain((0..15).map(|i| (Some(4), 0.02, i < 5)));
    seasons.calibrate(history, 0.5);
    let three = seasons.hour(3).unwrap().decision_offsets.unwrap();
    assert!((recalibrate(0.02, three.approved.unwrap()) - 0.1).abs() < 1e-9);
    assert!((recalibrate(0.9, three.declined.unwrap()) - 0.6).abs() < 1e-9);
    // The expected errors, positives among the approved and negatives among the
    // declined, add up to the hour's 90 + 40 errors; one offset for the hour does not.
    let by_decision = 900.0 * recalibrate(0.02, three.approved.unwrap())
        + 100.0 * (1.0 - recalibrate(0.9, three.declined.unwrap()));
    assert!((by_decision - 130.0).abs() < 1e-6, "{by_decision}");
    let hour = seasons.hour(3).unwrap().logit_offset.unwrap();
    let by_hour = 900.0 * recalibrate(0.02, hour) + 100.0 * (1.0 - recalibrate(0.9, hour));
    assert!((by_hour - 130.0).abs() > 10.0, "{by_hour}");
    assert_eq!(
        seasons.hour(4).unwrap().decision_offsets,
        Some(DecisionOffsets {
            approved: None,
            declined: None
        })
    );

    let json = serde_json::to_string(&seasons).unwrap();
    assert_eq!(serde_json::from_str::<Seasons>(&json).unwrap(), seasons);
}

#[test]
fn an_unknown_season_column_is_refused_by_name() {
    let params = ProfileParams {
        season_column: Some("hour".into()),
        ..ProfileParams::default()
    };
    let error = ReferenceProfile::fit_row_major(
        &names(&["x"]),
        &[ColumnKind::Numeric],
        &[1.0],
        None,
        None,
        &params,
    )
    .unwrap_err();
    assert_eq!(
        error,
        ProfileError::UnknownSeasonColumn {
            column: "hour".into()
        }
    );
}

#[test]
fn a_format_1_profile_without_seasons_still_reads() {
    let mut p = one_column(&[1.0, 2.0], ColumnKind::Numeric, &ProfileParams::default());
    let mut json: serde_json::Value = serde_json::to_value(&p).unwrap();
    json["format_version"] = 1.into();
    json["params"].as_object_mut().unwrap().remove("season_column");
    json["params"]
        .as_object_mut()
        .unwrap()
        .remove("season_sample_size");
    assert!(json.get("seasons").is_none(), "no strata, no key");
    let read: ReferenceProfile = serde_json::from_value(json).unwrap();
    p.format_version = 1;
    assert_eq!(read, p);
    assert!(READABLE_FORMATS.contains(&1));
}

#[test]
fn widening_ranges_covers_the_recent_rows_finite_values_of_numeric_columns_only() {
    let columns = names(&["amount", "country"]);
    let kinds = [ColumnKind::Numeric, ColumnKind::Categorical];
    let trained = [2.0, 1.0, 5.0, 2.0, 3.0, 1.0];
    let mut p =
        ReferenceProfile::fit_row_major(&columns, &kinds, &trained, None, None, &ProfileParams::default())
            .unwrap();
    assert_eq!(
        p.columns[0].accepted_range(),
        Some([2.0, 5.0]),
        "the rows' own range"
    );
    assert_eq!(p.columns[1].accepted_range(), None, "categories have no range");

    p.widen_ranges(&[3.0, 1.0, 4.0, 2.0]).unwrap();
    assert_eq!(
        p.columns[0].range, None,
        "recent rows inside the range leave it as it was"
    );

    p.widen_ranges(&[7.5, 9.0, f64::NAN, 1.0, f64::INFINITY, 1.0, 1.5, 1.0])
        .unwrap();
    assert_eq!(p.columns[0].accepted_range(), Some([1.5, 7.5]));
    assert_eq!(p.columns[1].range, None);
    assert_eq!(
        stats(&p, "amount").max,
        5.0,
        "the profiled rows' statistics are unchanged"
    );

    let err = p.widen_ranges(&[1.0, 2.0, 3.0]).unwrap_err();
    assert!(err.to_string().contains("3 values"), "{err}");
}

#[test]
fn a_format_5_profile_without_ranges_still_reads() {
    let mut p = one_column(&[1.0, 2.0], ColumnKind::Numeric, &ProfileParams::default());
    p.widen_ranges(&[0.0]).unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(json["columns"][0]["range"], serde_json::json!([0.0, 2.0]));
    let back: ReferenceProfile = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, p, "round trip");

    json["format_version"] = 5.into();
    json["columns"][0].as_object_mut().unwrap().remove("range");
    let read: ReferenceProfile = serde_json::from_value(json).unwrap();
    assert_eq!(read.columns[0].accepted_range(), Some([1.0, 2.0]));
    assert!(READABLE_FORMATS.contains(&5) && READABLE_FORMATS.contains(&FORMAT_VERSION));
}
