//! Russian postal addresses, `[address]`.
//!
//! An address starts at a marker ([`MARKERS`], any case, with or without its dot where the
//! table allows): a street (`ул.`, `пр-т`, `пер.`, `наб.`, `ш.`, `б-р`, `пл.`, `мкр` ...), a
//! numbered part (`д.`, `корп.`, `стр.`, `кв.`, `офис` ... followed by a number) or a
//! settlement (`г.`, `обл.`, `р-н`, `пос.`, `с.` ...). From there it takes, across commas,
//! markers with the word or number after each, numbers (`5`, `12а`, `5/1`, postcodes), and
//! capitalised words (`наб. реки Фонтанки`: a few lower-case connectors too). It stops at any
//! other lower-case word or punctuation. Backwards it takes the name before a street marker
//! written after it (`Ленинградское ш.`) and, across commas, a postcode, a settlement and a
//! city of one or two words before it.
//!
//! It is an address when it has a street with its name (capitalised, or a number or any word
//! after an abbreviation such as `ул.`), two numbered parts (`д. 5, кв. 12`), or a postcode, or
//! a street written in lower case after a whole word (`улица тверская`), with a numbered part
//! or a house number. Street words that are everyday nouns too (`площадь`, `проезд`, `шоссе`
//! ...) need a capitalised name, and a name before them a numbered part (`Красная площадь, д.
//! 1`). So `и т. д.`, `и пр.`, `2024 г.`, `стр. 5`, `1 кв. 2024` (a quarter: `кв.` before a
//! year) and `Общая площадь 54 м²` stay.

use super::{
    Kind, Span,
    words::{Case, Lower, Token, TokenKind, case_of, eq_lower, lower_in},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Street,
    Numbered,
    Settlement,
}

struct Marker {
    word: &'static str,
    class: Class,
    /// Only with its dot (`г.`), since the bare letter is a word (`г`, `с`, `к`).
    needs_dot: bool,
    /// May follow the street's name (`Садовая ул.`).
    postfix: bool,
}

const fn m(word: &'static str, class: Class, needs_dot: bool, postfix: bool) -> Marker {
    Marker { word, class, needs_dot, postfix }
}

use Class::{Numbered, Settlement, Street};

static MARKERS: [Marker; 49] = [
    m("ул", Street, false, true),
    m("улица", Street, false, true),
    m("пр-т", Street, false, true),
    m("пр-кт", Street, false, true),
    m("просп", Street, false, true),
    m("проспект", Street, false, true),
    m("пер", Street, true, true),
    m("переулок", Street, false, true),
    m("наб", Street, false, true),
    m("набережная", Street, false, true),
    m("ш", Street, true, true),
    m("шоссе", Street, false, true),
    m("б-р", Street, false, true),
    m("бульв", Street, true, true),
    m("бульвар", Street, false, true),
    m("пл", Street, true, true),
    m("пр", Street, true, false),
    m("площадь", Street, false, true),
    m("проезд", Street, false, true),
    m("пр-д", Street, false, true),
    m("туп", Street, true, true),
    m("тупик", Street, false, true),
    m("мкр", Street, false, false),
    m("мкрн", Street, false, false),
    m("микрорайон", Street, false, false),
    m("аллея", Street, false, true),
    m("тракт", Street, false, true),
    m("д", Numbered, false, false),
    m("дом", Numbered, false, false),
    m("корп", Numbered, false, false),
    m("корпус", Numbered, false, false),
    m("к", Numbered, true, false),
    m("стр", Numbered, false, false),
    m("строение", Numbered, false, false),
    m("кв", Numbered, false, false),
    m("квартира", Numbered, false, false),
    m("оф", Numbered, false, false),
    m("офис", Numbered, false, false),
    m("пом", Numbered, false, false),
    m("лит", Numbered, false, false),
    m("г", Settlement, true, false),
    m("город", Settlement, false, false),
    m("обл", Settlement, false, false),
    m("область", Settlement, false, false),
    m("р-н", Settlement, false, false),
    m("район", Settlement, false, false),
    m("пос", Settlement, true, false),
    m("с", Settlement, true, false),
    m("дер", Settlement, true, false),
];

/// Lower-case words inside a street's name: `наб. реки Фонтанки`, `ул. 8 Марта`, `пр-т 50 лет
/// Октября`, `ул. им. Ленина`.
const CONNECTORS: [&str; 7] = ["реки", "канала", "лет", "им", "имени", "де", "и"];

/// Street markers that are everyday words too: they need a capitalised name.
const COMMON_NOUNS: [&str; 6] = ["площадь", "проезд", "тракт", "тупик", "аллея", "шоссе"];

/// Words that never name a street.
const STOP_WORDS: [&str; 8] = ["не", "и", "в", "на", "с", "по", "для", "или"];

/// Most tokens an address takes: a long address has about 20.
const MAX_TOKENS: usize = 40;

pub(super) fn find(s: &str, tokens: &[Token], spans: &mut Vec<Span>) {
    // Each token's marker, looked up once: the walks below ask for them again and again.
    let markers: Vec<Option<&Marker>> = tokens.iter().map(|t| marker_of(s, t)).collect();
    if markers.iter().all(Option::is_none) && !tokens.iter().any(|t| may_be_glued(s, t)) {
        return;
    }
    let text = Text { s, tokens, markers };
    let tokens = text.tokens;
    let mut k = 0;
    let mut last_end = 0;
    while k < tokens.len() {
        let Some((marker, glued_start)) = marker_at(&text, k) else {
            k += 1;
            continue;
        };
        let Some((first, end_token, end)) = walk(&text, k, marker) else {
            k += 1;
            continue;
        };
        let start = glued_start.unwrap_or_else(|| backwards(&text, first, marker)).max(last_end);
        spans.push((start, end, Kind::Address));
        last_end = end;
        k = end_token + 1;
    }
}

/// The marker word of token `k`, if it is one, and where it starts when glued to the word
/// before it (`адресул.`).
/// A text's tokens and the marker of each.
struct Text<'a> {
    s: &'a str,
    tokens: &'a [Token],
    markers: Vec<Option<&'static Marker>>,
}

impl Text<'_> {
    fn marker(&self, j: usize) -> Option<&'static Marker> {
        self.markers.get(j).copied().flatten()
    }

    fn is_settlement(&self, j: usize) -> bool {
        self.marker(j).is_some_and(|m| m.class == Settlement)
    }
}

/// Whether a word could end in a street marker glued to it (see [`marker_at`]).
fn may_be_glued(s: &str, t: &Token) -> bool {
    t.is_word() && (t.has_dot() || s[t.start..t.end].contains('-') || t.end - t.start > 10)
}

fn marker_at(text: &Text<'_>, k: usize) -> Option<(&'static Marker, Option<usize>)> {
    let (s, tokens) = (text.s, text.tokens);
    let t = tokens[k];
    if let Some(marker) = text.marker(k) {
        return Some((marker, None));
    }
    if !may_be_glued(s, &t) {
        return None;
    }
    let text = &s[t.start..t.end];
    // A street marker glued after another word (`адресул.`, `клиентулица`): `ул.`, a hyphenated
    // one (`клиентб-р`) or a whole word of five letters or more, and the value must follow
    // (other abbreviations end ordinary words: `Супер.`, `доступ.`).
    let next_is_value = tokens.get(k + 1).is_some_and(|n| n.is_word() || n.kind == TokenKind::Number);
    if next_is_value {
        let word = Lower::tail(text, 12);
        let word = word.as_str();
        let marker = MARKERS.iter().find(|m| {
            let letters = m.word.chars().count();
            m.class == Street
                && (if t.has_dot() { m.word == "ул" } else { letters >= 5 || m.word.contains('-') })
                && text.len() > m.word.len()
                && word.ends_with(m.word)
        })?;
        return Some((marker, Some(t.end - marker.word.len())));
    }
    None
}

fn marker_of(s: &str, t: &Token) -> Option<&'static Marker> {
    if !t.is_word() {
        return None;
    }
    let text = &s[t.start..t.end];
    MARKERS.iter().find(|m| eq_lower(text, m.word) && (t.has_dot() || !m.needs_dot))
}

/// Walks forward from the marker at `k`: `(first token, last token, end byte)` if what it
/// takes is an address.
fn walk(text: &Text<'_>, k: usize, first_marker: &Marker) -> Option<(usize, usize, usize)> {
    let (s, tokens) = (text.s, text.tokens);
    let (mut streets, mut numbered, mut postcode) = (0, 0, false);
    // `улица тверская`: a full marker word before a lower-case name, which needs a numbered
    // part to be told from `улица не найдена`.
    let (mut unsure_streets, mut unsure_common, mut houses) = (0, 0, 0);
    let (mut j, mut last, mut end) = (k, k, tokens[k].end_with_dot());
    let word = |t: &Token| &s[t.start..t.end];
    let capitalised = |t: &Token| t.is_word() && matches!(case_of(word(t)), Case::Title | Case::Upper);
    let connector = |t: &Token| t.is_word() && lower_in(word(t), &CONNECTORS);
    // A street marker after its name (`Садовая ул.`) has its value before it.
    let named_before = |j: usize, marker: &Marker| {
        marker.postfix && j > 0 && tokens[j - 1].is_word() && !tokens[j - 1].has_dot() && text.marker(j - 1).is_none()
    };
    while j < tokens.len() && j - k < MAX_TOKENS {
        let t = tokens[j];
        let marker = if j == k { Some(first_marker) } else { text.marker(j) };
        if let Some(marker) = marker {
            let value = tokens
                .get(j + 1)
                .filter(|v| (v.is_word() || v.kind == TokenKind::Number) && text.marker(j + 1).is_none());
            // A street's name: capitalised, a number after an abbreviation, or after the
            // abbreviation's dot any word but a particle (`улица не найдена` is no address).
            // Words that are common nouns too need a capitalised name (`площадь 54 м²`).
            let common = COMMON_NOUNS.contains(&marker.word);
            // `и пр.` is "and so on".
            let etc = marker.word == "пр" && j > 0 && eq_lower(word(&tokens[j - 1]), "и");
            let number = value.is_some_and(|v| v.kind == TokenKind::Number);
            let named = value.is_some_and(&capitalised) || (number && !common);
            let lower_named = !common && value.is_some_and(|v| v.is_word() && !lower_in(word(v), &STOP_WORDS));
            // `1 кв. 2024`: a quarter of a year, not a flat.
            let year = value.is_some_and(|v| {
                let n = word(v);
                v.kind == TokenKind::Number && n.len() == 4 && (n.starts_with("19") || n.starts_with("20"))
            });
            match marker.class {
                // `Красная площадь`, but also `Общая площадь`: needs a numbered part.
                Street if etc => {}
                Street if common && named_before(j, marker) => unsure_common += 1,
                Street if named || named_before(j, marker) || (lower_named && t.has_dot()) => streets += 1,
                Street if lower_named => unsure_streets += 1,
                Numbered if number && !(year && marker.word.starts_with("кв")) => numbered += 1,
                _ => {}
            }
            match value {
                Some(v) => {
                    (last, end) = (j + 1, v.end);
                    j += 2;
                    // A street's name in lower case (`ул. маршала жукова`, `наб. реки
                    // фонтанки`) runs on to the next comma, marker or number: two words more.
                    let lower_name = marker.class == Street && v.is_word() && case_of(word(v)) == Case::Lower;
                    let mut more = 0;
                    while lower_name && !v.has_dot() && more < 2 {
                        let Some(n) = tokens
                            .get(j)
                            .filter(|n| n.is_word() && text.marker(j).is_none() && !lower_in(word(n), &STOP_WORDS))
                        else {
                            break;
                        };
                        (last, end) = (j, n.end);
                        j += 1;
                        more += 1;
                        if n.has_dot() {
                            break;
                        }
                    }
                    // A value's own dot ends the sentence, unless it is a connector's (`им.`).
                    if v.has_dot() {
                        if !connector(v) {
                            break;
                        }
                        end = v.end_with_dot();
                    }
                }
                None => {
                    (last, end) = (j, t.end_with_dot());
                    j += 1;
                }
            }
            continue;
        }
        let takes = match t.kind {
            TokenKind::Number => {
                postcode |= is_postcode(s, &t);
                houses += usize::from(!is_postcode(s, &t));
                true
            }
            TokenKind::Word { .. } => {
                capitalised(&t)
                    || (connector(&t)
                        && tokens.get(j + 1).is_some_and(|n| n.kind == TokenKind::Number || capitalised(n)))
            }
            TokenKind::Comma => tokens
                .get(j + 1)
                .is_some_and(|n| text.marker(j + 1).is_some() || n.kind == TokenKind::Number || capitalised(n)),
            TokenKind::Stop => false,
        };
        if !takes {
            break;
        }
        if t.kind != TokenKind::Comma {
            (last, end) = (j, t.end);
            if t.has_dot() {
                if !connector(&t) {
                    break;
                }
                end = t.end_with_dot();
            }
        }
        j += 1;
    }
    let is_address = streets > 0
        || numbered >= 2
        || ((postcode || unsure_streets > 0) && numbered + houses >= 1)
        || (unsure_common > 0 && numbered >= 1);
    is_address.then_some((k, last, end))
}

/// Where the address whose first marker is token `first` starts, looking back: the street's
/// name before a postfix marker, then across commas a postcode, a settlement, or a city of one
/// or two words.
fn backwards(text: &Text<'_>, first: usize, marker: &Marker) -> usize {
    let (s, tokens) = (text.s, text.tokens);
    let mut start_token = first;
    if marker.postfix {
        let mut taken = 0;
        // Only a name written before the marker: the word after it is the name otherwise.
        let value_after = tokens.get(first + 1).is_some_and(|t| t.is_word() && text.marker(first + 1).is_none());
        while !value_after && start_token > 0 && taken < 2 {
            let t = tokens[start_token - 1];
            let ok = t.is_word()
                && !t.has_dot()
                && text.marker(start_token - 1).is_none()
                && (taken == 0 || matches!(case_of(&s[t.start..t.end]), Case::Title | Case::Upper));
            if !ok {
                break;
            }
            start_token -= 1;
            taken += 1;
        }
    }
    // A city is one or two words, whatever the commas between.
    let mut city_words = 0;
    loop {
        if start_token == 0 {
            break;
        }
        let before = start_token - 1;
        // A postcode or a settlement marker right before, without a comma.
        if is_postcode(s, &tokens[before]) || text.is_settlement(before) {
            start_token = before;
            continue;
        }
        // A city right before, without a comma: capitalised, or any word after a postcode or a
        // settlement marker (`101000 москва ул. ленина`).
        let words = (0..start_token)
            .rev()
            .take(2usize.saturating_sub(city_words))
            .take_while(|&j| tokens[j].is_word() && !tokens[j].has_dot() && text.marker(j).is_none())
            .count();
        if words > 0 {
            let anchored = (start_token - words)
                .checked_sub(1)
                .is_some_and(|a| is_postcode(s, &tokens[a]) || text.is_settlement(a));
            let capitalised = tokens[start_token - words..start_token]
                .iter()
                .rev()
                .take_while(|t| matches!(case_of(&s[t.start..t.end]), Case::Title | Case::Upper))
                .count();
            let take = if anchored { words } else { capitalised };
            if take > 0 {
                city_words += take;
                start_token -= take;
                continue;
            }
        }
        if tokens[before].kind != TokenKind::Comma {
            break;
        }
        // The component between the previous comma or punctuation and this one.
        let mut from = before;
        while from > 0 && matches!(tokens[from - 1].kind, TokenKind::Word { .. } | TokenKind::Number) {
            from -= 1;
        }
        let component = &tokens[from..before];
        // A postcode, even glued to the text before it.
        if component.last().is_some_and(|t| is_postcode(s, t)) {
            start_token = before - 1;
            continue;
        }
        let ok = match component {
            [_, ..] if text.is_settlement(from) => component.len() <= 4,
            [_] | [_, _] => component.iter().all(|t| t.is_word() && !t.has_dot()),
            _ => false,
        };
        if !ok || component.is_empty() {
            break;
        }
        start_token = from;
    }
    tokens[start_token].start
}

fn is_postcode(s: &str, t: &Token) -> bool {
    t.kind == TokenKind::Number && t.end - t.start == 6 && s[t.start..t.end].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;

    #[test]
    fn removes_addresses() {
        check("Доставка: г. Москва, ул. Ленина, д. 5, кв. 12", "Доставка: [address]");
        check("123456, г. Москва, ул. Ленина, д. 5, корп. 2, кв. 12.", "[address].");
        check("Москва, ул. Ленина 5", "[address]");
        check("адрес ул.Ленина,д.5,кв.12 не найден", "адрес [address] не найден");
        check("Ленинградское ш., д. 16, стр. 3", "[address]");
        check("Санкт-Петербург, наб. реки Фонтанки, 20", "[address]");
        check("пр-т 50 лет Октября, 3", "[address]");
        check("УЛ. ЛЕНИНА, Д. 5, КВ. 12", "[address]");
        check("г. москва, ул. ленина, д. 5, кв. 12", "[address]");
        check("д. 5, кв. 12", "[address]");
        check("адресул. Ленина, д. 5", "адрес[address]");
        check("офис 305, д. 7", "[address]");
        check("г. Москва, пр. Мира, д. 5", "[address]");
        check("Красная площадь, д. 1", "[address]");
    }

    #[test]
    fn keeps_what_is_not_an_address() {
        for keep in [
            "и т. д.",
            "и т.д. и т.п.",
            "за 2024 г. и 2025 г.",
            "стр. 5 из 10",
            "1 кв. 2024",
            "г. Москва",
            "Личный кабинет",
            "Передача показаний счётчика",
            "Ошибка: улица не найдена",
            "Оплата по адресу не прошла",
            "Общая площадь 54 м²",
            "площадь квартиры 54 м²",
            "Показания за 1 кв. 2024 и 2 кв. 2024",
            "Супер. Спасибо за оплату!",
            "Закрыт доступ. Обратитесь в поддержку",
            "и пр. Оплата",
        ] {
            check(keep, keep);
        }
    }
}
