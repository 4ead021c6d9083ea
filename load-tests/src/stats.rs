//! What is measured: per operation, acknowledgement latency from the intended send
//! time (coordinated omission corrected) and from the actual send, outcomes by error
//! code; fill reports' latency; acknowledgements per second over the run. Each session
//! keeps its own and they are merged at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::limits::{LATENCY_NS_MAX, LATENCY_NS_MIN};
use crate::mix::{OP_KINDS, OpKind};

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_NS_MIN, LATENCY_NS_MAX, 3).expect("valid histogram bounds")
}

pub(crate) fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(LATENCY_NS_MIN));
}

/// A pair of latency histograms: from the intended send time and from the actual one.
#[derive(Clone, Debug)]
pub(crate) struct Latency {
    pub(crate) from_intended: Histogram<u64>,
    pub(crate) from_sent: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { from_intended: histogram(), from_sent: histogram() }
    }
}

impl Latency {
    pub(crate) fn record(&mut self, intended: Instant, sent: Instant, now: Instant) {
        record(&mut self.from_intended, now.saturating_duration_since(intended));
        record(&mut self.from_sent, now.saturating_duration_since(sent));
    }

    pub(crate) fn add(&mut self, other: &Latency) {
        self.from_intended.add(&other.from_intended).expect("same bounds");
        self.from_sent.add(&other.from_sent).expect("same bounds");
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome<'a> {
    Ok,
    /// The engine ran it and rejected it (it has a `seq`).
    Rejected(&'a str),
    /// The gateway refused it before the engine (no `seq`): rate limit, busy…
    Refused(&'a str),
}

/// One operation kind's figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpStats {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) rejected: BTreeMap<String, u64>,
    pub(crate) refused: BTreeMap<String, u64>,
    pub(crate) ack: Latency,
}

impl OpStats {
    pub(crate) fn add(&mut self, other: &OpStats) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (code, count) in &other.rejected {
            *self.rejected.entry(code.clone()).or_default() += count;
        }
        for (code, count) in &other.refused {
            *self.refused.entry(code.clone()).or_default() += count;
        }
        self.ack.add(&other.ack);
    }
}

/// One session's figures, or all sessions' merged.
#[derive(Clone, Debug)]
pub(crate) struct SessionStats {
    pub(crate) ops: Vec<OpStats>,
    /// Acknowledgements per whole second since the run started, per operation kind.
    pub(crate) acks_per_second: Vec<[u32; OP_KINDS.len()]>,
}

impl Default for SessionStats {
    fn default() -> Self {
        SessionStats { ops: vec![OpStats::default(); OP_KINDS.len()], acks_per_second: Vec::new() }
    }
}

impl SessionStats {
    pub(crate) fn acked(
        &mut self,
        op: OpKind,
        intended: Instant,
        sent: Instant,
        now: Instant,
        outcome: Outcome<'_>,
        since: Instant,
    ) {
        let stats = &mut self.ops[op.index()];
        stats.ack.record(intended, sent, now);
        match outcome {
            Outcome::Ok => stats.ok += 1,
            Outcome::Rejected(code) => *stats.rejected.entry(code.to_owned()).or_default() += 1,
            Outcome::Refused(code) => *stats.refused.entry(code.to_owned()).or_default() += 1,
        }
        let second = now.saturating_duration_since(since).as_secs() as usize;
        if self.acks_per_second.len() <= second {
            self.acks_per_second.resize(second + 1, [0; OP_KINDS.len()]);
        }
        self.acks_per_second[second][op.index()] += 1;
    }

    pub(crate) fn add(&mut self, other: &SessionStats) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.add(theirs);
        }
        if self.acks_per_second.len() < other.acks_per_second.len() {
            self.acks_per_second.resize(other.acks_per_second.len(), [0; OP_KINDS.len()]);
        }
        for (mine, theirs) in self.acks_per_second.iter_mut().zip(&other.acks_per_second) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

/// Percentiles of a histogram in nanoseconds, for reports.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) p50_ns: u64,
    pub(crate) p90_ns: u64,
    pub(crate) p99_ns: u64,
    pub(crate) p999_ns: u64,
    pub(crate) p9999_ns: u64,
    pub(crate) max_ns: u64,
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50_ns: histogram.value_at_quantile(0.50),
            p90_ns: histogram.value_at_quantile(0.90),
            p99_ns: histogram.value_at_quantile(0.99),
            p999_ns: histogram.value_at_quantile(0.999),
            p9999_ns: histogram.value_at_quantile(0.9999),
            max_ns: histogram.max(),
        }
    }
}

/// A latency as people read it: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub(crate) fn human_ns(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns_f / 1e6)
    } else {
        format!("{:.2} s", ns_f / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_merge_with_their_codes_and_seconds() {
        let start = Instant::now();
        let mut a = SessionStats::default();
        let mut b = SessionStats::default();
        let later = start + Duration::from_millis(1_500);
        a.acked(OpKind::Transfer, start, start + Duration::from_micros(10), later, Outcome::Ok, start);
        b.acked(
            OpKind::Transfer,
            start,
            start,
            start + Duration::from_micros(30),
            Outcome::Rejected("insufficient_funds"),
            start,
        );
        a.add(&b);
        let transfer = &a.ops[OpKind::Transfer.index()];
        assert_eq!((transfer.ok, transfer.ack.from_sent.len()), (1, 2));
        assert_eq!(transfer.rejected.get("insufficient_funds"), Some(&1));
        assert_eq!(a.acks_per_second.len(), 2);
        assert_eq!(
            (a.acks_per_second[0][OpKind::Transfer.index()], a.acks_per_second[1][OpKind::Transfer.index()]),
            (1, 1)
        );
        let from_intended = Percentiles::of(&transfer.ack.from_intended);
        assert!(from_intended.max_ns >= 1_499_000_000, "the CO-corrected latency counts from the intended time");
        assert_eq!(human_ns(12_345), "12.3 µs");
    }
}
