//! tumult-broker's clients for each workload family: its own wire protocol, following
//! not-leader hints and moving on from nodes that refuse or cannot be reached.

use std::collections::BTreeMap;
use std::time::Duration;

use broker::kafka::{Acks, KafkaRequest, KafkaResponse};
use broker::{Client, ClientError, ErrorCode};
use workloads::{ApiError, ApiFuture, Clients, Delivery, LogApi, QueueApi, Records};

use super::Reach;

/// How long an address that refused or timed out a connection is passed over, as a Kafka
/// client backs off a broker it cannot reach instead of paying a connect timeout per request.
const UNREACHABLE_FOR: Duration = Duration::from_millis(2_000);
/// Where requests for the controller (offset commits and fetches) are routed, apart from
/// any partition's leader.
const CONTROLLER: u32 = u32::MAX;

/// A broker error as the workloads see it: definite when the request certainly did not
/// take effect; the message as the broker's client words it.
fn api_error(err: &ClientError) -> ApiError {
    match err.is_definite() {
        true => ApiError::Definite(err.to_string()),
        false => ApiError::Indefinite(err.to_string()),
    }
}

fn unexpected<T: std::fmt::Debug>(reply: T) -> ApiError {
    ApiError::Indefinite(format!("unexpected reply {reply:?}"))
}

/// tumult-broker's clients, one per process and family.
#[derive(Debug, Clone)]
pub struct TumultClients {
    /// The cluster.
    pub reach: Reach,
}

impl Clients for TumultClients {
    fn queue(&self, process: usize) -> Option<Box<dyn QueueApi>> {
        Some(Box::new(TumultQueue {
            reach: self.reach.clone(),
            node: process,
            leader: None,
            connection: None,
        }))
    }

    fn log(&self, process: usize) -> Option<Box<dyn LogApi>> {
        Some(Box::new(TumultLog {
            reach: self.reach.clone(),
            node: process,
            leaders: BTreeMap::new(),
            connection: None,
            unreachable: BTreeMap::new(),
        }))
    }
}

/// One process's queue connection: to the leader it was last pointed at, else to the
/// next node in turn.
struct TumultQueue {
    reach: Reach,
    /// Index of the node to try next when no leader is known.
    node: usize,
    /// Where the last not-leader refusal said the leader is.
    leader: Option<String>,
    connection: Option<Client>,
}

impl TumultQueue {
    async fn connected(&mut self) -> Result<&mut Client, ClientError> {
        if self.connection.as_ref().is_some_and(Client::is_broken) {
            self.connection = None;
        }
        if self.connection.is_none() {
            let addr = match &self.leader {
                Some(leader) => leader.clone(),
                None => self.reach.nodes[self.node % self.reach.nodes.len()].clone(),
            };
            let client =
                Client::connect(self.reach.network.as_ref(), &addr, self.reach.request_timeout).await?;
            self.connection = Some(client);
        }
        Ok(self.connection.as_mut().expect("just connected"))
    }

    /// Follows the cluster after an error: to the named leader, or on to the next node
    /// when this one refused, could not be reached, or went silent.
    fn redirect(&mut self, err: &ClientError) -> ApiError {
        if let Some(hint) = err.leader_hint() {
            self.leader = Some(hint.to_string());
            self.connection = None;
            return api_error(err);
        }
        let move_on = match err {
            ClientError::Broker { code, .. } => matches!(code, ErrorCode::NotLeader | ErrorCode::Unavailable),
            _ => true,
        };
        if move_on {
            self.leader = None;
            self.node += 1;
            self.connection = None;
        }
        api_error(err)
    }

    /// Settles a delivery on the connection that took it (a delivery's tag means nothing
    /// on another connection).
    async fn settle(&mut self, queue: &str, tag: u64, requeue: bool) -> Result<(), ApiError> {
        let Some(client) = self.connection.as_mut() else {
            return Err(ApiError::Indefinite(
                "the connection that took the delivery is gone".into(),
            ));
        };
        let settled = match requeue {
            false => client.ack(queue, tag).await,
            true => client.nack(queue, tag).await,
        };
        settled.map_err(|err| self.redirect(&err))
    }
}

impl QueueApi for TumultQueue {
    fn publish<'a>(&'a mut self, queue: &'a str, body: Vec<u8>) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let outcome = match self.connected().await {
                Ok(client) => client.publish(queue, body).await.map(|_seq| ()),
                Err(err) => Err(err),
            };
            outcome.map_err(|err| self.redirect(&err))
        })
    }

    fn get<'a>(&'a mut self, queue: &'a str) -> ApiFuture<'a, Option<Delivery>> {
        Box::pin(async move {
            let outcome = match self.connected().await {
                Ok(client) => client.get(queue).await,
                Err(err) => Err(err),
            };
            match outcome {
                Ok(delivery) => Ok(delivery.map(|d| Delivery {
                    tag: d.tag,
                    body: d.body,
                })),
                Err(err) => Err(self.redirect(&err)),
            }
        })
    }

    fn ack<'a>(&'a mut self, queue: &'a str, tag: u64) -> ApiFuture<'a, ()> {
        Box::pin(self.settle(queue, tag, false))
    }

    fn nack<'a>(&'a mut self, queue: &'a str, tag: u64) -> ApiFuture<'a, ()> {
        Box::pin(self.settle(queue, tag, true))
    }

    fn reset(&mut self) {
        self.connection = None;
    }
}

/// One process's log connection: one at a time, to the leader of the key at hand (or
/// the controller, for a group's offsets).
struct TumultLog {
    reach: Reach,
    node: usize,
    /// Where each key's leader is believed to be.
    leaders: BTreeMap<u32, String>,
    connection: Option<(String, Client)>,
    /// Addresses that could not be reached, until when they are passed over.
    unreachable: BTreeMap<String, tokio::time::Instant>,
}

impl TumultLog {
    fn addr_for(&self, key: u32) -> String {
        let now = tokio::time::Instant::now();
        let reachable = |addr: &String| self.unreachable.get(addr).is_none_or(|until| *until <= now);
        if let Some(leader) = self.leaders.get(&key).filter(|a| reachable(a)) {
            return leader.clone();
        }
        let nodes = &self.reach.nodes;
        (0..nodes.len())
            .map(|i| &nodes[(self.node + key as usize + i) % nodes.len()])
            .find(|a| reachable(a))
            .unwrap_or(&nodes[(self.node + key as usize) % nodes.len()])
            .clone()
    }

    async fn call(&mut self, key: u32, request: KafkaRequest) -> Result<KafkaResponse, ApiError> {
        self.connect_for(key).await?;
        let (_, client) = self.connection.as_mut().expect("connected above");
        let result = client.kafka(request).await;
        self.redirected(key, result)
    }

    /// A call's result, after moving on from the node if it failed.
    fn redirected<T>(&mut self, key: u32, result: Result<T, ClientError>) -> Result<T, ApiError> {
        result.map_err(|err| {
            self.redirect(key, &err);
            api_error(&err)
        })
    }

    /// Writes a request the broker does not answer (acks=0) to `key`'s leader as this
    /// client knows it. Nothing comes back, not even "not the leader": a send to a node
    /// that no longer leads is dropped there, as Kafka's acks=0 producer's is.
    async fn write_only(&mut self, key: u32, request: KafkaRequest) -> Result<(), ApiError> {
        // A Kafka producer sends only to the leader its metadata names: with none known
        // for this key, it asks a broker first (a send written to a guess would be
        // dropped unanswered). Nothing was sent if this fails.
        if !self.leaders.contains_key(&key) {
            self.connect_for(key).await?;
            let (at, client) = self.connection.as_mut().expect("connected above");
            let at = at.clone();
            let name = key.to_string();
            let leader = match client.metadata(&at, &[name.as_str()]).await {
                Ok(table) => table.into_iter().find(|(n, _)| *n == name).and_then(|(_, l)| l),
                Err(err) => {
                    self.redirect(key, &err);
                    return Err(ApiError::Definite(format!(
                        "no leader known for key {key} before an acks=0 send: {err}"
                    )));
                }
            };
            match leader {
                Some(leader) => {
                    self.leaders.insert(key, leader);
                }
                None => {
                    // This broker does not know (an election, or no replica here): ask
                    // the next one on the next send.
                    self.node += 1;
                    return Err(ApiError::Definite(format!(
                        "no leader known for key {key} at {at} before an acks=0 send"
                    )));
                }
            }
        }
        self.connect_for(key).await?;
        let (_, client) = self.connection.as_mut().expect("connected above");
        let result = client.kafka_unanswered(request).await;
        self.redirected(key, result)
    }

    /// Opens a connection to `key`'s leader unless one is open.
    async fn connect_for(&mut self, key: u32) -> Result<(), ApiError> {
        let addr = self.addr_for(key);
        if self
            .connection
            .as_ref()
            .is_none_or(|(a, c)| *a != addr || c.is_broken())
        {
            match Client::connect(self.reach.network.as_ref(), &addr, self.reach.request_timeout).await {
                Ok(client) => self.connection = Some((addr, client)),
                Err(err) => {
                    self.unreachable
                        .insert(addr, tokio::time::Instant::now() + UNREACHABLE_FOR);
                    self.redirect(key, &err);
                    return Err(api_error(&err));
                }
            }
        }
        Ok(())
    }

    /// Follows a not-leader hint, or moves on to the next node for this key.
    fn redirect(&mut self, key: u32, err: &ClientError) {
        self.connection = None;
        match err.leader_hint() {
            Some(hint) => {
                self.leaders.insert(key, hint.to_string());
            }
            None => {
                let refused = matches!(err, ClientError::Broker { code, .. } if matches!(code, ErrorCode::NotLeader | ErrorCode::Unavailable));
                if refused || !err.is_definite() || matches!(err, ClientError::Connect { .. }) {
                    self.leaders.remove(&key);
                    self.node += 1;
                }
            }
        }
    }
}

impl LogApi for TumultLog {
    fn send<'a>(&'a mut self, key: u32, value: Vec<u8>, acks: Acks) -> ApiFuture<'a, Option<u64>> {
        Box::pin(async move {
            let request = KafkaRequest::Produce {
                partition: key,
                value,
                acks,
            };
            if acks == Acks::Zero {
                self.write_only(key, request).await?;
                return Ok(None);
            }
            match self.call(key, request).await? {
                KafkaResponse::Produced { offset } => Ok(Some(offset)),
                other => Err(unexpected(other)),
            }
        })
    }

    fn poll<'a>(&'a mut self, key: u32, offset: u64, max: u32) -> ApiFuture<'a, Records> {
        Box::pin(async move {
            // Not waiting: the workload polls on its own clock.
            let request = KafkaRequest::Poll {
                partition: key,
                offset,
                max,
                wait_ms: 0,
            };
            match self.call(key, request).await? {
                KafkaResponse::Records { records, hw } => Ok(Records { records, end: hw }),
                other => Err(unexpected(other)),
            }
        })
    }

    fn committed<'a>(&'a mut self, group: &'a str, key: u32) -> ApiFuture<'a, Option<u64>> {
        Box::pin(async move {
            let request = KafkaRequest::FetchOffset {
                group: group.into(),
                partition: key,
            };
            match self.call(CONTROLLER, request).await? {
                KafkaResponse::Offset { offset } => Ok(offset),
                other => Err(unexpected(other)),
            }
        })
    }

    fn commit<'a>(&'a mut self, group: &'a str, key: u32, offset: u64) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let request = KafkaRequest::CommitOffset {
                group: group.into(),
                partition: key,
                offset,
            };
            match self.call(CONTROLLER, request).await? {
                KafkaResponse::OffsetCommitted => Ok(()),
                other => Err(unexpected(other)),
            }
        })
    }

    fn reset(&mut self) {
        self.connection = None;
    }
}
