//! The embedded backend: tantivy indexes in a local folder.
//!
//! The folder holds one sub-folder per index and a `CURRENT` file naming the one that serves;
//! a rebuild fills a new sub-folder and switches by renaming a new `CURRENT` over the old
//! (atomic on POSIX), so a crash leaves either index serving, never a mix. The change feed
//! checkpoint is the commit payload: it becomes durable in the same commit as the documents.
//!
//! A large load leaves many segments (tantivy's merge policy leaves up to seven of each size;
//! a cold million left 18), and every query pays for each: its words looked up, weighed and
//! scored per segment. After one, [`SearchBackend::compact`] merges them into one in the
//! background.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use serde_json::json;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, FuzzyTermQuery, Occur,
    Query, TermQuery,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, NgramTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{DocAddress, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, TERMINATED};
use tantivy::{TantivyDocument, Term};

use crate::document::{compact, words};
use crate::plan::{Clause, MAX_GRAM, PREFIX_FIELDS, TextPlan, WORD_FIELDS, needs_typos};
use crate::query::{
    FACET_SIZE, FacetField, Hit, SearchQuery, SearchResults, Suggestion, terms_buckets,
};
use crate::{IndexBatch, Result, SearchBackend, SearchDocument, SearchError};

/// The file naming the serving index.
const CURRENT: &str = "CURRENT";
const INDEX_PREFIX: &str = "index";
/// Tokenizer names, registered on every index opened.
const WORDS: &str = "cadastre_words";
const PREFIXES: &str = "cadastre_prefixes";
/// Indexing memory, shared by the writer's threads.
const WRITER_MEMORY: usize = 192 * 1024 * 1024;
/// One indexing thread: each thread writes a segment of its own per commit, so two made
/// twice the segments for tantivy to merge. A 100,000-entity `cadastre up` import took
/// 55 s with one and 64 s with two, 8 s less CPU (ARCHITECTURE.md, decisions).
const WRITER_THREADS: usize = 1;
/// A compaction merges every segment into one unless the largest already holds this share of
/// the documents: after a push or a few, tantivy's own merges keep the small segments few,
/// and merging them into the large one would rewrite the whole index each time.
const COMPACT_BELOW_SHARE: f64 = 0.9;
/// A compaction that fails (a merge of tantivy's own, begun before it, took some of its
/// segments) tries again this often, this many times.
const COMPACT_RETRY: std::time::Duration = std::time::Duration::from_secs(5);
const COMPACT_ATTEMPTS: u32 = 24;

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

/// One open index: its reader and its single writer (taken out when the index is closed).
struct OpenIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    /// A compaction is running: another would merge the same segments for nothing.
    compacting: std::sync::atomic::AtomicBool,
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
            writer: Mutex::new(Some(writer)),
            fields,
            compacting: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Stops the writer and waits for its merge threads, so nothing writes into the folder
    /// after this returns and it can be deleted.
    fn close(&self) -> Result<()> {
        let writer = self.writer.lock().map_err(index_error)?.take();
        if let Some(writer) = writer {
            writer.wait_merging_threads().map_err(index_error)?;
        }
        Ok(())
    }

    fn write(&self, batch: IndexBatch) -> Result<()> {
        let mut guard = self.writer.lock().map_err(index_error)?;
        let writer = guard
            .as_mut()
            .ok_or_else(|| SearchError::Index("the index was closed".into()))?;
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
            drop(guard);
            self.reader.reload().map_err(index_error)?;
        }
        Ok(())
    }

    /// Merges every segment into one, unless there is one or the largest already holds
    /// [`COMPACT_BELOW_SHARE`] of the documents, and shows the result to searches. Waits for
    /// the merge; answers whether it merged. Writes go on meanwhile (the merged segment
    /// takes the deletions made while it was written).
    fn compact(&self) -> Result<bool> {
        let metas = self.index.searchable_segment_metas().map_err(index_error)?;
        let documents: u64 = metas.iter().map(|meta| u64::from(meta.num_docs())).sum();
        let largest = metas.iter().map(|meta| meta.num_docs()).max().unwrap_or(0);
        if metas.len() < 2 || f64::from(largest) >= COMPACT_BELOW_SHARE * documents as f64 {
            return Ok(false);
        }
        let segments: Vec<tantivy::index::SegmentId> = metas.iter().map(|meta| meta.id()).collect();
        // A segment's files are kept while any of its metas lives.
        drop(metas);
        let merging = {
            let mut guard = self.writer.lock().map_err(index_error)?;
            let Some(writer) = guard.as_mut() else {
                // Closed: the index is being replaced or deleted.
                return Ok(false);
            };
            // Tantivy's own merges leave these segments alone while this one runs; one that
            // began before it and ends first makes it fail (and try again).
            writer.merge(&segments)
        };
        let started = std::time::Instant::now();
        merging.wait().map_err(index_error)?;
        self.reader.reload().map_err(index_error)?;
        // The merged segments' files go now, not at the next commit (they doubled the
        // index's disk until then).
        let collecting = self
            .writer
            .lock()
            .map_err(index_error)?
            .as_ref()
            .map(IndexWriter::garbage_collect_files);
        if let Some(collecting) = collecting {
            collecting.wait().map_err(index_error)?;
        }
        tracing::info!(
            segments = segments.len(),
            documents,
            seconds = started.elapsed().as_secs_f64(),
            "search index compacted into one segment"
        );
        Ok(true)
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

    /// The tantivy queries of a text plan.
    fn plan(&self, query_words: &[String], typos: bool) -> Plan {
        let plan = TextPlan::new(query_words, typos);
        let query = |clause: &Clause| -> Box<dyn Query> {
            let term = Term::from_field_text(self.fields.text[clause.field], &clause.term);
            let inner: Box<dyn Query> = if clause.typos == 0 {
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
            } else {
                Box::new(FuzzyTermQuery::new(term, clause.typos, true))
            };
            Box::new(BoostQuery::new(inner, clause.boost))
        };
        Plan {
            per_word: plan
                .per_word
                .iter()
                .map(|clauses| clauses.iter().map(query).collect())
                .collect(),
            wholes: plan.wholes.iter().map(query).collect(),
        }
    }

    /// The query for `plan` and the filters, as one tantivy query (for facet counts).
    fn query(&self, plan: &Plan, search: &SearchQuery) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !plan.per_word.is_empty() {
            let all_words: Vec<(Occur, Box<dyn Query>)> = plan
                .per_word
                .iter()
                .map(|alternatives| (Occur::Must, should(alternatives)))
                .collect();
            let mut text = vec![(
                Occur::Should,
                Box::new(BooleanQuery::new(all_words)) as Box<dyn Query>,
            )];
            text.extend(plan.wholes.iter().map(|q| (Occur::Should, q.box_clone())));
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(text))));
        }
        for (field, values) in &search.filters.fields {
            let any = values
                .iter()
                .map(|value| self.keyword_query(*field, value))
                .collect::<Vec<_>>();
            // A filter narrows without scoring.
            let filter = ConstScoreQuery::new(should(&any), 0.0);
            clauses.push((Occur::Must, Box::new(filter)));
        }
        if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        }
    }

    fn keyword_query(&self, field: FacetField, value: &str) -> Box<dyn Query> {
        let term = Term::from_field_text(self.fields.keywords[&field], value);
        Box::new(TermQuery::new(term, IndexRecordOption::Basic))
    }

    fn search(&self, search: &SearchQuery) -> Result<SearchResults> {
        let searcher = self.reader.searcher();
        let query_words = words(&search.text);
        let mut plan = self.plan(&query_words, false);
        let mut found = self.top(&searcher, &plan, search)?;
        let typos = needs_typos(&query_words, found.total, search.limit);
        if typos {
            plan = self.plan(&query_words, true);
            found = self.top(&searcher, &plan, search)?;
        }
        let facets = if search.facets.is_empty() {
            Vec::new()
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
            let results = searcher
                .search(&*self.query(&plan, search), &collector)
                .map_err(index_error)?;
            let results = serde_json::to_value(results).map_err(index_error)?;
            search
                .facets
                .iter()
                .map(|facet| (*facet, terms_buckets(&results[facet.name()])))
                .collect()
        };
        let mut hits = Vec::with_capacity(found.top.len());
        for (score, address) in found.top {
            hits.push(Hit::found(
                self.stored(&searcher, address)?,
                score,
                search,
                typos,
            ));
        }
        Ok(SearchResults {
            hits,
            total: found.total,
            total_is_lower_bound: found.total_is_lower_bound,
            facets,
        })
    }

    /// The page of best hits and the total. Matches (every word, the filters, not deleted)
    /// are counted by walking the query's documents without scoring, up to the query's total
    /// cap. The best are scored through one flat disjunction of every term clause, which
    /// tantivy runs with block-max WAND, skipping blocks that cannot reach the page; a
    /// candidate enters the page only if the matching query, walked alongside in document
    /// order, holds it too. Neither step visits every match of a word most of the catalog
    /// holds.
    fn top(
        &self,
        searcher: &tantivy::Searcher,
        plan: &Plan,
        search: &SearchQuery,
    ) -> Result<Found> {
        let wanted = search.offset + search.limit;
        let cap = search.total_cap();
        let matching = self
            .query(plan, search)
            .weight(EnableScoring::disabled_from_searcher(searcher))
            .map_err(index_error)?;
        let scoring: Vec<(Occur, Box<dyn Query>)> = plan
            .per_word
            .iter()
            .flatten()
            .chain(plan.wholes.iter())
            .map(|query| (Occur::Should, query.box_clone()))
            .collect();
        let scoring = BooleanQuery::new(scoring)
            .weight(EnableScoring::enabled_from_searcher(searcher))
            .map_err(index_error)?;
        let no_text = plan.per_word.is_empty();
        let every_candidate_matches =
            plan.per_word.len() == 1 && plan.wholes.is_empty() && search.filters.fields.is_empty();
        let mut best = BestHits::new(wanted);
        let mut counted = 0u64;
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            let ordinal = ordinal as u32;
            let alive = segment.alive_bitset();
            let is_alive = |doc: u32| alive.is_none_or(|alive| alive.is_alive(doc));
            if cap.is_none() {
                // Everything: the segment knows how many documents it holds.
                counted += u64::from(segment.num_docs());
            }
            let counting = |counted: u64| cap.is_some_and(|cap| counted <= cap);
            // Without text every match scores the same: the first ones in index order.
            let first_ones = |best: &BestHits| no_text && !best.is_full();
            if counting(counted) || first_ones(&best) {
                let mut docs = matching.scorer(segment, 1.0).map_err(index_error)?;
                let mut doc = docs.doc();
                while doc != TERMINATED && (counting(counted) || first_ones(&best)) {
                    if is_alive(doc) {
                        if counting(counted) {
                            counted += 1;
                        }
                        if first_ones(&best) {
                            best.offer(1.0, DocAddress::new(ordinal, doc));
                        }
                    }
                    doc = docs.advance();
                }
            }
            if no_text {
                continue;
            }
            // One word and nothing else: the disjunction's documents are exactly the matches.
            let mut members = if every_candidate_matches {
                None
            } else {
                Some(matching.scorer(segment, 1.0).map_err(index_error)?)
            };
            scoring
                .for_each_pruning(best.threshold(), segment, &mut |doc, score| {
                    let member = members.as_mut().is_none_or(|docs| holds(&mut **docs, doc));
                    if is_alive(doc) && member {
                        best.offer(score, DocAddress::new(ordinal, doc));
                    }
                    best.threshold()
                })
                .map_err(index_error)?;
        }
        let (total, total_is_lower_bound) = match cap {
            Some(cap) if counted > cap => (cap, true),
            _ => (counted, false),
        };
        Ok(Found {
            top: best.into_page(search.offset),
            total,
            total_is_lower_bound,
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

/// How a query's words match (see [`OpenIndex::plan`]).
struct Plan {
    per_word: Vec<Vec<Box<dyn Query>>>,
    wholes: Vec<Box<dyn Query>>,
}

fn should(queries: &[Box<dyn Query>]) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        queries
            .iter()
            .map(|q| (Occur::Should, q.box_clone()))
            .collect(),
    ))
}

struct Found {
    top: Vec<(f32, DocAddress)>,
    total: u64,
    total_is_lower_bound: bool,
}

/// Whether `docs`, walked forward only, holds `doc`: calls must come in document order.
fn holds(docs: &mut dyn DocSet, doc: u32) -> bool {
    if docs.doc() < doc {
        docs.seek(doc);
    }
    docs.doc() == doc
}

/// The best `wanted` hits seen, by score, ties to the earlier document.
struct BestHits {
    wanted: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Ranked>>,
}

#[derive(PartialEq)]
struct Ranked(f32, std::cmp::Reverse<DocAddress>);

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .total_cmp(&other.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

impl BestHits {
    fn new(wanted: usize) -> BestHits {
        BestHits {
            wanted,
            heap: std::collections::BinaryHeap::with_capacity(wanted + 1),
        }
    }

    fn offer(&mut self, score: f32, address: DocAddress) {
        self.heap
            .push(std::cmp::Reverse(Ranked(score, std::cmp::Reverse(address))));
        if self.heap.len() > self.wanted {
            self.heap.pop();
        }
    }

    fn is_full(&self) -> bool {
        self.heap.len() >= self.wanted
    }

    /// Scores at or below this cannot enter any more.
    fn threshold(&self) -> f32 {
        if self.heap.len() < self.wanted {
            f32::MIN
        } else {
            self.heap.peek().map_or(f32::MIN, |worst| worst.0.0)
        }
    }

    /// The hits after the first `offset`, best first.
    fn into_page(self, offset: usize) -> Vec<(f32, DocAddress)> {
        let mut ranked: Vec<Ranked> = self.heap.into_iter().map(|entry| entry.0).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        ranked
            .into_iter()
            .skip(offset)
            .map(|Ranked(score, address)| (score, address.0))
            .collect()
    }
}

/// Indexes in a folder; see the module documentation.
#[derive(Debug)]
pub struct TantivyBackend {
    root: PathBuf,
    state: RwLock<State>,
    /// Queries (searches and suggestions) running at once: one per core and one more, the
    /// others waiting in arrival order, as OpenSearch's fixed `search` thread pool and its
    /// queue do. A query is CPU work on pages in memory. With every query of 64 clients on a
    /// thread of its own, the kernel shared the cores among all of them: a query's latency
    /// followed its own cost times the crowd, and words held by 65% of a million entities
    /// made the p99 twice the p50. Waiting in turn, a query's latency is the work queued
    /// ahead of it, much the same for every query. One per core alone left a core idle
    /// between one query and the next (11% fewer queries answered); see the README.
    queries: Arc<tokio::sync::Semaphore>,
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
        let (serving, create) = match std::fs::read_to_string(root.join(CURRENT)) {
            Ok(name) => (name.trim().to_owned(), false),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                (crate::new_index_name(INDEX_PREFIX), true)
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
        // Opened once: a writer dropped right after creating the index could still hold
        // the folder's lock when a second one asked for it.
        let index = Arc::new(OpenIndex::open(&root.join(&serving), create)?);
        if create {
            write_current(&root, &serving)?;
        }
        tracing::info!(root = %root.display(), index = %serving, "tantivy index open");
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Ok(TantivyBackend {
            root,
            state: RwLock::new(State {
                open: HashMap::from([(serving.clone(), index)]),
                serving,
            }),
            queries: Arc::new(tokio::sync::Semaphore::new(cores + 1)),
        })
    }

    /// Runs a query on the serving index once it is its turn (see `queries`).
    async fn query<T: Send + 'static>(
        &self,
        run: impl FnOnce(&OpenIndex) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let turn = Arc::clone(&self.queries)
            .acquire_owned()
            .await
            .map_err(|error| SearchError::Index(format!("query turns closed: {error}")))?;
        let index = self.serving_index()?;
        blocking(move || {
            let _turn = turn;
            run(&index)
        })
        .await
    }

    fn index(&self, name: &str) -> Result<Arc<OpenIndex>> {
        let state = self.state.read().map_err(index_error)?;
        state
            .open
            .get(name)
            .cloned()
            .ok_or_else(|| SearchError::Index(format!("no index {name:?}")))
    }

    /// Deletes an index's folder once its writer (if it was open) has stopped: a merge still
    /// running would otherwise add files while the folder is being removed.
    async fn delete_folder(&self, name: &str, open: Option<Arc<OpenIndex>>) -> Result<()> {
        let path = self.root.join(name);
        blocking(move || {
            if let Some(open) = open {
                open.close()?;
            }
            Ok(std::fs::remove_dir_all(path)?)
        })
        .await
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
        let (old, closing) = {
            let mut state = self.state.write().map_err(index_error)?;
            let old = std::mem::replace(&mut state.serving, index.to_owned());
            let closing = state.open.remove(&old);
            (old, closing)
        };
        tracing::info!(from = %old, to = %index, "search index switched");
        // Searches still holding the old index keep their open files (POSIX unlink).
        self.delete_folder(&old, closing).await
    }

    async fn drop_index(&self, index: &str) -> Result<()> {
        if self.serving().await? == index {
            return Err(SearchError::Index(format!("{index} is serving")));
        }
        let closing = self.state.write().map_err(index_error)?.open.remove(index);
        self.delete_folder(index, closing).await
    }

    async fn compact(&self, index: &str) -> Result<()> {
        let index = self.index(index)?;
        if index
            .compacting
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        // In the background, on the caller's runtime (`cadastre up`'s lower-priority one),
        // trying again while tantivy is merging some of the segments itself.
        tokio::spawn(async move {
            let mut attempt = 1;
            loop {
                let compacting = Arc::clone(&index);
                match blocking(move || compacting.compact()).await {
                    Ok(_) => break,
                    Err(error) if attempt < COMPACT_ATTEMPTS => {
                        tracing::debug!(%error, attempt, "search index compaction: trying again");
                        attempt += 1;
                        tokio::time::sleep(COMPACT_RETRY).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, attempts = attempt, "search index compaction gave up; the segments stay as they are");
                        break;
                    }
                }
            }
            index
                .compacting
                .store(false, std::sync::atomic::Ordering::Release);
        });
        Ok(())
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        let query = query.clone();
        self.query(move |index| index.search(&query)).await
    }

    async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let prefix = prefix.to_owned();
        self.query(move |index| index.suggest(&prefix, limit)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(names: std::ops::Range<usize>) -> Vec<SearchDocument> {
        names
            .map(|n| {
                let body = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                    "metadata": {"name": format!("service-{n}"), "namespace": "default"},
                    "spec": {"type": "service", "owner": "team-a"}});
                SearchDocument::from_entity(&body, &format!("etag-{n}"), 1).unwrap()
            })
            .collect()
    }

    fn write(index: &OpenIndex, upserts: Vec<SearchDocument>, removals: &[&str], checkpoint: u64) {
        index
            .write(IndexBatch {
                upserts,
                removals: removals.iter().map(|r| (*r).to_owned()).collect(),
                checkpoint: Some(checkpoint),
            })
            .unwrap();
    }

    fn segments(index: &OpenIndex) -> usize {
        index.reader.searcher().segment_readers().len()
    }

    #[test]
    fn a_compaction_merges_a_load_into_one_segment_and_not_a_push_into_it() {
        let folder = tempfile::tempdir().unwrap();
        let index = OpenIndex::open(folder.path(), true).unwrap();
        // A load in three commits, one entity removed on the way: three segments.
        write(&index, components(0..40), &[], 1);
        write(&index, components(40..80), &[], 2);
        write(
            &index,
            components(80..120),
            &["component:default/service-3"],
            3,
        );
        assert_eq!(segments(&index), 3);

        assert!(index.compact().unwrap());
        assert_eq!(segments(&index), 1);
        let segment_files = |folder: &Path| {
            std::fs::read_dir(folder)
                .unwrap()
                .filter(|entry| {
                    entry
                        .as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|e| e == "idx")
                })
                .count()
        };
        assert_eq!(
            segment_files(folder.path()),
            1,
            "the merged segments' files are gone"
        );
        assert_eq!(index.reader.searcher().num_docs(), 119);
        assert_eq!(
            index.checkpoint().unwrap(),
            3,
            "the commit's checkpoint stays"
        );

        // A push afterwards: its small segment stays beside the large one.
        write(&index, components(120..121), &[], 4);
        assert!(!index.compact().unwrap());
        assert_eq!(segments(&index), 2);
        assert_eq!(index.reader.searcher().num_docs(), 120);

        // Closed (replaced by a rebuild): nothing to merge with.
        write(&index, components(121..200), &[], 5);
        index.close().unwrap();
        assert!(!index.compact().unwrap());
    }

    #[test]
    fn best_hits_keep_the_top_by_score_then_document() {
        let mut best = BestHits::new(3);
        assert_eq!(best.threshold(), f32::MIN);
        for (score, doc) in [(1.0, 4), (3.0, 1), (2.0, 9), (2.0, 2), (0.5, 0)] {
            best.offer(score, DocAddress::new(0, doc));
        }
        assert_eq!(best.threshold(), 2.0);
        let page: Vec<(f32, u32)> = best
            .into_page(1)
            .into_iter()
            .map(|(score, address)| (score, address.doc_id))
            .collect();
        assert_eq!(page, vec![(2.0, 2), (2.0, 9)]);
    }
}
