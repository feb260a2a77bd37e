//! `tumult bench systems`: publish throughput and confirm latency of real clusters, side by
//! side in one run on this machine: tumult-broker (quorum queue, kafka log), RabbitMQ
//! (quorum queue, mirrored classic queue) and NATS JetStream (an R3 stream). Every
//! contender gets the same cluster size, the same producers (each publishing one message
//! at a time and waiting for its confirm), the same message size and fsync on where the
//! product has it; each runs alone, one after another, in rounds that interleave them, so
//! that a noisy neighbour hurts all of them alike.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use broker::kafka::Acks;
use broker::{FsyncPolicy, Mode};
use workloads::{Family, LogApi, QueueApi};

use crate::bench::wall_now;
use crate::run::{interrupted, HarnessError, RealCluster};
use crate::spec::TestSpec;
use crate::systems::System;

/// One system in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contender {
    /// The system's name (`--system`).
    pub system: &'static str,
    /// Its design (`--mode`).
    pub mode: Mode,
}

impl std::fmt::Display for Contender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.system, self.mode)
    }
}

/// The contenders the issue asks for, in the order they are printed.
pub const CONTENDERS: [Contender; 5] = [
    Contender {
        system: "tumult-broker",
        mode: Mode::Quorum,
    },
    Contender {
        system: "tumult-broker",
        mode: Mode::Kafka,
    },
    Contender {
        system: "rabbitmq",
        mode: Mode::Quorum,
    },
    Contender {
        system: "rabbitmq",
        mode: Mode::Mirrored,
    },
    Contender {
        system: "nats",
        mode: Mode::Quorum,
    },
];

/// What the ratios are taken against: RabbitMQ's quorum queue.
pub const BASELINE: Contender = CONTENDERS[2];

/// The contender named `system:mode`, for `--only`.
pub fn parse_contender(text: &str) -> Result<Contender, String> {
    CONTENDERS
        .iter()
        .copied()
        .find(|c| c.to_string() == text)
        .ok_or_else(|| {
            let known: Vec<String> = CONTENDERS.iter().map(Contender::to_string).collect();
            format!("unknown contender '{text}' (known: {})", known.join(", "))
        })
}

/// The load every contender gets.
#[derive(Debug, Clone)]
pub struct Load {
    /// Nodes in each cluster.
    pub nodes: usize,
    /// Concurrent producers, each with its own connection, spread over the nodes.
    pub producers: usize,
    /// Bytes per message.
    pub size: usize,
    /// Publishing before the measurement starts (connections, leaders, caches).
    pub warmup: Duration,
    /// How long the measurement lasts.
    pub measure: Duration,
    /// How long a publish may wait for its confirm before it counts as an error.
    pub request_timeout: Duration,
}

/// What one contender did in the measured window.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Publishes confirmed in the window.
    pub confirmed: u64,
    /// Publishes that failed or timed out in the window.
    pub errors: u64,
    /// The length of the window (summed over rounds).
    pub window: Duration,
    /// Each confirmed publish's latency, in microseconds.
    pub latencies_us: Vec<u64>,
    /// The errors by their message, counted.
    pub error_kinds: std::collections::BTreeMap<String, u64>,
}

impl Measured {
    /// Confirmed publishes per second.
    pub fn rate(&self) -> f64 {
        self.confirmed as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of confirm latency in milliseconds (nearest rank), `None`
    /// with no confirmed publish.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, last + 1) - 1;
        Some(sorted[rank] as f64 / 1000.0)
    }

    /// Adds another round's figures.
    pub fn absorb(&mut self, other: Measured) {
        self.confirmed += other.confirmed;
        self.errors += other.errors;
        self.window += other.window;
        self.latencies_us.extend(other.latencies_us);
        for (kind, n) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += n;
        }
    }
}

/// The spec a contender's cluster is started from: fsync on, acks=all.
pub fn contender_spec(contender: Contender, load: &Load) -> TestSpec {
    let mut spec = TestSpec::new(1);
    spec.system = contender.system.to_string();
    spec.mode = contender.mode;
    spec.runtime = crate::Runtime::Real;
    spec.nodes = load.nodes;
    spec.fsync = FsyncPolicy::Always;
    spec.acks = Acks::All;
    spec.request_timeout_ms = load.request_timeout.as_millis() as u64;
    spec
}

/// The family a contender is driven through: the queue where it serves one, else the log.
fn family_of(system: &dyn System, mode: Mode) -> Family {
    if system.serves(Family::Queue, mode) {
        Family::Queue
    } else {
        Family::Log
    }
}

/// Starts `contender` as a real cluster under `dir`, runs `load` against it and stops it.
pub fn measure(contender: Contender, load: &Load, dir: &Path) -> Result<Measured, HarnessError> {
    let system = crate::systems::find(contender.system).map_err(HarnessError::Spec)?;
    let family = family_of(system.as_ref(), contender.mode);
    let mut spec = contender_spec(contender, load);
    spec.workload = match family {
        Family::Queue => "queue",
        Family::Log => "log",
    }
    .to_string();
    if contender.mode == Mode::Kafka || family == Family::Log {
        spec.kafka.rf = load.nodes.min(3);
        spec.kafka.min_isr = spec.kafka.rf.min(2);
    }
    spec.validate_without_workload().map_err(HarnessError::Spec)?;
    if let Some(why) = crate::systems::refusal(system.as_ref(), &spec, family) {
        return Err(HarnessError::Spec(why));
    }
    crate::real::require(system.as_ref()).map_err(HarnessError::Spec)?;
    let workload = spec.build_workload().map_err(HarnessError::Spec)?;
    let names = workload.names();
    let cluster = RealCluster::start(&spec, system.as_ref(), dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HarnessError::Spec(format!("cannot start the client runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    let measured = local.block_on(&runtime, async {
        tokio::select! {
            measured = drive(&spec, system.as_ref(), family, &cluster, &names, load) => measured,
            signal = interrupted() => Err(HarnessError::Spec(format!(
                "interrupted by {signal}; the nodes and the network were removed"
            ))),
        }
    });
    cluster.stop();
    measured
}

/// Forms the cluster, then runs the producers through the warm-up and the window.
async fn drive(
    spec: &TestSpec,
    system: &dyn System,
    family: Family,
    cluster: &RealCluster,
    names: &[String],
    load: &Load,
) -> Result<Measured, HarnessError> {
    let reach = cluster.reach(spec);
    cluster.form(spec, system, &reach, names).await?;
    let clients = system.clients(&reach);
    let target = names
        .first()
        .cloned()
        .ok_or_else(|| HarnessError::Spec("the workload names nothing to publish to".into()))?;
    let key: u32 = target.parse().unwrap_or(0);
    let started = wall_now();
    let window_start = started + load.warmup;
    let window_end = window_start + load.measure;
    let measured = Rc::new(RefCell::new(Measured {
        window: load.measure,
        ..Measured::default()
    }));
    let mut producers = Vec::with_capacity(load.producers);
    for producer in 0..load.producers {
        let measured = Rc::clone(&measured);
        let target = target.clone();
        let size = load.size;
        let client = match family {
            Family::Queue => clients.queue(producer).map(Publisher::Queue),
            Family::Log => clients.log(producer).map(Publisher::Log),
        };
        let Some(mut client) = client else {
            return Err(HarnessError::Spec(format!(
                "system {} has no {family} client",
                system.name()
            )));
        };
        producers.push(tokio::task::spawn_local(async move {
            let mut sequence = 0u64;
            loop {
                let began = wall_now();
                if began >= window_end {
                    break;
                }
                sequence += 1;
                let body = message(producer, sequence, size);
                let outcome = match &mut client {
                    Publisher::Queue(queue) => queue.publish(&target, body).await,
                    Publisher::Log(log) => log.send(key, body, Acks::All).await.map(|_| ()),
                };
                let ended = wall_now();
                if began < window_start || ended > window_end {
                    // Outside the window, as a whole: neither counted nor timed.
                    if outcome.is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
                let failed = outcome.is_err();
                {
                    let mut measured = measured.borrow_mut();
                    match outcome {
                        Ok(()) => {
                            measured.confirmed += 1;
                            measured.latencies_us.push((ended - began).as_micros() as u64);
                        }
                        Err(e) => {
                            measured.errors += 1;
                            *measured
                                .error_kinds
                                .entry(error_kind(&e.to_string()))
                                .or_default() += 1;
                        }
                    }
                }
                if failed {
                    // A failing cluster is not hammered in a tight loop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for producer in producers {
        producer
            .await
            .map_err(|e| HarnessError::Spec(format!("a producer failed: {e}")))?;
    }
    let measured = measured.borrow().clone();
    Ok(measured)
}

/// An error message with its digits blanked, so that errors differing only in an offset,
/// an address or a duration count as one kind.
fn error_kind(message: &str) -> String {
    let mut kind = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !kind.ends_with('#') {
                kind.push('#');
            }
        } else {
            kind.push(c);
        }
    }
    kind
}

/// One producer's client, of the family its contender is driven through.
enum Publisher {
    Queue(Box<dyn QueueApi>),
    Log(Box<dyn LogApi>),
}

/// A message of exactly `size` bytes (at least its label), different for every publish.
fn message(producer: usize, sequence: u64, size: usize) -> Vec<u8> {
    let mut body = format!("{producer}-{sequence}-").into_bytes();
    body.resize(size.max(body.len()), b'x');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_and_rounds_add_up() {
        let mut m = Measured {
            confirmed: 4,
            errors: 1,
            window: Duration::from_secs(2),
            latencies_us: vec![4000, 1000, 3000, 2000],
            error_kinds: Default::default(),
        };
        assert_eq!(m.rate(), 2.0);
        assert_eq!(m.latency_ms(0.5), Some(2.0));
        assert_eq!(m.latency_ms(0.99), Some(4.0));
        assert_eq!(m.latency_ms(0.0), Some(1.0));
        m.absorb(Measured {
            confirmed: 2,
            errors: 0,
            window: Duration::from_secs(1),
            latencies_us: vec![5000, 6000],
            error_kinds: [("timeout".to_string(), 2)].into(),
        });
        m.absorb(Measured {
            error_kinds: [("timeout".to_string(), 1)].into(),
            ..Measured::default()
        });
        assert_eq!(m.error_kinds["timeout"], 3);
        assert_eq!((m.confirmed, m.errors, m.window), (6, 1, Duration::from_secs(3)));
        assert_eq!(m.latency_ms(1.0), Some(6.0));
        assert_eq!(Measured::default().latency_ms(0.5), None);
    }

    #[test]
    fn contenders_parse_by_name_and_messages_have_the_asked_size() {
        assert_eq!(parse_contender("nats:quorum"), Ok(CONTENDERS[4]));
        assert_eq!(BASELINE.to_string(), "rabbitmq:quorum");
        let err = parse_contender("kafka:kafka").expect_err("no such contender");
        assert!(err.contains("rabbitmq:mirrored"), "{err}");
        assert_eq!(message(3, 17, 1024).len(), 1024);
        assert_eq!(message(3, 17, 2), b"3-17-".to_vec());
        assert_ne!(message(1, 1, 64), message(1, 2, 64));
        assert_eq!(
            error_kind("send to 10.2.1.11:7000: no answer in 1000 ms"),
            "send to #.#.#.#:#: no answer in # ms"
        );
    }

    #[test]
    fn every_contender_is_a_system_that_serves_it() {
        let load = Load {
            nodes: 3,
            producers: 1,
            size: 8,
            warmup: Duration::ZERO,
            measure: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        };
        for contender in CONTENDERS {
            let system = crate::systems::find(contender.system).expect("registered");
            let family = family_of(system.as_ref(), contender.mode);
            let mut spec = contender_spec(contender, &load);
            spec.workload = family.to_string();
            assert_eq!(
                crate::systems::refusal(system.as_ref(), &spec, family),
                None,
                "{contender}"
            );
        }
    }
}
