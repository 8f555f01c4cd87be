//! Reads on SQLite outside sqlx, on connections of the store's own.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement and
//! every row across channels to the task that asked. For the catalog's common reads — an
//! entity by ref or uid, a page of 20, their relations — the hand-offs cost more than SQLite:
//! at a million entities, by-ref lookups through sqlx ran at about 4,000/s on two cores with
//! 36% of the CPU in those threads and half of the rest in the kernel, switching between them
//! and the runtime's workers. Here each read runs whole on a blocking thread and hands back
//! every row at once: one hand-off per read instead of one per row. Statements that stream
//! (every entity, for a rebuild) stay on sqlx.
//!
//! Reads never run on the runtime's workers: a page that is not in the operating system's
//! cache is a disk read (0.4 ms on average on the benchmark's machine, whose kernel evicts file
//! pages idle for a minute), and a worker waiting on the disk serves nothing else meanwhile.
//! Point reads (a few B-tree descents) have reader threads of their own: one per core and one
//! more take them while their pages are in memory, more while they wait on the disk, so that
//! waits overlap ([`crate::point_readers`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::{FromSql, Value as SqliteValue, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::point_readers::PointReaders;
use crate::sql::Sql;
use crate::{Result, StoreError};

/// Statements (a page, a count, relations) at a time. Each is CPU work on mostly cached
/// pages: more at once than cores only interleave them (and each new connection starts with a
/// cold cache). Others wait their turn, first come first served.
const STATEMENT_TURNS: usize = 4;
/// Page cache per connection: the indexes' upper levels and the hot pages. The others are
/// read from the operating system's cache. No memory map: each connection's map of the file
/// counts in the process's resident memory, pages the other connections mapped included (four
/// connections mapping a gigabyte each took a million-entity `cadastre up` from 3.4 to 4.5 GiB
/// peak under load).
const CACHE_KIB: i64 = 16 << 10;
/// Prepared statements kept per connection (the text of a filtered query varies with it).
const STATEMENT_CACHE: usize = 64;

/// A pool of read-only connections to one SQLite file.
#[derive(Debug)]
pub(crate) struct SqliteReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Turns of whole statements, one permit per connection of `idle`.
    statement_turns: Arc<tokio::sync::Semaphore>,
    /// The threads of point reads, each with its own connection.
    point_readers: PointReaders,
}

/// A row read here: its values by column.
#[derive(Debug)]
pub(crate) struct OwnedRow {
    columns: Arc<[String]>,
    values: Vec<SqliteValue>,
}

impl OwnedRow {
    /// The value of `column`, decoded as SQLite's own API decodes it.
    pub(crate) fn get<T: FromSql>(&self, column: &str) -> Result<T> {
        decode(self.columns.iter().map(String::as_str), column, |index| {
            Ok(ValueRef::from(&self.values[index]))
        })
    }
}

impl SqliteReads {
    /// Reads on the database file at `path`, which must exist (the store opened it).
    pub(crate) fn open(path: &Path) -> Result<SqliteReads> {
        let point_path = path.to_owned();
        let reads = SqliteReads {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            statement_turns: Arc::new(tokio::sync::Semaphore::new(STATEMENT_TURNS)),
            point_readers: PointReaders::new(Box::new(move || connect(&point_path))),
        };
        // Fails now, not at the first read, if the file cannot be read.
        let connection = connect(path)?;
        reads.give_back(connection);
        Ok(reads)
    }

    /// An idle connection, or a new one; the caller holds a turn, so there are never more
    /// than there are turns.
    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().map_err(|_| poisoned())?.pop();
        match idle {
            Some(connection) => Ok(connection),
            None => connect(&self.path),
        }
    }

    fn give_back(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
    }

    /// Runs `read` on a blocking thread (the caller holds a turn, which `read` gives back).
    async fn on_blocking_thread<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reads = Arc::clone(self);
        tokio::task::spawn_blocking(move || reads.with(read))
            .await
            .map_err(|error| StoreError::Corrupt(format!("a SQLite read failed: {error}")))?
    }

    /// Runs `read` on a connection (the caller holds a turn); a connection that failed
    /// mid-way is dropped rather than reused.
    fn with<T>(&self, read: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut connection = self.take()?;
        let done = read(&mut connection);
        if done.is_ok() {
            self.give_back(connection);
        }
        done
    }

    /// Runs `read`, which reads a few pages (a point read), in one read transaction on a
    /// reader thread: its statements see one state of the store.
    pub(crate) async fn point_read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Snapshot<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.point_readers.submit(Box::new(move |connection| {
            let (read, fit) = match connection {
                Ok(connection) => {
                    let read = in_snapshot(connection, read);
                    let fit = read.is_ok();
                    (read, fit)
                }
                Err(error) => (Err(error), false),
            };
            // The asker may have gone.
            let _ = answer.send(read);
            fit
        }))?;
        answered
            .await
            .map_err(|_| StoreError::Corrupt("a SQLite read failed".into()))?
    }

    /// Every row of `sql`.
    pub(crate) async fn rows(self: &Arc<Self>, sql: Sql) -> Result<Vec<OwnedRow>> {
        let (text, values) = bound(sql)?;
        let turn = Arc::clone(&self.statement_turns)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        self.on_blocking_thread(move |connection| {
            let _turn = turn;
            Ok(all_rows(connection, &text, values)?)
        })
        .await
    }
}

/// A connection of the readers to the database file at `path`.
fn connect(path: &Path) -> Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Opened read-write (readers of a WAL database need its shared-memory file) but
    // refusing writes.
    connection.execute_batch(&format!(
        "PRAGMA query_only = ON; PRAGMA mmap_size = 0; PRAGMA cache_size = -{CACHE_KIB};"
    ))?;
    Ok(connection)
}

/// Runs `read` in a read transaction on `connection`.
fn in_snapshot<T>(
    connection: &mut Connection,
    read: impl FnOnce(&Snapshot<'_>) -> Result<T>,
) -> Result<T> {
    // Cached: `Connection::transaction` parses its BEGIN and COMMIT on every call.
    connection.prepare_cached("BEGIN")?.execute([])?;
    let read = read(&Snapshot { connection })?;
    // Nothing was written: ending the read transaction either way is the same. On an error
    // above, the connection is dropped, which ends it.
    connection.prepare_cached("COMMIT")?.execute([])?;
    Ok(read)
}

/// A statement's text and values, bound as SQLite takes them.
#[derive(Debug)]
pub(crate) struct Bound {
    text: String,
    values: Vec<SqliteValue>,
}

impl Bound {
    pub(crate) fn new(sql: Sql) -> Result<Bound> {
        let (text, values) = bound(sql)?;
        Ok(Bound { text, values })
    }
}

/// A connection in a read transaction ([`SqliteReads::point_read`]).
#[derive(Debug)]
pub(crate) struct Snapshot<'a> {
    connection: &'a Connection,
}

impl Snapshot<'_> {
    /// Each row of `statement`, as `map` makes it: decoded where it is read, straight into
    /// what the caller keeps.
    pub(crate) fn rows<T>(
        &self,
        statement: &Bound,
        mut map: impl FnMut(&NamedRow<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut prepared = self.connection.prepare_cached(&statement.text)?;
        let mut rows = prepared.query(rusqlite::params_from_iter(&statement.values))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let names = row.as_ref().column_names();
            out.push(map(&NamedRow { names: &names, row })?);
        }
        Ok(out)
    }
}

/// A row being read, its columns by name.
#[derive(Debug)]
pub(crate) struct NamedRow<'a> {
    names: &'a [&'a str],
    row: &'a rusqlite::Row<'a>,
}

impl NamedRow<'_> {
    /// The value of `column`, decoded as SQLite's own API decodes it.
    pub(crate) fn get<T: FromSql>(&self, column: &str) -> Result<T> {
        decode(self.names.iter().copied(), column, |index| {
            self.row.get_ref(index)
        })
    }
}

/// The value of `column`, found among a row's column `names` and read with `value_at`, decoded
/// as SQLite's own API decodes it.
fn decode<'n, 'v, T: FromSql>(
    mut names: impl Iterator<Item = &'n str>,
    column: &str,
    value_at: impl FnOnce(usize) -> rusqlite::Result<ValueRef<'v>>,
) -> Result<T> {
    let corrupt =
        |error: &dyn std::fmt::Display| StoreError::Corrupt(format!("column {column}: {error}"));
    let index = names
        .position(|name| name == column)
        .ok_or_else(|| StoreError::Corrupt(format!("no column {column} in the row")))?;
    let value = value_at(index).map_err(|error| corrupt(&error))?;
    T::column_result(value).map_err(|error| corrupt(&error))
}

/// The statement's text and its values as SQLite takes them.
fn bound(sql: Sql) -> Result<(String, Vec<SqliteValue>)> {
    let (text, values) = sql.into_parts();
    let values = values
        .into_iter()
        .map(sqlite_value)
        .collect::<Result<Vec<_>>>()?;
    Ok((text, values))
}

fn all_rows(
    connection: &Connection,
    text: &str,
    values: Vec<SqliteValue>,
) -> rusqlite::Result<Vec<OwnedRow>> {
    let mut statement = connection.prepare_cached(text)?;
    let columns: Arc<[String]> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let width = columns.len();
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..width)
            .map(|index| row.get::<_, SqliteValue>(index))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(OwnedRow {
            columns: Arc::clone(&columns),
            values,
        });
    }
    Ok(out)
}

/// A bound value as sqlx binds it on SQLite (booleans as 0 and 1, JSON as text).
fn sqlite_value(value: sea_orm::Value) -> Result<SqliteValue> {
    use sea_orm::Value as V;
    let integer = |n: Option<i64>| n.map_or(SqliteValue::Null, SqliteValue::Integer);
    Ok(match value {
        V::Bool(b) => integer(b.map(i64::from)),
        V::TinyInt(n) => integer(n.map(i64::from)),
        V::SmallInt(n) => integer(n.map(i64::from)),
        V::Int(n) => integer(n.map(i64::from)),
        V::BigInt(n) => integer(n),
        V::TinyUnsigned(n) => integer(n.map(i64::from)),
        V::SmallUnsigned(n) => integer(n.map(i64::from)),
        V::Unsigned(n) => integer(n.map(i64::from)),
        V::BigUnsigned(n) => match n {
            Some(n) => SqliteValue::Integer(i64::try_from(n).map_err(|_| {
                StoreError::InvalidArgument(format!("{n} is too large for the database"))
            })?),
            None => SqliteValue::Null,
        },
        V::Float(x) => x.map_or(SqliteValue::Null, |x| SqliteValue::Real(f64::from(x))),
        V::Double(x) => x.map_or(SqliteValue::Null, SqliteValue::Real),
        V::String(text) => text.map_or(SqliteValue::Null, SqliteValue::Text),
        V::Char(c) => c.map_or(SqliteValue::Null, |c| SqliteValue::Text(c.to_string())),
        V::Bytes(bytes) => bytes.map_or(SqliteValue::Null, SqliteValue::Blob),
        V::Json(json) => json.map_or(SqliteValue::Null, |json| {
            SqliteValue::Text(json.to_string())
        }),
        other => {
            return Err(StoreError::Corrupt(format!(
                "a value SQLite reads cannot bind: {other:?}"
            )));
        }
    })
}

fn closed() -> StoreError {
    StoreError::Corrupt("the SQLite readers' pool is closed".into())
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("the SQLite readers' pool: a read panicked holding it".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Batch, CatalogStore, Upsert};

    fn group(name: &str) -> Upsert {
        Upsert {
            body: json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": {"name": name},
                "spec": {"type": "team", "children": []},
            }),
            edges: vec![cadastre_model::RelationEdge {
                source: format!("group:default/{name}"),
                relation_type: "ownerOf".into(),
                target: "component:default/a".into(),
            }],
            location_key: None,
            origin_location: None,
            parent_ref: None,
            commit: None,
        }
    }

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

    /// Reads here and through sqlx agree: a second store on the same file without them.
    #[tokio::test]
    async fn reads_here_serve_what_sqlx_serves() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = CatalogStore::connect(&url).await.unwrap();
        assert!(store.sqlite_reads().is_some(), "a SQLite file is read here");
        let pooled = CatalogStore::open(sea_orm::Database::connect(&url).await.unwrap())
            .await
            .unwrap();
        assert!(pooled.sqlite_reads().is_none());
        store
            .apply_batch(Batch {
                upserts: vec![
                    component("a", "team-a"),
                    component("b", "team-a"),
                    group("team-a"),
                ],
                ..Batch::default()
            })
            .await
            .unwrap();

        for entity_ref in ["component:default/a", "group:default/team-a"] {
            let here = store.entity_by_ref(entity_ref).await.unwrap().unwrap();
            assert_eq!(
                Some(&here),
                pooled.entity_by_ref(entity_ref).await.unwrap().as_ref()
            );
            let by_uid = store.entity_by_uid(&here.uid).await.unwrap();
            assert_eq!(by_uid.as_ref(), Some(&here));
        }
        let a = store
            .entity_by_ref("component:default/a")
            .await
            .unwrap()
            .unwrap();
        let body = a.body_json().unwrap();
        assert_eq!(body["metadata"]["uid"], json!(a.uid));
        assert_eq!(
            body["relations"],
            json!([{"type": "ownedBy", "targetRef": "group:default/team-a"}])
        );
        let group = store
            .entity_by_ref("group:default/team-a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            group.body_json().unwrap()["relations"],
            json!([{"type": "ownerOf", "targetRef": "component:default/a"}])
        );
        assert_eq!(
            store.entity_by_ref("component:default/zz").await.unwrap(),
            None
        );
        assert_eq!(store.entity_by_uid("no-such-uid").await.unwrap(), None);

        // Statements: by refs (order kept, a missing one empty), and filtered pages (hot
        // columns, the document, the maintained counts) with their totals and cursors.
        let refs = [
            "component:default/b",
            "component:default/zz",
            "component:default/a",
        ]
        .map(str::to_owned);
        assert_eq!(
            store.entities_by_refs(&refs, None).await.unwrap(),
            pooled.entities_by_refs(&refs, None).await.unwrap()
        );
        let page = |filter: &str| crate::EntityQuery {
            filter: cadastre_query::legacy_filter::parse(&[filter]).unwrap(),
            limit: 1,
            include_total: true,
            ..crate::EntityQuery::default()
        };
        for filter in [
            "kind=component,spec.owner=team-a",
            "metadata.name=b",
            "kind=group",
        ] {
            let here = store.query_entities(&page(filter)).await.unwrap();
            let there = pooled.query_entities(&page(filter)).await.unwrap();
            assert_eq!(here.items, there.items, "{filter}");
            assert_eq!(here.total_items, there.total_items, "{filter}");
            assert_eq!(here.next_cursor, there.next_cursor, "{filter}");
        }
        let first = store.query_entities(&page("kind=component")).await.unwrap();
        assert_eq!((first.items.len(), first.total_items), (1, 2));
    }

    /// A lookup by ref has readers of its own: it is served while every statement turn is
    /// taken (by pages waiting on the disk, say), and many lookups at once all finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_do_not_wait_behind_statements() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = CatalogStore::connect(&url).await.unwrap();
        store
            .apply_batch(Batch {
                upserts: vec![component("a", "team-a"), group("team-a")],
                ..Batch::default()
            })
            .await
            .unwrap();
        let reads = std::sync::Arc::clone(store.sqlite_reads().unwrap());
        let _statements = std::sync::Arc::clone(&reads.statement_turns)
            .acquire_many_owned(super::STATEMENT_TURNS as u32)
            .await
            .unwrap();
        let lookups =
            (0..3 * crate::point_readers::WIDE).map(|_| store.entity_by_ref("component:default/a"));
        let found = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            futures::future::join_all(lookups),
        )
        .await
        .expect("lookups served while every statement turn is held");
        for entity in found {
            assert_eq!(entity.unwrap().unwrap().name, "a");
        }
    }
}
