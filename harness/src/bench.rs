//! `tumult bench`: how fast the simulation runs, against bare turmoil carrying the same
//! traffic between the same hosts with no broker, measured on this machine in one process.

use std::time::Duration;

use broker::Mode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::run::{run, HarnessError};
use crate::simlog::DriverClock;
use crate::spec::{FaultKind, FaultSet, TestSpec};

/// Port the bare hosts listen on.
const PORT: u16 = 7000;
/// Bytes per bare message: about a small produce request.
const FRAME_BYTES: usize = 100;

/// One measured simulation.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Simulated time covered.
    pub simulated: Duration,
    /// Wall-clock time it took.
    pub wall: Duration,
    /// Writes (TCP segments) carried between hosts.
    pub messages: u64,
}

impl Figures {
    /// Simulated seconds per wall-clock second.
    pub fn speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The standard run: 5 nodes in kafka mode, the log workload, partitions and kills, 60
/// simulated seconds of faults.
pub fn standard_spec(seed: u64) -> TestSpec {
    TestSpec {
        mode: Mode::Kafka,
        nodes: 5,
        workload: "log".into(),
        nemesis: FaultSet(vec![FaultKind::Kill, FaultKind::Partition]),
        time_limit_s: 60,
        kafka: broker::kafka::KafkaSettings {
            rf: 3,
            ..broker::kafka::KafkaSettings::default()
        },
        ..TestSpec::new(seed)
    }
}

/// The wall clock, for timing what the user waits for; never read inside a simulation.
#[allow(clippy::disallowed_methods)] // wall-clock time measured around the simulation or a check
pub fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Runs `spec` with its history going nowhere and no logging, and times it.
pub fn time_run(spec: &TestSpec) -> Result<Figures, HarnessError> {
    let started = wall_now();
    let outcome = run(spec, Box::new(std::io::sink()), &DriverClock::default())?;
    Ok(Figures {
        simulated: outcome.simulated,
        wall: started.elapsed(),
        messages: outcome.messages,
    })
}

/// Bare turmoil: `nodes` server hosts and `clients` client hosts, the same names and
/// latency as a run, where every host streams `FRAME_BYTES` frames to every server host
/// over one connection each, evenly paced so that `messages` frames cross in `simulated`.
pub fn time_bare_turmoil(
    nodes: usize,
    clients: usize,
    messages: u64,
    simulated: Duration,
    latency: (Duration, Duration),
) -> Figures {
    let started = wall_now();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(simulated + Duration::from_secs(60))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(latency.0)
        .max_message_latency(latency.1)
        .rng_seed(1)
        .build();
    let servers: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    let mut senders: Vec<(String, Vec<String>)> = Vec::new();
    for server in &servers {
        let peers: Vec<String> = servers.iter().filter(|s| *s != server).cloned().collect();
        senders.push((server.clone(), peers));
    }
    for c in 0..clients {
        senders.push((format!("c{c}"), servers.clone()));
    }
    let links: u64 = senders.iter().map(|(_, to)| to.len() as u64).sum();
    let per_link = (messages / links.max(1)).max(1);
    let gap = simulated.div_f64(per_link as f64);
    for (host, to) in senders {
        let is_server = servers.contains(&host);
        let software = move || {
            let to = to.clone();
            async move {
                if is_server {
                    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                    tokio::task::spawn_local(async move {
                        while let Ok((mut stream, _)) = listener.accept().await {
                            tokio::task::spawn_local(async move {
                                let mut frame = [0u8; FRAME_BYTES];
                                while stream.read_exact(&mut frame).await.is_ok() {}
                            });
                        }
                    });
                }
                // Let every server bind before anyone connects.
                tokio::time::sleep(Duration::from_millis(10)).await;
                for peer in to {
                    tokio::task::spawn_local(async move {
                        let Ok(mut stream) = turmoil::net::TcpStream::connect((peer.as_str(), PORT)).await
                        else {
                            return;
                        };
                        let frame = [7u8; FRAME_BYTES];
                        for _ in 0..per_link {
                            if stream.write_all(&frame).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(gap).await;
                        }
                    });
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        };
        sim.host(host.as_str(), software);
    }
    while sim.elapsed() < simulated {
        sim.step().expect("bare hosts do not fail");
    }
    Figures {
        simulated: sim.elapsed(),
        wall: started.elapsed(),
        messages: per_link * links,
    }
}
