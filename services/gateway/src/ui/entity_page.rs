//! `/catalog/{namespace}/{kind}/{name}`: one entity — header, About card (with the source and
//! edit links of its annotations), relations by type (each a link), for API entities the
//! definition rendered (`api_definition`), for groups and users their members, groups and
//! what they own with its open errors (`people`), the relations graph (`graph`, `?depth=1|2`),
//! the processing errors kept for it, its history, and its served JSON; under the header,
//! links to the configured tools its annotations name (`tools`). A handful of store
//! calls (lookup, errors, history; errors by owner for groups and users; one by-refs call at
//! depth 2), whatever the catalog's size.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use cadastre_proto::v1 as pb;
use cadastre_query::Projection;
use serde_json::Value;

use super::html::{self, entity_path, esc, names, ref_link, safe_url};
use super::{api_definition, graph, layout, people, tools};
use crate::Gateway;
use crate::catalog::{entity_json, stored_by_name};
use crate::error::ApiError;
use crate::params::Params;

/// At most this many processing errors are listed on a page.
const ERRORS_SHOWN: u32 = 100;
/// At most this many targets are listed per relation type (a popular API has thousands of
/// consumers; each listed one is a link whose existence the page checks).
const RELATIONS_SHOWN: usize = 100;
/// The most recent changes shown.
const HISTORY_SHOWN: u32 = 20;
/// At most this many changed fields are named per change.
const CHANGES_NAMED: usize = 8;

/// `GET /catalog/{namespace}/{kind}/{name}`; the UI's 404 page for an unknown entity.
pub(crate) async fn entity(
    State(gateway): State<Gateway>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw_query.as_deref(), &["depth"])?;
    let depth: u8 = match params.one("depth")? {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(other) => {
            return Err(ApiError::input(format!(
                "The graph's depth is 1 or 2, not {other:?}"
            )));
        }
    };
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
                        cursor: String::new(),
                    })
                    .await?
                    .into_inner()
                    .errors,
            )
        })
        .await?;
    let entity = entity_json(&stored, &Projection::everything())?;
    let names = names(&entity);
    let (kind, namespace, name, title) = (names.kind, names.namespace, names.name, names.title);
    let relations = graph::relations_of(&entity);

    // What the other sections need, asked for at once.
    let history = async {
        Ok::<_, ApiError>(
            gateway
                .catalog()
                .get_entity_history(pb::GetEntityHistoryRequest {
                    entity_ref: entity_ref.clone(),
                    limit: HISTORY_SHOWN,
                })
                .await?
                .into_inner()
                .entries,
        )
    };
    let owner_errors = async {
        if !people::is_party(&kind) {
            return Ok(Vec::new());
        }
        Ok::<_, ApiError>(
            gateway
                .catalog()
                .list_processing_errors(pb::ListProcessingErrorsRequest {
                    scope: Some(pb::list_processing_errors_request::Scope::OwnerRef(
                        entity_ref.clone(),
                    )),
                    limit: people::OWNER_ERRORS_COUNTED,
                    cursor: String::new(),
                })
                .await?
                .into_inner()
                .errors,
        )
    };
    let neighbours = async {
        let mut neighbours = BTreeMap::new();
        let ring: Vec<String> = graph::first_ring(&entity_ref, &relations)
            .into_iter()
            .take(graph::MAX_NODES)
            .collect();
        if depth < 2 || ring.is_empty() {
            return Ok(neighbours);
        }
        let found = gateway
            .catalog()
            .get_entities_by_refs(pb::GetEntitiesByRefsRequest {
                entity_refs: ring,
                fields: Vec::new(),
                filter: None,
            })
            .await?
            .into_inner()
            .items;
        for stored in found.into_iter().filter_map(|item| item.entity) {
            let Some(reference) = stored.entity.as_ref().map(|e| e.entity_ref.to_lowercase())
            else {
                continue;
            };
            let body = entity_json(&stored, &Projection::everything())?;
            neighbours.insert(reference, graph::relations_of(&body));
        }
        Ok::<_, ApiError>(neighbours)
    };
    let (history, owner_errors, neighbours) =
        futures::future::try_join3(history, owner_errors, neighbours).await?;

    let mut main = String::with_capacity(16 * 1024);
    header_html(&mut main, &entity, &kind, &name, &title, &namespace);
    let embedded = tools::embedded_tools(&gateway.settings().ui.tools, &entity);
    tools::tabs_html(
        &mut main,
        &embedded,
        &entity_path(&namespace, &kind, &name),
        None,
    );
    tools::tools_html(&mut main, &gateway.settings().ui.tools, &entity);
    main.push_str("<div class=\"cards\">");
    about_html(&mut main, &entity, &namespace);
    relations_html(&mut main, &entity);
    main.push_str("</div>");
    if people::is_party(&kind) {
        people::party_html(&mut main, &entity, &entity_ref, &owner_errors);
    }
    api_definition::definition_html(&mut main, &entity);
    graph::graph_html(
        &mut main,
        &entity_ref,
        &relations,
        &neighbours,
        depth,
        &entity_path(&namespace, &kind, &name),
    );
    errors_html(&mut main, &errors);
    history_html(&mut main, &history);
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

/// `GET /catalog/{namespace}/{kind}/{name}/tools/{tool}`: an embedded tool's tab — the
/// entity's header and tabs, and the tool's page for this entity in a frame that only the
/// tool's own origin may fill. A tool that is not configured, not embedded, or has no page
/// for this entity (its annotation absent) is the UI's 404.
pub(crate) async fn tool_tab(
    State(gateway): State<Gateway>,
    Path((namespace, kind, name, tool)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let stored = stored_by_name(&gateway, &kind, &namespace, &name).await?;
    let entity = entity_json(&stored, &Projection::everything())?;
    let names = names(&entity);
    let (kind, namespace, name, title) = (names.kind, names.namespace, names.name, names.title);
    let embedded = tools::embedded_tools(&gateway.settings().ui.tools, &entity);
    let Some((shown, url, origin)) = embedded.iter().find_map(|(candidate, url)| {
        let origin = candidate.frame_origin()?;
        let same_origin = url::Url::parse(url)
            .is_ok_and(|parsed| parsed.origin().ascii_serialization() == origin);
        (candidate.slug() == tool && same_origin).then_some((*candidate, url.clone(), origin))
    }) else {
        return Err(ApiError::not_found(format!(
            "{title} has no tab named {tool:?}"
        )));
    };
    let path = entity_path(&namespace, &kind, &name);
    let mut main = String::with_capacity(4 * 1024);
    header_html(&mut main, &entity, &kind, &name, &title, &namespace);
    tools::tabs_html(&mut main, &embedded, &path, Some(&tool));
    let _ = write!(
        main,
        "<section class=\"tool-tab\" aria-label=\"{name}\">\
         <p class=\"subtle\">{name} for this entity, from <a href=\"{url}\" \
         rel=\"noopener noreferrer\" target=\"_blank\">{url_text}</a> (opens in a new tab).</p>\
         <iframe class=\"tool-frame\" src=\"{url}\" title=\"{name}\" loading=\"lazy\" \
         referrerpolicy=\"no-referrer\" \
         sandbox=\"allow-scripts allow-same-origin allow-forms allow-popups\"></iframe></section>",
        name = esc(&shown.name),
        url = esc(&url),
        url_text = esc(&url),
    );
    Ok(layout::respond_framing(
        StatusCode::OK,
        layout::document(&format!("{} · {title}", shown.name), "", &main),
        &origin,
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
        let more = targets.len().saturating_sub(RELATIONS_SHOWN);
        for target in targets.into_iter().take(RELATIONS_SHOWN) {
            let _ = write!(out, "<li>{}</li>", ref_link(target, None, "default"));
        }
        out.push_str("</ul>");
        if more > 0 {
            let _ = write!(
                out,
                "<p class=\"subtle\">… and {more} more (the entity's JSON below lists every \
                 relation).</p>"
            );
        }
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

fn history_html(out: &mut String, history: &[pb::HistoryEntry]) {
    out.push_str(
        "<section class=\"card\" aria-labelledby=\"history\"><h2 id=\"history\">History</h2>",
    );
    if history.is_empty() {
        out.push_str("<p class=\"subtle\">No recorded changes.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table class=\"history\"><thead><tr>\
         <th scope=\"col\">Generation</th><th scope=\"col\">Change</th><th scope=\"col\">When</th>\
         <th scope=\"col\">What changed</th><th scope=\"col\">Commit</th><th scope=\"col\">Location</th>\
         </tr></thead><tbody>",
    );
    // Newest first; each change is compared with the one before it.
    let mut entries: Vec<&pb::HistoryEntry> = history.iter().collect();
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.sequence));
    let bodies: Vec<Option<Value>> = entries
        .iter()
        .map(|entry| serde_json::from_slice(&entry.body_json).ok())
        .collect();
    for (at, entry) in entries.iter().enumerate() {
        let changed = match (&bodies[at], bodies.get(at + 1)) {
            (Some(new), Some(Some(old))) => {
                let mut paths = Vec::new();
                changed_paths(old, new, "", 0, &mut paths);
                if paths.is_empty() {
                    "<span class=\"subtle\">relations or bookkeeping only</span>".to_owned()
                } else {
                    let more = paths.len().saturating_sub(CHANGES_NAMED);
                    let mut text: String = paths
                        .iter()
                        .take(CHANGES_NAMED)
                        .map(|path| format!("<code>{}</code>", esc(path)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    if more > 0 {
                        let _ = write!(text, " and {more} more");
                    }
                    text
                }
            }
            _ if entry.change == "created" => "first version".to_owned(),
            _ if entry.change == "removed" => "removed".to_owned(),
            _ => "<span class=\"subtle\">earlier versions not shown</span>".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><time>{}</time></td><td>{changed}</td>\
             <td><code>{}</code></td><td class=\"file\">{}</td></tr>",
            entry.generation,
            esc(&entry.change),
            esc(&entry.recorded_at),
            esc(&entry.commit),
            esc(&entry.location_key),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// The dotted paths (to three levels) where `old` and `new` differ, leaving out relations and
/// the fields the store rewrites on every change.
fn changed_paths(old: &Value, new: &Value, prefix: &str, level: usize, out: &mut Vec<String>) {
    const SKIPPED: [&str; 5] = [
        "relations",
        "status",
        "metadata.uid",
        "metadata.etag",
        "metadata.generation",
    ];
    if old == new || SKIPPED.contains(&prefix) {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) if level < 3 => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                changed_paths(
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    &path,
                    level + 1,
                    out,
                );
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_named_by_path() {
        let old = json!({"metadata": {"name": "a", "etag": "1", "tags": ["x"]}, "spec": {"lifecycle": "beta"}, "relations": []});
        let new = json!({"metadata": {"name": "a", "etag": "2", "tags": ["y"]}, "spec": {"lifecycle": "prod", "owner": "t"}, "relations": [1]});
        let mut paths = Vec::new();
        changed_paths(&old, &new, "", 0, &mut paths);
        assert_eq!(paths, ["metadata.tags", "spec.lifecycle", "spec.owner"]);
    }
}
