//! The foundation's acceptance runs: a single durable broker under kills keeps every
//! acknowledged message with fsync, loses them without, and every run replays exactly.

use broker::FsyncPolicy;
use checker::Validity;
use harness::{run_and_store, Store, StoredRun, TestSpec};

fn run_seed(store: &Store, seed: u64, fsync: FsyncPolicy) -> StoredRun {
    let spec = TestSpec {
        fsync,
        ..TestSpec::new(seed)
    };
    run_and_store(&spec, store).unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

fn lost_count(run: &StoredRun) -> usize {
    run.outcome.report.total_queue().expect("a queue run").lost_count
}

/// The stored history checked again from disk, with the run's monitor findings (which
/// only the live simulation can see) added as the run added them.
fn recheck(run: &StoredRun) -> checker::Report {
    let file = std::fs::File::open(run.dir.join("history.jsonl")).unwrap();
    let history = checker::History::read_jsonl(std::io::BufReader::new(file)).unwrap();
    let mut report = checker::check(&history, checker::Workload::Queue);
    if let Some(monitors) = run.outcome.report.monitors() {
        report.add_monitors(monitors.clone());
    }
    report
}

#[test]
fn with_fsync_always_kills_lose_nothing_on_seeds_1_to_20() {
    let store = tempfile::tempdir().unwrap();
    let store = Store::new(store.path());
    // Two seeds at a time: each is a whole simulation of its own.
    let seeds: Vec<u64> = (1..=20).collect();
    harness::suite::parallel(
        &seeds,
        2,
        |&seed| {
            let run = run_seed(&store, seed, FsyncPolicy::Always);
            let kills = run
                .outcome
                .history
                .ops()
                .iter()
                .filter(|op| op.f == "kill")
                .count();
            assert!(kills >= 1, "seed {seed}: the nemesis never killed the broker");
            assert_eq!(
                run.outcome.report.valid,
                Validity::True,
                "seed {seed}: {:?}",
                run.outcome.report
            );
            assert!(
                run.outcome.liveness.recovered,
                "seed {seed}: {:?}",
                run.outcome.liveness
            );
            assert_eq!(run.outcome.exit_code(), 0);
            // The stored history, checked again from disk, says the same.
            let again = serde_json::to_value(recheck(&run)).unwrap();
            assert_eq!(
                again,
                serde_json::to_value(&run.outcome.report).unwrap(),
                "seed {seed}"
            );
        },
        |_| {},
    );
}

#[test]
fn with_fsync_never_kills_lose_acknowledged_messages_on_most_seeds() {
    let store = tempfile::tempdir().unwrap();
    let store = Store::new(store.path());
    let seeds: Vec<u64> = (1..=20).collect();
    let caught: usize = harness::suite::parallel(
        &seeds,
        2,
        |&seed| {
            let run = run_seed(&store, seed, FsyncPolicy::Never);
            assert_eq!(recheck(&run).valid, run.outcome.report.valid, "seed {seed}");
            if run.outcome.report.valid != Validity::False {
                return 0;
            }
            assert!(
                lost_count(&run) > 0,
                "seed {seed}: invalid, but not for lost messages"
            );
            assert_eq!(run.outcome.exit_code(), 1);
            1
        },
        |_| {},
    )
    .into_iter()
    .sum();
    assert!(
        caught >= 15,
        "only {caught} of 20 seeds lost messages without fsync"
    );
}

#[test]
fn the_same_seed_gives_a_byte_identical_history() {
    let store = tempfile::tempdir().unwrap();
    let store = Store::new(store.path());
    // Other simulations running in the same process must not leak into this one (tokio's
    // process-wide task ids once decided the order a crashed host's sockets closed in).
    let noise: Vec<_> = (0..2)
        .map(|thread| {
            let store = store.clone();
            #[allow(clippy::disallowed_methods)] // the test's own threads, outside any simulation
            std::thread::spawn(move || {
                for seed in 100..104 {
                    run_seed(&store, seed + thread * 10, FsyncPolicy::Never);
                }
            })
        })
        .collect();
    let first = run_seed(&store, 7, FsyncPolicy::Never);
    let second = run_seed(&store, 7, FsyncPolicy::Never);
    for thread in noise {
        thread.join().unwrap();
    }
    assert_ne!(first.dir, second.dir, "a second run must not overwrite the first");
    let a = std::fs::read(first.dir.join("history.jsonl")).unwrap();
    let b = std::fs::read(second.dir.join("history.jsonl")).unwrap();
    assert!(a.len() > 10_000, "the run did some work");
    assert!(a == b, "histories of seed 7 differ between two runs");
    // And the seed matters: another seed tells another story.
    let other = run_seed(&store, 8, FsyncPolicy::Never);
    assert_ne!(a, std::fs::read(other.dir.join("history.jsonl")).unwrap());
}

#[test]
fn a_run_stores_its_files_and_points_latest_at_them() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::new(root.path());
    let run = run_seed(&store, 3, FsyncPolicy::Always);
    for file in ["params.json", "history.jsonl", "results.json", "harness.log"] {
        assert!(run.dir.join(file).is_file(), "missing {file}");
    }
    let latest = std::fs::canonicalize(root.path().join("latest")).unwrap();
    assert_eq!(latest, std::fs::canonicalize(&run.dir).unwrap());
    let params: TestSpec =
        serde_json::from_slice(&std::fs::read(run.dir.join("params.json")).unwrap()).unwrap();
    assert_eq!(params.seed, 3);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], serde_json::json!(true));
    assert!(results["replay"].as_str().unwrap().contains("--seed 3"));
    // Every log line starts with the simulated time.
    let log = std::fs::read_to_string(run.dir.join("harness.log")).unwrap();
    assert!(log.lines().count() > 5);
    for line in log.lines() {
        let stamp = line.split_whitespace().next().unwrap_or("");
        assert!(
            stamp.ends_with('s') && stamp.trim_end_matches('s').parse::<f64>().is_ok(),
            "no simulated time on: {line}"
        );
    }
}
