//! `bourse-load run`: stage the accounts and sessions, offer the load at the fixed rate
//! for the given time (or count), drain what is in flight, send each session's barrier
//! (after its reply every push has been delivered), let the market-data subscribers
//! catch up, then verify: nothing lost, duplicated or mismatched, every subscriber's
//! book equal to `depth`, and every account's balances equal to the baseline plus
//! what the load's own clients did.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bourse_gateway::auth::Credentials;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::client::{Client, Counters, Shared};
use crate::ladder::Refiller;
use crate::limits::{BARRIER_TIMEOUT, IN_FLIGHT_PER_CLIENT_MAX, MARKET_DATA_SYNC_TIMEOUT};
use crate::marketdata::{BookCheck, Subscriber};
use crate::mix::{Mix, OP_KINDS, OpKind, Transport};
use crate::model::{ExecTracker, Failures, Ledger};
use crate::reader::{self, ReadSide};
use crate::report::{Measurements, Verification};
use crate::sender::{self, MODE_BARRIER, MODE_IDLE, MODE_LOAD, MODE_STOP, Schedule, SenderReport, Writer};
use crate::server::{ConfigOptions, ServerBinary, ServerProcess, config_text};
use crate::setup::{self, Endpoints, Sessions, Stage};
use crate::stats::{SessionStats, histogram};
use crate::ws::BlockingWs;

/// What a run offers.
#[derive(Clone, Debug)]
pub(crate) struct LoadOptions {
    pub(crate) rate: u64,
    pub(crate) duration: Duration,
    pub(crate) ops: u64,
    pub(crate) sessions: Sessions,
    pub(crate) mix: Mix,
    pub(crate) drain: Duration,
    pub(crate) seed: u64,
    pub(crate) senders: usize,
    pub(crate) readers: usize,
    pub(crate) progress: bool,
}

/// Where the server is, or how to start one.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Running { endpoints: Endpoints, credentials: Credentials },
    Spawn { binary: ServerBinary, durability: String, pipeline: String, workers: usize, data_dir: Option<PathBuf> },
}

/// A server the tool started, with its data directory (a temporary one unless given).
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) process: ServerProcess,
    pub(crate) binary: ServerBinary,
    pub(crate) config: PathBuf,
    pub(crate) data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

pub(crate) fn spawn(
    binary: &ServerBinary,
    options: &ConfigOptions,
    data_dir: Option<&Path>,
) -> anyhow::Result<Spawned> {
    let temp = match data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("bourse-load-").tempdir()?),
    };
    let base = data_dir.map_or_else(|| temp.as_ref().expect("created above").path().to_path_buf(), Path::to_path_buf);
    std::fs::create_dir_all(&base)?;
    let config = base.join("bourse-load.toml");
    std::fs::write(&config, config_text(options)).context("writing the server configuration")?;
    let data = base.join("data");
    let process = ServerProcess::start(binary, &config, &data)?;
    Ok(Spawned { process, binary: binary.clone(), config, data_dir: data, _temp: temp })
}

/// The sender and reader threads of one stretch of load.
pub(crate) struct Phase {
    pub(crate) control: Arc<sender::Control>,
    stop_readers: watch::Sender<bool>,
    senders: Vec<JoinHandle<SenderReport>>,
    readers: Vec<JoinHandle<anyhow::Result<Vec<String>>>>,
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phase")
            .field("senders", &self.senders.len())
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

/// Starts senders and readers over `connections`; the schedule begins at `start`.
pub(crate) fn start_phase(
    shared: &Arc<Shared>,
    connections: Vec<(Writer, ReadSide)>,
    options: &LoadOptions,
    start: Instant,
    ops: u64,
    deadline: Instant,
) -> anyhow::Result<Phase> {
    let control = Arc::new(sender::Control::default());
    control.mode.store(MODE_LOAD, Ordering::Release);
    let (stop_readers, stop) = watch::channel(false);
    let mut writer_groups: Vec<Vec<Writer>> = (0..options.senders).map(|_| Vec::new()).collect();
    let mut reader_groups: Vec<Vec<ReadSide>> = (0..options.readers).map(|_| Vec::new()).collect();
    let trading = connections.iter().filter(|(writer, _)| writer.client.is_some()).count().max(1);
    for (index, (writer, read)) in connections.into_iter().enumerate() {
        writer_groups[index % options.senders].push(writer);
        reader_groups[index % options.readers].push(read);
    }
    let mut readers = Vec::new();
    for (index, group) in reader_groups.into_iter().enumerate() {
        let (shared, stop) = (Arc::clone(shared), stop.clone());
        let thread = std::thread::Builder::new().name(format!("load-reader-{index}"));
        readers.push(thread.spawn(move || reader::run(group, &shared, stop))?);
    }
    let mut senders = Vec::new();
    for (index, group) in writer_groups.into_iter().enumerate() {
        let share = group.iter().filter(|writer| writer.client.is_some()).count() as f64 / trading as f64;
        let schedule =
            Schedule { start, rate: options.rate as f64 * share, ops: (ops as f64 * share).round() as u64, deadline };
        let (shared, control) = (Arc::clone(shared), Arc::clone(&control));
        let thread = std::thread::Builder::new().name(format!("load-sender-{index}"));
        senders.push(thread.spawn(move || sender::run(group, schedule, &shared, &control))?);
    }
    Ok(Phase { control, stop_readers, senders, readers })
}

impl Phase {
    pub(crate) fn set_mode(&self, mode: u8) {
        self.control.mode.store(mode, Ordering::Release);
    }

    /// Stops every thread; returns the senders' reports and the readers' errors.
    pub(crate) fn stop(self) -> anyhow::Result<(Vec<SenderReport>, Vec<String>)> {
        self.set_mode(MODE_STOP);
        let _ = self.stop_readers.send(true);
        let mut reports = Vec::new();
        for sender in self.senders {
            reports.push(sender.join().map_err(|_| anyhow::anyhow!("a sender thread panicked"))?);
        }
        let mut errors = Vec::new();
        for reader in self.readers {
            errors.extend(reader.join().map_err(|_| anyhow::anyhow!("a reader thread panicked"))??);
        }
        Ok((reports, errors))
    }
}

/// Connects every trading session and subscriber.
pub(crate) fn connect_all(endpoints: &Endpoints, stage: &Stage, seed: u64) -> anyhow::Result<Vec<(Writer, ReadSide)>> {
    let mut connections = Vec::new();
    for (client, credentials) in stage.clients.iter().zip(&stage.credentials) {
        let seed = seed ^ (client.identity.index as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
        connections
            .push(setup::connect_client(endpoints, client, credentials.as_ref(), seed).with_context(|| {
                format!("session {} ({})", client.identity.index, client.identity.transport.name())
            })?);
    }
    for (index, subscriber) in stage.subscribers.iter().enumerate() {
        connections.push(setup::connect_subscriber(endpoints, subscriber, seed ^ (0x5B5B_0000 + index as u64))?);
    }
    Ok(connections)
}

pub(crate) fn progress_bar(enabled: bool, length: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(length),
        if enabled { ProgressDrawTarget::stderr_with_hz(5) } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn progress_message(counters: &Counters, last: &mut (Instant, u64)) -> String {
    let acked = counters.acked.load(Ordering::Relaxed);
    let now = Instant::now();
    let rate = (acked - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
    *last = (now, acked);
    format!(
        "sent {}  acked {} ({:.0}/s)  in flight {}  fills {}  failures {}",
        counters.sent.load(Ordering::Relaxed),
        acked,
        rate,
        counters.in_flight.load(Ordering::Relaxed),
        counters.fills.load(Ordering::Relaxed),
        counters.failures.load(Ordering::Relaxed)
    )
}

/// Waits, bounded, until `done` or `deadline`, updating the bar.
pub(crate) fn wait_until(
    bar: &ProgressBar,
    counters: &Counters,
    deadline: Instant,
    mut done: impl FnMut() -> bool,
) -> bool {
    let mut last = (Instant::now(), counters.acked.load(Ordering::Relaxed));
    let mut tick = Instant::now();
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if tick.elapsed() >= Duration::from_millis(250) {
            tick = Instant::now();
            bar.set_message(progress_message(counters, &mut last));
            bar.set_position(bar.elapsed().as_secs().min(bar.length().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The whole `run`.
pub(crate) fn run(options: &LoadOptions, target: &Target) -> anyhow::Result<(crate::report::Report, Measurements)> {
    let (mut spawned, endpoints, credentials, server_text, durability) = match target {
        Target::Running { endpoints, credentials } => {
            (None, *endpoints, credentials.clone(), format!("running server at {}", endpoints.http), None)
        }
        Target::Spawn { binary, durability, pipeline, workers, data_dir } => {
            let config = ConfigOptions {
                fix_sessions: options.sessions.fix,
                durability: durability.clone(),
                pipeline: pipeline.clone(),
                workers: *workers,
            };
            let spawned = spawn(binary, &config, data_dir.as_deref())?;
            let token = spawned.process.admin_token.clone().context("the spawned server printed no admin key")?;
            let credentials =
                Credentials::from_token(&token).map_err(|reason| anyhow::anyhow!("admin key: {reason}"))?;
            let endpoints = Endpoints { http: spawned.process.http, fix: spawned.process.fix };
            let text = binary.describe();
            (Some(spawned), endpoints, credentials, text, Some(format!("{durability} durability, {pipeline} pipeline")))
        }
    };
    let mut admin = setup::admin_session(&endpoints, &credentials).context("the admin session")?;
    let catalog = Catalog::load(&mut admin).context("listing the markets")?;
    let stage = setup::stage(&mut admin, &catalog, options.sessions, options.seed, options.mix.has_cross_border())
        .context("opening and funding accounts")?;
    let connections = connect_all(&endpoints, &stage, options.seed)?;
    let refiller =
        stage.ladder.clone().map(|ladder| Refiller::start(endpoints, credentials.clone(), catalog.clone(), ladder));
    let shared = Arc::new(Shared {
        catalog,
        mix: options.mix.clone(),
        since: Instant::now(),
        counters: Counters::default(),
        exec: Mutex::new(ExecTracker::default()),
        record_acks: false,
    });
    let start = shared.since + Duration::from_millis(50);
    let deadline = start + options.duration;
    let phase = start_phase(&shared, connections, options, start, options.ops, deadline)?;
    let bar = progress_bar(options.progress, options.duration.as_secs().max(1));
    let total_ops = options.ops;
    wait_until(&bar, &shared.counters, deadline + Duration::from_millis(20), || {
        shared.counters.sent.load(Ordering::Relaxed) + shared.counters.shed.load(Ordering::Relaxed) >= total_ops
    });
    let schedule_elapsed = shared.since.elapsed().saturating_sub(Duration::from_millis(50));
    phase.set_mode(MODE_IDLE);
    bar.set_message("draining: waiting for the replies still in flight");
    wait_until(&bar, &shared.counters, Instant::now() + options.drain, || {
        shared.counters.in_flight.load(Ordering::Relaxed) == 0
    });
    let connected = stage.clients.iter().filter(|client| client.lock().connected).count() as u64;
    phase.set_mode(MODE_BARRIER);
    bar.set_message("barrier: every session's last reply");
    let barrier_done = wait_until(&bar, &shared.counters, Instant::now() + BARRIER_TIMEOUT, || {
        shared.counters.barriers_answered.load(Ordering::Relaxed) >= connected
    });
    let ladder = refiller.map(Refiller::stop);
    // The setup session answered no pings while the load ran (the server closes such a
    // session after 45 s): the checks use a fresh one.
    drop(admin);
    let mut admin = setup::admin_session(&endpoints, &credentials).context("the admin session after the load")?;
    let books = sync_market_data(&mut admin, &stage.subscribers)?;
    let overflowed = phase.control.overflowed.load(Ordering::Acquire);
    let (sender_reports, reader_errors) = phase.stop()?;
    bar.finish_and_clear();
    let mut verification = verify(&mut admin, &shared, &stage, books, barrier_done, &reader_errors, overflowed)?;
    verification.add_ladder(ladder);
    // A request shed (its client had too many unanswered) was never sent nor timed: a
    // run with any is not the load it claims to have offered.
    let shed = shared.counters.shed.load(Ordering::Relaxed);
    if shed > 0 {
        *verification.failures.entry("shed".to_owned()).or_default() += shed;
        verification
            .samples
            .entry("shed".to_owned())
            .or_default()
            .push(format!("{shed} requests shed: their clients had {IN_FLIGHT_PER_CLIENT_MAX} unanswered"));
        verification.passed = false;
    }
    setup::revoke_keys(&mut admin, &stage.key_ids);
    drop(admin);
    let stopped = match spawned.as_mut() {
        Some(spawned) => Some(spawned.process.terminate()?.success()),
        None => None,
    };
    let measurements = measurements(&shared, &stage.clients, &sender_reports);
    let context = crate::report::Context {
        mode: "run",
        server: server_text,
        durability,
        options: options.clone(),
        schedule_elapsed,
        server_stopped_cleanly: stopped,
    };
    let report = crate::report::build(&context, &shared, &measurements, verification, None);
    Ok((report, measurements))
}

/// Waits until each subscriber's book reflects the market's last change, then compares.
pub(crate) fn sync_market_data(
    admin: &mut BlockingWs,
    subscribers: &[Arc<Subscriber>],
) -> anyhow::Result<Vec<BookCheck>> {
    let mut checks = Vec::new();
    for subscriber in subscribers {
        for market in &subscriber.markets {
            let depth = setup::depth(admin, market)?;
            let target = depth["market_seq"].as_u64().unwrap_or_default();
            let deadline = Instant::now() + MARKET_DATA_SYNC_TIMEOUT;
            while subscriber.lock().book_seq(market) < target && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            checks.push(subscriber.lock().compare(market, &depth));
        }
    }
    Ok(checks)
}

/// Every check after the load.
pub(crate) fn verify(
    admin: &mut BlockingWs,
    shared: &Shared,
    stage: &Stage,
    books: Vec<BookCheck>,
    barrier_done: bool,
    reader_errors: &[String],
    overflowed: bool,
) -> anyhow::Result<Verification> {
    let mut failures = Failures::default();
    let mut ledger = Ledger::default();
    let mut lost_by_op: BTreeMap<String, u64> = BTreeMap::new();
    let (mut pushes, mut fills) = (0, 0);
    for client in &stage.clients {
        let state = client.lock();
        failures.merge(&state.failures);
        ledger.merge(&state.ledger);
        for op in state.in_flight_ops() {
            *lost_by_op.entry(op.name().to_owned()).or_default() += 1;
        }
        for order in state.vanished_orders() {
            failures.record("order_vanished", || {
                format!("order {order}: refused as unknown, and no fill or cancel ever said it was gone")
            });
        }
        pushes += state.pushes;
        fills += state.fills;
    }
    let mut md_messages = 0;
    for subscriber in &stage.subscribers {
        let state = subscriber.lock();
        failures.merge(&state.failures);
        md_messages += state.messages;
    }
    let lost: u64 = lost_by_op.values().sum();
    if lost > 0 {
        failures.record("lost", || format!("{lost} requests never answered: {lost_by_op:?}"));
    }
    if !barrier_done {
        failures.record("barrier", || "not every session's barrier was answered in time".into());
    }
    if overflowed {
        failures.record("send_backlog", || {
            "a connection's send backlog passed its limit: the server stopped reading".into()
        });
    }
    for error in reader_errors {
        failures.record("connection", || error.clone());
    }
    let final_balances = setup::balances(admin, &shared.catalog, &stage.accounts)?;
    let balance_mismatches = reconcile(&shared.catalog, &stage.baseline, &ledger, &final_balances);
    for mismatch in &balance_mismatches {
        failures.record("balance", || mismatch.clone());
    }
    let exec = shared.exec.lock().expect("exec tracker lock");
    Ok(Verification {
        lost,
        lost_by_op,
        failures: failures.counts.iter().map(|(kind, count)| ((*kind).to_owned(), *count)).collect(),
        samples: failures.samples.iter().map(|(kind, samples)| ((*kind).to_owned(), samples.clone())).collect(),
        accounts_checked: stage.accounts.len(),
        balances_checked: final_balances.len(),
        balance_mismatches: balance_mismatches.len(),
        market_data: books,
        md_messages,
        pushes,
        fills,
        fills_matched: exec.matched,
        fills_unmatched: exec.unmatched(),
        ladder: None,
        passed: failures.total() == 0,
    })
}

/// Compares `baseline + ledger` with `actual` for every (account, asset) either has.
pub(crate) fn reconcile(
    catalog: &Catalog,
    baseline: &HashMap<(u64, usize), i128>,
    ledger: &Ledger,
    actual: &HashMap<(u64, usize), i128>,
) -> Vec<String> {
    let mut keys: Vec<(u64, usize)> =
        baseline.keys().chain(ledger.deltas.keys()).chain(actual.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|(account, asset)| {
            let expected = baseline.get(&(account, asset)).copied().unwrap_or(0)
                + ledger.deltas.get(&(account, asset)).copied().unwrap_or(0);
            let found = actual.get(&(account, asset)).copied().unwrap_or(0);
            (expected != found).then(|| {
                format!(
                    "account {account} {}: the server holds {}, the model expects {} (difference {})",
                    catalog.assets[asset].code,
                    catalog.format_minor(asset, found),
                    catalog.format_minor(asset, expected),
                    catalog.format_minor(asset, found - expected)
                )
            })
        })
        .collect()
}

/// Merges what the sessions and senders measured.
pub(crate) fn measurements(shared: &Shared, clients: &[Arc<Client>], senders: &[SenderReport]) -> Measurements {
    let mut by_transport: BTreeMap<Transport, SessionStats> = BTreeMap::new();
    for client in clients {
        let state = client.lock();
        by_transport.entry(client.identity.transport).or_default().add(&state.stats);
    }
    let mut lag = histogram();
    let mut sent_per_second: Vec<u64> = Vec::new();
    let (mut would_block, mut writes) = (0, 0);
    for report in senders {
        lag.add(&report.lag).expect("same bounds");
        if sent_per_second.len() < report.sent_per_second.len() {
            sent_per_second.resize(report.sent_per_second.len(), 0);
        }
        for (total, count) in sent_per_second.iter_mut().zip(&report.sent_per_second) {
            *total += count;
        }
        would_block += report.would_block;
        writes += report.writes;
    }
    let exec = shared.exec.lock().expect("exec tracker lock").latency.clone();
    Measurements { by_transport, exec, lag, sent_per_second, would_block, writes }
}

/// Operation kinds that were sent, per transport, in stats order.
pub(crate) fn sent_ops(stats: &SessionStats) -> impl Iterator<Item = OpKind> + '_ {
    OP_KINDS.into_iter().filter(|op| stats.ops[op.index()].sent > 0)
}

/// Refuses a run whose options pass a limit.
pub(crate) fn check_options(options: &LoadOptions) -> anyhow::Result<()> {
    use crate::limits::{CLIENTS_MAX, DRAIN_MAX, DURATION_MAX, OPS_MAX, RATE_MAX, SUBSCRIBERS_MAX, THREADS_MAX};
    let clients = options.sessions.ws + options.sessions.fix;
    if clients == 0 || clients > CLIENTS_MAX {
        bail!("--ws + --fix must be 1 to {CLIENTS_MAX} sessions, not {clients}");
    }
    if options.sessions.ws == 0 && !options.mix.has_fix_ops() {
        bail!("FIX sessions send orders only, and this mix has none");
    }
    if options.sessions.subscribers > SUBSCRIBERS_MAX {
        bail!("--md is at most {SUBSCRIBERS_MAX}");
    }
    if options.rate == 0 || options.rate > RATE_MAX {
        bail!("--rate must be 1 to {RATE_MAX} per second");
    }
    if options.duration.is_zero() || options.duration > DURATION_MAX {
        bail!("--duration must be above zero and at most {DURATION_MAX:?}");
    }
    if options.ops == 0 || options.ops > OPS_MAX {
        bail!("--ops must be 1 to {OPS_MAX}");
    }
    if options.drain > DRAIN_MAX {
        bail!("--drain is at most {DRAIN_MAX:?}");
    }
    if !(1..=THREADS_MAX).contains(&options.senders) || !(1..=THREADS_MAX).contains(&options.readers) {
        bail!("--senders and --readers must be 1 to {THREADS_MAX}");
    }
    Ok(())
}
