//! YAML deployment files (Compose, Kubernetes, Prometheus) read as `serde_json::Value`
//! trees, so every check walks one kind of tree.
//!
//! Key decision: `yaml-rust2` (pure Rust, YAML 1.2) parses; its loader resolves anchors
//! and aliases, and the `<<` merge keys Docker Compose relies on are resolved here the way
//! Compose does it (the mapping's own keys win over merged ones).

use std::path::Path;

use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Every document of `text` (Kubernetes files hold several, separated by `---`).
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    docs.iter().map(to_json).collect()
}

/// The documents of a file; panics naming the file when it is not valid YAML.
pub fn read(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    documents(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// The single document of a file.
pub fn read_one(path: &Path) -> Value {
    let mut docs = read(path);
    assert_eq!(docs.len(), 1, "{} should hold one YAML document", path.display());
    docs.remove(0)
}

fn to_json(yaml: &Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(text) => match text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(number) => Value::Number(number),
            None => Value::String(text.clone()),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(hash) => {
            let mut own = Map::new();
            let mut merged = Vec::new();
            for (key, value) in hash {
                let key =
                    scalar_text(key).ok_or_else(|| format!("a mapping key is not a scalar: {key:?}"))?;
                if key == "<<" {
                    merged.push(to_json(value)?);
                } else {
                    own.insert(key, to_json(value)?);
                }
            }
            for source in merged {
                merge_into(&mut own, source)?;
            }
            Value::Object(own)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err(format!("unresolved YAML node {yaml:?}")),
    })
}

/// `<<: *anchor` or `<<: [*a, *b]`: keys the mapping does not set itself come from the
/// merged mappings, earlier ones first.
fn merge_into(own: &mut Map<String, Value>, source: Value) -> Result<(), String> {
    match source {
        Value::Object(entries) => {
            for (key, value) in entries {
                own.entry(key).or_insert(value);
            }
            Ok(())
        }
        Value::Array(sources) => sources.into_iter().try_for_each(|s| merge_into(own, s)),
        other => Err(format!("`<<` merges a mapping, not {other}")),
    }
}

fn scalar_text(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some("null".into()),
        _ => None,
    }
}

#[test]
fn anchors_aliases_and_merge_keys_resolve_as_compose_does() {
    let text = "base: &base {a: 1, b: two}\nuse:\n  <<: *base\n  b: mine\n  c: [1.5, true, ~]\n---\nport: \"6379\"\n";
    let docs = documents(text).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(
        docs[0]["use"],
        serde_json::json!({"b": "mine", "c": [1.5, true, null], "a": 1})
    );
    assert_eq!(docs[1]["port"], "6379");
    assert!(documents("a: [unclosed").is_err());
}
