//! The salts of the current and coming periods, as keys derived from them. `refresh` reloads
//! them periodically; a reload replaces the whole set, so a salt whose period has ended is
//! forgotten at the next refresh.

use clickhouse::Client;
use store::{Databases, SaltRow, pseudonym::SaltKeys};

struct Period {
    start: u32,
    end: u32,
    keys: SaltKeys,
}

/// The periods held in memory: only keys derived from salts, never the salts themselves.
#[derive(Default)]
pub struct SaltSet {
    periods: Vec<Period>,
}

impl SaltSet {
    /// Builds the set from salt rows, keeping periods not yet ended at `now`. When two salts
    /// exist for one period (two aggregators raced), every collector picks the smaller one.
    pub fn from_rows(mut rows: Vec<SaltRow>, now: u32) -> Self {
        rows.retain(|r| r.period_end > now && r.period_start < r.period_end);
        rows.sort_by_key(|a| (a.period_start, a.salt));
        rows.dedup_by_key(|r| r.period_start);
        let periods = rows
            .iter()
            .map(|r| Period { start: r.period_start, end: r.period_end, keys: SaltKeys::derive(&r.salt) })
            .collect();
        Self { periods }
    }

    /// The keys of the period containing `t`.
    pub fn keys_at(&self, t: u32) -> Option<&SaltKeys> {
        self.periods.iter().find(|p| p.start <= t && t < p.end).map(|p| &p.keys)
    }

    /// `(start, end)` of every period held, for metrics.
    pub fn periods(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.periods.iter().map(|p| (p.start, p.end))
    }
}

/// Reads the salts not yet expired at `now`.
pub async fn load(client: &Client, databases: &Databases, now: u32) -> Result<SaltSet, clickhouse::error::Error> {
    let rows = client
        .query(&format!("SELECT ?fields FROM {} WHERE period_end > toDateTime(?)", databases.salts()))
        .bind(now)
        .fetch_all::<SaltRow>()
        .await?;
    Ok(SaltSet::from_rows(rows, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start: u32, end: u32, salt: u8) -> SaltRow {
        SaltRow { period_start: start, period_end: end, salt: [salt; 32], created_at: 0 }
    }

    #[test]
    fn finds_the_period_containing_a_time_and_forgets_ended_ones() {
        let set = SaltSet::from_rows(vec![row(0, 100, 1), row(100, 200, 2), row(200, 300, 3)], 150);
        assert_eq!(set.periods().collect::<Vec<_>>(), vec![(100, 200), (200, 300)]);
        assert!(set.keys_at(50).is_none());
        let at = |t| set.keys_at(t).unwrap().ip_id("192.0.2.1".parse().unwrap());
        assert_eq!(at(100), SaltKeys::derive(&[2; 32]).ip_id("192.0.2.1".parse().unwrap()));
        assert_ne!(at(199), at(200));
        assert!(set.keys_at(300).is_none());
    }

    #[test]
    fn duplicate_salts_for_a_period_resolve_to_the_smaller() {
        let set = SaltSet::from_rows(vec![row(0, 100, 9), row(0, 100, 4)], 0);
        let ip = "192.0.2.1".parse().unwrap();
        assert_eq!(set.keys_at(5).unwrap().ip_id(ip), SaltKeys::derive(&[4; 32]).ip_id(ip));
    }
}
