//! Entities by ref, kept in the gateway and invalidated by catalog-store's change feed, so a
//! by-name lookup (the call Backstage's frontend makes most) costs a map lookup instead of a
//! gRPC round trip and a query.
//!
//! Correctness rests on two rules. A lookup that misses takes a [`Ticket`] before asking the
//! store, and its answer is kept only if nothing invalidated that key's shard (and the feed
//! did not drop) in between; so an answer older than a change the feed already reported is
//! never kept. And while the feed is not followed, nothing is cached (everything is dropped
//! when it breaks), since changes could then go unnoticed. An entry is at most as stale as the
//! feed is late: milliseconds.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;

const SHARDS: usize = 64;

/// A bounded map of entity ref (lower case) to the stored entity.
#[derive(Debug)]
pub struct EntityCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    /// Odd while the change feed is followed; bumped on every connect and disconnect.
    feed: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    /// Bumped (under the lock) whenever a key of this shard is invalidated.
    epoch: AtomicU64,
    entries: Mutex<Entries>,
}

/// A shard's entities, evicted by the clock (second chance): an entity asked for since the
/// hand last passed stays for another turn, so entities asked for again outlast those asked
/// for once. (Evicting whichever key the map iterates first evicted the newest entries: half
/// of a working set a quarter of the capacity missed in every round.)
#[derive(Debug, Default)]
struct Entries {
    /// Where each key's slot is.
    index: HashMap<Arc<str>, usize>,
    slots: Vec<Slot>,
    /// The next slot the clock considers.
    hand: usize,
}

#[derive(Debug)]
struct Slot {
    key: Arc<str>,
    entity: Arc<pb::StoredEntity>,
    /// Asked for since the hand last passed.
    asked: bool,
}

impl Entries {
    fn get(&mut self, key: &str) -> Option<Arc<pb::StoredEntity>> {
        let slot = &mut self.slots[*self.index.get(key)?];
        slot.asked = true;
        Some(Arc::clone(&slot.entity))
    }

    /// Keeps `entity` under `key`, in the slot of an evicted one when `capacity` is reached.
    fn insert(&mut self, key: &str, entity: Arc<pb::StoredEntity>, capacity: usize) {
        if let Some(&at) = self.index.get(key) {
            self.slots[at].entity = entity;
            return;
        }
        let key: Arc<str> = Arc::from(key);
        let slot = Slot {
            key: Arc::clone(&key),
            entity,
            asked: false,
        };
        if self.slots.len() < capacity {
            self.index.insert(key, self.slots.len());
            self.slots.push(slot);
            return;
        }
        // Ends within two turns of the clock: a first turn clears every `asked`.
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let at = self.hand;
            self.hand += 1;
            if std::mem::take(&mut self.slots[at].asked) {
                continue;
            }
            let evicted = std::mem::replace(&mut self.slots[at], slot);
            self.index.remove(&evicted.key);
            self.index.insert(key, at);
            return;
        }
    }

    fn remove(&mut self, key: &str) {
        let Some(at) = self.index.remove(key) else {
            return;
        };
        self.slots.swap_remove(at);
        if let Some(moved) = self.slots.get(at) {
            self.index.insert(Arc::clone(&moved.key), at);
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
    }
}

/// Taken before asking the store; an answer is kept only if the ticket is still good.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    shard: usize,
    epoch: u64,
    feed: u64,
}

impl EntityCache {
    /// A cache of at most about `capacity` entities.
    pub fn new(capacity: usize) -> EntityCache {
        EntityCache {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            feed: AtomicU64::new(0),
        }
    }

    pub fn get(&self, entity_ref: &str) -> Option<Arc<pb::StoredEntity>> {
        self.lock(self.shard_of(entity_ref)).get(entity_ref)
    }

    /// A ticket for a lookup of `entity_ref`; `None` while the feed is not followed.
    pub fn ticket(&self, entity_ref: &str) -> Option<Ticket> {
        let feed = self.feed.load(Ordering::Acquire);
        if feed.is_multiple_of(2) {
            return None;
        }
        let shard = self.shard_of(entity_ref);
        Some(Ticket {
            shard,
            epoch: self.shards[shard].epoch.load(Ordering::Acquire),
            feed,
        })
    }

    /// Keeps `entity` if `ticket` is still good: no invalidation in its shard and no break in
    /// the feed since it was taken.
    pub fn insert(&self, entity_ref: &str, ticket: Ticket, entity: Arc<pb::StoredEntity>) {
        let shard = &self.shards[ticket.shard];
        let mut entries = self.lock(ticket.shard);
        if shard.epoch.load(Ordering::Acquire) != ticket.epoch
            || self.feed.load(Ordering::Acquire) != ticket.feed
        {
            return;
        }
        entries.insert(entity_ref, entity, self.per_shard);
    }

    /// Forgets `entity_ref` and voids the tickets of its shard.
    pub fn invalidate(&self, entity_ref: &str) {
        let shard = self.shard_of(entity_ref);
        let mut entries = self.lock(shard);
        self.shards[shard].epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(entity_ref);
    }

    /// How many entities are kept.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|shard| self.lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn connected(&self) {
        if self.feed.load(Ordering::Acquire).is_multiple_of(2) {
            self.feed.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Stops caching and drops everything: changes may now go unseen.
    fn disconnected(&self) {
        if !self.feed.load(Ordering::Acquire).is_multiple_of(2) {
            self.feed.fetch_add(1, Ordering::AcqRel);
        }
        for shard in 0..SHARDS {
            self.lock(shard).clear();
        }
    }

    /// Follows the store's change feed until `shutdown`, invalidating every changed ref;
    /// reconnects (from the head, with the cache emptied) when the feed breaks.
    pub async fn follow(
        self: Arc<Self>,
        store: CatalogServiceClient<crate::GrpcChannel>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            () = self.follow_forever(store) => {}
        }
        self.disconnected();
    }

    async fn follow_forever(&self, mut store: CatalogServiceClient<crate::GrpcChannel>) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.follow_once(&mut store).await {
                Ok(()) => delay = Duration::from_millis(100),
                Err(status) => {
                    tracing::warn!(error = %status.message(), "entity cache: the change feed broke; not caching until it is back");
                }
            }
            self.disconnected();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn follow_once(
        &self,
        store: &mut CatalogServiceClient<crate::GrpcChannel>,
    ) -> Result<(), tonic::Status> {
        let head = store
            .get_feed_head(pb::GetFeedHeadRequest {})
            .await?
            .into_inner()
            .sequence;
        let mut changes = store
            .watch_changes(pb::WatchChangesRequest {
                after_sequence: head,
                follow: true,
            })
            .await?
            .into_inner();
        // Every change after `head` will come through this stream: caching is safe from now.
        self.connected();
        tracing::debug!(head, "entity cache following the change feed");
        while let Some(change) = changes.message().await? {
            self.invalidate(&change.entity_ref);
        }
        Ok(())
    }

    fn shard_of(&self, entity_ref: &str) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(entity_ref);
        (hash as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Entries> {
        // The map holds plain data; a panic elsewhere while it was locked leaves it usable.
        self.shards[shard]
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(etag: &str) -> Arc<pb::StoredEntity> {
        Arc::new(pb::StoredEntity {
            content_hash: etag.to_owned(),
            ..Default::default()
        })
    }

    fn connected(capacity: usize) -> EntityCache {
        let cache = EntityCache::new(capacity);
        cache.connected();
        cache
    }

    #[test]
    fn nothing_is_cached_while_the_feed_is_not_followed() {
        let cache = EntityCache::new(100);
        assert!(cache.ticket("component:default/a").is_none());
        cache.connected();
        let ticket = cache.ticket("component:default/a").unwrap();
        cache.insert("component:default/a", ticket, entity("1"));
        assert_eq!(cache.get("component:default/a").unwrap().content_hash, "1");
        cache.disconnected();
        assert!(cache.get("component:default/a").is_none());
        assert!(cache.ticket("component:default/a").is_none());
    }

    #[test]
    fn an_answer_older_than_an_invalidation_is_not_kept() {
        let cache = connected(100);
        let ticket = cache.ticket("component:default/a").unwrap();
        // The feed reports a change while the store's (older) answer is on its way.
        cache.invalidate("component:default/a");
        cache.insert("component:default/a", ticket, entity("old"));
        assert!(cache.get("component:default/a").is_none());
        let ticket = cache.ticket("component:default/a").unwrap();
        cache.insert("component:default/a", ticket, entity("new"));
        assert_eq!(
            cache.get("component:default/a").unwrap().content_hash,
            "new"
        );
        cache.invalidate("component:default/a");
        assert!(cache.get("component:default/a").is_none());
    }

    #[test]
    fn a_ticket_from_before_a_reconnect_is_void() {
        let cache = connected(100);
        let ticket = cache.ticket("component:default/a").unwrap();
        cache.disconnected();
        cache.connected();
        cache.insert("component:default/a", ticket, entity("1"));
        assert!(cache.get("component:default/a").is_none());
    }

    /// Looks `key` up as a by-name request does: the cache, else a store answer kept.
    fn looked_up(cache: &EntityCache, key: &str) -> bool {
        if cache.get(key).is_some() {
            return true;
        }
        let ticket = cache.ticket(key).unwrap();
        cache.insert(key, ticket, entity("1"));
        false
    }

    #[test]
    fn entities_asked_for_again_stay_while_others_pass_through() {
        // Full of entities asked for once; then a working set a quarter of the capacity,
        // asked for in rounds between as many entities that are asked for once.
        let cache = connected(SHARDS * 64);
        for i in 0..SHARDS * 64 {
            looked_up(&cache, &format!("component:default/before-{i}"));
        }
        let working: Vec<String> = (0..SHARDS * 16)
            .map(|i| format!("component:default/working-{i}"))
            .collect();
        let mut missed = Vec::new();
        for round in 0..8 {
            let misses = working.iter().filter(|key| !looked_up(&cache, key)).count();
            missed.push(misses);
            for i in 0..SHARDS * 16 {
                looked_up(&cache, &format!("component:default/once-{round}-{i}"));
            }
        }
        assert_eq!(missed[0], working.len());
        assert_eq!(
            missed[1..],
            [0; 7],
            "working-set misses per round: {missed:?}"
        );
    }

    #[test]
    fn invalidating_some_keeps_the_others_under_their_own_keys() {
        let cache = connected(SHARDS * 64);
        let keys: Vec<String> = (0..2_000)
            .map(|i| format!("component:default/c{i}"))
            .collect();
        for key in &keys {
            let ticket = cache.ticket(key).unwrap();
            cache.insert(key, ticket, entity(key));
        }
        for key in keys.iter().step_by(3) {
            cache.invalidate(key);
        }
        for (i, key) in keys.iter().enumerate() {
            let kept = cache.get(key).map(|stored| stored.content_hash.clone());
            let expected = (i % 3 != 0).then(|| key.clone());
            assert_eq!(kept, expected, "{key}");
        }
        assert_eq!(cache.len(), keys.len() - keys.len().div_ceil(3));
    }

    #[test]
    fn the_size_stays_bounded() {
        let cache = connected(SHARDS * 2);
        for i in 0..10_000 {
            let key = format!("component:default/c{i}");
            let ticket = cache.ticket(&key).unwrap();
            cache.insert(&key, ticket, entity("1"));
        }
        assert!(cache.len() <= SHARDS * 2, "{}", cache.len());
        assert!(cache.len() >= SHARDS, "{}", cache.len());
    }
}
