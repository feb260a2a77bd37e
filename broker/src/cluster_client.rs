//! A client for a whole cluster: it sends each request to the node that leads the queue or
//! partition, following `not_leader` hints and moving past nodes it cannot reach.
//!
//! It retries only refusals that certainly did not take effect (not leader, unavailable,
//! unreachable): a request whose outcome is unknown is returned to the caller as such,
//! because resending it could duplicate a write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{Client, ClientError, Delivery};
use crate::kafka::{Acks, KafkaRequest, KafkaResponse};
use crate::net::Network;
use crate::protocol::{ErrorCode, Request, Response};

/// A leader-following client over every node of a cluster.
pub struct ClusterClient {
    network: Arc<dyn Network>,
    nodes: Vec<String>,
    request_timeout: Duration,
    /// The connection in use and its address.
    connection: Option<(String, Client)>,
    /// Where each queue or partition was last found to be led.
    leaders: BTreeMap<String, String>,
    next: usize,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("nodes", &self.nodes)
            .field("leaders", &self.leaders)
            .finish()
    }
}

impl ClusterClient {
    /// A client for the cluster whose nodes listen at `nodes` (`host:port`).
    pub fn new(network: Arc<dyn Network>, nodes: Vec<String>, request_timeout: Duration) -> Self {
        Self {
            network,
            nodes,
            request_timeout,
            connection: None,
            leaders: BTreeMap::new(),
            next: 0,
        }
    }

    /// Sends `request` about `name` to its leader, following redirects; at most two rounds
    /// over the nodes.
    async fn send(&mut self, name: &str, request: Request) -> Result<Response, ClientError> {
        let mut last = None;
        for _ in 0..(2 * self.nodes.len().max(1)) {
            let addr = match self.leaders.get(name) {
                Some(addr) => addr.clone(),
                None => self.nodes[self.next % self.nodes.len()].clone(),
            };
            if self
                .connection
                .as_ref()
                .is_none_or(|(a, c)| *a != addr || c.is_broken())
            {
                match Client::connect(self.network.as_ref(), &addr, self.request_timeout).await {
                    Ok(client) => self.connection = Some((addr.clone(), client)),
                    Err(err) => {
                        self.move_on(name);
                        last = Some(err);
                        continue;
                    }
                }
            }
            let (_, client) = self.connection.as_mut().expect("connected above");
            match client.forward(request.clone()).await {
                Ok(Response::Error {
                    code: ErrorCode::NotLeader,
                    leader: Some(hint),
                    ..
                }) => {
                    self.leaders.insert(name.to_string(), hint);
                }
                Ok(Response::Error {
                    code: code @ (ErrorCode::NotLeader | ErrorCode::Unavailable),
                    message,
                    leader,
                }) => {
                    self.move_on(name);
                    last = Some(ClientError::Broker {
                        code,
                        message,
                        leader,
                    });
                }
                Ok(Response::Error {
                    code,
                    message,
                    leader,
                }) => {
                    return Err(ClientError::Broker {
                        code,
                        message,
                        leader,
                    })
                }
                Ok(response) => {
                    self.leaders.insert(name.to_string(), addr);
                    return Ok(response);
                }
                // Unknown outcome: never resend, the request may have taken effect.
                Err(err) => {
                    self.move_on(name);
                    return Err(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Protocol("no nodes".into())))
    }

    fn move_on(&mut self, name: &str) {
        self.leaders.remove(name);
        self.connection = None;
        self.next += 1;
    }

    /// Publishes with a confirm; returns the message's seq.
    pub async fn publish(&mut self, queue: &str, body: Vec<u8>) -> Result<u64, ClientError> {
        match self
            .send(
                queue,
                Request::Publish {
                    queue: queue.to_string(),
                    body,
                },
            )
            .await?
        {
            Response::Confirmed { seq } => Ok(seq),
            other => Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Takes the next message; acknowledge or nack it with this same client.
    pub async fn get(&mut self, queue: &str) -> Result<Option<Delivery>, ClientError> {
        match self
            .send(
                queue,
                Request::Get {
                    queue: queue.to_string(),
                },
            )
            .await?
        {
            Response::Delivery { tag, body } => Ok(Some(Delivery { tag, body })),
            Response::Empty => Ok(None),
            other => Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Acknowledges a delivery (on the connection that took it).
    pub async fn ack(&mut self, queue: &str, tag: u64) -> Result<(), ClientError> {
        let (_, client) = self
            .connection
            .as_mut()
            .ok_or_else(|| ClientError::Disconnected("no delivery connection".into()))?;
        client.ack(queue, tag).await
    }

    /// Puts a delivery back (on the connection that took it).
    pub async fn nack(&mut self, queue: &str, tag: u64) -> Result<(), ClientError> {
        let (_, client) = self
            .connection
            .as_mut()
            .ok_or_else(|| ClientError::Disconnected("no delivery connection".into()))?;
        client.nack(queue, tag).await
    }

    /// Produces to a kafka partition; returns the record's offset.
    pub async fn produce(&mut self, partition: u32, value: Vec<u8>, acks: Acks) -> Result<u64, ClientError> {
        let request = Request::Kafka {
            request: KafkaRequest::Produce {
                partition,
                value,
                acks,
            },
        };
        match self.send(&partition.to_string(), request).await? {
            Response::Kafka {
                response: KafkaResponse::Produced { offset },
            } => Ok(offset),
            other => Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Reads a kafka partition from `offset`: (offset, value) records and the high watermark.
    pub async fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        max: u32,
        wait_ms: u64,
    ) -> Result<(Vec<(u64, Vec<u8>)>, u64), ClientError> {
        let request = Request::Kafka {
            request: KafkaRequest::Poll {
                partition,
                offset,
                max,
                wait_ms,
            },
        };
        match self.send(&partition.to_string(), request).await? {
            Response::Kafka {
                response: KafkaResponse::Records { records, hw },
            } => Ok((records, hw)),
            other => Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }
}
