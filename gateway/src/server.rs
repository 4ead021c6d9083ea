//! `bourse serve`: recover, start the runtime, the publisher, HTTP/WebSocket and FIX;
//! on SIGINT/SIGTERM stop accepting, drain, make the journal durable, snapshot, exit.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bourse_core::Capacity;
use bourse_snapshots::datadir::open_data_dir;
use bourse_snapshots::recovery::recover;
use bourse_snapshots::runtime::{AppliedBatch, Pipeline, Runtime};

use crate::auth::{KeyStore, Verifier, VerifierConfig};
use crate::config::ServerConfig;
use crate::http::AppState;
use crate::hub::{Hub, InlinePublisher};
use crate::metrics::Metrics;
use crate::view::ReadModel;
use crate::webhooks::Webhooks;

/// `bourse serve`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Server configuration (TOML: [server], [fix], [engine]); the embedded default
    /// when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (journal, snapshots, API keys, FIX sequence numbers); the
    /// configuration's `server.data_dir` when absent.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP/WebSocket listen address, overriding the configuration (port 0: any free port).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// FIX listen address, overriding the configuration.
    #[arg(long)]
    pub fix: Option<SocketAddr>,
}

/// Prints a line on stdout and flushes it (scripts and tests read the endpoints).
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// How the runtime's output reaches the publisher.
enum Publishing {
    /// A channel to the publisher thread (`pipeline = "threads"`).
    Thread(crossbeam_channel::Receiver<AppliedBatch>),
    /// On the runtime's thread (`pipeline = "fused"`): the hub goes in this slot once made.
    Inline(Arc<std::sync::OnceLock<Arc<Hub>>>),
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::embedded()?,
    };
    let data_dir = args.data_dir.clone().unwrap_or_else(|| config.server.data_dir.clone());
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let _lock = bourse_snapshots::datadir::DataDirLock::acquire(&data_dir)?;
    say(&format!(
        "bourse {} — configuration: {}; data: {}",
        env!("CARGO_PKG_VERSION"),
        config.source,
        data_dir.display()
    ));

    let stores = open_data_dir(&data_dir).with_context(|| format!("opening {}", data_dir.display()))?;
    let started = Instant::now();
    let recovered = recover(&stores, &config.engine, Capacity::default(), true, |_| {})
        .with_context(|| format!("recovering {}", data_dir.display()))?;
    for failure in &recovered.snapshot_failures {
        say(&format!("warning: skipped a snapshot: {failure}"));
    }
    if let Some(cut) = &recovered.journal.truncation {
        say(&format!(
            "warning: cut a torn journal tail: {} bytes at {} offset {} ({})",
            cut.bytes, cut.segment, cut.offset, cut.reason
        ));
    }
    say(&format!(
        "recovered to seq {} in {:.1?} (snapshot: {}; replayed {} commands, {} checkpoints verified)",
        recovered.engine.last_seq().map_or(0, bourse_core::ids::Seq::get),
        started.elapsed(),
        recovered.snapshot.as_ref().map_or_else(|| "none".to_owned(), |(name, seq)| format!("{name} at seq {seq}")),
        recovered.replayed,
        recovered.checkpoints_verified,
    ));

    let (keys, new_admin) = KeyStore::open(data_dir.join("keys.json")).context("opening the API key store")?;
    let keys = Arc::new(keys);
    if let Some(admin) = new_admin {
        say("");
        say("A new data directory: created an admin API key. It is shown ONCE; the server keeps only a verifier.");
        say(&format!("  export BOURSE_KEY={}", admin.token()));
        say("");
    }

    // Listeners before the runtime starts: a port in use stops the server here, with
    // nothing running yet to shut down.
    let http_addr = args.http.unwrap_or(config.server.http);
    let listener = std::net::TcpListener::bind(http_addr).with_context(|| format!("binding HTTP to {http_addr}"))?;
    let http_addr = listener.local_addr()?;
    let fix_addr = args.fix.or_else(|| config.fix.listen.as_deref().and_then(|text| text.parse().ok()));
    let fix_listener = fix_addr
        .map(|addr| std::net::TcpListener::bind(addr).with_context(|| format!("binding FIX to {addr}")))
        .transpose()?;

    let view = ReadModel::from_engine(&recovered.engine);
    let recovered_seq = recovered.engine.last_seq().map_or(0, bourse_core::ids::Seq::get);
    // Fused: the publisher runs on the runtime's thread, right after the engine.
    let (runtime, publishing) = if config.server.pipeline == Pipeline::Fused {
        let (sink, slot) = InlinePublisher::new();
        let runtime = Runtime::start(&stores, config.runtime(), recovered.engine, &recovered.journal, sink);
        (runtime, Publishing::Inline(slot))
    } else {
        let (output, batches) = crossbeam_channel::bounded(1_024);
        let runtime = Runtime::start(&stores, config.runtime(), recovered.engine, &recovered.journal, output);
        (runtime, Publishing::Thread(batches))
    };
    let runtime = runtime.context("starting the runtime")?;
    let metrics = Arc::new(Metrics::default());
    let markets: Vec<_> = view.markets().iter().map(|market| market.spec.clone()).collect();
    let hub = Hub::new(runtime.submitter(), runtime.stats().clone(), view, metrics);
    let (webhooks, webhook_report) = Webhooks::start(
        &data_dir,
        &config.webhooks,
        &config.engine,
        &markets,
        stores.clone(),
        hub.metrics.clone(),
        recovered_seq,
    )
    .context("starting webhooks")?;
    hub.tap_batches(webhooks.feed());
    say(&format!(
        "webhooks: {} endpoints, {} notifications pending; notifications derived through seq {}",
        webhook_report.endpoints, webhook_report.pending, webhook_report.derive_after
    ));
    let publisher = match publishing {
        Publishing::Thread(batches) => {
            let hub = hub.clone();
            Some(
                std::thread::Builder::new()
                    .name("bourse-publisher".into())
                    .spawn(move || hub.run_publisher(&batches))?,
            )
        }
        Publishing::Inline(slot) => {
            let _ = slot.set(hub.clone());
            None
        }
    };

    let verifier_config = VerifierConfig {
        timestamp_window_ms: config.server.signature_window_secs.saturating_mul(1_000),
        future_skew_ms: config.server.signature_future_ms,
        requests_per_second: std::num::NonZeroU32::new(config.server.rate_per_second)
            .context("rate_per_second is 0")?,
        burst: std::num::NonZeroU32::new(config.server.rate_burst).context("rate_burst is 0")?,
    };
    // Requests stamped before this start (plus the future skew the previous process
    // accepted) are refused: the nonces they used were remembered only by the previous
    // process. Clients are refused for at most `future_skew_ms` after a restart.
    let verifier = Arc::new(
        Verifier::new(keys.clone(), verifier_config)
            .map_err(|error| anyhow::anyhow!("{error}"))?
            .with_start(crate::auth::unix_ms_now() + config.server.signature_future_ms),
    );
    let state = Arc::new(
        AppState::new(hub.clone(), verifier.clone(), keys, config.server.clone()).with_webhooks(webhooks.clone()),
    );

    let fix = match fix_listener {
        Some(listener) => {
            let factory = crate::fix::order_entry::OrderEntry::factory(hub.clone());
            Some(crate::fix::acceptor::spawn(listener, config.fix.clone(), &data_dir.join("fix"), factory)?)
        }
        None => None,
    };

    let system = actix_web::rt::System::new();
    let outcome = system.block_on(async move {
        let server = crate::http::server(state, listener)?;
        let handle = server.handle();
        let running = actix_web::rt::spawn(server);
        let pruning = actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                verifier.prune(crate::auth::unix_ms_now());
            }
        });
        say(&format!("HTTP API:   http://{http_addr}/v1/rpc   (public: /v1/markets, /metrics, /health, /ready)"));
        say(&format!("WebSocket:  ws://{http_addr}/v1/ws"));
        if let Some(fix) = &fix {
            say(&format!("FIX 4.4:    {} ({} sessions configured)", fix.local_addr(), config.fix.sessions.len()));
        }
        say("ready");
        wait_for_signal().await?;
        say("stopping: no new commands; draining what is in flight");
        hub.stop_accepting();
        handle.stop(true).await;
        let _ = running.await;
        pruning.abort();
        if let Some(fix) = fix {
            fix.stop();
        }
        anyhow::Ok(())
    });
    let report = runtime.shutdown();
    if publisher.is_some_and(|publisher| publisher.join().is_err()) {
        bail!("the publisher thread panicked");
    }
    if report.panicked {
        bail!("a runtime thread panicked (the journal was made durable as far as it got; see the log)");
    }
    webhooks.shutdown();
    say(&format!(
        "stopped: journal durable to seq {}, final snapshot at seq {}",
        report.last_seq.map_or(0, bourse_core::ids::Seq::get),
        report.final_snapshot.map_or_else(|| "none".to_owned(), |seq| seq.to_string())
    ));
    outcome
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
