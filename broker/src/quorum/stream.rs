//! Raft-replicated logs: each partition of the topic is a Raft group whose machine is an
//! append-only list of records, the design of Redpanda's partitions, RabbitMQ streams,
//! NATS JetStream streams and KRaft's metadata log. There is no ISR and no high watermark
//! of its own: a record is readable, and its producer answered, once its entry is committed
//! by a majority of the partition's replicas and applied. Consumer groups' positions are one
//! more group, over every node.

use serde::{Deserialize, Serialize};

use crate::kafka::{ConsumerOffsets, Offset, PartitionId};

/// The group that holds every consumer group's committed positions.
pub const OFFSETS_GROUP: &str = "__consumer_offsets";

/// Group names that begin with this belong to the log; a queue cannot take one.
pub const RESERVED_PREFIX: &str = "__";

/// The Raft group of `partition`.
pub fn partition_group(partition: PartitionId) -> String {
    format!("{RESERVED_PREFIX}partition-{partition}")
}

/// The partition whose group is `name`, if it is one.
pub fn group_partition(name: &str) -> Option<PartitionId> {
    name.strip_prefix(RESERVED_PREFIX)?
        .strip_prefix("partition-")?
        .parse()
        .ok()
}

/// Whether `name` is one of the log's groups rather than a queue.
pub fn is_log_group(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// A command in a log group's Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "cmd")]
pub enum StreamCommand {
    /// Append a record at the end of the partition.
    Append {
        /// The record's value.
        value: Vec<u8>,
    },
    /// Store a consumer group's position in a partition (the offsets group).
    CommitOffset {
        /// The consumer group.
        group: String,
        /// The partition.
        partition: PartitionId,
        /// The next offset the group will read.
        offset: Offset,
    },
}

/// The result of applying one [`StreamCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamApplied {
    /// Appended at this offset.
    Appended(Offset),
    /// The position is stored.
    OffsetCommitted,
    /// The partition holds as many records as it may.
    Full,
}

/// One log group's replicated state: a partition's records, or the consumer positions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamMachine {
    records: Vec<Vec<u8>>,
    offsets: ConsumerOffsets,
    records_max: usize,
}

impl StreamMachine {
    /// An empty log that holds at most `records_max` records.
    pub fn new(records_max: usize) -> Self {
        Self {
            records_max,
            ..Self::default()
        }
    }

    /// Applies one committed command.
    pub fn apply(&mut self, command: StreamCommand) -> StreamApplied {
        match command {
            StreamCommand::Append { value } => {
                if self.records.len() >= self.records_max {
                    return StreamApplied::Full;
                }
                self.records.push(value);
                StreamApplied::Appended(self.records.len() as Offset - 1)
            }
            StreamCommand::CommitOffset {
                group,
                partition,
                offset,
            } => {
                self.offsets.commit(group, partition, offset);
                StreamApplied::OffsetCommitted
            }
        }
    }

    /// Up to `max` records from `offset` on, with their offsets. Everything here was
    /// committed before it was applied, so a read never returns what a majority lacks.
    pub fn read(&self, offset: Offset, max: usize) -> Vec<(Offset, Vec<u8>)> {
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.records.len());
        self.records[from..]
            .iter()
            .take(max)
            .enumerate()
            .map(|(i, value)| ((from + i) as Offset, value.clone()))
            .collect()
    }

    /// The offset the next record will take: every offset below it is committed.
    pub fn end(&self) -> Offset {
        self.records.len() as Offset
    }

    /// A consumer group's committed position in a partition.
    pub fn committed_offset(&self, group: &str, partition: PartitionId) -> Option<Offset> {
        self.offsets.get(group, partition)
    }

    /// Records held, for logs.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_take_consecutive_offsets_and_reads_start_where_asked() {
        let mut m = StreamMachine::new(3);
        for (i, v) in [b"a", b"b", b"c"].into_iter().enumerate() {
            assert_eq!(
                m.apply(StreamCommand::Append { value: v.to_vec() }),
                StreamApplied::Appended(i as u64)
            );
        }
        assert_eq!(
            m.apply(StreamCommand::Append { value: b"d".to_vec() }),
            StreamApplied::Full
        );
        assert_eq!(m.read(1, 10), vec![(1, b"b".to_vec()), (2, b"c".to_vec())]);
        assert_eq!(m.read(0, 1), vec![(0, b"a".to_vec())]);
        assert!(m.read(9, 10).is_empty());
        assert_eq!(m.end(), 3);
    }

    #[test]
    fn a_groups_position_is_the_last_committed() {
        let mut m = StreamMachine::new(10);
        assert_eq!(m.committed_offset("g", 1), None);
        for offset in [4, 2] {
            m.apply(StreamCommand::CommitOffset {
                group: "g".into(),
                partition: 1,
                offset,
            });
        }
        assert_eq!(m.committed_offset("g", 1), Some(2));
        assert_eq!(m.committed_offset("g", 0), None);
    }

    #[test]
    fn partition_groups_are_named_apart_from_queues() {
        assert_eq!(group_partition(&partition_group(7)), Some(7));
        assert_eq!(group_partition("jepsen.queue"), None);
        assert!(is_log_group(OFFSETS_GROUP));
        assert!(!is_log_group("_queue"));
    }
}
