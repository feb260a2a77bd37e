//! Writing a history as Jepsen's `history.edn`: one op map per line, as Jepsen's own
//! store writes them, so that elle-cli and Jepsen's tools read tumult's runs.
//!
//! The mapping from JSON: an op's fields become keywords (`:index`, `:type`, ...); its
//! `type` and `f`, a named process (`:nemesis`) and the function of each micro-op
//! (`[:send k v]`, `[:poll {...}]`) become keywords; map keys become keywords, or integers
//! where they are integers (a poll's `{0 [[3 1]]}`), as Jepsen's Kafka workload writes
//! them. Every other string stays a string. tumult's EDN reader reads the result back to
//! the same JSON, so a run checks the same from either file.

use std::fmt::Write as _;
use std::io::{BufRead, Write};

use serde_json::Value;

use crate::HistoryError;

/// Why a JSONL history could not be written as EDN.
#[derive(Debug, thiserror::Error)]
pub enum EdnWriteError {
    /// A line is not a JSON object.
    #[error(transparent)]
    History(HistoryError),
    /// The output could not be written.
    #[error("writing EDN: {0}")]
    Io(std::io::Error),
}

/// Reads JSONL operations from `reader` and writes each as one EDN line to `out`.
pub fn jsonl_to_edn(reader: impl BufRead, mut out: impl Write) -> Result<(), EdnWriteError> {
    let mut text = String::new();
    for (n, line) in reader.lines().enumerate() {
        let fail = |message: String| EdnWriteError::History(HistoryError { line: n + 1, message });
        let line = line.map_err(|e| fail(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let op: Value = serde_json::from_str(&line).map_err(|e| fail(format!("not JSON: {e}")))?;
        if !op.is_object() {
            return Err(fail("an operation must be a JSON object".into()));
        }
        text.clear();
        op_edn(&op, &mut text);
        text.push('\n');
        out.write_all(text.as_bytes()).map_err(EdnWriteError::Io)?;
    }
    out.flush().map_err(EdnWriteError::Io)
}

/// One op map as EDN.
pub fn op_edn(op: &Value, out: &mut String) {
    let Value::Object(fields) = op else {
        value_edn(op, out);
        return;
    };
    // Jepsen's order first, then any other field.
    const ORDER: [&str; 7] = ["index", "time", "type", "process", "f", "value", "error"];
    let known = ORDER.iter().filter_map(|name| fields.get_key_value(*name));
    let others = fields.iter().filter(|(name, _)| !ORDER.contains(&name.as_str()));
    out.push('{');
    for (i, (name, value)) in known.chain(others).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        keyword(name, out);
        out.push(' ');
        match (name.as_str(), value) {
            ("type" | "f" | "process", Value::String(s)) => keyword(s, out),
            ("value", Value::Array(mops)) if mops.iter().all(is_mop) => {
                // Micro-ops, `[f k v]`: Jepsen writes each function as a keyword.
                out.push('[');
                for (i, mop) in mops.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let Value::Array(parts) = mop else { continue };
                    out.push('[');
                    for (j, part) in parts.iter().enumerate() {
                        match part {
                            Value::String(f) if j == 0 => keyword(f, out),
                            other => {
                                out.push(' ');
                                value_edn(other, out);
                            }
                        }
                    }
                    out.push(']');
                }
                out.push(']');
            }
            _ => value_edn(value, out),
        }
    }
    out.push('}');
}

/// A micro-op: a list whose head names its function.
fn is_mop(v: &Value) -> bool {
    matches!(v, Value::Array(parts) if parts.first().is_some_and(Value::is_string))
}

/// What is still to write of a value; an explicit stack, so nesting costs no recursion.
enum Step<'a> {
    Value(&'a Value),
    Text(&'static str),
    Key(&'a str),
}

/// A value as EDN data: strings stay strings, map keys become keywords or integers.
fn value_edn(value: &Value, out: &mut String) {
    let mut stack = vec![Step::Value(value)];
    while let Some(step) = stack.pop() {
        let value = match step {
            Step::Text(t) => {
                out.push_str(t);
                continue;
            }
            Step::Key(k) => {
                map_key(k, out);
                out.push(' ');
                continue;
            }
            Step::Value(v) => v,
        };
        match value {
            Value::Null => out.push_str("nil"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Value::String(s) => string(s, out),
            Value::Array(items) => {
                out.push('[');
                stack.push(Step::Text("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push(Step::Value(item));
                    if i > 0 {
                        stack.push(Step::Text(" "));
                    }
                }
            }
            Value::Object(fields) => {
                out.push('{');
                stack.push(Step::Text("}"));
                for (i, (k, v)) in fields.iter().enumerate().rev() {
                    stack.push(Step::Value(v));
                    stack.push(Step::Key(k));
                    if i > 0 {
                        stack.push(Step::Text(", "));
                    }
                }
            }
        }
    }
}

/// A map key: an integer as an integer, a keyword-like name as a keyword, else a string.
fn map_key(k: &str, out: &mut String) {
    let digits = k.strip_prefix('-').unwrap_or(k);
    let integer = !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    if integer {
        out.push_str(k);
    } else if is_keyword_name(k) {
        keyword(k, out);
    } else {
        string(k, out);
    }
}

/// Whether `s` can be written as a keyword and read back as the same name.
fn is_keyword_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '?' | '!' | '*' | '+' | '/'))
}

fn keyword(name: &str, out: &mut String) {
    if is_keyword_name(name) {
        out.push(':');
        out.push_str(name);
    } else {
        string(name, out);
    }
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edn(json: &str) -> String {
        let mut out = String::new();
        op_edn(&serde_json::from_str(json).unwrap(), &mut out);
        out
    }

    #[test]
    fn ops_are_written_as_jepsen_writes_them() {
        assert_eq!(
            edn(r#"{"index":1,"time":5,"type":"ok","process":0,"f":"send","value":[["send",0,[3,7]]]}"#),
            "{:index 1, :time 5, :type :ok, :process 0, :f :send, :value [[:send 0 [3 7]]]}"
        );
        assert_eq!(
            edn(
                r#"{"index":2,"time":6,"type":"ok","process":1,"f":"poll","value":[["poll",{"0":[[3,7]],"12":[]}]]}"#
            ),
            "{:index 2, :time 6, :type :ok, :process 1, :f :poll, :value [[:poll {0 [[3 7]], 12 []}]]}"
        );
        assert_eq!(
            edn(
                r#"{"index":3,"time":7,"type":"info","process":"nemesis","f":"kill","value":{"kind":"kill","nodes":["n2"]}}"#
            ),
            r#"{:index 3, :time 7, :type :info, :process :nemesis, :f :kill, :value {:kind "kill", :nodes ["n2"]}}"#
        );
        assert_eq!(
            edn(
                r#"{"index":4,"time":8,"type":"info","process":2,"f":"enqueue","value":"a \"b\"\n","error":"timeout"}"#
            ),
            r#"{:index 4, :time 8, :type :info, :process 2, :f :enqueue, :value "a \"b\"\n", :error "timeout"}"#
        );
    }
}
