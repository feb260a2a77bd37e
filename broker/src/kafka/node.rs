//! A kafka-mode broker: its replicas of the topic's partitions, the follower fetch loops,
//! the partition leaders' ISR upkeep, and its seat in the Raft-replicated controller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::metadata::{MetaCommand, MetadataMachine, PartitionId, PartitionState, METADATA_GROUP};
use super::partition::{Epoch, Isr, LeaderState, Offset, PartitionLog, Record, TruncateTo};
use super::wire::{Acks, KafkaRequest, KafkaResponse, KafkaSettings};
use crate::client::Client;
use crate::config::{BrokerConfig, FsyncPolicy};
use crate::inspect::{Inspector, KafkaEvent};
use crate::protocol::{ErrorCode, Response};
use crate::quorum::{self, QuorumNode};
use crate::raft::NodeId;
use crate::seams::Seams;
use crate::storage::{RecordLog, StorageError};

/// The controller fences a broker it has not heard from for this long.
const FENCE_AFTER: Duration = Duration::from_millis(1_000);
/// How often the controller, the replica manager and idle fetchers look again.
const CONTROLLER_TICK: Duration = Duration::from_millis(100);
const REPLICA_TICK: Duration = Duration::from_millis(20);
const FETCH_IDLE: Duration = Duration::from_millis(20);
/// Deadline for one fetch exchange, and how long an acks=all produce waits.
const PEER_TIMEOUT: Duration = Duration::from_millis(300);
/// A follower's fetch may be held by the leader; its deadline covers that wait.
const FETCH_TIMEOUT: Duration = Duration::from_millis(600);
const ACK_TIMEOUT: Duration = Duration::from_millis(800);
/// Most records per fetch or poll.
const BATCH_MAX: usize = 500;
/// How long a leader holds a follower's fetch that finds nothing new (fetch.max.wait.ms).
const FETCH_MAX_WAIT: Duration = Duration::from_millis(100);
/// How often a replica checkpoints its high watermark to disk (Kafka's
/// replica.high.watermark.checkpoint.interval.ms): the checkpoint lags the real high
/// watermark by up to this much, which is what truncation to it (pre-0.11) loses.
const HW_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(5_000);

type Meta = Arc<Mutex<QuorumNode<MetadataMachine>>>;

/// What one partition replica writes to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
enum PartRecord {
    Record(Record),
    Truncate { offset: Offset },
    Hw { offset: Offset },
}

struct Replica {
    log: PartitionLog,
    store: RecordLog<PartRecord>,
    leading: Option<LeaderState>,
    /// The leader epoch this replica last reconciled with.
    known_epoch: Epoch,
    /// acks=all producers waiting for the high watermark to pass their offset.
    waiters: Vec<(Offset, oneshot::Sender<bool>)>,
    stored_hw: Offset,
    checkpointed_at: Instant,
    /// Told of commits, leadership, appends and cuts (invariant monitors).
    inspector: Arc<dyn Inspector>,
    partition: PartitionId,
    me: NodeId,
    /// The high watermark and counted ISR last reported to the inspector as leader.
    reported_hw: Offset,
    reported_isr: Isr,
    /// How many records the durable log kept unchanged since the inspector was last told
    /// what is durable (`None`: nothing changed since).
    unreported: Option<Offset>,
    /// `min.insync.replicas`, for the inspector.
    min_insync: usize,
}

impl Replica {
    /// Writes `records`, which the in-memory log already reflects, and tells the inspector
    /// what became durable if the write left the file fsynced.
    fn persist(&mut self, records: &[PartRecord]) -> Result<(), StorageError> {
        let changed = records
            .iter()
            .filter_map(|r| match r {
                PartRecord::Record(record) => Some(record.offset),
                PartRecord::Truncate { offset } => Some(*offset),
                PartRecord::Hw { .. } => None,
            })
            .min();
        if let Some(kept) = changed {
            self.unreported = Some(self.unreported.map_or(kept, |k| k.min(kept)));
        }
        self.store.append_all(records)?;
        self.report_stored();
        Ok(())
    }

    fn report_stored(&mut self) {
        if let Some(kept) = self.unreported.filter(|_| self.store.is_synced()) {
            self.unreported = None;
            self.inspector.kafka(KafkaEvent::Stored {
                partition: self.partition,
                node: self.me,
                kept,
                records: self.log.records().get(kept as usize..).unwrap_or(&[]),
            });
        }
    }

    /// Answers waiters below the high watermark, and checkpoints a moved high watermark.
    fn settle(&mut self) {
        let hw = self.log.hw();
        if let Some(leading) = self.leading.as_ref() {
            // Every change is reported, a step back included: the monitor checks that a
            // leader's high watermark never goes back, and follows who is in sync. (Compared
            // in place: this runs at every fetch and produce.)
            if hw != self.reported_hw || !leading.counts_exactly(&self.reported_isr) {
                let counted = leading.counted();
                self.reported_hw = hw;
                self.inspector.kafka(KafkaEvent::Committed {
                    partition: self.partition,
                    node: self.me,
                    epoch: leading.epoch,
                    hw,
                    log: self.log.records(),
                    isr: &counted,
                    min_insync: self.min_insync,
                });
                self.reported_isr = counted;
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|(o, _)| *o < hw);
        self.waiters = waiting;
        // As Kafka's delayed produce does: a write the high watermark passed is acknowledged
        // only if the ISR still has min.insync.replicas members; if it shrank after the
        // append, the producer hears NOT_ENOUGH_REPLICAS_AFTER_APPEND instead (the record
        // stays in the log: its outcome is unknown to the producer, not failed).
        let enough = self
            .leading
            .as_ref()
            .is_some_and(|leading| leading.isr().len() >= self.min_insync);
        if let Some(offset) = done.iter().map(|(o, _)| *o).max().filter(|_| enough) {
            self.acknowledged(offset);
        }
        for (_, tx) in done {
            let _ = tx.send(enough);
        }
        if hw != self.stored_hw && self.checkpointed_at.elapsed() >= HW_CHECKPOINT_INTERVAL {
            self.stored_hw = hw;
            self.checkpointed_at = Instant::now();
            if let Err(err) = self.persist(&[PartRecord::Hw { offset: hw }]) {
                tracing::error!(%err, "high watermark checkpoint failed");
            }
        }
    }

    /// Tells the inspector that acks=all producers were answered up to `offset`.
    fn acknowledged(&self, offset: Offset) {
        self.inspector.kafka(KafkaEvent::Acknowledged {
            partition: self.partition,
            node: self.me,
            offset,
            log: self.log.records(),
            min_insync: self.min_insync,
        });
    }

    /// Cuts the log at `offset` and records the cut, so a restart replays the same log.
    fn truncate_durably(&mut self, partition: PartitionId, offset: Offset, why: &str) {
        tracing::warn!(partition, from = self.log.leo(), to = offset, "{why}");
        self.inspector.kafka(KafkaEvent::Truncated {
            partition,
            node: self.me,
            cut: self.log.records().get(offset as usize..).unwrap_or(&[]),
        });
        self.log.truncate(offset);
        if let Err(err) = self.persist(&[PartRecord::Truncate { offset }]) {
            tracing::error!(%err, "truncation not persisted");
        }
    }

    fn step_down(&mut self) {
        self.leading = None;
        for (_, tx) in self.waiters.drain(..) {
            let _ = tx.send(false);
        }
    }
}

struct Data {
    replicas: BTreeMap<PartitionId, Replica>,
}

/// A kafka-mode broker.
pub(crate) struct KafkaNode {
    me: NodeId,
    settings: KafkaSettings,
    peers: BTreeMap<NodeId, String>,
    members: Vec<NodeId>,
    meta: Meta,
    data: Mutex<Data>,
    started: Instant,
    network: Arc<dyn crate::net::Network>,
    spawner: Arc<dyn crate::seams::Spawner>,
    /// Woken when a partition's leader appends, so held fetches return at once.
    arrivals: BTreeMap<PartitionId, Arc<Notify>>,
    /// The id of the directory this broker's replicas live in (see `MetaCommand::Register`).
    dir: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn error(code: ErrorCode, message: String) -> Response {
    Response::error(code, message)
}

fn reply(response: KafkaResponse) -> Response {
    Response::Kafka { response }
}

impl KafkaNode {
    /// Recovers this broker's replicas and controller state and starts its tasks.
    pub(crate) fn start(config: &BrokerConfig, seams: &mut Seams) -> Result<Arc<Self>, StorageError> {
        let seed = seams.entropy.next_u64();
        let unclean = config.kafka.unclean_election;
        let make = Box::new(move |_: &str| MetadataMachine::new(unclean));
        let (meta, queues) = QuorumNode::open(
            config.clone(),
            Arc::clone(&seams.disk),
            Arc::clone(&seams.inspector),
            seed,
            make,
            None,
        )?;
        let meta = Arc::new(Mutex::new(meta));
        let _ = quorum::lock(&meta).ensure_group(METADATA_GROUP);
        quorum::spawn_peer_senders(&meta, queues, config.id, &seams.network, &seams.spawner);
        quorum::spawn_ticker(
            &meta,
            Duration::from_millis(config.tick_ms.max(1)),
            &seams.spawner,
        );

        let members = config.members();
        let mut replicas = BTreeMap::new();
        let dir = config.data_dir.join("kafka");
        let dir_id = directory_id(seams, &dir)?;
        for (partition, assigned) in assignment(&members, &config.kafka) {
            if !assigned.contains(&config.id) {
                continue;
            }
            let (mut store, replay) = RecordLog::<PartRecord>::open_file(
                seams.disk.as_ref(),
                &dir,
                &format!("p{partition}.log"),
                config.fsync,
            )?;
            let mut log = PartitionLog::default();
            for record in replay.records {
                match record {
                    PartRecord::Record(r) => {
                        if let Err(err) = log.append_fetched(vec![r]) {
                            tracing::error!(partition, %err, "log replay stopped");
                            break;
                        }
                    }
                    PartRecord::Truncate { offset } => log.truncate(offset),
                    PartRecord::Hw { offset } => log.advance_hw(offset),
                }
            }
            if config.kafka.truncate_to == TruncateTo::HighWatermark && log.hw() < log.leo() {
                // Pre-0.11 Kafka truncated every replica to its high-watermark checkpoint at
                // startup, whether it would lead or follow.
                let hw = log.hw();
                tracing::warn!(
                    partition,
                    from = log.leo(),
                    to = hw,
                    "startup truncation to the high watermark"
                );
                log.truncate(hw);
                store.append(&PartRecord::Truncate { offset: hw })?;
            }
            tracing::info!(partition, leo = log.leo(), hw = log.hw(), "partition recovered");
            seams.inspector.kafka(KafkaEvent::Recovered {
                partition,
                node: config.id,
                log_end: log.leo(),
            });
            let stored_hw = log.hw();
            let mut replica = Replica {
                log,
                store,
                leading: None,
                known_epoch: 0,
                waiters: Vec::new(),
                stored_hw,
                checkpointed_at: Instant::now(),
                inspector: Arc::clone(&seams.inspector),
                partition,
                me: config.id,
                reported_hw: 0,
                reported_isr: Isr::new(),
                // Whatever was recovered counts as changed until a fsync vouches for it.
                unreported: Some(0),
                min_insync: config.kafka.min_isr,
            };
            replica.report_stored();
            replicas.insert(partition, replica);
        }
        let partitions: Vec<PartitionId> = replicas.keys().copied().collect();
        let arrivals = partitions.iter().map(|p| (*p, Arc::new(Notify::new()))).collect();
        let node = Arc::new(Self {
            me: config.id,
            settings: config.kafka,
            peers: config.peers.clone(),
            members,
            meta,
            data: Mutex::new(Data { replicas }),
            started: Instant::now(),
            network: Arc::clone(&seams.network),
            spawner: Arc::clone(&seams.spawner),
            arrivals,
            dir: dir_id,
        });
        let controller = Arc::clone(&node);
        seams
            .spawner
            .spawn(Box::pin(async move { controller.run_controller().await }));
        let manager = Arc::clone(&node);
        seams
            .spawner
            .spawn(Box::pin(async move { manager.run_replica_manager().await }));
        for partition in partitions {
            let fetcher = Arc::clone(&node);
            seams
                .spawner
                .spawn(Box::pin(async move { fetcher.run_fetcher(partition).await }));
        }
        Ok(node)
    }

    /// Who leads each named partition: (this node, peers, (name, leader)).
    pub(crate) fn metadata_for(&self, names: Vec<String>) -> crate::protocol::LeaderTable {
        let metadata = self.metadata();
        let leaders = names
            .into_iter()
            .map(|n| {
                let leader = n
                    .parse::<PartitionId>()
                    .ok()
                    .and_then(|p| metadata.get(&p))
                    .and_then(|s| s.leader);
                (n, leader)
            })
            .collect();
        (self.me, self.peers.clone().into_iter().collect(), leaders)
    }

    /// The controller's Raft group, for peer messages.
    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn metadata(&self) -> BTreeMap<PartitionId, PartitionState> {
        quorum::lock(&self.meta)
            .machine(METADATA_GROUP)
            .map(|m| m.partitions().clone())
            .unwrap_or_default()
    }

    fn not_leader(&self, state: Option<&PartitionState>) -> Response {
        let leader = state
            .and_then(|s| s.leader)
            .filter(|l| *l != self.me)
            .and_then(|l| self.peers.get(&l).cloned());
        Response::Error {
            code: ErrorCode::NotLeader,
            message: "not the partition's leader".into(),
            leader,
        }
    }

    /// Serves one kafka-mode request.
    pub(crate) async fn handle(self: &Arc<Self>, request: KafkaRequest) -> Response {
        match request {
            KafkaRequest::Produce {
                partition,
                value,
                acks,
            } => self.produce(partition, value, acks).await,
            KafkaRequest::Poll {
                partition,
                offset,
                max,
                wait_ms,
            } => self.long_poll(partition, offset, max, wait_ms).await,
            KafkaRequest::CommitOffset {
                group,
                partition,
                offset,
            } => {
                self.commit_offset(MetaCommand::CommitOffset {
                    group,
                    partition,
                    offset,
                })
                .await
            }
            KafkaRequest::FetchOffset { group, partition } => {
                let meta = quorum::lock(&self.meta);
                match meta.leadership(METADATA_GROUP) {
                    (true, _) => {
                        let offset = meta
                            .machine(METADATA_GROUP)
                            .and_then(|m| m.committed_offset(&group, partition));
                        reply(KafkaResponse::Offset { offset })
                    }
                    (false, leader) => Response::Error {
                        code: ErrorCode::NotLeader,
                        message: "not the controller".into(),
                        leader,
                    },
                }
            }
            KafkaRequest::Fetch {
                partition,
                replica,
                offset,
                last_epoch,
            } => self.long_fetch(partition, replica, offset, last_epoch).await,
            KafkaRequest::Propose { command } => {
                let mut meta = quorum::lock(&self.meta);
                match meta.leadership(METADATA_GROUP) {
                    (true, _) => {
                        let _ = meta.propose(METADATA_GROUP, &command);
                        reply(KafkaResponse::Proposed)
                    }
                    (false, leader) => Response::Error {
                        code: ErrorCode::NotLeader,
                        message: "not the controller".into(),
                        leader,
                    },
                }
            }
        }
    }

    async fn produce(self: &Arc<Self>, partition: PartitionId, value: Vec<u8>, acks: Acks) -> Response {
        let metadata = self.metadata();
        let state = metadata.get(&partition);
        if state.and_then(|s| s.leader) != Some(self.me) {
            return self.not_leader(state);
        }
        let epoch = state.map_or(0, |s| s.epoch);
        let waiting = {
            let mut data = lock(&self.data);
            let Some(replica) = data.replicas.get_mut(&partition) else {
                return self.not_leader(state);
            };
            let Some(leading) = replica.leading.as_ref().filter(|l| l.epoch == epoch) else {
                return error(ErrorCode::Unavailable, "becoming leader".into());
            };
            if acks == Acks::All && leading.isr().len() < self.settings.min_isr {
                return error(
                    ErrorCode::NotEnoughReplicas,
                    format!(
                        "ISR {:?} is smaller than min.insync.replicas {}",
                        leading.isr(),
                        self.settings.min_isr
                    ),
                );
            }
            let leader_epoch = leading.epoch;
            let offset = replica.log.append(leader_epoch, value.clone());
            let record = Record {
                offset,
                epoch: leader_epoch,
                value,
            };
            if let Err(err) = replica.persist(&[PartRecord::Record(record)]) {
                replica.log.truncate(offset);
                return error(ErrorCode::Unavailable, format!("storage: {err}"));
            }
            if let Some(leading) = replica.leading.as_ref() {
                leading.update_hw(&mut replica.log);
            }
            replica.settle();
            if let Some(arrival) = self.arrivals.get(&partition) {
                arrival.notify_waiters();
            }
            match acks {
                Acks::Zero | Acks::One => return reply(KafkaResponse::Produced { offset }),
                Acks::All if replica.log.hw() > offset => {
                    // The ISR was checked against min.insync.replicas above, under this lock.
                    replica.acknowledged(offset);
                    return reply(KafkaResponse::Produced { offset });
                }
                Acks::All => {
                    let (tx, rx) = oneshot::channel();
                    replica.waiters.push((offset, tx));
                    (offset, rx)
                }
            }
        };
        let (offset, rx) = waiting;
        match tokio::time::timeout(ACK_TIMEOUT, rx).await {
            Ok(Ok(true)) => reply(KafkaResponse::Produced { offset }),
            Ok(Ok(false)) => error(
                ErrorCode::OutcomeUnknown,
                "not acknowledged: the ISR fell below min.insync.replicas after the append (NOT_ENOUGH_REPLICAS_AFTER_APPEND), or this node stopped leading; the record may still be stored".into(),
            ),
            _ => error(
                ErrorCode::OutcomeUnknown,
                "not replicated to the ISR in time; it may still be".into(),
            ),
        }
    }

    /// Commits a consumer offset through the controller; answered once it is replicated.
    async fn commit_offset(&self, command: MetaCommand) -> Response {
        let pending = {
            let mut meta = quorum::lock(&self.meta);
            match meta.leadership(METADATA_GROUP) {
                (true, _) => meta.propose(METADATA_GROUP, &command),
                (false, leader) => {
                    return Response::Error {
                        code: ErrorCode::NotLeader,
                        message: "offsets are committed at the controller".into(),
                        leader,
                    }
                }
            }
        };
        let Ok(applied) = pending else {
            return error(ErrorCode::NotLeader, "the controller changed".into());
        };
        match tokio::time::timeout(ACK_TIMEOUT, applied).await {
            Ok(Ok(Ok(Ok(())))) => reply(KafkaResponse::OffsetCommitted),
            _ => error(
                ErrorCode::OutcomeUnknown,
                "the commit was not replicated in time".into(),
            ),
        }
    }

    /// A consumer poll that finds nothing may wait (up to 1 s) for new readable records.
    async fn long_poll(&self, partition: PartitionId, offset: Offset, max: u32, wait_ms: u64) -> Response {
        let Some(arrival) = self.arrivals.get(&partition).cloned() else {
            return self.poll(partition, offset, max);
        };
        let deadline = Instant::now() + Duration::from_millis(wait_ms.min(1_000));
        loop {
            // Wake-ups come on appends and on high-watermark advances; only the latter make
            // records readable, so poll again until something is, or time is up.
            let notified = arrival.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let polled = self.poll(partition, offset, max);
            let empty = matches!(&polled, Response::Kafka { response: KafkaResponse::Records { records, .. } } if records.is_empty());
            if !empty || Instant::now() >= deadline {
                return polled;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    fn poll(&self, partition: PartitionId, offset: Offset, max: u32) -> Response {
        let metadata = self.metadata();
        let state = metadata.get(&partition);
        if state.and_then(|s| s.leader) != Some(self.me) {
            return self.not_leader(state);
        }
        let data = lock(&self.data);
        let Some(replica) = data.replicas.get(&partition).filter(|r| r.leading.is_some()) else {
            return error(ErrorCode::Unavailable, "becoming leader".into());
        };
        let up_to = if self.settings.read_uncommitted {
            replica.log.leo()
        } else {
            replica.log.hw()
        };
        let records = replica
            .log
            .read(offset, up_to, (max as usize).min(BATCH_MAX))
            .into_iter()
            .map(|r| (r.offset, r.value))
            .collect();
        reply(KafkaResponse::Records {
            records,
            hw: replica.log.hw(),
        })
    }

    /// A fetch that finds nothing new waits (up to [`FETCH_MAX_WAIT`]) for the next append,
    /// as Kafka's fetch.max.wait does, so that followers are not polling on a timer.
    async fn long_fetch(
        self: &Arc<Self>,
        partition: PartitionId,
        follower: NodeId,
        offset: Offset,
        last_epoch: Epoch,
    ) -> Response {
        let Some(arrival) = self.arrivals.get(&partition).cloned() else {
            return self.fetch(partition, follower, offset, last_epoch);
        };
        let notified = arrival.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let first = self.fetch(partition, follower, offset, last_epoch);
        let empty = matches!(&first, Response::Kafka { response: KafkaResponse::Fetched { records, .. } } if records.is_empty());
        if !empty {
            return first;
        }
        let _ = tokio::time::timeout(FETCH_MAX_WAIT, notified).await;
        self.fetch(partition, follower, offset, last_epoch)
    }

    fn fetch(
        self: &Arc<Self>,
        partition: PartitionId,
        follower: NodeId,
        offset: Offset,
        last_epoch: Epoch,
    ) -> Response {
        let metadata = self.metadata();
        let state = metadata.get(&partition);
        if state.and_then(|s| s.leader) != Some(self.me) {
            return self.not_leader(state);
        }
        let now = self.now_ms();
        let expand = {
            let mut data = lock(&self.data);
            let Some(replica) = data.replicas.get_mut(&partition) else {
                return self.not_leader(state);
            };
            let Some(leading) = replica.leading.as_mut() else {
                return error(ErrorCode::Unavailable, "becoming leader".into());
            };
            // The follower's log goes past where its last epoch ends here (or past our log):
            // it holds records no leader of this lineage has. (Under --truncate-to hw the
            // follower already cut to its high watermark instead.)
            let epoch_end = match self.settings.truncate_to {
                TruncateTo::LeaderEpoch => replica.log.end_offset_of(last_epoch),
                TruncateTo::HighWatermark => replica.log.leo(),
            };
            if offset > epoch_end.min(replica.log.leo()) {
                return reply(KafkaResponse::Diverging {
                    end_offset: epoch_end.min(replica.log.leo()),
                });
            }
            let hw_before = replica.log.hw();
            let (fetched, expand) = leading.on_fetch(&mut replica.log, follower, offset, BATCH_MAX, now);
            let epoch = leading.epoch;
            replica.settle();
            if replica.log.hw() > hw_before {
                // Newly committed records: wake consumers waiting in a poll.
                if let Some(arrival) = self.arrivals.get(&partition) {
                    arrival.notify_waiters();
                }
            }
            (
                Response::Kafka {
                    response: KafkaResponse::Fetched {
                        records: fetched.records,
                        hw: fetched.hw,
                    },
                },
                expand,
                epoch,
            )
        };
        let (response, expand, epoch) = expand;
        if let Some(proposal) = expand {
            self.propose(MetaCommand::AlterIsr {
                partition,
                epoch,
                isr: proposal.isr,
                version: proposal.version,
            });
        }
        response
    }

    /// Sends a metadata change to the controller (fire and forget: the result shows up in
    /// the replicated metadata, or the condition recurs and is proposed again).
    fn propose(self: &Arc<Self>, command: MetaCommand) {
        let leader = {
            let mut meta = quorum::lock(&self.meta);
            match meta.leadership(METADATA_GROUP) {
                (true, _) => {
                    let _ = meta.propose(METADATA_GROUP, &command);
                    return;
                }
                (false, leader) => leader,
            }
        };
        let Some(addr) = leader else { return };
        let network = Arc::clone(&self.network);
        self.spawner.spawn(Box::pin(async move {
            if let Ok(mut client) = Client::connect(network.as_ref(), &addr, PEER_TIMEOUT).await {
                let _ = client.kafka(KafkaRequest::Propose { command }).await;
            }
        }));
    }

    /// While this node leads the controller group: create the partitions, and fence brokers
    /// it has not heard from (unfence them when they return).
    async fn run_controller(self: Arc<Self>) {
        let mut leading_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(CONTROLLER_TICK).await;
            let mut meta = quorum::lock(&self.meta);
            if !meta.leadership(METADATA_GROUP).0 {
                leading_since = None;
                continue;
            }
            let since = *leading_since.get_or_insert_with(Instant::now);
            let Some(machine) = meta.machine(METADATA_GROUP) else {
                continue;
            };
            let mut commands = Vec::new();
            if machine.partitions().is_empty() {
                let assignment = assignment(&self.members, &self.settings).into_iter().collect();
                commands.push(MetaCommand::Init { assignment });
            }
            if machine.is_fenced(self.me) {
                commands.push(MetaCommand::Unfence { broker: self.me });
            }
            for peer in self.peers.keys().copied() {
                let alive = meta.heard_within(peer, FENCE_AFTER);
                // A new controller first gives every broker a chance to be heard.
                if !alive && !machine.is_fenced(peer) && since.elapsed() > FENCE_AFTER {
                    tracing::warn!(broker = peer, "controller: fencing a silent broker");
                    commands.push(MetaCommand::Fence { broker: peer });
                } else if alive && machine.is_fenced(peer) {
                    tracing::info!(broker = peer, "controller: unfencing");
                    commands.push(MetaCommand::Unfence { broker: peer });
                }
            }
            for command in commands {
                let _ = meta.propose(METADATA_GROUP, &command);
            }
        }
    }

    /// Follows the metadata: become leader or follower of each replica in its epoch,
    /// truncate per the policy on a leader change, and ask the controller to shrink an
    /// ISR that a lagging follower holds back.
    async fn run_replica_manager(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REPLICA_TICK).await;
            // Until the controller knows this directory, the metadata may still name this
            // broker leader or in-sync for replicas an earlier disk held: it neither leads
            // nor follows, and registers (again, until it shows).
            let registered = quorum::lock(&self.meta)
                .machine(METADATA_GROUP)
                .and_then(|m| m.dir_of(self.me))
                == Some(self.dir);
            if !registered {
                self.propose(MetaCommand::Register {
                    broker: self.me,
                    dir: self.dir,
                });
                continue;
            }
            let metadata = self.metadata();
            let now = self.now_ms();
            let mut proposals = Vec::new();
            {
                let mut data = lock(&self.data);
                for (partition, replica) in data.replicas.iter_mut() {
                    let Some(state) = metadata.get(partition) else {
                        continue;
                    };
                    if state.leader == Some(self.me) {
                        self.lead(*partition, replica, state, now, &mut proposals);
                    } else {
                        self.follow(*partition, replica, state);
                    }
                }
            }
            for command in proposals {
                self.propose(command);
            }
        }
    }

    fn lead(
        &self,
        partition: PartitionId,
        replica: &mut Replica,
        state: &PartitionState,
        now: u64,
        proposals: &mut Vec<MetaCommand>,
    ) {
        if replica.leading.as_ref().map(|l| l.epoch) != Some(state.epoch) {
            tracing::info!(partition, epoch = state.epoch, leo = replica.log.leo(), "leading");
            replica.step_down();
            let leading = LeaderState::new(
                self.me,
                state.epoch,
                state.isr.clone(),
                state.version,
                self.settings.lag_max_ms,
                now,
            );
            replica.inspector.kafka(KafkaEvent::Leading {
                partition,
                node: self.me,
                epoch: state.epoch,
                log: replica.log.records(),
                isr: &state.isr,
            });
            leading.update_hw(&mut replica.log);
            replica.leading = Some(leading);
            replica.known_epoch = state.epoch;
            // A new leader reports every commit of its own from here.
            replica.reported_hw = 0;
            replica.reported_isr = Isr::new();
        }
        let Some(leading) = replica.leading.as_mut() else {
            return;
        };
        // Every change of the ISR bumps the partition's version.
        if leading.version() != state.version {
            leading.set_isr(state.isr.clone(), state.version, &mut replica.log);
        }
        let proposal = leading
            .lagging(&replica.log, now)
            .or_else(|| leading.pending_expansion(now));
        if let Some(proposal) = proposal {
            proposals.push(MetaCommand::AlterIsr {
                partition,
                epoch: leading.epoch,
                isr: proposal.isr,
                version: proposal.version,
            });
        }
        replica.settle();
    }

    fn follow(&self, partition: PartitionId, replica: &mut Replica, state: &PartitionState) {
        if replica.leading.is_some() {
            tracing::info!(partition, epoch = state.epoch, "no longer leading");
            replica.step_down();
        }
        if state.epoch != replica.known_epoch {
            replica.known_epoch = state.epoch;
            if self.settings.truncate_to == TruncateTo::HighWatermark {
                // Pre-0.11 Kafka: cut to the high watermark this replica knows, which may
                // be behind what the leader already committed.
                let hw = replica.log.hw();
                if hw < replica.log.leo() {
                    replica.truncate_durably(partition, hw, "truncating to the high watermark");
                }
            }
        }
    }

    /// Pulls one partition from its leader whenever another node leads it.
    async fn run_fetcher(self: Arc<Self>, partition: PartitionId) {
        let mut connection: Option<(String, Client)> = None;
        loop {
            let leader = self.metadata().get(&partition).and_then(|s| s.leader);
            let Some(addr) = leader
                .filter(|l| *l != self.me)
                .and_then(|l| self.peers.get(&l).cloned())
            else {
                tokio::time::sleep(FETCH_IDLE).await;
                continue;
            };
            if connection.as_ref().is_none_or(|(a, _)| *a != addr) {
                connection = Client::connect(self.network.as_ref(), &addr, FETCH_TIMEOUT)
                    .await
                    .ok()
                    .map(|c| (addr.clone(), c));
            }
            let Some((_, client)) = connection.as_mut() else {
                tokio::time::sleep(PEER_TIMEOUT).await;
                continue;
            };
            let (offset, last_epoch) = {
                let data = lock(&self.data);
                let Some(r) = data.replicas.get(&partition) else {
                    return;
                };
                (r.log.leo(), r.log.last_epoch())
            };
            let request = KafkaRequest::Fetch {
                partition,
                replica: self.me,
                offset,
                last_epoch,
            };
            let idle = match client.kafka(request).await {
                Ok(KafkaResponse::Fetched { records, hw }) => self.fetched(partition, offset, records, hw),
                Ok(KafkaResponse::Diverging { end_offset }) => {
                    let mut data = lock(&self.data);
                    if let Some(r) = data.replicas.get_mut(&partition).filter(|r| r.leading.is_none()) {
                        r.truncate_durably(partition, end_offset, "truncating a diverged log");
                    }
                    false
                }
                _ => {
                    connection = None;
                    true
                }
            };
            // An empty reply already waited at the leader; only errors back off here.
            if idle && connection.is_none() {
                tokio::time::sleep(FETCH_IDLE).await;
            }
        }
    }

    /// Appends what a fetch returned; returns true when there was nothing new.
    fn fetched(&self, partition: PartitionId, offset: Offset, records: Vec<Record>, hw: Offset) -> bool {
        let mut data = lock(&self.data);
        let Some(r) = data.replicas.get_mut(&partition) else {
            return true;
        };
        if r.leading.is_some() || r.log.leo() != offset {
            return true; // became leader, or the log moved since the request: ignore
        }
        let idle = records.is_empty();
        let stored: Vec<PartRecord> = records.iter().cloned().map(PartRecord::Record).collect();
        if let Err(err) = r.log.append_fetched(records) {
            tracing::error!(partition, %err, "fetched records do not continue the log");
            return true;
        }
        if let Err(err) = r.persist(&stored) {
            tracing::error!(partition, %err, "fetched records not persisted");
            r.log.truncate(offset);
            return true;
        }
        r.inspector.kafka(KafkaEvent::Appended {
            partition,
            node: self.me,
            records: &r.log.records()[offset as usize..],
        });
        let leo = r.log.leo();
        r.log.advance_hw(hw.min(leo));
        r.settle();
        idle
    }
}

/// This broker's directory id: read from `dir`, or drawn and written durably if the
/// directory is new (a first start, or a replaced disk).
fn directory_id(seams: &mut Seams, dir: &std::path::Path) -> Result<u64, StorageError> {
    let (mut file, replay) =
        RecordLog::<u64>::open_file(seams.disk.as_ref(), dir, "directory.id", FsyncPolicy::Always)?;
    if let Some(id) = replay.records.last() {
        return Ok(*id);
    }
    let id = seams.entropy.next_u64();
    file.append(&id)?;
    tracing::info!(dir = %dir.display(), id, "a new data directory");
    Ok(id)
}

/// Partition `p`'s replicas: `rf` consecutive members from `p`, the first preferred leader.
pub(crate) fn assignment(members: &[NodeId], settings: &KafkaSettings) -> BTreeMap<PartitionId, Vec<NodeId>> {
    (0..settings.partitions)
        .map(|p| (p, replicas_of(p, members, settings.rf)))
        .collect()
}

/// The `rf` replicas of `partition` among `members` (every node, ascending), preferred
/// leader first. Quorum mode's log places its partitions' Raft groups the same way, so that
/// the two designs put the same partitions on the same nodes and a fault hits both alike.
pub(crate) fn replicas_of(partition: PartitionId, members: &[NodeId], rf: usize) -> Vec<NodeId> {
    if members.is_empty() {
        return Vec::new();
    }
    (0..rf.clamp(1, members.len()))
        .map(|i| members[(partition as usize + i) % members.len()])
        .collect()
}
