//! Workloads: what operations to generate, how a client performs each against the broker,
//! the final reads, and which analyses judge the history.
//!
//! A workload never decides an outcome it cannot know: an operation whose reply was lost
//! completes as `info`, never `fail`.

mod api;
mod knobs;
mod log;
mod queue;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use broker::kafka::Acks;
use broker::Mode;
use checker::OpType;

pub use api::{ApiError, ApiFuture, Clients, Delivery, Family, LogApi, QueueApi, Records};
pub use knobs::{Knob, KnobError, Knobs};
pub use log::{Consume, LogClient, LogGenerator, LogWorkload};
pub use queue::{QueueClient, QueueGenerator, QueueWorkload};

/// What an operation's client returns: a future on the simulation's single thread.
pub type OpFuture<'a> = Pin<Box<dyn Future<Output = Completion> + 'a>>;

/// A workload: what operations to generate, how a client performs them, the final read,
/// and how the history is judged. One value per run, built from its knobs by the
/// workload's [`Registration`].
pub trait Workload {
    /// The queues or partitions it uses: the harness asks the cluster who leads them
    /// (for the `leader` fault target and to tell when the cluster has recovered).
    fn names(&self) -> Vec<String>;
    /// The run's generator of operations, fixed by `seed`.
    fn generator(&self, seed: u64) -> Box<dyn Generator>;
    /// A client for one process (thread of work), through the system's API for this
    /// workload's family; `None` when the system does not serve that family. `process`
    /// spreads first connections over the nodes.
    fn client(&self, clients: &dyn Clients, process: usize) -> Option<Box<dyn WorkloadClient>>;
    /// The final read's invocation (a drain, a read of every key from the start). One
    /// process performs it after healing, with [`WorkloadClient::final_read`].
    fn final_read(&self) -> Invocation;
    /// The analyses that judge the history, and the anomalies the target does not promise
    /// to avoid.
    fn checks(&self) -> Checks;
}

/// Hands out a run's operations, one at a time, to whichever process asks next.
pub trait Generator {
    /// The next operation.
    fn next_op(&mut self) -> Invocation;
}

/// One process's way of performing operations against the broker. Every outcome it
/// cannot be sure of completes as `info`, never `fail`.
pub trait WorkloadClient {
    /// Performs one invocation from the generator.
    fn invoke<'a>(&'a mut self, op: &'a Invocation) -> OpFuture<'a>;
    /// Performs the final read, retrying through errors within `budget` of simulated
    /// time: `ok` when it read everything, `info` with what it read otherwise.
    fn final_read(&mut self, budget: Duration) -> OpFuture<'_>;
    /// Forgets connections: after an `info`, the process is retired and its thread
    /// carries on as a fresh process.
    fn reset(&mut self);
}

/// How a workload's histories are judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    /// Which analyses apply.
    pub analyses: checker::Workload,
    /// Anomalies found but not held against the system (names as the checker reports
    /// them, such as `G2`): what the target does not promise.
    pub allowed: Vec<&'static str>,
}

/// What the run tells a workload about the system under test when building it.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// The broker's design.
    pub mode: Mode,
    /// Partitions of the topic (kafka mode).
    pub partitions: u32,
    /// What producers ask for (kafka mode).
    pub acks: Acks,
}

/// How a registration builds its workload from the run's knobs and setup.
pub type Build = fn(&Knobs, &Setup) -> Result<Box<dyn Workload>, KnobError>;

/// A workload as the harness finds it by name: what it is, the modes it runs against,
/// its knobs, and how to build it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The name on command lines (`--workload NAME`).
    pub name: &'static str,
    /// One line on what it does.
    pub about: &'static str,
    /// The API it drives: a system must serve this family to run it.
    pub family: Family,
    /// The broker modes it can drive.
    pub modes: &'static [Mode],
    /// Its knobs, set with `--knob NAME=VALUE`.
    pub knobs: &'static [Knob],
    /// Builds it for one run from its knobs (every knob present, defaults filled in).
    pub build: Build,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("name", &self.name).finish()
    }
}

impl Registration {
    /// Resolves `set` (NAME=VALUE pairs) against this workload's knobs and builds it.
    pub fn instantiate(
        &self,
        set: &std::collections::BTreeMap<String, String>,
        setup: &Setup,
    ) -> Result<Box<dyn Workload>, KnobError> {
        let knobs = Knobs::resolve(self.name, self.knobs, set)?;
        (self.build)(&knobs, setup)
    }
}

/// Every workload this build has. Adding one is writing its file and a line here.
pub fn registry() -> Vec<Registration> {
    vec![queue::REGISTRATION, log::REGISTRATION]
}

/// The workload named `name`.
pub fn find(name: &str) -> Option<Registration> {
    registry().into_iter().find(|r| r.name == name)
}

/// An operation a process is about to perform: its function and argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// `enqueue`, `dequeue`, `drain`, ...
    pub f: &'static str,
    /// The argument, as recorded in the history.
    pub value: serde_json::Value,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` or `Info`; never `Invoke`.
    pub kind: OpType,
    /// The result, as recorded in the history.
    pub value: serde_json::Value,
    /// Why it failed or is unknown.
    pub error: Option<String>,
}

impl Completion {
    /// It happened, with this result.
    pub fn ok(value: serde_json::Value) -> Self {
        Self {
            kind: OpType::Ok,
            value,
            error: None,
        }
    }

    /// It failed (`definite`) or its outcome is unknown, for the given reason.
    pub fn error(definite: bool, value: serde_json::Value, error: String) -> Self {
        Self {
            kind: if definite { OpType::Fail } else { OpType::Info },
            value,
            error: Some(error),
        }
    }
}
