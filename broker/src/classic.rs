//! `classic` mode: RabbitMQ's classic cluster. Every queue lives on exactly one home node;
//! every node knows where (the placement is a function of the queue name and the member
//! list, which all nodes share, standing in for RabbitMQ's replicated metadata); a request
//! that reaches another node is proxied to the home node over a connection of its own, so
//! deliveries stay tied to the client connection that took them. While the home node is down
//! its queues are unavailable; whether they survive its restart depends on `durable`.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{Client, ClientError};
use crate::net::Network;
use crate::protocol::{ErrorCode, Request, Response};
use crate::queue::{ConnectionId, QueueStore};

/// Deadline for a proxied request; shorter than a client's own, so a client hears why.
const PROXY_TIMEOUT: Duration = Duration::from_millis(500);

/// Connections this node opened to home nodes on behalf of one client connection, with
/// when each was last used.
pub(crate) type Upstreams = BTreeMap<u64, (Client, tokio::time::Instant)>;

/// An upstream idle this long is replaced before use: the home node may have closed it for
/// idleness (see `Limits::idle_timeout_ms`), and a request on it would end in doubt.
const UPSTREAM_IDLE_MAX: Duration = Duration::from_millis(2_000);

/// The classic-cluster service of one node.
pub(crate) struct Classic {
    /// Queues whose home is this node.
    pub store: Arc<Mutex<QueueStore>>,
    me: u64,
    /// Every member's id, sorted, and address (this node's own is unused).
    members: Vec<u64>,
    addrs: BTreeMap<u64, String>,
    network: Arc<dyn Network>,
}

impl Classic {
    pub(crate) fn new(
        store: Arc<Mutex<QueueStore>>,
        me: u64,
        peers: &BTreeMap<u64, String>,
        network: Arc<dyn Network>,
    ) -> Self {
        let mut members: Vec<u64> = peers.keys().copied().chain([me]).collect();
        members.sort_unstable();
        Self {
            store,
            me,
            members,
            addrs: peers.clone(),
            network,
        }
    }

    /// This node's id.
    pub(crate) fn me(&self) -> u64 {
        self.me
    }

    /// The other nodes and their addresses.
    pub(crate) fn peers(&self) -> Vec<(u64, String)> {
        self.addrs.clone().into_iter().collect()
    }

    /// The node a queue lives on.
    pub(crate) fn home(&self, queue: &str) -> u64 {
        crate::entropy::home_node(queue, &self.members)
    }

    /// Serves locally or proxies to the home node; `local` handles requests served here.
    pub(crate) async fn handle(
        &self,
        connection: ConnectionId,
        upstreams: &mut Upstreams,
        request: Request,
        local: impl FnOnce(&Mutex<QueueStore>, ConnectionId, Request) -> Response,
    ) -> Response {
        let queue = match &request {
            Request::Publish { queue, .. }
            | Request::Get { queue }
            | Request::Ack { queue, .. }
            | Request::Nack { queue, .. } => queue.clone(),
            Request::Raft { .. }
            | Request::Mirror { .. }
            | Request::Kafka { .. }
            | Request::Metadata { .. } => {
                return error(ErrorCode::Unavailable, "classic mode has no replication".into())
            }
        };
        let home = self.home(&queue);
        if home == self.me {
            return local(&self.store, connection, request);
        }
        let Some(addr) = self.addrs.get(&home) else {
            return error(
                ErrorCode::Unavailable,
                format!("queue '{queue}' lives on unknown node {home}"),
            );
        };
        let now = tokio::time::Instant::now();
        upstreams.retain(|_, (_, used)| now.duration_since(*used) < UPSTREAM_IDLE_MAX);
        let (client, used) = match upstreams.entry(home) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(slot) => match Client::connect(self.network.as_ref(), addr, PROXY_TIMEOUT).await {
                Ok(client) => slot.insert((client, now)),
                Err(err) => {
                    return error(
                        ErrorCode::Unavailable,
                        format!(
                            "queue '{queue}' is unavailable: its home node {home} is unreachable ({err})"
                        ),
                    )
                }
            },
        };
        *used = now;
        let outcome = client.forward(request).await;
        outcome.unwrap_or_else(|err| {
            upstreams.remove(&home);
            let code = if err.is_definite() {
                ErrorCode::Unavailable
            } else {
                // The home node may have applied it before going quiet.
                ErrorCode::OutcomeUnknown
            };
            error(code, format!("proxy to node {home}: {err}"))
        })
    }
}

fn error(code: ErrorCode, message: String) -> Response {
    Response::Error {
        code,
        message,
        leader: None,
    }
}

impl From<ClientError> for Response {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Broker {
                code,
                message,
                leader,
            } => Response::Error {
                code,
                message,
                leader,
            },
            other => error(ErrorCode::OutcomeUnknown, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::net::TokioNetwork;

    #[test]
    fn every_node_computes_the_same_home_and_queues_spread() {
        let peers = |me: u64| -> BTreeMap<u64, String> {
            (1..=3)
                .filter(|p| *p != me)
                .map(|p| (p, format!("n{p}:7000")))
                .collect()
        };
        let nodes: Vec<Classic> = (1..=3)
            .map(|me| {
                let store = Arc::new(Mutex::new(QueueStore::in_memory(Limits::default())));
                Classic::new(store, me, &peers(me), Arc::new(TokioNetwork))
            })
            .collect();
        let mut homes = std::collections::BTreeSet::new();
        for q in 0..30 {
            let name = format!("q{q}");
            let home = nodes[0].home(&name);
            assert!(nodes.iter().all(|n| n.home(&name) == home));
            homes.insert(home);
        }
        assert_eq!(homes.len(), 3, "30 queues land on all three nodes");
    }
}
