//! Cadastre as the benchmark runs it: child processes of this very binary, started on free
//! loopback ports with their state under the size's work folder, and stopped by the PIDs
//! started (SIGTERM, then SIGKILL after a grace period).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::WEBHOOK_SECRET;
use super::load::Api;

/// The services' log filter (`RUST_LOG`), `warn` when unset: their logs go to the work
/// folder, which is removed after each size.
const LOG_FILTER_ENV: &str = "CADASTRE_BENCH_RUST_LOG";

/// The servers the distributed mode runs on.
#[derive(Debug, Clone)]
pub struct ServiceUrls {
    pub nats: String,
    /// A PostgreSQL server URL with a database path (`postgres://user@host:port/postgres`);
    /// each size gets a new database on that server.
    pub postgres: String,
    pub opensearch: String,
    /// The servers' PIDs by name, when known: their CPU time is measured too.
    pub server_pids: Vec<(String, u32)>,
}

enum Layout {
    /// `cadastre up` with its data folder.
    Embedded { data_dir: PathBuf },
    /// Separate services; where their state is.
    Distributed {
        database_url: String,
        opensearch: String,
        index_prefix: String,
    },
}

/// A running Cadastre.
pub struct System {
    /// The gateway: `http://127.0.0.1:PORT`.
    pub base: String,
    processes: Vec<(String, Child)>,
    layout: Layout,
    logs: PathBuf,
    /// Servers this system runs on (distributed mode), by name.
    server_pids: Vec<(String, u32)>,
}

impl System {
    /// `cadastre up` on an empty data folder (the root is registered through the API).
    pub async fn embedded(work: &Path) -> anyhow::Result<System> {
        let data_dir = work.join("data");
        let empty = work.join("nothing-at-start");
        std::fs::create_dir_all(&empty)?;
        let port = free_port()?;
        let mut system = System {
            base: format!("http://127.0.0.1:{port}"),
            processes: Vec::new(),
            layout: Layout::Embedded {
                data_dir: data_dir.clone(),
            },
            logs: work.to_owned(),
            server_pids: Vec::new(),
        };
        system.spawn(
            "cadastre up",
            None,
            &[
                "up".as_ref(),
                "--data-dir".as_ref(),
                data_dir.as_os_str(),
                "--listen".as_ref(),
                format!("127.0.0.1:{port}").as_ref(),
                "--catalog".as_ref(),
                empty.as_os_str(),
            ],
        )?;
        system.wait_for_port(port).await?;
        Ok(system)
    }

    /// Store, search, harvester, processor and gateway as processes, on a new PostgreSQL
    /// database, a NATS namespace and OpenSearch indexes of their own.
    pub async fn distributed(
        work: &Path,
        services: &ServiceUrls,
        size: usize,
    ) -> anyhow::Result<System> {
        let unique = format!("bench{size}x{}", std::process::id());
        let database_url = fresh_database(&services.postgres, &unique).await?;
        let (store_port, search_port, gateway_port) = (free_port()?, free_port()?, free_port()?);
        let store_url = format!("http://127.0.0.1:{store_port}");
        let index_prefix = format!("bench-{unique}");
        let config = work.join("cadastre.toml");
        std::fs::write(
            &config,
            format!(
                r#"[store]
database_url = "{database_url}"
listen = "127.0.0.1:{store_port}"

[bus]
nats_url = "{nats}"
namespace = "{unique}"

[harvester]
allow_local_repositories = true
refresh_interval_secs = 0
cache_dir = "{cache}"
store_url = "{store_url}"

[search]
store_url = "{store_url}"
listen = "127.0.0.1:{search_port}"
opensearch_url = "{opensearch}"
index_prefix = "{index_prefix}"
indexing = true

[gateway]
listen = "127.0.0.1:{gateway_port}"
store_url = "{store_url}"
search_url = "http://127.0.0.1:{search_port}"
location_types = ["url", "git", "file"]
"#,
                nats = services.nats,
                opensearch = services.opensearch,
                cache = work.join("harvester").display(),
            ),
        )?;
        let mut system = System {
            base: format!("http://127.0.0.1:{gateway_port}"),
            processes: Vec::new(),
            layout: Layout::Distributed {
                database_url,
                opensearch: services.opensearch.clone(),
                index_prefix,
            },
            logs: work.to_owned(),
            server_pids: services.server_pids.clone(),
        };
        // The store first: it migrates the schema, then serves.
        system.spawn("store", Some(&config), &["store".as_ref()])?;
        system.wait_for_port(store_port).await?;
        system.spawn("search", Some(&config), &["search".as_ref()])?;
        system.wait_for_port(search_port).await?;
        system.spawn("harvester", Some(&config), &["harvester".as_ref()])?;
        system.spawn("processor", Some(&config), &["processor".as_ref()])?;
        system.spawn("gateway", Some(&config), &["gateway".as_ref()])?;
        system.wait_for_port(gateway_port).await?;
        Ok(system)
    }

    fn spawn(
        &mut self,
        name: &str,
        config: Option<&Path>,
        args: &[&std::ffi::OsStr],
    ) -> anyhow::Result<()> {
        let log_path = self.logs.join(format!("{}.log", name.replace(' ', "-")));
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(std::env::current_exe()?);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .args(args)
            .env_remove("CADASTRE_CONFIG")
            .env(
                "RUST_LOG",
                std::env::var(LOG_FILTER_ENV).unwrap_or_else(|_| "warn".to_owned()),
            )
            .env(crate::config::GITHUB_WEBHOOK_SECRET_ENV, WEBHOOK_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.processes.push((name.to_owned(), child));
        Ok(())
    }

    async fn wait_for_port(&mut self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("nothing listens on {port} after two minutes");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Registers the generated organisation's root file as a `file` location.
    pub async fn register_root(&self, api: &Api, root: &Path) -> anyhow::Result<()> {
        api.register("file", &root.to_string_lossy()).await
    }

    /// Fails, with the tail of its log, when a process has exited.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        for (name, child) in &self.processes {
            // `try_wait` needs `&mut`; /proc says whether the process still runs.
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            if matches!(state, None | Some('Z' | 'X')) {
                let log = self.logs.join(format!("{}.log", name.replace(' ', "-")));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!("{name} exited; its log ends:\n{}", tail.join("\n"));
            }
        }
        Ok(())
    }

    /// The processes (and servers) whose CPU time is measured: name and PID.
    pub fn cpu_roots(&self) -> Vec<(String, u32)> {
        let mut roots: Vec<(String, u32)> = self
            .processes
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect();
        roots.extend(self.server_pids.iter().cloned());
        roots
    }

    /// Each process's peak resident memory (`VmHWM`: heap and mapped files), in MiB.
    pub fn peak_rss_mib(&self) -> Vec<(String, f64)> {
        self.processes
            .iter()
            .map(|(name, child)| (name.clone(), status_kib(child.id(), "VmHWM:") / 1024.0))
            .collect()
    }

    /// Samples each process's anonymous resident memory (`RssAnon`: the heap, without the
    /// database and index files mapped in, which the kernel may drop) every 250 ms, keeping
    /// the largest, until the answer is asked for.
    pub fn sample_heap(&self) -> HeapSampler {
        let pids: Vec<(String, u32)> = self
            .processes
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peaks = vec![0.0f64; pids.len()];
            loop {
                for ((_, pid), peak) in pids.iter().zip(&mut peaks) {
                    *peak = peak.max(status_kib(*pid, "RssAnon:") / 1024.0);
                }
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
            pids.into_iter().map(|(name, _)| name).zip(peaks).collect()
        });
        HeapSampler { stop, task }
    }

    /// Disk used by the store and by the index, in MiB.
    pub async fn disk_mib(&self, _api: &Api) -> anyhow::Result<(f64, f64)> {
        const MIB: f64 = 1024.0 * 1024.0;
        match &self.layout {
            Layout::Embedded { data_dir } => {
                let store: u64 = std::fs::read_dir(data_dir)?
                    .filter_map(Result::ok)
                    .filter(|entry| {
                        entry
                            .file_name()
                            .to_string_lossy()
                            .starts_with("catalog.db")
                    })
                    .filter_map(|entry| entry.metadata().ok())
                    .map(|metadata| metadata.len())
                    .sum();
                Ok((
                    store as f64 / MIB,
                    folder_size(&data_dir.join("search")) as f64 / MIB,
                ))
            }
            Layout::Distributed {
                database_url,
                opensearch,
                index_prefix,
            } => {
                use sea_orm::{ConnectionTrait as _, Database, Statement};
                let db = Database::connect(database_url.as_str()).await?;
                let row = db
                    .query_one_raw(Statement::from_string(
                        db.get_database_backend(),
                        "SELECT pg_database_size(current_database()) AS size",
                    ))
                    .await?
                    .context("no size")?;
                let store: i64 = row.try_get("", "size")?;
                let stats: serde_json::Value = reqwest::Client::new()
                    .get(format!("{opensearch}/{index_prefix}*/_stats/store"))
                    .send()
                    .await?
                    .json()
                    .await?;
                let index = stats["_all"]["total"]["store"]["size_in_bytes"]
                    .as_f64()
                    .unwrap_or(0.0);
                Ok((store as f64 / MIB, index / MIB))
            }
        }
    }

    /// Stops every process: SIGTERM, then SIGKILL after 20 s.
    pub async fn stop(mut self) {
        for (_, child) in &self.processes {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for (name, child) in &mut self.processes {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("{name} did not stop in 20 s: killed");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        self.processes.clear();
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Peak heap per process, sampled while the benchmark runs.
pub struct HeapSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<(String, f64)>>,
}

impl HeapSampler {
    /// The largest `RssAnon` seen per process, in MiB.
    pub async fn peaks(self) -> Vec<(String, f64)> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// A `kB` line of `/proc/PID/status`, in KiB (0 when the process is gone).
fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn folder_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|metadata| metadata.len())
        .sum()
}

/// A new database named `name` on the server `server_url` names; its URL.
async fn fresh_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    use sea_orm::{ConnectionTrait as _, Database};
    let admin = Database::connect(server_url)
        .await
        .with_context(|| format!("connecting to {server_url}"))?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let (base, _) = server_url
        .rsplit_once('/')
        .context("a database path in the PostgreSQL URL")?;
    Ok(format!("{base}/{name}"))
}
