//! The mode knobs as command-line flags, shared by `tumult-broker` and `tumult test` so that
//! both speak the same words with the same help.

use crate::config::FsyncPolicy;
use crate::config::{MirrorCount, MirrorSettings, PartitionHandling, SyncMode};
use crate::kafka::{KafkaSettings, TruncateTo};

/// Durability, mirrored-mode and kafka-mode knobs.
#[derive(Debug, Clone, clap::Args)]
pub struct KnobArgs {
    /// When to fsync: always (confirm only after fsync; safe), interval:MS (at most every MS
    /// milliseconds; unsafe: a crash loses up to that much) or never (unsafe).
    #[arg(long, default_value = "always")]
    pub fsync: FsyncPolicy,
    /// Whether queues survive their node's restart (single, classic): true, or false (unsafe:
    /// a restart loses every message the node held).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub durable: bool,
    /// Mirrored mode: mirrors per queue besides its leader, a number or all.
    #[arg(long, default_value = "all")]
    pub mirrors: MirrorCount,
    /// Mirrored mode: how a joining mirror gets older messages: manual (it does not,
    /// RabbitMQ's default) or automatic (the leader sends it the whole queue).
    #[arg(long, default_value = "manual")]
    pub sync_mode: SyncMode,
    /// Mirrored mode: allow promoting a mirror that lacks messages (unsafe).
    #[arg(long)]
    pub promote_unsynced: bool,
    /// Mirrored mode: what a node does without a majority: pause-minority (stop serving;
    /// safe), ignore or autoheal (keep serving on both sides; unsafe).
    #[arg(long, default_value = "pause-minority")]
    pub partition_handling: PartitionHandling,
    /// Kafka mode: partitions of the topic (the log workload's keys).
    #[arg(long, default_value_t = KafkaSettings::default().partitions)]
    pub partitions: u32,
    /// Kafka mode: replicas per partition (default: 3, or fewer nodes).
    #[arg(long)]
    pub rf: Option<usize>,
    /// Kafka mode: acks=all writes are refused while the ISR is smaller than this.
    #[arg(long, default_value_t = KafkaSettings::default().min_isr)]
    pub min_isr: usize,
    /// Kafka mode: allow electing a replica outside the ISR (unsafe).
    #[arg(long)]
    pub unclean_election: bool,
    /// Kafka mode: how followers truncate on a leader change: epoch (KIP-101; safe) or hw
    /// (to their own high watermark, as before Kafka 0.11; unsafe).
    #[arg(long, default_value = "epoch")]
    pub truncate_to: TruncateTo,
    /// Kafka mode: consumers read up to the leader's log end, past the high watermark
    /// (unsafe: they may read records that are then lost).
    #[arg(long)]
    pub read_uncommitted: bool,
}

impl KnobArgs {
    /// The mirrored-mode settings.
    pub fn mirrored(&self) -> MirrorSettings {
        MirrorSettings {
            mirrors: self.mirrors.0,
            sync: self.sync_mode,
            promote_unsynced: self.promote_unsynced,
            partition_handling: self.partition_handling,
        }
    }

    /// The kafka-mode settings; `rf` defaults to `default_rf`.
    pub fn kafka(&self, default_rf: usize) -> KafkaSettings {
        KafkaSettings {
            partitions: self.partitions,
            rf: self.rf.unwrap_or(default_rf),
            min_isr: self.min_isr,
            unclean_election: self.unclean_election,
            truncate_to: self.truncate_to,
            read_uncommitted: self.read_uncommitted,
            ..KafkaSettings::default()
        }
    }
}
