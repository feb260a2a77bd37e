//! Synthetic log histories of realistic shape, written as files for `tumult bench check`:
//! what a long real run records, at any size, without running one.
//!
//! A correct log is simulated: each key an append-only list, sends appended when they
//! complete, consumers reading from their own positions. Client processes interleave with
//! one operation open each; a send that times out completes `info` (applied or not, at
//! random) and its process retires for a new number, as Jepsen's interpreter does. The run
//! ends with a `final-poll` of every key. `planted` adds known anomalies: an acknowledged
//! value dropped from the final read (lost) and a poll that skips two records (poll-skip).

use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The shapes a benchmark can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 16 concurrent processes, 8 keys, polls of 1-20 records, 1% of sends timing out.
    Processes,
    /// One long-lived process: every operation in one process and realtime chain.
    OneProcess,
    /// Polls of up to 500 records.
    LargePolls,
    /// 100 keys.
    Keys100,
    /// Every poll reads two keys at different lags: G2 cycles (allowed) everywhere, so the
    /// whole history is one giant strongly connected component.
    GiantComponent,
    /// The `processes` shape with a lost write and a poll skip planted.
    Planted,
}

impl Shape {
    /// Every shape, in the order the benchmark runs them.
    pub const ALL: [Shape; 6] = [
        Shape::Processes,
        Shape::OneProcess,
        Shape::LargePolls,
        Shape::Keys100,
        Shape::GiantComponent,
        Shape::Planted,
    ];

    /// The shape's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Processes => "processes",
            Shape::OneProcess => "one-process",
            Shape::LargePolls => "large-polls",
            Shape::Keys100 => "keys-100",
            Shape::GiantComponent => "giant-component",
            Shape::Planted => "planted",
        }
    }

    /// Whether a correct checker must find an anomaly in it.
    pub fn is_invalid(self) -> bool {
        self == Shape::Planted
    }

    fn params(self) -> Params {
        let base = Params {
            processes: 16,
            keys: 8,
            poll_max: 20,
            timeout_share: 0.01,
            keys_per_poll: 1,
            planted: false,
        };
        match self {
            Shape::Processes => base,
            Shape::OneProcess => Params {
                processes: 1,
                timeout_share: 0.0,
                ..base
            },
            Shape::LargePolls => Params {
                poll_max: 500,
                ..base
            },
            Shape::Keys100 => Params { keys: 100, ..base },
            Shape::GiantComponent => Params {
                keys_per_poll: 2,
                ..base
            },
            Shape::Planted => Params {
                planted: true,
                ..base
            },
        }
    }
}

impl std::str::FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Shape::ALL
            .into_iter()
            .find(|shape| shape.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Shape::ALL.iter().map(|s| s.name()).collect();
                format!("unknown shape '{s}' (expected one of {})", names.join(", "))
            })
    }
}

/// How a history file is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// tumult's history.jsonl.
    Jsonl,
    /// Jepsen's history.edn.
    Edn,
}

#[derive(Debug, Clone, Copy)]
struct Params {
    processes: usize,
    keys: u64,
    poll_max: usize,
    timeout_share: f64,
    keys_per_poll: usize,
    planted: bool,
}

/// What one open operation will complete with.
enum Pending {
    /// (key, value) pairs.
    Send(Vec<(u64, u64)>),
    Poll,
}

struct Writer<W: Write> {
    out: W,
    spelling: Spelling,
    index: u64,
    line: String,
}

impl<W: Write> Writer<W> {
    /// Writes one op; `value` is already spelled for the format.
    fn op(&mut self, time: u64, kind: &str, process: u64, f: &str, value: &str) -> io::Result<()> {
        use std::fmt::Write as _;
        self.line.clear();
        let _ = match self.spelling {
            Spelling::Jsonl => writeln!(
                self.line,
                r#"{{"index":{},"time":{time},"type":"{kind}","process":{process},"f":"{f}","value":{value}}}"#,
                self.index
            ),
            Spelling::Edn => writeln!(
                self.line,
                "{{:index {}, :time {time}, :type :{kind}, :process {process}, :f :{f}, :value {value}}}",
                self.index
            ),
        };
        self.index += 1;
        self.out.write_all(self.line.as_bytes())
    }
}

/// Spells micro-ops in either format: JSON arrays with quoted names, or EDN vectors
/// with keywords.
struct Spell(Spelling);

impl Spell {
    fn name(&self, name: &str) -> String {
        match self.0 {
            Spelling::Jsonl => format!("\"{name}\""),
            Spelling::Edn => format!(":{name}"),
        }
    }

    fn sep(&self) -> &'static str {
        match self.0 {
            Spelling::Jsonl => ",",
            Spelling::Edn => " ",
        }
    }

    fn list(&self, items: impl IntoIterator<Item = String>) -> String {
        let items: Vec<String> = items.into_iter().collect();
        format!("[{}]", items.join(self.sep()))
    }

    fn sends(&self, sends: &[(u64, u64)], offsets: Option<&[u64]>) -> String {
        let s = self.sep();
        self.list(sends.iter().enumerate().map(|(i, (k, v))| {
            let value = match offsets {
                Some(o) => format!("[{}{s}{v}]", o[i]),
                None => v.to_string(),
            };
            format!("[{}{s}{k}{s}{value}]", self.name("send"))
        }))
    }

    fn poll(&self, reads: &[(u64, Vec<(u64, u64)>)]) -> String {
        let s = self.sep();
        let by_key: Vec<String> = reads
            .iter()
            .map(|(key, records)| {
                let key = match self.0 {
                    Spelling::Jsonl => format!("\"{key}\""),
                    Spelling::Edn => key.to_string(),
                };
                let records = self.list(records.iter().map(|(o, v)| format!("[{o}{s}{v}]")));
                match self.0 {
                    Spelling::Jsonl => format!("{key}:{records}"),
                    Spelling::Edn => format!("{key} {records}"),
                }
            })
            .collect();
        let map = format!(
            "{{{}}}",
            by_key.join(if self.0 == Spelling::Jsonl { "," } else { ", " })
        );
        format!("[[{}{s}{map}]]", self.name("poll"))
    }
}

/// Writes a history of about `ops` operations of `shape` to `out`; returns how many
/// operations it wrote. The same seed gives the same file.
pub fn write_history(
    shape: Shape,
    ops: u64,
    seed: u64,
    spelling: Spelling,
    out: impl Write,
) -> io::Result<u64> {
    let p = shape.params();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = Writer {
        out: io::BufWriter::with_capacity(1 << 20, out),
        spelling,
        index: 0,
        line: String::new(),
    };
    let spell = Spell(spelling);
    let mut log: Vec<Vec<u64>> = vec![Vec::new(); p.keys as usize];
    // Per thread: its current process number, its open op, and its positions per key.
    let mut process: Vec<u64> = (0..p.processes as u64).collect();
    let mut open: Vec<Option<Pending>> = (0..p.processes).map(|_| None).collect();
    let mut position: Vec<Vec<usize>> = vec![vec![0; p.keys as usize]; p.processes];
    let mut next_process = p.processes as u64;
    let mut next_value = 0u64;
    let mut time = 0u64;
    // Room for the final read's two lines and each thread's last completion.
    let budget = ops.saturating_sub(2 + p.processes as u64);
    let (mut lost, mut skipped) = (None, false);
    while w.index < budget {
        time += rng.random_range(100_000..2_000_000);
        let t = rng.random_range(0..p.processes);
        match open[t].take() {
            None => {
                if rng.random_bool(0.5) {
                    // One value per send: a poll that ends inside a batch is a fractured read
                    // (G-single), which a non-transactional producer allows but the
                    // checker's defaults do not.
                    next_value += 1;
                    let sends = vec![(rng.random_range(0..p.keys), next_value)];
                    w.op(time, "invoke", process[t], "send", &spell.sends(&sends, None))?;
                    open[t] = Some(Pending::Send(sends));
                } else {
                    w.op(
                        time,
                        "invoke",
                        process[t],
                        "poll",
                        &format!("[[{}]]", spell.name("poll")),
                    )?;
                    open[t] = Some(Pending::Poll);
                }
            }
            Some(Pending::Send(sends)) => {
                if rng.random_bool(p.timeout_share) {
                    // Timed out: it may or may not have happened.
                    if rng.random_bool(0.5) {
                        for (k, v) in &sends {
                            log[*k as usize].push(*v);
                        }
                    }
                    w.op(time, "info", process[t], "send", &spell.sends(&sends, None))?;
                    process[t] = next_process;
                    next_process += 1;
                    continue;
                }
                let offsets: Vec<u64> = sends
                    .iter()
                    .map(|(k, v)| {
                        log[*k as usize].push(*v);
                        log[*k as usize].len() as u64 - 1
                    })
                    .collect();
                if p.planted && lost.is_none() && w.index > budget / 2 {
                    lost = Some(sends[0]);
                }
                w.op(
                    time,
                    "ok",
                    process[t],
                    "send",
                    &spell.sends(&sends, Some(&offsets)),
                )?;
            }
            Some(Pending::Poll) => {
                let mut reads = Vec::new();
                let first_key = rng.random_range(0..p.keys) as usize;
                for j in 0..p.keys_per_poll {
                    let k = (first_key + j * 3) % p.keys as usize;
                    let mut from = position[t][k];
                    if p.planted && !skipped && w.index > budget / 3 && log[k].len() > from + 3 {
                        from += 2;
                        skipped = true;
                    }
                    // Every key after the first lags: the consumer sees it at an older point.
                    let lag = if j > 0 { rng.random_range(0..4) } else { 0 };
                    let end = (from + rng.random_range(1..=p.poll_max)).min(log[k].len().saturating_sub(lag));
                    if end <= from {
                        continue;
                    }
                    reads.push((k as u64, (from..end).map(|o| (o as u64, log[k][o])).collect()));
                    position[t][k] = end;
                }
                w.op(time, "ok", process[t], "poll", &spell.poll(&reads))?;
            }
        }
    }
    // Close every open operation, then read every key from the start.
    for t in 0..p.processes {
        time += 1_000;
        match open[t].take() {
            Some(Pending::Send(sends)) => {
                w.op(time, "info", process[t], "send", &spell.sends(&sends, None))?
            }
            Some(Pending::Poll) => w.op(time, "ok", process[t], "poll", &spell.poll(&[]))?,
            None => {}
        }
    }
    let reads: Vec<(u64, Vec<(u64, u64)>)> = (0..p.keys)
        .map(|k| {
            let records = log[k as usize]
                .iter()
                .enumerate()
                .filter(|(_, v)| lost.is_none_or(|(lk, lv)| (lk, lv) != (k, **v)))
                .map(|(o, v)| (o as u64, *v))
                .collect();
            (k, records)
        })
        .collect();
    time += 1_000_000;
    let poll = format!("[[{}]]", spell.name("poll"));
    w.op(time, "invoke", next_process, "final-poll", &poll)?;
    w.op(
        time + 1_000,
        "ok",
        next_process,
        "final-poll",
        &spell.poll(&reads),
    )?;
    w.out.flush()?;
    Ok(w.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(shape: Shape, spelling: Spelling) -> checker::Report {
        let mut bytes = Vec::new();
        write_history(shape, 4_000, 7, spelling, &mut bytes).unwrap();
        let history = checker::History::read(&bytes[..], checker::Format::Auto).unwrap();
        checker::check(&history, checker::Workload::Log)
    }

    #[test]
    fn clean_shapes_are_valid_and_the_planted_one_is_caught_in_both_formats() {
        for spelling in [Spelling::Jsonl, Spelling::Edn] {
            for shape in Shape::ALL {
                let report = check(shape, spelling);
                let log = report.log().unwrap();
                if shape.is_invalid() {
                    assert_eq!(log.lost_count, 1, "{shape:?} {spelling:?}: {}", log.summary());
                    assert_eq!(
                        log.anomalies["poll-skip"].count,
                        1,
                        "{shape:?}: {}",
                        log.summary()
                    );
                } else {
                    assert_eq!(
                        report.valid,
                        checker::Validity::True,
                        "{shape:?} {spelling:?}: {}\n{}",
                        log.summary(),
                        log.cycles_text().lines().take(20).collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
    }

    #[test]
    fn the_same_seed_writes_the_same_file() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_history(Shape::Processes, 1_000, 3, Spelling::Edn, &mut a).unwrap();
        write_history(Shape::Processes, 1_000, 3, Spelling::Edn, &mut b).unwrap();
        assert_eq!(a, b);
    }
}
