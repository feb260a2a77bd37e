//! `cargo bench -p checker --bench check`: the full log analysis (order anomalies, the
//! dependency graph and its cycle search included) on synthetic histories of 100k and 1M
//! operations, clean and with a few planted anomalies. Prints operations per second and the
//! peak memory the check itself allocated (counted by a wrapping allocator), per operation.

use std::time::Instant;

use checker::{History, Op, OpType, Process, Workload};
use peak_alloc::PeakAlloc;
use serde_json::{json, Value};

/// Client processes, each with one operation open at a time.
const PROCESSES: u64 = 10;
/// Keys (partitions).
const KEYS: u64 = 8;
/// Most records one poll returns per key.
const POLL_MAX: u64 = 5;

/// A history of about `ops` operations (invocations and completions): sends and polls in
/// equal measure from concurrent processes, then a final read of every key. With
/// `planted`, a few anomalies: a lost write, a poll skip, and two sends whose offsets are
/// swapped (a nonmonotonic send and a G0-realtime cycle).
fn synthetic(ops: usize, planted: bool) -> Vec<Op> {
    let mut history: Vec<Op> = Vec::with_capacity(ops + 2);
    let mut time = 0u64;
    let mut log: Vec<Vec<u64>> = vec![Vec::new(); KEYS as usize];
    let mut positions = vec![vec![0usize; KEYS as usize]; PROCESSES as usize];
    let mut next_value = 0u64;
    let mut round = 0u64;
    let push = |history: &mut Vec<Op>, time: &mut u64, kind, process, f: &str, value: Value| {
        *time += 1_000;
        history.push(Op {
            index: history.len() as u64,
            time: *time,
            kind,
            process: Process::Client(process),
            f: f.to_string(),
            value,
            error: None,
        });
    };
    while history.len() + 2 * PROCESSES as usize <= ops {
        // Every process invokes, then every process completes: concurrency PROCESSES.
        let mut pending = Vec::new();
        for p in 0..PROCESSES {
            let key = (round + p) % KEYS;
            if p % 2 == 0 {
                let value = next_value;
                next_value += 1;
                push(
                    &mut history,
                    &mut time,
                    OpType::Invoke,
                    p,
                    "send",
                    json!([["send", key, value]]),
                );
                pending.push((p, key, Some(value)));
            } else {
                push(
                    &mut history,
                    &mut time,
                    OpType::Invoke,
                    p,
                    "poll",
                    json!([["poll"]]),
                );
                pending.push((p, key, None));
            }
        }
        for (p, key, value) in pending {
            let k = key as usize;
            match value {
                Some(v) => {
                    let offset = log[k].len() as u64;
                    log[k].push(v);
                    push(
                        &mut history,
                        &mut time,
                        OpType::Ok,
                        p,
                        "send",
                        json!([["send", key, [offset, v]]]),
                    );
                }
                None => {
                    let from = positions[p as usize][k];
                    let mut skip = 0;
                    if planted && round >= 100 && round % 1000 == 100 && log[k].len() > from + 3 {
                        skip = 2;
                    }
                    let start = (from + skip).min(log[k].len());
                    let end = (start + POLL_MAX as usize).min(log[k].len());
                    let records: Vec<Value> = (start..end).map(|o| json!([o, log[k][o]])).collect();
                    positions[p as usize][k] = end;
                    push(
                        &mut history,
                        &mut time,
                        OpType::Ok,
                        p,
                        "poll",
                        json!([["poll", { key.to_string(): records }]]),
                    );
                }
            }
        }
        round += 1;
    }
    if planted {
        // Swap the offsets of two sends to key 0, late enough that no poll read them.
        let late: Vec<usize> = history
            .iter()
            .enumerate()
            .filter(|(_, op)| op.kind == OpType::Ok && op.f == "send" && op.value[0][1] == json!(0))
            .map(|(i, _)| i)
            .rev()
            .take(2)
            .collect();
        if let [b, a] = late[..] {
            let (oa, ob) = (
                history[a].value[0][2][0].clone(),
                history[b].value[0][2][0].clone(),
            );
            history[a].value[0][2][0] = ob.clone();
            history[b].value[0][2][0] = oa.clone();
            let k0 = &mut log[0];
            let (ia, ib) = (oa.as_u64().unwrap() as usize, ob.as_u64().unwrap() as usize);
            k0.swap(ia, ib);
        }
    }
    // The final read of every key, from the start; a planted lost write is left out.
    let mut finals = serde_json::Map::new();
    for (k, values) in log.iter().enumerate() {
        let mut records: Vec<Value> = values.iter().enumerate().map(|(o, v)| json!([o, v])).collect();
        if planted && k == 1 {
            records.pop();
        }
        finals.insert(k.to_string(), Value::Array(records));
    }
    push(
        &mut history,
        &mut time,
        OpType::Invoke,
        99,
        "final-poll",
        json!([["poll"]]),
    );
    push(
        &mut history,
        &mut time,
        OpType::Ok,
        99,
        "final-poll",
        json!([["poll", finals]]),
    );
    history
}

/// The system allocator, counting the bytes live and the most live at once, so that the
/// check's peak is measured exactly, whatever the allocator keeps or returns to the OS.
#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

fn main() {
    if let Ok(path) = std::env::var("CHECKER_BENCH_DUMP") {
        let text: String = synthetic(2_000, true)
            .iter()
            .map(|op| serde_json::to_string(op).unwrap() + "\n")
            .collect();
        std::fs::write(path, text).unwrap();
        return;
    }
    let runs: u32 = std::env::var("CHECKER_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3);
    println!(
        "checker bench: full log analysis (order anomalies + dependency graph + cycle search), best of {runs} runs"
    );
    let mut times = Vec::new();
    for (ops, planted) in [
        (100_000, false),
        (100_000, true),
        (1_000_000, false),
        (1_000_000, true),
    ] {
        let history = History::from_ops(synthetic(ops, planted), &[]).expect("a well-formed history");
        let n = history.ops().len();
        // The machine is shared: the best of a few runs is the least disturbed measurement
        // of the check itself; the peak memory is the largest any run added.
        let mut wall = std::time::Duration::MAX;
        let mut added = 0usize;
        let mut report = None;
        // One untimed run first, as a warm-up: the allocator's first requests for this
        // size go to the kernel for fresh pages, which later checks need not.
        let _ = checker::check(&history, Workload::Log);
        for _ in 0..runs {
            let before = ALLOCATOR.current_usage();
            ALLOCATOR.reset_peak_usage();
            #[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
            let started = Instant::now();
            let this = checker::check(&history, Workload::Log);
            wall = wall.min(started.elapsed());
            added = added.max(ALLOCATOR.peak_usage().saturating_sub(before));
            report = Some(this);
        }
        let report = report.expect("at least one run");
        let log = report.log().expect("a log report");
        let found: Vec<String> = log
            .anomalies
            .iter()
            .filter(|(_, c)| c.count > 0)
            .map(|(name, c)| format!("{name} {}", c.count))
            .collect();
        println!(
            "  {:>9} ops {:<8} {:>7.3} s  {:>10.0} ops/s  {:>6.0} B/op peak   valid {:?}; lost {}, dirty {}; {}",
            n,
            if planted { "planted" } else { "clean" },
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            added as f64 / n as f64,
            report.valid,
            log.lost_count,
            log.dirty_read_count,
            if found.is_empty() { "no other anomaly".to_string() } else { found.join(", ") }
        );
        if planted {
            assert_eq!(
                report.valid,
                checker::Validity::False,
                "the planted anomalies must be found"
            );
        } else {
            assert_eq!(
                report.valid,
                checker::Validity::True,
                "a clean history must stay clean: {found:?}"
            );
        }
        times.push((n, wall.as_secs_f64()));
    }
    let scale = (times[2].1 / times[0].1) / (times[2].0 as f64 / times[0].0 as f64);
    println!(
        "  10x the operations cost {:.1}x the time per operation (clean histories; aim: at most 1.2x)",
        scale
    );
}
