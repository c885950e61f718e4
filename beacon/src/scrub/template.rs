//! An error message's template (`sites[].error_templates`, docs/privacy-model.md section 4):
//! every quoted string's content becomes `<s>` and every number `<n>`, so
//! `Cannot read properties of undefined (reading 'total')` and `Request failed with status
//! code 502` keep their shape and nothing a page put into them. Messages that differ only
//! there group together too.
//!
//! A quote opens after a character that is not a letter or digit and closes at the same quote
//! (or its closing pair: `«»`, `“”`, `‘’`) followed by one that is not, on the same line, so
//! the apostrophe of `Can't` opens nothing. A number is a run of digits with inner `.` or `,`
//! and `0x` hex numbers, not glued after a letter (`ES2015`, `utf8` stay).

const STRING: &str = "<s>";
const NUMBER: &str = "<n>";
/// Longest quoted string collapsed; a longer one is more likely a stray quote.
const MAX_QUOTED_CHARS: usize = 500;

pub fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let after_word = prev.is_some_and(char::is_alphanumeric);
        if !after_word && let Some(close) = closing_quote(c) {
            let body = &rest[c.len_utf8()..];
            if let Some(end) = quoted_end(body, close) {
                out.push(c);
                out.push_str(STRING);
                out.push(close);
                rest = &body[end + close.len_utf8()..];
                prev = Some(close);
                continue;
            }
        }
        if c.is_ascii_digit() && !after_word {
            let len = number_len(rest);
            out.push_str(NUMBER);
            rest = &rest[len..];
            prev = Some('0');
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        prev = Some(c);
    }
    out
}

fn closing_quote(c: char) -> Option<char> {
    match c {
        '\'' | '"' | '`' => Some(c),
        '«' => Some('»'),
        '“' => Some('”'),
        '‘' => Some('’'),
        _ => None,
    }
}

/// The byte offset in `body` of the quote closing it, if the string is closed on its line.
fn quoted_end(body: &str, close: char) -> Option<usize> {
    for (count, (i, c)) in body.char_indices().enumerate() {
        if c == '\n' || count > MAX_QUOTED_CHARS {
            return None;
        }
        if c == close && i > 0 && !body[i + c.len_utf8()..].chars().next().is_some_and(char::is_alphanumeric) {
            return Some(i);
        }
    }
    None
}

/// Bytes of the number at the start of `s`: `0x1F`, `12`, `3.14`, `1,5`, `124.0.6367.91`.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
        return 2 + b[2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            i += 1;
        } else if matches!(b[i], b'.' | b',') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 2;
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_strings_and_numbers() {
        let check = |input: &str, expected: &str| assert_eq!(template(input), expected, "{input:?}");
        check(
            "TypeError: Cannot read properties of undefined (reading 'total')",
            "TypeError: Cannot read properties of undefined (reading '<s>')",
        );
        check("Request failed with status code 502", "Request failed with status code <n>");
        check("Can't find variable: foo", "Can't find variable: foo");
        check("Лимит «Тариф 2» превышен на 1 200,50 ₽", "Лимит «<s>» превышен на <n> <n> ₽");
        check("at 0x1F3a line 12:34, ES2015 utf8", "at <n> line <n>:<n>, ES2015 utf8");
        check("\"unclosed", "\"unclosed");
        check("", "");
        check("[email] is not valid: \"[email]\"", "[email] is not valid: \"<s>\"");
    }
}
