//! The real products, each through a short `tumult test --runtime real --system NAME` as a
//! user runs it: the cluster forms, the workload's operations are acknowledged, faults
//! happen, the final read completes and the stored history checks back to the verdict.
//! Each needs its Debian package (`.ci/run` installs them); SKIPPED without it, unless
//! `TUMULT_REAL_TESTS=require`.

use std::process::Command;

use crate::gate::ready_for;

/// Runs `args` with `tumult test --runtime real` into a fresh store; the exit code, the
/// run's directory (kept with the store) and what it printed.
fn run(args: &[&str]) -> (Option<i32>, tempfile::TempDir, String) {
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tumult"))
        .args(["test", "--runtime", "real"])
        .args(args)
        .args(["--store", store.path().to_str().unwrap()])
        .output()
        .unwrap();
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), store, printed)
}

/// Completions of `f` of kind `kind` in a stored history.
fn count(history: &str, f: &str, kind: &str) -> usize {
    history
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|op| op["f"] == f && op["type"] == kind)
        .count()
}

#[test]
fn a_nats_jetstream_cluster_takes_the_log_workload_under_kills_and_partitions() {
    if !ready_for(&harness::systems::Nats) {
        return;
    }
    let (code, store, printed) = run(&[
        "--system",
        "nats",
        "--mode",
        "quorum",
        "--nemesis",
        "kill,partition",
        "--nemesis-interval",
        "3",
        "--time-limit",
        "10",
        "--recovery",
        "20",
        "--seed",
        "1",
    ]);
    // A verdict (valid or invalid: what NATS does is the finding, not the test's
    // business), never a harness error or a cluster that did not come back.
    assert!(matches!(code, Some(0 | 1)), "{printed}");
    let dir = store.path().join("latest");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(count(&history, "send", "ok") >= 50, "{printed}");
    assert!(count(&history, "poll", "ok") >= 20, "{printed}");
    assert_eq!(count(&history, "final-poll", "ok"), 1, "{printed}");
    let faults = count(&history, "kill", "info") + count(&history, "start-partition", "info");
    assert!(faults >= 1, "no fault happened: {printed}");
    // Each node ran nats-server with its own configuration, and logged to its file.
    for n in ["n1", "n2", "n3"] {
        let conf = std::fs::read_to_string(dir.join(format!("nodes/{n}/nats.conf"))).unwrap();
        assert!(conf.contains(&format!("server_name: \"{n}\"")), "{conf}");
        let log = std::fs::read_to_string(dir.join(format!("nodes/{n}.log"))).unwrap();
        assert!(log.contains("Server is ready"), "{n}: {log}");
    }
    let check = Command::new(env!("CARGO_BIN_EXE_tumult"))
        .args(["check", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        code,
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
