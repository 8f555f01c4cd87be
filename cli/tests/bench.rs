//! `cadastre bench` at a small size, in both modes: it generates the organisation, runs
//! Cadastre (as `cadastre up`, and as five processes on the NATS, PostgreSQL and OpenSearch
//! that `scripts/test` starts), and writes figures that are of real answers: every entity
//! ingested, every push seen, every route answered.

use std::path::Path;
use std::process::Command;

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
