//! `bourse-load soak`: steady load on a server the tool starts itself, killed with
//! SIGKILL every `--kill-every` (mid-load) and restarted on the same data directory.
//!
//! After each kill, before the restart, the tool reads the journal itself (read-only,
//! with `bourse-journal`) and replays the new records through its own `Engine`, kept
//! from the start of the soak: every command a client had an acknowledgement for must
//! be there, at the sequence number the reply gave, with the same content (kind,
//! account, order, payment or quote, amount) and the same outcome (accepted or rejected, the
//! same order or payment id). After the restart the balances the server reports must
//! equal the replayed engine's, available and held. The clients reconnect (new logins,
//! FIX logons), learn their resting orders from the server and go on. At the end the
//! server is stopped with SIGTERM and the same checks run once more.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_core::command::{Command, OrderRef, SequencedCommand};
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, Seq};
use bourse_core::{Capacity, Engine};
use bourse_gateway::auth::Credentials;
use bourse_journal::codec::decode_command;
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{JournalError, open_and_check, read_range};
use rand::Rng as _;
use rand::SeedableRng as _;
use serde::Serialize;
use serde_json::json;

use crate::catalog::Catalog;
use crate::client::{AckRecord, Client, Counters, Shared};
use crate::ladder::{LadderReport, Refiller};
use crate::limits::{BARRIER_TIMEOUT, FAILURE_SAMPLES_MAX};
use crate::mix::OpKind;
use crate::model::ExecTracker;
use crate::report::{Context as ReportContext, Measurements, Report};
use crate::run::{self, LoadOptions, Spawned};
use crate::sender::{MODE_BARRIER, MODE_IDLE, SenderReport};
use crate::server::{ConfigOptions, ServerBinary, ServerProcess};
use crate::setup::{self, Endpoints, Stage};
use crate::ws::BlockingWs;

/// What the soak does besides the load.
#[derive(Clone, Debug)]
pub(crate) struct SoakOptions {
    pub(crate) kill_every: Duration,
    pub(crate) binary: ServerBinary,
    pub(crate) durability: String,
    pub(crate) pipeline: String,
    pub(crate) workers: usize,
    pub(crate) data_dir: Option<std::path::PathBuf>,
}

/// One kill and restart, or the final stop.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct RestartReport {
    /// `kill` (SIGKILL) or `stop` (SIGTERM, at the end).
    pub(crate) how: &'static str,
    pub(crate) at_secs: f64,
    /// Commands acknowledged (with a sequence number) since the previous check…
    pub(crate) acknowledged: u64,
    /// …found in the journal at that sequence number with the same content and outcome…
    pub(crate) accounted_for: u64,
    /// …not in the journal at all…
    pub(crate) missing: u64,
    /// …or different there.
    pub(crate) different: u64,
    /// Requests in flight when the server died (their outcome is whatever the journal holds).
    pub(crate) in_flight_at_kill: u64,
    pub(crate) journal_last_seq: u64,
    pub(crate) replayed: u64,
    /// A torn journal tail the read-only open reported.
    pub(crate) torn_tail: bool,
    /// From spawning the server again to its `ready`.
    pub(crate) restart_ms: u64,
    /// Balances the restarted (or stopping) server reports, compared with the replayed engine's.
    pub(crate) balances_checked: usize,
    pub(crate) balances_different: usize,
    pub(crate) samples: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct SoakReport {
    pub(crate) kill_every_secs: f64,
    pub(crate) restarts: Vec<RestartReport>,
    pub(crate) acknowledged: u64,
    pub(crate) accounted_for: u64,
    pub(crate) passed: bool,
}

/// The tool's own replay of the server's journal.
struct Replay {
    engine: Engine,
    applied: u64,
    events: Vec<Event>,
}

impl Replay {
    /// Applies the journal records after the last one applied; checks `acks` against them.
    fn catch_up(&mut self, data_dir: &Path, acks: Vec<AckRecord>, report: &mut RestartReport) -> anyhow::Result<()> {
        let stores = bourse_snapshots::datadir::open_data_dir(data_dir)?;
        let opened = open_and_check(&stores.journal, false).context("opening the journal read-only")?;
        report.torn_tail = opened.truncation.is_some();
        report.journal_last_seq = opened.last_seq.map_or(0, Seq::get);
        report.acknowledged = acks.len() as u64;
        let mut by_seq: HashMap<u64, AckRecord> = HashMap::with_capacity(acks.len());
        for ack in acks {
            if by_seq.insert(ack.seq, ack).is_some() {
                report.different += 1;
                sample(report, format!("two acknowledgements named seq {}", ack.seq));
            }
        }
        let Some(last) = opened.last_seq.filter(|last| last.get() > self.applied) else {
            self.missing(by_seq, report);
            return Ok(());
        };
        read_range::<JournalError>(&stores.journal, Seq::new(self.applied + 1), Some(last), |record| {
            if record.kind == KIND_CHECKPOINT {
                return Ok(());
            }
            let command = decode_command(record.seq, record.kind, record.payload)?;
            let command = SequencedCommand { seq: record.seq, timestamp: record.timestamp, command };
            self.events.clear();
            self.engine.apply(&command, &mut self.events);
            self.applied = record.seq.get();
            report.replayed += 1;
            if let Some(ack) = by_seq.remove(&record.seq.get()) {
                match compare(&ack, &command.command, &self.events) {
                    Ok(()) => report.accounted_for += 1,
                    Err(why) => {
                        report.different += 1;
                        sample(report, format!("seq {}: {why}", ack.seq));
                    }
                }
            }
            Ok(())
        })?;
        self.missing(by_seq, report);
        Ok(())
    }

    fn missing(&self, by_seq: HashMap<u64, AckRecord>, report: &mut RestartReport) {
        for (seq, ack) in by_seq {
            report.missing += 1;
            sample(
                report,
                format!("acknowledged {} at seq {seq} is not in the journal (it ends at {})", ack.op, self.applied),
            );
        }
    }

    /// `available + held` of every asset the engine has for `accounts`, as the catalog indexes assets.
    fn balances(&self, catalog: &Catalog, accounts: &[u64]) -> HashMap<(u64, usize), (i128, i128)> {
        let mut out = HashMap::new();
        for account in accounts {
            for (index, asset) in catalog.assets.iter().enumerate() {
                let Some((id, _)) = self.engine.assets().find(&asset.code) else { continue };
                let Some(balance) = self.engine.balance(AccountId::new(*account as u32), id) else { continue };
                let (available, held) = (balance.available().minor_units(), balance.held().minor_units());
                out.insert((*account, index), (i128::from(available), i128::from(held)));
            }
        }
        out
    }
}

fn sample(report: &mut RestartReport, text: String) {
    if report.samples.len() < FAILURE_SAMPLES_MAX {
        report.samples.push(text);
    }
}

/// Whether the journaled `command` and its replayed `events` are what `ack` said.
fn compare(ack: &AckRecord, command: &Command, events: &[Event]) -> Result<(), String> {
    let rejected = matches!(events.last(), Some(Event::Rejected { .. }));
    if rejected == ack.accepted {
        return Err(format!(
            "{} was {} but the replay {}",
            ack.op,
            if ack.accepted { "accepted" } else { "rejected" },
            if rejected { "rejects it" } else { "accepts it" }
        ));
    }
    let by_id = |order: &OrderRef| match order {
        OrderRef::Id(id) => Some(id.get()),
        OrderRef::Client(_) => None,
    };
    let made_payment = || {
        events.iter().find_map(|event| match event {
            Event::Transferred { payment, .. }
            | Event::Authorized { payment, .. }
            | Event::CrossBorderPaid { payment, .. } => Some(payment.get()),
            _ => None,
        })
    };
    let (kind_ok, by, target, amount) = match command {
        Command::PlaceOrder(place) => {
            let id = events.iter().find_map(|event| match event {
                Event::OrderAccepted { order, .. } => Some(order.get()),
                _ => None,
            });
            (matches!(ack.op, OpKind::PlaceOrder | OpKind::PlaceIoc | OpKind::Barrier), place.by, id, None)
        }
        Command::CancelOrder(cancel) => {
            (matches!(ack.op, OpKind::CancelOrder | OpKind::Barrier), cancel.by, by_id(&cancel.order), None)
        }
        Command::AmendOrder(amend) => (ack.op == OpKind::AmendOrder, amend.by, by_id(&amend.order), None),
        Command::Transfer(transfer) => (ack.op == OpKind::Transfer, transfer.by, made_payment(), Some(transfer.amount)),
        Command::Authorize(authorize) => {
            (ack.op == OpKind::Authorize, authorize.by, made_payment(), Some(authorize.amount))
        }
        Command::Capture(capture) => {
            (ack.op == OpKind::Capture, capture.by, Some(capture.payment.get()), Some(capture.amount))
        }
        Command::Void(void) => (ack.op == OpKind::Void, void.by, Some(void.payment.get()), None),
        Command::PayCrossBorder(pay) => {
            (ack.op == OpKind::PayCrossBorder, pay.by, made_payment(), Some(pay.amount.amount()))
        }
        Command::QuotePayment(quote) => {
            let id = events.iter().find_map(|event| match event {
                Event::Quoted { quote, .. } => Some(quote.get()),
                _ => None,
            });
            (ack.op == OpKind::QuotePayment, quote.by, id, Some(quote.amount.amount()))
        }
        Command::ExecuteQuote(execute) => (ack.op == OpKind::ExecuteQuote, execute.by, made_payment(), None),
        other => return Err(format!("{} acknowledged, but the journal holds {:?}", ack.op, other.kind())),
    };
    if !kind_ok {
        return Err(format!("{} acknowledged, but the journal holds {:?}", ack.op, command.kind()));
    }
    if u64::from(by.get()) != ack.by {
        return Err(format!("{} for account {}, but the journal's is for {}", ack.op, ack.by, by.get()));
    }
    if ack.accepted && ack.target.is_some() && ack.target != target {
        return Err(format!("{} named {:?}, the replay {target:?}", ack.op, ack.target));
    }
    if let (Some(expected), Some(amount)) = (ack.amount, amount)
        && i128::from(amount.minor_units()) != expected
    {
        return Err(format!("{} of {expected}, but the journal's is {}", ack.op, amount.minor_units()));
    }
    Ok(())
}

/// Compares the server's balances with the replayed engine's.
fn compare_balances(
    admin: &mut BlockingWs,
    catalog: &Catalog,
    replay: &Replay,
    accounts: &[u64],
    report: &mut RestartReport,
) -> anyhow::Result<()> {
    let engine = replay.balances(catalog, accounts);
    for account in accounts {
        let reply = admin.call_ok(json!({"op": "balances", "account": account}))?;
        for balance in reply["result"]["balances"].as_array().context("balances: no list")? {
            let code = balance["asset"].as_str().unwrap_or_default();
            let Some(asset) = catalog.asset(code) else { continue };
            let amount = |name: &str| balance[name].as_str().and_then(|text| catalog.minor(asset, text));
            let server = (amount("available").unwrap_or(-1), amount("held").unwrap_or(-1));
            report.balances_checked += 1;
            let replayed = engine.get(&(*account, asset)).copied().unwrap_or((0, 0));
            if server != replayed {
                report.balances_different += 1;
                sample(
                    report,
                    format!("account {account} {code}: the server says {server:?}, the replayed journal {replayed:?}"),
                );
            }
        }
    }
    Ok(())
}

/// Takes every session's acknowledgement records.
fn take_acks(clients: &[Arc<Client>]) -> Vec<AckRecord> {
    clients.iter().flat_map(|client| std::mem::take(&mut client.lock().acks)).collect()
}

/// After a restart: the sessions' resting orders, as the server lists them.
fn resync_orders(admin: &mut BlockingWs, catalog: &Catalog, clients: &[Arc<Client>]) -> anyhow::Result<u64> {
    let mut in_flight = 0;
    for client in clients {
        let who = &client.identity;
        let reply = admin.call_ok(json!({"op": "orders", "account": who.account}))?;
        let mut orders = Vec::new();
        for order in reply["result"]["orders"].as_array().context("orders: no list")? {
            let market = order["market"].as_str().and_then(|symbol| catalog.market(symbol));
            let cl = order["client_order_id"]
                .as_str()
                .and_then(|text| text.split_once('.'))
                .and_then(|(_, n)| u64::from_str_radix(n, 16).ok());
            let (Some(market), Some(cl), Some(id)) = (market, cl, order["order_id"].as_u64()) else { continue };
            let spec = &catalog.markets[market];
            let ticks = order["price"].as_str().and_then(|price| spec.ticks(price));
            let lots = order["remaining"].as_str().and_then(|qty| spec.lots(qty));
            if let (Some(ticks), Some(lots)) = (ticks, lots) {
                orders.push((id, market, order["side"] == "buy", ticks, lots, cl));
            }
        }
        in_flight += client.lock().reconnected(orders) as u64;
    }
    Ok(in_flight)
}

fn restart(spawned: &mut Spawned, credentials: &Credentials) -> anyhow::Result<(Endpoints, BlockingWs)> {
    spawned.process = ServerProcess::start(&spawned.binary, &spawned.config, &spawned.data_dir)?;
    let endpoints = Endpoints { http: spawned.process.http, fix: spawned.process.fix };
    let admin = setup::admin_session(&endpoints, credentials)?;
    Ok((endpoints, admin))
}

/// The whole soak.
pub(crate) fn run(options: &LoadOptions, soak: &SoakOptions) -> anyhow::Result<(Report, Measurements)> {
    let config = ConfigOptions {
        fix_sessions: options.sessions.fix,
        durability: soak.durability.clone(),
        pipeline: soak.pipeline.clone(),
        workers: soak.workers,
    };
    let mut spawned = run::spawn(&soak.binary, &config, soak.data_dir.as_deref())?;
    let token = spawned.process.admin_token.clone().context("the spawned server printed no admin key")?;
    let credentials = Credentials::from_token(&token).map_err(|reason| anyhow::anyhow!("admin key: {reason}"))?;
    let mut endpoints = Endpoints { http: spawned.process.http, fix: spawned.process.fix };
    let mut admin = setup::admin_session(&endpoints, &credentials).context("the admin session")?;
    let catalog = Catalog::load(&mut admin).context("listing the markets")?;
    let stage = setup::stage(&mut admin, &catalog, options.sessions, options.seed, options.mix.has_cross_border())
        .context("opening and funding accounts")?;
    let engine_config = bourse_gateway::config::ServerConfig::load(&spawned.config)?.engine;
    let mut replay =
        Replay { engine: Engine::with_capacity(&engine_config, Capacity::default()), applied: 0, events: Vec::new() };
    let shared = Arc::new(Shared {
        catalog,
        mix: options.mix.clone(),
        since: Instant::now(),
        counters: Counters::default(),
        exec: Mutex::new(ExecTracker::default()),
        record_acks: true,
    });
    let soak_end = shared.since + options.duration;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let bar = run::progress_bar(options.progress, options.duration.as_secs().max(1));
    let mut restarts = Vec::new();
    let mut sender_reports: Vec<SenderReport> = Vec::new();
    let mut reader_errors = Vec::new();
    let mut ladder: Option<LadderReport> = None;
    loop {
        let connections = run::connect_all(&endpoints, &stage, options.seed ^ restarts.len() as u64)
            .with_context(|| format!("connecting the sessions (after {} restarts)", restarts.len()))?;
        let refiller = stage
            .ladder
            .clone()
            .map(|ladder| Refiller::start(endpoints, credentials.clone(), shared.catalog.clone(), ladder));
        let start = Instant::now() + Duration::from_millis(20);
        let jitter = soak.kill_every.mul_f64(rng.random_range(0.75..1.25));
        let phase_end = (start + jitter).min(soak_end);
        let last = phase_end >= soak_end;
        // A stretch that ends in a kill is scheduled past it, so the kill lands mid-load.
        let schedule_end = if last { phase_end } else { phase_end + Duration::from_secs(5) };
        let ops = (options.rate as f64 * (schedule_end - start).as_secs_f64()).ceil() as u64;
        let phase = run::start_phase(&shared, connections, options, start, ops.max(1), schedule_end)?;
        run::wait_until(&bar, &shared.counters, phase_end, || false);
        // Stopped before the kill: a refiller does not outlive its server.
        if let Some(stretch) = refiller.map(Refiller::stop) {
            ladder.get_or_insert_default().absorb(stretch);
        }
        if last {
            admin = setup::admin_session(&endpoints, &credentials).context("the admin session after the load")?;
            let outcome = finish(phase, &shared, &stage, &mut admin, &bar).context("finishing the last stretch")?;
            sender_reports.extend(outcome.0);
            reader_errors.extend(outcome.1);
            let books = outcome.2;
            let barrier_done = outcome.3;
            let mut verification = run::verify(&mut admin, &shared, &stage, books, barrier_done, &reader_errors, false)
                .context("verifying")?;
            verification.add_ladder(ladder.take());
            let api = setup::balances(&mut admin, &shared.catalog, &stage.accounts)?;
            let at_secs = shared.since.elapsed().as_secs_f64();
            let status = spawned.process.terminate()?;
            let mut report = RestartReport { how: "stop", at_secs, ..RestartReport::default() };
            replay.catch_up(&spawned.data_dir, take_acks(&stage.clients), &mut report)?;
            let expected: HashMap<(u64, usize), i128> = replay
                .balances(&shared.catalog, &stage.accounts)
                .into_iter()
                .map(|(key, (available, held))| (key, available + held))
                .collect();
            journal_balances(&mut verification, &shared.catalog, &expected, &api, &mut report);
            restarts.push(report);
            bar.finish_and_clear();
            let measurements = run::measurements(&shared, &stage.clients, &sender_reports);
            let summary = summarize(soak.kill_every, restarts);
            let context = ReportContext {
                mode: "soak",
                server: spawned.binary.describe(),
                durability: Some(format!("{} durability, {} pipeline", soak.durability, soak.pipeline)),
                options: options.clone(),
                schedule_elapsed: shared.since.elapsed(),
                server_stopped_cleanly: Some(status.success()),
            };
            let report = crate::report::build(&context, &shared, &measurements, verification, Some(summary));
            return Ok((report, measurements));
        }
        // Kill mid-load, then look at what the journal kept.
        let at_secs = shared.since.elapsed().as_secs_f64();
        spawned.process.kill()?;
        let (reports, _errors) = phase.stop()?;
        sender_reports.extend(reports);
        let mut report = RestartReport { how: "kill", at_secs, ..RestartReport::default() };
        report.in_flight_at_kill = shared.counters.in_flight.swap(0, Ordering::Relaxed);
        replay.catch_up(&spawned.data_dir, take_acks(&stage.clients), &mut report)?;
        let restarted = Instant::now();
        (endpoints, admin) = restart(&mut spawned, &credentials).context("restarting the server")?;
        report.restart_ms = restarted.elapsed().as_millis() as u64;
        compare_balances(&mut admin, &shared.catalog, &replay, &stage.accounts, &mut report)
            .context("comparing balances after the restart")?;
        resync_orders(&mut admin, &shared.catalog, &stage.clients)
            .context("listing resting orders after the restart")?;
        bar.println(restart_line(&report));
        restarts.push(report);
    }
}

/// What the last stretch leaves: the senders' reports, the readers' errors, the
/// market-data checks, and whether every barrier was answered.
type Finished = (Vec<SenderReport>, Vec<String>, Vec<crate::marketdata::BookCheck>, bool);

/// The end of the last stretch: drain, barrier, market data, stop the threads.
fn finish(
    phase: run::Phase,
    shared: &Shared,
    stage: &Stage,
    admin: &mut BlockingWs,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Finished> {
    phase.set_mode(MODE_IDLE);
    run::wait_until(bar, &shared.counters, Instant::now() + Duration::from_secs(10), || {
        shared.counters.in_flight.load(Ordering::Relaxed) == 0
    });
    let before = shared.counters.barriers_answered.load(Ordering::Relaxed);
    let connected = stage.clients.iter().filter(|client| client.lock().connected).count() as u64;
    phase.set_mode(MODE_BARRIER);
    let barrier_done = run::wait_until(bar, &shared.counters, Instant::now() + BARRIER_TIMEOUT, || {
        shared.counters.barriers_answered.load(Ordering::Relaxed) >= before + connected
    });
    let books = run::sync_market_data(admin, &stage.subscribers)?;
    let (reports, errors) = phase.stop()?;
    Ok((reports, errors, books, barrier_done))
}

/// In a soak the balances are checked against the journal replay, not the reply model
/// (which cannot know what the requests in flight at each kill did): the server's final
/// balances must equal the replayed engine's.
fn journal_balances(
    verification: &mut crate::report::Verification,
    catalog: &Catalog,
    expected: &HashMap<(u64, usize), i128>,
    actual: &HashMap<(u64, usize), i128>,
    report: &mut RestartReport,
) {
    verification.failures.remove("balance");
    verification.samples.remove("balance");
    let differences = run::reconcile(catalog, expected, &crate::model::Ledger::default(), actual);
    report.balances_checked = actual.len();
    report.balances_different = differences.len();
    for difference in &differences {
        sample(report, difference.replace("the model expects", "the replayed journal gives"));
    }
    verification.balance_mismatches = differences.len();
    if !differences.is_empty() {
        verification.failures.insert("balance".into(), differences.len() as u64);
        verification.samples.insert("balance".into(), differences.into_iter().take(FAILURE_SAMPLES_MAX).collect());
    }
    verification.passed = verification.failures.is_empty();
}

fn summarize(kill_every: Duration, restarts: Vec<RestartReport>) -> SoakReport {
    let acknowledged = restarts.iter().map(|report| report.acknowledged).sum();
    let accounted_for = restarts.iter().map(|report| report.accounted_for).sum();
    let passed =
        restarts.iter().all(|report| report.missing == 0 && report.different == 0 && report.balances_different == 0);
    SoakReport { kill_every_secs: kill_every.as_secs_f64(), restarts, acknowledged, accounted_for, passed }
}

fn restart_line(report: &RestartReport) -> String {
    format!(
        "{} at {:.1} s: {} acknowledged since the last check, {} accounted for in the journal, {} missing, {} different; \
         {} in flight at the kill; journal to seq {}{}; restarted in {} ms; {} balances equal the replay, {} differ",
        report.how,
        report.at_secs,
        report.acknowledged,
        report.accounted_for,
        report.missing,
        report.different,
        report.in_flight_at_kill,
        report.journal_last_seq,
        if report.torn_tail { " (torn tail)" } else { "" },
        report.restart_ms,
        report.balances_checked - report.balances_different,
        report.balances_different
    )
}

/// The soak's part of the text summary.
pub(crate) fn text(out: &mut String, soak: &SoakReport) {
    let _ = writeln!(
        out,
        "  soak: {} kill(s) and a final stop; {} acknowledged commands, {} accounted for in the journal: {}",
        soak.restarts.len().saturating_sub(1),
        soak.acknowledged,
        soak.accounted_for,
        if soak.passed { "every acknowledged command is there" } else { "SOME ARE NOT" }
    );
    for report in &soak.restarts {
        let _ = writeln!(out, "    {}", restart_line(report));
        for sample in &report.samples {
            let _ = writeln!(out, "      e.g. {sample}");
        }
    }
}
