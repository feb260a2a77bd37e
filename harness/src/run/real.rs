//! The run loop on real processes: the same workers, nemesis and phases as the simulation,
//! on a tokio runtime of this thread, against `tumult-broker` nodes in network namespaces
//! of the run's own. Times are wall-clock since the run started. The nodes and the network
//! are removed on every way out: the drops of [`NodeProcess`] and [`RunNet`] run on success,
//! error and panic alike, and SIGINT or SIGTERM end the run through the same path.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use broker::TokioNetwork;
use tracing::Instrument;
use workloads::Registration;

use super::{
    conclude, nemesis_phase, Clock, Concluded, Crew, HarnessError, Phases, Progress, RunOutcome, Shared,
    PROBE_EVERY, PROGRESS_EVERY, STREAM_BROKER, STREAM_NEMESIS,
};
use crate::nemesis::{Nemesis, Schedule};
use crate::probe;
use crate::real::actuator::{RealActuator, STOP_BOUND};
use crate::real::net::RunNet;
use crate::real::node::{NodeCommand, NodeProcess};
use crate::real::RealError;
use crate::recorder::Recorder;
use crate::simlog::DriverClock;
use crate::spec::{derive_seed, TestSpec};
use crate::systems::{Cluster, Launch, NodeLayout, Reach, Shell, System};

/// How long a fresh cluster has to answer and agree on its leaders before the run starts.
const FORM_BUDGET: Duration = Duration::from_secs(30);
/// How often the nemesis looks at its schedule.
const NEMESIS_EVERY: Duration = Duration::from_millis(10);

/// Why a real run stopped early.
fn setup(message: impl std::fmt::Display) -> HarnessError {
    HarnessError::Spec(message.to_string())
}

/// A tag for this run's names: six hex digits from the process and the moment.
fn run_tag() -> String {
    // Runs side by side in one process (a sweep's jobs) may read the same clock tick: a
    // counter tells them apart, the pid tells processes apart.
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let drawn = DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    #[allow(clippy::disallowed_methods)] // names the run's namespaces; never reaches a simulation
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let process = u64::from(std::process::id()) << 32 | (drawn & 0xffff_ffff);
    format!("{:06x}", derive_seed(nanos, process) & 0xff_ffff)
}

/// The run's network under a tag of its own: a tag another run holds is drawn again.
fn create_net(nodes: usize) -> Result<RunNet, RealError> {
    let mut last = None;
    for _ in 0..8 {
        match RunNet::create(&run_tag(), nodes) {
            Err(RealError::TagInUse(tag)) => last = Some(tag),
            other => return other,
        }
    }
    Err(RealError::Setup(format!(
        "eight run tags in a row were in use (the last {}); tumult clean removes what dead runs left",
        last.unwrap_or_default()
    )))
}

/// Runs `spec` on real processes, keeping the nodes' data and logs under `dir/nodes/`;
/// `log_clock` carries the run's time to harness.log's lines.
pub fn run_real(
    spec: &TestSpec,
    registration: &Registration,
    dir: &Path,
    history_out: Box<dyn Write>,
    log_clock: &DriverClock,
    progress: &dyn Fn(Progress),
) -> Result<RunOutcome, HarnessError> {
    let mut spec = spec.clone();
    spec.workload = registration.name.to_string();
    let spec = &spec;
    let workload = spec.build_workload_of(registration).map_err(HarnessError::Spec)?;
    spec.validate_without_workload().map_err(HarnessError::Spec)?;
    // The prerequisites were checked by `preflight`, before the run directory was made.
    let system = spec.system_for(registration).map_err(HarnessError::Spec)?;
    let names: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
    let schedule = match &spec.schedule {
        Some(path) => Some(Schedule::load(path, &names).map_err(|e| setup(e.to_string()))?),
        None => None,
    };

    let mut cluster = RealCluster::start(spec, system.as_ref(), &dir.join("nodes"))?;
    // (Drops stop the nodes, then remove the network, on every way out from here.)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| setup(format!("cannot start the client runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&runtime, async {
        tokio::select! {
            outcome = drive(spec, system, workload, &mut cluster, schedule, history_out, log_clock, progress) => outcome,
            signal = interrupted() => Err(HarnessError::Simulation {
                at: Duration::ZERO,
                message: format!("interrupted by {signal}; the nodes and the network were removed"),
            }),
        }
    });
    cluster.stop();
    outcome
}

/// A real cluster of one system's nodes, each in a network namespace of the run's own.
/// Dropping it stops the nodes, then removes the network.
pub(crate) struct RealCluster {
    // Declared before `net`: fields drop in order, and the nodes must stop first.
    nodes: Vec<NodeProcess>,
    net: RunNet,
    layouts: Vec<NodeLayout>,
    nodes_dir: PathBuf,
}

impl RealCluster {
    /// Makes the network and starts `spec.nodes` nodes of `system`, each with its data
    /// directory and log under `nodes_dir`.
    pub(crate) fn start(
        spec: &TestSpec,
        system: &dyn System,
        nodes_dir: &Path,
    ) -> Result<Self, HarnessError> {
        let net = create_net(spec.nodes).map_err(setup)?;
        let addrs: Vec<String> = (1..=spec.nodes)
            .map(|i| format!("{}:{}", net.address(i), system.port()))
            .collect();
        let mut nodes = Vec::with_capacity(spec.nodes);
        let mut layouts = Vec::with_capacity(spec.nodes);
        for i in 1..=spec.nodes {
            let layout = NodeLayout {
                id: i,
                listen: addrs[i - 1].clone(),
                addrs: addrs.clone(),
                data_dir: nodes_dir.join(format!("n{i}")),
                seed: derive_seed(spec.seed, STREAM_BROKER + i as u64),
            };
            std::fs::create_dir_all(&layout.data_dir)
                .map_err(|e| setup(format!("cannot create {}: {e}", layout.data_dir.display())))?;
            let launch = system.launch(spec, &layout).map_err(setup)?;
            let command = NodeCommand {
                namespace: net.namespace(i),
                program: launch.program,
                args: launch.args,
                env: launch.env,
                log: nodes_dir.join(format!("n{i}.log")),
            };
            nodes.push(NodeProcess::start(command).map_err(setup)?);
            layouts.push(layout);
        }
        Ok(Self {
            nodes,
            net,
            layouts,
            nodes_dir: nodes_dir.to_path_buf(),
        })
    }

    /// Where clients reach its nodes, with `spec`'s request timeout.
    pub(crate) fn reach(&self, spec: &TestSpec) -> Reach {
        Reach {
            network: Arc::new(TokioNetwork),
            nodes: self.layouts.iter().map(|node| node.listen.clone()).collect(),
            request_timeout: Duration::from_millis(spec.request_timeout_ms),
        }
    }

    /// Makes the started nodes one cluster serving `names` ([`System::form`]), then waits
    /// until every node answers and they agree on who leads each name.
    pub(crate) async fn form(
        &self,
        spec: &TestSpec,
        system: &dyn System,
        reach: &Reach,
        names: &[String],
    ) -> Result<(), HarnessError> {
        let shell = NamespaceShell {
            net: &self.net,
            nodes_dir: &self.nodes_dir,
        };
        let cluster = Cluster {
            reach,
            nodes: &self.layouts,
            shell: &shell,
        };
        system
            .form(spec, &cluster, names)
            .await
            .map_err(|e| setup(format!("the cluster did not form: {e} (see nodes/*.log)")))?;
        for _ in 0..(FORM_BUDGET.as_millis() / PROBE_EVERY.as_millis()) {
            if probe::agreed(&system.leaders(reach, names).await) {
                return Ok(());
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        Err(setup(format!(
            "the cluster did not form within {} s: its nodes never all answered and agreed on who leads {} (see nodes/*.log)",
            FORM_BUDGET.as_secs(),
            names.join(", ")
        )))
    }

    /// Stops every node (a bounded wait for each), then removes the network.
    pub(crate) fn stop(mut self) {
        for node in &mut self.nodes {
            let _ = node.stop(STOP_BOUND);
        }
    }
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM), naming the signal.
pub(crate) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// The phases on a formed cluster: workers and nemesis until the time limit, heal,
/// recovery and final reads, then the check.
#[allow(clippy::too_many_arguments)]
async fn drive(
    spec: &TestSpec,
    system: std::rc::Rc<dyn System>,
    workload: Box<dyn workloads::Workload>,
    cluster: &mut RealCluster,
    schedule: Option<Schedule>,
    history_out: Box<dyn Write>,
    log_clock: &DriverClock,
    progress: &dyn Fn(Progress),
) -> Result<RunOutcome, HarnessError> {
    let reach = cluster.reach(spec);
    let names = workload.names();
    // The cluster forms before the clock starts: a real node needs a moment to boot.
    cluster.form(spec, system.as_ref(), &reach, &names).await?;
    #[allow(clippy::disallowed_methods)] // a real run's clock is the wall clock
    let clock = Clock::Wall(std::time::Instant::now());
    let recorder: Shared<Recorder> = Rc::new(RefCell::new(Recorder::new(history_out)));
    let phases = Rc::new(Phases::default());
    let host_names: BTreeMap<String, String> = (1..=spec.nodes)
        .map(|i| (cluster.net.address(i).to_string(), format!("n{i}")))
        .collect();
    let crew = Crew::new(
        spec,
        workload.as_ref(),
        &system,
        &reach,
        &recorder,
        &phases,
        clock,
        host_names,
    )?;
    let leaders = Rc::clone(&crew.leaders);
    if let Some(probe) = crew.probe {
        tokio::task::spawn_local(probe.run());
    }
    let workers: Vec<_> = crew
        .workers
        .into_iter()
        .enumerate()
        .map(|(worker, ctx)| {
            let span = tracing::info_span!("process", worker);
            tokio::task::spawn_local(ctx.run().instrument(span))
        })
        .collect();
    let node_names: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
    let data_dirs: Vec<PathBuf> = cluster.layouts.iter().map(|l| l.data_dir.clone()).collect();
    let mut nemesis = Nemesis::new(
        spec,
        node_names,
        leaders,
        schedule,
        derive_seed(spec.seed, STREAM_NEMESIS),
    );
    let time_limit = Duration::from_secs(spec.time_limit_s);
    let deadline = time_limit + Duration::from_secs(12 * spec.recovery_s) + Duration::from_secs(20);
    tracing::info!(seed = spec.seed, "phase: faults");
    let mut next_progress = Duration::ZERO;
    let finished = loop {
        if workers.iter().all(|w| w.is_finished()) {
            break true;
        }
        let now = clock.now();
        // harness.log stamps its lines with the run's time, wall-clock here.
        log_clock.set(now);
        if now >= deadline {
            break false;
        }
        if now >= next_progress {
            next_progress = now + PROGRESS_EVERY;
            progress(Progress {
                simulated: now,
                time_limit,
                ops: phases.ops_started.get(),
                healed: phases.healed.get(),
            });
        }
        let mut act = RealActuator {
            nodes: &mut cluster.nodes,
            net: &cluster.net,
            data_dirs: &data_dirs,
            system: system.as_ref(),
            mode: spec.mode,
        };
        nemesis_phase(&mut nemesis, &mut act, now, time_limit, &phases, &recorder);
        tokio::time::sleep(NEMESIS_EVERY).await;
    };
    for worker in workers {
        worker.abort();
    }
    // Aborted tasks drop their clones of the recorder when the runtime next runs them.
    for _ in 0..1000 {
        if Rc::strong_count(&recorder) == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    if Rc::strong_count(&recorder) > 1 {
        return Err(setup("a client task did not stop; the history cannot be closed"));
    }
    let elapsed = clock.now();
    conclude(Concluded {
        recorder,
        workload: workload.as_ref(),
        finished,
        phases: &phases,
        names: &names,
        spec,
        schedule: nemesis.schedule(),
        simulated: elapsed,
        messages: 0,
        // A real broker's state is out of reach: its processes are the product's own.
        monitors: None,
    })
}

/// Commands in the run's node namespaces ([`crate::real::node::run_in`]), their output
/// kept beside the node's log.
struct NamespaceShell<'a> {
    net: &'a RunNet,
    nodes_dir: &'a Path,
}

impl Shell for NamespaceShell<'_> {
    fn run(&self, node: usize, command: &Launch, timeout: Duration) -> Result<String, String> {
        let output = self.nodes_dir.join(format!("n{node}.shell"));
        crate::real::node::run_in(&self.net.namespace(node), command, &output, timeout)
    }
}
