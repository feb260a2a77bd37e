//! One run: build the simulated cluster, drive the workload under faults, heal, run the
//! final reads, then judge the history.
//!
//! Phases, in order: faults (workload + nemesis until the time limit); heal (repair every
//! link, end pauses and disk damage, restart every host that is down); recover (wait,
//! within the recovery budget, until every node answers and they agree on who leads what);
//! final reads (a drain, or every key read from the start, within what is left of the
//! budget); check.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use broker::{Inspector, Limits, Seams, SeededEntropy, Unobserved};
use checker::{History, Op, OpType, Process, Report};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tracing::Instrument;
use workloads::{Generator, Registration, WorkloadClient};

mod real;

pub use real::run_real;
pub(crate) use real::{interrupted, RealCluster};

use crate::monitor::Monitors;
use crate::nemesis::{LeaderView, Nemesis, Schedule, SimFaults};
use crate::probe;
use crate::recorder::Recorder;
use crate::seams::{DiskFaults, LocalSpawner, SimDisk, SimNetwork};
use crate::simlog::DriverClock;
use crate::spec::{derive_seed, TestSpec};
use crate::systems::{NodeLayout, Reach, System};

/// Room in each simulated socket and listener backlog for `concurrency` clients: the
/// default 64 up to 16 clients (so their runs replay as before), four per client above.
fn tcp_capacity(concurrency: usize) -> usize {
    (4 * concurrency).max(64)
}

/// Where each simulated node keeps its data.
const DATA_DIR: &str = "/data";
/// Simulated time between checks of a waiting process.
const POLL: Duration = Duration::from_millis(10);
/// How long the final reads wait after healing beyond the brokers' idle timeout, by when
/// deliveries held by connections the faults cut off are back in their queues. Reading
/// earlier would measure messages in flight, not the healed state.
const SETTLE_MARGIN: Duration = Duration::from_millis(1_000);
/// Sub-seed streams: each consumer of randomness draws from its own.
const STREAM_GENERATOR: u64 = 1;
const STREAM_NEMESIS: u64 = 2;
const STREAM_STAGGER: u64 = 3;
const STREAM_BROKER: u64 = 4;
const STREAM_DISK: u64 = 6;
/// The host that asks the cluster who leads what, for the `leader` target.
const PROBE_HOST: &str = "probe";
/// How often the probe asks.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Why a run could not be carried out (as opposed to a verdict about the system).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The parameters make no sense.
    #[error("invalid test: {0}")]
    Spec(String),
    /// The simulation itself failed (a host's software returned an error).
    #[error("simulation failed at {at:?}: {message}")]
    Simulation {
        /// Simulated time of the failure.
        at: Duration,
        /// What failed.
        message: String,
    },
    /// The history could not be written.
    #[error("writing the history: {0}")]
    HistoryWrite(std::io::Error),
    /// The recorded history breaks the op model: a harness bug.
    #[error("recorded history is malformed (harness bug): {0}")]
    HistoryShape(checker::HistoryError),
}

// By hand, not `#[from]`: the message shows the cause, which as a `source` too would print
// twice in an error chain.
impl From<checker::HistoryError> for HarnessError {
    fn from(e: checker::HistoryError) -> Self {
        HarnessError::HistoryShape(e)
    }
}

/// Whether the cluster came back after healing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Liveness {
    /// True when the cluster agreed on its leaders again and the final reads completed,
    /// within the recovery budget.
    pub recovered: bool,
    /// Simulated seconds from healing until every node answered and agreed on the leaders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_after_s: Option<f64>,
    /// What did not recover, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Every operation, in order, with invocations paired to completions.
    pub history: History,
    /// The checker's verdict.
    pub report: Report,
    /// Whether the cluster recovered after healing.
    pub liveness: Liveness,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Every fault that happened, replayable with `--schedule`.
    pub schedule: Schedule,
    /// Writes (TCP segments) the simulated network carried.
    pub messages: u64,
}

impl RunOutcome {
    /// `tumult`'s exit code: 1 if an anomaly was found, else 4 if the cluster never
    /// recovered, else 0 valid or 2 unknown.
    pub fn exit_code(&self) -> i32 {
        match self.report.valid {
            checker::Validity::False => 1,
            _ if !self.liveness.recovered => 4,
            valid => valid.exit_code(),
        }
    }
}

/// State the driver loop shares with the client processes (all on one thread).
#[derive(Default)]
struct Phases {
    healed: Cell<bool>,
    workers_running: Cell<usize>,
    /// Operations started so far, against the run's ops limit.
    ops_started: Cell<u64>,
    /// When healing ended, and how long the cluster took to agree on its leaders after it.
    healed_at: Cell<Option<Duration>>,
    recovered_after: Cell<Option<Duration>>,
}

type Shared<T> = Rc<RefCell<T>>;

/// Runs `spec` with the registered workload it names, writing the history to
/// `history_out` as it goes.
pub fn run(
    spec: &TestSpec,
    history_out: Box<dyn Write>,
    clock: &DriverClock,
) -> Result<RunOutcome, HarnessError> {
    let registration = spec.registration().map_err(HarnessError::Spec)?;
    run_with(spec, &registration, history_out, clock)
}

/// Runs `spec` with `registration`'s workload (one not in this build's registry, say),
/// writing the history to `history_out` as it goes.
pub fn run_with(
    spec: &TestSpec,
    registration: &Registration,
    history_out: Box<dyn Write>,
    clock: &DriverClock,
) -> Result<RunOutcome, HarnessError> {
    run_observed(spec, registration, history_out, clock, &|_| {})
}

/// Where a run is, for a progress display: reported every quarter of a simulated second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Simulated time so far.
    pub simulated: Duration,
    /// The faults phase's length (the rest is healing, recovery and final reads).
    pub time_limit: Duration,
    /// Client operations started so far.
    pub ops: u64,
    /// Whether the faults phase is over.
    pub healed: bool,
}

/// How often progress is reported, in simulated time.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Everything [`run_observed`] refuses before it starts: the workload for this mode, the
/// parameters, the schedule file. Called before a run directory is made, so that a
/// refused test leaves nothing behind.
pub fn preflight(spec: &TestSpec, registration: &Registration) -> Result<(), HarnessError> {
    spec.build_workload_of(registration).map_err(HarnessError::Spec)?;
    spec.validate_without_workload().map_err(HarnessError::Spec)?;
    let system = spec.system_for(registration).map_err(HarnessError::Spec)?;
    if let Some(path) = &spec.schedule {
        let nodes: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
        let schedule = Schedule::load(path, &nodes).map_err(|e| HarnessError::Spec(e.to_string()))?;
        if let Some(why) = schedule
            .real_refusal()
            .filter(|_| spec.runtime == crate::Runtime::Real)
        {
            return Err(HarnessError::Spec(format!("{}: {why}", path.display())));
        }
    }
    if spec.runtime == crate::Runtime::Real {
        crate::real::require(system.as_ref()).map_err(HarnessError::Spec)?;
    }
    Ok(())
}

/// [`run_with`], calling `progress` as the run goes. The callback sees the driver loop,
/// outside the simulated hosts: it cannot change the run.
pub fn run_observed(
    spec: &TestSpec,
    registration: &Registration,
    history_out: Box<dyn Write>,
    clock: &DriverClock,
    progress: &dyn Fn(Progress),
) -> Result<RunOutcome, HarnessError> {
    // run_on refuses a system that cannot serve the run.
    let system = crate::systems::find(&spec.system).map_err(HarnessError::Spec)?;
    run_on(spec, system, registration, history_out, clock, progress)
}

/// [`run_observed`] against `system`, which need not be in this build's registry (a
/// system of a user's own, or one wrapped to plant a fault in its clients).
pub fn run_on(
    spec: &TestSpec,
    system: Rc<dyn System>,
    registration: &Registration,
    history_out: Box<dyn Write>,
    clock: &DriverClock,
    progress: &dyn Fn(Progress),
) -> Result<RunOutcome, HarnessError> {
    if spec.runtime != crate::Runtime::Sim {
        return Err(HarnessError::Spec(
            "this runs the simulation; a run on real processes goes through run_and_store".into(),
        ));
    }
    let mut spec = spec.clone();
    spec.workload = registration.name.to_string();
    spec.system = system.name().to_string();
    let spec = &spec;
    let workload = spec.build_workload_of(registration).map_err(HarnessError::Spec)?;
    spec.validate_without_workload().map_err(HarnessError::Spec)?;
    if let Some(why) = crate::systems::refusal(system.as_ref(), spec, registration.family) {
        return Err(HarnessError::Spec(why));
    }
    let nodes: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
    let schedule = match &spec.schedule {
        Some(path) => Some(Schedule::load(path, &nodes).map_err(|e| HarnessError::Spec(e.to_string()))?),
        None => None,
    };
    let recorder: Shared<Recorder> = Rc::new(RefCell::new(Recorder::new(history_out)));
    let phases = Rc::new(Phases::default());
    let time_limit = Duration::from_secs(spec.time_limit_s);
    // After the faults: the recovery budget, the settling, then the final reads, which
    // may run up to ten budgets while they keep making progress.
    let deadline = time_limit + Duration::from_secs(12 * spec.recovery_s) + Duration::from_secs(20);

    let mut sim = turmoil::Builder::new()
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .simulation_duration(deadline + Duration::from_secs(60))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(spec.latency.min_ms))
        .max_message_latency(Duration::from_millis(spec.latency.max_ms))
        .rng_seed(spec.seed)
        // turmoil panics when more connections wait on a listener than a socket holds
        // (64 by default); every client may reconnect to a node at once after a fault.
        .tcp_capacity(tcp_capacity(spec.concurrency))
        .build();

    let network = SimNetwork::default();
    let monitors: Option<Arc<Monitors>> = spec
        .monitors
        .then(|| Arc::new(Monitors::new(spec.kafka.unclean_election)));
    let inspector: Arc<dyn Inspector> = match &monitors {
        Some(monitors) => Arc::clone(monitors) as Arc<dyn Inspector>,
        None => Arc::new(Unobserved),
    };
    let addrs: Vec<String> = nodes.iter().map(|n| format!("{n}:{}", system.port())).collect();
    let mut disks = Vec::new();
    for i in 0..nodes.len() {
        let layout = NodeLayout {
            id: i + 1,
            listen: format!("0.0.0.0:{}", system.port()),
            addrs: addrs.clone(),
            data_dir: DATA_DIR.into(),
            seed: derive_seed(spec.seed, STREAM_BROKER + i as u64),
        };
        let faults = DiskFaults::new(derive_seed(derive_seed(spec.seed, STREAM_DISK), i as u64));
        add_node(
            &mut sim,
            spec,
            &system,
            layout,
            faults.clone(),
            &network,
            &inspector,
        );
        disks.push(faults);
    }
    let reach = Reach {
        network: Arc::new(network.clone()),
        nodes: addrs,
        request_timeout: Duration::from_millis(spec.request_timeout_ms),
    };
    let names = workload.names();
    let crew = Crew::new(
        spec,
        workload.as_ref(),
        &system,
        &reach,
        &recorder,
        &phases,
        Clock::Sim,
        BTreeMap::new(),
    )?;
    let leaders = Rc::clone(&crew.leaders);
    let mut clients: Vec<String> = (0..spec.concurrency).map(|w| format!("c{w}")).collect();
    if let Some(probe) = crew.probe {
        sim.client(PROBE_HOST, probe.run());
        clients.push(PROBE_HOST.to_string());
    }
    for (worker, ctx) in crew.workers.into_iter().enumerate() {
        let span = tracing::info_span!("process", worker);
        sim.client(format!("c{worker}"), ctx.run().instrument(span));
    }

    let mut sim_faults = SimFaults::new(spec, &nodes, &clients, disks, monitors.clone());
    let mut nemesis = Nemesis::new(
        spec,
        nodes,
        leaders,
        schedule,
        derive_seed(spec.seed, STREAM_NEMESIS),
    );
    tracing::info!(seed = spec.seed, "phase: faults");
    let mut finished = false;
    let mut next_progress = Duration::ZERO;
    while !finished {
        // A panic inside a simulated host is a broker bug: report it as this run's error
        // rather than unwinding through the harness.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.step()));
        finished = match step {
            Ok(Ok(finished)) => finished,
            Ok(Err(e)) => {
                return Err(HarnessError::Simulation {
                    at: sim.elapsed(),
                    message: e.to_string(),
                })
            }
            Err(panic) => {
                return Err(HarnessError::Simulation {
                    at: sim.elapsed(),
                    message: format!("a host panicked: {}", panic_message(&panic)),
                })
            }
        };
        let now = sim.elapsed();
        clock.set(now);
        if now >= next_progress {
            next_progress = now + PROGRESS_EVERY;
            progress(Progress {
                simulated: now,
                time_limit,
                ops: phases.ops_started.get(),
                healed: phases.healed.get(),
            });
        }
        nemesis_phase(
            &mut nemesis,
            &mut sim_faults.on(&mut sim),
            now,
            time_limit,
            &phases,
            &recorder,
        );
        if now >= deadline {
            break;
        }
    }
    let simulated = sim.elapsed();
    drop(sim);
    conclude(Concluded {
        recorder,
        workload: workload.as_ref(),
        finished,
        phases: &phases,
        names: &names,
        spec,
        schedule: nemesis.schedule(),
        simulated,
        messages: network.writes(),
        // A mode with nothing to watch (no replicated state) adds nothing to the verdict.
        monitors: monitors.map(|m| m.report()).filter(|r| r.checked > 0),
    })
}

/// A run's client side, in either runtime: one worker per thread of work sharing the
/// generator, stagger and recorder, and (for the `leader` target) the probe that keeps
/// the nemesis's view of who leads what fresh.
struct Crew {
    probe: Option<Probe>,
    workers: Vec<Worker>,
    leaders: LeaderView,
}

impl Crew {
    /// `host_names` maps the host part of a node's address to its name (`n1`, ...) where
    /// the two differ.
    #[allow(clippy::too_many_arguments)]
    fn new(
        spec: &TestSpec,
        workload: &dyn workloads::Workload,
        system: &Rc<dyn System>,
        reach: &Reach,
        recorder: &Shared<Recorder>,
        phases: &Rc<Phases>,
        clock: Clock,
        host_names: BTreeMap<String, String>,
    ) -> Result<Self, HarnessError> {
        let generator: Shared<Box<dyn Generator>> = Rc::new(RefCell::new(
            workload.generator(derive_seed(spec.seed, STREAM_GENERATOR)),
        ));
        let stagger = Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(derive_seed(
            spec.seed,
            STREAM_STAGGER,
        ))));
        let names = workload.names();
        let leaders: LeaderView = Rc::default();
        // The nemesis needs to know the leaders to strike them: for a `leader` target, and
        // for leader churn.
        let watch_leaders = spec.target == crate::FaultTarget::Leader
            || spec.nemesis.0.contains(&crate::FaultKind::LeaderChurn);
        let probe = watch_leaders.then(|| Probe {
            system: Rc::clone(system),
            reach: reach.clone(),
            names: names.clone(),
            leaders: Rc::clone(&leaders),
            phases: Rc::clone(phases),
            host_names,
        });
        phases.workers_running.set(spec.concurrency);
        let clients = system.clients(reach);
        let mut workers = Vec::with_capacity(spec.concurrency);
        for worker in 0..spec.concurrency {
            let client = workload.client(clients.as_ref(), worker).ok_or_else(|| {
                HarnessError::Spec(format!(
                    "system {} has no client for workload {}",
                    system.name(),
                    spec.workload
                ))
            })?;
            workers.push(Worker {
                id: worker,
                spec: spec.clone(),
                client,
                final_read: workload.final_read(),
                names: names.clone(),
                system: Rc::clone(system),
                reach: reach.clone(),
                generator: Rc::clone(&generator),
                stagger: Rc::clone(&stagger),
                recorder: Rc::clone(recorder),
                phases: Rc::clone(phases),
                clock,
            });
        }
        Ok(Self {
            probe,
            workers,
            leaders,
        })
    }
}

/// The nemesis's part of one step of the driver loop, in either runtime: faults until the
/// time limit, then healing once, then keeping nodes up.
fn nemesis_phase(
    nemesis: &mut Nemesis,
    act: &mut dyn crate::nemesis::Actuator,
    now: Duration,
    time_limit: Duration,
    phases: &Phases,
    recorder: &Shared<Recorder>,
) {
    if now < time_limit {
        nemesis.step(act, now, &mut recorder.borrow_mut());
    } else if !phases.healed.get() {
        tracing::info!("phase: heal");
        nemesis.heal(act, now, &mut recorder.borrow_mut());
        phases.healed.set(true);
        phases.healed_at.set(Some(now));
        tracing::info!("phase: recover");
    } else {
        nemesis.supervise(act, now);
    }
}

/// What a run hands over when its clients are done.
struct Concluded<'a> {
    recorder: Shared<Recorder>,
    workload: &'a dyn workloads::Workload,
    /// Whether every client finished (the final reads included) before the deadline.
    finished: bool,
    phases: &'a Phases,
    names: &'a [String],
    spec: &'a TestSpec,
    schedule: Schedule,
    simulated: Duration,
    messages: u64,
    /// What the invariant monitors found, where they ran.
    monitors: Option<checker::MonitorReport>,
}

/// The history, liveness and verdict of a run whose clients are done.
fn conclude(run: Concluded<'_>) -> Result<RunOutcome, HarnessError> {
    let Concluded {
        recorder,
        workload,
        finished,
        phases,
        names,
        spec,
        schedule,
        simulated,
        messages,
        monitors,
    } = run;
    let recorder = Rc::try_unwrap(recorder)
        .ok()
        .expect("every process has finished with the recorder")
        .into_inner();
    let ops = recorder.finish().map_err(HarnessError::HistoryWrite)?;
    let final_f = workload.final_read().f;
    let mut liveness = liveness_of(&ops, finished, final_f);
    liveness.recovered_after_s = phases.recovered_after.get().map(|d| d.as_secs_f64());
    if liveness.recovered && liveness.recovered_after_s.is_none() {
        liveness.recovered = false;
        liveness.detail = Some(format!(
            "the nodes never agreed on who leads {} within the {} s recovery budget",
            names.join(", "),
            spec.recovery_s
        ));
    }
    let history = History::from_ops(ops, &[])?;
    let checks = workload.checks();
    let mut report = checker::check_allowing(&history, checks.analyses, &checks.allowed);
    if let Some(monitors) = monitors {
        report.add_monitors(monitors);
    }
    tracing::info!(valid = ?report.valid, recovered = liveness.recovered, "phase: checked");
    Ok(RunOutcome {
        history,
        report,
        liveness,
        simulated,
        schedule,
        messages,
    })
}

/// Places node `node` in the simulation as a host that boots `system`'s node afresh on
/// every start, on the simulated network and disk.
fn add_node(
    sim: &mut turmoil::Sim<'_>,
    spec: &TestSpec,
    system: &Rc<dyn System>,
    node: NodeLayout,
    disk_faults: DiskFaults,
    network: &SimNetwork,
    inspector: &Arc<dyn Inspector>,
) {
    let inspector = Arc::clone(inspector);
    let network = network.clone();
    let name = format!("n{}", node.id);
    let spec = spec.clone();
    let system = Rc::clone(system);
    let boots = Cell::new(0u64);
    sim.host(name.as_str(), move || {
        // Each boot draws a fresh but reproducible random stream.
        let boot = boots.get();
        boots.set(boot + 1);
        let seams = Seams {
            network: Arc::new(network.clone()),
            disk: Arc::new(SimDisk::new(disk_faults.clone(), node.data_dir.clone())),
            spawner: Arc::new(LocalSpawner),
            entropy: Box::new(SeededEntropy::new(derive_seed(node.seed, boot))),
            inspector: Arc::clone(&inspector),
        };
        let task = system.in_process(&spec, &node, seams);
        async move {
            // A node that stops is a process that exited: the nemesis restarts it, as a
            // service manager would. Returning an error would end the whole simulation.
            if let Some(task) = task {
                task.await;
            }
            Ok(())
        }
    });
}

fn liveness_of(ops: &[Op], finished: bool, final_f: &str) -> Liveness {
    let drained = ops.iter().any(|op| op.f == final_f && op.kind == OpType::Ok);
    if drained && finished {
        return Liveness {
            recovered: true,
            recovered_after_s: None,
            detail: None,
        };
    }
    let detail = ops
        .iter()
        .rev()
        .find(|op| op.f == final_f && op.kind != OpType::Invoke)
        .and_then(|op| op.error.as_ref())
        .map(|e| e.to_string())
        .unwrap_or_else(|| format!("the final {final_f} never completed"));
    Liveness {
        recovered: false,
        recovered_after_s: None,
        detail: Some(detail),
    }
}

/// One client process's thread of work.
struct Worker {
    id: usize,
    spec: TestSpec,
    client: Box<dyn WorkloadClient>,
    /// The final read's invocation, from the workload.
    final_read: workloads::Invocation,
    /// The queues or partitions the workload uses, to ask the cluster who leads them.
    names: Vec<String>,
    /// The system and where its cluster is, for asking who leads what.
    system: Rc<dyn System>,
    reach: Reach,
    generator: Shared<Box<dyn Generator>>,
    stagger: Shared<ChaCha8Rng>,
    recorder: Shared<Recorder>,
    phases: Rc<Phases>,
    clock: Clock,
}

/// Where a run's times come from: the simulation's clock, or the wall clock since a real
/// run started.
#[derive(Debug, Clone, Copy)]
enum Clock {
    Sim,
    Wall(std::time::Instant),
}

impl Clock {
    fn now(self) -> Duration {
        match self {
            Clock::Sim => turmoil::sim_elapsed().unwrap_or_default(),
            Clock::Wall(started) => started.elapsed(),
        }
    }
}

impl Worker {
    async fn run(mut self) -> turmoil::Result {
        let time_limit = Duration::from_secs(self.spec.time_limit_s);
        let mut process = self.id as u64;
        // Mean pause between one process's ops that yields the target rate overall;
        // drawn uniformly from [0, 2*mean) as Jepsen's stagger does.
        let mean_pause_s = self.spec.concurrency as f64 / self.spec.rate;
        let ops_limit = self.spec.ops_limit.unwrap_or(u64::MAX);
        while self.clock.now() < time_limit && self.phases.ops_started.get() < ops_limit {
            self.phases.ops_started.set(self.phases.ops_started.get() + 1);
            let op = self.generator.borrow_mut().next_op();
            self.record(OpType::Invoke, process, op.f, op.value.clone(), None);
            let done = self.client.invoke(&op).await;
            self.record(done.kind, process, op.f, done.value, done.error);
            if done.kind == OpType::Info {
                // Jepsen's rule: a process with an unknown outcome is retired, and the
                // thread carries on as a fresh process with a fresh connection.
                process += self.spec.concurrency as u64;
                self.client.reset();
            }
            let pause = self.stagger.borrow_mut().random_range(0.0..2.0 * mean_pause_s);
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
        }
        self.phases
            .workers_running
            .set(self.phases.workers_running.get() - 1);
        if self.id == 0 {
            self.final_drain(process).await;
        }
        Ok(())
    }

    async fn final_drain(&mut self, process: u64) {
        while !self.phases.healed.get() || self.phases.workers_running.get() > 0 {
            tokio::time::sleep(POLL).await;
        }
        let healed_at = self.clock.now();
        let budget = Duration::from_secs(self.spec.recovery_s);
        self.await_recovery(healed_at + budget).await;
        let idle_timeout = Duration::from_millis(Limits::default().idle_timeout_ms);
        tokio::time::sleep(idle_timeout + SETTLE_MARGIN).await;
        self.client.reset();
        let final_f = self.final_read.f;
        let invoke_value = self.final_read.value.clone();
        self.record(OpType::Invoke, process, final_f, invoke_value, None);
        // The final reads have a budget of their own: a long queue drains slowly, and that
        // is not the cluster failing to recover.
        let done = self.client.final_read(budget).await;
        self.record(done.kind, process, final_f, done.value, done.error);
    }

    /// Waits until every node answers and they agree on who leads each queue or partition,
    /// or until `deadline`.
    async fn await_recovery(&self, deadline: Duration) {
        let started = self.clock.now();
        while self.clock.now() < deadline {
            let answers = self.system.leaders(&self.reach, &self.names).await;
            if probe::agreed(&answers) {
                let after = self.clock.now().saturating_sub(started);
                self.phases.recovered_after.set(Some(after));
                tracing::info!(after_s = after.as_secs_f64(), "phase: recovered; final reads");
                return;
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        tracing::warn!("phase: the cluster did not recover within the budget; final reads anyway");
    }

    fn record(&self, kind: OpType, process: u64, f: &str, value: Value, error: Option<String>) {
        self.recorder
            .borrow_mut()
            .record(self.clock.now(), kind, Process::Client(process), f, value, error);
    }
}

/// Keeps the nemesis's view of who leads what fresh, for the `leader` target, until the
/// fault phase ends.
struct Probe {
    system: Rc<dyn System>,
    reach: Reach,
    names: Vec<String>,
    leaders: LeaderView,
    phases: Rc<Phases>,
    /// Node names by the host part of their address, where they differ (a real run's
    /// nodes answer with their IP addresses; the nemesis names them `n1`, ...).
    host_names: BTreeMap<String, String>,
}

impl Probe {
    async fn run(self) -> turmoil::Result {
        while !self.phases.healed.get() {
            let answers = self.system.leaders(&self.reach, &self.names).await;
            let view = probe::consensus(&answers);
            if !view.is_empty() {
                let view: BTreeMap<String, String> = view
                    .into_iter()
                    .map(|(name, host)| {
                        let node = self.host_names.get(&host).cloned().unwrap_or(host);
                        (name, node)
                    })
                    .collect();
                // Said when it changes: what a `leader` target strikes can be read back.
                if *self.leaders.borrow() != view {
                    let said: Vec<String> =
                        view.iter().map(|(name, node)| format!("{name}={node}")).collect();
                    tracing::info!("leaders: {}", said.join(" "));
                }
                *self.leaders.borrow_mut() = view;
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        Ok(())
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}
