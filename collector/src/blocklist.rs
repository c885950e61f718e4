//! The blocked pseudonyms (privacy-model.md section 6), loaded from ClickHouse with the salts
//! and swapped atomically; handlers check it before anything is stored.

use std::collections::{HashMap, HashSet};

use clickhouse::{Client, Row};
use serde::Deserialize;
use store::{BLOCKED_SUBJECTS_SQL, Databases, SubjectKind};

/// Blocked subjects per site.
#[derive(Debug, Default)]
pub struct Blocklist {
    by_site: HashMap<String, HashSet<(SubjectKind, u64)>>,
}

impl Blocklist {
    pub fn contains(&self, site: &str, kind: SubjectKind, id: u64) -> bool {
        id != 0 && self.by_site.get(site).is_some_and(|set| set.contains(&(kind, id)))
    }

    pub fn len(&self) -> usize {
        self.by_site.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_site.is_empty()
    }

    fn from_rows(rows: Vec<Blocked>) -> Self {
        let mut by_site: HashMap<String, HashSet<(SubjectKind, u64)>> = HashMap::new();
        for row in rows {
            by_site.entry(row.site).or_default().insert((row.subject_kind, row.subject_id));
        }
        Self { by_site }
    }
}

#[derive(Row, Deserialize)]
struct Blocked {
    site: String,
    subject_kind: SubjectKind,
    subject_id: u64,
}

pub async fn load(client: &Client, databases: &Databases) -> Result<Blocklist, clickhouse::error::Error> {
    let rows = client.query(&databases.render(BLOCKED_SUBJECTS_SQL)).fetch_all::<Blocked>().await?;
    Ok(Blocklist::from_rows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_site_kind_and_id() {
        let list = Blocklist::from_rows(vec![
            Blocked { site: "a".into(), subject_kind: SubjectKind::Cookie, subject_id: 7 },
            Blocked { site: "a".into(), subject_kind: SubjectKind::Visitor, subject_id: 9 },
        ]);
        assert!(list.contains("a", SubjectKind::Cookie, 7));
        assert!(!list.contains("a", SubjectKind::Visitor, 7));
        assert!(!list.contains("b", SubjectKind::Cookie, 7));
        assert!(!list.contains("a", SubjectKind::Cookie, 0), "0 means no pseudonym");
        assert_eq!(list.len(), 2);
    }
}
