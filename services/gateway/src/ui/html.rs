//! HTML building blocks: escaping, URLs and entity links. Every value that comes from the
//! catalog or the request goes through [`esc`] (text and quoted attributes alike), and every
//! URL taken from an entity goes through [`safe_url`], so a hostile catalog file cannot
//! inject markup or `javascript:` links.

use std::fmt;
use std::fmt::Write as _;

use cadastre_model::{EntityRef, RefContext};

/// Text escaped for HTML content and double- or single-quoted attribute values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Esc<'a>(&'a str);

/// `text`, escaped when formatted.
pub(crate) fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// One path segment, percent-encoded (everything but unreserved characters).
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A query string (`?a=1&b=2`, or empty) of `pairs`, form-encoded.
pub(crate) fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    serializer.extend_pairs(pairs);
    let encoded = serializer.finish();
    if encoded.is_empty() {
        encoded
    } else {
        format!("?{encoded}")
    }
}

/// The entity page of `kind:namespace/name` (the path Backstage's search documents use).
pub(crate) fn entity_path(namespace: &str, kind: &str, name: &str) -> String {
    format!(
        "/catalog/{}/{}/{}",
        segment(&namespace.to_lowercase()),
        segment(&kind.to_lowercase()),
        segment(name)
    )
}

/// A link to the entity `reference` names (with the defaults of its field), showing the
/// reference as written; plain escaped text when it is not a reference.
pub(crate) fn ref_link(reference: &str, default_kind: Option<&str>, namespace: &str) -> String {
    match EntityRef::parse(reference, RefContext::new(default_kind, Some(namespace))) {
        Ok(target) => format!(
            "<a href=\"{}\">{}</a>",
            esc(&entity_path(&target.namespace, &target.kind, &target.name)),
            esc(reference)
        ),
        Err(_) => esc(reference).to_string(),
    }
}

/// `text` when it is an absolute `http(s)` URL, the only links taken from entities.
pub(crate) fn safe_url(text: &str) -> Option<&str> {
    url::Url::parse(text)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .map(|_| text)
}

/// A search highlight fragment made safe to embed: the search service sends the field's text
/// HTML-escaped with matches in `<mark>…</mark>`. Rather than trusting that, the text between
/// the tags is unescaped and escaped again here, and only balanced `<mark>` tags are kept.
pub(crate) fn marked(fragment: &str) -> String {
    let mut out = String::with_capacity(fragment.len() + 16);
    let mut open = false;
    let mut rest = fragment;
    loop {
        let next = [("<mark>", true), ("</mark>", false)]
            .into_iter()
            .filter_map(|(tag, opens)| rest.find(tag).map(|at| (at, tag, opens)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, tag, opens)) = next else {
            out.push_str(&esc(&unescape(rest)).to_string());
            break;
        };
        out.push_str(&esc(&unescape(&rest[..at])).to_string());
        if opens != open {
            out.push_str(tag);
            open = opens;
        }
        rest = &rest[at + tag.len()..];
    }
    if open {
        out.push_str("</mark>");
    }
    out
}

/// The text of HTML-escaped `text` (the entities an escaper writes; others stay as they are).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
            ("&#x27;", '\''),
        ]
        .into_iter()
        .find(|(entity, _)| rest.starts_with(entity));
        match entity {
            Some((entity, c)) => {
                out.push(c);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What names an entity on a page.
#[derive(Debug)]
pub(crate) struct Names {
    pub kind: String,
    /// `default` when the entity states none.
    pub namespace: String,
    pub name: String,
    /// `metadata.title`, else the name.
    pub title: String,
}

/// The names of a served entity body.
pub(crate) fn names(entity: &serde_json::Value) -> Names {
    let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
    let name = text(&entity["metadata"]["name"]).unwrap_or_default();
    Names {
        kind: text(&entity["kind"]).unwrap_or_default(),
        namespace: text(&entity["metadata"]["namespace"]).unwrap_or_else(|| "default".into()),
        title: text(&entity["metadata"]["title"]).unwrap_or_else(|| name.clone()),
        name,
    }
}

/// One facet value in a filter list: a link to the view with it toggled, marked when chosen
/// (`aria-current`, and a check drawn by the stylesheet), with its count.
pub(crate) fn facet_value(
    out: &mut String,
    href: &str,
    on: bool,
    facet: &str,
    value: &str,
    count: u64,
) {
    let _ = write!(
        out,
        "<li><a class=\"facet-value\" href=\"{href}\"{current} data-facet=\"{facet}\">\
         <span class=\"check\" aria-hidden=\"true\"></span>\
         <span class=\"visually-hidden\">{state} </span>{value} \
         <span class=\"count\">{count}</span></a></li>",
        href = esc(href),
        current = if on { " aria-current=\"true\"" } else { "" },
        facet = esc(facet),
        state = if on { "Remove filter" } else { "Filter by" },
        value = esc(value),
    );
}

/// Tags as small labels.
pub(crate) fn tags<'a>(out: &mut String, tags: impl IntoIterator<Item = &'a str>) {
    for tag in tags {
        let _ = write!(out, "<span class=\"tag\">{}</span> ", esc(tag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            esc("<a href=\"x\" title='y'>&</a>").to_string(),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(esc("plain é").to_string(), "plain é");
    }

    #[test]
    fn encodes_paths_and_queries() {
        assert_eq!(segment("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(
            entity_path("Default", "Component", "x/y"),
            "/catalog/default/component/x%2Fy"
        );
        assert_eq!(query([("filter", "kind=api")]), "?filter=kind%3Dapi");
        assert_eq!(query([]), "");
    }

    #[test]
    fn links_references_with_their_defaults() {
        assert_eq!(
            ref_link("team-a", Some("group"), "default"),
            "<a href=\"/catalog/default/group/team-a\">team-a</a>"
        );
        assert_eq!(
            ref_link("user:ops/jo", Some("group"), "default"),
            "<a href=\"/catalog/ops/user/jo\">user:ops/jo</a>"
        );
        assert_eq!(ref_link("<b>", None, "default"), "&lt;b&gt;");
    }

    #[test]
    fn only_web_urls_are_links() {
        assert_eq!(
            safe_url("https://example.com/x"),
            Some("https://example.com/x")
        );
        assert_eq!(safe_url("javascript:alert(1)"), None);
        assert_eq!(safe_url("/relative"), None);
    }

    #[test]
    fn highlights_keep_only_balanced_marks() {
        assert_eq!(
            marked("a &amp; <mark>b</mark> &lt;c&gt;"),
            "a &amp; <mark>b</mark> &lt;c&gt;"
        );
        // Raw markup a backend let through is escaped; stray and unclosed tags are fixed.
        assert_eq!(
            marked("<script>x</script></mark><mark>y"),
            "&lt;script&gt;x&lt;/script&gt;<mark>y</mark>"
        );
        assert_eq!(marked("&amp;lt;"), "&amp;lt;");
    }
}
