//! Russian full names, `[name]`.
//!
//! - **With a patronymic**: a first name and a patronymic written the same way (`Иван
//!   Иванович`, `ИВАН ИВАНОВИЧ`, `иван иванович`), with the surname before or after them when
//!   there is one, in any grammatical case (`Иванову Ивану Ивановичу`). A patronymic ends in
//!   `-ич` (`Ильич`, `Иванович`), `-овна`, `-евна` or `-ична`, with its case ending; in lower
//!   case only `-ович`, `-евич`, `-ьич`, `-овна`, `-евна` and `-инична` count, and not after a
//!   particle (`она виновна`, `это типична` stay). Hyphens join the parts too (`Иванов-Иван-Иванович`).
//! - **With initials**: a surname and one or two initials in either order (`Иванов И. И.`,
//!   `Иванов И.И.`, `И.И. Иванов`); with one initial only, the surname must end like one
//!   (`-ов`, `-ева`, `-ин`, `-ский` ...).
//!
//! A first name and surname alone (`Иван Петров`) are not recognised: nothing tells them from
//! two capitalised words without a list of names.

use super::{
    Kind, Span,
    words::{Case, Lower, Token, case_of, is_cyrillic, is_letter, is_upper, lower_in},
};

/// Case endings after `-ич` and after the feminine roots.
const MALE_ENDINGS: [&str; 5] = ["", "а", "у", "ем", "е"];
const FEMALE_ROOTS: [&str; 4] = ["овн", "евн", "ёвн", "ичн"];
const FEMALE_ENDINGS: [&str; 6] = ["а", "ы", "е", "у", "ой", "ою"];
/// How surnames end: a stem ending, then a case ending (`Иванов`, `Иванову`, `Ивановой`,
/// `Достоевского`), or an ending that does not decline (`Шевченко`).
const SURNAME_STEMS: [&str; 7] = ["ов", "ев", "ёв", "ин", "ын", "ск", "цк"];
const SURNAME_CASE_ENDINGS: [&str; 14] =
    ["", "а", "у", "ым", "ой", "ою", "е", "ий", "ая", "ого", "ому", "ую", "им", "ом"];
const FIXED_SURNAME_ENDINGS: [&str; 8] = ["ко", "ук", "юк", "их", "ых", "ян", "дзе", "швили"];
/// Adjectives that end like feminine patronymics (`основной`, `ДОГОВОР ПУБЛИЧНОЙ ОФЕРТЫ`).
const ADJECTIVE_STEMS: [&str; 22] = [
    "основн",
    "условн",
    "безусловн",
    "головн",
    "ежедневн",
    "духовн",
    "любовн",
    "виновн",
    "греховн",
    "ровн",
    "неровн",
    "публичн",
    "типичн",
    "логичн",
    "различн",
    "отличн",
    "личн",
    "наличн",
    "вторичн",
    "первичн",
    "частичн",
    "фабричн",
];

/// Abbreviations that look like two lower-case initials: `т.к.`, `т.е.`, `т.п.`, `т.д.`, `т.ч.`.
const ABBREVIATIONS: [&str; 5] = ["тк", "те", "тп", "тд", "тч"];

/// Words that are never a first name or surname, in lower case: particles, and the forms of
/// address before a name.
const PARTICLES: [&str; 30] = [
    "не",
    "ни",
    "и",
    "а",
    "но",
    "да",
    "он",
    "она",
    "оно",
    "они",
    "это",
    "был",
    "была",
    "было",
    "были",
    "все",
    "всё",
    "так",
    "уже",
    "очень",
    "вполне",
    "совсем",
    "тоже",
    "как",
    "уважаемый",
    "уважаемая",
    "дорогой",
    "дорогая",
    "господин",
    "госпожа",
];

/// Whether `s` has a patronymic's letters (`ич`, `вн`, `чн`) or an initial (`И.`) at all: most
/// text has neither, and is not looked at word by word.
pub(super) fn may_hold_one(s: &str) -> bool {
    const LETTERS: [&str; 6] = ["ич", "ИЧ", "вн", "ВН", "чн", "ЧН"];
    LETTERS.iter().any(|l| s.contains(l))
        || s.match_indices('.').any(|(i, _)| {
            // `И.` even glued (`клиентИ.`), or a lower-case `и.` on its own.
            let mut before = s[..i].chars().rev();
            before.next().is_some_and(|c| is_cyrillic(c) && (is_upper(c) || !before.next().is_some_and(is_letter)))
        })
}

/// Names among `tokens`, outside the spans already in `spans`.
pub(super) fn find(s: &str, tokens: &[Token], spans: &mut Vec<Span>) {
    let taken = spans.len();
    let mut last_end = 0;
    for k in 0..tokens.len() {
        if tokens[k].start < last_end {
            continue;
        }
        let found = with_patronymic(s, tokens, k).or_else(|| with_initials(s, tokens, k));
        if let Some((start, end)) = found {
            if spans[..taken].iter().any(|&(a, b, _)| start < b && a < end) {
                continue;
            }
            let start = start.max(last_end);
            spans.push((start, end, Kind::Name));
            last_end = end;
        }
    }
}

fn text<'a>(s: &'a str, t: &Token) -> &'a str {
    &s[t.start..t.end]
}

/// A Cyrillic word, without a dot, of at least `min` letters.
fn is_name_word(s: &str, t: &Token, min: usize) -> bool {
    let word = text(s, t);
    t.is_word() && word.chars().all(|c| is_cyrillic(c) || c == '-') && word.chars().count() >= min
}

fn is_patronymic(word: &str, case: Case) -> bool {
    let Some(word) = Lower::of(word) else { return false };
    let word = word.as_str();
    let lower_case = case == Case::Lower;
    let stem_ok = |stem: &str| stem.chars().count() >= 3;
    let male = MALE_ENDINGS
        .iter()
        .filter_map(|e| word.strip_suffix(e))
        .filter_map(|w| w.strip_suffix("ич"))
        .any(|stem| stem_ok(stem) && (!lower_case || ["ов", "ев", "ёв", "ь"].iter().any(|r| stem.ends_with(r))));
    // In lower case only the forms a sentence would not use as adjective endings.
    let endings = if lower_case { &FEMALE_ENDINGS[..4] } else { &FEMALE_ENDINGS[..] };
    let female = endings.iter().filter_map(|e| word.strip_suffix(e)).any(|w| {
        FEMALE_ROOTS.iter().any(|&r| {
            w.strip_suffix(r).is_some_and(|stem| stem_ok(stem) && (!lower_case || r != "ичн" || stem.ends_with("ин")))
        })
    });
    (male || female) && !ADJECTIVE_STEMS.iter().any(|a| word.starts_with(a))
}

/// A first name before a patronymic at token `k`, with a surname before or after them.
fn with_patronymic(s: &str, tokens: &[Token], k: usize) -> Option<(usize, usize)> {
    let t = &tokens[k];
    if !t.is_word() {
        return None;
    }
    // `Иванов-Иван-Иванович`: one hyphenated word.
    let word = text(s, t);
    if let Some((_, last)) = word.rsplit_once('-') {
        let case = case_of(word);
        let whole = ends_like_patronymic(last) && is_name_word(s, t, 2) && case != Case::Mixed;
        return (whole && is_patronymic(last, case)).then_some((t.start, t.end));
    }
    // The patronymic is the next word: its ending first, the cheapest test.
    let p = tokens.get(k + 1)?;
    if !p.is_word() || !ends_like_patronymic(text(s, p)) || !is_name_word(s, t, 2) {
        return None;
    }
    let case = case_of(word);
    if case == Case::Mixed || !is_name_word(s, p, 5) || case_of(text(s, p)) != case || !is_patronymic(text(s, p), case)
    {
        return None;
    }
    let min = if case == Case::Lower { 3 } else { 2 };
    if t.has_dot() || !is_name_word(s, t, min) || is_particle(s, t) {
        return None;
    }
    // The surname in the same case, or in capitals beside a title-case name (`ИВАНОВ Иван
    // Иванович`, as forms write it).
    let same = |o: &Token| {
        let surname = case_of(text(s, o));
        is_name_word(s, o, 2)
            && (surname == case || (case == Case::Title && surname == Case::Upper))
            && !is_particle(s, o)
    };
    // The surname before or after; a capitalised word on both sides may be either.
    let mut start = t.start;
    let mut end = p.end;
    if k > 0 && same(&tokens[k - 1]) && !tokens[k - 1].has_dot() {
        start = tokens[k - 1].start;
    }
    if !p.has_dot()
        && let Some(after) = tokens.get(k + 2).filter(|a| same(a))
    {
        end = after.end;
    }
    Some((start, end))
}

/// A cheap look at a word's last letters before [`is_patronymic`].
fn ends_like_patronymic(word: &str) -> bool {
    let tail = Lower::tail(word, 4);
    let tail = tail.as_str();
    MALE_ENDINGS.iter().any(|e| tail.strip_suffix(e).is_some_and(|w| w.ends_with("ич")))
        || FEMALE_ENDINGS.iter().any(|e| tail.strip_suffix(e).is_some_and(|w| w.ends_with("вн") || w.ends_with("чн")))
}

fn is_particle(s: &str, t: &Token) -> bool {
    lower_in(text(s, t), &PARTICLES)
}

/// An initial: one Cyrillic letter with its dot.
fn is_initial(s: &str, t: &Token) -> bool {
    let mut chars = text(s, t).chars();
    t.has_dot() && chars.next().is_some_and(is_cyrillic) && chars.next().is_none()
}

/// `after`: the surname follows its initials (`и. иванов`), where a lone lower-case initial
/// is not the word `и` ending a sentence.
fn is_surname(s: &str, t: &Token, initials: usize, initials_case: Case, after: bool) -> bool {
    let word = text(s, t);
    let case = case_of(word);
    let Some(lower) = Lower::of(word) else { return false };
    let lower = lower.as_str();
    let suffix = FIXED_SURNAME_ENDINGS.iter().any(|e| lower.ends_with(e))
        || SURNAME_CASE_ENDINGS
            .iter()
            .filter_map(|e| lower.strip_suffix(e))
            .any(|stem| SURNAME_STEMS.iter().any(|s| stem.ends_with(s)));
    is_name_word(s, t, 2)
        && match case {
            Case::Title | Case::Upper => initials_case != Case::Lower && (initials == 2 || suffix),
            // `иванов и. и.`: lower-case initials are also the word `и`.
            Case::Lower => initials_case == Case::Lower && (initials == 2 || after) && suffix,
            Case::Mixed => false,
        }
}

/// A surname at token `k` followed by initials, or initials at `k` followed by a surname.
fn with_initials(s: &str, tokens: &[Token], k: usize) -> Option<(usize, usize)> {
    let t = &tokens[k];
    let initials_from = |from: usize| {
        let n = tokens[from..].iter().take(2).take_while(|i| is_initial(s, i)).count();
        let pair = || tokens.get(from..from + 2).map(|p| format!("{}{}", text(s, &p[0]), text(s, &p[1])));
        if n == 2 && pair().is_some_and(|p| ABBREVIATIONS.contains(&p.as_str())) { 0 } else { n }
    };
    let case_at = |i: usize| case_of(text(s, &tokens[i]));
    if is_initial(s, t) {
        let n = initials_from(k);
        let surname = tokens.get(k + n)?;
        if is_surname(s, surname, n, case_at(k), true) {
            return Some((t.start, surname.end));
        }
        return None;
    }
    if t.has_dot() {
        return None;
    }
    let n = initials_from(k + 1);
    if n == 0 || !is_surname(s, t, n, case_at(k + 1), false) {
        return None;
    }
    // `Клиент И.И. Иванов`: the word after the initials is the surname as likely.
    if let Some(after) = tokens.get(k + n + 1).filter(|a| is_surname(s, a, n, case_at(k + 1), true)) {
        return Some((t.start, after.end));
    }
    Some((t.start, tokens[k + n].end_with_dot()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;

    #[test]
    fn removes_full_names() {
        check("Иванов Иван Иванович", "[name]");
        check("Клиент: Петрова Анна Сергеевна, л/с", "Клиент: [name], л/с");
        check("Уважаемый Иван Иванович!", "Уважаемый [name]!");
        check("Иван Ильич Толстой пишет", "[name] пишет");
        check("ИВАНОВ ИВАН ИВАНОВИЧ", "[name]");
        check("иванов иван иванович", "[name]");
        check("Иванову Ивану Ивановичу", "[name]");
        check("Иванов-Иван-Иванович", "[name]");
        check("клиентИванов Иван Иванович", "клиент[name]");
        check("Иванов+Иван+Иванович", "[name]");
        check("Иванов И. И.", "[name]");
        check("Иванов И.И. оплатил", "[name] оплатил");
        check("И.И. Иванов", "[name]");
        check("И. Иванов", "[name]");
        check("Петрова А.", "[name]");
        check("иванов и. и.", "[name]");
        check("ИВАНОВ Иван Иванович", "[name]");
        check("с Ивановой Анной Сергеевной", "с [name]");
    }

    #[test]
    fn keeps_what_is_not_a_name() {
        for keep in [
            "Личный кабинет",
            "Она не виновна",
            "это типична",
            "Оплата картой",
            "Раздел В.",
            "Москва",
            "Иван Петров",
            "Сумма отлична от нуля",
            "и т. д.",
            "Ошибка загрузки основной страницы",
            "Нет данных для основной страницы",
            "телефон основной",
            "ДОГОВОР ПУБЛИЧНОЙ ОФЕРТЫ",
            "Нет данных т.к. сервер недоступен",
            "Иванов т.е. Петров",
        ] {
            check(keep, keep);
        }
    }
}
