//! Field format checks, exactly as Backstage's default validators (`spec/entity-model.md` §2).
//!
//! Written as byte loops rather than regexes: they run for every field of every entity.

/// Lower-case alphanumeric runs joined by one or more dashes, 1–63 long (`a--b` is valid).
pub fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Dot-separated DNS labels, 1–253 long.
pub fn is_dns_subdomain(text: &str) -> bool {
    (1..=253).contains(&text.len()) && text.split('.').all(is_dns_label)
}

/// 1–63 long, alphanumeric at both ends, `[-A-Za-z0-9_.]` in between (runs allowed).
pub fn is_object_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `name` or `prefix/name`, where prefix is a DNS subdomain and name an object name.
pub fn is_prefixed_key(text: &str) -> bool {
    let mut parts = text.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => is_object_name(name),
        (Some(prefix), Some(name), None) => is_dns_subdomain(prefix) && is_object_name(name),
        _ => false,
    }
}

fn is_version_part(text: &str) -> bool {
    (1..=63).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `version` or `group/version` (group a DNS subdomain, version alphanumeric, 1–63).
pub fn is_api_version(text: &str) -> bool {
    let mut parts = text.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(version), None, None) => is_version_part(version),
        (Some(group), Some(version), None) => is_dns_subdomain(group) && is_version_part(version),
        _ => false,
    }
}

/// A letter followed by letters and digits, 1–63 long.
pub fn is_kind(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes.iter().all(u8::is_ascii_alphanumeric)
}

fn is_tag_char(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b':' | b'+' | b'#')
}

/// Runs of `[a-z0-9:+#]` joined by single dashes, 1–63 long.
pub fn is_tag(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .split(|b| *b == b'-')
            .all(|run| !run.is_empty() && run.iter().all(|b| is_tag_char(*b)))
}

/// Empty, or an object name.
pub fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_object_name(text)
}

/// An absolute URL of any scheme, as the WHATWG `new URL(value)` accepts without a base.
pub fn is_absolute_url(text: &str) -> bool {
    url::Url::parse(text).is_ok()
}

/// At least one non-whitespace character.
pub fn is_non_blank(text: &str) -> bool {
    !text.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "a--b", "123", "my-ns", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in [
            "",
            "Default",
            "my_ns",
            "my.ns",
            "-ns",
            "ns-",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn object_names() {
        for ok in [
            "a",
            "A",
            "a--b",
            "a..b",
            "a_-b",
            "yes",
            "123",
            "Artist.Web_1",
        ] {
            assert!(is_object_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a b",
            "a/b",
            "${{ values.name | dump }}",
            &"a".repeat(64),
        ] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }

    #[test]
    fn prefixed_keys() {
        for ok in ["backstage.io/view-url", "key", "example.com/Key", "a/b"] {
            assert!(is_prefixed_key(ok), "{ok}");
        }
        for bad in ["/x", "x/", "a/b/c", "Example.com/key", "a_b/x", ""] {
            assert!(!is_prefixed_key(bad), "{bad}");
        }
    }

    #[test]
    fn api_versions_and_kinds() {
        assert!(is_api_version("backstage.io/v1alpha1"));
        assert!(is_api_version("v1"));
        assert!(is_api_version("scaffolder.backstage.io/v1beta3"));
        assert!(!is_api_version("Backstage.io/v1"));
        assert!(!is_api_version("a/b/c"));
        assert!(!is_api_version("backstage.io/v1-alpha"));
        assert!(is_kind("Component") && is_kind("aiResource2"));
        assert!(!is_kind("2Component") && !is_kind("my-kind") && !is_kind(""));
    }

    #[test]
    fn tags() {
        for ok in ["java", "c++", "c#", "a:b", "data-pipeline", "v1"] {
            assert!(is_tag(ok), "{ok}");
        }
        for bad in ["", "Java", "a--b", "-a", "a-", "a_b", "a.b", "two words"] {
            assert!(!is_tag(bad), "{bad}");
        }
    }

    #[test]
    fn urls_and_blank() {
        assert!(is_absolute_url("https://example.com"));
        assert!(is_absolute_url("mailto:team@example.com"));
        assert!(is_absolute_url("slack:channel"));
        assert!(!is_absolute_url("example.com/path"));
        assert!(!is_absolute_url("./relative"));
        assert!(!is_non_blank("   ") && is_non_blank(" x "));
        assert!(is_label_value("") && !is_label_value("two words"));
    }
}
