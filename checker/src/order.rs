//! Order anomalies of a log history, with Jepsen's definitions. Distances are counted in
//! positions of a key's version order (its known offsets), not raw offsets, since offsets
//! may be sparse.
//!
//! - `poll-skip` / `nonmonotonic-poll`: one process's successive polls of a key skip over
//!   known values, or go back (or repeat), unless it reassigned in between;
//! - `int-poll-skip` / `int-nonmonotonic-poll`: the same within one poll;
//! - `nonmonotonic-send`: one process's successive sends to a key land at positions that
//!   go back; `int-send-skip` / `int-nonmonotonic-send`: two sends to one key within one op
//!   have other values between them, or go back;
//! - `G1a` (aborted read): a value read that its send reported as failed;
//! - `precommitted-read`: an operation read a value it sent itself: Kafka's consumers
//!   must not see a transaction's sends before it commits.
//!
//! The polls of operations that failed or crashed are judged too (a consumer must return
//! committed data only, whatever its transaction does next) against the position the
//! process's last `ok` poll left, and do not move it.
//!
//! Also `unseen`: acknowledged values no read had returned yet, over time.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};
use smallvec::SmallVec;

use crate::history::{ByProcess, OpType};
use crate::model::{ByVersion, KeyId, LogModel, MOp, ValueId, NO_POSITION};
use crate::queue::WITNESSES_MAX;

/// Most values listed as skipped in one witness.
const SKIPPED_MAX: usize = 8;
/// Most points of the unseen series.
const SERIES_MAX: usize = 256;

/// Every case of one kind of anomaly: how many, and a few witnesses.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Cases {
    /// How many were found.
    pub count: usize,
    /// Whether the workload allows it (it then does not make the history invalid).
    pub allowed: bool,
    /// Up to [`WITNESSES_MAX`] of them.
    pub witnesses: Vec<Value>,
}

impl Cases {
    /// Records one case.
    pub fn add(&mut self, witness: Value) {
        self.count += 1;
        if self.witnesses.len() < WITNESSES_MAX {
            self.witnesses.push(witness);
        }
    }
}

/// Anomalies by name.
pub type Anomalies = BTreeMap<String, Cases>;

/// Acknowledged-but-unread values over time.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Unseen {
    /// How many were still unread at the end of the history.
    pub count: usize,
    /// (simulated ns, unread count) after each change, thinned to a few hundred points.
    pub series: Vec<(u64, usize)>,
    /// Up to [`WITNESSES_MAX`] of the values still unread at the end, as (key, value).
    pub examples: Vec<(String, String)>,
}

fn add(anomalies: &mut Anomalies, name: &str, witness: Value) {
    anomalies.entry(name.to_string()).or_default().add(witness);
}

/// A witness of two values of one key, with what lies between them.
fn pair_case(
    model: &LogModel,
    op: &MOp,
    key: KeyId,
    (p1, v1): (u32, ValueId),
    (p2, v2): (u32, ValueId),
) -> Value {
    let skipped: Vec<std::borrow::Cow<'_, str>> = if p2 > p1 + 1 {
        model.versions[key as usize][(p1 + 1) as usize..p2 as usize]
            .iter()
            .take(SKIPPED_MAX)
            .map(|(_, v)| model.value_text(*v))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "key": model.key_name(key),
        "values": [model.value_text(v1), model.value_text(v2)],
        "delta": i64::from(p2) - i64::from(p1),
        "skipped": skipped,
        "op": op.complete,
        "process": op.process,
    })
}

/// Per key, one (position, value): a process reads and writes a few keys, so a short
/// list beats a tree.
#[derive(Debug, Default)]
struct ByKey(SmallVec<[(KeyId, (u32, ValueId)); 4]>);

impl ByKey {
    fn get(&self, key: &KeyId) -> Option<(u32, ValueId)> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, at)| *at)
    }

    /// Sets `key`'s entry, returning the one it replaces.
    fn insert(&mut self, key: KeyId, at: (u32, ValueId)) -> Option<(u32, ValueId)> {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => Some(std::mem::replace(old, at)),
            None => {
                self.0.push((key, at));
                None
            }
        }
    }
}

/// Runs the order analyses.
pub fn order_anomalies(model: &LogModel) -> (Anomalies, Unseen) {
    let mut anomalies = Anomalies::new();
    // Per process (by its slot): per key, the last (position, value) it polled and sent.
    let mut slots: ByProcess<usize> = ByProcess::default();
    let mut polled: Vec<ByKey> = Vec::new();
    let mut sent: Vec<ByKey> = Vec::new();
    let mut failed: ByVersion<u64> = ByVersion::new(model);
    let mut any_failed = false;
    for op in model.ops.iter().filter(|op| op.kind == OpType::Fail) {
        for send in &op.sends {
            let place = model.place(send.key, send.value);
            any_failed |= failed.insert_first(send.key, send.value, place, op.complete);
        }
    }
    for op in &model.ops {
        let slot = match slots.get(op.process) {
            Some(slot) => *slot,
            None => {
                polled.push(ByKey::default());
                sent.push(ByKey::default());
                slots.insert(op.process, polled.len() - 1);
                polled.len() - 1
            }
        };
        if op.is_final() {
            polled[slot].0.clear();
        }
        // A consumer moved off a key starts it afresh; a failed move moved nothing, and
        // keys still covered keep their positions (Jepsen keeps state for them too).
        if op.reassigns() && op.kind != OpType::Fail {
            match &op.assigned {
                Some(keys) => {
                    for positions in [&mut polled[slot], &mut sent[slot]] {
                        positions.0.retain(|(key, _)| keys.contains(key));
                    }
                }
                None => {
                    polled[slot].0.clear();
                    sent[slot].0.clear();
                }
            }
        }
        for (key, records, positions) in model.reads_positioned(op) {
            let key = &key;
            let positioned: SmallVec<[(u32, ValueId); 6]> = positions
                .iter()
                .zip(records)
                .filter(|(p, _)| **p != NO_POSITION)
                .map(|(p, (_, v))| (*p, *v))
                .collect();
            for pair in positioned.windows(2) {
                match pair[1].0.cmp(&(pair[0].0 + 1)) {
                    std::cmp::Ordering::Greater => add(
                        &mut anomalies,
                        "int-poll-skip",
                        pair_case(model, op, *key, pair[0], pair[1]),
                    ),
                    std::cmp::Ordering::Less => add(
                        &mut anomalies,
                        "int-nonmonotonic-poll",
                        pair_case(model, op, *key, pair[0], pair[1]),
                    ),
                    std::cmp::Ordering::Equal => {}
                }
            }
            // Reading one's own send before it commits (Jepsen's precommitted-read).
            if let Some(send) = op
                .sends
                .iter()
                .find(|s| s.key == *key && records.iter().any(|(_, v)| *v == s.value))
            {
                add(
                    &mut anomalies,
                    "precommitted-read",
                    json!({
                        "key": model.key_name(*key),
                        "value": model.value_text(send.value),
                        "op": op.complete,
                        "process": op.process,
                    }),
                );
            }
            if op.is_final() {
                continue;
            }
            // A poll, whatever its outcome, must start where the process's last `ok` poll
            // of the key ended; only an `ok` one moves that position (an aborted
            // transaction rewinds the consumer).
            let last = &mut polled[slot];
            if let (Some(before), Some(first)) = (last.get(key), positioned.first().copied()) {
                if first.0 > before.0 + 1 {
                    add(
                        &mut anomalies,
                        "poll-skip",
                        pair_case(model, op, *key, before, first),
                    );
                } else if first.0 <= before.0 {
                    add(
                        &mut anomalies,
                        "nonmonotonic-poll",
                        pair_case(model, op, *key, before, first),
                    );
                }
            }
            if op.kind != OpType::Ok {
                continue;
            }
            if let Some(end) = positioned.last() {
                last.insert(*key, *end);
            }
            for ((_, value), place) in records.iter().zip(positions).filter(|_| any_failed) {
                if let Some(writer) = failed.get(*key, *value, *place) {
                    add(
                        &mut anomalies,
                        "G1a",
                        json!({
                            "key": model.key_name(*key),
                            "value": model.value_text(*value),
                            "reader": op.complete,
                            "failed-send": writer,
                        }),
                    );
                }
            }
        }
        if op.kind == OpType::Fail {
            continue;
        }
        // Sends: within this op, and against the process's sends in earlier ops.
        let mut in_op = ByKey::default();
        for send in &op.sends {
            let Some(p) = model.position_of(send.key, send.value) else {
                continue;
            };
            let here = (p, send.value);
            match in_op.insert(send.key, here) {
                Some(prev) if p > prev.0 + 1 => add(
                    &mut anomalies,
                    "int-send-skip",
                    pair_case(model, op, send.key, prev, here),
                ),
                Some(prev) if p <= prev.0 => add(
                    &mut anomalies,
                    "int-nonmonotonic-send",
                    pair_case(model, op, send.key, prev, here),
                ),
                Some(_) => {}
                None => {
                    // `sent` still holds the process's earlier operations' sends.
                    let earlier = sent[slot].get(&send.key);
                    if let Some(prev) = earlier.filter(|prev| p <= prev.0) {
                        add(
                            &mut anomalies,
                            "nonmonotonic-send",
                            pair_case(model, op, send.key, prev, here),
                        );
                    }
                }
            }
        }
        for (key, at) in in_op.0 {
            sent[slot].insert(key, at);
        }
    }
    (anomalies, unseen(model))
}

/// Acknowledged values not yet returned by any read, after each operation. Each
/// acknowledged value waits from its acknowledgement until its first read (if that comes
/// later): the series is the running sum of +1 at each such acknowledgement and -1 at that
/// first read, kept per operation rather than sorted as a list of changes.
fn unseen(model: &LogModel) -> Unseen {
    // The op (by position) of the first `ok` read of each value.
    let mut first_read: ByVersion<u32> = ByVersion::new(model);
    let ok = || {
        model
            .ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.kind == OpType::Ok)
    };
    for (at, op) in ok() {
        for (key, records, positions) in model.reads_positioned(op) {
            for (&(_, value), &p) in records.iter().zip(positions) {
                first_read.insert_first(key, value, p, at as u32);
            }
        }
    }
    let mut change: Vec<i32> = vec![0; model.ops.len()];
    let mut first_change: Option<usize> = None;
    let mut examples = Vec::new();
    for (at, op) in ok() {
        for send in &op.sends {
            let read = first_read.get(send.key, send.value, model.place(send.key, send.value));
            match read.map(|r| r as usize) {
                Some(read) if read <= at => continue,
                Some(read) => {
                    change[at] += 1;
                    change[read] -= 1;
                }
                None => {
                    change[at] += 1;
                    if examples.len() < WITNESSES_MAX {
                        examples.push((
                            model.key_name(send.key).to_string(),
                            model.value_text(send.value).to_string(),
                        ));
                    }
                }
            }
            first_change = Some(first_change.map_or(at, |f| f.min(at)));
        }
    }
    // A point after the first change and after every op that changes the count; thinned
    // evenly to at most about `SERIES_MAX` as they are made (every `step`-th point, and
    // always the last), rather than listed whole first: that list was 16 bytes an op.
    let start = first_change.unwrap_or(change.len());
    let points =
        change[start..].iter().skip(1).filter(|d| **d != 0).count() + usize::from(start < change.len());
    let step = points.div_ceil(SERIES_MAX).max(1);
    let mut series = Vec::with_capacity(points.min(SERIES_MAX + 1));
    let mut waiting: i64 = 0;
    let mut made = 0;
    let mut last = None;
    for (at, delta) in change.iter().enumerate().skip(start) {
        if *delta == 0 && made > 0 {
            continue;
        }
        waiting += i64::from(*delta);
        let point = (model.ops[at].complete_time, waiting.max(0) as usize);
        if made % step == 0 {
            series.push(point);
        }
        made += 1;
        last = Some(point);
    }
    if let Some(last) = last.filter(|last| series.last() != Some(last)) {
        series.push(last);
    }
    let count = waiting.max(0) as usize;
    Unseen {
        count,
        series,
        examples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    /// `n` sends to one key, each acknowledged at its offset, then one poll of the first
    /// `read` of them. Op `i` completes at time `10 * (2i + 1)`.
    fn sends_then_poll(n: u64, read: u64) -> LogModel {
        let mut lines = Vec::new();
        for i in 0..n {
            lines.push(format!(
                r#"{{"index":{},"time":{},"type":"invoke","process":0,"f":"send","value":[["send","x",{i}]]}}"#,
                2 * i,
                20 * i
            ));
            lines.push(format!(
                r#"{{"index":{},"time":{},"type":"ok","process":0,"f":"send","value":[["send","x",[{i},{i}]]]}}"#,
                2 * i + 1,
                20 * i + 10
            ));
        }
        let records: Vec<String> = (0..read).map(|i| format!("[{i},{i}]")).collect();
        lines.push(format!(
            r#"{{"index":{},"time":{},"type":"invoke","process":1,"f":"poll","value":[["poll"]]}}"#,
            2 * n,
            20 * n
        ));
        lines.push(format!(
            r#"{{"index":{},"time":{},"type":"ok","process":1,"f":"poll","value":[["poll",{{"x":[{}]}}]]}}"#,
            2 * n + 1,
            20 * n + 10,
            records.join(",")
        ));
        LogModel::new(&History::read_jsonl(lines.join("\n").as_bytes()).expect("a valid history"))
    }

    #[test]
    fn the_unseen_series_rises_with_each_acknowledgement_and_falls_at_the_first_read() {
        let unseen = order_anomalies(&sends_then_poll(4, 3)).1;
        assert_eq!(unseen.series, vec![(10, 1), (30, 2), (50, 3), (70, 4), (90, 1)]);
        assert_eq!(unseen.count, 1, "value 3 was never read");
        assert_eq!(unseen.examples, vec![("x".to_string(), "3".to_string())]);
    }

    #[test]
    fn a_long_unseen_series_is_thinned_evenly_keeping_its_first_and_last_points() {
        let unseen = order_anomalies(&sends_then_poll(1000, 1000)).1;
        let series = &unseen.series;
        assert!(series.len() <= SERIES_MAX + 1, "{} points", series.len());
        assert!(series.len() >= SERIES_MAX / 2, "{} points", series.len());
        assert_eq!(series.first(), Some(&(10, 1)));
        assert_eq!(series.last(), Some(&(20_010, 0)), "the poll read them all");
        let steps: Vec<usize> = series[..series.len() - 1]
            .windows(2)
            .map(|w| w[1].1 - w[0].1)
            .collect();
        assert!(steps.iter().all(|s| *s == steps[0]), "evenly thinned: {steps:?}");
        assert_eq!(unseen.count, 0);
    }
}
