//! harness.log: `tracing` output with the simulated time on every line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The simulation's clock as last seen by the driver loop, for log lines emitted outside
/// any host (the nemesis, the phases).
#[derive(Debug, Clone, Default)]
pub struct DriverClock(Arc<AtomicU64>);

impl DriverClock {
    /// Records the simulation's elapsed time.
    pub fn set(&self, elapsed: std::time::Duration) {
        self.0.store(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Formats timestamps as simulated seconds.
#[derive(Debug, Clone, Default)]
pub struct SimTime(pub DriverClock);

impl FormatTime for SimTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let nanos = turmoil::sim_elapsed()
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_else(|| self.0 .0.load(Ordering::Relaxed));
        write!(w, "{:>12.6}s", nanos as f64 / 1e9)
    }
}
