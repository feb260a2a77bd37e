//! tumult's harness: runs the reference broker inside a deterministic `turmoil`
//! simulation, drives a workload while a nemesis injects faults, heals, runs the final
//! reads, and judges the recorded history with the checker.
//!
//! ```no_run
//! let spec = harness::TestSpec::new(42);
//! let stored = harness::run_and_store(&spec, &harness::Store::new("results")).unwrap();
//! println!("{:?} in {}", stored.outcome.report.valid, stored.dir.display());
//! ```

mod nemesis;
mod recorder;
mod run;
mod seams;
mod simlog;
mod spec;
mod store;

use std::io::LineWriter;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::json;

pub use run::{run, HarnessError, Liveness, RunOutcome};
pub use seams::{LocalSpawner, SimDisk, SimNetwork};
pub use simlog::{DriverClock, SimTime};
pub use spec::{derive_seed, FaultKind, FaultSet, FaultTarget, TestSpec, WorkloadKind};
pub use store::{utc_stamp, Store};

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
    /// The store's files could not be written.
    #[error("results store: {0}")]
    Io(#[from] std::io::Error),
    /// The run itself failed; its directory holds what was written.
    #[error("the run failed (partial results in {dir})")]
    Run {
        /// The run's directory.
        dir: PathBuf,
        /// What went wrong.
        source: HarnessError,
    },
}

/// Runs `spec` and stores params.json, history.jsonl (written as the run goes),
/// harness.log and results.json in a new run directory; points `latest` at it.
pub fn run_and_store(spec: &TestSpec, store: &Store) -> Result<StoredRun, StoreRunError> {
    #[allow(clippy::disallowed_methods)] // names the directory only; never reaches the simulation
    let started = std::time::SystemTime::now();
    let dir = store.create_run(&spec.test_name(), spec.seed, started)?;
    write_json(
        &dir.join("params.json"),
        &serde_json::to_value(spec).expect("spec serialises"),
    )?;
    let history = LineWriter::new(std::fs::File::create(dir.join("history.jsonl"))?);
    let log = std::fs::File::create(dir.join("harness.log"))?;
    let clock = DriverClock::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_timer(SimTime(clock.clone()))
        .with_ansi(false)
        .with_writer(Mutex::new(log))
        .finish();
    let outcome = tracing::subscriber::with_default(subscriber, || run(spec, Box::new(history), &clock));
    store.point_latest(&dir)?;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(source) => {
            write_json(&dir.join("results.json"), &json!({ "error": source.to_string() }))?;
            return Err(StoreRunError::Run { dir, source });
        }
    };
    let results = json!({
        "valid": outcome.report.valid,
        "exit-code": outcome.exit_code(),
        "liveness": outcome.liveness,
        "op-count": outcome.history.len(),
        "simulated-seconds": outcome.simulated.as_secs_f64(),
        "seed": spec.seed,
        "replay": spec.replay_command(),
        "checker": outcome.report,
    });
    write_json(&dir.join("results.json"), &results)?;
    Ok(StoredRun { dir, outcome })
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    std::fs::write(path, text)
}
