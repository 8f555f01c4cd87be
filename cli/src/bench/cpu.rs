//! CPU time by process during a phase, from `/proc`: where the two cores went while a cold
//! ingest ran (each Cadastre process and each server it runs on), and how much stayed idle.
//! A process's time counts its live descendants (PostgreSQL's backends, `git`) and the
//! children it has reaped.

use std::collections::HashMap;

/// Clock ticks per second of `/proc`'s times (`USER_HZ`): 100 on every Linux that exposes
/// them to user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds spent so far by each named process tree, and by the whole machine.
#[derive(Debug, Clone)]
pub struct CpuSample {
    trees: Vec<(String, f64)>,
    machine_busy: f64,
    machine_idle: f64,
}

impl CpuSample {
    /// Reads the times of `roots` (name, PID) and of the machine now.
    pub fn take(roots: &[(String, u32)]) -> CpuSample {
        let processes = all_processes();
        let trees = roots
            .iter()
            .map(|(name, pid)| (name.clone(), tree_seconds(*pid, &processes)))
            .collect();
        let (machine_busy, machine_idle) = machine_seconds();
        CpuSample {
            trees,
            machine_busy,
            machine_idle,
        }
    }

    /// What each tree spent since `earlier`, then the machine's busy and idle seconds
    /// (idle counts every core).
    pub fn since(&self, earlier: &CpuSample) -> CpuSpent {
        let before: HashMap<&str, f64> = earlier
            .trees
            .iter()
            .map(|(name, seconds)| (name.as_str(), *seconds))
            .collect();
        CpuSpent {
            by_process: self
                .trees
                .iter()
                .map(|(name, seconds)| {
                    let start = before.get(name.as_str()).copied().unwrap_or(0.0);
                    (name.clone(), (seconds - start).max(0.0))
                })
                .collect(),
            busy: self.machine_busy - earlier.machine_busy,
            idle: self.machine_idle - earlier.machine_idle,
        }
    }
}

/// CPU seconds spent during a phase.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CpuSpent {
    pub by_process: Vec<(String, f64)>,
    /// Every core's busy seconds, whoever spent them (the benchmark itself included).
    pub busy: f64,
    /// Every core's idle seconds (waiting for I/O included).
    pub idle: f64,
}

impl CpuSpent {
    /// `store 120 s, search 40 s, …; machine 80% busy`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .by_process
            .iter()
            .map(|(name, seconds)| format!("{name} {seconds:.0} s"))
            .collect();
        let total = self.busy + self.idle;
        if total > 0.0 {
            parts.push(format!("all cores {:.0}% busy", 100.0 * self.busy / total));
        }
        parts.join(", ")
    }
}

/// Per live process: parent PID, own CPU ticks, and ticks of its reaped children.
struct ProcessTimes {
    parent: u32,
    own: u64,
    reaped: u64,
}

fn all_processes() -> HashMap<u32, ProcessTimes> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&stat)?))
        })
        .collect()
}

/// Fields of `/proc/PID/stat` after the command's closing parenthesis (which may itself hold
/// spaces and parentheses): state, ppid, … utime (14th field), stime, cutime, cstime.
fn parse_stat(stat: &str) -> Option<ProcessTimes> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
    Some(ProcessTimes {
        parent: u32::try_from(field(4)?).ok()?,
        own: field(14)? + field(15)?,
        reaped: field(16)? + field(17)?,
    })
}

/// Seconds spent by `root`, its live descendants, and the children it reaped.
fn tree_seconds(root: u32, processes: &HashMap<u32, ProcessTimes>) -> f64 {
    let Some(root_times) = processes.get(&root) else {
        return 0.0;
    };
    let mut ticks = root_times.own + root_times.reaped;
    for (&pid, times) in processes {
        if pid != root && descends_from(pid, root, processes) {
            ticks += times.own;
        }
    }
    ticks as f64 / TICKS_PER_SECOND
}

fn descends_from(mut pid: u32, root: u32, processes: &HashMap<u32, ProcessTimes>) -> bool {
    // A bound on the walk: a parent chain is short, and PIDs are reused.
    for _ in 0..64 {
        match processes.get(&pid) {
            Some(times) if times.parent == root => return true,
            Some(times) if times.parent > 1 => pid = times.parent,
            _ => return false,
        }
    }
    false
}

/// The machine's busy and idle seconds over all cores (`/proc/stat`'s first line).
fn machine_seconds() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are inside user already).
    let at = |index: usize| ticks.get(index).copied().unwrap_or(0);
    let idle = at(3) + at(4);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (
        busy as f64 / TICKS_PER_SECOND,
        idle as f64 / TICKS_PER_SECOND,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_in_the_command_parse() {
        let line = "4242 (tokio (worker) 1) S 17 4242 4242 0 -1 4194304 10 0 0 0 250 30 7 3 20 0 9 0 100 0 0";
        let times = parse_stat(line).unwrap();
        assert_eq!(times.parent, 17);
        assert_eq!(times.own, 280);
        assert_eq!(times.reaped, 10);
    }

    #[test]
    fn spent_time_reads_by_process_then_the_machine() {
        let spent = CpuSpent {
            by_process: vec![("store".into(), 120.4), ("nats".into(), 9.6)],
            busy: 150.0,
            idle: 50.0,
        };
        assert_eq!(
            spent.describe(),
            "store 120 s, nats 10 s, all cores 75% busy"
        );
    }

    #[test]
    fn a_busy_child_counts_toward_its_parent() {
        let me = std::process::id();
        let before = CpuSample::take(&[("me".to_owned(), me)]);
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        child.wait().unwrap();
        let after = CpuSample::take(&[("me".to_owned(), me)]);
        let spent = after.since(&before);
        assert_eq!(spent.by_process[0].0, "me");
        assert!(
            spent.by_process[0].1 > 0.0,
            "a reaped child's loop counts: {spent:?}"
        );
        assert!(spent.busy > 0.0);
    }
}
