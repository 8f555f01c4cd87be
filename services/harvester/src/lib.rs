//! harvester: reads what a location points at and says what changed.
//!
//! [`Harvester::harvest`] answers one [`HarvestRequest`](pb::HarvestRequest) with one
//! [`HarvestedLocation`](pb::HarvestedLocation): the documents that are new or changed since
//! the last harvest, the targets that are unchanged and those that disappeared, the
//! placeholder targets those documents need (`attachments`), and every problem reading the
//! location, as findings. Nothing it reads is trusted: sizes are capped per file and per
//! location, fetches time out, and URL and git hosts must be allowed (internal addresses are
//! refused unless configured).
//!
//! What was read last (hashes, ETags, the last commit) is kept in memory and advanced only by
//! [`Harvester::commit`], once the harvest is safely published. A refresh or a new
//! registration reads everything again; after a restart the first harvest of each location
//! does too (the store skips what did not change).

pub mod git;
pub mod guard;
pub mod lease;
pub mod location;
pub mod service;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use cadastre_model::placeholder::resolve_target;
use cadastre_model::{Finding, Limits, Rule};
use cadastre_proto::v1 as pb;
use serde_json::Value;
use sha1::{Digest, Sha1};

pub use location::LocationSpec;

/// How the harvester reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_file_bytes: u64,
    pub max_location_bytes: u64,
    pub max_files_per_location: usize,
    pub timeout: Duration,
    /// Hosts URL and git locations may name: `*`, `host`, or `*.domain`.
    pub allowed_hosts: Vec<String>,
    /// Allow hosts that resolve to loopback, private or link-local addresses.
    pub allow_private_addresses: bool,
    /// Allow `git:file://…` repositories (local mirrors; tests).
    pub allow_local_repositories: bool,
    /// `Authorization` header values by host, for URL and git fetches. Never logged.
    pub credentials: Credentials,
    /// Where git mirrors live.
    pub cache_dir: PathBuf,
    /// Extra certificate authorities (PEM) to trust for HTTPS, e.g. an internal git host's.
    pub ca_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_file_bytes: Limits::default().max_file_bytes as u64,
            max_location_bytes: 512 << 20,
            max_files_per_location: 200_000,
            timeout: git::DEFAULT_TIMEOUT,
            allowed_hosts: vec!["*".into()],
            allow_private_addresses: false,
            allow_local_repositories: false,
            credentials: Credentials::default(),
            cache_dir: PathBuf::from(".cadastre/harvester"),
            ca_file: None,
        }
    }
}

/// `Authorization` header values by (lower-case) host. Debug output names the hosts only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|host| (host, "<redacted>")))
            .finish()
    }
}

/// What the harvester remembers about a location between harvests.
#[derive(Debug, Clone, Default)]
pub struct LocationState {
    /// Content hash per document target.
    pub hashes: BTreeMap<String, String>,
    /// ETag per URL (with the content hash it stood for).
    pub etag: Option<String>,
    /// The last commit harvested (git).
    pub commit: Option<String>,
}

/// One harvest: the message to publish, and the state to keep once it is published.
#[derive(Debug)]
pub struct Harvest {
    pub message: pb::HarvestedLocation,
    pub next_state: LocationState,
    /// The placeholder targets each document needs (to send them along with it).
    pub needs: BTreeMap<String, Vec<String>>,
}

/// Bounds on one message of a harvest (NATS refuses messages over its `max_payload`,
/// 1 MiB by default).
///
/// The bytes bound is far below NATS' limit because the processor sends each part on as one
/// batch, and a processed entity is several times its YAML (the body as JSON, the added
/// annotations, its relation edges, the receipt): `cadastre bench` found a part of two
/// generated files (240 KB, under the old 256 KiB bound) becoming a 1.34 MB batch that NATS
/// refused. At 64 KiB a part is one such file (a part always holds at least one document),
/// about 0.6 MB once processed.
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    pub max_bytes: usize,
    pub max_documents: usize,
}

impl Default for PartLimits {
    fn default() -> Self {
        PartLimits {
            max_bytes: 64 << 10,
            max_documents: 256,
        }
    }
}

impl Harvest {
    /// The harvest as messages of bounded size, each covering whole documents with the
    /// placeholder targets they need. Read errors and removed targets travel in the first.
    pub fn parts(&self, limits: PartLimits) -> Vec<pb::HarvestedLocation> {
        let whole = &self.message;
        let by_target: HashMap<&str, &pb::RawDocument> = whole
            .attachments
            .iter()
            .chain(&whole.documents)
            .map(|doc| (doc.target.as_str(), doc))
            .collect();
        let mut groups: Vec<Vec<&pb::RawDocument>> = vec![Vec::new()];
        let mut size = 0;
        for document in &whole.documents {
            let current = groups.last().map_or(0, Vec::len);
            if current > 0
                && (current >= limits.max_documents
                    || size + document.content.len() > limits.max_bytes)
            {
                groups.push(Vec::new());
                size = 0;
            }
            size += document.content.len();
            if let Some(group) = groups.last_mut() {
                group.push(document);
            }
        }
        let parts = u32::try_from(groups.len()).unwrap_or(u32::MAX);
        groups
            .into_iter()
            .enumerate()
            .map(|(index, documents)| {
                let in_part: BTreeSet<&str> = documents.iter().map(|d| d.target.as_str()).collect();
                let mut attached = BTreeSet::new();
                for document in &documents {
                    for target in self.needs.get(&document.target).into_iter().flatten() {
                        if !in_part.contains(target.as_str()) {
                            attached.insert(target.as_str());
                        }
                    }
                }
                let first = index == 0;
                pb::HarvestedLocation {
                    documents: documents.into_iter().cloned().collect(),
                    attachments: attached
                        .into_iter()
                        .filter_map(|target| by_target.get(target).map(|doc| (*doc).clone()))
                        .collect(),
                    removed_targets: if first {
                        whole.removed_targets.clone()
                    } else {
                        Vec::new()
                    },
                    unchanged_targets: if first {
                        whole.unchanged_targets.clone()
                    } else {
                        Vec::new()
                    },
                    errors: if first {
                        whole.errors.clone()
                    } else {
                        Vec::new()
                    },
                    part: u32::try_from(index).unwrap_or(u32::MAX),
                    parts,
                    ..whole.clone_header()
                }
            })
            .collect()
    }
}

/// The fields of a harvest message other than its contents.
trait CloneHeader {
    fn clone_header(&self) -> Self;
}

impl CloneHeader for pb::HarvestedLocation {
    fn clone_header(&self) -> Self {
        pb::HarvestedLocation {
            location_key: self.location_key.clone(),
            harvest_id: self.harvest_id.clone(),
            trigger: self.trigger,
            reason: self.reason.clone(),
            commit: self.commit.clone(),
            depth: self.depth,
            parent_location_key: self.parent_location_key.clone(),
            started_at_micros: self.started_at_micros,
            finished_at_micros: self.finished_at_micros,
            origin_location_key: self.origin_location_key.clone(),
            parent_entity_ref: self.parent_entity_ref.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug)]
pub struct Harvester {
    settings: Settings,
    /// System CAs plus `ca_file`, for git (written to the cache folder).
    git_ca_bundle: Option<PathBuf>,
    http: reqwest::Client,
    state: Mutex<HashMap<String, LocationState>>,
    limits: Limits,
}

/// Debian's (and most distributions') bundle of trusted certificate authorities.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Installs the TLS crypto provider (ring) once per process; reqwest is built without one.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Harvester {
    pub fn new(mut settings: Settings) -> Result<Self, String> {
        install_tls_provider();
        // git runs in each mirror's folder: paths handed to it must not be relative.
        settings.cache_dir = std::path::absolute(&settings.cache_dir)
            .map_err(|e| format!("{}: {e}", settings.cache_dir.display()))?;
        let mut builder = reqwest::Client::builder();
        let mut git_ca_bundle = None;
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("harvester.ca_file {}: {e}", path.display()))?;
            let mut bundle = std::fs::read(SYSTEM_CA_BUNDLE).unwrap_or_default();
            bundle.push(b'\n');
            bundle.extend_from_slice(&pem);
            std::fs::create_dir_all(&settings.cache_dir)
                .map_err(|e| format!("{}: {e}", settings.cache_dir.display()))?;
            let bundle_path = settings.cache_dir.join("ca-bundle.pem");
            std::fs::write(&bundle_path, bundle)
                .map_err(|e| format!("{}: {e}", bundle_path.display()))?;
            git_ca_bundle = Some(bundle_path);
            for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("harvester.ca_file {}: {e}", path.display()))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            // Redirects could lead anywhere, past the allow-list: refuse them.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cadastre-harvester/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Harvester {
            settings,
            git_ca_bundle,
            http,
            state: Mutex::new(HashMap::new()),
            limits: Limits::default(),
        })
    }

    fn state_of(&self, location_key: &str) -> LocationState {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(location_key)
            .cloned()
            .unwrap_or_default()
    }

    /// Keeps the state of a published harvest.
    pub fn commit(&self, location_key: &str, state: LocationState) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(location_key.to_owned(), state);
    }

    /// Reads a location. Never fails: problems are findings in the message.
    pub async fn harvest(&self, request: &pb::HarvestRequest) -> Harvest {
        let started = now_micros();
        let trigger = request.trigger();
        // A refresh or a new registration reads everything, whatever was remembered.
        let full = matches!(
            trigger,
            pb::HarvestTrigger::Registered | pb::HarvestTrigger::Refresh
        );
        let previous = if full {
            LocationState::default()
        } else {
            self.state_of(&request.location_key)
        };
        let mut message = pb::HarvestedLocation {
            location_key: request.location_key.clone(),
            harvest_id: uuid::Uuid::new_v4().to_string(),
            trigger: request.trigger,
            reason: request.reason.clone(),
            depth: request.depth,
            parent_location_key: request.parent_location_key.clone(),
            origin_location_key: if request.origin_location_key.is_empty() {
                request.location_key.clone()
            } else {
                request.origin_location_key.clone()
            },
            parent_entity_ref: request.parent_entity_ref.clone(),
            started_at_micros: started,
            ..Default::default()
        };
        let mut read = Read::default();
        match LocationSpec::parse(&request.location_key) {
            Err(error) => read.errors.push(error.to_string()),
            Ok(spec) => self.read(&spec, &previous, &mut read).await,
        }
        let read_at = std::time::Instant::now();
        let mut next_state = LocationState {
            hashes: BTreeMap::new(),
            etag: read.etag.clone().or(previous.etag.clone()),
            commit: read.commit.clone().or(previous.commit.clone()),
        };
        // Targets kept from before: an incremental read leaves the rest as they were.
        if !read.complete {
            next_state.hashes = previous.hashes.clone();
            for target in &read.deleted {
                next_state.hashes.remove(target);
            }
        }
        let mut current = BTreeSet::new();
        for (target, content) in read.files {
            let hash = hex::encode(Sha1::digest(&content));
            current.insert(target.clone());
            next_state.hashes.insert(target.clone(), hash.clone());
            if previous.hashes.get(&target) == Some(&hash) {
                message.unchanged_targets.push(target);
            } else {
                message.documents.push(pb::RawDocument {
                    target,
                    content,
                    content_hash: hash,
                });
            }
        }
        message.unchanged_targets.extend(read.not_modified);
        let mut removed: BTreeSet<String> = read.deleted.into_iter().collect();
        if read.complete && read.errors.is_empty() {
            removed.extend(
                previous
                    .hashes
                    .keys()
                    .filter(|target| !current.contains(*target))
                    .cloned(),
            );
        }
        message.removed_targets = removed.into_iter().collect();
        message.commit = next_state.commit.clone().unwrap_or_default();
        let (attachments, needs) = self
            .attachments(&request.location_key, &message.documents, &message.commit)
            .await;
        message.attachments = attachments;
        tracing::debug!(after_read = ?read_at.elapsed(), "harvest compared and attachments read");
        message.errors = read
            .errors
            .into_iter()
            .map(|reason| to_finding(&Finding::error(Rule::LocationRead, "", reason)))
            .collect();
        message.finished_at_micros = now_micros();
        tracing::info!(
            location = %request.location_key,
            documents = message.documents.len(),
            unchanged = message.unchanged_targets.len(),
            removed = message.removed_targets.len(),
            errors = message.errors.len(),
            commit = %message.commit,
            seconds = (message.finished_at_micros - message.started_at_micros) as f64 / 1e6,
            "harvested"
        );
        Harvest {
            message,
            next_state,
            needs,
        }
    }

    async fn read(&self, spec: &LocationSpec, previous: &LocationState, read: &mut Read) {
        match spec {
            LocationSpec::File { pattern } => self.read_files(pattern, read).await,
            LocationSpec::Url { url } => self.read_url(url, previous, read).await,
            LocationSpec::Git {
                repository,
                reference,
                path,
            } => {
                self.read_git(repository, reference, path, previous, read)
                    .await;
            }
        }
    }

    async fn read_files(&self, pattern: &str, read: &mut Read) {
        read.complete = true;
        let pattern = pattern.to_owned();
        let settings = self.settings.clone();
        let found = tokio::task::spawn_blocking(move || read_file_pattern(&pattern, &settings))
            .await
            .unwrap_or_else(|e| FileRead {
                errors: vec![format!("reading files failed: {e}")],
                ..FileRead::default()
            });
        read.files = found.files;
        read.errors.extend(found.errors);
    }

    async fn read_url(&self, url: &url::Url, previous: &LocationState, read: &mut Read) {
        read.complete = true;
        match self.fetch(url, previous.etag.as_deref()).await {
            Ok(Fetched::Body { body, etag }) => {
                read.etag = etag;
                read.files.push((url.to_string(), body));
            }
            Ok(Fetched::NotModified) => {
                // Unchanged: keep what was known, and say so.
                read.not_modified.push(url.to_string());
                read.complete = false;
            }
            Err(error) => read.errors.push(error),
        }
    }

    async fn read_git(
        &self,
        repository: &url::Url,
        reference: &str,
        path: &str,
        previous: &LocationState,
        read: &mut Read,
    ) {
        if let Err(refused) = guard::check_url(repository, &self.settings).await {
            read.errors.push(refused);
            return;
        }
        let glob = match globset::Glob::new(path) {
            Ok(glob) => glob.compile_matcher(),
            Err(e) => {
                read.errors.push(format!("path {path:?}: {e}"));
                return;
            }
        };
        let reader = git::GitReader {
            settings: &self.settings,
            authorization: self.authorization_for(repository),
            ca_bundle: self.git_ca_bundle.as_deref(),
        };
        match reader
            .read(repository, reference, &glob, previous.commit.as_deref())
            .await
        {
            Ok(found) => {
                let target =
                    |path: &str| location::git_document_target(repository, reference, path);
                read.commit = Some(found.commit);
                read.complete = found.complete;
                read.deleted = found.deleted.iter().map(|p| target(p)).collect();
                for (path, size) in found.too_large {
                    read.errors.push(format!(
                        "{path}: {size} bytes is over the limit of {} bytes",
                        self.settings.max_file_bytes
                    ));
                }
                let mut total = 0u64;
                for (path, content) in found.files {
                    total += content.len() as u64;
                    if total > self.settings.max_location_bytes {
                        read.errors.push(format!(
                            "the location holds more than {} bytes; the rest was not read",
                            self.settings.max_location_bytes
                        ));
                        read.complete = false;
                        break;
                    }
                    read.files.push((target(&path), content));
                }
            }
            Err(error) => read.errors.push(error),
        }
    }

    fn authorization_for(&self, url: &url::Url) -> Option<&str> {
        let host = url.host_str()?;
        self.settings
            .credentials
            .0
            .get(&host.to_ascii_lowercase())
            .map(String::as_str)
    }

    async fn fetch(&self, url: &url::Url, etag: Option<&str>) -> Result<Fetched, String> {
        guard::check_url(url, &self.settings).await?;
        let mut request = self.http.get(url.clone());
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(authorization) = self.authorization_for(url) {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let mut response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        let limit = self.settings.max_file_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(format!("{url}: over the limit of {limit} bytes"));
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > limit {
                return Err(format!("{url}: over the limit of {limit} bytes"));
            }
        }
        Ok(Fetched::Body { body, etag })
    }

    /// Reads the placeholder targets (`$text`, `$json`, `$yaml`) of the documents, from the
    /// same kind of location: files from disk, URLs over HTTP, git paths at the same commit.
    async fn attachments(
        &self,
        location_key: &str,
        documents: &[pb::RawDocument],
        commit: &str,
    ) -> (Vec<pb::RawDocument>, BTreeMap<String, Vec<String>>) {
        let mut wanted = BTreeSet::new();
        let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for document in documents {
            for target in placeholder_targets(&document.content, &self.limits) {
                if let Ok(resolved) = resolve_target(&document.target, &target) {
                    wanted.insert(resolved.clone());
                    needs
                        .entry(document.target.clone())
                        .or_default()
                        .push(resolved);
                }
            }
        }
        let present: BTreeSet<&str> = documents.iter().map(|d| d.target.as_str()).collect();
        wanted.retain(|target| !present.contains(target.as_str()));
        if wanted.is_empty() {
            return (Vec::new(), needs);
        }
        let mut attachments = Vec::new();
        let spec = LocationSpec::parse(location_key).ok();
        for target in wanted {
            let content = match &spec {
                Some(LocationSpec::File { .. }) if target.starts_with('/') => {
                    read_small_file(&target, self.settings.max_file_bytes).await
                }
                Some(LocationSpec::Git {
                    repository,
                    reference,
                    ..
                }) => match location::git_path_of(repository, reference, &target) {
                    Some(path) => {
                        let reader = git::GitReader {
                            settings: &self.settings,
                            authorization: self.authorization_for(repository),
                            ca_bundle: self.git_ca_bundle.as_deref(),
                        };
                        reader
                            .read_paths(repository, commit, &[path.to_owned()])
                            .await
                            .ok()
                            .and_then(|mut files| files.pop())
                            .map(|(_, content)| content)
                    }
                    None => self.fetch_attachment(&target).await,
                },
                _ => self.fetch_attachment(&target).await,
            };
            if let Some(content) = content {
                attachments.push(pb::RawDocument {
                    content_hash: hex::encode(Sha1::digest(&content)),
                    target,
                    content,
                });
            }
        }
        (attachments, needs)
    }

    async fn fetch_attachment(&self, target: &str) -> Option<Vec<u8>> {
        let url = url::Url::parse(target).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        match self.fetch(&url, None).await {
            Ok(Fetched::Body { body, .. }) => Some(body),
            Ok(Fetched::NotModified) => None,
            Err(error) => {
                tracing::debug!(%target, %error, "placeholder target not read");
                None
            }
        }
    }
}

enum Fetched {
    Body { body: Vec<u8>, etag: Option<String> },
    NotModified,
}

/// What reading a location found, before comparing with the last harvest.
#[derive(Debug, Default)]
struct Read {
    files: Vec<(String, Vec<u8>)>,
    deleted: Vec<String>,
    not_modified: Vec<String>,
    /// `files` is everything the location holds now.
    complete: bool,
    commit: Option<String>,
    etag: Option<String>,
    errors: Vec<String>,
}

#[derive(Debug, Default)]
struct FileRead {
    files: Vec<(String, Vec<u8>)>,
    errors: Vec<String>,
}

/// Reads the files a path or glob names, with the size limits.
fn read_file_pattern(pattern: &str, settings: &Settings) -> FileRead {
    let mut found = FileRead::default();
    let is_glob = pattern.contains(['*', '?', '[', '{']);
    let paths: Vec<PathBuf> = if is_glob {
        // Walk from the longest directory prefix without glob characters.
        let root: PathBuf = pattern
            .split('/')
            .take_while(|part| !part.contains(['*', '?', '[', '{']))
            .collect::<Vec<_>>()
            .join("/")
            .into();
        let root = if root.as_os_str().is_empty() {
            PathBuf::from("/")
        } else {
            root
        };
        let matcher = match globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            Ok(glob) => glob.compile_matcher(),
            Err(e) => {
                found.errors.push(format!("{pattern}: {e}"));
                return found;
            }
        };
        walkdir::WalkDir::new(&root)
            .follow_links(false)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_file() && matcher.is_match(entry.path()))
            .map(walkdir::DirEntry::into_path)
            .collect()
    } else {
        vec![PathBuf::from(pattern)]
    };
    let mut total = 0u64;
    let mut paths = paths;
    paths.sort();
    if paths.len() > settings.max_files_per_location {
        found.errors.push(format!(
            "{pattern} matches {} files, over the limit of {}; the rest were not read",
            paths.len(),
            settings.max_files_per_location
        ));
        paths.truncate(settings.max_files_per_location);
    }
    for path in paths {
        let display = path.to_string_lossy().into_owned();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > settings.max_file_bytes => {
                found.errors.push(format!(
                    "{display}: {} bytes is over the limit of {} bytes",
                    meta.len(),
                    settings.max_file_bytes
                ));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                found.errors.push(format!("{display}: {e}"));
                continue;
            }
        }
        match std::fs::read(&path) {
            Ok(content) => {
                total += content.len() as u64;
                if total > settings.max_location_bytes {
                    found.errors.push(format!(
                        "the location holds more than {} bytes; the rest was not read",
                        settings.max_location_bytes
                    ));
                    break;
                }
                found.files.push((display, content));
            }
            Err(e) => found.errors.push(format!("{display}: {e}")),
        }
    }
    found
}

async fn read_small_file(path: &str, limit: u64) -> Option<Vec<u8>> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    if meta.len() > limit || !meta.is_file() {
        return None;
    }
    tokio::fs::read(path).await.ok()
}

/// Placeholder targets named in a YAML file (`$text: ./x.yaml` and the like).
pub fn placeholder_targets(content: &[u8], limits: &Limits) -> Vec<String> {
    // Most files have none: a byte search spares them a YAML parse.
    let mentions = |needle: &[u8]| content.windows(needle.len()).any(|w| w == needle);
    if !(mentions(b"$text") || mentions(b"$json") || mentions(b"$yaml")) {
        return Vec::new();
    }
    let parsed = cadastre_model::yaml::parse_bytes(content, limits);
    let mut targets = Vec::new();
    let mut stack: Vec<&Value> = parsed.documents.iter().map(|d| &d.value).collect();
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if map.len() == 1
                    && let Some((key, Value::String(target))) = map.iter().next()
                    && matches!(key.as_str(), "$text" | "$json" | "$yaml")
                {
                    targets.push(target.clone());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    targets
}

fn to_finding(finding: &Finding) -> pb::Finding {
    pb::Finding {
        rule: finding.rule.id().to_owned(),
        severity: pb::Severity::Error.into(),
        path: finding.path.clone(),
        message: finding.message.clone(),
        position: None,
        file: String::new(),
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
