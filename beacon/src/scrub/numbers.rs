//! Numbers that identify a person. A number is a run of digit groups joined by short
//! separators (spaces, no-break spaces, `- . ( ) / _ №`), starting at a digit, `+` or `(` that no
//! digit precedes, nor a number a `.`, `,` or `-` would join it to (`0.8912345678` is a
//! fraction). Letters around it do not matter: `ЛС1234567890` and `id_89123456789` go too. The
//! first rule that matches wins:
//!
//! 1. **Card** `[card]`: 13 to 19 digits passing the Luhn check, in a row or in groups as
//!    cards are printed (4 digits, then groups of 3 to 6) joined by one space, dash, dot or
//!    underscore.
//! 2. **Passport** `[id]`: series and number, `4510 123456`, `45 10 123456`, `4510 № 123456`.
//! 3. **SNILS** `[id]`: `123-456-789 64`, with its checksum.
//! 4. **INN** `[id]`: 10 or 12 digits in groups of 3 or more (`7707 083893`), with its checksum.
//! 5. **Phone** `[phone]`: digit groups joined by at most three of ` - . ( )` (dots only if all
//!    are dots), every group after the first of two digits or more. With a leading `+`,
//!    10 to 15 digits (E.164; exactly 11 after `+7`); without, Russian shapes: 11 digits
//!    starting with 7 or 8 (`8 (912) 345-67-89`), or 10 starting with 3, 4, 8 or 9
//!    (`(495) 123-45-67`: Russian area and mobile codes start with those). The longest such
//!    prefix is the phone.
//! 6. **Long run** `[id]`: 10 or more digits in a row, whatever they are: account numbers
//!    (лицевой счёт), INNs, SNILS, card and bank account numbers, order numbers, Unix times.
//! 7. **After a keyword** `[id]`: 5 or more digits (groups joined by `- / .`, or by a space
//!    before a group of 3 or more) right after `№`, `л/с`, `счёт`, `договор`, `ИНН`, `СНИЛС`,
//!    `паспорт`, `account`, `contract`, `id` and the like ([`KEYWORDS`]), unless a currency
//!    follows (`счёт: 12 500 ₽`).
//!
//! A comma between numbers is a decimal point only before one or two digits that nothing
//! continues (`1 200,50`), so `89123456789,89123456788` is two phones. Line numbers, `HTTP
//! 503`, years, counts, prices, dates and times (`2026-11-24 10:30:15`, `31.12.2024 10:30`),
//! decimals and versions (`Chrome/91.0.4472.124`) stay.

use super::{Kind, Span};

/// Fewest digits in a number recognised by a keyword before it.
const MIN_KEYWORD_DIGITS: usize = 5;
/// Fewest digits in a row that are an identifier by themselves.
const MIN_RUN_DIGITS: usize = 10;
const MIN_PHONE_DIGITS: usize = 10;
const MAX_PHONE_DIGITS: usize = 15;
/// Groups and separator bytes looked at; nothing we look for is longer.
const MAX_GROUPS: usize = 12;
const MAX_SEPARATOR_BYTES: usize = 5;

/// Words after which a number of [`MIN_KEYWORD_DIGITS`] or more is an identifier, lower case,
/// whole words (`Android 12345` is no id).
pub const KEYWORDS: [&str; 23] = [
    "л/с",
    "л.с",
    "лс",
    "счет",
    "счёт",
    "счета",
    "счёта",
    "сч",
    "договор",
    "договора",
    "договору",
    "дог",
    "инн",
    "снилс",
    "паспорт",
    "серия",
    "номер",
    "ид",
    "id",
    "account",
    "acct",
    "contract",
    "inn",
];

const NBSP: &[u8] = "\u{a0}".as_bytes();
const NUMERO: &[u8] = "№".as_bytes();

pub(super) fn find(s: &str, spans: &mut Vec<Span>) {
    let b = s.as_bytes();
    if b.iter().filter(|c| c.is_ascii_digit()).count() < MIN_KEYWORD_DIGITS {
        return;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if (c.is_ascii_digit() || c == b'+' || c == b'(')
            && starts_number(b, i)
            && let Some((end, kind)) = number_at(s, i)
        {
            spans.push((i, end, kind));
            i = end;
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
}

/// No digit right before `i`, and no number a `.`, `,` or `-` would join it to.
fn starts_number(b: &[u8], i: usize) -> bool {
    match i.checked_sub(1).map(|p| b[p]) {
        None => true,
        Some(p) if p.is_ascii_digit() || p == b'+' => false,
        // After a digit and a comma, a number of a list starts (`89123456789,89123456788`),
        // unless it is a decimal part (`1 200,50`).
        Some(b',') => !(i >= 2 && b[i - 2].is_ascii_digit() && is_decimal_part(b, i)),
        Some(b'.' | b'-') => !(i >= 2 && b[i - 2].is_ascii_digit()),
        // `Chrome/91.0.4472.124`: a version after a product name.
        Some(b'/') => !(i >= 2 && b[i - 2].is_ascii_alphabetic()),
        Some(_) => true,
    }
}

fn digit_run(b: &[u8], i: usize) -> usize {
    b[i..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// A decimal part at `i`, after a comma: one or two digits that no other group continues
/// (`1 200,50 ₽`; not the `12/28` of a card's expiry, nor the `8 912 ...` of a next phone).
fn is_decimal_part(b: &[u8], i: usize) -> bool {
    let n = digit_run(b, i);
    let next = |k: usize| b.get(i + n + k).copied();
    (1..=2).contains(&n)
        && !next(0).is_some_and(|c| matches!(c, b'/' | b'.' | b':' | b'-'))
        && !(next(0) == Some(b' ') && next(1).is_some_and(|c| c.is_ascii_digit() || c == b'('))
}

/// Nothing continues the number at `end`: no digit, no decimal part.
fn ends_number(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(c) if c.is_ascii_digit() => false,
        Some(b',') => !is_decimal_part(b, end + 1),
        Some(b'.') => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// A digit group: the separator bytes before it (empty for the first, or its `+`/`(`), and
/// its digits.
#[derive(Debug, Clone, Copy)]
struct Group {
    sep_start: usize,
    start: usize,
    end: usize,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

fn is_separator_at(b: &[u8], j: usize) -> usize {
    match b[j] {
        b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'_' => 1,
        _ if b[j..].starts_with(NBSP) => NBSP.len(),
        _ if b[j..].starts_with(NUMERO) => NUMERO.len(),
        _ => 0,
    }
}

fn groups_at(b: &[u8], i: usize) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut j = i + usize::from(b[i] == b'+');
    while groups.len() < MAX_GROUPS {
        let sep_start = if groups.is_empty() { i } else { j };
        while j < b.len() && j - sep_start < MAX_SEPARATOR_BYTES {
            match is_separator_at(b, j) {
                0 => break,
                n => j += n,
            }
        }
        if !b.get(j).is_some_and(u8::is_ascii_digit) {
            break;
        }
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        groups.push(Group { sep_start, start, end: j });
    }
    groups
}

fn number_at(s: &str, i: usize) -> Option<(usize, Kind)> {
    let b = s.as_bytes();
    let groups = groups_at(b, i);
    let first = groups.first()?;
    let sep = |g: &Group| &b[g.sep_start..g.start];
    let bare = first.start == i;
    let rest = &groups[1..];

    // 1. Card: the longest prefix of 13 to 19 digits that passes Luhn, grouped as cards are
    // printed (4-4-4-4, 4-6-5) so that a list of status codes is not taken for one.
    if bare {
        let mut digits = first.len();
        let luhn_run = (13..=19).contains(&digits) && ends_number(b, first.end) && luhn(&digits_of(b, &groups[..1]));
        let mut best = luhn_run.then_some(first.end);
        for (k, g) in rest.iter().enumerate() {
            let card_sep = matches!(sep(g), b" " | b"  " | b"-" | b"." | b"_") || sep(g) == NBSP;
            if !card_sep || first.len() != 4 || !(3..=6).contains(&g.len()) {
                break;
            }
            digits += g.len();
            if digits > 19 {
                break;
            }
            if digits >= 13 && ends_number(b, g.end) && luhn(&digits_of(b, &groups[..k + 2])) {
                best = Some(g.end);
            }
        }
        if let Some(end) = best {
            return Some((end, Kind::Card));
        }
    }
    let lens: Vec<usize> = groups.iter().map(Group::len).collect();
    let spaces_or_numero = |g: &Group| {
        let sep = sep(g);
        let numero = sep.windows(NUMERO.len()).filter(|w| *w == NUMERO).count();
        !sep.is_empty()
            && numero <= 1
            && sep.len() - numero * NUMERO.len() == sep.iter().filter(|&&c| c == b' ' || c == 0xc2 || c == 0xa0).count()
    };
    // 2. Passport.
    if bare {
        let ends = |k: usize| ends_number(b, groups[k].end);
        if lens.starts_with(&[4, 6]) && spaces_or_numero(&groups[1]) && ends(1) {
            return Some((groups[1].end, Kind::Id));
        }
        if lens.starts_with(&[2, 2, 6]) && sep(&groups[1]) == b" " && spaces_or_numero(&groups[2]) && ends(2) {
            return Some((groups[2].end, Kind::Id));
        }
        // 3. SNILS.
        if lens.starts_with(&[3, 3, 3, 2])
            && groups[1..4].iter().all(|g| matches!(sep(g), b" " | b"-"))
            && ends(3)
            && snils_valid(&digits_of(b, &groups[..4]))
        {
            return Some((groups[3].end, Kind::Id));
        }
        // 4. INN in groups.
        let mut digits = first.len();
        for (k, g) in rest.iter().enumerate() {
            if g.len() < 3 || !matches!(sep(g), b" " | b"-") || first.len() < 3 {
                break;
            }
            digits += g.len();
            if matches!(digits, 10 | 12) && ends(k + 1) && inn_valid(&digits_of(b, &groups[..k + 2])) {
                return Some((g.end, Kind::Id));
            }
        }
    }
    // 5. Phone.
    if let Some(end) = phone(b, i, &groups) {
        return Some((end, Kind::Phone));
    }
    // 6. A long run.
    if first.len() >= MIN_RUN_DIGITS {
        return Some((first.end, Kind::Id));
    }
    // 7. After a keyword.
    if bare {
        let mut end = first.end;
        let mut digits = first.len();
        for g in rest {
            let joined = matches!(sep(g), b"-" | b"/" | b".") || (sep(g) == b" " && g.len() >= 3);
            if !joined {
                break;
            }
            digits += g.len();
            end = g.end;
        }
        // The keyword last: it is the costliest look. An amount (`счёт: 12 500 ₽`) is not an id.
        if digits >= MIN_KEYWORD_DIGITS && ends_number(b, end) && !is_amount(s, end) && keyword_before(s, i) {
            return Some((end, Kind::Id));
        }
    }
    None
}

fn digits_of(b: &[u8], groups: &[Group]) -> Vec<u8> {
    groups.iter().flat_map(|g| b[g.start..g.end].iter().map(|d| d - b'0')).collect()
}

/// The longest prefix of `groups` that is a phone number (rule 5), as its end.
fn phone(b: &[u8], i: usize, groups: &[Group]) -> Option<usize> {
    let plus = b[i] == b'+';
    let lead = b[groups[0].start];
    let mut digits = 0;
    let mut best = None;
    // Dots join a phone's groups only when nothing else does (`912.345.67.89`): `31.12.2024 10`
    // is a date and an hour.
    let seps = || groups[1..].iter().map(|g| &b[g.sep_start..g.start]);
    let dotted = seps().any(|sep| sep.contains(&b'.'));
    for (k, g) in groups.iter().enumerate() {
        let sep = &b[g.sep_start..g.start];
        let phone_sep = sep.iter().all(|c| matches!(c, b' ' | b'-' | b'.' | b'(' | b')' | 0xc2 | 0xa0));
        let sep_chars = sep.iter().filter(|&&c| c != 0xc2).count();
        // After the country or trunk code, every group has two digits or more (`91.0.4472`).
        let short = k > 0 && g.len() < 2;
        if k > 0 && (!phone_sep || sep_chars > 3 || short || (dotted && sep != b".")) {
            break;
        }
        digits += g.len();
        if digits > MAX_PHONE_DIGITS {
            break;
        }
        if is_phone(digits, lead, plus) && ends_number(b, g.end) {
            best = Some(g.end);
        }
    }
    best
}

/// Whether `digits` digits starting with `lead` make a phone number (rule 5).
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

/// A keyword of [`KEYWORDS`] ends right before `i`, past spaces and `: = # № -`.
fn keyword_before(s: &str, i: usize) -> bool {
    let before = &s[..i];
    let trimmed =
        before.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '=' | '#' | '№' | '-' | '.'));
    if before[trimmed.len()..].contains('№') {
        return true;
    }
    let word_start = trimmed
        .char_indices()
        .rev()
        .take(24)
        .take_while(|&(_, c)| super::words::is_letter(c) || matches!(c, '/' | '_' | '.'))
        .last()
        .map_or(trimmed.len(), |(i, _)| i);
    // The whole word, or its end after a change to capitals or of script (`клиентЛС`,
    // `клиентaccount`, `xл/с`).
    let word = &trimmed[word_start..];
    let cyrillic = super::words::is_cyrillic;
    let last = word
        .char_indices()
        .zip(word.chars().skip(1))
        .filter(|&((_, a), b)| {
            (a.is_lowercase() && b.is_uppercase())
                || (a.is_alphabetic() && b.is_alphabetic() && cyrillic(a) != cyrillic(b))
        })
        .last()
        .map_or(word, |((i, a), _)| &word[i + a.len_utf8()..]);
    let word = super::words::Lower::tail(word, 12);
    let word = word.as_str();
    let last = super::words::Lower::tail(last, 12);
    // Keywords of five letters or more, Russian ones of three, and `л/с`, also glued after a
    // word (`клиентсчёт`, `myaccount`); short ones only whole (`Android`, `вид`).
    let glued = |k: &&&str| {
        let letters = k.chars().count();
        letters >= 5 || (letters >= 3 && k.chars().all(super::words::is_cyrillic)) || k.contains('/')
    };
    !word.is_empty()
        && (KEYWORDS.contains(&word)
            || KEYWORDS.contains(&last.as_str())
            || KEYWORDS.iter().filter(glued).any(|k| word.ends_with(k)))
}

/// A currency after the number at `end`: `12 500 ₽`, `300 руб.`, `99 RUB`.
fn is_amount(s: &str, end: usize) -> bool {
    let after = s[end..].trim_start_matches([' ', '\u{a0}']);
    ["₽", "руб", "р.", "RUB", "rub", "$", "€", "USD", "EUR"].iter().any(|c| after.starts_with(c))
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The SNILS checksum: the last two digits from the first nine.
fn snils_valid(d: &[u8]) -> bool {
    if d.len() != 11 {
        return false;
    }
    let sum: u32 = d[..9].iter().enumerate().map(|(k, &x)| u32::from(x) * (9 - k as u32)).sum();
    let control = match sum {
        0..=99 => sum,
        100 | 101 => 0,
        _ => sum % 101 % 100,
    };
    control == u32::from(d[9]) * 10 + u32::from(d[10])
}

/// The INN checksums: one digit for 10 digits (a company), two for 12 (a person).
fn inn_valid(d: &[u8]) -> bool {
    let check = |weights: &[u32], digit: u8| {
        let sum: u32 = weights.iter().zip(d).map(|(w, &x)| w * u32::from(x)).sum();
        sum % 11 % 10 == u32::from(digit)
    };
    match d.len() {
        10 => check(&[2, 4, 10, 3, 5, 9, 4, 6, 8], d[9]),
        12 => check(&[7, 2, 4, 10, 3, 5, 9, 4, 6, 8], d[10]) && check(&[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8], d[11]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;
    use super::*;

    #[test]
    fn checksums() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(!luhn(&d("4111111111111112")));
        assert!(snils_valid(&d("11223344595")));
        assert!(!snils_valid(&d("11223344596")));
        assert!(inn_valid(&d("7707083893")));
        assert!(!inn_valid(&d("7707083894")));
        assert!(inn_valid(&d("500100732259")));
        assert!(!inn_valid(&d("500100732258")));
    }

    #[test]
    fn removes_identifying_numbers() {
        check("карта 4111 1111 1111 1111 ok", "карта [card] ok");
        check("card:4111-1111-1111-1111.", "card:[card].");
        check("5555555555554444", "[card]");
        check("amex 3782 822463 10005", "amex [card]");
        check("паспорт 4510 123456", "паспорт [id]");
        check("45 10 123456", "[id]");
        check("серия 4510 № 123456 выдан", "серия [id] выдан");
        check("СНИЛС 112-233-445 95", "СНИЛС [id]");
        check("ИНН 7707 083893", "ИНН [id]");
        check("ИНН 500100732259", "ИНН [id]");
        check("л/с 123456789012 не найден", "л/с [id] не найден");
        check("ЛС1234567890", "ЛС[id]");
        check("лицевой счет: 12345678", "лицевой счет: [id]");
        check("договор № 12-345/2024 от 01.02.2024", "договор № [id] от 01.02.2024");
        check("Заказ №12345", "Заказ №[id]");
        check("+7 (912) 345-67-89", "[phone]");
        check("звонок на 8-912-345-67-89.", "звонок на [phone].");
        check("тел.:89123456789", "тел.:[phone]");
        check("(495) 123-45-67", "[phone]");
        check("912 345 67 89", "[phone]");
        check("+44 20 7946 0958", "[phone]");
        check("+1 (415) 555-2671", "[phone]");
        check("8\u{a0}912\u{a0}345\u{a0}67\u{a0}89", "[phone]");
        check("HTTP 503 8 912 345 67 89", "HTTP 503 [phone]");
        check("8 (912) 345-67-89 12:00", "[phone] 12:00");
        check("id_89123456789", "id_[phone]");
        check("89123456789abc", "[phone]abc");
        check("ts=1764000000", "ts=[id]");
        check("+79123456789,+79123456788", "[phone],[phone]");
        check("89123456789,89123456788", "[phone],[phone]");
        check("8 912 345-67-89,8 912 345-67-88", "[phone],[phone]");
        check("4111 1111 1111 1111,12/28", "[card],12/28");
        check("4111  1111  1111  1111", "[card]");
        check("8 - 912 - 345 - 67 - 89", "[phone]");
        check("л.с. 12345678", "л.с. [id]");
    }

    #[test]
    fn keeps_ordinary_numbers() {
        for keep in [
            "HTTP 503",
            "line 1234 col 56",
            "Error 500 502 503 504",
            "2026-11-24 10:30:15",
            "24.11.2026 15:30",
            "0.8912345678",
            "size 1920x1080",
            "1 200,50 ₽",
            "Заказ № 1234",
            "3 товара на 12 500 ₽",
            "Chrome 124.0.6367.91",
            "за 2024 год",
            "осталось 99999 байт",
            "31.12.2024 10:30",
            "30.11.2026 23:59:59",
            "Chrome/91.0.4472.124",
            "Mozilla/5.0 Chrome/96.0.4664.110 Safari/537.36",
            "Сумма счета: 12 500 ₽",
            "Android 12345",
            "1 200,50",
        ] {
            check(keep, keep);
        }
    }
}
