//! Export and rebuild: a rebuilt engine is the same engine (hash, and behaviour on the
//! commands that follow).
#![allow(clippy::unwrap_used)]

use bourse_core::book::{MarketId, Price, Qty, Side, TimeInForce};
use bourse_core::command::*;
use bourse_core::config::Config;
use bourse_core::ids::*;
use bourse_core::money::Amount;
use bourse_core::{Capacity, Engine};

const CONFIG: &str = r#"
[[assets]]
code = "BTC"
scale = 8
[[assets]]
code = "USD"
scale = 2
[[markets]]
base = "BTC"
quote = "USD"
lot = 10000
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }]
"#;

fn commands() -> Vec<Command> {
    let mut commands = Vec::new();
    for owner in 0..4 {
        commands
            .push(Command::OpenAccount(OpenAccount { owner: OwnerId::new(owner), kyc_tier: KycTier::new(0).unwrap() }));
    }
    for account in 0..4 {
        for asset in 0..2 {
            commands.push(Command::Deposit(Deposit {
                account: AccountId::new(account),
                key: IdempotencyKey::new(u128::from(asset)),
                asset: AssetId::new(asset),
                amount: Amount::new(1_000_000_000).unwrap(),
                reference: Reference::new("wire").unwrap(),
            }));
        }
    }
    for step in 0..200_u32 {
        let by = AccountId::new(step % 4);
        let command = match step % 5 {
            0 => Command::Transfer(Transfer {
                by,
                key: IdempotencyKey::new(u128::from(step) + 100),
                to: AccountId::new((step + 1) % 4),
                asset: AssetId::new(1),
                amount: Amount::new(u64::from(step) + 1).unwrap(),
            }),
            1 => Command::Authorize(Authorize {
                by,
                key: IdempotencyKey::new(u128::from(step) + 100),
                payee: AccountId::new((step + 2) % 4),
                asset: AssetId::new(1),
                amount: Amount::new(500).unwrap(),
                expires_at: Timestamp::from_nanos(u64::from(step) * 1_000 + 50_000),
            }),
            _ => Command::PlaceOrder(PlaceOrder {
                by,
                market: MarketId::new(0),
                side: if step % 2 == 0 { Side::Buy } else { Side::Sell },
                price: Price::new(600 + u64::from(step % 7)),
                size: OrderSize::Qty(Qty::new(u64::from(step % 13) + 1).unwrap()),
                time_in_force: TimeInForce::Gtc,
                post_only: false,
                stp: None,
                client_order_id: bourse_core::book::ClientOrderId::new(u128::from(step) + 1),
            }),
        };
        commands.push(command);
    }
    commands
}

fn apply(engine: &mut Engine, seq: u64, command: &Command) -> Vec<bourse_core::event::Event> {
    let mut out = Vec::new();
    let command = SequencedCommand {
        seq: Seq::new(seq),
        timestamp: Timestamp::from_nanos(seq * 1_000),
        command: command.clone(),
    };
    engine.apply(&command, &mut out);
    out
}

#[test]
fn a_rebuilt_engine_has_the_same_hash_and_behaves_the_same() {
    let config = Config::from_toml_str(CONFIG).unwrap();
    let commands = commands();
    for cut in [0, 5, 20, 60, 150, commands.len()] {
        let mut live = Engine::new(&config);
        for (index, command) in commands[..cut].iter().enumerate() {
            apply(&mut live, index as u64 + 1, command);
        }
        let state = live.export_state();
        let mut rebuilt = Engine::from_state(&state, Capacity::default()).unwrap();
        rebuilt.check_invariants();
        assert_eq!(rebuilt.state_hash(), live.state_hash(), "cut at {cut}");
        assert_eq!(rebuilt.export_state(), state);
        for (index, command) in commands[cut..].iter().enumerate() {
            let seq = (cut + index) as u64 + 1;
            assert_eq!(apply(&mut rebuilt, seq, command), apply(&mut live, seq, command), "command {seq}");
        }
        assert_eq!(rebuilt.state_hash(), live.state_hash());
        rebuilt.check_invariants();
    }
}

#[test]
fn a_state_with_broken_references_is_refused_with_a_reason() {
    let config = Config::from_toml_str(CONFIG).unwrap();
    let mut live = Engine::new(&config);
    for (index, command) in commands().iter().enumerate() {
        apply(&mut live, index as u64 + 1, command);
    }
    let mut state = live.export_state();
    state.orders[0].account = 99;
    let error = Engine::from_state(&state, Capacity::default()).unwrap_err();
    assert!(error.to_string().contains("order"), "{error}");
    let mut state = live.export_state();
    state.balances[0].asset = 7;
    assert!(Engine::from_state(&state, Capacity::default()).unwrap_err().to_string().contains("asset"));
}

#[test]
fn depth_on_request_matches_the_book_and_its_sequence() {
    let config = Config::from_toml_str(CONFIG).unwrap();
    let mut engine = Engine::new(&config);
    for (index, command) in commands().iter().enumerate() {
        apply(&mut engine, index as u64 + 1, command);
    }
    let market = MarketId::new(0);
    let depth = engine.depth(market, 3).unwrap();
    let book = engine.market(market).unwrap().book();
    assert_eq!(depth.market_seq, engine.market(market).unwrap().market_seq());
    assert!(depth.bids.len() <= 3 && depth.asks.len() <= 3);
    let expected: Vec<_> = book.side(Side::Buy).levels().take(3).map(|l| (l.price(), l.total(), l.count())).collect();
    assert_eq!(depth.bids, expected);
    let (bid, ask) = depth.best();
    assert_eq!(bid, book.best_bid().map(bourse_core::book::Level::price));
    assert_eq!(ask, book.best_ask().map(bourse_core::book::Level::price));
    assert!(bid.zip(ask).is_none_or(|(bid, ask)| bid < ask));
    assert!(engine.depth(MarketId::new(9), 3).is_none());
}

/// Pins the state hash's values, with and without rules: snapshot headers and
/// journal checkpoints record them, so changing what is hashed (hashing the rules'
/// empty section for an engine that never saw a rule set, say) would make every
/// recorded state fail to verify. Change them only with a new hash version.
#[test]
fn the_state_hash_values_are_pinned() {
    let config = Config::from_toml_str(CONFIG).unwrap();
    let mut engine = Engine::new(&config);
    let mut commands = commands();
    for (index, command) in commands.iter().enumerate() {
        apply(&mut engine, index as u64 + 1, command);
    }
    assert_eq!(engine.state_hash().to_string(), "98c2ca0c72579ae8c58d184c86951b1d");
    let rules = "[tiers.0]\nmax_single_payment = { USD = \"2.00\" }\nreview_threshold = { USD = \"1.00\" }\n";
    let rules = bourse_core::rules::RuleSet::from_toml_str(rules).unwrap();
    commands = vec![
        Command::PublishRules(PublishRules { rules }),
        Command::ActivateRules(ActivateRules { version: RuleVersion::new(1), share_bps: 10_000 }),
    ];
    for (cents, key) in [(50, 1_000), (150, 1_001), (250, 1_002)] {
        let (by, to, key) = (AccountId::new(0), AccountId::new(1), IdempotencyKey::new(key));
        commands.push(Command::Transfer(Transfer {
            by,
            key,
            to,
            asset: AssetId::new(1),
            amount: Amount::new(cents).unwrap(),
        }));
    }
    for (index, command) in commands.iter().enumerate() {
        apply(&mut engine, index as u64 + 1_001, command);
    }
    assert_eq!(engine.pending_reviews().count(), 1, "one transfer held, one refused");
    assert_eq!(engine.state_hash().to_string(), "6f8ac89c40f3cedbaa3d05a925a267f2");
}
