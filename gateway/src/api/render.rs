//! Results as JSON: replies to requests, pushes of other commands' events, market
//! data and query answers. Amounts and prices are decimal strings in the asset's and
//! market's units; every event is shown only as far as it concerns the viewer (a
//! client never sees another account's balance or a counterparty in a trade).

use bourse_core::book::{ClientOrderId, MarketId, Price, Qty, SelfTradePrevention, Side, TimeInForce};
use bourse_core::event::{CancelReason, Event, Outcome};
use bourse_core::ids::{AccountId, AssetId, Seq, Timestamp};
use bourse_core::money::Amount;
use serde_json::{Map, Value, json};

use super::{reject_code, reject_message};
use crate::hub::{Delivery, MarketUpdate};
use crate::principal::Principal;
use crate::view::{Bbo, MarketView, ReadModel};

/// `2026-11-26T08:30:00.123456789Z` from command time.
pub fn time(timestamp: Timestamp) -> String {
    let nanos = timestamp.as_nanos();
    let seconds = nanos / 1_000_000_000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        nanos % 1_000_000_000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn tif(tif: TimeInForce) -> &'static str {
    match tif {
        TimeInForce::Gtc => "gtc",
        TimeInForce::Ioc => "ioc",
        TimeInForce::Fok => "fok",
    }
}

pub fn stp_name(stp: SelfTradePrevention) -> &'static str {
    match stp {
        SelfTradePrevention::CancelTaker => "cancel_taker",
        SelfTradePrevention::CancelMaker => "cancel_maker",
        SelfTradePrevention::CancelBoth => "cancel_both",
    }
}

fn cancel_reason(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Requested => "requested",
        CancelReason::CancelAll => "cancel_all",
        CancelReason::Unfilled => "unfilled",
        CancelReason::FillOrKill => "fill_or_kill",
        CancelReason::SelfTrade => "self_trade",
        CancelReason::BudgetSpent => "budget_spent",
        CancelReason::AccountFrozen => "account_frozen",
    }
}

/// Formats amounts, prices and quantities with the read model's assets and markets.
#[derive(Debug)]
pub struct Formatter<'a> {
    view: &'a ReadModel,
}

impl<'a> Formatter<'a> {
    pub fn new(view: &'a ReadModel) -> Self {
        Self { view }
    }

    pub fn asset(&self, asset: AssetId) -> Value {
        self.view.assets().get(asset).map_or(Value::Null, |asset| Value::from(asset.code().as_str()))
    }
    pub fn amount(&self, asset: AssetId, amount: Amount) -> Value {
        self.view.assets().get(asset).map_or_else(
            || Value::from(amount.minor_units().to_string()),
            |asset| Value::from(asset.format_amount(amount)),
        )
    }
    fn market(&self, market: MarketId) -> Option<&'a MarketView> {
        self.view.market(market)
    }
    pub fn symbol(&self, market: MarketId) -> Value {
        self.market(market).map_or(Value::Null, |market| Value::from(market.symbol.as_str()))
    }
    pub fn price(&self, market: MarketId, price: Price) -> Value {
        match self.market(market) {
            Some(view) => Value::from(view.spec.price_to_decimal(self.view.assets(), price).to_string()),
            None => Value::from(price.ticks().to_string()),
        }
    }
    pub fn qty(&self, market: MarketId, qty: Qty) -> Value {
        match self.market(market) {
            Some(view) => Value::from(view.spec.qty_to_decimal(self.view.assets(), qty).to_string()),
            None => Value::from(qty.lots().to_string()),
        }
    }
    /// Fees are in the market's quote asset.
    fn fee(&self, market: MarketId, fee: Amount) -> Value {
        match self.market(market) {
            Some(view) => self.amount(view.spec.quote, fee),
            None => Value::from(fee.minor_units().to_string()),
        }
    }

    /// An event as `viewer` may see it; `None` when it does not concern the viewer (or
    /// is market data, which has its own channels).
    #[allow(clippy::too_many_lines)]
    pub fn event(&self, event: &Event, viewer: &Principal) -> Option<Value> {
        let sees = |account: AccountId| viewer.may_act_for(account);
        let value = match *event {
            Event::AccountOpened { account, owner, kyc_tier } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "account_opened", "account": account.get(), "owner": owner.get(), "kyc_tier": kyc_tier.get()})
            }
            Event::AccountFrozen { account } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "account_frozen", "account": account.get()})
            }
            Event::AccountUnfrozen { account } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "account_unfrozen", "account": account.get()})
            }
            Event::KycTierChanged { account, kyc_tier } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "kyc_tier_changed", "account": account.get(), "kyc_tier": kyc_tier.get()})
            }
            Event::Deposited { account, asset, amount, reference }
            | Event::Withdrawn { account, asset, amount, reference } => {
                if !sees(account) {
                    return None;
                }
                let kind = if matches!(event, Event::Deposited { .. }) { "deposited" } else { "withdrawn" };
                json!({"type": kind, "account": account.get(), "asset": self.asset(asset), "amount": self.amount(asset, amount), "reference": reference.as_str()})
            }
            Event::Transferred { payment, from, to, asset, amount } => {
                if !sees(from) && !sees(to) {
                    return None;
                }
                json!({"type": "transferred", "payment": payment.get(), "from": from.get(), "to": to.get(), "asset": self.asset(asset), "amount": self.amount(asset, amount)})
            }
            Event::Authorized { payment, payer, payee, asset, amount, expires_at } => {
                if !sees(payer) && !sees(payee) {
                    return None;
                }
                json!({"type": "authorized", "payment": payment.get(), "payer": payer.get(), "payee": payee.get(), "asset": self.asset(asset), "amount": self.amount(asset, amount), "expires_at": time(expires_at)})
            }
            Event::Captured { payment, payer, payee, asset, amount, captured_total, released } => {
                if !sees(payer) && !sees(payee) {
                    return None;
                }
                json!({"type": "captured", "payment": payment.get(), "payer": payer.get(), "payee": payee.get(), "asset": self.asset(asset), "amount": self.amount(asset, amount), "captured_total": self.amount(asset, captured_total), "released": self.amount(asset, released)})
            }
            Event::Voided { payment, payer, payee, asset, released }
            | Event::AuthorizationExpired { payment, payer, payee, asset, released } => {
                if !sees(payer) && !sees(payee) {
                    return None;
                }
                let kind = if matches!(event, Event::Voided { .. }) { "voided" } else { "authorization_expired" };
                json!({"type": kind, "payment": payment.get(), "payer": payer.get(), "payee": payee.get(), "asset": self.asset(asset), "released": self.amount(asset, released)})
            }
            Event::SplitPaid { first_payment, payer, asset, total, legs } => {
                if !sees(payer) {
                    return None;
                }
                json!({"type": "split_paid", "first_payment": first_payment.get(), "payer": payer.get(), "asset": self.asset(asset), "total": self.amount(asset, total), "legs": legs})
            }
            Event::Refunded { payment, payer, payee, asset, amount, refunded_total } => {
                if !sees(payer) && !sees(payee) {
                    return None;
                }
                json!({"type": "refunded", "payment": payment.get(), "payer": payer.get(), "payee": payee.get(), "asset": self.asset(asset), "amount": self.amount(asset, amount), "refunded_total": self.amount(asset, refunded_total)})
            }
            Event::BalanceChanged { account, asset, available, held } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "balance", "account": account.get(), "asset": self.asset(asset), "available": self.amount(asset, available), "held": self.amount(asset, held)})
            }
            Event::MarketAdded { market, base, quote } => {
                if !viewer.is_admin() {
                    return None;
                }
                json!({"type": "market_added", "market": self.symbol(market), "base": self.asset(base), "quote": self.asset(quote)})
            }
            Event::OrderAccepted {
                order,
                account,
                market,
                side: order_side,
                price,
                qty,
                time_in_force,
                client_order_id,
            } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "order_accepted", "order_id": order.get(), "account": account.get(), "market": self.symbol(market), "side": side(order_side), "price": price.map(|price| self.price(market, price)), "qty": self.qty(market, qty), "time_in_force": tif(time_in_force), "client_order_id": client_text(client_order_id)})
            }
            Event::Trade {
                market,
                market_seq,
                price,
                qty,
                taker_side,
                maker_order,
                taker_order,
                maker_account,
                taker_account,
                maker_fee,
                taker_fee,
                maker_remaining,
                taker_remaining,
            } => {
                // One fill per side the viewer is on; an operator sees the whole trade.
                if viewer.is_admin() {
                    json!({"type": "trade", "market": self.symbol(market), "market_seq": market_seq, "price": self.price(market, price), "qty": self.qty(market, qty), "taker_side": side(taker_side), "maker_order": maker_order.get(), "taker_order": taker_order.get(), "maker_account": maker_account.get(), "taker_account": taker_account.get(), "maker_fee": self.fee(market, maker_fee), "taker_fee": self.fee(market, taker_fee), "maker_remaining": self.qty(market, maker_remaining), "taker_remaining": self.qty(market, taker_remaining)})
                } else if sees(taker_account) {
                    json!({"type": "fill", "liquidity": "taker", "order_id": taker_order.get(), "account": taker_account.get(), "market": self.symbol(market), "market_seq": market_seq, "side": side(taker_side), "price": self.price(market, price), "qty": self.qty(market, qty), "fee": self.fee(market, taker_fee), "remaining": self.qty(market, taker_remaining)})
                } else if sees(maker_account) {
                    json!({"type": "fill", "liquidity": "maker", "order_id": maker_order.get(), "account": maker_account.get(), "market": self.symbol(market), "market_seq": market_seq, "side": side(taker_side.opposite()), "price": self.price(market, price), "qty": self.qty(market, qty), "fee": self.fee(market, maker_fee), "remaining": self.qty(market, maker_remaining)})
                } else {
                    return None;
                }
            }
            Event::OrderCancelled { order, account, market, remaining, reason } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "order_cancelled", "order_id": order.get(), "account": account.get(), "market": self.symbol(market), "remaining": self.qty(market, remaining), "reason": cancel_reason(reason)})
            }
            Event::OrderAmended { order, account, market, price, qty, priority_kept } => {
                if !sees(account) {
                    return None;
                }
                json!({"type": "order_amended", "order_id": order.get(), "account": account.get(), "market": self.symbol(market), "price": self.price(market, price), "qty": self.qty(market, qty), "priority_kept": priority_kept})
            }
            Event::BookChanged { .. } | Event::Rejected { .. } | Event::Replayed { .. } => return None,
        };
        Some(value)
    }

    /// The events of one delivery that `viewer` may see.
    pub fn events(&self, events: &[Event], viewer: &Principal) -> Vec<Value> {
        events.iter().filter_map(|event| self.event(event, viewer)).collect()
    }
}

fn client_text(client: Option<ClientOrderId>) -> Value {
    client.and_then(ClientOrderId::to_text).map_or(Value::Null, Value::from)
}

/// The reply to a command: `ok` with a short `result` and the events, or the
/// engine's rejection as an error. Both carry the journal sequence number.
pub fn reply(view: &ReadModel, id: &Value, delivery: &Delivery, viewer: &Principal) -> Value {
    let applied = delivery.applied();
    let events = delivery.events();
    let formatter = Formatter::new(view);
    let mut reply = Map::new();
    reply.insert("id".into(), id.clone());
    let (ok, replayed) = match events.last() {
        Some(Event::Rejected { reason, .. }) => (Err(*reason), false),
        Some(Event::Replayed { original: Outcome::Rejected(reason), .. }) => (Err(*reason), true),
        Some(Event::Replayed { .. }) => (Ok(()), true),
        _ => (Ok(()), false),
    };
    reply.insert("ok".into(), Value::from(ok.is_ok()));
    reply.insert("seq".into(), Value::from(applied.seq.get()));
    reply.insert("time".into(), Value::from(time(applied.timestamp)));
    if replayed {
        reply.insert("replayed".into(), Value::from(true));
    }
    if let Err(reason) = ok {
        reply.insert("error".into(), json!({"code": reject_code(reason), "message": reject_message(reason)}));
    } else {
        reply.insert("result".into(), Value::Object(result(events)));
        reply.insert("events".into(), Value::Array(formatter.events(events, viewer)));
    }
    Value::Object(reply)
}

/// The ids a command made or acted on, from its events.
fn result(events: &[Event]) -> Map<String, Value> {
    let mut result = Map::new();
    for event in events {
        match *event {
            Event::AccountOpened { account, .. } => {
                result.insert("account".into(), account.get().into());
            }
            Event::Transferred { payment, .. } | Event::Authorized { payment, .. }
                if !result.contains_key("payment") =>
            {
                result.insert("payment".into(), payment.get().into());
            }
            Event::Captured { payment, .. }
            | Event::Voided { payment, .. }
            | Event::Refunded { payment, .. }
            | Event::Replayed { original: Outcome::Accepted { payment: Some(payment) }, .. } => {
                result.insert("payment".into(), payment.get().into());
            }
            Event::OrderAccepted { order, .. } => {
                result.insert("order_id".into(), order.get().into());
            }
            _ => {}
        }
    }
    result
}

/// A push of another command's events (`channel: "account"`); `None` when nothing in
/// it is the viewer's to see.
pub fn push(view: &ReadModel, delivery: &Delivery, viewer: &Principal) -> Option<Value> {
    let events = Formatter::new(view).events(delivery.events(), viewer);
    if events.is_empty() {
        return None;
    }
    let applied = delivery.applied();
    Some(json!({"channel": "account", "seq": applied.seq.get(), "time": time(applied.timestamp), "events": events}))
}

/// Balances of an account.
pub fn balances(view: &ReadModel, account: AccountId) -> Option<Value> {
    let formatter = Formatter::new(view);
    let record = view.account(account)?;
    let balances: Vec<Value> = record
        .balances
        .iter()
        .map(|(asset, (available, held))| {
            json!({"asset": formatter.asset(*asset), "available": formatter.amount(*asset, *available), "held": formatter.amount(*asset, *held)})
        })
        .collect();
    Some(json!({
        "account": account.get(),
        "owner": record.owner.get(),
        "kyc_tier": record.kyc_tier.get(),
        "frozen": record.frozen,
        "balances": balances,
        "as_of_seq": view.last_seq().map_or(0, Seq::get),
    }))
}

/// Open orders of an account.
pub fn orders(view: &ReadModel, account: AccountId) -> Value {
    let formatter = Formatter::new(view);
    let orders: Vec<Value> = view
        .open_orders(account)
        .iter()
        .map(|order| {
            json!({"order_id": order.id.get(), "market": formatter.symbol(order.market), "side": side(order.side), "price": formatter.price(order.market, order.price), "remaining": formatter.qty(order.market, order.remaining), "client_order_id": client_text(order.client_order_id)})
        })
        .collect();
    json!({"account": account.get(), "orders": orders, "as_of_seq": view.last_seq().map_or(0, Seq::get)})
}

/// Every market with its grid and fees.
pub fn markets(view: &ReadModel) -> Value {
    let formatter = Formatter::new(view);
    let markets: Vec<Value> = view
        .markets()
        .iter()
        .map(|market| {
            let spec = &market.spec;
            let fees: Vec<Value> = spec
                .fees
                .tiers()
                .iter()
                .map(|fee| json!({"maker_bps": fee.maker_bps, "taker_bps": fee.taker_bps}))
                .collect();
            json!({
                "market": market.symbol,
                "base": formatter.asset(spec.base),
                "quote": formatter.asset(spec.quote),
                "price_increment": spec.price_increment(view.assets()).to_string(),
                "lot": formatter.qty(market.id, Qty::new(1).expect("one lot")),
                "qty_min": formatter.qty(market.id, spec.qty_min),
                "qty_max": formatter.qty(market.id, spec.qty_max),
                "fees_by_kyc_tier": fees,
            })
        })
        .collect();
    let assets: Vec<Value> = view
        .assets()
        .iter()
        .map(|(_, asset)| json!({"asset": asset.code().as_str(), "scale": asset.scale()}))
        .collect();
    json!({"markets": markets, "assets": assets})
}

fn levels(formatter: &Formatter<'_>, market: MarketId, levels: &[(Price, Qty, u32)]) -> Vec<Value> {
    levels
        .iter()
        .map(|(price, qty, orders)| json!([formatter.price(market, *price), formatter.qty(market, *qty), orders]))
        .collect()
}

/// An L2 snapshot: `[price, qty, orders]` per level, best first, at `market_seq`.
pub fn depth(view: &ReadModel, market: &MarketView, count: usize) -> Value {
    let formatter = Formatter::new(view);
    let (bids, asks) = market.depth(count);
    json!({
        "channel": "book",
        "type": "snapshot",
        "market": market.symbol,
        "market_seq": market.market_seq,
        "bids": levels(&formatter, market.id, &bids),
        "asks": levels(&formatter, market.id, &asks),
    })
}

/// The most recent trades, newest first.
pub fn trades(view: &ReadModel, market: &MarketView, limit: usize) -> Value {
    let formatter = Formatter::new(view);
    let trades: Vec<Value> = market
        .trades
        .iter()
        .rev()
        .take(limit)
        .map(|trade| {
            json!({"market_seq": trade.market_seq, "price": formatter.price(market.id, trade.price), "qty": formatter.qty(market.id, trade.qty), "taker_side": side(trade.taker_side), "time": time(trade.timestamp)})
        })
        .collect();
    json!({"market": market.symbol, "trades": trades})
}

fn bbo_value(formatter: &Formatter<'_>, market: &MarketView, bbo: Bbo, market_seq: u64) -> Value {
    let level = |level: Option<(Price, Qty)>| {
        level.map_or(Value::Null, |(price, qty)| {
            json!([formatter.price(market.id, price), formatter.qty(market.id, qty)])
        })
    };
    json!({"channel": "bbo", "market": market.symbol, "market_seq": market_seq, "bid": level(bbo.0), "ask": level(bbo.1)})
}

/// The current best bid and offer.
pub fn bbo(view: &ReadModel, market: &MarketView) -> Value {
    bbo_value(&Formatter::new(view), market, market.bbo(), market.market_seq)
}

/// One market update rendered for a channel; `None` when it has nothing for it.
pub fn market_update(view: &ReadModel, update: &MarketUpdate, channel: super::request::Channel) -> Option<Value> {
    use super::request::Channel;
    let market = view.market(update.market)?;
    let formatter = Formatter::new(view);
    match channel {
        Channel::Book if !update.levels.is_empty() => {
            let changes: Vec<Value> = update
                .levels
                .iter()
                .map(|(market_seq, level_side, price, total, orders)| {
                    json!({"market_seq": market_seq, "side": side(*level_side), "price": formatter.price(market.id, *price), "qty": formatter.qty(market.id, *total), "orders": orders})
                })
                .collect();
            Some(
                json!({"channel": "book", "type": "update", "market": market.symbol, "market_seq": update.market_seq, "changes": changes}),
            )
        }
        Channel::Trades if !update.trades.is_empty() => {
            let trades: Vec<Value> = update
                .trades
                .iter()
                .map(|trade| {
                    json!({"market_seq": trade.market_seq, "price": formatter.price(market.id, trade.price), "qty": formatter.qty(market.id, trade.qty), "taker_side": side(trade.taker_side), "time": time(trade.timestamp)})
                })
                .collect();
            Some(json!({"channel": "trades", "market": market.symbol, "trades": trades}))
        }
        Channel::Bbo => Some(bbo_value(&formatter, market, update.bbo, update.market_seq)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(Timestamp::from_nanos(0)), "1970-01-01T00:00:00.000000000Z");
        // 2026-11-26T08:30:15.5Z
        assert_eq!(time(Timestamp::from_nanos(1_795_681_815_500_000_000)), "2026-11-26T08:30:15.500000000Z");
        assert_eq!(time(Timestamp::from_nanos(951_782_400_000_000_000)), "2000-02-29T00:00:00.000000000Z");
    }
}
