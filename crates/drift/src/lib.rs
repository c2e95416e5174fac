//! driftline-drift: batch data-drift detection with the verdicts of Evidently's data-drift
//! preset, computed exactly and fast; a streaming monitor of live traffic against a
//! model's reference profile; concept-drift detectors on its error stream.
//!
//! Key decision: three layers that can each be tested alone. [`stats`] is scipy-parity
//! mathematics on slices; [`stattest`] applies one named test to a reference/current
//! column pair exactly as Evidently bins and compares it; [`selection`] picks the test
//! and threshold per column (Evidently's defaults, overridable) and [`report`] turns the
//! verdicts into JSON and a self-contained HTML page. Reading files lives in [`data`];
//! a model's stored reference profile becomes a reference table in [`profile`]. The
//! streaming [`monitor`] windows live feature vectors and scores and judges them with the
//! same [`stattest`] functions; [`concept`] ports river's ADWIN, Page–Hinkley and DDM.

pub mod concept;
pub mod data;
pub mod monitor;
pub mod profile;
pub mod report;
pub mod selection;
pub mod stats;
pub mod stattest;

pub use concept::{ConceptMonitor, ConceptSnapshot, DetectorState};
pub use data::{Column, ColumnValues, ReadOptions, Table};
pub use monitor::{MonitorConfig, MonitorSnapshot, StreamMonitor};
pub use report::{ColumnDrift, DatasetDrift, DriftReport};
pub use selection::{ColumnOverride, DriftConfig};
pub use stattest::{ColumnType, StatTest};

/// Anything that can go wrong producing a drift report.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("column '{column}': {source}")]
    Stats {
        column: String,
        source: stats::StatsError,
    },
    #[error("{0}")]
    Config(String),
    #[error("no columns to compare: {0}")]
    NoColumns(String),
}
