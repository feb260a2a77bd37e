//! Produce throughput and confirm latency of each mode, with real `tumult-broker` processes
//! on loopback: `cargo bench -p broker --bench produce`.
//!
//! Each mode gets a fresh cluster (three nodes for the clustered modes), eight concurrent
//! producers each publish 100-byte messages with publisher confirms, one at a time, for a
//! fixed count; the figures are messages confirmed per second and the p50/p99 time from
//! send to confirm.
#![allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time, outside any simulation

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker::kafka::{Acks, KafkaRequest, KafkaResponse};
use broker::{Client, TokioNetwork};

const PRODUCERS: usize = 8;
const MESSAGES_PER_PRODUCER: usize = 2_000;
const BODY_BYTES: usize = 100;

struct Cluster {
    children: Vec<Child>,
    addrs: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(mode: &str, nodes: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let listeners: Vec<_> = (0..nodes)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    drop(listeners);
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let children = (1..=nodes)
        .map(|id| {
            let peers: Vec<String> = (1..=nodes)
                .filter(|p| *p != id)
                .map(|p| format!("{p}={}", addrs[p - 1]))
                .collect();
            Command::new(env!("CARGO_BIN_EXE_tumult-broker"))
                .args([
                    "--mode",
                    mode,
                    "--id",
                    &id.to_string(),
                    "--listen",
                    &addrs[id - 1],
                ])
                .args(["--peers", &peers.join(",")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("n{id}")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("broker starts")
        })
        .collect();
    Cluster {
        children,
        addrs,
        _dir: dir,
    }
}

/// Finds a node that confirms a publish (the leader, in quorum mode), waiting for the
/// cluster to come up and elect.
async fn serving_node(cluster: &Cluster, queue: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for addr in &cluster.addrs {
            let Ok(mut client) = Client::connect(&TokioNetwork, addr, Duration::from_secs(1)).await else {
                continue;
            };
            if publish(&mut client, queue, b"warm-up".to_vec()).await.is_ok() {
                return addr.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no node of the cluster served within 20 s");
}

async fn producer(addr: String, queue: String) -> Vec<Duration> {
    let mut client = Client::connect(&TokioNetwork, &addr, Duration::from_secs(5))
        .await
        .unwrap();
    let body = vec![b'x'; BODY_BYTES];
    let mut latencies = Vec::with_capacity(MESSAGES_PER_PRODUCER);
    for _ in 0..MESSAGES_PER_PRODUCER {
        let sent = Instant::now();
        publish(&mut client, &queue, body.clone())
            .await
            .expect("publish confirmed");
        latencies.push(sent.elapsed());
    }
    latencies
}

/// A confirmed write: a publish, or in kafka mode an acks=all produce to partition 0 (the
/// queue name "bench" stands for it).
async fn publish(client: &mut Client, queue: &str, body: Vec<u8>) -> Result<(), broker::ClientError> {
    if queue == KAFKA_PARTITION_0 {
        let request = KafkaRequest::Produce {
            partition: 0,
            value: body,
            acks: Acks::All,
        };
        return match client.kafka(request).await? {
            KafkaResponse::Produced { .. } => Ok(()),
            other => panic!("unexpected {other:?}"),
        };
    }
    client.publish(queue, body).await.map(|_| ())
}

/// The name under which the benchmark means kafka partition 0.
const KAFKA_PARTITION_0: &str = "kafka:0";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(mode: &str, nodes: usize) {
    let cluster = start(mode, nodes);
    let queue = if mode == "kafka" {
        KAFKA_PARTITION_0
    } else {
        "bench"
    }
    .to_string();
    let addr = serving_node(&cluster, &queue).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|_| tokio::spawn(producer(addr.clone(), queue.clone())))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "{mode:<8} {nodes:>5} {:>12.0} {:>10.2} {:>10.2}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    println!(
        "{PRODUCERS} producers x {MESSAGES_PER_PRODUCER} messages of {BODY_BYTES} bytes, fsync always, loopback"
    );
    println!(
        "{:<8} {:>5} {:>12} {:>10} {:>10}",
        "mode", "nodes", "messages/s", "p50 ms", "p99 ms"
    );
    measure("single", 1).await;
    measure("classic", 3).await;
    measure("mirrored", 3).await;
    measure("quorum", 3).await;
    measure("kafka", 3).await;
}
