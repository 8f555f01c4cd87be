//! `SearchService` over gRPC, with the standard health service and reflection, on a listener
//! the caller bound (tests bind port 0).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cadastre_proto::serve::{serve, standard_routes};
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::search_service_server::{SearchService, SearchServiceServer};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::indexer::Indexer;
use crate::query::{FacetField, Filters, SearchQuery, suggestion_limit};
use crate::{Hit, SearchBackend};

pub use cadastre_proto::serve::{DEFAULT_GRACE_PERIOD, ServeError};

/// The service: queries go to the backend; rebuilds need the indexer (and so the store).
#[derive(Debug, Clone)]
pub struct SearchGrpc {
    backend: Arc<dyn SearchBackend>,
    indexer: Option<Arc<Indexer>>,
}

impl SearchGrpc {
    pub fn new(backend: Arc<dyn SearchBackend>, indexer: Option<Arc<Indexer>>) -> SearchGrpc {
        SearchGrpc { backend, indexer }
    }

    /// The index it answers from.
    pub fn backend(&self) -> &Arc<dyn SearchBackend> {
        &self.backend
    }

    pub fn into_server(self) -> SearchServiceServer<SearchGrpc> {
        SearchServiceServer::new(self)
    }
}

/// The checked query of a request.
pub fn from_proto_request(request: &pb::SearchRequest) -> Result<SearchQuery, crate::SearchError> {
    let filters = request.filters.clone().unwrap_or_default();
    let filters = Filters::default()
        .with(FacetField::Kind, &filters.kinds)
        .with(FacetField::Type, &filters.types)
        .with(FacetField::Owner, &filters.owners)
        .with(FacetField::Lifecycle, &filters.lifecycles)
        .with(FacetField::Tags, &filters.tags)
        .with(FacetField::Namespace, &filters.namespaces);
    SearchQuery::new(
        &request.query,
        filters,
        &request.facets,
        request.limit,
        &request.cursor,
        request.highlight,
    )
}

fn to_proto_hit(hit: Hit) -> pb::SearchHit {
    let doc = hit.document;
    pb::SearchHit {
        entity_ref: doc.entity_ref,
        kind: doc.kind,
        namespace: doc.namespace,
        name: doc.name,
        title: doc.title,
        description: doc.description,
        owner: doc.owner,
        r#type: doc.entity_type,
        lifecycle: doc.lifecycle,
        tags: doc.tags,
        system: doc.system,
        etag: doc.etag,
        score: hit.score,
        highlights: hit
            .highlights
            .into_iter()
            .map(|(field, fragment)| pb::SearchHighlight { field, fragment })
            .collect(),
    }
}

#[tonic::async_trait]
impl SearchService for SearchGrpc {
    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let query = from_proto_request(request.get_ref())?;
        let results = self.backend.search(&query).await?;
        Ok(Response::new(pb::SearchResponse {
            next_cursor: query.next_cursor(results.total).unwrap_or_default(),
            total: results.total,
            total_is_lower_bound: results.total_is_lower_bound,
            hits: results.hits.into_iter().map(to_proto_hit).collect(),
            facets: results
                .facets
                .into_iter()
                .map(|(field, values)| pb::SearchFacet {
                    field: field.name().to_owned(),
                    values: values
                        .into_iter()
                        .map(|(value, count)| pb::SearchFacetValue { value, count })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn suggest(
        &self,
        request: Request<pb::SuggestRequest>,
    ) -> Result<Response<pb::SuggestResponse>, Status> {
        let request = request.into_inner();
        let limit = suggestion_limit(request.limit)?;
        let suggestions = self.backend.suggest(&request.prefix, limit).await?;
        Ok(Response::new(pb::SuggestResponse {
            suggestions: suggestions
                .into_iter()
                .map(|s| pb::Suggestion {
                    entity_ref: s.entity_ref,
                    kind: s.kind,
                    name: s.name,
                    title: s.title,
                })
                .collect(),
        }))
    }

    async fn rebuild(
        &self,
        _request: Request<pb::RebuildRequest>,
    ) -> Result<Response<pb::RebuildResponse>, Status> {
        let Some(indexer) = &self.indexer else {
            return Err(Status::failed_precondition(
                "this search replica does not index (no catalog-store configured)",
            ));
        };
        let report = indexer.rebuild().await.map_err(|error| match error {
            crate::SearchError::InvalidArgument(message) => Status::failed_precondition(message),
            other => Status::from(other),
        })?;
        Ok(Response::new(pb::RebuildResponse {
            index: report.index,
            entities: report.entities,
            sequence: report.sequence,
            duration_ms: report.duration.as_millis() as u64,
        }))
    }

    async fn get_index_status(
        &self,
        _request: Request<pb::GetIndexStatusRequest>,
    ) -> Result<Response<pb::IndexStatus>, Status> {
        let index = self.backend.serving().await?;
        Ok(Response::new(pb::IndexStatus {
            documents: self.backend.count(&index).await?,
            sequence: self.backend.checkpoint(&index).await?,
            backend: self.backend.backend_name().to_owned(),
            rebuilding: self
                .indexer
                .as_ref()
                .is_some_and(|indexer| indexer.is_rebuilding()),
            index,
        }))
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then drains in-flight calls for
/// at most `grace_period`.
pub async fn run(
    service: SearchGrpc,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    grace_period: Duration,
) -> Result<(), ServeError> {
    tracing::info!(address = ?listener.local_addr().ok(), backend = service.backend.backend_name(), "search serving gRPC");
    let routes = standard_routes::<SearchServiceServer<SearchGrpc>>()
        .await?
        .add_service(service.into_server());
    serve(routes, listener, shutdown, grace_period).await
}
