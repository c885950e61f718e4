//! Rows of erased or blocked people do not leave the spool for ClickHouse
//! (docs/privacy-model.md section 6). Before each insert of a spool segment, the shipper reads
//! who is blocked and who was erased when, fresh from ClickHouse (`app` wires the reads of
//! `control`), and leaves out every row whose cookie id or visitor id is blocked on its site,
//! or was erased at or after the row's receive time. Live beacons are not filtered here: the
//! pipeline drops those of blocked people itself (docs/reliability.md).

use std::{collections::HashMap, sync::Arc};

use beacon::Blocklist;
use futures_util::future::BoxFuture;
use store::SubjectKind;

use super::batch::{Batch, Table};

/// Reads the filter of the moment from ClickHouse. An error means "do not replay now".
pub type ReadReplayFilter =
    Arc<dyn Fn() -> BoxFuture<'static, Result<ReplayFilter, clickhouse::error::Error>> + Send + Sync>;

/// Who must not be replayed: the blocked subjects, and the erased ones with the time of their
/// latest erasure.
#[derive(Debug, Default)]
pub struct ReplayFilter {
    blocklist: Blocklist,
    /// Per site, `(kind, id)` -> the latest erasure, Unix seconds.
    erased: HashMap<String, HashMap<(SubjectKind, u64), u32>>,
}

/// A batch after the filter, and what it left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    /// The rows to insert; `None` when nothing was left out (insert the batch as it is, so it
    /// keeps its bytes and its deduplication token).
    pub kept: Option<Batch>,
    /// Rows left out because a pseudonym of theirs is blocked.
    pub blocked: u32,
    /// Rows left out because a pseudonym of theirs was erased after they were received.
    pub erased: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    Blocked,
    Erased,
}

impl ReplayFilter {
    /// From the blocklist and `(site, kind, id, erased at)` entries (several per subject: the
    /// latest counts).
    pub fn new(blocklist: Blocklist, erasures: impl IntoIterator<Item = (String, SubjectKind, u64, u32)>) -> Self {
        let mut erased: HashMap<String, HashMap<(SubjectKind, u64), u32>> = HashMap::new();
        for (site, kind, id, at) in erasures {
            let latest = erased.entry(site).or_default().entry((kind, id)).or_insert(at);
            *latest = (*latest).max(at);
        }
        Self { blocklist, erased }
    }

    /// Whether nothing can be left out: then no row needs to be looked at.
    pub fn is_empty(&self) -> bool {
        self.blocklist.is_empty() && self.erased.is_empty()
    }

    /// The batch without the rows of blocked or erased people. A batch whose rows cannot be
    /// told apart, or a row whose leading columns do not decode, is kept: nothing accepted is
    /// dropped unless it is known to belong to such a person.
    pub fn apply(&self, batch: &Batch) -> Filtered {
        let mut filtered = Filtered::default();
        if self.is_empty() {
            return filtered;
        }
        let Some(rows) = batch.split() else { return filtered };
        // Copied only from the first row left out: usually none is, and a batch is megabytes.
        let mut kept: Option<Batch> = None;
        for (index, row) in rows.enumerate() {
            let verdict = self.verdict(batch.table, row);
            if verdict != Verdict::Keep && kept.is_none() {
                let mut copy = Batch::new(batch.table);
                batch.split().into_iter().flatten().take(index).for_each(|row| copy.push(row));
                kept = Some(copy);
            }
            match verdict {
                Verdict::Keep => kept.iter_mut().for_each(|kept| kept.push(row)),
                Verdict::Blocked => filtered.blocked += 1,
                Verdict::Erased => filtered.erased += 1,
            }
        }
        filtered.kept = kept;
        filtered
    }

    fn verdict(&self, table: Table, row: &[u8]) -> Verdict {
        let Some(subject) = table.subject_of(row) else { return Verdict::Keep };
        let ids = [(SubjectKind::Cookie, subject.cookie_id), (SubjectKind::Visitor, subject.visitor_id)];
        if ids.iter().any(|&(kind, id)| self.blocklist.contains(subject.site, kind, id)) {
            return Verdict::Blocked;
        }
        let Some(erased) = self.erased.get(subject.site) else { return Verdict::Keep };
        // Id 0 is no pseudonym (anonymous rows), as in the blocklist.
        let erased_after =
            |&(kind, id): &(SubjectKind, u64)| id != 0 && erased.get(&(kind, id)).is_some_and(|&at| subject.ts <= at);
        if ids.iter().any(erased_after) { Verdict::Erased } else { Verdict::Keep }
    }
}

/// Encoded rows of the real types, for the sink's tests.
#[cfg(test)]
pub(super) mod sample {
    use store::{AudienceRow, EventType, TroubleshootingRow, rowbinary};

    /// An encoded audience row; the other columns hold ordinary values.
    pub fn audience_row(site: &str, ts: u32, visitor_id: u64, cookie_id: u64) -> Vec<u8> {
        let s = |text: &str| text.to_owned();
        let row = AudienceRow {
            date: store::day_number(ts),
            ts,
            site: s(site),
            r#type: EventType::Pageview,
            visitor_id,
            cookie_id,
            host: s("lk.example.ru"),
            path: s("/accounts/:id"),
            query: s(""),
            utm_source: s(""),
            utm_medium: s(""),
            utm_campaign: s(""),
            utm_term: s(""),
            utm_content: s(""),
            ref_host: s(""),
            ref_path: s(""),
            name: s(""),
            prop_keys: vec![s("k")],
            prop_values: vec![s("v")],
            browser: s("Firefox"),
            browser_version: s("121"),
            os: s("Linux"),
            os_version: s(""),
            device: s("pc"),
            country: s("NL"),
            region: s(""),
            city: s(""),
            screen_width: 1280,
            lang: s("nl"),
        };
        let mut out = Vec::new();
        rowbinary::encode(&row, &mut out).unwrap();
        out
    }

    /// An encoded troubleshooting row; the other columns hold ordinary values.
    pub fn troubleshooting_row(site: &str, ts: u32, visitor_id: u64, cookie_id: u64) -> Vec<u8> {
        let s = |text: &str| text.to_owned();
        let row = TroubleshootingRow {
            date: store::day_number(ts),
            ts,
            site: s(site),
            r#type: EventType::Error,
            is_bot: 0,
            visitor_id,
            cookie_id,
            ip_id: 3,
            network: s("203.0.113.0/24"),
            asn: 0,
            as_org: s(""),
            country: s(""),
            host: s("lk.example.ru"),
            path: s("/"),
            ref_host: s(""),
            ref_path: s(""),
            name: s(""),
            user_agent: s("Mozilla/5.0"),
            browser: s(""),
            browser_version: s(""),
            os: s(""),
            os_version: s(""),
            device: s(""),
            ttfb_ms: None,
            fcp_ms: Some(10),
            dcl_ms: None,
            load_ms: None,
            lcp_ms: None,
            inp_ms: None,
            cls: None,
            error_message: s("boom"),
            error_source: s(""),
            error_line: 1,
            error_col: 2,
            error_stack: s(""),
            bot_reason: s(""),
        };
        let mut out = Vec::new();
        rowbinary::encode(&row, &mut out).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{sample::*, *};

    fn batch(table: Table, rows: &[Vec<u8>]) -> Batch {
        let mut batch = Batch::new(table);
        rows.iter().for_each(|r| batch.push(r));
        batch
    }

    const T: u32 = 1_700_000_000;

    fn filter() -> ReplayFilter {
        let blocklist: Blocklist =
            [("lk".to_owned(), SubjectKind::Cookie, 11), ("lk".to_owned(), SubjectKind::Visitor, 12)]
                .into_iter()
                .collect();
        let erasures = [
            ("lk".to_owned(), SubjectKind::Cookie, 21, T),
            ("lk".to_owned(), SubjectKind::Cookie, 21, T - 100),
            ("lk".to_owned(), SubjectKind::Visitor, 22, T),
        ];
        ReplayFilter::new(blocklist, erasures)
    }

    #[test]
    fn leaves_out_rows_of_blocked_and_erased_people_only() {
        let rows = [
            audience_row("lk", T, 1, 0),        // anonymous, kept
            audience_row("lk", T, 2, 11),       // blocked cookie
            audience_row("lk", T + 999, 12, 0), // blocked visitor, whenever received
            audience_row("other", T, 12, 11),   // the same ids on another site: kept
            audience_row("lk", T, 3, 21),       // erased cookie, received at the erasure
            audience_row("lk", T + 1, 4, 21),   // the same cookie after the erasure: kept
            audience_row("lk", T - 5, 22, 0),   // erased visitor, received before
            audience_row("lk", T - 5, 0, 0),    // no pseudonym at all: kept
        ];
        let filtered = filter().apply(&batch(Table::Audience, &rows));
        let expected = batch(Table::Audience, &[&rows[0], &rows[3], &rows[5], &rows[7]].map(Clone::clone));
        assert_eq!(filtered, Filtered { kept: Some(expected), blocked: 2, erased: 2 });

        let rows = [
            troubleshooting_row("lk", T, 5, 11),
            troubleshooting_row("lk", T, 22, 0),
            troubleshooting_row("lk", T, 6, 7),
        ];
        let filtered = filter().apply(&batch(Table::Troubleshooting, &rows));
        assert_eq!(filtered.kept, Some(batch(Table::Troubleshooting, &rows[2..])));
        assert_eq!((filtered.blocked, filtered.erased), (1, 1));
    }

    #[test]
    fn a_batch_with_nothing_to_leave_out_is_kept_as_it_is() {
        let rows = [audience_row("lk", T, 1, 2), audience_row("lk", T + 1, 3, 21)];
        let unchanged = Filtered::default();
        assert_eq!(filter().apply(&batch(Table::Audience, &rows)), unchanged);
        assert_eq!(ReplayFilter::default().apply(&batch(Table::Audience, &rows)), unchanged);
    }

    #[test]
    fn every_row_can_be_left_out() {
        let rows = [audience_row("lk", T, 1, 11), audience_row("lk", T, 1, 21)];
        let filtered = filter().apply(&batch(Table::Audience, &rows));
        assert!(filtered.kept.as_ref().is_some_and(Batch::is_empty));
        assert_eq!((filtered.blocked, filtered.erased), (1, 1));
    }

    #[test]
    fn rows_that_cannot_be_told_apart_or_decoded_are_kept() {
        let blocked = audience_row("lk", T, 1, 11);
        let unsplit = Batch::from_rows(Table::Audience, 1, blocked.clone(), None);
        assert_eq!(filter().apply(&unsplit).kept, None);
        let garbage = batch(Table::Audience, &[b"\x01\x02".to_vec(), blocked[..10].to_vec()]);
        assert_eq!(filter().apply(&garbage).kept, None);
    }
}
