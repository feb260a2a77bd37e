//! `tumult matrix`: every broker mode with its safe defaults and each of its unsafe knobs,
//! under each fault kind, over a few seeds: how available the queue stayed, what was lost,
//! read dirty or duplicated, and how slow it got. Written as matrix.md and matrix.html.

use std::fmt::Write as _;

use broker::Mode;
use checker::OpType;
use serde::Serialize;

use crate::pages::{escape, html_page};
use crate::suite::{parallel, run_quietly};
use crate::zoo::{defaults, recipes, Recipe};
use crate::{FaultKind, FaultSet, FaultTarget, RunOutcome, TestSpec};

/// One design: a mode with its defaults, or a zoo recipe (a mode with one unsafe knob).
#[derive(Debug, Clone)]
pub struct Design {
    /// `kafka (safe defaults)`, `kafka --acks 1`, ...
    pub name: String,
    kind: DesignKind,
}

#[derive(Debug, Clone)]
enum DesignKind {
    /// A mode's safe defaults, driven by a workload.
    Safe(Mode, &'static str),
    /// A zoo recipe's unsafe knob.
    Unsafe(Recipe),
}

impl DesignKind {
    fn spec(&self, seed: u64) -> TestSpec {
        match self {
            DesignKind::Unsafe(recipe) => recipe.unsafe_spec(seed),
            DesignKind::Safe(mode, workload) => TestSpec {
                workload: (*workload).into(),
                ..defaults(*mode, seed)
            },
        }
    }
}

impl Design {
    fn spec(&self, seed: u64) -> TestSpec {
        self.kind.spec(seed)
    }
}

/// How a design names its mode: with the workload where it is not the mode's usual one
/// (`quorum log`: quorum mode's Raft-replicated log rather than its queues).
fn label(spec: &TestSpec) -> String {
    match spec.workload == defaults(spec.mode, spec.seed).workload {
        true => spec.mode.to_string(),
        false => format!("{} {}", spec.mode, spec.workload),
    }
}

/// The safe default of every mode, then every zoo recipe's unsafe knob.
pub fn designs() -> Vec<Design> {
    let safe = [
        (Mode::Single, "queue"),
        (Mode::Classic, "queue"),
        (Mode::Mirrored, "queue"),
        (Mode::Quorum, "queue"),
        (Mode::Quorum, "log"),
        (Mode::Kafka, "log"),
    ]
    .into_iter()
    .map(|(mode, workload)| {
        let kind = DesignKind::Safe(mode, workload);
        Design {
            name: format!("{} (safe defaults)", label(&kind.spec(1))),
            kind,
        }
    });
    let unsafe_ = recipes().into_iter().map(|recipe| Design {
        name: format!("{} {}", label(&recipe.unsafe_spec(1)), recipe.knob),
        kind: DesignKind::Unsafe(recipe),
    });
    safe.chain(unsafe_).collect()
}

/// The fault kinds the matrix crosses designs with.
pub const FAULTS: [FaultKind; 6] = [
    FaultKind::Kill,
    FaultKind::Restart,
    FaultKind::Pause,
    FaultKind::Partition,
    FaultKind::Packet,
    FaultKind::Disk,
];

/// One cell: a design under one fault kind, over the seeds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cell {
    pub design: String,
    pub fault: String,
    /// Seeds run (0 when the fault does not apply, such as a partition of one node).
    pub seeds: usize,
    /// Runs whose verdict was not valid.
    pub invalid: usize,
    /// Share of client operations (final reads aside) that completed ok.
    pub availability: f64,
    /// Acknowledged messages lost, summed over the seeds.
    pub lost: usize,
    /// Dirty reads (log), summed.
    pub dirty_reads: usize,
    /// Values read more than once (queue) or at two offsets (log), summed.
    pub duplicates: usize,
    /// Latency of ok operations, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

struct Sample {
    ok: usize,
    total: usize,
    latencies_ms: Vec<f64>,
    lost: usize,
    dirty: usize,
    duplicates: usize,
    invalid: bool,
}

fn sample(outcome: &RunOutcome) -> Sample {
    // Every client operation but the final reads; one the run ended before completing
    // counts as unavailable.
    let (mut ok, mut total, mut latencies_ms) = (0, 0, Vec::new());
    for (invoke, done) in outcome.history.pairs() {
        if matches!(invoke.f.as_str(), "drain" | "final-poll") {
            continue;
        }
        total += 1;
        if let Some(done) = done.filter(|d| d.kind == OpType::Ok) {
            ok += 1;
            latencies_ms.push(done.time.saturating_sub(invoke.time) as f64 / 1e6);
        }
    }
    let report = &outcome.report;
    let (lost, dirty, duplicates) = match (report.total_queue(), report.log()) {
        (Some(q), _) => (q.lost_count, 0, q.duplicated_count),
        (_, Some(l)) => (l.lost_count, l.dirty_read_count, l.duplicate_count),
        _ => (0, 0, 0),
    };
    Sample {
        ok,
        total,
        latencies_ms,
        lost,
        dirty,
        duplicates,
        invalid: outcome.exit_code() != 0,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Runs every design under every fault kind over `seeds` seeds (1..=seeds), `jobs` at
/// once, calling `done` after each run.
pub fn run_matrix(
    designs: &[Design],
    seeds: u64,
    time_limit_s: u64,
    jobs: usize,
    done: &(dyn Fn() + Sync),
) -> Vec<Cell> {
    let mut runs: Vec<(usize, usize, TestSpec)> = Vec::new();
    for (d, design) in designs.iter().enumerate() {
        for (f, fault) in FAULTS.iter().enumerate() {
            for seed in 1..=seeds {
                let mut spec = design.spec(seed);
                spec.nemesis = FaultSet(vec![*fault]);
                spec.time_limit_s = time_limit_s;
                // A disk fault strikes one node's storage; the recipe's target still says
                // how many nodes the other faults take.
                if *fault == FaultKind::Disk && spec.target == FaultTarget::All {
                    spec.target = FaultTarget::One;
                }
                if spec.validate().is_ok() {
                    runs.push((d, f, spec));
                }
            }
        }
    }
    let samples = parallel(
        &runs,
        jobs,
        |(d, f, spec)| (*d, *f, run_quietly(spec).ok().map(|o| sample(&o))),
        |_| done(),
    );
    let mut cells = Vec::new();
    for (d, design) in designs.iter().enumerate() {
        for (f, fault) in FAULTS.iter().enumerate() {
            let here: Vec<&Sample> = samples
                .iter()
                .filter(|(sd, sf, _)| *sd == d && *sf == f)
                .filter_map(|(_, _, s)| s.as_ref())
                .collect();
            let mut latencies: Vec<f64> = here.iter().flat_map(|s| s.latencies_ms.iter().copied()).collect();
            latencies.sort_by(f64::total_cmp);
            let (ok, total) = here.iter().fold((0, 0), |(o, t), s| (o + s.ok, t + s.total));
            cells.push(Cell {
                design: design.name.clone(),
                fault: fault.as_str().to_string(),
                seeds: here.len(),
                invalid: here.iter().filter(|s| s.invalid).count(),
                availability: if total == 0 { 0.0 } else { ok as f64 / total as f64 },
                lost: here.iter().map(|s| s.lost).sum(),
                dirty_reads: here.iter().map(|s| s.dirty).sum(),
                duplicates: here.iter().map(|s| s.duplicates).sum(),
                p50_ms: percentile(&latencies, 0.5),
                p99_ms: percentile(&latencies, 0.99),
            });
        }
    }
    cells
}

const HEADER: [&str; 10] = [
    "design",
    "fault",
    "seeds",
    "invalid",
    "available",
    "lost",
    "dirty reads",
    "duplicates",
    "p50 ms",
    "p99 ms",
];

fn row(c: &Cell) -> [String; 10] {
    [
        c.design.clone(),
        c.fault.clone(),
        c.seeds.to_string(),
        c.invalid.to_string(),
        format!("{:.1}%", c.availability * 100.0),
        c.lost.to_string(),
        c.dirty_reads.to_string(),
        c.duplicates.to_string(),
        format!("{:.1}", c.p50_ms),
        format!("{:.1}", c.p99_ms),
    ]
}

/// The matrix as Markdown.
pub fn markdown(cells: &[Cell], seeds: u64, time_limit_s: u64) -> String {
    let mut out = format!(
        "# How each design keeps a queue or a log available\n\nEvery mode with its safe defaults and with each unsafe knob (the bug zoo's recipes), under each fault kind, over {seeds} seeds of {time_limit_s} simulated seconds. `invalid`: runs judged not valid, by the history or by an invariant monitor (an unsafe knob breaks its mode's promise, such as a commit that no fsynced majority backs, even in a run where nothing happened to be lost). `available`: share of client operations (final reads aside) that completed ok. `lost`, `dirty reads`, `duplicates`: summed over the seeds. Latency of ok operations. A fault that does not apply (a partition of one node) is left out.\n\n"
    );
    out.push_str(&format!("| {} |\n", HEADER.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
    for c in cells.iter().filter(|c| c.seeds > 0) {
        out.push_str(&format!("| {} |\n", row(c).join(" | ")));
    }
    out
}

/// The matrix as an HTML page: a row per cell, losses and dirty reads in red.
pub fn html(cells: &[Cell], seeds: u64, time_limit_s: u64) -> String {
    let mut out = String::from("<h1>How each design keeps a queue or a log available</h1>\n");
    let _ = writeln!(
        out,
        "<p>{seeds} seeds of {time_limit_s} simulated seconds per cell. Red: acknowledged messages lost or dirty reads.</p>"
    );
    out.push_str("<table>\n<tr>");
    for h in HEADER {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for c in cells.iter().filter(|c| c.seeds > 0) {
        let class = if c.lost > 0 || c.dirty_reads > 0 {
            "bad"
        } else {
            "good"
        };
        out.push_str(&format!("<tr class=\"{class}\">"));
        for v in row(c) {
            let _ = write!(out, "<td>{}</td>", escape(&v));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    html_page("tumult matrix", MATRIX_STYLE, &out)
}

const MATRIX_STYLE: &str = "table { border-collapse: collapse; }
td, th { padding: 3px 9px; border-bottom: 1px solid #ddd; font-size: 13px; text-align: right; }
td:first-child, td:nth-child(2), th { text-align: left; }
.bad { background: #f8d7d6; color: #a02622; font-weight: bold; }
.good { background: #d8f0de; }
";
