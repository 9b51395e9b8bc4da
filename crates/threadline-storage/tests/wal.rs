//! The WAL and its record encoding: lossless round trips, and damage (torn tails, flipped
//! bits, damaged older segments) detected, reported and cut off without losing earlier
//! records.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::Path;

use proptest::prelude::*;
use threadline_storage::codec::{DecodeError, decode_batch, encode_batch};
use threadline_storage::wal::{FsyncPolicy, Recovery, Wal, WalOptions};
use threadline_testsuite::arbitrary;
use threadline_testsuite::server::TempDir;

fn options(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes, fsync: FsyncPolicy::Never }
}

fn reopen(dir: &Path, after: u64) -> (Wal, Recovery, Vec<(u64, Vec<u8>)>) {
    let mut records = Vec::new();
    let (wal, recovery) = Wal::open(dir, options(1 << 20), after, |seq, payload| {
        records.push((seq, payload.to_vec()));
    })
    .unwrap();
    (wal, recovery, records)
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batches_round_trip_through_the_codec(spans in arbitrary::batch()) {
        let mut bytes = Vec::new();
        encode_batch(&spans, &mut bytes);
        prop_assert_eq!(decode_batch(&bytes).unwrap(), spans);
    }

    #[test]
    fn a_cut_or_damaged_batch_is_an_error_never_a_panic(spans in arbitrary::batch(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
        let mut bytes = Vec::new();
        encode_batch(&spans, &mut bytes);
        let at = cut.index(bytes.len());
        prop_assert!(decode_batch(&bytes[..at]).is_err());
        bytes[at] ^= flip;
        let _ = decode_batch(&bytes);
    }

    #[test]
    fn wal_records_round_trip_across_segments(batches in proptest::collection::vec(arbitrary::batch(), 1..12)) {
        let dir = TempDir::new("wal-prop").unwrap();
        let mut written = Vec::new();
        {
            // Tiny segments, so records spread over several files.
            let (mut wal, _) = Wal::open(dir.path(), options(256), 0, |_, _| {}).unwrap();
            for spans in &batches {
                let mut payload = Vec::new();
                encode_batch(spans, &mut payload);
                let seq = wal.append(&payload);
                wal.commit().unwrap();
                written.push((seq, payload));
            }
        }
        let (_, recovery, records) = reopen(dir.path(), 0);
        prop_assert!(recovery.damage.is_empty(), "{:?}", recovery.damage);
        prop_assert_eq!(&records, &written);
        for ((_, payload), spans) in records.iter().zip(&batches) {
            prop_assert_eq!(&decode_batch(payload).unwrap(), spans);
        }
    }
}

/// Spans of one service repeat the same attribute keys: a batch holds each key once, so a
/// WAL record is about two fifths smaller than with every key written out.
#[test]
fn each_attribute_key_is_written_once_per_batch() {
    use threadline_core::value::{AnyValue, KeyValue};
    let spans: Vec<_> = threadline_testsuite::generate::core_spans(100)
        .into_iter()
        .map(|mut span| {
            span.attributes.push(KeyValue {
                key: "order.id.for.this.test".into(),
                value: AnyValue::String(span.span_id.to_string().into()),
            });
            span
        })
        .collect();
    let mut bytes = Vec::new();
    encode_batch(&spans, &mut bytes);
    let needle = b"order.id.for.this.test";
    let found = bytes.windows(needle.len()).filter(|w| w == needle).count();
    assert_eq!(found, 1, "the key is written {found} times in {} spans", spans.len());
    assert_eq!(decode_batch(&bytes).unwrap(), spans);
}

/// More distinct keys than the encoder's table has slots, met again in another order: keys
/// that lost their slot are written out again, and the batch still reads back whole.
#[test]
fn a_batch_with_thousands_of_distinct_keys_round_trips() {
    use threadline_core::value::{AnyValue, KeyValue};
    let spans: Vec<_> = threadline_testsuite::generate::core_spans(60)
        .into_iter()
        .enumerate()
        .map(|(i, mut span)| {
            span.attributes = (0..50)
                .map(|j| KeyValue {
                    key: format!("key.{}", (i * 37 + j * 11) % 3000).into(),
                    value: AnyValue::Int(i64::try_from(j).unwrap()),
                })
                .collect();
            span
        })
        .collect();
    let mut bytes = Vec::new();
    encode_batch(&spans, &mut bytes);
    assert_eq!(decode_batch(&bytes).unwrap(), spans);
}

#[test]
fn an_unknown_batch_version_is_named() {
    assert_eq!(decode_batch(&[9, 0, 0, 0]).unwrap_err(), DecodeError::Version(9));
}

fn write_records(dir: &Path, payloads: &[&[u8]], segment_bytes: u64) {
    let (mut wal, _) = Wal::open(dir, options(segment_bytes), 0, |_, _| {}).unwrap();
    for payload in payloads {
        wal.append(payload);
        wal.commit().unwrap();
    }
}

#[test]
fn a_torn_tail_is_truncated_and_reported_and_earlier_records_kept() {
    let dir = TempDir::new("wal-torn").unwrap();
    write_records(dir.path(), &[b"one", b"two", b"three"], 1 << 20);
    let newest = segments(dir.path())
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 8)
        .unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    // Cut the last record in half, as a crash in the middle of a write does.
    std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(len - 3).unwrap();

    let (mut wal, recovery, records) = reopen(dir.path(), 0);
    assert_eq!(records, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
    assert_eq!(recovery.damage.len(), 1, "{recovery:?}");
    let damage = &recovery.damage[0];
    assert!(damage.truncated);
    assert_eq!(damage.reason, "record cut short");
    assert_eq!(damage.bytes, 16 + 5 - 3);

    // Appending goes on after the good records, and a second open finds no damage.
    let seq = wal.append(b"four");
    wal.commit().unwrap();
    assert_eq!(seq, 3, "the torn record's number is reused: it was never acknowledged");
    drop(wal);
    let (_, recovery, records) = reopen(dir.path(), 0);
    assert!(recovery.damage.is_empty(), "{recovery:?}");
    let payloads: Vec<_> = records.into_iter().map(|(_, p)| p).collect();
    assert_eq!(payloads, vec![b"one".to_vec(), b"two".to_vec(), b"four".to_vec()]);
}

#[test]
fn a_flipped_bit_fails_the_checksum() {
    let dir = TempDir::new("wal-bitflip").unwrap();
    write_records(dir.path(), &[b"alpha", b"bravo", b"charlie"], 1 << 20);
    let segment = segments(dir.path())[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    // Second record's payload: header 8 + record one (16 + 5) + record two's header 16.
    bytes[8 + 21 + 16 + 1] ^= 0x04;
    std::fs::write(&segment, &bytes).unwrap();

    let (_, recovery, records) = reopen(dir.path(), 0);
    assert_eq!(records, vec![(1, b"alpha".to_vec())]);
    assert_eq!(recovery.damage[0].reason, "record checksum mismatch");
}

#[test]
fn damage_in_an_older_segment_skips_only_its_rest() {
    let dir = TempDir::new("wal-older").unwrap();
    // 40-byte segments: one record per segment.
    write_records(
        dir.path(),
        &[b"aaaaaaaaaaaaaaaaaa", b"bbbbbbbbbbbbbbbbbb", b"cccccccccccccccccc"],
        40,
    );
    let paths = segments(dir.path());
    let mut bytes = std::fs::read(&paths[1]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&paths[1], &bytes).unwrap();

    let (_, recovery, records) = reopen(dir.path(), 0);
    let seqs: Vec<u64> = records.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![1, 3]);
    assert_eq!(recovery.damage.len(), 1);
    assert!(!recovery.damage[0].truncated, "an older segment is reported, not cut");
}

#[test]
fn replay_skips_what_a_checkpoint_covers_and_numbering_continues() {
    let dir = TempDir::new("wal-after").unwrap();
    write_records(dir.path(), &[b"1", b"2", b"3"], 1 << 20);
    let (wal, _, records) = reopen(dir.path(), 2);
    assert_eq!(records, vec![(3, b"3".to_vec())]);
    assert_eq!(wal.next_seq(), 4);
    drop(wal);
    // Numbering never goes back, even when every segment is gone.
    let (wal, _, _) = reopen(dir.path(), 10);
    assert_eq!(wal.next_seq(), 11);
}

#[test]
fn sealed_segments_covered_by_a_sequence_number_are_removed() {
    let dir = TempDir::new("wal-remove").unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options(1 << 20), 0, |_, _| {}).unwrap();
    for payload in [b"a", b"b"] {
        wal.append(payload);
    }
    wal.commit().unwrap();
    wal.seal().unwrap();
    wal.append(b"c");
    wal.commit().unwrap();
    assert_eq!(wal.remove_through(1).unwrap(), 0, "the sealed segment still holds record 2");
    assert_eq!(wal.remove_through(2).unwrap(), 1);
    assert_eq!(wal.oldest_seq(), 3);
    drop(wal);
    let (_, _, records) = reopen(dir.path(), 0);
    assert_eq!(records, vec![(3, b"c".to_vec())]);
}

#[test]
fn a_segment_with_a_foreign_header_is_refused_by_name() {
    let dir = TempDir::new("wal-header").unwrap();
    std::fs::write(dir.path().join("00000000000000000001.wal"), b"PARQUET1 not a wal").unwrap();
    let error = Wal::open(dir.path(), options(1 << 20), 0, |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("00000000000000000001.wal"), "{error}");
    assert!(error.to_string().contains("not a WAL segment"), "{error}");
}

#[test]
fn segments_whose_creation_was_cut_short_are_removed_wherever_they_are() {
    let dir = TempDir::new("wal-cut-header").unwrap();
    write_records(dir.path(), &[b"a", b"b"], 1 << 20);
    // As a full disk leaves them: created, then no room for the header, twice in a row.
    std::fs::write(dir.path().join("00000000000000000007.wal"), b"").unwrap();
    std::fs::write(dir.path().join("00000000000000000008.wal"), b"TLW").unwrap();
    let (mut wal, _, records) = reopen(dir.path(), 0);
    assert_eq!(records, vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
    let names: Vec<_> =
        segments(dir.path()).iter().map(|p| p.file_name().unwrap().to_owned()).collect();
    assert!(
        !names.iter().any(|n| n == "00000000000000000007.wal" || n == "00000000000000000008.wal"),
        "{names:?}"
    );
    wal.append(b"c");
    wal.commit().unwrap();
    drop(wal);
    let (_, _, records) = reopen(dir.path(), 0);
    assert_eq!(records.last().unwrap(), &(3, b"c".to_vec()));
}
