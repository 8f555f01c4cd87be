//! The UI on a gateway that needs tokens (signing in with a token kept in a cookie, what the
//! cookie counts for and what it does not), and tools embedded as tabs of entity pages.

mod common;

use cadastre_catalog_store::Batch;
use cadastre_gateway::Settings;
use cadastre_gateway::auth::{Auth, Scope};
use cadastre_gateway::ui::Tool;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::json;

/// A gateway that takes a read token and a write token, and answers nobody without one.
async fn start_guarded() -> common::Running {
    let settings = Settings {
        auth: Auth {
            tokens: vec![
                ("reader; token".into(), Scope::Read),
                ("writer-token".into(), Scope::Write),
            ],
            anonymous_reads: false,
            open: false,
        },
        ..Settings::default()
    }
    .for_listen("0.0.0.0:7007".parse().unwrap())
    .unwrap();
    common::start_with(settings).await
}

/// A form body, as a browser posts it.
fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` part of the response's cookie, and its attributes.
fn set_cookie(headers: &HeaderMap) -> (String, String) {
    let cookie = headers
        .get(header::SET_COOKIE)
        .expect("a cookie is set")
        .to_str()
        .unwrap()
        .to_owned();
    let (pair, attributes) = cookie.split_once(';').unwrap();
    (pair.to_owned(), attributes.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_with_a_token_and_the_cookie_counts_for_pages_and_reads() {
    let running = start_guarded().await;
    let site = running.base.replace("/api/catalog", "");
    let http = no_redirects();

    // Without a token the catalog page is refused, with a way to sign in and come back.
    let refused = http
        .get(format!("{site}/?kind=component"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("href=\"/sign-in?next=%2F%3Fkind%3Dcomponent\""),
        "{page}"
    );
    // The sign-in page itself needs no token.
    let form = http.get(format!("{site}/sign-in")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    assert!(form.text().await.unwrap().contains("name=\"token\""));

    // A token the gateway does not know: refused, no cookie.
    let sign_in = |token: &str, next: &str| {
        http.post(format!("{site}/sign-in"))
            .header(header::ORIGIN, site.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(&[("token", token), ("next", next)]))
            .send()
    };
    let wrong = sign_in("guess", "/").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("not one this gateway knows")
    );

    // The read token: a cookie scripts cannot read, and back to the page asked for; a `next`
    // pointing elsewhere goes home instead.
    let reader = sign_in("reader; token", "/?kind=component").await.unwrap();
    assert_eq!(reader.status(), StatusCode::SEE_OTHER);
    assert_eq!(reader.headers()[header::LOCATION], "/?kind=component");
    let (reader_cookie, attributes) = set_cookie(reader.headers());
    assert!(
        reader_cookie.starts_with("cadastre_token="),
        "{reader_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    let elsewhere = sign_in("reader; token", "//evil.example/").await.unwrap();
    assert_eq!(elsewhere.headers()[header::LOCATION], "/");

    let with_cookie = |cookie: &str, path: &str| {
        http.get(format!("{site}{path}"))
            .header(header::COOKIE, cookie.to_owned())
            .send()
    };
    let catalog = with_cookie(&reader_cookie, "/?kind=component")
        .await
        .unwrap();
    assert_eq!(catalog.status(), StatusCode::OK);
    assert!(catalog.text().await.unwrap().contains("artist-lookup"));
    // The pages' scripts read the API with the cookie (suggestions, here by-name).
    let read = with_cookie(
        &reader_cookie,
        "/api/catalog/entities/by-name/component/default/artist-lookup",
    )
    .await
    .unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    // A read token may not register: the form says to sign in, the post is refused.
    let register = with_cookie(&reader_cookie, "/register").await.unwrap();
    assert!(
        register
            .text()
            .await
            .unwrap()
            .contains("Registering needs a token with the write scope")
    );
    let post_register = |cookie: &str| {
        http.post(format!("{site}/register"))
            .header(header::ORIGIN, site.clone())
            .header(header::COOKIE, cookie.to_owned())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(&[
                ("type", "url"),
                ("target", ""),
                ("action", "preview"),
            ]))
            .send()
    };
    let refused = post_register(&reader_cookie).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // The write token's cookie registers through the form (here: the form's own check of
    // the empty target answers, so the token was accepted) ...
    let writer = sign_in("writer-token", "/register").await.unwrap();
    let (writer_cookie, _) = set_cookie(writer.headers());
    let accepted = post_register(&writer_cookie).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::BAD_REQUEST);
    assert!(accepted.text().await.unwrap().contains("Give the URL"));
    // ... but the API's writes take the Authorization header only.
    let api_write = http
        .post(format!("{}/locations", running.base))
        .header(header::COOKIE, writer_cookie.clone())
        .json(&json!({"type": "url", "target": "https://git.example.com/a/catalog-info.yaml"}))
        .send()
        .await
        .unwrap();
    assert_eq!(api_write.status(), StatusCode::UNAUTHORIZED);

    // Another site cannot sign a browser in, nor out.
    let forged = http
        .post(format!("{site}/sign-in"))
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[("token", "writer-token"), ("next", "/")]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get(header::SET_COOKIE).is_none());

    // Signing out forgets the cookie.
    let out = http
        .post(format!("{site}/sign-out"))
        .header(header::ORIGIN, site.clone())
        .header(header::COOKIE, writer_cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let (cleared, attributes) = set_cookie(out.headers());
    assert_eq!(cleared, "cadastre_token=");
    assert!(attributes.contains("Max-Age=0"), "{attributes}");
    // A cookie holding a token the gateway no longer knows is refused, not ignored.
    let stale = with_cookie("cadastre_token=revoked", "/").await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_tools_are_tabs_framing_only_their_own_origin() {
    let mut settings = Settings::default()
        .for_listen("127.0.0.1:7007".parse().unwrap())
        .unwrap();
    settings.ui.tools = vec![
        Tool::new(
            "Tech docs",
            "backstage.io/techdocs-ref",
            "https://docs.example/{namespace}/{kind}/{name}?ref={value}",
            Vec::new(),
        )
        .unwrap()
        .embedded()
        .unwrap(),
        Tool::new(
            "On call",
            "pagerduty.com/service-id",
            "https://acme.pagerduty.example/services/{value}",
            Vec::new(),
        )
        .unwrap(),
    ];
    let running = common::start_with(settings).await;
    let body = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "documented", "annotations": {
            "backstage.io/techdocs-ref": "dir:.",
            "pagerduty.com/service-id": "P123",
        }},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
    });
    running
        .store
        .apply_batch(Batch::of_bodies(
            [body],
            "url:https://git.example.com/docs/catalog-info.yaml",
        ))
        .await
        .unwrap();
    let site = running.base.replace("/api/catalog", "");
    let get = |path: &str| running.http.get(format!("{site}{path}")).send();

    // The entity page: an Overview tab and the tool's tab; the other tool stays a link.
    let page = get("/catalog/default/component/documented")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "<a href=\"/catalog/default/component/documented/tools/tech-docs\" \
             data-tool=\"Tech docs\">Tech docs</a>"
        ),
        "{page}"
    );
    assert!(page.contains("href=\"https://acme.pagerduty.example/services/P123\""));
    let tab = get("/catalog/default/component/documented/tools/tech-docs")
        .await
        .unwrap();
    assert_eq!(tab.status(), StatusCode::OK);
    let policy = tab.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.ends_with("; frame-src https://docs.example"),
        "{policy}"
    );
    let tab = tab.text().await.unwrap();
    assert!(
        tab.contains(
            "<iframe class=\"tool-frame\" \
             src=\"https://docs.example/default/component/documented?ref=dir%3A.\""
        ),
        "{tab}"
    );
    assert!(tab.contains("aria-current=\"page\">Tech docs</a>"), "{tab}");
    // Other pages frame nothing.
    let plain = get("/catalog/default/component/documented").await.unwrap();
    assert!(
        !plain.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-src")
    );
    // No such tab; a link tool is no tab; an entity without the annotation has no tab.
    for path in [
        "/catalog/default/component/documented/tools/grafana",
        "/catalog/default/component/documented/tools/on-call",
        "/catalog/default/component/artist-lookup/tools/tech-docs",
    ] {
        let missing = get(path).await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(missing.text().await.unwrap().contains("no tab named"));
    }
    // And entities without embedded tools show no tab row.
    let plain = get("/catalog/default/component/artist-lookup")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!plain.contains("class=\"tabs\""));
}
