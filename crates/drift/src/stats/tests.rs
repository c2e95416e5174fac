//! Parity with scipy/numpy on the committed fixtures (`tests/fixtures/stats_expected.json`).

use serde_json::Value;

use super::*;

const STAT_TOL: f64 = 1e-9;
const P_TOL: f64 = 1e-6;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/stats_expected.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn close(actual: f64, expected: f64, tol: f64, what: &str) {
    let ok = (actual.is_nan() && expected.is_nan()) || (actual - expected).abs() <= tol;
    assert!(
        ok,
        "{what}: got {actual:e}, scipy {expected:e} (diff {:e})",
        (actual - expected).abs()
    );
}

#[test]
fn ks_2samp_matches_scipy_statistic_p_value_and_method() {
    for case in fixtures()["ks"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let result = ks_2samp(&floats(&case["a"]), &floats(&case["b"])).unwrap();
        close(
            result.statistic,
            num(&case["statistic"]),
            STAT_TOL,
            &format!("{name} statistic"),
        );
        close(
            result.p_value,
            num(&case["p_value"]),
            P_TOL,
            &format!("{name} p-value"),
        );
        let method = match result.method {
            KsMethod::Exact => "exact",
            KsMethod::Asymptotic => "asymptotic",
        };
        assert_eq!(method, case["method"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn the_forced_asymptotic_ks_matches_scipy_where_scipy_chose_it() {
    let mut compared = 0;
    for case in fixtures()["ks"].as_array().unwrap() {
        if case["method"] != "asymptotic" {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let (mut a, mut b) = (floats(&case["a"]), floats(&case["b"]));
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let result = ks_2samp_sorted_asymptotic(&a, &b).unwrap();
        close(result.statistic, num(&case["statistic"]), STAT_TOL, name);
        close(result.p_value, num(&case["p_value"]), P_TOL, name);
        assert_eq!(result.method, KsMethod::Asymptotic);
        compared += 1;
    }
    assert!(compared >= 5, "{compared}");
}

#[test]
fn kolmogorov_sf_matches_scipy_kstwo_in_every_algorithm_region() {
    for case in fixtures()["kstwo_sf"].as_array().unwrap() {
        let (n, d) = (case["n"].as_u64().unwrap(), num(&case["d"]));
        close(
            kolmogorov::kolmogorov_sf(n, d),
            num(&case["sf"]),
            P_TOL,
            &format!("kstwo.sf({d}, {n})"),
        );
    }
}

#[test]
fn chisquare_matches_scipy() {
    for case in fixtures()["chisquare"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let result = chisquare(&floats(&case["observed"]), &floats(&case["expected"])).unwrap();
        close(result.statistic, num(&case["statistic"]), STAT_TOL, name);
        close(result.p_value, num(&case["p_value"]), P_TOL, name);
    }
}

#[test]
fn jensen_shannon_matches_scipy() {
    for case in fixtures()["jensenshannon"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let base = case["base"].as_f64();
        let d = jensen_shannon_distance(&floats(&case["p"]), &floats(&case["q"]), base).unwrap();
        close(d, num(&case["distance"]), STAT_TOL, name);
    }
}

#[test]
fn wasserstein_and_its_normalised_form_match_scipy() {
    for case in fixtures()["wasserstein"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (u, v) = (floats(&case["u"]), floats(&case["v"]));
        close(
            wasserstein_distance(&u, &v).unwrap(),
            num(&case["distance"]),
            STAT_TOL,
            name,
        );
        close(
            wasserstein_distance_norm(&u, &v).unwrap(),
            num(&case["normed"]),
            STAT_TOL,
            name,
        );
    }
}

#[test]
fn sturges_edges_and_histogram_counts_match_numpy() {
    for case in fixtures()["sturges"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let x = floats(&case["x"]);
        let (min, max) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
        let edges = binning::sturges_edges(min, max, x.len(), false);
        let expected = floats(&case["edges"]);
        assert_eq!(edges.len(), expected.len(), "{name}");
        for (a, e) in edges.iter().zip(&expected) {
            close(*a, *e, 1e-12, name);
        }
        let counts: Vec<u64> = case["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(binning::histogram(&x, &expected), counts, "{name}");
    }
}

#[test]
fn ks_rejects_empty_samples() {
    assert!(matches!(ks_2samp(&[], &[1.0]), Err(StatsError::Empty { .. })));
}

#[test]
fn z_test_is_nan_when_both_samples_hold_one_value() {
    assert!(proportions_z_test(0, 10, 0, 12).unwrap().p_value.is_nan());
}
