//! Point reads on SQLite (one entity by ref or uid, with its relations) on connections of
//! their own, run in the calling task.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement and
//! every row across channels. For a lookup of a handful of pages the hand-offs cost several
//! times the lookup: at a million entities, by-ref lookups through sqlx ran at about 4,000/s
//! on two cores with 36% of the CPU in those threads and half of the rest in the kernel,
//! switching between them and the runtime's workers. Here a lookup is a few B-tree descents
//! on pages that are memory-mapped or in the connection's cache, microseconds of work, done
//! on the caller's thread like any other short computation.
//!
//! Each lookup reads in one transaction, so the entity and its relations are of one commit.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};

use crate::{Result, StoreError, StoredEntity};

/// Connections kept open between lookups. Lookups never wait for a connection: one that
/// finds none idle opens another. As lookups do not yield, at most one per thread running
/// them is open at a time.
const MAX_IDLE: usize = 8;
/// Page cache per connection. Most pages come from the memory map or the operating
/// system's cache; this keeps the indexes' upper levels.
const CACHE_KIB: i64 = 16 << 10;

/// A pool of read-only connections to one SQLite file.
#[derive(Debug)]
pub(crate) struct PointReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// What a lookup is by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    Ref(&'a str),
    Uid(&'a str),
}

impl PointReader {
    /// Point reads on the database file at `path`, which must exist (the store opened it).
    pub(crate) fn open(path: &Path) -> Result<PointReader> {
        let reader = PointReader {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        // Fails now, not at the first lookup, if the file cannot be read.
        let connection = reader.connect()?;
        reader.give_back(connection);
        Ok(reader)
    }

    fn connect(&self) -> Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        // Read-write opening (WAL readers need the shared-memory file) but no writes.
        connection.execute_batch(&format!(
            "PRAGMA query_only = ON; PRAGMA mmap_size = 1073741824; \
                 PRAGMA cache_size = -{CACHE_KIB};"
        ))?;
        Ok(connection)
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().map_err(|_| poisoned())?.pop();
        match idle {
            Some(connection) => Ok(connection),
            None => self.connect(),
        }
    }

    fn give_back(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(connection);
        }
    }

    /// The stored entity (body as stored) and the relations it is the source of.
    pub(crate) fn entity(&self, key: Key<'_>) -> Result<Option<(StoredEntity, Relations)>> {
        let mut connection = self.take()?;
        let found = read_entity(&mut connection, key);
        // A connection that failed mid-way is dropped rather than reused.
        if found.is_ok() {
            self.give_back(connection);
        }
        Ok(found?)
    }
}

/// `(type, target)` of each relation whose source is the entity.
pub(crate) type Relations = Vec<(String, String)>;

fn read_entity(
    connection: &mut Connection,
    key: Key<'_>,
) -> rusqlite::Result<Option<(StoredEntity, Relations)>> {
    let snapshot = connection.transaction()?;
    let (sql, value) = match key {
        Key::Ref(entity_ref) => (BY_REF, entity_ref),
        Key::Uid(uid) => (BY_UID, uid),
    };
    let entity = snapshot
        .prepare_cached(sql)?
        .query_row(params![value], |row| {
            Ok(StoredEntity {
                entity_ref: row.get(0)?,
                uid: row.get(1)?,
                etag: row.get(2)?,
                kind: row.get(3)?,
                namespace: row.get(4)?,
                name: row.get(5)?,
                body: row.get(6)?,
                generation: row.get(7)?,
                content_hash: row.get(8)?,
                location_key: row.get(9)?,
                origin_location: row.get(10)?,
                parent_ref: row.get(11)?,
                orphan: row.get(12)?,
                created_at: row.get(13)?,
                updated_at: row.get(14)?,
            })
        })
        .optional()?;
    let Some(entity) = entity else {
        return Ok(None);
    };
    let relations = snapshot
        .prepare_cached(RELATIONS_OF)?
        .query_map(params![entity.entity_ref], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<Relations>>()?;
    // Nothing was written: ending the read transaction either way is the same.
    snapshot.commit()?;
    Ok(Some((entity, relations)))
}

const BY_REF: &str = "SELECT e.entity_ref, e.uid, e.etag, e.kind, e.namespace, e.name, e.body, \
    e.generation, e.content_hash, e.location_key, e.origin_location, e.parent_ref, e.orphan, \
    e.created_at, e.updated_at FROM entities e WHERE e.entity_ref = ?1";
const BY_UID: &str = "SELECT e.entity_ref, e.uid, e.etag, e.kind, e.namespace, e.name, e.body, \
    e.generation, e.content_hash, e.location_key, e.origin_location, e.parent_ref, e.orphan, \
    e.created_at, e.updated_at FROM entities e WHERE e.uid = ?1";
const RELATIONS_OF: &str = "SELECT type, target_ref FROM relations WHERE source_ref = ?1";

fn poisoned() -> StoreError {
    StoreError::Corrupt("the SQLite point reader's pool: a lookup panicked holding it".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Batch, CatalogStore, Upsert};

    fn component(name: &str, owner: &str) -> Upsert {
        Upsert {
            body: json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": name},
                "spec": {"type": "service", "lifecycle": "production", "owner": owner},
            }),
            edges: vec![cadastre_model::RelationEdge {
                source: format!("component:default/{name}"),
                relation_type: "ownedBy".into(),
                target: format!("group:default/{owner}"),
            }],
            location_key: None,
            origin_location: None,
            parent_ref: None,
            commit: None,
        }
    }

    #[tokio::test]
    async fn point_reads_serve_what_the_pool_serves() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = CatalogStore::connect(&url).await.unwrap();
        assert!(
            store.point_reads().is_some(),
            "a SQLite file gets point reads"
        );
        store
            .apply_batch(Batch {
                upserts: vec![component("a", "team-a"), component("b", "team-a")],
                ..Batch::default()
            })
            .await
            .unwrap();

        // By ref and by uid through point reads; by refs through sqlx.
        let by_ref = store.entity_by_ref("component:default/a").await.unwrap();
        let by_ref = by_ref.expect("stored");
        let by_uid = store.entity_by_uid(&by_ref.uid).await.unwrap().unwrap();
        let pooled = store
            .entities_by_refs(&["component:default/a".to_owned()], None)
            .await
            .unwrap()
            .pop()
            .flatten()
            .unwrap();
        assert_eq!(by_ref, pooled);
        assert_eq!(by_uid, pooled);
        let body = by_ref.body_json().unwrap();
        assert_eq!(body["metadata"]["uid"], json!(by_ref.uid));
        assert_eq!(
            body["relations"],
            json!([{"type": "ownedBy", "targetRef": "group:default/team-a"}])
        );

        // A second batch: read after it, as the pool reads it; absent entities are `None`.
        store
            .apply_batch(Batch {
                upserts: vec![Upsert {
                    body: json!({
                        "apiVersion": "backstage.io/v1alpha1",
                        "kind": "Group",
                        "metadata": {"name": "team-a"},
                        "spec": {"type": "team", "children": []},
                    }),
                    edges: vec![cadastre_model::RelationEdge {
                        source: "group:default/team-a".into(),
                        relation_type: "ownerOf".into(),
                        target: "component:default/a".into(),
                    }],
                    location_key: None,
                    origin_location: None,
                    parent_ref: None,
                    commit: None,
                }],
                ..Batch::default()
            })
            .await
            .unwrap();
        let group = store.entity_by_ref("group:default/team-a").await.unwrap();
        let pooled = store
            .entities_by_refs(&["group:default/team-a".to_owned()], None)
            .await
            .unwrap()
            .pop()
            .flatten();
        assert_eq!(group, pooled);
        let relations = group.unwrap().body_json().unwrap()["relations"].clone();
        assert_eq!(
            relations,
            json!([{"type": "ownerOf", "targetRef": "component:default/a"}])
        );
        assert_eq!(
            store.entity_by_ref("component:default/zz").await.unwrap(),
            None
        );
        assert_eq!(store.entity_by_uid("no-such-uid").await.unwrap(), None);
    }
}
