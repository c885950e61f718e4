//! Rows as bytes. A beacon's rows are encoded to RowBinary once, in the handler; from then on
//! the sink, the spool and the inserts move opaque bytes, so a row costs its encoded size in
//! memory and on disk, and a replayed batch is byte-for-byte the batch first tried.

use std::borrow::Cow;

pub use beacon::EncodedBeacon;
use store::{AudienceRow, RowSubject, TroubleshootingRow, rowbinary};

/// What [`Table::upgrade`] appends to a row is at most the 4 bytes of the row's length in its
/// spool record, so a replay can decode a segment in place (`spool::decode_segment`).
const UPGRADE_FITS: () = {
    let tables = [AudienceRow::APPENDED_DEFAULTS, TroubleshootingRow::APPENDED_DEFAULTS];
    let mut t = 0;
    while t < tables.len() {
        let (mut total, mut i) = (0, 0);
        while i < tables[t].len() {
            total += tables[t][i].len();
            i += 1;
        }
        assert!(total <= 4, "appended defaults longer than a row length: spool::decode_segment needs another buffer");
        t += 1;
    }
};

/// The tables the collector writes, through `<prefix>_ingest.<label>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Audience,
    Troubleshooting,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Audience, Table::Troubleshooting];

    /// The ingest table's name, the metrics label and the spool file prefix.
    pub fn label(self) -> &'static str {
        match self {
            Table::Audience => "audience",
            Table::Troubleshooting => "troubleshooting",
        }
    }

    pub fn from_label(label: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.label() == label)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The table's columns in order: what its row type encodes.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Audience => <AudienceRow as clickhouse::Row>::COLUMN_NAMES,
            Table::Troubleshooting => <TroubleshootingRow as clickhouse::Row>::COLUMN_NAMES,
        }
    }

    /// A row in this table's current shape. A row an older build spooled, before a column was
    /// appended, lacks that column's bytes: it gets the defaults it lacks (`APPENDED_DEFAULTS`).
    /// A row that decodes neither way is returned as it is (its insert will tell).
    pub fn upgrade(self, row: &[u8]) -> Cow<'_, [u8]> {
        let appended = match self {
            Table::Audience => AudienceRow::APPENDED_DEFAULTS,
            Table::Troubleshooting => TroubleshootingRow::APPENDED_DEFAULTS,
        };
        let () = UPGRADE_FITS;
        if appended.is_empty() || self.decodes_whole(row) {
            return Cow::Borrowed(row);
        }
        (1..=appended.len())
            .map(|lacking| [row, &appended[appended.len() - lacking..].concat()].concat())
            .find(|upgraded| self.decodes_whole(upgraded))
            .map_or(Cow::Borrowed(row), Cow::Owned)
    }

    /// Whether `row` is exactly one row of this table's current type.
    fn decodes_whole(self, row: &[u8]) -> bool {
        let mut input = row;
        self.decode_one(&mut input) && input.is_empty()
    }

    /// Reads one row of this table's current type off the front of `input`.
    fn decode_one(self, input: &mut &[u8]) -> bool {
        match self {
            Table::Audience => rowbinary::decode::<AudienceRow>(input).is_ok(),
            Table::Troubleshooting => rowbinary::decode::<TroubleshootingRow>(input).is_ok(),
        }
    }

    /// Whom an encoded row of this table is about, from its leading columns; `None` when they
    /// do not decode.
    pub fn subject_of(self, row: &[u8]) -> Option<RowSubject<'_>> {
        match self {
            Table::Audience => AudienceRow::subject_of(row),
            Table::Troubleshooting => TroubleshootingRow::subject_of(row),
        }
    }

    /// `bytes` cut into its `rows` rows by decoding each whole: for spool records of the first
    /// format, which did not record where rows end. `None` unless exactly `rows` rows of this
    /// table's current type fill `bytes` (a segment of a build with other columns).
    pub fn split_rows(self, rows: u32, bytes: &[u8]) -> Option<Vec<&[u8]>> {
        let mut input = bytes;
        let mut out = Vec::with_capacity((rows as usize).min(bytes.len()));
        for _ in 0..rows {
            let before = input;
            self.decode_one(&mut input).then_some(())?;
            out.push(&before[..before.len() - input.len()]);
        }
        input.is_empty().then_some(out)
    }

    /// A beacon's encoded row for this table, if it has one.
    pub fn row_of(self, beacon: &EncodedBeacon) -> Option<&[u8]> {
        match self {
            Table::Audience => beacon.audience(),
            Table::Troubleshooting => beacon.troubleshooting(),
        }
    }
}

/// Rows of one table, encoded back to back: one insert, one spool segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub table: Table,
    pub rows: u32,
    pub bytes: Vec<u8>,
    /// Where each row ends in `bytes`, so that a replay can tell the rows apart (and leave out
    /// those of erased or blocked people); `None` when they cannot be: rows of a spool segment
    /// of the first format that did not decode (see `spool`), which are replayed as they are.
    ends: Option<Vec<usize>>,
}

impl Batch {
    pub fn new(table: Table) -> Self {
        Self::with_capacity(table, 0)
    }

    /// An empty batch with room for `bytes` bytes of rows.
    pub fn with_capacity(table: Table, bytes: usize) -> Self {
        Self { table, rows: 0, bytes: Vec::with_capacity(bytes), ends: Some(Vec::new()) }
    }

    /// A batch of `rows` rows that fill `bytes`; `ends` as in [`Batch`] (`None`: not told
    /// apart).
    pub fn from_rows(table: Table, rows: u32, bytes: Vec<u8>, ends: Option<Vec<usize>>) -> Self {
        Self { table, rows, bytes, ends }
    }

    pub fn push(&mut self, row: &[u8]) {
        self.rows += 1;
        self.bytes.extend_from_slice(row);
        if let Some(ends) = &mut self.ends {
            ends.push(self.bytes.len());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Each row's bytes, in order; `None` when the boundaries are unknown.
    pub fn split(&self) -> Option<impl Iterator<Item = &[u8]>> {
        let ends = self.ends.as_ref()?;
        let starts = std::iter::once(0).chain(ends.iter().copied());
        Some(starts.zip(ends.iter().copied()).map(|(start, end)| &self.bytes[start..end]))
    }

    /// The deduplication token: a hash of the table and the exact bytes, so a batch replayed
    /// from the spool carries the token of its first attempt. The row boundaries are not part
    /// of it: a segment written by an older build, which did not record them, keeps its token.
    pub fn token(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.table.label().as_bytes());
        hasher.update(&self.rows.to_le_bytes());
        hasher.update(&self.bytes);
        hasher.finalize().to_hex()[..32].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_depends_on_the_table_and_the_bytes_only() {
        let mut a = Batch::new(Table::Audience);
        a.push(b"row");
        let mut again = Batch::new(Table::Audience);
        again.push(b"row");
        let mut other_table = Batch::new(Table::Troubleshooting);
        other_table.push(b"row");
        assert_eq!(a.token(), again.token());
        assert_ne!(a.token(), other_table.token());
        assert_eq!(a.token().len(), 32);
        // The same bytes without their boundaries (a replayed first-format segment).
        let unsplit = Batch::from_rows(Table::Audience, 1, b"row".to_vec(), None);
        assert_eq!(a.token(), unsplit.token());
    }

    #[test]
    fn push_records_where_each_row_ends() {
        let mut batch = Batch::new(Table::Audience);
        assert_eq!(batch.split().unwrap().count(), 0);
        for row in [&b"first"[..], b"", b"third row"] {
            batch.push(row);
        }
        assert_eq!(batch.split().unwrap().collect::<Vec<_>>(), [&b"first"[..], b"", b"third row"]);
        assert_eq!((batch.rows, batch.bytes.as_slice()), (3, &b"firstthird row"[..]));
    }
}
