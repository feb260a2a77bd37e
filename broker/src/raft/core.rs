//! The Raft node state machine.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{Entry, Envelope, HardState, LogIndex, Message, NodeId, Output, Term};

/// Timing and identity of one node. Times are in ticks; the driver decides a tick's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node.
    pub id: NodeId,
    /// Every other member of the group.
    pub peers: Vec<NodeId>,
    /// Election timeout is drawn uniformly from `election_ticks_min..election_ticks_max`.
    pub election_ticks_min: u32,
    /// Upper bound (exclusive) of the election timeout.
    pub election_ticks_max: u32,
    /// A leader sends appends (heartbeats) this often.
    pub heartbeat_ticks: u32,
    /// Most entries in one append message.
    pub entries_per_append_max: usize,
}

impl RaftConfig {
    /// Defaults for a node `id` among `peers`: 10-20 tick elections, 2 tick heartbeats.
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> Self {
        Self {
            id,
            peers,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 2,
            entries_per_append_max: 256,
        }
    }
}

/// A node's role in its current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks for votes.
    Candidate,
    /// Replicates its log to the others.
    Leader,
}

/// One member of a Raft group.
#[derive(Debug)]
pub struct Raft {
    config: RaftConfig,
    hard: HardState,
    /// The log: `log[i]` holds index `i + 1`.
    log: Vec<Entry>,
    commit: LogIndex,
    role: Role,
    leader: Option<NodeId>,
    votes: BTreeSet<NodeId>,
    next_index: BTreeMap<NodeId, LogIndex>,
    match_index: BTreeMap<NodeId, LogIndex>,
    /// Peers heard from since the leader last checked for a quorum.
    heard_from: BTreeSet<NodeId>,
    ticks_since_heartbeat: u32,
    ticks_since_reset: u32,
    election_timeout: u32,
    rng_state: u64,
    out: Output,
    /// While abstaining: each peer's term and log position, as its answer to this life's
    /// probe gave them.
    census: BTreeMap<NodeId, (Term, (Term, LogIndex))>,
    /// This life's probe nonce.
    nonce: u64,
}

impl Raft {
    /// A node restored from what it persisted (`HardState::default()` and no entries when new).
    /// `seed` fixes its election timeouts.
    pub fn new(config: RaftConfig, hard: HardState, log: Vec<Entry>, seed: u64) -> Self {
        debug_assert!(
            log.iter().enumerate().all(|(i, e)| e.index == i as u64 + 1),
            "a restored log is contiguous from 1"
        );
        let mut raft = Self {
            config,
            hard,
            log,
            commit: 0,
            role: Role::Follower,
            leader: None,
            votes: BTreeSet::new(),
            next_index: BTreeMap::new(),
            match_index: BTreeMap::new(),
            heard_from: BTreeSet::new(),
            ticks_since_heartbeat: 0,
            ticks_since_reset: 0,
            election_timeout: 0,
            rng_state: seed,
            out: Output::default(),
            census: BTreeMap::new(),
            nonce: 0,
        };
        raft.nonce = raft.next_random();
        raft.reset_election_timer();
        if raft.hard.abstaining && raft.config.peers.is_empty() {
            raft.end_abstention();
        }
        raft
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Current term.
    pub fn term(&self) -> Term {
        self.hard.term
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Highest index known to be committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    /// Index of the last entry.
    pub fn last_index(&self) -> LogIndex {
        self.log.len() as LogIndex
    }

    /// How many members the group has, this node included.
    pub fn members(&self) -> usize {
        self.config.peers.len() + 1
    }

    /// The entries, for inspection.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// Takes what the driver must do now (see [`Output`]).
    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.ticks_since_reset += 1;
        match self.role {
            Role::Leader => {
                self.ticks_since_heartbeat += 1;
                if self.ticks_since_heartbeat >= self.config.heartbeat_ticks {
                    self.broadcast_append();
                }
                if self.ticks_since_reset >= self.election_timeout {
                    self.check_quorum();
                }
            }
            Role::Follower | Role::Candidate if self.hard.abstaining => {
                if (self.ticks_since_reset - 1) % self.config.heartbeat_ticks.max(1) == 0 {
                    self.probe();
                }
            }
            Role::Follower | Role::Candidate => {
                if self.ticks_since_reset >= self.election_timeout {
                    self.start_election();
                }
            }
        }
    }

    /// Asks each peer that has not answered this life's probe for its term.
    fn probe(&mut self) {
        let message = Message::Probe {
            term: self.hard.term,
            nonce: self.nonce,
        };
        let silent: Vec<NodeId> = self
            .config
            .peers
            .iter()
            .copied()
            .filter(|p| !self.census.contains_key(p))
            .collect();
        for peer in silent {
            self.send(peer, message.clone());
        }
    }

    /// Every peer has answered: vote again, from the term after the highest any of them
    /// holds (the vote in that term is taken, by this node, so it is never cast twice).
    fn end_abstention(&mut self) {
        let floor = self
            .census
            .values()
            .map(|(t, _)| *t)
            .fold(self.hard.term, Term::max);
        let log_floor = self
            .census
            .values()
            .map(|(_, l)| *l)
            .fold(self.hard.log_floor, Ord::max);
        self.hard = HardState {
            term: floor,
            voted_for: Some(self.config.id),
            abstaining: false,
            log_floor,
        };
        self.out.hard_state = Some(self.hard.clone());
        self.census.clear();
        self.reset_election_timer();
    }

    /// Whether the node abstains from elections (see [`HardState::abstaining`]).
    pub fn abstaining(&self) -> bool {
        self.hard.abstaining
    }

    /// Appends `command` if this node leads; returns its index, or the known leader (if any)
    /// as the error so the caller can redirect.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<LogIndex, Option<NodeId>> {
        if self.role != Role::Leader {
            return Err(self.leader);
        }
        let index = self.append_local(command);
        self.broadcast_append();
        // A group of one commits on its own disk alone.
        self.leader_advance_commit();
        Ok(index)
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, from: NodeId, message: Message) {
        if !self.config.peers.contains(&from) {
            return; // not a member: ignore rather than let a stranger move our term
        }
        let term = message_term(&message);
        if term > self.hard.term {
            let leader = matches!(message, Message::Append { .. }).then_some(from);
            self.become_follower(term, leader);
        }
        match message {
            Message::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => self.on_request_vote(from, term, last_log_index, last_log_term),
            Message::Vote { term, granted } => self.on_vote(from, term, granted),
            Message::Append {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.on_append(from, term, prev_log_index, prev_log_term, entries, leader_commit),
            Message::AppendReply { term, success, index } => self.on_append_reply(from, term, success, index),
            Message::Probe { nonce, .. } => {
                let reply = Message::ProbeReply {
                    term: self.hard.term,
                    nonce,
                    last_log_term: self.last_term(),
                    last_log_index: self.last_index(),
                };
                self.send(from, reply);
            }
            Message::ProbeReply {
                term,
                nonce,
                last_log_term,
                last_log_index,
            } => {
                if self.hard.abstaining && nonce == self.nonce {
                    self.census.insert(from, (term, (last_log_term, last_log_index)));
                    if self.census.len() == self.config.peers.len() {
                        self.end_abstention();
                    }
                }
            }
        }
    }

    // ----- roles -----

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.hard.term {
            self.hard = HardState {
                term,
                voted_for: None,
                ..self.hard
            };
            self.out.hard_state = Some(self.hard.clone());
        }
        self.role = Role::Follower;
        self.votes.clear();
        // Only a leader's append (or a vote granted) resets the timer, as the Raft paper
        // says: if a higher term alone did, a node that cannot win (a stale or emptied log)
        // would hold every election off by campaigning again and again.
        if leader.is_some() {
            self.reset_election_timer();
        }
        self.leader = leader;
    }

    fn start_election(&mut self) {
        self.hard = HardState {
            term: self.hard.term + 1,
            voted_for: Some(self.config.id),
            ..self.hard
        };
        self.out.hard_state = Some(self.hard.clone());
        self.role = Role::Candidate;
        self.leader = None;
        self.votes = BTreeSet::from([self.config.id]);
        self.reset_election_timer();
        if self.has_quorum(self.votes.len()) {
            self.become_leader();
            return;
        }
        let message = Message::RequestVote {
            term: self.hard.term,
            last_log_index: self.last_index(),
            last_log_term: self.last_term(),
        };
        for peer in self.config.peers.clone() {
            self.send(peer, message.clone());
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        let next = self.last_index() + 1;
        self.next_index = self.config.peers.iter().map(|p| (*p, next)).collect();
        self.match_index = self.config.peers.iter().map(|p| (*p, 0)).collect();
        self.heard_from.clear();
        self.ticks_since_reset = 0;
        // Entries of earlier terms commit only through an entry of this term (Raft §5.4.2).
        self.append_local(Vec::new());
        self.broadcast_append();
        self.leader_advance_commit();
    }

    fn check_quorum(&mut self) {
        let heard = self.heard_from.len() + 1;
        self.heard_from.clear();
        self.ticks_since_reset = 0;
        if !self.has_quorum(heard) {
            self.role = Role::Follower;
            self.leader = None;
            self.reset_election_timer();
        }
    }

    // ----- handlers -----

    fn on_request_vote(&mut self, from: NodeId, term: Term, last_log_index: LogIndex, last_log_term: Term) {
        let own = (self.last_term(), self.last_index()).max(self.hard.log_floor);
        let up_to_date = (last_log_term, last_log_index) >= own;
        let free = self.hard.voted_for.is_none_or(|v| v == from);
        let granted = term == self.hard.term
            && free
            && up_to_date
            && self.role != Role::Leader
            && !self.hard.abstaining;
        if granted {
            self.hard.voted_for = Some(from);
            self.out.hard_state = Some(self.hard.clone());
            self.reset_election_timer();
        }
        let reply = Message::Vote {
            term: self.hard.term,
            granted,
        };
        self.send(from, reply);
    }

    fn on_vote(&mut self, from: NodeId, term: Term, granted: bool) {
        if self.role != Role::Candidate || term != self.hard.term || !granted {
            return;
        }
        self.votes.insert(from);
        if self.has_quorum(self.votes.len()) {
            self.become_leader();
        }
    }

    fn on_append(
        &mut self,
        from: NodeId,
        term: Term,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) {
        if term < self.hard.term {
            let reply = Message::AppendReply {
                term: self.hard.term,
                success: false,
                index: 0,
            };
            self.send(from, reply);
            return;
        }
        // term == ours: `from` leads this term.
        self.role = Role::Follower;
        self.leader = Some(from);
        self.reset_election_timer();
        if self.term_at(prev_log_index) != Some(prev_log_term) {
            let hint = prev_log_index.saturating_sub(1).min(self.last_index());
            let reply = Message::AppendReply {
                term: self.hard.term,
                success: false,
                index: hint,
            };
            self.send(from, reply);
            return;
        }
        let last_new = prev_log_index + entries.len() as LogIndex;
        for entry in entries {
            match self.term_at(entry.index) {
                Some(t) if t == entry.term => continue,
                Some(_) => {
                    debug_assert!(entry.index > self.commit, "a committed entry never conflicts");
                    self.truncate_after(entry.index - 1);
                }
                None => {}
            }
            debug_assert_eq!(entry.index, self.last_index() + 1, "appends are contiguous");
            self.out.append.push(entry.clone());
            self.log.push(entry);
        }
        self.advance_commit(leader_commit.min(last_new));
        let reply = Message::AppendReply {
            term: self.hard.term,
            success: true,
            index: last_new,
        };
        self.send(from, reply);
    }

    fn on_append_reply(&mut self, from: NodeId, term: Term, success: bool, index: LogIndex) {
        if self.role != Role::Leader || term != self.hard.term {
            return;
        }
        self.heard_from.insert(from);
        if success {
            let matched = self.match_index.entry(from).or_default();
            *matched = (*matched).max(index);
            let next = *matched + 1;
            self.next_index.insert(from, next);
            self.leader_advance_commit();
            if next <= self.last_index() {
                self.send_append(from);
            }
        } else {
            let next = self.next_index.entry(from).or_insert(1);
            *next = (index + 1).min(*next - 1).max(1);
            self.send_append(from);
        }
    }

    // ----- log and commit -----

    fn append_local(&mut self, command: Vec<u8>) -> LogIndex {
        let entry = Entry {
            term: self.hard.term,
            index: self.last_index() + 1,
            command,
        };
        self.out.append.push(entry.clone());
        self.log.push(entry);
        self.last_index()
    }

    fn truncate_after(&mut self, index: LogIndex) {
        self.log.truncate(index as usize);
        self.out.append.retain(|e| e.index <= index);
        self.out.truncate_after = Some(self.out.truncate_after.map_or(index, |t| t.min(index)));
    }

    fn leader_advance_commit(&mut self) {
        // The highest index stored on a majority (the leader counts its own log).
        let mut matched: Vec<LogIndex> = self.match_index.values().copied().collect();
        matched.push(self.last_index());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let majority_index = matched[self.quorum() - 1];
        if self.term_at(majority_index) == Some(self.hard.term) {
            self.advance_commit(majority_index);
        }
    }

    fn advance_commit(&mut self, to: LogIndex) {
        let to = to.min(self.last_index());
        if to <= self.commit {
            return;
        }
        let from = self.commit as usize;
        self.out.committed.extend_from_slice(&self.log[from..to as usize]);
        self.commit = to;
        if self.role == Role::Leader {
            let entry_term = self.term_at(to).unwrap_or(0);
            self.out.leader_commits.push((to, self.hard.term, entry_term));
        }
    }

    fn broadcast_append(&mut self) {
        self.ticks_since_heartbeat = 0;
        for peer in self.config.peers.clone() {
            self.send_append(peer);
        }
    }

    fn send_append(&mut self, peer: NodeId) {
        let next = self.next_index.get(&peer).copied().unwrap_or(1).max(1);
        let prev_log_index = next - 1;
        let prev_log_term = self.term_at(prev_log_index).unwrap_or(0);
        let end = (prev_log_index as usize + self.config.entries_per_append_max).min(self.log.len());
        let entries = self.log[prev_log_index as usize..end].to_vec();
        let message = Message::Append {
            term: self.hard.term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.commit,
        };
        self.send(peer, message);
    }

    // ----- helpers -----

    fn send(&mut self, to: NodeId, message: Message) {
        self.out.messages.push(Envelope {
            from: self.config.id,
            to,
            message,
        });
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        match index {
            0 => Some(0),
            i => self.log.get(i as usize - 1).map(|e| e.term),
        }
    }

    fn last_term(&self) -> Term {
        self.log.last().map_or(0, |e| e.term)
    }

    fn quorum(&self) -> usize {
        let members = self.config.peers.len() + 1;
        members / 2 + 1
    }

    fn has_quorum(&self, count: usize) -> bool {
        count >= self.quorum()
    }

    fn reset_election_timer(&mut self) {
        self.ticks_since_reset = 0;
        let span = self
            .config
            .election_ticks_max
            .saturating_sub(self.config.election_ticks_min)
            .max(1);
        self.election_timeout = self.config.election_ticks_min + (self.next_random() % span as u64) as u32;
    }

    /// splitmix64: the node's own reproducible randomness, seeded by the driver.
    fn next_random(&mut self) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn message_term(message: &Message) -> Term {
    match message {
        Message::RequestVote { term, .. }
        | Message::Vote { term, .. }
        | Message::Append { term, .. }
        | Message::AppendReply { term, .. }
        | Message::Probe { term, .. }
        | Message::ProbeReply { term, .. } => *term,
    }
}
