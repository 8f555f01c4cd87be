//! A YAML reader that is safe on hostile input.
//!
//! It drives `saphyr-parser`'s event stream and builds `serde_json` values itself, so that
//! every limit is enforced while reading rather than after: file size, nesting depth, alias
//! expansion (billion laughs) and document count. Duplicate keys are rejected, merge keys
//! (`<<`) stay ordinary keys (as in Backstage), scalars resolve with the YAML 1.2 core
//! schema, and every node keeps its line and column in a [`SourceMap`].
//!
//! Nothing here panics or recurses on input: the builder keeps an explicit stack.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

use crate::finding::{Finding, Position, Rule};
use crate::path::{FieldPath, Segment};

/// Bounds on what one file may cost to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes that aliases may add by expansion, per file.
    pub max_alias_nodes: usize,
    /// Most documents in one file.
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 * 1024 * 1024,
            max_depth: 64,
            max_alias_nodes: 100_000,
            max_documents: 10_000,
        }
    }
}

/// Where each node of a document sits in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceNode {
    /// Where the node's value starts.
    pub position: Position,
    pub children: SourceChildren,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceChildren {
    Leaf,
    Sequence(Vec<SourceNode>),
    /// `(key, position of the key, value node)`, in source order.
    Mapping(Vec<(String, Position, SourceNode)>),
}

/// Positions for a parsed document, looked up by [`FieldPath`].
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMap {
    root: SourceNode,
}

impl SourceMap {
    pub fn new(root: SourceNode) -> Self {
        SourceMap { root }
    }

    /// Where the document starts.
    pub fn document_position(&self) -> Position {
        self.root.position
    }

    /// The best position to report a problem with the field at `path`.
    ///
    /// For a scalar that exists, its value; for a collection that exists, its key; for a field
    /// that does not exist, the key of its nearest existing ancestor (where it should be added).
    pub fn locate(&self, path: &FieldPath) -> Position {
        let mut node = &self.root;
        let mut key_position = None;
        for segment in path.segments() {
            let next = match (segment, &node.children) {
                (Segment::Key(key), SourceChildren::Mapping(entries)) => entries
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .map(|(_, key_pos, child)| (Some(*key_pos), child)),
                (Segment::Index(index), SourceChildren::Sequence(items)) => {
                    items.get(*index).map(|child| (None, child))
                }
                _ => None,
            };
            match next {
                Some((key_pos, child)) => {
                    key_position = key_pos;
                    node = child;
                }
                None => return key_position.unwrap_or(node.position),
            }
        }
        match node.children {
            SourceChildren::Leaf => node.position,
            _ => key_position.unwrap_or(node.position),
        }
    }

    /// The position of the key at `path` (falls back like [`SourceMap::locate`]).
    pub fn locate_key(&self, path: &FieldPath) -> Position {
        let mut node = &self.root;
        let mut position = node.position;
        for segment in path.segments() {
            let next = match (segment, &node.children) {
                (Segment::Key(key), SourceChildren::Mapping(entries)) => entries
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .map(|(_, key_pos, child)| (*key_pos, child)),
                (Segment::Index(index), SourceChildren::Sequence(items)) => {
                    items.get(*index).map(|child| (child.position, child))
                }
                _ => None,
            };
            match next {
                Some((pos, child)) => {
                    position = pos;
                    node = child;
                }
                None => break,
            }
        }
        position
    }
}

/// One YAML document that is a mapping, with its positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 0-based index of the document in its file.
    pub index: usize,
    pub value: Value,
    pub source: SourceMap,
}

/// What reading a file produced: documents that are mappings, and problems with the others.
///
/// A syntax error ends the file (the parser cannot resynchronise), so documents read before
/// it are still returned: callers decide whether one bad document spoils the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedFile {
    pub documents: Vec<Document>,
    pub findings: Vec<Finding>,
}

impl ParsedFile {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }
}

/// Reads every document of a YAML file from raw bytes.
pub fn parse_bytes(bytes: &[u8], limits: &Limits) -> ParsedFile {
    if bytes.len() > limits.max_file_bytes {
        return ParsedFile::failed(Finding::error(
            Rule::YamlTooLarge,
            "",
            format!(
                "file is {} bytes, larger than the limit of {} bytes",
                bytes.len(),
                limits.max_file_bytes
            ),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_str(text, limits),
        Err(error) => {
            let valid = &bytes[..error.valid_up_to()];
            // The valid prefix is UTF-8 by construction.
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ParsedFile::failed(
                Finding::error(
                    Rule::YamlInvalidUtf8,
                    "",
                    format!("invalid UTF-8 at byte {}", error.valid_up_to()),
                )
                .at(Some(to_position(line, column))),
            )
        }
    }
}

/// Reads every document of a YAML file from text.
pub fn parse_str(text: &str, limits: &Limits) -> ParsedFile {
    if text.len() > limits.max_file_bytes {
        return parse_bytes(text.as_bytes(), limits);
    }
    run_parser(text, Builder::new(limits)).output
}

/// Reads every document of a YAML text as plain values, whatever their shape (empty
/// documents are `null`). Used where YAML is content rather than entities (`$yaml`).
pub fn parse_values(text: &str, limits: &Limits) -> Result<Vec<Value>, Finding> {
    if text.len() > limits.max_file_bytes {
        let finding = parse_bytes(text.as_bytes(), limits)
            .findings
            .into_iter()
            .next();
        return Err(
            finding.unwrap_or_else(|| Finding::error(Rule::YamlTooLarge, "", "file too large"))
        );
    }
    let mut builder = Builder::new(limits);
    builder.keep_all = true;
    let builder = run_parser(text, builder);
    match builder.output.findings.into_iter().next() {
        Some(finding) => Err(finding),
        None => Ok(builder.all_documents),
    }
}

fn run_parser<'l>(text: &str, mut builder: Builder<'l>) -> Builder<'l> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let outcome = match next {
            Ok((event, span)) => builder.on_event(event, span),
            Err(error) => {
                // The scanner caps flow nesting itself; report that as the depth limit it is.
                let rule = if error.info().contains("recursion limit") {
                    Rule::YamlTooDeep
                } else {
                    Rule::YamlSyntax
                };
                Err(
                    Finding::error(rule, "", error.info().to_owned()).at(Some(to_position(
                        error.marker().line(),
                        error.marker().col() + 1,
                    ))),
                )
            }
        };
        if let Err(finding) = outcome {
            builder.output.findings.push(finding);
            break;
        }
    }
    builder
}

impl ParsedFile {
    fn failed(finding: Finding) -> Self {
        ParsedFile {
            documents: Vec::new(),
            findings: vec![finding],
        }
    }
}

fn to_position(line: usize, column: usize) -> Position {
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

fn span_position(span: &Span) -> Position {
    to_position(span.start.line(), span.start.col() + 1)
}

/// A finished node: its value and where it sits.
#[derive(Clone)]
struct Node {
    value: Value,
    source: SourceNode,
    /// Nodes in the subtree, to charge alias expansion.
    size: usize,
    /// Nesting levels in the subtree (0 for a scalar), so an alias cannot paste a subtree
    /// deeper than `max_depth`.
    height: usize,
    /// A scalar infinity or NaN: JSON holds it as null, but it is a number, not an empty
    /// document.
    non_finite: bool,
}

enum Frame {
    Sequence {
        anchor: usize,
        position: Position,
        values: Vec<Value>,
        sources: Vec<SourceNode>,
        size: usize,
        height: usize,
    },
    Mapping {
        anchor: usize,
        position: Position,
        values: Map<String, Value>,
        sources: Vec<(String, Position, SourceNode)>,
        pending_key: Option<(String, Position)>,
        size: usize,
        height: usize,
    },
}

struct Builder<'l> {
    limits: &'l Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_nodes: usize,
    document_index: usize,
    output: ParsedFile,
    /// Keep every document as a plain value (for `$yaml` placeholders) instead of entities.
    keep_all: bool,
    all_documents: Vec<Value>,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            document_index: 0,
            output: ParsedFile::default(),
            keep_all: false,
            all_documents: Vec::new(),
        }
    }

    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), Finding> {
        let position = span_position(&span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                if self.document_index >= self.limits.max_documents {
                    return Err(Finding::error(
                        Rule::YamlTooManyDocuments,
                        "",
                        format!(
                            "more than {} documents in one file",
                            self.limits.max_documents
                        ),
                    )
                    .at(Some(position)));
                }
                self.anchors.clear();
                Ok(())
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_deref(), position)?;
                let non_finite = value.is_null() && NON_FINITE.contains(&text.as_ref());
                let node = Node {
                    value,
                    source: SourceNode {
                        position,
                        children: SourceChildren::Leaf,
                    },
                    size: 1,
                    height: 0,
                    non_finite,
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.complete(node)
            }
            Event::Alias(anchor) => {
                let Some(node) = self.anchors.get(&anchor) else {
                    return Err(
                        Finding::error(Rule::YamlSyntax, "", "alias to an unknown anchor")
                            .at(Some(position)),
                    );
                };
                self.alias_nodes = self.alias_nodes.saturating_add(node.size);
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(Finding::error(
                        Rule::YamlAliasLimit,
                        "",
                        format!(
                            "aliases expand to more than {} nodes",
                            self.limits.max_alias_nodes
                        ),
                    )
                    .at(Some(position)));
                }
                if self.stack.len() + node.height > self.limits.max_depth {
                    return Err(Finding::error(
                        Rule::YamlTooDeep,
                        "",
                        format!(
                            "this alias nests its anchor deeper than {} levels",
                            self.limits.max_depth
                        ),
                    )
                    .at(Some(position)));
                }
                let mut node = node.clone();
                node.source.position = position;
                self.complete(node)
            }
            Event::SequenceStart(anchor, _) => {
                self.check_depth(position)?;
                self.stack.push(Frame::Sequence {
                    anchor,
                    position,
                    values: Vec::new(),
                    sources: Vec::new(),
                    size: 1,
                    height: 0,
                });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.check_depth(position)?;
                self.stack.push(Frame::Mapping {
                    anchor,
                    position,
                    values: Map::new(),
                    sources: Vec::new(),
                    pending_key: None,
                    size: 1,
                    height: 0,
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Sequence {
                        anchor,
                        position,
                        values,
                        sources,
                        size,
                        height,
                    }) => (
                        anchor,
                        Node {
                            value: Value::Array(values),
                            source: SourceNode {
                                position,
                                children: SourceChildren::Sequence(sources),
                            },
                            size,
                            height: height + 1,
                            non_finite: false,
                        },
                    ),
                    Some(Frame::Mapping {
                        anchor,
                        position,
                        values,
                        sources,
                        size,
                        height,
                        ..
                    }) => (
                        anchor,
                        Node {
                            value: Value::Object(values),
                            source: SourceNode {
                                position,
                                children: SourceChildren::Mapping(sources),
                            },
                            size,
                            height: height + 1,
                            non_finite: false,
                        },
                    ),
                    None => return Ok(()),
                };
                let (anchor, node) = node;
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.complete(node)
            }
        }
    }

    fn check_depth(&self, position: Position) -> Result<(), Finding> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(Finding::error(
                Rule::YamlTooDeep,
                "",
                format!("nesting deeper than {} levels", self.limits.max_depth),
            )
            .at(Some(position)));
        }
        Ok(())
    }

    /// Attaches a finished node to its parent, or finishes the document.
    fn complete(&mut self, node: Node) -> Result<(), Finding> {
        match self.stack.last_mut() {
            None => {
                self.finish_document(node);
                Ok(())
            }
            Some(Frame::Sequence {
                values,
                sources,
                size,
                height,
                ..
            }) => {
                *height = (*height).max(node.height);
                *size = size.saturating_add(node.size);
                values.push(node.value);
                sources.push(node.source);
                Ok(())
            }
            Some(Frame::Mapping {
                values,
                sources,
                pending_key,
                size,
                height,
                ..
            }) => match pending_key.take() {
                None => {
                    let key = scalar_key(&node.value).ok_or_else(|| {
                        Finding::error(
                            Rule::YamlComplexKey,
                            "",
                            "a mapping key must be a scalar, not a mapping or sequence",
                        )
                        .at(Some(node.source.position))
                    })?;
                    if values.contains_key(&key) {
                        return Err(Finding::error(
                            Rule::YamlDuplicateKey,
                            "",
                            format!("duplicate key {key:?} in mapping"),
                        )
                        .at(Some(node.source.position)));
                    }
                    *pending_key = Some((key, node.source.position));
                    Ok(())
                }
                Some((key, key_position)) => {
                    *height = (*height).max(node.height);
                    *size = size.saturating_add(node.size);
                    values.insert(key.clone(), node.value);
                    sources.push((key, key_position, node.source));
                    Ok(())
                }
            },
        }
    }

    fn finish_document(&mut self, node: Node) {
        let index = self.document_index;
        self.document_index += 1;
        if self.keep_all {
            self.all_documents.push(node.value);
            return;
        }
        match node.value {
            // An empty document (`---` alone, comments only) is skipped, as Backstage does.
            Value::Null if !node.non_finite => {}
            Value::Object(_) => self.output.documents.push(Document {
                index,
                value: node.value,
                source: SourceMap::new(node.source),
            }),
            other => self.output.findings.push(
                Finding::error(
                    Rule::YamlNotAMapping,
                    "",
                    format!(
                        "document {} must be a mapping (an entity), got {}",
                        index + 1,
                        if node.non_finite {
                            "a number"
                        } else {
                            json_type_name(&other)
                        }
                    ),
                )
                .at(Some(node.source.position)),
            ),
        }
    }
}

/// A JSON-ish name for a value's type, for messages.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn scalar_key(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => Some("null".to_owned()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    position: Position,
) -> Result<Value, Finding> {
    let core_tag = tag
        .filter(|t| t.is_yaml_core_schema())
        .map(|t| t.suffix.as_str());
    match core_tag {
        Some("str") => return Ok(Value::String(text.to_owned())),
        Some("null") | Some("bool") | Some("int") | Some("float") => {
            let value = resolve_plain(text);
            let matches = matches!(
                (core_tag, &value),
                (Some("null"), Value::Null)
                    | (Some("bool"), Value::Bool(_))
                    | (Some("int"), Value::Number(_))
                    | (Some("float"), Value::Number(_))
            );
            if !matches {
                return Err(Finding::error(
                    Rule::YamlSyntax,
                    "",
                    format!("{text:?} is not a valid !!{}", core_tag.unwrap_or_default()),
                )
                .at(Some(position)));
            }
            return Ok(value);
        }
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    Ok(resolve_plain(text))
}

/// The core schema's infinities and NaN.
const NON_FINITE: &[&str] = &[
    ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN",
    ".NAN",
];

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        // JSON cannot hold infinities or NaN; they become null, as JSON.stringify does.
        text if NON_FINITE.contains(&text) => return Value::Null,
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Value::String(text.to_owned());
    }
    if let Some(value) = resolve_int(text) {
        return value;
    }
    if is_core_float(text)
        && let Ok(float) = text.parse::<f64>()
        && let Some(number) = Number::from_f64(float)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

fn resolve_int(text: &str) -> Option<Value> {
    if let Some(octal) = text.strip_prefix("0o") {
        return parse_radix(octal, 8);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return parse_radix(hex, 16);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(int) = text.parse::<i64>() {
        return Some(Value::from(int));
    }
    if let Ok(int) = text.trim_start_matches('+').parse::<u64>() {
        return Some(Value::from(int));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

fn parse_radix(digits: &str, radix: u32) -> Option<Value> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(Value::from)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(text: &str) -> bool {
    let bytes = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut index = 0;
    let int_digits = count_digits(&bytes[index..]);
    index += int_digits;
    let mut frac_digits = 0;
    if bytes.get(index) == Some(&b'.') {
        index += 1;
        frac_digits = count_digits(&bytes[index..]);
        index += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(bytes.get(index), Some(b'e' | b'E')) {
        index += 1;
        if matches!(bytes.get(index), Some(b'-' | b'+')) {
            index += 1;
        }
        let exp_digits = count_digits(&bytes[index..]);
        if exp_digits == 0 {
            return false;
        }
        index += exp_digits;
    }
    index == bytes.len()
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> ParsedFile {
        parse_str(text, &Limits::default())
    }

    fn single(text: &str) -> Value {
        let parsed = parse(text);
        assert!(parsed.findings.is_empty(), "{:?}", parsed.findings);
        assert_eq!(parsed.documents.len(), 1);
        parsed.documents[0].value.clone()
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let value = single(
            "a: 123\nb: '123'\nc: true\nd: yes\ne: ~\nf: 1.5\ng: 0x1F\nh: 0o17\ni: .inf\nj: 1e3\nk: 12abc\nl: !!str 5\n",
        );
        assert_eq!(
            value,
            json!({"a": 123, "b": "123", "c": true, "d": "yes", "e": null, "f": 1.5,
                   "g": 31, "h": 15, "i": null, "j": 1000.0, "k": "12abc", "l": "5"})
        );
    }

    #[test]
    fn keeps_merge_keys_as_ordinary_keys() {
        let value = single("base: &b {x: 1}\nother:\n  <<: *b\n");
        assert_eq!(value["other"]["<<"], json!({"x": 1}));
    }

    #[test]
    fn rejects_duplicate_keys_with_position() {
        let parsed = parse("a: 1\nb:\n  c: 1\n  c: 2\n");
        assert_eq!(parsed.findings.len(), 1);
        let finding = &parsed.findings[0];
        assert_eq!(finding.rule, Rule::YamlDuplicateKey);
        assert_eq!(finding.position, Some(Position { line: 4, column: 3 }));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let parsed = parse("a: 1\n b: 2\n");
        assert_eq!(parsed.findings[0].rule, Rule::YamlSyntax);
        assert!(parsed.findings[0].position.is_some());
    }

    #[test]
    fn multi_document_skips_empty_and_flags_non_mappings() {
        let parsed = parse("---\na: 1\n---\n# only a comment\n---\n- x\n---\nb: 2\n---\n");
        assert_eq!(parsed.documents.len(), 2);
        assert_eq!(parsed.documents[1].value, json!({"b": 2}));
        assert_eq!(parsed.findings.len(), 1);
        assert_eq!(parsed.findings[0].rule, Rule::YamlNotAMapping);
        assert_eq!(parsed.findings[0].position.map(|p| p.line), Some(6));
    }

    #[test]
    fn stops_billion_laughs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let prev = level - 1;
            text.push_str(&format!(
                "a{level}: &a{level} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let parsed = parse(&text);
        assert_eq!(parsed.findings[0].rule, Rule::YamlAliasLimit);
        assert!(parsed.documents.is_empty());
    }

    #[test]
    fn limits_depth_without_recursion() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let parsed = parse(&text);
        assert_eq!(parsed.findings[0].rule, Rule::YamlTooDeep);
        let mut block = String::new();
        for level in 0..100 {
            block.push_str(&" ".repeat(level * 2));
            block.push_str("a:\n");
        }
        let parsed = parse(&block);
        assert_eq!(parsed.findings[0].rule, Rule::YamlTooDeep);
        assert_eq!(parsed.findings[0].position.map(|p| p.line), Some(65));
    }

    #[test]
    fn rejects_invalid_utf8_and_oversize() {
        let parsed = parse_bytes(b"a: 1\nb: \xff\xfe\n", &Limits::default());
        assert_eq!(parsed.findings[0].rule, Rule::YamlInvalidUtf8);
        assert_eq!(
            parsed.findings[0].position,
            Some(Position { line: 2, column: 4 })
        );
        let limits = Limits {
            max_file_bytes: 4,
            ..Limits::default()
        };
        assert_eq!(
            parse_bytes(b"a: 12345", &limits).findings[0].rule,
            Rule::YamlTooLarge
        );
    }

    #[test]
    fn rejects_complex_keys_and_tabs() {
        assert_eq!(
            parse("? [a, b]\n: 1\n").findings[0].rule,
            Rule::YamlComplexKey
        );
        assert_eq!(parse("a:\n\tb: 1\n").findings[0].rule, Rule::YamlSyntax);
    }

    #[test]
    fn accepts_bom_and_crlf() {
        let value = single("\u{feff}a: 1\r\nb: two\r\n");
        assert_eq!(value, json!({"a": 1, "b": "two"}));
    }

    #[test]
    fn locates_fields() {
        let parsed = parse(
            "kind: Component\nmetadata:\n  name: x\n  tags:\n    - a\n    - b\nspec:\n  type: service\n",
        );
        let source = &parsed.documents[0].source;
        let at = |path: FieldPath| source.locate(&path);
        assert_eq!(
            at(FieldPath::keys(&["metadata", "name"])),
            Position { line: 3, column: 9 }
        );
        assert_eq!(
            at(FieldPath::keys(&["metadata", "tags"]).index(1)),
            Position { line: 6, column: 7 }
        );
        // A missing field points at its nearest existing parent key.
        assert_eq!(
            at(FieldPath::keys(&["spec", "owner"])),
            Position { line: 7, column: 1 }
        );
        assert_eq!(
            at(FieldPath::keys(&["metadata"])),
            Position { line: 2, column: 1 }
        );
        assert_eq!(
            source.locate_key(&FieldPath::keys(&["spec"])),
            Position { line: 7, column: 1 }
        );
    }
}
