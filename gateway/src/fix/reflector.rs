//! The reflector: the application the QuickFIX acceptance scenarios expect behind the
//! session layer. It echoes NewOrderSingle (D), SecurityDefinition (d) and Email (C)
//! back (body and extra header fields, body in ascending tag order); drops a resent D
//! (PossResend 97=Y) whose ClOrdID it has already seen since the last logout; answers
//! anything else with a BusinessMessageReject (j), 380=3.
//!
//! `run_reflector` serves it on its own (`bourse fix-reflector`), for the acceptance
//! script.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::acceptor::serve;
use super::codec::Message;
use super::config::FixConfig;
use super::session::{Application, Outbox, Rejection};
use super::tags;

/// ClOrdIDs remembered at most; the memory starts over beyond.
const SEEN_MAX: usize = 100_000;

/// NoHops (627), a header group the echo leaves out.
const NO_HOPS: tags::Tag = 627;

/// The echo application.
#[derive(Debug, Default)]
pub struct Reflector {
    seen: HashSet<Box<[u8]>>,
}

impl Reflector {
    pub fn new() -> Self {
        Reflector::default()
    }
}

/// Queues `message` back to its sender.
fn echo(message: &Message, out: &mut Outbox) {
    let reply = out.message(message.msg_type());
    for field in message.header_fields() {
        if field.depth == 0 && field.tag != NO_HOPS {
            reply.set_header(field.tag, field.value);
        }
    }
    let mut group = 0;
    for field in message.body_fields() {
        if field.depth == 0 {
            reply.set(field.tag, field.value);
            group = field.tag;
        } else {
            reply.set_group_member(group, field.tag, field.value);
        }
    }
}

impl Application for Reflector {
    type Event = Infallible;

    fn on_logout(&mut self) {
        self.seen.clear();
    }

    fn on_message(&mut self, message: &Message, out: &mut Outbox) -> Result<(), Rejection> {
        match message.msg_type() {
            b"D" => {
                let id = message.get(tags::CL_ORD_ID).unwrap_or_default();
                if message.flag(tags::POSS_RESEND) && self.seen.contains(id) {
                    return Ok(());
                }
                if self.seen.len() >= SEEN_MAX {
                    self.seen.clear();
                }
                self.seen.insert(id.into());
                echo(message, out);
                Ok(())
            }
            b"d" | b"C" => {
                echo(message, out);
                Ok(())
            }
            _ => Err(Rejection::UnsupportedMessageType),
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves the `[fix]` sessions of the server configuration at `config_path` with the
/// reflector behind each, on `listen`, storing sequence numbers under
/// `data_dir/fix`, until SIGINT or SIGTERM. Prints `FIX acceptor listening on ADDR`
/// (flushed) once listening, so a script can learn the port of `127.0.0.1:0`.
pub fn run_reflector(config_path: &Path, data_dir: &Path, listen: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let config = FixConfig::from_server_toml(&text).with_context(|| format!("in {}", config_path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr()?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "FIX acceptor listening on {address}")?;
        stdout.flush()?;
        serve(listener, config, data_dir.join("fix"), |_| Ok(Reflector::new()), termination()).await?;
        Ok(())
    })
}
