//! Step-by-step tests of the Raft core on an in-memory network.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// What a node has "on disk": exactly what the driver persisted from its outputs.
#[derive(Debug, Default, Clone)]
struct Disk {
    hard: HardState,
    log: Vec<Entry>,
}

/// A deterministic cluster: nodes, their disks, a message pool and a partition.
struct Cluster {
    nodes: BTreeMap<NodeId, Raft>,
    disks: BTreeMap<NodeId, Disk>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    in_flight: Vec<Envelope>,
    cut: BTreeSet<(NodeId, NodeId)>,
    down: BTreeSet<NodeId>,
    rng: u64,
    /// Every (term, leader) ever observed, to check election safety.
    leaders: BTreeSet<(Term, NodeId)>,
}

fn config(id: NodeId, n: u64) -> RaftConfig {
    RaftConfig::new(id, (1..=n).filter(|p| *p != id).collect())
}

impl Cluster {
    fn new(n: u64, seed: u64) -> Self {
        let nodes = (1..=n)
            .map(|id| {
                (
                    id,
                    Raft::new(config(id, n), HardState::default(), Vec::new(), seed * 31 + id),
                )
            })
            .collect();
        Self {
            nodes,
            disks: (1..=n).map(|id| (id, Disk::default())).collect(),
            applied: (1..=n).map(|id| (id, Vec::new())).collect(),
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            down: BTreeSet::new(),
            rng: seed,
            leaders: BTreeSet::new(),
        }
    }

    fn random(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.rng >> 33
    }

    /// Plays the driver: persist, then release messages, then apply.
    fn drain(&mut self, id: NodeId) {
        let out = self.nodes.get_mut(&id).unwrap().take_output();
        let disk = self.disks.get_mut(&id).unwrap();
        if let Some(hard) = out.hard_state {
            disk.hard = hard;
        }
        if let Some(after) = out.truncate_after {
            disk.log.truncate(after as usize);
        }
        for entry in out.append {
            assert_eq!(
                entry.index,
                disk.log.len() as u64 + 1,
                "node {id}: stored log stays contiguous"
            );
            disk.log.push(entry);
        }
        self.in_flight.extend(out.messages);
        let applied = self.applied.get_mut(&id).unwrap();
        for entry in out.committed {
            assert_eq!(
                entry.index,
                applied.len() as u64 + 1,
                "node {id}: applies in order, once"
            );
            applied.push(entry);
        }
        let node = &self.nodes[&id];
        if node.role() == Role::Leader {
            self.leaders.insert((node.term(), id));
        }
    }

    fn tick_all(&mut self) {
        let ids: Vec<_> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| !self.down.contains(id))
            .collect();
        for id in ids {
            self.nodes.get_mut(&id).unwrap().tick();
            self.drain(id);
        }
    }

    /// Delivers in-flight messages; with `chaos`, drops some and reorders.
    fn deliver(&mut self, chaos: bool) {
        let mut batch = std::mem::take(&mut self.in_flight);
        if chaos {
            for i in (1..batch.len()).rev() {
                let j = (self.random() % (i as u64 + 1)) as usize;
                batch.swap(i, j);
            }
        }
        for envelope in batch {
            let blocked = self.cut.contains(&(envelope.from, envelope.to))
                || self.down.contains(&envelope.to)
                || self.down.contains(&envelope.from);
            if blocked || (chaos && self.random() % 10 == 0) {
                continue;
            }
            self.nodes
                .get_mut(&envelope.to)
                .unwrap()
                .step(envelope.from, envelope.message);
            self.drain(envelope.to);
        }
    }

    fn run(&mut self, rounds: usize, chaos: bool) {
        for _ in 0..rounds {
            self.tick_all();
            self.deliver(chaos);
            self.deliver(chaos);
        }
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<_> = self
            .nodes
            .iter()
            .filter(|(id, n)| !self.down.contains(id) && n.role() == Role::Leader)
            .map(|(id, _)| *id)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    fn propose(&mut self, id: NodeId, command: &[u8]) -> Result<LogIndex, Option<NodeId>> {
        let result = self.nodes.get_mut(&id).unwrap().propose(command.to_vec());
        self.drain(id);
        result
    }

    fn isolate(&mut self, id: NodeId) {
        for other in self.nodes.keys().copied().collect::<Vec<_>>() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Crashes a node and restarts it from its disk.
    fn restart(&mut self, id: NodeId, seed: u64) {
        let disk = self.disks[&id].clone();
        let n = self.nodes.len() as u64;
        self.nodes
            .insert(id, Raft::new(config(id, n), disk.hard, disk.log, seed));
        self.applied.insert(id, Vec::new());
    }

    /// Replaces a node's disk with an empty one and restarts it, as after a disk
    /// replacement: it comes back with no log, no term and no memory of its votes.
    fn wipe(&mut self, id: NodeId, seed: u64) {
        let empty = Disk {
            hard: HardState {
                abstaining: true,
                ..HardState::default()
            },
            log: Vec::new(),
        };
        self.disks.insert(id, empty);
        self.restart(id, seed);
    }

    /// Whether wiping `id` leaves every committed entry on a majority of intact disks (a
    /// wipe that destroys more copies than that is outside any replicated log's promise).
    fn may_wipe(&self, id: NodeId) -> bool {
        let n = self.nodes.len();
        let Some(longest) = self.applied.values().max_by_key(|a| a.len()) else {
            return true;
        };
        let holders = self
            .disks
            .iter()
            .filter(|(other, disk)| {
                **other != id && !disk.hard.abstaining && disk.log.len() >= longest.len() && {
                    let k = longest.len();
                    k == 0 || disk.log[k - 1] == longest[k - 1]
                }
            })
            .count();
        holders > n / 2
    }

    /// Raft's safety properties over the whole run so far.
    fn assert_safe(&self) {
        let mut per_term: BTreeMap<Term, NodeId> = BTreeMap::new();
        for (term, id) in &self.leaders {
            let first = per_term.entry(*term).or_insert(*id);
            assert_eq!(first, id, "two leaders in term {term}");
        }
        // Applied entries agree at every index (state machine safety).
        let longest = self.applied.values().max_by_key(|a| a.len()).unwrap();
        for (id, applied) in &self.applied {
            assert_eq!(
                &longest[..applied.len()],
                &applied[..],
                "node {id} applied a different entry"
            );
        }
        // Log matching: equal (index, term) implies equal prefixes.
        let logs: Vec<&[Entry]> = self.nodes.values().map(|n| n.log()).collect();
        for a in &logs {
            for b in &logs {
                let common = a.len().min(b.len());
                if let Some(k) = (0..common).rev().find(|&k| a[k].term == b[k].term) {
                    assert_eq!(&a[..=k], &b[..=k], "logs agree on an entry but not on its prefix");
                }
            }
        }
    }
}

#[test]
fn a_single_node_elects_itself_and_commits_alone() {
    let mut c = Cluster::new(1, 1);
    c.run(25, false);
    assert_eq!(c.leader(), Some(1));
    let index = c.propose(1, b"x").unwrap();
    c.run(1, false);
    assert_eq!(
        c.applied[&1].last().map(|e| (e.index, e.command.clone())),
        Some((index, b"x".to_vec()))
    );
}

#[test]
fn three_nodes_elect_one_leader_and_replicate_to_all() {
    let mut c = Cluster::new(3, 2);
    c.run(30, false);
    let leader = c.leader().expect("a leader");
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    assert_eq!(
        c.propose(follower, b"no").unwrap_err(),
        Some(leader),
        "followers redirect"
    );
    for i in 0..5u8 {
        c.propose(leader, &[i]).unwrap();
    }
    c.run(5, false);
    for id in 1..=3 {
        let commands: Vec<_> = c.applied[&id]
            .iter()
            .filter(|e| !e.command.is_empty())
            .map(|e| e.command[0])
            .collect();
        assert_eq!(commands, vec![0, 1, 2, 3, 4], "node {id}");
        assert_eq!(
            c.disks[&id].log.len(),
            c.nodes[&id].log().len(),
            "node {id} persisted every entry"
        );
    }
    c.assert_safe();
}

#[test]
fn an_isolated_leader_steps_down_and_its_uncommitted_entries_are_replaced() {
    let mut c = Cluster::new(3, 3);
    c.run(30, false);
    let old = c.leader().unwrap();
    c.propose(old, b"committed").unwrap();
    c.run(3, false);
    c.isolate(old);
    let stranded = c.propose(old, b"stranded").unwrap();
    c.run(40, false);
    assert_ne!(
        c.nodes[&old].role(),
        Role::Leader,
        "check-quorum demotes a leader without a majority"
    );
    let new = c.leader().expect("the majority elects a new leader");
    assert_ne!(new, old);
    c.propose(new, b"after").unwrap();
    c.run(3, false);
    c.cut.clear();
    c.run(30, false);
    for id in 1..=3 {
        let commands: Vec<&[u8]> = c.applied[&id]
            .iter()
            .map(|e| e.command.as_slice())
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(commands, vec![&b"committed"[..], &b"after"[..]], "node {id}");
        let at = &c.nodes[&id].log()[stranded as usize - 1];
        assert_ne!(
            at.command,
            b"stranded".to_vec(),
            "node {id} still holds the stranded entry"
        );
    }
    c.assert_safe();
}

#[test]
fn a_restarted_node_remembers_its_vote_and_term() {
    let mut c = Cluster::new(3, 4);
    c.run(30, false);
    let leader = c.leader().unwrap();
    let term = c.nodes[&leader].term();
    let voter = (1..=3).find(|id| *id != leader).unwrap();
    assert_eq!(c.disks[&voter].hard.term, term);
    c.restart(voter, 99);
    assert_eq!(c.nodes[&voter].term(), term, "term survives a restart");
    // A second candidate in the same term is refused: the vote is already cast.
    let other = (1..=3).find(|id| *id != leader && *id != voter).unwrap();
    let voted_for = c.disks[&voter].hard.voted_for;
    c.nodes.get_mut(&voter).unwrap().step(
        other,
        Message::RequestVote {
            term,
            last_log_index: 100,
            last_log_term: term,
        },
    );
    let out = c.nodes.get_mut(&voter).unwrap().take_output();
    let granted = out
        .messages
        .iter()
        .any(|e| matches!(e.message, Message::Vote { granted: true, .. }));
    assert!(voted_for.is_some());
    assert_eq!(granted, voted_for == Some(other));
}

#[test]
fn a_candidate_with_a_stale_log_cannot_win() {
    let mut c = Cluster::new(3, 5);
    c.run(30, false);
    let leader = c.leader().unwrap();
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    c.isolate(lagging);
    for i in 0..3u8 {
        c.propose(leader, &[i]).unwrap();
    }
    c.run(3, false);
    // The lagging node asks for votes with its short log in a higher term.
    let term = c.nodes[&leader].term() + 5;
    let third = (1..=3).find(|id| *id != leader && *id != lagging).unwrap();
    let stale = c.nodes[&lagging]
        .log()
        .last()
        .map_or((0, 0), |e| (e.index, e.term));
    c.nodes.get_mut(&third).unwrap().step(
        lagging,
        Message::RequestVote {
            term,
            last_log_index: stale.0,
            last_log_term: stale.1,
        },
    );
    let out = c.nodes.get_mut(&third).unwrap().take_output();
    assert!(out
        .messages
        .iter()
        .any(|e| matches!(e.message, Message::Vote { granted: false, .. })));
    assert_eq!(
        out.hard_state.map(|h| h.term),
        Some(term),
        "but it does adopt the higher term"
    );
}

#[test]
fn safety_holds_under_message_loss_reordering_partitions_and_restarts() {
    chaos(false);
}

/// The same, with disks replaced now and then: a node that comes back empty must neither
/// vote twice in a term it forgot nor vote for a log that lacks what it had acknowledged.
#[test]
fn safety_holds_when_disks_are_replaced() {
    chaos(true);
}

fn chaos(wipes: bool) {
    for seed in 1..=100u64 {
        let n = if seed % 2 == 0 { 3 } else { 5 };
        let mut c = Cluster::new(n, seed);
        let mut proposed = 0u32;
        for round in 0..400u64 {
            c.run(1, true);
            if let Some(leader) = c.leader() {
                if c.propose(leader, &proposed.to_le_bytes()).is_ok() {
                    proposed += 1;
                }
            }
            match c.random() % 25 {
                0 => {
                    let id = 1 + c.random() % n;
                    c.isolate(id);
                }
                1 => c.cut.clear(),
                2 => {
                    let id = 1 + c.random() % n;
                    c.restart(id, seed * 1000 + round);
                }
                3 if wipes => {
                    let id = 1 + c.random() % n;
                    if c.may_wipe(id) {
                        c.wipe(id, seed * 1000 + round);
                    }
                }
                _ => {}
            }
            c.assert_safe();
        }
        c.cut.clear();
        c.run(60, false);
        c.assert_safe();
        let leader = c.leader().unwrap_or_else(|| {
            let states: Vec<String> = c
                .nodes
                .iter()
                .map(|(id, r)| {
                    format!(
                        "n{id} {:?} term {} last ({}, {}) {:?}",
                        r.role(),
                        r.term(),
                        r.log().last().map_or(0, |e| e.term),
                        r.last_index(),
                        c.disks[id].hard
                    )
                })
                .collect();
            panic!("seed {seed}: no leader after healing: {states:#?}")
        });
        c.propose(leader, b"final").unwrap();
        c.run(10, false);
        for id in 1..=n {
            let last = c.applied[&id].last().map(|e| e.command.clone());
            assert_eq!(last, Some(b"final".to_vec()), "seed {seed}: node {id} caught up");
        }
        assert!(proposed > 5, "seed {seed}: only {proposed} proposals accepted");
    }
}

#[test]
fn a_leader_commits_an_earlier_terms_entry_only_through_one_of_its_own() {
    // Raft's Figure 8: an entry from an old term stored on a majority may still be
    // overwritten, so counting replicas alone must not commit it.
    let old = |index| Entry {
        term: 1,
        index,
        command: vec![index as u8],
    };
    let hard = HardState {
        term: 2,
        voted_for: None,
        ..HardState::default()
    };
    let mut node = Raft::new(config(1, 3), hard, vec![old(1), old(2)], 7);
    for _ in 0..25 {
        node.tick();
    }
    let term = node.term();
    node.step(2, Message::Vote { term, granted: true });
    assert_eq!(node.role(), Role::Leader);
    assert_eq!(
        node.log().last().map(|e| (e.index, e.term, e.command.is_empty())),
        Some((3, term, true))
    );
    node.take_output();

    node.step(
        2,
        Message::AppendReply {
            term,
            success: true,
            index: 2,
        },
    );
    assert_eq!(
        node.commit_index(),
        0,
        "entries of term 1 on 2 of 3 nodes are not yet committed"
    );
    assert!(node.take_output().committed.is_empty());

    node.step(
        2,
        Message::AppendReply {
            term,
            success: true,
            index: 3,
        },
    );
    assert_eq!(
        node.commit_index(),
        3,
        "the leader's own no-op commits everything before it"
    );
    let committed: Vec<_> = node.take_output().committed.iter().map(|e| e.index).collect();
    assert_eq!(committed, vec![1, 2, 3]);
}

#[test]
fn a_node_that_lost_its_disk_votes_again_only_after_every_peer_answered() {
    let empty = HardState {
        abstaining: true,
        ..HardState::default()
    };
    let mut node = Raft::new(config(1, 3), empty, Vec::new(), 5);
    let granted = |node: &mut Raft, from, term, last_log_term, last_log_index| {
        node.step(
            from,
            Message::RequestVote {
                term,
                last_log_index,
                last_log_term,
            },
        );
        let out = node.take_output();
        out.messages
            .iter()
            .any(|e| matches!(e.message, Message::Vote { granted: true, .. }))
    };
    // It may have voted in term 4 before it lost its disk, and cannot know.
    assert!(
        !granted(&mut node, 2, 4, 4, 9),
        "an empty node voted before its census"
    );
    // It neither campaigns nor waits silently: it probes every peer.
    let mut nonce = None;
    for _ in 0..40 {
        node.tick();
        let out = node.take_output();
        assert!(
            !out.messages
                .iter()
                .any(|e| matches!(e.message, Message::RequestVote { .. })),
            "an abstaining node campaigned"
        );
        nonce = nonce.or(out.messages.iter().find_map(|e| match e.message {
            Message::Probe { nonce, .. } => Some(nonce),
            _ => None,
        }));
    }
    let nonce = nonce.expect("probes were sent");
    let answer = |node: &mut Raft, from, term, last_log_term, last_log_index, nonce| {
        node.step(
            from,
            Message::ProbeReply {
                term,
                nonce,
                last_log_term,
                last_log_index,
            },
        );
        node.take_output()
    };
    // An answer to another life's probe does not count.
    answer(&mut node, 2, 6, 5, 20, nonce ^ 1);
    answer(&mut node, 3, 6, 5, 20, nonce ^ 1);
    assert!(node.abstaining());
    answer(&mut node, 2, 6, 5, 20, nonce);
    assert!(node.abstaining(), "one peer of two answered");
    let out = answer(&mut node, 3, 7, 3, 30, nonce);
    assert!(!node.abstaining());
    let hard = out.hard_state.expect("the end of abstention is persisted");
    assert_eq!(
        (hard.term, hard.voted_for, hard.log_floor),
        (7, Some(1), (5, 20)),
        "the highest term and the most up-to-date log any peer held"
    );
    // Term 7's vote is spent; in term 8 a candidate behind the floor is refused, one at
    // least as up-to-date is not.
    assert!(!granted(&mut node, 2, 7, 9, 99));
    assert!(
        !granted(&mut node, 2, 8, 5, 19),
        "voted for a log behind its peers'"
    );
    assert!(granted(&mut node, 3, 8, 5, 20));
}
