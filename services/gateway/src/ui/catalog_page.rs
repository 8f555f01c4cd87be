//! `/`: the catalog as a table, one store page at a time (never the whole catalog), with facet
//! filters and cursor paging. The URL holds the whole view: `filter=key=value` (repeatable;
//! values of one key are OR-ed, different keys AND-ed, e.g.
//! `/?filter=kind=component&filter=spec.lifecycle=production`) and `cursor`.

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use cadastre_proto::v1 as pb;
use cadastre_query::Projection;
use serde_json::Value;

use super::html::{Names, entity_path, esc, facet_value, names, query, ref_link, tags};
use super::layout;
use crate::Gateway;
use crate::catalog::{entity_json, facet_counts, legacy_filter};
use crate::error::ApiError;

/// Rows per page: enough to scan, small enough to render quickly at any catalog size.
const PAGE_SIZE: u32 = 50;
/// The facets offered as filters: (field path, heading).
const FACETS: [(&str, &str); 6] = [
    ("kind", "Kind"),
    ("spec.type", "Type"),
    ("spec.owner", "Owner"),
    ("spec.lifecycle", "Lifecycle"),
    ("metadata.tags", "Tags"),
    ("metadata.namespace", "Namespace"),
];
/// The most common values shown per facet (selected ones are always shown).
const FACET_VALUES_SHOWN: usize = 12;
/// What the table needs of each entity: the store sends nothing else.
const FIELDS: [&str; 10] = [
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.title",
    "metadata.description",
    "metadata.tags",
    "spec.type",
    "spec.owner",
    "spec.system",
    "spec.lifecycle",
];
/// Descriptions in the table are cut to this many characters.
const DESCRIPTION_CHARS: usize = 160;

/// The filters of a view: `(key, value)`, keys lower-cased, in the order given.
#[derive(Debug, Default, Clone, PartialEq)]
struct Filters(Vec<(String, String)>);

impl Filters {
    /// Reads every `filter` value; each may hold several comma-separated `key=value`s.
    fn parse(values: &[&str]) -> Result<Filters, ApiError> {
        let mut filters = Filters::default();
        for statement in values.iter().flat_map(|value| value.split(',')) {
            let statement = statement.trim();
            if statement.is_empty() {
                continue;
            }
            let Some((key, value)) = statement
                .split_once('=')
                .filter(|(key, _)| !key.trim().is_empty())
            else {
                return Err(ApiError::input(format!(
                    "The filter {statement:?} is not key=value (as in filter=kind=component)"
                )));
            };
            let pair = (key.trim().to_lowercase(), value.trim().to_owned());
            if !filters.0.contains(&pair) {
                filters.0.push(pair);
            }
        }
        Ok(filters)
    }

    fn has(&self, key: &str, value: &str) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k == key && v.eq_ignore_ascii_case(value))
    }

    /// The view with `key=value` added, or removed when it is there.
    fn toggled(&self, key: &str, value: &str) -> Filters {
        let mut filters = self.clone();
        if self.has(key, value) {
            filters
                .0
                .retain(|(k, v)| !(k == key && v.eq_ignore_ascii_case(value)));
        } else {
            filters.0.push((key.to_owned(), value.to_owned()));
        }
        filters
    }

    /// The store predicate, leaving out `except`'s own values (so a facet still counts the
    /// values one could add to it).
    fn predicate(&self, except: Option<&str>) -> Result<Option<pb::Predicate>, ApiError> {
        let statements: Vec<String> = self
            .0
            .iter()
            .filter(|(key, _)| Some(key.as_str()) != except)
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        if statements.is_empty() {
            return Ok(None);
        }
        // One filter set: repeated keys are OR-ed, different keys AND-ed.
        legacy_filter(&[&statements.join(",")])
    }

    /// The URL of this view (first page, or at `cursor`).
    fn url(&self, cursor: Option<&str>) -> String {
        let statements: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let pairs = statements
            .iter()
            .map(|s| ("filter", s.as_str()))
            .chain(cursor.map(|c| ("cursor", c)));
        format!("/{}", query(pairs))
    }
}

/// `GET /`: the catalog page.
pub(crate) async fn catalog(
    State(gateway): State<Gateway>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = crate::search::pairs(raw.as_deref());
    let values: Vec<&str> = pairs
        .iter()
        .filter(|(key, _)| key == "filter")
        .map(|(_, value)| value.as_str())
        .collect();
    let filters = Filters::parse(&values)?;
    let cursor = pairs
        .iter()
        .find(|(key, _)| key == "cursor")
        .map(|(_, value)| value.clone())
        .filter(|cursor| !cursor.is_empty());

    let fields: Vec<String> = FIELDS.iter().map(|f| (*f).to_owned()).collect();
    let request = match &cursor {
        // The cursor carries the filter and order of the first page.
        Some(cursor) => pb::QueryEntitiesRequest {
            cursor: cursor.clone(),
            limit: PAGE_SIZE,
            fields,
            ..Default::default()
        },
        None => pb::QueryEntitiesRequest {
            filter: filters.predicate(None)?,
            order: vec![pb::OrderField {
                field: "metadata.name".into(),
                descending: false,
            }],
            fields,
            limit: PAGE_SIZE,
            ..Default::default()
        },
    };
    // Facets not filtered on share one call over the whole filter; each filtered one is
    // counted without its own values.
    let mut facet_calls = Vec::new();
    let unfiltered: Vec<String> = FACETS
        .iter()
        .filter(|(key, _)| !filters.0.iter().any(|(k, _)| k == key))
        .map(|(key, _)| (*key).to_owned())
        .collect();
    if !unfiltered.is_empty() {
        facet_calls.push(facet_counts(&gateway, unfiltered, filters.predicate(None)?));
    }
    for (key, _) in FACETS {
        if filters.0.iter().any(|(k, _)| k == key) {
            facet_calls.push(facet_counts(
                &gateway,
                vec![key.to_owned()],
                filters.predicate(Some(key))?,
            ));
        }
    }
    let mut catalog = gateway.catalog();
    let (page, facets) = futures::future::try_join(
        async { Ok::<_, ApiError>(catalog.query_entities(request).await?.into_inner()) },
        futures::future::try_join_all(facet_calls),
    )
    .await?;
    let facets: Vec<pb::Facet> = facets.into_iter().flatten().collect();

    let mut main = String::with_capacity(32 * 1024);
    main.push_str("<div class=\"with-sidebar\">");
    facets_html(&mut main, &filters, &facets);
    main.push_str(
        "<section class=\"results\" aria-labelledby=\"heading\"><h1 id=\"heading\">Catalog</h1>",
    );
    let shown = page.items.len();
    let _ = write!(
        main,
        "<p class=\"summary\" role=\"status\">{} {}{}</p>",
        page.total_items,
        if page.total_items == 1 {
            "entity"
        } else {
            "entities"
        },
        if filters.0.is_empty() {
            ""
        } else {
            " match these filters"
        },
    );
    if shown == 0 {
        main.push_str("<p class=\"empty\">No entities to show.</p>");
    } else {
        table_html(&mut main, page.items)?;
    }
    pager_html(&mut main, &filters, &page.prev_cursor, &page.next_cursor);
    main.push_str("</section></div>");
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Catalog", "", &main),
    ))
}

fn facets_html(out: &mut String, filters: &Filters, facets: &[pb::Facet]) {
    out.push_str("<aside class=\"facets\" aria-label=\"Filters\"><h2>Filters</h2>");
    if !filters.0.is_empty() {
        let _ = write!(
            out,
            "<p><a class=\"clear\" href=\"/\">Clear {} filter{}</a></p>",
            filters.0.len(),
            if filters.0.len() == 1 { "" } else { "s" }
        );
    }
    for (key, heading) in FACETS {
        let Some(facet) = facets.iter().find(|f| f.facet == key) else {
            continue;
        };
        let mut values: Vec<&pb::FacetCount> = facet
            .values
            .iter()
            // A comma cannot be written inside a filter value.
            .filter(|v| !v.value.is_empty() && !v.value.contains(','))
            .collect();
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        let mut shown: Vec<&pb::FacetCount> = values
            .iter()
            .copied()
            .filter(|v| filters.has(key, &v.value))
            .collect();
        shown.extend(
            values
                .iter()
                .copied()
                .filter(|v| !filters.has(key, &v.value))
                .take(FACET_VALUES_SHOWN.saturating_sub(shown.len())),
        );
        if shown.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<section class=\"facet\"><h3>{heading}</h3><ul>",
            heading = esc(heading)
        );
        for value in shown {
            facet_value(
                out,
                &filters.toggled(key, &value.value).url(None),
                filters.has(key, &value.value),
                key,
                &value.value,
                value.count,
            );
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</aside>");
}

fn table_html(out: &mut String, items: Vec<pb::StoredEntity>) -> Result<(), ApiError> {
    out.push_str(
        "<div class=\"table-wrap\"><table class=\"entities\"><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">Kind</th><th scope=\"col\">Type</th>\
         <th scope=\"col\">Owner</th><th scope=\"col\">System</th><th scope=\"col\">Lifecycle</th>\
         <th scope=\"col\">Tags</th><th scope=\"col\">Description</th></tr></thead><tbody>",
    );
    for stored in items {
        let entity = entity_json(stored, &Projection::everything())?;
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let Names {
            kind,
            namespace,
            name,
            title,
        } = names(&entity);
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><a href=\"{href}\">{title}</a>",
            href = esc(&entity_path(&namespace, &kind, &name)),
            title = esc(&title),
        );
        if title != name {
            let _ = write!(out, "<div class=\"subtle\">{}</div>", esc(&name));
        }
        if namespace != "default" {
            let _ = write!(out, "<div class=\"subtle\">in {}</div>", esc(&namespace));
        }
        let _ = write!(
            out,
            "</th><td>{kind}</td><td>{ty}</td><td>{owner}</td><td>{system}</td><td>{lifecycle}</td><td>",
            kind = esc(&kind),
            ty = esc(&text(&entity["spec"]["type"])),
            owner = entity["spec"]["owner"]
                .as_str()
                .map(|owner| ref_link(owner, Some("group"), &namespace))
                .unwrap_or_default(),
            system = entity["spec"]["system"]
                .as_str()
                .map(|system| ref_link(system, Some("system"), &namespace))
                .unwrap_or_default(),
            lifecycle = esc(&text(&entity["spec"]["lifecycle"])),
        );
        tags(
            out,
            entity["metadata"]["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
        let description = text(&entity["metadata"]["description"]);
        let cut: String = description.chars().take(DESCRIPTION_CHARS).collect();
        let _ = write!(
            out,
            "</td><td class=\"description\">{}{}</td></tr>",
            esc(&cut),
            if cut.len() < description.len() {
                "…"
            } else {
                ""
            }
        );
    }
    out.push_str("</tbody></table></div>");
    Ok(())
}

fn pager_html(out: &mut String, filters: &Filters, prev: &str, next: &str) {
    if prev.is_empty() && next.is_empty() {
        return;
    }
    out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if !prev.is_empty() {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}\">← Previous</a>",
            esc(&filters.url(Some(prev)))
        );
    }
    if !next.is_empty() {
        let _ = write!(
            out,
            "<a rel=\"next\" href=\"{}\">Next →</a>",
            esc(&filters.url(Some(next)))
        );
    }
    out.push_str("</nav>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_toggle_and_write_their_url() {
        let filters = Filters::parse(&["kind=Component", "spec.type=service,kind=api"]).unwrap();
        assert_eq!(
            filters.0,
            vec![
                ("kind".to_owned(), "Component".to_owned()),
                ("spec.type".to_owned(), "service".to_owned()),
                ("kind".to_owned(), "api".to_owned()),
            ]
        );
        assert!(filters.has("kind", "component"));
        let fewer = filters.toggled("kind", "component");
        assert!(!fewer.has("kind", "component"));
        assert_eq!(
            fewer.url(None),
            "/?filter=spec.type%3Dservice&filter=kind%3Dapi"
        );
        assert_eq!(
            Filters::default().url(Some("abc")),
            "/?cursor=abc".to_owned()
        );
        assert!(Filters::parse(&["=x"]).is_err());
        assert!(Filters::parse(&["kind"]).is_err());
        assert!(filters.predicate(None).unwrap().is_some());
        assert!(Filters::default().predicate(None).unwrap().is_none());
    }
}
