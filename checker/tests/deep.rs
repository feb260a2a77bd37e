//! Histories whose dependency graph is one long chain: a process that sends and polls a
//! million times in a row. Every depth-first path through its graph is as long as the
//! history, so any recursion over it would overflow a small stack.

use checker::{History, Op, OpType, Process, Validity, Workload};
use serde_json::json;

fn op(index: usize, kind: OpType, f: &str, value: serde_json::Value) -> Op {
    Op {
        index: index as u64,
        time: index as u64,
        kind,
        process: Process::Client(0),
        f: f.to_string(),
        value,
        error: None,
    }
}

/// One process: send value i at offset i, then poll it back, `pairs` times over; then a
/// final read of the whole key, less `drop` (a lost write) when asked.
fn chain(pairs: usize, drop: Option<u64>) -> History {
    let mut ops = Vec::with_capacity(pairs * 4 + 2);
    for i in 0..pairs as u64 {
        let at = ops.len();
        ops.push(op(at, OpType::Invoke, "send", json!([["send", 0, i]])));
        ops.push(op(at + 1, OpType::Ok, "send", json!([["send", 0, [i, i]]])));
        ops.push(op(at + 2, OpType::Invoke, "poll", json!([["poll"]])));
        ops.push(op(at + 3, OpType::Ok, "poll", json!([["poll", {"0": [[i, i]]}]])));
    }
    let all: Vec<_> = (0..pairs as u64)
        .filter(|i| Some(*i) != drop)
        .map(|i| json!([i, i]))
        .collect();
    let at = ops.len();
    ops.push(op(at, OpType::Invoke, "final-poll", json!([["poll"]])));
    ops.push(op(
        at + 1,
        OpType::Ok,
        "final-poll",
        json!([["poll", {"0": all}]]),
    ));
    History::from_ops(ops, &[]).expect("a well-formed history")
}

/// Checks `history` on a thread with a 256 KiB stack.
fn check_on_small_stack(history: History) -> checker::Report {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || checker::check(&history, Workload::Log))
        .expect("a thread")
        .join()
        .expect("the check does not overflow its stack")
}

#[test]
fn a_million_op_chain_checks_on_a_256_kib_stack() {
    let report = check_on_small_stack(chain(250_000, None));
    assert_eq!(
        report.valid,
        Validity::True,
        "{}",
        report.log().unwrap().summary()
    );
    let report = check_on_small_stack(chain(250_000, Some(123_456)));
    assert_eq!(report.valid, Validity::False);
    assert_eq!(report.log().unwrap().lost_count, 1);
}
