//! The extra sections of Group and User pages: members (or the groups a user is in), parent and
//! child groups, and everything the group or user owns, each owned entity with its count of
//! open processing errors (one `ListProcessingErrors` call by owner), so a team sees what it
//! must fix.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cadastre_proto::v1 as pb;
use serde_json::Value;

use super::graph::relations_of;
use super::html::{esc, query, ref_link};

/// At most this many errors are counted for an owner.
pub(crate) const OWNER_ERRORS_COUNTED: u32 = 1000;

/// Whether `kind` gets these sections.
pub(crate) fn is_party(kind: &str) -> bool {
    kind.eq_ignore_ascii_case("group") || kind.eq_ignore_ascii_case("user")
}

/// The sections, from the entity's relations and the errors of what it owns.
pub(crate) fn party_html(
    out: &mut String,
    entity: &Value,
    entity_ref: &str,
    owner_errors: &[pb::ProcessingError],
) {
    let relations = relations_of(entity);
    let targets = |relation: &str| -> Vec<&str> {
        let mut list: Vec<&str> = relations
            .iter()
            .filter(|(kind, _)| kind == relation)
            .map(|(_, target)| target.as_str())
            .collect();
        list.sort_unstable();
        list.dedup();
        list
    };
    let is_group = entity["kind"]
        .as_str()
        .is_some_and(|kind| kind.eq_ignore_ascii_case("group"));
    out.push_str("<div class=\"cards\">");
    if is_group {
        out.push_str(
            "<section class=\"card\" aria-labelledby=\"members\"><h2 id=\"members\">Members</h2>",
        );
        ref_list(out, &targets("hasMember"), "members", "No members.");
        if let Some(email) = entity["spec"]["profile"]["email"].as_str() {
            let _ = write!(out, "<p class=\"subtle\">Contact: {}</p>", esc(email));
        }
        out.push_str(
            "</section><section class=\"card\" aria-labelledby=\"hierarchy\">\
                       <h2 id=\"hierarchy\">Groups</h2><h3>Parent</h3>",
        );
        ref_list(out, &targets("childOf"), "parent", "No parent group.");
        out.push_str("<h3>Child groups</h3>");
        ref_list(out, &targets("parentOf"), "children", "No child groups.");
        out.push_str("</section>");
    } else {
        out.push_str(
            "<section class=\"card\" aria-labelledby=\"member-of\"><h2 id=\"member-of\">Member of</h2>",
        );
        ref_list(out, &targets("memberOf"), "member-of", "In no group.");
        if let Some(email) = entity["spec"]["profile"]["email"].as_str() {
            let _ = write!(out, "<p class=\"subtle\">Contact: {}</p>", esc(email));
        }
        out.push_str("</section>");
    }
    out.push_str("</div>");

    // What it owns, with open errors: owned refs first, then any entity the errors name.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for error in owner_errors {
        if !error.entity_ref.is_empty() {
            *counts.entry(error.entity_ref.to_lowercase()).or_default() += 1;
        }
    }
    let mut owned: Vec<String> = targets("ownerOf").into_iter().map(str::to_owned).collect();
    for extra in counts.keys() {
        if !owned.contains(extra) {
            owned.push(extra.clone());
        }
    }
    owned.sort_by(|a, b| {
        counts
            .get(b)
            .unwrap_or(&0)
            .cmp(counts.get(a).unwrap_or(&0))
            .then_with(|| a.cmp(b))
    });
    let _ = write!(
        out,
        "<section class=\"card\" aria-labelledby=\"owned\"><h2 id=\"owned\">Owns</h2>\
         <p class=\"summary\">{} entities, {} open processing errors{}. \
         <a href=\"/ingestion{}\">All errors of this owner</a></p>",
        owned.len(),
        owner_errors.len(),
        if owner_errors.len() as u32 >= OWNER_ERRORS_COUNTED {
            " (at least)"
        } else {
            ""
        },
        esc(&query([("owner", entity_ref)])),
    );
    if owned.is_empty() {
        out.push_str("<p class=\"subtle\">Owns nothing.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table class=\"owned\"><thead><tr><th scope=\"col\">Entity</th>\
         <th scope=\"col\">Kind</th><th scope=\"col\">Open errors</th></tr></thead><tbody>",
    );
    for reference in &owned {
        let kind = reference.split(':').next().unwrap_or_default();
        let errors = counts.get(reference).copied().unwrap_or(0);
        let _ = write!(
            out,
            "<tr data-ref=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(reference),
            ref_link(reference, None, "default"),
            esc(kind),
            if errors > 0 {
                "has-errors"
            } else {
                "no-errors"
            },
            errors,
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn ref_list(out: &mut String, refs: &[&str], class: &str, none: &str) {
    if refs.is_empty() {
        let _ = write!(out, "<p class=\"subtle\">{}</p>", esc(none));
        return;
    }
    let _ = write!(out, "<ul class=\"relations {class}\">");
    for reference in refs {
        let _ = write!(out, "<li>{}</li>", ref_link(reference, None, "default"));
    }
    out.push_str("</ul>");
}
