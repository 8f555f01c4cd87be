//! The UI's static files, embedded in the binary and served at URLs that carry a hash of their
//! bytes (`/static/app.<hash>.css`): a browser may keep them forever, and a new build changes
//! the URL, so no cache ever serves a stale stylesheet with a new page.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

use crate::error::ApiError;

/// One embedded file and its hashed name.
#[derive(Debug)]
pub(crate) struct Asset {
    /// `app.<hash>.css`.
    file: String,
    /// `/static/app.<hash>.css`.
    url: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Asset {
        let digest = sha2::Sha256::digest(body.as_bytes());
        // 16 hex digits: collisions between builds of three files are not a concern.
        let hash = hex::encode(&digest[..8]);
        let file = format!("{stem}.{hash}.{extension}");
        Asset {
            url: format!("/static/{file}"),
            file,
            content_type,
            body,
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

pub(crate) static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    )
});

pub(crate) static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
});

pub(crate) static ICON: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "icon",
        "svg",
        "image/svg+xml",
        include_str!("assets/icon.svg"),
    )
});

/// `GET /static/{file}`: an embedded file by its hashed name; any other name is 404, so an old
/// page asking for a previous build's file gets no mismatched one.
pub(crate) async fn serve(Path(file): Path<String>) -> Result<Response, ApiError> {
    let asset = [&*CSS, &*JS, &*ICON]
        .into_iter()
        .find(|asset| asset.file == file)
        .ok_or_else(|| ApiError::not_found(format!("No static file {file}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_hash_of_the_bytes() {
        let expected = hex::encode(&sha2::Sha256::digest(include_str!("assets/app.css"))[..8]);
        assert_eq!(CSS.url(), format!("/static/app.{expected}.css"));
        assert!(JS.url().starts_with("/static/app.") && JS.url().ends_with(".js"));
        assert_ne!(CSS.file, JS.file);
    }
}
