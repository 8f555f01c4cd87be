//! Deployment files parse and name what exists. No Docker engine runs on the development
//! machines, so this is as far as they can be checked here.

use std::path::Path;

use cadastre_model::yaml::{Limits, parse_values};

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn docker_compose_uses_official_images_and_our_dockerfile() {
    let documents = parse_values(&repo_file("docker-compose.yml"), &Limits::default()).unwrap();
    assert_eq!(documents.len(), 1);
    let services = documents[0]["services"]
        .as_object()
        .expect("services mapping");
    assert_eq!(
        services["nats"]["image"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("nats")
    );
    assert_eq!(
        services["postgres"]["image"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("postgres")
    );
    assert!(
        services["opensearch"]["image"]
            .as_str()
            .unwrap()
            .starts_with("opensearchproject/opensearch:2.")
    );
    // Every named volume is declared.
    let volumes = documents[0]["volumes"].as_object().unwrap();
    for (name, service) in services {
        for mount in service["volumes"].as_array().into_iter().flatten() {
            let volume = mount.as_str().unwrap().split(':').next().unwrap();
            assert!(
                volumes.contains_key(volume),
                "{name} mounts undeclared volume {volume}"
            );
        }
        // Ports bind to loopback only.
        for port in service["ports"].as_array().into_iter().flatten() {
            assert!(
                port.as_str().unwrap().starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond loopback"
            );
        }
    }
    // The tool container runs a subcommand the binary has.
    let command = services["validate"]["command"].as_array().unwrap();
    assert_eq!(command[0], "validate");
    // Each service runs its own subcommand with the shipped configuration, which loads.
    for service in ["store", "harvester", "processor", "search", "gateway"] {
        let command: Vec<&str> = services[service]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|part| part.as_str().unwrap())
            .collect();
        assert_eq!(command.last(), Some(&service), "{service}: {command:?}");
        let config = command[1].replace("/opt/cadastre/config/", "deploy/config/");
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(&config);
        cadastre::config::load(Some(&path), &NoEnvironment)
            .unwrap_or_else(|e| panic!("{service}: {config}: {e}"));
    }
    // (cli/tests/binary.rs checks that each is a subcommand of the binary.)
}

struct NoEnvironment;

impl cadastre::config::Environment for NoEnvironment {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

#[test]
fn dockerfile_builds_the_cadastre_binary() {
    let dockerfile = repo_file("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked -p cadastre"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cli/Cargo.toml")
            .exists()
    );
    assert!(dockerfile.contains("ENTRYPOINT [\"cadastre\"]"));
}
