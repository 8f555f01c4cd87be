//! `/register`: add a location through a form that works without JavaScript. The form posts
//! the location's type and target; `action=preview` reads it now with the same previewer as
//! `POST /api/catalog/locations?dryRun=true` (nothing stored) and shows the entities it would
//! add and any errors, with a confirm button; `action=register` adds the location, asks the
//! harvester to read it (as `POST /locations` does) and redirects to `/register/done?id=…`.
//!
//! Posts need what the API's writes need (a write token unless the gateway is open) and come
//! from this origin only: a browser sends credentials with any form, so a post whose `Origin`
//! is another site (or `Sec-Fetch-Site: cross-site`) is refused.

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cadastre_proto::v1 as pb;

use super::html::{entity_path, esc, names, query, ref_link};
use super::layout;
use crate::Gateway;
use crate::catalog::check_location_type;
use crate::error::ApiError;
use crate::params::Params;

/// The most entities a preview lists.
const PREVIEW_SHOWN: usize = 200;

/// `GET /register`: the empty form.
pub(crate) async fn form(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw_query.as_deref(), &["type", "target"])?;
    let types = &gateway.settings().location_types;
    let chosen = params
        .one("type")?
        .map(str::to_owned)
        .unwrap_or_else(|| default_type(types));
    let mut main = String::new();
    heading(&mut main);
    let auth = &gateway.settings().auth;
    let may_write = auth.open
        || crate::auth::session_token(&headers)
            .and_then(|token| auth.scope_of(&token))
            .is_some_and(|scope| scope >= crate::auth::Scope::Write);
    if !may_write {
        main.push_str(
            "<p class=\"notice\">Registering needs a token with the write scope: \
             <a class=\"sign-in-link\" href=\"/sign-in?next=%2Fregister\">sign in</a> \
             first.</p>",
        );
    }
    form_html(
        &mut main,
        types,
        &chosen,
        params.one("target")?.unwrap_or_default(),
    );
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Register", "", &main),
    ))
}

/// `POST /register`: a dry run (`action=preview`) or the registration (`action=register`).
pub(crate) async fn submit(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let mut location_type = String::new();
    let mut target = String::new();
    let mut action = String::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        match &*key {
            "type" => location_type = value.trim().to_owned(),
            "target" => target = value.trim().to_owned(),
            "action" => action = value.into_owned(),
            _ => {}
        }
    }
    let types = gateway.settings().location_types.clone();
    let problem = if target.is_empty() {
        Some("Give the URL of a catalog-info.yaml (or of a repository).".to_owned())
    } else {
        check_location_type(&gateway, &location_type)
            .err()
            .map(|error| error.message)
    };
    if let Some(problem) = problem {
        let mut main = String::new();
        heading(&mut main);
        let _ = write!(
            main,
            "<p class=\"notice error\" role=\"alert\">{}</p>",
            esc(&problem)
        );
        form_html(&mut main, &types, &location_type, &target);
        return Ok(layout::respond(
            StatusCode::BAD_REQUEST,
            layout::document("Register", "", &main),
        ));
    }
    match action.as_str() {
        "register" => register(&gateway, &location_type, &target).await,
        "preview" | "" => preview(&gateway, &types, &location_type, &target).await,
        other => Err(ApiError::input(format!(
            "The form's action is preview or register, not {other:?}"
        ))),
    }
}

async fn preview(
    gateway: &Gateway,
    types: &[String],
    location_type: &str,
    target: &str,
) -> Result<Response, ApiError> {
    let (exists, preview) =
        crate::catalog::preview_location(gateway, location_type, target).await?;
    let mut main = String::new();
    heading(&mut main);
    form_html(&mut main, types, location_type, target);
    let _ = write!(
        main,
        "<section class=\"card preview\" aria-labelledby=\"preview\"><h2 id=\"preview\">Preview</h2>\
         <p class=\"summary\">Registering <code>{}</code> would add {} entities{}.</p>",
        esc(&format!("{location_type}:{target}")),
        preview.entities.len(),
        if preview.errors.is_empty() {
            String::new()
        } else {
            format!(" and report {} errors", preview.errors.len())
        }
    );
    if !preview.errors.is_empty() {
        main.push_str("<h3>Errors</h3><ul class=\"preview-errors\">");
        for error in &preview.errors {
            let _ = write!(main, "<li>{}</li>", esc(error));
        }
        main.push_str("</ul>");
    }
    main.push_str(
        "<div class=\"table-wrap\"><table class=\"preview-entities\"><thead><tr>\
         <th scope=\"col\">Kind</th><th scope=\"col\">Name</th><th scope=\"col\">Title</th>\
         <th scope=\"col\">Owner</th></tr></thead><tbody>",
    );
    for entity in preview.entities.iter().take(PREVIEW_SHOWN) {
        let names = names(entity);
        let owner = entity["spec"]["owner"]
            .as_str()
            .map(|owner| ref_link(owner, Some("group"), &names.namespace))
            .unwrap_or_default();
        let _ = write!(
            main,
            "<tr><td>{}</td><th scope=\"row\">{}</th><td>{}</td><td>{owner}</td></tr>",
            esc(&names.kind),
            esc(&format!("{}/{}", names.namespace, names.name)),
            esc(&names.title),
        );
    }
    main.push_str("</tbody></table></div>");
    if preview.entities.len() > PREVIEW_SHOWN {
        let _ = write!(
            main,
            "<p class=\"subtle\">The first {PREVIEW_SHOWN} of {} are listed.</p>",
            preview.entities.len()
        );
    }
    if exists {
        main.push_str(
            "<p class=\"notice\">This location is registered already: the harvester keeps it \
             up to date.</p>",
        );
    } else if !preview.errors.is_empty() {
        main.push_str(
            "<p class=\"notice error\">Fix these errors, then preview again before registering.</p>",
        );
    } else {
        let _ = write!(
            main,
            "<form method=\"post\" action=\"/register\" class=\"confirm\">\
             <input type=\"hidden\" name=\"type\" value=\"{}\">\
             <input type=\"hidden\" name=\"target\" value=\"{}\">\
             <button type=\"submit\" name=\"action\" value=\"register\">Register this location</button>\
             </form>",
            esc(location_type),
            esc(target)
        );
    }
    main.push_str("</section>");
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Register: preview", "", &main),
    ))
}

async fn register(
    gateway: &Gateway,
    location_type: &str,
    target: &str,
) -> Result<Response, ApiError> {
    let location = crate::catalog::register_location(gateway, location_type, target, false).await?;
    // Post, redirect, get: reloading the answer does not register again.
    Ok((
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            format!("/register/done{}", query([("id", location.id.as_str())])),
        )],
    )
        .into_response())
}

/// `GET /register/done?id=…`: what was registered, and where to follow it.
pub(crate) async fn done(
    State(gateway): State<Gateway>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw_query.as_deref(), &["id"])?;
    let id = params
        .one("id")?
        .ok_or_else(|| ApiError::input("Which location? (id=…)"))?;
    let location = gateway
        .catalog()
        .get_location(pb::GetLocationRequest { id: id.to_owned() })
        .await?
        .into_inner();
    let key = format!("{}:{}", location.r#type, location.target);
    let location_entity = location
        .entity_ref
        .split_once(':')
        .and_then(|(kind, rest)| {
            let (namespace, name) = rest.split_once('/')?;
            Some(entity_path(namespace, kind, name))
        });
    let mut main = String::new();
    let _ = write!(
        main,
        "<section class=\"card registered\"><h1>Registered</h1>\
         <p class=\"notice ok\" role=\"status\">The location <code>{key}</code> was registered. \
         The harvester reads it now; its entities appear in the catalog in a moment.</p>\
         <dl class=\"about\"><dt>Id</dt><dd><code>{id}</code></dd><dt>Type</dt><dd>{ty}</dd>\
         <dt>Target</dt><dd class=\"file\">{target}</dd>",
        key = esc(&key),
        id = esc(&location.id),
        ty = esc(&location.r#type),
        target = esc(&location.target),
    );
    if let Some(path) = location_entity {
        let _ = write!(
            main,
            "<dt>Entity</dt><dd><a href=\"{}\">{}</a></dd>",
            esc(&path),
            esc(&location.entity_ref)
        );
    }
    let _ = write!(
        main,
        "</dl><p><a href=\"/ingestion{}\">Follow its harvests and errors</a> · \
         <a href=\"/register\">Register another</a></p></section>",
        esc(&query([("location", key.as_str())]))
    );
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Registered", "", &main),
    ))
}

fn heading(out: &mut String) {
    out.push_str(
        "<h1>Register</h1><p class=\"subtle\">Add a catalog-info.yaml (or a repository) to the \
         catalog. Preview first: nothing is stored until you confirm.</p>",
    );
}

fn default_type(types: &[String]) -> String {
    if types.iter().any(|t| t == "url") {
        "url".to_owned()
    } else {
        types.first().cloned().unwrap_or_default()
    }
}

/// The form, holding `chosen` and `target`; a type choice when more than one is allowed.
fn form_html(out: &mut String, types: &[String], chosen: &str, target: &str) {
    let allows_files = types.iter().any(|t| t == "file");
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/register\" class=\"card register-form\">\
         <div class=\"field\"><label for=\"target\">{label}</label>\
         <input id=\"target\" name=\"target\" type=\"text\" required value=\"{target}\" \
         placeholder=\"https://github.com/org/repo/blob/main/catalog-info.yaml\" \
         autocomplete=\"off\" spellcheck=\"false\"></div>",
        label = if allows_files {
            "URL or path of a catalog-info.yaml"
        } else {
            "URL of a catalog-info.yaml or repository"
        },
        target = esc(target),
    );
    if types.len() > 1 {
        out.push_str(
            "<div class=\"field\"><label for=\"type\">Type</label><select id=\"type\" name=\"type\">",
        );
        for kind in types {
            let _ = write!(
                out,
                "<option value=\"{kind}\"{selected}>{kind}</option>",
                kind = esc(kind),
                selected = if kind == chosen { " selected" } else { "" }
            );
        }
        out.push_str("</select></div>");
    } else {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"type\" value=\"{}\">",
            esc(&default_type(types))
        );
    }
    out.push_str(
        "<div class=\"actions\"><button type=\"submit\" name=\"action\" value=\"preview\">Preview</button></div></form>",
    );
}

/// Refuses a post another site made a browser send: `Origin` present and not this host, or
/// the browser saying the request is cross-site.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = || ApiError::not_allowed("Forms are accepted from this site's own pages only");
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site")
    {
        return Err(refused());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .ok_or_else(refused)?
        .to_ascii_lowercase();
    let origin = origin
        .to_str()
        .ok()
        .and_then(|origin| url::Url::parse(origin).ok())
        .ok_or_else(refused)?;
    let Some(origin_host) = origin.host_str() else {
        return Err(refused());
    };
    let origin_authority = match origin.port() {
        Some(port) => format!("{origin_host}:{port}"),
        None => origin_host.to_owned(),
    };
    // `Host: example.com:443` names the same site as `Origin: https://example.com`.
    let default_port = origin
        .port_or_known_default()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let host = host
        .strip_suffix(default_port.as_str())
        .filter(|_| origin.port().is_none() && !default_port.is_empty())
        .unwrap_or(&host);
    if host == origin_authority.to_ascii_lowercase() {
        Ok(())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (key, value) in pairs {
            map.insert(*key, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_this_origin_may_post() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:7007")])).is_ok());
        assert!(
            same_origin(&headers(&[
                ("host", "127.0.0.1:7007"),
                ("origin", "http://127.0.0.1:7007")
            ]))
            .is_ok()
        );
        assert!(
            same_origin(&headers(&[
                ("host", "example.com:443"),
                ("origin", "https://example.com")
            ]))
            .is_ok()
        );
        for (host, origin) in [
            ("127.0.0.1:7007", "http://evil.example"),
            ("127.0.0.1:7007", "http://127.0.0.1:7008"),
            ("127.0.0.1:7007", "null"),
        ] {
            assert!(
                same_origin(&headers(&[("host", host), ("origin", origin)])).is_err(),
                "{origin}"
            );
        }
        assert!(
            same_origin(&headers(&[
                ("host", "127.0.0.1:7007"),
                ("sec-fetch-site", "cross-site")
            ]))
            .is_err()
        );
    }
}
