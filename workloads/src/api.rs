//! The small APIs a workload uses to talk to a system, one per workload family. A system
//! (tumult-broker today; RabbitMQ and NATS next) provides a client for each family it
//! serves; the workload keeps its generator, final read and checks, and never sees a
//! product's wire protocol. Every error says whether the call certainly did not take
//! effect, which is what decides `fail` against `info` in the history.

use std::future::Future;
use std::pin::Pin;

use broker::kafka::Acks;

/// What a call returns: a future on the run's single client thread.
pub type ApiFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + 'a>>;

/// Why a call did not succeed, and whether its outcome is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The call certainly did not take effect (refused, or never sent).
    #[error("{0}")]
    Definite(String),
    /// The call may or may not have taken effect (a timeout, a lost connection, a reply
    /// that makes no sense).
    #[error("{0}")]
    Indefinite(String),
}

impl ApiError {
    /// True when the call certainly did not take effect.
    pub fn is_definite(&self) -> bool {
        matches!(self, ApiError::Definite(_))
    }
}

/// A message taken from a queue, held by the consumer until it settles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// What settles it ([`QueueApi::ack`], [`QueueApi::nack`]) on this connection.
    pub tag: u64,
    /// The message body.
    pub body: Vec<u8>,
}

/// A queue (RabbitMQ's family): publish with a confirm, get one message, settle it.
pub trait QueueApi {
    /// Publishes `body` to `queue` and waits for the confirm.
    fn publish<'a>(&'a mut self, queue: &'a str, body: Vec<u8>) -> ApiFuture<'a, ()>;
    /// Takes one message without waiting; `None` when the queue is empty.
    fn get<'a>(&'a mut self, queue: &'a str) -> ApiFuture<'a, Option<Delivery>>;
    /// Acknowledges a delivery: the message is gone.
    fn ack<'a>(&'a mut self, queue: &'a str, tag: u64) -> ApiFuture<'a, ()>;
    /// Hands a delivery back (nack with requeue): the message stays in the queue.
    fn nack<'a>(&'a mut self, queue: &'a str, tag: u64) -> ApiFuture<'a, ()>;
    /// Forgets connections, so the next call starts afresh (a new process, or a retry).
    /// Deliveries held unsettled go back to the queue, as the broker decides.
    fn reset(&mut self);
}

/// Records read from one key of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    /// `(offset, value)`, in offset order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The end of what a consumer may read (the high watermark, the commit index): a read
    /// from here returns nothing until more is written.
    pub end: u64,
}

/// A partitioned log (Kafka's family): send to a key, read a key from an offset, and keep
/// a consumer group's committed positions.
pub trait LogApi {
    /// Sends `value` to `key` with the given acknowledgement level; the record's offset, or
    /// `None` where the system answers nothing (acks=0: the send is complete once written,
    /// and the producer never learns an offset).
    fn send<'a>(&'a mut self, key: u32, value: Vec<u8>, acks: Acks) -> ApiFuture<'a, Option<u64>>;
    /// Reads up to `max` records of `key` from `offset`, without waiting for more.
    fn poll<'a>(&'a mut self, key: u32, offset: u64, max: u32) -> ApiFuture<'a, Records>;
    /// The position `group` committed for `key`, if any.
    fn committed<'a>(&'a mut self, group: &'a str, key: u32) -> ApiFuture<'a, Option<u64>>;
    /// Commits `offset` as `group`'s position for `key`.
    fn commit<'a>(&'a mut self, group: &'a str, key: u32, offset: u64) -> ApiFuture<'a, ()>;
    /// Forgets connections, so the next call starts afresh.
    fn reset(&mut self);
}

/// What a running system offers a run's clients: one client per process for each family
/// it serves (`None` for a family it does not).
pub trait Clients {
    /// A queue client for process `process` (which spreads first connections over nodes).
    fn queue(&self, process: usize) -> Option<Box<dyn QueueApi>>;
    /// A log client for process `process`.
    fn log(&self, process: usize) -> Option<Box<dyn LogApi>>;
}

/// The workload families, by the API they drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// [`QueueApi`].
    Queue,
    /// [`LogApi`].
    Log,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Queue => "queue",
            Family::Log => "log",
        })
    }
}
