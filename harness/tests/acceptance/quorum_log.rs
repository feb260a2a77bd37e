//! quorum mode serving the log workload (a Raft group per partition, as Redpanda and NATS
//! JetStream replicate): the safe defaults keep every acknowledged record and show consumers
//! only committed data through kills, partitions and pauses; partitions placed on some
//! nodes only are found by their clients; turning fsync off is caught when every node loses
//! power at once; and a seed replays to the same history.

use crate::common::{self, log, run};

use broker::{FsyncPolicy, Mode};
use checker::Validity;
use harness::{FaultSet, FaultTarget, StoredRun, TestSpec};

fn spec(seed: u64, nemesis: &str) -> TestSpec {
    TestSpec {
        mode: Mode::Quorum,
        nodes: 3,
        workload: "log".into(),
        nemesis: nemesis.parse::<FaultSet>().unwrap(),
        ..TestSpec::new(seed)
    }
}

/// Every key's sends that were acknowledged, by the offset the leader gave them: a
/// partition's offsets are its Raft machine's, dense from 0, whichever node led.
fn acknowledged_offsets(run: &StoredRun) -> std::collections::BTreeMap<u64, Vec<u64>> {
    let mut offsets: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for op in run.outcome.history.ops() {
        if op.kind != checker::OpType::Ok || op.f != "send" {
            continue;
        }
        // `[["send", key, [offset, value]], ...]`: the micro-ops of one send.
        for micro in op.value.as_array().into_iter().flatten() {
            let Some([_, key, written]) = micro.as_array().map(Vec::as_slice) else {
                continue;
            };
            let offset = written
                .as_array()
                .and_then(|w| w.first())
                .and_then(|o| o.as_u64());
            if let (Some(key), Some(offset)) = (key.as_u64(), offset) {
                offsets.entry(key).or_default().push(offset);
            }
        }
    }
    offsets
}

#[test]
fn safe_defaults_lose_nothing_read_nothing_dirty_and_keep_serving_on_10_seeds() {
    let histories = common::each_seed(1..=10, |seed| {
        let run = run(&spec(seed, "kill,partition,pause"));
        common::assert_valid_and_recovered(seed, &run.outcome);
        let report = log(&run);
        assert!(
            report.acknowledged_count > 100,
            "seed {seed}: the cluster barely served"
        );
        assert_eq!(report.dirty_read_count, 0, "seed {seed}");
        // Every partition served, each with offsets that no two sends share.
        let offsets = acknowledged_offsets(&run);
        assert_eq!(offsets.len(), 3, "seed {seed}: {:?}", offsets.keys());
        for (key, mut list) in offsets {
            let n = list.len();
            list.sort_unstable();
            list.dedup();
            assert_eq!(list.len(), n, "seed {seed}: key {key} gave an offset twice");
        }
        run.outcome.history
    });
    // An election takes 150-300 ms, then a client timeout (1 s) before the leader is found.
    common::assert_every_window_served(histories, 3.0, 1.5, 5);
}

#[test]
fn partitions_on_two_of_three_nodes_are_found_and_keep_their_records() {
    for seed in 1..=3 {
        let mut spec = spec(seed, "kill,partition");
        spec.kafka.rf = 2;
        let run = run(&spec);
        common::assert_valid_and_recovered(seed, &run.outcome);
        assert!(log(&run).acknowledged_count > 100, "seed {seed}");
    }
}

#[test]
fn without_fsync_a_cluster_wide_power_loss_loses_acknowledged_records() {
    for seed in 1..=3 {
        let unsafe_run = run(&TestSpec {
            fsync: FsyncPolicy::Never,
            target: FaultTarget::All,
            ..spec(seed, "kill")
        });
        assert_eq!(unsafe_run.outcome.report.valid, Validity::False, "seed {seed}");
        assert!(log(&unsafe_run).lost_count > 0, "seed {seed}");
        let monitors = unsafe_run
            .outcome
            .report
            .monitors()
            .expect("monitors run by default");
        assert!(
            monitors
                .violations
                .first()
                .is_some_and(|v| v.monitor == "durability" && v.what.contains("__partition-")),
            "seed {seed}: {monitors:?}"
        );
        let safe_run = run(&TestSpec {
            target: FaultTarget::All,
            ..spec(seed, "kill")
        });
        assert_eq!(
            safe_run.outcome.report.valid,
            Validity::True,
            "seed {seed}: {:?}",
            safe_run.outcome.report
        );
    }
}

#[test]
fn a_seed_replays_to_the_same_history() {
    let spec = spec(4, "kill").swarm();
    let first = harness::history_bytes(&spec).unwrap();
    let again = harness::history_bytes(&spec).unwrap();
    assert!(first.len() > 10_000);
    assert_eq!(harness::first_difference(&first, &again), None);
}
