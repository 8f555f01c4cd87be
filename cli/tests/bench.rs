//! `cadastre bench` at a small size, in both modes: it generates the organisation, runs
//! Cadastre (as `cadastre up`, and as five processes on the NATS, PostgreSQL and OpenSearch
//! that `scripts/test` starts), and writes figures that are of real answers: every entity
//! ingested, every push seen, every route answered.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Service;
use serde_json::Value;

fn bench(work: &Path, mode: &str) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cadastre"));
    command
        .args(["bench", "--sizes", "300", "--mode", mode])
        .args(["--pushes", "3", "--load-seconds", "1", "--clients", "4"])
        .arg("--work-dir")
        .arg(work.join("work"))
        .arg("--out")
        .arg(work.join("out"))
        .env_remove("CADASTRE_CONFIG");
    if mode == "distributed" {
        command
            .arg("--nats-url")
            .arg(cadastre_testkit::nats_url())
            .arg("--postgres-url")
            .arg(
                std::env::var(cadastre_testkit::POSTGRES_URL_ENV).unwrap_or_else(|_| {
                    panic!(
                        "{} is not set: run scripts/test",
                        cadastre_testkit::POSTGRES_URL_ENV
                    )
                }),
            )
            .arg("--opensearch-url")
            .arg(cadastre_testkit::opensearch_url());
    }
    let output = command.output().expect("run cadastre bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The table is printed, and written with the figures and the chart.
    assert!(stdout.contains(&format!("| {mode} | 300 |")), "{stdout}");
    let written = std::fs::read_to_string(work.join("out/results.md")).unwrap();
    assert!(written.contains(&format!("| {mode} | 300 |")), "{written}");
    let chart = std::fs::read_to_string(work.join("out/chart.svg")).unwrap();
    assert!(chart.contains("<polyline"), "{chart}");
    // The scratch data is removed; only the results stay.
    assert!(!work.join(format!("work/{mode}-300")).exists());
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("out/results.json")).unwrap())
            .unwrap();
    results["measurements"][0].clone()
}

fn check(measured: &Value, processes: &[&str]) {
    assert!(measured["stored"].as_u64().unwrap() >= 300, "{measured}");
    assert!(measured["ingest_seconds"].as_f64().unwrap() > 0.0);
    let push = &measured["push"];
    assert_eq!(push["pushes"], 3, "{push}");
    assert_eq!(push["missed"], 0, "every push is seen: {push}");
    assert!(push["visible_p99_ms"].as_f64().unwrap() > 0.0);
    let routes = measured["routes"].as_array().unwrap();
    let names: Vec<&str> = routes
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "by-name",
            "filtered page",
            "facets",
            "search",
            "suggest",
            "UI catalog",
            "UI entity"
        ]
    );
    for route in routes {
        assert!(route["requests"].as_u64().unwrap() > 0, "{route}");
        assert_eq!(route["errors"], 0, "{route}");
    }
    let memory: Vec<&str> = measured["peak_rss_mib"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            assert!(pair[1].as_f64().unwrap() > 1.0, "{pair}");
            pair[0].as_str().unwrap()
        })
        .collect();
    assert_eq!(memory, processes);
    let heap = measured["peak_heap_mib"].as_array().unwrap();
    assert_eq!(heap.len(), processes.len());
    for (pair, rss) in heap
        .iter()
        .zip(measured["peak_rss_mib"].as_array().unwrap())
    {
        let (heap, rss) = (pair[1].as_f64().unwrap(), rss[1].as_f64().unwrap());
        assert!(heap > 1.0 && heap <= rss, "heap {heap} of {rss} MiB");
    }
    assert!(measured["store_disk_mib"].as_f64().unwrap() > 0.0);
    assert!(measured["index_disk_mib"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_benchmark_measures_an_embedded_cadastre() {
    let scratch = tempfile::tempdir().unwrap();
    let measured = bench(scratch.path(), "embedded");
    check(&measured, &["cadastre up"]);
}

#[test]
fn the_benchmark_measures_a_distributed_cadastre() {
    let scratch = tempfile::tempdir().unwrap();
    let measured = bench(scratch.path(), "distributed");
    check(
        &measured,
        &["store", "search", "harvester", "processor", "gateway"],
    );
}

/// `--against` loads a Cadastre already running, on the routes asked for, and nothing else;
/// an unknown route is refused by name.
#[tokio::test]
async fn the_benchmark_loads_a_running_cadastre_on_chosen_routes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scratch = tempfile::tempdir().unwrap();
    let org = scratch.path().join("org");
    let generated = Command::new(env!("CARGO_BIN_EXE_cadastre"))
        .args(["generate", "--size", "300", "--out"])
        .arg(&org)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let port = common::free_port();
    let log = scratch.path().join("up.log");
    let _up = Service(
        Command::new(env!("CARGO_BIN_EXE_cadastre"))
            .arg("up")
            .arg("--data-dir")
            .arg(scratch.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--catalog")
            .arg(org.join("catalog-info.yaml"))
            .env_remove("CADASTRE_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    common::wait_for_port(port, scratch.path()).await;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page: Value = reqwest::get(format!("{base}/api/catalog/entities/by-query?limit=1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["totalItems"].as_u64().unwrap_or(0) >= 300 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ingested: {page}\n{}",
            common::log_tails(scratch.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let against = |routes: &str| {
        Command::new(env!("CARGO_BIN_EXE_cadastre"))
            .args([
                "bench",
                "--against",
                &base,
                "--sizes",
                "300",
                "--routes",
                routes,
            ])
            .args(["--load-seconds", "1", "--clients", "2"])
            .env_remove("CADASTRE_CONFIG")
            .output()
            .unwrap()
    };
    let loaded = against("by-name,facets");
    let stdout = String::from_utf8_lossy(&loaded.stdout);
    assert!(loaded.status.success(), "{loaded:?}");
    let routes: Vec<&str> = stdout
        .lines()
        .map(|line| line.split(':').next().unwrap())
        .collect();
    assert_eq!(routes, ["by-name", "facets"], "{stdout}");
    assert!(
        stdout.lines().all(|line| line.ends_with("(0 errors)")),
        "{stdout}"
    );
    let unknown = against("by-name,nope");
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no route nope"), "{stderr}");
}
