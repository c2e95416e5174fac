//! Declarative feature definitions (`[features]` in `driftline.toml`) and the column
//! layout of the vectors they produce.
//!
//! Key decision: the checked [`FeatureSpec`] fixes one column order, used by serving,
//! training sets and models alike, so a vector is a plain `Vec<f64>` (NaN = missing)
//! whose meaning never depends on who computed it.

use serde::{Deserialize, Serialize};

use crate::contract::{Contract, FieldKind};
use crate::time::Span;

/// `[features]`: what is computed per entity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    /// How far behind an entity's latest event another of its events may arrive and still
    /// be applied in event-time order; later ones are dead-lettered as late.
    pub allowed_lateness: Span,
    /// Memory bound: at most this many recent events are kept per entity. Windows of very
    /// busy entities are computed over their most recent events only.
    pub max_events_per_entity: usize,
    /// Windowed aggregations of event fields.
    pub aggregations: Vec<AggregationConfig>,
    /// Features derived from the entity's history and the current event.
    pub derived: Vec<DerivedConfig>,
    /// Features taken from the current event itself.
    pub request: Vec<RequestConfig>,
}

/// One `[[features.aggregations]]` entry: every function over every window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AggregationConfig {
    /// A data field of the contract.
    pub field: String,
    /// Any of count, sum, mean, std, min, max, last, distinct_count.
    pub functions: Vec<AggFunction>,
    /// Event-time windows ending at the event, such as "1h", "24h", "7d".
    pub windows: Vec<Span>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AggFunction {
    /// Events in the window with the field present.
    Count,
    Sum,
    Mean,
    /// Population standard deviation (0 for one value).
    Std,
    Min,
    Max,
    /// The value of the latest event in the window.
    Last,
    /// Number of different values (categories) in the window.
    DistinctCount,
}

impl AggFunction {
    pub fn name(self) -> &'static str {
        match self {
            AggFunction::Count => "count",
            AggFunction::Sum => "sum",
            AggFunction::Mean => "mean",
            AggFunction::Std => "std",
            AggFunction::Min => "min",
            AggFunction::Max => "max",
            AggFunction::Last => "last",
            AggFunction::DistinctCount => "distinct_count",
        }
    }

    fn numeric_only(self) -> bool {
        !matches!(self, AggFunction::Count | AggFunction::DistinctCount)
    }
}

/// One `[[features.derived]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DerivedConfig {
    /// `zscore` (the event's value against the entity's history over `window`),
    /// `seconds_since_last` (since the entity's previous event) or `changed` (1 when
    /// `field` differs from the previous event's value, else 0).
    #[serde(rename = "type")]
    pub kind: DerivedKind,
    /// The data field (zscore, changed).
    #[serde(default)]
    pub field: Option<String>,
    /// History window (zscore).
    #[serde(default)]
    pub window: Option<Span>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DerivedKind {
    Zscore,
    SecondsSinceLast,
    Changed,
}

/// One `[[features.request]]` entry: a value of the current event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// A data field (floats pass through, categories become their code, which models
    /// one-hot encode) or the
    /// timestamp field with `transform = "hour_of_day"`.
    pub field: String,
    #[serde(default)]
    pub transform: Option<RequestTransform>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RequestTransform {
    /// The UTC hour (0..=23) of the event time.
    HourOfDay,
}

impl Default for FeaturesConfig {
    /// The fraud demo's features.
    fn default() -> Self {
        let windows = |ws: &[&str]| {
            ws.iter()
                .map(|w| w.parse().expect("valid span"))
                .collect::<Vec<Span>>()
        };
        let derived = |kind, field: Option<&str>, window: Option<&str>| DerivedConfig {
            kind,
            field: field.map(Into::into),
            window: window.map(|w| w.parse().expect("valid span")),
        };
        let request = |field: &str, transform| RequestConfig {
            field: field.into(),
            transform,
        };
        use AggFunction::*;
        Self {
            allowed_lateness: Span::from_seconds(600),
            max_events_per_entity: 2048,
            aggregations: vec![
                AggregationConfig {
                    field: "transaction_amount".into(),
                    functions: vec![Count, Sum, Mean, Std, Max],
                    windows: windows(&["1h", "24h", "7d"]),
                },
                AggregationConfig {
                    field: "country".into(),
                    functions: vec![DistinctCount],
                    windows: windows(&["24h", "7d"]),
                },
                AggregationConfig {
                    field: "device".into(),
                    functions: vec![DistinctCount],
                    windows: windows(&["24h", "7d"]),
                },
            ],
            derived: vec![
                derived(DerivedKind::Zscore, Some("transaction_amount"), Some("30d")),
                derived(DerivedKind::SecondsSinceLast, None, None),
                derived(DerivedKind::Changed, Some("country"), None),
                derived(DerivedKind::Changed, Some("device"), None),
            ],
            request: vec![
                request("transaction_amount", None),
                request("country", None),
                request("device", None),
                request("event_ts", Some(RequestTransform::HourOfDay)),
            ],
        }
    }
}

/// What one column of a feature vector holds.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureKind {
    Aggregate {
        field: usize,
        function: AggFunction,
        window: Span,
    },
    Zscore {
        field: usize,
        window: Span,
    },
    SecondsSinceLast,
    Changed {
        field: usize,
    },
    RequestNumber {
        field: usize,
    },
    /// The request's category as its position in the contract's `values` list
    /// (`0.0, 1.0, ...`); the model one-hot encodes it.
    RequestCategory {
        field: usize,
    },
    HourOfDay,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: FeatureKind,
}

/// The checked feature definitions: the column layout plus what state must be kept.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    pub columns: Vec<Column>,
    pub allowed_lateness: Span,
    pub max_events_per_entity: usize,
    /// How much event time of history each entity keeps: the longest window plus the
    /// allowed lateness, so a late event still sees its whole window.
    pub retention: Span,
}

impl FeatureSpec {
    /// Checks `[features]` against the contract; errors name the offending key.
    pub fn new(config: &FeaturesConfig, contract: &Contract) -> Result<Self, String> {
        if config.max_events_per_entity == 0 {
            return Err("features.max_events_per_entity must be at least 1".into());
        }
        let mut columns = Vec::new();
        let mut longest = Span::ZERO;
        for (i, agg) in config.aggregations.iter().enumerate() {
            let at = format!("features.aggregations[{i}]");
            let field = data_field(contract, &agg.field, &at)?;
            let is_category = matches!(contract.fields()[field].kind, FieldKind::Category { .. });
            if agg.windows.is_empty() || agg.functions.is_empty() {
                return Err(format!("{at}: needs at least one function and one window"));
            }
            for window in &agg.windows {
                if window.micros() <= 0 {
                    return Err(format!("{at}.windows: windows must be longer than zero"));
                }
                longest = longest.max(*window);
                for function in &agg.functions {
                    if *function == AggFunction::DistinctCount && !is_category {
                        return Err(format!(
                            "{at}: distinct_count applies to category fields; '{}' is a float field",
                            agg.field
                        ));
                    }
                    if *function == AggFunction::DistinctCount && category_count(contract, field) > 64 {
                        return Err(format!(
                            "{at}: distinct_count supports fields of at most 64 categories; '{}' has {}",
                            agg.field,
                            category_count(contract, field)
                        ));
                    }
                    if is_category && function.numeric_only() {
                        return Err(format!(
                            "{at}: '{}' is a category field; only count and distinct_count apply, not {}",
                            agg.field,
                            function.name()
                        ));
                    }
                    columns.push(Column {
                        name: format!("{}_{}_{window}", agg.field, function.name()),
                        kind: FeatureKind::Aggregate {
                            field,
                            function: *function,
                            window: *window,
                        },
                    });
                }
            }
        }
        for (i, derived) in config.derived.iter().enumerate() {
            let at = format!("features.derived[{i}]");
            let column = derived_column(derived, contract, &at)?;
            if let FeatureKind::Zscore { window, .. } = column.kind {
                longest = longest.max(window);
            }
            columns.push(column);
        }
        for (i, request) in config.request.iter().enumerate() {
            columns.extend(request_columns(
                request,
                contract,
                &format!("features.request[{i}]"),
            )?);
        }
        for (i, column) in columns.iter().enumerate() {
            if columns[..i].iter().any(|c| c.name == column.name) {
                return Err(format!("features: column '{}' is defined twice", column.name));
            }
        }
        Ok(Self {
            columns,
            allowed_lateness: config.allowed_lateness,
            max_events_per_entity: config.max_events_per_entity,
            retention: Span(longest.micros() + config.allowed_lateness.micros()),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The first hour-of-day column (UTC hour of the event time), the key of a seasonal
    /// reference profile.
    pub fn hour_of_day_column(&self) -> Option<&str> {
        self.columns
            .iter()
            .find(|c| c.kind == FeatureKind::HourOfDay)
            .map(|c| c.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// A stable fingerprint of the column layout, recorded with training sets and models.
    pub fn fingerprint(&self) -> String {
        let mut text = String::new();
        for c in &self.columns {
            text.push_str(&format!("{}={:?};", c.name, c.kind));
        }
        text.push_str(&format!(
            "lateness={};cap={}",
            self.allowed_lateness, self.max_events_per_entity
        ));
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }
}

fn category_count(contract: &Contract, field: usize) -> usize {
    match &contract.fields()[field].kind {
        FieldKind::Category { values } => values.len(),
        FieldKind::Float { .. } => 0,
    }
}

fn data_field(contract: &Contract, name: &str, at: &str) -> Result<usize, String> {
    contract.field_index(name).ok_or_else(|| {
        let known: Vec<&str> = contract.fields().iter().map(|f| f.name.as_str()).collect();
        format!(
            "{at}.field: '{name}' is not a data field of the contract (known: {})",
            known.join(", ")
        )
    })
}

fn derived_column(derived: &DerivedConfig, contract: &Contract, at: &str) -> Result<Column, String> {
    let field = |what: &str| -> Result<usize, String> {
        let name = derived
            .field
            .as_deref()
            .ok_or_else(|| format!("{at}: {what} needs `field`"))?;
        data_field(contract, name, at)
    };
    let field_name = derived.field.as_deref().unwrap_or_default();
    match derived.kind {
        DerivedKind::Zscore => {
            let index = field("zscore")?;
            if !matches!(contract.fields()[index].kind, FieldKind::Float { .. }) {
                return Err(format!("{at}: zscore needs a float field, '{field_name}' is not"));
            }
            let window = derived
                .window
                .filter(|w| w.micros() > 0)
                .ok_or_else(|| format!("{at}: zscore needs a history `window` such as \"30d\""))?;
            Ok(Column {
                name: format!("{field_name}_zscore_{window}"),
                kind: FeatureKind::Zscore { field: index, window },
            })
        }
        DerivedKind::SecondsSinceLast => {
            if derived.field.is_some() || derived.window.is_some() {
                return Err(format!("{at}: seconds_since_last takes no field or window"));
            }
            Ok(Column {
                name: "seconds_since_last_event".into(),
                kind: FeatureKind::SecondsSinceLast,
            })
        }
        DerivedKind::Changed => {
            if derived.window.is_some() {
                return Err(format!("{at}: changed takes no window"));
            }
            Ok(Column {
                name: format!("{field_name}_changed"),
                kind: FeatureKind::Changed {
                    field: field("changed")?,
                },
            })
        }
    }
}

fn request_columns(request: &RequestConfig, contract: &Contract, at: &str) -> Result<Vec<Column>, String> {
    if request.transform == Some(RequestTransform::HourOfDay) {
        if request.field != contract.timestamp_field() {
            return Err(format!(
                "{at}: hour_of_day applies to the timestamp field '{}', not '{}'",
                contract.timestamp_field(),
                request.field
            ));
        }
        return Ok(vec![Column {
            name: format!("{}_hour_of_day", request.field),
            kind: FeatureKind::HourOfDay,
        }]);
    }
    let index = data_field(contract, &request.field, at)?;
    Ok(match &contract.fields()[index].kind {
        FieldKind::Float { .. } => vec![Column {
            name: request.field.clone(),
            kind: FeatureKind::RequestNumber { field: index },
        }],
        FieldKind::Category { .. } => vec![Column {
            name: request.field.clone(),
            kind: FeatureKind::RequestCategory { field: index },
        }],
    })
}

/// A computed feature vector in [`FeatureSpec`] column order; `NaN` marks a missing value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureVector {
    pub values: Vec<f64>,
}

impl FeatureVector {
    /// A JSON object of column name to value, `null` for missing, in column order.
    pub fn to_json(&self, spec: &FeatureSpec) -> serde_json::Value {
        let map = spec
            .names()
            .zip(&self.values)
            .map(|(name, value)| {
                let value = if value.is_finite() {
                    serde_json::Value::from(*value)
                } else {
                    serde_json::Value::Null
                };
                (name.to_string(), value)
            })
            .collect();
        serde_json::Value::Object(map)
    }

    /// Bit-level equality, treating NaN as equal to NaN: the test of "same vector".
    pub fn same_as(&self, other: &FeatureVector) -> bool {
        self.values.len() == other.values.len()
            && self
                .values
                .iter()
                .zip(&other.values)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ContractConfig;

    fn contract() -> Contract {
        Contract::new(&ContractConfig::default()).unwrap()
    }

    #[test]
    fn the_fraud_defaults_produce_named_columns_in_a_fixed_order() {
        let spec = FeatureSpec::new(&FeaturesConfig::default(), &contract()).unwrap();
        let names: Vec<&str> = spec.names().collect();
        assert_eq!(names[0], "transaction_amount_count_1h");
        assert!(names.contains(&"transaction_amount_mean_24h"));
        assert!(names.contains(&"country_distinct_count_7d"));
        assert!(names.contains(&"transaction_amount_zscore_30d"));
        assert!(names.contains(&"seconds_since_last_event"));
        assert!(names.contains(&"country"));
        assert_eq!(*names.last().unwrap(), "event_ts_hour_of_day");
        assert_eq!(spec.len(), 27);
        assert_eq!(spec.retention, "30d".parse::<Span>().unwrap().plus("10m"));
    }

    #[test]
    fn numeric_functions_on_category_fields_are_rejected_naming_the_entry() {
        let mut config = FeaturesConfig::default();
        config.aggregations[1].functions.push(AggFunction::Mean);
        let err = FeatureSpec::new(&config, &contract()).unwrap_err();
        assert!(err.starts_with("features.aggregations[1]"), "{err}");
        assert!(err.contains("not mean"), "{err}");
    }

    #[test]
    fn distinct_count_needs_a_category_field_of_at_most_64_values() {
        let mut config = FeaturesConfig::default();
        config.aggregations[0].functions.push(AggFunction::DistinctCount);
        let err = FeatureSpec::new(&config, &contract()).unwrap_err();
        assert!(err.contains("'transaction_amount' is a float field"), "{err}");
        let mut contract_config = crate::contract::ContractConfig::default();
        contract_config.fields[1].values = (0..65).map(|i| format!("C{i}")).collect();
        let wide = Contract::new(&contract_config).unwrap();
        let err = FeatureSpec::new(&FeaturesConfig::default(), &wide).unwrap_err();
        assert!(err.contains("at most 64 categories"), "{err}");
    }

    #[test]
    fn unknown_fields_are_named_with_the_known_ones() {
        let mut config = FeaturesConfig::default();
        config.derived[0].field = Some("amount".into());
        let err = FeatureSpec::new(&config, &contract()).unwrap_err();
        assert!(err.contains("'amount' is not a data field"), "{err}");
        assert!(err.contains("transaction_amount, country, device"), "{err}");
    }

    impl Span {
        fn plus(self, other: &str) -> Span {
            Span(self.micros() + other.parse::<Span>().unwrap().micros())
        }
    }
}
