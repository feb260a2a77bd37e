//! Workloads: what operations to generate, how a client performs each against the broker,
//! the final reads, and which analyses judge the history.
//!
//! A workload never decides an outcome it cannot know: an operation whose reply was lost
//! completes as `info`, never `fail`.

mod log;
mod queue;

use std::sync::Arc;
use std::time::Duration;

use broker::Network;
use checker::OpType;

pub use log::{LogClient, LogGenerator, LogWorkload};
pub use queue::{QueueClient, QueueGenerator, QueueWorkload};

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

/// Where and how clients reach the system under test.
#[derive(Clone)]
pub struct Target {
    /// The network seam (real or simulated).
    pub network: Arc<dyn Network>,
    /// Broker addresses, `host:port`.
    pub nodes: Vec<String>,
    /// Deadline for each request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("nodes", &self.nodes)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}
