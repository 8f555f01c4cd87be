//! Sort orders (`shared/spec/catalog-api.md` §3).
//!
//! - `GET /entities`: repeatable `order`, each `asc:<field>` or `desc:<field>`
//!   ([`parse_order`]).
//! - `GET /entities/by-query`: repeatable `orderField`, each `<field>`, `<field>,asc` or
//!   `<field>,desc` ([`parse_order_field`]); only the first is used by the query, but all
//!   are validated.
//! - `POST /entities/by-query`: `orderBy: [{"field": …, "order": "asc"|"desc"}]`
//!   ([`order_by`], one entry at a time).
//!
//! Fields are trimmed, must not be empty, and are lower-cased (they name search-row keys).
//! `asc`/`desc` are matched exactly, as Backstage does.

use crate::error::QueryError;
use crate::predicate::OrderField;

const ORDER_FORMS: &str = "\"asc:<field>\" or \"desc:<field>\"";
const ORDER_FIELD_FORMS: &str = "\"<field>\", \"<field>,asc\" or \"<field>,desc\"";
const ORDER_BY_FORMS: &str = "a non-empty field with order \"asc\" or \"desc\"";

/// Parses the `order` parameters of `GET /entities`.
pub fn parse_order(params: &[&str]) -> Result<Vec<OrderField>, QueryError> {
    params
        .iter()
        .map(|param| {
            let invalid = || QueryError::InvalidOrder {
                parameter: "order",
                value: (*param).to_owned(),
                expected: ORDER_FORMS,
            };
            let (direction, field) = param.split_once(':').ok_or_else(invalid)?;
            let descending = descending(direction).ok_or_else(invalid)?;
            make(field, descending).ok_or_else(invalid)
        })
        .collect()
}

/// Parses the `orderField` parameters of `GET /entities/by-query`.
pub fn parse_order_field(params: &[&str]) -> Result<Vec<OrderField>, QueryError> {
    params
        .iter()
        .map(|param| {
            let invalid = || QueryError::InvalidOrder {
                parameter: "orderField",
                value: (*param).to_owned(),
                expected: ORDER_FIELD_FORMS,
            };
            let mut parts = param.split(',');
            let field = parts.next().unwrap_or_default();
            let descending = match (parts.next(), parts.next()) {
                (None, _) => false,
                (Some(direction), None) => descending(direction.trim()).ok_or_else(invalid)?,
                (Some(_), Some(_)) => return Err(invalid()),
            };
            make(field, descending).ok_or_else(invalid)
        })
        .collect()
}

/// One `orderBy` entry of `POST /entities/by-query`; a missing order is ascending.
pub fn order_by(field: &str, order: Option<&str>) -> Result<OrderField, QueryError> {
    let invalid = || QueryError::InvalidOrder {
        parameter: "orderBy",
        value: match order {
            Some(order) => format!("{field} {order}"),
            None => field.to_owned(),
        },
        expected: ORDER_BY_FORMS,
    };
    let descending = match order {
        None => false,
        Some(order) => descending(order).ok_or_else(invalid)?,
    };
    make(field, descending).ok_or_else(invalid)
}

fn descending(direction: &str) -> Option<bool> {
    match direction {
        "asc" => Some(false),
        "desc" => Some(true),
        _ => None,
    }
}

fn make(field: &str, descending: bool) -> Option<OrderField> {
    let field = field.trim();
    (!field.is_empty()).then(|| OrderField {
        field: field.to_lowercase(),
        descending,
    })
}
