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
use broker::{FsyncPolicy, Mode, Seams};
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
        "loopback_users = none\nlisteners.tcp.default = {PORT}\ncluster_partition_handling = {handling}\nnet_ticktime = 4\nlog.file.level = info\n"
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
        if spec.target == crate::FaultTarget::Leader {
            return Some(
                "system rabbitmq: --target leader is not supported yet (the queue leader is not read)".into(),
            );
        }
        None
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
        write("enabled_plugins", "[].\n")?;
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
            // Over AMQP a node can say whether it serves a queue, not who leads it: every
            // node that answers a passive declare of every queue reports the cluster as the
            // queues' home, which is what "formed" and "recovered" need.
            let mut answers = Vec::with_capacity(reach.nodes.len());
            for addr in &reach.nodes {
                let Ok(connection) = connect(addr, reach.request_timeout).await else {
                    answers.push(None);
                    continue;
                };
                let mut answer = Vec::with_capacity(names.len());
                for name in names {
                    let served = match connection.create_channel().await {
                        Ok(channel) => {
                            let passive = QueueDeclareOptions {
                                passive: true,
                                ..Default::default()
                            };
                            let declared =
                                channel.queue_declare(name.as_str(), passive, FieldTable::default());
                            matches!(
                                tokio::time::timeout(reach.request_timeout, declared).await,
                                Ok(Ok(_))
                            )
                        }
                        Err(_) => false,
                    };
                    answer.push((name.clone(), served.then(|| "cluster".to_string())));
                }
                let _ = connection.close(200, "asked").await;
                answers.push(Some(answer));
            }
            answers
        })
    }

    fn data_files(&self, data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        // Queue indexes and message stores of classic queues, the quorum queues' WAL and
        // segments: the files that hold messages.
        let files = super::every_file(&data_dir.join("mnesia"))?;
        Ok(files
            .into_iter()
            .filter(|f| {
                f.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "idx" | "rdq" | "wal" | "segment"))
            })
            .collect())
    }

    fn clients(&self, reach: &Reach) -> Rc<dyn Clients> {
        Rc::new(RabbitClients { reach: reach.clone() })
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
}
