//! Free-text scrubbing (docs/privacy-model.md section 4): personal data is replaced by a typed
//! placeholder in every free-text field before storage. Pure and total: any input gives a
//! value, borrowed when there is nothing to replace.
//!
//! [`text`] runs the detectors in this order, each over the output of the one before, so a
//! placeholder is never matched again:
//!
//! | detector | placeholder | module |
//! | --- | --- | --- |
//! | e-mail addresses, IDN and Cyrillic domains too | `[email]` | `emails` |
//! | JWTs, UUIDs, high-entropy tokens and hex runs | `[token]`, `[id]` | `network` |
//! | IPv6 and IPv4 addresses, any, not only the visitor's | `[ip]` | `network` |
//! | cards (13 to 19 digits, any separators, Luhn) | `[card]` | `numbers` |
//! | passports, SNILS and INN with separators (checksums), runs of 10+ digits, numbers after `л/с`, `№`, `договор` and the like | `[id]` | `numbers` |
//! | phones, Russian and international | `[phone]` | `numbers` |
//! | postal addresses | `[address]` | `addresses` |
//! | Russian full names and initials | `[name]` | `names` |
//!
//! Percent-encoded text (once, or a URL in a URL's query: twice, three times; UTF-8, else
//! windows-1251) is also looked at decoded; when the decoded text holds something, the decoded
//! text is kept without it, else the text as sent is scrubbed.
//! [`template`] reduces an error message to its template for sites that ask for it, and
//! [`is_language_tag`] checks `lang`, which is validated rather than scrubbed.

mod addresses;
mod emails;
mod names;
mod network;
mod numbers;
mod template;
mod words;

use std::borrow::Cow;

pub(crate) use self::network::{TokenScan, contains_uuid, is_code_file};
pub use self::template::template;

/// What a removed piece of text was; its placeholder replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Token,
    Id,
    Ip,
    Card,
    Phone,
    Address,
    Name,
}

impl Kind {
    pub const ALL: [Kind; 8] =
        [Kind::Email, Kind::Token, Kind::Id, Kind::Ip, Kind::Card, Kind::Phone, Kind::Address, Kind::Name];

    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[email]",
            Kind::Token => "[token]",
            Kind::Id => "[id]",
            Kind::Ip => "[ip]",
            Kind::Card => "[card]",
            Kind::Phone => "[phone]",
            Kind::Address => "[address]",
            Kind::Name => "[name]",
        }
    }
}

/// A piece of text to replace: its byte range and kind.
type Span = (usize, usize, Kind);

/// The detectors, in order (see the module docs). Each appends the spans it finds, in order and
/// not overlapping, and skips text that cannot hold what it looks for cheaply.
const DETECTORS: [fn(&str, &mut Vec<Span>); 5] =
    [emails::find, network::find_tokens, network::find_ips, numbers::find, russian_words];

/// Addresses, then names outside them, over one tokenization of the text.
fn russian_words(s: &str, spans: &mut Vec<Span>) {
    if !words::has_cyrillic(s) {
        return;
    }
    let tokens = words::tokens(s);
    addresses::find(s, &tokens, spans);
    if names::may_hold_one(s) {
        names::find(s, &tokens, spans);
    }
    spans.sort_unstable_by_key(|span| span.0);
}

/// Layers of percent-encoding looked through: a URL in a URL's query is encoded twice (`%2540`
/// for `@`), a redirect inside that three times.
const MAX_DECODINGS: usize = 3;

/// `s` with personal data replaced by placeholders. Borrowed when there is nothing to replace.
pub fn text(s: &str) -> Cow<'_, str> {
    // Percent-encoded text is looked at decoded, down to the last layer that changes: encoded,
    // its escapes would split what a detector looks for, or make up digit runs (`%2528`). What
    // holds personal data there is kept decoded, without it; what does not stays as sent.
    if s.contains('%') {
        let mut decoded = Cow::Borrowed(s);
        for _ in 0..MAX_DECODINGS {
            match percent_decode(&decoded) {
                Cow::Owned(next) => decoded = Cow::Owned(next),
                Cow::Borrowed(_) => break,
            }
        }
        if let Cow::Owned(decoded) = decoded
            && let Cow::Owned(clean) = layer(&decoded)
        {
            return Cow::Owned(clean);
        }
    }
    layer(s)
}

/// One layer of percent-decoding. Bytes that are not UTF-8 are read as windows-1251, which
/// older Russian sites still encode forms in (`%C8%E2%E0%ED` is `Иван`); other bytes become
/// U+FFFD.
fn percent_decode(s: &str) -> Cow<'_, str> {
    let bytes: Cow<'_, [u8]> = percent_encoding::percent_decode_str(s).into();
    match bytes {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        Cow::Owned(bytes) => Cow::Owned(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => e.into_bytes().into_iter().map(windows_1251).collect(),
        }),
    }
}

/// A byte of windows-1251 text: ASCII, the Russian alphabet; anything else U+FFFD.
fn windows_1251(b: u8) -> char {
    match b {
        0x00..=0x7f => char::from(b),
        0xc0..=0xff => char::from_u32(0x410 + u32::from(b - 0xc0)).unwrap_or('\u{fffd}'),
        0xa8 => 'Ё',
        0xb8 => 'ё',
        _ => '\u{fffd}',
    }
}

/// Scrubs `s` in place, allocating only when something is replaced.
pub fn in_place(s: &mut String) {
    if let Cow::Owned(o) = text(s) {
        *s = o;
    }
}

/// One layer: every detector, in order.
fn layer(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    let mut spans = Vec::new();
    for detect in DETECTORS {
        spans.clear();
        detect(&out, &mut spans);
        if !spans.is_empty() {
            out = Cow::Owned(replace(&out, &spans));
        }
    }
    out
}

fn replace(s: &str, spans: &[Span]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut done = 0;
    for &(start, end, kind) in spans {
        debug_assert!(start >= done && end > start, "detectors return ordered, disjoint spans");
        if start < done {
            continue;
        }
        out.push_str(&s[done..start]);
        out.push_str(kind.placeholder());
        done = end;
    }
    out.push_str(&s[done..]);
    out
}

/// A BCP 47-like language tag as `navigator.language` gives it: a 2 or 3 letter language,
/// then subtags of 1 to 8 letters or digits (`ru`, `ru-RU`, `zh-Hans-CN`, `es-419`).
pub fn is_language_tag(s: &str) -> bool {
    let mut subtags = s.split('-');
    let language = subtags.next().unwrap_or_default();
    s.len() <= 35
        && (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags.all(|t| (1..=8).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn check(input: &str, expected: &str) {
        assert_eq!(text(input), expected, "{input:?}");
    }

    #[test]
    fn looks_through_percent_encoding() {
        check("email=ivan%40mail.ru&x=1", "email=[email]&x=1");
        check("?email=%D0%B8%40%D0%BF%D0%BE%D1%87%D1%82%D0%B0.%D1%80%D1%84&x=%20", "?email=[email]&x= ");
        // Encoded twice, as a URL inside a URL's query: `%2540` is `@`.
        check("?next=%2Fa%3Fto%3D%25D0%25B8%2540%25D0%25BF.%25D1%2580%25D1%2584", "?next=/a?to=[email]");
        check("q=4111%201111%201111%201111", "q=[card]");
        check("%25D0%2598%25D0%25B2%25D0%25B0%25D0%25BD%25D0%25BE%25D0%25B2%2520%25D0%2598.%25D0%2598.", "[name]");
        check("100%25 done, 50%", "100%25 done, 50%");
        check("fio=%C8%E2%E0%ED%EE%E2+%C8%E2%E0%ED+%C8%E2%E0%ED%EE%E2%E8%F7", "fio=[name]");
        check("4111 1111 1111 1111%2C12%2F28", "[card],12/28");
    }

    #[test]
    fn validates_language_tags() {
        for good in ["ru", "ru-RU", "en-US", "zh-Hans-CN", "es-419", "de-DE-u-co-phonebk", "fil"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in [
            "",
            "r",
            "russian",
            "ru_RU",
            "ru-",
            "-RU",
            "ru RU",
            "ivan@mail.ru",
            "ру-RU",
            "ru-toolongsubtag",
            "89123456789",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn never_panics_on_adversarial_input() {
        let inputs = [
            "@".repeat(10_000),
            "%40".repeat(5_000),
            "9 ".repeat(10_000),
            "+(".repeat(10_000),
            "://".repeat(5_000),
            "a@b.".repeat(5_000),
            "ул. ".repeat(5_000),
            "И. ".repeat(5_000),
            "Иван Иванович ".repeat(2_000),
            ":".repeat(10_000),
            "1.".repeat(10_000),
            "%25".repeat(5_000),
            format!("https://{}", "/%FF".repeat(4_000)),
            "\u{202e}\u{0}é\u{301}@\u{10ffff}.рф 8\u{a0}912\u{a0}345 67 89 ((((((8".to_owned(),
            "«https://a.ru/» Ошибкаhttps://a.ru/ \u{e000}://".to_owned(),
            "x".repeat(100_000),
        ];
        for input in &inputs {
            let _ = text(input);
            let _ = template(input);
            let _ = is_language_tag(input);
        }
    }
}
