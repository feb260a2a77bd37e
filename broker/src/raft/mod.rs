//! Raft, as a state machine without I/O.
//!
//! [`Raft`] takes inputs (a tick of logical time, a message from a peer, a proposal) and
//! accumulates [`Output`]: state to persist, log entries to write or cut, messages to send,
//! and entries that became committed. The driver must handle each output in that order:
//! persist durably first, then send, then apply. Because the driver persists before any
//! message of the same step leaves, a follower's success reply and the leader's own count
//! both mean "on disk", so a majority commit is a majority of disks.
//!
//! Fixed membership, no snapshots, no pre-vote. A leader that has not heard from a majority
//! for an election timeout steps down (check-quorum), so clients on a minority side learn
//! quickly that it cannot serve.

mod core;
mod types;

pub use self::core::{Raft, RaftConfig, Role};
pub use types::{Entry, Envelope, HardState, LogIndex, Message, NodeId, Output, Term};

#[cfg(test)]
mod tests;
