//! One struct per table, fields in the table's column order. RowBinary is positional, so the
//! e2e suite compares these with `DESCRIBE TABLE` on a real server.

use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};

use crate::rowbinary::Reader;

/// The `type` column (`Enum8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize_repr, Deserialize_repr)]
#[repr(i8)]
pub enum EventType {
    Pageview = 1,
    Event = 2,
    Timing = 3,
    Error = 4,
}

impl EventType {
    pub const ALL: [EventType; 4] = [EventType::Pageview, EventType::Event, EventType::Timing, EventType::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Pageview => "pageview",
            EventType::Event => "event",
            EventType::Timing => "timing",
            EventType::Error => "error",
        }
    }
}

/// Days since 1970-01-01 for a Unix time in seconds: ClickHouse's `Date` in RowBinary.
pub fn day_number(unix_seconds: u32) -> u16 {
    // u32 seconds end in 2106, u16 days in 2149: the cast cannot truncate.
    (unix_seconds / 86_400) as u16
}

/// `<prefix>_audience.events`: purpose A. Holds pseudonyms and derived fields only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct AudienceRow {
    pub date: u16,
    pub ts: u32,
    pub site: String,
    pub r#type: EventType,
    pub visitor_id: u64,
    pub cookie_id: u64,
    pub host: String,
    pub path: String,
    pub query: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_term: String,
    pub utm_content: String,
    pub ref_host: String,
    pub ref_path: String,
    pub name: String,
    pub prop_keys: Vec<String>,
    pub prop_values: Vec<String>,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    pub country: String,
    pub region: String,
    pub city: String,
    pub screen_width: u16,
    pub lang: String,
}

/// Whom a stored row is about: its site, receive time and pseudonyms, read from the leading
/// columns of its RowBinary bytes without decoding the rest ([`AudienceRow::subject_of`],
/// [`TroubleshootingRow::subject_of`]). The collector uses it to keep rows of erased or blocked
/// people in its spool out of ClickHouse (docs/privacy-model.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSubject<'a> {
    pub site: &'a str,
    /// `ts`: when the collector received the beacon, Unix seconds.
    pub ts: u32,
    pub visitor_id: u64,
    pub cookie_id: u64,
}

impl AudienceRow {
    /// The subject of an encoded audience row (`date`, `ts`, `site`, `type`, `visitor_id`,
    /// `cookie_id` lead); `None` when the bytes are too short or the site is not UTF-8.
    pub fn subject_of(row: &[u8]) -> Option<RowSubject<'_>> {
        let mut r = Reader::new(row);
        let (_date, ts, site, _type) = (r.u16()?, r.u32()?, r.str()?, r.u8()?);
        Some(RowSubject { site, ts, visitor_id: r.u64()?, cookie_id: r.u64()? })
    }
}

impl AudienceRow {
    /// RowBinary defaults of the columns appended since the table's first shape, oldest first.
    pub const APPENDED_DEFAULTS: &'static [&'static [u8]] = &[];
}

impl TroubleshootingRow {
    /// RowBinary defaults of the columns appended since the table's first shape, oldest first:
    /// a row an older build spooled gets the ones it lacks (`Table::upgrade` in the collector).
    /// Migration 0006: `bot_reason`, an empty String.
    pub const APPENDED_DEFAULTS: &'static [&'static [u8]] = &[&[0]];

    /// The subject of an encoded troubleshooting row (`date`, `ts`, `site`, `type`, `is_bot`,
    /// `visitor_id`, `cookie_id` lead); `None` when the bytes are too short or the site is not
    /// UTF-8.
    pub fn subject_of(row: &[u8]) -> Option<RowSubject<'_>> {
        let mut r = Reader::new(row);
        let (_date, ts, site, _type, _is_bot) = (r.u16()?, r.u32()?, r.str()?, r.u8()?, r.u8()?);
        Some(RowSubject { site, ts, visitor_id: r.u64()?, cookie_id: r.u64()? })
    }
}

/// `<prefix>_troubleshooting.events`: purpose T. Every beacon, bots included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct TroubleshootingRow {
    pub date: u16,
    pub ts: u32,
    pub site: String,
    pub r#type: EventType,
    pub is_bot: u8,
    pub visitor_id: u64,
    pub cookie_id: u64,
    pub ip_id: u64,
    pub network: String,
    pub asn: u32,
    pub as_org: String,
    pub country: String,
    pub host: String,
    pub path: String,
    pub ref_host: String,
    pub ref_path: String,
    pub name: String,
    pub user_agent: String,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    pub ttfb_ms: Option<u32>,
    pub fcp_ms: Option<u32>,
    pub dcl_ms: Option<u32>,
    pub load_ms: Option<u32>,
    pub lcp_ms: Option<u32>,
    pub inp_ms: Option<u32>,
    pub cls: Option<f32>,
    pub error_message: String,
    pub error_source: String,
    pub error_line: u32,
    pub error_col: u32,
    pub error_stack: String,
    /// Why the beacon counts as a bot, or is flagged (`hosting:`), as `<signal>:<detail>`;
    /// empty when no signal matched (docs/privacy.md, Bots). Appended by migration 0006.
    pub bot_reason: String,
}

/// `<prefix>_meta.salts`: one 32-byte random salt per rotation period `[start, end)`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct SaltRow {
    pub period_start: u32,
    pub period_end: u32,
    pub salt: [u8; 32],
    pub created_at: u32,
}

/// Never prints the salt itself.
impl std::fmt::Debug for SaltRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaltRow")
            .field("period_start", &self.period_start)
            .field("period_end", &self.period_end)
            .field("salt", &"<redacted>")
            .finish()
    }
}

/// `<prefix>_admin.schema_migrations`: one row per applied migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct MigrationRow {
    pub version: u32,
    pub name: String,
    /// The first 16 hex digits of the migration's BLAKE3 hash.
    pub checksum: String,
    pub applied_at: u32,
}

/// `<prefix>_admin.audit`: one row per deletion or data-subject request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct AuditRow {
    pub ts: u32,
    /// What was done: `retention_drop`, `salt_delete`, `subject_block`, ...
    pub action: String,
    pub site: String,
    /// The table, partition or period acted on.
    pub target: String,
    /// `cookie`, `visitor`, or empty when no person is concerned.
    pub subject_kind: String,
    /// The pseudonym concerned, never a raw value; 0 when none.
    pub subject_id: u64,
    pub rows: u64,
    pub detail: String,
}

/// The `subject_kind` of the blocklist (`Enum8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize_repr, Deserialize_repr)]
#[repr(i8)]
pub enum SubjectKind {
    /// A cookie pseudonym (`cookie_id`): the same browser across days.
    Cookie = 1,
    /// A visitor id (`visitor_id`): one (site, IP, User-Agent) within one salt period.
    Visitor = 2,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Cookie => "cookie",
            SubjectKind::Visitor => "visitor",
        }
    }
}

/// `<prefix>_meta.blocklist`: a block (1) or unblock (0) request; the row with the highest
/// `seq` decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct BlocklistRow {
    pub site: String,
    pub subject_kind: SubjectKind,
    pub subject_id: u64,
    pub blocked: u8,
    pub ts: u32,
    /// Request time in milliseconds since the epoch: orders a block and an unblock made within
    /// the same second.
    pub seq: u64,
}

/// The subjects blocked now, `(site, subject_kind, subject_id)` per row: the query that the
/// collectors and the analyst views share.
pub const BLOCKED_SUBJECTS_SQL: &str = "SELECT site, subject_kind, subject_id FROM {meta}.blocklist \
     GROUP BY site, subject_kind, subject_id HAVING argMax(blocked, seq) = 1";

/// `<prefix>_meta.erasures`: one row per pseudonym and `erase` request, written before the
/// rows are deleted. Collectors drop the rows of an erased pseudonym that wait in their spool
/// or dead letters, if received up to its latest erasure (docs/privacy-model.md section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct ErasureRow {
    pub site: String,
    pub subject_kind: SubjectKind,
    pub subject_id: u64,
    /// When the erase was requested, Unix seconds (the aggregator's clock).
    pub ts: u32,
}

/// The erased subjects and the time of each one's latest erasure, `(site, subject_kind,
/// subject_id, ts)` per row: what the collectors read before replaying their spool.
pub const ERASED_SUBJECTS_SQL: &str = "SELECT site, subject_kind, subject_id, max(ts) AS erased_at FROM {meta}.erasures \
     GROUP BY site, subject_kind, subject_id";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rowbinary::encode;

    fn audience(site: &str, ts: u32, visitor_id: u64, cookie_id: u64) -> AudienceRow {
        let text = |s: &str| s.to_owned();
        AudienceRow {
            date: day_number(ts),
            ts,
            site: text(site),
            r#type: EventType::Event,
            visitor_id,
            cookie_id,
            host: text("shop.example"),
            path: text("/cart"),
            query: text("q=1"),
            utm_source: text("news"),
            utm_medium: text("mail"),
            utm_campaign: text("spring"),
            utm_term: text("shoes"),
            utm_content: text("banner"),
            ref_host: text("search.example"),
            ref_path: text("/"),
            name: text("signup"),
            prop_keys: vec![text("plan"), text("seats")],
            prop_values: vec![text("pro"), text("5")],
            browser: text("Firefox"),
            browser_version: text("121"),
            os: text("Linux"),
            os_version: text(""),
            device: text("pc"),
            country: text("NL"),
            region: text("NH"),
            city: text("Amsterdam"),
            screen_width: 1280,
            lang: text("nl-NL"),
        }
    }

    fn troubleshooting(site: &str, ts: u32, visitor_id: u64, cookie_id: u64) -> TroubleshootingRow {
        let text = |s: &str| s.to_owned();
        TroubleshootingRow {
            date: day_number(ts),
            ts,
            site: text(site),
            r#type: EventType::Timing,
            is_bot: 1,
            visitor_id,
            cookie_id,
            ip_id: 0x0102_0304_0506_0708,
            network: text("192.0.2.0/24"),
            asn: 64_500,
            as_org: text("Example AS"),
            country: text("NL"),
            host: text("shop.example"),
            path: text("/cart"),
            ref_host: text(""),
            ref_path: text(""),
            name: text(""),
            user_agent: text("Mozilla/5.0"),
            browser: text("Firefox"),
            browser_version: text("121"),
            os: text("Linux"),
            os_version: text(""),
            device: text("pc"),
            ttfb_ms: Some(120),
            fcp_ms: None,
            dcl_ms: Some(300),
            load_ms: None,
            lcp_ms: Some(900),
            inp_ms: None,
            cls: Some(0.05),
            error_message: text(""),
            error_source: text(""),
            error_line: 0,
            error_col: 0,
            error_stack: text(""),
            bot_reason: text("list:Googlebot"),
        }
    }

    fn bytes(row: &impl Serialize) -> Vec<u8> {
        let mut out = Vec::new();
        encode(row, &mut out).unwrap();
        out
    }

    /// Distinct values in every leading column: a change of the structs' field order (which
    /// is the tables' column order) makes the decoded subject differ.
    #[test]
    fn the_subject_comes_from_the_leading_columns_of_encoded_rows() {
        // A site long enough for a two-byte length prefix.
        let site = "é".repeat(70);
        let expected = RowSubject { site: &site, ts: 1_700_000_123, visitor_id: 0xA1A2_A3A4_A5A6_A7A8, cookie_id: 77 };
        let row = bytes(&audience(&site, expected.ts, expected.visitor_id, expected.cookie_id));
        assert_eq!(AudienceRow::subject_of(&row), Some(expected));
        let row = bytes(&troubleshooting(&site, expected.ts, expected.visitor_id, expected.cookie_id));
        assert_eq!(TroubleshootingRow::subject_of(&row), Some(expected));
    }

    #[test]
    fn short_or_garbage_rows_have_no_subject_and_never_panic() {
        let audience = bytes(&audience("lk", 1_700_000_000, 5, 6));
        let troubleshooting = bytes(&troubleshooting("lk", 1_700_000_000, 5, 6));
        // date 2 + ts 4 + site 1+2 + type 1 (+ is_bot 1) + two ids 16.
        let (a_lead, t_lead) = (26, 27);
        for cut in 0..a_lead {
            assert_eq!(AudienceRow::subject_of(&audience[..cut]), None, "cut at {cut}");
        }
        assert!(AudienceRow::subject_of(&audience[..a_lead]).is_some());
        for cut in 0..t_lead {
            assert_eq!(TroubleshootingRow::subject_of(&troubleshooting[..cut]), None, "cut at {cut}");
        }
        assert!(TroubleshootingRow::subject_of(&troubleshooting[..t_lead]).is_some());
        // A site length past the end, an endless length, a site that is not UTF-8.
        let mut past_end = vec![0; 6];
        past_end.extend_from_slice(&[0x7f, b'a']);
        assert_eq!(AudienceRow::subject_of(&past_end), None);
        assert_eq!(AudienceRow::subject_of(&[[0u8; 6].as_slice(), &[0xff; 40]].concat()), None);
        let mut not_utf8 = vec![0; 6];
        not_utf8.extend_from_slice(&[2, 0xc3, 0x28]);
        not_utf8.extend_from_slice(&[0; 17]);
        assert_eq!(AudienceRow::subject_of(&not_utf8), None);
        // Pseudo-random bytes of every length up to a row's: no panic, whatever comes back.
        let mut x: u32 = 0x9E37_79B9;
        let noise: Vec<u8> = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x & 0xff) as u8
            })
            .collect();
        for len in 0..noise.len() {
            let _ = (AudienceRow::subject_of(&noise[..len]), TroubleshootingRow::subject_of(&noise[..len]));
        }
    }

    #[test]
    fn whole_rows_decode_back_and_say_where_they_end() {
        let a = audience("lk", 1_700_000_000, 5, 6);
        let t = troubleshooting("lk", 1_700_000_001, 7, 8);
        let mut both = bytes(&a);
        let first = both.len();
        both.extend_from_slice(&bytes(&a));
        let mut input = both.as_slice();
        assert_eq!(crate::rowbinary::decode::<AudienceRow>(&mut input).unwrap(), a);
        assert_eq!(input.len(), both.len() - first, "the input starts at the second row");
        assert_eq!(crate::rowbinary::decode::<AudienceRow>(&mut input).unwrap(), a);
        assert!(input.is_empty());

        let encoded = bytes(&t);
        let mut input = encoded.as_slice();
        assert_eq!(crate::rowbinary::decode::<TroubleshootingRow>(&mut input).unwrap(), t);
        assert!(input.is_empty());
        for cut in 0..encoded.len() {
            let mut input = &encoded[..cut];
            assert!(crate::rowbinary::decode::<TroubleshootingRow>(&mut input).is_err(), "cut at {cut}");
        }
    }
}
