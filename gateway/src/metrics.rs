//! Counters and latency histograms, rendered as Prometheus text at `/metrics`.
//!
//! Counters are atomics indexed by enum discriminant (no map, no lock on the hot
//! path); latencies go into hdrhistograms behind a short mutex, reported as
//! quantiles. The publisher takes each of its histograms' locks once per batch
//! (`Latency::record_all_nanos`), not once per command.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bourse_core::command::CommandKind;
use bourse_core::event::RejectReason;
use bourse_snapshots::runtime::RuntimeStats;
use dashmap::DashMap;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Every command kind, in discriminant order.
pub const KINDS: [CommandKind; 25] = [
    CommandKind::OpenAccount,
    CommandKind::FreezeAccount,
    CommandKind::UnfreezeAccount,
    CommandKind::SetKycTier,
    CommandKind::Deposit,
    CommandKind::Withdraw,
    CommandKind::Transfer,
    CommandKind::Authorize,
    CommandKind::Capture,
    CommandKind::Void,
    CommandKind::SplitPayment,
    CommandKind::Refund,
    CommandKind::AddMarket,
    CommandKind::PlaceOrder,
    CommandKind::CancelOrder,
    CommandKind::CancelAll,
    CommandKind::AmendOrder,
    CommandKind::Tick,
    CommandKind::PublishRules,
    CommandKind::ActivateRules,
    CommandKind::RollbackRules,
    CommandKind::ReviewDecision,
    CommandKind::QuotePayment,
    CommandKind::ExecuteQuote,
    CommandKind::PayCrossBorder,
];

/// What a command came to, for `bourse_commands_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    Accepted = 0,
    Rejected = 1,
    Replayed = 2,
}

const OUTCOMES: [&str; 3] = ["accepted", "rejected", "replayed"];

/// Where a session is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket = 0,
    Fix = 1,
    Http = 2,
}

const TRANSPORTS: [&str; 3] = ["websocket", "fix", "http"];

/// What one webhook delivery attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    Delivered = 0,
    /// Failed; it will be tried again.
    Retried = 1,
    /// Failed for the last time (or too old, or no room to queue it).
    GivenUp = 2,
}

const WEBHOOK_OUTCOMES: [&str; 3] = ["delivered", "retried", "given_up"];

/// A latency histogram from 1 ns to 60 s, 3 significant digits.
#[derive(Debug)]
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        Self(Mutex::new(Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")))
    }
}

impl Latency {
    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).clamp(1, 60_000_000_000);
        self.0.lock().saturating_record(nanos);
    }

    pub fn record_nanos(&self, nanos: u64) {
        self.0.lock().saturating_record(nanos.clamp(1, 60_000_000_000));
    }

    /// Records every value of `nanos` under one lock (each clamped to the histogram's
    /// range): the same histogram as recording them one by one.
    pub fn record_all_nanos(&self, nanos: &[u64]) {
        if nanos.is_empty() {
            return;
        }
        let mut histogram = self.0.lock();
        for value in nanos {
            histogram.saturating_record((*value).clamp(1, 60_000_000_000));
        }
    }

    /// Records `count` values of `nanos` (clamped to the histogram's range).
    pub fn record_nanos_n(&self, nanos: u64, count: u64) {
        let _ = self.0.lock().record_n(nanos.clamp(1, 60_000_000_000), count);
    }

    /// (count, sum in seconds, [(quantile, seconds)]).
    pub fn summary(&self) -> (u64, f64, Vec<(f64, f64)>) {
        let histogram = self.0.lock();
        let count = histogram.len();
        let sum = histogram.mean() * count as f64 / 1e9;
        let quantiles = [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0]
            .iter()
            .map(|&q| (q, histogram.value_at_quantile(q) as f64 / 1e9))
            .collect();
        (count, sum, quantiles)
    }
}

/// `N` counters (`Default` for any `N`, which arrays have only up to 32).
#[derive(Debug)]
struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    commands: [[AtomicU64; 3]; KINDS.len()],
    rejections: Counters<{ RejectReason::ALL.len() }>,
    /// Requests refused by the gateway itself (never reached the engine), by code.
    gateway_errors: DashMap<&'static str, AtomicU64>,
    sessions: [AtomicU64; 3],
    sessions_opened: [AtomicU64; 3],
    slow_consumers: AtomicU64,
    pushes: AtomicU64,
    market_data_updates: AtomicU64,
    webhook_deliveries: [AtomicU64; 3],
    webhook_notifications: AtomicU64,
    webhook_pending: AtomicU64,
    webhook_replays: AtomicU64,
    /// From the sequencer's stamp to the publisher: journal, durability and engine.
    pub pipeline: Latency,
    /// The engine's apply time per command (each command counted at its batch's mean).
    pub engine: Latency,
    /// From the gateway reading a request to writing its reply, per transport.
    pub end_to_end: [Latency; 3],
}

impl Metrics {
    pub fn command(&self, kind: CommandKind, outcome: CommandOutcome) {
        self.commands[kind as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn rejection(&self, reason: RejectReason) {
        self.rejections.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn gateway_error(&self, code: &'static str) {
        self.gateway_errors.entry(code).or_default().fetch_add(1, Ordering::Relaxed);
    }
    pub fn session_opened(&self, transport: Transport) {
        self.sessions[transport as usize].fetch_add(1, Ordering::Relaxed);
        self.sessions_opened[transport as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn session_closed(&self, transport: Transport) {
        self.sessions[transport as usize].fetch_sub(1, Ordering::Relaxed);
    }
    pub fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    pub fn pushed(&self, count: u64) {
        self.pushes.fetch_add(count, Ordering::Relaxed);
    }
    pub fn market_data(&self, count: u64) {
        self.market_data_updates.fetch_add(count, Ordering::Relaxed);
    }
    pub fn webhook_delivery(&self, outcome: WebhookOutcome) {
        self.webhook_deliveries[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn webhook_notifications(&self, count: u64) {
        self.webhook_notifications.fetch_add(count, Ordering::Relaxed);
    }
    pub fn set_webhook_pending(&self, pending: u64) {
        self.webhook_pending.store(pending, Ordering::Relaxed);
    }
    pub fn webhook_replay(&self) {
        self.webhook_replays.fetch_add(1, Ordering::Relaxed);
    }
    pub fn end_to_end(&self, transport: Transport) -> &Latency {
        &self.end_to_end[transport as usize]
    }
    pub fn commands_of(&self, kind: CommandKind, outcome: CommandOutcome) -> u64 {
        self.commands[kind as usize][outcome as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of these counters and the runtime's.
    pub fn render(&self, runtime: &RuntimeStats, publisher_queue: usize) -> String {
        let mut out = String::with_capacity(16 * 1024);
        header(&mut out, "bourse_commands_total", "counter", "Commands applied by the engine, by kind and outcome.");
        for (kind, counts) in KINDS.iter().zip(&self.commands) {
            for (outcome, count) in OUTCOMES.iter().zip(counts) {
                let count = count.load(Ordering::Relaxed);
                let _ = writeln!(out, "bourse_commands_total{{kind=\"{kind:?}\",outcome=\"{outcome}\"}} {count}");
            }
        }
        header(&mut out, "bourse_rejections_total", "counter", "Commands the engine rejected, by reason.");
        for (reason, count) in RejectReason::ALL.iter().zip(&self.rejections.0) {
            let _ = writeln!(out, "bourse_rejections_total{{reason=\"{reason:?}\"}} {}", count.load(Ordering::Relaxed));
        }
        header(
            &mut out,
            "bourse_gateway_errors_total",
            "counter",
            "Requests the gateway refused before the engine, by code.",
        );
        let mut errors: Vec<(&'static str, u64)> =
            self.gateway_errors.iter().map(|entry| (*entry.key(), entry.value().load(Ordering::Relaxed))).collect();
        errors.sort_unstable();
        for (code, count) in errors {
            let _ = writeln!(out, "bourse_gateway_errors_total{{code=\"{code}\"}} {count}");
        }
        header(&mut out, "bourse_sessions", "gauge", "Open sessions by transport.");
        for (transport, count) in TRANSPORTS.iter().zip(&self.sessions) {
            let _ = writeln!(out, "bourse_sessions{{transport=\"{transport}\"}} {}", count.load(Ordering::Relaxed));
        }
        header(&mut out, "bourse_sessions_opened_total", "counter", "Sessions opened since start, by transport.");
        for (transport, count) in TRANSPORTS.iter().zip(&self.sessions_opened) {
            let _ = writeln!(
                out,
                "bourse_sessions_opened_total{{transport=\"{transport}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "bourse_slow_consumers_total",
            "Sessions disconnected for not reading their deliveries.",
            &self.slow_consumers,
        );
        counter(
            &mut out,
            "bourse_pushes_total",
            "Deliveries pushed to sessions for other commands' events.",
            &self.pushes,
        );
        counter(
            &mut out,
            "bourse_market_data_updates_total",
            "Market-data updates published.",
            &self.market_data_updates,
        );
        header(&mut out, "bourse_webhook_deliveries_total", "counter", "Webhook delivery attempts, by outcome.");
        for (outcome, count) in WEBHOOK_OUTCOMES.iter().zip(&self.webhook_deliveries) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(out, "bourse_webhook_deliveries_total{{outcome=\"{outcome}\"}} {count}");
        }
        counter(
            &mut out,
            "bourse_webhook_notifications_total",
            "Webhook notifications queued for delivery.",
            &self.webhook_notifications,
        );
        header(&mut out, "bourse_webhook_pending", "gauge", "Webhook notifications waiting for delivery.");
        let _ = writeln!(out, "bourse_webhook_pending {}", self.webhook_pending.load(Ordering::Relaxed));
        counter(
            &mut out,
            "bourse_webhook_journal_replays_total",
            "Times webhook notifications were derived again from the journal.",
            &self.webhook_replays,
        );
        summary(
            &mut out,
            "bourse_pipeline_latency_seconds",
            "From sequencing to publication: journal, durability, engine.",
            "",
            &self.pipeline,
        );
        summary(
            &mut out,
            "bourse_engine_command_seconds",
            "Engine apply time per command (each command counted at its batch's mean).",
            "",
            &self.engine,
        );
        header(
            &mut out,
            "bourse_end_to_end_latency_seconds",
            "summary",
            "From reading a request to writing its reply.",
        );
        for (transport, latency) in TRANSPORTS.iter().zip(&self.end_to_end) {
            summary_lines(
                &mut out,
                "bourse_end_to_end_latency_seconds",
                &format!("transport=\"{transport}\""),
                latency,
            );
        }
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let gauges = [
            (
                "bourse_runtime_commands_total",
                "counter",
                "Commands sequenced and applied.",
                load(&runtime.commands) as f64,
            ),
            ("bourse_runtime_batches_total", "counter", "Batches journaled.", load(&runtime.batches) as f64),
            (
                "bourse_journal_bytes_total",
                "counter",
                "Bytes appended to the journal.",
                load(&runtime.journal_bytes) as f64,
            ),
            (
                "bourse_journal_syncs_total",
                "counter",
                "Journal syncs (fsync/msync).",
                load(&runtime.journal_syncs) as f64,
            ),
            (
                "bourse_journal_last_sync_seconds",
                "gauge",
                "Duration of the last journal sync.",
                load(&runtime.last_sync_ns) as f64 / 1e9,
            ),
            (
                "bourse_journal_durable_seq",
                "gauge",
                "Highest sequence number known durable.",
                load(&runtime.last_durable_seq) as f64,
            ),
            (
                "bourse_command_queue_depth",
                "gauge",
                "Commands waiting for the sequencer.",
                load(&runtime.queue_depth) as f64,
            ),
            (
                "bourse_publisher_queue_depth",
                "gauge",
                "Applied batches waiting for the publisher.",
                publisher_queue as f64,
            ),
            (
                "bourse_engine_apply_seconds_total",
                "counter",
                "Time the engine spent applying commands.",
                load(&runtime.engine_apply_ns_total) as f64 / 1e9,
            ),
            ("bourse_snapshots_total", "counter", "Snapshots written.", load(&runtime.snapshots) as f64),
            (
                "bourse_snapshots_skipped_total",
                "counter",
                "Snapshots given up.",
                load(&runtime.snapshots_skipped) as f64,
            ),
            (
                "bourse_snapshot_seq",
                "gauge",
                "Sequence number of the last snapshot.",
                load(&runtime.last_snapshot_seq) as f64,
            ),
            (
                "bourse_snapshot_age_seconds",
                "gauge",
                "Time since the last snapshot (-1: none yet).",
                snapshot_age(load(&runtime.last_snapshot_at_ns)),
            ),
            (
                "bourse_snapshot_pause_seconds_max",
                "gauge",
                "Longest engine pause for a snapshot.",
                load(&runtime.snapshot_pause_ns_max) as f64 / 1e9,
            ),
        ];
        for (name, kind, help, value) in gauges {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn snapshot_age(at_ns: u64) -> f64 {
    if at_ns == 0 {
        return -1.0;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64);
    now.saturating_sub(at_ns) as f64 / 1e9
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
}

fn summary(out: &mut String, name: &str, help: &str, labels: &str, latency: &Latency) {
    header(out, name, "summary", help);
    summary_lines(out, name, labels, latency);
}

fn summary_lines(out: &mut String, name: &str, labels: &str, latency: &Latency) {
    let (count, sum, quantiles) = latency.summary();
    let separator = if labels.is_empty() { "" } else { "," };
    for (quantile, seconds) in quantiles {
        let _ = writeln!(out, "{name}{{{labels}{separator}quantile=\"{quantile}\"}} {seconds:e}");
    }
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {sum:e}");
    let _ = writeln!(out, "{name}_count{braces} {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_in_discriminant_order() {
        for (index, kind) in KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, index);
        }
    }

    #[test]
    fn recording_a_batch_of_latencies_at_once_renders_as_recording_each() {
        let (each, batch) = (Latency::default(), Latency::default());
        let nanos = [0, 1, 250, 250, 9_999, 1_234_567, 59_000_000_000, 61_000_000_000, u64::MAX];
        for value in nanos {
            each.record_nanos(value);
        }
        batch.record_all_nanos(&nanos);
        batch.record_all_nanos(&[]);
        assert_eq!(each.summary(), batch.summary());
        assert_eq!(batch.summary().0, nanos.len() as u64);
    }

    #[test]
    fn render_counts_commands_rejections_and_latency() {
        let metrics = Metrics::default();
        metrics.command(CommandKind::Transfer, CommandOutcome::Accepted);
        metrics.command(CommandKind::Transfer, CommandOutcome::Rejected);
        metrics.rejection(RejectReason::InsufficientFunds);
        metrics.gateway_error("bad_signature");
        metrics.end_to_end(Transport::WebSocket).record(Duration::from_micros(250));
        metrics.engine.record_nanos_n(180, 4);
        let text = metrics.render(&RuntimeStats::default(), 0);
        assert!(text.contains("bourse_commands_total{kind=\"Transfer\",outcome=\"accepted\"} 1"), "{text}");
        assert!(text.contains("bourse_rejections_total{reason=\"InsufficientFunds\"} 1"));
        assert!(text.contains("bourse_gateway_errors_total{code=\"bad_signature\"} 1"));
        assert!(text.contains("bourse_end_to_end_latency_seconds_count{transport=\"websocket\"} 1"));
        assert!(text.contains("bourse_snapshot_age_seconds -1"));
        assert!(text.contains("bourse_engine_command_seconds_count 4"), "{text}");
        assert!(text.contains("bourse_engine_command_seconds{quantile=\"0.5\"} 1.8e-7"), "{text}");
        // Every sample line is `name{labels} value` with a parseable value.
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "unparseable sample: {line}");
        }
    }
}
