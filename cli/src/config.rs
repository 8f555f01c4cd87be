//! Configuration for the `cadastre` command, layered: defaults < file < environment.
//!
//! The file is TOML. Today it declares custom kinds and reading limits; later issues add a
//! section per service.
//!
//! ```toml
//! [limits]
//! max_file_bytes = 8388608
//!
//! [[kinds]]
//! kind = "AiResource"
//! api_versions = ["backstage.io/v1alpha1"]
//! spec_schema_file = "schemas/ai-resource.json"   # or an inline `spec_schema = { ... }`
//! relations = [{ field = "owner", forward = "ownedBy", inverse = "ownerOf", default_kind = "group" }]
//! ```

use std::path::{Path, PathBuf};

use cadastre_model::Limits;
use cadastre_model::kinds::{CustomKind, CustomRelation, KindError, KindRegistry};
use serde::Deserialize;
use thiserror::Error;

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "CADASTRE_CONFIG";
/// Environment variable overriding `limits.max_file_bytes`.
pub const MAX_FILE_BYTES_ENV: &str = "CADASTRE_LIMITS_MAX_FILE_BYTES";
/// Environment variable overriding `store.database_url`.
pub const STORE_DATABASE_URL_ENV: &str = "CADASTRE_STORE_DATABASE_URL";
/// Environment variable overriding `store.listen`.
pub const STORE_LISTEN_ENV: &str = "CADASTRE_STORE_LISTEN";
/// Environment variable overriding `bus.nats_url`.
pub const BUS_NATS_URL_ENV: &str = "CADASTRE_BUS_NATS_URL";
/// Environment variable overriding `harvester.store_url`.
pub const HARVESTER_STORE_URL_ENV: &str = "CADASTRE_HARVESTER_STORE_URL";
/// Environment variables overriding `search.store_url`, `search.listen` and
/// `search.opensearch_url` (which also selects the OpenSearch backend).
pub const SEARCH_STORE_URL_ENV: &str = "CADASTRE_SEARCH_STORE_URL";
/// Environment variables overriding `gateway.listen` and `gateway.store_url`.
pub const GATEWAY_LISTEN_ENV: &str = "CADASTRE_GATEWAY_LISTEN";
pub const GATEWAY_STORE_URL_ENV: &str = "CADASTRE_GATEWAY_STORE_URL";
/// Environment variable overriding `gateway.search_url`.
pub const GATEWAY_SEARCH_URL_ENV: &str = "CADASTRE_GATEWAY_SEARCH_URL";
/// Environment variables holding the webhook secrets (never in files).
pub const GITHUB_WEBHOOK_SECRET_ENV: &str = "CADASTRE_GATEWAY_GITHUB_WEBHOOK_SECRET";
pub const GITLAB_WEBHOOK_TOKEN_ENV: &str = "CADASTRE_GATEWAY_GITLAB_WEBHOOK_TOKEN";
pub const SEARCH_LISTEN_ENV: &str = "CADASTRE_SEARCH_LISTEN";
pub const SEARCH_OPENSEARCH_URL_ENV: &str = "CADASTRE_SEARCH_OPENSEARCH_URL";
/// Environment variables holding OpenSearch basic-auth credentials (never in files).
pub const SEARCH_OPENSEARCH_USERNAME_ENV: &str = "CADASTRE_SEARCH_OPENSEARCH_USERNAME";
pub const SEARCH_OPENSEARCH_PASSWORD_ENV: &str = "CADASTRE_SEARCH_OPENSEARCH_PASSWORD";
/// Environment variable overriding `admin.listen` (`/live`, `/ready`, `/metrics`, gRPC health).
pub const ADMIN_LISTEN_ENV: &str = "CADASTRE_ADMIN_LISTEN";

/// Every environment variable Cadastre reads itself (deployment files are checked against
/// this list). Token and credential variables are named in configuration instead, and
/// OpenTelemetry's standard `OTEL_*` variables are read by the exporter.
pub const ENVIRONMENT: &[&str] = &[
    CONFIG_ENV,
    MAX_FILE_BYTES_ENV,
    STORE_DATABASE_URL_ENV,
    STORE_LISTEN_ENV,
    BUS_NATS_URL_ENV,
    HARVESTER_STORE_URL_ENV,
    SEARCH_STORE_URL_ENV,
    GATEWAY_LISTEN_ENV,
    GATEWAY_STORE_URL_ENV,
    GATEWAY_SEARCH_URL_ENV,
    GITHUB_WEBHOOK_SECRET_ENV,
    GITLAB_WEBHOOK_TOKEN_ENV,
    SEARCH_LISTEN_ENV,
    SEARCH_OPENSEARCH_URL_ENV,
    SEARCH_OPENSEARCH_USERNAME_ENV,
    SEARCH_OPENSEARCH_PASSWORD_ENV,
    ADMIN_LISTEN_ENV,
];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("kind {kind:?}: cannot read spec_schema_file {path}: {message}")]
    SchemaFile {
        kind: String,
        path: PathBuf,
        message: String,
    },
    #[error("kind {0:?} gives both spec_schema and spec_schema_file; keep one")]
    TwoSchemas(String),
    #[error("environment variable {name} is not valid: {message}")]
    Environment { name: String, message: String },
    #[error(transparent)]
    Kind(#[from] KindError),
}

/// The whole configuration after layering.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub limits: Limits,
    pub kinds: Vec<CustomKind>,
    pub store: StoreConfig,
    pub bus: BusConfig,
    pub harvester: HarvesterConfig,
    pub processor: ProcessorConfig,
    pub search: SearchConfig,
    pub gateway: GatewayConfig,
    pub admin: AdminConfig,
}

/// Where a service answers `/live`, `/ready`, `/metrics` and the gRPC health check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// Unset: no admin server (`cadastre up` serves these on the gateway's port).
    pub listen: Option<std::net::SocketAddr>,
}

/// The gateway's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Where the HTTP server listens.
    pub listen: std::net::SocketAddr,
    /// catalog-store's gRPC address.
    pub store_url: String,
    /// The search service's gRPC address (`/api/search`).
    pub search_url: String,
    /// Location types `POST /api/catalog/locations` accepts.
    pub location_types: Vec<String>,
    /// Reads without a token (when tokens are configured).
    pub anonymous_reads: bool,
    /// (scope, name of the environment variable holding the token): secrets stay out of files.
    pub tokens: Vec<(String, String)>,
    /// Requests per second per client address (0: no limit), and how many at once.
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: f64,
    pub request_timeout: std::time::Duration,
    pub max_body_bytes: usize,
    /// Entities kept for by-name lookups, invalidated by the store's change feed (0: none).
    pub entity_cache_entries: usize,
    /// From the environment only.
    pub github_webhook_secret: Option<String>,
    pub gitlab_webhook_token: Option<String>,
    /// `[gateway.ui]`: the web UI's settings (`[[gateway.ui.tools]]`: the tools linked from
    /// entity pages; a list given replaces the default tools, `tools = []` shows none).
    pub ui: cadastre_gateway::ui::UiSettings,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7007)),
            store_url: "http://127.0.0.1:7010".to_owned(),
            search_url: "http://127.0.0.1:7011".to_owned(),
            location_types: cadastre_gateway::Settings::default().location_types,
            anonymous_reads: true,
            tokens: Vec::new(),
            rate_limit_per_second: 0.0,
            rate_limit_burst: 100.0,
            request_timeout: std::time::Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            entity_cache_entries: 100_000,
            github_webhook_secret: None,
            gitlab_webhook_token: None,
            ui: cadastre_gateway::ui::UiSettings::default(),
        }
    }
}

/// The search service's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchConfig {
    /// Where the gRPC server listens.
    pub listen: std::net::SocketAddr,
    /// catalog-store's gRPC address: the change feed and the entities come from there.
    pub store_url: String,
    /// Follow the change feed (one replica or several; writes are idempotent). Replicas that
    /// only answer queries set this to false.
    pub indexing: bool,
    /// OpenSearch (`http(s)://host:9200`); unset, tantivy in `index_dir`.
    pub opensearch_url: Option<String>,
    pub opensearch_username: Option<String>,
    pub opensearch_password: Option<String>,
    /// Names of the alias and indexes on OpenSearch.
    pub index_prefix: String,
    pub shards: u32,
    pub replicas: u32,
    /// The tantivy folder.
    pub index_dir: PathBuf,
    pub grace_period: std::time::Duration,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7011)),
            store_url: "http://127.0.0.1:7010".to_owned(),
            indexing: true,
            opensearch_url: None,
            opensearch_username: None,
            opensearch_password: None,
            index_prefix: "cadastre".to_owned(),
            shards: 1,
            replicas: 0,
            index_dir: PathBuf::from(".cadastre/search"),
            grace_period: cadastre_search::server::DEFAULT_GRACE_PERIOD,
        }
    }
}

/// How services reach each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusConfig {
    /// `nats://host:4222`; unset, `cadastre store` serves gRPC only.
    pub nats_url: Option<String>,
    /// Prefix for the stream and subjects, to share a NATS with other installations.
    pub namespace: String,
}

/// The harvester's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarvesterConfig {
    /// Hosts URL and git locations may name: `*`, `host`, `*.domain`.
    pub allowed_hosts: Vec<String>,
    pub allow_private_addresses: bool,
    pub allow_local_repositories: bool,
    pub cache_dir: PathBuf,
    pub timeout: std::time::Duration,
    /// How often every registered location is read again (0: never).
    pub refresh_interval: std::time::Duration,
    /// catalog-store's gRPC address, to list locations for the refresh.
    pub store_url: String,
    /// `host -> name of the environment variable` holding its `Authorization` value: secrets
    /// stay out of files.
    pub credentials_env: std::collections::BTreeMap<String, String>,
    /// Extra certificate authorities (PEM) for HTTPS, e.g. an internal git host's.
    pub ca_file: Option<PathBuf>,
    /// Locations read at once in this process (members of the `harvester` queue group).
    pub workers: usize,
}

impl Default for HarvesterConfig {
    fn default() -> Self {
        let defaults = cadastre_harvester::Settings::default();
        HarvesterConfig {
            allowed_hosts: defaults.allowed_hosts,
            allow_private_addresses: false,
            allow_local_repositories: false,
            cache_dir: defaults.cache_dir,
            timeout: defaults.timeout,
            refresh_interval: std::time::Duration::from_secs(1800),
            store_url: "http://127.0.0.1:7010".to_owned(),
            credentials_env: std::collections::BTreeMap::new(),
            ca_file: None,
            workers: 4,
        }
    }
}

/// The processor's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub max_fan_out_depth: u32,
    /// Parts processed at once in this process (members of the `processor` queue group);
    /// default: one per core.
    pub workers: usize,
    /// Which kinds may come from which registered locations; none: every kind from anywhere.
    pub kind_rules: Vec<cadastre_processor::KindRule>,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            max_fan_out_depth: cadastre_processor::Settings::default().max_fan_out_depth,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            kind_rules: Vec::new(),
        }
    }
}

/// catalog-store's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `postgres://user:password@host/db` or `sqlite://path?mode=rwc`.
    pub database_url: String,
    /// Where the gRPC server listens.
    pub listen: std::net::SocketAddr,
    /// How long in-flight calls get after SIGTERM.
    pub grace_period: std::time::Duration,
    /// What happens to entities a location no longer produces.
    pub orphans: cadastre_catalog_store::OrphanPolicy,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            database_url: "sqlite://.cadastre/catalog.db?mode=rwc".to_owned(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7010)),
            grace_period: cadastre_catalog_store::server::DEFAULT_GRACE_PERIOD,
            orphans: cadastre_catalog_store::OrphanPolicy::Keep,
        }
    }
}

impl Config {
    /// The kind registry this configuration describes.
    pub fn registry(&self) -> Result<KindRegistry, ConfigError> {
        Ok(KindRegistry::with_custom(&self.kinds)?)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    kinds: Vec<KindFile>,
    #[serde(default)]
    store: StoreFile,
    #[serde(default)]
    bus: BusFile,
    #[serde(default)]
    harvester: HarvesterFile,
    #[serde(default)]
    processor: ProcessorFile,
    #[serde(default)]
    search: SearchFile,
    #[serde(default)]
    gateway: GatewayFile,
    #[serde(default)]
    admin: AdminFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    listen: Option<std::net::SocketAddr>,
    store_url: Option<String>,
    search_url: Option<String>,
    location_types: Option<Vec<String>>,
    anonymous_reads: Option<bool>,
    #[serde(default)]
    tokens: Vec<TokenFile>,
    rate_limit_per_second: Option<f64>,
    rate_limit_burst: Option<f64>,
    request_timeout_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    entity_cache_entries: Option<usize>,
    #[serde(default)]
    ui: UiFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UiFile {
    tools: Option<Vec<ToolFile>>,
}

/// `{ name = "CI", annotation = "github.com/project-slug", url = "https://github.com/{value}/actions", kinds = ["component"] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolFile {
    name: String,
    annotation: String,
    url: String,
    #[serde(default)]
    kinds: Vec<String>,
    /// A tab of the entity page showing the tool's page in a frame, rather than a link.
    #[serde(default)]
    embed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    /// `read`, `write` or `admin`.
    scope: String,
    /// The environment variable holding the token.
    env: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchFile {
    listen: Option<std::net::SocketAddr>,
    store_url: Option<String>,
    indexing: Option<bool>,
    opensearch_url: Option<String>,
    index_prefix: Option<String>,
    shards: Option<u32>,
    replicas: Option<u32>,
    index_dir: Option<PathBuf>,
    grace_period_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BusFile {
    nats_url: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HarvesterFile {
    allowed_hosts: Option<Vec<String>>,
    allow_private_addresses: Option<bool>,
    allow_local_repositories: Option<bool>,
    cache_dir: Option<PathBuf>,
    timeout_secs: Option<u64>,
    refresh_interval_secs: Option<u64>,
    store_url: Option<String>,
    #[serde(default)]
    credentials_env: std::collections::BTreeMap<String, String>,
    ca_file: Option<PathBuf>,
    workers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessorFile {
    max_fan_out_depth: Option<u32>,
    workers: Option<usize>,
    #[serde(default)]
    kind_rules: Vec<KindRuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindRuleFile {
    allow: Vec<String>,
    location_type: Option<String>,
    target_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    database_url: Option<String>,
    listen: Option<std::net::SocketAddr>,
    grace_period_secs: Option<u64>,
    /// `keep` (marked as orphans, the default) or `remove`.
    orphans: Option<OrphansFile>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OrphansFile {
    Keep,
    Remove,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_file_bytes: Option<usize>,
    max_depth: Option<usize>,
    max_alias_nodes: Option<usize>,
    max_documents: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindFile {
    kind: String,
    api_versions: Vec<String>,
    #[serde(default)]
    spec_schema: Option<serde_json::Value>,
    #[serde(default)]
    spec_schema_file: Option<PathBuf>,
    #[serde(default)]
    relations: Vec<CustomRelation>,
}

/// Where configuration values come from besides the file: a seam so tests never touch the
/// process environment.
pub trait Environment {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Loads configuration: defaults, then `file` (or the file named by `CADASTRE_CONFIG`), then
/// environment overrides.
pub fn load(file: Option<&Path>, env: &dyn Environment) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let env_file = env.get(CONFIG_ENV).map(PathBuf::from);
    if let Some(path) = file.map(Path::to_path_buf).or(env_file) {
        apply_file(&mut config, &path)?;
    }
    if let Some(url) = env.get(STORE_DATABASE_URL_ENV) {
        config.store.database_url = url;
    }
    if let Some(url) = env.get(BUS_NATS_URL_ENV) {
        config.bus.nats_url = Some(url);
    }
    if let Some(url) = env.get(HARVESTER_STORE_URL_ENV) {
        config.harvester.store_url = url;
    }
    let secret = |name: &str| env.get(name).filter(|value| !value.trim().is_empty());
    config.gateway.github_webhook_secret = secret(GITHUB_WEBHOOK_SECRET_ENV);
    config.gateway.gitlab_webhook_token = secret(GITLAB_WEBHOOK_TOKEN_ENV);
    if let Some(url) = env.get(GATEWAY_SEARCH_URL_ENV) {
        config.gateway.search_url = url;
    }
    if let Some(url) = env.get(GATEWAY_STORE_URL_ENV) {
        config.gateway.store_url = url;
    }
    if let Some(value) = env.get(ADMIN_LISTEN_ENV) {
        config.admin.listen = Some(value.trim().parse().map_err(|e| ConfigError::Environment {
            name: ADMIN_LISTEN_ENV.to_owned(),
            message: format!("{value:?}: {e}"),
        })?);
    }
    if let Some(value) = env.get(GATEWAY_LISTEN_ENV) {
        config.gateway.listen = value.trim().parse().map_err(|e| ConfigError::Environment {
            name: GATEWAY_LISTEN_ENV.to_owned(),
            message: format!("{value:?}: {e}"),
        })?;
    }
    if let Some(url) = env.get(SEARCH_STORE_URL_ENV) {
        config.search.store_url = url;
    }
    if let Some(url) = env.get(SEARCH_OPENSEARCH_URL_ENV) {
        config.search.opensearch_url = Some(url);
    }
    config.search.opensearch_username = env.get(SEARCH_OPENSEARCH_USERNAME_ENV);
    config.search.opensearch_password = env.get(SEARCH_OPENSEARCH_PASSWORD_ENV);
    if let Some(value) = env.get(SEARCH_LISTEN_ENV) {
        config.search.listen = value.trim().parse().map_err(|e| ConfigError::Environment {
            name: SEARCH_LISTEN_ENV.to_owned(),
            message: format!("{value:?}: {e}"),
        })?;
    }
    if let Some(value) = env.get(STORE_LISTEN_ENV) {
        config.store.listen = value.trim().parse().map_err(|e| ConfigError::Environment {
            name: STORE_LISTEN_ENV.to_owned(),
            message: format!("{value:?}: {e}"),
        })?;
    }
    if let Some(value) = env.get(MAX_FILE_BYTES_ENV) {
        config.limits.max_file_bytes =
            value.trim().parse().map_err(|e| ConfigError::Environment {
                name: MAX_FILE_BYTES_ENV.to_owned(),
                message: format!("{value:?}: {e}"),
            })?;
    }
    // Validate custom kinds now: a bad configuration is one clear message at start.
    config.registry()?;
    Ok(config)
}

fn apply_file(config: &mut Config, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let limits = &mut config.limits;
    limits.max_file_bytes = file.limits.max_file_bytes.unwrap_or(limits.max_file_bytes);
    limits.max_depth = file.limits.max_depth.unwrap_or(limits.max_depth);
    limits.max_alias_nodes = file
        .limits
        .max_alias_nodes
        .unwrap_or(limits.max_alias_nodes);
    limits.max_documents = file.limits.max_documents.unwrap_or(limits.max_documents);
    if let Some(url) = file.store.database_url {
        config.store.database_url = url;
    }
    if let Some(listen) = file.store.listen {
        config.store.listen = listen;
    }
    if let Some(seconds) = file.store.grace_period_secs {
        config.store.grace_period = std::time::Duration::from_secs(seconds);
    }
    if let Some(orphans) = file.store.orphans {
        config.store.orphans = match orphans {
            OrphansFile::Keep => cadastre_catalog_store::OrphanPolicy::Keep,
            OrphansFile::Remove => cadastre_catalog_store::OrphanPolicy::Remove,
        };
    }
    if let Some(url) = file.bus.nats_url {
        config.bus.nats_url = Some(url);
    }
    if let Some(namespace) = file.bus.namespace {
        config.bus.namespace = namespace;
    }
    let harvester = &mut config.harvester;
    let h = file.harvester;
    if let Some(hosts) = h.allowed_hosts {
        harvester.allowed_hosts = hosts;
    }
    harvester.allow_private_addresses = h
        .allow_private_addresses
        .unwrap_or(harvester.allow_private_addresses);
    harvester.allow_local_repositories = h
        .allow_local_repositories
        .unwrap_or(harvester.allow_local_repositories);
    if let Some(dir) = h.cache_dir {
        harvester.cache_dir = dir;
    }
    if let Some(seconds) = h.timeout_secs {
        harvester.timeout = std::time::Duration::from_secs(seconds);
    }
    if let Some(seconds) = h.refresh_interval_secs {
        harvester.refresh_interval = std::time::Duration::from_secs(seconds);
    }
    if let Some(url) = h.store_url {
        harvester.store_url = url;
    }
    harvester.credentials_env.extend(h.credentials_env);
    if let Some(ca_file) = h.ca_file {
        harvester.ca_file = Some(base_of(path).join(ca_file));
    }
    if let Some(workers) = h.workers {
        harvester.workers = workers.max(1);
    }
    if let Some(depth) = file.processor.max_fan_out_depth {
        config.processor.max_fan_out_depth = depth;
    }
    if let Some(workers) = file.processor.workers {
        config.processor.workers = workers.max(1);
    }
    config
        .processor
        .kind_rules
        .extend(
            file.processor
                .kind_rules
                .into_iter()
                .map(|rule| cadastre_processor::KindRule {
                    allow: rule.allow,
                    location_type: rule.location_type,
                    target_prefix: rule.target_prefix,
                }),
        );
    let gateway = &mut config.gateway;
    gateway.listen = file.gateway.listen.unwrap_or(gateway.listen);
    if let Some(url) = file.gateway.store_url {
        gateway.store_url = url;
    }
    if let Some(url) = file.gateway.search_url {
        gateway.search_url = url;
    }
    if let Some(types) = file.gateway.location_types {
        gateway.location_types = types;
    }
    gateway.anonymous_reads = file
        .gateway
        .anonymous_reads
        .unwrap_or(gateway.anonymous_reads);
    gateway.rate_limit_per_second = file
        .gateway
        .rate_limit_per_second
        .unwrap_or(gateway.rate_limit_per_second);
    gateway.rate_limit_burst = file
        .gateway
        .rate_limit_burst
        .unwrap_or(gateway.rate_limit_burst);
    if let Some(seconds) = file.gateway.request_timeout_secs {
        gateway.request_timeout = std::time::Duration::from_secs(seconds);
    }
    gateway.max_body_bytes = file
        .gateway
        .max_body_bytes
        .unwrap_or(gateway.max_body_bytes);
    gateway.entity_cache_entries = file
        .gateway
        .entity_cache_entries
        .unwrap_or(gateway.entity_cache_entries);
    for token in file.gateway.tokens {
        if cadastre_gateway::auth::Scope::parse(&token.scope).is_none() {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message: format!(
                    "gateway.tokens: scope {:?} is not read, write or admin",
                    token.scope
                ),
            });
        }
        gateway.tokens.push((token.scope, token.env));
    }
    if let Some(tools) = file.gateway.ui.tools {
        gateway.ui.tools = tools
            .into_iter()
            .map(|tool| {
                let built = cadastre_gateway::ui::Tool::new(
                    tool.name,
                    tool.annotation,
                    tool.url,
                    tool.kinds,
                )?;
                if tool.embed {
                    built.embedded()
                } else {
                    Ok(built)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|tools| cadastre_gateway::ui::check_tools(&tools).map(|()| tools))
            .map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message: format!("gateway.ui.tools: {message}"),
            })?;
    }
    if file.admin.listen.is_some() {
        config.admin.listen = file.admin.listen;
    }
    let search = &mut config.search;
    let f = file.search;
    search.listen = f.listen.unwrap_or(search.listen);
    if let Some(url) = f.store_url {
        search.store_url = url;
    }
    search.indexing = f.indexing.unwrap_or(search.indexing);
    if f.opensearch_url.is_some() {
        search.opensearch_url = f.opensearch_url;
    }
    if let Some(prefix) = f.index_prefix {
        search.index_prefix = prefix;
    }
    search.shards = f.shards.unwrap_or(search.shards);
    search.replicas = f.replicas.unwrap_or(search.replicas);
    if let Some(dir) = f.index_dir {
        search.index_dir = base_of(path).join(dir);
    }
    if let Some(seconds) = f.grace_period_secs {
        search.grace_period = std::time::Duration::from_secs(seconds);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for kind in file.kinds {
        let spec_schema = match (kind.spec_schema, kind.spec_schema_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoSchemas(kind.kind)),
            (inline, None) => inline,
            (None, Some(schema_path)) => Some(read_schema(&kind.kind, &base.join(schema_path))?),
        };
        config.kinds.push(CustomKind {
            kind: kind.kind,
            api_versions: kind.api_versions,
            spec_schema,
            relations: kind.relations,
        });
    }
    Ok(())
}

/// The folder a configuration file's relative paths are relative to.
fn base_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn read_schema(kind: &str, path: &Path) -> Result<serde_json::Value, ConfigError> {
    let error = |message: String| ConfigError::SchemaFile {
        kind: kind.to_owned(),
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, String>);
    impl Environment for FakeEnv {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn layers_defaults_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("schema.json"),
            r#"{"type": "object", "required": ["owner"]}"#,
        )
        .unwrap();
        let file = dir.path().join("cadastre.toml");
        std::fs::write(
            &file,
            r#"
[limits]
max_depth = 32
max_file_bytes = 1000

[store]
database_url = "postgres://cadastre@db/cadastre"
listen = "0.0.0.0:7010"

[harvester]
workers = 8

[processor]
workers = 0

[[kinds]]
kind = "AiResource"
api_versions = ["backstage.io/v1alpha1"]
spec_schema_file = "schema.json"
relations = [{ field = "owner", forward = "ownedBy", inverse = "ownerOf", default_kind = "group" }]
"#,
        )
        .unwrap();
        let env = FakeEnv(HashMap::from([
            (CONFIG_ENV, file.display().to_string()),
            (MAX_FILE_BYTES_ENV, "2048".to_owned()),
            (STORE_LISTEN_ENV, "127.0.0.1:9000".to_owned()),
        ]));
        let config = load(None, &env).unwrap();
        assert_eq!(config.limits.max_depth, 32);
        assert_eq!(config.limits.max_file_bytes, 2048, "environment beats file");
        assert_eq!(config.harvester.workers, 8);
        assert_eq!(config.processor.workers, 1, "at least one worker");
        assert!(
            Config::default().processor.workers >= 1,
            "one per core by default"
        );
        assert_eq!(
            config.limits.max_alias_nodes,
            Limits::default().max_alias_nodes
        );
        assert!(
            config
                .registry()
                .unwrap()
                .get("AiResource")
                .unwrap()
                .spec_schema
                .is_some()
        );
    }

    #[test]
    fn ui_tools_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cadastre.toml");
        let empty = FakeEnv(HashMap::new());
        // Nothing configured: the default tools.
        std::fs::write(&file, "[gateway]\nlisten = \"127.0.0.1:7100\"\n").unwrap();
        let config = load(Some(&file), &empty).unwrap();
        assert_eq!(
            config.gateway.ui.tools,
            cadastre_gateway::ui::default_tools()
        );
        std::fs::write(
            &file,
            r#"
[[gateway.ui.tools]]
name = "CI"
annotation = "github.com/project-slug"
url = "https://github.com/{value}/actions"
kinds = ["Component"]

[[gateway.ui.tools]]
name = "On call"
annotation = "pagerduty.com/service-id"
url = "https://acme.pagerduty.com/service-directory/{value}"
"#,
        )
        .unwrap();
        let tools = load(Some(&file), &empty).unwrap().gateway.ui.tools;
        assert_eq!(
            tools,
            vec![
                cadastre_gateway::ui::Tool::new(
                    "CI",
                    "github.com/project-slug",
                    "https://github.com/{value}/actions",
                    vec!["component".into()],
                )
                .unwrap(),
                cadastre_gateway::ui::Tool::new(
                    "On call",
                    "pagerduty.com/service-id",
                    "https://acme.pagerduty.com/service-directory/{value}",
                    Vec::new(),
                )
                .unwrap(),
            ]
        );
        // An embedded tool needs a fixed origin, and embedded tools distinct tab names.
        let embedded = "[[gateway.ui.tools]]\nname = \"Docs\"\nannotation = \"a\"\nembed = true\n";
        std::fs::write(
            &file,
            format!("{embedded}url = \"https://docs.example/{{value}}\"\n"),
        )
        .unwrap();
        let tools = load(Some(&file), &empty).unwrap().gateway.ui.tools;
        assert!(tools[0].embed, "{tools:?}");
        std::fs::write(
            &file,
            format!("{embedded}url = \"https://{{value}}.docs.example/\"\n"),
        )
        .unwrap();
        let error = load(Some(&file), &empty).unwrap_err().to_string();
        assert!(error.contains("fixed https://host/"), "{error}");
        std::fs::write(
            &file,
            format!(
                "{embedded}url = \"https://docs.example/{{value}}\"\n\
                 {embedded}url = \"https://other.example/{{value}}\"\n"
            ),
        )
        .unwrap();
        let error = load(Some(&file), &empty).unwrap_err().to_string();
        assert!(error.contains("distinct names"), "{error}");
        std::fs::write(&file, "[gateway.ui]\ntools = []\n").unwrap();
        assert!(
            load(Some(&file), &empty)
                .unwrap()
                .gateway
                .ui
                .tools
                .is_empty()
        );
        std::fs::write(
            &file,
            "[[gateway.ui.tools]]\nname = \"X\"\nannotation = \"a\"\nurl = \"javascript:{value}\"\n",
        )
        .unwrap();
        let error = load(Some(&file), &empty).unwrap_err().to_string();
        assert!(
            error.contains("gateway.ui.tools") && error.contains("not an absolute http(s) URL"),
            "{error}"
        );
        std::fs::write(
            &file,
            "[[gateway.ui.tools]]\nname = \"X\"\nannotation = \"a\"\nurl = \"https://x/{slug}\"\n",
        )
        .unwrap();
        let error = load(Some(&file), &empty).unwrap_err().to_string();
        assert!(error.contains("{slug}"), "{error}");
    }

    #[test]
    fn bad_configuration_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cadastre.toml");
        std::fs::write(
            &file,
            "[[kinds]]\nkind = \"Component\"\napi_versions = [\"v1\"]\n",
        )
        .unwrap();
        let error = load(Some(&file), &FakeEnv(HashMap::new())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "kind \"Component\" is built in and cannot be redefined"
        );
        std::fs::write(&file, "[limits]\nmax_dept = 3\n").unwrap();
        let error = load(Some(&file), &FakeEnv(HashMap::new())).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `max_dept`"),
            "{error}"
        );
    }
}
