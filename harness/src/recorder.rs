//! Records the history as the run goes: each operation is appended to history.jsonl the
//! moment it happens, so an interrupted run can still be checked.

use std::io::Write;
use std::time::Duration;

use checker::{Op, OpType, Process};
use serde_json::Value;

/// The history being written.
pub struct Recorder {
    out: Box<dyn Write>,
    ops: Vec<Op>,
    last_time_ns: u64,
    write_error: Option<std::io::Error>,
}

impl Recorder {
    /// A recorder writing JSON lines to `out`.
    pub fn new(out: Box<dyn Write>) -> Self {
        Self {
            out,
            ops: Vec::new(),
            last_time_ns: 0,
            write_error: None,
        }
    }

    /// Appends one operation at simulated time `at`.
    pub fn record(
        &mut self,
        at: Duration,
        kind: OpType,
        process: Process,
        f: &str,
        value: Value,
        error: Option<String>,
    ) {
        // Hosts advance within one simulation step at slightly different instants; keep the
        // recorded clock monotonic so that history order and time order agree.
        let time = (at.as_nanos() as u64).max(self.last_time_ns);
        self.last_time_ns = time;
        let op = Op {
            index: self.ops.len() as u64,
            time,
            kind,
            process,
            f: f.to_string(),
            value,
            error: error.map(Value::String),
        };
        if self.write_error.is_none() {
            let line = serde_json::to_string(&op).expect("ops always serialise");
            if let Err(e) = writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
                self.write_error = Some(e);
            }
        }
        self.ops.push(op);
    }

    /// Ends recording; returns the operations, or the first write error.
    pub fn finish(mut self) -> Result<Vec<Op>, std::io::Error> {
        if let Some(e) = self.write_error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.ops)
    }
}
