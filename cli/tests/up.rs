//! `cadastre up` as a newcomer runs it: one process on a fresh data folder serves the bundled
//! examples through the REST API, search and the web UI; a second instance on the same folder
//! is refused; a restart keeps the data.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Service, free_port, log_tails, wait_for_port};
use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn up(data_dir: &Path, port: u16, log: &Path) -> Service {
    let log = std::fs::File::create(log).unwrap();
    Service(
        Command::new(env!("CARGO_BIN_EXE_cadastre"))
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--catalog")
            .arg(examples())
            .env_remove("RUST_LOG")
            .env_remove("CADASTRE_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cadastre up"),
    )
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Waits (at most 60 s) until `url` answers 200 with a body `accept` likes.
async fn eventually(
    http: &reqwest::Client,
    url: &str,
    accept: impl Fn(&str) -> bool,
    logs: &Path,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(http, url).await;
        if status == 200 && accept(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} answers {status}: {body}\n{}",
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn up_serves_the_examples_refuses_a_second_instance_and_keeps_data_across_restarts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let first = up(&data, port, &logs.join("first.log"));
    wait_for_port(port, logs).await;
    // An entity reached through two levels of Location fan-out, with its relations built.
    let petstore = eventually(
        &http,
        &format!("{base}/api/catalog/entities/by-name/component/default/petstore"),
        |_| true,
        logs,
    )
    .await;
    let petstore: Value = serde_json::from_str(&petstore).unwrap();
    assert_eq!(petstore["spec"]["type"], "service");
    assert!(
        petstore["relations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "ownedBy"),
        "{petstore}"
    );
    // Users and groups come through acme-corp.yaml's Location.
    eventually(
        &http,
        &format!("{base}/api/catalog/entities/by-name/group/default/team-a"),
        |_| true,
        logs,
    )
    .await;
    eventually(
        &http,
        &format!("{base}/api/search/query?term=petstore"),
        |body| body.contains("component:default/petstore"),
        logs,
    )
    .await;
    // The web UI: the catalog lists the examples, an entity page shows one with its owner.
    eventually(
        &http,
        &format!("{base}/?filter=kind=component"),
        |body| body.contains("<html") && body.contains("petstore"),
        logs,
    )
    .await;
    eventually(
        &http,
        &format!("{base}/catalog/default/component/petstore"),
        |body| body.contains("petstore") && body.contains("/catalog/default/group/"),
        logs,
    )
    .await;
    // Progress on the terminal, ending in a summary once everything is stored and indexed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = std::fs::read_to_string(logs.join("first.log")).unwrap();
        if log.contains("cadastre: ready:") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(log.contains("cadastre: importing: "), "{log}");
    assert!(log.contains("cadastre: ready: "), "{log}");
    // Each file harvested once: no entity claimed by two locations.
    let (_, receipts) = get(&http, &format!("{base}/api/cadastre/v1/receipts")).await;
    let receipts: Value = serde_json::from_str(&receipts).unwrap();
    let receipts = receipts["items"].as_array().unwrap();
    assert!(receipts.len() > 7, "{receipts:?}");
    // One conflict is in the data: both example sets define user:default/guest.
    let conflicts: u64 = receipts
        .iter()
        .map(|r| r["conflicts"].as_u64().unwrap())
        .sum();
    assert!(conflicts <= 1, "{receipts:?}");
    // Registration's generated Location entities outlive the harvests of their locations.
    assert!(receipts.iter().all(|r| r["removed"] == 0), "{receipts:?}");

    let (_, entities) = get(&http, &format!("{base}/api/catalog/entities")).await;
    let stored = serde_json::from_str::<Value>(&entities)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert!(stored > 60, "{stored} entities");
    // Ready means the import is over: the summary names every entity there is.
    let ready: usize = log
        .split("cadastre: ready: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count in the ready line: {log}"));
    assert_eq!(ready, stored, "ready before the import was over");

    // A second instance on the same data folder stops at once, saying why.
    let second = Command::new(env!("CARGO_BIN_EXE_cadastre"))
        .arg("up")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env_remove("CADASTRE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let refused = String::from_utf8_lossy(&second.stderr);
    assert!(
        refused.contains("is in use by process") && refused.contains("--data-dir"),
        "{refused}"
    );

    // SIGTERM: a clean stop, then a restart serves the same entities before any re-harvest.
    let pid = first.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut first = first;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = first.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no stop after SIGTERM\n{}",
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}\n{}", log_tails(logs));

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _again = up(&data, port, &logs.join("second.log"));
    wait_for_port(port, logs).await;
    let (status, entities) = get(&http, &format!("{base}/api/catalog/entities")).await;
    assert_eq!(status, 200);
    let kept = serde_json::from_str::<Value>(&entities)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(kept, stored);
}
