//! `tumult shrink RUN_DIR`: the smallest story that still fails. Replays a failing run's
//! seed with subsets of its fault schedule (delta debugging, Zeller's ddmin), then a shorter
//! run and fewer clients, keeping each cut only if the run still shows the same anomaly,
//! and writes the result as a schedule that `tumult test --schedule` replays.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::nemesis::Schedule;
use crate::suite::run_quietly;
use crate::{RunOutcome, TestSpec};

/// Why a run cannot be shrunk.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    /// A file of the run is missing or unreadable.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The run does not fail when replayed, so there is nothing to keep failing.
    #[error("replaying the run does not fail ({0}); nothing to shrink")]
    NotFailing(String),
    /// The shrunk schedule could not be written.
    #[error("writing {}: {cause}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why (shown in the message, so not a `source`: it would print twice).
        cause: std::io::Error,
    },
}

/// The anomaly a shrunk run must keep showing: the first of these the original shows.
const SIGNS: &[&str] = &[
    "lost",
    "dirty-read",
    "unexpected",
    "inconsistent-offsets",
    "duplicates",
    "liveness",
];

/// The anomalies `outcome` shows, by name: the basic counts first, then every anomaly the
/// workload does not allow (`G1c`, `poll-skip`, ...).
pub fn anomalies(outcome: &RunOutcome) -> Vec<String> {
    let mut found = Vec::new();
    let report = &outcome.report;
    let mut sign = |name: &str, count: usize| {
        if count > 0 {
            found.push(name.to_string());
        }
    };
    if let Some(q) = report.total_queue() {
        sign("lost", q.lost_count);
        sign("unexpected", q.unexpected_count);
    }
    if let Some(l) = report.log() {
        sign("lost", l.lost_count);
        sign("dirty-read", l.dirty_read_count);
        sign("unexpected", l.unexpected_count);
        sign("inconsistent-offsets", l.inconsistent_offset_count);
        sign("duplicates", l.duplicate_count);
        for (name, cases) in &l.anomalies {
            if !cases.allowed && cases.count > 0 {
                found.push(name.clone());
            }
        }
    }
    if !outcome.liveness.recovered {
        found.push("liveness".into());
    }
    found
}

/// The one anomaly to keep: the first of [`SIGNS`] present, else the first found.
fn target(found: &[String]) -> Option<String> {
    SIGNS
        .iter()
        .find(|s| found.iter().any(|f| f == *s))
        .map(|s| s.to_string())
        .or_else(|| found.first().cloned())
}

/// What shrinking produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Shrunk {
    /// The anomaly every kept step still showed.
    pub anomaly: String,
    /// Faults before and after.
    pub faults_before: usize,
    pub faults_after: usize,
    /// Simulated seconds of faults, before and after.
    pub time_limit_before: u64,
    pub time_limit_after: u64,
    /// Client processes, before and after.
    pub concurrency_before: usize,
    pub concurrency_after: usize,
    /// Replays tried.
    pub trials: usize,
    /// The shrunk schedule.
    pub schedule_file: PathBuf,
    /// The command that replays the shrunk run.
    pub replay: String,
}

struct Trials<'a> {
    spec: TestSpec,
    anomaly: String,
    scratch: PathBuf,
    count: usize,
    progress: &'a dyn Fn(&str),
}

impl Trials<'_> {
    /// Does `spec` with `schedule` still show the anomaly?
    fn fails(&mut self, spec: &TestSpec, schedule: &Schedule) -> bool {
        self.count += 1;
        if schedule.save(&self.scratch).is_err() {
            return false;
        }
        let spec = TestSpec {
            schedule: Some(self.scratch.clone()),
            ..spec.clone()
        };
        let kept = run_quietly(&spec).is_ok_and(|o| anomalies(&o).contains(&self.anomaly));
        (self.progress)(&format!(
            "trial {}: {} faults, {} s, {} clients: {}",
            self.count,
            schedule.faults.len(),
            spec.time_limit_s,
            spec.concurrency,
            if kept { "still fails" } else { "passes" }
        ));
        kept
    }

    /// ddmin: the smallest subset of the faults (1-minimal) that still fails.
    fn minimise_faults(&mut self, schedule: &Schedule) -> Schedule {
        let spec = self.spec.clone();
        let mut faults = schedule.faults.clone();
        let with = |faults: &[crate::ScheduledFault]| Schedule {
            faults: faults.to_vec(),
            ..schedule.clone()
        };
        // Nothing at all may still fail (a bug without faults): try that first.
        if !faults.is_empty() && self.fails(&spec, &with(&[])) {
            return with(&[]);
        }
        let mut n = 2usize;
        while faults.len() >= 2 {
            let chunk = faults.len().div_ceil(n);
            let chunks: Vec<Vec<crate::ScheduledFault>> = faults.chunks(chunk).map(<[_]>::to_vec).collect();
            let mut reduced = false;
            for (i, part) in chunks.iter().enumerate() {
                if self.fails(&spec, &with(part)) {
                    faults = part.clone();
                    n = 2;
                    reduced = true;
                    break;
                }
                let complement: Vec<_> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, c)| c.iter().cloned())
                    .collect();
                if chunks.len() > 2 && self.fails(&spec, &with(&complement)) {
                    faults = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced {
                if n >= faults.len() {
                    break;
                }
                n = (n * 2).min(faults.len());
            }
        }
        with(&faults)
    }
}

/// Shrinks the failing run stored in `dir`, reporting each trial to `progress`, and writes
/// `shrunk-schedule.json` (and `shrunk.json`, what was cut) beside it.
pub fn shrink(dir: &Path, progress: &dyn Fn(&str)) -> Result<Shrunk, ShrinkError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| ShrinkError::Read {
            path: path.clone(),
            message: e.to_string(),
        })
    };
    let params = read("params.json")?;
    let spec: TestSpec = serde_json::from_str(&params).map_err(|e| ShrinkError::Read {
        path: dir.join("params.json"),
        message: format!("not a tumult run's parameters: {e}"),
    })?;
    let nodes: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
    let schedule_path = dir.join("schedule.json");
    let schedule = Schedule::load(&schedule_path, &nodes).map_err(|e| ShrinkError::Read {
        path: schedule_path.clone(),
        message: e.to_string(),
    })?;
    // The original, replayed from its own schedule: what it shows is what must stay.
    let replayed = TestSpec {
        schedule: Some(schedule_path.clone()),
        ..spec.clone()
    };
    let outcome = run_quietly(&replayed).map_err(|e| ShrinkError::NotFailing(e.to_string()))?;
    let found = anomalies(&outcome);
    let Some(anomaly) = target(&found) else {
        return Err(ShrinkError::NotFailing("valid".into()));
    };
    progress(&format!(
        "replayed: {} ({} faults); keeping {anomaly}",
        found.join(", "),
        schedule.faults.len()
    ));
    let mut trials = Trials {
        spec: spec.clone(),
        anomaly: anomaly.clone(),
        scratch: dir.join(".shrink-trial.json"),
        count: 0,
        progress,
    };
    let small = trials.minimise_faults(&schedule);
    // A shorter run: the faults must still fit, then as little time after them as fails.
    let last_end_s = small
        .faults
        .iter()
        .map(|f| f.end_ms)
        .max()
        .unwrap_or(0)
        .div_ceil(1000);
    let mut best = spec.clone();
    for extra in [1, 3, 6, 10] {
        let time_limit_s = (last_end_s + extra).max(1);
        if time_limit_s >= best.time_limit_s {
            break;
        }
        let shorter = TestSpec {
            time_limit_s,
            ..best.clone()
        };
        if trials.fails(&shorter, &small) {
            best = shorter;
            break;
        }
    }
    // Fewer clients, halving while it still fails.
    while best.concurrency > 1 {
        let fewer = TestSpec {
            concurrency: best.concurrency / 2,
            ..best.clone()
        };
        if !trials.fails(&fewer, &small) {
            break;
        }
        best = fewer;
    }
    let _ = std::fs::remove_file(&trials.scratch);
    let schedule_file = dir.join("shrunk-schedule.json");
    small.save(&schedule_file).map_err(|cause| ShrinkError::Write {
        path: schedule_file.clone(),
        cause,
    })?;
    let final_spec = TestSpec {
        schedule: Some(schedule_file.clone()),
        ..best.clone()
    };
    let shrunk = Shrunk {
        anomaly,
        faults_before: schedule.faults.len(),
        faults_after: small.faults.len(),
        time_limit_before: spec.time_limit_s,
        time_limit_after: best.time_limit_s,
        concurrency_before: spec.concurrency,
        concurrency_after: best.concurrency,
        trials: trials.count,
        schedule_file: schedule_file.clone(),
        replay: final_spec.replay_command(),
    };
    let summary_path = dir.join("shrunk.json");
    let text = serde_json::to_string_pretty(&shrunk).expect("serialises") + "\n";
    std::fs::write(&summary_path, text).map_err(|cause| ShrinkError::Write {
        path: summary_path,
        cause,
    })?;
    Ok(shrunk)
}
