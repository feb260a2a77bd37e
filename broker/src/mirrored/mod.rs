//! `mirrored` mode: RabbitMQ's classic mirrored queues.
//!
//! A queue has a leader (first on its home node) and mirrors. A publish is confirmed once
//! every current mirror has it; a mirror that does not answer is dropped from the view
//! (unless this node cannot see a majority under `pause-minority`, where nothing is
//! confirmed). Deliveries happen at the leader; acknowledgements are replicated. When the
//! leader is lost, the oldest synchronised mirror promotes itself in a new epoch; a mirror
//! that joins later starts empty and, under manual sync, receives only new messages, so it
//! is synchronised only once all older messages are consumed. Nodes gossip what they know
//! of each queue's view, so two leaders (after a partition under `ignore`) meet, and the one
//! with the older epoch discards its queue. The leader's queue and every node's knowledge
//! of the leadership are durable; mirrors' copies live in memory.

mod link;
mod types;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::entropy::Entropy;
use crate::net::Network;
use crate::queue::{ConnectionId, QueueError, QueueStore};
use crate::seams::Spawner;

pub use types::{
    Member, MirrorCount, MirrorMessage, MirrorOp, MirrorSettings, PartitionHandling, SyncMode, View,
};

/// A peer not heard from for this long counts as down.
const LIVENESS_TIMEOUT: Duration = Duration::from_millis(600);
/// Gossip and membership upkeep run this often.
const TICK: Duration = Duration::from_millis(100);
/// After a start, how long a node listens before it resumes or takes over leadership.
const BOOT_GRACE: Duration = Duration::from_millis(1000);
/// How long a publish waits for its mirrors.
pub(crate) const REPLICATE_TIMEOUT: Duration = Duration::from_millis(400);
/// Bound on messages queued for one peer.
const LINK_QUEUE_MAX: usize = 8192;

enum Role {
    /// Serves the queue; its messages are in the node's durable store.
    Leader,
    /// A former leader just restarted, waiting to learn whether it still leads.
    Recovering,
    /// Holds a copy for the membership `token`.
    Mirror {
        token: u64,
        copy: BTreeMap<u64, Vec<u8>>,
    },
    /// Knows the queue but holds nothing.
    Outsider,
}

struct Replica {
    view: View,
    role: Role,
}

/// Why a client request was not served.
pub(crate) enum Refusal {
    NotLeader(Option<String>),
    Unavailable(String),
    OutcomeUnknown(String),
    Queue(QueueError),
}

/// The answers a publish waits for: (mirror node, membership token, answer).
pub(crate) type Confirmations = Vec<(u64, u64, oneshot::Receiver<bool>)>;

/// One item for a peer's link: a message and, for replication, who waits for the answer.
pub(crate) struct LinkItem {
    pub message: MirrorMessage,
    pub reply: Option<oneshot::Sender<bool>>,
}

/// A mirrored-mode node.
pub struct MirrorNode {
    me: u64,
    cluster: Vec<u64>,
    addrs: BTreeMap<u64, String>,
    settings: MirrorSettings,
    store: QueueStore,
    replicas: BTreeMap<String, Replica>,
    last_heard: BTreeMap<u64, Instant>,
    /// When each peer last heard each other node, as its latest ping said.
    peer_heard: BTreeMap<u64, Vec<(u64, Instant)>>,
    booted: Instant,
    links: BTreeMap<u64, mpsc::Sender<LinkItem>>,
    entropy: Box<dyn Entropy>,
    /// Whether the last tick found this node paused (pause-minority).
    was_paused: bool,
}

pub(crate) fn lock(node: &Mutex<MirrorNode>) -> MutexGuard<'_, MirrorNode> {
    node.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MirrorNode {
    /// Builds the node from its durable store and starts its links and clock.
    pub(crate) fn start(
        me: u64,
        peers: &BTreeMap<u64, String>,
        settings: MirrorSettings,
        mut store: QueueStore,
        entropy: Box<dyn Entropy>,
        network: &Arc<dyn Network>,
        spawner: &Arc<dyn Spawner>,
    ) -> Result<Arc<Mutex<Self>>, QueueError> {
        let mut replicas = BTreeMap::new();
        for (queue, (epoch, leader)) in store.leadership().clone() {
            let role = if leader == me {
                Role::Recovering
            } else {
                // Content from a leadership this node lost is stale.
                store.purge(&queue)?;
                Role::Outsider
            };
            let view = View {
                epoch,
                leader,
                members: Vec::new(),
            };
            replicas.insert(queue, Replica { view, role });
        }
        let mut cluster: Vec<u64> = peers.keys().copied().chain([me]).collect();
        cluster.sort_unstable();
        let mut links = BTreeMap::new();
        let mut receivers = Vec::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::channel(LINK_QUEUE_MAX);
            links.insert(*id, tx);
            receivers.push((*id, addr.clone(), rx));
        }
        let node = Arc::new(Mutex::new(Self {
            me,
            cluster,
            addrs: peers.clone(),
            settings,
            store,
            replicas,
            last_heard: BTreeMap::new(),
            peer_heard: BTreeMap::new(),
            booted: Instant::now(),
            links,
            entropy,
            was_paused: false,
        }));
        for (peer, addr, rx) in receivers {
            link::spawn(&node, peer, addr, rx, network, spawner);
        }
        let ticking = Arc::clone(&node);
        spawner.spawn(Box::pin(async move {
            loop {
                tokio::time::sleep(TICK).await;
                lock(&ticking).tick();
            }
        }));
        Ok(node)
    }

    fn home(&self, queue: &str) -> u64 {
        let hash = queue.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        self.cluster[(hash % self.cluster.len() as u64) as usize]
    }

    fn heard_recently(&self, node: u64) -> bool {
        node == self.me
            || self
                .last_heard
                .get(&node)
                .is_some_and(|t| t.elapsed() < LIVENESS_TIMEOUT)
    }

    /// Whether `node` counts as up. A peer that clearly hears a node this node has clearly
    /// lost is on the far side of a partial partition (a bridge, a one-way cut): as
    /// RabbitMQ's pause-minority and autoheal do, it is treated as down too, which turns the
    /// partial partition into a full one. Otherwise both ends of a bridge each see a
    /// majority, and a leader and a promoted mirror can both confirm. (Regression: bridge
    /// partitions lost confirmed messages, seeds 2 and 20.) "Clearly": the peer heard it
    /// within half the liveness timeout, so that a node that merely died, which every
    /// survivor stops hearing within a ping or two of the others, splits nobody.
    fn alive(&self, node: u64) -> bool {
        if !self.heard_recently(node) {
            return false;
        }
        if node == self.me
            || self.settings.partition_handling == PartitionHandling::Ignore
            || self.booted.elapsed() < LIVENESS_TIMEOUT
        {
            return true;
        }
        let Some(theirs) = self.peer_heard.get(&node) else {
            return true;
        };
        !theirs.iter().any(|(x, at)| {
            *x != self.me && at.elapsed() < LIVENESS_TIMEOUT / 2 && !self.heard_recently(*x)
        })
    }

    fn sees_majority(&self) -> bool {
        let alive = self.cluster.iter().filter(|n| self.alive(**n)).count();
        alive * 2 > self.cluster.len()
    }

    fn paused(&self) -> bool {
        self.settings.partition_handling == PartitionHandling::PauseMinority && !self.sees_majority()
    }

    /// Whether a silent mirror may be dropped so that confirms go on without it.
    fn may_drop_mirrors(&self) -> bool {
        self.settings.partition_handling != PartitionHandling::PauseMinority || self.sees_majority()
    }

    fn replica(&mut self, queue: &str) -> &mut Replica {
        if !self.replicas.contains_key(queue) {
            let leader = self.home(queue);
            // A node that just started may have missed a newer leadership while it was down:
            // it listens for the grace period before it leads, as a restarted leader does.
            // (Regression: the initial leadership was never persisted, so a restarted home
            // node led epoch 1 again at once and confirmed messages it later discarded.)
            let role = match leader == self.me {
                true if self.booted.elapsed() >= BOOT_GRACE => Role::Leader,
                true => Role::Recovering,
                false => Role::Outsider,
            };
            if let Err(err) = self.store.set_leadership(queue, 1, leader) {
                tracing::error!(%err, "could not persist leadership");
            }
            let view = View {
                epoch: 1,
                leader,
                members: Vec::new(),
            };
            self.replicas.insert(queue.to_string(), Replica { view, role });
        }
        self.replicas.get_mut(queue).expect("just ensured")
    }

    /// Checks this node may serve `queue` to a client now.
    fn serving(&mut self, queue: &str) -> Result<(), Refusal> {
        if self.paused() {
            return Err(Refusal::Unavailable(
                "this node cannot see a majority (pause-minority)".into(),
            ));
        }
        let me = self.me;
        let replica = self.replica(queue);
        match replica.role {
            Role::Leader => Ok(()),
            Role::Recovering => Err(Refusal::Unavailable(
                "recovering: listening for a newer leadership before leading again".into(),
            )),
            _ => {
                let leader = replica.view.leader;
                let hint = (leader != me && self.alive(leader))
                    .then(|| self.addrs.get(&leader).cloned())
                    .flatten();
                Err(Refusal::NotLeader(hint))
            }
        }
    }

    fn send(&self, to: u64, message: MirrorMessage, reply: Option<oneshot::Sender<bool>>) {
        if let Some(link) = self.links.get(&to) {
            // A full link means the peer is not keeping up; a waiter sees a failure.
            let _ = link.try_send(LinkItem { message, reply });
        }
    }

    /// Stores a publish and sends it to every mirror; returns who must confirm it.
    pub(crate) fn publish(&mut self, queue: &str, body: Vec<u8>) -> Result<(u64, Confirmations), Refusal> {
        self.serving(queue)?;
        let seq = self.store.publish(queue, body.clone()).map_err(Refusal::Queue)?;
        let view = self.replicas[queue].view.clone();
        let mut waits = Vec::new();
        for member in &view.members {
            let (tx, rx) = oneshot::channel();
            let ops = vec![MirrorOp::Publish {
                seq,
                body: body.clone(),
            }];
            let message = MirrorMessage::Replicate {
                queue: queue.to_string(),
                epoch: view.epoch,
                token: member.token,
                ops,
            };
            self.send(member.node, message, Some(tx));
            waits.push((member.node, member.token, rx));
        }
        Ok((seq, waits))
    }

    /// Drops mirrors that failed to confirm; refuses if dropping them is not allowed.
    pub(crate) fn confirm_without(&mut self, queue: &str, failed: &[(u64, u64)]) -> Result<(), Refusal> {
        if failed.is_empty() {
            return Ok(());
        }
        // The mirrors that just failed to answer are the freshest evidence of what this node
        // can reach: they must not count toward the majority that licenses dropping them.
        // (Regression: an isolated leader whose liveness view still counted them dropped both
        // and confirmed alone, 300 ms into a partition; the majority side then promoted.)
        let failed_nodes: Vec<u64> = failed.iter().map(|(node, _)| *node).collect();
        let reachable = self
            .cluster
            .iter()
            .filter(|n| self.alive(**n) && !failed_nodes.contains(n))
            .count();
        let pausing = self.settings.partition_handling == PartitionHandling::PauseMinority;
        if pausing && reachable * 2 <= self.cluster.len() {
            return Err(Refusal::OutcomeUnknown(
                "mirrors did not confirm and this node cannot see a majority".into(),
            ));
        }
        if let Some(replica) = self.replicas.get_mut(queue) {
            replica
                .view
                .members
                .retain(|m| !failed.contains(&(m.node, m.token)));
        }
        tracing::warn!(queue, ?failed, "mirrors dropped after failing to confirm");
        Ok(())
    }

    /// A get at the leader.
    pub(crate) fn get(
        &mut self,
        queue: &str,
        connection: ConnectionId,
    ) -> Result<Option<(u64, Vec<u8>)>, Refusal> {
        self.serving(queue)?;
        Ok(self.store.get(queue, connection))
    }

    /// An ack at the leader, replicated to the mirrors without waiting.
    pub(crate) fn ack(&mut self, queue: &str, tag: u64, connection: ConnectionId) -> Result<(), Refusal> {
        self.serving(queue)?;
        self.store.ack(queue, tag, connection).map_err(Refusal::Queue)?;
        let view = self.replicas[queue].view.clone();
        for member in &view.members {
            let message = MirrorMessage::Replicate {
                queue: queue.to_string(),
                epoch: view.epoch,
                token: member.token,
                ops: vec![MirrorOp::Remove { seq: tag }],
            };
            self.send(member.node, message, None);
        }
        Ok(())
    }

    /// A nack at the leader: the delivery goes back to the queue (mirrors never saw it leave).
    pub(crate) fn nack(&mut self, queue: &str, tag: u64, connection: ConnectionId) -> Result<(), Refusal> {
        self.serving(queue)?;
        self.store.nack(queue, tag, connection).map_err(Refusal::Queue)
    }

    /// This node's id.
    pub(crate) fn me(&self) -> u64 {
        self.me
    }

    /// The other nodes and their addresses.
    pub(crate) fn peers(&self) -> Vec<(u64, String)> {
        self.addrs.clone().into_iter().collect()
    }

    /// The leader of `queue` in this node's view.
    pub(crate) fn leader_of(&mut self, queue: &str) -> Option<u64> {
        Some(self.replica(queue).view.leader)
    }

    /// Returns a closed connection's deliveries to the queue.
    pub(crate) fn release(&mut self, connection: ConnectionId) {
        self.store.release(connection);
    }

    /// Handles messages from peer `from`; one answer each.
    pub(crate) fn receive(&mut self, from: u64, messages: Vec<MirrorMessage>) -> Vec<bool> {
        if !self.addrs.contains_key(&from) {
            return vec![false; messages.len()];
        }
        self.last_heard.insert(from, Instant::now());
        messages.into_iter().map(|m| self.receive_one(from, m)).collect()
    }

    /// Records that `peer` answered.
    pub(crate) fn heard(&mut self, peer: u64) {
        self.last_heard.insert(peer, Instant::now());
    }

    fn receive_one(&mut self, from: u64, message: MirrorMessage) -> bool {
        match message {
            MirrorMessage::Ping { heard } => {
                let now = Instant::now();
                let heard = heard
                    .into_iter()
                    .map(|(node, ago)| (node, now.checked_sub(Duration::from_millis(ago)).unwrap_or(now)))
                    .collect();
                self.peer_heard.insert(from, heard);
                true
            }
            MirrorMessage::View { queue, view } => {
                self.learn(&queue, view, from);
                true
            }
            MirrorMessage::Replicate {
                queue,
                epoch,
                token,
                ops,
            } => {
                let members = self.replica(&queue).view.members.clone();
                let theirs = View {
                    epoch,
                    leader: from,
                    members,
                };
                let mine = self.replicas[&queue].view.clone();
                if mine.beats(&theirs) {
                    return false;
                }
                if theirs.beats(&mine) {
                    self.adopt(&queue, theirs);
                }
                let replica = self.replicas.get_mut(&queue).expect("ensured above");
                if !matches!(&replica.role, Role::Mirror { token: t, .. } if *t == token) {
                    replica.role = Role::Mirror {
                        token,
                        copy: BTreeMap::new(),
                    };
                }
                let Role::Mirror { copy, .. } = &mut replica.role else {
                    unreachable!("set above")
                };
                for op in ops {
                    match op {
                        MirrorOp::Publish { seq, body } => {
                            copy.insert(seq, body);
                        }
                        MirrorOp::Remove { seq } => {
                            copy.remove(&seq);
                        }
                        MirrorOp::Snapshot { messages } => *copy = messages.into_iter().collect(),
                    }
                }
                true
            }
        }
    }

    /// Takes in another node's view of `queue`.
    fn learn(&mut self, queue: &str, view: View, from: u64) {
        let mine = self.replica(queue).view.clone();
        if view.beats(&mine) {
            self.adopt(queue, view);
        } else if view == mine
            || (view.epoch == mine.epoch && view.leader == mine.leader && from == view.leader)
        {
            // The leader is the authority on its own mirror list.
            self.replicas.get_mut(queue).expect("ensured").view.members = view.members;
        }
    }

    /// Accepts a leadership that supersedes this node's; a superseded leader discards its queue.
    fn adopt(&mut self, queue: &str, view: View) {
        let me = self.me;
        let replica = self.replica(queue);
        let was_leading = matches!(replica.role, Role::Leader | Role::Recovering);
        replica.view = view.clone();
        if was_leading && view.leader != me {
            replica.role = Role::Outsider;
            tracing::warn!(
                queue,
                epoch = view.epoch,
                leader = view.leader,
                "superseded: discarding this node's queue"
            );
            if let Err(err) = self.store.purge(queue) {
                tracing::error!(%err, "purge failed");
            }
        }
        if let Err(err) = self.store.set_leadership(queue, view.epoch, view.leader) {
            tracing::error!(%err, "could not persist leadership");
        }
    }

    /// Gossip, membership upkeep, recovery and promotion.
    fn tick(&mut self) {
        self.resume_after_pause();
        let peers: Vec<u64> = self.addrs.keys().copied().collect();
        for peer in &peers {
            let heard = self
                .last_heard
                .iter()
                .map(|(node, at)| (*node, at.elapsed().as_millis() as u64))
                .collect();
            self.send(*peer, MirrorMessage::Ping { heard }, None);
        }
        let booted = self.booted.elapsed() >= BOOT_GRACE;
        let queues: Vec<String> = self.replicas.keys().cloned().collect();
        for queue in queues {
            let role = match &self.replicas[&queue].role {
                Role::Leader => 0,
                Role::Recovering => 1,
                _ => 2,
            };
            match role {
                0 if !self.paused() => self.maintain_mirrors(&queue),
                1 if booted && !self.paused() => {
                    tracing::info!(
                        queue,
                        epoch = self.replicas[&queue].view.epoch,
                        "resuming leadership from disk"
                    );
                    self.replicas.get_mut(&queue).expect("listed").role = Role::Leader;
                }
                2 if booted && !self.paused() => self.maybe_promote(&queue),
                _ => {}
            }
            let view = self.replicas[&queue].view.clone();
            for peer in &peers {
                self.send(
                    *peer,
                    MirrorMessage::View {
                        queue: queue.clone(),
                        view: view.clone(),
                    },
                    None,
                );
            }
        }
    }

    /// A node resuming from a pause cannot know what it missed, as RabbitMQ's pause-minority
    /// nodes restart: mirrors drop their copies (their membership may be gone) and leaders
    /// listen again before leading, through a fresh grace period.
    /// (Regression: a mirror cut off in a minority heard one majority peer but not yet the
    /// leader after the heal, promoted its stale copy in a new epoch, and superseded the
    /// leader that had confirmed messages without it.)
    fn resume_after_pause(&mut self) {
        let paused = self.paused();
        if self.was_paused && !paused {
            tracing::warn!("resuming after a pause: dropping mirror copies, listening before leading");
            for replica in self.replicas.values_mut() {
                replica.role = match replica.role {
                    Role::Leader | Role::Recovering => Role::Recovering,
                    _ => Role::Outsider,
                };
            }
            self.booted = Instant::now();
        }
        self.was_paused = paused;
    }

    fn maintain_mirrors(&mut self, queue: &str) {
        let may_drop = self.may_drop_mirrors();
        let alive: Vec<u64> = self
            .cluster
            .iter()
            .copied()
            .filter(|n| *n != self.me && self.alive(*n))
            .collect();
        let (oldest, next_seq) = self.store.seq_range(queue);
        let wanted = self.settings.mirrors.unwrap_or(usize::MAX);
        let sync = self.settings.sync;
        let mut snapshots = Vec::new();
        let mut view = self.replicas[queue].view.clone();
        if may_drop {
            view.members.retain(|m| alive.contains(&m.node));
        }
        for node in alive {
            if view.members.len() >= wanted || view.members.iter().any(|m| m.node == node) {
                continue;
            }
            let token = self.entropy.next_u64();
            let join_seq = match sync {
                SyncMode::Manual => next_seq,
                SyncMode::Automatic => 0,
            };
            if sync == SyncMode::Automatic {
                snapshots.push((node, token));
            }
            tracing::info!(queue, node, join_seq, "mirror added");
            view.members.push(Member {
                node,
                token,
                join_seq,
                synced: false,
            });
        }
        for member in &mut view.members {
            member.synced |= oldest.is_none_or(|o| o >= member.join_seq);
        }
        for (node, token) in snapshots {
            let messages = self.store.messages(queue);
            let ops = vec![MirrorOp::Snapshot { messages }];
            let message = MirrorMessage::Replicate {
                queue: queue.to_string(),
                epoch: view.epoch,
                token,
                ops,
            };
            self.send(node, message, None);
        }
        self.replicas.get_mut(queue).expect("listed").view = view;
    }

    fn maybe_promote(&mut self, queue: &str) {
        let replica = &self.replicas[queue];
        if self.alive(replica.view.leader) || replica.view.leader == self.me {
            return;
        }
        let Role::Mirror { token, .. } = &replica.role else {
            return;
        };
        let first = replica
            .view
            .members
            .iter()
            .find(|m| self.alive(m.node) && (m.synced || self.settings.promote_unsynced));
        if first.is_none_or(|m| m.node != self.me || m.token != *token) {
            return;
        }
        let replica = self.replicas.get_mut(queue).expect("listed");
        let Role::Mirror { copy, .. } = std::mem::replace(&mut replica.role, Role::Leader) else {
            unreachable!("checked above")
        };
        let synced = replica.view.members.iter().any(|m| m.node == self.me && m.synced);
        let view = View {
            epoch: replica.view.epoch + 1,
            leader: self.me,
            members: Vec::new(),
        };
        replica.view = view.clone();
        tracing::warn!(
            queue,
            epoch = view.epoch,
            synced,
            messages = copy.len(),
            "promoted to leader"
        );
        let messages: Vec<(u64, Vec<u8>)> = copy.into_iter().collect();
        if let Err(err) = self.store.install(queue, &messages) {
            tracing::error!(%err, "could not persist the promoted copy");
        }
        if let Err(err) = self.store.set_leadership(queue, view.epoch, view.leader) {
            tracing::error!(%err, "could not persist leadership");
        }
    }
}
