//! Each service process answers `/live`, `/ready`, `/metrics` and the gRPC health check on
//! `admin.listen`; readiness follows its dependencies.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, log_tails, start, wait_for_port};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_answer_probes_metrics_and_grpc_health() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = cadastre_testkit::nats_url();
    let scratch = tempfile::tempdir().unwrap();
    let logs = scratch.path();
    let (store_port, store_admin, gateway_port, gateway_admin) =
        (free_port(), free_port(), free_port(), free_port());
    let dead_store = free_port();
    let namespace = format!("a{}", uuid::Uuid::new_v4().simple());
    let write = |name: &str, admin: u16, store_url: u16| {
        let path = scratch.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[store]\ndatabase_url = \"sqlite://{}?mode=rwc\"\nlisten = \"127.0.0.1:{store_port}\"\n\n\
                 [bus]\nnats_url = \"{nats}\"\nnamespace = \"{namespace}\"\n\n\
                 [gateway]\nlisten = \"127.0.0.1:{gateway_port}\"\nstore_url = \"http://127.0.0.1:{store_url}\"\n\n\
                 [admin]\nlisten = \"127.0.0.1:{admin}\"\n",
                scratch.path().join("catalog.db").display()
            ),
        )
        .unwrap();
        path
    };
    let _store = start(
        &write("store.toml", store_admin, store_port),
        &["store"],
        &logs.join("store.log"),
    );
    wait_for_port(store_admin, logs).await;
    wait_for_port(store_port, logs).await;

    let admin = format!("http://127.0.0.1:{store_admin}");
    assert_eq!(get(&format!("{admin}/live")).await.0, 200);
    let (status, ready) = get(&format!("{admin}/ready")).await;
    assert_eq!(status, 200, "{ready}\n{}", log_tails(logs));
    // A gRPC call to the store shows in its metrics.
    let mut client = cadastre_proto::v1::catalog_service_client::CatalogServiceClient::connect(
        format!("http://127.0.0.1:{store_port}"),
    )
    .await
    .unwrap();
    client
        .list_locations(cadastre_proto::v1::ListLocationsRequest {})
        .await
        .unwrap();
    let (_, metrics) = get(&format!("{admin}/metrics")).await;
    assert!(
        metrics.contains(
            "cadastre_grpc_server_requests_total{path=\"/cadastre.v1.CatalogService/ListLocations\"}"
        ),
        "{metrics}"
    );
    // The standard gRPC health check, on the admin port.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Endpoint::from_shared(admin.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "health says {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A gateway whose store cannot be reached lives, but is not ready, and says why.
    let _gateway = start(
        &write("gateway.toml", gateway_admin, dead_store),
        &["gateway"],
        &logs.join("gateway.log"),
    );
    wait_for_port(gateway_admin, logs).await;
    let admin = format!("http://127.0.0.1:{gateway_admin}");
    assert_eq!(get(&format!("{admin}/live")).await.0, 200);
    let (status, ready) = get(&format!("{admin}/ready")).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("catalog-store"), "{ready}");
}
