//! The disk spool: batches that could not be inserted yet (and, in `fsync` mode, every beacon
//! before it is acknowledged) wait here in segment files until ClickHouse takes them.
//!
//! Layout of `[spool] dir`:
//! - `LOCK`: held (flock) while a collector uses the directory; a second one refuses to start.
//! - `<table>-<seq>.seg`: sealed segments, replayed oldest first and deleted only after the
//!   insert is acknowledged. `<table>-<seq>.open`: the `fsync` mode's segment being appended to
//!   (sealed on the next start after a crash), made of zeros first (`new_segment`), which
//!   records overwrite. `*.tmp`: a spill being written.
//! - `dead-letter/<table>-<seq>.seg` + `.reason`: batches ClickHouse refused for their data;
//!   the same format, so a segment moved back into the spool directory is replayed.
//!
//! A segment is [`FILE_MAGIC`] followed by records: magic, payload length, row count, an 8-byte
//! BLAKE3 checksum of the rest, then the payload: each row's length (u32), then the rows
//! (RowBinary rows of the segment's table, back to back: the bytes an insert sends). A record
//! that fails any check (a torn tail after a crash, flipped bits, lengths that do not add up)
//! is skipped up to the next record that passes them, and counted; its bytes are never
//! inserted. Zeros from where a record would start to the end of the file are not data (the
//! write-ahead segments' unused zeros).
//!
//! Row lengths let a replay leave out the rows of erased or blocked people (`filter`). Segments
//! of the first format (`WSSPOOL1`, records `WSR1`: no lengths), left by an older build in the
//! spool or in `dead-letter/`, are still read: their rows are told apart by decoding them
//! (`Table::split_rows`); a record whose rows do not decode as the current row type is kept
//! whole and replayed unfiltered (docs/reliability.md).
//!
//! Rows here are pseudonymised like the stores': no raw address or cookie is ever written.
//! Everything in this module is blocking file I/O: callers use `spawn_blocking` or a thread.

use std::{
    borrow::Cow,
    collections::VecDeque,
    fs::{self, File},
    io::{self, Seek, SeekFrom, Write},
    ops::Range,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::Notify;

use super::batch::{Batch, EncodedBeacon, Table};
use crate::metrics::{Metrics, SpoolRowOutcome};

pub const FILE_MAGIC: &[u8; 8] = b"WSSPOOL2";
const RECORD_MAGIC: &[u8; 4] = b"WSR2";
/// The first format's magic numbers: records without row lengths.
const FILE_MAGIC_V1: &[u8; 8] = b"WSSPOOL1";
const RECORD_MAGIC_V1: &[u8; 4] = b"WSR1";
/// Magic, payload length, rows, checksum.
const RECORD_HEADER: usize = 4 + 4 + 4 + 8;
/// No record is larger (a length above it is corruption): a batch of `sink.max_batch_bytes`
/// plus the one beacon's rows that can take it past its limit, and a 4-byte length per row
/// (no encoded row is shorter than that, so the lengths take at most as much again).
const MAX_RECORD_BYTES: usize = 2 * (crate::config::MAX_BATCH_BYTES + 1024 * 1024);
const DEAD_LETTER_DIR: &str = "dead-letter";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full")]
    Full,
    #[error("spool I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// A sealed segment, ready to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub table: Table,
    seq: u64,
    bytes: u64,
}

/// A segment's valid rows, and what was skipped.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    pub batch: Batch,
    /// Runs of bytes that failed the checks.
    pub corrupt_records: u64,
    pub skipped_bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// One per table: a segment was sealed.
    sealed: [Notify; 2],
    metrics: Arc<Metrics>,
    _lock: File,
}

struct State {
    /// Bytes of segments on disk, open ones included.
    bytes: u64,
    dead_letter_bytes: u64,
    next_seq: u64,
    queues: [VecDeque<Segment>; 2],
    open_segments: usize,
}

impl State {
    /// The sequence number of a new segment: file names sort in the order segments were made.
    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }
}

impl Spool {
    /// Takes the directory's lock, seals what a crash left open, and queues every sealed
    /// segment for replay in sequence order.
    pub fn open(dir: &Path, max_bytes: u64, metrics: Arc<Metrics>) -> io::Result<Spool> {
        fs::create_dir_all(dir.join(DEAD_LETTER_DIR))?;
        let lock = File::create(dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(io::ErrorKind::WouldBlock, format!("another collector is using the spool {}", dir.display()))
        })?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some((table, seq, extension)) = parse_name(&path) else { continue };
            match extension {
                "tmp" => fs::remove_file(&path)?,
                "open" => {
                    let bytes = cut_zeros(&path)?;
                    fs::rename(&path, segment_path(dir, table, seq, "seg"))?;
                    found.push(Segment { table, seq, bytes });
                }
                "seg" => found.push(Segment { table, seq, bytes: fs::metadata(&path)?.len() }),
                _ => {}
            }
        }
        sync_dir(dir)?;
        found.sort_by_key(|s| s.seq);
        let mut state = State {
            bytes: found.iter().map(|s| s.bytes).sum(),
            dead_letter_bytes: dir_bytes(&dir.join(DEAD_LETTER_DIR))?,
            next_seq: found.last().map_or(0, |s| s.seq + 1),
            queues: Default::default(),
            open_segments: 0,
        };
        for segment in found {
            state.queues[segment.table.index()].push_back(segment);
        }
        let spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            state: Mutex::new(state),
            sealed: Default::default(),
            metrics,
            _lock: lock,
        };
        spool.update_gauges(&spool.state());
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rows or bytes waiting: whether anything is left to replay.
    pub fn is_empty(&self) -> bool {
        let state = self.state();
        state.queues.iter().all(VecDeque::is_empty) && state.open_segments == 0
    }

    pub fn bytes(&self) -> u64 {
        self.state().bytes
    }

    /// Whether a write of `bytes` would be refused.
    pub fn would_refuse(&self, bytes: u64) -> bool {
        self.state().bytes + bytes > self.max_bytes
    }

    /// Writes a batch as one sealed segment: written whole, fsynced, then renamed into place.
    pub fn write_batch(&self, batch: &Batch) -> Result<(), SpoolError> {
        let data = segment_of(batch);
        let size = data.len() as u64;
        self.reserve(size)?;
        let seq = self.state().take_seq();
        let tmp = segment_path(&self.dir, batch.table, seq, "tmp");
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&data)?;
            file.sync_data()?;
            fs::rename(&tmp, segment_path(&self.dir, batch.table, seq, "seg"))?;
            sync_dir(&self.dir)
        })();
        if let Err(error) = written {
            let _ = fs::remove_file(&tmp);
            self.release(size);
            return Err(error.into());
        }
        self.metrics
            .spool_rows
            .with_label_values(&[batch.table.label(), SpoolRowOutcome::Written.label()])
            .inc_by(u64::from(batch.rows));
        self.push_sealed(Segment { table: batch.table, seq, bytes: size });
        Ok(())
    }

    /// The oldest sealed segment of `table`; it stays queued until removed or dead-lettered.
    pub fn oldest(&self, table: Table) -> Option<Segment> {
        self.state().queues[table.index()].front().cloned()
    }

    /// Waits until a segment of `table` may have been sealed.
    pub async fn sealed(&self, table: Table) {
        self.sealed[table.index()].notified().await;
    }

    /// Reads a segment's valid records; counts what it skips.
    pub fn read(&self, segment: &Segment) -> io::Result<Replay> {
        let replay = decode_segment(segment.table, fs::read(self.path(segment))?);
        if replay.corrupt_records > 0 {
            self.metrics.spool_corrupt_records.inc_by(replay.corrupt_records);
            self.metrics.spool_skipped_bytes.inc_by(replay.skipped_bytes);
            tracing::error!(
                segment = %self.path(segment).display(),
                corrupt_records = replay.corrupt_records,
                skipped_bytes = replay.skipped_bytes,
                rows_kept = replay.batch.rows,
                "corrupt spool records skipped"
            );
        }
        Ok(replay)
    }

    /// Deletes a replayed segment: its rows are in ClickHouse.
    pub fn remove(&self, segment: &Segment, rows: u32) -> io::Result<()> {
        fs::remove_file(self.path(segment))?;
        self.forget(segment);
        self.metrics
            .spool_rows
            .with_label_values(&[segment.table.label(), SpoolRowOutcome::Replayed.label()])
            .inc_by(u64::from(rows));
        Ok(())
    }

    /// Moves a segment ClickHouse refused into `dead-letter/`, with the reason beside it.
    pub fn dead_letter_segment(&self, segment: &Segment, rows: u32, reason: &str) -> io::Result<()> {
        let target = self.dir.join(DEAD_LETTER_DIR).join(segment_name(segment.table, segment.seq, "seg"));
        fs::rename(self.path(segment), &target)?;
        self.write_reason(&target, segment.table, rows, reason)?;
        self.forget(segment);
        self.state().dead_letter_bytes += segment.bytes;
        self.metrics.dead_letter_rows.with_label_values(&[segment.table.label()]).inc_by(u64::from(rows));
        Ok(())
    }

    /// Writes a batch ClickHouse refused into `dead-letter/`; false when the dead letters are
    /// already `max_bytes` large and the batch was discarded instead.
    pub fn dead_letter_batch(&self, batch: &Batch, reason: &str) -> io::Result<bool> {
        let data = segment_of(batch);
        let seq = {
            let mut state = self.state();
            if state.dead_letter_bytes + data.len() as u64 > self.max_bytes {
                return Ok(false);
            }
            state.dead_letter_bytes += data.len() as u64;
            state.take_seq()
        };
        let target = self.dir.join(DEAD_LETTER_DIR).join(segment_name(batch.table, seq, "seg"));
        let mut file = File::create(&target)?;
        file.write_all(&data)?;
        file.sync_data()?;
        self.write_reason(&target, batch.table, batch.rows, reason)?;
        self.metrics.dead_letter_rows.with_label_values(&[batch.table.label()]).inc_by(u64::from(batch.rows));
        Ok(true)
    }

    /// Deletes dead letters (segment and reason) last written more than `max_age` ago: they
    /// hold pseudonymised rows, which must not outlive the stores' retention. Returns how many
    /// segments went.
    pub fn prune_dead_letters(&self, max_age: Duration) -> io::Result<usize> {
        let dir = self.dir.join(DEAD_LETTER_DIR);
        let mut pruned = 0;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            let age = metadata.modified()?.elapsed().unwrap_or_default();
            if age <= max_age || !metadata.is_file() {
                continue;
            }
            fs::remove_file(entry.path())?;
            let mut state = self.state();
            state.dead_letter_bytes = state.dead_letter_bytes.saturating_sub(metadata.len());
            pruned += usize::from(entry.path().extension().is_some_and(|e| e == "seg"));
        }
        Ok(pruned)
    }

    fn write_reason(&self, segment: &Path, table: Table, rows: u32, reason: &str) -> io::Result<()> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let text = format!("time={now}\ntable={}\nrows={rows}\nreason={reason}\n", table.label());
        fs::write(segment.with_extension("reason"), text)?;
        sync_dir(&self.dir.join(DEAD_LETTER_DIR))
    }

    fn path(&self, segment: &Segment) -> PathBuf {
        segment_path(&self.dir, segment.table, segment.seq, "seg")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `bytes` of the cap.
    fn reserve(&self, bytes: u64) -> Result<(), SpoolError> {
        let mut state = self.state();
        if state.bytes + bytes > self.max_bytes {
            return Err(SpoolError::Full);
        }
        state.bytes += bytes;
        self.update_gauges(&state);
        Ok(())
    }

    fn release(&self, bytes: u64) {
        let mut state = self.state();
        state.bytes = state.bytes.saturating_sub(bytes);
        self.update_gauges(&state);
    }

    fn push_sealed(&self, segment: Segment) {
        let table = segment.table;
        let mut state = self.state();
        state.queues[table.index()].push_back(segment);
        self.update_gauges(&state);
        drop(state);
        self.sealed[table.index()].notify_one();
    }

    fn forget(&self, segment: &Segment) {
        let mut state = self.state();
        let queue = &mut state.queues[segment.table.index()];
        if let Some(i) = queue.iter().position(|s| s == segment) {
            queue.remove(i);
        }
        state.bytes = state.bytes.saturating_sub(segment.bytes);
        self.update_gauges(&state);
    }

    fn update_gauges(&self, state: &State) {
        self.metrics.spool_bytes.set(i64::try_from(state.bytes).unwrap_or(i64::MAX));
        let segments = state.queues.iter().map(VecDeque::len).sum::<usize>() + state.open_segments;
        self.metrics.spool_segments.set(segments as i64);
    }
}

/// The `fsync` mode's write-ahead log: beacons are staged, then a whole group is appended to
/// each table's open segment and fsynced at once (group commit). Segments are sealed when
/// they reach `segment_bytes` or `max_age`, and then replayed like spilled batches.
pub struct Wal {
    spool: Arc<Spool>,
    segment_bytes: u64,
    max_age: Duration,
    open: [Option<OpenSegment>; 2],
    /// Per table, the zeros a new segment is made of: what the last one reached.
    preallocate: [u64; 2],
    staged: [Batch; 2],
    /// Bytes reserved by staged rows.
    reserved: u64,
}

struct OpenSegment {
    file: File,
    seq: u64,
    bytes: u64,
    /// The file's length when made: zeros after the magic, overwritten by records.
    preallocated: u64,
    since: Instant,
}

impl Wal {
    pub fn new(spool: Arc<Spool>, segment_bytes: u64, max_age: Duration) -> Self {
        Self {
            spool,
            segment_bytes,
            max_age,
            open: [None, None],
            preallocate: [0, 0],
            staged: [Batch::new(Table::Audience), Batch::new(Table::Troubleshooting)],
            reserved: 0,
        }
    }

    /// Adds a beacon's rows to the next commit, or refuses it when the spool is full.
    pub fn stage(&mut self, beacon: &EncodedBeacon) -> Result<(), SpoolError> {
        // Each row and its length in the record.
        let size: usize = Table::ALL.into_iter().filter_map(|t| t.row_of(beacon)).map(|row| row.len() + 4).sum();
        self.spool.reserve(size as u64)?;
        self.reserved += size as u64;
        for table in Table::ALL {
            if let Some(row) = table.row_of(beacon) {
                self.staged[table.index()].push(row);
            }
        }
        Ok(())
    }

    /// Appends the staged rows, one record per table, and fsyncs: when this returns `Ok`, every
    /// staged beacon survives a crash. On error the open segments are sealed as they are (a
    /// torn record is skipped at replay) and the staged beacons must be refused.
    pub fn commit(&mut self) -> Result<(), SpoolError> {
        let result = self.write_staged();
        for staged in &mut self.staged {
            *staged = Batch::new(staged.table);
        }
        self.spool.release(std::mem::take(&mut self.reserved));
        if result.is_err() {
            self.seal(|_| true);
        }
        result
    }

    fn write_staged(&mut self) -> Result<(), SpoolError> {
        let mut written = [false; 2];
        for table in Table::ALL {
            let staged = &self.staged[table.index()];
            if staged.is_empty() {
                continue;
            }
            written[table.index()] = true;
            let mut record = Vec::with_capacity(RECORD_HEADER + 4 * staged.rows as usize + staged.bytes.len());
            encode_record(staged, &mut record);
            if self.open[table.index()].is_none() {
                self.open[table.index()] = Some(new_segment(&self.spool, table, self.preallocate[table.index()])?);
            }
            let segment = self.open[table.index()].as_mut().expect("opened above");
            segment.file.write_all(&record)?;
            segment.bytes += record.len() as u64;
            let mut state = self.spool.state();
            state.bytes += record.len() as u64;
            self.spool.update_gauges(&state);
            drop(state);
            self.spool
                .metrics
                .spool_rows
                .with_label_values(&[table.label(), SpoolRowOutcome::Written.label()])
                .inc_by(u64::from(staged.rows));
        }
        // Only the files this commit wrote: a group of timing or error beacons has no
        // audience rows, and an fsync is most of a commit's cost.
        for segment in
            self.open.iter().zip(written).filter_map(|(segment, written)| segment.as_ref().filter(|_| written))
        {
            segment.file.sync_data()?;
        }
        Ok(())
    }

    /// Seals segments that are full or old enough to be replayed.
    pub fn seal_due(&mut self) {
        let (limit, age) = (self.segment_bytes, self.max_age);
        self.seal(|s| s.bytes >= limit || s.since.elapsed() >= age);
    }

    /// Seals every open segment (at shutdown).
    pub fn seal_all(&mut self) {
        self.seal(|_| true);
    }

    fn seal(&mut self, due: impl Fn(&OpenSegment) -> bool) {
        for table in Table::ALL {
            let slot = &mut self.open[table.index()];
            if !slot.as_ref().is_some_and(&due) {
                continue;
            }
            let Some(segment) = slot.take() else { continue };
            self.spool.state().open_segments -= 1;
            self.preallocate[table.index()] = segment.bytes.min(self.segment_bytes);
            let open = segment_path(&self.spool.dir, table, segment.seq, "open");
            let sealed = segment_path(&self.spool.dir, table, segment.seq, "seg");
            if segment.preallocated > segment.bytes
                && let Err(error) = segment.file.set_len(segment.bytes)
            {
                // The zeros stay; a replay reads them as the end.
                tracing::warn!(%error, segment = %open.display(), "cannot cut a spool segment's unused zeros");
            }
            drop(segment.file);
            match fs::rename(&open, &sealed).and_then(|()| sync_dir(&self.spool.dir)) {
                Ok(()) => self.spool.push_sealed(Segment { table, seq: segment.seq, bytes: segment.bytes }),
                // Left as `.open`: the next start seals and replays it.
                Err(error) => tracing::error!(%error, segment = %open.display(), "cannot seal a spool segment"),
            }
        }
    }
}

/// A new write-ahead segment of `preallocate` bytes: the magic, then zeros, written and
/// fsynced once, so that the group commits' fdatasyncs overwrite allocated blocks and never
/// have to write the file's size and extents too (PostgreSQL zero-fills its WAL segments for
/// the same reason). On this VM that halves an fdatasync's time and takes 40% off its CPU
/// (benches/README.md). A replay reads zeros where a record would start as the end.
fn new_segment(spool: &Spool, table: Table, preallocate: u64) -> io::Result<OpenSegment> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let seq = spool.state().take_seq();
    let path = segment_path(&spool.dir, table, seq, "open");
    let mut file = File::create(&path)?;
    let mut length = FILE_MAGIC.len() as u64;
    let made = file.write_all(FILE_MAGIC).and_then(|()| {
        if preallocate > length {
            while length < preallocate {
                let chunk = (preallocate - length).min(ZEROS.len() as u64) as usize;
                file.write_all(&ZEROS[..chunk])?;
                length += chunk as u64;
            }
            file.sync_data()?;
            file.seek(SeekFrom::Start(FILE_MAGIC.len() as u64))?;
        }
        sync_dir(&spool.dir)
    });
    if let Err(error) = made {
        // A full disk, most likely: the next commit tries again, without leftovers.
        let _ = fs::remove_file(&path);
        return Err(error);
    }
    let mut state = spool.state();
    state.open_segments += 1;
    state.bytes += FILE_MAGIC.len() as u64;
    spool.update_gauges(&state);
    Ok(OpenSegment { file, seq, bytes: FILE_MAGIC.len() as u64, preallocated: length, since: Instant::now() })
}

/// A whole segment file holding `batch` as its one record.
fn segment_of(batch: &Batch) -> Vec<u8> {
    let mut data = Vec::with_capacity(FILE_MAGIC.len() + RECORD_HEADER + 4 * batch.rows as usize + batch.bytes.len());
    data.extend_from_slice(FILE_MAGIC);
    encode_record(batch, &mut data);
    data
}

/// Appends a batch as one record: each row's length, then the rows. A batch whose rows cannot
/// be told apart (read from a first-format record that did not decode) is written in the
/// first format, as it came.
fn encode_record(batch: &Batch, out: &mut Vec<u8>) {
    let Some(rows) = batch.split() else {
        out.extend_from_slice(RECORD_MAGIC_V1);
        out.extend_from_slice(&(batch.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&batch.rows.to_le_bytes());
        out.extend_from_slice(&checksum(None, batch.rows, &[&batch.bytes]));
        out.extend_from_slice(&batch.bytes);
        return;
    };
    let lengths: Vec<u8> = rows.flat_map(|row| (row.len() as u32).to_le_bytes()).collect();
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&((lengths.len() + batch.bytes.len()) as u32).to_le_bytes());
    out.extend_from_slice(&batch.rows.to_le_bytes());
    out.extend_from_slice(&checksum(Some(RECORD_MAGIC), batch.rows, &[&lengths, &batch.bytes]));
    out.extend_from_slice(&lengths);
    out.extend_from_slice(&batch.bytes);
}

/// The first 8 bytes of the BLAKE3 hash of the payload length, the row count and the payload
/// (given in parts). The current format hashes its record magic first, so that a record can
/// never pass for one of the other format; the first format did not.
fn checksum(magic: Option<&[u8; 4]>, rows: u32, payload: &[&[u8]]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    if let Some(magic) = magic {
        hasher.update(magic);
    }
    let len: usize = payload.iter().map(|part| part.len()).sum();
    hasher.update(&(len as u32).to_le_bytes());
    hasher.update(&rows.to_le_bytes());
    for part in payload {
        hasher.update(part);
    }
    let hash = hasher.finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&hash.as_bytes()[..8]);
    out
}

/// A record that passed its checks; ranges are offsets from the record's start.
struct Record {
    rows: u32,
    /// Each row's length (current format), or `None` for a first-format record.
    lengths: Option<Range<usize>>,
    /// The rows, back to back.
    body: Range<usize>,
    /// Bytes the record takes, header included.
    len: usize,
}

/// The record at the start of `data`, if every check passes: its magic, a length within
/// bounds, the checksum, and (current format) row lengths that add up to the rows' bytes.
fn parse_record(data: &[u8]) -> Option<Record> {
    let header = data.get(..RECORD_HEADER)?;
    let current = match &header[..4] {
        magic if magic == RECORD_MAGIC => true,
        magic if magic == RECORD_MAGIC_V1 => false,
        _ => return None,
    };
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let rows = u32::from_le_bytes(header[8..12].try_into().ok()?);
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let payload = data.get(RECORD_HEADER..RECORD_HEADER + len)?;
    let magic = current.then_some(RECORD_MAGIC);
    if checksum(magic, rows, &[payload]) != header[12..20] {
        return None;
    }
    let end = RECORD_HEADER + len;
    if !current {
        return Some(Record { rows, lengths: None, body: RECORD_HEADER..end, len: end });
    }
    let body = RECORD_HEADER + (rows as usize).checked_mul(4).filter(|l| *l <= len)?;
    let total: u64 = data[RECORD_HEADER..body].chunks_exact(4).map(|l| u64::from(le_u32(l))).sum();
    (total == (end - body) as u64).then_some(Record {
        rows,
        lengths: Some(RECORD_HEADER..body),
        body: body..end,
        len: end,
    })
}

/// A little-endian u32 from 4 bytes (0 from any other number of bytes).
fn le_u32(bytes: &[u8]) -> u32 {
    bytes.try_into().map_or(0, u32::from_le_bytes)
}

/// Every valid record of a segment as one batch; invalid runs are skipped to the next valid
/// record and counted.
///
/// The rows are moved to the front of `data` itself, so a replay holds one copy of a
/// segment, not two (benches/README.md, `fsync` memory). Rows are only ever written behind
/// the row being read (a record's lengths are copied out first): each row leaves its 4-byte
/// length behind, which is room for what `Table::upgrade` appends (`UPGRADE_FITS`).
pub fn decode_segment(table: Table, mut data: Vec<u8>) -> Replay {
    let mut kept = Kept { len: 0, rows: 0, ends: Some(Vec::new()) };
    let (mut corrupt_records, mut skipped_bytes) = (0, 0);
    let mut pos = records_start(&data);
    let mut in_corrupt_run = false;
    let mut lengths = Vec::new();
    // A write-ahead segment's zeros (`new_segment`) after its last record are not data.
    let zeros = zeros_from(&data);
    while pos < zeros {
        if let Some(record) = parse_record(&data[pos..]) {
            let body = pos + record.body.start..pos + record.body.end;
            let current = record.lengths.is_some();
            lengths.clear();
            match record.lengths {
                Some(at) => lengths.extend(data[pos + at.start..pos + at.end].chunks_exact(4).map(le_u32)),
                // A first-format record: its rows told apart by decoding them, else kept whole.
                None => match table.split_rows(record.rows, &data[body.clone()]) {
                    Some(rows) => lengths.extend(rows.iter().map(|row| row.len() as u32)),
                    None => {
                        kept.copy(&mut data, body.clone(), record.rows);
                        kept.ends = None;
                    }
                },
            }
            let mut start = body.start;
            for &length in &lengths {
                let row = start..start + length as usize;
                start = row.end;
                if !current {
                    kept.copy(&mut data, row, 1);
                    continue;
                }
                match table.upgrade(&data[row.clone()]) {
                    Cow::Owned(upgraded) if kept.len + upgraded.len() <= row.end => {
                        data[kept.len..kept.len + upgraded.len()].copy_from_slice(&upgraded);
                        kept.advance(upgraded.len(), 1);
                    }
                    // Does not happen (`UPGRADE_FITS`); kept as it was, its insert will tell.
                    _ => kept.copy(&mut data, row, 1),
                }
            }
            pos += record.len;
            in_corrupt_run = false;
            continue;
        }
        if !in_corrupt_run {
            corrupt_records += 1;
            in_corrupt_run = true;
        }
        let next = data[pos + 1..].windows(4).position(|w| w == RECORD_MAGIC || w == RECORD_MAGIC_V1);
        let skip = next.map_or(zeros - pos, |i| i + 1);
        skipped_bytes += skip as u64;
        pos += skip;
    }
    data.truncate(kept.len);
    Replay { batch: Batch::from_rows(table, kept.rows, data, kept.ends), corrupt_records, skipped_bytes }
}

/// Where a segment's first record starts: after the file magic of either format.
fn records_start(data: &[u8]) -> usize {
    if data.starts_with(FILE_MAGIC) || data.starts_with(FILE_MAGIC_V1) { FILE_MAGIC.len() } else { 0 }
}

/// Where the zeros that end `data` begin (its length when it does not end in zeros). A record
/// may end in zero bytes too: only a record boundary at or past this is the end.
fn zeros_from(data: &[u8]) -> usize {
    data.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)
}

/// The bytes of a segment a crash left open that are records (or corrupt ones), without the
/// zeros after them.
fn written_len(data: &[u8]) -> usize {
    let zeros = zeros_from(data);
    let mut pos = records_start(data);
    while pos < zeros {
        match parse_record(&data[pos..]) {
            Some(record) => pos += record.len,
            None => return zeros,
        }
    }
    pos.min(data.len())
}

/// Cuts the unused zeros of a segment a crash left open, so the spool's size counts records
/// only; returns its length.
fn cut_zeros(path: &Path) -> io::Result<u64> {
    let data = fs::read(path)?;
    let len = written_len(&data);
    if len < data.len() {
        let file = fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(len as u64)?;
        file.sync_all()?;
    }
    Ok(len as u64)
}

/// The rows a decode has moved to the front of its buffer.
struct Kept {
    len: usize,
    rows: u32,
    ends: Option<Vec<usize>>,
}

impl Kept {
    /// Moves `rows` rows at `at` (never before `self.len`) behind the kept ones.
    fn copy(&mut self, data: &mut [u8], at: Range<usize>, rows: u32) {
        let len = at.len();
        data.copy_within(at, self.len);
        self.advance(len, rows);
    }

    fn advance(&mut self, len: usize, rows: u32) {
        self.len += len;
        self.rows = self.rows.saturating_add(rows);
        if let Some(ends) = &mut self.ends {
            ends.push(self.len);
        }
    }
}

fn segment_name(table: Table, seq: u64, extension: &str) -> String {
    format!("{}-{seq:020}.{extension}", table.label())
}

fn segment_path(dir: &Path, table: Table, seq: u64, extension: &str) -> PathBuf {
    dir.join(segment_name(table, seq, extension))
}

/// `(table, seq, extension)` of a spool file name.
fn parse_name(path: &Path) -> Option<(Table, u64, &str)> {
    let name = path.file_name()?.to_str()?;
    let (stem, extension) = name.rsplit_once('.')?;
    let (label, seq) = stem.rsplit_once('-')?;
    Some((Table::from_label(label)?, seq.parse().ok()?, extension))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn dir_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::{
        super::filter::sample::{audience_row, troubleshooting_row},
        *,
    };

    /// A record of the current format, as the WAL and spills write it.
    fn record(rows: &[&[u8]]) -> Vec<u8> {
        let mut batch = Batch::new(Table::Audience);
        rows.iter().for_each(|row| batch.push(row));
        let mut out = Vec::new();
        encode_record(&batch, &mut out);
        out
    }

    /// A record of the first format (no row lengths), as an older build wrote it.
    fn record_v1(rows: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = RECORD_MAGIC_V1.to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&rows.to_le_bytes());
        // The first format's checksum, spelled out: length, rows, payload; no magic.
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(payload.len() as u32).to_le_bytes());
        hasher.update(&rows.to_le_bytes());
        hasher.update(payload);
        out.extend_from_slice(&hasher.finalize().as_bytes()[..8]);
        out.extend_from_slice(payload);
        out
    }

    fn segment(records: &[Vec<u8>]) -> Vec<u8> {
        let mut data = FILE_MAGIC.to_vec();
        records.iter().for_each(|r| data.extend_from_slice(r));
        data
    }

    fn segment_v1(records: &[Vec<u8>]) -> Vec<u8> {
        let mut data = FILE_MAGIC_V1.to_vec();
        records.iter().for_each(|r| data.extend_from_slice(r));
        data
    }

    fn rows_of(replay: &Replay) -> Vec<&[u8]> {
        replay.batch.split().expect("rows told apart").collect()
    }

    /// A row spooled by a build before migration 0006 lacks `bot_reason`: the replay appends
    /// its empty default, so the insert, which names today's columns, stays aligned.
    #[test]
    fn a_row_of_an_older_shape_gets_the_appended_columns_defaults() {
        let today = troubleshooting_row("lk", 1_700_000_000, 1, 2);
        assert_eq!(today.last(), Some(&0), "an empty bot_reason ends the row");
        let older = &today[..today.len() - 1];
        let opaque: &[u8] = b"not a row";
        let data = segment(&[record(&[older, &today, opaque])]);
        let replay = decode_segment(Table::Troubleshooting, data.clone());
        assert_eq!(rows_of(&replay), [today.as_slice(), &today, opaque]);
        let audience = audience_row("lk", 1_700_000_000, 1, 2);
        let replay = decode_segment(Table::Audience, segment(&[record(&[&audience])]));
        assert_eq!(rows_of(&replay), [audience.as_slice()]);
    }

    #[test]
    fn reads_back_every_record_with_its_row_boundaries() {
        let data = segment(&[record(&[b"aa", b"aaa"]), record(&[b"", b"b"])]);
        let replay = decode_segment(Table::Audience, data.clone());
        assert_eq!((replay.batch.rows, replay.batch.bytes.as_slice()), (4, &b"aaaaab"[..]));
        // In the segment's own buffer: a replay holds one copy of it.
        assert_eq!(replay.batch.bytes.capacity(), data.len());
        assert_eq!(rows_of(&replay), [&b"aa"[..], b"aaa", b"", b"b"]);
        assert_eq!((replay.corrupt_records, replay.skipped_bytes), (0, 0));
        // A batch spilled and read back is the batch, boundaries and token included.
        let mut batch = Batch::new(Table::Troubleshooting);
        batch.push(&troubleshooting_row("lk", 1_700_000_000, 1, 2));
        batch.push(b"x");
        let replay = decode_segment(Table::Troubleshooting, segment_of(&batch));
        assert_eq!(replay.batch, batch);
        assert_eq!(replay.batch.token(), batch.token());
    }

    #[test]
    fn skips_a_torn_tail() {
        let mut data = segment(&[record(&[b"kept"]), record(&[b"torn", b" record"])]);
        data.truncate(data.len() - 3);
        let replay = decode_segment(Table::Audience, data.clone());
        assert_eq!(rows_of(&replay), [b"kept"]);
        assert_eq!(replay.corrupt_records, 1);
        assert_eq!(replay.skipped_bytes, (RECORD_HEADER + 2 * 4 + 8) as u64);
    }

    #[test]
    fn skips_a_corrupt_record_and_keeps_the_ones_after_it() {
        let mut data = segment(&[record(&[b"first"]), record(&[b"second"]), record(&[b"third"])]);
        // Flip a row byte of the second record.
        let second = FILE_MAGIC.len() + RECORD_HEADER + 4 + 5 + RECORD_HEADER + 4;
        data[second] ^= 0xff;
        let replay = decode_segment(Table::Audience, data.clone());
        assert_eq!(rows_of(&replay), [&b"first"[..], b"third"]);
        assert_eq!(replay.corrupt_records, 1);
        // A flipped row length is caught the same way.
        let mut data = segment(&[record(&[b"first"]), record(&[b"second"]), record(&[b"third"])]);
        data[FILE_MAGIC.len() + RECORD_HEADER + 4 + 5 + RECORD_HEADER] ^= 0x01;
        let replay = decode_segment(Table::Audience, data.clone());
        assert_eq!(rows_of(&replay), [&b"first"[..], b"third"]);
    }

    #[test]
    fn lengths_that_do_not_add_up_are_corruption_even_under_a_valid_checksum() {
        // Two rows declared, lengths 3 and 9, but 4 bytes of rows.
        let rows = 2u32;
        let mut payload = Vec::new();
        payload.extend_from_slice(&3u32.to_le_bytes());
        payload.extend_from_slice(&9u32.to_le_bytes());
        payload.extend_from_slice(b"abcd");
        let mut bad = RECORD_MAGIC.to_vec();
        bad.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bad.extend_from_slice(&rows.to_le_bytes());
        bad.extend_from_slice(&checksum(Some(RECORD_MAGIC), rows, &[&payload]));
        bad.extend_from_slice(&payload);
        let replay = decode_segment(Table::Audience, segment(&[bad, record(&[b"good"])]));
        assert_eq!(rows_of(&replay), [b"good"]);
        assert_eq!(replay.corrupt_records, 1);
    }

    #[test]
    fn a_record_never_passes_for_one_of_the_other_format() {
        let mut data = segment(&[record(&[b"row"])]);
        data[FILE_MAGIC.len() + 3] = b'1';
        let replay = decode_segment(Table::Audience, data.clone());
        assert!(replay.batch.is_empty());
        assert_eq!(replay.corrupt_records, 1);
    }

    #[test]
    fn garbage_yields_nothing() {
        let replay = decode_segment(Table::Audience, b"WSR2 definitely not a record WSR1WSR2WSR1".to_vec());
        assert!(replay.batch.is_empty());
        assert!(replay.corrupt_records >= 1);
    }

    /// A segment an older build left (in the spool, or in `dead-letter/` and moved back): its
    /// rows are told apart by decoding them, so the filter reaches them, and the batch is the
    /// one the older build would have inserted (same bytes, same deduplication token).
    #[test]
    fn a_first_format_segment_is_replayed_with_its_rows_told_apart() {
        let rows = [audience_row("lk", 1_700_000_000, 1, 2), audience_row("lk", 1_700_000_001, 3, 4)];
        let third = audience_row("other", 1_700_000_002, 5, 0);
        let data = segment_v1(&[record_v1(2, &rows.concat()), record_v1(1, &third)]);
        let replay = decode_segment(Table::Audience, data.clone());
        assert_eq!(rows_of(&replay), [rows[0].as_slice(), &rows[1], &third]);
        assert_eq!((replay.corrupt_records, replay.skipped_bytes), (0, 0));
        let as_the_old_build_read_it =
            Batch::from_rows(Table::Audience, 3, [rows.concat(), third.clone()].concat(), None);
        assert_eq!(replay.batch.token(), as_the_old_build_read_it.token());

        // Its torn tail and corrupt records are skipped as before.
        let mut data =
            segment_v1(&[record_v1(1, &rows[0]), record_v1(1, b"x"), record_v1(1, &rows[1]), record_v1(1, &third)]);
        let flipped = FILE_MAGIC_V1.len() + RECORD_HEADER + rows[0].len() + RECORD_HEADER;
        data[flipped] ^= 0xff;
        data.truncate(data.len() - 1);
        let replay = decode_segment(Table::Audience, data.clone());
        assert_eq!(rows_of(&replay), [rows[0].as_slice(), &rows[1]]);
        assert_eq!(replay.corrupt_records, 2);
    }

    /// Rows that do not decode as today's row type (a build with other columns): nothing
    /// acknowledged is lost, so the record is replayed whole, as the older build would have.
    #[test]
    fn a_first_format_record_that_does_not_decode_is_replayed_whole() {
        let good = audience_row("lk", 1_700_000_000, 1, 2);
        let data = segment_v1(&[record_v1(1, &good), record_v1(2, b"opaque rows")]);
        let replay = decode_segment(Table::Audience, data.clone());
        assert_eq!(replay.batch.rows, 3);
        assert_eq!(replay.batch.bytes, [good.as_slice(), b"opaque rows"].concat());
        assert!(replay.batch.split().is_none());
        assert_eq!(replay.corrupt_records, 0);
        // Written again (a dead letter), it stays what it was.
        let again = decode_segment(Table::Audience, segment_of(&replay.batch));
        assert_eq!(again.batch, replay.batch);
    }

    #[test]
    fn a_first_format_segment_in_the_directory_is_queued_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [troubleshooting_row("lk", 1_700_000_000, 1, 2), troubleshooting_row("lk", 1_700_000_000, 3, 0)];
        let path = segment_path(dir.path(), Table::Troubleshooting, 7, "seg");
        fs::write(&path, segment_v1(&[record_v1(2, &rows.concat())])).unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, Arc::new(Metrics::new())).unwrap();
        let oldest = spool.oldest(Table::Troubleshooting).expect("the old segment is queued");
        let replay = spool.read(&oldest).unwrap();
        assert_eq!(rows_of(&replay), [rows[0].as_slice(), &rows[1]]);
        spool.remove(&oldest, 2).unwrap();
        assert!(spool.is_empty());
    }

    #[test]
    fn names_round_trip() {
        let path = segment_path(Path::new("/s"), Table::Troubleshooting, 42, "seg");
        assert_eq!(parse_name(&path), Some((Table::Troubleshooting, 42, "seg")));
        assert_eq!(parse_name(Path::new("/s/LOCK")), None);
    }

    #[test]
    fn spilled_batches_replay_in_order_and_respect_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let spool = Spool::open(dir.path(), 250, metrics.clone()).unwrap();
        // Three segments fit under the cap; the fourth does not.
        for fill in 1..=3u8 {
            let mut batch = Batch::new(Table::Audience);
            batch.push(&[fill; 50]);
            spool.write_batch(&batch).unwrap();
        }
        let mut batch = Batch::new(Table::Audience);
        batch.push(&[4; 50]);
        assert!(matches!(spool.write_batch(&batch), Err(SpoolError::Full)));
        // Reopened, as after a restart: the segments come back oldest first.
        drop(spool);
        let spool = Spool::open(dir.path(), 250, metrics).unwrap();
        for fill in 1..=3u8 {
            let oldest = spool.oldest(Table::Audience).unwrap();
            assert_eq!(spool.read(&oldest).unwrap().batch.bytes, vec![fill; 50]);
            spool.remove(&oldest, 1).unwrap();
        }
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn dead_letters_older_than_the_retention_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, Arc::new(Metrics::new())).unwrap();
        let mut batch = Batch::new(Table::Audience);
        batch.push(b"refused");
        assert!(spool.dead_letter_batch(&batch, "Code: 33").unwrap());
        let letters = || fs::read_dir(dir.path().join(DEAD_LETTER_DIR)).unwrap().count();
        assert_eq!(letters(), 2, "the segment and its reason");
        assert_eq!(spool.prune_dead_letters(Duration::from_secs(3600)).unwrap(), 0);
        let old = SystemTime::now() - Duration::from_secs(7200);
        for entry in fs::read_dir(dir.path().join(DEAD_LETTER_DIR)).unwrap() {
            File::options().write(true).open(entry.unwrap().path()).unwrap().set_modified(old).unwrap();
        }
        assert_eq!(spool.prune_dead_letters(Duration::from_secs(3600)).unwrap(), 1);
        assert_eq!(letters(), 0);
    }

    #[test]
    fn a_second_collector_cannot_take_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let _first = Spool::open(dir.path(), 1 << 20, metrics.clone()).unwrap();
        let error = Spool::open(dir.path(), 1 << 20, metrics).err().unwrap();
        assert!(error.to_string().contains("another collector"), "{error}");
    }

    #[test]
    fn wal_segments_survive_a_crash_and_are_sealed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let spool = Arc::new(Spool::open(dir.path(), 1 << 20, metrics.clone()).unwrap());
        let mut wal = Wal::new(spool.clone(), 1 << 20, Duration::from_secs(3600));
        let mut batch = Batch::new(Table::Troubleshooting);
        batch.push(b"row-1");
        wal.staged[1] = batch.clone();
        wal.commit().unwrap();
        // A crash: the WAL and the lock go away without sealing.
        drop(wal);
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20, metrics).unwrap();
        let oldest = spool.oldest(Table::Troubleshooting).unwrap();
        assert_eq!(spool.read(&oldest).unwrap().batch, batch);
    }

    /// A write-ahead segment is made as long as the last one became, of zeros; records
    /// overwrite them, sealing cuts what is left, and after a crash the zeros read as the end.
    #[test]
    fn wal_segments_are_made_of_zeros_that_records_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let spool = Arc::new(Spool::open(dir.path(), 1 << 20, metrics.clone()).unwrap());
        let mut wal = Wal::new(spool.clone(), 16 * 1024, Duration::from_secs(3600));
        let row = vec![7u8; 1000];
        let mut first = Batch::new(Table::Audience);
        while first.bytes.len() < 16 * 1024 {
            wal.staged[0].push(&row);
            first.push(&row);
            wal.commit().unwrap();
        }
        wal.seal_due();
        let sealed = spool.oldest(Table::Audience).expect("full, so sealed");
        let sealed_len = fs::metadata(spool.path(&sealed)).unwrap().len();
        wal.staged[0].push(b"second segment");
        wal.commit().unwrap();
        let open = segment_path(dir.path(), Table::Audience, sealed.seq + 1, "open");
        assert_eq!(fs::metadata(&open).unwrap().len(), sealed_len.min(16 * 1024), "preallocated");
        // A crash: the second segment is sealed at the next start, zeros and all.
        drop(wal);
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20, metrics.clone()).unwrap();
        let replays: Vec<Replay> = spool.state().queues[0].clone().iter().map(|s| spool.read(s).unwrap()).collect();
        assert_eq!(replays[0].batch, first);
        assert_eq!(rows_of(&replays[1]), [b"second segment"]);
        assert_eq!(metrics.spool_corrupt_records.get(), 0, "zeros are not corruption");
        // Sealed at the start without its zeros, which the spool's size does not count.
        let second = spool.state().queues[0][1].clone();
        assert_eq!(second.bytes, (FILE_MAGIC.len() + RECORD_HEADER + 4 + 14) as u64);
        assert_eq!(fs::metadata(spool.path(&second)).unwrap().len(), second.bytes);
        assert_eq!(spool.bytes(), sealed.bytes + second.bytes);

        // Sealed without a crash, a segment keeps no zeros.
        let spool = Arc::new(spool);
        let mut wal = Wal::new(spool.clone(), 16 * 1024, Duration::from_secs(3600));
        wal.preallocate[0] = 16 * 1024;
        wal.staged[0].push(b"row");
        wal.commit().unwrap();
        wal.seal_all();
        let last = spool.state().queues[0].back().cloned().unwrap();
        assert_eq!(fs::metadata(spool.path(&last)).unwrap().len(), last.bytes);
        assert_eq!(rows_of(&spool.read(&last).unwrap()), [b"row"]);
    }

    /// A record may end in zero bytes (an empty last column): only the zeros after it go.
    #[test]
    fn a_record_ending_in_zeros_is_kept_whole() {
        let mut data = segment(&[record(&[b"ends in zero\0\0"])]);
        let written = data.len();
        data.extend_from_slice(&[0; 100]);
        assert_eq!(written_len(&data), written);
        assert_eq!(rows_of(&decode_segment(Table::Audience, data)), [b"ends in zero\0\0"]);
    }

    #[test]
    fn a_torn_record_before_the_zeros_is_skipped_and_counted() {
        let mut data = segment(&[record(&[b"kept"]), record(&[b"torn"])]);
        data.truncate(data.len() - 2);
        data.extend_from_slice(&[0; 4096]);
        let replay = decode_segment(Table::Audience, data);
        assert_eq!(rows_of(&replay), [b"kept"]);
        assert_eq!(replay.corrupt_records, 1);
        assert_eq!(replay.skipped_bytes, (RECORD_HEADER + 4 + 4 - 2) as u64, "the zeros are not counted");
    }
}
