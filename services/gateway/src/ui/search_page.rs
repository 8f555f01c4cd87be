//! `/search?q=…`: full-text results from the search service, with highlights and facet
//! filters. The URL holds the view: `q`, the facet filters by name (`kind`, `type`, `owner`,
//! `lifecycle`, `tags`, `namespace`; repeatable) and `cursor`.

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use cadastre_proto::v1 as pb;

use super::html::{entity_path, esc, facet_value, marked, query, ref_link, tags};
use super::layout;
use crate::Gateway;
use crate::error::ApiError;
use crate::search::MAX_TERM_LENGTH;

/// Results per page.
const PAGE_SIZE: u32 = 25;
/// The facets offered: (the search service's field, heading).
const FACETS: [(&str, &str); 6] = [
    ("kind", "Kind"),
    ("type", "Type"),
    ("owner", "Owner"),
    ("lifecycle", "Lifecycle"),
    ("tags", "Tags"),
    ("namespace", "Namespace"),
];
/// The most common values shown per facet.
const FACET_VALUES_SHOWN: usize = 12;

/// `GET /search`: the results page.
pub(crate) async fn search(
    State(gateway): State<Gateway>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = crate::search::pairs(raw.as_deref());
    let term = pairs
        .iter()
        .find(|(key, _)| key == "q")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    if term.chars().count() > MAX_TERM_LENGTH {
        return Err(ApiError::input(format!(
            "Search for at most {MAX_TERM_LENGTH} characters"
        )));
    }
    let cursor = pairs
        .iter()
        .find(|(key, _)| key == "cursor")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    // The view's filters, in URL order.
    let selected: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(key, value)| {
            FACETS
                .iter()
                .find(|(facet, _)| facet == key)
                .map(|(facet, _)| (*facet, value.as_str()))
        })
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let mut filters = pb::SearchFilters::default();
    for (facet, value) in &selected {
        let target = match *facet {
            "kind" => &mut filters.kinds,
            "type" => &mut filters.types,
            "owner" => &mut filters.owners,
            "lifecycle" => &mut filters.lifecycles,
            "tags" => &mut filters.tags,
            _ => &mut filters.namespaces,
        };
        target.push((*value).to_owned());
    }
    let answer = gateway
        .search()?
        .search(pb::SearchRequest {
            query: term.clone(),
            filters: Some(filters),
            facets: FACETS.iter().map(|(f, _)| (*f).to_owned()).collect(),
            limit: PAGE_SIZE,
            cursor: cursor.clone(),
            highlight: true,
        })
        .await?
        .into_inner();

    // The URL of this view with other filters (and page).
    let url = |selected: &[(&str, &str)], cursor: Option<&str>| {
        let pairs = (!term.is_empty())
            .then_some(("q", term.as_str()))
            .into_iter()
            .chain(selected.iter().copied())
            .chain(cursor.map(|c| ("cursor", c)));
        format!("/search{}", query(pairs))
    };

    let mut main = String::with_capacity(16 * 1024);
    main.push_str("<div class=\"with-sidebar\"><aside class=\"facets\" aria-label=\"Filters\"><h2>Filters</h2>");
    if !selected.is_empty() {
        let _ = write!(
            main,
            "<p><a class=\"clear\" href=\"{}\">Clear filters</a></p>",
            esc(&url(&[], None))
        );
    }
    for (field, heading) in FACETS {
        let Some(facet) = answer.facets.iter().find(|f| f.field == field) else {
            continue;
        };
        let mut values: Vec<&pb::SearchFacetValue> = facet
            .values
            .iter()
            .filter(|v| !v.value.is_empty())
            .collect();
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        if values.is_empty() {
            continue;
        }
        let _ = write!(
            main,
            "<section class=\"facet\"><h3>{}</h3><ul>",
            esc(heading)
        );
        for value in values.into_iter().take(FACET_VALUES_SHOWN) {
            let on = selected
                .iter()
                .any(|(f, v)| *f == field && v.eq_ignore_ascii_case(&value.value));
            let toggled: Vec<(&str, &str)> = if on {
                selected
                    .iter()
                    .copied()
                    .filter(|(f, v)| !(*f == field && v.eq_ignore_ascii_case(&value.value)))
                    .collect()
            } else {
                let mut more = selected.clone();
                more.push((field, value.value.as_str()));
                more
            };
            facet_value(
                &mut main,
                &url(&toggled, None),
                on,
                field,
                &value.value,
                value.count,
            );
        }
        main.push_str("</ul></section>");
    }
    main.push_str("</aside><section class=\"results\" aria-labelledby=\"heading\">");
    let _ = write!(
        main,
        "<h1 id=\"heading\">{}</h1><p class=\"summary\" role=\"status\">{}</p>",
        if term.is_empty() {
            "Search".to_owned()
        } else {
            format!("Results for “{}”", esc(&term))
        },
        count_text(answer.total, answer.total_is_lower_bound),
    );
    if answer.hits.is_empty() {
        main.push_str("<p class=\"empty\">Nothing matches. Try fewer words or other filters.</p>");
    } else {
        main.push_str("<ol class=\"hits\">");
        for hit in &answer.hits {
            hit_html(&mut main, hit);
        }
        main.push_str("</ol>");
    }
    if !cursor.is_empty() || !answer.next_cursor.is_empty() {
        main.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
        if !cursor.is_empty() {
            let _ = write!(
                main,
                "<a href=\"{}\">← First page</a>",
                esc(&url(&selected, None))
            );
        }
        if !answer.next_cursor.is_empty() {
            let _ = write!(
                main,
                "<a rel=\"next\" href=\"{}\">Next →</a>",
                esc(&url(&selected, Some(&answer.next_cursor)))
            );
        }
        main.push_str("</nav>");
    }
    main.push_str("</section></div>");
    let title = if term.is_empty() {
        "Search".to_owned()
    } else {
        format!("{term} – Search")
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::document(&title, &term, &main),
    ))
}

/// One result: the title (or name) and description with their highlights, and the facts.
fn hit_html(out: &mut String, hit: &pb::SearchHit) {
    let highlight = |field: &str| {
        hit.highlights
            .iter()
            .find(|h| h.field == field)
            .map(|h| marked(&h.fragment))
    };
    let heading = if hit.title.is_empty() {
        highlight("name").unwrap_or_else(|| esc(&hit.name).to_string())
    } else {
        highlight("title").unwrap_or_else(|| esc(&hit.title).to_string())
    };
    let _ = write!(
        out,
        "<li class=\"hit\"><h2><a href=\"{href}\">{heading}</a></h2><p class=\"subtle\">{kind}",
        href = esc(&entity_path(&hit.namespace, &hit.kind, &hit.name)),
        kind = esc(&hit.kind),
    );
    if !hit.r#type.is_empty() {
        let _ = write!(out, " · {}", esc(&hit.r#type));
    }
    if !hit.lifecycle.is_empty() {
        let _ = write!(out, " · {}", esc(&hit.lifecycle));
    }
    if !hit.owner.is_empty() {
        let _ = write!(
            out,
            " · owned by {}",
            ref_link(&hit.owner, Some("group"), &hit.namespace)
        );
    }
    out.push_str("</p>");
    let description = highlight("description").unwrap_or_else(|| esc(&hit.description).to_string());
    if !description.is_empty() {
        let _ = write!(out, "<p>{description}</p>");
    }
    tags(out, hit.tags.iter().map(String::as_str));
    out.push_str("</li>");
}

/// "1 result", "30 results", or past the count "10000+ results".
fn count_text(total: u64, lower_bound: bool) -> String {
    if lower_bound {
        format!("{total}+ results")
    } else if total == 1 {
        "1 result".to_owned()
    } else {
        format!("{total} results")
    }
}

#[cfg(test)]
mod tests {
    use super::count_text;

    #[test]
    fn counts_past_the_cap_read_as_at_least() {
        assert_eq!(count_text(1, false), "1 result");
        assert_eq!(count_text(0, false), "0 results");
        assert_eq!(count_text(30, false), "30 results");
        assert_eq!(count_text(10_000, true), "10000+ results");
    }
}
