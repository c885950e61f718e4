//! Cutting text to a length, the one way every field is cut.

/// At most `max` characters of `s`.
pub fn cut_chars(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(end, _)| &s[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(super::cut_chars("яблоко", 3), "ябл");
        assert_eq!(super::cut_chars("ab", 3), "ab");
    }
}
