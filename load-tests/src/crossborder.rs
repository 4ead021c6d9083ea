//! Cross-border payments in the load: the currency pairs paid (each routed through
//! the load's own markets, so the load's makers are the liquidity), what the payee
//! should get at the mid prices (to set a `min_receive` that most payments meet), and
//! the checks of a quote's and a payment's reply.
//!
//! A payment's reply is checked leg by leg: each `cross_border_leg` against the
//! payer's taker `fill`s of its order (market, side, lots, the schedule's taker fee
//! per fill), its `input` and `output` against those fills; then the payer's ledger:
//! what the fills moved, less each leg's remainder and the surplus (both the house's)
//! and less the receive amount (the payee's), must be exactly the send amount out of
//! `from` and nothing in any other asset, so the intermediate currencies net to zero.
//! The model then books the payer `-send` of `from` and the payee `+receive` of `to`;
//! the makers' side of the legs' trades reaches the makers' sessions as fills like any
//! other (pushes, FIX execution reports).

use crate::catalog::{Catalog, Market};
use crate::mix::OpKind;
use crate::model::Ledger;
use crate::wire::{Event, ResultBody};

/// The pairs paid: (from, to, least and most sent in whole units of `from`). Every
/// load market has USD on one side, so each pair has a route of one or two of them.
const PAIRS: &[(&str, &str, i128, i128)] = &[
    // EUR-USD sell, USD-JPY sell.
    ("EUR", "JPY", 300, 1_500),
    // EUR-USD buy.
    ("USD", "EUR", 300, 1_500),
    // GBP-USD sell, EUR-USD buy.
    ("GBP", "EUR", 300, 1_500),
    // USD-JPY buy, GBP-USD buy.
    ("JPY", "GBP", 50_000, 250_000),
];

/// Most payments ask a `min_receive` this many basis points under the mid estimate:
/// resting orders are at most `PASSIVE_TICKS` from the mid (well under 1 %), and the
/// fees 2 basis points a leg, so those are met unless a leg's output falls just under
/// a lot boundary of the next leg (then `rate_moved`).
pub(crate) const SLACK_BPS: i128 = 200;
/// One payment in this many asks for the mid estimate itself, which the books (bids
/// under the mid, asks over it, and fees) mostly do not give: `rate_moved`, the
/// rejection path. (Not always: a last leg that buys whole lots may buy as many at a
/// worse price.)
pub(crate) const TIGHT_ONE_IN: u32 = 10;
/// How long the load's quotes may be executed.
pub(crate) const QUOTE_TTL_MS: u64 = 10_000;

/// A pair as the catalog indexes it, with its route through the load's markets.
#[derive(Clone, Debug)]
pub(crate) struct Pair {
    pub(crate) from: usize,
    pub(crate) to: usize,
    /// (market index, the payer buys the base) per leg.
    pub(crate) path: Vec<(usize, bool)>,
    /// Least and most sent, in minor units of `from`.
    pub(crate) send_minor: (i128, i128),
}

/// Resolves [`PAIRS`] against the listed markets and assets: a market joining the two
/// assets, else two joined by a third asset.
pub(crate) fn resolve_pairs(catalog: &Catalog) -> Result<Vec<Pair>, String> {
    let mut pairs = Vec::new();
    for (from_code, to_code, least, most) in PAIRS {
        let (Some(from), Some(to)) = (catalog.asset(from_code), catalog.asset(to_code)) else {
            return Err(format!("cross-border pair {from_code}→{to_code}: the server has no such asset"));
        };
        let path = path(&catalog.markets, from, to)
            .ok_or_else(|| format!("cross-border pair {from_code}→{to_code}: no route of the load's markets"))?;
        let unit = 10_i128.pow(catalog.assets[from].scale);
        pairs.push(Pair { from, to, path, send_minor: (least * unit, most * unit) });
    }
    Ok(pairs)
}

/// The leg that converts `from` on `market`: `Some(buy)` when `from` is its quote
/// (the payer buys the base), `Some(false)` when it is the base.
fn leg_from(market: &Market, from: usize) -> Option<bool> {
    if market.quote == from {
        Some(true)
    } else if market.base == from {
        Some(false)
    } else {
        None
    }
}

fn other_side(market: &Market, asset: usize) -> usize {
    if market.base == asset { market.quote } else { market.base }
}

fn path(markets: &[Market], from: usize, to: usize) -> Option<Vec<(usize, bool)>> {
    for (index, market) in markets.iter().enumerate() {
        if let Some(buy) = leg_from(market, from)
            && other_side(market, from) == to
        {
            return Some(vec![(index, buy)]);
        }
    }
    for (first, market) in markets.iter().enumerate() {
        let Some(buy) = leg_from(market, from) else { continue };
        let middle = other_side(market, from);
        for (second, next) in markets.iter().enumerate() {
            if let Some(next_buy) = leg_from(next, middle)
                && second != first
                && other_side(next, middle) == to
            {
                return Some(vec![(first, buy), (second, next_buy)]);
            }
        }
    }
    None
}

/// What `send` minor units of the pair's `from` give the payee at the mid prices,
/// converting whole lots per leg with the taker fee of KYC tier 0, as the engine's
/// forward pass sizes a route.
pub(crate) fn mid_receive(markets: &[Market], pair: &Pair, send: i128) -> i128 {
    let mut amount = send;
    for &(index, buy) in &pair.path {
        let market = &markets[index];
        let unit = i128::from(market.mid_ticks) * market.tick_minor;
        let taker_bps = i128::from(market.fee_bps.1);
        amount = if buy {
            let lots = amount * 10_000 / (unit * (10_000 + taker_bps));
            lots * market.lot_minor
        } else {
            let notional = amount / market.lot_minor * unit;
            notional - Market::fee(notional, market.fee_bps.1)
        };
    }
    amount
}

/// Engine rejections (with a `seq`) that are a legitimate outcome of a cross-border
/// request of the load: the books moved or ran dry, a quote expired. Anything else
/// (`no_route`, `same_account`, `unknown_quote`, `quote_used`…) is a failure.
pub(crate) fn legitimate_rejection(op: OpKind, code: &str) -> bool {
    match op {
        OpKind::PayCrossBorder => matches!(code, "rate_moved" | "insufficient_liquidity" | "insufficient_funds"),
        OpKind::QuotePayment => code == "insufficient_liquidity",
        OpKind::ExecuteQuote => {
            matches!(code, "rate_moved" | "insufficient_liquidity" | "insufficient_funds" | "quote_expired")
        }
        _ => false,
    }
}

/// A quote the session holds, to execute later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenQuote {
    pub(crate) quote: u64,
    pub(crate) payee: u64,
    pub(crate) pair: usize,
    pub(crate) send: i128,
    pub(crate) receive: i128,
    /// An `execute_quote` of it is in flight.
    pub(crate) busy: bool,
}

/// Who pays whom in which pair.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parties {
    pub(crate) payer: u64,
    pub(crate) payee: u64,
    pub(crate) from: usize,
    pub(crate) to: usize,
}

/// What a payment asked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Terms {
    /// `pay_cross_border`: send at most `offered`, the payee to get at least `min_receive`.
    Direct { offered: i128, min_receive: i128 },
    /// `execute_quote`: exactly the quote's amounts.
    Quote { quote: u64, send: i128, receive: i128 },
}

/// A payment the reply shows, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paid {
    pub(crate) payment: u64,
    pub(crate) send: i128,
    pub(crate) receive: i128,
    pub(crate) taker_fills: usize,
}

fn amount(catalog: &Catalog, asset: usize, text: Option<&str>, name: &str) -> Result<i128, String> {
    text.and_then(|text| catalog.minor(asset, text))
        .ok_or_else(|| format!("{name} {text:?} is not an amount of {}", catalog.assets[asset].code))
}

fn ensure(condition: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(why()) }
}

/// Checks a quote's reply against what was asked (`receive` of the pair's `to`).
pub(crate) fn check_quoted(
    catalog: &Catalog,
    parties: Parties,
    receive: i128,
    result: Option<&ResultBody<'_>>,
    events: &[Event<'_>],
) -> Result<(u64, i128), String> {
    let result = result.ok_or("no result")?;
    let quote = result.quote.ok_or("no quote id in the result")?;
    let (from, to) = (&catalog.assets[parties.from].code, &catalog.assets[parties.to].code);
    ensure(result.payer == Some(parties.payer) && result.payee == Some(parties.payee), || {
        format!(
            "quote {quote}: payer {:?} payee {:?}, asked {} and {}",
            result.payer, result.payee, parties.payer, parties.payee
        )
    })?;
    ensure(result.from.as_deref() == Some(from.as_str()) && result.to.as_deref() == Some(to.as_str()), || {
        format!("quote {quote}: {:?}→{:?}, asked {from}→{to}", result.from, result.to)
    })?;
    let send = amount(catalog, parties.from, result.send.as_deref(), "send")?;
    let quoted = amount(catalog, parties.to, result.receive.as_deref(), "receive")?;
    ensure(quoted == receive && send > 0, || format!("quote {quote}: send {send} receive {quoted}, asked {receive}"))?;
    let event = events.iter().find(|event| event.kind == "quoted" && event.quote == Some(quote));
    let matches = event.is_some_and(|event| {
        event.payer == Some(parties.payer)
            && event.payee == Some(parties.payee)
            && event.send.as_deref().and_then(|text| catalog.minor(parties.from, text)) == Some(send)
            && event.receive.as_deref().and_then(|text| catalog.minor(parties.to, text)) == Some(quoted)
    });
    ensure(matches, || format!("quote {quote}: no quoted event with the result's terms"))?;
    Ok((quote, send))
}

/// Checks a payment's reply (`pay_cross_border`, `execute_quote`): the result and
/// `cross_border_paid` against what was asked, every leg against the payer's fills,
/// and the payer's ledger (see the module documentation).
pub(crate) fn check_paid(
    catalog: &Catalog,
    parties: Parties,
    terms: Terms,
    result: Option<&ResultBody<'_>>,
    events: &[Event<'_>],
) -> Result<Paid, String> {
    let result = result.ok_or("no result")?;
    let payment = result.payment.ok_or("no payment id in the result")?;
    let paid = |why: String| format!("payment {payment}: {why}");
    let (from, to) = (&catalog.assets[parties.from].code, &catalog.assets[parties.to].code);
    ensure(result.payer == Some(parties.payer) && result.payee == Some(parties.payee), || {
        paid(format!(
            "payer {:?} payee {:?}, asked {} and {}",
            result.payer, result.payee, parties.payer, parties.payee
        ))
    })?;
    ensure(result.from.as_deref() == Some(from.as_str()) && result.to.as_deref() == Some(to.as_str()), || {
        paid(format!("{:?}→{:?}, asked {from}→{to}", result.from, result.to))
    })?;
    let send = amount(catalog, parties.from, result.send.as_deref(), "send").map_err(paid)?;
    let receive = amount(catalog, parties.to, result.receive.as_deref(), "receive").map_err(paid)?;
    let surplus = amount(catalog, parties.from, result.surplus.as_deref(), "surplus").map_err(paid)?;
    let within = match terms {
        Terms::Direct { offered, min_receive } => {
            result.quote.is_none() && send > 0 && send <= offered && receive >= min_receive && surplus == 0
        }
        Terms::Quote { quote, send: quoted_send, receive: quoted_receive } => {
            result.quote == Some(quote) && send == quoted_send && receive == quoted_receive && surplus >= 0
        }
    };
    ensure(within, || paid(format!("send {send} receive {receive} surplus {surplus}, asked {terms:?}")))?;
    let event = events.iter().find(|event| event.kind == "cross_border_paid" && event.payment == Some(payment));
    let matches = event.is_some_and(|event| {
        event.payer == Some(parties.payer)
            && event.payee == Some(parties.payee)
            && event.asset_from() == Some(from.as_str())
            && event.asset_to() == Some(to.as_str())
            && event.send.as_deref().and_then(|text| catalog.minor(parties.from, text)) == Some(send)
            && event.receive.as_deref().and_then(|text| catalog.minor(parties.to, text)) == Some(receive)
            && event.surplus.as_deref().and_then(|text| catalog.minor(parties.from, text)) == Some(surplus)
            && event.quote == result.quote
    });
    ensure(matches, || paid("no cross_border_paid event with the result's terms".into()))?;
    let mut ledger = Ledger::default();
    let (legs, taker_fills) = check_legs(catalog, parties, payment, events, &mut ledger).map_err(paid)?;
    ensure(legs > 0, || paid("no cross_border_leg events".into()))?;
    // What the fills moved, less the house's remainders (booked per leg) and surplus
    // and the payee's receive amount: the payer sent exactly `send`, and nothing else.
    ledger.add(parties.payer, parties.from, -surplus);
    ledger.add(parties.payer, parties.to, -receive);
    for (&(account, asset), &delta) in &ledger.deltas {
        let expected = if (account, asset) == (parties.payer, parties.from) { -send } else { 0 };
        ensure(delta == expected, || {
            paid(format!(
                "the legs leave the payer {} {}, not {}",
                catalog.format_minor(asset, delta),
                catalog.assets[asset].code,
                catalog.format_minor(asset, expected)
            ))
        })?;
    }
    Ok(Paid { payment, send, receive, taker_fills })
}

/// Every `cross_border_leg` of `payment` against the payer's fills of its order;
/// books the fills and the leg's remainder in `ledger`. Returns (legs, fills).
fn check_legs(
    catalog: &Catalog,
    parties: Parties,
    payment: u64,
    events: &[Event<'_>],
    ledger: &mut Ledger,
) -> Result<(usize, usize), String> {
    let legs: Vec<&Event<'_>> =
        events.iter().filter(|event| event.kind == "cross_border_leg" && event.payment == Some(payment)).collect();
    let mut input_asset = parties.from;
    let mut fills_seen = 0;
    for (index, leg) in legs.iter().enumerate() {
        let symbol = leg.market.as_deref().unwrap_or_default();
        let market = catalog.market(symbol).ok_or_else(|| format!("leg {index} on {symbol}, not a load market"))?;
        let spec = &catalog.markets[market];
        let buy = leg.side.as_deref() == Some("buy");
        let (input, output) = if buy { (spec.quote, spec.base) } else { (spec.base, spec.quote) };
        let code = |asset: usize| Some(catalog.assets[asset].code.as_str());
        ensure(
            leg.leg == Some(index as u64)
                && input == input_asset
                && leg.input_asset.as_deref() == code(input)
                && leg.output_asset.as_deref() == code(output),
            || format!("leg {index} ({symbol} {:?}) does not follow from the one before", leg.side),
        )?;
        let order = leg.order_id.ok_or_else(|| format!("leg {index} without order_id"))?;
        let (lots, notional, fee, fills) = leg_fills(catalog, parties.payer, market, buy, order, events, ledger)?;
        fills_seen += fills;
        let qty = leg.qty.as_deref().and_then(|qty| spec.lots(qty));
        let leg_input = amount(catalog, input, leg.input.as_deref(), "input")?;
        let leg_output = amount(catalog, output, leg.output.as_deref(), "output")?;
        let taker_fee = amount(catalog, spec.quote, leg.taker_fee.as_deref(), "taker_fee")?;
        let remainder = amount(catalog, output, leg.remainder.as_deref(), "remainder")?;
        let base = i128::from(lots) * spec.lot_minor;
        let (moved_in, moved_out) = if buy { (notional + fee, base) } else { (base, notional - fee) };
        ensure(
            qty == Some(lots) && taker_fee == fee && leg_input == moved_in && leg_output == moved_out && remainder >= 0,
            || {
                format!(
                    "leg {index} ({symbol}) says qty {qty:?} input {leg_input} output {leg_output} fee {taker_fee}; \
                     its {fills} fills: {lots} lots, input {moved_in} output {moved_out} fee {fee}"
                )
            },
        )?;
        ledger.add(parties.payer, output, -remainder);
        input_asset = output;
    }
    ensure(input_asset == parties.to || legs.is_empty(), || "the last leg does not end in `to`".into())?;
    let payer_fills =
        events.iter().filter(|event| event.kind == "fill" && event.account == Some(parties.payer)).count();
    ensure(payer_fills == fills_seen, || {
        format!("{payer_fills} fills of the payer, {fills_seen} of its legs' orders")
    })?;
    Ok((legs.len(), fills_seen))
}

/// The payer's taker fills of `order`: each on the leg's market and side, with the
/// schedule's taker fee; booked in `ledger`. Returns (lots, notional, fees, fills).
fn leg_fills(
    catalog: &Catalog,
    payer: u64,
    market: usize,
    buy: bool,
    order: u64,
    events: &[Event<'_>],
    ledger: &mut Ledger,
) -> Result<(i64, i128, i128, usize), String> {
    let spec = &catalog.markets[market];
    let side = if buy { "buy" } else { "sell" };
    let (mut lots, mut notional, mut fee, mut fills) = (0, 0, 0, 0);
    for fill in events.iter().filter(|event| event.kind == "fill" && event.order_id == Some(order)) {
        let ticks = fill.price.as_deref().and_then(|price| spec.ticks(price));
        let qty = fill.qty.as_deref().and_then(|qty| spec.lots(qty));
        let charged = fill.fee.as_deref().and_then(|fee| catalog.minor(spec.quote, fee));
        let (Some(ticks), Some(qty), Some(charged)) = (ticks, qty, charged) else {
            return Err(format!("a fill of order {order} without price, qty or fee"));
        };
        ensure(
            fill.account == Some(payer)
                && fill.liquidity.as_deref() == Some("taker")
                && fill.market.as_deref() == Some(spec.symbol.as_str())
                && fill.side.as_deref() == Some(side),
            || format!("a fill of leg order {order} not the payer's {side} as taker on {}", spec.symbol),
        )?;
        let value = spec.notional(ticks, qty);
        let expected = Market::fee(value, spec.fee_bps.1);
        ensure(charged == expected, || {
            format!("{} fill of leg order {order}: fee {charged}, the schedule says {expected}", spec.symbol)
        })?;
        ledger.fill(payer, spec, buy, qty, value, charged);
        (lots, notional, fee, fills) = (lots + qty, notional + value, fee + charged, fills + 1);
    }
    Ok((lots, notional, fee, fills))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::wire::Incoming;

    fn catalog() -> Catalog {
        Catalog::from_reply(&json!({
            "markets": [
                {"market": "BTC-USD", "base": "BTC", "quote": "USD", "price_increment": "1", "lot": "0.01", "qty_min": "0.01", "qty_max": "10000", "fees_by_kyc_tier": [{"maker_bps": 10, "taker_bps": 20}]},
                {"market": "EUR-USD", "base": "EUR", "quote": "USD", "price_increment": "0.0001", "lot": "100", "qty_min": "100", "qty_max": "100000000", "fees_by_kyc_tier": [{"maker_bps": 1, "taker_bps": 2}]},
                {"market": "GBP-USD", "base": "GBP", "quote": "USD", "price_increment": "0.0001", "lot": "100", "qty_min": "100", "qty_max": "100000000", "fees_by_kyc_tier": [{"maker_bps": 1, "taker_bps": 2}]},
                {"market": "USD-JPY", "base": "USD", "quote": "JPY", "price_increment": "0.01", "lot": "100", "qty_min": "100", "qty_max": "100000000", "fees_by_kyc_tier": [{"maker_bps": 1, "taker_bps": 2}]}
            ],
            "assets": [{"asset": "USD", "scale": 2}, {"asset": "EUR", "scale": 2}, {"asset": "GBP", "scale": 2}, {"asset": "JPY", "scale": 0}, {"asset": "BTC", "scale": 8}]
        }))
        .unwrap()
    }

    /// The reply of `execute_quote` in docs/API.md ("Cross-border payments"), EUR→JPY
    /// through USD: 0.06 USD of remainder to the house.
    const EXECUTED: &str = r#"{"id": 1, "ok": true, "seq": 29, "result": {"payment": 1, "quote": 2, "payer": 1, "payee": 2, "from": "EUR", "to": "JPY", "send": "1000.00", "receive": "179964", "rate": "179.964", "surplus": "0.00", "route": []},
        "events": [{"type": "fill", "liquidity": "taker", "order_id": 5, "account": 1, "market": "EUR-USD", "market_seq": 3, "side": "sell", "price": "1.2003", "qty": "1000", "fee": "0.24", "remaining": "0"}, {"type": "cross_border_leg", "payment": 1, "order_id": 5, "leg": 0, "market": "EUR-USD", "side": "sell", "qty": "1000", "input": "1000.00", "input_asset": "EUR", "output": "1200.06", "output_asset": "USD", "taker_fee": "0.24", "fee_asset": "USD", "remainder": "0.06"}, {"type": "fill", "liquidity": "taker", "order_id": 6, "account": 1, "market": "USD-JPY", "market_seq": 2, "side": "sell", "price": "150", "qty": "1200", "fee": "36", "remaining": "0"}, {"type": "cross_border_leg", "payment": 1, "order_id": 6, "leg": 1, "market": "USD-JPY", "side": "sell", "qty": "1200", "input": "1200.00", "input_asset": "USD", "output": "179964", "output_asset": "JPY", "taker_fee": "36", "fee_asset": "JPY", "remainder": "0"}, {"type": "cross_border_paid", "payment": 1, "payer": 1, "payee": 2, "from": "EUR", "to": "JPY", "send": "1000.00", "receive": "179964", "rate": "179.964", "route": ["EUR-USD", "USD-JPY"], "surplus": "0.00", "quote": 2}, {"type": "balance", "account": 1, "asset": "EUR", "available": "9000.00", "held": "0.00"}]}"#;

    fn parties(catalog: &Catalog) -> Parties {
        Parties { payer: 1, payee: 2, from: catalog.asset("EUR").unwrap(), to: catalog.asset("JPY").unwrap() }
    }

    #[test]
    fn the_documented_payment_checks_out_and_its_legs_net_to_the_send_amount() {
        let catalog = catalog();
        let reply: Incoming<'_> = serde_json::from_str(EXECUTED).unwrap();
        let terms = Terms::Quote { quote: 2, send: 100_000, receive: 179_964 };
        let paid = check_paid(&catalog, parties(&catalog), terms, reply.result.as_ref(), &reply.events).unwrap();
        assert_eq!(paid, Paid { payment: 1, send: 100_000, receive: 179_964, taker_fills: 2 });
        let direct = Terms::Direct { offered: 100_000, min_receive: 179_000 };
        assert!(
            check_paid(&catalog, parties(&catalog), direct, reply.result.as_ref(), &reply.events).is_err(),
            "a quote's"
        );
    }

    #[test]
    fn a_wrong_fee_a_missing_remainder_or_other_terms_are_caught() {
        let catalog = catalog();
        let terms = Terms::Quote { quote: 2, send: 100_000, receive: 179_964 };
        for (from, to) in [
            (r#""fee": "36""#, r#""fee": "35""#),
            (r#""remainder": "0.06""#, r#""remainder": "0.00""#),
            (r#""output": "179964""#, r#""output": "179965""#),
            (r#""leg": 1"#, r#""leg": 2"#),
            (
                r#""receive": "179964", "rate": "179.964", "surplus""#,
                r#""receive": "179963", "rate": "179.964", "surplus""#,
            ),
        ] {
            let text = EXECUTED.replacen(from, to, 1);
            assert_ne!(text, EXECUTED, "{from}");
            let reply: Incoming<'_> = serde_json::from_str(&text).unwrap();
            let checked = check_paid(&catalog, parties(&catalog), terms, reply.result.as_ref(), &reply.events);
            assert!(checked.is_err(), "{from} → {to}: {checked:?}");
        }
    }

    #[test]
    fn pairs_route_through_the_load_markets_and_the_mid_estimate_rounds_to_lots() {
        // The mids are the load's (catalog::MARKETS): EUR-USD 1.0850, USD-JPY 150.00.
        let catalog = catalog();
        let pairs = &catalog.pairs;
        let hops: Vec<usize> = pairs.iter().map(|pair| pair.path.len()).collect();
        assert_eq!(hops, [2, 1, 2, 2]);
        // 1,000.00 EUR: 10 lots at 1.0850 = 1,085.00 USD less 0.21 fee; 10 lots of USD
        // at 150.00 = 150,000 JPY less 30.
        assert_eq!(mid_receive(&catalog.markets, &pairs[0], 100_000), 149_970);
        // 250.00 EUR sells only 2 lots.
        assert_eq!(mid_receive(&catalog.markets, &pairs[0], 25_000), 29_994);
        // 300.00 USD buys 2 lots of EUR (108.50 + fee each).
        assert_eq!(mid_receive(&catalog.markets, &pairs[1], 30_000), 20_000);
        assert!(legitimate_rejection(OpKind::ExecuteQuote, "quote_expired"));
        assert!(!legitimate_rejection(OpKind::PayCrossBorder, "no_route"));
    }
}
