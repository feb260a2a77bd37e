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

/// Without fsync a commit rests on no fsynced copy: the durability monitor sees it at the
/// first commit, and a node forgets the term it voted in when it crashes: the Raft monitor
/// sees that at the node's first restart; both on the first seed, with the state that shows
/// it. With fsync the same runs check thousands of events and find nothing. Turning the
/// monitors off removes them from the verdict and the replay command says so.
#[test]
fn a_vote_lost_to_a_missing_fsync_is_caught_by_the_raft_monitor_at_the_first_restart() {
    let monitors_of = |run: &StoredRun| {
        run.outcome
            .report
            .monitors()
            .cloned()
            .expect("monitors run by default")
    };
    let unsafe_spec = TestSpec {
        mode: Mode::Quorum,
        nodes: 3,
        nemesis: "kill".parse::<FaultSet>().unwrap(),
        target: FaultTarget::All,
        fsync: FsyncPolicy::Never,
        ..TestSpec::new(1)
    };
    // Kept to the end of the test: the run's pages are read below.
    let kept = tempfile::tempdir().unwrap();
    let unsafe_run = run_and_store(&unsafe_spec, &Store::new(kept.path())).unwrap();
    let monitors = monitors_of(&unsafe_run);
    assert!(monitors.violation_count > 0, "{monitors:?}");
    let first = &monitors.violations[0];
    assert_eq!(first.monitor, "durability");
    assert!(
        first
            .what
            .contains("committed entry 1 (term 1) while it was fsynced only on []"),
        "{first:?}"
    );
    let vote = monitors
        .violations
        .iter()
        .find(|v| v.monitor == "raft")
        .expect("the raft monitor's witness is kept beside the durability monitor's flood");
    assert!(vote.what.contains("did not survive the restart"), "{vote:?}");
    // Seen during the faults, long before the final reads show the loss.
    let time_limit_ns = TestSpec::new(1).time_limit_s * 1_000_000_000;
    assert!(vote.time_ns < time_limit_ns, "{vote:?}");
    // The timeline marks each violation kept, hovering to its text.
    let timeline = std::fs::read_to_string(unsafe_run.dir.join("timeline.html")).unwrap();
    let marks = timeline.matches(r#"<div class="violation""#).count();
    assert_eq!(marks, monitors.violations.len(), "one mark per violation kept");
    assert!(timeline.contains("did not survive the restart"));
    let findings = unsafe_run.outcome.report.findings();
    assert!(
        findings
            .iter()
            .any(|(name, n)| name == "monitor-violations" && *n > 0),
        "{findings:?}"
    );

    let safe_run = run(1, "kill", FaultTarget::All, FsyncPolicy::Always);
    let monitors = monitors_of(&safe_run);
    assert!(
        monitors.checked > 1_000 && monitors.violation_count == 0,
        "{monitors:?}"
    );

    let spec = TestSpec {
        monitors: false,
        ..unsafe_spec
    };
    let outcome = harness::suite::run_quietly(&spec).unwrap();
    assert!(outcome.report.monitors().is_none());
    // Watching never changes what is watched: the same seed gives the same history.
    assert!(
        outcome.history.ops() == unsafe_run.outcome.history.ops(),
        "the monitors changed the run"
    );
    assert!(
        spec.replay_command().contains("--monitors false"),
        "{}",
        spec.replay_command()
    );
}
