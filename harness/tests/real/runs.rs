//! `tumult test --runtime real` as a user runs it: a short run on a real cluster stores what
//! a simulated run stores and leaves nothing behind, even when interrupted half-way.
//!
//! Like `faults.rs`, these need root, iproute2, iptables and `tumult-broker`; they say
//! SKIPPED where one is missing, unless `TUMULT_REAL_TESTS=require` (as in `.ci/run`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::gate::ready;

/// The namespaces on this machine named like tumult's whose owner is `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| harness::real::net::is_ours(ns))
        .filter(|ns| {
            let owner = std::fs::read_to_string(format!("{}/{}", harness::real::net::OWNERS_DIR, &ns[2..8]));
            owner.ok().and_then(|p| p.trim().parse::<u32>().ok()) == Some(pid)
        })
        .map(str::to_string)
        .collect()
}

/// A real quorum run under kill, partition and pause, `seconds` of faults long.
fn short(seconds: &str) -> Vec<&str> {
    vec![
        "test",
        "--runtime",
        "real",
        "--mode",
        "quorum",
        "--nemesis",
        "kill,partition,pause",
        "--nemesis-interval",
        "2",
        "--time-limit",
        seconds,
        "--recovery",
        "15",
        "--seed",
        "1",
    ]
}

#[test]
fn a_short_real_run_stores_what_a_simulated_one_does_and_checks_back() {
    if !ready() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tumult"))
        .args(short("8"))
        .args(["--store", store.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A verdict, whatever it is: valid (0) or invalid (1), never a harness error or a
    // cluster that did not come back. (Whether the broker keeps its promises on real
    // processes is what such runs are for, not what this test asserts: it asserts the
    // runtime.)
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 1)), "{stdout}\n{stderr}");
    let run = store.path().join("latest");
    for file in [
        "params.json",
        "history.jsonl",
        "history.edn",
        "results.json",
        "schedule.json",
        "harness.log",
        "timeline.html",
        "latency.svg",
        "rate.svg",
        "nodes/n1.log",
        "nodes/n3.log",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let schedule = std::fs::read_to_string(run.join("schedule.json")).unwrap();
    assert!(schedule.contains("\"kind\""), "no fault happened: {schedule}");
    assert_checks_back(&run, code);
    let params = std::fs::read_to_string(run.join("params.json")).unwrap();
    assert!(params.contains("\"runtime\": \"real\""), "{params}");
}

#[test]
fn an_interrupted_real_run_leaves_no_namespace_or_process() {
    if !ready() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tumult"))
        .args(short("60"))
        .args(["--store", store.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until its cluster exists, then interrupt it half-way.
    let mut namespaces = Vec::new();
    for _ in 0..100 {
        namespaces = namespaces_of(pid);
        if namespaces.len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(namespaces.len(), 3, "the run never made its namespaces");
    std::thread::sleep(Duration::from_secs(3));
    let node_pids: Vec<String> = namespaces
        .iter()
        .flat_map(|ns| {
            let out = Command::new("ip").args(["netns", "pids", ns]).output().unwrap();
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!node_pids.is_empty(), "no node runs in {namespaces:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for ns in &namespaces {
        assert!(!listed.contains(ns.as_str()), "{ns} is still there");
    }
    for node in &node_pids {
        assert!(
            !Path::new(&format!("/proc/{node}")).exists(),
            "node process {node} survived"
        );
    }
}

/// The stored history of the run in `dir` checks back (`tumult check`) to the run's own
/// exit code.
pub fn assert_checks_back(dir: &Path, code: Option<i32>) {
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
