//! What invariant monitors inside a simulation found. The monitors themselves live where
//! the state is (the harness watches the broker through its inspection seam); the checker
//! only carries their findings into the verdict, so that a broken invariant makes a run
//! invalid exactly as an anomaly in its history does.

use serde::Serialize;

use crate::verdict::Validity;

/// Most violations kept as witnesses per monitor (so that one monitor's flood of a
/// broken promise does not hide what another saw); the count covers every one.
pub const VIOLATIONS_KEPT: usize = 32;

/// One invariant broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Simulated time, nanoseconds from the run's start.
    pub time_ns: u64,
    /// Which monitor saw it (`raft`, ...).
    pub monitor: String,
    /// The node whose step broke it.
    pub node: String,
    /// What broke, with the state that shows it.
    pub what: String,
}

/// Every monitor's findings in one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct MonitorReport {
    /// False if any invariant broke.
    pub valid: Validity,
    /// The monitors that ran.
    pub monitors: Vec<String>,
    /// Events checked.
    pub checked: u64,
    /// Invariants broken.
    pub violation_count: usize,
    /// The first [`VIOLATIONS_KEPT`] of them of each monitor, in order of time.
    pub violations: Vec<Violation>,
}

impl MonitorReport {
    /// The findings of `monitors`, which checked `checked` events and saw `violation_count`
    /// violations, of which `violations` were kept.
    pub fn new(
        monitors: Vec<String>,
        checked: u64,
        violation_count: usize,
        violations: Vec<Violation>,
    ) -> Self {
        Self {
            valid: if violation_count == 0 {
                Validity::True
            } else {
                Validity::False
            },
            monitors,
            checked,
            violation_count,
            violations,
        }
    }

    /// One line for terminal summaries: what ran, and the first violation if there is one.
    pub fn summary(&self) -> String {
        let first = self.violations.first().map_or(String::new(), |v| {
            format!(
                "; first at {:.3} s on {} ({}): {}",
                v.time_ns as f64 / 1e9,
                v.node,
                v.monitor,
                v.what
            )
        });
        format!(
            "{} checked {} events, {} violations{first}",
            self.monitors.join(", "),
            self.checked,
            self.violation_count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violation_makes_the_report_invalid_and_leads_its_summary() {
        let clean = MonitorReport::new(vec!["raft".into()], 10, 0, Vec::new());
        assert_eq!(clean.valid, Validity::True);
        assert_eq!(clean.summary(), "raft checked 10 events, 0 violations");
        let broken = Violation {
            time_ns: 1_500_000_000,
            monitor: "raft".into(),
            node: "n2".into(),
            what: "two leaders in term 3".into(),
        };
        let report = MonitorReport::new(vec!["raft".into()], 10, 2, vec![broken]);
        assert_eq!(report.valid, Validity::False);
        assert!(
            report
                .summary()
                .ends_with("2 violations; first at 1.500 s on n2 (raft): two leaders in term 3"),
            "{}",
            report.summary()
        );
    }
}
