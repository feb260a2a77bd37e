//! Systems: everything tumult knows about one broker product. How a node is laid out and
//! started (in the simulation as a task on the broker's seams, on a real machine as a
//! process with its arguments), how its nodes become one cluster, how to ask who leads
//! what (which also tells when a cluster is ready and when it has recovered), which files
//! hold its data (for corruption and truncation), what a machine needs to run it, and its
//! clients for each workload family ([`workloads::Clients`]).
//!
//! The runtimes place nodes and make faults; they know nothing of any one product beyond
//! this trait. Workloads talk to a system only through its clients. Adding a system is
//! writing its module and a line in [`registry`].

mod nats;
mod rabbitmq;
mod tumult;
mod tumult_clients;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use broker::{Mode, Network, Seams};
use workloads::{Clients, Family};

use crate::real::Check;
use crate::spec::TestSpec;

pub use nats::Nats;
pub use rabbitmq::RabbitMq;
pub use tumult::TumultBroker;
pub use tumult_clients::TumultClients;

/// A future on the run's single client thread.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One node's answer to "who leads what": each name with the host that node believes
/// leads it (`None`: it knows of no leader).
pub type Answer = Vec<(String, Option<String>)>;

/// Where and how clients reach a cluster: its network, its nodes' addresses, and the
/// deadline of every request.
#[derive(Clone)]
pub struct Reach {
    /// The network seam (real or simulated).
    pub network: Arc<dyn Network>,
    /// Node addresses, `host:port`.
    pub nodes: Vec<String>,
    /// Deadline for each request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("nodes", &self.nodes)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The host part of `host:port`.
pub(crate) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
}

/// Where one node of a cluster lives, as the runtime laid it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    /// The node's number, from 1 (`n1`, ...).
    pub id: usize,
    /// The address it listens on for clients and peers.
    pub listen: String,
    /// Every node's address, `n1` first, as the others reach it.
    pub addrs: Vec<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its own random seed (derived from the run's).
    pub seed: u64,
}

/// How a real node is started: a program and its arguments and environment, which the
/// real runtime runs inside the node's namespace, in a process group of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to its environment.
    pub env: Vec<(String, String)>,
}

/// Runs a command inside one node's namespace, for [`System::form`] on real clusters
/// (a product's own administration tool, which must see the node's network and name).
pub trait Shell {
    /// Runs `command` in node `node`'s namespace (`node` from 1), stopping it after
    /// `timeout`; its output, or why it failed.
    fn run(&self, node: usize, command: &Launch, timeout: std::time::Duration) -> Result<String, String>;
}

/// A started cluster as [`System::form`] sees it.
pub struct Cluster<'a> {
    /// Where its clients reach it.
    pub reach: &'a Reach,
    /// Its nodes, `n1` first.
    pub nodes: &'a [NodeLayout],
    /// Commands inside the nodes' namespaces.
    pub shell: &'a dyn Shell,
}

/// One broker product, as the runtimes and workloads need to know it.
pub trait System {
    /// The name on command lines (`--system NAME`).
    fn name(&self) -> &'static str;
    /// One line on what it is.
    fn about(&self) -> &'static str;
    /// The workload families it serves clients for.
    fn families(&self) -> &'static [Family];
    /// The broker designs (`--mode`) it can be set up as.
    fn modes(&self) -> &'static [Mode];
    /// The port its nodes serve clients on, on a real run.
    fn port(&self) -> u16;
    /// What a machine needs to run its nodes for real (binaries, packages).
    fn prerequisites(&self) -> Vec<Check>;
    /// Whether it serves workloads of `family` when set up as `mode` (by default: every
    /// family it has a client for, in every mode it has).
    fn serves(&self, family: Family, mode: Mode) -> bool {
        self.families().contains(&family) && self.modes().contains(&mode)
    }
    /// Why it cannot run `spec` (a knob it has no equivalent for), if it cannot.
    fn spec_refusal(&self, _spec: &TestSpec) -> Option<String> {
        None
    }
    /// How it decides its own fsyncs, for a product that takes no `--fsync` (`None`: it
    /// follows `--fsync`).
    fn own_fsync(&self) -> Option<&'static str> {
        None
    }
    /// Whether its nodes can run in the simulation ([`Self::in_process`] gives them).
    fn simulated(&self) -> bool {
        false
    }
    /// Node `node` as a task in this process, on the given seams, for the simulation: one
    /// boot of it (the simulation calls this again on every restart). `None` when the
    /// product runs only as a real process.
    fn in_process(
        &self,
        spec: &TestSpec,
        node: &NodeLayout,
        seams: Seams,
    ) -> Option<LocalFuture<'static, ()>>;
    /// How to start node `node` as a real process. May write configuration files under
    /// its data directory.
    fn launch(&self, spec: &TestSpec, node: &NodeLayout) -> Result<Launch, String>;
    /// Makes the started nodes one cluster, once all of them run (joins, policies,
    /// streams). A product whose nodes find each other from their arguments does nothing.
    fn form<'a>(
        &'a self,
        _spec: &'a TestSpec,
        _cluster: &'a Cluster<'a>,
        _names: &'a [String],
    ) -> LocalFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    /// Asks every node who leads each of `names`: one answer per node, `n1` first, `None`
    /// for a node that did not answer within the reach's request timeout.
    fn leaders<'a>(&'a self, reach: &'a Reach, names: &'a [String]) -> LocalFuture<'a, Vec<Option<Answer>>>;
    /// The files under a node's data directory that hold the data of a run in `mode`:
    /// what a corrupt or truncate fault may damage.
    fn data_files(&self, _mode: Mode, data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        every_file(data_dir)
    }
    /// Its clients, for every family it serves, of the cluster at `reach`.
    fn clients(&self, reach: &Reach) -> Rc<dyn Clients>;
}

/// Every file under `dir`, found without recursion.
pub fn every_file(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every system this build has.
pub fn registry() -> Vec<Rc<dyn System>> {
    vec![Rc::new(TumultBroker), Rc::new(Nats), Rc::new(RabbitMq)]
}

/// The system tumult runs when none is named.
pub const DEFAULT: &str = "tumult-broker";

/// The system named `name`, or an error listing the ones there are.
pub fn find(name: &str) -> Result<Rc<dyn System>, String> {
    let all = registry();
    if let Some(system) = all.iter().find(|s| s.name() == name) {
        return Ok(Rc::clone(system));
    }
    let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
    Err(format!("no system '{name}' (there are: {})", names.join(", ")))
}

/// Refuses a run `system` cannot serve: a workload family it has no client for, or a
/// mode it cannot be set up as.
pub fn refusal(system: &dyn System, spec: &TestSpec, family: Family) -> Option<String> {
    if !system.families().contains(&family) {
        return Some(format!(
            "system {} has no {family} client (workload {} needs one)",
            system.name(),
            spec.workload
        ));
    }
    if !system.modes().contains(&spec.mode) {
        let modes: Vec<String> = system.modes().iter().map(|m| m.to_string()).collect();
        return Some(format!(
            "system {} runs as mode {}, not {}",
            system.name(),
            modes.join(", "),
            spec.mode
        ));
    }
    if !system.serves(family, spec.mode) {
        let modes: Vec<String> = Mode::ALL
            .iter()
            .map(|(m, _)| *m)
            .filter(|m| system.serves(family, *m))
            .map(|m| m.to_string())
            .collect();
        return Some(format!(
            "system {} serves {family} workloads in mode {}, not {}",
            system.name(),
            modes.join(", "),
            spec.mode
        ));
    }
    if let Some(why) = system.spec_refusal(spec) {
        return Some(why);
    }
    if spec.runtime == crate::Runtime::Sim && !system.simulated() {
        return Some(format!(
            "system {} runs only on real processes: add --runtime real",
            system.name()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product that runs only for real and only as quorum queues, as a real quorum-queue
    /// broker would.
    struct RealOnly;

    impl System for RealOnly {
        fn name(&self) -> &'static str {
            "real-only"
        }
        fn about(&self) -> &'static str {
            "a stand-in"
        }
        fn families(&self) -> &'static [Family] {
            &[Family::Queue]
        }
        fn modes(&self) -> &'static [Mode] {
            &[Mode::Quorum]
        }
        fn port(&self) -> u16 {
            5672
        }
        fn prerequisites(&self) -> Vec<Check> {
            Vec::new()
        }
        fn in_process(&self, _: &TestSpec, _: &NodeLayout, _: Seams) -> Option<LocalFuture<'static, ()>> {
            None
        }
        fn launch(&self, _: &TestSpec, _: &NodeLayout) -> Result<Launch, String> {
            Err("not here".into())
        }
        fn leaders<'a>(&'a self, _: &'a Reach, _: &'a [String]) -> LocalFuture<'a, Vec<Option<Answer>>> {
            Box::pin(async { Vec::new() })
        }
        fn clients(&self, reach: &Reach) -> Rc<dyn Clients> {
            Rc::new(TumultClients { reach: reach.clone() })
        }
    }

    #[test]
    fn a_run_is_refused_for_a_family_mode_or_runtime_its_system_lacks() {
        let mut spec = TestSpec::new(1);
        spec.mode = Mode::Quorum;
        let sim = refusal(&RealOnly, &spec, Family::Queue).expect("refused in the simulation");
        assert!(sim.contains("--runtime real"), "{sim}");
        spec.runtime = crate::Runtime::Real;
        assert_eq!(refusal(&RealOnly, &spec, Family::Queue), None);
        let log = refusal(&RealOnly, &spec, Family::Log).expect("no log client");
        assert!(log.contains("no log client"), "{log}");
        spec.mode = Mode::Mirrored;
        let mode = refusal(&RealOnly, &spec, Family::Queue).expect("not mirrored");
        assert!(mode.contains("mode quorum, not mirrored"), "{mode}");
        let log = refusal(&TumultBroker, &spec, Family::Log).expect("no log in mirrored mode");
        assert!(
            log.contains("log workloads in mode kafka, quorum, not mirrored"),
            "{log}"
        );
        for mode in [Mode::Kafka, Mode::Quorum] {
            spec.mode = mode;
            assert_eq!(refusal(&TumultBroker, &spec, Family::Log), None);
        }
        spec.mode = Mode::Kafka;
        let queue = refusal(&TumultBroker, &spec, Family::Queue).expect("no queue in kafka mode");
        assert!(
            queue.contains("queue workloads in mode single, classic"),
            "{queue}"
        );
        let Err(unknown) = find("no-such") else {
            panic!("an unknown system was found")
        };
        assert!(unknown.contains("tumult-broker"), "{unknown}");
    }
}
