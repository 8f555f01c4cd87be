//! Bearer tokens with scopes. A read (GET, and the POST routes that only read) needs `read`,
//! anything else `write`; `admin` includes both, `write` includes `read`. Reads may be open to
//! anonymous callers. Tokens are compared in constant time.
//!
//! A browser signs in on the UI's `/sign-in` page, which keeps the token in an `HttpOnly`,
//! `SameSite=Strict` cookie ([`SESSION_COOKIE`]). The cookie counts for the UI's pages (whose
//! forms check their origin) and for the API's plain reads (GET and HEAD, as the pages'
//! scripts make); the API's writes take the `Authorization` header only.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// Who may call.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// (token, scope).
    pub tokens: Vec<(String, Scope)>,
    /// Reads without a token.
    pub anonymous_reads: bool,
    /// No token needed at all: a single user's laptop (the embedded mode on loopback).
    pub open: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("anonymous_reads", &self.anonymous_reads)
            .field("open", &self.open)
            .finish()
    }
}

impl Auth {
    /// The scope a bearer `token` grants, if any.
    pub(crate) fn scope_of(&self, token: &str) -> Option<Scope> {
        // Every configured token is compared, each in constant time.
        let mut found = None;
        if token.is_empty() {
            return None;
        }
        for (known, scope) in &self.tokens {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(*scope);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request needs.
fn needed(method: &Method, path: &str) -> Scope {
    let reading_post = path.ends_with("/entities/by-refs")
        || path.ends_with("/entities/by-query")
        || path.ends_with("/entity-facets")
        || path.ends_with("/locations/by-query")
        || path.ends_with("/validate-files")
        || path.ends_with("/validate-entity")
        || path.ends_with("/analyze-location");
    if method == Method::GET || method == Method::HEAD || (method == Method::POST && reading_post) {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// The cookie a signed-in browser holds its token in (percent-encoded).
pub const SESSION_COOKIE: &str = "cadastre_token";

/// The token in the request's [`SESSION_COOKIE`], if any.
pub(crate) fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then(|| {
                url::form_urlencoded::parse(format!("t={value}").as_bytes())
                    .next()
                    .map(|(_, token)| token.into_owned())
                    .unwrap_or_default()
            })
        })
        .filter(|token| !token.is_empty())
}

/// The token check for the API: the `Authorization` header, or the sign-in cookie for GET
/// and HEAD.
pub async fn check(
    State(auth): State<std::sync::Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    let cookie_counts = matches!(*request.method(), Method::GET | Method::HEAD);
    check_with(&auth, cookie_counts, request, next).await
}

/// The token check for the UI's pages: the `Authorization` header or the sign-in cookie.
pub async fn check_page(
    State(auth): State<std::sync::Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    check_with(&auth, true, request, next).await
}

async fn check_with(auth: &Auth, cookie_counts: bool, request: Request, next: Next) -> Response {
    if auth.open {
        return next.run(request).await;
    }
    let needed = needed(request.method(), request.uri().path());
    let header_token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = header_token.or_else(|| {
        cookie_counts
            .then(|| session_token(request.headers()))
            .flatten()
    });
    let token = token.as_deref();
    let granted = match token {
        Some(token) => match auth.scope_of(token.trim()) {
            Some(scope) => scope,
            None => {
                return ApiError {
                    name: "AuthenticationError",
                    message: "The bearer token is not valid".into(),
                }
                .into_response();
            }
        },
        None if needed == Scope::Read && auth.anonymous_reads => Scope::Read,
        None => {
            return ApiError {
                name: "AuthenticationError",
                message: "This request needs a bearer token (Authorization: Bearer …)".into(),
            }
            .into_response();
        }
    };
    if granted < needed {
        return ApiError::not_allowed(format!(
            "This token may {}; this request needs write",
            if granted == Scope::Read {
                "only read"
            } else {
                "not do this"
            }
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_order_and_reading_posts() {
        assert!(Scope::Admin > Scope::Write && Scope::Write > Scope::Read);
        assert_eq!(needed(&Method::POST, "/entities/by-refs"), Scope::Read);
        assert_eq!(needed(&Method::POST, "/locations"), Scope::Write);
        assert_eq!(needed(&Method::DELETE, "/locations/x"), Scope::Write);
        let auth = Auth {
            tokens: vec![
                ("secret-1".into(), Scope::Read),
                ("secret-2".into(), Scope::Write),
            ],
            ..Auth::default()
        };
        assert_eq!(auth.scope_of("secret-2"), Some(Scope::Write));
        assert_eq!(auth.scope_of("secret-3"), None);
        assert_eq!(auth.scope_of("secret"), None);
    }
}
