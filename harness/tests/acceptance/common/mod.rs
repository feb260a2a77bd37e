//! Helpers shared by the harness's acceptance tests.

use checker::{Op, OpType};

/// (start, end) of every window of a kill or of a clean partition (halves, or nodes
/// isolated), in simulated nanoseconds. Partial partitions (bridge, ring, one-way) are left
/// out: under them no majority is connected, and pausing is the safe answer.
pub fn fault_windows(history: &[Op]) -> Vec<(u64, u64)> {
    let mut windows = Vec::new();
    let mut open = None;
    for op in history {
        let clean = !matches!(op.value["shape"].as_str(), Some("bridge" | "ring" | "one-way"));
        match op.f.as_str() {
            "kill" => open = Some(op.time),
            "start-partition" if clean => open = Some(op.time),
            "start" | "stop-partition" => windows.extend(open.take().map(|t| (t, op.time))),
            _ => {}
        }
    }
    windows
}

/// Over the histories of several runs: of the fault windows at least `min_s` long, how many
/// saw a write (`enqueue` or `send`) acknowledged after `failover_s` into the window:
/// (windows checked, windows served).
pub fn windows_served(
    histories: impl IntoIterator<Item = checker::History>,
    min_s: f64,
    failover_s: f64,
) -> (usize, usize) {
    histories.into_iter().fold((0, 0), |(checked, served), history| {
        let (c, s) = windows_served_in(history.ops(), min_s, failover_s);
        (checked + c, served + s)
    })
}

/// Asserts that over `histories` there were at least `at_least` fault windows `min_s` long
/// and that each saw a write acknowledged after `failover_s` into it.
pub fn assert_every_window_served(
    histories: impl IntoIterator<Item = checker::History>,
    min_s: f64,
    failover_s: f64,
    at_least: usize,
) {
    let (checked, served) = windows_served(histories, min_s, failover_s);
    assert!(checked >= at_least, "only {checked} long fault windows");
    assert_eq!(
        served, checked,
        "some fault windows saw no write acknowledged {failover_s} s after they began"
    );
}

/// Asserts that a safe run was valid and its cluster recovered.
pub fn assert_valid_and_recovered(seed: u64, outcome: &harness::RunOutcome) {
    assert_eq!(
        outcome.report.valid,
        checker::Validity::True,
        "seed {seed}: {:?}",
        outcome.report
    );
    assert!(outcome.liveness.recovered, "seed {seed}");
}

fn windows_served_in(history: &[Op], min_s: f64, failover_s: f64) -> (usize, usize) {
    let (min, failover) = ((min_s * 1e9) as u64, (failover_s * 1e9) as u64);
    let long: Vec<(u64, u64)> = fault_windows(history)
        .into_iter()
        .filter(|(s, e)| e - s >= min)
        .collect();
    let served = long
        .iter()
        .filter(|(start, end)| {
            history.iter().any(|op| {
                let write = op.f == "enqueue" || op.f == "send";
                op.kind == OpType::Ok && write && op.time > start + failover && op.time < *end
            })
        })
        .count();
    (long.len(), served)
}

/// Runs `check` (a whole simulation and its assertions) for every seed in `seeds`, two at
/// a time, and returns what each returned, in seed order: a test of 20 seeds would
/// otherwise hold one core while the other idles at the end of its binary. A failing
/// seed's panic fails the test.
pub fn each_seed<R: Send>(seeds: std::ops::RangeInclusive<u64>, check: impl Fn(u64) -> R + Sync) -> Vec<R> {
    let seeds: Vec<u64> = seeds.collect();
    harness::suite::parallel(&seeds, 2, |seed| check(*seed), |_| {})
}

/// Runs `spec` and stores it in a store of its own, which is dropped with the test.
pub fn run(spec: &harness::TestSpec) -> harness::StoredRun {
    let store = tempfile::tempdir().unwrap();
    harness::run_and_store(spec, &harness::Store::new(store.path()))
        .unwrap_or_else(|e| panic!("seed {}: {e}", spec.seed))
}

/// A log run's report.
pub fn log(run: &harness::StoredRun) -> &checker::LogReport {
    run.outcome.report.log().expect("a log run")
}
