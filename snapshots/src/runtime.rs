//! The runtime that ties the pieces together, shared by the server and the
//! benchmarks (DESIGN.md §3):
//!
//! ```text
//! submit ─▶ [bounded queue] ─▶ sequencer thread ─▶ [batches] ─▶ engine thread ─▶ output (AppliedBatch)
//!                              stamp seq + time,                 Engine::apply,     │
//!                              append, group commit              snapshot pause     ▼
//!                                     ▲                                       snapshot writer thread
//!                                     └──────── checkpoint (state hash) ◀─────┘
//! ```
//!
//! Write-ahead: the engine sees a batch only after the journal holds it (durable per
//! the mode), so no output leaves before its command is journaled. The engine thread
//! does no I/O: a snapshot costs it one `export_state` and one `state_hash` (the
//! pause, measured), and a separate thread writes the file.
//!
//! `Pipeline::Fused` runs the sequencer and the engine on one thread: a batch is
//! journaled, then applied, then the next batch is taken. It gives up the overlap of
//! journaling batch N+1 while batch N is applied, and saves a hand-off (a wake-up and
//! a context switch) per batch: the better trade where cores are few (DESIGN §3
//! assumes a core per stage). Everything else (write-ahead, snapshots, checkpoints,
//! shutdown) is the same code.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bourse_core::command::{Command, CommandKind, SequencedCommand};
use bourse_core::event::Event;
use bourse_core::ids::{Seq, Timestamp};
use bourse_core::state::EngineState;
use bourse_core::{Engine, StateHash};
use bourse_journal::codec::{Checkpoint, command_kind, encode_command};
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{JournalConfig, JournalError, JournalWriter, OpenReport};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use log::{error, info};

use crate::recovery::DataStores;
use crate::snapshot::write_snapshot;

/// The caller's tag for a command, handed back with its output. Commands the runtime
/// makes itself (idle ticks) carry `TOKEN_INTERNAL`.
pub type Token = u64;
pub const TOKEN_INTERNAL: Token = 0;

/// How long the snapshot writer waits for the journal to become durable up to the
/// snapshot's sequence before it gives that snapshot up.
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// How many commands ahead of `apply` the engine thread prefetches (see
/// `Engine::prefetch`; `bourse-bench payments` measures the gain).
const PREFETCH_DISTANCE: usize = 8;

/// Checkpoints and sync requests waiting for the sequencer, at most (one snapshot in
/// flight at a time makes two at once the most there ever are).
const CONTROL_CAPACITY: usize = 16;

/// How the sequencer and the engine share threads (`[server] pipeline` in the
/// server's configuration: `"threads"` or `"fused"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pipeline {
    /// A thread each, a bounded queue between: the journal of the next batch overlaps
    /// the engine's work on this one.
    #[default]
    Threads,
    /// One thread journals a batch and then applies it: one hand-off fewer per batch.
    Fused,
}

#[derive(Clone, Copy, Debug)]
pub struct RuntimeConfig {
    pub journal: JournalConfig,
    pub pipeline: Pipeline,
    /// Submissions waiting for the sequencer, at most.
    pub queue_capacity: usize,
    /// Commands per journal batch, at most.
    pub batch_max: usize,
    /// Take a snapshot after this many commands…
    pub snapshot_every_commands: u64,
    /// …or this long, whichever comes first.
    pub snapshot_every: Duration,
    pub snapshots_kept: usize,
    /// With no submission for this long, the sequencer journals a `Tick`.
    pub idle_tick: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            journal: JournalConfig::default(),
            pipeline: Pipeline::Threads,
            queue_capacity: 65_536,
            batch_max: 4_096,
            snapshot_every_commands: 1_000_000,
            snapshot_every: Duration::from_mins(5),
            snapshots_kept: 3,
            idle_tick: Duration::from_secs(1),
        }
    }
}

/// One applied command: its place in the journal, the caller's token, and its events
/// (a range of `AppliedBatch::events`).
#[derive(Clone, Debug)]
pub struct Applied {
    pub seq: Seq,
    pub timestamp: Timestamp,
    pub token: Token,
    pub kind: CommandKind,
    pub events: Range<usize>,
}

/// The output of one batch, in sequence order.
#[derive(Clone, Debug, Default)]
pub struct AppliedBatch {
    pub items: Vec<Applied>,
    pub events: Vec<Event>,
    /// Time the engine spent applying the batch (one clock read per batch, not per
    /// command).
    pub apply_ns: u64,
}

impl AppliedBatch {
    pub fn events_of(&self, item: &Applied) -> &[Event] {
        &self.events[item.events.clone()]
    }
}

/// Where the engine's output goes, called on the engine's thread once per batch, in
/// sequence order: a channel to a thread of the caller's (`Sender`), or the caller's
/// own code run right there (one hand-off fewer; it must not block for long, since
/// the next batch waits for it).
pub trait OutputSink: Send + 'static {
    fn deliver(&mut self, batch: AppliedBatch);
}

impl OutputSink for Sender<AppliedBatch> {
    fn deliver(&mut self, batch: AppliedBatch) {
        if self.send(batch).is_err() {
            info!("runtime output closed");
        }
    }
}

/// Counters the runtime keeps, readable from any thread.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    pub commands: AtomicU64,
    pub batches: AtomicU64,
    pub journal_bytes: AtomicU64,
    pub journal_syncs: AtomicU64,
    pub last_sync_ns: AtomicU64,
    pub last_durable_seq: AtomicU64,
    pub queue_depth: AtomicU64,
    pub snapshots: AtomicU64,
    /// Snapshots given up: the writer was still busy, or the journal could not be made
    /// durable up to them in time.
    pub snapshots_skipped: AtomicU64,
    pub last_snapshot_seq: AtomicU64,
    /// Unix time (ns) of the last snapshot written.
    pub last_snapshot_at_ns: AtomicU64,
    pub snapshot_pause_ns_last: AtomicU64,
    pub snapshot_pause_ns_max: AtomicU64,
    pub engine_apply_ns_total: AtomicU64,
}

/// Why a submission was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the command queue is full ({0} waiting): retry later")]
    Busy(usize),
    #[error("the runtime is shutting down")]
    Stopped,
}

enum ToSequencer {
    Submit(Command, Token),
    Checkpoint(Checkpoint),
    /// Make the journal durable now and say so: a snapshot is never written ahead of
    /// the journal it continues from.
    Sync(Sender<()>),
    Shutdown,
}

enum ToEngine {
    Batch(Vec<(SequencedCommand, Token)>),
    Stop,
}

struct Snapshot {
    seq: Seq,
    hash: StateHash,
    state: EngineState,
}

/// A running runtime. Dropping it without `shutdown` stops nothing cleanly: call
/// `shutdown`.
pub struct Runtime {
    to_sequencer: Sender<ToSequencer>,
    stats: Arc<RuntimeStats>,
    threads: Vec<JoinHandle<()>>,
    queue_capacity: usize,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// A cheap handle for submitting commands from other threads.
#[derive(Clone, Debug)]
pub struct Submitter {
    to_sequencer: Sender<ToSequencer>,
    queue_capacity: usize,
    stats: Arc<RuntimeStats>,
}

impl std::fmt::Debug for ToSequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ToSequencer::Submit(..) => "Submit",
            ToSequencer::Checkpoint(_) => "Checkpoint",
            ToSequencer::Sync(_) => "Sync",
            ToSequencer::Shutdown => "Shutdown",
        })
    }
}

impl Submitter {
    /// Queues a command; refuses rather than blocks when the queue is full.
    pub fn submit(&self, command: Command, token: Token) -> Result<(), SubmitError> {
        match self.to_sequencer.try_send(ToSequencer::Submit(command, token)) {
            Ok(()) => {
                self.stats.queue_depth.store(self.to_sequencer.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(SubmitError::Busy(self.queue_capacity)),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }

    /// Queues a command, waiting for room.
    pub fn submit_blocking(&self, command: Command, token: Token) -> Result<(), SubmitError> {
        self.to_sequencer.send(ToSequencer::Submit(command, token)).map_err(|_| SubmitError::Stopped)
    }
}

/// What shutting down did.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownReport {
    pub last_seq: Option<Seq>,
    pub final_snapshot: Option<Seq>,
    /// A runtime thread panicked (with `Pipeline::Fused`, the output sink runs on the
    /// runtime's thread, so a panic there counts too).
    pub panicked: bool,
}

impl Runtime {
    /// Starts the threads on a recovered engine; `journal` is the report recovery
    /// made of the journal (its tail already repaired). Output goes to `output`.
    pub fn start(
        stores: &DataStores,
        config: RuntimeConfig,
        engine: Engine,
        journal: &OpenReport,
        output: impl OutputSink,
    ) -> Result<Runtime, JournalError> {
        let writer = JournalWriter::resuming(stores.journal.clone(), config.journal, journal, engine.last_seq())?;
        assert!(
            engine.last_seq().is_none_or(|applied| writer.next_seq() > applied),
            "the journal continues after what the engine has applied (recovery refuses a snapshot ahead of it)"
        );
        let stats = Arc::new(RuntimeStats::default());
        let (to_sequencer, from_submitters) = bounded(config.queue_capacity);
        let (to_control, control) = bounded(CONTROL_CAPACITY);
        let (to_writer, from_engine) = bounded::<Option<Snapshot>>(2);
        let mut threads = Vec::new();
        let last_timestamp = engine.now();
        let engine_loop = EngineLoop::new(engine, config, stats.clone(), Box::new(output), to_writer);
        let downstream = match config.pipeline {
            Pipeline::Threads => {
                let (to_engine, from_sequencer) = bounded(64);
                threads.push(spawn("bourse-engine", move || engine_loop.run(&from_sequencer)));
                Downstream::Thread(to_engine)
            }
            Pipeline::Fused => Downstream::Inline(Some(Box::new(engine_loop))),
        };
        let sequencer = Sequencer { writer, config, stats: stats.clone(), engine: downstream, last_timestamp };
        let name = if config.pipeline == Pipeline::Fused { "bourse-core" } else { "bourse-sequencer" };
        threads.push(spawn(name, move || sequencer.run(&from_submitters, &control)));
        let snapshots = stores.snapshots.clone();
        let (checkpoints, writer_stats) = (to_control, stats.clone());
        threads.push(spawn("bourse-snapshots", move || {
            write_snapshots(&snapshots, config.snapshots_kept, &from_engine, &checkpoints, &writer_stats);
        }));
        Ok(Runtime { to_sequencer, stats, threads, queue_capacity: config.queue_capacity })
    }

    pub fn submitter(&self) -> Submitter {
        Submitter {
            to_sequencer: self.to_sequencer.clone(),
            queue_capacity: self.queue_capacity,
            stats: self.stats.clone(),
        }
    }

    pub fn stats(&self) -> &Arc<RuntimeStats> {
        &self.stats
    }

    /// Stops taking commands, runs every command already queued, makes the journal
    /// durable, writes a final snapshot and joins every thread.
    pub fn shutdown(self) -> ShutdownReport {
        let _ = self.to_sequencer.send(ToSequencer::Shutdown);
        drop(self.to_sequencer);
        let mut panicked = false;
        for thread in self.threads {
            if thread.join().is_err() {
                error!("a runtime thread panicked");
                panicked = true;
            }
        }
        let last = self.stats.last_durable_seq.load(Ordering::Relaxed);
        let snapshot = self.stats.last_snapshot_seq.load(Ordering::Relaxed);
        ShutdownReport {
            last_seq: (last > 0).then(|| Seq::new(last)),
            final_snapshot: (snapshot > 0).then(|| Seq::new(snapshot)),
            panicked,
        }
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name.to_owned()).spawn(body).expect("spawning a runtime thread")
}

fn wall_clock() -> Timestamp {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    Timestamp::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

struct Sequencer {
    writer: JournalWriter,
    config: RuntimeConfig,
    stats: Arc<RuntimeStats>,
    engine: Downstream,
    last_timestamp: Timestamp,
}

/// Where the sequencer hands journaled batches.
enum Downstream {
    /// The engine thread (`Pipeline::Threads`).
    Thread(Sender<ToEngine>),
    /// The engine itself, on this thread (`Pipeline::Fused`); `None` once stopped.
    Inline(Option<Box<EngineLoop>>),
}

impl Downstream {
    /// Applies `batch` (fused) or hands it over; false when the engine is gone.
    fn batch(&mut self, batch: Vec<(SequencedCommand, Token)>) -> bool {
        match self {
            Downstream::Thread(to_engine) => to_engine.send(ToEngine::Batch(batch)).is_ok(),
            Downstream::Inline(engine) => engine.as_mut().is_some_and(|engine| {
                engine.apply_batch(&batch);
                true
            }),
        }
    }

    /// Nothing more comes: the engine takes its final snapshot.
    fn stop(&mut self) {
        match self {
            Downstream::Thread(to_engine) => {
                let _ = to_engine.send(ToEngine::Stop);
            }
            Downstream::Inline(engine) => {
                if let Some(engine) = engine.take() {
                    engine.finish();
                }
            }
        }
    }
}

impl Sequencer {
    /// `control` carries the snapshot writer's checkpoints and sync requests on a queue
    /// of their own, read first, so that a queue full of client commands never delays
    /// or drops them.
    fn run(mut self, from_submitters: &Receiver<ToSequencer>, control: &Receiver<ToSequencer>) {
        let mut payload = Vec::with_capacity(256);
        let mut shutting_down = false;
        while !shutting_down {
            let first = crossbeam_channel::select! {
                recv(control) -> message => message.unwrap_or(ToSequencer::Shutdown),
                recv(from_submitters) -> message => message.unwrap_or(ToSequencer::Shutdown),
                default(self.config.idle_tick) => ToSequencer::Submit(Command::Tick, TOKEN_INTERNAL),
            };
            let mut batch = Vec::with_capacity(self.config.batch_max.min(from_submitters.len() + 1));
            let mut sync_replies = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    ToSequencer::Submit(command, token) => {
                        let Some(sequenced) = self.append(command, &mut payload) else { return };
                        batch.push((sequenced, token));
                    }
                    ToSequencer::Checkpoint(checkpoint) => {
                        checkpoint.encode(&mut payload);
                        if self.append_raw(KIND_CHECKPOINT, &payload).is_none() {
                            return;
                        }
                    }
                    ToSequencer::Sync(reply) => sync_replies.push(reply),
                    ToSequencer::Shutdown => shutting_down = true,
                }
                // Control first; then clients, up to a batch (on shutdown, everything queued).
                next = control.try_recv().ok();
                if next.is_none() && (batch.len() < self.config.batch_max || shutting_down) {
                    next = from_submitters.try_recv().ok();
                }
            }
            // What is still waiting once this batch is taken (submitters update it as
            // they add; this brings it back down when the queue drains).
            self.stats.queue_depth.store(from_submitters.len() as u64, Ordering::Relaxed);
            if !self.commit(batch) {
                return;
            }
            if !sync_replies.is_empty() {
                match self.writer.sync() {
                    Ok(committed) => {
                        self.stats.last_durable_seq.store(committed.durable.map_or(0, Seq::get), Ordering::Relaxed);
                        for reply in sync_replies {
                            let _ = reply.send(());
                        }
                    }
                    Err(failure) => {
                        error!("journal sync failed, the runtime stops: {failure}");
                        self.engine.stop();
                        return;
                    }
                }
            }
        }
        match self.writer.sync() {
            Ok(committed) => {
                self.stats.last_durable_seq.store(committed.durable.map_or(0, Seq::get), Ordering::Relaxed);
            }
            Err(error) => error!("journal: final sync failed: {error}"),
        }
        self.engine.stop();
    }

    fn stamp(&mut self) -> Timestamp {
        self.last_timestamp = self.last_timestamp.max(wall_clock());
        self.last_timestamp
    }

    fn append(&mut self, command: Command, payload: &mut Vec<u8>) -> Option<SequencedCommand> {
        encode_command(&command, payload);
        let timestamp = self.stamp();
        let seq = self.append_with(timestamp, command_kind(&command), payload)?;
        Some(SequencedCommand { seq, timestamp, command })
    }

    fn append_raw(&mut self, kind: u16, payload: &[u8]) -> Option<Seq> {
        let timestamp = self.stamp();
        self.append_with(timestamp, kind, payload)
    }

    fn append_with(&mut self, timestamp: Timestamp, kind: u16, payload: &[u8]) -> Option<Seq> {
        match self.writer.append(timestamp, kind, payload) {
            Ok(seq) => Some(seq),
            Err(failure) => {
                // Nothing after this point is acknowledged; stop so that clients see it.
                error!("journal append failed, the runtime stops: {failure}");
                self.engine.stop();
                None
            }
        }
    }

    /// Makes the batch durable per the mode, then hands it to the engine.
    fn commit(&mut self, batch: Vec<(SequencedCommand, Token)>) -> bool {
        match self.writer.commit() {
            Ok(committed) => {
                let stats = self.writer.stats();
                self.stats.journal_bytes.store(stats.bytes, Ordering::Relaxed);
                self.stats.journal_syncs.store(stats.syncs, Ordering::Relaxed);
                self.stats.last_sync_ns.store(stats.last_sync.as_nanos() as u64, Ordering::Relaxed);
                self.stats.last_durable_seq.store(committed.durable.map_or(0, Seq::get), Ordering::Relaxed);
            }
            Err(failure) => {
                error!("journal commit failed, the runtime stops: {failure}");
                self.engine.stop();
                return false;
            }
        }
        self.stats.commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        batch.is_empty() || self.engine.batch(batch)
    }
}

struct EngineLoop {
    engine: Engine,
    config: RuntimeConfig,
    stats: Arc<RuntimeStats>,
    output: Box<dyn OutputSink>,
    to_writer: Sender<Option<Snapshot>>,
    since_snapshot: u64,
    last_snapshot: Instant,
    /// The sequence of the last snapshot handed to the writer (or recovered from):
    /// the final snapshot is taken unless it is already the last command's.
    snapshotted: Option<Seq>,
}

impl EngineLoop {
    fn new(
        engine: Engine,
        config: RuntimeConfig,
        stats: Arc<RuntimeStats>,
        output: Box<dyn OutputSink>,
        to_writer: Sender<Option<Snapshot>>,
    ) -> Self {
        let snapshotted = engine.last_seq();
        Self { engine, config, stats, output, to_writer, since_snapshot: 0, last_snapshot: Instant::now(), snapshotted }
    }

    /// The engine thread (`Pipeline::Threads`).
    fn run(mut self, from_sequencer: &Receiver<ToEngine>) {
        while let Ok(ToEngine::Batch(batch)) = from_sequencer.recv() {
            self.apply_batch(&batch);
        }
        self.finish();
    }

    /// Applies a journaled batch, hands its output on, and takes a snapshot when one
    /// is due.
    fn apply_batch(&mut self, batch: &[(SequencedCommand, Token)]) {
        let started = Instant::now();
        let mut output = AppliedBatch {
            items: Vec::with_capacity(batch.len()),
            events: Vec::with_capacity(batch.len() * 4),
            apply_ns: 0,
        };
        for (index, (command, token)) in batch.iter().enumerate() {
            if let Some((ahead, _)) = batch.get(index + PREFETCH_DISTANCE) {
                self.engine.prefetch(ahead);
            }
            let start = output.events.len();
            self.engine.apply(command, &mut output.events);
            output.items.push(Applied {
                seq: command.seq,
                timestamp: command.timestamp,
                token: *token,
                kind: command.command.kind(),
                events: start..output.events.len(),
            });
        }
        output.apply_ns = started.elapsed().as_nanos() as u64;
        self.stats.engine_apply_ns_total.fetch_add(output.apply_ns, Ordering::Relaxed);
        self.since_snapshot += batch.len() as u64;
        self.output.deliver(output);
        if self.since_snapshot >= self.config.snapshot_every_commands
            || self.last_snapshot.elapsed() >= self.config.snapshot_every
        {
            self.snapshot(false);
            self.since_snapshot = 0;
            self.last_snapshot = Instant::now();
        }
    }

    /// Stopping: a final snapshot of everything applied, then let the writer finish.
    fn finish(mut self) {
        // Not `since_snapshot > 0`: a periodic snapshot skipped (the writer busy) at the
        // very last batch reset it, and the end would have gone unsnapshotted.
        if self.engine.last_seq() != self.snapshotted {
            self.snapshot(true);
        }
        let _ = self.to_writer.send(None);
    }

    /// Captures the state (the engine's only pause) and hands it to the writer.
    fn snapshot(&mut self, last: bool) {
        let Some(seq) = self.engine.last_seq() else { return };
        let started = Instant::now();
        let state = self.engine.export_state();
        let hash = self.engine.state_hash();
        let pause = started.elapsed().as_nanos() as u64;
        self.stats.snapshot_pause_ns_last.store(pause, Ordering::Relaxed);
        self.stats.snapshot_pause_ns_max.fetch_max(pause, Ordering::Relaxed);
        let snapshot = Some(Snapshot { seq, hash, state });
        let handed = if last {
            self.to_writer.send(snapshot).is_ok()
        } else {
            // The engine never waits for the disk: a busy writer means this one is skipped.
            self.to_writer.try_send(snapshot).is_ok()
        };
        if handed {
            self.snapshotted = Some(seq);
        } else {
            self.stats.snapshots_skipped.fetch_add(1, Ordering::Relaxed);
            log::warn!("snapshot at sequence {} skipped: the previous one is still being written", seq.get());
        }
    }
}

fn write_snapshots(
    storage: &Arc<dyn bourse_journal::Storage>,
    keep: usize,
    from_engine: &Receiver<Option<Snapshot>>,
    checkpoints: &Sender<ToSequencer>,
    stats: &RuntimeStats,
) {
    while let Ok(Some(snapshot)) = from_engine.recv() {
        // The journal first: a snapshot ahead of a journal that a power cut shortened
        // would leave sequence numbers the journal can no longer continue.
        // Never block on the sequencer (it may be waiting on the engine): ask, wait a
        // bounded time, and skip this snapshot if the journal did not get there.
        let (reply, synced) = bounded(1);
        let asked = checkpoints.try_send(ToSequencer::Sync(reply)).is_ok();
        let deadline = Instant::now() + SYNC_WAIT;
        while asked && stats.last_durable_seq.load(Ordering::Relaxed) < snapshot.seq.get() && Instant::now() < deadline
        {
            match synced.recv_timeout(Duration::from_millis(10)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        if stats.last_durable_seq.load(Ordering::Relaxed) < snapshot.seq.get() {
            error!("snapshot at sequence {} skipped: the journal is not durable that far", snapshot.seq.get());
            stats.snapshots_skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match write_snapshot(storage, snapshot.seq, snapshot.hash, &snapshot.state, keep) {
            Ok(written) => {
                info!("snapshot {} written at sequence {} ({} bytes)", written.name, snapshot.seq.get(), written.bytes);
                stats.snapshots.fetch_add(1, Ordering::Relaxed);
                stats.last_snapshot_seq.store(snapshot.seq.get(), Ordering::Relaxed);
                stats.last_snapshot_at_ns.store(wall_clock().as_nanos(), Ordering::Relaxed);
                if checkpoints.send(ToSequencer::Checkpoint(Checkpoint::new(snapshot.seq, snapshot.hash))).is_err() {
                    info!("checkpoint for sequence {} not journaled: the sequencer has stopped", snapshot.seq.get());
                }
            }
            Err(failure) => error!("snapshot at sequence {} failed: {failure}", snapshot.seq.get()),
        }
    }
}
