//! The opaque `cursor` of `GET`/`POST /entities/by-query` (`shared/spec/catalog-api.md` §3):
//! everything needed to fetch another page of the same query with keyset pagination.
//!
//! A [`Cursor`] carries the query (predicate, order fields, full-text filter), the total
//! computed on the first page, and a *boundary*: the sort value and entity ref of an item.
//! On the wire it is the URL-safe base64 (no padding) of its JSON ([`encode`]); anything
//! that does not decode into a valid cursor, the empty string included, is
//! [`QueryError::MalformedCursor`] ([`decode`]).
//!
//! # Paging protocol
//!
//! Items are ordered by the sort value of the first order field (ascending or descending;
//! entities lacking it are excluded), ties broken by entity ref ascending; with no order
//! field, by entity ref alone and the sort values are `None`. For a page of `limit` items:
//!
//! - `after: None` (first page): from the start (after the request's initial `offset`).
//! - `after: Some(b)`, `is_previous: false`: the first `limit` items strictly after `b`.
//! - `after: Some(b)`, `is_previous: true`: the last `limit` items strictly before `b`
//!   (fetch in reverse order, then reverse the page).
//!
//! Fetch `limit + 1` items in the page's direction to learn whether more lie beyond. Then:
//!
//! - `nextCursor` = [`Cursor::next_page`] from the page's last item, when more items follow
//!   it: on a forward (or first) page when the extra item came back; on a backward page
//!   always (the boundary item follows).
//! - `prevCursor` = [`Cursor::previous_page`] from the page's first item, when items
//!   precede it: on a backward page when the extra item came back; on a forward page when
//!   it has a boundary (or the first page had an `offset` > 0).
//!
//! Items inserted or deleted between requests shift pages but never duplicate or skip an
//! item that exists throughout.

use crate::error::QueryError;
use crate::predicate::{FullTextFilter, OrderField, Predicate};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

/// URL-safe base64, written without padding, read with or without it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A page boundary: the sort value (lower-cased; `None` without order fields) and the entity
/// ref of an item.
pub type Boundary = (Option<String>, String);

/// The state carried from one page of a `by-query` request to the next or previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cursor {
    /// The query. Carried as the predicate tree itself rather than in the JSON predicate
    /// language, so that every parsed query survives the trip (a legacy filter may use
    /// keys the language cannot write, such as `$x`).
    pub predicate: Predicate,
    /// The order fields of the query (only the first one orders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_fields: Vec<OrderField>,
    /// The full-text filter of the query, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_text: Option<FullTextFilter>,
    /// The boundary of the page: the page lies after it, or before it when `is_previous`.
    /// `None` on the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Boundary>,
    /// Whether the page is the one *before* the boundary (a `prevCursor`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_previous: bool,
    /// The total number of matching items, computed once on the first page; `None` when
    /// the request excluded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<u64>,
}

impl Cursor {
    /// The first page of a query.
    pub fn new(
        predicate: Predicate,
        order_fields: Vec<OrderField>,
        full_text: Option<FullTextFilter>,
        total_items: Option<u64>,
    ) -> Self {
        Self {
            predicate,
            order_fields,
            full_text,
            after: None,
            is_previous: false,
            total_items,
        }
    }

    /// The order field that orders the items (the first one), if any.
    pub fn sort_field(&self) -> Option<&OrderField> {
        self.order_fields.first()
    }

    /// The cursor of the page following an item (the last item of this page).
    pub fn next_page(&self, sort_value: Option<String>, entity_ref: String) -> Self {
        Self {
            after: Some((sort_value, entity_ref)),
            is_previous: false,
            ..self.clone()
        }
    }

    /// The cursor of the page preceding an item (the first item of this page).
    pub fn previous_page(&self, sort_value: Option<String>, entity_ref: String) -> Self {
        Self {
            after: Some((sort_value, entity_ref)),
            is_previous: true,
            ..self.clone()
        }
    }

    /// The opaque text form; see [`encode`].
    pub fn encode(&self) -> String {
        encode(self)
    }

    /// Whether the fields hold what a cursor made by this crate holds.
    fn is_valid(&self) -> bool {
        let key_ok = |key: &str| !key.is_empty() && key.to_lowercase() == key;
        let order_ok = self.order_fields.iter().all(|order| key_ok(&order.field));
        let full_text_ok = self.full_text.as_ref().is_none_or(|filter| {
            !filter.term.is_empty()
                && filter.term.trim() == filter.term
                && filter.term.to_lowercase() == filter.term
                && !filter.fields.is_empty()
                && filter.fields.iter().all(|field| key_ok(field))
        });
        let boundary_ok = match &self.after {
            Some((_, entity_ref)) => !entity_ref.is_empty(),
            None => !self.is_previous,
        };
        self.predicate.is_normalized() && order_ok && full_text_ok && boundary_ok
    }
}

/// The URL-safe base64 (no padding) of the cursor's JSON.
pub fn encode(cursor: &Cursor) -> String {
    let json = serde_json::to_vec(cursor).unwrap_or_default();
    BASE64.encode(json)
}

/// Reads a cursor made by [`encode`]; anything else is [`QueryError::MalformedCursor`].
pub fn decode(text: &str) -> Result<Cursor, QueryError> {
    let json = BASE64
        .decode(text)
        .map_err(|_| QueryError::MalformedCursor)?;
    let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| QueryError::MalformedCursor)?;
    if cursor.is_valid() {
        Ok(cursor)
    } else {
        Err(QueryError::MalformedCursor)
    }
}
