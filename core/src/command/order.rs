//! Exchange commands: add a market; place, cancel, cancel-all and amend orders.
//! Orders are not keyed by an idempotency key: a client order id, unique among the
//! account's live orders, plays that part.

use crate::book::{ClientOrderId, MarketId, OrderId, Price, Qty, SelfTradePrevention, Side, TimeInForce};
use crate::event::RejectReason;
use crate::ids::AccountId;
use crate::market::MarketSpec;
use crate::money::Amount;
use serde::{Deserialize, Serialize};

/// Opens a new market at run time (operators).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMarket {
    pub spec: MarketSpec,
}

/// How much an order wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderSize {
    /// A number of lots.
    Qty(Qty),
    /// A market buy that spends at most this much quote, fees included
    /// ("spend 100 USD").
    QuoteBudget(Amount),
}

/// Places a limit order (`price` set) or a market order (`price` `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub by: AccountId,
    pub market: MarketId,
    pub side: Side,
    pub price: Option<Price>,
    pub size: OrderSize,
    pub time_in_force: TimeInForce,
    /// Rejected rather than allowed to take liquidity.
    pub post_only: bool,
    /// `None` for the documented default, `SelfTradePrevention::CancelTaker`.
    pub stp: Option<SelfTradePrevention>,
    pub client_order_id: Option<ClientOrderId>,
}

/// Names an order by the engine's id or by the client's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderRef {
    Id(OrderId),
    Client(ClientOrderId),
}

/// Cancels one resting order of `by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    pub by: AccountId,
    pub order: OrderRef,
}

/// Cancels every resting order of `by`, or only those in `market`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAll {
    pub by: AccountId,
    pub market: Option<MarketId>,
}

/// Changes a resting order's price and/or remaining quantity. Lowering the quantity
/// at the same price keeps the order's place in the queue; a new price or a larger
/// quantity sends it to the back (and a new price may trade at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendOrder {
    pub by: AccountId,
    pub order: OrderRef,
    pub price: Option<Price>,
    pub qty: Option<Qty>,
}

impl PlaceOrder {
    /// Checks the combination of fields, before anything is looked up.
    pub fn check(&self) -> Result<(), RejectReason> {
        let market_order = self.price.is_none();
        match self.size {
            OrderSize::Qty(qty) if qty.is_zero() => return Err(RejectReason::InvalidQuantity),
            OrderSize::QuoteBudget(budget) if budget.is_zero() => return Err(RejectReason::InvalidAmount),
            // A budget only makes sense for a market buy that may leave a remainder.
            OrderSize::QuoteBudget(_)
                if !market_order || self.side != Side::Buy || self.time_in_force != TimeInForce::Ioc =>
            {
                return Err(RejectReason::InvalidOrder);
            }
            _ => {}
        }
        if market_order && (self.time_in_force == TimeInForce::Gtc || self.post_only) {
            return Err(RejectReason::InvalidOrder);
        }
        if self.post_only && self.time_in_force != TimeInForce::Gtc {
            return Err(RejectReason::InvalidOrder);
        }
        Ok(())
    }
}

impl AmendOrder {
    pub fn check(&self) -> Result<(), RejectReason> {
        match (self.price, self.qty) {
            (None, None) => Err(RejectReason::InvalidOrder),
            (_, Some(qty)) if qty.is_zero() => Err(RejectReason::InvalidQuantity),
            _ => Ok(()),
        }
    }
}
