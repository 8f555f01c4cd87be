//! The loop every consuming service runs: take a delivery, decode it as the subject's message
//! type, handle it, then acknowledge, retry (with backoff) or dead-letter it.

use std::future::Future;
use std::time::Duration;

use crate::{Bus, ConsumerSpec, Result, TraceContext};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Its effect is committed: acknowledge it.
    Done,
    /// Failed for now (a dependency is down): deliver again later.
    Retry(String),
    /// Will never work: dead-letter it with the reason.
    Reject(String),
}

/// Delay before the `attempt`-th redelivery: 0.5 s doubling, at most 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(6);
    Duration::from_millis(500 * (1 << exponent)).min(Duration::from_secs(30))
}

/// Consumes `spec` until `shutdown` completes, handling each message with `handle`. A
/// message being handled when shutdown comes is finished first (or, if the process dies,
/// delivered again after `ack_wait`).
pub async fn run<M, F, Fut>(
    bus: &dyn Bus,
    spec: &ConsumerSpec,
    shutdown: impl Future<Output = ()>,
    mut handle: F,
) -> Result<()>
where
    M: prost::Message + Default,
    F: FnMut(M, Option<TraceContext>) -> Fut,
    Fut: Future<Output = Handled>,
{
    let mut consumer = bus.consume(spec).await?;
    tokio::pin!(shutdown);
    loop {
        let delivery = tokio::select! {
            () = &mut shutdown => return Ok(()),
            delivery = consumer.next() => delivery?,
        };
        let message: M = match delivery.decode() {
            Ok(message) => message,
            Err(error) => {
                delivery.reject(&error.to_string()).await?;
                continue;
            }
        };
        let trace = delivery.trace();
        let span = tracing::info_span!(
            "handle",
            otel.kind = "consumer",
            consumer = spec.name,
            subject = %delivery.subject,
            attempt = delivery.attempt,
            trace_id = trace.as_ref().map(TraceContext::trace_id_hex).unwrap_or_default(),
        );
        continue_trace(&span, &delivery);
        count_consumed(spec, &delivery);
        let outcome = tracing::Instrument::instrument(handle(message, trace), span).await;
        settle(spec, delivery, outcome).await?;
    }
}

/// Runs `work`, telling the bus every third of `ack_wait` that `deliveries` are still in
/// progress. A group's deliveries wait for the transaction before theirs and then for their
/// own; at a million entities those took long enough that deliveries timed out, came again,
/// filled later groups with repeats, and were dead-lettered after five deliveries.
async fn while_in_progress<T>(
    spec: &ConsumerSpec,
    deliveries: &[crate::Delivery],
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let period = (spec.ack_wait / 3).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => {
                for delivery in deliveries {
                    if let Err(error) = delivery.in_progress().await {
                        tracing::warn!(consumer = spec.name, %error, "could not extend a delivery's ack wait");
                    }
                }
            }
        }
    }
}

/// Makes the publisher's span (from the delivery's `traceparent`) the parent of `span`.
fn continue_trace(span: &tracing::Span, delivery: &crate::Delivery) {
    if let Some(parent) = delivery.headers.get(crate::TRACEPARENT) {
        cadastre_telemetry::propagation::set_parent(span, parent);
    }
}

fn count_consumed(spec: &ConsumerSpec, delivery: &crate::Delivery) {
    use cadastre_telemetry::metrics::counter;
    counter!("cadastre_bus_messages_consumed_total", "consumer" => spec.name).increment(1);
    cadastre_telemetry::metrics::gauge!("cadastre_bus_consumer_pending", "consumer" => spec.name)
        .set(delivery.pending as f64);
    if delivery.attempt > 1 {
        counter!("cadastre_bus_messages_redelivered_total", "consumer" => spec.name).increment(1);
    }
}

/// Acknowledges, retries (with backoff) or dead-letters a delivery, as it was handled.
async fn settle(spec: &ConsumerSpec, delivery: crate::Delivery, handled: Handled) -> Result<()> {
    use cadastre_telemetry::metrics::counter;
    match handled {
        Handled::Done => {
            counter!("cadastre_bus_messages_acked_total", "consumer" => spec.name).increment(1);
            delivery.ack().await
        }
        Handled::Retry(reason) => {
            counter!("cadastre_bus_messages_retried_total", "consumer" => spec.name).increment(1);
            let delay = backoff(delivery.attempt);
            delivery.retry(&reason, delay).await
        }
        Handled::Reject(reason) => {
            counter!("cadastre_bus_messages_dead_lettered_total", "consumer" => spec.name)
                .increment(1);
            delivery.reject(&reason).await
        }
    }
}

/// How [`run_grouped`] forms a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    /// Messages per group, at most.
    pub max: usize,
    /// After the first message, one that arrives within this gap joins the group.
    pub gap: Duration,
    /// A group that already holds two messages is a stream, not a lone message: it waits for
    /// more until this long after its first message (or until it is full). A lone message is
    /// handled after `gap`, so a single push is not delayed.
    pub linger: Duration,
    /// Groups handled at once (at least 1). With 2, the next group is formed and its handling
    /// starts while one is still being handled: work of its own (decoding, parsing) overlaps
    /// the other's, and the handler orders what must not overlap (a transaction).
    pub overlap: usize,
}

/// The group being formed, and when its messages came.
#[derive(Default)]
struct Forming {
    deliveries: Vec<crate::Delivery>,
    first_at: Option<tokio::time::Instant>,
    last_at: Option<tokio::time::Instant>,
}

impl Forming {
    fn push(&mut self, delivery: crate::Delivery) {
        let now = tokio::time::Instant::now();
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        self.deliveries.push(delivery);
    }

    /// When the group closes unless it fills first: `gap` after a lone message; for a stream,
    /// `linger` after its first message, or `gap` after its last if that is later.
    fn closes_at(&self, grouping: &Grouping) -> Option<tokio::time::Instant> {
        let (first, last) = (self.first_at?, self.last_at?);
        Some(if self.deliveries.len() < 2 {
            last + grouping.gap
        } else {
            (first + grouping.linger).max(last + grouping.gap)
        })
    }

    fn take(&mut self) -> Vec<crate::Delivery> {
        std::mem::take(self).deliveries
    }
}

/// Like [`run`], handling deliveries in groups formed as [`Grouping`] says. For consumers
/// whose work is cheaper done together (one database transaction for several batches).
/// `handle` answers each message of the group, in order; it is called in the order the groups
/// formed, and their deliveries are settled in that order. When shutdown comes, the group being
/// formed is handed over as it is, and every group is finished first.
pub async fn run_grouped<M, F, Fut>(
    bus: &dyn Bus,
    spec: &ConsumerSpec,
    shutdown: impl Future<Output = ()>,
    grouping: Grouping,
    mut handle: F,
) -> Result<()>
where
    M: prost::Message + Default,
    F: FnMut(Vec<M>) -> Fut,
    Fut: Future<Output = Vec<Handled>>,
{
    use futures::StreamExt;
    let mut consumer = bus.consume(spec).await?;
    tokio::pin!(shutdown);
    let max = grouping.max.max(1);
    let overlap = grouping.overlap.max(1);
    let mut handling = futures::stream::FuturesOrdered::new();
    let mut forming = Forming::default();
    let mut stopping = false;
    loop {
        let room = handling.len() < overlap;
        let full = forming.deliveries.len() >= max;
        // A full group, or on shutdown what has come, is handed over as soon as there is room.
        let mut close = room && !forming.deliveries.is_empty() && (full || stopping);
        if !close {
            if stopping && forming.deliveries.is_empty() && handling.is_empty() {
                return Ok(());
            }
            let closes_at = forming.closes_at(&grouping);
            tokio::select! {
                biased;
                () = &mut shutdown, if !stopping => stopping = true,
                Some((decoded, outcomes)) = handling.next(), if !handling.is_empty() => {
                    settle_group(spec, decoded, outcomes).await?;
                }
                delivery = consumer.next(), if room && !full && !stopping => {
                    forming.push(delivery?);
                }
                () = tokio::time::sleep_until(closes_at.unwrap_or_else(tokio::time::Instant::now)),
                    if room && closes_at.is_some() => close = true,
            }
        }
        if !close {
            continue;
        }
        let mut messages = Vec::new();
        let mut decoded = Vec::new();
        for delivery in forming.take() {
            match delivery.decode::<M>() {
                Ok(message) => {
                    messages.push(message);
                    decoded.push(delivery);
                }
                Err(error) => delivery.reject(&error.to_string()).await?,
            }
        }
        if decoded.is_empty() {
            continue;
        }
        let span = tracing::info_span!(
            "handle",
            otel.kind = "consumer",
            consumer = spec.name,
            messages = decoded.len()
        );
        // A group has one parent: the first message's publisher.
        continue_trace(&span, &decoded[0]);
        for delivery in &decoded {
            count_consumed(spec, delivery);
        }
        let work = tracing::Instrument::instrument(handle(messages), span);
        handling.push_back(async move {
            let outcomes = while_in_progress(spec, &decoded, work).await;
            (decoded, outcomes)
        });
    }
}

/// Settles each delivery of a group with its answer, in order.
async fn settle_group(
    spec: &ConsumerSpec,
    decoded: Vec<crate::Delivery>,
    outcomes: Vec<Handled>,
) -> Result<()> {
    let mut outcomes = outcomes.into_iter();
    for delivery in decoded {
        let handled = outcomes
            .next()
            .unwrap_or_else(|| Handled::Retry("no answer for this message".into()));
        settle(spec, delivery, handled).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }
}
