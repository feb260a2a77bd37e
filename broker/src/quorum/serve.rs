//! Serving clients in quorum mode: queue requests become commands in the queue's group;
//! the log workload's kafka-style requests are served by the partitions' groups and the
//! offsets group.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::stream::{self, StreamApplied, StreamCommand, StreamMachine, OFFSETS_GROUP};
use super::{
    lock, spawn_peer_senders, spawn_ticker, Applied, Command, Hosted, HostedApplied, HostedCommand,
    QueueMachine, QuorumNode, Refusal,
};
use crate::config::BrokerConfig;
use crate::kafka::{KafkaRequest, KafkaResponse, PartitionId};
use crate::protocol::{ErrorCode, Request, Response};
use crate::seams::Seams;
use crate::storage::StorageError;

/// Most records one poll returns (as in kafka mode).
const POLL_RECORDS_MAX: usize = 500;
/// Longest a poll may wait for a record to become readable.
const POLL_WAIT_MAX: Duration = Duration::from_millis(1_000);
/// How often a waiting poll looks again.
const POLL_RECHECK: Duration = Duration::from_millis(10);

/// A quorum-mode node, shared by its connections.
pub(crate) type Node = Arc<Mutex<QuorumNode<Hosted>>>;

/// Why a quorum-mode node could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The groups on disk could not be recovered.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Recovers the node's groups and starts its peer senders and clock.
pub(crate) fn start(config: &BrokerConfig, seams: &mut Seams) -> Result<Node, StartError> {
    if config.peers.contains_key(&config.id) {
        return Err(StartError::Config(format!(
            "node {} lists itself as a peer",
            config.id
        )));
    }
    let seed = seams.entropy.next_u64();
    let messages_max = config.limits.queue_messages_max;
    let make_machine = Box::new(move |name: &str| match stream::is_log_group(name) {
        true => Hosted::Stream(StreamMachine::new(messages_max)),
        false => Hosted::Queue(QueueMachine::new(messages_max)),
    });
    let members = config.members();
    let rf = config.kafka.rf;
    // A partition lives on its `rf` replicas; queues and the offsets group on every node.
    let placement = Box::new(move |name: &str| match stream::group_partition(name) {
        Some(partition) => crate::kafka::replicas_of(partition, &members, rf),
        None => members.clone(),
    });
    let (node, queues) = QuorumNode::open(
        config.clone(),
        Arc::clone(&seams.disk),
        Arc::clone(&seams.inspector),
        seed,
        make_machine,
        Some(placement),
    )?;
    let node = Arc::new(Mutex::new(node));
    spawn_peer_senders(&node, queues, config.id, &seams.network, &seams.spawner);
    let tick = Duration::from_millis(config.tick_ms.max(1));
    spawn_ticker(&node, tick, &seams.spawner);
    Ok(node)
}

/// Serves one request; `consumer` names the connection in the queues' checkouts.
pub(crate) async fn handle(node: &Mutex<QuorumNode<Hosted>>, consumer: u64, request: Request) -> Response {
    let (queue, command) = match request {
        Request::Publish { queue, body } => (queue, Command::Publish { body }),
        Request::Get { queue } => (queue, Command::Get { consumer }),
        Request::Ack { queue, tag } => (queue, Command::Ack { consumer, seq: tag }),
        Request::Nack { queue, tag } => (queue, Command::Nack { consumer, seq: tag }),
        Request::Raft {
            from,
            group,
            messages,
        } => {
            let messages = lock(node).receive(from, &group, messages);
            return Response::Raft { messages };
        }
        Request::Kafka { request } => return handle_log(node, request).await,
        Request::Mirror { .. } | Request::Metadata { .. } => {
            return Response::error(ErrorCode::Unavailable, "this node runs quorum mode")
        }
    };
    if stream::is_log_group(&queue) {
        return Response::error(
            ErrorCode::LimitExceeded,
            format!(
                "queue names beginning with {:?} are the log's",
                stream::RESERVED_PREFIX
            ),
        );
    }
    let outcome = settle(node, &queue, HostedCommand::Queue(command)).await;
    match outcome {
        Ok(HostedApplied::Queue(applied)) => match applied {
            Applied::Confirmed(seq) => Response::Confirmed { seq },
            Applied::Delivery { seq, body } => Response::Delivery { tag: seq, body },
            Applied::Empty => Response::Empty,
            Applied::Acked => Response::Acked,
            Applied::Requeued => Response::Requeued,
            Applied::UnknownTag(tag) => Response::error(
                ErrorCode::UnknownDeliveryTag,
                format!("delivery tag {tag} is not held by this connection"),
            ),
            Applied::Full => Response::error(ErrorCode::LimitExceeded, format!("queue '{queue}' is full")),
            Applied::Returned(_) => Response::error(ErrorCode::OutcomeUnknown, "unexpected return result"),
        },
        Ok(other) => unexpected(other),
        Err(refusal) => refused(refusal, &format!("queue '{queue}'")),
    }
}

/// The log workload's requests: produce and poll at the partition's leader, offsets at the
/// offsets group's.
async fn handle_log(node: &Mutex<QuorumNode<Hosted>>, request: KafkaRequest) -> Response {
    match request {
        KafkaRequest::Produce { partition, value, .. } => {
            // Every acks level waits for the commit: a Raft log has no weaker promise to
            // give. (`tumult test` refuses --acks outside kafka mode; acks=0 still gets no
            // answer, as the connection's loop never writes one.)
            let group = match open_partition(node, partition) {
                Ok(group) => group,
                Err(response) => return response,
            };
            match settle(
                node,
                &group,
                HostedCommand::Stream(StreamCommand::Append { value }),
            )
            .await
            {
                Ok(HostedApplied::Stream(StreamApplied::Appended(offset))) => {
                    kafka(KafkaResponse::Produced { offset })
                }
                Ok(HostedApplied::Stream(StreamApplied::Full)) => {
                    Response::error(ErrorCode::LimitExceeded, format!("partition {partition} is full"))
                }
                Ok(other) => unexpected(other),
                Err(refusal) => refused(refusal, &format!("partition {partition}")),
            }
        }
        KafkaRequest::Poll {
            partition,
            offset,
            max,
            wait_ms,
        } => {
            let group = match open_partition(node, partition) {
                Ok(group) => group,
                Err(response) => return response,
            };
            let max = (max as usize).min(POLL_RECORDS_MAX);
            let deadline = Instant::now() + Duration::from_millis(wait_ms).min(POLL_WAIT_MAX);
            loop {
                let polled = read_leader(node, &group, |log| {
                    kafka(KafkaResponse::Records {
                        records: log.read(offset, max),
                        hw: log.end(),
                    })
                });
                let empty = matches!(&polled, Response::Kafka { response: KafkaResponse::Records { records, .. } } if records.is_empty());
                if !empty || Instant::now() >= deadline {
                    return polled;
                }
                tokio::time::sleep(POLL_RECHECK).await;
            }
        }
        KafkaRequest::CommitOffset {
            group,
            partition,
            offset,
        } => {
            let command = StreamCommand::CommitOffset {
                group,
                partition,
                offset,
            };
            match settle(node, OFFSETS_GROUP, HostedCommand::Stream(command)).await {
                Ok(HostedApplied::Stream(StreamApplied::OffsetCommitted)) => {
                    kafka(KafkaResponse::OffsetCommitted)
                }
                Ok(other) => unexpected(other),
                Err(refusal) => refused(refusal, "the consumer offsets"),
            }
        }
        // As Kafka's group coordinator does, the offsets group's leader answers from what it
        // has applied: a position it has not yet learnt is at worst an older one, which
        // makes a consumer read again, never skip.
        KafkaRequest::FetchOffset { group, partition } => {
            if let Err(refusal) = lock(node).ensure_group(OFFSETS_GROUP) {
                return refused(refusal, "the consumer offsets");
            }
            read_leader(node, OFFSETS_GROUP, |offsets| {
                kafka(KafkaResponse::Offset {
                    offset: offsets.committed_offset(&group, partition),
                })
            })
        }
        KafkaRequest::Fetch { .. } | KafkaRequest::Propose { .. } => Response::error(
            ErrorCode::Unavailable,
            "quorum mode replicates its log by Raft, not by kafka's fetch",
        ),
    }
}

/// The group of `partition`, which must exist in this run's topic; created on this node now
/// if it is one of the partition's replicas, so that its election starts.
fn open_partition(node: &Mutex<QuorumNode<Hosted>>, partition: PartitionId) -> Result<String, Response> {
    let mut node = lock(node);
    let partitions = node.config().kafka.partitions;
    if partition >= partitions {
        return Err(Response::error(
            ErrorCode::Unavailable,
            format!("the topic has partitions 0..{partitions}, not {partition}"),
        ));
    }
    let group = stream::partition_group(partition);
    match node.ensure_group(&group) {
        Ok(()) => Ok(group),
        Err(refusal) => Err(refused(refusal, &format!("partition {partition}"))),
    }
}

/// Answers from the applied state of log group `group` if this node leads it.
fn read_leader(
    node: &Mutex<QuorumNode<Hosted>>,
    group: &str,
    read: impl FnOnce(&StreamMachine) -> Response,
) -> Response {
    let node = lock(node);
    match node.leadership(group) {
        (true, _) => match node.machine(group) {
            Some(Hosted::Stream(log)) => read(log),
            _ => Response::error(ErrorCode::Unavailable, format!("{group} is not a log")),
        },
        (false, leader) => Response::not_leader(format!("this node does not lead {group}"), leader),
    }
}

/// Proposes `command` in group `name` and waits until it is applied.
async fn settle(
    node: &Mutex<QuorumNode<Hosted>>,
    name: &str,
    command: HostedCommand,
) -> Result<HostedApplied, Refusal> {
    let pending = lock(node).propose(name, &command);
    match pending {
        Ok(receiver) => receiver
            .await
            .unwrap_or_else(|_| Err(Refusal::OutcomeUnknown("the replica shut down".into()))),
        Err(refusal) => Err(refusal),
    }
}

fn kafka(response: KafkaResponse) -> Response {
    Response::Kafka { response }
}

fn unexpected(applied: HostedApplied) -> Response {
    Response::error(
        ErrorCode::OutcomeUnknown,
        format!("unexpected result {applied:?}"),
    )
}

/// The response to a refusal about `what`.
fn refused(refusal: Refusal, what: &str) -> Response {
    match refusal {
        Refusal::NotLeader(leader) => Response::not_leader(format!("this node does not lead {what}"), leader),
        // The client moves on to another node, as from a node that does not lead.
        Refusal::NotMember => Response::not_leader(format!("this node holds no replica of {what}"), None),
        Refusal::OutcomeUnknown(why) => Response::error(ErrorCode::OutcomeUnknown, why),
        Refusal::Unavailable(why) => Response::error(ErrorCode::Unavailable, why),
        Refusal::BadName(why) => Response::error(ErrorCode::LimitExceeded, why),
    }
}
