//! The total-queue analysis: does every acknowledged message come out of the queue, and
//! nothing come out that was never put in?
//!
//! Counted over distinct values. `attempted`: enqueues invoked. `acknowledged`: enqueues
//! that completed ok. `ok`: attempted values that were dequeued (by a dequeue or a drain).
//! `lost`: acknowledged but never dequeued, once a final drain emptied the queue.
//! `unexpected`: dequeued but never attempted, or attempted and certainly failed.
//! `duplicated`: dequeued more than once. `recovered`: dequeued although its enqueue's
//! outcome was unknown. Valid when nothing is lost and nothing is unexpected; duplicates
//! are reported but allowed (delivery is at-least-once).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::history::{History, OpType};
use crate::verdict::Validity;

/// How many example values each list in a report keeps.
pub const WITNESSES_MAX: usize = 32;

/// A queue value as the checker compares it: an integer, or any other JSON as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum QueueValue {
    /// An integer value (what tumult's queue workload sends).
    Int(i64),
    /// Any other JSON value, compared by its canonical text.
    Other(String),
}

impl QueueValue {
    fn of(value: &serde_json::Value) -> Self {
        match value.as_i64() {
            Some(n) => QueueValue::Int(n),
            None => QueueValue::Other(value.to_string()),
        }
    }
}

/// The result of the total-queue analysis.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TotalQueueReport {
    /// True when nothing was lost or unexpected.
    pub valid: Validity,
    /// Distinct values whose enqueue was invoked.
    pub attempt_count: usize,
    /// Distinct values whose enqueue completed ok.
    pub acknowledged_count: usize,
    /// Distinct attempted values that were dequeued.
    pub ok_count: usize,
    /// Acknowledged values never dequeued.
    pub lost_count: usize,
    /// Values dequeued that were never attempted, or whose enqueue certainly failed.
    pub unexpected_count: usize,
    /// Values dequeued more than once.
    pub duplicated_count: usize,
    /// Values dequeued whose enqueue outcome was unknown.
    pub recovered_count: usize,
    /// Whether a final drain ran to an empty queue.
    pub drained: bool,
    /// Up to [`WITNESSES_MAX`] lost values, smallest first.
    pub lost: Vec<QueueValue>,
    /// Up to [`WITNESSES_MAX`] unexpected values.
    pub unexpected: Vec<QueueValue>,
    /// Up to [`WITNESSES_MAX`] duplicated values with how often each was dequeued.
    pub duplicated: Vec<(QueueValue, usize)>,
    /// Up to [`WITNESSES_MAX`] recovered values.
    pub recovered: Vec<QueueValue>,
    /// Pairs where a later message came out first: `b` was enqueued (invoked) after `a`'s
    /// enqueue was acknowledged, yet `b`'s first dequeue completed before `a`'s first
    /// dequeue began. Reported, not judged: whether a queue promises FIFO order is the
    /// workload's to say.
    pub reordered_count: usize,
    /// Up to [`WITNESSES_MAX`] of them, as `(a, b)`.
    pub reordered: Vec<(QueueValue, QueueValue)>,
    /// Why the result is unknown, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
}

impl TotalQueueReport {
    /// One line of counts, for terminal summaries.
    pub fn summary(&self) -> String {
        format!(
            "attempted {}, acknowledged {}, dequeued {}, lost {}, unexpected {}, duplicated {}, recovered {}, reordered {}",
            self.attempt_count,
            self.acknowledged_count,
            self.ok_count,
            self.lost_count,
            self.unexpected_count,
            self.duplicated_count,
            self.recovered_count,
            self.reordered_count
        ) + &self.unknown_because.as_ref().map_or(String::new(), |why| format!(" (unknown: {why})"))
    }
}

/// What the queue operations of a history say, before judging.
#[derive(Default)]
struct Tally {
    attempted: BTreeSet<QueueValue>,
    acknowledged: BTreeSet<QueueValue>,
    failed: BTreeSet<QueueValue>,
    dequeued: BTreeMap<QueueValue, usize>,
    drained: bool,
}

impl Tally {
    fn of(history: &History) -> Self {
        let mut tally = Tally::default();
        for (invoke, completion) in history.pairs() {
            let kind = completion.map(|op| op.kind);
            match invoke.f.as_str() {
                "enqueue" => {
                    let value = QueueValue::of(&invoke.value);
                    tally.attempted.insert(value.clone());
                    match kind {
                        Some(OpType::Ok) => {
                            tally.acknowledged.insert(value);
                        }
                        Some(OpType::Fail) => {
                            tally.failed.insert(value);
                        }
                        _ => {}
                    }
                }
                "dequeue" => {
                    // A dequeue that returned a value observed it, whatever else happened.
                    if let Some(op) = completion.filter(|op| op.kind == OpType::Ok && !op.value.is_null()) {
                        *tally.dequeued.entry(QueueValue::of(&op.value)).or_default() += 1;
                    }
                }
                "drain" => {
                    // An incomplete drain (info) still observed the values it lists.
                    let Some(op) = completion.filter(|op| op.kind != OpType::Fail) else {
                        continue;
                    };
                    tally.drained |= op.kind == OpType::Ok;
                    for value in op.value.as_array().into_iter().flatten() {
                        *tally.dequeued.entry(QueueValue::of(value)).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        tally
    }
}

fn first<T: Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    items.into_iter().take(WITNESSES_MAX).collect()
}

/// FIFO order: pairs `(a, b)` where `a` was acknowledged before `b` was enqueued, and `b`
/// first came out before `a` first began to. Values enqueued with an unknown outcome have
/// no known enqueue time and are left out; a message requeued after a delivery keeps its
/// first delivery, so a redelivery is never counted as overtaking.
fn reordered(history: &History) -> (usize, Vec<(QueueValue, QueueValue)>) {
    // value -> (enqueue invoked, enqueue acknowledged); value -> (first dequeue invoked, completed)
    let mut enqueued: BTreeMap<QueueValue, (u64, u64)> = BTreeMap::new();
    let mut first_out: BTreeMap<QueueValue, (u64, u64)> = BTreeMap::new();
    for (invoke, completion) in history.pairs() {
        let Some(done) = completion else { continue };
        match (invoke.f.as_str(), done.kind) {
            ("enqueue", OpType::Ok) => {
                enqueued.insert(QueueValue::of(&invoke.value), (invoke.index, done.index));
            }
            ("dequeue", OpType::Ok) if !done.value.is_null() => {
                first_out
                    .entry(QueueValue::of(&done.value))
                    .or_insert((invoke.index, done.index));
            }
            ("drain", OpType::Ok | OpType::Info) => {
                // A drain's values came out in list order, all within the one operation.
                for (i, value) in done.value.as_array().into_iter().flatten().enumerate() {
                    let at = (invoke.index, done.index + i as u64);
                    first_out.entry(QueueValue::of(value)).or_insert(at);
                }
            }
            _ => {}
        }
    }
    // Sweep the values by enqueue invocation; `ready` holds those acknowledged before the
    // current one was invoked, and tracks the one whose first dequeue began latest.
    let mut by_invoke: Vec<(&QueueValue, u64, u64)> =
        enqueued.iter().map(|(v, (i, c))| (v, *i, *c)).collect();
    by_invoke.sort_by_key(|(_, invoked, _)| *invoked);
    let mut by_ack: Vec<(&QueueValue, u64)> = enqueued.iter().map(|(v, (_, c))| (v, *c)).collect();
    by_ack.sort_by_key(|(_, acked)| *acked);
    let mut next_ack = 0;
    let mut latest: Option<(&QueueValue, u64)> = None;
    let (mut count, mut witnesses) = (0, Vec::new());
    for (b, b_invoked, _) in by_invoke {
        while next_ack < by_ack.len() && by_ack[next_ack].1 < b_invoked {
            let a = by_ack[next_ack].0;
            if let Some((a_out_invoked, _)) = first_out.get(a) {
                if latest.is_none_or(|(_, t)| *a_out_invoked > t) {
                    latest = Some((a, *a_out_invoked));
                }
            }
            next_ack += 1;
        }
        let (Some((a, a_out_invoked)), Some((_, b_out_completed))) = (latest, first_out.get(b)) else {
            continue;
        };
        if *b_out_completed < a_out_invoked {
            count += 1;
            if witnesses.len() < WITNESSES_MAX {
                witnesses.push((a.clone(), b.clone()));
            }
        }
    }
    (count, witnesses)
}

/// Runs the total-queue analysis over a history.
pub fn total_queue(history: &History) -> TotalQueueReport {
    let (reordered_count, reordered) = reordered(history);
    let tally = Tally::of(history);
    let dequeued: BTreeSet<&QueueValue> = tally.dequeued.keys().collect();
    let lost: Vec<&QueueValue> = tally
        .acknowledged
        .iter()
        .filter(|v| !dequeued.contains(v))
        .collect();
    let unexpected: Vec<&QueueValue> = dequeued
        .iter()
        .copied()
        .filter(|v| !tally.attempted.contains(*v) || tally.failed.contains(*v))
        .collect();
    let duplicated: Vec<(&QueueValue, usize)> = tally
        .dequeued
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(v, n)| (v, *n))
        .collect();
    let recovered: Vec<&QueueValue> = dequeued
        .iter()
        .copied()
        .filter(|v| {
            tally.attempted.contains(*v) && !tally.acknowledged.contains(*v) && !tally.failed.contains(*v)
        })
        .collect();
    let ok_count = dequeued.iter().filter(|v| tally.attempted.contains(**v)).count();

    let (valid, unknown_because) = if !unexpected.is_empty() {
        (Validity::False, None)
    } else if tally.attempted.is_empty() && tally.dequeued.is_empty() {
        let clients = history
            .ops()
            .iter()
            .filter(|op| matches!(op.process, crate::Process::Client(_)));
        let why = crate::nothing_to_judge(clients.count(), "enqueue and no dequeue");
        (Validity::Unknown, Some(why))
    } else if lost.is_empty() {
        (Validity::True, None)
    } else if tally.drained {
        (Validity::False, None)
    } else {
        let why = "acknowledged values are missing but no final drain emptied the queue";
        (Validity::Unknown, Some(why.to_string()))
    };

    TotalQueueReport {
        valid,
        attempt_count: tally.attempted.len(),
        acknowledged_count: tally.acknowledged.len(),
        ok_count,
        lost_count: lost.len(),
        unexpected_count: unexpected.len(),
        duplicated_count: duplicated.len(),
        recovered_count: recovered.len(),
        drained: tally.drained,
        lost: first(lost.into_iter().cloned()),
        unexpected: first(unexpected.into_iter().cloned()),
        duplicated: first(duplicated.into_iter().map(|(v, n)| (v.clone(), n))),
        reordered_count,
        reordered,
        recovered: first(recovered.into_iter().cloned()),
        unknown_because,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, Process};
    use serde_json::json;

    /// Builds a history from (process, f, invoke value, completion type, completion value).
    fn history(ops: &[(u64, &str, serde_json::Value, OpType, serde_json::Value)]) -> History {
        let mut out = Vec::new();
        for (process, f, arg, kind, result) in ops {
            for (k, v) in [(OpType::Invoke, arg), (*kind, result)] {
                out.push(Op {
                    index: out.len() as u64,
                    time: out.len() as u64,
                    kind: k,
                    process: Process::Client(*process),
                    f: f.to_string(),
                    value: v.clone(),
                    error: None,
                });
            }
        }
        History::from_ops(out, &[]).unwrap()
    }

    #[test]
    fn everything_acknowledged_and_drained_is_valid() {
        let h = history(&[
            (0, "enqueue", json!(1), OpType::Ok, json!(1)),
            (1, "enqueue", json!(2), OpType::Ok, json!(2)),
            (0, "dequeue", json!(null), OpType::Ok, json!(1)),
            (0, "drain", json!(null), OpType::Ok, json!([2])),
        ]);
        let r = total_queue(&h);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(
            (r.attempt_count, r.acknowledged_count, r.ok_count, r.lost_count),
            (2, 2, 2, 0)
        );
    }

    #[test]
    fn an_acknowledged_value_missing_after_the_drain_is_lost() {
        let h = history(&[
            (0, "enqueue", json!(1), OpType::Ok, json!(1)),
            (1, "enqueue", json!(2), OpType::Ok, json!(2)),
            (0, "drain", json!(null), OpType::Ok, json!([2])),
        ]);
        let r = total_queue(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.lost, vec![QueueValue::Int(1)]);
    }

    #[test]
    fn an_info_enqueue_that_shows_up_is_recovered_not_lost_and_one_that_does_not_is_fine() {
        let h = history(&[
            (0, "enqueue", json!(1), OpType::Info, json!(1)),
            (1, "enqueue", json!(2), OpType::Info, json!(2)),
            (1 + 10, "drain", json!(null), OpType::Ok, json!([1])),
        ]);
        let r = total_queue(&h);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.recovered, vec![QueueValue::Int(1)]);
        assert_eq!(r.lost_count, 0);
    }

    #[test]
    fn a_value_never_sent_or_certainly_failed_is_unexpected() {
        let h = history(&[
            (0, "enqueue", json!(1), OpType::Fail, json!(1)),
            (0, "drain", json!(null), OpType::Ok, json!([1, 99])),
        ]);
        let r = total_queue(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.unexpected, vec![QueueValue::Int(1), QueueValue::Int(99)]);
    }

    #[test]
    fn duplicates_are_reported_but_allowed() {
        let h = history(&[
            (0, "enqueue", json!(1), OpType::Ok, json!(1)),
            (0, "dequeue", json!(null), OpType::Ok, json!(1)),
            (0, "drain", json!(null), OpType::Ok, json!([1])),
        ]);
        let r = total_queue(&h);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.duplicated, vec![(QueueValue::Int(1), 2)]);
    }

    #[test]
    fn missing_values_without_a_finished_drain_are_unknown() {
        let h = history(&[
            (0, "enqueue", json!(1), OpType::Ok, json!(1)),
            (0, "drain", json!(null), OpType::Info, json!([])),
        ]);
        let r = total_queue(&h);
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.unknown_because.is_some());
    }
}
