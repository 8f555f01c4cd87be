//! Deployment files parse and name what exists. No Docker engine or cluster runs on the
//! development machines, so this is as far as they can be checked here: docker-compose.yml,
//! the Dockerfile and deploy/kubernetes/ (every object, the subcommands and configuration they
//! run, probes, resources, environment variables against `cadastre::config::ENVIRONMENT`,
//! selectors and targets, the ConfigMap against deploy/config/distributed.toml).

use std::path::{Path, PathBuf};

use cadastre_model::yaml::{Limits, parse_values};
use serde_json::Value;

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

#[test]
fn docker_compose_services_answer_on_the_admin_port_and_name_real_variables() {
    let documents = parse_values(&repo_file("docker-compose.yml"), &Limits::default()).unwrap();
    let services = documents[0]["services"].as_object().unwrap();
    let dockerfile = repo_file("Dockerfile");
    for service in SUBCOMMANDS {
        let definition = &services[service];
        assert_eq!(
            definition["environment"]["CADASTRE_ADMIN_LISTEN"], "0.0.0.0:9090",
            "{service}: CADASTRE_ADMIN_LISTEN"
        );
        // The healthcheck asks /ready with a program the image has.
        let test: Vec<&str> = array(&definition["healthcheck"]["test"])
            .iter()
            .map(|part| part.as_str().unwrap())
            .collect();
        assert_eq!(
            test.first(),
            Some(&"CMD"),
            "{service}: healthcheck {test:?}"
        );
        assert!(
            test.last().is_some_and(|url| url.ends_with(":9090/ready")),
            "{service}: healthcheck {test:?}"
        );
        let program = test[1];
        assert!(
            dockerfile.contains(&format!(" {program} ")),
            "{service}: the image has no {program}"
        );
    }
    for service in STATELESS.iter().filter(|s| **s != "gateway") {
        assert!(
            services[*service]["deploy"]["replicas"].as_u64() >= Some(2),
            "{service}: replicas"
        );
    }
    for (service, definition) in services {
        for (variable, _) in definition["environment"].as_object().into_iter().flatten() {
            if variable.starts_with("CADASTRE_") {
                assert!(
                    known_variable(variable),
                    "{service}: {variable} is read by nothing"
                );
            }
        }
        // Every dependency named exists.
        for (dependency, _) in definition["depends_on"].as_object().into_iter().flatten() {
            assert!(services.contains_key(dependency), "{service}: {dependency}");
        }
    }
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
    // The unprivileged user owns the harvester's cache, where the compose volume mounts.
    let cache = shipped_config().harvester.cache_dir;
    assert!(dockerfile.contains(&format!("chown 65532:65532 {}", cache.display())));
    assert!(dockerfile.contains("USER 65532:65532"));
}

// ---------------------------------------------------------------------------------------------
// deploy/kubernetes/

const CONFIG_PATH: &str = "/opt/cadastre/config/distributed.toml";
const SUBCOMMANDS: [&str; 5] = ["store", "harvester", "processor", "search", "gateway"];
/// The services that run replicas, share work and are scaled and protected.
const STATELESS: [&str; 3] = ["processor", "search", "gateway"];

fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The shipped distributed configuration, as the services load it (no environment).
fn shipped_config() -> cadastre::config::Config {
    let path = repo_path("deploy/config/distributed.toml");
    cadastre::config::load(Some(&path), &NoEnvironment)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether a deployment file may name this `CADASTRE_*` variable: one Cadastre reads itself,
/// or a token or credential variable that distributed.toml names.
fn known_variable(name: &str) -> bool {
    if cadastre::config::ENVIRONMENT.contains(&name) {
        return true;
    }
    let config = shipped_config();
    config.gateway.tokens.iter().any(|(_, env)| env == name)
        || config
            .harvester
            .credentials_env
            .values()
            .any(|env| env == name)
}

/// Every manifest file (name, documents), empty documents left out.
fn manifests() -> Vec<(String, Vec<Value>)> {
    let dir = repo_path("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .into_iter()
        .map(|name| {
            assert!(
                name.ends_with(".yaml"),
                "deploy/kubernetes/{name}: only .yaml files"
            );
            let text = repo_file(&format!("deploy/kubernetes/{name}"));
            let documents = parse_values(&text, &Limits::default())
                .unwrap_or_else(|e| panic!("deploy/kubernetes/{name}: {e:?}"));
            let documents = documents.into_iter().filter(|d| !d.is_null()).collect();
            (name, documents)
        })
        .collect()
}

/// Every Kubernetes object (the kustomization left out).
fn objects() -> Vec<Value> {
    manifests()
        .into_iter()
        .filter(|(name, _)| name != "kustomization.yaml")
        .flat_map(|(_, documents)| documents)
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().expect("metadata.name")
}

fn find<'a>(objects: &'a [Value], kind: &str, wanted: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && name(o) == wanted)
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The one container of a Deployment's pods.
fn container(deployment: &Value) -> &Value {
    let containers = array(&deployment["spec"]["template"]["spec"]["containers"]);
    assert_eq!(containers.len(), 1, "{}: one container", name(deployment));
    &containers[0]
}

/// The subcommand a Deployment runs (the last argument).
fn subcommand(deployment: &Value) -> &str {
    array(&container(deployment)["args"])
        .last()
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{}: no args", name(deployment)))
}

fn deployment_for<'a>(objects: &'a [Value], service: &str) -> &'a Value {
    of_kind(objects, "Deployment")
        .into_iter()
        .find(|d| subcommand(d) == service)
        .unwrap_or_else(|| panic!("no Deployment runs `cadastre {service}`"))
}

/// A container port by number or by name, as a number.
fn resolve_port(container: &Value, port: &Value) -> Option<u64> {
    if let Some(number) = port.as_u64() {
        return Some(number);
    }
    array(&container["ports"])
        .iter()
        .find(|p| p["name"] == *port)
        .and_then(|p| p["containerPort"].as_u64())
}

/// Literal `env` values of a container.
fn literal_env<'a>(container: &'a Value, variable: &str) -> Option<&'a str> {
    array(&container["env"])
        .iter()
        .find(|e| e["name"] == variable)
        .and_then(|e| e["value"].as_str())
}

/// Whether `selector` (matchLabels or a Service's selector) selects pods with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("selector mapping");
    !selector.is_empty() && selector.iter().all(|(key, value)| labels[key] == *value)
}

#[test]
fn kubernetes_manifests_parse_and_the_kustomization_lists_every_file() {
    let manifests = manifests();
    let kustomization = manifests
        .iter()
        .find(|(name, _)| name == "kustomization.yaml")
        .expect("deploy/kubernetes/kustomization.yaml");
    assert_eq!(kustomization.1.len(), 1);
    let mut listed: Vec<&str> = array(&kustomization.1[0]["resources"])
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    listed.sort();
    let mut files: Vec<&str> = manifests
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| *name != "kustomization.yaml")
        .collect();
    files.sort();
    assert_eq!(listed, files, "kustomization.yaml resources");
    for (file, documents) in &manifests {
        assert!(!documents.is_empty(), "{file}: no documents");
        if file == "kustomization.yaml" {
            continue;
        }
        for object in documents {
            assert!(object["apiVersion"].is_string(), "{file}: apiVersion");
            assert!(object["kind"].is_string(), "{file}: kind");
            let object_name = name(object);
            if object["kind"] != "Namespace" {
                assert_eq!(
                    object["metadata"]["namespace"], "cadastre",
                    "{file}: {object_name}: namespace"
                );
            }
        }
    }
}

#[test]
fn kubernetes_has_every_object_the_deployment_needs() {
    let objects = objects();
    let count = |kind: &str| of_kind(&objects, kind).len();
    assert_eq!(count("Namespace"), 1);
    assert!(find(&objects, "ConfigMap", "cadastre-config").is_some());
    assert_eq!(count("Secret"), 1);
    assert_eq!(count("Deployment"), 5);
    assert_eq!(count("Service"), 3);
    assert_eq!(count("PodDisruptionBudget"), STATELESS.len());
    assert_eq!(count("HorizontalPodAutoscaler"), STATELESS.len());
    // One Deployment per service.
    let mut run: Vec<&str> = of_kind(&objects, "Deployment")
        .into_iter()
        .map(subcommand)
        .collect();
    run.sort();
    let mut expected = SUBCOMMANDS.to_vec();
    expected.sort();
    assert_eq!(run, expected);
    // ClusterIP Services for the store and search (gRPC) and the gateway (HTTP).
    for (service, port) in [("store", 7010), ("search", 7011), ("gateway", 7007)] {
        let deployment = deployment_for(&objects, service);
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let found = of_kind(&objects, "Service")
            .into_iter()
            .find(|s| selects(&s["spec"]["selector"], labels))
            .unwrap_or_else(|| panic!("no Service selects the {service} pods"));
        assert!(
            matches!(found["spec"]["type"].as_str(), None | Some("ClusterIP")),
            "{service}: ClusterIP"
        );
        let ports = array(&found["spec"]["ports"]);
        assert!(
            ports.iter().any(|p| p["port"] == port
                && resolve_port(container(deployment), &p["targetPort"]) == Some(port)),
            "{service}: Service port {port} to the container's {port}"
        );
    }
}

#[test]
fn kubernetes_deployments_run_the_services_with_probes_resources_and_limits() {
    let objects = objects();
    let config = shipped_config();
    for deployment in of_kind(&objects, "Deployment") {
        let service = subcommand(deployment);
        let pod = &deployment["spec"]["template"]["spec"];
        let container = container(deployment);
        // A real subcommand with the shipped configuration.
        assert!(SUBCOMMANDS.contains(&service), "{service}");
        assert_eq!(
            container["args"],
            serde_json::json!(["--config", CONFIG_PATH, service]),
            "{service}: args"
        );
        assert!(
            container["image"]
                .as_str()
                .is_some_and(|image| image.starts_with("cadastre")),
            "{service}: the one cadastre image"
        );
        assert!(container["command"].is_null(), "{service}: entrypoint kept");
        // The ConfigMap mounted where the args look.
        let mount = array(&container["volumeMounts"])
            .iter()
            .find(|m| m["mountPath"] == "/opt/cadastre/config")
            .unwrap_or_else(|| panic!("{service}: configuration not mounted"));
        let volume = array(&pod["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        assert_eq!(volume["configMap"]["name"], "cadastre-config", "{service}");
        // The admin port, probed.
        assert_eq!(
            literal_env(container, "CADASTRE_ADMIN_LISTEN"),
            Some("0.0.0.0:9090"),
            "{service}: CADASTRE_ADMIN_LISTEN"
        );
        for (probe, path) in [("livenessProbe", "/live"), ("readinessProbe", "/ready")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{service}: {probe}");
            assert_eq!(
                resolve_port(container, &get["port"]),
                Some(9090),
                "{service}: {probe} port"
            );
        }
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{service}");
        assert_eq!(annotations["prometheus.io/port"], "9090", "{service}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{service}");
        // Listen addresses bind every interface, on a declared container port.
        for variable in cadastre::config::ENVIRONMENT
            .iter()
            .filter(|v| v.ends_with("_LISTEN"))
        {
            if let Some(listen) = literal_env(container, variable) {
                let (host, port) = listen.rsplit_once(':').unwrap();
                assert_eq!(host, "0.0.0.0", "{service}: {variable}");
                let port: u64 = port.parse().unwrap();
                assert!(
                    array(&container["ports"])
                        .iter()
                        .any(|p| p["containerPort"] == port),
                    "{service}: {variable} port {port} not a container port"
                );
            }
        }
        // Resources, requested (the autoscalers divide by them) and bounded.
        let resources = &container["resources"];
        for (section, resource) in [
            ("requests", "cpu"),
            ("requests", "memory"),
            ("limits", "memory"),
        ] {
            assert!(
                resources[section][resource].is_string(),
                "{service}: resources.{section}.{resource}"
            );
        }
        // Kubernetes waits longer than the service drains.
        let grace = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{service}: terminationGracePeriodSeconds"));
        assert!(grace >= 30, "{service}: grace {grace}");
        assert!(grace > config.store.grace_period.as_secs(), "{service}");
        assert!(grace > config.search.grace_period.as_secs(), "{service}");
        // Unprivileged, and read-only but for declared volumes.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{service}");
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{service}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{service}");
        // Replicas of the stateless services, spread over nodes.
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
        if STATELESS.contains(&service) {
            assert!(replicas >= 2, "{service}: {replicas} replicas");
        }
        if replicas > 1 {
            assert!(
                !array(&pod["topologySpreadConstraints"]).is_empty()
                    || pod["affinity"]["podAntiAffinity"].is_object(),
                "{service}: replicas not spread"
            );
        }
        // The Deployment's selector picks its own pods.
        assert!(
            selects(
                &deployment["spec"]["selector"]["matchLabels"],
                &deployment["spec"]["template"]["metadata"]["labels"]
            ),
            "{service}: selector"
        );
    }
    // The harvester writes its cache where distributed.toml says, on a writable volume.
    let harvester = deployment_for(&objects, "harvester");
    let cache = config.harvester.cache_dir.to_str().unwrap().to_owned();
    let mount = array(&container(harvester)["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == cache.as_str())
        .unwrap_or_else(|| panic!("harvester: nothing mounted at {cache}"));
    assert_ne!(mount["readOnly"], true);
    let volume = array(&harvester["spec"]["template"]["spec"]["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(volume["emptyDir"].is_object(), "harvester: cache volume");
}

#[test]
fn kubernetes_environment_names_what_the_services_read() {
    let objects = objects();
    // Keys of the Secret and ConfigMaps, by object name.
    let keys = |kind: &str, object: &str| -> Vec<String> {
        let object = find(&objects, kind, object)
            .unwrap_or_else(|| panic!("no {kind} {object}"))
            .clone();
        ["data", "stringData"]
            .iter()
            .flat_map(|field| {
                object[*field]
                    .as_object()
                    .into_iter()
                    .flat_map(|map| map.keys().cloned())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for object in of_kind(&objects, "Secret")
        .into_iter()
        .chain(of_kind(&objects, "ConfigMap"))
    {
        for key in keys(object["kind"].as_str().unwrap(), name(object)) {
            if key.starts_with("CADASTRE_") {
                assert!(known_variable(&key), "{}: {key}", name(object));
            }
        }
    }
    for deployment in of_kind(&objects, "Deployment") {
        let service = subcommand(deployment);
        let container = container(deployment);
        assert!(
            container["envFrom"].is_null(),
            "{service}: name each variable"
        );
        for variable in array(&container["env"]) {
            let variable_name = variable["name"].as_str().unwrap();
            if variable_name.starts_with("CADASTRE_") {
                assert!(
                    known_variable(variable_name),
                    "{service}: {variable_name} is read by nothing"
                );
            }
            for (reference, kind) in [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")]
            {
                let reference = &variable["valueFrom"][reference];
                if reference.is_null() || reference["optional"] == true {
                    continue;
                }
                let key = reference["key"].as_str().unwrap().to_owned();
                assert!(
                    keys(kind, reference["name"].as_str().unwrap()).contains(&key),
                    "{service}: {variable_name}: {kind} has no key {key}"
                );
            }
            // Addresses of other Cadastre services name a Service and its port.
            if let Some(url) = variable["value"].as_str()
                && variable_name.ends_with("_URL")
                && let Some(rest) = url.strip_prefix("http://cadastre-")
            {
                let (host, port) = rest.split_once(':').unwrap();
                let port: u64 = port.trim_end_matches('/').parse().unwrap();
                let target = find(&objects, "Service", &format!("cadastre-{host}"))
                    .unwrap_or_else(|| panic!("{service}: {variable_name}: no Service for {url}"));
                assert!(
                    array(&target["spec"]["ports"])
                        .iter()
                        .any(|p| p["port"] == port),
                    "{service}: {variable_name}: {url}"
                );
            }
        }
    }
}

#[test]
fn kubernetes_services_budgets_and_autoscalers_target_deployments() {
    let objects = objects();
    let deployments = of_kind(&objects, "Deployment");
    let pod_labels = |d: &&Value| d["spec"]["template"]["metadata"]["labels"].clone();
    for service in of_kind(&objects, "Service") {
        let selector = &service["spec"]["selector"];
        assert!(
            deployments
                .iter()
                .any(|d| selects(selector, &pod_labels(d))),
            "Service {} selects no Deployment's pods",
            name(service)
        );
    }
    let mut protected = Vec::new();
    for budget in of_kind(&objects, "PodDisruptionBudget") {
        assert_eq!(budget["apiVersion"], "policy/v1");
        assert_eq!(budget["spec"]["minAvailable"], 1, "{}", name(budget));
        let selector = &budget["spec"]["selector"]["matchLabels"];
        let target = deployments
            .iter()
            .find(|d| selects(selector, &pod_labels(d)))
            .unwrap_or_else(|| panic!("PodDisruptionBudget {} selects nothing", name(budget)));
        assert!(target["spec"]["replicas"].as_u64().unwrap_or(1) > 1);
        protected.push(subcommand(target));
    }
    let mut scaled = Vec::new();
    for autoscaler in of_kind(&objects, "HorizontalPodAutoscaler") {
        assert_eq!(autoscaler["apiVersion"], "autoscaling/v2");
        let reference = &autoscaler["spec"]["scaleTargetRef"];
        assert_eq!(reference["kind"], "Deployment");
        let target = find(&objects, "Deployment", reference["name"].as_str().unwrap())
            .unwrap_or_else(|| panic!("HorizontalPodAutoscaler {}: no target", name(autoscaler)));
        let min = autoscaler["spec"]["minReplicas"].as_u64().unwrap();
        assert!(min >= 1 && autoscaler["spec"]["maxReplicas"].as_u64().unwrap() >= min);
        assert_eq!(target["spec"]["replicas"].as_u64(), Some(min));
        assert!(
            array(&autoscaler["spec"]["metrics"])
                .iter()
                .any(|m| m["resource"]["name"] == "cpu"
                    && m["resource"]["target"]["type"] == "Utilization"),
            "{}: CPU utilisation",
            name(autoscaler)
        );
        scaled.push(subcommand(target));
    }
    protected.sort();
    scaled.sort();
    let mut stateless = STATELESS.to_vec();
    stateless.sort();
    assert_eq!(protected, stateless);
    assert_eq!(scaled, stateless);
}

#[test]
fn kubernetes_configmap_holds_the_shipped_configuration() {
    let objects = objects();
    let map = find(&objects, "ConfigMap", "cadastre-config").expect("ConfigMap cadastre-config");
    let key = Path::new(CONFIG_PATH)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let shipped = repo_file("deploy/config/distributed.toml");
    assert!(
        map["data"][key].as_str() == Some(shipped.as_str()),
        "deploy/kubernetes/configmap.yaml's {key} differs from deploy/config/distributed.toml: \
         copy it again (indented by four spaces)"
    );
    shipped_config();
}

/// `kubectl kustomize` builds the manifests where kubectl is installed (it needs no cluster).
#[test]
fn kubernetes_kustomization_builds_with_kubectl_when_installed() {
    let output = match std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(repo_path("deploy/kubernetes"))
        .output()
    {
        Ok(output) => output,
        // Not installed: the checks above are what there is.
        Err(_) => return,
    };
    assert!(
        output.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = parse_values(
        std::str::from_utf8(&output.stdout).unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(built.len(), objects().len());
}
