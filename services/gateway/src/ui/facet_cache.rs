//! Facet counts of the catalog page, kept for a moment per filter set.
//!
//! At a million entities, counting the facets of a broad view (owners, tags and namespaces of
//! half a million components) costs about a hundred milliseconds of CPU, while the rows of the
//! page cost a few. Many people open the same few views, so each view's counts are computed
//! once and reused while younger than [`FRESH`]. When they age, the next request recomputes
//! them and everyone else is served the previous counts meanwhile (for at most [`STALE`]), so
//! only one request per view and interval pays for counting, and concurrent requests for a
//! view nobody counted yet wait for one computation instead of starting their own.
//!
//! Counts are therefore up to [`FRESH`] behind the catalog (a little more while a recount
//! runs); the rows of the page never are.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio::time::{Duration, Instant};

/// Counts younger than this are served as they are.
pub(crate) const FRESH: Duration = Duration::from_secs(2);
/// Older counts are served while a recount runs, up to this age.
pub(crate) const STALE: Duration = Duration::from_secs(30);
/// Views kept; past this, views older than [`STALE`] are forgotten (all of them if that is
/// not enough).
const MAX_VIEWS: usize = 1024;

/// One view's counts: the computation under way or done, and the last complete counts.
struct Slot<T> {
    cell: Arc<OnceCell<Arc<T>>>,
    started: Instant,
    previous: Option<(Arc<T>, Instant)>,
}

impl<T> Slot<T> {
    fn new(now: Instant) -> Slot<T> {
        Slot {
            cell: Arc::new(OnceCell::new()),
            started: now,
            previous: None,
        }
    }
}

/// Values by key (a normalised filter set), as described in the module's documentation.
pub(crate) struct FacetCache<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
}

impl<T> std::fmt::Debug for FacetCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let views = self.slots.lock().map_or(0, |slots| slots.len());
        f.debug_struct("FacetCache").field("views", &views).finish()
    }
}

impl<T> Default for FacetCache<T> {
    fn default() -> Self {
        FacetCache {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> FacetCache<T> {
    /// The value for `key`: kept, or computed with `compute` (once, however many ask at a
    /// time). An error is returned to whoever computed it and nothing is kept, so the next
    /// request tries again.
    pub(crate) async fn get_or_compute<E, F, Fut>(&self, key: &str, compute: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cell = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if !slots.contains_key(key) && slots.len() >= MAX_VIEWS {
                slots.retain(|_, slot| now.duration_since(slot.started) < STALE);
                if slots.len() >= MAX_VIEWS {
                    slots.clear();
                }
            }
            let slot = slots
                .entry(key.to_owned())
                .or_insert_with(|| Slot::new(now));
            match slot.cell.get() {
                Some(value) if now.duration_since(slot.started) < FRESH => {
                    return Ok(Arc::clone(value));
                }
                Some(value) => {
                    // Aged: this request recounts; others get these counts meanwhile.
                    let value = Arc::clone(value);
                    *slot = Slot {
                        previous: Some((value, slot.started)),
                        ..Slot::new(now)
                    };
                }
                None => {
                    // A recount under way (one that failed is retried once it is as old as
                    // fresh counts may be).
                    if let Some((value, counted)) = &slot.previous
                        && now.duration_since(slot.started) < FRESH
                        && now.duration_since(*counted) < STALE
                    {
                        return Ok(Arc::clone(value));
                    }
                }
            }
            Arc::clone(&slot.cell)
        };
        let value = cell
            .get_or_try_init(|| async { compute().await.map(Arc::new) })
            .await?;
        Ok(Arc::clone(value))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A computation that counts its calls and answers with that count, after `delay`.
    async fn counted(
        calls: &AtomicUsize,
        delay: Duration,
    ) -> Result<usize, std::convert::Infallible> {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(delay).await;
        Ok(call)
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_for_a_new_view_share_one_computation() {
        let cache = FacetCache::default();
        let calls = AtomicUsize::new(0);
        let answers = futures::future::join_all((0..8).map(|_| {
            cache.get_or_compute("kind=component", || {
                counted(&calls, Duration::from_millis(100))
            })
        }))
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|answer| **answer.as_ref().unwrap() == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_counts_are_reused_and_aged_ones_recounted_while_others_get_the_old() {
        let cache = FacetCache::default();
        let calls = AtomicUsize::new(0);
        let slow = Duration::from_millis(500);
        let get = || cache.get_or_compute("", || counted(&calls, slow));
        assert_eq!(*get().await.unwrap(), 1);
        tokio::time::advance(FRESH / 2).await;
        assert_eq!(*get().await.unwrap(), 1, "fresh counts are kept");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(FRESH).await;
        // One request recounts; one arriving meanwhile gets the previous counts at once.
        let recount = get();
        let meanwhile = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let started = Instant::now();
            let answer = *get().await.unwrap();
            (answer, started.elapsed())
        };
        let (recounted, (old, waited)) = tokio::join!(recount, meanwhile);
        assert_eq!(*recounted.unwrap(), 2);
        assert_eq!(old, 1);
        assert!(waited < slow, "the old counts are served without waiting");
        assert_eq!(*get().await.unwrap(), 2, "then the new counts");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn counts_past_the_stale_limit_are_not_served() {
        let cache = FacetCache::default();
        let calls = AtomicUsize::new(0);
        let get = || cache.get_or_compute("", || counted(&calls, Duration::ZERO));
        assert_eq!(*get().await.unwrap(), 1);
        tokio::time::advance(STALE * 2).await;
        assert_eq!(*get().await.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_count_is_not_kept() {
        let cache: FacetCache<usize> = FacetCache::default();
        let failed: Result<_, &str> = cache.get_or_compute("", || async { Err("down") }).await;
        assert_eq!(failed.unwrap_err(), "down");
        let answer: Result<_, &str> = cache.get_or_compute("", || async { Ok(7) }).await;
        assert_eq!(*answer.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn views_are_kept_apart_and_bounded() {
        let cache = FacetCache::default();
        for view in 0..MAX_VIEWS * 2 {
            let key = view.to_string();
            let answer: Result<_, std::convert::Infallible> =
                cache.get_or_compute(&key, || async move { Ok(view) }).await;
            assert_eq!(*answer.unwrap(), view);
        }
        assert!(cache.slots.lock().unwrap().len() <= MAX_VIEWS);
    }
}
