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
use crate::inspect::{Inspector, QueueEvent};
use crate::queue::{ConnectionId, QueueError, QueueStore};
use crate::seams::Seams;

pub use crate::config::{MirrorCount, MirrorSettings, PartitionHandling, SyncMode};
pub use types::{Member, MirrorMessage, MirrorOp, View};

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
    /// Whether this node's disk records the leadership in `view` (or the node's place in
    /// it). A node whose disk was replaced knows a queue only from its peers: a leadership
    /// of its own that it does not remember is one whose messages it no longer holds.
    remembered: bool,
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
    /// When each peer last answered this node's link.
    last_answered: BTreeMap<u64, Instant>,
    /// The latest view of each queue each peer gossiped.
    peer_views: BTreeMap<(String, u64), View>,
    /// When each peer's latest ping arrived, and when that peer had last heard each other
    /// node, as the ping said.
    peer_heard: BTreeMap<u64, (Instant, Vec<(u64, Instant)>)>,
    booted: Instant,
    links: BTreeMap<u64, mpsc::Sender<LinkItem>>,
    entropy: Box<dyn Entropy>,
    /// Whether the last tick found this node paused (pause-minority).
    was_paused: bool,
    /// Told of confirms, acks and promotions (invariant monitors).
    inspector: Arc<dyn Inspector>,
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
        seams: &Seams,
    ) -> Result<Arc<Mutex<Self>>, QueueError> {
        let (network, spawner) = (&seams.network, &seams.spawner);
        let inspector = Arc::clone(&seams.inspector);
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
                abdicated: false,
            };
            replicas.insert(
                queue,
                Replica {
                    view,
                    role,
                    remembered: true,
                },
            );
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
            last_answered: BTreeMap::new(),
            peer_views: BTreeMap::new(),
            peer_heard: BTreeMap::new(),
            booted: Instant::now(),
            links,
            entropy,
            was_paused: false,
            inspector,
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
        crate::entropy::home_node(queue, &self.cluster)
    }

    /// Two-way contact: `node` both reached this node and answered it within the liveness
    /// timeout. Hearing alone is not enough: across a one-way cut a node hears a peer that
    /// cannot hear it, and would count it towards a majority it does not have.
    /// (Regression: a leader cut off one way still heard both mirrors, dropped the one that
    /// stopped confirming, counted the other as reachable, and confirmed alone; seed 146.)
    fn heard_recently(&self, node: u64) -> bool {
        let recent = |t: &Instant| t.elapsed() < LIVENESS_TIMEOUT;
        node == self.me
            || (self.last_heard.get(&node).is_some_and(recent)
                && self.last_answered.get(&node).is_some_and(recent))
    }

    /// Whether `node` counts as up. A peer that heard a node this node has lost, clearly
    /// later than this node last did, is on the far side of a partial partition (a bridge,
    /// a one-way cut): as RabbitMQ's pause-minority and autoheal do, it is treated as down
    /// too, which turns the partial partition into a full one. Otherwise both ends of a
    /// bridge each see a majority, and a leader and a promoted mirror can both confirm.
    /// (Regression: bridge partitions lost confirmed messages, seeds 2 and 20; and a one-way
    /// cut, seed 51, where the peer's reports arrived too seldom for a freshness test.)
    /// "Clearly later": by half the liveness timeout, so that a node that merely died,
    /// which every survivor stops hearing within a ping or two of the others, splits nobody.
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
        let Some((_, theirs)) = self.peer_heard.get(&node) else {
            return true;
        };
        !theirs.iter().any(|(x, their_last)| {
            *x != self.me
                && !self.heard_recently(*x)
                && self
                    .last_heard
                    .get(x)
                    .is_none_or(|mine| *their_last > *mine + LIVENESS_TIMEOUT / 2)
        })
    }

    /// Whether a majority, this node included, has reported losing `leader`: each peer
    /// counted sent a ping, after this node last heard the leader, saying it had not heard
    /// the leader for half the liveness timeout. Not hearing a leader is no evidence that
    /// others do not: a one-way cut or a slow link silences it for this node alone, and a
    /// mirror promoting then would split the queue. (Regression: a one-way cut isolated a
    /// mirror that still heard one peer now and then; it promoted, and the leader's later
    /// confirms were discarded on heal; seed 51.)
    ///
    /// A peer counts only while its own view of the queue still has this node as a mirror
    /// under the same token: a peer that accepted a view without it (the leader dropped it)
    /// knows of confirms this node's copy lacks.
    fn majority_lost(&self, queue: &str, leader: u64, token: u64) -> bool {
        let mine = self.last_heard.get(&leader).copied();
        let still_mirror = |p: u64| {
            self.peer_views
                .get(&(queue.to_string(), p))
                .is_some_and(|v| v.members.iter().any(|m| m.node == self.me && m.token == token))
        };
        let voters = self
            .cluster
            .iter()
            .filter(|p| **p != self.me && **p != leader && self.alive(**p) && still_mirror(**p))
            .filter(|p| {
                self.peer_heard.get(p).is_some_and(|(received, theirs)| {
                    mine.is_none_or(|m| *received > m)
                        && theirs.iter().find(|(x, _)| *x == leader).is_none_or(|(_, t)| {
                            received.saturating_duration_since(*t) >= LIVENESS_TIMEOUT / 2
                        })
                })
            })
            .count();
        (voters + 1) * 2 > self.cluster.len()
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
            // Its own first leadership is persisted only once it leads (in `tick`): a record
            // of a leadership on disk must mean the disk holds that leadership's messages.
            let role = match leader == self.me {
                true => Role::Recovering,
                false => Role::Outsider,
            };
            let remembered = leader != self.me;
            if remembered {
                if let Err(err) = self.store.set_leadership(queue, 1, leader) {
                    tracing::error!(%err, "could not persist leadership");
                }
            }
            let view = View {
                epoch: 1,
                leader,
                members: Vec::new(),
                abdicated: false,
            };
            self.replicas.insert(
                queue.to_string(),
                Replica {
                    view,
                    role,
                    remembered,
                },
            );
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

    /// Stores a publish and sends it to every mirror; returns its seq, the epoch it was
    /// stored in and who must confirm it.
    pub(crate) fn publish(
        &mut self,
        queue: &str,
        body: Vec<u8>,
    ) -> Result<(u64, u64, Confirmations), Refusal> {
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
        Ok((seq, view.epoch, waits))
    }

    /// The epoch this node leads `queue` in, if it leads it.
    pub(crate) fn leading_epoch(&self, queue: &str) -> Option<u64> {
        let replica = self.replicas.get(queue)?;
        matches!(replica.role, Role::Leader).then_some(replica.view.epoch)
    }

    /// Drops mirrors that failed to confirm; refuses if dropping them is not allowed, or if
    /// this node no longer leads `queue` in `epoch`, the epoch it stored the publish in: a
    /// leader superseded while it waited has discarded its queue, publish included.
    /// (Regression: a leader resumed from a process pause took publishes in its old epoch,
    /// learnt of the newer one while waiting for a mirror, and confirmed them against its
    /// adopted view; swarm seed 485 of mirrored lost 2.)
    pub(crate) fn confirm_without(
        &mut self,
        queue: &str,
        epoch: u64,
        failed: &[(u64, u64)],
    ) -> Result<(), Refusal> {
        if self.leading_epoch(queue) != Some(epoch) {
            return Err(Refusal::OutcomeUnknown(
                "superseded by a newer leadership while waiting for mirrors".into(),
            ));
        }
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
            let hears: Vec<u64> = self.cluster.iter().copied().filter(|n| self.alive(*n)).collect();
            return Err(Refusal::OutcomeUnknown(format!(
                "mirrors did not confirm and this node cannot see a majority (it hears {hears:?}; failed {failed_nodes:?})"
            )));
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

    /// Sends this node's view of `queue` to every peer, each answer saying whether the peer
    /// accepts it (it knows no newer leadership). A leader that dropped mirrors confirms
    /// only once a majority, itself included, has accepted the smaller view: its own sense
    /// of who is reachable may be up to a liveness timeout old, and a mirror on the far
    /// side may be promoting meanwhile. (Regression: a leader cut off one way dropped a
    /// silent mirror and confirmed alone while that mirror was promoted; seed 146.)
    pub(crate) fn announce_view(&self, queue: &str) -> Vec<oneshot::Receiver<bool>> {
        let Some(replica) = self.replicas.get(queue) else {
            return Vec::new();
        };
        let mut answers = Vec::new();
        for peer in self.addrs.keys() {
            let (tx, rx) = oneshot::channel();
            let message = MirrorMessage::View {
                queue: queue.to_string(),
                view: replica.view.clone(),
            };
            self.send(*peer, message, Some(tx));
            answers.push(rx);
        }
        answers
    }

    /// How many acceptances of a smaller view a leader needs before it confirms: a majority
    /// of the cluster under pause-minority; none under `ignore` and `autoheal`, which keep
    /// serving on both sides of a partition by design (and lose data for it).
    pub(crate) fn view_quorum(&self) -> usize {
        match self.settings.partition_handling {
            PartitionHandling::PauseMinority => self.cluster.len() / 2 + 1,
            PartitionHandling::Ignore | PartitionHandling::Autoheal => 0,
        }
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
        self.inspector.queue(QueueEvent::Acked {
            queue,
            node: self.me,
            seq: tag,
        });
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

    /// The publish of `seq`, stored as leader of `epoch`, is confirmed to its client: every
    /// counted mirror accepted it.
    pub(crate) fn confirmed(&self, queue: &str, seq: u64, epoch: u64) {
        self.inspector.queue(QueueEvent::Confirmed {
            queue,
            node: self.me,
            seq,
            on_disk: self.store.on_disk(),
            epoch: Some(epoch),
        });
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
    /// Takes in peer `from`'s messages as the protocol carried them; one answer each. A
    /// message that does not read as a [`MirrorMessage`] is refused.
    pub(crate) fn receive(&mut self, from: u64, messages: Vec<serde_json::Value>) -> Vec<bool> {
        if !self.addrs.contains_key(&from) {
            return vec![false; messages.len()];
        }
        self.last_heard.insert(from, Instant::now());
        messages
            .into_iter()
            .map(|m| match serde_json::from_value::<MirrorMessage>(m) {
                Ok(message) => self.receive_one(from, message),
                Err(err) => {
                    tracing::warn!(from, %err, "unreadable mirrored message refused");
                    false
                }
            })
            .collect()
    }

    /// Records that `peer` answered.
    pub(crate) fn heard(&mut self, peer: u64) {
        let now = Instant::now();
        self.last_heard.insert(peer, now);
        self.last_answered.insert(peer, now);
    }

    fn receive_one(&mut self, from: u64, message: MirrorMessage) -> bool {
        match message {
            MirrorMessage::Ping { heard } => {
                let now = Instant::now();
                let heard = heard
                    .into_iter()
                    .map(|(node, ago)| (node, now.checked_sub(Duration::from_millis(ago)).unwrap_or(now)))
                    .collect();
                self.peer_heard.insert(from, (now, heard));
                true
            }
            MirrorMessage::Rejoin { queue } => {
                self.rejoin(&queue, from);
                true
            }
            MirrorMessage::View { queue, view } => {
                self.peer_views.insert((queue.clone(), from), view.clone());
                let superseded = self.replica(&queue).view.beats(&view);
                self.learn(&queue, view, from);
                !superseded
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
                    abdicated: false,
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
                    // Only a join or a snapshot starts a copy. Anything else is for a copy this
                    // process never had: it restarted, too fast for the leader to notice, and
                    // must not pass for the mirror it replaced. (Regression: a restarted mirror
                    // took later publishes under its old token, counted as synchronised, and
                    // was promoted with most of the queue missing; swarm seed 69.)
                    if !matches!(ops.first(), Some(MirrorOp::Join | MirrorOp::Snapshot { .. })) {
                        self.send(from, MirrorMessage::Rejoin { queue }, None);
                        return false;
                    }
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
                        MirrorOp::Join => copy.clear(),
                    }
                }
                true
            }
        }
    }

    /// A mirror lost its copy: forget its membership and add it again, with a new token
    /// and a join or a snapshot. Without this, a leader that cannot drop the mirror (no
    /// majority without it) would wait on it forever. (Found by seed 5 with automatic sync:
    /// two mirrors resumed from a pause and the leader stalled for 15 s.)
    fn rejoin(&mut self, queue: &str, node: u64) {
        let leading = self
            .replicas
            .get(queue)
            .is_some_and(|r| matches!(r.role, Role::Leader));
        if !leading || self.paused() {
            return;
        }
        let replica = self.replicas.get_mut(queue).expect("checked above");
        let before = replica.view.members.len();
        replica.view.members.retain(|m| m.node != node);
        if replica.view.members.len() != before {
            tracing::info!(queue, node, "mirror lost its copy; adding it again");
            self.maintain_mirrors(queue);
        }
    }

    /// Takes in another node's view of `queue`.
    fn learn(&mut self, queue: &str, view: View, from: u64) {
        let mine = self.replica(queue).view.clone();
        let same_leadership = view.epoch == mine.epoch && view.leader == mine.leader;
        if view.beats(&mine) {
            self.adopt(queue, view);
        } else if same_leadership && from == view.leader && view.abdicated {
            // Keep the mirror list this node knows: the abdicating leader lost its own.
            if !mine.abdicated {
                tracing::warn!(
                    queue,
                    epoch = view.epoch,
                    leader = view.leader,
                    "the leader abdicated"
                );
            }
            self.replicas.get_mut(queue).expect("ensured").view.abdicated = true;
        } else if view == mine || (same_leadership && from == view.leader) {
            // The leader is the authority on its own mirror list.
            self.replicas.get_mut(queue).expect("ensured").view.members = view.members;
        }
    }

    /// Accepts a leadership that supersedes this node's; a superseded leader discards its queue.
    fn adopt(&mut self, queue: &str, view: View) {
        let me = self.me;
        let replica = self.replica(queue);
        let was_leading = matches!(replica.role, Role::Leader | Role::Recovering);
        if view.leader == me && !(was_leading && replica.remembered) {
            // Peers name this node leader of a leadership its disk does not record: the
            // disk was replaced, and the queue it led is gone with it.
            self.abdicate(queue, view);
            return;
        }
        replica.view = view.clone();
        replica.remembered = true;
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
                1 if booted && !self.paused() => self.resume_leadership(&queue),
                2 if booted && !self.paused() => self.maybe_promote(&queue),
                _ => {}
            }
            // A recovering leader listens: its view has lost its mirror list (a restart
            // forgets it), and peers take a leader's list as the truth. (Regression: a
            // leader whose disk was replaced erased its mirrors from every peer's view
            // during its grace period, and so could not tell it had led them.)
            if matches!(self.replicas[&queue].role, Role::Recovering) {
                continue;
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

    /// A recovering leader's grace period is over. One that remembers its leadership
    /// resumes it. One that does not (it has led nothing yet, or its disk was replaced)
    /// leads the queue's first epoch only if no peer knows of a leadership of this node
    /// that may have confirmed messages (one with mirrors, or a later epoch): those
    /// messages are not on this disk.
    fn resume_leadership(&mut self, queue: &str) {
        let replica = &self.replicas[queue];
        if !replica.remembered {
            let me = self.me;
            let lost = self
                .peer_views
                .iter()
                .filter(|((q, _), v)| q == queue && v.leader == me)
                .map(|(_, v)| v)
                .filter(|v| v.epoch >= replica.view.epoch && (v.epoch > 1 || !v.members.is_empty()))
                .max_by_key(|v| v.epoch)
                .cloned();
            if let Some(view) = lost {
                self.abdicate(queue, view);
                return;
            }
            let epoch = replica.view.epoch;
            if let Err(err) = self.store.set_leadership(queue, epoch, me) {
                tracing::error!(%err, "could not persist leadership; not leading");
                return;
            }
        }
        let replica = self.replicas.get_mut(queue).expect("listed");
        replica.remembered = true;
        replica.role = Role::Leader;
        tracing::info!(queue, epoch = replica.view.epoch, "resuming leadership from disk");
    }

    /// Gives up `view`, a leadership of this node that its disk does not hold: it gossips
    /// the view marked abdicated, so that a synchronised mirror takes over at once rather
    /// than wait for a leader that is alive but empty, and it never serves that epoch.
    /// Nothing is persisted: a restart finds the queue unknown, and learns it again.
    /// (Found by the `wipe` fault: the replaced leader resumed its epoch with an empty
    /// queue and lost every confirmed message; seeds 1-3 lost 184-244.)
    fn abdicate(&mut self, queue: &str, view: View) {
        tracing::warn!(
            queue,
            epoch = view.epoch,
            "peers name this node leader, but its disk holds no such leadership: abdicating"
        );
        let replica = self.replicas.get_mut(queue).expect("ensured by the caller");
        replica.role = Role::Outsider;
        replica.remembered = false;
        replica.view = View {
            abdicated: true,
            ..view
        };
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
        // New members with their first message: a join, or a snapshot to sync from.
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
            snapshots.push((node, token));
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
            let ops = match sync {
                SyncMode::Automatic => vec![MirrorOp::Snapshot {
                    messages: self.store.messages(queue),
                }],
                SyncMode::Manual => vec![MirrorOp::Join],
            };
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
        let abdicated = replica.view.abdicated;
        if (self.alive(replica.view.leader) && !abdicated) || replica.view.leader == self.me {
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
        // An abdicated leader will not serve its epoch again: no need for the others to
        // confirm that they lost it.
        if self.settings.partition_handling == PartitionHandling::PauseMinority
            && !abdicated
            && !self.majority_lost(queue, replica.view.leader, *token)
        {
            return;
        }
        let Role::Mirror { copy, .. } = &self.replicas[queue].role else {
            unreachable!("checked above")
        };
        let synced = replica.view.members.iter().any(|m| m.node == self.me && m.synced);
        let view = View {
            epoch: replica.view.epoch + 1,
            leader: self.me,
            members: Vec::new(),
            abdicated: false,
        };
        // Persist, then announce: a promotion that is not on disk must never be gossiped,
        // or the old leader discards its queue for a leadership that a restart forgets.
        // (Regression: a torn write failed the install, the node still gossiped epoch 2,
        // and the old leader purged 296 confirmed messages; swarm seed 140.)
        let messages: Vec<(u64, Vec<u8>)> = copy.iter().map(|(seq, body)| (*seq, body.clone())).collect();
        if let Err(err) = self
            .store
            .install(queue, &messages)
            .and_then(|()| self.store.set_leadership(queue, view.epoch, view.leader))
        {
            tracing::error!(%err, "could not persist the promotion; not promoting");
            return;
        }
        let hears: Vec<u64> = self.cluster.iter().copied().filter(|n| self.alive(*n)).collect();
        tracing::warn!(
            queue,
            epoch = view.epoch,
            synced,
            messages = messages.len(),
            ?hears,
            "promoted to leader"
        );
        let held: Vec<u64> = messages.iter().map(|(seq, _)| *seq).collect();
        self.inspector.queue(QueueEvent::Promoted {
            queue,
            node: self.me,
            epoch: view.epoch,
            synced,
            held: &held,
        });
        let replica = self.replicas.get_mut(queue).expect("listed");
        replica.role = Role::Leader;
        replica.remembered = true;
        replica.view = view;
    }
}
