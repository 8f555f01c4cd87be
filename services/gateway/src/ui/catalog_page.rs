//! `/`: the catalog as a table, one store page at a time (never the whole catalog), with facet
//! filters and cursor paging. The URL holds the whole view: `filter=key=value` (repeatable;
//! values of one key are OR-ed, different keys AND-ed, e.g.
//! `/?filter=kind=component&filter=spec.lifecycle=production`), the sort (`order=<field>` of
//! [`SORTABLE`] and `dir=asc|desc`, by kind (then namespace and name) when absent; the store's ordering, as
//! `orderField` on `/entities/by-query`) and `cursor`.

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
/// The facets offered as filters: (field path, heading). Owners are counted by the `ownedBy`
/// relation (as full refs), which the store keeps counts of, rather than by `spec.owner`,
/// which it would count by reading every entity.
const FACETS: [(&str, &str); 6] = [
    ("kind", "Kind"),
    ("spec.type", "Type"),
    ("relations.ownedby", "Owner"),
    ("spec.lifecycle", "Lifecycle"),
    ("metadata.tags", "Tags"),
    ("metadata.namespace", "Namespace"),
];
/// Facets the search service counts, when the gateway has one and the filters are all ones it
/// can apply: the store counts tags by reading every entity's body, and namespaces by reading
/// every row. (catalog key, search facet).
const SEARCH_FACETS: [(&str, &str); 6] = [
    ("relations.ownedby", "owner"),
    ("metadata.tags", "tags"),
    ("metadata.namespace", "namespace"),
    // The store keeps counts of these three, exact and quick while the filters are only on
    // them; under any other filter it reads every row the filter selects.
    ("kind", "kind"),
    ("spec.type", "type"),
    ("spec.lifecycle", "lifecycle"),
];
/// The keys the store keeps counts of.
const HOT_KEYS: [&str; 3] = ["kind", "spec.type", "spec.lifecycle"];
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
/// The columns the table can be sorted by: (field path, heading).
const SORTABLE: [(&str, &str); 6] = [
    ("metadata.name", "Name"),
    ("kind", "Kind"),
    ("spec.type", "Type"),
    ("spec.owner", "Owner"),
    ("spec.system", "System"),
    ("spec.lifecycle", "Lifecycle"),
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

    /// The same for every spelling of the same filters (order, repeats, case of values): the
    /// key of this view's facet counts.
    fn key(&self) -> String {
        let mut statements: Vec<String> = self
            .0
            .iter()
            .map(|(key, value)| format!("{key}={}", value.to_lowercase()))
            .collect();
        statements.sort();
        statements.dedup();
        statements.join("\n")
    }

    /// The URL of this view in `sort` order (first page, or at `cursor`).
    fn url(&self, sort: Sort, cursor: Option<&str>) -> String {
        let statements: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let pairs = statements
            .iter()
            .map(|s| ("filter", s.as_str()))
            .chain(sort.pairs())
            .chain(cursor.map(|c| ("cursor", c)));
        format!("/{}", query(pairs))
    }
}

/// The filters of a view, but `except`'s, as the search service's, if it can apply them all.
fn search_filters(filters: &Filters, except: Option<&str>) -> Option<pb::SearchFilters> {
    let mut out = pb::SearchFilters::default();
    for (key, value) in &filters.0 {
        if Some(key.as_str()) == except {
            continue;
        }
        let list = match key.as_str() {
            "kind" => &mut out.kinds,
            "spec.type" => &mut out.types,
            "spec.lifecycle" => &mut out.lifecycles,
            "metadata.namespace" => &mut out.namespaces,
            "relations.ownedby" => &mut out.owners,
            "metadata.tags" => &mut out.tags,
            _ => return None,
        };
        list.push(value.clone());
    }
    Some(out)
}

/// Counts `keys` (of [`SEARCH_FACETS`]) over the entities `filters` select, with the search
/// service, as the store's facets; with the store over `predicate` (the same filters) when
/// search cannot answer.
async fn search_facets(
    gateway: &Gateway,
    keys: Vec<&'static str>,
    filters: pb::SearchFilters,
    predicate: Option<pb::Predicate>,
) -> Result<Vec<pb::Facet>, ApiError> {
    let names = |key: &str| {
        SEARCH_FACETS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, n)| *n)
    };
    let answer = gateway
        .search()?
        .search(pb::SearchRequest {
            query: String::new(),
            filters: Some(filters),
            facets: keys
                .iter()
                .filter_map(|key| names(key))
                .map(str::to_owned)
                .collect(),
            limit: 1,
            ..Default::default()
        })
        .await;
    let answer = match answer {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            tracing::debug!(message = status.message(), "search cannot count facets");
            let keys = keys.iter().map(|key| (*key).to_owned()).collect();
            return facet_counts(gateway, keys, predicate).await;
        }
    };
    Ok(keys
        .iter()
        .filter_map(|key| {
            let facet = answer
                .facets
                .iter()
                .find(|f| Some(f.field.as_str()) == names(key))?;
            Some(pb::Facet {
                facet: (*key).to_owned(),
                values: facet
                    .values
                    .iter()
                    .map(|v| pb::FacetCount {
                        value: v.value.clone(),
                        count: v.count,
                    })
                    .collect(),
            })
        })
        .collect())
}

/// How a facet value reads: owners as Backstage writes them (a group in the default
/// namespace by its name), built-in kinds as Backstage spells them.
fn facet_label<'a>(key: &str, value: &'a str) -> &'a str {
    /// Kinds as Backstage spells them (search counts them lower-cased).
    const KINDS: [&str; 9] = [
        "API",
        "Component",
        "Domain",
        "Group",
        "Location",
        "Resource",
        "System",
        "Template",
        "User",
    ];
    match key {
        "relations.ownedby" => value.strip_prefix("group:default/").unwrap_or(value),
        "kind" => KINDS
            .iter()
            .find(|kind| kind.eq_ignore_ascii_case(value))
            .copied()
            .unwrap_or(value),
        _ => value,
    }
}

/// The order of a view: one of [`SORTABLE`], ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sort {
    field: &'static str,
    descending: bool,
}

/// By kind, then namespace and name: the order of entity refs, which the store reads from an
/// index (any other order it sorts, reading every entity matching the filter).
impl Default for Sort {
    fn default() -> Self {
        Sort {
            field: "kind",
            descending: false,
        }
    }
}

impl Sort {
    /// Reads `order` (a field path of [`SORTABLE`]) and `dir` (`asc` or `desc`), as the REST
    /// API's `orderField` reads them.
    fn parse(order: Option<&str>, dir: Option<&str>) -> Result<Sort, ApiError> {
        let order = order.map(str::trim).filter(|order| !order.is_empty());
        let dir = dir.map(str::trim).filter(|dir| !dir.is_empty());
        let Some(order) = order else {
            return match dir {
                None => Ok(Sort::default()),
                Some(dir) => Sort::parse(Some(Sort::default().field), Some(dir)),
            };
        };
        let parsed = cadastre_query::order::order_by(order, dir).map_err(|_| {
            ApiError::input(format!(
                "The sort direction {:?} is not asc or desc",
                dir.unwrap_or_default()
            ))
        })?;
        let field = SORTABLE
            .iter()
            .map(|(field, _)| *field)
            .find(|field| *field == parsed.field)
            .ok_or_else(|| {
                ApiError::input(format!(
                    "The catalog cannot be sorted by {order:?}; it can by {}",
                    SORTABLE.map(|(field, _)| field).join(", ")
                ))
            })?;
        Ok(Sort {
            field,
            descending: parsed.descending,
        })
    }

    /// The query pairs of this order (none for the default).
    fn pairs(&self) -> Vec<(&'static str, &'static str)> {
        if *self == Sort::default() {
            return Vec::new();
        }
        vec![
            ("order", self.field),
            ("dir", if self.descending { "desc" } else { "asc" }),
        ]
    }

    /// The store's order: none by kind ascending, which is the order of entity refs
    /// (`kind:namespace/name`), which the store reads from an index instead of sorting.
    fn order_field(&self) -> Option<pb::OrderField> {
        (self.field != "kind" || self.descending).then(|| pb::OrderField {
            field: self.field.to_owned(),
            descending: self.descending,
        })
    }

    /// Whether every entity has the field, so none is left out of the view.
    fn everyone_has_it(&self) -> bool {
        matches!(self.field, "metadata.name" | "kind")
    }
}

/// How many entities the view holds, from the kind counts: every entity has one kind, and
/// the kind facet leaves out the kind filter's own values, so those are the ones counted.
fn kind_total(filters: &Filters, facets: &[pb::Facet]) -> u64 {
    let kinds_filtered = filters.0.iter().any(|(key, _)| key == "kind");
    facets
        .iter()
        .filter(|facet| facet.facet == "kind")
        .flat_map(|facet| &facet.values)
        .filter(|value| !kinds_filtered || filters.has("kind", &value.value))
        .map(|value| value.count)
        .sum()
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
    let one = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let sort = Sort::parse(one("order"), one("dir"))?;
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
            order: sort.order_field().into_iter().collect(),
            fields,
            limit: PAGE_SIZE,
            // Every entity has a kind and a name: the kind counts give the total.
            exclude_total: sort.everyone_has_it(),
            ..Default::default()
        },
    };
    // Facets not filtered on share one call over the whole filter; each filtered one is
    // counted without its own values. Owners and tags are counted by search when it can.
    let by_search = gateway.search().is_ok() && search_filters(&filters, None).is_some();
    let only_hot_filters = filters
        .0
        .iter()
        .all(|(key, _)| HOT_KEYS.contains(&key.as_str()));
    let counted_by_search = |key: &str| {
        by_search
            && SEARCH_FACETS.iter().any(|(k, _)| *k == key)
            && !(only_hot_filters && HOT_KEYS.contains(&key))
    };
    let filtered = |key: &str| filters.0.iter().any(|(k, _)| k == key);
    let mut facet_calls: Vec<futures::future::BoxFuture<'_, Result<Vec<pb::Facet>, ApiError>>> =
        Vec::new();
    let (searched, stored): (Vec<&'static str>, Vec<&'static str>) = FACETS
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| !filtered(key))
        .partition(|key| counted_by_search(key));
    if !stored.is_empty() {
        facet_calls.push(Box::pin(facet_counts(
            &gateway,
            stored.iter().map(|key| (*key).to_owned()).collect(),
            filters.predicate(None)?,
        )));
    }
    if !searched.is_empty() {
        let all = search_filters(&filters, None).unwrap_or_default();
        facet_calls.push(Box::pin(search_facets(
            &gateway,
            searched,
            all,
            filters.predicate(None)?,
        )));
    }
    for (key, _) in FACETS {
        if !filtered(key) {
            continue;
        }
        match search_filters(&filters, Some(key)).filter(|_| counted_by_search(key)) {
            Some(others) => facet_calls.push(Box::pin(search_facets(
                &gateway,
                vec![key],
                others,
                filters.predicate(Some(key))?,
            ))),
            None => facet_calls.push(Box::pin(facet_counts(
                &gateway,
                vec![key.to_owned()],
                filters.predicate(Some(key))?,
            ))),
        }
    }
    let view = filters.key();
    let facets = gateway.catalog_facets().get_or_compute(&view, || async {
        let facets = futures::future::try_join_all(facet_calls).await?;
        Ok::<_, ApiError>(facets.into_iter().flatten().collect::<Vec<pb::Facet>>())
    });
    let mut catalog = gateway.catalog();
    let (page, facets) = futures::future::try_join(
        async { Ok::<_, ApiError>(catalog.query_entities(request).await?.into_inner()) },
        facets,
    )
    .await?;

    let mut main = String::with_capacity(32 * 1024);
    main.push_str("<div class=\"with-sidebar\">");
    facets_html(&mut main, &filters, sort, &facets);
    main.push_str(
        "<section class=\"results\" aria-labelledby=\"heading\"><h1 id=\"heading\">Catalog</h1>",
    );
    let shown = page.items.len();
    let total = if sort.everyone_has_it() {
        kind_total(&filters, &facets)
    } else {
        page.total_items
    };
    let _ = write!(
        main,
        "<p class=\"summary\" role=\"status\">{} {}{}</p>",
        total,
        if total == 1 { "entity" } else { "entities" },
        if filters.0.is_empty() {
            ""
        } else {
            " match these filters"
        },
    );
    if !matches!(sort.field, "metadata.name" | "kind") {
        let heading = SORTABLE
            .iter()
            .find(|(field, _)| *field == sort.field)
            .map_or("", |(_, heading)| heading);
        let _ = write!(
            main,
            "<p class=\"subtle\">Sorted by {}: entities without one are not listed. \
             <a href=\"{}\">Sort by kind</a></p>",
            esc(&heading.to_lowercase()),
            esc(&filters.url(Sort::default(), None)),
        );
    }
    if shown == 0 {
        main.push_str("<p class=\"empty\">No entities to show.</p>");
    } else {
        table_html(&mut main, &filters, sort, page.items)?;
    }
    pager_html(
        &mut main,
        &filters,
        sort,
        &page.prev_cursor,
        &page.next_cursor,
    );
    main.push_str("</section></div>");
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Catalog", "", &main),
    ))
}

fn facets_html(out: &mut String, filters: &Filters, sort: Sort, facets: &[pb::Facet]) {
    out.push_str("<aside class=\"facets\" aria-label=\"Filters\"><h2>Filters</h2>");
    if !filters.0.is_empty() {
        let _ = write!(
            out,
            "<p><a class=\"clear\" href=\"{}\">Clear {} filter{}</a></p>",
            esc(&Filters::default().url(sort, None)),
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
                &filters.toggled(key, &value.value).url(sort, None),
                filters.has(key, &value.value),
                key,
                facet_label(key, &value.value),
                value.count,
            );
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</aside>");
}

/// The table's head: each sortable column a link to the view sorted by it (ascending, or the
/// other way when it is the current order), the current one marked with `aria-sort`.
fn head_html(out: &mut String, filters: &Filters, sort: Sort) {
    out.push_str("<thead><tr>");
    for (field, heading) in SORTABLE {
        let current = sort.field == field;
        let next = Sort {
            field,
            descending: current && !sort.descending,
        };
        let (aria, mark, state) = match (current, sort.descending) {
            (true, false) => (
                " aria-sort=\"ascending\"",
                "▲",
                "sorted ascending; sort descending",
            ),
            (true, true) => (
                " aria-sort=\"descending\"",
                "▼",
                "sorted descending; sort ascending",
            ),
            _ => ("", "", "sort by it"),
        };
        let _ = write!(
            out,
            "<th scope=\"col\"{aria}><a class=\"sort\" href=\"{href}\" data-sort=\"{field}\">{heading}\
             <span class=\"sort-mark\" aria-hidden=\"true\">{mark}</span>\
             <span class=\"visually-hidden\"> ({state})</span></a></th>",
            href = esc(&filters.url(next, None)),
        );
    }
    out.push_str("<th scope=\"col\">Tags</th><th scope=\"col\">Description</th></tr></thead>");
}

fn table_html(
    out: &mut String,
    filters: &Filters,
    sort: Sort,
    items: Vec<pb::StoredEntity>,
) -> Result<(), ApiError> {
    out.push_str("<div class=\"table-wrap\"><table class=\"entities\">");
    head_html(out, filters, sort);
    out.push_str("<tbody>");
    for stored in items {
        let entity = entity_json(&stored, &Projection::everything())?;
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

fn pager_html(out: &mut String, filters: &Filters, sort: Sort, prev: &str, next: &str) {
    if prev.is_empty() && next.is_empty() {
        return;
    }
    out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if !prev.is_empty() {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}\">← Previous</a>",
            esc(&filters.url(sort, Some(prev)))
        );
    }
    if !next.is_empty() {
        let _ = write!(
            out,
            "<a rel=\"next\" href=\"{}\">Next →</a>",
            esc(&filters.url(sort, Some(next)))
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
            fewer.url(Sort::default(), None),
            "/?filter=spec.type%3Dservice&filter=kind%3Dapi"
        );
        assert_eq!(
            Filters::default().url(Sort::default(), Some("abc")),
            "/?cursor=abc".to_owned()
        );
        assert!(Filters::parse(&["=x"]).is_err());
        assert!(Filters::parse(&["kind"]).is_err());
        assert!(filters.predicate(None).unwrap().is_some());
        let by_owner = Sort::parse(Some("Spec.Owner"), Some("desc")).unwrap();
        assert_eq!((by_owner.field, by_owner.descending), ("spec.owner", true));
        assert_eq!(
            fewer.url(by_owner, Some("c")),
            "/?filter=spec.type%3Dservice&filter=kind%3Dapi&order=spec.owner&dir=desc&cursor=c"
        );
        assert_eq!(Sort::parse(None, None).unwrap(), Sort::default());
        assert!(
            Sort::parse(Some("metadata.name"), Some("desc"))
                .unwrap()
                .descending
        );
        assert!(Sort::parse(None, Some("desc")).unwrap().descending);
        assert!(Sort::parse(Some("metadata.uid"), None).is_err());
        assert!(Sort::parse(Some("kind"), Some("down")).is_err());
        // Kind ascending is the entity refs' order: no order field for the store to sort by.
        assert_eq!(Sort::parse(Some("kind"), None).unwrap().order_field(), None);
        assert!(
            Sort::parse(Some("kind"), Some("desc"))
                .unwrap()
                .order_field()
                .is_some()
        );
    }

    #[test]
    fn the_total_is_the_kind_counts_in_view() {
        let facets = [pb::Facet {
            facet: "kind".into(),
            values: [("Component", 13), ("API", 4), ("Group", 2)]
                .map(|(value, count)| pb::FacetCount {
                    value: value.into(),
                    count,
                })
                .to_vec(),
        }];
        assert_eq!(kind_total(&Filters::default(), &facets), 19);
        let kinds = Filters::parse(&["kind=component,kind=api"]).unwrap();
        assert_eq!(kind_total(&kinds, &facets), 17);
        assert!(Filters::default().predicate(None).unwrap().is_none());
    }

    #[test]
    fn one_view_has_one_facet_key_however_it_is_spelled() {
        let key = |values: &[&str]| Filters::parse(values).unwrap().key();
        let view = key(&["kind=component,spec.type=service"]);
        assert_eq!(key(&["spec.type=Service", "kind=Component"]), view);
        assert_eq!(
            key(&["kind=component,kind=component,spec.type=service"]),
            view
        );
        assert_ne!(key(&["kind=component"]), view);
        assert_ne!(key(&["kind=component,spec.type=website"]), view);
        assert_eq!(key(&[]), "");
    }
}
