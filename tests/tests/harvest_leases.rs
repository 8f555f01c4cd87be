//! Two harvester workers never read one location at once: each takes the location's lease
//! first, from catalog-store (SQLite, served over gRPC) when they are replicas, or from
//! memory when they are workers of the only harvester process. A slow HTTP server counts how
//! many reads of its one catalog file overlap while both workers get requests for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cadastre_bus::memory::InProcessBus;
use cadastre_bus::subjects::{HARVEST_REQUESTS, HARVESTED};
use cadastre_bus::{Bus, ConsumerSpec};
use cadastre_harvester::Harvester;
use cadastre_harvester::lease::Leases;
use cadastre_proto::v1 as pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves `catalog-info.yaml` slowly (300 ms), recording the most reads in flight at once.
async fn slow_server(in_flight: Arc<AtomicUsize>, most: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let body = cadastre_testkit::component_yaml("leased", "team-l");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/yaml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/catalog-info.yaml")
}

/// Where the two workers' leases come from.
#[derive(Clone, Copy)]
enum Workers {
    /// Two replicas, each with its own store-backed leases.
    Replicas,
    /// Two workers of one process, sharing one process's store-backed leases.
    OneProcess,
    /// Two workers of the only harvester process, with in-memory leases.
    OnlyProcess,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_take_turns_on_one_location() {
    reads_of_one_location_never_overlap(Workers::Replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_of_one_process_take_turns_on_one_location() {
    reads_of_one_location_never_overlap(Workers::OneProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_of_the_only_harvester_take_turns_with_leases_in_memory() {
    reads_of_one_location_never_overlap(Workers::OnlyProcess).await;
}

async fn reads_of_one_location_never_overlap(workers: Workers) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scratch = tempfile::tempdir().unwrap();
    let store = cadastre_catalog_store::CatalogStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        scratch.path().join("catalog.db").display()
    ))
    .await
    .unwrap();
    let store_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_url = format!("http://{}", store_listener.local_addr().unwrap());
    tokio::spawn(cadastre_catalog_store::server::run(
        store,
        store_listener,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let (ttl, wait) = (Duration::from_secs(30), Duration::from_secs(5));
    let store_leases = || {
        Leases::new(
            tonic::transport::Endpoint::from_shared(store_url.clone())
                .unwrap()
                .connect_lazy(),
            ttl,
            wait,
        )
    };
    let leases: Vec<Leases> = match workers {
        Workers::Replicas => vec![store_leases(), store_leases()],
        Workers::OneProcess => {
            let shared = store_leases();
            vec![shared.for_worker(), shared.for_worker()]
        }
        Workers::OnlyProcess => {
            let shared = Leases::in_process(ttl, wait);
            vec![shared.for_worker(), shared.for_worker()]
        }
    };

    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let url = slow_server(Arc::clone(&in_flight), Arc::clone(&most)).await;
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    // Everything the workers publish, counted by a consumer of this test's own.
    const WATCH: ConsumerSpec = ConsumerSpec::new("leases-test", HARVESTED.name);
    let mut harvested = bus.consume(&WATCH).await.unwrap();
    for (worker, leases) in leases.into_iter().enumerate() {
        let harvester = Arc::new(
            Harvester::new(cadastre_harvester::Settings {
                cache_dir: scratch.path().join(format!("cache-{worker}")),
                allowed_hosts: vec!["127.0.0.1".into()],
                allow_private_addresses: true,
                ..cadastre_harvester::Settings::default()
            })
            .unwrap(),
        );
        tokio::spawn(cadastre_harvester::service::run_with(
            Arc::clone(&bus),
            harvester,
            Some(leases),
            std::future::pending(),
        ));
    }

    // Four requests for the one location, at once: the workers share them, one read at a
    // time.
    for n in 0..4 {
        let request = pb::HarvestRequest {
            request_id: format!("lease-test/{n}"),
            location_key: format!("url:{url}"),
            trigger: pb::HarvestTrigger::Refresh.into(),
            ..Default::default()
        };
        HARVEST_REQUESTS
            .publish(&*bus, &request, Some(request.request_id.clone()), None)
            .await
            .unwrap();
    }
    for _ in 0..4 {
        let delivery = tokio::time::timeout(Duration::from_secs(30), harvested.next())
            .await
            .expect("every request is harvested")
            .unwrap();
        let part: pb::HarvestedLocation = delivery.decode().unwrap();
        assert_eq!(part.documents.len(), 1, "{:?}", part.errors);
        delivery.ack().await.unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "two reads overlapped");
}
