//! Deriving a batch's columns while the writer looks up the rows the batch replaces.
//!
//! Deriving an upsert's columns (its search document, facts and body text) is CPU work, about
//! 16 µs an entity; looking up the stored rows waits on the database's thread. Only the
//! upserts whose content changed need their columns, and which those are is known only once
//! the lookup returns. So one blocking thread starts deriving them in order once the batch's
//! transaction has begun (or while it waits for the writer); when the lookup returns, the
//! unchanged ones are marked to skip and a second thread joins in on what is left. Nothing is
//! derived twice: both threads take the next upsert from one counter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::{EntityColumns, Prepared};
use crate::{Batch, Result, StoreError};

/// Columns derived ahead of the lookup, and the thread deriving them.
#[derive(Debug)]
pub(crate) struct DeriveAhead {
    shared: Arc<Shared>,
    /// Taken by [`DeriveAhead::finish`].
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for DeriveAhead {
    /// A batch that fails (or whose caller goes away) before its lookup returns stops the
    /// thread deriving for it.
    fn drop(&mut self) {
        self.shared
            .next
            .fetch_max(self.shared.slots.len(), Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Shared {
    batch: Arc<Batch>,
    refs: Vec<String>,
    hashes: Vec<String>,
    with_facts: bool,
    /// The next upsert to derive (both threads take from it).
    next: AtomicUsize,
    /// Upserts found unchanged: not derived.
    skip: Vec<AtomicBool>,
    /// Each upsert's columns, once derived.
    slots: Vec<OnceLock<Result<EntityColumns>>>,
}

impl Shared {
    /// Derives upserts until none is left.
    fn derive_rest(&self) {
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.slots.len() {
                return;
            }
            if self.skip[index].load(Ordering::Relaxed) {
                continue;
            }
            let columns = EntityColumns::from_upsert(
                &self.batch.upserts[index],
                &self.refs[index],
                &self.hashes[index],
                self.with_facts,
            );
            // Each index is taken once, so the slot is empty.
            let _ = self.slots[index].set(columns);
        }
    }
}

impl DeriveAhead {
    /// Starts deriving the columns of every upsert of `batch` on a blocking thread.
    pub(crate) fn start(batch: Arc<Batch>, prepared: &Prepared, with_facts: bool) -> Self {
        let count = batch.upserts.len();
        let shared = Arc::new(Shared {
            batch,
            refs: prepared.upsert_refs.clone(),
            hashes: prepared.upsert_hashes.clone(),
            with_facts,
            next: AtomicUsize::new(0),
            skip: (0..count).map(|_| AtomicBool::new(false)).collect(),
            slots: (0..count).map(|_| OnceLock::new()).collect(),
        });
        let working = Arc::clone(&shared);
        let worker = tokio::task::spawn_blocking(move || working.derive_rest());
        DeriveAhead {
            shared,
            worker: Some(worker),
        }
    }

    /// Derives the rest of the upserts `wanted` says changed, on the worker's thread and one
    /// more, and answers every upsert's columns (`None` where not derived).
    pub(crate) async fn finish(
        mut self,
        wanted: &[bool],
    ) -> Result<Vec<Option<Result<EntityColumns>>>> {
        let shared = Arc::clone(&self.shared);
        tracing::debug!(
            taken = shared.next.load(Ordering::Relaxed).min(shared.slots.len()),
            upserts = shared.slots.len(),
            "columns derived ahead of the lookup"
        );
        for (skip, wanted) in shared.skip.iter().zip(wanted) {
            skip.store(!wanted, Ordering::Relaxed);
        }
        let helping = Arc::clone(&shared);
        let helper = tokio::task::spawn_blocking(move || helping.derive_rest());
        for handle in self.worker.take().into_iter().chain([helper]) {
            handle.await.map_err(|error| match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => StoreError::Stopping(format!("deriving columns stopped: {error}")),
            })?;
        }
        // Both threads are done: nothing is left for dropping `self` to stop.
        drop(self);
        let shared = Arc::into_inner(shared).ok_or_else(|| {
            StoreError::Corrupt("a thread deriving columns outlived its batch".into())
        })?;
        Ok(shared.slots.into_iter().map(OnceLock::into_inner).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{CatalogStore, Upsert};

    fn component(index: usize, description: &str) -> Upsert {
        Upsert {
            body: json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": format!("svc-{index}"), "description": description,
                             "tags": ["java", format!("t{}", index % 7)]},
                "spec": {"type": "service", "lifecycle": "production", "owner": format!("team-{}", index % 5)},
            }),
            edges: Vec::new(),
            location_key: Some("url:https://example.com/catalog-info.yaml".into()),
            origin_location: None,
            parent_ref: None,
            commit: None,
        }
    }

    /// What each wanted upsert gets is what deriving it in place gives, however the two
    /// threads shared the work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn columns_derived_ahead_are_those_derived_in_place() {
        let batch = Arc::new(Batch {
            upserts: (0..300).map(|index| component(index, "first")).collect(),
            ..Batch::default()
        });
        let prepared = super::super::prepare(&batch).unwrap();
        let ahead = DeriveAhead::start(Arc::clone(&batch), &prepared, true);
        let wanted: Vec<bool> = (0..300).map(|index| index % 3 != 0).collect();
        let derived = ahead.finish(&wanted).await.unwrap();
        assert_eq!(derived.len(), 300);
        for (index, columns) in derived.into_iter().enumerate() {
            if !wanted[index] {
                continue;
            }
            let ahead = columns.expect("a wanted upsert is derived").unwrap();
            let in_place = EntityColumns::from_upsert(
                &batch.upserts[index],
                &prepared.upsert_refs[index],
                &prepared.upsert_hashes[index],
                true,
            )
            .unwrap();
            assert_eq!(ahead.entity_ref, in_place.entity_ref);
            assert_eq!(ahead.content_hash, in_place.content_hash);
            assert_eq!(ahead.body, in_place.body);
            assert_eq!(ahead.search_doc, in_place.search_doc);
            assert_eq!(ahead.facts.is_some(), in_place.facts.is_some());
        }
    }

    /// Dropped before its lookup returns (the batch failed, or its caller went away), it stops
    /// its thread instead of deriving the rest for nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_it_stops_its_thread() {
        const UPSERTS: usize = 5_000;
        let batch = Arc::new(Batch {
            upserts: (0..UPSERTS)
                .map(|index| component(index, "first"))
                .collect(),
            ..Batch::default()
        });
        let prepared = super::super::prepare(&batch).unwrap();
        let ahead = DeriveAhead::start(Arc::clone(&batch), &prepared, false);
        let shared = Arc::clone(&ahead.shared);
        drop(ahead);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while Arc::strong_count(&shared) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(Arc::strong_count(&shared), 1, "the thread ended");
        let derived = shared
            .slots
            .iter()
            .filter(|slot| slot.get().is_some())
            .count();
        assert!(derived < UPSERTS, "it stopped early: {derived} derived");
    }

    /// A batch partly unchanged writes exactly the changed upserts, with their new content,
    /// whether its columns were derived in place or ahead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_partly_unchanged_write_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = CatalogStore::connect(&url).await.unwrap();
        let batch = |description: &dyn Fn(usize) -> &'static str| Batch {
            upserts: (0..200)
                .map(|index| component(index, description(index)))
                .collect(),
            ..Batch::default()
        };
        let deriving_ahead = || store.inner.derive_ahead.load(Ordering::Relaxed);
        let created = store.apply_batch(batch(&|_| "first")).await.unwrap();
        assert_eq!(created.created, 200);
        assert!(deriving_ahead());
        let unchanged = store.apply_batch(batch(&|_| "first")).await.unwrap();
        assert_eq!((unchanged.unchanged, unchanged.updated), (200, 0));
        assert!(
            !deriving_ahead(),
            "a batch that changed nothing turns it off"
        );

        // Derived in place, then ahead, with three in four unchanged.
        let description = |round: usize, index: usize| match round {
            0 => "edited 1",
            _ if index.is_multiple_of(4) => "edited 2",
            _ => "edited 1",
        };
        for (round, updated, ahead_after) in [(0, 200, true), (1, 50, false)] {
            let outcome = store
                .apply_batch(batch(&|index| description(round, index)))
                .await
                .unwrap();
            assert_eq!(
                (outcome.updated, outcome.unchanged),
                (updated, 200 - updated),
                "round {round}"
            );
            assert_eq!(deriving_ahead(), ahead_after, "round {round}");
            for index in [0, 4, 5, 199] {
                let stored = store
                    .entity_by_ref(&format!("component:default/svc-{index}"))
                    .await
                    .unwrap()
                    .unwrap();
                let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
                assert_eq!(
                    body["metadata"]["description"],
                    description(round, index),
                    "round {round}, svc-{index}"
                );
            }
        }
    }
}
