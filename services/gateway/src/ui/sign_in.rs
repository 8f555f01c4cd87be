//! `/sign-in` and `/sign-out`: a browser's way to use a gateway that needs tokens. The form
//! takes an API token; a valid one is kept in an `HttpOnly`, `SameSite=Strict` cookie
//! ([`auth::SESSION_COOKIE`]) for twelve hours, which the UI's pages (and the API's plain reads
//! their scripts make) accept like the `Authorization` header. These pages need no token
//! themselves, and their posts come from this origin only.

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::html::esc;
use super::layout;
use super::register_page::same_origin;
use crate::Gateway;
use crate::auth::{self, Scope};
use crate::error::ApiError;
use crate::params::Params;

/// How long a sign-in lasts.
const SESSION_SECONDS: u32 = 12 * 60 * 60;

/// `GET /sign-in?next=/path`: the form.
pub(crate) async fn form(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw_query.as_deref(), &["next"])?;
    let next = local_path(params.one("next")?.unwrap_or("/"));
    let auth = &gateway.settings().auth;
    let mut main = String::new();
    main.push_str("<h1>Sign in</h1>");
    if auth.open {
        main.push_str(
            "<p class=\"notice\">This gateway is open to everyone who can reach it: no sign-in \
             is needed.</p>",
        );
    } else if let Some(scope) = auth::session_token(&headers).and_then(|t| auth.scope_of(&t)) {
        let _ = write!(
            main,
            "<p class=\"notice\" role=\"status\">You are signed in (you may {}).</p>",
            scope_text(scope)
        );
    }
    form_html(&mut main, next, auth.open);
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Sign in", "", &main),
    ))
}

/// `POST /sign-in`: checks the token and, when valid, keeps it in the session cookie and
/// goes on to `next`.
pub(crate) async fn submit(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let mut token = String::new();
    let mut next = String::from("/");
    for (key, value) in url::form_urlencoded::parse(&body) {
        match &*key {
            "token" => token = value.trim().to_owned(),
            "next" => next = value.into_owned(),
            _ => {}
        }
    }
    let next = local_path(&next);
    let auth = &gateway.settings().auth;
    if auth.scope_of(&token).is_none() {
        let mut main = String::from("<h1>Sign in</h1>");
        main.push_str(
            "<p class=\"notice error\" role=\"alert\">That token is not one this gateway \
             knows.</p>",
        );
        form_html(&mut main, next, auth.open);
        return Ok(layout::respond(
            StatusCode::UNAUTHORIZED,
            layout::document("Sign in", "", &main),
        ));
    }
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let secure = if forwarded_https(&headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={encoded}; Path=/; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{secure}",
        auth::SESSION_COOKIE
    );
    Ok(see_other(next, &cookie))
}

/// `POST /sign-out`: forgets the session cookie.
pub(crate) async fn sign_out(headers: HeaderMap) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let cookie = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
        auth::SESSION_COOKIE
    );
    Ok(see_other("/", &cookie))
}

fn see_other(location: &str, cookie: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(cookie) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether a proxy in front says the browser came over HTTPS (then the cookie is `Secure`).
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// `next` when it is a path on this site; `/` otherwise, so the form cannot send a browser
/// elsewhere (`//host`, `/\host` and absolute URLs are refused).
fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read",
        Scope::Write => "read and write",
        Scope::Admin => "read, write and administer",
    }
}

fn form_html(out: &mut String, next: &str, open: bool) {
    if open {
        return;
    }
    let _ = write!(
        out,
        "<form class=\"card sign-in\" method=\"post\" action=\"/sign-in\">\
         <p>Paste an API token this gateway accepts (the same token clients send as \
         <code>Authorization: Bearer …</code>). It is kept in a cookie scripts cannot read, \
         for twelve hours or until you sign out.</p>\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"token\">Token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
         required>\
         <button type=\"submit\">Sign in</button></form>\
         <form class=\"sign-out\" method=\"post\" action=\"/sign-out\">\
         <button type=\"submit\" class=\"secondary\">Sign out</button></form>",
        next = esc(next),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path("/register?target=x"), "/register?target=x");
        for elsewhere in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "",
            "/a\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(local_path(elsewhere), "/", "{elsewhere:?}");
        }
    }
}
