//! One struct per table, fields in the table's column order. RowBinary is positional, so the
//! e2e suite compares these with `DESCRIBE TABLE` on a real server.

use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};

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
