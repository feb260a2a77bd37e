//! A few exemplars of each finding for the verdict screen, as Jepsen's results name a few
//! of each anomaly: which values were lost and at which offsets, which polls skipped what,
//! and the first cycle explained. Bounded, so a run that lost a million messages still
//! fits a screen; every case is in results.json.

use checker::{LogReport, Report, TotalQueueReport};
use serde_json::Value;

/// Exemplars shown per finding.
pub const EXEMPLARS: usize = 3;

/// The exemplar lines of `report`, indented for the verdict screen; empty when it found
/// nothing.
pub fn exemplar_lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(queue) = report.total_queue() {
        queue_lines(queue, &mut lines);
    }
    if let Some(log) = report.log() {
        log_lines(log, &mut lines);
    }
    lines
}

/// `name (count): a, b, c and N more`.
fn line(name: &str, count: usize, items: impl Iterator<Item = String>, lines: &mut Vec<String>) {
    if count == 0 {
        return;
    }
    let shown: Vec<String> = items.take(EXEMPLARS).collect();
    let more = count.saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    lines.push(format!("  {name} ({count}): {}{tail}", shown.join(", ")));
}

fn queue_lines(queue: &TotalQueueReport, lines: &mut Vec<String>) {
    let text = |v: &checker::QueueValue| serde_json::to_string(v).unwrap_or_default();
    line("lost", queue.lost_count, queue.lost.iter().map(text), lines);
    line(
        "unexpected",
        queue.unexpected_count,
        queue.unexpected.iter().map(text),
        lines,
    );
    line(
        "duplicated",
        queue.duplicated_count,
        queue
            .duplicated
            .iter()
            .map(|(v, n)| format!("{} dequeued {n} times", text(v))),
        lines,
    );
}

fn log_lines(log: &LogReport, lines: &mut Vec<String>) {
    let seen = |s: &checker::Seen| {
        let offset = s.offset.map_or("unknown".to_string(), |o| o.to_string());
        format!("key {} offset {offset} value {} (op {})", s.key, s.value, s.op)
    };
    line("lost", log.lost_count, log.lost.iter().map(seen), lines);
    line(
        "dirty reads",
        log.dirty_read_count,
        log.dirty_reads.iter().map(seen),
        lines,
    );
    line(
        "inconsistent offsets",
        log.inconsistent_offset_count,
        log.inconsistent_offsets
            .iter()
            .map(|(key, offset, values)| format!("key {key} offset {offset} holds {}", values.join(" and "))),
        lines,
    );
    line(
        "duplicates",
        log.duplicate_count,
        log.duplicates.iter().map(|(key, value, offsets)| {
            let offsets: Vec<String> = offsets.iter().map(u64::to_string).collect();
            format!("key {key} value {value} at offsets {}", offsets.join(" and "))
        }),
        lines,
    );
    line(
        "unexpected",
        log.unexpected_count,
        log.unexpected.iter().map(seen),
        lines,
    );
    for (name, cases) in log.anomalies.iter().filter(|(_, c)| !c.allowed && c.count > 0) {
        if let Some(text) = cases.witnesses.first().and_then(|w| w["explanation"].as_str()) {
            // A cycle: its explanation says it all, the first one only.
            lines.push(format!("  {name} ({}; the first):", cases.count));
            lines.extend(text.lines().map(|l| format!("    {l}")));
            continue;
        }
        line(name, cases.count, cases.witnesses.iter().map(witness), lines);
    }
}

/// An order anomaly's witness in a line: its fields as `name value`, long lists cut.
fn witness(w: &Value) -> String {
    let Value::Object(fields) = w else {
        return w.to_string();
    };
    let parts: Vec<String> = fields
        .iter()
        .map(|(name, value)| match value {
            Value::Array(items) if items.len() > 4 => {
                let head: Vec<String> = items[..3].iter().map(plain).collect();
                format!("{name} [{} ... {} in all]", head.join(" "), items.len())
            }
            Value::Array(items) => {
                let all: Vec<String> = items.iter().map(plain).collect();
                format!("{name} [{}]", all.join(" "))
            }
            other => format!("{name} {}", plain(other)),
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// A value without the quotes JSON puts on strings.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_message_is_named_with_its_value_and_more_are_counted() {
        let jsonl: String = (0..8)
            .flat_map(|v| {
                [
                    format!(
                        r#"{{"index":{},"time":0,"type":"invoke","process":0,"f":"enqueue","value":{v}}}"#,
                        2 * v
                    ),
                    format!(
                        r#"{{"index":{},"time":1,"type":"ok","process":0,"f":"enqueue","value":{v}}}"#,
                        2 * v + 1
                    ),
                ]
            })
            .chain([
                r#"{"index":16,"time":2,"type":"invoke","process":0,"f":"drain","value":null}"#.to_string(),
                r#"{"index":17,"time":3,"type":"ok","process":0,"f":"drain","value":[0]}"#.to_string(),
            ])
            .collect::<Vec<_>>()
            .join("\n");
        let history = checker::History::read_jsonl(jsonl.as_bytes()).unwrap();
        let report = checker::check(&history, checker::Workload::Queue);
        let lines = exemplar_lines(&report);
        assert_eq!(lines, vec!["  lost (7): 1, 2, 3 and 4 more".to_string()]);
    }
}
