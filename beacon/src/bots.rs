//! The maintained bot list (docs/privacy.md, Bots): the patterns of PyPI `crawler-user-agents`,
//! as `scripts/bots.sh` fetches them (pinned; nothing is fetched at run time), compiled once:
//! the plain ones into one Aho-Corasick automaton, the others into one `RegexSet`. Matched
//! case-sensitively, as the list is written (`Sonic`, `Fever` would otherwise match words of
//! ordinary agents). The few patterns known to match real people's browsers are left out
//! ([`EXCLUDED`]).

use std::path::Path;

use aho_corasick::AhoCorasick;
use regex::RegexSet;
use serde::Deserialize;

/// Patterns of the list that match ordinary browsers, as the list writes them: phones named
/// Butterfly (HTC), in-app browsers of Blackboard, Facebook (`MetaIAB Facebook`) and VS Code
/// (`Code/1.`), Opera Mini builds ending in `008/`, an OPPO Android build id, and app names
/// also used by browsers. Found on the browser corpora of the isbot and iscrawl crates.
pub const EXCLUDED: [&str; 12] = [
    "Butterfly",
    "Blackboard",
    "008\\/",
    "AP3A\\.240617\\.008",
    "MetaIAB Facebook",
    "Fluid",
    "Code\\/1\\.",
    "Magellan",
    "Synapse",
    "splash Version\\/",
    "nbertaupete95",
    "DMBrowser",
];

/// One entry of `crawler-user-agents.json`; `instances` are example agents (the test corpus).
#[derive(Debug, Deserialize)]
pub struct Entry {
    pub pattern: String,
    #[serde(default)]
    pub instances: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BotListError {
    #[error("cannot read the bot list {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the bot list {path} is not crawler-user-agents JSON: {source}")]
    Format { path: String, source: serde_json::Error },
    #[error("the bot list {path} has a pattern that does not compile: {reason}")]
    Pattern { path: String, reason: String },
}

pub struct BotList {
    literals: AhoCorasick,
    regexes: RegexSet,
    /// Every pattern as the list writes it, by match index: the literals, then the regexes.
    patterns: Vec<String>,
}

impl BotList {
    pub fn open(path: &Path) -> Result<Self, BotListError> {
        let name = || path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| BotListError::Read { path: name(), source })?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&bytes).map_err(|source| BotListError::Format { path: name(), source })?;
        Self::new(entries.iter().map(|e| e.pattern.as_str()))
            .map_err(|reason| BotListError::Pattern { path: name(), reason })
    }

    /// From the list's patterns (regular expressions), less [`EXCLUDED`].
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let (mut literals, mut plain, mut regexes) = (Vec::new(), Vec::new(), Vec::new());
        for pattern in patterns.into_iter().filter(|p| !EXCLUDED.contains(p)) {
            match as_literal(pattern) {
                Some(literal) => {
                    literals.push(literal);
                    plain.push(pattern.to_owned());
                }
                None => regexes.push(pattern),
            }
        }
        let mut patterns = plain;
        patterns.extend(regexes.iter().map(|r| (*r).to_owned()));
        Ok(Self {
            literals: AhoCorasick::new(&literals).map_err(|e| e.to_string())?,
            regexes: RegexSet::new(&regexes).map_err(|e| e.to_string())?,
            patterns,
        })
    }

    /// The index of every pattern that matches `user_agent` (see [`Self::index_of`]).
    pub fn matches(&self, user_agent: &str) -> Vec<u16> {
        let literals = self.literals.patterns_len();
        let mut found: Vec<u16> = self
            .literals
            .find_overlapping_iter(user_agent)
            .map(|m| m.pattern().as_usize())
            .chain(self.regexes.matches(user_agent).iter().map(|i| literals + i))
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The index of a pattern written as in the list (`Googlebot\/`).
    pub fn index_of(&self, pattern: &str) -> Option<u16> {
        self.patterns.iter().position(|p| p == pattern).and_then(|i| u16::try_from(i).ok())
    }

    /// The pattern at `index`, as the list writes it.
    pub fn pattern(&self, index: u16) -> Option<&str> {
        self.patterns.get(usize::from(index)).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// The text a pattern matches if it has no regular-expression syntax but escaped punctuation
/// (`Googlebot\/`).
fn as_literal(pattern: &str) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() || e == ' ' => out.push(e),
                _ => return None,
            },
            '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => return None,
            _ => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_patterns_and_regexes_match_case_sensitively() {
        let list = BotList::new(["Googlebot\\/", "[wW]get", "AdsBot-Google([^-]|$)", "Butterfly"]).unwrap();
        assert_eq!(list.len(), 3, "Butterfly is excluded");
        let is_match = |ua: &str| !list.matches(ua).is_empty();
        assert!(is_match("Mozilla/5.0 (compatible; Googlebot/2.1)"));
        assert!(is_match("Wget/1.21"));
        assert!(is_match("AdsBot-Google (+http://www.google.com/adsbot.html)"));
        assert!(!is_match("AdsBot-Google-Mobile"));
        assert!(!is_match("googlebot/2.1"), "case-sensitive, as the list is written");
        assert!(!is_match("Mozilla/5.0 (Linux; Android 4.1; HTC Butterfly)"));
        let (googlebot, wget) = (list.index_of("Googlebot\\/").unwrap(), list.index_of("[wW]get").unwrap());
        assert_eq!(list.matches("Googlebot/2.1 via Wget/1.0"), [googlebot, wget]);
        assert_eq!(list.matches("Mozilla/5.0"), [] as [u16; 0]);
        assert_eq!(list.index_of("Butterfly"), None, "excluded patterns have no index");
    }

    #[test]
    fn tells_literals_from_regexes() {
        assert_eq!(as_literal("Googlebot\\/"), Some("Googlebot/".to_owned()));
        assert_eq!(as_literal("AP3A\\.240617\\.008"), Some("AP3A.240617.008".to_owned()));
        assert_eq!(as_literal("[wW]get"), None);
        assert_eq!(as_literal("bot\\d"), None);
        assert_eq!(as_literal("a.b"), None);
    }
}
