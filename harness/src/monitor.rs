//! Invariant monitors: checks that run inside the simulation, on every event a broker
//! node reports through its inspection seam ([`broker::Inspector`]), rather than on the
//! history afterwards. A history shows a broken promise only once a fault has turned it
//! into lost or wrong data; a monitor sees the promise break at the step it breaks, with
//! the state that broke it.
//!
//! The Raft monitor checks, over every group (quorum queues, the kafka controller's
//! metadata log) and every node:
//! - election safety: at most one leader per term;
//! - committed entries never change: an index applied anywhere in one term is applied
//!   everywhere in that term;
//! - leader completeness: a new leader's log holds every entry committed before it;
//! - the commit rule: a leader moves its commit index, by counting replicas, only onto an
//!   entry of its own term (an older entry a majority holds can still be overwritten);
//! - durable terms never go back: a node recovers at least the term it persisted before
//!   it crashed. Raft's vote is only safe if it survives a crash; a node that forgets it
//!   can vote twice in a term (and elect two leaders), so this catches a missing fsync at
//!   the first restart rather than at the rare crash that then loses data. A node whose
//!   disk the nemesis damaged at rest is exempt: the fault, not the broker, lost its state.
//!
//! (Raft's commit index is not persisted here, so "never goes back" is checked on terms,
//! and on committed entries through the two checks above.)
//!
//! The kafka monitor checks each partition's committed records (those below a leader's
//! high watermark, which acks=all producers are answered from): once committed, a record
//! never changes; a new leader's log holds every one; a follower never appends a different
//! record at a committed offset, nor cuts committed records from its log (what pre-0.11
//! truncation to the high watermark does, long before a power loss turns it into loss);
//! the high watermark never passes the log end of a replica the leader's ISR counts,
//! as each replica last reported it (at recovery, append, cut and leadership); it never
//! goes back while one leader holds the partition (a restart starts it again from its
//! checkpoint); and, unless unclean election is on, a new leader is one its predecessor
//! counted in sync (the ISR, and followers whose proposal to join it was in flight).
//!
//! The durability monitor checks that an acknowledgement rests on as many fsynced copies
//! as the mode promises, at the moment it is given: most lost writes begin as a promise
//! weakened long before a fault destroys the one copy left, and a history sees them only
//! then. Each node reports what its log holds once fsynced (the broker reads that from its
//! storage layer, after the fsync call); the monitor keeps each node's durable log and
//! checks a Raft entry's first commit against a majority of the members, a kafka high
//! watermark against every ISR member, an acks=all answer against min.insync.replicas, and
//! a single or classic node's publisher confirm to a durable queue against its own disk.
//! A copy counts only if it is the same entry (term) or record (epoch and value) at that
//! position: a diverged entry a node fsynced is not a copy of the committed one.
//!
//! The mirrored monitor keeps each queue's confirmed messages that no consumer has
//! acknowledged yet, and checks that a mirror promoting itself to leader holds every one:
//! counting a mirror as synchronised promises exactly that, and a promotion is the moment
//! a missing message becomes lost, long before a drain shows it. It also checks that a
//! leader superseded by a promotion confirms nothing the promoted copy lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use broker::kafka::Record;
use broker::raft::{LogIndex, NodeId, Term};
use broker::{fnv64, Inspector, KafkaEvent, QueueEvent, RaftEvent};
use checker::{MonitorReport, Violation, VIOLATIONS_KEPT};

/// The monitors of one simulated run, shared by its hosts.
#[derive(Debug, Default)]
pub struct Monitors {
    state: Mutex<State>,
    /// Whether the kafka controller may elect a replica outside the ISR (the unsafe knob):
    /// then the leader-from-ISR check is off, and leader completeness still judges.
    unclean_election: bool,
}

#[derive(Debug, Default)]
struct State {
    checked: u64,
    violation_count: usize,
    violations: Vec<Violation>,
    /// (group, term) -> the node elected leader in it.
    leaders: BTreeMap<(String, Term), NodeId>,
    /// Per group: each committed index's term.
    committed: BTreeMap<String, BTreeMap<LogIndex, Term>>,
    /// Per group, per leader term: the highest index that term's leader committed.
    commit_by_term: BTreeMap<String, BTreeMap<Term, LogIndex>>,
    /// Per group: each node's highest persisted term.
    persisted: BTreeMap<String, BTreeMap<NodeId, Term>>,
    /// Nodes whose disk the nemesis damaged at rest.
    damaged: BTreeSet<NodeId>,
    /// Per kafka partition: each committed offset's (leader epoch, hash of the value).
    committed_records: BTreeMap<u32, Vec<(u64, u64)>>,
    /// Whether any Raft event came.
    raft: bool,
    /// Whether any kafka event came.
    kafka: bool,
    /// (partition, node) -> where that replica's log ends, as its own events last said.
    log_ends: BTreeMap<(u32, NodeId), u64>,
    /// Whether any acknowledgement came for the durability monitor to judge.
    durability: bool,
    /// Whether a mirrored promotion came for the mirrored monitor to judge.
    mirrored: bool,
    /// Per queue: the messages confirmed to a publisher and not yet acknowledged by a
    /// consumer.
    live: BTreeMap<String, BTreeSet<u64>>,
    /// Per queue: messages a consumer acknowledged before their publish was confirmed. A
    /// message is in the leader's queue (and deliverable) as soon as it is stored, while its
    /// confirm waits for the mirrors, so a fast consumer can ack it first; its confirm must
    /// then not count it as live. (Seen as a false violation on 28 of 500 mirrored swarm
    /// seeds, e.g. seed 29: seq 5 acked at 1.829 s, confirmed at 1.858 s.)
    consumed_unconfirmed: BTreeMap<String, BTreeSet<u64>>,
    /// Per queue: the latest promotion's epoch and the messages the promoted mirror held.
    promoted: BTreeMap<String, (u64, BTreeSet<u64>)>,
    /// Per group: how many members it has (from its leaders).
    members: BTreeMap<String, usize>,
    /// Per group, per node: the term of each entry of its fsynced log.
    durable_entries: BTreeMap<String, BTreeMap<NodeId, Vec<Term>>>,
    /// (partition, node) -> the fingerprints of that replica's fsynced log.
    durable_records: BTreeMap<(u32, NodeId), Fingerprints>,
    /// What the nemesis destroyed: each damaged node's fsynced logs as they were when its
    /// disk was damaged. A copy made and then destroyed by a fault still counts for what
    /// was acknowledged on it: the broker relied on a copy that existed, and cannot know
    /// of the damage until the node comes back.
    destroyed_entries: BTreeMap<(String, NodeId), Vec<Term>>,
    destroyed_records: BTreeMap<(u32, NodeId), Fingerprints>,
    destroyed_ends: BTreeMap<(u32, NodeId), u64>,
    /// Per partition: the replicas its latest leader counted in sync, and in which epoch.
    kafka_isr: BTreeMap<u32, (u64, BTreeSet<NodeId>)>,
    /// (partition, node) -> the epoch and high watermark it last reported as leader, since
    /// it last started or took over.
    leader_hw: BTreeMap<(u32, NodeId), (u64, u64)>,
}

/// A durable log's new shape: its first `kept` items stay and `new` follow them.
fn restore<T>(durable: &mut Vec<T>, kept: u64, new: impl Iterator<Item = T>) {
    durable.truncate(kept as usize);
    durable.extend(new);
}

/// The nodes among `nodes` whose fsynced kafka log holds `record` at its offset.
fn durable_holders<'a>(
    state: &State,
    partition: u32,
    record: &Record,
    nodes: impl Iterator<Item = &'a NodeId>,
) -> Vec<NodeId> {
    let wanted = fingerprint(record);
    let holds = |logs: &BTreeMap<(u32, NodeId), Fingerprints>, n: NodeId| {
        logs.get(&(partition, n))
            .and_then(|d| d.get(record.offset as usize))
            == Some(&wanted)
    };
    nodes
        .filter(|n| holds(&state.durable_records, **n) || holds(&state.destroyed_records, **n))
        .copied()
        .collect()
}

/// A replica's log as the kafka monitor remembers it: each record's fingerprint.
type Fingerprints = Vec<(u64, u64)>;

/// A record as the kafka monitor remembers it.
fn fingerprint(record: &Record) -> (u64, u64) {
    (record.epoch, fnv64(&record.value))
}

impl State {
    fn violate(&mut self, node: NodeId, what: String) {
        self.violate_in("raft", node, what);
    }

    fn violate_in(&mut self, monitor: &str, node: NodeId, what: String) {
        self.violation_count += 1;
        tracing::error!(node, "monitor: {what}");
        let kept = self.violations.iter().filter(|v| v.monitor == monitor).count();
        if kept < VIOLATIONS_KEPT {
            self.violations.push(Violation {
                time_ns: now().as_nanos() as u64,
                monitor: monitor.to_string(),
                node: format!("n{node}"),
                what,
            });
        }
    }
}

/// `group`'s entry of `map`, made empty if missing: these events come at every commit, and
/// the entry API would build the group's name anew each time.
fn of_group<'m, V: Default>(map: &'m mut BTreeMap<String, V>, group: &str) -> &'m mut V {
    if !map.contains_key(group) {
        map.insert(group.to_string(), V::default());
    }
    map.get_mut(group).expect("inserted just above")
}

/// Simulated time since the run began (zero outside a simulation).
fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

impl Monitors {
    /// Monitors for a run whose kafka controller may (`true`) or may not elect a replica
    /// outside the ISR.
    pub fn new(unclean_election: bool) -> Self {
        Self {
            unclean_election,
            ..Self::default()
        }
    }

    /// The nemesis damaged node `node`'s files at rest: what it recovers is the fault's
    /// doing, not the broker's.
    pub fn disk_damaged(&self, node: NodeId) {
        let mut state = self.lock();
        state.damaged.insert(node);
        let entries: Vec<(String, Vec<Term>)> = state
            .durable_entries
            .iter()
            .filter_map(|(group, nodes)| Some((group.clone(), nodes.get(&node)?.clone())))
            .filter(|(_, terms)| !terms.is_empty())
            .collect();
        for (group, terms) in entries {
            state.destroyed_entries.insert((group, node), terms);
        }
        let records: Vec<((u32, NodeId), Fingerprints)> = state
            .durable_records
            .iter()
            .filter(|((_, n), log)| *n == node && !log.is_empty())
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        state.destroyed_records.extend(records);
        let ends: Vec<((u32, NodeId), u64)> = state
            .log_ends
            .iter()
            .filter(|((_, n), _)| *n == node)
            .map(|(k, v)| (*k, *v))
            .collect();
        state.destroyed_ends.extend(ends);
    }

    /// What the monitors found.
    pub fn report(&self) -> MonitorReport {
        let state = self.lock();
        let mut monitors = Vec::new();
        if state.raft {
            monitors.push("raft".to_string());
        }
        if state.kafka {
            monitors.push("kafka".to_string());
        }
        if state.durability {
            monitors.push("durability".to_string());
        }
        if state.mirrored {
            monitors.push("mirrored".to_string());
        }
        MonitorReport::new(
            monitors,
            state.checked,
            state.violation_count,
            state.violations.clone(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inspector for Monitors {
    fn queue(&self, event: QueueEvent<'_>) {
        let mut state = self.lock();
        state.checked += 1;
        match event {
            QueueEvent::Confirmed {
                queue,
                node,
                seq,
                on_disk,
                epoch,
            } => {
                // A leader superseded by a promotion confirms a message the new leader's
                // queue may lack; if the promoted copy did not hold it, it is lost.
                let superseded = epoch.and_then(|e| {
                    let (latest, held) = state.promoted.get(queue)?;
                    (*latest > e && !held.contains(&seq)).then_some((e, *latest))
                });
                if let Some((e, latest)) = superseded {
                    state.mirrored = true;
                    state.violate_in(
                        "mirrored",
                        node,
                        format!(
                            "queue {queue}: confirmed message {seq} as leader of epoch {e} after epoch {latest} began without it"
                        ),
                    );
                }
                let early = state
                    .consumed_unconfirmed
                    .get_mut(queue)
                    .is_some_and(|early| early.remove(&seq));
                if !early {
                    of_group(&mut state.live, queue).insert(seq);
                }
                // A non-durable queue promises nothing across a restart.
                if let Some(on_disk) = on_disk {
                    state.durability = true;
                    if !on_disk {
                        state.violate_in(
                            "durability",
                            node,
                            format!(
                                "confirmed message {seq} of durable queue {queue} before its log was fsynced"
                            ),
                        );
                    }
                }
            }
            QueueEvent::Acked { queue, seq, .. } => {
                let was_live = state.live.get_mut(queue).is_some_and(|live| live.remove(&seq));
                if !was_live {
                    of_group(&mut state.consumed_unconfirmed, queue).insert(seq);
                }
            }
            QueueEvent::Promoted {
                queue,
                node,
                epoch,
                synced,
                held,
            } => {
                state.mirrored = true;
                // A promoted mirror takes the leader's place with what it holds: every
                // message confirmed and not yet consumed must be there, which is what
                // counting a mirror as synchronised promises.
                let held: BTreeSet<u64> = held.iter().copied().collect();
                let newer = state.promoted.get(queue).is_none_or(|(e, _)| *e < epoch);
                if newer {
                    state.promoted.insert(queue.to_string(), (epoch, held.clone()));
                }
                let missing: Vec<u64> = state
                    .live
                    .get(queue)
                    .into_iter()
                    .flatten()
                    .filter(|seq| !held.contains(seq))
                    .copied()
                    .collect();
                if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
                    let counted = if synced {
                        "counted synchronised"
                    } else {
                        "not synchronised"
                    };
                    state.violate_in(
                        "mirrored",
                        node,
                        format!(
                            "queue {queue}: promoted to lead epoch {epoch} ({counted}) without {} confirmed, unconsumed message(s), seq {first}..={last}",
                            missing.len()
                        ),
                    );
                }
            }
        }
    }

    fn kafka(&self, event: KafkaEvent<'_>) {
        let mut state = self.lock();
        state.checked += 1;
        state.kafka = true;
        match event {
            KafkaEvent::Committed {
                partition,
                node,
                epoch,
                hw,
                log,
                isr,
                min_insync: _,
            } => {
                state.durability = true;
                // Within one leadership a high watermark only moves up: consumers may have
                // read everything below it.
                let before = state.leader_hw.insert((partition, node), (epoch, hw));
                if let Some((_, was)) = before.filter(|(e, was)| *e == epoch && *was > hw) {
                    state.violate_in(
                        "kafka",
                        node,
                        format!(
                            "partition {partition}'s high watermark went back from {was} to {hw} on its leader (epoch {epoch})"
                        ),
                    );
                }
                // Kept as the latest leader counts it; copied only when it changed, as most
                // of these events move the high watermark alone.
                let stale = state
                    .kafka_isr
                    .get(&partition)
                    .is_none_or(|(e, counted)| *e < epoch || (*e == epoch && counted != isr));
                if stale {
                    state.kafka_isr.insert(partition, (epoch, isr.clone()));
                }
                // Every in-sync replica has fsynced what the high watermark covers: a
                // replica counted in sync is one the leader relies on to survive a crash.
                let below = (hw as usize).checked_sub(1).and_then(|at| log.get(at));
                if let Some(last) = below {
                    let holders = durable_holders(&state, partition, last, isr.iter());
                    if holders.len() < isr.len() {
                        let offset = last.offset;
                        state.violate_in(
                            "durability",
                            node,
                            format!(
                                "partition {partition}'s high watermark moved to {hw} (epoch {epoch}) while record {offset} was fsynced only on {holders:?} of the ISR {isr:?}"
                            ),
                        );
                    }
                }
                state.log_ends.insert((partition, node), log.len() as u64);
                let known = state.committed_records.entry(partition).or_default();
                let new = log.iter().take(hw as usize).skip(known.len());
                known.extend(new.map(fingerprint));
                // Every in-sync replica holds what the high watermark covers: that is what
                // acks=all promised its producers.
                let short = isr.iter().find_map(|member| {
                    let end = *state.log_ends.get(&(partition, *member))?;
                    // Where a damaged replica's log ended before the fault destroyed it:
                    // the leader counts what it fetched until it hears otherwise.
                    let before = state.destroyed_ends.get(&(partition, *member)).copied();
                    let end = before.map_or(end, |b| end.max(b));
                    (end < hw).then_some((*member, end))
                });
                // A destroyed copy stops counting once the replica is out of the ISR (it
                // must catch up to come back) or has caught up past it.
                let stale: Vec<(u32, NodeId)> = state
                    .destroyed_ends
                    .iter()
                    .filter(|((p, n), before)| {
                        *p == partition
                            && (!isr.contains(n)
                                || state.log_ends.get(&(*p, *n)).is_some_and(|e| e >= *before))
                    })
                    .map(|(k, _)| *k)
                    .collect();
                for key in stale {
                    state.destroyed_ends.remove(&key);
                    if !isr.contains(&key.1) {
                        state.destroyed_records.remove(&key);
                    }
                }
                if let Some((member, end)) = short {
                    state.violate_in(
                        "kafka",
                        node,
                        format!(
                            "partition {partition}'s high watermark {hw} (epoch {epoch}) exceeds the log end {end} of n{member}, which the ISR {isr:?} counts"
                        ),
                    );
                }
            }
            KafkaEvent::Acknowledged {
                partition,
                node,
                offset,
                log,
                min_insync,
            } => {
                state.durability = true;
                // acks=all promises min.insync.replicas copies, and a copy that a power cut
                // can take away is not one.
                if let Some(record) = log.get(offset as usize) {
                    let nodes: BTreeSet<NodeId> = state
                        .durable_records
                        .keys()
                        .chain(state.destroyed_records.keys())
                        .filter(|(p, _)| *p == partition)
                        .map(|(_, n)| *n)
                        .collect();
                    let holders = durable_holders(&state, partition, record, nodes.iter());
                    if holders.len() < min_insync {
                        state.violate_in(
                            "durability",
                            node,
                            format!(
                                "partition {partition}: acks=all producers were answered up to offset {offset}, fsynced only on {holders:?} (min.insync.replicas {min_insync})"
                            ),
                        );
                    }
                }
            }
            KafkaEvent::Stored {
                partition,
                node,
                kept,
                records,
            } => {
                let durable = state.durable_records.entry((partition, node)).or_default();
                restore(durable, kept, records.iter().map(fingerprint));
                // The replica's whole log is on disk now: where it ends (a leader's own
                // appends are reported only here).
                state
                    .log_ends
                    .insert((partition, node), kept + records.len() as u64);
            }
            KafkaEvent::Recovered {
                partition,
                node,
                log_end,
            } => {
                state.log_ends.insert((partition, node), log_end);
                // A restarted leader starts again from its high watermark checkpoint,
                // which may lag what it reported before the crash.
                state.leader_hw.remove(&(partition, node));
            }
            KafkaEvent::Leading {
                partition,
                node,
                epoch,
                log,
                isr,
            } => {
                state.log_ends.insert((partition, node), log.len() as u64);
                state.leader_hw.remove(&(partition, node));
                // A clean election picks a replica the previous leader counted in sync:
                // only those are known to hold every committed record.
                let previous = state.kafka_isr.get(&partition).cloned();
                if let Some((before, counted)) = previous.as_ref().filter(|(e, _)| *e < epoch) {
                    if !self.unclean_election && !counted.contains(&node) {
                        state.violate_in(
                            "kafka",
                            node,
                            format!(
                                "partition {partition}: n{node} leads epoch {epoch} but was not in the ISR {counted:?} of epoch {before}, and unclean election is off"
                            ),
                        );
                    }
                }
                if previous.is_none_or(|(e, _)| e <= epoch) {
                    state.kafka_isr.insert(partition, (epoch, isr.clone()));
                }
                let known = state
                    .committed_records
                    .get(&partition)
                    .map_or(&[][..], Vec::as_slice);
                let missing = known
                    .iter()
                    .enumerate()
                    .find(|(offset, k)| log.get(*offset).map(fingerprint).as_ref() != Some(*k))
                    .map(|(offset, k)| (offset, k.0));
                if let Some((offset, committed_epoch)) = missing {
                    let has = log
                        .get(offset)
                        .map_or(format!("its log ends at {}", log.len()), |r| {
                            format!("it holds a record of epoch {} there", r.epoch)
                        });
                    state.violate_in(
                        "kafka",
                        node,
                        format!(
                            "partition {partition}'s leader of epoch {epoch} lacks committed record {offset} (epoch {committed_epoch}): {has}"
                        ),
                    );
                }
            }
            KafkaEvent::Appended {
                partition,
                node,
                records,
            } => {
                if let Some(last) = records.last() {
                    state.log_ends.insert((partition, node), last.offset + 1);
                }
                let known = state
                    .committed_records
                    .get(&partition)
                    .map_or(&[][..], Vec::as_slice);
                let differs = records
                    .iter()
                    .find(|r| known.get(r.offset as usize).is_some_and(|k| *k != fingerprint(r)));
                if let Some(record) = differs {
                    let offset = record.offset;
                    state.violate_in(
                        "kafka",
                        node,
                        format!(
                            "partition {partition}: a follower appended a record at committed offset {offset} that differs from the committed one"
                        ),
                    );
                }
            }
            KafkaEvent::Truncated { partition, node, cut } => {
                if let Some(first) = cut.first() {
                    state.log_ends.insert((partition, node), first.offset);
                }
                // Cutting a diverged tail (records no leader committed) is how a follower
                // reconciles; cutting a record that is the committed one is not.
                let known = state
                    .committed_records
                    .get(&partition)
                    .map_or(&[][..], Vec::as_slice);
                let committed: Vec<u64> = cut
                    .iter()
                    .filter(|r| known.get(r.offset as usize) == Some(&fingerprint(r)))
                    .map(|r| r.offset)
                    .collect();
                if let (Some(first), Some(last)) = (committed.first(), committed.last()) {
                    let (first, last, known) = (*first, *last, known.len());
                    state.violate_in(
                        "kafka",
                        node,
                        format!(
                            "partition {partition}: cut committed records {first}..={last} from its log ({known} are committed)"
                        ),
                    );
                }
            }
        }
    }

    fn raft(&self, event: RaftEvent<'_>) {
        let mut state = self.lock();
        state.checked += 1;
        state.raft = true;
        match event {
            RaftEvent::Recovered { group, node, term } => {
                let before = state.persisted.get(group).and_then(|p| p.get(&node)).copied();
                if let Some(before) = before.filter(|b| term < *b && !state.damaged.contains(&node)) {
                    state.violate(
                        node,
                        format!(
                            "group {group} recovered term {term} after persisting term {before}: its vote did not survive the restart"
                        ),
                    );
                }
            }
            RaftEvent::Persisted { group, node, term } => {
                let slot = of_group(&mut state.persisted, group).entry(node).or_insert(term);
                *slot = (*slot).max(term);
            }
            RaftEvent::Stored {
                group,
                node,
                kept,
                entries,
            } => {
                let durable = of_group(&mut state.durable_entries, group)
                    .entry(node)
                    .or_default();
                restore(durable, kept, entries.iter().map(|e| e.term));
            }
            RaftEvent::Elected {
                group,
                node,
                term,
                members,
                log,
            } => {
                if !state.members.contains_key(group) {
                    state.members.insert(group.to_string(), members);
                }
                match state.leaders.get(&(group.to_string(), term)).copied() {
                    Some(other) if other != node => state.violate(
                        node,
                        format!("group {group} has two leaders in term {term}: n{other} and n{node}"),
                    ),
                    _ => {
                        state.leaders.insert((group.to_string(), term), node);
                    }
                }
                // Leader completeness covers what leaders of earlier terms committed: a
                // leader of an older term can still be elected (late votes on a slow link)
                // after a newer one committed, and is deposed as soon as it hears of it.
                let bound = state
                    .commit_by_term
                    .get(group)
                    .and_then(|by_term| by_term.range(..term).map(|(_, i)| *i).max())
                    .unwrap_or(0);
                let missing = state.committed.get(group).and_then(|committed| {
                    committed
                        .range(..=bound)
                        .find(|(index, t)| log.get(**index as usize - 1).map(|e| e.term) != Some(**t))
                        .map(|(index, t)| (*index, *t))
                });
                if let Some((index, t)) = missing {
                    let has = log
                        .get(index as usize - 1)
                        .map_or("nothing".to_string(), |e| format!("an entry of term {}", e.term));
                    state.violate(
                        node,
                        format!(
                            "group {group}'s leader of term {term} lacks committed entry {index} (term {t}): its log holds {has} there"
                        ),
                    );
                }
            }
            RaftEvent::LeaderCommitted {
                group,
                node,
                term,
                index,
                entry_term,
            } => {
                // Raft's commit rule (the paper's Figure 8): a leader counts replicas only
                // for an entry of its own term; older entries are committed by the newer
                // one after them. A majority holding an older entry is no commit: a leader
                // elected without it (from a later term's log) overwrites it.
                let highest = of_group(&mut state.commit_by_term, group)
                    .entry(term)
                    .or_insert(index);
                *highest = (*highest).max(index);
                if entry_term != term {
                    state.violate(
                        node,
                        format!(
                            "group {group}'s leader of term {term} committed index {index}, an entry of term {entry_term}, by counting replicas"
                        ),
                    );
                }
            }
            RaftEvent::Committed {
                group,
                node,
                index,
                term,
            } => {
                let first = !state.committed.get(group).is_some_and(|c| c.contains_key(&index));
                if first {
                    state.durability = true;
                    check_majority_durable(&mut state, group, node, index, term);
                }
                let known = of_group(&mut state.committed, group).entry(index).or_insert(term);
                if *known != term {
                    let known = *known;
                    state.violate(
                        node,
                        format!(
                            "group {group} applied entry {index} of term {term}, but an entry of term {known} was committed there"
                        ),
                    );
                }
            }
        }
    }
}

/// At the first commit of `group`'s entry `index`: a majority of the members has fsynced
/// it, which is what a commit promises (a quorum queue confirms a publish from here).
fn check_majority_durable(state: &mut State, group: &str, node: NodeId, index: LogIndex, term: Term) {
    let Some(members) = state.members.get(group).copied() else {
        return;
    };
    let at = index as usize - 1;
    let mut holders: BTreeSet<NodeId> = state
        .durable_entries
        .get(group)
        .into_iter()
        .flatten()
        .filter(|(_, terms)| terms.get(at) == Some(&term))
        .map(|(n, _)| *n)
        .collect();
    holders.extend(
        state
            .destroyed_entries
            .iter()
            .filter(|((g, _), terms)| g == group && terms.get(at) == Some(&term))
            .map(|((_, n), _)| *n),
    );
    let holders: Vec<NodeId> = holders.into_iter().collect();
    let majority = members / 2 + 1;
    if holders.len() < majority {
        state.violate_in(
            "durability",
            node,
            format!(
                "group {group} committed entry {index} (term {term}) while it was fsynced only on {holders:?}, not a majority ({majority} of {members})"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::raft::Entry;

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            command: Vec::new(),
        }
    }

    /// `node` reports its election in a group of 3.
    fn elect(monitors: &Monitors, group: &str, node: NodeId, term: Term, log: &[Entry]) {
        monitors.raft(RaftEvent::Elected {
            group,
            node,
            term,
            members: 3,
            log,
        });
    }

    fn record(offset: u64, epoch: u64, value: &[u8]) -> Record {
        Record {
            offset,
            epoch,
            value: value.to_vec(),
        }
    }

    #[test]
    fn each_kafka_invariant_is_caught_and_a_correct_run_is_silent() {
        let monitors = Monitors::default();
        let log = [record(0, 1, b"a"), record(1, 1, b"b"), record(2, 1, b"c")];
        let (partition, leader, follower) = (0, 1, 2);
        let isr: broker::kafka::Isr = [leader, follower].into_iter().collect();
        let leading = |node, epoch, log: &[Record]| {
            monitors.kafka(KafkaEvent::Leading {
                partition,
                node,
                epoch,
                log,
                isr: &isr,
            });
        };
        let appended = |node, records: &[Record]| {
            monitors.kafka(KafkaEvent::Appended {
                partition,
                node,
                records,
            });
        };
        let truncated = |node, cut: &[Record]| {
            monitors.kafka(KafkaEvent::Truncated { partition, node, cut });
        };
        let committed = |hw| {
            monitors.kafka(KafkaEvent::Committed {
                partition,
                node: leader,
                epoch: 1,
                hw,
                log: &log,
                isr: &isr,
                min_insync: 2,
            });
        };
        leading(leader, 1, &[]);
        monitors.kafka(KafkaEvent::Recovered {
            partition,
            node: follower,
            log_end: 0,
        });
        // The follower holds both records, fsynced as the leader does, before the leader
        // commits them.
        appended(follower, &log[..2]);
        for node in [leader, follower] {
            monitors.kafka(KafkaEvent::Stored {
                partition,
                node,
                kept: 0,
                records: &log[..2],
            });
        }
        committed(2);
        appended(follower, &log[..2]);
        // Cutting an uncommitted tail, or a diverged one below the high watermark, is how
        // a follower reconciles: allowed.
        truncated(follower, &log[2..]);
        truncated(follower, &[record(1, 2, b"y")]);
        leading(follower, 2, &log[..2]);
        let clean = monitors.report();
        assert_eq!(clean.violation_count, 0, "{clean:?}");
        assert_eq!(clean.monitors, ["kafka", "durability"], "no Raft event came");

        truncated(follower, &log[1..]);
        leading(3, 3, &log[..1]);
        appended(3, &[record(1, 3, b"x")]);
        // The follower now ends at 1, yet the leader counts it for a high watermark of 2.
        committed(2);
        // The leader of epoch 1 steps its high watermark back.
        committed(1);
        let report = monitors.report();
        let said: Vec<&str> = report.violations.iter().map(|v| v.what.as_str()).collect();
        assert_eq!(report.violation_count, 6, "{said:?}");
        assert!(said[0].contains("cut committed records 1..=1"), "{said:?}");
        assert!(
            said[1].contains("n3 leads epoch 3 but was not in the ISR {1, 2} of epoch 2"),
            "{said:?}"
        );
        assert!(
            said[2].contains("lacks committed record 1 (epoch 1): its log ends at 1"),
            "{said:?}"
        );
        assert!(said[3].contains("committed offset 1 that differs"), "{said:?}");
        assert!(
            said[4].contains("high watermark 2 (epoch 1) exceeds the log end 1 of n2"),
            "{said:?}"
        );
        assert!(
            said[5].contains("high watermark went back from 2 to 1 on its leader (epoch 1)"),
            "{said:?}"
        );
        assert!(report.violations.iter().all(|v| v.monitor == "kafka"));
    }

    #[test]
    fn a_leader_from_outside_the_isr_is_caught_unless_unclean_election_is_on() {
        let isr: broker::kafka::Isr = [1, 2].into_iter().collect();
        let alone: broker::kafka::Isr = [3].into_iter().collect();
        let log: Vec<Record> = (0..4).map(|offset| record(offset, 1, b"v")).collect();
        for unclean in [false, true] {
            let monitors = Monitors::new(unclean);
            for (node, epoch) in [(1, 1), (2, 2), (3, 3)] {
                monitors.kafka(KafkaEvent::Leading {
                    partition: 0,
                    node,
                    epoch,
                    log: &log,
                    isr: if node == 3 { &alone } else { &isr },
                });
            }
            monitors.kafka(KafkaEvent::Stored {
                partition: 0,
                node: 3,
                kept: 0,
                records: &log,
            });
            // A restarted leader reports again from its checkpoint: not a step back.
            let committed = |hw| {
                monitors.kafka(KafkaEvent::Committed {
                    partition: 0,
                    node: 3,
                    epoch: 3,
                    hw,
                    log: &log,
                    isr: &alone,
                    min_insync: 1,
                });
            };
            committed(4);
            monitors.kafka(KafkaEvent::Recovered {
                partition: 0,
                node: 3,
                log_end: 4,
            });
            committed(2);
            let report = monitors.report();
            let said: Vec<&str> = report.violations.iter().map(|v| v.what.as_str()).collect();
            assert_eq!(said.len(), usize::from(!unclean), "unclean {unclean}: {said:?}");
        }
    }

    #[test]
    fn a_leader_needs_what_earlier_terms_committed_not_what_later_ones_did() {
        let monitors = Monitors::default();
        let group = "g";
        let elected = |node, term, log: &[Entry]| elect(&monitors, group, node, term, log);
        let commit = |node, term, index| {
            monitors.raft(RaftEvent::LeaderCommitted {
                group,
                node,
                term,
                index,
                entry_term: term,
            });
            monitors.raft(RaftEvent::Committed {
                group,
                node,
                index,
                term,
            });
        };
        elected(1, 1, &[]);
        commit(1, 1, 1);
        elected(2, 3, &[entry(1, 1)]);
        commit(2, 3, 2);
        // Term 2's votes arrived late, after term 3 committed entry 2: its leader need
        // not hold entry 2, only entry 1.
        elected(3, 2, &[entry(1, 1)]);
        let raft = || -> Vec<String> {
            let report = monitors.report();
            let raft = report.violations.iter().filter(|v| v.monitor == "raft");
            raft.map(|v| v.what.clone()).collect()
        };
        assert!(raft().is_empty(), "{:?}", raft());
        elected(3, 4, &[entry(1, 1)]);
        let said = raft();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("leader of term 4 lacks committed entry 2 (term 3)"));
    }

    #[test]
    fn each_raft_invariant_is_caught_and_a_correct_run_is_silent() {
        let monitors = Monitors::default();
        let group = "q";
        let elected = |node, term, log: &[Entry]| elect(&monitors, group, node, term, log);
        let committed = |node, index, term| {
            monitors.raft(RaftEvent::Committed {
                group,
                node,
                index,
                term,
            });
        };
        let persisted = |node, term| monitors.raft(RaftEvent::Persisted { group, node, term });
        let recovered = |node, term| monitors.raft(RaftEvent::Recovered { group, node, term });
        let log = [entry(1, 1), entry(2, 1)];
        persisted(1, 1);
        for node in [1, 2] {
            monitors.raft(RaftEvent::Stored {
                group,
                node,
                kept: 0,
                entries: &log,
            });
        }
        let leader_committed = |node, term, index, entry_term| {
            monitors.raft(RaftEvent::LeaderCommitted {
                group,
                node,
                term,
                index,
                entry_term,
            });
        };
        elected(1, 1, &log);
        leader_committed(1, 1, 2, 1);
        committed(1, 1, 1);
        committed(2, 1, 1);
        recovered(1, 1);
        elected(2, 2, &log);
        let clean = monitors.report();
        assert_eq!((clean.checked, clean.violation_count), (9, 0), "{clean:?}");

        // Two leaders in term 2; a leader without entry 1; entry 1 changed; a lost vote.
        elected(3, 2, &log);
        elected(3, 3, &[entry(1, 2)]);
        committed(3, 1, 2);
        persisted(2, 5);
        recovered(2, 4);
        let report = monitors.report();
        let said: Vec<&str> = report.violations.iter().map(|v| v.what.as_str()).collect();
        assert_eq!(report.violation_count, 4, "{said:?}");
        assert!(said[0].contains("two leaders in term 2: n2 and n3"), "{said:?}");
        assert!(said[1].contains("lacks committed entry 1 (term 1)"), "{said:?}");
        assert!(said[2].contains("applied entry 1 of term 2"), "{said:?}");
        assert!(
            said[3].contains("recovered term 4 after persisting term 5"),
            "{said:?}"
        );

        // A node whose disk was damaged at rest may come back with less.
        monitors.disk_damaged(2);
        recovered(2, 0);
        assert_eq!(monitors.report().violation_count, 4);

        // The leader of term 3 commits its own entry, then counts replicas for one of term 2.
        leader_committed(3, 3, 2, 3);
        assert_eq!(monitors.report().violation_count, 4);
        leader_committed(3, 3, 3, 2);
        let report = monitors.report();
        assert_eq!(report.violation_count, 5);
        assert!(report.violations[4]
            .what
            .contains("leader of term 3 committed index 3, an entry of term 2, by counting replicas"));
    }

    #[test]
    fn an_acknowledgement_without_enough_fsynced_copies_is_caught() {
        let monitors = Monitors::default();
        let durability = |m: &Monitors| -> Vec<String> {
            let report = m.report();
            report
                .violations
                .iter()
                .filter(|v| v.monitor == "durability")
                .map(|v| v.what.clone())
                .collect()
        };

        // Raft: a commit needs a majority of fsynced copies, and an entry another term
        // wrote at the same index is not one of them.
        let group = "q";
        let log = [entry(1, 1), entry(2, 1)];
        monitors.raft(RaftEvent::Elected {
            group,
            node: 1,
            term: 1,
            members: 3,
            log: &log,
        });
        let stored = |node, kept, entries: &[Entry]| {
            monitors.raft(RaftEvent::Stored {
                group,
                node,
                kept,
                entries,
            });
        };
        let committed = |index| {
            monitors.raft(RaftEvent::Committed {
                group,
                node: 1,
                index,
                term: 1,
            });
        };
        stored(1, 0, &log);
        stored(2, 0, &log[..1]);
        stored(3, 0, &[entry(1, 1), entry(2, 7)]);
        committed(1);
        assert!(durability(&monitors).is_empty(), "{:?}", durability(&monitors));
        committed(2);
        let said = durability(&monitors);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("entry 2 (term 1) while it was fsynced only on [1]"),
            "{said:?}"
        );
        // Applying it again elsewhere (or after a restart) is not a new commit.
        stored(2, 1, &log[1..]);
        committed(2);
        assert_eq!(durability(&monitors).len(), 1);

        // Kafka: the high watermark needs every ISR member's fsynced copy; an acks=all
        // answer needs min.insync.replicas of them.
        let records = [record(0, 1, b"a"), record(1, 1, b"b")];
        let isr: broker::kafka::Isr = [1, 2].into_iter().collect();
        let kstored = |node, kept, records: &[Record]| {
            monitors.kafka(KafkaEvent::Stored {
                partition: 0,
                node,
                kept,
                records,
            });
        };
        kstored(1, 0, &records);
        kstored(2, 0, &records[..1]);
        monitors.kafka(KafkaEvent::Committed {
            partition: 0,
            node: 1,
            epoch: 1,
            hw: 1,
            log: &records,
            isr: &isr,
            min_insync: 2,
        });
        let acknowledged = |offset| {
            monitors.kafka(KafkaEvent::Acknowledged {
                partition: 0,
                node: 1,
                offset,
                log: &records,
                min_insync: 2,
            });
        };
        acknowledged(0);
        assert_eq!(durability(&monitors).len(), 1);
        monitors.kafka(KafkaEvent::Committed {
            partition: 0,
            node: 1,
            epoch: 1,
            hw: 2,
            log: &records,
            isr: &isr,
            min_insync: 2,
        });
        acknowledged(1);
        let said = durability(&monitors);
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(
            said[1].contains("record 1 was fsynced only on [1] of the ISR {1, 2}"),
            "{said:?}"
        );
        assert!(
            said[2].contains("up to offset 1, fsynced only on [1] (min.insync.replicas 2)"),
            "{said:?}"
        );

        // A queue node: a confirm before the fsync breaks the promise; a non-durable queue
        // makes none.
        let confirmed = |on_disk| {
            monitors.queue(QueueEvent::Confirmed {
                queue: "jobs",
                node: 1,
                seq: 4,
                on_disk,
                epoch: None,
            });
        };
        confirmed(Some(true));
        confirmed(None);
        assert_eq!(durability(&monitors).len(), 3);
        confirmed(Some(false));
        let said = durability(&monitors);
        assert_eq!(said.len(), 4, "{said:?}");
        assert!(said[3].contains("confirmed message 4 of durable queue jobs before its log was fsynced"));
        assert!(monitors.report().monitors.contains(&"durability".to_string()));
    }

    #[test]
    fn a_mirror_promoted_without_a_confirmed_unconsumed_message_is_caught() {
        let monitors = Monitors::default();
        let confirmed = |seq, epoch| {
            monitors.queue(QueueEvent::Confirmed {
                queue: "q",
                node: 1,
                seq,
                on_disk: Some(true),
                epoch: Some(epoch),
            });
        };
        for seq in 1..=4 {
            confirmed(seq, 1);
        }
        monitors.queue(QueueEvent::Acked {
            queue: "q",
            node: 1,
            seq: 1,
        });
        let promoted = |node, held: &[u64]| {
            monitors.queue(QueueEvent::Promoted {
                queue: "q",
                node,
                epoch: 2,
                synced: true,
                held,
            });
        };
        // Message 5 is consumed before its confirm comes back from the mirrors: it is
        // never live.
        monitors.queue(QueueEvent::Acked {
            queue: "q",
            node: 1,
            seq: 5,
        });
        confirmed(5, 1);
        // Message 1 was consumed: a copy without it is complete.
        promoted(2, &[2, 3, 4]);
        assert_eq!(monitors.report().violation_count, 0);
        promoted(3, &[2, 4]);
        let report = monitors.report();
        assert_eq!(report.violation_count, 1, "{report:?}");
        assert_eq!(report.violations[0].monitor, "mirrored");
        assert!(
            report.violations[0]
                .what
                .contains("(counted synchronised) without 1 confirmed, unconsumed message(s), seq 3..=3"),
            "{report:?}"
        );
        // The leader of epoch 1, superseded, confirms late: a message the promoted copy of
        // epoch 2 held is safe, one it lacked is lost.
        confirmed(4, 1);
        assert_eq!(monitors.report().violation_count, 1);
        confirmed(6, 1);
        let report = monitors.report();
        assert_eq!(report.violation_count, 2, "{report:?}");
        assert!(
            report.violations[1]
                .what
                .contains("confirmed message 6 as leader of epoch 1 after epoch 2 began without it"),
            "{report:?}"
        );
    }
}
