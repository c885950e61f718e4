//! Free-text scrubbing (docs/privacy-model.md section 4): e-mail addresses and phone numbers are
//! removed from every free-text field before storage. Pure, allocation-free when there is
//! nothing to remove (nor anything percent-encoded), and total: any input gives a value.
//!
//! - [`text`] replaces e-mail addresses by `[email]` and phone numbers by `[phone]`. For event
//!   names, property keys and values, and utm_* values.
//! - `urls::scrub_with_urls` also reduces every URL in the text with URL hygiene, for an
//!   error's message, source and stack.
//! - [`is_language_tag`] checks `lang`, which is validated rather than scrubbed.
//!
//! An **e-mail address** is a local part of letters, digits and `. _ % + -`, then `@` (or
//! `%40`), then a domain of two or more labels whose last is at least two letters: so
//! `ivan.petrov@mail.ru` and `иван@почта.рф` go, while `logo@2x.png` (a file extension as the
//! last label), `@media`, and the `name@https://...` of Firefox stack frames stay. An address
//! percent-encoded as a whole (`%D0%B8%40%D0%BF%D0%BE%D1%87%D1%82%D0%B0.%D1%80%D1%84`) is found
//! in the decoded text, which is then kept decoded.
//!
//! A **phone number** is a run of digit groups joined by at most two of ` - . ( )`, with a
//! leading `+` or not, and with nothing alphanumeric on either side (nor a number that a `.`
//! or `,` would join it to). It counts as a phone when it has 10 to 15 digits after a `+`
//! (E.164; exactly 11 after `+7`), or, without a `+`, when it looks Russian: 11 digits starting
//! with 7 or 8 (`8 (912) 345-67-89`, `89123456789`), or 10 digits starting with 3, 4, 8 or 9
//! (`(495) 123-45-67`, `912 345 67 89`: Russian area and mobile codes start with those). The
//! longest such prefix of a run of groups is the phone, and the search starts again at every
//! group that starts a word. So line numbers, `HTTP 503`, Unix times in seconds and
//! milliseconds (they start with 1), dates and times (`2026-11-24 10:30`), decimals
//! (`0.8912345678`), IP addresses and 12-digit numbers stay. Account numbers in free text are
//! not removed unless they look like a phone: the rules are for e-mails and phones only.

use std::borrow::Cow;

const EMAIL: &str = "[email]";
const PHONE: &str = "[phone]";

/// Last labels that are file extensions, not top-level domains: `logo@2x.png` is a file.
const FILE_EXTENSIONS: [&str; 16] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "mjs", "css", "html", "htm", "json", "map", "woff",
    "woff2",
];

/// The longest local part and domain of an address (RFC 5321); they bound the search too.
const MAX_LOCAL_CHARS: usize = 64;
const MAX_DOMAIN_CHARS: usize = 255;

/// Fewest digits in a phone number; shorter text cannot hold one.
const MIN_PHONE_DIGITS: usize = 10;
const MAX_PHONE_DIGITS: usize = 15;

/// `s` without e-mail addresses and phone numbers. Borrowed when there is nothing to remove.
pub fn text(s: &str) -> Cow<'_, str> {
    // One pass decides whether anything could match: most free text has no `@` and few digits.
    let (mut digits, mut at) = (0, false);
    for b in s.bytes() {
        digits += usize::from(b.is_ascii_digit());
        at |= b == b'@' || b == b'%';
    }
    let mut s = if at { emails(s) } else { Cow::Borrowed(s) };
    // An address percent-encoded beyond its `@`, as a URL's query carries `иван@почта.рф`
    // (`%D0%B8%D0%B2%D0%B0%D0%BD%40%D0%BF%D0%BE%D1%87%D1%82%D0%B0.%D1%80%D1%84`), shows only
    // once decoded: then the text is kept decoded, without it.
    if at
        && s.contains('%')
        && let Some(decoded) = percent_decoded_emails(&s)
    {
        s = Cow::Owned(decoded);
    }
    if digits < MIN_PHONE_DIGITS {
        return s;
    }
    match phones(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => Cow::Owned(o),
    }
}

/// Scrubs `s` in place, allocating only when something is removed.
pub fn in_place(s: &mut String) {
    if let Cow::Owned(o) = text(s) {
        *s = o;
    }
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

fn emails(s: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut done = 0; // bytes of `s` already copied to `out` or replaced
    let mut from = 0;
    while let Some((at, at_len)) = next_at(s, from) {
        from = at + at_len;
        let local_start = s[done..at]
            .char_indices()
            .rev()
            .take(MAX_LOCAL_CHARS)
            .take_while(|&(_, c)| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-'))
            .last()
            .map_or(at, |(i, _)| done + i);
        let local = s[local_start..at].trim_start_matches('.');
        let domain_len = s[from..]
            .char_indices()
            .take(MAX_DOMAIN_CHARS + 1)
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '.' || c == '-'))
            .map_or(s.len() - from, |(i, _)| i);
        // A sentence may end right after the address.
        let domain = s[from..from + domain_len].trim_end_matches(['.', '-']);
        if local.is_empty() || domain.len() > MAX_DOMAIN_CHARS || !is_mail_domain(domain) {
            continue;
        }
        out.push_str(&s[done..local_start]);
        out.push_str(EMAIL);
        done = from + domain.len();
        from = done;
    }
    if done == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[done..]);
    Cow::Owned(out)
}

/// Layers of percent-encoding looked through: a URL in a URL's query is encoded twice (`%2540`
/// for `@`), a redirect inside that three times.
const MAX_DECODINGS: usize = 3;

/// `s` percent-decoded, layer by layer, down to the first layer that shows an e-mail address,
/// with its addresses removed; `None` if no layer shows one.
fn percent_decoded_emails(s: &str) -> Option<String> {
    let mut layer = Cow::Borrowed(s);
    for _ in 0..MAX_DECODINGS {
        let next = percent_encoding::percent_decode_str(&layer).decode_utf8_lossy().into_owned();
        if next == *layer {
            return None;
        }
        if let Cow::Owned(clean) = emails(&next) {
            return Some(clean);
        }
        layer = Cow::Owned(next);
    }
    None
}

/// The next `@` or `%40` at or after `from`: its position and length.
fn next_at(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    (from..b.len()).find_map(|i| match b[i] {
        b'@' => Some((i, 1)),
        b'%' if b[i + 1..].starts_with(b"40") => Some((i, 3)),
        _ => None,
    })
}

fn is_mail_domain(domain: &str) -> bool {
    let mut labels = domain.split('.');
    let last = labels.next_back().unwrap_or_default();
    domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
        && last.chars().count() >= 2
        && last.chars().all(char::is_alphabetic)
        && !FILE_EXTENSIONS.iter().any(|e| last.eq_ignore_ascii_case(e))
}

fn phones(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut done = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let phone =
            if (c.is_ascii_digit() || c == b'+' || c == b'(') && starts_word(b, i) { phone_at(b, i) } else { None };
        if let Some((start, end)) = phone {
            out.push_str(&s[done..start]);
            out.push_str(PHONE);
            (done, i) = (end, end);
            continue;
        }
        // Never start inside a number.
        if c.is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    if done == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[done..]);
    Cow::Owned(out)
}

/// Nothing alphanumeric right before `i`, and no number a `.` or `,` would join it to.
fn starts_word(b: &[u8], i: usize) -> bool {
    match i.checked_sub(1).map(|p| b[p]) {
        None => true,
        Some(p) if p.is_ascii_alphanumeric() || p == b'_' || p == b'+' => false,
        Some(b'.' | b',' | b'-') => !(i >= 2 && b[i - 2].is_ascii_digit()),
        Some(_) => true,
    }
}

fn is_separator(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'(' | b')')
}

/// The phone number starting at `i` (a `+`, `(` or digit that starts a word), as a byte
/// range of `b`: the longest run of digit groups from `i` that [`is_phone`] accepts.
fn phone_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let plus = b[i] == b'+';
    let mut j = i + usize::from(plus);
    let (mut first_digit, mut digits, mut best) = (None, 0, None);
    loop {
        let separators = j;
        while j < b.len() && is_separator(b[j]) && j - separators < 2 {
            j += 1;
        }
        if !b.get(j).is_some_and(u8::is_ascii_digit) {
            return best.map(|end| (i, end));
        }
        let group = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let lead = *first_digit.get_or_insert(b[group]);
        digits += j - group;
        if digits > MAX_PHONE_DIGITS {
            return best.map(|end| (i, end));
        }
        if is_phone(digits, lead, plus) && ends_word(b, j) {
            best = Some(j);
        }
    }
}

/// Whether `digits` digits starting with `lead` make a phone number (see the module docs).
fn is_phone(digits: usize, lead: u8, plus: bool) -> bool {
    match (plus, lead) {
        // +7 is Russia and Kazakhstan: exactly 11 digits, so a number after it stays.
        (true, b'7') => digits == 11,
        (true, _) => (MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&digits),
        (false, _) => {
            (digits == 11 && matches!(lead, b'7' | b'8')) || (digits == 10 && matches!(lead, b'3' | b'4' | b'8' | b'9'))
        }
    }
}

/// Nothing alphanumeric right after `end`, and no decimal part.
fn ends_word(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => false,
        Some(b'.' | b',') => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(text(input), expected, "{input:?}");
    }

    #[test]
    fn removes_emails_and_phones_from_text() {
        check("", "");
        check("Оплата картой", "Оплата картой");
        check("ivan.petrov@mail.ru", "[email]");
        check("Письмо для Ivan.Petrov+lk@Yandex.RU отправлено.", "Письмо для [email] отправлено.");
        check("email=ivan%40mail.ru&x=1", "email=[email]&x=1");
        check("иван@почта.рф", "[email]");
        check("a@b.ru, c@d.com", "[email], [email]");
        check("+7 (912) 345-67-89", "[phone]");
        check("звонок на 8-912-345-67-89.", "звонок на [phone].");
        check("89123456789", "[phone]");
        check("тел.:89123456789", "тел.:[phone]");
        check("(495) 123-45-67", "[phone]");
        check("912 345 67 89", "[phone]");
        check("+44 20 7946 0958", "[phone]");
        check("HTTP 503 8 912 345 67 89", "HTTP 503 [phone]");
        check("8 (912) 345-67-89 12:00", "[phone] 12:00");
        check("call +79123456789, ok", "call [phone], ok");
        check("89123456789@mail.ru", "[email]");
        check("?email=%D0%B8%40%D0%BF%D0%BE%D1%87%D1%82%D0%B0.%D1%80%D1%84&x=%20", "?email=[email]&x= ");
        // Encoded twice, as a URL inside a URL's query: `%2540` is `@`.
        check("?next=%2Fa%3Fto%3D%25D0%25B8%2540%25D0%25BF.%25D1%2580%25D1%2584", "?next=/a?to=[email]");
    }

    #[test]
    fn keeps_ordinary_numbers_and_at_signs() {
        for keep in [
            "HTTP 503",
            "line 1234 col 56",
            "at line 12345678",
            "Error 500 502 503 504",
            "ts=1764000000",
            "ts 1764000000123",
            "2026-11-24 10:30:15",
            "24.11.2026 15:30",
            "0.8912345678",
            "pi 3,1415926535",
            "192.168.100.200",
            "account 123456789012",
            "12345678901234567890",
            "v8.9123456789",
            "id_89123456789",
            "89123456789abc",
            "logo@2x.png",
            "@media print",
            "onClick@https://lk.example.ru/app.js:12:3",
            "user@localhost",
            "a@b",
            "@",
            "%40",
            "Loaded 98765432101 bytes",
            "size 1920x1080",
        ] {
            check(keep, keep);
        }
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
            format!("https://{}", "/%FF".repeat(4_000)),
            "\u{202e}\u{0}é\u{301}@\u{10ffff}.рф 8\u{a0}912\u{a0}345 67 89 ((((((8".to_owned(),
            "«https://a.ru/» Ошибкаhttps://a.ru/ \u{e000}://".to_owned(),
            "x".repeat(100_000),
        ];
        for input in &inputs {
            let _ = text(input);
            let _ = is_language_tag(input);
        }
    }
}
