//! End-to-end tests of `bourse serve` over HTTP and WebSocket: the real binary on
//! 127.0.0.1, real clients (ureq, tokio-tungstenite), every command and query over
//! both transports, every push, market data, authorization failures, limits, and
//! malformed input followed by proof that the server still serves.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream as StdTcpStream;
use std::time::{Duration, Instant};

use bourse_gateway::auth::{self, Credentials};
use common::{
    Http, HttpReply, QUIET, Rpc, Server, WAIT, Ws, assert_balance, balance, config_with, counter, create_key, deposit,
    events_of, metric, ok, open_account, rejected,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

/// Checks that every command reply carries a `seq` above the previous one.
#[derive(Default)]
struct Seqs(u64);

impl Seqs {
    #[track_caller]
    fn next(&mut self, reply: &Value) {
        let seq = reply["seq"].as_u64().unwrap_or_else(|| panic!("a command reply carries seq: {reply}"));
        assert!(seq > self.0, "seq {seq} after {}: {reply}", self.0);
        assert!(
            reply["time"].as_str().is_some_and(|time| time.ends_with('Z')),
            "a command reply carries time: {reply}"
        );
        self.0 = seq;
    }
}

/// The one event of type `kind` in `reply`.
#[track_caller]
fn event<'a>(reply: &'a Value, kind: &str) -> &'a Value {
    let found = events_of(reply, kind);
    assert_eq!(found.len(), 1, "one {kind} event expected: {reply}");
    found[0]
}

// ---------------------------------------------------------------------------------
// Every command, over each transport.

/// Accounts, funding, transfers, authorizations, captures, voids, split payments,
/// refunds, freezes and idempotency, with the exact balances after every move.
async fn payments_scenario(rpc: &mut impl Rpc) {
    let transport = rpc.transport();
    let mut seqs = Seqs::default();
    let usd = |rpc_reply: Option<(String, String)>, available: &str, held: &str, what: &str| {
        assert_balance(rpc_reply, available, held, &format!("{transport}: {what}"));
    };

    let opened = ok(rpc.call("open_account", json!({"owner": 1})).await);
    seqs.next(&opened);
    let a = opened["result"]["account"].as_u64().expect("account id");
    assert_eq!(event(&opened, "account_opened")["owner"], 1);
    assert_eq!(event(&opened, "account_opened")["kyc_tier"], 0);
    let b = open_account(rpc, 2).await;
    let opened_c = ok(rpc.call("open_account", json!({"owner": "3", "kyc_tier": 2})).await);
    let c = opened_c["result"]["account"].as_u64().expect("account id");
    assert_eq!(event(&opened_c, "account_opened")["kyc_tier"], 2, "ids and tiers may be numeric strings");
    assert!(a != b && b != c && a != c);

    let kyc = ok(rpc.call("set_kyc_tier", json!({"account": a, "kyc_tier": 1})).await);
    seqs.next(&kyc);
    assert_eq!(event(&kyc, "kyc_tier_changed")["kyc_tier"], 1);
    let account = ok(rpc.call("balances", json!({"account": a})).await);
    assert_eq!(account["result"]["kyc_tier"], 1);
    assert_eq!(account["result"]["frozen"], false);
    assert_eq!(account["result"]["balances"], json!([]));

    let deposited = ok(rpc
        .call(
            "deposit",
            json!({"account": a, "asset": "USD", "amount": "1000.00", "reference": "wire-1", "key": "dep-1"}),
        )
        .await);
    seqs.next(&deposited);
    assert_eq!(event(&deposited, "deposited")["amount"], "1000.00");
    assert_eq!(event(&deposited, "deposited")["reference"], "wire-1");
    assert_eq!(event(&deposited, "balance")["available"], "1000.00");
    usd(balance(rpc, a, "USD").await, "1000.00", "0.00", "after the deposit");

    let withdrawn =
        ok(rpc.call("withdraw", json!({"account": a, "asset": "USD", "amount": "100.25", "reference": "out-1"})).await);
    seqs.next(&withdrawn);
    assert_eq!(event(&withdrawn, "withdrawn")["amount"], "100.25");
    usd(balance(rpc, a, "USD").await, "899.75", "0.00", "after the withdrawal");

    // A transfer, its replay, and the same key with other content.
    let transfer = json!({"by": a, "to": b, "asset": "USD", "amount": "12.50", "key": "t-1"});
    let moved = ok(rpc.call("transfer", transfer.clone()).await);
    seqs.next(&moved);
    let first_payment = moved["result"]["payment"].as_u64().expect("a payment id");
    let transferred = event(&moved, "transferred");
    assert_eq!(
        (&transferred["from"], &transferred["to"], &transferred["amount"]),
        (&json!(a), &json!(b), &json!("12.50"))
    );
    assert_eq!(events_of(&moved, "balance").len(), 2, "both balances: {moved}");
    usd(balance(rpc, a, "USD").await, "887.25", "0.00", "payer after the transfer");
    usd(balance(rpc, b, "USD").await, "12.50", "0.00", "payee after the transfer");
    let replayed = ok(rpc.call("transfer", transfer).await);
    seqs.next(&replayed);
    assert_eq!(replayed["replayed"], true, "same key, same content: {replayed}");
    assert_eq!(replayed["result"]["payment"], first_payment);
    assert_eq!(replayed["events"], json!([]), "a replay moves nothing: {replayed}");
    let conflict =
        rpc.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "12.51", "key": "t-1"})).await;
    seqs.next(&conflict);
    rejected(&conflict, "idempotency_conflict");
    usd(balance(rpc, a, "USD").await, "887.25", "0.00", "neither the replay nor the conflict moved money");

    let poor = rpc.call("transfer", json!({"by": b, "to": a, "asset": "USD", "amount": "1000.00"})).await;
    seqs.next(&poor);
    rejected(&poor, "insufficient_funds");
    rejected(
        &rpc.call("transfer", json!({"by": a, "to": 999, "asset": "USD", "amount": "1.00"})).await,
        "unknown_account",
    );
    rejected(&rpc.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "0"})).await, "invalid_amount");
    rejected(&rpc.call("transfer", json!({"by": a, "to": a, "asset": "USD", "amount": "1.00"})).await, "same_account");
    let precise = rpc.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "12.505"})).await;
    rejected(&precise, "invalid_params");
    assert!(precise.get("seq").is_none(), "refused before the engine: {precise}");

    // Authorize, capture part, capture the last part (releasing the rest).
    let authorized = ok(rpc
        .call(
            "authorize",
            json!({"by": a, "payee": c, "asset": "USD", "amount": "200.00", "expires_in": 3600, "key": "auth-1"}),
        )
        .await);
    seqs.next(&authorized);
    let payment = authorized["result"]["payment"].as_u64().expect("a payment id");
    assert!(event(&authorized, "authorized")["expires_at"].as_str().is_some_and(|at| at.ends_with('Z')));
    usd(balance(rpc, a, "USD").await, "687.25", "200.00", "payer holds the authorization");
    let captured =
        ok(rpc.call("capture", json!({"by": c, "payment": payment, "asset": "USD", "amount": "50.00"})).await);
    seqs.next(&captured);
    let capture = event(&captured, "captured");
    assert_eq!(
        (&capture["amount"], &capture["captured_total"], &capture["released"]),
        (&json!("50.00"), &json!("50.00"), &json!("0.00"))
    );
    usd(balance(rpc, c, "USD").await, "50.00", "0.00", "payee after a partial capture");
    usd(balance(rpc, a, "USD").await, "687.25", "150.00", "payer after a partial capture");
    let last = ok(rpc
        .call("capture", json!({"by": c, "payment": payment, "asset": "USD", "amount": "30.00", "last": true}))
        .await);
    let capture = event(&last, "captured");
    assert_eq!((&capture["captured_total"], &capture["released"]), (&json!("80.00"), &json!("120.00")));
    usd(balance(rpc, c, "USD").await, "80.00", "0.00", "payee after the last capture");
    usd(balance(rpc, a, "USD").await, "807.25", "0.00", "payer after the last capture released the rest");
    let closed = rpc.call("capture", json!({"by": c, "payment": payment, "asset": "USD", "amount": "1.00"})).await;
    rejected(&closed, "authorization_closed");
    let outsider = rpc.call("capture", json!({"by": b, "payment": payment, "asset": "USD", "amount": "1.00"})).await;
    assert_eq!(outsider["ok"], false, "only the payee captures: {outsider}");

    // Authorize and void.
    let second = ok(rpc.call("authorize", json!({"by": a, "payee": c, "asset": "USD", "amount": "40.00"})).await);
    let voidable = second["result"]["payment"].as_u64().expect("a payment id");
    usd(balance(rpc, a, "USD").await, "767.25", "40.00", "payer holds the second authorization");
    let voided = ok(rpc.call("void", json!({"by": a, "payment": voidable})).await);
    seqs.next(&voided);
    assert_eq!(event(&voided, "voided")["released"], "40.00");
    usd(balance(rpc, a, "USD").await, "807.25", "0.00", "payer after the void");

    // A split payment: every leg or none.
    let split = ok(rpc
        .call(
            "split_payment",
            json!({"by": a, "asset": "USD", "legs": [{"payee": b, "amount": "10.00"}, {"payee": c, "amount": "5.50"}], "key": "split-1"}),
        )
        .await);
    seqs.next(&split);
    assert_eq!(event(&split, "split_paid")["total"], "15.50");
    assert_eq!(event(&split, "split_paid")["legs"], 2);
    assert_eq!(events_of(&split, "transferred").len(), 2);
    usd(balance(rpc, a, "USD").await, "791.75", "0.00", "payer after the split");
    usd(balance(rpc, b, "USD").await, "22.50", "0.00", "first payee after the split");
    usd(balance(rpc, c, "USD").await, "85.50", "0.00", "second payee after the split");
    let too_much = rpc
        .call("split_payment", json!({"by": a, "asset": "USD", "legs": [{"payee": b, "amount": "1.00"}, {"payee": c, "amount": "900.00"}]}))
        .await;
    rejected(&too_much, "insufficient_funds");
    usd(balance(rpc, b, "USD").await, "22.50", "0.00", "a rejected split moves no leg");

    // Refunds: the payee sends back part of what it received, never more.
    let refunded = ok(rpc
        .call("refund", json!({"by": c, "payment": payment, "asset": "USD", "amount": "20.00", "key": "refund-1"}))
        .await);
    seqs.next(&refunded);
    let refund = event(&refunded, "refunded");
    assert_eq!((&refund["amount"], &refund["refunded_total"]), (&json!("20.00"), &json!("20.00")));
    usd(balance(rpc, c, "USD").await, "65.50", "0.00", "payee after the refund");
    usd(balance(rpc, a, "USD").await, "811.75", "0.00", "payer after the refund");
    let excess = rpc.call("refund", json!({"by": c, "payment": payment, "asset": "USD", "amount": "60.01"})).await;
    rejected(&excess, "exceeds_refundable");

    // Freeze: the account can neither send nor receive; unfreeze.
    let frozen = ok(rpc.call("freeze_account", json!({"account": b})).await);
    seqs.next(&frozen);
    assert_eq!(event(&frozen, "account_frozen")["account"], b);
    assert_eq!(ok(rpc.call("balances", json!({"account": b})).await)["result"]["frozen"], true);
    rejected(
        &rpc.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1.00"})).await,
        "account_frozen",
    );
    let unfrozen = ok(rpc.call("unfreeze_account", json!({"account": b})).await);
    assert_eq!(event(&unfrozen, "account_unfrozen")["account"], b);
    ok(rpc.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1.00"})).await);
    usd(balance(rpc, a, "USD").await, "810.75", "0.00", "payer at the end");
    usd(balance(rpc, b, "USD").await, "23.50", "0.00", "b at the end");
    // Nothing was created or lost: 1000.00 in, 100.25 out.
    usd(balance(rpc, c, "USD").await, "65.50", "0.00", "c at the end");
}

/// Markets and orders: limit, post-only, FOK, IOC, market (by qty and by quote
/// budget), client order ids, amend, cancel by id and by client id, cancel all, and
/// the queries.
#[allow(clippy::too_many_lines)]
async fn trading_scenario(rpc: &mut impl Rpc) {
    let transport = rpc.transport();
    let check = |actual: Option<(String, String)>, available: &str, held: &str, what: &str| {
        assert_balance(actual, available, held, &format!("{transport}: {what}"));
    };
    let seller = open_account(rpc, 10).await;
    let buyer = open_account(rpc, 11).await;
    deposit(rpc, seller, "BTC", "1").await;
    deposit(rpc, buyer, "USD", "100000.00").await;

    // A new market, once.
    let added = ok(rpc
        .call(
            "add_market",
            json!({"base": "GBP", "quote": "JPY", "lot": 10000, "tick": 1, "qty_min": 1, "qty_max": 1000}),
        )
        .await);
    assert_eq!(event(&added, "market_added")["market"], "GBP-JPY");
    rejected(
        &rpc.call(
            "add_market",
            json!({"base": "GBP", "quote": "JPY", "lot": 10000, "tick": 1, "qty_min": 1, "qty_max": 1000}),
        )
        .await,
        "invalid_market",
    );
    let markets = ok(rpc.call("markets", json!({})).await);
    let symbols: Vec<&str> =
        markets["result"]["markets"].as_array().expect("markets").iter().filter_map(|m| m["market"].as_str()).collect();
    assert!(symbols.contains(&"BTC-USD") && symbols.contains(&"GBP-JPY"), "{symbols:?}");
    let gbp_jpy = ok(rpc.call("depth", json!({"market": "GBP-JPY"})).await);
    assert_eq!((&gbp_jpy["result"]["bids"], &gbp_jpy["result"]["asks"]), (&json!([]), &json!([])));

    // A resting sell with a client order id.
    let placed = ok(rpc
        .call(
            "place_order",
            json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": "50000", "qty": "0.10", "client_order_id": "ask-1"}),
        )
        .await);
    let ask = placed["result"]["order_id"].as_u64().expect("an order id");
    let accepted = event(&placed, "order_accepted");
    assert_eq!(accepted["price"], "50000");
    assert_eq!(accepted["time_in_force"], "gtc");
    assert_eq!(accepted["client_order_id"], "ask-1");
    check(balance(rpc, seller, "BTC").await, "0.90000000", "0.10000000", "seller holds the resting sell");
    rejected(
        &rpc.call("place_order", json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": "51000", "qty": "0.01", "client_order_id": "ask-1"})).await,
        "duplicate_client_order_id",
    );

    // Post-only: refused when it would take, rests when it would not.
    let taking = rpc
        .call("place_order", json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "50000", "qty": "0.01", "post_only": true}))
        .await;
    rejected(&taking, "post_only_would_take");
    let bid = ok(rpc
        .call("place_order", json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "49000", "qty": "0.05", "post_only": true}))
        .await)["result"]["order_id"]
        .as_u64()
        .expect("an order id");
    // 0.05 × 49000 = 2450.00, and the taker fee at most (20 bps) = 4.90.
    check(balance(rpc, buyer, "USD").await, "97545.10", "2454.90", "buyer holds the bid and its fee");

    // FOK that cannot fill: accepted, then cancelled, nothing traded.
    let killed = ok(rpc
        .call("place_order", json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "50000", "qty": "0.20", "time_in_force": "fok"}))
        .await);
    assert_eq!(event(&killed, "order_cancelled")["reason"], "fill_or_kill");
    assert!(events_of(&killed, "trade").is_empty(), "{killed}");

    // IOC that fills: 0.02 at 50000 = 1000.00; taker fee 2.00, maker fee 1.00.
    let ioc = ok(rpc
        .call("place_order", json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "50000", "qty": "0.02", "time_in_force": "ioc"}))
        .await);
    let trade = event(&ioc, "trade");
    assert_eq!(
        (&trade["qty"], &trade["price"], &trade["maker_order"], &trade["taker_fee"], &trade["maker_fee"]),
        (&json!("0.02"), &json!("50000"), &json!(ask), &json!("2.00"), &json!("1.00"))
    );
    check(balance(rpc, buyer, "USD").await, "96543.10", "2454.90", "buyer after the IOC");
    check(balance(rpc, buyer, "BTC").await, "0.02000000", "0.00000000", "buyer's BTC after the IOC");
    check(balance(rpc, seller, "USD").await, "999.00", "0.00", "seller after the IOC");

    // Market buy by quantity: 0.03 at 50000 = 1500.00 + 3.00.
    let market = ok(rpc
        .call("place_order", json!({"by": buyer, "market": "BTC-USD", "side": "buy", "type": "market", "qty": "0.03"}))
        .await);
    assert_eq!(event(&market, "order_accepted")["price"], Value::Null);
    assert_eq!(event(&market, "order_accepted")["time_in_force"], "ioc");
    assert_eq!(event(&market, "trade")["qty"], "0.03");
    check(balance(rpc, buyer, "USD").await, "95040.10", "2454.90", "buyer after the market buy");

    // Market buy with a quote budget of 1000.00: 0.02 would cost 1002.00 with the fee,
    // so it buys 0.01 for 500.00 + 1.00 and stops.
    let budget = ok(rpc
        .call(
            "place_order",
            json!({"by": buyer, "market": "BTC-USD", "side": "buy", "type": "market", "quote_budget": "1000.00"}),
        )
        .await);
    assert_eq!(event(&budget, "trade")["qty"], "0.01");
    assert_eq!(event(&budget, "order_cancelled")["reason"], "budget_spent");
    check(balance(rpc, buyer, "USD").await, "94539.10", "2454.90", "buyer after the budget buy");
    check(balance(rpc, buyer, "BTC").await, "0.06000000", "0.00000000", "buyer's BTC after three fills");
    check(balance(rpc, seller, "USD").await, "2997.00", "0.00", "seller got 3000.00 less 3.00 in maker fees");
    check(balance(rpc, seller, "BTC").await, "0.90000000", "0.04000000", "seller's resting remainder");

    // Refused before the engine: the order's fields do not go together.
    for (params, what) in [
        (
            json!({"by": buyer, "market": "BTC-USD", "side": "buy", "type": "market", "price": "1", "qty": "0.01"}),
            "market with a price",
        ),
        (
            json!({"by": seller, "market": "BTC-USD", "side": "sell", "type": "market", "quote_budget": "10.00"}),
            "budget on a sell",
        ),
        (
            json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "50000", "qty": "0.015"}),
            "qty off the lot grid",
        ),
        (
            json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "50000.5", "qty": "0.01"}),
            "price off the tick grid",
        ),
        (json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "50000"}), "no qty"),
    ] {
        let reply = rpc.call("place_order", params).await;
        assert_eq!(reply["ok"], false, "{transport}: {what}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_params", "{transport}: {what}: {reply}");
    }
    rejected(
        &rpc.call("place_order", json!({"by": buyer, "market": "NOPE-USD", "side": "buy", "price": "1", "qty": "1"}))
            .await,
        "unknown_market",
    );

    // Amend by client order id: a new price loses priority.
    let amended = ok(rpc
        .call("amend_order", json!({"by": seller, "client_order_id": "ask-1", "price": "52000", "qty": "0.03"}))
        .await);
    let amend = event(&amended, "order_amended");
    assert_eq!(
        (&amend["order_id"], &amend["price"], &amend["qty"], &amend["priority_kept"]),
        (&json!(ask), &json!("52000"), &json!("0.03"), &json!(false))
    );
    check(balance(rpc, seller, "BTC").await, "0.91000000", "0.03000000", "the amend released 0.01 BTC");

    // Queries.
    let orders = ok(rpc.call("orders", json!({"account": seller})).await);
    assert_eq!(
        orders["result"]["orders"],
        json!([{"order_id": ask, "market": "BTC-USD", "side": "sell", "price": "52000", "remaining": "0.03", "client_order_id": "ask-1"}])
    );
    let depth = ok(rpc.call("depth", json!({"market": "BTC-USD"})).await);
    assert_eq!(depth["result"]["bids"], json!([["49000", "0.05", 1]]));
    assert_eq!(depth["result"]["asks"], json!([["52000", "0.03", 1]]));
    let trades = ok(rpc.call("trades", json!({"market": "BTC-USD", "limit": 10})).await);
    let quantities: Vec<&Value> =
        trades["result"]["trades"].as_array().expect("trades").iter().map(|t| &t["qty"]).collect();
    assert_eq!(quantities, [&json!("0.01"), &json!("0.03"), &json!("0.02")], "newest first: {trades}");

    // Cancel by client order id, then by order id.
    let cancelled = ok(rpc.call("cancel_order", json!({"by": seller, "client_order_id": "ask-1"})).await);
    assert_eq!(event(&cancelled, "order_cancelled")["reason"], "requested");
    assert_eq!(event(&cancelled, "order_cancelled")["remaining"], "0.03");
    check(balance(rpc, seller, "BTC").await, "0.94000000", "0.00000000", "seller after the cancel");
    rejected(&rpc.call("cancel_order", json!({"by": seller, "client_order_id": "ask-1"})).await, "unknown_order");
    let by_id = ok(rpc.call("cancel_order", json!({"by": buyer, "order_id": bid})).await);
    assert_eq!(event(&by_id, "order_cancelled")["order_id"], bid);
    check(balance(rpc, buyer, "USD").await, "96994.00", "0.00", "buyer after the cancel: 100000 - 3006.00");
    rejected(&rpc.call("cancel_order", json!({"by": buyer, "order_id": bid})).await, "unknown_order");
    rejected(&rpc.call("amend_order", json!({"by": buyer, "order_id": bid, "qty": "0.01"})).await, "unknown_order");

    // Cancel all in one market.
    for price in ["53000", "54000"] {
        ok(rpc
            .call(
                "place_order",
                json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": price, "qty": "0.01"}),
            )
            .await);
    }
    let all = ok(rpc.call("cancel_all", json!({"by": seller, "market": "BTC-USD"})).await);
    let reasons: Vec<&Value> = events_of(&all, "order_cancelled").iter().map(|e| &e["reason"]).collect();
    assert_eq!(reasons, [&json!("cancel_all"), &json!("cancel_all")], "{all}");
    assert_eq!(ok(rpc.call("orders", json!({"account": seller})).await)["result"]["orders"], json!([]));
    check(balance(rpc, seller, "BTC").await, "0.94000000", "0.00000000", "seller after cancel_all");
}

/// Keys: create, list, revoke; an admin key bound to accounts and revoking the last
/// admin key are refused.
async fn keys_scenario(rpc: &mut impl Rpc, admin: &Credentials) {
    let account = open_account(rpc, 20).await;
    let created = ok(rpc
        .call("create_key", json!({"permissions": ["read", "trade"], "accounts": [account], "label": "bot"}))
        .await);
    let key_id = created["result"]["key_id"].as_str().expect("a key id").to_owned();
    let token = created["result"]["api_key"].as_str().expect("an api key");
    assert_eq!(Credentials::from_token(token).expect("a valid token").key_id, key_id);
    let listed = ok(rpc.call("list_keys", json!({})).await);
    let keys = listed["result"]["keys"].as_array().expect("keys");
    assert!(
        keys.contains(&json!({"key_id": key_id, "permissions": "read,trade", "accounts": [account], "label": "bot"})),
        "{listed}"
    );
    assert!(
        keys.iter().any(|key| key["key_id"] == admin.key_id.as_str() && key["permissions"] == "read,trade,pay,admin"),
        "{listed}"
    );
    assert!(!listed.to_string().contains(token.split('.').nth(1).expect("a secret")), "list_keys never shows a secret");
    rejected(
        &rpc.call("create_key", json!({"permissions": ["admin"], "accounts": [account]})).await,
        "admin_with_accounts",
    );
    rejected(&rpc.call("create_key", json!({"permissions": []})).await, "invalid_params");
    rejected(&rpc.call("create_key", json!({"permissions": ["root"]})).await, "invalid_params");

    let revoked = ok(rpc.call("revoke_key", json!({"key_id": key_id})).await);
    assert_eq!(revoked["result"], json!({"key_id": key_id, "revoked": true}));
    let again = ok(rpc.call("revoke_key", json!({"key_id": key_id})).await);
    assert_eq!(again["result"]["revoked"], false);
    let listed = ok(rpc.call("list_keys", json!({})).await);
    assert!(!listed.to_string().contains(&key_id), "a revoked key is not listed: {listed}");
    rejected(&rpc.call("revoke_key", json!({"key_id": admin.key_id})).await, "last_admin_key");

    let pong = ok(rpc.call("ping", json!({})).await);
    assert!(pong["result"]["pong"].as_str().is_some_and(|time| time.ends_with('Z')), "{pong}");
}

#[tokio::test]
async fn every_command_and_query_over_http() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut http = server.admin_http();
    payments_scenario(&mut http).await;
    trading_scenario(&mut http).await;
    keys_scenario(&mut http, &server.admin()).await;

    // HTTP statuses: 200 accepted, 422 an engine rejection, 400 a request error.
    let a = open_account(&mut http, 30).await;
    assert_eq!(http.last_status, 200);
    rejected(
        &Http::call(&mut http, "transfer", json!({"by": a, "to": a + 1000, "asset": "USD", "amount": "1.00"})),
        "unknown_account",
    );
    assert_eq!(http.last_status, 422);
    rejected(
        &Http::call(&mut http, "transfer", json!({"by": a, "to": 0, "asset": "XXX", "amount": "1.00"})),
        "unknown_asset",
    );
    assert_eq!(http.last_status, 400);
    // The id is echoed as given: a number or a string.
    let reply = http.request(&json!({"id": "abc-1", "op": "ping"}));
    assert_eq!(reply["id"], "abc-1");
    let reply = http.request(&json!({"op": "ping"}));
    assert_eq!(reply["id"], Value::Null, "no id: null");
    // WebSocket-only ops over HTTP.
    rejected(&Http::call(&mut http, "subscribe", json!({"channel": "account"})), "websocket_only");
}

#[tokio::test]
async fn every_command_and_query_over_websocket() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut ws = Ws::login(&server, &server.admin()).await;
    payments_scenario(&mut ws).await;
    trading_scenario(&mut ws).await;
    keys_scenario(&mut ws, &server.admin()).await;
    // A numeric id is echoed as a number.
    let reply = ws.request(json!({"id": 41, "op": "ping"})).await;
    assert_eq!(reply["id"], 41);
    // An admin session is told nothing it did not ask: no pushes arrived.
    assert!(ws.take_stash().is_empty());
    ws.close().await;
}

// ---------------------------------------------------------------------------------
// Pushes

/// Panics unless every event of `message` concerns only `account`.
#[track_caller]
fn only_concerns(message: &Value, account: u64) {
    for event in message["events"].as_array().expect("events") {
        let fields = ["account", "from", "to", "payer", "payee"];
        let mentioned: Vec<u64> = fields.iter().filter_map(|field| event[*field].as_u64()).collect();
        assert!(mentioned.contains(&account), "an event that does not concern account {account}: {message}");
        if event["type"] == "balance" {
            assert_eq!(event["account"], account, "another account's balance: {message}");
        }
        assert_ne!(event["type"], "trade", "a client never sees the whole trade: {message}");
    }
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn pushes_reach_the_accounts_they_concern_and_no_others() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let x = open_account(&mut admin, 1).await; // session B's
    let y = open_account(&mut admin, 2).await; // session C's
    let z = open_account(&mut admin, 3).await; // the operator's counterparty
    deposit(&mut admin, x, "BTC", "1").await;
    deposit(&mut admin, x, "USD", "1000.00").await;
    deposit(&mut admin, y, "USD", "50.00").await;
    deposit(&mut admin, z, "USD", "100000.00").await;
    deposit(&mut admin, z, "BTC", "1").await;
    let b_key = create_key(&mut admin, &["read", "trade", "pay"], &[x]).await;
    let c_key = create_key(&mut admin, &["read", "pay"], &[y]).await;

    let mut session_b = Ws::login(&server, &b_key).await;
    assert_eq!(
        ok(session_b.call("subscribe", json!({"channel": "account"})).await)["result"],
        json!({"subscribed": "account"})
    );
    let mut session_c = Ws::login(&server, &c_key).await;
    ok(session_c.call("subscribe", json!({"channel": "account"})).await);

    // B rests a sell; its own command comes back as a reply, not a push.
    let placed = ok(session_b
        .call("place_order", json!({"by": x, "market": "BTC-USD", "side": "sell", "price": "50000", "qty": "0.10"}))
        .await);
    let order = placed["result"]["order_id"].as_u64().expect("an order id");
    only_concerns(&placed, x);

    // B takes from the operator's resting sell: its reply shows its own side only.
    ok(admin
        .call("place_order", json!({"by": z, "market": "BTC-USD", "side": "sell", "price": "30000", "qty": "0.01"})));
    let taking = ok(session_b.call("place_order", json!({"by": x, "market": "BTC-USD", "side": "buy", "price": "30000", "qty": "0.01", "time_in_force": "ioc"})).await);
    only_concerns(&taking, x);
    assert_eq!(event(&taking, "fill")["liquidity"], "taker", "{taking}");
    assert_eq!(event(&taking, "fill")["fee"], "0.60", "20 bps of 300.00");

    // The operator's buy for z takes 0.04 of B's sell: B is told of its fill.
    let taken = ok(admin
        .call("place_order", json!({"by": z, "market": "BTC-USD", "side": "buy", "type": "market", "qty": "0.04"})));
    let fill_push = session_b.next_matching(|m| m["channel"] == "account").await;
    assert_eq!(fill_push["seq"], taken["seq"], "the push carries the command's seq");
    only_concerns(&fill_push, x);
    let fill = event(&fill_push, "fill");
    assert_eq!(
        fill,
        &json!({"type": "fill", "liquidity": "maker", "order_id": order, "account": x, "market": "BTC-USD",
                "market_seq": fill["market_seq"], "side": "sell", "price": "50000", "qty": "0.04", "fee": "2.00", "remaining": "0.06"})
    );
    let balances: BTreeMap<String, String> = events_of(&fill_push, "balance")
        .iter()
        .map(|e| (e["asset"].as_str().expect("asset").to_owned(), format!("{}/{}", e["available"], e["held"])))
        .collect();
    assert_eq!(balances["BTC"], "\"0.91000000\"/\"0.06000000\"");
    assert_eq!(balances["USD"], "\"2697.40\"/\"0.00\"", "1000.00 - 300.60 + 2000.00 - 2.00 maker fee");

    // Paid: transferred and the new balance.
    let paid = ok(admin.call("transfer", json!({"by": z, "to": x, "asset": "USD", "amount": "25.00"})));
    let payment = paid["result"]["payment"].as_u64().expect("a payment id");
    // Something for C only, in the middle: B must not see it.
    ok(admin.call("transfer", json!({"by": z, "to": y, "asset": "USD", "amount": "7.00"})));
    // Authorized, captured (by the payee, acted for by the operator), then voided.
    let authorized = ok(admin.call("authorize", json!({"by": z, "payee": x, "asset": "USD", "amount": "30.00"})));
    let held = authorized["result"]["payment"].as_u64().expect("a payment id");
    ok(admin.call("capture", json!({"by": x, "payment": held, "asset": "USD", "amount": "30.00", "last": true})));
    let second = ok(admin.call("authorize", json!({"by": z, "payee": x, "asset": "USD", "amount": "5.00"})));
    let voidable = second["result"]["payment"].as_u64().expect("a payment id");
    ok(admin.call("void", json!({"by": z, "payment": voidable})));
    // B refunds part of the transfer (acted for by the operator).
    ok(admin.call("refund", json!({"by": x, "payment": payment, "asset": "USD", "amount": "5.00"})));
    // A split payment with a leg to x and a leg to y.
    ok(admin.call(
        "split_payment",
        json!({"by": z, "asset": "USD", "legs": [{"payee": x, "amount": "1.00"}, {"payee": y, "amount": "2.00"}]}),
    ));
    // The operator acts on B's account and order: amend, KYC tier, freeze (which
    // cancels the resting order), unfreeze, withdraw.
    ok(admin.call("amend_order", json!({"by": x, "order_id": order, "price": "51000"})));
    ok(admin.call("set_kyc_tier", json!({"account": x, "kyc_tier": 1})));
    ok(admin.call("freeze_account", json!({"account": x})));
    ok(admin.call("unfreeze_account", json!({"account": x})));
    ok(admin.call("withdraw", json!({"account": x, "asset": "USD", "amount": "1.00", "reference": "payout"})));
    // Sentinels: the last push each session should see.
    let b_last =
        ok(admin.call("deposit", json!({"account": x, "asset": "USD", "amount": "0.01", "reference": "sentinel-b"})));
    let c_last =
        ok(admin.call("deposit", json!({"account": y, "asset": "USD", "amount": "0.01", "reference": "sentinel-c"})));

    let mut b_pushes = Vec::new();
    loop {
        let push = session_b.next_matching(|m| m["channel"] == "account").await;
        only_concerns(&push, x);
        let done = push["seq"] == b_last["seq"];
        b_pushes.push(push);
        if done {
            break;
        }
    }
    let kinds: Vec<Vec<&str>> = b_pushes
        .iter()
        .map(|push| push["events"].as_array().expect("events").iter().filter_map(|e| e["type"].as_str()).collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec!["transferred", "balance"],
            vec!["authorized"],
            vec!["captured", "balance"],
            vec!["authorized"],
            vec!["voided"],
            vec!["refunded", "balance"],
            vec!["transferred", "balance"],
            vec!["order_amended", "balance"],
            vec!["kyc_tier_changed"],
            vec!["account_frozen", "order_cancelled", "balance"],
            vec!["account_unfrozen"],
            vec!["withdrawn", "balance"],
            vec!["deposited", "balance"],
        ],
        "B's pushes, in order: {b_pushes:#?}"
    );
    let cancelled = b_pushes.iter().flat_map(|push| events_of(push, "order_cancelled")).next().expect("a cancel");
    assert_eq!((&cancelled["order_id"], &cancelled["reason"]), (&json!(order), &json!("account_frozen")));
    let seqs: Vec<u64> = b_pushes.iter().map(|p| p["seq"].as_u64().expect("seq")).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "pushes in seq order: {seqs:?}");
    let last_usd = b_pushes.last().and_then(|p| events_of(p, "balance").first().map(|e| e["available"].clone()));
    // 2697.40 + 25.00 + 30.00 - 5.00 + 1.00 - 1.00 + 0.01
    assert_eq!(last_usd, Some(json!("2747.41")));
    assert_balance(
        balance(&mut session_b, x, "USD").await,
        "2747.41",
        "0.00",
        "B's balance query agrees with its pushes",
    );

    let mut c_pushes = Vec::new();
    loop {
        let push = session_c.next_matching(|m| m["channel"] == "account").await;
        only_concerns(&push, y);
        let done = push["seq"] == c_last["seq"];
        c_pushes.push(push);
        if done {
            break;
        }
    }
    assert_eq!(c_pushes.len(), 3, "C: its transfer, its split leg and its sentinel, nothing of x: {c_pushes:#?}");
    assert!(session_b.take_stash().is_empty() && session_c.take_stash().is_empty(), "nothing else arrived");

    // Unsubscribed, B gets no more pushes (but still its replies).
    ok(session_b.call("unsubscribe", json!({"channel": "account"})).await);
    ok(admin.call("transfer", json!({"by": z, "to": x, "asset": "USD", "amount": "1.00"})));
    assert_eq!(ok(session_b.call("ping", json!({})).await)["ok"], true);
    assert!(session_b.next_within(QUIET).await.is_none(), "no push after unsubscribe");
    session_b.close().await;
    session_c.close().await;
}

/// An authorization left to expire is released by the engine's idle tick, and both
/// parties are told.
#[tokio::test]
async fn an_expired_authorization_is_pushed_to_payer_and_payee() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let payer = open_account(&mut admin, 1).await;
    let payee = open_account(&mut admin, 2).await;
    deposit(&mut admin, payer, "USD", "10.00").await;
    let payer_key = create_key(&mut admin, &["read"], &[payer]).await;
    let payee_key = create_key(&mut admin, &["read"], &[payee]).await;
    let mut payer_ws = Ws::login(&server, &payer_key).await;
    ok(payer_ws.call("subscribe", json!({"channel": "account"})).await);
    let mut payee_ws = Ws::login(&server, &payee_key).await;
    ok(payee_ws.call("subscribe", json!({"channel": "account"})).await);
    let authorized = ok(admin
        .call("authorize", json!({"by": payer, "payee": payee, "asset": "USD", "amount": "4.00", "expires_in": 1})));
    let payment = authorized["result"]["payment"].clone();
    let expired = |m: &Value| events_of(m, "authorization_expired").iter().any(|e| e["payment"] == payment);
    let push = payee_ws.next_matching(expired).await;
    assert_eq!(event(&push, "authorization_expired")["released"], "4.00");
    only_concerns(&push, payee);
    let push = payer_ws.next_matching(expired).await;
    assert_eq!(event(&push, "balance")["available"], "10.00", "the hold is released: {push}");
    assert_balance(balance(&mut admin, payer, "USD").await, "10.00", "0.00", "the payer after the expiry");
}

// ---------------------------------------------------------------------------------
// Market data

/// A local order book kept from a snapshot and `update`s.
#[derive(Debug, Default, PartialEq, Eq)]
struct LocalBook {
    bids: BTreeMap<String, (String, u64)>,
    asks: BTreeMap<String, (String, u64)>,
    market_seq: u64,
}

impl LocalBook {
    fn from_snapshot(snapshot: &Value) -> LocalBook {
        assert_eq!((&snapshot["channel"], &snapshot["type"]), (&json!("book"), &json!("snapshot")), "{snapshot}");
        let side = |levels: &Value| {
            levels
                .as_array()
                .expect("levels")
                .iter()
                .map(|level| {
                    let price = level[0].as_str().expect("price").to_owned();
                    (price, (level[1].as_str().expect("qty").to_owned(), level[2].as_u64().expect("orders")))
                })
                .collect()
        };
        LocalBook {
            bids: side(&snapshot["bids"]),
            asks: side(&snapshot["asks"]),
            market_seq: snapshot["market_seq"].as_u64().expect("market_seq"),
        }
    }

    fn apply(&mut self, update: &Value) {
        assert_eq!(update["type"], "update", "{update}");
        let market_seq = update["market_seq"].as_u64().expect("market_seq");
        assert!(market_seq > self.market_seq, "updates only go forward: {update} after {}", self.market_seq);
        for change in update["changes"].as_array().expect("changes") {
            let change_seq = change["market_seq"].as_u64().expect("a change's market_seq");
            assert!(change_seq > self.market_seq && change_seq <= market_seq, "{change} in {update}");
            let levels = if change["side"] == "buy" { &mut self.bids } else { &mut self.asks };
            let price = change["price"].as_str().expect("price").to_owned();
            if change["qty"] == "0" {
                assert!(levels.remove(&price).is_some(), "removing a level that is not there: {change}");
            } else {
                levels.insert(
                    price,
                    (change["qty"].as_str().expect("qty").to_owned(), change["orders"].as_u64().expect("orders")),
                );
            }
        }
        self.market_seq = market_seq;
    }
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn market_data_snapshot_then_updates_match_the_public_endpoints() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let public = server.http(None);
    let seller = open_account(&mut admin, 1).await;
    let buyer = open_account(&mut admin, 2).await;
    deposit(&mut admin, seller, "BTC", "1").await;
    deposit(&mut admin, buyer, "USD", "100000.00").await;
    ok(admin.call(
        "place_order",
        json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": "50500", "qty": "0.02"}),
    ));

    // No login needed for market data.
    let mut md = Ws::connect(&server).await;
    for channel in ["book", "bbo", "trades"] {
        let reply = ok(md.call("subscribe", json!({"channel": channel, "market": "BTC-USD"})).await);
        assert_eq!(reply["result"], json!({"subscribed": channel, "market": "BTC-USD"}));
    }
    let again = ok(md.call("subscribe", json!({"channel": "book", "market": "BTC-USD"})).await);
    assert_eq!(again["result"]["already"], true);
    rejected(&md.call("subscribe", json!({"channel": "book", "market": "NOPE-USD"})).await, "unknown_market");
    rejected(&md.call("subscribe", json!({"channel": "book"})).await, "invalid_params");
    rejected(&md.call("subscribe", json!({"channel": "account"})).await, "missing_auth");

    let snapshot = md.next_matching(|m| m["channel"] == "book").await;
    let mut book = LocalBook::from_snapshot(&snapshot);
    assert_eq!(book.asks.get("50500"), Some(&("0.02".to_owned(), 1)), "the snapshot has the resting order: {snapshot}");
    let bbo_snapshot = md.next_matching(|m| m["channel"] == "bbo").await;
    assert_eq!(bbo_snapshot["bid"], Value::Null);
    assert_eq!(bbo_snapshot["ask"], json!(["50500", "0.02"]));

    // Activity: new levels, a level that grows, a trade, an amend, a cancel.
    let orders = [
        json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": "50000", "qty": "0.10"}),
        json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": "50000", "qty": "0.05"}),
        json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "49900", "qty": "0.02"}),
        json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "49800", "qty": "0.03"}),
    ];
    let mut ids = Vec::new();
    for order in orders {
        ids.push(ok(admin.call("place_order", order))["result"]["order_id"].as_u64().expect("an order id"));
    }
    let taker = ok(admin.call(
        "place_order",
        json!({"by": buyer, "market": "BTC-USD", "side": "buy", "type": "market", "qty": "0.12"}),
    ));
    let trade_seqs: Vec<u64> =
        events_of(&taker, "trade").iter().map(|t| t["market_seq"].as_u64().expect("seq")).collect();
    assert_eq!(trade_seqs.len(), 2, "0.10 then 0.02 of the next order at 50000: {taker}");
    ok(admin.call("amend_order", json!({"by": buyer, "order_id": ids[3], "price": "49850"})));
    ok(admin.call("cancel_order", json!({"by": buyer, "order_id": ids[2]})));

    let depth = public.get("/v1/markets/BTC-USD/depth");
    assert_eq!(depth.status, 200);
    let target = depth.json["market_seq"].as_u64().expect("market_seq");
    let deadline = Instant::now() + WAIT;
    let mut updates = 0;
    while book.market_seq < target {
        assert!(Instant::now() < deadline, "book updates did not reach market_seq {target}: {book:?}");
        let update = md.next_matching(|m| m["channel"] == "book").await;
        book.apply(&update);
        updates += 1;
    }
    assert!(updates >= 5, "one update per command that changed the book, got {updates}");
    assert_eq!(book, LocalBook::from_snapshot(&depth.json), "the book kept from updates is GET depth");
    assert_eq!(depth.json["asks"], json!([["50000", "0.03", 1], ["50500", "0.02", 1]]));
    assert_eq!(depth.json["bids"], json!([["49850", "0.03", 1]]));

    // BBO: one message per update, the last one the current best.
    let mut last_bbo = bbo_snapshot;
    while last_bbo["market_seq"].as_u64() < Some(target) {
        last_bbo = md.next_matching(|m| m["channel"] == "bbo").await;
    }
    assert_eq!(last_bbo["bid"], json!(["49850", "0.03"]));
    assert_eq!(last_bbo["ask"], json!(["50000", "0.03"]));

    // Trades: the two of the market buy, as GET trades shows them.
    let _trades_snapshot = md.next_matching(|m| m["channel"] == "trades" && m["type"] == "snapshot").await;
    let update = md.next_matching(|m| m["channel"] == "trades" && m["type"] == "update").await;
    let streamed: Vec<u64> =
        update["trades"].as_array().expect("trades").iter().map(|t| t["market_seq"].as_u64().expect("seq")).collect();
    assert_eq!(streamed, trade_seqs);
    let recent = public.get("/v1/markets/BTC-USD/trades?limit=1");
    assert_eq!(recent.json["trades"].as_array().map(Vec::len), Some(1));
    assert_eq!(recent.json["trades"][0]["market_seq"], trade_seqs[1]);
    assert_eq!(recent.json["trades"][0]["qty"], "0.02");
    assert_eq!(recent.json["trades"][0]["taker_side"], "buy");

    // Unsubscribed from book: bbo still comes, book no more.
    let gone = ok(md.call("unsubscribe", json!({"channel": "book", "market": "BTC-USD"})).await);
    assert_eq!(gone["result"]["was_subscribed"], true);
    md.take_stash();
    let placed = ok(admin.call(
        "place_order",
        json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": "49000", "qty": "0.01"}),
    ));
    assert!(placed["ok"] == true);
    let bbo = md.next_matching(|m| m["channel"] == "bbo").await;
    assert!(bbo["market_seq"].as_u64() > Some(target));
    assert!(md.next_within(QUIET).await.is_none_or(|m| m["channel"] != "book"), "no book update after unsubscribe");

    // The public endpoints.
    let markets = public.get("/v1/markets");
    assert_eq!(markets.status, 200);
    let btc_usd =
        markets.json["markets"].as_array().expect("markets").iter().find(|m| m["market"] == "BTC-USD").cloned();
    assert_eq!(
        btc_usd,
        Some(json!({"market": "BTC-USD", "base": "BTC", "quote": "USD", "price_increment": "1", "lot": "0.01",
                    "qty_min": "0.01", "qty_max": "10000",
                    "fees_by_kyc_tier": [{"maker_bps": 10, "taker_bps": 20}, {"maker_bps": 5, "taker_bps": 10}, {"maker_bps": 2, "taker_bps": 5}]}))
    );
    assert!(markets.json["assets"].as_array().expect("assets").contains(&json!({"asset": "BTC", "scale": 8})));
    let top = public.get("/v1/markets/BTC-USD/depth?levels=1");
    assert_eq!(top.json["asks"], json!([["50000", "0.03", 1]]));
    assert_eq!(top.json["bids"].as_array().map(Vec::len), Some(1));
    let unknown = public.get("/v1/markets/NOPE-USD/depth");
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json["error"]["code"], "unknown_market");
    let missing = public.get("/v2/nothing");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["error"]["code"], "not_found");
    md.close().await;
}

/// The trades channel's first message (its snapshot) names its channel like the book
/// and bbo snapshots do, so a client can route every market-data message by
/// `channel`.
#[tokio::test]
async fn the_trades_snapshot_names_its_channel() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut md = Ws::connect(&server).await;
    ok(md.call("subscribe", json!({"channel": "trades", "market": "BTC-USD"})).await);
    let first = md.next_within(WAIT).await.expect("a trades snapshot");
    assert_eq!(first["market"], "BTC-USD", "{first}");
    assert_eq!(first["channel"], "trades", "the trades snapshot has no channel field: {first}");
}

// ---------------------------------------------------------------------------------
// Authorization

/// An unauthenticated request learns nothing about other people's orders: an
/// `amend_order` for an order that exists and for one that does not get the same
/// answer. (The gateway looks the order up while parsing, before it checks the
/// signature, so a missing order answered `unknown_order` and an existing one
/// `missing_auth`: an oracle for which order ids are open.)
#[tokio::test]
async fn unauthenticated_requests_cannot_probe_which_orders_exist() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let seller = open_account(&mut admin, 1).await;
    deposit(&mut admin, seller, "BTC", "1").await;
    let placed = ok(admin.call(
        "place_order",
        json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": "50000", "qty": "0.01"}),
    ));
    let order = placed["result"]["order_id"].as_u64().expect("an order id");
    let anonymous = server.http(None);
    let probe = |order_id: u64| {
        let reply = anonymous.post(
            json!({"op": "amend_order", "by": seller, "order_id": order_id, "price": "1"}).to_string().as_bytes(),
        );
        (reply.status, reply.json["error"]["code"].as_str().unwrap_or_default().to_owned())
    };
    let existing = probe(order);
    assert_eq!(existing, (401, "missing_auth".to_owned()));
    assert_eq!(probe(order + 1000), existing, "a missing order must answer like an existing one");
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn authorization_failures_have_their_codes_and_statuses() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let admin_key = server.admin();
    let mut admin = server.admin_http();
    let x = open_account(&mut admin, 1).await;
    let y = open_account(&mut admin, 2).await;
    deposit(&mut admin, x, "USD", "100.00").await;
    deposit(&mut admin, y, "USD", "100.00").await;
    let transfer = json!({"id": 1, "op": "transfer", "by": x, "to": y, "asset": "USD", "amount": "1.00"});
    let body = transfer.to_string();
    let raw = server.http(None);
    let expect = |reply: &common::HttpReply, status: u16, code: &str| {
        assert_eq!((reply.status, reply.json["error"]["code"].as_str()), (status, Some(code)), "{}", reply.text);
        assert_eq!(reply.json["ok"], false);
    };

    // Unsigned: commands and account queries need a key; public ops do not.
    expect(&raw.post(body.as_bytes()), 401, "missing_auth");
    expect(&raw.post(json!({"op": "balances", "account": x}).to_string().as_bytes()), 401, "missing_auth");
    assert_eq!(raw.post(br#"{"op":"markets"}"#).status, 200);
    // Some headers but not all.
    expect(&raw.post_raw(body.as_bytes(), &[(auth::HEADER_KEY, admin_key.key_id.clone())]), 401, "missing_auth");

    let now = auth::unix_ms_now();
    let signed = |timestamp: u64, nonce: &str, signed_body: &[u8]| {
        Http::signature_headers(&admin_key, timestamp, nonce, signed_body)
    };
    // The signature covers the exact body: one byte changed is a bad signature.
    let tampered = body.replace("1.00", "9.00");
    expect(&raw.post_raw(tampered.as_bytes(), &signed(now, "nonce-tamper-1", body.as_bytes())), 401, "bad_signature");
    // Signed with another key's secret.
    let other = Credentials::from_token(&format!("{}.{}", admin_key.key_id, "11".repeat(32))).expect("a token");
    let forged = Http::signature_headers(&other, now, "nonce-forged-1", body.as_bytes());
    expect(&raw.post_raw(body.as_bytes(), &forged), 401, "bad_signature");
    // Stale: two minutes behind (the window is 30 s).
    expect(
        &raw.post_raw(body.as_bytes(), &signed(now - 120_000, "nonce-stale-1", body.as_bytes())),
        401,
        "stale_timestamp",
    );
    expect(
        &raw.post_raw(body.as_bytes(), &signed(now + 120_000, "nonce-future-1", body.as_bytes())),
        401,
        "stale_timestamp",
    );
    // Malformed header values.
    let mut headers = signed(now, "nonce-malformed-1", body.as_bytes());
    headers[1].1 = "yesterday".to_owned();
    expect(&raw.post_raw(body.as_bytes(), &headers), 401, "malformed_auth");
    let mut headers = signed(now, "nonce-malformed-2", body.as_bytes());
    headers[0].1 = "admin".to_owned();
    expect(&raw.post_raw(body.as_bytes(), &headers), 401, "malformed_auth");
    let mut headers = signed(now, "nonce-malformed-3", body.as_bytes());
    headers[0].1 = "bk_0000000000000000".to_owned();
    expect(&raw.post_raw(body.as_bytes(), &headers), 401, "unknown_key");
    // Replayed: the same signed request twice runs once.
    let headers = signed(auth::unix_ms_now(), "nonce-replay-1", body.as_bytes());
    let first = raw.post_raw(body.as_bytes(), &headers);
    assert_eq!(first.status, 200, "{}", first.text);
    expect(&raw.post_raw(body.as_bytes(), &headers), 401, "replayed_nonce");
    assert_balance(balance(&mut admin, y, "USD").await, "101.00", "0.00", "one transfer, not two");

    // Permissions and accounts.
    let trade_only = create_key(&mut admin, &["trade"], &[x]).await;
    let mut trader = server.http(Some(trade_only.clone()));
    let reply = trader.call("transfer", json!({"by": x, "to": y, "asset": "USD", "amount": "1.00"}));
    rejected(&reply, "forbidden");
    assert_eq!(trader.last_status, 403);
    assert!(reply["error"]["message"].as_str().is_some_and(|m| m.contains("pay")), "names the permission: {reply}");
    rejected(&trader.call("balances", json!({"account": x})), "forbidden");
    let x_key = create_key(&mut admin, &["read", "trade", "pay"], &[x]).await;
    let mut client = server.http(Some(x_key.clone()));
    ok(client.call("transfer", json!({"by": x, "to": y, "asset": "USD", "amount": "1.00"})));
    for (op, params) in [
        ("transfer", json!({"by": y, "to": x, "asset": "USD", "amount": "1.00"})),
        ("place_order", json!({"by": y, "market": "BTC-USD", "side": "buy", "price": "1", "qty": "0.01"})),
        ("balances", json!({"account": y})),
        ("orders", json!({"account": y})),
        ("deposit", json!({"account": x, "asset": "USD", "amount": "1.00", "reference": "self-service"})),
        ("withdraw", json!({"account": x, "asset": "USD", "amount": "1.00", "reference": "self-service"})),
        ("open_account", json!({"owner": 9})),
        ("freeze_account", json!({"account": y})),
        ("create_key", json!({"permissions": ["admin"]})),
        ("list_keys", json!({})),
    ] {
        let reply = client.call(op, params);
        rejected(&reply, "forbidden");
        assert_eq!(client.last_status, 403, "{op}: {reply}");
    }
    assert_balance(balance(&mut client, x, "USD").await, "98.00", "0.00", "the key reads its own account");

    // WebSocket: nothing before login but public ops; login failures; one login.
    let mut ws = Ws::connect(&server).await;
    rejected(&ws.call("transfer", json!({"by": x, "to": y, "asset": "USD", "amount": "1.00"})).await, "missing_auth");
    rejected(&ws.call("balances", json!({"account": x})).await, "missing_auth");
    ok(ws.call("markets", json!({})).await);
    let mut bad_login = auth::ws_login(&x_key, auth::unix_ms_now());
    bad_login["signature"] = json!("00".repeat(32));
    rejected(&ws.request(bad_login).await, "bad_signature");
    rejected(&ws.request(auth::ws_login(&x_key, auth::unix_ms_now() - 120_000)).await, "stale_timestamp");
    let login = auth::ws_login(&x_key, auth::unix_ms_now());
    let reply = ok(ws.request(login.clone()).await);
    assert_eq!(reply["result"], json!({"key_id": x_key.key_id, "permissions": "read,trade,pay", "accounts": [x]}));
    rejected(&ws.request(auth::ws_login(&x_key, auth::unix_ms_now())).await, "already_logged_in");
    let mut replay_ws = Ws::connect(&server).await;
    rejected(&replay_ws.request(login).await, "replayed_nonce");
    rejected(&ws.call("transfer", json!({"by": y, "to": x, "asset": "USD", "amount": "1.00"})).await, "forbidden");
    ok(ws.call("transfer", json!({"by": x, "to": y, "asset": "USD", "amount": "1.00"})).await);

    // Revoked: HTTP requests and the live session both end.
    ok(admin.call("revoke_key", json!({"key_id": x_key.key_id})));
    let reply = client.call("balances", json!({"account": x}));
    rejected(&reply, "unknown_key");
    assert_eq!(client.last_status, 401);
    rejected(&ws.call("transfer", json!({"by": x, "to": y, "asset": "USD", "amount": "1.00"})).await, "unknown_key");
    let ((code, reason), _) = ws.wait_closed().await;
    assert_eq!(code, 1008, "the revoked key's session is closed: {reason}");
    assert!(reason.contains("revoked"), "{reason}");
    let mut late = Ws::connect(&server).await;
    rejected(&late.try_login(&x_key).await, "unknown_key");
    assert_balance(balance(&mut admin, x, "USD").await, "97.00", "0.00", "nothing moved after the revocation");

    let metrics = server.http(None).get("/metrics").text;
    assert!(metric(&metrics, "bourse_gateway_errors_total{code=\"bad_signature\"}") >= Some(3.0), "{metrics}");
    assert!(metric(&metrics, "bourse_gateway_errors_total{code=\"forbidden\"}") >= Some(12.0), "{metrics}");
    drop(trade_only);
}

/// Revoking a key ends what it was allowed to see: a session of that key that only
/// listens (subscribed to its account, sending nothing) gets no pushes after the
/// revocation. (The server checks the key only when the session sends a message, so
/// a listening session keeps receiving its account's balances.)
#[tokio::test]
async fn a_revoked_keys_listening_session_receives_no_more_pushes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let x = open_account(&mut admin, 1).await;
    let z = open_account(&mut admin, 2).await;
    deposit(&mut admin, z, "USD", "100.00").await;
    let key = create_key(&mut admin, &["read"], &[x]).await;
    let mut listener = Ws::login(&server, &key).await;
    ok(listener.call("subscribe", json!({"channel": "account"})).await);
    ok(admin.call("transfer", json!({"by": z, "to": x, "asset": "USD", "amount": "1.00"})));
    let push = listener.next_matching(|m| m["channel"] == "account").await;
    assert_eq!(event(&push, "transferred")["amount"], "1.00", "pushes flow before the revocation");

    ok(admin.call("revoke_key", json!({"key_id": key.key_id})));
    ok(admin.call("transfer", json!({"by": z, "to": x, "asset": "USD", "amount": "2.00"})));
    let after = listener.next_within(Duration::from_secs(2)).await;
    assert!(
        after.as_ref().is_none_or(|m| m["channel"] != "account"),
        "a push reached a revoked key's session: {after:?}"
    );
}

#[tokio::test]
async fn the_rate_limit_refuses_with_429_per_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = config_with("rate_per_second = 1\nrate_burst = 3");
    let server = Server::start_with(&dir.path().join("data"), Some(&config));
    let mut admin = server.admin_http();
    let account = open_account(&mut admin, 1).await;
    let key = create_key(&mut admin, &["read"], &[account]).await;
    let mut limited = server.http(Some(key.clone()));
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let reply = limited.call("balances", json!({"account": account}));
        outcomes.push((limited.last_status, reply["error"]["code"].as_str().unwrap_or("ok").to_owned()));
    }
    assert!(outcomes[..3].iter().all(|(status, _)| *status == 200), "the burst is served: {outcomes:?}");
    assert!(outcomes.contains(&(429, "rate_limited".to_owned())), "{outcomes:?}");
    let refused = limited.post(json!({"op": "balances", "account": account}).to_string().as_bytes());
    assert_eq!(refused.status, 429, "{}", refused.text);
    let retry_after: u64 =
        refused.retry_after.as_deref().and_then(|s| s.parse().ok()).expect("a Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "one token a second: {retry_after}");
    // Per key: the admin key still has tokens.
    let other = server.http(None);
    assert_eq!(other.get("/health").status, 200);

    // A WebSocket session pays a token per message.
    let second = create_key(&mut admin, &["read"], &[account]).await;
    let mut ws = Ws::login(&server, &second).await;
    let mut codes = Vec::new();
    for _ in 0..10 {
        let reply = ws.call("balances", json!({"account": account})).await;
        codes.push(reply["error"]["code"].as_str().unwrap_or("ok").to_owned());
    }
    assert!(codes.contains(&"rate_limited".to_owned()), "{codes:?}");
    ws.close().await;
}

#[tokio::test]
async fn websocket_sessions_per_key_are_limited() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = config_with("max_sessions_per_key = 2");
    let server = Server::start_with(&dir.path().join("data"), Some(&config));
    let mut admin = server.admin_http();
    let account = open_account(&mut admin, 1).await;
    let key = create_key(&mut admin, &["read"], &[account]).await;
    let first = Ws::login(&server, &key).await;
    let mut second = Ws::login(&server, &key).await;
    let mut third = Ws::connect(&server).await;
    rejected(&third.try_login(&key).await, "too_many_sessions");
    // Another key is not limited by this one's sessions.
    let mut admin_ws = Ws::login(&server, &server.admin()).await;
    ok(admin_ws.call("ping", json!({})).await);
    // A session that ends frees its place (the server notices the close shortly).
    first.close().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = third.try_login(&key).await;
        if reply["ok"] == true {
            break;
        }
        rejected(&reply, "too_many_sessions");
        assert!(Instant::now() < deadline, "the closed session's place was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok(second.call("balances", json!({"account": account})).await);
    ok(third.call("balances", json!({"account": account})).await);
}

// ---------------------------------------------------------------------------------
// Malformed input

/// A signed request that must succeed: the server still serves.
#[track_caller]
fn still_serving(http: &mut Http) {
    let reply = http.call("list_keys", json!({}));
    assert_eq!(reply["ok"], true, "the server stopped serving: {reply}");
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn malformed_http_requests_are_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let a = open_account(&mut admin, 1).await;
    let b = open_account(&mut admin, 2).await;
    deposit(&mut admin, a, "USD", "10.00").await;

    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"not json".to_vec(), "malformed_json", "not JSON"),
        (b"{\"id\": 1, \"op\": \"transfer\"".to_vec(), "malformed_json", "cut JSON"),
        (json!({"id": {"x": 1}, "op": "ping"}).to_string().into_bytes(), "invalid_request", "an object id"),
        (json!({"id": 5}).to_string().into_bytes(), "invalid_request", "no op"),
        (json!({"id": 5, "op": 7}).to_string().into_bytes(), "invalid_request", "op not a string"),
        (json!({"id": 5, "op": "teleport"}).to_string().into_bytes(), "unknown_op", "unknown op"),
        (
            json!({"op": "transfer", "by": a, "to": b, "asset": "USD", "amount": 12.5}).to_string().into_bytes(),
            "invalid_params",
            "amount as a JSON number",
        ),
        (
            json!({"op": "transfer", "by": a, "to": b, "asset": "USD", "amout": "1.00"}).to_string().into_bytes(),
            "invalid_params",
            "unknown field",
        ),
        (
            json!({"op": "transfer", "by": "abc", "to": b, "asset": "USD", "amount": "1.00"}).to_string().into_bytes(),
            "invalid_params",
            "id not numeric",
        ),
        (
            json!({"op": "transfer", "by": -1, "to": b, "asset": "USD", "amount": "1.00"}).to_string().into_bytes(),
            "invalid_params",
            "negative id",
        ),
        (
            json!({"op": "transfer", "by": a, "to": b, "asset": "USD", "amount": "-1.00"}).to_string().into_bytes(),
            "invalid_params",
            "negative amount",
        ),
        (
            json!({"op": "place_order", "by": a, "market": "BTC-USD", "side": "up", "price": "1", "qty": "0.01"})
                .to_string()
                .into_bytes(),
            "invalid_params",
            "side up",
        ),
        (
            json!({"op": "place_order", "by": a, "market": "BTC-USD", "side": "buy", "price": "1", "qty": "0.01", "time_in_force": "forever"})
                .to_string()
                .into_bytes(),
            "invalid_params",
            "unknown time in force",
        ),
        (
            json!({"op": "deposit", "account": a, "asset": "USD", "amount": "1.00", "reference": "r".repeat(33)})
                .to_string()
                .into_bytes(),
            "invalid_params",
            "reference too long",
        ),
        (
            json!({"op": "transfer", "by": a, "to": b, "asset": "USD", "amount": "1.00", "key": "k".repeat(65)})
                .to_string()
                .into_bytes(),
            "invalid_params",
            "idempotency key too long",
        ),
    ];
    for (body, code, what) in cases {
        let reply = admin.post(&body);
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert_eq!(reply.json["ok"], false, "{what}: {}", reply.text);
        assert_eq!(reply.json["error"]["code"], code, "{what}: {}", reply.text);
        still_serving(&mut admin);
    }
    let reply = admin.post(json!({"id": 5, "op": "teleport"}).to_string().as_bytes());
    assert_eq!(reply.json["id"], 5, "the id is echoed even when the op is unknown");
    assert!(reply.json["error"]["message"].as_str().is_some_and(|m| m.contains("place_order")), "lists the ops");
    let reply =
        admin.post(json!({"op": "transfer", "by": a, "to": b, "asset": "USD", "amount": 12.5}).to_string().as_bytes());
    assert!(reply.text.contains("decimal string"), "says amounts are strings: {}", reply.text);
    // Ids may be numeric strings.
    ok(admin.request(
        &json!({"op": "transfer", "by": a.to_string(), "to": b.to_string(), "asset": "USD", "amount": "1.00"}),
    ));
    assert_balance(balance(&mut admin, a, "USD").await, "9.00", "0.00", "only the well-formed transfer moved money");

    // A body over max_message_bytes (64 KiB): 413 in the API's error shape, naming the
    // limit, nothing applied.
    let too_large = |reply: &HttpReply| {
        assert_eq!(reply.status, 413, "{}", reply.text);
        assert_eq!(reply.json["ok"], false, "JSON: {}", reply.text);
        assert_eq!(reply.json["error"]["code"], "payload_too_large", "{}", reply.text);
        let message = reply.json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("65536 bytes"), "names the limit: {message}");
    };
    let huge = json!({"op": "transfer", "by": a, "to": b, "asset": "USD", "amount": "1.00", "key": "x", "pad": "p".repeat(70_000)});
    too_large(&admin.post(huge.to_string().as_bytes()));
    still_serving(&mut admin);
    too_large(&server.http(None).post(&vec![b'{'; 1 << 20]));
    still_serving(&mut admin);

    // actix's other refusals are JSON too: a query string that does not parse, a
    // WebSocket upgrade that is not one, a body cut short (the client half-closes).
    let public = server.http(None);
    for (path, status, code) in [
        ("/v1/markets/BTC-USD/depth?levels=many", 400, "invalid_params"),
        ("/v1/markets/BTC-USD/trades?limit=-1", 400, "invalid_params"),
        ("/v1/ws", 400, "websocket_handshake"),
        ("/v1/dashboard/ws", 400, "websocket_handshake"),
    ] {
        let reply = public.get(path);
        assert_eq!(
            (reply.status, reply.json["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.json["ok"], false, "{path}: {}", reply.text);
        still_serving(&mut admin);
    }
    let mut short = StdTcpStream::connect(server.http).expect("connect");
    short.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    short.write_all(b"POST /v1/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n{\"op\":").expect("write");
    short.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    let _ = short.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let body: Value = serde_json::from_str(&answer[answer.find("\r\n\r\n").expect("a body") + 4..]).expect("JSON");
    assert_eq!(body["error"]["code"], "bad_payload", "{answer}");
    still_serving(&mut admin);

    // Raw TCP: a cut request then a hang-up; garbage; a request that never ends.
    let mut cut = StdTcpStream::connect(server.http).expect("connect");
    cut.write_all(b"POST /v1/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n{\"op\":\"trans")
        .expect("write");
    drop(cut);
    still_serving(&mut admin);
    let mut garbage = StdTcpStream::connect(server.http).expect("connect");
    garbage.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    garbage.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe\x00\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let _ = garbage.read_to_end(&mut answer);
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"), "garbage gets a 4xx or a closed socket");
    still_serving(&mut admin);
    let mut bad_header = StdTcpStream::connect(server.http).expect("connect");
    bad_header.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    bad_header.write_all(b"POST /v1/rpc HTTP/1.1\r\nContent-Length: banana\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let _ = bad_header.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
    still_serving(&mut admin);
    assert_balance(balance(&mut admin, a, "USD").await, "9.00", "0.00", "nothing malformed moved money");
}

/// A request is a JSON object: well-formed JSON of another shape (an array, a string)
/// is an `invalid_request`, never served. (Serde reads a struct from a JSON array by
/// position, so a parser that reads the envelope into a struct must refuse arrays
/// itself: `["id-1", "ping"]` would otherwise be a ping.)
#[tokio::test]
async fn json_that_is_not_an_object_is_an_invalid_request() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let mut ws = Ws::login(&server, &server.admin()).await;
    for (body, what) in [
        (&b"[1, 2, 3]"[..], "an array"),
        (br#"["id-1", "ping"]"#, "an array shaped like id and op"),
        (br#"[null, "balances", 0]"#, "an array shaped like a balances request"),
        (b"\"ping\"", "a string"),
        (b"42", "a number"),
    ] {
        let reply = admin.post(body);
        assert_eq!(
            (reply.status, reply.json["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{what}: {}",
            reply.text
        );
        ws.send_text(std::str::from_utf8(body).expect("text")).await;
        let reply = ws.next_matching(common::is_reply).await;
        assert_eq!(reply["error"]["code"], "invalid_request", "{what} over a WebSocket: {reply}");
        still_serving(&mut admin);
    }
}

/// The session's underlying TCP stream, to write bytes a WebSocket client never would.
fn raw_tcp(ws: &mut Ws) -> &mut tokio::net::TcpStream {
    match ws.stream.get_mut() {
        MaybeTlsStream::Plain(stream) => stream,
        _ => panic!("a plain TCP stream"),
    }
}

#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn malformed_websocket_input_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let account = open_account(&mut admin, 1).await;
    let mut bystander = Ws::login(&server, &server.admin()).await;

    let mut ws = Ws::login(&server, &server.admin()).await;
    // Not JSON, wrong types, unknown op: an error reply each (id null when there is
    // none to echo); the session goes on.
    ws.send_text("not json").await;
    let reply = ws.next_matching(common::is_reply).await;
    assert_eq!(
        (reply["id"].clone(), reply["error"]["code"].clone()),
        (Value::Null, json!("malformed_json")),
        "{reply}"
    );
    rejected(
        &ws.request(json!({"id": "w1", "op": "transfer", "by": account, "to": 0, "asset": "USD", "amount": 1})).await,
        "invalid_params",
    );
    rejected(&ws.request(json!({"id": "w2", "op": "nope"})).await, "unknown_op");
    rejected(&ws.request(json!({"id": "w3"})).await, "invalid_request");
    rejected(
        &ws.request(json!({"id": "w4", "op": "subscribe", "channel": "weather", "market": "BTC-USD"})).await,
        "invalid_params",
    );
    // Binary: refused, the session goes on.
    ws.send(Message::binary(vec![1_u8, 2, 3])).await;
    let reply = ws.next_matching(common::is_reply).await;
    rejected(&reply, "binary_not_supported");
    ok(ws.call("balances", json!({"account": account})).await);

    // A text message over max_message_bytes: a bad_frame error, then the session is
    // closed with a policy-violation code and a reason.
    let huge = json!({"op": "ping", "pad": "p".repeat(70_000)}).to_string();
    ws.send_text(&huge).await;
    let ((code, reason), before) = ws.wait_closed().await;
    assert!(before.iter().any(|m| m["error"]["code"] == "bad_frame"), "a bad_frame error before the close: {before:?}");
    assert_eq!(code, 1008, "policy violation: {reason}");
    assert!(!reason.is_empty(), "the close names a reason");
    ok(bystander.call("balances", json!({"account": account})).await);

    // An unmasked client frame is a protocol error: bad_frame, then closed.
    let mut unmasked = Ws::login(&server, &server.admin()).await;
    let payload = br#"{"op":"ping"}"#;
    let mut frame = vec![0x81, payload.len() as u8];
    frame.extend_from_slice(payload);
    raw_tcp(&mut unmasked).write_all(&frame).await.expect("write");
    let ((code, _), before) = unmasked.wait_closed().await;
    assert!(before.iter().any(|m| m["error"]["code"] == "bad_frame"), "{before:?}");
    assert_eq!(code, 1008);
    ok(bystander.call("ping", json!({})).await);

    // Invalid UTF-8 in a text frame: refused (an error and/or a close), never applied.
    let mut invalid = Ws::login(&server, &server.admin()).await;
    let bad_utf8 = [0xff_u8, 0xfe, 0xfd];
    let mask = [1_u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | bad_utf8.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(bad_utf8.iter().zip(mask.iter().cycle()).map(|(byte, key)| byte ^ key));
    raw_tcp(&mut invalid).write_all(&frame).await.expect("write");
    let message = invalid.next_within(WAIT).await;
    assert!(
        message.as_ref().is_none_or(|m| m["ok"] == false),
        "invalid UTF-8 is not served: {message:?} (closed: {:?})",
        invalid.closed
    );
    ok(bystander.call("ping", json!({})).await);

    // A cut frame: a header announcing 200 bytes, 10 of them, then a hang-up.
    let mut cut = Ws::login(&server, &server.admin()).await;
    let mut frame = vec![0x81, 0x80 | 0x7e, 0, 200, 9, 9, 9, 9];
    frame.extend_from_slice(&[b'x'; 10]);
    raw_tcp(&mut cut).write_all(&frame).await.expect("write");
    raw_tcp(&mut cut).shutdown().await.expect("shutdown");
    drop(cut);

    // Garbage to the WebSocket endpoint without a handshake.
    let mut garbage = tokio::net::TcpStream::connect(server.http).await.expect("connect");
    garbage
        .write_all(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n\x81\x85garbage")
        .await
        .expect("write");
    drop(garbage);
    let mut not_ws = StdTcpStream::connect(server.http).expect("connect");
    not_ws.write_all(&[0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9]).expect("write");
    drop(not_ws);

    // Every other session, and new ones, still work.
    ok(bystander.call("balances", json!({"account": account})).await);
    let mut fresh = Ws::login(&server, &server.admin()).await;
    ok(fresh.call("balances", json!({"account": account})).await);
    still_serving(&mut admin);
    let metrics = server.http(None).get("/metrics").text;
    assert!(metric(&metrics, "bourse_gateway_errors_total{code=\"bad_frame\"}") >= Some(2.0), "{metrics}");
    assert!(metric(&metrics, "bourse_gateway_errors_total{code=\"malformed_json\"}") >= Some(1.0), "{metrics}");
}

// ---------------------------------------------------------------------------------
// Metrics, health, readiness

#[tokio::test]
async fn metrics_count_what_happened_and_health_and_ready_answer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let public = server.http(None);
    let health = public.get("/health");
    assert_eq!((health.status, health.json.clone()), (200, json!({"status": "up"})));

    let mut admin = server.admin_http();
    let a = open_account(&mut admin, 1).await;
    let b = open_account(&mut admin, 2).await;
    deposit(&mut admin, a, "USD", "100.00").await;
    let mut last_seq = 0;
    for index in 0..5 {
        let reply = ok(admin.call(
            "transfer",
            json!({"by": a, "to": b, "asset": "USD", "amount": "1.00", "key": format!("m-{index}")}),
        ));
        last_seq = reply["seq"].as_u64().expect("seq");
    }
    let replay = ok(admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1.00", "key": "m-0"})));
    assert_eq!(replay["replayed"], true);
    rejected(
        &admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1000.00"})),
        "insufficient_funds",
    );
    rejected(&admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1.001"})), "invalid_params");
    for nonce in ["bad-sig-nonce-1", "bad-sig-nonce-2"] {
        let mut headers = Http::signature_headers(&server.admin(), auth::unix_ms_now(), nonce, b"{}");
        headers[3].1 = "00".repeat(32);
        assert_eq!(public.post_raw(b"{}", &headers).status, 401);
    }
    assert_eq!(public.post(br#"{"op":"orders","account":0}"#).status, 401);
    assert_eq!(admin.post(b"nope").status, 400);
    let ws = Ws::login(&server, &server.admin()).await;

    let text = public.get("/metrics");
    assert_eq!(text.status, 200);
    let text = text.text;
    let sample = |name: &str| metric(&text, name).unwrap_or_else(|| panic!("no sample {name} in\n{text}"));
    let count = |name: &str| counter(&text, name).unwrap_or_else(|| panic!("no counter {name} in\n{text}"));
    assert_eq!(count("bourse_commands_total{kind=\"OpenAccount\",outcome=\"accepted\"}"), 2);
    assert_eq!(count("bourse_commands_total{kind=\"Deposit\",outcome=\"accepted\"}"), 1);
    assert_eq!(count("bourse_commands_total{kind=\"Transfer\",outcome=\"accepted\"}"), 5);
    assert_eq!(count("bourse_commands_total{kind=\"Transfer\",outcome=\"replayed\"}"), 1);
    assert_eq!(count("bourse_commands_total{kind=\"Transfer\",outcome=\"rejected\"}"), 1);
    assert_eq!(count("bourse_commands_total{kind=\"Withdraw\",outcome=\"accepted\"}"), 0);
    assert_eq!(count("bourse_rejections_total{reason=\"InsufficientFunds\"}"), 1);
    assert_eq!(count("bourse_gateway_errors_total{code=\"bad_signature\"}"), 2);
    assert_eq!(count("bourse_gateway_errors_total{code=\"missing_auth\"}"), 1);
    assert_eq!(count("bourse_gateway_errors_total{code=\"malformed_json\"}"), 1);
    assert_eq!(count("bourse_gateway_errors_total{code=\"invalid_params\"}"), 1);
    assert_eq!(count("bourse_sessions{transport=\"websocket\"}"), 1);
    assert!(sample("bourse_end_to_end_latency_seconds_count{transport=\"http\"}") >= 12.0);
    // One pipeline latency per command counted (the publisher records a batch's under
    // one lock, before its replies go out).
    let commands: u64 = text
        .lines()
        .filter(|line| line.starts_with("bourse_commands_total{"))
        .map(|line| line.rsplit(' ').next().and_then(|value| value.parse::<u64>().ok()).expect("a count"))
        .sum();
    assert_eq!(commands, 10);
    assert_eq!(count("bourse_pipeline_latency_seconds_count"), commands);
    assert!(sample("bourse_runtime_commands_total") >= 10.0);

    let ready = public.get("/ready");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json["status"], "ready");
    assert!(ready.json["last_seq"].as_u64() >= Some(last_seq), "{}", ready.text);

    // Batch durability syncs the journal within a few milliseconds of a reply.
    let deadline = Instant::now() + WAIT;
    while metric(&public.get("/metrics").text, "bourse_journal_durable_seq") < Some(last_seq as f64) {
        assert!(Instant::now() < deadline, "the journal was never synced up to seq {last_seq}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    ws.close().await;
    let deadline = Instant::now() + WAIT;
    while metric(&public.get("/metrics").text, "bourse_sessions{transport=\"websocket\"}") != Some(0.0) {
        assert!(Instant::now() < deadline, "the closed session is still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
