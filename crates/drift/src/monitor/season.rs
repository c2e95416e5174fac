//! The seasonal reference of one evaluation: each column's reference is the mixture of the
//! profile's hour-of-day strata weighted by the hours the window covers, so a window of
//! night traffic is compared with the reference period's nights.
//!
//! Key decision: the mixture is materialised as an ordinary reference sample, so every
//! configured test (KS, Wasserstein, chi-square, Jensen–Shannon, PSI, Hellinger) runs on it
//! unchanged. Numbers become the mixture's quantile function at `n` evenly spaced levels
//! (the midpoints, as the profile samples its columns), categories become the mixture's
//! shares times `n`, where `n` is the mixture's effective size `1 / Σ w_h² / m_h` (`w_h`
//! the window's share of hour `h`, `m_h` the reference rows of that hour): a p-value
//! computed against the materialised sample then accounts for how few reference rows a
//! quiet hour has. Hours with fewer than [`MIN_STRATUM_ROWS`] reference values, and window
//! rows without a valid hour, are compared with the whole reference instead.

use std::collections::BTreeMap;

use driftline_core::profile::{HOURS, StratumColumn, hour_of};

use crate::data::ColumnValues;

/// A stratum with fewer non-missing values than this stands in for none: its hour is
/// compared with the whole reference.
pub const MIN_STRATUM_ROWS: usize = 50;

/// The largest materialised mixture: beyond it the reference's sampling error is
/// negligible beside the window's.
pub const MAX_MIXTURE_SIZE: usize = 20_000;

/// The window's composition by hour of day.
#[derive(Debug, Clone, PartialEq)]
pub struct HourMix {
    /// Window rows per hour.
    pub rows: [u64; HOURS],
    /// Window rows without a valid hour.
    pub unassigned: u64,
}

impl HourMix {
    /// Counts the hours of a window's season column (NaN or not an hour: unassigned).
    pub fn of(hours: impl Iterator<Item = f64>) -> Self {
        let mut mix = HourMix {
            rows: [0; HOURS],
            unassigned: 0,
        };
        for h in hours {
            match hour_of(h) {
                Some(h) => mix.rows[h] += 1,
                None => mix.unassigned += 1,
            }
        }
        mix
    }

    fn total(&self) -> u64 {
        self.rows.iter().sum::<u64>() + self.unassigned
    }
}

/// One column's hour strata, as the monitor keeps them.
#[derive(Debug, Clone)]
pub struct ColumnStrata {
    /// Index = hour; `None` where the stratum is too small to stand alone.
    hours: Vec<Option<Stratum>>,
    /// Index = hour: the share of missing values, where the hour has at least
    /// [`MIN_STRATUM_ROWS`] rows.
    missing_rates: Vec<Option<f64>>,
}

#[derive(Debug, Clone)]
enum Stratum {
    /// Ascending order statistics of `count` values.
    Numeric { sample: Vec<f64>, count: usize },
    /// Code -> count, `count` in total.
    Categorical {
        counts: BTreeMap<i64, usize>,
        count: usize,
    },
}

impl Stratum {
    fn count(&self) -> usize {
        match self {
            Stratum::Numeric { count, .. } | Stratum::Categorical { count, .. } => *count,
        }
    }
}

/// One part of a mixture: a stratum or the whole reference, and its weight.
struct Component<'a> {
    weight: f64,
    /// Reference values it stands for (its sampling error).
    count: usize,
    values: Part<'a>,
}

enum Part<'a> {
    Sorted(&'a [f64]),
    Codes(&'a BTreeMap<i64, usize>),
    Labels(&'a BTreeMap<String, u64>),
}

impl ColumnStrata {
    /// The strata of one column (`strata` in hour order, one per hour).
    pub fn new<'a>(strata: impl Iterator<Item = &'a StratumColumn> + Clone) -> Self {
        let missing_rates = strata
            .clone()
            .map(|s| {
                let rows = s.count + s.missing;
                (rows >= MIN_STRATUM_ROWS).then(|| s.missing as f64 / rows as f64)
            })
            .collect();
        let hours = strata
            .map(|s| {
                (s.count >= MIN_STRATUM_ROWS).then(|| match &s.categories {
                    Some(counts) => Stratum::Categorical {
                        counts: counts.clone(),
                        count: s.count,
                    },
                    None => Stratum::Numeric {
                        sample: s.sample.clone(),
                        count: s.count,
                    },
                })
            })
            .collect();
        ColumnStrata { hours, missing_rates }
    }

    /// The reference's share of missing values over the hours of `mix` (the whole
    /// reference's `whole` for hours without a stratum and rows without an hour): some
    /// features are missing by nature more often at night (a 1 h mean with no event).
    pub fn missing_rate(&self, mix: &HourMix, whole: f64) -> f64 {
        let total = mix.total();
        if total == 0 {
            return whole;
        }
        let rows = mix.rows.iter().enumerate().map(|(hour, &rows)| {
            let rate = self.missing_rates.get(hour).copied().flatten().unwrap_or(whole);
            rows as f64 * rate
        });
        (rows.sum::<f64>() + mix.unassigned as f64 * whole) / total as f64
    }

    /// The reference for a window of composition `mix`: the hour-matched mixture, or
    /// `None` when only the whole reference applies (`whole`, `whole_count` values).
    pub fn mixture(&self, mix: &HourMix, whole: &ColumnValues, whole_count: usize) -> Option<ColumnValues> {
        let total = mix.total();
        if total == 0 {
            return None;
        }
        let mut whole_weight = mix.unassigned as f64 / total as f64;
        let mut components = Vec::new();
        for (hour, &rows) in mix.rows.iter().enumerate() {
            if rows == 0 {
                continue;
            }
            let weight = rows as f64 / total as f64;
            match self.hours.get(hour).and_then(Option::as_ref) {
                Some(stratum) => components.push(Component {
                    weight,
                    count: stratum.count(),
                    values: match stratum {
                        Stratum::Numeric { sample, .. } => Part::Sorted(sample),
                        Stratum::Categorical { counts, .. } => Part::Codes(counts),
                    },
                }),
                None => whole_weight += weight,
            }
        }
        if components.is_empty() {
            return None;
        }
        if whole_weight > 0.0 {
            components.push(Component {
                weight: whole_weight,
                count: whole_count.max(1),
                values: match whole {
                    ColumnValues::Numeric { sorted, .. } => Part::Sorted(sorted),
                    ColumnValues::Categorical { counts } => Part::Labels(counts),
                },
            });
        }
        let size = effective_size(&components);
        Some(match whole {
            ColumnValues::Numeric { .. } => ColumnValues::Numeric {
                sorted: quantile_sample(&components, size),
                integer_valued: false,
            },
            ColumnValues::Categorical { .. } => ColumnValues::Categorical {
                counts: category_counts(&components, size),
            },
        })
    }
}

/// `1 / Σ w² / m`, the size of a simple sample as precise as the mixture, within
/// [1, MAX_MIXTURE_SIZE].
fn effective_size(components: &[Component<'_>]) -> usize {
    let inverse: f64 = components
        .iter()
        .map(|c| c.weight * c.weight / c.count as f64)
        .sum();
    ((1.0 / inverse).round() as usize).clamp(1, MAX_MIXTURE_SIZE)
}

/// The mixture's quantile function at the midpoints of `size` equal slices.
fn quantile_sample(components: &[Component<'_>], size: usize) -> Vec<f64> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for c in components {
        let Part::Sorted(sorted) = c.values else {
            continue;
        };
        if sorted.is_empty() {
            continue;
        }
        let each = c.weight / sorted.len() as f64;
        points.extend(sorted.iter().map(|&v| (v, each)));
    }
    if points.is_empty() {
        return Vec::new();
    }
    points.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = points.iter().map(|p| p.1).sum();
    let mut sample = Vec::with_capacity(size);
    let (mut at, mut cumulative) = (0, points[0].1);
    for i in 0..size {
        let level = (i as f64 + 0.5) / size as f64 * total;
        while cumulative < level && at + 1 < points.len() {
            at += 1;
            cumulative += points[at].1;
        }
        sample.push(points[at].0);
    }
    sample
}

/// The mixture's category shares times `size`, rounded (codes written as the profile's
/// counts are: the code's decimal text).
fn category_counts(components: &[Component<'_>], size: usize) -> BTreeMap<String, u64> {
    let mut shares: BTreeMap<String, f64> = BTreeMap::new();
    for c in components {
        let mut add = |label: String, n: f64, total: f64| {
            if total > 0.0 {
                *shares.entry(label).or_default() += c.weight * n / total;
            }
        };
        match c.values {
            Part::Codes(counts) => {
                let total = counts.values().sum::<usize>() as f64;
                for (code, &n) in counts {
                    add(code.to_string(), n as f64, total);
                }
            }
            Part::Labels(counts) => {
                let total = counts.values().sum::<u64>() as f64;
                for (label, &n) in counts {
                    add(label.clone(), n as f64, total);
                }
            }
            Part::Sorted(_) => {}
        }
    }
    shares
        .into_iter()
        .map(|(label, share)| (label, (share * size as f64).round() as u64))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(values: &[f64]) -> StratumColumn {
        StratumColumn {
            count: values.len(),
            missing: 0,
            sample: values.to_vec(),
            categories: None,
        }
    }

    #[test]
    fn a_window_of_one_hour_is_compared_with_that_hour_only() {
        let night: Vec<f64> = (0..100).map(|i| 100.0 + f64::from(i)).collect();
        let day: Vec<f64> = (0..100).map(f64::from).collect();
        let mut columns = vec![numeric(&day); HOURS];
        columns[3] = numeric(&night);
        let strata = ColumnStrata::new(columns.iter());
        let whole = ColumnValues::Numeric {
            sorted: day.clone(),
            integer_valued: false,
        };
        let mix = HourMix::of(std::iter::repeat_n(3.0, 10));
        let Some(ColumnValues::Numeric { sorted, .. }) = strata.mixture(&mix, &whole, 2400) else {
            panic!("a numeric mixture")
        };
        assert_eq!(sorted.len(), 100, "effective size: one stratum of 100 rows");
        assert_eq!(sorted, night);
    }

    #[test]
    fn hours_split_the_mixture_by_the_window_share_and_small_strata_use_the_whole() {
        let low = numeric(&vec![0.0; 100]);
        let high = numeric(&vec![1.0; 100]);
        let tiny = numeric(&[5.0; 10]);
        let mut columns = vec![low.clone(); HOURS];
        columns[1] = high;
        columns[2] = tiny;
        let strata = ColumnStrata::new(columns.iter());
        let whole = ColumnValues::Numeric {
            sorted: vec![7.0; 10],
            integer_valued: false,
        };
        // A quarter at hour 0 (zeros), half at 1 (ones), a quarter at hour 2 (too few
        // reference rows: the whole reference, sevens).
        let hours = [0.0, 1.0, 1.0, 2.0];
        let mix = HourMix::of(hours.iter().copied());
        let Some(ColumnValues::Numeric { sorted, .. }) = strata.mixture(&mix, &whole, 1_000_000) else {
            panic!("a numeric mixture")
        };
        let share = |v: f64| sorted.iter().filter(|&&x| x == v).count() as f64 / sorted.len() as f64;
        assert!((share(0.0) - 0.25).abs() < 0.01, "{}", share(0.0));
        assert!((share(1.0) - 0.5).abs() < 0.01, "{}", share(1.0));
        assert!((share(7.0) - 0.25).abs() < 0.01, "{}", share(7.0));
        // 1 / (0.25²/100 + 0.5²/100 + 0.25²/1e6) ≈ 320.
        assert!((318..=322).contains(&sorted.len()), "{}", sorted.len());
    }

    #[test]
    fn categories_mix_by_share_and_rows_without_an_hour_use_the_whole() {
        let stratum = StratumColumn {
            count: 100,
            missing: 0,
            sample: Vec::new(),
            categories: Some([(0, 100)].into_iter().collect()),
        };
        let columns = vec![stratum; HOURS];
        let strata = ColumnStrata::new(columns.iter());
        let whole = ColumnValues::Categorical {
            counts: [("1".to_string(), 50)].into_iter().collect(),
        };
        let mix = HourMix::of([5.0, f64::NAN].into_iter());
        assert_eq!(mix.unassigned, 1);
        let Some(ColumnValues::Categorical { counts }) = strata.mixture(&mix, &whole, 50) else {
            panic!("a categorical mixture")
        };
        assert_eq!(counts["0"], counts["1"]);
    }

    #[test]
    fn a_window_without_hours_has_no_mixture() {
        let strata = ColumnStrata::new(vec![numeric(&[1.0; 60]); HOURS].iter());
        let whole = ColumnValues::Numeric {
            sorted: vec![1.0],
            integer_valued: false,
        };
        assert!(
            strata
                .mixture(&HourMix::of([f64::NAN].into_iter()), &whole, 1)
                .is_none()
        );
    }
}
