//! The bus between Cadastre's services.
//!
//! One [`Bus`] trait, two implementations with the same contract:
//! - [`nats::JetStreamBus`]: NATS JetStream, for the distributed deployment;
//! - [`memory::InProcessBus`]: in-process, for `cadastre up`.
//!
//! The contract (tested against both in `tests/contract.rs`):
//! - **at-least-once**: a delivery stays pending until it is acknowledged; it comes again when
//!   its consumer asks for a retry or does not answer within `ack_wait` (it crashed or hung);
//! - **durable consumers**: a consumer is named; a new one with the same name resumes where the
//!   last stopped, and several at once share the work (a queue group of replicas);
//! - **backpressure**: at most `max_in_flight` unacknowledged deliveries per consumer;
//! - **dead letters**: after `max_deliveries` failed deliveries a message goes to
//!   [`subjects::DEAD_LETTERS`] with the reason, and is not delivered again;
//! - **de-duplication**: a message published twice with the same id (within the window) is
//!   stored once;
//! - **trace context** travels in a `traceparent` header.
//!
//! Subjects, their message types and the consumers are defined once, in [`subjects`].

pub mod memory;
pub mod nats;
pub mod subjects;
pub mod trace;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use subjects::{ConsumerSpec, Subject};
pub use trace::TraceContext;

/// How long a message id is remembered for de-duplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The header that carries trace context (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach the bus: {0}")]
    Connect(String),
    #[error("bus request failed: {0}")]
    Request(String),
    #[error("message on {subject} is not a valid {expected}: {reason}")]
    Decode {
        subject: String,
        expected: &'static str,
        reason: String,
    },
    #[error("the bus is closed")]
    Closed,
}

pub type Result<T> = std::result::Result<T, BusError>;

/// A message about to be published.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub payload: Bytes,
    /// De-duplication id: a second message with the same id within [`DUPLICATE_WINDOW`] is
    /// dropped by the bus.
    pub id: Option<String>,
    pub headers: BTreeMap<String, String>,
}

/// What the bus said about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Position in the stream.
    pub sequence: u64,
    /// The id was seen within the window: nothing new was stored.
    pub duplicate: bool,
}

/// A message handed to a consumer. Acknowledge it, ask for a retry, or reject it; dropping
/// it without any of those leaves it pending until `ack_wait` passes, then it comes again.
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    pub headers: BTreeMap<String, String>,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// Messages still waiting for this consumer after this one (its lag).
    pub pending: u64,
    max_deliveries: u32,
    consumer: String,
    acker: Box<dyn Acker>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.subject)
            .field("attempt", &self.attempt)
            .field("consumer", &self.consumer)
            .field("bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// The trace context the publisher sent, if any.
    pub fn trace(&self) -> Option<TraceContext> {
        self.headers
            .get(TRACEPARENT)
            .and_then(|value| TraceContext::parse(value))
    }

    /// Done: the message is not delivered to this consumer again.
    pub async fn ack(self) -> Result<()> {
        self.acker.ack().await
    }

    /// Still being worked on: restarts the delivery's `ack_wait`, so a long piece of work (a
    /// group's transaction) is not delivered again meanwhile.
    pub async fn in_progress(&self) -> Result<()> {
        self.acker.in_progress().await
    }

    /// Failed for now: deliver again after `delay`, or dead-letter it with `reason` when this
    /// was the last allowed delivery.
    pub async fn retry(self, reason: &str, delay: Duration) -> Result<()> {
        if self.attempt >= self.max_deliveries {
            let reason = format!("failed {} deliveries; last: {reason}", self.attempt);
            return self.dead_letter(&reason).await;
        }
        tracing::debug!(subject = %self.subject, attempt = self.attempt, reason, "delivery failed; will retry");
        self.acker.retry(delay).await
    }

    /// Never going to work (undecodable, invalid): dead-letter it now with `reason`.
    pub async fn reject(self, reason: &str) -> Result<()> {
        self.dead_letter(reason).await
    }

    async fn dead_letter(self, reason: &str) -> Result<()> {
        tracing::warn!(subject = %self.subject, consumer = %self.consumer, attempt = self.attempt, reason, "dead-lettering a message");
        let letter = cadastre_proto::v1::DeadLetter {
            subject: self.subject.clone(),
            payload: self.payload.to_vec(),
            consumer: self.consumer.clone(),
            deliveries: self.attempt,
            reason: reason.to_owned(),
            dead_at_micros: now_micros(),
        };
        self.acker.dead_letter(letter).await
    }

    /// Decodes the payload as `M`.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M> {
        M::decode(self.payload.as_ref()).map_err(|error| BusError::Decode {
            subject: self.subject.clone(),
            expected: std::any::type_name::<M>(),
            reason: error.to_string(),
        })
    }
}

/// How a backend settles one delivery.
#[async_trait]
pub(crate) trait Acker: Send + Sync {
    async fn ack(self: Box<Self>) -> Result<()>;
    async fn in_progress(&self) -> Result<()>;
    async fn retry(self: Box<Self>, delay: Duration) -> Result<()>;
    /// Publishes the letter to [`subjects::DEAD_LETTERS`], then settles the delivery for good.
    async fn dead_letter(self: Box<Self>, letter: cadastre_proto::v1::DeadLetter) -> Result<()>;
}

/// A bus: publish to a subject, consume through a durable consumer.
#[async_trait]
pub trait Bus: Send + Sync + fmt::Debug {
    async fn publish(&self, subject: &str, message: Outgoing) -> Result<Published>;

    /// Publishes `messages` to `subject` in their order, and answers what the bus said about
    /// each, in the same order. A failure does not stop the others: callers that need an
    /// unbroken prefix (a relay's position) take the answers up to the first error.
    async fn publish_all(&self, subject: &str, messages: Vec<Outgoing>) -> Vec<Result<Published>> {
        let mut answers = Vec::with_capacity(messages.len());
        for message in messages {
            answers.push(self.publish(subject, message).await);
        }
        answers
    }

    /// Joins the durable consumer `spec.name` (created when missing): every consumer joined
    /// under one name shares its messages, each delivered to one of them.
    async fn consume(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>>;

    /// Whether the bus can be used now (readiness checks). The in-process bus always can.
    async fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// One member of a durable consumer.
#[async_trait]
pub trait Consumer: Send + fmt::Debug {
    /// The next delivery; waits while there is none or while `max_in_flight` deliveries are
    /// unacknowledged.
    async fn next(&mut self) -> Result<Delivery>;
}

/// Messages delivered more often than allowed without being settled (their consumer crashed
/// or hung on them each time) are dead-lettered here, before any handler sees them again.
pub(crate) async fn screen(delivery: Delivery) -> Result<Option<Delivery>> {
    if delivery.attempt > delivery.max_deliveries {
        let reason = format!(
            "not acknowledged after {} deliveries (the consumer crashed or timed out)",
            delivery.attempt - 1
        );
        delivery.dead_letter(&reason).await?;
        return Ok(None);
    }
    Ok(Some(delivery))
}

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
