//! The read model: what the gateway answers queries from (balances, open orders,
//! markets, depth, recent trades) without asking the engine thread. It is built from
//! the recovered engine at start, then kept current by the publisher from the events
//! of every applied batch, in sequence order, so it is never ahead of what clients
//! were told and at most one batch behind the engine.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bourse_core::Engine;
use bourse_core::asset::AssetTable;
use bourse_core::book::{ClientOrderId, MarketId, OrderId, Price, Qty, Side};
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, AssetId, KycTier, OwnerId, Seq, Timestamp};
use bourse_core::market::MarketSpec;
use bourse_core::money::Amount;

/// Trades kept per market for `GET …/trades`.
pub const RECENT_TRADES: usize = 200;

/// Best bid and best ask: (price, total lots) each.
pub type Bbo = (Option<(Price, Qty)>, Option<(Price, Qty)>);
/// One price level: (price, total lots, orders).
pub type LevelView = (Price, Qty, u32);

#[derive(Clone, Debug)]
pub struct AccountView {
    pub owner: OwnerId,
    pub kyc_tier: KycTier,
    pub frozen: bool,
    /// Asset → (available, held); only assets the account ever held.
    pub balances: BTreeMap<AssetId, (Amount, Amount)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub id: OrderId,
    pub account: AccountId,
    pub market: MarketId,
    pub side: Side,
    pub price: Price,
    pub remaining: Qty,
    pub client_order_id: Option<ClientOrderId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradeView {
    pub market_seq: u64,
    pub price: Price,
    pub qty: Qty,
    pub taker_side: Side,
    pub timestamp: Timestamp,
}

#[derive(Clone, Debug)]
pub struct MarketView {
    pub id: MarketId,
    /// `BASE-QUOTE`, e.g. `BTC-USD`.
    pub symbol: String,
    pub spec: MarketSpec,
    /// Price → (total lots, orders). Bids and asks, each keyed ascending.
    pub bids: BTreeMap<Price, (Qty, u32)>,
    pub asks: BTreeMap<Price, (Qty, u32)>,
    /// The market-data sequence number the levels are current at.
    pub market_seq: u64,
    pub trades: VecDeque<TradeView>,
}

impl MarketView {
    fn new(id: MarketId, symbol: String, spec: MarketSpec) -> Self {
        Self {
            id,
            symbol,
            spec,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            market_seq: 0,
            trades: VecDeque::with_capacity(RECENT_TRADES),
        }
    }

    /// Best bid and best ask.
    pub fn bbo(&self) -> Bbo {
        let bid = self.bids.last_key_value().map(|(price, (total, _))| (*price, *total));
        let ask = self.asks.first_key_value().map(|(price, (total, _))| (*price, *total));
        (bid, ask)
    }

    /// The top `levels` of each side, best first: (price, total, orders).
    pub fn depth(&self, levels: usize) -> (Vec<LevelView>, Vec<LevelView>) {
        let bids = self.bids.iter().rev().take(levels).map(|(p, (q, n))| (*p, *q, *n)).collect();
        let asks = self.asks.iter().take(levels).map(|(p, (q, n))| (*p, *q, *n)).collect();
        (bids, asks)
    }
}

/// Everything the gateway can answer without the engine.
#[derive(Debug)]
pub struct ReadModel {
    assets: AssetTable,
    accounts: Vec<AccountView>,
    markets: Vec<MarketView>,
    by_symbol: HashMap<String, MarketId>,
    orders: HashMap<OrderId, OrderView>,
    last_seq: Option<Seq>,
    last_timestamp: Timestamp,
}

/// `BASE-QUOTE` from the asset codes.
pub fn symbol_of(assets: &AssetTable, spec: &MarketSpec) -> String {
    let code = |asset| assets.get(asset).map_or_else(|| "?".to_owned(), |asset| asset.code().as_str().to_owned());
    format!("{}-{}", code(spec.base), code(spec.quote))
}

impl ReadModel {
    /// The model of `engine` as recovered.
    pub fn from_engine(engine: &Engine) -> Self {
        let assets = engine.assets().clone();
        let accounts = (0..engine.account_count())
            .filter_map(|index| {
                let account = engine.account(AccountId::new(u32::try_from(index).ok()?))?;
                let balances = account
                    .balances()
                    .iter()
                    .map(|balance| (balance.asset(), (balance.available(), balance.held())))
                    .collect();
                Some(AccountView {
                    owner: account.owner(),
                    kyc_tier: account.kyc_tier(),
                    frozen: account.is_frozen(),
                    balances,
                })
            })
            .collect();
        let mut model = Self {
            assets,
            accounts,
            markets: Vec::new(),
            by_symbol: HashMap::new(),
            orders: HashMap::new(),
            last_seq: engine.last_seq(),
            last_timestamp: engine.now(),
        };
        for (index, market) in engine.markets().iter().enumerate() {
            let id = MarketId::new(index as u32);
            model.add_market(id, market.spec().clone());
            let view = &mut model.markets[index];
            view.market_seq = market.market_seq();
            for side in [Side::Buy, Side::Sell] {
                let levels =
                    market.book().side(side).levels().map(|level| (level.price(), (level.total(), level.count())));
                match side {
                    Side::Buy => view.bids.extend(levels),
                    Side::Sell => view.asks.extend(levels),
                }
            }
        }
        for (_, node) in engine.orders().iter() {
            let order = OrderView {
                id: node.id(),
                account: AccountId::new(node.account()),
                market: node.market(),
                side: node.side(),
                price: node.price(),
                remaining: node.remaining(),
                client_order_id: node.client_order_id(),
            };
            model.orders.insert(order.id, order);
        }
        model
    }

    fn add_market(&mut self, id: MarketId, spec: MarketSpec) {
        let symbol = symbol_of(&self.assets, &spec);
        self.by_symbol.insert(symbol.clone(), id);
        let index = id.get() as usize;
        if self.markets.len() <= index {
            self.markets.push(MarketView::new(id, symbol, spec));
        }
    }

    pub fn assets(&self) -> &AssetTable {
        &self.assets
    }
    pub fn account(&self, account: AccountId) -> Option<&AccountView> {
        self.accounts.get(account.get() as usize)
    }
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }
    pub fn markets(&self) -> &[MarketView] {
        &self.markets
    }
    pub fn market(&self, market: MarketId) -> Option<&MarketView> {
        self.markets.get(market.get() as usize)
    }
    pub fn market_by_symbol(&self, symbol: &str) -> Option<&MarketView> {
        self.by_symbol.get(symbol).and_then(|id| self.market(*id))
    }
    pub fn order(&self, order: OrderId) -> Option<&OrderView> {
        self.orders.get(&order)
    }
    /// The open orders of `account`, oldest first.
    pub fn open_orders(&self, account: AccountId) -> Vec<OrderView> {
        let mut orders: Vec<OrderView> =
            self.orders.values().filter(|order| order.account == account).copied().collect();
        orders.sort_unstable_by_key(|order| order.id);
        orders
    }
    pub fn last_seq(&self) -> Option<Seq> {
        self.last_seq
    }
    pub fn last_timestamp(&self) -> Timestamp {
        self.last_timestamp
    }

    /// Applies one command's events. `new_market` is the spec of a market this command
    /// added (the event names only its assets).
    pub fn apply(&mut self, seq: Seq, timestamp: Timestamp, events: &[Event], new_market: Option<&MarketSpec>) {
        self.last_seq = Some(seq);
        self.last_timestamp = timestamp;
        for event in events {
            self.apply_event(timestamp, event, new_market);
        }
    }

    fn apply_event(&mut self, timestamp: Timestamp, event: &Event, new_market: Option<&MarketSpec>) {
        match *event {
            Event::AccountOpened { account, owner, kyc_tier } => {
                debug_assert_eq!(account.get() as usize, self.accounts.len());
                self.accounts.push(AccountView { owner, kyc_tier, frozen: false, balances: BTreeMap::new() });
            }
            Event::AccountFrozen { account } => self.with_account(account, |view| view.frozen = true),
            Event::AccountUnfrozen { account } => self.with_account(account, |view| view.frozen = false),
            Event::KycTierChanged { account, kyc_tier } => self.with_account(account, |view| view.kyc_tier = kyc_tier),
            Event::BalanceChanged { account, asset, available, held } => {
                self.with_account(account, |view| {
                    view.balances.insert(asset, (available, held));
                });
            }
            Event::MarketAdded { market, base, quote } => {
                if let Some(spec) = new_market.filter(|spec| spec.base == base && spec.quote == quote) {
                    self.add_market(market, spec.clone());
                }
            }
            Event::OrderAccepted { order, account, market, side, price, qty, client_order_id, .. } => {
                // Market orders never rest; a limit order rests unless trades or a
                // cancel that follow say otherwise.
                if let Some(price) = price {
                    let view = OrderView { id: order, account, market, side, price, remaining: qty, client_order_id };
                    self.orders.insert(order, view);
                }
            }
            Event::Trade {
                market,
                market_seq,
                price,
                qty,
                taker_side,
                maker_order,
                taker_order,
                maker_remaining,
                taker_remaining,
                ..
            } => {
                for (order, remaining) in [(maker_order, maker_remaining), (taker_order, taker_remaining)] {
                    if remaining.is_zero() {
                        self.orders.remove(&order);
                    } else if let Some(view) = self.orders.get_mut(&order) {
                        view.remaining = remaining;
                    }
                }
                if let Some(view) = self.markets.get_mut(market.get() as usize) {
                    if view.trades.len() == RECENT_TRADES {
                        view.trades.pop_front();
                    }
                    view.trades.push_back(TradeView { market_seq, price, qty, taker_side, timestamp });
                    view.market_seq = view.market_seq.max(market_seq);
                }
            }
            Event::OrderCancelled { order, .. } => {
                self.orders.remove(&order);
            }
            Event::OrderAmended { order, price, qty, .. } => {
                if let Some(view) = self.orders.get_mut(&order) {
                    view.price = price;
                    view.remaining = qty;
                }
            }
            Event::BookChanged { market, market_seq, side, price, total, orders } => {
                if let Some(view) = self.markets.get_mut(market.get() as usize) {
                    let levels = match side {
                        Side::Buy => &mut view.bids,
                        Side::Sell => &mut view.asks,
                    };
                    if total.is_zero() {
                        levels.remove(&price);
                    } else {
                        levels.insert(price, (total, orders));
                    }
                    view.market_seq = view.market_seq.max(market_seq);
                }
            }
            Event::Deposited { .. }
            | Event::Withdrawn { .. }
            | Event::Transferred { .. }
            | Event::Authorized { .. }
            | Event::Captured { .. }
            | Event::Voided { .. }
            | Event::AuthorizationExpired { .. }
            | Event::SplitPaid { .. }
            | Event::Refunded { .. }
            | Event::Rejected { .. }
            | Event::Replayed { .. } => {}
        }
    }

    fn with_account(&mut self, account: AccountId, change: impl FnOnce(&mut AccountView)) {
        if let Some(view) = self.accounts.get_mut(account.get() as usize) {
            change(view);
        }
    }
}
