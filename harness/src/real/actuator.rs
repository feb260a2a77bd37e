//! The nemesis's faults on real processes: kill by SIGKILL, restart by SIGTERM and a fresh
//! start, pause by SIGSTOP to the node's group, partitions and loss by iptables rules in the
//! nodes' namespaces. Disk damage is refused before a real run starts
//! ([`crate::FaultKind::real_refusal`]), so it never reaches here.

use std::time::Duration;

use super::net::RunNet;
use super::node::NodeProcess;
use crate::nemesis::{Actuator, Fault};

/// How long a node has to exit on SIGTERM before it is killed.
pub const STOP_BOUND: Duration = Duration::from_secs(5);

/// A real cluster's nodes and network, as the nemesis acts on them.
pub struct RealActuator<'a> {
    /// The nodes, `n1` first.
    pub nodes: &'a mut [NodeProcess],
    /// Their network.
    pub net: &'a RunNet,
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
        if damage.is_some() {
            tracing::error!(
                node,
                "real nemesis: disk damage reached a real run; it is refused up front"
            );
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
