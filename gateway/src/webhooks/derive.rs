//! The webhook thread: takes each batch the publisher offered, in sequence order,
//! turns the events of registered accounts into notifications and commits them to
//! the outbox, then wakes the delivery threads.
//!
//! It owes notifications for every command up to the highest sequence number it
//! knows was applied (`owed_through`) and has them in the outbox up to
//! `derived_through`. When the two part (after a restart; when the publisher dropped
//! batches; when writing the outbox failed), live batches are not derived out of
//! order: they only raise what is owed, and the journal is replayed over the gap.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bourse_core::config::Config as EngineConfig;
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, Seq, Timestamp};
use bourse_snapshots::recovery::DataStores;
use bourse_snapshots::runtime::AppliedBatch;
use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::replay::{ReplayError, Replayer};
use super::select::{Renderer, event_id, notifications};
use super::{Derivation, Shared, weight};

/// How often the thread wakes with nothing to take (markers, syncs, compaction).
const TICK: Duration = Duration::from_millis(200);
/// A `derived` record is written at least this often while commands are applied, so
/// that a restart replays little.
const MARK_EVERY: Duration = Duration::from_secs(1);
/// The replay engine is dropped after this long unused.
const REPLAY_IDLE: Duration = Duration::from_secs(30);
/// After failing to write the outbox, wait this long before trying again.
const RETRY_AFTER_IO_ERROR: Duration = Duration::from_secs(2);
/// A long replay commits its notifications this many at a time.
const REPLAY_CHUNK: usize = 4_096;
/// A replay that fails (the journal unreadable, no starting point) is tried this many
/// times, `RETRY_AFTER_IO_ERROR` apart, before its notifications are given up as lost.
const REPLAY_TRIES: u32 = 3;

/// Who wants notifications, as of one moment: account → (endpoint, filter, from).
type Targets = HashMap<AccountId, Vec<(String, Option<Vec<String>>, u64)>>;

pub(super) struct Deriver {
    shared: Arc<Shared>,
    rx: Receiver<(u64, Arc<AppliedBatch>)>,
    renderer: Renderer,
    replayer: Replayer,
    /// The last offer taken from the channel.
    received: u64,
    owed_through: u64,
    last_mark: Instant,
    last_maintained: Instant,
    retry_at: Option<Instant>,
    /// Replays of the current gap that failed.
    replay_failures: u32,
    /// How many of the feed's markets the renderer was told of.
    markets_learned: usize,
}

impl Deriver {
    pub(super) fn new(
        shared: Arc<Shared>,
        rx: Receiver<(u64, Arc<AppliedBatch>)>,
        engine: &EngineConfig,
        stores: DataStores,
        recovered_through: u64,
    ) -> Self {
        Self {
            shared,
            rx,
            renderer: Renderer::new(engine),
            replayer: Replayer::new(stores, engine.clone()),
            received: 0,
            owed_through: recovered_through,
            last_mark: Instant::now(),
            last_maintained: Instant::now(),
            retry_at: None,
            replay_failures: 0,
            markets_learned: 0,
        }
    }

    /// Tells the renderer of the markets the feed gained since the last call: before
    /// anything is derived, so a route through a market added at run time is named.
    fn learn_markets(&mut self) {
        let feed = &self.shared.feed;
        if feed.markets_known.load(Ordering::Acquire) == self.markets_learned {
            return;
        }
        let markets = feed.markets.lock();
        for (id, spec) in &markets[self.markets_learned..] {
            self.renderer.learn_market(*id, spec);
        }
        self.markets_learned = markets.len();
    }

    pub(super) fn run(mut self) {
        loop {
            self.catch_up_if_owed();
            match self.rx.recv_timeout(TICK) {
                Ok((offer, batch)) => self.take(offer, &batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let idle = self.rx.is_empty();
            let feed = &self.shared.feed;
            if idle && feed.last_dropped.load(Ordering::Acquire) > self.received {
                // The last batches offered were dropped (no later batch shows the gap).
                self.owed_through = self.owed_through.max(feed.offered_through.load(Ordering::Acquire));
            }
            if idle || self.last_maintained.elapsed() >= TICK {
                self.maintain();
            }
            if idle && self.shared.stopping.load(Ordering::Acquire) {
                break;
            }
        }
        // What is still owed is derived from the journal at the next start.
        self.mark();
        if let Err(error) = self.shared.state.lock().outbox.sync() {
            log::error!("webhooks: syncing the outbox: {error}");
        }
    }

    /// One batch from the publisher.
    fn take(&mut self, offer: u64, batch: &AppliedBatch) {
        self.shared.feed.queued.fetch_sub(weight(batch), Ordering::Relaxed);
        let (Some(first), Some(last)) = (batch.items.first(), batch.items.last()) else { return };
        if offer != self.received + 1 {
            // The publisher dropped the batches in between.
            self.owed_through = self.owed_through.max(first.seq.get() - 1);
        }
        self.received = offer;
        let derived_through = self.shared.state.lock().derived_through;
        if self.owed_through > derived_through {
            // Behind: this batch is replayed from the journal with the gap, in order.
            self.owed_through = self.owed_through.max(last.seq.get());
            self.catch_up_if_owed();
            return;
        }
        let targets = self.targets();
        let mut derived = Vec::new();
        if !targets.is_empty() {
            self.learn_markets();
            for item in batch.items.iter().filter(|item| item.seq.get() > derived_through) {
                derive(&targets, &self.renderer, item.seq, item.timestamp, batch.events_of(item), &mut derived);
            }
        }
        if let Err(error) = self.shared.commit(&mut derived, last.seq.get(), false) {
            log::error!("webhooks: writing the outbox: {error}; deriving these notifications again from the journal");
            self.owed_through = self.owed_through.max(last.seq.get());
            self.retry_at = Some(Instant::now() + RETRY_AFTER_IO_ERROR);
        }
        self.owed_through = self.owed_through.max(last.seq.get());
    }

    /// Replays the journal over what is owed and not derived.
    fn catch_up_if_owed(&mut self) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) || self.shared.stopping.load(Ordering::Acquire) {
            return;
        }
        self.retry_at = None;
        let after = self.shared.state.lock().derived_through;
        let through = self.owed_through;
        if through <= after {
            return;
        }
        let targets = self.targets();
        if targets.is_empty() {
            let _ = self.shared.commit(&mut Vec::new(), through, false);
            return;
        }
        self.learn_markets();
        self.shared.metrics.webhook_replay();
        let started = Instant::now();
        let (shared, renderer) = (&self.shared, &self.renderer);
        let mut derived = Vec::new();
        let mut failure = None;
        let replayed = self.replayer.replay(after, through, &shared.stopping, |seq, timestamp, events| {
            derive(&targets, renderer, seq, timestamp, events, &mut derived);
            if derived.len() >= REPLAY_CHUNK
                && let Err(error) = shared.commit(&mut derived, seq.get(), true)
            {
                failure = Some(error);
                return false;
            }
            true
        });
        let outcome = match (replayed, failure) {
            (_, Some(error)) => Err(error.to_string()),
            (Ok(()), None) => shared.commit(&mut derived, through, true).map_err(|error| error.to_string()),
            (Err(ReplayError::Stopped), None) => return,
            (Err(error), None) if self.replay_failures + 1 < REPLAY_TRIES => {
                self.replay_failures += 1;
                log::warn!("webhooks: replaying the journal after {after}: {error}; trying again");
                self.retry_at = Some(Instant::now() + RETRY_AFTER_IO_ERROR);
                return;
            }
            (Err(error), None) => {
                // Tried enough: say what is lost and go on.
                log::error!(
                    "webhooks: cannot derive the notifications of commands {}..={through} from the journal: {error}; \
                     those not derived are lost",
                    after + 1
                );
                shared.commit(&mut derived, through, true).map_err(|error| error.to_string())
            }
        };
        self.replay_failures = 0;
        match outcome {
            Ok(()) => log::info!(
                "webhooks: derived the notifications of commands {}..={through} from the journal in {:.1?}",
                after + 1,
                started.elapsed()
            ),
            Err(error) => {
                log::error!("webhooks: writing the outbox: {error}; trying again in {RETRY_AFTER_IO_ERROR:?}");
                self.retry_at = Some(Instant::now() + RETRY_AFTER_IO_ERROR);
            }
        }
    }

    /// Every endpoint's account, filter and start, as of now.
    fn targets(&self) -> Targets {
        let state = self.shared.state.lock();
        let mut targets: Targets = HashMap::new();
        for endpoint in state.endpoints.values() {
            let record = &endpoint.record;
            targets.entry(record.account).or_default().push((
                record.id.clone(),
                record.events.clone(),
                record.from_seq,
            ));
        }
        targets
    }

    /// Writes the `derived` marker when due, syncs and compacts the outbox, lets an
    /// idle replay engine go.
    fn maintain(&mut self) {
        self.last_maintained = Instant::now();
        if self.last_mark.elapsed() >= MARK_EVERY {
            self.mark();
        }
        if let Err(error) = self.shared.maintain_outbox() {
            log::error!("webhooks: syncing or compacting the outbox: {error}");
        }
        self.replayer.release_if_idle(REPLAY_IDLE);
    }

    fn mark(&mut self) {
        self.last_mark = Instant::now();
        let through = self.shared.state.lock().derived_through;
        if let Err(error) = self.shared.commit(&mut Vec::new(), through, true) {
            log::error!("webhooks: writing the outbox: {error}");
        }
    }
}

/// Appends to `out` the notifications one command's events give the endpoints in
/// `targets`.
fn derive(
    targets: &Targets,
    renderer: &Renderer,
    seq: Seq,
    timestamp: Timestamp,
    events: &[Event],
    out: &mut Vec<Derivation>,
) {
    for (index, event) in events.iter().enumerate() {
        for (account, kind) in notifications(event) {
            let Some(endpoints) = targets.get(&account) else { continue };
            let mut rendered: Option<(String, String)> = None;
            for (endpoint, filter, from_seq) in endpoints {
                let wanted = filter.as_ref().is_none_or(|filter| filter.iter().any(|name| name == kind));
                if seq.get() <= *from_seq || !wanted {
                    continue;
                }
                if rendered.is_none() {
                    let id = event_id(seq, index, account);
                    let Some(body) = renderer.body(&id, kind, account, seq, timestamp, event) else { break };
                    rendered = Some((id, body));
                }
                let (id, body) = rendered.as_ref().expect("just rendered");
                out.push(Derivation {
                    endpoint: endpoint.clone(),
                    seq: seq.get(),
                    event_id: id.clone(),
                    created_ns: timestamp.as_nanos(),
                    body: body.clone(),
                });
            }
        }
    }
}
