//! `tumult-broker`: runs the reference broker for real, on TCP and the local disk.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use broker::kafka::{KafkaSettings, TruncateTo};
use broker::mirrored::{MirrorCount, MirrorSettings, PartitionHandling, SyncMode};
use broker::{parse_peers, Broker, BrokerConfig, FsyncPolicy, Limits, Mode, Seams};
use clap::Parser;

/// Run one node of the tumult reference broker.
#[derive(Debug, Parser)]
#[command(name = "tumult-broker", version, about)]
struct Args {
    /// Address to listen on, host:port (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: String,
    /// Directory for the node's durable state (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// High-availability design to run: single (one node), classic (each queue on one home
    /// node, the others proxy), mirrored (a leader and mirrors per queue) or quorum (a Raft group per queue over this node and its --peers).
    #[arg(long, default_value = "single")]
    mode: Mode,
    /// This node's id in its cluster (unique, from 1).
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// The other nodes of the cluster, as ID=HOST:PORT,ID=HOST:PORT (the addresses they
    /// listen on).
    #[arg(long, value_parser = parse_peers, default_value = "")]
    peers: BTreeMap<u64, String>,
    /// Milliseconds per tick of the replication clock (elections take 15-30 ticks).
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// When to fsync: always (confirm only after fsync; safe), interval:MS (at most every MS
    /// milliseconds; unsafe: a crash loses up to that much) or never (unsafe).
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
    /// Whether queues survive a restart (single and classic modes): true, or false (unsafe:
    /// a restart of a queue's node loses every message it held).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    durable: bool,
    /// Mirrored mode: mirrors per queue besides its leader, a number or all.
    #[arg(long, default_value = "all")]
    mirrors: MirrorCount,
    /// Mirrored mode: how a joining mirror gets older messages: manual (it does not; RabbitMQ's
    /// default) or automatic (the leader sends the whole queue).
    #[arg(long, default_value = "manual")]
    sync_mode: SyncMode,
    /// Mirrored mode: allow promoting a mirror that lacks messages (unsafe).
    #[arg(long)]
    promote_unsynced: bool,
    /// Mirrored mode: what a node does without a majority: pause-minority (stop serving; safe),
    /// ignore or autoheal (keep serving; unsafe).
    #[arg(long, default_value = "pause-minority")]
    partition_handling: PartitionHandling,
    /// Kafka mode: partitions of the topic.
    #[arg(long, default_value_t = KafkaSettings::default().partitions)]
    partitions: u32,
    /// Kafka mode: replicas per partition.
    #[arg(long, default_value_t = KafkaSettings::default().rf)]
    rf: usize,
    /// Kafka mode: acks=all writes are refused while the ISR is smaller than this.
    #[arg(long, default_value_t = KafkaSettings::default().min_isr)]
    min_isr: usize,
    /// Kafka mode: allow electing a replica outside the ISR (unsafe).
    #[arg(long)]
    unclean_election: bool,
    /// Kafka mode: how followers truncate on a leader change: epoch (KIP-101, safe) or hw
    /// (to their high watermark, as before Kafka 0.11; unsafe).
    #[arg(long, default_value = "epoch")]
    truncate_to: TruncateTo,
    /// Kafka mode: let consumers read up to the leader's log end, past the high watermark
    /// (unsafe: they may see records that are later lost).
    #[arg(long)]
    read_uncommitted: bool,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().frame_bytes_max)]
    frame_bytes_max: usize,
    /// Seed for the broker's random source (default: derived from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let seed = args.seed.unwrap_or_else(clock_seed);
    let config = BrokerConfig {
        mode: args.mode,
        id: args.id,
        peers: args.peers.clone(),
        tick_ms: args.tick_ms,
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
        fsync: args.fsync,
        durable: args.durable,
        kafka: KafkaSettings {
            partitions: args.partitions,
            rf: args.rf,
            min_isr: args.min_isr,
            unclean_election: args.unclean_election,
            truncate_to: args.truncate_to,
            read_uncommitted: args.read_uncommitted,
            ..KafkaSettings::default()
        },
        mirrored: MirrorSettings {
            mirrors: args.mirrors.0,
            sync: args.sync_mode,
            promote_unsynced: args.promote_unsynced,
            partition_handling: args.partition_handling,
        },
        limits: Limits {
            frame_bytes_max: args.frame_bytes_max,
            message_bytes_max: args.frame_bytes_max / 5,
            ..Limits::default()
        },
    };
    let broker = Broker::new(config, Seams::real(seed));
    let running = broker
        .start()
        .await
        .with_context(|| format!("starting broker with data dir {}", args.data_dir.display()))?;
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!(
        "listening on {}",
        running.local_addr().context("reading bound address")?
    );
    tokio::select! {
        result = running.run() => result.context("serving"),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[allow(clippy::disallowed_methods)] // a real process, outside any simulation
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
