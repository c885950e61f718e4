//! Words and numbers of Russian text, for the address and name detectors.

/// A word (letters, with inner hyphens: `пр-т`, `Санкт-Петербург`), a number (`5`, `12а`,
/// `5/1`), a comma or any other punctuation. Spaces, `+` and `_` separate tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenKind {
    /// `dot`: a `.` follows right after it (`ул.`, `И.`).
    Word {
        dot: bool,
    },
    Number,
    Comma,
    Stop,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    /// The end of the word or number, before its dot.
    pub end: usize,
}

impl Token {
    /// The end, its dot included.
    pub fn end_with_dot(&self) -> usize {
        self.end + usize::from(matches!(self.kind, TokenKind::Word { dot: true }))
    }

    pub fn is_word(&self) -> bool {
        matches!(self.kind, TokenKind::Word { .. })
    }

    pub fn has_dot(&self) -> bool {
        matches!(self.kind, TokenKind::Word { dot: true })
    }
}

/// Whether `s` may hold Cyrillic text: the lead bytes of U+0400..U+04FF.
pub(super) fn has_cyrillic(s: &str) -> bool {
    s.bytes().any(|b| b == 0xd0 || b == 0xd1)
}

pub(super) fn is_cyrillic(c: char) -> bool {
    matches!(c, '\u{400}'..='\u{4ff}')
}

// Letter classes and lower case by ranges for ASCII and Russian, the text read here, and by
// the Unicode tables otherwise: the tables cost tens of nanoseconds a character.

pub(super) fn is_letter(c: char) -> bool {
    match c {
        'a'..='z' | 'A'..='Z' | '\u{400}'..='\u{45f}' => true,
        // ASCII, Latin-1 punctuation, general punctuation and currency signs (`«»–—₽`).
        _ if c.is_ascii() || matches!(c, '\u{a0}'..='\u{bf}' | '\u{2000}'..='\u{20cf}') => false,
        _ => c.is_alphabetic(),
    }
}

pub(super) fn is_upper(c: char) -> bool {
    match c {
        'A'..='Z' | '\u{400}'..='\u{42f}' => true,
        _ if c.is_ascii() || matches!(c, '\u{430}'..='\u{45f}') => false,
        _ => c.is_uppercase(),
    }
}

pub(super) fn is_lower(c: char) -> bool {
    match c {
        'a'..='z' | '\u{430}'..='\u{45f}' => true,
        _ if c.is_ascii() || matches!(c, '\u{400}'..='\u{42f}') => false,
        _ => c.is_lowercase(),
    }
}

/// One character's lower case (the first, where Unicode gives several).
pub(super) fn to_lower(c: char) -> char {
    match c {
        'A'..='Z' | '\u{410}'..='\u{42f}' => char::from_u32(c as u32 + 0x20).unwrap_or(c),
        '\u{400}'..='\u{40f}' => char::from_u32(c as u32 + 0x50).unwrap_or(c),
        _ if c.is_ascii() || matches!(c, '\u{430}'..='\u{45f}') => c,
        _ => c.to_lowercase().next().unwrap_or(c),
    }
}

/// The tokens of `s`. A lower-case letter followed by an upper-case one starts a new word, so
/// text glued to a name (`клиентИванов`) splits where a reader would.
pub(super) fn tokens(s: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(s.len() / 6 + 4);
    let mut chars = s.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if is_letter(c) {
            let mut end = start + c.len_utf8();
            let mut prev = c;
            while let Some(&(i, next)) = chars.peek() {
                let after = || s[i + next.len_utf8()..].chars().next();
                let letter = is_letter(next);
                let hyphen = next == '-' && after().is_some_and(is_letter);
                if !(letter || hyphen) {
                    break;
                }
                // `клиентИванов`, and `ИВАНОВОплачено`: an upper-case letter before a lower-case
                // one after upper-case ones starts a word.
                let camel = is_upper(next)
                    && (is_lower(prev)
                        || (is_upper(prev)
                            && end - start > c.len_utf8()
                            && after().is_some_and(|a| is_lower(a) && is_cyrillic(a) == is_cyrillic(next))));
                // Latin glued to Cyrillic (`xИванов`, `Ивановичy`) is two words too.
                let script = letter && is_cyrillic(prev) != is_cyrillic(next) && prev != '-';
                if camel || script {
                    break;
                }
                chars.next();
                end = i + next.len_utf8();
                prev = next;
            }
            let dot = s[end..].starts_with('.');
            if dot {
                chars.next();
            }
            out.push(Token { kind: TokenKind::Word { dot }, start, end });
        } else if c.is_ascii_digit() {
            let mut end = start + 1;
            while let Some(&(i, next)) = chars.peek() {
                let after = s[i + next.len_utf8()..].chars().next();
                let slash = next == '/' && after.is_some_and(|a| a.is_ascii_digit());
                // One letter right after the digits: a house number such as `12а`.
                let letter = is_letter(next)
                    && s[start..i].ends_with(|d: char| d.is_ascii_digit())
                    && !after.is_some_and(is_letter);
                if !(next.is_ascii_digit() || slash || letter) {
                    break;
                }
                chars.next();
                end = i + next.len_utf8();
            }
            out.push(Token { kind: TokenKind::Number, start, end });
        } else if c == ',' {
            out.push(Token { kind: TokenKind::Comma, start, end: start + 1 });
        } else if !(c.is_whitespace() || c == '+' || c == '_') {
            out.push(Token { kind: TokenKind::Stop, start, end: start + c.len_utf8() });
        }
    }
    out
}

/// How a word is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Case {
    /// `Иванов`
    Title,
    /// `ИВАНОВ` (or one upper-case letter)
    Upper,
    /// `иванов`
    Lower,
    Mixed,
}

/// The case of each part of a hyphenated word, if they agree (`Петров-Водкин`).
pub(super) fn case_of(word: &str) -> Case {
    let mut parts = word.split('-').map(case_of_part);
    let first = parts.next().unwrap_or(Case::Mixed);
    if parts.all(|c| c == first) { first } else { Case::Mixed }
}

fn case_of_part(word: &str) -> Case {
    let mut chars = word.chars().filter(|&c| is_letter(c));
    let Some(first) = chars.next() else { return Case::Mixed };
    let (mut upper, mut lower) = (0, 0);
    for c in chars {
        upper += usize::from(is_upper(c));
        lower += usize::from(is_lower(c));
    }
    match (is_upper(first), upper, lower) {
        (true, 0, 0) => Case::Upper,
        (true, 0, _) => Case::Title,
        (true, _, 0) => Case::Upper,
        (false, 0, _) => Case::Lower,
        _ => Case::Mixed,
    }
}

/// A word in lower case, on the stack: markers, particles and endings are compared with it
/// for every word of a text, so no allocation.
#[derive(Clone, Copy)]
pub(super) struct Lower {
    buf: [u8; 64],
    len: usize,
}

impl Lower {
    /// `None` for a word longer than any the lists compare with.
    pub fn of(word: &str) -> Option<Lower> {
        let mut out = Lower { buf: [0; 64], len: 0 };
        for c in word.chars().map(to_lower) {
            let len = c.len_utf8();
            if out.len + len > out.buf.len() {
                return None;
            }
            c.encode_utf8(&mut out.buf[out.len..out.len + len]);
            out.len += len;
        }
        Some(out)
    }

    /// The last `n` characters of `word` (at most 12), lower-cased.
    pub fn tail(word: &str, n: usize) -> Lower {
        let start = word.char_indices().rev().nth(n.min(12).saturating_sub(1)).map_or(0, |(i, _)| i);
        Lower::of(&word[start..]).unwrap_or(Lower { buf: [0; 64], len: 0 })
    }

    /// The text; call once per word, it checks the bytes.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Whether `word` is `lower` in any letter case. Upper- and lower-case ASCII and Russian letters
/// are as long in UTF-8, so words of another length are told apart without a look at a letter.
pub(super) fn eq_lower(word: &str, lower: &str) -> bool {
    word.len() == lower.len() && word.chars().zip(lower.chars()).all(|(a, b)| to_lower(a) == b)
}

/// Whether `word`, lower-cased, is one of `list`.
pub(super) fn lower_in(word: &str, list: &[&str]) -> bool {
    list.iter().any(|l| eq_lower(word, l))
}
