//! Pure analysis of message-queue histories.
//!
//! The checker reads a history (see [`History`]) and judges it, returning data: a
//! [`Validity`] plus the evidence. It never panics on a strange history and never touches
//! an async runtime or a simulation, so it can check histories from tumult and from Jepsen
//! alike.
//!
//! ```
//! use checker::{History, Validity};
//!
//! let jsonl = r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"enqueue","value":1}
//! {"index":1,"time":5,"type":"ok","process":0,"f":"enqueue","value":1}
//! {"index":2,"time":6,"type":"invoke","process":0,"f":"drain","value":null}
//! {"index":3,"time":9,"type":"ok","process":0,"f":"drain","value":[]}"#;
//! let history = History::read_jsonl(jsonl.as_bytes()).unwrap();
//! let report = checker::check(&history, checker::Workload::Queue);
//! assert_eq!(report.valid, Validity::False); // 1 was acknowledged, then drained away: lost
//! ```

mod cycles;
mod edn;
mod edn_write;
mod graph;
mod history;
mod jsonl;
mod log;
mod model;
mod monitor;
mod order;
mod queue;
mod stream;
mod verdict;

use std::collections::BTreeMap;

use serde::Serialize;

pub use edn_write::{jsonl_to_edn, EdnWriteError};
pub use history::{Format, History, HistoryError, Op, OpType, Process};
pub use log::{log_analysis, log_analysis_allowing, Key, LogReport, Seen, LOG_ALLOWED, LOG_ANOMALIES};
pub use monitor::{MonitorReport, Violation, VIOLATIONS_KEPT};
pub use order::{Anomalies, Cases, Unseen};
pub use queue::{total_queue, QueueValue, TotalQueueReport, WITNESSES_MAX};
pub use verdict::Validity;

/// The functions that mark a queue history; any of them makes it one.
pub(crate) const QUEUE_FUNCTIONS: &[&str] = &["enqueue", "dequeue", "drain"];
/// The functions that mark a log history.
pub(crate) const LOG_FUNCTIONS: &[&str] = &["send", "poll", "final-poll", "txn", "assign", "subscribe"];

/// Which family of analyses a history gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// RabbitMQ-like queue: enqueue, dequeue, drain.
    Queue,
    /// Kafka-like log: send, poll, final-poll.
    Log,
}

impl Workload {
    /// Guesses the workload from the operations present; `None` if nothing matches.
    pub fn detect(history: &History) -> Option<Workload> {
        let has = |names: &[&str]| history.ops().iter().any(|op| names.contains(&op.f.as_str()));
        if has(QUEUE_FUNCTIONS) {
            Some(Workload::Queue)
        } else if has(LOG_FUNCTIONS) {
            Some(Workload::Log)
        } else {
            None
        }
    }
}

impl std::str::FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queue" => Ok(Workload::Queue),
            "log" => Ok(Workload::Log),
            other => Err(format!("unknown workload '{other}' (expected queue or log)")),
        }
    }
}

/// The result of one analysis.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Analysis {
    /// See [`total_queue`].
    TotalQueue(TotalQueueReport),
    /// See [`log_analysis`].
    Log(LogReport),
    /// What the invariant monitors inside a simulation saw (see [`MonitorReport`]).
    Monitors(MonitorReport),
}

impl Analysis {
    /// This analysis' own verdict.
    pub fn valid(&self) -> Validity {
        match self {
            Analysis::TotalQueue(r) => r.valid,
            Analysis::Log(r) => r.valid,
            Analysis::Monitors(r) => r.valid,
        }
    }

    /// One line for terminal summaries.
    pub fn summary(&self) -> String {
        match self {
            Analysis::TotalQueue(r) => r.summary(),
            Analysis::Log(r) => r.summary(),
            Analysis::Monitors(r) => r.summary(),
        }
    }
}

/// Every analysis a workload asked for, merged into one verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The merged verdict: false beats unknown beats true.
    pub valid: Validity,
    /// The workload whose analyses ran.
    pub workload: Workload,
    /// Each analysis by name.
    pub analyses: BTreeMap<String, Analysis>,
}

impl Report {
    /// The report of `analyses`, their verdicts merged.
    fn merging<const N: usize>(workload: Workload, analyses: [(&str, Analysis); N]) -> Self {
        let analyses: BTreeMap<String, Analysis> = analyses
            .into_iter()
            .map(|(name, analysis)| (name.to_string(), analysis))
            .collect();
        let valid = analyses
            .values()
            .fold(Validity::True, |acc, a| acc.merge(a.valid()));
        Report {
            valid,
            workload,
            analyses,
        }
    }

    /// What the analyses found, by name with its count, in a fixed order: the counted
    /// failures (lost, ...) first, then the named anomalies that are not allowed. A queue's
    /// duplicates are listed although at-least-once delivery allows them (they do not make
    /// the history invalid): a reader of an index row wants to see them. For index rows and
    /// summaries.
    pub fn findings(&self) -> Vec<(String, u64)> {
        let mut found = Vec::new();
        let mut count = |name: &str, n: usize| {
            if n > 0 {
                found.push((name.to_string(), n as u64));
            }
        };
        if let Some(q) = self.total_queue() {
            count("lost", q.lost_count);
            count("unexpected", q.unexpected_count);
            count("duplicated", q.duplicated_count);
        }
        if let Some(monitors) = self.monitors() {
            count("monitor-violations", monitors.violation_count);
        }
        if let Some(log) = self.log() {
            count("lost", log.lost_count);
            count("dirty-reads", log.dirty_read_count);
            count("inconsistent-offsets", log.inconsistent_offset_count);
            count("duplicates", log.duplicate_count);
            count("unexpected", log.unexpected_count);
            for (name, cases) in &log.anomalies {
                if !cases.allowed {
                    count(name, cases.count);
                }
            }
        }
        found
    }

    /// The total-queue analysis, if it ran.
    pub fn total_queue(&self) -> Option<&TotalQueueReport> {
        self.analyses.values().find_map(|a| match a {
            Analysis::TotalQueue(r) => Some(r),
            _ => None,
        })
    }

    /// The invariant monitors' findings, if monitors ran.
    pub fn monitors(&self) -> Option<&MonitorReport> {
        self.analyses.values().find_map(|a| match a {
            Analysis::Monitors(r) => Some(r),
            _ => None,
        })
    }

    /// Adds the monitors' findings, merging their verdict into the report's.
    pub fn add_monitors(&mut self, monitors: MonitorReport) {
        self.valid = self.valid.merge(monitors.valid);
        self.analyses
            .insert("monitors".to_string(), Analysis::Monitors(monitors));
    }

    /// The log analysis, if it ran.
    pub fn log(&self) -> Option<&LogReport> {
        self.analyses.values().find_map(|a| match a {
            Analysis::Log(r) => Some(r),
            _ => None,
        })
    }
}

/// Runs every analysis that applies to `workload`, allowing what that workload allows by
/// default (for logs, [`LOG_ALLOWED`]).
pub fn check(history: &History, workload: Workload) -> Report {
    let allowed = match workload {
        Workload::Queue => &[][..],
        Workload::Log => LOG_ALLOWED,
    };
    check_allowing(history, workload, allowed)
}

/// What [`check_file`] found: the report, and how many operations the file held.
#[derive(Debug)]
pub struct Checked {
    /// The merged verdict and every analysis.
    pub report: Report,
    /// Operations in the file, nemesis included.
    pub ops: u64,
}

/// Why a history file could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckFileError {
    /// The file could not be opened.
    #[error("cannot open {path}: {cause}")]
    Open {
        /// The file.
        path: String,
        /// Why (shown in the message, so not a `source`: it would print twice).
        cause: std::io::Error,
    },
    /// The file is not a well-formed history.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// No workload was given and the operations name none.
    #[error("cannot tell the workload from the history's operations: it holds {found}, none of which tumult checks (queue: enqueue, dequeue, drain; log: send, poll, txn, assign, subscribe)")]
    UnknownWorkload {
        /// The functions the history holds.
        found: String,
    },
    /// The workload asked for has none of its operations in the history.
    #[error("the history holds no operation of the {asked} workload ({expected}); it holds {found}{hint}")]
    WorkloadMismatch {
        /// The workload asked for.
        asked: &'static str,
        /// That workload's functions.
        expected: &'static str,
        /// The functions the history holds.
        found: String,
        /// Which workload would fit, if one would.
        hint: String,
    },
}

/// The functions a history holds, for messages: `f1, f2 and f3`.
fn functions_found(functions: &[String]) -> String {
    let quoted: Vec<String> = functions.iter().map(|f| format!("'{f}'")).collect();
    match quoted.as_slice() {
        [] => "no client operation".to_string(),
        [one] => format!("only {one} operations"),
        [rest @ .., last] => format!("operations {} and {last}", rest.join(", ")),
    }
}

/// Checks that `workload` fits a history whose client operations have `functions`. A
/// history with no client operation fits any workload: its verdict is unknown.
fn fits(
    workload: Workload,
    functions: &[String],
    queue_ops: bool,
    log_ops: bool,
) -> Result<(), CheckFileError> {
    let (fits, asked, expected, other) = match workload {
        Workload::Queue => (
            queue_ops,
            "queue",
            "enqueue, dequeue, drain",
            log_ops.then_some("log"),
        ),
        Workload::Log => (
            log_ops,
            "log",
            "send, poll, txn, assign, subscribe",
            queue_ops.then_some("queue"),
        ),
    };
    if fits || functions.is_empty() {
        return Ok(());
    }
    Err(CheckFileError::WorkloadMismatch {
        asked,
        expected,
        found: functions_found(functions),
        hint: other.map_or(String::new(), |w| format!(": check it with --workload {w}")),
    })
}

/// Why a history without `what` has nothing to judge; `ops` counts its operations (the
/// nemesis' too, or only the clients': either is zero for an empty history).
pub(crate) fn nothing_to_judge(ops: usize, what: &str) -> String {
    if ops == 0 {
        "the history holds no client operation (it is empty, or all the nemesis'): nothing to judge".into()
    } else {
        format!("the history holds no {what}: nothing to judge")
    }
}

/// Checks a history file as [`check`] checks a history, without holding the file whole:
/// a log history is read straight into the compiled model. `workload` `None` decides it
/// from the operations (a queue operation anywhere makes it a queue history). The log
/// anomalies named in `allow` are allowed on top of [`LOG_ALLOWED`]. A workload none of
/// whose operations the history holds is refused, naming what it does hold; a history
/// with no client operation at all is unknown.
pub fn check_file(
    path: &std::path::Path,
    format: Format,
    workload: Option<Workload>,
    allow: &[&str],
) -> Result<Checked, CheckFileError> {
    let open = || {
        std::fs::File::open(path)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(|cause| CheckFileError::Open {
                path: path.display().to_string(),
                cause,
            })
    };
    let queue = || -> Result<Checked, CheckFileError> {
        let history = History::read(open()?, format)?;
        let mut streamed = stream::Streamed::default();
        for op in history.ops() {
            if matches!(op.process, Process::Client(_)) {
                streamed.note_function(&op.f);
            }
        }
        fits(
            Workload::Queue,
            &streamed.functions,
            streamed.has_queue_ops,
            streamed.has_log_ops,
        )?;
        let ops = history.ops().len() as u64;
        Ok(Checked {
            report: check(&history, Workload::Queue),
            ops,
        })
    };
    if workload == Some(Workload::Queue) {
        return queue();
    }
    let bytes = std::fs::metadata(path).ok().map(|m| m.len());
    let (model, streamed) = stream::read_log_sized(open()?, format, bytes)?;
    if workload.is_none() && streamed.has_queue_ops {
        drop(model);
        return queue();
    }
    if workload.is_none() && streamed.client_ops > 0 && !streamed.has_log_ops {
        return Err(CheckFileError::UnknownWorkload {
            found: functions_found(&streamed.functions),
        });
    }
    fits(
        Workload::Log,
        &streamed.functions,
        streamed.has_queue_ops,
        streamed.has_log_ops,
    )?;
    Ok(Checked {
        report: log_report(&model, allow),
        ops: streamed.ops,
    })
}

/// Reads a log history from `reader` straight into the model, as [`check_file`] does, and
/// runs the log analyses on it.
pub fn check_log_reader(reader: impl std::io::BufRead, format: Format) -> Result<Checked, HistoryError> {
    let (model, streamed) = stream::read_log(reader, format)?;
    Ok(Checked {
        report: log_report(&model, &[]),
        ops: streamed.ops,
    })
}

fn log_report(model: &model::LogModel, allow: &[&str]) -> Report {
    let allowed: Vec<&str> = LOG_ALLOWED.iter().chain(allow).copied().collect();
    let log = log::model_analysis(model, &allowed);
    Report::merging(Workload::Log, [("log", Analysis::Log(log))])
}

/// Runs every analysis that applies to `workload`; the anomalies named in `allowed` are
/// reported but do not make the history invalid.
pub fn check_allowing(history: &History, workload: Workload, allowed: &[&str]) -> Report {
    let analysis = match workload {
        Workload::Queue => ("total-queue", Analysis::TotalQueue(total_queue(history))),
        Workload::Log => ("log", Analysis::Log(log_analysis_allowing(history, allowed))),
    };
    Report::merging(workload, [analysis])
}
