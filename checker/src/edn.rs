//! Jepsen's `history.edn`: one EDN map per operation (plain, or tagged
//! `#jepsen.history.Op{...}`), read into the same [`Op`]s as the JSONL form.
//!
//! Only what histories use is supported: maps, vectors, lists, sets, keywords, symbols,
//! strings, integers (with an optional `N`), floats (with an optional `M`), `nil`,
//! booleans, characters, comments, `#_` discards and tagged literals (the tag is dropped).
//! Keywords become strings without their colon, so `:send` reads as `"send"` and a map key
//! `:x` or `2` becomes the JSON key `"x"` or `"2"`, exactly as the JSONL form spells them.
//! Nothing here panics on malformed input: every error names its line.

use std::collections::BTreeSet;

use serde_json::{Map, Number, Value};
use smallvec::SmallVec;

use crate::history::{HistoryError, Op, OpType, Process};

/// Nesting deeper than this is refused rather than risking the stack.
const DEPTH_MAX: usize = 256;

/// Reads every top-level form of `text` as an operation; a form without an `:index` takes
/// its position, counted from `first_position`.
pub fn read_ops(text: &str, first_position: u64) -> Result<(Vec<Op>, Vec<usize>), HistoryError> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
    };
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    loop {
        reader.skip_space(0)?;
        if reader.at >= reader.bytes.len() {
            break;
        }
        let line = reader.line;
        let form = reader.form(0)?;
        // A history written as one vector of ops is read as its elements.
        let forms = match form {
            Value::Array(items) if items.iter().all(Value::is_object) => items,
            other => vec![other],
        };
        for form in forms {
            let index = first_position + ops.len() as u64;
            let op = op_of(form, index).map_err(|message| HistoryError { line, message })?;
            ops.push(op);
            lines.push(line);
        }
    }
    Ok((ops, lines))
}

/// Builds an [`Op`] from one EDN map; a missing `:index` is the op's position.
fn op_of(form: Value, position: u64) -> Result<Op, String> {
    let Value::Object(mut map) = form else {
        return Err("not an operation: expected a map".into());
    };
    let number = |map: &Map<String, Value>, key: &str| -> Result<Option<u64>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!(":{key} must be a non-negative integer, not {v}")),
        }
    };
    let index = number(&map, "index")?.unwrap_or(position);
    let time = number(&map, "time")?.unwrap_or(0);
    let kind = match map.get("type").and_then(Value::as_str) {
        Some("invoke") => OpType::Invoke,
        Some("ok") => OpType::Ok,
        Some("fail") => OpType::Fail,
        Some("info") => OpType::Info,
        Some(other) => return Err(format!("unknown :type {other}")),
        None => return Err("missing :type".into()),
    };
    let process = match map.get("process") {
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Process::Client)
            .ok_or_else(|| format!(":process {n} is not a process number"))?,
        Some(Value::String(name)) => Process::Named(name.clone()),
        Some(other) => return Err(format!(":process must be a number or a keyword, not {other}")),
        None => return Err("missing :process".into()),
    };
    let f = match map.get("f") {
        Some(Value::String(f)) => f.clone(),
        Some(other) => return Err(format!(":f must be a keyword, not {other}")),
        None => return Err("missing :f".into()),
    };
    let value = map.remove("value").unwrap_or(Value::Null);
    let error = map.remove("error").filter(|e| !e.is_null());
    Ok(Op {
        index,
        time,
        kind,
        process,
        f,
        value,
        error,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
}

impl Reader<'_> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, HistoryError> {
        Err(HistoryError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips whitespace, commas, comments and `#_` discards with the form each discards
    /// (so a discard before a closing bracket leaves nothing behind, as in Clojure).
    fn skip_space(&mut self, depth: usize) -> Result<(), HistoryError> {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b',' => {
                    self.bump();
                }
                b';' => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.bump();
                    }
                }
                b'#' if self.bytes.get(self.at + 1) == Some(&b'_') => {
                    self.at += 2;
                    if matches!(self.peek_past_space(), None | Some(b']' | b')' | b'}')) {
                        return self.fail("a '#_' discard with no form to discard");
                    }
                    self.form(depth + 1)?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// The next byte after plain whitespace and commas, without consuming anything.
    fn peek_past_space(&self) -> Option<u8> {
        self.bytes[self.at..]
            .iter()
            .copied()
            .find(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b','))
    }

    /// A form and what tells it apart from others as a map key or set element: a keyword
    /// and a string of the same name are different keys.
    fn keyed_form(&mut self, depth: usize) -> Result<(Value, String), HistoryError> {
        self.skip_space(depth)?;
        let keyword = self.peek() == Some(b':');
        let value = self.form(depth)?;
        // Written as EDN would write it, for messages: `:type`, `"type"`, `1`.
        let identity = match &value {
            Value::String(name) if keyword => format!(":{name}"),
            other => other.to_string(),
        };
        Ok((value, identity))
    }

    fn form(&mut self, depth: usize) -> Result<Value, HistoryError> {
        if depth > DEPTH_MAX {
            return self.fail(format!("nested deeper than {DEPTH_MAX}"));
        }
        self.skip_space(depth)?;
        let Some(c) = self.peek() else {
            return self.fail("unexpected end of input");
        };
        match c {
            b'{' => {
                let opened = self.line;
                self.bump();
                self.map(depth, opened)
            }
            b'[' | b'(' => {
                let opened = self.line;
                self.bump();
                let close = if c == b'[' { b']' } else { b')' };
                Ok(Value::Array(self.sequence(close, depth, opened)?))
            }
            b'"' => {
                let opened = self.line;
                self.bump();
                self.string(opened).map(Value::String)
            }
            b':' => {
                self.bump();
                let name = self.token();
                if name.is_empty() {
                    return self.fail("a ':' without a keyword name");
                }
                // `:nemesis` and `:jepsen.foo/bar` alike: keep the name, drop the colon.
                Ok(Value::String(name.to_string()))
            }
            b'\\' => {
                self.bump();
                let name = self.token().to_string();
                let ch = match name.as_str() {
                    "newline" => "\n".to_string(),
                    "space" => " ".to_string(),
                    "tab" => "\t".to_string(),
                    other if other.chars().count() == 1 => other.to_string(),
                    "" => match self.bump() {
                        Some(b) => (b as char).to_string(),
                        None => return self.fail("a '\\' at the end of input"),
                    },
                    other => return self.fail(format!("unknown character literal \\{other}")),
                };
                Ok(Value::String(ch))
            }
            b'#' => {
                self.bump();
                match self.peek() {
                    Some(b'{') => {
                        let opened = self.line;
                        self.bump();
                        Ok(Value::Array(self.sequence(b'}', depth, opened)?))
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        // A tagged literal such as #jepsen.history.Op{...} or #inst "...":
                        // the tag says how Clojure would build it; the form is the data.
                        self.token();
                        self.form(depth + 1)
                    }
                    _ => self.fail("unsupported '#' dispatch"),
                }
            }
            b']' | b')' | b'}' => self.fail(format!("unexpected '{}'", c as char)),
            _ => self.atom(),
        }
    }

    /// An error about a collection that opened on line `opened` and never closed.
    fn unclosed<T>(&self, what: &str, opened: usize) -> Result<T, HistoryError> {
        Err(HistoryError {
            line: opened,
            message: format!("unclosed {what} (the input ends before it does)"),
        })
    }

    /// The items of a vector, list or (closing with '}') set; a set refuses an element it
    /// already holds, as Clojure's reader does.
    fn sequence(&mut self, close: u8, depth: usize, opened: usize) -> Result<Vec<Value>, HistoryError> {
        let mut items = Vec::new();
        let mut set_elements = BTreeSet::new();
        loop {
            self.skip_space(depth + 1)?;
            match self.peek() {
                None => return self.unclosed(&format!("collection: expected '{}'", close as char), opened),
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) if close == b'}' => {
                    let (item, identity) = self.keyed_form(depth + 1)?;
                    if set_elements.contains(&identity) {
                        return self.fail(format!("duplicate set element {identity}"));
                    }
                    set_elements.insert(identity);
                    items.push(item);
                }
                Some(_) => items.push(self.form(depth + 1)?),
            }
        }
    }

    fn map(&mut self, depth: usize, opened: usize) -> Result<Value, HistoryError> {
        let mut map = Map::new();
        let mut keys = BTreeSet::new();
        loop {
            self.skip_space(depth + 1)?;
            match self.peek() {
                None => return self.unclosed("map", opened),
                Some(b'}') => {
                    self.bump();
                    return Ok(Value::Object(map));
                }
                Some(_) => {
                    let (key, identity) = self.keyed_form(depth + 1)?;
                    // Clojure's reader refuses a map that names a key twice: which value
                    // was meant cannot be known.
                    if keys.contains(&identity) {
                        return self.fail(format!("duplicate map key {identity}"));
                    }
                    keys.insert(identity);
                    let key = match key {
                        Value::String(s) => s,
                        Value::Null => "nil".to_string(),
                        other => other.to_string(),
                    };
                    self.skip_space(depth + 1)?;
                    if self.peek() == Some(b'}') {
                        return self.fail(format!("map key {key} has no value"));
                    }
                    let value = self.form(depth + 1)?;
                    map.insert(key, value);
                }
            }
        }
    }

    /// A string whose opening quote was on line `opened`: an unterminated one is reported
    /// there, not at the end of the input.
    fn string(&mut self, opened: usize) -> Result<String, HistoryError> {
        let unterminated = || HistoryError {
            line: opened,
            message: "unterminated string (the input ends before its closing quote)".into(),
        };
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(unterminated()),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'u') => {
                        let hex: Vec<u8> = (0..4).filter_map(|_| self.bump()).collect();
                        let code = std::str::from_utf8(&hex)
                            .ok()
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32);
                        match code {
                            Some(ch) => out.extend_from_slice(ch.to_string().as_bytes()),
                            None => return self.fail("bad \\u escape in string"),
                        }
                    }
                    Some(other) => return self.fail(format!("bad escape \\{} in string", other as char)),
                    None => return Err(unterminated()),
                },
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| self.fail("string is not UTF-8"))
    }

    /// The run of characters that can make up a symbol, number or keyword name.
    fn token(&mut self) -> &str {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace()
                || matches!(c, b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';')
            {
                break;
            }
            self.bump();
        }
        std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("")
    }

    fn atom(&mut self) -> Result<Value, HistoryError> {
        let token = self.token().to_string();
        match token.as_str() {
            "" => self.fail(format!(
                "unexpected character '{}'",
                self.peek().map_or('?', char::from)
            )),
            "nil" => Ok(Value::Null),
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            t if t.starts_with(|c: char| c.is_ascii_digit())
                || (t.len() > 1
                    && t.starts_with(['-', '+'])
                    && t[1..].starts_with(|c: char| c.is_ascii_digit())) =>
            {
                number(t).map_or_else(|| self.fail(format!("bad number {t}")), Ok)
            }
            // A symbol: keep its name.
            t => Ok(Value::String(t.to_string())),
        }
    }
}

fn number(token: &str) -> Option<Value> {
    let digits = token.strip_suffix('N').unwrap_or(token);
    if let Ok(n) = digits.parse::<i64>() {
        return Some(Value::Number(n.into()));
    }
    if let Ok(n) = digits.parse::<u64>() {
        return Some(Value::Number(n.into()));
    }
    let decimal = token.strip_suffix('M').unwrap_or(token);
    decimal
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// Rewrites one line holding one operation map in the common subset of EDN that Jepsen
/// writes (keywords, integers, strings without escapes, nil, booleans, vectors, lists,
/// maps with scalar keys, a `#jepsen.history.Op` tag, a trailing comment) as the JSON line
/// tumult would write for it, so that the JSONL fast path can read it. `None` for anything
/// else (a set, a float, an escape, a duplicate key, ...), which the full reader then reads.
pub(crate) fn line_as_json(line: &[u8], out: &mut Vec<u8>) -> Option<()> {
    translate(line, out, true)
}

/// [`line_as_json`], with the shortcut for the usual fields (`head`) or without.
fn translate(line: &[u8], out: &mut Vec<u8>, head: bool) -> Option<()> {
    /// One open collection: a map (with the keys seen, and whether a value is due) or a
    /// sequence (with its closing bracket).
    enum Open<'a> {
        Map {
            keys: SmallVec<[&'a [u8]; 8]>,
            value_due: bool,
        },
        Seq {
            close: u8,
            items: usize,
        },
    }
    out.clear();
    let mut at = 0;
    let skip = |at: &mut usize| {
        while let Some(c) = line.get(*at) {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b',' => *at += 1,
                b';' => *at = line.len(),
                _ => break,
            }
        }
    };
    skip(&mut at);
    if line[at..].starts_with(b"#jepsen.history.Op{") {
        at += b"#jepsen.history.Op".len();
    }
    if line.get(at) != Some(&b'{') {
        return None;
    }
    let token_end = |from: usize| {
        let mut end = from;
        while let Some(&c) = line.get(end) {
            if c.is_ascii_whitespace()
                || matches!(c, b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';')
            {
                break;
            }
            end += 1;
        }
        end
    };
    // (Inline storage: a line is a handful of small collections, and an allocation per
    // line would cost as much as the rest.)
    let mut stack: SmallVec<[Open; 8]> = SmallVec::new();
    // The fields before the value, in the order and spacing Jepsen and tumult write them,
    // are copied by matching them whole: the loop below then only walks the value.
    if let Some(value_at) = tumult_head(line, at, out).filter(|_| head) {
        at = value_at;
        stack.push(Open::Map {
            keys: [&b"index"[..], b"time", b"type", b"process", b"f", b"value"]
                .into_iter()
                .collect(),
            value_due: true,
        });
    } else {
        out.clear();
    }
    loop {
        skip(&mut at);
        let c = *line.get(at)?;
        if matches!(c, b'}' | b']' | b')') {
            match stack.pop()? {
                Open::Map { value_due: false, .. } if c == b'}' => out.push(b'}'),
                Open::Seq { close, .. } if close == c => out.push(b']'),
                _ => return None,
            }
            at += 1;
            match stack.last_mut() {
                None => break,
                Some(Open::Map { value_due, .. }) => *value_due = false,
                Some(Open::Seq { .. }) => {}
            }
            continue;
        }
        // A form starts: first its separator, and a map key is written as a string.
        let mut is_key = false;
        match stack.last_mut() {
            Some(Open::Map { keys, value_due }) => {
                if *value_due {
                    out.push(b':');
                } else {
                    if !keys.is_empty() {
                        out.push(b',');
                    }
                    is_key = true;
                }
                *value_due = !*value_due;
            }
            Some(Open::Seq { items, .. }) => {
                if *items > 0 {
                    out.push(b',');
                }
                *items += 1;
            }
            None => {}
        }
        let start = at;
        let scalar: &[u8] = match c {
            b'{' | b'[' | b'(' if !is_key => {
                at += 1;
                stack.push(match c {
                    b'{' => Open::Map {
                        keys: SmallVec::new(),
                        value_due: false,
                    },
                    b'[' => Open::Seq {
                        close: b']',
                        items: 0,
                    },
                    _ => Open::Seq {
                        close: b')',
                        items: 0,
                    },
                });
                out.push(if c == b'{' { b'{' } else { b'[' });
                continue;
            }
            b'"' => {
                let close = line[at + 1..].iter().position(|b| *b == b'"')? + at + 1;
                let text = &line[at + 1..close];
                if text.iter().any(|b| *b == b'\\' || *b < 0x20) {
                    return None;
                }
                at = close + 1;
                text
            }
            b':' => {
                at = token_end(at + 1);
                let name = &line[start + 1..at];
                if name.is_empty() || name.contains(&b'\\') {
                    return None;
                }
                name
            }
            _ => {
                at = token_end(at);
                &line[start..at]
            }
        };
        let quoted = matches!(c, b'"' | b':');
        // Unquoted: nil, a boolean, or a plain integer (no sign but '-', no leading zero,
        // no N suffix), written as it is.
        let digits = scalar.strip_prefix(b"-").unwrap_or(scalar);
        let integer = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits.len() == 1 || digits[0] != b'0');
        let word = match scalar {
            _ if quoted => None,
            b"nil" => Some(&b"null"[..]),
            b"true" | b"false" => Some(scalar),
            _ if integer => None,
            _ => return None,
        };
        if is_key {
            // A key is written as the string the full reader names it by (nil as "nil"); a
            // boolean key is left to that reader.
            if !quoted && matches!(scalar, b"true" | b"false") {
                return None;
            }
            if let Some(Open::Map { keys, .. }) = stack.last_mut() {
                if keys.contains(&scalar) {
                    return None;
                }
                keys.push(scalar);
            }
            out.push(b'"');
            out.extend_from_slice(scalar);
            out.push(b'"');
        } else if quoted {
            out.push(b'"');
            out.extend_from_slice(scalar);
            out.push(b'"');
        } else {
            out.extend_from_slice(word.unwrap_or(scalar));
        }
    }
    skip(&mut at);
    (at == line.len()).then_some(())
}

/// `{:index N, :time N, :type :T, :process N, :f :F, :value ` at `at` in `line`, written
/// to `out` as the JSON [`line_as_json`] writes for it, up to and including the `"value"`
/// key; returns where the value starts. `None` (with `out` part-written) where the line
/// differs in any way, even one the full walk would accept.
fn tumult_head(line: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let mut at = at;
    let expect = |at: &mut usize, text: &[u8]| line[*at..].starts_with(text).then(|| *at += text.len());
    // A plain non-negative integer (no leading zero) up to the comma after it.
    let integer = |at: &mut usize, out: &mut Vec<u8>| {
        let digits = line[*at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && line[*at] == b'0') || line.get(*at + digits) != Some(&b',') {
            return None;
        }
        out.extend_from_slice(&line[*at..*at + digits]);
        *at += digits;
        Some(())
    };
    // A keyword's name of lower-case letters and dashes, up to the comma after it.
    let keyword = |at: &mut usize, out: &mut Vec<u8>| {
        let len = line[*at..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase() || **c == b'-')
            .count();
        if len == 0 || line.get(*at + len) != Some(&b',') {
            return None;
        }
        out.push(b'"');
        out.extend_from_slice(&line[*at..*at + len]);
        out.push(b'"');
        *at += len;
        Some(())
    };
    // (EDN's text, the JSON written for it, and whether the value is an integer or a
    // keyword.)
    let fields: [(&[u8], &[u8], bool); 5] = [
        (b"{:index ", b"{\"index\":", true),
        (b", :time ", b",\"time\":", true),
        (b", :type :", b",\"type\":", false),
        (b", :process ", b",\"process\":", true),
        (b", :f :", b",\"f\":", false),
    ];
    for (edn, json, is_integer) in fields {
        expect(&mut at, edn)?;
        out.extend_from_slice(json);
        match is_integer {
            true => integer(&mut at, out)?,
            false => keyword(&mut at, out)?,
        }
    }
    expect(&mut at, b", :value ")?;
    out.extend_from_slice(b",\"value\"");
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortcut_for_the_usual_fields_writes_what_the_walk_writes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut lines: Vec<String> = vec![
            "{:index 0, :time 7, :type :invoke, :process 3, :f :send, :value [[:send 3 1]]}".into(),
            "{:index 12, :time 70, :type :ok, :process 0, :f :final-poll, :value [[:poll {3 [[0 1]]}]]}"
                .into(),
            "{:index 0, :time 7, :type :invoke, :process 3, :f :send, :value nil, :index 1}".into(),
        ];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "edn") {
                lines.extend(std::fs::read_to_string(path).unwrap().lines().map(str::to_string));
            }
        }
        let (mut shortcut, mut compared) = (0, 0);
        for line in &lines {
            let bytes = line.as_bytes();
            let mut variants = vec![bytes.to_vec()];
            // Each byte dropped, and replaced by a character that matters to the match.
            for at in 0..bytes.len() {
                let mut dropped = bytes.to_vec();
                dropped.remove(at);
                variants.push(dropped);
                let mut replaced = bytes.to_vec();
                replaced[at] = b" ,:0a-{"[at % 7];
                variants.push(replaced);
            }
            for variant in variants {
                let (mut fast, mut walked) = (Vec::new(), Vec::new());
                let a = translate(&variant, &mut fast, true);
                let b = translate(&variant, &mut walked, false);
                assert_eq!(a.is_some(), b.is_some(), "{}", String::from_utf8_lossy(&variant));
                if a.is_some() {
                    assert_eq!(fast, walked, "{}", String::from_utf8_lossy(&variant));
                    compared += 1;
                }
                shortcut += usize::from(tumult_head(&variant, 0, &mut Vec::new()).is_some());
            }
        }
        assert!(
            shortcut > 500 && compared > 1000,
            "{shortcut} shortcuts, {compared} compared"
        );
    }

    #[test]
    fn jepsen_ops_read_as_the_jsonl_form_would() {
        let text = r#"{:index 0, :time 10, :type :invoke, :process 0, :f :send, :value [[:send :x 1]]}
#jepsen.history.Op{:index 1, :time 20, :type :ok, :process 0, :f :send, :value [[:send :x [3 1]]]}
{:index 2 :time 30 :type :ok :process 1 :f :poll :value [[:poll {:x [[3 1]] 2 [[0 :a]]}]]} ; tail
{:type :info, :process :nemesis, :f :start-partition, :value #{:n1}, :error nil}
"#;
        let (ops, lines) = read_ops(text, 0).unwrap();
        assert_eq!(lines, vec![1, 2, 3, 4]);
        assert_eq!(ops[0].value, serde_json::json!([["send", "x", 1]]));
        assert_eq!(ops[1].value, serde_json::json!([["send", "x", [3, 1]]]));
        assert_eq!(
            ops[2].value,
            serde_json::json!([["poll", {"x": [[3, 1]], "2": [[0, "a"]]}]])
        );
        assert_eq!(ops[3].process, Process::nemesis());
        assert_eq!(ops[3].index, 3, "a missing index is the position");
        assert_eq!(ops[3].error, None);
    }

    #[test]
    fn malformed_input_names_its_line() {
        for (text, line, says) in [
            ("{:type :ok}\n{:index 1", 1, "missing :process"),
            (
                "{:index 0 :type :ok :process 0 :f :x}\n{:index 1",
                2,
                "unclosed map",
            ),
            ("\n\n{:index 0, :type :ok, :process 0, :f :x\n", 3, "unclosed map"),
            (
                "{:index 0 :type :ok :process 0 :f :x :value \"open}",
                1,
                "unterminated string",
            ),
            ("{:index 0 :type :what :process 0 :f :x}", 1, "unknown :type what"),
            ("]", 1, "unexpected ']'"),
            ("{:a}", 1, "has no value"),
            // A string left open on line 2 is reported there, not where the input ends.
            (
                "{:index 0 :type :ok :process 0 :f :x}\n{:index 1 :type :ok :process 0 :f :x :value \"open}\n{:index 2}\n{:index 3}\n",
                2,
                "unterminated string",
            ),
            ("{:index 0 :type :ok :type :invoke :process 0 :f :x}", 1, "duplicate map key :type"),
            ("{:index 0 :type :ok :process 0 :f :x :value #{1 2 1}}", 1, "duplicate set element 1"),
            ("{:index 0 :type :ok :process 0 :f :x :value [#_]}", 1, "no form to discard"),
        ] {
            let err = read_ops(text, 0).unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
            assert!(err.message.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn discards_vanish_even_before_a_closing_bracket_and_keywords_differ_from_strings() {
        let text = "{:index 0 :type :ok :process 0 :f :x :value [1 #_ 2 #_ #_ 3 4] #_ :dropped}\n\
                    {:index 1 :type :ok :process 0 :f :x :value {:a 1 \"b\" 2 :b 3} #_{:c 4}}";
        let (ops, _) = read_ops(text, 0).unwrap();
        assert_eq!(ops[0].value, serde_json::json!([1]));
        assert_eq!(ops[1].value["a"], serde_json::json!(1));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let text = "[".repeat(100_000);
        let err = read_ops(&text, 0).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{err}");
    }
}
