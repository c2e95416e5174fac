//! Committed consumer offsets: `DIR/consumers/<group>.offset`, one small file per group.
//!
//! Key decision: a commit writes a temporary file, fsyncs it, renames it over the old
//! one and fsyncs the directory, so after any crash the offset file holds either the
//! old or the new offset, never a torn one. The content is the next offset to read as
//! ASCII decimal plus a newline, so an operator can inspect or reset it with a shell.
//! One process commits for a group at a time (the temporary file name is fixed).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{LogError, segment};

const CONSUMERS_DIR: &str = "consumers";
const MAX_GROUP_LEN: usize = 200;

/// The offset `group` committed in the log at `dir`: the next offset it will read.
/// `None` when the group never committed.
pub fn load_committed(dir: &Path, group: &str) -> Result<Option<u64>, LogError> {
    check_group(group)?;
    let path = offset_path(dir, group);
    match fs::read_to_string(&path) {
        Ok(text) => parse_offset(&path, &text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(&path, e)),
    }
}

/// Durably records that `group` will next read `next_offset` from the log at `dir`.
pub fn commit(dir: &Path, group: &str, next_offset: u64) -> Result<(), LogError> {
    check_group(group)?;
    let consumers = dir.join(CONSUMERS_DIR);
    if !consumers.is_dir() {
        fs::create_dir_all(&consumers).map_err(|e| LogError::io(&consumers, e))?;
        segment::sync_dir(dir)?;
    }
    let tmp = consumers.join(format!("{group}.offset.tmp"));
    write_synced(&tmp, format!("{next_offset}\n").as_bytes())?;
    let path = offset_path(dir, group);
    fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
    segment::sync_dir(&consumers)
}

fn offset_path(dir: &Path, group: &str) -> PathBuf {
    dir.join(CONSUMERS_DIR).join(format!("{group}.offset"))
}

fn write_synced(path: &Path, contents: &[u8]) -> Result<(), LogError> {
    let io_error = |e| LogError::io(path, e);
    let mut file = File::create(path).map_err(io_error)?;
    file.write_all(contents).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

fn parse_offset(path: &Path, text: &str) -> Result<u64, LogError> {
    text.strip_suffix('\n')
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| {
            let reason = format!("offset file holds {text:?}, expected a decimal offset");
            LogError::corrupt(path, 0, reason)
        })
}

/// Group names become file names: keep them to a portable, unambiguous alphabet.
fn check_group(group: &str) -> Result<(), LogError> {
    let reason = if group.is_empty() {
        Some("it is empty")
    } else if group.len() > MAX_GROUP_LEN {
        Some("it is longer than 200 bytes")
    } else if group.starts_with('.') {
        Some("it starts with '.'")
    } else if !group.bytes().all(is_group_byte) {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LogError::InvalidGroup {
            group: group.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn is_group_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}
