//! The broker process: recover from disk, listen, and serve each connection.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use crate::codec::{read_frame, write_frame, CodecError};
use crate::config::{BrokerConfig, Limits};
use crate::net::{BoxStream, Listener};
use crate::protocol::{ErrorCode, Request, RequestFrame, Response, ResponseFrame, UNKNOWN_REQUEST_ID};
use crate::queue::{ConnectionId, QueueStore};
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
}

/// A broker node, configured but not started.
pub struct Broker {
    config: BrokerConfig,
    seams: Seams,
}

impl Broker {
    /// A node that will reach the world only through the given seams.
    pub fn new(config: BrokerConfig, seams: Seams) -> Self {
        Self { config, seams }
    }

    /// Recovers the durable state and binds the listener; call [`RunningBroker::run`] next.
    pub async fn start(mut self) -> Result<RunningBroker, BrokerError> {
        let (log, replay) =
            QueueLog::open(self.seams.disk.as_ref(), &self.config.data_dir, self.config.fsync)?;
        let incarnation = self.seams.entropy.next_u64();
        tracing::info!(
            incarnation = format_args!("{incarnation:016x}"),
            mode = %self.config.mode,
            fsync = %self.config.fsync,
            records = replay.records.len(),
            damage = ?replay.damage,
            "recovered"
        );
        let store = QueueStore::recover(log, replay.records, self.config.limits);
        tracing::info!(depths = ?store.depths(), "queues after recovery");
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
            store: Arc::new(Mutex::new(store)),
            limits: self.config.limits,
            spawner: Arc::clone(&self.seams.spawner),
        })
    }

    /// Starts and serves until the listener fails.
    pub async fn serve(self) -> Result<(), BrokerError> {
        self.start().await?.run().await
    }
}

/// A broker that has recovered and is listening.
pub struct RunningBroker {
    listener: Box<dyn Listener>,
    store: Arc<Mutex<QueueStore>>,
    limits: Limits,
    spawner: Arc<dyn Spawner>,
}

impl RunningBroker {
    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections forever, one task each.
    pub async fn run(mut self) -> Result<(), BrokerError> {
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
            let store = Arc::clone(&self.store);
            let limits = self.limits;
            self.spawner.spawn(Box::pin(async move {
                serve_connection(stream, connection, &store, limits).await;
                let requeued = lock(&store).release(connection);
                tracing::debug!(%peer, connection, requeued, "connection closed");
                drop(slot);
            }));
        }
    }
}

fn lock(store: &Mutex<QueueStore>) -> MutexGuard<'_, QueueStore> {
    // Nothing panics while holding the lock; recover the guard rather than cascade if it did.
    store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        response: Response::Error { code, message },
    }
}

/// Serves requests until the peer leaves or sends something that breaks the framing.
async fn serve_connection<S>(stream: S, connection: ConnectionId, store: &Mutex<QueueStore>, limits: Limits)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    loop {
        let reply = match read_frame::<RequestFrame, _>(&mut reader, limits.frame_bytes_max).await {
            Ok(None) => return,
            Ok(Some(frame)) => ResponseFrame {
                id: frame.id,
                response: handle(store, connection, frame.request),
            },
            Err(CodecError::Io(_) | CodecError::Truncated { .. }) => return,
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
            return;
        }
    }
}

fn handle(store: &Mutex<QueueStore>, connection: ConnectionId, request: Request) -> Response {
    let mut store = lock(store);
    let outcome = match request {
        Request::Publish { queue, body } => {
            store.publish(&queue, body).map(|seq| Response::Confirmed { seq })
        }
        Request::Get { queue } => Ok(match store.get(&queue, connection) {
            Some((tag, body)) => Response::Delivery { tag, body },
            None => Response::Empty,
        }),
        Request::Ack { queue, tag } => store.ack(&queue, tag, connection).map(|()| Response::Acked),
    };
    outcome.unwrap_or_else(|err| {
        tracing::warn!(connection, %err, "request refused");
        Response::Error {
            code: err.code(),
            message: err.to_string(),
        }
    })
}
