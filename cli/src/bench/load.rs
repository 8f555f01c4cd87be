//! The benchmark's HTTP side: the calls it makes to follow the system (counts, an entity's
//! description, search), the signed push webhook, and the load phase (concurrent clients on
//! one route for a fixed time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The gateway's REST API.
pub struct Api {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            base: base.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Registers a location through the REST API (201, or 409 when it already is).
    pub async fn register(&self, location_type: &str, target: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/api/catalog/locations", self.base))
            .json(&json!({"type": location_type, "target": target}))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() && status != reqwest::StatusCode::CONFLICT {
            bail!(
                "registering {target}: {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The entities the store holds.
    pub async fn count(&self) -> anyhow::Result<u64> {
        let page = self.get("/api/catalog/entities/by-query?limit=1").await?;
        page["totalItems"]
            .as_u64()
            .context("no totalItems in the answer")
    }

    /// The entities the search index holds.
    pub async fn search_total(&self) -> anyhow::Result<u64> {
        let page = self.get("/api/search/query?pageLimit=1").await?;
        page["numberOfResults"]
            .as_u64()
            .context("no numberOfResults in the answer")
    }

    /// Read indexes the store still builds after a first import.
    pub async fn indexes_pending(&self) -> anyhow::Result<u64> {
        let status = self.get("/api/cadastre/v1/status").await?;
        status["indexesPending"]
            .as_u64()
            .context("no indexesPending in the answer")
    }

    /// An entity's description ("" while it has none or is not there).
    pub async fn description(&self, entity_ref: &str) -> anyhow::Result<String> {
        let (kind, rest) = entity_ref.split_once(':').context("a kind in the ref")?;
        let (namespace, name) = rest.split_once('/').context("a namespace in the ref")?;
        let entity = self
            .get(&format!(
                "/api/catalog/entities/by-name/{kind}/{namespace}/{name}"
            ))
            .await
            .unwrap_or(Value::Null);
        Ok(entity["metadata"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Whether searching for `term` finds `entity_ref` on the first page.
    pub async fn search_finds(&self, term: &str, entity_ref: &str) -> anyhow::Result<bool> {
        let page = self
            .get(&format!("/api/search/query?term={term}&pageLimit=10"))
            .await?;
        Ok(page["results"].as_array().is_some_and(|results| {
            results
                .iter()
                .any(|hit| hit["document"]["entityRef"].as_str() == Some(entity_ref))
        }))
    }

    /// A GitHub push of `commit` on `main` of the repository at `repository_url`, signed
    /// with `secret`; fails unless the gateway accepts it.
    pub async fn push(
        &self,
        repository_url: &str,
        commit: &str,
        secret: &str,
    ) -> anyhow::Result<()> {
        use hmac::{KeyInit as _, Mac as _};
        let body = serde_json::to_vec(&json!({
            "ref": "refs/heads/main",
            "after": commit,
            "repository": {
                "clone_url": repository_url,
                "html_url": repository_url,
                "default_branch": "main",
            },
            "head_commit": {"id": commit},
        }))?;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let response = self
            .http
            .post(format!("{}/api/webhooks/github", self.base))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("bench-{commit}"))
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        if status != reqwest::StatusCode::ACCEPTED {
            bail!("the push webhook: {status} {answer}");
        }
        // Accepted but touching no location would only show as pushes that never arrive.
        let touched = serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|answer| answer["locations"].as_array().map(Vec::len))
            .unwrap_or(0);
        if touched == 0 {
            bail!("the push of {repository_url} touched no registered location: {answer}");
        }
        Ok(())
    }
}

/// One route under load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteFigures {
    pub route: String,
    pub requests: usize,
    pub errors: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The `q` quantile of `samples` (sorted here) in milliseconds; 0 when there are none.
pub fn percentile(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort();
    let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[index].as_secs_f64() * 1_000.0
}

/// Asks for `path(client, n)` from `clients` concurrent clients for `duration`, each client's
/// `n` counting from `first`.
///
/// Each client is one HTTP/1.1 connection that sends a request, reads the whole answer and
/// sends the next, as a browser tab or a service's client would. The clients are plain hyper
/// connections rather than `reqwest` (a shared pool, URL parsing and layers per request): this
/// process shares the cores with the one it measures, and with `reqwest` it spent about 30 µs
/// of CPU a by-name request where these connections spend 17 µs (the server: 78 µs when the
/// gateway's cache has the entity, about 150 µs when it does not).
async fn load(
    base: &str,
    route: &str,
    clients: usize,
    duration: Duration,
    first: usize,
    path: Arc<dyn Fn(usize, usize) -> String + Send + Sync>,
) -> RouteFigures {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let (base, path) = (base.to_owned(), Arc::clone(&path));
        tasks.push(tokio::spawn(async move {
            let (mut samples, mut errors, mut n) = (Vec::new(), 0, first);
            let mut connection: Option<Connection> = None;
            while Instant::now() < deadline {
                let path = path(client, n);
                n += 1;
                let asked = Instant::now();
                let answered = match connection.as_mut() {
                    Some(open) => open.get(&path).await,
                    None => match Connection::open(&base).await {
                        Ok(opened) => connection.insert(opened).get(&path).await,
                        Err(error) => Err(error),
                    },
                };
                match answered {
                    Ok(true) => samples.push(asked.elapsed()),
                    Ok(false) => errors += 1,
                    Err(_) => {
                        // A broken connection: the next request opens another.
                        connection = None;
                        errors += 1;
                    }
                }
            }
            (samples, errors)
        }));
    }
    let (mut samples, mut errors) = (Vec::new(), 0);
    for task in tasks {
        if let Ok((some, failed)) = task.await {
            samples.extend(some);
            errors += failed;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    RouteFigures {
        route: route.to_owned(),
        requests: samples.len(),
        errors,
        requests_per_second: samples.len() as f64 / elapsed,
        p50_ms: percentile(&mut samples, 0.50),
        p99_ms: percentile(&mut samples, 0.99),
    }
}

/// Where each client's measured requests start counting: past any warm-up (a client's 0.5 s
/// warm-up makes a few thousand requests at most).
const MEASURED_FROM: usize = 1 << 24;

/// How long one request of the load may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One client's HTTP/1.1 connection to the API.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    /// `host:port`, for the Host header.
    authority: String,
}

impl Connection {
    /// A connection to `base` (`http://host:port`).
    async fn open(base: &str) -> anyhow::Result<Connection> {
        let authority = base
            .strip_prefix("http://")
            .with_context(|| format!("{base} is not an http:// URL"))?
            .trim_end_matches('/')
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, driver) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(driver);
        Ok(Connection { sender, authority })
    }

    /// GETs `path`: whether the answer was a success, read whole; an error when the
    /// connection failed.
    async fn get(&mut self, path: &str) -> anyhow::Result<bool> {
        use http_body_util::BodyExt as _;
        let request = http::Request::get(path)
            .header(http::header::HOST, &self.authority)
            .body(http_body_util::Empty::new())?;
        let answered = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let ok = response.status().is_success();
            response.into_body().collect().await?;
            anyhow::Ok(ok)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, answered)
            .await
            .context("no answer in time")?
    }
}

type PathFn = Arc<dyn Fn(usize, usize) -> String + Send + Sync>;

/// `kind:namespace/name` as its three parts (a component, and the default namespace, where
/// one is missing).
fn ref_parts(entity_ref: &str) -> (String, String, String) {
    let (kind, rest) = entity_ref.split_once(':').unwrap_or(("component", ""));
    let (namespace, name) = rest.split_once('/').unwrap_or(("default", rest));
    (kind.to_owned(), namespace.to_owned(), name.to_owned())
}

/// The routes [`routes`] loads, in order, by the names the figures give them.
const ROUTE_NAMES: [&str; 7] = [
    "by-name",
    "filtered page",
    "facets",
    "search",
    "suggest",
    "UI catalog",
    "UI entity",
];

/// A route's name as `--routes` takes it ("filtered page" is `filtered-page`).
fn route_key(route: &str) -> String {
    route.to_lowercase().replace(' ', "-")
}

/// Loads each route in turn: by-name (entities spread over the whole catalog), a filtered
/// first page, facets, search and suggest (terms from entity names), and the web UI's catalog
/// page (components) and entity pages; only those named in `only` when it is not empty (in
/// lower case, dashes for spaces: `filtered-page`). Refuses a route whose every request
/// failed: a figure must be of answers.
pub async fn routes(
    base: &str,
    refs: Vec<String>,
    clients: usize,
    duration: Duration,
    only: &[String],
) -> anyhow::Result<Vec<RouteFigures>> {
    let keys: Vec<String> = ROUTE_NAMES.iter().map(|name| route_key(name)).collect();
    if let Some(unknown) = only.iter().find(|key| !keys.contains(key)) {
        bail!("no route {unknown}; the routes are {}", keys.join(", "));
    }
    let refs = Arc::new(refs);
    // Spread over the catalog with strides prime to its size.
    let pick = move |refs: &[String], client: usize, n: usize| -> String {
        refs[(client.wrapping_mul(7_919) + n.wrapping_mul(104_729)) % refs.len()].clone()
    };
    let by_name: PathFn = {
        let refs = Arc::clone(&refs);
        Arc::new(move |client, n| {
            let (kind, namespace, name) = ref_parts(&pick(&refs, client, n));
            format!("/api/catalog/entities/by-name/{kind}/{namespace}/{name}")
        })
    };
    let filtered: PathFn = Arc::new(|_, _| {
        "/api/catalog/entities/by-query?filter=kind=component,spec.type=service&limit=20".to_owned()
    });
    let facets: PathFn = Arc::new(|_, _| {
        "/api/catalog/entity-facets?facet=kind&facet=spec.type&facet=spec.lifecycle".to_owned()
    });
    // A word of an entity's name: what people type.
    let word = {
        let refs = Arc::clone(&refs);
        move |client: usize, n: usize| -> String {
            let entity_ref = pick(&refs, client, n);
            let name = entity_ref.rsplit('/').next().unwrap_or("service");
            name.split('-')
                .find(|part| part.len() >= 3 && !part.chars().all(|c| c.is_ascii_digit()))
                .unwrap_or("service")
                .to_owned()
        }
    };
    let search: PathFn = {
        let word = word.clone();
        Arc::new(move |client, n| format!("/api/search/query?term={}", word(client, n)))
    };
    let suggest: PathFn = Arc::new(move |client, n| {
        let prefix: String = word(client, n).chars().take(3).collect();
        format!("/api/search/suggest?prefix={prefix}")
    });
    // The web UI's two busiest pages, rendered on the server.
    let catalog_page: PathFn = Arc::new(|_, _| "/?filter=kind=component".to_owned());
    let entity_page: PathFn = {
        let refs = Arc::clone(&refs);
        Arc::new(move |client, n| {
            let (kind, namespace, name) = ref_parts(&pick(&refs, client, n));
            format!("/catalog/{namespace}/{kind}/{name}")
        })
    };
    let mut figures = Vec::new();
    let paths = [
        by_name,
        filtered,
        facets,
        search,
        suggest,
        catalog_page,
        entity_page,
    ];
    for (route, path) in ROUTE_NAMES.into_iter().zip(paths) {
        if !only.is_empty() && !only.contains(&route_key(route)) {
            continue;
        }
        // A short warm-up: connections opened, caches as a running system has them. The
        // measured requests go on from where no client's warm-up reached, so they do not ask
        // again for what the warm-up just put in the gateway's cache.
        load(
            base,
            route,
            clients,
            Duration::from_millis(500),
            0,
            Arc::clone(&path),
        )
        .await;
        let measured = load(base, route, clients, duration, MEASURED_FROM, path).await;
        if measured.requests == 0 {
            bail!("{route}: every request failed ({} errors)", measured.errors);
        }
        figures.push(measured);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_into_kind_namespace_and_name() {
        let parts = |r: &str| ref_parts(r);
        let owned = |k: &str, ns: &str, n: &str| (k.to_owned(), ns.to_owned(), n.to_owned());
        assert_eq!(
            parts("api:payments/charge"),
            owned("api", "payments", "charge")
        );
        assert_eq!(parts("group:team-a"), owned("group", "default", "team-a"));
    }

    #[test]
    fn percentiles_are_of_the_samples() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        samples.reverse();
        assert_eq!(percentile(&mut samples, 0.50), 50.0);
        assert_eq!(percentile(&mut samples, 0.99), 99.0);
        assert_eq!(percentile(&mut [Duration::from_millis(7)], 0.99), 7.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }
}
