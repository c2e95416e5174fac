//! Behaviour tests of the embedded log: round trips across segment rolls, torn-tail
//! recovery, corruption detection, a reader tailing a live writer, the writer lock and
//! consumer offsets.
//!
//! Key decision: damage is done to the real files (set_len, flipped bytes, hand-made
//! frames) rather than through test hooks, so the tests exercise exactly what a crash
//! or a bad disk leaves behind.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tempfile::TempDir;

use super::*;

/// 100-byte payloads make 124-byte frames: four fit in a 500-byte segment.
const PAYLOAD_BYTES: usize = 100;
const FRAME_BYTES: u64 = (HEADER_BYTES + PAYLOAD_BYTES) as u64;
const FOUR_FRAMES_PER_SEGMENT: u64 = 500;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        fsync: FsyncPolicy::Never,
    }
}

/// A recognisable payload of exactly `PAYLOAD_BYTES` bytes.
fn payload(i: u64) -> Vec<u8> {
    let mut bytes = format!("{{\"event\":{i}}}").into_bytes();
    bytes.resize(PAYLOAD_BYTES, b' ');
    bytes
}

fn timestamp(i: u64) -> i64 {
    1_700_000_000_000_000 + i as i64
}

/// Writes records `0..count` with flushes, in segments of four records.
fn write_log(dir: &Path, count: u64) {
    let mut writer = LogWriter::open(dir, config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    for i in 0..count {
        assert_eq!(writer.append(&payload(i), timestamp(i)).unwrap(), i);
    }
    writer.flush().unwrap();
}

fn read_all(reader: &mut LogReader) -> Result<Vec<OwnedRecord>, LogError> {
    let mut all = Vec::new();
    let mut batch = Vec::new();
    while reader.read_batch(7, &mut batch)? > 0 {
        all.append(&mut batch);
    }
    Ok(all)
}

fn read_all_from_start(dir: &Path) -> Result<Vec<OwnedRecord>, LogError> {
    read_all(&mut LogReader::open(dir)?)
}

fn offsets(records: &[OwnedRecord]) -> Vec<u64> {
    records.iter().map(|r| r.offset).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().unwrap()
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn flip_byte(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

fn encoded_frame(offset: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame::encode(&mut bytes, offset, timestamp(offset), &payload(offset));
    bytes
}

fn assert_corrupt_at(result: Result<impl std::fmt::Debug, LogError>, file: &Path, at: u64) {
    match result {
        Err(LogError::Corrupt { path, position, .. }) => {
            assert_eq!((path.as_path(), position), (file, at));
        }
        other => panic!("expected corruption in {} at {at}, got {other:?}", file.display()),
    }
}

#[test]
fn records_round_trip_across_segment_rolls() {
    let dir = TempDir::new().unwrap();
    let mut writer = LogWriter::open(dir.path(), config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    for i in 0..10 {
        writer.append(&payload(i), timestamp(i)).unwrap();
    }
    let rest: Vec<Vec<u8>> = (10..30).map(payload).collect();
    let range = writer
        .append_batch(rest.iter().map(Vec::as_slice), timestamp(10))
        .unwrap();
    assert_eq!(range, 10..30);
    writer.flush().unwrap();

    let records = read_all_from_start(dir.path()).unwrap();
    assert_eq!(offsets(&records), (0..30).collect::<Vec<_>>());
    for record in &records {
        assert_eq!(record.payload, payload(record.offset));
        let expected_ts = timestamp(record.offset.min(10));
        assert_eq!(record.append_ts_micros, expected_ts);
    }
}

#[test]
fn segments_roll_before_exceeding_segment_bytes_and_are_named_by_base_offset() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 30);
    let files = segment_files(dir.path());
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: Vec<String> = (0..8).map(|i| format!("{:020}.log", i * 4)).collect();
    assert_eq!(names, expected);
    for file in &files[..7] {
        assert_eq!(file_len(file), 4 * FRAME_BYTES);
    }
    assert_eq!(file_len(&files[7]), 2 * FRAME_BYTES);
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = TempDir::new().unwrap();
    let mut writer = LogWriter::open(dir.path(), config(50)).unwrap();
    for i in 0..3 {
        writer.append(&payload(i), timestamp(i)).unwrap();
    }
    writer.flush().unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 3);
    assert!(files.iter().all(|file| file_len(file) == FRAME_BYTES));
    assert_eq!(read_all_from_start(dir.path()).unwrap().len(), 3);
}

#[test]
fn seek_into_the_middle_of_the_third_segment_reads_from_there() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 30);
    let mut reader = LogReader::open(dir.path()).unwrap();
    reader.seek(10).unwrap();
    assert_eq!(reader.position(), 10);
    let mut batch = RecordBatch::new();
    assert_eq!(reader.read_into(5, &mut batch).unwrap(), 5);
    let got: Vec<(u64, Vec<u8>)> = batch.iter().map(|r| (r.offset, r.payload.to_vec())).collect();
    let expected: Vec<(u64, Vec<u8>)> = (10..15).map(|i| (i, payload(i))).collect();
    assert_eq!(got, expected);

    reader.seek(3).unwrap();
    assert_eq!(
        offsets(&read_all(&mut reader).unwrap()),
        (3..30).collect::<Vec<_>>()
    );
}

#[test]
fn seek_to_the_end_waits_and_past_the_end_is_out_of_range() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 30);
    let mut reader = LogReader::open(dir.path()).unwrap();
    reader.seek(30).unwrap();
    assert!(read_all(&mut reader).unwrap().is_empty());
    match reader.seek(31) {
        Err(LogError::OffsetOutOfRange {
            requested: 31,
            start: 0,
            end: 30,
        }) => {}
        other => panic!("expected out of range, got {other:?}"),
    }
}

#[test]
fn unflushed_records_are_invisible_until_flush() {
    let dir = TempDir::new().unwrap();
    let mut writer = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    let mut reader = LogReader::open(dir.path()).unwrap();
    for i in 0..5 {
        writer.append(&payload(i), timestamp(i)).unwrap();
    }
    assert!(read_all(&mut reader).unwrap().is_empty());
    assert_eq!(reader.end_offset().unwrap(), 0);
    writer.flush().unwrap();
    assert_eq!(reader.end_offset().unwrap(), 5);
    assert_eq!(offsets(&read_all(&mut reader).unwrap()), [0, 1, 2, 3, 4]);
}

#[test]
fn end_offset_counts_flushed_records_from_any_position() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 30);
    let mut reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(reader.end_offset().unwrap(), 30);
    reader.seek(29).unwrap();
    assert_eq!(reader.end_offset().unwrap(), 30);
    let empty = TempDir::new().unwrap();
    assert_eq!(LogReader::open(empty.path()).unwrap().end_offset().unwrap(), 0);
}

#[test]
fn reopening_after_a_clean_shutdown_truncates_nothing_and_continues_offsets() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 30);
    let writer = LogWriter::open(dir.path(), config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    assert_eq!(writer.next_offset(), 30);
    let report = writer.recovered();
    assert_eq!(report.bytes_truncated, 0);
    assert_eq!(report.records_kept, 2);
    assert_eq!(report.reason, None);
}

#[test]
fn garbage_after_the_last_frame_is_truncated_on_open() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 10);
    let last = last_segment(dir.path());
    append_bytes(&last, &[0xAB; 37]);

    let mut writer = LogWriter::open(dir.path(), config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    let report = writer.recovered().clone();
    assert_eq!(report.segment, last);
    assert_eq!(report.bytes_truncated, 37);
    assert_eq!(report.records_kept, 2);
    assert!(report.reason.is_some());
    assert_eq!(file_len(&last), 2 * FRAME_BYTES);

    assert_eq!(writer.append(b"after", 1).unwrap(), 10);
    writer.flush().unwrap();
    let records = read_all_from_start(dir.path()).unwrap();
    assert_eq!(records.len(), 11);
    assert_eq!(records[10].payload, b"after");
}

#[test]
fn a_frame_cut_mid_payload_is_truncated_on_open() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 11);
    let last = last_segment(dir.path());
    let file = OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(file_len(&last) - 10).unwrap();

    let mut writer = LogWriter::open(dir.path(), config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    assert_eq!(writer.recovered().bytes_truncated, FRAME_BYTES - 10);
    assert_eq!(writer.recovered().records_kept, 2);
    assert_eq!(writer.append(&payload(10), timestamp(10)).unwrap(), 10);
    writer.flush().unwrap();
    let records = read_all_from_start(dir.path()).unwrap();
    assert_eq!(offsets(&records), (0..11).collect::<Vec<_>>());
}

#[test]
fn a_frame_cut_inside_its_header_is_truncated_on_open() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 9);
    let last = last_segment(dir.path());
    let file = OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(5).unwrap();

    let writer = LogWriter::open(dir.path(), config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    assert_eq!(writer.recovered().bytes_truncated, 5);
    assert_eq!(writer.recovered().records_kept, 0);
    assert_eq!(writer.next_offset(), 8);
}

#[test]
fn a_last_frame_with_a_bad_checksum_is_truncated_on_open() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 11);
    let last = last_segment(dir.path());
    flip_byte(&last, 2 * FRAME_BYTES + 30);

    let writer = LogWriter::open(dir.path(), config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    assert_eq!(writer.recovered().bytes_truncated, FRAME_BYTES);
    assert!(writer.recovered().reason.as_ref().unwrap().contains("checksum"));
    assert_eq!(writer.next_offset(), 10);
}

#[test]
fn a_flipped_byte_in_an_older_segment_is_reported_as_corruption() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 30);
    let second = segment_files(dir.path())[1].clone();
    flip_byte(&second, FRAME_BYTES + 50);

    let result = read_all_from_start(dir.path());
    assert_corrupt_at(result, &second, FRAME_BYTES);
    // Opening the writer checks only the last segment and must not touch this one.
    let writer = LogWriter::open(dir.path(), config(FOUR_FRAMES_PER_SEGMENT)).unwrap();
    assert_eq!(writer.recovered().bytes_truncated, 0);
    drop(writer);
    let mut reader = LogReader::open(dir.path()).unwrap();
    assert_corrupt_at(reader.seek(7), &second, FRAME_BYTES);
    reader.seek(8).unwrap();
    assert_eq!(read_all(&mut reader).unwrap().len(), 22);
}

#[test]
fn a_bad_length_field_in_an_older_segment_is_reported_as_corruption() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 12);
    let first = segment_files(dir.path())[0].clone();
    flip_byte(&first, 2 * FRAME_BYTES + 3);
    assert_corrupt_at(read_all_from_start(dir.path()), &first, 2 * FRAME_BYTES);
}

#[test]
fn a_missing_segment_is_reported_as_corruption_of_the_next() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 12);
    let files = segment_files(dir.path());
    fs::remove_file(&files[1]).unwrap();
    assert_corrupt_at(read_all_from_start(dir.path()), &files[2], 0);
}

#[test]
fn reader_waits_for_a_partial_frame_at_the_end_to_complete() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 3);
    let last = last_segment(dir.path());
    let frame = encoded_frame(3);
    let mut reader = LogReader::open(dir.path()).unwrap();

    append_bytes(&last, &frame[..10]);
    assert_eq!(offsets(&read_all(&mut reader).unwrap()), [0, 1, 2]);
    append_bytes(&last, &frame[10..60]);
    assert!(read_all(&mut reader).unwrap().is_empty());
    append_bytes(&last, &frame[60..]);
    let records = read_all(&mut reader).unwrap();
    assert_eq!(offsets(&records), [3]);
    assert_eq!(records[0].payload, payload(3));
}

#[test]
fn reader_waits_on_a_bad_checksum_in_the_last_bytes_but_fails_when_more_follow() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 2);
    let last = last_segment(dir.path());
    let good = encoded_frame(2);
    let mut torn = good.clone();
    torn[HEADER_BYTES + 7] ^= 0xFF;
    let mut reader = LogReader::open(dir.path()).unwrap();

    append_bytes(&last, &torn);
    assert_eq!(offsets(&read_all(&mut reader).unwrap()), [0, 1]);
    assert!(read_all(&mut reader).unwrap().is_empty());

    // The writer finishes the frame: the reader must re-read it, not reuse stale bytes.
    fs::write(
        &last,
        [
            fs::read(&last).unwrap()[..2 * FRAME_BYTES as usize].to_vec(),
            good,
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(offsets(&read_all(&mut reader).unwrap()), [2]);

    append_bytes(&last, &torn);
    append_bytes(&last, &encoded_frame(3));
    assert_corrupt_at(read_all(&mut reader), &last, 3 * FRAME_BYTES);
}

#[test]
fn reader_opened_before_the_writer_sees_its_records() {
    let dir = TempDir::new().unwrap();
    let mut reader = LogReader::open(dir.path()).unwrap();
    assert!(read_all(&mut reader).unwrap().is_empty());
    write_log(dir.path(), 9);
    assert_eq!(read_all(&mut reader).unwrap().len(), 9);
}

#[test]
fn reader_on_a_missing_directory_fails_naming_it() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope");
    match LogReader::open(&missing) {
        Err(LogError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn reader_tails_a_concurrent_writer_and_sees_every_record_once_in_order() {
    const RECORDS: u64 = 20_000;
    let dir = TempDir::new().unwrap();
    let writer_dir = dir.path().to_path_buf();
    let mut reader = LogReader::open(dir.path()).unwrap();

    let writer = thread::spawn(move || {
        let mut writer = LogWriter::open(&writer_dir, config(8 << 10)).unwrap();
        for i in 0..RECORDS {
            writer.append(&payload(i), timestamp(i)).unwrap();
            if i % 37 == 0 {
                writer.flush().unwrap();
            }
        }
        writer.flush().unwrap();
    });

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut batch = RecordBatch::new();
    let mut next = 0;
    while next < RECORDS {
        assert!(Instant::now() < deadline, "reader stuck at offset {next}");
        if reader.read_into(500, &mut batch).unwrap() == 0 {
            thread::yield_now();
        }
        for record in &batch {
            assert_eq!(record.offset, next);
            assert_eq!(record.payload, payload(next));
            next += 1;
        }
    }
    writer.join().unwrap();
    assert!(read_all(&mut reader).unwrap().is_empty());
    assert!(segment_files(dir.path()).len() > 100);
}

#[test]
fn a_second_writer_on_the_same_directory_is_locked_out() {
    let dir = TempDir::new().unwrap();
    let first = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    match LogWriter::open(dir.path(), LogConfig::default()) {
        Err(LogError::Locked { path }) => assert_eq!(path, dir.path().join("writer.lock")),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    LogWriter::open(dir.path(), LogConfig::default()).unwrap();
}

#[test]
fn an_oversized_payload_is_refused_without_using_an_offset() {
    let dir = TempDir::new().unwrap();
    let mut writer = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    let huge = vec![0; MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(
        writer.append(&huge, 0),
        Err(LogError::PayloadTooLarge { .. })
    ));
    assert_eq!(writer.append(b"ok", 0).unwrap(), 0);
}

#[test]
fn dropping_the_writer_flushes_buffered_records() {
    let dir = TempDir::new().unwrap();
    let mut writer = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
    writer.append(b"kept", 0).unwrap();
    drop(writer);
    assert_eq!(read_all_from_start(dir.path()).unwrap()[0].payload, b"kept");
}

#[test]
fn committed_offsets_load_back_and_missing_ones_are_none() {
    let dir = TempDir::new().unwrap();
    assert_eq!(load_committed(dir.path(), "features").unwrap(), None);
    commit(dir.path(), "features", 42).unwrap();
    assert_eq!(load_committed(dir.path(), "features").unwrap(), Some(42));
    commit(dir.path(), "features", 7).unwrap();
    assert_eq!(load_committed(dir.path(), "features").unwrap(), Some(7));
    assert_eq!(load_committed(dir.path(), "drift").unwrap(), None);
    let consumers: Vec<_> = fs::read_dir(dir.path().join("consumers"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(consumers, ["features.offset"]);
}

#[test]
fn a_half_written_temporary_offset_never_replaces_the_committed_one() {
    let dir = TempDir::new().unwrap();
    commit(dir.path(), "features", 1234).unwrap();
    // A crash during the next commit leaves a torn temporary file behind.
    fs::write(dir.path().join("consumers/features.offset.tmp"), "56").unwrap();
    assert_eq!(load_committed(dir.path(), "features").unwrap(), Some(1234));
    commit(dir.path(), "features", 5678).unwrap();
    assert_eq!(load_committed(dir.path(), "features").unwrap(), Some(5678));
}

#[test]
fn a_torn_offset_file_is_corruption_not_zero() {
    let dir = TempDir::new().unwrap();
    commit(dir.path(), "features", 1).unwrap();
    let path = dir.path().join("consumers/features.offset");
    fs::write(&path, "12").unwrap();
    assert_corrupt_at(load_committed(dir.path(), "features"), &path, 0);
}

#[test]
fn group_names_that_are_not_plain_file_names_are_refused() {
    let dir = TempDir::new().unwrap();
    for group in ["", "../escape", ".hidden", "a/b", "sp ace", &"x".repeat(201)] {
        assert!(
            matches!(commit(dir.path(), group, 1), Err(LogError::InvalidGroup { .. })),
            "{group:?}"
        );
    }
    commit(dir.path(), "fraud-features_v2.1", 1).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_payloads_and_segment_size_read_back_identically(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..80),
        segment_bytes in 1u64..2_000,
        reopen_at in 0usize..80,
        batch_size in 1usize..10,
    ) {
        let dir = TempDir::new().unwrap();
        let reopen_at = reopen_at.min(payloads.len());
        for part in [&payloads[..reopen_at], &payloads[reopen_at..]] {
            let mut writer = LogWriter::open(dir.path(), config(segment_bytes)).unwrap();
            for payload in part {
                writer.append(payload, payload.len() as i64).unwrap();
            }
            writer.flush().unwrap();
        }

        let mut reader = LogReader::open(dir.path()).unwrap();
        let mut read = Vec::new();
        let mut batch = Vec::new();
        while reader.read_batch(batch_size, &mut batch).unwrap() > 0 {
            read.append(&mut batch);
        }
        prop_assert_eq!(read.len(), payloads.len());
        for (i, (record, payload)) in read.iter().zip(&payloads).enumerate() {
            prop_assert_eq!(record.offset, i as u64);
            prop_assert_eq!(&record.payload, payload);
            prop_assert_eq!(record.append_ts_micros, payload.len() as i64);
        }
        for file in segment_files(dir.path()) {
            let len = file_len(&file);
            prop_assert!(len > 0 || file == last_segment(dir.path()));
            prop_assert!(len <= segment_bytes || frame_count(&file) == 1);
        }
    }
}

/// Number of frames in a segment file, walking its length fields.
fn frame_count(path: &Path) -> usize {
    let bytes = fs::read(path).unwrap();
    let mut position = 0;
    let mut count = 0;
    while position < bytes.len() {
        let len = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap());
        position += HEADER_BYTES + len as usize;
        count += 1;
    }
    count
}

/// Prints read throughput; run with
/// `cargo test --release -p driftline-stream --lib log::tests::read_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a throughput report, not a check"]
fn read_throughput() {
    const RECORDS: u64 = 1_000_000;
    let dir = TempDir::new().unwrap();
    let event = [b'x'; 120];
    let mut writer = LogWriter::open(dir.path(), config(64 << 20)).unwrap();
    let started = Instant::now();
    for i in 0..RECORDS {
        writer.append(&event, i as i64).unwrap();
    }
    writer.flush().unwrap();
    let write_secs = started.elapsed().as_secs_f64();

    let mut reader = LogReader::open(dir.path()).unwrap();
    let mut batch = RecordBatch::new();
    let started = Instant::now();
    let mut total = 0;
    while reader.read_into(4096, &mut batch).unwrap() > 0 {
        total += batch.iter().map(|r| r.payload.len()).sum::<usize>();
    }
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(total, 120 * RECORDS as usize);
    println!(
        "append {:.0} records/s, read {:.0} records/s",
        RECORDS as f64 / write_secs,
        RECORDS as f64 / read_secs
    );
}
