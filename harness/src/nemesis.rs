//! The nemesis: injects the faults of the run's package on a seeded schedule, records each
//! as an `info` op of process `nemesis`, and heals everything when the fault phase ends.
//! Faults run in lanes: by default one lane for the whole package (one fault at a time, the
//! next scheduled after the previous ends); with `--overlap` one lane per fault kind, each on
//! its own schedule, so that a kill can strike during a partition.

use std::ops::Range;
use std::time::Duration;

use checker::{OpType, Process};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::recorder::Recorder;
use crate::spec::{FaultKind, FaultTarget, TestSpec};

/// How long a killed host stays down, simulated seconds.
const DOWNTIME_S: Range<f64> = 1.0..5.0;
/// How long a partition lasts, simulated seconds.
const PARTITION_S: Range<f64> = 2.0..8.0;

/// A fault in force, and when it ends.
enum Active {
    Killed {
        nodes: Vec<String>,
        until: Duration,
    },
    Partitioned {
        sides: (Vec<String>, Vec<String>),
        until: Duration,
    },
}

impl Active {
    fn until(&self) -> Duration {
        match self {
            Active::Killed { until, .. } | Active::Partitioned { until, .. } => *until,
        }
    }
}

/// One schedule of faults: at most one of its faults is active at a time.
struct Lane {
    kinds: Vec<FaultKind>,
    next_fault_at: Duration,
    active: Option<Active>,
}

/// The fault-injecting process of a run.
pub struct Nemesis {
    rng: ChaCha8Rng,
    lanes: Vec<Lane>,
    target: FaultTarget,
    interval_s: f64,
    nodes: Vec<String>,
}

impl Nemesis {
    /// A nemesis for `spec`, acting on the broker hosts `nodes`, driven by `seed`.
    pub fn new(spec: &TestSpec, nodes: Vec<String>, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
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
                next_fault_at: Duration::from_secs_f64(interval_s * rng.random_range(0.5..1.5)),
                active: None,
            })
            .collect();
        Self {
            rng,
            lanes,
            target: spec.target,
            interval_s,
            nodes,
        }
    }

    /// Called after every simulation step of the fault phase.
    pub fn step(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration, recorder: &mut Recorder) {
        for lane in 0..self.lanes.len() {
            if let Some(active) = self.lanes[lane].active.take_if(|a| now >= a.until()) {
                self.end(sim, active, now, recorder);
                let gap = Duration::from_secs_f64(self.interval_s * self.rng.random_range(0.5..1.5));
                self.lanes[lane].next_fault_at = now + gap;
            }
            let l = &self.lanes[lane];
            if l.active.is_some() || l.kinds.is_empty() || now < l.next_fault_at {
                continue;
            }
            let kind = l.kinds[self.rng.random_range(0..l.kinds.len())];
            let active = match kind {
                FaultKind::Kill => self.kill(sim, now, recorder),
                FaultKind::Partition => self.partition(sim, now, recorder),
            };
            self.lanes[lane].active = Some(active);
        }
    }

    /// Ends every fault: restarts a host that is down, repairs every link.
    pub fn heal(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration, recorder: &mut Recorder) {
        for lane in 0..self.lanes.len() {
            if let Some(active) = self.lanes[lane].active.take() {
                self.end(sim, active, now, recorder);
            }
        }
        tracing::info!("nemesis: healed");
    }

    fn kill(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration, recorder: &mut Recorder) -> Active {
        let mut shuffled = self.nodes.clone();
        shuffled.shuffle(&mut self.rng);
        let nodes = sorted(&shuffled[..self.target.count(shuffled.len())]);
        for node in &nodes {
            sim.crash(node.as_str());
        }
        recorder.record(now, OpType::Info, Process::nemesis(), "kill", json!(nodes), None);
        tracing::info!(?nodes, "nemesis: killed");
        let until = now + Duration::from_secs_f64(self.rng.random_range(DOWNTIME_S));
        Active::Killed { nodes, until }
    }

    fn partition(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration, recorder: &mut Recorder) -> Active {
        let mut shuffled = self.nodes.clone();
        shuffled.shuffle(&mut self.rng);
        // Half the time isolate one node, otherwise random halves.
        let cut = if self.rng.random_bool(0.5) {
            1
        } else {
            shuffled.len() / 2
        };
        let (a, b) = shuffled.split_at(cut.max(1));
        let sides = (sorted(a), sorted(b));
        for x in &sides.0 {
            for y in &sides.1 {
                sim.partition(x.as_str(), y.as_str());
            }
        }
        let value = json!({ "sides": [sides.0, sides.1] });
        recorder.record(
            now,
            OpType::Info,
            Process::nemesis(),
            "start-partition",
            value,
            None,
        );
        tracing::info!(?sides, "nemesis: partitioned");
        let until = now + Duration::from_secs_f64(self.rng.random_range(PARTITION_S));
        Active::Partitioned { sides, until }
    }

    fn end(&mut self, sim: &mut turmoil::Sim<'_>, active: Active, now: Duration, recorder: &mut Recorder) {
        match active {
            Active::Killed { nodes, .. } => {
                for node in &nodes {
                    sim.bounce(node.as_str());
                }
                recorder.record(now, OpType::Info, Process::nemesis(), "start", json!(nodes), None);
                tracing::info!(?nodes, "nemesis: restarted");
            }
            Active::Partitioned { sides, .. } => {
                for x in &sides.0 {
                    for y in &sides.1 {
                        sim.repair(x.as_str(), y.as_str());
                    }
                }
                let value = json!({ "sides": [sides.0, sides.1] });
                recorder.record(
                    now,
                    OpType::Info,
                    Process::nemesis(),
                    "stop-partition",
                    value,
                    None,
                );
                tracing::info!("nemesis: partition healed");
            }
        }
    }
}

fn sorted(nodes: &[String]) -> Vec<String> {
    let mut nodes = nodes.to_vec();
    nodes.sort();
    nodes
}
