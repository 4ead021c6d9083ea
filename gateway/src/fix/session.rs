//! The FIX session layer: one session's state machine, independent of sockets and
//! generic over the `Application` behind it.
//!
//! `SessionCore` is driven by the acceptor's session actor: `logon` once per connection,
//! `on_frame` for each framed message, `on_timer` at `next_deadline`, `on_app_event`
//! when the application's event source delivers. Each call appends what must be sent
//! to `output` (the driver writes it) and answers `Step::Disconnect` when the connection
//! must end. The order of checks on an inbound message:
//!
//! 1. BeginString other than FIX.4.4: Logout "Incorrect BeginString", await the reply.
//! 2. No usable MsgSeqNum: Logout and disconnect.
//! 3. Dictionary validation: Reject (3) with SessionRejectReason; the sequence number
//!    is consumed.
//! 4. SendingTime within the tolerance, CompIDs as configured: otherwise Reject (10 or
//!    9) and Logout.
//! 5. Sequence: too high → queued, ResendRequest from the expected number to infinity
//!    (once per gap); too low → Logout and disconnect, unless PossDupFlag=Y (then
//!    ignored, after checking OrigSendingTime). Logout and ResendRequest skip this
//!    check; a SequenceReset checks it only in gap-fill mode.
//! 6. Dispatch: Heartbeat, TestRequest (→ Heartbeat), ResendRequest (stored
//!    application messages resent with PossDupFlag, admin ones replaced by gap fills),
//!    SequenceReset, Reject, Logout, Logon with ResetSeqNumFlag; anything else goes to
//!    the application, which may answer with a `Rejection`.
//!
//! Heartbeats: ours after HeartBtInt without sending; a TestRequest after 1.2 × HeartBtInt
//! without receiving; disconnect after 2.4 × HeartBtInt (no heartbeat while a
//! TestRequest is outstanding).

use std::collections::BTreeMap;
use std::io;
use std::mem;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::codec::{Encoder, Envelope, Message, OutMessage};
use super::config::FixSessionConfig;
use super::dictionary::Dictionary;
use super::limits::{LOGOUT_TIMEOUT, MESSAGE_BYTES_MAX, QUEUED_MESSAGES_MAX, RESEND_BATCH_MESSAGES};
use super::store::SessionStore;
use super::tags::{self, BusinessRejectReason, SessionRejectReason, Tag};
use super::time::{self, TIMESTAMP_MS_LEN};

/// The BeginString of every session.
pub const BEGIN_STRING: &[u8] = b"FIX.4.4";

/// What an application sends: messages queued during a callback, sent (and stored, if
/// application messages) in order when the callback returns.
#[derive(Debug, Default)]
pub struct Outbox {
    messages: Vec<OutMessage>,
    len: usize,
}

impl Outbox {
    /// A new message of `msg_type` to fill in (its allocations are reused).
    pub fn message(&mut self, msg_type: impl AsRef<[u8]>) -> &mut OutMessage {
        if self.len == self.messages.len() {
            self.messages.push(OutMessage::default());
        }
        let message = &mut self.messages[self.len];
        message.reset(msg_type.as_ref());
        self.len += 1;
        message
    }

    /// The messages queued so far.
    pub fn messages(&self) -> &[OutMessage] {
        &self.messages[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the queued messages.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// How an application refuses an inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// BusinessMessageReject (j), BusinessRejectReason 3, "Unsupported Message Type".
    UnsupportedMessageType,
    /// BusinessMessageReject (j) with this reason, Text (the reason's name when `None`)
    /// and BusinessRejectRefID (379).
    Business { reason: BusinessRejectReason, text: Option<String>, ref_id: Option<String> },
    /// Session-level Reject (3).
    Session { reason: SessionRejectReason, tag: Option<Tag> },
}

/// The application behind a session. Created once per configured session, at its first
/// Logon, and kept across reconnects: what it sends while no connection is up is stored
/// with its sequence numbers and reaches the counterparty through its ResendRequest.
pub trait Application: Send + 'static {
    /// What the application receives from elsewhere (e.g. engine results); use
    /// `std::convert::Infallible` when nothing.
    type Event: Send + 'static;

    /// The application's event source; asked after creation, and again if it closes.
    fn take_events(&mut self) -> Option<mpsc::Receiver<Self::Event>> {
        None
    }

    /// A connection has logged on.
    fn on_logon(&mut self, _out: &mut Outbox) {}

    /// The connection has ended (Logout or not).
    fn on_logout(&mut self) {}

    /// An application message, validated, in sequence.
    fn on_message(&mut self, message: &Message, out: &mut Outbox) -> Result<(), Rejection>;

    /// An event from `take_events`'s receiver.
    fn on_event(&mut self, _event: Self::Event, _out: &mut Outbox) {}
}

/// What the driver does after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Write `output`, then close the connection.
    Disconnect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Just received: validated and time/CompID-checked here.
    Wire,
    /// Received ahead of a gap earlier, now in sequence: already checked.
    Queue,
}

type MsgType = SmallVec<[u8; 4]>;

/// One FIX session's state.
#[derive(Debug)]
pub struct SessionCore {
    config: Arc<FixSessionConfig>,
    dictionary: &'static Dictionary,
    store: SessionStore,
    encoder: Encoder,
    outbox: Outbox,
    admin: OutMessage,
    output: Vec<u8>,
    resend_bytes: Vec<u8>,
    message: Message,
    connected: bool,
    heartbeat: Duration,
    last_sent: Instant,
    last_received: Instant,
    test_request_pending: bool,
    logout_deadline: Option<Instant>,
    /// A ResendRequest we sent and the last number it must bring.
    resend_range: Option<(u64, u64)>,
    /// A resend we are answering: the next number to send again and the last one.
    resend_cursor: Option<(u64, u64)>,
    queue: BTreeMap<u64, Message>,
}

fn log_io(config: &FixSessionConfig, error: &io::Error) -> Step {
    log::error!("fix {}: store: {error}; closing the connection", config.name());
    Step::Disconnect
}

impl SessionCore {
    pub fn new(config: Arc<FixSessionConfig>, dictionary: &'static Dictionary, store: SessionStore) -> Self {
        let now = Instant::now();
        SessionCore {
            config,
            dictionary,
            store,
            encoder: Encoder::default(),
            outbox: Outbox::default(),
            admin: OutMessage::default(),
            output: Vec::new(),
            resend_bytes: Vec::new(),
            message: Message::default(),
            connected: false,
            heartbeat: Duration::from_secs(30),
            last_sent: now,
            last_received: now,
            test_request_pending: false,
            logout_deadline: None,
            resend_range: None,
            resend_cursor: None,
            queue: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &FixSessionConfig {
        &self.config
    }

    /// The next sequence numbers: (ours, expected from the counterparty).
    pub fn seq_nums(&self) -> (u64, u64) {
        (self.store.next_sender_seq(), self.store.next_target_seq())
    }

    /// Bytes to write to the connection.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    fn step(&self, result: io::Result<Step>) -> Step {
        result.unwrap_or_else(|error| log_io(&self.config, &error))
    }

    // ---- sending -------------------------------------------------------------------

    /// Encodes `message` with sequence number `seq` into `output`.
    fn encode(&mut self, message: &mut OutMessage, seq: u64, orig_sending_time: Option<&[u8]>) -> Range<usize> {
        let sending_time = time::timestamp_ms(time::now_ms());
        let envelope = Envelope {
            begin_string: BEGIN_STRING,
            sender_comp_id: self.config.sender_comp_id.as_bytes(),
            target_comp_id: self.config.target_comp_id.as_bytes(),
            seq,
            sending_time: &sending_time,
            orig_sending_time,
        };
        self.encoder.encode(&envelope, message, &mut self.output)
    }

    /// Sends a new message with the next sequence number; application messages are
    /// stored. Without a connection it is only stored (and the number consumed).
    fn send(&mut self, message: &mut OutMessage) -> io::Result<()> {
        let seq = self.store.next_sender_seq();
        let range = self.encode(message, seq, None);
        if self.dictionary.is_admin(message.msg_type()) {
            self.store.set_next_sender_seq(seq + 1)?;
        } else {
            self.store.append(seq, &self.output[range.clone()])?;
        }
        if self.connected {
            self.last_sent = Instant::now();
        } else {
            self.output.truncate(range.start);
        }
        Ok(())
    }

    /// Sends an admin message built by `build`.
    fn send_admin(&mut self, msg_type: &[u8], build: impl FnOnce(&mut OutMessage)) -> io::Result<()> {
        let mut message = mem::take(&mut self.admin);
        message.reset(msg_type);
        build(&mut message);
        let result = self.send(&mut message);
        self.admin = message;
        result
    }

    /// Sends what the application queued.
    fn flush_outbox(&mut self) -> io::Result<()> {
        let mut outbox = mem::take(&mut self.outbox);
        let mut result = Ok(());
        for message in &mut outbox.messages[..outbox.len] {
            result = self.send(message);
            if result.is_err() {
                break;
            }
        }
        outbox.clear();
        self.outbox = outbox;
        result
    }

    fn send_logout(&mut self, text: Option<&str>) -> io::Result<()> {
        self.send_admin(b"5", |message| {
            if let Some(text) = text {
                message.set(tags::TEXT, text);
            }
        })?;
        self.logout_deadline = Some(Instant::now() + LOGOUT_TIMEOUT);
        Ok(())
    }

    fn send_logon_response(&mut self, reset: bool) -> io::Result<()> {
        let heartbeat = self.heartbeat.as_secs();
        self.send_admin(b"A", |message| {
            message.set(tags::ENCRYPT_METHOD, "0").set_u64(tags::HEART_BT_INT, heartbeat);
            if reset {
                message.set(tags::RESET_SEQ_NUM_FLAG, "Y");
            }
        })
    }

    fn send_resend_request(&mut self, begin: u64) -> io::Result<()> {
        self.send_admin(b"2", |message| {
            message.set_u64(tags::BEGIN_SEQ_NO, begin).set(tags::END_SEQ_NO, "0");
        })
    }

    /// Copies the routing fields of `to` into `reply`, reversed (OnBehalfOf ↔ DeliverTo).
    fn reverse_route(reply: &mut OutMessage, to: &Message) {
        for (from_tag, reply_tag) in tags::REVERSE_ROUTES {
            if let Some(value) = to.get(from_tag).filter(|value| !value.is_empty()) {
                reply.set_header(reply_tag, value);
            }
        }
    }

    /// Sends a session-level Reject of `message`; consumes its sequence number if it is
    /// the expected one (except for Logon and SequenceReset).
    fn reject(&mut self, message: &Message, reason: SessionRejectReason, tag: Option<Tag>) -> io::Result<()> {
        log::info!(
            "fix {}: Reject ({}): {} (MsgType {}, MsgSeqNum {:?}, tag {tag:?})",
            self.config.name(),
            reason.code(),
            reason.text(),
            String::from_utf8_lossy(message.msg_type()),
            message.seq_num()
        );
        self.send_admin(b"3", |reply| {
            Self::reverse_route(reply, message);
            if let Some(seq) = message.get(tags::MSG_SEQ_NUM).filter(|value| !value.is_empty()) {
                reply.set(tags::REF_SEQ_NUM, seq);
            }
            reply.set(tags::TEXT, reason.text());
            if let Some(tag) = tag {
                reply.set_fmt(tags::REF_TAG_ID, format_args!("{tag}"));
            }
            if !message.msg_type().is_empty() {
                reply.set(tags::REF_MSG_TYPE, message.msg_type());
            }
            reply.set_u64(tags::SESSION_REJECT_REASON, u64::from(reason.code()));
        })?;
        if !matches!(message.msg_type(), b"A" | b"4")
            && let Some(seq) = message.seq_num()
        {
            self.advance(seq)?;
        }
        Ok(())
    }

    /// Sends a BusinessMessageReject (j) of `message`.
    fn business_reject(
        &mut self,
        message: &Message,
        reason: BusinessRejectReason,
        text: Option<&str>,
        ref_id: Option<&str>,
    ) -> io::Result<()> {
        let mut reply = mem::take(&mut self.admin);
        reply.reset(b"j");
        Self::reverse_route(&mut reply, message);
        if let Some(seq) = message.get(tags::MSG_SEQ_NUM) {
            reply.set(tags::REF_SEQ_NUM, seq);
        }
        reply.set(tags::TEXT, text.unwrap_or(reason.text()));
        reply.set(tags::REF_MSG_TYPE, message.msg_type());
        if let Some(ref_id) = ref_id {
            reply.set(tags::BUSINESS_REJECT_REF_ID, ref_id);
        }
        reply.set_u64(tags::BUSINESS_REJECT_REASON, u64::from(reason.code()));
        let result = self.send(&mut reply);
        self.admin = reply;
        result
    }

    // ---- sequence numbers ------------------------------------------------------------

    fn set_expected(&mut self, seq: u64) -> io::Result<()> {
        self.store.set_next_target_seq(seq)?;
        if self.resend_range.is_some_and(|(_, end)| seq > end) {
            self.resend_range = None;
        }
        Ok(())
    }

    /// Consumes `seq` if it is the expected number.
    fn advance(&mut self, seq: u64) -> io::Result<()> {
        if seq == self.store.next_target_seq() { self.set_expected(seq + 1) } else { Ok(()) }
    }

    /// Keeps a message received ahead of a gap and asks for the gap (once).
    fn enqueue(&mut self, message: &Message, seq: u64) -> io::Result<()> {
        let expected = self.store.next_target_seq();
        log::info!("fix {}: MsgSeqNum {seq} too high, expecting {expected}", self.config.name());
        if self.queue.len() < QUEUED_MESSAGES_MAX {
            self.queue.insert(seq, message.clone());
        }
        match self.resend_range {
            Some((begin, _)) if seq >= begin => Ok(()),
            _ => {
                self.send_resend_request(expected)?;
                self.resend_range = Some((expected, seq - 1));
                Ok(())
            }
        }
    }

    // ---- logon -----------------------------------------------------------------------

    /// Starts a connection with its (already authenticated and validated) Logon.
    pub fn logon<A: Application>(&mut self, logon: &Message, app: &mut A, now: Instant) -> Step {
        let result = self.logon_inner(logon, app, now);
        self.step(result)
    }

    fn logon_inner<A: Application>(&mut self, logon: &Message, app: &mut A, now: Instant) -> io::Result<Step> {
        let reset = logon.flag(tags::RESET_SEQ_NUM_FLAG);
        if reset || self.config.reset_on_logon {
            self.store.reset()?;
        }
        self.connected = true;
        self.heartbeat = Duration::from_secs(logon.get_u64(tags::HEART_BT_INT).unwrap_or(30));
        self.last_sent = now;
        self.last_received = now;
        self.test_request_pending = false;
        self.logout_deadline = None;
        self.resend_range = None;
        self.queue.clear();
        let seq = logon.seq_num().unwrap_or(0);
        let expected = self.store.next_target_seq();
        if seq < expected {
            let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
            log::warn!("fix {}: Logon refused: {text}", self.config.name());
            self.send_logout(Some(&text))?;
            return Ok(Step::Disconnect);
        }
        log::info!(
            "fix {}: logged on (HeartBtInt {}s, next out {}, next in {expected})",
            self.config.name(),
            self.heartbeat.as_secs(),
            self.store.next_sender_seq()
        );
        self.send_logon_response(reset)?;
        if seq > expected {
            self.send_resend_request(expected)?;
            self.resend_range = Some((expected, seq - 1));
        } else {
            self.set_expected(seq + 1)?;
        }
        let mut outbox = mem::take(&mut self.outbox);
        app.on_logon(&mut outbox);
        self.outbox = outbox;
        self.flush_outbox()?;
        Ok(Step::Continue)
    }

    /// The connection has ended.
    pub fn on_disconnect<A: Application>(&mut self, app: &mut A) {
        if self.connected {
            log::info!("fix {}: disconnected", self.config.name());
            self.connected = false;
            app.on_logout();
        }
        self.output.clear();
        self.queue.clear();
        self.resend_range = None;
        self.resend_cursor = None;
        self.logout_deadline = None;
        self.test_request_pending = false;
    }

    // ---- inbound ---------------------------------------------------------------------

    /// A frame from the connection.
    pub fn on_frame<A: Application>(&mut self, frame: &[u8], app: &mut A, now: Instant) -> Step {
        let mut message = mem::take(&mut self.message);
        let result = if let Err(garble) = message.parse_from(frame, self.dictionary.data_fields()) {
            log::info!("fix {}: garbled message ignored: {garble}", self.config.name());
            Ok(Step::Continue)
        } else {
            self.last_received = now;
            self.test_request_pending = false;
            self.process(&mut message, app, Origin::Wire)
        };
        self.message = message;
        let result = match result {
            Ok(Step::Continue) => self.drain_queue(app),
            other => other,
        };
        self.step(result)
    }

    /// A message larger than the bound: the stream cannot be resynchronised.
    pub fn on_too_large(&mut self) -> Step {
        let text = format!("Message larger than {MESSAGE_BYTES_MAX} bytes");
        log::warn!("fix {}: {text}; disconnecting", self.config.name());
        let result = self.send_logout(Some(&text)).map(|()| Step::Disconnect);
        self.step(result)
    }

    /// A garbled frame (bad BodyLength or CheckSum): ignored, as the spec says.
    pub fn on_garbled(&mut self, error: &dyn std::fmt::Display) {
        log::info!("fix {}: ignored: {error}", self.config.name());
    }

    /// Processes queued messages that are now in sequence.
    fn drain_queue<A: Application>(&mut self, app: &mut A) -> io::Result<Step> {
        loop {
            let expected = self.store.next_target_seq();
            while self.queue.first_key_value().is_some_and(|(&seq, _)| seq < expected) {
                self.queue.pop_first();
            }
            let Some(mut message) = self.queue.remove(&expected) else { return Ok(Step::Continue) };
            if self.process(&mut message, app, Origin::Queue)? == Step::Disconnect {
                return Ok(Step::Disconnect);
            }
        }
    }

    /// BeginString, MsgSeqNum presence and dictionary validation of a message just
    /// received; `Some(step)` when it stops here.
    fn check_arrival(&mut self, message: &mut Message) -> io::Result<Option<Step>> {
        if message.begin_string() != BEGIN_STRING {
            if message.msg_type() == b"5" {
                return self.logout_received().map(Some);
            }
            self.send_logout(Some("Incorrect BeginString"))?;
            if let Some(seq) = message.seq_num() {
                self.advance(seq)?;
            }
            return Ok(Some(Step::Continue));
        }
        if message.seq_num().is_none() {
            self.send_logout(Some("MsgSeqNum (34) missing or not a number"))?;
            return Ok(Some(Step::Disconnect));
        }
        if let Err(violation) = self.dictionary.validate(message) {
            self.reject(message, violation.reason, violation.tag)?;
            return Ok(Some(Step::Continue));
        }
        Ok(None)
    }

    fn process<A: Application>(&mut self, message: &mut Message, app: &mut A, origin: Origin) -> io::Result<Step> {
        if origin == Origin::Wire
            && let Some(step) = self.check_arrival(message)?
        {
            return Ok(step);
        }
        let msg_type: MsgType = SmallVec::from_slice(message.msg_type());
        let seq = message.seq_num().unwrap_or(0);
        let (check_high, check_low) = match msg_type.as_slice() {
            b"5" | b"2" => (false, false),
            b"4" => {
                let gap_fill = message.flag(tags::GAP_FILL_FLAG);
                (gap_fill, gap_fill)
            }
            b"A" if message.flag(tags::RESET_SEQ_NUM_FLAG) => (false, false),
            _ => (true, true),
        };
        if let Some(step) = self.verify(message, seq, check_high, check_low, origin)? {
            return Ok(step);
        }
        match msg_type.as_slice() {
            b"0" | b"3" => {}
            b"1" => {
                let id = message.get(tags::TEST_REQ_ID).unwrap_or_default();
                self.send_admin(b"0", |reply| {
                    reply.set(tags::TEST_REQ_ID, id);
                })?;
            }
            b"2" => {
                let begin = message.get_u64(tags::BEGIN_SEQ_NO).unwrap_or(0);
                let end = message.get_u64(tags::END_SEQ_NO).unwrap_or(0);
                self.resend(begin, end)?;
            }
            b"4" => return self.sequence_reset(message),
            b"5" => {
                self.advance(seq)?;
                return self.logout_received();
            }
            b"A" => return self.logon_in_session(message, seq),
            _ => self.deliver(message, app)?,
        }
        self.advance(seq)?;
        Ok(Step::Continue)
    }

    fn sending_time_ok(&self, message: &Message) -> bool {
        let tolerance_ms = i64::from(self.config.sending_time_tolerance_secs) * 1000;
        message
            .get(tags::SENDING_TIME)
            .and_then(time::parse_timestamp)
            .is_some_and(|sent| (time::now_ms() - sent).abs() <= tolerance_ms)
    }

    fn comp_ids_ok(&self, message: &Message) -> bool {
        message.get(tags::SENDER_COMP_ID) == Some(self.config.target_comp_id.as_bytes())
            && message.get(tags::TARGET_COMP_ID) == Some(self.config.sender_comp_id.as_bytes())
    }

    /// SendingTime, CompIDs and sequence checks; `Some(step)` when the message stops here.
    fn verify(
        &mut self,
        message: &Message,
        seq: u64,
        check_high: bool,
        check_low: bool,
        origin: Origin,
    ) -> io::Result<Option<Step>> {
        if origin == Origin::Wire {
            let problem = if !self.sending_time_ok(message) {
                Some(SessionRejectReason::SendingTimeAccuracyProblem)
            } else if !self.comp_ids_ok(message) {
                Some(SessionRejectReason::CompIdProblem)
            } else {
                None
            };
            if let Some(reason) = problem {
                self.reject(message, reason, None)?;
                self.send_logout(None)?;
                return Ok(Some(Step::Continue));
            }
        }
        let expected = self.store.next_target_seq();
        if check_high && seq > expected {
            self.enqueue(message, seq)?;
            return Ok(Some(Step::Continue));
        }
        if check_low && seq < expected {
            if !message.flag(tags::POSS_DUP_FLAG) {
                let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
                log::warn!("fix {}: {text}", self.config.name());
                self.send_logout(Some(&text))?;
                return Ok(Some(Step::Disconnect));
            }
            if message.msg_type() != b"4" {
                let sent = message.get(tags::SENDING_TIME).and_then(time::parse_timestamp);
                match message.get(tags::ORIG_SENDING_TIME).and_then(time::parse_timestamp) {
                    None => {
                        self.reject(message, SessionRejectReason::RequiredTagMissing, Some(tags::ORIG_SENDING_TIME))?;
                    }
                    Some(orig) if sent.is_some_and(|sent| orig > sent) => {
                        self.reject(message, SessionRejectReason::SendingTimeAccuracyProblem, None)?;
                        self.send_logout(None)?;
                    }
                    Some(_) => log::debug!("fix {}: duplicate {seq} ignored", self.config.name()),
                }
            }
            return Ok(Some(Step::Continue));
        }
        Ok(None)
    }

    /// Hands an application message to the application.
    fn deliver<A: Application>(&mut self, message: &Message, app: &mut A) -> io::Result<()> {
        let mut outbox = mem::take(&mut self.outbox);
        let verdict = app.on_message(message, &mut outbox);
        self.outbox = outbox;
        self.flush_outbox()?;
        match verdict {
            Ok(()) => Ok(()),
            Err(Rejection::UnsupportedMessageType) => {
                self.business_reject(message, BusinessRejectReason::UnsupportedMessageType, None, None)
            }
            Err(Rejection::Business { reason, text, ref_id }) => {
                self.business_reject(message, reason, text.as_deref(), ref_id.as_deref())
            }
            Err(Rejection::Session { reason, tag }) => self.reject(message, reason, tag),
        }
    }

    fn sequence_reset(&mut self, message: &Message) -> io::Result<Step> {
        let new_seq = message.get_u64(tags::NEW_SEQ_NO).unwrap_or(0);
        let expected = self.store.next_target_seq();
        if new_seq > expected {
            self.set_expected(new_seq)?;
        } else if new_seq < expected {
            self.reject(message, SessionRejectReason::ValueIsIncorrect, None)?;
        }
        Ok(Step::Continue)
    }

    fn logout_received(&mut self) -> io::Result<Step> {
        if self.logout_deadline.is_none() {
            self.send_logout(None)?;
        }
        log::info!("fix {}: Logout", self.config.name());
        Ok(Step::Disconnect)
    }

    /// A Logon on a logged-on connection: with ResetSeqNumFlag, both sequences restart
    /// at 1; without, it is a protocol error.
    fn logon_in_session(&mut self, message: &Message, seq: u64) -> io::Result<Step> {
        if !message.flag(tags::RESET_SEQ_NUM_FLAG) {
            self.send_logout(Some("Logon received on a logged-on session"))?;
            return Ok(Step::Continue);
        }
        let heartbeat = message.get_u64(tags::HEART_BT_INT).unwrap_or(0);
        if (1..=u64::from(self.config.heartbeat_secs)).contains(&heartbeat) {
            self.heartbeat = Duration::from_secs(heartbeat);
        }
        log::info!("fix {}: sequence reset by Logon", self.config.name());
        self.store.reset()?;
        self.queue.clear();
        self.resend_range = None;
        self.send_logon_response(true)?;
        self.set_expected(seq + 1)?;
        Ok(Step::Continue)
    }

    /// Answers a ResendRequest for `begin..=end` (0: up to our last): the first batch
    /// now, the rest through `continue_resend`.
    fn resend(&mut self, begin: u64, end: u64) -> io::Result<()> {
        let last = self.store.next_sender_seq() - 1;
        let end = if end == 0 || end > last { last } else { end };
        if begin == 0 || begin > end {
            log::info!("fix {}: ResendRequest {begin}..{end} asks for nothing we sent", self.config.name());
            return Ok(());
        }
        log::info!("fix {}: resending {begin}..={end}", self.config.name());
        self.resend_cursor = Some((begin, end));
        self.resend_batch()
    }

    /// Whether a resend is under way (the driver writes, then calls `continue_resend`
    /// before reading more).
    pub fn resending(&self) -> bool {
        self.resend_cursor.is_some()
    }

    /// Produces the next batch of a resend under way.
    pub fn continue_resend(&mut self) -> Step {
        let result = self.resend_batch().map(|()| Step::Continue);
        self.step(result)
    }

    /// Up to `RESEND_BATCH_MESSAGES` stored messages again, with gap fills for what lies
    /// between them (admin messages, or messages too old to be kept).
    fn resend_batch(&mut self) -> io::Result<()> {
        let Some((mut gap_start, end)) = self.resend_cursor.take() else { return Ok(()) };
        let mut bytes = mem::take(&mut self.resend_bytes);
        let mut found = Vec::new();
        bytes.clear();
        let read = self.store.read_range(gap_start, end, RESEND_BATCH_MESSAGES, &mut bytes, &mut found);
        if read.is_ok() {
            for (seq, range) in &found {
                if *seq > gap_start {
                    self.gap_fill(gap_start, *seq);
                }
                self.resend_stored(*seq, &bytes[range.clone()]);
                gap_start = seq + 1;
            }
            if found.len() == RESEND_BATCH_MESSAGES && gap_start <= end {
                self.resend_cursor = Some((gap_start, end));
            } else if gap_start <= end {
                self.gap_fill(gap_start, end + 1);
            }
        }
        self.resend_bytes = bytes;
        self.last_sent = Instant::now();
        read
    }

    /// A SequenceReset-GapFill sent as number `seq`, moving the counterparty to `new_seq`.
    fn gap_fill(&mut self, seq: u64, new_seq: u64) {
        let mut message = mem::take(&mut self.admin);
        message.reset(b"4");
        message.set_u64(tags::NEW_SEQ_NO, new_seq).set(tags::GAP_FILL_FLAG, "Y");
        let now = time::timestamp_ms(time::now_ms());
        self.encode(&mut message, seq, Some(&now[..]));
        self.admin = message;
    }

    /// Sends a stored message again: same number and body, PossDupFlag=Y, its first
    /// SendingTime as OrigSendingTime. An unreadable record is gap-filled instead.
    fn resend_stored(&mut self, seq: u64, bytes: &[u8]) {
        let mut stored = Message::default();
        if stored.parse_from(bytes, self.dictionary.data_fields()).is_err() {
            log::warn!("fix {}: stored message {seq} unreadable; gap-filling it", self.config.name());
            self.gap_fill(seq, seq + 1);
            return;
        }
        self.dictionary.mark_sections(&mut stored);
        let mut message = mem::take(&mut self.admin);
        message.reset(stored.msg_type());
        for field in stored.header_fields() {
            message.set_header(field.tag, field.value);
        }
        message.set_raw_body(stored.raw_body());
        let orig: SmallVec<[u8; TIMESTAMP_MS_LEN]> =
            SmallVec::from_slice(stored.get(tags::SENDING_TIME).unwrap_or_default());
        self.encode(&mut message, seq, Some(&orig[..]));
        self.admin = message;
    }

    // ---- time and events ---------------------------------------------------------------

    /// When `on_timer` must run next.
    pub fn next_deadline(&self) -> Instant {
        let heartbeat = self.heartbeat;
        let deadline = if self.test_request_pending {
            self.last_received + heartbeat.mul_f64(2.4)
        } else {
            (self.last_sent + heartbeat).min(self.last_received + heartbeat.mul_f64(1.2))
        };
        self.logout_deadline.map_or(deadline, |logout| logout.min(deadline))
    }

    /// Heartbeat, TestRequest, and the timeouts.
    pub fn on_timer(&mut self, now: Instant) -> Step {
        let heartbeat = self.heartbeat;
        let result = if self.logout_deadline.is_some_and(|deadline| now >= deadline) {
            log::info!("fix {}: no Logout reply; disconnecting", self.config.name());
            Ok(Step::Disconnect)
        } else if self.test_request_pending {
            if now >= self.last_received + heartbeat.mul_f64(2.4) {
                log::warn!("fix {}: TestRequest unanswered; disconnecting", self.config.name());
                Ok(Step::Disconnect)
            } else {
                Ok(Step::Continue)
            }
        } else if now >= self.last_received + heartbeat.mul_f64(1.2) {
            self.test_request_pending = true;
            self.send_admin(b"1", |message| {
                message.set(tags::TEST_REQ_ID, "TEST");
            })
            .map(|()| Step::Continue)
        } else if now >= self.last_sent + heartbeat {
            self.send_admin(b"0", |_| {}).map(|()| Step::Continue)
        } else {
            Ok(Step::Continue)
        };
        self.step(result)
    }

    /// An event from the application's source, connected or not.
    pub fn on_app_event<A: Application>(&mut self, app: &mut A, event: A::Event) -> Step {
        let mut outbox = mem::take(&mut self.outbox);
        app.on_event(event, &mut outbox);
        self.outbox = outbox;
        let result = self.flush_outbox().map(|()| Step::Continue);
        self.step(result)
    }

    /// Starts a Logout (server shutdown); the connection ends on the reply or the timeout.
    pub fn initiate_logout(&mut self, text: &str) -> Step {
        if !self.connected || self.logout_deadline.is_some() {
            return Step::Continue;
        }
        let result = self.send_logout(Some(text)).map(|()| Step::Continue);
        self.step(result)
    }
}
