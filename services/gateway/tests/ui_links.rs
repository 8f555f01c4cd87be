//! No broken links in the web UI over the shared examples: every page reachable from the
//! catalog (entity pages first, then everything else they link to, up to a bound) answers,
//! and so does every link on it that stays on this site.

mod common;

use std::collections::{BTreeSet, VecDeque};

/// Pages fetched at most (facet and sort links multiply; every entity page comes first).
const MAX_PAGES: usize = 400;

/// The site-local links of a page (`href="/…"`), with HTML's `&amp;` undone.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with('/') && !href.starts_with("//"))
        .map(|href| href.replace("&amp;", "&"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_link_in_the_pages_of_the_examples_answers() {
    let running = common::start_with_search().await;
    let site = running.base.trim_end_matches("/api/catalog").to_owned();
    // The catalog lists every example entity across its pages.
    let mut queue: VecDeque<String> = VecDeque::from(["/".to_owned()]);
    let mut seen: BTreeSet<String> = queue.iter().cloned().collect();
    let mut broken = Vec::new();
    let mut fetched = 0;
    let mut entity_pages = 0;
    while let Some(path) = queue.pop_front() {
        if fetched == MAX_PAGES {
            break;
        }
        fetched += 1;
        let response = running
            .http
            .get(format!("{site}{path}"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        if !status.is_success() {
            broken.push(format!("{path}: {status}"));
            continue;
        }
        let is_html = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        if !is_html {
            continue;
        }
        if path.starts_with("/catalog/") {
            entity_pages += 1;
        }
        let html = response.text().await.unwrap();
        let mut found = links(&html);
        // Entity pages first: they are what the examples are about.
        found.sort_by_key(|link| !link.starts_with("/catalog/"));
        for link in found {
            if seen.insert(link.clone()) {
                if link.starts_with("/catalog/") {
                    queue.push_front(link);
                } else {
                    queue.push_back(link);
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
    assert!(
        entity_pages > 60,
        "only {entity_pages} entity pages reached in {fetched} pages"
    );
}
