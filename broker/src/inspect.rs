//! The inspection seam: what a broker node tells an observer about its replicated state as
//! it changes, so that a simulation can check invariants at every step (as FoundationDB's
//! and TigerBeetle's simulators do) instead of waiting for a fault to turn a broken promise
//! into lost data. It never changes what the broker does: events are handed over after
//! the broker has acted, and a real deployment passes [`Unobserved`].

use crate::kafka::{Epoch, Isr, Offset, Record};
use crate::raft::{Entry, LogIndex, NodeId, Term};

/// Receives a node's events. Called on the node's own task, in the order things happen.
pub trait Inspector: Send + Sync + 'static {
    /// Something happened in a Raft group on this node.
    fn raft(&self, event: RaftEvent<'_>);

    /// Something happened to a kafka-mode partition replica on this node.
    fn kafka(&self, event: KafkaEvent<'_>) {
        let _ = event;
    }

    /// A queue node (single, classic or mirrored mode) did something the monitors judge.
    fn queue(&self, event: QueueEvent<'_>) {
        let _ = event;
    }
}

/// What a queue node (single, classic or mirrored mode) did.
#[derive(Debug, Clone, Copy)]
pub enum QueueEvent<'a> {
    /// The node confirmed a publish to the client (a publisher confirm).
    Confirmed {
        /// The queue.
        queue: &'a str,
        /// This node.
        node: NodeId,
        /// The message's sequence number in the queue.
        seq: u64,
        /// Whether the node's queue log had fsynced everything it held when it confirmed;
        /// `None` for a non-durable queue, which promises nothing across a restart.
        on_disk: Option<bool>,
        /// The leadership epoch the confirming node leads the queue in (mirrored mode).
        epoch: Option<u64>,
    },
    /// A consumer acknowledged a delivery: the message leaves the queue for good.
    Acked {
        /// The queue.
        queue: &'a str,
        /// This node.
        node: NodeId,
        /// The message's sequence number.
        seq: u64,
    },
    /// A mirror promoted itself to lead the queue (mirrored mode).
    Promoted {
        /// The queue.
        queue: &'a str,
        /// This node.
        node: NodeId,
        /// The new leadership's epoch.
        epoch: u64,
        /// Whether the node counted itself a synchronised mirror.
        synced: bool,
        /// The sequence numbers of the messages its copy holds.
        held: &'a [u64],
    },
}

/// What a kafka-mode partition replica did.
#[derive(Debug, Clone, Copy)]
pub enum KafkaEvent<'a> {
    /// As the partition's leader, the node's high watermark or the replicas it counts
    /// changed: every record below the high watermark is committed (acks=all producers are
    /// answered from here).
    Committed {
        /// The partition.
        partition: u32,
        /// This node.
        node: NodeId,
        /// The leader epoch.
        epoch: Epoch,
        /// The new high watermark.
        hw: Offset,
        /// The leader's log.
        log: &'a [Record],
        /// The replicas the leader counts for the high watermark: the ISR and any follower
        /// whose proposal to join it may still be committed.
        isr: &'a Isr,
        /// `min.insync.replicas`: how many copies an acks=all write is promised.
        min_insync: usize,
    },
    /// As the partition's leader, the node answered acks=all producers: every record up to
    /// `offset` is acknowledged.
    Acknowledged {
        /// The partition.
        partition: u32,
        /// This node.
        node: NodeId,
        /// The highest offset answered.
        offset: Offset,
        /// The leader's log.
        log: &'a [Record],
        /// `min.insync.replicas`: how many copies the producers were promised.
        min_insync: usize,
    },
    /// The node recovered the partition from its disk at start: where its log ends.
    Recovered {
        /// The partition.
        partition: u32,
        /// This node.
        node: NodeId,
        /// Its log end offset.
        log_end: Offset,
    },
    /// The node became the partition's leader.
    Leading {
        /// The partition.
        partition: u32,
        /// This node.
        node: NodeId,
        /// Its leader epoch.
        epoch: Epoch,
        /// Its log as it takes over.
        log: &'a [Record],
        /// The ISR the controller elected it with.
        isr: &'a Isr,
    },
    /// As a follower, the node appended records fetched from the leader.
    Appended {
        /// The partition.
        partition: u32,
        /// This node.
        node: NodeId,
        /// The records appended.
        records: &'a [Record],
    },
    /// Everything the node's replica has written is now fsynced: its durable log keeps
    /// its first `kept` records and continues with `records` (the rest of its log).
    /// Reported after the fsync itself, so a write never fsynced is never reported.
    Stored {
        /// The partition.
        partition: u32,
        /// This node.
        node: NodeId,
        /// How many records of the previous durable log stay.
        kept: Offset,
        /// The records after them, to the end of the log.
        records: &'a [Record],
    },
    /// The node cut the tail of its log (a diverged tail, or pre-0.11 truncation to its
    /// high watermark).
    Truncated {
        /// The partition.
        partition: u32,
        /// This node.
        node: NodeId,
        /// The records cut, from the new end of the log.
        cut: &'a [Record],
    },
}

/// What a Raft group (a quorum queue, or the kafka controller's metadata log) did.
#[derive(Debug, Clone, Copy)]
pub enum RaftEvent<'a> {
    /// The group was recovered from the node's disk when the node started: the term it
    /// found durable there.
    Recovered {
        /// The group's name.
        group: &'a str,
        /// This node.
        node: NodeId,
        /// The durable term.
        term: Term,
    },
    /// The node wrote a new term (and vote) to its disk, fsynced or not as its policy
    /// says, before telling anyone.
    Persisted {
        /// The group's name.
        group: &'a str,
        /// This node.
        node: NodeId,
        /// The term written.
        term: Term,
    },
    /// The node became the group's leader.
    Elected {
        /// The group's name.
        group: &'a str,
        /// This node.
        node: NodeId,
        /// Its term.
        term: Term,
        /// How many members the group has (this node included): a majority of them is what
        /// a commit promises.
        members: usize,
        /// Its log as it takes over.
        log: &'a [Entry],
    },
    /// Everything the node has written for the group is now fsynced: its durable log
    /// keeps its first `kept` entries and continues with `entries` (the rest of its log).
    /// Reported after the fsync itself, so an entry never fsynced is never reported.
    Stored {
        /// The group's name.
        group: &'a str,
        /// This node.
        node: NodeId,
        /// How many entries of the previous durable log stay.
        kept: LogIndex,
        /// The entries after them, to the end of the log.
        entries: &'a [Entry],
    },
    /// As the group's leader in `term`, the node moved its commit index to `index` by
    /// counting the replicas that hold it.
    LeaderCommitted {
        /// The group's name.
        group: &'a str,
        /// This node.
        node: NodeId,
        /// The leader's term.
        term: Term,
        /// The new commit index.
        index: LogIndex,
        /// The term of the entry at `index`.
        entry_term: Term,
    },
    /// The node applied an entry it learnt was committed.
    Committed {
        /// The group's name.
        group: &'a str,
        /// This node.
        node: NodeId,
        /// The entry's index.
        index: LogIndex,
        /// The term it was written in.
        term: Term,
    },
}

/// No observer: what real deployments use.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl Inspector for Unobserved {
    fn raft(&self, _event: RaftEvent<'_>) {}
}
