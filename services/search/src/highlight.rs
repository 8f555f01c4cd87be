//! Highlights, computed here for both backends so they mark the same words: a word of the
//! text is marked when it starts with a word of the query (search as you type) or, when the
//! search fell back to typos, is within that word's typo distance. Marks show why a hit
//! matched: a search that found its hits without typos marks no near misses.

use crate::document::{typo_distance, words};

/// The fields highlighted, in the order returned.
pub const HIGHLIGHTED: [&str; 3] = ["name", "title", "description"];

/// `(field, fragment)` for each of `fields` (name and text) with at least one marked word.
pub fn highlights(query: &str, fields: &[(&str, &str)], typos: bool) -> Vec<(String, String)> {
    let query_words: Vec<QueryWord> = words(query)
        .into_iter()
        .map(|word| QueryWord::new(word, typos))
        .collect();
    if query_words.is_empty() {
        return Vec::new();
    }
    let mut scratch = Scratch::default();
    fields
        .iter()
        .filter_map(|(field, text)| {
            mark(text, &query_words, &mut scratch).map(|fragment| ((*field).to_owned(), fragment))
        })
        .collect()
}

/// A word of the query, with what matching a word of the text against it needs.
struct QueryWord {
    text: String,
    chars: Vec<char>,
    typos: usize,
}

impl QueryWord {
    fn new(text: String, typos: bool) -> QueryWord {
        QueryWord {
            chars: text.chars().collect(),
            typos: if typos {
                typo_distance(&text) as usize
            } else {
                0
            },
            text,
        }
    }
}

/// Buffers reused across the words of a text: a description has dozens, and matching them
/// allocated a lower-case copy of each and a row per letter compared.
#[derive(Default)]
struct Scratch {
    lowered: String,
    rows: Rows,
}

/// Two rows of an edit-distance table.
#[derive(Default)]
struct Rows {
    previous: Vec<usize>,
    current: Vec<usize>,
}

/// `text`, HTML-escaped, with matching words inside `<mark>`; `None` when nothing matches.
/// Nothing is copied before the first match: most descriptions of a page have none.
fn mark(text: &str, query_words: &[QueryWord], scratch: &mut Scratch) -> Option<String> {
    let mut out: Option<String> = None;
    let mut at = 0;
    while at < text.len() {
        let word_start = at + first_where(&text[at..], true);
        let word_end = word_start + first_where(&text[word_start..], false);
        let word = &text[word_start..word_end];
        let matched = !word.is_empty() && matches(word, query_words, scratch);
        let out = match out.as_mut() {
            Some(out) => {
                escape_into(out, &text[at..word_start]);
                out
            }
            None if matched => {
                let started = out.insert(String::with_capacity(text.len() + 16));
                escape_into(started, &text[..word_start]);
                started
            }
            None => {
                at = word_end;
                continue;
            }
        };
        if matched {
            out.push_str("<mark>");
            escape_into(out, word);
            out.push_str("</mark>");
        } else {
            escape_into(out, word);
        }
        at = word_end;
    }
    out
}

/// Where the first character of `text` that is (or is not) a letter or digit starts, or the
/// end; ASCII is tested a byte at a time (a search highlights every word of 25 descriptions).
fn first_where(text: &str, alphanumeric: bool) -> usize {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte.is_ascii() {
            if byte.is_ascii_alphanumeric() == alphanumeric {
                return at;
            }
            at += 1;
        } else {
            let c = text[at..].chars().next().unwrap_or_default();
            if c.is_alphanumeric() == alphanumeric {
                return at;
            }
            at += c.len_utf8();
        }
    }
    bytes.len()
}

fn matches(word: &str, query_words: &[QueryWord], scratch: &mut Scratch) -> bool {
    let Scratch { lowered, rows } = scratch;
    lowered.clear();
    if word.is_ascii() {
        lowered.push_str(word);
        lowered.make_ascii_lowercase();
    } else {
        lowered.extend(word.chars().flat_map(char::to_lowercase));
    }
    query_words.iter().any(|query| {
        lowered.starts_with(query.text.as_str())
            || (query.typos > 0 && levenshtein_within(lowered, &query.chars, query.typos, rows))
    })
}

/// Whether the edit distance between `a` and `b` is at most `limit`.
fn levenshtein_within(a: &str, b: &[char], limit: usize, rows: &mut Rows) -> bool {
    let letters = if a.is_ascii() {
        a.len()
    } else {
        a.chars().count()
    };
    if letters.abs_diff(b.len()) > limit {
        return false;
    }
    let Rows { previous, current } = rows;
    previous.clear();
    previous.extend(0..=b.len());
    for (i, ca) in a.chars().enumerate() {
        current.clear();
        current.push(i + 1);
        let mut row_best = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let distance = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            row_best = row_best.min(distance);
            current.push(distance);
        }
        // A row's smallest distance never shrinks further down.
        if row_best > limit {
            return false;
        }
        std::mem::swap(previous, current);
    }
    previous[b.len()] <= limit
}

fn escape_into(out: &mut String, text: &str) {
    // Byte by byte: the four escaped characters are ASCII, and no byte of a longer UTF-8
    // character equals one of them; the runs between are copied whole.
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'"' => "&quot;",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        out.push_str(escaped);
        start = index + 1;
    }
    out.push_str(&text[start..]);
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
            true,
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
        assert!(highlights("", &[("name", "x")], true).is_empty());
        // Found without typos: only what starts with a word of the query is marked.
        assert_eq!(
            highlights("paymnt gate", &[("name", "payment-gateway")], false),
            vec![("name".to_owned(), "payment-<mark>gateway</mark>".to_owned())]
        );
    }

    #[test]
    fn words_split_at_any_letter_or_digit() {
        assert_eq!(first_where("  ab", true), 2);
        assert_eq!(first_where("ab-c", false), 2);
        assert_eq!(first_where("—é1", true), "—".len());
        assert_eq!(first_where("éü x", false), "éü".len());
        assert_eq!(first_where("abc", false), 3);
        assert_eq!(first_where("", true), 0);
    }

    #[test]
    fn edit_distances_are_bounded_exactly() {
        let within = |a: &str, b: &str, limit: usize| {
            let b: Vec<char> = b.chars().collect();
            levenshtein_within(a, &b, limit, &mut Rows::default())
        };
        assert!(within("kitten", "sitting", 3));
        assert!(!within("kitten", "sitting", 2));
        assert!(within("component", "componnet", 2));
        assert!(!within("component", "compact", 2));
        assert!(within("", "ab", 2) && !within("", "abc", 2));
        assert!(within("Ärger", "ärger", 1) && within("ärger", "ärger", 0));
        // Mixed case in the text is matched as lower case.
        assert_eq!(
            highlights("straße", &[("title", "STRASSE Straßen")], true),
            vec![(
                "title".to_owned(),
                "STRASSE <mark>Straßen</mark>".to_owned()
            )]
        );
    }
}
