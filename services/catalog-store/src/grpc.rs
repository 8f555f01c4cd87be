//! The gRPC adapter: `cadastre.v1.CatalogService` over [`CatalogStore`]. Conversions between
//! protobuf messages and the store's plain types live here and nowhere else.

use std::pin::Pin;
use std::time::Duration;

use cadastre_model::{Finding, Position, Rule, Severity};
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_server::CatalogService;
use cadastre_query::{Condition, OrderField, Predicate, Projection};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::time_util::to_rfc3339;
use crate::{
    Batch, CatalogStore, Change, EntityQuery, ErrorScope, LocationErrors, ProcessingError,
    StoreError, StoredEntity, Upsert,
};

/// Entities per message batch when streaming everything.
const DEFAULT_STREAM_BATCH: u32 = 500;
/// Changes read per round when following the feed.
const FEED_BATCH: u32 = 500;
/// How often a follower re-reads the feed for commits made by other store replicas.
const FEED_POLL: Duration = Duration::from_millis(250);
/// Messages buffered per stream before the sender waits (backpressure).
const STREAM_BUFFER: usize = 64;

/// The gRPC face of a [`CatalogStore`].
#[derive(Debug, Clone)]
pub struct CatalogGrpc {
    store: CatalogStore,
}

impl CatalogGrpc {
    pub fn new(store: CatalogStore) -> Self {
        CatalogGrpc { store }
    }

    pub fn into_server(self) -> pb::catalog_service_server::CatalogServiceServer<Self> {
        pb::catalog_service_server::CatalogServiceServer::new(self)
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl CatalogService for CatalogGrpc {
    async fn get_entity_by_ref(
        &self,
        request: Request<pb::GetEntityByRefRequest>,
    ) -> Result<Response<pb::StoredEntity>, Status> {
        let entity_ref = request.into_inner().entity_ref;
        match self.store.entity_by_ref(&entity_ref).await? {
            Some(entity) => Ok(Response::new(to_proto_entity(
                entity,
                &Projection::everything(),
            )?)),
            None => Err(Status::not_found(format!("No entity {entity_ref}"))),
        }
    }

    async fn get_entity_by_uid(
        &self,
        request: Request<pb::GetEntityByUidRequest>,
    ) -> Result<Response<pb::StoredEntity>, Status> {
        let uid = request.into_inner().uid;
        match self.store.entity_by_uid(&uid).await? {
            Some(entity) => Ok(Response::new(to_proto_entity(
                entity,
                &Projection::everything(),
            )?)),
            None => Err(Status::not_found(format!("No entity with uid {uid}"))),
        }
    }

    async fn get_entities_by_refs(
        &self,
        request: Request<pb::GetEntitiesByRefsRequest>,
    ) -> Result<Response<pb::GetEntitiesByRefsResponse>, Status> {
        let request = request.into_inner();
        let projection = projection(&request.fields)?;
        let filter = request.filter.map(from_proto_predicate).transpose()?;
        let found = self
            .store
            .entities_by_refs_with(
                &request.entity_refs,
                filter.as_ref(),
                projection.keeps_relations(),
            )
            .await?;
        let items = found
            .into_iter()
            .map(|entity| {
                Ok(pb::MaybeEntity {
                    entity: entity
                        .map(|e| to_proto_entity(e, &projection))
                        .transpose()?,
                })
            })
            .collect::<Result<_, Status>>()?;
        Ok(Response::new(pb::GetEntitiesByRefsResponse { items }))
    }

    async fn query_entities(
        &self,
        request: Request<pb::QueryEntitiesRequest>,
    ) -> Result<Response<pb::QueryEntitiesResponse>, Status> {
        let request = request.into_inner();
        let projection = projection(&request.fields)?;
        let order: Vec<OrderField> = request
            .order
            .iter()
            .map(|o| OrderField {
                field: o.field.to_lowercase(),
                descending: o.descending,
            })
            .collect();
        let full_text_fields: Vec<&str> = request
            .full_text_fields
            .iter()
            .map(String::as_str)
            .collect();
        let query = EntityQuery {
            filter: request
                .filter
                .map(from_proto_predicate)
                .transpose()?
                .unwrap_or_else(Predicate::everything),
            full_text: cadastre_query::full_text::build(
                &request.full_text_term,
                &full_text_fields,
                &order,
            ),
            order,
            limit: request.limit,
            offset: request.offset,
            cursor: Some(request.cursor).filter(|c| !c.is_empty()),
            include_total: !request.exclude_total,
            with_relations: projection.keeps_relations(),
        };
        let page = self.store.query_entities(&query).await?;
        Ok(Response::new(pb::QueryEntitiesResponse {
            items: page
                .items
                .into_iter()
                .map(|e| to_proto_entity(e, &projection))
                .collect::<Result<_, _>>()?,
            total_items: page.total_items,
            next_cursor: page.next_cursor.unwrap_or_default(),
            prev_cursor: page.prev_cursor.unwrap_or_default(),
        }))
    }

    async fn get_facets(
        &self,
        request: Request<pb::GetFacetsRequest>,
    ) -> Result<Response<pb::GetFacetsResponse>, Status> {
        let request = request.into_inner();
        if request.facets.is_empty() || request.facets.iter().any(|f| f.trim().is_empty()) {
            return Err(Status::invalid_argument("Missing facet parameter"));
        }
        let filter = request
            .filter
            .map(from_proto_predicate)
            .transpose()?
            .unwrap_or_else(Predicate::everything);
        let facets = self.store.facets(&request.facets, &filter).await?;
        Ok(Response::new(pb::GetFacetsResponse {
            facets: facets
                .into_iter()
                .map(|facet| pb::Facet {
                    facet: facet.facet,
                    values: facet
                        .values
                        .into_iter()
                        .map(|(value, count)| pb::FacetCount { value, count })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn get_ancestry(
        &self,
        request: Request<pb::GetEntityByRefRequest>,
    ) -> Result<Response<pb::GetAncestryResponse>, Status> {
        let entity_ref = request.into_inner().entity_ref;
        let items = self.store.ancestry(&entity_ref).await?;
        let root_ref = items
            .first()
            .map(|i| i.entity.entity_ref.clone())
            .unwrap_or_default();
        Ok(Response::new(pb::GetAncestryResponse {
            root_ref,
            items: items
                .into_iter()
                .map(|item| {
                    Ok(pb::AncestryItem {
                        entity: Some(to_proto_entity(item.entity, &Projection::everything())?),
                        parent_refs: item.parent_refs,
                    })
                })
                .collect::<Result<_, Status>>()?,
        }))
    }

    async fn get_entity_history(
        &self,
        request: Request<pb::GetEntityHistoryRequest>,
    ) -> Result<Response<pb::GetEntityHistoryResponse>, Status> {
        let request = request.into_inner();
        let entries = self
            .store
            .history(&request.entity_ref, request.limit)
            .await?;
        Ok(Response::new(pb::GetEntityHistoryResponse {
            entries: entries.into_iter().map(to_proto_history).collect(),
        }))
    }

    async fn get_entity_as_of(
        &self,
        request: Request<pb::GetEntityAsOfRequest>,
    ) -> Result<Response<pb::HistoryEntry>, Status> {
        let request = request.into_inner();
        match self
            .store
            .entity_as_of(&request.entity_ref, &request.as_of)
            .await?
        {
            Some(change) => Ok(Response::new(to_proto_history(change))),
            None => Err(Status::not_found(format!(
                "{} did not exist at {}",
                request.entity_ref, request.as_of
            ))),
        }
    }

    async fn list_locations(
        &self,
        _: Request<pb::ListLocationsRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        let locations = self.store.locations().await?;
        Ok(Response::new(pb::ListLocationsResponse {
            locations: locations.into_iter().map(to_proto_location).collect(),
        }))
    }

    async fn list_harvest_receipts(
        &self,
        request: Request<pb::ListHarvestReceiptsRequest>,
    ) -> Result<Response<pb::ListHarvestReceiptsResponse>, Status> {
        let request = request.into_inner();
        let receipts = self
            .store
            .harvest_receipts(&request.location_key, request.limit)
            .await?;
        Ok(Response::new(pb::ListHarvestReceiptsResponse {
            receipts: receipts.into_iter().map(to_proto_receipt).collect(),
        }))
    }

    async fn get_location(
        &self,
        request: Request<pb::GetLocationRequest>,
    ) -> Result<Response<pb::Location>, Status> {
        let id = request.into_inner().id;
        match self.store.location(&id).await? {
            Some(location) => Ok(Response::new(to_proto_location(location))),
            None => Err(Status::not_found(format!("Found no location with ID {id}"))),
        }
    }

    async fn add_location(
        &self,
        request: Request<pb::AddLocationRequest>,
    ) -> Result<Response<pb::Location>, Status> {
        let request = request.into_inner();
        let location = self
            .store
            .add_location(&request.r#type, &request.target)
            .await?;
        Ok(Response::new(to_proto_location(location)))
    }

    async fn acquire_lease(
        &self,
        request: Request<pb::AcquireLeaseRequest>,
    ) -> Result<Response<pb::AcquireLeaseResponse>, Status> {
        let request = request.into_inner();
        let acquired = self
            .store
            .acquire_lease(
                &request.name,
                &request.holder,
                std::time::Duration::from_millis(request.ttl_millis),
            )
            .await?;
        Ok(Response::new(pb::AcquireLeaseResponse { acquired }))
    }

    async fn release_lease(
        &self,
        request: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let request = request.into_inner();
        self.store
            .release_lease(&request.name, &request.holder)
            .await?;
        Ok(Response::new(pb::ReleaseLeaseResponse {}))
    }

    async fn update_location(
        &self,
        request: Request<pb::UpdateLocationRequest>,
    ) -> Result<Response<pb::Location>, Status> {
        let request = request.into_inner();
        let location = self
            .store
            .update_location(&request.id, &request.r#type, &request.target)
            .await?;
        Ok(Response::new(to_proto_location(location)))
    }

    async fn remove_location(
        &self,
        request: Request<pb::RemoveLocationRequest>,
    ) -> Result<Response<pb::RemoveLocationResponse>, Status> {
        let removed = self.store.remove_location(&request.into_inner().id).await?;
        Ok(Response::new(pb::RemoveLocationResponse {
            removed_entities: removed,
        }))
    }

    async fn list_processing_errors(
        &self,
        request: Request<pb::ListProcessingErrorsRequest>,
    ) -> Result<Response<pb::ListProcessingErrorsResponse>, Status> {
        use pb::list_processing_errors_request::Scope;
        let request = request.into_inner();
        let scope = match request.scope {
            Some(Scope::LocationKey(key)) => ErrorScope::Location(key),
            Some(Scope::EntityRef(entity_ref)) => ErrorScope::Entity(entity_ref),
            Some(Scope::OwnerRef(owner)) => ErrorScope::Owner(owner),
            None => {
                let cursor = Some(request.cursor.as_str()).filter(|c| !c.is_empty());
                let page = self
                    .store
                    .all_processing_errors(cursor, request.limit)
                    .await?;
                return Ok(Response::new(pb::ListProcessingErrorsResponse {
                    errors: page.errors.into_iter().map(to_proto_error).collect(),
                    next_cursor: page.next_cursor.unwrap_or_default(),
                }));
            }
        };
        if !request.cursor.is_empty() {
            return Err(Status::invalid_argument(
                "a cursor pages the listing of every error; scoped listings are not paged",
            ));
        }
        let errors = self.store.processing_errors(&scope, request.limit).await?;
        Ok(Response::new(pb::ListProcessingErrorsResponse {
            errors: errors.into_iter().map(to_proto_error).collect(),
            next_cursor: String::new(),
        }))
    }

    async fn apply_batch(
        &self,
        request: Request<pb::ApplyBatchRequest>,
    ) -> Result<Response<pb::ApplyBatchResponse>, Status> {
        let batch = from_proto_batch(request.into_inner())?;
        let outcome = self.store.apply_batch(batch).await?;
        Ok(Response::new(pb::ApplyBatchResponse {
            created: outcome.created,
            updated: outcome.updated,
            unchanged: outcome.unchanged,
            removed: outcome.removed,
            conflicts: outcome.conflicts,
            last_sequence: outcome.last_sequence,
        }))
    }

    async fn request_refresh(
        &self,
        request: Request<pb::RequestRefreshRequest>,
    ) -> Result<Response<pb::RequestRefreshResponse>, Status> {
        let location_keys = self
            .store
            .refresh_targets(&request.into_inner().entity_ref)
            .await?;
        Ok(Response::new(pb::RequestRefreshResponse { location_keys }))
    }

    type WatchChangesStream = ResponseStream<pb::ChangeEvent>;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let request = request.into_inner();
        let store = self.store.clone();
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let mut head = store.subscribe();
            let mut after = request.after_sequence;
            loop {
                let changes = match store.feed_after(after, FEED_BATCH).await {
                    Ok(changes) => changes,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let caught_up = changes.len() < FEED_BATCH as usize;
                for change in changes {
                    after = change.sequence;
                    if sender.send(Ok(to_proto_change(change))).await.is_err() {
                        return;
                    }
                }
                if caught_up {
                    if !request.follow {
                        return;
                    }
                    // Wake on a local commit, or poll for commits by other replicas.
                    tokio::select! {
                        _ = head.changed() => {}
                        _ = tokio::time::sleep(FEED_POLL) => {}
                        _ = sender.closed() => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    type StreamEntitiesStream = ResponseStream<pb::StoredEntity>;

    async fn get_feed_head(
        &self,
        _request: Request<pb::GetFeedHeadRequest>,
    ) -> Result<Response<pb::FeedHead>, Status> {
        Ok(Response::new(pb::FeedHead {
            sequence: self.store.head_sequence().await?,
            indexes_pending: self.store.indexes_pending(),
        }))
    }

    async fn stream_entities(
        &self,
        request: Request<pb::StreamEntitiesRequest>,
    ) -> Result<Response<Self::StreamEntitiesStream>, Status> {
        let batch_size = match request.into_inner().batch_size {
            0 => DEFAULT_STREAM_BATCH,
            n => n.min(crate::MAX_PAGE_SIZE),
        };
        let store = self.store.clone();
        // A page of room: the next page is read while the client takes this one.
        let (sender, receiver) = mpsc::channel(batch_size as usize);
        tokio::spawn(async move {
            let mut after: Option<String> = None;
            loop {
                let batch = match store.entities_after(after.as_deref(), batch_size).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let done = batch.len() < batch_size as usize;
                for entity in batch {
                    after = Some(entity.entity_ref.clone());
                    let message = to_proto_entity(entity, &Projection::everything());
                    if sender.send(message).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

fn projection(fields: &[String]) -> Result<Projection, Status> {
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    Projection::parse(&fields).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The proto form of a stored entity, with the body projected to `projection`.
pub fn to_proto_entity(
    entity: StoredEntity,
    projection: &Projection,
) -> Result<pb::StoredEntity, Status> {
    let body = if projection.is_empty() {
        entity.body.into_bytes()
    } else {
        let value = serde_json::from_str(&entity.body)
            .map_err(|e| Status::from(StoreError::Corrupt(e.to_string())))?;
        projection.apply(&value).to_string().into_bytes()
    };
    Ok(pb::StoredEntity {
        entity: Some(pb::Entity {
            entity_ref: entity.entity_ref,
            uid: entity.uid,
            etag: entity.etag,
            kind: entity.kind,
            namespace: entity.namespace,
            name: entity.name,
            body_json: body,
            relations: Vec::new(),
        }),
        generation: entity.generation,
        content_hash: entity.content_hash,
        location_key: entity.location_key.unwrap_or_default(),
        origin_location: entity.origin_location.unwrap_or_default(),
        parent_ref: entity.parent_ref.unwrap_or_default(),
        orphan: entity.orphan,
        created_at: to_rfc3339(entity.created_at),
        updated_at: to_rfc3339(entity.updated_at),
    })
}

fn to_proto_history(change: Change) -> pb::HistoryEntry {
    pb::HistoryEntry {
        entity_ref: change.entity_ref,
        uid: change.uid,
        generation: change.generation,
        content_hash: change.content_hash,
        body_json: change.body.unwrap_or_default().into_bytes(),
        change: change.change.as_str().to_owned(),
        location_key: change.location_key.unwrap_or_default(),
        commit: change.commit.unwrap_or_default(),
        recorded_at: to_rfc3339(change.recorded_at),
        sequence: change.sequence,
    }
}

pub fn to_proto_change(change: Change) -> pb::ChangeEvent {
    pb::ChangeEvent {
        sequence: change.sequence,
        entity_ref: change.entity_ref,
        uid: change.uid,
        change: match change.change {
            crate::ChangeKind::Removed => "removed",
            _ => "upserted",
        }
        .to_owned(),
        etag: change.etag,
        generation: change.generation,
        recorded_at: to_rfc3339(change.recorded_at),
        traceparent: change.trace_parent.unwrap_or_default(),
        relations_only: change.change == crate::ChangeKind::Relations,
    }
}

fn to_proto_location(location: crate::Location) -> pb::Location {
    pb::Location {
        id: location.id,
        r#type: location.location_type,
        target: location.target,
        entity_ref: location.entity_ref,
        created_at: to_rfc3339(location.created_at),
    }
}

fn to_proto_error(error: ProcessingError) -> pb::ProcessingError {
    let finding = &error.finding;
    pb::ProcessingError {
        location_key: error.location_key,
        entity_ref: error.entity_ref.unwrap_or_default(),
        finding: Some(pb::Finding {
            rule: finding.rule.id().to_owned(),
            severity: match finding.severity {
                Severity::Error => pb::Severity::Error as i32,
                Severity::Warning => pb::Severity::Warning as i32,
            },
            path: finding.path.clone(),
            message: finding.message.clone(),
            position: finding.position.map(|p| pb::Position {
                line: p.line,
                column: p.column,
            }),
            file: error.file,
        }),
        recorded_at: to_rfc3339(error.recorded_at),
    }
}

fn from_proto_error(
    location_key: &str,
    error: pb::ProcessingError,
) -> Result<ProcessingError, Status> {
    let finding = error
        .finding
        .ok_or_else(|| Status::invalid_argument("a processing error needs a finding"))?;
    let rule = Rule::from_id(&finding.rule)
        .ok_or_else(|| Status::invalid_argument(format!("unknown rule id {:?}", finding.rule)))?;
    Ok(ProcessingError {
        location_key: location_key.to_owned(),
        entity_ref: Some(error.entity_ref).filter(|r| !r.is_empty()),
        file: finding.file,
        finding: Finding {
            rule,
            severity: if finding.severity == pb::Severity::Warning as i32 {
                Severity::Warning
            } else {
                Severity::Error
            },
            path: finding.path,
            message: finding.message,
            position: finding.position.map(|p| Position {
                line: p.line,
                column: p.column,
            }),
        },
        recorded_at: 0,
    })
}

/// A batch as it arrives over gRPC or the bus, checked.
pub fn from_proto_batch(request: pb::ApplyBatchRequest) -> Result<Batch, Status> {
    let non_empty = |text: String| Some(text).filter(|t| !t.is_empty());
    let upserts = request
        .upserts
        .into_iter()
        .enumerate()
        .map(|(index, upsert)| {
            let body = serde_json::from_slice(&upsert.body_json).map_err(|e| {
                Status::invalid_argument(format!("upsert {index}: body is not JSON: {e}"))
            })?;
            Ok(Upsert {
                body,
                edges: upsert
                    .edges
                    .into_iter()
                    .map(|edge| cadastre_model::RelationEdge {
                        source: edge.source_ref,
                        relation_type: edge.r#type,
                        target: edge.target_ref,
                    })
                    .collect(),
                location_key: non_empty(upsert.location_key),
                origin_location: non_empty(upsert.origin_location),
                parent_ref: non_empty(upsert.parent_ref),
                commit: non_empty(upsert.commit),
            })
        })
        .collect::<Result<_, Status>>()?;
    let errors = request
        .errors
        .into_iter()
        .map(|group| {
            let errors = group
                .errors
                .into_iter()
                .map(|error| from_proto_error(&group.location_key, error))
                .collect::<Result<_, Status>>()?;
            Ok(LocationErrors {
                location_key: group.location_key,
                errors,
            })
        })
        .collect::<Result<_, Status>>()?;
    Ok(Batch {
        upserts,
        removals: request.removals,
        errors,
        replaced_locations: request.replaced_locations,
    })
}

/// The store's predicate from its proto form.
pub fn from_proto_predicate(predicate: pb::Predicate) -> Result<Predicate, Status> {
    use pb::field_condition::Condition as PbCondition;
    use pb::predicate::Kind;
    let invalid =
        |message: &str| Status::invalid_argument(format!("malformed predicate: {message}"));
    match predicate.kind.ok_or_else(|| invalid("empty predicate"))? {
        Kind::All(list) => Ok(Predicate::All(
            list.items
                .into_iter()
                .map(from_proto_predicate)
                .collect::<Result<_, _>>()?,
        )),
        Kind::Any(list) => Ok(Predicate::Any(
            list.items
                .into_iter()
                .map(from_proto_predicate)
                .collect::<Result<_, _>>()?,
        )),
        Kind::Not(inner) => Ok(Predicate::Not(Box::new(from_proto_predicate(*inner)?))),
        Kind::Field(field) => {
            if field.key.is_empty() {
                return Err(invalid("a field condition needs a key"));
            }
            let condition = match field
                .condition
                .ok_or_else(|| invalid("a field condition needs a condition"))?
            {
                PbCondition::Exists(exists) => Condition::Exists(exists),
                PbCondition::In(list) => {
                    Condition::In(list.values.iter().map(|v| v.to_lowercase()).collect())
                }
                PbCondition::HasPrefix(prefix) => Condition::HasPrefix(prefix.to_lowercase()),
                PbCondition::Relation(relation) => Condition::Relation {
                    relation_type: relation.relation_type.to_lowercase(),
                    targets: relation.targets.iter().map(|t| t.to_lowercase()).collect(),
                },
            };
            Ok(Predicate::Field {
                key: field.key.to_lowercase(),
                condition,
            })
        }
    }
}

/// The proto form of a predicate (for clients).
pub use cadastre_query::wire::to_proto as to_proto_predicate;

fn time_or_empty(micros: i64) -> String {
    if micros == 0 {
        String::new()
    } else {
        to_rfc3339(micros)
    }
}

pub fn to_proto_receipt(receipt: crate::Receipt) -> pb::HarvestReceipt {
    pb::HarvestReceipt {
        harvest_id: receipt.harvest_id,
        location_key: receipt.location_key,
        trigger: receipt.trigger,
        reason: receipt.reason,
        commit: receipt.commit,
        files_read: receipt.files_read,
        files_unchanged: receipt.files_unchanged,
        created: receipt.created,
        updated: receipt.updated,
        unchanged: receipt.unchanged,
        removed: receipt.removed,
        failed: receipt.failed,
        conflicts: receipt.conflicts,
        changed_refs: receipt.changed_refs,
        removed_refs: receipt.removed_refs,
        failed_files: receipt.failed_files,
        harvest_started_at: time_or_empty(receipt.harvest_started_at),
        harvest_finished_at: time_or_empty(receipt.harvest_finished_at),
        processed_at: time_or_empty(receipt.processed_at),
        applied_at: time_or_empty(receipt.applied_at),
        parts: receipt.parts,
        parts_applied: receipt.parts_applied,
    }
}

/// A processed batch as it arrives on the bus, checked.
pub fn from_proto_processed(message: pb::ProcessedBatch) -> Result<crate::ProcessedBatch, Status> {
    let time = |text: &str| crate::time_util::from_rfc3339(text).unwrap_or_default();
    let receipt = message.receipt.unwrap_or_default();
    Ok(crate::ProcessedBatch {
        batch_id: message.batch_id,
        batch: from_proto_batch(message.batch.unwrap_or_default())?,
        receipt: crate::Receipt {
            harvest_id: message.harvest_id,
            location_key: message.location_key,
            trigger: receipt.trigger,
            reason: receipt.reason,
            commit: receipt.commit,
            files_read: receipt.files_read,
            files_unchanged: receipt.files_unchanged,
            failed: receipt.failed,
            failed_files: receipt.failed_files,
            harvest_started_at: time(&receipt.harvest_started_at),
            harvest_finished_at: time(&receipt.harvest_finished_at),
            processed_at: time(&receipt.processed_at),
            parts: receipt.parts,
            ..crate::Receipt::default()
        },
    })
}
