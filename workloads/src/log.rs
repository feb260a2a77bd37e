//! The `log` workload (Kafka-like): processes send unique integers to keys (partitions),
//! in batches; consume with assign (a random set of keys) or subscribe (every key),
//! polling from their own positions and committing those positions for their consumer
//! group; after healing, one process reads every key from offset 0 (`final-poll`). The log
//! analyses then look for lost writes, dirty reads, order anomalies and cycles.

use std::collections::BTreeMap;
use std::time::Duration;

use broker::kafka::Acks;
use broker::Mode;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::{
    Checks, Clients, Completion, Family, Generator, Invocation, Knob, KnobError, Knobs, LogApi, OpFuture,
    Records, Registration, Setup, Workload, WorkloadClient,
};

/// Wait between retries of the final read.
const FINAL_RETRY: Duration = Duration::from_millis(200);
/// Records per request of the final read.
const FINAL_POLL_MAX: u32 = 500;
/// The consumer group every process commits its positions for.
const GROUP: &str = "tumult";

/// How the harness finds this workload.
pub(crate) const REGISTRATION: Registration = Registration {
    name: "log",
    about: "unique integers sent to keys in batches, consumed with assign or subscribe and offset commits, then every key read from 0",
    family: Family::Log,
    // Quorum: a log of Raft-replicated streams, as systems that have one serve it.
    modes: &[Mode::Kafka, Mode::Quorum],
    knobs: &[
        Knob {
            name: "keys",
            default: "all",
            help: "keys (partitions) written and read: a number up to --partitions, or all",
        },
        Knob {
            name: "send-share",
            default: "0.6",
            help: "share of operations that send (the rest poll, reassign or commit)",
        },
        Knob {
            name: "send-batch",
            default: "1",
            help: "most values one send operation carries (1..=16; each op draws 1..=this), each to a random key",
        },
        Knob {
            name: "poll-max",
            default: "100",
            help: "most records one poll returns per key (1..=10000)",
        },
        Knob {
            name: "consume",
            default: "assign",
            help: "how consumers pick keys: assign (a random set, changed now and then) or subscribe (every key; a resubscribe resumes from the group's committed positions)",
        },
        Knob {
            name: "reassign-share",
            default: "0.05",
            help: "share of the non-send operations that assign or subscribe anew",
        },
        Knob {
            name: "commit-share",
            default: "0.1",
            help: "share of the non-send operations that commit the consumer's positions for its group",
        },
    ],
    build,
};

fn build(knobs: &Knobs, setup: &Setup) -> Result<Box<dyn Workload>, KnobError> {
    let partitions = setup.partitions.max(1);
    let keys = match knobs.text("keys") {
        "all" => partitions,
        _ => knobs.count("keys", 1, partitions)?,
    };
    let consume = match knobs.text("consume") {
        "assign" => Consume::Assign,
        "subscribe" => Consume::Subscribe,
        _ => return Err(knobs.invalid("consume", "must be assign or subscribe".into())),
    };
    Ok(Box::new(LogWorkload {
        keys,
        send_share: knobs.share("send-share")?,
        send_batch: knobs.count("send-batch", 1, 16)?,
        poll_max: knobs.count("poll-max", 1, 10_000)?,
        consume,
        reassign_share: knobs.share("reassign-share")?,
        commit_share: knobs.share("commit-share")?,
        acks: setup.acks,
    }))
}

/// How consumers choose the keys they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consume {
    /// Each consumer assigns itself a random set of keys, anew now and then.
    Assign,
    /// Each consumer subscribes to every key; a resubscribe resumes from the group's
    /// committed positions, as after a rebalance.
    Subscribe,
}

/// The log workload's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogWorkload {
    /// Keys (partitions) written and read.
    pub keys: u32,
    /// Share of operations that are sends.
    pub send_share: f64,
    /// Most values one send carries.
    pub send_batch: u32,
    /// Most records one poll returns per key.
    pub poll_max: u32,
    /// How consumers choose their keys.
    pub consume: Consume,
    /// Share of non-send operations that reassign or resubscribe.
    pub reassign_share: f64,
    /// Share of non-send operations that commit positions.
    pub commit_share: f64,
    /// What producers ask of the broker.
    pub acks: Acks,
}

impl Default for LogWorkload {
    fn default() -> Self {
        Self {
            keys: 3,
            send_share: 0.6,
            send_batch: 1,
            poll_max: 100,
            consume: Consume::Assign,
            reassign_share: 0.05,
            commit_share: 0.1,
            acks: Acks::All,
        }
    }
}

impl LogWorkload {
    /// The generator of this run's operations, fixed by `seed`.
    pub fn log_generator(&self, seed: u64) -> LogGenerator {
        LogGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_value: 0,
            workload: self.clone(),
        }
    }

    /// A client for one process, through `api`.
    pub fn log_client(&self, api: Box<dyn LogApi>) -> LogClient {
        LogClient {
            api,
            acks: self.acks,
            poll_max: self.poll_max,
            assigned: (0..self.keys.max(1)).collect(),
            keys: self.keys.max(1),
            positions: BTreeMap::new(),
        }
    }
}

impl Workload for LogWorkload {
    fn names(&self) -> Vec<String> {
        (0..self.keys).map(|k| k.to_string()).collect()
    }

    fn generator(&self, seed: u64) -> Box<dyn Generator> {
        Box::new(self.log_generator(seed))
    }

    fn client(&self, clients: &dyn Clients, process: usize) -> Option<Box<dyn WorkloadClient>> {
        Some(Box::new(self.log_client(clients.log(process)?)))
    }

    fn final_read(&self) -> Invocation {
        Invocation {
            f: "final-poll",
            value: json!([["poll"]]),
        }
    }

    fn checks(&self) -> Checks {
        // Batches (send-batch > 1) are several produce requests, not a transaction: the
        // checker allows what that implies (int-send-skip, G0) whenever an operation sends
        // more than one value, as Jepsen's Kafka test does.
        Checks {
            analyses: checker::Workload::Log,
            allowed: checker::LOG_ALLOWED.to_vec(),
        }
    }
}

/// Hands out sends of 0, 1, 2, ... (unique for the run) to random keys, mixed with polls,
/// reassignments and offset commits.
#[derive(Debug, Clone)]
pub struct LogGenerator {
    rng: ChaCha8Rng,
    next_value: i64,
    workload: LogWorkload,
}

impl Generator for LogGenerator {
    fn next_op(&mut self) -> Invocation {
        let w = &self.workload;
        let keys = w.keys.max(1);
        if self.rng.random_bool(w.send_share) {
            let batch = self.rng.random_range(1..=w.send_batch.max(1));
            let sends: Vec<Value> = (0..batch)
                .map(|_| {
                    let key = self.rng.random_range(0..keys);
                    let value = self.next_value;
                    self.next_value += 1;
                    json!(["send", key, value])
                })
                .collect();
            return Invocation {
                f: "send",
                value: Value::Array(sends),
            };
        }
        if w.reassign_share > 0.0 && self.rng.random_bool(w.reassign_share) {
            return match w.consume {
                Consume::Assign => {
                    let mut all: Vec<u32> = (0..keys).collect();
                    all.shuffle(&mut self.rng);
                    let take = self.rng.random_range(1..=keys as usize);
                    let mut chosen = all[..take].to_vec();
                    chosen.sort_unstable();
                    Invocation {
                        f: "assign",
                        value: json!(chosen),
                    }
                }
                Consume::Subscribe => Invocation {
                    f: "subscribe",
                    value: json!((0..keys).collect::<Vec<u32>>()),
                },
            };
        }
        if w.commit_share > 0.0 && self.rng.random_bool(w.commit_share) {
            return Invocation {
                f: "commit",
                value: Value::Null,
            };
        }
        Invocation {
            f: "poll",
            value: json!([["poll"]]),
        }
    }
}

/// One process's producer and consumer, through the system's [`LogApi`].
pub struct LogClient {
    api: Box<dyn LogApi>,
    acks: Acks,
    poll_max: u32,
    /// The keys this consumer reads.
    assigned: Vec<u32>,
    keys: u32,
    /// The next offset this consumer reads, per key.
    positions: BTreeMap<u32, u64>,
}

impl std::fmt::Debug for LogClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogClient")
            .field("assigned", &self.assigned)
            .field("positions", &self.positions)
            .finish()
    }
}

impl LogClient {
    /// Drops the connection (a retired process's thread starts afresh).
    pub fn reset(&mut self) {
        self.api.reset();
    }

    /// Performs a `send`, `poll`, `assign`, `subscribe` or `commit` invocation.
    pub async fn invoke(&mut self, op: &Invocation) -> Completion {
        match op.f {
            "send" => self.send(&op.value).await,
            "poll" => self.poll().await,
            "assign" | "subscribe" => self.reassign(&op.value).await,
            "commit" => self.commit().await,
            other => Completion::error(
                true,
                op.value.clone(),
                format!("log workload has no op '{other}'"),
            ),
        }
    }

    /// Sends each value of the batch in turn. The op is `ok` only when every send was
    /// acknowledged; a definite refusal of the first send fails it; anything else leaves
    /// it `info`, with the offsets of the sends that were acknowledged.
    async fn send(&mut self, value: &Value) -> Completion {
        let Some(sends) = value.as_array().filter(|s| !s.is_empty()) else {
            return Completion::error(true, value.clone(), "malformed send".into());
        };
        let mut done: Vec<Value> = Vec::with_capacity(sends.len());
        for (i, send) in sends.iter().enumerate() {
            let (Some(key), Some(v)) = (send[1].as_u64(), send[2].as_i64()) else {
                return Completion::error(i == 0, value.clone(), "malformed send".into());
            };
            let key = key as u32;
            let err = match self.api.send(key, v.to_string().into_bytes(), self.acks).await {
                Ok(Some(offset)) => {
                    done.push(json!(["send", key, [offset, v]]));
                    continue;
                }
                // acks=0: complete once written, the value known and the offset not.
                Ok(None) => {
                    done.push(json!(["send", key, v]));
                    continue;
                }
                Err(err) => err,
            };
            // What was acknowledged keeps its offset; the rest keep their invocations.
            let mut partial = done;
            partial.extend(sends[i..].iter().cloned());
            let definite = err.is_definite() && i == 0;
            return Completion::error(definite, Value::Array(partial), err.to_string());
        }
        Completion::ok(Value::Array(done))
    }

    async fn poll(&mut self) -> Completion {
        let mut seen = Map::new();
        let mut last_error = None;
        for key in self.assigned.clone() {
            let offset = self.positions.get(&key).copied().unwrap_or(0);
            match self.api.poll(key, offset, self.poll_max).await {
                Ok(Records { records, .. }) => {
                    if let Some((last, _)) = records.last() {
                        self.positions.insert(key, last + 1);
                    }
                    seen.insert(
                        key.to_string(),
                        Value::Array(records.iter().map(record_json).collect()),
                    );
                }
                Err(err) => last_error = Some(err.to_string()),
            }
        }
        match (seen.is_empty(), last_error) {
            // A read changes nothing, so a read that returned nothing certainly failed.
            (true, Some(error)) => Completion::error(true, json!([["poll"]]), error),
            _ => Completion::ok(json!([["poll", Value::Object(seen)]])),
        }
    }

    /// Takes the keys of an `assign` or `subscribe`, resuming each from the group's
    /// committed position (or the start), as a Kafka consumer does after a rebalance.
    /// Only local state changes, so it cannot fail halfway: a position the system
    /// cannot tell is read from the start.
    async fn reassign(&mut self, value: &Value) -> Completion {
        let Some(keys) = value
            .as_array()
            .map(|ks| {
                ks.iter()
                    .filter_map(Value::as_u64)
                    .map(|k| k as u32)
                    .collect::<Vec<u32>>()
            })
            .filter(|ks| !ks.is_empty() && ks.iter().all(|k| *k < self.keys))
        else {
            return Completion::error(true, value.clone(), "malformed assignment".into());
        };
        self.positions.clear();
        let mut resumed = Map::new();
        for key in &keys {
            if let Ok(Some(offset)) = self.api.committed(GROUP, *key).await {
                self.positions.insert(*key, offset);
                resumed.insert(key.to_string(), json!(offset));
            }
        }
        self.assigned = keys;
        Completion::ok(json!({"keys": value, "resumed": resumed}))
    }

    /// Commits this consumer's positions for its group, key by key. `ok` with the
    /// positions committed when all were; `info` when any outcome is unknown.
    async fn commit(&mut self) -> Completion {
        let mut committed = Map::new();
        let positions: Vec<(u32, u64)> = self.positions.iter().map(|(k, o)| (*k, *o)).collect();
        for (key, offset) in positions {
            if let Err(err) = self.api.commit(GROUP, key, offset).await {
                let definite = err.is_definite() && committed.is_empty();
                return Completion::error(definite, Value::Object(committed), err.to_string());
            }
            committed.insert(key.to_string(), json!(offset));
        }
        Completion::ok(Value::Object(committed))
    }

    /// Reads every key from offset 0 up to its end, retrying through errors until
    /// `budget` runs out. `ok` when every key was read to its end, else `info` with what
    /// was read.
    pub async fn final_read(&mut self, budget: Duration) -> Completion {
        let deadline = tokio::time::Instant::now() + budget;
        let mut all = Map::new();
        let mut last_error = String::from("no attempt");
        for key in 0..self.keys {
            let mut records: Vec<Value> = Vec::new();
            let mut offset = 0;
            loop {
                if tokio::time::Instant::now() >= deadline {
                    all.insert(key.to_string(), Value::Array(records));
                    let why = format!("final read did not finish: {last_error}");
                    return Completion::error(false, json!([["poll", Value::Object(all)]]), why);
                }
                match self.api.poll(key, offset, FINAL_POLL_MAX).await {
                    Ok(Records { records: batch, end }) => {
                        if batch.is_empty() && offset >= end {
                            break;
                        }
                        if let Some((last, _)) = batch.last() {
                            offset = last + 1;
                        }
                        records.extend(batch.iter().map(record_json));
                    }
                    Err(err) => {
                        last_error = err.to_string();
                        tokio::time::sleep(FINAL_RETRY).await;
                    }
                }
            }
            all.insert(key.to_string(), Value::Array(records));
        }
        Completion::ok(json!([["poll", Value::Object(all)]]))
    }
}

impl WorkloadClient for LogClient {
    fn invoke<'a>(&'a mut self, op: &'a Invocation) -> OpFuture<'a> {
        Box::pin(LogClient::invoke(self, op))
    }

    fn final_read(&mut self, budget: Duration) -> OpFuture<'_> {
        Box::pin(LogClient::final_read(self, budget))
    }

    fn reset(&mut self) {
        LogClient::reset(self);
    }
}

fn record_json((offset, value): &(u64, Vec<u8>)) -> Value {
    let decoded = std::str::from_utf8(value)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .map_or_else(
            || Value::String(String::from_utf8_lossy(value).into_owned()),
            Value::from,
        );
    json!([offset, decoded])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_carry_unique_values_and_keys_in_range() {
        let mut g = LogWorkload::default().log_generator(3);
        let ops: Vec<Invocation> = (0..300).map(|_| g.next_op()).collect();
        let values: Vec<i64> = ops
            .iter()
            .filter(|o| o.f == "send")
            .map(|o| o.value[0][2].as_i64().unwrap())
            .collect();
        assert_eq!(values, (0..values.len() as i64).collect::<Vec<_>>());
        assert!(ops
            .iter()
            .filter(|o| o.f == "send")
            .all(|o| o.value[0][1].as_u64().unwrap() < 3));
        assert!(ops.iter().any(|o| o.f == "poll"));
    }
}
