//! One module per subcommand, plus what they share: exit codes and progress bars.

pub mod demo;
pub mod drift;
pub mod features;
pub mod generate;
pub mod ingest;
pub mod models;
pub mod registry;
pub mod serve;
pub mod shadow;
pub mod train;

use indicatif::{ProgressBar, ProgressStyle};

use crate::settings::UsageError;

/// 2 for bad usage or input, 1 for everything else.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// Prints one result line to stdout. A closed pipe (`driftline ... | head`) is an error
/// like any other here, and `main` turns it into a quiet exit.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Whether the failure is only that the reader of our stdout went away.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>10} {human_pos} ({per_sec})").expect("valid template"),
        ),
    };
    bar.set_message(what.to_string());
    bar
}

/// Formats a count with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
