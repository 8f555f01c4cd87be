//! `cadastre`: the one user-facing binary. Parses arguments, loads configuration, calls the
//! library, and maps the outcome to an exit status.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cadastre::config::{self, ProcessEnvironment};
use cadastre::validate::{self, OutputFormat};
use cadastre_model::Validator;
use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: ingestion allocates and frees many small values
/// (YAML and JSON trees, rows) across threads; glibc's arenas spent about 15% of the CPU of a
/// cold ingest in `malloc`/`free` and held memory fragmented (see the README's Performance).
/// Its `override` feature sends SQLite's and zlib's allocations to mimalloc too (glibc's
/// `malloc` was still 7% of an embedded import's CPU, all from SQLite).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "cadastre",
    version,
    about = "Cadastre: the register of who owns which software"
)]
struct Cli {
    /// Configuration file (TOML). Also read from CADASTRE_CONFIG.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate catalog files the way the catalog will, before you push.
    ///
    /// Prints `path:line:col: error[rule-id]: message` per problem, then a summary.
    /// Exit status: 0 all valid, 1 something invalid, 2 usage or I/O error.
    Validate {
        /// Files, directories (searched for catalog-info.yaml) or - for standard input.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// In directories, read every *.yaml and *.yml file, not only catalog-info.yaml.
        #[arg(long)]
        all_yaml: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Run everything in one process: the catalog, its API and web UI on --listen, state in
    /// --data-dir, the given catalogs (the bundled examples by default) registered at start.
    Up {
        /// Holds the database, the search index and the harvester's cache.
        #[arg(long, default_value = ".cadastre")]
        data_dir: PathBuf,
        /// Address of the web UI and the API.
        #[arg(long, default_value = "127.0.0.1:7007")]
        listen: std::net::SocketAddr,
        /// A catalog file, or a folder of them, to register (repeatable). Default: ./examples.
        #[arg(long = "catalog", value_name = "PATH")]
        catalogs: Vec<PathBuf>,
    },
    /// Write a synthetic organisation (seeded, deterministic) as catalog files in local git
    /// repositories, with a root catalog-info.yaml whose Location points at them all.
    Generate {
        /// Entities in the organisation.
        #[arg(long, default_value_t = 100_000)]
        size: usize,
        /// The same seed and size always give the same organisation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A new (or empty) folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// Team repositories at most (teams beyond share them).
        #[arg(long, default_value_t = 200)]
        max_repos: usize,
        /// Entities per file.
        #[arg(long, default_value_t = 100)]
        per_file: usize,
    },
    /// Measure Cadastre end to end at each size: cold ingest of a generated organisation,
    /// push-to-visible over signed webhooks, API latency under load, peak memory and disk.
    /// Prints a table; writes results.md, results.json and chart.svg to --out.
    Bench {
        /// Catalog sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000, 1_000_000])]
        sizes: Vec<usize>,
        /// How Cadastre runs (repeatable, or comma-separated).
        #[arg(long = "mode", value_enum, value_delimiter = ',', default_values_t = [cadastre::bench::Mode::Embedded])]
        modes: Vec<cadastre::bench::Mode>,
        /// Pushes timed per size.
        #[arg(long, default_value_t = 100)]
        pushes: usize,
        /// Concurrent clients in the load phase.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Seconds each route is loaded.
        #[arg(long, default_value_t = 10)]
        load_seconds: u64,
        /// Minutes a cold ingest may take before the run fails.
        #[arg(long, default_value_t = 60)]
        ingest_timeout_minutes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scratch space for organisations and data (a few GiB at a million entities).
        #[arg(long, default_value = "target/bench-scale")]
        work_dir: PathBuf,
        /// Where results.md, results.json and chart.svg go.
        #[arg(long, default_value = "target/bench-scale/results")]
        out: PathBuf,
        /// Measure nothing: write results.md and chart.svg again from --out's results.json.
        #[arg(long)]
        redraw: bool,
        /// Only load the API of the Cadastre running at this URL (which holds the organisation
        /// of the one --sizes and --seed); writes nothing.
        #[arg(long, value_name = "URL")]
        against: Option<String>,
        /// With --against, the routes to load (comma-separated; all by default): by-name,
        /// filtered-page, facets, search, suggest, ui-catalog, ui-entity.
        #[arg(long, value_delimiter = ',', requires = "against")]
        routes: Vec<String>,
        /// Distributed mode: NATS (with JetStream).
        #[arg(long, env = "CADASTRE_BENCH_NATS_URL")]
        nats_url: Option<String>,
        /// Distributed mode: a PostgreSQL server (a database is created per size).
        #[arg(long, env = "CADASTRE_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
        /// Distributed mode: OpenSearch.
        #[arg(long, env = "CADASTRE_BENCH_OPENSEARCH_URL")]
        opensearch_url: Option<String>,
        /// Distributed mode: the servers' PIDs (`nats=PID,postgres=PID,opensearch=PID`), to
        /// measure their CPU time during the cold ingest.
        #[arg(long, env = "CADASTRE_BENCH_SERVER_PIDS", value_parser = parse_server_pid, value_delimiter = ',')]
        server_pids: Vec<(String, u32)>,
    },
    /// Run catalog-store, the system of record, serving gRPC until SIGINT or SIGTERM.
    Store {
        /// postgres://… or sqlite://path?mode=rwc (overrides store.database_url).
        #[arg(long)]
        database_url: Option<String>,
        /// Address to serve gRPC on (overrides store.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// NATS to apply batches from and relay changes to (overrides bus.nats_url).
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Run the harvester: reads locations on request and on a schedule, until SIGINT or SIGTERM.
    Harvester {
        /// NATS URL (overrides bus.nats_url).
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Run the processor: turns harvested files into entities, until SIGINT or SIGTERM.
    Processor {
        /// NATS URL (overrides bus.nats_url).
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Run the gateway: Backstage's catalog REST API under /api/catalog, until SIGINT or
    /// SIGTERM.
    Gateway {
        /// Address to serve HTTP on (overrides gateway.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// catalog-store's gRPC address (overrides gateway.store_url).
        #[arg(long)]
        store_url: Option<String>,
        /// NATS URL, to ask the harvester for registered locations (overrides bus.nats_url).
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Run search: follows catalog-store's change feed into the index and serves gRPC, until
    /// SIGINT or SIGTERM. Tantivy in search.index_dir, or OpenSearch when a URL is given.
    Search {
        /// catalog-store's gRPC address (overrides search.store_url).
        #[arg(long)]
        store_url: Option<String>,
        /// Address to serve gRPC on (overrides search.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The tantivy folder (overrides search.index_dir).
        #[arg(long)]
        index_dir: Option<PathBuf>,
        /// Index into OpenSearch at this URL instead (overrides search.opensearch_url).
        #[arg(long)]
        opensearch_url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help/version to stdout and usage errors to stderr itself.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    // Services set up logging (and trace export) inside their runtime, under their name.
    if let Command::Validate { .. } | Command::Generate { .. } | Command::Bench { .. } = cli.command
    {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_writer(std::io::stderr)
            .init();
    }

    let mut config = match config::load(cli.config.as_deref(), &ProcessEnvironment) {
        Ok(config) => config,
        Err(error) => return fail(&format!("configuration: {error}")),
    };
    match cli.command {
        Command::Validate {
            paths,
            all_yaml,
            format,
        } => {
            let registry = match config.registry() {
                Ok(registry) => registry,
                Err(error) => return fail(&format!("configuration: {error}")),
            };
            let options = validate::Options {
                paths,
                all_yaml,
                format,
                limits: config.limits,
            };
            let validator = Validator::new(registry);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let result =
                validate::run(&options, &validator, &mut std::io::stdin().lock(), &mut out);
            let _ = out.flush();
            match result {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
                Err(error) => fail(&error.to_string()),
            }
        }
        Command::Generate {
            size,
            seed,
            out,
            max_repos,
            per_file,
        } => {
            let options = cadastre::generate::Options {
                size,
                seed,
                out,
                max_repos,
                per_file,
            };
            let started = std::time::Instant::now();
            let generated = cadastre::generate::run(&options, |written| {
                let _ = writeln!(std::io::stderr(), "cadastre: {written} entities written");
            });
            match generated {
                Ok(generated) => {
                    let _ = writeln!(
                        std::io::stdout(),
                        "{} entities in {} files in {} git repositories, in {:.1?}\nregister: cadastre up --catalog {}",
                        generated.entities,
                        generated.files,
                        generated.repositories,
                        started.elapsed(),
                        generated.root.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error.to_string()),
            }
        }
        Command::Up {
            data_dir,
            listen,
            catalogs,
        } => {
            let catalogs = if catalogs.is_empty() {
                default_catalogs()
            } else {
                catalogs
            };
            let options = cadastre::up::Options {
                data_dir,
                listen,
                catalogs,
            };
            // The progress lines say what happens; the services speak up when something is wrong.
            serve(
                "cadastre",
                "warn,cadastre::up=info",
                cadastre::up::run(config, options),
            )
        }
        Command::Bench {
            sizes,
            modes,
            pushes,
            clients,
            load_seconds,
            ingest_timeout_minutes,
            seed,
            work_dir,
            out,
            redraw,
            against,
            routes,
            nats_url,
            postgres_url,
            opensearch_url,
            server_pids,
        } => {
            if redraw {
                return match cadastre::bench::redraw(&out) {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(error) => fail(&format!("{error:#}")),
                };
            }
            if let Some(base) = against {
                let [size] = sizes[..] else {
                    return fail("--against loads one catalog: give one size in --sizes");
                };
                return run_to_end(cadastre::bench::load_only(
                    &base,
                    size,
                    seed,
                    clients,
                    std::time::Duration::from_secs(load_seconds),
                    &routes,
                ));
            }
            let services = match (nats_url, postgres_url, opensearch_url) {
                (Some(nats), Some(postgres), Some(opensearch)) => {
                    Some(cadastre::bench::ServiceUrls {
                        nats,
                        postgres,
                        opensearch,
                        server_pids,
                    })
                }
                _ => None,
            };
            let options = cadastre::bench::Options {
                sizes,
                modes,
                pushes,
                clients,
                load_duration: std::time::Duration::from_secs(load_seconds),
                ingest_timeout: std::time::Duration::from_secs(ingest_timeout_minutes * 60),
                seed,
                work_dir,
                out,
                services,
            };
            run_to_end(cadastre::bench::run(options))
        }
        Command::Store {
            database_url,
            listen,
            nats_url,
        } => {
            let mut store = config.store.clone();
            store.database_url = database_url.unwrap_or(store.database_url);
            store.listen = listen.unwrap_or(store.listen);
            if nats_url.is_some() {
                config.bus.nats_url = nats_url;
            }
            serve(
                "cadastre-store",
                "info",
                cadastre::store::run(&store, &config.bus, config.admin.listen),
            )
        }
        Command::Harvester { nats_url } => {
            if nats_url.is_some() {
                config.bus.nats_url = nats_url;
            }
            serve(
                "cadastre-harvester",
                "info",
                cadastre::services::run_harvester(&config),
            )
        }
        Command::Processor { nats_url } => {
            if nats_url.is_some() {
                config.bus.nats_url = nats_url;
            }
            serve(
                "cadastre-processor",
                "info",
                cadastre::services::run_processor(&config),
            )
        }
        Command::Gateway {
            listen,
            store_url,
            nats_url,
        } => {
            config.gateway.listen = listen.unwrap_or(config.gateway.listen);
            if let Some(url) = store_url {
                config.gateway.store_url = url;
            }
            if nats_url.is_some() {
                config.bus.nats_url = nats_url;
            }
            serve(
                "cadastre-gateway",
                "info",
                cadastre::services::run_gateway(&config),
            )
        }
        Command::Search {
            store_url,
            listen,
            index_dir,
            opensearch_url,
        } => {
            let mut search = config.search.clone();
            search.store_url = store_url.unwrap_or(search.store_url);
            search.listen = listen.unwrap_or(search.listen);
            search.index_dir = index_dir.unwrap_or(search.index_dir);
            if opensearch_url.is_some() {
                search.opensearch_url = opensearch_url;
            }
            serve(
                "cadastre-search",
                "info",
                cadastre::services::run_search(&search, config.admin.listen),
            )
        }
    }
}

/// `./examples` when it is there (a clone of this repository); otherwise nothing.
fn default_catalogs() -> Vec<PathBuf> {
    let examples = PathBuf::from("examples");
    if examples.is_dir() {
        vec![examples]
    } else {
        tracing::warn!("no --catalog given and no ./examples folder: the catalog starts empty");
        Vec::new()
    }
}

/// Runs `work` on a new runtime: success, or its error as the exit status.
fn run_to_end<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("starting the runtime: {error}")),
    };
    match runtime.block_on(work) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("{error:#}")),
    }
}

/// Runs a service to completion on a multi-threaded runtime, with logs (filtered by
/// `RUST_LOG`, else `default_filter`) and, when an OTLP endpoint is configured, traces under
/// `name`.
fn serve(
    name: &str,
    default_filter: &str,
    service: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    run_to_end(async {
        let telemetry = cadastre_telemetry::init(name, default_filter)?;
        let outcome = service.await;
        // Flushes the spans still buffered before the process exits.
        drop(telemetry);
        outcome
    })
}

/// Reports a usage or I/O error on stderr and exits with status 2.
fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "cadastre: {message}");
    ExitCode::from(2)
}

/// `name=PID`, one of `--server-pids`.
fn parse_server_pid(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected name=PID"))?;
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the PID is not a number"))?;
    Ok((name.trim().to_owned(), pid))
}
