//! Backstage's JSON predicate language (`shared/spec/catalog-api.md` §2.2), the `query` of
//! POST bodies, parsed into a [`Predicate`] and written back with [`to_json`].
//!
//! A predicate is a JSON object, recursively:
//!
//! - `{"$all": [P, …]}` (AND; empty matches everything), `{"$any": [P, …]}` (OR; empty
//!   matches nothing), `{"$not": P}`: exactly one key each.
//! - A field expression `{"<dotted.key>": V, …}`: several keys are AND-ed, keys are
//!   lower-cased and must not start with `$`; `{}` matches everything. `V` is one of
//!   - a primitive (string, number, boolean), compared as a lower-cased string;
//!   - `{"$exists": true|false}`;
//!   - `{"$in": [primitives]}` (an empty list matches nothing);
//!   - `{"$hasPrefix": "str"}`;
//!   - `{"$contains": primitive}`, the same as equality on the search rows;
//!   - for the key `relations` only, `{"$contains": {"type": "<t>", "targetRef": "<ref>"}}`
//!     with `targetRef` a string or `{"$in": [strings]}` (non-empty), or omitted for any
//!     relation of that type (which parses to `relations.<t>` exists).
//!
//! Rejected, each with a message that says where and why: top-level primitives, `null`
//! values (a key's presence is tested with `$exists`), lists given directly as values,
//! nested objects without an operator, unknown operators, operator objects with more than
//! one key, and operators with the wrong operand.

use crate::error::QueryError;
use crate::predicate::{Condition, Predicate, RELATIONS_KEY};
use crate::search_rows::scalar_text;
use serde_json::{Map, Value, json};

/// Parses a predicate of the JSON predicate language.
pub fn parse(value: &Value) -> Result<Predicate, QueryError> {
    Parser::default().predicate(value)
}

/// Writes a predicate in the JSON predicate language; [`parse`] gives it back unchanged
/// for every predicate [`parse`] can produce (lower-cased keys and values, relation
/// conditions only on `relations` with at least one target).
pub fn to_json(predicate: &Predicate) -> Value {
    match predicate {
        Predicate::All(items) => json!({ "$all": items.iter().map(to_json).collect::<Vec<_>>() }),
        Predicate::Any(items) => json!({ "$any": items.iter().map(to_json).collect::<Vec<_>>() }),
        Predicate::Not(inner) => json!({ "$not": to_json(inner) }),
        Predicate::Field { key, condition } => {
            let value = match condition {
                Condition::Exists(exists) => json!({ "$exists": exists }),
                Condition::In(values) if values.len() == 1 => json!(values[0]),
                Condition::In(values) => json!({ "$in": values }),
                Condition::HasPrefix(prefix) => json!({ "$hasPrefix": prefix }),
                Condition::Relation {
                    relation_type,
                    targets,
                } => {
                    let target_ref = if targets.len() == 1 {
                        json!(targets[0])
                    } else {
                        json!({ "$in": targets })
                    };
                    json!({ "$contains": { "type": relation_type, "targetRef": target_ref } })
                }
            };
            let mut object = Map::new();
            object.insert(key.clone(), value);
            Value::Object(object)
        }
    }
}

/// One step of the location of a problem in the predicate.
enum Step {
    Operator(&'static str),
    Index(usize),
    Key(String),
}

/// A recursive-descent parser that keeps track of where it is, for error messages.
#[derive(Default)]
struct Parser {
    path: Vec<Step>,
}

impl Parser {
    fn predicate(&mut self, value: &Value) -> Result<Predicate, QueryError> {
        let Value::Object(map) = value else {
            let hint = if self.path.is_empty() && scalar_text(value).is_some() {
                format!(
                    "; wrap it in a field expression, e.g. {{\"kind\": {}}}",
                    show(value)
                )
            } else {
                String::new()
            };
            return Err(self.error(format!(
                "expected an object ($all, $any, $not or a field expression), got {}{hint}",
                describe(value)
            )));
        };
        if let Some(operator) = map.keys().find(|key| key.starts_with('$')) {
            if map.len() > 1 {
                return Err(self.error(format!(
                    "operator \"{operator}\" cannot be combined with other keys (got keys {})",
                    key_list(map)
                )));
            }
            let inner = &map[operator.as_str()];
            return match operator.as_str() {
                "$all" => Ok(Predicate::All(self.list("$all", inner)?)),
                "$any" => Ok(Predicate::Any(self.list("$any", inner)?)),
                "$not" => self
                    .nested(Step::Operator("$not"), |p| p.predicate(inner))
                    .map(|p| Predicate::Not(Box::new(p))),
                _ => Err(self.error(format!(
                    "unknown operator \"{operator}\" (expected \"$all\", \"$any\" or \"$not\"; \
                     field keys must not start with \"$\")"
                ))),
            };
        }
        let mut fields = Vec::with_capacity(map.len());
        for (key, value) in map {
            let field = self.nested(Step::Key(key.clone()), |p| p.field(key, value))?;
            fields.push(field);
        }
        Ok(if fields.len() == 1 {
            fields.remove(0)
        } else {
            Predicate::All(fields)
        })
    }

    /// The operand of `$all`/`$any`: a list of predicates.
    fn list(
        &mut self,
        operator: &'static str,
        value: &Value,
    ) -> Result<Vec<Predicate>, QueryError> {
        self.nested(Step::Operator(operator), |p| {
            let Value::Array(items) = value else {
                return Err(p.error(format!(
                    "expected a list of predicates, got {}",
                    describe(value)
                )));
            };
            items
                .iter()
                .enumerate()
                .map(|(index, item)| p.nested(Step::Index(index), |p| p.predicate(item)))
                .collect()
        })
    }

    /// One `"<key>": V` of a field expression (the path already ends with the key).
    fn field(&mut self, raw_key: &str, value: &Value) -> Result<Predicate, QueryError> {
        if raw_key.is_empty() {
            return Err(self.error("field keys must not be empty".to_owned()));
        }
        let key = raw_key.to_lowercase();
        let condition = match value {
            Value::Object(map) => return self.operator_value(key, map),
            Value::Null => {
                return Err(self.error(
                    "null is not a valid value (expected a string, number or boolean; \
                     use {\"$exists\": false} to match a missing key)"
                        .to_owned(),
                ));
            }
            Value::Array(_) => {
                return Err(self.error(
                    "a list is not a valid value; use {\"$in\": [...]} to match one of several \
                     values"
                        .to_owned(),
                ));
            }
            primitive => Condition::In(vec![lower_text(primitive)]),
        };
        Ok(Predicate::Field { key, condition })
    }

    /// `{"$exists": …}`, `{"$in": …}`, `{"$hasPrefix": …}` or `{"$contains": …}`.
    fn operator_value(
        &mut self,
        key: String,
        map: &Map<String, Value>,
    ) -> Result<Predicate, QueryError> {
        let mut entries = map.iter();
        let (operator, operand) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            (None, _) => {
                return Err(self.error(
                    "expected a primitive or an operator ($exists, $in, $hasPrefix, \
                     $contains), got an empty object"
                        .to_owned(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(self.error(format!(
                    "expected exactly one operator, got keys {}",
                    key_list(map)
                )));
            }
        };
        let condition = match operator.as_str() {
            "$exists" => match operand {
                Value::Bool(exists) => Ok(Condition::Exists(*exists)),
                other => Err(self.operand_error("$exists", "true or false", other)),
            },
            "$in" => match operand {
                Value::Array(items) => {
                    let mut values = Vec::with_capacity(items.len());
                    for item in items {
                        if scalar_text(item).is_none() {
                            return Err(self.operand_error(
                                "$in",
                                "a list of strings, numbers or booleans",
                                operand,
                            ));
                        }
                        values.push(lower_text(item));
                    }
                    Ok(Condition::In(values))
                }
                other => {
                    Err(self.operand_error("$in", "a list of strings, numbers or booleans", other))
                }
            },
            "$hasPrefix" => match operand {
                Value::String(prefix) => Ok(Condition::HasPrefix(prefix.to_lowercase())),
                other => Err(self.operand_error("$hasPrefix", "a string", other)),
            },
            "$contains" => match operand {
                Value::Object(target) if key == RELATIONS_KEY => return self.relation(target),
                Value::Object(_) => Err(self.error(format!(
                    "the object form of \"$contains\" is only supported for the key \
                     \"{RELATIONS_KEY}\"; use a string, number or boolean"
                ))),
                Value::Null | Value::Array(_) => {
                    Err(self.operand_error("$contains", "a string, number or boolean", operand))
                }
                primitive => Ok(Condition::In(vec![lower_text(primitive)])),
            },
            other if other.starts_with('$') => Err(self.error(format!(
                "unknown operator \"{other}\" (expected \"$exists\", \"$in\", \"$hasPrefix\" or \
                 \"$contains\")"
            ))),
            other => Err(self.error(format!(
                "nested objects are not supported (got key \"{other}\"); use a dotted key such \
                 as \"spec.owner\" instead"
            ))),
        }?;
        Ok(Predicate::Field { key, condition })
    }

    /// `{"type": "<t>", "targetRef": "<ref>" | {"$in": [...]}}` under `relations.$contains`.
    fn relation(&mut self, target: &Map<String, Value>) -> Result<Predicate, QueryError> {
        self.nested(Step::Operator("$contains"), |p| {
            let mut relation_type: Option<&str> = None;
            let mut targets: Option<Vec<String>> = None;
            for (raw_key, value) in target {
                match raw_key.to_lowercase().as_str() {
                    "type" if relation_type.is_some() => {
                        return Err(p.error(format!("duplicate key \"{raw_key}\"")));
                    }
                    "type" => match value {
                        Value::String(t) if !t.is_empty() => relation_type = Some(t),
                        other => {
                            return Err(p.error(format!(
                                "\"type\" must be a non-empty string, got {}",
                                describe(other)
                            )));
                        }
                    },
                    "targetref" if targets.is_some() => {
                        return Err(p.error(format!("duplicate key \"{raw_key}\"")));
                    }
                    "targetref" => targets = Some(p.target_refs(value)?),
                    _ => {
                        return Err(p.error(format!(
                            "unsupported key \"{raw_key}\" (only \"type\" and \"targetRef\" are \
                             supported)"
                        )));
                    }
                }
            }
            let Some(relation_type) = relation_type else {
                return Err(p.error("a relation needs a \"type\" string".to_owned()));
            };
            let relation_type = relation_type.to_lowercase();
            Ok(match targets {
                Some(targets) => Predicate::Field {
                    key: RELATIONS_KEY.to_owned(),
                    condition: Condition::Relation {
                        relation_type,
                        targets,
                    },
                },
                // Any relation of the type: the search rows' `relations.<type>` exists.
                None => Predicate::Field {
                    key: format!("{RELATIONS_KEY}.{relation_type}"),
                    condition: Condition::Exists(true),
                },
            })
        })
    }

    fn target_refs(&self, value: &Value) -> Result<Vec<String>, QueryError> {
        const EXPECTED: &str = "\"targetRef\" must be a string or {\"$in\": [strings]}";
        match value {
            Value::String(target) => Ok(vec![target.to_lowercase()]),
            Value::Object(map) if map.len() == 1 && map.contains_key("$in") => {
                let Value::Array(items) = &map["$in"] else {
                    return Err(self.error(format!("{EXPECTED}, got {}", show(value))));
                };
                if items.is_empty() {
                    return Err(self.error("\"targetRef\" has an empty \"$in\" list".to_owned()));
                }
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(target) => Ok(target.to_lowercase()),
                        _ => Err(self.error(format!("{EXPECTED}, got {}", show(value)))),
                    })
                    .collect()
            }
            other => Err(self.error(format!("{EXPECTED}, got {}", show(other)))),
        }
    }

    /// Runs `f` with `step` appended to the path.
    fn nested<T>(&mut self, step: Step, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(step);
        let result = f(self);
        self.path.pop();
        result
    }

    fn operand_error(&self, operator: &str, expected: &str, got: &Value) -> QueryError {
        self.error(format!(
            "\"{operator}\" expects {expected}, got {}",
            show(got)
        ))
    }

    fn error(&self, message: String) -> QueryError {
        let mut at = String::new();
        for step in &self.path {
            match step {
                Step::Index(index) => at.push_str(&format!("[{index}]")),
                Step::Operator(operator) => {
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(operator);
                }
                Step::Key(key) => {
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(&Value::String(key.clone()).to_string());
                }
            }
        }
        QueryError::InvalidPredicate { at, message }
    }
}

/// The lower-cased text of a primitive (callers check it is one).
fn lower_text(value: &Value) -> String {
    scalar_text(value).unwrap_or_default().to_lowercase()
}

/// A short description of a JSON value's type, for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Object(_) | Value::Array(_) => show(value),
        Value::Null => "null".to_owned(),
        Value::Bool(_) => format!("the boolean {value}"),
        Value::Number(_) => format!("the number {value}"),
        Value::String(_) => format!("the string {}", show(value)),
    }
}

/// A JSON value as compact text, shortened to about 80 characters.
fn show(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn key_list(map: &Map<String, Value>) -> String {
    map.keys()
        .map(|key| Value::String(key.clone()).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
