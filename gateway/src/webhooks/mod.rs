//! Merchant webhooks: an account registers an HTTP(S) endpoint and is told of its
//! payments as they happen, signed, in order, at least once, across restarts.
//!
//! ```text
//! publisher ── Feed::offer (try, never blocks) ──▶ webhook thread ──▶ outbox.log ──▶ delivery threads ──▶ HTTP POST
//!   (every AppliedBatch)    bounded by queue_events_max    derive: select + render      (fsync'ed)     one endpoint at a time,
//!                           dropped batches ─────────────▶ replay the journal                          in order, retried with backoff
//! ```
//!
//! - `config`: `[webhooks]`.
//! - `registry`: endpoints (`endpoints.json`), URL and filter validation, ids and
//!   secrets.
//! - `select`: which events notify whom ([`select::notifications`]), event ids, the
//!   body.
//! - `sign`: the signature headers, and how a receiver verifies them.
//! - `outbox`: the append-only log of notifications and their progress.
//! - `derive`: the webhook thread: batches in, notifications into the outbox.
//! - `replay`: notifications derived again from the journal (after a crash, or
//!   batches the publisher dropped).
//! - `deliver`: the delivery threads.
//! - `api`: the `register_webhook`, `list_webhooks`, `delete_webhook` ops.
//!
//! The engine never waits for any of this: the publisher's only work is one
//! non-blocking channel send per batch (or a counter when it drops one), and while no
//! endpoint is registered, not even that: a store of the batch's last sequence number.
//! A market added at run time costs it one short lock more (`Feed::market_added`), so
//! that notification bodies can name the market in a route.

pub mod api;
pub mod config;
mod deliver;
mod derive;
pub mod outbox;
pub mod registry;
mod replay;
pub mod select;
pub mod sign;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use bourse_core::book::MarketId;
use bourse_core::config::Config as EngineConfig;
use bourse_core::ids::AccountId;
use bourse_core::market::MarketSpec;
use bourse_snapshots::recovery::DataStores;
use bourse_snapshots::runtime::AppliedBatch;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;

pub use self::config::WebhookConfig;
use self::outbox::{EndpointLog, Folded, Outbox, Pending, Record};
use self::registry::{EndpointRecord, InvalidEndpoint};
use crate::metrics::Metrics;

/// Below this size the outbox is never compacted while running.
const COMPACT_BYTES_MIN: u64 = 4 << 20;
/// Bytes a pending notification takes in the outbox besides its body (an estimate
/// for the compaction trigger).
const RECORD_OVERHEAD_BYTES: u64 = 160;

/// Why a webhook op failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Invalid(#[from] InvalidEndpoint),
    #[error("at most {0} webhook endpoints in all; delete some first")]
    TooMany(usize),
    #[error("at most {0} webhook endpoints per account; delete some first")]
    TooManyForAccount(usize),
    #[error("webhook store: {0}")]
    Io(#[from] io::Error),
    #[error("webhook store: {0}")]
    Corrupt(String),
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// A registered endpoint with its queue and delivery state.
#[derive(Debug)]
struct Endpoint {
    record: EndpointRecord,
    queue: VecDeque<Pending>,
    next_number: u64,
    done_through: u64,
    delivered: u64,
    failed: u64,
    /// Failed attempts of the notification at the head of the queue.
    attempts: u32,
    /// When the head may be attempted again (`None`: now).
    next_attempt: Option<Instant>,
    /// A delivery thread is attempting the head.
    busy: bool,
    last_error: Option<String>,
    last_attempt_ms: Option<u64>,
}

impl Endpoint {
    fn new(record: EndpointRecord, log: EndpointLog) -> Self {
        let next_number = log.next_number();
        Self {
            record,
            queue: log.pending.into(),
            next_number,
            done_through: log.done_through,
            delivered: log.delivered,
            failed: log.failed,
            attempts: 0,
            next_attempt: None,
            busy: false,
            last_error: None,
            last_attempt_ms: None,
        }
    }
}

/// Everything behind the one lock: endpoints, queues, the outbox.
#[derive(Debug)]
struct State {
    endpoints: BTreeMap<String, Endpoint>,
    by_account: HashMap<AccountId, SmallVec<[String; 2]>>,
    /// Every notification of commands up to this sequence number is in the outbox.
    derived_through: u64,
    /// The last `derived` record written.
    marked_through: u64,
    outbox: Outbox,
    pending: usize,
    pending_bytes: u64,
    /// Where the delivery threads' round-robin over endpoints starts next.
    next_turn: String,
}

/// One notification derived from an event, not yet in the outbox.
#[derive(Clone, Debug)]
struct Derivation {
    endpoint: String,
    seq: u64,
    event_id: String,
    created_ns: u64,
    body: String,
}

/// What the publisher and the webhook thread share about the feed.
#[derive(Debug)]
struct FeedCounters {
    /// Commands and events in batches sent and not yet taken.
    queued: AtomicUsize,
    /// Offers so far (one per batch, sent or dropped).
    offers: AtomicU64,
    /// The last offer dropped (0: none).
    last_dropped: AtomicU64,
    /// The last sequence number offered (handed over, dropped, or passed by for want
    /// of endpoints).
    offered_through: AtomicU64,
    /// Registered endpoints; while none, the publisher hands over nothing.
    endpoints: AtomicUsize,
    /// Every market (id, spec) the renderer must know, in id order: those recovered
    /// at start, then those added at run time, each before the batch that added it
    /// is offered. Bounded by the engine's market table.
    markets: Mutex<Vec<(MarketId, MarketSpec)>>,
    /// `markets.len()`, read without the lock.
    markets_known: AtomicUsize,
    limit: usize,
}

/// The publisher's handle: hands each applied batch to the webhook thread without
/// ever blocking. When the thread has more than `queue_events_max` commands and
/// events waiting, the batch is dropped instead, and its notifications are derived
/// again from the journal. While no endpoint is registered a batch is only passed by:
/// no send, no wake-up of the webhook thread, nothing owed (an endpoint registered
/// later starts after it, as after any batch offered before it registered).
#[derive(Clone, Debug)]
pub struct Feed {
    tx: Sender<(u64, Arc<AppliedBatch>)>,
    counters: Arc<FeedCounters>,
}

fn weight(batch: &AppliedBatch) -> usize {
    batch.items.len() + batch.events.len()
}

impl Feed {
    /// Tells the renderer of market `id`, added at run time with `spec`. The publisher
    /// calls it (rarely: one call per market added) before it offers the batch that
    /// added the market, so any notification derived from that batch on, live or
    /// from the journal, can name the market.
    pub fn market_added(&self, id: MarketId, spec: &MarketSpec) {
        let mut markets = self.counters.markets.lock();
        markets.push((id, spec.clone()));
        self.counters.markets_known.store(markets.len(), Ordering::Release);
    }

    pub fn offer(&self, batch: &Arc<AppliedBatch>) {
        let Some(last) = batch.items.last() else { return };
        let counters = &*self.counters;
        // SeqCst with `Webhooks::register`, which raises `endpoints` before it reads
        // `offered_through`: if this load sees no endpoint, the registration reads this
        // batch's sequence number (or a later one) as where its endpoint starts.
        counters.offered_through.store(last.seq.get(), Ordering::SeqCst);
        if counters.endpoints.load(Ordering::SeqCst) == 0 {
            return;
        }
        let offer = counters.offers.fetch_add(1, Ordering::Relaxed) + 1;
        let weight = weight(batch);
        if counters.queued.load(Ordering::Relaxed) + weight <= counters.limit {
            counters.queued.fetch_add(weight, Ordering::Relaxed);
            if self.tx.send((offer, batch.clone())).is_ok() {
                return;
            }
        }
        counters.last_dropped.store(offer, Ordering::Release);
    }
}

/// Shared by the webhook thread, the delivery threads and the API.
#[derive(Debug)]
struct Shared {
    config: WebhookConfig,
    registry_path: PathBuf,
    state: Mutex<State>,
    /// Delivery threads wait here for work.
    wake: Condvar,
    stopping: AtomicBool,
    metrics: Arc<Metrics>,
    feed: Arc<FeedCounters>,
}

/// The webhook service.
#[derive(Debug)]
pub struct Webhooks {
    shared: Arc<Shared>,
    feed: Feed,
    deriver: Mutex<Option<JoinHandle<()>>>,
}

/// An endpoint just registered: the only time its secret is shown.
#[derive(Debug)]
pub struct Registered {
    pub record: EndpointRecord,
}

/// An endpoint as `list_webhooks` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    pub id: String,
    pub account: AccountId,
    pub url: String,
    pub events: Option<Vec<String>>,
    pub created_at_ms: u64,
    pub pending: usize,
    pub delivered: u64,
    pub failed: u64,
    /// Failed attempts of the notification now at the head.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub last_attempt_ms: Option<u64>,
    pub next_attempt_in_ms: Option<u64>,
}

/// What `Webhooks::start` found.
#[derive(Debug)]
pub struct StartReport {
    pub endpoints: usize,
    pub pending: usize,
    /// Where reading the outbox stopped early (a torn or damaged tail), if it did.
    pub cut: Option<outbox::Cut>,
    /// Notifications will be derived again from the journal after this sequence number.
    pub derive_after: u64,
}

impl Webhooks {
    /// Loads `<data_dir>/webhooks/` (the registry and the outbox, compacted), then
    /// starts the webhook thread and the delivery threads. `recovered_through` is the
    /// last sequence number recovery applied: notifications of commands up to it that
    /// the outbox does not hold are derived from the journal first. `markets` are the
    /// recovered engine's, in id order (those added at run time before the start
    /// included); the publisher tells of later ones (`Feed::market_added`).
    pub fn start(
        data_dir: &Path,
        config: &WebhookConfig,
        engine: &EngineConfig,
        markets: &[MarketSpec],
        stores: DataStores,
        metrics: Arc<Metrics>,
        recovered_through: u64,
    ) -> Result<(Arc<Webhooks>, StartReport), WebhookError> {
        let dir = data_dir.join("webhooks");
        create_private_dir(&dir)?;
        let registry_path = dir.join("endpoints.json");
        let records = registry::load(&registry_path).map_err(WebhookError::Corrupt)?;
        let outbox_path = dir.join("outbox.log");
        let (logged, cut) = outbox::read(&outbox_path)?;
        if let Some(cut) = &cut {
            log::warn!(
                "webhooks: {} ends with {} bytes that are not whole records at offset {} ({}): dropped; \
                 what they held is derived again from the journal or delivered again",
                outbox_path.display(),
                cut.bytes,
                cut.offset,
                cut.reason
            );
        }
        let folded = outbox::fold(logged);
        let state = initial_state(records, folded, recovered_through, &outbox_path)?;
        let report = StartReport {
            endpoints: state.endpoints.len(),
            pending: state.pending,
            cut,
            derive_after: state.derived_through,
        };
        metrics.set_webhook_pending(state.pending as u64);
        let (tx, rx) = crossbeam_channel::unbounded();
        let counters = Arc::new(FeedCounters {
            queued: AtomicUsize::new(0),
            offers: AtomicU64::new(0),
            last_dropped: AtomicU64::new(0),
            offered_through: AtomicU64::new(recovered_through),
            endpoints: AtomicUsize::new(state.endpoints.len()),
            markets: Mutex::new(
                markets.iter().enumerate().map(|(index, spec)| (MarketId::new(index as u32), spec.clone())).collect(),
            ),
            markets_known: AtomicUsize::new(markets.len()),
            limit: config.queue_events_max,
        });
        let shared = Arc::new(Shared {
            config: config.clone(),
            registry_path,
            state: Mutex::new(state),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            metrics,
            feed: counters.clone(),
        });
        let deriver = spawn_threads(&shared, rx, engine, stores, recovered_through)?;
        let webhooks = Webhooks { shared, feed: Feed { tx, counters }, deriver: Mutex::new(Some(deriver)) };
        Ok((Arc::new(webhooks), report))
    }

    /// The publisher's handle.
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// Registers an endpoint for `account`; it receives the notifications of
    /// commands the publisher sees from now on.
    pub fn register(
        &self,
        account: AccountId,
        url: &str,
        events: Option<Vec<String>>,
    ) -> Result<Registered, WebhookError> {
        registry::validate_url(url)?;
        let events = registry::validate_events(events)?;
        let config = &self.shared.config;
        let mut state = self.shared.state.lock();
        if state.endpoints.len() >= config.endpoints_max {
            return Err(WebhookError::TooMany(config.endpoints_max));
        }
        if state.by_account.get(&account).map_or(0, SmallVec::len) >= config.endpoints_per_account_max {
            return Err(WebhookError::TooManyForAccount(config.endpoints_per_account_max));
        }
        let (id, secret) = loop {
            let (id, secret) = registry::new_id_and_secret(account).map_err(WebhookError::Random)?;
            if !state.endpoints.contains_key(&id) {
                break (id, secret);
            }
        };
        // Counted before `offered_through` is read (see `Feed::offer`); uncounted again
        // if the registration fails.
        let feed = &self.shared.feed;
        feed.endpoints.store(state.endpoints.len() + 1, Ordering::SeqCst);
        let from_seq = state.derived_through.max(feed.offered_through.load(Ordering::SeqCst));
        if state.endpoints.is_empty() {
            // Nothing was owed for the batches passed by with no endpoint: a restart
            // need not replay them.
            state.derived_through = from_seq;
        }
        let record = EndpointRecord {
            id: id.clone(),
            account,
            url: url.to_owned(),
            secret,
            events,
            from_seq,
            created_at_ms: crate::auth::unix_ms_now(),
        };
        let mut all: Vec<EndpointRecord> = state.endpoints.values().map(|endpoint| endpoint.record.clone()).collect();
        all.push(record.clone());
        if let Err(error) = registry::save(&self.shared.registry_path, &all) {
            feed.endpoints.store(state.endpoints.len(), Ordering::SeqCst);
            return Err(error.into());
        }
        // Bounds the journal replay after a crash even if nothing was derived yet.
        let marker = Record::Derived { seq: state.derived_through };
        if let Err(error) = state.outbox.append(&[marker]) {
            log::warn!("webhooks: writing the outbox: {error}");
        }
        state.marked_through = state.derived_through;
        state.endpoints.insert(id.clone(), Endpoint::new(record.clone(), EndpointLog::default()));
        state.by_account.entry(account).or_default().push(id);
        Ok(Registered { record })
    }

    /// The endpoints of `account`, oldest first.
    pub fn list(&self, account: AccountId) -> Vec<EndpointStatus> {
        let state = self.shared.state.lock();
        let now = Instant::now();
        let mut list: Vec<EndpointStatus> = state
            .by_account
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|id| state.endpoints.get(id))
            .map(|endpoint| EndpointStatus {
                id: endpoint.record.id.clone(),
                account,
                url: endpoint.record.url.clone(),
                events: endpoint.record.events.clone(),
                created_at_ms: endpoint.record.created_at_ms,
                pending: endpoint.queue.len(),
                delivered: endpoint.delivered,
                failed: endpoint.failed,
                attempts: endpoint.attempts,
                last_error: endpoint.last_error.clone(),
                last_attempt_ms: endpoint.last_attempt_ms,
                next_attempt_in_ms: endpoint
                    .next_attempt
                    .filter(|_| !endpoint.queue.is_empty())
                    .map(|at| at.saturating_duration_since(now).as_millis() as u64),
            })
            .collect();
        list.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        list
    }

    /// Deletes endpoint `id` of `account` and drops what it had pending; `Ok(false)`
    /// when there is no such endpoint of that account. A delivery in flight finishes,
    /// but nothing more is sent.
    pub fn delete(&self, account: AccountId, id: &str) -> Result<bool, WebhookError> {
        let mut state = self.shared.state.lock();
        if state.endpoints.get(id).is_none_or(|endpoint| endpoint.record.account != account) {
            return Ok(false);
        }
        let rest: Vec<EndpointRecord> =
            state.endpoints.values().filter(|endpoint| endpoint.record.id != id).map(|e| e.record.clone()).collect();
        registry::save(&self.shared.registry_path, &rest)?;
        let endpoint = state.endpoints.remove(id).expect("checked above");
        self.shared.feed.endpoints.store(state.endpoints.len(), Ordering::SeqCst);
        state.pending -= endpoint.queue.len();
        state.pending_bytes -= endpoint.queue.iter().map(pending_bytes).sum::<u64>();
        if let Some(ids) = state.by_account.get_mut(&account) {
            ids.retain(|other| other != id);
            if ids.is_empty() {
                state.by_account.remove(&account);
            }
        }
        self.shared.metrics.set_webhook_pending(state.pending as u64);
        Ok(true)
    }

    /// Registered endpoints and notifications waiting, in all.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.shared.state.lock();
        (state.endpoints.len(), state.pending)
    }

    /// Stops: the webhook thread takes what the publisher handed it, writes it to the
    /// outbox and syncs it; the delivery threads stop after the attempt they are in
    /// (one cut short is delivered again after the restart). Call after the publisher
    /// has stopped.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        if let Some(deriver) = self.deriver.lock().take()
            && deriver.join().is_err()
        {
            log::error!("webhooks: the webhook thread panicked");
        }
    }
}

/// The in-memory state from the registry and the outbox, with the outbox rewritten
/// compacted: endpoints no longer registered are forgotten; notifications of
/// commands after `recovered_through` (the journal lost them: a power cut in `batch`
/// or `async` durability) are dropped.
fn initial_state(
    records: Vec<EndpointRecord>,
    mut folded: Folded,
    recovered_through: u64,
    outbox_path: &Path,
) -> Result<State, WebhookError> {
    let mut endpoints = BTreeMap::new();
    let mut by_account: HashMap<AccountId, SmallVec<[String; 2]>> = HashMap::new();
    let (mut pending, mut bytes) = (0, 0);
    for record in records {
        let mut log = folded.endpoints.remove(&record.id).unwrap_or_default();
        log.pending.retain(|pending| pending.seq <= recovered_through);
        pending += log.pending.len();
        bytes += log.pending.iter().map(pending_bytes).sum::<u64>();
        by_account.entry(record.account).or_default().push(record.id.clone());
        endpoints.insert(record.id.clone(), Endpoint::new(record, log));
    }
    // With no endpoint there is nothing to derive: start at the head.
    let derived_through = if endpoints.is_empty() {
        recovered_through
    } else {
        let oldest = endpoints.values().map(|endpoint: &Endpoint| endpoint.record.from_seq).min().unwrap_or(0);
        folded.derived_through.unwrap_or(oldest).min(recovered_through)
    };
    let folded = Folded {
        derived_through: Some(derived_through),
        endpoints: endpoints.iter().map(|(id, endpoint)| (id.clone(), endpoint_log(endpoint))).collect(),
    };
    let outbox = Outbox::create(outbox_path, &outbox::compacted(&folded))?;
    Ok(State {
        endpoints,
        by_account,
        derived_through,
        marked_through: derived_through,
        outbox,
        pending,
        pending_bytes: bytes,
        next_turn: String::new(),
    })
}

fn endpoint_log(endpoint: &Endpoint) -> EndpointLog {
    EndpointLog {
        done_through: endpoint.done_through,
        delivered: endpoint.delivered,
        failed: endpoint.failed,
        pending: endpoint.queue.iter().cloned().collect(),
    }
}

fn pending_bytes(pending: &Pending) -> u64 {
    pending.body.len() as u64 + RECORD_OVERHEAD_BYTES
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn spawn_threads(
    shared: &Arc<Shared>,
    rx: Receiver<(u64, Arc<AppliedBatch>)>,
    engine: &EngineConfig,
    stores: DataStores,
    recovered_through: u64,
) -> io::Result<JoinHandle<()>> {
    for index in 0..shared.config.workers {
        let shared = shared.clone();
        std::thread::Builder::new().name(format!("bourse-webhook-{index}")).spawn(move || deliver::run(&shared))?;
    }
    let deriver = derive::Deriver::new(shared.clone(), rx, engine, stores, recovered_through);
    std::thread::Builder::new().name("bourse-webhooks".into()).spawn(move || deriver.run())
}

impl Shared {
    /// Writes `derived` to the outbox with a `derived` record for `through`, then
    /// queues the notifications and wakes the delivery threads. With nothing derived,
    /// only advances `derived_through` (and writes the record only when `mark`). Endpoints deleted
    /// meanwhile are skipped; one with `pending_max` waiting gets a `dropped` record
    /// instead. On an I/O error nothing is queued and `derived_through` stays.
    fn commit(&self, derived: &mut Vec<Derivation>, through: u64, mark: bool) -> io::Result<()> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if derived.is_empty() && (!mark || state.endpoints.is_empty() || through <= state.marked_through) {
            state.derived_through = state.derived_through.max(through);
            return Ok(());
        }
        let mut projected: HashMap<&str, (u64, usize)> = HashMap::new();
        let mut records = Vec::with_capacity(derived.len() + 1);
        for derivation in derived.iter() {
            let Some(endpoint) = state.endpoints.get(&derivation.endpoint) else { continue };
            let (next, len) =
                projected.entry(&derivation.endpoint).or_insert((endpoint.next_number, endpoint.queue.len()));
            if *len >= self.config.pending_max {
                let (endpoint, event_id) = (derivation.endpoint.clone(), derivation.event_id.clone());
                records.push(Record::Dropped { endpoint, event_id });
                continue;
            }
            records.push(Record::Notification {
                endpoint: derivation.endpoint.clone(),
                number: *next,
                seq: derivation.seq,
                event_id: derivation.event_id.clone(),
                created_ns: derivation.created_ns,
                body: derivation.body.clone(),
            });
            *next += 1;
            *len += 1;
        }
        drop(projected);
        records.push(Record::Derived { seq: through });
        state.outbox.append(&records)?;
        derived.clear();
        let mut queued = 0;
        for record in records {
            match record {
                Record::Notification { endpoint, number, seq, event_id, created_ns, body } => {
                    let endpoint = state.endpoints.get_mut(&endpoint).expect("checked above");
                    let pending = Pending { number, seq, event_id, created_ns, body };
                    state.pending_bytes += pending_bytes(&pending);
                    endpoint.queue.push_back(pending);
                    endpoint.next_number = number + 1;
                    queued += 1;
                }
                Record::Dropped { endpoint, event_id } => {
                    let endpoint = state.endpoints.get_mut(&endpoint).expect("checked above");
                    endpoint.failed += 1;
                    endpoint.last_error = Some(format!(
                        "{event_id} dropped: {} notifications were already waiting",
                        self.config.pending_max
                    ));
                    self.metrics.webhook_delivery(crate::metrics::WebhookOutcome::GivenUp);
                }
                _ => {}
            }
        }
        state.pending += queued;
        state.derived_through = state.derived_through.max(through);
        state.marked_through = state.derived_through;
        self.metrics.webhook_notifications(queued as u64);
        self.metrics.set_webhook_pending(state.pending as u64);
        drop(guard);
        if queued > 0 {
            self.wake.notify_all();
        }
        Ok(())
    }

    /// Syncs the outbox, and compacts it when it has grown well past what it holds.
    fn maintain_outbox(&self) -> io::Result<()> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        state.outbox.sync()?;
        let needed = state.pending_bytes + RECORD_OVERHEAD_BYTES * (state.endpoints.len() as u64 + 2);
        if state.outbox.bytes() > COMPACT_BYTES_MIN.max(4 * needed) {
            let folded = Folded {
                derived_through: Some(state.derived_through),
                endpoints: state.endpoints.iter().map(|(id, endpoint)| (id.clone(), endpoint_log(endpoint))).collect(),
            };
            state.outbox.rewrite(&outbox::compacted(&folded))?;
            state.marked_through = state.derived_through;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(account: u32, from_seq: u64) -> EndpointRecord {
        let (id, secret) = registry::new_id_and_secret(AccountId::new(account)).unwrap();
        EndpointRecord {
            id,
            account: AccountId::new(account),
            url: "http://127.0.0.1:9/hook".into(),
            secret,
            events: None,
            from_seq,
            created_at_ms: 0,
        }
    }

    fn pending(number: u64, seq: u64) -> Pending {
        Pending { number, seq, event_id: format!("evt_{seq}_0_1"), created_ns: 0, body: "{}".into() }
    }

    fn shared(state: State, pending_max: usize) -> Shared {
        Shared {
            config: WebhookConfig { pending_max, ..WebhookConfig::default() },
            registry_path: PathBuf::new(),
            state: Mutex::new(state),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            metrics: Arc::new(Metrics::default()),
            feed: Arc::new(FeedCounters {
                queued: AtomicUsize::new(0),
                offers: AtomicU64::new(0),
                last_dropped: AtomicU64::new(0),
                offered_through: AtomicU64::new(0),
                endpoints: AtomicUsize::new(0),
                markets: Mutex::new(Vec::new()),
                markets_known: AtomicUsize::new(0),
                limit: 1,
            }),
        }
    }

    /// A batch of commands `seqs` with no events.
    fn batch(seqs: std::ops::RangeInclusive<u64>) -> Arc<AppliedBatch> {
        let items = seqs
            .map(|seq| bourse_snapshots::runtime::Applied {
                seq: bourse_core::ids::Seq::new(seq),
                timestamp: bourse_core::ids::Timestamp::from_nanos(seq),
                token: 0,
                kind: bourse_core::command::CommandKind::Tick,
                events: 0..0,
            })
            .collect();
        Arc::new(AppliedBatch { items, events: Vec::new(), apply_ns: 0 })
    }

    /// The publisher woke the webhook thread with every batch even when no endpoint
    /// was registered; now such a batch is only passed by, and an endpoint registered
    /// after it still starts right after it (as it did when every batch was handed
    /// over), with nothing owed for the batches passed by.
    #[test]
    fn with_no_endpoint_a_batch_is_passed_by_and_an_endpoint_registered_after_it_starts_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let stores = bourse_snapshots::datadir::open_data_dir(dir.path()).unwrap();
        let engine = crate::config::ServerConfig::embedded().unwrap().engine;
        let config = WebhookConfig { workers: 1, ..WebhookConfig::default() };
        let metrics = Arc::new(Metrics::default());
        let (webhooks, _) = Webhooks::start(dir.path(), &config, &engine, &[], stores, metrics, 0).unwrap();
        let feed = webhooks.feed();
        let offers = || feed.counters.offers.load(Ordering::Relaxed);
        feed.offer(&batch(1..=3));
        feed.offer(&batch(4..=5));
        assert_eq!((offers(), feed.counters.offered_through.load(Ordering::Relaxed)), (0, 5), "nothing handed over");

        let account = AccountId::new(1);
        let registered = webhooks.register(account, "http://127.0.0.1:9/hook", None).unwrap();
        assert_eq!(registered.record.from_seq, 5, "notifications of commands after 5");
        assert_eq!(webhooks.shared.state.lock().derived_through, 5, "nothing owed before");
        feed.offer(&batch(6..=6));
        assert_eq!(offers(), 1, "handed over while an endpoint is registered");

        assert!(webhooks.delete(account, &registered.record.id).unwrap());
        feed.offer(&batch(7..=9));
        assert_eq!((offers(), feed.counters.offered_through.load(Ordering::Relaxed)), (1, 9));
        let again = webhooks.register(account, "http://127.0.0.1:9/hook", None).unwrap();
        assert_eq!(again.record.from_seq, 9);
        webhooks.shutdown();
    }

    #[test]
    fn the_start_forgets_deleted_endpoints_and_commands_the_journal_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.log");
        let kept = record(1, 2);
        let mut folded = Folded { derived_through: Some(12), endpoints: BTreeMap::new() };
        let log =
            EndpointLog { done_through: 3, delivered: 3, failed: 0, pending: vec![pending(4, 8), pending(5, 11)] };
        folded.endpoints.insert(kept.id.clone(), log);
        folded.endpoints.insert("wh_9_00000000000000ff".into(), EndpointLog::default());
        // The journal recovered only up to 10: the notification of 11 was derived from
        // a command a power cut took back.
        let state = initial_state(vec![kept.clone()], folded, 10, &path).unwrap();
        assert_eq!(state.derived_through, 10);
        assert_eq!(state.pending, 1);
        let endpoint = &state.endpoints[&kept.id];
        assert_eq!((endpoint.next_number, endpoint.done_through, endpoint.queue.len()), (5, 3, 1));
        let reread = outbox::fold(outbox::read(&path).unwrap().0);
        assert_eq!(reread.derived_through, Some(10));
        assert_eq!(reread.endpoints.keys().collect::<Vec<_>>(), [&kept.id], "the deleted endpoint is forgotten");
        // No endpoint at all: nothing to derive, start at the head.
        let state = initial_state(Vec::new(), Folded::default(), 10, &path).unwrap();
        assert_eq!(state.derived_through, 10);
        // No outbox (lost): derive from the oldest endpoint's start.
        let state = initial_state(vec![record(1, 4), record(2, 6)], Folded::default(), 10, &path).unwrap();
        assert_eq!(state.derived_through, 4);
    }

    #[test]
    fn a_full_queue_drops_and_counts_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = record(1, 0);
        let id = endpoint.id.clone();
        let state = initial_state(vec![endpoint], Folded::default(), 0, &dir.path().join("outbox.log")).unwrap();
        let shared = shared(state, 2);
        let derivation = |seq: u64| Derivation {
            endpoint: id.clone(),
            seq,
            event_id: format!("evt_{seq}_0_1"),
            created_ns: 0,
            body: "{}".into(),
        };
        let mut derived = vec![derivation(1), derivation(2), derivation(3)];
        shared.commit(&mut derived, 3, false).unwrap();
        assert!(derived.is_empty());
        let state = shared.state.lock();
        let endpoint = &state.endpoints[&id];
        assert_eq!(endpoint.queue.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((endpoint.failed, state.pending, state.derived_through), (1, 2, 3));
        assert!(endpoint.last_error.as_deref().unwrap().contains("evt_3_0_1"));
        drop(state);
        let reread = outbox::fold(outbox::read(&dir.path().join("outbox.log")).unwrap().0);
        assert_eq!((reread.endpoints[&id].pending.len(), reread.endpoints[&id].failed), (2, 1));
    }
}
