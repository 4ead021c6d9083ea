//! Export of the whole state to plain rows and the rebuild from them: what snapshots
//! and recovery use. A rebuilt engine has the same `state_hash` as the one exported.

use smallvec::SmallVec;
use thiserror::Error;

use super::idempotency::{Entry, IdempotencyTable};
use super::ledger::Ledger;
use super::payments::{PaymentBook, PaymentKind, PaymentRecord, PaymentState};
use super::quotes::{Quote, QuoteBook};
use super::routing::RouteGraph;
use super::{Capacity, Engine};
use crate::account::Account;
use crate::asset::{Asset, AssetCode, AssetTable};
use crate::book::{ClientOrderId, MarketId, NewOrder, OrderId, OrderSlab, Price, Qty, SelfTradePrevention, Side};
use crate::config::CrossBorderConfig;
use crate::event::Outcome;
use crate::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, QuoteId, Seq, Timestamp};
use crate::market::{FeeRate, FeeSchedule, Market, MarketSpec};
use crate::money::Amount;
use crate::reconcile::AssetTotals;
use crate::route::Route;
use crate::state::{
    AccountRow, AssetRow, BalanceRow, CrossBorderRow, EngineState, IdempotencyRow, MarketRow, OrderRow, PaymentRow,
    QuoteRow, TotalsRow,
};

/// A state that cannot be an engine's: names what is wrong.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("engine state is not valid: {0}")]
pub struct StateError(String);

impl StateError {
    pub(super) fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

fn bad(what: impl Into<String>) -> StateError {
    StateError(what.into())
}

const KINDS: [PaymentKind; 4] =
    [PaymentKind::Transfer, PaymentKind::SplitLeg, PaymentKind::Authorization, PaymentKind::CrossBorder];
const STATES: [PaymentState; 5] =
    [PaymentState::Settled, PaymentState::Open, PaymentState::Captured, PaymentState::Voided, PaymentState::Expired];
const POLICIES: [SelfTradePrevention; 3] =
    [SelfTradePrevention::CancelTaker, SelfTradePrevention::CancelMaker, SelfTradePrevention::CancelBoth];

fn index_of<T: PartialEq>(all: &[T], value: &T) -> u8 {
    all.iter().position(|candidate| candidate == value).expect("every variant is listed") as u8
}

impl Engine {
    /// The whole state as rows, in canonical order.
    pub fn export_state(&self) -> EngineState {
        let assets = self
            .assets
            .iter()
            .map(|(_, asset)| AssetRow { code: asset.code().to_string(), scale: asset.scale() })
            .collect();
        let mut balances = Vec::new();
        let accounts = self
            .ledger
            .accounts()
            .iter()
            .enumerate()
            .map(|(index, account)| {
                balances.extend(account.balances().iter().map(|balance| BalanceRow {
                    account: index as u32,
                    asset: balance.asset().get(),
                    available: balance.available().minor_units(),
                    held: balance.held().minor_units(),
                }));
                AccountRow {
                    owner: account.owner().get(),
                    kyc_tier: account.kyc_tier().get(),
                    frozen: account.is_frozen(),
                }
            })
            .collect();
        let totals = self
            .ledger
            .totals()
            .iter()
            .map(|totals| TotalsRow {
                in_accounts: totals.in_accounts().minor_units(),
                fees: totals.fees().minor_units(),
                remainders: totals.remainders().minor_units(),
                deposited: totals.deposited(),
                withdrawn: totals.withdrawn(),
            })
            .collect();
        let mut state = EngineState {
            assets,
            last_seq: self.last_seq.map(Seq::get),
            now: self.now.as_nanos(),
            accounts,
            balances,
            totals,
            payments_first_id: self.payments.first_id(),
            payments: self.payments.iter().map(|(_, record)| payment_row(record)).collect(),
            idempotency: self
                .idempotency
                .iter_in_order()
                .map(|(at, scope, entry)| idempotency_row(at, scope, &entry))
                .collect(),
            markets: self.markets.iter().map(market_row).collect(),
            orders: self.order_rows(),
            next_order_id: self.next_order_id,
            rule_versions: Vec::new(),
            rules_base: 0,
            rules_rollout_version: 0,
            rules_rollout_share_bps: 0,
            rule_changes: Vec::new(),
            risk_counters: Vec::new(),
            risk_outflows: Vec::new(),
            risk_payment_times: Vec::new(),
            review_holds: Vec::new(),
            review_legs: Vec::new(),
            review_crossborder: Vec::new(),
            next_hold_id: 1,
            crossborder: CrossBorderRow {
                max_hops: self.crossborder.max_hops,
                quote_ttl_ns: self.crossborder.quote_ttl.as_nanos(),
                next_quote_id: self.quotes.next_id(),
            },
            quotes: self.quotes.sorted().into_iter().map(|(id, quote)| quote_row(id, &quote)).collect(),
        };
        super::risk_state::export(self, &mut state);
        state
    }

    fn order_rows(&self) -> Vec<OrderRow> {
        let mut rows = Vec::with_capacity(self.orders.len());
        for market in &self.markets {
            for side in [Side::Buy, Side::Sell] {
                for level in market.book.side(side).levels() {
                    let mut cursor = Some(level.head());
                    while let Some(slot) = cursor {
                        let order = self.orders.get(slot);
                        rows.push(OrderRow {
                            id: order.id().get(),
                            client_order_id: order.client_order_id().map(ClientOrderId::get),
                            account: order.account(),
                            market: order.market().get(),
                            side: u8::from(order.side() == Side::Sell),
                            price: order.price().ticks(),
                            remaining: order.remaining().lots(),
                            held: order.held(),
                            maker_bps: order.maker_bps(),
                            taker_bps: order.taker_bps(),
                            stp: index_of(&POLICIES, &order.stp()),
                            post_only: order.post_only(),
                        });
                        cursor = self.orders.next_in_level(slot);
                    }
                }
            }
        }
        rows
    }

    /// Rebuilds an engine from exported rows, checking that every reference in them
    /// holds (callers compare the state hash on top).
    pub fn from_state(state: &EngineState, capacity: Capacity) -> Result<Engine, StateError> {
        let assets = restore_assets(&state.assets)?;
        let ledger = restore_ledger(state, &assets, capacity)?;
        let account_count = ledger.len();
        let known_account = |account: u32| (account as usize) < account_count;
        let payments = restore_payments(state, &assets, known_account)?;
        let idempotency = restore_idempotency(&state.idempotency, known_account)?;
        let markets = state.markets.iter().map(|row| restore_market(row, &assets)).collect::<Result<Vec<_>, _>>()?;
        let rules = super::risk_state::restore_rules(state, &assets)?;
        let reviews = super::risk_state::restore_reviews(state, &assets, &markets, known_account)?;
        let crossborder = CrossBorderConfig {
            max_hops: state.crossborder.max_hops,
            quote_ttl: Timestamp::from_nanos(state.crossborder.quote_ttl_ns),
        };
        crossborder.validate().map_err(|error| bad(error.to_string()))?;
        let quotes = restore_quotes(state, &assets, &markets, known_account)?;
        let mut engine = Engine {
            route_graph: RouteGraph::new(assets.len(), &markets),
            assets,
            ledger,
            payments,
            idempotency,
            markets,
            orders: OrderSlab::with_capacity(capacity.orders.max(state.orders.len())),
            next_order_id: state.next_order_id,
            touched_levels: Vec::with_capacity(64),
            scratch_slots: Vec::new(),
            rules,
            reviews,
            crossborder,
            quotes,
            scratch_candidates: Vec::with_capacity(64),
            last_seq: state.last_seq.map(Seq::new),
            now: Timestamp::from_nanos(state.now),
        };
        for row in &state.orders {
            engine.restore_order(row, known_account(row.account))?;
        }
        Ok(engine)
    }

    fn restore_order(&mut self, row: &OrderRow, known_account: bool) -> Result<(), StateError> {
        let market = MarketId::new(row.market);
        let order = NewOrder {
            id: OrderId::new(row.id),
            client_order_id: row.client_order_id.and_then(ClientOrderId::new),
            account: row.account,
            market,
            side: if row.side == 0 { Side::Buy } else { Side::Sell },
            price: Price::new(row.price).ok_or_else(|| bad(format!("order {} has price {}", row.id, row.price)))?,
            remaining: Qty::new(row.remaining)
                .filter(|qty| !qty.is_zero())
                .ok_or_else(|| bad(format!("order {} has no quantity", row.id)))?,
            held: row.held,
            maker_bps: row.maker_bps,
            taker_bps: row.taker_bps,
            stp: *POLICIES
                .get(usize::from(row.stp))
                .ok_or_else(|| bad(format!("order {} has STP code {}", row.id, row.stp)))?,
            post_only: row.post_only,
        };
        let duplicate = self.orders.find(order.id).is_some()
            || order.client_order_id.is_some_and(|client| self.orders.find_client(row.account, client).is_some());
        if !known_account || market.index() >= self.markets.len() || duplicate || row.id >= self.next_order_id {
            return Err(bad(format!("order {} names an unknown account or market, or repeats an id", row.id)));
        }
        let slot = self.orders.insert(&order);
        self.markets[market.index()].book.side_mut(order.side).push_back(&mut self.orders, slot);
        Ok(())
    }
}

fn payment_row(record: &PaymentRecord) -> PaymentRow {
    PaymentRow {
        payer: record.payer.get(),
        payee: record.payee.get(),
        asset: record.asset.get(),
        kind: index_of(&KINDS, &record.kind),
        state: index_of(&STATES, &record.state),
        amount: record.amount.minor_units(),
        paid: record.paid.minor_units(),
        refunded: record.refunded.minor_units(),
        created_at: record.created_at.as_nanos(),
        expires_at: record.expires_at.as_nanos(),
    }
}

fn idempotency_row(at: Timestamp, (account, key): (AccountId, IdempotencyKey), entry: &Entry) -> IdempotencyRow {
    let (outcome, value) = entry.outcome.code();
    IdempotencyRow {
        recorded_at: at.as_nanos(),
        account: account.get(),
        key: key.get(),
        fingerprint: entry.fingerprint,
        outcome,
        value,
    }
}

fn market_row(market: &Market) -> MarketRow {
    let spec = market.spec();
    MarketRow {
        base: spec.base.get(),
        quote: spec.quote.get(),
        lot: spec.lot,
        tick: spec.tick,
        qty_min: spec.qty_min.lots(),
        qty_max: spec.qty_max.lots(),
        fees: spec.fees.tiers().iter().map(|rate| (rate.maker_bps, rate.taker_bps)).collect(),
        market_seq: market.market_seq,
        last_price: market.last_price.map(Price::ticks),
    }
}

fn restore_assets(rows: &[AssetRow]) -> Result<AssetTable, StateError> {
    let assets = rows
        .iter()
        .map(|row| AssetCode::new(&row.code).and_then(|code| Asset::new(code, row.scale)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(error.to_string()))?;
    AssetTable::new(assets).map_err(|error| bad(error.to_string()))
}

fn amount(value: u64, what: &str) -> Result<Amount, StateError> {
    Amount::new(value).ok_or_else(|| bad(format!("{what} {value} is above AMOUNT_MAX")))
}

fn restore_ledger(state: &EngineState, assets: &AssetTable, capacity: Capacity) -> Result<Ledger, StateError> {
    if state.totals.len() != assets.len() {
        return Err(bad("one running total per asset"));
    }
    let mut accounts = Vec::with_capacity(capacity.accounts.max(state.accounts.len()));
    let mut balances = state.balances.iter().peekable();
    let mut row_balances: SmallVec<[(AssetId, Amount, Amount); 4]> = SmallVec::new();
    for (index, row) in state.accounts.iter().enumerate() {
        row_balances.clear();
        while let Some(balance) = balances.next_if(|balance| balance.account as usize == index) {
            let asset = AssetId::new(balance.asset);
            let ordered = row_balances.last().is_none_or(|&(last, _, _)| last < asset);
            if !assets.contains(asset) || !ordered {
                return Err(bad(format!(
                    "account {index} has a balance of asset {} out of order or unknown",
                    balance.asset
                )));
            }
            row_balances.push((asset, amount(balance.available, "available")?, amount(balance.held, "held")?));
        }
        let tier =
            KycTier::new(row.kyc_tier).ok_or_else(|| bad(format!("account {index} has KYC tier {}", row.kyc_tier)))?;
        accounts.push(Account::restore(OwnerId::new(row.owner), tier, row.frozen, &row_balances));
    }
    if balances.next().is_some() {
        return Err(bad("balance rows out of account order or for unknown accounts"));
    }
    super::risk_state::restore_counters(state, &mut accounts, assets)?;
    let totals = state
        .totals
        .iter()
        .map(|row| {
            amount(row.in_accounts, "running total")?;
            amount(row.fees, "fee total")?;
            amount(row.remainders, "remainder total")?;
            Ok(AssetTotals::restore(row.in_accounts, row.fees, row.remainders, row.deposited, row.withdrawn))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    Ok(Ledger::restore(accounts, totals))
}

fn restore_payments(
    state: &EngineState,
    assets: &AssetTable,
    known_account: impl Fn(u32) -> bool,
) -> Result<PaymentBook, StateError> {
    let mut records = Vec::with_capacity(state.payments.len());
    for (index, row) in state.payments.iter().enumerate() {
        let id = state.payments_first_id + index as u64;
        let kind =
            *KINDS.get(usize::from(row.kind)).ok_or_else(|| bad(format!("payment {id} has kind {}", row.kind)))?;
        let payment_state =
            *STATES.get(usize::from(row.state)).ok_or_else(|| bad(format!("payment {id} has state {}", row.state)))?;
        if !known_account(row.payer) || !known_account(row.payee) || !assets.contains(AssetId::new(row.asset)) {
            return Err(bad(format!("payment {id} names an unknown account or asset")));
        }
        records.push(PaymentRecord {
            payer: AccountId::new(row.payer),
            payee: AccountId::new(row.payee),
            asset: AssetId::new(row.asset),
            kind,
            state: payment_state,
            amount: amount(row.amount, "payment amount")?,
            paid: amount(row.paid, "payment paid")?,
            refunded: amount(row.refunded, "payment refunded")?,
            created_at: Timestamp::from_nanos(row.created_at),
            expires_at: Timestamp::from_nanos(row.expires_at),
        });
    }
    Ok(PaymentBook::restore(state.payments_first_id, records))
}

fn restore_idempotency(
    rows: &[IdempotencyRow],
    known_account: impl Fn(u32) -> bool,
) -> Result<IdempotencyTable, StateError> {
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = Outcome::from_code(row.outcome, row.value)
            .ok_or_else(|| bad(format!("idempotency outcome code ({}, {})", row.outcome, row.value)))?;
        if !known_account(row.account) {
            return Err(bad(format!("idempotency entry for unknown account {}", row.account)));
        }
        let scope = (AccountId::new(row.account), IdempotencyKey::new(row.key));
        entries.push((Timestamp::from_nanos(row.recorded_at), scope, Entry { fingerprint: row.fingerprint, outcome }));
    }
    let table = IdempotencyTable::restore(entries.into_iter());
    if table.len() != rows.len() {
        return Err(bad("an idempotency key appears twice"));
    }
    Ok(table)
}

fn restore_market(row: &MarketRow, assets: &AssetTable) -> Result<Market, StateError> {
    let fees =
        FeeSchedule::new(row.fees.iter().map(|&(maker_bps, taker_bps)| FeeRate { maker_bps, taker_bps }).collect())
            .map_err(|error| bad(error.to_string()))?;
    let spec = MarketSpec {
        base: AssetId::new(row.base),
        quote: AssetId::new(row.quote),
        lot: row.lot,
        tick: row.tick,
        qty_min: Qty::new(row.qty_min).ok_or_else(|| bad("market qty_min"))?,
        qty_max: Qty::new(row.qty_max).ok_or_else(|| bad("market qty_max"))?,
        fees,
    };
    spec.validate(assets).map_err(|error| bad(error.to_string()))?;
    let mut market = Market::new(spec);
    market.market_seq = row.market_seq;
    market.last_price = row.last_price.and_then(Price::new);
    Ok(market)
}

fn quote_row(id: QuoteId, quote: &Quote) -> QuoteRow {
    let mut markets = [0; crate::limits::ROUTE_HOPS_MAX];
    for (slot, market) in markets.iter_mut().zip(quote.route.markets()) {
        *slot = market.get();
    }
    QuoteRow {
        id: id.get(),
        payer: quote.payer.get(),
        payee: quote.payee.get(),
        from: quote.from.get(),
        to: quote.to.get(),
        hops: quote.route.hops() as u8,
        markets,
        send: quote.send.minor_units(),
        receive: quote.receive.minor_units(),
        expires_at: quote.expires_at.as_nanos(),
        used: quote.used,
    }
}

fn restore_quotes(
    state: &EngineState,
    assets: &AssetTable,
    markets: &[Market],
    known_account: impl Fn(u32) -> bool,
) -> Result<QuoteBook, StateError> {
    let mut quotes = Vec::with_capacity(state.quotes.len());
    for row in &state.quotes {
        let id = row.id;
        let (from, to) = (AssetId::new(row.from), AssetId::new(row.to));
        if !assets.contains(from) {
            return Err(bad(format!("quote {id}: unknown asset {from}")));
        }
        let route = restore_route(row.hops, &row.markets, (from, to), markets)
            .map_err(|problem| bad(format!("quote {id}: {problem}")))?;
        if !known_account(row.payer) || !known_account(row.payee) || row.payer == row.payee {
            return Err(bad(format!("quote {id} names unknown or equal accounts")));
        }
        if row.expires_at <= state.now {
            return Err(bad(format!("quote {id} expired before the state's time")));
        }
        let quote = Quote {
            payer: AccountId::new(row.payer),
            payee: AccountId::new(row.payee),
            from,
            to,
            route,
            send: amount(row.send, "quote send")?,
            receive: amount(row.receive, "quote receive")?,
            expires_at: Timestamp::from_nanos(row.expires_at),
            used: row.used,
        };
        quotes.push((QuoteId::new(id), quote));
    }
    QuoteBook::restore(state.crossborder.next_quote_id, quotes.into_iter())
        .ok_or_else(|| bad("a quote id repeats or is not below the next quote id"))
}

/// A route as rows keep it (`hops` markets, first leg first, `ids[hops..]` zero) that
/// converts `from` into `to` over `markets`; what is wrong otherwise.
pub(super) fn restore_route(
    hops: u8,
    ids: &[u32; crate::limits::ROUTE_HOPS_MAX],
    (from, to): (AssetId, AssetId),
    markets: &[Market],
) -> Result<Route, String> {
    let ids_of_route: Vec<MarketId> =
        ids.get(..usize::from(hops)).unwrap_or(&[]).iter().map(|&market| MarketId::new(market)).collect();
    let route = Route::new(&ids_of_route)
        .filter(|route| ids[route.hops()..].iter().all(|&market| market == 0))
        .ok_or_else(|| format!("a route of {hops} markets"))?;
    let ends_in =
        route.legs(from, |market| markets.get(market.index()).map(Market::spec)).map(|legs| legs[route.hops() - 1].1);
    if ends_in != Some(to) || from == to {
        return Err("its route does not convert its assets".to_owned());
    }
    Ok(route)
}
