//! `[webhooks]`: delivery threads, the per-attempt timeout, the retry schedule and
//! the bounds. Every key has a default (`gateway/default.toml` lists them).

use std::time::Duration;

use serde::Deserialize;

/// The `[webhooks]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Delivery threads. An endpoint is served by one at a time (its deliveries stay
    /// in order); a receiver that hangs holds one thread for up to `timeout_ms`.
    pub workers: usize,
    /// One attempt, connect to response headers, at most.
    pub timeout_ms: u64,
    /// The wait after a notification's first failed attempt; doubled after each
    /// further failure…
    pub retry_initial_ms: u64,
    /// …up to this.
    pub retry_max_ms: u64,
    /// A notification is given up after this many failed attempts…
    pub attempts_max: u32,
    /// …or once it is this old (from the command's time), whichever comes first.
    pub age_max_secs: u64,
    /// Registered endpoints, in total…
    pub endpoints_max: usize,
    /// …and per account.
    pub endpoints_per_account_max: usize,
    /// Notifications waiting per endpoint; beyond it new ones for that endpoint are
    /// dropped and counted as failed.
    pub pending_max: usize,
    /// Commands and events the publisher may have handed to the webhook thread and
    /// not yet taken; past it the publisher drops the batch and the webhook thread
    /// derives its notifications again from the journal.
    pub queue_events_max: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            timeout_ms: 5_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 3_600_000,
            attempts_max: 20,
            age_max_secs: 86_400,
            endpoints_max: 256,
            endpoints_per_account_max: 8,
            pending_max: 10_000,
            queue_events_max: 262_144,
        }
    }
}

impl WebhookConfig {
    /// Checks every key's range; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, u64, u64, u64); 10] = [
            ("workers", self.workers as u64, 1, 64),
            ("timeout_ms", self.timeout_ms, 10, 120_000),
            ("retry_initial_ms", self.retry_initial_ms, 1, 86_400_000),
            ("retry_max_ms", self.retry_max_ms, self.retry_initial_ms, 86_400_000),
            ("attempts_max", u64::from(self.attempts_max), 1, 1_000),
            ("age_max_secs", self.age_max_secs, 1, 30 * 86_400),
            ("endpoints_max", self.endpoints_max as u64, 1, 100_000),
            ("endpoints_per_account_max", self.endpoints_per_account_max as u64, 1, 1_000),
            ("pending_max", self.pending_max as u64, 1, 10_000_000),
            ("queue_events_max", self.queue_events_max as u64, 1, 1 << 30),
        ];
        for (key, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(format!("[webhooks] {key} must be {min} to {max}, got {value}"));
            }
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The wait after the `failures`-th failed attempt of a notification (1-based):
    /// `retry_initial_ms × 2^(failures − 1)`, at most `retry_max_ms`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(40);
        let ms = self.retry_initial_ms.saturating_mul(1_u64 << doublings).min(self.retry_max_ms);
        Duration::from_millis(ms)
    }

    pub fn age_max(&self) -> Duration {
        Duration::from_secs(self.age_max_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_wait_up_to_the_cap() {
        let config = WebhookConfig { retry_initial_ms: 1_000, retry_max_ms: 10_000, ..WebhookConfig::default() };
        let waits: Vec<u64> = (1..=6).map(|failures| config.backoff(failures).as_millis() as u64).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(config.backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn the_defaults_validate_and_errors_name_the_key() {
        WebhookConfig::default().validate().unwrap();
        let error = WebhookConfig { workers: 0, ..WebhookConfig::default() }.validate().unwrap_err();
        assert!(error.contains("workers"), "{error}");
        let error =
            WebhookConfig { retry_initial_ms: 5, retry_max_ms: 1, ..WebhookConfig::default() }.validate().unwrap_err();
        assert!(error.contains("retry_max_ms"), "{error}");
    }
}
