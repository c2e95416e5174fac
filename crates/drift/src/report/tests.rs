use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::data::Column;
use crate::selection::ColumnOverride;

fn table(name: &str, columns: Vec<(&str, ColumnValues)>) -> Table {
    let rows = columns.first().map(|(_, v)| v.len()).unwrap_or(0);
    Table {
        path: PathBuf::from(name),
        rows,
        columns: columns
            .into_iter()
            .map(|(n, values)| Column {
                name: n.into(),
                values,
                missing: 0,
            })
            .collect(),
    }
}

fn numeric(values: impl IntoIterator<Item = f64>) -> ColumnValues {
    let mut sorted: Vec<f64> = values.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    ColumnValues::Numeric {
        sorted,
        integer_valued: false,
    }
}

fn categories(pairs: &[(&str, u64)]) -> ColumnValues {
    ColumnValues::Categorical {
        counts: pairs
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[test]
fn shifted_columns_drift_and_the_dataset_verdict_uses_the_share() {
    let reference = table(
        "ref",
        vec![
            ("x", numeric((0..500).map(|i| f64::from(i) / 500.0))),
            ("y", numeric((0..500).map(|i| f64::from(i % 50)))),
            ("c", categories(&[("a", 250), ("b", 250)])),
        ],
    );
    let current = table(
        "cur",
        vec![
            ("x", numeric((0..500).map(|i| f64::from(i) / 500.0 + 0.5))),
            ("y", numeric((0..500).map(|i| f64::from(i % 50)))),
            ("c", categories(&[("a", 250), ("b", 250)])),
        ],
    );
    let report = DriftReport::build(
        &reference,
        &current,
        &ColumnSelection::default(),
        &DriftConfig::default(),
    )
    .unwrap();
    assert_eq!(report.dataset.columns, 3);
    assert_eq!(report.dataset.drifted_columns, 1);
    assert!(!report.dataset.drifted);
    let x = &report.columns[0];
    assert_eq!((x.test, x.drifted), (StatTest::Ks, true));
    let again = DriftReport::from_json(&report.to_json()).unwrap();
    assert_eq!(again, report);
}

#[test]
fn identifiers_and_excluded_fields_are_skipped_unless_asked_for() {
    let ids: Vec<(String, u64)> = (0..60).map(|i| (format!("id-{i}"), 1)).collect();
    let id_counts = ColumnValues::Categorical {
        counts: ids.into_iter().collect(),
    };
    let x = numeric((0..60).map(f64::from));
    let reference = table(
        "ref",
        vec![("id", id_counts.clone()), ("x", x.clone()), ("label", x.clone())],
    );
    let current = table("cur", vec![("id", id_counts), ("x", x.clone()), ("label", x)]);
    let selection = ColumnSelection {
        only: None,
        excluded: vec!["label".into()],
    };
    let report = DriftReport::build(&reference, &current, &selection, &DriftConfig::default()).unwrap();
    let names: Vec<&str> = report.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["x"]);
    assert_eq!(report.skipped[0].name, "id");
    let only = ColumnSelection {
        only: Some(vec!["label".into()]),
        excluded: vec!["label".into()],
    };
    let report = DriftReport::build(&reference, &current, &only, &DriftConfig::default()).unwrap();
    assert_eq!(report.columns[0].name, "label");
}

#[test]
fn a_selected_column_missing_from_a_file_is_an_error_naming_it() {
    let reference = table("ref", vec![("x", numeric([1.0, 2.0]))]);
    let current = table("cur", vec![("x", numeric([1.0, 2.0]))]);
    let only = ColumnSelection {
        only: Some(vec!["nope".into()]),
        excluded: vec![],
    };
    let error = DriftReport::build(&reference, &current, &only, &DriftConfig::default()).unwrap_err();
    assert!(error.to_string().contains("'nope'"), "{error}");
}

#[test]
fn html_is_self_contained_and_histograms_stay_bounded() {
    let many: Vec<(String, u64)> = (0..500).map(|i| (format!("v{i}"), 2)).collect();
    let cats = ColumnValues::Categorical {
        counts: many.into_iter().collect(),
    };
    let x = numeric((0..100_000).map(|i| f64::from(i % 977)));
    let reference = table("ref", vec![("c", cats.clone()), ("x", x.clone())]);
    let current = table("cur", vec![("c", cats), ("x", x)]);
    let report = DriftReport::build(
        &reference,
        &current,
        &ColumnSelection::default(),
        &DriftConfig::default(),
    )
    .unwrap();
    for c in &report.columns {
        match &c.histogram {
            Histogram::Numeric { reference, .. } => assert_eq!(reference.len(), HISTOGRAM_BINS),
            Histogram::Categorical { labels, .. } => assert_eq!(labels.len(), TOP_CATEGORIES + 1),
        }
    }
    let html = report.to_html();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
    assert!(html.len() < 100_000, "{} bytes", html.len());
}

fn integers(values: impl IntoIterator<Item = i32>) -> ColumnValues {
    let mut sorted: Vec<f64> = values.into_iter().map(f64::from).collect();
    sorted.sort_by(f64::total_cmp);
    ColumnValues::Numeric {
        sorted,
        integer_valued: true,
    }
}

fn only_column(reference: ColumnValues, current: ColumnValues, config: &DriftConfig) -> DriftReport {
    DriftReport::build(
        &table("ref", vec![("x", reference)]),
        &table("cur", vec![("x", current)]),
        &ColumnSelection::default(),
        config,
    )
    .unwrap()
}

/// Evidently types a column by the current data as pandas reads it: an int64 column of at
/// most 10 distinct values is categorical (chi-square, or Jensen–Shannon above 1,000
/// reference rows), a float column of as few values numeric (KS).
#[test]
fn integers_with_at_most_ten_current_values_are_categories_as_in_evidently() {
    let config = DriftConfig::default();
    let tested = |reference, current| {
        let report = only_column(reference, current, &config);
        let c = &report.columns[0];
        (c.column_type, c.test)
    };
    let categorical_chi = (ColumnType::Categorical, StatTest::ChiSquare);
    assert_eq!(
        tested(
            integers((0..500).map(|i| i % 10)),
            integers((0..500).map(|i| i % 10))
        ),
        categorical_chi
    );
    assert_eq!(
        tested(
            integers((0..500).map(|i| i % 11)),
            integers((0..500).map(|i| i % 11))
        ),
        (ColumnType::Numeric, StatTest::Ks),
        "eleven distinct values are numbers"
    );
    assert_eq!(
        tested(
            numeric((0..500).map(|i| f64::from(i % 7))),
            integers((0..500).map(|i| i % 7))
        ),
        categorical_chi,
        "the current side decides"
    );
    assert_eq!(
        tested(
            integers((0..500).map(|i| i % 7)),
            numeric((0..500).map(|i| f64::from(i % 7)))
        ),
        (ColumnType::Numeric, StatTest::Ks),
        "floats (pandas: a missing cell, or a decimal point) are numbers however few"
    );
    assert_eq!(
        tested(
            integers((0..1500).map(|i| i % 8)),
            integers((0..500).map(|i| i % 8))
        ),
        (ColumnType::Categorical, StatTest::JensenShannon)
    );
    let mut ks = DriftConfig::default();
    ks.columns.insert(
        "x".into(),
        ColumnOverride {
            test: Some(StatTest::Ks),
            threshold: None,
        },
    );
    let report = only_column(
        integers((0..500).map(|i| i % 8)),
        integers((0..500).map(|i| i % 8)),
        &ks,
    );
    assert_eq!(
        report.columns[0].test,
        StatTest::Ks,
        "a configured KS keeps the numbers"
    );
}

/// More distinct current values than half its values is free text to Evidently, which
/// trains a classifier on it; driftline says so and skips it, unless asked for it or the
/// sample is too small to tell text from categories.
#[test]
fn free_text_is_skipped_with_the_reason_unless_named_configured_or_few() {
    let words: Vec<(String, u64)> = (0..60).map(|i| (format!("word {i}"), 1 + i % 2)).collect();
    let text = ColumnValues::Categorical {
        counts: words.into_iter().collect(),
    };
    let few = categories(&[("a", 20), ("b", 20), ("c", 5)]);
    let y = numeric((0..45).map(f64::from));
    let report = DriftReport::build(
        &table("ref", vec![("x", few.clone()), ("y", y.clone())]),
        &table("cur", vec![("x", text.clone()), ("y", y)]),
        &ColumnSelection::default(),
        &DriftConfig::default(),
    )
    .unwrap();
    assert_eq!(report.columns.len(), 1);
    assert_eq!(report.skipped[0].name, "x");
    assert!(
        report.skipped[0].reason.starts_with("free text"),
        "{:?}",
        report.skipped
    );
    assert_eq!(report.dataset.columns, 1, "a skipped column is not in the share");

    let small = categories(&[("US", 1), ("GB", 1), ("DE", 1), ("FR", 1), ("CA", 1)]);
    let report = only_column(few.clone(), small, &DriftConfig::default());
    assert_eq!(
        report.columns[0].test,
        StatTest::ChiSquare,
        "five events from five countries are categories"
    );

    let named = ColumnSelection {
        only: Some(vec!["x".into()]),
        excluded: vec![],
    };
    let report = DriftReport::build(
        &table("ref", vec![("x", few.clone())]),
        &table("cur", vec![("x", text.clone())]),
        &named,
        &DriftConfig::default(),
    )
    .unwrap();
    assert_eq!(report.columns[0].test, StatTest::ChiSquare);
    let mut chosen = DriftConfig::default();
    chosen.columns.insert(
        "x".into(),
        ColumnOverride {
            test: Some(StatTest::JensenShannon),
            threshold: None,
        },
    );
    assert_eq!(
        only_column(few.clone(), text.clone(), &chosen).columns[0].test,
        StatTest::JensenShannon
    );
    let mut threshold_only = DriftConfig::default();
    threshold_only.columns.insert(
        "x".into(),
        ColumnOverride {
            test: None,
            threshold: Some(0.01),
        },
    );
    let x = &only_column(few, text, &threshold_only).columns[0];
    assert_eq!(
        (x.test, x.threshold),
        (StatTest::ChiSquare, 0.01),
        "configured, so tested"
    );
}
