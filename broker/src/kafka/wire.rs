//! Kafka-mode requests and responses, and the mode's knobs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::metadata::{MetaCommand, PartitionId};
use super::partition::{Epoch, Offset, Record, TruncateTo};

/// How many replicas must have a record before the producer is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    /// None: answered at once (unsafe).
    Zero,
    /// The leader's log only (unsafe: a leader change can drop it).
    One,
    /// Every in-sync replica: below the high watermark.
    All,
}

impl FromStr for Acks {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "0" => Ok(Acks::Zero),
            "1" => Ok(Acks::One),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("unknown acks '{other}' (expected 0, 1 or all)")),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        })
    }
}

impl FromStr for TruncateTo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "epoch" => Ok(TruncateTo::LeaderEpoch),
            "hw" => Ok(TruncateTo::HighWatermark),
            other => Err(format!("unknown truncation '{other}' (expected epoch or hw)")),
        }
    }
}

impl fmt::Display for TruncateTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TruncateTo::LeaderEpoch => "epoch",
            TruncateTo::HighWatermark => "hw",
        })
    }
}

/// The kafka-mode knobs of a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSettings {
    /// Partitions of the one topic.
    pub partitions: u32,
    /// Replicas per partition.
    pub rf: usize,
    /// acks=all writes are refused while the ISR is smaller than this.
    pub min_isr: usize,
    /// Whether an out-of-sync replica may be elected leader (unsafe).
    pub unclean_election: bool,
    /// How followers truncate on a leader change.
    pub truncate_to: TruncateTo,
    /// Whether consumers may read past the high watermark (unsafe).
    pub read_uncommitted: bool,
    /// A follower this far behind for this long leaves the ISR.
    pub lag_max_ms: u64,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            partitions: 3,
            rf: 3,
            min_isr: 2,
            unclean_election: false,
            truncate_to: TruncateTo::LeaderEpoch,
            read_uncommitted: false,
            lag_max_ms: 1_000,
        }
    }
}

/// A kafka-mode request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KafkaRequest {
    /// Append a record, answered per `acks`.
    Produce {
        /// Partition.
        partition: PartitionId,
        /// The record's value.
        value: Vec<u8>,
        /// Durability asked for.
        acks: Acks,
    },
    /// A consumer reads from `offset`.
    Poll {
        /// Partition.
        partition: PartitionId,
        /// First offset wanted.
        offset: Offset,
        /// Most records returned.
        max: u32,
        /// With nothing to return, wait up to this long (at most 1 s) for new committed
        /// records.
        #[serde(default)]
        wait_ms: u64,
    },
    /// Store a consumer group's position in a partition (replicated with the metadata).
    CommitOffset {
        /// The consumer group.
        group: String,
        /// Partition.
        partition: PartitionId,
        /// The next offset the group will read.
        offset: Offset,
    },
    /// Read a consumer group's committed position in a partition.
    FetchOffset {
        /// The consumer group.
        group: String,
        /// Partition.
        partition: PartitionId,
    },
    /// A follower replicates from `offset`; `last_epoch` is the epoch of its last record.
    Fetch {
        /// Partition.
        partition: PartitionId,
        /// The follower.
        replica: u64,
        /// Its log end offset.
        offset: Offset,
        /// The epoch of its last record.
        last_epoch: Epoch,
    },
    /// A metadata change for the controller.
    Propose {
        /// The change.
        command: MetaCommand,
    },
}

/// A kafka-mode response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KafkaResponse {
    /// The record's offset.
    Produced {
        /// Where it went.
        offset: Offset,
    },
    /// Records for a consumer: (offset, value).
    Records {
        /// The records.
        records: Vec<(Offset, Vec<u8>)>,
        /// The leader's high watermark.
        hw: Offset,
    },
    /// Records for a follower.
    Fetched {
        /// The records.
        records: Vec<Record>,
        /// The leader's high watermark.
        hw: Offset,
    },
    /// The follower's log diverges from the leader's after `end_offset`: truncate there.
    Diverging {
        /// Where to cut.
        end_offset: Offset,
    },
    /// The controller accepted the proposal for replication.
    Proposed,
    /// The offset is committed (replicated to a majority of the controller group).
    OffsetCommitted,
    /// A group's committed position, if it has one.
    Offset {
        /// The next offset the group will read.
        offset: Option<Offset>,
    },
}
