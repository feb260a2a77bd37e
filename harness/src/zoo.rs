//! The bug zoo: for each unsafe knob of the broker, a recipe (mode, knob, workload, faults)
//! that must produce a known anomaly, and its safe counterpart (the same without the knob)
//! that must stay valid. `tumult zoo` runs each until caught, within a bound, to prove the
//! checker catches what the unsafe designs lose.

use std::time::Duration;

use broker::kafka::{Acks, TruncateTo};
use broker::mirrored::PartitionHandling;
use broker::{FsyncPolicy, Mode};
use serde::Serialize;

use crate::suite::{anomaly_line, run_anywhere, Stopwatch};
use crate::{FaultKind, FaultSet, FaultTarget, RunOutcome, Runtime, Store, TestSpec};

/// What a recipe must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Acknowledged messages missing from the final reads.
    Lost,
    /// Consumers read data that never became committed.
    DirtyRead,
}

impl Expect {
    /// The anomaly's name as the report shows it.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Lost => "lost",
            Expect::DirtyRead => "dirty-read",
        }
    }

    /// How many of the anomaly `outcome` shows.
    pub fn count(self, outcome: &RunOutcome) -> usize {
        let report = &outcome.report;
        match self {
            Expect::Lost => report
                .total_queue()
                .map(|q| q.lost_count)
                .or_else(|| report.log().map(|l| l.lost_count))
                .unwrap_or(0),
            Expect::DirtyRead => report.log().map_or(0, |l| l.dirty_read_count),
        }
    }
}

/// One unsafe design and how to catch it.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    /// Short name (`kafka-acks-1`).
    pub name: &'static str,
    /// The knob, as on the command line.
    pub knob: &'static str,
    /// The real-world failure it reproduces.
    pub story: &'static str,
    /// The anomaly it must produce.
    pub expect: Expect,
    /// The safe test (mode, faults) for a seed.
    base: fn(u64) -> TestSpec,
    /// Turns the knob on.
    unsafe_knob: fn(&mut TestSpec),
}

impl Recipe {
    /// The unsafe test for `seed`.
    pub fn unsafe_spec(&self, seed: u64) -> TestSpec {
        let mut spec = (self.base)(seed);
        (self.unsafe_knob)(&mut spec);
        spec
    }

    /// The same test with the knob off.
    pub fn safe_spec(&self, seed: u64) -> TestSpec {
        (self.base)(seed)
    }

    /// Whether the recipe's loss can happen on real processes. A real kill (SIGKILL) keeps
    /// the page cache, so a recipe that loses only what was never fsynced (fsync off or on
    /// an interval, truncation to the high watermark after a power loss) cannot be caught
    /// there, and would only be reported as a miss.
    pub fn runs_real(&self) -> bool {
        let spec = self.unsafe_spec(1);
        spec.fsync == FsyncPolicy::Always && spec.kafka.truncate_to != TruncateTo::HighWatermark
    }

    /// Whether the recipe's system runs in the simulation (a real product's recipe runs
    /// only with `--runtime real`).
    pub fn runs_sim(&self) -> bool {
        crate::systems::find(&self.unsafe_spec(1).system).is_ok_and(|s| s.simulated())
    }

    /// The system the recipe tests.
    pub fn system(&self) -> String {
        self.unsafe_spec(1).system
    }
}

fn faults(kinds: &[FaultKind]) -> FaultSet {
    FaultSet(kinds.to_vec())
}

fn single(seed: u64) -> TestSpec {
    TestSpec::new(seed)
}

/// `mode` with its defaults: one node for single, three otherwise, and the workload it runs.
pub(crate) fn defaults(mode: Mode, seed: u64) -> TestSpec {
    TestSpec {
        mode,
        nodes: if mode == Mode::Single { 1 } else { 3 },
        workload: if mode == Mode::Kafka { "log" } else { "queue" }.into(),
        ..TestSpec::new(seed)
    }
}

fn clustered(mode: Mode, seed: u64, kinds: &[FaultKind], target: FaultTarget) -> TestSpec {
    TestSpec {
        nemesis: faults(kinds),
        target,
        ..defaults(mode, seed)
    }
}

const KILL: &[FaultKind] = &[FaultKind::Kill];
const PARTITION: &[FaultKind] = &[FaultKind::Partition];
const KILL_PARTITION: &[FaultKind] = &[FaultKind::Kill, FaultKind::Partition];

/// Every recipe, one per unsafe knob and design.
pub fn recipes() -> Vec<Recipe> {
    vec![
        Recipe {
            name: "single-fsync-never",
            knob: "--fsync never",
            story: "a broker that confirms before its disk has the message (RabbitMQ without fsync, NATS JetStream's default sync interval) loses confirmed messages in a power loss",
            expect: Expect::Lost,
            base: single,
            unsafe_knob: |s| s.fsync = FsyncPolicy::Never,
        },
        Recipe {
            name: "single-fsync-interval",
            knob: "--fsync interval:2000",
            story: "periodic fsync loses what was confirmed since the last one",
            expect: Expect::Lost,
            base: single,
            unsafe_knob: |s| s.fsync = FsyncPolicy::Interval(2000),
        },
        Recipe {
            name: "single-non-durable",
            knob: "--durable false",
            story: "a transient (non-durable) RabbitMQ queue is gone after its node restarts",
            expect: Expect::Lost,
            base: single,
            unsafe_knob: |s| s.durable = false,
        },
        Recipe {
            name: "classic-non-durable",
            knob: "--durable false",
            story: "a classic cluster keeps a queue on its home node only: a non-durable queue dies with it",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Classic, seed, KILL, FaultTarget::All),
            unsafe_knob: |s| s.durable = false,
        },
        Recipe {
            name: "classic-fsync-never",
            knob: "--fsync never",
            story: "the home node confirms what its disk does not have",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Classic, seed, KILL, FaultTarget::All),
            unsafe_knob: |s| s.fsync = FsyncPolicy::Never,
        },
        Recipe {
            name: "mirrored-partition-ignore",
            knob: "--partition-handling ignore",
            story: "RabbitMQ mirrored queues with cluster_partition_handling=ignore: both sides of a partition promote a leader, and healing discards one side's messages",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Mirrored, seed, PARTITION, FaultTarget::One),
            unsafe_knob: |s| s.mirrored.partition_handling = PartitionHandling::Ignore,
        },
        Recipe {
            name: "mirrored-partition-autoheal",
            knob: "--partition-handling autoheal",
            story: "autoheal picks a winning side after the partition and restarts the losers, dropping what they confirmed meanwhile",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Mirrored, seed, PARTITION, FaultTarget::One),
            unsafe_knob: |s| s.mirrored.partition_handling = PartitionHandling::Autoheal,
        },
        Recipe {
            name: "mirrored-promote-unsynced",
            knob: "--promote-unsynced",
            story: "ha-promote-on-shutdown/failure=always: a mirror that lacks messages becomes leader and the rest are gone",
            expect: Expect::Lost,
            base: |seed| TestSpec {
                nemesis_interval_s: 3.0,
                time_limit_s: 60,
                ..clustered(Mode::Mirrored, seed, KILL, FaultTarget::One)
            },
            unsafe_knob: |s| s.mirrored.promote_unsynced = true,
        },
        Recipe {
            name: "quorum-fsync-never",
            knob: "--fsync never",
            story: "Raft replicas that acknowledge before fsync: a correlated crash of every replica loses committed entries",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Quorum, seed, KILL, FaultTarget::All),
            unsafe_knob: |s| s.fsync = FsyncPolicy::Never,
        },
        Recipe {
            name: "quorum-log-fsync-never",
            knob: "--fsync never",
            story: "a Raft-replicated log (Redpanda with write caching, NATS JetStream's default sync interval) that acknowledges before fsync: a crash of every replica at once loses committed records",
            expect: Expect::Lost,
            base: |seed| TestSpec {
                workload: "log".into(),
                ..clustered(Mode::Quorum, seed, KILL, FaultTarget::All)
            },
            unsafe_knob: |s| s.fsync = FsyncPolicy::Never,
        },
        Recipe {
            name: "kafka-acks-1",
            knob: "--acks 1",
            story: "Kafka with acks=1: the leader alone confirms, and a leader change truncates what followers never fetched",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Kafka, seed, KILL_PARTITION, FaultTarget::One),
            unsafe_knob: |s| s.acks = Acks::One,
        },
        Recipe {
            name: "kafka-acks-0",
            knob: "--acks 0",
            story: "Kafka with acks=0: fire and forget; the producer never learns whether, or where, a record landed",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Kafka, seed, KILL_PARTITION, FaultTarget::One),
            unsafe_knob: |s| s.acks = Acks::Zero,
        },
        Recipe {
            name: "kafka-read-uncommitted",
            knob: "--read-uncommitted",
            story: "consumers served past the high watermark read records a leader change then removes",
            expect: Expect::DirtyRead,
            base: |seed| clustered(Mode::Kafka, seed, KILL_PARTITION, FaultTarget::One),
            unsafe_knob: |s| s.kafka.read_uncommitted = true,
        },
        Recipe {
            name: "kafka-truncate-hw",
            knob: "--truncate-to hw",
            story: "Kafka before KIP-101 (0.11): replicas truncate to their high-watermark checkpoint and can cut committed records",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Kafka, seed, KILL, FaultTarget::All),
            unsafe_knob: |s| s.kafka.truncate_to = TruncateTo::HighWatermark,
        },
        Recipe {
            name: "kafka-unclean-election",
            knob: "--unclean-election (with --rf 2 --min-isr 1 --overlap)",
            story: "unclean.leader.election.enable: a replica outside the ISR becomes leader and the committed tail is lost",
            expect: Expect::Lost,
            base: |seed| {
                let mut s = clustered(Mode::Kafka, seed, KILL_PARTITION, FaultTarget::One);
                s.kafka.rf = 2;
                s.kafka.min_isr = 1;
                s.overlap = true;
                s
            },
            unsafe_knob: |s| s.kafka.unclean_election = true,
        },
        Recipe {
            name: "kafka-fsync-interval",
            knob: "--fsync interval:2000",
            story: "Kafka's default (flush by the OS, replication for safety) loses records when every replica crashes at once",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Kafka, seed, KILL, FaultTarget::All),
            unsafe_knob: |s| s.fsync = FsyncPolicy::Interval(2000),
        },
        Recipe {
            name: "rabbitmq-mirrored-partition-ignore",
            knob: "--mode mirrored --partition-handling ignore (against quorum queues)",
            story: "RabbitMQ 3.10's own mirrored queues under cluster_partition_handling=ignore: a mirror is promoted on the far side of a partition, the cluster stays split after it heals, and what one side confirmed is gone (Jepsen, 2014); quorum queues keep it. Real processes only",
            expect: Expect::Lost,
            base: |seed| TestSpec {
                system: "rabbitmq".into(),
                ..clustered(Mode::Quorum, seed, PARTITION, FaultTarget::One)
            },
            unsafe_knob: |s| {
                s.mode = Mode::Mirrored;
                s.mirrored.partition_handling = PartitionHandling::Ignore;
            },
        },
        Recipe {
            name: "nats-minority-damage",
            knob: "--nemesis kill,corrupt,truncate --target minority (against kill alone)",
            story: "NATS JetStream (Debian's 2.9.10) with a minority's message blocks cut short or flipped: the damaged replica rejoins, and acknowledged messages vanish from the stream (as Jepsen found in 2.12.1, 2025); kills alone lose nothing. Real processes only",
            expect: Expect::Lost,
            base: |seed| TestSpec {
                system: "nats".into(),
                workload: "log".into(),
                overlap: true,
                nemesis_interval_s: 4.0,
                ..clustered(Mode::Quorum, seed, KILL, FaultTarget::Minority)
            },
            unsafe_knob: |s| {
                s.nemesis = faults(&[FaultKind::Kill, FaultKind::Corrupt, FaultKind::Truncate]);
            },
        },
        Recipe {
            name: "kafka-fsync-never",
            knob: "--fsync never",
            story: "as above, never flushing at all (Redpanda's write caching, Kafka without flush)",
            expect: Expect::Lost,
            base: |seed| clustered(Mode::Kafka, seed, KILL, FaultTarget::All),
            unsafe_knob: |s| s.fsync = FsyncPolicy::Never,
        },
    ]
}

/// Bounds on the hunt for one recipe.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most seeds tried.
    pub seeds: u64,
    /// Most wall time spent.
    pub wall: Duration,
    /// Seeds of the safe counterpart run (each must be valid).
    pub safe_seeds: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            seeds: 50,
            wall: Duration::from_secs(60),
            safe_seeds: 3,
        }
    }
}

/// What the hunt for one recipe found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Caught {
    /// The recipe's name.
    pub recipe: String,
    /// The knob.
    pub knob: String,
    /// The anomaly it must produce.
    pub expect: Expect,
    /// The first seed whose run showed it, if any did.
    pub seed: Option<u64>,
    /// How many of the anomaly that run showed.
    pub count: usize,
    /// Seeds run before it was caught (or until the bound).
    pub seeds_tried: u64,
    /// Wall seconds spent.
    pub wall_s: f64,
    /// The catching run's anomalies, or the last run's.
    pub summary: String,
    /// The command that replays the catching run.
    pub replay: String,
    /// Safe counterpart: (seed, valid?, summary) for each seed run.
    pub safe: Vec<(u64, bool, String)>,
    /// The first seed of the hunt on which an invariant monitor saw a violation, with
    /// the monitor (`raft`, `kafka`), if one did: the monitors see a promise break before
    /// (or when) a history shows its loss.
    pub monitor: Option<(u64, String)>,
}

impl Caught {
    /// Caught within bounds, and the safe counterpart valid on every seed.
    pub fn passed(&self) -> bool {
        self.seed.is_some() && self.safe.iter().all(|(_, valid, _)| *valid)
    }
}

/// Runs `recipe` seed after seed until its anomaly shows or a bound is hit, then its safe
/// counterpart on the first seeds, in the simulation.
pub fn hunt(recipe: &Recipe, bounds: Bounds) -> Caught {
    // A simulated hunt stores nothing: the store is never written.
    hunt_on(recipe, bounds, Runtime::Sim, &Store::new("results"))
}

/// [`hunt`] in `runtime`; real runs are all stored in `store`.
pub fn hunt_on(recipe: &Recipe, bounds: Bounds, runtime: Runtime, store: &Store) -> Caught {
    let on = |spec: TestSpec| TestSpec { runtime, ..spec };
    let mut caught = Caught {
        recipe: recipe.name.into(),
        knob: recipe.knob.into(),
        expect: recipe.expect,
        seed: None,
        count: 0,
        seeds_tried: 0,
        wall_s: 0.0,
        summary: String::new(),
        replay: String::new(),
        safe: Vec::new(),
        monitor: None,
    };
    let watch = Stopwatch::start();
    for seed in 1..=bounds.seeds {
        let spec = on(recipe.unsafe_spec(seed));
        caught.seeds_tried = seed;
        caught.replay = spec.replay_command();
        match run_anywhere(&spec, store) {
            Ok(outcome) => {
                caught.summary = anomaly_line(&outcome);
                if caught.monitor.is_none() {
                    let first = outcome.report.monitors().and_then(|m| m.violations.first());
                    caught.monitor = first.map(|v| (seed, v.monitor.clone()));
                }
                let count = recipe.expect.count(&outcome);
                if count > 0 && outcome.report.valid == checker::Validity::False {
                    caught.seed = Some(seed);
                    caught.count = count;
                    break;
                }
            }
            Err(e) => caught.summary = format!("harness error: {e}"),
        }
        if watch.elapsed() >= bounds.wall {
            break;
        }
    }
    caught.wall_s = watch.elapsed().as_secs_f64();
    for seed in 1..=bounds.safe_seeds {
        let (valid, summary) = match run_anywhere(&on(recipe.safe_spec(seed)), store) {
            Ok(outcome) => (outcome.exit_code() == 0, anomaly_line(&outcome)),
            Err(e) => (false, format!("harness error: {e}")),
        };
        caught.safe.push((seed, valid, summary));
    }
    caught
}
