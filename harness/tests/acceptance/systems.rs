//! The seam between workloads and systems: a system of the test's own, tumult-broker with
//! a client that confirms some publishes without making them, runs through the same
//! runtime, workload and checker, and the checker names exactly the values it dropped.

use std::rc::Rc;

use broker::{Mode, Seams};
use checker::{QueueValue, Validity};
use harness::systems::{Answer, Launch, LocalFuture, NodeLayout, Reach, System, TumultBroker};
use harness::{DriverClock, FaultSet, TestSpec};
use workloads::{ApiFuture, Clients, Delivery, Family, LogApi, QueueApi};

/// Confirms every publish of a multiple of `every` without sending it: the bug of a
/// client library that acknowledges from its buffer.
struct Dropping {
    inner: Box<dyn QueueApi>,
    every: i64,
}

impl QueueApi for Dropping {
    fn publish<'a>(&'a mut self, queue: &'a str, body: Vec<u8>) -> ApiFuture<'a, ()> {
        let value: Option<i64> = std::str::from_utf8(&body).ok().and_then(|t| t.parse().ok());
        if value.is_some_and(|v| v % self.every == 0) {
            return Box::pin(async { Ok(()) });
        }
        self.inner.publish(queue, body)
    }
    fn get<'a>(&'a mut self, queue: &'a str) -> ApiFuture<'a, Option<Delivery>> {
        self.inner.get(queue)
    }
    fn ack<'a>(&'a mut self, queue: &'a str, tag: u64) -> ApiFuture<'a, ()> {
        self.inner.ack(queue, tag)
    }
    fn nack<'a>(&'a mut self, queue: &'a str, tag: u64) -> ApiFuture<'a, ()> {
        self.inner.nack(queue, tag)
    }
    fn reset(&mut self) {
        self.inner.reset();
    }
}

struct DroppingClients {
    inner: Rc<dyn Clients>,
    every: i64,
}

impl Clients for DroppingClients {
    fn queue(&self, process: usize) -> Option<Box<dyn QueueApi>> {
        Some(Box::new(Dropping {
            inner: self.inner.queue(process)?,
            every: self.every,
        }))
    }
    fn log(&self, _process: usize) -> Option<Box<dyn LogApi>> {
        None
    }
}

/// tumult-broker with [`DroppingClients`], queues only.
struct DroppingBroker {
    every: i64,
}

impl System for DroppingBroker {
    fn name(&self) -> &'static str {
        "dropping-broker"
    }
    fn about(&self) -> &'static str {
        "tumult-broker whose client drops some publishes it confirms"
    }
    fn families(&self) -> &'static [Family] {
        &[Family::Queue]
    }
    fn modes(&self) -> &'static [Mode] {
        TumultBroker.modes()
    }
    fn port(&self) -> u16 {
        TumultBroker.port()
    }
    fn prerequisites(&self) -> Vec<harness::real::Check> {
        TumultBroker.prerequisites()
    }
    fn simulated(&self) -> bool {
        true
    }
    fn in_process(
        &self,
        spec: &TestSpec,
        node: &NodeLayout,
        seams: Seams,
    ) -> Option<LocalFuture<'static, ()>> {
        TumultBroker.in_process(spec, node, seams)
    }
    fn launch(&self, spec: &TestSpec, node: &NodeLayout) -> Result<Launch, String> {
        TumultBroker.launch(spec, node)
    }
    fn leaders<'a>(&'a self, reach: &'a Reach, names: &'a [String]) -> LocalFuture<'a, Vec<Option<Answer>>> {
        TumultBroker.leaders(reach, names)
    }
    fn clients(&self, reach: &Reach) -> Rc<dyn Clients> {
        Rc::new(DroppingClients {
            inner: TumultBroker.clients(reach),
            every: self.every,
        })
    }
}

fn quiet_spec(seed: u64) -> TestSpec {
    TestSpec {
        nemesis: FaultSet(Vec::new()),
        time_limit_s: 10,
        ..TestSpec::new(seed)
    }
}

#[test]
fn a_client_that_confirms_publishes_it_never_made_is_caught_value_by_value() {
    let registration = workloads::find("queue").unwrap();
    let outcome = harness::run_on(
        &quiet_spec(4),
        Rc::new(DroppingBroker { every: 7 }),
        &registration,
        Box::new(std::io::sink()),
        &DriverClock::default(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(outcome.report.valid, Validity::False, "{:?}", outcome.report);
    assert!(outcome.liveness.recovered, "{:?}", outcome.liveness);
    let queue = outcome.report.total_queue().expect("a queue run");
    // Every confirmed multiple of 7, and nothing else, is missing from the final drain.
    let confirmed_sevens = outcome
        .history
        .ops()
        .iter()
        .filter(|op| op.f == "enqueue" && op.kind == checker::OpType::Ok)
        .filter_map(|op| op.value.as_i64())
        .filter(|v| v % 7 == 0)
        .count();
    assert!(
        confirmed_sevens >= 5,
        "only {confirmed_sevens} multiples of 7 confirmed"
    );
    assert_eq!(queue.lost_count, confirmed_sevens, "{queue:?}");
    assert!(
        queue
            .lost
            .iter()
            .all(|v| matches!(v, QueueValue::Int(v) if v % 7 == 0)),
        "{:?}",
        queue.lost
    );
}

#[test]
fn the_same_run_through_the_registry_and_through_run_on_is_byte_identical() {
    // Through the registry, and through run_on with the same system: the seam adds no
    // step of its own to the simulation.
    let spec = TestSpec {
        nemesis: "kill,partition".parse().unwrap(),
        mode: Mode::Quorum,
        nodes: 3,
        time_limit_s: 8,
        ..TestSpec::new(5)
    };
    let registration = workloads::find("queue").unwrap();
    let history = |through_registry: bool| {
        let buffer = SharedBuffer::default();
        let out = Box::new(buffer.clone());
        let outcome = if through_registry {
            harness::run(&spec, out, &DriverClock::default())
        } else {
            harness::run_on(
                &spec,
                Rc::new(TumultBroker),
                &registration,
                out,
                &DriverClock::default(),
                &|_| {},
            )
        };
        outcome.unwrap();
        buffer.bytes()
    };
    let a = history(true);
    assert!(a.len() > 1000, "a history of {} bytes", a.len());
    assert_eq!(a, history(false));
    // And a system that cannot serve the workload is refused before anything runs.
    let log = workloads::find("log").unwrap();
    let refused = harness::run_on(
        &TestSpec {
            mode: Mode::Kafka,
            ..spec.clone()
        },
        Rc::new(DroppingBroker { every: 7 }),
        &log,
        Box::new(std::io::sink()),
        &DriverClock::default(),
        &|_| {},
    )
    .unwrap_err();
    assert!(refused.to_string().contains("has no log client"), "{refused}");
}

/// A history sink the test can read back.
#[derive(Clone, Default)]
struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
