//! The harvester against real files, real git repositories (made with the `git` program) and a
//! real HTTP server on loopback.

use std::path::Path;
use std::process::Command;

use cadastre_harvester::{Harvest, Harvester, Settings};
use cadastre_proto::v1 as pb;
use cadastre_testkit::git;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request(location_key: &str, trigger: pb::HarvestTrigger) -> pb::HarvestRequest {
    pb::HarvestRequest {
        location_key: location_key.to_owned(),
        trigger: trigger.into(),
        request_id: format!(
            "test-{}",
            NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        ..Default::default()
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn component(name: &str) -> String {
    cadastre_testkit::component_yaml(name, "team-a")
}

fn settings(cache: &Path) -> Settings {
    Settings {
        cache_dir: cache.to_path_buf(),
        allow_local_repositories: true,
        ..Settings::default()
    }
}

/// Harvests and keeps the state, as the service does after publishing.
async fn harvest(
    harvester: &Harvester,
    key: &str,
    trigger: pb::HarvestTrigger,
) -> pb::HarvestedLocation {
    let Harvest {
        message,
        next_state,
        ..
    } = harvester.harvest(&request(key, trigger)).await;
    harvester.commit(key, next_state);
    message
}

fn targets(documents: &[pb::RawDocument]) -> Vec<String> {
    documents.iter().map(|d| d.target.clone()).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walk(from) {
        let relative = entry.strip_prefix(from).unwrap();
        let destination = to.join(relative);
        std::fs::create_dir_all(destination.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &destination).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_file_glob_reads_everything_then_only_what_changed() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("catalog");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog-model-examples"),
        &root,
    );
    let harvester = Harvester::new(settings(&scratch.path().join("cache"))).unwrap();
    let key = format!("file:{}/**/*.yaml", root.display());

    let first = harvest(&harvester, &key, pb::HarvestTrigger::Registered).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let yaml_files = walk(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .count();
    assert_eq!(first.documents.len(), yaml_files);
    assert!(first.documents.iter().all(|d| d.content_hash.len() == 40));
    // `apis/petstore-webhook-api.yaml` says `$text: ./petstore-webhook.oas.yaml`: attached.
    assert!(
        first
            .attachments
            .iter()
            .chain(&first.documents)
            .any(|a| a.target.ends_with("apis/petstore-webhook.oas.yaml")),
        "attachments: {:?}",
        targets(&first.attachments)
    );

    let again = harvest(&harvester, &key, pb::HarvestTrigger::Schedule).await;
    assert!(again.documents.is_empty());
    assert_eq!(again.unchanged_targets.len(), yaml_files);

    let changed = root.join("all-apis.yaml");
    let text = std::fs::read_to_string(&changed).unwrap();
    std::fs::write(&changed, format!("{text}\n# edited\n")).unwrap();
    let gone = root.join("all-systems.yaml");
    std::fs::remove_file(&gone).unwrap();
    let third = harvest(&harvester, &key, pb::HarvestTrigger::Schedule).await;
    assert_eq!(targets(&third.documents), [changed.display().to_string()]);
    assert_eq!(third.removed_targets, [gone.display().to_string()]);

    // A refresh reads everything again, whatever was remembered.
    let refresh = harvest(&harvester, &key, pb::HarvestTrigger::Refresh).await;
    assert_eq!(refresh.documents.len(), yaml_files - 1);
}

#[tokio::test]
async fn files_over_the_limit_are_reported_and_the_rest_read() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("small.yaml"), "kind: Component\n").unwrap();
    std::fs::write(scratch.path().join("big.yaml"), "x".repeat(4096)).unwrap();
    let harvester = Harvester::new(Settings {
        max_file_bytes: 1024,
        ..settings(&scratch.path().join("cache"))
    })
    .unwrap();
    let key = format!("file:{}/*.yaml", scratch.path().display());
    let read = harvest(&harvester, &key, pb::HarvestTrigger::Registered).await;
    assert_eq!(read.documents.len(), 1);
    assert!(read.documents[0].target.ends_with("small.yaml"));
    assert_eq!(read.errors.len(), 1);
    assert_eq!(read.errors[0].rule, "location-read");
    assert!(
        read.errors[0].message.contains("big.yaml"),
        "{}",
        read.errors[0].message
    );
    assert!(read.errors[0].message.contains("over the limit"));

    let bad = harvest(&harvester, "ftp:/srv/x", pb::HarvestTrigger::Registered).await;
    assert!(bad.documents.is_empty());
    assert!(
        bad.errors[0].message.contains("not supported"),
        "{}",
        bad.errors[0].message
    );
}

#[tokio::test]
async fn a_git_location_reads_only_what_a_commit_changed() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("repo");
    std::fs::create_dir_all(repo.join("a")).unwrap();
    std::fs::create_dir_all(repo.join("b")).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("a/catalog-info.yaml"), component("a")).unwrap();
    std::fs::write(
        repo.join("b/catalog-info.yaml"),
        format!(
            "{}  definition:\n    $text: ./api.txt\n",
            component("b")
                .replace("kind: Component", "kind: API")
                .replace("type: service", "type: openapi")
        ),
    )
    .unwrap();
    std::fs::write(repo.join("b/api.txt"), "openapi: 3.0.0\n").unwrap();
    std::fs::write(repo.join("README.md"), "not catalog\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);
    let first_commit = git(&repo, &["rev-parse", "HEAD"]);

    let harvester = Harvester::new(settings(&scratch.path().join("cache"))).unwrap();
    let url = format!("file://{}", repo.display());
    let key = format!("git:{url}#ref=main");
    let first = harvest(&harvester, &key, pb::HarvestTrigger::Registered).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.commit, first_commit);
    assert_eq!(
        targets(&first.documents),
        [
            format!("{url}/blob/main/a/catalog-info.yaml"),
            format!("{url}/blob/main/b/catalog-info.yaml"),
        ]
    );
    assert_eq!(
        targets(&first.attachments),
        [format!("{url}/blob/main/b/api.txt")]
    );
    assert_eq!(first.attachments[0].content, b"openapi: 3.0.0\n");

    // In parts of one document each, each part carries what its documents need.
    let whole = harvester
        .harvest(&request(&key, pb::HarvestTrigger::Registered))
        .await;
    let parts = whole.parts(cadastre_harvester::PartLimits {
        max_bytes: 1 << 20,
        max_documents: 1,
    });
    assert_eq!(parts.len(), 2);
    assert!(
        parts
            .iter()
            .all(|p| p.parts == 2 && p.harvest_id == whole.message.harvest_id)
    );
    assert_eq!((parts[0].part, parts[1].part), (0, 1));
    assert!(parts[0].attachments.is_empty());
    assert_eq!(
        targets(&parts[1].attachments),
        [format!("{url}/blob/main/b/api.txt")]
    );
    assert_eq!(parts[1].commit, first_commit);

    // A push: a changed, b deleted, c added, an unrelated file touched.
    std::fs::write(
        repo.join("a/catalog-info.yaml"),
        component("a").replace("team-a", "team-b"),
    )
    .unwrap();
    std::fs::remove_dir_all(repo.join("b")).unwrap();
    std::fs::create_dir_all(repo.join("c")).unwrap();
    std::fs::write(repo.join("c/catalog-info.yaml"), component("c")).unwrap();
    std::fs::write(repo.join("README.md"), "still not catalog\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "second"]);
    let second_commit = git(&repo, &["rev-parse", "HEAD"]);

    let second = harvest(&harvester, &key, pb::HarvestTrigger::Webhook).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.commit, second_commit);
    assert_eq!(
        targets(&second.documents),
        [
            format!("{url}/blob/main/a/catalog-info.yaml"),
            format!("{url}/blob/main/c/catalog-info.yaml"),
        ]
    );
    assert_eq!(
        second.removed_targets,
        [format!("{url}/blob/main/b/catalog-info.yaml")]
    );

    // Nothing new: nothing read.
    let third = harvest(&harvester, &key, pb::HarvestTrigger::Schedule).await;
    assert!(third.documents.is_empty() && third.removed_targets.is_empty());
    assert_eq!(third.commit, second_commit);

    // A ref that does not exist is an error, not a panic or a hang.
    let missing = harvest(
        &harvester,
        &format!("git:{url}#ref=no-such-branch"),
        pb::HarvestTrigger::Registered,
    )
    .await;
    assert!(missing.documents.is_empty());
    assert!(
        missing.errors[0].message.contains("no-such-branch"),
        "{:?}",
        missing.errors
    );

    // A local repository is read in place: no mirror of it in the cache.
    let mirrors = scratch.path().join("cache/git");
    assert!(
        !mirrors.exists() || std::fs::read_dir(&mirrors).unwrap().next().is_none(),
        "a mirror was made of a local repository"
    );
    // A folder inside the work tree is not a repository, and does not resolve to the one
    // above it.
    let inside = harvest(
        &harvester,
        &format!("git:{url}/a#ref=main"),
        pb::HarvestTrigger::Registered,
    )
    .await;
    assert!(
        inside.documents.is_empty(),
        "{:?}",
        targets(&inside.documents)
    );
    assert!(!inside.errors.is_empty());
    // A linked work tree, whose `.git` is a file naming the repository's folder, reads too.
    let linked = scratch.path().join("linked");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "--quiet",
            "--detach",
            linked.to_str().unwrap(),
        ],
    );
    let from_linked = harvest(
        &harvester,
        &format!("git:file://{}#ref=main", linked.display()),
        pb::HarvestTrigger::Registered,
    )
    .await;
    assert!(from_linked.errors.is_empty(), "{:?}", from_linked.errors);
    assert_eq!(from_linked.commit, second_commit);
    assert_eq!(from_linked.documents.len(), 2);
}

#[tokio::test]
async fn local_repositories_and_internal_hosts_are_refused_by_default() {
    let scratch = tempfile::tempdir().unwrap();
    let harvester = Harvester::new(Settings {
        cache_dir: scratch.path().to_path_buf(),
        ..Settings::default()
    })
    .unwrap();
    let local = harvest(
        &harvester,
        "git:file:///srv/repo",
        pb::HarvestTrigger::Registered,
    )
    .await;
    assert!(
        local.errors[0].message.contains("local repositories"),
        "{:?}",
        local.errors
    );
    let internal = harvest(
        &harvester,
        "url:http://127.0.0.1:9/catalog-info.yaml",
        pb::HarvestTrigger::Registered,
    )
    .await;
    assert!(
        internal.errors[0].message.contains("internal address"),
        "{:?}",
        internal.errors
    );
}

/// A one-file HTTP server on loopback that honours `If-None-Match`.
async fn serve_one_file(
    body: &'static str,
    etag: &'static str,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let Ok(n) = socket.read(&mut buffer).await else {
                    break;
                };
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
            }
            let request = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let response = if request.contains(&format!("if-none-match: {etag}")) {
                format!(
                    "HTTP/1.1 304 Not Modified\r\netag: {etag}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\netag: {etag}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (format!("http://{address}/catalog-info.yaml"), task)
}

#[tokio::test]
async fn a_url_location_uses_its_etag() {
    let (url, server) = serve_one_file(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n",
        "\"v1\"",
    )
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let harvester = Harvester::new(Settings {
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_private_addresses: true,
        ..settings(scratch.path())
    })
    .unwrap();
    let key = format!("url:{url}");
    let first = harvest(&harvester, &key, pb::HarvestTrigger::Registered).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(targets(&first.documents), [url.as_str()]);
    let second = harvest(&harvester, &key, pb::HarvestTrigger::Schedule).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert!(second.documents.is_empty(), "304: nothing new");
    assert_eq!(second.unchanged_targets, [url.as_str()]);
    assert!(second.removed_targets.is_empty());
    server.abort();
}

/// Waits (at most 20 s) until something listens on `127.0.0.1:port`.
async fn wait_for_port(port: u16) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on port {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Python's static file server on a free loopback port (HTTPS with `tls` = (certificate,
/// key)), stopped when dropped.
struct StaticServer {
    child: std::process::Child,
    port: u16,
}

impl StaticServer {
    async fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let wrap = match tls {
            Some((certificate, key)) => format!(
                "context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
                 context.load_cert_chain({:?}, {:?})\n\
                 server.socket = context.wrap_socket(server.socket, server_side=True)\n",
                certificate.display().to_string(),
                key.display().to_string()
            ),
            None => String::new(),
        };
        let script = format!(
            "import functools, http.server, ssl\n\
             handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory={:?})\n\
             server = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), handler)\n\
             {wrap}server.serve_forever()\n",
            dir.display().to_string()
        );
        let child = Command::new("python3")
            .args(["-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 (scripts/test installs it)");
        wait_for_port(port).await;
        StaticServer { child, port }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `git daemon` serving `base` on a free loopback port, stopped when dropped.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The daemon program itself: `git daemon` forks it, and killing `git` would leave it
        // running.
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon");
        GitDaemon { child, port }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_git_location_over_the_git_protocol() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("served/repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("catalog-info.yaml"), component("served")).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);
    let daemon = GitDaemon::start(&scratch.path().join("served"));
    wait_for_port(daemon.port).await;
    let key = format!("git:git://127.0.0.1:{}/repo#ref=main", daemon.port);

    let refused = Harvester::new(settings(&scratch.path().join("cache-1"))).unwrap();
    let read = harvest(&refused, &key, pb::HarvestTrigger::Registered).await;
    assert!(read.documents.is_empty());
    assert!(
        read.errors[0].message.contains("internal address"),
        "{:?}",
        read.errors
    );

    let harvester = Harvester::new(Settings {
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_private_addresses: true,
        ..settings(&scratch.path().join("cache-2"))
    })
    .unwrap();
    let read = harvest(&harvester, &key, pb::HarvestTrigger::Registered).await;
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    assert_eq!(
        targets(&read.documents),
        [format!(
            "git://127.0.0.1:{}/repo/blob/main/catalog-info.yaml",
            daemon.port
        )]
    );
    assert_eq!(read.commit, git(&repo, &["rev-parse", "HEAD"]));
}

#[tokio::test]
async fn a_git_location_over_http() {
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(work.join("catalog-info.yaml"), component("over-http")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    // A bare copy served as static files: git's "dumb" HTTP protocol.
    let served = scratch.path().join("site");
    std::fs::create_dir_all(&served).unwrap();
    git(
        scratch.path(),
        &["clone", "--quiet", "--bare", "work", "site/repo.git"],
    );
    git(&served.join("repo.git"), &["update-server-info"]);
    let server = StaticServer::start(&served, None).await;
    let port = server.port;
    let harvester = Harvester::new(Settings {
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_private_addresses: true,
        ..settings(&scratch.path().join("cache"))
    })
    .unwrap();
    let key = format!("git:http://127.0.0.1:{port}/repo.git#ref=main");
    let read = harvest(&harvester, &key, pb::HarvestTrigger::Registered).await;
    drop(server);
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    assert_eq!(
        targets(&read.documents),
        [format!(
            "http://127.0.0.1:{port}/repo/blob/main/catalog-info.yaml"
        )]
    );
}

/// A certificate authority and a certificate it signed for 127.0.0.1, made with `openssl`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Cadastre Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[tokio::test]
async fn git_and_url_locations_over_https_with_a_private_authority() {
    let scratch = tempfile::tempdir().unwrap();
    make_certificates(scratch.path());
    let work = scratch.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(work.join("catalog-info.yaml"), component("over-https")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let site = scratch.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    git(
        scratch.path(),
        &["clone", "--quiet", "--bare", "work", "site/repo.git"],
    );
    git(&site.join("repo.git"), &["update-server-info"]);
    std::fs::copy(
        work.join("catalog-info.yaml"),
        site.join("catalog-info.yaml"),
    )
    .unwrap();
    let server = StaticServer::start(
        &site,
        Some((
            &scratch.path().join("server.pem"),
            &scratch.path().join("server.key"),
        )),
    )
    .await;
    let port = server.port;
    let open = Settings {
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_private_addresses: true,
        ..settings(&scratch.path().join("cache-untrusting"))
    };
    let git_key = format!("git:https://127.0.0.1:{port}/repo.git#ref=main");
    let url_key = format!("url:https://127.0.0.1:{port}/catalog-info.yaml");

    // Without the private authority, TLS verification fails: nothing is read.
    let untrusting = Harvester::new(open.clone()).unwrap();
    for key in [&git_key, &url_key] {
        let read = harvest(&untrusting, key, pb::HarvestTrigger::Registered).await;
        assert!(read.documents.is_empty(), "{key}");
        assert_eq!(read.errors.len(), 1, "{key}: {:?}", read.errors);
    }

    let trusting = Harvester::new(Settings {
        ca_file: Some(scratch.path().join("ca.pem")),
        cache_dir: scratch.path().join("cache-trusting"),
        ..open
    })
    .unwrap();
    let from_git = harvest(&trusting, &git_key, pb::HarvestTrigger::Registered).await;
    let from_url = harvest(&trusting, &url_key, pb::HarvestTrigger::Registered).await;
    drop(server);
    assert!(from_git.errors.is_empty(), "{:?}", from_git.errors);
    assert_eq!(
        targets(&from_git.documents),
        [format!(
            "https://127.0.0.1:{port}/repo/blob/main/catalog-info.yaml"
        )]
    );
    assert!(from_url.errors.is_empty(), "{:?}", from_url.errors);
    assert_eq!(
        from_url.documents[0].content,
        component("over-https").into_bytes()
    );
}
