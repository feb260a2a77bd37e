//! The `log` workload (Kafka-like): processes send unique integers to keys (partitions)
//! and poll every key from their own positions; after healing, one process reads every key
//! from offset 0 (`final-poll`). The log analyses then look for lost writes and dirty reads.

use std::collections::BTreeMap;
use std::time::Duration;

use broker::kafka::{Acks, KafkaRequest, KafkaResponse};
use broker::{Client, ClientError, ErrorCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::{Completion, Invocation, Target};

/// Records per poll request.
const POLL_MAX: u32 = 100;
/// Wait between retries of the final read.
const FINAL_RETRY: Duration = Duration::from_millis(200);
/// How long an address that refused or timed out a connection is passed over, as a Kafka
/// client backs off a broker it cannot reach instead of paying a connect timeout per request.
const UNREACHABLE_FOR: Duration = Duration::from_millis(2_000);

/// The log workload's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogWorkload {
    /// Keys (partitions) written and read.
    pub keys: u32,
    /// Share of operations that are sends (the rest poll).
    pub send_share: f64,
    /// What producers ask of the broker.
    pub acks: Acks,
}

impl Default for LogWorkload {
    fn default() -> Self {
        Self {
            keys: 3,
            send_share: 0.6,
            acks: Acks::All,
        }
    }
}

impl LogWorkload {
    /// The generator of this run's operations, fixed by `seed`.
    pub fn generator(&self, seed: u64) -> LogGenerator {
        LogGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_value: 0,
            keys: self.keys.max(1),
            send_share: self.send_share,
        }
    }

    /// A client for one process.
    pub fn client(&self, target: Target, node: usize) -> LogClient {
        LogClient {
            target,
            node,
            acks: self.acks,
            keys: self.keys.max(1),
            leaders: BTreeMap::new(),
            connection: None,
            positions: BTreeMap::new(),
            unreachable: BTreeMap::new(),
        }
    }

    /// The analyses that judge this workload's histories.
    pub fn checks(&self) -> checker::Workload {
        checker::Workload::Log
    }
}

/// Hands out sends of 0, 1, 2, ... (unique for the run) to random keys, mixed with polls.
#[derive(Debug, Clone)]
pub struct LogGenerator {
    rng: ChaCha8Rng,
    next_value: i64,
    keys: u32,
    send_share: f64,
}

impl LogGenerator {
    /// The next operation.
    pub fn next_op(&mut self) -> Invocation {
        if self.rng.random_bool(self.send_share) {
            let key = self.rng.random_range(0..self.keys);
            let value = self.next_value;
            self.next_value += 1;
            Invocation {
                f: "send",
                value: json!([["send", key, value]]),
            }
        } else {
            Invocation {
                f: "poll",
                value: json!([["poll"]]),
            }
        }
    }
}

/// One process's producer and consumer.
#[derive(Debug)]
pub struct LogClient {
    target: Target,
    node: usize,
    acks: Acks,
    keys: u32,
    /// Where each key's leader is believed to be.
    leaders: BTreeMap<u32, String>,
    connection: Option<(String, Client)>,
    /// The next offset this consumer reads, per key.
    positions: BTreeMap<u32, u64>,
    /// Addresses that could not be reached, until when they are passed over.
    unreachable: BTreeMap<String, tokio::time::Instant>,
}

impl LogClient {
    /// Drops the connection (a retired process's thread starts afresh).
    pub fn reset(&mut self) {
        self.connection = None;
    }

    fn addr_for(&self, key: u32) -> String {
        let now = tokio::time::Instant::now();
        let reachable = |addr: &String| self.unreachable.get(addr).is_none_or(|until| *until <= now);
        if let Some(leader) = self.leaders.get(&key).filter(|a| reachable(a)) {
            return leader.clone();
        }
        let nodes = &self.target.nodes;
        (0..nodes.len())
            .map(|i| &nodes[(self.node + key as usize + i) % nodes.len()])
            .find(|a| reachable(a))
            .unwrap_or(&nodes[(self.node + key as usize) % nodes.len()])
            .clone()
    }

    async fn call(&mut self, key: u32, request: KafkaRequest) -> Result<KafkaResponse, ClientError> {
        let addr = self.addr_for(key);
        if self
            .connection
            .as_ref()
            .is_none_or(|(a, c)| *a != addr || c.is_broken())
        {
            match Client::connect(self.target.network.as_ref(), &addr, self.target.request_timeout).await {
                Ok(client) => self.connection = Some((addr, client)),
                Err(err) => {
                    self.unreachable
                        .insert(addr, tokio::time::Instant::now() + UNREACHABLE_FOR);
                    self.redirect(key, &err);
                    return Err(err);
                }
            }
        }
        let (_, client) = self.connection.as_mut().expect("connected above");
        let result = client.kafka(request).await;
        if let Err(err) = &result {
            self.redirect(key, err);
        }
        result
    }

    /// Follows a not-leader hint, or moves on to the next node for this key.
    fn redirect(&mut self, key: u32, err: &ClientError) {
        self.connection = None;
        match err.leader_hint() {
            Some(hint) => {
                self.leaders.insert(key, hint.to_string());
            }
            None => {
                let refused = matches!(err, ClientError::Broker { code, .. } if matches!(code, ErrorCode::NotLeader | ErrorCode::Unavailable));
                if refused || !err.is_definite() || matches!(err, ClientError::Connect { .. }) {
                    self.leaders.remove(&key);
                    self.node += 1;
                }
            }
        }
    }

    /// Performs a `send` or `poll` invocation.
    pub async fn invoke(&mut self, op: &Invocation) -> Completion {
        match op.f {
            "send" => self.send(&op.value).await,
            "poll" => self.poll().await,
            other => Completion::error(
                true,
                op.value.clone(),
                format!("log workload has no op '{other}'"),
            ),
        }
    }

    async fn send(&mut self, value: &Value) -> Completion {
        let (Some(key), Some(v)) = (value[0][1].as_u64(), value[0][2].as_i64()) else {
            return Completion::error(true, value.clone(), "malformed send".into());
        };
        let key = key as u32;
        let request = KafkaRequest::Produce {
            partition: key,
            value: v.to_string().into_bytes(),
            acks: self.acks,
        };
        match self.call(key, request).await {
            Ok(KafkaResponse::Produced { offset }) => Completion::ok(json!([["send", key, [offset, v]]])),
            Ok(other) => Completion::error(false, value.clone(), format!("unexpected reply {other:?}")),
            Err(err) => Completion::error(err.is_definite(), value.clone(), err.to_string()),
        }
    }

    async fn poll(&mut self) -> Completion {
        let mut seen = Map::new();
        let mut last_error = None;
        for key in 0..self.keys {
            let offset = self.positions.get(&key).copied().unwrap_or(0);
            match self.call(key, poll_request(key, offset)).await {
                Ok(KafkaResponse::Records { records, .. }) => {
                    if let Some((last, _)) = records.last() {
                        self.positions.insert(key, last + 1);
                    }
                    seen.insert(
                        key.to_string(),
                        Value::Array(records.iter().map(record_json).collect()),
                    );
                }
                Ok(other) => last_error = Some(format!("unexpected reply {other:?}")),
                Err(err) => last_error = Some(err.to_string()),
            }
        }
        match (seen.is_empty(), last_error) {
            // A read changes nothing, so a read that returned nothing certainly failed.
            (true, Some(error)) => Completion::error(true, json!([["poll"]]), error),
            _ => Completion::ok(json!([["poll", Value::Object(seen)]])),
        }
    }

    /// Reads every key from offset 0 up to the high watermark, retrying through errors
    /// until `budget` runs out. `ok` when every key was read to its end, else `info` with
    /// what was read.
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
                match self.call(key, poll_request(key, offset)).await {
                    Ok(KafkaResponse::Records { records: batch, hw }) => {
                        if batch.is_empty() && offset >= hw {
                            break;
                        }
                        if let Some((last, _)) = batch.last() {
                            offset = last + 1;
                        }
                        records.extend(batch.iter().map(record_json));
                    }
                    Ok(other) => last_error = format!("unexpected reply {other:?}"),
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

/// A consumer poll of `key` from `offset`, not waiting (the workload polls on its own clock).
fn poll_request(key: u32, offset: u64) -> KafkaRequest {
    KafkaRequest::Poll {
        partition: key,
        offset,
        max: POLL_MAX,
        wait_ms: 0,
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
        let mut g = LogWorkload::default().generator(3);
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
