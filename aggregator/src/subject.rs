//! Data-subject requests (docs/privacy-model.md section 6): block, unblock, export and erase a
//! person's data. The request names a site and what the site showed the visitor (their cookie
//! value, or within a salt's life their IP and User-Agent); the aggregator computes the
//! pseudonyms itself, and only pseudonyms reach the blocklist and the audit table.

use std::net::IpAddr;

use clickhouse::{Client, Row};
use serde::Deserialize;
use store::{
    AuditRow, BlocklistRow, Databases, ErasureRow, Scope, SubjectKind,
    pseudonym::{CookieKey, SaltKeys},
};

use crate::audit;

/// Who the request is about, as the site knows them.
#[derive(Debug, Clone)]
pub enum Identity {
    /// The value of the first-party cookie (cookie mode).
    Cookie(String),
    /// The address and User-Agent; matches only within the lives of the salts still held.
    Connection { ip: IpAddr, user_agent: String },
}

/// One pseudonym under which the person's rows may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: u64,
}

impl Subject {
    /// The events column holding this kind of pseudonym.
    pub fn column(self) -> &'static str {
        match self.kind {
            SubjectKind::Cookie => "cookie_id",
            SubjectKind::Visitor => "visitor_id",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("ClickHouse refused {what}: {source}")]
    ClickHouse { what: &'static str, source: clickhouse::error::Error },
    #[error("no salt is held any more, so no visitor id can be computed for this IP and User-Agent")]
    NoSalts,
    #[error("the erase did not finish within {0} s; check system.mutations")]
    EraseTimeout(u64),
}

fn ch(what: &'static str) -> impl FnOnce(clickhouse::error::Error) -> SubjectError {
    move |source| SubjectError::ClickHouse { what, source }
}

/// The pseudonyms of `identity` on `site`: one cookie id, or one visitor id per salt held.
pub async fn resolve(
    client: &Client,
    databases: &Databases,
    site: &str,
    identity: &Identity,
    cookie_key: Option<&CookieKey>,
) -> Result<Vec<Subject>, SubjectError> {
    match identity {
        Identity::Cookie(value) => {
            let key = cookie_key.expect("the caller reads the cookie key for cookie requests");
            Ok(vec![Subject { kind: SubjectKind::Cookie, id: key.cookie_id(site, value) }])
        }
        Identity::Connection { ip, user_agent } => {
            #[derive(Row, Deserialize)]
            struct Salt {
                salt: [u8; 32],
            }
            let salts = client
                .query(&format!("SELECT salt FROM {}", databases.salts()))
                .fetch_all::<Salt>()
                .await
                .map_err(ch("reading salts"))?;
            if salts.is_empty() {
                return Err(SubjectError::NoSalts);
            }
            // Cut exactly as the collector cuts before hashing.
            let ua = store::pseudonym::user_agent_prefix(user_agent);
            let mut subjects: Vec<Subject> = salts
                .iter()
                .map(|s| Subject {
                    kind: SubjectKind::Visitor,
                    id: SaltKeys::derive(&s.salt).visitor_id(site, *ip, ua),
                })
                .collect();
            subjects.dedup();
            Ok(subjects)
        }
    }
}

/// The days on which the subjects have audience rows: the rollups to recompute after a block,
/// an unblock or an erase.
pub async fn days(
    client: &Client,
    databases: &Databases,
    site: &str,
    subjects: &[Subject],
) -> Result<Vec<u16>, SubjectError> {
    let mut days = Vec::new();
    for s in subjects {
        days.extend(
            crate::rollups::days_with(client, databases, site, s.column(), s.id)
                .await
                .map_err(ch("finding the days to recompute"))?,
        );
    }
    days.sort_unstable();
    days.dedup();
    Ok(days)
}

/// Blocks (or unblocks) the subjects: collectors drop their beacons within a refresh, and
/// analyst views exclude their rows.
pub async fn set_blocked(
    client: &Client,
    databases: &Databases,
    site: &str,
    subjects: &[Subject],
    blocked: bool,
    now: u32,
) -> Result<(), SubjectError> {
    let mut insert =
        client.insert_unescaped::<BlocklistRow>(&databases.blocklist()).await.map_err(ch("writing the blocklist"))?;
    let seq = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    for s in subjects {
        let row = BlocklistRow {
            site: site.to_owned(),
            subject_kind: s.kind,
            subject_id: s.id,
            blocked: u8::from(blocked),
            ts: now,
            seq,
        };
        insert.write(&row).await.map_err(ch("writing the blocklist"))?;
    }
    insert.end().await.map_err(ch("writing the blocklist"))?;
    let action = if blocked { "subject_block" } else { "subject_unblock" };
    record(client, databases, site, subjects, action, |_| 0, now).await
}

/// Everything stored under the subjects, per store, as JSON objects (column → value).
pub async fn export(
    client: &Client,
    databases: &Databases,
    site: &str,
    subjects: &[Subject],
    now: u32,
) -> Result<serde_json::Value, SubjectError> {
    let mut stores = serde_json::Map::new();
    let mut counts: Vec<(Subject, u64)> = subjects.iter().map(|s| (*s, 0)).collect();
    for (name, table) in
        [("audience", databases.audience_events()), ("troubleshooting", databases.troubleshooting_events())]
    {
        let mut rows = Vec::new();
        for (subject, count) in &mut counts {
            let mut cursor = client
                .query(&format!("SELECT * FROM {table} WHERE site = ? AND {} = ? ORDER BY ts", subject.column()))
                .bind(site)
                .bind(subject.id)
                .fetch_bytes("JSONEachRow")
                .map_err(ch("exporting rows"))?;
            let bytes = cursor.collect().await.map_err(ch("exporting rows"))?;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                // ClickHouse wrote this JSON; a line that does not parse is kept as text.
                rows.push(serde_json::from_slice(line).unwrap_or_else(|_| String::from_utf8_lossy(line).into()));
                *count += 1;
            }
        }
        stores.insert(name.to_owned(), serde_json::Value::Array(rows));
    }
    record(client, databases, site, subjects, "subject_export", |s| count_of(&counts, s), now).await?;
    Ok(serde_json::json!({
        "site": site,
        "subjects": subjects.iter().map(|s| serde_json::json!({"kind": s.kind.as_str(), "id": s.id.to_string()})).collect::<Vec<_>>(),
        "stores": stores,
    }))
}

/// Deletes every row under the subjects in every store, waiting until ClickHouse has applied
/// each deletion, and audits each deletion as soon as it is applied (so an erase that fails
/// half-way leaves no unaudited deletion). Returns the number of rows deleted.
///
/// First it records the erasure in `<prefix>_meta.erasures`: collectors read it before each
/// replay of their spool and drop the subjects' rows received until now, so rows that wait in
/// a spool or a dead letter are not inserted after the deletion (docs/privacy-model.md
/// section 6). It is written before anything is deleted, so that no replay can slip in between.
pub async fn erase(
    client: &Client,
    databases: &Databases,
    site: &str,
    subjects: &[Subject],
    now: u32,
) -> Result<u64, SubjectError> {
    let mut marks =
        client.insert_unescaped::<ErasureRow>(&databases.erasures()).await.map_err(ch("recording the erasure"))?;
    for s in subjects {
        let row = ErasureRow { site: site.to_owned(), subject_kind: s.kind, subject_id: s.id, ts: now };
        marks.write(&row).await.map_err(ch("recording the erasure"))?;
    }
    marks.end().await.map_err(ch("recording the erasure"))?;
    let mut total = 0;
    for &subject in subjects {
        let mut rows_of_subject = 0;
        for (db, table) in [
            (databases.audience(), databases.audience_events()),
            (databases.troubleshooting(), databases.troubleshooting_events()),
        ] {
            let where_ = format!("site = ? AND {} = ?", subject.column());
            let n: u64 = client
                .query(&format!("SELECT count() FROM {table} WHERE {where_}"))
                .bind(site)
                .bind(subject.id)
                .fetch_one()
                .await
                .map_err(ch("counting rows to erase"))?;
            if n == 0 {
                continue;
            }
            client
                .query(&format!("ALTER TABLE {} DELETE WHERE {where_}", databases.events_alter(&table)))
                .bind(site)
                .bind(subject.id)
                .execute()
                .await
                .map_err(ch("erasing rows"))?;
            wait_for_mutations(client, databases, db).await?;
            let row = audit_row(site, subject, "subject_erase", table, n, now);
            audit::record(client, databases, &[row]).await.map_err(ch("writing the audit trail"))?;
            rows_of_subject += n;
        }
        if rows_of_subject == 0 {
            // Nothing stored: the request is audited all the same.
            let row = audit_row(site, subject, "subject_erase", String::new(), 0, now);
            audit::record(client, databases, &[row]).await.map_err(ch("writing the audit trail"))?;
        }
        total += rows_of_subject;
    }
    Ok(total)
}

fn count_of(counts: &[(Subject, u64)], subject: Subject) -> u64 {
    counts.iter().find(|(s, _)| *s == subject).map_or(0, |(_, n)| *n)
}

/// Mutations run in the background; a request is done only when they are, on every node.
async fn wait_for_mutations(client: &Client, databases: &Databases, database: &str) -> Result<(), SubjectError> {
    let (mutations, table) = (databases.system("mutations", Scope::Nodes), databases.events_table_name());
    const LIMIT_S: u64 = 300;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(LIMIT_S);
    loop {
        let pending: u64 = client
            .query(&format!("SELECT count() FROM {mutations} WHERE database = ? AND table = ? AND is_done = 0"))
            .bind(database)
            .bind(&table)
            .fetch_one()
            .await
            .map_err(ch("waiting for the erase"))?;
        if pending == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(SubjectError::EraseTimeout(LIMIT_S));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// One audit row per subject: the pseudonym, never the cookie value, IP or User-Agent.
async fn record(
    client: &Client,
    databases: &Databases,
    site: &str,
    subjects: &[Subject],
    action: &str,
    rows: impl Fn(Subject) -> u64,
    now: u32,
) -> Result<(), SubjectError> {
    let audit_rows: Vec<AuditRow> =
        subjects.iter().map(|s| audit_row(site, *s, action, String::new(), rows(*s), now)).collect();
    audit::record(client, databases, &audit_rows).await.map_err(ch("writing the audit trail"))
}

fn audit_row(site: &str, subject: Subject, action: &str, target: String, rows: u64, now: u32) -> AuditRow {
    AuditRow {
        ts: now,
        action: action.to_owned(),
        site: site.to_owned(),
        target,
        subject_kind: subject.kind.as_str().to_owned(),
        subject_id: subject.id,
        rows,
        detail: String::new(),
    }
}
