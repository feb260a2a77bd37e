//! The replicated queue: a deterministic state machine that every replica applies the
//! same committed commands to, in the same order, reaching the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who holds a delivery: a client connection somewhere in the cluster.
pub type ConsumerId = u64;

/// A command in the Raft log of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "cmd")]
pub enum Command {
    /// Store a message at the tail.
    Publish {
        /// Message body.
        body: Vec<u8>,
    },
    /// Check the head message out to `consumer`.
    Get {
        /// The consumer taking it.
        consumer: ConsumerId,
    },
    /// Settle a checked-out message for good.
    Ack {
        /// The consumer that holds it.
        consumer: ConsumerId,
        /// Its seq (the delivery tag).
        seq: u64,
    },
    /// Put one delivery of `consumer` back at its place (a nack with requeue).
    Nack {
        /// The consumer that holds it.
        consumer: ConsumerId,
        /// Its seq.
        seq: u64,
    },
    /// Put everything `consumer` holds back at its place in the queue (its connection closed).
    Return {
        /// The consumer.
        consumer: ConsumerId,
    },
    /// Put every checked-out message back: a new leader cannot know which consumers
    /// survived the old one, and a redelivery is safe where a stranded message is not.
    ReturnAll,
}

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Stored at this seq.
    Confirmed(u64),
    /// Checked out.
    Delivery {
        /// Seq, used as the delivery tag.
        seq: u64,
        /// Body.
        body: Vec<u8>,
    },
    /// No ready message.
    Empty,
    /// Settled.
    Acked,
    /// Put back by a nack.
    Requeued,
    /// Messages put back.
    Returned(usize),
    /// The tag is not held by that consumer.
    UnknownTag(u64),
    /// The queue is full.
    Full,
}

/// One queue's replicated state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueMachine {
    next_seq: u64,
    ready: BTreeMap<u64, Vec<u8>>,
    checked_out: BTreeMap<u64, (ConsumerId, Vec<u8>)>,
    messages_max: usize,
}

impl QueueMachine {
    /// An empty queue that holds at most `messages_max` messages.
    pub fn new(messages_max: usize) -> Self {
        Self {
            messages_max,
            ..Self::default()
        }
    }

    /// Applies one committed command.
    pub fn apply(&mut self, command: Command) -> Applied {
        match command {
            Command::Publish { body } => {
                if self.ready.len() + self.checked_out.len() >= self.messages_max {
                    return Applied::Full;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.ready.insert(seq, body);
                Applied::Confirmed(seq)
            }
            Command::Get { consumer } => match self.ready.pop_first() {
                Some((seq, body)) => {
                    self.checked_out.insert(seq, (consumer, body.clone()));
                    Applied::Delivery { seq, body }
                }
                None => Applied::Empty,
            },
            Command::Ack { consumer, seq } => match self.checked_out.get(&seq) {
                Some((holder, _)) if *holder == consumer => {
                    self.checked_out.remove(&seq);
                    Applied::Acked
                }
                _ => Applied::UnknownTag(seq),
            },
            Command::Nack { consumer, seq } => match self.checked_out.get(&seq) {
                Some((holder, _)) if *holder == consumer => {
                    let (_, body) = self.checked_out.remove(&seq).expect("just found");
                    self.ready.insert(seq, body);
                    Applied::Requeued
                }
                _ => Applied::UnknownTag(seq),
            },
            Command::Return { consumer } => self.put_back(|holder| holder == consumer),
            Command::ReturnAll => self.put_back(|_| true),
        }
    }

    fn put_back(&mut self, whose: impl Fn(ConsumerId) -> bool) -> Applied {
        let seqs: Vec<u64> = self
            .checked_out
            .iter()
            .filter(|(_, (holder, _))| whose(*holder))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &seqs {
            if let Some((_, body)) = self.checked_out.remove(seq) {
                self.ready.insert(*seq, body);
            }
        }
        Applied::Returned(seqs.len())
    }

    /// Messages held, ready or checked out.
    pub fn len(&self) -> usize {
        self.ready.len() + self.checked_out.len()
    }

    /// True when the queue holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(m: &mut QueueMachine, body: &[u8]) -> u64 {
        match m.apply(Command::Publish { body: body.to_vec() }) {
            Applied::Confirmed(seq) => seq,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checkouts_are_settled_by_their_holder_or_returned_in_place() {
        let mut m = QueueMachine::new(10);
        publish(&mut m, b"a");
        publish(&mut m, b"b");
        let Applied::Delivery { seq, .. } = m.apply(Command::Get { consumer: 7 }) else {
            panic!()
        };
        assert_eq!(
            m.apply(Command::Ack { consumer: 8, seq }),
            Applied::UnknownTag(seq)
        );
        assert_eq!(m.apply(Command::Return { consumer: 7 }), Applied::Returned(1));
        assert_eq!(
            m.apply(Command::Get { consumer: 9 }),
            Applied::Delivery {
                seq,
                body: b"a".to_vec()
            }
        );
        assert_eq!(m.apply(Command::ReturnAll), Applied::Returned(1));
        assert_eq!(
            m.apply(Command::Get { consumer: 9 }),
            Applied::Delivery {
                seq,
                body: b"a".to_vec()
            }
        );
        assert_eq!(m.apply(Command::Ack { consumer: 9, seq }), Applied::Acked);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn replicas_applying_the_same_commands_agree() {
        let commands = vec![
            Command::Publish { body: b"x".to_vec() },
            Command::Get { consumer: 1 },
            Command::Publish { body: b"y".to_vec() },
            Command::ReturnAll,
            Command::Get { consumer: 2 },
            Command::Ack { consumer: 2, seq: 0 },
        ];
        let mut a = QueueMachine::new(10);
        let mut b = QueueMachine::new(10);
        let ra: Vec<_> = commands.iter().cloned().map(|c| a.apply(c)).collect();
        let rb: Vec<_> = commands.into_iter().map(|c| b.apply(c)).collect();
        assert_eq!(ra, rb);
        assert_eq!(a, b);
    }

    #[test]
    fn a_full_queue_refuses_publishes() {
        let mut m = QueueMachine::new(1);
        publish(&mut m, b"a");
        assert_eq!(m.apply(Command::Publish { body: vec![] }), Applied::Full);
    }
}
