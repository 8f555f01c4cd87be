//! How the words of a query match, decided once for both backends: per word, the clauses any
//! of which matches it (every word must match), and whole-query clauses that match on their
//! own. Each backend turns clauses into its own queries.

use crate::document::typo_distance;

/// Words are cut into leading n-grams up to this length for search as you type.
pub const MAX_GRAM: usize = 20;

/// Text fields searched per word, with their boosts: name and title above description.
pub const WORD_FIELDS: [(&str, f32); 6] = [
    ("name", 5.0),
    ("title", 4.0),
    ("tags_text", 3.0),
    ("relations_text", 2.0),
    ("description", 1.0),
    ("extra", 1.0),
];
/// Fields holding the leading n-grams of each word.
pub const PREFIX_FIELDS: [(&str, f32); 2] = [("name_prefix", 3.0), ("title_prefix", 2.0)];
/// Fields searched with typos, when typos are asked for.
pub const TYPO_FIELDS: [(&str, f32); 2] = [("name", 2.0), ("title", 1.5)];

/// One way for a word to match: the term in a field, or a term within `typos` edits of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub field: &'static str,
    pub term: String,
    pub boost: f32,
    /// 0 for the exact term.
    pub typos: u8,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextPlan {
    pub per_word: Vec<Vec<Clause>>,
    pub wholes: Vec<Clause>,
}

impl TextPlan {
    /// The plan for `query_words`; typo clauses only when `typos` (they are the fallback when
    /// exact words and prefixes find fewer hits than a page).
    pub fn new(query_words: &[String], typos: bool) -> TextPlan {
        let exact = |field: &'static str, term: &str, boost: f32| Clause {
            field,
            term: term.to_owned(),
            boost,
            typos: 0,
        };
        let per_word = query_words
            .iter()
            .map(|word| {
                let mut clauses: Vec<Clause> = WORD_FIELDS
                    .iter()
                    .map(|(field, boost)| exact(field, word, *boost))
                    .collect();
                if word.chars().count() <= MAX_GRAM {
                    clauses.extend(
                        PREFIX_FIELDS
                            .iter()
                            .map(|(field, boost)| exact(field, word, *boost)),
                    );
                }
                let distance = typo_distance(word);
                if typos && distance > 0 {
                    clauses.extend(TYPO_FIELDS.iter().map(|(field, boost)| Clause {
                        typos: distance,
                        ..exact(field, word, *boost)
                    }));
                }
                clauses
            })
            .collect();
        // `payment gate` also finds `paymentgateway` whole.
        let mut wholes = Vec::new();
        if query_words.len() > 1 {
            let joined = query_words.concat();
            wholes.push(exact("name", &joined, 5.0));
            if joined.chars().count() <= MAX_GRAM {
                wholes.push(exact("name_prefix", &joined, 3.0));
            }
        }
        TextPlan { per_word, wholes }
    }

    /// Whether the query has words at all.
    pub fn is_empty(&self) -> bool {
        self.per_word.is_empty()
    }
}

/// Whether a search that found `total` hits for a page of `limit` should be run again with
/// typo clauses.
pub fn needs_typos(query_words: &[String], total: u64, limit: usize) -> bool {
    total < limit as u64 && query_words.iter().any(|word| typo_distance(word) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_gets_words_prefixes_and_typos_only_when_asked() {
        let words = vec!["payment".to_owned(), "gw".to_owned()];
        let plain = TextPlan::new(&words, false);
        assert_eq!(plain.per_word.len(), 2);
        assert_eq!(
            plain.per_word[0].len(),
            WORD_FIELDS.len() + PREFIX_FIELDS.len()
        );
        assert!(plain.per_word[0].iter().all(|clause| clause.typos == 0));
        assert_eq!(plain.wholes[0].term, "paymentgw");
        let typos = TextPlan::new(&words, true);
        assert_eq!(typos.per_word[0].last().unwrap().typos, 1);
        // Two letters are too short for typos.
        assert_eq!(typos.per_word[1].len(), plain.per_word[1].len());
        assert!(needs_typos(&words, 3, 25));
        assert!(!needs_typos(&words, 30, 25));
        assert!(!needs_typos(&["gw".to_owned()], 0, 25));
    }
}
