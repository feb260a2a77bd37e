//! `quorum` mode: every queue is a Raft group over all nodes (as RabbitMQ quorum queues are).
//!
//! Publishes, gets and acks are commands in the queue's Raft log; a client is answered only
//! when its command is committed (on a majority of disks) and applied. A node that does not
//! lead refuses with `not_leader` and names the leader, so clients follow leadership.
//!
//! The same nodes also serve the log workload: each partition is a Raft group whose
//! machine is an append-only log ([`stream`]), placed on `rf` replicas as kafka mode places
//! its partitions, and consumer positions are one more group over every node.

mod machine;
mod serve;
pub mod stream;
mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::BrokerConfig;
use crate::disk::Disk;
use crate::inspect::{Inspector, RaftEvent};
use crate::raft::{Entry, Envelope, HardState, LogIndex, Message, NodeId, Raft, RaftConfig, Role, Term};
use crate::storage::{RecordLog, StorageError};

pub use machine::{Applied, Command, ConsumerId, QueueMachine};
pub(crate) use serve::{handle, start, Node, StartError};
pub use stream::{StreamApplied, StreamCommand, StreamMachine};
pub(crate) use transport::{lock, spawn_peer_senders, spawn_ticker};

/// A deterministic state machine replicated by a Raft group: every replica applies the same
/// committed commands in the same order.
pub trait Machine: Send + 'static {
    /// What clients propose.
    type Command: Serialize + DeserializeOwned;
    /// What applying a command yields, handed to the proposer.
    type Applied: Send + 'static;
    /// Applies one committed command.
    fn apply(&mut self, command: Self::Command) -> Self::Applied;
    /// A command a node proposes when it becomes leader (for instance to return deliveries
    /// whose consumers the old leader knew about).
    fn on_elected(&self) -> Option<Self::Command> {
        None
    }
    /// How many items the machine holds, for logs.
    fn size(&self) -> usize {
        0
    }
}

impl Machine for QueueMachine {
    type Command = Command;
    type Applied = Applied;

    fn apply(&mut self, command: Command) -> Applied {
        QueueMachine::apply(self, command)
    }

    fn on_elected(&self) -> Option<Command> {
        Some(Command::ReturnAll)
    }

    fn size(&self) -> usize {
        self.len()
    }
}

/// What a quorum-mode node replicates in one group: a queue, or one of the log's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosted {
    /// A quorum queue.
    Queue(QueueMachine),
    /// A partition of the log, or the consumer positions.
    Stream(StreamMachine),
}

/// A command for a [`Hosted`] machine. Untagged: each kind's commands carry their own
/// distinct `cmd` tags, so a queue's commands are written exactly as they always were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostedCommand {
    /// For a queue.
    Queue(Command),
    /// For a log group.
    Stream(StreamCommand),
}

/// What applying a [`HostedCommand`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostedApplied {
    /// From a queue.
    Queue(Applied),
    /// From a log group.
    Stream(StreamApplied),
    /// The command was for the other kind of machine; it changed nothing.
    WrongKind,
}

impl Machine for Hosted {
    type Command = HostedCommand;
    type Applied = HostedApplied;

    fn apply(&mut self, command: HostedCommand) -> HostedApplied {
        match (self, command) {
            (Hosted::Queue(queue), HostedCommand::Queue(c)) => HostedApplied::Queue(queue.apply(c)),
            (Hosted::Stream(stream), HostedCommand::Stream(c)) => HostedApplied::Stream(stream.apply(c)),
            _ => HostedApplied::WrongKind,
        }
    }

    fn on_elected(&self) -> Option<HostedCommand> {
        match self {
            Hosted::Queue(queue) => queue.on_elected().map(HostedCommand::Queue),
            Hosted::Stream(_) => None,
        }
    }

    fn size(&self) -> usize {
        match self {
            Hosted::Queue(queue) => queue.len(),
            Hosted::Stream(stream) => stream.len(),
        }
    }
}

/// Bound on queued outbound messages per peer; beyond it messages are dropped, which Raft
/// tolerates (the leader resends on its next heartbeat).
const OUTBOUND_QUEUE_MAX: usize = 4096;

/// What one Raft log record on disk says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
enum RaftRecord {
    /// The term and vote as of now.
    Hard(HardState),
    /// Entries after this index were replaced.
    TruncateAfter {
        /// The last index kept.
        index: LogIndex,
    },
    /// One entry.
    Entry(Entry),
}

/// Why a queue operation was not carried out (or may not have been).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// This node does not lead; maybe the leader's address.
    NotLeader(Option<String>),
    /// The command may or may not commit.
    OutcomeUnknown(String),
    /// The queue cannot serve (its storage failed).
    Unavailable(String),
    /// The queue name cannot be used.
    BadName(String),
    /// This node holds no replica of the group.
    NotMember,
}

/// A message for a peer, tagged with its group.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub group: String,
    pub envelope: Envelope,
}

type Reply<M> = oneshot::Sender<Result<<M as Machine>::Applied, Refusal>>;

struct Waiter<M: Machine> {
    term: Term,
    reply: Reply<M>,
}

struct Group<M: Machine> {
    name: String,
    raft: Raft,
    log: RecordLog<RaftRecord>,
    machine: M,
    /// Clients waiting for the entry they proposed at an index.
    waiters: BTreeMap<LogIndex, Waiter<M>>,
    /// The term in which this node, as leader, last proposed `ReturnAll`.
    announced_term: Option<Term>,
    /// Storage failed: the group stops taking part rather than act on unpersisted state.
    failed: bool,
    /// Told what the group does (invariant monitors in a simulation).
    inspector: Arc<dyn Inspector>,
    /// How many entries the durable log kept unchanged since the inspector was last told
    /// what is durable (`None`: nothing changed since).
    unreported: Option<LogIndex>,
}

impl<M: Machine> Group<M> {
    fn open(node: &QuorumNode<M>, name: &str) -> Result<Self, StorageError> {
        let (log, replay) = RecordLog::<RaftRecord>::open_file(
            node.disk.as_ref(),
            &node.raft_dir(),
            &format!("{name}.log"),
            node.config.fsync,
        )?;
        // A node with no state at all is new or lost its disk; it cannot tell which, and
        // a node that lost its disk may have voted in a term it no longer remembers, so it
        // abstains until it has learnt every peer's term (see `HardState::abstaining`).
        let mut hard = HardState {
            abstaining: true,
            ..HardState::default()
        };
        let mut entries: Vec<Entry> = Vec::new();
        for record in replay.records {
            match record {
                RaftRecord::Hard(h) => hard = h,
                RaftRecord::TruncateAfter { index } => entries.truncate(index as usize),
                RaftRecord::Entry(entry) if entry.index == entries.len() as u64 + 1 => entries.push(entry),
                RaftRecord::Entry(entry) => {
                    tracing::error!(
                        group = name,
                        index = entry.index,
                        "non-contiguous entry; log cut there"
                    );
                    break;
                }
            }
        }
        tracing::info!(group = name, term = hard.term, entries = entries.len(), damage = ?replay.damage, "raft group recovered");
        let peers = node
            .members(name)
            .into_iter()
            .filter(|id| *id != node.config.id)
            .collect();
        let mut raft_config = RaftConfig::new(node.config.id, peers);
        raft_config.election_ticks_min = 15;
        raft_config.election_ticks_max = 30;
        raft_config.heartbeat_ticks = 3;
        let seed = node.seed ^ crate::entropy::fnv64(name.as_bytes());
        node.inspector.raft(RaftEvent::Recovered {
            group: name,
            node: node.config.id,
            term: hard.term,
        });
        if log.is_synced() {
            node.inspector.raft(RaftEvent::Stored {
                group: name,
                node: node.config.id,
                kept: 0,
                entries: &entries,
            });
        }
        Ok(Self {
            name: name.to_string(),
            raft: Raft::new(raft_config, hard, entries, seed),
            log,
            machine: (node.make_machine)(name),
            waiters: BTreeMap::new(),
            announced_term: None,
            failed: false,
            inspector: Arc::clone(&node.inspector),
            unreported: None,
        })
    }

    /// Persists, then collects messages, then applies: the order `raft::Output` demands.
    fn drive(&mut self) -> Vec<Envelope> {
        let mut messages = Vec::new();
        while !self.failed {
            if self.raft.role() == Role::Leader && self.announced_term != Some(self.raft.term()) {
                self.announced_term = Some(self.raft.term());
                tracing::info!(group = self.name, term = self.raft.term(), "became leader");
                self.inspector.raft(RaftEvent::Elected {
                    group: &self.name,
                    node: self.raft.id(),
                    term: self.raft.term(),
                    members: self.raft.members(),
                    log: self.raft.log(),
                });
                if let Some(command) = self.machine.on_elected() {
                    let _ = self.raft.propose(encode(&command));
                }
            }
            let out = self.raft.take_output();
            if out.is_empty() {
                break;
            }
            // How many entries of the durable log this write leaves as they were.
            let changed = out
                .truncate_after
                .into_iter()
                .chain(out.append.first().map(|e| e.index - 1))
                .min();
            let mut records = Vec::with_capacity(out.append.len() + 2);
            let persisted_term = out.hard_state.as_ref().map(|h| h.term);
            records.extend(out.hard_state.map(RaftRecord::Hard));
            records.extend(
                out.truncate_after
                    .map(|index| RaftRecord::TruncateAfter { index }),
            );
            records.extend(out.append.into_iter().map(RaftRecord::Entry));
            if let Err(err) = self.log.append_all(&records) {
                tracing::error!(%err, "raft storage failed; this replica stops");
                self.failed = true;
                for (_, waiter) in std::mem::take(&mut self.waiters) {
                    let _ = waiter.reply.send(Err(Refusal::OutcomeUnknown(err.to_string())));
                }
                return Vec::new();
            }
            if let Some(kept) = changed {
                self.unreported = Some(self.unreported.map_or(kept, |k| k.min(kept)));
            }
            if let Some(kept) = self.unreported.filter(|_| self.log.is_synced()) {
                self.unreported = None;
                self.inspector.raft(RaftEvent::Stored {
                    group: &self.name,
                    node: self.raft.id(),
                    kept,
                    entries: self.raft.log().get(kept as usize..).unwrap_or(&[]),
                });
            }
            if let Some(term) = persisted_term {
                self.inspector.raft(RaftEvent::Persisted {
                    group: &self.name,
                    node: self.raft.id(),
                    term,
                });
            }
            messages.extend(out.messages);
            for (index, term, entry_term) in out.leader_commits {
                self.inspector.raft(RaftEvent::LeaderCommitted {
                    group: &self.name,
                    node: self.raft.id(),
                    term,
                    index,
                    entry_term,
                });
            }
            for entry in out.committed {
                self.inspector.raft(RaftEvent::Committed {
                    group: &self.name,
                    node: self.raft.id(),
                    index: entry.index,
                    term: entry.term,
                });
                self.apply(entry);
            }
        }
        messages
    }

    fn apply(&mut self, entry: Entry) {
        let applied = match entry.command.as_slice() {
            [] => None,
            bytes => match serde_json::from_slice::<M::Command>(bytes) {
                Ok(command) => Some(self.machine.apply(command)),
                Err(err) => {
                    tracing::error!(index = entry.index, %err, "undecodable command skipped");
                    None
                }
            },
        };
        if let Some(waiter) = self.waiters.remove(&entry.index) {
            let result = match applied {
                // Another leader's entry took this index: ours can never commit.
                _ if waiter.term != entry.term => Err(Refusal::NotLeader(None)),
                Some(applied) => Ok(applied),
                None => Err(Refusal::OutcomeUnknown("entry was not a command".into())),
            };
            let _ = waiter.reply.send(result);
        }
    }
}

/// A node's Raft groups, one per name, each replicating a machine `M`, and its queues to
/// the peers.
pub struct QuorumNode<M: Machine> {
    config: BrokerConfig,
    disk: Arc<dyn Disk>,
    inspector: Arc<dyn Inspector>,
    seed: u64,
    groups: BTreeMap<String, Group<M>>,
    outbound: BTreeMap<NodeId, mpsc::Sender<Outgoing>>,
    make_machine: Box<dyn Fn(&str) -> M + Send>,
    /// Which nodes replicate a group, by its name; `None`: every node replicates every group.
    placement: Option<Placement>,
    /// When each peer last answered or wrote to us.
    last_heard: BTreeMap<NodeId, Instant>,
}

/// Which nodes replicate the group of a name.
pub(crate) type Placement = Box<dyn Fn(&str) -> Vec<NodeId> + Send>;

/// The receiving ends of the per-peer queues, for [`spawn_peer_senders`].
pub(crate) type PeerQueues = BTreeMap<NodeId, (String, mpsc::Receiver<Outgoing>)>;

impl<M: Machine> QuorumNode<M> {
    /// Recovers every group found on disk; returns the node and its peers' queues.
    /// `placement` names the nodes that replicate each group (default: all of them).
    pub(crate) fn open(
        config: BrokerConfig,
        disk: Arc<dyn Disk>,
        inspector: Arc<dyn Inspector>,
        seed: u64,
        make_machine: Box<dyn Fn(&str) -> M + Send>,
        placement: Option<Placement>,
    ) -> Result<(Self, PeerQueues), StorageError> {
        let mut outbound = BTreeMap::new();
        let mut queues = BTreeMap::new();
        for (id, addr) in &config.peers {
            let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE_MAX);
            outbound.insert(*id, tx);
            queues.insert(*id, (addr.clone(), rx));
        }
        let mut node = Self {
            config,
            disk,
            inspector,
            seed,
            groups: BTreeMap::new(),
            outbound,
            make_machine,
            placement,
            last_heard: BTreeMap::new(),
        };
        let dir = node.raft_dir();
        node.disk
            .create_dir_all(&dir)
            .map_err(|source| StorageError::Io {
                op: "create_dir_all",
                path: dir.clone(),
                source,
            })?;
        let files = node.disk.list(&dir).map_err(|source| StorageError::Io {
            op: "list",
            path: dir.clone(),
            source,
        })?;
        for file in files {
            let Some(name) = file
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
            else {
                continue;
            };
            if valid_name(name) && node.hosts(name) {
                let group = Group::open(&node, name)?;
                node.groups.insert(name.to_string(), group);
            }
        }
        Ok((node, queues))
    }

    /// The nodes that replicate group `name`, this one included if it does.
    fn members(&self, name: &str) -> Vec<NodeId> {
        match &self.placement {
            Some(place) => place(name),
            None => self.config.members(),
        }
    }

    /// Whether this node replicates group `name`.
    pub fn hosts(&self, name: &str) -> bool {
        self.members(name).contains(&self.config.id)
    }

    fn raft_dir(&self) -> PathBuf {
        self.config.data_dir.join("raft")
    }

    fn group(&mut self, name: &str) -> Result<&mut Group<M>, Refusal> {
        if !self.groups.contains_key(name) {
            if !valid_name(name) {
                return Err(Refusal::BadName(format!(
                    "queue names are 1-255 of [A-Za-z0-9._-], not starting with '.': {name:?}"
                )));
            }
            if !self.hosts(name) {
                return Err(Refusal::NotMember);
            }
            if self.groups.len() >= self.config.limits.queues_max {
                return Err(Refusal::Unavailable(format!(
                    "node already holds {} queues",
                    self.groups.len()
                )));
            }
            let group = Group::open(self, name).map_err(|e| Refusal::Unavailable(e.to_string()))?;
            self.groups.insert(name.to_string(), group);
        }
        let group = self.groups.get_mut(name).expect("just ensured");
        if group.failed {
            return Err(Refusal::Unavailable("this replica's storage failed".into()));
        }
        Ok(group)
    }

    /// Proposes `command` on queue `name`; the receiver resolves once it is applied.
    pub fn propose(
        &mut self,
        name: &str,
        command: &M::Command,
    ) -> Result<oneshot::Receiver<Result<M::Applied, Refusal>>, Refusal> {
        let hint =
            |node: &Self, leader: Option<NodeId>| leader.and_then(|id| node.config.peers.get(&id).cloned());
        let group = self.group(name)?;
        let term = group.raft.term();
        let index = match group.raft.propose(encode(command)) {
            Ok(index) => index,
            Err(leader) => return Err(Refusal::NotLeader(hint(self, leader))),
        };
        let (tx, rx) = oneshot::channel();
        group.waiters.insert(index, Waiter { term, reply: tx });
        let messages = group.drive();
        self.route(name, messages);
        Ok(rx)
    }

    /// Handles messages from peer `from`; returns the replies addressed to it, and queues
    /// everything else for the other peers.
    pub fn receive(&mut self, from: NodeId, name: &str, messages: Vec<Message>) -> Vec<Message> {
        if !self.config.peers.contains_key(&from) {
            tracing::warn!(from, "raft messages from a node that is not a peer dropped");
            return Vec::new();
        }
        self.last_heard.insert(from, Instant::now());
        let Ok(group) = self.group(name) else {
            return Vec::new();
        };
        for message in messages {
            group.raft.step(from, message);
        }
        let out = group.drive();
        let (direct, others): (Vec<_>, Vec<_>) = out.into_iter().partition(|e| e.to == from);
        self.route(name, others);
        direct.into_iter().map(|e| e.message).collect()
    }

    /// Advances every group's clock by one tick.
    pub fn tick(&mut self) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(group) = self.groups.get_mut(&name).filter(|g| !g.failed) else {
                continue;
            };
            group.raft.tick();
            let messages = group.drive();
            self.route(&name, messages);
        }
    }

    /// Names of the queues this node replicates.
    pub fn queue_names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// The node's view of a queue, for logs: (role, term, commit index, messages held).
    pub fn describe(&self, name: &str) -> Option<(Role, Term, LogIndex, usize)> {
        self.groups.get(name).map(|g| {
            (
                g.raft.role(),
                g.raft.term(),
                g.raft.commit_index(),
                g.machine.size(),
            )
        })
    }

    /// Records that `peer` answered.
    pub(crate) fn heard(&mut self, peer: NodeId) {
        self.last_heard.insert(peer, Instant::now());
    }

    /// Whether `peer` was heard from within `within`.
    pub fn heard_within(&self, peer: NodeId, within: std::time::Duration) -> bool {
        self.last_heard.get(&peer).is_some_and(|t| t.elapsed() < within)
    }

    /// This node's id and the configuration it runs.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Whether this node leads group `name`, and the known leader's address otherwise.
    pub fn leadership(&self, name: &str) -> (bool, Option<String>) {
        match self.groups.get(name) {
            Some(g) if g.raft.role() == Role::Leader => (true, None),
            Some(g) => (
                false,
                g.raft.leader().and_then(|id| self.config.peers.get(&id).cloned()),
            ),
            None => (false, None),
        }
    }

    /// The leader of group `name`, by node id, if known.
    pub fn leader_id(&self, name: &str) -> Option<NodeId> {
        self.groups.get(name).and_then(|g| g.raft.leader())
    }

    /// The machine of group `name`, if this node has it.
    pub fn machine(&self, name: &str) -> Option<&M> {
        self.groups.get(name).map(|g| &g.machine)
    }

    /// Creates group `name` now (rather than on its first message), so that its elections
    /// start at once.
    pub fn ensure_group(&mut self, name: &str) -> Result<(), Refusal> {
        self.group(name).map(|_| ())
    }

    pub(crate) fn route(&self, name: &str, envelopes: Vec<Envelope>) {
        for envelope in envelopes {
            if let Some(queue) = self.outbound.get(&envelope.to) {
                let outgoing = Outgoing {
                    group: name.to_string(),
                    envelope,
                };
                // Full means the peer is unreachable or slow; Raft resends what matters.
                let _ = queue.try_send(outgoing);
            }
        }
    }
}

fn encode<C: Serialize>(command: &C) -> Vec<u8> {
    serde_json::to_vec(command).expect("commands always serialise")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{decode_records, encode_record};

    #[test]
    fn every_raft_record_kind_survives_the_disk_format() {
        let records = vec![
            RaftRecord::Hard(HardState {
                term: 3,
                voted_for: Some(2),
                ..HardState::default()
            }),
            RaftRecord::Entry(Entry {
                term: 3,
                index: 1,
                command: encode(&Command::ReturnAll),
            }),
            RaftRecord::TruncateAfter { index: 0 },
        ];
        let bytes: Vec<u8> = records.iter().flat_map(|r| encode_record(r).unwrap()).collect();
        let replay = decode_records::<RaftRecord>(&bytes);
        assert_eq!(replay.damage, None);
        assert_eq!(replay.records, records);
    }

    #[test]
    fn a_hosted_queue_command_is_written_as_a_queue_command_always_was() {
        let queue = Command::Ack { consumer: 3, seq: 9 };
        let hosted = HostedCommand::Queue(queue.clone());
        assert_eq!(encode(&hosted), encode(&queue));
        let append = HostedCommand::Stream(StreamCommand::Append { value: vec![1] });
        for command in [hosted, append] {
            let back: HostedCommand = serde_json::from_slice(&encode(&command)).unwrap();
            assert_eq!(back, command);
        }
    }

    #[test]
    fn a_command_for_the_other_kind_of_machine_changes_nothing() {
        let mut log = Hosted::Stream(StreamMachine::new(10));
        let before = log.clone();
        assert_eq!(
            log.apply(HostedCommand::Queue(Command::Get { consumer: 1 })),
            HostedApplied::WrongKind
        );
        assert_eq!(log, before);
        assert_eq!(log.on_elected(), None);
        let queue = Hosted::Queue(QueueMachine::new(10));
        assert_eq!(queue.on_elected(), Some(HostedCommand::Queue(Command::ReturnAll)));
    }

    #[test]
    fn queue_names_are_safe_file_names() {
        assert!(valid_name("jepsen.queue"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(256)));
    }
}
