//! tumult's harness: runs the reference broker inside a deterministic `turmoil`
//! simulation, drives a workload while a nemesis injects faults, heals, runs the final
//! reads, and judges the recorded history with the checker.
//!
//! ```no_run
//! let spec = harness::TestSpec::new(42);
//! let stored = harness::run_and_store(&spec, &harness::Store::new("results")).unwrap();
//! println!("{:?} in {}", stored.outcome.report.valid, stored.dir.display());
//! ```

pub mod bench;
pub mod bench_check;
pub mod bench_systems;
pub mod exemplars;
pub mod matrix;
mod monitor;
mod nemesis;
pub mod pages;
mod probe;
pub mod real;
mod recorder;
mod run;
mod seams;
pub mod serve;
pub mod shrink;
mod simlog;
mod spec;
mod store;
pub mod suite;
pub mod synth;
pub mod systems;
pub mod zoo;

use std::io::LineWriter;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::json;
use workloads::Registration;

pub use nemesis::{Damage, Fault, Schedule, ScheduleError, ScheduledFault, Shape, SCHEDULE_VERSION};
pub use run::{run, run_observed, run_on, run_with, HarnessError, Liveness, Progress, RunOutcome};
pub use seams::{DiskFaultState, DiskFaults, LocalSpawner, SimDisk, SimNetwork};
pub use simlog::{DriverClock, SimTime};
pub use spec::{derive_seed, FaultKind, FaultSet, FaultTarget, LatencyRange, Runtime, TestSpec};
pub use store::{utc_stamp, Store};

/// The worked example of docs/workloads.md, compiled and run as a documentation test so
/// that the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/workloads.md")]
pub struct WorkloadsGuide;

/// The version of results.json's layout (docs/results.md), raised when a field changes
/// meaning or goes away.
pub const RESULTS_VERSION: u32 = 1;

/// A run whose files are in the store.
#[derive(Debug)]
pub struct StoredRun {
    /// The run's directory.
    pub dir: PathBuf,
    /// What the run produced.
    pub outcome: RunOutcome,
}

/// Why a stored run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StoreRunError {
    /// The spec was refused before anything ran.
    #[error("{0}")]
    Spec(HarnessError),
    /// The store's files could not be written.
    #[error("results store: cannot write {}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why (shown in the message, so not a `source`: it would print twice).
        cause: std::io::Error,
    },
    /// A page or picture of the run could not be made.
    #[error("results pages: {0}")]
    Pages(pages::PageError),
    /// The run itself failed; its directory holds what was written.
    #[error("the run failed (partial results in {dir})")]
    Run {
        /// The run's directory.
        dir: PathBuf,
        /// What went wrong.
        source: HarnessError,
    },
}

// By hand, not `#[from]`: the message shows the cause, which as a `source` too would print
// twice in an error chain.
impl From<pages::PageError> for StoreRunError {
    fn from(e: pages::PageError) -> Self {
        StoreRunError::Pages(e)
    }
}

/// Runs `spec` and stores params.json, history.jsonl (written as the run goes) and its
/// twin history.edn, harness.log, results.json and schedule.json in a new run directory;
/// points `latest` at it.
pub fn run_and_store(spec: &TestSpec, store: &Store) -> Result<StoredRun, StoreRunError> {
    let registration = spec
        .registration()
        .map_err(|e| StoreRunError::Spec(HarnessError::Spec(e)))?;
    run_and_store_observed(spec, &registration, store, &|_| {})
}

/// [`run_and_store`] with `registration`'s workload, calling `progress` as the run goes.
pub fn run_and_store_observed(
    spec: &TestSpec,
    registration: &Registration,
    store: &Store,
    progress: &dyn Fn(Progress),
) -> Result<StoredRun, StoreRunError> {
    run::preflight(spec, registration).map_err(StoreRunError::Spec)?;
    #[allow(clippy::disallowed_methods)] // names the directory only; never reaches the simulation
    let started = std::time::SystemTime::now();
    let dir = store
        .create_run(&spec.test_name(), spec.seed, started)
        .map_err(at(&store.root().join(spec.test_name())))?;
    let path = dir.join("params.json");
    write_json(&path, &serde_json::to_value(spec).expect("spec serialises")).map_err(at(&path))?;
    let path = dir.join("history.jsonl");
    let history = LineWriter::new(std::fs::File::create(&path).map_err(at(&path))?);
    let path = dir.join("harness.log");
    let log = std::fs::File::create(&path).map_err(at(&path))?;
    let clock = DriverClock::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_timer(SimTime(clock.clone()))
        .with_ansi(false)
        .with_writer(Mutex::new(log))
        .finish();
    let outcome = tracing::subscriber::with_default(subscriber, || match spec.runtime {
        Runtime::Sim => run_observed(spec, registration, Box::new(history), &clock, progress),
        Runtime::Real => run::run_real(spec, registration, &dir, Box::new(history), &clock, progress),
    });
    // Jepsen's form of the same history, for elle-cli and Jepsen's own tools; written
    // for a failed run too, since what it recorded may be the evidence.
    let jsonl = dir.join("history.jsonl");
    let edn = dir.join("history.edn");
    write_edn(&jsonl, &edn)?;
    store
        .point_latest(&dir)
        .map_err(at(&store.root().join("latest")))?;
    let results_path = dir.join("results.json");
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(source) => {
            write_json(&results_path, &json!({ "error": source.to_string() })).map_err(at(&results_path))?;
            return Err(StoreRunError::Run { dir, source });
        }
    };
    let results = json!({
        "version": RESULTS_VERSION,
        "valid": outcome.report.valid,
        "exit-code": outcome.exit_code(),
        "liveness": outcome.liveness,
        "op-count": outcome.history.ops().len(),
        "simulated-seconds": outcome.simulated.as_secs_f64(),
        "seed": spec.seed,
        "settings": spec.settings(),
        "findings": outcome.report.findings(),
        "replay": spec.replay_command(),
        "checker": outcome.report,
    });
    write_json(&results_path, &results).map_err(at(&results_path))?;
    let path = dir.join("schedule.json");
    outcome.schedule.save(&path).map_err(at(&path))?;
    // The check already explained its cycles: write those out rather than search again.
    // A log run always gets the file, so that its absence never needs interpreting.
    if let Some(log) = outcome.report.log() {
        let mut cycles = log.cycles_text();
        if cycles.is_empty() {
            cycles = "no dependency cycles found\n".into();
        }
        let path = dir.join("cycles.txt");
        std::fs::write(&path, cycles).map_err(at(&path))?;
    }
    pages::write_run_pages(
        &dir,
        &outcome.history,
        &outcome.schedule,
        &outcome.report,
        Some(spec.concurrency as u64),
    )?;
    pages::write_index(store.root())?;
    Ok(StoredRun { dir, outcome })
}

/// Writes the JSONL history at `jsonl` as Jepsen's EDN at `edn`.
fn write_edn(jsonl: &std::path::Path, edn: &std::path::Path) -> Result<(), StoreRunError> {
    let reader = std::io::BufReader::new(std::fs::File::open(jsonl).map_err(at(jsonl))?);
    let writer = std::io::BufWriter::new(std::fs::File::create(edn).map_err(at(edn))?);
    checker::jsonl_to_edn(reader, writer).map_err(|e| match e {
        checker::EdnWriteError::Io(cause) => StoreRunError::Io {
            path: edn.to_path_buf(),
            cause,
        },
        // The recorder wrote every line: a malformed one is a harness bug, as in the check.
        checker::EdnWriteError::History(e) => StoreRunError::Spec(HarnessError::HistoryShape(e)),
    })
}

/// Names `path` in a store error.
fn at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreRunError + '_ {
    move |cause| StoreRunError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Runs `spec` again without storing anything and returns its history.jsonl bytes.
pub fn history_bytes(spec: &TestSpec) -> Result<Vec<u8>, HarnessError> {
    run_keeping_history(spec).map(|(_, bytes)| bytes)
}

/// Runs `spec` without storing anything; returns its outcome and its history.jsonl bytes.
pub fn run_keeping_history(spec: &TestSpec) -> Result<(RunOutcome, Vec<u8>), HarnessError> {
    let buffer = SharedBuffer::default();
    let outcome = run(spec, Box::new(buffer.clone()), &DriverClock::default())?;
    let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((outcome, bytes))
}

/// The first line (counted from 1) at which two histories differ, if they do.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let mut lines_a = a.split(|c| *c == b'\n');
    let mut lines_b = b.split(|c| *c == b'\n');
    for line in 1.. {
        match (lines_a.next(), lines_b.next()) {
            (None, None) => return None,
            (x, y) if x != y => return Some(line),
            _ => {}
        }
    }
    unreachable!("the loop returns when both histories end")
}

#[derive(Clone, Default)]
struct SharedBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    std::fs::write(path, text)
}
