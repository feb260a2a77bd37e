//! The history: Jepsen's operation model, one JSON object per line.
//!
//! A client process invokes an operation, which then completes exactly once: `ok` (it
//! happened), `fail` (it certainly did not) or `info` (unknown). A process whose operation
//! ended `info` never invokes again. The nemesis logs its faults as `info` operations of
//! process `"nemesis"`. Parsing checks these rules and names the offending line.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// What an operation line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    /// The operation started.
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Its outcome is unknown (timeout, lost connection), or a nemesis action.
    Info,
}

/// Who performed an operation: a numbered client process, or a named one (the nemesis).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process (Jepsen retires one after an `info` and numbers a new one).
    Client(u64),
    /// A named process, such as `"nemesis"`.
    Named(String),
}

impl Process {
    /// The nemesis process.
    pub fn nemesis() -> Self {
        Process::Named("nemesis".to_string())
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Named(name) => f.write_str(name),
        }
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0.
    pub index: u64,
    /// Simulated nanoseconds since the start of the run.
    pub time: u64,
    /// Invoke or one of the three completions.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// Who performed it.
    pub process: Process,
    /// The function: `enqueue`, `dequeue`, `drain`, `send`, `poll`, `kill`, ...
    pub f: String,
    /// The argument (on invoke) or result (on completion).
    #[serde(default)]
    pub value: serde_json::Value,
    /// Why an operation failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// A history that could not be read, with the 1-based line where it went wrong.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HistoryError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// How a history file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Decide from the first character: `{"` is JSONL, `{:`, `#` or `[` EDN.
    #[default]
    Auto,
    /// One JSON object per line (tumult's history.jsonl).
    Jsonl,
    /// Jepsen's history.edn.
    Edn,
}

impl Format {
    /// Guesses the format from the start of a file.
    pub fn detect(head: &[u8]) -> Format {
        let mut bytes = head
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace() && *b != b',');
        match (bytes.next(), bytes.next()) {
            (Some(b'{'), Some(b'"')) => Format::Jsonl,
            (Some(b'{' | b'#' | b'[' | b'(' | b';'), _) => Format::Edn,
            _ => Format::Jsonl,
        }
    }

    /// The format itself, or for `Auto` the one the reader's first bytes show.
    pub fn resolve(self, reader: &mut impl BufRead) -> Result<Format, HistoryError> {
        match self {
            Format::Auto => {
                let head = reader.fill_buf().map_err(|e| HistoryError {
                    line: 1,
                    message: format!("cannot read: {e}"),
                })?;
                Ok(Format::detect(head))
            }
            known => Ok(known),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Format::Auto),
            "jsonl" => Ok(Format::Jsonl),
            "edn" => Ok(Format::Edn),
            other => Err(format!("unknown format '{other}' (expected auto, jsonl or edn)")),
        }
    }
}

/// Jepsen's op model, checked one operation at a time: indices run 0, 1, 2, ...; a client
/// process invokes only when it has nothing open, and a completion completes the same
/// function its process invoked. Named processes (the nemesis) log free-standing ops. Both
/// the whole-history reader and the streamed one use it.
///
/// Two things Jepsen's generator never does are accepted, because Jepsen's checkers accept
/// them and its own test histories hold them: a process acting again after an `info` (a
/// test's shorthand for a fresh process), and a completion with no invocation before it
/// (knossos' `ok-op` alone), which stands for an operation invoked and completed at once.
#[derive(Debug, Default)]
pub(crate) struct OpRules {
    next_index: u64,
    /// Open invocations: process -> (history index, function's number in `functions`).
    open: ByProcess<(u64, usize)>,
    /// Every function name seen, numbered: a history has a handful.
    functions: Vec<String>,
}

impl OpRules {
    /// Checks one operation of `process` (`None`: a named one); for a completion, returns
    /// the index of the invocation it completes. The error says what rule it breaks.
    pub(crate) fn admit(
        &mut self,
        index: u64,
        kind: OpType,
        process: Option<u64>,
        f: &str,
    ) -> Result<Option<u64>, String> {
        if index != self.next_index {
            return Err(format!(
                "index {index} out of sequence (expected {})",
                self.next_index
            ));
        }
        self.next_index += 1;
        let Some(process) = process else { return Ok(None) };
        if kind == OpType::Invoke {
            if let Some((open, _)) = self.open.get(process) {
                return Err(format!(
                    "process {process} invokes while its operation at index {open} is still open"
                ));
            }
            let number = match self.functions.iter().position(|known| known == f) {
                Some(number) => number,
                None => {
                    self.functions.push(f.to_string());
                    self.functions.len() - 1
                }
            };
            self.open.insert(process, (index, number));
            return Ok(None);
        }
        let Some((invoke, invoked)) = self.open.remove(process) else {
            return Ok(None);
        };
        let invoked = &self.functions[invoked];
        if invoked != f {
            return Err(format!(
                "completion f '{f}' does not match its invocation's f '{invoked}'"
            ));
        }
        Ok(Some(invoke))
    }
}

/// Something per process: a table for the small process numbers histories mostly use (a
/// tree insertion and removal per operation cost more than reading the operation), a tree
/// for the rest.
#[derive(Debug, Clone)]
pub(crate) struct ByProcess<T> {
    small: Vec<Option<T>>,
    large: BTreeMap<u64, T>,
}

impl<T> Default for ByProcess<T> {
    fn default() -> Self {
        Self {
            small: Vec::new(),
            large: BTreeMap::new(),
        }
    }
}

/// Processes below this are kept in [`ByProcess`]'s table.
const SMALL_PROCESSES: u64 = 1 << 16;

impl<T> ByProcess<T> {
    /// Sets `process`'s item.
    pub(crate) fn insert(&mut self, process: u64, item: T) {
        if process < SMALL_PROCESSES {
            let slot = process as usize;
            if self.small.len() <= slot {
                self.small.resize_with(slot + 1, || None);
            }
            self.small[slot] = Some(item);
        } else {
            self.large.insert(process, item);
        }
    }

    /// `process`'s item.
    pub(crate) fn get(&self, process: u64) -> Option<&T> {
        if process < SMALL_PROCESSES {
            self.small.get(process as usize)?.as_ref()
        } else {
            self.large.get(&process)
        }
    }

    /// Takes `process`'s item away.
    pub(crate) fn remove(&mut self, process: u64) -> Option<T> {
        if process < SMALL_PROCESSES {
            self.small.get_mut(process as usize)?.take()
        } else {
            self.large.remove(&process)
        }
    }

    /// Every item, by process in order.
    pub(crate) fn drain(self) -> impl Iterator<Item = (u64, T)> {
        let small = self
            .small
            .into_iter()
            .enumerate()
            .filter_map(|(p, item)| Some((p as u64, item?)));
        small.chain(self.large)
    }
}

/// A parsed, validated history with each invocation paired to its completion.
#[derive(Debug, Clone, Default)]
pub struct History {
    ops: Vec<Op>,
    /// For each op position: the position of its partner (invoke <-> completion).
    partner: Vec<Option<usize>>,
}

impl History {
    /// Validates `ops` (in order) and pairs invocations with completions.
    /// `lines[i]` is the source line of `ops[i]`, used in error messages.
    pub fn from_ops(ops: Vec<Op>, lines: &[usize]) -> Result<Self, HistoryError> {
        let mut partner = vec![None; ops.len()];
        let mut rules = OpRules::default();
        for (at, op) in ops.iter().enumerate() {
            let process = match op.process {
                Process::Client(n) => Some(n),
                Process::Named(_) => None,
            };
            let invoke = rules
                .admit(op.index, op.kind, process, &op.f)
                .map_err(|message| HistoryError {
                    line: lines.get(at).copied().unwrap_or(at + 1),
                    message,
                })?;
            // Indices run 0, 1, 2, ...: an index is the op's position.
            if let Some(invoke) = invoke {
                partner[invoke as usize] = Some(at);
                partner[at] = Some(invoke as usize);
            }
        }
        Ok(Self { ops, partner })
    }

    /// Reads a history in `format`, detecting JSONL or Jepsen's EDN from the first
    /// character when asked to. JSONL is read line by line; EDN is read whole.
    pub fn read(mut reader: impl BufRead, format: Format) -> Result<Self, HistoryError> {
        match format.resolve(&mut reader)? {
            Format::Edn => {
                let mut text = String::new();
                reader.read_to_string(&mut text).map_err(|e| HistoryError {
                    line: 1,
                    message: format!("cannot read as UTF-8 text: {e}"),
                })?;
                let (ops, lines) = crate::edn::read_ops(&text, 0)?;
                Self::from_ops(ops, &lines)
            }
            _ => Self::read_jsonl(reader),
        }
    }

    /// Reads a JSONL history; blank lines are skipped. Errors name the line.
    pub fn read_jsonl(reader: impl BufRead) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        let mut lines = Vec::new();
        for (number, line) in reader.lines().enumerate() {
            let line_no = number + 1;
            let text = line.map_err(|e| HistoryError {
                line: line_no,
                message: format!("cannot read: {e}"),
            })?;
            if text.trim().is_empty() {
                continue;
            }
            let op: Op = serde_json::from_str(&text).map_err(|e| HistoryError {
                line: line_no,
                message: format!("not a history operation: {e}"),
            })?;
            ops.push(op);
            lines.push(line_no);
        }
        Self::from_ops(ops, &lines)
    }

    /// All operations, in history order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The completion of the invocation at `position`, if it completed.
    pub fn completion(&self, position: usize) -> Option<&Op> {
        match self.ops.get(position)?.kind {
            OpType::Invoke => self.partner[position].map(|at| &self.ops[at]),
            _ => None,
        }
    }

    /// The invocation a completion at `position` completes.
    pub fn invocation(&self, position: usize) -> Option<&Op> {
        match self.ops.get(position)?.kind {
            OpType::Invoke => None,
            _ => self.partner[position].map(|at| &self.ops[at]),
        }
    }

    /// Each invocation with its completion (`None` if the history ends first); a lone
    /// completion comes paired with itself.
    pub fn pairs(&self) -> impl Iterator<Item = (&Op, Option<&Op>)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(at, op)| {
                matches!(op.process, Process::Client(_))
                    && (op.kind == OpType::Invoke || self.partner[*at].is_none())
            })
            .map(|(at, op)| match op.kind {
                OpType::Invoke => (op, self.partner[at].map(|p| &self.ops[p])),
                // A lone completion is its own invocation.
                _ => (op, Some(op)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<History, HistoryError> {
        History::read_jsonl(text.as_bytes())
    }

    const GOOD: &str = r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"enqueue","value":1}
{"index":1,"time":2,"type":"info","process":"nemesis","f":"kill","value":["n1"]}
{"index":2,"time":3,"type":"ok","process":0,"f":"enqueue","value":1}
"#;

    #[test]
    fn a_good_history_pairs_invocations_with_completions() {
        let history = parse(GOOD).unwrap();
        let pairs: Vec<_> = history.pairs().collect();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].1.map(|op| op.kind), Some(OpType::Ok));
        assert_eq!(history.completion(0).map(|op| op.index), Some(2));
    }

    #[test]
    fn a_process_may_act_again_after_an_info_as_in_jepsen_tests() {
        let text = r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"enqueue","value":1}
{"index":1,"time":2,"type":"info","process":0,"f":"enqueue","value":1,"error":"timeout"}
{"index":2,"time":3,"type":"invoke","process":0,"f":"enqueue","value":2}
{"index":3,"time":4,"type":"ok","process":0,"f":"enqueue","value":2}
"#;
        let history = parse(text).unwrap();
        assert_eq!(history.completion(2).map(|op| op.index), Some(3));
        assert_eq!(history.completion(0).map(|op| op.index), Some(1));
    }

    #[test]
    fn garbage_names_its_line() {
        let text = format!("{GOOD}this is not json\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, 4);
        assert!(
            err.to_string().starts_with("line 4: not a history operation"),
            "{err}"
        );
    }

    #[test]
    fn a_line_cut_mid_object_is_an_error_not_a_panic() {
        let cut = &GOOD[..GOOD.len() - 20];
        let err = parse(cut).unwrap_err();
        assert_eq!(err.line, 3);
    }

    #[test]
    fn completions_must_match_an_open_invocation() {
        // A lone completion stands for an operation invoked and completed at once.
        let text = r#"{"index":0,"time":1,"type":"ok","process":4,"f":"enqueue","value":1}"#;
        let lone = parse(text).unwrap();
        let pairs: Vec<_> = lone.pairs().map(|(i, c)| (i.index, c.map(|c| c.index))).collect();
        assert_eq!(pairs, vec![(0, Some(0))]);
        let text = r#"{"index":0,"time":1,"type":"invoke","process":4,"f":"enqueue","value":1}
{"index":1,"time":1,"type":"ok","process":4,"f":"dequeue","value":1}"#;
        assert!(parse(text).unwrap_err().message.contains("does not match"));
    }

    #[test]
    fn indices_must_run_in_sequence() {
        let text = r#"{"index":3,"time":1,"type":"invoke","process":4,"f":"enqueue","value":1}"#;
        assert!(parse(text).unwrap_err().message.contains("out of sequence"));
    }
}
