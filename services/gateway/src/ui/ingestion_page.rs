//! `/ingestion`: recent harvest receipts (trigger, location, commit, counts, errors, times) and
//! processing errors — the same store calls as `/api/cadastre/v1/receipts` and
//! `/api/cadastre/v1/processing-errors`. Without a filter, every error, newest first, a page
//! at a time (`cursor` carries the store's opaque page boundary), and the locations whose
//! recent harvests failed are offered as filters. Filtered by `owner` (a ref; `team-a` means
//! `group:default/team-a`) and/or `location` (a location key): the store lists errors by one
//! scope, so with both, errors are asked for by owner and kept when at the location.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use cadastre_model::{EntityRef, RefContext};
use cadastre_proto::v1 as pb;
use pb::list_processing_errors_request::Scope;

use super::html::{esc, query, ref_link};
use super::layout;
use crate::Gateway;
use crate::error::ApiError;
use crate::params::Params;

/// Receipts shown.
const RECEIPTS_SHOWN: u32 = 50;
/// Errors shown for an owner or a location.
const ERRORS_SHOWN: u32 = 500;
/// Errors per page of the unfiltered listing.
const ERRORS_PER_PAGE: u32 = 100;
/// Failed files named per receipt.
const FAILED_FILES_NAMED: usize = 3;

/// Which errors the page lists.
enum Listing<'a> {
    /// Every error, newest first: the page after `cursor` (empty: the first page).
    All {
        cursor: &'a str,
        next_cursor: String,
    },
    /// The errors of what `owner` owns and/or of one location.
    Filtered {
        owner: Option<&'a str>,
        location: &'a str,
    },
}

/// `GET /ingestion?owner=…&location=…` or `GET /ingestion?cursor=…`.
pub(crate) async fn ingestion(
    State(gateway): State<Gateway>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw_query.as_deref(), &["owner", "location", "cursor"])?;
    let cursor = params.one("cursor")?.unwrap_or_default().to_owned();
    let owner_text = params.one("owner")?.unwrap_or_default().trim().to_owned();
    let location = params
        .one("location")?
        .unwrap_or_default()
        .trim()
        .to_owned();
    let owner = if owner_text.is_empty() {
        None
    } else {
        let parsed = EntityRef::parse(&owner_text, RefContext::new(Some("group"), Some("default")))
            .map_err(|error| ApiError::input(format!("The owner {owner_text:?}: {error}")))?;
        Some(format!("{}:{}/{}", parsed.kind, parsed.namespace, parsed.name).to_lowercase())
    };
    let scope = match (&owner, location.is_empty()) {
        (Some(owner), _) => Some(Scope::OwnerRef(owner.clone())),
        (None, false) => Some(Scope::LocationKey(location.clone())),
        (None, true) => None,
    };
    if scope.is_some() && !cursor.is_empty() {
        return Err(ApiError::input(
            "A cursor pages the unfiltered list of errors; the filtered lists are one page",
        ));
    }
    let receipts = async {
        Ok::<_, ApiError>(
            gateway
                .catalog()
                .list_harvest_receipts(pb::ListHarvestReceiptsRequest {
                    location_key: location.clone(),
                    limit: RECEIPTS_SHOWN,
                })
                .await?
                .into_inner()
                .receipts,
        )
    };
    let errors = async {
        let paged = scope.is_none();
        Ok::<_, ApiError>(
            gateway
                .catalog()
                .list_processing_errors(pb::ListProcessingErrorsRequest {
                    scope,
                    limit: if paged { ERRORS_PER_PAGE } else { ERRORS_SHOWN },
                    cursor: cursor.clone(),
                })
                .await?
                .into_inner(),
        )
    };
    let indexes_pending = async {
        Ok::<_, ApiError>(
            gateway
                .catalog()
                .get_feed_head(pb::GetFeedHeadRequest {})
                .await?
                .into_inner()
                .indexes_pending,
        )
    };
    let (receipts, listed, indexes_pending) =
        futures::future::try_join3(receipts, errors, indexes_pending).await?;
    let mut errors = listed.errors;
    if owner.is_some() && !location.is_empty() {
        errors.retain(|error| error.location_key == location);
    }
    let listing = if owner.is_none() && location.is_empty() {
        Listing::All {
            cursor: &cursor,
            next_cursor: listed.next_cursor,
        }
    } else {
        Listing::Filtered {
            owner: owner.as_deref(),
            location: &location,
        }
    };

    let mut main = String::with_capacity(16 * 1024);
    main.push_str(
        "<h1>Ingestion</h1><p class=\"subtle\">What the harvester read lately, and the \
         processing errors waiting to be fixed.</p>",
    );
    if indexes_pending > 0 {
        // A first import's read indexes (see catalog-store's `first_import`).
        let _ = write!(
            main,
            "<p class=\"notice\" role=\"status\">The catalog is building its read indexes after \
             its first import ({indexes_pending} to go): lists, filters and facets answer the \
             same meanwhile, more slowly.</p>"
        );
    }
    let _ = write!(
        main,
        "<form class=\"card filters\" method=\"get\" action=\"/ingestion\">\
         <div class=\"field\"><label for=\"owner\">Owner</label>\
         <input id=\"owner\" name=\"owner\" type=\"text\" value=\"{owner}\" placeholder=\"group:default/team-a\"></div>\
         <div class=\"field\"><label for=\"location\">Location</label>\
         <input id=\"location\" name=\"location\" type=\"text\" value=\"{location}\" \
         placeholder=\"url:https://…/catalog-info.yaml\"></div>\
         <div class=\"actions\"><button type=\"submit\">Filter</button> <a href=\"/ingestion\">Clear</a></div></form>",
        owner = esc(&owner_text),
        location = esc(&location),
    );
    errors_html(&mut main, &errors, &listing, &receipts);
    receipts_html(&mut main, &receipts, &location);
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Ingestion", "", &main),
    ))
}

fn location_link(location: &str) -> String {
    format!(
        "<a href=\"/ingestion{}\">{}</a>",
        esc(&query([("location", location)])),
        esc(location)
    )
}

/// The locations whose recent harvests failed, as filters.
fn failing_html(out: &mut String, receipts: &[pb::HarvestReceipt]) {
    let mut failing: BTreeMap<&str, u32> = BTreeMap::new();
    for receipt in receipts.iter().filter(|r| r.failed > 0) {
        let entry = failing.entry(receipt.location_key.as_str()).or_default();
        *entry = (*entry).max(receipt.failed);
    }
    if failing.is_empty() {
        out.push_str("<p>No recent harvest failed.</p>");
        return;
    }
    out.push_str("<h3>Locations with failures in recent harvests</h3><ul class=\"failing\">");
    for (key, failed) in failing {
        let _ = write!(
            out,
            "<li>{} <span class=\"count\">{failed} failed</span></li>",
            location_link(key)
        );
    }
    out.push_str("</ul>");
}

fn errors_html(
    out: &mut String,
    errors: &[pb::ProcessingError],
    listing: &Listing<'_>,
    receipts: &[pb::HarvestReceipt],
) {
    out.push_str(
        "<section class=\"card\" aria-labelledby=\"errors\"><h2 id=\"errors\">Processing errors</h2>",
    );
    match listing {
        Listing::All {
            cursor,
            next_cursor,
        } => {
            failing_html(out, receipts);
            let summary = match (cursor.is_empty(), next_cursor.is_empty()) {
                (true, true) => format!("{} open errors, newest first", errors.len()),
                (true, false) => format!("The newest {} open errors", errors.len()),
                (false, _) => format!("{} older open errors", errors.len()),
            };
            let _ = write!(
                out,
                "<p class=\"summary\">{summary}. Filter by owner or location above.</p>"
            );
        }
        Listing::Filtered { owner, location } => {
            let _ = write!(
                out,
                "<p class=\"summary\">{} open errors{}{}.</p>",
                errors.len(),
                owner
                    .map(|owner| format!(" of what {} owns", ref_link(owner, None, "default")))
                    .unwrap_or_default(),
                if location.is_empty() {
                    String::new()
                } else {
                    format!(" at <code>{}</code>", esc(location))
                },
            );
        }
    }
    if !errors.is_empty() {
        errors_table_html(out, errors);
    }
    if let Listing::All {
        cursor,
        next_cursor,
    } = listing
        && !(cursor.is_empty() && next_cursor.is_empty())
    {
        out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
        if !cursor.is_empty() {
            out.push_str("<a rel=\"first\" href=\"/ingestion\">← Newest</a>");
        }
        if !next_cursor.is_empty() {
            let _ = write!(
                out,
                "<a rel=\"next\" href=\"/ingestion{}\">Older →</a>",
                esc(&query([("cursor", next_cursor.as_str())]))
            );
        }
        out.push_str("</nav>");
    }
    out.push_str("</section>");
}

fn errors_table_html(out: &mut String, errors: &[pb::ProcessingError]) {
    out.push_str(
        "<div class=\"table-wrap\"><table class=\"errors\"><thead><tr><th scope=\"col\">Entity</th>\
         <th scope=\"col\">File</th><th scope=\"col\">Line</th><th scope=\"col\">Rule</th>\
         <th scope=\"col\">Message</th><th scope=\"col\">Location</th><th scope=\"col\">Recorded</th>\
         </tr></thead><tbody>",
    );
    for error in errors {
        let finding = error.finding.clone().unwrap_or_default();
        let entity = if error.entity_ref.is_empty() {
            "<span class=\"subtle\">the file</span>".to_owned()
        } else {
            ref_link(&error.entity_ref, None, "default")
        };
        let position = finding
            .position
            .map(|p| format!("{}:{}", p.line, p.column))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{entity}</td><td class=\"file\">{}</td><td>{position}</td><td><code>{}</code></td>\
             <td>{}{}</td><td class=\"file\">{}</td><td><time>{}</time></td></tr>",
            esc(&finding.file),
            esc(&finding.rule),
            if finding.path.is_empty() {
                String::new()
            } else {
                format!("<code>{}</code>: ", esc(&finding.path))
            },
            esc(&finding.message),
            location_link(&error.location_key),
            esc(&error.recorded_at),
        );
    }
    out.push_str("</tbody></table></div>");
}

fn receipts_html(out: &mut String, receipts: &[pb::HarvestReceipt], location: &str) {
    out.push_str(
        "<section class=\"card\" aria-labelledby=\"receipts\"><h2 id=\"receipts\">Recent harvests</h2>",
    );
    if receipts.is_empty() {
        let _ = write!(
            out,
            "<p class=\"subtle\">No harvest recorded{}.</p></section>",
            if location.is_empty() {
                String::new()
            } else {
                format!(" for <code>{}</code>", esc(location))
            }
        );
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table class=\"receipts\"><thead><tr>\
         <th scope=\"col\">Applied</th><th scope=\"col\">Trigger</th><th scope=\"col\">Location</th>\
         <th scope=\"col\">Commit</th><th scope=\"col\">Files read / unchanged</th>\
         <th scope=\"col\">Created / updated / unchanged / removed</th>\
         <th scope=\"col\">Failed</th><th scope=\"col\">Conflicts</th><th scope=\"col\">Harvest</th>\
         </tr></thead><tbody>",
    );
    for receipt in receipts {
        let mut failed = receipt.failed.to_string();
        if !receipt.failed_files.is_empty() {
            failed.push_str("<ul class=\"failed-files\">");
            for file in receipt.failed_files.iter().take(FAILED_FILES_NAMED) {
                let _ = write!(failed, "<li class=\"file\">{}</li>", esc(file));
            }
            if receipt.failed_files.len() > FAILED_FILES_NAMED {
                let _ = write!(
                    failed,
                    "<li>and {} more</li>",
                    receipt.failed_files.len() - FAILED_FILES_NAMED
                );
            }
            failed.push_str("</ul>");
        }
        let applied = if receipt.applied_at.is_empty() {
            &receipt.processed_at
        } else {
            &receipt.applied_at
        };
        let _ = write!(
            out,
            "<tr class=\"receipt{}\"><td><time>{}</time>{}</td><td>{}<br><span class=\"subtle\">{}</span></td>\
             <td class=\"file\">{}</td><td><code>{}</code></td><td>{} / {}</td>\
             <td>{} / {} / {} / {}</td><td>{failed}</td><td>{}</td>\
             <td><time>{}</time> → <time>{}</time></td></tr>",
            if receipt.failed > 0 { " failed" } else { "" },
            esc(applied),
            if receipt.parts_applied < receipt.parts {
                format!(
                    "<br><span class=\"subtle\">{} of {} parts applied</span>",
                    receipt.parts_applied, receipt.parts
                )
            } else {
                String::new()
            },
            esc(&receipt.trigger),
            esc(&receipt.reason),
            location_link(&receipt.location_key),
            esc(&receipt.commit),
            receipt.files_read,
            receipt.files_unchanged,
            receipt.created,
            receipt.updated,
            receipt.unchanged,
            receipt.removed,
            receipt.conflicts,
            esc(&receipt.harvest_started_at),
            esc(&receipt.harvest_finished_at),
        );
    }
    out.push_str("</tbody></table></div></section>");
}
