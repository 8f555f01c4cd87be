//! The embedded backend: tantivy indexes in a local folder.
//!
//! The folder holds one sub-folder per index and a `CURRENT` file naming the one that serves;
//! a rebuild fills a new sub-folder and switches by renaming a new `CURRENT` over the old
//! (atomic on POSIX), so a crash leaves either index serving, never a mix. The change feed
//! checkpoint is the commit payload: it becomes durable in the same commit as the documents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use serde_json::json;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, NgramTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{DocAddress, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, TERMINATED};
use tantivy::{TantivyDocument, Term};

use crate::document::{compact, typo_distance, words};
use crate::query::{
    FACET_SIZE, FacetField, Hit, SearchQuery, SearchResults, Suggestion, terms_buckets,
};
use crate::{IndexBatch, Result, SearchBackend, SearchDocument, SearchError};

/// The file naming the serving index.
const CURRENT: &str = "CURRENT";
const INDEX_PREFIX: &str = "index";
/// Words are cut into leading n-grams up to this length for search as you type.
const MAX_GRAM: usize = 20;
/// Tokenizer names, registered on every index opened.
const WORDS: &str = "cadastre_words";
const PREFIXES: &str = "cadastre_prefixes";
/// Indexing memory, shared by the writer's threads.
const WRITER_MEMORY: usize = 192 * 1024 * 1024;
const WRITER_THREADS: usize = 2;

/// Text fields searched per word, with their boosts: name and title above description.
const WORD_FIELDS: [(&str, f32); 6] = [
    ("name", 5.0),
    ("title", 4.0),
    ("tags_text", 3.0),
    ("relations_text", 2.0),
    ("description", 1.0),
    ("extra", 1.0),
];
const PREFIX_FIELDS: [(&str, f32); 2] = [("name_prefix", 3.0), ("title_prefix", 2.0)];
const TYPO_FIELDS: [(&str, f32); 2] = [("name", 2.0), ("title", 1.5)];

fn index_error(error: impl std::fmt::Display) -> SearchError {
    SearchError::Index(error.to_string())
}

/// The schema's fields, looked up once.
#[derive(Debug, Clone)]
struct Fields {
    entity_ref: Field,
    doc: Field,
    keywords: HashMap<FacetField, Field>,
    text: HashMap<&'static str, Field>,
    suggest_name: Field,
    suggest_word: Field,
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field("ref", STRING);
    builder.add_text_field("doc", STORED);
    for field in FacetField::ALL {
        builder.add_text_field(field.name(), STRING | FAST);
    }
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(WORDS)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    for (name, _) in WORD_FIELDS {
        builder.add_text_field(name, words.clone());
    }
    let prefixes = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(PREFIXES)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    for (name, _) in PREFIX_FIELDS {
        builder.add_text_field(name, prefixes.clone());
    }
    builder.add_text_field("suggest_name", STRING);
    builder.add_text_field("suggest_word", STRING);
    builder.build()
}

impl Fields {
    fn of(schema: &Schema) -> Result<Fields> {
        let field = |name: &str| schema.get_field(name).map_err(index_error);
        let mut keywords = HashMap::new();
        for facet in FacetField::ALL {
            keywords.insert(facet, field(facet.name())?);
        }
        let mut text = HashMap::new();
        for (name, _) in WORD_FIELDS.iter().chain(PREFIX_FIELDS.iter()) {
            text.insert(*name, field(name)?);
        }
        Ok(Fields {
            entity_ref: field("ref")?,
            doc: field("doc")?,
            keywords,
            text,
            suggest_name: field("suggest_name")?,
            suggest_word: field("suggest_word")?,
        })
    }

    fn document(&self, doc: &SearchDocument) -> Result<TantivyDocument> {
        let mut out = TantivyDocument::default();
        out.add_text(self.entity_ref, &doc.entity_ref);
        out.add_text(self.doc, serde_json::to_string(doc).map_err(index_error)?);
        let keyword = |out: &mut TantivyDocument, facet: FacetField, value: &str| {
            if !value.is_empty() {
                out.add_text(self.keywords[&facet], value.to_lowercase());
            }
        };
        keyword(&mut out, FacetField::Kind, &doc.kind);
        keyword(&mut out, FacetField::Type, &doc.entity_type);
        keyword(&mut out, FacetField::Owner, &doc.owner);
        keyword(&mut out, FacetField::Lifecycle, &doc.lifecycle);
        keyword(&mut out, FacetField::Namespace, &doc.namespace);
        keyword(&mut out, FacetField::System, &doc.system);
        for tag in &doc.tags {
            keyword(&mut out, FacetField::Tags, tag);
        }
        for value in doc.name_values() {
            out.add_text(self.text["name"], value);
        }
        out.add_text(self.text["title"], &doc.title);
        out.add_text(self.text["description"], &doc.description);
        out.add_text(self.text["tags_text"], doc.tags.join(" "));
        out.add_text(self.text["relations_text"], doc.relation_words().join(" "));
        let extra: Vec<&str> = doc
            .link_titles
            .iter()
            .chain(doc.annotations.iter())
            .map(String::as_str)
            .collect();
        out.add_text(self.text["extra"], extra.join(" "));
        // Each word on its own, so its leading n-grams are indexed; plus the compact name
        // (`paymentgate…` finds `payment-gateway`).
        for word in words(&doc.name) {
            out.add_text(self.text["name_prefix"], word);
        }
        out.add_text(self.text["name_prefix"], compact(&doc.name));
        for word in words(&doc.title) {
            out.add_text(self.text["title_prefix"], word);
        }
        for key in doc.suggest_name_keys() {
            out.add_text(self.suggest_name, key);
        }
        for key in doc.suggest_word_keys() {
            out.add_text(self.suggest_word, key);
        }
        Ok(out)
    }
}

fn register_tokenizers(index: &Index) -> Result<()> {
    let words = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build();
    let prefixes =
        TextAnalyzer::builder(NgramTokenizer::new(1, MAX_GRAM, true).map_err(index_error)?)
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build();
    index.tokenizers().register(WORDS, words);
    index.tokenizers().register(PREFIXES, prefixes);
    Ok(())
}

/// One open index: its reader and its single writer.
struct OpenIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

impl std::fmt::Debug for OpenIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenIndex").finish_non_exhaustive()
    }
}

impl OpenIndex {
    fn open(path: &Path, create: bool) -> Result<OpenIndex> {
        let index = if create {
            std::fs::create_dir_all(path)?;
            Index::create_in_dir(path, schema()).map_err(index_error)?
        } else {
            Index::open_in_dir(path).map_err(index_error)?
        };
        register_tokenizers(&index)?;
        let fields = Fields::of(&index.schema())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error)?;
        let writer = index
            .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)
            .map_err(index_error)?;
        Ok(OpenIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    fn write(&self, batch: IndexBatch) -> Result<()> {
        let mut writer = self.writer.lock().map_err(index_error)?;
        for entity_ref in batch
            .removals
            .iter()
            .chain(batch.upserts.iter().map(|doc| &doc.entity_ref))
        {
            writer.delete_term(Term::from_field_text(self.fields.entity_ref, entity_ref));
        }
        for doc in &batch.upserts {
            writer
                .add_document(self.fields.document(doc)?)
                .map_err(index_error)?;
        }
        if let Some(sequence) = batch.checkpoint {
            let mut commit = writer.prepare_commit().map_err(index_error)?;
            commit.set_payload(&json!({ "sequence": sequence }).to_string());
            commit.commit().map_err(index_error)?;
            drop(writer);
            self.reader.reload().map_err(index_error)?;
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<u64> {
        let metas = self.index.load_metas().map_err(index_error)?;
        Ok(metas
            .payload
            .and_then(|payload| serde_json::from_str::<serde_json::Value>(&payload).ok())
            .and_then(|payload| payload.get("sequence").and_then(serde_json::Value::as_u64))
            .unwrap_or(0))
    }

    fn stored(&self, searcher: &tantivy::Searcher, address: DocAddress) -> Result<SearchDocument> {
        let doc: TantivyDocument = searcher.doc(address).map_err(index_error)?;
        let text = doc
            .get_first(self.fields.doc)
            .and_then(|value| value.as_str())
            .ok_or_else(|| SearchError::Index("a document lost its stored body".into()))?;
        serde_json::from_str(text).map_err(index_error)
    }

    fn text_query(&self, text: &str) -> Option<Box<dyn Query>> {
        let query_words = words(text);
        if query_words.is_empty() {
            return None;
        }
        let term = |field: &str, word: &str| Term::from_field_text(self.fields.text[field], word);
        let boosted = |query: Box<dyn Query>, boost: f32| -> (Occur, Box<dyn Query>) {
            (Occur::Should, Box::new(BoostQuery::new(query, boost)))
        };
        let per_word: Vec<(Occur, Box<dyn Query>)> = query_words
            .iter()
            .map(|word| {
                let mut alternatives = Vec::new();
                for (field, boost) in WORD_FIELDS {
                    alternatives.push(boosted(
                        Box::new(TermQuery::new(
                            term(field, word),
                            IndexRecordOption::WithFreqs,
                        )),
                        boost,
                    ));
                }
                if word.chars().count() <= MAX_GRAM {
                    for (field, boost) in PREFIX_FIELDS {
                        alternatives.push(boosted(
                            Box::new(TermQuery::new(
                                term(field, word),
                                IndexRecordOption::WithFreqs,
                            )),
                            boost,
                        ));
                    }
                }
                let distance = typo_distance(word);
                if distance > 0 {
                    for (field, boost) in TYPO_FIELDS {
                        alternatives.push(boosted(
                            Box::new(FuzzyTermQuery::new(term(field, word), distance, true)),
                            boost,
                        ));
                    }
                }
                (
                    Occur::Must,
                    Box::new(BooleanQuery::new(alternatives)) as Box<dyn Query>,
                )
            })
            .collect();
        let all_words: Box<dyn Query> = Box::new(BooleanQuery::new(per_word));
        if query_words.len() == 1 {
            return Some(all_words);
        }
        // `payment gate` also finds `paymentgateway` whole.
        let joined = query_words.concat();
        let mut alternatives = vec![(Occur::Should, all_words)];
        alternatives.push(boosted(
            Box::new(TermQuery::new(
                term("name", &joined),
                IndexRecordOption::WithFreqs,
            )),
            5.0,
        ));
        if joined.chars().count() <= MAX_GRAM {
            alternatives.push(boosted(
                Box::new(TermQuery::new(
                    term("name_prefix", &joined),
                    IndexRecordOption::WithFreqs,
                )),
                3.0,
            ));
        }
        Some(Box::new(BooleanQuery::new(alternatives)))
    }

    fn query(&self, search: &SearchQuery) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(text) = self.text_query(&search.text) {
            clauses.push((Occur::Must, text));
        }
        for (field, values) in &search.filters.fields {
            let any: Vec<(Occur, Box<dyn Query>)> = values
                .iter()
                .map(|value| {
                    let term = Term::from_field_text(self.fields.keywords[field], value);
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>,
                    )
                })
                .collect();
            // A filter narrows without scoring.
            let filter = ConstScoreQuery::new(Box::new(BooleanQuery::new(any)), 0.0);
            clauses.push((Occur::Must, Box::new(filter)));
        }
        if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        }
    }

    fn search(&self, search: &SearchQuery) -> Result<SearchResults> {
        let searcher = self.reader.searcher();
        let query = self.query(search);
        let top = TopDocs::with_limit(search.limit)
            .and_offset(search.offset)
            .order_by_score();
        let (top, total, facets) = if search.facets.is_empty() {
            let (top, total) = searcher
                .search(&*query, &(top, Count))
                .map_err(index_error)?;
            (top, total, Vec::new())
        } else {
            let mut aggregations = serde_json::Map::new();
            for facet in &search.facets {
                aggregations.insert(
                    facet.name().to_owned(),
                    json!({"terms": {"field": facet.name(), "size": FACET_SIZE}}),
                );
            }
            let aggregations: Aggregations =
                serde_json::from_value(serde_json::Value::Object(aggregations))
                    .map_err(index_error)?;
            let collector =
                AggregationCollector::from_aggs(aggregations, AggContextParams::default());
            let (top, total, results) = searcher
                .search(&*query, &(top, Count, collector))
                .map_err(index_error)?;
            let results = serde_json::to_value(results).map_err(index_error)?;
            let facets = search
                .facets
                .iter()
                .map(|facet| (*facet, terms_buckets(&results[facet.name()])))
                .collect();
            (top, total, facets)
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            hits.push(Hit::found(self.stored(&searcher, address)?, score, search));
        }
        Ok(SearchResults {
            hits,
            total: total as u64,
            facets,
        })
    }

    fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let key = compact(prefix);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let mut found: Vec<DocAddress> = Vec::new();
        for field in [self.fields.suggest_name, self.fields.suggest_word] {
            // Keys in order across segments: the shortest completion of the prefix first.
            let mut candidates: Vec<(Vec<u8>, DocAddress)> = Vec::new();
            for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
                let inverted = segment.inverted_index(field).map_err(index_error)?;
                let mut terms = inverted
                    .terms()
                    .range()
                    .ge(key.as_bytes())
                    .into_stream()
                    .map_err(index_error)?;
                let mut taken = 0;
                while taken < limit && terms.advance() {
                    if !terms.key().starts_with(key.as_bytes()) {
                        break;
                    }
                    let mut postings = inverted
                        .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                        .map_err(index_error)?;
                    let mut doc = postings.doc();
                    while doc != TERMINATED && taken < limit {
                        if !segment.is_deleted(doc) {
                            candidates
                                .push((terms.key().to_vec(), DocAddress::new(ordinal as u32, doc)));
                            taken += 1;
                        }
                        doc = postings.advance();
                    }
                }
            }
            candidates.sort();
            for (_, address) in candidates {
                if found.len() == limit {
                    break;
                }
                if !found.contains(&address) {
                    found.push(address);
                }
            }
        }
        found
            .into_iter()
            .map(|address| Ok(Suggestion::from(self.stored(&searcher, address)?)))
            .collect()
    }
}

/// Indexes in a folder; see the module documentation.
#[derive(Debug)]
pub struct TantivyBackend {
    root: PathBuf,
    state: RwLock<State>,
}

#[derive(Debug)]
struct State {
    serving: String,
    open: HashMap<String, Arc<OpenIndex>>,
}

impl TantivyBackend {
    /// Opens the indexes under `root`, creating the folder and a first empty index if needed.
    /// Folders of rebuilds that never finished are deleted.
    pub fn open(root: impl Into<PathBuf>) -> Result<TantivyBackend> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let serving = match std::fs::read_to_string(root.join(CURRENT)) {
            Ok(name) => name.trim().to_owned(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let name = crate::new_index_name(INDEX_PREFIX);
                OpenIndex::open(&root.join(&name), true)?;
                write_current(&root, &name)?;
                name
            }
            Err(error) => return Err(error.into()),
        };
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && name != serving && name.starts_with(INDEX_PREFIX) {
                tracing::info!(index = %name, "deleting an index a rebuild left unfinished");
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        let index = Arc::new(OpenIndex::open(&root.join(&serving), false)?);
        tracing::info!(root = %root.display(), index = %serving, "tantivy index open");
        Ok(TantivyBackend {
            root,
            state: RwLock::new(State {
                open: HashMap::from([(serving.clone(), index)]),
                serving,
            }),
        })
    }

    fn index(&self, name: &str) -> Result<Arc<OpenIndex>> {
        let state = self.state.read().map_err(index_error)?;
        state
            .open
            .get(name)
            .cloned()
            .ok_or_else(|| SearchError::Index(format!("no index {name:?}")))
    }

    fn serving_index(&self) -> Result<Arc<OpenIndex>> {
        let state = self.state.read().map_err(index_error)?;
        Ok(state.open[&state.serving].clone())
    }
}

fn write_current(root: &Path, name: &str) -> Result<()> {
    let temporary = root.join(format!("{CURRENT}.new"));
    std::fs::write(&temporary, name)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, root.join(CURRENT))?;
    std::fs::File::open(root)?.sync_all()?;
    Ok(())
}

/// Runs blocking index work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| SearchError::Index(format!("index task failed: {error}")))?
}

#[async_trait]
impl SearchBackend for TantivyBackend {
    fn backend_name(&self) -> &'static str {
        "tantivy"
    }

    async fn serving(&self) -> Result<String> {
        Ok(self.state.read().map_err(index_error)?.serving.clone())
    }

    async fn create_index(&self) -> Result<String> {
        let name = crate::new_index_name(INDEX_PREFIX);
        let path = self.root.join(&name);
        let index = blocking(move || OpenIndex::open(&path, true)).await?;
        self.state
            .write()
            .map_err(index_error)?
            .open
            .insert(name.clone(), Arc::new(index));
        Ok(name)
    }

    async fn write(&self, index: &str, batch: IndexBatch) -> Result<()> {
        let index = self.index(index)?;
        blocking(move || index.write(batch)).await
    }

    async fn checkpoint(&self, index: &str) -> Result<u64> {
        let index = self.index(index)?;
        blocking(move || index.checkpoint()).await
    }

    async fn count(&self, index: &str) -> Result<u64> {
        Ok(self.index(index)?.reader.searcher().num_docs())
    }

    async fn refresh(&self, index: &str) -> Result<()> {
        self.index(index)?.reader.reload().map_err(index_error)
    }

    async fn switch_to(&self, index: &str) -> Result<()> {
        let root = self.root.clone();
        let name = index.to_owned();
        // The new index must be known (and committed) before it is named in CURRENT.
        self.index(index)?;
        blocking(move || write_current(&root, &name)).await?;
        let old = {
            let mut state = self.state.write().map_err(index_error)?;
            let old = std::mem::replace(&mut state.serving, index.to_owned());
            state.open.remove(&old);
            old
        };
        tracing::info!(from = %old, to = %index, "search index switched");
        let path = self.root.join(&old);
        // Searches still holding the old index keep their open files (POSIX unlink).
        blocking(move || Ok(std::fs::remove_dir_all(path)?)).await
    }

    async fn drop_index(&self, index: &str) -> Result<()> {
        if self.serving().await? == index {
            return Err(SearchError::Index(format!("{index} is serving")));
        }
        self.state.write().map_err(index_error)?.open.remove(index);
        let path = self.root.join(index);
        blocking(move || Ok(std::fs::remove_dir_all(path)?)).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        let index = self.serving_index()?;
        let query = query.clone();
        blocking(move || index.search(&query)).await
    }

    async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let index = self.serving_index()?;
        let prefix = prefix.to_owned();
        blocking(move || index.suggest(&prefix, limit)).await
    }
}
