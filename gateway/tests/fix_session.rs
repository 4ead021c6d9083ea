//! The FIX 4.4 acceptor: codec round trips and malformed input, dictionary validation,
//! and sessions over loopback TCP with the reflector (logon, heartbeat and test request,
//! resend with gap fill, sequence numbers across reconnects and restarts, bad logons,
//! garbage, asynchronous application messages).
#![allow(clippy::unwrap_used)]
// FIX field and message names in the docs are the spec's vocabulary, not Rust items.
#![allow(clippy::doc_markdown)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bourse_core::Capacity;
use bourse_core::command::{Command, Deposit, OpenAccount};
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, IdempotencyKey, KycTier, OwnerId, Reference};
use bourse_core::money::Amount;
use bourse_gateway::fix::acceptor::serve;
use bourse_gateway::fix::codec::{Encoder, Envelope, FrameError, Framer, Garble, Message, OutMessage};
use bourse_gateway::fix::config::{FixConfig, FixSessionConfig};
use bourse_gateway::fix::dictionary::Dictionary;
use bourse_gateway::fix::order_entry::OrderEntry;
use bourse_gateway::fix::reflector::Reflector;
use bourse_gateway::fix::session::{Application, Outbox, Rejection};
use bourse_gateway::fix::store::SessionStore;
use bourse_gateway::fix::tags::{self, SessionRejectReason};
use bourse_gateway::fix::time;
use bourse_gateway::hub::Hub;
use bourse_gateway::metrics::Metrics;
use bourse_gateway::view::ReadModel;
use bourse_snapshots::datadir::open_data_dir;
use bourse_snapshots::recovery::recover;
use bourse_snapshots::runtime::{Runtime, RuntimeConfig};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn now() -> [u8; 21] {
    time::timestamp_ms(time::now_ms())
}

/// Encodes `message` as the counterparty TW44 → ISLD with `seq`.
fn encode(message: &mut OutMessage, seq: u64) -> Vec<u8> {
    encode_as(b"TW44", message, seq)
}

/// Encodes `message` as the counterparty `comp_id` → ISLD with `seq`.
fn encode_as(comp_id: &[u8], message: &mut OutMessage, seq: u64) -> Vec<u8> {
    let sending_time = now();
    let envelope = Envelope {
        begin_string: b"FIX.4.4",
        sender_comp_id: comp_id,
        target_comp_id: b"ISLD",
        seq,
        sending_time: &sending_time,
        orig_sending_time: None,
    };
    let mut out = Vec::new();
    Encoder::default().encode(&envelope, message, &mut out);
    out
}

fn parse(frame: &[u8]) -> Message {
    let dictionary = Dictionary::fix44().unwrap();
    let mut message = Message::default();
    message.parse_from(frame, dictionary.data_fields()).unwrap();
    dictionary.validate(&mut message).unwrap();
    message
}

fn logon(heartbeat: u64) -> OutMessage {
    let mut message = OutMessage::new("A");
    message.set(tags::ENCRYPT_METHOD, "0").set_u64(tags::HEART_BT_INT, heartbeat);
    message
}

fn new_order(id: &str) -> OutMessage {
    let mut message = OutMessage::new("D");
    message.set(tags::CL_ORD_ID, id).set(tags::SIDE, "1").set(tags::TRANSACT_TIME, now()).set(tags::ORD_TYPE, "1");
    message.set(tags::SYMBOL, "BTC-USD").set(tags::ORDER_QTY, "5");
    message
}

// ---- codec -------------------------------------------------------------------------

#[test]
fn the_encoder_writes_8_9_35_then_ascending_tags_with_a_valid_length_and_checksum() {
    let mut message = OutMessage::new("D");
    message.set(55, "INTC").set(11, "ID").set(40, "1").set_header(115, "JCD").set(54, "1").set(60, "20240101-00:00:00");
    let bytes = encode(&mut message, 7);
    let mut framer = Framer::new();
    framer.extend(&bytes);
    let frame = framer.next_frame().unwrap().unwrap();
    let message = parse(frame);
    let order: Vec<i32> = message.fields().map(|field| field.tag).collect();
    assert_eq!(order, [8, 9, 35, 34, 49, 52, 56, 115, 11, 40, 54, 55, 60, 10]);
    assert_eq!(message.get(tags::SENDING_TIME).unwrap().len(), 21, "SendingTime carries milliseconds");
    let body_start = bytes.windows(4).position(|window| window == b"\x0135=").unwrap() + 1;
    let trailer = bytes.len() - 7;
    assert_eq!(message.get(tags::BODY_LENGTH).unwrap(), (trailer - body_start).to_string().as_bytes());
    let sum = bytes[..trailer].iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    assert_eq!(message.get(tags::CHECK_SUM).unwrap(), format!("{sum:03}").as_bytes());
    assert_eq!(message.seq_num(), Some(7));
}

#[test]
fn a_bad_checksum_or_body_length_is_garbled_and_the_next_message_is_still_found() {
    let good = encode(&mut OutMessage::new("0"), 2);
    let mut bad_sum = good.clone();
    let at = bad_sum.len() - 2;
    bad_sum[at] = if bad_sum[at] == b'9' { b'0' } else { bad_sum[at] + 1 };
    let long_length = String::from_utf8(good.clone()).unwrap().replacen("\u{1}9=", "\u{1}9=1", 1).into_bytes();
    let short_length = b"8=FIX.4.4\x019=5\x0135=0\x0134=2\x0149=TW44\x0110=000\x01".to_vec();
    let garbage = b"\x01\x01 not fix at all 58=FIX 8=".to_vec();
    let mut stream = Vec::new();
    for piece in [&bad_sum, &short_length, &garbage, &good, &long_length, &good, &good] {
        stream.extend_from_slice(piece);
    }
    let mut framer = Framer::new();
    framer.extend(&stream);
    assert_eq!(framer.next_frame(), Some(Err(FrameError::Garbled(Garble::CheckSum))));
    assert_eq!(framer.next_frame(), Some(Err(FrameError::Garbled(Garble::BodyLengthMismatch))));
    assert_eq!(framer.next_frame(), Some(Ok(&good[..])));
    // The over-long length reaches into the second message after it: all three are one
    // garbled frame (the sender is asked for them again).
    assert_eq!(framer.next_frame(), Some(Err(FrameError::Garbled(Garble::BodyLengthMismatch))));
    assert_eq!(framer.next_frame(), None);
    assert_eq!(framer.buffered(), 0);
}

#[test]
fn a_message_above_the_size_bound_is_refused() {
    let mut framer = Framer::new();
    framer.extend(b"8=FIX.4.4\x019=70000\x0135=0\x01");
    assert_eq!(framer.next_frame(), Some(Err(FrameError::TooLarge)));
    let mut framer = Framer::new();
    framer.extend(b"8=FIX.4.4\x019=10\x0135=0\x01");
    framer.extend(&vec![b'x'; 70_000]);
    assert_eq!(framer.next_frame(), Some(Err(FrameError::TooLarge)));
}

#[test]
fn fields_that_are_not_tag_equals_value_make_a_garbled_message() {
    let mut message = Message::default();
    let data = Dictionary::fix44().unwrap().data_fields();
    assert_eq!(message.parse_from(b"8=FIX.4.4\x019=5\x0135=0\x014garbled9=TW\x0110=000\x01", data), Err(Garble::Field));
    assert_eq!(message.parse_from(b"8=FIX.4.4\x0135=0\x019=5\x0110=000\x01", data), Err(Garble::FirstFields));
    // A DATA field is read by its length, so it may hold SOH.
    message.parse_from(b"8=FIX.4.4\x019=5\x0135=0\x0195=3\x0196=a\x01b\x0110=000\x01", data).unwrap();
    assert_eq!(message.get(96), Some(&b"a\x01b"[..]));
}

fn violation(text: &str) -> Option<(SessionRejectReason, Option<i32>)> {
    let bytes = text.replace('|', "\u{1}").into_bytes();
    let dictionary = Dictionary::fix44().unwrap();
    let mut message = Message::default();
    message.parse_from(&bytes, dictionary.data_fields()).unwrap();
    dictionary.validate(&mut message).err().map(|violation| (violation.reason, violation.tag))
}

#[test]
fn validation_answers_with_the_standard_reject_reasons() {
    use SessionRejectReason as R;
    let header = "8=FIX.4.4|9=1|35=D|34=2|49=TW44|52=20240101-00:00:00|56=ISLD|";
    let order = "11=ID|21=1|40=1|54=1|60=20240101-00:00:00|";
    assert_eq!(violation(&format!("{header}{order}10=000|")), None);
    assert_eq!(
        violation(&format!("{header}21=1|40=1|54=1|60=20240101-00:00:00|10=000|")),
        Some((R::RequiredTagMissing, Some(11)))
    );
    assert_eq!(violation(&format!("{header}{order}999=x|10=000|")), Some((R::InvalidTagNumber, Some(999))));
    assert_eq!(violation(&format!("{header}{order}112=x|10=000|")), Some((R::TagNotDefinedForMessageType, Some(112))));
    assert_eq!(violation(&format!("{header}{order}55=|10=000|")), Some((R::TagSpecifiedWithoutValue, Some(55))));
    assert_eq!(violation(&format!("{header}{order}59=Z|10=000|")), Some((R::ValueIsIncorrect, Some(59))));
    assert_eq!(violation(&format!("{header}{order}38=+1|10=000|")), Some((R::IncorrectDataFormat, Some(38))));
    assert_eq!(violation(&format!("{header}{order}55=A|55=B|10=000|")), Some((R::TagAppearsMoreThanOnce, Some(55))));
    assert_eq!(
        violation(&format!("{header}{order}386=2|336=A|10=000|")),
        Some((R::IncorrectNumInGroupCount, Some(386)))
    );
    assert_eq!(violation(&format!("{header}{order}386=2|336=A|336=B|10=000|")), None);
    assert_eq!(violation(&format!("{header}{order}34=3|10=000|")), Some((R::TagSpecifiedOutOfRequiredOrder, Some(34))));
    assert_eq!(
        violation("8=FIX.4.4|9=1|35=*|34=2|49=A|52=20240101-00:00:00|56=B|10=000|"),
        Some((R::InvalidMsgType, None))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever arrives, framing, parsing and validation return instead of panicking,
    /// and the framer never keeps more than a frame's worth of bytes.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..8)) {
        run_bytes(&chunks);
    }

    /// The same for a valid message with a few bytes changed.
    #[test]
    fn mutated_messages_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = encode(&mut new_order("ID"), 3);
        for (index, byte) in edits {
            let at = index.index(bytes.len());
            bytes[at] = byte;
        }
        run_bytes(&[bytes]);
    }
}

fn run_bytes(chunks: &[Vec<u8>]) {
    let dictionary = Dictionary::fix44().unwrap();
    let mut framer = Framer::new();
    let mut message = Message::default();
    for chunk in chunks {
        framer.extend(chunk);
        while let Some(frame) = framer.next_frame() {
            let Ok(frame) = frame else { continue };
            if message.parse_from(frame, dictionary.data_fields()).is_ok() {
                let _ = dictionary.validate(&mut message);
                let _ = message.header_fields().count() + message.body_fields().count();
            }
        }
        assert!(framer.buffered() <= 70_000 + 400);
    }
}

// ---- sessions over loopback --------------------------------------------------------

struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start<A: Application>(
        config: FixSessionConfig,
        store: &Path,
        factory: impl Fn(&FixSessionConfig) -> anyhow::Result<A> + Send + Sync + 'static,
    ) -> Server {
        Server::start_sessions(vec![config], store, factory).await
    }

    async fn start_sessions<A: Application>(
        sessions: Vec<FixSessionConfig>,
        store: &Path,
        factory: impl Fn(&FixSessionConfig) -> anyhow::Result<A> + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = FixConfig { listen: None, sessions, workers: 0 };
        let store = store.to_path_buf();
        let task = tokio::spawn(async move {
            serve(listener, config, store, factory, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server { address, stop: Some(stop), task }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(WAIT, &mut self.task).await.unwrap().unwrap();
    }
}

fn session(reset_on_logon: bool) -> FixSessionConfig {
    FixSessionConfig { reset_on_logon, ..FixSessionConfig::new("ISLD", "TW44") }
}

/// A counterparty (TW44 unless said otherwise) talking to ISLD.
struct Client {
    stream: TcpStream,
    framer: Framer,
    seq: u64,
    comp_id: &'static [u8],
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        Client::connect_as(address, b"TW44").await
    }

    async fn connect_as(address: SocketAddr, comp_id: &'static [u8]) -> Client {
        Client { stream: TcpStream::connect(address).await.unwrap(), framer: Framer::new(), seq: 1, comp_id }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn send(&mut self, mut message: OutMessage) {
        let bytes = encode_as(self.comp_id, &mut message, self.seq);
        self.seq += 1;
        self.send_raw(&bytes).await;
    }

    /// The next message; fails the test after `WAIT`.
    async fn recv(&mut self) -> Message {
        loop {
            if let Some(frame) = self.framer.next_frame() {
                return parse(frame.unwrap());
            }
            let read = timeout(WAIT, self.stream.read_buf(self.framer.read_buffer())).await.unwrap().unwrap();
            assert!(read > 0, "disconnected while expecting a message");
        }
    }

    async fn expect(&mut self, msg_type: &str) -> Message {
        let message = self.recv().await;
        assert_eq!(message.msg_type(), msg_type.as_bytes(), "got {message}");
        message
    }

    /// The server closes the connection without sending anything more.
    async fn expect_closed(&mut self) {
        assert!(self.framer.next_frame().is_none());
        let mut rest = Vec::new();
        timeout(WAIT, self.stream.read_to_end(&mut rest)).await.unwrap().unwrap();
        assert!(rest.is_empty(), "expected a silent close, got {}", String::from_utf8_lossy(&rest));
    }

    async fn logon(&mut self, heartbeat: u64) -> Message {
        self.send(logon(heartbeat)).await;
        self.expect("A").await
    }

    async fn logout(&mut self) {
        self.send(OutMessage::new("5")).await;
        self.expect("5").await;
        self.expect_closed().await;
    }
}

#[allow(clippy::unnecessary_wraps)] // the shape of an application factory
fn reflector(_: &FixSessionConfig) -> anyhow::Result<Reflector> {
    Ok(Reflector::new())
}

#[tokio::test]
async fn logon_test_request_heartbeat_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(session(true), dir.path(), reflector).await;
    let mut client = Client::connect(server.address).await;
    let reply = client.logon(30).await;
    assert_eq!(reply.seq_num(), Some(1));
    assert_eq!(reply.get(tags::HEART_BT_INT), Some(&b"30"[..]));
    let mut request = OutMessage::new("1");
    request.set(tags::TEST_REQ_ID, "ping");
    client.send(request).await;
    assert_eq!(client.expect("0").await.get(tags::TEST_REQ_ID), Some(&b"ping"[..]));
    client.send(new_order("A1")).await;
    assert_eq!(client.expect("D").await.get(tags::CL_ORD_ID), Some(&b"A1"[..]));
    let mut unsupported = OutMessage::new("R");
    unsupported.set(131, "Q1").set(146, "1").set_group_member(146, 55, "BTC-USD");
    client.send(unsupported).await;
    let reject = client.expect("j").await;
    assert_eq!(reject.get(tags::BUSINESS_REJECT_REASON), Some(&b"3"[..]));
    client.logout().await;
    server.stop().await;
}

#[tokio::test]
async fn our_heartbeat_then_a_test_request_then_a_silent_counterparty_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(session(true), dir.path(), reflector).await;
    let mut client = Client::connect(server.address).await;
    client.logon(1).await;
    client.expect("0").await;
    let request = client.expect("1").await;
    assert_eq!(request.get(tags::TEST_REQ_ID), Some(&b"TEST"[..]));
    client.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn a_resend_request_resends_application_messages_and_gap_fills_admin_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(session(true), dir.path(), reflector).await;
    let mut client = Client::connect(server.address).await;
    client.logon(30).await; // our 1
    client.send(new_order("A")).await;
    client.expect("D").await; // our 2
    let mut request = OutMessage::new("1");
    request.set(tags::TEST_REQ_ID, "x");
    client.send(request).await;
    client.expect("0").await; // our 3
    client.send(new_order("B")).await;
    client.expect("D").await; // our 4
    let mut resend = OutMessage::new("2");
    resend.set(tags::BEGIN_SEQ_NO, "1").set(tags::END_SEQ_NO, "0");
    client.send(resend).await;
    let gap = client.expect("4").await;
    assert_eq!(
        (gap.seq_num(), gap.get(tags::NEW_SEQ_NO), gap.get(tags::GAP_FILL_FLAG)),
        (Some(1), Some(&b"2"[..]), Some(&b"Y"[..]))
    );
    let first = client.expect("D").await;
    assert_eq!(
        (first.seq_num(), first.get(tags::CL_ORD_ID), first.get(tags::POSS_DUP_FLAG)),
        (Some(2), Some(&b"A"[..]), Some(&b"Y"[..]))
    );
    assert!(first.get(tags::ORIG_SENDING_TIME).is_some());
    assert_eq!(client.expect("4").await.get(tags::NEW_SEQ_NO), Some(&b"4"[..]));
    assert_eq!(client.expect("D").await.seq_num(), Some(4));
    // The sequence goes on where it was.
    client.send(new_order("C")).await;
    assert_eq!(client.expect("D").await.seq_num(), Some(5));
    client.logout().await;
    server.stop().await;
}

#[tokio::test]
async fn a_long_resend_goes_out_in_order_batch_by_batch() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(session(true), dir.path(), reflector).await;
    let mut client = Client::connect(server.address).await;
    client.logon(30).await; // our 1
    let count = 600; // more than two resend batches
    for index in 0..count {
        client.send(new_order(&format!("O{index}"))).await;
    }
    for _ in 0..count {
        client.expect("D").await;
    }
    let mut resend = OutMessage::new("2");
    resend.set(tags::BEGIN_SEQ_NO, "1").set(tags::END_SEQ_NO, "0");
    client.send(resend).await;
    assert_eq!(client.expect("4").await.get(tags::NEW_SEQ_NO), Some(&b"2"[..]));
    for index in 0..count {
        let again = client.expect("D").await;
        assert_eq!(again.seq_num(), Some(index + 2));
        assert_eq!(again.get_str(tags::CL_ORD_ID), Some(format!("O{index}").as_str()));
    }
    let mut request = OutMessage::new("1");
    request.set(tags::TEST_REQ_ID, "after");
    client.send(request).await;
    assert_eq!(client.expect("0").await.seq_num(), Some(count + 2));
    client.logout().await;
    server.stop().await;
}

#[test]
fn the_store_cuts_a_torn_tail_and_keeps_what_was_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SessionStore::open(dir.path(), "A-B").unwrap();
    store.append(1, b"first").unwrap();
    store.append(2, b"second").unwrap();
    store.set_next_target_seq(9).unwrap();
    drop(store);
    let path = dir.path().join("A-B.messages");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&3u64.to_le_bytes());
    bytes.extend_from_slice(&100u32.to_le_bytes());
    bytes.extend_from_slice(b"torn");
    std::fs::write(&path, &bytes).unwrap();
    let store = SessionStore::open(dir.path(), "A-B").unwrap();
    assert_eq!((store.next_sender_seq(), store.next_target_seq()), (3, 9));
    let (mut read, mut found) = (Vec::new(), Vec::new());
    store.read_range(1, 10, 10, &mut read, &mut found).unwrap();
    let messages: Vec<(u64, &[u8])> = found.iter().map(|(seq, range)| (*seq, &read[range.clone()])).collect();
    assert_eq!(messages, [(1, &b"first"[..]), (2, &b"second"[..])]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), (12 + 5) + (12 + 6));
    std::fs::write(dir.path().join("A-B.seqnums"), "not numbers").unwrap();
    assert!(SessionStore::open(dir.path(), "A-B").is_err(), "a damaged sequence file is refused, not guessed");
}

#[tokio::test]
async fn sequence_numbers_continue_across_reconnects_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(session(false), dir.path(), reflector).await;
    let mut client = Client::connect(server.address).await;
    assert_eq!(client.logon(30).await.seq_num(), Some(1));
    client.send(new_order("A")).await;
    client.expect("D").await;
    client.logout().await; // ours: 1 Logon, 2 D, 3 Logout; theirs: 1, 2, 3
    let mut client = Client { seq: 4, ..Client::connect(server.address).await };
    assert_eq!(client.logon(30).await.seq_num(), Some(4));
    client.logout().await; // ours 4, 5; theirs 4, 5
    server.stop().await;

    let server = Server::start(session(false), dir.path(), reflector).await;
    let mut client = Client { seq: 6, ..Client::connect(server.address).await };
    assert_eq!(client.logon(30).await.seq_num(), Some(6));
    client.logout().await;
    // Too low a number at Logon: Logout naming the expected one, then the close.
    let mut client = Client { seq: 2, ..Client::connect(server.address).await };
    client.send(logon(30)).await;
    let logout = client.expect("5").await;
    assert_eq!(logout.get(tags::TEXT), Some(&b"MsgSeqNum too low, expecting 8 but received 2"[..]));
    client.expect_closed().await;
    // ResetSeqNumFlag starts both sides over.
    let mut client = Client::connect(server.address).await;
    let mut reset = logon(30);
    reset.set(tags::RESET_SEQ_NUM_FLAG, "Y");
    client.send(reset).await;
    let reply = client.expect("A").await;
    assert_eq!((reply.seq_num(), reply.get(tags::RESET_SEQ_NUM_FLAG)), (Some(1), Some(&b"Y"[..])));
    client.logout().await;
    server.stop().await;
}

#[tokio::test]
async fn bad_logons_are_closed_without_a_word_and_only_one_connection_per_session() {
    let dir = tempfile::tempdir().unwrap();
    let config = FixSessionConfig { username: Some("tw".into()), password: Some("secret".into()), ..session(true) };
    let server = Server::start(config, dir.path(), reflector).await;
    let credentials = |user: &str, password: &str| {
        let mut message = logon(30);
        message.set(tags::USERNAME, user).set(tags::PASSWORD, password);
        message
    };
    let mut client = Client::connect(server.address).await;
    client.send(credentials("tw", "wrong")).await;
    client.expect_closed().await;
    let mut client = Client::connect(server.address).await;
    client.send(logon(30)).await;
    client.expect_closed().await;
    let mut client = Client::connect(server.address).await;
    client.send(new_order("A")).await;
    client.expect_closed().await;
    let mut client = Client::connect(server.address).await;
    client.send(credentials("tw", "secret")).await;
    client.expect("A").await;
    let mut second = Client::connect(server.address).await;
    second.send(credentials("tw", "secret")).await;
    second.expect_closed().await;
    client.logout().await;
    server.stop().await;
}

#[tokio::test]
async fn a_session_that_keeps_only_a_password_hash_logs_on_with_the_password_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bourse_gateway::fix::password::hash(b"s3cret").unwrap();
    let config = FixSessionConfig { username: Some("tw".into()), password_hash: Some(hash), ..session(true) };
    let server = Server::start(config, dir.path(), reflector).await;
    let credentials = |user: &str, password: &str| {
        let mut message = logon(30);
        message.set(tags::USERNAME, user).set(tags::PASSWORD, password);
        message
    };
    for (user, password) in [("tw", "wrong"), ("tw", "s3cret "), ("TW", "s3cret"), ("tw", "")] {
        let mut client = Client::connect(server.address).await;
        client.send(credentials(user, password)).await;
        client.expect_closed().await;
    }
    let mut client = Client::connect(server.address).await;
    client.send(logon(30)).await;
    client.expect_closed().await;
    let mut client = Client::connect(server.address).await;
    client.send(credentials("tw", "s3cret")).await;
    client.expect("A").await;
    client.logout().await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_and_huge_messages_end_one_connection_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(session(true), dir.path(), reflector).await;
    let mut client = Client::connect(server.address).await;
    client.send_raw(&vec![0xAB; 100_000]).await;
    drop(client);
    let mut client = Client::connect(server.address).await;
    client.logon(30).await;
    let mut bad_checksum = encode(&mut OutMessage::new("0"), 2);
    let at = bad_checksum.len() - 2;
    bad_checksum[at] = if bad_checksum[at] == b'9' { b'0' } else { bad_checksum[at] + 1 };
    bad_checksum.extend_from_slice(b" junk \x01\x01");
    client.send_raw(&bad_checksum).await;
    let mut request = OutMessage::new("1");
    request.set(tags::TEST_REQ_ID, "still there");
    client.send(request).await;
    assert_eq!(client.expect("0").await.get(tags::TEST_REQ_ID), Some(&b"still there"[..]));
    client.send_raw(b"8=FIX.4.4\x019=99999999\x0135=0\x01").await;
    let logout = client.expect("5").await;
    assert!(String::from_utf8_lossy(logout.get(tags::TEXT).unwrap()).contains("larger than"));
    client.expect_closed().await;
    let mut client = Client::connect(server.address).await;
    client.logon(30).await;
    client.logout().await;
    server.stop().await;
}

/// An application that sends a News (B) for each event it receives.
struct Newsroom {
    events: Option<mpsc::Receiver<String>>,
}

impl Application for Newsroom {
    type Event = String;

    fn take_events(&mut self) -> Option<mpsc::Receiver<String>> {
        self.events.take()
    }

    fn on_message(&mut self, _message: &Message, _out: &mut Outbox) -> Result<(), Rejection> {
        Err(Rejection::UnsupportedMessageType)
    }

    fn on_event(&mut self, headline: String, out: &mut Outbox) {
        out.message("B").set(148, &headline).set(33, "1").set_group_member(33, tags::TEXT, "news");
    }
}

#[tokio::test]
async fn application_messages_sent_later_arrive_and_are_kept_for_resend_while_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let (events, receiver) = mpsc::channel(8);
    let receiver = Arc::new(Mutex::new(Some(receiver)));
    let factory = move |_: &FixSessionConfig| Ok(Newsroom { events: receiver.lock().unwrap().take() });
    let server = Server::start(session(false), dir.path(), factory).await;
    let mut client = Client::connect(server.address).await;
    client.logon(30).await; // our 1
    events.send("live".to_string()).await.unwrap();
    let news = client.expect("B").await; // our 2
    assert_eq!((news.seq_num(), news.get(148)), (Some(2), Some(&b"live"[..])));
    client.logout().await; // our 3; theirs 1, 2

    events.send("while away".to_string()).await.unwrap(); // our 4, stored
    let seqnums = dir.path().join("ISLD-TW44.seqnums");
    let stored = async {
        while !std::fs::read_to_string(&seqnums).unwrap().starts_with("00000000000000000005") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(WAIT, stored).await.unwrap();

    let mut client = Client { seq: 3, ..Client::connect(server.address).await };
    let reply = client.logon(30).await;
    assert_eq!(reply.seq_num(), Some(5), "the Logon reveals the gap");
    let mut resend = OutMessage::new("2");
    resend.set(tags::BEGIN_SEQ_NO, "4").set(tags::END_SEQ_NO, "0");
    client.send(resend).await;
    let news = client.expect("B").await;
    assert_eq!(
        (news.seq_num(), news.get(148), news.get(tags::POSS_DUP_FLAG)),
        (Some(4), Some(&b"while away"[..]), Some(&b"Y"[..]))
    );
    let gap = client.expect("4").await; // our Logon reply, an admin message
    assert_eq!((gap.seq_num(), gap.get(tags::NEW_SEQ_NO)), (Some(5), Some(&b"6"[..])));
    client.logout().await;
    server.stop().await;
}

// ---- the order-entry application on a real runtime and hub --------------------------

const ENGINE: &str = r#"
[[assets]]
code = "USD"
scale = 2
[[assets]]
code = "BTC"
scale = 8
[[markets]]
base = "BTC"
quote = "USD"
lot = 1000000
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }]
"#;

/// The engine, the runtime and the hub with its publisher, as `bourse serve` runs them.
struct Exchange {
    hub: Arc<Hub>,
    runtime: Option<Runtime>,
    publisher: Option<std::thread::JoinHandle<()>>,
}

impl Exchange {
    fn start(dir: &Path) -> Exchange {
        let config = bourse_core::config::Config::from_toml_str(ENGINE).unwrap();
        let stores = open_data_dir(dir).unwrap();
        let recovered = recover(&stores, &config, Capacity::default(), true, |_| {}).unwrap();
        let view = ReadModel::from_engine(&recovered.engine);
        let (output, batches) = crossbeam_channel::bounded(1024);
        let runtime =
            Runtime::start(&stores, RuntimeConfig::default(), recovered.engine, &recovered.journal, output).unwrap();
        let hub = Hub::new(runtime.submitter(), runtime.stats().clone(), view, Arc::new(Metrics::default()));
        let publisher = std::thread::spawn({
            let hub = Arc::clone(&hub);
            move || hub.run_publisher(&batches)
        });
        Exchange { hub, runtime: Some(runtime), publisher: Some(publisher) }
    }

    async fn call(&self, command: Command) {
        let delivery = self.hub.call(command).await.unwrap().unwrap();
        assert!(
            !delivery.events().iter().any(|event| matches!(event, Event::Rejected { .. })),
            "{:?}",
            delivery.events()
        );
    }

    /// Opens account `n` (in order) and deposits `amount` minor units of `asset` in it.
    async fn funded_account(&self, n: u32, asset: &str, amount: u64) -> AccountId {
        self.call(Command::OpenAccount(OpenAccount {
            owner: OwnerId::new(u64::from(n)),
            kyc_tier: KycTier::new(0).unwrap(),
        }))
        .await;
        let account = AccountId::new(n);
        let asset = self.hub.view().assets().find(asset).unwrap().0;
        self.call(Command::Deposit(Deposit {
            account,
            key: IdempotencyKey::new(u128::from(n) + 1),
            asset,
            amount: Amount::new(amount).unwrap(),
            reference: Reference::new("test").unwrap(),
        }))
        .await;
        account
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown();
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.join().unwrap();
        }
    }
}

fn limit_order(id: &str, side: &str, qty: &str, price: &str, time_in_force: &str) -> OutMessage {
    limit_message("D", id, side, qty, price, time_in_force)
}

fn limit_message(msg_type: &str, id: &str, side: &str, qty: &str, price: &str, time_in_force: &str) -> OutMessage {
    let mut message = OutMessage::new(msg_type);
    message.set(tags::CL_ORD_ID, id).set(tags::SIDE, side).set(tags::TRANSACT_TIME, now()).set(tags::ORD_TYPE, "2");
    message
        .set(tags::SYMBOL, "BTC-USD")
        .set(tags::ORDER_QTY, qty)
        .set(tags::PRICE, price)
        .set(tags::TIME_IN_FORCE, time_in_force);
    message
}

fn field(message: &Message, tag: i32) -> &str {
    message.get_str(tag).unwrap_or_else(|| panic!("no {tag} in {message}"))
}

/// `(ExecType, OrdStatus, ClOrdID, CumQty, LeavesQty)` of an ExecutionReport.
fn state(report: &Message) -> (&str, &str, &str, &str, &str) {
    (field(report, 150), field(report, 39), field(report, 11), field(report, 14), field(report, 151))
}

#[tokio::test]
async fn orders_trade_amend_and_cancel_with_an_execution_report_for_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = Exchange::start(&dir.path().join("data"));
    let buyer = exchange.funded_account(0, "USD", 10_000_000).await;
    let seller = exchange.funded_account(1, "BTC", 100_000_000).await;
    let sessions = vec![
        FixSessionConfig { accounts: vec![buyer.get()], ..FixSessionConfig::new("ISLD", "BUY") },
        FixSessionConfig { accounts: vec![seller.get()], ..FixSessionConfig::new("ISLD", "SELL") },
    ];
    let server =
        Server::start_sessions(sessions, &dir.path().join("fix"), OrderEntry::factory(Arc::clone(&exchange.hub))).await;
    let mut buy = Client::connect_as(server.address, b"BUY").await;
    buy.logon(30).await;
    let mut sell = Client::connect_as(server.address, b"SELL").await;
    sell.logon(30).await;
    let mut exec_ids = std::collections::HashSet::new();
    let mut expect_report = async |client: &mut Client| {
        let report = client.expect("8").await;
        assert!(exec_ids.insert(field(&report, 17).to_string()), "ExecID repeated: {report}");
        report
    };

    sell.send(limit_order("S1", "2", "1", "65000", "1")).await;
    let new = expect_report(&mut sell).await;
    assert_eq!(state(&new), ("0", "0", "S1", "0", "1"));
    assert_eq!((field(&new, 55), field(&new, 44), field(&new, 1)), ("BTC-USD", "65000", "1"));

    // The buyer takes 0.4: New, then a full fill; the seller's resting order fills in part.
    buy.send(limit_order("B1", "1", "0.4", "65000", "3")).await;
    assert_eq!(state(&expect_report(&mut buy).await), ("0", "0", "B1", "0", "0.4"));
    let fill = expect_report(&mut buy).await;
    assert_eq!(state(&fill), ("F", "2", "B1", "0.4", "0"));
    assert_eq!((field(&fill, 31), field(&fill, 32), field(&fill, 6)), ("65000", "0.4", "65000"));
    let maker = expect_report(&mut sell).await;
    assert_eq!(state(&maker), ("F", "1", "S1", "0.4", "0.6"));

    // Replace: 0.8 in all (0.4 left), then cancel under the new ClOrdID.
    let mut replace = limit_message("G", "S2", "2", "0.8", "65000", "1");
    replace.set(tags::ORIG_CL_ORD_ID, "S1");
    sell.send(replace).await;
    let replaced = expect_report(&mut sell).await;
    assert_eq!(state(&replaced), ("5", "1", "S2", "0.4", "0.4"));
    assert_eq!((field(&replaced, 41), field(&replaced, 38)), ("S1", "0.8"));
    let mut cancel = OutMessage::new("F");
    cancel
        .set(tags::ORIG_CL_ORD_ID, "S2")
        .set(tags::CL_ORD_ID, "S3")
        .set(tags::SIDE, "2")
        .set(tags::TRANSACT_TIME, now());
    cancel.set(tags::SYMBOL, "BTC-USD");
    sell.send(cancel.clone()).await;
    let canceled = expect_report(&mut sell).await;
    assert_eq!(state(&canceled), ("4", "4", "S3", "0.4", "0"));
    assert_eq!(field(&canceled, 41), "S2");

    // Cancelling it again: OrderCancelReject, unknown order.
    sell.send(cancel).await;
    let reject = sell.expect("9").await;
    assert_eq!(
        (field(&reject, 102), field(&reject, 434), field(&reject, 11), field(&reject, 41)),
        ("1", "1", "S3", "S2")
    );

    // Refused before the engine, and by the engine.
    let mut unknown_symbol = limit_order("B2", "1", "0.1", "65000", "1");
    unknown_symbol.set(tags::SYMBOL, "DOGE-USD");
    buy.send(unknown_symbol).await;
    let rejected = expect_report(&mut buy).await;
    assert_eq!(
        (field(&rejected, 150), field(&rejected, 39), field(&rejected, 103), field(&rejected, 37)),
        ("8", "8", "1", "NONE")
    );
    let mut not_ours = limit_order("B3", "1", "0.1", "65000", "1");
    not_ours.set(tags::ACCOUNT, "1");
    buy.send(not_ours).await;
    assert_eq!(field(&expect_report(&mut buy).await, 103), "15");
    buy.send(limit_order("B4", "1", "100", "65000", "1")).await;
    let too_big = expect_report(&mut buy).await;
    assert_eq!((field(&too_big, 150), field(&too_big, 103), field(&too_big, 58)), ("8", "3", "InsufficientFunds"));

    // Anything else is not supported.
    let mut status = OutMessage::new("H");
    status.set(tags::CL_ORD_ID, "B1").set(tags::SIDE, "1").set(tags::SYMBOL, "BTC-USD");
    buy.send(status).await;
    assert_eq!(field(&buy.expect("j").await, 380), "3");

    buy.logout().await;
    sell.logout().await;
    server.stop().await;
}
