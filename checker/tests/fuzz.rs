//! The parsers and analyses against mangled input: a seeded mutation fuzzer over real
//! histories in both formats. Whatever the bytes, reading returns a history or an error
//! naming a line, and checking a history that reads returns a report: nothing panics.

use checker::{Format, History, Workload};

const JSONL: &str = r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"send","value":[["send",1,5]]}
{"index":1,"time":2,"type":"ok","process":0,"f":"send","value":[["send",1,[0,5]]]}
{"index":2,"time":3,"type":"invoke","process":1,"f":"poll","value":[["poll"]]}
{"index":3,"time":4,"type":"ok","process":1,"f":"poll","value":[["poll",{"1":[[0,5]]}]]}
{"index":4,"time":5,"type":"info","process":"nemesis","f":"kill","value":{"kind":"kill","nodes":["n1"]}}
{"index":5,"time":6,"type":"invoke","process":0,"f":"enqueue","value":7}
{"index":6,"time":7,"type":"info","process":0,"f":"enqueue","value":7,"error":"timeout"}
{"index":7,"time":8,"type":"invoke","process":1,"f":"final-poll","value":[["poll"]]}
{"index":8,"time":9,"type":"ok","process":1,"f":"final-poll","value":[["poll",{"1":[[0,5]]}]]}
"#;

const EDN: &str = r#"{:index 0, :time 1, :type :invoke, :process 0, :f :send, :value [[:send :x 5]]}
{:index 1, :time 2, :type :ok, :process 0, :f :send, :value [[:send :x [0 5]]]}
#jepsen.history.Op{:index 2, :time 3, :type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:index 3, :time 4, :type :ok, :process 1, :f :poll, :value [[:poll {:x [[0 5] [1 6]]}]], :error nil}
{:index 4, :time 5, :type :info, :process :nemesis, :f :start-partition, :value #{:n1 "n2"}}
"#;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"(",
    b")",
    b"#{",
    b"#_",
    b"#tag",
    b"\"",
    b"\\",
    b":",
    b",",
    b"\n",
    b"-1",
    b"18446744073709551616",
    b"1e999",
    b"nil",
    b"null",
    b"\\u12",
    b"\xff\xfe",
    b";",
    b"0N",
    b"1.5M",
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] = rng.next() as u8;
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
            2 => bytes.truncate(at),
            3 if at < bytes.len() => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            _ => {
                let from = rng.below(bytes.len().max(1));
                let end = (from + rng.below(60)).min(bytes.len());
                let copy: Vec<u8> = bytes[from..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

#[test]
fn mangled_histories_are_errors_or_reports_never_panics() {
    let mut rng = Rng(0x5EED_u64);
    let mut read = 0;
    for i in 0..20_000 {
        let seed = if i % 2 == 0 { JSONL } else { EDN };
        let bytes = mutate(seed.as_bytes(), &mut rng);
        for format in [Format::Auto, Format::Jsonl, Format::Edn] {
            match History::read(bytes.as_slice(), format) {
                Ok(history) => {
                    read += 1;
                    for workload in [Workload::Queue, Workload::Log] {
                        let report = checker::check(&history, workload);
                        serde_json::to_string(&report).expect("reports serialise");
                    }
                }
                Err(err) => assert!(err.line >= 1, "{err}"),
            }
            // The streamed path `tumult check` takes has its own line parser.
            match checker::check_log_reader(bytes.as_slice(), format) {
                Ok(checked) => {
                    serde_json::to_string(&checked.report).expect("reports serialise");
                }
                Err(err) => assert!(err.line >= 1, "{err}"),
            }
        }
    }
    // The fuzzer must reach the analyses too, not only the parsers' error paths.
    assert!(read > 1_000, "only {read} mangled histories parsed");
}

#[test]
fn the_seed_histories_read_in_both_formats() {
    let jsonl = History::read(JSONL.as_bytes(), Format::Auto).unwrap();
    assert_eq!(jsonl.ops().len(), 9);
    let edn = History::read(EDN.as_bytes(), Format::Auto).unwrap();
    assert_eq!(edn.ops().len(), 5);
    assert_eq!(Format::detect(b"  {\"index\":0"), Format::Jsonl);
    assert_eq!(Format::detect(b"\n{:index 0"), Format::Edn);
    assert_eq!(Format::detect(b"#jepsen.history.Op{"), Format::Edn);
}
