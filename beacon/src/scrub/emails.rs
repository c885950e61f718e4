//! E-mail addresses: a local part of letters, digits and `. _ % + -`, then `@` (or `%40`), then
//! a domain of two or more labels whose last is at least two letters. So `ivan.petrov@mail.ru`,
//! `иван@почта.рф` and `ivan@xn--80a1acny.xn--p1ai` go, while `logo@2x.png` (a file extension
//! as the last label), `@media`, and the `name@https://...` of Firefox stack frames stay.

use super::{Kind, Span};

/// Last labels that are file extensions, not top-level domains: `logo@2x.png` is a file.
const FILE_EXTENSIONS: [&str; 24] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "bmp", "heic", "tif", "tiff", "ico", "mp4", "webm", "js",
    "mjs", "css", "html", "htm", "json", "map", "woff", "woff2", "pdf",
];

/// The longest local part and domain of an address (RFC 5321); they bound the search too.
const MAX_LOCAL_CHARS: usize = 64;
const MAX_DOMAIN_CHARS: usize = 255;

pub(super) fn find(s: &str, spans: &mut Vec<Span>) {
    if !s.bytes().any(|b| b == b'@' || b == b'%') {
        return;
    }
    let mut done = 0; // end of the last address found
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
        let local_start = at - local.len();
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
        done = from + domain.len();
        spans.push((local_start, done, Kind::Email));
        from = done;
    }
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
        && (last.chars().all(char::is_alphabetic) || is_punycode(last))
        && !FILE_EXTENSIONS.iter().any(|e| last.eq_ignore_ascii_case(e))
}

/// An IDN top-level domain in its ASCII form: `xn--p1ai` is `рф` (text glued after it
/// continues it).
fn is_punycode(label: &str) -> bool {
    label.len() > 4
        && label.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        && label[4..].chars().all(|c| c.is_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;

    #[test]
    fn removes_addresses() {
        check("ivan.petrov@mail.ru", "[email]");
        check("Письмо для Ivan.Petrov+lk@Yandex.RU отправлено.", "Письмо для [email] отправлено.");
        check("иван@почта.рф", "[email]");
        check("ivan@xn--80a1acny.xn--p1ai", "[email]");
        check("a@b.ru, c@d.com", "[email], [email]");
        check("89123456789@mail.ru", "[email]");
        check("ФИО:ivan@mail.ru;", "ФИО:[email];");
    }

    #[test]
    fn keeps_what_is_not_an_address() {
        for keep in
            ["logo@2x.png", "@media print", "onClick@https://lk.example.ru/app.js", "user@localhost", "a@b", "@", "%40"]
        {
            check(keep, keep);
        }
    }
}
