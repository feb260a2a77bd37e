//! The `queue` workload (RabbitMQ-like): processes publish unique integers with publisher
//! confirms, take them with get + ack, and now and then take one and hand it back (nack
//! with requeue); at the end one process drains the queue. The total-queue analysis then
//! asks whether every acknowledged integer came out.

use std::time::Duration;

use broker::Mode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::{
    ApiError, Checks, Clients, Completion, Family, Generator, Invocation, Knob, KnobError, Knobs, OpFuture,
    QueueApi, Registration, Setup, Workload, WorkloadClient,
};

/// How the harness finds this workload.
pub(crate) const REGISTRATION: Registration = Registration {
    name: "queue",
    about: "unique integers published with confirms, taken with get+ack (some handed back with nack+requeue), then drained",
    family: Family::Queue,
    modes: &[Mode::Single, Mode::Classic, Mode::Mirrored, Mode::Quorum],
    knobs: &[
        Knob {
            name: "queue",
            default: "jepsen.queue",
            help: "the queue every process uses",
        },
        Knob {
            name: "enqueue-share",
            default: "0.6",
            help: "share of operations that publish (above 0.5 the queue keeps a backlog for a crash to lose)",
        },
        Knob {
            name: "requeue-share",
            default: "0.1",
            help: "share of the other operations that take a message and hand it back (nack, requeue) instead of acking it",
        },
    ],
    build,
};

fn build(knobs: &Knobs, _setup: &Setup) -> Result<Box<dyn Workload>, KnobError> {
    let queue = knobs.text("queue").to_string();
    if queue.is_empty() || queue.len() > 255 {
        return Err(knobs.invalid("queue", "must be 1 to 255 bytes".into()));
    }
    Ok(Box::new(QueueWorkload {
        queue,
        enqueue_share: knobs.share("enqueue-share")?,
        requeue_share: knobs.share("requeue-share")?,
    }))
}

/// The queue workload's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueWorkload {
    /// The queue every process uses.
    pub queue: String,
    /// Share of operations that are enqueues (the rest dequeue); above one half the queue
    /// keeps a backlog, so that a crash has something to lose.
    pub enqueue_share: f64,
    /// Share of the other operations that take a message and requeue it.
    pub requeue_share: f64,
}

impl Default for QueueWorkload {
    fn default() -> Self {
        Self {
            queue: "jepsen.queue".to_string(),
            enqueue_share: 0.6,
            requeue_share: 0.1,
        }
    }
}

impl QueueWorkload {
    /// The generator of this run's operations, fixed by `seed`.
    pub fn queue_generator(&self, seed: u64) -> QueueGenerator {
        QueueGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_value: 0,
            enqueue_share: self.enqueue_share,
            requeue_share: self.requeue_share,
        }
    }

    /// A client for one process, through `api`.
    pub fn queue_client(&self, api: Box<dyn QueueApi>) -> QueueClient {
        QueueClient {
            api,
            queue: self.queue.clone(),
        }
    }
}

impl Workload for QueueWorkload {
    fn names(&self) -> Vec<String> {
        vec![self.queue.clone()]
    }

    fn generator(&self, seed: u64) -> Box<dyn Generator> {
        Box::new(self.queue_generator(seed))
    }

    fn client(&self, clients: &dyn Clients, process: usize) -> Option<Box<dyn WorkloadClient>> {
        Some(Box::new(self.queue_client(clients.queue(process)?)))
    }

    fn final_read(&self) -> Invocation {
        Invocation {
            f: "drain",
            value: Value::Null,
        }
    }

    fn checks(&self) -> Checks {
        Checks {
            analyses: checker::Workload::Queue,
            allowed: Vec::new(),
        }
    }
}

/// Hands out operations: enqueues of 0, 1, 2, ... (unique for the run) mixed with dequeues
/// and requeues.
#[derive(Debug, Clone)]
pub struct QueueGenerator {
    rng: ChaCha8Rng,
    next_value: i64,
    enqueue_share: f64,
    requeue_share: f64,
}

impl Generator for QueueGenerator {
    fn next_op(&mut self) -> Invocation {
        if self.rng.random_bool(self.enqueue_share) {
            let value = self.next_value;
            self.next_value += 1;
            Invocation {
                f: "enqueue",
                value: json!(value),
            }
        } else if self.requeue_share > 0.0 && self.rng.random_bool(self.requeue_share) {
            Invocation {
                f: "requeue",
                value: Value::Null,
            }
        } else {
            Invocation {
                f: "dequeue",
                value: Value::Null,
            }
        }
    }
}

/// One process's client of the queue, through the system's [`QueueApi`].
pub struct QueueClient {
    api: Box<dyn QueueApi>,
    queue: String,
}

impl std::fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueClient").field("queue", &self.queue).finish()
    }
}

/// How long the drain waits before retrying after an error.
const DRAIN_RETRY: Duration = Duration::from_millis(200);

impl QueueClient {
    /// Drops the connection, so the next operation starts a fresh one (as a new process).
    pub fn reset(&mut self) {
        self.api.reset();
    }

    /// Performs an `enqueue`, `dequeue` or `requeue` invocation.
    pub async fn invoke(&mut self, op: &Invocation) -> Completion {
        match op.f {
            "enqueue" => self.enqueue(&op.value).await,
            "dequeue" => self.take(false).await,
            "requeue" => self.take(true).await,
            other => Completion::error(
                true,
                op.value.clone(),
                format!("queue workload has no op '{other}'"),
            ),
        }
    }

    async fn enqueue(&mut self, value: &Value) -> Completion {
        let body = value.to_string().into_bytes();
        match self.api.publish(&self.queue, body).await {
            Ok(()) => Completion::ok(value.clone()),
            Err(err) => failed(err, value.clone()),
        }
    }

    /// Takes one message and then acks it (a dequeue) or hands it back with a nack and
    /// requeue (a consumer that cannot process it now: the message stays in the queue, so
    /// the analysis does not count it as taken; the history records the value seen).
    async fn take(&mut self, requeue: bool) -> Completion {
        match self.api.get(&self.queue).await {
            Ok(None) => Completion::ok(Value::Null),
            Ok(Some(delivery)) => {
                // The consumer holds the message now, so the op happened whatever becomes
                // of the settlement: a lost ack only requeues the message (a duplicate),
                // and a lost nack changes nothing, since the broker requeues whatever a
                // closed connection held unacknowledged.
                let settled = match requeue {
                    false => self.api.ack(&self.queue, delivery.tag).await,
                    true => self.api.nack(&self.queue, delivery.tag).await,
                };
                if let Err(err) = settled {
                    tracing::debug!(%err, requeue, "settling a delivery failed; it will be redelivered");
                }
                Completion::ok(decode(&delivery.body))
            }
            Err(err) => failed(err, Value::Null),
        }
    }

    /// Takes every message until the queue reports empty, retrying through errors until
    /// `budget` (simulated time) runs out. Completes `ok` with all values taken, or `info`
    /// with the values taken so far if the queue was never seen empty.
    pub async fn drain(&mut self, budget: Duration) -> Completion {
        // `budget` bounds the time without progress, not the whole drain: a long queue
        // behind slow links drains slowly, and that is not a cluster failing to recover.
        // A drain still going after ten budgets is stopped all the same.
        let started = tokio::time::Instant::now();
        let cap = started + budget * 10;
        let mut deadline = started + budget;
        let mut values = Vec::new();
        let mut last_error = String::from("no attempt");
        loop {
            let now = tokio::time::Instant::now();
            if now >= cap {
                let message = format!("drain did not finish: still receiving after {:?}", budget * 10);
                return Completion::error(false, Value::Array(values), message);
            }
            if now >= deadline {
                let message = format!("drain did not finish: nothing received for {budget:?}: {last_error}");
                return Completion::error(false, Value::Array(values), message);
            }
            let step = match self.api.get(&self.queue).await {
                Ok(Some(delivery)) => {
                    values.push(decode(&delivery.body));
                    deadline = tokio::time::Instant::now() + budget;
                    self.api.ack(&self.queue, delivery.tag).await
                }
                Ok(None) => return Completion::ok(Value::Array(values)),
                Err(err) => Err(err),
            };
            if let Err(err) = step {
                last_error = err.to_string();
                self.api.reset();
                tokio::time::sleep(DRAIN_RETRY).await;
            }
        }
    }
}

/// The completion of an op whose call failed: `fail` only when it certainly did not
/// take effect.
fn failed(err: ApiError, value: Value) -> Completion {
    Completion::error(err.is_definite(), value, err.to_string())
}

impl WorkloadClient for QueueClient {
    fn invoke<'a>(&'a mut self, op: &'a Invocation) -> OpFuture<'a> {
        Box::pin(QueueClient::invoke(self, op))
    }

    fn final_read(&mut self, budget: Duration) -> OpFuture<'_> {
        Box::pin(self.drain(budget))
    }

    fn reset(&mut self) {
        QueueClient::reset(self);
    }
}

/// Bodies are the decimal text of the value; anything else is kept as text so the checker
/// can report it as unexpected.
fn decode(body: &[u8]) -> Value {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .map_or_else(
            || Value::String(String::from_utf8_lossy(body).into_owned()),
            Value::from,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_fixed_by_its_seed_and_values_are_unique() {
        let workload = QueueWorkload::default();
        let a: Vec<_> = (0..200)
            .map({
                let mut g = workload.queue_generator(9);
                move |_| g.next_op()
            })
            .collect();
        let b: Vec<_> = (0..200)
            .map({
                let mut g = workload.queue_generator(9);
                move |_| g.next_op()
            })
            .collect();
        assert_eq!(a, b);
        let enqueued: Vec<i64> = a
            .iter()
            .filter(|op| op.f == "enqueue")
            .filter_map(|op| op.value.as_i64())
            .collect();
        let expected: Vec<i64> = (0..enqueued.len() as i64).collect();
        assert_eq!(
            enqueued, expected,
            "values count up from 0 without gaps or repeats"
        );
        assert!(
            enqueued.len() > 80 && enqueued.len() < 160,
            "about 60% enqueues: {}",
            enqueued.len()
        );
    }

    #[test]
    fn bodies_decode_to_integers_or_stay_visible_as_text() {
        assert_eq!(decode(b"42"), json!(42));
        assert_eq!(decode(b"x\xff"), json!("x\u{fffd}"));
    }
}
