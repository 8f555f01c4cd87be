//! Entity references: `[<kind>:][<namespace>/]<name>`.
//!
//! Parsing follows Backstage exactly (see `spec/entity-model.md` §3): the parts are not
//! validated against name formats, missing parts take the caller's defaults, and the
//! canonical form lower-cases all three parts. Equality and hashing are case-insensitive.

use std::fmt;
use std::hash::{Hash, Hasher};

use thiserror::Error;

/// The namespace used when neither the reference nor its context gives one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a reference string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RefError {
    #[error(
        "entity reference {0:?} is not on the form [<kind>:][<namespace>/]<name> (a part is empty)"
    )]
    Malformed(String),
    #[error(
        "entity reference {0:?} has a missing or empty kind, and this field has no default kind"
    )]
    MissingKind(String),
}

/// Defaults that apply where a reference omits its kind or namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefContext<'a> {
    pub default_kind: Option<&'a str>,
    pub default_namespace: Option<&'a str>,
}

impl<'a> RefContext<'a> {
    pub fn new(default_kind: Option<&'a str>, default_namespace: Option<&'a str>) -> Self {
        RefContext {
            default_kind,
            default_namespace,
        }
    }
}

/// A parsed entity reference, keeping the casing it was written with.
#[derive(Debug, Clone, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntityRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl EntityRef {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        EntityRef {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses a reference with the defaults of its context.
    pub fn parse(text: &str, context: RefContext<'_>) -> Result<EntityRef, RefError> {
        let colon = text.find(':');
        let slash = text.find('/');
        // A slash before the first colon means the colon belongs to the name: no kind.
        let colon = match (colon, slash) {
            (Some(c), Some(s)) if s < c => None,
            (c, _) => c,
        };
        let (kind, rest) = match colon {
            Some(c) => (Some(&text[..c]), &text[c + 1..]),
            None => (None, text),
        };
        let (namespace, name) = match rest.find('/') {
            Some(s) => (Some(&rest[..s]), &rest[s + 1..]),
            None => (None, rest),
        };
        if kind == Some("") || namespace == Some("") || name.is_empty() {
            return Err(RefError::Malformed(text.to_owned()));
        }
        let kind = kind
            .or(context.default_kind)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| RefError::MissingKind(text.to_owned()))?;
        let namespace = namespace
            .or(context.default_namespace)
            .unwrap_or(DEFAULT_NAMESPACE);
        Ok(EntityRef::new(kind, namespace, name))
    }

    /// `kind:namespace/name`, all lower case: the form the catalog keys on.
    pub fn canonical(&self) -> String {
        let mut out =
            String::with_capacity(self.kind.len() + self.namespace.len() + self.name.len() + 2);
        push_lower(&mut out, &self.kind);
        out.push(':');
        push_lower(&mut out, &self.namespace);
        out.push('/');
        push_lower(&mut out, &self.name);
        out
    }
}

fn push_lower(out: &mut String, text: &str) {
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        out.push_str(&text.to_lowercase());
    }
}

impl PartialEq for EntityRef {
    fn eq(&self, other: &Self) -> bool {
        if self.is_ascii() && other.is_ascii() {
            self.kind.eq_ignore_ascii_case(&other.kind)
                && self.namespace.eq_ignore_ascii_case(&other.namespace)
                && self.name.eq_ignore_ascii_case(&other.name)
        } else {
            self.canonical() == other.canonical()
        }
    }
}

impl EntityRef {
    fn is_ascii(&self) -> bool {
        self.kind.is_ascii() && self.namespace.is_ascii() && self.name.is_ascii()
    }
}

impl Hash for EntityRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical().hash(state);
    }
}

/// Displays the canonical (lower-case) form.
impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, kind: Option<&str>, ns: Option<&str>) -> Result<String, RefError> {
        EntityRef::parse(text, RefContext::new(kind, ns)).map(|r| r.canonical())
    }

    #[test]
    fn parses_with_context_defaults() {
        assert_eq!(
            parse("team-a", Some("Group"), None).unwrap(),
            "group:default/team-a"
        );
        assert_eq!(
            parse("team-a", Some("Group"), Some("music")).unwrap(),
            "group:music/team-a"
        );
        assert_eq!(
            parse("user:jdoe", Some("Group"), Some("music")).unwrap(),
            "user:music/jdoe"
        );
        assert_eq!(
            parse("Component:Ns/X", None, None).unwrap(),
            "component:ns/x"
        );
        assert_eq!(
            parse("ns/x", Some("api"), Some("other")).unwrap(),
            "api:ns/x"
        );
    }

    #[test]
    fn follows_backstage_edge_cases() {
        // Parts are not validated against formats.
        assert_eq!(parse("a:b:c", None, None).unwrap(), "a:default/b:c");
        assert_eq!(parse("group:ns/x/y", None, None).unwrap(), "group:ns/x/y");
        // A slash before the colon: the colon is part of the name.
        assert_eq!(
            parse("ns/a:b", Some("component"), None).unwrap(),
            "component:ns/a:b"
        );
        for bad in [":x", "group:", "group:/x", "/x", "group:ns/", "ns/", ""] {
            assert!(
                matches!(parse(bad, Some("group"), None), Err(RefError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("db", None, None),
            Err(RefError::MissingKind(_))
        ));
    }

    #[test]
    fn compares_case_insensitively() {
        let a = EntityRef::new("Component", "Default", "Artist-Web");
        let b = EntityRef::new("component", "default", "artist-web");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "component:default/artist-web");
        let mut set = std::collections::HashSet::new();
        set.insert(a);
        assert!(set.contains(&b));
    }
}
