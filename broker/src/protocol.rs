//! The wire protocol: requests and responses carried in length-prefixed frames.
//!
//! Every request carries an id chosen by the client; the response echoes it, so a client
//! can tell a late reply from the one it waits for. A frame the broker cannot decode is
//! answered with id 0 and [`ErrorCode::MalformedFrame`], and the connection is closed.

use serde::{Deserialize, Serialize};

use crate::kafka::{KafkaRequest, KafkaResponse};
use crate::raft;

/// Who leads what, as one node knows it: (this node, the peers' addresses, each name with
/// its leader's id).
pub type LeaderTable = (u64, Vec<(u64, String)>, Vec<(String, Option<u64>)>);

/// The id used in replies to frames whose own id could not be read.
pub const UNKNOWN_REQUEST_ID: u64 = 0;

/// A request with the id its response will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client, echoed in the response; never [`UNKNOWN_REQUEST_ID`].
    pub id: u64,
    /// What the client asks for.
    pub request: Request,
}

/// What a client can ask of the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Request {
    /// Publish one message to `queue`, answered with [`Response::Confirmed`] once it is
    /// as durable as the broker's fsync policy promises (a publisher confirm).
    Publish {
        /// Queue name; created on first publish.
        queue: String,
        /// Opaque message body.
        body: Vec<u8>,
    },
    /// Take the next ready message of `queue` without removing it: it stays unacknowledged
    /// on this connection until [`Request::Ack`], and is requeued if the connection closes.
    Get {
        /// Queue name.
        queue: String,
    },
    /// Remove a delivered message for good.
    Ack {
        /// Queue name.
        queue: String,
        /// The tag of the delivery, from [`Response::Delivery`].
        tag: u64,
    },
    /// Who leads each of `names` (queues; in kafka mode, partition numbers), as this node
    /// knows it; answered with [`Response::Metadata`].
    Metadata {
        /// Queue names or partition numbers.
        names: Vec<String>,
    },
    /// Put a delivered message back in the queue, at its original place (a negative
    /// acknowledgement with requeue).
    Nack {
        /// Queue name.
        queue: String,
        /// The tag of the delivery.
        tag: u64,
    },
    /// Raft messages from peer `from` for the group replicating `group`; answered with
    /// [`Response::Raft`] carrying the replies addressed back to `from`.
    Raft {
        /// The sending node.
        from: raft::NodeId,
        /// The Raft group (a queue name).
        group: String,
        /// Messages for this node.
        messages: Vec<raft::Message>,
    },
    /// A kafka-mode request, answered with [`Response::Kafka`].
    Kafka {
        /// The request.
        request: KafkaRequest,
    },
    /// Mirrored-mode messages from peer `from`, answered with [`Response::Mirror`]. The
    /// protocol carries them as they are: mirrored mode encodes and reads its own messages,
    /// so the wire format knows nothing of any one mode's peer traffic.
    Mirror {
        /// The sending node.
        from: u64,
        /// The messages, in order.
        messages: Vec<serde_json::Value>,
    },
}

/// A response to the request with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// The id of the request answered, or [`UNKNOWN_REQUEST_ID`].
    pub id: u64,
    /// The outcome.
    pub response: Response,
}

/// The outcome of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Response {
    /// The message was stored; `seq` is its position in the queue.
    Confirmed {
        /// Position of the message in its queue, from 0.
        seq: u64,
    },
    /// A message handed to this connection.
    Delivery {
        /// Tag to acknowledge it with.
        tag: u64,
        /// The message body as published.
        body: Vec<u8>,
    },
    /// The queue had no ready message.
    Empty,
    /// The acknowledgement was applied.
    Acked,
    /// The message is back in the queue.
    Requeued,
    /// The answer to a [`Request::Kafka`].
    Kafka {
        /// The response.
        response: KafkaResponse,
    },
    /// Answers to a [`Request::Mirror`], one per message: accepted or refused.
    Mirror {
        /// One answer per message.
        accepted: Vec<bool>,
    },
    /// The answer to a [`Request::Metadata`].
    Metadata {
        /// The answering node's id.
        node: u64,
        /// Each name with its leader's node id, if one is known.
        leaders: Vec<(String, Option<u64>)>,
        /// The other nodes' addresses.
        peers: Vec<(u64, String)>,
    },
    /// Replies to a [`Request::Raft`], addressed to its sender.
    Raft {
        /// The messages.
        messages: Vec<raft::Message>,
    },
    /// The request was refused, or its outcome is unknown; see the code.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// With [`ErrorCode::NotLeader`]: the address of the node believed to lead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<String>,
    },
}

impl Response {
    /// A refusal that names no leader.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error {
            code,
            message: message.into(),
            leader: None,
        }
    }

    /// A not-leader refusal, with the leader's address where it is known.
    pub fn not_leader(message: impl Into<String>, leader: Option<String>) -> Self {
        Response::Error {
            code: ErrorCode::NotLeader,
            message: message.into(),
            leader,
        }
    }
}

/// Why the broker refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded; the connection will be closed.
    MalformedFrame,
    /// The frame exceeded the size limit; the connection will be closed.
    FrameTooLarge,
    /// The broker cannot serve this right now (storage failed, queue not reachable).
    Unavailable,
    /// The delivery tag is not outstanding on this connection.
    UnknownDeliveryTag,
    /// A limit (queue count, queue length, name length) would be exceeded.
    LimitExceeded,
    /// This node does not lead the queue; the request did not take effect. The reply may
    /// name the leader.
    NotLeader,
    /// The request may or may not have taken effect (e.g. leadership changed while it was
    /// being replicated). Never a definite failure.
    OutcomeUnknown,
    /// An acks=all write was refused because the ISR is smaller than min.insync.replicas.
    NotEnoughReplicas,
}

impl ErrorCode {
    /// The stable snake_case name used on the wire and in histories.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnknownDeliveryTag => "unknown_delivery_tag",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
            ErrorCode::NotEnoughReplicas => "not_enough_replicas",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
