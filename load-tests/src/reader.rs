//! The readers: threads each running a single-threaded tokio runtime that reads its
//! share of the connections. Each read is decoded whole (WebSocket frames or FIX
//! messages) and handed to the session's state under one lock, stamped with one
//! arrival time.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

use crate::client::{Client, Control, Outbox, Shared};
use crate::fix::{FixMessage, frame_len};
use crate::marketdata::Subscriber;
use crate::ws::{Assembler, Incoming, decode_frame};

/// Whose connection it is.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    Ws(Arc<Client>),
    Fix(Arc<Client>),
    MarketData(Arc<Subscriber>),
}

/// One connection's read side.
#[derive(Debug)]
pub(crate) struct ReadSide {
    pub(crate) stream: TcpStream,
    /// Bytes read during setup and not yet decoded.
    pub(crate) leftover: Vec<u8>,
    pub(crate) owner: Owner,
    pub(crate) outbox: Arc<Outbox>,
}

/// Runs the readers of `connections` on this thread until `stop` turns true or every
/// connection has ended. Returns why each connection that ended before `stop` ended
/// (closed by the server, reset, a protocol error).
pub(crate) fn run(
    connections: Vec<ReadSide>,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let local = tokio::task::LocalSet::new();
    let errors = local.block_on(&runtime, async move {
        let mut tasks = Vec::with_capacity(connections.len());
        for connection in connections {
            let shared = Arc::clone(shared);
            let mut stop = stop.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let owner = connection.owner.clone();
                let error = tokio::select! {
                    outcome = read_connection(connection, &shared) => outcome.err().map(|error| format!("{error:#}")),
                    _ = stop.wait_for(|stop| *stop) => return None,
                };
                // However it ended (closed, reset, a protocol error), the session is gone.
                if let Owner::Ws(client) | Owner::Fix(client) = &owner {
                    client.lock().connected = false;
                }
                error
            }));
        }
        let mut errors = Vec::new();
        for task in tasks {
            if let Ok(Some(error)) = task.await {
                errors.push(error);
            }
        }
        errors
    });
    Ok(errors)
}

async fn read_connection(connection: ReadSide, shared: &Shared) -> anyhow::Result<()> {
    connection.stream.set_nonblocking(true)?;
    let mut stream = tokio::net::TcpStream::from_std(connection.stream)?;
    let mut buffer = connection.leftover;
    buffer.reserve(256 * 1024);
    let mut assembler = Assembler::default();
    let mut start = 0;
    loop {
        let consumed = decode_all(
            &connection.owner,
            &connection.outbox,
            shared,
            &buffer[start..],
            &mut assembler,
            Instant::now(),
        )?;
        start += consumed;
        if start == buffer.len() {
            buffer.clear();
            start = 0;
        } else if start > buffer.capacity() / 2 {
            buffer.drain(..start);
            start = 0;
        }
        if buffer.capacity() - buffer.len() < 64 * 1024 {
            buffer.reserve(256 * 1024);
        }
        let read = stream.read_buf(&mut buffer).await?;
        if read == 0 {
            anyhow::bail!("the server closed the connection");
        }
    }
}

/// Decodes and handles every whole message at the start of `bytes`; returns the
/// bytes consumed.
fn decode_all(
    owner: &Owner,
    outbox: &Outbox,
    shared: &Shared,
    bytes: &[u8],
    assembler: &mut Assembler,
    now: Instant,
) -> anyhow::Result<usize> {
    let mut consumed = 0;
    match owner {
        Owner::Fix(client) => {
            let mut state = None;
            while let Some(len) = frame_len(&bytes[consumed..])? {
                let message = FixMessage::parse(&bytes[consumed..consumed + len])?;
                let state = state.get_or_insert_with(|| client.lock());
                state.on_fix_message(&client.identity, shared, &message, outbox, now);
                consumed += len;
            }
        }
        Owner::Ws(_) | Owner::MarketData(_) => {
            let mut client_state = None;
            let mut subscriber_state = None;
            while let Some(frame) = decode_frame(&bytes[consumed..])? {
                let frame_bytes = &bytes[consumed..consumed + frame.len];
                match assembler.feed(frame, frame_bytes)? {
                    Incoming::Message(message) => match owner {
                        Owner::Ws(client) => {
                            let state = client_state.get_or_insert_with(|| client.lock());
                            state.on_ws_message(&client.identity, shared, &message, now);
                        }
                        Owner::MarketData(subscriber) => {
                            let state = subscriber_state.get_or_insert_with(|| subscriber.lock());
                            state.on_message(&message);
                        }
                        Owner::Fix(_) => unreachable!("matched above"),
                    },
                    Incoming::Ping(payload) => outbox.push(Control::Pong(payload.to_vec())),
                    Incoming::Close => anyhow::bail!("the server closed the WebSocket"),
                    Incoming::Nothing => {}
                }
                consumed += frame.len;
            }
        }
    }
    Ok(consumed)
}
