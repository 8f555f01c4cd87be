//! Highlights, computed here for both backends so they mark the same words: a word of the
//! text is marked when it starts with a word of the query (search as you type) or is within
//! that word's typo distance.

use crate::document::{typo_distance, words};

/// The fields highlighted, in the order returned.
pub const HIGHLIGHTED: [&str; 3] = ["name", "title", "description"];

/// `(field, fragment)` for each of `fields` (name and text) with at least one marked word.
pub fn highlights(query: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
    let query_words = words(query);
    if query_words.is_empty() {
        return Vec::new();
    }
    fields
        .iter()
        .filter_map(|(field, text)| {
            mark(text, &query_words).map(|fragment| ((*field).to_owned(), fragment))
        })
        .collect()
}

/// `text`, HTML-escaped, with matching words inside `<mark>`; `None` when nothing matches.
fn mark(text: &str, query_words: &[String]) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut marked = false;
    let mut rest = text;
    while !rest.is_empty() {
        let word_start = rest.find(char::is_alphanumeric).unwrap_or(rest.len());
        escape_into(&mut out, &rest[..word_start]);
        rest = &rest[word_start..];
        let word_end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        let word = &rest[..word_end];
        if !word.is_empty() {
            if matches(&word.to_lowercase(), query_words) {
                marked = true;
                out.push_str("<mark>");
                escape_into(&mut out, word);
                out.push_str("</mark>");
            } else {
                escape_into(&mut out, word);
            }
        }
        rest = &rest[word_end..];
    }
    marked.then_some(out)
}

fn matches(word: &str, query_words: &[String]) -> bool {
    query_words.iter().any(|query| {
        word.starts_with(query.as_str()) || {
            let distance = typo_distance(query) as usize;
            distance > 0 && levenshtein_within(word, query, distance)
        }
    })
}

/// Whether the edit distance between `a` and `b` is at most `limit`.
fn levenshtein_within(a: &str, b: &str, limit: usize) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return false;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()] <= limit
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_prefixes_and_typos_and_escapes_the_rest() {
        let found = highlights(
            "paymnt gate",
            &[
                ("name", "payment-gateway"),
                ("title", "Unrelated"),
                ("description", "Takes <card> payments & gates"),
            ],
        );
        assert_eq!(
            found,
            vec![
                (
                    "name".to_owned(),
                    "<mark>payment</mark>-<mark>gateway</mark>".to_owned()
                ),
                (
                    "description".to_owned(),
                    "Takes &lt;card&gt; payments &amp; <mark>gates</mark>".to_owned()
                ),
            ]
        );
        assert!(highlights("", &[("name", "x")]).is_empty());
    }
}
