//! Log analyses (Kafka-like histories), after Jepsen's Kafka workload.
//!
//! A `send` is `[["send", key, value]]`, completing as `[["send", key, [offset, value]]]`;
//! a `poll` completes as `[["poll", {key: [[offset, value], ...]}]]`. `final-poll` ops are
//! the fully-healed reads of every key from the start, made after all faults ended.
//!
//! - lost: an acknowledged send whose value is absent from the final reads of its key (or,
//!   with no final reads, Jepsen's definition: absent although a later offset was read);
//! - dirty read: a consumer read a value at an offset where the final reads show a
//!   different value or nothing: it saw data that never became committed there;
//! - inconsistent offsets: one (key, offset) observed with two values;
//! - duplicate: one value at two offsets of a key;
//! - unexpected: a value read that no send ever attempted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::cycles::{add_cycles, find_cycles};
use crate::history::{History, Op, OpType};
use crate::model::LogModel;
use crate::order::{order_anomalies, Anomalies, Unseen};
use crate::queue::WITNESSES_MAX;
use crate::verdict::Validity;

/// A partition key, as text (JSON object keys are strings, send keys may be numbers).
pub type Key = String;

/// One observation of a record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Seen {
    /// Partition key.
    pub key: Key,
    /// Offset in the partition.
    pub offset: u64,
    /// The value (canonical JSON text).
    pub value: String,
    /// Index of the op that observed it.
    pub op: u64,
}

/// The result of the log analyses.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogReport {
    /// False if anything below is non-empty.
    pub valid: Validity,
    /// Sends invoked.
    pub send_count: usize,
    /// Sends acknowledged.
    pub acknowledged_count: usize,
    /// Whether final reads were present (else lost writes use Jepsen's weaker definition).
    pub final_reads: bool,
    /// Acknowledged sends missing (key, value, index of the send's completion).
    pub lost_count: usize,
    /// Up to [`WITNESSES_MAX`] lost sends.
    pub lost: Vec<Seen>,
    /// Reads of data that the final reads contradict.
    pub dirty_read_count: usize,
    /// Up to [`WITNESSES_MAX`] dirty reads.
    pub dirty_reads: Vec<Seen>,
    /// (key, offset) pairs seen with more than one value.
    pub inconsistent_offset_count: usize,
    /// Up to [`WITNESSES_MAX`] of them, each with the values seen.
    pub inconsistent_offsets: Vec<(Key, u64, Vec<String>)>,
    /// Values seen at more than one offset of their key.
    pub duplicate_count: usize,
    /// Up to [`WITNESSES_MAX`] of them, with the offsets.
    pub duplicates: Vec<(Key, String, Vec<u64>)>,
    /// Values read that were never sent.
    pub unexpected_count: usize,
    /// Up to [`WITNESSES_MAX`] of them.
    pub unexpected: Vec<Seen>,
    /// Order anomalies and dependency cycles by name (`poll-skip`, `G1a`, `G0`, ...), each
    /// marked allowed or not by the workload.
    pub anomalies: Anomalies,
    /// Acknowledged values no read had returned, over time.
    pub unseen: Unseen,
}

impl LogReport {
    /// One line of counts.
    pub fn summary(&self) -> String {
        let named: Vec<String> = self
            .anomalies
            .iter()
            .map(|(name, cases)| {
                let allowed = if cases.allowed { " (allowed)" } else { "" };
                format!(", {name} {}{allowed}", cases.count)
            })
            .collect();
        format!(
            "sent {}, acknowledged {}, lost {}, dirty reads {}, inconsistent offsets {}, duplicates {}, unexpected {}{}{}",
            self.send_count,
            self.acknowledged_count,
            self.lost_count,
            self.dirty_read_count,
            self.inconsistent_offset_count,
            self.duplicate_count,
            self.unexpected_count,
            named.concat(),
            if self.final_reads { "" } else { " (no final reads)" }
        )
    }
}

fn key_of(value: &Value) -> Key {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The micro-ops of an op's value: `[[name, ...], ...]`.
fn micro_ops(op: &Op) -> impl Iterator<Item = &Vec<Value>> {
    op.value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
}

/// Every (key, offset, value) a poll completion observed.
fn polled(op: &Op) -> Vec<Seen> {
    let mut seen = Vec::new();
    for micro in micro_ops(op) {
        if micro.first().and_then(Value::as_str) != Some("poll") {
            continue;
        }
        let Some(by_key) = micro.get(1).and_then(Value::as_object) else {
            continue;
        };
        for (key, records) in by_key {
            for record in records.as_array().into_iter().flatten() {
                let Some([offset, value]) = record.as_array().map(Vec::as_slice) else {
                    continue;
                };
                if let Some(offset) = offset.as_u64() {
                    seen.push(Seen {
                        key: key.clone(),
                        offset,
                        value: value.to_string(),
                        op: op.index,
                    });
                }
            }
        }
    }
    seen
}

/// The anomalies the log workload allows: Kafka consumers read from their own positions in
/// bounded batches, so a poll that misses a write acknowledged before it (G-single through
/// realtime or process order) or two consumers seeing two partitions at different points
/// (G2) are not broken promises.
pub const LOG_ALLOWED: &[&str] = &[
    "G-single-process",
    "G-single-realtime",
    "G2",
    "G2-process",
    "G2-realtime",
];

/// Runs the log analyses, allowing [`LOG_ALLOWED`].
pub fn log_analysis(history: &History) -> LogReport {
    log_analysis_allowing(history, LOG_ALLOWED)
}

/// Runs the log analyses; the anomalies named in `allowed` do not make the history invalid.
pub fn log_analysis_allowing(history: &History, allowed: &[&str]) -> LogReport {
    let mut report = basic_log_analysis(history);
    let model = LogModel::new(history);
    let (mut anomalies, unseen) = order_anomalies(&model);
    let cycles = find_cycles(&model);
    add_cycles(&mut anomalies, &model, &cycles);
    for (name, cases) in anomalies.iter_mut() {
        cases.allowed = allowed.contains(&name.as_str());
    }
    if anomalies.values().any(|c| !c.allowed && c.count > 0) {
        report.valid = Validity::False;
    }
    report.anomalies = anomalies;
    report.unseen = unseen;
    report
}

/// The cycles of a log history, explained, for cycles.txt.
pub fn explain_cycles(history: &History) -> String {
    let model = LogModel::new(history);
    let mut text = String::new();
    for cycle in find_cycles(&model) {
        text.push_str(&format!("{}\n{}\n", cycle.anomaly, cycle.explanation));
    }
    text
}

fn basic_log_analysis(history: &History) -> LogReport {
    let mut attempted: BTreeSet<(Key, String)> = BTreeSet::new();
    let mut acknowledged: Vec<Seen> = Vec::new();
    let mut reads: Vec<Seen> = Vec::new();
    let mut finals: Vec<Seen> = Vec::new();
    let mut final_reads = false;
    let mut send_count = 0;
    // Any op may carry sends and polls (Jepsen's transactions mix them): look at its
    // micro-ops, not its name.
    for (invoke, completion) in history.pairs() {
        for micro in micro_ops(invoke) {
            if micro.first().and_then(Value::as_str) != Some("send") {
                continue;
            }
            if let (Some(key), Some(value)) = (micro.get(1), micro.get(2)) {
                send_count += 1;
                attempted.insert((key_of(key), value.to_string()));
            }
        }
        let Some(done) = completion.filter(|op| op.kind == OpType::Ok) else {
            continue;
        };
        for micro in micro_ops(done) {
            if micro.first().and_then(Value::as_str) != Some("send") {
                continue;
            }
            let (Some(key), Some(result)) = (micro.get(1), micro.get(2)) else {
                continue;
            };
            let Some([offset, value]) = result.as_array().map(Vec::as_slice) else {
                continue;
            };
            acknowledged.push(Seen {
                key: key_of(key),
                offset: offset.as_u64().unwrap_or(u64::MAX),
                value: value.to_string(),
                op: done.index,
            });
        }
        if invoke.f == "final-poll" {
            final_reads = true;
            finals.extend(polled(done));
        } else {
            reads.extend(polled(done));
        }
    }
    judge(send_count, attempted, acknowledged, reads, finals, final_reads)
}

fn judge(
    send_count: usize,
    attempted: BTreeSet<(Key, String)>,
    acknowledged: Vec<Seen>,
    reads: Vec<Seen>,
    finals: Vec<Seen>,
    final_reads: bool,
) -> LogReport {
    // What the final reads say each (key, offset) holds.
    let final_at: BTreeMap<(&str, u64), &str> = finals
        .iter()
        .map(|s| ((s.key.as_str(), s.offset), s.value.as_str()))
        .collect();
    let final_values: BTreeSet<(&str, &str)> = finals
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();
    let ever_read: BTreeSet<(&str, &str)> = reads
        .iter()
        .chain(finals.iter())
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();

    // Every observation, including acknowledged offsets, for offset-level consistency.
    let mut observed: Vec<&Seen> = reads.iter().chain(finals.iter()).collect();
    observed.extend(acknowledged.iter().filter(|s| s.offset != u64::MAX));
    let mut values_at: BTreeMap<(&str, u64), BTreeSet<&str>> = BTreeMap::new();
    let mut offsets_of: BTreeMap<(&str, &str), BTreeSet<u64>> = BTreeMap::new();
    for s in &observed {
        values_at.entry((&s.key, s.offset)).or_default().insert(&s.value);
        offsets_of.entry((&s.key, &s.value)).or_default().insert(s.offset);
    }
    let read_max: BTreeMap<&str, u64> =
        reads
            .iter()
            .chain(finals.iter())
            .fold(BTreeMap::new(), |mut m, s| {
                let max = m.entry(s.key.as_str()).or_insert(0);
                *max = (*max).max(s.offset);
                m
            });

    let lost: Vec<Seen> = acknowledged
        .iter()
        .filter(|s| {
            let pair = (s.key.as_str(), s.value.as_str());
            if final_reads {
                !final_values.contains(&pair)
            } else {
                // Jepsen's definition: never read, although a later offset of the key was.
                !ever_read.contains(&pair) && read_max.get(pair.0).is_some_and(|max| *max > s.offset)
            }
        })
        .cloned()
        .collect();
    let dirty: Vec<Seen> = if final_reads {
        reads
            .iter()
            // The final reads run to the end of every key, so an offset they lack, or hold
            // another value at, never held this value once everything was healed.
            .filter(|s| final_at.get(&(s.key.as_str(), s.offset)) != Some(&s.value.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let inconsistent: Vec<(Key, u64, Vec<String>)> = values_at
        .iter()
        .filter(|(_, values)| values.len() > 1)
        .map(|((k, o), values)| (k.to_string(), *o, values.iter().map(|v| v.to_string()).collect()))
        .collect();
    let duplicates: Vec<(Key, String, Vec<u64>)> = offsets_of
        .iter()
        .filter(|(_, offsets)| offsets.len() > 1)
        .map(|((k, v), offsets)| (k.to_string(), v.to_string(), offsets.iter().copied().collect()))
        .collect();
    let unexpected: Vec<Seen> = reads
        .iter()
        .chain(finals.iter())
        .filter(|s| !attempted.contains(&(s.key.clone(), s.value.clone())))
        .cloned()
        .collect();

    let anomalies = lost.len() + dirty.len() + inconsistent.len() + duplicates.len() + unexpected.len();
    LogReport {
        valid: if anomalies == 0 {
            Validity::True
        } else {
            Validity::False
        },
        send_count,
        acknowledged_count: acknowledged.len(),
        final_reads,
        lost_count: lost.len(),
        dirty_read_count: dirty.len(),
        inconsistent_offset_count: inconsistent.len(),
        duplicate_count: duplicates.len(),
        unexpected_count: unexpected.len(),
        lost: lost.into_iter().take(WITNESSES_MAX).collect(),
        dirty_reads: dirty.into_iter().take(WITNESSES_MAX).collect(),
        inconsistent_offsets: inconsistent.into_iter().take(WITNESSES_MAX).collect(),
        duplicates: duplicates.into_iter().take(WITNESSES_MAX).collect(),
        unexpected: unexpected.into_iter().take(WITNESSES_MAX).collect(),
        anomalies: Anomalies::new(),
        unseen: Unseen::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::json;

    /// (process, f, invoke value, completion type, completion value)
    type Step = (u64, &'static str, Value, OpType, Value);

    fn history(steps: &[Step]) -> History {
        let mut ops = Vec::new();
        for (process, f, arg, kind, result) in steps {
            for (k, v) in [(OpType::Invoke, arg), (*kind, result)] {
                ops.push(Op {
                    index: ops.len() as u64,
                    time: ops.len() as u64,
                    kind: k,
                    process: Process::Client(*process),
                    f: f.to_string(),
                    value: v.clone(),
                    error: None,
                });
            }
        }
        History::from_ops(ops, &[]).unwrap()
    }

    fn send(p: u64, key: u64, value: u64, offset: u64) -> Step {
        (
            p,
            "send",
            json!([["send", key, value]]),
            OpType::Ok,
            json!([["send", key, [offset, value]]]),
        )
    }

    fn poll(p: u64, f: &'static str, records: Value) -> Step {
        (p, f, json!([["poll"]]), OpType::Ok, json!([["poll", records]]))
    }

    #[test]
    fn a_clean_log_is_valid() {
        let h = history(&[
            send(0, 1, 10, 0),
            send(0, 1, 11, 1),
            poll(1, "poll", json!({"1": [[0, 10]]})),
            poll(2, "final-poll", json!({"1": [[0, 10], [1, 11]]})),
        ]);
        let r = log_analysis(&h);
        assert_eq!(r.valid, Validity::True, "{r:?}");
        assert_eq!((r.send_count, r.acknowledged_count), (2, 2));
    }

    #[test]
    fn an_acknowledged_send_missing_from_the_final_read_is_lost() {
        let h = history(&[
            send(0, 1, 10, 0),
            send(0, 1, 11, 1),
            poll(2, "final-poll", json!({"1": [[0, 10]]})),
        ]);
        let r = log_analysis(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(
            r.lost.iter().map(|s| s.value.as_str()).collect::<Vec<_>>(),
            vec!["11"]
        );
    }

    #[test]
    fn without_final_reads_lost_means_skipped_by_a_later_read() {
        let skipped = history(&[
            send(0, 1, 10, 0),
            send(0, 1, 11, 1),
            poll(1, "poll", json!({"1": [[1, 11]]})),
        ]);
        assert_eq!(log_analysis(&skipped).lost_count, 1);
        let unread_tail = history(&[
            send(0, 1, 10, 0),
            send(0, 1, 11, 1),
            poll(1, "poll", json!({"1": [[0, 10]]})),
        ]);
        assert_eq!(
            log_analysis(&unread_tail).lost_count,
            0,
            "nothing later was read: not yet seen, not lost"
        );
    }

    #[test]
    fn reading_a_value_the_final_log_does_not_hold_there_is_a_dirty_read() {
        let h = history(&[
            send(0, 1, 10, 0),
            (
                0,
                "send",
                json!([["send", 1, 11]]),
                OpType::Info,
                json!([["send", 1, 11]]),
            ),
            poll(1, "poll", json!({"1": [[0, 10], [1, 11]]})),
            poll(2, "final-poll", json!({"1": [[0, 10]]})),
        ]);
        let r = log_analysis(&h);
        assert_eq!(r.dirty_read_count, 1, "{r:?}");
        assert_eq!(r.dirty_reads[0].offset, 1);
        assert_eq!(r.lost_count, 0, "the send was never acknowledged");
    }

    #[test]
    fn offsets_with_two_values_values_at_two_offsets_and_values_never_sent_are_anomalies() {
        let h = history(&[
            send(0, 1, 10, 0),
            send(0, 1, 11, 1),
            poll(1, "poll", json!({"1": [[0, 10], [1, 12]]})),
            poll(2, "final-poll", json!({"1": [[0, 10], [1, 11], [2, 10]]})),
        ]);
        let r = log_analysis(&h);
        assert_eq!(
            r.inconsistent_offsets,
            vec![("1".to_string(), 1, vec!["11".to_string(), "12".to_string()])]
        );
        assert_eq!(
            r.duplicates,
            vec![("1".to_string(), "10".to_string(), vec![0, 2])]
        );
        assert_eq!(r.unexpected_count, 1);
        assert_eq!(r.valid, Validity::False);
    }
}
