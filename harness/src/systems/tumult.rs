//! tumult's own broker as a system: every mode, both workload families, in the
//! simulation (a task on the broker's seams) and as real `tumult-broker` processes. Its
//! nodes find each other from their `--peers` argument, so forming the cluster is waiting
//! for them to agree; who leads what is its metadata request.

use std::rc::Rc;

use broker::{Broker, BrokerConfig, Client, Limits, Mode, Seams};
use workloads::{Clients, Family};

use super::{host_of, Answer, Launch, LocalFuture, NodeLayout, Reach, System, TumultClients};
use crate::real::Check;
use crate::spec::TestSpec;

/// The port a node serves clients and peers on.
pub const PORT: u16 = 7000;

/// tumult's reference broker.
#[derive(Debug, Clone, Copy, Default)]
pub struct TumultBroker;

impl TumultBroker {
    /// Every other node as `id=host:port`.
    fn peers(node: &NodeLayout) -> impl Iterator<Item = (usize, &String)> {
        node.addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| (i + 1, addr))
            .filter(move |(id, _)| *id != node.id)
    }

    /// A real node's arguments: its address, data directory, mode, id, peers and seed,
    /// then the run's broker knobs as `tumult test` spells them.
    fn args(spec: &TestSpec, node: &NodeLayout) -> Vec<String> {
        let peers: Vec<String> = Self::peers(node)
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect();
        let mut args = vec![
            "--listen".to_string(),
            node.listen.clone(),
            "--data-dir".into(),
            node.data_dir.display().to_string(),
            "--mode".into(),
            spec.mode.to_string(),
            "--id".into(),
            node.id.to_string(),
            "--peers".into(),
            peers.join(","),
            "--seed".into(),
            node.seed.to_string(),
        ];
        args.extend(spec.broker_knob_args());
        args
    }
}

impl System for TumultBroker {
    fn name(&self) -> &'static str {
        super::DEFAULT
    }

    fn about(&self) -> &'static str {
        "tumult's reference broker: single, classic, mirrored, quorum and kafka modes, simulated or as tumult-broker processes"
    }

    fn families(&self) -> &'static [Family] {
        &[Family::Queue, Family::Log]
    }

    fn modes(&self) -> &'static [Mode] {
        &[
            Mode::Single,
            Mode::Classic,
            Mode::Mirrored,
            Mode::Quorum,
            Mode::Kafka,
        ]
    }

    fn port(&self) -> u16 {
        PORT
    }

    fn serves(&self, family: Family, mode: Mode) -> bool {
        // The log is kafka mode's and quorum mode's (a Raft group per partition); the
        // other modes are queue designs, and kafka mode serves no queue.
        match family {
            Family::Log => matches!(mode, Mode::Kafka | Mode::Quorum),
            Family::Queue => mode != Mode::Kafka,
        }
    }

    fn prerequisites(&self) -> Vec<Check> {
        vec![Check {
            what: "tumult-broker beside tumult".into(),
            ok: crate::real::broker_binary().is_some(),
            fix: "cargo build --release --bin tumult-broker (it lands beside tumult in target/release/)"
                .into(),
            optional: false,
        }]
    }

    fn simulated(&self) -> bool {
        true
    }

    fn in_process(
        &self,
        spec: &TestSpec,
        node: &NodeLayout,
        seams: Seams,
    ) -> Option<LocalFuture<'static, ()>> {
        let config = BrokerConfig {
            mode: spec.mode,
            id: node.id as u64,
            peers: Self::peers(node)
                .map(|(id, addr)| (id as u64, addr.clone()))
                .collect(),
            tick_ms: 10,
            kafka: spec.kafka,
            listen: node.listen.clone(),
            data_dir: node.data_dir.clone(),
            fsync: spec.fsync,
            durable: spec.durable,
            mirrored: spec.mirrored,
            limits: Limits::default(),
        };
        Some(Box::pin(async move {
            // A broker that stops (its storage failed, or recovery could not read it) is
            // a process that exited: the nemesis restarts it, as a service manager would.
            if let Err(err) = Broker::new(config, seams).serve().await {
                tracing::error!(%err, "broker stopped");
            }
        }))
    }

    fn launch(&self, spec: &TestSpec, node: &NodeLayout) -> Result<Launch, String> {
        let program = crate::real::broker_binary().ok_or("tumult-broker is not beside tumult")?;
        Ok(Launch {
            program,
            args: Self::args(spec, node),
            env: Vec::new(),
        })
    }

    fn leaders<'a>(&'a self, reach: &'a Reach, names: &'a [String]) -> LocalFuture<'a, Vec<Option<Answer>>> {
        Box::pin(async move {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut answers = Vec::with_capacity(reach.nodes.len());
            for addr in &reach.nodes {
                let answer = match Client::connect(reach.network.as_ref(), addr, reach.request_timeout).await
                {
                    Ok(mut client) => client.metadata(addr, &names).await.ok(),
                    Err(_) => None,
                };
                answers.push(answer.map(|table| {
                    table
                        .into_iter()
                        .map(|(name, leader)| (name, leader.map(|a| host_of(&a).to_string())))
                        .collect()
                }));
            }
            answers
        })
    }

    fn clients(&self, reach: &Reach) -> Rc<dyn Clients> {
        Rc::new(TumultClients { reach: reach.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_node_is_told_its_address_its_peers_and_the_runs_broker_knobs() {
        let mut spec = TestSpec::new(3);
        spec.mode = Mode::Kafka;
        spec.nodes = 3;
        spec.kafka.rf = 3;
        spec.kafka.min_isr = 2;
        let node = NodeLayout {
            id: 2,
            listen: "10.9.0.3:7000".into(),
            addrs: vec![
                "10.9.0.2:7000".into(),
                "10.9.0.3:7000".into(),
                "10.9.0.4:7000".into(),
            ],
            data_dir: "/tmp/run/nodes/n2".into(),
            seed: 77,
        };
        let args = TumultBroker::args(&spec, &node);
        let arg = |name: &str| {
            let at = args.iter().position(|a| a == name);
            at.and_then(|i| args.get(i + 1)).cloned()
        };
        assert_eq!(arg("--listen").as_deref(), Some("10.9.0.3:7000"));
        assert_eq!(arg("--id").as_deref(), Some("2"));
        assert_eq!(arg("--peers").as_deref(), Some("1=10.9.0.2:7000,3=10.9.0.4:7000"));
        assert_eq!(arg("--mode").as_deref(), Some("kafka"));
        assert_eq!(arg("--min-isr").as_deref(), Some("2"));
        assert_eq!(arg("--seed").as_deref(), Some("77"));
    }

    #[test]
    fn a_simulated_node_peers_with_every_other_node_by_id() {
        let node = NodeLayout {
            id: 1,
            listen: "0.0.0.0:7000".into(),
            addrs: vec!["n1:7000".into(), "n2:7000".into(), "n3:7000".into()],
            data_dir: "/data".into(),
            seed: 1,
        };
        let peers: Vec<(usize, String)> = TumultBroker::peers(&node).map(|(i, a)| (i, a.clone())).collect();
        assert_eq!(
            peers,
            vec![(2, "n2:7000".to_string()), (3, "n3:7000".to_string())]
        );
        assert_eq!(host_of("n2:7000"), "n2");
    }
}
