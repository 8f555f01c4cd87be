//! The ingestion pipeline end to end: harvester, processor and catalog-store talking only
//! through a real NATS JetStream server (`CADASTRE_TEST_NATS_URL`), on SQLite and on a real
//! PostgreSQL (`CADASTRE_TEST_POSTGRES_URL`), both started by `scripts/test`. Locations are
//! real files and real git repositories made with the `git` program.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::Bus;
use cadastre_bus::nats::{JetStreamBus, StreamSettings};
use cadastre_bus::subjects::HARVEST_REQUESTS;
use cadastre_catalog_store::{CatalogStore, ErrorScope, StoredEntity};
use cadastre_harvester::Harvester;
use cadastre_model::Validator;
use cadastre_processor::Processor;
use cadastre_proto::v1 as pb;
use cadastre_testkit::{component_yaml as component, git};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(60);

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Pipeline::start(super::Backend::Sqlite).await).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Pipeline::start(super::Backend::Postgres).await).await } )*
        }
    };
}

on_both_stores!(
    the_examples_arrive_with_their_relations,
    a_git_location_follows_its_commits,
    removal_as_configured_takes_a_deleted_files_entities,
);

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The three services of the pipeline, in this process, on a real NATS.
struct Pipeline {
    store: CatalogStore,
    bus: Arc<dyn Bus>,
    scratch: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    async fn start(backend: Backend) -> Self {
        // `RUST_LOG=info` shows what each service does.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let scratch = tempfile::tempdir().unwrap();
        let store = match backend {
            Backend::Sqlite => CatalogStore::connect(&format!(
                "sqlite://{}?mode=rwc",
                scratch.path().join("catalog.db").display()
            ))
            .await
            .unwrap(),
            Backend::Postgres => CatalogStore::connect(
                &cadastre_testkit::fresh_postgres_database("cadastre_pipeline").await,
            )
            .await
            .unwrap(),
        };
        let nats = cadastre_testkit::nats_url();
        let bus: Arc<dyn Bus> = Arc::new(
            JetStreamBus::connect(
                &nats,
                StreamSettings {
                    namespace: format!("p{}", uuid::Uuid::new_v4().simple()),
                    ..StreamSettings::default()
                },
            )
            .await
            .unwrap(),
        );
        let harvester = Arc::new(
            Harvester::new(cadastre_harvester::Settings {
                cache_dir: scratch.path().join("cache"),
                allow_local_repositories: true,
                ..cadastre_harvester::Settings::default()
            })
            .unwrap(),
        );
        let processor = Arc::new(Processor::new(
            Validator::default(),
            cadastre_processor::Settings::default(),
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let tasks = vec![
            spawn(cadastre_harvester::service::run(
                Arc::clone(&bus),
                harvester,
                until_stopped(),
            )),
            spawn(cadastre_processor::service::run(
                Arc::clone(&bus),
                processor,
                until_stopped(),
            )),
            spawn(cadastre_catalog_store::bus::apply_batches(
                Arc::clone(&bus),
                store.clone(),
                until_stopped(),
            )),
        ];
        Pipeline {
            store,
            bus,
            scratch,
            stop,
            tasks,
        }
    }

    /// Registers a location as the API does: in the store, then a harvest request.
    async fn register(&self, location_type: &str, target: &str) {
        self.store
            .add_location(location_type, target)
            .await
            .unwrap();
        self.request(
            &format!("{location_type}:{target}"),
            pb::HarvestTrigger::Registered,
        )
        .await;
    }

    async fn request(&self, location_key: &str, trigger: pb::HarvestTrigger) {
        let request = pb::HarvestRequest {
            location_key: location_key.to_owned(),
            trigger: trigger.into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            reason: "test".into(),
            ..Default::default()
        };
        HARVEST_REQUESTS
            .publish(&*self.bus, &request, Some(request.request_id.clone()), None)
            .await
            .unwrap();
    }

    async fn entity(&self, entity_ref: &str) -> Option<StoredEntity> {
        self.store.entity_by_ref(entity_ref).await.unwrap()
    }

    /// Waits until `entity_ref` satisfies `check` (`None`: until it is gone).
    async fn wait_for(
        &self,
        entity_ref: &str,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        eventually(&format!("{entity_ref} as expected"), || async {
            let body = self
                .entity(entity_ref)
                .await
                .map(|e| serde_json::from_str::<Value>(&e.body).unwrap());
            check(body.as_ref()).then_some(body)
        })
        .await
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

fn spawn<E: std::fmt::Debug>(
    work: impl Future<Output = Result<(), E>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = work.await {
            panic!("service stopped: {error:?}");
        }
    })
}

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn relations(body: &Value) -> Vec<(String, String)> {
    body["relations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_owned(),
                r["targetRef"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn copy_examples(to: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog-model-examples");
    let root = to.join("examples");
    copy_dir(&from, &root);
    root
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let destination = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &destination);
        } else {
            std::fs::copy(&path, &destination).unwrap();
        }
    }
}

async fn the_examples_arrive_with_their_relations(pipeline: Pipeline) {
    let root = copy_examples(pipeline.scratch.path());
    // As Backstage's examples are meant to be loaded: Location entities lead to the rest.
    pipeline
        .register("file", &root.join("all.yaml").display().to_string())
        .await;
    pipeline
        .register("file", &root.join("acme/org.yaml").display().to_string())
        .await;

    let component = pipeline
        .wait_for("component:default/artist-lookup", |b| b.is_some())
        .await
        .unwrap();
    let edges = relations(&component);
    assert!(
        edges.contains(&("ownedBy".into(), "group:default/team-a".into())),
        "{edges:?}"
    );
    let annotations = &component["metadata"]["annotations"];
    let file = root.join("components/artist-lookup-component.yaml");
    assert_eq!(
        annotations["backstage.io/managed-by-location"],
        format!("file:{}", file.display())
    );
    assert_eq!(
        annotations["backstage.io/managed-by-origin-location"],
        format!("file:{}", root.join("all.yaml").display())
    );
    // The other side of the relation, from the org's location.
    let team = pipeline
        .wait_for("group:default/team-a", |b| {
            b.is_some_and(|b| {
                relations(b).contains(&("ownerOf".into(), "component:default/artist-lookup".into()))
            })
        })
        .await
        .unwrap();
    assert_eq!(team["spec"]["type"], "team");
    // Every component file arrives.
    let components = std::fs::read_dir(root.join("components")).unwrap().count();
    eventually("every example component", || async {
        let page = pipeline
            .store
            .query_entities(&cadastre_catalog_store::EntityQuery {
                filter: cadastre_query::legacy_filter::parse(&["kind=component"]).unwrap(),
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap();
        (page.items.len() >= components).then_some(())
    })
    .await;
    // Each harvest has a receipt.
    let receipts = pipeline
        .store
        .harvest_receipts(
            &format!("file:{}", root.join("all-components.yaml").display()),
            0,
        )
        .await
        .unwrap();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0].trigger, "fan_out");
    assert_eq!(receipts[0].files_read, 1);
    pipeline.stop().await;
}

async fn a_git_location_follows_its_commits(pipeline: Pipeline) {
    let repo = pipeline.scratch.path().join("repo");
    for dir in ["a", "b"] {
        std::fs::create_dir_all(repo.join(dir)).unwrap();
    }
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.join("a/catalog-info.yaml"),
        component("alpha", "team-a"),
    )
    .unwrap();
    std::fs::write(
        repo.join("b/catalog-info.yaml"),
        component("beta", "team-a"),
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);
    let target = format!("file://{}#ref=main", repo.display());
    let key = format!("git:{target}");
    pipeline.register("git", &target).await;
    pipeline
        .wait_for("component:default/alpha", |b| b.is_some())
        .await;
    pipeline
        .wait_for("component:default/beta", |b| b.is_some())
        .await;

    // A push: alpha changes owner, beta's file is deleted, gamma arrives next to an invalid
    // document.
    std::fs::write(
        repo.join("a/catalog-info.yaml"),
        component("alpha", "team-b"),
    )
    .unwrap();
    std::fs::remove_dir_all(repo.join("b")).unwrap();
    std::fs::create_dir_all(repo.join("c")).unwrap();
    std::fs::write(
        repo.join("c/catalog-info.yaml"),
        format!(
            "{}---\n{}",
            component("gamma", "team-a"),
            component("Not Valid!", "team-a")
        ),
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "second"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    pipeline.request(&key, pb::HarvestTrigger::Webhook).await;

    pipeline
        .wait_for("component:default/alpha", |b| {
            b.is_some_and(|b| b["spec"]["owner"] == "team-b")
        })
        .await;
    // Its file is gone: kept as an orphan (the store's default policy, as Backstage's).
    pipeline
        .wait_for("component:default/beta", |b| {
            b.is_some_and(|b| b["metadata"]["annotations"]["backstage.io/orphan"] == "true")
        })
        .await;
    pipeline
        .wait_for("component:default/gamma", |b| b.is_some())
        .await;
    let url = format!("file://{}", repo.display());
    let gamma_file = format!("git:{url}/blob/main/c/catalog-info.yaml");
    let errors = pipeline
        .store
        .processing_errors(&ErrorScope::Location(gamma_file.clone()), 0)
        .await
        .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let finding = &errors[0].finding;
    assert_eq!(finding.rule.id(), "name-format");
    let position = finding.position.unwrap();
    assert_eq!((position.line, position.column), (13, 9));
    let receipts = eventually("the push's receipt", || async {
        let receipts = pipeline.store.harvest_receipts(&key, 0).await.unwrap();
        receipts
            .iter()
            .any(|r| r.commit == commit)
            .then_some(receipts)
    })
    .await;
    let push = receipts.iter().find(|r| r.commit == commit).unwrap();
    assert_eq!(push.trigger, "webhook");
    assert_eq!(
        (push.updated, push.created, push.removed, push.failed),
        (1, 1, 1, 1)
    );
    assert_eq!(push.removed_refs, ["component:default/beta"]);

    // A second location declaring alpha is refused; the first keeps it, the newcomer sees why.
    let other = pipeline.scratch.path().join("other.yaml");
    std::fs::write(&other, component("alpha", "team-z")).unwrap();
    pipeline
        .register("file", &other.display().to_string())
        .await;
    let newcomer = format!("file:{}", other.display());
    let conflict = eventually("the conflict error", || async {
        let errors = pipeline
            .store
            .processing_errors(&ErrorScope::Location(newcomer.clone()), 0)
            .await
            .unwrap();
        errors.into_iter().next()
    })
    .await;
    assert_eq!(conflict.finding.rule.id(), "entity-ref-conflict");
    let alpha = pipeline.entity("component:default/alpha").await.unwrap();
    assert_eq!(
        alpha.location_key.as_deref(),
        Some(format!("git:{url}/blob/main/a/catalog-info.yaml").as_str())
    );
    pipeline.stop().await;
}

async fn removal_as_configured_takes_a_deleted_files_entities(pipeline: Pipeline) {
    pipeline
        .store
        .set_orphan_policy(cadastre_catalog_store::OrphanPolicy::Remove);
    let dir = pipeline.scratch.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("one.yaml"), component("one", "team-a")).unwrap();
    std::fs::write(dir.join("two.yaml"), component("two", "team-a")).unwrap();
    let pattern = format!("{}/*.yaml", dir.display());
    pipeline.register("file", &pattern).await;
    pipeline
        .wait_for("component:default/one", |b| b.is_some())
        .await;
    pipeline
        .wait_for("component:default/two", |b| b.is_some())
        .await;
    std::fs::remove_file(dir.join("two.yaml")).unwrap();
    pipeline
        .request(&format!("file:{pattern}"), pb::HarvestTrigger::Schedule)
        .await;
    pipeline
        .wait_for("component:default/two", |b| b.is_none())
        .await;
    assert!(pipeline.entity("component:default/one").await.is_some());
    pipeline.stop().await;
}
