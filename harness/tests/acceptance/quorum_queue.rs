//! quorum mode (a Raft group per queue) under the harness: no acknowledged message is lost
//! under kills and partitions, the cluster keeps serving through a minority failure, and
//! turning fsync off is caught when every node loses power at once.

use crate::common;
use broker::{FsyncPolicy, Mode};
use checker::Validity;

use harness::{run_and_store, FaultSet, FaultTarget, Store, StoredRun, TestSpec};

fn run(seed: u64, nemesis: &str, target: FaultTarget, fsync: FsyncPolicy) -> StoredRun {
    let spec = TestSpec {
        mode: Mode::Quorum,
        nodes: 3,
        nemesis: nemesis.parse::<FaultSet>().unwrap(),
        target,
        fsync,
        ..TestSpec::new(seed)
    };
    let store = tempfile::tempdir().unwrap();
    run_and_store(&spec, &Store::new(store.path())).unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

fn lost(run: &StoredRun) -> usize {
    run.outcome.report.total_queue().expect("a queue run").lost_count
}

/// Kills and partitions of one node on 20 seeds: nothing lost, and a cluster that keeps
/// serving through every long fault window (the same runs answer both questions).
#[test]
fn kills_and_partitions_of_a_minority_lose_nothing_and_the_cluster_keeps_serving_on_20_seeds() {
    let histories = common::each_seed(1..=20, |seed| {
        let run = run(seed, "kill,partition", FaultTarget::One, FsyncPolicy::Always);
        common::assert_valid_and_recovered(seed, &run.outcome);
        assert!(
            run.outcome
                .history
                .ops()
                .iter()
                .any(|op| op.process == checker::Process::nemesis()),
            "seed {seed}: no fault injected"
        );
        run.outcome.history
    });
    // Leave time for an election (150-300 ms) and a client timeout (1 s).
    common::assert_every_window_served(histories, 3.0, 1.5, 10);
}

#[test]
fn without_fsync_a_cluster_wide_power_loss_loses_acknowledged_messages() {
    for seed in 1..=5 {
        let unsafe_run = run(seed, "kill", FaultTarget::All, FsyncPolicy::Never);
        assert_eq!(unsafe_run.outcome.report.valid, Validity::False, "seed {seed}");
        assert!(lost(&unsafe_run) > 0, "seed {seed}");
        let safe_run = run(seed, "kill", FaultTarget::All, FsyncPolicy::Always);
        assert_eq!(
            safe_run.outcome.report.valid,
            Validity::True,
            "seed {seed}: {:?}",
            safe_run.outcome.report
        );
    }
}
