//! `/catalog/{namespace}/{kind}/{name}`: one entity — header, About card (with the source and
//! edit links of its annotations), relations by type (each a link), the processing errors kept
//! for it, and its served JSON. Two store calls, whatever the catalog's size.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use cadastre_proto::v1 as pb;
use cadastre_query::Projection;
use serde_json::Value;

use super::html::{self, esc, names, ref_link, safe_url};
use super::layout;
use crate::Gateway;
use crate::catalog::{entity_json, stored_by_name};
use crate::error::ApiError;

/// At most this many processing errors are listed on a page.
const ERRORS_SHOWN: u32 = 100;

/// `GET /catalog/{namespace}/{kind}/{name}`; the UI's 404 page for an unknown entity.
pub(crate) async fn entity(
    State(gateway): State<Gateway>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entity_ref = format!("{kind}:{namespace}/{name}").to_lowercase();
    let mut catalog = gateway.catalog();
    let (stored, errors) =
        futures::future::try_join(stored_by_name(&gateway, &kind, &namespace, &name), async {
            Ok::<_, ApiError>(
                catalog
                    .list_processing_errors(pb::ListProcessingErrorsRequest {
                        scope: Some(pb::list_processing_errors_request::Scope::EntityRef(
                            entity_ref.clone(),
                        )),
                        limit: ERRORS_SHOWN,
                    })
                    .await?
                    .into_inner()
                    .errors,
            )
        })
        .await?;
    let entity = entity_json(stored, &Projection::everything())?;
    let names = names(&entity);
    let (kind, namespace, name, title) = (names.kind, names.namespace, names.name, names.title);

    let mut main = String::with_capacity(16 * 1024);
    header_html(&mut main, &entity, &kind, &name, &title, &namespace);
    main.push_str("<div class=\"cards\">");
    about_html(&mut main, &entity, &namespace);
    relations_html(&mut main, &entity);
    main.push_str("</div>");
    errors_html(&mut main, &errors);
    let _ = write!(
        main,
        "<section class=\"card\" aria-labelledby=\"raw\"><h2 id=\"raw\">Entity JSON</h2>\
         <details><summary>Show the entity as the API serves it</summary>\
         <pre class=\"raw\"><code>{}</code></pre></details></section>",
        esc(&serde_json::to_string_pretty(&entity).unwrap_or_default())
    );
    Ok(layout::respond(
        StatusCode::OK,
        layout::document(&title, "", &main),
    ))
}

fn header_html(
    out: &mut String,
    entity: &Value,
    kind: &str,
    name: &str,
    title: &str,
    namespace: &str,
) {
    let _ = write!(
        out,
        "<header class=\"entity-header\"><p class=\"kind\">{kind}</p><h1>{title}</h1>\
         <p class=\"subtle ref\">{reference}</p><dl class=\"facts\">",
        kind = esc(kind),
        title = esc(title),
        reference = esc(&format!(
            "{}:{}/{}",
            kind.to_lowercase(),
            namespace.to_lowercase(),
            name
        )),
    );
    if let Some(owner) = entity["spec"]["owner"].as_str() {
        let _ = write!(
            out,
            "<div><dt>Owner</dt><dd>{}</dd></div>",
            ref_link(owner, Some("group"), namespace)
        );
    }
    if let Some(lifecycle) = entity["spec"]["lifecycle"].as_str() {
        let _ = write!(
            out,
            "<div><dt>Lifecycle</dt><dd>{}</dd></div>",
            esc(lifecycle)
        );
    }
    let tags: Vec<&str> = entity["metadata"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !tags.is_empty() {
        out.push_str("<div><dt>Tags</dt><dd>");
        html::tags(out, tags);
        out.push_str("</dd></div>");
    }
    out.push_str("</dl></header>");
}

fn about_html(out: &mut String, entity: &Value, namespace: &str) {
    out.push_str("<section class=\"card\" aria-labelledby=\"about\"><h2 id=\"about\">About</h2>");
    match entity["metadata"]["description"].as_str() {
        Some(description) if !description.trim().is_empty() => {
            let _ = write!(out, "<p class=\"description\">{}</p>", esc(description));
        }
        _ => out.push_str("<p class=\"subtle\">No description.</p>"),
    }
    out.push_str("<dl class=\"about\">");
    let spec = &entity["spec"];
    for (label, field, default_kind) in [
        ("System", "system", "system"),
        ("Domain", "domain", "domain"),
    ] {
        if let Some(reference) = spec[field].as_str() {
            let _ = write!(
                out,
                "<dt>{label}</dt><dd>{}</dd>",
                ref_link(reference, Some(default_kind), namespace)
            );
        }
    }
    if let Some(spec_type) = spec["type"].as_str() {
        let _ = write!(out, "<dt>Type</dt><dd>{}</dd>", esc(spec_type));
    }
    let annotations = &entity["metadata"]["annotations"];
    let source = annotations["backstage.io/source-location"]
        .as_str()
        .map(|location| location.strip_prefix("url:").unwrap_or(location))
        .and_then(safe_url);
    if let Some(source) = source {
        let _ = write!(
            out,
            "<dt>Source</dt><dd><a href=\"{}\" rel=\"noopener\">View source</a></dd>",
            esc(source)
        );
    }
    if let Some(edit) = annotations["backstage.io/edit-url"]
        .as_str()
        .and_then(safe_url)
    {
        let _ = write!(
            out,
            "<dt>Edit</dt><dd><a href=\"{}\" rel=\"noopener\">Edit the catalog file</a></dd>",
            esc(edit)
        );
    }
    out.push_str("</dl>");
    let links: Vec<(&str, &str)> = entity["metadata"]["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|link| {
            let url = link["url"].as_str().and_then(safe_url)?;
            Some((link["title"].as_str().unwrap_or(url), url))
        })
        .collect();
    if !links.is_empty() {
        out.push_str("<h3>Links</h3><ul class=\"links\">");
        for (title, url) in links {
            let _ = write!(
                out,
                "<li><a href=\"{}\" rel=\"noopener\">{}</a></li>",
                esc(url),
                esc(title)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

fn relations_html(out: &mut String, entity: &Value) {
    let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for relation in entity["relations"].as_array().into_iter().flatten() {
        if let (Some(kind), Some(target)) =
            (relation["type"].as_str(), relation["targetRef"].as_str())
        {
            by_type.entry(kind).or_default().push(target);
        }
    }
    out.push_str(
        "<section class=\"card\" aria-labelledby=\"relations\"><h2 id=\"relations\">Relations</h2>",
    );
    if by_type.is_empty() {
        out.push_str("<p class=\"subtle\">No relations.</p>");
    }
    for (relation, mut targets) in by_type {
        targets.sort_unstable();
        targets.dedup();
        let _ = write!(
            out,
            "<h3>{}</h3><ul class=\"relations\" data-relation=\"{}\">",
            esc(relation),
            esc(relation)
        );
        for target in targets {
            let _ = write!(out, "<li>{}</li>", ref_link(target, None, "default"));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

fn errors_html(out: &mut String, errors: &[pb::ProcessingError]) {
    out.push_str(
        "<section class=\"card\" aria-labelledby=\"errors\"><h2 id=\"errors\">Processing errors</h2>",
    );
    if errors.is_empty() {
        out.push_str(
            "<p class=\"subtle\">None: the last harvest read this entity cleanly.</p></section>",
        );
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table class=\"errors\"><thead><tr><th scope=\"col\">File</th>\
         <th scope=\"col\">Line</th><th scope=\"col\">Column</th><th scope=\"col\">Rule</th>\
         <th scope=\"col\">Field</th><th scope=\"col\">Message</th></tr></thead><tbody>",
    );
    for error in errors {
        let finding = error.finding.clone().unwrap_or_default();
        let file = if finding.file.is_empty() {
            &error.location_key
        } else {
            &finding.file
        };
        let (line, column) = finding
            .position
            .map(|p| (p.line.to_string(), p.column.to_string()))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td class=\"file\">{}</td><td>{line}</td><td>{column}</td><td><code>{}</code></td>\
             <td><code>{}</code></td><td>{}</td></tr>",
            esc(file),
            esc(&finding.rule),
            esc(&finding.path),
            esc(&finding.message),
        );
    }
    out.push_str("</tbody></table></div></section>");
}
