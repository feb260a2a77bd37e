//! `tumult shrink RUN_DIR`: the smallest story that still fails. Replays a failing run's
//! seed with subsets of its fault schedule (delta debugging, Zeller's ddmin), then a shorter
//! run and fewer clients, keeping each cut only if the run still shows the same anomaly,
//! and writes the result as a schedule that `tumult test --schedule` replays.
//!
//! A run on real processes is shrunk on real processes: each trial is a stored run under
//! `shrink-trials/` in the run's directory. A real run never replays exactly, so a cut is
//! kept when its one trial fails: the shrunk schedule failed at least once, which is
//! evidence, not a guarantee that it fails every time.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::nemesis::Schedule;
use crate::suite::run_anywhere;
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

/// Replays `spec`; a trial of a real run is stored under `dir/shrink-trials`.
fn replay(spec: &TestSpec, dir: &Path) -> Result<RunOutcome, String> {
    run_anywhere(spec, &crate::Store::new(dir.join("shrink-trials")))
}

/// One replay to try: a run's parameters and the schedule it replays.
type Candidate = (TestSpec, Schedule);

struct Trials<'a> {
    spec: TestSpec,
    anomaly: String,
    /// The run's directory: each concurrent trial writes its schedule to a scratch file there.
    dir: PathBuf,
    jobs: usize,
    count: usize,
    progress: &'a (dyn Fn(&str) + Sync),
}

impl Trials<'_> {
    fn scratch(&self, slot: usize) -> PathBuf {
        self.dir.join(format!(".shrink-trial-{slot}.json"))
    }

    /// Does each candidate still show the anomaly? Runs them `jobs` at a time.
    fn fail(&mut self, candidates: &[Candidate]) -> Vec<bool> {
        let first = self.count + 1;
        self.count += candidates.len();
        let slots: Vec<usize> = (0..candidates.len()).collect();
        crate::suite::parallel(
            &slots,
            self.jobs,
            |&slot| {
                let (spec, schedule) = &candidates[slot];
                let scratch = self.scratch(slot);
                if schedule.save(&scratch).is_err() {
                    return false;
                }
                let spec = TestSpec {
                    schedule: Some(scratch),
                    ..spec.clone()
                };
                let kept = replay(&spec, &self.dir).is_ok_and(|o| anomalies(&o).contains(&self.anomaly));
                (self.progress)(&format!(
                    "trial {}: {} faults, {} s, {} clients: {}",
                    first + slot,
                    schedule.faults.len(),
                    spec.time_limit_s,
                    spec.concurrency,
                    if kept { "still fails" } else { "passes" }
                ));
                kept
            },
            |_| {},
        )
    }

    /// The first of `candidates`, in order, that still fails: the answer trying them one
    /// by one would give, found `jobs` at a time (a batch may try a few more than needed).
    fn first_failing(&mut self, candidates: &[Candidate]) -> Option<usize> {
        let mut start = 0;
        while start < candidates.len() {
            let end = (start + self.jobs).min(candidates.len());
            if let Some(i) = self.fail(&candidates[start..end]).iter().position(|kept| *kept) {
                return Some(start + i);
            }
            start = end;
        }
        None
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
        if !faults.is_empty() && self.first_failing(&[(spec.clone(), with(&[]))]).is_some() {
            return with(&[]);
        }
        let mut n = 2usize;
        while faults.len() >= 2 {
            let chunk = faults.len().div_ceil(n);
            let chunks: Vec<Vec<crate::ScheduledFault>> = faults.chunks(chunk).map(<[_]>::to_vec).collect();
            // Each chunk, then (with more than two chunks) its complement, in the order
            // ddmin tries them; the first that still fails is kept.
            let mut tries: Vec<(bool, Vec<crate::ScheduledFault>)> = Vec::new();
            for (i, part) in chunks.iter().enumerate() {
                tries.push((false, part.clone()));
                if chunks.len() > 2 {
                    let complement: Vec<_> = chunks
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .flat_map(|(_, c)| c.iter().cloned())
                        .collect();
                    tries.push((true, complement));
                }
            }
            let candidates: Vec<Candidate> = tries.iter().map(|(_, f)| (spec.clone(), with(f))).collect();
            match self.first_failing(&candidates) {
                Some(k) => {
                    let (complement, kept) = tries.swap_remove(k);
                    faults = kept;
                    n = if complement { (n - 1).max(2) } else { 2 };
                }
                None => {
                    if n >= faults.len() {
                        break;
                    }
                    n = (n * 2).min(faults.len());
                }
            }
        }
        with(&faults)
    }
}

/// Shrinks the failing run stored in `dir`, replaying `jobs` trials at a time and reporting
/// each to `progress`, and writes `shrunk-schedule.json` (and `shrunk.json`, what was cut)
/// beside it. The result does not depend on `jobs`: trials run in batches, and of each
/// batch the first that still fails, in the order one-at-a-time shrinking would try them,
/// is kept.
pub fn shrink(dir: &Path, jobs: usize, progress: &(dyn Fn(&str) + Sync)) -> Result<Shrunk, ShrinkError> {
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
    let outcome = replay(&replayed, dir).map_err(ShrinkError::NotFailing)?;
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
        dir: dir.to_path_buf(),
        jobs: jobs.max(1),
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
    let shorter: Vec<Candidate> = [1, 3, 6, 10]
        .into_iter()
        .map(|extra| (last_end_s + extra).max(1))
        .take_while(|time_limit_s| *time_limit_s < spec.time_limit_s)
        .map(|time_limit_s| {
            let shorter = TestSpec {
                time_limit_s,
                ..spec.clone()
            };
            (shorter, small.clone())
        })
        .collect();
    let mut best = match trials.first_failing(&shorter) {
        Some(i) => shorter[i].0.clone(),
        None => spec.clone(),
    };
    // Fewer clients, halving while it still fails; `jobs` halvings are tried at once and
    // the run of them that still fails, from the first, is kept.
    'halving: while best.concurrency > 1 {
        let mut fewer = Vec::new();
        let mut concurrency = best.concurrency;
        while concurrency > 1 && fewer.len() < trials.jobs {
            concurrency /= 2;
            let spec = TestSpec {
                concurrency,
                ..best.clone()
            };
            fewer.push((spec, small.clone()));
        }
        for (kept, (spec, _)) in trials.fail(&fewer).into_iter().zip(&fewer) {
            if !kept {
                break 'halving;
            }
            best = spec.clone();
        }
    }
    for slot in 0..trials.jobs {
        let _ = std::fs::remove_file(trials.scratch(slot));
    }
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
