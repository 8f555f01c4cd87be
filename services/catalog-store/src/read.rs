//! The read path: lookups, queries with Backstage's filter semantics and keyset cursors,
//! facets, ancestry, history, locations, processing errors and the change feed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cadastre_model::{Finding, Position, Rule, Severity};
use cadastre_query::{Condition, Cursor, FullTextFilter, OrderField, Predicate};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult};

use crate::sql::{
    MORE_VALUES_FLAG, Sql, like_escape, push_predicate, push_sort_value, push_value_like,
};
use crate::sqlite_reads::{Bound, NamedRow, OwnedRow};
use crate::time_util::from_rfc3339;
use crate::write::canonical_ref;
use crate::{
    AncestryItem, CatalogStore, Change, ChangeKind, EntityPage, EntityQuery, ErrorScope,
    FacetValues, Location, MAX_PAGE_SIZE, ProcessingError, ProcessingErrorPage, Result, StoreError,
    StoredEntity,
};

/// An entity as served. The body comes from `entity_documents` through a subquery rather than
/// a join: it is read for the rows answered only (PostgreSQL evaluates it after a sort and
/// limit), and a join could not change the plan of the entity rows.
const ENTITY_COLUMNS: &str = "e.entity_ref, e.uid, COALESCE(v.etag, e.etag) AS etag, e.kind, e.namespace, e.name, (SELECT d.body FROM entity_documents d WHERE d.entity_id = e.id) AS body, e.generation, e.content_hash, e.location_key, e.origin_location, e.parent_ref, e.orphan, e.created_at, COALESCE(v.updated_at, e.updated_at) AS updated_at";
/// Where [`ENTITY_COLUMNS`] come from: an entity's row, and its relations version when other
/// entities' relations moved it since (see migration m0012).
const ENTITY_SOURCE: &str = " FROM entities e LEFT JOIN relation_versions v ON v.entity_id = e.id";
const CHANGE_COLUMNS: &str = "sequence, entity_ref, uid, generation, content_hash, etag, change, body, own_relations, location_key, commit_sha, trace_parent, recorded_at";
/// [`CHANGE_COLUMNS`] without the body (a change read this way has none).
const FEED_COLUMNS: &str = "sequence, entity_ref, uid, generation, content_hash, etag, change, NULL AS body, NULL AS own_relations, location_key, commit_sha, trace_parent, recorded_at";
/// What identifies the entity of a point read.
#[derive(Debug, Clone, Copy)]
enum Key {
    /// The canonical ref.
    Ref,
    Uid,
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::Ref => "e.entity_ref",
            Key::Uid => "e.uid",
        }
    }
}

/// Refs per `IN (...)` lookup.
const LOOKUP_CHUNK: usize = 500;
/// Entities per page when facets are counted outside SQL.
const FACET_SCAN_BATCH: u32 = 1_000;

impl CatalogStore {
    /// One entity by ref; `None` if absent.
    pub async fn entity_by_ref(&self, entity_ref: &str) -> Result<Option<StoredEntity>> {
        let entity_ref = canonical_ref(entity_ref)?;
        self.entity_where(Key::Ref, entity_ref).await
    }

    /// One entity by uid; `None` if absent.
    pub async fn entity_by_uid(&self, uid: &str) -> Result<Option<StoredEntity>> {
        self.entity_where(Key::Uid, uid.to_owned()).await
    }

    /// The entity whose `key` is `value`, served.
    async fn entity_where(&self, key: Key, value: String) -> Result<Option<StoredEntity>> {
        let column = key.column();
        let Some(reads) = self.sqlite_reads() else {
            return self.entity_and_relations_where(column, value).await;
        };
        let entity = Bound::new(self.entity_statement("", column, value.clone()))?;
        // By ref, the relations' source is the value itself: no second descent of the refs.
        let mut relations = Sql::new(self.backend());
        relations.push("SELECT type, target_ref FROM relations WHERE source_ref = ");
        match key {
            Key::Ref => relations.bind(value),
            Key::Uid => relations
                .push("(SELECT e.entity_ref FROM entities e WHERE ")
                .push(column)
                .push(" = ")
                .bind(value)
                .push(")"),
        };
        let relations = Bound::new(relations)?;
        // On a SQLite file: read, decoded and served on the reading thread, one hand-off.
        reads
            .point_read(move |snapshot| {
                let Some(mut entity) = snapshot.rows(&entity, |row| entity_from_row(row))?.pop()
                else {
                    return Ok(None);
                };
                let relations = snapshot.rows(&relations, |row| {
                    Ok((row.get("type")?, row.get("target_ref")?))
                })?;
                serve_one(&mut entity, relations)?;
                Ok(Some(entity))
            })
            .await
    }

    /// [`Self::entity_where`] through the connection pool (a database server, or a SQLite
    /// store opened without reads of its own): the entity and its relations (a JSON array of
    /// `[type, target]` pairs) in one statement, so one round trip instead of two.
    async fn entity_and_relations_where(
        &self,
        column: &str,
        value: String,
    ) -> Result<Option<StoredEntity>> {
        let own_relations = match self.backend() {
            DbBackend::Postgres => {
                ", COALESCE((SELECT json_agg(json_build_array(r.type, r.target_ref)) FROM relations r WHERE r.source_ref = e.entity_ref), '[]')::text AS own_relations"
            }
            _ => {
                ", (SELECT json_group_array(json_array(r.type, r.target_ref)) FROM relations r WHERE r.source_ref = e.entity_ref) AS own_relations"
            }
        };
        let sql = self.entity_statement(own_relations, column, value);
        let Some(row) = self.db().query_one_raw(sql.build()).await? else {
            return Ok(None);
        };
        let mut entity = entity_from_row(&row)?;
        let relations: String = row.try_get("", "own_relations")?;
        let relations: Vec<(String, String)> =
            serde_json::from_str(&relations).map_err(|error| {
                StoreError::Corrupt(format!("relations of {}: {error}", entity.entity_ref))
            })?;
        serve_one(&mut entity, relations)?;
        Ok(Some(entity))
    }

    /// `SELECT` [`ENTITY_COLUMNS`] and `more_columns` of the entity whose unique `column` is
    /// `value`.
    fn entity_statement(&self, more_columns: &str, column: &str, value: String) -> Sql {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT ")
            .push(ENTITY_COLUMNS)
            .push(more_columns)
            .push(ENTITY_SOURCE)
            .push(" WHERE ")
            .push(column)
            .push(" = ")
            .bind(value);
        sql
    }

    /// Turns stored bodies into served ones: uid, etag and relations added. Without
    /// `with_relations` the relations are not looked up (the body's `relations` is empty), for
    /// readers that drop them anyway.
    async fn serve_with(&self, entities: &mut [StoredEntity], with_relations: bool) -> Result<()> {
        let mut relations: HashMap<String, Vec<(String, String)>> = HashMap::new();
        let refs: Vec<String> = if with_relations {
            entities.iter().map(|e| e.entity_ref.clone()).collect()
        } else {
            Vec::new()
        };
        for chunk in refs.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT source_ref, type, target_ref FROM relations WHERE source_ref IN ")
                .bind_list(chunk);
            for row in self.read_all(sql).await? {
                relations
                    .entry(row.get("source_ref")?)
                    .or_default()
                    .push((row.get("type")?, row.get("target_ref")?));
            }
        }
        for entity in entities {
            let own = relations.remove(&entity.entity_ref).unwrap_or_default();
            serve_one(entity, own)?;
        }
        Ok(())
    }

    /// Entities by ref, in the order asked, `None` where absent or not matching `filter`.
    ///
    /// Refs are matched as given against canonical lower-case refs (Backstage's by-refs does
    /// the same: mixed-case or namespace-less refs come back empty).
    pub async fn entities_by_refs(
        &self,
        refs: &[String],
        filter: Option<&Predicate>,
    ) -> Result<Vec<Option<StoredEntity>>> {
        self.entities_by_refs_with(refs, filter, true).await
    }

    /// [`Self::entities_by_refs`]; without `with_relations` their bodies carry no relations,
    /// which are then not read (the search indexer's documents need none, and a popular
    /// group's relations are thousands of rows).
    pub async fn entities_by_refs_with(
        &self,
        refs: &[String],
        filter: Option<&Predicate>,
        with_relations: bool,
    ) -> Result<Vec<Option<StoredEntity>>> {
        let mut found: HashMap<String, StoredEntity> = HashMap::with_capacity(refs.len());
        for chunk in refs.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT ")
                .push(ENTITY_COLUMNS)
                .push(ENTITY_SOURCE)
                .push(" WHERE e.entity_ref IN ")
                .bind_list(chunk);
            if let Some(filter) = filter {
                sql.push(" AND ");
                push_predicate(&mut sql, filter);
            }
            let mut entities = self
                .read_all(sql)
                .await?
                .iter()
                .map(entity_from_row)
                .collect::<Result<Vec<_>>>()?;
            self.serve_with(&mut entities, with_relations).await?;
            found.extend(entities.into_iter().map(|e| (e.entity_ref.clone(), e)));
        }
        Ok(refs.iter().map(|r| found.get(r).cloned()).collect())
    }

    /// A page of entities: Backstage's `by-query` semantics with keyset cursors.
    pub async fn query_entities(&self, query: &EntityQuery) -> Result<EntityPage> {
        if query.limit > MAX_PAGE_SIZE {
            return Err(StoreError::InvalidArgument(format!(
                "limit {} is larger than the maximum of {MAX_PAGE_SIZE}",
                query.limit
            )));
        }
        let cursor = match &query.cursor {
            Some(text) => cadastre_query::cursor::decode(text)?,
            None => Cursor::new(
                query.filter.clone(),
                query.order.clone(),
                query.full_text.clone(),
                None,
            ),
        };
        // Backstage uses only the first order field.
        let order = cursor.sort_field().cloned();
        let total_items = match cursor.total_items {
            Some(total) => total,
            None if query.include_total => {
                self.count(&cursor.predicate, cursor.full_text.as_ref(), order.as_ref())
                    .await?
            }
            None => 0,
        };
        let descending = order.as_ref().is_some_and(|o| o.descending);
        // A previous-page cursor walks backwards from its anchor, then the page is reversed.
        let walk_descending = descending != cursor.is_previous;
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT ").push(ENTITY_COLUMNS).push(", ");
        push_sort_key(&mut sql, order.as_ref());
        sql.push(" AS sort_value")
            .push(ENTITY_SOURCE)
            .push(" WHERE ");
        match kind_as_ref_range(self.backend(), &cursor.predicate, order.as_ref()) {
            Some((kind, rest)) => {
                push_conditions(&mut sql, &rest, cursor.full_text.as_ref(), None);
                // The cursor's own bound, where there is one, is the tighter one.
                let after = cursor.after.is_some();
                if !after || walk_descending {
                    sql.push(" AND e.entity_ref >= ").bind(format!("{kind}:"));
                }
                if !after || !walk_descending {
                    sql.push(" AND e.entity_ref < ").bind(format!("{kind};"));
                }
            }
            None => push_conditions(
                &mut sql,
                &cursor.predicate,
                cursor.full_text.as_ref(),
                order.as_ref(),
            ),
        }
        if let Some((sort_value, entity_ref)) = &cursor.after {
            let (greater, _) = if walk_descending {
                ("<", ">")
            } else {
                (">", "<")
            };
            sql.push(" AND (");
            match (order.as_ref(), sort_value) {
                (Some(order), Some(value)) => {
                    push_sort_value(&mut sql, &order.field);
                    sql.push(&format!(" {greater} "))
                        .bind(value.clone())
                        .push(" OR (");
                    push_sort_value(&mut sql, &order.field);
                    sql.push(" = ")
                        .bind(value.clone())
                        .push(&format!(" AND e.entity_ref {greater} "))
                        .bind(entity_ref.clone())
                        .push(")");
                }
                _ => {
                    sql.push(&format!("e.entity_ref {greater} "))
                        .bind(entity_ref.clone());
                }
            }
            sql.push(")");
        }
        let direction = if walk_descending { "DESC" } else { "ASC" };
        sql.push(" ORDER BY ");
        if let Some(order) = &order {
            push_sort_value(&mut sql, &order.field);
            sql.push(&format!(" {direction}, "));
        }
        sql.push(&format!("e.entity_ref {direction} LIMIT "));
        // One extra row tells whether another page follows.
        sql.bind(i64::from(query.limit) + 1);
        if cursor.after.is_none() && query.offset > 0 {
            sql.push(" OFFSET ").bind(i64::from(query.offset));
        }
        let rows = self.read_all(sql).await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(entity_from_row(row)?);
            keys.push(row.get::<Option<String>>("sort_value")?);
        }
        let has_more = items.len() > query.limit as usize;
        items.truncate(query.limit as usize);
        keys.truncate(query.limit as usize);
        self.serve_with(&mut items, query.with_relations).await?;
        if cursor.is_previous {
            items.reverse();
            keys.reverse();
        }
        let carried = Cursor {
            total_items: Some(total_items),
            ..cursor.clone()
        };
        let on_first_page = if cursor.is_previous {
            !has_more
        } else {
            cursor.after.is_none() && query.offset == 0
        };
        let more_after = cursor.is_previous || has_more;
        let next_cursor = items.last().filter(|_| more_after).map(|last| {
            carried
                .next_page(keys[items.len() - 1].clone(), last.entity_ref.clone())
                .encode()
        });
        let prev_cursor = items.first().filter(|_| !on_first_page).map(|first| {
            carried
                .previous_page(keys[0].clone(), first.entity_ref.clone())
                .encode()
        });
        Ok(EntityPage {
            items,
            total_items,
            next_cursor,
            prev_cursor,
        })
    }

    async fn count(
        &self,
        filter: &Predicate,
        full_text: Option<&FullTextFilter>,
        order: Option<&OrderField>,
    ) -> Result<u64> {
        let mut sql = Sql::new(self.backend());
        let order_column = order.map(|o| hot_count_column(&o.field));
        match hot_conditions(filter) {
            // Only hot keys: read the maintained counts instead of counting rows.
            Some(conditions) if full_text.is_none() && order_column.is_none_or(|c| c.is_some()) => {
                sql.push("SELECT CAST(COALESCE(SUM(h.n), 0) AS BIGINT) AS total FROM hot_counts h WHERE ");
                push_hot_conditions(&mut sql, &conditions);
                if let Some(Some((original, _))) = order_column {
                    sql.push(&format!(" AND h.{original} <> ''"));
                }
            }
            _ => {
                sql.push("SELECT COUNT(*) AS total FROM entities e WHERE ");
                push_conditions(&mut sql, filter, full_text, order);
            }
        }
        let row = self.read_all(sql).await?.pop();
        let total: i64 = match row {
            Some(row) => row.get("total")?,
            None => 0,
        };
        Ok(u64::try_from(total).unwrap_or_default())
    }

    /// Value counts per facet over the entities `filter` selects. Values keep their original
    /// case and are sorted; each facet is reported under the string it was asked with.
    pub async fn facets(&self, facets: &[String], filter: &Predicate) -> Result<Vec<FacetValues>> {
        let mut out = Vec::with_capacity(facets.len());
        let mut scanned: Option<Vec<StoredEntity>> = None;
        for facet in facets {
            let key = facet.to_lowercase();
            let values = if let Some(relation_type) = key.strip_prefix("relations.") {
                self.relation_facet(relation_type, filter).await?
            } else if let (Some((original, _)), Some(conditions)) =
                (hot_count_column(&key), hot_conditions(filter))
            {
                let mut sql = Sql::new(self.backend());
                sql.push(&format!("SELECT h.{original} AS value, CAST(SUM(h.n) AS BIGINT) AS n FROM hot_counts h WHERE h.{original} <> '' AND "));
                push_hot_conditions(&mut sql, &conditions);
                sql.push(&format!(" GROUP BY h.{original} HAVING SUM(h.n) > 0"));
                self.value_counts(sql).await?
            } else if let Some(column) = first_value_column(&key) {
                self.first_value_facet(&key, column, filter).await?
            } else if let Some(column) = original_column(&key) {
                let mut sql = Sql::new(self.backend());
                sql.push(&format!("SELECT {column} AS value, COUNT(*) AS n FROM entities e WHERE {column} IS NOT NULL AND "));
                push_predicate(&mut sql, filter);
                sql.push(&format!(" GROUP BY {column}"));
                self.value_counts(sql).await?
            } else {
                // Any other key: count original-case values from the bodies.
                if scanned.is_none() {
                    scanned = Some(self.scan(filter).await?);
                }
                count_body_values(scanned.as_deref().unwrap_or_default(), &key)?
            };
            out.push(FacetValues {
                facet: facet.clone(),
                values,
            });
        }
        Ok(out)
    }

    /// Distinct sources per target for one relation type.
    async fn relation_facet(
        &self,
        relation_type: &str,
        filter: &Predicate,
    ) -> Result<Vec<(String, u64)>> {
        if filter.is_everything() {
            // Exact maintained counts, unless some entity emits this type about another.
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT inverse_edges FROM relation_types WHERE type_l = ")
                .bind(relation_type.to_owned());
            let inverse: i64 = match self.db().query_one_raw(sql.build()).await? {
                Some(row) => row.try_get("", "inverse_edges")?,
                None => 0,
            };
            let mut sql = Sql::new(self.backend());
            if inverse == 0 {
                sql.push(
                    "SELECT target_ref AS value, n FROM relation_counts WHERE n > 0 AND type_l = ",
                )
                .bind(relation_type.to_owned());
            } else {
                sql.push("SELECT target_ref AS value, COUNT(DISTINCT source_ref) AS n FROM relations WHERE type_l = ")
                    .bind(relation_type.to_owned())
                    .push(" GROUP BY target_ref");
            }
            return self.value_counts(sql).await;
        }
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT r.target_ref AS value, COUNT(DISTINCT r.source_ref) AS n FROM relations r JOIN entities e ON e.entity_ref = r.source_ref WHERE r.type_l = ")
            .bind(relation_type.to_owned())
            .push(" AND ");
        push_predicate(&mut sql, filter);
        sql.push(" GROUP BY r.target_ref");
        self.value_counts(sql).await
    }

    /// Value counts of a first-value hot key (`spec.owner`, `spec.system`): grouped from its
    /// original-case column, which the ordering indexes carry, plus the values beyond the
    /// first of the few entities that hold more than one (read from their bodies).
    async fn first_value_facet(
        &self,
        key: &str,
        column: &str,
        filter: &Predicate,
    ) -> Result<Vec<(String, u64)>> {
        let mut sql = Sql::new(self.backend());
        sql.push(&format!("SELECT {column} AS value, COUNT(*) AS n FROM entities e WHERE {column} IS NOT NULL AND "));
        push_predicate(&mut sql, filter);
        sql.push(&format!(" GROUP BY {column}"));
        let mut counts: BTreeMap<String, u64> = self.value_counts(sql).await?.into_iter().collect();
        let mut after: Option<String> = None;
        loop {
            let mut sql = Sql::new(self.backend());
            sql.push(&format!(
                "SELECT e.entity_ref, (SELECT d.body FROM entity_documents d WHERE d.entity_id = e.id) AS body, {column} AS first FROM entities e WHERE {MORE_VALUES_FLAG} AND "
            ));
            push_predicate(&mut sql, filter);
            if let Some(after) = &after {
                sql.push(" AND e.entity_ref > ").bind(after.clone());
            }
            sql.push(" ORDER BY e.entity_ref LIMIT ")
                .bind(i64::from(FACET_SCAN_BATCH));
            let rows = self.db().query_all_raw(sql.build()).await?;
            for row in &rows {
                let entity_ref: String = row.try_get("", "entity_ref")?;
                let body: String = row.try_get("", "body")?;
                let first: Option<String> = row.try_get("", "first")?;
                let body: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("{entity_ref}: {e}")))?;
                let values: BTreeSet<String> = cadastre_query::search_rows(&body)
                    .into_iter()
                    .filter(|row| row.key == key)
                    .filter_map(|row| row.original)
                    .collect();
                // The first value was counted from the column.
                for value in values.into_iter().filter(|v| Some(v) != first.as_ref()) {
                    *counts.entry(value).or_default() += 1;
                }
                after = Some(entity_ref);
            }
            if rows.len() < FACET_SCAN_BATCH as usize {
                return Ok(counts.into_iter().collect());
            }
        }
    }

    async fn value_counts(&self, sql: Sql) -> Result<Vec<(String, u64)>> {
        let mut values = Vec::new();
        for row in self.db().query_all_raw(sql.build()).await? {
            let value: Option<String> = row.try_get("", "value")?;
            let count: i64 = row.try_get("", "n")?;
            if let Some(value) = value.filter(|v| v.chars().count() <= 200) {
                values.push((value, u64::try_from(count).unwrap_or_default()));
            }
        }
        values.sort();
        Ok(values)
    }

    /// Every entity `filter` selects, read in ref-ordered pages.
    async fn scan(&self, filter: &Predicate) -> Result<Vec<StoredEntity>> {
        let mut all = Vec::new();
        let mut query = EntityQuery {
            filter: filter.clone(),
            limit: FACET_SCAN_BATCH,
            include_total: false,
            ..EntityQuery::default()
        };
        loop {
            let page = self.query_entities(&query).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(all),
            }
        }
    }

    /// The entity, then the entities that emitted it, up to the registered location.
    pub async fn ancestry(&self, entity_ref: &str) -> Result<Vec<AncestryItem>> {
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(canonical_ref(entity_ref)?);
        while let Some(current) = next.take() {
            if !seen.insert(current.clone()) {
                break;
            }
            let Some(entity) = self.entity_by_ref(&current).await? else {
                if items.is_empty() {
                    return Err(StoreError::NotFound(format!("No such entity {current}")));
                }
                break;
            };
            let parents: Vec<String> = entity.parent_ref.iter().cloned().collect();
            next = entity.parent_ref.clone();
            items.push(AncestryItem {
                entity,
                parent_refs: parents,
            });
        }
        Ok(items)
    }

    /// How many entities the catalog holds (read from the maintained counts, not counted).
    pub async fn entity_count(&self) -> Result<u64> {
        let page = self
            .query_entities(&EntityQuery {
                limit: 1,
                ..EntityQuery::default()
            })
            .await?;
        Ok(page.total_items)
    }

    /// The changes recorded for an entity, newest first.
    pub async fn history(&self, entity_ref: &str, limit: u32) -> Result<Vec<Change>> {
        let entity_ref = canonical_ref(entity_ref)?;
        let limit = if limit == 0 {
            100
        } else {
            limit.min(MAX_PAGE_SIZE)
        };
        let mut sql = Sql::new(self.backend());
        sql.push(&format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE entity_ref = "
        ))
        .bind(entity_ref)
        .push(" ORDER BY sequence DESC LIMIT ")
        .bind(i64::from(limit));
        self.db()
            .query_all_raw(sql.build())
            .await?
            .iter()
            .map(change_from_row)
            .collect()
    }

    /// The entity's content as it stood at `as_of` (RFC 3339): its latest created or updated
    /// change at or before then. `None` if it did not exist then.
    pub async fn entity_as_of(&self, entity_ref: &str, as_of: &str) -> Result<Option<Change>> {
        let entity_ref = canonical_ref(entity_ref)?;
        let at = from_rfc3339(as_of).ok_or_else(|| {
            StoreError::InvalidArgument(format!("{as_of:?} is not an RFC 3339 timestamp"))
        })?;
        let mut sql = Sql::new(self.backend());
        sql.push(&format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE entity_ref = "
        ))
        .bind(entity_ref)
        .push(" AND change IN ('created', 'updated', 'removed') AND recorded_at <= ")
        .bind(at)
        .push(" ORDER BY sequence DESC LIMIT 1");
        let change = self
            .db()
            .query_one_raw(sql.build())
            .await?
            .map(|row| change_from_row(&row))
            .transpose()?;
        Ok(change.filter(|c| c.change != ChangeKind::Removed))
    }

    /// Changes with a sequence above `after`, oldest first, at most `limit`, with their
    /// bodies.
    pub async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<Change>> {
        self.changes_after_with(CHANGE_COLUMNS, after, limit).await
    }

    /// The change feed: [`Self::changes_after`] without the bodies, which its followers
    /// (the search indexer, the relay) never use. Reading and serving each body was most of
    /// the cost of following the feed.
    pub async fn feed_after(&self, after: u64, limit: u32) -> Result<Vec<Change>> {
        self.changes_after_with(FEED_COLUMNS, after, limit).await
    }

    async fn changes_after_with(
        &self,
        columns: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Change>> {
        let mut sql = Sql::new(self.backend());
        sql.push(&format!("SELECT {columns} FROM changes WHERE sequence > "))
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .push(" ORDER BY sequence ASC LIMIT ")
            .bind(i64::from(limit.max(1)));
        self.db()
            .query_all_raw(sql.build())
            .await?
            .iter()
            .map(change_from_row)
            .collect()
    }

    /// The highest committed change sequence.
    pub async fn head_sequence(&self) -> Result<u64> {
        let row = self
            .db()
            .query_one_raw(
                Sql::new(self.backend())
                    .push("SELECT MAX(sequence) AS head FROM changes")
                    .clone()
                    .build(),
            )
            .await?;
        let head: Option<i64> = match row {
            Some(row) => row.try_get("", "head")?,
            None => None,
        };
        Ok(head.and_then(|h| u64::try_from(h).ok()).unwrap_or_default())
    }

    /// Entities in ref order after `after_ref`, at most `limit` (for streaming everything).
    pub async fn entities_after(
        &self,
        after_ref: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntity>> {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT ").push(ENTITY_COLUMNS).push(ENTITY_SOURCE);
        if let Some(after) = after_ref {
            sql.push(" WHERE e.entity_ref > ").bind(after.to_owned());
        }
        sql.push(" ORDER BY e.entity_ref LIMIT ")
            .bind(i64::from(limit.max(1)));
        self.db()
            .query_all_raw(sql.build())
            .await?
            .iter()
            .map(entity_from_row)
            .collect()
    }

    pub async fn locations(&self) -> Result<Vec<Location>> {
        let sql = Sql::new(self.backend())
            .push("SELECT id, type, target, entity_ref, created_at FROM locations ORDER BY id")
            .clone();
        self.db()
            .query_all_raw(sql.build())
            .await?
            .iter()
            .map(location_from_row)
            .collect()
    }

    pub async fn location(&self, id: &str) -> Result<Option<Location>> {
        self.location_by_id(self.db(), id).await
    }

    pub(crate) async fn location_by_id(
        &self,
        db: &impl ConnectionTrait,
        id: &str,
    ) -> Result<Option<Location>> {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT id, type, target, entity_ref, created_at FROM locations WHERE id = ")
            .bind(id.to_owned());
        db.query_one_raw(sql.build())
            .await?
            .map(|row| location_from_row(&row))
            .transpose()
    }

    pub(crate) async fn find_location_by_key(
        &self,
        db: &impl ConnectionTrait,
        location_type: &str,
        target: &str,
    ) -> Result<Option<Location>> {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT id, type, target, entity_ref, created_at FROM locations WHERE type = ")
            .bind(location_type.to_owned())
            .push(" AND target = ")
            .bind(target.to_owned());
        db.query_one_raw(sql.build())
            .await?
            .map(|row| location_from_row(&row))
            .transpose()
    }

    /// Processing errors of a location, an entity, or every entity an owner owns.
    pub async fn processing_errors(
        &self,
        scope: &ErrorScope,
        limit: u32,
    ) -> Result<Vec<ProcessingError>> {
        let limit = if limit == 0 {
            1_000
        } else {
            limit.min(MAX_PAGE_SIZE)
        };
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT p.location_key, p.entity_ref, p.rule, p.severity, p.path, p.line, p.col, p.message, p.file, p.recorded_at FROM processing_errors p WHERE ");
        match scope {
            ErrorScope::Location(key) => {
                sql.push("p.location_key = ").bind(key.clone());
            }
            ErrorScope::Entity(entity_ref) => {
                sql.push("p.entity_ref = ").bind(canonical_ref(entity_ref)?);
            }
            ErrorScope::Owner(owner) => {
                sql.push("p.entity_ref IN (SELECT r.source_ref FROM relations r WHERE r.type_l = 'ownedby' AND r.target_ref = ")
                    .bind(canonical_ref(owner)?)
                    .push(")");
            }
        }
        sql.push(" ORDER BY p.id LIMIT ").bind(i64::from(limit));
        self.db()
            .query_all_raw(sql.build())
            .await?
            .iter()
            .map(error_from_row)
            .collect()
    }

    /// Every kept processing error, newest first (errors recorded together: the last written
    /// first), `limit` at a time (0: 1,000), after `cursor` (a page's `next_cursor`).
    pub async fn all_processing_errors(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ProcessingErrorPage> {
        let limit = if limit == 0 {
            1_000
        } else {
            limit.min(MAX_PAGE_SIZE)
        };
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT p.id, p.location_key, p.entity_ref, p.rule, p.severity, p.path, p.line, p.col, p.message, p.file, p.recorded_at FROM processing_errors p");
        if let Some(cursor) = cursor {
            let (recorded_at, id) = decode_error_cursor(cursor)?;
            // A row comparison: both backends seek the (recorded_at, id) index to it.
            sql.push(" WHERE (p.recorded_at, p.id) < (")
                .bind(recorded_at)
                .push(", ")
                .bind(id)
                .push(")");
        }
        sql.push(" ORDER BY p.recorded_at DESC, p.id DESC LIMIT ")
            // One extra row tells whether another page follows.
            .bind(i64::from(limit) + 1);
        let rows = self.db().query_all_raw(sql.build()).await?;
        let more = rows.len() > limit as usize;
        let mut errors = Vec::with_capacity(rows.len().min(limit as usize));
        let mut next_cursor = None;
        for row in rows.iter().take(limit as usize) {
            let error = error_from_row(row)?;
            if more {
                next_cursor = Some(encode_error_cursor(
                    error.recorded_at,
                    row.try_get("", "id")?,
                ));
            }
            errors.push(error);
        }
        Ok(ProcessingErrorPage {
            errors,
            next_cursor,
        })
    }

    /// The location keys to harvest again for `entity_ref`: its own and its ancestors'.
    pub async fn refresh_targets(&self, entity_ref: &str) -> Result<Vec<String>> {
        let ancestry = self.ancestry(entity_ref).await?;
        let mut keys: Vec<String> = Vec::new();
        for item in ancestry {
            for key in [item.entity.location_key, item.entity.origin_location]
                .into_iter()
                .flatten()
            {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }
}

/// For a hot key: its `(original, lower-cased)` columns in `hot_counts`.
fn hot_count_column(key: &str) -> Option<(&'static str, &'static str)> {
    match key {
        "kind" => Some(("kind", "kind_l")),
        "spec.type" => Some(("spec_type", "spec_type_l")),
        "spec.lifecycle" => Some(("lifecycle", "lifecycle_l")),
        _ => None,
    }
}

/// If `predicate` is a conjunction of value conditions on hot keys only (or matches
/// everything), those conditions as `(lower-cased column, values)`.
fn hot_conditions(predicate: &Predicate) -> Option<Vec<(&'static str, &[String])>> {
    fn collect<'p>(predicate: &'p Predicate, out: &mut Vec<(&'static str, &'p [String])>) -> bool {
        match predicate {
            Predicate::All(items) => items.iter().all(|item| collect(item, out)),
            Predicate::Field {
                key,
                condition: Condition::In(values),
            } => match hot_count_column(key) {
                Some((_, lower)) => {
                    out.push((lower, values));
                    true
                }
                None => false,
            },
            _ => false,
        }
    }
    let mut conditions = Vec::new();
    collect(predicate, &mut conditions).then_some(conditions)
}

fn push_hot_conditions(sql: &mut Sql, conditions: &[(&'static str, &[String])]) {
    sql.push("1=1");
    for (column, values) in conditions {
        sql.push(&format!(" AND h.{column} IN ")).bind_list(values);
    }
}

/// The original-case column of a first-value hot key (see [`crate::sql::first_value_key`]).
fn first_value_column(key: &str) -> Option<&'static str> {
    match key {
        "spec.owner" => Some("e.spec_owner"),
        "spec.system" => Some("e.spec_system"),
        _ => None,
    }
}

/// The column with original-case values for the facets that have one.
fn original_column(key: &str) -> Option<&'static str> {
    match key {
        "kind" => Some("e.kind"),
        "spec.type" => Some("e.spec_type"),
        "spec.lifecycle" => Some("e.lifecycle"),
        "metadata.namespace" => Some("e.namespace"),
        _ => None,
    }
}

fn count_body_values(entities: &[StoredEntity], key: &str) -> Result<Vec<(String, u64)>> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for entity in entities {
        let body = entity.body_json()?;
        let mut values: Vec<String> = cadastre_query::search_rows(&body)
            .into_iter()
            .filter(|row| row.key == key)
            .filter_map(|row| row.original)
            .collect();
        values.sort();
        values.dedup();
        for value in values {
            *counts.entry(value).or_default() += 1;
        }
    }
    Ok(counts.into_iter().collect())
}

/// A page in ref order (no order field) filtered by one kind, on SQLite, as that kind and the
/// other conditions: the kind is then read as a range of refs. Refs are `kind:namespace/name`
/// in lower case and kinds hold no `:`, so a kind's entities are exactly the refs from `kind:`
/// up to `kind;`, which the refs' unique index reads in order, stopping at the page's end.
/// SQLite, without statistics, otherwise takes every entity of the kind from the kind's index,
/// tests the other conditions and sorts what is left: at 100,000 entities the first page of
/// components took 11 ms (0.05 ms in order), and the web UI's page with a lifecycle 130 ms and
/// with a tag 500 ms (under 10 ms in order); ten times that at a million. Left as they are: filters on `spec.type`
/// (the kind-and-type index already reads them in order) and on relations (selective, and
/// found through the relations' index). PostgreSQL plans from its statistics, and compares
/// refs with the database's collation, under which `:` and `;` need not bound the range.
fn kind_as_ref_range<'a>(
    backend: sea_orm::DbBackend,
    predicate: &'a Predicate,
    order: Option<&OrderField>,
) -> Option<(&'a str, Predicate)> {
    if backend != sea_orm::DbBackend::Sqlite || order.is_some() {
        return None;
    }
    let mut conjuncts = Vec::new();
    flatten_all(predicate, &mut conjuncts);
    let mut kinds = conjuncts.iter().filter_map(|conjunct| match conjunct {
        Predicate::Field {
            key,
            condition: Condition::In(values),
        } if key == "kind" && values.len() == 1 => Some(values[0].as_str()),
        _ => None,
    });
    let kind = kinds.next()?;
    if kinds.next().is_some() {
        return None;
    }
    let mut rest = Vec::with_capacity(conjuncts.len() - 1);
    for conjunct in conjuncts {
        if matches!(conjunct, Predicate::Field { key, condition: Condition::In(values) }
            if key == "kind" && values.len() == 1)
        {
            continue;
        }
        if mentions(conjunct, &|key| {
            key == "kind" || key == "spec.type" || key.starts_with("relations")
        }) {
            return None;
        }
        rest.push(conjunct.clone());
    }
    Some((kind, Predicate::All(rest)))
}

/// The conditions `predicate` AND-s together (through nested `All`s and single-item `Any`s).
fn flatten_all<'a>(predicate: &'a Predicate, out: &mut Vec<&'a Predicate>) {
    match predicate {
        Predicate::All(items) => items.iter().for_each(|item| flatten_all(item, out)),
        Predicate::Any(items) if items.len() == 1 => flatten_all(&items[0], out),
        other => out.push(other),
    }
}

/// Whether a condition anywhere in `predicate` is on a key `pick` picks.
fn mentions(predicate: &Predicate, pick: &dyn Fn(&str) -> bool) -> bool {
    match predicate {
        Predicate::All(items) | Predicate::Any(items) => {
            items.iter().any(|item| mentions(item, pick))
        }
        Predicate::Not(inner) => mentions(inner, pick),
        Predicate::Field { key, .. } => pick(key),
    }
}

/// The filter, the full-text filter, and "has the sort field".
fn push_conditions(
    sql: &mut Sql,
    filter: &Predicate,
    full_text: Option<&FullTextFilter>,
    order: Option<&OrderField>,
) {
    push_predicate(sql, filter);
    if let Some(full_text) = full_text.filter(|f| !f.term.is_empty()) {
        let pattern = format!("%{}%", like_escape(&full_text.term));
        sql.push(" AND (");
        for (index, field) in full_text.fields.iter().enumerate() {
            if index > 0 {
                sql.push(" OR ");
            }
            if let Some(relation_type) = field.strip_prefix("relations.") {
                sql.push("EXISTS (SELECT 1 FROM relations r WHERE r.source_ref = e.entity_ref AND r.type_l = ")
                    .bind(relation_type.to_owned())
                    .push(" AND r.target_ref LIKE ")
                    .bind(pattern.clone())
                    .push(" ESCAPE '\\')");
            } else {
                push_value_like(sql, field, pattern.clone());
            }
        }
        if full_text.fields.is_empty() {
            sql.push("1=0");
        }
        sql.push(")");
    }
    if let Some(order) = order {
        // Entities without the sort field are left out, as in Backstage.
        sql.push(" AND ");
        push_sort_value(sql, &order.field);
        sql.push(" IS NOT NULL");
    }
}

fn push_sort_key(sql: &mut Sql, order: Option<&OrderField>) {
    match order {
        Some(order) => push_sort_value(sql, &order.field),
        None => {
            sql.push("NULL");
        }
    }
}

/// Turns a stored body into the served one: uid, etag and `relations` added.
fn serve_one(entity: &mut StoredEntity, relations: Vec<(String, String)>) -> Result<()> {
    entity.body = crate::serve::served_body_as(
        &entity.body,
        &entity.uid,
        &entity.etag,
        relations,
        entity.orphan,
    )
    .map_err(|e| StoreError::Corrupt(format!("{}: {e}", entity.entity_ref)))?;
    Ok(())
}

fn entity_from_row(row: &impl Columns) -> Result<StoredEntity> {
    Ok(StoredEntity {
        entity_ref: row.get("entity_ref")?,
        uid: row.get("uid")?,
        etag: row.get("etag")?,
        kind: row.get("kind")?,
        namespace: row.get("namespace")?,
        name: row.get("name")?,
        body: row.get("body")?,
        generation: row.get("generation")?,
        content_hash: row.get("content_hash")?,
        location_key: row.get("location_key")?,
        origin_location: row.get("origin_location")?,
        parent_ref: row.get("parent_ref")?,
        orphan: row.get("orphan")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// A value both backends' rows decode.
trait Column: sea_orm::TryGetable + rusqlite::types::FromSql {}
impl<T: sea_orm::TryGetable + rusqlite::types::FromSql> Column for T {}

/// A row's values by column name, whichever way it was read.
trait Columns {
    fn get<T: Column>(&self, column: &str) -> Result<T>;
}

impl Columns for NamedRow<'_> {
    fn get<T: Column>(&self, column: &str) -> Result<T> {
        NamedRow::get(self, column)
    }
}

impl Columns for OwnedRow {
    fn get<T: Column>(&self, column: &str) -> Result<T> {
        OwnedRow::get(self, column)
    }
}

impl Columns for QueryResult {
    fn get<T: Column>(&self, column: &str) -> Result<T> {
        Ok(self.try_get("", column)?)
    }
}

/// A row from sqlx (PostgreSQL, or SQLite in memory) or from [`crate::sqlite_reads`].
enum Row {
    Pool(QueryResult),
    Sqlite(OwnedRow),
}

impl Columns for Row {
    fn get<T: Column>(&self, column: &str) -> Result<T> {
        match self {
            Row::Pool(row) => row.get(column),
            Row::Sqlite(row) => row.get(column),
        }
    }
}

impl CatalogStore {
    /// Every row of `sql`: on a SQLite file through [`crate::sqlite_reads`] (one hand-off for
    /// the statement), else through the pool.
    async fn read_all(&self, sql: Sql) -> Result<Vec<Row>> {
        Ok(match self.sqlite_reads() {
            Some(reads) => reads
                .rows(sql)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            None => self
                .db()
                .query_all_raw(sql.build())
                .await?
                .into_iter()
                .map(Row::Pool)
                .collect(),
        })
    }
}

/// A change as recorded; a content change's body is served as the entity was then (its uid,
/// that etag and the relations it emitted about itself).
fn change_from_row(row: &QueryResult) -> Result<Change> {
    let change: String = row.try_get("", "change")?;
    let sequence: i64 = row.try_get("", "sequence")?;
    let entity_ref: String = row.try_get("", "entity_ref")?;
    let uid: String = row.try_get("", "uid")?;
    let etag: String = row.try_get("", "etag")?;
    let stored: Option<String> = row.try_get("", "body")?;
    let own_relations: Option<String> = row.try_get("", "own_relations")?;
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("{entity_ref}: {e}"));
    let body = match stored {
        Some(stored) => {
            let own: Vec<(String, String)> = match own_relations {
                Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
                None => Vec::new(),
            };
            Some(crate::serve::served_body(&stored, &uid, &etag, own).map_err(corrupt)?)
        }
        None => None,
    };
    Ok(Change {
        sequence: u64::try_from(sequence).unwrap_or_default(),
        change: ChangeKind::parse(&change)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown change kind {change:?}")))?,
        entity_ref,
        uid,
        etag,
        body,
        generation: row.try_get("", "generation")?,
        content_hash: row.try_get("", "content_hash")?,
        location_key: row.try_get("", "location_key")?,
        commit: row.try_get("", "commit_sha")?,
        trace_parent: row.try_get("", "trace_parent")?,
        recorded_at: row.try_get("", "recorded_at")?,
    })
}

fn location_from_row(row: &QueryResult) -> Result<Location> {
    Ok(Location {
        id: row.try_get("", "id")?,
        location_type: row.try_get("", "type")?,
        target: row.try_get("", "target")?,
        entity_ref: row.try_get("", "entity_ref")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// A page boundary of the error listing: the last error's `(recorded_at, id)`, as hex so
/// that callers treat it as opaque.
fn encode_error_cursor(recorded_at: i64, id: i64) -> String {
    hex::encode(format!("{recorded_at}.{id}"))
}

fn decode_error_cursor(cursor: &str) -> Result<(i64, i64)> {
    let malformed = || StoreError::InvalidArgument(format!("malformed cursor {cursor:?}"));
    let text = String::from_utf8(hex::decode(cursor).map_err(|_| malformed())?)
        .map_err(|_| malformed())?;
    let (recorded_at, id) = text.split_once('.').ok_or_else(malformed)?;
    Ok((
        recorded_at.parse().map_err(|_| malformed())?,
        id.parse().map_err(|_| malformed())?,
    ))
}

fn error_from_row(row: &QueryResult) -> Result<ProcessingError> {
    let rule: String = row.try_get("", "rule")?;
    let severity: String = row.try_get("", "severity")?;
    let line: Option<i64> = row.try_get("", "line")?;
    let column: Option<i64> = row.try_get("", "col")?;
    let position = match (line, column) {
        (Some(line), Some(column)) => Some(Position {
            line: u32::try_from(line).unwrap_or_default(),
            column: u32::try_from(column).unwrap_or_default(),
        }),
        _ => None,
    };
    let finding = Finding {
        rule: Rule::from_id(&rule)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown rule {rule:?}")))?,
        severity: if severity == "warning" {
            Severity::Warning
        } else {
            Severity::Error
        },
        path: row.try_get("", "path")?,
        message: row.try_get("", "message")?,
        position,
    };
    Ok(ProcessingError {
        location_key: row.try_get("", "location_key")?,
        entity_ref: row.try_get("", "entity_ref")?,
        file: row.try_get("", "file")?,
        finding,
        recorded_at: row.try_get("", "recorded_at")?,
    })
}
