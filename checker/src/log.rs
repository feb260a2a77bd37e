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

use serde::Serialize;

use crate::cycles::{add_cycles, find_cycles};
use crate::history::{History, OpType};
use crate::model::{ByVersion, KeyId, LogModel, MOp, ValueId, NO_POSITION};
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
    /// Offset in the partition; `None` for a send acknowledged without one (acks=0).
    pub offset: Option<u64>,
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
    /// Set when the cycle search stopped at its bound, saying where: a cycle there may
    /// have been missed, so the verdict is at best unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle_search_bounded: Option<String>,
    /// Why the result is unknown, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
}

impl LogReport {
    /// Every dependency cycle kept as a witness, explained, for cycles.txt: each anomaly's
    /// name (marked when the workload allows it), then its explanations.
    pub fn cycles_text(&self) -> String {
        let mut text = String::new();
        for (name, cases) in &self.anomalies {
            let allowed = if cases.allowed { " (allowed)" } else { "" };
            for explanation in cases.witnesses.iter().filter_map(|w| w["explanation"].as_str()) {
                text.push_str(&format!("{name}{allowed}\n{explanation}\n"));
            }
        }
        text
    }

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
        ) + &self.unknown_because.as_ref().map_or(String::new(), |why| format!(" (unknown: {why})"))
    }
}

/// The anomalies the log workload allows: every cycle through an rw edge. Kafka consumers
/// read each partition from their own position in bounded batches, so a poll that misses
/// a write acknowledged before it (G-single through realtime or process order), sees part
/// of another operation's sends (G-single), or two consumers seeing two partitions at
/// different points (G2) are not broken promises. (Jepsen's Kafka analysis infers no rw
/// edges at all.) Since all of them are allowed, they are not searched for unless a caller
/// takes one out of the list.
pub const LOG_ALLOWED: &[&str] = RW_CYCLES;

/// The cycles that need an rw edge.
const RW_CYCLES: &[&str] = &[
    "G-single",
    "G-single-process",
    "G-single-realtime",
    "G2",
    "G2-process",
    "G2-realtime",
];

/// What a history whose operations send several values each also allows, as Jepsen's
/// Kafka checker always does: the sends of one operation are not isolated from other
/// producers', so other values land between them (int-send-skip) and two such operations
/// interleave across keys (G0, directly or through process or realtime order). With one
/// send per operation none of these can arise but as a real fault (or as nonmonotonic-send,
/// which stays reported).
pub const MULTI_SEND_ALLOWED: &[&str] = &["G0", "G0-process", "G0-realtime", "int-send-skip"];

/// Every anomaly the log analyses name (the counted ones, such as lost writes, always
/// make a history invalid and are not listed).
pub const LOG_ANOMALIES: &[&str] = &[
    "G0",
    "G0-process",
    "G0-realtime",
    "G1a",
    "G1c",
    "G1c-process",
    "G1c-realtime",
    "G-single",
    "G-single-process",
    "G-single-realtime",
    "G2",
    "G2-process",
    "G2-realtime",
    "int-nonmonotonic-poll",
    "int-nonmonotonic-send",
    "int-poll-skip",
    "int-send-skip",
    "nonmonotonic-poll",
    "nonmonotonic-send",
    "poll-skip",
    "precommitted-read",
    "unseen",
];

/// Runs the log analyses, allowing [`LOG_ALLOWED`].
pub fn log_analysis(history: &History) -> LogReport {
    log_analysis_allowing(history, LOG_ALLOWED)
}

/// Runs the log analyses; the anomalies named in `allowed` do not make the history invalid.
pub fn log_analysis_allowing(history: &History, allowed: &[&str]) -> LogReport {
    model_analysis(&LogModel::new(history), allowed)
}

/// Runs the log analyses on a compiled model.
pub(crate) fn model_analysis(model: &LogModel, allowed: &[&str]) -> LogReport {
    let mut report = basic_log_analysis(model);
    let multi_send = model.ops.iter().any(|op| op.sends.len() > 1);
    let allowed: Vec<&str> = allowed
        .iter()
        .copied()
        .chain(MULTI_SEND_ALLOWED.iter().copied().filter(|_| multi_send))
        .collect();
    let (mut anomalies, unseen) = order_anomalies(model);
    if !report.final_reads && unseen.count > 0 {
        // With no final read, an acknowledged value nobody ever read may be lost: Jepsen
        // counts it as an error, and so does tumult. (With final reads, such a value is
        // lost, and counted as that.)
        anomalies.insert(
            "unseen".to_string(),
            crate::order::Cases {
                count: unseen.count,
                allowed: false,
                witnesses: unseen
                    .examples
                    .iter()
                    .map(|(key, value)| serde_json::json!({ "key": key, "value": value }))
                    .collect(),
            },
        );
    }
    let cycles = find_cycles(model, !RW_CYCLES.iter().all(|name| allowed.contains(name)));
    add_cycles(&mut anomalies, model, &cycles.cycles);
    for (name, cases) in anomalies.iter_mut() {
        cases.allowed = allowed.contains(&name.as_str());
    }
    if anomalies.values().any(|c| !c.allowed && c.count > 0) {
        report.valid = Validity::False;
    }
    report.cycle_search_bounded = cycles.bounded;
    if report.valid == Validity::True {
        if model.ops.iter().all(|op| op.sends.is_empty() && op.reads.1 == 0) {
            report.valid = Validity::Unknown;
            report.unknown_because = Some(crate::nothing_to_judge(model.ops.len(), "send and no read"));
        } else if let Some(why) = &report.cycle_search_bounded {
            report.valid = Validity::Unknown;
            report.unknown_because = Some(why.clone());
        }
    }
    report.anomalies = anomalies;
    report.unseen = unseen;
    report
}

/// True if `records` (sorted, deduplicated) hold `value` at `offset`.
fn holds(records: &[(u64, ValueId)], offset: u64, value: ValueId) -> bool {
    // Usually one value per offset, dense from zero: try the record at index `offset`.
    if usize::try_from(offset).ok().and_then(|i| records.get(i)) == Some(&(offset, value)) {
        return true;
    }
    records.binary_search(&(offset, value)).is_ok()
}

/// Distinct triples grouped by their first two fields: how many groups hold more than one
/// triple, and a witness (made by `witness`) of each of the first [`WITNESSES_MAX`].
fn groups<A: Ord + Copy, B: Ord + Copy, C: Ord + Copy, W>(
    mut triples: Vec<(A, B, C)>,
    witness: impl Fn(&[(A, B, C)]) -> W,
) -> (usize, Vec<W>) {
    triples.sort_unstable();
    triples.dedup();
    let mut count = 0;
    let mut witnesses = Vec::new();
    for group in triples
        .chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
        .filter(|g| g.len() > 1)
    {
        count += 1;
        if witnesses.len() < WITNESSES_MAX {
            witnesses.push(witness(group));
        }
    }
    (count, witnesses)
}

/// Lost writes, dirty reads, inconsistent offsets, duplicates and unexpected values, on
/// the interned model: every comparison is of integers, and every lookup an index or a
/// bisection (a few sorts of small lists beat millions of tree insertions).
fn basic_log_analysis(model: &LogModel) -> LogReport {
    type Obs = (KeyId, u64, ValueId, u64);
    let mut attempted: ByVersion<()> = ByVersion::new(model);
    // (key, offset, value, op) of every acknowledged send, walked in place as the reads are.
    let acknowledged = || {
        model
            .ops
            .iter()
            .filter(|op| op.kind == OpType::Ok)
            .flat_map(|op| {
                op.sends
                    .iter()
                    .map(move |send| (send.key, send.offset.unwrap_or(u64::MAX), send.value, op.complete))
            })
    };
    let mut acknowledged_count = 0;
    // Sends of `info` operations proven committed, and reads of operations that failed
    // or crashed: evidence of the log's contents, though nobody was told `ok`.
    let mut proven: Vec<Obs> = Vec::new();
    // Reads are walked in place, never copied: they are most of a history. Each record
    // comes with its place in the version order, for the maps kept by it.
    let positioned = |which: fn(&MOp) -> bool| {
        model.ops.iter().filter(move |op| which(op)).flat_map(|op| {
            model
                .reads_positioned(op)
                .flat_map(|(k, rs, ps)| rs.iter().zip(ps).map(move |((o, v), p)| (k, *o, *v, *p)))
        })
    };
    let mut final_reads = false;
    let mut send_count = 0;
    for op in &model.ops {
        send_count += op.sends.len();
        for send in &op.sends {
            attempted.insert_first(send.key, send.value, model.place(send.key, send.value), ());
        }
        if op.kind != OpType::Ok {
            if op.committed {
                proven.extend(
                    op.sends
                        .iter()
                        .map(|s| (s.key, s.offset.unwrap_or(u64::MAX), s.value, op.complete)),
                );
            }
            continue;
        }
        acknowledged_count += op.sends.len();
        final_reads |= op.is_final();
    }
    // Per key, the (offset, value) records of the final reads.
    let mut final_at: Vec<Vec<(u64, ValueId)>> = vec![Vec::new(); model.keys.len()];
    let mut final_values: ByVersion<()> = ByVersion::new(model);
    for (k, o, v, p) in positioned(|op| op.kind == OpType::Ok && op.is_final()) {
        final_at[k as usize].push((o, v));
        final_values.insert_first(k, v, p, ());
    }
    for records in &mut final_at {
        records.sort_unstable();
        records.dedup();
    }
    let seen = |(k, o, v, op): &Obs| Seen {
        key: model.key_name(*k).to_string(),
        offset: (*o != u64::MAX).then_some(*o),
        value: model.value_text(*v).to_string(),
        op: *op,
    };
    let lost: Vec<Obs> = if final_reads {
        acknowledged()
            .filter(|(k, _, v, _)| final_values.get(*k, *v, model.place(*k, *v)).is_none())
            .collect()
    } else {
        // Jepsen's definition: never read, although a later offset of the key was; sends
        // proven committed count as well as acknowledged ones.
        let mut ever_read: ByVersion<()> = ByVersion::new(model);
        let mut read_max: Vec<Option<u64>> = vec![None; model.keys.len()];
        for (k, o, v, p) in positioned(|op| op.kind == OpType::Ok && !op.is_final()) {
            ever_read.insert_first(k, v, p, ());
            let max = &mut read_max[k as usize];
            *max = Some(max.map_or(o, |m| m.max(o)));
        }
        acknowledged()
            .chain(proven.iter().copied())
            .filter(|(k, o, v, _)| {
                ever_read.get(*k, *v, model.place(*k, *v)).is_none()
                    && read_max[*k as usize].is_some_and(|max| max > *o)
            })
            .collect()
    };
    // One pass over every read, the records with their positions:
    // - dirty reads: the final reads run to the end of every key, so an offset they lack,
    //   or hold another value at, never held this value once everything was healed;
    // - every observation against the model's table of the first value seen at each offset
    //   and the first offset of each value: only the observations that disagree are
    //   collected and grouped;
    // - values read that nobody sent: by the reads, then the final reads, then the reads of
    //   operations that did not complete `ok`.
    let mut dirty: Vec<Obs> = Vec::new();
    let mut other_value: Vec<(KeyId, u64, ValueId)> = Vec::new();
    let mut other_offset: Vec<(KeyId, ValueId, u64)> = Vec::new();
    let mut unexpected_by: [Vec<Obs>; 3] = Default::default();
    let mut observe = |k: KeyId, o: u64, v: ValueId, position: Option<u32>| {
        if let Some(first) = model.value_at(k, o).filter(|first| *first != v) {
            other_value.extend([(k, o, first), (k, o, v)]);
        }
        match position {
            Some(p) => {
                let first = model.versions[k as usize][p as usize].0;
                if first != o {
                    other_offset.extend([(k, v, first), (k, v, o)]);
                }
            }
            None => other_offset.push((k, v, o)),
        }
    };
    for op in &model.ops {
        let ok = op.kind == OpType::Ok;
        let class = match (ok, op.is_final()) {
            (true, false) => 0,
            (true, true) => 1,
            (false, _) => 2,
        };
        for (k, records, positions) in model.reads_positioned(op) {
            for (&(o, v), &p) in records.iter().zip(positions) {
                if class == 0 && final_reads && !holds(&final_at[k as usize], o, v) {
                    dirty.push((k, o, v, op.complete));
                }
                observe(k, o, v, Some(p).filter(|p| *p != NO_POSITION));
                if attempted.get(k, v, p).is_none() {
                    unexpected_by[class].push((k, o, v, op.complete));
                }
            }
        }
    }
    for (k, o, v, _) in acknowledged()
        .chain(proven.iter().copied())
        .filter(|a| a.1 != u64::MAX)
    {
        observe(k, o, v, model.position_of(k, v));
    }
    let unexpected: Vec<Obs> = unexpected_by.concat();
    let (inconsistent_count, inconsistent) = groups(other_value, |group| {
        let mut values: Vec<String> = group
            .iter()
            .map(|(_, _, v)| model.value_text(*v).to_string())
            .collect();
        values.sort();
        (model.key_name(group[0].0).to_string(), group[0].1, values)
    });
    let (duplicate_count, duplicates) = groups(other_offset, |group| {
        (
            model.key_name(group[0].0).to_string(),
            model.value_text(group[0].1).to_string(),
            group.iter().map(|(_, _, o)| *o).collect(),
        )
    });
    let anomalies = lost.len() + dirty.len() + inconsistent_count + duplicate_count + unexpected.len();
    LogReport {
        valid: if anomalies == 0 {
            Validity::True
        } else {
            Validity::False
        },
        send_count,
        acknowledged_count,
        final_reads,
        lost_count: lost.len(),
        dirty_read_count: dirty.len(),
        inconsistent_offset_count: inconsistent_count,
        duplicate_count,
        unexpected_count: unexpected.len(),
        lost: lost.iter().take(WITNESSES_MAX).map(seen).collect(),
        dirty_reads: dirty.iter().take(WITNESSES_MAX).map(seen).collect(),
        inconsistent_offsets: inconsistent,
        duplicates,
        unexpected: unexpected.iter().take(WITNESSES_MAX).map(seen).collect(),
        anomalies: Anomalies::new(),
        unseen: Unseen::default(),
        cycle_search_bounded: None,
        unknown_because: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;
    use crate::history::Process;
    use serde_json::json;
    use serde_json::Value;

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

    /// A poll's wr edges stand for each other only where ww edges chain their writers: a
    /// version nobody wrote breaks the chain, and the earlier writer keeps its own edge.
    #[test]
    fn a_read_of_a_future_write_is_a_cycle_whether_or_not_ww_edges_chain_the_writers() {
        for gap_filled in [false, true] {
            let mut steps = vec![
                // The poll reads 10 before process 1 sends it: wr 10's send -> poll, and
                // process order poll -> that send.
                poll(1, "poll", json!({"1": [[0, 10], [1, 11], [2, 12]]})),
                send(1, 1, 10, 0),
                send(2, 1, 12, 2),
            ];
            if gap_filled {
                steps.push(send(3, 1, 11, 1));
            }
            let r = log_analysis(&history(&steps));
            let found: Vec<(&str, usize)> = r
                .anomalies
                .iter()
                .filter(|(name, _)| name.starts_with("G"))
                .map(|(name, cases)| (name.as_str(), cases.count))
                .collect();
            assert_eq!(found, vec![("G1c-process", 1)], "gap filled: {gap_filled}: {r:?}");
            assert_eq!(r.unexpected_count, usize::from(!gap_filled));
        }
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
        assert_eq!(r.dirty_reads[0].offset, Some(1));
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
