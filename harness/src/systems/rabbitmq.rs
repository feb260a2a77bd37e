//! RabbitMQ (Debian's `rabbitmq-server` 3.10) as a system: the queue workload in the modes
//! RabbitMQ has, over AMQP 0-9-1 (lapin) with persistent messages, publisher confirms,
//! manual acks and requeue on nack. `single` is one node; `classic` a cluster with a
//! classic durable queue on `n1`, clients spread over every node; `mirrored` the same queue
//! under an `ha-mode` policy from `--mirrors`, `--sync-mode` and `--promote-unsynced`;
//! `quorum` a quorum queue. `--partition-handling` sets `cluster_partition_handling`.
//! Runs only as real processes.
//!
//! Each node is an Erlang node named `rabbit@n<i>`: it runs with host name `n<i>` in a UTS
//! namespace of its own (every node's name resolves in every namespace, see
//! [`crate::real::net`]), with its own HOME (holding the run's cookie) and directories
//! under its data directory. The cluster is formed with `rabbitmqctl` inside each node's
//! namespace, which must run with the node's host name too.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use broker::mirrored::{PartitionHandling, SyncMode};
use broker::{FsyncPolicy, Mode, Network, Seams};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use workloads::{ApiError, ApiFuture, Clients, Delivery, Family, LogApi, QueueApi};

use super::{Answer, Cluster, Launch, LocalFuture, NodeLayout, Reach, System};
use crate::real::Check;
use crate::spec::TestSpec;

/// The AMQP port.
const PORT: u16 = 5672;
/// The management plugin's HTTP port: where tumult asks who leads a queue.
const MANAGEMENT_PORT: u16 = 15672;
const BIN: &str = "/usr/lib/rabbitmq/bin";
/// How long a node may take to boot, and a cluster command to answer.
const BOOT: Duration = Duration::from_secs(90);
const COMMAND: Duration = Duration::from_secs(60);

/// RabbitMQ.
#[derive(Debug, Clone, Copy, Default)]
pub struct RabbitMq;

fn server() -> PathBuf {
    Path::new(BIN).join("rabbitmq-server")
}

/// What every node and every `rabbitmqctl` of node `id` runs with.
fn env(data_dir: &Path, id: usize) -> Vec<(String, String)> {
    let at = |p: &str| data_dir.join(p).display().to_string();
    vec![
        ("HOME".into(), at("home")),
        ("RABBITMQ_NODENAME".into(), format!("rabbit@n{id}")),
        ("RABBITMQ_MNESIA_BASE".into(), at("mnesia")),
        ("RABBITMQ_LOG_BASE".into(), at("log")),
        ("RABBITMQ_CONFIG_FILE".into(), at("rabbitmq.conf")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE".into(), at("enabled_plugins")),
        ("RABBITMQ_PID_FILE".into(), at("rabbit.pid")),
    ]
}

/// `program args` as node `id`'s host: in a UTS namespace of its own named `n<id>`.
fn as_host(id: usize, command: &str, env: Vec<(String, String)>) -> Launch {
    Launch {
        program: "unshare".into(),
        args: vec![
            "--uts".into(),
            "sh".into(),
            "-c".into(),
            format!("hostname n{id} && exec {command}"),
        ],
        env,
    }
}

/// `rabbitmqctl -n rabbit@n<id> ARGS` run as node `id`'s host.
fn ctl(node: &NodeLayout, args: &str) -> Launch {
    as_host(
        node.id,
        &format!("{BIN}/rabbitmqctl -n rabbit@n{} {args}", node.id),
        env(&node.data_dir, node.id),
    )
}

/// rabbitmq.conf for a run.
fn config(spec: &TestSpec) -> String {
    let handling = match spec.mirrored.partition_handling {
        PartitionHandling::Ignore => "ignore",
        PartitionHandling::PauseMinority => "pause_minority",
        PartitionHandling::Autoheal => "autoheal",
    };
    // A lost peer is noticed in about 4-5 s instead of the default ~70 s: the nemesis's
    // partitions last 2-8 s, and one RabbitMQ never notices tests nothing of its handling.
    format!(
        "loopback_users = none\nlisteners.tcp.default = {PORT}\ncluster_partition_handling = {handling}\nnet_ticktime = 4\nlog.file.level = info\nmanagement.tcp.port = {MANAGEMENT_PORT}\nmanagement_agent.disable_metrics_collector = true\n"
    )
}

/// The `ha-mode` policy's definition for the run's mirrored settings.
fn ha_policy(spec: &TestSpec) -> String {
    let mode = match spec.mirrored.mirrors {
        None => r#""ha-mode":"all""#.to_string(),
        Some(n) => format!(r#""ha-mode":"exactly","ha-params":{}"#, n + 1),
    };
    let sync = match spec.mirrored.sync {
        SyncMode::Manual => "manual",
        SyncMode::Automatic => "automatic",
    };
    let promote = if spec.mirrored.promote_unsynced {
        "always"
    } else {
        "when-synced"
    };
    format!(
        r#"{{{mode},"ha-sync-mode":"{sync}","ha-promote-on-failure":"{promote}","ha-promote-on-shutdown":"{promote}"}}"#
    )
}

/// The queue's declaration arguments in `mode`.
fn queue_arguments(mode: Mode) -> FieldTable {
    let mut arguments = FieldTable::default();
    if mode == Mode::Quorum {
        arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    }
    arguments
}

async fn connect(addr: &str, timeout: Duration) -> Result<Connection, String> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    let uri = format!("amqp://guest:guest@{addr}/%2f?heartbeat=5");
    match tokio::time::timeout(timeout, Connection::connect(&uri, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(format!("connect to {addr}: {e}")),
        Err(_) => Err(format!("connect to {addr}: no answer within {timeout:?}")),
    }
}

impl System for RabbitMq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn about(&self) -> &'static str {
        "RabbitMQ (rabbitmq-server from Debian): classic, mirrored (ha-mode policy) and quorum queues over AMQP; real processes only"
    }

    fn families(&self) -> &'static [Family] {
        &[Family::Queue]
    }

    fn modes(&self) -> &'static [Mode] {
        &[Mode::Single, Mode::Classic, Mode::Mirrored, Mode::Quorum]
    }

    fn port(&self) -> u16 {
        PORT
    }

    fn prerequisites(&self) -> Vec<Check> {
        vec![Check {
            what: "rabbitmq-server (rabbitmq-server)".into(),
            ok: server().is_file(),
            fix: "apt-get install -y rabbitmq-server".into(),
            optional: false,
        }]
    }

    fn spec_refusal(&self, spec: &TestSpec) -> Option<String> {
        if spec.fsync != FsyncPolicy::Always {
            return Some("system rabbitmq: RabbitMQ decides its own fsyncs; --fsync does not apply".into());
        }
        None
    }

    fn own_fsync(&self) -> Option<&'static str> {
        Some("fsyncs as RabbitMQ decides (before confirming persistent messages)")
    }

    fn in_process(&self, _: &TestSpec, _: &NodeLayout, _: Seams) -> Option<LocalFuture<'static, ()>> {
        None
    }

    fn launch(&self, spec: &TestSpec, node: &NodeLayout) -> Result<Launch, String> {
        let dir = &node.data_dir;
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("cannot create {sub}: {e}"))?;
        }
        // One cookie for the run's nodes, readable by its owner only, as Erlang insists.
        let cookie = dir.join("home/.erlang.cookie");
        write("home/.erlang.cookie", &format!("TUMULT{:016X}", spec.seed))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
                .map_err(|e| format!("cannot protect {}: {e}", cookie.display()))?;
        }
        write("rabbitmq.conf", &config(spec))?;
        // The management API is the one place a node says where a queue lives.
        write("enabled_plugins", "[rabbitmq_management].\n")?;
        Ok(as_host(
            node.id,
            &server().display().to_string(),
            env(dir, node.id),
        ))
    }

    fn form<'a>(
        &'a self,
        spec: &'a TestSpec,
        cluster: &'a Cluster<'a>,
        names: &'a [String],
    ) -> LocalFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let run = |node: &NodeLayout, args: &str, timeout: Duration| {
                cluster.shell.run(node.id, &ctl(node, args), timeout)
            };
            for node in cluster.nodes {
                // await_startup gives up at once while the node has not yet registered
                // with epmd: asked again until the node is up or the boot bound passes.
                let started = tokio::time::Instant::now();
                loop {
                    match run(node, "await_startup", BOOT) {
                        Ok(_) => break,
                        Err(e) if started.elapsed() >= BOOT => return Err(e),
                        Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                }
            }
            let Some((first, rest)) = cluster.nodes.split_first() else {
                return Ok(());
            };
            for node in rest {
                run(node, "stop_app", COMMAND)?;
                run(node, &format!("join_cluster rabbit@n{}", first.id), COMMAND)?;
                run(node, "start_app", COMMAND)?;
            }
            if spec.mode == Mode::Mirrored {
                let pattern = names.iter().map(|n| regex_quote(n)).collect::<Vec<_>>().join("|");
                run(
                    first,
                    &format!(
                        "set_policy tumult-ha '^({pattern})$' '{}' --apply-to queues",
                        ha_policy(spec)
                    ),
                    COMMAND,
                )?;
            }
            // The queues, declared through n1: a classic queue lives there.
            let connection = connect(&cluster.reach.nodes[0], cluster.reach.request_timeout * 10).await?;
            let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
            for name in names {
                let options = QueueDeclareOptions {
                    durable: spec.durable,
                    ..Default::default()
                };
                channel
                    .queue_declare(name.as_str(), options, queue_arguments(spec.mode))
                    .await
                    .map_err(|e| format!("declare {name}: {e}"))?;
            }
            let _ = connection.close(200, "formed").await;
            Ok(())
        })
    }

    fn leaders<'a>(&'a self, reach: &'a Reach, names: &'a [String]) -> LocalFuture<'a, Vec<Option<Answer>>> {
        Box::pin(async move {
            // AMQP does not say where a queue lives: each node's management API does, from
            // that node's own view (a partitioned node may hold a stale one; the callers
            // take what a majority agrees on).
            let mut answers = Vec::with_capacity(reach.nodes.len());
            for addr in &reach.nodes {
                let host = super::host_of(addr);
                let mut answer = Vec::with_capacity(names.len());
                let mut answered = true;
                for name in names {
                    let asked = queue_leader(reach.network.as_ref(), host, name);
                    match tokio::time::timeout(reach.request_timeout, asked).await {
                        Ok(Ok(leader)) => answer.push((name.clone(), leader)),
                        Ok(Err(e)) => {
                            tracing::debug!(node = addr, queue = name, "no leader: {e}");
                            answered = false;
                            break;
                        }
                        Err(_) => {
                            answered = false;
                            break;
                        }
                    }
                }
                answers.push(answered.then_some(answer));
            }
            answers
        })
    }

    fn data_files(&self, mode: Mode, data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        // The files that hold the run's messages: a quorum queue's WAL and segments (under
        // `quorum/`, not the `coordination/` Raft system beside it), or a classic queue's
        // index and message store. The quorum system keeps a WAL in every mode, and in
        // the classic modes damaging it tests RabbitMQ's boot, not its queue.
        let files = super::every_file(&data_dir.join("mnesia"))?;
        Ok(files.into_iter().filter(|f| holds_messages(mode, f)).collect())
    }

    fn clients(&self, reach: &Reach) -> Rc<dyn Clients> {
        Rc::new(RabbitClients { reach: reach.clone() })
    }
}

/// Asks the management API on `host` where queue `queue` lives: a quorum queue's leader,
/// a classic queue's home (a mirrored queue's master), as a node's host name (`n2`);
/// `None` when the node knows the queue but no live leader. An error when the node does
/// not answer or knows no such queue.
async fn queue_leader(network: &dyn Network, host: &str, queue: &str) -> Result<Option<String>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = network
        .connect(&format!("{host}:{MANAGEMENT_PORT}"))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // HTTP/1.0: the server closes the connection after its answer, which ends the body.
    let request = format!(
        "GET /api/queues/%2F/{}?disable_stats=true HTTP/1.0\r\nHost: {host}\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n",
        percent_encode(queue)
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    // One queue's description is a few hundred bytes: anything far larger is not it.
    (&mut stream)
        .take(1 << 20)
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("read: {e}"))?;
    queue_leader_of(&response)
}

/// The leader in a management API response to `GET /api/queues/VHOST/NAME`.
fn queue_leader_of(response: &[u8]) -> Result<Option<String>, String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "a response without a body".to_string())?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status}"));
    }
    let queue: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("a body that is not JSON: {e}"))?;
    // `leader` for quorum queues, `node` for classic and mirrored ones.
    let node = queue
        .get("leader")
        .and_then(|v| v.as_str())
        .or_else(|| queue.get("node").and_then(|v| v.as_str()));
    Ok(node.map(|n| n.rsplit_once('@').map_or(n, |(_, host)| host).to_string()))
}

/// `text` with everything but unreserved URL characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether `file` holds messages of a queue in `mode` (see [`RabbitMq::data_files`]).
fn holds_messages(mode: Mode, file: &Path) -> bool {
    let extension = file.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let under = |dir: &str| file.components().any(|c| c.as_os_str() == dir);
    match mode {
        Mode::Quorum => under("quorum") && matches!(extension, "wal" | "segment"),
        // The queue index's journal holds small messages themselves (below
        // `queue_index_embed_msgs_below`, 4 KiB), its segments and the message store the rest.
        _ => !under("quorum") && !under("coordination") && matches!(extension, "jif" | "idx" | "rdq"),
    }
}

/// `text` as a regular expression matching itself.
fn regex_quote(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.^$|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// RabbitMQ's clients: queues only.
struct RabbitClients {
    reach: Reach,
}

impl Clients for RabbitClients {
    fn queue(&self, process: usize) -> Option<Box<dyn QueueApi>> {
        Some(Box::new(RabbitQueue {
            reach: self.reach.clone(),
            node: process,
            open: None,
        }))
    }

    fn log(&self, _process: usize) -> Option<Box<dyn LogApi>> {
        None
    }
}

/// One process's AMQP connection and its confirm-mode channel, to its node first and on
/// to the next after any error.
struct RabbitQueue {
    reach: Reach,
    node: usize,
    open: Option<(Connection, Channel)>,
}

impl RabbitQueue {
    async fn channel(&mut self) -> Result<Channel, ApiError> {
        if let Some((connection, channel)) = &self.open {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        self.open = None;
        let addr = self.reach.nodes[self.node % self.reach.nodes.len()].clone();
        let connection = match connect(&addr, self.reach.request_timeout).await {
            Ok(connection) => connection,
            Err(e) => return Err(self.move_on(ApiError::Definite(e))),
        };
        let opened = async {
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            Ok::<_, lapin::Error>(channel)
        };
        match tokio::time::timeout(self.reach.request_timeout, opened).await {
            Ok(Ok(channel)) => {
                self.open = Some((connection, channel.clone()));
                Ok(channel)
            }
            Ok(Err(e)) => Err(self.move_on(ApiError::Definite(format!("open a channel on {addr}: {e}")))),
            Err(_) => Err(self.move_on(ApiError::Definite(format!("open a channel on {addr}: no answer")))),
        }
    }

    /// Drops the connection and moves on to the next node; returns `err`.
    fn move_on(&mut self, err: ApiError) -> ApiError {
        self.open = None;
        self.node += 1;
        err
    }
}

impl QueueApi for RabbitQueue {
    fn publish<'a>(&'a mut self, queue: &'a str, body: Vec<u8>) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let channel = self.channel().await?;
            let persistent = BasicProperties::default().with_delivery_mode(2);
            let published = async {
                let confirm = channel
                    .basic_publish("", queue, BasicPublishOptions::default(), &body, persistent)
                    .await?;
                confirm.await
            };
            match tokio::time::timeout(self.reach.request_timeout, published).await {
                Ok(Ok(confirmation)) if confirmation.is_ack() => Ok(()),
                // A nack: the broker could not take responsibility for it. Whether any of it
                // was stored is not said.
                Ok(Ok(_)) => Err(ApiError::Indefinite("nacked by the broker".into())),
                Ok(Err(e)) => Err(self.move_on(ApiError::Indefinite(format!("publish: {e}")))),
                Err(_) => Err(self.move_on(ApiError::Indefinite("publish: no confirm in time".into()))),
            }
        })
    }

    fn get<'a>(&'a mut self, queue: &'a str) -> ApiFuture<'a, Option<Delivery>> {
        Box::pin(async move {
            let channel = self.channel().await?;
            let got = channel.basic_get(queue, BasicGetOptions { no_ack: false });
            match tokio::time::timeout(self.reach.request_timeout, got).await {
                Ok(Ok(Some(message))) => Ok(Some(Delivery {
                    tag: message.delivery.delivery_tag,
                    body: message.delivery.data.clone(),
                })),
                Ok(Ok(None)) => Ok(None),
                // A get that failed left any message it took unacknowledged: the broker
                // requeues it when the channel goes.
                Ok(Err(e)) => Err(self.move_on(ApiError::Definite(format!("get: {e}")))),
                Err(_) => Err(self.move_on(ApiError::Indefinite("get: no answer in time".into()))),
            }
        })
    }

    fn ack<'a>(&'a mut self, _queue: &'a str, tag: u64) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let Some((_, channel)) = &self.open else {
                return Err(ApiError::Indefinite(
                    "the channel that took the delivery is gone".into(),
                ));
            };
            match channel.basic_ack(tag, BasicAckOptions::default()).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.move_on(ApiError::Indefinite(format!("ack: {e}")))),
            }
        })
    }

    fn nack<'a>(&'a mut self, _queue: &'a str, tag: u64) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let Some((_, channel)) = &self.open else {
                return Err(ApiError::Indefinite(
                    "the channel that took the delivery is gone".into(),
                ));
            };
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            match channel.basic_nack(tag, requeue).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.move_on(ApiError::Indefinite(format!("nack: {e}")))),
            }
        })
    }

    fn reset(&mut self) {
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirrored_settings_become_an_ha_policy_and_handling_the_config() {
        let mut spec = TestSpec::new(1);
        spec.mode = Mode::Mirrored;
        assert_eq!(
            ha_policy(&spec),
            r#"{"ha-mode":"all","ha-sync-mode":"manual","ha-promote-on-failure":"when-synced","ha-promote-on-shutdown":"when-synced"}"#
        );
        spec.mirrored.mirrors = Some(1);
        spec.mirrored.sync = SyncMode::Automatic;
        spec.mirrored.promote_unsynced = true;
        assert_eq!(
            ha_policy(&spec),
            r#"{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic","ha-promote-on-failure":"always","ha-promote-on-shutdown":"always"}"#
        );
        spec.mirrored.partition_handling = PartitionHandling::Ignore;
        assert!(config(&spec).contains("cluster_partition_handling = ignore"));
        assert_eq!(regex_quote("jepsen.queue"), r"jepsen\.queue");
    }

    #[test]
    fn the_management_api_names_a_quorum_leader_or_a_classic_home_and_refuses_the_rest() {
        let ok = |body: &str| format!("HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{body}");
        let quorum = ok(r#"{"leader":"rabbit@n2","members":["rabbit@n1","rabbit@n2"],"type":"quorum"}"#);
        assert_eq!(queue_leader_of(quorum.as_bytes()), Ok(Some("n2".into())));
        let classic = ok(r#"{"node":"rabbit@n3","state":"live"}"#);
        assert_eq!(queue_leader_of(classic.as_bytes()), Ok(Some("n3".into())));
        assert_eq!(queue_leader_of(ok("{}").as_bytes()), Ok(None));
        let missing = "HTTP/1.0 404 Not Found\r\n\r\n{\"error\":\"Object Not Found\"}";
        let err = queue_leader_of(missing.as_bytes()).expect_err("a 404 is no answer");
        assert!(err.contains("404"), "{err}");
        assert!(queue_leader_of(b"HTTP/1.0 200 OK\r\n\r\n<html>").is_err());
        assert!(queue_leader_of(b"garbage").is_err());
        assert_eq!(percent_encode("jepsen.queue/1 x"), "jepsen.queue%2F1%20x");
    }

    #[test]
    fn damage_aims_at_the_files_of_the_modes_queue() {
        let wal = Path::new("mnesia/rabbit@n1/quorum/rabbit@n1/00000001.wal");
        let segment = Path::new("mnesia/rabbit@n1/quorum/rabbit@n1/2F_JEP/00000001.segment");
        let coordination = Path::new("mnesia/rabbit@n1/coordination/rabbit@n1/00000001.wal");
        let store = Path::new("mnesia/rabbit@n1/msg_stores/vhosts/628W/msg_store_persistent/0.rdq");
        let index = Path::new("mnesia/rabbit@n1/msg_stores/vhosts/628W/queues/ABC/0.idx");
        let journal = Path::new("mnesia/rabbit@n1/msg_stores/vhosts/628W/queues/ABC/journal.jif");
        for (file, quorum, mirrored) in [
            (wal, true, false),
            (segment, true, false),
            (coordination, false, false),
            (store, false, true),
            (index, false, true),
            (journal, false, true),
        ] {
            assert_eq!(holds_messages(Mode::Quorum, file), quorum, "{}", file.display());
            assert_eq!(
                holds_messages(Mode::Mirrored, file),
                mirrored,
                "{}",
                file.display()
            );
        }
    }
}
