//! The run's pictures, drawn with plotters into SVG: latency of every operation (Jepsen's
//! latency-raw), throughput by kind and outcome, and unseen messages over time, each with
//! the faults shaded.

use std::collections::BTreeSet;

use checker::{OpType, Unseen};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{outcome_name, PageError, RunView};

const SIZE: (u32, u32) = (1100, 520);
const OK: RGBColor = RGBColor(0x2e, 0x9d, 0x4f);
const FAIL: RGBColor = RGBColor(0xd6, 0x33, 0x2f);
const INFO: RGBColor = RGBColor(0xf0, 0x9a, 0x1a);
const FAULT: RGBColor = RGBColor(0x90, 0x90, 0x90);
const OUTCOMES: [OpType; 3] = [OpType::Ok, OpType::Fail, OpType::Info];

fn color(outcome: OpType) -> RGBColor {
    match outcome {
        OpType::Ok => OK,
        OpType::Fail => FAIL,
        _ => INFO,
    }
}

/// Turns any drawing error into a [`PageError`] naming the picture.
fn failed<E: std::fmt::Display>(file: &'static str) -> impl Fn(E) -> PageError {
    move |e| PageError::Plot {
        file,
        message: e.to_string(),
    }
}

/// The kinds of operation, in a fixed order (the marker shape follows the position).
fn kinds(view: &RunView) -> Vec<String> {
    let kinds: BTreeSet<&str> = view.spans.iter().map(|s| s.f.as_str()).collect();
    kinds.into_iter().map(str::to_string).collect()
}

/// Draws one marker for the kind at position `shape`: circle, triangle, square or cross,
/// filled for the first four kinds and hollow for the next four, then round again.
fn marker<DB: DrawingBackend>(
    shape: usize,
    at: (i32, i32),
    color: RGBAColor,
) -> DynElement<'static, DB, (i32, i32)> {
    let style = if (shape / 4) % 2 == 0 {
        color.filled()
    } else {
        color.stroke_width(1)
    };
    match shape % 4 {
        0 => Circle::new(at, 3, style).into_dyn(),
        1 => TriangleMarker::new(at, 4, style).into_dyn(),
        2 => Rectangle::new([(at.0 - 3, at.1 - 3), (at.0 + 3, at.1 + 3)], style).into_dyn(),
        _ => Cross::new(at, 3, color.stroke_width(2)).into_dyn(),
    }
}

/// One picture: a white canvas, the caption, axes over the run's time and `y`, the faults
/// shaded and named, what `draw` adds, and the legend.
fn plot<Y, R>(
    file: &'static str,
    caption: &str,
    y_desc: &str,
    y: R,
    view: &RunView,
    draw: impl for<'a> FnOnce(
        &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    ) -> Result<(), PageError>,
) -> Result<String, PageError>
where
    R: AsRangedCoord<CoordDescType = Y, Value = f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(failed(file))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            // A little room past the end, so the last points are not cut at the edge.
            .build_cartesian_2d(0f64..view.end_s * 1.02 + 0.2, y)
            .map_err(failed(file))?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc(y_desc)
            .draw()
            .map_err(failed(file))?;
        if !view.faults.is_empty() {
            let heights = chart.y_range();
            let (low, high) = (heights.start, heights.end);
            chart
                .draw_series(
                    view.faults.iter().map(|f| {
                        Rectangle::new([(f.start_s, low), (f.end_s, high)], FAULT.mix(0.2).filled())
                    }),
                )
                .map_err(failed(file))?
                .label("faults")
                .legend(|(x, y)| Rectangle::new([(x - 6, y - 5), (x + 6, y + 5)], FAULT.mix(0.4).filled()));
            // Each band names its fault at the top, on the first of a few rows where the
            // name does not run into the one before; when every row is taken, the band
            // stays unnamed rather than printing over another name.
            let plotted = chart.plotting_area().dim_in_pixel().0.max(1) as f64;
            let s_per_px = (view.end_s * 1.02 + 0.2) / plotted;
            let rows = label_rows(view, s_per_px);
            let row_height = (high - low) / 28.0;
            chart
                .draw_series(view.faults.iter().zip(rows).filter_map(|(f, row)| {
                    let y = high - row? as f64 * row_height;
                    Some(Text::new(
                        f.kind.clone(),
                        (f.start_s, y),
                        ("sans-serif", 12).into_font().color(&BLACK.mix(0.6)),
                    ))
                }))
                .map_err(failed(file))?;
        }
        draw(&mut chart)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(failed(file))?;
        root.present().map_err(failed(file))?;
    }
    Ok(svg)
}

/// Rows of fault labels before a band goes unnamed.
const LABEL_ROWS: usize = 3;

/// For each fault, the row its name is drawn on (`None`: no room), given how many
/// seconds one pixel spans. A name of n characters takes about 7n pixels at 12 px.
fn label_rows(view: &RunView, s_per_px: f64) -> Vec<Option<usize>> {
    let mut free_from = [f64::MIN; LABEL_ROWS];
    view.faults
        .iter()
        .map(|f| {
            let row = free_from.iter().position(|free| f.start_s >= *free)?;
            free_from[row] = f.start_s + (f.kind.len() as f64 * 7.0 + 6.0) * s_per_px;
            Some(row)
        })
        .collect()
}

/// latency.svg: every completed operation's latency against its invocation time, log
/// scale, coloured by outcome and shaped by kind.
pub(crate) fn latency(view: &RunView) -> Result<String, PageError> {
    const FILE: &str = "latency.svg";
    let highest = view
        .spans
        .iter()
        .filter_map(|s| s.latency_ms())
        .fold(1.0f64, f64::max);
    // A log scale has no zero: latencies under `low` (a connection lost in the tick it
    // was used) are drawn at `low`, a little above the axis so they stay visible.
    let low = 0.1f64;
    plot(
        FILE,
        "Latency of every operation (under 0.1 ms drawn at 0.1)",
        "latency (ms)",
        (low / 2.0..highest * 2.0).log_scale(),
        view,
        |chart| {
            for (shape, kind) in kinds(view).iter().enumerate() {
                for outcome in OUTCOMES {
                    let points: Vec<(f64, f64)> = view
                        .spans
                        .iter()
                        .filter(|s| &s.f == kind && s.outcome == outcome)
                        .filter_map(|s| s.latency_ms().map(|l| (s.invoked_s, l.max(low))))
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    let c = color(outcome);
                    chart
                        .draw_series(
                            points
                                .into_iter()
                                .map(|(x, y)| EmptyElement::at((x, y)) + marker(shape, (0, 0), c.mix(0.7))),
                        )
                        .map_err(failed(FILE))?
                        .label(format!("{kind} {}", outcome_name(outcome)))
                        .legend(move |(x, y)| EmptyElement::at((x, y)) + marker(shape, (0, 0), c.to_rgba()));
                }
            }
            Ok(())
        },
    )
}

/// rate.svg: completions per second by kind and outcome, over time.
pub(crate) fn rate(view: &RunView) -> Result<String, PageError> {
    const FILE: &str = "rate.svg";
    // About sixty buckets over the run, at least a second each.
    let width = (view.end_s / 60.0).max(1.0);
    let buckets = (view.end_s / width).ceil() as usize + 1;
    let mut series = Vec::new();
    for (k, kind) in kinds(view).iter().enumerate() {
        for (o, outcome) in OUTCOMES.into_iter().enumerate() {
            let mut counts = vec![0u64; buckets];
            for s in view.spans.iter().filter(|s| &s.f == kind && s.outcome == outcome) {
                if let Some(done) = s.completed_s {
                    counts[((done / width) as usize).min(buckets - 1)] += 1;
                }
            }
            if counts.iter().all(|c| *c == 0) {
                continue;
            }
            let points: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| ((i as f64 + 0.5) * width, *c as f64 / width))
                .collect();
            series.push((format!("{kind} {}", outcome_name(outcome)), k, o, points));
        }
    }
    let highest = series
        .iter()
        .flat_map(|(_, _, _, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max);
    plot(
        FILE,
        "Throughput by kind and outcome",
        "operations per second",
        0f64..highest * 1.15,
        view,
        |chart| {
            for (label, kind_index, outcome_index, points) in series {
                // Colour says the outcome, as everywhere on these pages (green ok, red
                // fail, orange info); the marker's shape says the kind.
                let c = color(OUTCOMES[outcome_index]).to_rgba();
                let style = c.stroke_width(2);
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(failed(FILE))?
                    .label(label)
                    .legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(-8, 0), (8, 0)], style)
                            + marker(kind_index, (0, 0), c)
                    });
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| EmptyElement::at(p) + marker(kind_index, (0, 0), c)),
                    )
                    .map_err(failed(FILE))?;
            }
            Ok(())
        },
    )
}

/// unseen.svg: acknowledged messages no read had returned yet, over time.
pub(crate) fn unseen(view: &RunView, unseen: &Unseen) -> Result<String, PageError> {
    const FILE: &str = "unseen.svg";
    let points: Vec<(f64, f64)> = unseen
        .series
        .iter()
        .map(|(ns, count)| (*ns as f64 / 1e9, *count as f64))
        .collect();
    let highest = points.iter().map(|(_, y)| *y).fold(1.0f64, f64::max) * 1.15;
    // A step line: the count holds until the next change.
    let mut steps = Vec::with_capacity(points.len() * 2);
    for pair in points.windows(2) {
        steps.push(pair[0]);
        steps.push((pair[1].0, pair[0].1));
    }
    if let Some(last) = points.last() {
        steps.push(*last);
        steps.push((view.end_s, last.1));
    }
    plot(
        FILE,
        "Acknowledged but not yet read",
        "unseen messages",
        0f64..highest,
        view,
        |chart| {
            chart
                .draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))
                .map_err(failed(FILE))?
                .label(format!("unseen (at the end: {})", unseen.count))
                .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], BLUE.stroke_width(2)));
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::Window;

    fn view(starts: &[f64]) -> RunView {
        RunView {
            spans: Vec::new(),
            faults: starts
                .iter()
                .map(|s| Window {
                    start_s: *s,
                    end_s: s + 0.5,
                    kind: "partition".into(),
                    detail: String::new(),
                })
                .collect(),
            end_s: 100.0,
        }
    }

    #[test]
    fn fault_names_that_would_overprint_go_to_another_row_or_unnamed() {
        // "partition" takes about 69 px; at 0.1 s per px, 6.9 s.
        let rows = label_rows(&view(&[0.0, 1.0, 2.0, 3.0, 8.0, 30.0]), 0.1);
        assert_eq!(rows, vec![Some(0), Some(1), Some(2), None, Some(0), Some(0)]);
    }
}
