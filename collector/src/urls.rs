//! URL hygiene (privacy-model.md section 4), first version: fragments dropped, the query
//! reduced to allow-listed keys, identifier-like path segments replaced by `:id`. Pure.

use url::Url;

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

const MAX_PATH_CHARS: usize = 1_024;
const MAX_QUERY_VALUE_CHARS: usize = 200;
const ID: &str = ":id";

/// Reduces a page address. `allowed` lists the non-utm query keys this site keeps.
pub fn page(url: &Url, allowed: &[String]) -> Page {
    let mut page = Page { host: host_of(url), path: normalise_path(url.path()), ..Page::default() };
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, value) in url.query_pairs() {
        let value = clean_query_value(&value);
        match key.as_ref() {
            "utm_source" => page.utm.source = value,
            "utm_medium" => page.utm.medium = value,
            "utm_campaign" => page.utm.campaign = value,
            "utm_term" => page.utm.term = value,
            "utm_content" => page.utm.content = value,
            k if allowed.iter().any(|a| a == k) => kept.push((key.into_owned(), value)),
            _ => {}
        }
    }
    kept.sort();
    kept.dedup_by(|a, b| a.0 == b.0);
    page.query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish();
    page
}

/// Reduces a referrer: host and normalised path, never its query or fragment.
pub fn referrer(url: &Url) -> Referrer {
    Referrer { host: host_of(url), path: normalise_path(url.path()) }
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase()
}

fn clean_query_value(value: &str) -> String {
    if looks_like_identifier(value) {
        return ID.to_owned();
    }
    value.chars().take(MAX_QUERY_VALUE_CHARS).collect()
}

/// Decodes each segment, replaces identifier-like ones by `:id`, drops empty segments and the
/// trailing slash. Segments are stored decoded, so Cyrillic paths stay readable.
pub fn normalise_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(MAX_PATH_CHARS));
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_decode(segment);
        out.push('/');
        if looks_like_identifier(&decoded) {
            out.push_str(ID);
        } else {
            out.push_str(&decoded);
        }
        if out.len() > MAX_PATH_CHARS {
            let end = (0..=MAX_PATH_CHARS).rev().find(|i| out.is_char_boundary(*i)).unwrap_or(0);
            out.truncate(end);
            break;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// True for a segment that probably identifies a person or their documents: e-mail
/// addresses, phone numbers, runs of 5+ digits (account, contract, meter, invoice numbers),
/// UUIDs, and long hex or base64 tokens.
pub fn looks_like_identifier(segment: &str) -> bool {
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    segment.contains('@')
        || longest_digit_run(segment) >= 5
        || (digits >= 7 && segment.bytes().all(|b| b.is_ascii_digit() || b"+-() .".contains(&b)))
        || contains_uuid(segment)
        || is_token(segment, digits)
}

fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0)
}

fn contains_uuid(s: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let bytes = s.as_bytes();
    (0..bytes.len().saturating_sub(35)).any(|start| {
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

/// Hex of 16+ characters with a digit, or a 20+ character base64/base64url run mixing
/// letters and digits with no word separators. Slugs like `how-to-pay-a-bill` stay.
fn is_token(s: &str, digits: usize) -> bool {
    let hex = s.len() >= 16 && digits > 0 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let b64 = s.len() >= 20
        && digits >= 2
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+/=".contains(&b));
    hex || b64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_path(input: &str, expected: &str) {
        assert_eq!(normalise_path(input), expected, "path {input}");
    }

    #[test]
    fn replaces_identifiers_in_paths() {
        check_path("/", "/");
        check_path("", "/");
        check_path("/accounts/1234567890/bills/", "/accounts/:id/bills");
        check_path("/invoice/INV-2024-000123.pdf", "/invoice/:id");
        check_path("/reports/2024/11", "/reports/2024/11");
        check_path("/user/ivan.petrov@mail.ru/settings", "/user/:id/settings");
        check_path("/contacts/+7-912-345-67-89", "/contacts/:id");
        check_path("/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/orders/:id");
        check_path("/reset/9f86d081884c7d659a2feaa0c55ad015", "/reset/:id");
        check_path("/confirm/eyJhbGciOiJIUzI1NiJ9x9Kq2", "/confirm/:id");
        check_path("/help/how-to-pay-your-electricity-bill", "/help/how-to-pay-your-electricity-bill");
        check_path("/%D0%BB%D0%B8%D1%87%D0%BD%D1%8B%D0%B9-%D0%BA%D0%B0%D0%B1%D0%B8%D0%BD%D0%B5%D1%82", "/личный-кабинет");
        check_path("//double//slash", "/double/slash");
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn keeps_only_allow_listed_query_and_drops_fragment() {
        let p = page(
            &url("https://LK.Example.ru/pay?utm_source=ya&email=a%40b.ru&account=123456&tab=bills#token=abc"),
            &["tab".to_owned()],
        );
        assert_eq!(p.host, "lk.example.ru");
        assert_eq!(p.path, "/pay");
        assert_eq!(p.query, "tab=bills");
        assert_eq!(p.utm.source, "ya");
    }

    #[test]
    fn allow_listed_values_that_look_like_identifiers_are_replaced() {
        let p = page(&url("https://a.ru/?tab=ivan@mail.ru&utm_campaign=12345678"), &["tab".to_owned()]);
        assert_eq!(p.query, "tab=%3Aid");
        assert_eq!(p.utm.campaign, ":id");
    }

    #[test]
    fn referrer_keeps_host_and_path_only() {
        let r = referrer(&url("https://www.google.com/search?q=my+account+123456#x"));
        assert_eq!(r, Referrer { host: "www.google.com".into(), path: "/search".into() });
        assert_eq!(referrer(&url("android-app://com.google.android.gm/")).host, "com.google.android.gm");
    }
}
