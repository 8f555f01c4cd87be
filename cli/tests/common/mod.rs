//! Running `cadastre` services as real processes in tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `cadastre` process, killed (SIGKILL) when dropped.
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Service {
    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn crash(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// Starts `cadastre --config CONFIG ARGS…`, its log (stderr) in `log`.
pub fn start(config: &Path, args: &[&str], log: &Path) -> Service {
    let log = std::fs::File::create(log).unwrap();
    Service(
        Command::new(env!("CARGO_BIN_EXE_cadastre"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("CADASTRE_BUS_NATS_URL")
            .env("RUST_LOG", "info,async_nats=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cadastre"),
    )
}

/// A free loopback port (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 60 s) until something accepts connections on `port`.
pub async fn wait_for_port(port: u16, logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port}:\n{}",
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last lines of each service's log, for a failure message (the folder goes with the test).
pub fn log_tails(dir: &Path) -> String {
    let mut tails = String::new();
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        tails.push_str(&format!("--- {}\n", log.display()));
        for line in &lines[lines.len().saturating_sub(15)..] {
            tails.push_str(line);
            tails.push('\n');
        }
    }
    tails
}
