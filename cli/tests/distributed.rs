//! The whole system as separate processes, on the real NATS (JetStream), PostgreSQL and
//! OpenSearch that `scripts/test` starts: one `cadastre store` (PostgreSQL, applying batches
//! from the bus), one harvester (reading a local git repository), two processors, two search
//! replicas (one OpenSearch index, both indexing) and one gateway (open on loopback, with a
//! GitHub webhook secret). A git location registered through the REST API arrives in the
//! catalog and in search; a signed push after a commit brings the change; then a large commit
//! is pushed and one processor and one search replica are killed (SIGKILL) while it is being
//! ingested: every entity still arrives exactly once, applied once, and search counts them all.
//!
//! A second test starts two search replicas at the same moment, as a Deployment does, and
//! checks they share one serving index. (The first starts its replicas one after the other.)

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cadastre_proto::v1 as pb;
use cadastre_proto::v1::search_service_client::SearchServiceClient;
use cadastre_testkit::{component_yaml, git};
use common::{Service, free_port, log_tails, start, wait_for_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "the distributed test's webhook secret";
/// Components in the large commit.
const BULK: usize = 1_500;
/// Padding in each component of the large commit: a harvest part holds at most 64 KiB, so a
/// part holds about 15 of them and the commit spans about 100 parts. With 256 small documents
/// per part (6 parts) the pipeline took the whole commit in about 130 ms, and a processor
/// killed after its first part had already acknowledged everything it held.
const BULK_PADDING: usize = 4_000;
/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(120);

/// `X-Hub-Signature-256` for `body`.
fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit as _, Mac as _};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

// ---------------------------------------------------------------------------------------------
// The processes.

/// Starts `cadastre --config CONFIG gateway` with the webhook secret in its environment (as
/// a deployment passes it: never in the file).
fn start_gateway(config: &Path, log: &Path) -> Service {
    let log = std::fs::File::create(log).unwrap();
    Service(
        Command::new(env!("CARGO_BIN_EXE_cadastre"))
            .arg("--config")
            .arg(config)
            .arg("gateway")
            .env_remove("CADASTRE_BUS_NATS_URL")
            .env_remove("CADASTRE_CONFIG")
            .env("RUST_LOG", "info,async_nats=warn")
            .env(cadastre::config::GITHUB_WEBHOOK_SECRET_ENV, SECRET)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cadastre gateway"),
    )
}

/// Waits (at most [`WAIT`]) until `check` answers `Ok`; its `Err` says where things stand,
/// for the failure message.
async fn eventually<T, F, Fut>(what: &str, logs: &Path, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) => assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?} ({state}):\n{}",
                log_tails(logs)
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The REST API of the gateway.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path_and_query: &str) -> Result<(StatusCode, Value), String> {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .map_err(|error| format!("GET {path_and_query}: {error}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("GET {path_and_query}: {error}"))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn get_ok(&self, path_and_query: &str) -> Result<Value, String> {
        match self.get(path_and_query).await? {
            (StatusCode::OK, body) => Ok(body),
            (status, body) => Err(format!("GET {path_and_query}: {status} {body}")),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
        (status, body)
    }

    /// A component's description, through `by-name` (`Err` while it is not there).
    async fn description(&self, name: &str) -> Result<String, String> {
        let entity = self
            .get_ok(&format!(
                "/api/catalog/entities/by-name/component/default/{name}"
            ))
            .await?;
        Ok(entity["metadata"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// `/api/search/query`, one page.
    async fn search(&self, query: &str) -> Result<Value, String> {
        self.get_ok(&format!("/api/search/query?{query}")).await
    }

    /// The entity refs a search term finds (first page).
    async fn found(&self, term: &str) -> Result<Vec<String>, String> {
        let page = self.search(&format!("term={term}")).await?;
        Ok(page["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|hit| hit["document"]["entityRef"].as_str().map(str::to_owned))
            .collect())
    }

    /// How many entities a catalog filter matches (`totalItems`).
    async fn count(&self, filter: &str) -> Result<u64, String> {
        let page = self
            .get_ok(&format!(
                "/api/catalog/entities/by-query?filter={filter}&limit=1"
            ))
            .await?;
        page["totalItems"]
            .as_u64()
            .ok_or_else(|| format!("no totalItems in {page}"))
    }

    /// Sends a GitHub push of `commit` on `main` of the repository at `repository_url`,
    /// signed; the gateway's answer.
    async fn push(&self, repository_url: &str, commit: &str) -> (StatusCode, Value) {
        let body = serde_json::to_vec(&json!({
            "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000",
            "after": commit,
            "repository": {
                "name": "payments",
                "full_name": "acme/payments",
                "clone_url": repository_url,
                "html_url": repository_url,
                "default_branch": "main",
            },
            "head_commit": {"id": commit},
        }))
        .unwrap();
        let response = self
            .http
            .post(format!("{}/api/webhooks/github", self.base))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header(
                "x-github-delivery",
                uuid::Uuid::new_v4().hyphenated().to_string(),
            )
            .header("x-hub-signature-256", sign(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
        (status, body)
    }
}

fn component(name: &str, description: &str) -> String {
    component_yaml(name, "team-pay").replace(
        &format!("metadata:\n  name: {name}\n"),
        &format!("metadata:\n  name: {name}\n  description: {description}\n"),
    )
}

/// The lines of a log without terminal colours.
fn log_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut plain = String::with_capacity(line.len());
            let mut rest = line;
            while let Some(escape) = rest.find('\u{1b}') {
                plain.push_str(&rest[..escape]);
                rest = &rest[escape..];
                rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
            }
            plain.push_str(rest);
            plain
        })
        .collect()
}

/// The harvest parts processor `n` logged as processed.
fn processed(logs: &Path, n: usize) -> Vec<String> {
    log_lines(&logs.join(format!("processor-{n}.log")))
        .into_iter()
        .filter(|line| line.contains("cadastre_processor::service: processed"))
        .collect()
}

/// The delivery attempt a handler's log line names (1 if none).
fn attempt(line: &str) -> u32 {
    line.split_once(" attempt=")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(1)
}

fn bulk_name(index: usize) -> String {
    format!("bulk-{index:04}")
}

fn commit_all(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// Waits until the search replica on `port` answers (it binds its port before it has
/// connected to OpenSearch).
async fn search_ready(port: u16, logs: &Path) {
    wait_for_port(port, logs).await;
    eventually("search answering", logs, || async {
        let mut client = SearchServiceClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|error| error.to_string())?;
        client
            .get_index_status(pb::GetIndexStatusRequest {})
            .await
            .map_err(|status| status.to_string())
    })
    .await;
}

/// The physical indexes behind the serving alias of `prefix` on OpenSearch.
async fn serving_indexes(http: &reqwest::Client, opensearch: &str, prefix: &str) -> Vec<String> {
    let aliased: Value = serde_json::from_slice(
        &http
            .get(format!("{opensearch}/_alias/{prefix}-entities"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(aliased.get("error").is_none(), "{aliased}");
    aliased
        .as_object()
        .into_iter()
        .flatten()
        .map(|(index, _)| index.clone())
        .collect()
}

/// Best effort: the test's indexes on the shared OpenSearch node go with it.
async fn delete_indexes(http: &reqwest::Client, opensearch: &str, prefix: &str) {
    let _ = http
        .delete(format!(
            "{opensearch}/{prefix}-*?expand_wildcards=all&ignore_unavailable=true"
        ))
        .send()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_its_own_process_with_replicas_killed_mid_ingest() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The signer agrees with the gateway's verifier.
    assert!(cadastre_gateway::webhooks::github_signature_valid(
        SECRET,
        b"{}",
        &sign(b"{}")
    ));

    let scratch = tempfile::tempdir().unwrap();
    let logs = scratch.path();
    let nats = cadastre_testkit::nats_url();
    let opensearch = cadastre_testkit::opensearch_url();
    let database_url = cadastre_testkit::fresh_postgres_database("distributed").await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let namespace = format!("d{unique}");
    let index_prefix = format!("dist-{unique}");
    let (store_port, search_a_port, search_b_port, gateway_port) =
        (free_port(), free_port(), free_port(), free_port());
    let store_url = format!("http://127.0.0.1:{store_port}");
    let config = logs.join("cadastre.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
database_url = "{database_url}"
listen = "127.0.0.1:{store_port}"

[bus]
nats_url = "{nats}"
namespace = "{namespace}"

[harvester]
allow_local_repositories = true
refresh_interval_secs = 0
cache_dir = "{cache}"
store_url = "{store_url}"

[search]
store_url = "{store_url}"
opensearch_url = "{opensearch}"
index_prefix = "{index_prefix}"
indexing = true

[gateway]
listen = "127.0.0.1:{gateway_port}"
store_url = "{store_url}"
# The replica that survives: the other one is killed mid-ingest.
search_url = "http://127.0.0.1:{search_b_port}"
location_types = ["url", "git"]
"#,
            cache = logs.join("cache").display(),
        ),
    )
    .unwrap();

    // The store first: it migrates the schema, then serves.
    let _store = start(&config, &["store"], &logs.join("store.log"));
    wait_for_port(store_port, logs).await;
    // The search replicas one after the other: started together, both create a serving index
    // (see `two_search_replicas_started_together_share_one_serving_index`).
    let search_a = start(
        &config,
        &["search", "--listen", &format!("127.0.0.1:{search_a_port}")],
        &logs.join("search-a.log"),
    );
    search_ready(search_a_port, logs).await;
    let _search_b = start(
        &config,
        &["search", "--listen", &format!("127.0.0.1:{search_b_port}")],
        &logs.join("search-b.log"),
    );
    let _harvester = start(&config, &["harvester"], &logs.join("harvester.log"));
    let mut processors = [
        Some(start(
            &config,
            &["processor"],
            &logs.join("processor-1.log"),
        )),
        Some(start(
            &config,
            &["processor"],
            &logs.join("processor-2.log"),
        )),
    ];
    let _gateway = start_gateway(&config, &logs.join("gateway.log"));
    search_ready(search_b_port, logs).await;
    wait_for_port(gateway_port, logs).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{gateway_port}"),
    };
    // Both replicas serve (and write) one index.
    let serving = serving_indexes(&api.http, &opensearch, &index_prefix).await;
    assert_eq!(serving.len(), 1, "the alias names {serving:?}");

    // A git repository with one component, registered through the REST API.
    let repo = scratch.path().join("payments");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join("catalog-info.yaml"),
        component("payments", "quokka"),
    )
    .unwrap();
    commit_all(&repo, "first");
    let repository_url = format!("file://{}", repo.display());
    let target = format!("{repository_url}#ref=main");
    let (status, registered) = api
        .post(
            "/api/catalog/locations",
            &json!({"type": "git", "target": target}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{registered}\n{}",
        log_tails(logs)
    );
    eventually("payments through the REST API", logs, || async {
        match api.description("payments").await? {
            d if d == "quokka" => Ok(()),
            other => Err(format!("description {other:?}")),
        }
    })
    .await;
    eventually("payments through search", logs, || async {
        let found = api.found("quokka").await?;
        if found == ["component:default/payments"] {
            Ok(())
        } else {
            Err(format!("found {found:?}"))
        }
    })
    .await;

    // A commit (a changed description, a new component), then a signed push: both arrive.
    std::fs::write(
        repo.join("catalog-info.yaml"),
        component("payments", "wombat"),
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("billing")).unwrap();
    std::fs::write(
        repo.join("billing/catalog-info.yaml"),
        component("billing", "platypus"),
    )
    .unwrap();
    let second = commit_all(&repo, "second");
    let (status, answer) = api.push(&repository_url, &second).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "accepted", "{answer}");
    assert_eq!(
        answer["locations"],
        json!([format!("git:{target}")]),
        "the push names the registered location"
    );
    eventually("the pushed change through the REST API", logs, || async {
        let payments = api.description("payments").await?;
        let billing = api.description("billing").await?;
        if (payments.as_str(), billing.as_str()) == ("wombat", "platypus") {
            Ok(())
        } else {
            Err(format!("payments {payments:?}, billing {billing:?}"))
        }
    })
    .await;
    eventually("the pushed change through search", logs, || async {
        let changed = api.found("wombat").await?;
        let added = api.found("platypus").await?;
        let old = api.found("quokka").await?;
        if changed == ["component:default/payments"]
            && added == ["component:default/billing"]
            && old.is_empty()
        {
            Ok(())
        } else {
            Err(format!(
                "wombat {changed:?}, platypus {added:?}, quokka {old:?}"
            ))
        }
    })
    .await;

    // A large commit, pushed; one processor and one search replica die while it is ingested.
    for index in 0..BULK {
        let dir = repo.join(format!("bulk/{index:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        let padding = "z".repeat(BULK_PADDING);
        let yaml = component(&bulk_name(index), &format!("narwhal number {index}")).replace(
            "metadata:\n",
            &format!(
                "metadata:\n  tags:\n    - bulkload\n  annotations:\n    example.com/padding: {padding}\n"
            ),
        );
        std::fs::write(dir.join("catalog-info.yaml"), yaml).unwrap();
    }
    let third = commit_all(&repo, "bulk");
    let bulk_filter = "kind=component,metadata.tags=bulkload";
    let before = [processed(logs, 1).len(), processed(logs, 2).len()];
    let (status, answer) = api.push(&repository_url, &third).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["locations"], json!([format!("git:{target}")]));
    // A processor dies while it works through the parts of the large commit (each
    // processor fetches several ahead): what it holds unacknowledged goes to the other.
    let (victim, killed_after) =
        eventually("a processor working on the large commit", logs, || {
            let before = &before;
            async move {
                let now = [processed(logs, 1).len(), processed(logs, 2).len()];
                match (0..2).find(|&n| now[n] > before[n]) {
                    Some(n) => Ok((n, now[n] - before[n])),
                    None => Err("no part processed yet".into()),
                }
            }
        })
        .await;
    processors[victim].take().unwrap().crash();
    let survivor = 1 - victim;
    let survivor_at_kill = processed(logs, survivor + 1).len();
    // A search replica dies while the store's change feed brings the commit in.
    eventually("the large commit starting to arrive", logs, || async {
        match api.count(bulk_filter).await? {
            0 => Err("none stored yet".into()),
            _ => Ok(()),
        }
    })
    .await;
    search_a.crash();
    // The store may take the whole commit in one transaction (it groups waiting batches);
    // what must still be under way is indexing it.
    let searchable_at_kill = api
        .search("term=narwhal&filters[tags]=bulkload&pageLimit=1")
        .await
        .map(|page| page["numberOfResults"].as_u64().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        (searchable_at_kill as usize) < BULK,
        "the large commit was searchable ({searchable_at_kill} of {BULK}) before search was killed: make it larger"
    );

    eventually("every component of the large commit", logs, || async {
        let stored = api.count(bulk_filter).await?;
        if stored as usize == BULK {
            Ok(())
        } else {
            Err(format!("{stored} of {BULK} stored"))
        }
    })
    .await;
    // The kill really was mid-work: the survivor processed parts delivered again.
    let taken_over: Vec<String> = processed(logs, survivor + 1)
        .into_iter()
        .skip(survivor_at_kill)
        .filter(|line| attempt(line) > 1)
        .collect();
    assert!(
        !taken_over.is_empty(),
        "processor-{} was killed after {killed_after} part(s) but held nothing more: \
         processor-{} took nothing over:\n{}",
        victim + 1,
        survivor + 1,
        log_tails(logs)
    );

    // Through the REST API: each exactly once.
    let listed = api
        .get_ok(&format!(
            "/api/catalog/entities?filter={bulk_filter}&fields=kind,metadata.namespace,metadata.name"
        ))
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|entity| entity["metadata"]["name"].as_str().unwrap())
        .collect();
    let unique_names: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), BULK, "entities listed");
    assert_eq!(unique_names.len(), BULK, "an entity listed twice");
    let expected: Vec<String> = (0..BULK).map(bulk_name).collect();
    assert!(
        unique_names
            .iter()
            .copied()
            .eq(expected.iter().map(String::as_str)),
        "not the components committed"
    );

    // Applied once: one change each, `created`, at generation 1 (nothing applied twice).
    let mut histories = tokio::task::JoinSet::new();
    let api = std::sync::Arc::new(api);
    for chunk in expected.chunks(BULK.div_ceil(8)) {
        let api = std::sync::Arc::clone(&api);
        let chunk = chunk.to_vec();
        histories.spawn(async move {
            let mut wrong = Vec::new();
            for name in chunk {
                let history = api
                    .get_ok(&format!(
                        "/api/cadastre/v1/entities/component/default/{name}/history"
                    ))
                    .await
                    .unwrap();
                let items = history["items"].as_array().cloned().unwrap_or_default();
                let once = items.len() == 1
                    && items[0]["change"] == "created"
                    && items[0]["generation"] == 1;
                if !once {
                    wrong.push(format!("{name}: {}", Value::Array(items)));
                }
            }
            wrong
        });
    }
    let mut wrong = Vec::new();
    while let Some(result) = histories.join_next().await {
        wrong.extend(result.unwrap());
    }
    assert!(
        wrong.is_empty(),
        "{} components not applied exactly once, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );

    // Through search, on the surviving replica: the exact total, each once.
    eventually("every component in search", logs, || async {
        let page = api
            .search("term=narwhal&filters[tags]=bulkload&pageLimit=100")
            .await?;
        match page["numberOfResults"].as_u64() {
            Some(total) if total as usize == BULK => Ok(()),
            total => Err(format!("numberOfResults {total:?} of {BULK}")),
        }
    })
    .await;
    let mut found = BTreeSet::new();
    let mut query = "term=narwhal&filters[tags]=bulkload&pageLimit=100".to_owned();
    for _ in 0..=BULK / 100 + 1 {
        let page = api.search(&query).await.unwrap();
        for hit in page["results"].as_array().unwrap() {
            let entity_ref = hit["document"]["entityRef"].as_str().unwrap().to_owned();
            assert!(found.insert(entity_ref.clone()), "{entity_ref} found twice");
        }
        match page["nextPageCursor"].as_str() {
            Some(cursor) => {
                let cursor: String =
                    url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
                query = format!(
                    "term=narwhal&filters[tags]=bulkload&pageLimit=100&pageCursor={cursor}"
                );
            }
            None => break,
        }
    }
    let expected_refs: BTreeSet<String> = expected
        .iter()
        .map(|name| format!("component:default/{name}"))
        .collect();
    assert_eq!(
        found, expected_refs,
        "search pages hold every component once"
    );
    // The earlier components are still there, once each.
    assert_eq!(
        api.count("kind=component").await.unwrap() as usize,
        BULK + 2
    );

    delete_indexes(&api.http, &opensearch, &index_prefix).await;
}

/// Two search replicas of one installation, started at the same time (as a Deployment's
/// replicas are), must end up serving the same index: one physical index behind the alias.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_search_replicas_started_together_share_one_serving_index() {
    let scratch = tempfile::tempdir().unwrap();
    let logs = scratch.path();
    let opensearch = cadastre_testkit::opensearch_url();
    let index_prefix = format!("dist-{}", uuid::Uuid::new_v4().simple());
    let (store_port, search_a_port, search_b_port) = (free_port(), free_port(), free_port());
    let config = logs.join("cadastre.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndatabase_url = \"sqlite://{}?mode=rwc\"\nlisten = \"127.0.0.1:{store_port}\"\n\n\
             [search]\nstore_url = \"http://127.0.0.1:{store_port}\"\nopensearch_url = \"{opensearch}\"\n\
             index_prefix = \"{index_prefix}\"\nindexing = true\n",
            logs.join("catalog.db").display()
        ),
    )
    .unwrap();
    let _store = start(&config, &["store"], &logs.join("store.log"));
    wait_for_port(store_port, logs).await;
    let _search_a = start(
        &config,
        &["search", "--listen", &format!("127.0.0.1:{search_a_port}")],
        &logs.join("search-a.log"),
    );
    let _search_b = start(
        &config,
        &["search", "--listen", &format!("127.0.0.1:{search_b_port}")],
        &logs.join("search-b.log"),
    );
    search_ready(search_a_port, logs).await;
    search_ready(search_b_port, logs).await;
    let http = reqwest::Client::new();
    let serving = serving_indexes(&http, &opensearch, &index_prefix).await;
    delete_indexes(&http, &opensearch, &index_prefix).await;
    assert_eq!(
        serving.len(),
        1,
        "two search replicas started together each created a serving index behind the alias \
         {index_prefix}-entities ({serving:?}): each indexes into its own, and every search \
         counts each entity once per index:\n{}",
        log_tails(logs)
    );
}
