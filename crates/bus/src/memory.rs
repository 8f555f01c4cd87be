//! The in-process bus for `cadastre up`: the same contract as JetStream, in memory.
//!
//! Each subject is a log of messages by sequence; each durable consumer keeps a cursor, its
//! pending deliveries (with their deadlines) and the retries it asked for. A message leaves
//! the log once every consumer of its subject has settled it, or when the subject holds more
//! than `max_messages_per_subject` (oldest first, as a stream with limits would drop them).
//! Nothing survives the process: embedded mode recovers by re-harvesting and by the store's
//! change feed, which is durable.
//!
//! A subject may have a backlog limit ([`InProcessBus::with_backlog_limits`]): while that many
//! of its messages are unsettled (and it has a consumer), publishing to it waits. That is the
//! back-pressure JetStream gives through its file store: without it a cold ingest of a million
//! entities held every harvested and processed batch the store had not reached in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::subjects::DEAD_LETTERS;
use crate::{
    Acker, Bus, BusError, Consumer, ConsumerSpec, DUPLICATE_WINDOW, Delivery, Outgoing, Published,
    Result,
};

/// Messages kept per subject when consumers fall behind (or none exists yet).
const DEFAULT_MAX_MESSAGES_PER_SUBJECT: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct InProcessBus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every publish and every settled delivery.
    changed: Notify,
    max_messages_per_subject: usize,
    /// Subject -> unsettled messages at which its publishers wait.
    backlog_limits: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct State {
    next_sequence: u64,
    logs: HashMap<String, BTreeMap<u64, Stored>>,
    /// Message ids seen, with when they stop counting, oldest first.
    recent_ids: VecDeque<(Instant, String)>,
    ids: HashMap<String, u64>,
    consumers: HashMap<String, ConsumerState>,
}

#[derive(Debug, Clone)]
struct Stored {
    payload: Bytes,
    headers: BTreeMap<String, String>,
}

#[derive(Debug)]
struct ConsumerState {
    spec: ConsumerSpec,
    /// Next sequence never delivered yet.
    cursor: u64,
    /// Delivered, not settled: sequence -> (deadline, attempt).
    pending: BTreeMap<u64, (Instant, u32)>,
    /// Asked to come again: sequence -> (not before, attempts so far).
    retries: BTreeMap<u64, (Instant, u32)>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_MESSAGES_PER_SUBJECT)
    }

    /// A bus that keeps at most `max_messages_per_subject` unsettled messages per subject.
    pub fn with_limit(max_messages_per_subject: usize) -> Self {
        InProcessBus {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                max_messages_per_subject: max_messages_per_subject.max(1),
                backlog_limits: HashMap::new(),
            }),
        }
    }

    /// A bus whose publishers to each `(subject, limit)` wait while `limit` messages of it are
    /// unsettled by a consumer. Only for subjects no consumer of which publishes back into a
    /// limited subject it waits on (the pipeline's data subjects, not harvest requests, which
    /// the processor publishes while the harvester may be waiting on it).
    pub fn with_backlog_limits(limits: &[(&str, usize)]) -> Self {
        InProcessBus {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                max_messages_per_subject: DEFAULT_MAX_MESSAGES_PER_SUBJECT,
                backlog_limits: limits
                    .iter()
                    .map(|(subject, limit)| ((*subject).to_owned(), (*limit).max(1)))
                    .collect(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Messages some consumer has yet to settle, over every consumed subject: delivered and
    /// not acknowledged, waiting for a retry, or not delivered yet. Zero when the pipeline
    /// has nothing left in it (what `cadastre up` waits for before it says it is ready).
    pub fn unsettled(&self) -> usize {
        let state = self.lock();
        state
            .logs
            .iter()
            .filter(|(subject, _)| {
                state
                    .consumers
                    .values()
                    .any(|consumer| consumer.spec.subject == subject.as_str())
            })
            .map(|(_, log)| log.len())
            .sum()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits while `subject` is at its backlog limit (a subject without a limit, or without
    /// a consumer, never waits).
    async fn wait_for_room(&self, subject: &str) {
        let Some(&limit) = self.backlog_limits.get(subject) else {
            return;
        };
        loop {
            // Registered before the check, so a settle in between still wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                let consumed = state
                    .consumers
                    .values()
                    .any(|consumer| consumer.spec.subject == subject);
                let backlog = state.logs.get(subject).map_or(0, BTreeMap::len);
                if !consumed || backlog < limit {
                    return;
                }
            }
            changed.await;
        }
    }

    fn publish(&self, subject: &str, message: Outgoing) -> Published {
        let now = Instant::now();
        let mut state = self.lock();
        while let Some((expiry, _)) = state.recent_ids.front()
            && *expiry <= now
        {
            let (_, id) = state
                .recent_ids
                .pop_front()
                .unwrap_or_else(|| unreachable!());
            state.ids.remove(&id);
        }
        if let Some(id) = &message.id
            && let Some(&sequence) = state.ids.get(id)
        {
            return Published {
                sequence,
                duplicate: true,
            };
        }
        state.next_sequence += 1;
        let sequence = state.next_sequence;
        if let Some(id) = message.id {
            state.ids.insert(id.clone(), sequence);
            state.recent_ids.push_back((now + DUPLICATE_WINDOW, id));
        }
        let log = state.logs.entry(subject.to_owned()).or_default();
        log.insert(
            sequence,
            Stored {
                payload: message.payload,
                headers: message.headers,
            },
        );
        while log.len() > self.max_messages_per_subject {
            log.pop_first();
        }
        drop(state);
        self.changed.notify_waiters();
        Published {
            sequence,
            duplicate: false,
        }
    }

    /// Drops `sequence` from its log when no consumer of `subject` still needs it.
    fn forget_if_settled(state: &mut State, subject: &str, sequence: u64) {
        let needed = state.consumers.values().any(|consumer| {
            consumer.spec.subject == subject
                && (consumer.cursor <= sequence
                    || consumer.pending.contains_key(&sequence)
                    || consumer.retries.contains_key(&sequence))
        });
        if !needed && let Some(log) = state.logs.get_mut(subject) {
            log.remove(&sequence);
        }
    }

    /// Gives delivery `attempt` of `sequence` a full `ack_wait` again from now (a stale
    /// delivery, already redelivered, keeps the newer one's deadline).
    fn extend_deadline(&self, consumer: &str, sequence: u64, attempt: u32) {
        let mut state = self.lock();
        let Some(member) = state.consumers.get_mut(consumer) else {
            return;
        };
        let ack_wait = member.spec.ack_wait;
        if let Some((deadline, pending_attempt)) = member.pending.get_mut(&sequence)
            && *pending_attempt == attempt
        {
            *deadline = Instant::now() + ack_wait;
        }
    }

    /// Settles delivery `attempt` of `sequence`: done, or to come again after a delay.
    fn settle(&self, consumer: &str, sequence: u64, attempt: u32, retry_after: Option<Duration>) {
        let mut state = self.lock();
        let Some(member) = state.consumers.get_mut(consumer) else {
            return;
        };
        if member.pending.get(&sequence).map(|(_, a)| *a) != Some(attempt) {
            // A stale delivery (redelivered after its deadline): the newer one settles it.
            return;
        }
        member.pending.remove(&sequence);
        let subject = member.spec.subject;
        match retry_after {
            Some(delay) => {
                member
                    .retries
                    .insert(sequence, (Instant::now() + delay, attempt));
            }
            None => Self::forget_if_settled(&mut state, subject, sequence),
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, subject: &str, message: Outgoing) -> Result<Published> {
        self.shared.wait_for_room(subject).await;
        Ok(self.shared.publish(subject, message))
    }

    async fn consume(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>> {
        let mut state = self.lock();
        // A new durable consumer starts at the oldest message its subject still holds.
        let first = state
            .logs
            .get(spec.subject)
            .and_then(|log| log.keys().next().copied())
            .unwrap_or(state.next_sequence + 1);
        state
            .consumers
            .entry(spec.name.to_owned())
            .or_insert_with(|| ConsumerState {
                spec: spec.clone(),
                cursor: first,
                pending: BTreeMap::new(),
                retries: BTreeMap::new(),
            });
        Ok(Box::new(Member {
            shared: Arc::clone(&self.shared),
            name: spec.name.to_owned(),
        }))
    }
}

/// One member of a durable consumer.
#[derive(Debug)]
struct Member {
    shared: Arc<Shared>,
    name: String,
}

/// What the consumer delivers next, if anything is due.
enum Next {
    Deliver(Delivery),
    WaitUntil(Option<Instant>),
}

impl Member {
    fn poll(&self) -> Result<Next> {
        let now = Instant::now();
        let mut state = self.shared.lock();
        let State {
            logs, consumers, ..
        } = &mut *state;
        let consumer = consumers.get_mut(&self.name).ok_or(BusError::Closed)?;
        let subject = consumer.spec.subject;
        let log = logs.entry(subject.to_owned()).or_default();
        // Deliveries whose consumer went quiet past their deadline come back as retries.
        let expired: Vec<(u64, u32)> = consumer
            .pending
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(sequence, (_, attempt))| (*sequence, *attempt))
            .collect();
        for (sequence, attempt) in expired {
            consumer.pending.remove(&sequence);
            consumer.retries.insert(sequence, (now, attempt));
        }
        // Messages dropped by the subject's limit are gone for everyone.
        consumer
            .retries
            .retain(|sequence, _| log.contains_key(sequence));
        if consumer.pending.len() >= consumer.spec.max_in_flight {
            let deadline = consumer.pending.values().map(|(d, _)| *d).min();
            return Ok(Next::WaitUntil(deadline));
        }
        let due_retry = consumer
            .retries
            .iter()
            .find(|(_, (not_before, _))| *not_before <= now)
            .map(|(sequence, (_, attempts))| (*sequence, *attempts));
        let (sequence, attempt) = match due_retry {
            Some((sequence, attempts)) => {
                consumer.retries.remove(&sequence);
                (sequence, attempts + 1)
            }
            None => match log.range(consumer.cursor..).next() {
                Some((&sequence, _)) => {
                    consumer.cursor = sequence + 1;
                    (sequence, 1)
                }
                None => {
                    let wake = consumer
                        .pending
                        .values()
                        .map(|(d, _)| *d)
                        .chain(consumer.retries.values().map(|(n, _)| *n))
                        .min();
                    return Ok(Next::WaitUntil(wake));
                }
            },
        };
        let stored = log
            .get(&sequence)
            .cloned()
            .ok_or_else(|| BusError::Request(format!("message {sequence} vanished")))?;
        consumer
            .pending
            .insert(sequence, (now + consumer.spec.ack_wait, attempt));
        // Messages of the subject not yet settled by every consumer (in flight included):
        // counted in O(1), where an exact per-consumer count would walk the log.
        let pending = log.len() as u64;
        Ok(Next::Deliver(Delivery {
            subject: subject.to_owned(),
            payload: stored.payload,
            headers: stored.headers,
            attempt,
            pending,
            max_deliveries: consumer.spec.max_deliveries,
            consumer: self.name.clone(),
            acker: Box::new(MemoryAcker {
                shared: Arc::clone(&self.shared),
                consumer: self.name.clone(),
                sequence,
                attempt,
            }),
        }))
    }
}

#[async_trait]
impl Consumer for Member {
    async fn next(&mut self) -> Result<Delivery> {
        loop {
            // Registered before looking, so a publish between the look and the wait wakes us.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.poll()? {
                Next::Deliver(delivery) => {
                    if let Some(delivery) = crate::screen(delivery).await? {
                        return Ok(delivery);
                    }
                }
                Next::WaitUntil(Some(instant)) => {
                    tokio::select! {
                        () = &mut changed => {}
                        () = tokio::time::sleep_until(instant) => {}
                    }
                }
                Next::WaitUntil(None) => changed.await,
            }
        }
    }
}

struct MemoryAcker {
    shared: Arc<Shared>,
    consumer: String,
    sequence: u64,
    attempt: u32,
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.shared
            .settle(&self.consumer, self.sequence, self.attempt, None);
        Ok(())
    }

    async fn in_progress(&self) -> Result<()> {
        self.shared
            .extend_deadline(&self.consumer, self.sequence, self.attempt);
        Ok(())
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<()> {
        self.shared
            .settle(&self.consumer, self.sequence, self.attempt, Some(delay));
        Ok(())
    }

    async fn dead_letter(self: Box<Self>, letter: cadastre_proto::v1::DeadLetter) -> Result<()> {
        use prost::Message as _;
        self.shared.publish(
            DEAD_LETTERS.name,
            Outgoing {
                payload: Bytes::from(letter.encode_to_vec()),
                ..Outgoing::default()
            },
        );
        self.shared
            .settle(&self.consumer, self.sequence, self.attempt, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &'static str) -> Outgoing {
        Outgoing {
            payload: Bytes::from_static(text.as_bytes()),
            ..Outgoing::default()
        }
    }

    #[tokio::test]
    async fn a_limited_subject_makes_its_publisher_wait_for_the_consumer() {
        let bus = InProcessBus::with_backlog_limits(&[("t.limited", 2)]);
        // Without a consumer nothing waits (nobody would ever make room).
        for _ in 0..3 {
            bus.publish("t.limited", message("early")).await.unwrap();
        }
        let mut consumer = bus
            .consume(&ConsumerSpec::new("reader", "t.limited"))
            .await
            .unwrap();
        // Three unsettled, over the limit of two: the next publish waits ...
        let waiting = tokio::spawn({
            let bus = bus.clone();
            async move { bus.publish("t.limited", message("late")).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "published past the backlog limit");
        // ... until the consumer has settled enough of them.
        for _ in 0..2 {
            consumer.next().await.unwrap().ack().await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the publisher is let through once there is room")
            .unwrap()
            .unwrap();
        // Other subjects never wait.
        for _ in 0..10 {
            bus.publish("t.free", message("free")).await.unwrap();
        }
    }

    #[tokio::test]
    async fn unsettled_counts_what_a_consumer_has_yet_to_settle() {
        let bus = InProcessBus::new();
        // Nobody consumes this subject: nothing is waiting for anyone.
        bus.publish("t.unread", message("lost")).await.unwrap();
        assert_eq!(bus.unsettled(), 0);
        let spec = ConsumerSpec::new("reader", "t.work").with_ack_wait(Duration::from_secs(60));
        let mut consumer = bus.consume(&spec).await.unwrap();
        for _ in 0..3 {
            bus.publish("t.work", message("job")).await.unwrap();
        }
        assert_eq!(bus.unsettled(), 3, "published, not delivered");
        let first = consumer.next().await.unwrap();
        assert_eq!(bus.unsettled(), 3, "delivered counts until it is settled");
        first.ack().await.unwrap();
        assert_eq!(bus.unsettled(), 2);
        // Asked to come again later: still unsettled.
        let second = consumer.next().await.unwrap();
        second
            .retry("later", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(bus.unsettled(), 2);
        consumer.next().await.unwrap().ack().await.unwrap();
        assert_eq!(bus.unsettled(), 1, "the retry is still to come");
    }
}
