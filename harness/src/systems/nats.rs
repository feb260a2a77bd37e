//! NATS JetStream (Debian's `nats-server` 2.9) as a system: the log workload in quorum
//! mode, each key a stream of its own replicated by Raft (`--rf` replicas, file storage), a
//! send a publish acknowledged with its stream sequence (offset = sequence - 1), a poll the
//! stream leader's messages from an offset, and a consumer group's committed offsets kept
//! in a replicated key-value bucket. Runs only as real processes.
//!
//! Who leads what is asked of every node (stream info through that node's connection),
//! and the runtime wants all of them to agree: a partitioned node may still name itself
//! leader, so one node's word is never enough.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use std::error::Error as _;

use async_nats::jetstream::{self, context::PublishErrorKind, stream::LastRawMessageErrorKind};
use broker::kafka::Acks;
use broker::{Mode, Seams};
use workloads::{ApiError, ApiFuture, Clients, Family, LogApi, QueueApi, Records};

use super::{host_of, Answer, Cluster, Launch, LocalFuture, NodeLayout, Reach, System};
use crate::real::{find_program, Check};
use crate::spec::TestSpec;

/// The port a node serves clients on.
const PORT: u16 = 4222;
/// The port nodes route to each other on.
const ROUTE_PORT: u16 = 6222;
/// The stream holding consumer groups' committed offsets, one subject per group and key,
/// the last message of a subject its offset (a key-value bucket is the same thing, but
/// async-nats cannot read nats-server 2.9's reply to creating one).
const OFFSETS: &str = "tumult-offsets";

fn offset_subject(group: &str, key: u32) -> String {
    format!("tumult.offsets.{group}.{key}")
}
/// How long forming the cluster (streams and bucket created) may take.
const FORM_BUDGET: Duration = Duration::from_secs(30);

/// NATS JetStream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nats;

/// The stream of workload key `key`, and its subject.
fn stream_name(key: u32) -> String {
    format!("k{key}")
}

fn subject(key: u32) -> String {
    format!("tumult.k{key}")
}

/// The replicas each stream gets: `--rf`, at most the nodes.
fn replicas(spec: &TestSpec) -> usize {
    spec.kafka.rf.clamp(1, spec.nodes.max(1))
}

/// A node's configuration file: its name, client and route addresses, and where
/// JetStream keeps its data.
fn config(node: &NodeLayout) -> String {
    let host = host_of(&node.listen);
    let store = node.data_dir.join("js");
    let mut text = format!(
        "server_name: \"n{id}\"\nlisten: \"{host}:{PORT}\"\njetstream {{\n  store_dir: \"{store}\"\n}}\n",
        id = node.id,
        store = store.display()
    );
    if node.addrs.len() > 1 {
        let routes: Vec<String> = node
            .addrs
            .iter()
            .enumerate()
            .filter(|(i, _)| i + 1 != node.id)
            .map(|(_, addr)| format!("\"nats-route://{}:{ROUTE_PORT}\"", host_of(addr)))
            .collect();
        text.push_str(&format!(
            "cluster {{\n  name: \"tumult\"\n  listen: \"{host}:{ROUTE_PORT}\"\n  routes: [{}]\n}}\n",
            routes.join(", ")
        ));
    }
    text
}

fn nats_server() -> Option<PathBuf> {
    find_program("nats-server")
}

/// A connection to the nodes at `addrs`, trying them in that order, with `timeout` for
/// connecting and for every request.
async fn connect(addrs: &[String], timeout: Duration, discover: bool) -> Result<jetstream::Context, String> {
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .retain_servers_order();
    if !discover {
        options = options.ignore_discovered_servers();
    }
    let client = options
        .connect(addrs.iter().map(String::as_str).collect::<Vec<_>>().as_slice())
        .await
        .map_err(|e| format!("connect to {}: {e}", addrs.join(",")))?;
    let mut context = jetstream::new(client);
    context.set_timeout(timeout);
    Ok(context)
}

/// Creates every stream and the offsets stream.
async fn create_all(js: &jetstream::Context, names: &[String], replicas: usize) -> Result<(), String> {
    for name in names {
        let key: u32 = name
            .parse()
            .map_err(|_| format!("key '{name}' is not a number"))?;
        js.get_or_create_stream(jetstream::stream::Config {
            name: stream_name(key),
            subjects: vec![subject(key)],
            num_replicas: replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {}: {e}", stream_name(key)))?;
    }
    js.get_or_create_stream(jetstream::stream::Config {
        name: OFFSETS.into(),
        subjects: vec!["tumult.offsets.>".into()],
        num_replicas: replicas,
        storage: jetstream::stream::StorageType::File,
        max_messages_per_subject: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("stream {OFFSETS}: {e}"))?;
    Ok(())
}

impl System for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn about(&self) -> &'static str {
        "NATS JetStream (nats-server from Debian): one Raft-replicated stream per key, --rf replicas; real processes only"
    }

    fn families(&self) -> &'static [Family] {
        &[Family::Log]
    }

    fn modes(&self) -> &'static [Mode] {
        &[Mode::Quorum]
    }

    fn port(&self) -> u16 {
        PORT
    }

    fn prerequisites(&self) -> Vec<Check> {
        vec![Check {
            what: "nats-server (nats-server)".into(),
            ok: nats_server().is_some(),
            fix: "apt-get install -y nats-server".into(),
            optional: false,
        }]
    }

    fn spec_refusal(&self, spec: &TestSpec) -> Option<String> {
        (spec.acks != Acks::All).then(|| {
            "system nats: a JetStream publish is acknowledged once its stream's Raft group committed it; there is no --acks 0 or 1".to_string()
        })
    }

    fn own_fsync(&self) -> Option<&'static str> {
        Some("fsyncs as nats-server 2.9.10 decides (every 2 minutes; acknowledgements do not wait for it)")
    }

    fn in_process(&self, _: &TestSpec, _: &NodeLayout, _: Seams) -> Option<LocalFuture<'static, ()>> {
        None
    }

    fn launch(&self, _spec: &TestSpec, node: &NodeLayout) -> Result<Launch, String> {
        let program = nats_server().ok_or("nats-server is not installed (apt-get install -y nats-server)")?;
        let path = node.data_dir.join("nats.conf");
        std::fs::write(&path, config(node)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Launch {
            program,
            args: vec!["-c".into(), path.display().to_string()],
            env: Vec::new(),
        })
    }

    fn form<'a>(
        &'a self,
        spec: &'a TestSpec,
        cluster: &'a Cluster<'a>,
        names: &'a [String],
    ) -> LocalFuture<'a, Result<(), String>> {
        Box::pin(async move { form(cluster.reach, names, replicas(spec)).await })
    }

    fn leaders<'a>(&'a self, reach: &'a Reach, names: &'a [String]) -> LocalFuture<'a, Vec<Option<Answer>>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(reach.nodes.len());
            for addr in &reach.nodes {
                let Ok(js) = connect(std::slice::from_ref(addr), reach.request_timeout, false).await else {
                    answers.push(None);
                    continue;
                };
                let mut answer = Vec::with_capacity(names.len());
                for name in names {
                    let stream = name
                        .parse::<u32>()
                        .map(stream_name)
                        .unwrap_or_else(|_| name.clone());
                    let leader = match js.get_stream(&stream).await {
                        Ok(stream) => stream
                            .cached_info()
                            .cluster
                            .as_ref()
                            .and_then(|c| c.leader.clone()),
                        Err(_) => None,
                    };
                    answer.push((name.clone(), leader));
                }
                answers.push(Some(answer));
            }
            answers
        })
    }

    fn data_files(&self, _mode: Mode, data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        // The streams' message blocks (`<account>/streams/<stream>/msgs/*.blk`), the files
        // Jepsen damaged in its 2025 test: not the meta layer's Raft log in `$SYS`, which
        // is larger early in a run, nor the configuration file beside the store.
        let files = super::every_file(&data_dir.join("js"))?;
        Ok(files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "blk"))
            .filter(|f| f.components().any(|c| c.as_os_str() == "streams"))
            .collect())
    }

    fn clients(&self, reach: &Reach) -> Rc<dyn Clients> {
        Rc::new(NatsClients { reach: reach.clone() })
    }
}

/// Creates the streams and bucket through any node, retrying while JetStream elects its
/// meta leader.
async fn form(reach: &Reach, names: &[String], replicas: usize) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    let mut last = String::from("no attempt");
    while started.elapsed() < FORM_BUDGET {
        match connect(&reach.nodes, reach.request_timeout, true).await {
            Ok(js) => match create_all(&js, names, replicas).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "streams not created within {} s: {last}",
        FORM_BUDGET.as_secs()
    ))
}

/// NATS clients: logs only.
struct NatsClients {
    reach: Reach,
}

impl Clients for NatsClients {
    fn queue(&self, _process: usize) -> Option<Box<dyn QueueApi>> {
        None
    }

    fn log(&self, process: usize) -> Option<Box<dyn LogApi>> {
        Some(Box::new(NatsLog {
            reach: self.reach.clone(),
            node: process,
            context: None,
            offsets: None,
        }))
    }
}

/// One process's JetStream connection: to its node first, then the others in turn; after
/// an error whose outcome is unknown it starts again from the next node, as a client does
/// when a server stops answering.
struct NatsLog {
    reach: Reach,
    node: usize,
    context: Option<jetstream::Context>,
    offsets: Option<jetstream::stream::Stream<()>>,
}

impl NatsLog {
    async fn context(&mut self) -> Result<jetstream::Context, ApiError> {
        if let Some(js) = &self.context {
            return Ok(js.clone());
        }
        let n = self.reach.nodes.len();
        let order: Vec<String> = (0..n)
            .map(|i| self.reach.nodes[(self.node + i) % n].clone())
            .collect();
        match connect(&order, self.reach.request_timeout, true).await {
            Ok(js) => {
                self.context = Some(js.clone());
                Ok(js)
            }
            Err(e) => {
                self.node += 1;
                // Nothing was sent.
                Err(ApiError::Definite(e))
            }
        }
    }

    /// Drops the connection and moves on to the next node; returns `err`.
    fn move_on(&mut self, err: ApiError) -> ApiError {
        self.context = None;
        self.offsets = None;
        self.node += 1;
        err
    }

    async fn offsets(&mut self) -> Result<jetstream::stream::Stream<()>, ApiError> {
        if let Some(stream) = &self.offsets {
            return Ok(stream.clone());
        }
        let js = self.context().await?;
        match js.get_stream_no_info(OFFSETS).await {
            Ok(stream) => {
                self.offsets = Some(stream.clone());
                Ok(stream)
            }
            Err(e) => Err(self.move_on(ApiError::Definite(format!("stream {OFFSETS}: {e}")))),
        }
    }
}

/// A publish error as the workloads see it. Before the request reached the connection,
/// nothing was sent; "no responders" means no server took it; a JetStream error reply
/// is a refusal. A timeout or a dropped connection may have published.
fn publish_error(err: async_nats::jetstream::context::PublishError, sent: bool) -> ApiError {
    let refused = err
        .source()
        .is_some_and(|s| s.downcast_ref::<async_nats::jetstream::Error>().is_some());
    let definite = !sent || err.kind() == PublishErrorKind::StreamNotFound || refused;
    match definite {
        true => ApiError::Definite(format!("publish: {err}")),
        false => ApiError::Indefinite(format!("publish: {err}")),
    }
}

impl LogApi for NatsLog {
    fn send<'a>(&'a mut self, key: u32, value: Vec<u8>, _acks: Acks) -> ApiFuture<'a, Option<u64>> {
        Box::pin(async move {
            let js = self.context().await?;
            let ack = match js.publish(subject(key), value.into()).await {
                Ok(ack) => ack,
                Err(err) => return Err(self.move_on(publish_error(err, false))),
            };
            match ack.await {
                Ok(ack) if ack.sequence > 0 => Ok(Some(ack.sequence - 1)),
                Ok(ack) => Err(ApiError::Indefinite(format!(
                    "acknowledged with sequence {}",
                    ack.sequence
                ))),
                Err(err) => Err(self.move_on(publish_error(err, true))),
            }
        })
    }

    fn poll<'a>(&'a mut self, key: u32, offset: u64, max: u32) -> ApiFuture<'a, Records> {
        Box::pin(async move {
            let js = self.context().await?;
            let stream = match js.get_stream_no_info(stream_name(key)).await {
                Ok(stream) => stream,
                Err(e) => {
                    return Err(self.move_on(ApiError::Definite(format!("stream {}: {e}", stream_name(key)))))
                }
            };
            let mut records = Vec::new();
            let mut next = offset;
            // Message by message from the stream leader, which holds only what its Raft
            // group committed, until one past the last (no message) or `max`. Each asks
            // for the first message at or after a sequence, so a gap (messages the stream
            // lost or deleted) is stepped over rather than taken for the end.
            let subject = subject(key);
            while records.len() < max as usize {
                match stream.get_first_raw_message_by_subject(&subject, next + 1).await {
                    Ok(message) => {
                        records.push((message.sequence.saturating_sub(1), message.payload.to_vec()));
                        next = message.sequence;
                    }
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                        return Ok(Records { records, end: next });
                    }
                    Err(e) if records.is_empty() => {
                        // A read changes nothing: it certainly did not happen.
                        return Err(
                            self.move_on(ApiError::Definite(format!("read {}: {e}", stream_name(key))))
                        );
                    }
                    Err(_) => break,
                }
            }
            // Stopped at `max` or after a failed read: more may follow.
            Ok(Records {
                records,
                end: u64::MAX,
            })
        })
    }

    fn committed<'a>(&'a mut self, group: &'a str, key: u32) -> ApiFuture<'a, Option<u64>> {
        Box::pin(async move {
            let offsets = self.offsets().await?;
            match offsets
                .get_last_raw_message_by_subject(&offset_subject(group, key))
                .await
            {
                Ok(message) => Ok(std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|t| t.parse().ok())),
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(self.move_on(ApiError::Definite(format!("offset of {group}.{key}: {e}")))),
            }
        })
    }

    fn commit<'a>(&'a mut self, group: &'a str, key: u32, offset: u64) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let js = self.context().await?;
            let body = offset.to_string().into_bytes();
            let ack = match js.publish(offset_subject(group, key), body.into()).await {
                Ok(ack) => ack,
                Err(err) => return Err(self.move_on(publish_error(err, false))),
            };
            match ack.await {
                Ok(_) => Ok(()),
                Err(err) => Err(self.move_on(publish_error(err, true))),
            }
        })
    }

    fn reset(&mut self) {
        self.context = None;
        self.offsets = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_config_names_it_routes_to_the_others_and_keeps_jetstream_under_its_dir() {
        let node = NodeLayout {
            id: 2,
            listen: "10.213.7.3:4222".into(),
            addrs: vec![
                "10.213.7.2:4222".into(),
                "10.213.7.3:4222".into(),
                "10.213.7.4:4222".into(),
            ],
            data_dir: "/r/nodes/n2".into(),
            seed: 1,
        };
        let text = config(&node);
        assert!(text.contains("server_name: \"n2\""), "{text}");
        assert!(text.contains("listen: \"10.213.7.3:4222\""), "{text}");
        assert!(text.contains("store_dir: \"/r/nodes/n2/js\""), "{text}");
        assert!(
            text.contains("routes: [\"nats-route://10.213.7.2:6222\", \"nats-route://10.213.7.4:6222\"]"),
            "{text}"
        );
        let single = NodeLayout {
            addrs: vec!["10.213.7.2:4222".into()],
            id: 1,
            ..node
        };
        assert!(!config(&single).contains("cluster"));
    }
}
