//! Faults on real processes: each kind observed in its effect on a real `tumult-broker`
//! in a network namespace of the test's own.
//!
//! These need root, iproute2, iptables and the `tumult-broker` binary (built by `cargo test
//! --workspace`). Where any is missing they say so and pass, so that `cargo test` works on
//! a machine with only the Rust toolchain; with `TUMULT_REAL_TESTS=require` (as `.ci/run`
//! sets) a missing prerequisite fails them instead.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use broker::{Client, TokioNetwork};
use harness::real::net::{leftovers, RunNet};
use harness::real::node::{NodeCommand, NodeProcess};
use harness::systems::{System, TumultBroker};

use crate::gate::ready;

const TIMEOUT: Duration = Duration::from_millis(500);

/// A run tag unique to this test process and call.
fn tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:06x}", (std::process::id() * 16 + n) & 0xff_ffff)
}

/// A one-node network with a broker in it, fsync on every write.
fn broker(dir: &Path) -> (RunNet, NodeProcess, String) {
    let net = RunNet::create(&tag(), 1).expect("network");
    let addr = format!("{}:7000", net.address(1));
    let node = NodeProcess::start(NodeCommand {
        env: Vec::new(),
        namespace: net.namespace(1),
        program: harness::real::broker_binary().expect("tumult-broker"),
        args: vec![
            "--listen".into(),
            addr.clone(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--fsync".into(),
            "always".into(),
        ],
        log: dir.join("n1.log"),
    })
    .expect("node starts");
    (net, node, addr)
}

/// Connects and publishes `body` to queue `q`, or says why it could not.
async fn publish(addr: &str, body: &str) -> Result<u64, String> {
    let mut client = Client::connect(&TokioNetwork, addr, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    client
        .publish("q", body.as_bytes().to_vec())
        .await
        .map_err(|e| e.to_string())
}

/// Connects and gets one message from queue `q`.
async fn get(addr: &str) -> Result<Option<String>, String> {
    let mut client = Client::connect(&TokioNetwork, addr, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let delivery = client.get("q").await.map_err(|e| e.to_string())?;
    Ok(delivery.map(|d| String::from_utf8_lossy(&d.body).into_owned()))
}

/// Retries `publish` until the broker answers (it is starting), for at most five seconds.
async fn publish_when_up(addr: &str, body: &str) {
    for _ in 0..50 {
        if publish(addr, body).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the broker at {addr} never answered");
}

#[tokio::test]
async fn a_partition_stops_traffic_across_it_and_healing_restores_it() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (net, _node, addr) = broker(dir.path());
    publish_when_up(&addr, "before").await;
    // Both ways between the clients and the node.
    net.cut(0, 1).unwrap();
    net.cut(1, 0).unwrap();
    let cut = publish(&addr, "during").await;
    assert!(cut.is_err(), "a publish crossed the partition: {cut:?}");
    net.heal().unwrap();
    assert!(publish(&addr, "after").await.is_ok());
}

#[tokio::test]
async fn a_killed_node_refuses_connections_and_restarts_with_its_fsynced_data() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_net, mut node, addr) = broker(dir.path());
    publish_when_up(&addr, "kept").await;
    let pid = node.pid().unwrap();
    node.kill().unwrap();
    assert!(!node.running());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the process outlived SIGKILL"
    );
    assert!(get(&addr).await.is_err());
    node.restart().unwrap();
    let mut got = Err(String::new());
    for _ in 0..50 {
        got = get(&addr).await;
        if got.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, Ok(Some("kept".to_string())));
}

#[tokio::test]
async fn a_paused_node_answers_nothing_and_resumes_with_its_state() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_net, mut node, addr) = broker(dir.path());
    publish_when_up(&addr, "held").await;
    node.pause().unwrap();
    // The stop is delivered asynchronously: wait for the kernel to show it.
    let stat = format!("/proc/{}/stat", node.pid().unwrap());
    let mut state = String::new();
    for _ in 0..100 {
        state = std::fs::read_to_string(&stat).unwrap();
        if state.contains(") T ") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(state.contains(") T "), "not stopped: {state}");
    assert!(get(&addr).await.is_err(), "a paused node answered");
    node.resume().unwrap();
    // The get sent during the pause is read on resume and delivers the message to a
    // connection its client has closed: it is back in the queue once the broker sees
    // the close, a moment later.
    let mut got = Ok(None);
    for _ in 0..50 {
        got = get(&addr).await;
        if matches!(got, Ok(Some(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, Ok(Some("held".to_string())));
}

#[test]
fn a_dropped_run_leaves_no_namespace_link_or_process() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tag = {
        let (net, node, _) = broker(dir.path());
        let pid = node.pid().unwrap();
        let tag = net.bridge();
        drop(node);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        tag
    };
    let left = leftovers().unwrap();
    let prefix = tag.trim_end_matches("br");
    assert!(
        !left
            .namespaces
            .iter()
            .chain(&left.links)
            .any(|n| n.starts_with(prefix)),
        "{left:?}"
    );
}

#[test]
fn clean_removes_what_a_dead_run_left_and_spares_a_live_one() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let live = RunNet::create(&tag(), 1).unwrap();
    // A run killed with -9: its network and node outlive it, and its owner is dead.
    let (dead, node, _) = broker(dir.path());
    let pid = node.pid().unwrap();
    let dead_tag = dead
        .bridge()
        .trim_start_matches("tm")
        .trim_end_matches("br")
        .to_string();
    std::mem::forget(node);
    std::mem::forget(dead);
    // A pid that has exited: this test's own child, reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    std::fs::write(
        format!("{}/{dead_tag}", harness::real::net::OWNERS_DIR),
        dead_pid.to_string(),
    )
    .unwrap();
    let done = harness::real::net::clean().unwrap();
    assert!(
        done.iter().any(|d| d.contains(&format!("killed process {pid}"))),
        "{done:?}"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            // Killed but not yet reaped by us (its parent): a zombie holds no namespace.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains(") Z ")
        }
    );
    let left = leftovers().unwrap();
    assert!(!left.namespaces.iter().any(|n| n.contains(&dead_tag)), "{left:?}");
    // The live run's namespace is untouched.
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&namespaces.stdout).contains(&live.namespace(1)));
}

#[test]
fn a_node_that_ignores_sigterm_is_killed_within_the_bound() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = RunNet::create(&tag(), 1).unwrap();
    let mut node = NodeProcess::start(NodeCommand {
        env: Vec::new(),
        namespace: net.namespace(1),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "trap '' TERM; while :; do sleep 1; done".into()],
        log: dir.path().join("stubborn.log"),
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = node.pid().unwrap();
    node.stop(Duration::from_millis(500)).unwrap();
    assert!(!node.running());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the stubborn node survived"
    );
    // Nothing is left running in the namespace: the group went with it.
    let pids = std::process::Command::new("ip")
        .args(["netns", "pids", &net.namespace(1)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pids.stdout).trim(), "");
}

#[test]
fn a_tag_in_use_is_refused_and_the_network_that_holds_it_left_alone() {
    if !ready() {
        return;
    }
    // Two runs of one sweep once drew the same tag; the second found the first's bridge,
    // failed, and its cleanup removed the first's namespaces.
    let t = tag();
    let first = RunNet::create(&t, 1).unwrap();
    let second = RunNet::create(&t, 1);
    assert!(
        matches!(second, Err(harness::real::RealError::TagInUse(_))),
        "{:?}",
        second.err()
    );
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&first.namespace(1)),
        "the first run's namespace went with the refused one"
    );
}

#[test]
fn runs_made_at_the_same_moment_get_different_subnets() {
    if !ready() {
        return;
    }
    // Before the subnet lock, two runs starting together could both take the first free
    // /24: each run's clients then reached the other run's nodes.
    let tags: Vec<String> = (0..4).map(|_| tag()).collect();
    let nets: Vec<RunNet> = std::thread::scope(|s| {
        let handles: Vec<_> = tags
            .iter()
            .map(|t| s.spawn(move || RunNet::create(t, 1).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut gateways: Vec<String> = nets.iter().map(|n| n.gateway().to_string()).collect();
    gateways.sort();
    gateways.dedup();
    assert_eq!(gateways.len(), nets.len(), "{gateways:?}");
}

#[tokio::test]
async fn packet_loss_drops_the_share_it_is_given_and_healing_restores_it() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (net, _node, addr) = broker(dir.path());
    publish_when_up(&addr, "before").await;
    // A share of 1 drops every packet into the node: nothing gets through.
    net.lose(1, 1.0).unwrap();
    let lossy = publish(&addr, "during").await;
    assert!(lossy.is_err(), "a publish got through total loss: {lossy:?}");
    net.heal().unwrap();
    // A share of 0 drops nothing: the rule is there and harmless.
    net.lose(1, 0.0).unwrap();
    assert!(publish(&addr, "after").await.is_ok());
}

#[tokio::test]
async fn a_byte_flipped_in_a_stopped_nodes_file_is_caught_by_its_checksums() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_net, mut node, addr) = broker(dir.path());
    publish_when_up(&addr, "first").await;
    for body in ["second", "third", "fourth"] {
        publish(&addr, body).await.unwrap();
    }
    node.kill().unwrap();
    let (file, at) = harness::real::actuator::corrupt_largest_file(&data_files(dir.path()))
        .unwrap()
        .expect("a data file to corrupt");
    assert!(at > 0, "{}", file.display());
    node.restart().unwrap();
    // The broker's recovery reports the damaged tail it cut off.
    let text = recovery_lines(&dir.path().join("n1.log"), 2).await;
    // The last recovery line is the second boot's.
    let damage = text
        .last()
        .and_then(|l| l.split_once("damage="))
        .map_or("", |(_, d)| d);
    assert!(
        damage.starts_with("Some("),
        "recovery did not see the damage:\n{text:#?}"
    );
}

/// The node's first `boots` recovery lines, waiting up to 5 s for them.
async fn recovery_lines(log: &Path, boots: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        lines = text
            .lines()
            .filter(|l| l.contains(" recovered"))
            .map(str::to_string)
            .collect();
        if lines.len() >= boots {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lines.len() >= boots,
        "{} recoveries in {}",
        lines.len(),
        log.display()
    );
    lines
}

/// The `records=N` of a recovery line.
fn records(line: &str) -> usize {
    line.split_once("records=")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {line}"))
}

#[tokio::test]
async fn a_file_cut_short_in_a_stopped_node_loses_what_it_held() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_net, mut node, addr) = broker(dir.path());
    publish_when_up(&addr, "first").await;
    for body in ["second", "third", "fourth", "fifth", "sixth"] {
        publish(&addr, body).await.unwrap();
    }
    let log = dir.path().join("n1.log");
    // A clean restart first: how many records the intact files hold.
    node.kill().unwrap();
    node.restart().unwrap();
    let intact = records(&recovery_lines(&log, 2).await[1]);
    assert!(intact >= 6, "{intact} records after six confirmed publishes");
    node.kill().unwrap();
    let (file, from, to) = harness::real::actuator::truncate_largest_file(&data_files(dir.path()), 0.5)
        .unwrap()
        .expect("a data file to cut");
    assert!(to < from, "{}: {from} -> {to}", file.display());
    assert_eq!(std::fs::metadata(&file).unwrap().len(), to);
    node.restart().unwrap();
    // Fsynced, confirmed records are gone: only a replica elsewhere could bring them back.
    let cut = records(&recovery_lines(&log, 3).await[2]);
    assert!(
        cut < intact,
        "{cut} records recovered from the cut file, {intact} before"
    );
}

/// The files tumult-broker's system says hold the data of the node under `dir`.
fn data_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let files = TumultBroker
        .data_files(broker::Mode::Single, &dir.join("data"))
        .unwrap();
    assert!(!files.is_empty(), "the node wrote no data files");
    files
}
