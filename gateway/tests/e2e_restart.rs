//! End-to-end restart tests of `bourse serve`: a graceful stop (SIGTERM) and a
//! restart keep everything; a SIGKILL in the middle of a stream of commands from
//! concurrent clients loses nothing that was acknowledged (batch and sync
//! durability); a signed request cannot be replayed across a restart.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bourse_gateway::auth::{self, Credentials};
use common::{
    Http, Server, WAIT, Ws, assert_balance, balance, config_with, create_key, deposit, ok, open_account, rejected,
};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The number after `prefix` in `line` (up to the next non-digit).
fn number_after(line: &str, prefix: &str) -> Option<u64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What a client can see of the state: balances and open orders of `accounts`, and
/// the BTC-USD book.
fn state_of(http: &mut Http, accounts: &[u64]) -> Value {
    let mut state = Vec::new();
    for account in accounts {
        let mut balances = ok(http.call("balances", json!({"account": account})))["result"].clone();
        balances.as_object_mut().expect("an object").remove("as_of_seq");
        let orders = ok(http.call("orders", json!({"account": account})))["result"]["orders"].clone();
        state.push(json!({"balances": balances, "orders": orders}));
    }
    let mut depth = ok(http.call("depth", json!({"market": "BTC-USD"})))["result"].clone();
    depth.as_object_mut().expect("an object").remove("channel");
    json!({"accounts": state, "depth": depth})
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_a_restart_keeps_balances_orders_and_keys() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let admin_key = server.admin();
    let mut admin = server.admin_http();
    let a = open_account(&mut admin, 1).await;
    let b = open_account(&mut admin, 2).await;
    deposit(&mut admin, a, "USD", "1000.00").await;
    deposit(&mut admin, b, "BTC", "2").await;
    ok(admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "12.34", "key": "before-stop"})));
    ok(admin.call("authorize", json!({"by": a, "payee": b, "asset": "USD", "amount": "50.00"})));
    ok(admin.call("place_order", json!({"by": b, "market": "BTC-USD", "side": "sell", "price": "51000", "qty": "0.30", "client_order_id": "keep-me"})));
    ok(admin.call("place_order", json!({"by": a, "market": "BTC-USD", "side": "buy", "price": "400", "qty": "0.50"})));
    let client_key = create_key(&mut admin, &["read", "trade"], &[b]).await;
    let before = state_of(&mut admin, &[a, b]);
    let last_seq = server.http(None).get("/ready").json["last_seq"].as_u64().expect("last_seq");

    let (status, lines) = server.terminate();
    assert!(status.success(), "exit status {status:?}; stdout after ready: {lines:#?}; stderr: {}", server.stderr());
    assert!(lines.iter().any(|line| line.starts_with("stopping:")), "{lines:#?}");
    let stopped =
        lines.iter().find(|line| line.starts_with("stopped:")).unwrap_or_else(|| panic!("no stopped line: {lines:#?}"));
    let durable = number_after(stopped, "journal durable to seq ").expect("the durable seq");
    let snapshot = number_after(stopped, "final snapshot at seq ").expect("the final snapshot's seq");
    assert!(durable >= last_seq, "{stopped} (last seq served: {last_seq})");
    assert_eq!(snapshot, durable, "the final snapshot covers the whole journal: {stopped}");

    let restarted = Server::start(&data);
    assert_eq!(
        restarted.admin_token, None,
        "the admin key is printed only on the first start: {:#?}",
        restarted.startup
    );
    assert!(!restarted.startup.iter().any(|line| line.contains("BOURSE_KEY")), "{:#?}", restarted.startup);
    let recovered =
        restarted.startup.iter().find(|line| line.starts_with("recovered to seq")).expect("a recovered line");
    assert_eq!(number_after(recovered, "recovered to seq "), Some(durable), "{recovered}");
    assert!(recovered.contains(&format!("at seq {snapshot}")), "recovered from the final snapshot: {recovered}");

    // The old admin key still works, and sees the same state.
    let mut admin = restarted.http(Some(admin_key));
    let after = state_of(&mut admin, &[a, b]);
    assert_eq!(after, before, "state after the restart");
    // 1000 - 12.34; held: 50.00 authorized, 200.00 for the bid and 0.40 for its fee.
    assert_balance(balance(&mut admin, a, "USD").await, "737.26", "250.40", "the payer after the restart");
    // The client key too, and the engine goes on from where it stopped.
    let mut client = Ws::login(&restarted, &client_key).await;
    let orders = ok(client.call("orders", json!({"account": b})).await);
    assert_eq!(orders["result"]["orders"][0]["client_order_id"], "keep-me");
    let cancelled = ok(client.call("cancel_order", json!({"by": b, "client_order_id": "keep-me"})).await);
    assert!(cancelled["seq"].as_u64() > Some(durable), "{cancelled}");
    let replay =
        ok(admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "12.34", "key": "before-stop"})));
    assert_eq!(replay["replayed"], true, "idempotency keys survive a restart: {replay}");
    client.close().await;
}

/// Regression: the server's verifier remembered no start time, so the nonces of a
/// previous process were forgotten and a request captured before a restart could be
/// sent again, and run again, within the timestamp window after it.
#[tokio::test]
async fn a_request_signed_before_a_restart_cannot_be_replayed_after_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let admin_key = server.admin();
    let mut admin = server.admin_http();
    let a = open_account(&mut admin, 1).await;
    let b = open_account(&mut admin, 2).await;
    deposit(&mut admin, a, "USD", "100.00").await;
    // No idempotency key: each time it runs it is a new transfer.
    let body = json!({"id": 1, "op": "transfer", "by": a, "to": b, "asset": "USD", "amount": "10.00"}).to_string();
    let headers = Http::signature_headers(&admin_key, auth::unix_ms_now(), &auth::new_nonce(), body.as_bytes());
    let first = admin.post_raw(body.as_bytes(), &headers);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(server.http(None).post_raw(body.as_bytes(), &headers).json["error"]["code"], "replayed_nonce");
    let (status, _) = server.terminate();
    assert!(status.success());

    let restarted = Server::start(&data);
    let mut admin = restarted.http(Some(admin_key));
    let replayed = restarted.http(None).post_raw(body.as_bytes(), &headers);
    let balance_b = balance(&mut admin, b, "USD").await;
    assert_eq!(replayed.status, 401, "a captured request ran again after the restart: {}", replayed.text);
    assert_balance(balance_b, "10.00", "0.00", "the transfer ran once");
}

/// A request stamped ahead of the server's clock (within the future skew, so accepted)
/// and captured before a restart cannot be replayed after it either: the new process
/// refuses everything stamped up to its start plus that skew, and a request stamped
/// further ahead than the skew was never accepted.
#[tokio::test]
async fn a_request_stamped_ahead_of_the_clock_cannot_be_replayed_after_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let admin_key = server.admin();
    let mut admin = server.admin_http();
    let a = open_account(&mut admin, 1).await;
    let b = open_account(&mut admin, 2).await;
    deposit(&mut admin, a, "USD", "100.00").await;
    let body = json!({"id": 1, "op": "transfer", "by": a, "to": b, "asset": "USD", "amount": "10.00"}).to_string();
    let far_ahead = auth::unix_ms_now() + 20_000;
    let refused = Http::signature_headers(&admin_key, far_ahead, &auth::new_nonce(), body.as_bytes());
    let refused = admin.post_raw(body.as_bytes(), &refused);
    assert_eq!(
        (refused.status, refused.json["error"]["code"].as_str()),
        (401, Some("stale_timestamp")),
        "{}",
        refused.text
    );
    // The harness's servers allow 100 ms ahead.
    let ahead = auth::unix_ms_now() + 80;
    let headers = Http::signature_headers(&admin_key, ahead, &auth::new_nonce(), body.as_bytes());
    let first = admin.post_raw(body.as_bytes(), &headers);
    assert_eq!(first.status, 200, "80 ms ahead is inside the 100 ms future skew: {}", first.text);
    let (status, _) = server.terminate();
    assert!(status.success());

    let restarted = Server::start(&data);
    let mut admin = restarted.http(Some(admin_key));
    let replayed = restarted.http(None).post_raw(body.as_bytes(), &headers);
    let balance_b = balance(&mut admin, b, "USD").await;
    assert_eq!(replayed.status, 401, "a captured request ran again after the restart: {}", replayed.text);
    assert_balance(balance_b, "10.00", "0.00", "the transfer ran once");
}

// ---------------------------------------------------------------------------------
// SIGKILL mid-stream

const CLIENTS: usize = 4;
/// Operations planned for each HTTP client; the (pipelined, faster) WebSocket client
/// has four times as many.
const OPS_PER_CLIENT: usize = 60;
/// SIGKILL once this many replies were acknowledged.
const KILL_AFTER_ACKNOWLEDGED: usize = 80;
const USD_START_CENTS: i64 = 1_000_000 * 100;
const BTC_START_SATS: i64 = 10 * 100_000_000;
const ORDER_SATS: i64 = 1_000_000; // 0.01 BTC

/// One planned operation of one client.
#[derive(Clone, Debug)]
enum Planned {
    Transfer { from: u64, to: u64, cents: i64, key: String },
    Deposit { account: u64, cents: i64, key: String },
    Sell { account: u64, price: u64, client_order_id: String },
}

impl Planned {
    fn request(&self, id: &str) -> Value {
        match self {
            Planned::Transfer { from, to, cents, key } => {
                json!({"id": id, "op": "transfer", "by": from, "to": to, "asset": "USD", "amount": usd(*cents), "key": key})
            }
            Planned::Deposit { account, cents, key } => {
                json!({"id": id, "op": "deposit", "account": account, "asset": "USD", "amount": usd(*cents), "reference": key, "key": key})
            }
            Planned::Sell { account, price, client_order_id } => json!({
                "id": id, "op": "place_order", "by": account, "market": "BTC-USD", "side": "sell",
                "price": price.to_string(), "qty": "0.01", "client_order_id": client_order_id,
            }),
        }
    }
}

/// What became of a planned operation before the kill.
#[derive(Clone, Debug)]
enum Fate {
    Acknowledged(Value),
    /// Sent, but no reply came: it may or may not have run.
    Unknown,
    NotSent,
}

fn usd(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn btc(sats: i64) -> String {
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

/// A small count as `i64` (for amounts).
fn small(count: usize) -> i64 {
    i64::try_from(count).expect("a small count")
}

/// The plan of client `index`: transfers to the next client's account, deposits to
/// its own, and sells (never crossing: nobody buys) from its trading account.
fn plan(index: usize, count: usize, payers: &[u64], traders: &[u64]) -> Vec<Planned> {
    (0..count)
        .map(|op| match op % 3 {
            0 => Planned::Transfer {
                from: payers[index],
                to: payers[(index + 1) % CLIENTS],
                cents: (small(op) % 7 + 1) * 100,
                key: format!("c{index}-t{op}"),
            },
            1 => Planned::Deposit { account: payers[index], cents: small(op) + 1, key: format!("c{index}-d{op}") },
            _ => Planned::Sell {
                account: traders[index],
                price: 60_000 + index as u64 * 1_000 + op as u64,
                client_order_id: format!("c{index}-o{op}"),
            },
        })
        .collect()
}

/// Runs `plan` over HTTP until the end or the first broken exchange.
fn run_http(http: &Http, plan: &[Planned], acknowledged: &AtomicUsize) -> Vec<Fate> {
    let mut fates = vec![Fate::NotSent; plan.len()];
    for (index, planned) in plan.iter().enumerate() {
        let Ok(reply) = http.try_request(&planned.request(&format!("h-{index}"))) else {
            fates[index] = Fate::Unknown;
            break;
        };
        fates[index] = Fate::Acknowledged(reply);
        acknowledged.fetch_add(1, Ordering::SeqCst);
    }
    fates
}

/// Requests a WebSocket client keeps in flight at once.
const WS_WINDOW: usize = 8;

/// Runs `plan` over a WebSocket session (on its own runtime), pipelined: up to
/// [`WS_WINDOW`] requests in flight, until the end or the session breaks off.
fn run_websocket(
    url: &str,
    credentials: &Credentials,
    plan: &[Planned],
    acknowledged: &AtomicUsize,
    logged_in: &AtomicBool,
) -> Vec<Fate> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let mut ws = Ws::connect_to(url).await;
        ok(ws.try_login(credentials).await);
        logged_in.store(true, Ordering::SeqCst);
        let mut fates = vec![Fate::NotSent; plan.len()];
        let (mut next, mut in_flight) = (0, 0);
        'session: loop {
            while next < plan.len() && in_flight < WS_WINDOW {
                // Sent or half sent: in doubt until its reply comes.
                fates[next] = Fate::Unknown;
                let request = plan[next].request(&format!("w-{next}")).to_string();
                next += 1;
                in_flight += 1;
                if ws.stream.send(Message::text(request)).await.is_err() {
                    break 'session;
                }
            }
            if in_flight == 0 {
                break;
            }
            let Some(reply) = ws.next_within(WAIT).await else { break };
            let Some(index) =
                reply["id"].as_str().and_then(|id| id.strip_prefix("w-")).and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            fates[index] = Fate::Acknowledged(reply);
            in_flight -= 1;
            acknowledged.fetch_add(1, Ordering::SeqCst);
        }
        fates
    })
}

/// Sends `planned` again after the restart: `true` when it had already run before
/// (a replay, or the client order id is already taken), `false` when it runs now.
fn resend(http: &mut Http, planned: &Planned) -> bool {
    let reply = http.request(&planned.request("again"));
    match planned {
        Planned::Sell { .. } if reply["ok"] == false => {
            rejected(&reply, "duplicate_client_order_id");
            true
        }
        _ => {
            assert_eq!(reply["ok"], true, "{planned:?}: {reply}");
            reply["replayed"] == true
        }
    }
}

/// The balances and open sells implied by the operations that ran.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    usd_cents: Vec<i64>,
    sells: Vec<Vec<String>>,
}

impl Expected {
    fn new() -> Self {
        Expected { usd_cents: vec![USD_START_CENTS; CLIENTS], sells: vec![Vec::new(); CLIENTS] }
    }

    fn apply(&mut self, client: usize, planned: &Planned) {
        match planned {
            Planned::Transfer { cents, .. } => {
                self.usd_cents[client] -= cents;
                self.usd_cents[(client + 1) % CLIENTS] += cents;
            }
            Planned::Deposit { cents, .. } => self.usd_cents[client] += cents,
            Planned::Sell { client_order_id, .. } => self.sells[client].push(client_order_id.clone()),
        }
    }

    async fn check(&self, http: &mut Http, payers: &[u64], traders: &[u64], when: &str) {
        for client in 0..CLIENTS {
            let usd_balance = balance(http, payers[client], "USD").await;
            assert_balance(usd_balance, &usd(self.usd_cents[client]), "0.00", &format!("{when}: payer {client}"));
            let held = ORDER_SATS * small(self.sells[client].len());
            let btc_balance = balance(http, traders[client], "BTC").await;
            assert_balance(btc_balance, &btc(BTC_START_SATS - held), &btc(held), &format!("{when}: trader {client}"));
            let orders = ok(http.call("orders", json!({"account": traders[client]})));
            let mut open: Vec<String> = orders["result"]["orders"]
                .as_array()
                .expect("orders")
                .iter()
                .map(|order| order["client_order_id"].as_str().expect("a client order id").to_owned())
                .collect();
            open.sort();
            let mut expected = self.sells[client].clone();
            expected.sort();
            assert_eq!(open, expected, "{when}: open sells of trader {client}");
        }
    }
}

#[allow(clippy::too_many_lines)]
/// `pipeline`: `fused` (journal, engine and publisher on one thread) or `threads`.
async fn acknowledged_results_survive_a_sigkill(durability: &str, pipeline: &str) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let config = config_with(&format!("durability = \"{durability}\"\npipeline = \"{pipeline}\""));
    let mut server = Server::start_with(&data, Some(&config));
    let admin_key: Credentials = server.admin();
    let mut admin = server.admin_http();
    let mut payers = Vec::new();
    let mut traders = Vec::new();
    for client in 0..CLIENTS as u64 {
        let payer = open_account(&mut admin, 100 + client).await;
        deposit(&mut admin, payer, "USD", &usd(USD_START_CENTS)).await;
        payers.push(payer);
        let trader = open_account(&mut admin, 200 + client).await;
        deposit(&mut admin, trader, "BTC", &btc(BTC_START_SATS)).await;
        traders.push(trader);
    }
    let websocket_client = CLIENTS - 1;
    let plans: Vec<Vec<Planned>> = (0..CLIENTS)
        .map(|client| {
            let count = if client == websocket_client { 4 * OPS_PER_CLIENT } else { OPS_PER_CLIENT };
            plan(client, count, &payers, &traders)
        })
        .collect();

    // Concurrent clients: three over HTTP, one over a WebSocket.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let logged_in = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (client, plan) in plans.iter().cloned().enumerate() {
        let acknowledged = acknowledged.clone();
        let finished = done.clone();
        if client == websocket_client {
            let (url, credentials, logged_in) = (server.ws_url(), admin_key.clone(), logged_in.clone());
            handles.push(std::thread::spawn(move || {
                let fates = run_websocket(&url, &credentials, &plan, &acknowledged, &logged_in);
                finished.store(true, Ordering::SeqCst);
                fates
            }));
        } else {
            let http = server.http(Some(admin_key.clone()));
            handles.push(std::thread::spawn(move || {
                let fates = run_http(&http, &plan, &acknowledged);
                finished.store(true, Ordering::SeqCst);
                fates
            }));
        }
    }
    let deadline = Instant::now() + WAIT;
    while (acknowledged.load(Ordering::SeqCst) < KILL_AFTER_ACKNOWLEDGED || !logged_in.load(Ordering::SeqCst))
        && !done.load(Ordering::SeqCst)
    {
        assert!(Instant::now() < deadline, "the clients made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill();
    let fates: Vec<Vec<Fate>> = handles.into_iter().map(|handle| handle.join().expect("a client thread")).collect();
    let count = |matches: fn(&Fate) -> bool| fates.iter().flatten().filter(|fate| matches(fate)).count();
    let acked = count(|fate| matches!(fate, Fate::Acknowledged(_)));
    let not_sent = count(|fate| matches!(fate, Fate::NotSent));
    assert!(acked >= KILL_AFTER_ACKNOWLEDGED, "{acked} acknowledged");
    let unknown = count(|fate| matches!(fate, Fate::Unknown));
    eprintln!("{durability}: {acked} acknowledged, {unknown} in doubt, {not_sent} not sent at the kill");
    assert!(not_sent > 0, "the kill came after every client finished: not mid-stream");

    // Every acknowledged reply was a success, with its seq.
    let mut seq_max = 0;
    for (client, client_fates) in fates.iter().enumerate() {
        for (op, fate) in client_fates.iter().enumerate() {
            if let Fate::Acknowledged(reply) = fate {
                assert_eq!(reply["ok"], true, "client {client} op {op}: {reply}");
                seq_max = seq_max.max(reply["seq"].as_u64().expect("seq"));
            }
        }
    }

    let restarted = Server::start_with(&data, Some(&config));
    let recovered =
        restarted.startup.iter().find(|line| line.starts_with("recovered to seq")).expect("a recovered line");
    let recovered_seq = number_after(recovered, "recovered to seq ").expect("a seq");
    assert!(recovered_seq >= seq_max, "recovered to {recovered_seq}, but seq {seq_max} was acknowledged: {recovered}");
    let mut admin = restarted.http(Some(admin_key));
    let mut recovered_usd = Vec::new();
    let mut recovered_btc = Vec::new();
    for (payer, trader) in payers.iter().zip(&traders) {
        recovered_usd.push(balance(&mut admin, *payer, "USD").await);
        recovered_btc.push(balance(&mut admin, *trader, "BTC").await);
    }

    // The in-doubt operations (at most one per HTTP client, a window's worth for the
    // WebSocket client): did they run before the kill?
    let mut expected = Expected::new();
    let mut run_now = Vec::new();
    for (client, client_fates) in fates.iter().enumerate() {
        for (op, fate) in client_fates.iter().enumerate() {
            match fate {
                Fate::Acknowledged(_) => expected.apply(client, &plans[client][op]),
                Fate::Unknown => {
                    if resend(&mut admin, &plans[client][op]) {
                        expected.apply(client, &plans[client][op]);
                    } else {
                        run_now.push((client, op));
                    }
                }
                Fate::NotSent => {}
            }
        }
    }
    // The state right after recovery was: the acknowledged operations, plus the
    // in-doubt ones that had run, and nothing else.
    for (client, (usd_balance, btc_balance)) in recovered_usd.into_iter().zip(recovered_btc).enumerate() {
        let what = format!("recovered payer {client}");
        assert_balance(usd_balance, &usd(expected.usd_cents[client]), "0.00", &what);
        let held = ORDER_SATS * small(expected.sells[client].len());
        assert_balance(btc_balance, &btc(BTC_START_SATS - held), &btc(held), &format!("recovered trader {client}"));
    }
    eprintln!("{durability}: {} of the in-doubt operations had not run before the kill", run_now.len());
    for (client, op) in run_now {
        expected.apply(client, &plans[client][op]);
    }
    expected.check(&mut admin, &payers, &traders, "after recovery and the in-doubt operations").await;

    // Each acknowledged operation is there: sent again, it is a replay (or its client
    // order id is taken), with the same payment.
    for (client, client_fates) in fates.iter().enumerate() {
        for (op, fate) in client_fates.iter().enumerate() {
            if let Fate::Acknowledged(reply) = fate {
                let again = admin.request(&plans[client][op].request("again"));
                if let Planned::Sell { .. } = plans[client][op] {
                    rejected(&again, "duplicate_client_order_id");
                } else {
                    assert_eq!(again["replayed"], true, "client {client} op {op} was lost: {again}");
                    assert_eq!(again["result"], reply["result"], "client {client} op {op}");
                }
            }
        }
    }
    // The rest of the plan, once: the end state is every operation exactly once.
    for (client, client_fates) in fates.iter().enumerate() {
        for (op, fate) in client_fates.iter().enumerate() {
            if matches!(fate, Fate::NotSent) {
                assert!(!resend(&mut admin, &plans[client][op]), "client {client} op {op} ran though never sent");
                expected.apply(client, &plans[client][op]);
            }
        }
    }
    let mut all = Expected::new();
    for (client, plan) in plans.iter().enumerate() {
        for planned in plan {
            all.apply(client, planned);
        }
    }
    assert_eq!(expected, all);
    all.check(&mut admin, &payers, &traders, "every operation once").await;
}

#[tokio::test]
async fn acknowledged_results_survive_a_sigkill_with_batch_durability() {
    acknowledged_results_survive_a_sigkill("batch", "fused").await;
}

#[tokio::test]
async fn acknowledged_results_survive_a_sigkill_with_sync_durability() {
    acknowledged_results_survive_a_sigkill("sync", "fused").await;
}

#[tokio::test]
async fn acknowledged_results_survive_a_sigkill_with_a_thread_per_stage() {
    acknowledged_results_survive_a_sigkill("batch", "threads").await;
}
