//! FIX 4.4 end to end: the real `bourse serve` with a declared session, a raw TCP
//! client that writes and reads tag=value by hand (no code of the server's), orders
//! that trade against an HTTP client's, malformed input, and sequence numbers that
//! survive a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Server, WAIT, config_with, deposit, ok, open_account};
use serde_json::json;

const SOH: char = '\u{1}';

/// The server side of the session: it is `BOURSE`, the client `CLIENT1`.
fn config() -> String {
    // A thread per stage here (the other server tests run the default, fused).
    config_with(
        "signature_future_ms = 100\n\
         pipeline = \"threads\"\n\
         [fix]\n\
         listen = \"127.0.0.1:0\"\n\
         [[fix.sessions]]\n\
         sender_comp_id = \"BOURSE\"\n\
         target_comp_id = \"CLIENT1\"\n\
         username = \"client1\"\n\
         password = \"s3cret\"\n\
         reset_on_logon = false\n\
         heartbeat_secs = 30\n\
         accounts = [0]\n",
    )
}

fn fix_addr(server: &Server) -> SocketAddr {
    let line = server.startup.iter().find(|line| line.starts_with("FIX 4.4:")).expect("a FIX line");
    line.split_whitespace().nth(2).unwrap().parse().expect("the FIX address")
}

fn now() -> String {
    // YYYYMMDD-HH:MM:SS.sss from the system clock, by hand.
    let millis = bourse_gateway::auth::unix_ms_now();
    let seconds = millis / 1_000;
    let days = i64::try_from(seconds / 86_400).unwrap();
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rest = seconds % 86_400;
    format!(
        "{year:04}{month:02}{day:02}-{:02}:{:02}:{:02}.{:03}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        millis % 1000
    )
}

/// A whole message from `msg_type` and body fields (`tag=value` pairs), with the header
/// for `seq`, `BodyLength` and `CheckSum` computed here.
fn frame(msg_type: &str, seq: u64, fields: &[(u32, &str)]) -> Vec<u8> {
    let mut body = format!("35={msg_type}{SOH}49=CLIENT1{SOH}56=BOURSE{SOH}34={seq}{SOH}52={}{SOH}", now());
    for (tag, value) in fields {
        let _ = write!(body, "{tag}={value}{SOH}");
    }
    let mut message = format!("8=FIX.4.4{SOH}9={}{SOH}{body}", body.len());
    let checksum = message.bytes().map(u32::from).sum::<u32>() % 256;
    let _ = write!(message, "10={checksum:03}{SOH}");
    message.into_bytes()
}

/// A parsed message: its fields in order.
#[derive(Debug, Clone)]
struct Fix(Vec<(u32, String)>);

impl Fix {
    fn get(&self, tag: u32) -> Option<&str> {
        self.0.iter().find(|(t, _)| *t == tag).map(|(_, value)| value.as_str())
    }
    fn msg_type(&self) -> &str {
        self.get(35).unwrap_or("")
    }
}

struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
    next_seq: u64,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Client { stream, buffer: Vec::new(), next_seq: 1 }
    }

    fn send(&mut self, msg_type: &str, fields: &[(u32, &str)]) {
        let bytes = frame(msg_type, self.next_seq, fields);
        self.next_seq += 1;
        self.stream.write_all(&bytes).unwrap();
    }

    /// The next whole message, checking its `BodyLength` and `CheckSum`; `None` when the
    /// server closed the connection.
    fn next(&mut self, deadline: Instant) -> Option<Fix> {
        loop {
            if let Some(end) = find_end(&self.buffer) {
                let raw: Vec<u8> = self.buffer.drain(..end).collect();
                let text = String::from_utf8(raw.clone()).unwrap();
                let trailer_at = text.rfind(&format!("{SOH}10=")).unwrap() + 1;
                let checksum = raw[..trailer_at].iter().map(|b| u32::from(*b)).sum::<u32>() % 256;
                assert_eq!(&text[trailer_at + 3..trailer_at + 6], format!("{checksum:03}"), "checksum of {text:?}");
                let fields: Vec<(u32, String)> = text
                    .split(SOH)
                    .filter(|field| !field.is_empty())
                    .map(|field| {
                        let (tag, value) = field.split_once('=').unwrap();
                        (tag.parse().unwrap(), value.to_owned())
                    })
                    .collect();
                let body_start = text.find(&format!("{SOH}35=")).unwrap() + 1;
                let declared: usize = fields[1].1.parse().unwrap();
                assert_eq!(declared, trailer_at - body_start, "BodyLength of {text:?}");
                return Some(Fix(fields));
            }
            assert!(
                Instant::now() < deadline,
                "no whole FIX message in time; have {:?}",
                String::from_utf8_lossy(&self.buffer)
            );
            let mut chunk = [0_u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                }
                Err(_) => return None,
            }
        }
    }

    /// The next message of type `msg_type` (heartbeats in between are skipped).
    fn expect(&mut self, msg_type: &str) -> Fix {
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self.next(deadline).unwrap_or_else(|| panic!("closed while waiting for 35={msg_type}"));
            if message.msg_type() == msg_type {
                return message;
            }
            assert_eq!(message.msg_type(), "0", "expected 35={msg_type} (or heartbeats), got {message:?}");
        }
    }

    fn logon(&mut self) -> Fix {
        self.send("A", &[(98, "0"), (108, "30"), (553, "client1"), (554, "s3cret")]);
        self.expect("A")
    }
}

/// Where the message starting at 0 ends (just after `10=xxx<SOH>`).
fn find_end(buffer: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(buffer).ok()?;
    let at = text.find(&format!("{SOH}10="))?;
    let end = at + 1 + 3 + 3 + 1;
    (text.len() >= end).then_some(end)
}

#[tokio::test]
async fn orders_over_fix_trade_with_http_clients_and_sequence_numbers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config();
    let mut server = Server::start_with(&data, Some(&config));
    let mut admin = server.admin_http();
    let fix_account = open_account(&mut admin, 1).await;
    let seller = open_account(&mut admin, 2).await;
    assert_eq!(fix_account, 0, "the session trades for account 0");
    deposit(&mut admin, fix_account, "USD", "100000.00").await;
    deposit(&mut admin, seller, "BTC", "1").await;

    // A wrong password: the socket is closed without a word.
    let mut intruder = Client::connect(fix_addr(&server));
    intruder.send("A", &[(98, "0"), (108, "30"), (553, "client1"), (554, "guess")]);
    assert!(intruder.next(Instant::now() + WAIT).is_none(), "a bad Logon is answered by closing the socket");

    let mut fix = Client::connect(fix_addr(&server));
    let logon = fix.logon();
    assert_eq!((logon.get(49), logon.get(56), logon.get(34)), (Some("BOURSE"), Some("CLIENT1"), Some("1")));

    // A resting buy: New.
    fix.send(
        "D",
        &[
            (1, "0"),
            (11, "buy-1"),
            (21, "1"),
            (38, "0.5"),
            (40, "2"),
            (44, "65000"),
            (54, "1"),
            (55, "BTC-USD"),
            (59, "1"),
            (60, &now()),
        ],
    );
    let new = fix.expect("8");
    assert_eq!((new.get(11), new.get(150), new.get(39)), (Some("buy-1"), Some("0"), Some("0")), "{new:?}");
    let order_id = new.get(37).unwrap().to_owned();

    // An HTTP client sells into it: a maker fill pushed over FIX.
    let sell = ok(admin.call(
        "place_order",
        json!({"by": seller, "market": "BTC-USD", "side": "sell", "type": "market", "qty": "0.2"}),
    ));
    assert_eq!(sell["events"][1]["type"], "trade", "{sell}");
    let fill = fix.expect("8");
    assert_eq!(
        (fill.get(11), fill.get(150), fill.get(39), fill.get(32), fill.get(31), fill.get(37)),
        (Some("buy-1"), Some("F"), Some("1"), Some("0.2"), Some("65000"), Some(order_id.as_str())),
        "{fill:?}"
    );
    assert_eq!((fill.get(14), fill.get(151)), (Some("0.2"), Some("0.3")), "cumulative and leaves: {fill:?}");

    // Cancel it: Canceled. Cancel it again: OrderCancelReject.
    fix.send("F", &[(11, "cxl-1"), (41, "buy-1"), (54, "1"), (55, "BTC-USD"), (60, &now())]);
    let canceled = fix.expect("8");
    assert_eq!(
        (canceled.get(150), canceled.get(39), canceled.get(41)),
        (Some("4"), Some("4"), Some("buy-1")),
        "{canceled:?}"
    );
    fix.send("F", &[(11, "cxl-2"), (41, "buy-1"), (54, "1"), (55, "BTC-USD"), (60, &now())]);
    let reject = fix.expect("9");
    assert_eq!((reject.get(11), reject.get(41)), (Some("cxl-2"), Some("buy-1")), "{reject:?}");

    // An order the engine refuses (more than the account holds): Rejected.
    fix.send(
        "D",
        &[(11, "big-1"), (21, "1"), (38, "100"), (40, "2"), (44, "65000"), (54, "1"), (55, "BTC-USD"), (60, &now())],
    );
    let rejected = fix.expect("8");
    assert_eq!(
        (rejected.get(11), rejected.get(150), rejected.get(39)),
        (Some("big-1"), Some("8"), Some("8")),
        "{rejected:?}"
    );

    // A message type the application does not take: BusinessMessageReject 380=3.
    fix.send("R", &[(131, "q-1"), (146, "1"), (55, "BTC-USD")]);
    let business = fix.expect("j");
    assert_eq!((business.get(372), business.get(380)), (Some("R"), Some("3")), "{business:?}");

    // Garbage and a bad checksum are dropped; the session goes on: TestRequest → Heartbeat.
    fix.stream.write_all(b"this is not FIX\x01").unwrap();
    let mut bad = frame("0", fix.next_seq, &[]);
    let len = bad.len();
    bad[len - 2] = if bad[len - 2] == b'0' { b'1' } else { b'0' };
    fix.stream.write_all(&bad).unwrap();
    fix.send("1", &[(112, "still-there")]);
    let heartbeat = fix.expect("0");
    assert_eq!(heartbeat.get(112), Some("still-there"), "{heartbeat:?}");
    let public = server.http(None).get("/v1/markets/BTC-USD/trades");
    assert_eq!(public.status, 200, "HTTP still serving");

    // The FIX session shows in the metrics, with its commands' end-to-end latency.
    let metrics = server.http(None).get("/metrics").text;
    assert_eq!(common::counter(&metrics, "bourse_sessions{transport=\"fix\"}"), Some(1), "{metrics}");
    let timed = common::counter(&metrics, "bourse_end_to_end_latency_seconds_count{transport=\"fix\"}");
    // Three reached the engine: the first D, the first F, the refused D. (The second F
    // named an order the session knows is gone: refused without the engine.)
    assert_eq!(timed, Some(3), "{metrics}");

    fix.send("5", &[]);
    let logout = fix.expect("5");
    let server_seq: u64 = logout.get(34).unwrap().parse().unwrap();
    let client_seq = fix.next_seq;

    // Restart: both sides continue their sequence numbers (reset_on_logon is off).
    let (status, _) = server.terminate();
    assert!(status.success());
    let restarted = Server::start_with(&data, Some(&config));
    let mut fix = Client::connect(fix_addr(&restarted));
    fix.next_seq = client_seq;
    let logon = fix.logon();
    assert_eq!(logon.get(34).map(|seq| seq.parse::<u64>().unwrap()), Some(server_seq + 1), "{logon:?}");
    // The trade is still there, and the session still trades.
    fix.send(
        "D",
        &[(11, "buy-2"), (21, "1"), (38, "0.1"), (40, "2"), (44, "64000"), (54, "1"), (55, "BTC-USD"), (60, &now())],
    );
    let new = fix.expect("8");
    assert_eq!((new.get(11), new.get(150)), (Some("buy-2"), Some("0")), "{new:?}");
}
