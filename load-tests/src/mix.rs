//! The operation mix, as a table: each kind of operation, the transports that can
//! send it, and its weight in the default (`realistic`) mix and the presets. Adding an
//! operation is one row here plus its request and reply in `client`.

use std::fmt;

use anyhow::{Context, bail};

/// Every kind of request the load sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum OpKind {
    /// A limit order that rests (GTC, priced on its own side of the mid).
    PlaceOrder,
    /// An immediate-or-cancel order priced through the mid: it takes resting orders.
    PlaceIoc,
    CancelOrder,
    /// A new price one tick away, or one lot less.
    AmendOrder,
    Transfer,
    Authorize,
    Capture,
    Void,
    /// A cross-border payment routed and paid in one command (`send` under a
    /// `min_receive`): real taker trades of the payer against the books.
    PayCrossBorder,
    /// A quote for a cross-border payment (`receive` exactly), kept to execute later.
    QuotePayment,
    /// The execution of one of the session's quotes.
    ExecuteQuote,
    /// The end-of-run command every session sends once, that the engine rejects: its
    /// reply proves every earlier push has been delivered to the session.
    Barrier,
}

/// Operation kinds in stats order.
pub(crate) const OP_KINDS: [OpKind; 12] = [
    OpKind::PlaceOrder,
    OpKind::PlaceIoc,
    OpKind::CancelOrder,
    OpKind::AmendOrder,
    OpKind::Transfer,
    OpKind::Authorize,
    OpKind::Capture,
    OpKind::Void,
    OpKind::PayCrossBorder,
    OpKind::QuotePayment,
    OpKind::ExecuteQuote,
    OpKind::Barrier,
];

impl OpKind {
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            OpKind::PlaceOrder => "place_order",
            OpKind::PlaceIoc => "place_order_ioc",
            OpKind::CancelOrder => "cancel_order",
            OpKind::AmendOrder => "amend_order",
            OpKind::Transfer => "transfer",
            OpKind::Authorize => "authorize",
            OpKind::Capture => "capture",
            OpKind::Void => "void",
            OpKind::PayCrossBorder => "pay_cross_border",
            OpKind::QuotePayment => "quote_payment",
            OpKind::ExecuteQuote => "execute_quote",
            OpKind::Barrier => "barrier",
        }
    }

    /// Whether it is an order operation (counted in "orders/s" and the order acknowledgement figures).
    pub(crate) fn is_order(self) -> bool {
        matches!(self, OpKind::PlaceOrder | OpKind::PlaceIoc | OpKind::CancelOrder | OpKind::AmendOrder)
    }

    /// Whether it is a cross-border payment or quote.
    pub(crate) fn is_cross_border(self) -> bool {
        matches!(self, OpKind::PayCrossBorder | OpKind::QuotePayment | OpKind::ExecuteQuote)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Transport {
    Ws,
    Fix,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Fix => "fix",
        }
    }
}

/// One row of the mix table.
struct Row {
    op: OpKind,
    /// Sent by FIX sessions too (FIX carries orders only: D, F, G).
    fix: bool,
    /// Weights in the `realistic`, `orders` and `payments` presets.
    realistic: u32,
    orders: u32,
    payments: u32,
}

/// The mix table.
const ROWS: &[Row] = &[
    Row { op: OpKind::PlaceOrder, fix: true, realistic: 28, orders: 40, payments: 0 },
    Row { op: OpKind::PlaceIoc, fix: true, realistic: 8, orders: 10, payments: 0 },
    Row { op: OpKind::CancelOrder, fix: true, realistic: 21, orders: 30, payments: 0 },
    Row { op: OpKind::AmendOrder, fix: true, realistic: 14, orders: 20, payments: 0 },
    Row { op: OpKind::Transfer, fix: false, realistic: 10, orders: 0, payments: 40 },
    Row { op: OpKind::Authorize, fix: false, realistic: 6, orders: 0, payments: 20 },
    Row { op: OpKind::Capture, fix: false, realistic: 5, orders: 0, payments: 16 },
    Row { op: OpKind::Void, fix: false, realistic: 2, orders: 0, payments: 4 },
    Row { op: OpKind::PayCrossBorder, fix: false, realistic: 4, orders: 0, payments: 14 },
    Row { op: OpKind::QuotePayment, fix: false, realistic: 1, orders: 0, payments: 3 },
    Row { op: OpKind::ExecuteQuote, fix: false, realistic: 1, orders: 0, payments: 3 },
];

/// A mix: weights per operation, drawn per transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mix {
    weights: Vec<(OpKind, u32, bool)>,
}

impl Mix {
    /// `realistic`, `orders`, `payments`, or `name=weight,…` over the operations above
    /// (those not named weigh 0).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Mix> {
        let preset =
            |pick: fn(&Row) -> u32| Mix { weights: ROWS.iter().map(|row| (row.op, pick(row), row.fix)).collect() };
        let mix = match text {
            "realistic" => preset(|row| row.realistic),
            "orders" => preset(|row| row.orders),
            "payments" => preset(|row| row.payments),
            custom => {
                let mut mix = preset(|_| 0);
                for part in custom.split(',') {
                    let (name, weight) =
                        part.split_once('=').with_context(|| format!("--mix: {part:?} is not name=weight"))?;
                    let weight: u32 = weight.trim().parse().with_context(|| format!("--mix: weight of {name}"))?;
                    let Some(entry) = mix.weights.iter_mut().find(|(op, _, _)| op.name() == name.trim()) else {
                        let names: Vec<&str> = ROWS.iter().map(|row| row.op.name()).collect();
                        bail!("--mix: unknown operation {name:?}; the operations are {}", names.join(", "));
                    };
                    entry.1 = weight;
                }
                mix
            }
        };
        if mix.total(Transport::Ws) == 0 {
            bail!("--mix {text}: every weight is zero");
        }
        Ok(mix)
    }

    fn total(&self, transport: Transport) -> u32 {
        self.weights.iter().filter(|(_, _, fix)| transport == Transport::Ws || *fix).map(|(_, weight, _)| weight).sum()
    }

    /// Whether the mix sends cross-border payments (the setup then rests a ladder of
    /// liquidity for them, see `setup`).
    pub(crate) fn has_cross_border(&self) -> bool {
        self.weights.iter().any(|(op, weight, _)| op.is_cross_border() && *weight > 0)
    }

    /// Whether FIX sessions have anything to send in this mix.
    pub(crate) fn has_fix_ops(&self) -> bool {
        self.total(Transport::Fix) > 0
    }

    /// Draws the next operation for a session of `transport`.
    pub(crate) fn draw(&self, transport: Transport, rng: &mut impl rand::Rng) -> OpKind {
        let total = self.total(transport);
        let mut pick = rng.random_range(0..total.max(1));
        for (op, weight, fix) in &self.weights {
            if transport == Transport::Fix && !fix {
                continue;
            }
            if pick < *weight {
                return *op;
            }
            pick -= weight;
        }
        OpKind::PlaceOrder
    }

    /// `name=weight` pairs, for the report.
    pub(crate) fn describe(&self) -> String {
        let parts: Vec<String> = self
            .weights
            .iter()
            .filter(|(_, weight, _)| *weight > 0)
            .map(|(op, weight, _)| format!("{op}={weight}"))
            .collect();
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn presets_and_custom_mixes_draw_by_weight_and_fix_sends_orders_only() {
        let mix = Mix::parse("realistic").unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0_u32; OP_KINDS.len()];
        for _ in 0..100_000 {
            counts[mix.draw(Transport::Ws, &mut rng).index()] += 1;
        }
        assert!((27_000..29_000).contains(&counts[OpKind::PlaceOrder.index()]), "{counts:?}");
        assert!((9_000..11_000).contains(&counts[OpKind::Transfer.index()]), "{counts:?}");
        assert!((3_500..4_500).contains(&counts[OpKind::PayCrossBorder.index()]), "{counts:?}");
        for preset in ["realistic", "orders", "payments"] {
            let total: u32 = Mix::parse(preset).unwrap().weights.iter().map(|(_, weight, _)| weight).sum();
            assert_eq!(total, 100, "{preset} weighs 100 in all");
        }
        assert!(mix.has_cross_border() && !Mix::parse("orders").unwrap().has_cross_border());
        for _ in 0..10_000 {
            assert!(mix.draw(Transport::Fix, &mut rng).is_order());
        }
        let custom = Mix::parse("transfer=1").unwrap();
        assert_eq!(custom.draw(Transport::Ws, &mut rng), OpKind::Transfer);
        assert!(!custom.has_fix_ops());
        assert!(Mix::parse("teleport=3").is_err());
        assert!(Mix::parse("transfer=0").is_err());
    }
}
