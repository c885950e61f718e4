//! Personal data in free text never reaches a stored row (docs/privacy-model.md section 4),
//! through the real path: `from_json` then `Pipeline::process`.
//!
//! 1. Each category a utility's personal-account portal handles (names, postal addresses,
//!    phones, e-mail addresses, INN, SNILS, passports, cards, account numbers, tokens, IP
//!    addresses) is generated in many shapes: separators, letter case, percent-encoded one to
//!    three times, glued to other words, cut by the field's length limit, inside a sentence;
//!    and put into each free-text field: event name, prop key and value, error message, source
//!    and stack, URL path, query and fragment, referrer. No stored string, as stored or
//!    percent-decoded, holds any of its parts ([`Secret::parts`]; digits are compared without
//!    separators, seven in a row).
//! 2. A table of ordinary strings (versions, dates, prices, counts, status codes, common
//!    JavaScript errors, product and page names) is stored exactly as sent.
//!
//! Cases: proptest's default of 256 per category. Failures are not persisted: a failing case
//! is printed, shrunk.

mod common;

use beacon::{FreeText, Outcome, RequestFacts};
use common::{percent_decoded, process, stored_strings};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::{prelude::*, sample::select};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Secrets and how they are checked.
// ---------------------------------------------------------------------------------------------

/// One piece of personal data as written, and the parts of it that must not survive.
#[derive(Debug, Clone)]
struct Secret {
    text: String,
    /// Words compared in any case (names, streets, local parts, tokens, addresses).
    words: Vec<String>,
    /// Digits compared without separators: no run of [`DIGIT_WINDOW`] of them may survive.
    digits: String,
}

/// Digits in a row of a secret that may not survive anywhere in a field.
const DIGIT_WINDOW: usize = 7;

impl Secret {
    fn words(text: String, words: Vec<String>) -> Self {
        Secret { text, words, digits: String::new() }
    }

    fn digits(text: String) -> Self {
        let digits = text.chars().filter(char::is_ascii_digit).collect();
        Secret { text, words: Vec::new(), digits }
    }

    /// The part of `stored` that is this secret, if any.
    fn found_in(&self, stored: &str) -> Option<String> {
        let lower = stored.to_lowercase();
        if let Some(word) = self.words.iter().find(|w| lower.contains(&w.to_lowercase())) {
            return Some(word.clone());
        }
        let stored_digits: String = stored.chars().filter(char::is_ascii_digit).collect();
        let window = DIGIT_WINDOW.min(self.digits.len());
        if window == 0 {
            return None;
        }
        (0..=self.digits.len() - window)
            .map(|i| &self.digits[i..i + window])
            .find(|w| stored_digits.contains(w))
            .map(str::to_owned)
    }
}

/// Every stored string that comes from free text or a URL: User-Agent fields, GeoIP names and
/// the site's own host are not the beacon's text.
fn from_beacon_text(field: &str) -> bool {
    let name = field.split_once('.').map_or(field, |(_, n)| n);
    !matches!(
        name,
        "site"
            | "host"
            | "network"
            | "as_org"
            | "country"
            | "region"
            | "city"
            | "user_agent"
            | "browser"
            | "browser_version"
            | "os"
            | "os_version"
            | "device"
            | "lang"
    )
}

// ---------------------------------------------------------------------------------------------
// Generators, one per category, each in several written forms.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum LetterCase {
    AsWritten,
    Upper,
    Lower,
}

fn letter_case() -> impl Strategy<Value = LetterCase> {
    select(vec![LetterCase::AsWritten, LetterCase::Upper, LetterCase::Lower])
}

fn apply_case(s: &str, case: LetterCase) -> String {
    match case {
        LetterCase::AsWritten => s.to_owned(),
        LetterCase::Upper => s.to_uppercase(),
        LetterCase::Lower => s.to_lowercase(),
    }
}

/// Surname, first name and patronymic, declined alike: nominative, genitive, dative.
const PEOPLE: [[&str; 3]; 14] = [
    ["Иванов", "Иван", "Иванович"],
    ["Смирнова", "Анна", "Сергеевна"],
    ["Кузнецов", "Пётр", "Алексеевич"],
    ["Попова", "Мария", "Николаевна"],
    ["Соколов", "Дмитрий", "Андреевич"],
    ["Лебедева", "Елена", "Михайловна"],
    ["Шевченко", "Николай", "Ильич"],
    ["Достоевская", "Ольга", "Петровна"],
    ["Ковальчук", "Сергей", "Дмитриевич"],
    ["Петров-Водкин", "Кузьма", "Сергеевич"],
    ["Иванова", "Татьяна", "Ильинична"],
    ["Иванову", "Ивану", "Ивановичу"],
    ["Смирновой", "Анны", "Сергеевны"],
    ["Кузнецова", "Петра", "Алексеевича"],
];

fn name() -> impl Strategy<Value = Secret> {
    (select(PEOPLE.to_vec()), 0..9usize, select(vec![" ", "  ", "\u{a0}", "+", "_"]), letter_case()).prop_map(
        |([surname, first, patronymic], form, sep, case)| {
            let i1 = first.chars().next().unwrap_or('И');
            let i2 = patronymic.chars().next().unwrap_or('И');
            let nominative = !surname.ends_with('у') && !surname.ends_with("ой");
            // Forms with one initial need a surname ending as surnames do; lower-case initials
            // need both (a lone `и.` is a word).
            let form = match (form, case) {
                (7 | 8, LetterCase::Lower) => 3,
                (7 | 8, _) if !nominative => 3,
                _ => form,
            };
            let text = match form {
                0 => format!("{surname}{sep}{first}{sep}{patronymic}"),
                1 => format!("{first}{sep}{patronymic}{sep}{surname}"),
                2 => format!("{first}{sep}{patronymic}"),
                3 => format!("{surname} {i1}. {i2}."),
                4 => format!("{surname} {i1}.{i2}."),
                5 => format!("{i1}.{i2}. {surname}"),
                6 => format!("{i1}. {i2}. {surname}"),
                7 => format!("{surname} {i1}."),
                _ => format!("{i1}. {surname}"),
            };
            let words = match form {
                0 | 1 => vec![surname, first, patronymic],
                2 => vec![first, patronymic],
                _ => vec![surname],
            };
            let text = apply_case(&text, case);
            Secret::words(text, words.into_iter().map(|w| apply_case(w, case)).collect())
        },
    )
}

fn address() -> impl Strategy<Value = Secret> {
    let street = select(vec![
        ("ул. ", "Ленина", ""),
        ("улица ", "Тверская", ""),
        ("пр-т ", "Мира", ""),
        ("проспект ", "Вернадского", ""),
        ("пер. ", "Столярный", ""),
        ("наб. реки ", "Фонтанки", ""),
        ("б-р ", "Рокоссовского", ""),
        ("ул. ", "Маршала Жукова", ""),
        ("", "Ленинградское", " ш."),
        ("", "Садовая", " ул."),
        ("ул.", "Гагарина", ""),
    ]);
    let city = select(vec!["", "г. Москва", "г.Москва", "Москва", "Санкт-Петербург", "г. Нижний Новгород"]);
    let house = select(vec!["д. 5", "д.5", "дом 12", "д. 12а", "д. 5/1", "7"]);
    let building = select(vec!["", "корп. 2", "к. 3", "стр. 1"]);
    let flat = select(vec!["", "кв. 12", "квартира 7", "офис 305", "кв.45"]);
    let joiner = select(vec![", ", ",", " "]);
    (any::<bool>(), 101_000u32..700_000, city, street, house, building, flat, joiner, letter_case()).prop_map(
        |(postcode, code, city, (before, street, after), house, building, flat, joiner, case)| {
            let street_part = format!("{before}{street}{after}");
            let parts: Vec<String> = [
                if postcode { code.to_string() } else { String::new() },
                city.to_owned(),
                street_part,
                house.to_owned(),
                building.to_owned(),
                flat.to_owned(),
            ]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
            let text = apply_case(&parts.join(joiner), case);
            let mut words: Vec<String> = street.split(' ').map(|w| apply_case(w, case)).collect();
            words.extend(
                [house, flat].into_iter().filter(|p| p.len() > 1 && p.contains(' ')).map(|p| apply_case(p, case)),
            );
            let mut secret = Secret::words(text, words);
            if postcode {
                secret.digits = code.to_string();
            }
            secret
        },
    )
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0u8..10, n).prop_map(|d| d.into_iter().map(|x| char::from(b'0' + x)).collect())
}

fn phone() -> impl Strategy<Value = Secret> {
    (digits(7), select(vec!["912", "926", "903", "495", "812", "343"]), 0..12usize).prop_map(|(d, code, form)| {
        let (a, b, c) = (&d[..3], &d[3..5], &d[5..7]);
        let text = match form {
            0 => format!("+7 ({code}) {a}-{b}-{c}"),
            1 => format!("+7 {code} {a} {b} {c}"),
            2 => format!("+7{code}{a}{b}{c}"),
            3 => format!("8 ({code}) {a}-{b}-{c}"),
            4 => format!("8-{code}-{a}-{b}-{c}"),
            5 => format!("8{code}{a}{b}{c}"),
            6 => format!("({code}) {a}-{b}-{c}"),
            7 => format!("+7({code}){a}{b}{c}"),
            8 => format!("+44 20 {}{} {}", &d[..2], &d[2..4], &d[3..7]),
            9 => format!("+1 (415) {a}-{b}{c}"),
            10 => format!("+380 44 {a} {b}{c}"),
            _ => format!("8\u{a0}{code}\u{a0}{a}\u{a0}{b}\u{a0}{c}"),
        };
        Secret::digits(text)
    })
}

fn email() -> impl Strategy<Value = Secret> {
    let local = select(vec!["ivan.petrov", "i.ivanov+lk", "petrova_anna", "user2024", "иван.петров", "Anna-Smirnova"]);
    let domain = select(vec![
        "mail.ru",
        "yandex.ru",
        "gmail.com",
        "почта.рф",
        "xn--80a1acny.xn--p1ai",
        "corp.example.com",
        "mail.example.co.uk",
        "электросбыт.рус",
    ]);
    (local, domain, letter_case(), any::<bool>()).prop_map(|(local, domain, case, encoded_at)| {
        let at = if encoded_at { "%40" } else { "@" };
        let text = apply_case(&format!("{local}{at}{domain}"), case);
        Secret::words(text, vec![apply_case(local, case)])
    })
}

fn luhn_complete(mut d: Vec<u8>) -> String {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &x)| {
            let x = u32::from(x);
            if k % 2 == 0 { if x * 2 > 9 { x * 2 - 9 } else { x * 2 } } else { x }
        })
        .sum();
    d.push(((10 - sum % 10) % 10) as u8);
    d.into_iter().map(|x| char::from(b'0' + x)).collect()
}

fn card() -> impl Strategy<Value = Secret> {
    let brand =
        select(vec![(vec![4u8], 16), (vec![5, 5], 16), (vec![2, 2, 0, 0], 16), (vec![3, 7], 15), (vec![4], 19)]);
    (brand, prop::collection::vec(0u8..10, 18), select(vec![" ", "-", "", ".", "\u{a0}"])).prop_map(
        |((prefix, len), rest, sep)| {
            let mut d = prefix.clone();
            d.extend(&rest[..len - 1 - prefix.len()]);
            let number = luhn_complete(d);
            let groups: Vec<&str> = match len {
                15 => vec![&number[..4], &number[4..10], &number[10..]],
                19 => vec![&number[..4], &number[4..8], &number[8..12], &number[12..16], &number[16..]],
                _ => vec![&number[..4], &number[4..8], &number[8..12], &number[12..]],
            };
            Secret::digits(groups.join(sep))
        },
    )
}

fn inn_checksum(d: &[u8], weights: &[u32]) -> u8 {
    (weights.iter().zip(d).map(|(w, &x)| w * u32::from(x)).sum::<u32>() % 11 % 10) as u8
}

fn national_id() -> impl Strategy<Value = Secret> {
    (prop::collection::vec(0u8..10, 11), 0..11usize).prop_map(|(d, form)| {
        let s = |d: &[u8]| d.iter().map(|&x| char::from(b'0' + x)).collect::<String>();
        let text = match form {
            // INN of a company (10 digits) and of a person (12).
            0 | 1 => {
                let mut n = d[..9].to_vec();
                n.push(inn_checksum(&n, &[2, 4, 10, 3, 5, 9, 4, 6, 8]));
                if form == 0 { format!("ИНН {}", s(&n)) } else { format!("{} {}", s(&n[..4]), s(&n[4..])) }
            }
            2 | 3 => {
                let mut n = d[..10].to_vec();
                n.push(inn_checksum(&n, &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]));
                n.push(inn_checksum(&n, &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]));
                if form == 2 { s(&n) } else { format!("инн:{}", s(&n)) }
            }
            // SNILS.
            4..=6 => {
                let mut n = d[..9].to_vec();
                n[0] = n[0].max(1);
                let sum: u32 = n.iter().enumerate().map(|(k, &x)| u32::from(x) * (9 - k as u32)).sum();
                let control = match sum {
                    0..=99 => sum,
                    100 | 101 => 0,
                    _ => sum % 101 % 100,
                };
                let c = format!("{control:02}");
                match form {
                    4 => format!("{}-{}-{} {c}", s(&n[..3]), s(&n[3..6]), s(&n[6..9])),
                    5 => format!("{} {} {} {c}", s(&n[..3]), s(&n[3..6]), s(&n[6..9])),
                    _ => format!("{}{c}", s(&n)),
                }
            }
            // Passport series and number.
            7 => format!("{} {}", s(&d[..4]), s(&d[4..10])),
            8 => format!("{} {} {}", s(&d[..2]), s(&d[2..4]), s(&d[4..10])),
            9 => format!("{} № {}", s(&d[..4]), s(&d[4..10])),
            _ => format!("паспорт {}{}", s(&d[..4]), s(&d[4..10])),
        };
        Secret::digits(text)
    })
}

fn account_number() -> impl Strategy<Value = Secret> {
    let keyword =
        select(vec!["л/с ", "ЛС", "лицевой счёт № ", "Лицевой счет: ", "договор № ", "account ", "№", "счёт "]);
    (keyword, 5..21usize, digits(20), select(vec!["", "-", "/"])).prop_map(|(keyword, len, d, sep)| {
        let number = &d[..len];
        // Contract numbers are often written in parts.
        let written = if len >= 8 && !sep.is_empty() {
            format!("{}{sep}{}", &number[..3], &number[3..])
        } else {
            number.to_owned()
        };
        let mut secret = Secret::digits(format!("{keyword}{written}"));
        secret.digits = number.to_owned();
        secret
    })
}

fn token() -> impl Strategy<Value = Secret> {
    let base64url = "[A-Za-z0-9_-]{24,48}";
    prop_oneof![
        (proptest::string::string_regex(base64url).unwrap(), proptest::string::string_regex(base64url).unwrap())
            .prop_map(|(payload, signature)| format!("eyJhbGciOiJIUzI1NiJ9.{payload}.{signature}")),
        proptest::string::string_regex("[0-9a-f]{32,64}").unwrap().prop_filter("a digit and a letter", |h| {
            h.bytes().any(|b| b.is_ascii_digit()) && h.bytes().any(|b| b.is_ascii_alphabetic())
        }),
        proptest::string::string_regex("[A-Za-z0-9]{24,40}").unwrap(),
        (any::<u128>()).prop_map(|u| {
            let h = format!("{u:032x}");
            format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
        }),
    ]
    .prop_map(|token| {
        // Any 12 characters of it in a row may not survive.
        let words = token
            .as_bytes()
            .chunks(12)
            .filter(|c| c.len() == 12)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        Secret::words(token, words)
    })
}

fn ip_address() -> impl Strategy<Value = Secret> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        any::<[u8; 4]>().prop_map(|o| format!("::ffff:{}", std::net::Ipv4Addr::from(o))),
    ]
    .prop_filter("not a placeholder-like address", |ip| ip != "::" && ip.len() > 4)
    .prop_map(|ip| Secret::words(ip.clone(), vec![ip]))
}

// ---------------------------------------------------------------------------------------------
// Shapes and fields.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Shape {
    /// Text right before and after the secret, with no space: glued to other words.
    glue: (&'static str, &'static str),
    /// Sentence words around it, with spaces.
    sentence: (&'static str, &'static str),
    /// Percent-encoded this many times (0 to 3).
    encodings: usize,
    /// Placed where the field's length limit cuts through it.
    at_limit: bool,
}

fn shape(glue: Vec<(&'static str, &'static str)>) -> impl Strategy<Value = Shape> {
    let sentence =
        select(vec![("", ""), ("Ошибка оплаты:", "повторите позже"), ("error for", "failed"), ("Клиент", "")]);
    (select(glue), sentence, 0..=3usize, prop::bool::weighted(0.2))
        .prop_map(|(glue, sentence, encodings, at_limit)| Shape { glue, sentence, encodings, at_limit })
}

/// Glue that any category may take: punctuation and words in either script.
const GLUE: [(&str, &str); 7] =
    [("", ""), ("x", "y"), ("ФИО:", ";"), ("(", ")"), ("«", "»"), ("клиент", "Оплачено"), ("id=", "&next")];
/// Postal addresses: an abbreviation glued after a lower-case Russian word cannot be told from
/// that word's own ending (`клиентпер.` and `Супер.`), by a reader either; glued to capitals,
/// Latin letters or punctuation it can.
const ADDRESS_GLUE: [(&str, &str); 7] =
    [("", ""), ("x", "y"), ("ФИО:", ";"), ("(", ")"), ("«", "»"), ("клиентАдрес:", "Оплачено"), ("id=", "&next")];
/// IPv6 addresses glued to Latin letters or digits are not addresses to a reader either.
const IP_GLUE: [(&str, &str); 5] = [("", ""), ("ip=", ";"), ("IP:", ""), ("(", ")"), ("адрес", "ошибка")];

impl Shape {
    fn render(&self, secret: &Secret, limit: Option<usize>) -> String {
        let mut s = format!("{}{}{}", self.glue.0, secret.text, self.glue.1);
        for _ in 0..self.encodings {
            s = utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string();
        }
        let (before, after) = self.sentence;
        let mut text = [before, &s, after].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ");
        if let (true, Some(limit)) = (self.at_limit, limit) {
            // The limit falls in the middle of the secret.
            let filler = limit.saturating_sub(s.chars().count() / 2 + before.chars().count() + 1);
            text = format!("{} {text}", "ab ".repeat(filler / 3 + 1).chars().take(filler).collect::<String>());
        }
        text
    }
}

#[derive(Debug, Clone, Copy)]
enum Field {
    EventName,
    PropKey,
    PropValue,
    ErrorMessage,
    ErrorSource,
    ErrorStack,
    UrlPath,
    UrlQuery,
    UtmTerm,
    UrlFragment,
    ReferrerPath,
}

const FIELDS: [Field; 11] = [
    Field::EventName,
    Field::PropKey,
    Field::PropValue,
    Field::ErrorMessage,
    Field::ErrorSource,
    Field::ErrorStack,
    Field::UrlPath,
    Field::UrlQuery,
    Field::UtmTerm,
    Field::UrlFragment,
    Field::ReferrerPath,
];

impl Field {
    fn limit(self) -> Option<usize> {
        let field = match self {
            Field::EventName => FreeText::Name,
            Field::PropKey => FreeText::PropKey,
            Field::PropValue => FreeText::PropValue,
            Field::ErrorMessage => FreeText::ErrorMessage,
            Field::ErrorSource => FreeText::ErrorSource,
            Field::ErrorStack => FreeText::ErrorStack,
            _ => return None,
        };
        Some(field.max_chars())
    }

    /// A beacon carrying `text` in this field.
    fn body(self, text: &str) -> Vec<u8> {
        let in_url = || utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        let page = "https://lk.a.ru/";
        let body = match self {
            Field::EventName => json!({"site": "s", "type": "event", "url": page, "name": text}),
            Field::PropKey => json!({"site": "s", "type": "event", "url": page, "name": "pay", "props": {text: "1"}}),
            Field::PropValue => json!({"site": "s", "type": "event", "url": page, "name": "pay", "props": {"k": text}}),
            Field::ErrorMessage => json!({"site": "s", "type": "error", "url": page, "err": {"msg": text}}),
            Field::ErrorSource => json!({"site": "s", "type": "error", "url": page, "err": {"msg": "x", "src": text}}),
            Field::ErrorStack => json!({"site": "s", "type": "error", "url": page, "err": {"msg": "x", "stack": text}}),
            Field::UrlPath => json!({"site": "s", "url": format!("{page}lk/{}/bills", in_url())}),
            Field::UrlQuery => json!({"site": "s", "url": format!("{page}?tab={}", in_url())}),
            Field::UtmTerm => json!({"site": "s", "url": format!("{page}?utm_term={}", in_url())}),
            Field::UrlFragment => json!({"site": "s", "url": format!("{page}#{}", in_url())}),
            Field::ReferrerPath => json!({"site": "s", "url": page, "ref": format!("https://b.ru/r/{}", in_url())}),
        };
        body.to_string().into_bytes()
    }
}

fn facts() -> RequestFacts<'static> {
    RequestFacts {
        ip: "203.0.113.9".parse().expect("an address"),
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        cookie: None,
        do_not_track: false,
        received_at: 1_764_000_000,
        post_without_origin: false,
    }
}

/// Stores the beacon and fails if any stored string holds part of `secret`.
fn assert_scrubbed(secret: &Secret, shape: &Shape, field: Field) -> Result<(), TestCaseError> {
    let text = shape.render(secret, field.limit());
    let body = field.body(&text);
    let Some(Outcome::Store { rows, .. }) = process(&body, facts(), 0) else {
        return Err(TestCaseError::fail(format!("not stored: {}", String::from_utf8_lossy(&body))));
    };
    let (audience, troubleshooting) = rows.into_parts();
    for (name, stored) in stored_strings(&audience, &troubleshooting) {
        if !from_beacon_text(&name) {
            continue;
        }
        let mut decoded = stored.to_owned();
        for _ in 0..=shape.encodings + 1 {
            if let Some(part) = secret.found_in(&decoded) {
                return Err(TestCaseError::fail(format!(
                    "{part:?} of {:?} survives in {name} = {stored:?} ({field:?}, sent {text:?})",
                    secret.text
                )));
            }
            decoded = percent_decoded(&decoded);
        }
    }
    Ok(())
}

fn field() -> impl Strategy<Value = Field> {
    select(FIELDS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn names_never_reach_storage(secret in name(), shape in shape(GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn postal_addresses_never_reach_storage(secret in address(), shape in shape(ADDRESS_GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn phones_never_reach_storage(secret in phone(), shape in shape(GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn emails_never_reach_storage(secret in email(), shape in shape(GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn cards_never_reach_storage(secret in card(), shape in shape(GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn inn_snils_and_passports_never_reach_storage(secret in national_id(), shape in shape(GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn account_and_contract_numbers_never_reach_storage(secret in account_number(), shape in shape(GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn tokens_never_reach_storage(secret in token(), shape in shape(GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }

    #[test]
    fn ip_addresses_never_reach_storage(secret in ip_address(), shape in shape(IP_GLUE.to_vec()), field in field()) {
        assert_scrubbed(&secret, &shape, field)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Ordinary text survives.
// ---------------------------------------------------------------------------------------------

/// Text with no personal data in it, as sites send it: stored exactly as sent.
const ORDINARY: [&str; 64] = [
    "Chrome 124.0.6367.91",
    "Firefox 125.0.3",
    "iOS 17.4.1",
    "v2.14.0-rc.1",
    "build 2026.11.27",
    "27.11.2026",
    "2026-11-27",
    "2026-11-27T15:34:20Z",
    "2026-11-24 10:30:15",
    "15:34",
    "с 9:00 до 18:00",
    "ноябрь 2026",
    "за 2024 г.",
    "1 200,50 ₽",
    "1200.50",
    "12 500 ₽",
    "$19.99",
    "3 товара",
    "Показано 25 из 340",
    "шаг 2 из 5",
    "HTTP 404",
    "HTTP 503 Service Unavailable",
    "Request failed with status code 502",
    "Error 500 502 503 504",
    "TypeError: Cannot read properties of undefined (reading 'x')",
    "TypeError: Cannot read properties of null (reading 'addEventListener')",
    "ReferenceError: foo is not defined",
    "SyntaxError: Unexpected token '<'",
    "TypeError: Failed to fetch",
    "NetworkError when attempting to fetch resource.",
    "ResizeObserver loop completed with undelivered notifications.",
    "Script error.",
    "ChunkLoadError: Loading chunk 345 failed.",
    "Uncaught (in promise) AbortError: The user aborted a request.",
    "Can't find variable: ymaps",
    "Личный кабинет",
    "Передача показаний счётчика",
    "Оплата картой",
    "Тариф «Двухзонный»",
    "Электроэнергия: день/ночь",
    "Счёт за ноябрь",
    "Подключить автоплатёж",
    "Скачать квитанцию PDF",
    "Москва",
    "Санкт-Петербург",
    "iPhone 15 Pro Max 256 ГБ",
    "Windows 10 x64",
    "и т. д.",
    "31.12.2024 10:30",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/91.0.4472.124 Safari/537.36",
    "Chrome/124.0.0.0 YaBrowser/24.1.0.0",
    "Сумма счета: 12 500 ₽",
    "Общая площадь 54 м²",
    "Показания за 1 кв. 2024",
    "Супер. Спасибо за оплату!",
    "Нет данных т.к. сервер недоступен",
    "Ошибка загрузки основной страницы",
    "ДОГОВОР ПУБЛИЧНОЙ ОФЕРТЫ",
    "checkout_delivery_form_submitted",
    "checkout_Step2_PaymentConfirmed",
    "banner@2x.avif",
    "Android 14",
    "Заказ № 1234",
    "Loading chunk 7 failed. (missing: https://lk.example.ru/static/js/7.3f2a1b9c.chunk.js)",
];

#[test]
fn ordinary_text_is_stored_as_sent() {
    let mut changed = Vec::new();
    for text in ORDINARY {
        for field in [Field::EventName, Field::PropValue, Field::ErrorMessage] {
            let Some(Outcome::Store { rows, .. }) = process(&field.body(text), facts(), 0) else {
                panic!("{text:?} in {field:?} was not stored");
            };
            let (audience, troubleshooting) = rows.into_parts();
            let stored = match field {
                Field::EventName => audience.map(|a| a.name),
                Field::PropValue => audience.and_then(|a| a.prop_values.into_iter().next()),
                _ => troubleshooting.map(|t| t.error_message),
            };
            if stored.as_deref() != Some(text) {
                changed.push(format!("{field:?}: {text:?} became {stored:?}"));
            }
        }
    }
    assert!(changed.is_empty(), "ordinary text was changed:\n{}", changed.join("\n"));
}
