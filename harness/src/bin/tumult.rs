//! `tumult`: run a chaos test against the reference broker, or re-check a stored history.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use broker::kafka::{Acks, KafkaSettings};
use broker::{KnobArgs, Mode};
use clap::{Parser, Subcommand};
use harness::{FaultKind, FaultSet, FaultTarget, LatencyRange, Store, TestSpec};

/// Prints a line to stdout. When the reader has gone (`tumult test | head`), stops quietly
/// instead of panicking as `println!` does: the run's results are already stored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout(), $($arg)*) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// Exit code for harness and usage errors.
const EXIT_ERROR: u8 = 3;

/// Jepsen-style fault injection against tumult's reference message broker.
///
/// Exit codes: 0 valid, 1 invalid (anomaly found), 2 unknown, 3 harness or usage error,
/// 4 liveness failure (the cluster never recovered after healing).
#[derive(Debug, Parser)]
#[command(name = "tumult", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one simulated chaos test and store its results.
    Test(Box<TestArgs>),
    /// Re-check a stored history (history.jsonl, or a run directory holding one).
    Check(CheckArgs),
    /// Run every bug-zoo recipe (an unsafe knob, with faults) until its anomaly is caught,
    /// within bounds, and its safe counterpart on a few seeds; prints a table.
    Zoo(ZooArgs),
    /// Run many seeds of one test in parallel: a summary table, every failure's replay
    /// command, JUnit XML and a summary file that `tumult merge` combines across shards.
    Sweep(Box<SweepArgs>),
    /// Combine sweep summary files (from shards on several machines) into one table, summary
    /// and JUnit file.
    Merge(MergeArgs),
    /// Every mode with its safe defaults and each unsafe knob, under each fault kind, over
    /// a few seeds: availability, lost, dirty reads, duplicates, p50/p99 latency; written to
    /// matrix.md and matrix.html in the store.
    Matrix(MatrixArgs),
    /// Shrink a failing run: the fewest faults (delta debugging over its schedule), then a
    /// shorter run and fewer clients, that still show the same anomaly; writes
    /// shrunk-schedule.json into the run directory and prints the replay command.
    Shrink(ShrinkArgs),
    /// Serve the results store on 127.0.0.1 for browsing: the index of every run (made
    /// afresh on each visit), each run's directory and every file in it.
    Serve(ServeArgs),
    /// List the workloads (with their knobs), systems, broker modes, faults and fault targets,
    /// one line each.
    List,
    /// Measure simulation speed: the standard run (5 nodes, kafka mode, log workload,
    /// partition+kill, 60 simulated s) against bare turmoil carrying the same traffic;
    /// `tumult bench check` measures `tumult check` on large history files instead.
    Bench(BenchArgs),
    /// Check what real runs (real processes in network namespaces) need on this machine,
    /// and print how to install what is missing; exit 3 when something is.
    Doctor,
    /// Remove what runs on real processes left behind when killed with -9: their network
    /// namespaces (and the node processes in them) and bridges, only those named like
    /// tumult's (tm, six hex digits, then br, v<N> or -n<N>).
    Clean,
}

#[derive(Debug, clap::Args)]
struct ZooArgs {
    /// Most seeds tried per recipe before it counts as not caught.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    seeds: u64,
    /// Most wall seconds spent hunting one recipe.
    #[arg(long = "wall", default_value_t = 60, value_name = "SECONDS")]
    wall_s: u64,
    /// Seeds of each safe counterpart (the recipe without its knob) that must stay valid.
    #[arg(long = "safe-seeds", default_value_t = 3)]
    safe_seeds: u64,
    /// Recipes hunted at once (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Only the recipes whose name contains this.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Also write the table as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Where the runs happen: sim (the default) or real (tumult-broker processes in network
    /// namespaces; needs root, see tumult doctor). Real runs take the recipes a real kill can
    /// catch (it keeps the page cache, so the fsync and power-loss recipes are left out),
    /// last about a minute each (raise --wall), and are all stored in --store.
    #[arg(long, default_value = "sim")]
    runtime: harness::Runtime,
    /// Results store for real runs.
    #[arg(long, default_value = "results", value_name = "DIR")]
    store: PathBuf,
}

#[derive(Debug, clap::Args)]
struct SweepArgs {
    /// Seeds to run, A..B (inclusive).
    #[arg(long, value_name = "A..B", value_parser = parse_seed_range)]
    seeds: (u64, u64),
    /// Simulations at once (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard I of N (1-based): seeds whose position in the range is I-1 modulo N,
    /// so N machines given 1/N .. N/N cover the range exactly once.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Write JUnit XML (one test case per seed) to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the summary (every seed's result) to this file, for tumult merge.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    #[command(flatten)]
    test: TestArgs,
}

#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// Summary files written by tumult sweep --summary.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write the merged summary here.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Write JUnit XML of the merged results here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct MatrixArgs {
    /// Seeds per cell (1..=K).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    seeds: u64,
    /// Simulated seconds of faults per run.
    #[arg(long = "time-limit", default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    time_limit_s: u64,
    /// Simulations at once (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Only the designs whose name contains this (`quorum log`, `--acks`, ...).
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Directory of the results store (matrix.md and matrix.html go there).
    #[arg(long, default_value = "results", value_name = "DIR")]
    store: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ShrinkArgs {
    /// A failing run's directory (results/latest, say).
    dir: PathBuf,
    /// Replays run at once (default: the machine's cores). The shrunk result is the same
    /// for any value: of each batch the first replay that still fails, in the order one at
    /// a time would try them, is kept.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Directory of the results store.
    #[arg(long, default_value = "results", value_name = "DIR")]
    store: PathBuf,
    /// Port to listen on (on 127.0.0.1 only); 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Seed of the first standard run; later runs use the following seeds.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many times to time each simulation (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    #[command(subcommand)]
    what: Option<BenchWhat>,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Time `tumult check` as a user runs it: write synthetic log histories of realistic
    /// shapes and sizes, in JSONL and EDN, then check each file in a new process and report
    /// wall time, operations per second and peak memory (RSS) per operation.
    Check(BenchCheckArgs),
    /// Publish throughput and p50/p99 confirm latency of real clusters, side by side in
    /// one run: tumult-broker (quorum, kafka), RabbitMQ (quorum, mirrored) and NATS
    /// JetStream (R3), same producers, message size and fsync, with ratios to RabbitMQ's
    /// quorum queue. Needs root and the systems' packages (tumult doctor).
    Systems(BenchSystemsArgs),
}

#[derive(Debug, clap::Args)]
struct BenchSystemsArgs {
    /// Contenders to run, as SYSTEM:MODE (comma-separated; default: all five).
    #[arg(long, value_delimiter = ',', value_parser = harness::bench_systems::parse_contender)]
    only: Vec<harness::bench_systems::Contender>,
    /// Nodes per cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Concurrent producers, each publishing one message at a time and waiting for its
    /// confirm.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    producers: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    size: u64,
    /// Seconds each contender is measured, per round.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Seconds of publishing before each measurement (not counted).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// Rounds; each round runs every contender once, in turn, and the figures pool.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// How long a publish may wait for its confirm, in milliseconds, before it counts as
    /// an error.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    request_timeout: u64,
}

#[derive(Debug, clap::Args)]
struct BenchCheckArgs {
    /// Shapes to write (comma-separated): processes (16 processes with info retirements, 8
    /// keys, polls of 1-20), one-process, large-polls (up to 500 records), keys-100,
    /// giant-component (allowed cycles everywhere), planted (a lost write and a poll skip).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "processes,one-process,large-polls,keys-100,giant-component,planted"
    )]
    shapes: Vec<harness::synth::Shape>,
    /// History sizes in operations (comma-separated; k and m suffixes allowed).
    #[arg(long, value_delimiter = ',', default_value = "100k,1m", value_parser = parse_count)]
    sizes: Vec<u64>,
    /// Formats to write (comma-separated): jsonl, edn.
    #[arg(long, value_delimiter = ',', default_value = "jsonl,edn")]
    formats: Vec<checker::Format>,
    /// Directory for the history files (each is deleted once checked); default: a new
    /// directory under the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the history files instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Check each file this many times and report the best run (the least CPU time, and
    /// the least wall time): other work on the machine only ever adds time. The runs go in
    /// rounds, each checking every size of a shape once, so that the sizes whose cost per
    /// op is compared are timed side by side. The growth per op is also given by the
    /// medians of the runs: far from the best's, the machine was busy.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
}

/// A count such as `100000`, `100k` or `10m`.
fn parse_count(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, scale) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1_000),
        Some(b'm') => (&lower[..lower.len() - 1], 1_000_000),
        _ => (&lower[..], 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a count (e.g. 100000, 100k, 10m)"))?;
    match n.checked_mul(scale) {
        Some(n) if (1_000..=100_000_000).contains(&n) => Ok(n),
        _ => Err(format!("'{text}': sizes run from 1k to 100m operations")),
    }
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// Where the nodes live: sim (turmoil's deterministic simulation, the default) or real
    /// (tumult-broker processes, one per network namespace on a bridge of the run's own,
    /// faults by signals and iptables; needs root, see tumult doctor).
    #[arg(long, default_value = "sim")]
    runtime: harness::Runtime,
    /// Broker design under test: single (one node), classic (each queue on one home node,
    /// the others proxy), mirrored (a leader and mirrors per queue), quorum (a Raft group
    /// per queue), or kafka (a partitioned, replicated log: leader, followers, ISR, high
    /// watermark; runs the log workload).
    #[arg(long, default_value = "single")]
    mode: Mode,
    /// The broker product under test, by name (see tumult list): tumult-broker, tumult's
    /// own reference broker, in every mode, simulated or for real; rabbitmq, RabbitMQ from
    /// Debian's rabbitmq-server (single, classic, mirrored, quorum; the queue workload;
    /// --runtime real); nats, NATS JetStream from Debian's nats-server (--mode quorum, the
    /// log workload, --runtime real).
    #[arg(long, value_name = "NAME", default_value = harness::systems::DEFAULT)]
    system: String,
    /// Broker nodes in the cluster (default: 1 for single, 3 for replicated modes).
    #[arg(long)]
    nodes: Option<usize>,
    /// Workload, by name (see tumult list): queue (RabbitMQ-like: publish with confirms,
    /// get+ack, nack+requeue, drain; the default) or log (Kafka-like: send to keys, poll
    /// with assign or subscribe, offset commits, read every key at the end; the default for
    /// --mode kafka).
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Set one of the workload's knobs, NAME=VALUE (repeat for more); tumult list shows
    /// each workload's knobs and defaults.
    #[arg(long = "knob", value_name = "NAME=VALUE", value_parser = parse_knob)]
    knob: Vec<(String, String)>,
    /// Faults to inject, comma-separated, or none: kill (crash brokers, losing unsynced
    /// writes, restart 1-5 s later), restart (restart the process, page cache kept), pause
    /// (hold all their messages 1-5 s), partition (halves, isolate the target, majorities
    /// ring, bridge or one-way, 2-8 s), packet (20-300 ms latency and up to 5% loss on their
    /// links, 2-8 s), disk (a torn write, or EIO for 1-4 s), corrupt (restart with a byte
    /// flipped in what is read back), truncate (restart with the first file read back cut
    /// short, fsynced bytes lost). Every fault is recorded in the history.
    #[arg(long, default_value = "kill")]
    nemesis: FaultSet,
    /// Which brokers a fault strikes: one, minority, majority (a correlated failure such as
    /// a rack losing power), all, or leader (the current leader of a random queue or
    /// partition, as the brokers' metadata says).
    #[arg(long, default_value = "one")]
    target: FaultTarget,
    /// Let faults of different kinds overlap, each kind on its own schedule (a kill can
    /// strike during a partition); by default one fault at a time.
    #[arg(long)]
    overlap: bool,
    /// Invariant monitors inside the simulation (Raft: one leader per term, committed
    /// entries never change, a new leader holds every committed entry, a node's durable
    /// term never goes back): true (the default) or false. A violation makes the run
    /// invalid; the monitors never change the run itself. Real runs have none.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    monitors: bool,
    /// Seed that fixes every random choice of the run (default: drawn from the clock and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Simulated seconds of workload under faults, before healing.
    #[arg(long = "time-limit", default_value_t = 30, value_name = "SECONDS")]
    time_limit_s: u64,
    /// Client processes running at once; each has one request in flight at a time (Jepsen's
    /// model: a process is a single thread of operations). At most 100: each client is a
    /// simulated host, and the simulated network's cost per tick grows with the cube of its
    /// hosts (5 clients run 30 s in 0.4 s of wall time, 90 in 46 s).
    #[arg(long, default_value_t = 5)]
    concurrency: usize,
    /// Target operations per simulated second over all processes.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    #[command(flatten)]
    knobs: KnobArgs,
    /// Kafka mode: what producers ask for: 0, 1 (unsafe: the leader alone) or all.
    #[arg(long, default_value = "all")]
    acks: Acks,
    /// Mean simulated seconds between faults.
    #[arg(long = "nemesis-interval", default_value_t = 8.0, value_name = "SECONDS")]
    nemesis_interval_s: f64,
    /// Deadline of each client request, in simulated milliseconds; a request past it is
    /// recorded as info (outcome unknown).
    #[arg(long = "request-timeout", default_value_t = 1000, value_name = "MS")]
    request_timeout_ms: u64,
    /// Simulated seconds the cluster may take after healing until every node answers and
    /// they agree on who leads what, and then again the final reads may take; past either,
    /// the run is a liveness failure (exit 4).
    #[arg(long = "recovery", default_value_t = 30, value_name = "SECONDS")]
    recovery_s: u64,
    /// One-way latency of healthy links, in simulated milliseconds: MIN..MAX (or one number).
    #[arg(long, default_value = "1..5", value_name = "MIN..MAX")]
    latency: LatencyRange,
    /// Start no more than this many client operations (the final reads still run).
    #[arg(long = "ops-limit", value_name = "N")]
    ops_limit: Option<u64>,
    /// Swarm testing: draw the fault package, interval, target, overlap, link latency and
    /// client rate from the seed (printed before the run; the replay command spells them out).
    #[arg(long)]
    swarm: bool,
    /// Play the faults of this schedule (a run's schedule.json) instead of drawing them
    /// from the seed; --nemesis, --target and --nemesis-interval are then ignored.
    #[arg(long, value_name = "FILE")]
    schedule: Option<PathBuf>,
    /// Run the seed twice and fail (exit 3) unless the two histories are byte-identical.
    #[arg(long = "check-determinism")]
    check_determinism: bool,
    /// Directory of the results store.
    #[arg(long, default_value = "results", value_name = "DIR")]
    store: PathBuf,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// A history file (tumult's history.jsonl or Jepsen's history.edn), or a run directory
    /// containing one.
    file: PathBuf,
    /// Which analyses to run: queue (enqueue/dequeue/drain) or log (send/poll/final-poll);
    /// default: detected from the operations.
    #[arg(long)]
    workload: Option<checker::Workload>,
    /// How the file is written: jsonl (tumult's history.jsonl), edn (Jepsen's
    /// history.edn), or auto (decided from its first character).
    #[arg(long, default_value = "auto")]
    format: checker::Format,
    /// Print the full report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// Log anomalies to report without making the history invalid, comma-separated, on top
    /// of what is allowed anyway: every cycle through an rw edge (G-single, G2 and their
    /// -process and -realtime variants), and, when operations send several values each, G0
    /// and int-send-skip. For a producer without write isolation, as Jepsen's Kafka test
    /// with :ww-deps: --allow G0,G0-process,G0-realtime,G1c,G1c-process,G1c-realtime.
    #[arg(long, value_delimiter = ',', value_parser = parse_anomaly, value_name = "ANOMALIES")]
    allow: Vec<String>,
    /// Also print, to standard error, how long reading and checking took and the peak
    /// memory (resident set) of this process.
    #[arg(long)]
    stats: bool,
}

fn main() -> ExitCode {
    // clap exits 2 on a usage error, which would read as an "unknown" verdict; usage errors
    // are ours to report as 3.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            let _ = err.print();
            return ExitCode::from(EXIT_ERROR);
        }
        Err(help_or_version) => {
            let _ = help_or_version.print();
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli.command {
        Command::Test(args) => test(*args),
        Command::Check(args) => check(args),
        Command::Bench(args) => bench(args),
        Command::List => list(),
        Command::Shrink(args) => shrink(args),
        Command::Matrix(args) => matrix(args),
        Command::Zoo(args) => zoo(args),
        Command::Sweep(args) => sweep(*args),
        Command::Merge(args) => merge(args),
        Command::Serve(args) => serve(args),
        Command::Doctor => doctor(),
        Command::Clean => clean(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Refuses --check-determinism where it cannot hold.
fn determinism_applies(args: &TestArgs) -> anyhow::Result<()> {
    if args.check_determinism && args.runtime == harness::Runtime::Real {
        anyhow::bail!("--check-determinism applies to the simulation: a run on real processes never happens the same way twice");
    }
    Ok(())
}

fn test(args: TestArgs) -> anyhow::Result<u8> {
    determinism_applies(&args)?;
    let spec = spec_of(&args, None)?;
    run_one(spec, &args)
}

/// The workload a run gets when none is named: queue where the system serves queues in
/// this mode, else log.
fn default_workload(system: &str, mode: Mode) -> String {
    let serves_queues = harness::systems::find(system)
        .map(|s| s.serves(workloads::Family::Queue, mode))
        .unwrap_or(mode != Mode::Kafka);
    if serves_queues { "queue" } else { "log" }.to_string()
}

/// The spec `tumult test` runs for these flags (swarm profile drawn, validated), with the
/// seed given or, failing that, the flags' seed or one drawn from the clock.
fn spec_of(args: &TestArgs, seed: Option<u64>) -> anyhow::Result<TestSpec> {
    let nodes = args.nodes.unwrap_or(if args.mode.is_clustered() { 3 } else { 1 });
    let spec = TestSpec {
        system: args.system.clone(),
        mode: args.mode,
        nodes,
        workload: args
            .workload
            .clone()
            .unwrap_or_else(|| default_workload(&args.system, args.mode)),
        knobs: args.knob.iter().cloned().collect(),
        nemesis: args.nemesis.clone(),
        target: args.target,
        overlap: args.overlap,
        seed: seed.or(args.seed).unwrap_or_else(clock_seed),
        time_limit_s: args.time_limit_s,
        concurrency: args.concurrency,
        rate: args.rate,
        fsync: args.knobs.fsync,
        durable: args.knobs.durable,
        acks: args.acks,
        kafka: args.knobs.kafka(if args.mode == Mode::Kafka {
            nodes.min(3)
        } else {
            KafkaSettings::default().rf
        }),
        mirrored: args.knobs.mirrored(),
        nemesis_interval_s: args.nemesis_interval_s,
        request_timeout_ms: args.request_timeout_ms,
        recovery_s: args.recovery_s,
        latency: args.latency,
        ops_limit: args.ops_limit,
        schedule: args.schedule.clone(),
        runtime: args.runtime,
        monitors: args.monitors,
    };
    let spec = if args.swarm { spec.swarm() } else { spec };
    spec.validate().map_err(anyhow::Error::msg)?;
    Ok(spec)
}

fn run_one(spec: TestSpec, args: &TestArgs) -> anyhow::Result<u8> {
    say!("tumult test: seed {}", spec.seed);
    if args.swarm {
        say!(
            "  swarm profile: nemesis {}, target {}, mean interval {} s, overlap {}, latency {} ms, rate {} ops/s",
            spec.nemesis, spec.target, spec.nemesis_interval_s, spec.overlap, spec.latency, spec.rate
        );
    }
    if let Some(schedule) = &spec.schedule {
        say!("  faults played from {}", schedule.display());
    }
    // A product that decides its own fsyncs is described, not given tumult's default.
    let system = harness::systems::find(&spec.system).ok();
    let fsync = match system.as_ref().and_then(|s| s.own_fsync()) {
        Some(own) => own.to_string(),
        None => format!("fsync {}", spec.fsync),
    };
    let product = match &system {
        Some(s) if s.name() != harness::systems::DEFAULT => format!("system {}, ", s.name()),
        _ => String::new(),
    };
    say!(
        "  {product}mode {} on {} node(s), workload {}, nemesis {} (target {}, mean interval {} s), {fsync}",
        spec.mode,
        spec.nodes,
        spec.workload,
        spec.nemesis,
        spec.target,
        spec.nemesis_interval_s,
    );
    if !spec.durable {
        say!("  queues are NOT durable");
    }
    let seconds = match spec.runtime {
        harness::Runtime::Sim => "simulated s",
        harness::Runtime::Real => "s",
    };
    say!(
        "  {} {seconds} of faults, {} processes at {} ops/s, request timeout {} ms, recovery budget {} s",
        spec.time_limit_s,
        spec.concurrency,
        spec.rate,
        spec.request_timeout_ms,
        spec.recovery_s
    );
    #[allow(clippy::disallowed_methods)] // wall-clock duration for the user; outside the simulation
    let wall = std::time::Instant::now();
    let registration = spec.registration().map_err(anyhow::Error::msg)?;
    let bar = progress_bar(spec.time_limit_s);
    let update = |p: harness::Progress| {
        bar.set_position(p.simulated.as_millis().min(p.time_limit.as_millis()) as u64);
        let phase = if p.healed {
            "healed; recovery and final reads"
        } else {
            "faults"
        };
        bar.set_message(format!(
            "{:.1} {seconds}, {} ops, {phase}",
            p.simulated.as_secs_f64(),
            p.ops
        ));
    };
    let stored = harness::run_and_store_observed(&spec, &registration, &Store::new(&args.store), &update);
    bar.finish_and_clear();
    let stored = stored.context("running the test")?;
    let outcome = &stored.outcome;
    say!();
    let headline = match outcome.exit_code() {
        4 => "LIVENESS FAILURE",
        _ => outcome.report.valid.label(),
    };
    say!("{headline} ({})", verdict_words(outcome));
    for (name, analysis) in &outcome.report.analyses {
        say!("  {name}: {}", analysis.summary());
    }
    for line in harness::exemplars::exemplar_lines(&outcome.report) {
        say!("{line}");
    }
    match &outcome.liveness.detail {
        None => say!("  liveness: the cluster recovered and the final reads completed"),
        Some(detail) => say!("  liveness: FAILED: {detail}"),
    }
    match spec.runtime {
        harness::Runtime::Sim => say!(
            "  {} ops over {:.1} simulated s in {:.1} wall s",
            outcome.history.ops().len(),
            outcome.simulated.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        ),
        harness::Runtime::Real => say!(
            "  {} ops over {:.1} s on real processes ({:.1} wall s with setup; node logs in nodes/)",
            outcome.history.ops().len(),
            outcome.simulated.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        ),
    }
    say!("  results: {}", stored.dir.display());
    say!("  faults:  {}", stored.dir.join("schedule.json").display());
    say!(
        "  replay:  {} {}",
        program_name(),
        spec.replay_command().trim_start_matches("tumult ")
    );
    if args.check_determinism {
        let first = std::fs::read(stored.dir.join("history.jsonl")).context("reading the stored history")?;
        let again = harness::history_bytes(&spec).context("running the seed again")?;
        match harness::first_difference(&first, &again) {
            None => say!(
                "  determinism: the second run's history is byte-identical ({} bytes, fnv64 {:016x})",
                first.len(),
                broker::fnv64(&first)
            ),
            Some(line) => {
                say!(
                    "DETERMINISM FAILURE: the two runs' histories differ from line {line} (fnv64 {:016x} vs {:016x})",
                    broker::fnv64(&first),
                    broker::fnv64(&again)
                );
                return Ok(EXIT_ERROR);
            }
        }
    }
    Ok(outcome.exit_code() as u8)
}

/// A bar over the faults phase showing simulated time and operations, on stderr when it
/// is a terminal; hidden otherwise (CI logs and pipes stay clean).
fn progress_bar(time_limit_s: u64) -> indicatif::ProgressBar {
    terminal_bar(time_limit_s * 1000, "{msg} ({elapsed} wall)".into())
}

/// A bar of `len` steps drawn with `template` after the bar itself, on stderr when it is
/// a terminal; hidden otherwise.
fn terminal_bar(len: u64, template: String) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("  [{{bar:30.cyan/blue}}] {template}"))
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// `A..B` (inclusive) or one seed.
fn parse_seed_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").unwrap_or((text, text));
    let parse = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("expected A..B with whole numbers, got '{text}'"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a > b {
        return Err(format!("the range {text} is empty"));
    }
    Ok((a, b))
}

/// `I/N` with 1 <= I <= N.
fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("expected I/N with 1 <= I <= N, got '{text}'");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<u64>().map_err(|_| bad())?,
        n.trim().parse::<u64>().map_err(|_| bad())?,
    );
    if i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A bar over `n` runs, on stderr when it is a terminal.
fn runs_bar(n: u64, what: &str) -> indicatif::ProgressBar {
    terminal_bar(
        n,
        format!("{{pos}}/{{len}} {what} {{msg}} ({{elapsed}} wall, eta {{eta}})"),
    )
}

fn matrix(args: MatrixArgs) -> anyhow::Result<u8> {
    use harness::matrix::{designs, html, markdown, run_matrix, FAULTS};
    let designs: Vec<_> = designs()
        .into_iter()
        .filter(|d| args.only.as_deref().is_none_or(|only| d.name.contains(only)))
        .collect();
    if designs.is_empty() {
        let names: Vec<String> = harness::matrix::designs().into_iter().map(|d| d.name).collect();
        anyhow::bail!(
            "no design's name contains {:?}; the designs are: {}",
            args.only.unwrap_or_default(),
            names.join("; ")
        );
    }
    let runs = designs.len() * FAULTS.len() * args.seeds as usize;
    say!(
        "tumult matrix: {} designs x {} fault kinds x {} seeds (at most {runs} runs of {} simulated s)",
        designs.len(),
        FAULTS.len(),
        args.seeds,
        args.time_limit_s
    );
    let bar = runs_bar(runs as u64, "runs");
    let cells = run_matrix(
        &designs,
        args.seeds,
        args.time_limit_s,
        args.jobs.unwrap_or_else(cores),
        &|| bar.inc(1),
    );
    bar.finish_and_clear();
    std::fs::create_dir_all(&args.store)?;
    let md = args.store.join("matrix.md");
    let page = args.store.join("matrix.html");
    let text = markdown(&cells, args.seeds, args.time_limit_s);
    std::fs::write(&md, &text).with_context(|| format!("writing {}", md.display()))?;
    std::fs::write(&page, html(&cells, args.seeds, args.time_limit_s))
        .with_context(|| format!("writing {}", page.display()))?;
    say!("{}", text.trim_end());
    say!();
    say!("  written: {} and {}", md.display(), page.display());
    Ok(0)
}

fn shrink(args: ShrinkArgs) -> anyhow::Result<u8> {
    say!("tumult shrink: {}", args.dir.display());
    let jobs = args.jobs.map_or_else(cores, |j| j as usize);
    let shrunk = harness::shrink::shrink(&args.dir, jobs, &|line| say!("  {line}"))?;
    say!();
    say!(
        "SHRUNK: still {} with {} of {} faults, {} of {} s of workload, {} of {} clients ({} replays)",
        shrunk.anomaly,
        shrunk.faults_after,
        shrunk.faults_before,
        shrunk.time_limit_after,
        shrunk.time_limit_before,
        shrunk.concurrency_after,
        shrunk.concurrency_before,
        shrunk.trials
    );
    say!("  schedule: {}", shrunk.schedule_file.display());
    say!(
        "  replay:   {} {}",
        program_name(),
        shrunk.replay.trim_start_matches("tumult ")
    );
    Ok(0)
}

fn zoo(args: ZooArgs) -> anyhow::Result<u8> {
    use harness::zoo::{hunt_on, recipes, Bounds};
    let real = args.runtime == harness::Runtime::Real;
    let recipes: Vec<_> = recipes()
        .into_iter()
        .filter(|r| args.only.as_ref().is_none_or(|o| r.name.contains(o.as_str())))
        .filter(|r| if real { r.runs_real() } else { r.runs_sim() })
        .collect();
    if recipes.is_empty() {
        anyhow::bail!(
            "no recipe matches --only{}",
            if real {
                " and runs on real processes"
            } else {
                " and runs in the simulation"
            }
        );
    }
    // Once up front, rather than as an error from every recipe's first run: what every
    // real run needs is required, and a recipe whose product is not installed is left out.
    let recipes = if real {
        harness::real::require(&harness::systems::TumultBroker).map_err(anyhow::Error::msg)?;
        let mut runnable = Vec::new();
        for recipe in recipes {
            let system = harness::systems::find(&recipe.system()).map_err(anyhow::Error::msg)?;
            match harness::real::require(system.as_ref()) {
                Ok(()) => runnable.push(recipe),
                Err(why) => say!("skipping {}: {why}", recipe.name),
            }
        }
        runnable
    } else {
        recipes
    };
    let store = Store::new(&args.store);
    let bounds = Bounds {
        seeds: args.seeds,
        wall: std::time::Duration::from_secs(args.wall_s),
        safe_seeds: args.safe_seeds,
    };
    say!(
        "tumult zoo: {} recipes, each until caught (at most {} seeds, {} wall s), then its safe counterpart on {} seeds",
        recipes.len(),
        bounds.seeds,
        args.wall_s,
        bounds.safe_seeds
    );
    let bar = runs_bar(recipes.len() as u64, "recipes");
    let results = harness::suite::parallel(
        &recipes,
        args.jobs.unwrap_or_else(cores),
        |r| hunt_on(r, bounds, args.runtime, &store),
        |c| {
            bar.inc(1);
            bar.set_message(c.recipe.clone());
        },
    );
    bar.finish_and_clear();
    say!();
    say!(
        "{:<27} {:<11} {:>6} {:>6} {:>7} {:>7}  {:<5}  {:<9}  anomalies",
        "recipe",
        "must show",
        "seed",
        "seeds",
        "wall s",
        "count",
        "safe",
        "monitor"
    );
    for c in &results {
        let safe_ok = c.safe.iter().filter(|(_, v, _)| *v).count();
        say!(
            "{:<27} {:<11} {:>6} {:>6} {:>7.1} {:>7}  {:<5}  {:<9}  {}",
            c.recipe,
            c.expect.name(),
            c.seed.map_or("-".to_string(), |s| s.to_string()),
            c.seeds_tried,
            c.wall_s,
            c.count,
            format!("{safe_ok}/{}", c.safe.len()),
            c.monitor
                .as_ref()
                .map_or("-".to_string(), |(seed, name)| format!("{name}@{seed}")),
            c.summary
        );
    }
    say!();
    for c in &results {
        match c.seed {
            Some(_) => say!(
                "  {}: replay: {} {}",
                c.recipe,
                program_name(),
                c.replay.trim_start_matches("tumult ")
            ),
            None => say!(
                "  {}: NOT CAUGHT within {} seeds / {} s",
                c.recipe,
                c.seeds_tried,
                args.wall_s
            ),
        }
        for (seed, valid, summary) in c.safe.iter().filter(|(_, v, _)| !*v) {
            let _ = valid;
            say!(
                "  {}: SAFE COUNTERPART FAILED on seed {seed}: {summary}",
                c.recipe
            );
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let passed = results.iter().filter(|c| c.passed()).count();
    say!(
        "{passed}/{} recipes caught, with their safe counterparts valid",
        results.len()
    );
    Ok(if passed == results.len() { 0 } else { 1 })
}

fn sweep(args: SweepArgs) -> anyhow::Result<u8> {
    use harness::suite::{anomaly_line, parallel, run_quietly, SeedResult, Stopwatch, SweepSummary};
    determinism_applies(&args.test)?;
    let determinism = args.test.check_determinism;
    let (a, b) = args.seeds;
    let seeds: Vec<u64> = (a..=b)
        .filter(|seed| args.shard.is_none_or(|(i, n)| (seed - a) % n == i - 1))
        .collect();
    // Every seed's spec up front: a bad flag is an error before anything runs.
    let specs: Vec<TestSpec> = seeds
        .iter()
        .map(|seed| spec_of(&args.test, Some(*seed)))
        .collect::<anyhow::Result<_>>()?;
    let Some(first) = specs.first() else {
        anyhow::bail!("the shard holds no seeds of {a}..{b}");
    };
    let shard = args
        .shard
        .map_or(String::new(), |(i, n)| format!(", shard {i}/{n}"));
    say!(
        "tumult sweep: {} seeds of {} ({a}..{b}{shard}){}",
        specs.len(),
        first.test_name(),
        match determinism {
            true => "; each run twice, to compare the histories byte for byte",
            false => "",
        }
    );
    let store = Store::new(&args.test.store);
    let bar = runs_bar(specs.len() as u64, "seeds");
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let results = parallel(
        &specs,
        args.jobs.unwrap_or_else(cores),
        |spec| {
            let watch = Stopwatch::start();
            let (exit_code, summary, dir) = if spec.runtime == harness::Runtime::Real {
                // A real run never happens the same way twice: each is stored as it runs
                // (its node data and logs need a run directory anyway).
                match harness::run_and_store(spec, &store) {
                    Ok(stored) => (
                        stored.outcome.exit_code(),
                        anomaly_line(&stored.outcome),
                        Some(stored.dir.display().to_string()),
                    ),
                    Err(e) => (3, format!("harness error: {e}"), None),
                }
            } else {
                let (exit_code, summary) = match determinism {
                    false => match run_quietly(spec) {
                        Ok(outcome) => (outcome.exit_code(), anomaly_line(&outcome)),
                        Err(e) => (3, format!("harness error: {e}")),
                    },
                    true => run_twice(spec),
                };
                // Store only what failed: the same seed replays to the same history.
                let dir = (exit_code != 0)
                    .then(|| {
                        harness::run_and_store(spec, &store)
                            .ok()
                            .map(|s| s.dir.display().to_string())
                    })
                    .flatten();
                (exit_code, summary, dir)
            };
            SeedResult {
                seed: spec.seed,
                test: spec.test_name(),
                exit_code,
                summary,
                wall_s: watch.elapsed().as_secs_f64(),
                replay: format!(
                    "{} {}",
                    program_name(),
                    spec.replay_command().trim_start_matches("tumult ")
                ),
                dir,
            }
        },
        |r| {
            bar.inc(1);
            if r.failed() {
                let n = failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                bar.set_message(format!("{n} failed"));
            }
        },
    );
    bar.finish_and_clear();
    let summary = SweepSummary::new(results);
    finish_summary(
        &summary,
        args.summary.as_deref(),
        args.junit.as_deref(),
        &first.test_name(),
    )
}

/// Runs a simulated seed twice: its exit code and line, or a harness error (exit 3) naming
/// the first line where the two histories differ.
fn run_twice(spec: &TestSpec) -> (i32, String) {
    let runs = harness::run_keeping_history(spec)
        .and_then(|(outcome, first)| harness::history_bytes(spec).map(|again| (outcome, first, again)));
    match runs {
        Ok((outcome, first, again)) => match harness::first_difference(&first, &again) {
            None => (outcome.exit_code(), harness::suite::anomaly_line(&outcome)),
            Some(line) => (
                EXIT_ERROR as i32,
                format!("determinism failure: the two runs' histories differ from line {line}"),
            ),
        },
        Err(e) => (3, format!("harness error: {e}")),
    }
}

/// Prints a summary's table and writes its files; exit 1 when anything failed.
fn finish_summary(
    summary: &harness::suite::SweepSummary,
    summary_file: Option<&Path>,
    junit: Option<&Path>,
    suite: &str,
) -> anyhow::Result<u8> {
    say!("{}", summary.table().trim_end());
    if let Some(path) = summary_file {
        std::fs::write(path, serde_json::to_string_pretty(summary)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        say!("  summary: {}", path.display());
    }
    if let Some(path) = junit {
        std::fs::write(path, summary.junit(suite)).with_context(|| format!("writing {}", path.display()))?;
        say!("  junit:   {}", path.display());
    }
    Ok(if summary.failures().next().is_some() { 1 } else { 0 })
}

fn merge(args: MergeArgs) -> anyhow::Result<u8> {
    let mut parts = Vec::new();
    for file in &args.files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let part: harness::suite::SweepSummary = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a tumult sweep summary", file.display()))?;
        if part.version != harness::suite::SUMMARY_VERSION {
            anyhow::bail!(
                "{}: summary version {} (this tumult reads {})",
                file.display(),
                part.version,
                harness::suite::SUMMARY_VERSION
            );
        }
        parts.push(part);
    }
    let merged = harness::suite::SweepSummary::merge(parts);
    say!("tumult merge: {} files", args.files.len());
    finish_summary(&merged, args.summary.as_deref(), args.junit.as_deref(), "tumult")
}

/// `NAME=VALUE`, for `--knob`.
fn parse_knob(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got '{text}'")),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    if !args.store.is_dir() {
        anyhow::bail!(
            "no results store at {} (run tumult test first, or pass --store DIR)",
            args.store.display()
        );
    }
    let runs = harness::pages::runs(&args.store)?.len();
    harness::serve::serve(&args.store, &format!("127.0.0.1:{}", args.port), |addr| {
        say!(
            "serving {} ({runs} runs) on http://{addr}/ (Ctrl-C stops)",
            args.store.display()
        );
    })?;
    Ok(0)
}

fn list() -> anyhow::Result<u8> {
    say!("workloads (--workload NAME, knobs with --knob NAME=VALUE):");
    for registration in workloads::registry() {
        let modes: Vec<String> = registration.modes.iter().map(|m| m.to_string()).collect();
        say!(
            "  {:<10} {} [modes: {}]",
            registration.name,
            registration.about,
            modes.join(", ")
        );
        for knob in registration.knobs {
            say!("    {:<16} {} (default {})", knob.name, knob.help, knob.default);
        }
    }
    say!("systems (--system NAME):");
    for system in harness::systems::registry() {
        let modes: Vec<String> = system.modes().iter().map(|m| m.to_string()).collect();
        let families: Vec<String> = system.families().iter().map(|f| f.to_string()).collect();
        let runtimes = if system.simulated() { "sim, real" } else { "real" };
        say!(
            "  {:<14} {} [modes: {}; workloads: {}; runtimes: {runtimes}]",
            system.name(),
            system.about(),
            modes.join(", "),
            families.join(", ")
        );
    }
    say!("modes (--mode):");
    for (mode, about) in Mode::ALL {
        say!("  {:<10} {about}", mode.to_string());
    }
    say!("faults (--nemesis, comma-separated):");
    for (kind, about) in FaultKind::ALL {
        say!("  {:<10} {about}", kind.as_str());
    }
    say!("targets (--target):");
    for (target, about) in [
        (FaultTarget::One, "one node at random"),
        (FaultTarget::Minority, "a minority of the nodes"),
        (
            FaultTarget::Majority,
            "a majority (a correlated failure, such as a rack losing power)",
        ),
        (FaultTarget::All, "every node"),
        (
            FaultTarget::Leader,
            "the leader of a random queue or partition, as the brokers' metadata says",
        ),
    ] {
        say!("  {:<10} {about}", target.as_str());
    }
    Ok(0)
}

fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    match args.what {
        Some(BenchWhat::Check(check)) => return bench_check(check),
        Some(BenchWhat::Systems(systems)) => return bench_systems(systems),
        None => {}
    }
    use harness::bench::{standard_spec, time_bare_turmoil, time_run, Figures};
    if cfg!(debug_assertions) {
        say!(
            "warning: this is an unoptimised build; measure with `cargo run --release --bin tumult -- bench`"
        );
    }
    let median = |mut figures: Vec<Figures>| {
        figures.sort_by(|a, b| a.speed().total_cmp(&b.speed()));
        figures[figures.len() / 2]
    };
    // With the invariant monitors (the default) and without, run by run in turn so that
    // both meet the same machine.
    let (mut standard, mut unmonitored) = (Vec::new(), Vec::new());
    for i in 0..u64::from(args.runs) {
        let spec = standard_spec(args.seed + i);
        standard.push(time_run(&spec).context("the standard run failed")?);
        let off = TestSpec {
            monitors: false,
            ..spec
        };
        unmonitored.push(time_run(&off).context("the standard run without monitors failed")?);
    }
    let standard = median(standard);
    let unmonitored = median(unmonitored);
    let spec = standard_spec(args.seed);
    let latency = (
        std::time::Duration::from_millis(spec.latency.min_ms),
        std::time::Duration::from_millis(spec.latency.max_ms),
    );
    let bare: Vec<Figures> = (0..args.runs)
        .map(|_| {
            time_bare_turmoil(
                spec.nodes,
                spec.concurrency,
                standard.messages,
                standard.simulated,
                latency,
            )
        })
        .collect();
    let bare = median(bare);
    let show = |name: &str, f: &Figures| {
        say!(
            "  {name:<14} {:>7.1} simulated s in {:>6.2} wall s = {:>6.1}x real time ({} messages)",
            f.simulated.as_secs_f64(),
            f.wall.as_secs_f64(),
            f.speed(),
            f.messages
        );
    };
    say!("tumult bench: median of {} run(s) each", args.runs);
    show("standard run", &standard);
    show("no monitors", &unmonitored);
    show("bare turmoil", &bare);
    say!(
        "  the invariant monitors cost {:.0}% of the standard run's speed (aim: at most 30%)",
        (1.0 - standard.speed() / unmonitored.speed()) * 100.0
    );
    let ratio = bare.speed() / standard.speed();
    say!(
        "  the standard run is {:.1}x real time (aim: 60x or better) and {ratio:.2}x slower than bare turmoil (aim: within 3x)",
        standard.speed()
    );
    Ok(0)
}

fn bench_systems(args: BenchSystemsArgs) -> anyhow::Result<u8> {
    use harness::bench_systems::{measure, Load, Measured, BASELINE, CONTENDERS};
    if cfg!(debug_assertions) {
        say!("warning: this is an unoptimised build; measure with `cargo run --release --bin tumult -- bench systems`");
    }
    let contenders = if args.only.is_empty() {
        CONTENDERS.to_vec()
    } else {
        args.only.clone()
    };
    // Each system's prerequisites first: a contender that cannot run here is named and
    // left out, not found missing half an hour in.
    let mut runnable = Vec::new();
    for contender in contenders {
        let system = harness::systems::find(contender.system).map_err(anyhow::Error::msg)?;
        match harness::real::require(system.as_ref()) {
            Ok(()) => runnable.push(contender),
            Err(why) => say!("skipping {contender}: {why}"),
        }
    }
    if runnable.is_empty() {
        anyhow::bail!("no contender can run on this machine (tumult doctor says what to install)");
    }
    let load = Load {
        nodes: args.nodes as usize,
        producers: args.producers as usize,
        size: args.size as usize,
        warmup: std::time::Duration::from_secs(args.warmup),
        measure: std::time::Duration::from_secs(args.seconds),
        request_timeout: std::time::Duration::from_millis(args.request_timeout),
    };
    let scratch = tempfile::Builder::new()
        .prefix("tumult-bench-")
        .tempdir()
        .context("cannot make a scratch directory for the nodes' data")?;
    say!(
        "tumult bench systems: {} node(s) each, {} producer(s), {}-byte persistent messages, fsync on, {} s measured after {} s of warm-up, {} round(s)",
        load.nodes, load.producers, load.size, args.seconds, args.warmup, args.rounds
    );
    let mut pooled: Vec<Measured> = vec![Measured::default(); runnable.len()];
    for round in 1..=args.rounds {
        for (i, contender) in runnable.iter().enumerate() {
            say!("  round {round}: {contender} ...");
            let dir = scratch
                .path()
                .join(format!("r{round}-{}-{}", contender.system, contender.mode));
            let measured = measure(*contender, &load, &dir)
                .with_context(|| format!("{contender} (its nodes' logs were in {})", dir.display()))?;
            let _ = std::fs::remove_dir_all(&dir);
            pooled[i].absorb(measured);
        }
    }
    let baseline = runnable
        .iter()
        .position(|c| *c == BASELINE)
        .map(|i| pooled[i].clone());
    say!(
        "\n  {:<24} {:>12} {:>9} {:>9} {:>7}   vs {BASELINE}: {:>6} {:>6} {:>6}",
        "system:mode",
        "confirmed/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "rate",
        "p50",
        "p99"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for (contender, m) in runnable.iter().zip(&pooled) {
        let (p50, p99) = (m.latency_ms(0.5), m.latency_ms(0.99));
        let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let (r_rate, r50, r99) = match &baseline {
            Some(b) => (
                ratio(Some(m.rate()), Some(b.rate())),
                ratio(p50, b.latency_ms(0.5)),
                ratio(p99, b.latency_ms(0.99)),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        say!(
            "  {:<24} {:>12.1} {:>9} {:>9} {:>7}   {:>width$} {r_rate:>6} {r50:>6} {r99:>6}",
            contender.to_string(),
            m.rate(),
            ms(p50),
            ms(p99),
            m.errors,
            "",
            width = BASELINE.to_string().len() + 4
        );
    }
    for (contender, m) in runnable.iter().zip(&pooled) {
        let mut kinds: Vec<(&String, &u64)> = m.error_kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        for (kind, n) in kinds.into_iter().take(3) {
            say!("  {contender} error x{n}: {kind}");
        }
    }
    if runnable.iter().any(|c| c.system == "nats") {
        say!("  note: nats-server 2.9.10 cannot fsync each write (sync_interval, default 2 min, and `always` came in 2.10): its confirms do not wait for a disk");
    }
    Ok(0)
}

fn verdict_words(outcome: &harness::RunOutcome) -> &'static str {
    match outcome.exit_code() {
        0 => "no anomaly found",
        1 => "anomaly found",
        4 => "the cluster never recovered after healing",
        _ => "not enough information to decide",
    }
}

/// An anomaly name for `--allow`: one the log analyses report.
fn parse_anomaly(name: &str) -> Result<String, String> {
    if checker::LOG_ANOMALIES.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "unknown anomaly '{name}' (known: {})",
            checker::LOG_ANOMALIES.join(", ")
        ))
    }
}

fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let path = if args.file.is_dir() {
        let edn = args.file.join("history.edn");
        match args.file.join("history.jsonl") {
            jsonl if !jsonl.exists() && edn.exists() => edn,
            jsonl => jsonl,
        }
    } else {
        args.file.clone()
    };
    let started = harness::bench::wall_now();
    let allow: Vec<&str> = args.allow.iter().map(String::as_str).collect();
    let checker::Checked { report, ops } =
        match checker::check_file(&path, args.format, args.workload, &allow) {
            Ok(checked) => checked,
            // That message names the file already.
            Err(e @ checker::CheckFileError::Open { .. }) => return Err(e.into()),
            Err(e) => return Err(anyhow::Error::new(e).context(path.display().to_string())),
        };
    let checked = started.elapsed();
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!("{}: {ops} ops", path.display());
        say!("{}", report.valid.label());
        for (name, analysis) in &report.analyses {
            say!("  {name}: {}", analysis.summary());
        }
        for line in harness::exemplars::exemplar_lines(&report) {
            say!("{line}");
        }
    }
    if args.stats {
        let peak = harness::bench_check::peak_rss_bytes();
        eprintln!(
            "stats: read and checked {ops} ops in {:.3} s",
            checked.as_secs_f64()
        );
        match peak {
            Some(bytes) => eprintln!("stats: peak RSS {bytes} bytes"),
            None => eprintln!("stats: peak RSS unavailable (no /proc/self/status)"),
        }
        match harness::bench_check::cpu_time() {
            Some(cpu) => eprintln!("stats: cpu {} ns", cpu.as_nanos()),
            None => eprintln!("stats: cpu unavailable (no /proc/self/schedstat or stat)"),
        }
    }
    Ok(report.valid.exit_code() as u8)
}

fn bench_check(args: BenchCheckArgs) -> anyhow::Result<u8> {
    use harness::bench_check::{median, time_check, write_file};
    use harness::synth::Spelling;
    if cfg!(debug_assertions) {
        say!("warning: this is an unoptimised build; measure with `cargo run --release --bin tumult -- bench check`");
    }
    let exe = std::env::current_exe().context("cannot find the tumult binary to run")?;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("tumult-bench-check-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    say!("tumult bench check: files in {}", dir.display());
    say!(
        "  best of {} run(s) each, in rounds that check every size of a shape once (sizes side by side); cpu s is the checker's own CPU time (one thread), ops/cpu-s the rate on one core",
        args.runs
    );
    say!(
        "  {:<16} {:<5} {:>10} {:>9} {:>8} {:>11} {:>7} {:>11} {:>10} {:>8}  verdict",
        "shape",
        "fmt",
        "ops",
        "file MB",
        "wall s",
        "ops/s",
        "cpu s",
        "ops/cpu-s",
        "peak MB",
        "B/op"
    );
    let mut wrong = 0;
    let mut misses = Vec::new();
    for &shape in &args.shapes {
        for &format in &args.formats {
            let (spelling, ext) = match format {
                checker::Format::Edn => (Spelling::Edn, "edn"),
                _ => (Spelling::Jsonl, "jsonl"),
            };
            // Every size's file first, then the runs in rounds, each round checking every
            // size once: the sizes are compared side by side, so a machine that gets busier
            // halfway through slows them alike instead of skewing the growth per op.
            let mut files = Vec::new();
            for &size in &args.sizes {
                let path = dir.join(format!("{}-{size}.{ext}", shape.name()));
                let ops = write_file(shape, size, spelling, &path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                files.push((size, path, ops));
            }
            let mut best = files
                .iter()
                .map(|(_, path, ops)| time_check(&exe, path, *ops))
                .collect::<std::io::Result<Vec<_>>>()?;
            // Every run's cost, for the median beside the best: how far apart they are
            // shows how busy the machine was.
            let mut costs: Vec<Vec<f64>> = best.iter().map(|f| vec![f.cost().as_secs_f64()]).collect();
            for _ in 1..args.runs {
                for (((_, path, ops), best), costs) in files.iter().zip(best.iter_mut()).zip(&mut costs) {
                    let figures = time_check(&exe, path, *ops)?;
                    costs.push(figures.cost().as_secs_f64());
                    *best = best.clone().best(figures);
                }
            }
            let mut per_op = Vec::new();
            for (((size, path, ops), figures), costs) in files.into_iter().zip(best).zip(costs) {
                if !args.keep {
                    let _ = std::fs::remove_file(&path);
                }
                let expected = if shape.is_invalid() { 1 } else { 0 };
                let mark = if figures.exit_code == expected {
                    ""
                } else {
                    "  <- WRONG VERDICT"
                };
                wrong += usize::from(figures.exit_code != expected);
                let peak = figures.peak_rss_bytes.unwrap_or(0);
                let per_cpu_s = figures.ops_per_cpu_s();
                say!(
                    "  {:<16} {:<5} {:>10} {:>9.1} {:>8.2} {:>11.0} {:>7} {:>11} {:>10.1} {:>8.0}  {}{mark}",
                    shape.name(),
                    ext,
                    ops,
                    figures.file_bytes as f64 / 1e6,
                    figures.wall.as_secs_f64(),
                    figures.ops_per_s(),
                    figures
                        .cpu
                        .map_or("-".to_string(), |c| format!("{:.2}", c.as_secs_f64())),
                    per_cpu_s.map_or("-".to_string(), |r| format!("{r:.0}")),
                    peak as f64 / 1e6,
                    peak as f64 / ops as f64,
                    figures.verdict,
                );
                let name = format!("{} {ext} {ops} ops", shape.name());
                // The aims of the checker's speed work: 1M ops/s on one core for JSONL,
                // 500k for EDN, at most 500 bytes of memory per op, under 4 GB in all.
                let aim = if ext == "edn" { 500_000.0 } else { 1_000_000.0 };
                let rate = per_cpu_s.unwrap_or_else(|| figures.ops_per_s());
                if rate < aim {
                    misses.push(format!("{name}: {rate:.0} ops/s on one core (aim {aim:.0})"));
                }
                if peak > 500 * ops || peak >= 4_000_000_000 {
                    misses.push(format!(
                        "{name}: peak {:.0} B/op (aim 500, under 4 GB)",
                        peak as f64 / ops as f64
                    ));
                }
                let cost = figures.cost().as_secs_f64();
                per_op.push((size, cost / ops as f64, median(costs) / ops as f64));
            }
            for pair in per_op.windows(2) {
                let growth = pair[1].1 / pair[0].1;
                let by_medians = match args.runs {
                    1 => String::new(),
                    _ => format!(" ({:.2}x by the medians of the runs)", pair[1].2 / pair[0].2),
                };
                say!(
                    "  {:<16} {:<5} {}x the ops cost {growth:.2}x the time per op{by_medians}",
                    shape.name(),
                    ext,
                    pair[1].0 / pair[0].0,
                );
                if pair[1].0 >= 10 * pair[0].0 && growth > 1.3 {
                    misses.push(format!(
                        "{} {ext}: {}x the ops cost {growth:.2}x per op (aim 1.3x)",
                        shape.name(),
                        pair[1].0 / pair[0].0
                    ));
                }
            }
        }
    }
    if args.dir.is_none() && !args.keep {
        let _ = std::fs::remove_dir(&dir);
    }
    if misses.is_empty() {
        say!("every figure meets the aims (JSONL 1M ops/s and EDN 500k on one core, 500 B/op, 10x the ops at most 1.3x per op)");
    } else {
        say!("figures short of the aims:");
        for miss in &misses {
            say!("  {miss}");
        }
    }
    if wrong > 0 {
        say!("{wrong} check(s) gave the wrong verdict");
        return Ok(1);
    }
    Ok(0)
}

/// The first explanation of each cycle anomaly the workload does not allow.
fn doctor() -> anyhow::Result<u8> {
    let checks = harness::real::doctor();
    let mut missing = 0;
    for check in &checks {
        let mark = if check.ok { "ok     " } else { "MISSING" };
        say!("{mark} {}", check.what);
        if !check.ok {
            say!("        {}", check.fix);
            // Real runs go without an optional one, refusing only the faults it makes.
            if !check.optional {
                missing += 1;
            }
        }
    }
    let packages: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .filter_map(|c| c.fix.strip_prefix("apt-get install -y "))
        .collect();
    if !packages.is_empty() {
        say!(
            "\ninstall what is missing: apt-get update && apt-get install -y {}",
            packages.join(" ")
        );
    }
    Ok(if missing == 0 { 0 } else { EXIT_ERROR })
}

fn clean() -> anyhow::Result<u8> {
    let done = harness::real::net::clean().context("removing what real runs left")?;
    for action in &done {
        say!("{action}");
    }
    if done.is_empty() {
        say!("nothing of tumult's to remove");
    }
    Ok(0)
}

/// How the user invoked us, so the printed replay command runs as typed.
fn program_name() -> String {
    std::env::args().next().unwrap_or_else(|| "tumult".into())
}

#[allow(clippy::disallowed_methods)] // picks a fresh seed; the seed, not the clock, reaches the run
fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Keep seeds short enough to type.
    harness::derive_seed(nanos, 0) % 1_000_000
}
