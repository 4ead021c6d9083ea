//! The cost of reading the clock. A latency pass brackets each operation with
//! `Instant::now()` and `Instant::elapsed()`, so every sample it records includes one
//! such pair; this measures the pair around nothing, for readers to subtract.

use std::hint::black_box;
use std::time::Instant;

use crate::report::{Percentiles, latency_histogram};

/// Samples taken to measure the overhead.
const SAMPLES: usize = 1_000_000;

/// What one `Instant::now()` + `elapsed()` pair costs on this machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClockOverhead {
    pub(crate) pair_ns: Percentiles,
    pub(crate) pair_ns_mean: f64,
}

/// Times `SAMPLES` empty regions exactly as a latency pass times an operation.
pub(crate) fn measure_overhead() -> ClockOverhead {
    let mut histogram = latency_histogram();
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let elapsed = black_box(start).elapsed();
        histogram.saturating_record(elapsed.as_nanos() as u64);
    }
    ClockOverhead { pair_ns: Percentiles::of(&histogram), pair_ns_mean: histogram.mean() }
}
