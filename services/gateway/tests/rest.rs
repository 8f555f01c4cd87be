//! The REST API over HTTP against a real catalog-store (SQLite, the shared examples, served
//! over gRPC on loopback) and the in-process bus: Backstage's paths, JSON shapes, status codes
//! and error body.

mod common;

use std::time::Duration;

use cadastre_gateway::Settings;
use cadastre_proto::v1 as pb;
use common::{start, start_with, start_with_search};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The error body Backstage's backend answers.
fn assert_error(body: &Value, status: StatusCode, name: &str, url: &str) {
    assert_eq!(body["error"]["name"], name, "{body}");
    assert_eq!(body["response"]["statusCode"], status.as_u16(), "{body}");
    assert_eq!(body["request"]["url"], url, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_by_name_uid_and_ancestry() {
    let running = start().await;
    let (status, entity) = running
        .get("/entities/by-name/Component/default/Artist-Lookup")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entity["metadata"]["name"], "artist-lookup");
    let uid = entity["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(
        entity["relations"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );

    let (status, by_uid) = running.get(&format!("/entities/by-uid/{uid}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_uid, entity);

    let (status, missing) = running
        .get("/entities/by-name/component/default/nope")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(
        &missing,
        status,
        "NotFoundError",
        "/entities/by-name/component/default/nope",
    );
    assert_eq!(
        missing["error"]["message"],
        "No entity named 'nope' found, with kind 'component' in namespace 'default'"
    );
    let (status, missing) = running.get("/entities/by-uid/no-such-uid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing["error"]["message"],
        "No entity with uid no-such-uid"
    );

    let (status, ancestry) = running
        .get("/entities/by-name/component/default/artist-lookup/ancestry")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ancestry["rootEntityRef"], "component:default/artist-lookup");
    assert_eq!(
        ancestry["items"][0]["entity"]["metadata"]["name"],
        "artist-lookup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_filter_project_and_page_with_cursors() {
    let running = start().await;
    let (status, first) = running
        .get("/entities/by-query?filter=kind=component&fields=metadata.name,kind&limit=4&orderField=metadata.name,asc")
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let total = first["totalItems"].as_u64().unwrap();
    assert!(total > 8, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        first["items"][0],
        json!({"kind": "Component", "metadata": {"name": first["items"][0]["metadata"]["name"]}})
    );
    let mut names: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for item in page["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_owned());
        }
        let Some(next) = page["pageInfo"]["nextCursor"].as_str() else {
            break;
        };
        let (status, next_page) = running
            .get(&format!(
                "/entities/by-query?cursor={next}&limit=4&fields=metadata.name"
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(next_page["pageInfo"]["prevCursor"].is_string());
        page = next_page;
    }
    assert_eq!(names.len() as u64, total);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ordered by name");

    // OR-ed filter sets, AND-ed conditions.
    let (_, either) = running
        .get("/entities/by-query?filter=kind=group&filter=kind=user&limit=0")
        .await;
    let (_, groups) = running
        .get("/entities/by-query?filter=kind=group&limit=0")
        .await;
    let (_, users) = running
        .get("/entities/by-query?filter=kind=user&limit=0")
        .await;
    assert_eq!(
        either["totalItems"].as_u64().unwrap(),
        groups["totalItems"].as_u64().unwrap() + users["totalItems"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_come_back_in_order_with_nulls() {
    let running = start().await;
    let (status, body) = running
        .post(
            "/entities/by-refs?fields=metadata.name",
            &json!({"entityRefs": ["component:default/artist-lookup", "component:default/nope", "Component:default/artist-lookup"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"items": [{"metadata": {"name": "artist-lookup"}}, null, null]})
    );
    let (status, body) = running
        .post("/entities/by-refs", &json!({"refs": []}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, status, "InputError", "/entities/by-refs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_count_values() {
    let running = start().await;
    let (status, body) = running
        .get("/entity-facets?facet=kind&filter=kind=component,kind=api")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let kinds = body["facets"]["kind"].as_array().unwrap();
    let values: Vec<&str> = kinds.iter().map(|v| v["value"].as_str().unwrap()).collect();
    assert_eq!(values, vec!["API", "Component"]);
    assert!(kinds.iter().all(|v| v["count"].as_u64().unwrap() > 0));
    let (status, body) = running.get("/entity-facets").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "Missing facet parameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_are_registered_harvested_and_removed() {
    let mut running = start().await;
    let target = "https://git.example.com/org/repo/blob/main/catalog-info.yaml";
    let (status, created) = running
        .post("/locations", &json!({"type": "url", "target": target}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["entities"], json!([]));
    let id = created["location"]["id"].as_str().unwrap().to_owned();
    assert!(
        created["location"]["entityRef"]
            .as_str()
            .unwrap()
            .starts_with("location:default/generated-")
    );

    // The harvester is asked to read it.
    let delivery = tokio::time::timeout(Duration::from_secs(5), running.harvests.next())
        .await
        .unwrap()
        .unwrap();
    let request: pb::HarvestRequest = delivery.decode().unwrap();
    assert_eq!(request.location_key, format!("url:{target}"));
    assert_eq!(request.trigger(), pb::HarvestTrigger::Registered);
    delivery.ack().await.unwrap();

    let (status, again) = running
        .post("/locations", &json!({"type": "url", "target": target}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        again["error"]["message"],
        format!("Location url:{target} already exists")
    );

    let (_, list) = running.get("/locations").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|l| l["data"]["id"] == id.as_str())
    );
    let (status, one) = running.get(&format!("/locations/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["target"], target);

    let deleted = running
        .http
        .delete(format!("{}/locations/{id}", running.base))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, gone) = running.get(&format!("/locations/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        gone["error"]["message"],
        format!("Found no location with ID {id}")
    );

    let (status, refused) = running
        .post(
            "/locations",
            &json!({"type": "file", "target": "/etc/passwd"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused["error"]["message"],
        "Registered locations must be of an allowed type [\"url\",\"git\"]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_a_4xx_with_the_error_body() {
    let running = start().await;
    for path in [
        "/entities/by-query?filter==component",
        "/entities/by-query?colour=red",
        "/entities/by-query?cursor=not-a-cursor",
        "/entities/by-query?limit=many",
        "/entities/by-query?orderField=metadata.name,sideways",
        "/entities/by-query?fields=spec.items[0]",
        "/entities/by-query?totalItems=maybe",
    ] {
        let (status, body) = running.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_error(&body, status, "InputError", path);
    }
    // Bodies: not JSON, not an object, no content type, unknown keys.
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = running
            .http
            .post(format!("{}/locations", running.base))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    for (body, content_type) in [
        ("{not json", Some("application/json")),
        ("[1, 2]", Some("application/json")),
        (r#"{"type": "url", "target": "x"}"#, None),
        (
            r#"{"type": "url", "target": "x", "extra": 1}"#,
            Some("application/json"),
        ),
    ] {
        let response = raw(body, content_type).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["name"], "InputError", "{body}: {error}");
    }
    let (status, body) = running
        .post("/refresh", &json!({"entityRef": "component:default/nope"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_scopes_guard_reads_and_writes() {
    use cadastre_gateway::auth::{Auth, Scope};
    let refused = Settings::default().for_listen("0.0.0.0:7007".parse().unwrap());
    assert!(refused.unwrap_err().contains("no token is configured"));
    let settings = Settings {
        auth: Auth {
            tokens: vec![
                ("reader-token".into(), Scope::Read),
                ("writer-token".into(), Scope::Write),
            ],
            anonymous_reads: false,
            open: false,
        },
        ..Settings::default()
    }
    .for_listen("0.0.0.0:7007".parse().unwrap())
    .unwrap();
    let running = start_with(settings).await;
    let call = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut request = running
            .http
            .request(method, format!("{}{path}", running.base))
            .json(&json!({"type": "url", "target": "https://git.example.com/a/catalog-info.yaml"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let path = "/entities/by-name/component/default/artist-lookup";
    let anonymous = call(reqwest::Method::GET, path, None).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert_error(&body, StatusCode::UNAUTHORIZED, "AuthenticationError", path);
    assert_eq!(
        call(reqwest::Method::GET, path, Some("reader-token"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(reqwest::Method::GET, path, Some("forged"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let read_only = call(reqwest::Method::POST, "/locations", Some("reader-token"))
        .await
        .unwrap();
    assert_eq!(read_only.status(), StatusCode::FORBIDDEN);
    let written = call(reqwest::Method::POST, "/locations", Some("writer-token"))
        .await
        .unwrap();
    assert_eq!(written.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_list_streams_everything_or_pages_with_links() {
    let running = start().await;
    let (_, counted) = running
        .get("/entities/by-query?filter=kind=component&limit=0")
        .await;
    let total = counted["totalItems"].as_u64().unwrap() as usize;
    let (status, all) = running
        .get("/entities?filter=kind=component&fields=metadata.name")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), total);
    let (_, everything) = running.get("/entities").await;
    assert!(everything.as_array().unwrap().len() > total);

    // Past the first store page (1,000), the fields still apply.
    let bodies = (0..1_100).map(|i| {
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Resource",
            "metadata": {"name": format!("bucket-{i:04}"), "namespace": "default", "description": "x"},
            "spec": {"type": "s3", "owner": "team-a"}})
    });
    running
        .store
        .apply_batch(cadastre_catalog_store::Batch::of_bodies(
            bodies,
            "file:/buckets.yaml",
        ))
        .await
        .unwrap();
    let (status, buckets) = running
        .get("/entities?filter=kind=resource&fields=metadata.name")
        .await;
    assert_eq!(status, StatusCode::OK);
    let buckets = buckets.as_array().unwrap();
    assert!(buckets.len() >= 1_100);
    assert!(
        buckets
            .iter()
            .all(|b| b.as_object().unwrap().keys().eq(["metadata"])
                && b["metadata"].as_object().unwrap().len() == 1),
        "fields lost on a later page"
    );

    let mut url = "/entities?filter=kind=component&limit=3&order=asc:metadata.name".to_owned();
    let mut seen = Vec::new();
    loop {
        let response = running
            .http
            .get(format!("{}{url}", running.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let link = response
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Value = response.json().await.unwrap();
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|e| e["metadata"]["name"].clone()),
        );
        match link {
            Some(link) => {
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                url = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    let (status, _) = running.get("/entities?after=garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicates_in_bodies_query_and_count() {
    let running = start().await;
    let (status, page) = running
        .post(
            "/entities/by-query",
            &json!({"query": {"kind": "component", "spec.type": "service"}, "orderBy": [{"field": "metadata.name", "order": "desc"}], "limit": 2, "fields": ["metadata.name"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["pageInfo"]["nextCursor"].as_str().unwrap();
    let (status, next) = running
        .post("/entities/by-query", &json!({"cursor": cursor, "limit": 2}))
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert!(next["pageInfo"]["prevCursor"].is_string());
    let (status, bad) = running
        .post("/entities/by-query", &json!({"query": {"$nope": 1}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    let (status, facets) = running
        .post(
            "/entity-facets",
            &json!({"facets": ["kind"], "query": {"kind": "api"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{facets}");
    assert_eq!(facets["facets"]["kind"][0]["value"], "API");
    assert_eq!(facets["facets"]["kind"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_removed_by_uid_and_found_by_their_location() {
    let running = start().await;
    let (_, entity) = running
        .get("/entities/by-name/component/default/artist-lookup")
        .await;
    let uid = entity["metadata"]["uid"].as_str().unwrap();
    let delete = |path: String| {
        running
            .http
            .delete(format!("{}{path}", running.base))
            .send()
    };
    assert_eq!(
        delete(format!("/entities/by-uid/{uid}"))
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete("/entities/by-uid/unknown".into())
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let (status, _) = running
        .get("/entities/by-name/component/default/artist-lookup")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An entity whose origin is a registered location leads back to it.
    let location = running
        .store
        .add_location(
            "url",
            "https://git.example.com/o/r/blob/main/catalog-info.yaml",
        )
        .await
        .unwrap();
    let mut upsert = cadastre_catalog_store::Upsert {
        body: json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "located", "namespace": "default", "annotations": {
                "backstage.io/managed-by-origin-location": "url:https://git.example.com/o/r/blob/main/catalog-info.yaml"}},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
        }),
        edges: Vec::new(),
        location_key: Some("url:https://git.example.com/o/r/blob/main/catalog-info.yaml".into()),
        origin_location: None,
        parent_ref: None,
        commit: None,
    };
    upsert.origin_location = upsert.location_key.clone();
    running
        .store
        .apply_batch(cadastre_catalog_store::Batch {
            upserts: vec![upsert],
            ..Default::default()
        })
        .await
        .unwrap();
    let (status, found) = running
        .get("/locations/by-entity/component/default/located")
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["id"], location.id.as_str());
    let (status, _) = running
        .get("/locations/by-entity/component/default/petstore")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_validated_without_being_stored() {
    let running = start().await;
    let valid = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": "fresh"}, "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}});
    let (status, _) = running
        .post(
            "/validate-entity",
            &json!({"entity": valid, "location": "url:https://x.example.com/c.yaml"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = running
        .get("/entities/by-name/component/default/fresh")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    let invalid = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": "Not A Name!"}, "spec": {"type": "service", "lifecycle": "production"}});
    let (status, body) = running
        .post(
            "/validate-entity",
            &json!({"entity": invalid, "location": "url:https://x.example.com/c.yaml"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let rules: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"name-format") && rules.contains(&"spec-field-required"),
        "{body}"
    );
    let (status, body) = running
        .post(
            "/validate-entity",
            &json!({"entity": valid, "location": "file:/etc/x.yaml"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("only 'url:<target>'")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_answers_backstage_queries_and_suggestions() {
    let running = start_with_search().await;
    let search = |query: &'static str| {
        let url = running.base.replace("/api/catalog", "/api/search");
        let http = running.http.clone();
        async move {
            let response = http.get(format!("{url}{query}")).send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // The index catches up with the store.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let found = loop {
        let (status, body) =
            search("/query?term=artist&types[0]=software-catalog&filters[kind]=Component").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["numberOfResults"].as_u64().unwrap_or(0) >= 2 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the index never caught up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let results = found["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["document"]["kind"] == "Component"));
    let lookup = results
        .iter()
        .find(|r| r["document"]["name"] == "artist-lookup")
        .unwrap();
    assert_eq!(lookup["type"], "software-catalog");
    assert_eq!(
        lookup["document"]["location"],
        "/catalog/default/component/artist-lookup"
    );
    assert_eq!(lookup["highlight"]["preTag"], "<mark>");
    assert_eq!(results[0]["rank"], 1);

    let (status, page) = search("/query?term=&pageLimit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert!(page["nextPageCursor"].is_string());

    let (status, body) = search("/suggest?prefix=artist").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["entityRef"] == "component:default/artist-lookup")
    );

    for bad in [
        "/query?pageLimit=500",
        "/query?types[0]=techdocs",
        "/query?filters[colour]=red",
        "/query?pageCursor=zzz",
        "/suggest?limit=99",
    ] {
        let (status, body) = search(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["name"], "InputError", "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_with_the_error_body() {
    use cadastre_gateway::limits::RateLimit;
    let settings = Settings {
        rate_limit: Some(RateLimit {
            per_second: 1.0,
            burst: 3.0,
        }),
        max_body_bytes: 1024,
        ..Settings::default()
    }
    .for_listen("127.0.0.1:7007".parse().unwrap())
    .unwrap();
    let running = start_with(settings).await;
    let oversize = running
        .http
        .post(format!("{}/entities/by-refs", running.base))
        .header("content-type", "application/json")
        .body(format!(r#"{{"entityRefs": ["{}"]}}"#, "x".repeat(4096)))
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = oversize.json().await.unwrap();
    assert_eq!(body["error"]["name"], "PayloadTooLargeError");
    let (status, body) = running.get("/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["name"], "NotFoundError");
    // Three at once, then one a second: a quick fourth (or fifth) request waits.
    let mut limited = None;
    for _ in 0..3 {
        let response = running
            .http
            .get(format!("{}/entities/by-query?limit=1", running.base))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a request beyond the burst is refused");
    assert!(limited.headers().get("retry-after").is_some());
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["name"], "TooManyRequestsError");
}

/// Random query strings built from the parameters' own vocabulary and hostile characters:
/// every answer is a success or a 4xx with the error body, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_query_string_makes_a_server_error() {
    const KEYS: &[&str] = &[
        "filter",
        "fields",
        "limit",
        "offset",
        "orderField",
        "order",
        "cursor",
        "after",
        "totalItems",
        "fullTextFilterTerm",
        "fullTextFilterFields",
        "facet",
        "x",
    ];
    const PIECES: &[&str] = &[
        "kind",
        "=",
        ",",
        "component",
        "metadata.name",
        "spec.type",
        "relations.ownedby",
        "asc",
        "desc",
        "%",
        "%ZZ",
        "[0]",
        "$",
        "..",
        "\u{0}",
        "é",
        "🚀",
        "-1",
        "0",
        "99999999999",
        "eyJ9",
        "include",
        "exclude",
        " ",
        "&",
        "a=b=c",
        "/",
        ":",
    ];
    const PATHS: &[&str] = &[
        "/entities/by-query",
        "/entities",
        "/entity-facets",
        "/locations",
    ];
    let running = start().await;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..400 {
        let mut query = Vec::new();
        for _ in 0..1 + next(4) {
            let mut value = String::new();
            for _ in 0..next(5) {
                value.push_str(PIECES[next(PIECES.len())]);
            }
            query.push(format!(
                "{}={}",
                KEYS[next(KEYS.len())],
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            ));
        }
        let path = format!("{}?{}", PATHS[next(PATHS.len())], query.join("&"));
        let (status, body) = running.get(&path).await;
        assert!(!status.is_server_error(), "{path}: {status} {body}");
        if status.is_client_error() {
            assert!(body["error"]["name"].is_string(), "{path}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_receipts_and_errors_beyond_backstage() {
    let running = start().await;
    let base = running.base.replace("/api/catalog", "/api/cadastre/v1");
    let get = |path: String| {
        let http = running.http.clone();
        async move {
            let response = http.get(path).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, history) = get(format!(
        "{base}/entities/component/default/artist-lookup/history"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let first = &history["items"][0];
    assert_eq!(first["change"], "created");
    assert_eq!(first["commit"], "abc123");
    assert_eq!(first["entity"]["metadata"]["name"], "artist-lookup");
    let recorded = first["recordedAt"].as_str().unwrap();
    let (status, then) = get(format!(
        "{base}/entities/component/default/artist-lookup/as-of/{recorded}"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{then}");
    assert_eq!(then["generation"], 1);
    let (status, _) = get(format!(
        "{base}/entities/component/default/artist-lookup/as-of/1999-01-01T00:00:00Z"
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, progress) = get(format!("{base}/status")).await;
    assert_eq!(status, StatusCode::OK, "{progress}");
    assert!(progress["feedSequence"].as_u64().unwrap() > 0, "{progress}");
    assert_eq!(progress["indexesPending"], 0, "{progress}");
    let (status, receipts) = get(format!("{base}/receipts?limit=5")).await;
    assert_eq!(status, StatusCode::OK, "{receipts}");
    assert!(receipts["items"].is_array());
    let (status, errors) = get(format!(
        "{base}/processing-errors?owner=group:default/team-a"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{errors}");
    assert!(errors["items"].is_array());
    let (status, refused) = get(format!("{base}/processing-errors")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"]["name"], "InputError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyzing_a_repository_proposes_a_component() {
    let running = start().await;
    let (status, body) = running
        .post(
            "/analyze-location",
            &json!({"location": {"type": "url", "target": "https://github.com/acme/payment-gateway"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entity = &body["generateEntities"][0]["entity"];
    assert_eq!(entity["metadata"]["name"], "payment-gateway");
    assert_eq!(
        entity["metadata"]["annotations"]["github.com/project-slug"],
        "acme/payment-gateway"
    );
    assert_eq!(
        entity["spec"],
        json!({"type": "other", "lifecycle": "unknown"})
    );
    assert_eq!(body["existingEntityFiles"], json!([]));
    let (status, body) = running
        .post(
            "/analyze-location",
            &json!({"location": {"type": "url", "target": "not a url"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "The given location.target is not a URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyzing_a_repository_finds_its_catalog_files() {
    use cadastre_testkit::{component_yaml, git};
    let running = start().await;
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(repo.path().join("services/billing")).unwrap();
    std::fs::write(
        repo.path().join("services/billing/catalog-info.yaml"),
        component_yaml("billing", "team-b"),
    )
    .unwrap();
    // Already in the catalog (the examples hold it).
    std::fs::write(
        repo.path().join("catalog-info.yaml"),
        component_yaml("petstore", "team-c"),
    )
    .unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "catalog"]);
    let target = url::Url::from_directory_path(repo.path())
        .unwrap()
        .to_string();

    let (status, body) = running
        .post(
            "/analyze-location",
            &json!({"location": {"type": "url", "target": target}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["generateEntities"], json!([]));
    let files = body["existingEntityFiles"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{body}");
    let billing = files
        .iter()
        .find(|f| f["entity"]["metadata"]["name"] == "billing")
        .unwrap();
    assert_eq!(billing["isRegistered"], false);
    assert_eq!(billing["location"]["type"], "url");
    assert!(
        billing["location"]["target"]
            .as_str()
            .unwrap()
            .ends_with("/blob/HEAD/services/billing/catalog-info.yaml"),
        "{billing}"
    );
    let petstore = files
        .iter()
        .find(|f| f["entity"]["metadata"]["name"] == "petstore")
        .unwrap();
    assert_eq!(petstore["isRegistered"], true);

    // Another file name finds nothing there, so a skeleton is proposed, named after the
    // repository folder.
    let (status, body) = running
        .post(
            "/analyze-location",
            &json!({"location": {"type": "url", "target": target}, "catalogFilename": "backstage.yaml"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["existingEntityFiles"], json!([]));
    let name = repo.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(
        body["generateEntities"][0]["entity"]["metadata"]["name"]
            .as_str()
            .unwrap(),
        name.chars()
            .map(
                |c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            )
            .collect::<String>()
    );
}

/// The OpenAPI document names every route the gateway serves, and each one answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_router() {
    let running = start_with_search().await;
    let (status, document) = running.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let api = running.base.replace("/api/catalog", "/api");
    let mut checked = 0;
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            assert!(operation["summary"].is_string(), "{method} {path}");
            let concrete = path
                .trim_start_matches("/api")
                .replace("{kind}", "component")
                .replace("{namespace}", "default")
                .replace("{name}", "artist-lookup")
                .replace("{uid}", "some-uid")
                .replace("{id}", "some-id")
                .replace("{time}", "2030-01-01T00:00:00Z");
            let request = running.http.request(
                method.to_uppercase().parse().unwrap(),
                format!("{api}{concrete}"),
            );
            let request = if method == "get" || method == "delete" {
                request
            } else {
                request.json(&json!({}))
            };
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("No route"));
            assert!(
                !unrouted,
                "{method} {path} is documented but not served: {status} {body}"
            );
            assert!(
                !status.is_server_error(),
                "{method} {path}: {status} {body}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, cadastre_gateway::openapi::OPERATIONS.len());
}

/// A pull request's files checked against the catalog: rules with line and column, unknown
/// owners, refs defined twice or held elsewhere, and what would change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_checked_against_the_whole_catalog() {
    let running = start().await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/catalog-model-examples/components/artist-lookup-component.yaml");
    let original = std::fs::read_to_string(&examples).unwrap();
    let edited = original.replace("description: Artist Lookup", "description: Finds artists");
    let new_one = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: brand-new\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n";
    let orphaned = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: lonely\nspec:\n  type: service\n  lifecycle: production\n  owner: team-nobody\n";
    let broken =
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: Bad Name\n";
    let cadastre = running.base.replace("/api/catalog", "/api/cadastre/v1");
    let check = |body: Value| {
        let http = running.http.clone();
        let url = format!("{cadastre}/validate-files");
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, report) = check(json!({"files": [
        {"path": "artist-lookup.yaml", "content": edited},
        {"path": "new.yaml", "content": new_one},
        {"path": "again.yaml", "content": new_one},
        {"path": "lonely.yaml", "content": orphaned},
        {"path": "broken.yaml", "content": broken},
    ]}))
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["valid"], false);
    let findings = |index: usize| {
        report["files"][index]["findings"]
            .as_array()
            .unwrap()
            .clone()
    };
    let rules = |index: usize| {
        findings(index)
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        findings(0).iter().all(|f| f["severity"] != "error"),
        "{report}"
    );
    assert!(findings(1).is_empty(), "{report}");
    assert_eq!(rules(2), vec!["entity-ref-conflict"]);
    assert_eq!(rules(3), vec!["owner-unknown"]);
    let name_error = findings(4)
        .into_iter()
        .find(|f| f["rule"] == "name-format")
        .unwrap();
    assert_eq!(
        (name_error["line"].as_u64(), name_error["column"].as_u64()),
        (Some(4), Some(9))
    );
    let change = |entity_ref: &str| {
        report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["entityRef"] == entity_ref)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        change("component:default/artist-lookup")["change"],
        "updated"
    );
    assert_eq!(
        change("component:default/artist-lookup")["fields"],
        json!(["metadata.description"])
    );
    assert_eq!(change("component:default/brand-new")["change"], "created");

    let (_, unchanged) = check(json!({"files": [{"path": "a.yaml", "content": original}]})).await;
    assert_eq!(unchanged["valid"], true, "{unchanged}");
    assert_eq!(unchanged["changes"][0]["change"], "unchanged");
    let (_, clash) = check(json!({"files": [{"path": "a.yaml", "content": original}], "location": "url:https://elsewhere.example.com/catalog-info.yaml"})).await;
    assert_eq!(clash["valid"], false);
    assert_eq!(
        clash["files"][0]["findings"][0]["rule"],
        "entity-ref-conflict"
    );
    // Nothing was stored.
    let (status, _) = running
        .get("/entities/by-name/component/default/brand-new")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = check(json!({"files": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_are_queried_with_predicates_in_pages() {
    let running = start().await;
    for n in 0..5 {
        let (status, _) = running
            .post("/locations", &json!({"type": "url", "target": format!("https://git.example.com/r{n}/catalog-info.yaml")}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    running
        .post(
            "/locations",
            &json!({"type": "git", "target": "https://git.example.com/other.git"}),
        )
        .await;
    let (status, first) = running
        .post(
            "/locations/by-query",
            &json!({"query": {"type": "URL"}, "limit": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["totalItems"], 5);
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = first["pageInfo"]["nextCursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let (_, page) = running
            .post("/locations/by-query", &json!({"cursor": next}))
            .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_owned()),
        );
        cursor = page["pageInfo"]["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    let (_, prefixed) = running
        .post(
            "/locations/by-query",
            &json!({"query": {"target": {"$hasPrefix": "https://git.example.com/r1"}}}),
        )
        .await;
    assert_eq!(prefixed["totalItems"], 1);
    let (status, _) = running
        .post("/locations/by-query", &json!({"cursor": "nope"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_is_pointed_elsewhere_keeping_its_id() {
    let mut running = start().await;
    let old = "https://git.example.com/org/old/blob/main/catalog-info.yaml";
    let new = "https://git.example.com/org/new/blob/main/catalog-info.yaml";
    let taken = "https://git.example.com/org/taken/blob/main/catalog-info.yaml";
    let (_, created) = running
        .post("/locations", &json!({"type": "url", "target": old}))
        .await;
    let id = created["location"]["id"].as_str().unwrap().to_owned();
    running
        .post("/locations", &json!({"type": "url", "target": taken}))
        .await;
    for _ in 0..2 {
        let delivery = tokio::time::timeout(Duration::from_secs(5), running.harvests.next())
            .await
            .unwrap()
            .unwrap();
        delivery.ack().await.unwrap();
    }
    let put = |path: String, body: Value| {
        let http = running.http.clone();
        let url = format!("{}{path}", running.base);
        async move {
            let response = http.put(url).json(&body).send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let (status, moved) = put(
        format!("/locations/{id}"),
        json!({"type": "url", "target": new}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["id"], id.as_str());
    assert_eq!(moved["target"], new);
    assert_ne!(moved["entityRef"], created["location"]["entityRef"]);
    // The new target is read at once.
    let delivery = tokio::time::timeout(Duration::from_secs(5), running.harvests.next())
        .await
        .unwrap()
        .unwrap();
    let request: pb::HarvestRequest = delivery.decode().unwrap();
    assert_eq!(request.location_key, format!("url:{new}"));
    delivery.ack().await.unwrap();
    let (_, one) = running.get(&format!("/locations/{id}")).await;
    assert_eq!(one["target"], new);

    let (status, body) = put(
        format!("/locations/{id}"),
        json!({"type": "url", "target": taken}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = put(
        "/locations/no-such-id".into(),
        json!({"type": "url", "target": "https://git.example.com/x/y.yaml"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["error"]["message"],
        "Found no location with ID no-such-id"
    );
    let (status, body) = put(
        format!("/locations/{id}"),
        json!({"type": "file", "target": "/etc/passwd"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = put(
        format!("/locations/{id}"),
        json!({"type": "url", "target": new, "colour": "red"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reads_the_location_now_and_stores_nothing() {
    let settings = Settings {
        location_types: vec!["url".into(), "file".into()],
        ..Settings::default()
    }
    .for_listen("127.0.0.1:7007".parse().unwrap())
    .unwrap();
    let mut running = start_with(settings).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: team-z-all\nspec:\n  targets: [./dry-service.yaml]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dry-service.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: dry-service\nspec:\n  type: service\n  lifecycle: production\n  owner: team-z\n",
    )
    .unwrap();
    let target = dir.path().join("catalog-info.yaml");
    let target = target.to_str().unwrap();

    let (status, preview) = running
        .post(
            "/locations?dryRun=true",
            &json!({"type": "file", "target": target}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{preview}");
    assert_eq!(preview["exists"], false);
    assert_eq!(preview["location"]["id"], format!("file:{target}"));
    let refs: Vec<String> = preview["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(refs[0].starts_with("Location:generated-"), "{refs:?}");
    assert!(refs.contains(&"Location:team-z-all".to_owned()), "{refs:?}");
    assert!(
        refs.contains(&"Component:dry-service".to_owned()),
        "{refs:?}"
    );
    // Nothing stored, nothing asked of the harvester.
    let (status, _) = running
        .get("/entities/by-name/component/default/dry-service")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, locations) = running.get("/locations").await;
    assert!(!locations.to_string().contains("catalog-info.yaml"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), running.harvests.next())
            .await
            .is_err()
    );

    // An error anywhere down the fan-out refuses the dry run, saying where and why.
    std::fs::write(
        dir.path().join("dry-service.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: Not Valid!\nspec:\n  type: service\n  lifecycle: production\n  owner: team-z\n",
    )
    .unwrap();
    let (status, refused) = running
        .post(
            "/locations?dryRun=yes",
            &json!({"type": "file", "target": target}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("dry-service.yaml"), "{message}");
    assert!(message.contains("[name-format]"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_lookups_follow_every_change_in_the_store() {
    let running = common::start_with_entity_cache().await;
    let path = "/entities/by-name/component/default/petstore";
    let cache = running.entity_cache.clone().unwrap();
    // The cache fills only once it follows the change feed; keep asking until it holds it.
    let (status, before) = running.get(path).await;
    assert_eq!(status, StatusCode::OK);
    let etag = before["metadata"]["etag"].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.get("component:default/petstore").is_none() {
        assert!(std::time::Instant::now() < deadline, "never cached");
        let (_, again) = running.get(path).await;
        assert_eq!(again["metadata"]["etag"], etag);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The store changes behind the gateway's back: the feed makes the cache forget.
    let mut changed = before.clone();
    changed["metadata"]["description"] = json!("changed behind the gateway");
    for key in ["uid", "etag", "generation"] {
        changed["metadata"].as_object_mut().unwrap().remove(key);
    }
    changed.as_object_mut().unwrap().remove("relations");
    changed.as_object_mut().unwrap().remove("status");
    let location = running
        .store
        .entity_by_ref("component:default/petstore")
        .await
        .unwrap()
        .unwrap()
        .location_key
        .unwrap();
    running
        .store
        .apply_batch(cadastre_catalog_store::Batch::of_bodies(
            [changed],
            &location,
        ))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, now) = running.get(path).await;
        if now["metadata"]["description"] == "changed behind the gateway" {
            assert_ne!(now["metadata"]["etag"], etag);
            assert!(
                cache
                    .get("component:default/petstore")
                    .is_none_or(|cached| cached.entity.as_ref().unwrap().etag != etag),
                "the cache still holds the old entity"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And a removal is not served from the cache either.
    running
        .store
        .apply_batch(cadastre_catalog_store::Batch {
            removals: vec!["component:default/petstore".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while running.get(path).await.0 != StatusCode::NOT_FOUND {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_answer_beside_the_api() {
    let running = start_with_search().await;
    let root = running.base.trim_end_matches("/api/catalog").to_owned();
    let get = |path: &str| {
        let http = running.http.clone();
        let url = format!("{root}{path}");
        async move {
            let response = http.get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    assert_eq!(get("/live").await.0, StatusCode::OK);
    let (status, ready) = get("/ready").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    running
        .get("/entities/by-name/component/default/petstore")
        .await;
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains(
            "cadastre_http_requests_total{route=\"/api/catalog/entities/by-name/{kind}/{namespace}/{name}\",status=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("cadastre_grpc_server_requests_total"),
        "{metrics}"
    );
}
