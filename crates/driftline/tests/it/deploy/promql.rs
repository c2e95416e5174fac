//! PromQL as the dashboards and rules write it: the metric names an expression selects,
//! and Grafana's variables replaced by values Prometheus accepts.
//!
//! Key decision: a small tokenizer, not a PromQL parser. promtool judges the syntax; this
//! only has to tell metric names from functions, aggregations, keywords, label names,
//! strings and durations, which PromQL's lexical rules make unambiguous.

use std::collections::{BTreeMap, BTreeSet};

/// Aggregation operators: names that are never metrics, with or without `by (...)`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Binary operators and modifiers spelled as words.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names `expr` selects: bare names and `{__name__="..."}` matchers.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '#' {
            i = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |n| i + n);
        } else if c == '{' {
            let end = skip_block(&chars, i, '{', '}');
            names.extend(name_matchers(&chars[i..end].iter().collect::<String>()));
            i = end;
        } else if c == '[' {
            i = skip_block(&chars, i, '[', ']');
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number or a duration (5m, 1e3, 0x1f): never a name.
            i += chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '.')
                .count();
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let len = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_' || **c == ':')
                .count();
            let word: String = chars[i..i + len].iter().collect();
            i += len;
            let next = chars[i..].iter().position(|c| !c.is_whitespace()).map(|n| i + n);
            let opens = next.is_some_and(|n| chars[n] == '(');
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if let Some(n) = next.filter(|_| opens) {
                    i = skip_block(&chars, n, '(', ')');
                }
            } else if !(opens || AGGREGATIONS.contains(&lower.as_str()) || KEYWORDS.contains(&lower.as_str()))
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Index after the string literal starting at `start` (backslash escapes in '...' and "...").
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Index after the block opened at `start`, skipping strings and nested blocks.
fn skip_block(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// Names selected as `__name__="x"` inside a matcher block.
fn name_matchers(block: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = block;
    while let Some(at) = rest.find("__name__") {
        rest = &rest[at + "__name__".len()..];
        let value = rest.trim_start();
        if let Some(value) = value.strip_prefix('=').filter(|v| !v.starts_with('~')) {
            let value = value.trim_start();
            if let Some(quoted) = value.strip_prefix('"') {
                names.extend(quoted.split('"').next().map(str::to_string));
            }
        }
    }
    names
}

/// Grafana's built-in variables and the values substituted for them.
const BUILT_IN: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "30s"),
    ("__range", "6h"),
    ("__interval_ms", "30000"),
    ("__range_ms", "21600000"),
    ("__range_s", "21600"),
];

/// `expr` with Grafana's variables (`$name`, `${name}`, `${name:format}`, `[[name]]`)
/// replaced: built-ins by a duration or number, dashboard variables by `values[name]`.
/// A variable that is neither is an error naming it. `$1` and other names not starting
/// with a letter or `_` are left alone, as Grafana leaves them.
pub fn substitute(expr: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let lookup = |name: &str| -> Result<String, String> {
        BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| values.get(name).cloned())
            .ok_or_else(|| format!("undefined variable ${name}"))
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find(['$', '[']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (name, len) = if let Some(braced) = rest.strip_prefix("${") {
            let end = braced.find('}').ok_or("unclosed ${")?;
            (braced[..end].split(':').next().unwrap_or_default(), end + 3)
        } else if let Some(old) = rest.strip_prefix("[[") {
            match old.find("]]") {
                Some(end) if is_variable_name(&old[..end]) => (&old[..end], end + 4),
                _ => ("", 0),
            }
        } else if let Some(plain) = rest.strip_prefix('$') {
            let end = plain
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(plain.len());
            (&plain[..end], end + 1)
        } else {
            ("", 0)
        };
        if is_variable_name(name) {
            out.push_str(&lookup(name)?);
            rest = &rest[len..];
        } else {
            out.push_str(&rest[..1]);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[test]
fn metric_names_skip_functions_aggregations_labels_strings_and_durations() {
    let expr = r#"histogram_quantile(0.95, sum by (model_variant, le) (rate(serving_app_request_latency_seconds_bucket{job=~"a|b", le!="x"}[5m] offset 1h)))
        / on (job) group_left (instance) max without (pod) (up{job="driftline_fake"}) and bool
        count(ALERTS) or vector(0) + sum(x:recorded:ratio_rate5m) unless {__name__="by_matcher", a="b"}
        # a comment naming not_a_metric
        + label_replace(driftline_model_version, "dst", "$1", "src", "(.*)") * 1e3 > Inf"#;
    assert_eq!(
        metric_names(expr).into_iter().collect::<Vec<_>>(),
        [
            "ALERTS",
            "by_matcher",
            "driftline_model_version",
            "serving_app_request_latency_seconds_bucket",
            "up",
            "x:recorded:ratio_rate5m",
        ]
    );
}

#[test]
fn grafana_variables_are_substituted_and_unknown_ones_named() {
    let values = BTreeMap::from([("job".to_string(), "x".to_string())]);
    assert_eq!(
        substitute(
            r#"rate(m{job=~"$job", a="${job:regex}", b="[[job]]"}[$__rate_interval]) and $1"#,
            &values
        )
        .unwrap(),
        r#"rate(m{job=~"x", a="x", b="x"}[1m]) and $1"#
    );
    assert_eq!(substitute("m[5m]", &values).unwrap(), "m[5m]");
    assert_eq!(
        substitute(r#"m{a="$varaint"}"#, &values).unwrap_err(),
        "undefined variable $varaint"
    );
}
