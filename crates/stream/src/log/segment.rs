//! Segment files: their names, listing them, and making directory changes durable.
//!
//! Key decision: a segment is named by the zero-padded offset of its first record
//! (`{base:020}.log`), so the directory listing alone maps an offset to its file and
//! lexical order is offset order.

use std::fs;
use std::path::{Path, PathBuf};

use super::LogError;

const EXTENSION: &str = ".log";
const BASE_DIGITS: usize = 20;

/// The path of the segment whose first record has offset `base_offset`.
pub(super) fn path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}{EXTENSION}"))
}

/// Base offsets of all segments in `dir`, ascending. Other files are ignored.
pub(super) fn list(dir: &Path) -> Result<Vec<u64>, LogError> {
    let entries = fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_base) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// The base offset of the first segment after the one based at `base_offset`.
pub(super) fn next_after(dir: &Path, base_offset: u64) -> Result<Option<u64>, LogError> {
    Ok(list(dir)?.into_iter().find(|&base| base > base_offset))
}

fn parse_base(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(EXTENSION)?;
    let all_digits = digits.len() == BASE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
    all_digits.then(|| digits.parse().ok()).flatten()
}

/// Makes the creation, removal or renaming of entries in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(unix)]
    {
        let handle = fs::File::open(dir).map_err(|e| LogError::io(dir, e))?;
        handle.sync_all().map_err(|e| LogError::io(dir, e))?;
    }
    // Windows cannot open a directory as a file; NTFS journals the metadata itself.
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_through_parsing() {
        for base in [0, 7, 4096, u64::MAX] {
            let path = path(Path::new("/x"), base);
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(name.len(), BASE_DIGITS + EXTENSION.len());
            assert_eq!(parse_base(name), Some(base));
        }
    }

    #[test]
    fn other_files_are_not_segments() {
        for name in [
            "writer.lock",
            "0.log",
            "0000000000000000000a.log",
            "00000000000000000000.log.tmp",
            "99999999999999999999.log",
        ] {
            assert_eq!(parse_base(name), None, "{name}");
        }
    }
}
