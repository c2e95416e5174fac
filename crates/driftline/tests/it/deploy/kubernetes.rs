//! The Kubernetes manifests (`deploy/k8s/`): every driftline container runs a command
//! line and a configuration driftline accepts (`process`), with its environment taken
//! from ConfigMaps and Secret references and its files from mounted ConfigMaps; the
//! ConfigMap's driftline.toml is the shipped one verbatim; kustomization.yaml lists
//! every manifest; serve is probed on /ready and /health at its --addr port; selectors,
//! Services and scrape annotations line up with the pods.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::process::{Process, check_deployment, image_name, report, strings, text};
use super::{deploy_dir, yaml};

fn k8s_dir() -> PathBuf {
    deploy_dir().join("k8s")
}

/// Every document of every manifest (kustomization.yaml aside), with its file name.
fn k8s_documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "kustomization"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            yaml::read(path)
                .into_iter()
                .filter(|d| !d.is_null())
                .map(move |d| (name.clone(), d))
        })
        .collect()
}

/// The pod template of a workload, if `doc` is one.
fn pod_template(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => Some(&doc["spec"]["template"]),
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]),
        _ => None,
    }
}

fn k8s_processes(docs: &[(String, Value)], scratch: &Path, problems: &mut Vec<String>) -> Vec<Process> {
    let config_maps: BTreeMap<&str, &Value> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ConfigMap")
        .filter_map(|(_, d)| Some((d["metadata"]["name"].as_str()?, &d["data"])))
        .collect();
    let mut processes = Vec::new();
    for (file, doc) in docs {
        let Some(template) = pod_template(doc) else {
            continue;
        };
        let spec = &template["spec"];
        let workload = name_prefix(file, doc);
        let containers = spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["initContainers"].as_array().into_iter().flatten());
        for container in
            containers.filter(|c| c["image"].as_str().is_some_and(|i| image_name(i) == "driftline"))
        {
            let origin = format!(
                "{workload} container {}",
                container["name"].as_str().unwrap_or("?")
            );
            let mut argv = strings(&container["args"]);
            let command = strings(&container["command"]);
            if let Some((binary, rest)) = command.split_first() {
                if !binary.ends_with("driftline") {
                    problems.push(format!("{origin}: runs {binary}, not driftline"));
                    continue;
                }
                argv = rest.iter().cloned().chain(argv).collect();
            }
            let mut env = BTreeMap::new();
            for source in container["envFrom"].as_array().into_iter().flatten() {
                if let Some(name) = source["configMapRef"]["name"].as_str() {
                    match config_maps.get(name) {
                        Some(data) => {
                            for (key, value) in data.as_object().into_iter().flatten() {
                                env.insert(key.clone(), text(value).unwrap_or_default());
                            }
                        }
                        None => problems.push(format!(
                            "{origin}: envFrom names ConfigMap {name}, which is not in deploy/k8s"
                        )),
                    }
                } else {
                    problems.push(format!(
                        "{origin}: envFrom {source}: name each secret variable with secretKeyRef instead"
                    ));
                }
            }
            for var in container["env"].as_array().into_iter().flatten() {
                let name = var["name"].as_str().unwrap_or_default().to_string();
                let from = &var["valueFrom"];
                let value = if let Some(value) = text(&var["value"]) {
                    value
                } else if let Some(key) = from["secretKeyRef"]["key"].as_str() {
                    format!(
                        "secret-{}-{key}",
                        from["secretKeyRef"]["name"].as_str().unwrap_or("?")
                    )
                } else if let Some(key) = from["configMapKeyRef"]["key"].as_str() {
                    let map = from["configMapKeyRef"]["name"].as_str().unwrap_or_default();
                    match config_maps.get(map).and_then(|d| text(&d[key])) {
                        Some(value) => value,
                        None => {
                            problems.push(format!(
                                "{origin}: {name} comes from {map}/{key}, which does not exist"
                            ));
                            continue;
                        }
                    }
                } else {
                    problems.push(format!(
                        "{origin}: {name} has neither a value nor a secret or ConfigMap key"
                    ));
                    continue;
                };
                env.insert(name, value);
            }
            let mut mounts = Vec::new();
            for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                let volume = spec["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| v["name"] == mount["name"]);
                let Some(map) = volume.and_then(|v| v["configMap"]["name"].as_str()) else {
                    continue;
                };
                let Some(data) = config_maps.get(map) else {
                    problems.push(format!(
                        "{origin}: mounts ConfigMap {map}, which is not in deploy/k8s"
                    ));
                    continue;
                };
                let dir = scratch.join(map);
                std::fs::create_dir_all(&dir).unwrap();
                for (key, value) in data.as_object().into_iter().flatten() {
                    std::fs::write(dir.join(key), text(value).unwrap_or_default()).unwrap();
                }
                let target = mount["mountPath"].as_str().unwrap_or_default().to_string();
                let source = match mount["subPath"].as_str() {
                    Some(key) => dir.join(key),
                    None => dir,
                };
                mounts.push((target, source));
            }
            processes.push(Process {
                origin,
                argv,
                env,
                mounts,
            });
        }
    }
    processes
}

/// The container port a probe or Service port refers to (by name or number).
fn container_port(container: &Value, port: &Value) -> Option<u64> {
    let ports = container["ports"].as_array()?;
    match port {
        Value::String(name) => ports.iter().find(|p| p["name"] == name.as_str())?["containerPort"].as_u64(),
        Value::Number(n) => {
            ports.iter().find(|p| p["containerPort"].as_u64() == n.as_u64())?["containerPort"].as_u64()
        }
        _ => None,
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn the_kubernetes_manifests_start_driftline_with_commands_and_config_it_accepts() {
    let docs = k8s_documents();
    let scratch = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let processes = k8s_processes(&docs, scratch.path(), &mut problems);
    let serve = processes
        .iter()
        .filter(|p| p.subcommand() == Some("serve"))
        .count();
    let ingest = processes
        .iter()
        .filter(|p| p.subcommand() == Some("ingest"))
        .count();
    if serve == 0 || ingest == 0 {
        problems.push(format!(
            "the manifests should run serve and ingest ({serve} and {ingest} containers)"
        ));
    }

    // The ConfigMap's driftline.toml is the shipped scale-out configuration, verbatim.
    let shipped = std::fs::read_to_string(deploy_dir().join("config/driftline.toml")).unwrap();
    let in_config_map = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ConfigMap")
        .find_map(|(_, d)| d["data"]["driftline.toml"].as_str());
    if in_config_map != Some(shipped.as_str()) {
        problems.push(
            "the ConfigMap's driftline.toml differs from deploy/config/driftline.toml (or is missing)".into(),
        );
    }

    // kustomization.yaml lists every manifest.
    let kustomization = yaml::read_one(&k8s_dir().join("kustomization.yaml"));
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let files: BTreeSet<String> = docs.iter().map(|(f, _)| f.clone()).collect();
    if listed != files {
        problems.push(format!(
            "kustomization.yaml lists {listed:?}, the directory holds {files:?}"
        ));
    }

    // Replicas, probes and scrape annotations of each workload.
    for (file, doc) in &docs {
        let Some(template) = pod_template(doc) else {
            continue;
        };
        let name = format!("{file} {}", doc["metadata"]["name"].as_str().unwrap_or("?"));
        if !labels_match(
            &doc["spec"]["selector"]["matchLabels"],
            &template["metadata"]["labels"],
        ) {
            problems.push(format!(
                "{name}: its selector does not match its pod template's labels"
            ));
        }
        for container in template["spec"]["containers"].as_array().into_iter().flatten() {
            let origin = format!(
                "{} container {}",
                name_prefix(file, doc),
                container["name"].as_str().unwrap_or("?")
            );
            let Some(process) = processes.iter().find(|p| p.origin == origin) else {
                continue;
            };
            let port = process.listen_port().map(u64::from);
            if process.subcommand() == Some("serve") {
                if doc["spec"]["replicas"].as_u64().unwrap_or(1) < 2 {
                    problems.push(format!("{name}: serve should run at least 2 replicas"));
                }
                for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
                    let get = &container[probe]["httpGet"];
                    if get["path"] != path || container_port(container, &get["port"]) != port {
                        problems.push(format!(
                            "{name}: {probe} should GET {path} on the --addr port {port:?}, not {get}"
                        ));
                    }
                }
            }
            let annotations = &template["metadata"]["annotations"];
            if port.is_some()
                && annotations["prometheus.io/port"]
                    .as_str()
                    .and_then(|p| p.parse().ok())
                    != port
            {
                problems.push(format!(
                    "{name}: prometheus.io/port should be the listening port {port:?}"
                ));
            }
        }
    }

    // Each Service selects a workload and targets one of its container ports.
    for (file, service) in docs.iter().filter(|(_, d)| d["kind"] == "Service") {
        let name = format!(
            "{file} Service {}",
            service["metadata"]["name"].as_str().unwrap_or("?")
        );
        let selected: Vec<&Value> = docs
            .iter()
            .filter_map(|(_, d)| pod_template(d))
            .filter(|t| labels_match(&service["spec"]["selector"], &t["metadata"]["labels"]))
            .collect();
        if selected.is_empty() {
            problems.push(format!("{name}: its selector matches no workload"));
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let target = if port["targetPort"].is_null() {
                &port["port"]
            } else {
                &port["targetPort"]
            };
            let found = selected.iter().any(|t| {
                t["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| container_port(c, target).is_some())
            });
            if !found {
                problems.push(format!(
                    "{name}: targetPort {target} is no container port of the selected pods"
                ));
            }
        }
    }

    problems.extend(check_deployment(&processes));
    report("deploy/k8s", &problems);
}

/// The origin prefix `k8s_processes` gives a workload's containers.
fn name_prefix(file: &str, doc: &Value) -> String {
    format!(
        "{file} {} {}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}
