//! Push webhooks from GitHub (`X-Hub-Signature-256`: HMAC-SHA256 of the body with a shared
//! secret) and GitLab (`X-Gitlab-Token`). A verified push to a branch that registered locations
//! read asks the harvester to read exactly those locations at the pushed commit; anything
//! else is acknowledged and ignored. A bad or missing signature is 401 and nothing is
//! published. A delivery this gateway handled before is ignored; across replicas the bus drops
//! repeated requests for the same location and commit.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cadastre_harvester::location::LocationSpec;
use cadastre_proto::v1 as pb;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use crate::Gateway;
use crate::error::ApiError;

/// Delivery ids remembered, most recent.
const REMEMBERED_DELIVERIES: usize = 10_000;

/// The shared secrets; a host without one is not accepted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebhookSecrets {
    pub github: Option<String>,
    pub gitlab: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("github", &self.github.is_some())
            .field("gitlab", &self.gitlab.is_some())
            .finish()
    }
}

/// Recent delivery ids, to ignore replays.
#[derive(Debug, Default)]
pub struct Deliveries(Mutex<(HashSet<String>, VecDeque<String>)>);

impl Deliveries {
    /// Whether `id` was handled before.
    fn seen(&self, id: &str) -> bool {
        self.0.lock().is_ok_and(|seen| seen.0.contains(id))
    }

    /// Remembers `id` as handled (after its harvests were asked for: a delivery that failed
    /// half-way is handled again when the host retries it).
    fn remember(&self, id: &str) {
        let Ok(mut seen) = self.0.lock() else {
            return;
        };
        let (set, order) = &mut *seen;
        if !set.insert(id.to_owned()) {
            return;
        }
        order.push_back(id.to_owned());
        if order.len() > REMEMBERED_DELIVERIES
            && let Some(oldest) = order.pop_front()
        {
            set.remove(&oldest);
        }
    }
}

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/github", post(github))
        .route("/gitlab", post(gitlab))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError {
        name: "AuthenticationError",
        message: message.to_owned(),
    }
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn github_signature_valid(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn github(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secret = gateway
        .webhook_secrets()
        .github
        .clone()
        .ok_or_else(|| ApiError::not_found("GitHub webhooks are not configured"))?;
    let signature = header(&headers, "x-hub-signature-256")
        .ok_or_else(|| unauthenticated("X-Hub-Signature-256 is missing"))?;
    if !github_signature_valid(&secret, &body, signature) {
        return Err(unauthenticated("invalid signature"));
    }
    let event = header(&headers, "x-github-event").unwrap_or_default();
    let delivery = header(&headers, "x-github-delivery").map(|id| format!("github/{id}"));
    if event != "push" {
        return Ok(ignored(&format!("event {event:?} is not a push")));
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::input(format!("the push payload is not JSON: {error}")))?;
    let repository = &payload["repository"];
    let push = Push {
        reference: payload["ref"].as_str().unwrap_or_default().to_owned(),
        commit: payload["after"].as_str().unwrap_or_default().to_owned(),
        repositories: ["clone_url", "html_url", "ssh_url", "git_url"]
            .iter()
            .filter_map(|key| repository[*key].as_str())
            .map(str::to_owned)
            .collect(),
        web_url: repository["html_url"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        default_branch: repository["default_branch"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    harvest_push(&gateway, delivery, &push).await
}

async fn gitlab(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = gateway
        .webhook_secrets()
        .gitlab
        .clone()
        .ok_or_else(|| ApiError::not_found("GitLab webhooks are not configured"))?;
    let given = header(&headers, "x-gitlab-token")
        .ok_or_else(|| unauthenticated("X-Gitlab-Token is missing"))?;
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return Err(unauthenticated("invalid token"));
    }
    let event = header(&headers, "x-gitlab-event").unwrap_or_default();
    let delivery = header(&headers, "x-gitlab-event-uuid").map(|id| format!("gitlab/{id}"));
    if event != "Push Hook" {
        return Ok(ignored(&format!("event {event:?} is not a push")));
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::input(format!("the push payload is not JSON: {error}")))?;
    let project = &payload["project"];
    let push = Push {
        reference: payload["ref"].as_str().unwrap_or_default().to_owned(),
        commit: payload["checkout_sha"]
            .as_str()
            .or(payload["after"].as_str())
            .unwrap_or_default()
            .to_owned(),
        repositories: ["git_http_url", "git_ssh_url", "web_url"]
            .iter()
            .filter_map(|key| project[*key].as_str())
            .map(str::to_owned)
            .collect(),
        web_url: project["web_url"].as_str().unwrap_or_default().to_owned(),
        default_branch: project["default_branch"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    harvest_push(&gateway, delivery, &push).await
}

fn ignored(reason: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "ignored", "reason": reason})),
    )
        .into_response()
}

/// What a push says, from either host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `refs/heads/<branch>`.
    pub reference: String,
    pub commit: String,
    /// The repository's URLs (clone, web, ssh).
    pub repositories: Vec<String>,
    pub web_url: String,
    pub default_branch: String,
}

/// `host/path` of a repository URL, lower case, without `.git` or a trailing slash;
/// `git@host:path` too.
pub fn repository_key(url: &str) -> Option<String> {
    let url = url.trim();
    let host_and_path = if let Some(rest) = url.split_once("://").map(|(_, rest)| rest) {
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        rest.to_owned()
    } else {
        // git@host:org/repo.git
        let (_, rest) = url.split_once('@')?;
        rest.replacen(':', "/", 1)
    };
    let key = host_and_path
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .to_lowercase();
    (!key.is_empty()).then_some(key)
}

impl Push {
    fn branch(&self) -> Option<&str> {
        self.reference.strip_prefix("refs/heads/")
    }

    /// Whether the location (`type:target`) reads what this push changed.
    pub fn touches(&self, location_key: &str) -> bool {
        let Some(branch) = self.branch() else {
            return false;
        };
        match LocationSpec::parse(location_key) {
            Ok(LocationSpec::Git {
                repository,
                reference,
                ..
            }) => {
                let same_ref = reference == branch
                    || reference == format!("refs/heads/{branch}")
                    || (reference == "HEAD" && branch == self.default_branch);
                same_ref
                    && repository_key(repository.as_str()).is_some_and(|key| {
                        self.repositories
                            .iter()
                            .filter_map(|url| repository_key(url))
                            .any(|pushed| pushed == key)
                    })
            }
            Ok(LocationSpec::Url { url }) => {
                let web = self.web_url.trim_end_matches('/').to_lowercase();
                let target = url.as_str().to_lowercase();
                !web.is_empty()
                    && ["blob", "raw", "-/blob", "-/raw", "tree", "-/tree"]
                        .iter()
                        .any(|view| target.starts_with(&format!("{web}/{view}/{branch}/")))
            }
            _ => false,
        }
    }
}

async fn harvest_push(
    gateway: &Gateway,
    delivery: Option<String>,
    push: &Push,
) -> Result<Response, ApiError> {
    // Without a delivery id there is nothing to recognise a replay by here; the bus still
    // drops repeats of the same location and commit within its window.
    let delivery = delivery.filter(|id| !id.ends_with('/'));
    if let Some(id) = &delivery
        && gateway.deliveries().seen(id)
    {
        return Ok(ignored("this delivery was handled before"));
    }
    let locations = gateway.locations().await?;
    let registered: HashSet<String> = locations
        .iter()
        .map(|l| format!("{}:{}", l.r#type, l.target))
        .collect();
    let mut touched: Vec<String> = registered
        .iter()
        .filter(|key| push.touches(key))
        .cloned()
        .collect();
    touched.sort();
    for key in &touched {
        gateway
            .publish_harvest(
                key,
                pb::HarvestTrigger::Webhook,
                &push.commit,
                &format!("webhook/{}/{key}", push.commit),
            )
            .await?;
    }
    // Locations a `Location` entity declares (a tree of them under one registered root) are
    // not registered themselves: they are read again with the lineage the fan-out gave them,
    // so their entities keep their origin and parent.
    for declared in declared_locations(gateway).await? {
        if registered.contains(&declared.location_key)
            || touched.contains(&declared.location_key)
            || !push.touches(&declared.location_key)
        {
            continue;
        }
        let request = pb::HarvestRequest {
            request_id: format!("webhook/{}/{}", push.commit, declared.location_key),
            trigger: pb::HarvestTrigger::Webhook.into(),
            reason: format!("push of {}", push.commit),
            commit: push.commit.clone(),
            ..declared.clone()
        };
        gateway.publish_harvest_request(request).await?;
        touched.push(declared.location_key);
    }
    if let Some(id) = &delivery {
        gateway.deliveries().remember(id);
    }
    tracing::info!(delivery = delivery.as_deref().unwrap_or("-"), commit = %push.commit, locations = touched.len(), "push received");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "accepted", "locations": touched})),
    )
        .into_response())
}

/// Entities of kind Location read per page while looking for declared locations.
const LOCATION_PAGE: u32 = 500;

/// Every location the catalog's `Location` entities declare, as the harvest request the
/// processor's fan-out made for it (key and lineage; the depth is not kept, so 1).
async fn declared_locations(gateway: &Gateway) -> Result<Vec<pb::HarvestRequest>, ApiError> {
    let filter = cadastre_query::legacy_filter::parse(&["kind=location"])?;
    let mut request = pb::QueryEntitiesRequest {
        filter: Some(cadastre_query::wire::to_proto(&filter)),
        limit: LOCATION_PAGE,
        exclude_total: true,
        ..Default::default()
    };
    let mut declared = Vec::new();
    loop {
        let page = gateway
            .catalog()
            .query_entities(request.clone())
            .await?
            .into_inner();
        for stored in &page.items {
            declared.extend(declared_by(stored));
        }
        if page.next_cursor.is_empty() {
            return Ok(declared);
        }
        request = pb::QueryEntitiesRequest {
            cursor: page.next_cursor,
            limit: LOCATION_PAGE,
            exclude_total: true,
            ..Default::default()
        };
    }
}

/// The harvest requests one stored Location entity stands for (as the processor resolves
/// its targets against the file that declares it).
fn declared_by(stored: &pb::StoredEntity) -> Vec<pb::HarvestRequest> {
    let Some(entity) = &stored.entity else {
        return Vec::new();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&entity.body_json) else {
        return Vec::new();
    };
    // Registration's own generated entities name registered locations: handled above.
    if stored.location_key.is_empty() {
        return Vec::new();
    }
    let file_key = stored.location_key.as_str();
    let (own_type, file_target) = file_key.split_once(':').unwrap_or(("url", file_key));
    let spec = body.get("spec");
    let target_type = spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or(own_type);
    let targets = spec
        .and_then(|s| s.get("target"))
        .and_then(Value::as_str)
        .into_iter()
        .chain(
            spec.and_then(|s| s.get("targets"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
    targets
        .filter_map(|target| cadastre_model::placeholder::resolve_target(file_target, target).ok())
        .map(|resolved| pb::HarvestRequest {
            location_key: format!("{target_type}:{resolved}"),
            depth: 1,
            parent_location_key: file_key.to_owned(),
            origin_location_key: if stored.origin_location.is_empty() {
                file_key.to_owned()
            } else {
                stored.origin_location.clone()
            },
            parent_entity_ref: entity.entity_ref.clone(),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> Push {
        Push {
            reference: "refs/heads/main".into(),
            commit: "abc".into(),
            repositories: vec![
                "https://github.com/Acme/Payments.git".into(),
                "git@github.com:Acme/Payments.git".into(),
            ],
            web_url: "https://github.com/Acme/Payments".into(),
            default_branch: "main".into(),
        }
    }

    #[test]
    fn a_push_touches_the_locations_on_its_repository_and_branch() {
        let push = push();
        assert!(push.touches("git:https://github.com/acme/payments#ref=main"));
        assert!(push.touches("git:https://github.com/acme/payments.git"));
        assert!(push.touches("url:https://github.com/Acme/Payments/blob/main/catalog-info.yaml"));
        assert!(!push.touches("git:https://github.com/acme/payments#ref=release"));
        assert!(!push.touches("git:https://github.com/acme/other#ref=main"));
        assert!(!push.touches("url:https://github.com/Acme/Payments/blob/dev/catalog-info.yaml"));
        assert!(!push.touches("file:/srv/catalog-info.yaml"));
        let tag = Push {
            reference: "refs/tags/v1".into(),
            ..push
        };
        assert!(!tag.touches("git:https://github.com/acme/payments#ref=main"));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // From GitHub's documentation on validating webhook deliveries.
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_valid(
            "It's a Secret to Everybody",
            b"Hello, World!",
            signature
        ));
        assert!(!github_signature_valid(
            "another secret",
            b"Hello, World!",
            signature
        ));
        assert!(!github_signature_valid(
            "It's a Secret to Everybody",
            b"Hello, World?",
            signature
        ));
        assert!(!github_signature_valid(
            "It's a Secret to Everybody",
            b"Hello, World!",
            "sha1=00"
        ));
    }

    #[test]
    fn deliveries_are_handled_once() {
        let deliveries = Deliveries::default();
        assert!(!deliveries.seen("a"));
        deliveries.remember("a");
        assert!(deliveries.seen("a"));
        assert!(!deliveries.seen("b"));
    }
}
