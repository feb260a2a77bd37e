//! A log history compiled for analysis: keys and values interned to integers, each
//! completed client operation reduced to its sends and reads, and every key's version
//! order (its values by offset) inferred from everything anyone observed.
//!
//! Values are kept as their canonical JSON text, so `17` in JSONL and `17` in EDN, or
//! `"a"` and `:a`, are the same value.

use std::collections::BTreeMap;

use serde_json::Value;
use smallvec::SmallVec;

use crate::history::{ByProcess, History, Op, OpType, Process};

/// An interned key.
pub type KeyId = u32;
/// An interned value.
pub type ValueId = u32;

/// The (offset, value) records one poll returned for one key.
pub type Records = SmallVec<[(u64, ValueId); 6]>;

/// One send of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send {
    /// The key.
    pub key: KeyId,
    /// The value.
    pub value: ValueId,
    /// The offset it was given, when the completion says.
    pub offset: Option<u64>,
}

/// One completed client operation.
#[derive(Debug, Clone)]
pub struct MOp {
    /// History index of the invocation.
    pub invoke: u64,
    /// History index of the completion.
    pub complete: u64,
    /// Simulated time of the completion.
    pub complete_time: u64,
    /// The client process.
    pub process: u64,
    /// How it completed.
    pub kind: OpType,
    /// What kind of operation it is, from its function name.
    pub f: Function,
    /// Its sends, in order.
    pub sends: SmallVec<[Send; 1]>,
    /// Its reads, one entry per key (two polls of a key in one operation read it in
    /// sequence), in [`LogModel::read_keys`] from `reads.0`, `reads.1` of them; see
    /// [`LogModel::reads`]. Kept whatever the completion: a Kafka consumer must return only
    /// committed data even in a transaction that then aborts, so the polls of a `fail` or
    /// `info` operation are evidence too. (Every op's records live in one arena: a million
    /// small heap allocations cost more than the analyses themselves, and a compact op
    /// keeps the passes over the ops in cache.)
    pub reads: (u32, u32),
    /// For an `assign` or `subscribe` whose completion lists keys: those keys. (Boxed:
    /// few ops have them, and every op carries the field.)
    pub assigned: Option<Box<[KeyId]>>,
    /// Whether its sends took effect, as far as anyone can tell: it completed `ok`, or it
    /// completed `info` and an `ok` read returned one of its values (Jepsen's
    /// `must-have-committed?`). Only then do the offsets its completion gave count.
    pub committed: bool,
}

/// The functions the analyses tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `final-poll`: a read of every key from the start, made after healing.
    FinalPoll,
    /// `assign` or `subscribe`: the consumer's keys change.
    Reassign,
    /// Anything else (`send`, `poll`, a transaction).
    Other,
}

impl Function {
    fn of(name: &str) -> Self {
        match name {
            "final-poll" => Function::FinalPoll,
            "assign" | "subscribe" => Function::Reassign,
            _ => Function::Other,
        }
    }
}

impl MOp {
    /// True for a final read (made after healing).
    pub fn is_final(&self) -> bool {
        self.f == Function::FinalPoll
    }

    /// True for an op that changes which keys a consumer reads (Kafka's assign/subscribe).
    pub fn reassigns(&self) -> bool {
        self.f == Function::Reassign
    }
}

/// The compiled history.
#[derive(Debug, Default)]
pub struct LogModel {
    /// Key names, by id.
    pub keys: Vec<String>,
    /// Values, by id.
    pub values: Vec<StoredValue>,
    /// Completed client operations, in order of completion.
    pub ops: Vec<MOp>,
    /// Per key: its version order: each value once, at the first offset it was seen at, and
    /// each offset with the value first seen there.
    pub versions: Vec<Vec<(u64, ValueId)>>,
    /// Each (key, value)'s position in its key's `versions`.
    pub position: PairMap<u32>,
    /// Per key: every offset observed, in order, with the value first seen there.
    pub offsets: Vec<Vec<(u64, ValueId)>>,
    /// Every op's reads: (key, where its records start in `records`, how many).
    pub read_keys: Vec<(KeyId, usize, u32)>,
    /// Every (offset, value) record read, op by op and key by key.
    pub records: Vec<(u64, ValueId)>,
    /// Each record's value's position in its key's version order, beside `records`
    /// ([`NO_POSITION`] for a record no read refers to): looked up once here, then read in
    /// sequence by every analysis that walks the reads.
    pub record_positions: Vec<u32>,
    key_ids: BTreeMap<String, KeyId>,
    value_ids: BTreeMap<String, ValueId>,
    int_ids: BTreeMap<i64, ValueId>,
    small_ids: Vec<ValueId>,
    /// While the history is read: per key, by offset, the (integer, id) of the value a
    /// send was acknowledged at there (`(0, ValueId::MAX)` where none is known). A poll
    /// reads a key's offsets in order, so its records are interned by walking this table
    /// rather than by indexing `small_ids` at values scattered over the whole history (a
    /// cache miss per record once the history outgrows the cache).
    sent_at: Vec<Vec<(u32, ValueId)>>,
}

/// How far past a key's highest acknowledged offset a send's offset may be and still be
/// noted in [`LogModel::sent_at`]: offsets are dense in every log tumult knows, and a
/// stray huge one must not make a huge table.
const SENT_AT_GAP_MAX: usize = 1 << 16;

/// A value as the model keeps it. Integers, what histories mostly hold, stay integers and
/// are written out only for a report: a text per value was an allocation per value (a
/// 10M-op keys-100 check peaked at 1.88 GB with them, 1.74 GB without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    /// An integer.
    Int(i64),
    /// Any other value, as its canonical JSON text.
    Text(Box<str>),
}

/// The position of a record no read refers to (see [`LogModel::record_positions`]).
pub const NO_POSITION: u32 = u32::MAX;

/// Integer values below this are interned through a table rather than a map.
const DIRECT_MAX: usize = 1 << 24;

/// An invocation waiting for its completion: what it sent, by micro-op position.
#[derive(Debug, Clone)]
struct Pending {
    index: u64,
    f: Function,
    /// (micro-op position, key, value) of each send.
    sends: SmallVec<[(u32, KeyId, ValueId); 1]>,
}

/// What a completion's value says, beyond its type.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    /// The offset the completion gave each send, by micro-op position.
    pub offsets: SmallVec<[(u32, u64); 4]>,
    /// Its polls' records, per key.
    pub reads: SmallVec<[(KeyId, Records); 1]>,
    /// Its polls' records, per key, already in the model's arena (`LogModel::records`)
    /// as (key, start, length): where a reader put them straight there.
    pub in_arena: SmallVec<[(KeyId, usize, u32); 2]>,
    /// The keys of an `assign` or `subscribe`, when its value lists them.
    pub assigned: Option<SmallVec<[KeyId; 4]>>,
}

/// Compiles a log history one operation at a time, so that a history file need never be
/// held whole: the invocation's sends wait (interned) for the completion, which adds
/// offsets and reads. Feed every client operation in history order, then `finish`.
#[derive(Debug, Default)]
pub struct LogBuilder {
    model: LogModel,
    pending: ByProcess<Pending>,
}

impl LogBuilder {
    /// Adds one client operation given as JSON (an [`Op`] of the in-memory history or of
    /// the EDN reader).
    pub fn add_op(&mut self, process: u64, op: &Op) {
        let micro = micro_ops(&op.value);
        if op.kind == OpType::Invoke {
            let mut sends = SmallVec::new();
            for (at, micro) in micro.iter().enumerate() {
                let Some(micro) = micro.as_array() else { continue };
                if micro.first().and_then(Value::as_str) != Some("send") {
                    continue;
                }
                let (Some(key), Some(value)) = (micro.get(1), micro.get(2)) else {
                    continue;
                };
                let key = self.model.key(key);
                let value = self.model.value(value);
                sends.push((at as u32, key, value));
            }
            self.invoke(process, op.index, &op.f, sends);
            return;
        }
        let mut completed = Completed::default();
        if Function::of(&op.f) == Function::Reassign {
            completed.assigned = op
                .value
                .as_array()
                .map(|keys| keys.iter().map(|key| self.model.key(key)).collect());
        }
        for (at, micro) in micro.iter().enumerate() {
            let Some(micro) = micro.as_array() else { continue };
            match micro.first().and_then(Value::as_str) {
                Some("send") => {
                    // A completion writes `[offset, value]` where the invocation wrote the
                    // value, when it knows the offset.
                    let offset = micro
                        .get(2)
                        .and_then(Value::as_array)
                        .and_then(|pair| pair.first())
                        .and_then(Value::as_u64);
                    if let Some(offset) = offset {
                        completed.offsets.push((at as u32, offset));
                    }
                }
                Some("poll") => {
                    let Some(by_key) = micro.get(1).and_then(Value::as_object) else {
                        continue;
                    };
                    for (key, records) in by_key {
                        let key = self.model.key_named(key);
                        let mut list = Records::new();
                        for record in records.as_array().into_iter().flatten() {
                            if let Some([offset, value]) = record.as_array().map(Vec::as_slice) {
                                if let Some(offset) = offset.as_u64() {
                                    list.push((offset, self.model.value(value)));
                                }
                            }
                        }
                        completed.reads.push((key, list));
                    }
                }
                _ => {}
            }
        }
        let done = Completion {
            process,
            index: op.index,
            time: op.time,
            kind: op.kind,
        };
        self.complete(done, &op.f, completed);
    }

    /// A builder for a history of about `ops` operations.
    pub fn with_capacity(ops: usize) -> Self {
        let mut builder = Self::default();
        // At most one compiled op per completion: growing a vector of large ops by
        // doubling would copy them all again and again.
        builder.model.ops.reserve(ops / 2 + 1);
        builder
    }

    /// The model's interner, for readers that intern values as they parse.
    pub fn model_mut(&mut self) -> &mut LogModel {
        &mut self.model
    }

    /// Records process `process`'s invocation at `index` of function `f`, whose sends
    /// (micro-op position, key, value) are given.
    pub fn invoke(&mut self, process: u64, index: u64, f: &str, sends: SmallVec<[(u32, KeyId, ValueId); 1]>) {
        let f = Function::of(f);
        self.pending.insert(process, Pending { index, f, sends });
    }

    /// Records the completion of `process`'s open invocation of `f`: its type and time
    /// and what its value says. A completion with no open invocation stands for an
    /// operation invoked at that moment (its sends, named only by the invocation, unknown).
    pub fn complete(&mut self, done: Completion, f: &str, completed: Completed) {
        let pending = self.pending.remove(done.process).unwrap_or_else(|| Pending {
            index: done.index,
            f: Function::of(f),
            sends: SmallVec::new(),
        });
        let op = compile(&mut self.model, pending, done, completed);
        self.model.ops.push(op);
    }

    /// The model: an operation the history ends before completing is indeterminate, as
    /// if it had completed `info` at the end (in invocation order).
    pub fn finish(mut self) -> LogModel {
        let mut unfinished: Vec<(u64, Pending)> = std::mem::take(&mut self.pending).drain().collect();
        unfinished.sort_by_key(|(_, p)| p.index);
        for (process, pending) in unfinished {
            let done = Completion {
                process,
                index: u64::MAX,
                time: u64::MAX,
                kind: OpType::Info,
            };
            let op = compile(&mut self.model, pending, done, Completed::default());
            self.model.ops.push(op);
        }
        self.model.sent_at = Vec::new();
        self.model.settle_commitment();
        self.model.order_versions();
        self.model
    }
}

/// One compiled op from its invocation and completion. A failed send's offset never
/// counts; an `info` one's counts only once the op is known to have committed (see
/// [`MOp::committed`], settled when the history is complete).
fn compile(model: &mut LogModel, pending: Pending, done: Completion, completed: Completed) -> MOp {
    // Reads a reader parsed into lists go to the arena's end like the others.
    let mut runs = completed.in_arena;
    for (key, records) in &completed.reads {
        runs.push((*key, model.records.len(), records.len() as u32));
        model.records.extend_from_slice(records);
    }
    // One entry per key: two polls of a key in one operation read it in sequence, so
    // (rarely) a key's runs are copied together to the arena's end.
    let first = model.read_keys.len();
    for (at, &(key, start, len)) in runs.iter().enumerate() {
        if runs[..at].iter().any(|(k, _, _)| *k == key) {
            continue;
        }
        if !runs[at + 1..].iter().any(|(k, _, _)| *k == key) {
            model.read_keys.push((key, start, len));
            continue;
        }
        let merged = model.records.len();
        for (_, from, len) in runs[at..].iter().filter(|(k, _, _)| *k == key) {
            model.records.extend_from_within(*from..*from + *len as usize);
        }
        model
            .read_keys
            .push((key, merged, (model.records.len() - merged) as u32));
    }
    let reads = (first as u32, (model.read_keys.len() - first) as u32);
    let sends = pending
        .sends
        .iter()
        .map(|&(at, key, value)| {
            let offset = match done.kind {
                OpType::Fail => None,
                _ => completed.offsets.iter().find(|(i, _)| *i == at).map(|(_, o)| *o),
            };
            if let Some(offset) = offset.filter(|_| done.kind == OpType::Ok) {
                model.note_sent(key, offset, value);
            }
            Send { key, value, offset }
        })
        .collect();
    MOp {
        invoke: pending.index,
        complete: done.index,
        complete_time: done.time,
        process: done.process,
        kind: done.kind,
        f: pending.f,
        sends,
        reads,
        assigned: completed.assigned.map(|keys| keys.into_vec().into_boxed_slice()),
        committed: done.kind == OpType::Ok,
    }
}

/// How an operation completed.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// The client process.
    pub process: u64,
    /// History index of the completion.
    pub index: u64,
    /// Time of the completion.
    pub time: u64,
    /// Ok, fail or info.
    pub kind: OpType,
}

impl LogModel {
    /// Compiles `history`.
    pub fn new(history: &History) -> Self {
        let mut builder = LogBuilder::with_capacity(history.ops().len());
        for op in history.ops() {
            let Process::Client(process) = op.process else {
                continue;
            };
            builder.add_op(process, op);
        }
        builder.finish()
    }

    /// Interns a send's key given as JSON (a string is its own name).
    pub fn key(&mut self, key: &Value) -> KeyId {
        let name = match key {
            Value::String(s) => return self.key_named(s),
            other => other.to_string(),
        };
        self.key_named(&name)
    }

    /// Interns a key by name.
    pub fn key_named(&mut self, name: &str) -> KeyId {
        // Histories mostly have a handful of keys: a short scan beats the tree.
        if self.keys.len() <= 16 {
            if let Some(id) = self.keys.iter().position(|k| k == name) {
                return id as KeyId;
            }
        } else if let Some(id) = self.key_ids.get(name) {
            return *id;
        }
        let name = name.to_string();
        let id = self.keys.len() as KeyId;
        self.keys.push(name.clone());
        self.key_ids.insert(name, id);
        self.versions.push(Vec::new());
        self.offsets.push(Vec::new());
        id
    }

    /// Interns a value given as JSON, by its canonical text.
    pub fn value(&mut self, value: &Value) -> ValueId {
        // Integers, what histories mostly hold, are interned without building their text.
        if let Some(n) = value.as_i64() {
            return self.int_value(n);
        }
        let text = value.to_string();
        if let Some(id) = self.value_ids.get(&text) {
            return *id;
        }
        let id = self.values.len() as ValueId;
        self.values.push(StoredValue::Text(text.clone().into_boxed_str()));
        self.value_ids.insert(text, id);
        id
    }

    /// Interns an integer value read at `key`'s `offset` (the id [`LogModel::int_value`]
    /// gives it, found through the send acknowledged there when it holds that value).
    pub fn read_int_value(&mut self, key: KeyId, offset: u64, n: i64) -> ValueId {
        let sent = usize::try_from(offset)
            .ok()
            .and_then(|at| self.sent_at.get(key as usize)?.get(at).copied());
        match sent {
            Some((sent, id)) if id != ValueId::MAX && i64::from(sent) == n => id,
            _ => self.int_value(n),
        }
    }

    /// Notes that a send of `value` to `key` was acknowledged at `offset` (see
    /// [`LogModel::sent_at`]).
    fn note_sent(&mut self, key: KeyId, offset: u64, value: ValueId) {
        let StoredValue::Int(n) = self.values[value as usize] else {
            return;
        };
        let (Ok(n), Ok(at)) = (u32::try_from(n), usize::try_from(offset)) else {
            return;
        };
        if self.sent_at.len() <= key as usize {
            self.sent_at.resize(key as usize + 1, Vec::new());
        }
        let table = &mut self.sent_at[key as usize];
        if at >= table.len() {
            if at - table.len() > SENT_AT_GAP_MAX {
                return;
            }
            table.resize(at + 1, (0, ValueId::MAX));
        }
        if table[at].1 == ValueId::MAX {
            table[at] = (n, value);
        }
    }

    /// Interns an integer value (the same id as [`LogModel::value`] gives its JSON).
    pub fn int_value(&mut self, n: i64) -> ValueId {
        // Small non-negative integers (tumult's values) index a table directly.
        let slot = usize::try_from(n).ok().filter(|n| *n < DIRECT_MAX);
        let known = match slot {
            Some(i) => self.small_ids.get(i).copied().filter(|id| *id != ValueId::MAX),
            None => self.int_ids.get(&n).copied(),
        };
        if let Some(id) = known {
            return id;
        }
        let id = self.values.len() as ValueId;
        self.values.push(StoredValue::Int(n));
        match slot {
            Some(i) => {
                if self.small_ids.len() <= i {
                    self.small_ids.resize(i + 1, ValueId::MAX);
                }
                self.small_ids[i] = id;
            }
            None => {
                self.int_ids.insert(n, id);
            }
        }
        id
    }

    /// Marks the `info` operations an `ok` read proves committed (one of their values was
    /// read) and forgets the offsets of the rest: an offset from an operation that may
    /// never have happened says nothing about the log.
    fn settle_commitment(&mut self) {
        if !self
            .ops
            .iter()
            .any(|op| op.kind == OpType::Info && !op.sends.is_empty())
        {
            return;
        }
        // Only the reads of values an `info` op sent matter: a bit per value marks them,
        // small enough to stay in cache while every read is walked (a map of every value
        // read was a cache miss per record on a large history).
        let mut info_sent: BTreeMap<(KeyId, ValueId), bool> = BTreeMap::new();
        let mut maybe = vec![0u64; self.values.len().div_ceil(64)];
        for op in self.ops.iter().filter(|op| op.kind == OpType::Info) {
            for send in &op.sends {
                info_sent.insert((send.key, send.value), false);
                maybe[send.value as usize / 64] |= 1 << (send.value % 64);
            }
        }
        for op in self.ops.iter().filter(|op| op.kind == OpType::Ok) {
            for (key, records) in self.reads(op) {
                for (_, value) in records {
                    if maybe[*value as usize / 64] & (1 << (value % 64)) != 0 {
                        if let Some(read) = info_sent.get_mut(&(*key, *value)) {
                            *read = true;
                        }
                    }
                }
            }
        }
        for op in self.ops.iter_mut().filter(|op| op.kind == OpType::Info) {
            op.committed = op
                .sends
                .iter()
                .any(|s| info_sent.get(&(s.key, s.value)) == Some(&true));
            if !op.committed {
                for send in &mut op.sends {
                    send.offset = None;
                }
            }
        }
    }

    /// Builds each key's version order from every read (whatever its operation's outcome)
    /// and every offset of a committed send.
    fn order_versions(&mut self) {
        // Per key: how many observations, and their lowest and highest offsets.
        let mut span: Vec<(usize, u64, u64)> = vec![(0, u64::MAX, 0); self.keys.len()];
        observations(self, |key, offset, _| {
            let s = &mut span[key as usize];
            *s = (s.0 + 1, s.1.min(offset), s.2.max(offset));
        });
        // A key whose offsets are dense (as Kafka's are) gets a table indexed by offset,
        // filled in one pass; a sparse one is sorted (stably, so the first value seen at
        // an offset comes first among its equals).
        let dense = |&(count, low, high): &(usize, u64, u64)| count > 0 && (high - low) / 4 <= count as u64;
        let mut tables: Vec<Vec<ValueId>> = span
            .iter()
            .map(|s| match dense(s) {
                true => vec![ValueId::MAX; (s.2 - s.1 + 1) as usize],
                false => Vec::new(),
            })
            .collect();
        let mut sparse: Vec<Vec<(u64, ValueId)>> = vec![Vec::new(); self.keys.len()];
        observations(self, |key, offset, value| {
            let k = key as usize;
            if tables[k].is_empty() {
                sparse[k].push((offset, value));
            } else {
                let slot = &mut tables[k][(offset - span[k].1) as usize];
                if *slot == ValueId::MAX {
                    *slot = value;
                }
            }
        });
        let mut position = PairMap::new(self.values.len());
        // Per key, beside `offsets`: the place in the version order its value took at that
        // offset, or `NO_POSITION` where it had one already.
        let mut placed_at: Vec<Vec<u32>> = vec![Vec::new(); self.keys.len()];
        for key in 0..self.keys.len() {
            let offsets: Vec<(u64, ValueId)> = if tables[key].is_empty() {
                let mut offsets = std::mem::take(&mut sparse[key]);
                offsets.sort_by_key(|(offset, _)| *offset);
                offsets.dedup_by_key(|(offset, _)| *offset);
                offsets
            } else {
                let low = span[key].1;
                tables[key]
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != ValueId::MAX)
                    .map(|(i, v)| (low + i as u64, *v))
                    .collect()
            };
            tables[key] = Vec::new();
            // A value seen again at a later offset (a duplicate, reported as such) keeps its
            // first place only: the version order lists each write once.
            let mut versions = Vec::with_capacity(offsets.len());
            let mut placed = Vec::with_capacity(offsets.len());
            for &(offset, value) in &offsets {
                if position.insert_first(key as KeyId, value, versions.len() as u32) {
                    placed.push(versions.len() as u32);
                    versions.push((offset, value));
                } else {
                    placed.push(NO_POSITION);
                }
            }
            placed_at[key] = placed;
            self.versions[key] = versions;
            self.offsets[key] = offsets;
        }
        // A record holding the value that took its place at the record's offset has that
        // place: found by offset, walking the key's tables in order as a poll reads them,
        // where looking each value up in `position` would be a cache miss per record on a
        // large history. Only the others (duplicates, conflicting values) are looked up.
        let mut record_positions = vec![NO_POSITION; self.records.len()];
        for &(key, start, len) in &self.read_keys {
            let at = start..start + len as usize;
            let (offsets, placed) = (&self.offsets[key as usize], &placed_at[key as usize]);
            for (slot, &(offset, value)) in record_positions[at.clone()].iter_mut().zip(&self.records[at]) {
                *slot = match offset_index(offsets, offset) {
                    Some(i) if offsets[i].1 == value && placed[i] != NO_POSITION => placed[i],
                    _ => position.get(key, value).unwrap_or(NO_POSITION),
                };
            }
        }
        self.record_positions = record_positions;
        self.position = position;
    }

    /// `op`'s reads: each key with the records read from it, in order.
    pub fn reads<'m>(&'m self, op: &MOp) -> impl Iterator<Item = (&'m KeyId, &'m [(u64, ValueId)])> + 'm {
        let (first, count) = (op.reads.0 as usize, op.reads.1 as usize);
        self.read_keys[first..first + count]
            .iter()
            .map(|(key, start, len)| (key, &self.records[*start..*start + *len as usize]))
    }

    /// `op`'s reads, as [`LogModel::reads`] gives them, each record with its value's
    /// position in the key's version order.
    pub fn reads_positioned<'m>(
        &'m self,
        op: &MOp,
    ) -> impl Iterator<Item = (KeyId, &'m [(u64, ValueId)], &'m [u32])> + 'm {
        let (first, count) = (op.reads.0 as usize, op.reads.1 as usize);
        self.read_keys[first..first + count]
            .iter()
            .map(|(key, start, len)| {
                let at = *start..*start + *len as usize;
                (*key, &self.records[at.clone()], &self.record_positions[at])
            })
    }

    /// `key`'s position of `value` in its version order.
    pub fn position_of(&self, key: KeyId, value: ValueId) -> Option<u32> {
        self.position.get(key, value)
    }

    /// `(key, value)`'s place in the version order, or [`NO_POSITION`], for a
    /// [`ByVersion`] map.
    pub fn place(&self, key: KeyId, value: ValueId) -> u32 {
        self.position_of(key, value).unwrap_or(NO_POSITION)
    }

    /// The value first observed at `key`'s `offset`.
    pub fn value_at(&self, key: KeyId, offset: u64) -> Option<ValueId> {
        value_at_offset(&self.offsets[key as usize], offset)
    }

    /// A value's text.
    pub fn value_text(&self, value: ValueId) -> std::borrow::Cow<'_, str> {
        match &self.values[value as usize] {
            StoredValue::Int(n) => std::borrow::Cow::Owned(n.to_string()),
            StoredValue::Text(text) => std::borrow::Cow::Borrowed(text),
        }
    }

    /// A key's name.
    pub fn key_name(&self, key: KeyId) -> &str {
        &self.keys[key as usize]
    }
}

/// Hands `each` every (key, offset, value) the operations observed (their reads, then
/// their sends' offsets), in history order.
fn observations(model: &LogModel, mut each: impl FnMut(KeyId, u64, ValueId)) {
    for op in &model.ops {
        for (key, records) in model.reads(op) {
            for &(offset, value) in records {
                each(*key, offset, value);
            }
        }
        for send in &op.sends {
            if let Some(offset) = send.offset {
                each(send.key, offset, send.value);
            }
        }
    }
}

/// The micro-ops of an op's value, `[[name, ...], ...]`, each still to be checked for
/// being an array: the position of a micro-op pairs an invocation's with its completion's.
fn micro_ops(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// The value at `offset` in `records`, sorted by offset with one value each.
pub fn value_at_offset(records: &[(u64, ValueId)], offset: u64) -> Option<ValueId> {
    offset_index(records, offset).map(|i| records[i].1)
}

/// Where `offset` is in `records`, sorted by offset with one value each: offsets are
/// usually dense from the first, so the record that far from the first is tried before a
/// search.
fn offset_index(records: &[(u64, ValueId)], offset: u64) -> Option<usize> {
    let low = records.first()?.0;
    let guess = offset.checked_sub(low).and_then(|d| usize::try_from(d).ok());
    if let Some(i) = guess.filter(|i| records.get(*i).is_some_and(|(o, _)| *o == offset)) {
        return Some(i);
    }
    records.binary_search_by_key(&offset, |(o, _)| *o).ok()
}

/// A map from (key, value) pairs to `T`, indexed by value: nearly every value belongs to
/// one key, so one slot per interned value serves, and the rare value also seen under a
/// second key goes to a tree. Lookups are then an index, not a search, on the hot paths.
#[derive(Debug, Clone, Default)]
pub struct PairMap<T> {
    dense: Vec<Option<(KeyId, T)>>,
    /// How many slots the first insert makes room for.
    values: usize,
    overflow: BTreeMap<(KeyId, ValueId), T>,
}

impl<T: Copy> PairMap<T> {
    /// An empty map for values below `values`. Nothing is allocated until the first
    /// insert: a map that stays empty costs nothing, where a table per value is tens of
    /// megabytes to fill and fault in.
    pub fn new(values: usize) -> Self {
        Self {
            dense: Vec::new(),
            values,
            overflow: BTreeMap::new(),
        }
    }

    /// What `(key, value)` maps to.
    pub fn get(&self, key: KeyId, value: ValueId) -> Option<T> {
        match self.dense.get(value as usize).copied().flatten() {
            Some((k, item)) if k == key => Some(item),
            Some(_) => self.overflow.get(&(key, value)).copied(),
            None => None,
        }
    }

    /// Maps `(key, value)` to `item` unless it is mapped already; true if it was not.
    pub fn insert_first(&mut self, key: KeyId, value: ValueId, item: T) -> bool {
        let slot = value as usize;
        if slot >= self.dense.len() {
            self.dense.resize(self.values.max(slot + 1), None);
        }
        match self.dense[slot] {
            None => {
                self.dense[slot] = Some((key, item));
                true
            }
            Some((k, _)) if k == key => false,
            Some(_) => insert_first_in(&mut self.overflow, key, value, item),
        }
    }
}

/// A map from (key, value) pairs to `T`, by the pair's place in its key's version order:
/// a table per key, which the records of a poll (successive versions) walk in order, where
/// a [`PairMap`] indexed by value is a cache miss per record on a large history. A pair
/// with no place (a value only ever seen where another holds its offset, or never seen)
/// goes to a tree. Every call gives the pair's place: a record's, from
/// [`LogModel::reads_positioned`], or [`NO_POSITION`] for none.
#[derive(Debug, Clone)]
pub struct ByVersion<T> {
    placed: Vec<Vec<Option<T>>>,
    unplaced: BTreeMap<(KeyId, ValueId), T>,
}

impl<T: Copy> ByVersion<T> {
    /// An empty map over `model`'s versions.
    pub fn new(model: &LogModel) -> Self {
        Self {
            placed: model.versions.iter().map(|v| vec![None; v.len()]).collect(),
            unplaced: BTreeMap::new(),
        }
    }

    /// Maps the pair to `item` unless it is mapped already; true if it was not.
    pub fn insert_first(&mut self, key: KeyId, value: ValueId, position: u32, item: T) -> bool {
        if position == NO_POSITION {
            return insert_first_in(&mut self.unplaced, key, value, item);
        }
        let slot = &mut self.placed[key as usize][position as usize];
        let vacant = slot.is_none();
        if vacant {
            *slot = Some(item);
        }
        vacant
    }

    /// What the pair maps to.
    pub fn get(&self, key: KeyId, value: ValueId, position: u32) -> Option<T> {
        match position {
            NO_POSITION => self.unplaced.get(&(key, value)).copied(),
            p => self.placed[key as usize][p as usize],
        }
    }
}

/// Maps `(key, value)` to `item` in `tree` unless it is mapped already; true if it was not.
fn insert_first_in<T>(tree: &mut BTreeMap<(KeyId, ValueId), T>, key: KeyId, value: ValueId, item: T) -> bool {
    match tree.entry((key, value)) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(item);
            true
        }
        std::collections::btree_map::Entry::Occupied(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_map_keeps_the_first_item_per_pair_and_tells_keys_apart() {
        let mut map: PairMap<u32> = PairMap::new(2);
        assert!(map.insert_first(0, 1, 10));
        assert!(!map.insert_first(0, 1, 11), "the first item stays");
        // The same value under another key, and a value beyond the initial bound.
        assert!(map.insert_first(3, 1, 30));
        assert!(map.insert_first(2, 9, 90));
        assert_eq!(map.get(0, 1), Some(10));
        assert_eq!(map.get(3, 1), Some(30));
        assert_eq!(map.get(2, 9), Some(90));
        assert_eq!(map.get(1, 1), None);
        assert_eq!(map.get(0, 9), None);
        assert_eq!(map.get(0, 0), None);
        let empty: PairMap<u32> = PairMap::new(1 << 20);
        assert_eq!(empty.get(0, 5), None);
        assert_eq!(empty.dense.capacity(), 0, "nothing allocated before an insert");
        assert_eq!(map.get(5, 100), None);
    }

    #[test]
    fn version_orders_keep_the_first_value_seen_at_each_offset_dense_or_sparse() {
        for far in [3u64, 5_000_000] {
            let jsonl = format!(
                r#"{{"index":0,"time":0,"type":"invoke","process":0,"f":"send","value":[["send","x",1]]}}
{{"index":1,"time":1,"type":"ok","process":0,"f":"send","value":[["send","x",[0,1]]]}}
{{"index":2,"time":2,"type":"invoke","process":0,"f":"send","value":[["send","x",2]]}}
{{"index":3,"time":3,"type":"ok","process":0,"f":"send","value":[["send","x",[{far},2]]]}}
{{"index":4,"time":4,"type":"invoke","process":1,"f":"poll","value":[["poll"]]}}
{{"index":5,"time":5,"type":"ok","process":1,"f":"poll","value":[["poll",{{"x":[[{far},3],[0,1]]}}]]}}
"#
            );
            let model = LogModel::new(&History::read_jsonl(jsonl.as_bytes()).unwrap());
            let texts: Vec<(u64, String)> = model.versions[0]
                .iter()
                .map(|(o, v)| (*o, model.value_text(*v).into_owned()))
                .collect();
            assert_eq!(
                texts,
                vec![(0, "1".to_string()), (far, "2".to_string())],
                "offset {far}"
            );
            assert_eq!(
                model.value_at(0, far).map(|v| model.value_text(v).into_owned()),
                Some("2".to_string())
            );
            assert_eq!(model.value_at(0, 1), None);
        }
    }

    /// A poll read through the streaming reader: a record that agrees with the send
    /// acknowledged at its offset, one that holds another value there, and a duplicate far
    /// past every acknowledged offset.
    fn read_with_conflicts() -> LogModel {
        let jsonl = r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"send","value":[["send","x",1]]}
{"index":1,"time":1,"type":"ok","process":0,"f":"send","value":[["send","x",[0,1]]]}
{"index":2,"time":2,"type":"invoke","process":0,"f":"send","value":[["send","x",2]]}
{"index":3,"time":3,"type":"ok","process":0,"f":"send","value":[["send","x",[1,2]]]}
{"index":4,"time":4,"type":"invoke","process":1,"f":"poll","value":[["poll"]]}
{"index":5,"time":5,"type":"ok","process":1,"f":"poll","value":[["poll",{"x":[[0,1],[1,7],[5000000,2]]}]]}
"#;
        crate::stream::read_log(jsonl.as_bytes(), crate::history::Format::Jsonl)
            .expect("a valid history")
            .0
    }

    #[test]
    fn records_are_interned_and_placed_alike_whether_or_not_a_send_was_acknowledged_there() {
        let model = read_with_conflicts();
        let texts: Vec<(u64, String)> = model
            .records
            .iter()
            .map(|(o, v)| (*o, model.value_text(*v).into_owned()))
            .collect();
        assert_eq!(
            texts,
            vec![
                (0, "1".to_string()),
                (1, "7".to_string()),
                (5_000_000, "2".to_string())
            ]
        );
        let sent_two = model.ops[1].sends[0].value;
        assert_eq!(
            model.records[2].1, sent_two,
            "one id per value, however it was read"
        );
        // 7 lost offset 1 to the acknowledged 2, so it has no place; 2 keeps its first one.
        assert_eq!(model.record_positions, vec![0, NO_POSITION, 1]);
        assert!(model.sent_at.is_empty(), "the reading aid is dropped once read");
    }

    #[test]
    fn a_map_by_version_keeps_the_first_item_and_keeps_unplaced_pairs_by_value() {
        let model = read_with_conflicts();
        let (one, seven) = (model.records[0].1, model.records[1].1);
        let mut map: ByVersion<u32> = ByVersion::new(&model);
        assert!(map.insert_first(0, one, model.place(0, one), 10));
        assert!(!map.insert_first(0, one, 0, 11), "the first item stays");
        assert_eq!(model.place(0, seven), NO_POSITION);
        assert!(map.insert_first(0, seven, NO_POSITION, 70));
        assert!(!map.insert_first(0, seven, NO_POSITION, 71));
        assert_eq!(map.get(0, one, 0), Some(10));
        assert_eq!(map.get(0, seven, NO_POSITION), Some(70));
        assert_eq!(map.get(0, model.records[2].1, 1), None);
        assert_eq!(
            map.get(0, one, NO_POSITION),
            None,
            "a placed pair is kept by its place"
        );
    }

    #[test]
    fn the_value_at_an_offset_is_found_dense_or_sparse() {
        let dense = [(0, 5), (1, 6), (2, 7)];
        assert_eq!(value_at_offset(&dense, 1), Some(6));
        assert_eq!(value_at_offset(&dense, 3), None);
        let sparse = [(2, 5), (7, 6), (40, 7)];
        assert_eq!(value_at_offset(&sparse, 7), Some(6));
        assert_eq!(value_at_offset(&sparse, 2), Some(5));
        assert_eq!(value_at_offset(&sparse, 1), None);
        assert_eq!(value_at_offset(&sparse, u64::MAX), None);
    }
}
