//! Merchant webhooks end to end: the real `bourse` binary delivers to a real HTTP
//! receiver on 127.0.0.1 that checks every signature and can be told to fail (500),
//! to hang past the delivery timeout, and to recover.
//!
//! Every wait is bounded; the servers use a short retry schedule (100 ms doubling to
//! 400 ms, 4 attempts, 400 ms timeout) so the whole file runs in seconds.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{QUIET, Server, WAIT, config_with, counter, create_key, deposit, ok, open_account, rejected};
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

const WEBHOOKS: &str = "[webhooks]\nworkers = 2\ntimeout_ms = 400\nretry_initial_ms = 100\nretry_max_ms = 400\n";

/// A server configuration: `[server]` lines, then `[webhooks]` with the short
/// schedule and `extra` keys.
fn config(server_lines: &str, extra: &str) -> String {
    config_with(&format!("signature_future_ms = 100\n{server_lines}\n{WEBHOOKS}{extra}"))
}

// ---------------------------------------------------------------------------------
// The receiver

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

/// One request the receiver read.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    id: String,
    body: Value,
    raw_body: String,
    at: Instant,
    /// What the receiver did: 200, 500, or 0 (hung up without answering).
    answered: u16,
}

#[derive(Debug)]
struct ReceiverState {
    mode: Mode,
    /// Path → the endpoint's secret.
    secrets: HashMap<String, String>,
    received: Vec<Received>,
    bad_signatures: Vec<String>,
}

/// An HTTP/1.1 receiver on 127.0.0.1: one request per connection.
#[derive(Clone, Debug)]
struct Receiver {
    address: SocketAddr,
    shared: Arc<(Mutex<ReceiverState>, Condvar)>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the receiver");
        let address = listener.local_addr().expect("its address");
        let state =
            ReceiverState { mode: Mode::Ok, secrets: HashMap::new(), received: Vec::new(), bad_signatures: Vec::new() };
        let receiver = Receiver { address, shared: Arc::new((Mutex::new(state), Condvar::new())) };
        let accepting = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let receiver = accepting.clone();
                std::thread::spawn(move || receiver.serve(stream));
            }
        });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn set_mode(&self, mode: Mode) {
        self.shared.0.lock().expect("receiver lock").mode = mode;
        self.shared.1.notify_all();
    }

    fn set_secret(&self, path: &str, secret: &str) {
        self.shared.0.lock().expect("receiver lock").secrets.insert(path.to_owned(), secret.to_owned());
    }

    fn received(&self) -> Vec<Received> {
        self.shared.0.lock().expect("receiver lock").received.clone()
    }

    /// Deliveries to `path` it acknowledged (200), in arrival order.
    fn delivered(&self, path: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path == path && r.answered == 200).collect()
    }

    /// Every request for notification `id` (whatever it was answered).
    fn attempts(&self, id: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.id == id).collect()
    }

    /// Waits (bounded) until `done` holds of the state.
    fn wait_until(&self, what: &str, done: impl Fn(&ReceiverState) -> bool) {
        let (lock, changed) = &*self.shared;
        let deadline = Instant::now() + WAIT;
        let mut state = lock.lock().expect("receiver lock");
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the receiver waited {WAIT:?} for {what}; it has {:#?}", state.received);
            state = changed.wait_timeout(state, left).expect("receiver lock").0;
        }
    }

    fn wait_delivered(&self, path: &str, count: usize) -> Vec<Received> {
        self.wait_until(&format!("{count} deliveries to {path}"), |state| {
            state.received.iter().filter(|r| r.path == path && r.answered == 200).count() >= count
        });
        self.delivered(path)
    }

    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(WAIT));
        let Some((path, headers, body)) = read_request(&mut stream) else { return };
        let (lock, changed) = &*self.shared;
        let mut state = lock.lock().expect("receiver lock");
        let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
        let secret = state.secrets.get(&path).cloned().unwrap_or_default();
        let id = header("bourse-webhook-id");
        if !signature_verifies(&secret, &header("bourse-webhook-timestamp"), &body, &header("bourse-webhook-signature"))
        {
            state.bad_signatures.push(format!("{path} {id}"));
        }
        let mode = state.mode;
        let answered = match mode {
            Mode::Ok => 200,
            Mode::Fail => 500,
            Mode::Hang => 0,
        };
        let body_json = serde_json::from_str(&body).unwrap_or(Value::Null);
        state.received.push(Received { path, id, body: body_json, raw_body: body, at: Instant::now(), answered });
        changed.notify_all();
        if mode == Mode::Hang {
            // Answer nothing until told otherwise (the server times out first).
            let deadline = Instant::now() + Duration::from_secs(3);
            while state.mode == Mode::Hang && Instant::now() < deadline {
                state = changed.wait_timeout(state, Duration::from_millis(50)).expect("receiver lock").0;
            }
            return;
        }
        drop(state);
        let reason = if answered == 200 { "OK" } else { "Internal Server Error" };
        let _ = write!(stream, "HTTP/1.1 {answered} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = stream.flush();
    }
}

/// (path, lower-cased headers, body) of one HTTP/1.1 request with a Content-Length.
fn read_request(stream: &mut TcpStream) -> Option<(String, HashMap<String, String>, String)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    assert_eq!(parts.next(), Some("POST"), "webhooks are POSTs: {request_line}");
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, headers, String::from_utf8(body).ok()?))
}

/// What a receiver does, written from the documentation (not the server's code): the
/// timestamp is within five minutes, and `v1=` is the hex HMAC-SHA256, keyed with the
/// secret's text, of `"{timestamp}.{body}"`.
fn signature_verifies(secret: &str, timestamp: &str, body: &str, signature: &str) -> bool {
    let Ok(sent) = timestamp.parse::<u64>() else { return false };
    let now = bourse_gateway::auth::unix_ms_now() / 1_000;
    if now.abs_diff(sent) > 300 || secret.is_empty() {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    signature == format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

// ---------------------------------------------------------------------------------
// Helpers

fn register(http: &mut common::Http, receiver: &Receiver, account: u64, path: &str, events: Option<&[&str]>) -> String {
    let mut params = json!({"account": account, "url": receiver.url(path)});
    if let Some(events) = events {
        params["events"] = json!(events);
    }
    let reply = ok(http.call("register_webhook", params));
    let secret = reply["result"]["secret"].as_str().expect("a secret").to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() == 70, "{reply}");
    receiver.set_secret(path, &secret);
    reply["result"]["webhook_id"].as_str().expect("a webhook id").to_owned()
}

fn transfer(http: &mut common::Http, from: u64, to: u64, amount: &str) -> u64 {
    let reply = ok(http.call("transfer", json!({"by": from, "to": to, "asset": "USD", "amount": amount})));
    reply["seq"].as_u64().expect("a seq")
}

fn webhook_status(http: &mut common::Http, account: u64) -> Value {
    let reply = ok(http.call("list_webhooks", json!({"account": account})));
    reply["result"]["webhooks"][0].clone()
}

/// Polls `list_webhooks` (bounded) until `done` holds of the account's first endpoint.
fn wait_status(http: &mut common::Http, account: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = webhook_status(http, account);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "list_webhooks never showed {what}: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn types(deliveries: &[Received]) -> Vec<String> {
    deliveries.iter().map(|r| r.body["type"].as_str().unwrap_or("?").to_owned()).collect()
}

fn assert_in_seq_order(deliveries: &[Received]) {
    let seqs: Vec<u64> = deliveries.iter().map(|r| r.body["seq"].as_u64().expect("a seq")).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] <= pair[1]), "out of order: {seqs:?}");
}

fn metrics(server: &Server) -> String {
    server.http(None).get("/metrics").text
}

// ---------------------------------------------------------------------------------
// Tests

#[test]
fn deliveries_are_signed_ordered_retried_given_up_and_stopped_by_a_delete() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), Some(&config("", "attempts_max = 4\n")));
    assert!(server.startup.iter().any(|line| line.starts_with("webhooks: 0 endpoints")), "{:#?}", server.startup);
    let mut admin = server.admin_http();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (payer, merchant, other) = runtime.block_on(async {
        let accounts =
            (open_account(&mut admin, 1).await, open_account(&mut admin, 2).await, open_account(&mut admin, 3).await);
        deposit(&mut admin, accounts.0, "USD", "100000.00").await;
        accounts
    });
    let merchant_key = runtime.block_on(create_key(&mut admin, &["read"], &[merchant]));
    let mut merchant_http = server.http(Some(merchant_key));

    // Registration: a read key for its own account; validation; someone else's account.
    let merchant_hook = register(&mut merchant_http, &receiver, merchant, "/m1", None);
    assert!(merchant_hook.starts_with(&format!("wh_{merchant}_")), "{merchant_hook}");
    let url = receiver.url("/x");
    rejected(&merchant_http.call("register_webhook", json!({"account": other, "url": url})), "forbidden");
    for bad in ["ftp://127.0.0.1/x", "http://", "not a url", "https://user:pw@example.com/"] {
        rejected(&merchant_http.call("register_webhook", json!({"account": merchant, "url": bad})), "invalid_url");
    }
    let long = format!("https://example.com/{}", "a".repeat(2_100));
    rejected(&merchant_http.call("register_webhook", json!({"account": merchant, "url": long})), "invalid_url");
    let typo = json!({"account": merchant, "url": url, "events": ["payment.recieved"]});
    rejected(&merchant_http.call("register_webhook", typo), "invalid_events");
    register(&mut admin, &receiver, other, "/m2", Some(&["payment.received"]));

    // Payments: each notification goes to whom it concerns, in order, signed.
    transfer(&mut admin, payer, merchant, "10.00");
    let auth = ok(admin.call(
        "authorize",
        json!({"by": payer, "payee": merchant, "asset": "USD", "amount": "30.00", "expires_in": 600}),
    ));
    let authorization = auth["result"]["payment"].as_u64().unwrap();
    ok(admin.call(
        "capture",
        json!({"by": merchant, "payment": authorization, "asset": "USD", "amount": "20.00", "last": true}),
    ));
    let legs = json!([{"payee": merchant, "amount": "1.00"}, {"payee": other, "amount": "2.00"}]);
    ok(admin.call("split_payment", json!({"by": payer, "asset": "USD", "legs": legs})));
    ok(admin.call("refund", json!({"by": merchant, "payment": authorization, "asset": "USD", "amount": "5.00"})));
    let auth = ok(admin
        .call("authorize", json!({"by": payer, "payee": other, "asset": "USD", "amount": "3.00", "expires_in": 600})));
    ok(admin.call("void", json!({"by": payer, "payment": auth["result"]["payment"]})));

    let to_merchant = receiver.wait_delivered("/m1", 4);
    assert_eq!(
        types(&to_merchant),
        ["payment.received", "authorization.captured", "payment.received", "payment.refunded"]
    );
    assert_in_seq_order(&to_merchant);
    let first = &to_merchant[0].body;
    assert_eq!(first["account"], merchant);
    assert_eq!(first["data"]["type"], "transferred");
    assert_eq!(first["data"]["amount"], "10.00");
    assert_eq!(first["id"], to_merchant[0].id.as_str(), "the header and the body carry the same id");
    assert_eq!(to_merchant[1].body["data"]["captured_total"], "20.00");
    let to_other = receiver.wait_delivered("/m2", 1);
    assert_eq!(types(&to_other), ["payment.received"], "the filter keeps voided out");
    assert_eq!(to_other[0].body["data"]["amount"], "2.00");
    std::thread::sleep(QUIET);
    assert_eq!(receiver.delivered("/m2").len(), 1, "nothing else for the filtered endpoint");
    let status = webhook_status(&mut merchant_http, merchant);
    assert_eq!(
        (status["delivered"].as_u64(), status["pending"].as_u64(), status["failed"].as_u64()),
        (Some(4), Some(0), Some(0))
    );
    assert!(!status.to_string().contains("whsec_"), "list_webhooks never shows a secret: {status}");

    // Failures: retried with backoff, the next one waits, and both arrive after recovery.
    receiver.set_mode(Mode::Fail);
    let first_seq = transfer(&mut admin, payer, merchant, "1.01");
    transfer(&mut admin, payer, merchant, "1.02");
    let first_id = format!("evt_{first_seq}_0_{merchant}");
    receiver.wait_until("two failed attempts", |state| state.received.iter().filter(|r| r.id == first_id).count() >= 2);
    receiver.set_mode(Mode::Ok);
    let delivered = receiver.wait_delivered("/m1", 6);
    assert_eq!(delivered[4].id, first_id);
    assert_eq!(delivered[5].body["data"]["amount"], "1.02", "the second waited for the first");
    let attempts = receiver.attempts(&first_id);
    assert!(attempts.len() >= 3, "{attempts:#?}");
    let gaps: Vec<Duration> = attempts.windows(2).map(|pair| pair[1].at - pair[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(90), "the first retry waits the initial backoff: {gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(190), "then twice as long: {gaps:?}");
    assert!(attempts.iter().all(|a| a.raw_body == attempts[0].raw_body), "every attempt sends the same body");

    // Given up after the limit, reported, and the next notification goes through.
    receiver.set_mode(Mode::Fail);
    let doomed = transfer(&mut admin, payer, merchant, "1.03");
    let status = wait_status(&mut merchant_http, merchant, "a failure", |status| status["failed"] == 1);
    assert!(status["last_error"].as_str().unwrap().contains("500"), "{status}");
    assert_eq!(receiver.attempts(&format!("evt_{doomed}_0_{merchant}")).len(), 4, "attempts_max = 4");
    receiver.set_mode(Mode::Ok);
    transfer(&mut admin, payer, merchant, "1.04");
    let delivered = receiver.wait_delivered("/m1", 7);
    assert_eq!(delivered[6].body["data"]["amount"], "1.04");

    // A receiver that hangs: deliveries time out; the engine does not notice.
    receiver.set_mode(Mode::Hang);
    let hung = transfer(&mut admin, payer, merchant, "1.05");
    let hung_id = format!("evt_{hung}_0_{merchant}");
    receiver.wait_until("a hung delivery", |state| state.received.iter().any(|r| r.id == hung_id));
    // Each of these queues a notification to the same endpoint behind the hung one:
    // were deliveries on the engine's path, each would wait out a 400 ms timeout.
    let mut round_trips: Vec<Duration> = (0..20)
        .map(|_| {
            let before = Instant::now();
            transfer(&mut admin, payer, merchant, "0.01");
            before.elapsed()
        })
        .collect();
    round_trips.sort_unstable();
    // The bound sits below the 400 ms a delivery on the engine's path would add, with
    // room for a busy two-core machine.
    assert!(round_trips[10] < Duration::from_millis(300), "transfers while the receiver hangs: {round_trips:?}");
    assert!(round_trips[19] < Duration::from_secs(2), "{round_trips:?}");
    assert_eq!(server.http(None).get("/ready").status, 200);
    let status = wait_status(&mut merchant_http, merchant, "a timeout", |status| !status["last_error"].is_null());
    assert!(status["last_error"].as_str().unwrap().to_lowercase().contains("timeout"), "{status}");
    receiver.set_mode(Mode::Ok);
    let delivered = receiver.wait_delivered("/m1", 28);
    assert_eq!(delivered[7].id, hung_id, "the hung one first, then the 20 queued behind it");
    assert!(delivered[8..].iter().all(|r| r.body["data"]["amount"] == "0.01"), "{:?}", types(&delivered[8..]));

    // Delete: nothing more is sent; the id is gone; it names its account.
    let other_hook = webhook_status(&mut admin, other)["webhook_id"].as_str().unwrap().to_owned();
    rejected(&merchant_http.call("delete_webhook", json!({"webhook_id": other_hook})), "forbidden");
    rejected(&merchant_http.call("delete_webhook", json!({"webhook_id": "wh_nope"})), "invalid_params");
    let reply = ok(merchant_http.call("delete_webhook", json!({"webhook_id": merchant_hook})));
    assert_eq!(reply["result"]["deleted"], true);
    rejected(&merchant_http.call("delete_webhook", json!({"webhook_id": merchant_hook})), "unknown_webhook");
    transfer(&mut admin, payer, merchant, "1.06");
    transfer(&mut admin, payer, other, "1.07");
    receiver.wait_delivered("/m2", 2);
    std::thread::sleep(QUIET);
    assert_eq!(receiver.delivered("/m1").len(), 28, "no delivery after the delete");
    let listed = ok(merchant_http.call("list_webhooks", json!({"account": merchant})));
    assert_eq!(listed["result"]["webhooks"], json!([]));

    // Every delivery carried a valid signature and a unique id per endpoint.
    let state = receiver.shared.0.lock().unwrap();
    assert!(state.bad_signatures.is_empty(), "bad signatures: {:?}", state.bad_signatures);
    let ids: Vec<&str> = state.received.iter().filter(|r| r.answered == 200).map(|r| r.id.as_str()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "ids are unique: {ids:?}");
    drop(state);
    let text = metrics(&server);
    assert!(counter(&text, "bourse_webhook_deliveries_total{outcome=\"delivered\"}").unwrap() >= 10, "{text}");
    assert!(counter(&text, "bourse_webhook_deliveries_total{outcome=\"given_up\"}").unwrap() >= 1);
    assert!(counter(&text, "bourse_webhook_deliveries_total{outcome=\"retried\"}").unwrap() >= 3);
}

/// Opens a payer and a merchant, funds the payer and registers the merchant's
/// endpoint at `path`; returns (payer, merchant).
fn merchant_setup(server: &Server, receiver: &Receiver, path: &str) -> (u64, u64) {
    let mut admin = server.admin_http();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let (payer, merchant) = runtime.block_on(async {
        let payer = open_account(&mut admin, 1).await;
        let merchant = open_account(&mut admin, 2).await;
        deposit(&mut admin, payer, "USD", "1000.00").await;
        (payer, merchant)
    });
    register(&mut admin, receiver, merchant, path, None);
    (payer, merchant)
}

/// The sequence number of the newest snapshot file in `data` (0: none).
fn newest_snapshot(data: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(data.join("snapshots")) else { return 0 };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("snapshot-")?.strip_suffix(".snap")?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

fn restart(data: &Path, config: &str, admin: &str) -> Server {
    let mut server = Server::start_with(data, Some(config));
    server.admin_token = Some(admin.to_owned());
    server
}

#[test]
fn pending_deliveries_survive_sigkill_and_what_the_outbox_lost_is_derived_from_the_journal() {
    let receiver = Receiver::start();
    receiver.set_mode(Mode::Fail);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Snapshots every 3 commands: the newest is always ahead of the webhook cursor.
    let config = config("snapshot_every_commands = 3", "attempts_max = 1000\n");
    let mut server = Server::start_with(&data, Some(&config));
    let admin_token = server.admin_token.clone().unwrap();
    let (payer, merchant) = merchant_setup(&server, &receiver, "/kill");
    let mut admin = server.admin_http();
    let seqs: Vec<u64> =
        ["1.00", "2.00", "3.00"].iter().map(|amount| transfer(&mut admin, payer, merchant, amount)).collect();
    wait_status(&mut admin, merchant, "3 pending", |status| status["pending"] == 3);
    receiver.wait_until("failed attempts", |state| !state.received.is_empty());
    server.kill();

    // Restarted after SIGKILL: the three arrive, in order, once each.
    receiver.set_mode(Mode::Ok);
    let mut server = restart(&data, &config, &admin_token);
    assert!(
        server.startup.iter().any(|line| line.starts_with("webhooks: 1 endpoints, 3 notifications pending")),
        "{:#?}",
        server.startup
    );
    let delivered = receiver.wait_delivered("/kill", 3);
    let expected: Vec<String> = seqs.iter().map(|seq| format!("evt_{seq}_0_{merchant}")).collect();
    assert_eq!(delivered.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), expected);
    let mut admin = server.admin_http();
    let more: Vec<u64> = ["4.00", "5.00"].iter().map(|amount| transfer(&mut admin, payer, merchant, amount)).collect();
    receiver.wait_delivered("/kill", 5);
    std::thread::sleep(QUIET);
    assert_eq!(receiver.delivered("/kill").len(), 5, "each exactly once");

    // The crash window: notifications the outbox never held (here: the whole outbox
    // lost) are derived again from the journal, older than the newest snapshot.
    receiver.set_mode(Mode::Fail);
    let last = transfer(&mut admin, payer, merchant, "6.00");
    receiver.wait_until("an attempt of the last", |state| state.received.iter().any(|r| r.body["seq"] == last));
    // A snapshot newer than where the webhooks started (the cursor once the outbox is gone).
    let deadline = Instant::now() + WAIT;
    while newest_snapshot(&data) < seqs[0] {
        assert!(Instant::now() < deadline, "no snapshot after sequence {}", seqs[0]);
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    std::fs::remove_file(data.join("webhooks/outbox.log")).unwrap();
    receiver.set_mode(Mode::Ok);
    let before = receiver.delivered("/kill");
    let server = restart(&data, &config, &admin_token);
    let number_after = |prefix: &str, marker: &str| -> u64 {
        let line = server.startup.iter().find(|line| line.starts_with(prefix)).expect(prefix);
        let rest = &line[line.find(marker).expect(marker) + marker.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let snapshot = number_after("recovered to seq", "at seq ");
    let derived = number_after("webhooks: 1 endpoints, 0 notifications pending", "derived through seq ");
    assert!(derived < snapshot, "the journal is replayed from before the newest snapshot ({derived} < {snapshot})");
    let after = receiver.wait_delivered("/kill", before.len() + 6);
    let again = &after[before.len()..];
    let expected: Vec<String> =
        seqs.iter().chain(&more).chain([&last]).map(|seq| format!("evt_{seq}_0_{merchant}")).collect();
    assert_eq!(again.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), expected, "all again, in order");
    for redelivered in &again[..5] {
        let original = before.iter().find(|r| r.id == redelivered.id).unwrap();
        assert_eq!(original.raw_body, redelivered.raw_body, "the same notification, byte for byte");
    }
    let text = metrics(&server);
    assert!(counter(&text, "bourse_webhook_journal_replays_total").unwrap() >= 1, "{text}");
    assert!(receiver.shared.0.lock().unwrap().bad_signatures.is_empty());
}

#[test]
fn batches_the_publisher_drops_are_derived_again_from_the_journal() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    // Room for no batch at all: every batch is dropped and replayed from the journal.
    let server = Server::start_with(&dir.path().join("data"), Some(&config("", "queue_events_max = 1\n")));
    let (payer, merchant) = merchant_setup(&server, &receiver, "/drop");
    let mut admin = server.admin_http();
    let seqs: Vec<u64> = (1..=5).map(|cents| transfer(&mut admin, payer, merchant, &format!("0.0{cents}"))).collect();
    let delivered = receiver.wait_delivered("/drop", 5);
    let expected: Vec<String> = seqs.iter().map(|seq| format!("evt_{seq}_0_{merchant}")).collect();
    assert_eq!(delivered.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), expected);
    let text = metrics(&server);
    assert!(counter(&text, "bourse_webhook_journal_replays_total").unwrap() >= 1, "{text}");
    std::thread::sleep(QUIET);
    assert_eq!(receiver.delivered("/drop").len(), 5, "each exactly once");
}

#[test]
fn a_cross_border_payment_notifies_its_payee_also_when_derived_from_the_journal() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    // Room for no batch: the notification is derived by replaying the journal.
    let server = Server::start_with(&dir.path().join("data"), Some(&config("", "queue_events_max = 1\n")));
    let mut admin = server.admin_http();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (maker, payer, merchant) = runtime.block_on(async {
        let accounts =
            (open_account(&mut admin, 1).await, open_account(&mut admin, 2).await, open_account(&mut admin, 3).await);
        deposit(&mut admin, accounts.0, "JPY", "1000000").await;
        deposit(&mut admin, accounts.1, "EUR", "1000.00").await;
        accounts
    });
    register(&mut admin, &receiver, merchant, "/xb", None);
    register(&mut admin, &receiver, payer, "/payer", None);
    ok(admin
        .call("place_order", json!({"by": maker, "market": "EUR-JPY", "side": "buy", "price": "160", "qty": "500"})));
    // 1 lot of 100 EUR at 160: 16,000 JPY less the 2 bps taker fee (3.2 → 3).
    let pay =
        json!({"by": payer, "payee": merchant, "from": "EUR", "to": "JPY", "send": "100.00", "min_receive": "15997"});
    let paid = ok(admin.call("pay_cross_border", pay));
    let seq = paid["seq"].as_u64().unwrap();
    let delivered = receiver.wait_delivered("/xb", 1);
    assert_eq!(types(&delivered), ["crossborder.completed"]);
    let body = &delivered[0].body;
    assert_eq!((body["account"].as_u64(), body["seq"].as_u64()), (Some(merchant), Some(seq)));
    assert_eq!(body["data"]["type"], "cross_border_paid");
    assert_eq!((body["data"]["send"].as_str(), body["data"]["receive"].as_str()), (Some("100.00"), Some("15997")));
    assert_eq!(body["data"]["route"], json!(["EUR-JPY"]));
    assert_eq!(body["data"]["payment"], paid["result"]["payment"]);
    let text = metrics(&server);
    assert!(counter(&text, "bourse_webhook_journal_replays_total").unwrap() >= 1, "{text}");
    // Like a transfer, the payment tells its payee, not the payer who sent it.
    std::thread::sleep(QUIET);
    assert!(receiver.delivered("/payer").is_empty(), "{:#?}", receiver.delivered("/payer"));
    assert!(receiver.shared.0.lock().unwrap().bad_signatures.is_empty());
}

#[test]
fn a_held_cross_border_payment_tells_the_payer_the_decision_and_the_payee_the_payment() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), Some(&config("", "")));
    let mut admin = server.admin_http();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (maker, payer, merchant) = runtime.block_on(async {
        let accounts =
            (open_account(&mut admin, 1).await, open_account(&mut admin, 2).await, open_account(&mut admin, 3).await);
        deposit(&mut admin, accounts.0, "JPY", "1000000").await;
        deposit(&mut admin, accounts.1, "EUR", "1000.00").await;
        accounts
    });
    register(&mut admin, &receiver, merchant, "/xb", None);
    register(&mut admin, &receiver, payer, "/payer", None);
    ok(admin
        .call("place_order", json!({"by": maker, "market": "EUR-JPY", "side": "buy", "price": "160", "qty": "500"})));
    let rules = json!({"tiers": {"0": {"review_threshold": {"EUR": "50.00"}}}});
    ok(admin.call("publish_rules", json!({"rules": rules})));
    ok(admin.call("activate_rules", json!({"version": 1})));
    // 100.00 EUR, above the 50.00 threshold: held; approved, 1 lot at 160 pays 16,000
    // JPY less the 2 bps taker fee (3.2 → 3).
    let pay =
        json!({"by": payer, "payee": merchant, "from": "EUR", "to": "JPY", "send": "100.00", "min_receive": "15997"});
    let held = ok(admin.call("pay_cross_border", pay));
    let hold = held["result"]["held_for_review"]["hold"].as_u64().unwrap();
    let approved = ok(admin.call("review_decision", json!({"hold": hold, "approve": true})));
    let seq = approved["seq"].as_u64().unwrap();
    let to_merchant = receiver.wait_delivered("/xb", 1);
    assert_eq!(types(&to_merchant), ["crossborder.completed"], "the payment, not the hold");
    let body = &to_merchant[0].body;
    assert_eq!((body["seq"].as_u64(), body["data"]["receive"].as_str()), (Some(seq), Some("15997")));
    assert_eq!(body["data"]["payment"], approved["result"]["payment"]);
    let to_payer = receiver.wait_delivered("/payer", 1);
    assert_eq!(types(&to_payer), ["review.decided"]);
    assert_eq!(
        (to_payer[0].body["seq"].as_u64(), to_payer[0].body["data"]["type"].as_str()),
        (Some(seq), Some("review_approved"))
    );
    std::thread::sleep(QUIET);
    assert_eq!((receiver.delivered("/xb").len(), receiver.delivered("/payer").len()), (1, 1), "once each");
    assert!(receiver.shared.0.lock().unwrap().bad_signatures.is_empty());
}

/// The renderer of notification bodies knew only the configured markets: a
/// cross-border payment through a market added at run time named it "?" in its
/// route. It is told of each market added (live, and from the recovered engine after
/// a restart), also when the notification is derived from the journal.
#[test]
fn a_route_through_a_market_added_at_run_time_names_it_live_after_a_restart_and_from_the_journal() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let live = config("", "");
    let mut server = Server::start_with(&data, Some(&live));
    let admin_token = server.admin_token.clone().unwrap();
    let mut admin = server.admin_http();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (maker, payer, merchant) = runtime.block_on(async {
        let accounts =
            (open_account(&mut admin, 1).await, open_account(&mut admin, 2).await, open_account(&mut admin, 3).await);
        deposit(&mut admin, accounts.0, "JPY", "10000000").await;
        deposit(&mut admin, accounts.1, "GBP", "10000.00").await;
        accounts
    });
    register(&mut admin, &receiver, merchant, "/gbp", None);
    // 100.00 GBP lots, 0.01 JPY steps, no fees; the maker bids 190 JPY a pound.
    let market = json!({"base": "GBP", "quote": "JPY", "lot": 10000, "tick": 1, "qty_min": 1, "qty_max": 1000});
    ok(admin.call("add_market", market));
    ok(admin
        .call("place_order", json!({"by": maker, "market": "GBP-JPY", "side": "buy", "price": "190", "qty": "1000"})));
    // 100.00 GBP → 19,000 JPY in one hop (no USD or EUR is bid, so no other route).
    let pay = |admin: &mut common::Http, key: &str| {
        let pay = json!({
            "by": payer, "payee": merchant, "from": "GBP", "to": "JPY", "send": "100.00", "min_receive": "19000",
            "key": key,
        });
        ok(admin.call("pay_cross_border", pay))["seq"].as_u64().unwrap()
    };
    let routes = |deliveries: &[Received]| -> Vec<(u64, Value)> {
        deliveries.iter().map(|r| (r.body["seq"].as_u64().unwrap(), r.body["data"]["route"].clone())).collect()
    };
    let first = pay(&mut admin, "gbp-1");
    let delivered = receiver.wait_delivered("/gbp", 1);
    assert_eq!(routes(&delivered), [(first, json!(["GBP-JPY"]))]);
    assert_eq!(delivered[0].body["data"]["receive"], "19000");

    // Restarted with no room for any batch: the market comes from the recovered
    // engine, and the notification is derived from the journal.
    server.terminate();
    let replayed = config("", "queue_events_max = 1\n");
    let server = restart(&data, &replayed, &admin_token);
    let mut admin = server.admin_http();
    let second = pay(&mut admin, "gbp-2");
    let delivered = receiver.wait_delivered("/gbp", 2);
    assert_eq!(routes(&delivered), [(first, json!(["GBP-JPY"])), (second, json!(["GBP-JPY"]))]);
    assert!(counter(&metrics(&server), "bourse_webhook_journal_replays_total").unwrap() >= 1);

    // A second market added while notifications are derived from the journal.
    let market = json!({"base": "CNY", "quote": "JPY", "lot": 10000, "tick": 1, "qty_min": 1, "qty_max": 1000});
    ok(admin.call("add_market", market));
    runtime.block_on(deposit(&mut admin, payer, "CNY", "1000.00"));
    ok(admin
        .call("place_order", json!({"by": maker, "market": "CNY-JPY", "side": "buy", "price": "20", "qty": "1000"})));
    let pay = json!({
        "by": payer, "payee": merchant, "from": "CNY", "to": "JPY", "send": "100.00", "min_receive": "2000",
        "key": "cny-1",
    });
    let third = ok(admin.call("pay_cross_border", pay))["seq"].as_u64().unwrap();
    let delivered = receiver.wait_delivered("/gbp", 3);
    assert_eq!(routes(&delivered)[2], (third, json!(["CNY-JPY"])));
    std::thread::sleep(QUIET);
    assert_eq!(receiver.delivered("/gbp").len(), 3, "each once");
    assert!(receiver.shared.0.lock().unwrap().bad_signatures.is_empty());
}
