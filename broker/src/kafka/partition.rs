//! A partition replica's log and the leader's view of its followers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::raft::NodeId;

/// A position in a partition: the offset of a record, or a log end offset (the next one).
pub type Offset = u64;

/// A leader epoch: incremented by the controller at every leader change.
pub type Epoch = u64;

/// The in-sync replica set.
pub type Isr = BTreeSet<NodeId>;

/// One record of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its offset; offsets are contiguous from 0.
    pub offset: Offset,
    /// The epoch of the leader that appended it.
    pub epoch: Epoch,
    /// The message.
    pub value: Vec<u8>,
}

/// How a replica truncates when it follows a new leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncateTo {
    /// To the end of its last epoch as the leader reports it (KIP-101, Kafka 0.11+): safe.
    LeaderEpoch,
    /// To its own high watermark (Kafka before 0.11): loses committed records the follower
    /// had not yet learned were committed.
    HighWatermark,
}

/// One replica's copy of a partition: records, high watermark and leader-epoch cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionLog {
    records: Vec<Record>,
    hw: Offset,
    /// (epoch, first offset appended in it), increasing in both.
    epochs: Vec<(Epoch, Offset)>,
}

impl PartitionLog {
    /// The log end offset: where the next record goes.
    pub fn leo(&self) -> Offset {
        self.records.len() as Offset
    }

    /// The high watermark: every record below it is committed.
    pub fn hw(&self) -> Offset {
        self.hw
    }

    /// The records, for inspection.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Appends as leader of `epoch`; returns the record's offset.
    pub fn append(&mut self, epoch: Epoch, value: Vec<u8>) -> Offset {
        let offset = self.leo();
        self.note_epoch(epoch, offset);
        self.records.push(Record { offset, epoch, value });
        offset
    }

    /// Appends records fetched from the leader; they must continue this log exactly.
    pub fn append_fetched(&mut self, records: Vec<Record>) -> Result<(), String> {
        for record in records {
            if record.offset != self.leo() {
                return Err(format!(
                    "fetched offset {} but the log ends at {}",
                    record.offset,
                    self.leo()
                ));
            }
            self.note_epoch(record.epoch, record.offset);
            self.records.push(record);
        }
        Ok(())
    }

    fn note_epoch(&mut self, epoch: Epoch, offset: Offset) {
        if self.epochs.last().is_none_or(|(e, _)| *e < epoch) {
            self.epochs.push((epoch, offset));
        }
    }

    /// Moves the high watermark (never past the log end, never backwards).
    pub fn advance_hw(&mut self, hw: Offset) {
        self.hw = self.hw.max(hw.min(self.leo()));
    }

    /// The epoch of the last record, 0 for an empty log.
    pub fn last_epoch(&self) -> Epoch {
        self.epochs.last().map_or(0, |(e, _)| *e)
    }

    /// KIP-101's OffsetsForLeaderEpoch, answered by a leader: the end offset of `epoch` in
    /// this log (the start of the next larger epoch, or the log end).
    pub fn end_offset_of(&self, epoch: Epoch) -> Offset {
        self.epochs
            .iter()
            .find(|(e, _)| *e > epoch)
            .map_or(self.leo(), |(_, start)| *start)
    }

    /// Cuts every record at or after `offset`.
    pub fn truncate(&mut self, offset: Offset) {
        self.records.truncate(offset as usize);
        self.epochs.retain(|(_, start)| *start < offset);
        self.hw = self.hw.min(offset);
    }

    /// What a replica cuts when it starts following a leader whose log is `leader`.
    pub fn truncate_for_new_leader(&mut self, how: TruncateTo, leader: &PartitionLog) {
        let to = match how {
            TruncateTo::HighWatermark => self.hw,
            TruncateTo::LeaderEpoch => leader.end_offset_of(self.last_epoch()).min(self.leo()),
        };
        self.truncate(to);
    }

    /// Records in `[from, up_to)`, at most `max`.
    pub fn read(&self, from: Offset, up_to: Offset, max: usize) -> Vec<Record> {
        let end = up_to.min(self.leo());
        if from >= end {
            return Vec::new();
        }
        self.records[from as usize..end as usize]
            .iter()
            .take(max)
            .cloned()
            .collect()
    }
}

/// What a leader answers to a follower's fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReply {
    /// Records from the fetch offset.
    pub records: Vec<Record>,
    /// The leader's high watermark after this fetch.
    pub hw: Offset,
}

/// How often a leader proposes a pending ISR expansion again (milliseconds).
const REPROPOSE_MS: u64 = 200;

/// An ISR change for the controller: the new ISR and the partition version it is based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The ISR asked for.
    pub isr: Isr,
    /// The partition version the leader saw; the controller refuses it if that has moved.
    pub version: u64,
}

/// The leader's bookkeeping for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// This leader's epoch.
    pub epoch: Epoch,
    me: NodeId,
    /// The ISR as the controller last committed it, and that commit's version.
    isr: Isr,
    version: u64,
    /// Followers proposed to join the ISR whose proposal may still be committed. They count
    /// for the high watermark at once (Kafka's "maximal ISR"): the controller may add one
    /// at any moment, and a replica it calls in sync must hold everything committed, or a
    /// later election can pick it and lose records. (Regression: the high watermark passed
    /// a follower whose expansion was in flight; it joined the ISR without offset 181, was
    /// elected, and consumers had already read 181; swarm seed 370.)
    pending: Isr,
    /// When the expansion was last proposed (milliseconds).
    proposed_at: u64,
    follower_leo: BTreeMap<NodeId, Offset>,
    /// When each follower last had everything the leader had (milliseconds).
    caught_up_at: BTreeMap<NodeId, u64>,
    lag_max_ms: u64,
}

impl LeaderState {
    /// A leader `me` of `epoch` with the ISR the controller chose; followers count as caught
    /// up at `now_ms`.
    pub fn new(me: NodeId, epoch: Epoch, isr: Isr, version: u64, lag_max_ms: u64, now_ms: u64) -> Self {
        let caught_up_at = isr.iter().filter(|n| **n != me).map(|n| (*n, now_ms)).collect();
        Self {
            epoch,
            me,
            isr,
            version,
            pending: Isr::new(),
            proposed_at: 0,
            follower_leo: BTreeMap::new(),
            caught_up_at,
            lag_max_ms,
        }
    }

    /// The current ISR.
    pub fn isr(&self) -> &Isr {
        &self.isr
    }

    /// The replicas the high watermark waits for: the ISR and the followers pending to
    /// join it. Every replica the controller may call in sync is among them.
    pub fn counted(&self) -> Isr {
        self.isr.union(&self.pending).copied().collect()
    }

    /// The partition version of the ISR this leader holds.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Applies the ISR the controller committed at `version`. Every proposal based on an
    /// older version can no longer apply, so followers still pending stop counting.
    pub fn set_isr(&mut self, isr: Isr, version: u64, log: &mut PartitionLog) {
        if version != self.version {
            self.pending.clear();
        }
        self.isr = isr;
        self.version = version;
        self.update_hw(log);
    }

    /// Whether the replicas counted for the high watermark are exactly `replicas`.
    pub fn counts_exactly(&self, replicas: &Isr) -> bool {
        self.isr.union(&self.pending).eq(replicas.iter())
    }

    /// The ISR with every pending follower, as a proposal.
    fn expansion(&self) -> IsrProposal {
        IsrProposal {
            isr: self.counted(),
            version: self.version,
        }
    }

    /// Whether a pending expansion was last proposed long enough ago to propose it again.
    fn repropose_due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.proposed_at) >= REPROPOSE_MS
    }

    /// The expansion to propose again while one is pending: a proposal can be lost on the
    /// way to the controller, and a pending follower that stopped fetching would otherwise
    /// hold the high watermark back for good. At most every `REPROPOSE_MS`: each proposal
    /// is a connection to the controller, and a paused controller accepts none of them.
    pub fn pending_expansion(&mut self, now_ms: u64) -> Option<IsrProposal> {
        (!self.pending.is_empty() && self.repropose_due(now_ms)).then(|| {
            self.proposed_at = now_ms;
            self.expansion()
        })
    }

    /// Serves a fetch from `follower`, whose log ends at `fetch_offset`; returns the reply
    /// and, if the follower has caught up while outside the ISR, the ISR to propose.
    pub fn on_fetch(
        &mut self,
        log: &mut PartitionLog,
        follower: NodeId,
        fetch_offset: Offset,
        max: usize,
        now_ms: u64,
    ) -> (FetchReply, Option<IsrProposal>) {
        self.follower_leo.insert(follower, fetch_offset.min(log.leo()));
        if fetch_offset >= log.leo() {
            self.caught_up_at.insert(follower, now_ms);
        }
        self.update_hw(log);
        let caught_up = !self.isr.contains(&follower) && fetch_offset >= log.hw();
        let new = caught_up && self.pending.insert(follower);
        let expand = (new || (caught_up && self.repropose_due(now_ms))).then(|| {
            self.proposed_at = now_ms;
            self.expansion()
        });
        let reply = FetchReply {
            records: log.read(fetch_offset, log.leo(), max),
            hw: log.hw(),
        };
        (reply, expand)
    }

    /// The ISR to propose if some follower has lagged past the limit.
    pub fn lagging(&self, log: &PartitionLog, now_ms: u64) -> Option<IsrProposal> {
        let lagging: Vec<NodeId> = self
            .isr
            .iter()
            .copied()
            .filter(|n| *n != self.me)
            .filter(|n| {
                let caught_up = self.caught_up_at.get(n).copied().unwrap_or(0);
                let behind = self.follower_leo.get(n).copied().unwrap_or(0) < log.leo();
                behind && now_ms.saturating_sub(caught_up) > self.lag_max_ms
            })
            .collect();
        (!lagging.is_empty()).then(|| IsrProposal {
            isr: self
                .isr
                .iter()
                .copied()
                .filter(|n| !lagging.contains(n))
                .collect(),
            version: self.version,
        })
    }

    /// HW = the smallest log end offset in the ISR (the leader's own included) and among
    /// the followers pending to join it.
    pub fn update_hw(&self, log: &mut PartitionLog) {
        let hw = self
            .isr
            .union(&self.pending)
            .map(|n| {
                if *n == self.me {
                    log.leo()
                } else {
                    self.follower_leo.get(n).copied().unwrap_or(0)
                }
            })
            .min()
            .unwrap_or(log.leo());
        log.advance_hw(hw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isr(nodes: &[NodeId]) -> Isr {
        nodes.iter().copied().collect()
    }

    #[test]
    fn the_high_watermark_is_the_slowest_in_sync_log_end() {
        let mut log = PartitionLog::default();
        let mut leader = LeaderState::new(1, 1, isr(&[1, 2, 3]), 0, 500, 0);
        for v in 0..3u8 {
            log.append(1, vec![v]);
        }
        let (reply, _) = leader.on_fetch(&mut log, 2, 0, 10, 1);
        assert_eq!(reply.records.len(), 3);
        assert_eq!(log.hw(), 0, "follower 3 has nothing yet");
        leader.on_fetch(&mut log, 2, 3, 10, 2);
        leader.on_fetch(&mut log, 3, 2, 10, 2);
        assert_eq!(log.hw(), 2, "min(3, 3, 2)");
        leader.on_fetch(&mut log, 3, 3, 10, 3);
        assert_eq!(log.hw(), 3);
    }

    #[test]
    fn a_lagging_follower_leaves_the_isr_which_lets_the_high_watermark_advance_and_it_rejoins() {
        let mut log = PartitionLog::default();
        let mut leader = LeaderState::new(1, 1, isr(&[1, 2, 3]), 0, 500, 0);
        log.append(1, b"a".to_vec());
        leader.on_fetch(&mut log, 2, 1, 10, 100);
        assert_eq!(log.hw(), 0, "follower 3 holds the high watermark back");
        assert_eq!(leader.lagging(&log, 400), None, "not yet past the limit");
        let shrunk = leader.lagging(&log, 700).expect("3 lagged 700 ms");
        assert_eq!(shrunk.isr, isr(&[1, 2]));
        leader.set_isr(shrunk.isr, 1, &mut log);
        assert_eq!(log.hw(), 1, "the ISR without 3 has everything");
        let (reply, expand) = leader.on_fetch(&mut log, 3, 0, 10, 800);
        assert_eq!(reply.records.len(), 1);
        assert_eq!(expand, None, "still behind the high watermark");
        let (_, expand) = leader.on_fetch(&mut log, 3, 1, 10, 900);
        let expand = expand.expect("caught up: propose rejoining");
        assert_eq!((expand.isr, expand.version), (isr(&[1, 2, 3]), 1));
    }

    #[test]
    fn a_follower_proposed_to_rejoin_holds_the_high_watermark_until_its_proposal_is_settled() {
        let mut log = PartitionLog::default();
        let mut leader = LeaderState::new(1, 1, isr(&[1, 2]), 4, 500, 0);
        log.append(1, b"a".to_vec());
        leader.on_fetch(&mut log, 2, 1, 10, 1);
        assert_eq!(log.hw(), 1);
        let (_, expand) = leader.on_fetch(&mut log, 3, 1, 10, 2);
        assert!(expand.is_some(), "3 caught up to the high watermark");
        // More records while the controller has not yet answered: 2 has them, 3 not.
        log.append(1, b"b".to_vec());
        leader.on_fetch(&mut log, 2, 2, 10, 3);
        assert_eq!(
            log.hw(),
            1,
            "3 may be in sync already: it holds the high watermark"
        );
        assert_eq!(leader.pending_expansion(3), None, "proposed 1 ms ago");
        let again = leader.pending_expansion(300).map(|p| p.isr);
        assert_eq!(again, Some(isr(&[1, 2, 3])), "proposed again later");
        // The controller committed another change first: the expansion cannot apply.
        leader.set_isr(isr(&[1, 2]), 5, &mut log);
        assert_eq!(log.hw(), 2);
        assert_eq!(leader.pending_expansion(1000), None);
    }

    #[test]
    fn epoch_end_offsets_answer_offsets_for_leader_epoch() {
        let mut log = PartitionLog::default();
        log.append(1, vec![0]);
        log.append(1, vec![1]);
        log.append(3, vec![2]);
        assert_eq!(log.end_offset_of(1), 2);
        assert_eq!(
            log.end_offset_of(2),
            2,
            "an epoch with no records ends where the next starts"
        );
        assert_eq!(log.end_offset_of(3), 3);
        log.truncate(2);
        assert_eq!(log.last_epoch(), 1);
        assert_eq!(log.end_offset_of(1), 2);
    }

    /// KIP-101 scenario 1. Leader A and follower B, epoch 1. A appends m0; B fetches it; A's
    /// high watermark reaches 1 on B's next fetch, so acks=all confirms m0, but B learns the
    /// new high watermark only from the reply to its next fetch. B restarts before that and
    /// truncates; then A dies and B leads epoch 2.
    fn committed_record_after_restart(how: TruncateTo) -> Vec<Record> {
        let (a, b) = (1, 2);
        let mut a_log = PartitionLog::default();
        let mut b_log = PartitionLog::default();
        let mut a_leader = LeaderState::new(a, 1, isr(&[a, b]), 0, 500, 0);
        a_log.append(1, b"m0".to_vec());
        let (reply, _) = a_leader.on_fetch(&mut a_log, b, 0, 10, 1);
        b_log.append_fetched(reply.records).unwrap();
        b_log.advance_hw(reply.hw);
        a_leader.on_fetch(&mut a_log, b, 1, 10, 2); // this reply never reaches B
        assert_eq!(a_log.hw(), 1, "m0 is committed: acks=all confirmed it");
        assert_eq!(b_log.hw(), 0, "B has not heard");
        // B restarts and follows A again (before A dies).
        b_log.truncate_for_new_leader(how, &a_log);
        // A dies; B becomes leader of epoch 2 and appends.
        b_log.append(2, b"m1".to_vec());
        b_log.records().to_vec()
    }

    #[test]
    fn truncating_to_the_high_watermark_loses_a_committed_record() {
        let log = committed_record_after_restart(TruncateTo::HighWatermark);
        assert!(!log.iter().any(|r| r.value == b"m0"), "pre-0.11 Kafka loses m0");
    }

    #[test]
    fn truncating_by_leader_epoch_keeps_it() {
        let log = committed_record_after_restart(TruncateTo::LeaderEpoch);
        let values: Vec<&[u8]> = log.iter().map(|r| r.value.as_slice()).collect();
        assert_eq!(values, vec![&b"m0"[..], &b"m1"[..]]);
    }

    #[test]
    fn a_diverged_follower_truncates_to_where_its_epoch_ends_on_the_new_leader() {
        // B appended a record in epoch 1 that A (now leading epoch 2) never got.
        let mut a_log = PartitionLog::default();
        let mut b_log = PartitionLog::default();
        a_log.append(1, b"x".to_vec());
        b_log.append(1, b"x".to_vec());
        b_log.append(1, b"stale".to_vec());
        a_log.append(2, b"y".to_vec());
        b_log.truncate_for_new_leader(TruncateTo::LeaderEpoch, &a_log);
        assert_eq!(b_log.leo(), 1, "epoch 1 ends at offset 1 on the new leader");
        b_log.append_fetched(a_log.read(1, a_log.leo(), 10)).unwrap();
        assert_eq!(b_log.records(), a_log.records(), "the logs agree again");
    }

    #[test]
    fn fetched_records_must_continue_the_log() {
        let mut log = PartitionLog::default();
        let gap = vec![Record {
            offset: 5,
            epoch: 1,
            value: vec![],
        }];
        assert!(log.append_fetched(gap).is_err());
        assert_eq!(log.leo(), 0);
    }
}
