//! One order, socket to engine and back: drives a running `bourse serve` over one
//! WebSocket with limit orders that rest and are cancelled (place, cancel, place, …),
//! `--window` requests in flight, and prints the round-trip percentiles. Used to
//! profile the server's per-order cost (`perf record -p <server pid>` while it runs);
//! the load tests measure throughput and latency under a realistic mix.
//!
//! ```text
//! BOURSE_KEY=<admin key> cargo run --release -p bourse-gateway --example order_roundtrip -- \
//!     --url ws://127.0.0.1:8080/v1/ws --orders 200000 --window 64
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bourse_gateway::auth::{Credentials, unix_ms_now, ws_login};
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    url: String,
    orders: u64,
    window: usize,
}

fn args() -> Args {
    let mut args = Args { url: "ws://127.0.0.1:8080/v1/ws".into(), orders: 100_000, window: 64 };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().expect("a value after each flag");
        match flag.as_str() {
            "--url" => args.url = value,
            "--orders" => args.orders = value.parse().expect("--orders N"),
            "--window" => args.window = value.parse().expect("--window N"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn call(ws: &mut Ws, request: Value) -> Value {
    let id = request["id"].clone();
    ws.send(Message::text(request.to_string())).await.unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(text) = message {
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert_eq!(reply["ok"], true, "{reply}");
                return reply;
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let credentials = Credentials::from_env_or_file(None).expect("BOURSE_KEY: an admin key");
    let (mut ws, _) = tokio_tungstenite::connect_async(args.url.as_str()).await.unwrap();
    let mut login = ws_login(&credentials, unix_ms_now());
    login["id"] = json!("login");
    call(&mut ws, login).await;
    let opened = call(&mut ws, json!({"id": "open", "op": "open_account", "owner": 424_242})).await;
    let account = opened["result"]["account"].as_u64().unwrap();
    call(
        &mut ws,
        json!({"id": "fund", "op": "deposit", "account": account, "asset": "USD", "amount": "100000000.00", "reference": "roundtrip"}),
    )
    .await;

    // Even requests place a resting buy far below the market; odd ones cancel it. One
    // connection's commands are applied in the order sent, so a cancel need not wait
    // for its place's reply.
    let mut histogram = Histogram::<u64>::new_with_bounds(1_000, 10_000_000_000, 3).unwrap();
    let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(args.window * 2);
    let total = args.orders * 2;
    let (mut sent, mut done) = (0_u64, 0_u64);
    let started = Instant::now();
    while done < total {
        while sent < total && in_flight.len() < args.window {
            let order = sent / 2;
            let client = format!("rt{order}");
            let request = if sent % 2 == 0 {
                let price = 1_000 + order % 500;
                json!({"id": sent, "op": "place_order", "by": account, "market": "BTC-USD", "side": "buy", "price": price.to_string(), "qty": "0.01", "client_order_id": client})
            } else {
                json!({"id": sent, "op": "cancel_order", "by": account, "client_order_id": client})
            };
            ws.send(Message::text(request.to_string())).await.unwrap();
            in_flight.insert(sent, Instant::now());
            sent += 1;
        }
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        let Message::Text(text) = message else { continue };
        let reply: Value = serde_json::from_str(&text).unwrap();
        let Some(id) = reply["id"].as_u64() else { continue };
        if let Some(at) = in_flight.remove(&id) {
            assert_eq!(reply["ok"], true, "{reply}");
            histogram.saturating_record(u64::try_from(at.elapsed().as_nanos()).unwrap());
            done += 1;
        }
    }
    let elapsed = started.elapsed();
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "{} requests ({} orders placed and cancelled) in {:.2?}: {:.0} requests/s; round trip p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs (window {})",
        total,
        args.orders,
        elapsed,
        total as f64 / elapsed.as_secs_f64(),
        us(0.5),
        us(0.99),
        us(0.999),
        histogram.max() as f64 / 1_000.0,
        args.window
    );
}
