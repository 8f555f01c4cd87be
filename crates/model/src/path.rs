//! Field paths such as `spec.owner`, `metadata.tags[2]` or
//! `metadata.annotations["backstage.io/view-url"]`.

use std::fmt;

/// One step into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root to a field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

impl FieldPath {
    pub fn root() -> Self {
        FieldPath::default()
    }

    /// Builds a path from dotted keys, e.g. `FieldPath::keys(&["spec", "owner"])`.
    pub fn keys(keys: &[&str]) -> Self {
        FieldPath {
            segments: keys.iter().map(|k| Segment::Key((*k).to_owned())).collect(),
        }
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Key(key.to_owned()));
        FieldPath { segments }
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Index(index));
        FieldPath { segments }
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }
}

/// A key can be written after a dot when it is a plain identifier-like word.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_plain_key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{}]", serde_json::Value::from(key.as_str()))?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_a_reader_expects() {
        assert_eq!(
            FieldPath::keys(&["spec", "owner"]).to_string(),
            "spec.owner"
        );
        assert_eq!(
            FieldPath::keys(&["metadata", "tags"]).index(2).to_string(),
            "metadata.tags[2]"
        );
        assert_eq!(
            FieldPath::keys(&["metadata", "annotations", "backstage.io/view-url"]).to_string(),
            r#"metadata.annotations["backstage.io/view-url"]"#
        );
        assert_eq!(FieldPath::root().to_string(), "");
    }
}
