//! The blocked pseudonyms (docs/privacy-model.md section 6): the pipeline drops a beacon whose
//! cookie id or visitor id is among them before any row is built. The collector loads them
//! from ClickHouse with the salts and swaps them in whole.

use std::collections::{HashMap, HashSet};

use store::SubjectKind;

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
}

impl FromIterator<(String, SubjectKind, u64)> for Blocklist {
    /// From `(site, kind, id)` entries.
    fn from_iter<I: IntoIterator<Item = (String, SubjectKind, u64)>>(entries: I) -> Self {
        let mut by_site: HashMap<String, HashSet<(SubjectKind, u64)>> = HashMap::new();
        for (site, kind, id) in entries {
            by_site.entry(site).or_default().insert((kind, id));
        }
        Self { by_site }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_site_kind_and_id() {
        let list: Blocklist =
            [("a".to_owned(), SubjectKind::Cookie, 7), ("a".to_owned(), SubjectKind::Visitor, 9)].into_iter().collect();
        assert!(list.contains("a", SubjectKind::Cookie, 7));
        assert!(!list.contains("a", SubjectKind::Visitor, 7));
        assert!(!list.contains("b", SubjectKind::Cookie, 7));
        assert!(!list.contains("a", SubjectKind::Cookie, 0), "0 means no pseudonym");
        assert_eq!(list.len(), 2);
    }
}
