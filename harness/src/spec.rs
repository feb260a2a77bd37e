//! The test specification: every parameter of a run, saved as params.json, from which the
//! run (and its replay command) follows exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use broker::kafka::{Acks, KafkaSettings};
use broker::mirrored::MirrorSettings;
use broker::{FsyncPolicy, Mode};
use serde::{Deserialize, Serialize};
use workloads::{Registration, Setup, Workload};

/// The faults a nemesis can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Crash broker hosts (unsynced writes are lost), restart them after a while.
    Kill,
    /// Restart broker processes at once; the page cache survives.
    Restart,
    /// Stop broker hosts answering for a while, state intact.
    Pause,
    /// Cut the broker hosts' links in one of several shapes, heal later.
    Partition,
    /// Slow, lossy links for a while.
    Packet,
    /// Torn writes or I/O errors on a broker's disk.
    Disk,
    /// Silent corruption: a byte of a broker's files flipped when it reads them back.
    Corrupt,
    /// A broker's file cut short at rest: acknowledged, fsynced bytes gone.
    Truncate,
    /// A broker's disk replaced: it restarts with no state at all.
    Wipe,
    /// For a while, each new leader is killed or isolated soon after it takes over.
    LeaderChurn,
}

impl FaultKind {
    /// Every fault, with a one-line description.
    pub const ALL: &'static [(FaultKind, &'static str)] = &[
        (
            FaultKind::Kill,
            "crash the target brokers, losing unsynced writes, and restart them 1-5 s later",
        ),
        (
            FaultKind::Restart,
            "restart the target brokers' processes at once (the page cache survives)",
        ),
        (
            FaultKind::Pause,
            "hold every message to and from the target brokers for 1-5 s, then deliver them",
        ),
        (
            FaultKind::Partition,
            "for 2-8 s: random halves, the target isolated, a majorities ring, a bridge, or the target cut one way",
        ),
        (
            FaultKind::Packet,
            "for 2-8 s: 20-300 ms latency and up to 5% message loss on every link of the target brokers",
        ),
        (
            FaultKind::Disk,
            "one target broker's disk: its next write torn half-way, or EIO on 5-50% of operations for 1-4 s",
        ),
        (
            FaultKind::Corrupt,
            "restart one target broker with one byte of what it reads back flipped (not drawn by --swarm)",
        ),
        (
            FaultKind::Truncate,
            "restart one target broker with the first file it reads back cut short, fsynced bytes lost (not drawn by --swarm)",
        ),
        (
            FaultKind::LeaderChurn,
            "for 5-12 s: the current leader, then each new leader the brokers report, killed or isolated 0.2-1.5 s after it takes over (drawn by --swarm)",
        ),
        (
            FaultKind::Wipe,
            "restart one target broker with an empty disk, as after a disk replacement (--swarm draws it for quorum and kafka)",
        ),
    ];

    /// The name used on command lines.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Restart => "restart",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Packet => "packet",
            FaultKind::Disk => "disk",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Truncate => "truncate",
            FaultKind::Wipe => "wipe",
            FaultKind::LeaderChurn => "leader-churn",
        }
    }

    /// Whether the fault needs a cluster (links between brokers) to mean anything.
    pub fn needs_peers(self) -> bool {
        matches!(self, FaultKind::Partition | FaultKind::LeaderChurn)
    }

    /// Why the real runtime cannot make this fault yet, if it cannot.
    pub fn real_refusal(self) -> Option<&'static str> {
        match self {
            FaultKind::Kill
            | FaultKind::Restart
            | FaultKind::Pause
            | FaultKind::Partition
            | FaultKind::Corrupt
            | FaultKind::Truncate
            | FaultKind::Wipe
            | FaultKind::LeaderChurn
            // Loss alone: latency needs tc netem, which this kernel lacks (tumult doctor).
            | FaultKind::Packet => None,
            FaultKind::Disk => Some(
                "torn writes and I/O errors need a filesystem that injects them, which real runs do not have yet",
            ),
        }
    }
}

/// Which nodes a fault takes down together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// One random node.
    One,
    /// A random minority (at least one node).
    Minority,
    /// A random majority: the correlated failure (a rack losing power) that only fsync survives.
    Majority,
    /// Every node.
    All,
    /// The current leader of a random queue or partition, as the brokers' metadata says.
    Leader,
}

impl FaultTarget {
    /// Every target.
    pub const EVERY: [FaultTarget; 5] = [
        FaultTarget::One,
        FaultTarget::Minority,
        FaultTarget::Majority,
        FaultTarget::All,
        FaultTarget::Leader,
    ];

    /// How many of `nodes` the target takes.
    pub fn count(self, nodes: usize) -> usize {
        match self {
            FaultTarget::One => 1,
            FaultTarget::Minority => ((nodes - 1) / 2).max(1),
            FaultTarget::Majority => nodes / 2 + 1,
            FaultTarget::All => nodes,
            FaultTarget::Leader => 1,
        }
        .min(nodes)
    }

    /// The name used on command lines.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultTarget::One => "one",
            FaultTarget::Minority => "minority",
            FaultTarget::Majority => "majority",
            FaultTarget::All => "all",
            FaultTarget::Leader => "leader",
        }
    }
}

impl fmt::Display for FaultTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultTarget::EVERY
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown target '{s}' (expected one, minority, majority, all or leader)"))
    }
}

/// A comma-separated fault package, or `none`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultSet(pub Vec<FaultKind>);

impl FaultSet {
    /// True when the package holds `kind`.
    pub fn has(&self, kind: FaultKind) -> bool {
        self.0.contains(&kind)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<_> = self.0.iter().map(|k| k.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for FaultSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "none" {
            return Ok(FaultSet(Vec::new()));
        }
        let mut kinds = Vec::new();
        for name in s.split(',').map(str::trim) {
            let kind = FaultKind::ALL
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(k, _)| *k)
                .ok_or_else(|| {
                    let known: Vec<_> = FaultKind::ALL.iter().map(|(k, _)| k.as_str()).collect();
                    format!(
                        "unknown fault '{name}' (this build has: {}, or none)",
                        known.join(", ")
                    )
                })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.sort();
        Ok(FaultSet(kinds))
    }
}

/// The range of one-way message latencies on healthy links, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyRange {
    /// Fastest delivery.
    pub min_ms: u64,
    /// Slowest delivery.
    pub max_ms: u64,
}

impl Default for LatencyRange {
    fn default() -> Self {
        Self { min_ms: 1, max_ms: 5 }
    }
}

impl fmt::Display for LatencyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.min_ms, self.max_ms)
    }
}

impl FromStr for LatencyRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("latency '{s}' is not MIN..MAX in whole milliseconds (say 1..5)"))
        };
        let (min_ms, max_ms) = match s.split_once("..") {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(s)?, number(s)?),
        };
        if min_ms > max_ms {
            return Err(format!("latency '{s}': MIN is above MAX"));
        }
        Ok(Self { min_ms, max_ms })
    }
}

/// Every parameter of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSpec {
    /// The broker product under test, by its registered name (`tumult list`).
    #[serde(default = "default_system")]
    pub system: String,
    /// Broker design under test.
    pub mode: Mode,
    /// Broker nodes in the cluster.
    pub nodes: usize,
    /// Workload driving it, by its registered name (`tumult list`).
    pub workload: String,
    /// The workload's knobs that were set (the rest keep their defaults).
    #[serde(default)]
    pub knobs: BTreeMap<String, String>,
    /// Fault package.
    pub nemesis: FaultSet,
    /// Which nodes a kill takes down together.
    pub target: FaultTarget,
    /// Whether faults of different kinds may overlap (a kill during a partition).
    pub overlap: bool,
    /// The one seed every random choice derives from.
    pub seed: u64,
    /// Simulated seconds of workload under faults.
    pub time_limit_s: u64,
    /// Client processes running at once.
    pub concurrency: usize,
    /// Target operations per simulated second, over all processes.
    pub rate: f64,
    /// Broker fsync policy.
    pub fsync: FsyncPolicy,
    /// Whether queues survive their node's restart (single and classic modes).
    pub durable: bool,
    /// Mirrored-mode knobs.
    pub mirrored: MirrorSettings,
    /// Kafka-mode knobs.
    pub kafka: KafkaSettings,
    /// What the log workload's producers ask for.
    pub acks: Acks,
    /// Mean simulated seconds between faults.
    pub nemesis_interval_s: f64,
    /// Deadline of each client request, simulated milliseconds.
    pub request_timeout_ms: u64,
    /// Simulated seconds the cluster may take after healing to answer and agree on its
    /// leaders, and then again the final reads may take, before the run is declared a
    /// liveness failure.
    pub recovery_s: u64,
    /// One-way latency of healthy links.
    pub latency: LatencyRange,
    /// Stop starting new operations after this many (the final reads still run).
    pub ops_limit: Option<u64>,
    /// Play this fault schedule instead of drawing faults from the seed.
    pub schedule: Option<std::path::PathBuf>,
    /// Where the nodes live: simulated (the default) or real processes.
    #[serde(default)]
    pub runtime: Runtime,
    /// Whether invariant monitors check the brokers' state at every step (simulation
    /// only; see `monitor.rs`). They never change the run, only its verdict.
    #[serde(default = "monitors_by_default")]
    pub monitors: bool,
}

fn monitors_by_default() -> bool {
    true
}

fn default_system() -> String {
    crate::systems::DEFAULT.to_string()
}

/// Where a run's nodes live and how its faults are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// turmoil's simulation: deterministic, replayable byte for byte.
    #[default]
    Sim,
    /// Real `tumult-broker` processes, one per network namespace; faults by signals and
    /// iptables; wall-clock times.
    Real,
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Runtime::Sim => "sim",
            Runtime::Real => "real",
        })
    }
}

impl TestSpec {
    /// The defaults of `tumult test`, with the given seed.
    pub fn new(seed: u64) -> Self {
        Self {
            system: default_system(),
            mode: Mode::Single,
            nodes: 1,
            workload: "queue".into(),
            knobs: BTreeMap::new(),
            nemesis: FaultSet(vec![FaultKind::Kill]),
            target: FaultTarget::One,
            overlap: false,
            seed,
            time_limit_s: 30,
            concurrency: 5,
            rate: 50.0,
            fsync: FsyncPolicy::Always,
            durable: true,
            mirrored: MirrorSettings::default(),
            kafka: KafkaSettings::default(),
            acks: Acks::All,
            nemesis_interval_s: 8.0,
            request_timeout_ms: 1000,
            recovery_s: 30,
            latency: LatencyRange::default(),
            ops_limit: None,
            schedule: None,
            runtime: Runtime::Sim,
            monitors: true,
        }
    }

    /// Refuses parameters that cannot make a meaningful run.
    pub fn validate(&self) -> Result<(), String> {
        let registration = self.registration()?;
        self.build_workload_of(&registration)?;
        self.system_for(&registration)?;
        self.validate_without_workload()
    }

    /// Refuses parameters that cannot make a meaningful run, whatever the workload.
    pub fn validate_without_workload(&self) -> Result<(), String> {
        const TIME_LIMIT_S_MAX: u64 = 24 * 3600;
        // turmoil links every pair of hosts and visits every link for every host on every
        // tick, so a run's cost grows with the cube of its clients: 90 take 100 times as
        // long as 5. Above 100 a run takes minutes of wall time per simulated minute.
        const CONCURRENCY_MAX: usize = 100;
        const NODES_MAX: usize = 9;
        const LATENCY_MS_MAX: u64 = 10_000;
        if self.nodes == 0 || self.nodes > NODES_MAX {
            return Err(format!("--nodes must be 1..={NODES_MAX}"));
        }
        if !self.mode.is_clustered() && self.nodes != 1 {
            return Err(format!("mode {} runs exactly one node (--nodes 1)", self.mode));
        }
        if !self.durable && !matches!(self.mode, Mode::Single | Mode::Classic) {
            return Err(format!(
                "--durable false applies to modes single and classic, not {}",
                self.mode
            ));
        }
        if self.mode != Mode::Mirrored && self.mirrored != MirrorSettings::default() {
            return Err(format!(
                "--mirrors, --sync-mode, --promote-unsynced and --partition-handling apply to mode mirrored, not {}",
                self.mode
            ));
        }
        // A log in quorum mode (Raft-replicated streams) has partitions and replicas too,
        // and nothing else of kafka's.
        let log_quorum = self.mode == Mode::Quorum && self.drives_a_log();
        let kafka_only = if log_quorum {
            KafkaSettings {
                partitions: KafkaSettings::default().partitions,
                rf: KafkaSettings::default().rf,
                ..self.kafka
            }
        } else {
            self.kafka
        };
        if self.mode != Mode::Kafka && (kafka_only != KafkaSettings::default() || self.acks != Acks::All) {
            return Err(format!(
                "--acks, --partitions, --rf, --min-isr, --unclean-election, --truncate-to and --read-uncommitted apply to mode kafka (--partitions and --rf also to the log workload in mode quorum), not {}",
                self.mode
            ));
        }
        if log_quorum && (self.kafka.rf == 0 || self.kafka.rf > self.nodes || self.kafka.partitions == 0) {
            return Err(format!(
                "--rf must be 1..={} (the nodes) and --partitions at least 1",
                self.nodes
            ));
        }
        if self.mode == Mode::Kafka
            && (self.kafka.rf == 0 || self.kafka.rf > self.nodes || self.kafka.partitions == 0)
        {
            return Err(format!(
                "--rf must be 1..={} (the nodes) and --partitions at least 1",
                self.nodes
            ));
        }
        // Above rf no ISR can ever be large enough: every acks=all send would be refused,
        // and a run that acknowledges nothing has nothing to lose.
        if self.mode == Mode::Kafka && (self.kafka.min_isr == 0 || self.kafka.min_isr > self.kafka.rf) {
            return Err(format!(
                "--min-isr must be 1..={} (--rf): an ISR never holds more replicas than rf",
                self.kafka.rf
            ));
        }
        if self.runtime == Runtime::Real {
            if let Some((kind, why)) = self.nemesis.0.iter().find_map(|k| Some((k, k.real_refusal()?))) {
                return Err(format!(
                    "--runtime real cannot make the {} fault: {why}",
                    kind.as_str()
                ));
            }
        }
        if let Some(kind) = self.nemesis.0.iter().find(|k| k.needs_peers()) {
            if self.nodes < 2 {
                return Err(format!(
                    "the {} fault needs at least two nodes (--nodes)",
                    kind.as_str()
                ));
            }
        }
        if self.latency.max_ms > LATENCY_MS_MAX {
            return Err(format!("--latency must stay within 0..{LATENCY_MS_MAX} ms"));
        }
        if self.ops_limit == Some(0) {
            return Err("--ops-limit must be at least 1".into());
        }
        if self.time_limit_s == 0 || self.time_limit_s > TIME_LIMIT_S_MAX {
            return Err(format!("--time-limit must be 1..={TIME_LIMIT_S_MAX} seconds"));
        }
        if self.concurrency == 0 || self.concurrency > CONCURRENCY_MAX {
            return Err(format!(
                "--concurrency must be 1..={CONCURRENCY_MAX} (each client is a simulated host, and the simulation's cost grows with the cube of its hosts)"
            ));
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 100_000.0) {
            return Err("--rate must be a number of operations per second in (0, 100000]".into());
        }
        if !(self.nemesis_interval_s.is_finite() && self.nemesis_interval_s >= 0.1) {
            return Err("--nemesis-interval must be at least 0.1 seconds".into());
        }
        if self.request_timeout_ms == 0 {
            return Err("--request-timeout must be positive".into());
        }
        Ok(())
    }

    /// Whether the named workload drives a log (`Family::Log`): its partitions and
    /// replicas are knobs of the quorum mode too.
    fn drives_a_log(&self) -> bool {
        workloads::find(&self.workload).is_some_and(|r| r.family == workloads::Family::Log)
    }

    /// The registered workload this spec names.
    pub fn registration(&self) -> Result<Registration, String> {
        workloads::find(&self.workload).ok_or_else(|| {
            let known: Vec<&str> = workloads::registry().iter().map(|r| r.name).collect();
            format!(
                "unknown workload '{}' (this build has: {}; see tumult list)",
                self.workload,
                known.join(", ")
            )
        })
    }

    /// What the workload is told about the system under test.
    pub fn setup(&self) -> Setup {
        Setup {
            mode: self.mode,
            partitions: self.kafka.partitions,
            acks: self.acks,
        }
    }

    /// Builds the named workload from its knobs, refusing a mode it cannot drive.
    pub fn build_workload(&self) -> Result<Box<dyn Workload>, String> {
        self.build_workload_of(&self.registration()?)
    }

    /// Builds `registration`'s workload from this spec's knobs, refusing a mode it cannot
    /// drive.
    pub fn build_workload_of(&self, registration: &Registration) -> Result<Box<dyn Workload>, String> {
        if !registration.modes.contains(&self.mode) {
            let modes: Vec<String> = registration.modes.iter().map(|m| m.to_string()).collect();
            return Err(format!(
                "workload {} runs against mode {}, not {}",
                registration.name,
                modes.join(" or "),
                self.mode
            ));
        }
        registration
            .instantiate(&self.knobs, &self.setup())
            .map_err(|e| e.to_string())
    }

    /// The system this spec names, refusing one that cannot serve `registration`'s
    /// workload in this mode and runtime.
    pub fn system_for(
        &self,
        registration: &Registration,
    ) -> Result<std::rc::Rc<dyn crate::systems::System>, String> {
        let system = crate::systems::find(&self.system)?;
        match crate::systems::refusal(system.as_ref(), self, registration.family) {
            Some(why) => Err(why),
            None => Ok(system),
        }
    }

    /// The name runs of this shape are stored under: `<mode>-<workload>-<nemesis>`.
    pub fn test_name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.mode,
            self.workload,
            self.nemesis.to_string().replace(',', "+")
        )
    }

    /// The exact command that replays this run.
    pub fn replay_command(&self) -> String {
        format!("tumult test {}", self.args().join(" "))
    }

    /// The settings in which this run differs from `tumult test`'s defaults for its mode,
    /// workload and nemesis (which its test name already says), as `NAME=VALUE`: what
    /// tells apart two runs of the same test, e.g. `acks=1` and `acks=all`. The seed is
    /// left out.
    pub fn settings(&self) -> Vec<String> {
        let mut base = TestSpec::new(self.seed);
        base.mode = self.mode;
        base.nodes = if self.mode.is_clustered() { 3 } else { 1 };
        base.workload = self.workload.clone();
        base.nemesis = self.nemesis.clone();
        if self.mode == Mode::Kafka {
            base.kafka.rf = self.nodes.min(3);
        }
        let base = base.args();
        self.args()
            .into_iter()
            .filter(|arg| !base.contains(arg))
            .map(|arg| {
                let arg = arg.trim_start_matches('-');
                match arg.split_once(' ') {
                    Some((name, value)) => format!("{name}={value}"),
                    None => arg.to_string(),
                }
            })
            .collect()
    }

    /// The knobs a `tumult-broker` node takes from this spec, as its arguments: fsync,
    /// durability and the mode's own settings, spelt as `tumult test` spells them.
    pub fn broker_knob_args(&self) -> Vec<String> {
        const BROKER_KNOBS: [&str; 12] = [
            "--fsync",
            "--durable",
            "--mirrors",
            "--sync-mode",
            "--promote-unsynced",
            "--partition-handling",
            "--partitions",
            "--rf",
            "--min-isr",
            "--unclean-election",
            "--truncate-to",
            "--read-uncommitted",
        ];
        self.args()
            .iter()
            .filter(|arg| BROKER_KNOBS.contains(&arg.split(' ').next().unwrap_or("")))
            .flat_map(|arg| arg.split(' ').map(str::to_string).collect::<Vec<_>>())
            .collect()
    }

    /// The flags of [`Self::replay_command`], each `--name value` or `--name`.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        // The default system is left out, so that replay commands read as they always did.
        if self.system != crate::systems::DEFAULT {
            args.push(format!("--system {}", self.system));
        }
        args.extend([
            format!("--mode {}", self.mode),
            format!("--nodes {}", self.nodes),
            format!("--workload {}", self.workload),
            format!("--nemesis {}", self.nemesis),
            format!("--target {}", self.target),
            format!("--seed {}", self.seed),
            format!("--time-limit {}", self.time_limit_s),
            format!("--concurrency {}", self.concurrency),
            format!("--rate {}", self.rate),
            format!("--fsync {}", self.fsync),
        ]);
        for (name, value) in &self.knobs {
            args.push(format!("--knob {name}={value}"));
        }
        if self.overlap {
            args.push("--overlap".into());
        }
        if !self.monitors {
            args.push("--monitors false".into());
        }
        // Only the knobs of the run's mode: the others are refused for it anyway.
        match self.mode {
            Mode::Single | Mode::Classic => args.push(format!("--durable {}", self.durable)),
            Mode::Mirrored => {
                let mirrors = self.mirrored.mirrors.map_or("all".to_string(), |n| n.to_string());
                args.push(format!("--mirrors {mirrors}"));
                args.push(format!("--sync-mode {}", self.mirrored.sync));
                args.push(format!(
                    "--partition-handling {}",
                    self.mirrored.partition_handling
                ));
                if self.mirrored.promote_unsynced {
                    args.push("--promote-unsynced".into());
                }
            }
            Mode::Quorum if self.drives_a_log() => {
                args.push(format!("--partitions {}", self.kafka.partitions));
                args.push(format!("--rf {}", self.kafka.rf));
            }
            Mode::Kafka => {
                args.push(format!("--acks {}", self.acks));
                args.push(format!("--partitions {}", self.kafka.partitions));
                args.push(format!("--rf {}", self.kafka.rf));
                args.push(format!("--min-isr {}", self.kafka.min_isr));
                args.push(format!("--truncate-to {}", self.kafka.truncate_to));
                if self.kafka.unclean_election {
                    args.push("--unclean-election".into());
                }
                if self.kafka.read_uncommitted {
                    args.push("--read-uncommitted".into());
                }
            }
            Mode::Quorum => {}
        }
        args.push(format!("--nemesis-interval {}", self.nemesis_interval_s));
        args.push(format!("--request-timeout {}", self.request_timeout_ms));
        args.push(format!("--recovery {}", self.recovery_s));
        args.push(format!("--latency {}", self.latency));
        if let Some(ops) = self.ops_limit {
            args.push(format!("--ops-limit {ops}"));
        }
        if let Some(schedule) = &self.schedule {
            args.push(format!("--schedule {}", schedule.display()));
        }
        if self.runtime != Runtime::Sim {
            args.push(format!("--runtime {}", self.runtime));
        }
        args
    }
}

/// The sub-seed stream `--swarm` draws its profile from.
const STREAM_SWARM: u64 = 5;
/// The sub-seed stream `--swarm` draws disk replacements from.
const STREAM_SWARM_WIPE: u64 = 101;

impl TestSpec {
    /// Swarm testing: replaces the fault package, its interval, target and overlap, the
    /// links' latency and the client rate with a profile drawn from the seed, so that a
    /// sweep over seeds explores many fault mixes rather than one.
    pub fn swarm(mut self) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(derive_seed(self.seed, STREAM_SWARM));
        let usable: Vec<FaultKind> = FaultKind::ALL
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.nodes >= 2 || !k.needs_peers())
            // Silent corruption or loss of acknowledged, fsynced data is outside every
            // mode's fault model (each keeps one durable copy per leader, as RabbitMQ and
            // Kafka do); a sweep of the safe defaults must not count it against them.
            .filter(|k| {
                !matches!(
                    k,
                    FaultKind::Corrupt | FaultKind::Truncate | FaultKind::Wipe | FaultKind::LeaderChurn
                )
            })
            .filter(|k| self.runtime == Runtime::Sim || k.real_refusal().is_none())
            .collect();
        let mut kinds: Vec<FaultKind> = usable.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
        if kinds.is_empty() {
            kinds.push(usable[rng.random_range(0..usable.len())]);
        }
        self.nemesis = FaultSet(kinds);
        self.nemesis_interval_s = f64::from(rng.random_range(10..120u32)) / 10.0;
        self.target = FaultTarget::EVERY[rng.random_range(0..FaultTarget::EVERY.len())];
        self.overlap = self.nemesis.0.len() > 1 && rng.random_bool(0.5);
        let min_ms = rng.random_range(0..5);
        self.latency = LatencyRange {
            min_ms,
            max_ms: min_ms + rng.random_range(1..50),
        };
        self.rate = f64::from(rng.random_range(2..40u32)) * 5.0;
        // A disk replacement destroys one copy of everything: only a mode that keeps more
        // than one promises to survive it, and only one that tells a replaced disk from
        // the old one (quorum's Raft abstains, kafka registers directory ids). Mirrored
        // mode does not yet: a replaced node rejoins as if it still held its queues (see
        // docs/modes.md), so it is not drawn there. Drawn from a stream of its own, so that
        // the rest of every seed's profile is what it was before wipes were drawn.
        let mut wipes = rand_chacha::ChaCha8Rng::seed_from_u64(derive_seed(self.seed, STREAM_SWARM_WIPE));
        let survives_wipes = matches!(self.mode, Mode::Quorum | Mode::Kafka);
        if survives_wipes && self.nodes >= 3 && wipes.random_bool(0.3) {
            self.nemesis.0.push(FaultKind::Wipe);
            self.overlap = self.overlap || wipes.random_bool(0.5);
        }
        // Leader churn, likewise from a stream of its own, for every mode with leaders to
        // churn (more than one node).
        if self.nodes >= 2 && wipes.random_bool(0.3) {
            self.nemesis.0.push(FaultKind::LeaderChurn);
            self.overlap = self.overlap || wipes.random_bool(0.5);
        }
        self
    }
}

/// Derives an independent sub-seed for one consumer of randomness (splitmix64 finaliser),
/// so that adding a draw in one place does not shift every other choice of the run.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_sets_parse_dedupe_and_print_back() {
        let set: FaultSet = "kill,kill".parse().unwrap();
        assert_eq!(set.to_string(), "kill");
        let set: FaultSet = "partition,kill".parse().unwrap();
        assert_eq!(set.to_string(), "kill,partition");
        assert_eq!("none".parse::<FaultSet>().unwrap().to_string(), "none");
        assert!("kill,flood"
            .parse::<FaultSet>()
            .unwrap_err()
            .contains("unknown fault 'flood'"));
    }

    #[test]
    fn validation_refuses_empty_runs() {
        let mut spec = TestSpec::new(1);
        assert!(spec.validate().is_ok());
        spec.concurrency = 0;
        assert!(spec.validate().is_err());
        spec = TestSpec::new(1);
        spec.rate = f64::NAN;
        assert!(spec.validate().is_err());
        spec = TestSpec::new(1);
        spec.nodes = 3;
        assert!(spec.validate().unwrap_err().contains("exactly one node"));
        spec.mode = Mode::Quorum;
        assert!(spec.validate().is_ok());
        spec.durable = false;
        assert!(spec.validate().unwrap_err().contains("--durable false"));
        spec.durable = true;
        spec.mirrored.promote_unsynced = true;
        assert!(spec.validate().unwrap_err().contains("apply to mode mirrored"));
        spec.mode = Mode::Mirrored;
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn targets_take_the_right_share_of_nodes() {
        let counts = |n| {
            [
                FaultTarget::One,
                FaultTarget::Minority,
                FaultTarget::Majority,
                FaultTarget::All,
            ]
            .map(|t| t.count(n))
        };
        assert_eq!(counts(1), [1, 1, 1, 1]);
        assert_eq!(counts(3), [1, 1, 2, 3]);
        assert_eq!(counts(5), [1, 2, 3, 5]);
        assert_eq!("majority".parse::<FaultTarget>(), Ok(FaultTarget::Majority));
    }

    #[test]
    fn sub_seeds_differ_per_stream_and_per_seed() {
        assert_ne!(derive_seed(1, 1), derive_seed(1, 2));
        assert_ne!(derive_seed(1, 1), derive_seed(2, 1));
        assert_eq!(derive_seed(5, 3), derive_seed(5, 3));
    }
}
