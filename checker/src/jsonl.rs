//! The fast path of the JSONL reader: one pass over a line's bytes that validates the JSON
//! it walks and hands the log model what it needs, without serde's visitors or a
//! `serde_json::Value` per field. It gives up (`None`) on anything it does not handle the
//! way serde would, such as an escaped string where a name or key is read, a missing
//! field, or malformed JSON, and the reader then parses the line with serde, which decides.
//! So the fast path changes speed only, never a verdict or an error message; the tests
//! below compare both paths on every line of a corpus and of its mutations.

use serde_json::Value;
use smallvec::SmallVec;

use crate::history::OpType;
use crate::model::{Completed, KeyId, LogModel, ValueId};
use crate::stream::Parsed;

/// Deepest nesting walked here; deeper values go to serde, which has its own limit.
const DEPTH_MAX: usize = 100;

/// The fields of one line. `value` is the raw JSON of the op's value (`None` for null or
/// none); `walked` says whether [`line`] already read it into the model.
#[derive(Debug, PartialEq)]
pub(crate) struct Fields<'a> {
    pub index: u64,
    pub time: u64,
    pub kind: OpType,
    /// `None` for a named process.
    pub process: Option<u64>,
    pub f: &'a str,
    pub value: Option<&'a [u8]>,
    pub walked: bool,
}

/// Reads a line's fields and, in the same pass, a client operation's value into `model`
/// and `out` (when its type, process and function come before it, as tumult writes them;
/// an assign's or subscribe's value is left to serde). `None` leaves the line to serde
/// (anything this path has interned meanwhile, serde interns the same way).
pub(crate) fn line<'a>(line: &'a [u8], model: &mut LogModel, out: &mut Parsed) -> Option<Fields<'a>> {
    let mut s = Scan { b: line, i: 0 };
    let (mut index, mut time, mut kind, mut process, mut f, mut value) = (None, None, None, None, None, None);
    let mut walked = false;
    let mut first = Seq::default();
    // The layout tumult writes (and the EDN reader rewrites Jepsen's lines to) is read
    // by matching its field names as they come; anything else starts over below.
    if let Some(head) = s.tumult_head() {
        (index, time, kind, process, f) = (
            Some(head.0),
            Some(head.1),
            Some(head.2),
            Some(Some(head.3)),
            Some(head.4),
        );
        first.started = true;
    } else {
        s.i = 0;
        s.enter_object()?.then_some(())?;
    }
    while let Some(key) = s.next_key(&mut first)? {
        // A repeated field is serde's error to report.
        match key {
            b"index" if index.is_none() => index = Some(s.u64()??),
            b"time" if time.is_none() => time = Some(s.u64()??),
            b"type" if kind.is_none() => {
                kind = Some(match s.plain_bytes()? {
                    b"invoke" => OpType::Invoke,
                    b"ok" => OpType::Ok,
                    b"fail" => OpType::Fail,
                    b"info" => OpType::Info,
                    _ => return None,
                })
            }
            b"process" if process.is_none() => {
                process = Some(match s.peek()? {
                    b'"' => {
                        s.plain_str()?;
                        None
                    }
                    _ => Some(s.u64()??),
                })
            }
            b"f" if f.is_none() => f = Some(s.plain_str()?),
            b"value" if value.is_none() => {
                s.peek()?;
                let start = s.i;
                match (kind, process, f) {
                    (Some(kind), Some(Some(_)), Some(f)) if !["assign", "subscribe"].contains(&f) => {
                        if kind == OpType::Invoke {
                            s.invocation(model, &mut out.sends)?;
                        } else {
                            s.completion(model, &mut out.done)?;
                        }
                        walked = true;
                    }
                    _ => {
                        s.raw()?;
                    }
                }
                // null reads as no value, as serde's `Option` does.
                let raw = &line[start..s.i];
                value = Some((raw != b"null").then_some(raw));
            }
            b"index" | b"time" | b"type" | b"process" | b"f" | b"value" => return None,
            _ => {
                s.raw()?;
            }
        }
    }
    s.end()?;
    Some(Fields {
        index: index?,
        time: time?,
        kind: kind?,
        process: process?,
        f: f?,
        value: value.flatten(),
        walked,
    })
}

/// An invocation's sends, read from its value alone (see [`line`]).
pub(crate) fn invocation(
    value: &[u8],
    model: &mut LogModel,
    sends: &mut SmallVec<[(u32, KeyId, ValueId); 1]>,
) -> Option<()> {
    let mut s = Scan { b: value, i: 0 };
    s.invocation(model, sends)?;
    s.end()
}

/// What a completion's value says, read from the value alone (see [`line`]).
pub(crate) fn completion(value: &[u8], model: &mut LogModel, done: &mut Completed) -> Option<()> {
    let mut s = Scan { b: value, i: 0 };
    s.completion(model, done)?;
    s.end()
}

/// The micro-op names the model reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Name {
    Send,
    Poll,
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

/// Where a walk is inside one array or object.
#[derive(Default)]
struct Seq {
    /// An element has been read (the next needs a comma first).
    started: bool,
    /// The closing bracket has been read.
    ended: bool,
}

impl<'a> Scan<'a> {
    /// An invocation's sends: (micro-op position, key, value). Keys and values are
    /// interned in the order serde's path interns them.
    fn invocation(
        &mut self,
        model: &mut LogModel,
        sends: &mut SmallVec<[(u32, KeyId, ValueId); 1]>,
    ) -> Option<()> {
        let s = self;
        if s.enter_array()? {
            let (mut first, mut at) = (Seq::default(), 0u32);
            while s.next_element(&mut first)? {
                if s.enter_array()? {
                    let mut inner = Seq::default();
                    if s.next_element(&mut inner)? && s.name()? == Some(Name::Send) {
                        let key = if s.next_element(&mut inner)? {
                            Some(s.raw()?)
                        } else {
                            None
                        };
                        let val = match key {
                            Some(_) if s.next_element(&mut inner)? => Some(s.raw()?),
                            _ => None,
                        };
                        if let (Some(key), Some(val)) = (key, val) {
                            let key = intern_key(key, model)?;
                            let val = intern_value(val, model)?;
                            sends.push((at, key, val));
                        }
                    }
                    s.rest(&mut inner)?;
                }
                at += 1;
            }
        }
        Some(())
    }

    /// What a completion's value says: the offsets of its sends and its polls' records.
    fn completion(&mut self, model: &mut LogModel, done: &mut Completed) -> Option<()> {
        let s = self;
        if s.enter_array()? {
            let (mut first, mut at) = (Seq::default(), 0u32);
            while s.next_element(&mut first)? {
                if s.enter_array()? {
                    let mut inner = Seq::default();
                    let name = if s.next_element(&mut inner)? {
                        s.name()?
                    } else {
                        None
                    };
                    match name {
                        // ["send", key, [offset, value]]: only the offset matters here.
                        Some(Name::Send) if s.next_element(&mut inner)? => {
                            s.raw()?;
                            if s.next_element(&mut inner)? && s.enter_array()? {
                                let mut pair = Seq::default();
                                if s.next_element(&mut pair)? {
                                    if let Some(offset) = s.u64()? {
                                        done.offsets.push((at, offset));
                                    }
                                }
                                s.rest(&mut pair)?;
                            }
                        }
                        Some(Name::Poll) if s.next_element(&mut inner)? => {
                            s.poll(model, &mut done.in_arena)?
                        }
                        _ => {}
                    }
                    s.rest(&mut inner)?;
                }
                at += 1;
            }
        }
        Some(())
    }

    /// `{"index":N,"time":N,"type":"T","process":N,"f":"F"` exactly, with no space, as
    /// tumult writes it: the fields before the value, read without a key loop. `None`
    /// where the line differs anywhere (the caller then reads it field by field).
    fn tumult_head(&mut self) -> Option<(u64, u64, OpType, u64, &'a str)> {
        self.literal(b"{\"index\":")?;
        let index = self.int_fast()?;
        self.literal(b",\"time\":")?;
        let time = self.int_fast()?;
        self.literal(b",\"type\":\"")?;
        let kind = if self.literal(b"invoke\"").is_some() {
            OpType::Invoke
        } else if self.literal(b"ok\"").is_some() {
            OpType::Ok
        } else if self.literal(b"fail\"").is_some() {
            OpType::Fail
        } else {
            self.literal(b"info\"")?;
            OpType::Info
        };
        self.literal(b",\"process\":")?;
        let process = self.int_fast()?;
        self.literal(b",\"f\":")?;
        let f = self.plain_str()?;
        Some((index, time, kind, process, f))
    }

    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.b.get(self.i) {
            self.i += 1;
        }
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Nothing but whitespace is left.
    fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// If the next value is an array, enters it (true); else skips the value (false).
    fn enter_array(&mut self) -> Option<bool> {
        self.enter(b'[')
    }

    /// If the next value is an object, enters it (true); else skips the value (false).
    fn enter_object(&mut self) -> Option<bool> {
        self.enter(b'{')
    }

    fn enter(&mut self, open: u8) -> Option<bool> {
        if self.peek()? == open {
            self.i += 1;
            return Some(true);
        }
        self.raw()?;
        Some(false)
    }

    /// Inside an array: true when an element follows, false (the array consumed) at its end.
    fn next_element(&mut self, seq: &mut Seq) -> Option<bool> {
        self.next(seq, b']')
    }

    fn next(&mut self, seq: &mut Seq, close: u8) -> Option<bool> {
        if seq.ended {
            return Some(false);
        }
        let c = self.peek()?;
        if c == close {
            self.i += 1;
            seq.ended = true;
            return Some(false);
        }
        if std::mem::replace(&mut seq.started, true) {
            if c != b',' {
                return None;
            }
            self.i += 1;
        }
        Some(true)
    }

    /// Inside an object: the next key (its colon consumed), or `None` at its end; a key with
    /// escapes gives up.
    fn next_key(&mut self, seq: &mut Seq) -> Option<Option<&'a [u8]>> {
        if !self.next(seq, b'}')? {
            return Some(None);
        }
        let key = self.plain_bytes()?;
        self.eat(b':')?;
        Some(Some(key))
    }

    /// Skips the array's remaining elements and its end.
    fn rest(&mut self, seq: &mut Seq) -> Option<()> {
        while self.next_element(seq)? {
            self.raw()?;
        }
        Some(())
    }

    /// A string without escapes, as its text.
    fn plain_str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).ok()
    }

    /// A string without escapes, as its bytes (to compare with a name, or to check as text).
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        Some(&self.b[start..self.i - 1])
    }

    /// A micro-op's name: `send` or `poll`, or `None` for any other value (skipped).
    fn name(&mut self) -> Option<Option<Name>> {
        if self.peek()? != b'"' {
            self.raw()?;
            return Some(None);
        }
        Some(match self.plain_str()? {
            "send" => Some(Name::Send),
            "poll" => Some(Name::Poll),
            _ => None,
        })
    }

    /// A number that is a plain non-negative integer as `Some`, any other value as `None`
    /// (skipped), as serde's `as_u64` sees it.
    fn u64(&mut self) -> Option<Option<u64>> {
        if let Some(n) = self.int_fast() {
            return Some(Some(n));
        }
        let raw = self.raw()?;
        Some(digits(raw))
    }

    /// A plain non-negative integer followed by a delimiter, read without going through
    /// [`Scan::raw`]; `None` (nothing consumed) for anything else.
    fn int_fast(&mut self) -> Option<u64> {
        self.peek()?;
        let rest = &self.b[self.i..];
        // 19 digits cannot overflow; a 20th is checked; a longer run is left to the full
        // path.
        let (mut n, mut len) = (0u64, 0usize);
        while let Some(&d @ b'0'..=b'9') = rest.get(len) {
            if len == 19 {
                break;
            }
            n = n * 10 + u64::from(d - b'0');
            len += 1;
        }
        if len == 0 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        if len == 19 && rest.get(19).is_some_and(u8::is_ascii_digit) {
            len = 20;
            n = digits(&rest[..len])?;
        }
        match rest.get(len) {
            Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') | None => {
                self.i += len;
                Some(n)
            }
            _ => None,
        }
    }

    /// Reads and interns a value.
    fn value_id(&mut self, model: &mut LogModel) -> Option<ValueId> {
        let at = self.i;
        match self.int_fast().map(i64::try_from) {
            Some(Ok(n)) => Some(model.int_value(n)),
            _ => {
                self.i = at;
                intern_value(self.raw()?, model)
            }
        }
    }

    /// `{key: [[offset, value], ...], ...}`; anything else is skipped.
    /// The records go straight to the model's arena (see [`Completed::in_arena`]).
    fn poll(&mut self, model: &mut LogModel, reads: &mut SmallVec<[(KeyId, usize, u32); 2]>) -> Option<()> {
        if !self.enter_object()? {
            return Some(());
        }
        let mut first = Seq::default();
        while let Some(key) = self.next_key(&mut first)? {
            let key = model.key_named(std::str::from_utf8(key).ok()?);
            let start = model.records.len();
            if self.enter_array()? {
                let mut each = Seq::default();
                while self.next_element(&mut each)? {
                    // Most records are `[offset,value]`, two plain integers: read at once.
                    if let Some((offset, value)) = self.plain_record() {
                        let value = model.read_int_value(key, offset, value);
                        model.records.push((offset, value));
                        continue;
                    }
                    if !self.enter_array()? {
                        continue;
                    }
                    let mut pair = Seq::default();
                    let offset = if self.next_element(&mut pair)? {
                        self.u64()?
                    } else {
                        None
                    };
                    if let Some(offset) = offset {
                        if self.next_element(&mut pair)? {
                            let value = self.value_id(model)?;
                            model.records.push((offset, value));
                        }
                    }
                    self.rest(&mut pair)?;
                }
            }
            reads.push((key, start, (model.records.len() - start) as u32));
        }
        Some(())
    }

    /// `[offset,value]` exactly, both plain non-negative integers of at most 18 digits
    /// (so both fit), with no space: read as the general walk would read it; `None`, with
    /// nothing consumed, for anything else.
    fn plain_record(&mut self) -> Option<(u64, i64)> {
        let b = self.b;
        let mut i = self.i;
        let integer = |i: &mut usize, end: u8| {
            let (mut n, start) = (0u64, *i);
            while let Some(&d @ b'0'..=b'9') = b.get(*i) {
                n = n * 10 + u64::from(d - b'0');
                *i += 1;
                if *i - start > 18 {
                    return None;
                }
            }
            let len = *i - start;
            if len == 0 || (len > 1 && b[start] == b'0') || b.get(*i) != Some(&end) {
                return None;
            }
            *i += 1;
            Some(n)
        };
        if b.get(i) != Some(&b'[') {
            return None;
        }
        i += 1;
        let offset = integer(&mut i, b',')?;
        let value = integer(&mut i, b']')?;
        self.i = i;
        Some((offset, value as i64))
    }

    /// Skips one value, checking its grammar, and returns its text.
    fn raw(&mut self) -> Option<&'a [u8]> {
        self.peek()?;
        let start = self.i;
        // Open containers: true for an object.
        let mut open: SmallVec<[bool; 16]> = SmallVec::new();
        loop {
            match self.peek()? {
                b'[' => {
                    self.i += 1;
                    if self.peek()? != b']' {
                        open.push(false);
                        if open.len() > DEPTH_MAX {
                            return None;
                        }
                        continue;
                    }
                    self.i += 1;
                }
                b'{' => {
                    self.i += 1;
                    if self.peek()? != b'}' {
                        open.push(true);
                        if open.len() > DEPTH_MAX {
                            return None;
                        }
                        self.string()?;
                        self.eat(b':')?;
                        continue;
                    }
                    self.i += 1;
                }
                b'"' => self.string()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a value: close what ends here, or step to the next element.
            loop {
                let Some(&object) = open.last() else {
                    return Some(&self.b[start..self.i]);
                };
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if object {
                            self.string()?;
                            self.eat(b':')?;
                        }
                        break;
                    }
                    b']' if !object => {
                        self.i += 1;
                        open.pop();
                    }
                    b'}' if object => {
                        self.i += 1;
                        open.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then(|| self.i += word.len())
    }

    /// A string, escapes and UTF-8 checked (the line as a whole is not: outside strings,
    /// only ASCII is accepted).
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let start = self.i;
        let mut ascii = true;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    if !ascii {
                        std::str::from_utf8(&self.b[start..self.i]).ok()?;
                    }
                    self.i += 1;
                    return Some(());
                }
                0x80.. => {
                    ascii = false;
                    self.i += 1;
                }
                b'\\' => {
                    self.i += 1;
                    match *self.b.get(self.i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            // Lone surrogates are serde's to judge.
                            if matches!(hex[0], b'd' | b'D') {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    /// A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let digits = |i: &mut usize| {
            let start = *i;
            while let Some(b'0'..=b'9') = b.get(*i) {
                *i += 1;
            }
            (*i > start).then_some(())
        };
        if b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => digits(&mut self.i)?,
            _ => return None,
        }
        if b.get(self.i) == Some(&b'.') {
            self.i += 1;
            digits(&mut self.i)?;
        }
        if let Some(b'e' | b'E') = b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = b.get(self.i) {
                self.i += 1;
            }
            digits(&mut self.i)?;
        }
        Some(())
    }
}

/// A plain run of digits (what a JSON non-negative integer is) as a u64.
fn digits(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    raw.iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Interns a value from its JSON text: an integer directly, anything else by its
/// canonical text, as [`LogModel::value`] does.
fn intern_value(raw: &[u8], model: &mut LogModel) -> Option<ValueId> {
    let (negative, magnitude) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    // (-0 is left to serde.)
    if let Some(n) = digits(magnitude).and_then(|n| i64::try_from(n).ok()) {
        if !(negative && n == 0) {
            return Some(model.int_value(if negative { -n } else { n }));
        }
    }
    let value: Value = serde_json::from_slice(raw).ok()?;
    Some(model.value(&value))
}

/// Interns a send's key from its JSON text, as [`LogModel::key`] does: a string is its own
/// name, an integer its digits, anything else its canonical text.
fn intern_key(raw: &[u8], model: &mut LogModel) -> Option<KeyId> {
    if digits(raw).is_some() && (raw.len() == 1 || raw[0] != b'0') {
        return Some(model.key_named(std::str::from_utf8(raw).ok()?));
    }
    if let [b'"', inner @ .., b'"'] = raw {
        if !inner.contains(&b'\\') {
            return Some(model.key_named(std::str::from_utf8(inner).ok()?));
        }
    }
    let key: Value = serde_json::from_slice(raw).ok()?;
    Some(model.key(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_of_a_line_are_read_in_any_order_and_give_up_on_the_unusual() {
        let mut model = LogModel::default();
        let mut out = Parsed::default();
        let text = br#"{"index":3,"time":40,"type":"ok","process":2,"f":"poll","value":[["poll",{}]]}"#;
        let f = line(text, &mut model, &mut out).unwrap();
        assert!(f.walked);
        assert_eq!(
            (f.index, f.time, f.kind, f.process, f.f),
            (3, 40, OpType::Ok, Some(2), "poll")
        );
        assert_eq!(f.value, Some(&br#"[["poll",{}]]"#[..]));
        let reordered =
            br#" { "f" : "kill", "process":"nemesis", "value":null, "type":"info","time":1,"index":0 } "#;
        let f = line(reordered, &mut model, &mut out).unwrap();
        assert_eq!((f.process, f.value, f.f, f.walked), (None, None, "kill", false));
        for unusual in [
            &br#"{"index":0,"time":1,"type":"ok","process":2,"f":"p\u006fll"}"#[..],
            br#"{"index":0,"time":1,"type":"ok","process":2}"#,
            br#"{"index":0,"index":0,"time":1,"type":"ok","process":2,"f":"x"}"#,
            br#"{"index":0,"time":1.5,"type":"ok","process":2,"f":"x"}"#,
            br#"{"index":0,"time":1,"type":"ok","process":2,"f":"x"} x"#,
            br#"{"index":0,"time":1,"type":"ok","process":2,"f":"x","value":[1,]}"#,
            br#"{"index":0,"time":1,"type":"ok","process":2,"f":"x","value":01}"#,
        ] {
            assert_eq!(
                line(unusual, &mut model, &mut out),
                None,
                "{}",
                String::from_utf8_lossy(unusual)
            );
        }
    }

    #[test]
    fn values_walk_as_serde_reads_them() {
        let mut model = LogModel::default();
        let mut sends = SmallVec::new();
        invocation(
            br#"[["send","x",1],["poll"],["send",7,"a\"b"],["send","y"],5]"#,
            &mut model,
            &mut sends,
        )
        .unwrap();
        let named: Vec<(u32, &str, String)> = sends
            .iter()
            .map(|(at, k, v)| (*at, model.key_name(*k), model.value_text(*v).into_owned()))
            .collect();
        let text = |t: &str| t.to_string();
        assert_eq!(named, vec![(0, "x", text("1")), (2, "7", text(r#""a\"b""#))]);
        let mut done = Completed::default();
        completion(
            br#"[["send","x",[4,1]],["poll",{"x":[[0,1],[1,-2],["z",3],[2]],"y":5}],["send","y",2]]"#,
            &mut model,
            &mut done,
        )
        .unwrap();
        assert_eq!(done.offsets.to_vec(), vec![(0, 4)]);
        let reads: Vec<(&str, Vec<(u64, String)>)> = done
            .in_arena
            .iter()
            .map(|(k, start, len)| {
                let records = model.records[*start..*start + *len as usize]
                    .iter()
                    .map(|(o, v)| (*o, model.value_text(*v).into_owned()))
                    .collect();
                (model.key_name(*k), records)
            })
            .collect();
        assert_eq!(
            reads,
            vec![("x", vec![(0, text("1")), (1, text("-2"))]), ("y", vec![])]
        );
    }
}
