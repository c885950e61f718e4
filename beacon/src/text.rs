//! Cutting text to a length, the one way every field is cut: free text after scrubbing.

/// At most `max` characters of `s`.
pub fn cut_chars(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(end, _)| &s[..end])
}

/// At most `max` characters of scrubbed text; a placeholder the cut splits (`[addr`) goes.
pub fn cut_scrubbed(mut s: String, max: usize) -> String {
    let end = cut_chars(&s, max).len();
    if end < s.len() {
        s.truncate(end);
        if let Some(open) = s.rfind('[')
            && crate::scrub::Kind::ALL.iter().any(|k| k.placeholder().starts_with(&s[open..]))
        {
            s.truncate(open);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(super::cut_chars("яблоко", 3), "ябл");
        assert_eq!(super::cut_chars("ab", 3), "ab");
        assert_eq!(super::cut_scrubbed("to [address]".to_owned(), 7), "to ");
        assert_eq!(super::cut_scrubbed("to [address]".to_owned(), 12), "to [address]");
        assert_eq!(super::cut_scrubbed("a [b] c".to_owned(), 4), "a [b");
    }
}
