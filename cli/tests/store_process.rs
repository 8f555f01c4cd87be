//! `cadastre store` as a real process: serves gRPC on the address given, keeps data across
//! restarts, and exits cleanly on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(database_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cadastre"))
        .args([
            "store",
            "--database-url",
            database_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("CADASTRE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cadastre store")
}

async fn connect(port: u16) -> CatalogServiceClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match CatalogServiceClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(client) => return client,
            Err(error) if Instant::now() > deadline => panic!("store did not come up: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "store did not stop within its grace period"
        );
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn serves_keeps_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("data/catalog.db").display()
    );
    let port = free_port();
    let mut child = start(&url, port);
    let mut client = connect(port).await;
    let location = client
        .add_location(pb::AddLocationRequest {
            r#type: "url".into(),
            target: "https://example.com/a.yaml".into(),
        })
        .await
        .unwrap()
        .into_inner();
    drop(client);
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");

    // Restarted on the same database: the data is still there.
    let port = free_port();
    let mut child = start(&url, port);
    let mut client = connect(port).await;
    let listed = client
        .list_locations(pb::ListLocationsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.locations, [location]);
    // An idle client still connected does not hold the process past its grace period.
    assert!(terminate(&mut child).success());
    drop(client);
}

#[test]
fn a_database_it_cannot_reach_is_one_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_cadastre"))
        .args([
            "store",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("CADASTRE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cadastre: connecting to postgres://nobody@127.0.0.1:1/none"),
        "{stderr}"
    );
}
