//! Property tests over the `beacon` crate (docs/http-api.md and docs/privacy-model.md, sections
//! 1 and 4):
//!
//! 1. The beacon parsers (`from_json` for POST bodies, `from_query` for the GIF
//!    beacon's query string) return `Ok` or `Err` for any input: arbitrary bytes, JSON-ish text
//!    mixing beacon fields with junk, deep nesting, huge numbers, invalid UTF-8, arbitrary
//!    query strings. Never a panic.
//! 2. URL hygiene: the request's raw IP address and any e-mail address embedded in a beacon
//!    (page and referrer path segments, query values, fragments, user info, the referrer's
//!    host, event names, props, error reports, `lang`) never reach a stored row. Every `String`
//!    of the rows `Pipeline::process` produces is checked, as stored and percent-decoded.
//! 3. The pipeline never panics on a beacon the parser accepts, whatever the request facts.
//!
//! Cases: proptest's default of 256 per property. Failures are not persisted to
//! `proptest-regressions/`: a failing case is printed, shrunk, with its seed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod common;

use beacon::{Outcome, RequestFacts, from_json as parse_beacon, from_query as parse_beacon_query};
use common::{percent_decoded, process, stored_strings};
use proptest::{prelude::*, sample::Index};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// Matchers.
// ---------------------------------------------------------------------------------------------

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    !n.is_empty() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

/// The first e-mail address in `s`, if any: `local@domain.tld` (or `local%40domain.tld`),
/// where `local` has a letter or digit and is made of letters, digits and `._%+-`, and the
/// domain is two or more non-empty labels of letters, digits and `-`, the last of which is two
/// or more letters. Looser than the collector's own rule on purpose: the domain may be
/// followed by more labels (`a@b.ru.5`), and file extensions get no exception (the generators
/// below never put `@` next to one).
fn find_email(s: &str) -> Option<&str> {
    let at_signs = s.match_indices('@').map(|(i, _)| (i, 1)).chain(s.match_indices("%40").map(|(i, _)| (i, 3)));
    for (at, at_len) in at_signs {
        let local_start =
            s[..at].char_indices().rev().take_while(|&(_, c)| is_local_char(c)).last().map_or(at, |(i, _)| i);
        if !s[local_start..at].chars().any(char::is_alphanumeric) {
            continue;
        }
        let after = &s[at + at_len..];
        let domain_len = after.find(|c: char| !is_domain_char(c)).unwrap_or(after.len());
        let labels: Vec<&str> = after[..domain_len].split('.').collect();
        // Labels 0..k, k >= 2, all non-empty, the k-th two or more letters.
        for k in 2..=labels.len() {
            if labels[..k - 1].iter().any(|l| l.is_empty()) {
                break;
            }
            let tld = labels[k - 1];
            if tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic) {
                let end = at + at_len + labels[..k].iter().map(|l| l.len() + 1).sum::<usize>() - 1;
                return Some(&s[local_start..end]);
            }
        }
    }
    None
}

#[test]
fn email_matcher_finds_addresses_and_nothing_else() {
    for (text, found) in [
        ("ivan.petrov@mail.ru", Some("ivan.petrov@mail.ru")),
        ("x (ivan@почта.рф) y", Some("ivan@почта.рф")),
        ("a%40b.com", Some("a%40b.com")),
        ("to: a@b.co.uk.", Some("a@b.co")),
        ("a@b.ru5", None),
        ("a@b.ru.5", Some("a@b.ru")),
        ("a@b.ru-x.com", Some("a@b.ru-x.com")),
        ("[email] at [phone]", None),
        ("a@b", None),
        ("@media", None),
        ("x@1.2.3.4", None),
        ("user@localhost", None),
        ("a@.ru", None),
    ] {
        assert_eq!(find_email(text), found, "{text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Generators shared by the properties.
// ---------------------------------------------------------------------------------------------

/// A string strategy for `pattern`, parsed once (a `&str` strategy parses its pattern for
/// every value it generates).
fn regex(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(pattern).expect("a valid pattern")
}

/// Text that stresses the scrubbers and URL hygiene: arbitrary characters mixed with the
/// pieces their rules look at.
fn soup(max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => any::<char>().prop_map(String::from),
        2 => regex("[a-zA-Z0-9а-яё]{1,6}"),
        1 => prop::sample::select(vec![
            "https://", "://", "http://a.ru/", "blob:https://a.ru/", "@", "%40", "%", "%F0%9F%98", "%FF", "%2F", ".",
            ",", ":", ":10:5", "/", "//", "?", "#", "&", "=", ";", "(", ")", "[", "]", "+", "-", " ", "\n    at ",
            "8 912 345-67-89", "+7 (912) 345-67-89", "89123456789", "2026-11-24", "ivan@mail.ru", "logo@2x.png",
            "\u{feff}", "\u{202e}", "e\u{301}", "\u{10ffff}", "\0", "[::1]", "127.0.0.1", "0x", "é",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..max).prop_map(|pieces| pieces.concat())
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Numbers as JSON writes them, many out of every range the beacon allows, some out of
/// `f64`'s.
fn json_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| if x.is_finite() { format!("{x:e}") } else { "1e400".to_owned() }),
        (0.0..1e7f64).prop_map(|x| x.to_string()),
        regex("-?[1-9][0-9]{20,200}(\\.[0-9]{1,50})?([eE][+-]?[0-9]{1,2})?"),
        prop::sample::select(vec![
            "1e400",
            "-1e400",
            "1e-400",
            "18446744073709551616",
            "-9223372036854775809",
            "4294967295.5",
            "4294967296",
            "65535",
            "65536",
            "-0",
            "-0.0",
            "0.5",
            "1e6",
            "1000000.0001",
        ])
        .prop_map(String::from),
    ]
}

/// Tokens that are not JSON, or not where they stand.
fn broken_json() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\u12\"",
        "\"\\x\"",
        "\"unterminated",
        "\"tab\there\"",
        "\"\\",
        "tru",
        "nul",
        "'single'",
        "[1,]",
        "{\"a\":}",
        "{,}",
        "]",
        "}",
        "00",
        "01",
        "1.",
        ".5",
        "+1",
        "NaN",
        "Infinity",
        "-",
        "1e",
        "0x10",
    ])
    .prop_map(String::from)
}

/// A JSON-ish value: mostly valid JSON, sometimes broken, sometimes nested deeper than any
/// parser limit.
fn json_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        4 => prop::sample::select(vec!["null", "true", "false", "\"\"", "{}", "[]"]).prop_map(String::from),
        4 => json_number(),
        4 => soup(12).prop_map(|s| json_string(&s)),
        1 => broken_json(),
    ];
    let nested = leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((soup(6), inner), 0..6).prop_map(|kv| {
                let entries: Vec<String> = kv.into_iter().map(|(k, v)| format!("{}:{v}", json_string(&k))).collect();
                format!("{{{}}}", entries.join(","))
            }),
        ]
    });
    prop_oneof![24 => nested, 1 => deep_nesting()].boxed()
}

/// `[[[...1...]]]` or `{"a":{"a":...}}`, up to 2000 levels, sometimes unbalanced.
fn deep_nesting() -> impl Strategy<Value = String> {
    (1..2_000usize, any::<bool>(), 0..3usize).prop_map(|(depth, arrays, unbalance)| {
        let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
        format!("{}1{}", open.repeat(depth), close.repeat(depth.saturating_sub(unbalance)))
    })
}

/// A URL for the `url` and `ref` fields: usually absolute, with arbitrary path, query and
/// fragment; sometimes relative, hostless, or too long.
fn any_url() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        prop::sample::select(vec!["a.ru", "lk.a.ru", "A.RU.", "b.ru", "xn--80ak6aa92e.com", "127.0.0.1", "[::1]"])
            .prop_map(String::from),
        regex("[a-z0-9.-]{1,20}"),
        any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
    ];
    prop_oneof![
        10 => (
            prop::sample::select(vec!["https://", "http://", "HTTPS://", "android-app://", "file://", "ftp://"]),
            prop::option::of(regex("[a-z0-9%@:]{0,12}@")),
            host,
            prop::option::of(any::<u16>()),
            soup(20),
            prop::option::of(soup(20)),
            prop::option::of(soup(12)),
        )
            .prop_map(|(scheme, userinfo, host, port, path, query, fragment)| {
                let mut url = format!("{scheme}{}{host}", userinfo.unwrap_or_default());
                if let Some(port) = port {
                    url.push_str(&format!(":{port}"));
                }
                url.push('/');
                url.push_str(&path);
                if let Some(q) = query {
                    url.push('?');
                    url.push_str(&q);
                }
                if let Some(f) = fragment {
                    url.push('#');
                    url.push_str(&f);
                }
                url
            }),
        1 => soup(20),
        1 => (1..6_000usize).prop_map(|n| format!("https://a.ru/{}", "x".repeat(n))),
    ]
}

/// [`any_url`], replaced by a plain page address when the parser would refuse it, so that
/// most beacons reach the pipeline.
fn valid_url() -> impl Strategy<Value = String> {
    any_url().prop_map(|u| match url::Url::parse(&u) {
        Ok(parsed) if parsed.has_host() && u.len() <= 4_096 => u,
        _ => "https://a.ru/".to_owned(),
    })
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    Truncate,
    Insert(u8),
    Delete,
}

/// Breaks a body the way a network, a buggy sender or an attacker might: cut short, stray
/// bytes (invalid UTF-8, NUL, structural characters), bytes dropped.
fn mutate(body: String, mutations: &[(Index, Mutation)]) -> Vec<u8> {
    let mut bytes = body.into_bytes();
    for (at, mutation) in mutations {
        let i = at.index(bytes.len() + 1);
        match *mutation {
            Mutation::Truncate => bytes.truncate(i),
            Mutation::Insert(b) => bytes.insert(i, b),
            Mutation::Delete if i < bytes.len() => {
                bytes.remove(i);
            }
            Mutation::Delete => {}
        }
    }
    bytes
}

fn mutation() -> impl Strategy<Value = (Index, Mutation)> {
    let byte =
        prop::sample::select(vec![0xff, 0xfe, 0xc0, 0xc3, 0x80, 0xed, 0xf4, 0x00, b'"', b'{', b'}', b'\\', b',']);
    (any::<Index>(), prop_oneof![Just(Mutation::Truncate), byte.prop_map(Mutation::Insert), Just(Mutation::Delete)])
}

/// A JSON-ish beacon body: the real fields with plausible or junk values, junk fields, in any
/// order, then possibly mutated.
fn json_ish_body() -> impl Strategy<Value = Vec<u8>> {
    let quoted = |values: Vec<&'static str>| prop::sample::select(values).prop_map(json_string);
    let timing_key = prop::sample::select(vec!["ttfb", "fcp", "dcl", "load", "lcp", "inp", "cls", "x"]);
    let timing = prop::collection::vec((timing_key, prop_oneof![3 => json_number(), 1 => json_value()]), 0..9)
        .prop_map(|kv| object(kv.into_iter().map(|(k, v)| (k.to_owned(), v))));
    let err_key = prop::sample::select(vec!["msg", "src", "line", "col", "stack", "x"]);
    let err_value = prop_oneof![3 => soup(40).prop_map(|s| json_string(&s)), 1 => json_number(), 1 => json_value()];
    let error = prop::collection::vec((err_key, err_value), 0..7)
        .prop_map(|kv| object(kv.into_iter().map(|(k, v)| (k.to_owned(), v))));
    let prop_value = prop_oneof![
        3 => soup(20).prop_map(|s| json_string(&s)),
        1 => json_number(),
        1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
        1 => json_value(),
    ];
    let props = prop::collection::vec((soup(8), prop_value), 0..36).prop_map(object);
    let text = || prop_oneof![4 => soup(30).prop_map(|s| json_string(&s)), 1 => json_value()];
    let field = prop_oneof![
        (Just("site"), prop_oneof![4 => quoted(vec!["s", "", "S"]), 1 => json_value()]),
        (
            Just("type"),
            prop_oneof![4 => quoted(vec!["pageview", "event", "timing", "error", "click", ""]), 1 => json_value()]
        ),
        (Just("url"), prop_oneof![4 => any_url().prop_map(|u| json_string(&u)), 1 => json_value()]),
        (Just("ref"), prop_oneof![4 => any_url().prop_map(|u| json_string(&u)), 1 => json_value()]),
        (Just("name"), text()),
        (Just("props"), prop_oneof![4 => props, 1 => json_value()]),
        (Just("sw"), prop_oneof![4 => json_number(), 1 => json_value()]),
        (Just("lang"), text()),
        (Just("t"), prop_oneof![4 => timing, 1 => json_value()]),
        (Just("err"), prop_oneof![4 => error, 1 => json_value()]),
        (Just("sid"), text()),
        (Just("junk"), json_value()),
    ];
    // Half the objects start with a valid `site` and `url`, so that the other fields are
    // looked at too.
    let valid_start = prop::option::of(
        valid_url().prop_map(|u| vec![("site".to_owned(), json_string("s")), ("url".to_owned(), json_string(&u))]),
    );
    let body = prop_oneof![
        12 => (valid_start, prop::collection::vec(field, 0..14)).prop_map(|(start, fields)| {
            object(start.into_iter().flatten().chain(fields.into_iter().map(|(k, v)| (k.to_owned(), v))))
        }),
        1 => json_value(),
        1 => (prop::sample::select(vec!["\u{feff}", " \n\t", "\0", "//", ""]), json_value())
            .prop_map(|(prefix, v)| format!("{prefix}{v}")),
    ];
    (body, prop::option::weighted(0.3, prop::collection::vec(mutation(), 1..3)))
        .prop_map(|(body, mutations)| mutate(body, &mutations.unwrap_or_default()))
}

fn object(entries: impl IntoIterator<Item = (String, String)>) -> String {
    let entries: Vec<String> = entries.into_iter().map(|(k, v)| format!("{}:{v}", json_string(&k))).collect();
    format!("{{{}}}", entries.join(","))
}

/// A GIF beacon's query string: the real parameters and junk, values raw or
/// percent-encoded, `props`/`t`/`err` holding JSON-ish text.
fn query_ish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => prop::sample::select(vec![
            "site", "type", "url", "ref", "name", "props", "sw", "lang", "t", "err", "sid", "", "props[]", "t%00",
        ])
        .prop_map(String::from),
        1 => soup(6),
    ];
    let value = prop_oneof![
        prop::sample::select(vec!["s", "pageview", "event", "timing", "error", "-1", "65536", "99999999999999999999"])
            .prop_map(String::from),
        json_number(),
        json_value(),
        any_url(),
        soup(20),
    ];
    let pair = (key, value, any::<bool>()).prop_map(|(k, v, encode)| {
        if encode {
            url::form_urlencoded::Serializer::new(String::new()).append_pair(&k, &v).finish()
        } else {
            format!("{k}={v}")
        }
    });
    prop_oneof![
        4 => prop::collection::vec(pair, 0..14).prop_map(|pairs| pairs.join("&")),
        1 => soup(60),
        1 => prop::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter),
    ]
}

// ---------------------------------------------------------------------------------------------
// Generators for the URL hygiene property.
// ---------------------------------------------------------------------------------------------

/// What a slot of text carries besides filler.
#[derive(Debug, Clone, Copy)]
enum Embed {
    Nothing,
    Ip,
    Email,
    Both,
}

fn embed() -> impl Strategy<Value = Embed> {
    prop_oneof![2 => Just(Embed::Nothing), 2 => Just(Embed::Ip), 2 => Just(Embed::Email), 1 => Just(Embed::Both)]
}

/// The identifiers a case embeds: the request's address (as the beacon spells it) and some
/// e-mail addresses.
#[derive(Debug, Clone)]
struct Secrets {
    ip: IpAddr,
    /// `ip` as written into the beacon: its canonical text, for IPv6 sometimes in upper case.
    ip_text: String,
    emails: Vec<String>,
}

/// Filler and an identifier: `before` + identifier + `after`.
#[derive(Debug, Clone)]
struct Slot {
    embed: Embed,
    which_email: Index,
    /// Write the e-mail's `@` as `%40`.
    encoded_at: bool,
    before: String,
    after: String,
}

impl Slot {
    fn render(&self, secrets: &Secrets) -> String {
        let email = self.which_email.get(&secrets.emails);
        let email = if self.encoded_at { email.replace('@', "%40") } else { email.clone() };
        let middle = match self.embed {
            Embed::Nothing => String::new(),
            Embed::Ip => secrets.ip_text.clone(),
            Embed::Email => email,
            Embed::Both => format!("{}-{email}", secrets.ip_text),
        };
        // Filler that would continue the address's domain (`ivan@mail.ru` + `5` or `.x`) makes
        // it arguably no address: keep them apart with a character that is in no address.
        let glue = if matches!(self.embed, Embed::Email | Embed::Both) && self.after.starts_with(is_domain_char) {
            "~"
        } else {
            ""
        };
        format!("{}{middle}{glue}{}", self.before, self.after)
    }
}

/// A slot whose filler is drawn from `filler`. In free text, a delimiter separates the
/// identifier from the filler, so that an address glued to other words (`xivan@mail.rux`,
/// arguably no address) is not generated.
fn slot(filler: &'static str, delimited: bool) -> impl Strategy<Value = Slot> {
    let delimiter = || {
        prop::sample::select(vec![
            " ", "\n", "\t", ", ", "(", ")", "<", ">", "\"", "'", "=", ":", "; ", "/", "?", "&", "#", "!", "://", "[",
            "]", "{", "}", "|", ". ",
        ])
    };
    (embed(), any::<Index>(), any::<bool>(), regex(filler), regex(filler), delimiter(), delimiter()).prop_map(
        move |(embed, which_email, encoded_at, before, after, d1, d2)| {
            let (before, after) = if delimited { (before + d1, format!("{d2}{after}")) } else { (before, after) };
            Slot { embed, which_email, encoded_at, before, after }
        },
    )
}

/// Filler inside a path segment (no `/ ? #`; `;` starts path parameters), a query value (no
/// `& # + =`), and free text (no `@` or `%`, so that any address or encoded `@` in the output
/// was put there by an `Embed`).
const SEGMENT_FILLER: &str = "[a-zA-Z0-9а-яё._~!$&'()*+,;=:-]{0,6}";
const VALUE_FILLER: &str = "[a-zA-Z0-9а-яё._~!$'()*,:-]{0,6}";
const TEXT_FILLER: &str = "[a-zA-Z0-9а-яё .,:;()<>\"'/=?&#_+\\-]{0,10}";

#[derive(Debug, Clone)]
enum HostKind {
    Named(&'static str),
    /// The request's own address as the host (a referrer from the visitor's own machine).
    Ip,
}

#[derive(Debug, Clone)]
struct UrlParts {
    scheme: &'static str,
    userinfo: Option<Slot>,
    host: HostKind,
    port: Option<u16>,
    segments: Vec<Slot>,
    query: Vec<(&'static str, Slot, bool)>,
    fragment: Option<Slot>,
}

impl UrlParts {
    fn render(&self, secrets: &Secrets) -> String {
        let mut url = format!("{}://", self.scheme);
        if let Some(userinfo) = &self.userinfo {
            url.push_str(&userinfo.render(secrets));
            url.push('@');
        }
        match (&self.host, secrets.ip) {
            (HostKind::Named(name), _) => url.push_str(name),
            (HostKind::Ip, IpAddr::V4(_)) => url.push_str(&secrets.ip_text),
            (HostKind::Ip, IpAddr::V6(_)) => url.push_str(&format!("[{}]", secrets.ip_text)),
        }
        if let Some(port) = self.port {
            url.push_str(&format!(":{port}"));
        }
        for segment in &self.segments {
            url.push('/');
            url.push_str(&segment.render(secrets));
        }
        for (i, (key, value, encode)) in self.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            let value = value.render(secrets);
            if *encode {
                url.push_str(&url::form_urlencoded::Serializer::new(String::new()).append_pair(key, &value).finish());
            } else {
                url.push_str(&format!("{key}={value}"));
            }
        }
        if let Some(fragment) = &self.fragment {
            url.push('#');
            url.push_str(&fragment.render(secrets));
        }
        url
    }
}

fn url_parts(hosts: Vec<HostKind>) -> impl Strategy<Value = UrlParts> {
    let key = prop::sample::select(vec![
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "tab",
        "page",
        "q",
        "ip",
        "email",
    ]);
    (
        prop::sample::select(vec!["https", "http"]),
        prop::option::weighted(0.2, slot(SEGMENT_FILLER, false)),
        prop::sample::select(hosts),
        prop::option::weighted(0.1, 1..u16::MAX),
        prop::collection::vec(slot(SEGMENT_FILLER, false), 0..5),
        prop::collection::vec((key, slot(VALUE_FILLER, false), any::<bool>()), 0..5),
        prop::option::weighted(0.3, slot(TEXT_FILLER, false)),
    )
        .prop_map(|(scheme, userinfo, host, port, segments, query, fragment)| UrlParts {
            scheme,
            userinfo,
            host,
            port,
            segments,
            query,
            fragment,
        })
}

/// Free text: words, identifiers between delimiters, and URLs carrying identifiers, as in
/// event names, props and error reports.
#[derive(Debug, Clone)]
enum Piece {
    Words(String),
    Slot(Slot),
    Url(UrlParts, Option<(u16, u16)>),
}

#[derive(Debug, Clone)]
struct FreeText(Vec<Piece>, &'static str);

impl FreeText {
    fn render(&self, secrets: &Secrets) -> String {
        let pieces: Vec<String> = self
            .0
            .iter()
            .map(|piece| match piece {
                Piece::Words(w) => w.clone(),
                Piece::Slot(s) => s.render(secrets),
                Piece::Url(u, position) => {
                    let mut url = u.render(secrets);
                    if let Some((line, col)) = position {
                        url.push_str(&format!(":{line}:{col}"));
                    }
                    url
                }
            })
            .collect();
        pieces.join(self.1)
    }
}

fn free_text() -> impl Strategy<Value = FreeText> {
    let hosts = vec![HostKind::Named("cdn.a.ru"), HostKind::Named("a.ru"), HostKind::Ip];
    let piece = prop_oneof![
        2 => regex(TEXT_FILLER).prop_map(Piece::Words),
        3 => slot(TEXT_FILLER, true).prop_map(Piece::Slot),
        1 => (url_parts(hosts), prop::option::of((0..5_000u16, 0..500u16))).prop_map(|(u, p)| Piece::Url(u, p)),
    ];
    (prop::collection::vec(piece, 1..5), prop::sample::select(vec![" ", "\n    at ", ", ", " (", ") "]))
        .prop_map(|(pieces, separator)| FreeText(pieces, separator))
}

/// An address that is not its own network (the host part under /24 or /48 is not zero), so
/// that the `network` column cannot spell it; documentation, private and public ranges.
fn client_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (any::<[u8; 3]>(), 1..=254u8).prop_map(|(a, d)| IpAddr::V4(Ipv4Addr::new(a[0].max(1), a[1], a[2], d))),
        (
            prop::sample::select(vec![0x2001u16, 0x2a02, 0xfe80, 0xfd00, 0x2606]),
            any::<[u16; 6]>(),
            prop::collection::vec(any::<bool>(), 6),
            1..=u16::MAX
        )
            .prop_map(|(first, mut middle, zeroes, last)| {
                // Zero runs, so that `::` compression appears at different places.
                for (m, z) in middle.iter_mut().zip(zeroes) {
                    if z {
                        *m = 0;
                    }
                }
                let s = [first, middle[0], middle[1], middle[2], middle[3], middle[4], middle[5], last];
                IpAddr::V6(Ipv6Addr::from(s))
            }),
    ]
}

fn email() -> impl Strategy<Value = String> {
    (
        regex("[a-zа-я0-9]([a-zа-я0-9._+-]{0,8}[a-zа-я0-9])?"),
        prop::collection::vec(regex("[a-zа-я0-9]([a-zа-я0-9-]{0,5}[a-zа-я0-9])?"), 1..3),
        prop::sample::select(vec!["ru", "com", "org", "net", "info", "рф", "москва", "RU", "Com"]),
    )
        .prop_map(|(local, labels, tld)| format!("{local}@{}.{tld}", labels.join(".")))
}

fn secrets() -> impl Strategy<Value = Secrets> {
    (client_ip(), any::<bool>(), prop::collection::vec(email(), 1..3)).prop_map(|(ip, upper, emails)| {
        let ip_text = if upper && ip.is_ipv6() { ip.to_string().to_ascii_uppercase() } else { ip.to_string() };
        Secrets { ip, ip_text, emails }
    })
}

/// A beacon carrying identifiers everywhere the beacon API allows text.
#[derive(Debug, Clone)]
struct LeakyBeacon {
    kind: &'static str,
    url: UrlParts,
    referrer: Option<UrlParts>,
    name: FreeText,
    props: Vec<(FreeText, FreeText)>,
    lang: Option<Slot>,
    error_message: FreeText,
    error_source: FreeText,
    error_stack: FreeText,
}

impl LeakyBeacon {
    fn body(&self, secrets: &Secrets) -> Vec<u8> {
        let props: Map<String, Value> =
            self.props.iter().map(|(k, v)| (k.render(secrets), Value::String(v.render(secrets)))).collect();
        let mut beacon = json!({
            "site": "s",
            "type": self.kind,
            "url": self.url.render(secrets),
            "name": format!("n {}", self.name.render(secrets)),
            "props": props,
            "sw": 1920,
            "sid": "cookie-value",
        });
        if let Some(r) = &self.referrer {
            beacon["ref"] = Value::String(r.render(secrets));
        }
        if let Some(lang) = &self.lang {
            beacon["lang"] = Value::String(lang.render(secrets));
        }
        match self.kind {
            "error" => {
                beacon["err"] = json!({
                    "msg": format!("Error: {}", self.error_message.render(secrets)),
                    "src": self.error_source.render(secrets),
                    "stack": self.error_stack.render(secrets),
                    "line": 10,
                    "col": 5,
                });
            }
            "timing" => beacon["t"] = json!({"ttfb": 12, "lcp": 900.5, "cls": 0.1}),
            _ => {}
        }
        serde_json::to_vec(&beacon).expect("a beacon serialises")
    }
}

fn leaky_beacon() -> impl Strategy<Value = LeakyBeacon> {
    let page_hosts = vec![HostKind::Named("a.ru"), HostKind::Named("lk.a.ru")];
    let referrer_hosts = vec![
        HostKind::Named("a.ru"),
        HostKind::Named("lk.a.ru"),
        HostKind::Named("www.google.com"),
        HostKind::Named("b.ru"),
        HostKind::Ip,
    ];
    (
        prop::sample::select(vec!["pageview", "event", "timing", "error"]),
        url_parts(page_hosts),
        prop::option::weighted(0.8, url_parts(referrer_hosts)),
        free_text(),
        prop::collection::vec((free_text(), free_text()), 0..4),
        prop::option::of(slot(TEXT_FILLER, false)),
        (free_text(), free_text(), free_text()),
    )
        .prop_map(|(kind, url, referrer, name, props, lang, (error_message, error_source, error_stack))| {
            LeakyBeacon { kind, url, referrer, name, props, lang, error_message, error_source, error_stack }
        })
}

/// User-Agents without addresses: the pipeline stores the User-Agent verbatim (cut to 512
/// bytes, `store::pseudonym::user_agent_prefix`) in the troubleshooting row, which
/// docs/privacy-model.md section 3 allows for purpose T, and it applies no scrubbing to it. A
/// User-Agent is a header the browser writes, not page content, so the generated ones carry
/// no IP or e-mail; `pipeline_never_panics` feeds arbitrary ones.
fn user_agent() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
         Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "python-requests/2.31.0",
        "",
    ])
    .prop_map(String::from)
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Property 1a: any bytes at all, as a POST body and as a query string.
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..4_096)) {
        let _ = parse_beacon(&body);
        let _ = parse_beacon_query(&String::from_utf8_lossy(&body));
    }

    /// Property 1b: JSON-ish bodies mixing beacon fields with junk, deep nesting, huge
    /// numbers and invalid UTF-8.
    #[test]
    fn json_parser_never_panics_on_json_ish_bodies(body in json_ish_body()) {
        if let Ok(beacon) = parse_beacon(&body) {
            // What was accepted obeys the documented limits.
            prop_assert!(!beacon.site.is_empty());
            prop_assert!(beacon.url.has_host());
            prop_assert!(beacon.props.len() <= 30);
        }
    }

    /// Property 1c: query strings, structured and arbitrary.
    #[test]
    fn query_parser_never_panics(query in query_ish()) {
        let _ = parse_beacon_query(&query);
    }

    /// Property 2: no raw IP address of the request and no e-mail address reaches a stored
    /// row, wherever the beacon carries them.
    #[test]
    fn no_ip_or_email_reaches_storage(
        secrets in secrets(),
        beacon in leaky_beacon(),
        user_agent in user_agent(),
        site in 0..4usize,
        do_not_track in any::<bool>(),
    ) {
        // DNT drops a beacon on a site in drop mode, and a timing or error beacon anywhere (it
        // has no anonymous row): such a case would store nothing and check nothing, so DNT is
        // sent only where rows are kept.
        let do_not_track = do_not_track && site < 2 && matches!(beacon.kind, "pageview" | "event");
        let body = beacon.body(&secrets);
        let facts = RequestFacts {
            ip: secrets.ip,
            user_agent: &user_agent,
            cookie: Some("cookie-value"),
            do_not_track,
            received_at: 1_764_000_000,
            post_without_origin: false,
        };
        let outcome = process(&body, facts, site);
        let Some(Outcome::Store { rows, bot, .. }) = outcome else {
            return Err(TestCaseError::fail(format!(
                "the generated beacon was refused or dropped ({outcome:?}): {}", String::from_utf8_lossy(&body)
            )));
        };
        let (audience, troubleshooting) = rows.into_parts();
        // Only a bot under DNT stores nothing: bots have no audience row, DNT no troubleshooting row.
        prop_assert!(audience.is_some() || troubleshooting.is_some() || (bot.is_some() && do_not_track), "no row stored");
        let ip = secrets.ip.to_string();
        for (field, value) in stored_strings(&audience, &troubleshooting) {
            for text in [value.to_owned(), percent_decoded(value)] {
                prop_assert!(
                    !contains_ignore_ascii_case(&text, &ip),
                    "{field} = {value:?} holds the raw IP {ip}\nbody: {}", String::from_utf8_lossy(&body)
                );
                prop_assert!(
                    find_email(&text).is_none(),
                    "{field} = {value:?} holds the e-mail address {:?}\nbody: {}",
                    find_email(&text), String::from_utf8_lossy(&body)
                );
            }
        }
    }

    /// Property 3: whatever the parser accepts, with whatever request facts, the pipeline
    /// gives an outcome.
    #[test]
    fn pipeline_never_panics(
        kind in prop::sample::select(vec!["pageview", "event", "timing", "error"]),
        url in valid_url(),
        referrer in prop::option::of(valid_url()),
        name in soup(60),
        props in prop::collection::vec((soup(8), prop_oneof![
            soup(16).prop_map(Value::String),
            any::<f64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
        ]), 0..31),
        screen_width in any::<u16>(),
        lang in prop::option::of(soup(12)),
        timing in prop::collection::vec((
            prop::sample::select(vec!["ttfb", "fcp", "dcl", "load", "lcp", "inp", "cls"]),
            prop_oneof![0.0..1e6f64, any::<u32>().prop_map(f64::from)],
        ), 0..8),
        error in (soup(40), soup(30), soup(80), any::<u64>(), any::<u64>()),
        sid in prop::option::of(soup(20)),
        ip in any::<IpAddr>(),
        user_agent in prop_oneof![soup(40), prop::collection::vec(any::<char>(), 0..700).prop_map(String::from_iter)],
        cookie in prop::option::of(soup(20)),
        do_not_track in any::<bool>(),
        received_at in any::<u32>(),
        site in 0..4usize,
    ) {
        let props: Map<String, Value> = props.into_iter().collect();
        // In range, so that the beacon is accepted: `cls` is at most 1e6.
        let timing: Map<String, Value> =
            timing.into_iter().map(|(k, v)| (k.to_owned(), Value::from(if k == "cls" { v.min(1e6) } else { v }))).collect();
        let (message, source, stack, line, col) = error;
        let mut beacon = json!({
            "site": "s",
            "type": kind,
            "url": url,
            "name": format!("n{name}"),
            "props": props,
            "sw": screen_width,
            "t": timing,
            "err": {"msg": format!("m{message}"), "src": source, "stack": stack, "line": line, "col": col},
        });
        if let Some(r) = referrer {
            beacon["ref"] = Value::String(r);
        }
        if let Some(l) = lang {
            beacon["lang"] = Value::String(l);
        }
        if let Some(s) = sid {
            beacon["sid"] = Value::String(s);
        }
        let body = serde_json::to_vec(&beacon).expect("a beacon serialises");
        let facts = RequestFacts { ip, user_agent: &user_agent, cookie: cookie.as_deref(), do_not_track, received_at, post_without_origin: false };
        match process(&body, facts, site) {
            // Refused by the parser (a bad URL): nothing reaches the pipeline.
            None => {}
            Some(Outcome::Store { rows, .. }) => {
                let (audience, troubleshooting) = rows.into_parts();
                // Anonymous mode (section 7): no troubleshooting row, no pseudonyms.
                prop_assert_eq!(troubleshooting.is_some(), !do_not_track);
                if let Some(a) = &audience {
                    prop_assert!(a.path.starts_with('/'));
                    prop_assert!(!do_not_track || (a.visitor_id, a.cookie_id) == (0, 0));
                }
            }
            // Dropped: a site that drops DNT beacons, or a beacon with no audience row to keep.
            Some(Outcome::DroppedDoNotTrack) => {
                prop_assert!(do_not_track && (site >= 2 || kind == "timing" || kind == "error"))
            }
            Some(Outcome::DroppedBlocked) => prop_assert!(false, "nothing is blocked"),
        }
    }
}
