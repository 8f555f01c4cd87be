//! One contract, two buses: every test runs against the in-process bus and against a real
//! NATS JetStream server (`CADASTRE_TEST_NATS_URL`, started by `scripts/test`), each test in
//! its own namespace (stream and subjects) so they run in parallel.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::memory::InProcessBus;
use cadastre_bus::nats::{JetStreamBus, PULL_BYTES, StreamSettings};
use cadastre_bus::subjects::{DEAD_LETTERS, HARVEST_REQUESTS, HARVESTED, STREAM};
use cadastre_bus::{Bus, ConsumerSpec, Outgoing, TraceContext};
use cadastre_proto::v1 as pb;

const NATS_URL_ENV: &str = "CADASTRE_TEST_NATS_URL";
/// Long enough that a delivery that should not come does not come by accident.
const QUIET: Duration = Duration::from_millis(600);
/// Long enough for anything that should come.
const PATIENCE: Duration = Duration::from_secs(20);

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $( #[tokio::test] async fn $name() { super::$name(super::in_process()).await } )*
        }
        mod jetstream {
            $( #[tokio::test] async fn $name() { super::$name(super::jetstream().await).await } )*
        }
    };
}

contract!(
    delivers_typed_messages_with_trace_context,
    redelivers_what_is_not_acknowledged_in_time,
    retries_then_dead_letters_with_the_reason,
    dead_letters_what_crashes_every_consumer,
    rejects_straight_to_dead_letters,
    drops_duplicate_ids,
    publishes_many_in_order_with_an_answer_each,
    replicas_share_a_durable_consumer,
    bounds_messages_in_flight,
    a_durable_consumer_resumes_where_it_stopped,
    the_worker_counts_what_it_handles,
    a_grouped_worker_waits_for_a_stream_but_not_for_a_lone_message,
    a_long_group_is_not_delivered_again,
    overlapping_groups_settle_in_order,
    shutdown_hands_over_the_group_being_formed,
);

fn in_process() -> Arc<dyn Bus> {
    Arc::new(InProcessBus::new())
}

/// The test NATS server `scripts/test` started.
fn nats_url() -> String {
    std::env::var(NATS_URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{NATS_URL_ENV} is not set: run the suite with scripts/test, which starts nats-server"
        )
    })
}

async fn jetstream() -> Arc<dyn Bus> {
    let url = nats_url();
    let settings = StreamSettings {
        namespace: format!("t{}", uuid::Uuid::new_v4().simple()),
        ..StreamSettings::default()
    };
    Arc::new(JetStreamBus::connect(&url, settings).await.unwrap())
}

fn request(n: u32) -> pb::HarvestRequest {
    pb::HarvestRequest {
        location_key: format!("file:/srv/{n}.yaml"),
        reason: format!("request {n}"),
        ..Default::default()
    }
}

fn spec(name: &'static str) -> ConsumerSpec {
    ConsumerSpec::new(name, HARVEST_REQUESTS.name)
}

async fn publish(bus: &dyn Bus, n: u32) {
    HARVEST_REQUESTS
        .publish(bus, &request(n), None, None)
        .await
        .unwrap();
}

/// The next delivery, or a failure naming what was awaited.
async fn next(consumer: &mut Box<dyn cadastre_bus::Consumer>) -> cadastre_bus::Delivery {
    tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("a delivery within the patience window")
        .unwrap()
}

/// Whether a delivery arrives within [`QUIET`].
async fn arrives(consumer: &mut Box<dyn cadastre_bus::Consumer>) -> Option<cadastre_bus::Delivery> {
    tokio::time::timeout(QUIET, consumer.next())
        .await
        .ok()
        .map(Result::unwrap)
}

async fn dead_letters(bus: &dyn Bus) -> Box<dyn cadastre_bus::Consumer> {
    bus.consume(&ConsumerSpec::new("dead-letter-reader", DEAD_LETTERS.name))
        .await
        .unwrap()
}

async fn delivers_typed_messages_with_trace_context(bus: Arc<dyn Bus>) {
    let mut consumer = bus.consume(&spec("harvester")).await.unwrap();
    let trace = TraceContext::new_root();
    HARVEST_REQUESTS
        .publish(&*bus, &request(1), None, Some(&trace))
        .await
        .unwrap();
    let delivery = next(&mut consumer).await;
    assert_eq!(delivery.subject, HARVEST_REQUESTS.name);
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.trace(), Some(trace));
    let message: pb::HarvestRequest = delivery.decode().unwrap();
    assert_eq!(message, request(1));
    delivery.ack().await.unwrap();
    assert!(arrives(&mut consumer).await.is_none(), "acked means gone");

    // A payload that is not the subject's type is reported, not mis-read.
    bus.publish(
        HARVEST_REQUESTS.name,
        Outgoing {
            payload: bytes::Bytes::from_static(&[0xff, 0xff, 0xff]),
            ..Outgoing::default()
        },
    )
    .await
    .unwrap();
    let garbage = next(&mut consumer).await;
    let error = garbage.decode::<pb::HarvestRequest>().unwrap_err();
    assert!(error.to_string().contains(HARVEST_REQUESTS.name), "{error}");
}

async fn redelivers_what_is_not_acknowledged_in_time(bus: Arc<dyn Bus>) {
    let spec = spec("harvester").with_ack_wait(Duration::from_secs(1));
    let mut consumer = bus.consume(&spec).await.unwrap();
    publish(&*bus, 1).await;
    let first = next(&mut consumer).await;
    assert_eq!(first.attempt, 1);
    // The handler "hangs": no ack. After ack_wait the message comes again.
    drop(first);
    let again = next(&mut consumer).await;
    assert_eq!(again.attempt, 2);
    assert_eq!(again.decode::<pb::HarvestRequest>().unwrap(), request(1));
    again.ack().await.unwrap();
    assert!(arrives(&mut consumer).await.is_none());
}

async fn retries_then_dead_letters_with_the_reason(bus: Arc<dyn Bus>) {
    let spec = spec("harvester").with_max_deliveries(3);
    let mut consumer = bus.consume(&spec).await.unwrap();
    let mut dead = dead_letters(&*bus).await;
    publish(&*bus, 7).await;
    for attempt in 1..=3 {
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.attempt, attempt);
        delivery
            .retry("the git host answered 503", Duration::from_millis(50))
            .await
            .unwrap();
    }
    assert!(
        arrives(&mut consumer).await.is_none(),
        "no delivery after the last allowed one"
    );
    let letter: pb::DeadLetter = next(&mut dead).await.decode().unwrap();
    assert_eq!(letter.subject, HARVEST_REQUESTS.name);
    assert_eq!(letter.consumer, "harvester");
    assert_eq!(letter.deliveries, 3);
    assert!(
        letter.reason.contains("the git host answered 503"),
        "{}",
        letter.reason
    );
    let original: pb::HarvestRequest = prost::Message::decode(letter.payload.as_slice()).unwrap();
    assert_eq!(original, request(7));
}

async fn dead_letters_what_crashes_every_consumer(bus: Arc<dyn Bus>) {
    let spec = spec("harvester")
        .with_max_deliveries(2)
        .with_ack_wait(Duration::from_secs(1));
    let mut dead = dead_letters(&*bus).await;
    publish(&*bus, 9).await;
    // Each "replica" takes the message and dies without a word.
    for attempt in 1..=2 {
        let mut consumer = bus.consume(&spec).await.unwrap();
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.attempt, attempt);
        drop(delivery);
        drop(consumer);
    }
    // The next replica never sees it: it is dead-lettered first.
    let mut consumer = bus.consume(&spec).await.unwrap();
    let letter: pb::DeadLetter = {
        let waiting = tokio::spawn(async move { arrives_long(&mut consumer).await });
        let letter = next(&mut dead).await.decode().unwrap();
        assert!(
            waiting.await.unwrap().is_none(),
            "the poison message reached a handler"
        );
        letter
    };
    assert!(
        letter.reason.contains("not acknowledged"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.deliveries, 3);
}

async fn arrives_long(
    consumer: &mut Box<dyn cadastre_bus::Consumer>,
) -> Option<cadastre_bus::Delivery> {
    tokio::time::timeout(Duration::from_secs(4), consumer.next())
        .await
        .ok()
        .map(Result::unwrap)
}

async fn rejects_straight_to_dead_letters(bus: Arc<dyn Bus>) {
    let mut consumer = bus.consume(&spec("harvester")).await.unwrap();
    let mut dead = dead_letters(&*bus).await;
    publish(&*bus, 3).await;
    next(&mut consumer)
        .await
        .reject("location type `ftp` is not supported")
        .await
        .unwrap();
    let letter: pb::DeadLetter = next(&mut dead).await.decode().unwrap();
    assert_eq!(letter.deliveries, 1);
    assert_eq!(letter.reason, "location type `ftp` is not supported");
    assert!(arrives(&mut consumer).await.is_none());
}

async fn drops_duplicate_ids(bus: Arc<dyn Bus>) {
    let mut consumer = bus.consume(&spec("harvester")).await.unwrap();
    let first = HARVEST_REQUESTS
        .publish(&*bus, &request(1), Some("push-abc123".into()), None)
        .await
        .unwrap();
    let second = HARVEST_REQUESTS
        .publish(&*bus, &request(1), Some("push-abc123".into()), None)
        .await
        .unwrap();
    let other = HARVEST_REQUESTS
        .publish(&*bus, &request(2), Some("push-def456".into()), None)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(second.sequence, first.sequence);
    assert!(!other.duplicate);
    // Ids are per subject: the same id elsewhere is a different message.
    let elsewhere = cadastre_bus::subjects::HARVESTED
        .publish(
            &*bus,
            &pb::HarvestedLocation::default(),
            Some("push-abc123".into()),
            None,
        )
        .await
        .unwrap();
    assert!(!elsewhere.duplicate);
    let mut got = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut consumer).await;
        got.push(delivery.decode::<pb::HarvestRequest>().unwrap());
        delivery.ack().await.unwrap();
    }
    assert_eq!(got, [request(1), request(2)]);
    assert!(arrives(&mut consumer).await.is_none());
}

async fn publishes_many_in_order_with_an_answer_each(bus: Arc<dyn Bus>) {
    let mut consumer = bus.consume(&spec("harvester")).await.unwrap();
    let before = HARVEST_REQUESTS
        .publish(&*bus, &request(0), Some("many-2".into()), None)
        .await
        .unwrap();
    let messages = (1..=300).map(|n| (request(n), Some(format!("many-{n}"))));
    let answers = HARVEST_REQUESTS.publish_all(&*bus, messages).await;
    assert_eq!(answers.len(), 300);
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    // The second carries the id published before: a repeat, answered with the first's place.
    assert!(answers[1].duplicate);
    assert_eq!(answers[1].sequence, before.sequence);
    let stored: Vec<u64> = answers
        .iter()
        .filter(|answer| !answer.duplicate)
        .map(|answer| answer.sequence)
        .collect();
    assert_eq!(stored.len(), 299);
    assert!(
        stored.windows(2).all(|pair| pair[0] < pair[1]),
        "{stored:?}"
    );
    let mut got = Vec::new();
    for _ in 0..300 {
        let delivery = next(&mut consumer).await;
        got.push(delivery.decode::<pb::HarvestRequest>().unwrap());
        delivery.ack().await.unwrap();
    }
    let expected: Vec<_> = [0, 1].into_iter().chain(3..=300).map(request).collect();
    assert_eq!(got, expected);
    assert!(arrives(&mut consumer).await.is_none());
}

async fn replicas_share_a_durable_consumer(bus: Arc<dyn Bus>) {
    const MESSAGES: u32 = 40;
    let spec = spec("harvester").with_max_in_flight(2);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(bus.consume(&spec).await.unwrap());
    }
    for n in 0..MESSAGES {
        publish(&*bus, n).await;
    }
    let (done, mut results) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (replica, mut consumer) in replicas.into_iter().enumerate() {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let delivery = consumer.next().await.unwrap();
                let message: pb::HarvestRequest = delivery.decode().unwrap();
                // Work takes a moment, so both replicas get some.
                tokio::time::sleep(Duration::from_millis(10)).await;
                delivery.ack().await.unwrap();
                let _ = done.send((replica, message.reason));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut per_replica = [0; 2];
    for _ in 0..MESSAGES {
        let (replica, reason) = tokio::time::timeout(PATIENCE, results.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(seen.insert(reason.clone()), "{reason} delivered twice");
        per_replica[replica] += 1;
    }
    assert!(
        tokio::time::timeout(QUIET, results.recv()).await.is_err(),
        "more deliveries than messages"
    );
    assert!(
        per_replica.iter().all(|n| *n > 0),
        "both replicas work: {per_replica:?}"
    );
    for task in tasks {
        task.abort();
    }
}

async fn bounds_messages_in_flight(bus: Arc<dyn Bus>) {
    let spec = spec("harvester").with_max_in_flight(3);
    let mut consumer = bus.consume(&spec).await.unwrap();
    for n in 0..5 {
        publish(&*bus, n).await;
    }
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next(&mut consumer).await);
    }
    assert!(
        arrives(&mut consumer).await.is_none(),
        "a fourth delivery while three are unacknowledged"
    );
    held.remove(0).ack().await.unwrap();
    let fourth = next(&mut consumer).await;
    assert_eq!(fourth.attempt, 1);
    let reasons: BTreeSet<String> = held
        .iter()
        .chain(std::iter::once(&fourth))
        .map(|d| d.decode::<pb::HarvestRequest>().unwrap().reason)
        .collect();
    assert_eq!(reasons.len(), 3);
}

async fn a_durable_consumer_resumes_where_it_stopped(bus: Arc<dyn Bus>) {
    // Another durable name gets its own copy of everything.
    let mut auditor = bus
        .consume(&ConsumerSpec::new("auditor", HARVEST_REQUESTS.name))
        .await
        .unwrap();
    // A replica that dies holds what was sent its way until `ack_wait`; keep that short.
    let spec = spec("harvester").with_ack_wait(Duration::from_secs(2));
    // Messages published before the consumer first exists are delivered too.
    for n in 0..3 {
        publish(&*bus, n).await;
    }
    let mut consumer = bus.consume(&spec).await.unwrap();
    for n in 0..2 {
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.decode::<pb::HarvestRequest>().unwrap(), request(n));
        delivery.ack().await.unwrap();
    }
    drop(consumer);
    publish(&*bus, 3).await;
    let mut restarted = bus.consume(&spec).await.unwrap();
    let mut rest = BTreeSet::new();
    while rest.len() < 2 {
        let delivery = next(&mut restarted).await;
        rest.insert(delivery.decode::<pb::HarvestRequest>().unwrap().reason);
        delivery.ack().await.unwrap();
    }
    assert_eq!(
        rest,
        BTreeSet::from([request(2).reason, request(3).reason]),
        "acknowledged messages do not come again"
    );
    assert!(arrives(&mut restarted).await.is_none());
    for n in 0..4 {
        let delivery = next(&mut auditor).await;
        assert_eq!(delivery.decode::<pb::HarvestRequest>().unwrap(), request(n));
        delivery.ack().await.unwrap();
    }
}

/// Every service creates the stream when it starts; starting together must not fail any.
#[tokio::test]
async fn jetstream_services_starting_together_share_one_stream() {
    let url = nats_url();
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            let settings = StreamSettings {
                namespace: namespace.clone(),
                ..StreamSettings::default()
            };
            tokio::spawn(async move { JetStreamBus::connect(&url, settings).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
}

/// A consumer that may hold many large messages is sent them a bounded number of bytes at a
/// time, not all at once: the server cuts a connection whose unread data passes 64 MiB.
#[tokio::test]
async fn jetstream_sends_large_messages_a_bounded_number_of_bytes_at_a_time() {
    let url = nats_url();
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let settings = StreamSettings {
        namespace: namespace.clone(),
        ..StreamSettings::default()
    };
    let bus = JetStreamBus::connect(&url, settings).await.unwrap();
    const MESSAGES: usize = 48;
    const SIZE: usize = 900 << 10;
    for n in 0..MESSAGES {
        let part = pb::HarvestedLocation {
            location_key: format!("file:/srv/{n}.yaml"),
            documents: vec![pb::RawDocument {
                target: format!("/srv/{n}.yaml"),
                content: vec![b'x'; SIZE],
                content_hash: String::new(),
            }],
            ..Default::default()
        };
        HARVESTED.publish(&bus, &part, None, None).await.unwrap();
    }
    let spec = ConsumerSpec::new("big-reader", HARVESTED.name).with_max_in_flight(1024);
    let mut consumer = bus.consume(&spec).await.unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.attempt, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // What the server has sent this consumer and not had acknowledged.
    let client = async_nats::connect(&url).await.unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream(format!("{namespace}_{STREAM}"))
        .await
        .unwrap();
    let info = stream.consumer_info("big-reader").await.unwrap();
    let bound = PULL_BYTES / SIZE + 2;
    assert!(
        info.num_ack_pending <= bound,
        "{} of {MESSAGES} messages of {SIZE} bytes sent at once (at most {bound} expected)",
        info.num_ack_pending
    );
    // The rest still come, as what was taken is settled.
    first.ack().await.unwrap();
    for _ in 1..MESSAGES {
        next(&mut consumer).await.ack().await.unwrap();
    }
}

/// The value of the Prometheus sample starting with `series` (0 when absent).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

async fn the_worker_counts_what_it_handles(bus: Arc<dyn Bus>) {
    cadastre_telemetry::metrics::install();
    const COUNTED: ConsumerSpec = ConsumerSpec::new("metrics-test", HARVEST_REQUESTS.name);
    for n in 0..3 {
        publish(&*bus, n).await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let mut handled = 0;
    let worker = cadastre_bus::worker::run(
        &*bus,
        &COUNTED,
        async {
            let _ = stopped.await;
        },
        |request: pb::HarvestRequest, _| {
            handled += 1;
            if handled == 3 {
                let _ = stop.take().map(|stop| stop.send(()));
            }
            async move {
                if request.reason == "request 2" {
                    cadastre_bus::worker::Handled::Reject("not this one".into())
                } else {
                    cadastre_bus::worker::Handled::Done
                }
            }
        },
    );
    tokio::time::timeout(PATIENCE, worker)
        .await
        .expect("three messages handled")
        .unwrap();
    let metrics = cadastre_telemetry::metrics::render();
    let labels = "{consumer=\"metrics-test\"}";
    assert!(
        sample(
            &metrics,
            &format!("cadastre_bus_messages_consumed_total{labels}")
        ) >= 3.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            &format!("cadastre_bus_messages_acked_total{labels}")
        ) >= 2.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            &format!("cadastre_bus_messages_dead_lettered_total{labels}")
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("cadastre_bus_consumer_pending{labels}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("cadastre_bus_published_total{subject=\"catalog.harvest.request\"}"),
        "{metrics}"
    );
}

/// A lone message (a push) is handled at once; a stream (an import) waits up to `linger` to
/// fill its group, so several batches share one transaction.
async fn a_grouped_worker_waits_for_a_stream_but_not_for_a_lone_message(bus: Arc<dyn Bus>) {
    use cadastre_bus::worker::Grouping;
    const GROUPED: ConsumerSpec = ConsumerSpec::new("grouped-test", HARVEST_REQUESTS.name);
    let grouping = Grouping {
        max: 8,
        // Wide enough that two messages published back to back are one group on NATS too.
        gap: Duration::from_millis(200),
        linger: Duration::from_secs(5),
        overlap: 1,
    };
    let (stop, worker, mut groups) =
        grouped_worker(Arc::clone(&bus), &GROUPED, grouping, Duration::ZERO);

    let lone = std::time::Instant::now();
    publish(&*bus, 0).await;
    let group = tokio::time::timeout(PATIENCE, groups.recv())
        .await
        .expect("the lone message handled")
        .unwrap();
    assert_eq!(group, ["request 0"]);
    assert!(
        lone.elapsed() < grouping.linger,
        "a lone message waited for the stream's linger: {:?}",
        lone.elapsed()
    );

    // Two together make a stream: messages that come within the linger join their group.
    let stream = std::time::Instant::now();
    publish(&*bus, 1).await;
    publish(&*bus, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 3..6 {
        publish(&*bus, n).await;
    }
    let mut handled: Vec<Vec<String>> = Vec::new();
    while handled.iter().map(Vec::len).sum::<usize>() < 5 {
        let group = tokio::time::timeout(PATIENCE, groups.recv())
            .await
            .expect("the stream handled")
            .unwrap();
        handled.push(group);
    }
    assert_eq!(
        handled,
        [[
            "request 1",
            "request 2",
            "request 3",
            "request 4",
            "request 5"
        ]],
        "one group for the stream"
    );
    assert!(
        stream.elapsed() >= Duration::from_millis(300),
        "the group waited for the later messages"
    );
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, worker)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
}

/// A group whose work outlasts `ack_wait` (a large transaction) keeps its deliveries: the
/// worker reports them in progress, so none comes again and none is dead-lettered.
async fn a_long_group_is_not_delivered_again(bus: Arc<dyn Bus>) {
    use cadastre_bus::worker::Grouping;
    const SLOW: ConsumerSpec = ConsumerSpec::new("slow-group-test", HARVEST_REQUESTS.name)
        .with_ack_wait(Duration::from_secs(1))
        .with_max_deliveries(2);
    let grouping = Grouping {
        max: 8,
        gap: Duration::from_millis(200),
        linger: Duration::from_millis(500),
        overlap: 1,
    };
    let mut dead = dead_letters(&*bus).await;
    // Three ack waits: without progress reports, every message would come again.
    let (stop, worker, mut groups) =
        grouped_worker(Arc::clone(&bus), &SLOW, grouping, Duration::from_secs(3));
    for n in 0..3 {
        publish(&*bus, n).await;
    }
    let mut handled = Vec::new();
    while handled.len() < 3 {
        let group = tokio::time::timeout(PATIENCE, groups.recv())
            .await
            .expect("the group handled")
            .unwrap();
        handled.extend(group);
    }
    // A replica joined under the same name would be handed whatever timed out. It waits past
    // the group's work and more: nothing comes to it.
    let mut replica = bus.consume(&SLOW).await.unwrap();
    let repeat = tokio::time::timeout(Duration::from_secs(4), replica.next()).await;
    assert!(
        repeat.is_err(),
        "a delivery of the long group came again: {repeat:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Ok(group) = groups.try_recv() {
        handled.extend(group);
    }
    handled.sort();
    assert_eq!(
        handled,
        ["request 0", "request 1", "request 2"],
        "each handled once"
    );
    assert!(arrives(&mut dead).await.is_none(), "nothing dead-lettered");
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

/// With an overlap of 2, the next group is formed and handed over while one is still being
/// handled; each group is acknowledged once handled, and none comes again.
async fn overlapping_groups_settle_in_order(bus: Arc<dyn Bus>) {
    use cadastre_bus::worker::{Grouping, Handled};
    const OVERLAPPING: ConsumerSpec = ConsumerSpec::new("overlap-test", HARVEST_REQUESTS.name)
        .with_ack_wait(Duration::from_secs(2));
    let grouping = Grouping {
        max: 2,
        gap: Duration::from_millis(200),
        linger: Duration::from_millis(500),
        overlap: 2,
    };
    let mut dead = dead_letters(&*bus).await;
    // The first group finishes only once the second has been handed over: with groups
    // handled one at a time, it would wait forever.
    let second_started = Arc::new(tokio::sync::Notify::new());
    let (groups_tx, mut groups) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let bus = Arc::clone(&bus);
        let second_started = Arc::clone(&second_started);
        let mut calls = 0;
        async move {
            cadastre_bus::worker::run_grouped(
                &*bus,
                &OVERLAPPING,
                async {
                    let _ = stopped.await;
                },
                grouping,
                |requests: Vec<pb::HarvestRequest>| {
                    calls += 1;
                    let first = calls == 1;
                    if calls == 2 {
                        second_started.notify_one();
                    }
                    let answers = vec![Handled::Done; requests.len()];
                    let reasons: Vec<String> = requests.into_iter().map(|r| r.reason).collect();
                    let (second_started, groups_tx) =
                        (Arc::clone(&second_started), groups_tx.clone());
                    async move {
                        if first {
                            second_started.notified().await;
                        }
                        let _ = groups_tx.send(reasons);
                        answers
                    }
                },
            )
            .await
        }
    });
    for n in 0..4 {
        publish(&*bus, n).await;
    }
    let mut handled: Vec<Vec<String>> = Vec::new();
    while handled.iter().map(Vec::len).sum::<usize>() < 4 {
        let group = tokio::time::timeout(PATIENCE, groups.recv())
            .await
            .expect("both groups handled: the second was handed over while the first waited")
            .unwrap();
        handled.push(group);
    }
    handled.sort();
    assert_eq!(
        handled,
        [["request 0", "request 1"], ["request 2", "request 3"]],
        "two groups, each handled once"
    );
    // Both groups were acknowledged: nothing comes again past the ack wait.
    let mut replica = bus.consume(&OVERLAPPING).await.unwrap();
    let repeat = tokio::time::timeout(Duration::from_secs(3), replica.next()).await;
    assert!(repeat.is_err(), "a delivery came again: {repeat:?}");
    assert!(arrives(&mut dead).await.is_none(), "nothing dead-lettered");
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

/// On shutdown the group being formed is handled as it is, not left waiting for its linger or
/// for its deliveries' ack wait.
async fn shutdown_hands_over_the_group_being_formed(bus: Arc<dyn Bus>) {
    use cadastre_bus::worker::Grouping;
    const STOPPING: ConsumerSpec = ConsumerSpec::new("stopping-test", HARVEST_REQUESTS.name);
    let grouping = Grouping {
        max: 8,
        gap: Duration::from_secs(60),
        linger: Duration::from_secs(60),
        overlap: 1,
    };
    let (stop, worker, mut groups) =
        grouped_worker(Arc::clone(&bus), &STOPPING, grouping, Duration::ZERO);
    publish(&*bus, 0).await;
    publish(&*bus, 1).await;
    // Both delivered into the group, which would wait a minute for more.
    tokio::time::sleep(QUIET).await;
    assert!(
        groups.try_recv().is_err(),
        "the group is still being formed"
    );
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, worker)
        .await
        .expect("the worker stops without waiting for the linger")
        .unwrap()
        .unwrap();
    assert_eq!(groups.recv().await.unwrap(), ["request 0", "request 1"]);
}

/// A grouped worker on `spec` that sends each group's reasons to the receiver it answers,
/// then works for `work` and acknowledges the group. Stopped through the sender.
fn grouped_worker(
    bus: Arc<dyn Bus>,
    spec: &'static ConsumerSpec,
    grouping: cadastre_bus::worker::Grouping,
    work: Duration,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<cadastre_bus::Result<()>>,
    tokio::sync::mpsc::UnboundedReceiver<Vec<String>>,
) {
    let (groups_tx, groups) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        cadastre_bus::worker::run_grouped(
            &*bus,
            spec,
            async {
                let _ = stopped.await;
            },
            grouping,
            |requests: Vec<pb::HarvestRequest>| {
                let answers = vec![cadastre_bus::worker::Handled::Done; requests.len()];
                let _ = groups_tx.send(requests.into_iter().map(|r| r.reason).collect());
                async move {
                    tokio::time::sleep(work).await;
                    answers
                }
            },
        )
        .await
    });
    (stop, worker, groups)
}
