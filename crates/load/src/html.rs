//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched) that
//! opens offline. Charts: throughput over time, latency over time, the latency percentile
//! distribution on a "nines" scale, and CPU per process over time; tables: settings, results,
//! latency, errors, outcomes, processes and the ledger.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::LoadError;
use crate::report::{self, Report, pace_text, split_text};

impl Report {
    /// Writes the self-contained HTML report (inline SVG, no scripts, nothing fetched).
    pub fn write_html(&self, path: &Path) -> Result<(), LoadError> {
        report::write(path, &render(self))
    }
}

/// Chart width and plot-area height in SVG user units.
const WIDTH: f64 = 760.0;
const PLOT_HEIGHT: f64 = 210.0;
/// Margins: left (axis labels), right (room for the last tick label), bottom (axis labels).
const LEFT: f64 = 64.0;
const RIGHT: f64 = 30.0;
const BOTTOM: f64 = 40.0;
/// Height of one legend row; the legend wraps above the plot.
const LEGEND_ROW: f64 = 16.0;
/// Series colours, in order.
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
/// The right end of the percentile axis: 99.999 %.
const MAX_NINES: f64 = 5.0;

/// One line of a chart.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// How an axis maps values.
#[derive(Clone, Copy, PartialEq)]
enum Scale {
    Linear,
    Log10,
}

/// A chart's axes.
struct Axes<'a> {
    x_label: &'a str,
    y_label: &'a str,
    y_scale: Scale,
    /// Custom x tick labels at given x values; none means evenly spaced numbers.
    x_ticks: Option<Vec<(f64, String)>>,
}

/// Renders the report as a page.
pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let title = format!("yibao load — {}", escape(&report.started_at));
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    );
    verdict(&mut page, report);
    results(&mut page, report);
    timeline_charts(&mut page, report);
    percentile_chart(&mut page, report);
    latency_table(&mut page, report);
    cpu_chart(&mut page, report);
    tables(&mut page, report);
    let _ = write!(
        page,
        "<h2>Settings</h2><pre>{}</pre>\n</body></html>\n",
        escape(&serde_json::to_string_pretty(&report.options).unwrap_or_default())
    );
    page
}

/// Throughput and end-to-end latency over time.
fn timeline_charts(page: &mut String, report: &Report) {
    let timeline = &report.timeline;
    let _ = write!(page, "<h2>Throughput over time</h2>");
    page.push_str(&chart(
        &[
            Series {
                name: "transfers/s (expected outcome)".into(),
                points: timeline
                    .iter()
                    .map(|s| (s.at_s, s.succeeded_per_s))
                    .collect(),
            },
            Series {
                name: "failed/s".into(),
                points: timeline.iter().map(|s| (s.at_s, s.failed_per_s)).collect(),
            },
        ],
        &Axes {
            x_label: "seconds",
            y_label: "per second",
            y_scale: Scale::Linear,
            x_ticks: None,
        },
    ));
    let _ = write!(page, "<h2>End-to-end latency over time (per second)</h2>");
    page.push_str(&chart(
        &[
            Series {
                name: "p50".into(),
                points: timeline.iter().map(|s| (s.at_s, s.p50_ms)).collect(),
            },
            Series {
                name: "p99".into(),
                points: timeline.iter().map(|s| (s.at_s, s.p99_ms)).collect(),
            },
        ],
        &Axes {
            x_label: "seconds",
            y_label: "ms",
            y_scale: Scale::Log10,
            x_ticks: None,
        },
    ));
}

/// Latency by percentile on a "nines" axis, per RPC and for the baseline.
fn percentile_chart(page: &mut String, report: &Report) {
    let _ = write!(page, "<h2>Latency by percentile</h2>");
    let mut percentiles: Vec<Series> = report
        .latency
        .iter()
        .filter(|(_, summary)| summary.count > 0)
        .map(|(name, summary)| Series {
            name: name.clone(),
            points: plotted(&summary.curve),
        })
        .collect();
    if let Some(baseline) = &report.baseline {
        percentiles.push(Series {
            name: "baseline Health/Check".into(),
            points: plotted(&baseline.latency.curve),
        });
    }
    page.push_str(&chart(
        &percentiles,
        &Axes {
            x_label: "percentile",
            y_label: "ms",
            y_scale: Scale::Log10,
            x_ticks: Some(
                [
                    (0.0, "0"),
                    (1.0, "90"),
                    (2.0, "99"),
                    (3.0, "99.9"),
                    (4.0, "99.99"),
                    (5.0, "99.999"),
                ]
                .iter()
                .map(|(x, label)| (*x, (*label).to_owned()))
                .collect(),
            ),
        },
    ));
}

/// CPU per process over time, if any process was measured.
fn cpu_chart(page: &mut String, report: &Report) {
    let timeline = &report.timeline;
    let mut names: Vec<String> = timeline
        .iter()
        .flat_map(|s| s.cpu_cores.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        let _ = write!(page, "<h2>CPU per process over time</h2>");
        let series: Vec<Series> = names
            .iter()
            .map(|name| Series {
                name: name.clone(),
                points: timeline
                    .iter()
                    .map(|s| (s.at_s, s.cpu_cores.get(name).copied().unwrap_or(0.0)))
                    .collect(),
            })
            .collect();
        page.push_str(&chart(
            &series,
            &Axes {
                x_label: "seconds",
                y_label: "cores busy",
                y_scale: Scale::Linear,
                x_ticks: None,
            },
        ));
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;\
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}\
svg{background:#fff;border:1px solid #ddd}pre{background:#f8f8f8;padding:1em;overflow:auto}";

/// The headline: ledger verdict and errors.
fn verdict(page: &mut String, report: &Report) {
    let (class, text) = match (report.ledger.holds, &report.ledger.not_checked) {
        (true, None) => (
            "ok",
            "ledger holds: conservation to the cent, no open transfer",
        ),
        (true, Some(_)) => (
            "ok",
            "ledger holds: its own books to the cent, no open transfer",
        ),
        (false, _) => ("bad", "ledger does NOT hold"),
    };
    let _ = write!(page, "<p class=\"{class}\">{text}</p>");
    for problem in &report.ledger.problems {
        let _ = write!(page, "<p class=\"bad\">{}</p>", escape(problem));
    }
    if let Some(note) = &report.ledger.not_checked {
        let _ = write!(page, "<p>{}</p>", escape(note));
    }
    let errors = report.errors_total();
    let class = if errors == 0 { "ok" } else { "bad" };
    let _ = write!(page, "<p class=\"{class}\">{errors} failed transfers</p>");
    for warning in &report.warnings {
        let _ = write!(page, "<p class=\"bad\">warning: {}</p>", escape(warning));
    }
}

/// The main figures.
fn results(page: &mut String, report: &Report) {
    let _ = write!(page, "<h2>Results</h2><table>");
    for (name, value) in result_rows(report) {
        let _ = write!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&name),
            escape(&value)
        );
    }
    page.push_str("</table>\n");
}

/// The main figures as (name, value) rows.
fn result_rows(report: &Report) -> Vec<(String, String)> {
    let t = &report.transfers;
    let mut rows = vec![
        ("run".to_owned(), pace_text(&report.options)),
        (
            "machine".to_owned(),
            format!(
                "{} cores, {}, {} MiB, {}",
                report.machine.cores,
                report.machine.cpu,
                report.machine.memory_mib,
                report.machine.os
            ),
        ),
        ("services".to_owned(), report.endpoints.describe()),
        (
            "persons seeded".to_owned(),
            format!(
                "{} from index {} in {:.1} s",
                report.seeding.persons, report.seeding.first_person, report.seeding.seconds
            ),
        ),
        (
            "transfers".to_owned(),
            format!(
                "{} started, {} ok ({} expected refusals), {} failed, {} retries",
                t.started, t.succeeded, t.refused, t.failed, t.retries
            ),
        ),
        (
            "throughput".to_owned(),
            format!("{:.0} transfers/s over {:.1} s", t.per_s, t.seconds),
        ),
        ("stopped because".to_owned(), t.stopped_because.clone()),
    ];
    if let Some(min) = t.min_one_second_per_s {
        rows.push(("lowest one-second rate".to_owned(), format!("{min:.0}/s")));
    }
    if let Some(split) = &report.peer_split {
        rows.push(("latency split".to_owned(), split_text(split)));
    }
    if let Some(baseline) = &report.baseline {
        rows.push((
            "baseline".to_owned(),
            format!(
                "{:.0} Health/Check per s ({} in flight, {:.1} s)",
                baseline.calls_per_s, baseline.concurrency, baseline.seconds
            ),
        ));
        rows.push((
            "ratio transfers/s ÷ baseline".to_owned(),
            format!("{:.3}", report.ratio_to_baseline.unwrap_or(0.0)),
        ));
    }
    rows
}

fn latency_table(page: &mut String, report: &Report) {
    page.push_str(
        "<table><tr><th>latency (ms)</th><th>count</th><th>mean</th><th>p50</th><th>p90</th>\
         <th>p99</th><th>p99.9</th><th>max</th></tr>",
    );
    let baseline = report
        .baseline
        .as_ref()
        .map(|b| ("baseline Health/Check".to_owned(), b.latency.clone()));
    for (name, s) in report
        .latency
        .iter()
        .map(|(n, s)| (n.clone(), s.clone()))
        .chain(baseline)
    {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
             <td>{:.2}</td><td>{:.2}</td></tr>",
            escape(&name),
            s.count,
            s.mean_ms,
            s.p50_ms,
            s.p90_ms,
            s.p99_ms,
            s.p999_ms,
            s.max_ms
        );
    }
    page.push_str("</table>\n");
}

/// Errors, outcomes, processes and the ledger totals.
fn tables(page: &mut String, report: &Report) {
    errors_table(page, report);
    outcomes_table(page, report);
    processes_table(page, report);
    ledger_table(page, report);
}

/// Errors and retries by kind, if there were any.
fn errors_table(page: &mut String, report: &Report) {
    if !report.errors.is_empty() || !report.retried.is_empty() {
        page.push_str("<h2>Errors and retries</h2><table><tr><th>what</th><th>count</th></tr>");
        for (name, count) in &report.errors {
            let _ = write!(
                page,
                "<tr><td>failed: {}</td><td>{count}</td></tr>",
                escape(name)
            );
        }
        for (name, count) in &report.retried {
            let _ = write!(
                page,
                "<tr><td>retried: {}</td><td>{count}</td></tr>",
                escape(name)
            );
        }
        page.push_str("</table>\n");
    }
}

/// How the transfers of each flow ended.
fn outcomes_table(page: &mut String, report: &Report) {
    page.push_str(
        "<h2>Outcomes by flow</h2><table><tr><th>flow</th><th>outcome</th><th>count</th></tr>",
    );
    for (flow, outcomes) in &report.outcomes {
        for (outcome, count) in outcomes {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{count}</td></tr>",
                escape(flow),
                escape(outcome)
            );
        }
    }
    page.push_str("</table>\n");
}

/// CPU and memory of each measured process.
fn processes_table(page: &mut String, report: &Report) {
    if !report.processes.is_empty() {
        page.push_str(
            "<h2>Processes</h2><table><tr><th>process</th><th>CPU s</th><th>cores busy</th>\
             <th>CPU ms per transfer</th><th>RSS MiB after the transfers</th>\
             <th>RSS MiB after the ledger check</th><th>peak RSS MiB</th></tr>",
        );
        let mib = |memory: Option<crate::procstat::Memory>, peak: bool| {
            memory.map_or_else(
                || "–".to_owned(),
                |m| format!("{:.0}", if peak { m.peak_rss_mib } else { m.rss_mib }),
            )
        };
        for p in &report.processes {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.3}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                escape(&p.name),
                p.cpu_seconds,
                p.cpu_cores,
                p.cpu_ms_per_transfer,
                mib(p.memory_after_transfers, false),
                mib(p.memory, false),
                mib(p.memory, true)
            );
        }
        page.push_str("</table>\n");
    }
}

/// Both bureaus' ledger totals.
fn ledger_table(page: &mut String, report: &Report) {
    page.push_str("<h2>Ledger</h2><table><tr><th>total (yuan)</th><th>transfer-out</th><th>transfer-in</th></tr>");
    let (out, inn) = (&report.ledger.out, &report.ledger.inn);
    let rows: [(&str, u64, u64); 7] = [
        (
            "debited to transit",
            out.debited_to_transit_cents,
            inn.debited_to_transit_cents,
        ),
        ("in transit", out.in_transit_cents, inn.in_transit_cents),
        ("settled out", out.settled_out_cents, inn.settled_out_cents),
        ("returned", out.returned_cents, inn.returned_cents),
        (
            "paid to bank",
            out.paid_to_bank_cents,
            inn.paid_to_bank_cents,
        ),
        ("credited", out.credited_cents, inn.credited_cents),
        (
            "open transfers (count)",
            out.open_transfers,
            inn.open_transfers,
        ),
    ];
    for (name, a, b) in rows {
        let (a, b) = if name.ends_with("(count)") {
            (a.to_string(), b.to_string())
        } else {
            (yuan(a), yuan(b))
        };
        let _ = write!(page, "<tr><td>{name}</td><td>{a}</td><td>{b}</td></tr>");
    }
    page.push_str("</table>\n");
}

fn yuan(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The points of a percentile curve to plot: from the 25th percentile on, since the minimum
/// is noise (a stream's first and terminal message may arrive together, at the 1 µs floor).
fn plotted(curve: &[(f64, f64)]) -> Vec<(f64, f64)> {
    curve
        .iter()
        .filter(|(p, _)| *p >= 25.0)
        .map(|(p, ms)| (nines(*p), *ms))
        .collect()
}

/// A percentile on the "nines" axis: 90 → 1, 99 → 2, 99.9 → 3; 100 sits just past 99.999.
fn nines(percentile: f64) -> f64 {
    if percentile >= 100.0 {
        return MAX_NINES;
    }
    (-(1.0 - percentile / 100.0).log10()).clamp(0.0, MAX_NINES)
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A "nice" step for about `target` ticks over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn number(value: f64) -> String {
    if value.abs() >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        // Small values (log-scale ticks like 0.001) keep their significant digits.
        let text = format!("{value:.6}");
        text.trim_end_matches('0').to_owned()
    }
}

/// Where each legend entry goes: (x, row), wrapping at the chart's width; and the row count.
fn legend_layout(series: &[Series]) -> (Vec<(f64, f64)>, f64) {
    let mut places = Vec::with_capacity(series.len());
    let (mut x, mut row) = (LEFT, 0.0);
    for s in series {
        let width = 24.0 + 6.5 * s.name.chars().count() as f64;
        if x > LEFT && x + width > WIDTH - RIGHT {
            x = LEFT;
            row += 1.0;
        }
        places.push((x, row));
        x += width;
    }
    (places, if series.is_empty() { 1.0 } else { row + 1.0 })
}

impl Scale {
    /// Where a value sits on the axis: itself, or its logarithm (of at least 0.001).
    fn position(self, y: f64) -> f64 {
        match self {
            Scale::Linear => y,
            Scale::Log10 => y.max(1e-3).log10(),
        }
    }
}

/// The x axis's extent: the points' (never empty), or the nines axis's when it has fixed ticks.
fn x_range(finite: &[(f64, f64)], axes: &Axes<'_>) -> (f64, f64) {
    let (mut x_min, mut x_max) = finite
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
            (lo.min(*x), hi.max(*x))
        });
    if axes.x_ticks.is_some() {
        x_min = 0.0;
        x_max = MAX_NINES;
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    (x_min, x_max)
}

/// The y axis's extent, in axis positions: from zero with 5 % headroom (linear), or whole
/// decades (logarithmic).
fn y_range(finite: &[(f64, f64)], scale: Scale) -> (f64, f64) {
    let (y_min, y_max) = finite
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, y)| {
            (lo.min(scale.position(*y)), hi.max(scale.position(*y)))
        });
    match scale {
        Scale::Linear => {
            let y_min = y_min.min(0.0);
            let y_max = if y_max <= y_min {
                y_min + 1.0
            } else {
                y_max * 1.05
            };
            (y_min, y_max)
        }
        Scale::Log10 => {
            let y_min = y_min.floor();
            (y_min, y_max.ceil().max(y_min + 1.0))
        }
    }
}

/// The y ticks, in axis positions, with their labels.
fn y_ticks(scale: Scale, y_min: f64, y_max: f64) -> Vec<(f64, String)> {
    match scale {
        Scale::Linear => linear_ticks(y_min, y_max, 5.0, 20),
        Scale::Log10 => {
            let mut ticks = Vec::new();
            let mut exponent = y_min;
            while exponent <= y_max && ticks.len() < 20 {
                ticks.push((exponent, number(10f64.powf(exponent))));
                exponent += 1.0;
            }
            ticks
        }
    }
}

/// Evenly spaced round ticks over `min ..= max`, about `target` of them, at most `limit`.
fn linear_ticks(min: f64, max: f64, target: f64, limit: usize) -> Vec<(f64, String)> {
    let step = nice_step(max - min, target);
    let mut ticks = Vec::new();
    let mut value = (min / step).ceil() * step;
    while value <= max + step * 1e-9 && ticks.len() < limit {
        ticks.push((value, number(value)));
        value += step;
    }
    ticks
}

/// Horizontal grid lines across the plot, labelled at the left; `sy` maps an axis position to
/// the page.
fn y_grid(svg: &mut String, ticks: &[(f64, String)], sy: impl Fn(f64) -> f64) {
    for (y, label) in ticks {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            sy(*y),
            sy(*y),
            LEFT - 6.0,
            sy(*y) + 4.0,
            escape(label)
        );
    }
}

/// Vertical grid lines down the plot (which starts at `top`), labelled below it; `sx` maps an
/// x value to the page.
fn x_grid(svg: &mut String, ticks: &[(f64, String)], sx: impl Fn(f64) -> f64, top: f64) {
    let plot_h = PLOT_HEIGHT;
    for (x, label) in ticks {
        let _ = write!(
            svg,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            sx(*x),
            sx(*x),
            top + plot_h,
            sx(*x),
            top + plot_h + 14.0,
            escape(label)
        );
    }
}

/// The plot's border and the axes' labels, for a chart `height` high whose plot starts at `top`.
fn frame(svg: &mut String, axes: &Axes<'_>, top: f64, height: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PLOT_HEIGHT;
    let _ = write!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{plot_w:.1}\" height=\"{plot_h:.1}\" \
         fill=\"none\" stroke=\"#999\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        LEFT + plot_w / 2.0,
        height - 6.0,
        escape(axes.x_label),
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(axes.y_label)
    );
}

/// An SVG line chart.
fn chart(series: &[Series], axes: &Axes<'_>) -> String {
    let points = series.iter().flat_map(|s| s.points.iter());
    let finite: Vec<(f64, f64)> = points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .filter(|(_, y)| axes.y_scale == Scale::Linear || *y > 0.0)
        .copied()
        .collect();
    if finite.is_empty() {
        return "<p>(no data)</p>".to_owned();
    }
    let (x_min, x_max) = x_range(&finite, axes);
    let y_of = |y: f64| axes.y_scale.position(y);
    let (y_min, y_max) = y_range(&finite, axes.y_scale);
    let (legend, legend_rows) = legend_layout(series);
    let top = 12.0 + LEGEND_ROW * legend_rows;
    let height = top + PLOT_HEIGHT + BOTTOM;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PLOT_HEIGHT;
    let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
    let sy = |y: f64| top + plot_h - (y - y_min) / (y_max - y_min) * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-size=\"11\" font-family=\"sans-serif\">"
    );
    y_grid(&mut svg, &y_ticks(axes.y_scale, y_min, y_max), sy);
    let x_ticks = match &axes.x_ticks {
        Some(ticks) => ticks.clone(),
        None => linear_ticks(x_min, x_max, 8.0, 30),
    };
    x_grid(&mut svg, &x_ticks, sx, top);
    frame(&mut svg, axes, top, height);
    for (i, (s, (legend_x, legend_row))) in series.iter().zip(legend).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .filter(|(_, y)| axes.y_scale == Scale::Linear || *y > 0.0)
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(y_of(*y))))
            .collect();
        if !path.is_empty() {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        let legend_y = 8.0 + LEGEND_ROW * legend_row;
        let _ = write!(
            svg,
            "<rect x=\"{legend_x:.1}\" y=\"{legend_y:.1}\" width=\"10\" height=\"10\" \
             fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            legend_x + 14.0,
            legend_y + 9.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nines_axis_spreads_the_tail() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
    }

    #[test]
    fn small_tick_labels_keep_their_digits_and_long_legends_wrap() {
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(1000.0), "1000");
        let long = |name: &str| Series {
            name: name.repeat(30),
            points: vec![(0.0, 1.0)],
        };
        let (places, rows) = legend_layout(&[long("a"), long("b"), long("c"), long("d")]);
        assert!(rows >= 2.0, "{places:?}");
        assert!(places.iter().all(|(x, _)| *x < WIDTH - RIGHT));
    }

    #[test]
    fn text_is_escaped_and_charts_are_inline_svg() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
        let svg = chart(
            &[Series {
                name: "s".into(),
                points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)],
            }],
            &Axes {
                x_label: "x",
                y_label: "y",
                y_scale: Scale::Linear,
                x_ticks: None,
            },
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("http://") || svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(
            chart(
                &[],
                &Axes {
                    x_label: "x",
                    y_label: "y",
                    y_scale: Scale::Log10,
                    x_ticks: None
                }
            ),
            "<p>(no data)</p>"
        );
    }
}
