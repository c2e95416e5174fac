//! The Docker Compose stack (`deploy/docker-compose.yml`) and the image it builds
//! (`deploy/Dockerfile`): every driftline service runs a command line and a configuration
//! driftline accepts (`process`), the stack has its engines, two serve replicas and two
//! ingest workers, its mounts exist, one service builds the image the others run, and
//! Prometheus scrapes every serve and ingest process.
//!
//! Key decision: Compose's own rules are applied before judging (YAML merge keys in
//! `yaml`, variable interpolation here), so the check sees what Compose would start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::process::{Process, check_deployment, image_name, report, strings, text};
use super::{deploy_dir, yaml};

/// Compose's variable interpolation as it is with no variables set: `${X:-default}` and
/// `${X-default}` give the default, `${X:?message}` and `${X?message}` stand for a value
/// the operator must supply, `$$` is a `$`. `${X}` or `$X` without a default would be
/// empty: an error.
fn interpolate(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?;
            let inner = &braced[..end];
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, modifier) = inner.split_at(name_end);
            if let Some(default) = modifier.strip_prefix(":-").or(modifier.strip_prefix('-')) {
                out.push_str(default);
            } else if modifier.starts_with(":?") || modifier.starts_with('?') {
                out.push_str(&format!("operator-supplied-{}", name.to_ascii_lowercase()));
            } else {
                return Err(format!(
                    "${{{inner}}} has no default: it is empty unless the operator sets {name}"
                ));
            }
            rest = &braced[end + 1..];
        } else {
            return Err(format!(
                "${rest} has no default: write ${{NAME:-default}} or ${{NAME:?why}}"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn compose_file() -> PathBuf {
    deploy_dir().join("docker-compose.yml")
}

fn is_driftline_service(service: &Value) -> bool {
    service["image"]
        .as_str()
        .is_some_and(|i| image_name(i) == "driftline")
        || service["build"]["dockerfile"]
            .as_str()
            .is_some_and(|d| d.ends_with("deploy/Dockerfile"))
}

/// Bind mounts of a Compose service: (target, source on the host).
fn compose_binds(service: &Value, compose_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut binds = Vec::new();
    for volume in service["volumes"].as_array().into_iter().flatten() {
        let (source, target) = match volume {
            Value::String(short) => {
                let mut parts = short.split(':');
                (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                )
            }
            long => (
                long["source"].as_str().unwrap_or_default().to_string(),
                long["target"].as_str().unwrap_or_default().to_string(),
            ),
        };
        if source.starts_with('.') || source.starts_with('/') {
            binds.push((target, compose_dir.join(source)));
        }
    }
    binds
}

fn compose_processes(compose: &Value, compose_dir: &Path, problems: &mut Vec<String>) -> Vec<Process> {
    let mut processes = Vec::new();
    for (name, service) in compose["services"].as_object().expect("services") {
        if !is_driftline_service(service) {
            continue;
        }
        let origin = format!("docker-compose.yml service {name}");
        if !service["entrypoint"].is_null() {
            problems.push(format!(
                "{origin}: overrides the image's entrypoint (the driftline binary)"
            ));
        }
        let argv = match &service["command"] {
            Value::String(line) => line.split_whitespace().map(str::to_string).collect(),
            Value::Array(_) => strings(&service["command"]),
            _ => {
                problems.push(format!(
                    "{origin}: has no command (say which driftline subcommand it runs)"
                ));
                continue;
            }
        };
        let mut env = BTreeMap::new();
        let entries: Vec<(String, String)> = match &service["environment"] {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), text(v).unwrap_or_default()))
                .collect(),
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            _ => Vec::new(),
        };
        for (key, value) in entries {
            match interpolate(&value) {
                Ok(value) => {
                    env.insert(key, value);
                }
                Err(e) => problems.push(format!("{origin}: {key}: {e}")),
            }
        }
        processes.push(Process {
            origin,
            argv,
            env,
            mounts: compose_binds(service, compose_dir),
        });
    }
    processes
}

/// The `host:port` targets of a Prometheus configuration's static scrape configs.
fn scrape_targets(prometheus: &Value) -> BTreeSet<String> {
    prometheus["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|job| job["static_configs"].as_array().into_iter().flatten())
        .flat_map(|config| strings(&config["targets"]))
        .collect()
}

#[test]
fn the_compose_stack_starts_driftline_with_commands_and_config_it_accepts() {
    let compose = yaml::read_one(&compose_file());
    let compose_dir = deploy_dir();
    let services = compose["services"].as_object().expect("services");
    let mut problems = Vec::new();
    let processes = compose_processes(&compose, &compose_dir, &mut problems);

    let count = |sub: &str| processes.iter().filter(|p| p.subcommand() == Some(sub)).count();
    if count("serve") < 2 || count("ingest") < 2 {
        problems.push(format!(
            "the stack should run two serve replicas and two ingest workers, not {} and {}",
            count("serve"),
            count("ingest")
        ));
    }
    for engine in ["redpanda", "redis", "postgres", "minio", "prometheus", "grafana"] {
        if !services.contains_key(engine) {
            problems.push(format!("the stack has no {engine} service"));
        }
    }

    // Every host file or directory mounted exists; every dependency is a service.
    for (name, service) in services {
        for (target, source) in compose_binds(service, &compose_dir) {
            if !source.exists() {
                problems.push(format!(
                    "service {name} mounts {} at {target}, which does not exist",
                    source.display()
                ));
            }
        }
        let depends: Vec<String> = match &service["depends_on"] {
            Value::Object(map) => map.keys().cloned().collect(),
            other => strings(other),
        };
        for dependency in depends.iter().filter(|d| !services.contains_key(*d)) {
            problems.push(format!(
                "service {name} depends on {dependency}, which is not a service"
            ));
        }
    }

    // One service builds the driftline image; the others run it and never try to pull it.
    let builders: Vec<&String> = services
        .iter()
        .filter(|(_, s)| is_driftline_service(s) && !s["build"].is_null())
        .map(|(name, _)| name)
        .collect();
    for (name, service) in services.iter().filter(|(_, s)| is_driftline_service(s)) {
        if service["build"].is_null() && service["pull_policy"] != "never" {
            problems.push(format!(
                "service {name} runs the local driftline image without pull_policy: never"
            ));
        }
        let build = &service["build"];
        if !build.is_null() {
            let context = compose_dir.join(build["context"].as_str().unwrap_or("."));
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            if !dockerfile.is_file() {
                problems.push(format!(
                    "service {name} builds from {}, which does not exist",
                    dockerfile.display()
                ));
            }
        }
    }
    if builders.len() != 1 {
        problems.push(format!(
            "exactly one service should build the driftline image, not {builders:?}"
        ));
    }

    // Prometheus (through its own mounts) scrapes every serve and ingest process.
    let prometheus_service = &services["prometheus"];
    let prometheus_config = compose_binds(prometheus_service, &compose_dir)
        .into_iter()
        .find(|(target, _)| target == "/etc/prometheus/prometheus.yml")
        .map(|(_, source)| yaml::read_one(&source));
    match prometheus_config {
        None => problems
            .push("prometheus does not mount a prometheus.yml at /etc/prometheus/prometheus.yml".into()),
        Some(config) => {
            let targets = scrape_targets(&config);
            for process in processes
                .iter()
                .filter(|p| matches!(p.subcommand(), Some("serve" | "ingest")))
            {
                let service = process.origin.rsplit(' ').next().unwrap_or_default();
                match process.listen_port() {
                    Some(port) if targets.contains(&format!("{service}:{port}")) => {}
                    Some(port) => problems.push(format!(
                        "{}: Prometheus does not scrape {service}:{port}",
                        process.origin
                    )),
                    None => problems.push(format!(
                        "{}: exposes no metrics address to scrape",
                        process.origin
                    )),
                }
            }
        }
    }

    problems.extend(check_deployment(&processes));
    report("docker-compose.yml", &problems);
}

#[test]
fn the_dockerfile_builds_with_the_workspace_toolchain_and_runs_driftline() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let workspace: toml::Table = std::fs::read_to_string(deploy_dir().join("../Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let wanted = workspace["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let builder = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a FROM rust:VERSION build stage");
    let tag = builder.split(['-', ' ']).next().unwrap();
    assert!(
        version(tag) >= version(wanted),
        "the Dockerfile builds with rust {tag}, the workspace needs {wanted}"
    );
    assert!(
        dockerfile.contains("cargo build --release --locked"),
        "build the locked release"
    );
    let entrypoint = dockerfile
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .expect("an ENTRYPOINT");
    assert!(entrypoint.contains("/usr/local/bin/driftline"), "{entrypoint}");
    assert!(
        dockerfile.contains("COPY --from=build /out/driftline /usr/local/bin/driftline"),
        "the runtime stage should hold the built binary"
    );
}

#[test]
fn interpolation_follows_compose() {
    assert_eq!(interpolate("${A:-x}/${B-y}/$$HOME").unwrap(), "x/y/$HOME");
    assert_eq!(
        interpolate("${TOKEN:?set it}").unwrap(),
        "operator-supplied-token"
    );
    assert!(interpolate("${UNSET}").is_err() && interpolate("$UNSET").is_err());
}
