//! The write-ahead log: accepted batches are appended here and made durable (per the fsync
//! policy) before the client is acknowledged. Records live in segment files named by the
//! sequence number of their first record; segments wholly covered by span blocks and the
//! engine checkpoint are deleted.
//!
//! Segment layout: an 8-byte header (`TLWAL`, format version, two zero bytes), then records:
//!
//! ```text
//! len: u32 LE | crc32: u32 LE (of seq and payload) | seq: u64 LE | payload: len bytes
//! ```
//!
//! On open every segment is read through. A record that is cut short or fails its checksum
//! ends the valid part of its segment: in the newest segment that is a torn tail (a write the
//! crash interrupted) and is truncated; in an older segment the rest of that segment is
//! skipped. Both are reported in [`Recovery`]; records before the damage are kept. A segment
//! whose header is cut short (its creation was interrupted, or failed on a full disk) holds
//! no record and is removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Magic bytes opening every segment.
const MAGIC: &[u8; 5] = b"TLWAL";
/// The segment format version this build writes and reads.
pub const WAL_VERSION: u8 = 1;
const HEADER_LEN: u64 = HEADER_BYTES as u64;
const HEADER_BYTES: usize = 8;
const RECORD_HEADER_LEN: usize = 16;
/// Larger records are treated as damage: no accepted batch comes near this.
const MAX_RECORD_BYTES: u32 = 512 << 20;

/// When the WAL calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every commit is fsynced before it returns: an acknowledged batch survives a power cut.
    Always,
    /// Commits are written to the OS at once and fsynced at most this often: an acknowledged
    /// batch survives a crash of the server, and a power cut loses at most this interval.
    Interval(Duration),
    /// Never fsync; the OS writes back when it chooses.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self { segment_bytes: 64 << 20, fsync: FsyncPolicy::Always }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a WAL segment of a supported version (header {header:02x?})")]
    Header { path: String, header: Vec<u8> },
}

fn io_err(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> WalError {
    move |source| WalError::Io { context: context(), source }
}

/// Damage found while opening the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: String,
    pub offset: u64,
    /// Bytes after the last good record that were cut off (newest segment) or skipped.
    pub bytes: u64,
    pub reason: &'static str,
    /// True when the bytes were truncated from the newest segment (a torn tail).
    pub truncated: bool,
}

/// What opening the WAL found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub records: u64,
    pub damage: Vec<Damage>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first_seq: u64,
    /// Sequence number of the last record, `None` while empty.
    last_seq: Option<u64>,
}

/// An open WAL, appending to its newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// Closed segments, oldest first; the open one is `current`.
    closed: Vec<Segment>,
    current: Segment,
    file: File,
    /// Bytes of the open segment known to be written whole.
    written: u64,
    /// Records appended since the last commit.
    pending: Vec<u8>,
    pending_last_seq: Option<u64>,
    next_seq: u64,
    last_sync: Instant,
    unsynced: bool,
    /// Set after a failed write: the next commit starts a new segment first.
    needs_new_segment: bool,
}

impl Wal {
    /// Opens the WAL in `dir` (created if missing), calling `replay` with each valid record
    /// whose sequence number is above `after_seq`, in order. New records are numbered after
    /// both the last record found and `after_seq`.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        after_seq: u64,
        mut replay: impl FnMut(u64, &[u8]),
    ) -> Result<(Self, Recovery), WalError> {
        fs::create_dir_all(dir).map_err(io_err(|| format!("creating {}", dir.display())))?;
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(|| format!("reading {}", dir.display())))? {
            let entry = entry.map_err(io_err(|| format!("reading {}", dir.display())))?;
            let name = entry.file_name();
            let Some(first_seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            paths.push((first_seq, entry.path()));
        }
        paths.sort();
        let mut recovery = Recovery { segments: paths.len(), ..Recovery::default() };
        let mut closed = Vec::new();
        let mut max_seq = after_seq;
        let count = paths.len();
        for (i, (first_seq, path)) in paths.into_iter().enumerate() {
            let newest = i + 1 == count;
            let last_seq = read_segment(&path, newest, &mut recovery, |seq, payload| {
                max_seq = max_seq.max(seq);
                if seq > after_seq {
                    replay(seq, payload);
                }
            })?;
            match last_seq {
                Some(_) => closed.push(Segment { path, first_seq, last_seq }),
                None => {
                    fs::remove_file(&path)
                        .map_err(io_err(|| format!("removing empty {}", path.display())))?;
                }
            }
        }
        let next_seq = max_seq + 1;
        let (current, file) = create_segment(dir, next_seq)?;
        sync_dir(dir)?;
        let wal = Self {
            dir: dir.to_owned(),
            options,
            closed,
            current,
            file,
            written: HEADER_LEN,
            pending: Vec::new(),
            pending_last_seq: None,
            next_seq,
            last_sync: Instant::now(),
            unsynced: false,
            needs_new_segment: false,
        };
        Ok((wal, recovery))
    }

    /// Adds a record to the pending commit; returns its sequence number. Nothing is written
    /// until [`Wal::commit`].
    pub fn append(&mut self, payload: &[u8]) -> u64 {
        self.append_with(|out| out.extend_from_slice(payload))
    }

    /// The same, with the payload appended by `encode` to the pending commit right after the
    /// record's header, so that it is not encoded apart and copied.
    pub fn append_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let start = self.pending.len();
        // Length and checksum, known once the payload is in place.
        self.pending.extend_from_slice(&[0; 8]);
        self.pending.extend_from_slice(&seq.to_le_bytes());
        encode(&mut self.pending);
        let len = self.pending.len() - start - RECORD_HEADER_LEN;
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        // The checksum covers the sequence number and the payload, which follow each other.
        let crc = crc32fast::hash(&self.pending[start + 8..]);
        self.pending[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.pending[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.pending_last_seq = Some(seq);
        seq
    }

    /// Writes every pending record and fsyncs per the policy: one write and at most one fsync
    /// for the whole group. On error nothing pending is kept (the segment is cut back to its
    /// last whole record), so the caller must not acknowledge those records.
    pub fn commit(&mut self) -> Result<(), WalError> {
        if self.needs_new_segment {
            // The last failed write left the open segment suspect (after a failed fsync the
            // OS may have dropped its dirty pages): continue in a fresh one.
            if let Err(e) = self.start_segment() {
                // Not acknowledged, so not kept: a later commit must not write them.
                self.pending.clear();
                self.pending_last_seq = None;
                return Err(e);
            }
            self.needs_new_segment = false;
        }
        if self.pending.is_empty() {
            return self.sync_if_due();
        }
        let before = self.written;
        let result = self.write_pending();
        let pending_last_seq = self.pending_last_seq.take();
        self.pending.clear();
        if let Err(e) = result {
            self.cut_back(before);
            self.needs_new_segment = true;
            return Err(e);
        }
        self.current.last_seq = pending_last_seq.or(self.current.last_seq);
        if self.written >= self.options.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), WalError> {
        let path = &self.current.path;
        self.file
            .write_all(&self.pending)
            .map_err(io_err(|| format!("writing WAL segment {}", path.display())))?;
        self.written += self.pending.len() as u64;
        self.unsynced = true;
        match self.options.fsync {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => self.sync_if_due(),
        }
    }

    /// Cuts a partly written commit off the segment so no later record follows a torn one.
    fn cut_back(&mut self, good: u64) {
        if let Err(e) =
            self.file.set_len(good).and_then(|()| self.file.seek(SeekFrom::Start(good)).map(drop))
        {
            tracing::error!(segment = %self.current.path.display(), error = %e,
                "cutting back a failed WAL write failed; the next open truncates it");
        }
        self.written = good;
        self.unsynced = false;
    }

    /// Fsyncs when the policy's interval has passed since the last fsync.
    pub fn sync_if_due(&mut self) -> Result<(), WalError> {
        match self.options.fsync {
            FsyncPolicy::Interval(every) if self.unsynced && self.last_sync.elapsed() >= every => {
                self.sync()
            }
            FsyncPolicy::Always if self.unsynced => self.sync(),
            _ => Ok(()),
        }
    }

    fn sync(&mut self) -> Result<(), WalError> {
        let path = &self.current.path;
        self.file
            .sync_data()
            .map_err(io_err(|| format!("fsync of WAL segment {}", path.display())))?;
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        if self.options.fsync != FsyncPolicy::Never && self.unsynced {
            self.sync()?;
        }
        self.start_segment()
    }

    fn start_segment(&mut self) -> Result<(), WalError> {
        if self.current.last_seq.is_none() && self.current.first_seq == self.next_seq {
            // The open segment holds no record: start it over in place.
            let (segment, file) = create_segment(&self.dir, self.next_seq)?;
            self.current = segment;
            self.file = file;
            self.written = HEADER_LEN;
            self.unsynced = false;
            return Ok(());
        }
        let (segment, file) = create_segment(&self.dir, self.next_seq)?;
        sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut self.current, segment);
        self.file = file;
        self.written = HEADER_LEN;
        self.unsynced = false;
        self.closed.push(old);
        Ok(())
    }

    /// Closes the open segment (if it has records) so that everything written so far can be
    /// released by [`Wal::remove_through`].
    pub fn seal(&mut self) -> Result<(), WalError> {
        if self.current.last_seq.is_some() { self.rotate() } else { Ok(()) }
    }

    /// Deletes closed segments whose records all have sequence numbers at or below `seq`.
    /// Returns how many were deleted.
    pub fn remove_through(&mut self, seq: u64) -> Result<usize, WalError> {
        let keep_from = self.closed.iter().position(|s| s.last_seq.is_some_and(|last| last > seq));
        let end = keep_from.unwrap_or(self.closed.len());
        for segment in &self.closed[..end] {
            fs::remove_file(&segment.path)
                .map_err(io_err(|| format!("removing WAL segment {}", segment.path.display())))?;
        }
        self.closed.drain(..end);
        Ok(end)
    }

    /// Sequence number the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Segments on disk and their total size in bytes.
    pub fn disk_usage(&self) -> (usize, u64) {
        let closed: u64 =
            self.closed.iter().filter_map(|s| fs::metadata(&s.path).ok()).map(|m| m.len()).sum();
        (self.closed.len() + 1, closed + self.written)
    }

    /// First sequence number still on disk.
    pub fn oldest_seq(&self) -> u64 {
        self.closed.first().map_or(self.current.first_seq, |s| s.first_seq)
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<(Segment, File), WalError> {
    let path = segment_path(dir, first_seq);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(io_err(|| format!("creating WAL segment {}", path.display())))?;
    let mut header = [0u8; HEADER_BYTES];
    header[..5].copy_from_slice(MAGIC);
    header[5] = WAL_VERSION;
    if let Err(e) = file.write_all(&header) {
        // Best effort (a full disk still allows unlinking): what is left is read as empty.
        drop(fs::remove_file(&path));
        return Err(io_err(|| format!("writing {}", path.display()))(e));
    }
    Ok((Segment { path, first_seq, last_seq: None }, file))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(|| format!("fsync of directory {}", dir.display())))
}

/// Reads one segment through, calling `each` per valid record; returns the last sequence
/// number. Damage ends the segment: truncated when `newest`, skipped otherwise.
fn read_segment(
    path: &Path,
    newest: bool,
    recovery: &mut Recovery,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<Option<u64>, WalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(|| format!("reading WAL segment {}", path.display())))?;
    let header_ok = bytes.len() >= HEADER_BYTES && &bytes[..5] == MAGIC && bytes[5] == WAL_VERSION;
    if !header_ok {
        if bytes.len() < HEADER_BYTES && bytes.starts_with(&MAGIC[..bytes.len().min(5)]) {
            // A segment whose header write was cut off (a crash or a full disk while it was
            // being created, newest or not, as later creations may have failed the same way):
            // records follow a whole header only, so nothing is in it.
            return Ok(None);
        }
        return Err(WalError::Header {
            path: path.display().to_string(),
            header: bytes[..bytes.len().min(HEADER_BYTES)].to_vec(),
        });
    }
    let mut pos = HEADER_BYTES;
    let mut last_seq = None;
    let mut damage = None;
    while pos < bytes.len() {
        match parse_record(&bytes[pos..]) {
            Ok((seq, payload)) => {
                each(seq, payload);
                recovery.records += 1;
                last_seq = Some(seq);
                pos += RECORD_HEADER_LEN + payload.len();
            }
            Err(reason) => {
                damage = Some(reason);
                break;
            }
        }
    }
    if let Some(reason) = damage {
        let offset = pos as u64;
        let bytes_after = bytes.len() as u64 - offset;
        recovery.damage.push(Damage {
            segment: path.display().to_string(),
            offset,
            bytes: bytes_after,
            reason,
            truncated: newest,
        });
        if newest {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(|| format!("opening {} to truncate", path.display())))?;
            file.set_len(offset)
                .and_then(|()| file.sync_all())
                .map_err(io_err(|| format!("truncating torn tail of {}", path.display())))?;
        }
    }
    Ok(last_seq)
}

fn parse_record(bytes: &[u8]) -> Result<(u64, &[u8]), &'static str> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err("record header cut short");
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let len = word(0);
    let crc = word(4);
    if len > MAX_RECORD_BYTES {
        return Err("record length out of range");
    }
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&bytes[8..16]);
    let end = RECORD_HEADER_LEN + len as usize;
    let Some(payload) = bytes.get(RECORD_HEADER_LEN..end) else {
        return Err("record cut short");
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq_bytes);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err("record checksum mismatch");
    }
    Ok((u64::from_le_bytes(seq_bytes), payload))
}
