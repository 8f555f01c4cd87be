//! The web UI against a gateway loaded with the shared examples: each page answers with the
//! expected content, filters and paging follow their links, hostile values are escaped, and
//! assets are served at hashed, immutable URLs. (`ui_browser.rs` drives a real browser.)

mod common;

use std::time::Duration;

use cadastre_catalog_store::{
    Batch, LocationErrors, ProcessedBatch, ProcessingError, Receipt, Upsert,
};
use cadastre_gateway::Settings;
use cadastre_model::{Finding, Position, RelationEdge, Rule};
use cadastre_proto::v1 as pb;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::Digest as _;

/// The gateway's origin (the harness's `base` is its `/api/catalog`).
fn origin(running: &common::Running) -> String {
    running.base.trim_end_matches("/api/catalog").to_owned()
}

async fn page(running: &common::Running, path: &str) -> (StatusCode, HeaderMap, String) {
    let response = running
        .http
        .get(format!("{}{path}", origin(running)))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The `href` of the first link with `rel="<rel>"`, as a path.
fn rel_link(html: &str, rel: &str) -> Option<String> {
    let start = html.find(&format!("rel=\"{rel}\" href=\""))? + rel.len() + 13;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

/// The entity pages a page links to, in order.
fn entity_links(html: &str) -> Vec<String> {
    html.match_indices("href=\"/catalog/")
        .map(|(at, _)| {
            let start = at + 6;
            let end = start + html[start..].find('"').unwrap();
            html[start..end].to_owned()
        })
        .collect()
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_filters_and_pages() {
    let running = common::start().await;
    let (status, headers, html) = page(&running, "/").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(content_type(&headers), "text/html; charset=utf-8");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(html.starts_with("<!doctype html>"));
    // Facets with counts, each a link adding a filter.
    assert!(html.contains("data-facet=\"kind\""), "{html}");
    assert!(
        html.contains("href=\"/?filter=kind%3DComponent\""),
        "{html}"
    );
    // 50 rows a page: the examples need two.
    // The entity each row is about.
    let rows = |html: &str| -> Vec<String> {
        html.split("<tr><th scope=\"row\"><a href=\"")
            .skip(1)
            .map(|row| row.split('"').next().unwrap().to_owned())
            .collect()
    };
    let first = rows(&html);
    assert_eq!(first.len(), 50);
    let next = rel_link(&html, "next").expect("a next page");
    assert!(rel_link(&html, "prev").is_none());
    let (status, _, second_html) = page(&running, &next).await;
    assert_eq!(status, StatusCode::OK, "{second_html}");
    assert!(rel_link(&second_html, "prev").is_some(), "{second_html}");
    let second = rows(&second_html);
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|row| !first.contains(row)),
        "the pages overlap"
    );

    // Filtering by kind narrows the table; the kind facet still offers the other kinds.
    let (status, _, html) = page(&running, "/?filter=kind%3DComponent").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("href=\"/catalog/default/component/artist-lookup\""));
    assert!(!html.contains("<th scope=\"row\"><a href=\"/catalog/default/api/"));
    assert!(html.contains("aria-current=\"true\" data-facet=\"kind\""));
    assert!(html.contains("href=\"/?filter=kind%3DComponent&amp;filter=kind%3DAPI\""));
    assert!(html.contains("13 entities match these filters"), "{html}");
    // The owner and system columns link to their entities.
    assert!(html.contains("<a href=\"/catalog/default/group/team-a\">team-a</a>"));
    assert!(html.contains(
        "<a href=\"/catalog/default/system/artist-engagement-portal\">artist-engagement-portal</a>"
    ));
    // Two filters on different fields: both hold.
    let (_, _, html) = page(
        &running,
        "/?filter=kind%3Dcomponent&filter=spec.lifecycle%3Dexperimental",
    )
    .await;
    assert!(html.contains("/catalog/default/component/artist-lookup"));
    assert!(html.contains("4 entities match these filters"), "{html}");
    assert!(!html.contains("/catalog/default/component/www-artist\""));
    // A malformed filter is a 400 page, not a crash.
    let (status, headers, html) = page(&running, "/?filter=%3Dx").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type(&headers), "text/html; charset=utf-8");
    assert!(html.contains("not key=value"), "{html}");
}

/// Each row's cells after the name, tags stripped: kind, type, owner, system, lifecycle, …
fn row_cells(html: &str) -> Vec<Vec<String>> {
    html.split("<tr><th scope=\"row\">")
        .skip(1)
        .map(|row| {
            let row = &row[row.find("</th>").unwrap()..row.find("</tr>").unwrap()];
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').unwrap() + 1..];
                    let cell = &cell[..cell.find("</td>").unwrap()];
                    let mut text = String::new();
                    let mut in_tag = false;
                    for c in cell.chars() {
                        match c {
                            '<' => in_tag = true,
                            '>' => in_tag = false,
                            c if !in_tag => text.push(c),
                            _ => {}
                        }
                    }
                    text.trim().to_lowercase()
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_sorts_by_its_columns() {
    let running = common::start().await;
    // Each sortable heading is a link; by kind ascending is the default and is marked.
    let (_, _, html) = page(&running, "/").await;
    assert!(
        html.contains("<th scope=\"col\" aria-sort=\"ascending\"><a class=\"sort\" href=\"/?order=kind&amp;dir=desc\" data-sort=\"kind\">Kind"),
        "{html}"
    );
    for field in [
        "metadata.name",
        "spec.type",
        "spec.owner",
        "spec.system",
        "spec.lifecycle",
    ] {
        assert!(
            html.contains(&format!(
                "<th scope=\"col\"><a class=\"sort\" href=\"/?order={field}&amp;dir=asc\" data-sort=\"{field}\">"
            )),
            "{field}: {html}"
        );
    }
    let kinds: Vec<String> = row_cells(&html).into_iter().map(|r| r[0].clone()).collect();
    assert!(kinds.windows(2).all(|w| w[0] <= w[1]), "{kinds:?}");

    // By kind, descending: the rows' kinds never go up; clicking again goes back up.
    let (status, _, html) = page(&running, "/?order=kind&dir=desc").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let kinds: Vec<String> = row_cells(&html).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(kinds.len(), 50);
    assert!(kinds.windows(2).all(|w| w[0] >= w[1]), "{kinds:?}");
    let (_, _, ascending) = page(&running, "/?order=kind&dir=asc").await;
    assert_ne!(row_cells(&ascending)[0][0], kinds[0], "{kinds:?}");
    assert!(
        html.contains("aria-sort=\"descending\"><a class=\"sort\" href=\"/\" data-sort=\"kind\"")
    );

    // By owner with a filter: the filter holds, entities without an owner are left out (and
    // the page says so), facet links and the pager keep the order, and page 2 follows on.
    let (status, _, html) = page(
        &running,
        "/?filter=kind%3Dcomponent&order=spec.owner&dir=asc",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let rows = row_cells(&html);
    assert_eq!(rows.len(), 13, "{html}");
    assert!(rows.iter().all(|r| r[0] == "component"));
    let owners: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert!(owners.windows(2).all(|w| w[0] <= w[1]), "{owners:?}");
    assert!(html.contains("Sorted by owner: entities without one are not listed."));
    assert!(
        html.contains("href=\"/?filter=kind%3Dcomponent&amp;filter=kind%3DAPI&amp;order=spec.owner&amp;dir=asc\""),
        "{html}"
    );
    let (_, _, html) = page(&running, "/?order=spec.owner&dir=desc").await;
    let owners: Vec<String> = row_cells(&html).into_iter().map(|r| r[2].clone()).collect();
    assert!(owners.len() > 13, "{owners:?}");
    assert!(owners.windows(2).all(|w| w[0] >= w[1]), "{owners:?}");
    assert!(
        html.contains(
            "aria-sort=\"descending\"><a class=\"sort\" href=\"/?order=spec.owner&amp;dir=asc\""
        ),
        "{html}"
    );
    // Paging keeps the order: page 2 follows on from page 1.
    let (_, _, html) = page(&running, "/?order=kind&dir=desc").await;
    let next = rel_link(&html, "next").expect("a next page");
    assert!(next.contains("order=kind&dir=desc&cursor="), "{next}");
    let (_, _, second) = page(&running, &next).await;
    assert!(second.contains("aria-sort=\"descending\""), "{second}");
    let kinds: Vec<String> = row_cells(&html)
        .into_iter()
        .chain(row_cells(&second))
        .map(|r| r[0].clone())
        .collect();
    assert!(kinds.len() > 50);
    assert!(kinds.windows(2).all(|w| w[0] >= w[1]), "{kinds:?}");

    // By name, descending, is the ascending order reversed (on the last names).
    let (_, _, html) = page(&running, "/?order=metadata.name&dir=desc").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = html
        .split("<tr><th scope=\"row\"><a href=\"")
        .skip(1)
        .map(|row| {
            row.split('"')
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_lowercase()
        })
        .collect();
    assert!(names.windows(2).all(|w| w[0] >= w[1]), "{names:?}");

    // Anything else is a 400 page.
    for bad in ["/?order=metadata.uid", "/?order=kind&dir=down"] {
        let (status, _, html) = page(&running, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {html}");
    }
}

/// The facet filters of a catalog page.
fn facets_of(html: &str) -> &str {
    let start = html.find("<aside class=\"facets\"").unwrap();
    &html[start..start + html[start..].find("</aside>").unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_and_tag_counts_come_from_search_when_it_can() {
    let store_only = common::start().await;
    let searched = common::start_with_search().await;
    // The index follows the store: wait until it has the examples.
    for _ in 0..100 {
        let (_, _, html) = page(&searched, "/search?q=artist").await;
        if html.contains("/catalog/default/component/artist-lookup") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in [
        "/",
        "/?filter=kind%3Dcomponent",
        "/?filter=kind%3Dcomponent&filter=relations.ownedby%3Dgroup%3Adefault%2Fteam-a",
        "/?filter=metadata.tags%3Djava&filter=spec.lifecycle%3Dproduction",
        // A filter search cannot apply: the store counts everything.
        "/?filter=metadata.name%3Dartist-lookup",
    ] {
        let (status, _, from_store) = page(&store_only, path).await;
        assert_eq!(status, StatusCode::OK, "{from_store}");
        let (status, _, from_search) = page(&searched, path).await;
        assert_eq!(status, StatusCode::OK, "{from_search}");
        // Search counts kinds lower-cased (filters ignore case), so the links' case may differ.
        assert_eq!(
            facets_of(&from_store).to_lowercase(),
            facets_of(&from_search).to_lowercase(),
            "{path}"
        );
    }
    // Owners are counted by relation, shown as Backstage writes them, and filter the table.
    let (_, _, html) = page(&searched, "/?filter=kind%3Dcomponent").await;
    let facets = facets_of(&html);
    assert!(
        facets.contains("href=\"/?filter=kind%3Dcomponent&amp;filter=relations.ownedby%3Dgroup%3Adefault%2Fteam-a\""),
        "{facets}"
    );
    assert!(
        facets.contains(
            "<span class=\"visually-hidden\">Filter by </span>team-a <span class=\"count\">"
        ),
        "{facets}"
    );
    assert!(facets.contains("data-facet=\"metadata.tags\""), "{facets}");
    let (_, _, html) = page(
        &searched,
        "/?filter=kind%3Dcomponent&filter=relations.ownedby%3Dgroup%3Adefault%2Fteam-a",
    )
    .await;
    let rows = row_cells(&html);
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r[2] == "team-a"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_tools_link_from_entity_pages() {
    use cadastre_gateway::ui::{Tool, UiSettings};
    let tool = |name: &str, annotation: &str, url: &str, kinds: &[&str]| {
        Tool::new(
            name,
            annotation,
            url,
            kinds.iter().map(|k| (*k).to_owned()).collect(),
        )
        .unwrap()
    };
    let settings = Settings {
        ui: UiSettings {
            tools: vec![
                tool(
                    "CI",
                    "github.com/project-slug",
                    "https://github.com/{value}/actions",
                    &["component"],
                ),
                tool(
                    "Docs",
                    "backstage.io/techdocs-ref",
                    "https://docs.example.com/{namespace}/{kind}/{name}",
                    &[],
                ),
                tool(
                    "Dashboard",
                    "grafana/dashboard-selector",
                    "https://grafana.example.com/d?selector={value}",
                    &[],
                ),
                tool(
                    "On call",
                    "pagerduty.com/service-id",
                    "https://acme.pagerduty.com/service-directory/{value}",
                    &[],
                ),
            ],
        },
        ..Settings::default()
    }
    .for_listen("127.0.0.1:7007".parse().unwrap())
    .unwrap();
    let running = common::start_with(settings).await;
    let body = |kind: &str, name: &str, annotations: Value| {
        json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
        })
    };
    running
        .store
        .apply_batch(Batch::of_bodies(
            [
                body(
                    "Component",
                    "tooled",
                    json!({
                        "github.com/project-slug": "acme/tooled",
                        "backstage.io/techdocs-ref": "dir:.",
                        "pagerduty.com/service-id": "P123ABC",
                    }),
                ),
                body(
                    "Component",
                    "hostile-tools",
                    json!({
                        "grafana/dashboard-selector": "x\"><script>alert(1)</script>&y=1",
                        "pagerduty.com/service-id": "../../admin",
                        "github.com/project-slug": "javascript:alert(1)",
                    }),
                ),
                body(
                    "API",
                    "tooled-api",
                    json!({"github.com/project-slug": "acme/api"}),
                ),
            ],
            "url:https://example.com/tools.yaml",
        ))
        .await
        .unwrap();

    let (status, _, html) = page(&running, "/catalog/default/component/tooled").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("<nav class=\"tools\" aria-label=\"Tools\">"),
        "{html}"
    );
    for (name, url) in [
        ("CI", "https://github.com/acme/tooled/actions"),
        ("Docs", "https://docs.example.com/default/component/tooled"),
        (
            "On call",
            "https://acme.pagerduty.com/service-directory/P123ABC",
        ),
    ] {
        assert!(
            html.contains(&format!(
                "<a class=\"tool\" href=\"{url}\" rel=\"noopener noreferrer\" data-tool=\"{name}\""
            )),
            "{name}: {html}"
        );
    }
    // No annotation, no link.
    assert!(!html.contains("data-tool=\"Dashboard\""), "{html}");

    // Hostile values are encoded into the template; `..` paths get no link.
    let (status, _, html) = page(&running, "/catalog/default/component/hostile-tools").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("href=\"https://grafana.example.com/d?selector=x%22%3E%3Cscript%3Ealert%281%29%3C/script%3E%26y%3D1\""),
        "{html}"
    );
    assert!(!html.contains("data-tool=\"On call\""), "{html}");
    assert!(
        html.contains("href=\"https://github.com/javascript%3Aalert%281%29/actions\""),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");

    // A tool limited to components is not on an API's page.
    let (_, _, html) = page(&running, "/catalog/default/api/tooled-api").await;
    assert!(!html.contains("data-tool=\"CI\""), "{html}");
    // An entity with none of the annotations has no tools row.
    let (_, _, html) = page(&running, "/catalog/default/component/artist-lookup").await;
    assert!(!html.contains("class=\"tools\""), "{html}");

    // Without configuration, the default tools: a GitHub project's repository and CI.
    let running = common::start().await;
    running
        .store
        .apply_batch(Batch::of_bodies(
            [body(
                "Component",
                "tooled",
                json!({"github.com/project-slug": "acme/tooled"}),
            )],
            "url:https://example.com/tools.yaml",
        ))
        .await
        .unwrap();
    let (_, _, html) = page(&running, "/catalog/default/component/tooled").await;
    assert!(html.contains("href=\"https://github.com/acme/tooled\" rel=\"noopener noreferrer\" data-tool=\"Repository\""), "{html}");
    assert!(html.contains("href=\"https://github.com/acme/tooled/actions\" rel=\"noopener noreferrer\" data-tool=\"CI\""), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_page_shows_its_owner_relations_and_links() {
    let running = common::start().await;
    let (status, _, html) = page(&running, "/catalog/default/component/artist-lookup").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<h1>artist-lookup</h1>"), "{html}");
    assert!(html.contains("<p class=\"kind\">Component</p>"));
    assert!(html.contains("<dt>Owner</dt><dd><a href=\"/catalog/default/group/team-a\">"));
    assert!(html.contains("experimental"));
    assert!(html.contains("<span class=\"tag\">java</span>"));
    assert!(html.contains("<p class=\"description\">Artist Lookup</p>"));
    assert!(
        html.contains("<a href=\"https://example.com/dashboard\" rel=\"noopener\">Dashboard</a>")
    );
    // Relations by type, each target a link.
    assert!(html.contains("data-relation=\"ownedBy\""), "{html}");
    assert!(
        html.contains(
            "<li><a href=\"/catalog/default/group/team-a\">group:default/team-a</a></li>"
        )
    );
    assert!(html.contains(
        "<a href=\"/catalog/default/system/artist-engagement-portal\">system:default/artist-engagement-portal</a>"
    ));
    assert!(html.contains("<pre class=\"raw\"><code>{"));
    assert!(html.contains("None: the last harvest read this entity cleanly."));
    // Case-insensitive, as the API.
    let (status, _, _) = page(&running, "/catalog/DEFAULT/Component/Artist-Lookup").await;
    assert_eq!(status, StatusCode::OK);
    // Every relation link leads to an entity page or an honest 404.
    for link in entity_links(&html) {
        let (status, _, _) = page(&running, &link).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{link}: {status}"
        );
    }
    // The team's page lists what it owns.
    let (status, _, html) = page(&running, "/catalog/default/group/team-a").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("/catalog/default/component/artist-lookup"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_and_entities_are_404_pages() {
    let running = common::start().await;
    for path in ["/catalog/default/component/nope", "/no/such/page"] {
        let (status, headers, html) = page(&running, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(content_type(&headers), "text/html; charset=utf-8");
        assert!(html.contains("<h1>Not found</h1>"), "{html}");
        assert!(html.contains("id=\"q\""), "the search box is on every page");
    }
    // The API keeps its JSON errors.
    let (status, body) = running
        .get("/entities/by-name/component/default/nope")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["name"], "NotFoundError");
    let (status, body) = running.get("/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["name"], "NotFoundError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_escaped() {
    let running = common::start().await;
    let hostile = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "hostile",
            "title": "\"><img src=x onerror=alert(1)>",
            "description": "<script>alert(\"x\")</script> & more",
            "links": [{"url": "javascript:alert(1)", "title": "<b>bad</b>"}],
            "annotations": {
                "backstage.io/source-location": "url:javascript:alert(2)",
                "backstage.io/edit-url": "https://example.com/edit?a=1&b=\"2\""
            }
        },
        "spec": {"type": "service", "lifecycle": "<i>prod</i>", "owner": "team-a"}
    });
    running
        .store
        .apply_batch(Batch {
            upserts: vec![Upsert {
                body: hostile,
                edges: Vec::new(),
                location_key: Some("url:https://example.com/hostile.yaml".into()),
                origin_location: None,
                parent_ref: None,
                commit: None,
            }],
            errors: vec![LocationErrors {
                location_key: "url:https://example.com/hostile.yaml".into(),
                errors: vec![ProcessingError {
                    location_key: "url:https://example.com/hostile.yaml".into(),
                    entity_ref: Some("component:default/hostile".into()),
                    file: "https://example.com/<hostile>.yaml".into(),
                    finding: Finding::error(
                        Rule::NameFormat,
                        "metadata.name",
                        "<img src=y onerror=alert(3)>",
                    )
                    .at(Some(Position { line: 3, column: 7 })),
                    recorded_at: 0,
                }],
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
    for path in [
        "/catalog/default/component/hostile",
        "/?filter=metadata.name%3Dhostile",
    ] {
        let (status, _, html) = page(&running, path).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        for raw in ["<img", "<script>", "<b>", "<i>", "href=\"javascript:"] {
            assert!(
                !html.contains(raw),
                "{path} holds {raw:?} unescaped:\n{html}"
            );
        }
        assert!(
            html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }
    let (_, _, html) = page(&running, "/catalog/default/component/hostile").await;
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more"));
    assert!(html.contains("href=\"https://example.com/edit?a=1&amp;b=&quot;2&quot;\""));
    // The processing error: file, line, column, rule, message.
    assert!(
        html.contains(
            "<tr><td class=\"file\">https://example.com/&lt;hostile&gt;.yaml</td><td>3</td><td>7</td>\
             <td><code>name-format</code></td><td><code>metadata.name</code></td>\
             <td>&lt;img src=y onerror=alert(3)&gt;</td></tr>"
        ),
        "{html}"
    );
    // What was asked for is escaped too.
    let (status, _, html) = page(&running, "/catalog/default/component/%3Cb%3Ex").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!html.contains("<b>x"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_shows_highlighted_results_and_facets() {
    let running = common::start_with_search().await;
    // The index follows the store: wait until it has the examples.
    let mut html = String::new();
    for _ in 0..100 {
        let (status, _, body) = page(&running, "/search?q=artist").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        html = body;
        if html.contains("/catalog/default/component/artist-lookup") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        html.contains("href=\"/catalog/default/component/artist-lookup\""),
        "{html}"
    );
    assert!(html.contains("<mark>Artist</mark>"), "{html}");
    assert!(html.contains("value=\"artist\""), "the box keeps the term");
    assert!(html.contains("data-facet=\"kind\""));
    // A facet link narrows the results.
    assert!(
        html.contains("href=\"/search?q=artist&amp;kind=component\""),
        "{html}"
    );
    let (status, _, narrowed) = page(&running, "/search?q=artist&kind=component").await;
    assert_eq!(status, StatusCode::OK);
    assert!(narrowed.contains("aria-current=\"true\""));
    assert!(
        !narrowed.contains("href=\"/catalog/default/domain/"),
        "{narrowed}"
    );
    // A hostile term is escaped where it is shown.
    let (status, _, html) = page(&running, "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
    // Too long a term is refused as the API does.
    let (status, _, _) = page(&running, &format!("/search?q={}", "a".repeat(101))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_hashed_and_cached_forever() {
    let running = common::start().await;
    let (_, _, html) = page(&running, "/").await;
    for (extension, kind) in [("css", "text/css"), ("js", "text/javascript")] {
        let found: Vec<&str> = html
            .split('"')
            .filter(|s| s.starts_with("/static/app.") && s.ends_with(&format!(".{extension}")))
            .collect();
        assert_eq!(found.len(), 1, "{html}");
        let url = found[0];
        let hash = url
            .trim_start_matches("/static/app.")
            .trim_end_matches(&format!(".{extension}"));
        assert_eq!(hash.len(), 16, "{url}");
        let (status, headers, body) = page(&running, url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type(&headers).starts_with(kind));
        assert_eq!(
            headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        // The name is the hash of the bytes served.
        assert_eq!(
            hex::encode(&sha2::Sha256::digest(body.as_bytes())[..8]),
            hash
        );
    }
    let (status, headers, _) = page(&running, "/static/app.0000000000000000.css").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers
            .get("cache-control")
            .is_none_or(|v| v != "public, max-age=31536000, immutable")
    );
}

/// Both directions of an ownership, as the processor emits them.
fn owned_by(entity: &str, owner: &str) -> Vec<RelationEdge> {
    vec![
        RelationEdge {
            source: entity.into(),
            relation_type: "ownedBy".into(),
            target: owner.into(),
        },
        RelationEdge {
            source: owner.into(),
            relation_type: "ownerOf".into(),
            target: entity.into(),
        },
    ]
}

fn upsert(body: Value, edges: Vec<RelationEdge>, location: &str, commit: &str) -> Upsert {
    Upsert {
        body,
        edges,
        location_key: Some(location.into()),
        origin_location: None,
        parent_ref: None,
        commit: Some(commit.into()),
    }
}

/// A component of team-a at `location` with one processing error whose values are hostile.
async fn broken_component(running: &common::Running, name: &str, location: &str) {
    let entity_ref = format!("component:default/{name}");
    running
        .store
        .apply_batch(Batch {
            upserts: vec![upsert(
                json!({
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": name},
                    "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
                }),
                owned_by(&entity_ref, "group:default/team-a"),
                location,
                "c0ffee",
            )],
            errors: vec![LocationErrors {
                location_key: location.into(),
                errors: vec![ProcessingError {
                    location_key: location.into(),
                    entity_ref: Some(entity_ref.clone()),
                    file: format!("{location}/<file>.yaml"),
                    finding: Finding::error(
                        Rule::NameFormat,
                        "spec.owner",
                        "<script>alert('owner')</script>",
                    )
                    .at(Some(Position { line: 4, column: 2 })),
                    recorded_at: 0,
                }],
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pages_render_their_definitions() {
    let running = common::start().await;
    // OpenAPI: operations (method, path, summary) and schema names.
    let (status, _, html) = page(&running, "/catalog/default/api/petstore").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("<h2 id=\"definition\">API definition</h2>"),
        "{html}"
    );
    assert!(
        html.contains(
            "<tr class=\"operation\"><td><span class=\"method method-get\">GET</span></td>\
             <td><code class=\"path\">/pets</code></td><td>List all pets</td></tr>"
        ),
        "{html}"
    );
    assert!(html.contains("<code class=\"path\">/pets/{petId}</code>"));
    assert!(html.contains("<span class=\"method method-post\">POST</span>"));
    assert!(html.contains("<li><code>Pet</code>"), "{html}");
    assert!(html.contains("<strong>Swagger Petstore</strong>"));
    // AsyncAPI: channels with their operations and messages, and the messages.
    let (status, _, html) = page(&running, "/catalog/default/api/streetlights").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(
            "<code>smartylighting/streetlights/1/0/event/{streetlightId}/lighting/measured</code>"
        ),
        "{html}"
    );
    assert!(html.contains("method-subscribe"), "{html}");
    assert!(
        html.contains("<code class=\"message\">lightMeasured</code>"),
        "{html}"
    );
    assert!(
        html.contains("<h3>Messages</h3><ul class=\"messages\"><li><code>lightMeasured</code>")
    );
    // GraphQL and protobuf: highlighted on the server.
    let (_, _, html) = page(&running, "/catalog/default/api/starwars-graphql").await;
    assert!(html.contains("<code class=\"language-graphql\">"), "{html}");
    assert!(
        html.contains("<span class=\"tok-keyword\">type</span> Root"),
        "{html}"
    );
    let (_, _, html) = page(&running, "/catalog/default/api/hello-world").await;
    assert!(html.contains("<code class=\"language-proto\">"), "{html}");
    assert!(
        html.contains("<span class=\"tok-keyword\">service</span> Greeter"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"tok-comment\">// The greeting service definition.</span>")
    );
    // Other kinds have none.
    let (_, _, html) = page(&running, "/catalog/default/component/artist-lookup").await;
    assert!(!html.contains("id=\"definition\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_definition_is_escaped() {
    let running = common::start().await;
    let mut bodies = Vec::new();
    for (name, api_type, definition) in [
        (
            "hostile-openapi",
            "openapi",
            "openapi: 3.0.0\ninfo: {title: \"<script>t</script>\"}\npaths:\n  \"/<img src=x>\":\n    get: {summary: \"<b>s</b>\"}\ncomponents: {schemas: {\"<i>S</i>\": {}}}\n",
        ),
        (
            "hostile-graphql",
            "graphql",
            "type <script>alert(1)</script> { a: String }",
        ),
        (
            "hostile-other",
            "trpc",
            "</code></pre><script>alert(2)</script>",
        ),
    ] {
        bodies.push(json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "API",
            "metadata": {"name": name},
            "spec": {"type": api_type, "lifecycle": "production", "owner": "team-a", "definition": definition}
        }));
    }
    running
        .store
        .apply_batch(Batch::of_bodies(
            bodies,
            "url:https://example.com/apis.yaml",
        ))
        .await
        .unwrap();
    for name in ["hostile-openapi", "hostile-graphql", "hostile-other"] {
        let (status, _, html) = page(&running, &format!("/catalog/default/api/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        for raw in ["<script>", "<img", "<b>", "<i>", "</code></pre><script"] {
            assert!(!html.contains(raw), "{name} holds {raw:?}:\n{html}");
        }
    }
    let (_, _, html) = page(&running, "/catalog/default/api/hostile-openapi").await;
    assert!(
        html.contains("<code class=\"path\">/&lt;img src=x&gt;</code>"),
        "{html}"
    );
    assert!(
        html.contains("<li><code>&lt;i&gt;S&lt;/i&gt;</code>"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relations_graph_links_its_neighbourhood() {
    let running = common::start().await;
    let (status, _, html) = page(&running, "/catalog/default/component/artist-lookup").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<svg class=\"graph\""), "{html}");
    assert!(
        html.contains(
            "<a href=\"/catalog/default/group/team-a\" class=\"node ring-1 kind-group\">"
        ),
        "{html}"
    );
    assert!(html.contains("class=\"node ring-0 kind-component\""));
    assert!(!html.contains("ring-2"), "depth 1 by default");
    assert!(
        html.contains("<a href=\"/catalog/default/component/artist-lookup?depth=2#graph\">2</a>")
    );
    // Depth 2 reaches what the neighbours relate to (team-a's members).
    let (status, _, html) =
        page(&running, "/catalog/default/component/artist-lookup?depth=2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("class=\"node ring-2 kind-user\""), "{html}");
    assert!(html.contains("href=\"/catalog/default/user/breanna.davison\" class=\"node ring-2"));
    assert!(html.contains("aria-current=\"true\">2</a>"));
    // Every node is a link to an entity page.
    let nodes = html.matches("class=\"node ").count();
    let linked = html.matches("\" class=\"node ").count();
    assert_eq!(nodes, linked);
    // A group owning more than the cap: capped, and saying so.
    let bodies: Vec<Value> = (0..70)
        .map(|i| {
            json!({
                "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                "metadata": {"name": format!("many-{i:02}")},
                "spec": {"type": "service", "lifecycle": "production", "owner": "big-team"}
            })
        })
        .collect();
    let mut batch = Batch::of_bodies(bodies, "url:https://example.com/many.yaml");
    for (i, upsert) in batch.upserts.iter_mut().enumerate() {
        upsert.edges = owned_by(
            &format!("component:default/many-{i:02}"),
            "group:default/big-team",
        );
    }
    batch.upserts.push(upsert(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "big-team"},
               "spec": {"type": "team", "children": []}}),
        Vec::new(),
        "url:https://example.com/many.yaml",
        "c1",
    ));
    running.store.apply_batch(batch).await.unwrap();
    let (_, _, html) = page(&running, "/catalog/default/group/big-team").await;
    assert!(html.contains("data-nodes=\"60\""), "{html}");
    assert!(html.contains("Showing 60 of 71 entities: the graph is capped at 60 nodes."));
    // A depth that is not 1 or 2 is a 400 page.
    let (status, _, html) = page(
        &running,
        "/catalog/default/component/artist-lookup?depth=%3Cb%3E",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!html.contains("<b>"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_page_shows_its_history() {
    let running = common::start().await;
    let (_, _, html) = page(&running, "/catalog/default/component/artist-lookup").await;
    assert!(html.contains("<h2 id=\"history\">History</h2>"), "{html}");
    assert!(html.contains("<td>1</td><td>created</td>"), "{html}");
    assert!(html.contains("first version"));
    assert!(html.contains("<code>abc123</code>"), "the commit is shown");
    // A change names the fields it changed; hostile values in the history are escaped.
    let body = |lifecycle: &str| {
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
               "metadata": {"name": "changing", "tags": ["a"]},
               "spec": {"type": "service", "lifecycle": lifecycle, "owner": "team-a"}})
    };
    for (lifecycle, commit) in [("experimental", "1111"), ("production", "<b>2222</b>")] {
        running
            .store
            .apply_batch(Batch {
                upserts: vec![upsert(
                    body(lifecycle),
                    Vec::new(),
                    "url:https://example.com/<x>.yaml",
                    commit,
                )],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let (status, _, html) = page(&running, "/catalog/default/component/changing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<tr><td>2</td><td>updated</td>"), "{html}");
    assert!(
        html.contains(
            "<td><code>spec.lifecycle</code></td><td><code>&lt;b&gt;2222&lt;/b&gt;</code></td>"
        ),
        "{html}"
    );
    assert!(html.contains("url:https://example.com/&lt;x&gt;.yaml"));
    assert!(!html.contains("<b>2222"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_user_pages_show_members_groups_and_what_is_owned() {
    let running = common::start().await;
    broken_component(
        &running,
        "broken-one",
        "url:https://example.com/broken.yaml",
    )
    .await;
    let (status, _, html) = page(&running, "/catalog/default/group/team-a").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // Members, parent and children.
    assert!(
        html.contains("<h2 id=\"members\">Members</h2><ul class=\"relations members\">"),
        "{html}"
    );
    assert!(html.contains("<li><a href=\"/catalog/default/user/breanna.davison\">user:default/breanna.davison</a></li>"));
    assert!(
        html.contains(
            "<ul class=\"relations parent\"><li><a href=\"/catalog/default/group/backstage\">"
        ),
        "{html}"
    );
    assert!(html.contains("No child groups."));
    // What it owns, the one with errors first, with its count.
    assert!(
        html.contains(
            "<tr data-ref=\"component:default/broken-one\"><th scope=\"row\"><a href=\"/catalog/default/component/broken-one\">\
             component:default/broken-one</a></th><td>component</td><td class=\"has-errors\">1</td></tr>"
        ),
        "{html}"
    );
    assert!(html.contains("<tr data-ref=\"component:default/artist-lookup\">"));
    assert!(html.contains("<td class=\"no-errors\">0</td>"));
    let broken_at = html
        .find("data-ref=\"component:default/broken-one\"")
        .unwrap();
    let clean_at = html
        .find("data-ref=\"component:default/artist-lookup\"")
        .unwrap();
    assert!(broken_at < clean_at, "entities with errors come first");
    assert!(html.contains("1 open processing errors"), "{html}");
    assert!(html.contains("href=\"/ingestion?owner=group%3Adefault%2Fteam-a\""));
    // The broken entity's own page lists the error, escaped.
    let (_, _, html) = page(&running, "/catalog/default/component/broken-one").await;
    assert!(
        html.contains("&lt;script&gt;alert(&#39;owner&#39;)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"));
    // A user: the groups it is in.
    let (status, _, html) = page(&running, "/catalog/default/user/breanna.davison").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<h2 id=\"member-of\">Member of</h2>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"/catalog/default/group/team-a\">group:default/team-a</a>"));
    assert!(html.contains("<h2 id=\"owned\">Owns</h2>"));
    // Other kinds have no such sections; unknown groups are 404 pages.
    let (_, _, html) = page(&running, "/catalog/default/component/artist-lookup").await;
    assert!(!html.contains("id=\"members\"") && !html.contains("id=\"owned\""));
    let (status, _, _) = page(&running, "/catalog/default/group/no-such-team").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A first import into an empty store defers its read indexes; the ingestion page says so
/// until they are built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingestion_page_says_when_read_indexes_are_being_built() {
    let running = common::start_empty().await;
    let batches = (0..64)
        .map(|n| {
            let name = format!("first-{n}");
            ProcessedBatch {
                batch_id: format!("import/{n}"),
                batch: Batch {
                    upserts: vec![Upsert {
                        body: json!({
                            "apiVersion": "backstage.io/v1alpha1",
                            "kind": "Component",
                            "metadata": {"name": name},
                            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
                        }),
                        edges: vec![],
                        location_key: Some(format!("url:{name}.yaml")),
                        origin_location: Some(format!("url:{name}.yaml")),
                        parent_ref: None,
                        commit: None,
                    }],
                    ..Batch::default()
                },
                receipt: Receipt {
                    harvest_id: format!("import/{n}"),
                    location_key: format!("url:{name}.yaml"),
                    trigger: "registered".into(),
                    files_read: 1,
                    parts: 1,
                    ..Receipt::default()
                },
            }
        })
        .collect();
    for result in running.store.apply_processed_all(batches).await {
        result.unwrap();
    }
    // The store builds them once its writer has been idle for two seconds.
    assert!(running.store.indexes_pending() > 0);
    let (status, _, html) = page(&running, "/ingestion").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("The catalog is building its read indexes after its first import (10 to go)"),
        "{html}"
    );

    let mut pending = running.store.watch_indexes_pending();
    tokio::time::timeout(Duration::from_secs(60), async {
        while *pending.borrow_and_update() > 0 {
            pending.changed().await.unwrap();
        }
    })
    .await
    .expect("the read indexes built");
    let (_, _, html) = page(&running, "/ingestion").await;
    assert!(!html.contains("building its read indexes"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingestion_page_shows_receipts_and_filters_errors() {
    let running = common::start().await;
    broken_component(
        &running,
        "broken-one",
        "url:https://example.com/<broken>.yaml",
    )
    .await;
    broken_component(&running, "broken-two", "url:https://example.com/other.yaml").await;
    running
        .store
        .apply_processed(ProcessedBatch {
            batch_id: "b1".into(),
            batch: Batch::default(),
            receipt: Receipt {
                harvest_id: "h1".into(),
                location_key: "url:https://example.com/<broken>.yaml".into(),
                trigger: "webhook".into(),
                reason: "<b>pushed</b>".into(),
                commit: "deadbeef".into(),
                files_read: 3,
                failed: 1,
                failed_files: vec!["<broken>.yaml".into()],
                parts: 1,
                ..Receipt::default()
            },
        })
        .await
        .unwrap();
    let (status, _, html) = page(&running, "/ingestion").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<h1>Ingestion</h1>"));
    assert!(html.contains("<tr class=\"receipt failed\">"), "{html}");
    assert!(html.contains("<code>deadbeef</code>"));
    assert!(
        html.contains("webhook<br><span class=\"subtle\">&lt;b&gt;pushed&lt;/b&gt;</span>"),
        "{html}"
    );
    assert!(html.contains("<li class=\"file\">&lt;broken&gt;.yaml</li>"));
    // Without a filter, the failing locations are offered as filters.
    let filter = "href=\"/ingestion?location=url%3Ahttps%3A%2F%2Fexample.com%2F%3Cbroken%3E.yaml\"";
    assert!(
        html.contains(&format!("<ul class=\"failing\"><li><a {filter}>")),
        "{html}"
    );
    for raw in ["<b>", "<broken>", "<script>"] {
        assert!(!html.contains(raw), "{raw}: {html}");
    }
    // By location: that location's errors and receipts only.
    let (status, _, html) = page(
        &running,
        "/ingestion?location=url%3Ahttps%3A%2F%2Fexample.com%2F%3Cbroken%3E.yaml",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("/catalog/default/component/broken-one"),
        "{html}"
    );
    assert!(
        !html.contains("/catalog/default/component/broken-two"),
        "{html}"
    );
    assert!(
        html.contains("1 open errors at <code>url:https://example.com/&lt;broken&gt;.yaml</code>"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;alert(&#39;owner&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<script>alert"));
    assert!(
        html.contains("value=\"url:https://example.com/&lt;broken&gt;.yaml\""),
        "the filter is kept in the form"
    );
    // By owner (a bare name is a group): both.
    let (status, _, html) = page(&running, "/ingestion?owner=team-a").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("2 open errors of what <a href=\"/catalog/default/group/team-a\">"),
        "{html}"
    );
    assert!(html.contains("/catalog/default/component/broken-two"));
    // Both filters: what the owner has at that location.
    let (_, _, html) = page(&running, "/ingestion?owner=group%3Adefault%2Fteam-a&location=url%3Ahttps%3A%2F%2Fexample.com%2Fother.yaml").await;
    assert!(html.contains("1 open errors"), "{html}");
    assert!(html.contains("/catalog/default/component/broken-two"));
    assert!(!html.contains("/catalog/default/component/broken-one"));
    // An owner nobody is: nothing; a malformed one or an unknown parameter: 400 pages.
    let (status, _, html) = page(&running, "/ingestion?owner=nobody").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("0 open errors"), "{html}");
    let (status, _, _) = page(&running, "/ingestion?bogus=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingestion_page_lists_every_error_newest_first_in_pages() {
    let running = common::start().await;
    // 130 errors over three locations (more than a page of 100), each at its own time; the
    // times interleave the locations.
    let total: i64 = 130;
    for (index, location) in [
        "url:https://example.com/a.yaml",
        "url:https://example.com/b.yaml",
        "url:https://example.com/c.yaml",
    ]
    .into_iter()
    .enumerate()
    {
        let errors = (0..total)
            .filter(|n| n % 3 == index as i64)
            .map(|n| ProcessingError {
                location_key: location.into(),
                entity_ref: None,
                file: format!("{location}/<catalog-info>.yaml"),
                finding: Finding::error(Rule::NameFormat, "metadata.name", format!("error-{n:03}")),
                recorded_at: 1_700_000_000_000_000 + n * 1_000_000,
            })
            .collect();
        running
            .store
            .apply_batch(Batch {
                errors: vec![LocationErrors {
                    location_key: location.into(),
                    errors,
                }],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let listed = |html: &str| -> Vec<String> {
        html.match_indices("error-")
            .map(|(at, _)| html[at..at + 9].to_owned())
            .collect()
    };

    // The first page: the newest 100, unfiltered, and a link to the older ones.
    let (status, _, first) = page(&running, "/ingestion").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(first.contains("The newest 100 open errors"), "{first}");
    let newest: Vec<String> = (30..total).rev().map(|n| format!("error-{n:03}")).collect();
    assert_eq!(listed(&first), newest);
    assert!(first.contains("url:https://example.com/a.yaml"));
    assert!(first.contains("url:https://example.com/c.yaml"));
    assert!(!first.contains("<catalog-info>"), "file names are escaped");
    assert!(rel_link(&first, "first").is_none());
    let next = rel_link(&first, "next").expect("a link to the next page");
    assert!(next.starts_with("/ingestion?cursor="), "{next}");

    // The next page: the remaining 30, no further link, a way back to the newest.
    let (status, _, second) = page(&running, &next).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert!(second.contains("30 older open errors"), "{second}");
    let older: Vec<String> = (0..30).rev().map(|n| format!("error-{n:03}")).collect();
    assert_eq!(listed(&second), older);
    assert!(rel_link(&second, "next").is_none(), "{second}");
    assert_eq!(rel_link(&second, "first").as_deref(), Some("/ingestion"));

    // Filters still list their scope only, in one page; a cursor does not page them.
    let (status, _, filtered) = page(
        &running,
        "/ingestion?location=url%3Ahttps%3A%2F%2Fexample.com%2Fb.yaml",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(filtered.contains("43 open errors at"), "{filtered}");
    assert!(rel_link(&filtered, "next").is_none());
    let (status, _, _) = page(
        &running,
        &format!(
            "/ingestion?location=url%3Ahttps%3A%2F%2Fexample.com%2Fb.yaml&{}",
            &next["/ingestion?".len()..]
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A cursor that is not one: a 400 page.
    let (status, _, _) = page(&running, "/ingestion?cursor=garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_form(
    running: &common::Running,
    form: &[(&str, &str)],
    origin_header: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = no_redirects()
        .post(format!("{}/register", origin(running)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        );
    if let Some(value) = origin_header {
        request = request.header("origin", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_form_previews_then_registers() {
    let settings = Settings {
        location_types: vec!["url".into(), "file".into()],
        ..Settings::default()
    }
    .for_listen("127.0.0.1:7007".parse().unwrap())
    .unwrap();
    let mut running = common::start_with(settings).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: form-service\n  \
         title: \"<i>Form</i> service\"\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: \"<Bad Name>\"\nspec: {}\n",
    )
    .unwrap();
    let target = dir.path().join("catalog-info.yaml");
    let target = target.to_str().unwrap();
    let me = origin(&running);

    // The form: a path is allowed, so the type is a choice.
    let (status, _, html) = page(&running, "/register").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("<form method=\"post\" action=\"/register\""),
        "{html}"
    );
    assert!(html.contains("URL or path of a catalog-info.yaml"));
    assert!(
        html.contains("<option value=\"file\">file</option>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"/register\">Register</a>"),
        "the header links it"
    );

    // Preview: the entities it would add, escaped, and a confirm button; nothing stored.
    let (status, _, html) = post_form(
        &running,
        &[("type", "file"), ("target", target), ("action", "preview")],
        Some(&me),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("would add 2 entities"), "{html}");
    assert!(
        html.contains("<th scope=\"row\">default/form-service</th>"),
        "{html}"
    );
    assert!(html.contains("&lt;i&gt;Form&lt;/i&gt; service"));
    assert!(!html.contains("<i>Form"));
    assert!(html.contains("<button type=\"submit\" name=\"action\" value=\"register\">"));
    assert!(html.contains(&format!(
        "<input type=\"hidden\" name=\"target\" value=\"{target}\">"
    )));
    let (status, _, _) = page(&running, "/catalog/default/component/form-service").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), running.harvests.next())
            .await
            .is_err(),
        "a preview asks nothing of the harvester"
    );

    // A file with errors: the errors, escaped, and no confirm button.
    let broken = dir.path().join("broken.yaml");
    let (status, _, html) = post_form(
        &running,
        &[
            ("type", "file"),
            ("target", broken.to_str().unwrap()),
            ("action", "preview"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<ul class=\"preview-errors\"><li>"), "{html}");
    assert!(html.contains("&lt;Bad Name&gt;"), "{html}");
    assert!(!html.contains("<Bad Name>"));
    assert!(!html.contains("value=\"register\""));

    // Another site's post is refused.
    let (status, _, html) = post_form(
        &running,
        &[("type", "file"), ("target", target), ("action", "register")],
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("this site&#39;s own pages"), "{html}");

    // Confirm: registered, the harvester asked, and a redirect to a page saying so.
    let (status, headers, _) = post_form(
        &running,
        &[("type", "file"), ("target", target), ("action", "register")],
        Some(&me),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let done = headers["location"].to_str().unwrap().to_owned();
    assert!(done.starts_with("/register/done?id="), "{done}");
    let delivery = tokio::time::timeout(Duration::from_secs(5), running.harvests.next())
        .await
        .unwrap()
        .unwrap();
    let request: pb::HarvestRequest = delivery.decode().unwrap();
    assert_eq!(request.location_key, format!("file:{target}"));
    assert_eq!(request.trigger(), pb::HarvestTrigger::Registered);
    let (status, _, html) = page(&running, &done).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<h1>Registered</h1>"));
    assert!(
        html.contains(&format!(
            "The location <code>file:{target}</code> was registered."
        )),
        "{html}"
    );
    assert!(
        html.contains("href=\"/catalog/default/location/generated-"),
        "{html}"
    );
    let (_, locations) = running.get("/locations").await;
    assert!(locations.to_string().contains(target));
    // Previewing it again says it is registered; registering again is a 409 page.
    let (_, _, html) = post_form(&running, &[("type", "file"), ("target", target)], None).await;
    assert!(
        html.contains("This location is registered already"),
        "{html}"
    );
    let (status, _, html) = post_form(
        &running,
        &[("type", "file"), ("target", target), ("action", "register")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("already exists"), "{html}");
    // A type the gateway does not allow, or no target: the form again, with the reason.
    let (status, _, html) = post_form(&running, &[("type", "git"), ("target", "x")], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("allowed type"), "{html}");
    assert!(html.contains("<form method=\"post\" action=\"/register\""));
    let (status, _, _) = post_form(&running, &[("type", "file"), ("target", " ")], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An unknown location id is a 404 page.
    let (status, _, _) = page(&running, "/register/done?id=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_file_locations_asks_for_a_url() {
    let running = common::start().await;
    let (status, _, html) = page(&running, "/register").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("URL of a catalog-info.yaml or repository"),
        "{html}"
    );
    assert!(!html.contains("<option value=\"file\""));
    let (status, _, html) = post_form(
        &running,
        &[("type", "file"), ("target", "/etc/passwd")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!html.contains("root:"), "{html}");
    // The nav links every page.
    for link in [
        "<a href=\"/\">Catalog</a>",
        "<a href=\"/register\">Register</a>",
        "<a href=\"/ingestion\">Ingestion</a>",
    ] {
        assert!(html.contains(link), "{link}");
    }
}
