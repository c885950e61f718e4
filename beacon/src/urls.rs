//! URL hygiene (docs/privacy-model.md section 4). Pure: no I/O, and every input gives a value.
//!
//! - A **page** keeps its lower-case host, its normalised path, the `utm_*` values and the
//!   site's allow-listed query parameters. The fragment and every other parameter are dropped.
//!   A kept value that looks like an identifier becomes `:id`; e-mail addresses and phone
//!   numbers inside other values are scrubbed (`scrub::text`).
//! - A **referrer** keeps its host and normalised path. A same-site referrer (its host is the
//!   page's host or matches one of the site's allowed hosts) also gets the site's route
//!   templates; an external one gets the identifier rules only.
//! - A **URL inside free text** (an error's script source, stack frames; see `scrub`) keeps its
//!   scheme, host, normalised path and a trailing `:line:col`. User info, query and fragment go.
//!
//! # Normalising a path
//!
//! Split on `/` and drop empty and `.` segments, so `//` and the trailing slash vanish. Cut each
//! segment at `;`: path parameters such as `;jsessionid=...` are a query in disguise.
//! Percent-decode it (invalid UTF-8 becomes U+FFFD), so Cyrillic paths such as
//! `/личный-кабинет/оплата` stay readable. If the decoded segments match one of the site's route
//! templates, the template is the path. Otherwise every segment that looks like an identifier
//! becomes `:id`. A decoded `/` is written back as `%2F` so that segments stay unambiguous, and
//! the result is cut at 1024 bytes.
//!
//! # Route templates
//!
//! `[[sites]] routes = ["/accounts/:id/bills"]` ([`Routes`]). A `:name` segment matches exactly
//! one segment; any other segment matches itself, decoded and case-sensitive. A path matches
//! a template with the same number of segments. When several match, the one with the most
//! literal segments wins, then the first listed. The stored path is the template text with
//! its trailing slash dropped, so `/accounts/12345678/bills/` and `/accounts/ЛС-7/bills` both
//! become `/accounts/:id/bills`. Templates name what the heuristics below cannot know, such as
//! a 4-digit document number.
//!
//! # Identifier rules
//!
//! A segment is replaced as a whole ([`looks_like_identifier`]) when:
//!
//! 1. it contains `@`: an e-mail address (`%40` is decoded first) or a user handle;
//! 2. it has a run of 5 or more digits: account numbers (лицевой счёт, usually 10 to 12
//!    digits), meter serials (`СЕ301-12345678`, `00012345678`), invoice and contract numbers
//!    (`INV-2026-000123`, `Д-2024%2F00123`), phone numbers without separators (`89123456789`);
//! 3. it has only digits, spaces and `+ - ( ) .`, with 7 or more digits, and is not a date:
//!    phone numbers (`+7 (912) 345-67-89`, `8-912-345-67-89`), contract numbers (`12-345-678`),
//!    IP addresses;
//! 4. it contains a UUID, in either case;
//! 5. it contains a token: a run of 16 or more hex digits with digits and letters, or a run of
//!    ASCII letters and digits (`-`, `_`, `+` and `=` continue it) that switches as often
//!    between lower case, upper case and digits as random strings do: at least every second
//!    character over 10 or more alphanumerics, or every fourth over 16 or more. That catches
//!    session ids (`(S(lit3py55t21z5v55vlm25s55))`), base64 and JWT parts, reset and
//!    confirmation tokens. A switch from upper to lower case does not count, so camel-case
//!    words (`GetInvoicePdf2024`) and slugs (`windows10-update-version22h2`) stay.
//!
//! Kept on purpose: dates (`2026-11-24`, `24.11.2026`: not personal), years and short numbers
//! (`/news/2026/11`, `/news/page/2`), slugs with a few digits, words in any script, scripts and
//! stylesheets with their build hashes (`main.3f2a1b9c.js`, `_app-2c79e2a64abdb08b.js`: rule 5
//! does not apply to `.js`, `.mjs`, `.css` and `.map` names). Document numbers with fewer than 5 digits in a
//! row (`INV-2026-0456`) are not recognised: a route template covers them. Other segments are
//! scrubbed as free text (`scrub::text`), so `СЧ-2026-0456` (a number after a keyword)
//! becomes `СЧ-[id]` and a name `[name]`. A contract number
//! written with a raw `/` (`/contracts/Д-2024/00123`) is two segments, of which only the
//! second is an identifier.

use std::borrow::Cow;

use serde::Deserialize;
use url::Url;

use crate::scrub::{self, TokenScan, contains_uuid, is_code_file};

/// A page address reduced to what may be stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub host: String,
    pub path: String,
    /// Allow-listed parameters other than utm_*, as `k=v&k=v` sorted by key.
    pub query: String,
    pub utm: Utm,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Utm {
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub term: String,
    pub content: String,
}

/// A referrer reduced to its host and normalised path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Referrer {
    pub host: String,
    pub path: String,
}

/// What URL hygiene needs to know about the beacon's site.
#[derive(Debug, Clone, Copy)]
pub struct SiteRules<'a> {
    /// Query keys kept besides the utm_* ones.
    pub query_allowlist: &'a [String],
    /// The site's hosts (`example.ru`, `*.example.ru`); referrers from them are same-site.
    pub allowed_hosts: &'a [String],
    pub routes: &'a Routes,
}

const MAX_PATH_BYTES: usize = 1_024;
const MAX_HOST_BYTES: usize = 253;
const MAX_QUERY_VALUE_CHARS: usize = 200;
const ID: &str = ":id";

/// Reduces a page address.
pub fn page(url: &Url, site: &SiteRules<'_>) -> Page {
    let mut page = Page { host: host_of(url), path: path(url.path(), Some(site.routes)), ..Page::default() };
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, value) in url.query_pairs() {
        let value = clean_query_value(&value);
        match key.as_ref() {
            "utm_source" => page.utm.source = value,
            "utm_medium" => page.utm.medium = value,
            "utm_campaign" => page.utm.campaign = value,
            "utm_term" => page.utm.term = value,
            "utm_content" => page.utm.content = value,
            k if site.query_allowlist.iter().any(|a| a == k) => kept.push((key.into_owned(), value)),
            _ => {}
        }
    }
    kept.sort();
    kept.dedup_by(|a, b| a.0 == b.0);
    page.query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish();
    page
}

/// Reduces a referrer to host and normalised path, never its query or fragment. The site's
/// route templates apply when the referrer is same-site: its host is `page_host` or one of
/// the site's allowed hosts.
pub fn referrer(url: &Url, site: &SiteRules<'_>, page_host: &str) -> Referrer {
    let host = host_of(url);
    let same_site = host == page_host || host_matches(site.allowed_hosts, &host);
    // Someone's machine or home router, as free text would have it (docs/privacy-model.md
    // section 4).
    let host = if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) && !same_site {
        scrub::Kind::Ip.placeholder().to_owned()
    } else {
        host
    };
    Referrer { path: path(url.path(), same_site.then_some(site.routes)), host }
}

/// Reduces a URL found in free text: `scheme://host/normalised/path` plus a trailing
/// `:line` or `:line:col` when there is one, as in stack frames. User info, query and
/// fragment are dropped. Its path segments are not scrubbed here: [`scrub_with_urls`] scrubs
/// the whole text after.
fn reduce_embedded(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_owned() };
    let (rest, position) = split_position(rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let after = &rest[authority_end..];
    let raw_path = &after[..after.find(['?', '#']).unwrap_or(after.len())];

    let mut out = String::with_capacity(text.len().min(MAX_PATH_BYTES));
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(&cut_bytes(host, MAX_HOST_BYTES).to_ascii_lowercase());
    if !raw_path.is_empty() {
        out.push_str(&normalise(raw_path, false));
    }
    out.push_str(position);
    out
}

/// Splits a trailing `:line` or `:line:col` off a URL without its scheme; only after a path,
/// so that a port stays with the host.
fn split_position(s: &str) -> (&str, &str) {
    let mut cut = s.len();
    for _ in 0..2 {
        let head = &s[..cut];
        match head.rfind(':') {
            Some(i) if i + 1 < cut && head[i + 1..].bytes().all(|b| b.is_ascii_digit()) && head[..i].contains('/') => {
                cut = i;
            }
            _ => break,
        }
    }
    s.split_at(cut)
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase()
}

/// `scrub::text` of `s` with every `scheme://...` URL in it reduced by [`reduce_embedded`]
/// first (no query, no fragment, identifiers in the path become `:id`, `:line:col` kept). For
/// an error's message, source and stack. One scrub of the whole, so that nothing is cut apart
/// (`ivan@mail.ru://`: the scheme took the address's domain).
pub fn scrub_with_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(found) = rest.find("://") {
        // The scheme starts after the last character that cannot be in one. That character
        // may be wider than a byte (`«https://...»`, `Ошибкаhttps://...`): step over all of it.
        let scheme_start = rest[..found]
            .char_indices()
            .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &rest[scheme_start..found];
        if !scheme.starts_with(|c: char| c.is_ascii_alphabetic()) {
            // Not a URL: keep the text up to and including `://` and look further.
            out.push_str(&rest[..found + 3]);
            rest = &rest[found + 3..];
            continue;
        }
        let after = &rest[found + 3..];
        let len = after.find(|c: char| c.is_whitespace() || "\"'<>()[]{}`\\|^".contains(c)).unwrap_or(after.len());
        // A sentence may end right after a URL.
        let len = after[..len].trim_end_matches(['.', ',', ';', '!']).len();
        let end = found + 3 + len;
        out.push_str(&rest[..scheme_start]);
        out.push_str(&reduce_embedded(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    match scrub::text(&out) {
        Cow::Owned(o) => o,
        Cow::Borrowed(_) => out,
    }
}

/// Whether a lower-case host is one of `allowed`: `example.ru` exactly, or `*.example.ru` for
/// any subdomain. The one host check of the collector (pages, referrers, Origin).
pub fn host_matches(allowed: &[String], host: &str) -> bool {
    allowed.iter().any(|allowed| match allowed.strip_prefix("*.") {
        Some(parent) => {
            host.len() > parent.len() + 1 && host.ends_with(parent) && host[..host.len() - parent.len()].ends_with('.')
        }
        None => host == allowed,
    })
}

fn clean_query_value(value: &str) -> String {
    if looks_like_identifier(value) {
        return ID.to_owned();
    }
    crate::text::cut_scrubbed(scrub::text(value).into_owned(), MAX_QUERY_VALUE_CHARS)
}

/// The stored path: the matching route template if there is one, else the normalised path.
fn path(raw: &str, routes: Option<&Routes>) -> String {
    match routes.and_then(|r| r.find(raw)) {
        Some(template) => template.to_owned(),
        None => normalise_path(raw),
    }
}

/// A path's segments as compared and stored: cut at `;`, percent-decoded, without empty and
/// `.` ones (URLs in free text are not resolved the way page URLs are).
fn segments(path: &str) -> impl Iterator<Item = Cow<'_, str>> {
    path.split('/')
        .map(|s| s.split_once(';').map_or(s, |(head, _)| head))
        .filter(|s| !s.is_empty() && *s != ".")
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
}

/// Decodes each segment, replaces identifier-like ones by `:id` (see the module docs) and
/// scrubs the others as free text.
pub fn normalise_path(path: &str) -> String {
    normalise(path, true)
}

/// [`normalise_path`], leaving the scrub to the caller when `scrub_segments` is false.
fn normalise(path: &str, scrub_segments: bool) -> String {
    let mut out = String::with_capacity(path.len().min(MAX_PATH_BYTES) + 1);
    for segment in segments(path) {
        out.push('/');
        if looks_like_identifier(&segment) {
            out.push_str(ID);
        } else if scrub_segments {
            push_segment(&mut out, &scrub::text(&segment));
        } else {
            push_segment(&mut out, &segment);
        }
        if out.len() > MAX_PATH_BYTES {
            out.truncate(cut_bytes(&out, MAX_PATH_BYTES).len());
            break;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Appends a decoded segment, writing a `/` inside it as `%2F`.
fn push_segment(out: &mut String, segment: &str) {
    if segment.contains('/') {
        out.push_str(&segment.replace('/', "%2F"));
    } else {
        out.push_str(segment);
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn cut_bytes(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

/// True for a segment that probably identifies a person or their documents; the rules are
/// listed in the module docs. One pass over the bytes, since every segment of every page and
/// referrer goes through it.
pub fn looks_like_identifier(segment: &str) -> bool {
    let (mut digits, mut digit_run, mut number_like) = (0, 0, true);
    let mut tokens = TokenScan::default();
    let code_file = is_code_file(segment);
    for &b in segment.as_bytes() {
        match b {
            b'@' => return true,
            b'0'..=b'9' => {
                digits += 1;
                digit_run += 1;
                if digit_run >= 5 {
                    return true;
                }
            }
            _ => {
                digit_run = 0;
                number_like &= b"+-() .".contains(&b);
            }
        }
        if tokens.push(b) && !code_file {
            return true;
        }
    }
    // A final separator ends the last run.
    (tokens.push(b' ') && !code_file) || (number_like && digits >= 7 && !is_date(segment)) || contains_uuid(segment)
}

/// `2026-11-24`, `2026.11.24`, `24.11.2026` or `24-11-2026`, with a plausible month and day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (year, month, day) = match b.len() {
        10 if matches!(b[4], b'-' | b'.') && b[7] == b[4] => (num(0..4), num(5..7), num(8..10)),
        10 if matches!(b[2], b'-' | b'.') && b[5] == b[2] => (num(6..10), num(3..5), num(0..2)),
        _ => return false,
    };
    year.is_some() && month.is_some_and(|m| (1..=12).contains(&m)) && day.is_some_and(|d| (1..=31).contains(&d))
}

/// A site's route templates (`[[sites]] routes`), compiled once when the config is read.
/// Bad templates are left out and described by [`Routes::problems`], which config validation
/// reports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct Routes {
    /// Most literal segments first, then in list order, so the first match wins.
    templates: Vec<Template>,
    /// Segments of the longest template: longer paths are not split further.
    max_segments: usize,
    listed: usize,
    problems: Vec<String>,
}

#[derive(Debug, Clone)]
struct Template {
    /// The stored path.
    text: String,
    /// One per segment: `None` for a `:name` parameter, else the decoded literal.
    parts: Vec<Option<String>>,
    literals: usize,
}

impl From<Vec<String>> for Routes {
    fn from(raw: Vec<String>) -> Self {
        let mut routes = Routes { listed: raw.len(), ..Routes::default() };
        for text in &raw {
            match parse_template(text) {
                Ok(t) if routes.templates.iter().any(|other| other.text == t.text) => {
                    routes.problems.push(format!("{text:?} is listed twice"));
                }
                Ok(t) => routes.templates.push(t),
                Err(problem) => routes.problems.push(problem),
            }
        }
        routes.templates.sort_by_key(|t| std::cmp::Reverse(t.literals));
        routes.max_segments = routes.templates.iter().map(|t| t.parts.len()).max().unwrap_or(0);
        routes
    }
}

/// The good templates, as the config lists them.
impl serde::Serialize for Routes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.templates.iter().map(|t| &t.text))
    }
}

impl Routes {
    /// How many templates the config lists, good or bad.
    pub fn listed(&self) -> usize {
        self.listed
    }

    /// One message per bad template, naming it.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The template matching `path` (raw, as in a URL), if any.
    fn find(&self, path: &str) -> Option<&str> {
        if self.templates.is_empty() {
            return None;
        }
        let mut decoded: Vec<Cow<'_, str>> = Vec::new();
        for segment in segments(path) {
            if decoded.len() == self.max_segments {
                return None;
            }
            decoded.push(segment);
        }
        self.templates
            .iter()
            .find(|t| {
                t.parts.len() == decoded.len()
                    && t.parts.iter().zip(&decoded).all(|(part, segment)| part.as_deref().is_none_or(|l| l == segment))
            })
            .map(|t| t.text.as_str())
    }
}

fn parse_template(raw: &str) -> Result<Template, String> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(format!("{:?}... is longer than {MAX_PATH_BYTES} bytes", cut_bytes(raw, 40)));
    }
    let Some(rest) = raw.strip_prefix('/') else { return Err(format!("{raw:?} must start with '/'")) };
    if raw.contains(['?', '#', ';']) {
        return Err(format!("{raw:?} must be a path only, without '?', '#' or ';'"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(format!("{raw:?} has no segments"));
    }
    let mut template = Template { text: String::with_capacity(raw.len()), parts: Vec::new(), literals: 0 };
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(format!("{raw:?} has an empty segment"));
        }
        template.text.push('/');
        if let Some(name) = segment.strip_prefix(':') {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("{raw:?}: a parameter is ':' and a name of letters, digits or '_', as in ':id'"));
            }
            template.text.push_str(segment);
            template.parts.push(None);
        } else {
            let literal = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            // The template is stored as it is: a literal identifier would be stored too.
            if looks_like_identifier(&literal) {
                return Err(format!("{raw:?}: {literal:?} looks like an identifier; write a parameter such as ':id'"));
            }
            push_segment(&mut template.text, &literal);
            template.parts.push(Some(literal.into_owned()));
            template.literals += 1;
        }
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    const ROUTES: [&str; 4] =
        ["/accounts/:id/bills", "/meters/:id/readings/:id", "/invoices/:id", "/accounts/new/bills"];
    const HOSTS: [&str; 2] = ["lk.example.ru", "*.energo.ru"];

    fn with_site<T>(f: impl FnOnce(&SiteRules<'_>) -> T) -> T {
        let (allowlist, hosts, routes) =
            (strings(&["tab", "page", "period"]), strings(&HOSTS), Routes::from(strings(&ROUTES)));
        f(&SiteRules { query_allowlist: &allowlist, allowed_hosts: &hosts, routes: &routes })
    }

    /// The kept query as one decoded string: utm_* values first, then the allow-listed
    /// parameters.
    fn kept_query(p: &Page) -> String {
        let utm = [
            ("utm_source", &p.utm.source),
            ("utm_medium", &p.utm.medium),
            ("utm_campaign", &p.utm.campaign),
            ("utm_term", &p.utm.term),
            ("utm_content", &p.utm.content),
        ];
        let pairs: Vec<String> = utm
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .chain(url::form_urlencoded::parse(p.query.as_bytes()).map(|(k, v)| format!("{k}={v}")))
            .collect();
        pairs.join("&")
    }

    fn check(input: &str, expected_path: &str, expected_query: &str) {
        let p = with_site(|site| page(&url(input), site));
        assert_eq!((p.path.as_str(), kept_query(&p).as_str()), (expected_path, expected_query), "{input}");
    }

    #[test]
    fn reduces_customer_portal_urls() {
        // Route templates win over the heuristics, on decoded segments, trailing slash ignored.
        check("https://lk.example.ru/accounts/1234567890/bills", "/accounts/:id/bills", "");
        check("https://lk.example.ru/accounts/%D0%9B%D0%A1-77/bills/", "/accounts/:id/bills", "");
        check("https://lk.example.ru/accounts/new/bills", "/accounts/new/bills", "");
        check("https://lk.example.ru/meters/%D0%A1%D0%95301-12345678/readings/2026-11", "/meters/:id/readings/:id", "");
        check("https://lk.example.ru/invoices/%D0%A1%D0%A7-2026-0456", "/invoices/:id", "");
        check("https://lk.example.ru/Invoices/%D0%A1%D0%A7-2026-0456", "/Invoices/СЧ-[id]", "");
        check("https://lk.example.ru/Invoices/INV-2026-0456", "/Invoices/INV-2026-0456", "");
        check("https://lk.example.ru/u/%D0%98%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2%20%D0%98.%D0%98.", "/u/[name]", "");
        check("https://lk.example.ru/invoices/1/2", "/invoices/1/2", "");
        // Account numbers (лицевой счёт).
        check(
            "https://lk.example.ru/account/123456789012/history?period=2026-10",
            "/account/:id/history",
            "period=2026-10",
        );
        check("https://lk.example.ru/ls/%D0%9B%D0%A1-4402117735", "/ls/:id", "");
        check(
            "https://lk.example.ru/personal/accounts/4402117735/?tab=payments#pay",
            "/personal/accounts/:id",
            "tab=payments",
        );
        // Contract numbers.
        check("https://lk.example.ru/contracts/%D0%94-2024%2F00123", "/contracts/:id", "");
        check("https://lk.example.ru/contracts/%D0%94-2024/00123", "/contracts/Д-2024/:id", "");
        check("https://lk.example.ru/contracts/12-345-678/edit", "/contracts/:id/edit", "");
        // Meter serials.
        check("https://lk.example.ru/meters/00012345678", "/meters/:id", "");
        check("https://lk.example.ru/meters/%D0%A1%D0%95301-12345678/", "/meters/:id", "");
        // Invoice numbers.
        check("https://lk.example.ru/invoice/INV-2026-000123.pdf", "/invoice/:id", "");
        check("https://lk.example.ru/bills/2026/11/download", "/bills/2026/11/download", "");
        // E-mail addresses, also percent-encoded, in the path and in values.
        check("https://lk.example.ru/user/ivan.petrov@mail.ru/settings", "/user/:id/settings", "");
        check("https://lk.example.ru/unsubscribe/ivan.petrov%40mail.ru", "/unsubscribe/:id", "");
        check("https://lk.example.ru/profile?email=ivan%40mail.ru&tab=contacts", "/profile", "tab=contacts");
        check("https://lk.example.ru/profile?tab=ivan%40mail.ru", "/profile", "tab=:id");
        // Phone numbers.
        check("https://lk.example.ru/callback/+7%20(912)%20345-67-89", "/callback/:id", "");
        check("https://lk.example.ru/callback/8-912-345-67-89", "/callback/:id", "");
        check("https://lk.example.ru/callback/89123456789?tab=sms", "/callback/:id", "tab=sms");
        check("https://lk.example.ru/search?tab=%2B7%20912%20345%2067%2089", "/search", "tab=:id");
        // UUIDs, hex, base64 and JWT tokens, session ids.
        check("https://lk.example.ru/orders/3F2504E0-4F89-11D3-9A0C-0305E82C3301/receipt", "/orders/:id/receipt", "");
        check("https://lk.example.ru/reset/9f86d081884c7d659a2feaa0c55ad015", "/reset/:id", "");
        check(
            "https://lk.example.ru/confirm/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0NDAyIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            "/confirm/:id",
            "",
        );
        check("https://lk.example.ru/activate/dGhpcy1pcy1hLXRva2VuX3dpdGgtYmFzZTY0dXJs", "/activate/:id", "");
        check("https://lk.example.ru/(S(lit3py55t21z5v55vlm25s55))/default.aspx", "/:id/default.aspx", "");
        check("https://lk.example.ru/pay;jsessionid=1A2B3C4D5E6F7A8B9C0D1E2F3A4B5C6D?tab=card", "/pay", "tab=card");
        check("https://lk.example.ru/login/magic/aB3xK9mQ2pL7", "/login/magic/:id", "");
        // Cyrillic and percent-encoded paths stay readable.
        check(
            "https://lk.example.ru/%D0%BB%D0%B8%D1%87%D0%BD%D1%8B%D0%B9-%D0%BA%D0%B0%D0%B1%D0%B8%D0%BD%D0%B5%D1%82/%D0%BE%D0%BF%D0%BB%D0%B0%D1%82%D0%B0",
            "/личный-кабинет/оплата",
            "",
        );
        check("https://lk.example.ru/личный-кабинет/показания/", "/личный-кабинет/показания", "");
        check(
            "https://lk.example.ru/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8/%D1%82%D0%B0%D1%80%D0%B8%D1%84%D1%8B-2026",
            "/новости/тарифы-2026",
            "",
        );
        check("https://lk.example.ru/bad/%D0%ZZ/%FF", "/bad/\u{fffd}%ZZ/\u{fffd}", "");
        // Dates, years, page numbers and slugs are kept.
        check("https://lk.example.ru/readings/2026-11-24", "/readings/2026-11-24", "");
        check("https://lk.example.ru/archive/24.11.2026", "/archive/24.11.2026", "");
        check("https://lk.example.ru/archive/2026-13-45", "/archive/:id", "");
        check("https://lk.example.ru/news/page/2", "/news/page/2", "");
        check(
            "https://lk.example.ru/help/how-to-pay-your-electricity-bill",
            "/help/how-to-pay-your-electricity-bill",
            "",
        );
        check("https://lk.example.ru/help/windows10-update-version22h2", "/help/windows10-update-version22h2", "");
        check("https://lk.example.ru/docs/GetInvoicePdf2024.aspx", "/docs/GetInvoicePdf2024.aspx", "");
        check("https://lk.example.ru/static/main.3f2a1b9c.js", "/static/main.3f2a1b9c.js", "");
        // Query allow-lists, utm_* values and fragments.
        check(
            "https://LK.Example.ru/pay?utm_source=ya&utm_medium=cpc&account=123456&tab=bills#token=abc",
            "/pay",
            "utm_source=ya&utm_medium=cpc&tab=bills",
        );
        check(
            "https://lk.example.ru/?utm_campaign=12345678&utm_term=%D0%BE%D0%BF%D0%BB%D0%B0%D1%82%D0%B0",
            "/",
            "utm_campaign=:id&utm_term=оплата",
        );
        check(
            "https://lk.example.ru/?utm_content=call%20me%20%2B7%20912%20345-67-89%20now",
            "/",
            "utm_content=call me [phone] now",
        );
        check("https://lk.example.ru/news?page=3&page=4&sid=abc", "/news", "page=3");
        check("https://lk.example.ru//double//slash/", "/double/slash", "");
        check("https://lk.example.ru", "/", "");
    }

    #[test]
    fn referrers_keep_host_and_path_and_same_site_ones_get_templates() {
        let r = |s: &str, page_host: &str| with_site(|site| referrer(&url(s), site, page_host));
        assert_eq!(
            r("https://www.google.com/search?q=my+account+123456#x", "lk.example.ru"),
            Referrer { host: "www.google.com".into(), path: "/search".into() }
        );
        // An external path never gets this site's templates, only the heuristics.
        assert_eq!(r("https://other.ru/invoices/0456", "lk.example.ru").path, "/invoices/0456");
        assert_eq!(r("https://lk.example.ru/invoices/0456?x=1", "lk.example.ru").path, "/invoices/:id");
        assert_eq!(r("https://pay.energo.ru/invoices/0456", "lk.example.ru").path, "/invoices/:id");
        assert_eq!(r("https://energo.ru/invoices/0456", "lk.example.ru").path, "/invoices/0456");
        assert_eq!(r("https://127.0.0.1:8080/invoices/0456", "127.0.0.1").path, "/invoices/:id");
        assert_eq!(r("https://mail.yandex.ru/u/ivan@yandex.ru/inbox", "lk.example.ru").path, "/u/:id/inbox");
        assert_eq!(r("android-app://com.google.android.gm/", "lk.example.ru").host, "com.google.android.gm");
    }

    #[test]
    fn reduces_urls_found_in_text() {
        let check = |input: &str, expected: &str| assert_eq!(reduce_embedded(input), expected, "{input}");
        check("https://lk.example.ru/static/app.js?v=1700000000000:10:5", "https://lk.example.ru/static/app.js:10:5");
        check(
            "https://LK.example.ru:8443/accounts/4402117735/bills#top:12",
            "https://lk.example.ru:8443/accounts/:id/bills:12",
        );
        check("https://ivan:secret@lk.example.ru/app.js", "https://lk.example.ru/app.js");
        check("https://lk.example.ru", "https://lk.example.ru");
        check("https://lk.example.ru:8443", "https://lk.example.ru:8443");
        check("webpack://app/./src/pay.ts:3:1", "webpack://app/src/pay.ts:3:1");
        check("inline", "inline");
        check("", "");
    }

    #[test]
    fn reports_bad_templates_and_keeps_good_ones() {
        let routes = Routes::from(strings(&[
            "/ok/:id",
            "no-slash",
            "/",
            "/a//b",
            "/a/:/b",
            "/a?b=1",
            "/accounts/1234567890",
            "/ok/:id/",
            "/trailing/slash/",
        ]));
        assert_eq!(routes.listed(), 9);
        assert_eq!(routes.templates.len(), 2, "{routes:?}");
        assert_eq!(routes.problems().len(), 7, "{:?}", routes.problems());
        assert!(routes.problems().iter().any(|p| p.contains("\"/ok/:id/\" is listed twice")));
        assert_eq!(routes.find("/trailing/slash"), Some("/trailing/slash"));
    }

    #[test]
    fn never_panics_on_adversarial_input() {
        let long_segment = "9".repeat(100_000);
        let many_segments = "/a".repeat(10_000);
        let odd = "/\u{202e}\u{200b}\u{feff}/%F0%9F%98%80/%E2%80/%%%/\u{10ffff}/e\u{301}\u{301}\u{301}";
        for input in [long_segment.as_str(), many_segments.as_str(), odd, "%", "/%2", ";;;", "/;/;x", "::::"] {
            let normalised = normalise_path(input);
            assert!(normalised.len() <= MAX_PATH_BYTES + 1, "{}", normalised.len());
            let routes = Routes::from(strings(&ROUTES));
            let _ = routes.find(input);
            let _ = reduce_embedded(&format!("https://{input}"));
            let _ = reduce_embedded(&format!("x://{input}:1:2"));
            let _ = Routes::from(vec![input.to_owned()]);
        }
        assert_eq!(normalise_path(&many_segments).len(), MAX_PATH_BYTES);
        assert_eq!(normalise_path("/%2F%2F"), "/%2F%2F");
    }

    #[test]
    fn reduces_urls_inside_errors() {
        let check = |input: &str, expected: &str| assert_eq!(scrub_with_urls(input), expected, "{input:?}");
        check("Script error.", "Script error.");
        check("https://cdn.example.ru/static/app.js?v=3#x", "https://cdn.example.ru/static/app.js");
        check(
            "at f (https://lk.example.ru/_next/static/chunks/pages/_app-2c79e2a64abdb08b.js:1:4821)",
            "at f (https://lk.example.ru/_next/static/chunks/pages/_app-2c79e2a64abdb08b.js:1:4821)",
        );
        check(
            "TypeError: x is undefined\n    at pay (https://lk.example.ru/static/app.js?v=1700000000:10:5)\n    at https://lk.example.ru/accounts/4402117735/bills:88:1",
            "TypeError: x is undefined\n    at pay (https://lk.example.ru/static/app.js:10:5)\n    at https://lk.example.ru/accounts/:id/bills:88:1",
        );
        check(
            "pay@https://lk.example.ru/app.js?token=abc:1:2\nsubmit@https://lk.example.ru/app.js:3:4",
            "pay@https://lk.example.ru/app.js:1:2\nsubmit@https://lk.example.ru/app.js:3:4",
        );
        check(
            "Failed to fetch https://api.example.ru/v1/users/ivan@mail.ru?phone=89123456789. Call 8 800 100-00-00",
            "Failed to fetch https://api.example.ru/v1/users/:id. Call [phone]",
        );
        check(
            "blob:https://lk.example.ru/3f2504e0-4f89-11d3-9a0c-0305e82c3301:1:1",
            "blob:https://lk.example.ru/:id:1:1",
        );
        check("odd ://x and 1://y for ivan@mail.ru", "odd ://x and 1://y for [email]");
        check("ivan@mail.ru://x ivan@mail.ru.https://a.ru/x", "[email]://x [email]://a.ru/x");
    }

    #[test]
    fn scrubbing_with_urls_never_panics_on_adversarial_input() {
        for input in [
            "://".repeat(5_000),
            format!("https://{}", "/%FF".repeat(4_000)),
            "«https://a.ru/» Ошибкаhttps://a.ru/ \u{e000}://".to_owned(),
        ] {
            let _ = scrub_with_urls(&input);
        }
    }
}
