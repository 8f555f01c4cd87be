//! The production backend: OpenSearch 2.x through the official client.
//!
//! Queries go to an alias (`<prefix>-entities`) that names one physical index; a rebuild
//! fills a new physical index and swaps the alias in one `_aliases` call, so searches see the
//! old index or the new one, never neither. Each index's change feed checkpoint is a document
//! in `<prefix>-search-state`, written after the bulk it covers: a crash in between replays
//! the bulk, which is idempotent. Documents carry the change sequence as an external version,
//! so a lagging writer cannot overwrite a newer state of an entity.

use std::time::Duration;

use async_trait::async_trait;
use opensearch::http::request::JsonBody;
use opensearch::http::response::Response;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesExistsParts, IndicesGetAliasParts,
    IndicesRefreshParts,
};
use opensearch::{BulkParts, CountParts, GetParts, IndexParts, OpenSearch, SearchParts};
use serde_json::{Value, json};

use crate::document::{compact, words};
use crate::plan::{Clause, MAX_GRAM, PREFIX_FIELDS, TextPlan, WORD_FIELDS, needs_typos};
use crate::query::{FACET_SIZE, Hit, SearchQuery, SearchResults, Suggestion, terms_buckets};
use crate::{IndexBatch, Result, SearchBackend, SearchDocument, SearchError};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The refresh interval of the indexes this backend creates. The indexer refreshes when it
/// has caught up, and every few seconds while it is behind, instead of OpenSearch every
/// second: fewer, larger segments to merge during a bulk load.
const BACKSTOP_REFRESH_INTERVAL: &str = "30s";

/// How the backend reaches its cluster and names its indexes.
#[derive(Debug, Clone)]
pub struct OpenSearchSettings {
    /// `http://host:9200` or `https://…`.
    pub url: String,
    /// Names start with this: the alias `<prefix>-entities`, indexes `<prefix>-entities-…`.
    pub index_prefix: String,
    pub shards: u32,
    pub replicas: u32,
    /// Basic authentication, if the cluster asks for it.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl OpenSearchSettings {
    pub fn new(url: &str) -> OpenSearchSettings {
        OpenSearchSettings {
            url: url.to_owned(),
            index_prefix: "cadastre".into(),
            shards: 1,
            replicas: 0,
            username: None,
            password: None,
        }
    }
}

#[derive(Debug)]
pub struct OpenSearchBackend {
    client: OpenSearch,
    settings: OpenSearchSettings,
    alias: String,
    state_index: String,
}

fn cluster_error(error: impl std::fmt::Display) -> SearchError {
    SearchError::Index(error.to_string())
}

/// The response body as JSON, or an error naming `what` with the cluster's answer.
async fn answer(
    what: &str,
    response: std::result::Result<Response, opensearch::Error>,
) -> Result<Value> {
    let response = response.map_err(|error| SearchError::Index(format!("{what}: {error}")))?;
    let status = response.status_code();
    let text = response
        .text()
        .await
        .map_err(|error| SearchError::Index(format!("{what}: {error}")))?;
    if !status.is_success() {
        return Err(SearchError::Index(format!("{what}: {status}: {text}")));
    }
    serde_json::from_str(&text).map_err(|error| SearchError::Index(format!("{what}: {error}")))
}

impl OpenSearchBackend {
    /// Connects, and creates the state index and a first serving index if there are none.
    pub async fn connect(settings: OpenSearchSettings) -> Result<OpenSearchBackend> {
        // HTTPS goes through rustls with the ring provider (no aws-lc build); a provider
        // installed before is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = opensearch::http::Url::parse(&settings.url)
            .map_err(|error| SearchError::InvalidArgument(format!("OpenSearch url: {error}")))?;
        let mut transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .disable_proxy()
            .timeout(REQUEST_TIMEOUT);
        if let (Some(username), Some(password)) = (&settings.username, &settings.password) {
            transport = transport.auth(opensearch::auth::Credentials::Basic(
                username.clone(),
                password.clone(),
            ));
        }
        let client = OpenSearch::new(transport.build().map_err(cluster_error)?);
        let backend = OpenSearchBackend {
            client,
            alias: format!("{}-entities", settings.index_prefix),
            state_index: format!("{}-search-state", settings.index_prefix),
            settings,
        };
        backend.ensure_state_index().await?;
        if backend.aliased().await?.is_none() {
            backend.create_first_index().await?;
        }
        Ok(backend)
    }

    /// The first serving index, under a fixed name with the alias in the same request: replicas
    /// starting together all ask for the same index, one creates it and the others find it
    /// there, so the alias never names two indexes.
    async fn create_first_index(&self) -> Result<()> {
        let index = format!("{}-0-first", self.alias);
        let mut body = self.index_body();
        body["aliases"] = json!({ self.alias.as_str(): {} });
        let created = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&index))
            .body(body)
            .send()
            .await;
        match answer("creating the first index", created).await {
            Ok(_) => {
                tracing::info!(alias = %self.alias, %index, "created the search index");
                Ok(())
            }
            Err(SearchError::Index(message)) if message.contains("already_exists") => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn exists(&self, index: &str) -> Result<bool> {
        let response = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[index]))
            .send()
            .await
            .map_err(cluster_error)?;
        Ok(response.status_code().is_success())
    }

    async fn ensure_state_index(&self) -> Result<()> {
        if self.exists(&self.state_index).await? {
            return Ok(());
        }
        let created = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&self.state_index))
            .body(json!({
                "settings": {"number_of_shards": 1, "number_of_replicas": self.settings.replicas},
                "mappings": {"dynamic": "strict", "properties": {"sequence": {"type": "long"}}}
            }))
            .send()
            .await;
        match answer("creating the state index", created).await {
            Ok(_) => Ok(()),
            // Another replica created it first.
            Err(SearchError::Index(message)) if message.contains("already_exists") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The index the alias names, if the alias exists.
    async fn aliased(&self) -> Result<Option<String>> {
        let response = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[&self.alias]))
            .send()
            .await
            .map_err(cluster_error)?;
        if response.status_code().as_u16() == 404 {
            return Ok(None);
        }
        let body = answer("reading the alias", Ok(response)).await?;
        let mut indexes: Vec<String> = body
            .as_object()
            .map(|indexes| indexes.keys().cloned().collect())
            .unwrap_or_default();
        if indexes.len() > 1 {
            // A switch swaps the alias in one request, so this is left from before; name it.
            tracing::warn!(alias = %self.alias, ?indexes, "the alias names several indexes; using the newest");
        }
        // Index names end in their creation time, so the greatest is the newest.
        indexes.sort();
        Ok(indexes.pop())
    }

    fn index_body(&self) -> Value {
        let keyword = json!({"type": "keyword"});
        let words = json!({"type": "text", "analyzer": "cadastre_words"});
        let prefixes =
            json!({"type": "text", "analyzer": "cadastre_prefixes", "search_analyzer": "keyword"});
        let mut properties = serde_json::Map::new();
        properties.insert("ref".into(), keyword.clone());
        properties.insert("doc".into(), json!({"type": "object", "enabled": false}));
        for field in crate::FacetField::ALL {
            properties.insert(field.name().into(), keyword.clone());
        }
        for (field, _) in WORD_FIELDS {
            properties.insert(field.into(), words.clone());
        }
        for (field, _) in PREFIX_FIELDS {
            properties.insert(field.into(), prefixes.clone());
        }
        properties.insert(
            "suggest".into(),
            json!({"type": "completion", "analyzer": "keyword", "max_input_length": 100}),
        );
        json!({
            "settings": {
                "number_of_shards": self.settings.shards,
                "number_of_replicas": self.settings.replicas,
                // The indexer refreshes after its writes (see `refreshes_on_request`); this
                // only bounds how long a write stays unseen if it stops before refreshing.
                "refresh_interval": BACKSTOP_REFRESH_INTERVAL,
                "analysis": {
                    "tokenizer": {
                        "cadastre_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}
                    },
                    "filter": {
                        "cadastre_edge": {"type": "edge_ngram", "min_gram": 1, "max_gram": MAX_GRAM}
                    },
                    "analyzer": {
                        "cadastre_words": {
                            "type": "custom", "tokenizer": "cadastre_words",
                            "filter": ["lowercase", "asciifolding"]
                        },
                        "cadastre_prefixes": {
                            "type": "custom", "tokenizer": "keyword",
                            "filter": ["lowercase", "asciifolding", "cadastre_edge"]
                        }
                    }
                }
            },
            "mappings": {"dynamic": "strict", "properties": properties}
        })
    }

    /// The indexed form of a document (see the tantivy backend for the same fields).
    fn source(doc: &SearchDocument) -> Value {
        let lower = |value: &str| (!value.is_empty()).then(|| value.to_lowercase());
        let name_prefix: Vec<String> = words(&doc.name)
            .into_iter()
            .chain([compact(&doc.name)])
            .collect();
        let extra: Vec<&str> = doc
            .link_titles
            .iter()
            .chain(doc.annotations.iter())
            .map(String::as_str)
            .collect();
        let mut suggest = vec![json!({"input": doc.suggest_name_keys(), "weight": 2})];
        let word_keys = doc.suggest_word_keys();
        if !word_keys.is_empty() {
            suggest.push(json!({"input": word_keys, "weight": 1}));
        }
        json!({
            "ref": doc.entity_ref,
            "doc": doc,
            "kind": lower(&doc.kind),
            "type": lower(&doc.entity_type),
            "owner": lower(&doc.owner),
            "lifecycle": lower(&doc.lifecycle),
            "tags": doc.tags,
            "namespace": lower(&doc.namespace),
            "system": lower(&doc.system),
            "name": doc.name_values(),
            "title": doc.title,
            "description": doc.description,
            "tags_text": doc.tags.join(" "),
            "relations_text": doc.relation_words().join(" "),
            "extra": extra.join(" "),
            "name_prefix": name_prefix,
            "title_prefix": words(&doc.title),
            "suggest": suggest,
        })
    }

    fn text_query(text: &str, typos: bool) -> Option<Value> {
        let plan = TextPlan::new(&words(text), typos);
        if plan.is_empty() {
            return None;
        }
        let clause = |clause: &Clause| {
            if clause.typos == 0 {
                json!({"term": {clause.field: {"value": clause.term, "boost": clause.boost}}})
            } else {
                json!({"fuzzy": {clause.field: {
                    "value": clause.term, "fuzziness": clause.typos, "transpositions": true,
                    "prefix_length": 0, "boost": clause.boost
                }}})
            }
        };
        let any =
            |clauses: Vec<Value>| json!({"bool": {"should": clauses, "minimum_should_match": 1}});
        let per_word: Vec<Value> = plan
            .per_word
            .iter()
            .map(|clauses| any(clauses.iter().map(clause).collect()))
            .collect();
        let mut alternatives = vec![json!({"bool": {"must": per_word}})];
        alternatives.extend(plan.wholes.iter().map(clause));
        Some(any(alternatives))
    }

    fn query(search: &SearchQuery, typos: bool) -> Value {
        let filters: Vec<Value> = search
            .filters
            .fields
            .iter()
            .map(|(field, values)| json!({"terms": {field.name(): values}}))
            .collect();
        let must =
            Self::text_query(&search.text, typos).unwrap_or_else(|| json!({"match_all": {}}));
        json!({"bool": {"must": must, "filter": filters}})
    }

    /// One search request, with or without typo clauses.
    async fn run(&self, search: &SearchQuery, typos: bool) -> Result<SearchResults> {
        let mut body = json!({
            "query": Self::query(search, typos),
            "from": search.offset,
            "size": search.limit,
            // Counted as far as the query's cap, as tantivy counts (see `SearchQuery::total_cap`).
            "track_total_hits": search.total_cap().map_or(json!(true), |cap| json!(cap)),
            "_source": ["doc"],
            "sort": ["_score", {"ref": "asc"}],
        });
        if !search.facets.is_empty() {
            let aggregations: serde_json::Map<String, Value> = search
                .facets
                .iter()
                .map(|facet| {
                    (
                        facet.name().to_owned(),
                        json!({"terms": {"field": facet.name(), "size": FACET_SIZE}}),
                    )
                })
                .collect();
            body["aggs"] = Value::Object(aggregations);
        }
        let result = self.search_alias(body, "searching").await?;
        let mut hits = Vec::new();
        for hit in result["hits"]["hits"].as_array().into_iter().flatten() {
            let score = hit["_score"].as_f64().unwrap_or(0.0) as f32;
            hits.push(Hit::found(
                document_of(&hit["_source"])?,
                score,
                search,
                typos,
            ));
        }
        let facets = search
            .facets
            .iter()
            .map(|facet| (*facet, terms_buckets(&result["aggregations"][facet.name()])))
            .collect();
        Ok(SearchResults {
            hits,
            total: result["hits"]["total"]["value"].as_u64().unwrap_or(0),
            total_is_lower_bound: result["hits"]["total"]["relation"] == "gte",
            facets,
        })
    }

    /// A `_search` on the serving alias.
    async fn search_alias(&self, body: Value, what: &str) -> Result<Value> {
        let response = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(body)
            .send()
            .await;
        answer(what, response).await
    }

    async fn write_checkpoint(&self, index: &str, sequence: u64) -> Result<()> {
        let written = self
            .client
            .index(IndexParts::IndexId(&self.state_index, index))
            .body(json!({ "sequence": sequence }))
            .send()
            .await;
        answer("writing the checkpoint", written).await.map(drop)
    }
}

fn document_of(source: &Value) -> Result<SearchDocument> {
    serde_json::from_value(source["doc"].clone())
        .map_err(|error| SearchError::Index(format!("a stored document is unreadable: {error}")))
}

#[async_trait]
impl SearchBackend for OpenSearchBackend {
    fn backend_name(&self) -> &'static str {
        "opensearch"
    }

    async fn serving(&self) -> Result<String> {
        self.aliased()
            .await?
            .ok_or_else(|| SearchError::Index(format!("the alias {} is missing", self.alias)))
    }

    async fn create_index(&self) -> Result<String> {
        let name = crate::new_index_name(&self.alias);
        let created = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&name))
            .body(self.index_body())
            .send()
            .await;
        answer("creating an index", created).await?;
        Ok(name)
    }

    async fn write(&self, index: &str, batch: IndexBatch) -> Result<()> {
        let mut body: Vec<JsonBody<Value>> =
            Vec::with_capacity(batch.removals.len() + 2 * batch.upserts.len());
        // The change sequence as an external version: an older state never replaces a newer.
        let action = |id: &str, sequence: u64| {
            let mut action = json!({"_index": index, "_id": id});
            if sequence > 0 {
                action["version"] = json!(sequence);
                action["version_type"] = json!("external_gte");
            }
            action
        };
        for entity_ref in &batch.removals {
            let sequence = batch.checkpoint.unwrap_or(0);
            body.push(json!({ "delete": action(entity_ref, sequence) }).into());
        }
        for doc in &batch.upserts {
            body.push(json!({ "index": action(&doc.entity_ref, doc.sequence) }).into());
            body.push(Self::source(doc).into());
        }
        if !body.is_empty() {
            let response = self.client.bulk(BulkParts::None).body(body).send().await;
            let result = answer("bulk write", response).await?;
            if result["errors"].as_bool() == Some(true) {
                let failures: Vec<String> = result["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|item| item.as_object()?.values().next().cloned())
                    .filter(|item| {
                        let status = item["status"].as_u64().unwrap_or(0);
                        // 404: deleting what is not there; 409: a newer version is indexed.
                        status >= 300 && status != 404 && status != 409
                    })
                    .map(|item| format!("{}: {}", item["_id"], item["error"]))
                    .collect();
                if !failures.is_empty() {
                    return Err(SearchError::Index(format!(
                        "bulk write refused {} documents, first: {}",
                        failures.len(),
                        failures[0]
                    )));
                }
            }
        }
        if let Some(sequence) = batch.checkpoint {
            self.write_checkpoint(index, sequence).await?;
        }
        Ok(())
    }

    async fn checkpoint(&self, index: &str) -> Result<u64> {
        let response = self
            .client
            .get(GetParts::IndexId(&self.state_index, index))
            .send()
            .await
            .map_err(cluster_error)?;
        if response.status_code().as_u16() == 404 {
            return Ok(0);
        }
        let body = answer("reading the checkpoint", Ok(response)).await?;
        Ok(body["_source"]["sequence"].as_u64().unwrap_or(0))
    }

    async fn count(&self, index: &str) -> Result<u64> {
        let response = self.client.count(CountParts::Index(&[index])).send().await;
        Ok(answer("counting", response).await?["count"]
            .as_u64()
            .unwrap_or(0))
    }

    fn refreshes_on_request(&self) -> bool {
        true
    }

    async fn refresh(&self, index: &str) -> Result<()> {
        let response = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[index]))
            .send()
            .await;
        answer("refreshing", response).await.map(drop)
    }

    async fn switch_to(&self, index: &str) -> Result<()> {
        let old = self.aliased().await?;
        let mut actions = vec![json!({"add": {"index": index, "alias": self.alias}})];
        if let Some(old) = &old {
            actions.insert(0, json!({"remove": {"index": old, "alias": self.alias}}));
        }
        let swapped = self
            .client
            .indices()
            .update_aliases()
            .body(json!({ "actions": actions }))
            .send()
            .await;
        answer("swapping the alias", swapped).await?;
        tracing::info!(from = ?old, to = %index, alias = %self.alias, "search index switched");
        if let Some(old) = old {
            self.drop_index(&old).await?;
        }
        Ok(())
    }

    async fn drop_index(&self, index: &str) -> Result<()> {
        if self.aliased().await?.as_deref() == Some(index) {
            return Err(SearchError::Index(format!("{index} is serving")));
        }
        let deleted = self
            .client
            .indices()
            .delete(IndicesDeleteParts::Index(&[index]))
            .send()
            .await;
        answer("deleting an index", deleted).await?;
        let state = self
            .client
            .delete(opensearch::DeleteParts::IndexId(&self.state_index, index))
            .send()
            .await
            .map_err(cluster_error)?;
        if !state.status_code().is_success() && state.status_code().as_u16() != 404 {
            return Err(SearchError::Index(format!(
                "deleting the checkpoint of {index}: {}",
                state.status_code()
            )));
        }
        Ok(())
    }

    async fn search(&self, search: &SearchQuery) -> Result<SearchResults> {
        let found = self.run(search, false).await?;
        if needs_typos(&words(&search.text), found.total, search.limit) {
            return self.run(search, true).await;
        }
        Ok(found)
    }

    async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let key = compact(prefix);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({
            "_source": ["doc"],
            "suggest": {"entities": {
                "prefix": key,
                "completion": {"field": "suggest", "size": limit, "skip_duplicates": true}
            }}
        });
        let result = self.search_alias(body, "suggesting").await?;
        let mut suggestions = Vec::new();
        for option in result["suggest"]["entities"][0]["options"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let doc = document_of(&option["_source"])?;
            if suggestions
                .iter()
                .any(|s: &Suggestion| s.entity_ref == doc.entity_ref)
            {
                continue;
            }
            suggestions.push(Suggestion::from(doc));
        }
        Ok(suggestions)
    }
}
