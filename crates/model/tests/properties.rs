//! Property tests for the entity model: the YAML reader, the validator, entity references and
//! the per-file pipeline must never panic, must keep their limits, and must agree with
//! themselves (a valid entity stays valid when validated again).
//!
//! Failure persistence is off (no `proptest-regressions/` files); a failure prints its
//! minimal input, which belongs in a unit test next to the code it breaks.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

use cadastre_model::reference::{EntityRef, RefContext};
use cadastre_model::yaml::{self, Limits};
use cadastre_model::{
    CatalogReader, FieldPath, Finding, PlaceholderReader, ReadOutcome, Rule, Validator,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Number, Value, json};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Every placeholder target fails to read, as in an offline check with no files.
struct NoFiles;

impl PlaceholderReader for NoFiles {
    fn read(&self, _target: &str) -> Result<ReadOutcome, String> {
        Err("no files in property tests".to_owned())
    }
}

const LOCATION: &str = "/repo/services/artist-web/catalog-info.yaml";

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Keep the crate free of generated files; a failure prints its minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn read(validator: &Validator, limits: Limits, bytes: &[u8]) -> cadastre_model::FileReport {
    CatalogReader {
        validator,
        limits,
        placeholders: &NoFiles,
    }
    .read(LOCATION, bytes)
}

/// Positions are 1-based: a finding with a position must have line ≥ 1 and column ≥ 1.
fn check_positions<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
) -> Result<(), TestCaseError> {
    for finding in findings {
        if let Some(position) = finding.position {
            prop_assert!(
                position.line >= 1 && position.column >= 1,
                "finding {finding:?} has a position that is not 1-based"
            );
        }
    }
    Ok(())
}

/// Checks every document of a parsed file: positions and limits on documents.
fn check_parsed(parsed: &yaml::ParsedFile, limits: &Limits) -> Result<(), TestCaseError> {
    check_positions(&parsed.findings)?;
    prop_assert!(parsed.documents.len() <= limits.max_documents);
    for document in &parsed.documents {
        let position = document.source.document_position();
        prop_assert!(position.line >= 1 && position.column >= 1, "{position:?}");
        prop_assert!(document.value.is_object());
    }
    Ok(())
}

/// Nodes of a value (mapping keys not counted, as the reader's alias budget does not count
/// them) and its nesting depth in collections. Iterative: values may be deep.
fn shape(value: &Value) -> (usize, usize) {
    let mut nodes = 0;
    let mut depth = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        nodes += 1;
        match value {
            Value::Array(items) => {
                depth = depth.max(level + 1);
                stack.extend(items.iter().map(|item| (item, level + 1)));
            }
            Value::Object(map) => {
                depth = depth.max(level + 1);
                stack.extend(map.values().map(|item| (item, level + 1)));
            }
            _ => {}
        }
    }
    (nodes, depth)
}

/// `valid` validated again from its own JSON (without the computed `relations`) must be
/// valid and identical: validation is idempotent.
fn check_revalidates(
    validator: &Validator,
    valid: &cadastre_model::ValidEntity,
) -> Result<(), TestCaseError> {
    let mut json = valid.entity.to_value();
    let root = json.as_object_mut();
    prop_assert!(root.is_some(), "to_value is not a mapping: {json:?}");
    if let Some(root) = root {
        root.remove("relations");
    }
    match validator.validate(json.clone(), None) {
        Ok(again) => {
            prop_assert_eq!(&again.entity, &valid.entity);
            prop_assert_eq!(&again.edges, &valid.edges);
        }
        Err(findings) => {
            return Err(TestCaseError::fail(format!(
                "a valid entity is invalid when validated again: {json}\n{findings:#?}"
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A realistic, valid catalog-info.yaml.
const CATALOG_INFO: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: artist-web
  namespace: music
  title: Artist Web
  description: |
    The place to be, for great artists.
    Serves the public artist pages.
  labels:
    tier: frontend
    example.com/cost-center: cc-1234
  annotations:
    github.com/project-slug: acme/artist-web
    backstage.io/techdocs-ref: dir:.
    pagerduty.com/service-id: PX12345
  tags: [java, web, data-pipeline, c++]
  links:
    - url: https://dashboard.example.com/artist-web
      title: Dashboard
      icon: dashboard
    - url: https://runbooks.example.com/artist-web
      title: Runbook
      type: runbook
spec:
  type: website
  lifecycle: production
  owner: group:music/artist-relations
  system: public-websites
  providesApis: [artist-api]
  consumesApis: ['api:default/search-api', "playlist-api"]
  dependsOn:
    - resource:default/artists-db
    - component:music/artist-lookup
"#;

// ---------------------------------------------------------------------------------------------
// 1. Arbitrary bytes
// ---------------------------------------------------------------------------------------------

/// Bytes that mean something to YAML, to get past the first line more often than noise does.
const YAML_BYTES: &[u8] = b" \n\r\t:-[]{},&*!#'\"?|>%@`~.+0123456789aAzZ/\\\xef\xbb\xbf";

fn yamlish_byte() -> impl Strategy<Value = u8> {
    prop_oneof![3 => select(YAML_BYTES), 1 => any::<u8>()]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        let limits = Limits::default();
        let parsed = yaml::parse_bytes(&bytes, &limits);
        check_parsed(&parsed, &limits)?;
        let report = read(&Validator::default(), limits, &bytes);
        check_positions(report.all_findings())?;
    }

    #[test]
    fn yaml_flavoured_bytes_never_panic(bytes in vec(yamlish_byte(), 0..2048)) {
        let limits = Limits::default();
        let parsed = yaml::parse_bytes(&bytes, &limits);
        check_parsed(&parsed, &limits)?;
        let report = read(&Validator::default(), limits, &bytes);
        check_positions(report.all_findings())?;
    }
}

// ---------------------------------------------------------------------------------------------
// 2. YAML-ish token streams, under tight limits
// ---------------------------------------------------------------------------------------------

const TOKENS: &[&str] = &[
    "key",
    "name",
    "a",
    "b",
    "x1",
    "\"q\"",
    "'s'",
    "\"",
    "'",
    "\\",
    ":",
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ",",
    "&a ",
    "&b ",
    "&c ",
    "*a",
    "*b",
    "*c",
    " *a",
    "---\n",
    "...\n",
    "---",
    "\n",
    "\n",
    "\n",
    "\t",
    "  ",
    "  ",
    "    ",
    "!!str ",
    "!!int ",
    "!!bool ",
    "!!null ",
    "!!float ",
    "!!map ",
    "!!seq ",
    "!local ",
    "<<",
    "<<: ",
    "? ",
    "#c",
    " # c\n",
    "|\n",
    ">-\n",
    "~",
    "null",
    "1",
    "-1",
    "0x1F",
    "0o17",
    "1e3",
    ".inf",
    "true",
    "%YAML 1.2\n",
    "%TAG ! tag:x,2000:\n",
    "\u{feff}",
    "\r\n",
    "é",
    "$text",
    "$yaml",
];

/// Limits small enough that random input can reach them.
const TIGHT: Limits = Limits {
    max_file_bytes: 4096,
    max_depth: 5,
    max_alias_nodes: 20,
    max_documents: 4,
};

fn yamlish_text() -> impl Strategy<Value = String> {
    vec(select(TOKENS), 0..80).prop_map(|tokens| tokens.concat())
}

/// A flow collection or scalar, nested, with anchors, and aliases to `aliases` only.
fn flow_node(aliases: &'static [&'static str]) -> impl Strategy<Value = String> {
    let scalar = select(&["x", "1", "'q'", "~", "\"s\"", "&d x", "&d [y]"][..]);
    let leaf = if aliases.is_empty() {
        scalar.prop_map(str::to_owned).boxed()
    } else {
        prop_oneof![scalar, select(aliases)]
            .prop_map(str::to_owned)
            .boxed()
    };
    leaf.prop_recursive(5, 48, 5, |inner| {
        let anchor = select(&["", "", "&d ", "&e "][..]);
        prop_oneof![
            (anchor.clone(), vec(inner.clone(), 0..5))
                .prop_map(|(anchor, items)| format!("{anchor}[{}]", items.join(", "))),
            (anchor, vec(inner, 0..4)).prop_map(|(anchor, values)| {
                let body: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("k{i}: {v}"))
                    .collect();
                format!("{anchor}{{{}}}", body.join(", "))
            }),
        ]
    })
}

/// Documents that first define anchors `a`, `b`, `c` (each may alias the earlier ones), then
/// use them: aliases resolve, so the alias budget and depth limits are what stop a file.
fn flow_documents() -> impl Strategy<Value = String> {
    let document = (
        flow_node(&[]),
        flow_node(&["*a"]),
        flow_node(&["*a", "*b"]),
        vec(flow_node(&["*a", "*b", "*c", "*d"]), 1..5),
    )
        .prop_map(|(a, b, c, body)| {
            // An anchored or aliased node cannot take a second anchor: wrap it.
            let anchor = |name: &str, node: &str| {
                if node.starts_with(['&', '*']) {
                    format!("{name}: &{name} [{node}]\n")
                } else {
                    format!("{name}: &{name} {node}\n")
                }
            };
            let mut text = format!(
                "---\n{}{}{}",
                anchor("a", &a),
                anchor("b", &b),
                anchor("c", &c)
            );
            for (i, node) in body.iter().enumerate() {
                text.push_str(&format!("k{i}: {node}\n"));
            }
            text
        });
    vec(document, 1..4).prop_map(|documents| documents.concat())
}

/// Whatever the input, reading it respects the limits: at most `max_documents` documents,
/// at most a bounded number of nodes (what the text spells out plus `max_alias_nodes`), and
/// nesting at most `max_depth` deep, aliases included.
fn check_limits(text: &str, limits: &Limits) -> Result<(), TestCaseError> {
    let node_bound = 2 * text.len() + 2 + limits.max_alias_nodes;
    let depth_bound = limits.max_depth;

    let parsed = yaml::parse_str(text, limits);
    check_parsed(&parsed, limits)?;
    let mut nodes = 0;
    for document in &parsed.documents {
        let (count, depth) = shape(&document.value);
        nodes += count;
        prop_assert!(depth <= depth_bound, "depth {depth} > {depth_bound}");
    }
    prop_assert!(
        nodes <= node_bound,
        "{nodes} nodes > {node_bound} for {text:?}"
    );

    match yaml::parse_values(text, limits) {
        Ok(values) => {
            prop_assert!(values.len() <= limits.max_documents);
            let mut nodes = 0;
            for value in &values {
                let (count, depth) = shape(value);
                nodes += count;
                prop_assert!(depth <= depth_bound, "depth {depth} > {depth_bound}");
            }
            prop_assert!(
                nodes <= node_bound,
                "{nodes} nodes > {node_bound} for {text:?}"
            );
        }
        Err(finding) => check_positions([&finding])?,
    }

    let report = read(&Validator::default(), *limits, text.as_bytes());
    check_positions(report.all_findings())?;
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn yamlish_tokens_keep_limits(text in yamlish_text()) {
        check_limits(&text, &TIGHT)?;
        check_limits(&text, &Limits::default())?;
    }

    #[test]
    fn flow_documents_with_aliases_keep_limits(text in flow_documents()) {
        check_limits(&text, &TIGHT)?;
        let roomy = Limits { max_alias_nodes: 1000, ..TIGHT };
        check_limits(&text, &roomy)?;
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// Billion laughs, exactly accounted: `documents` documents, each with `levels` anchors of
    /// `fanout` aliases to the previous one. The budget is per file; the file fails with
    /// `yaml-alias-limit` exactly when the expansions exceed it, and otherwise holds exactly
    /// the nodes expected.
    #[test]
    fn alias_expansion_is_accounted_exactly(
        levels in 1usize..6,
        fanout in 1usize..8,
        documents in 1usize..4,
        max_alias_nodes in 0usize..3000,
    ) {
        let mut text = String::new();
        let mut sizes = vec![1 + fanout];
        let mut charge = 0usize;
        for _ in 0..documents {
            text.push_str("---\n");
            text.push_str(&format!("l0: &a0 [{}]\n", vec!["x"; fanout].join(", ")));
            for level in 1..=levels {
                let alias = format!("*a{}", level - 1);
                text.push_str(&format!(
                    "l{level}: &a{level} [{}]\n",
                    vec![alias.as_str(); fanout].join(", ")
                ));
            }
        }
        for level in 1..=levels {
            charge += fanout * sizes[level - 1];
            sizes.push(1 + fanout * sizes[level - 1]);
        }
        let total_charge = charge * documents;
        let nodes_per_document = 1 + sizes.iter().sum::<usize>();
        let limits = Limits { max_alias_nodes, ..Limits::default() };

        let parsed = yaml::parse_str(&text, &limits);
        check_parsed(&parsed, &limits)?;
        if total_charge > max_alias_nodes {
            prop_assert_eq!(parsed.findings.len(), 1);
            prop_assert_eq!(parsed.findings[0].rule, Rule::YamlAliasLimit);
            let nodes: usize = parsed.documents.iter().map(|d| shape(&d.value).0).sum();
            prop_assert!(nodes <= 2 * text.len() + max_alias_nodes);
        } else {
            prop_assert!(parsed.findings.is_empty(), "{:?}", parsed.findings);
            prop_assert_eq!(parsed.documents.len(), documents);
            for document in &parsed.documents {
                prop_assert_eq!(shape(&document.value).0, nodes_per_document);
            }
        }
    }
}

/// `max_depth` bounds the nesting the text spells out and also what aliases paste: a chain
/// of anchors each `max_depth`-ish deep must not add up beyond it (it once reached depth
/// ~1200 from 2.7 KiB, well inside the alias budget, and `Validator::validate` overflowed a
/// 2 MiB stack in serde's recursive `from_value`, aborting the process).
#[test]
fn aliases_cannot_nest_deeper_than_max_depth() {
    let text = deep_alias_chain(20);
    let limits = Limits::default();
    let parsed = yaml::parse_str(&text, &limits);
    let rules: Vec<Rule> = parsed.findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules, [Rule::YamlTooDeep], "{:?}", parsed.findings);
    for document in &parsed.documents {
        let depth = shape(&document.value).1;
        assert!(depth <= limits.max_depth, "aliases nest to depth {depth}");
    }
    let values = yaml::parse_values(&text, &limits);
    assert_eq!(values.map_err(|f| f.rule), Err(Rule::YamlTooDeep));
    // The whole pipeline, on a 2 MiB stack like a test or rayon worker thread.
    let report = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || read(&Validator::default(), limits, text.as_bytes()))
        .expect("spawn a reader thread")
        .join()
        .expect("reading a deep alias chain");
    assert_eq!(report.valid_entities().count(), 0);
}

/// A valid Component whose `spec.deep` chains `links` anchors, each 60 flow sequences deep
/// around an alias to the previous one.
fn deep_alias_chain(links: usize) -> String {
    let mut text = String::from(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\nspec:\n  type: service\n  lifecycle: production\n  owner: me\n  deep:\n",
    );
    let open = "[".repeat(60);
    let close = "]".repeat(60);
    text.push_str(&format!("    - &a0 {open}1{close}\n"));
    for link in 1..links {
        text.push_str(&format!("    - &a{link} {open}*a{}{close}\n", link - 1));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// 3. Mutations of a valid catalog-info.yaml
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Insert(Index, u8),
    Delete(Index),
    Replace(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), yamlish_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        (any::<Index>(), yamlish_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        match mutation {
            Mutation::Insert(at, byte) => {
                let at = at.index(bytes.len() + 1);
                bytes.insert(at, *byte);
            }
            Mutation::Delete(at) if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes.remove(at);
            }
            Mutation::Replace(at, byte) if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
            _ => {}
        }
    }
    bytes
}

#[test]
fn the_catalog_info_fixture_is_valid() {
    let validator = Validator::default();
    let report = read(&validator, Limits::default(), CATALOG_INFO.as_bytes());
    assert_eq!(report.error_count(), 0, "{:#?}", report);
    assert_eq!(report.valid_entities().count(), 1);
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn mutated_catalog_info_never_panics_and_revalidates(
        mutations in vec(mutation(), 1..8),
    ) {
        let bytes = apply(CATALOG_INFO.as_bytes().to_vec(), &mutations);
        let validator = Validator::default();
        let report = read(&validator, Limits::default(), &bytes);
        check_positions(report.all_findings())?;
        if report.error_count() == 0 {
            for document in &report.documents {
                let valid = document.entity.as_ref();
                prop_assert!(valid.is_some(), "no errors but no entity: {document:?}");
                if let Some(valid) = valid {
                    let canonical = valid.entity.canonical_ref();
                    prop_assert_eq!(document.entity_ref.as_deref(), Some(canonical.as_str()));
                    check_revalidates(&validator, valid)?;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3b. Placeholders: any target, any base, any content
// ---------------------------------------------------------------------------------------------

/// Answers every placeholder with the same content.
struct Echo(String);

impl PlaceholderReader for Echo {
    fn read(&self, _target: &str) -> Result<ReadOutcome, String> {
        Ok(ReadOutcome::Content(self.0.clone()))
    }
}

const BASES: &[&str] = &[
    LOCATION,
    "catalog-info.yaml",
    "../x/catalog-info.yaml",
    "C:\\repo\\catalog-info.yaml",
    "https://github.com/acme/repo/blob/main/services/a/catalog-info.yaml",
    "https://gitlab.com/group/sub/repo/-/blob/main/catalog-info.yaml",
    "https://raw.githubusercontent.com/acme/repo/main/catalog-info.yaml",
    "https://example.com/catalog-info.yaml",
    "https://github.com/blob/x",
    "https://github.com/a/-/blob",
    "file:///repo/catalog-info.yaml",
    "mailto:x@example.com",
];

const TARGETS: &[&str] = &[
    "./api.yaml",
    "/docs/api.yaml",
    "../../../../x",
    "..",
    "//host/x",
    "https://github.com/other/repo/blob/main/x.yaml",
    "https://github.com/acme/repo/blob/main/x.yaml",
    "c:x",
    "",
    "?",
    "#",
];

fn placeholder_target() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(TARGETS).prop_map(str::to_owned),
        1 => "[a-z./:#?%-]{0,16}",
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn placeholders_never_panic(
        base in prop_oneof![3 => select(BASES).prop_map(str::to_owned), 1 => any::<String>()],
        target in placeholder_target(),
        key in select(&["$text", "$json", "$yaml"][..]),
        content in prop_oneof![yamlish_text(), flow_documents(), Just("{\"a\": [1, 2]}".to_owned())],
    ) {
        let _ = cadastre_model::placeholder::resolve_target(&base, &target);
        let text = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: x\nspec:\n  type: openapi\n  lifecycle: production\n  owner: me\n  definition:\n    {key}: {}\n",
            serde_json::Value::from(target.as_str())
        );
        let validator = Validator::default();
        let report = CatalogReader {
            validator: &validator,
            limits: TIGHT,
            placeholders: &Echo(content),
        }
        .read(&base, text.as_bytes());
        check_positions(report.all_findings())?;
        for valid in report.valid_entities() {
            check_revalidates(&validator, valid)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Arbitrary JSON values into the validator
// ---------------------------------------------------------------------------------------------

const INTERESTING_STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "-x",
    "artist-web",
    "Artist.Web_1",
    "default",
    "music",
    "backstage.io/v1alpha1",
    "backstage.io/v1beta1",
    "scaffolder.backstage.io/v1beta3",
    "Component",
    "API",
    "Group",
    "User",
    "System",
    "Domain",
    "Resource",
    "Location",
    "Template",
    "group:default/team-a",
    "resource:db",
    "a:b:c",
    "ns/x",
    ":x",
    "group:",
    "https://example.com/docs",
    "not a url",
    "java",
    "Java",
    "c++",
    "required",
    "optional",
    "$text",
    "./x.yaml",
    "\u{130}",
    "\u{3a3}",
];

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "relations",
    "status",
    "name",
    "namespace",
    "title",
    "description",
    "labels",
    "annotations",
    "tags",
    "links",
    "uid",
    "etag",
    "url",
    "icon",
    "type",
    "lifecycle",
    "owner",
    "system",
    "domain",
    "subcomponentOf",
    "subdomainOf",
    "providesApis",
    "consumesApis",
    "dependsOn",
    "dependencyOf",
    "definition",
    "children",
    "parent",
    "members",
    "memberOf",
    "profile",
    "displayName",
    "email",
    "picture",
    "target",
    "targets",
    "presence",
    "steps",
    "action",
    "id",
    "input",
    "if",
    "parameters",
    "output",
    "$text",
    "$json",
    "$yaml",
    "Type",
    "TYPE",
    "backstage.io/view-url",
];

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(INTERESTING_STRINGS).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9:/._ -]{0,12}",
        1 => any::<String>(),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(KEYS).prop_map(str::to_owned),
        1 => json_string(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        json_string().prop_map(Value::String),
    ]
}

/// Any JSON value, at most 6 deep.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 128, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((json_key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object_of(entries: Vec<(String, Value)>) -> Value {
    Value::Object(entries.into_iter().collect())
}

/// Something shaped like an entity, with arbitrary values where it counts: reaches the spec
/// checks and relation derivation far more often than `json_value` does.
fn entityish() -> impl Strategy<Value = Value> {
    let api_version = prop_oneof![
        4 => select(&["backstage.io/v1alpha1", "backstage.io/v1beta1", "scaffolder.backstage.io/v1beta3"][..])
            .prop_map(Value::from),
        1 => json_value(),
    ];
    let kind = prop_oneof![
        4 => select(&["Component", "API", "Resource", "System", "Domain", "Group", "User", "Location", "Template", "Widget"][..])
            .prop_map(Value::from),
        1 => json_value(),
    ];
    let name = prop_oneof![
        4 => select(&["artist-web", "x", "Artist.Web_1", "-x", ""][..]).prop_map(Value::from),
        1 => json_value(),
    ];
    let metadata = (name, vec((json_key(), json_value()), 0..6)).prop_map(|(name, rest)| {
        let mut entries = vec![("name".to_owned(), name)];
        entries.extend(rest);
        object_of(entries)
    });
    let spec = vec((json_key(), json_value()), 0..10).prop_map(object_of);
    let extra = vec((json_key(), json_value()), 0..2);
    (api_version, kind, metadata, spec, extra).prop_map(
        |(api_version, kind, metadata, spec, extra)| {
            let mut entries = vec![
                ("apiVersion".to_owned(), api_version),
                ("kind".to_owned(), kind),
                ("metadata".to_owned(), metadata),
                ("spec".to_owned(), spec),
            ];
            entries.extend(extra);
            object_of(entries)
        },
    )
}

/// A valid Component with a few fields of metadata, spec or the root set to arbitrary values.
fn perturbed_component() -> impl Strategy<Value = Value> {
    let edit = (
        select(&["metadata", "spec", ""][..]),
        json_key(),
        json_value(),
    );
    (valid_component(), vec(edit, 1..3)).prop_map(|(generated, edits)| {
        let mut value = generated.value;
        for (place, key, item) in edits {
            let target = if place.is_empty() {
                value.as_object_mut()
            } else {
                value[place].as_object_mut()
            };
            if let Some(target) = target {
                target.insert(key, item);
            }
        }
        value
    })
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let validator = Validator::default();
        match validator.validate(value, None) {
            Ok(valid) => check_revalidates(&validator, &valid)?,
            Err(findings) => {
                prop_assert!(!findings.is_empty());
                prop_assert!(findings.iter().all(|f| f.position.is_none()));
            }
        }
    }

    #[test]
    fn entity_shaped_json_never_panics_and_revalidates(
        value in prop_oneof![entityish(), perturbed_component()],
    ) {
        let validator = Validator::default();
        match validator.validate(value, None) {
            Ok(valid) => check_revalidates(&validator, &valid)?,
            Err(findings) => {
                prop_assert!(!findings.is_empty());
                prop_assert!(findings.iter().any(Finding::is_error));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Entity references
// ---------------------------------------------------------------------------------------------

fn ref_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9:/._-]{0,16}",
        2 => "[aZ:/\u{3a3}\u{3c3}\u{3c2}\u{130}\u{212a}\u{df}\u{1c5}-]{0,10}",
        1 => any::<String>(),
        2 => ("\\PC{1,4}", "\\PC{1,4}", "\\PC{1,6}").prop_map(|(k, n, x)| format!("{k}:{n}/{x}")),
    ]
}

/// Randomly flips the case of ASCII letters.
fn recase(text: &str, flips: &[bool]) -> String {
    text.chars()
        .zip(flips.iter().chain(std::iter::repeat(&false)))
        .map(|(c, flip)| {
            if *flip {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn entity_refs_parse_to_a_stable_lower_case_canonical_form(text in ref_text()) {
        for context in [
            RefContext::default(),
            RefContext::new(Some("Group"), None),
            RefContext::new(None, Some("music")),
            RefContext::new(Some("component"), Some("Music")),
        ] {
            let _ = EntityRef::parse(&text, context);
        }
        if let Ok(parsed) = EntityRef::parse(&text, RefContext::default()) {
            let canonical = parsed.canonical();
            prop_assert_eq!(&canonical.to_lowercase(), &canonical, "not lower case");
            prop_assert_eq!(parsed.to_string(), canonical.clone());
            let again = EntityRef::parse(&canonical, RefContext::default());
            prop_assert!(again.is_ok(), "canonical {canonical:?} does not parse: {again:?}");
            if let Ok(again) = again {
                prop_assert_eq!(again.canonical(), canonical.clone());
                prop_assert_eq!(&again, &parsed);
                let hasher = RandomState::new();
                prop_assert_eq!(hasher.hash_one(&again), hasher.hash_one(&parsed));
            }
        }
    }

    /// Equality and hashing are case-insensitive, and agree with the canonical form.
    #[test]
    fn entity_ref_equality_agrees_with_canonical_form(
        text in "[a-zA-Z]{1,6}:[a-zA-Z0-9]{1,6}/[a-zA-Z0-9._-]{1,8}",
        flips in vec(any::<bool>(), 0..24),
        other in "[a-zA-Z]{1,6}:[a-zA-Z0-9]{1,6}/[a-zA-Z0-9._-]{1,8}",
    ) {
        let a = EntityRef::parse(&text, RefContext::default());
        let b = EntityRef::parse(&recase(&text, &flips), RefContext::default());
        let c = EntityRef::parse(&other, RefContext::default());
        prop_assert!(a.is_ok() && b.is_ok() && c.is_ok());
        if let (Ok(a), Ok(b), Ok(c)) = (a, b, c) {
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.canonical(), b.canonical());
            prop_assert_eq!(a == c, a.canonical() == c.canonical());
            prop_assert_eq!(text.to_ascii_lowercase(), a.canonical());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Generated valid entities, and one field flipped to an invalid value
// ---------------------------------------------------------------------------------------------

/// `[a-zA-Z0-9]` at both ends, `[-_.a-zA-Z0-9]` in between, 1–63 long.
fn object_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
}

/// Lower-case object names: lists of them never clash by case.
fn lower_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([-_.a-z0-9]{0,20}[a-z0-9])?"
}

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
}

fn tag() -> impl Strategy<Value = String> {
    "[a-z0-9:+#]{1,6}(-[a-z0-9:+#]{1,6}){0,3}"
}

fn prefixed_key() -> impl Strategy<Value = String> {
    "(([a-z0-9]{1,6}\\.){0,2}[a-z0-9]{1,6}/)?[a-z0-9]([-_.a-z0-9]{0,10}[a-z0-9])?"
}

fn entity_ref(kinds: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        select(kinds),
        proptest::option::of(dns_label()),
        lower_name(),
    )
        .prop_map(|(kind, namespace, name)| match (kind, namespace) {
            ("", None) => name,
            ("", Some(namespace)) => format!("{namespace}/{name}"),
            (kind, None) => format!("{kind}:{name}"),
            (kind, Some(namespace)) => format!("{kind}:{namespace}/{name}"),
        })
}

/// A link: an absolute URL and optional non-blank title, icon and type.
fn link() -> impl Strategy<Value = Value> {
    (
        "https://[a-z]{1,10}\\.example\\.com/[a-z0-9/]{0,12}",
        proptest::option::of("[A-Za-z][A-Za-z0-9 ]{0,15}"),
        proptest::option::of("[a-z]{1,10}"),
        proptest::option::of("[a-z]{1,10}"),
    )
        .prop_map(|(url, title, icon, kind)| {
            let mut link = Map::new();
            link.insert("url".into(), url.into());
            for (key, value) in [("title", title), ("icon", icon), ("type", kind)] {
                if let Some(value) = value {
                    link.insert(key.into(), value.into());
                }
            }
            Value::Object(link)
        })
}

#[derive(Debug, Clone)]
struct GeneratedEntity {
    value: Value,
    expected_ref: String,
}

/// A valid Component, with every optional part present or not.
fn valid_component() -> impl Strategy<Value = GeneratedEntity> {
    let metadata = (
        object_name(),
        proptest::option::of(dns_label()),
        proptest::option::of("[A-Za-z][ -~]{0,30}"),
        proptest::option::of("[ -~\n]{0,60}"),
        vec(
            (
                prefixed_key(),
                prop_oneof![Just(String::new()), object_name()],
            ),
            0..4,
        ),
        vec((prefixed_key(), "[ -~]{0,40}"), 0..4),
        vec(tag(), 0..5),
        vec(link(), 0..3),
    );
    let spec = (
        "[a-z][a-z0-9-]{0,15}",
        select(&["experimental", "production", "deprecated"][..]),
        entity_ref(&["", "group", "user"]),
        proptest::option::of(entity_ref(&["", "system"])),
        vec(entity_ref(&["", "api"]), 0..4),
        vec(entity_ref(&["", "api"]), 0..4),
        vec(entity_ref(&["resource", "component"]), 0..4),
        select(&["backstage.io/v1alpha1", "backstage.io/v1beta1"][..]),
    );
    (metadata, spec).prop_map(
        |(
            (name, namespace, title, description, labels, annotations, tags, links),
            (kind_type, lifecycle, owner, system, provides, consumes, depends, api_version),
        )| {
            let mut metadata = Map::new();
            metadata.insert("name".into(), name.clone().into());
            if let Some(namespace) = &namespace {
                metadata.insert("namespace".into(), namespace.clone().into());
            }
            if let Some(title) = title {
                metadata.insert("title".into(), title.into());
            }
            if let Some(description) = description {
                metadata.insert("description".into(), description.into());
            }
            if !labels.is_empty() {
                let labels: BTreeMap<String, String> = labels.into_iter().collect();
                metadata.insert("labels".into(), json!(labels));
            }
            if !annotations.is_empty() {
                let annotations: BTreeMap<String, String> = annotations.into_iter().collect();
                metadata.insert("annotations".into(), json!(annotations));
            }
            if !tags.is_empty() {
                metadata.insert("tags".into(), json!(tags));
            }
            if !links.is_empty() {
                metadata.insert("links".into(), Value::Array(links));
            }
            let mut spec = Map::new();
            spec.insert("type".into(), kind_type.into());
            spec.insert("lifecycle".into(), lifecycle.into());
            spec.insert("owner".into(), owner.into());
            if let Some(system) = system {
                spec.insert("system".into(), system.into());
            }
            for (key, list) in [
                ("providesApis", provides),
                ("consumesApis", consumes),
                ("dependsOn", depends),
            ] {
                if !list.is_empty() {
                    spec.insert(key.into(), json!(list));
                }
            }
            let namespace = namespace.unwrap_or_else(|| "default".to_owned());
            GeneratedEntity {
                value: json!({
                    "apiVersion": api_version,
                    "kind": "Component",
                    "metadata": metadata,
                    "spec": spec,
                }),
                expected_ref: format!("component:{namespace}/{}", name.to_lowercase()),
            }
        },
    )
}

/// One field turned invalid, and what the validator must say about it.
#[derive(Debug, Clone, Copy)]
enum Flip {
    NameLeadingDash,
    NameTooLong,
    NamespaceUnderscore,
    BadApiVersion,
    BadKindFormat,
    UnknownKind,
    EmptyTitle,
    DescriptionNumber,
    BadTag,
    BadLabelKey,
    BadLabelValue,
    BadAnnotationKey,
    BadLinkUrl,
    BlankLinkTitle,
    OwnerMissing,
    TypeNumber,
    DependsOnWithoutKind,
    EmptyApiRef,
    RelationsInSource,
}

const FLIPS: &[Flip] = &[
    Flip::NameLeadingDash,
    Flip::NameTooLong,
    Flip::NamespaceUnderscore,
    Flip::BadApiVersion,
    Flip::BadKindFormat,
    Flip::UnknownKind,
    Flip::EmptyTitle,
    Flip::DescriptionNumber,
    Flip::BadTag,
    Flip::BadLabelKey,
    Flip::BadLabelValue,
    Flip::BadAnnotationKey,
    Flip::BadLinkUrl,
    Flip::BlankLinkTitle,
    Flip::OwnerMissing,
    Flip::TypeNumber,
    Flip::DependsOnWithoutKind,
    Flip::EmptyApiRef,
    Flip::RelationsInSource,
];

/// Applies `flip` to a valid entity. Returns the rule and field path expected, and a marker
/// of the line in pretty-printed JSON the finding must point at.
fn flip(value: &mut Value, flip: Flip) -> (Rule, String, String) {
    fn path(keys: &[&str]) -> String {
        FieldPath::keys(keys).to_string()
    }
    fn metadata(value: &mut Value) -> &mut Map<String, Value> {
        value["metadata"]
            .as_object_mut()
            .expect("metadata is a mapping")
    }
    fn spec(value: &mut Value) -> &mut Map<String, Value> {
        value["spec"].as_object_mut().expect("spec is a mapping")
    }
    /// Appends to a list field, creating it; returns the new item's index.
    fn push(map: &mut Map<String, Value>, key: &str, item: Value) -> usize {
        let list = map.entry(key).or_insert_with(|| json!([]));
        let items = list.as_array_mut().expect("a list");
        items.push(item);
        items.len() - 1
    }
    match flip {
        Flip::NameLeadingDash => {
            let bad = format!("-{}", value["metadata"]["name"].as_str().unwrap_or("x"));
            metadata(value).insert("name".into(), bad.clone().into());
            (
                Rule::NameFormat,
                path(&["metadata", "name"]),
                format!("\"name\": \"{bad}\""),
            )
        }
        Flip::NameTooLong => {
            let bad = "n".repeat(64);
            metadata(value).insert("name".into(), bad.clone().into());
            (
                Rule::NameFormat,
                path(&["metadata", "name"]),
                format!("\"name\": \"{bad}\""),
            )
        }
        Flip::NamespaceUnderscore => {
            metadata(value).insert("namespace".into(), "my_ns".into());
            (
                Rule::NamespaceFormat,
                path(&["metadata", "namespace"]),
                "\"namespace\": \"my_ns\"".into(),
            )
        }
        Flip::BadApiVersion => {
            value["apiVersion"] = "backstage.io/v1-alpha1".into();
            (
                Rule::ApiVersionFormat,
                path(&["apiVersion"]),
                "\"apiVersion\": \"backstage.io/v1-alpha1\"".into(),
            )
        }
        Flip::BadKindFormat => {
            value["kind"] = "2Component".into();
            (
                Rule::KindFormat,
                path(&["kind"]),
                "\"kind\": \"2Component\"".into(),
            )
        }
        Flip::UnknownKind => {
            value["kind"] = "Widget".into();
            (
                Rule::KindUnknown,
                path(&["kind"]),
                "\"kind\": \"Widget\"".into(),
            )
        }
        Flip::EmptyTitle => {
            metadata(value).insert("title".into(), "".into());
            (
                Rule::TitleFormat,
                path(&["metadata", "title"]),
                "\"title\": \"\"".into(),
            )
        }
        Flip::DescriptionNumber => {
            metadata(value).insert("description".into(), 42.into());
            (
                Rule::DescriptionFormat,
                path(&["metadata", "description"]),
                "\"description\": 42".into(),
            )
        }
        Flip::BadTag => {
            let index = push(metadata(value), "tags", "bad_tag".into());
            (
                Rule::TagFormat,
                FieldPath::keys(&["metadata", "tags"])
                    .index(index)
                    .to_string(),
                "\"bad_tag\"".into(),
            )
        }
        Flip::BadLabelKey => {
            let labels = metadata(value).entry("labels").or_insert_with(|| json!({}));
            labels["-bad-key"] = "ok".into();
            (
                Rule::LabelKeyFormat,
                path(&["metadata", "labels", "-bad-key"]),
                "\"-bad-key\":".into(),
            )
        }
        Flip::BadLabelValue => {
            let labels = metadata(value).entry("labels").or_insert_with(|| json!({}));
            labels["flipped"] = "two words".into();
            (
                Rule::LabelValueFormat,
                path(&["metadata", "labels", "flipped"]),
                "\"flipped\": \"two words\"".into(),
            )
        }
        Flip::BadAnnotationKey => {
            let annotations = metadata(value)
                .entry("annotations")
                .or_insert_with(|| json!({}));
            annotations["a/b/c"] = "x".into();
            (
                Rule::AnnotationKeyFormat,
                path(&["metadata", "annotations", "a/b/c"]),
                "\"a/b/c\":".into(),
            )
        }
        Flip::BadLinkUrl => {
            let index = push(metadata(value), "links", json!({"url": "not a url"}));
            (
                Rule::LinkUrl,
                FieldPath::keys(&["metadata", "links"])
                    .index(index)
                    .key("url")
                    .to_string(),
                "\"url\": \"not a url\"".into(),
            )
        }
        Flip::BlankLinkTitle => {
            let index = push(
                metadata(value),
                "links",
                json!({"url": "https://example.com", "title": "   "}),
            );
            (
                Rule::LinkField,
                FieldPath::keys(&["metadata", "links"])
                    .index(index)
                    .key("title")
                    .to_string(),
                "\"title\": \"   \"".into(),
            )
        }
        Flip::OwnerMissing => {
            spec(value).remove("owner");
            (
                Rule::SpecFieldRequired,
                path(&["spec", "owner"]),
                "\"spec\":".into(),
            )
        }
        Flip::TypeNumber => {
            spec(value).insert("type".into(), 42.into());
            (
                Rule::SpecFieldType,
                path(&["spec", "type"]),
                "\"type\": 42".into(),
            )
        }
        Flip::DependsOnWithoutKind => {
            let index = push(spec(value), "dependsOn", "kindless-db".into());
            (
                Rule::EntityRefKindRequired,
                FieldPath::keys(&["spec", "dependsOn"])
                    .index(index)
                    .to_string(),
                "\"kindless-db\"".into(),
            )
        }
        Flip::EmptyApiRef => {
            let index = push(spec(value), "providesApis", "api:".into());
            (
                Rule::EntityRefFormat,
                FieldPath::keys(&["spec", "providesApis"])
                    .index(index)
                    .to_string(),
                "\"api:\"".into(),
            )
        }
        Flip::RelationsInSource => {
            value["relations"] = json!([]);
            (
                Rule::RootFieldUnknown,
                path(&["relations"]),
                "\"relations\":".into(),
            )
        }
    }
}

/// The 1-based line of the first line of `text` containing `marker`.
fn line_of(text: &str, marker: &str) -> Option<u32> {
    text.lines()
        .position(|line| line.contains(marker))
        .and_then(|index| u32::try_from(index + 1).ok())
}

proptest! {
    #![proptest_config(config(500))]

    /// Generated valid Components are accepted, from JSON and from YAML text (pretty JSON is
    /// YAML), and keep their reference.
    #[test]
    fn generated_valid_entities_are_accepted(generated in valid_component()) {
        let validator = Validator::default();
        match validator.validate(generated.value.clone(), None) {
            Ok(valid) => {
                prop_assert_eq!(valid.entity.canonical_ref(), generated.expected_ref.clone());
                check_revalidates(&validator, &valid)?;
            }
            Err(findings) => {
                return Err(TestCaseError::fail(format!(
                    "{:#}\nrejected: {findings:#?}",
                    generated.value
                )));
            }
        }
        let text = serde_json::to_string_pretty(&generated.value).unwrap_or_default();
        let report = read(&validator, Limits::default(), text.as_bytes());
        prop_assert_eq!(report.error_count(), 0, "{}\n{:#?}", text, report);
        let refs: Vec<String> = report.valid_entities().map(|v| v.entity.canonical_ref()).collect();
        prop_assert_eq!(refs, vec![generated.expected_ref.clone()]);
    }

    /// One invalid field gives exactly one error, with the expected rule id and field path,
    /// and from YAML text, the line of that field.
    #[test]
    fn one_flipped_field_gives_the_expected_rule(
        generated in valid_component(),
        which in select(FLIPS),
    ) {
        let mut value = generated.value.clone();
        let (rule, path, marker) = flip(&mut value, which);
        let validator = Validator::default();
        let findings = validator.validate(value.clone(), None).err().unwrap_or_default();
        let found: Vec<(Rule, &str)> = findings.iter().map(|f| (f.rule, f.path.as_str())).collect();
        prop_assert_eq!(found, vec![(rule, path.as_str())], "{:#}", value);

        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        let report = read(&validator, Limits::default(), text.as_bytes());
        let found: Vec<(Rule, &str, Option<u32>)> = report
            .all_findings()
            .map(|f| (f.rule, f.path.as_str(), f.position.map(|p| p.line)))
            .collect();
        let line = line_of(&text, &marker);
        prop_assert!(line.is_some(), "marker {marker:?} not in\n{text}");
        prop_assert_eq!(found, vec![(rule, path.as_str(), line)], "{}", text);
        prop_assert_eq!(report.valid_entities().count(), 0);
    }
}
