//! What a person looks at: per run, timeline.html (every operation as a bar in its
//! process's lane, faults shaded), latency.svg, rate.svg and, for logs, unseen.svg (drawn
//! with plotters); per store, index.html listing every run. Made from the stored history,
//! schedule and verdict after the run, never during it: nothing here reaches the simulation.

mod index;
mod plots;
mod timeline;

use std::path::Path;

use checker::{History, Op, OpType, Process, Report};
use serde_json::Value;

use crate::nemesis::Schedule;

pub use index::{html as index_html, runs, write_index, RunEntry};

/// Why a page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A file could not be written or read.
    #[error("{0}")]
    Io(std::io::Error),
    /// A plot could not be drawn.
    #[error("drawing {file}: {message}")]
    Plot {
        /// The picture.
        file: &'static str,
        /// What went wrong.
        message: String,
    },
}

// By hand, not `#[from]`: the message is the cause's, which as a `source` too would print
// twice in an error chain.
impl From<std::io::Error> for PageError {
    fn from(e: std::io::Error) -> Self {
        PageError::Io(e)
    }
}

/// One client operation, from invocation to completion.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    /// The process, as a number.
    pub process: u64,
    /// The function (`send`, `poll`, ...).
    pub f: String,
    /// How it completed; `Info` when the history ends first.
    pub outcome: OpType,
    /// Simulated seconds at invocation and at completion (`None` if it never completed).
    pub invoked_s: f64,
    pub completed_s: Option<f64>,
    /// What was asked and what came back.
    pub invoke_value: Value,
    pub complete_value: Option<Value>,
    /// Why it failed or is unknown.
    pub error: Option<String>,
}

impl Span {
    /// Latency in milliseconds, for completed operations.
    pub fn latency_ms(&self) -> Option<f64> {
        self.completed_s.map(|c| (c - self.invoked_s) * 1e3)
    }
}

/// One fault's time window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub start_s: f64,
    pub end_s: f64,
    /// The fault's kind (`partition`, `kill`, ...).
    pub kind: String,
    /// The whole fault, as recorded in schedule.json.
    pub detail: String,
}

/// The operations and faults of a run, ready to draw.
pub(crate) struct RunView {
    pub spans: Vec<Span>,
    pub faults: Vec<Window>,
    /// Simulated seconds from the first to the last event.
    pub end_s: f64,
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl RunView {
    pub fn new(history: &History, schedule: &Schedule) -> Self {
        let spans: Vec<Span> = history
            .pairs()
            .map(|(invoke, done)| Span {
                process: match invoke.process {
                    Process::Client(p) => p,
                    Process::Named(_) => u64::MAX,
                },
                f: invoke.f.clone(),
                outcome: done.map_or(OpType::Info, |d| d.kind),
                invoked_s: seconds(invoke.time),
                completed_s: done.map(|d| seconds(d.time)),
                invoke_value: invoke.value.clone(),
                complete_value: done.map(|d| d.value.clone()),
                error: done.and_then(|d| d.error.as_ref()).map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            })
            .collect();
        let faults: Vec<Window> = schedule
            .faults
            .iter()
            .map(|f| {
                let detail = serde_json::to_value(&f.fault).unwrap_or(Value::Null);
                Window {
                    start_s: f.start_ms as f64 / 1e3,
                    // A fault over at once still gets a visible sliver.
                    end_s: (f.end_ms.max(f.start_ms) as f64 / 1e3).max(f.start_ms as f64 / 1e3 + 0.05),
                    kind: detail["kind"].as_str().unwrap_or("fault").to_string(),
                    detail: detail.to_string(),
                }
            })
            .collect();
        let last_op = history.ops().last().map_or(0.0, |op: &Op| seconds(op.time));
        let last_fault = faults.iter().map(|f| f.end_s).fold(0.0, f64::max);
        Self {
            spans,
            faults,
            end_s: last_op.max(last_fault).max(1.0),
        }
    }
}

/// Writes timeline.html, latency.svg, rate.svg and (for a log history) unseen.svg into
/// the run directory `dir`. `threads`, the run's concurrency, groups the timeline's lanes
/// by thread (process modulo threads) as Jepsen's do; `None` gives each process a lane.
pub fn write_run_pages(
    dir: &Path,
    history: &History,
    schedule: &Schedule,
    report: &Report,
    threads: Option<u64>,
) -> Result<(), PageError> {
    let view = RunView::new(history, schedule);
    std::fs::write(dir.join("timeline.html"), timeline::html(&view, report, threads))?;
    std::fs::write(dir.join("latency.svg"), plots::latency(&view)?)?;
    std::fs::write(dir.join("rate.svg"), plots::rate(&view)?)?;
    if let Some(log) = report.log() {
        std::fs::write(dir.join("unseen.svg"), plots::unseen(&view, &log.unseen)?)?;
    }
    Ok(())
}

/// `text` with the characters HTML and XML give meaning to escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 text.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the doctype, a head with `title` and the shared base style plus `style`
/// (CSS rules, one a line), and `body` (well-formed markup, each line ending in a newline).
pub fn html_page(title: &str, style: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{}</title>\n<style>\nbody {{ font-family: sans-serif; margin: 16px; }}\n{style}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// The name of an outcome as pages show it.
pub(crate) fn outcome_name(kind: OpType) -> &'static str {
    match kind {
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
        OpType::Invoke => "invoke",
    }
}
