//! The real products, each through a short `tumult test --runtime real --system NAME` as a
//! user runs it: the cluster forms, the workload's operations are acknowledged, faults
//! happen, the final read completes and the stored history checks back to the verdict.
//! Each needs its Debian package (`.ci/run` installs them); SKIPPED without it, unless
//! `TUMULT_REAL_TESTS=require`.

use std::process::Command;

use crate::gate::ready_for;
use crate::runs::assert_checks_back;

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

/// A short run of `system`'s quorum design, 3 nodes, under kills and partitions of the
/// nodes `target` names.
fn run_short(system: &str, target: &str) -> (Option<i32>, tempfile::TempDir, String) {
    run(&[
        "--system",
        system,
        "--target",
        target,
        "--mode",
        "quorum",
        "--nemesis",
        "kill,partition",
        "--nemesis-interval",
        "3",
        "--time-limit",
        "10",
        "--recovery",
        "30",
        "--seed",
        "1",
    ])
}

/// The run wrote (`f[0]`) and read (`f[1]`) through the system, finished its final read
/// (`f[2]`), and at least one fault happened.
fn assert_worked(history: &str, printed: &str, f: [&str; 3]) {
    assert!(count(history, f[0], "ok") >= 50, "{printed}");
    assert!(count(history, f[1], "ok") >= 20, "{printed}");
    assert_eq!(count(history, f[2], "ok"), 1, "{printed}");
    let faults = count(history, "kill", "info") + count(history, "start-partition", "info");
    assert!(faults >= 1, "no fault happened: {printed}");
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
    let (code, store, printed) = run_short("nats", "one");
    // A verdict (valid or invalid: what NATS does is the finding, not the test's
    // business), never a harness error or a cluster that did not come back.
    assert!(matches!(code, Some(0 | 1)), "{printed}");
    let dir = store.path().join("latest");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert_worked(&history, &printed, ["send", "poll", "final-poll"]);
    // Each node ran nats-server with its own configuration, and logged to its file.
    for n in ["n1", "n2", "n3"] {
        let conf = std::fs::read_to_string(dir.join(format!("nodes/{n}/nats.conf"))).unwrap();
        assert!(conf.contains(&format!("server_name: \"{n}\"")), "{conf}");
        let log = std::fs::read_to_string(dir.join(format!("nodes/{n}.log"))).unwrap();
        assert!(log.contains("Server is ready"), "{n}: {log}");
    }
    assert_checks_back(&dir, code);
}

#[test]
fn a_rabbitmq_quorum_queue_cluster_takes_the_queue_workload_under_kills_and_partitions() {
    if !ready_for(&harness::systems::RabbitMq) {
        return;
    }
    let epmd_before = epmds();
    let (code, store, printed) = run_short("rabbitmq", "leader");
    assert!(matches!(code, Some(0 | 1)), "{printed}");
    let dir = store.path().join("latest");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert_worked(&history, &printed, ["enqueue", "dequeue", "drain"]);
    // The management API told who leads the quorum queue: first n1, through which it was
    // declared (RabbitMQ places a new queue's leader on the declaring node), and every
    // node a fault struck had been named leader.
    let log = std::fs::read_to_string(dir.join("harness.log")).unwrap();
    let named: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            l.split_once("leaders: jepsen.queue=")
                .map(|(_, node)| node.trim())
        })
        .collect();
    assert_eq!(named.first(), Some(&"n1"), "{log}");
    for op in history
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|op| op["f"] == "kill")
    {
        let struck = op["value"]["nodes"][0].as_str().unwrap_or_default();
        assert!(named.contains(&struck), "{struck} was never named leader: {log}");
    }
    // The three nodes formed one cluster: n2 and n3 joined n1, and each holds a member of
    // the quorum queue's Raft group.
    for n in ["n2", "n3"] {
        let shell = std::fs::read_to_string(dir.join(format!("nodes/{n}.shell"))).unwrap_or_default();
        assert!(
            shell.contains("Starting node"),
            "{n} did not start its app again: {shell}"
        );
        let ra = dir.join(format!("nodes/{n}/mnesia/rabbit@{n}/quorum/rabbit@{n}"));
        let members = std::fs::read_dir(&ra)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .count();
        assert!(
            members >= 1,
            "{n} holds no quorum queue member in {}",
            ra.display()
        );
    }
    // No node process is left, and neither is Erlang's epmd, which outlives its node's
    // process group: the run removed it with the namespace.
    let left = Command::new("pgrep")
        .args(["-f", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "processes of the run are left"
    );
    assert_eq!(epmds(), epmd_before, "an epmd of the run is left");
    assert_checks_back(&dir, code);
}

/// How many epmd daemons run on this machine (a zombie, killed and waiting for init to
/// reap it, does not run).
fn epmds() -> usize {
    let out = Command::new("pgrep").args(["-x", "epmd"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|pid| pid.trim().parse().ok())
        .filter(|pid| harness::real::node::alive(*pid))
        .count()
}
