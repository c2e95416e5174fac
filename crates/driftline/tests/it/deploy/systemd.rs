//! The systemd units (`deploy/systemd/*.service`): each runs /usr/local/bin/driftline
//! with a command line, an environment (Environment= and the shipped EnvironmentFile)
//! and a configuration driftline accepts (`process`), keeps the hardening baseline, and
//! points its data directory at its StateDirectory, the only place its sandbox lets it
//! write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::deploy_dir;
use super::process::{Process, check_deployment, report};

/// Where the files the units name come from: deploy/README.md's install steps put them there.
const HOST_FILES: &[(&str, &str)] = &[
    ("/etc/driftline/driftline.toml", "config/driftline.toml"),
    ("/etc/driftline/driftline.env", "systemd/driftline.env"),
];

/// The units' sandbox: settings every driftline unit must keep.
const HARDENING: &[&str] = &[
    "NoNewPrivileges=yes",
    "DynamicUser=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "CapabilityBoundingSet=",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter=@system-service",
    "MemoryDenyWriteExecute=yes",
];

/// `KEY=value` lines of a unit's section, continuation lines joined, comments dropped.
fn unit_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';') || line.is_empty()) {
            continue;
        }
        if line.starts_with('[') && pending.is_empty() {
            current = line.trim_matches(['[', ']']).to_string();
            continue;
        }
        pending.push_str(line.trim_end_matches('\\'));
        if line.ends_with('\\') {
            pending.push(' ');
            continue;
        }
        if current == section
            && let Some((key, value)) = pending.split_once('=')
        {
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
        pending.clear();
    }
    entries
}

/// systemd's word splitting: whitespace separates, double or single quotes group.
fn unit_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// `KEY=value` lines of an environment file (systemd's EnvironmentFile= syntax).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(['"', '\'']).to_string(),
            )
        })
        .collect()
}

#[test]
fn the_systemd_units_start_driftline_with_commands_and_config_it_accepts() {
    let dir = deploy_dir().join("systemd");
    let mut units: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    units.sort();
    let mut problems = Vec::new();
    let mut processes = Vec::new();
    let mounts: Vec<(String, PathBuf)> = HOST_FILES
        .iter()
        .map(|(host, repo)| (host.to_string(), deploy_dir().join(repo)))
        .collect();
    for unit in &units {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(unit).unwrap();
        let service = unit_section(&text, "Service");
        let lines: BTreeSet<String> = service.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for setting in HARDENING.iter().filter(|s| !lines.contains(**s)) {
            problems.push(format!("{name}: lacks the hardening setting {setting}"));
        }
        if !unit_section(&text, "Install")
            .iter()
            .any(|(k, _)| k == "WantedBy")
        {
            problems.push(format!(
                "{name}: has no [Install] WantedBy= (it could not be enabled)"
            ));
        }
        let mut env = BTreeMap::new();
        let mut exec = None;
        let mut state_directory = None;
        for (key, value) in &service {
            match key.as_str() {
                "ExecStart" => exec = Some(unit_words(value)),
                "StateDirectory" => state_directory = Some(value.clone()),
                "Environment" => {
                    for word in unit_words(value) {
                        let (k, v) = word.split_once('=').unwrap_or((&word, ""));
                        env.insert(k.to_string(), v.to_string());
                    }
                }
                "EnvironmentFile" => {
                    let path = value.trim_start_matches('-');
                    match HOST_FILES.iter().find(|(host, _)| *host == path) {
                        Some((_, repo)) => env.extend(env_file(
                            &std::fs::read_to_string(deploy_dir().join(repo)).unwrap(),
                        )),
                        None => {
                            problems.push(format!("{name}: reads {path}, which deploy/ does not provide"))
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(exec) = exec else {
            problems.push(format!("{name}: has no ExecStart="));
            continue;
        };
        if exec.first().map(String::as_str) != Some("/usr/local/bin/driftline") {
            problems.push(format!(
                "{name}: ExecStart= runs {:?}, not /usr/local/bin/driftline",
                exec.first()
            ));
            continue;
        }
        let process = Process {
            origin: name.clone(),
            argv: exec[1..].to_vec(),
            env,
            mounts: mounts.clone(),
        };
        // ProtectSystem=strict leaves only the state directory writable: the data
        // directory must be it.
        let data_dir = process
            .flag("--data-dir")
            .or(process.env.get("DRIFTLINE_DATA_DIR").map(String::as_str));
        let writable = state_directory.as_ref().map(|d| format!("/var/lib/{d}"));
        if data_dir.is_none() || data_dir.map(str::to_string) != writable {
            problems.push(format!(
                "{name}: the data directory {data_dir:?} must be the StateDirectory {writable:?}, the only place ProtectSystem=strict lets it write"
            ));
        }
        processes.push(process);
    }
    if units.len() < 2 {
        problems.push(format!("expected a serve and an ingest unit, found {units:?}"));
    }
    problems.extend(check_deployment(&processes));
    report("deploy/systemd", &problems);
}

#[test]
fn unit_files_are_split_as_systemd_does() {
    assert_eq!(unit_words(r#"a "b c" 'd' e=f"#), ["a", "b c", "d", "e=f"]);
    let unit = "[Service]\n# note\nExecStart=/bin/x \\\n  --flag\nEnvironment=A=1 \"B=2 3\"\n[Install]\nWantedBy=multi-user.target\n";
    assert_eq!(
        unit_section(unit, "Service"),
        [
            ("ExecStart".to_string(), "/bin/x  --flag".to_string()),
            ("Environment".to_string(), "A=1 \"B=2 3\"".to_string())
        ]
    );
    assert_eq!(
        env_file("# c\nA=1\nB=\"two words\"\n\n"),
        [
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "two words".to_string())
        ]
    );
}
