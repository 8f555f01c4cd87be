//! The real `cadastre` binary: arguments, exit statuses, standard input and configuration.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const VALID: &str = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\nspec:\n  type: website\n  lifecycle: production\n  owner: team-a\n";

fn cadastre(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cadastre"))
        .args(args)
        .env_remove("CADASTRE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cadastre");
    // A command that exits before reading (a usage error) closes its end: not our failure.
    if let Err(error) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn valid_input_exits_zero() {
    let output = cadastre(&["validate", "-"], VALID);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        stdout(&output),
        "valid: 1 files, 1 entities valid, 0 documents invalid, 0 errors, 0 warnings\n"
    );
}

#[test]
fn invalid_input_exits_one_with_compiler_style_lines() {
    let output = cadastre(
        &["validate", "-"],
        &VALID.replace("owner: team-a", "owner: \"group:\""),
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.starts_with("<stdin>:8:10: error[entity-ref-format]: spec.owner: "),
        "{text}"
    );
}

#[test]
fn json_format_carries_the_same_findings() {
    let output = cadastre(&["validate", "--format", "json", "-"], "kind: Component\n");
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rules: Vec<&str> = json["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["metadata-required", "api-version-required"]);
}

#[test]
fn usage_and_io_errors_exit_two() {
    let missing = cadastre(&["validate", "/no/such/catalog-info.yaml"], "");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/catalog-info.yaml"));
    let no_paths = cadastre(&["validate"], "");
    assert_eq!(no_paths.status.code(), Some(2));
    let bad_flag = cadastre(&["validate", "--frobnicate", "-"], "");
    assert_eq!(bad_flag.status.code(), Some(2));
    let bad_config = cadastre(
        &["--config", "/no/such/config.toml", "validate", "-"],
        VALID,
    );
    assert_eq!(bad_config.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad_config.stderr)
            .starts_with("cadastre: configuration: cannot read configuration")
    );
}

#[test]
fn every_service_is_a_subcommand() {
    for service in ["store", "harvester", "processor", "search", "gateway"] {
        let output = cadastre(&[service, "--help"], "");
        assert_eq!(output.status.code(), Some(0), "cadastre {service} --help");
        assert!(stdout(&output).contains("Usage: cadastre"), "{service}");
    }
}

#[test]
fn search_without_its_opensearch_says_so() {
    let output = cadastre(&["search", "--opensearch-url", "http://127.0.0.1:1"], "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("connecting to OpenSearch at http://127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn a_service_without_a_bus_says_so() {
    let output = cadastre(&["processor"], "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CADASTRE_BUS_NATS_URL"), "{stderr}");
}
