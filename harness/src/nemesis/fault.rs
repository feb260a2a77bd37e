//! Faults as data: what the nemesis did, to whom, from when until when. A run's faults are
//! written as `schedule.json`, and `tumult test --schedule FILE` plays a schedule back
//! instead of drawing faults from the seed.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The version of the schedule file format.
pub const SCHEDULE_VERSION: u32 = 1;

/// How a partition cuts the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// Two random halves that cannot reach each other.
    Halves,
    /// The target nodes cut off from the rest.
    Isolate,
    /// Every node sees a majority, and no two nodes see the same one (Jepsen's
    /// majorities ring): there is no single "majority side".
    Ring,
    /// Two halves that only one node, the bridge, can reach both of.
    Bridge,
    /// The target nodes' messages to the rest are dropped; theirs still arrive.
    OneWay,
}

/// What a disk fault does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "damage", rename_all = "kebab-case")]
pub enum Damage {
    /// The next append reaches the disk only in part, then fails: the tail a power cut
    /// leaves in the middle of a write.
    Torn,
    /// Writes, fsyncs and reads fail with EIO with this probability.
    Eio {
        /// Chance that one operation fails.
        probability: f64,
    },
    /// The node restarts and one byte of the first file it reads back comes back flipped:
    /// silent corruption, which only checksums reveal.
    Corrupt,
    /// The node restarts and the first file it reads back has lost its tail: only this
    /// fraction of it is left (as Jepsen cut NATS's block files). Unlike a torn write, the
    /// bytes lost may have been fsynced and acknowledged.
    Truncate {
        /// The share of the file kept, in `0..1`.
        keep: f64,
    },
    /// The node restarts with an empty disk, as after a disk replacement: every file it
    /// had is gone, fsynced or not, and it rejoins with no state at all.
    Wipe,
}

/// The length a file of `len` bytes is cut to when `keep` of it is kept: always shorter.
pub fn truncated_len(len: u64, keep: f64) -> u64 {
    ((len as f64 * keep).floor() as u64).min(len.saturating_sub(1))
}

impl Damage {
    /// Damage done to files at rest: the node is restarted to read them back.
    pub fn at_rest(self) -> bool {
        matches!(self, Damage::Corrupt | Damage::Truncate { .. } | Damage::Wipe)
    }
}

/// One fault, with its targets resolved to host names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Crash the hosts (unsynced writes lost); restart them when the fault ends.
    Kill {
        /// The hosts.
        nodes: Vec<String>,
    },
    /// Restart the hosts' software at once, keeping the page cache.
    Restart {
        /// The hosts.
        nodes: Vec<String>,
    },
    /// Hold every message to and from the hosts until the fault ends.
    Pause {
        /// The hosts.
        nodes: Vec<String>,
    },
    /// Drop the messages of each `[from, to]` pair in `cuts`.
    Partition {
        /// How the cuts were chosen.
        shape: Shape,
        /// One-way cuts: messages from the first host to the second are dropped.
        cuts: Vec<(String, String)>,
    },
    /// Slow and lossy links: every link of the hosts gets this latency and loss.
    Packet {
        /// The hosts whose links degrade.
        nodes: Vec<String>,
        /// One-way latency of each message, milliseconds.
        latency_ms: u64,
        /// Chance that a message (and what is in flight with it) is dropped.
        loss: f64,
    },
    /// Damage the host's disk.
    Disk {
        /// The host.
        node: String,
        /// What happens to it.
        #[serde(flatten)]
        damage: Damage,
    },
}

impl Fault {
    /// The history's function names for the fault's start and end (Jepsen's names where
    /// Jepsen has them); `None` as the end of a fault that is over as soon as it is done.
    pub fn names(&self) -> (&'static str, Option<&'static str>) {
        match self {
            Fault::Kill { .. } => ("kill", Some("start")),
            Fault::Restart { .. } => ("restart", None),
            Fault::Pause { .. } => ("pause", Some("resume")),
            Fault::Partition { .. } => ("start-partition", Some("stop-partition")),
            Fault::Packet { .. } => ("start-packet", Some("stop-packet")),
            Fault::Disk { .. } => ("start-disk", Some("stop-disk")),
        }
    }

    /// Every host the fault names.
    pub fn hosts(&self) -> Vec<&str> {
        match self {
            Fault::Kill { nodes } | Fault::Restart { nodes } | Fault::Pause { nodes } => {
                nodes.iter().map(String::as_str).collect()
            }
            Fault::Packet { nodes, .. } => nodes.iter().map(String::as_str).collect(),
            Fault::Partition { cuts, .. } => {
                let mut hosts: Vec<&str> = cuts.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]).collect();
                hosts.sort();
                hosts.dedup();
                hosts
            }
            Fault::Disk { node, .. } => vec![node.as_str()],
        }
    }
}

/// A fault and its window, in simulated milliseconds from the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// When it starts.
    pub start_ms: u64,
    /// When it ends (equal to `start_ms` for a fault that is over at once).
    pub end_ms: u64,
    /// What it is.
    pub fault: Fault,
}

/// Every fault of a run, in order of start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Format version ([`SCHEDULE_VERSION`]).
    pub version: u32,
    /// The faults.
    pub faults: Vec<ScheduledFault>,
}

/// Why a schedule file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// Why (shown in the message, so not a `source`: it would print twice).
        cause: std::io::Error,
    },
    /// The file is not a schedule.
    #[error("{path} is not a tumult schedule: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Schedule {
    /// Reads and checks a schedule file against the cluster's host names.
    pub fn load(path: &Path, hosts: &[String]) -> Result<Self, ScheduleError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| ScheduleError::Read {
            path: shown.clone(),
            cause,
        })?;
        let malformed = |message: String| ScheduleError::Malformed {
            path: shown.clone(),
            message,
        };
        let schedule: Schedule = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        schedule.validate(hosts).map_err(malformed)?;
        Ok(schedule)
    }

    /// Refuses schedules this build cannot play on a cluster of `hosts`.
    pub fn validate(&self, hosts: &[String]) -> Result<(), String> {
        if self.version != SCHEDULE_VERSION {
            return Err(format!(
                "version {} (this build reads version {SCHEDULE_VERSION})",
                self.version
            ));
        }
        for (i, f) in self.faults.iter().enumerate() {
            if f.end_ms < f.start_ms {
                return Err(format!("fault {i} ends before it starts"));
            }
            if let Some(host) = f
                .fault
                .hosts()
                .into_iter()
                .find(|h| !hosts.iter().any(|n| n == h))
            {
                return Err(format!(
                    "fault {i} names host '{host}', which this cluster does not have"
                ));
            }
            let bad_chance = |p: f64| !(0.0..=1.0).contains(&p);
            match &f.fault {
                Fault::Packet { loss, .. } if bad_chance(*loss) => {
                    return Err(format!("fault {i}: loss must be within 0..=1"))
                }
                Fault::Disk {
                    damage: Damage::Eio { probability },
                    ..
                } if bad_chance(*probability) => {
                    return Err(format!("fault {i}: probability must be within 0..=1"))
                }
                Fault::Disk {
                    damage: Damage::Truncate { keep },
                    ..
                } if !(0.0..1.0).contains(keep) => {
                    return Err(format!("fault {i}: keep must be within 0..1"))
                }
                _ => {}
            }
        }
        if self.faults.windows(2).any(|w| w[1].start_ms < w[0].start_ms) {
            return Err("faults must be listed in order of start".into());
        }
        Ok(())
    }

    /// The first fault of the schedule that real processes cannot be given here, and why:
    /// torn writes and EIO need a filesystem that injects them, latency needs tc netem.
    pub fn real_refusal(&self) -> Option<String> {
        self.faults.iter().enumerate().find_map(|(i, f)| {
            let why = match &f.fault {
                Fault::Packet { latency_ms, .. } if *latency_ms > 0 => {
                    "link latency needs tc netem, which this kernel lacks (tumult doctor); real packet faults are loss alone, latency_ms 0"
                }
                Fault::Disk {
                    damage: Damage::Torn | Damage::Eio { .. },
                    ..
                } => "torn writes and I/O errors need a filesystem that injects them, which real runs do not have yet",
                _ => return None,
            };
            Some(format!("fault {i}: {why}"))
        })
    }

    /// Writes the schedule as pretty JSON.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("schedules serialise");
        text.push('\n');
        std::fs::write(path, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["n1".into(), "n2".into(), "n3".into()]
    }

    #[test]
    fn schedules_round_trip_through_json() {
        let schedule = Schedule {
            version: SCHEDULE_VERSION,
            faults: vec![
                ScheduledFault {
                    start_ms: 1000,
                    end_ms: 3000,
                    fault: Fault::Partition {
                        shape: Shape::OneWay,
                        cuts: vec![("n1".into(), "n2".into())],
                    },
                },
                ScheduledFault {
                    start_ms: 4000,
                    end_ms: 6000,
                    fault: Fault::Disk {
                        node: "n3".into(),
                        damage: Damage::Eio { probability: 0.5 },
                    },
                },
            ],
        };
        let text = serde_json::to_string(&schedule).unwrap();
        assert!(
            text.contains(r#""kind":"disk","node":"n3","damage":"eio","probability":0.5"#),
            "{text}"
        );
        let back: Schedule = serde_json::from_str(&text).unwrap();
        assert_eq!(back, schedule);
        assert!(back.validate(&hosts()).is_ok());
    }

    #[test]
    fn schedules_naming_strangers_or_running_backwards_are_refused() {
        let mut schedule = Schedule {
            version: SCHEDULE_VERSION,
            faults: vec![ScheduledFault {
                start_ms: 10,
                end_ms: 20,
                fault: Fault::Kill {
                    nodes: vec!["n9".into()],
                },
            }],
        };
        assert!(schedule.validate(&hosts()).unwrap_err().contains("'n9'"));
        schedule.faults[0].fault = Fault::Kill {
            nodes: vec!["n1".into()],
        };
        schedule.faults[0].end_ms = 5;
        assert!(schedule.validate(&hosts()).unwrap_err().contains("ends before"));
        schedule.version = 7;
        assert!(schedule.validate(&hosts()).unwrap_err().contains("version 7"));
    }
}
