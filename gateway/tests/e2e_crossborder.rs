//! Cross-border payments end to end: the real `bourse` binary on 127.0.0.1 with its
//! embedded default markets, makers' resting orders as the liquidity, and a payer
//! who quotes, executes and pays directly over HTTP and WebSocket while the payer's
//! and the payee's own sessions listen for pushes.
//!
//! Every number asserted is worked out by hand in the comment beside it, from the
//! books `World::open` builds (all accounts KYC tier 0: taker fee 2 bps, maker fee
//! 1 bp on the FX markets, rounded down per fill; lots of 100 base units):
//!
//! | market  | bids (the maker buys)                  |
//! | ------- | -------------------------------------- |
//! | EUR-USD | 5,000 EUR at 1.2003, 5,000 EUR at 1.1003 |
//! | USD-JPY | 5,000 USD at 150                       |
//! | EUR-JPY | 5,000 EUR at 160                       |
//!
//! So EUR→JPY has a one-hop route (EUR-JPY) and a two-hop one (EUR-USD, USD-JPY),
//! and the two-hop one is better while the 1.2003 bid lasts.
//!
//! Under the risk rules (`RULES`: tier 0 may send at most 3,000.00 EUR in one payment,
//! and a payment above 1,500.00 EUR waits for an operator), a cross-border payment is
//! held for review, then approved (routed again on the books of the decision),
//! rejected, or refused approval while the books do not meet its limit.

mod common;

use std::time::Duration;

use bourse_gateway::auth::Credentials;
use common::{
    Http, Rpc, Server, Ws, assert_balance, balance, create_key, deposit, events_of, ok, open_account, rejected,
};
use serde_json::{Value, json};

/// The accounts of a cross-border world and the parties' own keys.
struct World {
    server: Server,
    admin: Http,
    maker: u64,
    payer: u64,
    payee: u64,
    /// Holds EUR to sell into the books (a taker who moves the rate).
    taker: u64,
    /// `read` and `pay` for the payer.
    payer_key: Credentials,
    /// `read` for the payee.
    payee_key: Credentials,
}

impl World {
    /// Starts a server on a fresh data directory and builds the books in the module
    /// documentation; the payer holds 10,000.00 EUR, the payee nothing.
    async fn open(dir: &tempfile::TempDir) -> World {
        let server = Server::start(&dir.path().join("data"));
        let mut admin = server.admin_http();
        let maker = open_account(&mut admin, 1).await;
        let payer = open_account(&mut admin, 2).await;
        let payee = open_account(&mut admin, 3).await;
        let taker = open_account(&mut admin, 4).await;
        deposit(&mut admin, maker, "USD", "100000.00").await;
        deposit(&mut admin, maker, "JPY", "10000000").await;
        deposit(&mut admin, payer, "EUR", "10000.00").await;
        deposit(&mut admin, taker, "EUR", "10000.00").await;
        for (market, price) in [("EUR-USD", "1.2003"), ("EUR-USD", "1.1003"), ("USD-JPY", "150"), ("EUR-JPY", "160")] {
            let order = json!({"by": maker, "market": market, "side": "buy", "price": price, "qty": "5000"});
            ok(admin.call("place_order", order));
        }
        let payer_key = create_key(&mut admin, &["read", "pay"], &[payer]).await;
        let payee_key = create_key(&mut admin, &["read"], &[payee]).await;
        World { server, admin, maker, payer, payee, taker, payer_key, payee_key }
    }

    /// A WebSocket session logged in with `key`, subscribed to its account's pushes.
    async fn listener(&self, key: &Credentials) -> Ws {
        let mut ws = Ws::login(&self.server, key).await;
        ok(ws.call("subscribe", json!({"channel": "account"})).await);
        ws
    }

    /// Every balance of the four accounts and the depth of the three markets: what
    /// "nothing moved" compares.
    fn money(&mut self) -> Value {
        let mut state = json!({});
        for account in [self.maker, self.payer, self.payee, self.taker] {
            let reply = ok(self.admin.call("balances", json!({"account": account})));
            state[format!("account {account}")] = reply["result"]["balances"].clone();
        }
        for market in ["EUR-USD", "USD-JPY", "EUR-JPY"] {
            let reply = ok(self.admin.call("depth", json!({"market": market})));
            state[market] = reply["result"].clone();
        }
        state
    }
}

/// Publishes `rules` (the JSON form) and makes it the active version for everyone;
/// returns the version.
fn publish_and_activate_rules(admin: &mut Http, rules: &Value) -> u64 {
    let published = ok(admin.call("publish_rules", json!({"rules": rules})));
    let version = events_of(&published, "rules_published")[0]["version"].as_u64().expect("a version");
    ok(admin.call("activate_rules", json!({"version": version})));
    version
}

/// The one event of type `kind` in `message`.
#[track_caller]
fn event<'a>(message: &'a Value, kind: &str) -> &'a Value {
    let found = events_of(message, kind);
    assert_eq!(found.len(), 1, "one {kind} event expected: {message}");
    found[0]
}

fn types(message: &Value) -> Vec<&str> {
    message["events"].as_array().expect("events").iter().map(|event| event["type"].as_str().expect("a type")).collect()
}

/// The next account push on `ws` that carries a `cross_border_paid` of `payment`.
async fn paid_push(ws: &mut Ws, payment: &Value) -> Value {
    ws.next_matching(|m| {
        m["channel"] == "account" && events_of(m, "cross_border_paid").iter().any(|e| e["payment"] == *payment)
    })
    .await
}

/// `{"leg", "market", "side", "qty", "input", …}` as a reply's route shows one leg.
fn leg(index: u64, market: &str, side: &str, qty: &str, input: (&str, &str), output: (&str, &str)) -> Value {
    json!({
        "leg": index, "market": market, "side": side, "qty": qty,
        "input": input.0, "input_asset": input.1, "output": output.0, "output_asset": output.1,
    })
}

/// Panics unless `actual` has every field of `expected` with the same value.
#[track_caller]
fn assert_has(actual: &Value, expected: &Value) {
    for (field, value) in expected.as_object().expect("an object") {
        assert_eq!(&actual[field], value, "{field} of {actual}");
    }
}

// ---------------------------------------------------------------------------------
// Quote, execute, pushes

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn quotes_price_one_and_two_hop_routes_and_execute_exactly_with_pushes_to_both_parties() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut world = World::open(&dir).await;
    let (payer, payee) = (world.payer, world.payee);
    let mut payer_http = world.server.http(Some(world.payer_key.clone()));
    let mut payer_ws = world.listener(&world.payer_key).await;
    let mut payee_ws = world.listener(&world.payee_key).await;

    // One hop, EUR→USD: 10 lots × 100 EUR × 1.2003 = 1,200.30 USD; the taker fee is
    // 2 bps of it, 0.24006 → 0.24; the payee gets 1,200.06 USD.
    let one = ok(payer_http
        .call("quote_payment", json!({"by": payer, "payee": payee, "from": "EUR", "to": "USD", "send": "1000.00"})));
    let quote_one = &one["result"];
    assert_has(
        quote_one,
        &json!({
            "payer": payer, "payee": payee, "from": "EUR", "to": "USD",
            "send": "1000.00", "receive": "1200.06", "rate": "1.20006", "runners_up": [],
        }),
    );
    assert_eq!(quote_one["route"].as_array().expect("a route").len(), 1, "{one}");
    assert_has(&quote_one["route"][0], &leg(0, "EUR-USD", "sell", "1000", ("1000.00", "EUR"), ("1200.06", "USD")));
    assert_has(&quote_one["route"][0], &json!({"taker_fee": "0.24", "fee_asset": "USD", "remainder": "0.00"}));
    let expires_at = quote_one["expires_at"].as_str().expect("an expiry");
    assert!(expires_at.ends_with('Z') && expires_at > one["time"].as_str().unwrap(), "{one}");
    assert_eq!(types(&one), ["quote_leg", "quoted"], "a quote moves nothing: {one}");
    assert_eq!(event(&one, "quoted")["quote"], quote_one["quote"]);

    // Two hops, EUR→JPY: leg 0 as above gives 1,200.06 USD; leg 1 sells the 12 whole
    // lots (1,200 USD) at 150 = 180,000 JPY less 36 (2 bps): 179,964 JPY; the 0.06 USD
    // leg 1 cannot use is the house's. The direct market would give 10 lots × 100 ×
    // 160 = 160,000 less 32 = 159,968 JPY: the runner-up.
    let two = ok(payer_http
        .call("quote_payment", json!({"by": payer, "payee": payee, "from": "EUR", "to": "JPY", "send": "1000.00"})));
    let quote_two = &two["result"];
    assert_has(quote_two, &json!({"send": "1000.00", "receive": "179964", "rate": "179.964"}));
    assert_has(&quote_two["route"][0], &leg(0, "EUR-USD", "sell", "1000", ("1000.00", "EUR"), ("1200.06", "USD")));
    assert_has(&quote_two["route"][0], &json!({"taker_fee": "0.24", "fee_asset": "USD", "remainder": "0.06"}));
    assert_has(&quote_two["route"][1], &leg(1, "USD-JPY", "sell", "1200", ("1200.00", "USD"), ("179964", "JPY")));
    assert_has(&quote_two["route"][1], &json!({"taker_fee": "36", "fee_asset": "JPY", "remainder": "0"}));
    assert_eq!(
        quote_two["runners_up"],
        json!([{"rank": 1, "route": ["EUR-JPY"], "send": "1000.00", "receive": "159968", "rate": "159.968"}])
    );
    assert_eq!(event(&two, "quoted")["route"], json!(["EUR-USD", "USD-JPY"]));
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "10000.00", "0.00", "quotes move nothing");

    // Executed over HTTP: exactly the quoted amounts move, and both parties' sessions
    // are pushed the payment.
    let execute = json!({"by": payer, "quote": quote_two["quote"], "key": "invoice-77"});
    let paid = ok(payer_http.call("execute_quote", execute.clone()));
    let payment = paid["result"]["payment"].clone();
    assert_has(
        &paid["result"],
        &json!({
            "quote": quote_two["quote"], "send": "1000.00", "receive": "179964", "rate": "179.964", "surplus": "0.00",
        }),
    );
    assert_eq!(paid["result"]["route"].as_array().map(Vec::len), Some(2), "two legs, as quoted: {paid}");
    for (index, quoted) in quote_two["route"].as_array().unwrap().iter().enumerate() {
        let executed = &paid["result"]["route"][index];
        assert!(executed["order_id"].as_u64().is_some(), "each leg is a taker order: {paid}");
        let mut without_order = executed.clone();
        without_order.as_object_mut().unwrap().remove("order_id");
        assert_eq!(&without_order, quoted, "execution on unchanged books is the quote, leg by leg");
    }
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "9000.00", "0.00", "the payer sent 1,000.00 EUR");
    assert_balance(balance(&mut world.admin, payer, "USD").await, "0.00", "0.00", "USD passed through");
    assert_balance(balance(&mut world.admin, payee, "JPY").await, "179964", "0", "the payee got 179,964 JPY");

    let to_payee = paid_push(&mut payee_ws, &payment).await;
    assert_eq!(
        types(&to_payee),
        ["cross_border_paid", "balance"],
        "the payee sees the payment, not the legs: {to_payee}"
    );
    assert_has(
        event(&to_payee, "cross_border_paid"),
        &json!({
            "payer": payer, "payee": payee, "from": "EUR", "to": "JPY",
            "send": "1000.00", "receive": "179964", "route": ["EUR-USD", "USD-JPY"],
        }),
    );
    assert_has(event(&to_payee, "balance"), &json!({"account": payee, "asset": "JPY", "available": "179964"}));
    let to_payer = paid_push(&mut payer_ws, &payment).await;
    assert_eq!(events_of(&to_payer, "cross_border_leg").len(), 2, "{to_payer}");
    assert_eq!(events_of(&to_payer, "fill").len(), 2, "the payer's taker fills: {to_payer}");
    assert!(events_of(&to_payer, "trade").is_empty(), "a client never sees the whole trade: {to_payer}");
    let balances = events_of(&to_payer, "balance");
    assert!(!balances.is_empty(), "the payer's balances moved: {to_payer}");
    for balance_event in balances {
        assert_eq!(balance_event["account"], payer, "only the payer's own balances: {to_payer}");
    }

    // A retry with the same key replays; another key finds the quote used.
    let again = ok(payer_http.call("execute_quote", execute));
    assert_eq!((again["replayed"].clone(), again["result"]["payment"].clone()), (json!(true), payment.clone()));
    let used = payer_http.call("execute_quote", json!({"by": payer, "quote": quote_two["quote"], "key": "invoice-78"}));
    rejected(&used, "quote_used");
    assert_balance(balance(&mut world.admin, payee, "JPY").await, "179964", "0", "the retries moved nothing");

    // Executed over the payer's WebSocket: the reply comes there, the push to the
    // payee. 4,000 EUR are still bid at 1.2003, so the one-hop quote still holds.
    let reply = ok(payer_ws
        .call("execute_quote", json!({"by": payer, "quote": quote_one["quote"], "key": "invoice-79"}))
        .await);
    assert_has(&reply["result"], &json!({"send": "1000.00", "receive": "1200.06"}));
    let to_payee = paid_push(&mut payee_ws, &reply["result"]["payment"]).await;
    assert_has(event(&to_payee, "balance"), &json!({"asset": "USD", "available": "1200.06"}));
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "8000.00", "0.00", "after both payments");
    assert_balance(balance(&mut world.admin, payee, "USD").await, "1200.06", "0.00", "the payee's USD");
}

// ---------------------------------------------------------------------------------
// Expiry, a moved rate, direct payments

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn expired_quotes_and_moved_rates_move_nothing_and_direct_payments_respect_their_limit() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut world = World::open(&dir).await;
    let (payer, payee) = (world.payer, world.payee);
    let mut payer_http = world.server.http(Some(world.payer_key.clone()));

    // A quote that lives 200 ms, executed after it: expired (by command time).
    let short = json!({"by": payer, "payee": payee, "from": "EUR", "to": "JPY", "receive": "150000", "ttl_ms": 200});
    let quote = ok(payer_http.call("quote_payment", short))["result"]["quote"].clone();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = world.money();
    rejected(&payer_http.call("execute_quote", json!({"by": payer, "quote": quote, "key": "late"})), "quote_expired");
    assert_eq!(payer_http.last_status, 422);
    assert_eq!(world.money(), before, "an expired quote moves nothing");

    // Quoted at 179,964 JPY for 1,000.00 EUR (see the first test); then a taker sells
    // 5,000 EUR into the 1.2003 bid and takes all of it.
    let quoted = ok(payer_http
        .call("quote_payment", json!({"by": payer, "payee": payee, "from": "EUR", "to": "JPY", "send": "1000.00"})));
    assert_eq!(quoted["result"]["receive"], "179964");
    let sell = json!({
        "by": world.taker, "market": "EUR-USD", "side": "sell", "price": "1.2003", "qty": "5000",
        "time_in_force": "ioc",
    });
    let taken = ok(world.admin.call("place_order", sell));
    assert_eq!(events_of(&taken, "trade").len(), 1, "{taken}");

    // Now 179,964 JPY needs 12 lots of USD (1,200.00), and at 1.1003 ten lots of EUR
    // give 1,100.30 − 0.22 = 1,100.08 USD, too little: eleven give 1,210.33 − 0.24.
    // So 1,100.00 EUR where the quote said 1,000.00: 100,000 ppm worse.
    let before = world.money();
    let execute = json!({"by": payer, "quote": quoted["result"]["quote"], "key": "moved"});
    let moved = payer_http.call("execute_quote", execute);
    rejected(&moved, "rate_moved");
    assert_eq!(
        moved["error"]["detail"],
        json!({"asset": "EUR", "limit": "1000.00", "achievable": "1100.00", "moved_ppm": 100_000})
    );
    let message = moved["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1000.00 EUR") && message.contains("1100.00 EUR") && message.contains("100000 ppm"),
        "{message}"
    );
    assert!(moved["seq"].as_u64().is_some(), "the engine decided it: {moved}");
    assert_eq!(world.money(), before, "a moved rate moves nothing (balances and books)");

    // Directly, with a limit the books no longer meet: the best route now gives 10 lots
    // at 1.1003 = 1,100.08 USD, 11 lots of USD at 150 = 165,000 − 33 = 164,967 JPY
    // (the direct market: 159,968). 170,000 is 5,033 short: 29,605.9 → 29,606 ppm.
    let eur_to_jpy = |extra: Value| {
        let mut params = json!({"by": payer, "payee": payee, "from": "EUR", "to": "JPY"});
        params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        params
    };
    let strict = eur_to_jpy(json!({"send": "1000.00", "min_receive": "170000", "key": "strict"}));
    let refused = payer_http.call("pay_cross_border", strict);
    rejected(&refused, "rate_moved");
    assert_eq!(
        refused["error"]["detail"],
        json!({"asset": "JPY", "limit": "170000", "achievable": "164967", "moved_ppm": 29_606})
    );
    assert_eq!(world.money(), before, "a refused payment moves nothing");

    // Within the limit: paid, exactly.
    let within = eur_to_jpy(json!({"send": "1000.00", "min_receive": "164900", "key": "within"}));
    let paid = ok(payer_http.call("pay_cross_border", within.clone()));
    assert_has(&paid["result"], &json!({"quote": null, "send": "1000.00", "receive": "164967", "rate": "164.967"}));
    assert_eq!(paid["result"].get("quote"), Some(&Value::Null), "a direct payment names no quote");
    assert_has(&paid["result"]["route"][0], &leg(0, "EUR-USD", "sell", "1000", ("1000.00", "EUR"), ("1100.08", "USD")));
    assert_has(&paid["result"]["route"][0], &json!({"taker_fee": "0.22", "remainder": "0.08"}));
    assert_has(&paid["result"]["route"][1], &leg(1, "USD-JPY", "sell", "1100", ("1100.00", "USD"), ("164967", "JPY")));
    assert_has(&paid["result"]["route"][1], &json!({"taker_fee": "33", "remainder": "0"}));
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "9000.00", "0.00", "the payer sent 1,000.00 EUR");
    assert_balance(balance(&mut world.admin, payee, "JPY").await, "164967", "0", "the payee got 164,967 JPY");

    // The retry replays the payment and moves nothing.
    let after = world.money();
    let again = ok(payer_http.call("pay_cross_border", within));
    assert_eq!(
        (again["replayed"].clone(), again["result"]["payment"].clone()),
        (json!(true), paid["result"]["payment"].clone())
    );
    assert_eq!(world.money(), after, "a replay moves nothing");

    // A receive amount under a send limit, on the direct market only: 50,000 JPY needs
    // 4 lots at 160 (3 give 48,000 − 9), so 400.00 EUR: above 350.00 (142,858 ppm),
    // within 400.00. The payee gets exactly 50,000; 64,000 − 12 − 50,000 = 13,988 JPY
    // of the last lot is the house's remainder.
    let capped = eur_to_jpy(json!({"receive": "50000", "max_send": "350.00", "max_hops": 1, "key": "capped"}));
    let refused = payer_http.call("pay_cross_border", capped);
    assert_eq!(
        refused["error"]["detail"],
        json!({"asset": "EUR", "limit": "350.00", "achievable": "400.00", "moved_ppm": 142_858})
    );
    let capped = eur_to_jpy(json!({"receive": "50000", "max_send": "400.00", "max_hops": 1, "key": "capped-2"}));
    let paid = ok(payer_http.call("pay_cross_border", capped));
    assert_has(&paid["result"], &json!({"send": "400.00", "receive": "50000"}));
    assert_has(&paid["result"]["route"][0], &leg(0, "EUR-JPY", "sell", "400", ("400.00", "EUR"), ("63988", "JPY")));
    assert_has(&paid["result"]["route"][0], &json!({"taker_fee": "12", "remainder": "13988"}));
    assert_balance(balance(&mut world.admin, payee, "JPY").await, "214967", "0", "164,967 + 50,000 JPY");
}

// ---------------------------------------------------------------------------------
// Bad input

/// Refusals over `rpc` (the payer's key): each names what is wrong, and the session
/// (or client) goes on to quote successfully.
async fn bad_input_scenario(rpc: &mut impl Rpc, payer: u64, payee: u64) {
    let transport = rpc.transport();
    let quote = |extra: Value| {
        let mut params = json!({"by": payer, "payee": payee, "from": "EUR", "to": "JPY"});
        params.as_object_mut().expect("an object").extend(extra.as_object().expect("an object").clone());
        params
    };
    let refused = |reply: &Value, code: &str, mentions: &str| {
        rejected(reply, code);
        let message = reply["error"]["message"].as_str().expect("a message");
        assert!(message.contains(mentions), "{transport}: {code} should mention {mentions:?}: {reply}");
        assert!(
            reply.get("seq").is_none() || code == "unknown_quote",
            "{transport}: refused before the engine: {reply}"
        );
    };
    let reply = rpc.call("quote_payment", quote(json!({"from": "XYZ", "send": "10.00"}))).await;
    refused(&reply, "unknown_asset", "XYZ");
    let reply = rpc.call("quote_payment", quote(json!({"send": "10.00", "receive": "1000"}))).await;
    refused(&reply, "invalid_params", "not both");
    let reply = rpc.call("quote_payment", quote(json!({"send": "-5.00"}))).await;
    refused(&reply, "invalid_params", "send: amount \"-5.00\" is negative");
    let reply = rpc.call("quote_payment", quote(json!({"receive": "10.5"}))).await;
    refused(&reply, "invalid_params", "receive");
    let reply = rpc.call("quote_payment", quote(json!({"send": 10}))).await;
    refused(&reply, "invalid_params", "not JSON numbers");
    let reply = rpc.call("quote_payment", quote(json!({"to": "EUR", "send": "10.00"}))).await;
    refused(&reply, "invalid_params", "nothing to convert");
    let reply = rpc.call("quote_payment", quote(json!({"send": "10.00", "max_hops": 0}))).await;
    refused(&reply, "invalid_params", "max_hops");
    let reply = rpc.call("quote_payment", quote(json!({"send": "10.00", "ttl_ms": 0}))).await;
    refused(&reply, "invalid_params", "ttl_ms");
    let reply = rpc.call("quote_payment", quote(json!({"send": "10.00", "amount": "10.00"}))).await;
    refused(&reply, "invalid_params", "unknown field `amount`");
    let reply = rpc.call("pay_cross_border", quote(json!({"send": "10.00", "key": "k"}))).await;
    refused(&reply, "invalid_params", "min_receive");
    let reply = rpc.call("execute_quote", json!({"by": payer, "quote": "first", "key": "k"})).await;
    refused(&reply, "invalid_params", "execute_quote");
    // Authorization: the payer's key acts for the payer only.
    let reply = rpc
        .call("quote_payment", json!({"by": payee, "payee": payer, "from": "EUR", "to": "JPY", "send": "1.00"}))
        .await;
    refused(&reply, "forbidden", "account");
    // The engine's refusals: an unknown quote; no depth for the amount.
    let reply = rpc.call("execute_quote", json!({"by": payer, "quote": 999, "key": "k"})).await;
    refused(&reply, "unknown_quote", "quote");
    let reply = rpc.call("quote_payment", quote(json!({"send": "1000000.00"}))).await;
    rejected(&reply, "insufficient_liquidity");
    // And on it goes.
    let reply = ok(rpc.call("quote_payment", quote(json!({"send": "1000.00"}))).await);
    assert_eq!(reply["result"]["receive"], "179964", "{transport}: {reply}");
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_the_session_goes_on() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut world = World::open(&dir).await;
    let (payer, payee) = (world.payer, world.payee);
    let mut http = world.server.http(Some(world.payer_key.clone()));
    bad_input_scenario(&mut http, payer, payee).await;
    let mut ws = Ws::login(&world.server, &world.payer_key).await;
    bad_input_scenario(&mut ws, payer, payee).await;
    // A read-only key may not quote even for its own account.
    let mut payee_http = world.server.http(Some(world.payee_key.clone()));
    let reply = payee_http
        .call("quote_payment", json!({"by": payee, "payee": payer, "from": "EUR", "to": "JPY", "send": "1.00"}));
    rejected(&reply, "forbidden");
    assert_eq!(payee_http.last_status, 403);
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "10000.00", "0.00", "nothing moved");
}

// ---------------------------------------------------------------------------------
// Review holds

/// Tier 0 (every account here) may send at most 3,000.00 EUR in one payment; a payment
/// above 1,500.00 EUR waits for an operator.
fn rules() -> Value {
    json!({"tiers": {"0": {"max_single_payment": {"EUR": "3000.00"}, "review_threshold": {"EUR": "1500.00"}}}})
}

/// The hold of a reply that held a payment for review.
#[track_caller]
fn hold_of(reply: &Value) -> u64 {
    reply["result"]["held_for_review"]["hold"].as_u64().unwrap_or_else(|| panic!("a hold expected: {reply}"))
}

/// The next account push on `ws` that carries an event of type `kind`.
async fn push_with(ws: &mut Ws, kind: &str) -> Value {
    ws.next_matching(|m| m["channel"] == "account" && !events_of(m, kind).is_empty()).await
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn a_held_payment_is_made_on_approval_and_a_held_quote_rejected_stays_used() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut world = World::open(&dir).await;
    let (payer, payee, maker) = (world.payer, world.payee, world.maker);
    let version = publish_and_activate_rules(&mut world.admin, &rules());
    let mut payer_http = world.server.http(Some(world.payer_key.clone()));
    let mut payer_ws = world.listener(&world.payer_key).await;
    let mut payee_ws = world.listener(&world.payee_key).await;

    // 300,000 JPY for at most 2,500.00 EUR. Through USD: 20 lots of USD at 150 give
    // 300,000 − 60 = 299,940 JPY, too little; 21 lots (2,100 USD) give 315,000 − 63 =
    // 314,937 JPY, 14,937 of it the house's remainder. 2,100.00 USD from EUR at 1.2003:
    // 17 lots give 2,040.51 − 0.40, too little; 18 give 2,160.54 − 0.43 = 2,160.11 USD.
    // So 1,800.00 EUR (directly, EUR-JPY, 19 lots: 1,900.00). That is above 1,500.00:
    // held, and what is held is the most the approval may send, the 2,500.00 limit.
    let pay = json!({
        "by": payer, "payee": payee, "from": "EUR", "to": "JPY", "receive": "300000", "max_send": "2500.00",
        "key": "big-1",
    });
    let before = world.money();
    let held = ok(payer_http.call("pay_cross_border", pay.clone()));
    let hold = hold_of(&held);
    let shown = json!({
        "hold": hold, "kind": "pay_cross_border", "payer": payer, "payee": payee, "asset": "EUR",
        "amount": "2500.00", "rule": "review_threshold", "version": version,
    });
    assert_eq!(held["result"], json!({"held_for_review": shown}), "a hold, not a payment: {held}");
    assert_eq!(types(&held), ["held_for_review", "balance"], "{held}");
    assert_has(event(&held, "held_for_review"), &shown);
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "7500.00", "2500.00", "2,500.00 EUR held");
    assert_eq!(balance(&mut world.admin, payee, "JPY").await, None, "the payee has nothing yet");
    let after = world.money();
    for unchanged in ["EUR-USD".to_owned(), "USD-JPY".into(), "EUR-JPY".into(), format!("account {maker}")] {
        assert_eq!(after[&unchanged], before[&unchanged], "{unchanged}: nothing traded while held");
    }
    // Both parties hear of the hold; the payee sees no balance of the payer's.
    let to_payee = push_with(&mut payee_ws, "held_for_review").await;
    assert_eq!(types(&to_payee), ["held_for_review"], "{to_payee}");
    assert_has(event(&to_payee, "held_for_review"), &shown);
    let to_payer = push_with(&mut payer_ws, "held_for_review").await;
    assert_eq!(types(&to_payer), ["held_for_review", "balance"], "{to_payer}");

    // A retry with the same key says held, by its hold; the payer may not decide.
    let again = ok(payer_http.call("pay_cross_border", pay));
    assert_eq!(
        (again["replayed"].clone(), again["result"].clone()),
        (json!(true), json!({"held_for_review": {"hold": hold}}))
    );
    rejected(&payer_http.call("review_decision", json!({"hold": hold, "approve": true})), "forbidden");
    assert_eq!(world.money(), after, "neither moved anything");

    // Approved on unchanged books: the payment planned above, from the hold; the
    // 700.00 EUR it did not need go back to the payer.
    let approved = ok(world.admin.call("review_decision", json!({"hold": hold, "approve": true})));
    assert_eq!(types(&approved)[0], "review_approved", "{approved}");
    let payment = approved["result"]["payment"].clone();
    assert!(payment.as_u64().is_some(), "{approved}");
    assert_eq!(approved["result"].get("quote"), Some(&Value::Null), "a direct payment names no quote");
    assert_has(
        &approved["result"],
        &json!({
            "quote": null, "payer": payer, "payee": payee, "from": "EUR", "to": "JPY",
            "send": "1800.00", "receive": "300000", "surplus": "0.00",
        }),
    );
    assert_has(
        &approved["result"]["route"][0],
        &leg(0, "EUR-USD", "sell", "1800", ("1800.00", "EUR"), ("2160.11", "USD")),
    );
    assert_has(&approved["result"]["route"][0], &json!({"taker_fee": "0.43", "remainder": "60.11"}));
    assert_has(
        &approved["result"]["route"][1],
        &leg(1, "USD-JPY", "sell", "2100", ("2100.00", "USD"), ("314937", "JPY")),
    );
    assert_has(&approved["result"]["route"][1], &json!({"taker_fee": "63", "remainder": "14937"}));
    assert_has(event(&approved, "review_approved"), &json!({"hold": hold, "asset": "EUR", "amount": "2500.00"}));
    assert_eq!(event(&approved, "cross_border_paid")["payment"], payment);
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "8200.00", "0.00", "1,800.00 EUR sent, 700.00 back");
    assert_balance(balance(&mut world.admin, payee, "JPY").await, "300000", "0", "the payee got 300,000 JPY");

    let to_payee = paid_push(&mut payee_ws, &payment).await;
    assert_eq!(types(&to_payee), ["review_approved", "cross_border_paid", "balance"], "{to_payee}");
    assert_has(event(&to_payee, "balance"), &json!({"account": payee, "asset": "JPY", "available": "300000"}));
    let to_payer = paid_push(&mut payer_ws, &payment).await;
    assert_eq!(types(&to_payer)[0], "review_approved", "{to_payer}");
    assert_eq!(events_of(&to_payer, "cross_border_leg").len(), 2, "{to_payer}");
    assert_has(
        events_of(&to_payer, "balance").iter().find(|b| b["asset"] == "EUR").expect("the payer's EUR"),
        &json!({"account": payer, "available": "8200.00", "held": "0.00"}),
    );

    // A quote executed above the threshold: held (its send, 2,000.00 EUR), the quote
    // used at once. 20 lots at 1.2003 (3,200 EUR still bid there) give 2,400.60 − 0.48.
    let quoted = ok(payer_http
        .call("quote_payment", json!({"by": payer, "payee": payee, "from": "EUR", "to": "USD", "send": "2000.00"})));
    assert_eq!(quoted["result"]["receive"], "2400.12", "{quoted}");
    let quote = quoted["result"]["quote"].clone();
    let execute = json!({"by": payer, "quote": quote, "key": "q-1"});
    let held = ok(payer_http.call("execute_quote", execute.clone()));
    let hold = hold_of(&held);
    assert_has(
        &held["result"]["held_for_review"],
        &json!({"kind": "execute_quote", "payee": payee, "asset": "EUR", "amount": "2000.00", "rule": "review_threshold"}),
    );
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "6200.00", "2000.00", "the quote's send held");
    rejected(&payer_http.call("execute_quote", json!({"by": payer, "quote": quote, "key": "q-2"})), "quote_used");

    // Rejected: the funds come back, the quote stays used, the decision is final.
    let refused = ok(world.admin.call("review_decision", json!({"hold": hold, "approve": false})));
    assert_eq!(types(&refused), ["review_rejected", "balance"], "{refused}");
    assert_has(event(&refused, "review_rejected"), &json!({"hold": hold, "payee": payee, "amount": "2000.00"}));
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "8200.00", "0.00", "the 2,000.00 EUR came back");
    let to_payer = push_with(&mut payer_ws, "review_rejected").await;
    assert_has(event(&to_payer, "balance"), &json!({"asset": "EUR", "available": "8200.00", "held": "0.00"}));
    let after = world.money();
    rejected(&payer_http.call("execute_quote", json!({"by": payer, "quote": quote, "key": "q-3"})), "quote_used");
    let replayed = ok(payer_http.call("execute_quote", execute));
    assert_eq!(replayed["result"], json!({"held_for_review": {"hold": hold}}), "{replayed}");
    rejected(&world.admin.call("review_decision", json!({"hold": hold, "approve": true})), "hold_decided");
    assert_eq!(world.money(), after, "nothing moved after the rejection");
    assert_eq!(balance(&mut world.admin, payee, "USD").await, None, "the payee got no USD");
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn a_rule_refuses_a_cross_border_payment_and_an_approval_waits_for_the_books() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut world = World::open(&dir).await;
    let (payer, payee) = (world.payer, world.payee);
    let version = publish_and_activate_rules(&mut world.admin, &rules());
    let mut payer_http = world.server.http(Some(world.payer_key.clone()));

    // 4,000.00 EUR to JPY: routed (through USD, 719,856 JPY), then refused by the rule
    // on what the payer sends, above the 3,000.00 EUR single payment. Nothing moves.
    let before = world.money();
    let pay = json!({
        "by": payer, "payee": payee, "from": "EUR", "to": "JPY", "send": "4000.00", "min_receive": "700000",
        "key": "too-big",
    });
    let refused = payer_http.call("pay_cross_border", pay);
    rejected(&refused, "rule_violation");
    let message = refused["error"]["message"].as_str().expect("a message");
    assert!(message.contains("max_single_payment") && message.contains(&format!("version {version}")), "{message}");
    assert_eq!(payer_http.last_status, 422, "{refused}");
    assert_eq!(world.money(), before, "a refused payment moves nothing");

    // 2,000.00 EUR to USD for at least 2,400.00: 20 lots at 1.2003 give 2,400.60 − 0.48
    // = 2,400.12 USD. Above the threshold: held, under min_receive what the route needs
    // now (2,000.00 EUR).
    let pay = json!({
        "by": payer, "payee": payee, "from": "EUR", "to": "USD", "send": "2000.00", "min_receive": "2400.00",
        "key": "held",
    });
    let held = ok(payer_http.call("pay_cross_border", pay));
    let hold = hold_of(&held);
    assert_eq!(held["result"]["held_for_review"]["amount"], "2000.00", "{held}");

    // Then a taker sells 5,000 EUR into the 1.2003 bid. At 1.1003, 20 lots give
    // 2,200.60 − 0.44 = 2,200.16 USD: 199.84 short of 2,400.00, 83,266.7 → 83,267 ppm.
    // The approval is refused and changes nothing: the hold waits.
    let sell = json!({
        "by": world.taker, "market": "EUR-USD", "side": "sell", "price": "1.2003", "qty": "5000",
        "time_in_force": "ioc",
    });
    ok(world.admin.call("place_order", sell));
    let waiting = world.money();
    let approve = json!({"hold": hold, "approve": true});
    let moved = world.admin.call("review_decision", approve.clone());
    rejected(&moved, "rate_moved");
    assert_eq!(
        moved["error"]["detail"],
        json!({"asset": "USD", "limit": "2400.00", "achievable": "2200.16", "moved_ppm": 83_267})
    );
    assert_eq!(world.money(), waiting, "a refused approval moves nothing");
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "8000.00", "2000.00", "still held");

    // The maker bids at 1.2003 again: the same approval goes through now, once.
    let bid = json!({"by": world.maker, "market": "EUR-USD", "side": "buy", "price": "1.2003", "qty": "5000"});
    ok(world.admin.call("place_order", bid));
    let approved = ok(world.admin.call("review_decision", approve.clone()));
    assert_has(&approved["result"], &json!({"send": "2000.00", "receive": "2400.12", "rate": "1.20006"}));
    assert_balance(balance(&mut world.admin, payer, "EUR").await, "8000.00", "0.00", "2,000.00 EUR sent");
    assert_balance(balance(&mut world.admin, payee, "USD").await, "2400.12", "0.00", "the payee's USD");
    let again = ok(world.admin.call("review_decision", approve));
    assert_eq!(
        (again["replayed"].clone(), again["result"]["payment"].clone()),
        (json!(true), approved["result"]["payment"].clone())
    );
    rejected(&world.admin.call("review_decision", json!({"hold": hold, "approve": false})), "hold_decided");
    assert_balance(balance(&mut world.admin, payee, "USD").await, "2400.12", "0.00", "paid once");
}

/// `list_reviews` over `rpc` (an admin's session): the filter and the limit, then bad
/// input, each a clear error naming what was wrong, and the session goes on.
async fn list_reviews_scenario(rpc: &mut impl Rpc, holds: &[Value], payee: u64, taker: u64) {
    let transport = rpc.transport();
    let all = ok(rpc.call("list_reviews", json!({})).await);
    assert_eq!(all["result"]["reviews"], json!(holds), "{transport}: oldest first: {all}");
    assert_eq!(all["result"]["pending"], holds.len(), "{transport}: {all}");
    let of_payee = ok(rpc.call("list_reviews", json!({"account": payee})).await);
    assert_eq!(of_payee["result"]["reviews"], json!(holds[..2]), "{transport}: as payee: {of_payee}");
    let of_taker = ok(rpc.call("list_reviews", json!({"account": taker.to_string()})).await);
    assert_eq!(of_taker["result"]["reviews"], json!(holds[2..]), "{transport}: as payer: {of_taker}");
    let first = ok(rpc.call("list_reviews", json!({"limit": 1})).await);
    assert_eq!(first["result"]["reviews"], json!(holds[..1]), "{transport}: {first}");
    assert_eq!(first["result"]["pending"], holds.len(), "{transport}: the count is of all that match: {first}");

    for (params, field) in [
        (json!({"account": "abc"}), "account"),
        (json!({"account": true}), "account"),
        (json!({"account": -3}), "account"),
        (json!({"account": 1.5}), "account"),
        (json!({"limit": "ten"}), "limit"),
        (json!({"limit": [5]}), "limit"),
        (json!({"acount": 1}), "unknown field `acount`"),
    ] {
        let reply = rpc.call("list_reviews", params.clone()).await;
        rejected(&reply, "invalid_params");
        let message = reply["error"]["message"].as_str().expect("a message");
        assert!(message.starts_with("list_reviews: ") && message.contains(field), "{transport}: {params}: {message}");
    }
    rejected(&rpc.call("list_reviews", json!({"account": 999})).await, "unknown_account");
    let again = ok(rpc.call("list_reviews", json!({})).await);
    assert_eq!(again["result"]["reviews"], json!(holds), "{transport}: still serving");
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn operators_list_the_pending_holds_over_http_and_websocket_and_no_one_else_may() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut world = World::open(&dir).await;
    let (payer, payee, maker, taker) = (world.payer, world.payee, world.maker, world.taker);
    let version = publish_and_activate_rules(&mut world.admin, &rules());
    let mut payer_http = world.server.http(Some(world.payer_key.clone()));
    let nothing = ok(world.admin.call("list_reviews", json!({})));
    assert_eq!((nothing["result"]["reviews"].clone(), nothing["result"]["pending"].clone()), (json!([]), json!(0)));

    // Three holds: a transfer and a cross-border payment of the payer to the payee
    // (the one of `a_held_payment_is_made_on_approval…`: 2,500.00 EUR held), and a
    // transfer of the taker's to the maker.
    let transfer = json!({"by": payer, "to": payee, "asset": "EUR", "amount": "1600.00"});
    let first = ok(payer_http.call("transfer", transfer));
    let pay =
        json!({"by": payer, "payee": payee, "from": "EUR", "to": "JPY", "receive": "300000", "max_send": "2500.00"});
    let second = ok(payer_http.call("pay_cross_border", pay));
    let third =
        ok(world.admin.call("transfer", json!({"by": taker, "to": maker, "asset": "EUR", "amount": "1500.01"})));
    let listed = |reply: &Value, kind: &str, (from, to): (u64, u64), amount: &str| {
        json!({
            "hold": hold_of(reply), "kind": kind, "payer": from, "payee": to, "asset": "EUR", "amount": amount,
            "rule": "review_threshold", "version": version, "created_at": reply["time"],
        })
    };
    let holds = [
        listed(&first, "transfer", (payer, payee), "1600.00"),
        listed(&second, "pay_cross_border", (payer, payee), "2500.00"),
        listed(&third, "transfer", (taker, maker), "1500.01"),
    ];
    assert!(holds.iter().all(|hold| hold["created_at"].as_str().is_some_and(|t| t.ends_with('Z'))), "{holds:?}");

    list_reviews_scenario(&mut world.admin, &holds, payee, taker).await;
    let mut admin_ws = Ws::login(&world.server, &world.server.admin()).await;
    list_reviews_scenario(&mut admin_ws, &holds, payee, taker).await;

    // Only an operator: the payer's key (read, pay) and the payee's (read) are refused
    // on either transport, an unsigned request needs a key.
    rejected(&payer_http.call("list_reviews", json!({})), "forbidden");
    assert_eq!(payer_http.last_status, 403);
    rejected(&payer_http.call("list_reviews", json!({"account": payer})), "forbidden");
    let mut payee_ws = Ws::login(&world.server, &world.payee_key).await;
    rejected(&payee_ws.call("list_reviews", json!({"account": payee})).await, "forbidden");
    rejected(&world.server.http(None).call("list_reviews", json!({})), "missing_auth");

    // Decided holds leave the list, on both transports; a refused approval would not.
    ok(world.admin.call("review_decision", json!({"hold": hold_of(&first), "approve": true})));
    ok(admin_ws.call("review_decision", json!({"hold": hold_of(&third), "approve": false})).await);
    let left = ok(world.admin.call("list_reviews", json!({})));
    assert_eq!(left["result"]["reviews"], json!([holds[1]]), "{left}");
    let left = ok(admin_ws.call("list_reviews", json!({"account": taker})).await);
    assert_eq!((left["result"]["reviews"].clone(), left["result"]["pending"].clone()), (json!([]), json!(0)));
    assert!(left["result"]["as_of_seq"].as_u64().is_some_and(|seq| seq > 0), "{left}");
}

// ---------------------------------------------------------------------------------
// One key on both sides of a leg

/// A key for both the payer and the maker whose order a leg takes was shown only the
/// taker's fill: the maker's fill was in neither the reply (one fill per trade) nor a
/// push (the requesting session is not pushed its own command), so a client could not
/// account its order's fill (found by `bourse-load`, whose sessions pay from their
/// merchant account while their trading account rests orders).
#[tokio::test]
async fn a_key_on_both_sides_of_a_leg_sees_the_taker_fill_and_the_maker_fill() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut world = World::open(&dir).await;
    let (maker, payer, payee) = (world.maker, world.payer, world.payee);
    let both = create_key(&mut world.admin, &["read", "pay"], &[maker, payer]).await;
    let mut ws = world.listener(&both).await;
    // One hop, EUR→USD: 10 lots at 1.2003 from the maker's bid; the maker's fee is
    // 1 bp of 1,200.30 USD, 0.12003 → 0.12.
    let paid = ok(ws
        .call(
            "pay_cross_border",
            json!({"by": payer, "payee": payee, "from": "EUR", "to": "USD", "send": "1000.00", "min_receive": "1200.00", "max_hops": 1}),
        )
        .await);
    let fills = events_of(&paid, "fill");
    assert_eq!(fills.len(), 2, "{paid}");
    assert_has(
        fills[0],
        &json!({"liquidity": "taker", "account": payer, "side": "sell", "qty": "1000", "fee": "0.24"}),
    );
    assert_has(
        fills[1],
        &json!({"liquidity": "maker", "account": maker, "side": "buy", "price": "1.2003", "qty": "1000", "fee": "0.12", "remaining": "4000"}),
    );
}
