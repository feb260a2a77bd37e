//! The nemesis: injects faults on a seeded schedule (or plays a recorded one back), records
//! each as an `info` op of process `nemesis`, restarts brokers that stopped themselves, and
//! heals everything when the fault phase ends.
//!
//! Drawn faults run in lanes: by default one lane for the whole package (one fault at a
//! time, the next drawn after the previous ends); with `--overlap` one lane per fault kind,
//! each on its own schedule, so that a kill can strike during a partition. Whatever the
//! source, every fault that happened is kept as a [`Schedule`] (the run's schedule.json).

pub mod fault;
mod net;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use checker::{OpType, Process};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use fault::{
    truncated_len, Damage, Fault, Schedule, ScheduleError, ScheduledFault, Shape, SCHEDULE_VERSION,
};

use crate::monitor::Monitors;
use crate::recorder::Recorder;
use crate::seams::DiskFaults;
use crate::spec::{FaultKind, FaultTarget, TestSpec};

/// How long a killed host stays down, simulated seconds.
const DOWNTIME_S: Range<f64> = 1.0..5.0;
/// How long a pause lasts.
const PAUSE_S: Range<f64> = 1.0..5.0;
/// How long a partition or a packet fault lasts.
const LINK_FAULT_S: Range<f64> = 2.0..8.0;
/// Latency of a degraded link, milliseconds.
const PACKET_LATENCY_MS: Range<u64> = 20..300;
/// Loss on a degraded link.
const PACKET_LOSS: Range<f64> = 0.0..0.05;
/// How long EIO lasts, and how likely each operation fails meanwhile.
const EIO_S: Range<f64> = 1.0..4.0;
const EIO_PROBABILITY: Range<f64> = 0.05..0.5;
/// How long a torn write waits for the node's next append.
const TORN_WINDOW_S: Range<f64> = 0.5..2.0;
/// How long the corruption of a restarting node's first read stays armed.
const CORRUPT_WINDOW: Duration = Duration::from_millis(500);
/// How long a broker that stopped itself (a storage failure) stays down before it is
/// restarted, as a service manager would.
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// How long a leader-churn window lasts.
const CHURN_S: Range<f64> = 5.0..12.0;
/// How soon after taking over a leader is struck.
const CHURN_DELAY_S: Range<f64> = 0.2..1.5;
/// Disks are replaced one at a time, with this long for the replaced node to come back
/// and copy its data again before the next: two replacements in quick succession destroy
/// a majority's copies of the same data, which no replicated design survives. A wipe drawn
/// sooner is made a plain restart of its node.
const WIPE_SPACING: Duration = Duration::from_secs(15);

/// Who leads each queue or partition, host by host, as the cluster's metadata last said.
pub type LeaderView = Rc<RefCell<BTreeMap<String, String>>>;

/// Where faults come from.
enum Source {
    /// Drawn from the seed, lane by lane.
    Drawn { lanes: Vec<Lane>, interval_s: f64 },
    /// Played from a schedule: `next` is the first fault not yet started.
    Played {
        faults: Vec<ScheduledFault>,
        next: usize,
    },
}

/// One schedule of drawn faults: at most one of its faults is active at a time.
struct Lane {
    kinds: Vec<FaultKind>,
    next_fault_at: Duration,
    busy: bool,
}

/// A fault in force.
struct Active {
    lane: Option<usize>,
    scheduled: ScheduledFault,
}

/// A broker host's life as the nemesis sees it.
#[derive(Default)]
struct HostState {
    /// Active kills holding it down.
    kills: usize,
    /// When it was found stopped of its own accord (a storage failure).
    stopped_at: Option<Duration>,
}

/// How a runtime makes the faults the nemesis decides on: the simulation through turmoil,
/// the real runtime through signals and iptables. Nodes are named as in the schedule.
pub trait Actuator {
    /// Stops `node` at once, as a power cut or SIGKILL would; it stays down.
    fn crash(&mut self, node: &str);
    /// Starts `node` again if it is down, or restarts it if it runs.
    fn bounce(&mut self, node: &str);
    /// Whether `node`'s process runs.
    fn is_running(&mut self, node: &str) -> bool;
    /// Arms `damage` on the disk of node number `node` (from 0), or disarms all of it.
    fn damage(&mut self, node: usize, damage: Option<Damage>);
    /// Brings the network in line with `active`, every fault now in force (partitions,
    /// pauses and degraded links together: they compose).
    fn links(&mut self, active: &[&Fault]);
}

/// What the simulation's actuator keeps between steps: the links as last applied and the
/// brokers' disk-fault handles.
pub struct SimFaults {
    network: net::Network,
    disks: Vec<DiskFaults>,
    /// The run's invariant monitors, told when a disk is damaged at rest.
    monitors: Option<Arc<Monitors>>,
}

impl SimFaults {
    /// The links among `nodes` and between them and `clients`, healthy links drawing
    /// their latency from `spec`, and the nodes' `disks`.
    pub fn new(
        spec: &TestSpec,
        nodes: &[String],
        clients: &[String],
        disks: Vec<DiskFaults>,
        monitors: Option<Arc<Monitors>>,
    ) -> Self {
        let latency = (
            Duration::from_millis(spec.latency.min_ms),
            Duration::from_millis(spec.latency.max_ms),
        );
        Self {
            network: net::Network::new(nodes, clients, latency),
            disks,
            monitors,
        }
    }

    /// The actuator for one step of `sim`.
    pub fn on<'a, 'b>(&'a mut self, sim: &'a mut turmoil::Sim<'b>) -> SimActuator<'a, 'b> {
        SimActuator { sim, faults: self }
    }
}

/// The simulation's actuator: turmoil crashes, bounces and link states; disk faults through
/// the simulated disks' handles.
pub struct SimActuator<'a, 'b> {
    sim: &'a mut turmoil::Sim<'b>,
    faults: &'a mut SimFaults,
}

impl Actuator for SimActuator<'_, '_> {
    fn crash(&mut self, node: &str) {
        self.sim.crash(node);
    }

    fn bounce(&mut self, node: &str) {
        self.sim.bounce(node);
    }

    fn is_running(&mut self, node: &str) -> bool {
        self.sim.is_host_running(node)
    }

    fn damage(&mut self, node: usize, damage: Option<Damage>) {
        if let (Some(monitors), Some(true)) = (&self.faults.monitors, damage.map(Damage::at_rest)) {
            monitors.disk_damaged(node as u64 + 1);
        }
        self.faults.disks[node].update(|d| match damage {
            Some(Damage::Torn) => d.torn_next_append = true,
            Some(Damage::Eio { probability }) => d.eio = Some(probability),
            Some(Damage::Corrupt) => d.corrupt_next_read = true,
            Some(Damage::Truncate { keep }) => d.truncate_next_read = Some(keep),
            // Done at the node's next start, however long it stays down: the end of the
            // fault's window does not bring the disk back.
            Some(Damage::Wipe) => d.wipe_at_start = true,
            None => {
                d.torn_next_append = false;
                d.eio = None;
                d.corrupt_next_read = false;
                d.truncate_next_read = None;
            }
        });
    }

    fn links(&mut self, active: &[&Fault]) {
        self.faults.network.apply(self.sim, active.iter().copied());
    }
}

/// The fault-injecting process of a run.
pub struct Nemesis {
    rng: ChaCha8Rng,
    source: Source,
    target: FaultTarget,
    nodes: Vec<String>,
    hosts: Vec<HostState>,
    leaders: LeaderView,
    active: Vec<Active>,
    happened: Vec<ScheduledFault>,
    /// Whether links can be slowed: real runs on a kernel without netem make packet faults
    /// of loss alone, and record them so.
    latency: bool,
    /// When the last drawn wipe started.
    last_wipe: Option<Duration>,
    /// The leader-churn window in force, if any.
    churn: Option<Churn>,
}

/// A leader-churn window: each new leader the brokers report is killed or isolated soon
/// after it takes over. Each strike is an ordinary kill or partition, recorded as such, so
/// a schedule replays the churn exactly.
#[derive(Debug)]
struct Churn {
    lane: Option<usize>,
    until: Duration,
    /// The leader last seen for each queue or partition.
    seen: BTreeMap<String, String>,
    /// Leaders to strike, and when.
    pending: Vec<(Duration, String)>,
}

impl Nemesis {
    /// A nemesis for `spec`, acting on the broker nodes `nodes` through an [`Actuator`]
    /// given at each step; it draws faults from `seed`, or plays `schedule`.
    pub fn new(
        spec: &TestSpec,
        nodes: Vec<String>,
        leaders: LeaderView,
        schedule: Option<Schedule>,
        seed: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let source = match schedule {
            Some(schedule) => Source::Played {
                faults: schedule.faults,
                next: 0,
            },
            None => {
                let interval_s = spec.nemesis_interval_s;
                let groups: Vec<Vec<FaultKind>> = if spec.overlap {
                    spec.nemesis.0.iter().map(|k| vec![*k]).collect()
                } else {
                    vec![spec.nemesis.0.clone()]
                };
                let lanes = groups
                    .into_iter()
                    .map(|kinds| Lane {
                        kinds,
                        next_fault_at: secs(interval_s * rng.random_range(0.5..1.5)),
                        busy: false,
                    })
                    .collect();
                Source::Drawn { lanes, interval_s }
            }
        };
        Self {
            rng,
            source,
            target: spec.target,
            hosts: nodes.iter().map(|_| HostState::default()).collect(),
            nodes,
            leaders,
            last_wipe: None,
            churn: None,
            active: Vec::new(),
            happened: Vec::new(),
            latency: spec.runtime == crate::Runtime::Sim,
        }
    }

    /// Every fault that happened so far, as a schedule that replays them.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            version: SCHEDULE_VERSION,
            faults: self.happened.clone(),
        }
    }

    /// Called after every simulation step of the fault phase.
    pub fn step(&mut self, act: &mut dyn Actuator, now: Duration, recorder: &mut Recorder) {
        let now_ms = now.as_millis() as u64;
        let mut changed = false;
        // End what is due, oldest first.
        while let Some(i) = self.active.iter().position(|a| a.scheduled.end_ms <= now_ms) {
            let ended = self.active.remove(i);
            self.end(act, &ended.scheduled.fault, now, recorder);
            self.free_lane(ended.lane, now);
            changed = true;
        }
        // Start what is due.
        for (lane, scheduled) in self.due(now) {
            self.start(act, &scheduled.fault, now, recorder);
            self.happened.push(scheduled.clone());
            if scheduled.end_ms > scheduled.start_ms {
                self.active.push(Active { lane, scheduled });
            } else {
                self.free_lane(lane, now);
            }
            changed = true;
        }
        changed |= self.churn_step(act, now, recorder);
        if changed {
            let active: Vec<&Fault> = self.active.iter().map(|a| &a.scheduled.fault).collect();
            act.links(&active);
        }
        self.supervise(act, now);
    }

    /// Opens a leader-churn window: the current leader of one queue or partition is struck
    /// first, then every leader that takes over while the window lasts.
    fn start_churn(&mut self, lane: usize, now: Duration) {
        if self.churn.is_some() {
            self.free_lane(Some(lane), now);
            return;
        }
        let seen = self.leaders.borrow().clone();
        let mut pending = Vec::new();
        let current: Vec<String> = seen.values().cloned().collect();
        if let Some(leader) = current.choose(&mut self.rng) {
            pending.push((now + self.length(CHURN_DELAY_S), leader.clone()));
        }
        let until = now + self.length(CHURN_S);
        tracing::info!(until_s = until.as_secs_f64(), "nemesis: leader churn begins");
        self.churn = Some(Churn {
            lane: Some(lane),
            until,
            seen,
            pending,
        });
    }

    /// Strikes the leaders a churn window has due; returns whether a fault started.
    fn churn_step(&mut self, act: &mut dyn Actuator, now: Duration, recorder: &mut Recorder) -> bool {
        let Some(mut churn) = self.churn.take() else {
            return false;
        };
        if now >= churn.until {
            tracing::info!("nemesis: leader churn ends");
            self.free_lane(churn.lane, now);
            return false;
        }
        // Runs at every step of the window: only the leaders that changed are copied.
        let changed: Vec<(String, String)> = self
            .leaders
            .borrow()
            .iter()
            .filter(|(key, leader)| churn.seen.get(*key) != Some(*leader))
            .map(|(key, leader)| (key.clone(), leader.clone()))
            .collect();
        for (key, leader) in changed {
            churn.seen.insert(key, leader.clone());
            if !churn.pending.iter().any(|(_, n)| *n == leader) {
                let at = now + self.length(CHURN_DELAY_S);
                churn.pending.push((at, leader));
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = churn.pending.drain(..).partition(|(at, _)| *at <= now);
        churn.pending = later;
        let mut started = false;
        for (_, node) in due {
            let i = self.index(&node);
            if self.hosts[i].kills > 0 || !act.is_running(&node) {
                continue;
            }
            let (fault, length) = if self.rng.random_bool(0.5) {
                let downtime = self.length(DOWNTIME_S);
                (
                    Fault::Kill {
                        nodes: vec![node.clone()],
                    },
                    downtime,
                )
            } else {
                let rest: Vec<String> = self.nodes.iter().filter(|n| **n != node).cloned().collect();
                // Sorted, as a drawn isolation's cuts are.
                let mut cuts = both_ways(std::slice::from_ref(&node), &rest);
                cuts.sort();
                let fault = Fault::Partition {
                    shape: Shape::Isolate,
                    cuts,
                };
                (fault, self.length(LINK_FAULT_S))
            };
            let now_ms = now.as_millis() as u64;
            let scheduled = ScheduledFault {
                start_ms: now_ms,
                end_ms: now_ms + length.as_millis() as u64,
                fault,
            };
            self.start(act, &scheduled.fault, now, recorder);
            self.happened.push(scheduled.clone());
            self.active.push(Active {
                lane: None,
                scheduled,
            });
            started = true;
        }
        self.churn = Some(churn);
        started
    }

    /// A drawn lane's fault is over: its next one comes after a fresh gap.
    fn free_lane(&mut self, lane: Option<usize>, now: Duration) {
        if let (Some(lane), Source::Drawn { lanes, interval_s }) = (lane, &mut self.source) {
            lanes[lane].busy = false;
            lanes[lane].next_fault_at = now + secs(*interval_s * self.rng.random_range(0.5..1.5));
        }
    }

    /// Ends every fault: restarts every host that is down, repairs every link, ends pauses
    /// and disk damage. Later calls to [`Nemesis::supervise`] keep hosts up.
    pub fn heal(&mut self, act: &mut dyn Actuator, now: Duration, recorder: &mut Recorder) {
        self.churn = None;
        for ended in std::mem::take(&mut self.active) {
            self.end(act, &ended.scheduled.fault, now, recorder);
        }
        act.links(&[]);
        for (i, node) in self.nodes.iter().enumerate() {
            if !act.is_running(node) {
                act.crash(node);
                act.bounce(node);
                self.hosts[i].stopped_at = None;
                tracing::info!(node, "nemesis: restarted a stopped broker while healing");
            }
        }
        tracing::info!("nemesis: healed");
    }

    /// Restarts brokers that stopped of their own accord (a storage failure, a failed
    /// recovery) after [`RESTART_DELAY`], as a service manager would. A stopped process
    /// leaves no page cache behind it that fsync did not make durable: it is crashed first.
    pub fn supervise(&mut self, act: &mut dyn Actuator, now: Duration) {
        for (i, node) in self.nodes.iter().enumerate() {
            let host = &mut self.hosts[i];
            if host.kills > 0 || act.is_running(node) {
                continue;
            }
            match host.stopped_at {
                None => {
                    act.crash(node);
                    host.stopped_at = Some(now);
                    tracing::warn!(
                        node,
                        "nemesis: broker stopped by itself; restarting it in {RESTART_DELAY:?}"
                    );
                }
                Some(at) if now >= at + RESTART_DELAY => {
                    act.bounce(node);
                    host.stopped_at = None;
                    tracing::info!(node, "nemesis: restarted a broker that had stopped");
                }
                Some(_) => {}
            }
        }
    }

    /// The faults due to start now, with their lanes.
    fn due(&mut self, now: Duration) -> Vec<(Option<usize>, ScheduledFault)> {
        let now_ms = now.as_millis() as u64;
        let mut due = Vec::new();
        match &mut self.source {
            Source::Played { faults, next } => {
                while let Some(f) = faults.get(*next).filter(|f| f.start_ms <= now_ms) {
                    due.push((None, f.clone()));
                    *next += 1;
                }
            }
            Source::Drawn { lanes, .. } => {
                let ready: Vec<(usize, Vec<FaultKind>)> = lanes
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| !l.busy && !l.kinds.is_empty() && now >= l.next_fault_at)
                    .map(|(i, l)| (i, l.kinds.clone()))
                    .collect();
                for (lane, kinds) in ready {
                    if let Source::Drawn { lanes, .. } = &mut self.source {
                        lanes[lane].busy = true;
                    }
                    let kind = kinds[self.rng.random_range(0..kinds.len())];
                    if kind == FaultKind::LeaderChurn {
                        self.start_churn(lane, now);
                        continue;
                    }
                    let (mut fault, mut length) = self.draw(kind);
                    if let Fault::Disk {
                        node,
                        damage: Damage::Wipe,
                    } = &fault
                    {
                        if self.last_wipe.is_some_and(|at| now < at + WIPE_SPACING) {
                            fault = Fault::Restart {
                                nodes: vec![node.clone()],
                            };
                            length = Duration::ZERO;
                        } else {
                            self.last_wipe = Some(now);
                        }
                    }
                    let scheduled = ScheduledFault {
                        start_ms: now_ms,
                        end_ms: now_ms + length.as_millis() as u64,
                        fault,
                    };
                    due.push((Some(lane), scheduled));
                }
            }
        }
        due
    }

    /// Draws one fault of `kind` against the nodes the target names, and how long it lasts.
    fn draw(&mut self, kind: FaultKind) -> (Fault, Duration) {
        let targets = self.targets();
        match kind {
            FaultKind::Kill => (Fault::Kill { nodes: targets }, self.length(DOWNTIME_S)),
            FaultKind::Restart => (Fault::Restart { nodes: targets }, Duration::ZERO),
            FaultKind::Pause => (Fault::Pause { nodes: targets }, self.length(PAUSE_S)),
            FaultKind::Partition => {
                let fault = self.partition(targets);
                (fault, self.length(LINK_FAULT_S))
            }
            FaultKind::Packet => {
                // Drawn either way, so that the rest of a seed's faults do not depend on it.
                let latency_ms = self.rng.random_range(PACKET_LATENCY_MS);
                let fault = Fault::Packet {
                    nodes: targets,
                    latency_ms: if self.latency { latency_ms } else { 0 },
                    loss: (self.rng.random_range(PACKET_LOSS) * 1000.0).round() / 1000.0,
                };
                (fault, self.length(LINK_FAULT_S))
            }
            FaultKind::Disk => {
                let node = targets[0].clone();
                let (damage, length) = if self.rng.random_bool(0.5) {
                    (Damage::Torn, self.length(TORN_WINDOW_S))
                } else {
                    let probability = (self.rng.random_range(EIO_PROBABILITY) * 100.0).round() / 100.0;
                    (Damage::Eio { probability }, self.length(EIO_S))
                };
                (Fault::Disk { node, damage }, length)
            }
            // A churn window is opened by the lane itself (`start_churn`); drawn alone, it
            // is its first strike.
            FaultKind::LeaderChurn => (Fault::Kill { nodes: targets }, self.length(DOWNTIME_S)),
            kind @ (FaultKind::Wipe | FaultKind::Corrupt) => {
                let damage = if kind == FaultKind::Wipe {
                    Damage::Wipe
                } else {
                    Damage::Corrupt
                };
                let node = targets[0].clone();
                (Fault::Disk { node, damage }, CORRUPT_WINDOW)
            }
            FaultKind::Truncate => {
                let node = targets[0].clone();
                let keep = (self.rng.random_range(0.0..1.0f64) * 1000.0).floor() / 1000.0;
                let fault = Fault::Disk {
                    node,
                    damage: Damage::Truncate { keep },
                };
                (fault, CORRUPT_WINDOW)
            }
        }
    }

    fn length(&mut self, range: Range<f64>) -> Duration {
        Duration::from_millis((self.rng.random_range(range) * 1000.0) as u64)
    }

    /// The nodes the run's target names now, sorted.
    fn targets(&mut self) -> Vec<String> {
        if self.target == FaultTarget::Leader {
            let leaders: Vec<String> = self.leaders.borrow().values().cloned().collect();
            if let Some(leader) = leaders.choose(&mut self.rng) {
                return vec![leader.clone()];
            }
        }
        let mut shuffled = self.nodes.clone();
        shuffled.shuffle(&mut self.rng);
        sorted(&shuffled[..self.target.count(shuffled.len())])
    }

    fn partition(&mut self, targets: Vec<String>) -> Fault {
        let n = self.nodes.len();
        let mut shapes = vec![Shape::Halves, Shape::Isolate, Shape::OneWay];
        if n >= 3 {
            shapes.push(Shape::Bridge);
        }
        if n >= 4 {
            shapes.push(Shape::Ring);
        }
        let shape = *shapes.choose(&mut self.rng).expect("shapes is never empty");
        let mut ring = self.nodes.clone();
        ring.shuffle(&mut self.rng);
        // A target of every node isolates nobody: take one of them instead.
        let side = if targets.len() >= n {
            vec![ring[0].clone()]
        } else {
            targets
        };
        let rest: Vec<String> = self.nodes.iter().filter(|x| !side.contains(x)).cloned().collect();
        let cuts = match shape {
            Shape::Halves => {
                let (a, b) = ring.split_at(n / 2);
                both_ways(a, b)
            }
            Shape::Isolate => both_ways(&side, &rest),
            Shape::OneWay => side
                .iter()
                .flat_map(|x| rest.iter().map(move |y| (x.clone(), y.clone())))
                .collect(),
            Shape::Bridge => {
                // ring[0] is the bridge; the others split in two halves it alone joins.
                let others = &ring[1..];
                let (a, b) = others.split_at(others.len() / 2);
                both_ways(a, b)
            }
            Shape::Ring => {
                // Each node keeps the nodes within `reach` places of it round the ring,
                // which with itself is a majority; farther links are cut.
                let reach = (n / 2).div_ceil(2);
                let mut cuts = Vec::new();
                for i in 0..n {
                    for j in 0..n {
                        let d = i.abs_diff(j).min(n - i.abs_diff(j));
                        if i != j && d > reach {
                            cuts.push((ring[i].clone(), ring[j].clone()));
                        }
                    }
                }
                cuts
            }
        };
        let mut cuts = cuts;
        cuts.sort();
        Fault::Partition { shape, cuts }
    }

    fn start(&mut self, act: &mut dyn Actuator, fault: &Fault, now: Duration, recorder: &mut Recorder) {
        match fault {
            Fault::Kill { nodes } => {
                for node in nodes {
                    let i = self.index(node);
                    self.hosts[i].kills += 1;
                    self.hosts[i].stopped_at = None;
                    act.crash(node);
                }
            }
            Fault::Restart { nodes } => {
                for node in nodes {
                    let i = self.index(node);
                    if self.hosts[i].kills == 0 && act.is_running(node) {
                        act.bounce(node);
                    }
                }
            }
            Fault::Disk { node, damage } => {
                let i = self.index(node);
                act.damage(i, Some(*damage));
                // Corruption at rest shows when the data is read back: at recovery.
                if damage.at_rest() && self.hosts[i].kills == 0 && act.is_running(node) {
                    act.bounce(node);
                }
            }
            Fault::Pause { .. } | Fault::Partition { .. } | Fault::Packet { .. } => {}
        }
        let (name, _) = fault.names();
        record(recorder, now, name, fault);
        tracing::info!(fault = %serde_json::to_string(fault).unwrap_or_default(), "nemesis: {name}");
    }

    fn end(&mut self, act: &mut dyn Actuator, fault: &Fault, now: Duration, recorder: &mut Recorder) {
        match fault {
            Fault::Kill { nodes } => {
                for node in nodes {
                    let i = self.index(node);
                    self.hosts[i].kills -= 1;
                    if self.hosts[i].kills == 0 {
                        act.bounce(node);
                    }
                }
            }
            Fault::Disk { node, .. } => {
                let i = self.index(node);
                act.damage(i, None);
            }
            Fault::Restart { .. } | Fault::Pause { .. } | Fault::Partition { .. } | Fault::Packet { .. } => {}
        }
        if let (_, Some(name)) = fault.names() {
            record(recorder, now, name, fault);
            tracing::info!("nemesis: {name}");
        }
    }

    fn index(&self, node: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n == node)
            .expect("schedules are validated against the cluster's hosts")
    }
}

fn record(recorder: &mut Recorder, now: Duration, name: &str, fault: &Fault) {
    let value = serde_json::to_value(fault).expect("faults serialise");
    recorder.record(now, OpType::Info, Process::nemesis(), name, value, None);
}

/// Every link between a node of `a` and a node of `b`, cut in both directions.
fn both_ways(a: &[String], b: &[String]) -> Vec<(String, String)> {
    let mut cuts = Vec::new();
    for x in a {
        for y in b {
            cuts.push((x.clone(), y.clone()));
            cuts.push((y.clone(), x.clone()));
        }
    }
    cuts
}

fn secs(s: f64) -> Duration {
    Duration::from_millis((s * 1000.0) as u64)
}

fn sorted(nodes: &[String]) -> Vec<String> {
    let mut nodes = nodes.to_vec();
    nodes.sort();
    nodes
}

#[cfg(test)]
mod tests;
