//! Shrinking a zoo failure leaves a few faults that still replay to the same anomaly.

use harness::shrink::{anomalies, shrink};
use harness::zoo::recipes;
use harness::{run_and_store, Store, TestSpec};

#[test]
fn a_zoo_failure_shrinks_to_a_few_faults_that_replay_to_the_same_anomaly() {
    let root = tempfile::tempdir().unwrap();
    let recipe = recipes()
        .into_iter()
        .find(|r| r.name == "mirrored-promote-unsynced")
        .unwrap();
    let stored = run_and_store(&recipe.unsafe_spec(1), &Store::new(root.path())).unwrap();
    assert!(anomalies(&stored.outcome).contains(&"lost".to_string()));
    let before = stored.outcome.schedule.faults.len();
    assert!(before >= 5, "a schedule worth shrinking: {before} faults");

    let shrunk = shrink(&stored.dir, 2, &|_| {}).unwrap();
    assert_eq!(shrunk.anomaly, "lost");
    assert_eq!(shrunk.faults_before, before);
    assert!(
        shrunk.faults_after <= 3 && shrunk.faults_after < before,
        "{shrunk:?}"
    );

    // The written schedule and the shrunk parameters replay to the same anomaly.
    let params: TestSpec =
        serde_json::from_str(&std::fs::read_to_string(stored.dir.join("params.json")).unwrap()).unwrap();
    let replay = TestSpec {
        time_limit_s: shrunk.time_limit_after,
        concurrency: shrunk.concurrency_after,
        schedule: Some(shrunk.schedule_file.clone()),
        ..params
    };
    let outcome = harness::suite::run_quietly(&replay).unwrap();
    assert!(
        anomalies(&outcome).contains(&"lost".to_string()),
        "{}",
        harness::suite::anomaly_line(&outcome)
    );
    assert_eq!(outcome.schedule.faults.len(), shrunk.faults_after);
    assert!(shrunk.replay.contains("--schedule"));
}
