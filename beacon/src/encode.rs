//! Rows as bytes: a beacon's rows are encoded to RowBinary once, here; from then on the
//! collector's sink, spool and inserts move these bytes as they are.

use store::rowbinary;

use crate::Pseudonymised;

/// One accepted beacon's rows (zero or one per store), encoded.
#[derive(Debug)]
pub struct EncodedBeacon {
    bytes: Vec<u8>,
    /// Where the troubleshooting row starts in `bytes`.
    split: usize,
    present: [bool; 2],
}

impl EncodedBeacon {
    pub fn encode(rows: Pseudonymised) -> Self {
        let (audience, troubleshooting) = rows.into_parts();
        let mut bytes = Vec::with_capacity(1024);
        // Only our row types reach here; `store::rowbinary` tests that they encode.
        let fails = "rows are RowBinary-encodable";
        if let Some(row) = &audience {
            rowbinary::encode(row, &mut bytes).expect(fails);
        }
        let split = bytes.len();
        if let Some(row) = &troubleshooting {
            rowbinary::encode(row, &mut bytes).expect(fails);
        }
        Self { bytes, split, present: [audience.is_some(), troubleshooting.is_some()] }
    }

    /// The encoded audience row, if the beacon has one.
    pub fn audience(&self) -> Option<&[u8]> {
        self.present[0].then(|| &self.bytes[..self.split])
    }

    /// The encoded troubleshooting row, if the beacon has one.
    pub fn troubleshooting(&self) -> Option<&[u8]> {
        self.present[1].then(|| &self.bytes[self.split..])
    }

    pub fn rows(&self) -> u32 {
        self.present.iter().map(|&p| u32::from(p)).sum()
    }
}
