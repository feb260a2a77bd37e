//! `tumult-broker`: runs the reference broker for real, on TCP and the local disk.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use broker::kafka::KafkaSettings;
use broker::{parse_peers, Broker, BrokerConfig, KnobArgs, Limits, Mode, Seams};
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
    #[command(flatten)]
    knobs: KnobArgs,
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
        fsync: args.knobs.fsync,
        durable: args.knobs.durable,
        kafka: args.knobs.kafka(KafkaSettings::default().rf),
        mirrored: args.knobs.mirrored(),
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
