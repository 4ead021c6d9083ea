//! Benchmark results and how they are shown: one `BenchResult` per measured
//! configuration (throughput and HDR latency percentiles, plus extra named figures), a
//! `Report` per suite, printed as a readable table or as JSON shaped
//! `{"suite": ..., "machine": ..., "results": [{"name": ..., "ops_per_sec": ..., ...}]}`.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Largest latency a histogram records: one minute. Longer samples are clamped.
const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits, with fixed bounds so that
/// recording never allocates.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("constant bounds are valid")
}

/// An extra figure beside the standard ones.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Extra {
    Count(u64),
    Signed(i128),
    Ratio(f64),
    Text(String),
}

impl Serialize for Extra {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Extra::Count(value) => serializer.serialize_u64(*value),
            Extra::Signed(value) => serializer.serialize_i128(*value),
            Extra::Ratio(value) => serializer.serialize_f64(*value),
            Extra::Text(value) => serializer.serialize_str(value),
        }
    }
}

impl std::fmt::Display for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Extra::Count(value) => f.write_str(&thousands(*value)),
            Extra::Signed(value) if *value < 0 => write!(f, "-{}", thousands(value.unsigned_abs() as u64)),
            Extra::Signed(value) => f.write_str(&thousands(*value as u64)),
            Extra::Ratio(value) => f.write_str(&significant(*value)),
            Extra::Text(value) => f.write_str(value),
        }
    }
}

/// Percentiles of a latency histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Percentiles {
    pub(crate) p50_ns: u64,
    pub(crate) p99_ns: u64,
    pub(crate) p999_ns: u64,
    pub(crate) p9999_ns: u64,
    pub(crate) max_ns: u64,
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            p50_ns: histogram.value_at_quantile(0.50),
            p99_ns: histogram.value_at_quantile(0.99),
            p999_ns: histogram.value_at_quantile(0.999),
            p9999_ns: histogram.value_at_quantile(0.9999),
            max_ns: histogram.max(),
        }
    }
}

/// One measured configuration: `ops` operations in `seconds`, latency percentiles,
/// and extra named figures in the order they were added.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BenchResult {
    pub(crate) name: String,
    pub(crate) ops: u64,
    pub(crate) seconds: f64,
    pub(crate) ops_per_sec: f64,
    pub(crate) latency: Percentiles,
    pub(crate) extras: Vec<(String, Extra)>,
}

impl BenchResult {
    /// `ops` operations took `elapsed` (the throughput figure); `latency` holds the
    /// per-operation samples (possibly from a separate pass).
    pub(crate) fn new(name: impl Into<String>, ops: u64, elapsed: Duration, latency: &Histogram<u64>) -> Self {
        let seconds = elapsed.as_secs_f64();
        let ops_per_sec = if seconds > 0.0 { ops as f64 / seconds } else { 0.0 };
        Self { name: name.into(), ops, seconds, ops_per_sec, latency: Percentiles::of(latency), extras: Vec::new() }
    }

    /// Adds a named extra figure; names are `snake_case` with the unit last.
    pub(crate) fn extra(&mut self, name: &str, value: Extra) -> &mut Self {
        self.extras.push((name.to_owned(), value));
        self
    }
}

impl Serialize for BenchResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(9 + self.extras.len()))?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("ops", &self.ops)?;
        map.serialize_entry("seconds", &self.seconds)?;
        map.serialize_entry("ops_per_sec", &self.ops_per_sec)?;
        map.serialize_entry("p50_ns", &self.latency.p50_ns)?;
        map.serialize_entry("p99_ns", &self.latency.p99_ns)?;
        map.serialize_entry("p999_ns", &self.latency.p999_ns)?;
        map.serialize_entry("p9999_ns", &self.latency.p9999_ns)?;
        map.serialize_entry("max_ns", &self.latency.max_ns)?;
        for (name, value) in &self.extras {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A suite's results, with the machine they were measured on. `notes` are shown
/// under the text table only; everything a reader of the JSON needs is in `results`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Report {
    pub(crate) suite: String,
    pub(crate) machine: String,
    pub(crate) results: Vec<BenchResult>,
    pub(crate) notes: Vec<String>,
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("suite", &self.suite)?;
        map.serialize_entry("machine", &self.machine)?;
        map.serialize_entry("results", &self.results)?;
        map.end()
    }
}

impl Report {
    pub(crate) fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// A table of throughput and percentiles, then each result's extras, then notes.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!("bourse-bench {}\nmachine: {}\n\n", self.suite, self.machine);
        let name_width = self.results.iter().map(|result| result.name.len()).max().unwrap_or(4).max(4);
        let header = ["ops/s", "p50 ns", "p99 ns", "p99.9 ns", "p99.99 ns", "max ns"];
        let _ = write!(text, "{:<name_width$}", "name");
        for column in header {
            let _ = write!(text, " {column:>13}");
        }
        text.push('\n');
        for result in &self.results {
            let latency = result.latency;
            let cells = [
                result.ops_per_sec.round() as u64,
                latency.p50_ns,
                latency.p99_ns,
                latency.p999_ns,
                latency.p9999_ns,
                latency.max_ns,
            ];
            let _ = write!(text, "{:<name_width$}", result.name);
            for cell in cells {
                let _ = write!(text, " {:>13}", thousands(cell));
            }
            text.push('\n');
        }
        for result in &self.results {
            let _ = writeln!(text, "\n{}:", result.name);
            let extra_width = result.extras.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
            for (name, value) in &result.extras {
                let _ = writeln!(text, "  {name:<extra_width$}  {value}");
            }
        }
        if !self.notes.is_empty() {
            text.push_str("\nnotes:\n");
            for note in &self.notes {
                let _ = writeln!(text, "- {note}");
            }
        }
        text
    }
}

/// A ratio for reading: whole and grouped from 1,000 up, otherwise three significant
/// digits (`0.0000700`, `72.1`, `381`).
fn significant(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return format!("{value}");
    }
    if value.abs() >= 1000.0 {
        let grouped = thousands(value.abs().round() as u64);
        return if value < 0.0 { format!("-{grouped}") } else { grouped };
    }
    let decimals = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.decimals$}")
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Median of a non-empty list, in any order (the mean of the middle two for an even
/// count): the figure every suite reports of its repeated runs.
pub(crate) fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "the median of at least one value");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) { f64::midpoint(sorted[middle - 1], sorted[middle]) } else { sorted[middle] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_in_any_order() {
        assert!((median(&[1.0, 2.0, 9.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[1.0, 2.0, 4.0, 9.0]) - 3.0).abs() < f64::EPSILON);
        assert!((median(&[9.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[9.0, 4.0, 1.0, 2.0]) - 3.0).abs() < f64::EPSILON);
        assert!((median(&[5.0]) - 5.0).abs() < f64::EPSILON);
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn ratios_keep_three_significant_digits() {
        assert_eq!(significant(0.0), "0");
        assert_eq!(significant(0.00007), "0.0000700");
        assert_eq!(significant(5.2426), "5.24");
        assert_eq!(significant(72.1432), "72.1");
        assert_eq!(significant(381.1368), "381");
        assert_eq!(significant(1_783_363.28), "1,783,363");
    }

    #[test]
    fn json_has_the_standard_fields_first_then_extras() {
        let mut histogram = latency_histogram();
        for value in 1..=1000 {
            histogram.record(value).unwrap();
        }
        let mut result = BenchResult::new("x", 1000, Duration::from_secs(2), &histogram);
        result.extra("accepted_percent", Extra::Ratio(99.5));
        let report =
            Report { suite: "payments".into(), machine: "m".into(), results: vec![result], notes: vec!["n".into()] };
        let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!(json["suite"], "payments");
        assert_eq!(json["results"][0]["ops_per_sec"], 500.0);
        assert_eq!(json["results"][0]["p50_ns"], 500);
        assert_eq!(json["results"][0]["max_ns"], 1000);
        assert_eq!(json["results"][0]["accepted_percent"], 99.5);
        assert!(json.get("notes").is_none());
    }
}
