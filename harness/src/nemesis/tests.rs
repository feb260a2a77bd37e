//! Each fault kind observed acting on a small simulated cluster whose hosts do nothing but
//! talk: every host sends a stamped byte to every other host every 20 ms over a long-lived
//! connection, and appends to two files, fsyncing only one of them.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::fs::shim::std::fs as simfs;

use super::*;
use crate::spec::{FaultSet, TestSpec};

const PORT: u16 = 9000;
const HOSTS: [&str; 3] = ["n1", "n2", "n3"];

/// One message that arrived: (arrival ms, from, to, sent ms).
type Receipt = (u64, usize, usize, u64);

/// What a host found on its disk when it booted: (boot ms, host, synced bytes, unsynced bytes).
type Boot = (u64, usize, u64, u64);

#[derive(Default)]
struct Seen {
    receipts: Vec<Receipt>,
    boots: Vec<Boot>,
}

fn now_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

fn file_len(path: &str) -> u64 {
    simfs::read(path).map(|b| b.len() as u64).unwrap_or(0)
}

async fn host(me: usize, seen: Rc<RefCell<Seen>>) -> turmoil::Result {
    seen.borrow_mut()
        .boots
        .push((now_ms(), me, file_len("/synced"), file_len("/unsynced")));
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    let inbox = Rc::clone(&seen);
    tokio::task::spawn_local(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let inbox = Rc::clone(&inbox);
            tokio::task::spawn_local(async move {
                let mut frame = [0u8; 9];
                while stream.read_exact(&mut frame).await.is_ok() {
                    let sent = u64::from_le_bytes(frame[1..].try_into().expect("8 bytes"));
                    inbox
                        .borrow_mut()
                        .receipts
                        .push((now_ms(), frame[0] as usize, me, sent));
                }
            });
        }
    });
    for peer in (0..HOSTS.len()).filter(|p| *p != me) {
        tokio::task::spawn_local(async move {
            // turmoil's TCP never retransmits: a stream that lost a segment to a partition
            // stalls for good. So, like the broker's clients, reconnect often.
            loop {
                let connect = turmoil::net::TcpStream::connect((HOSTS[peer], PORT));
                if let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_millis(1000), connect).await {
                    for _ in 0..25 {
                        let mut frame = vec![me as u8];
                        frame.extend_from_slice(&now_ms().to_le_bytes());
                        if stream.write_all(&frame).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let mut synced = simfs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/synced")?;
    let mut unsynced = simfs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/unsynced")?;
    simfs::sync_dir("/")?;
    loop {
        synced.write_all(b"s")?;
        synced.sync_all()?;
        unsynced.write_all(b"u")?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the chatter cluster for `run_ms` with `faults` played by the nemesis.
fn chatter(faults: Vec<ScheduledFault>, run_ms: u64) -> Seen {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_millis(run_ms + 1000))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1))
        .rng_seed(1)
        .build();
    for (i, name) in HOSTS.iter().enumerate() {
        let seen = Rc::clone(&seen);
        sim.host(*name, move || host(i, Rc::clone(&seen)));
    }
    let nodes: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    let schedule = Schedule {
        version: SCHEDULE_VERSION,
        faults,
    };
    schedule.validate(&nodes).expect("a valid schedule");
    let disks = nodes.iter().map(|_| DiskFaults::new(1)).collect();
    let mut spec = TestSpec::new(1);
    spec.latency = crate::spec::LatencyRange { min_ms: 1, max_ms: 1 };
    let mut faults = SimFaults::new(&spec, &nodes, &[], disks, None);
    let mut nemesis = Nemesis::new(&spec, nodes, Rc::default(), Some(schedule), 1);
    let mut recorder = Recorder::new(Box::new(std::io::sink()));
    while sim.elapsed() < Duration::from_millis(run_ms) {
        sim.step().expect("the chatter hosts never fail");
        let now = sim.elapsed();
        nemesis.step(&mut faults.on(&mut sim), now, &mut recorder);
    }
    drop(sim);
    let ops = recorder.finish().expect("a sink never fails");
    assert!(ops.iter().all(|op| op.process == checker::Process::nemesis()));
    Rc::try_unwrap(seen)
        .ok()
        .expect("the simulation is gone")
        .into_inner()
}

fn fault(start_ms: u64, end_ms: u64, fault: Fault) -> ScheduledFault {
    ScheduledFault {
        start_ms,
        end_ms,
        fault,
    }
}

fn nodes(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Messages from `from` to `to` that arrived within `[start, end)` ms.
fn arrivals(seen: &Seen, from: usize, to: usize, start: u64, end: u64) -> usize {
    seen.receipts
        .iter()
        .filter(|(at, f, t, _)| *f == from && *t == to && (start..end).contains(at))
        .count()
}

#[test]
fn a_partition_stops_traffic_across_it_and_heals() {
    let cuts = [("n1", "n2"), ("n2", "n1"), ("n1", "n3"), ("n3", "n1")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let seen = chatter(
        vec![fault(
            1000,
            2000,
            Fault::Partition {
                shape: Shape::Isolate,
                cuts,
            },
        )],
        3000,
    );
    // About 50 messages a link in a second when healthy.
    for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0)] {
        assert!(arrivals(&seen, a, b, 500, 1000) >= 20, "{a}->{b} before");
        assert_eq!(
            arrivals(&seen, a, b, 1005, 2000),
            0,
            "{a}->{b} during the partition"
        );
        assert!(arrivals(&seen, a, b, 2200, 3000) >= 20, "{a}->{b} after healing");
    }
    assert!(arrivals(&seen, 1, 2, 1005, 2000) >= 40, "n2->n3 is not cut");
}

#[test]
fn a_one_way_partition_cuts_one_direction_only() {
    let seen = chatter(
        vec![fault(
            1000,
            2000,
            Fault::Partition {
                shape: Shape::OneWay,
                cuts: vec![("n1".into(), "n2".into())],
            },
        )],
        3000,
    );
    assert_eq!(arrivals(&seen, 0, 1, 1005, 2000), 0, "n1->n2 is cut");
    assert!(arrivals(&seen, 1, 0, 1005, 2000) >= 40, "n2->n1 still flows");
    assert!(arrivals(&seen, 0, 1, 2200, 3000) >= 20, "n1->n2 heals");
}

#[test]
fn a_pause_holds_messages_and_delivers_them_with_state_intact() {
    let seen = chatter(
        vec![fault(
            1000,
            2000,
            Fault::Pause {
                nodes: nodes(&["n3"]),
            },
        )],
        3000,
    );
    assert_eq!(
        arrivals(&seen, 2, 0, 1005, 2000),
        0,
        "nothing from n3 while paused"
    );
    assert_eq!(arrivals(&seen, 0, 2, 1005, 2000), 0, "nothing to n3 while paused");
    // What n3 sent during the pause arrives when it resumes, late but not lost.
    let held: Vec<&Receipt> = seen
        .receipts
        .iter()
        .filter(|(at, f, t, sent)| *f == 2 && *t == 0 && (1000..2000).contains(sent) && *at >= 2000)
        .collect();
    // (turmoil's TCP blocks the writer behind the first held segment, so one is in flight.)
    assert!(!held.is_empty(), "what n3 sent while paused was lost");
    assert!(
        held.iter().all(|(at, ..)| *at <= 2010),
        "held messages go out on resume"
    );
    // No restart: n3 booted once.
    assert_eq!(seen.boots.iter().filter(|b| b.1 == 2).count(), 1);
}

#[test]
fn a_packet_fault_slows_the_targets_links_only() {
    let seen = chatter(
        vec![fault(
            1000,
            2000,
            Fault::Packet {
                nodes: nodes(&["n1"]),
                latency_ms: 200,
                loss: 0.0,
            },
        )],
        3000,
    );
    let latency = |from, to, start, end| -> Vec<u64> {
        seen.receipts
            .iter()
            .filter(|(_, f, t, sent)| *f == from && *t == to && (start..end).contains(sent))
            .map(|(at, _, _, sent)| at - sent)
            .collect()
    };
    let slow = latency(0, 1, 1100, 1800);
    assert!(!slow.is_empty() && slow.iter().all(|l| *l >= 200), "{slow:?}");
    let fast = latency(1, 2, 1100, 1800);
    assert!(!fast.is_empty() && fast.iter().all(|l| *l <= 5), "{fast:?}");
    let after = latency(0, 1, 2300, 2900);
    assert!(!after.is_empty() && after.iter().all(|l| *l <= 5), "{after:?}");
}

#[test]
fn a_kill_loses_unsynced_writes_and_the_host_comes_back() {
    let seen = chatter(
        vec![fault(
            1000,
            1500,
            Fault::Kill {
                nodes: nodes(&["n2"]),
            },
        )],
        2500,
    );
    let boots: Vec<&Boot> = seen.boots.iter().filter(|b| b.1 == 1).collect();
    assert_eq!(boots.len(), 2, "n2 booted twice: {boots:?}");
    let (at, _, synced, unsynced) = *boots[1];
    assert_eq!(at, 1500);
    assert!(synced >= 90, "fsynced bytes survive: {synced}");
    assert_eq!(unsynced, 0, "unsynced bytes are lost");
    assert!(arrivals(&seen, 1, 0, 1005, 1500) == 0 && arrivals(&seen, 1, 0, 1700, 2500) >= 20);
}

#[test]
fn a_restart_keeps_the_page_cache() {
    let seen = chatter(
        vec![fault(
            1000,
            1000,
            Fault::Restart {
                nodes: nodes(&["n2"]),
            },
        )],
        2000,
    );
    let boots: Vec<&Boot> = seen.boots.iter().filter(|b| b.1 == 1).collect();
    assert_eq!(boots.len(), 2, "{boots:?}");
    let (_, _, synced, unsynced) = *boots[1];
    assert!(
        synced >= 90 && unsynced >= 90,
        "a restart loses nothing: {synced} {unsynced}"
    );
}

/// Records what the nemesis asks for; every host runs unless crashed.
#[derive(Default)]
struct Fake {
    down: Vec<String>,
    crashes: Vec<String>,
}

impl Actuator for Fake {
    fn crash(&mut self, node: &str) {
        self.crashes.push(node.to_string());
        self.down.push(node.to_string());
    }
    fn bounce(&mut self, node: &str) {
        self.down.retain(|n| n != node);
    }
    fn is_running(&mut self, node: &str) -> bool {
        !self.down.iter().any(|n| n == node)
    }
    fn damage(&mut self, _node: usize, _damage: Option<Damage>) {}
    fn links(&mut self, _active: &[&Fault]) {}
}

/// The node a churn strike hit: the one killed, or the one in every cut of an isolation.
fn struck(fault: &Fault) -> String {
    match fault {
        Fault::Kill { nodes } => nodes[0].clone(),
        Fault::Partition { cuts, .. } => HOSTS
            .iter()
            .find(|h| cuts.iter().all(|(a, b)| a == *h || b == *h))
            .expect("an isolation")
            .to_string(),
        other => panic!("a churn strike is a kill or an isolation, not {other:?}"),
    }
}

#[test]
fn leader_churn_strikes_the_leader_and_then_each_new_one_and_records_plain_faults() {
    let spec = TestSpec {
        nodes: 3,
        nemesis: FaultSet(vec![FaultKind::LeaderChurn]),
        nemesis_interval_s: 1.0,
        ..TestSpec::new(3)
    };
    let leaders: LeaderView = Rc::default();
    leaders.borrow_mut().insert("q".into(), "n1".into());
    let mut nemesis = Nemesis::new(&spec, nodes(&HOSTS), Rc::clone(&leaders), None, 9);
    let mut act = Fake::default();
    let mut recorder = Recorder::new(Box::new(std::io::sink()));
    let mut step = |nemesis: &mut Nemesis, act: &mut Fake, ms: u64| {
        nemesis.step(act, Duration::from_millis(ms), &mut recorder);
    };
    // Long enough for the lane to open a window and strike n1.
    let mut ms = 0;
    while ms < 4_000 && nemesis.schedule().faults.is_empty() {
        step(&mut nemesis, &mut act, ms);
        ms += 10;
    }
    let first = nemesis.schedule().faults;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        struck(&first[0].fault),
        "n1",
        "the current leader is struck first"
    );
    // n2 takes over: it is struck within 1.5 s; a leader already struck is not again.
    leaders.borrow_mut().insert("q".into(), "n2".into());
    let until = ms + 1_600;
    while ms < until {
        step(&mut nemesis, &mut act, ms);
        ms += 10;
    }
    let faults = nemesis.schedule().faults;
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert_eq!(struck(&faults[1].fault), "n2");
    assert!(
        faults
            .iter()
            .all(|f| matches!(f.fault, Fault::Kill { .. } | Fault::Partition { .. })),
        "strikes are recorded as plain kills and partitions, so a schedule replays them"
    );
}
