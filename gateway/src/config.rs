//! The server's configuration file: `[server]` (listeners, durability, limits),
//! `[fix]` (the FIX acceptor and its sessions), `[webhooks]` (delivery and retries)
//! and `[engine]` (assets and markets, as `bourse_core::config` reads them).
//! `bourse serve` without `--config` uses the embedded `default.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bourse_core::config::Config as EngineConfig;
use bourse_journal::{Durability, JournalConfig};
use bourse_snapshots::runtime::{Pipeline, RuntimeConfig};
use serde::Deserialize;

use crate::fix::config::FixConfig;
use crate::webhooks::WebhookConfig;

/// The configuration `bourse serve` starts from when given none.
pub const DEFAULT_CONFIG: &str = include_str!("../default.toml");

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub server: ServerSection,
    pub fix: FixConfig,
    pub webhooks: WebhookConfig,
    pub engine: EngineConfig,
    /// Where it came from ("embedded default" or a path), for messages.
    pub source: String,
}

/// How journal writes are made durable before a reply leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// Every batch synced before its replies: nothing acknowledged is ever lost.
    Sync,
    /// Synced at most `batch_window_ms` apart: a process crash loses nothing, a power
    /// cut at most that window.
    Batch,
    /// Left to the operating system.
    Async,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// HTTP and WebSocket listener.
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// Data directory when `--data-dir` is not given (relative to the working directory).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_durability")]
    pub durability: DurabilityMode,
    #[serde(default = "default_batch_window_ms")]
    pub batch_window_ms: u64,
    /// `fused`: journal, engine and publisher on one thread (two hand-offs fewer per
    /// batch); `threads`: a thread each, overlapping the stages.
    #[serde(default = "default_pipeline")]
    pub pipeline: Pipeline,
    #[serde(default = "default_snapshot_every_commands")]
    pub snapshot_every_commands: u64,
    #[serde(default = "default_snapshot_every_secs")]
    pub snapshot_every_secs: u64,
    /// Largest request body or WebSocket message, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Open HTTP/WebSocket connections, at most.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// WebSocket sessions per API key, at most.
    #[serde(default = "default_max_sessions_per_key")]
    pub max_sessions_per_key: usize,
    /// Requests per second per API key (token bucket refill)…
    #[serde(default = "default_rate_per_second")]
    pub rate_per_second: u32,
    /// …and the bucket's size.
    #[serde(default = "default_rate_burst")]
    pub rate_burst: u32,
    /// How far a signed request's timestamp may be behind the server's clock…
    #[serde(default = "default_signature_window_secs")]
    pub signature_window_secs: u64,
    /// …and ahead of it, in milliseconds. Also how long after a restart requests are
    /// refused (the previous process's nonces are gone).
    #[serde(default = "default_signature_future_ms")]
    pub signature_future_ms: u64,
    /// actix-web worker threads (0: one per core).
    #[serde(default)]
    pub workers: usize,
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("bourse-data")
}
fn default_durability() -> DurabilityMode {
    DurabilityMode::Batch
}
fn default_pipeline() -> Pipeline {
    Pipeline::Fused
}
fn default_batch_window_ms() -> u64 {
    2
}
fn default_snapshot_every_commands() -> u64 {
    1_000_000
}
fn default_snapshot_every_secs() -> u64 {
    300
}
fn default_max_message_bytes() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_sessions_per_key() -> usize {
    64
}
fn default_rate_per_second() -> u32 {
    20_000
}
fn default_rate_burst() -> u32 {
    40_000
}
fn default_signature_window_secs() -> u64 {
    30
}
fn default_signature_future_ms() -> u64 {
    2_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<ServerSection>,
    #[serde(default)]
    fix: Option<FixConfig>,
    #[serde(default)]
    webhooks: WebhookConfig,
    engine: toml::Table,
}

impl ServerConfig {
    /// The embedded default configuration.
    pub fn embedded() -> anyhow::Result<Self> {
        Self::parse(DEFAULT_CONFIG, "embedded default configuration")
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, source: &str) -> anyhow::Result<Self> {
        let raw: RawConfig = toml::from_str(text).with_context(|| format!("{source}: not a valid configuration"))?;
        let engine_text = toml::to_string(&raw.engine).context("re-serialising [engine]")?;
        let engine = EngineConfig::from_toml_str(&engine_text).with_context(|| format!("{source}: [engine]"))?;
        let server = match raw.server {
            Some(server) => server,
            None => toml::from_str("").context("defaults for [server]")?,
        };
        if server.max_message_bytes < 1024 {
            bail!("{source}: [server] max_message_bytes must be at least 1024");
        }
        if server.signature_future_ms > 60_000 {
            bail!("{source}: [server] signature_future_ms must be at most 60000");
        }
        if server.rate_per_second == 0 || server.rate_burst == 0 {
            bail!("{source}: [server] rate_per_second and rate_burst must be above zero");
        }
        let fix = raw.fix.unwrap_or_default();
        fix.validate().map_err(|error| anyhow::anyhow!("{source}: [fix]: {error}"))?;
        raw.webhooks.validate().map_err(|error| anyhow::anyhow!("{source}: {error}"))?;
        Ok(Self { server, fix, webhooks: raw.webhooks, engine, source: source.to_owned() })
    }

    /// The runtime's settings from `[server]`.
    pub fn runtime(&self) -> RuntimeConfig {
        let durability = match self.server.durability {
            DurabilityMode::Sync => Durability::Sync,
            DurabilityMode::Batch => Durability::Batch { interval: Duration::from_millis(self.server.batch_window_ms) },
            DurabilityMode::Async => Durability::Async,
        };
        RuntimeConfig {
            journal: JournalConfig { durability, ..JournalConfig::default() },
            pipeline: self.server.pipeline,
            snapshot_every_commands: self.server.snapshot_every_commands,
            snapshot_every: Duration::from_secs(self.server.snapshot_every_secs),
            ..RuntimeConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_loads_with_assets_markets_and_limits() {
        let config = ServerConfig::embedded().unwrap();
        for code in ["USD", "EUR", "GBP", "JPY", "CNY", "BTC", "USDT"] {
            assert!(config.engine.assets().find(code).is_some(), "{code} missing");
        }
        assert!(config.engine.markets().len() >= 6);
        assert_eq!(config.server.durability, DurabilityMode::Batch);
        assert!(config.fix.listen.is_some());
    }

    #[test]
    fn errors_name_the_section() {
        let error = ServerConfig::parse("[server]\nhttp = \"nowhere\"\n[engine]\nassets = []\n", "test").unwrap_err();
        assert!(format!("{error:#}").contains("test"), "{error:#}");
        let error = ServerConfig::parse("[engine]\nassets = [{ code = \"usd\", scale = 2 }]\n", "test").unwrap_err();
        assert!(format!("{error:#}").contains("[engine]"), "{error:#}");
        let error = ServerConfig::parse("[engine]\nassets = []\n[bogus]\n", "test").unwrap_err();
        assert!(format!("{error:#}").contains("bogus"), "{error:#}");
    }
}
