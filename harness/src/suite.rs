//! Many runs at once: a pool of OS threads, each running whole simulations one after
//! another (a simulation is self-contained and single-threaded, so runs in parallel do not
//! disturb one another's determinism), and the summaries that sweeps and the zoo print,
//! write as JSON and JUnit XML, and merge across machines.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pages::escape;
use crate::{run, DriverClock, HarnessError, RunOutcome, TestSpec};

/// Runs `job` on every item with up to `jobs` threads and returns the results in item
/// order; `done` is called (from the worker) as each finishes, for progress displays.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    job: impl Fn(&T) -> R + Sync,
    done: impl Fn(&R) + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            // Worker threads only start whole simulations; nothing inside one sees them.
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = job(item);
                done(&result);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Runs `spec` without storing anything (the history goes nowhere): for sweeps, which
/// store only the runs that fail, by running their seed again.
pub fn run_quietly(spec: &TestSpec) -> Result<RunOutcome, HarnessError> {
    // A real run needs a run directory for its nodes: it is stored, never run quietly.
    if spec.runtime == crate::Runtime::Real {
        return Err(HarnessError::Spec(
            "a run on real processes is always stored (run_and_store), never run quietly".into(),
        ));
    }
    run(spec, Box::new(std::io::sink()), &DriverClock::default())
}

/// Runs `spec` where it says: in the simulation without storing anything (the seed
/// replays to the same run), or on real processes stored in `store` (a real run needs a
/// directory for its nodes, and never happens the same way twice).
pub fn run_anywhere(spec: &TestSpec, store: &crate::Store) -> Result<RunOutcome, String> {
    match spec.runtime {
        crate::Runtime::Sim => run_quietly(spec).map_err(|e| e.to_string()),
        crate::Runtime::Real => crate::run_and_store(spec, store)
            .map(|stored| stored.outcome)
            .map_err(|e| e.to_string()),
    }
}

/// One seed's result in a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The test's name (`mode-workload-nemesis`).
    pub test: String,
    /// `tumult test`'s exit code for it: 0 valid, 1 invalid, 2 unknown, 3 harness error,
    /// 4 liveness failure.
    pub exit_code: i32,
    /// One line: the anomalies, or the error.
    pub summary: String,
    /// Wall seconds the run took.
    pub wall_s: f64,
    /// The command that replays it.
    pub replay: String,
    /// Where the failing run was stored, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
}

impl SeedResult {
    /// True unless the run was valid.
    pub fn failed(&self) -> bool {
        self.exit_code != 0
    }
}

/// The anomalies of a report, in one line: each analysis' summary when it found something.
pub fn anomaly_line(outcome: &RunOutcome) -> String {
    let mut parts: Vec<String> = outcome
        .report
        .analyses
        .iter()
        .filter(|(_, a)| a.valid() != checker::Validity::True)
        .map(|(name, a)| format!("{name}: {}", a.summary()))
        .collect();
    if !outcome.liveness.recovered {
        parts.push(format!(
            "liveness: {}",
            outcome.liveness.detail.as_deref().unwrap_or("did not recover")
        ));
    }
    if parts.is_empty() {
        "valid".into()
    } else {
        parts.join("; ")
    }
}

/// Version of [`SweepSummary`]'s layout.
pub const SUMMARY_VERSION: u32 = 1;

/// What a sweep (or a shard of one) found: written as JSON, merged across shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SweepSummary {
    /// Layout version ([`SUMMARY_VERSION`]).
    pub version: u32,
    /// Every seed's result, by seed.
    pub results: Vec<SeedResult>,
}

impl SweepSummary {
    /// A summary of `results`, sorted by seed.
    pub fn new(mut results: Vec<SeedResult>) -> Self {
        results.sort_by(|a, b| (a.seed, &a.test).cmp(&(b.seed, &b.test)));
        Self {
            version: SUMMARY_VERSION,
            results,
        }
    }

    /// Several summaries (shards) as one; a seed present twice counts once (the first).
    pub fn merge(parts: Vec<SweepSummary>) -> Self {
        let mut all: Vec<SeedResult> = Vec::new();
        for part in parts {
            for r in part.results {
                if !all.iter().any(|a| a.seed == r.seed && a.test == r.test) {
                    all.push(r);
                }
            }
        }
        Self::new(all)
    }

    /// The results that were not valid.
    pub fn failures(&self) -> impl Iterator<Item = &SeedResult> {
        self.results.iter().filter(|r| r.failed())
    }

    /// Counts by exit code: (valid, invalid, unknown, error, liveness).
    pub fn counts(&self) -> [usize; 5] {
        let mut counts = [0; 5];
        for r in &self.results {
            let slot = match r.exit_code {
                0 => 0,
                1 => 1,
                2 => 2,
                4 => 4,
                _ => 3,
            };
            counts[slot] += 1;
        }
        counts
    }

    /// JUnit XML: one test case per seed, a failure for each run that was not valid,
    /// carrying its anomalies and replay command.
    pub fn junit(&self, suite: &str) -> String {
        let failures = self.failures().count();
        let time: f64 = self.results.iter().map(|r| r.wall_s).sum();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{n}\" failures=\"{failures}\" time=\"{time:.3}\">\n<testsuite name=\"{s}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time:.3}\">\n",
            n = self.results.len(),
            s = escape(suite),
        );
        for r in &self.results {
            out.push_str(&format!(
                "  <testcase classname=\"tumult.{}\" name=\"seed {}\" time=\"{:.3}\"",
                escape(&r.test),
                r.seed,
                r.wall_s
            ));
            if r.failed() {
                out.push_str(&format!(
                    ">\n    <failure message=\"{}\" type=\"exit {}\">replay: {}</failure>\n  </testcase>\n",
                    escape(&r.summary),
                    r.exit_code,
                    escape(&r.replay)
                ));
            } else {
                out.push_str("/>\n");
            }
        }
        out.push_str("</testsuite>\n</testsuites>\n");
        out
    }

    /// The table a person reads: counts, then every failure with its replay command.
    pub fn table(&self) -> String {
        let [valid, invalid, unknown, error, liveness] = self.counts();
        let wall: f64 = self.results.iter().map(|r| r.wall_s).sum();
        let mut out = format!(
            "{} seeds: {valid} valid, {invalid} invalid, {unknown} unknown, {liveness} liveness failures, {error} harness errors ({wall:.1} wall s of runs)\n",
            self.results.len()
        );
        for r in self.failures() {
            out.push_str(&format!(
                "  seed {:<8} exit {}  {}\n    replay: {}\n",
                r.seed, r.exit_code, r.summary, r.replay
            ));
            if let Some(dir) = &r.dir {
                out.push_str(&format!("    stored: {dir}\n"));
            }
        }
        out
    }
}

/// Wall time for figures printed to people and for wall-time bounds (never inside a
/// simulation).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        #[allow(clippy::disallowed_methods)] // wall-clock figures for the user, outside the simulation
        let now = std::time::Instant::now();
        Self(now)
    }

    /// Wall time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(seed: u64, exit_code: i32) -> SeedResult {
        SeedResult {
            seed,
            test: "single-queue-kill".into(),
            exit_code,
            summary: if exit_code == 0 {
                "valid".into()
            } else {
                "total-queue: lost 3 <x>".into()
            },
            wall_s: 0.5,
            replay: format!("tumult test --seed {seed}"),
            dir: None,
        }
    }

    #[test]
    fn parallel_keeps_item_order_and_runs_everything_once() {
        let items: Vec<u64> = (0..40).collect();
        let calls = AtomicUsize::new(0);
        let out = parallel(
            &items,
            3,
            |i| i * 2,
            |_| {
                calls.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 40);
    }

    #[test]
    fn shards_merge_into_one_summary_and_junit_names_each_failure() {
        let a = SweepSummary::new(vec![result(3, 0), result(1, 1)]);
        let b = SweepSummary::new(vec![result(2, 0), result(1, 1)]);
        let merged = SweepSummary::merge(vec![a, b]);
        assert_eq!(
            merged.results.iter().map(|r| r.seed).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(merged.counts(), [2, 1, 0, 0, 0]);
        let xml = merged.junit("nightly");
        assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<failure message=\"total-queue: lost 3 &lt;x&gt;\" type=\"exit 1\">replay: tumult test --seed 1</failure>"), "{xml}");
        assert!(merged.table().contains("replay: tumult test --seed 1"));
    }
}
