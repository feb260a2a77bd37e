//! Broker configuration: the mode, where to listen and store, and the durability knobs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::kafka::KafkaSettings;

use crate::codec::FRAME_BYTES_MAX_DEFAULT;

/// Which high-availability design the broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One node, no replication (a single RabbitMQ node).
    Single,
    /// RabbitMQ classic cluster: each queue lives on one home node, the others proxy to it;
    /// home down means the queue is unavailable.
    Classic,
    /// RabbitMQ mirrored queues: a leader and mirrors, confirm once every mirror has it,
    /// the oldest synchronised mirror promoted when the leader is lost.
    Mirrored,
    /// A Raft-replicated log per queue (RabbitMQ quorum queues): majority commit, each
    /// replica fsyncs before it acknowledges.
    Quorum,
    /// Kafka: partitions replicated leader-to-follower by fetch, ISR and high watermark,
    /// leaders elected by a Raft-replicated controller (KRaft).
    Kafka,
}

impl Mode {
    /// Every mode this build implements, with a one-line description.
    pub const ALL: &'static [(Mode, &'static str)] = &[
        (Mode::Single, "one node, no replication"),
        (
            Mode::Classic,
            "each queue on one home node, the others proxy; home down = unavailable",
        ),
        (
            Mode::Mirrored,
            "a leader and mirrors per queue; the oldest synchronised mirror takes over",
        ),
        (
            Mode::Kafka,
            "partitions with leader and fetching followers, ISR, high watermark, KRaft controller",
        ),
        (
            Mode::Quorum,
            "a Raft group per queue, or per partition of the log: majority commit, fsync before acknowledging",
        ),
    ];

    /// True for the modes whose nodes form a cluster (more than one node).
    pub fn is_clustered(self) -> bool {
        !matches!(self, Mode::Single)
    }

    /// The name used on command lines and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Classic => "classic",
            Mode::Mirrored => "mirrored",
            Mode::Quorum => "quorum",
            Mode::Kafka => "kafka",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .iter()
            .find(|(mode, _)| mode.as_str() == s)
            .map(|(mode, _)| *mode)
            .ok_or_else(|| {
                let known: Vec<_> = Mode::ALL.iter().map(|(m, _)| m.as_str()).collect();
                format!("unknown mode '{s}' (this build has: {})", known.join(", "))
            })
    }
}

/// When a write is made durable before it is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync every record before confirming it (safe).
    Always,
    /// fsync at most every this many milliseconds (as Kafka's log.flush.interval.ms); a crash
    /// loses up to that much of what was confirmed (unsafe knob).
    Interval(u64),
    /// Never fsync; a crash loses whatever the OS had not written back (unsafe knob).
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(ms) => write!(f, "interval:{ms}"),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => other
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(FsyncPolicy::Interval)
                .ok_or_else(|| {
                    format!("unknown fsync policy '{other}' (expected always, interval:MS or never)")
                }),
        }
    }
}

/// Limits that keep one client from exhausting the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame accepted or sent.
    pub frame_bytes_max: usize,
    /// Most queues one broker holds.
    pub queues_max: usize,
    /// Most messages (ready and unacknowledged) one queue holds.
    pub queue_messages_max: usize,
    /// Largest message body; small enough that its delivery always fits in a frame.
    pub message_bytes_max: usize,
    /// Longest queue name.
    pub queue_name_bytes_max: usize,
    /// Most concurrent client connections.
    pub connections_max: usize,
    /// A connection that sends nothing for this long is closed and its deliveries requeued
    /// (AMQP's heartbeat timeout): a peer that vanished behind a partition never says goodbye.
    pub idle_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            queues_max: 1024,
            queue_messages_max: 1_000_000,
            // A body travels as a JSON array of byte values: up to four characters a byte.
            message_bytes_max: FRAME_BYTES_MAX_DEFAULT / 5,
            queue_name_bytes_max: 255,
            connections_max: 1024,
            idle_timeout_ms: 5_000,
        }
    }
}

/// Everything a broker node needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerConfig {
    /// The design to run.
    pub mode: Mode,
    /// This node's id in its cluster (unique, from 1).
    pub id: u64,
    /// The other nodes of the cluster: id -> `host:port`.
    pub peers: BTreeMap<u64, String>,
    /// Milliseconds per tick of the replication protocols' clocks.
    pub tick_ms: u64,
    /// `host:port` to listen on.
    pub listen: String,
    /// Directory for the node's durable state.
    pub data_dir: PathBuf,
    /// Durability of confirmed writes.
    pub fsync: FsyncPolicy,
    /// Whether queues survive a restart of their node (classic and single modes).
    pub durable: bool,
    /// Mirrored-mode knobs.
    pub mirrored: MirrorSettings,
    /// Kafka-mode knobs.
    pub kafka: KafkaSettings,
    /// Resource limits.
    pub limits: Limits,
}

impl BrokerConfig {
    /// Every node of the cluster, this one included, in ascending order of id.
    pub fn members(&self) -> Vec<u64> {
        let mut members: Vec<u64> = self.peers.keys().copied().chain([self.id]).collect();
        members.sort_unstable();
        members.dedup();
        members
    }

    /// A single-node configuration with safe defaults.
    pub fn single(listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            mode: Mode::Single,
            id: 1,
            peers: BTreeMap::new(),
            tick_ms: 10,
            listen: listen.into(),
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            durable: true,
            mirrored: MirrorSettings::default(),
            kafka: KafkaSettings::default(),
            limits: Limits::default(),
        }
    }
}

/// Parses `2=host:port,3=host:port` into a peer map.
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("peer '{item}' is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("peer id '{id}' is not a number"))?;
        if id == 0 {
            return Err("peer ids start at 1".into());
        }
        if peers.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("peer {id} given twice"));
        }
    }
    Ok(peers)
}

// ----- mirrored mode's knobs -----

/// How a new or rejoining mirror gets the messages already in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// It does not (RabbitMQ's default): it receives only new messages, and counts as
    /// synchronised only once every older message has been consumed.
    Manual,
    /// The leader sends it the whole queue when it joins.
    Automatic,
}

/// What a node does when it cannot see a majority of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionHandling {
    /// Keep serving on both sides (unsafe: two leaders; the side that loses on heal
    /// discards what it confirmed).
    Ignore,
    /// Nodes in a minority stop serving until they see a majority again (safe).
    PauseMinority,
    /// Keep serving on both sides, and on heal restart the losing side automatically
    /// (unsafe in the same way as ignore; here both heal automatically).
    Autoheal,
}

/// The mirrored-mode knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSettings {
    /// Mirrors besides the leader; `None` mirrors to every node.
    pub mirrors: Option<usize>,
    /// How joining mirrors are filled.
    pub sync: SyncMode,
    /// Whether a mirror that lacks messages may be promoted (unsafe).
    pub promote_unsynced: bool,
    /// Behaviour without a majority.
    pub partition_handling: PartitionHandling,
}

impl Default for MirrorSettings {
    fn default() -> Self {
        Self {
            mirrors: None,
            sync: SyncMode::Manual,
            promote_unsynced: false,
            partition_handling: PartitionHandling::PauseMinority,
        }
    }
}

macro_rules! named {
    ($ty:ty, $what:literal, $($variant:path => $name:literal),+) => {
        impl $ty {
            /// The name used on command lines.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($variant),)+
                    other => Err(format!(concat!("unknown ", $what, " '{}' (expected ", $($name, " "),+, ")"), other)),
                }
            }
        }
    };
}

named!(SyncMode, "sync mode", SyncMode::Manual => "manual", SyncMode::Automatic => "automatic");
named!(PartitionHandling, "partition handling",
    PartitionHandling::Ignore => "ignore",
    PartitionHandling::PauseMinority => "pause-minority",
    PartitionHandling::Autoheal => "autoheal");

/// `--mirrors`: `all`, or a count of mirrors besides the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorCount(pub Option<usize>);

impl FromStr for MirrorCount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "all" => Ok(MirrorCount(None)),
            n => n
                .parse()
                .map(|n| MirrorCount(Some(n)))
                .map_err(|_| format!("--mirrors takes 'all' or a number, not '{n}'")),
        }
    }
}

impl fmt::Display for MirrorCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("all"),
            Some(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_knobs_parse_and_print_back() {
        assert_eq!(
            "pause-minority".parse::<PartitionHandling>(),
            Ok(PartitionHandling::PauseMinority)
        );
        assert_eq!(PartitionHandling::Autoheal.to_string(), "autoheal");
        assert!("sometimes".parse::<SyncMode>().unwrap_err().contains("manual"));
        assert_eq!("all".parse(), Ok(MirrorCount(None)));
        assert_eq!("1".parse(), Ok(MirrorCount(Some(1))));
        assert_eq!(MirrorCount(Some(2)).to_string(), "2");
        assert!("x".parse::<MirrorCount>().is_err());
    }
}
