//! How an entity's relation edges are stored: one row per edge and the edge back.
//!
//! Relations come in pairs: a component that names its owner emits `ownedBy` to the group and
//! `ownerOf` from the group back to itself. Stored as two rows, each pair cost eight b-tree
//! inserts (the table and three indexes, twice), half of them at random places in large
//! indexes. Stored as one row that carries the type of the edge back (`inverse_type`), it
//! costs three, two of them random; the `relations` view reads every row as the edge it holds
//! plus, where there is one, the edge back. An edge emitted without its inverse is a row
//! without one, so the view returns exactly the edges that were emitted.

use std::collections::{BTreeMap, BTreeSet};

use cadastre_model::RelationEdge;

/// One row of `relation_edges` (refs lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeRow {
    pub source: String,
    pub relation_type: String,
    pub target: String,
    /// The type of the edge from `target` back to `source`, when the entity emitted it too.
    pub inverse_type: Option<String>,
}

/// The rows that store the edges `originator` emitted. Duplicates (refs and types compared
/// without case) are stored once. Each row's own edge is, where possible, one whose source
/// is the originator: lookups by (type, target) of the edges entities emit about themselves
/// then read the target index, and the edges back are found from their source's rows.
pub(crate) fn pair_edges<'a>(
    originator: &str,
    edges: impl IntoIterator<Item = &'a RelationEdge>,
) -> Vec<EdgeRow> {
    let originator = originator.to_lowercase();
    // (source, type lower-cased, target) -> type as emitted; the first spelling wins.
    let mut unique: BTreeMap<(String, String, String), &str> = BTreeMap::new();
    for edge in edges {
        unique
            .entry((
                edge.source.to_lowercase(),
                edge.relation_type.to_lowercase(),
                edge.target.to_lowercase(),
            ))
            .or_insert(edge.relation_type.as_str());
    }
    // The originator's own edges first, so they become rows and the others their inverses.
    let mut order: Vec<&(String, String, String)> = unique.keys().collect();
    order.sort_by_key(|(source, _, _)| *source != originator);
    let mut taken: BTreeSet<&(String, String, String)> = BTreeSet::new();
    let mut rows = Vec::with_capacity(order.len());
    for key in order {
        if !taken.insert(key) {
            continue;
        }
        let (source, _, target) = key;
        // Any edge back between the same two entities not yet stored will do: the view reads
        // the same set of edges whichever is paired with which.
        let back = unique
            .range((target.clone(), String::new(), String::new())..)
            .take_while(|((back_source, _, _), _)| back_source == target)
            .map(|(back, _)| back)
            .find(|back| back.2 == *source && *back != key && !taken.contains(back));
        if let Some(back) = back {
            taken.insert(back);
        }
        rows.push(EdgeRow {
            source: source.clone(),
            relation_type: unique[key].to_owned(),
            target: target.clone(),
            inverse_type: back.map(|back| unique[back].to_owned()),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(source: &str, relation_type: &str, target: &str) -> RelationEdge {
        RelationEdge {
            source: source.into(),
            relation_type: relation_type.into(),
            target: target.into(),
        }
    }

    /// The edges a set of rows stands for, as the `relations` view reads them.
    fn read_back(rows: &[EdgeRow]) -> BTreeSet<(String, String, String)> {
        let mut edges = BTreeSet::new();
        for row in rows {
            edges.insert((
                row.source.clone(),
                row.relation_type.clone(),
                row.target.clone(),
            ));
            if let Some(inverse) = &row.inverse_type {
                edges.insert((row.target.clone(), inverse.clone(), row.source.clone()));
            }
        }
        edges
    }

    #[test]
    fn a_pair_is_one_row_led_by_the_originators_edge() {
        let edges = [
            edge("group:default/team-a", "ownerOf", "component:default/web"),
            edge("component:default/web", "ownedBy", "group:default/team-a"),
        ];
        assert_eq!(
            pair_edges("component:default/web", &edges),
            vec![EdgeRow {
                source: "component:default/web".into(),
                relation_type: "ownedBy".into(),
                target: "group:default/team-a".into(),
                inverse_type: Some("ownerOf".into()),
            }]
        );
    }

    #[test]
    fn rows_read_back_as_exactly_the_edges_emitted() {
        let edges = [
            edge("component:default/web", "ownedBy", "group:default/team-a"),
            edge("group:default/team-a", "ownerOf", "component:default/web"),
            // Two relations between the same entities, both ways.
            edge("component:default/web", "dependsOn", "group:default/team-a"),
            edge(
                "group:default/team-a",
                "dependencyOf",
                "component:default/web",
            ),
            // No edge back.
            edge("component:default/web", "consumesApi", "api:default/orders"),
            // Only the edge back.
            edge("system:default/shop", "hasPart", "component:default/web"),
            // To itself, and a duplicate differing in case.
            edge(
                "component:default/web",
                "dependsOn",
                "component:default/web",
            ),
            edge(
                "Component:default/Web",
                "DEPENDSON",
                "component:default/web",
            ),
        ];
        let rows = pair_edges("component:default/Web", &edges);
        assert_eq!(rows.len(), 5, "{rows:#?}");
        let expected: BTreeSet<(String, String, String)> = edges
            .iter()
            .take(7)
            .map(|e| {
                (
                    e.source.to_lowercase(),
                    e.relation_type.clone(),
                    e.target.to_lowercase(),
                )
            })
            .collect();
        assert_eq!(read_back(&rows), expected);
    }

    #[test]
    fn nothing_emitted_is_nothing_stored() {
        assert!(pair_edges("component:default/web", &[]).is_empty());
    }
}
