//! What every deployment check shares: a driftline process as a deployment file starts
//! it (arguments, environment, mounted files), and the checks run on each: its command
//! line parses with the CLI, every environment variable it gets is one driftline reads,
//! its configuration (file and environment together) loads with driftline's own loader
//! and passes its checks, and the processes of one deployment agree on the engines and
//! the data contract.
//!
//! Key decision: the judge is the built `driftline` binary. `driftline ARGS --help` for a
//! command line (clap parses everything before `--help`, so an unknown subcommand or
//! flag is refused); `driftline [--config FILE] config` under the process's exact
//! environment for its configuration (the file as the deployment provides it); and the
//! variable names of `driftline_core::config::ENV_VARS` plus those the CLI's help names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One driftline process as a deployment file starts it.
pub struct Process {
    /// "docker-compose.yml service serve-1".
    pub origin: String,
    /// The arguments after the binary.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Mount points (files or directories, as the process sees them) and where their
    /// content is in the repository (or in a scratch directory, for ConfigMaps).
    pub mounts: Vec<(String, PathBuf)>,
}

/// Global flags of the CLI that take a value (they may come before the subcommand).
const GLOBAL_FLAGS_WITH_VALUE: &[&str] = &["--config", "--data-dir", "--log-level"];

impl Process {
    /// Where the content of `path` (as the process sees it) is, through its mounts.
    pub fn resolve(&self, path: &str) -> Option<PathBuf> {
        self.mounts
            .iter()
            .filter_map(|(mount, source)| {
                if path == mount {
                    Some((mount.len(), source.clone()))
                } else {
                    let rest = path.strip_prefix(mount.as_str())?.strip_prefix('/')?;
                    Some((mount.len(), source.join(rest)))
                }
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, source)| source)
    }

    /// The value of `--flag VALUE` or `--flag=VALUE`.
    pub fn flag(&self, flag: &str) -> Option<&str> {
        let mut args = self.argv.iter();
        while let Some(arg) = args.next() {
            if arg == flag {
                return args.next().map(String::as_str);
            }
            if let Some(value) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
                return Some(value);
            }
        }
        None
    }

    /// The subcommand: the first argument that is neither a flag nor a global flag's value.
    pub fn subcommand(&self) -> Option<&str> {
        let mut args = self.argv.iter();
        while let Some(arg) = args.next() {
            if GLOBAL_FLAGS_WITH_VALUE.contains(&arg.as_str()) {
                args.next();
            } else if !arg.starts_with('-') {
                return Some(arg);
            }
        }
        None
    }

    /// The port it listens on: `serve --addr`, `ingest --metrics-addr`.
    pub fn listen_port(&self) -> Option<u16> {
        let addr = match self.subcommand()? {
            "serve" => self.flag("--addr").unwrap_or("0.0.0.0:8000"),
            "ingest" => self.flag("--metrics-addr")?,
            _ => return None,
        };
        addr.rsplit(':').next()?.parse().ok()
    }
}

/// The built binary with no inherited environment, in an empty directory (so no
/// ./driftline.toml is picked up by accident).
fn driftline_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_driftline"));
    command.env_clear().current_dir(dir);
    command
}

/// An error output on one line: its lines joined, the underline-only lines of TOML
/// errors (`|`, `^^^`) left out.
fn one_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().any(|c| c.is_alphanumeric()))
        .filter(|l| !l.starts_with("For more information"))
        .collect();
    lines.join(" / ")
}

/// The environment variables driftline reads: its configuration table, plus the ones its
/// CLI's help names (clap's `[env: NAME=]`, and "Env NAME" in the flags' documentation,
/// such as RUST_LOG for the log filter).
fn honoured_env_vars(scratch: &Path, subcommands: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = driftline_core::config::ENV_VARS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let helps = std::iter::once(None).chain(subcommands.iter().map(Some));
    for sub in helps {
        let output = driftline_in(scratch).args(sub).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        for marker in ["[env: ", "Env "] {
            for (at, _) in help.match_indices(marker) {
                let name: String = help[at + marker.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if name.len() > 2 {
                    names.insert(name);
                }
            }
        }
    }
    names
}

/// The problems of one process, and its configuration in effect (`driftline config`'s
/// TOML) when it loads.
fn check_process(
    process: &Process,
    honoured: &BTreeSet<String>,
    scratch: &Path,
) -> (Vec<String>, Option<toml::Table>) {
    let origin = &process.origin;
    let mut problems = Vec::new();

    let output = driftline_in(scratch)
        .args(&process.argv)
        .arg("--help")
        .output()
        .unwrap();
    if !output.status.success() {
        problems.push(format!(
            "{origin}: the CLI refuses `driftline {}`: {}",
            process.argv.join(" "),
            one_line(&output.stderr)
        ));
    }
    for name in process.env.keys().filter(|name| !honoured.contains(*name)) {
        problems.push(format!("{origin}: sets {name}, which driftline does not read"));
    }

    let mut env = process.env.clone();
    let mut args: Vec<String> = Vec::new();
    let config = process
        .flag("--config")
        .or(process.env.get("DRIFTLINE_CONFIG").map(String::as_str));
    let problem = match config.map(|path| (path, process.resolve(path))) {
        None => Some("gives no configuration file, so runs the built-in demo defaults".to_string()),
        Some((path, None)) => Some(format!(
            "reads its configuration from {path}, which the deployment does not provide"
        )),
        Some((path, Some(source))) if !source.is_file() => Some(format!(
            "its configuration {path} is provided from {}, which does not exist",
            source.display()
        )),
        Some((_, Some(source))) => {
            let source = source.to_string_lossy().into_owned();
            if env.contains_key("DRIFTLINE_CONFIG") {
                env.insert("DRIFTLINE_CONFIG".into(), source.clone());
            }
            if process.flag("--config").is_some() {
                args.extend(["--config".to_string(), source]);
            }
            None
        }
    };
    if let Some(problem) = problem {
        problems.push(format!("{origin}: {problem}"));
        return (problems, None);
    }
    if let Some(dir) = process.flag("--data-dir") {
        args.extend(["--data-dir".to_string(), dir.to_string()]);
    }
    let output = driftline_in(scratch)
        .envs(&env)
        .args(&args)
        .arg("config")
        .output()
        .unwrap();
    if !output.status.success() {
        problems.push(format!(
            "{origin}: driftline refuses its configuration: {}",
            one_line(&output.stderr)
        ));
        return (problems, None);
    }
    let effective = String::from_utf8_lossy(&output.stdout);
    let table = effective
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("`driftline config` printed TOML that does not parse: {e}\n{effective}"));
    (problems, Some(table))
}

/// Sections every process of a deployment must agree on: the data contract and features
/// (ingest computes the state serve reads), the model, and where every engine is.
const SHARED_SECTIONS: &[&str] = &[
    "contract",
    "features",
    "model",
    "kafka",
    "redis",
    "postgres",
    "object_store",
    "registry",
    "online_store",
    "offline_store",
];

/// Scale-out engines a deployment of several processes must use (`section.backend`).
const SCALE_OUT_BACKENDS: &[(&str, &str)] = &[
    ("online_store", "redis"),
    ("offline_store", "postgres"),
    ("registry", "postgres"),
    ("object_store", "s3"),
];

/// Keys a process may lack when it does not use that engine (least privilege: ingest
/// needs no artifact-store keys).
const CREDENTIALS: &[&str] = &["password", "access_key", "secret_key"];

fn without_credentials(section: Option<&toml::Value>) -> Option<toml::Value> {
    let mut section = section?.clone();
    if let Some(table) = section.as_table_mut() {
        table.retain(|key, _| !CREDENTIALS.contains(&key));
    }
    Some(section)
}

fn check_agreement(configs: &[(String, toml::Table)]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((first_origin, first)) = configs.first() else {
        return problems;
    };
    for (origin, config) in configs {
        for (section, backend) in SCALE_OUT_BACKENDS {
            let found = config
                .get(*section)
                .and_then(|s| s.get("backend"))
                .and_then(toml::Value::as_str);
            if found != Some(*backend) {
                problems.push(format!(
                    "{origin}: {section}.backend is {found:?} in effect, not \"{backend}\""
                ));
            }
        }
        for section in SHARED_SECTIONS {
            if without_credentials(config.get(*section)) != without_credentials(first.get(*section)) {
                problems.push(format!("{origin} and {first_origin} disagree on [{section}]"));
            }
        }
    }
    problems
}

/// Runs every process check of a deployment; returns all the problems.
pub fn check_deployment(processes: &[Process]) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let subcommands = processes
        .iter()
        .filter_map(|p| p.subcommand())
        .map(str::to_string)
        .collect();
    let honoured = honoured_env_vars(scratch.path(), &subcommands);
    let mut problems = Vec::new();
    let mut configs = Vec::new();
    for process in processes {
        let (found, config) = check_process(process, &honoured, scratch.path());
        problems.extend(found);
        configs.extend(config.map(|c| (process.origin.clone(), c)));
    }
    problems.extend(check_agreement(&configs));
    problems
}

pub fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(text).collect()
}

/// The repository part of an image reference: "registry/driftline:tag" -> "driftline".
pub fn image_name(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split([':', '@']).next().unwrap_or(last)
}

#[test]
fn a_process_knows_its_subcommand_flags_port_and_files() {
    let process = Process {
        origin: "t".into(),
        argv: [
            "--config",
            "/etc/d/c.toml",
            "ingest",
            "--metrics-addr=0.0.0.0:9100",
        ]
        .map(String::from)
        .to_vec(),
        env: BTreeMap::new(),
        mounts: vec![("/etc/d".into(), PathBuf::from("/repo/d"))],
    };
    assert_eq!(process.subcommand(), Some("ingest"));
    assert_eq!(process.flag("--config"), Some("/etc/d/c.toml"));
    assert_eq!(process.listen_port(), Some(9100));
    assert_eq!(
        process.resolve("/etc/d/c.toml"),
        Some(PathBuf::from("/repo/d/c.toml"))
    );
    assert_eq!(process.resolve("/etc/other"), None);
    assert_eq!(image_name("registry.example/team/driftline:0.1.0"), "driftline");
}
