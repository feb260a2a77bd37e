//! The network as the active faults want it. Faults overlap (a pause during a partition, a
//! slow link that is then cut), but turmoil keeps one state per link direction, so healing
//! one fault by hand would undo another. Instead every change recomputes what each link
//! should be from all the faults in force, and only the difference is applied.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fault::Fault;

/// What one link (an unordered pair of hosts) should be.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LinkState {
    /// Messages from the first host of the pair to the second are dropped.
    cut_ab: bool,
    /// Messages from the second to the first are dropped.
    cut_ba: bool,
    /// Messages wait on the link until it is released.
    held: bool,
    /// Fixed one-way latency, when degraded.
    latency_ms: Option<u64>,
    /// Chance of losing a message, when degraded.
    loss: f64,
}

impl LinkState {
    fn is_cut(&self) -> bool {
        self.cut_ab || self.cut_ba
    }
}

/// Every link touching a broker, and the state last applied to it.
pub struct Network {
    /// Host names: brokers first, then clients.
    hosts: Vec<String>,
    brokers: usize,
    applied: BTreeMap<(usize, usize), LinkState>,
    default_latency: (Duration, Duration),
}

impl Network {
    /// The links among `brokers` and between them and `clients`; `latency` is the range
    /// every healthy link draws from.
    pub fn new(brokers: &[String], clients: &[String], latency: (Duration, Duration)) -> Self {
        let mut hosts = brokers.to_vec();
        hosts.extend(clients.iter().cloned());
        Self {
            hosts,
            brokers: brokers.len(),
            applied: BTreeMap::new(),
            default_latency: latency,
        }
    }

    fn index(&self, host: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h == host)
    }

    /// Every pair of host indices with at least one broker, smaller index first.
    fn pairs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.brokers).flat_map(move |a| (a + 1..self.hosts.len()).map(move |b| (a, b)))
    }

    fn desired<'a>(&self, faults: impl Iterator<Item = &'a Fault>) -> BTreeMap<(usize, usize), LinkState> {
        let mut links: BTreeMap<(usize, usize), LinkState> = BTreeMap::new();
        for fault in faults {
            match fault {
                Fault::Partition { cuts, .. } => {
                    for (from, to) in cuts {
                        let (Some(f), Some(t)) = (self.index(from), self.index(to)) else {
                            continue;
                        };
                        let link = links.entry((f.min(t), f.max(t))).or_default();
                        if f < t {
                            link.cut_ab = true;
                        } else {
                            link.cut_ba = true;
                        }
                    }
                }
                Fault::Pause { nodes } => {
                    for pair in self.pairs().filter(|(a, b)| self.touches(nodes, *a, *b)) {
                        links.entry(pair).or_default().held = true;
                    }
                }
                Fault::Packet {
                    nodes,
                    latency_ms,
                    loss,
                } => {
                    for pair in self.pairs().filter(|(a, b)| self.touches(nodes, *a, *b)) {
                        let link = links.entry(pair).or_default();
                        link.latency_ms = Some(link.latency_ms.unwrap_or(0).max(*latency_ms));
                        link.loss = link.loss.max(*loss);
                    }
                }
                Fault::Kill { .. } | Fault::Restart { .. } | Fault::Disk { .. } => {}
            }
        }
        links
    }

    fn touches(&self, nodes: &[String], a: usize, b: usize) -> bool {
        nodes.iter().any(|n| *n == self.hosts[a] || *n == self.hosts[b])
    }

    /// Brings every link in line with `faults`, touching only links that change.
    pub fn apply<'a>(&mut self, sim: &mut turmoil::Sim<'_>, faults: impl Iterator<Item = &'a Fault>) {
        let desired = self.desired(faults);
        let keys: Vec<(usize, usize)> = desired.keys().chain(self.applied.keys()).copied().collect();
        for key in keys {
            let want = desired.get(&key).copied().unwrap_or_default();
            let had = self.applied.get(&key).copied().unwrap_or_default();
            if want == had {
                continue;
            }
            self.set(sim, key, had, want);
            if want == LinkState::default() {
                self.applied.remove(&key);
            } else {
                self.applied.insert(key, want);
            }
        }
    }

    fn set(&self, sim: &mut turmoil::Sim<'_>, (a, b): (usize, usize), had: LinkState, want: LinkState) {
        let (x, y) = (self.hosts[a].as_str(), self.hosts[b].as_str());
        // A cut wins over a hold on the same link: turmoil cannot do both at once.
        let (had_hold, want_hold) = (had.held && !had.is_cut(), want.held && !want.is_cut());
        let cuts_change = (want.cut_ab, want.cut_ba) != (had.cut_ab, had.cut_ba);
        // Leave the old state. Held messages go out even when a cut follows: a one-way cut
        // would otherwise strand the other direction's held messages for good.
        if had_hold && !want_hold {
            sim.release(x, y);
        }
        if had.is_cut() && cuts_change {
            sim.repair(x, y);
        }
        // Enter the new one.
        if cuts_change {
            match (want.cut_ab, want.cut_ba) {
                (true, true) => sim.partition(x, y),
                (true, false) => sim.partition_oneway(x, y),
                (false, true) => sim.partition_oneway(y, x),
                (false, false) => {}
            }
        }
        if want_hold && !had_hold {
            sim.hold(x, y);
        }
        if want.latency_ms != had.latency_ms {
            match want.latency_ms {
                Some(ms) => sim.set_link_latency(x, y, Duration::from_millis(ms)),
                None => {
                    sim.set_link_latency(x, y, self.default_latency.0);
                    sim.set_link_max_message_latency(x, y, self.default_latency.1);
                }
            }
        }
        // turmoil's loss takes a link down for a message and back up at the next: never
        // on a link that is cut or held, whose state it would overwrite.
        let loss = if want.is_cut() || want.held {
            0.0
        } else {
            want.loss
        };
        let old_loss = if had.is_cut() || had.held { 0.0 } else { had.loss };
        if loss != old_loss {
            sim.set_link_fail_rate(x, y, loss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fault::Shape;
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlapping_faults_compose_instead_of_undoing_each_other() {
        let net = Network::new(
            &names(&["n1", "n2", "n3"]),
            &names(&["c0"]),
            (Duration::ZERO, Duration::ZERO),
        );
        let cut = Fault::Partition {
            shape: Shape::OneWay,
            cuts: vec![("n1".into(), "n2".into())],
        };
        let pause = Fault::Pause {
            nodes: names(&["n2"]),
        };
        let both = net.desired([&cut, &pause].into_iter());
        let n1n2 = both[&(0, 1)];
        assert!(n1n2.cut_ab && !n1n2.cut_ba && n1n2.held);
        // The pause holds n2's links to everyone, clients included; not n1's link to n3.
        assert!(both[&(1, 3)].held && both[&(1, 2)].held);
        assert!(!both.contains_key(&(0, 2)));
        // The partition ending leaves the pause in force.
        let pause_only = net.desired([&pause].into_iter());
        assert!(pause_only[&(0, 1)].held && !pause_only[&(0, 1)].is_cut());
    }
}
