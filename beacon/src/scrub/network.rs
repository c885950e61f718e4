//! Tokens and network addresses.
//!
//! - A **JWT** (`eyJ...` base64url, `.`, base64url, `.`, signature) is a `[token]`.
//! - A **UUID** (8-4-4-4-12 hex digits, either case) is an `[id]`.
//! - A **token** is a run of ASCII letters and digits (`-`, `_`, `+`, `=` continue it) that is
//!   a run of 16 or more hex digits with digits and letters among them, or that switches between lower
//!   case, upper case and digits as often as random strings do ([`TokenScan`]), or, from 24
//!   letters and digits, that mixes all three or has as many different characters as random
//!   text, unless three quarters of it are words: session ids, API keys, reset links'
//!   secrets, base64. Camel-case and snake-case names (`getElementById`,
//!   `checkout_Step2_PaymentConfirmed`), version strings and slugs stay, and so do the build
//!   hashes of scripts and stylesheets (`_app-2c79e2a64abdb08b.js`).
//! - An **IPv4 address** is four decimal octets up to 255 that no digit or `.digit` continues
//!   (`Chrome 124.0.6367.91` is no address), and not a version after a product name
//!   (`Chrome/124.0.0.0`); an **IPv6 address** is a run of hex digits and
//!   colons (and a trailing IPv4 part) that `std` parses, with two colons or more and no ASCII
//!   letter or digit right before it (so `std::vector` stays). Both are `[ip]`.

use std::net::Ipv6Addr;

use super::{Kind, Span};

/// Fewest characters in a high-entropy token run; shorter runs are words and counters.
const MIN_TOKEN_CHARS: usize = 10;

pub(super) fn find_tokens(s: &str, spans: &mut Vec<Span>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_token_byte(b, i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (is_token_byte(b, i) || (b[i] == b'.' && i + 1 < b.len() && is_token_byte(b, i + 1))) {
            i += 1;
        }
        // The run may hold dots (a JWT, a file name, a version): look at its dot-free parts,
        // unless it is a JWT as a whole.
        let run = &s[start..i];
        if run.find("eyJ").is_some_and(|p| is_jwt(&run[p..])) {
            spans.push((start, i, Kind::Token));
            continue;
        }
        let code_file = is_code_file(run);
        let mut part_start = start;
        for part in run.split('.') {
            let end = part_start + part.len();
            if let Some(kind) = classify(part).filter(|&k| !(code_file && k == Kind::Token)) {
                spans.push((part_start, end, kind));
            }
            part_start = end + 1;
        }
    }
}

/// A script's or a stylesheet's name, whose build hash (`_app-2c79e2a64abdb08b.js`) is no
/// one's data: stacks name them.
pub(crate) fn is_code_file(name: &str) -> bool {
    [".js", ".mjs", ".css", ".map"].iter().any(|e| name.ends_with(e))
}

/// Base64url and base64 characters; `=` only as padding, so `key=value` is two runs.
fn is_token_byte(b: &[u8], i: usize) -> bool {
    match b[i] {
        b'=' => !b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric),
        c => c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+'),
    }
}

fn is_jwt(run: &str) -> bool {
    let mut parts = run.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else { return false };
    header.starts_with("eyJ") && header.len() >= 10 && payload.len() >= 10 && parts.count() <= 1
}

fn classify(part: &str) -> Option<Kind> {
    if part.len() < MIN_TOKEN_CHARS {
        return None;
    }
    if contains_uuid(part) {
        return Some(Kind::Id);
    }
    let mut scan = TokenScan::default();
    let token = part.bytes().chain([b' ']).any(|b| scan.push(b)) || is_random(part);
    token.then_some(Kind::Token)
}

/// Letters and digits long enough to tell: 24 or more with all of upper case, lower case and
/// digits, or with as many different characters as random text has (words repeat theirs:
/// `ResizeObserverLoopLimitExceeded` has 15 in its first 24, random base62 about 20); unless
/// three quarters of it are words of four letters or more (`checkout_Step2_PaymentConfirmed`,
/// `checkout_delivery_form_submitted`: an event's name, not a secret).
fn is_random(part: &str) -> bool {
    const WINDOW: usize = 24;
    let alnum = part.bytes().filter(u8::is_ascii_alphanumeric);
    let len = alnum.clone().count();
    if len < WINDOW || 4 * word_letters(part) >= 3 * len {
        return false;
    }
    let (mut upper, mut lower, mut digit) = (false, false, false);
    let mut seen = [false; 128];
    for (i, b) in alnum.enumerate() {
        upper |= b.is_ascii_uppercase();
        lower |= b.is_ascii_lowercase();
        digit |= b.is_ascii_digit();
        if i < WINDOW {
            seen[usize::from(b)] = true;
        }
    }
    (upper && lower && digit) || seen.iter().filter(|&&s| s).count() >= 17
}

/// Letters in the words of `part`: lower-case runs of four letters or more, with one capital
/// before them or not (`Payment`, `checkout`; not the `QWER` of random text).
fn word_letters(part: &str) -> usize {
    let (mut total, mut run, mut capital) = (0, 0, false);
    for b in part.bytes().chain([b' ']) {
        if b.is_ascii_lowercase() {
            run += 1;
            continue;
        }
        let word = run + usize::from(capital);
        total += if run >= 3 && word >= 4 { word } else { 0 };
        (run, capital) = (0, b.is_ascii_uppercase());
    }
    total
}

/// Whether `s` holds a UUID (8-4-4-4-12 hex digits), in either case.
pub(crate) fn contains_uuid(s: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let bytes = s.as_bytes();
    if bytes.len() < 36 || !s.contains('-') {
        return false;
    }
    (0..=bytes.len() - 36).any(|start| {
        let mut i = start;
        GROUPS.iter().enumerate().all(|(g, &len)| {
            let ok = bytes.len() >= i + len && bytes[i..i + len].iter().all(u8::is_ascii_hexdigit);
            i += len;
            let dash_ok = g == 4 || (bytes.get(i) == Some(&b'-'));
            i += 1;
            ok && dash_ok
        })
    })
}

/// Fed one byte at a time: the current hex run, and the current run of letters and digits with
/// its switches between classes. Also the identifier rule 5 of `urls`.
#[derive(Default)]
pub(crate) struct TokenScan {
    hex_len: usize,
    hex_digit: bool,
    hex_letter: bool,
    alnum: usize,
    switches: usize,
    /// The class of the previous byte if it was a letter or digit: 1 lower, 2 upper, 3 digit.
    prev: u8,
}

impl TokenScan {
    /// Takes the next byte; true when the run it ends was a token.
    pub(crate) fn push(&mut self, b: u8) -> bool {
        if b.is_ascii_hexdigit() {
            self.hex_len += 1;
            self.hex_digit |= b.is_ascii_digit();
            self.hex_letter |= b.is_ascii_alphabetic();
        } else {
            if self.hex_len >= 16 && self.hex_digit && self.hex_letter {
                return true;
            }
            (self.hex_len, self.hex_digit, self.hex_letter) = (0, false, false);
        }
        let class = match b {
            b'a'..=b'z' => 1,
            b'A'..=b'Z' => 2,
            b'0'..=b'9' => 3,
            // Separators inside base64url and base64 tokens continue the run.
            b'-' | b'_' | b'+' | b'=' => {
                self.prev = 0;
                return false;
            }
            _ => {
                let (n, t) = (self.alnum, self.switches);
                (self.alnum, self.switches, self.prev) = (0, 0, 0);
                return (n >= 10 && 2 * t >= n) || (n >= 16 && 4 * t >= n);
            }
        };
        self.alnum += 1;
        // Upper to lower case is how words start, not a sign of randomness.
        if self.prev != 0 && self.prev != class && !(self.prev == 2 && class == 1) {
            self.switches += 1;
        }
        self.prev = class;
        false
    }
}

pub(super) fn find_ips(s: &str, spans: &mut Vec<Span>) {
    let b = s.as_bytes();
    let (mut dots, mut colons) = (0, 0);
    for &c in b {
        dots += usize::from(c == b'.');
        colons += usize::from(c == b':');
    }
    if colons >= 2 {
        find_ipv6(s, spans);
    }
    if dots >= 3 {
        let mut v4 = Vec::new();
        find_ipv4(b, &mut v4);
        if !v4.is_empty() {
            merge(spans, v4);
        }
    }
}

/// Adds `more` to `spans`, keeping them ordered and dropping any that overlap one already there.
fn merge(spans: &mut Vec<Span>, more: Vec<Span>) {
    for span in more {
        if !spans.iter().any(|&(start, end, _)| span.0 < end && start < span.1) {
            spans.push(span);
        }
    }
    spans.sort_unstable_by_key(|span| span.0);
}

fn find_ipv6(s: &str, spans: &mut Vec<Span>) {
    let b = s.as_bytes();
    let is_part = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut i = 0;
    while i < b.len() {
        if !is_part(b[i]) || (i > 0 && is_part(b[i - 1])) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < b.len() && is_part(b[end]) {
            end += 1;
        }
        let run_end = end;
        // `IP:2001:db8::1`: a single leading colon belongs to the text before.
        let mut start = i;
        if b[start] == b':' && b.get(start + 1) != Some(&b':') {
            start += 1;
        }
        let mut glued = start == i && i > 0 && b[i - 1].is_ascii_alphanumeric();
        // `device:2001:db8::1`: the label's last letters are hex digits; the address starts
        // after its single colon (not `std::vector`'s double one).
        if glued
            && let Some(colon) = s[start..end].find(':').map(|c| start + c)
            && b.get(colon + 1).is_some_and(u8::is_ascii_hexdigit)
        {
            (start, glued) = (colon + 1, false);
        }
        while end > start && b[end - 1] == b'.' {
            end -= 1;
        }
        if end > start + 1 && b[end - 1] == b':' && b[end - 2] != b':' {
            end -= 1;
        }
        let candidate = &s[start..end];
        let after_ok = !b.get(run_end).is_some_and(u8::is_ascii_alphanumeric);
        if !glued
            && after_ok
            && candidate.bytes().filter(|&c| c == b':').count() >= 2
            && candidate.bytes().any(|c| c.is_ascii_hexdigit())
            && candidate.parse::<Ipv6Addr>().is_ok()
        {
            spans.push((start, end, Kind::Ip));
        }
        i = run_end;
    }
}

fn find_ipv4(b: &[u8], spans: &mut Vec<Span>) {
    let mut i = 0;
    while i < b.len() {
        // Not inside a number, nor a version after a product name (`Chrome/124.0.0.0`).
        let after = |c: u8, before: fn(&u8) -> bool| i > 1 && b[i - 1] == c && before(&b[i - 2]);
        let inside = (i > 0 && b[i - 1].is_ascii_digit()) || after(b'.', u8::is_ascii_digit);
        let starts = b[i].is_ascii_digit() && !inside && !after(b'/', u8::is_ascii_alphabetic);
        if !starts {
            i += 1;
            continue;
        }
        match ipv4_at(b, i) {
            Some(end) => {
                spans.push((i, end, Kind::Ip));
                i = end;
            }
            None => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
    }
}

/// The end of the IPv4 address starting at `i`, if there is one.
fn ipv4_at(b: &[u8], mut i: usize) -> Option<usize> {
    for octet in 0..4 {
        if octet > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 4 {
            i += 1;
        }
        let digits = &b[start..i];
        if digits.is_empty() || digits.len() > 3 || digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) > 255
        {
            return None;
        }
    }
    let continues = b.get(i).is_some_and(u8::is_ascii_digit)
        || (b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit));
    (!continues).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;

    #[test]
    fn removes_tokens() {
        check(
            "auth eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U failed",
            "auth [token] failed",
        );
        check("session=Zx8kQ2vLp9Tm4Rw7Yb3N", "session=[token]");
        check("trace 4bf92f3577b34da6a3ce929d0e0e4736 end", "trace [token] end");
        check("req 550e8400-e29b-41d4-a716-446655440000 failed", "req [id] failed");
        check("tokenZx8kQ2vLp9Tm4Rw7Yb3N", "[token]");
        check("key=Q29kZVNhbXBsZUtleTIwMjY0OTk4MjE=", "key=[token]");
    }

    #[test]
    fn removes_ip_addresses() {
        check("from 10.0.0.15 to 192.168.100.200", "from [ip] to [ip]");
        check("IP:2001:db8::1, ::1 and [fe80::1ff:fe23:4567:890a]:443", "IP:[ip], [ip] and [[ip]]:443");
        check("::ffff:192.0.2.1", "[ip]");
        check("адрес2001:db8:85a3::8a2e:370:7334ошибка", "адрес[ip]ошибка");
        check("device:2001:db8::1 and Source:2a02:6b8::1", "device:[ip] and Source:[ip]");
        check("see http://10.0.0.5/app", "see http://[ip]/app");
    }

    #[test]
    fn keeps_versions_words_and_times() {
        for keep in [
            "Chrome 124.0.6367.91",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.0.0 Safari/537.36 YaBrowser/24.1.0.0",
            "std::vector<int>",
            "12:30:45",
            "at app.js:12:34",
            "getElementById",
            "ERR_CONNECTION_REFUSED",
            "main.3f2a1b9c.js",
            "windows10-update-version22h2",
            "node_modules/react-dom/cjs/react-dom.production.min.js",
            "ResizeObserver loop completed with undelivered notifications.",
            "00:1A:2B:3C:4D:5E",
            "checkout_delivery_form_submitted",
            "checkout_Step2_PaymentConfirmed",
            "ResizeObserverLoopLimitExceeded",
        ] {
            check(keep, keep);
        }
    }
}
