//! The FIX acceptor: `serve` listens, runs one task per new connection until its Logon
//! is checked, then hands the connection to the session's actor.
//!
//! - A new connection must send a valid Logon within `LOGON_TIMEOUT`: FIX.4.4, known
//!   CompIDs, SendingTime within the session's tolerance, the configured credentials,
//!   EncryptMethod 0, HeartBtInt within 1..=`heartbeat_secs`. Anything else closes the
//!   socket without a word (the spec's treatment of a bad Logon).
//! - One actor task per configured session owns its `SessionCore` (sequence numbers,
//!   store) and its application, created at the first Logon and kept. It serves one
//!   connection at a time: a second Logon for a session that is connected is closed
//!   unanswered. Between connections it keeps consuming the application's events, so
//!   what the application sends meanwhile is stored and resent on request.
//! - `serve` runs it in the caller's runtime; `spawn` on a thread of its own.
//! - Shutdown: each connected session sends a Logout and waits `LOGOUT_TIMEOUT` at most
//!   for the reply.
//! - Every close is graceful: FIN first, then what the peer still sends is drained for
//!   `CLOSE_DRAIN`, so that our last messages are not destroyed by a reset.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::codec::{FrameError, Framer, Message};
use super::config::{FixConfig, FixConfigError, FixSessionConfig};
use super::dictionary::{Dictionary, DictionaryError};
use super::limits::{
    CLOSE_DRAIN, LOGON_TIMEOUT, LOGOUT_TIMEOUT, MESSAGE_BYTES_MAX, PENDING_CONNECTIONS_MAX, WRITE_TIMEOUT,
};
use super::session::{Application, BEGIN_STRING, SessionCore, Step};
use super::store::SessionStore;
use super::tags;
use super::time;

/// Why `serve` could not start.
#[derive(Debug, Error)]
pub enum AcceptorError {
    #[error(transparent)]
    Config(#[from] FixConfigError),
    #[error(transparent)]
    Dictionary(#[from] DictionaryError),
    #[error("fix session {session}: store: {source}")]
    Store { session: String, source: io::Error },
    #[error("fix: {0}")]
    Io(#[from] io::Error),
}

/// A logged-on connection on its way to its session's actor.
#[derive(Debug)]
struct Handoff {
    stream: TcpStream,
    framer: Framer,
    logon: Message,
    peer: SocketAddr,
}

struct SessionEntry {
    config: Arc<FixSessionConfig>,
    handoffs: mpsc::Sender<Handoff>,
}

/// What the handshake tasks share.
struct Shared {
    dictionary: &'static Dictionary,
    sessions: Vec<SessionEntry>,
    /// (our CompID, theirs) → index in `sessions`.
    by_comp_ids: HashMap<(String, String), usize>,
}

/// The acceptor, ready to run: configuration checked, stores open.
pub struct Acceptor<A: Application, F> {
    shared: Shared,
    actors: Vec<Actor<A, F>>,
    stop: watch::Sender<bool>,
}

impl<A, F> std::fmt::Debug for Acceptor<A, F>
where
    A: Application,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").field("sessions", &self.shared.sessions.len()).finish_non_exhaustive()
    }
}

impl<A, F> Acceptor<A, F>
where
    A: Application,
    F: Fn(&FixSessionConfig) -> anyhow::Result<A> + Send + Sync + 'static,
{
    /// Checks `config` and opens each session's store in `store_dir`. `app_factory`
    /// makes a session's application at its first Logon (a failure refuses that Logon).
    pub fn new(config: FixConfig, store_dir: &Path, app_factory: F) -> Result<Self, AcceptorError> {
        config.validate()?;
        let dictionary = Dictionary::fix44()?;
        let factory = Arc::new(app_factory);
        let (stop, stopped) = watch::channel(false);
        let mut sessions = Vec::new();
        let mut by_comp_ids = HashMap::new();
        let mut actors = Vec::new();
        for (index, session) in config.sessions.into_iter().enumerate() {
            let name = session.name();
            let store = SessionStore::open(store_dir, &name)
                .map_err(|source| AcceptorError::Store { session: name, source })?;
            let session = Arc::new(session);
            let (handoffs, handoff_receiver) = mpsc::channel(4);
            actors.push(Actor {
                core: SessionCore::new(Arc::clone(&session), dictionary, store),
                app: None,
                events: None,
                factory: Arc::clone(&factory),
                handoffs: handoff_receiver,
                shutdown: stopped.clone(),
            });
            by_comp_ids.insert((session.sender_comp_id.clone(), session.target_comp_id.clone()), index);
            sessions.push(SessionEntry { config: session, handoffs });
        }
        Ok(Acceptor { shared: Shared { dictionary, sessions, by_comp_ids }, actors, stop })
    }

    /// Serves on `listener` until `shutdown` completes, then logs every session out.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        let Acceptor { shared, actors, stop } = self;
        let actors: Vec<_> = actors.into_iter().map(|actor| tokio::spawn(actor.run())).collect();
        let shared = Arc::new(shared);
        let pending = Arc::new(Semaphore::new(PENDING_CONNECTIONS_MAX));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Each message is small and answered at once: no Nagle delay.
                        if let Err(error) = stream.set_nodelay(true) {
                            log::warn!("fix: {peer}: TCP_NODELAY: {error}");
                        }
                        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
                            log::warn!("fix: {peer}: too many connections awaiting Logon; closed");
                            continue;
                        };
                        let shared = Arc::clone(&shared);
                        tokio::spawn(async move {
                            handshake(stream, peer, &shared).await;
                            drop(permit);
                        });
                    }
                    Err(error) => {
                        log::warn!("fix: accept: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = stop.send(true);
        drop(shared);
        let deadline = Instant::now() + LOGOUT_TIMEOUT + WRITE_TIMEOUT;
        for actor in actors {
            let abort = actor.abort_handle();
            if timeout(deadline.saturating_duration_since(Instant::now()), actor).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Serves the FIX sessions of `config` on `listener` until `shutdown` completes
/// (`Acceptor::new`, then `run`).
pub async fn serve<A, F, S>(
    listener: TcpListener,
    config: FixConfig,
    store_dir: PathBuf,
    app_factory: F,
    shutdown: S,
) -> Result<(), AcceptorError>
where
    A: Application,
    F: Fn(&FixSessionConfig) -> anyhow::Result<A> + Send + Sync + 'static,
    S: Future<Output = ()> + Send,
{
    Acceptor::new(config, &store_dir, app_factory)?.run(listener, shutdown).await;
    Ok(())
}

/// An acceptor running on its own thread (`spawn`).
#[derive(Debug)]
pub struct AcceptorHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AcceptorHandle {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Logs every session out (`LOGOUT_TIMEOUT` at most) and waits for the thread.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("fix: the acceptor thread panicked");
        }
    }
}

impl Drop for AcceptorHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts the acceptor on `listener` in a thread of its own (`bourse-fix`, driving a
/// tokio runtime of `[fix] workers` threads): for a server whose other parts run
/// elsewhere. Configuration and store
/// errors are reported here, before anything runs.
pub fn spawn<A, F>(
    listener: std::net::TcpListener,
    config: FixConfig,
    store_dir: &Path,
    app_factory: F,
) -> Result<AcceptorHandle, AcceptorError>
where
    A: Application,
    F: Fn(&FixSessionConfig) -> anyhow::Result<A> + Send + Sync + 'static,
{
    let workers =
        if config.workers == 0 { std::thread::available_parallelism().map_or(2, usize::from) } else { config.workers };
    let acceptor = Acceptor::new(config, store_dir, app_factory)?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("bourse-fix-worker")
        .enable_all()
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("bourse-fix".into()).spawn(move || {
        runtime.block_on(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    acceptor
                        .run(listener, async move {
                            let _ = stopped.await;
                        })
                        .await;
                }
                Err(error) => log::error!("fix: cannot listen: {error}"),
            }
        });
    })?;
    Ok(AcceptorHandle { local_addr, stop: Some(stop), thread: Some(thread) })
}

/// Closes a connection: FIN, then drain what the peer still sends, briefly.
async fn close_gracefully(mut reader: impl AsyncRead + Unpin, mut writer: impl AsyncWrite + Unpin) {
    let _ = writer.shutdown().await;
    let mut sink = [0; 4096];
    let _ = timeout(CLOSE_DRAIN, async { while let Ok(1..) = reader.read(&mut sink).await {} }).await;
}

fn close_stream(stream: TcpStream) {
    let (reader, writer) = stream.into_split();
    tokio::spawn(close_gracefully(reader, writer));
}

/// Reads the first message of a connection.
async fn read_first(
    stream: &mut TcpStream,
    framer: &mut Framer,
    message: &mut Message,
    dictionary: &Dictionary,
) -> Result<(), String> {
    let mut bytes_read = 0;
    loop {
        match framer.next_frame() {
            Some(Ok(frame)) => {
                return message
                    .parse_from(frame, dictionary.data_fields())
                    .map_err(|garble| format!("garbled: {garble}"));
            }
            Some(Err(FrameError::Garbled(garble))) => return Err(format!("garbled: {garble}")),
            Some(Err(FrameError::TooLarge)) => return Err(FrameError::TooLarge.to_string()),
            None => {}
        }
        if bytes_read > 2 * MESSAGE_BYTES_MAX {
            return Err("no message in what was sent".to_string());
        }
        match stream.read_buf(framer.read_buffer()).await {
            Ok(0) => return Err("closed before Logon".to_string()),
            Ok(count) => bytes_read += count,
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    let mut difference = u8::from(left.len() != right.len());
    for index in 0..left.len().max(right.len()) {
        difference |= left.get(index).copied().unwrap_or(0) ^ right.get(index).copied().unwrap_or(0);
    }
    difference == 0
}

/// A Logon whose Password (554) is still to be checked against its session's
/// `password_hash` (off the session threads: see `fix::password`).
struct PendingPassword {
    /// Whether the Username (553) matched: decided only after the hash, so that a
    /// wrong username takes as long as a wrong password.
    username_ok: bool,
    given: Vec<u8>,
}

/// Checks a first message as a Logon; the session's index if it is acceptable, and the
/// password still to check when the session keeps a hash.
fn check_logon(shared: &Shared, message: &mut Message) -> Result<(usize, Option<PendingPassword>), String> {
    if message.begin_string() != BEGIN_STRING {
        return Err("BeginString is not FIX.4.4".to_string());
    }
    if message.msg_type() != b"A" {
        return Err("first message is not a Logon".to_string());
    }
    if let Err(violation) = shared.dictionary.validate(message) {
        return Err(format!("invalid Logon: {} (tag {:?})", violation.reason.text(), violation.tag));
    }
    let ours = String::from_utf8_lossy(message.get(tags::TARGET_COMP_ID).unwrap_or_default()).into_owned();
    let theirs = String::from_utf8_lossy(message.get(tags::SENDER_COMP_ID).unwrap_or_default()).into_owned();
    let Some(&index) = shared.by_comp_ids.get(&(ours, theirs)) else {
        return Err("no such session (CompIDs)".to_string());
    };
    let config = &shared.sessions[index].config;
    let tolerance_ms = i64::from(config.sending_time_tolerance_secs) * 1000;
    let sent = message.get(tags::SENDING_TIME).and_then(time::parse_timestamp);
    if sent.is_none_or(|sent| (time::now_ms() - sent).abs() > tolerance_ms) {
        return Err("SendingTime out of tolerance".to_string());
    }
    let mut pending = None;
    if let Some(username) = &config.username {
        let username_ok = constant_time_eq(message.get(tags::USERNAME).unwrap_or_default(), username.as_bytes());
        let given = message.get(tags::PASSWORD).unwrap_or_default();
        if let Some(password) = &config.password {
            if !(username_ok & constant_time_eq(given, password.as_bytes())) {
                return Err("bad credentials".to_string());
            }
        } else {
            pending = Some(PendingPassword { username_ok, given: given.to_vec() });
        }
    }
    if message.get(tags::ENCRYPT_METHOD) != Some(b"0") {
        return Err("EncryptMethod other than 0".to_string());
    }
    let heartbeat = message.get_u64(tags::HEART_BT_INT).unwrap_or(0);
    if !(1..=u64::from(config.heartbeat_secs)).contains(&heartbeat) {
        return Err(format!("HeartBtInt {heartbeat} outside 1..={}", config.heartbeat_secs));
    }
    Ok((index, pending))
}

/// Whether a pending password matches the session's hash, checked on tokio's blocking
/// pool.
async fn password_matches(config: &FixSessionConfig, pending: PendingPassword) -> bool {
    let Some(hash) = config.password_hash.clone() else { return false };
    let PendingPassword { username_ok, given } = pending;
    let matches = tokio::task::spawn_blocking(move || super::password::verify(&hash, &given)).await;
    username_ok & matches.unwrap_or(false)
}

/// Reads and checks the Logon of a new connection, then hands it over.
async fn handshake(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let mut framer = Framer::new();
    let mut logon = Message::default();
    let first = timeout(LOGON_TIMEOUT, read_first(&mut stream, &mut framer, &mut logon, shared.dictionary)).await;
    let checked = match first {
        Err(_) => Err("no Logon in time".to_string()),
        Ok(Err(reason)) => Err(reason),
        Ok(Ok(())) => check_logon(shared, &mut logon),
    };
    let checked = match checked {
        Ok((index, Some(pending))) => {
            if password_matches(&shared.sessions[index].config, pending).await {
                Ok(index)
            } else {
                Err("bad credentials".to_string())
            }
        }
        Ok((index, None)) => Ok(index),
        Err(reason) => Err(reason),
    };
    let index = match checked {
        Ok(index) => index,
        Err(reason) => {
            log::info!("fix: {peer}: refused: {reason}");
            close_stream(stream);
            return;
        }
    };
    let handoff = Handoff { stream, framer, logon, peer };
    if let Err(error) = shared.sessions[index].handoffs.try_send(handoff) {
        let handoff = match error {
            mpsc::error::TrySendError::Full(handoff) | mpsc::error::TrySendError::Closed(handoff) => handoff,
        };
        log::info!("fix: {peer}: session {} busy; closed", shared.sessions[index].config.name());
        close_stream(handoff.stream);
    }
}

/// The next event of an application's source; pending forever without one.
async fn next_event<E>(events: &mut Option<mpsc::Receiver<E>>) -> Option<E> {
    match events {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// One configured session: its state, its application, one connection at a time.
struct Actor<A: Application, F> {
    core: SessionCore,
    app: Option<A>,
    events: Option<mpsc::Receiver<A::Event>>,
    factory: Arc<F>,
    handoffs: mpsc::Receiver<Handoff>,
    shutdown: watch::Receiver<bool>,
}

impl<A, F> Actor<A, F>
where
    A: Application,
    F: Fn(&FixSessionConfig) -> anyhow::Result<A> + Send + Sync + 'static,
{
    async fn run(mut self) {
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            tokio::select! {
                biased;
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                handoff = self.handoffs.recv() => match handoff {
                    Some(handoff) => self.connection(handoff).await,
                    None => break,
                },
                event = next_event(&mut self.events) => match (event, self.app.as_mut()) {
                    (Some(event), Some(app)) => {
                        self.core.on_app_event(app, event);
                    }
                    (None, Some(app)) => self.events = app.take_events(),
                    (_, None) => self.events = None,
                },
            }
        }
    }

    async fn connection(&mut self, handoff: Handoff) {
        let Handoff { stream, mut framer, logon, peer } = handoff;
        if self.app.is_none() {
            match (self.factory)(self.core.config()) {
                Ok(mut app) => {
                    self.events = app.take_events();
                    self.app = Some(app);
                }
                Err(error) => {
                    log::warn!("fix {}: {peer}: application unavailable: {error:#}", self.core.config().name());
                    close_stream(stream);
                    return;
                }
            }
        }
        let Actor { core, app: Some(app), events, handoffs, shutdown, .. } = self else { return };
        log::info!("fix {}: {peer}: Logon", core.config().name());
        let (mut reader, mut writer) = stream.into_split();
        let mut step = core.logon(&logon, app, Instant::now());
        let mut shutting_down = false;
        let mut handoffs_open = true;
        loop {
            while step == Step::Continue && !core.resending() {
                match framer.next_frame() {
                    None => break,
                    Some(Ok(frame)) => step = core.on_frame(frame, app, Instant::now()),
                    Some(Err(FrameError::Garbled(garble))) => core.on_garbled(&garble),
                    Some(Err(FrameError::TooLarge)) => step = core.on_too_large(),
                }
            }
            if !write_output(core, &mut writer).await || step == Step::Disconnect {
                break;
            }
            if core.resending() {
                // A long resend goes out batch by batch, before anything else is read.
                step = core.continue_resend();
                continue;
            }
            let deadline = core.next_deadline();
            tokio::select! {
                biased;
                changed = shutdown.changed(), if !shutting_down => {
                    shutting_down = true;
                    if changed.is_err() || *shutdown.borrow() {
                        step = core.initiate_logout("Server shutting down");
                    }
                }
                read = reader.read_buf(framer.read_buffer()) => {
                    if !matches!(read, Ok(1..)) {
                        break;
                    }
                }
                () = sleep_until(deadline) => step = core.on_timer(Instant::now()),
                event = next_event(events) => match event {
                    Some(event) => step = core.on_app_event(app, event),
                    None => *events = app.take_events(),
                },
                handoff = handoffs.recv(), if handoffs_open => match handoff {
                    Some(duplicate) => {
                        log::info!("fix {}: {}: already logged on; closed", core.config().name(), duplicate.peer);
                        close_stream(duplicate.stream);
                    }
                    None => handoffs_open = false,
                },
            }
        }
        core.on_disconnect(app);
        tokio::spawn(close_gracefully(reader, writer));
    }
}

/// Writes what the session produced; false if the connection is unusable.
async fn write_output(core: &mut SessionCore, writer: &mut OwnedWriteHalf) -> bool {
    if core.output().is_empty() {
        return true;
    }
    let written = timeout(WRITE_TIMEOUT, writer.write_all(core.output())).await;
    core.clear_output();
    matches!(written, Ok(Ok(())))
}
