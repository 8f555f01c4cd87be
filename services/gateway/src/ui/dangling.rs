//! References to entities the catalog does not hold (an owner nobody declared, a relation to
//! a removed API) are shown as such, not as links to a page that is not there. Pages link
//! every reference they render (`html::ref_link`, the graph); this middleware asks the store,
//! in one call per page, which of the linked entities exist, and turns the links to the
//! others into marked placeholders.

use std::collections::{BTreeSet, HashSet};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use cadastre_proto::v1 as pb;

use crate::Gateway;

/// Pages larger than this are passed on untouched (no page of the UI comes near it).
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// Refs asked of the store per call.
const CHUNK: usize = 500;
const ENTITY_LINK: &str = "<a href=\"/catalog/";

pub async fn mark_missing(
    State(gateway): State<Gateway>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let is_page = response.status().is_success()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
    if !is_page {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PAGE_BYTES).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(html) = String::from_utf8(bytes.to_vec()) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let linked: BTreeSet<String> = links(&html).map(|(_, entity_ref)| entity_ref).collect();
    let html = match existing(&gateway, &linked).await {
        Some(existing) if existing.len() < linked.len() => unlink(&html, &existing),
        // All there, or the store cannot say: the page as rendered.
        _ => html,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html))
}

/// Every entity link of `html`: (byte offset of its `<a`, the entity ref it names).
fn links(html: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    html.match_indices(ENTITY_LINK).filter_map(|(at, _)| {
        let rest = &html[at + ENTITY_LINK.len()..];
        let href = &rest[..rest.find('"')?];
        let path = href.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<String> = path
            .split('/')
            .map(|segment| percent_encoding_decode(segment).to_lowercase())
            .collect();
        match segments.as_slice() {
            [namespace, kind, name] if !name.is_empty() => {
                Some((at, format!("{kind}:{namespace}/{name}")))
            }
            _ => None,
        }
    })
}

fn percent_encoding_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// Which of `refs` the catalog holds; `None` when the store cannot be asked.
async fn existing(gateway: &Gateway, refs: &BTreeSet<String>) -> Option<HashSet<String>> {
    let refs: Vec<String> = refs.iter().cloned().collect();
    let mut found = HashSet::new();
    for chunk in refs.chunks(CHUNK) {
        let items = gateway
            .catalog()
            .get_entities_by_refs(pb::GetEntitiesByRefsRequest {
                entity_refs: chunk.to_vec(),
                fields: vec!["kind".into()],
                filter: None,
            })
            .await
            .ok()?
            .into_inner()
            .items;
        found.extend(
            chunk
                .iter()
                .zip(items)
                .filter(|(_, item)| item.entity.is_some())
                .map(|(entity_ref, _)| entity_ref.clone()),
        );
    }
    Some(found)
}

/// `html` with each link to an entity not in `existing` turned into a placeholder: the same
/// element without its `href` (so not a link, and not focusable), marked and titled.
fn unlink(html: &str, existing: &HashSet<String>) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut copied = 0;
    for (at, entity_ref) in links(html) {
        if existing.contains(&entity_ref) {
            continue;
        }
        let rest = &html[at + ENTITY_LINK.len()..];
        let Some(end) = rest.find('"') else { continue };
        out.push_str(&html[copied..at]);
        copied = at + ENTITY_LINK.len() + end + 1;
        // A link with its own classes keeps them (an element has one `class` attribute).
        const CLASS: &str = " class=\"";
        if html[copied..].starts_with(CLASS) {
            out.push_str("<a title=\"Not in the catalog\" class=\"missing-ref ");
            copied += CLASS.len();
        } else {
            out.push_str("<a class=\"missing-ref\" title=\"Not in the catalog\"");
        }
    }
    out.push_str(&html[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_missing_entities_become_placeholders() {
        let html = concat!(
            "<p><a href=\"/catalog/default/group/team-a\">team-a</a> and ",
            "<a href=\"/catalog/default/group/guest\">guest</a> and ",
            "<a href=\"/catalog/default/component/x%3Ay?depth=2\">x</a> and ",
            "<a href=\"/search?q=a\">search</a></p>",
            "<a href=\"/catalog/default/group/gone\" class=\"node ring-1\">gone</a>"
        );
        let found: Vec<String> = links(html).map(|(_, r)| r).collect();
        assert_eq!(
            found,
            [
                "group:default/team-a",
                "group:default/guest",
                "component:default/x:y",
                "group:default/gone"
            ]
        );
        let existing = HashSet::from(["group:default/team-a".to_owned()]);
        assert_eq!(
            unlink(html, &existing),
            concat!(
                "<p><a href=\"/catalog/default/group/team-a\">team-a</a> and ",
                "<a class=\"missing-ref\" title=\"Not in the catalog\">guest</a> and ",
                "<a class=\"missing-ref\" title=\"Not in the catalog\">x</a> and ",
                "<a href=\"/search?q=a\">search</a></p>",
                "<a title=\"Not in the catalog\" class=\"missing-ref node ring-1\">gone</a>"
            )
        );
    }
}
