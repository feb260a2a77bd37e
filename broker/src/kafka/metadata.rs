//! The cluster metadata the kafka controller replicates (as KRaft does, on a Raft group of
//! all brokers): each partition's replicas, leader, leader epoch and ISR, and which brokers
//! are fenced. Elections are decided here, deterministically, when commands are applied.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::partition::Epoch;
use crate::quorum::Machine;
use crate::raft::NodeId;

/// A partition number.
pub type PartitionId = u32;

/// The Raft group holding the metadata.
pub const METADATA_GROUP: &str = "__cluster_metadata";

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// The current leader; `None` while the partition is offline.
    pub leader: Option<NodeId>,
    /// Incremented at every leader change.
    pub epoch: Epoch,
    /// The in-sync replicas.
    pub isr: BTreeSet<NodeId>,
    /// Incremented at every change of the leader or the ISR (Kafka's partition epoch). An
    /// ISR change names the version it was based on and is refused if another change came
    /// first, so a leader knows which of its proposals can still apply.
    #[serde(default)]
    pub version: u64,
}

/// Changes to the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "cmd")]
pub enum MetaCommand {
    /// Create the partitions if there are none yet (idempotent).
    Init {
        /// (partition, replicas) pairs. A list, not a map: JSON object keys are strings,
        /// which do not decode back into integers inside a tagged enum.
        assignment: Vec<(PartitionId, Vec<NodeId>)>,
    },
    /// A broker stopped heartbeating: out of every ISR, and its partitions get new leaders.
    Fence {
        /// The broker.
        broker: NodeId,
    },
    /// A fenced broker is heartbeating again; offline partitions it can lead come back.
    Unfence {
        /// The broker.
        broker: NodeId,
    },
    /// A consumer group's position in a partition.
    CommitOffset {
        /// The consumer group.
        group: String,
        /// Partition.
        partition: PartitionId,
        /// The next offset the group will read.
        offset: u64,
    },
    /// A broker names the directory its replicas live in (a random id written when the
    /// directory was created, as Kafka's `meta.properties` does since KIP-858). A new id
    /// for a known broker means its disk was replaced: every replica it held is gone, so it
    /// leaves every ISR and every partition it led gets a new leader.
    Register {
        /// The broker.
        broker: NodeId,
        /// Its directory's id.
        dir: u64,
    },
    /// A partition leader asks to change its ISR.
    AlterIsr {
        /// The partition.
        partition: PartitionId,
        /// The leader epoch the request was made in; stale requests are refused.
        epoch: Epoch,
        /// The new ISR (must contain the leader).
        isr: BTreeSet<NodeId>,
        /// The partition's version the leader based this on; refused if it has moved.
        #[serde(default)]
        version: u64,
    },
}

/// Consumer groups' committed positions: (group, partition) -> the next offset each group
/// will read. Kafka mode keeps them in the controller's metadata, quorum mode's log in a
/// Raft group of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerOffsets(BTreeMap<(String, PartitionId), u64>);

impl ConsumerOffsets {
    /// Stores `group`'s position in `partition`, replacing the last one.
    pub fn commit(&mut self, group: String, partition: PartitionId, offset: u64) {
        self.0.insert((group, partition), offset);
    }

    /// `group`'s committed position in `partition`.
    pub fn get(&self, group: &str, partition: PartitionId) -> Option<u64> {
        self.0.get(&(group.to_string(), partition)).copied()
    }
}

/// The metadata state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataMachine {
    partitions: BTreeMap<PartitionId, PartitionState>,
    fenced: BTreeSet<NodeId>,
    /// Committed consumer positions: (group, partition) -> next offset.
    offsets: ConsumerOffsets,
    /// Whether a replica outside the ISR may be elected (unsafe).
    unclean: bool,
    /// Each registered broker's directory id.
    dirs: BTreeMap<NodeId, u64>,
}

impl MetadataMachine {
    /// Empty metadata; `unclean` allows electing out-of-sync replicas.
    pub fn new(unclean: bool) -> Self {
        Self {
            unclean,
            ..Self::default()
        }
    }

    /// Every partition's state.
    pub fn partitions(&self) -> &BTreeMap<PartitionId, PartitionState> {
        &self.partitions
    }

    /// The directory id `broker` last registered, if it has.
    pub fn dir_of(&self, broker: NodeId) -> Option<u64> {
        self.dirs.get(&broker).copied()
    }

    /// A consumer group's committed position in a partition.
    pub fn committed_offset(&self, group: &str, partition: PartitionId) -> Option<u64> {
        self.offsets.get(group, partition)
    }

    /// Whether `broker` is fenced.
    pub fn is_fenced(&self, broker: NodeId) -> bool {
        self.fenced.contains(&broker)
    }

    fn elect(&mut self, id: PartitionId) {
        let fenced = self.fenced.clone();
        let unclean = self.unclean;
        let Some(p) = self.partitions.get_mut(&id) else {
            return;
        };
        let live = |n: &NodeId| !fenced.contains(n);
        let clean = p.replicas.iter().copied().find(|n| p.isr.contains(n) && live(n));
        let chosen = match clean {
            Some(n) => Some(n),
            None if unclean => p.replicas.iter().copied().find(live),
            None => None,
        };
        if chosen == p.leader {
            return;
        }
        if let Some(leader) = chosen {
            if !p.isr.contains(&leader) {
                // Unclean: the ISR restarts from the new leader's log.
                p.isr = BTreeSet::from([leader]);
            }
        }
        p.leader = chosen;
        p.epoch += 1;
        p.version += 1;
    }
}

impl Machine for MetadataMachine {
    type Command = MetaCommand;
    type Applied = Result<(), String>;

    fn apply(&mut self, command: MetaCommand) -> Result<(), String> {
        match command {
            MetaCommand::Init { assignment } => {
                if self.partitions.is_empty() {
                    for (id, replicas) in assignment {
                        let isr = replicas.iter().copied().collect();
                        let leader = replicas.first().copied();
                        self.partitions.insert(
                            id,
                            PartitionState {
                                replicas,
                                leader,
                                epoch: 1,
                                isr,
                                version: 0,
                            },
                        );
                    }
                }
                Ok(())
            }
            MetaCommand::Fence { broker } => {
                if !self.fenced.insert(broker) {
                    return Ok(());
                }
                let ids: Vec<PartitionId> = self.partitions.keys().copied().collect();
                for id in ids {
                    let p = self.partitions.get_mut(&id).expect("listed");
                    // The last ISR member stays (it alone has every committed record);
                    // the partition is offline until it returns, unless unclean.
                    if p.isr.len() > 1 && p.isr.remove(&broker) {
                        p.version += 1;
                    }
                    if p.leader == Some(broker) {
                        self.elect(id);
                    }
                }
                Ok(())
            }
            MetaCommand::Unfence { broker } => {
                if !self.fenced.remove(&broker) {
                    return Ok(());
                }
                let offline: Vec<PartitionId> = self
                    .partitions
                    .iter()
                    .filter(|(_, p)| p.leader.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                for id in offline {
                    self.elect(id);
                }
                Ok(())
            }
            MetaCommand::Register { broker, dir } => {
                let replaced = self.dirs.insert(broker, dir).is_some_and(|old| old != dir);
                if replaced {
                    let ids: Vec<PartitionId> = self.partitions.keys().copied().collect();
                    for id in ids {
                        let p = self.partitions.get_mut(&id).expect("listed");
                        // Unlike a fenced broker, a replaced one holds nothing: it leaves
                        // the ISR even as its last member (the partition is then offline,
                        // as the data is gone, unless unclean election is on).
                        if p.isr.remove(&broker) {
                            p.version += 1;
                        }
                        if p.leader == Some(broker) {
                            p.leader = None;
                            p.epoch += 1;
                            p.version += 1;
                            self.elect(id);
                        }
                    }
                }
                Ok(())
            }
            MetaCommand::CommitOffset {
                group,
                partition,
                offset,
            } => {
                self.offsets.commit(group, partition, offset);
                Ok(())
            }
            MetaCommand::AlterIsr {
                partition,
                epoch,
                isr,
                version,
            } => {
                let fenced = &self.fenced;
                let Some(p) = self.partitions.get_mut(&partition) else {
                    return Err(format!("no partition {partition}"));
                };
                let valid = p.epoch == epoch
                    && p.version == version
                    && p.leader.is_some_and(|l| isr.contains(&l))
                    && isr.iter().all(|n| p.replicas.contains(n) && !fenced.contains(n));
                if !valid {
                    return Err(format!(
                        "stale or invalid ISR change for partition {partition} in epoch {epoch}"
                    ));
                }
                p.isr = isr;
                p.version += 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_replicas(unclean: bool) -> MetadataMachine {
        let mut m = MetadataMachine::new(unclean);
        m.apply(MetaCommand::Init {
            assignment: vec![(0, vec![1, 2, 3])],
        })
        .unwrap();
        m
    }

    fn p0(m: &MetadataMachine) -> &PartitionState {
        &m.partitions()[&0]
    }

    #[test]
    fn a_broker_whose_disk_was_replaced_leaves_every_isr_and_its_leadership() {
        let mut m = three_replicas(false);
        for broker in [1, 2, 3] {
            m.apply(MetaCommand::Register {
                broker,
                dir: 10 + broker,
            })
            .unwrap();
        }
        // Registering the same directory again changes nothing.
        m.apply(MetaCommand::Register { broker: 1, dir: 11 }).unwrap();
        assert_eq!((p0(&m).leader, p0(&m).epoch, p0(&m).isr.len()), (Some(1), 1, 3));
        // The leader comes back with a new directory: it holds nothing any more.
        m.apply(MetaCommand::Register { broker: 1, dir: 99 }).unwrap();
        assert_eq!(m.dir_of(1), Some(99));
        assert_eq!(p0(&m).leader, Some(2));
        assert!(p0(&m).epoch > 1);
        assert_eq!(p0(&m).isr, BTreeSet::from([2, 3]));
        // Even the last in-sync replica leaves: with its copy gone the partition is offline.
        m.apply(MetaCommand::AlterIsr {
            partition: 0,
            epoch: p0(&m).epoch,
            isr: BTreeSet::from([2]),
            version: p0(&m).version,
        })
        .unwrap();
        m.apply(MetaCommand::Register { broker: 2, dir: 98 }).unwrap();
        assert_eq!((p0(&m).leader, p0(&m).isr.len()), (None, 0));
    }

    #[test]
    fn a_fenced_leader_is_replaced_from_the_isr_in_a_new_epoch() {
        let mut m = three_replicas(false);
        assert_eq!((p0(&m).leader, p0(&m).epoch), (Some(1), 1));
        m.apply(MetaCommand::Fence { broker: 1 }).unwrap();
        assert_eq!((p0(&m).leader, p0(&m).epoch), (Some(2), 2));
        assert_eq!(p0(&m).isr, BTreeSet::from([2, 3]));
    }

    #[test]
    fn when_the_last_isr_member_fails_the_partition_waits_for_it_unless_unclean() {
        for unclean in [false, true] {
            let mut m = three_replicas(unclean);
            m.apply(MetaCommand::AlterIsr {
                partition: 0,
                epoch: 1,
                isr: BTreeSet::from([1]),
                version: 0,
            })
            .unwrap();
            m.apply(MetaCommand::Fence { broker: 1 }).unwrap();
            if unclean {
                assert_eq!(p0(&m).leader, Some(2), "an out-of-sync replica is elected");
                assert_eq!(p0(&m).isr, BTreeSet::from([2]));
            } else {
                assert_eq!(p0(&m).leader, None, "offline rather than lose committed records");
                m.apply(MetaCommand::Unfence { broker: 1 }).unwrap();
                assert_eq!(p0(&m).leader, Some(1));
                assert_eq!(p0(&m).epoch, 3);
            }
        }
    }

    #[test]
    fn isr_changes_from_a_stale_epoch_or_without_the_leader_are_refused() {
        let mut m = three_replicas(false);
        m.apply(MetaCommand::Fence { broker: 1 }).unwrap();
        let version = p0(&m).version;
        let stale = MetaCommand::AlterIsr {
            partition: 0,
            epoch: 1,
            isr: BTreeSet::from([1, 2]),
            version,
        };
        assert!(m.apply(stale).is_err());
        let leaderless = MetaCommand::AlterIsr {
            partition: 0,
            epoch: 2,
            isr: BTreeSet::from([3]),
            version,
        };
        assert!(m.apply(leaderless).is_err());
        let fenced = MetaCommand::AlterIsr {
            partition: 0,
            epoch: 2,
            isr: BTreeSet::from([1, 2]),
            version,
        };
        assert!(m.apply(fenced).is_err(), "a fenced broker cannot rejoin the ISR");
        let shrink = |isr: &[NodeId]| MetaCommand::AlterIsr {
            partition: 0,
            epoch: 2,
            isr: isr.iter().copied().collect(),
            version,
        };
        m.apply(shrink(&[2])).unwrap();
        assert_eq!(p0(&m).isr, BTreeSet::from([2]));
        assert_eq!(p0(&m).version, version + 1);
        // A second change based on the same version comes too late: the leader that sent
        // it must not count on it (an expansion it might still be waiting for).
        assert!(m.apply(shrink(&[2, 3])).is_err(), "based on a superseded version");
        assert_eq!(p0(&m).isr, BTreeSet::from([2]));
    }

    #[test]
    fn init_is_idempotent() {
        let mut m = three_replicas(false);
        m.apply(MetaCommand::Fence { broker: 1 }).unwrap();
        let before = m.clone();
        m.apply(MetaCommand::Init {
            assignment: vec![(0, vec![3])],
        })
        .unwrap();
        assert_eq!(m, before);
    }

    #[test]
    fn every_command_survives_the_json_the_raft_log_stores() {
        let commands = vec![
            MetaCommand::Init {
                assignment: vec![(0, vec![1, 2]), (1, vec![2, 3])],
            },
            MetaCommand::Fence { broker: 2 },
            MetaCommand::Unfence { broker: 2 },
            MetaCommand::Register {
                broker: 3,
                dir: u64::MAX - 7,
            },
            MetaCommand::CommitOffset {
                group: "g".into(),
                partition: 1,
                offset: 9,
            },
            MetaCommand::AlterIsr {
                partition: 1,
                epoch: 4,
                isr: BTreeSet::from([2, 3]),
                version: 11,
            },
        ];
        for command in commands {
            let bytes = serde_json::to_vec(&command).unwrap();
            assert_eq!(serde_json::from_slice::<MetaCommand>(&bytes).unwrap(), command);
        }
    }
}
