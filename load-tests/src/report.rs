//! What a run reports: a text summary, the same as JSON (`--json`), and an HTML page
//! (`--html FILE`) with SVG plots drawn by plotters: the latency percentile curve of
//! each operation (from the intended send time and from the actual one) and the
//! throughput second by second.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::client::Shared;
use crate::ladder::LadderReport;
use crate::marketdata::BookCheck;
use crate::mix::{OP_KINDS, Transport};
use crate::run::{LoadOptions, sent_ops};
use crate::soak::SoakReport;
use crate::stats::{Latency, Percentiles, SessionStats, histogram, human_ns};

/// What was measured, with the histograms (for the plots).
#[derive(Debug)]
pub(crate) struct Measurements {
    pub(crate) by_transport: BTreeMap<Transport, SessionStats>,
    /// Makers' execution reports, from the taker's send.
    pub(crate) exec: Latency,
    /// How late requests left after they were due.
    pub(crate) lag: Histogram<u64>,
    pub(crate) sent_per_second: Vec<u64>,
    pub(crate) would_block: u64,
    pub(crate) writes: u64,
}

/// The checks after the load.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Verification {
    pub(crate) lost: u64,
    pub(crate) lost_by_op: BTreeMap<String, u64>,
    /// Failures by kind: `duplicated`, `mismatched`, `unmatched_fill`, `fee`,
    /// `out_of_order`, `order_vanished`, `balance`, `md_book`, `lost`, …
    pub(crate) failures: BTreeMap<String, u64>,
    pub(crate) samples: BTreeMap<String, Vec<String>>,
    pub(crate) accounts_checked: usize,
    pub(crate) balances_checked: usize,
    pub(crate) balance_mismatches: usize,
    pub(crate) market_data: Vec<BookCheck>,
    pub(crate) md_messages: u64,
    pub(crate) pushes: u64,
    pub(crate) fills: u64,
    pub(crate) fills_matched: u64,
    pub(crate) fills_unmatched: u64,
    /// What kept the cross-border liquidity topped up, when the mix pays cross-border.
    pub(crate) ladder: Option<LadderReport>,
    pub(crate) passed: bool,
}

impl Verification {
    /// Takes in the liquidity ladder's report: a refiller that stopped on an error
    /// fails the run (the server refused what it should have taken).
    pub(crate) fn add_ladder(&mut self, ladder: Option<LadderReport>) {
        if let Some(error) = ladder.as_ref().and_then(|ladder| ladder.error.clone()) {
            *self.failures.entry("ladder".to_owned()).or_default() += 1;
            self.samples.entry("ladder".to_owned()).or_default().push(error);
            self.passed = false;
        }
        self.ladder = ladder;
    }
}

/// Where the report comes from.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) mode: &'static str,
    pub(crate) server: String,
    pub(crate) durability: Option<String>,
    pub(crate) options: LoadOptions,
    pub(crate) schedule_elapsed: Duration,
    pub(crate) server_stopped_cleanly: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Config {
    pub(crate) rate: u64,
    pub(crate) duration_secs: f64,
    pub(crate) ops: u64,
    pub(crate) ws_sessions: usize,
    pub(crate) fix_sessions: usize,
    pub(crate) md_subscribers: usize,
    pub(crate) mix: String,
    pub(crate) senders: usize,
    pub(crate) readers: usize,
    pub(crate) seed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct OpReport {
    pub(crate) transport: &'static str,
    pub(crate) op: &'static str,
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) rejected: BTreeMap<String, u64>,
    pub(crate) refused: BTreeMap<String, u64>,
    /// From the intended send time (coordinated omission corrected).
    pub(crate) ack: Percentiles,
    pub(crate) ack_from_sent: Percentiles,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct OrdersReport {
    pub(crate) transport: &'static str,
    pub(crate) ack: Percentiles,
    pub(crate) ack_from_sent: Percentiles,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct FillsReport {
    pub(crate) fills: u64,
    pub(crate) maker_reports_matched: u64,
    pub(crate) maker_reports_unmatched: u64,
    /// From the taker's intended send to the maker's execution report.
    pub(crate) exec: Percentiles,
    pub(crate) exec_from_sent: Percentiles,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Second {
    pub(crate) second: usize,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) tool: &'static str,
    pub(crate) mode: &'static str,
    pub(crate) machine: String,
    pub(crate) server: String,
    pub(crate) durability: Option<String>,
    pub(crate) config: Config,
    pub(crate) schedule_secs: f64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) shed: u64,
    pub(crate) sent_per_sec: f64,
    /// Acknowledgements per second over the steady part (whole seconds, first and last left out).
    pub(crate) acked_per_sec: f64,
    pub(crate) orders_acked_per_sec: f64,
    pub(crate) send_lag: Percentiles,
    /// The senders' write system calls, and how many found the socket full.
    pub(crate) writes: u64,
    pub(crate) writes_would_block: u64,
    pub(crate) orders: Vec<OrdersReport>,
    pub(crate) ops: Vec<OpReport>,
    pub(crate) fills: FillsReport,
    pub(crate) verification: Verification,
    pub(crate) timeline: Vec<Second>,
    pub(crate) soak: Option<SoakReport>,
    pub(crate) server_stopped_cleanly: Option<bool>,
    pub(crate) passed: bool,
}

/// The machine: CPU model and logical CPUs.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            line.split_once(':').filter(|(key, _)| key.trim() == "model name").map(|(_, value)| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    format!("{model}, {cpus} logical CPUs, {}/{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// Acknowledgements per second over the whole seconds of the schedule, the first and
/// the last left out (ramp and drain).
fn steady_rate(per_second: &[u64], schedule: Duration) -> f64 {
    let seconds = schedule.as_secs() as usize;
    if seconds <= 2 {
        return per_second.iter().sum::<u64>() as f64 / schedule.as_secs_f64().max(1e-3);
    }
    let window = &per_second[1.min(per_second.len())..(seconds - 1).min(per_second.len())];
    window.iter().sum::<u64>() as f64 / window.len().max(1) as f64
}

pub(crate) fn build(
    context: &Context,
    shared: &Shared,
    measurements: &Measurements,
    verification: Verification,
    soak: Option<SoakReport>,
) -> Report {
    let options = &context.options;
    let mut all = SessionStats::default();
    let mut ops = Vec::new();
    let mut orders = Vec::new();
    for (transport, stats) in &measurements.by_transport {
        all.add(stats);
        let mut order_latency = Latency::default();
        for op in sent_ops(stats) {
            let op_stats = &stats.ops[op.index()];
            if op.is_order() {
                order_latency.add(&op_stats.ack);
            }
            ops.push(OpReport {
                transport: transport.name(),
                op: op.name(),
                sent: op_stats.sent,
                ok: op_stats.ok,
                rejected: op_stats.rejected.clone(),
                refused: op_stats.refused.clone(),
                ack: Percentiles::of(&op_stats.ack.from_intended),
                ack_from_sent: Percentiles::of(&op_stats.ack.from_sent),
            });
        }
        if !order_latency.from_intended.is_empty() {
            orders.push(OrdersReport {
                transport: transport.name(),
                ack: Percentiles::of(&order_latency.from_intended),
                ack_from_sent: Percentiles::of(&order_latency.from_sent),
            });
        }
    }
    let acks: Vec<u64> =
        all.acks_per_second.iter().map(|second| second.iter().map(|count| u64::from(*count)).sum()).collect();
    let order_acks: Vec<u64> = all
        .acks_per_second
        .iter()
        .map(|second| OP_KINDS.iter().filter(|op| op.is_order()).map(|op| u64::from(second[op.index()])).sum())
        .collect();
    let seconds = acks.len().max(measurements.sent_per_second.len());
    let timeline = (0..seconds)
        .map(|second| Second {
            second,
            sent: measurements.sent_per_second.get(second).copied().unwrap_or(0),
            acked: acks.get(second).copied().unwrap_or(0),
        })
        .collect();
    let counters = &shared.counters;
    let sent = counters.sent.load(std::sync::atomic::Ordering::Relaxed);
    let schedule = context.schedule_elapsed;
    let passed = verification.passed
        && context.server_stopped_cleanly != Some(false)
        && soak.as_ref().is_none_or(|soak| soak.passed);
    Report {
        tool: "bourse-load",
        mode: context.mode,
        machine: machine(),
        server: context.server.clone(),
        durability: context.durability.clone(),
        config: Config {
            rate: options.rate,
            duration_secs: options.duration.as_secs_f64(),
            ops: options.ops,
            ws_sessions: options.sessions.ws,
            fix_sessions: options.sessions.fix,
            md_subscribers: options.sessions.subscribers,
            mix: options.mix.describe(),
            senders: options.senders,
            readers: options.readers,
            seed: options.seed,
        },
        schedule_secs: schedule.as_secs_f64(),
        sent,
        acked: counters.acked.load(std::sync::atomic::Ordering::Relaxed),
        shed: counters.shed.load(std::sync::atomic::Ordering::Relaxed),
        sent_per_sec: sent as f64 / schedule.as_secs_f64().max(1e-3),
        acked_per_sec: steady_rate(&acks, schedule),
        orders_acked_per_sec: steady_rate(&order_acks, schedule),
        send_lag: Percentiles::of(&measurements.lag),
        writes: measurements.writes,
        writes_would_block: measurements.would_block,
        orders,
        ops,
        fills: FillsReport {
            fills: verification.fills,
            maker_reports_matched: verification.fills_matched,
            maker_reports_unmatched: verification.fills_unmatched,
            exec: Percentiles::of(&measurements.exec.from_intended),
            exec_from_sent: Percentiles::of(&measurements.exec.from_sent),
        },
        verification,
        timeline,
        soak,
        server_stopped_cleanly: context.server_stopped_cleanly,
        passed,
    }
}

fn latency_cells(p: &Percentiles) -> String {
    format!("{:>9} {:>9} {:>9} {:>9}", human_ns(p.p50_ns), human_ns(p.p99_ns), human_ns(p.p999_ns), human_ns(p.max_ns))
}

fn codes(map: &BTreeMap<String, u64>) -> String {
    map.iter().map(|(code, count)| format!("{code} {count}")).collect::<Vec<_>>().join(", ")
}

/// The text summary.
pub(crate) fn text(report: &Report) -> String {
    let mut out = String::new();
    let config = &report.config;
    let _ = writeln!(
        out,
        "bourse-load {}: {} WebSocket + {} FIX sessions, {} market-data subscribers; mix {}; {}/s offered for {:.0} s",
        report.mode,
        config.ws_sessions,
        config.fix_sessions,
        config.md_subscribers,
        config.mix,
        config.rate,
        config.duration_secs
    );
    let durability = report.durability.as_deref().map(|mode| format!(" ({mode})")).unwrap_or_default();
    let _ = writeln!(out, "server: {}{durability}\nmachine: {}", report.server, report.machine);
    let _ = writeln!(
        out,
        "sent {} in {:.2} s ({:.0}/s); acknowledged {} ({:.0}/s steady, orders {:.0}/s); shed {}; send lag p50 {} p99 {} max {}",
        report.sent,
        report.schedule_secs,
        report.sent_per_sec,
        report.acked,
        report.acked_per_sec,
        report.orders_acked_per_sec,
        report.shed,
        human_ns(report.send_lag.p50_ns),
        human_ns(report.send_lag.p99_ns),
        human_ns(report.send_lag.max_ns)
    );
    let _ = writeln!(out, "sender: {} write calls, {} would have blocked", report.writes, report.writes_would_block);
    let _ =
        writeln!(out, "\nacknowledgement latency: from the intended send time (CO-corrected) | from the actual send");
    let _ = writeln!(
        out,
        "{:<4} {:<16} {:>9} {:>9}  {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9}  rejected / refused",
        "", "op", "sent", "ok", "p50", "p99", "p99.9", "max", "p50", "p99", "p99.9", "max"
    );
    for op in &report.ops {
        let _ = writeln!(
            out,
            "{:<4} {:<16} {:>9} {:>9}  {} | {}  {}{}",
            op.transport,
            op.op,
            op.sent,
            op.ok,
            latency_cells(&op.ack),
            latency_cells(&op.ack_from_sent),
            codes(&op.rejected),
            if op.refused.is_empty() { String::new() } else { format!(" / {}", codes(&op.refused)) }
        );
    }
    for orders in &report.orders {
        let _ = writeln!(
            out,
            "{:<4} {:<16} {:>9} {:>9}  {} | {}",
            orders.transport,
            "all order ops",
            "",
            "",
            latency_cells(&orders.ack),
            latency_cells(&orders.ack_from_sent)
        );
    }
    let fills = &report.fills;
    let _ = writeln!(
        out,
        "fills: {} ({} maker reports matched to their taker's send, {} not); taker send → maker report: {} | {}",
        fills.fills,
        fills.maker_reports_matched,
        fills.maker_reports_unmatched,
        latency_cells(&fills.exec),
        latency_cells(&fills.exec_from_sent)
    );
    verification_text(&mut out, report);
    out
}

fn verification_text(out: &mut String, report: &Report) {
    let verification = &report.verification;
    let _ = writeln!(out, "\nverification: {}", if report.passed { "PASSED" } else { "FAILED" });
    let count = |kind: &str| verification.failures.get(kind).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "  replies: {} lost, {} duplicated, {} mismatched; {} pushes, {} out of order; {} fills, {} unmatched, {} with another fee",
        verification.lost,
        count("duplicated"),
        count("mismatched"),
        verification.pushes,
        count("out_of_order"),
        verification.fills,
        count("unmatched_fill"),
        count("fee")
    );
    let _ = writeln!(
        out,
        "  balances: {} accounts, {} balances; {} differ from {}",
        verification.accounts_checked,
        verification.balances_checked,
        verification.balance_mismatches,
        if report.soak.is_some() {
            "the replayed journal"
        } else {
            "the model (baseline + transfers, captures, fills and fees)"
        }
    );
    let synced = verification.market_data.iter().filter(|book| book.in_sync && book.differences == 0).count();
    let _ = writeln!(
        out,
        "  market data: {} messages; {} of {} books rebuilt from updates equal depth",
        verification.md_messages,
        synced,
        verification.market_data.len()
    );
    if let Some(ladder) = &verification.ladder {
        let _ = writeln!(
            out,
            "  liquidity ladder (account {}, {} levels): {} passes, {} top-up orders ({} lots), {} extra deposits",
            ladder.account, ladder.levels, ladder.passes, ladder.orders_placed, ladder.lots_placed, ladder.deposits
        );
    }
    if let Some(soak) = &report.soak {
        crate::soak::text(out, soak);
    }
    if let Some(clean) = report.server_stopped_cleanly {
        let _ = writeln!(
            out,
            "  server: {}",
            if clean { "stopped cleanly on SIGTERM" } else { "did NOT exit cleanly on SIGTERM" }
        );
    }
    for (kind, count) in &verification.failures {
        let _ = writeln!(out, "  FAILURE {kind}: {count}");
        for sample in verification.samples.get(kind).into_iter().flatten() {
            let _ = writeln!(out, "    e.g. {sample}");
        }
    }
}

// ---- HTML and plots --------------------------------------------------------------------

/// `-log10(1 - q)`: 1 is p90, 2 p99, 3 p99.9…
fn nines(quantile: f64) -> f64 {
    -(1.0 - quantile).max(1e-9).log10()
}

#[allow(clippy::trivially_copy_pass_by_ref)] // plotters hands the formatter a reference
fn percentile_label(x: &f64) -> String {
    let percent = 100.0 * (1.0 - 10_f64.powf(-x));
    if *x < 0.5 { format!("{percent:.0}%") } else { format!("{percent:.*}%", (x.round() as usize).saturating_sub(2)) }
}

/// An SVG of latency percentile curves, one line per histogram.
fn percentile_chart(title: &str, series: &[(String, &Histogram<u64>)]) -> anyhow::Result<String> {
    let max_us = series.iter().map(|(_, histogram)| histogram.max()).max().unwrap_or(1_000) as f64 / 1e3;
    let min_us = series.iter().map(|(_, histogram)| histogram.min()).min().unwrap_or(1_000) as f64 / 1e3;
    // From the power of ten below the fastest sample to above the slowest.
    let floor_us = 10_f64.powf(min_us.max(0.1).log10().floor());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0_f64..5_f64, (floor_us..(max_us * 1.5).max(floor_us * 10.0)).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (µs)")
            .x_labels(6)
            .x_label_formatter(&percentile_label)
            .draw()?;
        for (index, (name, histogram)) in series.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            let points: Vec<(f64, f64)> = histogram
                .iter_quantiles(4)
                .map(|value| (nines(value.quantile_iterated_to()), value.value_iterated_to() as f64 / 1e3))
                .filter(|(x, _)| *x <= 5.0)
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// An SVG of requests sent and acknowledged per second.
fn throughput_chart(report: &Report) -> anyhow::Result<String> {
    let top =
        report.timeline.iter().map(|second| second.sent.max(second.acked)).max().unwrap_or(1).max(1) as f64 * 1.15;
    let end = report.timeline.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("throughput per second", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0_f64..end, 0_f64..top)?;
        chart.configure_mesh().x_desc("seconds since start").y_desc("requests per second").draw()?;
        let lines = [("sent (offered)", BLUE, true), ("acknowledged", RED, false)];
        for (name, color, sent) in lines {
            let points = report
                .timeline
                .iter()
                .map(|second| (second.second as f64 + 0.5, if sent { second.sent } else { second.acked } as f64));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        let offered = report.config.rate as f64;
        chart
            .draw_series(LineSeries::new([(0.0, offered), (end, offered)], BLACK.mix(0.4).stroke_width(1)))?
            .label("target rate");
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The HTML report: the summary and the plots.
pub(crate) fn html(report: &Report, measurements: &Measurements) -> anyhow::Result<String> {
    let mut intended = Vec::new();
    let mut sent = Vec::new();
    for (transport, stats) in &measurements.by_transport {
        for op in sent_ops(stats).filter(|op| *op != crate::mix::OpKind::Barrier) {
            let name = format!("{} {}", transport.name(), op.name());
            intended.push((name.clone(), &stats.ops[op.index()].ack.from_intended));
            sent.push((name, &stats.ops[op.index()].ack.from_sent));
        }
    }
    if !measurements.exec.from_intended.is_empty() {
        intended.push(("fill: taker send → maker report".to_owned(), &measurements.exec.from_intended));
        sent.push(("fill: taker send → maker report".to_owned(), &measurements.exec.from_sent));
    }
    let empty = histogram();
    if intended.is_empty() {
        intended.push(("(nothing acknowledged)".to_owned(), &empty));
        sent.push(("(nothing acknowledged)".to_owned(), &empty));
    }
    let charts = [
        percentile_chart(
            "acknowledgement latency from the intended send time (coordinated omission corrected)",
            &intended,
        )?,
        percentile_chart("acknowledgement latency from the actual send", &sent)?,
        throughput_chart(report)?,
    ];
    let mut page = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>bourse-load report</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1000px}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}</style></head><body>\n",
    );
    let _ = writeln!(page, "<h1>bourse-load {}: {}</h1>", report.mode, if report.passed { "passed" } else { "FAILED" });
    let _ = writeln!(page, "<pre>{}</pre>", escape(&text(report)));
    for chart in charts {
        let _ = writeln!(page, "<div>{chart}</div>");
    }
    page.push_str("</body></html>\n");
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_labels_read_as_percentiles() {
        assert_eq!(percentile_label(&0.0), "0%");
        assert_eq!(percentile_label(&1.0), "90%");
        assert_eq!(percentile_label(&2.0), "99%");
        assert_eq!(percentile_label(&3.0), "99.9%");
        assert_eq!(percentile_label(&5.0), "99.999%");
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_latency_chart_is_an_svg_with_its_legend() {
        let mut histogram = histogram();
        for value in 1..10_000_u64 {
            histogram.record(value * 1_000).unwrap();
        }
        let svg = percentile_chart("test", &[("ws place_order".to_owned(), &histogram)]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("ws place_order"), "{}", &svg[..200.min(svg.len())]);
    }
}
