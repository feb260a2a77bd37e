//! The broker process: recover from disk, listen, and serve each connection with the
//! service of the configured mode.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use crate::classic::{Classic, Upstreams};
use crate::codec::{read_frame, write_frame, CodecError};
use crate::config::{BrokerConfig, Limits, Mode};
use crate::disk::{FailStopDisk, Halt};
use crate::inspect::{Inspector, QueueEvent};
use crate::kafka::{Acks, KafkaNode, KafkaRequest};
use crate::mirrored::{self, MirrorNode};
use crate::net::{BoxStream, Listener};
use crate::protocol::{ErrorCode, Request, RequestFrame, Response, ResponseFrame, UNKNOWN_REQUEST_ID};
use crate::queue::{ConnectionId, QueueStore};
use crate::quorum::{self, Command, HostedCommand};
use crate::raft::NodeId;
use crate::seams::{Seams, Spawner};
use crate::storage::{QueueLog, StorageError};

/// Why a broker could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Accepting connections failed for good.
    #[error("accept failed: {0}")]
    Accept(std::io::Error),
    /// The durable state could not be recovered.
    #[error("recovery failed: {0}")]
    Recovery(#[from] StorageError),
    /// The configuration cannot work.
    #[error("bad configuration: {0}")]
    Config(String),
    /// Storage failed while serving; the node stopped rather than risk acknowledging
    /// data it may have lost (see [`crate::Halt`]).
    #[error("halted: {0}")]
    Halted(String),
}

/// A broker node, configured but not started.
pub struct Broker {
    config: BrokerConfig,
    seams: Seams,
}

/// What serves requests, per mode.
#[derive(Clone)]
enum Service {
    Single(Arc<Mutex<QueueStore>>, Confirms),
    Classic(Arc<Classic>, Confirms),
    Mirrored(Arc<Mutex<MirrorNode>>),
    Kafka(Arc<KafkaNode>),
    Quorum {
        node: quorum::Node,
        /// Distinguishes this boot's connections from an earlier boot's in consumer ids.
        incarnation: u64,
    },
}

impl Broker {
    /// A node that will reach the world only through the given seams.
    pub fn new(config: BrokerConfig, seams: Seams) -> Self {
        Self { config, seams }
    }

    /// Recovers the durable state and binds the listener; call [`RunningBroker::run`] next.
    pub async fn start(mut self) -> Result<RunningBroker, BrokerError> {
        let incarnation = self.seams.entropy.next_u64();
        let halt = Arc::new(Halt::default());
        self.seams.disk = Arc::new(FailStopDisk::new(Arc::clone(&self.seams.disk), Arc::clone(&halt)));
        tracing::info!(
            incarnation = format_args!("{incarnation:016x}"),
            mode = %self.config.mode,
            id = self.config.id,
            fsync = %self.config.fsync,
            "starting"
        );
        let service = match self.config.mode {
            Mode::Single => Service::Single(self.open_store()?, self.confirms()),
            Mode::Classic => Service::Classic(
                Arc::new(Classic::new(
                    self.open_store()?,
                    self.config.id,
                    &self.config.peers,
                    Arc::clone(&self.seams.network),
                )),
                self.confirms(),
            ),
            Mode::Quorum => Service::Quorum {
                node: quorum::start(&self.config, &mut self.seams).map_err(|err| match err {
                    quorum::StartError::Config(why) => BrokerError::Config(why),
                    quorum::StartError::Storage(err) => BrokerError::Recovery(err),
                })?,
                incarnation,
            },
            Mode::Mirrored => self.start_mirrored()?,
            Mode::Kafka => Service::Kafka(KafkaNode::start(&self.config, &mut self.seams)?),
        };
        let listener = self
            .seams
            .network
            .bind(&self.config.listen)
            .await
            .map_err(|source| BrokerError::Bind {
                addr: self.config.listen.clone(),
                source,
            })?;
        Ok(RunningBroker {
            listener,
            halt,
            service,
            limits: self.config.limits,
            spawner: Arc::clone(&self.seams.spawner),
        })
    }

    fn confirms(&self) -> Confirms {
        Confirms {
            inspector: Arc::clone(&self.seams.inspector),
            me: self.config.id,
        }
    }

    fn open_store(&self) -> Result<Arc<Mutex<QueueStore>>, BrokerError> {
        Ok(Arc::new(Mutex::new(self.load_store()?)))
    }

    fn load_store(&self) -> Result<QueueStore, BrokerError> {
        if !self.config.durable {
            tracing::info!("queues are not durable: starting empty");
            return Ok(QueueStore::in_memory(self.config.limits));
        }
        let (log, replay) =
            QueueLog::open(self.seams.disk.as_ref(), &self.config.data_dir, self.config.fsync)?;
        tracing::info!(records = replay.records.len(), damage = ?replay.damage, "recovered");
        let store = QueueStore::recover(log, replay.records, self.config.limits);
        tracing::info!(depths = ?store.depths(), "queues after recovery");
        Ok(store)
    }

    fn start_mirrored(&mut self) -> Result<Service, BrokerError> {
        if !self.config.durable {
            return Err(BrokerError::Config("mirrored queues are always durable".into()));
        }
        let store = self.load_store()?;
        let seed = self.seams.entropy.next_u64();
        let node = MirrorNode::start(
            self.config.id,
            &self.config.peers,
            self.config.mirrored,
            store,
            Box::new(crate::entropy::SeededEntropy::new(seed)),
            &self.seams,
        )
        .map_err(|e| BrokerError::Config(format!("recovering mirrored queues: {e}")))?;
        Ok(Service::Mirrored(node))
    }

    /// Starts and serves until the listener fails.
    pub async fn serve(self) -> Result<(), BrokerError> {
        self.start().await?.run().await
    }
}

/// A broker that has recovered and is listening.
pub struct RunningBroker {
    listener: Box<dyn Listener>,
    halt: Arc<Halt>,
    service: Service,
    limits: Limits,
    spawner: Arc<dyn Spawner>,
}

impl RunningBroker {
    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections, one task each, until the listener or the storage fails.
    pub async fn run(self) -> Result<(), BrokerError> {
        let halt = Arc::clone(&self.halt);
        tokio::select! {
            reason = halt.raised() => Err(BrokerError::Halted(reason)),
            result = self.accept_loop() => result,
        }
    }

    async fn accept_loop(mut self) -> Result<(), BrokerError> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "listening");
        let slots = Arc::new(Semaphore::new(self.limits.connections_max));
        let mut next_connection: ConnectionId = 1;
        loop {
            let (stream, peer) = self.listener.accept().await.map_err(BrokerError::Accept)?;
            let connection = next_connection;
            next_connection += 1;
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(%peer, "refusing connection: limit reached");
                self.spawner.spawn(Box::pin(refuse(stream, self.limits)));
                continue;
            };
            let service = self.service.clone();
            let limits = self.limits;
            self.spawner.spawn(Box::pin(async move {
                let consumed = serve_connection(stream, connection, &service, limits).await;
                service.connection_closed(connection, consumed);
                tracing::debug!(%peer, connection, "connection closed");
                drop(slot);
            }));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the guard rather than cascade if it did.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn refuse(mut stream: BoxStream, limits: Limits) {
    let reply = error_frame(
        UNKNOWN_REQUEST_ID,
        ErrorCode::LimitExceeded,
        "too many connections".into(),
    );
    let _ = write_frame(&mut stream, &reply, limits.frame_bytes_max).await;
}

fn error_frame(id: u64, code: ErrorCode, message: String) -> ResponseFrame {
    ResponseFrame {
        id,
        response: error(code, message),
    }
}

fn error(code: ErrorCode, message: String) -> Response {
    Response::error(code, message)
}

/// Serves requests until the peer leaves or breaks the framing; returns whether the
/// connection took deliveries (so that closing it must return them).
async fn serve_connection<S>(stream: S, connection: ConnectionId, service: &Service, limits: Limits) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut consumed = false;
    let mut upstreams = Upstreams::new();
    loop {
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let Ok(frame) = tokio::time::timeout(
            idle,
            read_frame::<RequestFrame, _>(&mut reader, limits.frame_bytes_max),
        )
        .await
        else {
            tracing::debug!(connection, "idle timeout: closing and requeueing its deliveries");
            return consumed;
        };
        let reply = match frame {
            Ok(None) => return consumed,
            Ok(Some(frame)) => {
                consumed |= matches!(frame.request, Request::Get { .. });
                // Kafka's acks=0: the broker answers nothing, not even a refusal.
                let unanswered = matches!(
                    &frame.request,
                    Request::Kafka {
                        request: KafkaRequest::Produce { acks: Acks::Zero, .. }
                    }
                );
                let response = service.handle(connection, &mut upstreams, frame.request).await;
                if unanswered {
                    // A refused one closes the connection, as a Kafka broker does: that is
                    // the only way an acks=0 producer learns to look for the leader again.
                    if matches!(response, Response::Error { .. }) {
                        return consumed;
                    }
                    continue;
                }
                ResponseFrame {
                    id: frame.id,
                    response,
                }
            }
            Err(CodecError::Io(_) | CodecError::Truncated { .. }) => return consumed,
            Err(err @ CodecError::TooLarge { .. }) => {
                error_frame(UNKNOWN_REQUEST_ID, ErrorCode::FrameTooLarge, err.to_string())
            }
            Err(err @ CodecError::Malformed(_)) => {
                error_frame(UNKNOWN_REQUEST_ID, ErrorCode::MalformedFrame, err.to_string())
            }
        };
        let closing = reply.id == UNKNOWN_REQUEST_ID;
        if closing {
            tracing::warn!(connection, reply = ?reply.response, "bad frame; closing connection");
        }
        if write_frame(&mut writer, &reply, limits.frame_bytes_max)
            .await
            .is_err()
            || closing
        {
            return consumed;
        }
    }
}

impl Service {
    async fn handle(
        &self,
        connection: ConnectionId,
        upstreams: &mut Upstreams,
        request: Request,
    ) -> Response {
        if let Request::Metadata { names } = request {
            return self.metadata(names);
        }
        match self {
            Service::Single(store, confirms) => handle_single(store, confirms, connection, request),
            Service::Mirrored(node) => handle_mirrored(node, connection, request).await,
            Service::Kafka(node) => match request {
                Request::Kafka { request } => node.handle(request).await,
                Request::Raft {
                    from,
                    group,
                    messages,
                } => Response::Raft {
                    messages: quorum::lock(node.meta()).receive(from, &group, messages),
                },
                _ => error(
                    ErrorCode::Unavailable,
                    "kafka mode serves produce, poll and fetch".into(),
                ),
            },
            Service::Classic(classic, confirms) => {
                classic
                    .handle(connection, upstreams, request, |store, connection, request| {
                        handle_single(store, confirms, connection, request)
                    })
                    .await
            }
            Service::Quorum { node, incarnation } => {
                quorum::handle(node, incarnation.wrapping_add(connection), request).await
            }
        }
    }

    /// Who leads each name, as this node knows it.
    fn metadata(&self, names: Vec<String>) -> Response {
        let (node, peers, leaders): crate::protocol::LeaderTable = match self {
            Service::Single(..) => (1, Vec::new(), names.into_iter().map(|n| (n, Some(1))).collect()),
            Service::Classic(classic, _) => {
                let leaders = names
                    .into_iter()
                    .map(|n| {
                        let home = classic.home(&n);
                        (n, Some(home))
                    })
                    .collect();
                (classic.me(), classic.peers(), leaders)
            }
            Service::Mirrored(node) => {
                let mut node = mirrored::lock(node);
                let leaders = names
                    .into_iter()
                    .map(|n| {
                        let l = node.leader_of(&n);
                        (n, l)
                    })
                    .collect();
                (node.me(), node.peers(), leaders)
            }
            Service::Quorum { node, .. } => {
                let node = lock(node);
                let leaders = names
                    .into_iter()
                    .filter_map(|n| {
                        // A partition's number names its group, as it names a partition in
                        // kafka mode; any other name is a queue's. A partition this node
                        // holds no replica of is left out: it cannot know the leader.
                        match n.parse().ok().map(quorum::stream::partition_group) {
                            Some(group) if node.hosts(&group) => {
                                let l = node.leader_id(&group).or_else(|| node.leader_id(&n));
                                Some((n, l))
                            }
                            Some(_) => None,
                            None => {
                                let l = node.leader_id(&n);
                                Some((n, l))
                            }
                        }
                    })
                    .collect();
                (
                    node.config().id,
                    node.config().peers.clone().into_iter().collect(),
                    leaders,
                )
            }
            Service::Kafka(node) => node.metadata_for(names),
        };
        Response::Metadata { node, leaders, peers }
    }

    fn connection_closed(&self, connection: ConnectionId, consumed: bool) {
        match self {
            Service::Single(store, _) => {
                lock(store).release(connection);
            }
            Service::Classic(classic, _) => {
                // Proxied deliveries return when the upstream connections drop with us.
                lock(&classic.store).release(connection);
            }
            Service::Mirrored(node) => mirrored::lock(node).release(connection),
            Service::Kafka(_) => {}
            Service::Quorum { node, incarnation } if consumed => {
                let consumer = incarnation.wrapping_add(connection);
                let queues: Vec<String> = lock(node).queue_names();
                for queue in queues.iter().filter(|q| !quorum::stream::is_log_group(q)) {
                    // Best effort: if this node no longer leads, the next leader returns
                    // every checkout when it takes over.
                    let _ = lock(node).propose(queue, &HostedCommand::Queue(Command::Return { consumer }));
                }
            }
            Service::Quorum { .. } => {}
        }
    }
}

/// Where a single node's publisher confirms are reported (invariant monitors).
#[derive(Clone)]
struct Confirms {
    inspector: Arc<dyn Inspector>,
    me: NodeId,
}

fn handle_single(
    store: &Mutex<QueueStore>,
    confirms: &Confirms,
    connection: ConnectionId,
    request: Request,
) -> Response {
    let mut store = lock(store);
    let outcome = match request {
        Request::Publish { queue, body } => store.publish(&queue, body).map(|seq| {
            confirms.inspector.queue(QueueEvent::Confirmed {
                queue: &queue,
                node: confirms.me,
                seq,
                on_disk: store.on_disk(),
                epoch: None,
            });
            Response::Confirmed { seq }
        }),
        Request::Get { queue } => Ok(match store.get(&queue, connection) {
            Some((tag, body)) => Response::Delivery { tag, body },
            None => Response::Empty,
        }),
        Request::Ack { queue, tag } => store.ack(&queue, tag, connection).map(|()| Response::Acked),
        Request::Nack { queue, tag } => store.nack(&queue, tag, connection).map(|()| Response::Requeued),
        Request::Raft { .. } | Request::Mirror { .. } | Request::Kafka { .. } | Request::Metadata { .. } => {
            return error(
                ErrorCode::Unavailable,
                "this node's mode does not replicate that way".into(),
            )
        }
    };
    outcome.unwrap_or_else(|err| {
        tracing::warn!(connection, %err, "request refused");
        error(err.code(), err.to_string())
    })
}

async fn handle_mirrored(node: &Mutex<MirrorNode>, connection: ConnectionId, request: Request) -> Response {
    use mirrored::Refusal as R;
    let refused = |refusal: R| match refusal {
        R::NotLeader(leader) => Response::Error {
            code: ErrorCode::NotLeader,
            message: "this node does not lead the queue".into(),
            leader,
        },
        R::Unavailable(why) => error(ErrorCode::Unavailable, why),
        R::OutcomeUnknown(why) => error(ErrorCode::OutcomeUnknown, why),
        R::Queue(err) => error(err.code(), err.to_string()),
    };
    match request {
        Request::Publish { queue, body } => {
            let pending = mirrored::lock(node).publish(&queue, body);
            let (seq, epoch, waits) = match pending {
                Ok(pending) => pending,
                Err(refusal) => return refused(refusal),
            };
            let mut failed = Vec::new();
            for (member, token, answer) in waits {
                let confirmed = tokio::time::timeout(mirrored::REPLICATE_TIMEOUT, answer).await;
                if !matches!(confirmed, Ok(Ok(true))) {
                    failed.push((member, token));
                }
            }
            if let Err(refusal) = mirrored::lock(node).confirm_without(&queue, epoch, &failed) {
                return refused(refusal);
            }
            if failed.is_empty() {
                mirrored::lock(node).confirmed(&queue, seq, epoch);
                return Response::Confirmed { seq };
            }
            // Mirrors were dropped: confirm only once a majority accepts the smaller view.
            let (answers, quorum) = {
                let node = mirrored::lock(node);
                match node.view_quorum() {
                    0 => (Vec::new(), 0),
                    quorum => (node.announce_view(&queue), quorum),
                }
            };
            let mut accepted = 1;
            for answer in answers {
                let ok = tokio::time::timeout(mirrored::REPLICATE_TIMEOUT, answer).await;
                accepted += usize::from(matches!(ok, Ok(Ok(true))));
            }
            let still = mirrored::lock(node).leading_epoch(&queue) == Some(epoch);
            if accepted >= quorum && still {
                mirrored::lock(node).confirmed(&queue, seq, epoch);
                Response::Confirmed { seq }
            } else {
                refused(R::OutcomeUnknown(
                    "mirrors were dropped and no majority accepted the new view".into(),
                ))
            }
        }
        Request::Get { queue } => match mirrored::lock(node).get(&queue, connection) {
            Ok(Some((tag, body))) => Response::Delivery { tag, body },
            Ok(None) => Response::Empty,
            Err(refusal) => refused(refusal),
        },
        Request::Ack { queue, tag } => match mirrored::lock(node).ack(&queue, tag, connection) {
            Ok(()) => Response::Acked,
            Err(refusal) => refused(refusal),
        },
        Request::Nack { queue, tag } => match mirrored::lock(node).nack(&queue, tag, connection) {
            Ok(()) => Response::Requeued,
            Err(refusal) => refused(refusal),
        },
        Request::Mirror { from, messages } => Response::Mirror {
            accepted: mirrored::lock(node).receive(from, messages),
        },
        Request::Raft { .. } | Request::Kafka { .. } | Request::Metadata { .. } => {
            error(ErrorCode::Unavailable, "this node runs mirrored mode".into())
        }
    }
}
