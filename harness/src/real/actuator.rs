//! The nemesis's faults on real processes: kill by SIGKILL, restart by SIGTERM and a fresh
//! start, pause by SIGSTOP to the node's group, partitions and loss by iptables rules in the
//! nodes' namespaces, corruption and truncation of a stopped node's largest data file (a
//! byte flipped, or its tail cut, as Jepsen does to NATS). Torn writes and I/O errors are
//! refused before a real run starts ([`crate::FaultKind::real_refusal`] and
//! [`crate::Schedule::real_refusal`]), so they never reach here.

use std::path::PathBuf;
use std::time::Duration;

use super::net::RunNet;
use super::node::NodeProcess;
use crate::nemesis::{Actuator, Damage, Fault};
use crate::systems::System;

/// How long a node has to exit on SIGTERM before it is killed.
pub const STOP_BOUND: Duration = Duration::from_secs(5);

/// A real cluster's nodes and network, as the nemesis acts on them.
pub struct RealActuator<'a> {
    /// The nodes, `n1` first.
    pub nodes: &'a mut [NodeProcess],
    /// Their network.
    pub net: &'a RunNet,
    /// Each node's data directory, `n1` first.
    pub data_dirs: &'a [PathBuf],
    /// The product the nodes run, which says which of their files hold data.
    pub system: &'a dyn System,
    /// The run's mode, which decides which of those files hold its messages.
    pub mode: broker::Mode,
}

/// The largest non-empty file of `files` and its length.
fn largest_file(files: &[PathBuf]) -> std::io::Result<Option<(u64, PathBuf)>> {
    let mut largest: Option<(u64, PathBuf)> = None;
    for file in files {
        let len = match std::fs::metadata(file) {
            Ok(meta) => meta.len(),
            // A file the node removed since it was listed is not there to damage.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if len > largest.as_ref().map_or(0, |(l, _)| *l) {
            largest = Some((len, file.clone()));
        }
    }
    Ok(largest)
}

/// Flips every bit of the byte in the middle of the largest of `files` (a node's data
/// files, as its system lists them); returns the file and the offset, or `None` when
/// there is no non-empty file to damage.
pub fn corrupt_largest_file(files: &[PathBuf]) -> std::io::Result<Option<(PathBuf, u64)>> {
    let Some((len, file)) = largest_file(files)? else {
        return Ok(None);
    };
    let at = len / 2;
    let mut bytes = std::fs::read(&file)?;
    bytes[at as usize] ^= 0xff;
    std::fs::write(&file, bytes)?;
    Ok(Some((file, at)))
}

/// Cuts the largest of `files` to `keep` of its length; returns the file and its lengths
/// before and after, or `None` when there is no non-empty file to cut.
pub fn truncate_largest_file(files: &[PathBuf], keep: f64) -> std::io::Result<Option<(PathBuf, u64, u64)>> {
    let Some((len, file)) = largest_file(files)? else {
        return Ok(None);
    };
    let to = crate::nemesis::truncated_len(len, keep);
    std::fs::OpenOptions::new().write(true).open(&file)?.set_len(to)?;
    Ok(Some((file, len, to)))
}

impl RealActuator<'_> {
    /// Node `n<i>`'s number (from 1), or 0 for any other host (the clients' side).
    fn number(&self, node: &str) -> usize {
        node.strip_prefix('n')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=self.nodes.len()).contains(n))
            .unwrap_or(0)
    }

    fn node(&mut self, node: &str) -> Option<&mut NodeProcess> {
        let n = self.number(node);
        (n > 0).then(|| &mut self.nodes[n - 1])
    }
}

impl Actuator for RealActuator<'_> {
    fn crash(&mut self, node: &str) {
        if let Some(process) = self.node(node) {
            if let Err(e) = process.kill() {
                tracing::error!(node, %e, "real nemesis: kill failed");
            }
        }
    }

    fn bounce(&mut self, node: &str) {
        if let Some(process) = self.node(node) {
            let result = process.stop(STOP_BOUND).and_then(|()| process.restart());
            if let Err(e) = result {
                tracing::error!(node, %e, "real nemesis: restart failed");
            }
        }
    }

    fn is_running(&mut self, node: &str) -> bool {
        self.node(node).is_some_and(|p| p.running())
    }

    fn damage(&mut self, node: usize, damage: Option<crate::nemesis::Damage>) {
        match damage {
            None => {}
            Some(Damage::Wipe) => {
                // A disk replacement: the node is stopped, everything under its data
                // directory goes, and supervision restarts it on the empty directory.
                if let Err(e) = self.nodes[node].kill() {
                    tracing::error!(node, %e, "real nemesis: kill before wiping its disk failed");
                }
                let dir = &self.data_dirs[node];
                let wiped = std::fs::remove_dir_all(dir).and_then(|()| std::fs::create_dir_all(dir));
                match wiped {
                    Ok(()) => {
                        tracing::info!(node, dir = %dir.display(), "real nemesis: wiped the node's data directory")
                    }
                    Err(e) => tracing::error!(node, %e, "real nemesis: wiping the data directory failed"),
                }
            }
            Some(damage @ (Damage::Corrupt | Damage::Truncate { .. })) => {
                // Files are damaged at rest: the node is stopped first, and stays down
                // until the nemesis's supervision restarts it, as a service manager would;
                // its recovery then meets the damage.
                if let Err(e) = self.nodes[node].kill() {
                    tracing::error!(node, %e, "real nemesis: kill before damaging its files failed");
                }
                let files = match self.system.data_files(self.mode, &self.data_dirs[node]) {
                    Ok(files) => files,
                    Err(e) => {
                        tracing::error!(node, %e, "real nemesis: cannot list the node's data files");
                        return;
                    }
                };
                let done = match damage {
                    Damage::Truncate { keep } => truncate_largest_file(&files, keep).map(|cut| {
                        cut.map(|(file, from, to)| {
                            format!("cut {} from {from} to {to} bytes", file.display())
                        })
                    }),
                    _ => corrupt_largest_file(&files).map(|flip| {
                        flip.map(|(file, at)| format!("flipped byte {at} of {}", file.display()))
                    }),
                };
                match done {
                    Ok(Some(what)) => tracing::info!(node, "real nemesis: {what}"),
                    Ok(None) => tracing::info!(node, "real nemesis: no data file to damage yet"),
                    Err(e) => tracing::error!(node, %e, "real nemesis: damaging a file failed"),
                }
            }
            Some(other) => {
                tracing::error!(
                    node,
                    ?other,
                    "real nemesis: this disk damage is refused up front for real runs"
                );
            }
        }
    }

    fn links(&mut self, active: &[&Fault]) {
        // Rules are rebuilt from every fault in force: overlapping faults compose, and the
        // end of one leaves the others in place.
        if let Err(e) = self.net.heal() {
            tracing::error!(%e, "real nemesis: flushing rules failed");
        }
        let mut paused = vec![false; self.nodes.len()];
        for fault in active {
            let applied = match fault {
                Fault::Partition { cuts, .. } => cuts
                    .iter()
                    .try_for_each(|(from, to)| self.net.cut(self.number(from), self.number(to))),
                Fault::Packet { nodes, loss, .. } => nodes
                    .iter()
                    .try_for_each(|node| self.net.lose(self.number(node), *loss)),
                Fault::Pause { nodes } => {
                    for node in nodes {
                        let n = self.number(node);
                        if n > 0 {
                            paused[n - 1] = true;
                        }
                    }
                    Ok(())
                }
                Fault::Kill { .. } | Fault::Restart { .. } | Fault::Disk { .. } => Ok(()),
            };
            if let Err(e) = applied {
                tracing::error!(%e, "real nemesis: applying a network fault failed");
            }
        }
        for (process, pause) in self.nodes.iter_mut().zip(paused) {
            let result = match (pause, process.paused()) {
                (true, false) => process.pause(),
                (false, true) => process.resume(),
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::error!(%e, "real nemesis: pausing or resuming failed");
            }
        }
    }
}
