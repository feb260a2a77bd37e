//! `tumult bench check`: the checker timed on the user's path. A synthetic history file is
//! written, then `tumult check FILE --stats` runs on it as a new process, so what is timed
//! is what a user waits for: reading the file, every analysis, and the printed verdict.

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::bench::wall_now;
use crate::synth::{write_history, Shape, Spelling};

/// One timed check.
#[derive(Debug, Clone)]
pub struct CheckFigures {
    /// Operations in the file.
    pub ops: u64,
    /// Size of the file.
    pub file_bytes: u64,
    /// Wall time of the whole `tumult check` process.
    pub wall: Duration,
    /// The process' exit code (0 valid, 1 invalid, 2 unknown, 3 error).
    pub exit_code: i32,
    /// The checking process' peak resident set, as it reported it.
    pub peak_rss_bytes: Option<u64>,
    /// The CPU time the checking process spent, as it reported it (user and system, on
    /// its one thread). On a shared machine the wall time includes whatever else ran;
    /// this does not, so it is the steadier measure of "on one core".
    pub cpu: Option<Duration>,
    /// What the checker printed on its first line after the path (the verdict).
    pub verdict: String,
}

impl CheckFigures {
    /// Operations checked per wall second.
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Operations checked per second of the checker's CPU time, when it reported it.
    pub fn ops_per_cpu_s(&self) -> Option<f64> {
        self.cpu.map(|cpu| self.ops as f64 / cpu.as_secs_f64().max(1e-9))
    }

    /// What the check cost: its CPU time, or its wall time where CPU time is unknown.
    pub fn cost(&self) -> Duration {
        self.cpu.unwrap_or(self.wall)
    }

    /// The better of two timings of the same file: the lesser cost. Other processes only
    /// ever add time, so the least of several runs is the closest to what the checker
    /// itself costs.
    pub fn best(self, other: CheckFigures) -> CheckFigures {
        let wall = self.wall.min(other.wall);
        let mut best = if other.cost() < self.cost() { other } else { self };
        best.wall = wall;
        best
    }
}

/// The CPU time this process has spent so far: from `/proc/self/schedstat` in nanoseconds,
/// or else `/proc/self/stat`'s user and system ticks (Linux reports those in hundredths of
/// a second); `None` where neither exists.
pub fn cpu_time() -> Option<Duration> {
    if let Ok(text) = std::fs::read_to_string("/proc/self/schedstat") {
        if let Some(ns) = text.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()) {
            if ns > 0 {
                return Some(Duration::from_nanos(ns));
            }
        }
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// This process' peak resident set size, from `/proc/self/status` (`None` where there is
/// no such file).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The median of some runs' costs (the mean of the middle two of an even count; 0 for
/// none). Beside the least of them, it shows how much a busy machine added.
pub fn median(mut costs: Vec<f64>) -> f64 {
    costs.sort_by(f64::total_cmp);
    match costs.len() {
        0 => 0.0,
        n if n % 2 == 1 => costs[n / 2],
        n => (costs[n / 2 - 1] + costs[n / 2]) / 2.0,
    }
}

/// Writes a history of `shape` with about `ops` operations to `path`; returns the count.
pub fn write_file(shape: Shape, ops: u64, spelling: Spelling, path: &Path) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    write_history(shape, ops, 1, spelling, file)
}

/// Runs `tumult check PATH --stats` with the `tumult` binary at `exe` and times it.
pub fn time_check(exe: &Path, path: &Path, ops: u64) -> io::Result<CheckFigures> {
    let file_bytes = std::fs::metadata(path)?.len();
    let started = wall_now();
    let output = Command::new(exe)
        .arg("check")
        .arg(path)
        .args(["--workload", "log", "--stats"])
        .output()?;
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak_rss_bytes = stderr
        .lines()
        .find_map(|l| l.strip_prefix("stats: peak RSS "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let cpu = stderr
        .lines()
        .find_map(|l| l.strip_prefix("stats: cpu "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .map(Duration::from_nanos);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict = stdout.lines().nth(1).unwrap_or("").trim().to_string();
    Ok(CheckFigures {
        ops,
        file_bytes,
        wall,
        exit_code: output.status.code().unwrap_or(-1),
        peak_rss_bytes,
        cpu,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_run_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.5]), 7.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
