//! Reading a history file straight into the compiled log model, one operation at a time:
//! no `serde_json::Value` per operation, and nothing of the file kept but what the
//! analyses need. JSONL lines are parsed with borrowed fields, the op's value walked by
//! serde seeds that intern keys and values as they go; EDN is read form by form, a chunk
//! of whole lines at a time. The op model (indices in sequence, completions paired with
//! open invocations of the same function) is checked as the
//! lines go by, and every error names its line.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use smallvec::SmallVec;

use crate::history::{Format, HistoryError, Op, OpRules, OpType, Process};
use crate::model::{Completed, Completion, KeyId, LogBuilder, LogModel, Records, ValueId};
use crate::{jsonl, LOG_FUNCTIONS, QUEUE_FUNCTIONS};

/// What a streamed history held, besides the model.
#[derive(Debug, Default)]
pub struct Streamed {
    /// Operations read (every line, nemesis included).
    pub ops: u64,
    /// Whether any client operation was a queue operation (enqueue, dequeue, drain).
    pub has_queue_ops: bool,
    /// Whether any client operation was a log operation (send, poll, txn, ...).
    pub has_log_ops: bool,
    /// Client operations read (invocations and completions).
    pub client_ops: u64,
    /// The distinct functions of client operations, in the order first seen (at most
    /// [`FUNCTIONS_KEPT`]), for errors that say what a history holds.
    pub functions: Vec<String>,
}

/// How many distinct function names [`Streamed::functions`] keeps.
pub const FUNCTIONS_KEPT: usize = 16;

impl Streamed {
    /// Notes one client operation's function.
    pub fn note_function(&mut self, f: &str) {
        self.client_ops += 1;
        // A history names a handful of functions: the scan is shorter than a hash.
        if self.functions.iter().any(|seen| seen == f) {
            return;
        }
        self.has_queue_ops |= QUEUE_FUNCTIONS.contains(&f);
        self.has_log_ops |= LOG_FUNCTIONS.contains(&f);
        if self.functions.len() < FUNCTIONS_KEPT {
            self.functions.push(f.to_string());
        }
    }
}

/// Reads a whole history into a log model.
pub fn read_log(reader: impl BufRead, format: Format) -> Result<(LogModel, Streamed), HistoryError> {
    read_log_sized(reader, format, None)
}

/// Reads a whole history of `bytes` bytes (when known) into a log model. The size only
/// reserves room for the operations up front: growing a vector of millions of them by
/// doubling would copy it again and again.
pub fn read_log_sized(
    reader: impl BufRead,
    format: Format,
    bytes: Option<u64>,
) -> Result<(LogModel, Streamed), HistoryError> {
    let mut reader = reader;
    let format = format.resolve(&mut reader)?;
    // An operation takes 60 bytes at the least; reserving for more than there are costs
    // address space only, never memory, but is capped all the same.
    let ops = bytes.map_or(0, |b| (b / 60).min(1 << 27) as usize);
    let mut sink = Sink {
        rules: OpRules::default(),
        builder: LogBuilder::with_capacity(ops),
        streamed: Streamed::default(),
    };
    match format {
        Format::Edn => read_edn(reader, &mut sink)?,
        _ => read_jsonl(reader, &mut sink)?,
    }
    Ok((sink.builder.finish(), sink.streamed))
}

struct Sink {
    rules: OpRules,
    builder: LogBuilder,
    streamed: Streamed,
}

/// The fields of one JSONL line, borrowed from it; the value is parsed once the type and
/// process are known (JSON leaves the order of fields free).
#[derive(Deserialize)]
struct Line<'a> {
    index: u64,
    time: u64,
    #[serde(rename = "type")]
    kind: OpType,
    process: LineProcess,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// A process number, or `None` for a named process.
struct LineProcess(Option<u64>);

impl<'de> Deserialize<'de> for LineProcess {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LineProcess;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a process number or name")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<LineProcess, E> {
                Ok(LineProcess(Some(n)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<LineProcess, E> {
                Ok(LineProcess(None))
            }
        }
        d.deserialize_any(V)
    }
}

fn read_jsonl(reader: impl BufRead, sink: &mut Sink) -> Result<(), HistoryError> {
    for_each_line(reader, "cannot read", |bytes, line_no| {
        jsonl_line(bytes, line_no, sink)
    })
}

/// Hands `each` every line of `reader` with its number (the line with its newline, if it
/// has one). Lines are read where they lie in the reader's buffer; only a line split
/// across two refills is copied (copying every line would cost as much as finding its
/// fields). A read error is reported at the line it stopped, after `unreadable`.
fn for_each_line(
    mut reader: impl BufRead,
    unreadable: &str,
    mut each: impl FnMut(&[u8], usize) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let mut split = Vec::new();
    let mut line_no = 0usize;
    loop {
        let buf = reader.fill_buf().map_err(|e| HistoryError {
            line: line_no + 1,
            message: format!("{unreadable}: {e}"),
        })?;
        if buf.is_empty() {
            if !split.is_empty() {
                each(&split, line_no + 1)?;
            }
            return Ok(());
        }
        let len = buf.len();
        let mut start = 0;
        if !split.is_empty() {
            let Some(end) = memchr::memchr(b'\n', buf) else {
                split.extend_from_slice(buf);
                reader.consume(len);
                continue;
            };
            split.extend_from_slice(&buf[..=end]);
            line_no += 1;
            each(&split, line_no)?;
            split.clear();
            start = end + 1;
        }
        let base = start;
        for end in memchr::memchr_iter(b'\n', &buf[base..]) {
            let end = base + end + 1;
            line_no += 1;
            each(&buf[start..end], line_no)?;
            start = end;
        }
        split.extend_from_slice(&buf[start..]);
        reader.consume(len);
    }
}

/// Reads line `line_no`, `bytes` (with its newline, if it has one), into the sink.
fn jsonl_line(bytes: &[u8], line_no: usize, sink: &mut Sink) -> Result<(), HistoryError> {
    let fail = |message: String| HistoryError {
        line: line_no,
        message,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    // The fast path reads what it can; serde reads (or refuses) the rest.
    let mut parsed = Parsed::default();
    let fast = jsonl::line(bytes, sink.builder.model_mut(), &mut parsed);
    let head = match fast {
        Some(f) => Head::from(f),
        None => {
            parsed = Parsed::default();
            let text = std::str::from_utf8(bytes)
                .map_err(|_| fail("cannot read: stream did not contain valid UTF-8".into()))?;
            let line: Line =
                serde_json::from_str(text).map_err(|e| fail(format!("not a history operation: {e}")))?;
            Head {
                index: line.index,
                time: line.time,
                kind: line.kind,
                process: line.process.0,
                f: line.f,
                value: line.value.map(|raw| raw.get().as_bytes()),
                walked: false,
            }
        }
    };
    add_jsonl_op(sink, head, parsed).map_err(fail)
}

/// The fields of one JSONL line, whichever path read them.
struct Head<'a> {
    index: u64,
    time: u64,
    kind: OpType,
    process: Option<u64>,
    f: Cow<'a, str>,
    value: Option<&'a [u8]>,
    /// Whether the value is in the parsed value already.
    walked: bool,
}

impl<'a> From<jsonl::Fields<'a>> for Head<'a> {
    fn from(f: jsonl::Fields<'a>) -> Self {
        Head {
            index: f.index,
            time: f.time,
            kind: f.kind,
            process: f.process,
            f: Cow::Borrowed(f.f),
            value: f.value,
            walked: f.walked,
        }
    }
}

fn add_jsonl_op(sink: &mut Sink, head: Head, mut parsed: Parsed) -> Result<(), String> {
    sink.rules.admit(head.index, head.kind, head.process, &head.f)?;
    sink.streamed.ops += 1;
    let Some(process) = head.process else {
        return Ok(());
    };
    sink.streamed.note_function(&head.f);
    let invoke = head.kind == OpType::Invoke;
    if let (Some(raw), false) = (head.value, head.walked) {
        let model = sink.builder.model_mut();
        let fast = match () {
            _ if !invoke && ["assign", "subscribe"].contains(&head.f.as_ref()) => None,
            _ if invoke => jsonl::invocation(raw, model, &mut parsed.sends),
            _ => jsonl::completion(raw, model, &mut parsed.done),
        };
        if fast.is_none() {
            parsed = Parsed::default();
            let raw = std::str::from_utf8(raw).map_err(|e| format!("unreadable value: {e}"))?;
            parse_value(raw, invoke, &head.f, model, &mut parsed)?;
        }
    }
    if invoke {
        sink.builder.invoke(process, head.index, &head.f, parsed.sends);
    } else {
        let done = Completion {
            process,
            index: head.index,
            time: head.time,
            kind: head.kind,
        };
        sink.builder.complete(done, &head.f, parsed.done);
    }
    Ok(())
}

/// An op's value read by serde: an assign's or subscribe's list of keys, or micro-ops.
fn parse_value(
    raw: &str,
    invoke: bool,
    f: &str,
    model: &mut LogModel,
    parsed: &mut Parsed,
) -> Result<(), String> {
    if !invoke && ["assign", "subscribe"].contains(&f) {
        // Rare: read plainly.
        let keys: Value = serde_json::from_str(raw).map_err(|e| format!("unreadable value: {e}"))?;
        parsed.done.assigned = keys
            .as_array()
            .map(|keys| keys.iter().map(|key| model.key(key)).collect());
        return Ok(());
    }
    let seed = ValueSeed {
        model,
        invoke,
        out: parsed,
    };
    let mut de = serde_json::Deserializer::from_str(raw);
    seed.deserialize(&mut de)
        .map_err(|e| format!("unreadable value: {e}"))
}

/// What an op's value holds for the log model: an invocation's sends, or what a
/// completion says.
#[derive(Default)]
pub(crate) struct Parsed {
    pub sends: SmallVec<[(u32, KeyId, ValueId); 1]>,
    pub done: Completed,
}

/// An op's whole value: `[[name, ...], ...]`, anything else ignored.
struct ValueSeed<'m> {
    model: &'m mut LogModel,
    invoke: bool,
    out: &'m mut Parsed,
}

/// Visitor methods that accept what a shape does not expect and ignore it: a value of an
/// unexpected shape is not an error, only nothing to read. `numbers` covers booleans,
/// numbers and null; `str`, `map` and `seq` the rest, each left out where the visitor
/// reads that shape itself.
macro_rules! ignore {
    ($out:ty, $none:expr; numbers) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$out, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$out, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
            Ok($none)
        }
        fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
            Ok($none)
        }
    };
    ($out:ty, $none:expr; str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$out, E> {
            Ok($none)
        }
    };
    ($out:ty, $none:expr; map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$out, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
    ($out:ty, $none:expr; seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
    ($out:ty, $none:expr; $($shape:ident),+) => {
        $(ignore!($out, $none; $shape);)+
    };
}

/// A seed that hands whatever comes to its own visitor.
macro_rules! seed_visits_any {
    ($($seed:ident),+) => {
        $(impl<'de> DeserializeSeed<'de> for $seed<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        })+
    };
}

seed_visits_any!(ValueSeed, MicroSeed, PollSeed, RecordsSeed);

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an operation's value")
    }
    ignore!((), (); numbers, str, map);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut at = 0u32;
        loop {
            let micro = MicroSeed {
                model: &mut *self.model,
                invoke: self.invoke,
                out: &mut *self.out,
                at,
            };
            if seq.next_element_seed(micro)?.is_none() {
                return Ok(());
            }
            at += 1;
        }
    }
}

/// One micro-op: `["send", key, value]` (completed: `["send", key, [offset, value]]`),
/// `["poll", {key: [[offset, value], ...]}]`, or anything else, ignored.
struct MicroSeed<'m> {
    model: &'m mut LogModel,
    invoke: bool,
    out: &'m mut Parsed,
    at: u32,
}

impl<'de> Visitor<'de> for MicroSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a micro-op")
    }
    ignore!((), (); numbers, str, map);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let name: Option<Name> = seq.next_element()?;
        match name.as_ref().and_then(|n| n.0.as_deref()) {
            Some("send") => {
                let key: Option<Value> = seq.next_element()?;
                if self.invoke {
                    let value: Option<Value> = seq.next_element()?;
                    if let (Some(key), Some(value)) = (key, value) {
                        let key = self.model.key(&key);
                        let value = self.model.value(&value);
                        self.out.sends.push((self.at, key, value));
                    }
                } else {
                    let written: Option<Value> = seq.next_element()?;
                    let offset = written
                        .as_ref()
                        .and_then(Value::as_array)
                        .and_then(|pair| pair.first())
                        .and_then(Value::as_u64);
                    if let Some(offset) = offset {
                        self.out.done.offsets.push((self.at, offset));
                    }
                }
            }
            Some("poll") if !self.invoke => {
                seq.next_element_seed(PollSeed {
                    model: self.model,
                    out: &mut self.out.done.reads,
                })?;
            }
            _ => {}
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A micro-op's name, if its first element is a string.
struct Name(Option<String>);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a micro-op name")
            }
            ignore!(Name, Name(None); numbers, map, seq);
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name, E> {
                // Only the names the model reads are kept; the rest need no allocation.
                Ok(Name(["send", "poll"].contains(&s).then(|| s.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// A poll's records by key.
struct PollSeed<'m> {
    model: &'m mut LogModel,
    out: &'m mut SmallVec<[(KeyId, Records); 1]>,
}

impl<'de> Visitor<'de> for PollSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of key to records")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let key = self.model.key_named(&key);
            let mut records = Records::new();
            map.next_value_seed(RecordsSeed {
                model: &mut *self.model,
                records: &mut records,
            })?;
            self.out.push((key, records));
        }
        Ok(())
    }
    ignore!((), (); numbers, str, seq);
}

/// One key's records, `[[offset, value], ...]`; a record without an integer offset is
/// skipped.
struct RecordsSeed<'m> {
    model: &'m mut LogModel,
    records: &'m mut Records,
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of [offset, value] records")
    }
    ignore!((), (); numbers, str, map);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Record>()? {
            if let Some((offset, value)) = record.0 {
                self.records.push((offset, self.model.value(&value)));
            }
        }
        Ok(())
    }
}

/// `[offset, value]`, or `None` for anything else.
struct Record(Option<(u64, Value)>);

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an [offset, value] record")
            }
            ignore!(Record, Record(None); numbers, str, map);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
                let offset: Option<Value> = seq.next_element()?;
                let value: Option<Value> = seq.next_element()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Record(match (offset.as_ref().and_then(Value::as_u64), value) {
                    (Some(o), Some(v)) => Some((o, v)),
                    _ => None,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// EDN, a chunk of whole lines at a time: lines are gathered until every bracket opened
/// in them is closed (outside strings, characters and comments), then read as forms.
/// Jepsen writes one operation per line, so a chunk is usually one line; a history written
/// as one vector of operations is one chunk.
fn read_edn(reader: impl BufRead, sink: &mut Sink) -> Result<(), HistoryError> {
    let mut edn = EdnLines::default();
    for_each_line(reader, "cannot read as UTF-8 text", |bytes, line_no| {
        edn.line(bytes, line_no, sink)
    })?;
    // The end of the file: whatever is gathered is read (an unclosed form is an error there).
    edn.flush(sink)
}

/// The EDN reader's state between lines: a form spread over several lines is gathered
/// into a chunk until its brackets close.
#[derive(Default)]
struct EdnLines {
    chunk: String,
    /// The line the chunk starts on.
    chunk_line: usize,
    depth: Depth,
    json: Vec<u8>,
}

impl EdnLines {
    /// Reads line `line_no` (with its newline, if it has one).
    fn line(&mut self, bytes: &[u8], line_no: usize, sink: &mut Sink) -> Result<(), HistoryError> {
        let text = std::str::from_utf8(bytes).map_err(|_| HistoryError {
            line: line_no,
            message: "cannot read as UTF-8 text: stream did not contain valid UTF-8".into(),
        })?;
        // One whole operation on a line, as Jepsen writes them, goes to the fast path
        // without the bracket count.
        if self.chunk.is_empty() && read_edn_line_fast(bytes, line_no, &mut self.json, sink)? {
            return Ok(());
        }
        if self.chunk.is_empty() {
            self.chunk_line = line_no;
        }
        self.chunk.push_str(text);
        self.depth.scan(text);
        if self.depth.closed() {
            self.flush(sink)?;
        }
        Ok(())
    }

    /// Reads the gathered chunk, if it holds anything.
    fn flush(&mut self, sink: &mut Sink) -> Result<(), HistoryError> {
        if !self.chunk.trim().is_empty() {
            let chunk_line = self.chunk_line;
            let (ops, lines) = crate::edn::read_ops(&self.chunk, sink.streamed.ops).map_err(|mut e| {
                e.line += chunk_line - 1;
                e
            })?;
            for (op, at) in ops.into_iter().zip(lines) {
                add_edn_op(sink, op).map_err(|message| HistoryError {
                    line: at + chunk_line - 1,
                    message,
                })?;
            }
        }
        self.chunk.clear();
        Ok(())
    }
}

/// Reads a one-line chunk of the common subset of EDN through the JSONL fast path (see
/// [`crate::edn::line_as_json`]); false leaves the chunk to the full reader.
fn read_edn_line_fast(
    chunk: &[u8],
    line: usize,
    json: &mut Vec<u8>,
    sink: &mut Sink,
) -> Result<bool, HistoryError> {
    if crate::edn::line_as_json(chunk, json).is_none() {
        return Ok(false);
    }
    let mut parsed = Parsed::default();
    let Some(f) = jsonl::line(json, sink.builder.model_mut(), &mut parsed) else {
        return Ok(false);
    };
    add_jsonl_op(sink, Head::from(f), parsed).map_err(|message| HistoryError { line, message })?;
    Ok(true)
}

fn add_edn_op(sink: &mut Sink, op: Op) -> Result<(), String> {
    let process = match op.process {
        Process::Client(n) => Some(n),
        Process::Named(_) => None,
    };
    sink.rules.admit(op.index, op.kind, process, &op.f)?;
    sink.streamed.ops += 1;
    if let Some(process) = process {
        sink.streamed.note_function(&op.f);
        sink.builder.add_op(process, &op);
    }
    Ok(())
}

/// Bracket depth across lines, outside strings, character literals and comments.
#[derive(Default)]
struct Depth {
    open: i64,
    in_string: bool,
}

impl Depth {
    fn scan(&mut self, line: &str) {
        let mut bytes = line.bytes();
        while let Some(b) = bytes.next() {
            if self.in_string {
                match b {
                    b'\\' => {
                        bytes.next();
                    }
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'\\' => {
                    bytes.next();
                }
                b';' => break,
                b'{' | b'[' | b'(' => self.open += 1,
                b'}' | b']' | b')' => self.open -= 1,
                _ => {}
            }
        }
    }

    /// True when no bracket or string is open (a stray closer counts as closed, so the
    /// reader reports it).
    fn closed(&self) -> bool {
        self.open <= 0 && !self.in_string
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of every golden JSONL history, plus some with values of every shape.
    fn corpus() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut lines = vec![
            r#"{"index":0,"time":1,"type":"ok","process":3,"f":"txn","value":[["send","k",[2,{"a":[1,2.5,true,null]}]],["poll",{"k":[[0,"x\n"],[1,-7],[2,1e3]],"j":[]}]]}"#.to_string(),
            r#"{"index":0,"time":1,"type":"invoke","process":3,"f":"send","value":[["send",-1,"é"],["send",[1],{"b":"\u00e9"}],["send","a\"b",18446744073709551615]]}"#.to_string(),
            r#"{"index":0,"time":1,"type":"ok","process":1,"f":"assign","value":["x",2]}"#.to_string(),
            r#"{"index":0,"time":1,"type":"info","process":"nemesis","f":"kill","value":{"n":[1,2]},"error":"x"}"#.to_string(),
        ];
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        {
            lines.extend(std::fs::read_to_string(path).unwrap().lines().map(str::to_string));
        }
        lines
    }

    /// Cheap deterministic mutations of a line: a byte dropped, doubled or replaced.
    fn mutations(line: &str) -> Vec<Vec<u8>> {
        let bytes = line.as_bytes();
        let mut out = Vec::new();
        let specials = [
            b'"', b'\\', b',', b']', b'[', b'{', b'}', b':', b'-', b'0', b'e', b' ',
        ];
        for at in (0..bytes.len()).step_by(3) {
            let mut dropped = bytes.to_vec();
            dropped.remove(at);
            out.push(dropped);
            let mut doubled = bytes.to_vec();
            doubled.insert(at, bytes[at]);
            out.push(doubled);
            let mut replaced = bytes.to_vec();
            replaced[at] = specials[at % specials.len()];
            out.push(replaced);
        }
        out
    }

    /// What a value says, in words, so that two models' interning can be compared.
    fn described(model: &LogModel, parsed: &Parsed) -> String {
        let sends: Vec<String> = parsed
            .sends
            .iter()
            .map(|(at, k, v)| format!("{at}:{}={}", model.key_name(*k), model.value_text(*v)))
            .collect();
        // The fast path puts records in the model's arena, serde's path in the parsed value.
        let arena = parsed
            .done
            .in_arena
            .iter()
            .map(|(k, start, len)| (*k, &model.records[*start..*start + *len as usize]));
        let reads: Vec<String> = parsed
            .done
            .reads
            .iter()
            .map(|(k, rs)| (*k, rs.as_slice()))
            .chain(arena)
            .map(|(k, rs)| {
                let records: Vec<String> = rs
                    .iter()
                    .map(|(o, v)| format!("{o}:{}", model.value_text(*v)))
                    .collect();
                format!("{}={}", model.key_name(k), records.join(","))
            })
            .collect();
        let assigned = parsed.done.assigned.as_ref().map(|keys| {
            keys.iter()
                .map(|k| model.key_name(*k).to_string())
                .collect::<Vec<_>>()
        });
        format!(
            "sends {sends:?} offsets {:?} reads {reads:?} assigned {assigned:?} values {:?}",
            parsed.done.offsets, model.values
        )
    }

    #[test]
    fn the_fast_path_reads_every_line_as_serde_does_or_leaves_it_to_serde() {
        let (mut compared, mut fast_fields) = (0, 0);
        for line in corpus() {
            let mut variants = vec![line.as_bytes().to_vec()];
            variants.extend(mutations(&line));
            for bytes in variants {
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                let slow: Option<Line> = serde_json::from_str(text).ok();
                let mut walked = (LogModel::default(), Parsed::default());
                let Some(fast) = jsonl::line(&bytes, &mut walked.0, &mut walked.1) else {
                    continue;
                };
                fast_fields += 1;
                let slow = slow.unwrap_or_else(|| panic!("fast path read a line serde refuses: {text}"));
                assert_eq!(
                    (fast.index, fast.time, fast.kind, fast.process, fast.f),
                    (slow.index, slow.time, slow.kind, slow.process.0, slow.f.as_ref()),
                    "{text}"
                );
                assert_eq!(fast.value, slow.value.map(|r| r.get().as_bytes()), "{text}");
                let Some(raw) = fast.value else { continue };
                if fast.walked {
                    let mut slow_model = LogModel::default();
                    let mut slow_parsed = Parsed::default();
                    let invoke = fast.kind == OpType::Invoke;
                    parse_value(
                        std::str::from_utf8(raw).unwrap(),
                        invoke,
                        fast.f,
                        &mut slow_model,
                        &mut slow_parsed,
                    )
                    .unwrap_or_else(|e| panic!("fast path walked a value serde refuses ({e}): {text}"));
                    assert_eq!(
                        described(&walked.0, &walked.1),
                        described(&slow_model, &slow_parsed),
                        "{text}"
                    );
                }
                for invoke in [true, false] {
                    let (mut fast_model, mut slow_model) = (LogModel::default(), LogModel::default());
                    let (mut fast_parsed, mut slow_parsed) = (Parsed::default(), Parsed::default());
                    let went = if invoke {
                        jsonl::invocation(raw, &mut fast_model, &mut fast_parsed.sends)
                    } else {
                        jsonl::completion(raw, &mut fast_model, &mut fast_parsed.done)
                    };
                    if went.is_none() {
                        continue;
                    }
                    let raw = std::str::from_utf8(raw).unwrap();
                    parse_value(raw, invoke, fast.f, &mut slow_model, &mut slow_parsed)
                        .unwrap_or_else(|e| panic!("fast path walked a value serde refuses ({e}): {text}"));
                    if ["assign", "subscribe"].contains(&fast.f) && !invoke {
                        continue;
                    }
                    assert_eq!(
                        described(&fast_model, &fast_parsed),
                        described(&slow_model, &slow_parsed),
                        "{text}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(
            fast_fields > 1_000 && compared > 1_000,
            "{fast_fields} lines, {compared} values compared"
        );
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    /// A reader's buffer ends anywhere in a line: reading through buffers of every small
    /// size gives what one big buffer gives, report and errors alike (line numbers too).
    #[test]
    fn lines_split_across_buffer_refills_read_as_whole_lines() {
        let good = concat!(
            r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"send","value":[["send","x",1]]}"#,
            "\n\n",
            r#"{"index":1,"time":5,"type":"ok","process":0,"f":"send","value":[["send","x",[0,1]]]}"#,
            "\n",
            r#"{"index":2,"time":6,"type":"invoke","process":1,"f":"final-poll","value":[["poll"]]}"#,
            "\n",
            r#"{"index":3,"time":9,"type":"ok","process":1,"f":"final-poll","value":[["poll",{"x":[[0,2]]}]]}"#,
        );
        let bad = good.replace(r#""index":2,"#, r#""index":2,,"#);
        let read = |text: &str, capacity: usize| {
            let reader = std::io::BufReader::with_capacity(capacity, text.as_bytes());
            match read_log(reader, Format::Jsonl) {
                Ok((model, streamed)) => {
                    let report = crate::log::model_analysis(&model, &[]);
                    Ok((streamed.ops, report.summary()))
                }
                Err(e) => Err(e.to_string()),
            }
        };
        let whole = read(good, 1 << 20).unwrap();
        assert_eq!(whole.0, 4);
        assert!(
            whole.1.contains("lost 1") && whole.1.contains("unexpected 1"),
            "{}",
            whole.1
        );
        let refused = read(&bad, 1 << 20).unwrap_err();
        assert!(refused.starts_with("line 4:"), "{refused}");
        for capacity in 1..64 {
            assert_eq!(read(good, capacity), Ok(whole.clone()), "capacity {capacity}");
            assert_eq!(read(&bad, capacity), Err(refused.clone()), "capacity {capacity}");
        }
    }

    /// The same for EDN, with a form spread over lines and bytes that are not UTF-8.
    #[test]
    fn edn_lines_split_across_buffer_refills_read_as_whole_lines() {
        let good = "{:index 0, :time 0, :type :invoke, :process 0, :f :send, :value [[:send :x 1]]}\n\n\
            {:index 1, :time 5, :type :ok, :process 0, :f :send, :value [[:send :x [0 1]]]} ; sent\n\
            {:index 2, :time 6, :type :invoke, :process 1,\n :f :final-poll,\n :value [[:poll]]}\n\
            {:index 3, :time 9, :type :ok, :process 1, :f :final-poll, :value [[:poll {:x [[0 2]]}]]}";
        let read = |text: &[u8], capacity: usize| {
            let reader = std::io::BufReader::with_capacity(capacity, text);
            match read_log(reader, Format::Edn) {
                Ok((model, streamed)) => {
                    let report = crate::log::model_analysis(&model, &[]);
                    Ok((streamed.ops, report.summary()))
                }
                Err(e) => Err(e.to_string()),
            }
        };
        let whole = read(good.as_bytes(), 1 << 20).unwrap();
        assert_eq!(whole.0, 4);
        assert!(
            whole.1.contains("lost 1") && whole.1.contains("unexpected 1"),
            "{}",
            whole.1
        );
        let mut not_utf8 = good.as_bytes().to_vec();
        let at = good.find("; sent").unwrap() + 3;
        not_utf8[at] = 0xff;
        let unclosed = good.replace(
            ":f :final-poll,\n :value [[:poll]]}",
            ":f :final-poll,\n :value [[:poll]]",
        );
        let refused = [
            (not_utf8, "line 3: cannot read as UTF-8 text"),
            (unclosed.into_bytes(), "line 7: unexpected end of input"),
        ];
        for (bad, says) in &refused {
            let error = read(bad, 1 << 20).unwrap_err();
            assert!(error.starts_with(says), "{error}");
        }
        for capacity in 1..64 {
            assert_eq!(
                read(good.as_bytes(), capacity),
                Ok(whole.clone()),
                "capacity {capacity}"
            );
            for (bad, _) in &refused {
                assert_eq!(
                    read(bad, capacity).unwrap_err(),
                    read(bad, 1 << 20).unwrap_err(),
                    "capacity {capacity}"
                );
            }
        }
    }
}

#[cfg(test)]
mod edn_tests {
    use super::*;
    use crate::history::History;

    /// What a report says, without the order its witnesses came in.
    fn summary(report: &crate::LogReport) -> String {
        let anomalies: Vec<(String, usize)> = report
            .anomalies
            .iter()
            .map(|(n, c)| (n.clone(), c.count))
            .collect();
        format!(
            "{:?} {} {} {} {} {} {} {} {:?} unseen {}",
            report.valid,
            report.send_count,
            report.acknowledged_count,
            report.lost_count,
            report.dirty_read_count,
            report.inconsistent_offset_count,
            report.duplicate_count,
            report.unexpected_count,
            anomalies,
            report.unseen.count
        )
    }

    #[test]
    fn edn_read_fast_or_in_full_gives_the_same_report_or_an_error_both_ways() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let (mut agreed, mut refused) = (0, 0);
        for path in names
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "edn"))
        {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let mut variants = vec![text.clone()];
            let specials = [
                "", "{", "}", ":", "#{", "nil", "1.5", "\\\"", " ", "[", ";", "-", ":x 1",
            ];
            for (i, line) in lines.iter().enumerate() {
                for (j, cut) in (0..line.len()).step_by(7).enumerate() {
                    if !line.is_char_boundary(cut) {
                        continue;
                    }
                    let mut mutated = lines.clone();
                    let changed = format!(
                        "{}{}{}",
                        &line[..cut],
                        specials[(i + j) % specials.len()],
                        &line[cut..]
                    );
                    mutated[i] = &changed;
                    variants.push(mutated.join("\n"));
                }
            }
            for variant in variants {
                let whole = History::read(variant.as_bytes(), Format::Edn);
                let streamed = read_log(variant.as_bytes(), Format::Edn);
                match (whole, streamed) {
                    (Ok(history), Ok((model, _))) => {
                        let whole = crate::log::log_analysis(&history);
                        let streamed = crate::log::model_analysis(&model, crate::LOG_ALLOWED);
                        assert_eq!(
                            summary(&streamed),
                            summary(&whole),
                            "{}:\n{variant}",
                            path.display()
                        );
                        agreed += 1;
                    }
                    (Err(_), Err(_)) => refused += 1,
                    (whole, streamed) => panic!(
                        "{}: full reader {:?}, streamed {:?}:\n{variant}",
                        path.display(),
                        whole.err(),
                        streamed.err()
                    ),
                }
            }
        }
        assert!(
            agreed > 500 && refused > 100,
            "{agreed} agreed, {refused} refused"
        );
    }
}
