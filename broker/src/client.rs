//! The client library used by the workloads and by anyone talking to a broker.
//!
//! Every request has a deadline. The error type keeps apart what certainly did not happen
//! ([`ClientError::is_definite`]: the connection was never made, or the broker refused) from
//! what may have happened (a timeout or a connection lost after the request was sent):
//! reporting the second kind as a failure would hide lost writes.

use std::time::Duration;

use crate::codec::{read_frame, write_frame, CodecError, FRAME_BYTES_MAX_DEFAULT};
use crate::net::{BoxStream, Network};
use crate::protocol::{ErrorCode, Request, RequestFrame, Response, ResponseFrame};

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made; nothing was sent.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No reply before the deadline; the request may or may not have taken effect.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The connection broke after the request was sent; it may or may not have taken effect.
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// The broker refused the request (it did not take effect), or, with
    /// [`ErrorCode::OutcomeUnknown`], could not tell whether it did.
    #[error("{code}: {message}")]
    Broker {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// With [`ErrorCode::NotLeader`]: where the leader is believed to be.
        leader: Option<String>,
    },
    /// The broker answered something this client does not understand.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl ClientError {
    /// True when the request certainly did not take effect.
    pub fn is_definite(&self) -> bool {
        match self {
            ClientError::Connect { .. } => true,
            ClientError::Broker { code, .. } => *code != ErrorCode::OutcomeUnknown,
            _ => false,
        }
    }

    /// With a not-leader refusal, the leader's address if the broker knew it.
    pub fn leader_hint(&self) -> Option<&str> {
        match self {
            ClientError::Broker {
                code: ErrorCode::NotLeader,
                leader,
                ..
            } => leader.as_deref(),
            _ => None,
        }
    }

    /// A short stable name for histories (`timeout`, `unavailable`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Connect { .. } => "connect",
            ClientError::Timeout(_) => "timeout",
            ClientError::Disconnected(_) => "disconnected",
            ClientError::Broker { code, .. } => code.as_str(),
            ClientError::Protocol(_) => "protocol",
        }
    }
}

/// A message received with [`Client::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Tag to acknowledge it with.
    pub tag: u64,
    /// The body as published.
    pub body: Vec<u8>,
}

/// One connection to a broker. After a timeout or a lost connection it is unusable
/// (replies could arrive out of step); drop it and connect again.
pub struct Client {
    stream: BoxStream,
    next_id: u64,
    request_timeout: Duration,
    frame_bytes_max: usize,
    broken: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("next_id", &self.next_id)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Client {
    /// Connects to `addr` within `request_timeout`.
    pub async fn connect(
        network: &dyn Network,
        addr: &str,
        request_timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connect_error = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let stream = match tokio::time::timeout(request_timeout, network.connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(connect_error(source)),
            Err(_) => return Err(connect_error(std::io::ErrorKind::TimedOut.into())),
        };
        Ok(Self {
            stream,
            next_id: 1,
            request_timeout,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            broken: false,
        })
    }

    /// True once a timeout or a broken stream has made this connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Publishes with a publisher confirm; returns the message's seq in its queue.
    pub async fn publish(&mut self, queue: &str, body: Vec<u8>) -> Result<u64, ClientError> {
        let request = Request::Publish {
            queue: queue.to_string(),
            body,
        };
        match self.call(request).await? {
            Response::Confirmed { seq } => Ok(seq),
            other => Err(unexpected(&other)),
        }
    }

    /// Takes the next ready message, which stays unacknowledged until [`Client::ack`].
    pub async fn get(&mut self, queue: &str) -> Result<Option<Delivery>, ClientError> {
        match self
            .call(Request::Get {
                queue: queue.to_string(),
            })
            .await?
        {
            Response::Delivery { tag, body } => Ok(Some(Delivery { tag, body })),
            Response::Empty => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// Acknowledges a delivery, removing the message for good.
    pub async fn ack(&mut self, queue: &str, tag: u64) -> Result<(), ClientError> {
        let request = Request::Ack {
            queue: queue.to_string(),
            tag,
        };
        match self.call(request).await? {
            Response::Acked => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends Raft messages from peer `from` for `group`; returns the replies to `from`.
    pub async fn raft(
        &mut self,
        from: crate::raft::NodeId,
        group: &str,
        messages: Vec<crate::raft::Message>,
    ) -> Result<Vec<crate::raft::Message>, ClientError> {
        let request = Request::Raft {
            from,
            group: group.to_string(),
            messages,
        };
        match self.call(request).await? {
            Response::Raft { messages } => Ok(messages),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends mirrored-mode messages from peer `from`; returns one answer per message.
    pub async fn mirror(
        &mut self,
        from: u64,
        messages: Vec<serde_json::Value>,
    ) -> Result<Vec<bool>, ClientError> {
        match self.call(Request::Mirror { from, messages }).await? {
            Response::Mirror { accepted } => Ok(accepted),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends a kafka-mode request.
    pub async fn kafka(
        &mut self,
        request: crate::kafka::KafkaRequest,
    ) -> Result<crate::kafka::KafkaResponse, ClientError> {
        match self.call(Request::Kafka { request }).await? {
            Response::Kafka { response } => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Writes a kafka-mode request the broker does not answer (a produce with acks=0): the
    /// request is on its way once written, and nothing about its fate comes back.
    pub async fn kafka_unanswered(&mut self, request: crate::kafka::KafkaRequest) -> Result<(), ClientError> {
        if self.broken {
            return Err(ClientError::Disconnected("connection already broken".into()));
        }
        let id = self.next_id;
        self.next_id += 1;
        let frame = RequestFrame {
            id,
            request: Request::Kafka { request },
        };
        let write = write_frame(&mut self.stream, &frame, self.frame_bytes_max);
        let written = match tokio::time::timeout(self.request_timeout, write).await {
            Err(_) => Err(ClientError::Timeout(self.request_timeout)),
            Ok(Err(err)) => Err(ClientError::Disconnected(err.to_string())),
            Ok(Ok(())) => Ok(()),
        };
        self.broken |= written.is_err();
        written
    }

    /// Sends any request and returns the broker's response, refusals included (for proxies).
    pub async fn forward(&mut self, request: Request) -> Result<Response, ClientError> {
        match self.call(request).await {
            Err(ClientError::Broker {
                code,
                message,
                leader,
            }) => Ok(Response::Error {
                code,
                message,
                leader,
            }),
            other => other,
        }
    }

    /// Who leads each of `names` (queues, or partition numbers in kafka mode), as the
    /// connected node knows it: the leader's address, `None` when unknown. The connected
    /// node itself is reported as `addr`, the address this client used.
    pub async fn metadata(
        &mut self,
        addr: &str,
        names: &[&str],
    ) -> Result<Vec<(String, Option<String>)>, ClientError> {
        let request = Request::Metadata {
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        match self.call(request).await? {
            Response::Metadata { node, leaders, peers } => Ok(leaders
                .into_iter()
                .map(|(name, leader)| {
                    let address = leader.and_then(|id| match id == node {
                        true => Some(addr.to_string()),
                        false => peers.iter().find(|(p, _)| *p == id).map(|(_, a)| a.clone()),
                    });
                    (name, address)
                })
                .collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Puts a delivery back in its queue (negative acknowledgement with requeue).
    pub async fn nack(&mut self, queue: &str, tag: u64) -> Result<(), ClientError> {
        let request = Request::Nack {
            queue: queue.to_string(),
            tag,
        };
        match self.call(request).await? {
            Response::Requeued => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        if self.broken {
            return Err(ClientError::Disconnected("connection already broken".into()));
        }
        let id = self.next_id;
        self.next_id += 1;
        let frame = RequestFrame { id, request };
        let exchange = async {
            write_frame(&mut self.stream, &frame, self.frame_bytes_max).await?;
            read_frame::<ResponseFrame, _>(&mut self.stream, self.frame_bytes_max).await
        };
        let reply = match tokio::time::timeout(self.request_timeout, exchange).await {
            Err(_) => Err(ClientError::Timeout(self.request_timeout)),
            Ok(Err(CodecError::TooLarge { len, max })) if len == 0 || max == 0 => {
                Err(ClientError::Protocol("empty frame".into()))
            }
            Ok(Err(err @ (CodecError::Malformed(_) | CodecError::TooLarge { .. }))) => {
                Err(ClientError::Protocol(err.to_string()))
            }
            Ok(Err(err)) => Err(ClientError::Disconnected(err.to_string())),
            Ok(Ok(None)) => Err(ClientError::Disconnected("closed by broker".into())),
            Ok(Ok(Some(reply))) if reply.id != id => Err(ClientError::Protocol(format!(
                "reply to request {} while waiting for {id}",
                reply.id
            ))),
            Ok(Ok(Some(reply))) => Ok(reply.response),
        };
        match reply {
            Ok(Response::Error {
                code,
                message,
                leader,
            }) => Err(ClientError::Broker {
                code,
                message,
                leader,
            }),
            Ok(response) => Ok(response),
            Err(err) => {
                self.broken = true;
                Err(err)
            }
        }
    }
}

fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {response:?}"))
}
