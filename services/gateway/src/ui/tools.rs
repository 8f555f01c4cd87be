//! Tools on entity pages (what Backstage calls plugins): links to an organisation's CI, docs,
//! dashboards, on-call and the like, built from an entity's annotations with URL templates
//! declared in configuration, so adding a tool needs no code.
//!
//! A template is an absolute `http(s)` URL with placeholders: `{value}` (the annotation's
//! value), `{namespace}`, `{kind}` and `{name}` (the entity's, lower-cased but the name), each
//! percent-encoded (all but unreserved characters and, in `{value}`, `/`, so a
//! `github.com/project-slug` of `acme/payments` stays a path; a value with a `.` or `..`
//! segment gets no link). A template that is exactly `{url}` links the annotation's value
//! itself (a `url:` prefix dropped), as `backstage.io/source-location` and
//! `backstage.io/edit-url` hold. Whatever the template, only a result that is an absolute
//! `http(s)` URL is linked, and everything on the page is escaped.
//!
//! A tool marked `embed` is a tab of the entity page instead of a link: the page
//! `/catalog/{namespace}/{kind}/{name}/tools/{tool}` shows the entity's header, its tabs, and
//! the tool's page in a frame. Its template must name a fixed origin (no placeholder before the
//! path), because that origin, and only it, is what the tab's content security policy lets the
//! frame load.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::{esc, safe_url};

/// The web UI's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSettings {
    /// The tools linked from entity pages, in this order. [`UiSettings::default`] holds
    /// [`default_tools`]; a configured list replaces them.
    pub tools: Vec<Tool>,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            tools: default_tools(),
        }
    }
}

/// One tool: a link shown on the pages of entities annotated with `annotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// The link's text (`CI`, `Docs`, `On call`).
    pub name: String,
    /// The annotation whose value the link is built from (`github.com/project-slug`).
    pub annotation: String,
    /// The URL template (see the module's documentation).
    pub url: String,
    /// The kinds it applies to, compared without case; empty: every kind.
    pub kinds: Vec<String>,
    /// Shown as a tab of the entity page, in a frame, rather than as a link.
    pub embed: bool,
}

/// The placeholders a template may hold.
const PLACEHOLDERS: [&str; 4] = ["value", "namespace", "kind", "name"];

impl Tool {
    /// A tool, checked: a name, an annotation, and a template that is `{url}` or an absolute
    /// `http(s)` URL using only the known placeholders.
    pub fn new(
        name: impl Into<String>,
        annotation: impl Into<String>,
        url: impl Into<String>,
        kinds: Vec<String>,
    ) -> Result<Tool, String> {
        let tool = Tool {
            name: name.into().trim().to_owned(),
            annotation: annotation.into().trim().to_owned(),
            url: url.into().trim().to_owned(),
            kinds: kinds.iter().map(|k| k.trim().to_lowercase()).collect(),
            embed: false,
        };
        if tool.name.is_empty() {
            return Err("a tool needs a name".into());
        }
        if tool.annotation.is_empty() {
            return Err(format!("the tool {:?} needs an annotation", tool.name));
        }
        if tool.url != "{url}" {
            let sample = expand(&tool.url, |_| Some("x".to_owned())).map_err(|placeholder| {
                format!(
                    "the tool {:?}: its url has {{{placeholder}}}; the placeholders are \
                     {{value}}, {{namespace}}, {{kind}} and {{name}}, or the whole url is {{url}}",
                    tool.name
                )
            })?;
            if safe_url(&sample).is_none() {
                return Err(format!(
                    "the tool {:?}: its url {:?} is not an absolute http(s) URL",
                    tool.name, tool.url
                ));
            }
        }
        Ok(tool)
    }

    /// The tool shown as a tab of the entity page, framed: its template must be an absolute
    /// URL whose origin has no placeholder (see the module's documentation).
    pub fn embedded(mut self) -> Result<Tool, String> {
        if self.frame_origin().is_none() {
            return Err(format!(
                "the tool {:?} is embedded, so its url must start with a fixed \
                 https://host/ (no placeholder, and not {{url}}), not {:?}",
                self.name, self.url
            ));
        }
        self.embed = true;
        Ok(self)
    }

    /// The origin an embedded tool's pages come from: the template's scheme, host and port,
    /// when no placeholder is among them.
    pub(crate) fn frame_origin(&self) -> Option<String> {
        let after_scheme = self.url.find("://")? + 3;
        let authority_end = self.url[after_scheme..]
            .find(['/', '?', '#'])
            .map_or(self.url.len(), |end| after_scheme + end);
        let base = &self.url[..authority_end];
        if base.contains('{') {
            return None;
        }
        let parsed = url::Url::parse(base).ok()?;
        matches!(parsed.scheme(), "http" | "https").then(|| parsed.origin().ascii_serialization())
    }

    /// The tab's path segment: the name lower-cased, runs of other characters as `-`.
    pub fn slug(&self) -> String {
        let mut slug = String::with_capacity(self.name.len());
        for c in self.name.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        slug.trim_matches('-').to_owned()
    }

    /// The link for `entity`, when it has the annotation (and is of one of the kinds) and the
    /// result is an `http(s)` URL.
    pub(crate) fn link(&self, entity: &Value) -> Option<String> {
        let kind = entity["kind"].as_str().unwrap_or_default().to_lowercase();
        if !self.kinds.is_empty() && !self.kinds.contains(&kind) {
            return None;
        }
        let value = entity["metadata"]["annotations"][&self.annotation]
            .as_str()?
            .trim();
        if value.is_empty() {
            return None;
        }
        if self.url == "{url}" {
            let url = value.strip_prefix("url:").unwrap_or(value);
            return safe_url(url).map(str::to_owned);
        }
        if value
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return None;
        }
        let namespace = entity["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_lowercase();
        let name = entity["metadata"]["name"].as_str().unwrap_or_default();
        let fill = |keep_slashes: bool| {
            expand(&self.url, |placeholder| match placeholder {
                "value" => Some(encode(value, keep_slashes)),
                "namespace" => Some(encode(&namespace, false)),
                "kind" => Some(encode(&kind, false)),
                "name" => Some(encode(name, false)),
                _ => None,
            })
            .ok()
            .and_then(|url| url::Url::parse(&url).ok().map(|parsed| (url, parsed)))
        };
        let (strict, strict_parsed) = fill(false)?;
        // Slashes are kept for paths, unless they would move the link to another host.
        let url = match fill(true) {
            Some((url, parsed)) if parsed.origin() == strict_parsed.origin() => url,
            _ => strict,
        };
        safe_url(&url).is_some().then_some(url)
    }
}

/// What entity pages link to when no tools are configured (besides the source and edit links
/// their About card always shows): the view URL, and a GitHub or GitLab project's repository
/// and CI.
pub fn default_tools() -> Vec<Tool> {
    [
        ("View", "backstage.io/view-url", "{url}"),
        (
            "Repository",
            "github.com/project-slug",
            "https://github.com/{value}",
        ),
        (
            "CI",
            "github.com/project-slug",
            "https://github.com/{value}/actions",
        ),
        (
            "Repository",
            "gitlab.com/project-slug",
            "https://gitlab.com/{value}",
        ),
        (
            "CI",
            "gitlab.com/project-slug",
            "https://gitlab.com/{value}/-/pipelines",
        ),
    ]
    .into_iter()
    .map(|(name, annotation, url)| Tool {
        name: name.to_owned(),
        annotation: annotation.to_owned(),
        url: url.to_owned(),
        kinds: Vec::new(),
        embed: false,
    })
    .collect()
}

/// Checks a configured list as a whole: embedded tools need distinct, non-empty tab names.
pub fn check_tools(tools: &[Tool]) -> Result<(), String> {
    let mut slugs = std::collections::BTreeSet::new();
    for tool in tools.iter().filter(|tool| tool.embed) {
        let slug = tool.slug();
        if slug.is_empty() {
            return Err(format!(
                "the embedded tool {:?} needs a name with a letter or digit",
                tool.name
            ));
        }
        if !slugs.insert(slug.clone()) {
            return Err(format!(
                "two embedded tools have the tab name {slug:?}; embedded tools need distinct names"
            ));
        }
    }
    Ok(())
}

/// The embedded tools that apply to `entity`, each with its page's URL, in configured order.
pub(crate) fn embedded_tools<'a>(tools: &'a [Tool], entity: &Value) -> Vec<(&'a Tool, String)> {
    tools
        .iter()
        .filter(|tool| tool.embed)
        .filter_map(|tool| tool.link(entity).map(|url| (tool, url)))
        .collect()
}

/// `template` with each `{placeholder}` replaced by `fill`'s answer; the first placeholder
/// `fill` does not know is the error. A `{` without a closing `}` stays as it is.
fn expand(template: &str, fill: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let placeholder = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&placeholder) {
            return Err(placeholder.to_owned());
        }
        out.push_str(&rest[..open]);
        out.push_str(&fill(placeholder).ok_or_else(|| placeholder.to_owned())?);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` percent-encoded: all but unreserved characters, and `/` when `keep_slashes`.
fn encode(text: &str, keep_slashes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (keep_slashes && byte == b'/')
        {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The entity page's tabs, when embedded tools apply: the overview and one per tool, the
/// one at `current` (a tool's slug; `None`: the overview) marked as the page shown.
pub(crate) fn tabs_html(
    out: &mut String,
    embedded: &[(&Tool, String)],
    entity_path: &str,
    current: Option<&str>,
) {
    if embedded.is_empty() {
        return;
    }
    let mark = |here: bool| if here { " aria-current=\"page\"" } else { "" };
    let _ = write!(
        out,
        "<nav class=\"tabs\" aria-label=\"Views of this entity\"><ul>\
         <li><a href=\"{path}\"{mark}>Overview</a></li>",
        path = esc(entity_path),
        mark = mark(current.is_none()),
    );
    for (tool, _) in embedded {
        let slug = tool.slug();
        let _ = write!(
            out,
            "<li><a href=\"{path}/tools/{slug}\" data-tool=\"{name}\"{mark}>{name}</a></li>",
            path = esc(entity_path),
            slug = esc(&slug),
            name = esc(&tool.name),
            mark = mark(current == Some(slug.as_str())),
        );
    }
    out.push_str("</ul></nav>");
}

/// The entity's linked (not embedded) tools as a row of links under its header; nothing when
/// none applies.
pub(crate) fn tools_html(out: &mut String, tools: &[Tool], entity: &Value) {
    let links: Vec<(&Tool, String)> = tools
        .iter()
        .filter(|tool| !tool.embed)
        .filter_map(|tool| tool.link(entity).map(|url| (tool, url)))
        .collect();
    if links.is_empty() {
        return;
    }
    out.push_str("<nav class=\"tools\" aria-label=\"Tools\"><ul>");
    for (tool, url) in links {
        let _ = write!(
            out,
            "<li><a class=\"tool\" href=\"{url}\" rel=\"noopener noreferrer\" data-tool=\"{name}\" \
             title=\"{annotation}\">{name}</a></li>",
            url = esc(&url),
            name = esc(&tool.name),
            annotation = esc(&tool.annotation),
        );
    }
    out.push_str("</ul></nav>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(annotations: Value) -> Value {
        json!({"kind": "Component", "metadata": {"name": "pay-ments", "namespace": "Ops", "annotations": annotations}})
    }

    #[test]
    fn templates_are_checked() {
        let tool = Tool::new(
            " On call ",
            "pagerduty.com/service-id",
            "https://acme.pagerduty.com/service-directory/{value}",
            vec!["Component".into()],
        )
        .unwrap();
        assert_eq!(tool.name, "On call");
        assert_eq!(tool.kinds, ["component"]);
        assert!(Tool::new("x", "a", "{url}", Vec::new()).is_ok());
        let unknown = Tool::new("x", "a", "https://x/{slug}", Vec::new()).unwrap_err();
        assert!(unknown.contains("{slug}"), "{unknown}");
        let script = Tool::new("x", "a", "javascript:alert({value})", Vec::new()).unwrap_err();
        assert!(script.contains("not an absolute http(s) URL"), "{script}");
        assert!(Tool::new("x", "a", "/relative/{value}", Vec::new()).is_err());
        assert!(Tool::new("", "a", "https://x", Vec::new()).is_err());
        assert!(Tool::new("x", " ", "https://x", Vec::new()).is_err());
    }

    #[test]
    fn links_fill_encoded_values() {
        let ci = Tool::new(
            "CI",
            "github.com/project-slug",
            "https://ci.example/{namespace}/{kind}/{name}?repo={value}",
            vec!["component".into()],
        )
        .unwrap();
        assert_eq!(
            ci.link(&entity(
                json!({"github.com/project-slug": "acme/pay ments"})
            ))
            .as_deref(),
            Some("https://ci.example/ops/component/pay-ments?repo=acme/pay%20ments")
        );
        // Hostile values are encoded, and `.`/`..` segments get no link.
        assert_eq!(
            ci.link(&entity(
                json!({"github.com/project-slug": "x\"><script>&y=1#z"})
            ))
            .as_deref(),
            Some("https://ci.example/ops/component/pay-ments?repo=x%22%3E%3Cscript%3E%26y%3D1%23z")
        );
        assert_eq!(
            ci.link(&entity(json!({"github.com/project-slug": "../../admin"}))),
            None
        );
        // A slash cannot move a placeholder in the host to another host.
        let grafana = Tool::new("D", "g", "https://{value}.grafana.example/d", vec![]).unwrap();
        let link = grafana.link(&entity(json!({"g": "evil.example/x"})));
        assert!(
            link.as_deref()
                .and_then(|url| url::Url::parse(url).ok())
                .is_none_or(|url| url.host_str().unwrap().ends_with(".grafana.example")),
            "{link:?}"
        );
        assert_eq!(
            grafana.link(&entity(json!({"g": "acme"}))).as_deref(),
            Some("https://acme.grafana.example/d")
        );
        // Absent annotation, empty value, other kind: no link.
        assert_eq!(ci.link(&entity(json!({}))), None);
        assert_eq!(
            ci.link(&entity(json!({"github.com/project-slug": " "}))),
            None
        );
        let api = json!({"kind": "API", "metadata": {"name": "a", "annotations": {"github.com/project-slug": "acme/a"}}});
        assert_eq!(ci.link(&api), None);
    }

    #[test]
    fn url_templates_link_only_web_urls() {
        let source = Tool::new("Source", "backstage.io/source-location", "{url}", vec![]).unwrap();
        assert_eq!(
            source
                .link(&entity(
                    json!({"backstage.io/source-location": "url:https://github.com/acme/x/tree/main/"})
                ))
                .as_deref(),
            Some("https://github.com/acme/x/tree/main/")
        );
        assert_eq!(
            source.link(&entity(
                json!({"backstage.io/source-location": "url:javascript:alert(1)"})
            )),
            None
        );
    }

    #[test]
    fn embedded_tools_name_a_fixed_origin_and_become_tabs() {
        let docs = Tool::new(
            "Tech docs",
            "docs",
            "https://docs.example:8443/d/{value}",
            vec![],
        )
        .unwrap()
        .embedded()
        .unwrap();
        assert_eq!(
            docs.frame_origin().as_deref(),
            Some("https://docs.example:8443")
        );
        assert_eq!(docs.slug(), "tech-docs");
        for template in [
            "{url}",
            "https://{value}.example/",
            "https://x.example{value}",
        ] {
            let error = Tool::new("D", "docs", template, vec![])
                .unwrap()
                .embedded()
                .unwrap_err();
            assert!(error.contains("fixed"), "{template}: {error}");
        }
        let link = Tool::new("Link", "docs", "https://l.example/{value}", vec![]).unwrap();
        let tools = vec![docs.clone(), link];
        let annotated = entity(json!({"docs": "a b"}));
        // The embedded tool is a tab, not a link; the other stays a link.
        let embedded = embedded_tools(&tools, &annotated);
        assert_eq!(embedded.len(), 1);
        assert_eq!(embedded[0].1, "https://docs.example:8443/d/a%20b");
        let mut row = String::new();
        tools_html(&mut row, &tools, &annotated);
        assert!(
            row.contains("data-tool=\"Link\"") && !row.contains("Tech docs"),
            "{row}"
        );
        let mut tabs = String::new();
        tabs_html(
            &mut tabs,
            &embedded,
            "/catalog/ops/component/x",
            Some("tech-docs"),
        );
        assert!(
            tabs.contains("<a href=\"/catalog/ops/component/x\">Overview</a>")
                && tabs.contains(
                    "href=\"/catalog/ops/component/x/tools/tech-docs\" data-tool=\"Tech docs\" \
                     aria-current=\"page\""
                ),
            "{tabs}"
        );
        // Not annotated: no tabs at all.
        let mut none = String::new();
        tabs_html(
            &mut none,
            &embedded_tools(&tools, &entity(json!({}))),
            "/x",
            None,
        );
        assert_eq!(none, "");
        // Tab names must differ.
        assert!(check_tools(&[docs.clone(), docs]).is_err());
    }

    #[test]
    fn the_row_is_escaped_and_absent_when_empty() {
        let tools = vec![
            Tool::new(
                "<b>Docs</b>",
                "docs",
                "https://docs.example/{value}",
                vec![],
            )
            .unwrap(),
        ];
        let mut out = String::new();
        tools_html(&mut out, &tools, &entity(json!({})));
        assert_eq!(out, "");
        tools_html(&mut out, &tools, &entity(json!({"docs": "a'b"})));
        assert!(out.contains("href=\"https://docs.example/a%27b\""), "{out}");
        assert!(out.contains(">&lt;b&gt;Docs&lt;/b&gt;</a>"), "{out}");
    }
}
