//! An API entity's `spec.definition`, rendered for reading on its page: an OpenAPI document
//! (YAML or JSON) as its operations and schemas, an AsyncAPI document as its channels and
//! messages, GraphQL and protobuf (gRPC) definitions highlighted on the server (each token
//! escaped, keywords, comments and strings wrapped in spans). Anything else, or a document
//! that cannot be read, is shown as escaped text. The whole definition is always there too.

use std::fmt::Write as _;

use cadastre_model::Limits;
use serde_json::Value;

use super::html::esc;

/// HTTP methods an OpenAPI path item may hold, in display order.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// At most this many operations, channels or schemas are listed (the text has them all).
const ITEMS_SHOWN: usize = 500;

/// The definition card of an API entity; empty for other kinds or without a definition.
pub(crate) fn definition_html(out: &mut String, entity: &Value) {
    if !entity["kind"]
        .as_str()
        .is_some_and(|kind| kind.eq_ignore_ascii_case("api"))
    {
        return;
    }
    let Some(definition) = entity["spec"]["definition"].as_str() else {
        return;
    };
    let api_type = entity["spec"]["type"].as_str().unwrap_or_default();
    out.push_str(
        "<section class=\"card definition\" aria-labelledby=\"definition\">\
         <h2 id=\"definition\">API definition</h2>",
    );
    let lower = api_type.to_lowercase();
    let rendered = match lower.as_str() {
        "openapi" => parse(definition).map(|document| openapi_html(out, &document)),
        "asyncapi" => parse(definition).map(|document| asyncapi_html(out, &document)),
        "graphql" => {
            highlighted(out, definition, Language::GraphQl, "graphql");
            Some(())
        }
        "grpc" | "proto" | "protobuf" => {
            highlighted(out, definition, Language::Proto, "proto");
            Some(())
        }
        _ => None,
    };
    match (rendered, lower.as_str()) {
        (Some(()), "openapi" | "asyncapi") => {
            let _ = write!(
                out,
                "<details><summary>Show the whole definition</summary>\
                 <pre class=\"raw\"><code>{}</code></pre></details>",
                esc(definition)
            );
        }
        (Some(()), _) => {}
        (None, "openapi" | "asyncapi") => {
            let _ = write!(
                out,
                "<p class=\"subtle\">This {} document cannot be read; here is its text.</p>\
                 <pre class=\"raw\"><code>{}</code></pre>",
                esc(api_type),
                esc(definition)
            );
        }
        (None, _) => {
            let _ = write!(
                out,
                "<pre class=\"raw\"><code>{}</code></pre>",
                esc(definition)
            );
        }
    }
    out.push_str("</section>");
}

/// The first document of a YAML or JSON text, when it is a mapping.
fn parse(text: &str) -> Option<Value> {
    cadastre_model::yaml::parse_values(text, &Limits::default())
        .ok()?
        .into_iter()
        .next()
        .filter(Value::is_object)
}

/// A scalar as text (numbers too: `version: 1.0` is read as a number).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn title_line(out: &mut String, document: &Value, family: &str, version_key: &str) {
    let info = &document["info"];
    let _ = write!(
        out,
        "<p class=\"api-title\"><strong>{}</strong> {} <span class=\"subtle\">{} {}</span></p>",
        esc(&text(&info["title"]).unwrap_or_default()),
        esc(&text(&info["version"]).unwrap_or_default()),
        esc(family),
        esc(&text(&document[version_key]).unwrap_or_default()),
    );
    if let Some(description) = text(&info["description"]).filter(|d| !d.trim().is_empty()) {
        let _ = write!(out, "<p class=\"description\">{}</p>", esc(&description));
    }
}

/// `#/components/schemas/Pet` → `Pet`.
fn ref_name(value: &Value) -> Option<String> {
    value["$ref"]
        .as_str()
        .map(|reference| reference.rsplit('/').next().unwrap_or(reference).to_owned())
}

fn openapi_html(out: &mut String, document: &Value) {
    let version_key = if document.get("swagger").is_some() {
        "swagger"
    } else {
        "openapi"
    };
    title_line(
        out,
        document,
        if version_key == "swagger" {
            "Swagger"
        } else {
            "OpenAPI"
        },
        version_key,
    );
    out.push_str("<h3>Operations</h3>");
    let mut rows = String::new();
    let mut count = 0;
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let Some(operation) = item.get(method).filter(|o| o.is_object()) else {
                continue;
            };
            count += 1;
            if count > ITEMS_SHOWN {
                continue;
            }
            let summary = text(&operation["summary"])
                .or_else(|| text(&operation["operationId"]))
                .unwrap_or_default();
            let _ = write!(
                rows,
                "<tr class=\"operation\"><td><span class=\"method method-{method}\">{upper}</span></td>\
                 <td><code class=\"path\">{path}</code></td><td>{summary}</td></tr>",
                upper = method.to_uppercase(),
                path = esc(path),
                summary = esc(&summary),
            );
        }
    }
    if count == 0 {
        out.push_str("<p class=\"subtle\">No operations.</p>");
    } else {
        let _ = write!(
            out,
            "<div class=\"table-wrap\"><table class=\"operations\"><thead><tr>\
             <th scope=\"col\">Method</th><th scope=\"col\">Path</th><th scope=\"col\">Summary</th>\
             </tr></thead><tbody>{rows}</tbody></table></div>"
        );
        more(out, count);
    }
    let schemas = document["components"]["schemas"]
        .as_object()
        .or_else(|| document["definitions"].as_object());
    out.push_str("<h3>Schemas</h3>");
    names_list(out, schemas, "schemas");
}

fn more(out: &mut String, count: usize) {
    if count > ITEMS_SHOWN {
        let _ = write!(
            out,
            "<p class=\"subtle\">The first {ITEMS_SHOWN} of {count} are listed.</p>"
        );
    }
}

/// The keys of `map` (schemas, messages) as a list, each with its title or summary.
fn names_list(out: &mut String, map: Option<&serde_json::Map<String, Value>>, class: &str) {
    let Some(map) = map.filter(|map| !map.is_empty()) else {
        out.push_str("<p class=\"subtle\">None.</p>");
        return;
    };
    let _ = write!(out, "<ul class=\"{class}\">");
    for (name, value) in map.iter().take(ITEMS_SHOWN) {
        let _ = write!(out, "<li><code>{}</code>", esc(name));
        if let Some(about) = text(&value["title"])
            .or_else(|| text(&value["summary"]))
            .or_else(|| text(&value["description"]))
            .filter(|about| about != name)
        {
            let _ = write!(out, " <span class=\"subtle\">{}</span>", esc(&about));
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
    more(out, map.len());
}

/// The message names an AsyncAPI operation or channel refers to (`$ref`s, `name`s, `oneOf`).
fn message_names(message: &Value) -> Vec<String> {
    if let Some(list) = message["oneOf"].as_array() {
        return list.iter().flat_map(message_names).collect();
    }
    match message {
        Value::Object(map) if map.contains_key("$ref") => ref_name(message).into_iter().collect(),
        Value::Object(map) => text(&map.get("name").cloned().unwrap_or_default())
            .or_else(|| text(&map.get("title").cloned().unwrap_or_default()))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn asyncapi_html(out: &mut String, document: &Value) {
    title_line(out, document, "AsyncAPI", "asyncapi");
    out.push_str("<h3>Channels</h3>");
    let channels = document["channels"].as_object();
    let mut rows = String::new();
    let mut count = 0;
    for (name, channel) in channels.into_iter().flatten() {
        count += 1;
        if count > ITEMS_SHOWN {
            continue;
        }
        // AsyncAPI 2: publish/subscribe on the channel; 3: an address and messages, with
        // operations naming their channel.
        let mut operations: Vec<(String, String, Vec<String>)> = Vec::new();
        for action in ["publish", "subscribe"] {
            let operation = &channel[action];
            if operation.is_object() {
                operations.push((
                    action.to_owned(),
                    text(&operation["summary"])
                        .or_else(|| text(&operation["operationId"]))
                        .unwrap_or_default(),
                    message_names(&operation["message"]),
                ));
            }
        }
        for (id, operation) in document["operations"].as_object().into_iter().flatten() {
            let channel_ref = ref_name(&operation["channel"]);
            if channel_ref.as_deref() == Some(name.as_str()) {
                operations.push((
                    text(&operation["action"]).unwrap_or_default(),
                    text(&operation["summary"]).unwrap_or_else(|| id.clone()),
                    operation["messages"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(message_names)
                        .collect(),
                ));
            }
        }
        if let Some(messages) = channel["messages"].as_object() {
            let names: Vec<String> = messages
                .iter()
                .map(|(key, message)| ref_name(message).unwrap_or_else(|| key.clone()))
                .collect();
            if operations.is_empty() {
                operations.push((String::new(), String::new(), names));
            }
        }
        let address = text(&channel["address"]).unwrap_or_else(|| name.clone());
        let _ = write!(
            rows,
            "<tr class=\"channel\"><td><code>{}</code>{}</td><td>",
            esc(&address),
            text(&channel["description"])
                .map(|d| format!("<br><span class=\"subtle\">{}</span>", esc(&d)))
                .unwrap_or_default()
        );
        for (action, summary, messages) in &operations {
            out_operation(&mut rows, action, summary, messages);
        }
        rows.push_str("</td></tr>");
    }
    if count == 0 {
        out.push_str("<p class=\"subtle\">No channels.</p>");
    } else {
        let _ = write!(
            out,
            "<div class=\"table-wrap\"><table class=\"channels\"><thead><tr>\
             <th scope=\"col\">Channel</th><th scope=\"col\">Operations and messages</th>\
             </tr></thead><tbody>{rows}</tbody></table></div>"
        );
        more(out, count);
    }
    out.push_str("<h3>Messages</h3>");
    names_list(
        out,
        document["components"]["messages"].as_object(),
        "messages",
    );
    if let Some(schemas) = document["components"]["schemas"]
        .as_object()
        .filter(|s| !s.is_empty())
    {
        out.push_str("<h3>Schemas</h3>");
        names_list(out, Some(schemas), "schemas");
    }
}

fn out_operation(out: &mut String, action: &str, summary: &str, messages: &[String]) {
    out.push_str("<p class=\"async-operation\">");
    if !action.is_empty() {
        let _ = write!(
            out,
            "<span class=\"method method-{}\">{}</span> ",
            esc(&action
                .to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")),
            esc(action)
        );
    }
    if !summary.is_empty() {
        let _ = write!(out, "{} ", esc(summary));
    }
    for message in messages {
        let _ = write!(out, "<code class=\"message\">{}</code> ", esc(message));
    }
    out.push_str("</p>");
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Language {
    GraphQl,
    Proto,
}

const GRAPHQL_KEYWORDS: &[&str] = &[
    "schema",
    "type",
    "interface",
    "union",
    "enum",
    "input",
    "scalar",
    "directive",
    "implements",
    "extend",
    "fragment",
    "query",
    "mutation",
    "subscription",
    "on",
    "repeatable",
];
const GRAPHQL_TYPES: &[&str] = &["ID", "String", "Int", "Float", "Boolean"];
const PROTO_KEYWORDS: &[&str] = &[
    "syntax",
    "edition",
    "package",
    "import",
    "option",
    "service",
    "rpc",
    "returns",
    "message",
    "enum",
    "oneof",
    "repeated",
    "optional",
    "required",
    "map",
    "stream",
    "reserved",
    "extend",
    "extensions",
    "to",
    "max",
    "public",
    "weak",
    "true",
    "false",
];
const PROTO_TYPES: &[&str] = &[
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
    "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
];

/// `source` in a `<pre>`, every piece escaped, with keywords, built-in types, comments and
/// strings in spans.
fn highlighted(out: &mut String, source: &str, language: Language, class: &str) {
    let _ = write!(
        out,
        "<pre class=\"raw code\"><code class=\"language-{class}\">{}</code></pre>",
        highlight(source, language)
    );
}

fn highlight(source: &str, language: Language) -> String {
    let (keywords, types) = match language {
        Language::GraphQl => (GRAPHQL_KEYWORDS, GRAPHQL_TYPES),
        Language::Proto => (PROTO_KEYWORDS, PROTO_TYPES),
    };
    let mut out = String::with_capacity(source.len() * 2);
    let span = |out: &mut String, class: &str, text: &str| {
        let _ = write!(out, "<span class=\"{class}\">{}</span>", esc(text));
    };
    let mut rest = source;
    while let Some(c) = rest.chars().next() {
        let line_comment = match language {
            Language::GraphQl => c == '#',
            Language::Proto => rest.starts_with("//"),
        };
        let len = if line_comment {
            let len = rest.find('\n').unwrap_or(rest.len());
            span(&mut out, "tok-comment", &rest[..len]);
            len
        } else if language == Language::Proto && rest.starts_with("/*") {
            let len = rest[2..].find("*/").map_or(rest.len(), |at| at + 4);
            span(&mut out, "tok-comment", &rest[..len]);
            len
        } else if language == Language::GraphQl && rest.starts_with("\"\"\"") {
            let len = rest[3..].find("\"\"\"").map_or(rest.len(), |at| at + 6);
            span(&mut out, "tok-string", &rest[..len]);
            len
        } else if c == '"' || (c == '\'' && language == Language::Proto) {
            let mut len = rest.len();
            let mut escaped = false;
            for (at, next) in rest.char_indices().skip(1) {
                if next == '\n' {
                    len = at;
                    break;
                }
                if escaped {
                    escaped = false;
                } else if next == '\\' {
                    escaped = true;
                } else if next == c {
                    len = at + 1;
                    break;
                }
            }
            span(&mut out, "tok-string", &rest[..len]);
            len
        } else if c.is_ascii_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..len];
            if keywords.contains(&word) {
                span(&mut out, "tok-keyword", word);
            } else if types.contains(&word) {
                span(&mut out, "tok-type", word);
            } else {
                out.push_str(word);
            }
            len
        } else if language == Language::GraphQl && c == '@' {
            let len = 1 + rest[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - 1);
            span(&mut out, "tok-directive", &rest[..len]);
            len
        } else {
            let _ = write!(out, "{}", esc(&rest[..c.len_utf8()]));
            c.len_utf8()
        };
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(api_type: &str, definition: &str) -> String {
        let mut out = String::new();
        definition_html(
            &mut out,
            &json!({"kind": "API", "spec": {"type": api_type, "definition": definition}}),
        );
        out
    }

    #[test]
    fn openapi_operations_and_schemas() {
        let html = render(
            "openapi",
            "openapi: 3.0.0\ninfo: {title: Pets, version: 1.0}\npaths:\n  /pets/{id}:\n    \
             get: {summary: \"<Show> a pet\"}\n    delete: {operationId: deletePet}\n\
             components:\n  schemas:\n    Pet: {type: object}\n",
        );
        assert!(
            html.contains("<span class=\"method method-get\">GET</span>"),
            "{html}"
        );
        assert!(
            html.contains("<code class=\"path\">/pets/{id}</code>"),
            "{html}"
        );
        assert!(html.contains("&lt;Show&gt; a pet"), "{html}");
        assert!(html.contains("deletePet"));
        assert!(html.contains("<li><code>Pet</code>"), "{html}");
        assert!(html.contains("<strong>Pets</strong> 1.0"), "{html}");
        // JSON is read too (Swagger 2 keeps schemas under definitions).
        let html = render(
            "openapi",
            r#"{"swagger": "2.0", "paths": {"/a": {"post": {"summary": "Add"}}}, "definitions": {"A": {}}}"#,
        );
        assert!(
            html.contains("POST") && html.contains("<li><code>A</code>"),
            "{html}"
        );
    }

    #[test]
    fn unreadable_documents_are_shown_as_text() {
        let html = render("openapi", "openapi: [<b>");
        assert!(html.contains("cannot be read"), "{html}");
        assert!(html.contains("openapi: [&lt;b&gt;"), "{html}");
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn asyncapi_channels_and_messages() {
        let html = render(
            "asyncapi",
            "asyncapi: 2.0.0\ninfo: {title: Lights, version: 1}\nchannels:\n  light/measured:\n    \
             subscribe:\n      summary: Lumens\n      message:\n        $ref: '#/components/messages/Measured'\n\
             components:\n  messages:\n    Measured: {summary: A measurement}\n",
        );
        assert!(html.contains("<code>light/measured</code>"), "{html}");
        assert!(html.contains("method-subscribe"), "{html}");
        assert!(
            html.contains("<code class=\"message\">Measured</code>"),
            "{html}"
        );
        assert!(
            html.contains("<li><code>Measured</code> <span class=\"subtle\">A measurement</span>")
        );
    }

    #[test]
    fn graphql_and_proto_are_highlighted_and_escaped() {
        let html = highlight("type Query { a: String } # <x>\n\"<s>\"", Language::GraphQl);
        assert_eq!(
            html,
            "<span class=\"tok-keyword\">type</span> Query { a: <span class=\"tok-type\">String</span> } \
             <span class=\"tok-comment\"># &lt;x&gt;</span>\n<span class=\"tok-string\">&quot;&lt;s&gt;&quot;</span>"
        );
        let html = highlight(
            "service G { rpc Say (A) returns (B); } // <c>",
            Language::Proto,
        );
        assert!(
            html.contains("<span class=\"tok-keyword\">service</span> G"),
            "{html}"
        );
        assert!(html.contains("<span class=\"tok-keyword\">returns</span>"));
        assert!(html.contains("<span class=\"tok-comment\">// &lt;c&gt;</span>"));
        let html = highlight("é <script>", Language::Proto);
        assert_eq!(html, "é &lt;script&gt;");
    }
}
