//! The bus on NATS JetStream: one file-backed stream for every subject, durable pull
//! consumers with explicit acks, `Nats-Msg-Id` de-duplication.
//!
//! Built on what nats-server 2.9 supports (streams, durable pull consumers, acks, message-id
//! de-duplication; one filter subject per consumer), so Debian's server runs it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::subjects::{DEAD_LETTERS, STREAM, STREAM_SUBJECTS};
use crate::{
    Acker, Bus, BusError, Consumer, ConsumerSpec, DUPLICATE_WINDOW, Delivery, Outgoing, Published,
    Result,
};

/// Bytes a consumer asks the server for at a time: what it has received and not yet taken
/// stays under this. The server cuts a connection whose unread data passes 64 MiB ("slow
/// consumer"). Asking for `max_in_flight` messages alone, catalog-store's 1,024 processed
/// batches of up to 0.6 MB each came as one burst of hundreds of megabytes: at a million
/// entities, with the process busy, the server cut connections four times, and at those
/// minutes 24 batches were dead-lettered after five deliveries (ARCHITECTURE.md, decisions).
/// A message must fit in one pull: NATS's `max_payload` (1 MiB by default) is far below it.
pub const PULL_BYTES: usize = 16 << 20;

/// How the stream is kept.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Prefix for the stream and every subject (`<namespace>.catalog.…`), so installations
    /// (or tests) can share one NATS; empty for none.
    pub namespace: String,
    /// Messages older than this are dropped even if unconsumed.
    pub max_age: Duration,
    /// The stream's size cap, the oldest messages going first; `-1` for none (the age limit
    /// still applies). A cap is reserved on the server's disk when the stream is created.
    pub max_bytes: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            namespace: String::new(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: -1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JetStreamBus {
    client: async_nats::Client,
    context: jetstream::Context,
    stream: stream::Stream,
    namespace: String,
}

impl JetStreamBus {
    /// Connects to `url` and creates the stream when it does not exist.
    pub async fn connect(url: &str, settings: StreamSettings) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| BusError::Connect(format!("{url}: {e}")))?;
        let context = jetstream::new(client.clone());
        let prefix = |name: &str| {
            if settings.namespace.is_empty() {
                name.to_owned()
            } else {
                format!("{}.{name}", settings.namespace)
            }
        };
        let stream_name = if settings.namespace.is_empty() {
            STREAM.to_owned()
        } else {
            format!("{}_{STREAM}", settings.namespace.replace('.', "_"))
        };
        let config = stream::Config {
            name: stream_name.clone(),
            subjects: vec![prefix(STREAM_SUBJECTS)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            max_age: settings.max_age,
            max_bytes: settings.max_bytes,
            duplicate_window: DUPLICATE_WINDOW,
            ..stream::Config::default()
        };
        // Services starting together race to create the stream: the losers are told the
        // subjects overlap (nats-server 2.9) or the name is taken; the stream is then there.
        let mut attempt = 0;
        let stream = loop {
            attempt += 1;
            match context.get_or_create_stream(config.clone()).await {
                Ok(stream) => break stream,
                Err(error) => match context.get_stream(&stream_name).await {
                    Ok(stream) => break stream,
                    Err(_) if attempt < 5 => {
                        tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    }
                    Err(_) => {
                        return Err(BusError::Connect(format!("stream {stream_name}: {error}")));
                    }
                },
            }
        };
        Ok(JetStreamBus {
            client,
            context,
            stream,
            namespace: settings.namespace,
        })
    }

    fn wire_subject(&self, subject: &str) -> String {
        if self.namespace.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.namespace)
        }
    }

    fn logical_subject<'a>(&self, wire: &'a str) -> &'a str {
        if self.namespace.is_empty() {
            return wire;
        }
        wire.strip_prefix(&self.namespace)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(wire)
    }

    async fn publish_wire(&self, subject: &str, message: Outgoing) -> Result<Published> {
        let ack = self.send(subject, message).await?;
        Self::acknowledged(subject, ack.await)
    }

    /// Hands `message` to the connection; the answer is the future of the stream's ack.
    async fn send(&self, subject: &str, message: Outgoing) -> Result<PublishAckFuture> {
        let mut headers = HeaderMap::new();
        for (name, value) in &message.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        if let Some(id) = &message.id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        }
        self.context
            .publish_with_headers(self.wire_subject(subject), headers, message.payload)
            .await
            .map_err(|e| BusError::Request(format!("publish to {subject}: {e}")))
    }

    fn acknowledged(
        subject: &str,
        ack: std::result::Result<async_nats::jetstream::publish::PublishAck, PublishError>,
    ) -> Result<Published> {
        let ack = ack.map_err(|e| BusError::Request(format!("publish to {subject}: {e}")))?;
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

#[async_trait]
impl Bus for JetStreamBus {
    async fn publish(&self, subject: &str, message: Outgoing) -> Result<Published> {
        self.publish_wire(subject, message).await
    }

    /// Sends every message before waiting for any ack: the server reads and acknowledges
    /// them in runs instead of one round trip (and two wake-ups on each side) per message.
    async fn publish_all(&self, subject: &str, messages: Vec<Outgoing>) -> Vec<Result<Published>> {
        let mut sent = Vec::with_capacity(messages.len());
        for message in messages {
            sent.push(self.send(subject, message).await);
        }
        let mut answers = Vec::with_capacity(sent.len());
        for ack in sent {
            answers.push(match ack {
                Ok(ack) => Self::acknowledged(subject, ack.await),
                Err(error) => Err(error),
            });
        }
        answers
    }

    async fn check(&self) -> Result<()> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(BusError::Connect(format!("NATS connection is {state}"))),
        }
    }

    async fn consume(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>> {
        let in_flight = i64::try_from(spec.max_in_flight.max(1)).unwrap_or(i64::MAX);
        let consumer: consumer::PullConsumer = self
            .stream
            .get_or_create_consumer(
                spec.name,
                consumer::pull::Config {
                    durable_name: Some(spec.name.to_owned()),
                    filter_subject: self.wire_subject(spec.subject),
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: spec.ack_wait,
                    // One delivery more than allowed, so the consumer sees a message that
                    // crashed its handlers every time, and dead-letters it.
                    max_deliver: i64::from(spec.max_deliveries) + 1,
                    max_ack_pending: in_flight,
                    ..consumer::pull::Config::default()
                },
            )
            .await
            .map_err(|e| BusError::Request(format!("consumer {}: {e}", spec.name)))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(spec.max_in_flight.max(1))
            .max_bytes_per_batch(PULL_BYTES)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| BusError::Request(format!("consumer {}: {e}", spec.name)))?;
        Ok(Box::new(JetStreamConsumer {
            bus: self.clone(),
            spec: spec.clone(),
            messages,
        }))
    }
}

struct JetStreamConsumer {
    bus: JetStreamBus,
    spec: ConsumerSpec,
    messages: consumer::pull::Stream,
}

impl std::fmt::Debug for JetStreamConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamConsumer")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Consumer for JetStreamConsumer {
    async fn next(&mut self) -> Result<Delivery> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    // Missed heartbeats and the like: the stream recovers by itself.
                    tracing::warn!(consumer = self.spec.name, %error, "JetStream consumer hiccup");
                    continue;
                }
                None => return Err(BusError::Closed),
            };
            let (attempt, pending) = message
                .info()
                .map(|info| {
                    (
                        u32::try_from(info.delivered).unwrap_or(u32::MAX),
                        info.pending,
                    )
                })
                .unwrap_or((1, 0));
            let headers: BTreeMap<String, String> = message
                .headers
                .iter()
                .flat_map(|headers| headers.iter())
                .filter(|(name, _)| *name != &async_nats::header::NATS_MESSAGE_ID)
                .filter_map(|(name, values)| {
                    values
                        .first()
                        .map(|value| (name.to_string(), value.as_str().to_owned()))
                })
                .collect();
            let delivery = Delivery {
                subject: self
                    .bus
                    .logical_subject(message.subject.as_str())
                    .to_owned(),
                payload: message.payload.clone(),
                headers,
                attempt,
                pending,
                max_deliveries: self.spec.max_deliveries,
                consumer: self.spec.name.to_owned(),
                acker: Box::new(JetStreamAcker {
                    bus: self.bus.clone(),
                    message,
                }),
            };
            if let Some(delivery) = crate::screen(delivery).await? {
                return Ok(delivery);
            }
        }
    }
}

struct JetStreamAcker {
    bus: JetStreamBus,
    message: jetstream::Message,
}

impl JetStreamAcker {
    async fn send(&self, kind: AckKind) -> Result<()> {
        // Double ack: the server confirms, so "acked" means the message will not come again.
        self.message
            .double_ack_with(kind)
            .await
            .map_err(|e| BusError::Request(format!("ack: {e}")))
    }
}

#[async_trait]
impl Acker for JetStreamAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.send(AckKind::Ack).await
    }

    async fn in_progress(&self) -> Result<()> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| BusError::Request(format!("in progress: {e}")))
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<()> {
        self.send(AckKind::Nak(Some(delay))).await
    }

    async fn dead_letter(self: Box<Self>, letter: cadastre_proto::v1::DeadLetter) -> Result<()> {
        use prost::Message as _;
        self.bus
            .publish_wire(
                DEAD_LETTERS.name,
                Outgoing {
                    payload: Bytes::from(letter.encode_to_vec()),
                    ..Outgoing::default()
                },
            )
            .await?;
        self.send(AckKind::Term).await
    }
}
