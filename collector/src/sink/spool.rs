//! The disk spool: batches that could not be inserted yet (and, in `fsync` mode, every beacon
//! before it is acknowledged) wait here in segment files until ClickHouse takes them.
//!
//! Layout of `[spool] dir`:
//! - `LOCK`: held (flock) while a collector uses the directory; a second one refuses to start.
//! - `<table>-<seq>.seg`: sealed segments, replayed oldest first and deleted only after the
//!   insert is acknowledged. `<table>-<seq>.open`: the `fsync` mode's segment being appended to
//!   (sealed on the next start after a crash). `*.tmp`: a spill being written.
//! - `dead-letter/<table>-<seq>.seg` + `.reason`: batches ClickHouse refused for their data;
//!   the same format, so a segment moved back into the spool directory is replayed.
//!
//! A segment is [`FILE_MAGIC`] followed by records: magic, payload length, row count, an 8-byte
//! BLAKE3 checksum of the rest, then the payload (RowBinary rows of the segment's table). A
//! record that fails any check (a torn tail after a crash, flipped bits) is skipped up to the
//! next record that passes them, and counted; its bytes are never inserted.
//!
//! Rows here are pseudonymised like the stores': no raw address or cookie is ever written.
//! Everything in this module is blocking file I/O: callers use `spawn_blocking` or a thread.

use std::{
    collections::VecDeque,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::Notify;

use super::batch::{Batch, EncodedBeacon, Table};
use crate::metrics::{Metrics, SpoolRowOutcome};

pub const FILE_MAGIC: &[u8; 8] = b"WSSPOOL1";
const RECORD_MAGIC: &[u8; 4] = b"WSR1";
/// Magic, payload length, rows, checksum.
const RECORD_HEADER: usize = 4 + 4 + 4 + 8;
/// No record is larger (a length above it is corruption): a batch of `sink.max_batch_bytes`
/// plus the one beacon's rows that can take it past its limit.
const MAX_RECORD_BYTES: usize = crate::config::MAX_BATCH_BYTES + 1024 * 1024;
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
                    let sealed = segment_path(dir, table, seq, "seg");
                    fs::rename(&path, &sealed)?;
                    found.push(Segment { table, seq, bytes: fs::metadata(&sealed)?.len() });
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
        let data = fs::read(self.path(segment))?;
        let replay = decode_segment(segment.table, &data);
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
    staged: [Batch; 2],
    /// Bytes reserved by staged rows.
    reserved: u64,
}

struct OpenSegment {
    file: File,
    seq: u64,
    bytes: u64,
    since: Instant,
}

impl Wal {
    pub fn new(spool: Arc<Spool>, segment_bytes: u64, max_age: Duration) -> Self {
        Self {
            spool,
            segment_bytes,
            max_age,
            open: [None, None],
            staged: [Batch::new(Table::Audience), Batch::new(Table::Troubleshooting)],
            reserved: 0,
        }
    }

    /// Adds a beacon's rows to the next commit, or refuses it when the spool is full.
    pub fn stage(&mut self, beacon: &EncodedBeacon) -> Result<(), SpoolError> {
        let size: usize = Table::ALL.into_iter().filter_map(|t| t.row_of(beacon)).map(<[u8]>::len).sum();
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
        for table in Table::ALL {
            let staged = &self.staged[table.index()];
            if staged.is_empty() {
                continue;
            }
            let mut record = Vec::with_capacity(RECORD_HEADER + staged.bytes.len());
            encode_record(staged.rows, &staged.bytes, &mut record);
            if self.open[table.index()].is_none() {
                self.open[table.index()] = Some(new_segment(&self.spool, table)?);
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
        for segment in self.open.iter().flatten() {
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
            let open = segment_path(&self.spool.dir, table, segment.seq, "open");
            let sealed = segment_path(&self.spool.dir, table, segment.seq, "seg");
            drop(segment.file);
            match fs::rename(&open, &sealed).and_then(|()| sync_dir(&self.spool.dir)) {
                Ok(()) => self.spool.push_sealed(Segment { table, seq: segment.seq, bytes: segment.bytes }),
                // Left as `.open`: the next start seals and replays it.
                Err(error) => tracing::error!(%error, segment = %open.display(), "cannot seal a spool segment"),
            }
        }
    }
}

fn new_segment(spool: &Spool, table: Table) -> io::Result<OpenSegment> {
    let seq = spool.state().take_seq();
    let path = segment_path(&spool.dir, table, seq, "open");
    let mut file = File::create(&path)?;
    file.write_all(FILE_MAGIC)?;
    sync_dir(&spool.dir)?;
    let mut state = spool.state();
    state.open_segments += 1;
    state.bytes += FILE_MAGIC.len() as u64;
    spool.update_gauges(&state);
    Ok(OpenSegment { file, seq, bytes: FILE_MAGIC.len() as u64, since: Instant::now() })
}

/// A whole segment file holding `batch` as its one record.
fn segment_of(batch: &Batch) -> Vec<u8> {
    let mut data = Vec::with_capacity(FILE_MAGIC.len() + RECORD_HEADER + batch.bytes.len());
    data.extend_from_slice(FILE_MAGIC);
    encode_record(batch.rows, &batch.bytes, &mut data);
    data
}

fn encode_record(rows: u32, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&rows.to_le_bytes());
    out.extend_from_slice(&checksum(rows, payload));
    out.extend_from_slice(payload);
}

fn checksum(rows: u32, payload: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(payload.len() as u32).to_le_bytes());
    hasher.update(&rows.to_le_bytes());
    hasher.update(payload);
    let hash = hasher.finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&hash.as_bytes()[..8]);
    out
}

/// The record at the start of `data`: `(rows, payload, record length)` if every check passes.
fn parse_record(data: &[u8]) -> Option<(u32, &[u8], usize)> {
    let header = data.get(..RECORD_HEADER)?;
    if &header[..4] != RECORD_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let rows = u32::from_le_bytes(header[8..12].try_into().ok()?);
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let payload = data.get(RECORD_HEADER..RECORD_HEADER + len)?;
    (checksum(rows, payload) == header[12..20]).then_some((rows, payload, RECORD_HEADER + len))
}

/// Every valid record of a segment, concatenated; invalid runs are skipped to the next valid
/// record and counted.
pub fn decode_segment(table: Table, data: &[u8]) -> Replay {
    let mut replay = Replay { batch: Batch::new(table), corrupt_records: 0, skipped_bytes: 0 };
    let mut pos = if data.starts_with(FILE_MAGIC) { FILE_MAGIC.len() } else { 0 };
    let mut in_corrupt_run = false;
    while pos < data.len() {
        if let Some((rows, payload, len)) = parse_record(&data[pos..]) {
            replay.batch.rows += rows;
            replay.batch.bytes.extend_from_slice(payload);
            pos += len;
            in_corrupt_run = false;
            continue;
        }
        if !in_corrupt_run {
            replay.corrupt_records += 1;
            in_corrupt_run = true;
        }
        let next = data[pos + 1..].windows(RECORD_MAGIC.len()).position(|w| w == RECORD_MAGIC);
        let skip = next.map_or(data.len() - pos, |i| i + 1);
        replay.skipped_bytes += skip as u64;
        pos += skip;
    }
    replay
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

/// For tests: appends a record as the WAL writes it.
#[cfg(test)]
fn record(rows: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(rows, payload, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[Vec<u8>]) -> Vec<u8> {
        let mut data = FILE_MAGIC.to_vec();
        records.iter().for_each(|r| data.extend_from_slice(r));
        data
    }

    #[test]
    fn reads_back_every_record() {
        let data = segment(&[record(2, b"aaaa"), record(1, b"bb")]);
        let replay = decode_segment(Table::Audience, &data);
        assert_eq!((replay.batch.rows, replay.batch.bytes.as_slice()), (3, &b"aaaabb"[..]));
        assert_eq!((replay.corrupt_records, replay.skipped_bytes), (0, 0));
    }

    #[test]
    fn skips_a_torn_tail() {
        let mut data = segment(&[record(1, b"kept"), record(1, b"torn record")]);
        data.truncate(data.len() - 3);
        let replay = decode_segment(Table::Audience, &data);
        assert_eq!((replay.batch.rows, replay.batch.bytes.as_slice()), (1, &b"kept"[..]));
        assert_eq!(replay.corrupt_records, 1);
        assert_eq!(replay.skipped_bytes, (RECORD_HEADER + 8) as u64);
    }

    #[test]
    fn skips_a_corrupt_record_and_keeps_the_ones_after_it() {
        let mut data = segment(&[record(1, b"first"), record(1, b"second"), record(1, b"third")]);
        // Flip a payload byte of the second record.
        let second = FILE_MAGIC.len() + RECORD_HEADER + 5 + RECORD_HEADER;
        data[second] ^= 0xff;
        let replay = decode_segment(Table::Audience, &data);
        assert_eq!((replay.batch.rows, replay.batch.bytes.as_slice()), (2, &b"firstthird"[..]));
        assert_eq!(replay.corrupt_records, 1);
    }

    #[test]
    fn garbage_yields_nothing() {
        let replay = decode_segment(Table::Audience, b"WSR1 definitely not a record WSR1WSR1");
        assert!(replay.batch.is_empty());
        assert!(replay.corrupt_records >= 1);
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
}
