//! The web UI against a gateway loaded with the shared examples: each page answers with the
//! expected content, filters and paging follow their links, hostile values are escaped, and
//! assets are served at hashed, immutable URLs. (`ui_browser.rs` drives a real browser.)

mod common;

use cadastre_catalog_store::{Batch, LocationErrors, ProcessingError, Upsert};
use cadastre_model::{Finding, Position, Rule};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;
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
