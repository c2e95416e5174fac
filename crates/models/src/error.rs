//! The error of building datasets and fitting or applying models.
//!
//! One enum for the whole fitting layer (datasets, preprocessing, estimators), so a caller
//! handles one type; every variant names what was wrong and where.

/// Why a dataset could not be built, parameters were rejected, or a model could not be fitted
/// or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A dataset without columns.
    #[error("no columns: a dataset needs at least one feature column")]
    NoColumns,
    /// A dataset without rows.
    #[error("no rows: a dataset needs at least one labelled row")]
    NoRows,
    /// The feature buffer is not `labels × columns` long.
    #[error(
        "{features} feature values for {rows} labels and {columns} columns: \
         expected {expected} (row-major, one row per label)"
    )]
    ShapeMismatch {
        /// The length of the feature buffer.
        features: usize,
        /// The number of labels (rows).
        rows: usize,
        /// The number of column names.
        columns: usize,
        /// `rows × columns`.
        expected: usize,
    },
    /// Two columns share a name.
    #[error("column {name:?} appears twice (positions {first} and {second})")]
    DuplicateColumn {
        /// The repeated name.
        name: String,
        /// Its first position.
        first: usize,
        /// Its second position.
        second: usize,
    },
    /// A feature value is infinite (NaN is allowed and means missing).
    #[error("row {row}, column {column:?} is {value}: features must be finite (NaN = missing)")]
    NonFiniteFeature {
        /// The row's position.
        row: usize,
        /// The column's name.
        column: String,
        /// The offending value.
        value: f64,
    },
    /// A row to score has the wrong number of values.
    #[error("{got} values given but the model was fitted on {expected} columns")]
    WidthMismatch {
        /// The number of columns the model expects.
        expected: usize,
        /// The number of values given.
        got: usize,
    },
    /// A parameter is out of range.
    #[error("invalid parameter {param}: {reason}")]
    InvalidParam {
        /// The parameter's field name.
        param: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The training labels are all one class, so there is nothing to separate.
    #[error("all {rows} training labels are {label}: a classifier needs both classes")]
    SingleClass {
        /// The one label present.
        label: bool,
        /// The number of rows.
        rows: usize,
    },
    /// The optimiser produced a non-finite value (a bug or extreme data; never silent).
    #[error("fitting produced a non-finite {what}: check the data for extreme values")]
    NonFinite {
        /// Which quantity was not finite.
        what: &'static str,
    },
    /// A serialised model is internally inconsistent.
    #[error("inconsistent model: {0}")]
    Inconsistent(String),
}

impl ModelError {
    /// An [`ModelError::InvalidParam`] for `param`.
    pub fn invalid_param(param: &'static str, reason: impl Into<String>) -> Self {
        ModelError::InvalidParam {
            param,
            reason: reason.into(),
        }
    }
}
