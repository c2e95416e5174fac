//! The Grafana dashboards (`deploy/grafana/dashboards/*.json`) and their provisioning:
//! valid JSON with unique uids and panel ids, every query on the provisioned Prometheus
//! through the `datasource` variable, and every PromQL expression (panel targets and
//! template-variable queries, Grafana variables substituted) accepted by promtool.
//! `super::every_metric_the_rules_and_dashboards_name_is_exported_by_driftline_serve`
//! checks the metric names they use.
//!
//! Key decision: promtool is the PromQL parser, fed the expressions as recording rules,
//! one rule group per query named after its dashboard and panel, so an error says which
//! panel to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::{deploy_dir, promql, promtool, yaml};

/// One PromQL expression of a dashboard, with Grafana's variables substituted.
pub struct Query {
    /// "inference-slo.json panel 7 (Requests per second by variant) target A".
    pub origin: String,
    pub expr: String,
}

fn dashboard_files() -> Vec<PathBuf> {
    let dir = deploy_dir().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every dashboard, parsed.
pub fn dashboards() -> Vec<(String, Value)> {
    dashboard_files()
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            (file_name(path), json)
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn variables(dashboard: &Value) -> &[Value] {
    dashboard["templating"]["list"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// A value Prometheus accepts wherever the variable may legitimately appear. Query
/// variables hold label values, which belong inside a matcher's quotes: "x" fits there and
/// breaks the parse anywhere else, which is the misuse to catch.
fn stand_in(variable: &Value) -> Result<String, String> {
    let name = variable["name"].as_str().unwrap_or("?");
    let query = match &variable["query"] {
        Value::String(s) => s.clone(),
        other => other["query"].as_str().unwrap_or_default().to_string(),
    };
    match variable["type"].as_str() {
        Some("query") => Ok("x".into()),
        Some("custom" | "interval") => Ok(query.split(',').next().unwrap_or_default().trim().to_string()),
        Some("constant" | "textbox") => Ok(query),
        Some("datasource") => Ok("driftline-prometheus".into()),
        other => Err(format!(
            "variable ${name} has a type this check does not know: {other:?}"
        )),
    }
}

/// The PromQL of a template variable's query: `label_values(SELECTOR, label)` and
/// `query_result(EXPR)` hold some; `label_values(label)` and `label_names()` none.
fn variable_promql(query: &str) -> Result<Option<String>, String> {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return Ok(inner
            .rsplit_once(',')
            .map(|(selector, _label)| selector.trim().to_string()));
    }
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return Ok(Some(inner.to_string()));
    }
    if query.starts_with("label_names(") {
        return Ok(None);
    }
    Err(format!("unsupported variable query {query:?}"))
}

/// Every PromQL expression of `dashboard`, or the problems met collecting them.
fn queries_of(file: &str, dashboard: &Value) -> Result<Vec<Query>, Vec<String>> {
    let mut problems = Vec::new();
    let mut values = BTreeMap::new();
    for variable in variables(dashboard) {
        match stand_in(variable) {
            Ok(v) => {
                values.insert(variable["name"].as_str().unwrap_or_default().to_string(), v);
            }
            Err(e) => problems.push(format!("{file}: {e}")),
        }
    }
    let mut raw: Vec<(String, String)> = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let origin = format!(
                "{file} panel {} ({title}) target {}",
                panel["id"],
                target["refId"].as_str().unwrap_or("?")
            );
            match target["expr"].as_str() {
                Some(expr) if !expr.trim().is_empty() => raw.push((origin, expr.to_string())),
                _ => problems.push(format!("{origin}: no PromQL expression")),
            }
        }
    }
    for variable in variables(dashboard).iter().filter(|v| v["type"] == "query") {
        let origin = format!("{file} variable ${}", variable["name"].as_str().unwrap_or("?"));
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        match variable_promql(query) {
            Ok(Some(expr)) => raw.push((origin, expr)),
            Ok(None) => {}
            Err(e) => problems.push(format!("{origin}: {e}")),
        }
    }
    let mut queries = Vec::new();
    for (origin, expr) in raw {
        match promql::substitute(&expr, &values) {
            Ok(expr) => queries.push(Query { origin, expr }),
            Err(e) => problems.push(format!("{origin}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(queries)
    } else {
        Err(problems)
    }
}

/// Every PromQL expression of every dashboard, variables substituted.
pub fn all_queries() -> Vec<Query> {
    let mut all = Vec::new();
    let mut problems = Vec::new();
    for (file, dashboard) in dashboards() {
        match queries_of(&file, &dashboard) {
            Ok(queries) => all.extend(queries),
            Err(p) => problems.extend(p),
        }
    }
    assert!(problems.is_empty(), "dashboard queries:\n{}", problems.join("\n"));
    all
}

/// The uid of the provisioned Prometheus datasource.
fn provisioned_datasource_uid() -> String {
    let file = deploy_dir().join("grafana/provisioning/datasources/prometheus.yml");
    let provisioning = yaml::read_one(&file);
    let sources = provisioning["datasources"].as_array().expect("datasources");
    let prometheus: Vec<_> = sources.iter().filter(|s| s["type"] == "prometheus").collect();
    assert_eq!(
        prometheus.len(),
        1,
        "{}: one Prometheus datasource",
        file.display()
    );
    prometheus[0]["uid"]
        .as_str()
        .expect("the datasource has a uid")
        .to_string()
}

#[test]
fn dashboards_are_valid_json_with_unique_uids_and_panel_ids() {
    let boards = dashboards();
    assert!(
        boards.len() >= 4,
        "expected the four dashboards, found {}",
        boards.len()
    );
    let datasource_uid = provisioned_datasource_uid();
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for (file, board) in &boards {
        match board["uid"].as_str() {
            Some(uid) if !uid.is_empty() && uid.len() <= 40 => {
                if !uids.insert(uid.to_string()) {
                    problems.push(format!("{file}: uid {uid} is used by another dashboard"));
                }
            }
            other => problems.push(format!("{file}: uid {other:?} (needed, at most 40 characters)")),
        }
        if !titles.insert(board["title"].as_str().unwrap_or_default().to_string()) {
            problems.push(format!(
                "{file}: title {} is used by another dashboard",
                board["title"]
            ));
        }
        let datasource_variable = variables(board).iter().find(|v| v["type"] == "datasource");
        match datasource_variable {
            Some(v) if v["query"] == "prometheus" && v["current"]["value"] == datasource_uid.as_str() => {}
            _ => problems.push(format!(
                "{file}: needs a `datasource` variable of type prometheus defaulting to the provisioned {datasource_uid}"
            )),
        }
        let mut ids = BTreeSet::new();
        for panel in panels(board) {
            let id = panel["id"].as_u64();
            let title = panel["title"].as_str().unwrap_or_default();
            if !id.is_some_and(|id| ids.insert(id)) {
                problems.push(format!(
                    "{file}: panel {title:?} has a missing or repeated id {:?}",
                    panel["id"]
                ));
            }
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap_or(99), grid["w"].as_u64().unwrap_or(99));
            if x + w > 24 || grid["h"].as_u64().is_none() || grid["y"].as_u64().is_none() {
                problems.push(format!(
                    "{file}: panel {title:?} has gridPos {grid} outside the 24-column grid"
                ));
            }
            if panel["type"] == "row" {
                continue;
            }
            let sources = std::iter::once(&panel["datasource"]).chain(
                panel["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| &t["datasource"]),
            );
            for source in sources {
                if source["uid"] != "${datasource}" {
                    problems.push(format!(
                        "{file}: panel {title:?} queries {source} instead of ${{datasource}}"
                    ));
                }
            }
        }
    }
    if let Err(p) = boards
        .iter()
        .map(|(f, b)| queries_of(f, b))
        .collect::<Result<Vec<_>, _>>()
    {
        problems.extend(p);
    }
    assert!(problems.is_empty(), "dashboards:\n{}", problems.join("\n"));
}

#[test]
fn the_dashboards_provider_and_compose_mount_point_at_the_dashboards() {
    let provider = yaml::read_one(&deploy_dir().join("grafana/provisioning/dashboards/driftline.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("a provider path");
    let compose = yaml::read_one(&deploy_dir().join("docker-compose.yml"));
    let mounts: Vec<&str> = compose["services"]["grafana"]["volumes"]
        .as_array()
        .expect("grafana volumes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        mounts.contains(&format!("./grafana/dashboards:{path}:ro").as_str()),
        "grafana should mount ./grafana/dashboards at the provider's path {path}: {mounts:?}"
    );
    assert!(
        mounts.contains(&"./grafana/provisioning:/etc/grafana/provisioning:ro"),
        "{mounts:?}"
    );
}

#[test]
fn every_dashboard_query_parses_with_promtool() {
    let Some(promtool) = promtool() else {
        return;
    };
    let queries = all_queries();
    assert!(queries.len() >= 40, "only {} queries found", queries.len());
    let mut rules = String::from("groups:\n");
    for (i, query) in queries.iter().enumerate() {
        let group = serde_json::to_string(&query.origin).unwrap();
        let expr = serde_json::to_string(&query.expr).unwrap();
        rules.push_str(&format!(
            "  - name: {group}\n    rules:\n      - record: dashboard_query_{i}\n        expr: {expr}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, &rules).unwrap();
    let output = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool refuses dashboard queries:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&format!("{} rules found", queries.len())), "{text}");
}

#[test]
fn variable_queries_yield_their_promql() {
    assert_eq!(
        variable_promql(r#"label_values(up{job=~"$job"}, instance)"#)
            .unwrap()
            .as_deref(),
        Some(r#"up{job=~"$job"}"#)
    );
    assert_eq!(variable_promql("label_values(job)").unwrap(), None);
    assert_eq!(
        variable_promql("query_result(max(m))").unwrap().as_deref(),
        Some("max(m)")
    );
    assert!(variable_promql("metrics(driftline_.*)").is_err());
}
