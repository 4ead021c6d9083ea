//! The FIX 4.4 acceptor: tokio TCP, our own tag=value codec and session layer, and the
//! applications behind it.
//!
//! ```text
//! TCP ─▶ acceptor (one task per connection until Logon) ─▶ session actor (one per configured session)
//!          codec::Framer, dictionary::validate              session::SessionCore ─▶ Application
//!                                                           store (seqnums + sent messages, on disk)
//! ```
//!
//! - `limits`: every bound the FIX side keeps (message size, queues, timeouts).
//! - `tags`: tag numbers, SessionRejectReason (373) and BusinessRejectReason (380).
//! - `time`: UTCTimestamp formatting (three decimals) and parsing.
//! - `codec`: framing on 8=/9=/10= with BodyLength and CheckSum checks, field splitting
//!   (`Message`), and the encoder (`OutMessage`: header 8, 9, 35, then ascending tags).
//! - `dictionary`: the FIX 4.4 data dictionary (`gateway/fix/FIX44.xml`, loaded once) and
//!   message validation with the standard SessionRejectReason codes.
//! - `config`: the `[fix]` table: listen address and the declared sessions.
//! - `store`: per-session sequence numbers and the append-only store of sent application
//!   messages (for ResendRequest), so a reconnect or a restart continues the sequence.
//! - `session`: the session state machine (Logon, Heartbeat, TestRequest, ResendRequest,
//!   SequenceReset, Reject, Logout), generic over the `Application` behind it.
//! - `acceptor`: `serve`: the listener, the Logon handshake, one actor per session.
//! - `order_entry`: the order-entry application: D, F, G into engine commands through
//!   the hub; ExecutionReport (8) for every state change, OrderCancelReject (9).
//! - `reflector`: the echo application of the QuickFIX acceptance scenarios, and
//!   `run_reflector` (`bourse fix-reflector`).

// FIX field and message names (SenderCompID, MsgSeqNum, ResendRequest…) are the spec's
// vocabulary in these docs, not Rust items to put in backticks.
#![allow(clippy::doc_markdown)]

pub mod acceptor;
pub mod codec;
pub mod config;
pub mod dictionary;
pub mod order_entry;
pub mod password;
pub mod reflector;
pub mod session;
pub mod store;
pub mod tags;
pub mod time;

/// Every bound the FIX side keeps, in one place.
pub mod limits {
    use std::time::Duration;

    /// The largest inbound message, whole frame (8= … 10=xxx), in bytes. A message whose
    /// BodyLength says more, or whose trailer is not found within this many bytes, ends
    /// the connection (a Logout saying so when logged on): it cannot be skipped safely.
    pub const MESSAGE_BYTES_MAX: usize = 64 * 1024;
    /// The longest BeginString value accepted by the framer.
    pub const BEGIN_STRING_BYTES_MAX: usize = 16;
    /// Bytes read from the socket at a time.
    pub const READ_CHUNK_BYTES: usize = 16 * 1024;
    /// A connection must complete its Logon within this time.
    pub const LOGON_TIMEOUT: Duration = Duration::from_secs(10);
    /// After we send a Logout, how long we wait for the counterparty's before closing.
    pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(3);
    /// A socket write that takes longer than this ends the connection.
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a closing connection is drained after our FIN, so that what we sent last
    /// is not destroyed by a reset.
    pub const CLOSE_DRAIN: Duration = Duration::from_secs(1);
    /// Stored messages read per batch while answering a ResendRequest.
    pub const RESEND_BATCH_MESSAGES: usize = 256;
    /// Messages received ahead of a sequence gap, kept until the gap is filled. Beyond
    /// this the newest are dropped: our ResendRequest asks for everything from the gap
    /// on, so they come again.
    pub const QUEUED_MESSAGES_MAX: usize = 4096;
    /// Sent application messages indexed for resending per session; older ones are
    /// answered with a gap fill.
    pub const STORED_MESSAGES_MAX: usize = 1 << 18;
    /// Connections that have not yet logged on, across the acceptor.
    pub const PENDING_CONNECTIONS_MAX: usize = 256;
    /// Configured sessions.
    pub const SESSIONS_MAX: usize = 1024;
    /// Threads running the sessions (`[fix] workers`), at most.
    pub const WORKERS_MAX: usize = 64;
    /// The largest HeartBtInt (108) the configuration may allow.
    pub const HEARTBEAT_SECS_MAX: u32 = 3600;
}
