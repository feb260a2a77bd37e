//! Carrying Raft messages between nodes, and the clock that drives elections.
//!
//! One sender task per peer owns a connection to it and sends batches, one request at a
//! time; the peer answers each with the replies addressed back. A send that is not answered
//! within the deadline drops the connection (a partitioned TCP stream may never deliver
//! again) and the next batch reconnects.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{Machine, Outgoing, PeerQueues, QuorumNode};
use crate::client::Client;
use crate::net::Network;
use crate::raft::{Message, NodeId};
use crate::seams::Spawner;

/// Deadline for one exchange with a peer.
const PEER_TIMEOUT: Duration = Duration::from_millis(300);
/// Most messages carried in one request.
const BATCH_MAX: usize = 512;

pub(crate) fn lock<M: Machine>(node: &Mutex<QuorumNode<M>>) -> MutexGuard<'_, QuorumNode<M>> {
    node.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts one sender task per peer.
pub(crate) fn spawn_peer_senders<M: Machine>(
    node: &Arc<Mutex<QuorumNode<M>>>,
    queues: PeerQueues,
    me: NodeId,
    network: &Arc<dyn Network>,
    spawner: &Arc<dyn Spawner>,
) {
    for (peer, (addr, queue)) in queues {
        let sender = PeerSender {
            node: Arc::clone(node),
            network: Arc::clone(network),
            me,
            peer,
            addr,
            connection: None,
        };
        spawner.spawn(Box::pin(sender.run(queue)));
    }
}

/// Starts the task that ticks every group's clock.
pub(crate) fn spawn_ticker<M: Machine>(
    node: &Arc<Mutex<QuorumNode<M>>>,
    tick: Duration,
    spawner: &Arc<dyn Spawner>,
) {
    let node = Arc::clone(node);
    spawner.spawn(Box::pin(async move {
        loop {
            tokio::time::sleep(tick).await;
            lock(&node).tick();
        }
    }));
}

struct PeerSender<M: Machine> {
    node: Arc<Mutex<QuorumNode<M>>>,
    network: Arc<dyn Network>,
    me: NodeId,
    peer: NodeId,
    addr: String,
    connection: Option<Client>,
}

impl<M: Machine> PeerSender<M> {
    async fn run(mut self, mut queue: tokio::sync::mpsc::Receiver<Outgoing>) {
        while let Some(first) = queue.recv().await {
            // Everything queued now goes out together, grouped by Raft group.
            let mut batches: BTreeMap<String, Vec<Message>> = BTreeMap::new();
            let mut count = 0;
            let mut next = Some(first);
            while let Some(outgoing) = next.take() {
                batches
                    .entry(outgoing.group)
                    .or_default()
                    .push(outgoing.envelope.message);
                count += 1;
                if count < BATCH_MAX {
                    next = queue.try_recv().ok();
                }
            }
            for (group, messages) in batches {
                self.exchange(&group, messages).await;
            }
        }
    }

    async fn exchange(&mut self, group: &str, messages: Vec<Message>) {
        if self.connection.is_none() {
            match Client::connect(self.network.as_ref(), &self.addr, PEER_TIMEOUT).await {
                Ok(client) => self.connection = Some(client),
                Err(err) => {
                    tracing::debug!(peer = self.peer, %err, "peer unreachable; batch dropped");
                    // Back off so an unreachable peer does not spin this task.
                    tokio::time::sleep(PEER_TIMEOUT).await;
                    return;
                }
            }
        }
        let client = self.connection.as_mut().expect("connected above");
        let exchanged = client.raft(self.me, group, messages).await;
        if exchanged.is_ok() {
            lock(&self.node).heard(self.peer);
        }
        match exchanged {
            Ok(replies) if !replies.is_empty() => {
                let mut node = lock(&self.node);
                let direct = node.receive(self.peer, group, replies);
                // Replies to the replies go out through our own queue.
                node.route(
                    group,
                    direct
                        .into_iter()
                        .map(|message| crate::raft::Envelope {
                            from: self.me,
                            to: self.peer,
                            message,
                        })
                        .collect(),
                );
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(peer = self.peer, %err, "peer exchange failed; reconnecting");
                self.connection = None;
            }
        }
    }
}
