//! Results as JSON: replies to requests, pushes of other commands' events, market
//! data and query answers. Amounts and prices are decimal strings in the asset's and
//! market's units; every event is shown only as far as it concerns the viewer (a
//! client never sees another account's balance or a counterparty in a trade).

use bourse_core::asset::AssetTable;
use bourse_core::book::{ClientOrderId, MarketId, Price, Qty, SelfTradePrevention, Side, TimeInForce};
use bourse_core::command::CommandKind;
use bourse_core::event::{CancelReason, Event, Outcome, RejectReason};
use bourse_core::ids::{AccountId, AssetId, Reference, Seq, Timestamp};
use bourse_core::limits::ROUTE_HOPS_MAX;
use bourse_core::market::MarketSpec;
use bourse_core::money::Amount;
use bourse_core::route::Route;
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use super::{reject_code, reject_message};
use crate::hub::{Delivery, MarketUpdate};
use crate::principal::Principal;
use crate::view::{Bbo, LevelView, MarketView, ReadModel, ReviewView};

/// `2026-11-26T08:30:00.123456789Z` from command time.
pub fn time(timestamp: Timestamp) -> String {
    Time(timestamp).to_string()
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

/// The op name of a payment held for review.
fn payment_kind(kind: CommandKind) -> &'static str {
    match kind {
        CommandKind::Transfer => "transfer",
        CommandKind::Authorize => "authorize",
        CommandKind::SplitPayment => "split_payment",
        CommandKind::Withdraw => "withdraw",
        CommandKind::ExecuteQuote => "execute_quote",
        CommandKind::PayCrossBorder => "pay_cross_border",
        _ => "other",
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
    /// An event as `viewer` may see it; `None` when it does not concern the viewer (or
    /// is market data, which has its own channels).
    pub fn event(&self, event: &Event, viewer: &Principal) -> Option<EventOut<'a>> {
        self.event_in(event, viewer, None)
    }

    /// `event`, one of a command's events; `conversion` is the (from, to) of the
    /// command's quote, which its runners-up do not repeat.
    #[allow(clippy::too_many_lines)]
    fn event_in(
        &self,
        event: &Event,
        viewer: &Principal,
        conversion: Option<(AssetId, AssetId)>,
    ) -> Option<EventOut<'a>> {
        let sees = |account: AccountId| viewer.may_act_for(account);
        let either = |one: AccountId, other: AccountId| sees(one) || sees(other);
        let out = match *event {
            Event::AccountOpened { account, owner, kyc_tier } if sees(account) => {
                EventOut::AccountOpened { account: account.get(), owner: owner.get(), kyc_tier: kyc_tier.get() }
            }
            Event::AccountFrozen { account } if sees(account) => EventOut::AccountFrozen { account: account.get() },
            Event::AccountUnfrozen { account } if sees(account) => EventOut::AccountUnfrozen { account: account.get() },
            Event::KycTierChanged { account, kyc_tier } if sees(account) => {
                EventOut::KycTierChanged { account: account.get(), kyc_tier: kyc_tier.get() }
            }
            Event::Deposited { account, asset, amount, reference } if sees(account) => EventOut::Deposited {
                account: account.get(),
                asset: self.code(asset),
                amount: self.money(asset, amount),
                reference,
            },
            Event::Withdrawn { account, asset, amount, reference } if sees(account) => EventOut::Withdrawn {
                account: account.get(),
                asset: self.code(asset),
                amount: self.money(asset, amount),
                reference,
            },
            Event::Transferred { payment, from, to, asset, amount } if either(from, to) => EventOut::Transferred {
                payment: payment.get(),
                from: from.get(),
                to: to.get(),
                asset: self.code(asset),
                amount: self.money(asset, amount),
            },
            Event::Authorized { payment, payer, payee, asset, amount, expires_at } if either(payer, payee) => {
                EventOut::Authorized {
                    payment: payment.get(),
                    payer: payer.get(),
                    payee: payee.get(),
                    asset: self.code(asset),
                    amount: self.money(asset, amount),
                    expires_at: Time(expires_at),
                }
            }
            Event::Captured { payment, payer, payee, asset, amount, captured_total, released }
                if either(payer, payee) =>
            {
                EventOut::Captured {
                    payment: payment.get(),
                    payer: payer.get(),
                    payee: payee.get(),
                    asset: self.code(asset),
                    amount: self.money(asset, amount),
                    captured_total: self.money(asset, captured_total),
                    released: self.money(asset, released),
                }
            }
            Event::Voided { payment, payer, payee, asset, released } if either(payer, payee) => EventOut::Voided {
                payment: payment.get(),
                payer: payer.get(),
                payee: payee.get(),
                asset: self.code(asset),
                released: self.money(asset, released),
            },
            Event::AuthorizationExpired { payment, payer, payee, asset, released } if either(payer, payee) => {
                EventOut::AuthorizationExpired {
                    payment: payment.get(),
                    payer: payer.get(),
                    payee: payee.get(),
                    asset: self.code(asset),
                    released: self.money(asset, released),
                }
            }
            Event::SplitPaid { first_payment, payer, asset, total, legs } if sees(payer) => EventOut::SplitPaid {
                first_payment: first_payment.get(),
                payer: payer.get(),
                asset: self.code(asset),
                total: self.money(asset, total),
                legs,
            },
            Event::Refunded { payment, payer, payee, asset, amount, refunded_total } if either(payer, payee) => {
                EventOut::Refunded {
                    payment: payment.get(),
                    payer: payer.get(),
                    payee: payee.get(),
                    asset: self.code(asset),
                    amount: self.money(asset, amount),
                    refunded_total: self.money(asset, refunded_total),
                }
            }
            Event::BalanceChanged { account, asset, available, held } if sees(account) => EventOut::Balance {
                account: account.get(),
                asset: self.code(asset),
                available: self.money(asset, available),
                held: self.money(asset, held),
            },
            Event::MarketAdded { market, base, quote } if viewer.is_admin() => EventOut::MarketAdded {
                market: self.symbol_str(market),
                base: self.code(base),
                quote: self.code(quote),
            },
            Event::OrderAccepted {
                order,
                account,
                market,
                side: order_side,
                price,
                qty,
                time_in_force,
                client_order_id,
            } if sees(account) => EventOut::OrderAccepted {
                order_id: order.get(),
                account: account.get(),
                market: self.symbol_str(market),
                side: side(order_side),
                price: price.map(|price| self.price_of(market, price)),
                qty: self.qty_of(market, qty),
                time_in_force: tif(time_in_force),
                client_order_id: client_order_id.map(ClientText),
            },
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
                let fee_asset = self.market(market).map(|view| view.spec.quote);
                let fee = |fee: Amount| fee_asset.map_or(Money::raw(fee), |asset| self.money(asset, fee));
                // One fill per side the viewer is on; an operator sees the whole trade.
                if viewer.is_admin() {
                    EventOut::Trade {
                        market: self.symbol_str(market),
                        market_seq,
                        price: self.price_of(market, price),
                        qty: self.qty_of(market, qty),
                        taker_side: side(taker_side),
                        maker_order: maker_order.get(),
                        taker_order: taker_order.get(),
                        maker_account: maker_account.get(),
                        taker_account: taker_account.get(),
                        maker_fee: fee(maker_fee),
                        taker_fee: fee(taker_fee),
                        maker_remaining: self.qty_of(market, maker_remaining),
                        taker_remaining: self.qty_of(market, taker_remaining),
                    }
                } else if sees(taker_account) {
                    // A viewer on both sides gets the maker's fill after this one (`events`).
                    self.fill(event, false)?
                } else if sees(maker_account) {
                    self.fill(event, true)?
                } else {
                    return None;
                }
            }
            Event::OrderCancelled { order, account, market, remaining, reason } if sees(account) => {
                EventOut::OrderCancelled {
                    order_id: order.get(),
                    account: account.get(),
                    market: self.symbol_str(market),
                    remaining: self.qty_of(market, remaining),
                    reason: cancel_reason(reason),
                }
            }
            Event::OrderAmended { order, account, market, price, qty, priority_kept } if sees(account) => {
                EventOut::OrderAmended {
                    order_id: order.get(),
                    account: account.get(),
                    market: self.symbol_str(market),
                    price: self.price_of(market, price),
                    qty: self.qty_of(market, qty),
                    priority_kept,
                }
            }
            Event::HeldForReview { hold, kind, payer, payee, asset, amount, rule, version }
                if sees(payer) || payee.is_some_and(sees) =>
            {
                EventOut::HeldForReview {
                    hold: hold.get(),
                    kind: payment_kind(kind),
                    payer: payer.get(),
                    payee: payee.map(AccountId::get),
                    asset: self.code(asset),
                    amount: self.money(asset, amount),
                    rule: rule.name(),
                    version: version.get(),
                }
            }
            Event::ReviewApproved { hold, payer, payee, asset, amount } if sees(payer) || payee.is_some_and(sees) => {
                let (payee, asset, amount) = (payee.map(AccountId::get), self.code(asset), self.money(asset, amount));
                EventOut::ReviewApproved { hold: hold.get(), payer: payer.get(), payee, asset, amount }
            }
            Event::ReviewRejected { hold, payer, payee, asset, amount } if sees(payer) || payee.is_some_and(sees) => {
                let (payee, asset, amount) = (payee.map(AccountId::get), self.code(asset), self.money(asset, amount));
                EventOut::ReviewRejected { hold: hold.get(), payer: payer.get(), payee, asset, amount }
            }
            Event::RulesPublished { version } if viewer.is_admin() => {
                EventOut::RulesPublished { version: version.get() }
            }
            // Quotes are the payer's business; the payee hears of the payment.
            Event::QuoteLeg {
                quote,
                payer,
                leg,
                market,
                side: leg_side,
                qty,
                input,
                output,
                taker_fee,
                remainder,
                ..
            } if sees(payer) => {
                let leg = self.leg(market, leg_side, (leg, qty, input, output, taker_fee, remainder));
                EventOut::QuoteLeg { quote: quote.get(), leg }
            }
            Event::QuoteRunnerUp { quote, payer, rank, route, send, receive, .. } if sees(payer) => {
                let (from, to) = conversion.map_or((None, None), |(from, to)| (Some(from), Some(to)));
                EventOut::QuoteRunnerUp {
                    quote: quote.get(),
                    rank,
                    route: self.route(route),
                    send: self.money_in(from, send),
                    receive: self.money_in(to, receive),
                    rate: self.rate(from, send, to, receive),
                }
            }
            Event::Quoted { quote, payer, payee, from, to, send, receive, route, expires_at } if sees(payer) => {
                EventOut::Quoted {
                    quote: quote.get(),
                    payer: payer.get(),
                    payee: payee.get(),
                    from: self.code(from),
                    to: self.code(to),
                    send: self.money(from, send),
                    receive: self.money(to, receive),
                    rate: self.rate(Some(from), send, Some(to), receive),
                    route: self.route(route),
                    expires_at: Time(expires_at),
                }
            }
            Event::CrossBorderLeg {
                payment,
                payer,
                leg,
                market,
                side: leg_side,
                order,
                qty,
                input,
                output,
                taker_fee,
                remainder,
                ..
            } if sees(payer) => EventOut::CrossBorderLeg {
                payment: payment.get(),
                order_id: order.get(),
                leg: self.leg(market, leg_side, (leg, qty, input, output, taker_fee, remainder)),
            },
            Event::CrossBorderPaid { payment, payer, payee, from, to, send, receive, route, surplus, quote }
                if either(payer, payee) =>
            {
                EventOut::CrossBorderPaid {
                    payment: payment.get(),
                    payer: payer.get(),
                    payee: payee.get(),
                    from: self.code(from),
                    to: self.code(to),
                    send: self.money(from, send),
                    receive: self.money(to, receive),
                    rate: self.rate(Some(from), send, Some(to), receive),
                    route: self.route(route),
                    surplus: self.money(from, surplus),
                    quote: quote.map(bourse_core::ids::QuoteId::get),
                }
            }
            Event::RulesActivated { version, share_bps } if viewer.is_admin() => {
                EventOut::RulesActivated { version: version.get(), share_bps }
            }
            Event::RulesRolledBack { from, to } if viewer.is_admin() => {
                EventOut::RulesRolledBack { from: from.get(), to: to.get() }
            }
            _ => return None,
        };
        Some(out)
    }

    /// The events of one delivery that `viewer` may see. A client on both sides of a
    /// trade (two accounts of one key: a cross-border payer's leg taking an order of
    /// the other) sees both fills, the taker's then the maker's.
    pub fn events(&self, events: &[Event], viewer: &Principal) -> Vec<EventOut<'a>> {
        let conversion = events.iter().rev().find_map(|event| match *event {
            Event::Quoted { from, to, .. } => Some((from, to)),
            _ => None,
        });
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            out.extend(self.event_in(event, viewer, conversion));
            if let Event::Trade { maker_account, taker_account, .. } = *event
                && !viewer.is_admin()
                && viewer.may_act_for(maker_account)
                && viewer.may_act_for(taker_account)
            {
                out.extend(self.fill(event, true));
            }
        }
        out
    }

    /// One side of a trade as its account sees it: the maker's fill, or the taker's.
    fn fill(&self, event: &Event, maker: bool) -> Option<EventOut<'a>> {
        let Event::Trade {
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
        } = *event
        else {
            return None;
        };
        let (liquidity, order, account, fill_side, fill_fee, remaining) = if maker {
            ("maker", maker_order, maker_account, taker_side.opposite(), maker_fee, maker_remaining)
        } else {
            ("taker", taker_order, taker_account, taker_side, taker_fee, taker_remaining)
        };
        let fee_asset = self.market(market).map(|view| view.spec.quote);
        Some(EventOut::Fill {
            liquidity,
            order_id: order.get(),
            account: account.get(),
            market: self.symbol_str(market),
            market_seq,
            side: side(fill_side),
            price: self.price_of(market, price),
            qty: self.qty_of(market, qty),
            fee: fee_asset.map_or(Money::raw(fill_fee), |asset| self.money(asset, fill_fee)),
            remaining: self.qty_of(market, remaining),
        })
    }

    /// One leg of a route: `numbers` is (index, lots, input, output, taker fee,
    /// remainder), as the engine's leg events carry them.
    fn leg(&self, market: MarketId, leg_side: Side, numbers: (u8, Qty, Amount, Amount, Amount, Amount)) -> LegOut<'a> {
        let (index, qty, input, output, taker_fee, remainder) = numbers;
        let spec = self.market(market).map(|view| &view.spec);
        // A buy spends the quote currency for the base; a sell the other way round.
        let (input_asset, output_asset) = match (spec, leg_side) {
            (Some(spec), Side::Buy) => (Some(spec.quote), Some(spec.base)),
            (Some(spec), Side::Sell) => (Some(spec.base), Some(spec.quote)),
            (None, _) => (None, None),
        };
        let fee_asset = spec.map(|spec| spec.quote);
        LegOut {
            leg: index,
            market: self.symbol_str(market),
            side: side(leg_side),
            qty: self.qty_of(market, qty),
            input: self.money_in(input_asset, input),
            input_asset: self.code_of(input_asset),
            output: self.money_in(output_asset, output),
            output_asset: self.code_of(output_asset),
            taker_fee: self.money_in(fee_asset, taker_fee),
            fee_asset: self.code_of(fee_asset),
            remainder: self.money_in(output_asset, remainder),
        }
    }

    /// The markets of a route, by symbol.
    fn route(&self, route: Route) -> RouteOut<'a> {
        let mut symbols = ["?"; ROUTE_HOPS_MAX];
        for (slot, market) in symbols.iter_mut().zip(route.markets()) {
            *slot = self.symbol_str(*market);
        }
        RouteOut { symbols, hops: route.hops() }
    }

    /// Whole units of `to` per whole unit of `from` (`null` when unknown).
    fn rate(&self, from: Option<AssetId>, send: Amount, to: Option<AssetId>, receive: Amount) -> Option<Money> {
        let (from, to) = (from?, to?);
        bourse_core::route::rate(self.view.assets(), from, send, to, receive).map(Money::Decimal)
    }

    /// A quote's or a cross-border payment's summary, from the command's events:
    /// `None` for any other command.
    fn cross_border(&self, events: &[Event]) -> Option<CrossBorderOut<'a>> {
        let summary =
            events.iter().rev().find(|event| matches!(event, Event::Quoted { .. } | Event::CrossBorderPaid { .. }));
        match *summary? {
            Event::Quoted { quote, payer, payee, from, to, send, receive, route: _, expires_at } => {
                let legs = events.iter().filter_map(|event| match *event {
                    Event::QuoteLeg { market, side, leg, qty, input, output, taker_fee, remainder, .. } => {
                        Some(self.leg(market, side, (leg, qty, input, output, taker_fee, remainder)))
                    }
                    _ => None,
                });
                let runners_up = events.iter().filter_map(|event| match *event {
                    Event::QuoteRunnerUp { rank, route, send, receive, .. } => Some(RunnerUpOut {
                        rank,
                        route: self.route(route),
                        send: self.money(from, send),
                        receive: self.money(to, receive),
                        rate: self.rate(Some(from), send, Some(to), receive),
                    }),
                    _ => None,
                });
                Some(CrossBorderOut::Quote {
                    quote: quote.get(),
                    payer: payer.get(),
                    payee: payee.get(),
                    from: self.code(from),
                    to: self.code(to),
                    send: self.money(from, send),
                    receive: self.money(to, receive),
                    rate: self.rate(Some(from), send, Some(to), receive),
                    expires_at: Time(expires_at),
                    route: legs.collect(),
                    runners_up: runners_up.collect(),
                })
            }
            Event::CrossBorderPaid { payer, payee, from, to, send, receive, surplus, quote, .. } => {
                let legs = events.iter().filter_map(|event| match *event {
                    Event::CrossBorderLeg {
                        market,
                        side,
                        leg,
                        order,
                        qty,
                        input,
                        output,
                        taker_fee,
                        remainder,
                        ..
                    } => {
                        let leg = self.leg(market, side, (leg, qty, input, output, taker_fee, remainder));
                        Some(PaidLegOut { order_id: order.get(), leg })
                    }
                    _ => None,
                });
                Some(CrossBorderOut::Paid {
                    quote: quote.map(bourse_core::ids::QuoteId::get),
                    payer: payer.get(),
                    payee: payee.get(),
                    from: self.code(from),
                    to: self.code(to),
                    send: self.money(from, send),
                    receive: self.money(to, receive),
                    rate: self.rate(Some(from), send, Some(to), receive),
                    surplus: self.money(from, surplus),
                    route: legs.collect(),
                })
            }
            _ => None,
        }
    }

    fn code_of(&self, asset: Option<AssetId>) -> Code {
        asset.map_or(Code(None), |asset| self.code(asset))
    }
    fn money_in(&self, asset: Option<AssetId>, amount: Amount) -> Money {
        asset.map_or(Money::raw(amount), |asset| self.money(asset, amount))
    }

    fn code(&self, asset: AssetId) -> Code {
        Code(self.view.assets().get(asset).map(bourse_core::asset::Asset::code))
    }
    fn money(&self, asset: AssetId, amount: Amount) -> Money {
        match self.view.assets().get(asset) {
            Some(asset) => Money::Decimal(asset.amount_to_decimal(amount)),
            None => Money::raw(amount),
        }
    }
    fn symbol_str(&self, market: MarketId) -> &'a str {
        self.market(market).map_or("?", |market| market.symbol.as_str())
    }
    fn price_of(&self, market: MarketId, price: Price) -> Money {
        match self.market(market) {
            Some(view) => Money::Decimal(view.spec.price_to_decimal(self.view.assets(), price)),
            None => Money::Raw(price.ticks()),
        }
    }
    fn qty_of(&self, market: MarketId, qty: Qty) -> Money {
        match self.market(market) {
            Some(view) => Money::Decimal(view.spec.qty_to_decimal(self.view.assets(), qty)),
            None => Money::Raw(qty.lots()),
        }
    }
}

/// An asset code, serialized as its text.
#[derive(Debug, Clone, Copy)]
pub struct Code(Option<bourse_core::asset::AssetCode>);

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_ref().map_or("?", |code| code.as_str()))
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(code) => serializer.serialize_str(code.as_str()),
            None => serializer.serialize_none(),
        }
    }
}

/// A decimal amount, price or quantity, serialized as a string without an
/// intermediate allocation (`collect_str` writes straight into the output).
#[derive(Debug, Clone, Copy)]
pub enum Money {
    Decimal(rust_decimal::Decimal),
    /// Minor units, ticks or lots, when the asset or market is unknown.
    Raw(u64),
}

impl Money {
    fn raw(amount: Amount) -> Self {
        Money::Raw(amount.minor_units())
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Money::Decimal(decimal) => decimal.fmt(f),
            Money::Raw(units) => units.fmt(f),
        }
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Money::Decimal(decimal) => serializer.collect_str(decimal),
            Money::Raw(units) => serializer.collect_str(units),
        }
    }
}

/// Command time as RFC 3339 UTC.
#[derive(Debug, Clone, Copy)]
pub struct Time(pub Timestamp);

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nanos = self.0.as_nanos();
        let seconds = nanos / 1_000_000_000;
        let (days, rest) = (seconds / 86_400, seconds % 86_400);
        let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60,
            nanos % 1_000_000_000
        )
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A client order id, serialized as its text.
#[derive(Debug, Clone, Copy)]
pub struct ClientText(ClientOrderId);

impl Serialize for ClientText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = self.0.get().to_be_bytes();
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        match std::str::from_utf8(&bytes[..end]) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.collect_str(&self.0.get()),
        }
    }
}

/// An event as a client sees it (`"type"` first, then the fields in this order).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventOut<'a> {
    AccountOpened {
        account: u32,
        owner: u64,
        kyc_tier: u8,
    },
    AccountFrozen {
        account: u32,
    },
    AccountUnfrozen {
        account: u32,
    },
    KycTierChanged {
        account: u32,
        kyc_tier: u8,
    },
    Deposited {
        account: u32,
        asset: Code,
        amount: Money,
        reference: Reference,
    },
    Withdrawn {
        account: u32,
        asset: Code,
        amount: Money,
        reference: Reference,
    },
    Transferred {
        payment: u64,
        from: u32,
        to: u32,
        asset: Code,
        amount: Money,
    },
    Authorized {
        payment: u64,
        payer: u32,
        payee: u32,
        asset: Code,
        amount: Money,
        expires_at: Time,
    },
    Captured {
        payment: u64,
        payer: u32,
        payee: u32,
        asset: Code,
        amount: Money,
        captured_total: Money,
        released: Money,
    },
    Voided {
        payment: u64,
        payer: u32,
        payee: u32,
        asset: Code,
        released: Money,
    },
    AuthorizationExpired {
        payment: u64,
        payer: u32,
        payee: u32,
        asset: Code,
        released: Money,
    },
    SplitPaid {
        first_payment: u64,
        payer: u32,
        asset: Code,
        total: Money,
        legs: u8,
    },
    Refunded {
        payment: u64,
        payer: u32,
        payee: u32,
        asset: Code,
        amount: Money,
        refunded_total: Money,
    },
    Balance {
        account: u32,
        asset: Code,
        available: Money,
        held: Money,
    },
    MarketAdded {
        market: &'a str,
        base: Code,
        quote: Code,
    },
    OrderAccepted {
        order_id: u64,
        account: u32,
        market: &'a str,
        side: &'static str,
        price: Option<Money>,
        qty: Money,
        time_in_force: &'static str,
        client_order_id: Option<ClientText>,
    },
    Trade {
        market: &'a str,
        market_seq: u64,
        price: Money,
        qty: Money,
        taker_side: &'static str,
        maker_order: u64,
        taker_order: u64,
        maker_account: u32,
        taker_account: u32,
        maker_fee: Money,
        taker_fee: Money,
        maker_remaining: Money,
        taker_remaining: Money,
    },
    Fill {
        liquidity: &'static str,
        order_id: u64,
        account: u32,
        market: &'a str,
        market_seq: u64,
        side: &'static str,
        price: Money,
        qty: Money,
        fee: Money,
        remaining: Money,
    },
    OrderCancelled {
        order_id: u64,
        account: u32,
        market: &'a str,
        remaining: Money,
        reason: &'static str,
    },
    OrderAmended {
        order_id: u64,
        account: u32,
        market: &'a str,
        price: Money,
        qty: Money,
        priority_kept: bool,
    },
    HeldForReview {
        hold: u64,
        kind: &'static str,
        payer: u32,
        payee: Option<u32>,
        asset: Code,
        amount: Money,
        rule: &'static str,
        version: u32,
    },
    ReviewApproved {
        hold: u64,
        payer: u32,
        payee: Option<u32>,
        asset: Code,
        amount: Money,
    },
    ReviewRejected {
        hold: u64,
        payer: u32,
        payee: Option<u32>,
        asset: Code,
        amount: Money,
    },
    RulesPublished {
        version: u32,
    },
    RulesActivated {
        version: u32,
        share_bps: u16,
    },
    RulesRolledBack {
        from: u32,
        to: u32,
    },
    QuoteLeg {
        quote: u64,
        #[serde(flatten)]
        leg: LegOut<'a>,
    },
    QuoteRunnerUp {
        quote: u64,
        rank: u8,
        route: RouteOut<'a>,
        send: Money,
        receive: Money,
        rate: Option<Money>,
    },
    Quoted {
        quote: u64,
        payer: u32,
        payee: u32,
        from: Code,
        to: Code,
        send: Money,
        receive: Money,
        rate: Option<Money>,
        route: RouteOut<'a>,
        expires_at: Time,
    },
    CrossBorderLeg {
        payment: u64,
        order_id: u64,
        #[serde(flatten)]
        leg: LegOut<'a>,
    },
    CrossBorderPaid {
        payment: u64,
        payer: u32,
        payee: u32,
        from: Code,
        to: Code,
        send: Money,
        receive: Money,
        rate: Option<Money>,
        route: RouteOut<'a>,
        surplus: Money,
        quote: Option<u64>,
    },
}

/// One leg of a cross-border route: on `market` the payer takes `qty` (whole lots)
/// on `side`, giving `input` of `input_asset` and getting `output` of `output_asset`
/// after `taker_fee` (in `fee_asset`, the market's quote currency); `remainder` of
/// the output is what the next leg (or the payee) could not use, the house's.
#[derive(Debug, Serialize)]
pub struct LegOut<'a> {
    pub leg: u8,
    pub market: &'a str,
    pub side: &'static str,
    pub qty: Money,
    pub input: Money,
    pub input_asset: Code,
    pub output: Money,
    pub output_asset: Code,
    pub taker_fee: Money,
    pub fee_asset: Code,
    pub remainder: Money,
}

/// A route as the symbols of its markets, first leg first.
#[derive(Debug, Clone, Copy)]
pub struct RouteOut<'a> {
    symbols: [&'a str; ROUTE_HOPS_MAX],
    hops: usize,
}

impl Serialize for RouteOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.symbols[..self.hops])
    }
}

/// The ids a command made or acted on; for a cross-border command, its route and
/// amounts too; for a payment held for review, the hold instead of a payment.
#[derive(Debug, Default, Serialize)]
struct ResultOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_for_review: Option<HeldOut>,
    #[serde(flatten)]
    cross_border: Option<CrossBorderOut<'a>>,
}

/// A payment held for review instead of made: its hold and, when this command held it,
/// the `held_for_review` event's fields (a replay knows the hold only).
#[derive(Debug, Serialize)]
struct HeldOut {
    hold: u64,
    #[serde(flatten)]
    detail: Option<HeldDetailOut>,
}

/// What was held, from whom, for whom, and which rule of which version held it.
#[derive(Debug, Serialize)]
struct HeldDetailOut {
    kind: &'static str,
    payer: u32,
    payee: Option<u32>,
    asset: Code,
    amount: Money,
    rule: &'static str,
    version: u32,
}

/// What a quote or a cross-border payment came to, in one object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum CrossBorderOut<'a> {
    Quote {
        quote: u64,
        payer: u32,
        payee: u32,
        from: Code,
        to: Code,
        send: Money,
        receive: Money,
        rate: Option<Money>,
        expires_at: Time,
        route: Vec<LegOut<'a>>,
        runners_up: Vec<RunnerUpOut<'a>>,
    },
    Paid {
        quote: Option<u64>,
        payer: u32,
        payee: u32,
        from: Code,
        to: Code,
        send: Money,
        receive: Money,
        rate: Option<Money>,
        surplus: Money,
        route: Vec<PaidLegOut<'a>>,
    },
}

/// A route a quote considered and did not choose.
#[derive(Debug, Serialize)]
struct RunnerUpOut<'a> {
    rank: u8,
    route: RouteOut<'a>,
    send: Money,
    receive: Money,
    rate: Option<Money>,
}

/// A leg as paid: the payer's taker order on that market, and what it moved.
#[derive(Debug, Serialize)]
struct PaidLegOut<'a> {
    order_id: u64,
    #[serde(flatten)]
    leg: LegOut<'a>,
}

/// How far the books moved from a rate limit (`rate_moved`).
#[derive(Debug, Serialize)]
struct RateMovedOut {
    asset: Code,
    limit: Money,
    achievable: Money,
    moved_ppm: u32,
}

#[derive(Debug, Serialize)]
struct ErrorOut {
    code: &'static str,
    message: std::borrow::Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<RateMovedOut>,
}

#[derive(Debug, Serialize)]
struct ReplyOut<'a> {
    id: &'a Value,
    ok: bool,
    seq: u64,
    time: Time,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<ResultOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventOut<'a>>>,
}

#[derive(Debug, Serialize)]
struct PushOut<'a> {
    channel: &'static str,
    seq: u64,
    time: Time,
    events: Vec<EventOut<'a>>,
}

fn client_text(client: Option<ClientOrderId>) -> Value {
    client.and_then(ClientOrderId::to_text).map_or(Value::Null, Value::from)
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|error| format!("{{\"ok\":false,\"error\":{{\"code\":\"internal\",\"message\":\"{error}\"}}}}"))
}

/// The reply to a command, as JSON text, and whether it is `ok`: a short `result` and
/// the events, or the engine's rejection as an error. Both carry the journal sequence
/// number.
pub fn reply(view: &ReadModel, id: &Value, delivery: &Delivery, viewer: &Principal) -> (String, bool) {
    let applied = delivery.applied();
    let events = delivery.events();
    let (rejected, replayed) = match events.last() {
        Some(Event::Rejected { reason, .. }) => (Some(*reason), false),
        Some(Event::Replayed { original: Outcome::Rejected(reason), .. }) => (Some(*reason), true),
        Some(Event::Replayed { .. }) => (None, true),
        _ => (None, false),
    };
    let formatter = Formatter::new(view);
    let out = ReplyOut {
        id,
        ok: rejected.is_none(),
        seq: applied.seq.get(),
        time: Time(applied.timestamp),
        replayed,
        error: rejected.map(|reason| error(&formatter, reason, events)),
        result: rejected.is_none().then(|| result(&formatter, events)),
        events: rejected.is_none().then(|| formatter.events(events, viewer)),
    };
    (to_json(&out), rejected.is_none())
}

/// A rejection as `{code, message}`; a `rate_moved` also says how far the books moved,
/// in its message and as `detail`.
fn error(formatter: &Formatter<'_>, reason: RejectReason, events: &[Event]) -> ErrorOut {
    let moved = events.iter().find_map(|event| match *event {
        Event::RateMoved { asset, limit, achievable, moved_ppm, .. } if reason == RejectReason::RateMoved => {
            Some(RateMovedOut {
                asset: formatter.code(asset),
                limit: formatter.money(asset, limit),
                achievable: formatter.money(asset, achievable),
                moved_ppm,
            })
        }
        _ => None,
    });
    let message = match &moved {
        Some(moved) => format!(
            "{}: the limit is {} {asset}, the books now give {} {asset} ({} ppm worse)",
            reject_message(reason),
            moved.limit,
            moved.achievable,
            moved.moved_ppm,
            asset = moved.asset,
        )
        .into(),
        None => error_message(reason, events),
    };
    ErrorOut { code: reject_code(reason), message, detail: moved }
}

/// What a rejection means; for a rule's, which rule of which version decided.
fn error_message(reason: RejectReason, events: &[Event]) -> std::borrow::Cow<'static, str> {
    let violated = events.iter().find_map(|event| match *event {
        Event::RuleViolated { account, rule, version, .. } => Some((account, rule, version)),
        _ => None,
    });
    match violated {
        Some((account, rule, version)) if reason == RejectReason::RuleViolation => {
            format!("{}: {rule} of rule version {version} (account {account}'s rules)", reject_message(reason)).into()
        }
        _ => reject_message(reason).into(),
    }
}

/// The ids a command made or acted on, from its events; a payment held for review
/// shows its hold.
fn result<'a>(formatter: &Formatter<'a>, events: &[Event]) -> ResultOut<'a> {
    let mut result = ResultOut { cross_border: formatter.cross_border(events), ..ResultOut::default() };
    for event in events {
        match *event {
            Event::AccountOpened { account, .. } => result.account = Some(account.get()),
            Event::Transferred { payment, .. } | Event::Authorized { payment, .. } if result.payment.is_none() => {
                result.payment = Some(payment.get());
            }
            Event::Captured { payment, .. }
            | Event::Voided { payment, .. }
            | Event::Refunded { payment, .. }
            | Event::CrossBorderPaid { payment, .. }
            | Event::Replayed { original: Outcome::Accepted { payment: Some(payment) }, .. } => {
                result.payment = Some(payment.get());
            }
            Event::OrderAccepted { order, .. } => result.order_id = Some(order.get()),
            Event::HeldForReview { hold, kind, payer, payee, asset, amount, rule, version } => {
                let detail = HeldDetailOut {
                    kind: payment_kind(kind),
                    payer: payer.get(),
                    payee: payee.map(AccountId::get),
                    asset: formatter.code(asset),
                    amount: formatter.money(asset, amount),
                    rule: rule.name(),
                    version: version.get(),
                };
                result.held_for_review = Some(HeldOut { hold: hold.get(), detail: Some(detail) });
            }
            Event::Replayed { original: Outcome::HeldForReview { hold }, .. } => {
                result.held_for_review = Some(HeldOut { hold: hold.get(), detail: None });
            }
            _ => {}
        }
    }
    result
}

/// A push of another command's events (`channel: "account"`), as JSON text; `None`
/// when nothing in it is the viewer's to see.
pub fn push(view: &ReadModel, delivery: &Delivery, viewer: &Principal) -> Option<String> {
    let events = Formatter::new(view).events(delivery.events(), viewer);
    if events.is_empty() {
        return None;
    }
    let applied = delivery.applied();
    Some(to_json(&PushOut { channel: "account", seq: applied.seq.get(), time: Time(applied.timestamp), events }))
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

/// Payments waiting for review, oldest first (`list_reviews`): those where `account`
/// is the payer or the payee, when given; at most `limit` of them, and how many match
/// in all.
pub fn reviews(view: &ReadModel, account: Option<AccountId>, limit: usize) -> Value {
    let formatter = Formatter::new(view);
    let concerns =
        |review: &&ReviewView| account.is_none_or(|account| review.payer == account || review.payee == Some(account));
    let mut matching = 0_usize;
    let mut listed = Vec::with_capacity(limit.min(64));
    for review in view.pending_reviews().filter(concerns) {
        matching += 1;
        if listed.len() < limit {
            listed.push(json!({
                "hold": review.hold.get(),
                "kind": payment_kind(review.kind),
                "payer": review.payer.get(),
                "payee": review.payee.map(AccountId::get),
                "asset": formatter.asset(review.asset),
                "amount": formatter.amount(review.asset, review.amount),
                "rule": review.rule.name(),
                "version": review.version.get(),
                "created_at": time(review.created_at),
            }));
        }
    }
    json!({"reviews": listed, "pending": matching, "as_of_seq": view.last_seq().map_or(0, Seq::get)})
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

/// What an L2 snapshot shows (`[price, qty, orders]` per level, best first, at
/// `market_seq`), copied out of the read model: up to a thousand levels a side are
/// rendered after the lock is released, not while the engine thread waits to publish.
#[derive(Debug)]
pub struct DepthCopy {
    symbol: String,
    market_seq: u64,
    spec: MarketSpec,
    assets: AssetTable,
    bids: Vec<LevelView>,
    asks: Vec<LevelView>,
}

impl DepthCopy {
    /// The best `count` levels a side of `market`, and what formatting them needs.
    pub fn of(view: &ReadModel, market: &MarketView, count: usize) -> Self {
        let (bids, asks) = market.depth(count);
        Self {
            symbol: market.symbol.clone(),
            market_seq: market.market_seq,
            spec: market.spec.clone(),
            assets: view.assets().clone(),
            bids,
            asks,
        }
    }

    /// The snapshot as `depth` renders it.
    pub fn render(&self) -> Value {
        let levels = |levels: &[LevelView]| -> Vec<Value> {
            levels
                .iter()
                .map(|(price, qty, orders)| {
                    let price = self.spec.price_to_decimal(&self.assets, *price).to_string();
                    let qty = self.spec.qty_to_decimal(&self.assets, *qty).to_string();
                    json!([price, qty, orders])
                })
                .collect()
        };
        json!({
            "channel": "book",
            "type": "snapshot",
            "market": self.symbol,
            "market_seq": self.market_seq,
            "bids": levels(&self.bids),
            "asks": levels(&self.asks),
        })
    }

    pub fn market_seq(&self) -> u64 {
        self.market_seq
    }
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
    json!({"channel": "trades", "type": "snapshot", "market": market.symbol, "trades": trades})
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
            Some(json!({"channel": "trades", "type": "update", "market": market.symbol, "trades": trades}))
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
