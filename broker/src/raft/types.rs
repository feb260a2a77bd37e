//! Raft's data: terms, entries, messages and the output of a step.

use serde::{Deserialize, Serialize};

/// A node's id within its group.
pub type NodeId = u64;
/// An election term.
pub type Term = u64;
/// A 1-based log position; 0 means "before the first entry".
pub type LogIndex = u64;

/// One log entry. An empty command is the no-op a new leader appends to commit
/// entries of earlier terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created it.
    pub term: Term,
    /// Its position.
    pub index: LogIndex,
    /// The state machine command, opaque to Raft.
    pub command: Vec<u8>,
}

/// What must survive a crash besides the log: the current term and the vote cast in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom it voted for in that term.
    pub voted_for: Option<NodeId>,
    /// The node started with no state at all (new, or its disk was replaced) and has not
    /// yet learnt every peer's term: until it has, it neither votes nor campaigns. A node
    /// that lost its disk may have voted in a term it can no longer remember; every term it
    /// could have voted in is at most some peer's current term (the candidate it voted for
    /// holds that term), so once each peer has answered its probe it may vote again, in
    /// later terms only.
    #[serde(default)]
    pub abstaining: bool,
    /// After abstaining: the most up-to-date log (last entry's term and index) any peer
    /// held when it answered. The node's own log was lost with its disk, and every entry
    /// committed before is in that log (it is at least as up-to-date as the log of a peer
    /// that holds the entry), so the node votes only for candidates at least this
    /// up-to-date, as it would had it kept its own log.
    #[serde(default)]
    pub log_floor: (Term, LogIndex),
}

/// Messages between peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Message {
    /// A candidate asks for a vote.
    RequestVote {
        /// Candidate's term.
        term: Term,
        /// Index of the candidate's last entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last entry.
        last_log_term: Term,
    },
    /// The answer to a vote request.
    Vote {
        /// Voter's term.
        term: Term,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// A leader replicates entries (none: a heartbeat).
    Append {
        /// Leader's term.
        term: Term,
        /// Index of the entry just before `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// Entries to store, contiguous from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// Leader's commit index.
        leader_commit: LogIndex,
    },
    /// A node without state asks for the peer's term (see [`HardState::abstaining`]).
    Probe {
        /// The asker's term.
        term: Term,
        /// Drawn anew at each start, so that an answer to an earlier life's probe is
        /// not taken for an answer to this one.
        nonce: u64,
    },
    /// The answer to a probe: the peer's current term and how far its log goes.
    ProbeReply {
        /// The peer's term.
        term: Term,
        /// The probe's nonce.
        nonce: u64,
        /// The term of the peer's last entry.
        last_log_term: Term,
        /// The index of the peer's last entry.
        last_log_index: LogIndex,
    },
    /// The answer to an append.
    AppendReply {
        /// Follower's term.
        term: Term,
        /// Whether the log matched at `prev_log_index`.
        success: bool,
        /// On success, the last index now known to match the leader's; on failure, a hint:
        /// the leader should retry from just after this index.
        index: LogIndex,
    },
}

/// A message with its sender and addressee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender.
    pub from: NodeId,
    /// Addressee.
    pub to: NodeId,
    /// Content.
    pub message: Message,
}

/// What a step asks of the driver, in the order it must be done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// 1. Persist this hard state (term and vote), if set.
    pub hard_state: Option<HardState>,
    /// 2. Cut the stored log so that its last entry is at this index (conflicting entries
    ///    from an old leader), if set.
    pub truncate_after: Option<LogIndex>,
    /// 3. Append these entries to the stored log, durably.
    pub append: Vec<Entry>,
    /// 4. Then send these messages.
    pub messages: Vec<Envelope>,
    /// 5. Then apply these newly committed entries, in order.
    pub committed: Vec<Entry>,
    /// Where this node, as leader, moved its commit index by counting replicas: (index,
    /// the leader's term then, the term of the entry there). For inspection only; nothing
    /// to do. (The term is taken at the commit: a batch of messages stepped before the
    /// output is taken can move the node to a later term.)
    pub leader_commits: Vec<(LogIndex, Term, Term)>,
}

impl Output {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Output::default()
    }
}
