//! The nemesis: injects the faults of the run's package on a seeded schedule, records each
//! as an `info` op of process `nemesis`, and heals everything when the fault phase ends.

use std::time::Duration;

use checker::{OpType, Process};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::recorder::Recorder;
use crate::spec::{FaultKind, TestSpec};

/// How long a killed host stays down, simulated seconds.
const DOWNTIME_S: std::ops::Range<f64> = 1.0..5.0;

/// The fault-injecting process of a run.
pub struct Nemesis {
    rng: ChaCha8Rng,
    kill: bool,
    interval_s: f64,
    nodes: Vec<String>,
    next_fault_at: Duration,
    /// Killed hosts and when they come back.
    down: Vec<(String, Duration)>,
}

impl Nemesis {
    /// A nemesis for `spec`, acting on the broker hosts `nodes`, driven by `seed`.
    pub fn new(spec: &TestSpec, nodes: Vec<String>, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let interval_s = spec.nemesis_interval_s;
        let first = Duration::from_secs_f64(interval_s * rng.random_range(0.5..1.5));
        Self {
            rng,
            kill: spec.nemesis.has(FaultKind::Kill),
            interval_s,
            nodes,
            next_fault_at: first,
            down: Vec::new(),
        }
    }

    /// Called after every simulation step of the fault phase.
    pub fn step(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration, recorder: &mut Recorder) {
        let (back, still_down): (Vec<_>, Vec<_>) = self.down.drain(..).partition(|(_, until)| now >= *until);
        self.down = still_down;
        for (node, _) in back {
            self.restart(sim, &node, now, recorder);
        }
        if !self.kill || now < self.next_fault_at || !self.down.is_empty() {
            return;
        }
        let node = self.nodes[self.rng.random_range(0..self.nodes.len())].clone();
        sim.crash(node.as_str());
        recorder.record(now, OpType::Info, Process::nemesis(), "kill", json!([node]), None);
        tracing::info!(%node, "nemesis: killed");
        let downtime = Duration::from_secs_f64(self.rng.random_range(DOWNTIME_S));
        self.down.push((node, now + downtime));
        let gap = Duration::from_secs_f64(self.interval_s * self.rng.random_range(0.5..1.5));
        self.next_fault_at = now + downtime + gap;
    }

    /// Ends every fault: restarts each host still down.
    pub fn heal(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration, recorder: &mut Recorder) {
        for (node, _) in std::mem::take(&mut self.down) {
            self.restart(sim, &node, now, recorder);
        }
        tracing::info!("nemesis: healed");
    }

    fn restart(&mut self, sim: &mut turmoil::Sim<'_>, node: &str, now: Duration, recorder: &mut Recorder) {
        sim.bounce(node);
        recorder.record(
            now,
            OpType::Info,
            Process::nemesis(),
            "start",
            json!([node]),
            None,
        );
        tracing::info!(%node, "nemesis: restarted");
    }
}
