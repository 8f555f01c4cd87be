//! `cadastre bench`: the scale benchmark, end to end. For each size N it generates the
//! synthetic organisation (`cadastre generate`: team git repositories under one root
//! Location), starts Cadastre on it (embedded: `cadastre up`, one process; distributed: store,
//! harvester, processor, search and gateway as processes on NATS, PostgreSQL and OpenSearch),
//! and measures what a user would:
//!
//! - cold ingest: from registering the root location until the store holds every generated
//!   entity and search holds everything the store does;
//! - push-to-visible: a commit changing one entity in a team repository, a signed GitHub push
//!   webhook, and the time until the change is served by the REST API and found by search;
//! - API latency under load: concurrent clients on by-name, a filtered first page, facets,
//!   search and suggest, and the web UI's catalog and entity pages (requests/s, p50, p99);
//! - peak resident memory of each process (the kernel's high-water mark), and the disk the
//!   store and the index use;
//! - the CPU seconds each process (and each server, in distributed mode) spent on the cold
//!   ingest, and how busy the cores were.
//!
//! It prints one table, and writes it (`results.md`), the figures (`results.json`) and a chart
//! of ingest time and p99 latencies against N (`chart.svg`) to `--out`.

// A command's own output: the table on stdout, progress on stderr (the services it measures
// log with `tracing`, to their own files).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod chart;
mod cpu;
mod load;
mod system;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use system::ServiceUrls;
use system::System;

use crate::generate::git;

/// The secret the benchmark's gateway verifies push webhooks with.
const WEBHOOK_SECRET: &str = "cadastre-bench webhook secret";

/// How Cadastre runs for a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `cadastre up`: one process, in-process bus, SQLite, tantivy.
    Embedded,
    /// Separate processes on NATS JetStream, PostgreSQL and OpenSearch.
    Distributed,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Embedded => "embedded",
            Mode::Distributed => "distributed",
        })
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Vec<usize>,
    pub modes: Vec<Mode>,
    /// Pushes timed per size.
    pub pushes: usize,
    /// Concurrent clients of the load phase.
    pub clients: usize,
    /// How long each route is loaded.
    pub load_duration: Duration,
    /// Cold ingest may take at most this long.
    pub ingest_timeout: Duration,
    pub seed: u64,
    /// Where organisations and data folders are written (removed after each size).
    pub work_dir: PathBuf,
    /// Where the table, figures and chart go.
    pub out: PathBuf,
    /// The servers the distributed mode uses.
    pub services: Option<ServiceUrls>,
}

/// One size in one mode: every figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub mode: Mode,
    pub entities: usize,
    /// Entities the store held at the end of the cold ingest.
    pub stored: u64,
    pub ingest_seconds: f64,
    pub ingest_per_second: f64,
    pub push: PushFigures,
    pub routes: Vec<load::RouteFigures>,
    /// Peak resident memory per process (`VmHWM`: heap and the mapped database and index
    /// files), in MiB.
    pub peak_rss_mib: Vec<(String, f64)>,
    /// Peak heap per process (`RssAnon`, sampled every 250 ms), in MiB.
    pub peak_heap_mib: Vec<(String, f64)>,
    pub store_disk_mib: f64,
    pub index_disk_mib: f64,
    /// CPU seconds per process (and server) over the cold ingest; empty in runs before it
    /// was measured.
    #[serde(default)]
    pub ingest_cpu: cpu::CpuSpent,
}

/// Push-to-visible over the timed pushes, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushFigures {
    pub pushes: usize,
    /// Pushes not visible in time (each counted as the timeout in the percentiles).
    pub missed: usize,
    pub rest_p50_ms: f64,
    pub rest_p99_ms: f64,
    pub search_p50_ms: f64,
    pub search_p99_ms: f64,
    /// Both REST and search show the change.
    pub visible_p50_ms: f64,
    pub visible_p99_ms: f64,
}

/// Everything the run found, as written to `results.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    pub measurements: Vec<Measurement>,
}

/// Where the figures come from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
    pub os: String,
    pub date: String,
    pub command: String,
}

/// Runs every size in every mode; prints and writes the results.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    if options.modes.contains(&Mode::Distributed) && options.services.is_none() {
        bail!(
            "the distributed mode needs --nats-url, --postgres-url and --opensearch-url \
             (scripts/bench-scale starts those servers and passes them)"
        );
    }
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Results accumulate in `--out`: a rerun of a mode and size replaces its row, others stay
    // (so the embedded and distributed modes can be run apart).
    let mut report = Report {
        machine: Machine::describe(),
        measurements: earlier_measurements(&options.out),
    };
    for &size in &options.sizes {
        for &mode in &options.modes {
            eprintln!("== {mode}, {size} entities");
            let measured = measure(&options, mode, size)
                .await
                .with_context(|| format!("{mode} at {size} entities"))?;
            report
                .measurements
                .retain(|m| (m.mode, m.entities) != (mode, size));
            report.measurements.push(measured);
            report
                .measurements
                .sort_by_key(|m| (m.mode as u8, m.entities));
            // Written after every size, so a long run that stops keeps what it measured.
            write_results(&options.out, &report)?;
        }
    }
    println!("{}", table(&report));
    Ok(report)
}

/// Loads the API of a Cadastre already running at `base` and holding the organisation of
/// `size` and `seed` (`cadastre generate`), on `routes` (all when empty); prints each route's
/// figures. Measures nothing else and writes nothing: for a profile of one route, or a
/// comparison of two builds on one catalog, without an ingest each time.
pub async fn load_only(
    base: &str,
    size: usize,
    seed: u64,
    clients: usize,
    duration: Duration,
    routes: &[String],
) -> anyhow::Result<Vec<load::RouteFigures>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let organisation = cadastre_synth::Organisation::new(seed, size);
    let refs = (0..organisation.len())
        .map(|i| organisation.entity_ref(i))
        .collect();
    let figures = load::routes(base, refs, clients, duration, routes).await?;
    for route in &figures {
        println!(
            "{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)",
            route.route, route.requests_per_second, route.p50_ms, route.p99_ms, route.errors
        );
    }
    Ok(figures)
}

/// Writes `results.md` and `chart.svg` again from `out/results.json`, measuring nothing (for a
/// new chart or table layout over figures already taken).
pub fn redraw(out: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(out.join("results.json"))
        .with_context(|| format!("reading {}", out.join("results.json").display()))?;
    let report: Report = serde_json::from_str(&text).context("results.json")?;
    write_results(out, &report)?;
    println!("{}", table(&report));
    Ok(report)
}

/// The measurements an earlier run left in `out/results.json` (none when there is no such
/// file, or it is of another shape).
fn earlier_measurements(out: &Path) -> Vec<Measurement> {
    std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Report>(&text).ok())
        .map(|report| report.measurements)
        .unwrap_or_default()
}

async fn measure(options: &Options, mode: Mode, size: usize) -> anyhow::Result<Measurement> {
    let work = options.work_dir.join(format!("{mode}-{size}"));
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("removing the previous run's {}", work.display()))?;
    }
    // Absolute, so the repositories' URLs in push webhooks name the locations Cadastre
    // registered (a relative work folder made every push touch no location).
    std::fs::create_dir_all(&work)?;
    let work = std::fs::canonicalize(&work)
        .with_context(|| format!("the work folder {}", work.display()))?;
    let started = Instant::now();
    let generated = crate::generate::run(
        &crate::generate::Options {
            size,
            seed: options.seed,
            out: work.join("org"),
            max_repos: 200,
            per_file: 100,
        },
        |_| {},
    )?;
    eprintln!(
        "generated {} entities in {} repositories ({} files) in {:.1?}",
        generated.entities,
        generated.repositories,
        generated.files,
        started.elapsed()
    );

    let system = match mode {
        Mode::Embedded => System::embedded(&work).await?,
        Mode::Distributed => {
            let services = options.services.as_ref().expect("checked in run");
            System::distributed(&work, services, size).await?
        }
    };
    let api = load::Api::new(&system.base);
    let heap = system.sample_heap();
    let cpu_roots = system.cpu_roots();
    let cpu_before = cpu::CpuSample::take(&cpu_roots);
    let registered = Instant::now();
    system.register_root(&api, &generated.root).await?;
    let stored = wait_for_ingest(&api, &system, generated.entities, options, registered).await?;
    let ingest = registered.elapsed();
    let ingest_cpu = cpu::CpuSample::take(&cpu_roots).since(&cpu_before);
    eprintln!(
        "cold ingest: {stored} entities stored and searchable in {:.1?}",
        ingest
    );
    eprintln!("cold ingest CPU: {}", ingest_cpu.describe());

    let push = pushes(&api, &work.join("org"), options.pushes).await?;
    eprintln!(
        "push-to-visible p50 {:.0} ms, p99 {:.0} ms ({} missed)",
        push.visible_p50_ms, push.visible_p99_ms, push.missed
    );

    let refs: Vec<String> = {
        let organisation = cadastre_synth::Organisation::new(options.seed, size);
        (0..organisation.len())
            .map(|i| organisation.entity_ref(i))
            .collect()
    };
    let routes = load::routes(
        &system.base,
        refs,
        options.clients,
        options.load_duration,
        &[],
    )
    .await?;
    for route in &routes {
        eprintln!(
            "{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            route.route, route.requests_per_second, route.p50_ms, route.p99_ms
        );
    }

    let peak_rss_mib = system.peak_rss_mib();
    let peak_heap_mib = heap.peaks().await;
    let (store_disk_mib, index_disk_mib) = system.disk_mib(&api).await?;
    system.stop().await;
    // The organisation and the data are large; the figures are what is kept.
    let _ = std::fs::remove_dir_all(&work);
    Ok(Measurement {
        mode,
        entities: size,
        stored,
        ingest_seconds: ingest.as_secs_f64(),
        ingest_per_second: stored as f64 / ingest.as_secs_f64(),
        push,
        routes,
        peak_rss_mib,
        peak_heap_mib,
        store_disk_mib,
        index_disk_mib,
        ingest_cpu,
    })
}

/// Waits until the store holds at least `expected` entities and search as many as the store;
/// answers the store's count. Prints progress every few seconds.
async fn wait_for_ingest(
    api: &load::Api,
    system: &System,
    expected: usize,
    options: &Options,
    registered: Instant,
) -> anyhow::Result<u64> {
    let mut last_report = Instant::now();
    loop {
        system.check_alive()?;
        let stored = api.count().await.unwrap_or(0);
        let searchable = api.search_total().await.unwrap_or(0);
        // The store builds its read indexes once a first import is done; the import is done
        // when reads are as fast as they get.
        let indexes_pending = api.indexes_pending().await.unwrap_or(u64::MAX);
        if stored >= expected as u64 && searchable >= stored && indexes_pending == 0 {
            return Ok(stored);
        }
        if registered.elapsed() > options.ingest_timeout {
            bail!(
                "cold ingest did not finish in {:?}: {stored} of {expected} stored, \
                 {searchable} searchable, {indexes_pending} read indexes to build",
                options.ingest_timeout
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {:>5.0} s: {stored} of {expected} stored, {searchable} searchable, \
                 {indexes_pending} read indexes to build",
                registered.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        // Each poll counts the whole catalog twice; once a second keeps that off the figures.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The longest a push may take to be visible before it counts as missed.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// `count` pushes, one after the other, each to the next team repository: the first entity of
/// its first file gets a new description, committed; a signed push webhook; then REST and
/// search are asked until both show it.
async fn pushes(api: &load::Api, org: &Path, count: usize) -> anyhow::Result<PushFigures> {
    let mut repos: Vec<PathBuf> = std::fs::read_dir(org.join("repos"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.file_name().is_some_and(|n| n != "org"))
        .collect();
    repos.sort();
    if repos.is_empty() || count == 0 {
        return Ok(PushFigures::default());
    }
    let (mut rest, mut search, mut visible) = (Vec::new(), Vec::new(), Vec::new());
    let mut missed = 0;
    for push in 0..count {
        let repo = &repos[push % repos.len()];
        let marker = format!("benchpush{push}x{:08x}", rand_suffix());
        let (entity_ref, commit) = change_first_entity(repo, &marker)?;
        let repository_url = format!("file://{}", repo.display());
        let sent = Instant::now();
        api.push(&repository_url, &commit, WEBHOOK_SECRET).await?;
        let (mut rest_at, mut search_at) = (None, None);
        while (rest_at.is_none() || search_at.is_none()) && sent.elapsed() < PUSH_TIMEOUT {
            if rest_at.is_none() && api.description(&entity_ref).await?.contains(&marker) {
                rest_at = Some(sent.elapsed());
            }
            if search_at.is_none() && api.search_finds(&marker, &entity_ref).await? {
                search_at = Some(sent.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if rest_at.is_none() || search_at.is_none() {
            missed += 1;
        }
        let rest_at = rest_at.unwrap_or(PUSH_TIMEOUT);
        let search_at = search_at.unwrap_or(PUSH_TIMEOUT);
        rest.push(rest_at);
        search.push(search_at);
        visible.push(rest_at.max(search_at));
    }
    let ms = |samples: &mut Vec<Duration>, q: f64| load::percentile(samples, q);
    Ok(PushFigures {
        pushes: count,
        missed,
        rest_p50_ms: ms(&mut rest, 0.50),
        rest_p99_ms: ms(&mut rest, 0.99),
        search_p50_ms: ms(&mut search, 0.50),
        search_p99_ms: ms(&mut search, 0.99),
        visible_p50_ms: ms(&mut visible, 0.50),
        visible_p99_ms: ms(&mut visible, 0.99),
    })
}

/// A few random bits, so reruns never find an old marker.
fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// Sets the description of the first entity in `repo`'s first catalog file to `marker`, and
/// commits; answers that entity's ref and the commit.
fn change_first_entity(repo: &Path, marker: &str) -> anyhow::Result<(String, String)> {
    let file = repo.join("catalog/entities-00000.yaml");
    let text = std::fs::read_to_string(&file)?;
    // The generator writes one JSON document (a YAML flow document) per line.
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let mut entity: Value = serde_json::from_str(first)
        .with_context(|| format!("the first document of {}", file.display()))?;
    entity["metadata"]["description"] = Value::String(format!("Changed by push {marker}"));
    let entity_ref = format!(
        "{}:{}/{}",
        entity["kind"].as_str().unwrap_or_default().to_lowercase(),
        entity["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default"),
        entity["metadata"]["name"].as_str().unwrap_or_default()
    );
    std::fs::write(&file, format!("{entity}\n{rest}"))?;
    git(repo, &["commit", "-q", "-a", "-m", marker])?;
    let commit = git(repo, &["rev-parse", "HEAD"])?;
    Ok((entity_ref, commit))
}

fn write_results(out: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    std::fs::write(out.join("results.md"), table(report))?;
    std::fs::write(out.join("chart.svg"), chart::svg(&report.measurements))?;
    Ok(())
}

/// The results as a Markdown table: one row per mode and size.
pub fn table(report: &Report) -> String {
    let machine = &report.machine;
    let mut out = format!(
        "Machine: {} cores ({}), {:.0} GiB, {}; {}.\n\n",
        machine.cores, machine.cpu, machine.memory_gib, machine.os, machine.date
    );
    let route_names: Vec<String> = report
        .measurements
        .first()
        .map(|m| m.routes.iter().map(|r| r.route.clone()).collect())
        .unwrap_or_default();
    out.push_str(
        "| mode | entities | cold ingest | entities/s | push→visible p50 / p99 (REST; search) |",
    );
    for route in &route_names {
        out.push_str(&format!(" {route} req/s, p50 / p99 ms |"));
    }
    out.push_str(" peak RSS (heap) | store disk | index disk |\n|---|---:|---:|---:|---:|");
    for _ in &route_names {
        out.push_str("---:|");
    }
    out.push_str("---|---:|---:|\n");
    for m in &report.measurements {
        let push = &m.push;
        out.push_str(&format!(
            "| {} | {} | {:.1} s | {:.0} | {:.0} / {:.0} ms ({:.0} / {:.0}; {:.0} / {:.0}){} |",
            m.mode,
            thousands(m.entities),
            m.ingest_seconds,
            m.ingest_per_second,
            push.visible_p50_ms,
            push.visible_p99_ms,
            push.rest_p50_ms,
            push.rest_p99_ms,
            push.search_p50_ms,
            push.search_p99_ms,
            if push.missed > 0 {
                format!(", {} of {} missed", push.missed, push.pushes)
            } else {
                String::new()
            }
        ));
        for route in &m.routes {
            out.push_str(&format!(
                " {:.0}, {:.2} / {:.2} |",
                route.requests_per_second, route.p50_ms, route.p99_ms
            ));
        }
        let memory: Vec<String> = m
            .peak_rss_mib
            .iter()
            .zip(&m.peak_heap_mib)
            .map(|((process, rss), (_, heap))| format!("{process} {rss:.0} MiB ({heap:.0} heap)"))
            .collect();
        out.push_str(&format!(
            " {} | {:.0} MiB | {:.0} MiB |\n",
            memory.join(", "),
            m.store_disk_mib,
            m.index_disk_mib
        ));
    }
    let measured_cpu: Vec<&Measurement> = report
        .measurements
        .iter()
        .filter(|m| !m.ingest_cpu.by_process.is_empty())
        .collect();
    if !measured_cpu.is_empty() {
        out.push_str(
            "\nCPU seconds spent during each cold ingest, by process (servers included):\n\n",
        );
        for m in measured_cpu {
            out.push_str(&format!(
                "- {} {}: {}\n",
                m.mode,
                thousands(m.entities),
                m.ingest_cpu.describe()
            ));
        }
    }
    out
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Machine {
    fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(
                || "unknown CPU".to_owned(),
                |(_, name)| name.trim().to_owned(),
            );
        let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map_or_else(
                || "Linux".to_owned(),
                |name| name.trim_matches('"').to_owned(),
            );
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            cpu,
            os,
            date: time_now(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }
}

/// Today's date (UTC), from the system clock.
fn time_now() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(950), "950");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(time_now().len(), 10);
    }

    #[test]
    fn a_push_changes_one_entity_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        std::fs::create_dir_all(repo.join("catalog")).unwrap();
        std::fs::write(
            repo.join("catalog/entities-00000.yaml"),
            "{\"kind\":\"Component\",\"metadata\":{\"name\":\"a\"}}\n---\n{\"kind\":\"API\",\"metadata\":{\"name\":\"b\"}}\n",
        )
        .unwrap();
        git(repo, &["init", "-q", "-b", "main"]).unwrap();
        git(repo, &["add", "-A"]).unwrap();
        git(repo, &["commit", "-q", "-m", "first"]).unwrap();
        let (entity_ref, commit) = change_first_entity(repo, "benchpush1").unwrap();
        assert_eq!(entity_ref, "component:default/a");
        assert_eq!(git(repo, &["rev-parse", "HEAD"]).unwrap(), commit);
        let text = std::fs::read_to_string(repo.join("catalog/entities-00000.yaml")).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            first["metadata"]["description"],
            "Changed by push benchpush1"
        );
        assert!(text.ends_with("---\n{\"kind\":\"API\",\"metadata\":{\"name\":\"b\"}}\n"));
    }
}
