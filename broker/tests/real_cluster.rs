//! Three real `tumult-broker` processes on loopback, in quorum mode and in kafka mode:
//! produce, SIGKILL the leader, keep producing through the new leader, and find every
//! confirmed message.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker::kafka::{Acks, KafkaRequest, KafkaResponse};
use broker::{Client, ClientError, TokioNetwork};

const TIMEOUT: Duration = Duration::from_secs(2);
const QUEUE: &str = "orders";

struct Node {
    child: Option<Child>,
}

impl Node {
    fn start(id: u64, ports: &[u16], dir: &Path) -> Self {
        Self::start_mode("quorum", id, ports, dir)
    }

    fn start_mode(mode: &str, id: u64, ports: &[u16], dir: &Path) -> Self {
        let peers: Vec<String> = (1..=ports.len() as u64)
            .filter(|p| *p != id)
            .map(|p| format!("{p}=127.0.0.1:{}", ports[p as usize - 1]))
            .collect();
        let child = Command::new(env!("CARGO_BIN_EXE_tumult-broker"))
            .args(["--mode", mode, "--id", &id.to_string()])
            .args(["--listen", &format!("127.0.0.1:{}", ports[id as usize - 1])])
            .args(["--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(dir.join(format!("n{id}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("broker starts");
        Self { child: Some(child) }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A client that follows leadership: tries the hinted leader, else the next node.
struct Session {
    addrs: Vec<String>,
    current: String,
    client: Option<Client>,
}

impl Session {
    fn new(ports: &[u16]) -> Self {
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Self {
            current: addrs[0].clone(),
            addrs,
            client: None,
        }
    }

    fn move_on(&mut self, err: &ClientError) {
        self.client = None;
        self.current = match err.leader_hint() {
            Some(hint) => hint.to_string(),
            None => {
                let at = self.addrs.iter().position(|a| *a == self.current).unwrap_or(0);
                self.addrs[(at + 1) % self.addrs.len()].clone()
            }
        };
    }

    async fn client(&mut self) -> Result<&mut Client, ClientError> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&TokioNetwork, &self.current, TIMEOUT).await?);
        }
        Ok(self.client.as_mut().unwrap())
    }

    /// Publishes until confirmed (a retry after an unknown outcome may duplicate; never lose).
    async fn publish(&mut self, value: u32) -> String {
        for _ in 0..200 {
            let result = match self.client().await {
                Ok(c) => c.publish(QUEUE, value.to_string().into_bytes()).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => return self.current.clone(),
                Err(err) => {
                    self.move_on(&err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        panic!("value {value} was never confirmed");
    }

    async fn drain(&mut self) -> BTreeSet<u32> {
        let mut seen = BTreeSet::new();
        for _ in 0..2000 {
            let result = match self.client().await {
                Ok(c) => match c.get(QUEUE).await {
                    Ok(Some(d)) => {
                        seen.insert(String::from_utf8(d.body).unwrap().parse().unwrap());
                        c.ack(QUEUE, d.tag).await.map(|()| true)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(true) => {}
                Ok(false) => return seen,
                Err(err) => {
                    self.move_on(&err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        panic!("the queue never drained");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_cluster_survives_sigkill_of_its_leader_without_losing_confirmed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::start(id, &ports, dir.path())).collect();
    let mut session = Session::new(&ports);

    let mut leader = String::new();
    for value in 0..100 {
        leader = session.publish(value).await;
    }
    let leader_index = ports
        .iter()
        .position(|p| leader.ends_with(&format!(":{p}")))
        .unwrap();
    nodes[leader_index].kill();

    let mut new_leader = String::new();
    for value in 100..200 {
        new_leader = session.publish(value).await;
    }
    assert_ne!(new_leader, leader, "a new leader took over");

    let seen = session.drain().await;
    let confirmed: BTreeSet<u32> = (0..200).collect();
    let missing: Vec<_> = confirmed.difference(&seen).collect();
    assert!(missing.is_empty(), "confirmed but lost: {missing:?}");
}

impl Session {
    /// Sends to kafka partition 0 with acks=all until confirmed; returns the leader used.
    async fn produce(&mut self, value: u32) -> String {
        for _ in 0..400 {
            let request = KafkaRequest::Produce {
                partition: 0,
                value: value.to_string().into_bytes(),
                acks: Acks::All,
            };
            let result = match self.client().await {
                Ok(c) => c.kafka(request).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(KafkaResponse::Produced { .. }) => return self.current.clone(),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(err) => {
                    self.move_on(&err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        panic!("value {value} was never confirmed");
    }

    /// Reads partition 0 from offset 0 to its high watermark.
    async fn read_all(&mut self) -> BTreeSet<u32> {
        let mut seen = BTreeSet::new();
        let mut offset = 0;
        for _ in 0..2000 {
            let request = KafkaRequest::Poll {
                partition: 0,
                offset,
                max: 100,
                wait_ms: 0,
            };
            let result = match self.client().await {
                Ok(c) => c.kafka(request).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(KafkaResponse::Records { records, hw }) => {
                    if records.is_empty() && offset >= hw {
                        return seen;
                    }
                    for (o, v) in records {
                        seen.insert(String::from_utf8(v).unwrap().parse().unwrap());
                        offset = o + 1;
                    }
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(err) => {
                    self.move_on(&err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        panic!("partition 0 was never read to its end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_cluster_survives_sigkill_of_a_partition_leader_without_losing_acked_records() {
    a_log_survives_sigkill_of_a_partition_leader("kafka").await;
}

/// The same in quorum mode, whose partitions are Raft groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_log_survives_sigkill_of_a_partition_leader_without_losing_acked_records() {
    a_log_survives_sigkill_of_a_partition_leader("quorum").await;
}

async fn a_log_survives_sigkill_of_a_partition_leader(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start_mode(mode, id, &ports, dir.path()))
        .collect();
    let mut session = Session::new(&ports);

    let mut leader = String::new();
    for value in 0..100 {
        leader = session.produce(value).await;
    }
    let leader_index = ports
        .iter()
        .position(|p| leader.ends_with(&format!(":{p}")))
        .unwrap();
    nodes[leader_index].kill();

    let mut new_leader = String::new();
    for value in 100..200 {
        new_leader = session.produce(value).await;
    }
    assert_ne!(new_leader, leader, "another broker took over partition 0");

    let seen = session.read_all().await;
    let missing: Vec<u32> = (0..200).filter(|v| !seen.contains(v)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_offsets_and_waiting_polls_work_against_real_brokers() {
    log_requests_work_against_real_brokers("kafka").await;
}

/// The same requests in quorum mode, served by Raft groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_log_metadata_offsets_and_waiting_polls_work_against_real_brokers() {
    log_requests_work_against_real_brokers("quorum").await;
}

async fn log_requests_work_against_real_brokers(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let _nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start_mode(mode, id, &ports, dir.path()))
        .collect();
    let mut session = Session::new(&ports);
    session.produce(7).await;

    // Metadata from any node names partition 0's leader, and that node serves it. A Raft
    // follower learns the leader from its next heartbeat: ask until it names one.
    let addr = session.addrs[0].clone();
    let mut client = Client::connect(&TokioNetwork, &addr, TIMEOUT).await.unwrap();
    let mut leader = None;
    for _ in 0..100 {
        let leaders = client.metadata(&addr, &["0"]).await.unwrap();
        leader = leaders[0].1.clone();
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = leader.expect("partition 0 has a leader");
    let mut at_leader = Client::connect(&TokioNetwork, &leader, TIMEOUT).await.unwrap();
    let poll = |offset, wait_ms| KafkaRequest::Poll {
        partition: 0,
        offset,
        max: 10,
        wait_ms,
    };
    let Ok(KafkaResponse::Records { records, .. }) = at_leader.kafka(poll(0, 0)).await else {
        panic!()
    };
    assert_eq!(records.len(), 1);

    // A poll past the end waits for the next committed record instead of returning empty.
    #[allow(clippy::disallowed_methods)] // a real runtime, outside any simulation
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut session = session;
        session.produce(8).await;
        session
    });
    let Ok(KafkaResponse::Records { records, .. }) = at_leader.kafka(poll(1, 1_000)).await else {
        panic!()
    };
    assert_eq!(
        records.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![1],
        "woken by the new record"
    );
    let mut session = producer.await.unwrap();

    // Offsets are committed at the controller (following its hint) and read back.
    let commit = KafkaRequest::CommitOffset {
        group: "g".into(),
        partition: 0,
        offset: 2,
    };
    let mut committed = false;
    for _ in 0..100 {
        let result = match session.client().await {
            Ok(c) => c.kafka(commit.clone()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(KafkaResponse::OffsetCommitted) => {
                committed = true;
                break;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(err) => {
                // Quorum mode elects the offsets group's leader on its first use.
                session.move_on(&err);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(committed, "the offset commit never succeeded");
    let fetch = KafkaRequest::FetchOffset {
        group: "g".into(),
        partition: 0,
    };
    let client = session.client().await.unwrap();
    assert_eq!(
        client.kafka(fetch).await.unwrap(),
        KafkaResponse::Offset { offset: Some(2) }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_client_follows_leadership_in_quorum_and_kafka_clusters() {
    use broker::ClusterClient;
    use std::sync::Arc;

    // Quorum: publish through whatever node leads, across a SIGKILL of the leader.
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::start(id, &ports, dir.path())).collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut client = ClusterClient::new(Arc::new(TokioNetwork), addrs.clone(), TIMEOUT);
    let publish = async |client: &mut ClusterClient, value: u32| {
        for _ in 0..200 {
            if client
                .publish(QUEUE, value.to_string().into_bytes())
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{value} never confirmed");
    };
    for value in 0..20 {
        publish(&mut client, value).await;
    }
    let Some((_, leader)) = broker::Client::connect(&TokioNetwork, &addrs[0], TIMEOUT)
        .await
        .unwrap()
        .metadata(&addrs[0], &[QUEUE])
        .await
        .unwrap()
        .into_iter()
        .next()
    else {
        panic!("no metadata")
    };
    let leader = leader.expect("a leader");
    nodes[addrs.iter().position(|a| *a == leader).unwrap()].kill();
    for value in 20..40 {
        publish(&mut client, value).await;
    }
    let mut seen = BTreeSet::new();
    for _ in 0..400 {
        match client.get(QUEUE).await {
            Ok(Some(d)) => {
                seen.insert(String::from_utf8(d.body).unwrap().parse::<u32>().unwrap());
                let _ = client.ack(QUEUE, d.tag).await;
            }
            Ok(None) if seen.len() >= 40 => break,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(
        (0..40).all(|v| seen.contains(&v)),
        "missing: {:?}",
        (0..40).filter(|v| !seen.contains(v)).collect::<Vec<_>>()
    );

    // Kafka: produce and read back through the partition's leader, wherever it is.
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let _kafka: Vec<Node> = (1..=3)
        .map(|id| Node::start_mode("kafka", id, &ports, dir.path()))
        .collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut client = ClusterClient::new(Arc::new(TokioNetwork), addrs, TIMEOUT);
    let mut offsets = Vec::new();
    for value in 0..10u32 {
        for attempt in 0..200 {
            match client.produce(1, value.to_string().into_bytes(), Acks::All).await {
                Ok(offset) => {
                    offsets.push(offset);
                    break;
                }
                Err(err) if attempt == 199 => panic!("{value}: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    let (records, hw) = client.poll(1, 0, 100, 0).await.unwrap();
    assert_eq!(hw, 10);
    assert_eq!(records.iter().map(|(o, _)| *o).collect::<Vec<_>>(), offsets);
}
