//! Rows as bytes. A beacon's rows are encoded to RowBinary once, in the handler; from then on
//! the sink, the spool and the inserts move opaque bytes, so a row costs its encoded size in
//! memory and on disk, and a replayed batch is byte-for-byte the batch first tried.

pub use beacon::EncodedBeacon;

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
}

impl Batch {
    pub fn new(table: Table) -> Self {
        Self { table, rows: 0, bytes: Vec::new() }
    }

    pub fn push(&mut self, row: &[u8]) {
        self.rows += 1;
        self.bytes.extend_from_slice(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The deduplication token: a hash of the table and the exact bytes, so a batch replayed
    /// from the spool carries the token of its first attempt.
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
    }
}
