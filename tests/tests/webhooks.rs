//! A push webhook, end to end in one process: the gateway, the harvester, the processor and
//! catalog-store (SQLite, served over gRPC) on the in-process bus, and a real git repository.
//! A GitHub push signed with the configured secret makes the pushed change visible through
//! the REST API; a forged one is refused and changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cadastre_bus::Bus;
use cadastre_bus::memory::InProcessBus;
use cadastre_catalog_store::CatalogStore;
use cadastre_gateway::webhooks::WebhookSecrets;
use cadastre_gateway::{Gateway, Settings};
use cadastre_harvester::Harvester;
use cadastre_model::Validator;
use cadastre_processor::Processor;
use cadastre_testkit::{component_yaml, git};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const SECRET: &str = "a shared webhook secret";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn description(http: &reqwest::Client, base: &str) -> Option<String> {
    let response = http
        .get(format!(
            "{base}/api/catalog/entities/by-name/component/default/payments"
        ))
        .send()
        .await
        .unwrap();
    if response.status() != reqwest::StatusCode::OK {
        return None;
    }
    let entity: Value = response.json().await.unwrap();
    entity["metadata"]["description"]
        .as_str()
        .map(str::to_owned)
}

async fn wait_for_description(http: &reqwest::Client, base: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while description(http, base).await.as_deref() != Some(expected) {
        assert!(Instant::now() < deadline, "{expected:?} never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A repository `payments` under `scratch` whose first commit describes it as "first".
fn payments_repository(scratch: &std::path::Path) -> std::path::PathBuf {
    let repo = scratch.join("payments");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    commit_description(&repo, "first");
    repo
}

fn commit_description(repo: &std::path::Path, text: &str) -> String {
    let yaml = component_yaml("payments", "team-pay").replace(
        "metadata:\n  name: payments\n",
        &format!("metadata:\n  name: payments\n  description: {text}\n"),
    );
    std::fs::write(repo.join("catalog-info.yaml"), yaml).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", text]);
    git(repo, &["rev-parse", "HEAD"])
}

/// Harvester, processor and catalog-store (SQLite, served over gRPC) on the in-process bus,
/// and a gateway with the webhook secret on a free port: its base URL, the store, and the
/// sender that stops them all.
async fn start(
    scratch: &std::path::Path,
) -> (String, CatalogStore, tokio::sync::watch::Sender<bool>) {
    let store = CatalogStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        scratch.join("catalog.db").display()
    ))
    .await
    .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let harvester = Arc::new(
        Harvester::new(cadastre_harvester::Settings {
            cache_dir: scratch.join("cache"),
            allow_local_repositories: true,
            ..cadastre_harvester::Settings::default()
        })
        .unwrap(),
    );
    let processor = Arc::new(Processor::new(
        Validator::default(),
        cadastre_processor::Settings::default(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(cadastre_harvester::service::run(
        Arc::clone(&bus),
        harvester,
        until_stopped(),
    ));
    tokio::spawn(cadastre_processor::service::run(
        Arc::clone(&bus),
        processor,
        until_stopped(),
    ));
    tokio::spawn(cadastre_catalog_store::bus::apply_batches(
        Arc::clone(&bus),
        store.clone(),
        until_stopped(),
    ));
    let store_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_url = format!("http://{}", store_listener.local_addr().unwrap());
    tokio::spawn(cadastre_catalog_store::server::run(
        store.clone(),
        store_listener,
        until_stopped(),
        Duration::from_secs(1),
    ));
    let settings = Settings {
        webhooks: WebhookSecrets {
            github: Some(SECRET.into()),
            gitlab: None,
        },
        location_types: vec!["url".into(), "git".into(), "file".into()],
        ..Settings::default()
    }
    .for_listen("127.0.0.1:7007".parse().unwrap())
    .unwrap();
    let gateway = Gateway::new(
        cadastre_proto::transport::remote(
            tonic::transport::Channel::from_shared(store_url)
                .unwrap()
                .connect_lazy(),
        ),
        Arc::clone(&bus),
        settings,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(cadastre_gateway::serve(
        gateway.router(),
        listener,
        until_stopped(),
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    (base, store, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_is_harvested_and_a_forged_one_changes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = payments_repository(scratch.path());

    let (base, _store, stop) = start(scratch.path()).await;
    let http = reqwest::Client::new();

    // Register the repository through the API; its entity arrives.
    let repository_url = format!("file://{}", repo.display());
    let registered = http
        .post(format!("{base}/api/catalog/locations"))
        .json(&json!({"type": "git", "target": format!("{repository_url}#ref=main")}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), reqwest::StatusCode::CREATED);
    wait_for_description(&http, &base, "first").await;

    // A signed push of a new commit: the change is visible through the API.
    let second = commit_description(&repo, "second");
    let push = |delivery: &str, commit: &str| {
        serde_json::to_vec(&json!({
            "ref": "refs/heads/main",
            "after": commit,
            "repository": {"clone_url": repository_url, "html_url": repository_url, "default_branch": "main"},
            "_delivery": delivery,
        }))
        .unwrap()
    };
    let send = |body: Vec<u8>, signature: String, delivery: &str| {
        http.post(format!("{base}/api/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
    };
    let body = push("d-1", &second);
    let accepted = send(body.clone(), sign(&body), "d-1").await.unwrap();
    assert_eq!(accepted.status(), reqwest::StatusCode::ACCEPTED);
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!(
        answer["locations"],
        json!([format!("git:{repository_url}#ref=main")])
    );
    wait_for_description(&http, &base, "second").await;

    // A forged push (signed with another secret) is refused; the next commit stays unread.
    let third = commit_description(&repo, "third");
    let body = push("d-2", &third);
    let mut forged_mac = Hmac::<sha2::Sha256>::new_from_slice(b"not the secret").unwrap();
    forged_mac.update(&body);
    let forged = format!("sha256={}", hex::encode(forged_mac.finalize().into_bytes()));
    let refused = send(body.clone(), forged, "d-2").await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["name"], "AuthenticationError");
    let unsigned = http
        .post(format!("{base}/api/webhooks/github"))
        .header("x-github-event", "push")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), reqwest::StatusCode::UNAUTHORIZED);
    // A replay of the first delivery is ignored too.
    let first_body = push("d-1", &second);
    let replay = send(first_body.clone(), sign(&first_body), "d-1")
        .await
        .unwrap();
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["status"], "ignored");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(description(&http, &base).await.as_deref(), Some("second"));

    // A signed push without a delivery id is still harvested (nothing to recognise replays by).
    let body = push("", &third);
    let accepted = http
        .post(format!("{base}/api/webhooks/github"))
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sign(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), reqwest::StatusCode::ACCEPTED);
    wait_for_description(&http, &base, "third").await;
    let _ = stop.send(true);
}

/// A repository the catalog reaches only through a `Location` entity (a root file registered,
/// its Location pointing at the repository): a push to it is harvested too, and its
/// entities keep the registered root as their origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_repository_under_a_location_tree_is_harvested() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = payments_repository(scratch.path());
    let repository_url = format!("file://{}", repo.display());
    let root = scratch.path().join("org.yaml");
    std::fs::write(
        &root,
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: org\nspec:\n  type: git\n  targets:\n    - {repository_url}#ref=main\n"
        ),
    )
    .unwrap();
    let (base, store, stop) = start(scratch.path()).await;
    let http = reqwest::Client::new();
    let registered = http
        .post(format!("{base}/api/catalog/locations"))
        .json(&json!({"type": "file", "target": root.display().to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), reqwest::StatusCode::CREATED);
    wait_for_description(&http, &base, "first").await;

    let second = commit_description(&repo, "second");
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "after": second,
        "repository": {"clone_url": repository_url, "html_url": repository_url, "default_branch": "main"},
    }))
    .unwrap();
    let accepted = http
        .post(format!("{base}/api/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "tree-1")
        .header("x-hub-signature-256", sign(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), reqwest::StatusCode::ACCEPTED);
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!(
        answer["locations"],
        json!([format!("git:{repository_url}#ref=main")])
    );
    wait_for_description(&http, &base, "second").await;
    let payments = store
        .entity_by_ref("component:default/payments")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        payments.origin_location.as_deref(),
        Some(format!("file:{}", root.display()).as_str()),
        "the entity still belongs to the registered root"
    );
    assert_eq!(payments.parent_ref.as_deref(), Some("location:default/org"));
    let _ = stop.send(true);
}
