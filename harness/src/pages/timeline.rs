//! timeline.html: one lane per thread (as Jepsen draws it: a thread is a client slot, and
//! the processes that replace a retired one run in its lane), each operation a bar from
//! invocation to completion coloured by outcome, faults as shaded bands; hovering a bar
//! shows the operation. Zoom by radio buttons, "fit" (the whole run in the window) by
//! default. Plain HTML and CSS, well-formed as XML, with no script.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use checker::Report;

use super::{escape, html_page, outcome_name, RunView};

/// The zoom levels offered besides "fit", in pixels per simulated second.
const ZOOMS_PX_PER_S: [u32; 4] = [10, 40, 160, 640];
/// Height of one lane.
const LANE_PX: f64 = 18.0;
/// Left margin for the lane labels.
const LABEL_PX: f64 = 90.0;
/// Where the first lane starts, below the fault names.
const LANES_TOP: f64 = 20.0 + 12.0 * FAULT_LABEL_ROWS as f64;
/// Rows of fault names over the lanes (faults in force at once each need one).
const FAULT_LABEL_ROWS: usize = 3;
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

/// Seconds between time ticks: a round step giving about twenty ticks over the run.
fn tick_every(end_s: f64) -> f64 {
    const STEPS: [f64; 12] = [
        0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ];
    STEPS
        .into_iter()
        .find(|step| end_s / step <= 20.0)
        .unwrap_or(3600.0)
}

/// A CSS length `seconds` into the plot at the current zoom (`--s`: one second's length).
fn at(seconds: f64) -> String {
    format!("calc({LABEL_PX:.0}px + var(--s) * {seconds:.4})")
}

/// A CSS length of `seconds` at the current zoom.
fn span_of(seconds: f64) -> String {
    format!("calc(var(--s) * {seconds:.4})")
}

/// `threads`: the run's client slots, when known; otherwise each process has a lane.
pub(crate) fn html(view: &RunView, report: &Report, threads: Option<u64>) -> String {
    let lane_of = |process: u64| threads.filter(|t| *t > 0).map_or(process, |t| process % t);
    let lanes: Vec<u64> = {
        let mut l: Vec<u64> = view.spans.iter().map(|s| lane_of(s.process)).collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    let lane: BTreeMap<u64, usize> = lanes.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let mut processes_of: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for span in &view.spans {
        let list = processes_of.entry(lane_of(span.process)).or_default();
        if !list.contains(&span.process) {
            list.push(span.process);
        }
    }
    let height = (lanes.len() as f64 + 1.0) * LANE_PX + 10.0 + LANES_TOP;
    let verdict = format!("{:?}", report.valid).to_lowercase();
    let zooms: String = ZOOMS_PX_PER_S
        .iter()
        .map(|px| format!("#z-{px}:checked ~ .plot {{ --s: {px}px; }}\n"))
        .collect();
    let style = format!(
        r#".legend span {{ display: inline-block; padding: 2px 8px; margin-right: 6px; border-radius: 3px; }}
.zoom-label {{ margin: 0 10px 0 2px; font-size: 13px; }}
.plot {{ --s: 40px; position: relative; width: calc({label:.0}px + var(--s) * {end:.4} + 40px); height: {height:.0}px; border-top: 1px solid #ccc; margin-top: 8px; }}
#z-fit:checked ~ .plot {{ --s: calc((100vw - {fit_margin:.0}px) / {end:.4}); }}
{zooms}.op {{ position: absolute; height: {bar:.0}px; min-width: 2px; border-radius: 2px; opacity: 0.85; }}
.op:hover {{ opacity: 1; outline: 2px solid #000; z-index: 2; }}
.ok {{ background: #2e9d4f; }}
.fail {{ background: #d6332f; }}
.info {{ background: #f09a1a; }}
.fault {{ position: absolute; top: 0; bottom: 0; min-width: 2px; overflow: hidden; background: rgba(144,144,144,0.22); border-left: 1px dashed #777; }}
.fault span {{ font-size: 11px; color: #444; padding-left: 2px; white-space: nowrap; }}
.lane {{ position: absolute; left: 0; width: {label:.0}px; font-size: 12px; color: #333; white-space: nowrap; overflow: hidden; }}
.tick {{ position: absolute; top: 0; bottom: 0; border-left: 1px solid #eee; font-size: 10px; color: #999; }}
.violation {{ position: absolute; top: 0; bottom: 0; width: 3px; background: #7b1fa2; z-index: 3; }}
.verdict-true {{ color: #2e9d4f; }} .verdict-false {{ color: #d6332f; }} .verdict-unknown {{ color: #f09a1a; }}
"#,
        bar = LANE_PX - 4.0,
        label = LABEL_PX,
        end = view.end_s,
        // The labels, the right margin and the page's own margins.
        fit_margin = LABEL_PX + 40.0 + 40.0,
    );
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<h1>Timeline <span class="verdict-{verdict}">(valid: {verdict})</span></h1>
<p class="legend"><span class="ok">ok</span><span class="fail">fail</span><span class="info">info</span><span style="background: rgba(144,144,144,0.35)">fault</span><span style="background: #7b1fa2; color: #fff">monitor violation</span> Lanes are threads (hover one for its processes); hover an operation for its values; {ops} operations, {faults} faults, {violations} invariant violations, {end:.1} simulated seconds.</p>
"#,
        ops = view.spans.len(),
        faults = view.faults.len(),
        violations = report.monitors().map_or(0, |m| m.violation_count),
        end = view.end_s,
    );
    if view.spans.len() > SPANS_MAX {
        let _ = writeln!(
            out,
            "<p>Only the first {SPANS_MAX} operations are drawn; history.jsonl holds them all.</p>"
        );
    }
    // Radio buttons zoom through CSS alone; they must come before the plot, as its
    // siblings, for the `:checked ~ .plot` rules to reach it.
    out.push_str("zoom:\n");
    let _ = writeln!(
        out,
        r#"<input type="radio" name="zoom" id="z-fit" checked="checked"/><label class="zoom-label" for="z-fit">fit</label>"#
    );
    for px in ZOOMS_PX_PER_S {
        let _ = writeln!(
            out,
            r#"<input type="radio" name="zoom" id="z-{px}"/><label class="zoom-label" for="z-{px}">{px} px/s</label>"#
        );
    }
    let _ = writeln!(out, r#"<div class="plot">"#);
    let every = tick_every(view.end_s);
    let mut tick = 0.0;
    while tick <= view.end_s {
        let _ = writeln!(
            out,
            r#"<div class="tick" style="left:{}">{tick}s</div>"#,
            at(tick)
        );
        tick += every;
    }
    // Faults in force at once get label rows of their own; a name is clipped to its band,
    // so names never print over each other. Past the last row a band goes unnamed (its
    // title still names it).
    let mut row_free_from = [f64::MIN; FAULT_LABEL_ROWS];
    for fault in &view.faults {
        let row = row_free_from.iter().position(|free| fault.start_s >= *free);
        let label = match row {
            Some(row) => {
                row_free_from[row] = fault.end_s;
                format!(
                    r#"<span style="position:absolute;top:{}px">{}</span>"#,
                    // Below the time ticks' labels.
                    (row + 1) * 12,
                    escape(&fault.kind)
                )
            }
            None => String::new(),
        };
        let _ = writeln!(
            out,
            r#"<div class="fault" data-kind="{kind}" style="left:{left};width:{w}" title="{title}">{label}</div>"#,
            kind = escape(&fault.kind),
            left = at(fault.start_s),
            w = span_of(fault.end_s - fault.start_s),
            title = escape(&format!(
                "{} from {:.3} s to {:.3} s: {}",
                fault.kind, fault.start_s, fault.end_s, fault.detail
            )),
        );
    }
    // Each invariant violation the monitors kept, at the moment it happened: where a
    // promise broke, often long before the history shows a loss.
    for v in report.monitors().map_or(&[][..], |m| m.violations.as_slice()) {
        let _ = writeln!(
            out,
            r#"<div class="violation" style="left:{left}" title="{title}"></div>"#,
            left = at(v.time_ns as f64 / 1e9),
            title = escape(&format!(
                "{} monitor at {:.3} s on {}: {}",
                v.monitor,
                v.time_ns as f64 / 1e9,
                v.node,
                v.what
            )),
        );
    }
    for (i, l) in lanes.iter().enumerate() {
        let top = LANES_TOP + i as f64 * LANE_PX;
        let (name, title) = match threads {
            Some(_) => {
                let list: Vec<String> = processes_of
                    .get(l)
                    .map(|p| p.iter().map(u64::to_string).collect())
                    .unwrap_or_default();
                (
                    format!("thread {l}"),
                    format!("thread {l}: processes {}", list.join(", ")),
                )
            }
            None => (format!("process {l}"), format!("process {l}")),
        };
        let _ = writeln!(
            out,
            r#"<div class="lane" style="top:{top:.0}px" title="{title}">{name}</div>"#,
            title = escape(&title),
        );
    }
    for span in view.spans.iter().take(SPANS_MAX) {
        let top = LANES_TOP + lane[&lane_of(span.process)] as f64 * LANE_PX + 2.0;
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
            r#"<div class="op {outcome}" data-f="{f}" style="left:{left};top:{top:.0}px;width:{w}" title="{title}"></div>"#,
            f = escape(&span.f),
            left = at(span.invoked_s),
            w = span_of(end - span.invoked_s),
            title = escape(&title),
        );
    }
    out.push_str("</div>\n");
    html_page("tumult timeline", &style, &out)
}
