//! One conformance suite, run against SQLite and PostgreSQL: every read and write of the
//! store, with Backstage's filter semantics checked on the shared examples.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cadastre_catalog_store::{
    Batch, CatalogStore, ChangeKind, EntityQuery, ErrorScope, LocationErrors, OrphanPolicy,
    ProcessedBatch, ProcessingError, Receipt, StoreError,
};
use cadastre_model::{Finding, Position, Rule};
use cadastre_query::{FullTextFilter, OrderField, Predicate, legacy_filter};
use common::{component, examples_batch};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(&super::common::sqlite().await.store).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(&super::common::postgres().await.store).await } )*
        }
    };
}

conformance!(
    one_kind_in_ref_order_pages_both_ways,
    stores_and_reads_the_examples,
    filters_follow_backstage_semantics,
    orders_and_pages_with_cursors,
    counts_facets,
    counts_follow_updates_and_removals,
    updates_move_only_what_changed,
    updates_keep_every_character,
    skips_unchanged_and_records_history,
    removal_updates_the_other_side_of_relations,
    refuses_conflicting_locations,
    rejects_bad_batches_without_writing,
    registers_and_removes_locations,
    leases_go_to_one_holder_at_a_time,
    keeps_processing_errors,
    change_feed_resumes_from_a_sequence,
    streams_every_entity_in_order,
    walks_ancestry,
    rejects_bad_queries,
    replacing_a_location_removes_what_it_no_longer_produces,
    processed_batches_apply_once_and_build_receipts,
    a_late_part_of_an_older_harvest_keeps_only_files_no_newer_harvest_applied,
    conflicts_are_kept_as_errors_on_the_newcomer,
    entities_no_longer_produced_are_kept_as_orphans,
    batches_applied_together_answer_each_on_its_own,
    batches_applied_together_bump_each_target_once,
    etags_never_repeat_across_bumps_updates_and_orphaning,
    lists_every_processing_error_newest_first_in_pages,
    owner_and_system_answer_as_their_documents,
);

async fn load_examples(store: &CatalogStore) -> usize {
    let batch = examples_batch();
    let count = batch.upserts.len();
    let outcome = store.apply_batch(batch).await.unwrap();
    assert_eq!(outcome.created as usize, count);
    assert_eq!(store.entity_count().await.unwrap() as usize, count);
    count
}

async fn errors_at(store: &CatalogStore, location_key: &str) -> Vec<ProcessingError> {
    store
        .processing_errors(&ErrorScope::Location(location_key.into()), 0)
        .await
        .unwrap()
}

fn filter(filters: &[&str]) -> Predicate {
    legacy_filter::parse(filters).unwrap()
}

async fn refs(store: &CatalogStore, filters: &[&str]) -> Vec<String> {
    let page = store
        .query_entities(&EntityQuery {
            filter: filter(filters),
            limit: 1_000,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total_items as usize, page.items.len());
    page.items.into_iter().map(|e| e.entity_ref).collect()
}

async fn stores_and_reads_the_examples(store: &CatalogStore) {
    let count = load_examples(store).await;
    assert!(count > 60, "{count}");

    let entity = store
        .entity_by_ref("Component:Default/Artist-Lookup")
        .await
        .unwrap()
        .expect("case-insensitive by ref");
    assert_eq!(entity.entity_ref, "component:default/artist-lookup");
    assert_eq!(entity.generation, 1);
    let body = entity.body_json().unwrap();
    assert_eq!(body["metadata"]["uid"], entity.uid.as_str());
    assert_eq!(body["metadata"]["etag"], entity.etag.as_str());
    assert_eq!(body["metadata"]["name"], "artist-lookup");
    let relations: Vec<String> = body["relations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["type"].as_str().unwrap(),
                r["targetRef"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        relations,
        [
            "ownedBy group:default/team-a",
            "partOf system:default/artist-engagement-portal"
        ]
    );

    // The other side of a relation shows on the target once it exists.
    let team = store
        .entity_by_ref("group:default/team-a")
        .await
        .unwrap()
        .unwrap();
    let team_body = team.body_json().unwrap();
    let owned: Vec<&str> = team_body["relations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "ownerOf")
        .map(|r| r["targetRef"].as_str().unwrap())
        .collect();
    assert!(
        owned.contains(&"component:default/artist-lookup"),
        "{owned:?}"
    );

    let by_uid = store.entity_by_uid(&entity.uid).await.unwrap().unwrap();
    assert_eq!(by_uid.entity_ref, entity.entity_ref);
    assert!(store.entity_by_uid("no-such-uid").await.unwrap().is_none());
    assert!(
        store
            .entity_by_ref("component:default/nope")
            .await
            .unwrap()
            .is_none()
    );

    let asked = vec![
        "group:default/team-a".to_owned(),
        "component:default/nope".to_owned(),
        "Component:default/artist-lookup".to_owned(),
        "component:default/artist-lookup".to_owned(),
    ];
    let found = store.entities_by_refs(&asked, None).await.unwrap();
    let found: Vec<Option<&str>> = found
        .iter()
        .map(|e| e.as_ref().map(|e| e.entity_ref.as_str()))
        .collect();
    // Order kept, missing as empty; by-refs matches canonical refs verbatim (as Backstage).
    assert_eq!(
        found,
        [
            Some("group:default/team-a"),
            None,
            None,
            Some("component:default/artist-lookup")
        ]
    );
    let filtered = store
        .entities_by_refs(&asked, Some(&filter(&["kind=group"])))
        .await
        .unwrap();
    assert!(filtered[0].is_some() && filtered[3].is_none());
}

async fn filters_follow_backstage_semantics(store: &CatalogStore) {
    load_examples(store).await;
    assert_eq!(refs(store, &["kind=component"]).await.len(), 13);
    // Values are case-insensitive.
    assert_eq!(refs(store, &["kind=COMPONENT"]).await.len(), 13);
    // Repeated keys in one set are OR-ed; sets are OR-ed; conditions AND-ed.
    let users_and_groups = refs(store, &["kind=user,kind=group"]).await.len();
    assert_eq!(
        users_and_groups,
        refs(store, &["kind=user"]).await.len() + refs(store, &["kind=group"]).await.len()
    );
    assert_eq!(
        refs(store, &["kind=user", "kind=group"]).await.len(),
        users_and_groups
    );
    let services = refs(store, &["kind=component,spec.type=service"]).await;
    assert!(!services.is_empty() && services.len() < 13);
    // List items match as `path.item`.
    let java = refs(store, &["metadata.tags.java"]).await;
    assert!(
        java.contains(&"component:default/artist-lookup".to_owned()),
        "{java:?}"
    );
    // Existence, including keys with dots and slashes.
    let with_system = refs(store, &["kind=component,spec.system"]).await;
    assert!(with_system.len() < 13 && !with_system.is_empty());
    let managed = refs(
        store,
        &["metadata.annotations.backstage.io/managed-by-location"],
    )
    .await;
    assert!(
        managed.is_empty(),
        "the examples carry no catalog annotations: {managed:?}"
    );
    // A key without a column of its own, answered from the search documents (on
    // PostgreSQL, by the index of each document's keys).
    assert_eq!(
        refs(
            store,
            &["metadata.annotations.backstage.io/definition-at-location"]
        )
        .await,
        ["api:default/spotify"]
    );
    let with_slug = refs(store, &["metadata.annotations"]).await;
    assert!(with_slug.len() < 60);
    // Relations match as `relations.<type>=<ref>`.
    let owned = refs(store, &["relations.ownedby=group:default/team-a"]).await;
    assert!(
        owned.contains(&"component:default/artist-lookup".to_owned()),
        "{owned:?}"
    );
    assert_eq!(
        refs(store, &["relations.ownedBy=GROUP:default/team-a"]).await,
        owned
    );
    // Metadata name and namespace are always there.
    assert_eq!(
        refs(store, &["metadata.name=artist-lookup"]).await,
        ["component:default/artist-lookup"]
    );
    assert_eq!(
        refs(store, &["metadata.namespace=development"]).await,
        ["user:development/guest"]
    );
    // The predicate language: $not, $hasPrefix, $in.
    let predicate = cadastre_query::json_predicate::parse(&serde_json::json!({
        "$all": [
            {"kind": "component"},
            {"$not": {"spec.type": "service"}},
            {"metadata.name": {"$hasPrefix": "WAYBACK"}}
        ]
    }))
    .unwrap();
    let page = store
        .query_entities(&EntityQuery {
            filter: predicate,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    for item in &page.items {
        assert!(
            item.entity_ref.starts_with("component:default/wayback"),
            "{}",
            item.entity_ref
        );
        assert_ne!(item.body_json().unwrap()["spec"]["type"], "service");
    }
    // A negated condition holds where the key is absent (groups have no spec.type).
    for (key, value) in [("spec.type", "service"), ("spec.lifecycle", "production")] {
        let count = |predicate: serde_json::Value| async move {
            store
                .query_entities(&EntityQuery {
                    filter: cadastre_query::json_predicate::parse(&predicate).unwrap(),
                    ..EntityQuery::default()
                })
                .await
                .unwrap()
                .total_items
        };
        let all = count(serde_json::json!({"$all": []})).await;
        let matching = count(serde_json::json!({ key: value })).await;
        let negated = count(serde_json::json!({"$not": { key: value }})).await;
        assert!(matching > 0, "{key}");
        assert_eq!(
            negated,
            all - matching,
            "{key}: $not keeps entities without it"
        );
    }
    let any_of = cadastre_query::json_predicate::parse(
        &serde_json::json!({"kind": {"$in": ["Domain", "System"]}}),
    )
    .unwrap();
    let page = store
        .query_entities(&EntityQuery {
            filter: any_of,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total_items, 6);
    let relation = cadastre_query::json_predicate::parse(&serde_json::json!({
        "relations": {"$contains": {"type": "ownedBy", "targetRef": "group:default/team-a"}}
    }))
    .unwrap();
    let page = store
        .query_entities(&EntityQuery {
            filter: relation,
            limit: 1000,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), owned.len());
    // Full text: case-insensitive substring over the listed fields.
    let page = store
        .query_entities(&EntityQuery {
            filter: filter(&["kind=component"]),
            full_text: cadastre_query::full_text::build("ARCHIVE", &["metadata.name"], &[]),
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert!(page.total_items >= 3, "{}", page.total_items);
    assert!(page.items.iter().all(|e| e.name.contains("archive")));
}

async fn orders_and_pages_with_cursors(store: &CatalogStore) {
    load_examples(store).await;
    let everything = store
        .query_entities(&EntityQuery {
            filter: filter(&["kind=user"]),
            order: vec![OrderField {
                field: "metadata.name".into(),
                descending: true,
            }],
            limit: 1_000,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    let names: Vec<String> = everything
        .items
        .iter()
        .map(|e| e.name.to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(names, sorted);
    assert_eq!(everything.total_items, 17);
    assert!(everything.next_cursor.is_none() && everything.prev_cursor.is_none());

    // Walk forward in pages of 5, then back.
    let mut pages = Vec::new();
    let mut query = EntityQuery {
        filter: filter(&["kind=user"]),
        order: vec![OrderField {
            field: "metadata.name".into(),
            descending: true,
        }],
        limit: 5,
        ..EntityQuery::default()
    };
    loop {
        let page = store.query_entities(&query).await.unwrap();
        assert_eq!(page.total_items, 17, "the total is carried in the cursor");
        assert_eq!(page.prev_cursor.is_some(), !pages.is_empty());
        pages.push(page.clone());
        match page.next_cursor {
            Some(cursor) => {
                query = EntityQuery {
                    cursor: Some(cursor),
                    limit: 5,
                    ..EntityQuery::default()
                }
            }
            None => break,
        }
    }
    assert_eq!(pages.len(), 4);
    let walked: Vec<String> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|e| e.entity_ref.clone()))
        .collect();
    let expected: Vec<String> = everything
        .items
        .iter()
        .map(|e| e.entity_ref.clone())
        .collect();
    assert_eq!(walked, expected);
    let back = store
        .query_entities(&EntityQuery {
            cursor: pages[2].prev_cursor.clone(),
            limit: 5,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(back.items, pages[1].items);

    // Without an order: by ref. With an offset on the first page.
    let offset = store
        .query_entities(&EntityQuery {
            filter: filter(&["kind=user"]),
            offset: 15,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(offset.items.len(), 2);
    assert!(offset.prev_cursor.is_some());
    // limit 0: no items, still the total.
    let none = store
        .query_entities(&EntityQuery {
            filter: filter(&["kind=user"]),
            limit: 0,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.total_items, 17);
    // Entities lacking the order field are left out.
    let by_lifecycle = store
        .query_entities(&EntityQuery {
            order: vec![OrderField {
                field: "spec.lifecycle".into(),
                descending: false,
            }],
            limit: 1_000,
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert!(
        by_lifecycle
            .items
            .iter()
            .all(|e| e.kind == "Component" || e.kind == "API" || e.kind == "Template")
    );
}

/// A page of one kind in ref order (the catalog page's default view) is read as a range of refs
/// on SQLite: forwards, backwards, with full text, and in any spelling of the kind, it answers
/// exactly the entities of that kind.
async fn one_kind_in_ref_order_pages_both_ways(store: &CatalogStore) {
    load_examples(store).await;
    let entities = all_entities(store).await;
    for kind in ["component", "API", "Group", "user", "nosuchkind", "comp"] {
        let of_kind: Vec<String> = entities
            .iter()
            .filter(|e| e.kind.eq_ignore_ascii_case(kind))
            .map(|e| e.entity_ref.clone())
            .collect();
        let query = EntityQuery {
            filter: filter(&[&format!("kind={kind}")]),
            ..EntityQuery::default()
        };
        let (walked, total) = walk(store, query.clone()).await;
        assert_eq!(walked, of_kind, "kind={kind}, forwards");
        assert_eq!(total as usize, of_kind.len());
        answers_exactly(
            store,
            &entities,
            EntityQuery {
                full_text: Some(FullTextFilter {
                    term: "a".into(),
                    fields: vec!["metadata.name".into()],
                }),
                ..query.clone()
            },
            |e| e.kind.eq_ignore_ascii_case(kind) && e.name.to_lowercase().contains('a'),
            "one kind with full text",
        )
        .await;
        // With other conditions (read along the kind's refs), and with ones that keep the
        // plain plan (a type, a relation, a second kind).
        let has = |e: &cadastre_catalog_store::StoredEntity, pointer: &str, value: &str| {
            let body = e.body_json().unwrap();
            match body.pointer(pointer) {
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .any(|item| item.as_str().is_some_and(|s| s.eq_ignore_ascii_case(value))),
                Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case(value),
                _ => false,
            }
        };
        for (extra, pointer, value) in [
            ("spec.lifecycle=production", "/spec/lifecycle", "production"),
            ("metadata.tags=java", "/metadata/tags", "java"),
            (
                "metadata.namespace=default",
                "/metadata/namespace",
                "default",
            ),
            ("spec.type=service", "/spec/type", "service"),
            ("spec.owner=team-a", "/spec/owner", "team-a"),
        ] {
            let query = EntityQuery {
                filter: filter(&[&format!("kind={kind},{extra}")]),
                ..EntityQuery::default()
            };
            let expected: Vec<String> = entities
                .iter()
                .filter(|e| e.kind.eq_ignore_ascii_case(kind) && has(e, pointer, value))
                .map(|e| e.entity_ref.clone())
                .collect();
            assert_eq!(walk(store, query).await.0, expected, "kind={kind},{extra}");
        }
        let with_owner = EntityQuery {
            filter: filter(&[&format!(
                "kind={kind},relations.ownedBy=group:default/team-a"
            )]),
            ..EntityQuery::default()
        };
        let owned: Vec<String> = entities
            .iter()
            .filter(|e| e.kind.eq_ignore_ascii_case(kind) && has(e, "/spec/owner", "team-a"))
            .map(|e| e.entity_ref.clone())
            .collect();
        assert_eq!(
            walk(store, with_owner).await.0,
            owned,
            "kind={kind} and an owner"
        );
        let two_kinds = EntityQuery {
            filter: filter(&[&format!("kind={kind},kind=system")]),
            ..EntityQuery::default()
        };
        let of_either: Vec<String> = entities
            .iter()
            .filter(|e| e.kind.eq_ignore_ascii_case(kind) || e.kind == "System")
            .map(|e| e.entity_ref.clone())
            .collect();
        assert_eq!(walk(store, two_kinds).await.0, of_either, "two kinds");
        // Back from the last page, page by page, to the first.
        let at = |cursor: String| async move {
            store
                .query_entities(&EntityQuery {
                    cursor: Some(cursor),
                    limit: 3,
                    ..EntityQuery::default()
                })
                .await
        };
        let mut page = store
            .query_entities(&EntityQuery { limit: 3, ..query })
            .await
            .unwrap();
        while let Some(cursor) = page.next_cursor.clone() {
            page = at(cursor).await.unwrap();
        }
        let mut backwards: Vec<String> = page.items.iter().map(|e| e.entity_ref.clone()).collect();
        while let Some(cursor) = page.prev_cursor.clone() {
            page = at(cursor).await.unwrap();
            let mut earlier: Vec<String> =
                page.items.iter().map(|e| e.entity_ref.clone()).collect();
            earlier.append(&mut backwards);
            backwards = earlier;
        }
        assert_eq!(backwards, of_kind, "kind={kind}, backwards");
    }
}

async fn counts_facets(store: &CatalogStore) {
    load_examples(store).await;
    let facets = ["kind", "spec.type", "relations.ownedBy", "metadata.tags"].map(String::from);
    let result = store
        .facets(&facets, &Predicate::everything())
        .await
        .unwrap();
    assert_eq!(result[0].facet, "kind");
    assert!(
        result[0].values.contains(&("Component".to_owned(), 13)),
        "{:?}",
        result[0].values
    );
    assert!(result[0].values.contains(&("User".to_owned(), 17)));
    let services = refs(store, &["spec.type=service"]).await.len() as u64;
    assert!(result[1].values.contains(&("service".to_owned(), services)));
    assert_eq!(result[2].facet, "relations.ownedBy");
    let team_a = refs(store, &["relations.ownedby=group:default/team-a"])
        .await
        .len() as u64;
    assert!(
        result[2]
            .values
            .contains(&("group:default/team-a".to_owned(), team_a)),
        "{:?}",
        result[2].values
    );
    // memberOf is also emitted by groups about users (inverse edges): counted from the rows.
    let members = store
        .facets(&["relations.memberOf".to_owned()], &Predicate::everything())
        .await
        .unwrap();
    let team_a_members = refs(store, &["relations.memberof=group:default/team-a"])
        .await
        .len() as u64;
    assert!(
        members[0]
            .values
            .contains(&("group:default/team-a".to_owned(), team_a_members)),
        "{:?}",
        members[0].values
    );
    let java = refs(store, &["metadata.tags.java"]).await.len() as u64;
    assert!(
        result[3].values.contains(&("java".to_owned(), java)),
        "{:?}",
        result[3].values
    );
    // Sorted by value.
    let values: Vec<&String> = result[0].values.iter().map(|(v, _)| v).collect();
    let mut sorted = values.clone();
    sorted.sort();
    assert_eq!(values, sorted);
    // With a filter.
    let filtered = store
        .facets(&["kind".to_owned()], &filter(&["kind=component"]))
        .await
        .unwrap();
    assert_eq!(filtered[0].values, [("Component".to_owned(), 13)]);
}

async fn counts_follow_updates_and_removals(store: &CatalogStore) {
    let website = |name: &str| {
        let mut upsert = component(name, "team-a", "url:x");
        upsert.body["spec"]["type"] = "website".into();
        upsert
    };
    store
        .apply_batch(Batch {
            upserts: vec![
                component("a", "team-a", "url:x"),
                component("b", "team-a", "url:x"),
                website("c"),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();
    let types = |store: &CatalogStore| {
        let store = store.clone();
        async move {
            store
                .facets(&["spec.type".to_owned()], &filter(&["kind=component"]))
                .await
                .unwrap()[0]
                .values
                .clone()
        }
    };
    assert_eq!(
        types(store).await,
        [("service".to_owned(), 2), ("website".to_owned(), 1)]
    );
    store
        .apply_batch(Batch {
            upserts: vec![website("a")],
            removals: vec!["component:default/b".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(types(store).await, [("website".to_owned(), 2)]);
    // Owners move with updates and removals.
    let mut moved = website("c");
    moved.body["spec"]["owner"] = "team-b".into();
    moved.edges = component("c", "team-b", "url:x").edges;
    store
        .apply_batch(Batch {
            upserts: vec![moved],
            ..Batch::default()
        })
        .await
        .unwrap();
    let owners = store
        .facets(&["relations.ownedBy".to_owned()], &Predicate::everything())
        .await
        .unwrap();
    assert_eq!(
        owners[0].values,
        [
            ("group:default/team-a".to_owned(), 1),
            ("group:default/team-b".to_owned(), 1)
        ]
    );
    let page = store
        .query_entities(&EntityQuery {
            filter: filter(&["kind=component,spec.type=website"]),
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((page.total_items, page.items.len()), (2, 2));
    let none = store
        .query_entities(&EntityQuery {
            filter: filter(&["kind=component,spec.type=service"]),
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((none.total_items, none.items.len()), (0, 0));
    let everything = store.query_entities(&EntityQuery::default()).await.unwrap();
    assert_eq!(everything.total_items, 2);
}

/// Updated bodies and search documents come back as written, whatever characters they hold,
/// and filters find the new values, not the old.
async fn updates_keep_every_character(store: &CatalogStore) {
    let described = |name: &str, description: &str| {
        let mut upsert = component(name, "team-a", "url:x");
        upsert.body["metadata"]["description"] = description.into();
        upsert.body["metadata"]["tags"] = serde_json::json!(["a,b", "{c}"]);
        upsert
    };
    store
        .apply_batch(Batch {
            upserts: vec![described("x", "before"), described("y", "plain")],
            ..Batch::default()
        })
        .await
        .unwrap();
    let tricky = "He said \"hi\", \\ back {braces}, 'quoted' NULL é ✓\nline\ttab";
    let outcome = store
        .apply_batch(Batch {
            upserts: vec![described("x", tricky), described("y", "NULL")],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.updated, 2);
    for (name, description) in [("x", tricky), ("y", "NULL")] {
        let entity = store
            .entity_by_ref(&format!("component:default/{name}"))
            .await
            .unwrap()
            .unwrap();
        let body = entity.body_json().unwrap();
        assert_eq!(body["metadata"]["description"], description);
        assert_eq!(body["metadata"]["tags"], serde_json::json!(["a,b", "{c}"]));
        assert_eq!(entity.generation, 2);
    }
    for (description, expected) in [
        (tricky, vec!["component:default/x"]),
        ("NULL", vec!["component:default/y"]),
        ("before", vec![]),
        ("plain", vec![]),
    ] {
        let page = store
            .query_entities(&EntityQuery {
                filter: Predicate::equals("metadata.description", description),
                limit: 10,
                ..EntityQuery::default()
            })
            .await
            .unwrap();
        let found: Vec<String> = page.items.into_iter().map(|e| e.entity_ref).collect();
        assert_eq!(found, expected, "{description}");
    }
    assert_eq!(
        refs(store, &["metadata.tags={c}"]).await,
        ["component:default/x", "component:default/y"]
    );
}

/// One batch of updates where some entities keep every indexed value (a new description)
/// and others move (a new owner, type or spelling of the name): each lands where its new
/// content puts it.
async fn updates_move_only_what_changed(store: &CatalogStore) {
    store
        .apply_batch(Batch {
            upserts: ["a", "b", "c", "d"]
                .map(|name| component(name, "team-a", "url:x"))
                .to_vec(),
            ..Batch::default()
        })
        .await
        .unwrap();
    let mut described = component("a", "team-a", "url:x");
    described.body["metadata"]["description"] = "Charges cards".into();
    let moved_owner = component("b", "team-b", "url:x");
    let mut moved_type = component("c", "team-a", "url:x");
    moved_type.body["spec"]["type"] = "website".into();
    moved_type.body["metadata"]["description"] = "The shop".into();
    let mut respelled = component("d", "team-a", "url:x");
    respelled.body["metadata"]["name"] = "D".into();
    let outcome = store
        .apply_batch(Batch {
            upserts: vec![described, moved_owner, moved_type, respelled],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.updated, 4);
    assert_eq!(
        refs(store, &["spec.owner=team-a"]).await,
        [
            "component:default/a",
            "component:default/c",
            "component:default/d"
        ]
    );
    assert_eq!(
        refs(store, &["spec.owner=team-b"]).await,
        ["component:default/b"]
    );
    assert_eq!(
        refs(store, &["metadata.description=charges cards"]).await,
        ["component:default/a"]
    );
    assert_eq!(
        refs(store, &["kind=component,spec.type=website"]).await,
        ["component:default/c"]
    );
    assert_eq!(
        refs(store, &["kind=component,spec.type=service"]).await,
        [
            "component:default/a",
            "component:default/b",
            "component:default/d"
        ]
    );
    let owners = store
        .facets(&["spec.owner".to_owned()], &Predicate::everything())
        .await
        .unwrap();
    assert_eq!(
        owners[0].values,
        [("team-a".to_owned(), 3), ("team-b".to_owned(), 1)]
    );
    let d = store
        .entity_by_ref("component:default/d")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.name, "D");
    let a = store
        .entity_by_ref("component:default/a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.body_json().unwrap()["metadata"]["description"],
        "Charges cards"
    );
    assert_eq!(a.generation, 2);
}

async fn skips_unchanged_and_records_history(store: &CatalogStore) {
    let first = store
        .apply_batch(Batch {
            upserts: vec![component("svc", "team-a", "url:x")],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((first.created, first.updated, first.unchanged), (1, 0, 0));
    let head = first.last_sequence;
    let again = store
        .apply_batch(Batch {
            upserts: vec![component("svc", "team-a", "url:x")],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            again.created,
            again.updated,
            again.unchanged,
            again.last_sequence
        ),
        (0, 0, 1, 0)
    );
    let before = store
        .entity_by_ref("component:default/svc")
        .await
        .unwrap()
        .unwrap();
    let as_of_first = time_now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let mut changed = component("svc", "team-b", "url:x");
    changed.commit = Some("def456".into());
    let update = store
        .apply_batch(Batch {
            upserts: vec![changed],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((update.created, update.updated), (0, 1));
    assert!(update.last_sequence > head);
    let after = store
        .entity_by_ref("component:default/svc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.generation, 2);
    assert_eq!(after.uid, before.uid, "uid is stable across updates");
    assert_ne!(after.etag, before.etag);

    let history = store.history("component:default/svc", 0).await.unwrap();
    let kinds: Vec<(ChangeKind, i64)> = history.iter().map(|c| (c.change, c.generation)).collect();
    assert_eq!(kinds, [(ChangeKind::Updated, 2), (ChangeKind::Created, 1)]);
    assert_eq!(history[0].commit.as_deref(), Some("def456"));
    let old = store
        .entity_as_of("component:default/svc", &as_of_first)
        .await
        .unwrap()
        .unwrap();
    let old_body: serde_json::Value = serde_json::from_str(old.body.as_deref().unwrap()).unwrap();
    assert_eq!(old_body["spec"]["owner"], "team-a");
    // The past body is served as it was: its etag then, and the relations it had then.
    assert_eq!(old_body["metadata"]["etag"], before.etag.as_str());
    assert_eq!(old_body["metadata"]["uid"], before.uid.as_str());
    let served_before: serde_json::Value = serde_json::from_str(&before.body).unwrap();
    assert_eq!(old_body["relations"], served_before["relations"]);
    assert!(
        old_body["relations"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["targetRef"] == "group:default/team-a")),
        "{old_body}"
    );
    assert!(
        store
            .entity_as_of("component:default/svc", "2000-01-01T00:00:00Z")
            .await
            .unwrap()
            .is_none()
    );
}

fn time_now() -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

async fn removal_updates_the_other_side_of_relations(store: &CatalogStore) {
    let group = serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1", "kind": "Group",
        "metadata": {"name": "team-a"}, "spec": {"type": "team", "children": []}
    });
    let batch = Batch {
        upserts: vec![
            cadastre_catalog_store::Upsert {
                body: group,
                edges: Vec::new(),
                location_key: Some("url:org".into()),
                origin_location: Some("url:org".into()),
                parent_ref: None,
                commit: None,
            },
            component("svc", "team-a", "url:x"),
        ],
        ..Batch::default()
    };
    store.apply_batch(batch).await.unwrap();
    let group_before = store
        .entity_by_ref("group:default/team-a")
        .await
        .unwrap()
        .unwrap();
    assert!(group_before.body.contains("component:default/svc"));

    let removal = store
        .apply_batch(Batch {
            removals: vec!["component:default/svc".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(removal.removed, 1);
    assert!(
        store
            .entity_by_ref("component:default/svc")
            .await
            .unwrap()
            .is_none()
    );
    let group_after = store
        .entity_by_ref("group:default/team-a")
        .await
        .unwrap()
        .unwrap();
    assert!(!group_after.body.contains("component:default/svc"));
    assert_ne!(group_after.etag, group_before.etag);
    let feed = store.changes_after(0, 100).await.unwrap();
    let tail: Vec<(String, ChangeKind)> = feed
        .iter()
        .rev()
        .take(2)
        .map(|c| (c.entity_ref.clone(), c.change))
        .collect();
    assert!(
        tail.contains(&("component:default/svc".into(), ChangeKind::Removed)),
        "{tail:?}"
    );
    assert!(
        tail.contains(&("group:default/team-a".into(), ChangeKind::Relations)),
        "{tail:?}"
    );
    // The history of a removed entity keeps its last content.
    let history = store.history("component:default/svc", 0).await.unwrap();
    assert_eq!(history[0].change, ChangeKind::Removed);
    let last: serde_json::Value =
        serde_json::from_str(history[1].body.as_deref().expect("last body kept")).unwrap();
    assert_eq!(last["spec"]["owner"], "team-a");
    // Removing what is not there changes nothing.
    let noop = store
        .apply_batch(Batch {
            removals: vec!["component:default/svc".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((noop.removed, noop.last_sequence), (0, 0));
}

async fn refuses_conflicting_locations(store: &CatalogStore) {
    store
        .apply_batch(Batch {
            upserts: vec![component("svc", "team-a", "url:first")],
            ..Batch::default()
        })
        .await
        .unwrap();
    let clash = store
        .apply_batch(Batch {
            upserts: vec![
                component("svc", "team-b", "url:second"),
                component("other", "team-b", "url:second"),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(clash.conflicts, ["component:default/svc"]);
    assert_eq!(clash.created, 1);
    let kept = store
        .entity_by_ref("component:default/svc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.location_key.as_deref(), Some("url:first"));
    assert!(kept.body.contains("team-a"));
}

async fn rejects_bad_batches_without_writing(store: &CatalogStore) {
    let mut nameless = component("x", "team-a", "url:x");
    nameless.body["metadata"] = serde_json::json!({});
    let batch = Batch {
        upserts: vec![component("good", "team-a", "url:x"), nameless],
        ..Batch::default()
    };
    let error = store.apply_batch(batch).await.unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidArgument(ref m) if m.contains("metadata.name")),
        "{error}"
    );
    assert!(
        store
            .entity_by_ref("component:default/good")
            .await
            .unwrap()
            .is_none(),
        "all or nothing"
    );
    assert_eq!(store.head_sequence().await.unwrap(), 0);
    let error = store
        .apply_batch(Batch {
            removals: vec!["nokind".into()],
            ..Batch::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidArgument(_)));
}

async fn leases_go_to_one_holder_at_a_time(store: &CatalogStore) {
    let minute = Duration::from_secs(60);
    let name = "harvest:git:https://git.example.com/r.git";
    assert!(
        store
            .acquire_lease(name, "harvester-a", minute)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease(name, "harvester-b", minute)
            .await
            .unwrap()
    );
    // The holder renews; another lease is independent.
    assert!(
        store
            .acquire_lease(name, "harvester-a", minute)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_lease("other", "harvester-b", minute)
            .await
            .unwrap()
    );
    // Only the holder gives it back.
    store.release_lease(name, "harvester-b").await.unwrap();
    assert!(
        !store
            .acquire_lease(name, "harvester-b", minute)
            .await
            .unwrap()
    );
    store.release_lease(name, "harvester-a").await.unwrap();
    assert!(
        store
            .acquire_lease(name, "harvester-b", minute)
            .await
            .unwrap()
    );
    // An expired lease (its holder died) goes to the next asker.
    assert!(
        store
            .acquire_lease("short", "harvester-a", Duration::ZERO)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        store
            .acquire_lease("short", "harvester-b", minute)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease("short", "harvester-a", minute)
            .await
            .unwrap()
    );
    // Many at once: exactly one wins.
    let contenders = (0..8).map(|i| {
        let store = store.clone();
        async move {
            store
                .acquire_lease("contested", &format!("h{i}"), minute)
                .await
                .unwrap()
        }
    });
    let won = futures::future::join_all(contenders).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}

async fn registers_and_removes_locations(store: &CatalogStore) {
    let location = store
        .add_location(
            "url",
            "https://github.com/acme/repo/blob/main/catalog-info.yaml",
        )
        .await
        .unwrap();
    assert!(
        location
            .entity_ref
            .starts_with("location:default/generated-")
    );
    let generated = store
        .entity_by_ref(&location.entity_ref)
        .await
        .unwrap()
        .expect("generated Location entity");
    assert_eq!(generated.kind, "Location");
    let duplicate = store
        .add_location(
            "url",
            "https://github.com/acme/repo/blob/main/catalog-info.yaml",
        )
        .await
        .unwrap_err();
    assert!(matches!(duplicate, StoreError::AlreadyExists(_)));
    assert_eq!(
        store.locations().await.unwrap(),
        std::slice::from_ref(&location)
    );
    assert_eq!(
        store.location(&location.id).await.unwrap(),
        Some(location.clone())
    );

    let key = location.key();
    let mut child = component(
        "svc",
        "team-a",
        "url:https://github.com/acme/repo/tree/main/catalog-info.yaml",
    );
    child.location_key = Some(key.clone());
    child.origin_location = Some(key.clone());
    child.parent_ref = Some(location.entity_ref.clone());
    // A harvest of the location replaces what it holds; the generated entity is not its to
    // replace.
    store
        .apply_batch(Batch {
            upserts: vec![child],
            replaced_locations: vec![key.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert!(
        store
            .entity_by_ref(&location.entity_ref)
            .await
            .unwrap()
            .is_some(),
        "the generated entity outlives a harvest of its location"
    );
    // Pointing the location elsewhere keeps its id, forgets what came through the old target
    // and emits a generated entity for the new one.
    let other = store
        .add_location("url", "https://github.com/acme/other/blob/main/c.yaml")
        .await
        .unwrap();
    let taken = store
        .update_location(&location.id, &other.location_type, &other.target)
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::AlreadyExists(_)), "{taken:?}");
    assert!(matches!(
        store
            .update_location("no-such-id", "url", "https://x/y.yaml")
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
    let moved = store
        .update_location(
            &location.id,
            "url",
            "https://github.com/acme/moved/blob/main/c.yaml",
        )
        .await
        .unwrap();
    assert_eq!(moved.id, location.id);
    assert_ne!(moved.entity_ref, location.entity_ref);
    assert!(
        store
            .entity_by_ref(&location.entity_ref)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .entity_by_ref("component:default/svc")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .entity_by_ref(&moved.entity_ref)
            .await
            .unwrap()
            .is_some()
    );
    store.remove_location(&other.id).await.unwrap();
    let location = moved;
    let key = location.key();
    let mut child = component(
        "svc",
        "team-a",
        "url:https://github.com/acme/moved/tree/main/catalog-info.yaml",
    );
    child.origin_location = Some(key.clone());
    store
        .apply_batch(Batch {
            upserts: vec![child],
            ..Batch::default()
        })
        .await
        .unwrap();
    let removed = store.remove_location(&location.id).await.unwrap();
    assert_eq!(removed, 2, "the generated entity and what came through it");
    assert!(
        store
            .entity_by_ref("component:default/svc")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.locations().await.unwrap().is_empty());
    assert!(matches!(
        store.remove_location(&location.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn keeps_processing_errors(store: &CatalogStore) {
    store
        .apply_batch(Batch {
            upserts: vec![component("svc", "team-a", "url:x")],
            ..Batch::default()
        })
        .await
        .unwrap();
    let error = |entity_ref: Option<&str>, line: u32| ProcessingError {
        location_key: "url:x".into(),
        entity_ref: entity_ref.map(str::to_owned),
        file: "https://example.com/catalog-info.yaml".into(),
        finding: Finding::error(Rule::NameFormat, "metadata.name", "bad name")
            .at(Some(Position { line, column: 9 })),
        recorded_at: 0,
    };
    let errors = LocationErrors {
        location_key: "url:x".into(),
        errors: vec![error(Some("component:default/svc"), 4), error(None, 1)],
    };
    store
        .apply_batch(Batch {
            errors: vec![errors],
            ..Batch::default()
        })
        .await
        .unwrap();
    let by_location = errors_at(store, "url:x").await;
    assert_eq!(by_location.len(), 2);
    assert_eq!(
        by_location[0].finding.position,
        Some(Position { line: 4, column: 9 })
    );
    assert_eq!(by_location[0].finding.rule, Rule::NameFormat);
    let by_entity = store
        .processing_errors(&ErrorScope::Entity("component:default/SVC".into()), 0)
        .await
        .unwrap();
    assert_eq!(by_entity.len(), 1);
    let by_owner = store
        .processing_errors(&ErrorScope::Owner("group:default/team-a".into()), 0)
        .await
        .unwrap();
    assert_eq!(by_owner.len(), 1);
    // Fixed: an empty list clears them.
    store
        .apply_batch(Batch {
            errors: vec![LocationErrors {
                location_key: "url:x".into(),
                errors: vec![],
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert!(errors_at(store, "url:x").await.is_empty());

    // One batch reports many locations (every file it read): each reported location's errors
    // are replaced by what it reports now, and an unreported location keeps its own.
    let at = |location_key: &str, lines: &[u32]| LocationErrors {
        location_key: location_key.into(),
        errors: lines
            .iter()
            .map(|line| ProcessingError {
                location_key: location_key.into(),
                ..error(None, *line)
            })
            .collect(),
    };
    for errors in [
        vec![at("url:x", &[1]), at("url:y", &[2]), at("url:z", &[3])],
        vec![at("url:x", &[]), at("url:y", &[5, 6])],
    ] {
        store
            .apply_batch(Batch {
                errors,
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let lines = |errors: Vec<ProcessingError>| -> Vec<u32> {
        let mut lines: Vec<u32> = errors
            .iter()
            .filter_map(|error| error.finding.position.map(|p| p.line))
            .collect();
        lines.sort();
        lines
    };
    assert!(errors_at(store, "url:x").await.is_empty());
    assert_eq!(lines(errors_at(store, "url:y").await), [5, 6]);
    assert_eq!(lines(errors_at(store, "url:z").await), [3]);
}

async fn change_feed_resumes_from_a_sequence(store: &CatalogStore) {
    let first = store
        .apply_batch(Batch {
            upserts: vec![component("a", "team-a", "url:x")],
            ..Batch::default()
        })
        .await
        .unwrap();
    let second = store
        .apply_batch(Batch {
            upserts: vec![component("b", "team-a", "url:x")],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert!(second.last_sequence > first.last_sequence);
    let all = store.changes_after(0, 1_000).await.unwrap();
    let sequences: Vec<u64> = all.iter().map(|c| c.sequence).collect();
    let mut sorted = sequences.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sequences, sorted, "strictly increasing");
    assert_eq!(*sequences.last().unwrap(), second.last_sequence);
    let resumed = store
        .changes_after(first.last_sequence, 1_000)
        .await
        .unwrap();
    let resumed_refs: BTreeSet<&str> = resumed.iter().map(|c| c.entity_ref.as_str()).collect();
    assert!(
        resumed_refs.contains("component:default/b")
            && !resumed_refs.contains("component:default/a")
    );
    assert_eq!(store.head_sequence().await.unwrap(), second.last_sequence);
    let mut head = store.subscribe();
    assert_eq!(*head.borrow_and_update(), second.last_sequence);
    let third = store
        .apply_batch(Batch {
            upserts: vec![component("c", "team-a", "url:x")],
            ..Batch::default()
        })
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), head.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*head.borrow(), third.last_sequence);
}

async fn streams_every_entity_in_order(store: &CatalogStore) {
    let count = load_examples(store).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = store.entities_after(after.as_deref(), 7).await.unwrap();
        if batch.is_empty() {
            break;
        }
        after = batch.last().map(|e| e.entity_ref.clone());
        seen.extend(batch.into_iter().map(|e| e.entity_ref));
    }
    assert_eq!(seen.len(), count);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
}

async fn walks_ancestry(store: &CatalogStore) {
    let location = store
        .add_location("url", "https://example.com/root.yaml")
        .await
        .unwrap();
    let mut child = component("svc", "team-a", "url:https://example.com/svc.yaml");
    child.parent_ref = Some(location.entity_ref.clone());
    child.origin_location = Some(location.key());
    store
        .apply_batch(Batch {
            upserts: vec![child],
            ..Batch::default()
        })
        .await
        .unwrap();
    let ancestry = store.ancestry("component:default/svc").await.unwrap();
    let chain: Vec<(&str, Vec<String>)> = ancestry
        .iter()
        .map(|i| (i.entity.entity_ref.as_str(), i.parent_refs.clone()))
        .collect();
    assert_eq!(
        chain,
        [
            ("component:default/svc", vec![location.entity_ref.clone()]),
            (location.entity_ref.as_str(), vec![])
        ]
    );
    let targets = store
        .refresh_targets("component:default/svc")
        .await
        .unwrap();
    assert_eq!(
        targets,
        [
            "url:https://example.com/svc.yaml".to_owned(),
            location.key()
        ]
    );
    assert!(matches!(
        store.ancestry("component:default/nope").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn rejects_bad_queries(store: &CatalogStore) {
    load_examples(store).await;
    let bad_cursor = store
        .query_entities(&EntityQuery {
            cursor: Some("not-a-cursor".into()),
            ..EntityQuery::default()
        })
        .await;
    assert!(
        matches!(bad_cursor, Err(StoreError::InvalidArgument(ref m)) if m.contains("Malformed cursor")),
        "{bad_cursor:?}"
    );
    let too_big = store
        .query_entities(&EntityQuery {
            limit: 1_000_000,
            ..EntityQuery::default()
        })
        .await;
    assert!(matches!(too_big, Err(StoreError::InvalidArgument(_))));
    assert!(matches!(
        store.entity_by_ref("component:").await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.entity_by_ref("no-kind").await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.entity_as_of("component:default/x", "yesterday").await,
        Err(StoreError::InvalidArgument(_))
    ));
    // Values with LIKE wildcards match literally.
    let page = store
        .query_entities(&EntityQuery {
            full_text: cadastre_query::full_text::build("%", &["metadata.name"], &[]),
            ..EntityQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total_items, 0);
}

async fn replacing_a_location_removes_what_it_no_longer_produces(store: &CatalogStore) {
    store.set_orphan_policy(OrphanPolicy::Remove);
    store
        .apply_batch(Batch {
            upserts: vec![
                component("a1", "team-a", "file:/srv/a.yaml"),
                component("a2", "team-a", "file:/srv/a.yaml"),
                component("b1", "team-a", "file:/srv/b.yaml"),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();
    // a.yaml now only declares a1; b.yaml is not part of this harvest.
    let outcome = store
        .apply_batch(Batch {
            upserts: vec![component("a1", "team-a", "file:/srv/a.yaml")],
            replaced_locations: vec!["file:/srv/a.yaml".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((outcome.unchanged, outcome.removed), (1, 1));
    let present = |name: &'static str| async move {
        store
            .entity_by_ref(&format!("component:default/{name}"))
            .await
            .unwrap()
            .is_some()
    };
    assert!(present("a1").await);
    assert!(!present("a2").await);
    assert!(present("b1").await);
    // b.yaml was deleted: nothing of it is upserted, everything it held goes.
    let outcome = store
        .apply_batch(Batch {
            replaced_locations: vec!["file:/srv/b.yaml".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.removed, 1);
    assert!(!present("b1").await);
    assert!(present("a1").await);
}

fn part(harvest_id: &str, started_at: i64, parts: u32, batch: Batch) -> ProcessedBatch {
    ProcessedBatch {
        batch_id: format!("{harvest_id}/{}", batch.upserts.len()),
        batch,
        receipt: Receipt {
            harvest_id: harvest_id.into(),
            location_key: "git:https://git.example.com/acme/repo.git".into(),
            trigger: "webhook".into(),
            reason: "push abc123 by alice".into(),
            commit: "abc123".into(),
            files_read: 1,
            harvest_started_at: started_at,
            parts,
            ..Receipt::default()
        },
    }
}

async fn processed_batches_apply_once_and_build_receipts(store: &CatalogStore) {
    store.set_orphan_policy(OrphanPolicy::Remove);
    let first = part(
        "h1",
        1_000,
        2,
        Batch {
            upserts: vec![component("a", "team-a", "url:x/a.yaml")],
            ..Batch::default()
        },
    );
    let applied = store.apply_processed(first.clone()).await.unwrap();
    assert!(!applied.duplicate);
    assert_eq!(applied.outcome.created, 1);
    // The bus delivers it again (the store crashed before acking): nothing happens.
    let again = store.apply_processed(first).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.outcome.created + again.outcome.unchanged, 0);

    let second = part(
        "h1",
        1_000,
        2,
        Batch {
            upserts: vec![
                component("b", "team-a", "url:x/b.yaml"),
                component("c", "team-a", "url:x/b.yaml"),
            ],
            ..Batch::default()
        },
    );
    store.apply_processed(second).await.unwrap();
    let receipts = store
        .harvest_receipts("git:https://git.example.com/acme/repo.git", 0)
        .await
        .unwrap();
    assert_eq!(receipts.len(), 1);
    let receipt = &receipts[0];
    assert_eq!(
        (
            receipt.created,
            receipt.files_read,
            receipt.parts,
            receipt.parts_applied
        ),
        (3, 2, 2, 2)
    );
    assert_eq!(receipt.commit, "abc123");
    assert_eq!(receipt.reason, "push abc123 by alice");
    assert_eq!(
        receipt.changed_refs,
        [
            "component:default/a",
            "component:default/b",
            "component:default/c"
        ]
    );
    assert!(receipt.applied_at > 0);

    // A newer harvest edits b and drops c; a late redelivery of an older harvest is skipped.
    let newer = part(
        "h2",
        2_000,
        1,
        Batch {
            upserts: vec![component("b", "team-b", "url:x/b.yaml")],
            replaced_locations: vec!["url:x/b.yaml".into()],
            ..Batch::default()
        },
    );
    let outcome = store.apply_processed(newer).await.unwrap().outcome;
    assert_eq!((outcome.updated, outcome.removed), (1, 1));
    let stale = part(
        "h0",
        500,
        1,
        Batch {
            upserts: vec![component("b", "team-z", "url:x/b.yaml")],
            ..Batch::default()
        },
    );
    assert!(store.apply_processed(stale).await.unwrap().duplicate);
    let b = store
        .entity_by_ref("component:default/b")
        .await
        .unwrap()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&b.body).unwrap();
    assert_eq!(body["spec"]["owner"], "team-b");
    let receipts = store.harvest_receipts("", 10).await.unwrap();
    assert_eq!(receipts[0].harvest_id, "h2");
    assert_eq!(receipts[0].removed_refs, ["component:default/c"]);
}

/// Two harvests of one location overlap (a request delivered twice; parts processed by
/// several workers): the newer one, which read only the file that changed, is applied before
/// the older one's last parts. Those still bring every file the newer harvest did not read.
async fn a_late_part_of_an_older_harvest_keeps_only_files_no_newer_harvest_applied(
    store: &CatalogStore,
) {
    let file = |name: &str| format!("url:late/{name}.yaml");
    let files = |owner: &str, names: &[&str]| Batch {
        upserts: names
            .iter()
            .map(|name| component(&format!("late-{name}"), owner, &file(name)))
            .collect(),
        replaced_locations: names.iter().map(|name| file(name)).collect(),
        ..Batch::default()
    };
    let older = |index: u32, batch: Batch| ProcessedBatch {
        batch_id: format!("older/{index}"),
        ..part("older", 1_000, 3, batch)
    };
    let applied = store
        .apply_processed(older(0, files("team-a", &["one"])))
        .await
        .unwrap();
    assert_eq!(applied.outcome.created, 1);
    let newer = ProcessedBatch {
        batch_id: "newer/0".into(),
        ..part("newer", 2_000, 1, files("team-b", &["three"]))
    };
    assert_eq!(
        store.apply_processed(newer).await.unwrap().outcome.created,
        1
    );

    // A part of files the newer harvest did not read: applied in full.
    let late = store
        .apply_processed(older(1, files("team-a", &["two"])))
        .await
        .unwrap();
    assert!(!late.duplicate);
    assert_eq!(late.outcome.created, 1);
    // A part of one file it read and one it did not: only the other file.
    let mixed = store
        .apply_processed(older(2, files("team-a", &["three", "four"])))
        .await
        .unwrap();
    assert!(!mixed.duplicate);
    assert_eq!(
        (mixed.outcome.created, mixed.outcome.updated),
        (1, 0),
        "{mixed:?}"
    );
    // A part of only files it read: nothing at all.
    let stale = store
        .apply_processed(older(3, files("team-z", &["three"])))
        .await
        .unwrap();
    assert!(stale.duplicate);

    async fn owner(store: &CatalogStore, name: &str) -> String {
        let entity = store
            .entity_by_ref(&format!("component:default/late-{name}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("late-{name} is stored"));
        let body: serde_json::Value = serde_json::from_str(&entity.body).unwrap();
        body["spec"]["owner"].as_str().unwrap().to_owned()
    }
    assert_eq!(owner(store, "one").await, "team-a");
    assert_eq!(owner(store, "two").await, "team-a");
    assert_eq!(
        owner(store, "three").await,
        "team-b",
        "the newer harvest's content stays"
    );
    assert_eq!(owner(store, "four").await, "team-a");
}

async fn conflicts_are_kept_as_errors_on_the_newcomer(store: &CatalogStore) {
    store
        .apply_batch(Batch {
            upserts: vec![component("svc", "team-a", "url:first.yaml")],
            ..Batch::default()
        })
        .await
        .unwrap();
    let newcomer = store
        .apply_batch(Batch {
            upserts: vec![component("svc", "team-b", "url:second.yaml")],
            errors: vec![LocationErrors {
                location_key: "url:second.yaml".into(),
                errors: Vec::new(),
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(newcomer.conflicts, ["component:default/svc"]);
    let errors = errors_at(store, "url:second.yaml").await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].finding.rule, Rule::EntityRefConflict);
    assert!(
        errors[0].finding.message.contains("url:first.yaml"),
        "{}",
        errors[0].finding.message
    );
    assert_eq!(
        errors[0].entity_ref.as_deref(),
        Some("component:default/svc")
    );
    // The first holder keeps it, unchanged.
    let svc = store
        .entity_by_ref("component:default/svc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(svc.location_key.as_deref(), Some("url:first.yaml"));
    // Once the newcomer stops declaring it, the error goes.
    store
        .apply_batch(Batch {
            errors: vec![LocationErrors {
                location_key: "url:second.yaml".into(),
                errors: Vec::new(),
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert!(errors_at(store, "url:second.yaml").await.is_empty());
}

async fn entities_no_longer_produced_are_kept_as_orphans(store: &CatalogStore) {
    assert_eq!(
        store.orphan_policy(),
        OrphanPolicy::Keep,
        "Backstage's default"
    );
    store
        .apply_batch(Batch {
            upserts: vec![
                component("a1", "team-a", "file:/srv/a.yaml"),
                component("a2", "team-a", "file:/srv/a.yaml"),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();
    let before = store
        .entity_by_ref("component:default/a2")
        .await
        .unwrap()
        .unwrap();
    let outcome = store
        .apply_batch(Batch {
            upserts: vec![component("a1", "team-a", "file:/srv/a.yaml")],
            replaced_locations: vec!["file:/srv/a.yaml".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((outcome.orphaned, outcome.removed), (1, 0));
    let orphan = store
        .entity_by_ref("component:default/a2")
        .await
        .unwrap()
        .unwrap();
    assert!(orphan.orphan);
    assert_ne!(orphan.etag, before.etag);
    let body: serde_json::Value = serde_json::from_str(&orphan.body).unwrap();
    assert_eq!(
        body["metadata"]["annotations"]["backstage.io/orphan"],
        "true"
    );
    let history = store.history("component:default/a2", 0).await.unwrap();
    assert_eq!(history[0].change, ChangeKind::Orphaned);
    // Orphaning again changes nothing; producing it again adopts it back.
    let again = store
        .apply_batch(Batch {
            upserts: vec![component("a1", "team-a", "file:/srv/a.yaml")],
            replaced_locations: vec!["file:/srv/a.yaml".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(again.orphaned, 0);
    let back = store
        .apply_batch(Batch {
            upserts: vec![component("a2", "team-a", "file:/srv/a.yaml")],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(back.updated, 1);
    let adopted = store
        .entity_by_ref("component:default/a2")
        .await
        .unwrap()
        .unwrap();
    assert!(!adopted.orphan);
    let body: serde_json::Value = serde_json::from_str(&adopted.body).unwrap();
    assert!(
        body["metadata"]["annotations"]
            .get("backstage.io/orphan")
            .is_none()
    );
}

async fn batches_applied_together_answer_each_on_its_own(store: &CatalogStore) {
    let one = |name: &str| {
        part(
            &format!("h-{name}"),
            0,
            1,
            Batch {
                upserts: vec![component(name, "team-a", &format!("url:{name}.yaml"))],
                ..Batch::default()
            },
        )
    };
    // Together: one transaction, each answered.
    let results = store
        .apply_processed_all(vec![one("x"), one("y"), one("x")])
        .await;
    let duplicates: Vec<bool> = results
        .iter()
        .map(|r| r.as_ref().unwrap().duplicate)
        .collect();
    assert_eq!(duplicates, [false, false, true]);
    // A bad batch in the group does not hold back the others.
    let mut bad = one("z");
    bad.batch.upserts[0].body = serde_json::json!({"kind": "Component", "metadata": {}});
    let results = store
        .apply_processed_all(vec![one("w"), bad, one("v")])
        .await;
    assert!(results[0].as_ref().is_ok_and(|r| r.outcome.created == 1));
    assert!(matches!(results[1], Err(StoreError::InvalidArgument(_))));
    assert!(results[2].as_ref().is_ok_and(|r| r.outcome.created == 1));
    for name in ["x", "y", "w", "v"] {
        assert!(
            store
                .entity_by_ref(&format!("component:default/{name}"))
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
    }
}

/// A group's etag moves with every change to it: bumps by components that name it as owner
/// (kept apart from its row), its own update (which takes the bumped version into its row)
/// and its orphaning. None repeats, and each served etag is the one its latest change
/// recorded.
async fn etags_never_repeat_across_bumps_updates_and_orphaning(store: &CatalogStore) {
    let team = "group:default/team-e";
    let group = |description: &str| cadastre_catalog_store::Upsert {
        body: serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Group",
            "metadata": {"name": "team-e", "description": description},
            "spec": {"type": "team", "children": []}
        }),
        edges: Vec::new(),
        location_key: Some("file:/srv/team-e.yaml".into()),
        origin_location: Some("file:/srv/team-e.yaml".into()),
        parent_ref: None,
        commit: None,
    };
    let apply = |batch: Batch| async move { store.apply_batch(batch).await.unwrap() };
    let owned = |name: &str| Batch {
        upserts: vec![component(name, "team-e", &format!("file:/srv/{name}.yaml"))],
        ..Batch::default()
    };
    let mut seen: Vec<String> = Vec::new();
    let mut check = async |step: &str| {
        let served = store.entity_by_ref(team).await.unwrap().unwrap();
        let latest = store.history(team, 0).await.unwrap().remove(0);
        assert_eq!(
            served.etag, latest.etag,
            "{step}: the served etag was recorded"
        );
        assert!(
            !seen.contains(&served.etag),
            "{step}: etag repeated: {seen:?}"
        );
        seen.push(served.etag.clone());
        served
    };
    apply(Batch {
        upserts: vec![group("first")],
        ..Batch::default()
    })
    .await;
    check("created").await;
    apply(owned("e1")).await;
    check("bumped").await;
    apply(owned("e2")).await;
    check("bumped again").await;
    apply(Batch {
        upserts: vec![group("second")],
        ..Batch::default()
    })
    .await;
    let updated = check("updated").await;
    assert!(updated.body.contains("component:default/e2"));
    apply(owned("e3")).await;
    check("bumped after the update").await;
    let outcome = apply(Batch {
        replaced_locations: vec!["file:/srv/team-e.yaml".into()],
        ..Batch::default()
    })
    .await;
    assert_eq!(outcome.orphaned, 1);
    assert!(check("orphaned").await.orphan);
    apply(owned("e4")).await;
    let last = check("bumped as an orphan").await;
    assert!(last.orphan);
    assert!(last.body.contains("component:default/e4"));
}

/// A group of batches all pointing at one owner bumps it once (one `relations` change, one
/// new etag), bumps no entity the group itself created, and counts every edge once.
async fn batches_applied_together_bump_each_target_once(store: &CatalogStore) {
    let group = |name: &str| cadastre_catalog_store::Upsert {
        body: serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Group",
            "metadata": {"name": name}, "spec": {"type": "team", "children": []}
        }),
        edges: Vec::new(),
        location_key: Some(format!("url:{name}.yaml")),
        origin_location: Some(format!("url:{name}.yaml")),
        parent_ref: None,
        commit: None,
    };
    store
        .apply_batch(Batch {
            upserts: vec![group("team-a")],
            ..Batch::default()
        })
        .await
        .unwrap();
    let team_a = "group:default/team-a";
    let before = store.entity_by_ref(team_a).await.unwrap().unwrap();
    let head = store
        .changes_after(0, 1_000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .sequence;

    let batch = |name: &str, upserts| {
        part(
            &format!("h-{name}"),
            0,
            1,
            Batch {
                upserts,
                ..Batch::default()
            },
        )
    };
    let results = store
        .apply_processed_all(vec![
            batch("1", vec![component("a1", "team-a", "url:a1.yaml")]),
            batch(
                "2",
                vec![component("a2", "team-a", "url:a2.yaml"), group("team-b")],
            ),
            batch(
                "3",
                vec![
                    component("a3", "team-a", "url:a3.yaml"),
                    component("b1", "team-b", "url:b1.yaml"),
                ],
            ),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let feed: Vec<(String, ChangeKind)> = store
        .changes_after(head, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|change| (change.entity_ref, change.change))
        .collect();
    let of = |entity_ref: &str| -> Vec<ChangeKind> {
        feed.iter()
            .filter(|(r, _)| r == entity_ref)
            .map(|(_, change)| *change)
            .collect()
    };
    assert_eq!(of(team_a), [ChangeKind::Relations], "{feed:?}");
    assert_eq!(
        of("group:default/team-b"),
        [ChangeKind::Created],
        "{feed:?}"
    );
    assert_eq!(feed.len(), 6, "four components, team-b, one bump: {feed:?}");
    // The change that was written is the one served.
    let after = store.entity_by_ref(team_a).await.unwrap().unwrap();
    assert_ne!(after.etag, before.etag);
    let bump = store.changes_after(head, 1_000).await.unwrap();
    let bump = bump.iter().find(|c| c.entity_ref == team_a).unwrap();
    assert_eq!(bump.etag, after.etag);
    for name in ["a1", "a2", "a3"] {
        assert!(
            after.body.contains(&format!("component:default/{name}")),
            "{name}"
        );
    }
    let team_b = store
        .entity_by_ref("group:default/team-b")
        .await
        .unwrap()
        .unwrap();
    assert!(team_b.body.contains("component:default/b1"));

    // The counts were summed over the group and written once, exactly.
    let facets = store
        .facets(
            &["kind".to_owned(), "relations.ownedBy".to_owned()],
            &Predicate::everything(),
        )
        .await
        .unwrap();
    assert!(
        facets[0].values.contains(&("Component".to_owned(), 4)),
        "{facets:?}"
    );
    assert!(
        facets[0].values.contains(&("Group".to_owned(), 2)),
        "{facets:?}"
    );
    assert!(
        facets[1].values.contains(&(team_a.to_owned(), 3)),
        "{facets:?}"
    );
    assert!(
        facets[1]
            .values
            .contains(&("group:default/team-b".to_owned(), 1)),
        "{facets:?}"
    );
}

/// An error at `location_key` recorded at `recorded_at`, told apart by its message.
fn recorded_error(location_key: &str, message: &str, recorded_at: i64) -> ProcessingError {
    ProcessingError {
        location_key: location_key.into(),
        entity_ref: None,
        file: format!("{location_key}/catalog-info.yaml"),
        finding: Finding::error(Rule::NameFormat, "metadata.name", message),
        recorded_at,
    }
}

async fn lists_every_processing_error_newest_first_in_pages(store: &CatalogStore) {
    // Errors as (location, message, recorded_at), in the order they are written. Several
    // share a time: written together (one location) and in different batches.
    let written: Vec<(&str, &str, i64)> = vec![
        ("url:a", "a1", 1_000),
        ("url:a", "a2", 3_000),
        ("url:a", "a3", 3_000),
        ("url:b", "b1", 2_000),
        ("url:b", "b2", 5_000),
        ("url:c", "c1", 3_000),
        ("url:c", "c2", 4_000),
        ("url:c", "c3", 1_000),
        ("url:d", "d1", 3_000),
        ("url:d", "d2", 6_000),
        ("url:d", "d3", 2_500),
    ];
    for location in ["url:a", "url:b", "url:c", "url:d"] {
        let errors = written
            .iter()
            .filter(|(at, _, _)| *at == location)
            .map(|(at, message, recorded_at)| recorded_error(at, message, *recorded_at))
            .collect();
        store
            .apply_batch(Batch {
                errors: vec![LocationErrors {
                    location_key: location.into(),
                    errors,
                }],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    // Newest first; among errors of one time, the last written first.
    let mut expected: Vec<(usize, &str, i64)> = written
        .iter()
        .enumerate()
        .map(|(index, (_, message, at))| (index, *message, *at))
        .collect();
    expected.sort_by_key(|(index, _, at)| std::cmp::Reverse((*at, *index)));
    let expected: Vec<&str> = expected.iter().map(|(_, message, _)| *message).collect();

    let everything = store.all_processing_errors(None, 0).await.unwrap();
    assert!(everything.next_cursor.is_none());
    let messages = |errors: &[ProcessingError]| -> Vec<String> {
        errors.iter().map(|e| e.finding.message.clone()).collect()
    };
    assert_eq!(messages(&everything.errors), expected);
    assert_eq!(everything.errors[0].location_key, "url:d");
    assert_eq!(everything.errors[0].recorded_at, 6_000);

    // Paging: each error exactly once, in the same order, for page sizes that do and do not
    // divide the total.
    for limit in [1, 3, 4, 11] {
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store
                .all_processing_errors(cursor.as_deref(), limit)
                .await
                .unwrap();
            assert!(page.errors.len() <= limit as usize);
            assert!(
                !page.errors.is_empty(),
                "no empty last page (limit {limit})"
            );
            walked.extend(messages(&page.errors));
            pages += 1;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, expected, "limit {limit}");
        assert_eq!(
            pages,
            expected.len().div_ceil(limit as usize),
            "limit {limit}"
        );
    }

    // Replacing a location's errors: its old ones are gone from the listing, its new ones in.
    store
        .apply_batch(Batch {
            errors: vec![LocationErrors {
                location_key: "url:d".into(),
                errors: vec![recorded_error("url:d", "d4", 2_000)],
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
    let after = store.all_processing_errors(None, 100).await.unwrap();
    let listed = messages(&after.errors);
    assert_eq!(listed.len(), 9);
    assert!(!listed.iter().any(|m| m.starts_with('d') && m != "d4"));
    assert_eq!(
        listed,
        ["b2", "c2", "c1", "a3", "a2", "d4", "b1", "c3", "a1"],
        "d4, written last at 2,000, comes before b1 of that time"
    );

    // The scoped listings are unchanged.
    assert_eq!(errors_at(store, "url:c").await.len(), 3);
    // A cursor that is not one: INVALID_ARGUMENT.
    for bad in ["zz", "not-a-cursor", "6869"] {
        assert!(
            matches!(
                store.all_processing_errors(Some(bad), 3).await,
                Err(StoreError::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
}

/// A component whose `spec` is `spec`, no relations.
fn with_spec(kind: &str, name: &str, spec: serde_json::Value) -> cadastre_catalog_store::Upsert {
    let mut upsert = component(name, "unused", "url:owners");
    upsert.body = serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    });
    upsert.edges.clear();
    upsert
}

/// The rows `search_doc` holds for `key` (the semantics the hot columns must keep).
fn doc_rows(
    entity: &cadastre_catalog_store::StoredEntity,
    key: &str,
) -> Vec<cadastre_query::SearchRow> {
    cadastre_query::search_rows(&entity.body_json().unwrap())
        .into_iter()
        .filter(|row| row.key == key)
        .collect()
}

/// Every entity, by ref.
async fn all_entities(store: &CatalogStore) -> Vec<cadastre_catalog_store::StoredEntity> {
    store
        .query_entities(&EntityQuery {
            limit: 1_000,
            ..EntityQuery::default()
        })
        .await
        .unwrap()
        .items
}

/// Walks every page of `query` (4 at a time); the refs and the total.
async fn walk(store: &CatalogStore, query: EntityQuery) -> (Vec<String>, u64) {
    let mut query = EntityQuery { limit: 4, ..query };
    let mut refs = Vec::new();
    let mut total = None;
    loop {
        let page = store.query_entities(&query).await.unwrap();
        assert!(total.is_none_or(|t| t == page.total_items));
        total = Some(page.total_items);
        refs.extend(page.items.into_iter().map(|e| e.entity_ref));
        match page.next_cursor {
            Some(cursor) => {
                query = EntityQuery {
                    cursor: Some(cursor),
                    limit: 4,
                    ..EntityQuery::default()
                }
            }
            None => return (refs, total.unwrap_or_default()),
        }
    }
}

/// Asserts `query` (up to 1,000 rows) answers exactly the `entities` that `keep` picks, in
/// their order; answers the page's total and how many were expected.
async fn answers_exactly(
    store: &CatalogStore,
    entities: &[cadastre_catalog_store::StoredEntity],
    query: EntityQuery,
    keep: impl Fn(&cadastre_catalog_store::StoredEntity) -> bool,
    what: &str,
) -> (usize, usize) {
    let page = store
        .query_entities(&EntityQuery {
            limit: 1_000,
            ..query
        })
        .await
        .unwrap();
    let expected: Vec<String> = entities
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.entity_ref.clone())
        .collect();
    let got: Vec<String> = page.items.into_iter().map(|e| e.entity_ref).collect();
    assert_eq!(got, expected, "{what}");
    (page.total_items as usize, expected.len())
}

/// `spec.owner` and `spec.system` are indexed columns holding the first value of their key;
/// filters, full text, ordering (with cursors) and facets answer exactly as over the JSON
/// document, for usual values and for the odd ones: case, full refs, lists, `spec.Owner`
/// next to `spec.owner`, numbers, null, over-long values, absent keys.
async fn owner_and_system_answer_as_their_documents(store: &CatalogStore) {
    load_examples(store).await;
    let long = "x".repeat(250);
    let odd = vec![
        with_spec(
            "Component",
            "o-mixed",
            serde_json::json!({"owner": "Team-Alpha", "system": "Billing"}),
        ),
        with_spec(
            "Component",
            "o-lower",
            serde_json::json!({"owner": "team-alpha", "system": "billing"}),
        ),
        with_spec(
            "Component",
            "o-ref",
            serde_json::json!({"owner": "group:default/team-b"}),
        ),
        with_spec(
            "Component",
            "o-list",
            serde_json::json!({"owner": ["team-c", "Team-D"], "system": "payments"}),
        ),
        with_spec(
            "Component",
            "o-cased-keys",
            serde_json::json!({"owner": "team-e", "Owner": "Team-F"}),
        ),
        with_spec(
            "Component",
            "o-number",
            serde_json::json!({"owner": 42, "system": 7.0}),
        ),
        with_spec(
            "Component",
            "o-null",
            serde_json::json!({"owner": null, "system": null}),
        ),
        with_spec(
            "Component",
            "o-long",
            serde_json::json!({"owner": long, "system": "billing"}),
        ),
        with_spec(
            "Component",
            "o-none",
            serde_json::json!({"system": "Billing"}),
        ),
        with_spec(
            "System",
            "o-system",
            serde_json::json!({"owner": "team-alpha"}),
        ),
        with_spec(
            "Resource",
            "o-systems",
            serde_json::json!({"owner": "team-b", "system": ["billing", "Payments", "payments"]}),
        ),
        with_spec(
            "Resource",
            "o-object",
            serde_json::json!({"owner": {"team": "team-g"}}),
        ),
    ];
    store
        .apply_batch(Batch {
            upserts: odd,
            ..Batch::default()
        })
        .await
        .unwrap();
    let entities = all_entities(store).await;

    for key in ["spec.owner", "spec.system"] {
        let mut values: BTreeSet<String> = entities
            .iter()
            .flat_map(|e| doc_rows(e, key))
            .filter_map(|row| row.value)
            .collect();
        values.insert("nobody".into());
        // Filters: any value of the key, case-insensitively; alone and with a kind.
        for value in &values {
            let expected: Vec<String> = entities
                .iter()
                .filter(|e| {
                    doc_rows(e, key)
                        .iter()
                        .any(|r| r.value.as_ref() == Some(value))
                })
                .map(|e| e.entity_ref.clone())
                .collect();
            let condition = format!("{key}={}", value.to_uppercase());
            assert_eq!(refs(store, &[&condition]).await, expected, "{condition}");
            let with_kind = format!("kind=component,{condition}");
            let components: Vec<String> = expected
                .iter()
                .filter(|r| r.starts_with("component:"))
                .cloned()
                .collect();
            assert_eq!(refs(store, &[&with_kind]).await, components, "{with_kind}");
        }
        // Prefixes, negation and existence.
        for prefix in ["team-", "group:", "bill", "pay", "4"] {
            let predicate = cadastre_query::json_predicate::parse(
                &serde_json::json!({ key: {"$hasPrefix": prefix} }),
            )
            .unwrap();
            let (total, expected) = answers_exactly(
                store,
                &entities,
                EntityQuery {
                    filter: predicate,
                    ..EntityQuery::default()
                },
                |e| {
                    doc_rows(e, key)
                        .iter()
                        .any(|r| r.value.as_ref().is_some_and(|v| v.starts_with(prefix)))
                },
                &format!("{key} has prefix {prefix}"),
            )
            .await;
            assert_eq!(total, expected);
        }
        for value in ["team-alpha", "team-d", "payments"] {
            let predicate =
                cadastre_query::json_predicate::parse(&serde_json::json!({"$not": { key: value }}))
                    .unwrap();
            answers_exactly(
                store,
                &entities,
                EntityQuery {
                    filter: predicate,
                    ..EntityQuery::default()
                },
                |e| {
                    !doc_rows(e, key)
                        .iter()
                        .any(|r| r.value.as_deref() == Some(value))
                },
                &format!("not {key}={value}"),
            )
            .await;
        }
        let present: Vec<String> = entities
            .iter()
            .filter(|e| !doc_rows(e, key).is_empty())
            .map(|e| e.entity_ref.clone())
            .collect();
        assert_eq!(refs(store, &[key]).await, present, "{key} exists");

        // Full text over the key: a substring of any value.
        for term in ["ALPHA", "team-d", "ayment", "42"] {
            let needle = term.to_lowercase();
            answers_exactly(
                store,
                &entities,
                EntityQuery {
                    full_text: cadastre_query::full_text::build(term, &[key], &[]),
                    ..EntityQuery::default()
                },
                |e| {
                    doc_rows(e, key)
                        .iter()
                        .any(|r| r.value.as_ref().is_some_and(|v| v.contains(&needle)))
                },
                &format!("full text {term} in {key}"),
            )
            .await;
        }

        // Ordering: by the first value, then by ref; entities whose first value is null or
        // missing are left out. Both directions, all entities or one kind, walked in pages.
        for kind in [None, Some("component")] {
            let chosen: Vec<&cadastre_catalog_store::StoredEntity> = entities
                .iter()
                .filter(|e| kind.is_none_or(|k| e.kind.eq_ignore_ascii_case(k)))
                .collect();
            let mut keyed: Vec<(String, String)> = chosen
                .iter()
                .filter_map(|e| {
                    let first = doc_rows(e, key).into_iter().next()?.value?;
                    Some((first, e.entity_ref.clone()))
                })
                .collect();
            keyed.sort();
            for descending in [false, true] {
                let mut expected: Vec<String> = keyed.iter().map(|(_, r)| r.clone()).collect();
                if descending {
                    expected.reverse();
                }
                let (walked, total) = walk(
                    store,
                    EntityQuery {
                        filter: kind
                            .map_or_else(Predicate::everything, |k| Predicate::equals("kind", k)),
                        order: vec![OrderField {
                            field: key.into(),
                            descending,
                        }],
                        ..EntityQuery::default()
                    },
                )
                .await;
                assert_eq!(walked, expected, "{key} {kind:?} descending {descending}");
                assert_eq!(total as usize, expected.len());
            }
        }

        // Facets: each entity counts once per distinct original-case value.
        let filters = [
            Predicate::everything(),
            filter(&["kind=component"]),
            filter(&["kind=component,spec.type=service"]),
            filter(&["spec.lifecycle=production"]),
            filter(&["metadata.name=o-list"]),
        ];
        for predicate in filters {
            let chosen = store
                .query_entities(&EntityQuery {
                    filter: predicate.clone(),
                    limit: 1_000,
                    ..EntityQuery::default()
                })
                .await
                .unwrap()
                .items;
            let mut expected: BTreeMap<String, u64> = BTreeMap::new();
            for entity in &chosen {
                let originals: BTreeSet<String> = doc_rows(entity, key)
                    .into_iter()
                    .filter_map(|row| row.original)
                    .collect();
                for original in originals {
                    *expected.entry(original).or_default() += 1;
                }
            }
            let facets = store.facets(&[key.to_owned()], &predicate).await.unwrap();
            assert_eq!(
                facets[0].values,
                expected.into_iter().collect::<Vec<_>>(),
                "{key} facets over {predicate:?}"
            );
        }
    }

    // Rewritten in place: the columns follow (a list becomes one value, and back).
    let changed = with_spec(
        "Component",
        "o-list",
        serde_json::json!({"owner": "Team-Z"}),
    );
    store
        .apply_batch(Batch {
            upserts: vec![changed],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        refs(store, &["spec.owner=team-z"]).await,
        ["component:default/o-list"]
    );
    for gone in [
        "spec.owner=team-c",
        "spec.owner=team-d",
        "spec.system=payments",
    ] {
        assert!(
            !refs(store, &[gone])
                .await
                .contains(&"component:default/o-list".to_owned()),
            "{gone}"
        );
    }
    let facets = store
        .facets(
            &["spec.owner".to_owned()],
            &filter(&["metadata.name=o-list"]),
        )
        .await
        .unwrap();
    assert_eq!(facets[0].values, [("Team-Z".to_owned(), 1)]);
    let back = with_spec(
        "Component",
        "o-list",
        serde_json::json!({"owner": ["team-y", "Team-X"]}),
    );
    store
        .apply_batch(Batch {
            upserts: vec![back],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        refs(store, &["spec.owner=team-x"]).await,
        ["component:default/o-list"]
    );
    assert!(refs(store, &["spec.owner=team-z"]).await.is_empty());
}

/// A write that fails halfway through a statement leaves nothing of its batch. A trigger
/// refuses the sixth of ten new entity rows with `FAIL`, which (like the `OR FAIL` SQLite's
/// writes of many rows use) keeps the rows the statement wrote before it: the batch must
/// still come out whole or not at all, since its transaction is rolled back.
mod a_write_failing_halfway_keeps_nothing {
    use sea_orm::ConnectionTrait;

    use super::*;

    const SQLITE: &[&str] = &[
        "CREATE TRIGGER refuse_e5 BEFORE INSERT ON entities WHEN NEW.name = 'e5' \
         BEGIN SELECT RAISE(FAIL, 'refused by the test'); END",
    ];
    const POSTGRES: &[&str] = &[
        "CREATE FUNCTION refuse_e5() RETURNS trigger AS $$ BEGIN \
         IF NEW.name = 'e5' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
         RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_e5 BEFORE INSERT ON entities FOR EACH ROW \
         EXECUTE FUNCTION refuse_e5()",
    ];

    async fn check(harness: common::Harness, refuse: &[&str], allow: &str) {
        let store = &harness.store;
        let db = sea_orm::Database::connect(&harness.url).await.unwrap();
        for statement in refuse {
            db.execute_unprepared(statement).await.unwrap();
        }
        let batch = || Batch {
            upserts: (0..10)
                .map(|n| component(&format!("e{n}"), "team-a", "url:x"))
                .collect(),
            ..Batch::default()
        };
        let refused = store.apply_batch(batch()).await;
        assert!(refused.is_err(), "the trigger refuses e5: {refused:?}");
        assert_eq!(store.entity_count().await.unwrap(), 0);
        for n in 0..10 {
            let entity_ref = format!("component:default/e{n}");
            assert!(store.entity_by_ref(&entity_ref).await.unwrap().is_none());
        }
        assert!(store.changes_after(0, 100).await.unwrap().is_empty());

        db.execute_unprepared(allow).await.unwrap();
        let applied = store.apply_batch(batch()).await.unwrap();
        assert_eq!(applied.created, 10);
        assert_eq!(store.entity_count().await.unwrap(), 10);
    }

    #[tokio::test]
    async fn sqlite() {
        check(common::sqlite().await, SQLITE, "DROP TRIGGER refuse_e5").await;
    }

    #[tokio::test]
    async fn postgres() {
        check(
            common::postgres().await,
            POSTGRES,
            "DROP TRIGGER refuse_e5 ON entities",
        )
        .await;
    }
}
