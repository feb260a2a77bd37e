//! Queue state of one node: ready messages, deliveries awaiting acknowledgement, and the
//! log that makes both survive a restart.
//!
//! Every change is appended to the log before it is applied in memory, so memory never
//! holds a fact the disk could contradict after a crash.

use std::collections::BTreeMap;

use crate::config::Limits;
use crate::protocol::ErrorCode;
use crate::storage::{QueueLog, Record, StorageError};

/// Identifies a client connection, for deliveries that must be requeued when it closes.
pub type ConnectionId = u64;

/// A refused queue operation, mapped one to one onto a wire [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The log could not be written; the operation did not happen.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A limit would be exceeded.
    #[error("{0}")]
    Limit(String),
    /// The tag is not an outstanding delivery of this connection.
    #[error("delivery tag {tag} is not outstanding on this connection")]
    UnknownTag {
        /// The tag given.
        tag: u64,
    },
}

impl QueueError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            QueueError::Storage(_) => ErrorCode::Unavailable,
            QueueError::Limit(_) => ErrorCode::LimitExceeded,
            QueueError::UnknownTag { .. } => ErrorCode::UnknownDeliveryTag,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// The seq the next publish gets.
    next_seq: u64,
    /// Messages waiting for a consumer, in publish order.
    ready: BTreeMap<u64, Vec<u8>>,
    /// Delivered, not yet acknowledged: seq -> (connection, body).
    unacked: BTreeMap<u64, (ConnectionId, Vec<u8>)>,
}

impl Queue {
    fn len(&self) -> usize {
        self.ready.len() + self.unacked.len()
    }
}

/// All queues of a node.
#[derive(Debug)]
pub struct QueueStore {
    /// `None` for non-durable queues, which live in memory only and vanish on restart.
    log: Option<QueueLog>,
    queues: BTreeMap<String, Queue>,
    /// Mirrored mode: the latest (epoch, leader) known per queue, as persisted.
    leadership: BTreeMap<String, (u64, u64)>,
    limits: Limits,
}

impl QueueStore {
    /// Non-durable queues: nothing is written, and a restart starts empty.
    pub fn in_memory(limits: Limits) -> Self {
        Self {
            log: None,
            queues: BTreeMap::new(),
            leadership: BTreeMap::new(),
            limits,
        }
    }

    /// Rebuilds the queues from replayed records and keeps appending to `log`.
    pub fn recover(log: QueueLog, records: Vec<Record>, limits: Limits) -> Self {
        let mut queues: BTreeMap<String, Queue> = BTreeMap::new();
        let mut leadership = BTreeMap::new();
        for record in records {
            match record {
                Record::Publish { queue, seq, body } => {
                    let q = queues.entry(queue).or_default();
                    // The log is written in seq order; a gap would mean a record vanished
                    // from the middle of the log, which the checksum framing rules out.
                    debug_assert!(seq >= q.next_seq, "publish seqs go forward");
                    q.next_seq = seq + 1;
                    q.ready.insert(seq, body);
                }
                Record::Ack { queue, seq } => {
                    if let Some(q) = queues.get_mut(&queue) {
                        q.ready.remove(&seq);
                    }
                }
                Record::Purge { queue } => {
                    if let Some(q) = queues.get_mut(&queue) {
                        q.ready.clear();
                    }
                }
                Record::Leadership { queue, epoch, leader } => {
                    leadership.insert(queue, (epoch, leader));
                }
            }
        }
        Self {
            log: Some(log),
            queues,
            leadership,
            limits,
        }
    }

    /// Stores a message and returns its seq; durable per the log's fsync policy.
    pub fn publish(&mut self, queue: &str, body: Vec<u8>) -> Result<u64, QueueError> {
        if queue.len() > self.limits.queue_name_bytes_max {
            return Err(QueueError::Limit(format!(
                "queue name of {} bytes exceeds {}",
                queue.len(),
                self.limits.queue_name_bytes_max
            )));
        }
        if body.len() > self.limits.message_bytes_max {
            return Err(QueueError::Limit(format!(
                "message of {} bytes exceeds {}",
                body.len(),
                self.limits.message_bytes_max
            )));
        }
        if !self.queues.contains_key(queue) && self.queues.len() >= self.limits.queues_max {
            return Err(QueueError::Limit(format!(
                "broker already holds {} queues",
                self.limits.queues_max
            )));
        }
        let seq = match self.queues.get(queue) {
            Some(q) if q.len() >= self.limits.queue_messages_max => {
                return Err(QueueError::Limit(format!(
                    "queue '{queue}' already holds {} messages",
                    self.limits.queue_messages_max
                )));
            }
            Some(q) => q.next_seq,
            None => 0,
        };
        self.persist(&Record::Publish {
            queue: queue.to_string(),
            seq,
            body: body.clone(),
        })?;
        let q = self.queues.entry(queue.to_string()).or_default();
        q.next_seq = seq + 1;
        q.ready.insert(seq, body);
        Ok(seq)
    }

    /// Whether everything the node holds is fsynced (`None`: the queues are not durable).
    pub fn on_disk(&self) -> Option<bool> {
        self.log.as_ref().map(|log| log.is_synced())
    }

    fn persist(&mut self, record: &Record) -> Result<(), StorageError> {
        match &mut self.log {
            Some(log) => log.append(record),
            None => Ok(()),
        }
    }

    /// Hands the oldest ready message of `queue` to `connection`; `None` when none is ready.
    pub fn get(&mut self, queue: &str, connection: ConnectionId) -> Option<(u64, Vec<u8>)> {
        let q = self.queues.get_mut(queue)?;
        let (seq, body) = q.ready.pop_first()?;
        q.unacked.insert(seq, (connection, body.clone()));
        Some((seq, body))
    }

    /// Removes a message delivered to `connection` for good.
    pub fn ack(&mut self, queue: &str, tag: u64, connection: ConnectionId) -> Result<(), QueueError> {
        let outstanding = self
            .queues
            .get(queue)
            .and_then(|q| q.unacked.get(&tag))
            .is_some_and(|(owner, _)| *owner == connection);
        if !outstanding {
            return Err(QueueError::UnknownTag { tag });
        }
        self.persist(&Record::Ack {
            queue: queue.to_string(),
            seq: tag,
        })?;
        if let Some(q) = self.queues.get_mut(queue) {
            q.unacked.remove(&tag);
        }
        Ok(())
    }

    /// Puts one delivery of `connection` back at its original place.
    pub fn nack(&mut self, queue: &str, tag: u64, connection: ConnectionId) -> Result<(), QueueError> {
        let q = self.queues.get_mut(queue).ok_or(QueueError::UnknownTag { tag })?;
        match q.unacked.get(&tag) {
            Some((owner, _)) if *owner == connection => {
                let (_, body) = q.unacked.remove(&tag).expect("just found");
                q.ready.insert(tag, body);
                Ok(())
            }
            _ => Err(QueueError::UnknownTag { tag }),
        }
    }

    /// Requeues every unacknowledged delivery of a closed connection, in its original place.
    pub fn release(&mut self, connection: ConnectionId) -> usize {
        let mut requeued = 0;
        for q in self.queues.values_mut() {
            let owned: Vec<u64> = q
                .unacked
                .iter()
                .filter(|(_, (owner, _))| *owner == connection)
                .map(|(seq, _)| *seq)
                .collect();
            for seq in owned {
                if let Some((_, body)) = q.unacked.remove(&seq) {
                    q.ready.insert(seq, body);
                    requeued += 1;
                }
            }
        }
        requeued
    }

    /// Drops every message of `queue`, durably.
    pub fn purge(&mut self, queue: &str) -> Result<(), QueueError> {
        self.persist(&Record::Purge {
            queue: queue.to_string(),
        })?;
        if let Some(q) = self.queues.get_mut(queue) {
            q.ready.clear();
            q.unacked.clear();
        }
        Ok(())
    }

    /// Replaces `queue`'s messages with `messages` (seq, body), durably: a promoted mirror
    /// making its in-memory copy the durable queue.
    pub fn install(&mut self, queue: &str, messages: &[(u64, Vec<u8>)]) -> Result<(), QueueError> {
        self.purge(queue)?;
        for (seq, body) in messages {
            self.persist(&Record::Publish {
                queue: queue.to_string(),
                seq: *seq,
                body: body.clone(),
            })?;
        }
        let q = self.queues.entry(queue.to_string()).or_default();
        for (seq, body) in messages {
            q.ready.insert(*seq, body.clone());
            q.next_seq = q.next_seq.max(seq + 1);
        }
        Ok(())
    }

    /// Records the latest leadership of `queue` known to this node, durably.
    pub fn set_leadership(&mut self, queue: &str, epoch: u64, leader: u64) -> Result<(), QueueError> {
        if self.leadership.get(queue) == Some(&(epoch, leader)) {
            return Ok(());
        }
        self.persist(&Record::Leadership {
            queue: queue.to_string(),
            epoch,
            leader,
        })?;
        self.leadership.insert(queue.to_string(), (epoch, leader));
        Ok(())
    }

    /// The persisted leadership of every queue this node has heard of.
    pub fn leadership(&self) -> &BTreeMap<String, (u64, u64)> {
        &self.leadership
    }

    /// Every message of `queue` (ready and delivered), by seq: the content a mirror copies.
    pub fn messages(&self, queue: &str) -> Vec<(u64, Vec<u8>)> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        let mut all: Vec<(u64, Vec<u8>)> = q.ready.iter().map(|(s, b)| (*s, b.clone())).collect();
        all.extend(q.unacked.iter().map(|(s, (_, b))| (*s, b.clone())));
        all.sort_by_key(|(s, _)| *s);
        all
    }

    /// The oldest seq still held in `queue`, and the seq the next publish gets.
    pub fn seq_range(&self, queue: &str) -> (Option<u64>, u64) {
        match self.queues.get(queue) {
            None => (None, 0),
            Some(q) => {
                let oldest = [q.ready.keys().next(), q.unacked.keys().next()]
                    .into_iter()
                    .flatten()
                    .min()
                    .copied();
                (oldest, q.next_seq)
            }
        }
    }

    /// Messages held (ready plus unacknowledged) per queue, for logs and tests.
    pub fn depths(&self) -> BTreeMap<String, usize> {
        self.queues
            .iter()
            .map(|(name, q)| (name.clone(), q.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FsyncPolicy;
    use crate::disk::StdDisk;

    fn open(dir: &std::path::Path) -> QueueStore {
        let (log, replay) = QueueLog::open(&StdDisk, dir, FsyncPolicy::Always).unwrap();
        QueueStore::recover(log, replay.records, Limits::default())
    }

    #[test]
    fn messages_are_delivered_in_publish_order_and_survive_a_restart_until_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        for v in [b"a", b"b", b"c"] {
            store.publish("q", v.to_vec()).unwrap();
        }
        let (tag, body) = store.get("q", 1).unwrap();
        assert_eq!((tag, body.as_slice()), (0, &b"a"[..]));
        store.ack("q", tag, 1).unwrap();
        drop(store);

        let mut store = open(dir.path());
        assert_eq!(store.get("q", 2).map(|(_, b)| b), Some(b"b".to_vec()));
        assert_eq!(store.get("q", 2).map(|(_, b)| b), Some(b"c".to_vec()));
        assert_eq!(store.get("q", 2), None);
    }

    #[test]
    fn a_closed_connection_gives_its_deliveries_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.publish("q", b"a".to_vec()).unwrap();
        store.publish("q", b"b".to_vec()).unwrap();
        let (first, _) = store.get("q", 7).unwrap();
        assert_eq!(store.release(7), 1);
        assert_eq!(store.get("q", 8).map(|(tag, _)| tag), Some(first));
    }

    #[test]
    fn a_nack_puts_the_delivery_back_first_in_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.publish("q", b"a".to_vec()).unwrap();
        store.publish("q", b"b".to_vec()).unwrap();
        let (tag, _) = store.get("q", 1).unwrap();
        assert!(store.nack("q", tag, 2).is_err(), "only the holder may nack");
        store.nack("q", tag, 1).unwrap();
        assert_eq!(store.get("q", 1).map(|(t, _)| t), Some(tag));
    }

    #[test]
    fn only_the_receiving_connection_may_ack() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.publish("q", b"a".to_vec()).unwrap();
        let (tag, _) = store.get("q", 1).unwrap();
        assert!(matches!(
            store.ack("q", tag, 2),
            Err(QueueError::UnknownTag { .. })
        ));
        assert!(matches!(
            store.ack("q", tag + 1, 1),
            Err(QueueError::UnknownTag { .. })
        ));
        store.ack("q", tag, 1).unwrap();
    }

    #[test]
    fn queue_limits_refuse_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = QueueLog::open(&StdDisk, dir.path(), FsyncPolicy::Always).unwrap();
        let limits = Limits {
            queue_messages_max: 2,
            queues_max: 1,
            ..Limits::default()
        };
        let mut store = QueueStore::recover(log, Vec::new(), limits);
        store.publish("q", vec![1]).unwrap();
        store.publish("q", vec![2]).unwrap();
        assert!(matches!(store.publish("q", vec![3]), Err(QueueError::Limit(_))));
        assert!(matches!(
            store.publish("other", vec![3]),
            Err(QueueError::Limit(_))
        ));
        assert_eq!(store.depths().get("q"), Some(&2));
    }
}
