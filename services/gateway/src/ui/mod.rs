//! The web UI, rendered on the server as plain HTML from the same backends as the REST API:
//! the catalog (`/`), search (`/search`), entity pages (`/catalog/{namespace}/{kind}/{name}`,
//! with API definitions, group and user sections, links to configured tools (`tools`), a
//! relations graph and history), registering a location (`/register`) and ingestion
//! (`/ingestion`). Pages work without JavaScript; `app.js` adds suggestions to the search box
//! and the graph's highlighting, filters and zoom. Static files are embedded and served under
//! hashed names (`assets`). The catalog page's facet counts are reused for a moment per view
//! (`facet_cache`). The gateway mounts these routes behind the same tokens and limits as the
//! read API; errors become HTML pages ([`html_errors`]) instead of Backstage's JSON body.

mod api_definition;
mod assets;
mod catalog_page;
pub mod dangling;
mod entity_page;
mod facet_cache;
mod graph;
mod html;
mod ingestion_page;
mod layout;
mod people;
mod register_page;
mod search_page;
mod sign_in;
mod tools;

pub use tools::{Tool, UiSettings, check_tools, default_tools};

/// The catalog page's facet counts, by filter set.
pub(crate) type CatalogFacets = facet_cache::FacetCache<Vec<cadastre_proto::v1::Facet>>;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;

use crate::Gateway;
use crate::error::ApiError;

/// The UI's routes; anything else under `/` is the UI's 404 page.
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/", get(catalog_page::catalog))
        .route("/search", get(search_page::search))
        .route(
            "/catalog/{namespace}/{kind}/{name}",
            get(entity_page::entity),
        )
        .route(
            "/catalog/{namespace}/{kind}/{name}/tools/{tool}",
            get(entity_page::tool_tab),
        )
        .route(
            "/register",
            get(register_page::form).post(register_page::submit),
        )
        .route("/register/done", get(register_page::done))
        .route("/ingestion", get(ingestion_page::ingestion))
        .route("/static/{file}", get(assets::serve))
        .fallback(not_found)
}

/// The pages that need no token: signing in and out.
pub fn sign_in_routes() -> Router<Gateway> {
    Router::new()
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", axum::routing::post(sign_in::sign_out))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("There is no page at {}", uri.path()))
}

/// Turns error answers (an [`ApiError`] from a handler, the auth check or the limits, or the
/// framework's own refusals) into HTML pages with the same status, keeping headers such as
/// `Retry-After`.
pub async fn html_errors(request: Request, next: Next) -> Response {
    let asked_for = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let message = match response.extensions().get::<ApiError>() {
        Some(error) => error.message.clone(),
        None if (status.is_client_error() || status.is_server_error())
            && !response.headers().contains_key(header::CONTENT_TYPE) =>
        {
            status
                .canonical_reason()
                .unwrap_or("The request failed")
                .to_owned()
        }
        None => return response,
    };
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(%status, message, "a page failed");
    }
    let sign_in = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        .then_some(asked_for.as_str());
    let mut page = layout::respond(status, layout::error_page(status, &message, sign_in));
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            page.headers_mut().insert(name.clone(), value.clone());
        }
    }
    page
}
