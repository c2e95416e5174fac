//! A model's stored [`ReferenceProfile`] as a reference [`Table`], so `drift report
//! --reference model:champion` compares a file with the data the model was trained on.
//!
//! Key decision: categorical columns are exact (the profile keeps every code's count);
//! numeric columns use the profile's sorted sample, which is the whole column when the
//! training set had at most `sample_size` rows and otherwise evenly spaced order
//! statistics. In the second case KS and Wasserstein are computed against that sample,
//! not the full data (KS within 1 / (2 · sample_size) of it), and Evidently's
//! 1,000-row rule sees the sample's size; [`profile_is_sampled`] says when this applies.

use std::path::PathBuf;

use driftline_core::profile::{ColumnKind, ReferenceProfile};

use crate::data::{Column, ColumnValues, Table};

/// The profile as a table named `source` (e.g. "model:fraud v3").
pub fn table_from_profile(profile: &ReferenceProfile, source: &str) -> Table {
    let columns = profile
        .columns
        .iter()
        .map(|c| {
            let values = match (c.kind, &c.categories) {
                (ColumnKind::Categorical, Some(categories)) => ColumnValues::Categorical {
                    counts: categories
                        .iter()
                        .map(|(code, n)| (code.to_string(), *n as u64))
                        .collect(),
                },
                _ => ColumnValues::Numeric {
                    sorted: c.summary.sample.clone(),
                    integer_valued: false,
                },
            };
            Column {
                name: c.name.clone(),
                values,
                missing: c.summary.missing,
            }
        })
        .collect();
    Table {
        path: PathBuf::from(source),
        rows: profile.rows,
        columns,
    }
}

/// Whether any numeric column is represented by a sample smaller than its data.
pub fn profile_is_sampled(profile: &ReferenceProfile) -> bool {
    profile
        .columns
        .iter()
        .any(|c| c.kind == ColumnKind::Numeric && c.summary.sample.len() < c.summary.count)
}

#[cfg(test)]
mod tests {
    use driftline_core::profile::ProfileParams;

    use super::*;

    #[test]
    fn categorical_codes_become_counts_and_numbers_the_sample() {
        let profile = ReferenceProfile::fit_row_major(
            &["amount".to_string(), "flag".to_string()],
            &[ColumnKind::Numeric, ColumnKind::Categorical],
            &[1.0, 0.0, 2.0, 1.0, 3.0, 1.0],
            None,
            None,
            &ProfileParams::default(),
        )
        .unwrap();
        let table = table_from_profile(&profile, "model:m v1");
        assert_eq!(table.rows, 3);
        assert!(
            matches!(&table.column("amount").unwrap().values, ColumnValues::Numeric { sorted, .. } if sorted == &[1.0, 2.0, 3.0])
        );
        assert!(
            matches!(&table.column("flag").unwrap().values, ColumnValues::Categorical { counts } if counts["1"] == 2)
        );
        assert!(!profile_is_sampled(&profile));
    }
}
