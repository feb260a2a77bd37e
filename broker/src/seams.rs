//! The broker's seams bundled: everything it needs from the world beyond tokio time.

use std::sync::Arc;

use crate::disk::{Disk, StdDisk};
use crate::entropy::{Entropy, SeededEntropy};
use crate::inspect::{Inspector, Unobserved};
use crate::net::{BoxFuture, Network, TokioNetwork};

/// Starts background tasks (one per connection, and later per replication stream).
///
/// A seam of its own because the order in which a runtime drops its tasks when a host
/// crashes must not depend on anything outside the run: tokio's `spawn` files tasks by a
/// process-wide id, so a simulation spawns onto its host's local task list instead.
pub trait Spawner: Send + Sync + 'static {
    /// Runs `task` in the background until it finishes or the process stops.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// `tokio::spawn`, for real deployments.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    #[allow(clippy::disallowed_methods)] // the one place real deployments spawn
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// What a broker node reaches the world through.
pub struct Seams {
    /// Sockets.
    pub network: Arc<dyn Network>,
    /// Files.
    pub disk: Arc<dyn Disk>,
    /// Background tasks.
    pub spawner: Arc<dyn Spawner>,
    /// Randomness.
    pub entropy: Box<dyn Entropy>,
    /// Who is told of the node's replicated state as it changes (invariant monitors).
    pub inspector: Arc<dyn Inspector>,
}

impl Seams {
    /// Real TCP, real files, tokio tasks, and randomness from `seed`.
    pub fn real(seed: u64) -> Self {
        Self {
            network: Arc::new(TokioNetwork),
            disk: Arc::new(StdDisk),
            spawner: Arc::new(TokioSpawner),
            entropy: Box::new(SeededEntropy::new(seed)),
            inspector: Arc::new(Unobserved),
        }
    }
}
