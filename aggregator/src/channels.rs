//! Acquisition channels: the rules of `channels.toml` (its header is the rule table, and
//! docs/dashboards.md explains it) rendered into one ClickHouse expression over a visit's
//! first beacon (`host`, `ref_host`, `utm_source`, `utm_medium`). The host lists are data; the
//! rule order lives here.

use serde::Deserialize;

/// The channel names, in the order their rules are tried.
pub const CHANNELS: [&str; 7] = ["Paid search", "Email", "Social", "Organic search", "Internal", "Referral", "Direct"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    paid_mediums: String,
    email: Email,
    social: Social,
    search: Search,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Email {
    words: Vec<String>,
    hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Social {
    mediums: Vec<String>,
    sources: Vec<String>,
    hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    mediums: Vec<String>,
    sources: Vec<String>,
    hosts: Vec<String>,
    families: Vec<String>,
}

impl Channels {
    /// The lists shipped in `aggregator/channels.toml`; a unit test proves they parse.
    pub fn builtin() -> Self {
        toml::from_str(include_str!("../channels.toml")).expect("channels.toml parses (tested)")
    }

    /// A `String` expression: the channel of a visit.
    pub fn sql(&self) -> String {
        // Referrer hosts are stored lower-case; `www.` and `m.` in front are not a different site.
        let bare = r"replaceRegexpOne(ref_host, '^(www|m)\\.', '')";
        let source = "lower(utm_source)";
        let medium = "lower(utm_medium)";
        let registrable = |host: &str| format!("cutToFirstSignificantSubdomain(concat('http://', {host}))");
        let under = |hosts: &[String]| {
            format!("arrayExists(h -> {bare} = h OR endsWith({bare}, concat('.', h)), {})", list(hosts))
        };
        let contains_any =
            |column: &str, words: &[String]| format!("arrayExists(w -> position({column}, w) > 0, {})", list(words));
        let social_source = format!("has({}, {source})", list(&self.social.sources));
        let rules = [
            format!("match({medium}, {}) AND NOT {social_source}", quote(&self.paid_mediums)),
            format!(
                "{} OR {} OR {}",
                contains_any(source, &self.email.words),
                contains_any(medium, &self.email.words),
                under(&self.email.hosts)
            ),
            format!(
                "has({}, {medium}) OR {social_source} OR {}",
                list(&self.social.mediums),
                under(&self.social.hosts)
            ),
            format!(
                "has({}, {medium}) OR has({}, {source}) OR has({}, {bare}) \
                 OR (has({}, firstSignificantSubdomain(concat('http://', {bare}))) AND {bare} = {})",
                list(&self.search.mediums),
                list(&self.search.sources),
                list(&self.search.hosts),
                list(&self.search.families),
                registrable(bare),
            ),
            format!(
                "ref_host != '' AND utm_source = '' AND (ref_host = host OR {} = {})",
                registrable("ref_host"),
                registrable("host")
            ),
            "ref_host != '' OR utm_source != '' OR utm_medium != ''".to_owned(),
        ];
        let arms: String =
            rules.iter().zip(CHANNELS).map(|(rule, name)| format!("{rule}, {}, ", quote(name))).collect();
        format!("multiIf({arms}{})", quote(CHANNELS[CHANNELS.len() - 1]))
    }
}

/// A ClickHouse string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A ClickHouse array of string literals.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_lists_are_lower_case_and_name_the_russian_sources() {
        let c = Channels::builtin();
        let hosts: Vec<&String> = c.email.hosts.iter().chain(&c.social.hosts).chain(&c.search.hosts).collect();
        for host in &hosts {
            assert!(
                host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
                "{host}"
            );
        }
        for wanted in ["ya.ru", "go.mail.ru", "bing.com", "duckduckgo.com"] {
            assert!(c.search.hosts.iter().any(|h| h == wanted), "{wanted}");
        }
        for wanted in ["vk.com", "ok.ru", "t.me", "dzen.ru", "youtube.com", "whatsapp.com"] {
            assert!(c.social.hosts.iter().any(|h| h == wanted), "{wanted}");
        }
        assert_eq!(c.search.families, ["google", "yandex"]);
    }

    #[test]
    fn renders_one_arm_per_channel_and_quotes_literals() {
        let sql = Channels::builtin().sql();
        for name in CHANNELS {
            assert_eq!(sql.matches(&format!("'{name}'")).count(), 1, "{name}: {sql}");
        }
        assert_eq!(quote("it's"), r"'it\'s'");
    }
}
