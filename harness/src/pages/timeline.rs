//! timeline.html: one lane per process, each operation a bar from invocation to completion
//! coloured by outcome, faults as shaded bands; hovering a bar shows the operation. Plain
//! HTML and CSS, well-formed as XML, with no script.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use checker::Report;

use super::{escape, html_page, outcome_name, RunView};

/// Pixels per simulated second.
const PX_PER_S: f64 = 80.0;
/// Height of one lane.
const LANE_PX: f64 = 18.0;
/// Left margin for the lane labels.
const LABEL_PX: f64 = 90.0;
/// Most operations drawn: beyond this a page becomes too heavy for a browser.
const SPANS_MAX: usize = 20_000;

fn value_text(value: &serde_json::Value) -> String {
    const LONG: usize = 400;
    let text = value.to_string();
    if text.len() <= LONG {
        return text;
    }
    let cut = (0..=LONG).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    format!("{}... ({} bytes)", &text[..cut], text.len())
}

pub(crate) fn html(view: &RunView, report: &Report) -> String {
    let processes: Vec<u64> = {
        let mut p: Vec<u64> = view.spans.iter().map(|s| s.process).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let lane: BTreeMap<u64, usize> = processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let width = LABEL_PX + view.end_s * PX_PER_S + 40.0;
    let height = (processes.len() as f64 + 1.0) * LANE_PX + 30.0;
    let verdict = format!("{:?}", report.valid).to_lowercase();
    let style = format!(
        r#".legend span {{ display: inline-block; padding: 2px 8px; margin-right: 6px; border-radius: 3px; }}
.plot {{ position: relative; width: {width:.0}px; height: {height:.0}px; border-top: 1px solid #ccc; }}
.op {{ position: absolute; height: {bar:.0}px; min-width: 2px; border-radius: 2px; opacity: 0.85; }}
.op:hover {{ opacity: 1; outline: 2px solid #000; z-index: 2; }}
.ok {{ background: #2e9d4f; }}
.fail {{ background: #d6332f; }}
.info {{ background: #f09a1a; }}
.fault {{ position: absolute; top: 0; bottom: 0; background: rgba(144,144,144,0.22); border-left: 1px dashed #777; }}
.fault span {{ font-size: 11px; color: #444; padding-left: 2px; }}
.lane {{ position: absolute; left: 0; width: {label:.0}px; font-size: 12px; color: #333; }}
.tick {{ position: absolute; top: 0; bottom: 0; border-left: 1px solid #eee; font-size: 10px; color: #999; }}
.verdict-true {{ color: #2e9d4f; }} .verdict-false {{ color: #d6332f; }} .verdict-unknown {{ color: #f09a1a; }}
"#,
        bar = LANE_PX - 4.0,
        label = LABEL_PX,
    );
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<h1>Timeline <span class="verdict-{verdict}">(valid: {verdict})</span></h1>
<p class="legend"><span class="ok">ok</span><span class="fail">fail</span><span class="info">info</span><span style="background: rgba(144,144,144,0.35)">fault</span> Hover an operation for its values; {ops} operations, {faults} faults, {end:.1} simulated seconds.</p>
"#,
        ops = view.spans.len(),
        faults = view.faults.len(),
        end = view.end_s,
    );
    if view.spans.len() > SPANS_MAX {
        let _ = writeln!(
            out,
            "<p>Only the first {SPANS_MAX} operations are drawn; history.jsonl holds them all.</p>"
        );
    }
    let _ = writeln!(out, r#"<div class="plot">"#);
    let x = |s: f64| LABEL_PX + s * PX_PER_S;
    let every = if view.end_s > 600.0 {
        60
    } else if view.end_s > 120.0 {
        10
    } else {
        1
    };
    let mut second = 0;
    while (second as f64) <= view.end_s {
        let _ = writeln!(
            out,
            r#"<div class="tick" style="left:{:.1}px">{second}s</div>"#,
            x(second as f64)
        );
        second += every;
    }
    for fault in &view.faults {
        let _ = writeln!(
            out,
            r#"<div class="fault" data-kind="{kind}" style="left:{left:.1}px;width:{w:.1}px" title="{title}"><span>{kind}</span></div>"#,
            kind = escape(&fault.kind),
            left = x(fault.start_s),
            w = ((fault.end_s - fault.start_s) * PX_PER_S).max(2.0),
            title = escape(&format!(
                "{} from {:.3} s to {:.3} s: {}",
                fault.kind, fault.start_s, fault.end_s, fault.detail
            )),
        );
    }
    for (i, p) in processes.iter().enumerate() {
        let top = 20.0 + i as f64 * LANE_PX;
        let _ = writeln!(
            out,
            r#"<div class="lane" style="top:{top:.0}px">process {p}</div>"#
        );
    }
    for span in view.spans.iter().take(SPANS_MAX) {
        let top = 20.0 + lane[&span.process] as f64 * LANE_PX + 2.0;
        let end = span.completed_s.unwrap_or(view.end_s);
        let outcome = outcome_name(span.outcome);
        let mut title = format!(
            "process {} {} {outcome}\ninvoked {:.3} s, ",
            span.process, span.f, span.invoked_s
        );
        match span.latency_ms() {
            Some(ms) => {
                let _ = write!(title, "completed {end:.3} s ({ms:.1} ms)");
            }
            None => title.push_str("never completed"),
        }
        let _ = write!(title, "\ninvoked with {}", value_text(&span.invoke_value));
        if let Some(v) = &span.complete_value {
            let _ = write!(title, "\ncompleted with {}", value_text(v));
        }
        if let Some(e) = &span.error {
            let _ = write!(title, "\nerror: {e}");
        }
        let _ = writeln!(
            out,
            r#"<div class="op {outcome}" data-f="{f}" style="left:{left:.1}px;top:{top:.0}px;width:{w:.1}px" title="{title}"></div>"#,
            f = escape(&span.f),
            left = x(span.invoked_s),
            w = ((end - span.invoked_s) * PX_PER_S).max(2.0),
            title = escape(&title),
        );
    }
    out.push_str("</div>\n");
    html_page("tumult timeline", &style, &out)
}
