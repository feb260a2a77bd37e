//! `kafka` mode's core: one partition's replicated log, as a state machine without I/O.
//!
//! The leader appends; followers pull with fetches that carry their log end offset (LEO);
//! the high watermark (HW) is the minimum LEO over the in-sync replicas (ISR), and only
//! records below it are committed (what `acks=all` waits for and what consumers may read).
//! A follower that has not caught up within the lag limit leaves the ISR; one that catches up
//! rejoins. On a leader change a follower truncates its log: by leader epoch (KIP-101: to the
//! end offset of its last epoch as the new leader knows it), or, with the pre-0.11 behaviour
//! kept as an unsafe knob, to its own high watermark, which can discard a committed record.
//!
//! The controller is a Raft group of every broker replicating [`MetadataMachine`]; its
//! leader fences brokers it stops hearing from and so moves their partitions' leadership.

mod metadata;
mod node;
mod partition;
mod wire;

pub use metadata::{
    ConsumerOffsets, MetaCommand, MetadataMachine, PartitionId, PartitionState, METADATA_GROUP,
};
pub(crate) use node::{replicas_of, KafkaNode};
pub use partition::{Epoch, FetchReply, Isr, LeaderState, Offset, PartitionLog, Record, TruncateTo};
pub use wire::{Acks, KafkaRequest, KafkaResponse, KafkaSettings};
