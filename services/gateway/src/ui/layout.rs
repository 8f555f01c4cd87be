//! The frame every page shares: head (hashed assets), header with the search box, main.

use std::fmt::Write as _;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::html::esc;

/// What the content security policy allows: only this origin's files, no inline script or
/// style, so even markup that slipped through escaping could run nothing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A whole HTML document: `title` (plain text), the search box holding `search` (what was
/// searched for, if anything), and `main` (HTML).
pub(crate) fn document(title: &str, search: &str, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title} · Cadastre</title>\
         <link rel=\"icon\" href=\"{icon}\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"{css}\">\
         <script src=\"{js}\" defer></script></head>\n<body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"/\">Cadastre</a>\
         <nav aria-label=\"Main\"><a href=\"/\">Catalog</a> <a href=\"/register\">Register</a> \
         <a href=\"/ingestion\">Ingestion</a></nav>\
         <form class=\"search\" role=\"search\" action=\"/search\" method=\"get\">\
         <label for=\"q\" class=\"visually-hidden\">Search the catalog</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{search}\" placeholder=\"Search the catalog\" \
         autocomplete=\"off\" role=\"combobox\" aria-autocomplete=\"list\" aria-expanded=\"false\" \
         aria-controls=\"suggestions\" maxlength=\"100\">\
         <button type=\"submit\">Search</button>\
         <ul id=\"suggestions\" class=\"suggestions\" role=\"listbox\" aria-label=\"Suggestions\" hidden></ul>\
         </form></header>\n<main id=\"main\" tabindex=\"-1\">{main}</main>\n\
         <footer><a href=\"/api/catalog/openapi.json\">REST API</a></footer>\n</body></html>\n",
        title = esc(title),
        icon = assets::ICON.url(),
        css = assets::CSS.url(),
        js = assets::JS.url(),
        search = esc(search),
    );
    out
}

/// An HTML page answer with the headers every page carries.
pub(crate) fn respond(status: StatusCode, html: String) -> Response {
    with_policy(status, html, CSP.to_owned())
}

/// A page that frames another origin's page (an embedded tool's tab): the usual policy, and
/// frames from `origin` only (an origin as `Url::origin` serializes it: no quotes, spaces or
/// semicolons can be in it).
pub(crate) fn respond_framing(status: StatusCode, html: String, origin: &str) -> Response {
    with_policy(status, html, format!("{CSP}; frame-src {origin}"))
}

fn with_policy(status: StatusCode, html: String, policy: String) -> Response {
    let policy =
        header::HeaderValue::from_str(&policy).unwrap_or(header::HeaderValue::from_static(CSP));
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, policy),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                header::HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                header::HeaderValue::from_static("same-origin"),
            ),
            // Pages follow the catalog: always asked for again (assets are what is cached).
            (
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-cache"),
            ),
        ],
        html,
    )
        .into_response()
}

/// The page shown for an error: its status and the (escaped) message; with `sign_in` (the
/// path asked for), a link to sign in and come back.
pub(crate) fn error_page(status: StatusCode, message: &str, sign_in: Option<&str>) -> String {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "That request cannot be answered",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
        _ => "Something went wrong",
    };
    document(
        heading,
        "",
        &format!(
            "<section class=\"card error-page\"><h1>{heading}</h1><p>{}</p>{}\
             <p><a href=\"/\">Back to the catalog</a></p></section>",
            esc(message),
            sign_in.map_or_else(String::new, |path| {
                let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                format!(
                    "<p><a class=\"sign-in-link\" href=\"/sign-in?next={}\">Sign in with a \
                     token</a></p>",
                    esc(&next)
                )
            })
        ),
    )
}
