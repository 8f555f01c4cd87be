//! The relations graph on an entity page: an inline SVG of the entity's neighbourhood, laid
//! out on the server on concentric circles (the entity in the middle, its neighbours on the
//! first ring, theirs on the second at depth 2), each node a link to its entity page. At most
//! [`MAX_NODES`] nodes are drawn, and the page says so when there were more.
//!
//! The picture is whole without script. `app.js` adds interaction from the data attributes
//! written here: each node sits in a `<g data-node="ref">`, each edge (and its label, shown
//! only while highlighted) carries `data-from`, `data-to` and `data-type` (the relation types
//! between the pair, space-separated), and the svg names its `data-center`. The controls it
//! uses (a checkbox per relation type drawn, zoom buttons) are written `hidden`: the script
//! shows them, so a page without it never offers controls that do nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::PI;
use std::fmt::Write as _;

use cadastre_model::{EntityRef, RefContext};
use serde_json::Value;

use super::html::{entity_path, esc, query};

/// The most nodes a graph draws (the entity included).
pub(crate) const MAX_NODES: usize = 60;
/// Labels longer than this are cut (the node's tooltip has the whole ref).
const LABEL_CHARS: usize = 22;

/// `(relation type, target ref)` of an entity body, target refs lower-cased.
pub(crate) fn relations_of(entity: &Value) -> Vec<(String, String)> {
    entity["relations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|relation| {
            Some((
                relation["type"].as_str()?.to_owned(),
                relation["targetRef"].as_str()?.to_lowercase(),
            ))
        })
        .collect()
}

/// The refs on the first ring: every relation target of the entity but itself.
pub(crate) fn first_ring(center: &str, relations: &[(String, String)]) -> Vec<String> {
    let set: BTreeSet<&str> = relations
        .iter()
        .map(|(_, target)| target.as_str())
        .filter(|target| *target != center)
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

#[derive(Debug)]
struct Node {
    entity_ref: String,
    ring: usize,
    x: f64,
    y: f64,
}

/// Draws the graph of `center` (its `relations`), with `neighbours` (ref → their relations)
/// at depth 2. Writes the card, depth links included.
pub(crate) fn graph_html(
    out: &mut String,
    center: &str,
    relations: &[(String, String)],
    neighbours: &BTreeMap<String, Vec<(String, String)>>,
    depth: u8,
    page_path: &str,
) {
    out.push_str(
        "<section class=\"card graph-card\" aria-labelledby=\"graph\"><h2 id=\"graph\">Relations graph</h2>\
         <p class=\"depth\">Depth: ",
    );
    for choice in [1u8, 2] {
        let href = format!(
            "{page_path}{}#graph",
            query([("depth", &*choice.to_string())])
        );
        let _ = write!(
            out,
            "<a href=\"{}\"{}>{choice}</a> ",
            esc(&href),
            if choice == depth {
                " aria-current=\"true\""
            } else {
                ""
            }
        );
    }
    out.push_str("</p>");

    // Rings: the entity, its neighbours, and (at depth 2) theirs, capped.
    let ring1 = first_ring(center, relations);
    let mut included: BTreeSet<String> = BTreeSet::from([center.to_owned()]);
    let mut order: Vec<(String, usize, usize)> = Vec::new(); // (ref, ring, parent index)
    let mut total = 1;
    for (index, target) in ring1.iter().enumerate() {
        total += 1;
        if included.len() < MAX_NODES && included.insert(target.clone()) {
            order.push((target.clone(), 1, index));
        }
    }
    if depth >= 2 {
        let mut seen: BTreeSet<&str> = ring1.iter().map(String::as_str).collect();
        seen.insert(center);
        for (index, parent) in ring1.iter().enumerate() {
            for (_, target) in neighbours.get(parent).into_iter().flatten() {
                if !seen.insert(target.as_str()) {
                    continue;
                }
                total += 1;
                if included.len() < MAX_NODES && included.insert(target.clone()) {
                    order.push((target.clone(), 2, index));
                }
            }
        }
    }
    if order.is_empty() {
        out.push_str("<p class=\"subtle\">No relations to draw.</p></section>");
        return;
    }

    // Layout: the circle is shared out among the first ring's nodes, each with a sector as
    // wide as its own slot plus its children on the second ring, placed in the middle of it
    // with its children spread across it: edges fan outwards instead of crossing the picture.
    let first: Vec<(&String, usize)> = order
        .iter()
        .filter(|(_, ring, _)| *ring == 1)
        .map(|(entity_ref, _, index)| (entity_ref, *index))
        .collect();
    let children = |parent: usize| -> Vec<&String> {
        order
            .iter()
            .filter(|(_, ring, index)| *ring == 2 && *index == parent)
            .map(|(entity_ref, _, _)| entity_ref)
            .collect()
    };
    let n1 = first.len();
    let n2 = order.len() - n1;
    let spacing = 64.0;
    let r1 = (n1 as f64 * spacing / (2.0 * PI)).max(110.0);
    let r2 = (n2 as f64 * spacing / (2.0 * PI)).max(r1 + 140.0);
    let weight = |parent: usize| 1.0 + children(parent).len() as f64;
    let total_weight: f64 = first.iter().map(|(_, index)| weight(*index)).sum();
    let mut nodes = vec![Node {
        entity_ref: center.to_owned(),
        ring: 0,
        x: 0.0,
        y: 0.0,
    }];
    let at = |ring: usize, radius: f64, angle: f64, entity_ref: &String| Node {
        entity_ref: entity_ref.clone(),
        ring,
        x: radius * angle.cos(),
        y: radius * angle.sin(),
    };
    // The first node sits at the top.
    let mut start = -PI / 2.0
        - first
            .first()
            .map_or(0.0, |(_, index)| PI * weight(*index) / total_weight);
    for (entity_ref, index) in &first {
        let sector = 2.0 * PI * weight(*index) / total_weight;
        nodes.push(at(1, r1, start + sector / 2.0, entity_ref));
        let kids = children(*index);
        for (i, kid) in kids.iter().enumerate() {
            let angle = start + sector * (i as f64 + 0.5 + 0.5) / (kids.len() as f64 + 1.0);
            nodes.push(at(2, r2, angle, kid));
        }
        start += sector;
    }
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.entity_ref.as_str(), i))
        .collect();

    // Edges between drawn nodes, once per pair, named by the relation types seen.
    let mut edges: BTreeMap<(usize, usize), BTreeSet<&str>> = BTreeMap::new();
    let sources = std::iter::once((center, relations)).chain(
        neighbours
            .iter()
            .map(|(source, relations)| (source.as_str(), relations.as_slice())),
    );
    for (source, relations) in sources {
        let Some(&a) = index.get(source) else {
            continue;
        };
        for (relation, target) in relations {
            if let Some(&b) = index.get(target.as_str())
                && a != b
            {
                edges
                    .entry((a.min(b), a.max(b)))
                    .or_default()
                    .insert(relation.as_str());
            }
        }
    }

    // The script's controls, shown by it: a filter per relation type, and zoom.
    let drawn_types: BTreeSet<&str> = edges.values().flatten().copied().collect();
    out.push_str(
        "<div class=\"graph-controls\" hidden><div class=\"graph-filter\" role=\"group\" \
         aria-labelledby=\"graph-filter-label\"><span id=\"graph-filter-label\">Relations shown:</span>",
    );
    for relation in &drawn_types {
        let _ = write!(
            out,
            " <label><input type=\"checkbox\" value=\"{relation}\" checked> {relation}</label>",
            relation = esc(relation)
        );
    }
    out.push_str(
        "</div><div class=\"graph-zoom\" role=\"group\" aria-label=\"Zoom\">\
         <button type=\"button\" data-zoom=\"in\" aria-label=\"Zoom in\" title=\"Zoom in\">+</button>\
         <button type=\"button\" data-zoom=\"out\" aria-label=\"Zoom out\" title=\"Zoom out\">\u{2212}</button>\
         <button type=\"button\" data-zoom=\"reset\">Reset</button></div>\
         <p class=\"subtle graph-help\">Drag to move the graph; Ctrl or \u{2318} with the wheel zooms.</p></div>",
    );

    let extent = if n2 > 0 { r2 } else { r1 } + 150.0;
    let _ = write!(
        out,
        "<div class=\"graph-wrap\"><svg class=\"graph\" viewBox=\"{min} {min} {size} {size}\" \
         width=\"{size}\" height=\"{size}\" \
         role=\"group\" aria-labelledby=\"graph-title\" data-nodes=\"{nodes}\" data-center=\"{center}\">\
         <title id=\"graph-title\">Entities related to {center} (depth {depth})</title><g class=\"edges\">",
        min = -extent,
        size = 2.0 * extent,
        nodes = nodes.len(),
        center = esc(center),
    );
    // Each edge's ends and types, as the script reads them.
    let edge_data = |a: &Node, b: &Node, types: &BTreeSet<&str>| {
        format!(
            "data-from=\"{}\" data-to=\"{}\" data-type=\"{}\"",
            esc(&a.entity_ref),
            esc(&b.entity_ref),
            esc(&types.iter().copied().collect::<Vec<_>>().join(" "))
        )
    };
    let names = |types: &BTreeSet<&str>| types.iter().copied().collect::<Vec<_>>().join(", ");
    for ((a, b), types) in &edges {
        let (a, b) = (&nodes[*a], &nodes[*b]);
        let _ = write!(
            out,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" {}><title>{}</title></line>",
            a.x,
            a.y,
            b.x,
            b.y,
            edge_data(a, b, types),
            esc(&names(types))
        );
    }
    out.push_str("</g><g class=\"nodes\">");
    for node in &nodes {
        let (kind, label, href) = match EntityRef::parse(&node.entity_ref, RefContext::default()) {
            Ok(parsed) => (
                parsed.kind.to_lowercase(),
                parsed.name.clone(),
                entity_path(&parsed.namespace, &parsed.kind, &parsed.name),
            ),
            Err(_) => (String::new(), node.entity_ref.clone(), String::new()),
        };
        let label: String = if label.chars().count() > LABEL_CHARS {
            label.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
        } else {
            label
        };
        let kind_class: String = kind.chars().filter(char::is_ascii_alphanumeric).collect();
        // Labels sit outside their node, away from the middle.
        let (dx, anchor) = match node.ring {
            0 => (0.0, "middle"),
            _ if node.x < -1.0 => (-12.0, "end"),
            _ if node.x > 1.0 => (12.0, "start"),
            _ => (0.0, "middle"),
        };
        let dy = if anchor == "middle" && node.ring > 0 {
            if node.y < 0.0 { -14.0 } else { 22.0 }
        } else if node.ring == 0 {
            30.0
        } else {
            4.0
        };
        // A ref that cannot be read is drawn, but links nowhere.
        let (open, close) = if href.is_empty() {
            ("<g".to_owned(), "</g>")
        } else {
            (format!("<a href=\"{}\"", esc(&href)), "</a>")
        };
        let _ = write!(
            out,
            "<g data-node=\"{reference}\">{open} class=\"node ring-{ring} kind-{kind_class}\">\
             <title>{reference}</title><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\"></circle>\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"{anchor}\">{label}</text>{close}</g>",
            ring = node.ring,
            reference = esc(&node.entity_ref),
            x = node.x,
            y = node.y,
            r = if node.ring == 0 { 14 } else { 8 },
            tx = node.x + dx,
            ty = node.y + dy,
            label = esc(&label),
        );
    }
    // Edge labels, over the nodes so that they stay readable; shown while highlighted.
    out.push_str("</g><g class=\"edge-labels\" aria-hidden=\"true\">");
    for ((a, b), types) in &edges {
        let (a, b) = (&nodes[*a], &nodes[*b]);
        let _ = write!(
            out,
            "<text class=\"edge-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" {}>{}</text>",
            (a.x + b.x) / 2.0,
            (a.y + b.y) / 2.0 + 4.0,
            edge_data(a, b, types),
            esc(&names(types))
        );
    }
    out.push_str("</g></svg></div>");
    if total > nodes.len() {
        let _ = write!(
            out,
            "<p class=\"subtle graph-capped\">Showing {} of {total} entities: the graph is capped \
             at {MAX_NODES} nodes.</p>",
            nodes.len()
        );
    }
    out.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(kind: &str, target: &str) -> (String, String) {
        (kind.to_owned(), target.to_owned())
    }

    #[test]
    fn draws_rings_of_links_and_caps_the_count() {
        let center = "component:default/a";
        let relations = vec![
            rel("ownedBy", "group:default/t"),
            rel("partOf", "system:default/s"),
        ];
        let neighbours = BTreeMap::from([(
            "group:default/t".to_owned(),
            (0..100)
                .map(|i| rel("ownerOf", &format!("component:default/c{i}")))
                .chain([rel("ownerOf", center)])
                .collect::<Vec<_>>(),
        )]);
        let mut html = String::new();
        graph_html(
            &mut html,
            center,
            &relations,
            &neighbours,
            1,
            "/catalog/default/component/a",
        );
        assert!(html.contains("data-nodes=\"3\""), "{html}");
        assert!(
            html.contains("<a href=\"/catalog/default/group/t\" class=\"node ring-1 kind-group\">")
        );
        assert!(!html.contains("graph-capped"));
        assert!(html.contains("href=\"/catalog/default/component/a?depth=2#graph\""));
        let mut html = String::new();
        graph_html(
            &mut html,
            center,
            &relations,
            &neighbours,
            2,
            "/catalog/default/component/a",
        );
        assert!(
            html.contains(&format!("data-nodes=\"{MAX_NODES}\"")),
            "{html}"
        );
        assert!(html.contains("Showing 60 of 103 entities"), "{html}");
        assert!(html.contains("class=\"node ring-2 kind-component\""));
        // One edge per pair, whichever side names it.
        assert_eq!(
            html.matches("<title>ownedBy, ownerOf</title>").count(),
            1,
            "{html}"
        );
    }

    #[test]
    fn the_script_finds_nodes_edges_and_controls() {
        let center = "component:default/a";
        let relations = vec![
            rel("ownedBy", "group:default/t"),
            rel("partOf", "system:default/s"),
        ];
        let neighbours = BTreeMap::from([(
            "group:default/t".to_owned(),
            vec![
                rel("ownerOf", center),
                rel("hasMember", "user:default/u"),
                rel("ownerOf", "system:default/s"),
            ],
        )]);
        let mut html = String::new();
        graph_html(&mut html, center, &relations, &neighbours, 2, "/p");
        assert!(
            html.contains("data-center=\"component:default/a\""),
            "{html}"
        );
        // Each node (links unchanged) in a group naming its ref.
        for node in [
            "<g data-node=\"component:default/a\"><a href=\"/catalog/default/component/a\" class=\"node ring-0 kind-component\">",
            "<g data-node=\"group:default/t\"><a href=\"/catalog/default/group/t\" class=\"node ring-1 kind-group\">",
            "<g data-node=\"user:default/u\"><a href=\"/catalog/default/user/u\" class=\"node ring-2 kind-user\">",
        ] {
            assert!(html.contains(node), "{node} in {html}");
        }
        assert_eq!(html.matches("<g data-node=").count(), 4, "{html}");
        // Edges and their labels carry both ends and the types, space-separated.
        let pair = "data-from=\"component:default/a\" data-to=\"group:default/t\" \
                    data-type=\"ownedBy ownerOf\"";
        assert!(
            html.contains(&format!(
                "<line x1=\"0.0\" y1=\"0.0\" x2=\"0.0\" y2=\"-110.0\" {pair}><title>ownedBy, ownerOf</title></line>"
            )),
            "{html}"
        );
        assert!(
            html.contains(&format!("{pair}>ownedBy, ownerOf</text>")),
            "{html}"
        );
        assert!(html.contains("data-to=\"user:default/u\" data-type=\"hasMember\""));
        assert_eq!(html.matches("<line ").count(), 4, "{html}");
        assert_eq!(html.matches("class=\"edge-label\"").count(), 4, "{html}");
        // One checkbox per relation type drawn, in controls the script shows.
        assert!(html.contains("<div class=\"graph-controls\" hidden>"));
        let boxes: Vec<&str> = html
            .match_indices("<input type=\"checkbox\" value=\"")
            .map(|(at, tag)| {
                let rest = &html[at + tag.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        assert_eq!(boxes, ["hasMember", "ownedBy", "ownerOf", "partOf"]);
        for zoom in ["in", "out", "reset"] {
            assert!(html.contains(&format!("<button type=\"button\" data-zoom=\"{zoom}\"")));
        }
        // No inline style or script: the CSP allows neither.
        assert!(!html.contains("style="), "{html}");
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn hostile_refs_are_escaped() {
        let mut html = String::new();
        graph_html(
            &mut html,
            "component:default/a",
            &[rel("x<y", "component:default/<script>")],
            &BTreeMap::new(),
            1,
            "/p",
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("x&lt;y"));
        assert!(html.contains("data-type=\"x&lt;y\""), "{html}");
        assert!(html.contains("<input type=\"checkbox\" value=\"x&lt;y\" checked> x&lt;y</label>"));
        assert!(html.contains("data-node=\"component:default/&lt;script&gt;\""));
    }
}
