//! The liquidity ladder for cross-border payments.
//!
//! When the mix pays cross-border, a liquidity account rests a ladder of orders on
//! the markets the payments route through, `PASSIVE_TICKS + 1` ticks from the mid and
//! beyond on both sides: out of reach of the load's own orders (immediate ones reach
//! `PASSIVE_TICKS`), so only the payments' legs take it, after the load's own orders
//! (which are better priced). It keeps cross-border payments routable in a mix without
//! orders (`payments`).
//!
//! The payments eat it, so while the load runs a [`Refiller`] on its own admin session
//! looks at the account's resting orders every [`REFILL_EVERY`] and tops up every level
//! that has less than half its size left, depositing more when the account runs short
//! of what a top-up needs. The account has no trading session and nobody models its
//! balances: the payers' taker fills and fees are what the load reconciles, and the
//! server's own conservation check covers the whole ledger.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_gateway::auth::Credentials;
use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::{Catalog, PASSIVE_TICKS};
use crate::setup::{self, Endpoints};
use crate::ws::BlockingWs;

/// Price levels of the ladder on each side of each routed market…
const LEVELS: i64 = 10;
/// …each this many times the market's minimum quantity…
const LOTS_PER_LEVEL: i64 = 10_000;
/// …paid for by this many times [`FUNDING`](crate::catalog::FUNDING), and topped up by as much again when a
/// refill runs short.
const FUNDING_TIMES: u128 = 10;
/// How often the refiller looks at the ladder.
pub(crate) const REFILL_EVERY: Duration = Duration::from_millis(250);
/// The owner id of the liquidity account.
const OWNER: u64 = 9_300_000;

/// One price level of the ladder and the size it is kept at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Level {
    market: usize,
    buy: bool,
    ticks: i64,
    lots: i64,
}

/// The liquidity account and the levels it keeps.
#[derive(Clone, Debug)]
pub(crate) struct Ladder {
    account: u64,
    seed: u64,
    levels: Vec<Level>,
}

/// What the refiller did, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct LadderReport {
    pub(crate) account: u64,
    pub(crate) levels: usize,
    /// Passes over the ladder (one `orders` call each).
    pub(crate) passes: u64,
    /// Top-up orders placed, and their lots.
    pub(crate) orders_placed: u64,
    pub(crate) lots_placed: u64,
    /// Extra deposits made because a top-up lacked funds.
    pub(crate) deposits: u64,
    /// Why the refiller stopped early, if it did: the run fails.
    pub(crate) error: Option<String>,
}

impl LadderReport {
    /// Adds what one refiller did to the report of the whole run.
    pub(crate) fn absorb(&mut self, other: LadderReport) {
        if other.levels > 0 {
            self.account = other.account;
            self.levels = other.levels;
        }
        self.passes += other.passes;
        self.orders_placed += other.orders_placed;
        self.lots_placed += other.lots_placed;
        self.deposits += other.deposits;
        if self.error.is_none() {
            self.error = other.error;
        }
    }
}

impl Ladder {
    /// Opens and funds the liquidity account and rests the ladder.
    pub(crate) fn rest(admin: &mut BlockingWs, catalog: &Catalog, seed: u64) -> anyhow::Result<Self> {
        let account = setup::open_account(admin, OWNER)?;
        setup::deposit_funding(admin, catalog, account, seed, 0, FUNDING_TIMES)?;
        let routed =
            |index: usize| catalog.pairs.iter().any(|pair| pair.path.iter().any(|(market, _)| *market == index));
        let mut levels = Vec::new();
        for (index, market) in catalog.markets.iter().enumerate().filter(|(index, _)| routed(*index)) {
            for away in PASSIVE_TICKS + 1..=PASSIVE_TICKS + LEVELS {
                for (buy, ticks) in [(true, market.mid_ticks - away), (false, market.mid_ticks + away)] {
                    levels.push(Level { market: index, buy, ticks, lots: market.qty_min_lots * LOTS_PER_LEVEL });
                }
            }
        }
        let ladder = Self { account, seed, levels };
        for level in &ladder.levels {
            ladder.place(admin, catalog, level, level.lots)?;
        }
        Ok(ladder)
    }

    fn place(&self, admin: &mut BlockingWs, catalog: &Catalog, level: &Level, lots: i64) -> anyhow::Result<Value> {
        let market = &catalog.markets[level.market];
        admin.call(json!({"op": "place_order", "by": self.account, "market": market.symbol,
            "side": if level.buy { "buy" } else { "sell" },
            "price": market.price_text(level.ticks), "qty": market.qty_text(lots)}))
    }

    /// Lots resting per level, from the account's open orders.
    fn resting(&self, admin: &mut BlockingWs, catalog: &Catalog) -> anyhow::Result<HashMap<Level, i64>> {
        let reply = admin.call_ok(json!({"op": "orders", "account": self.account}))?;
        let mut resting = HashMap::new();
        for order in reply["result"]["orders"].as_array().context("orders: no list")? {
            let symbol = order["market"].as_str().unwrap_or_default();
            let market = catalog.market(symbol).with_context(|| format!("an order on an unknown market: {order}"))?;
            let spec = &catalog.markets[market];
            let ticks = order["price"].as_str().and_then(|price| spec.ticks(price));
            let lots = order["remaining"].as_str().and_then(|qty| spec.lots(qty));
            let (Some(ticks), Some(lots)) = (ticks, lots) else {
                anyhow::bail!("an order of the liquidity account that does not parse: {order}");
            };
            let key = Level { market, buy: order["side"] == "buy", ticks, lots: 0 };
            *resting.entry(key).or_default() += lots;
        }
        Ok(resting)
    }

    /// One pass: tops up every level with less than half its size resting.
    fn refill(&self, admin: &mut BlockingWs, catalog: &Catalog, report: &mut LadderReport) -> anyhow::Result<()> {
        let resting = self.resting(admin, catalog)?;
        report.passes += 1;
        for level in &self.levels {
            let have = resting.get(&Level { lots: 0, ..*level }).copied().unwrap_or(0);
            if have * 2 >= level.lots {
                continue;
            }
            let missing = level.lots - have;
            let mut reply = self.place(admin, catalog, level, missing)?;
            if reply["error"]["code"] == "insufficient_funds" {
                report.deposits += 1;
                setup::deposit_funding(admin, catalog, self.account, self.seed, report.deposits, FUNDING_TIMES)?;
                reply = self.place(admin, catalog, level, missing)?;
            }
            if reply["ok"] != true {
                let market = &catalog.markets[level.market].symbol;
                anyhow::bail!("topping up the ladder on {market}: {reply}");
            }
            report.orders_placed += 1;
            report.lots_placed += missing as u64;
        }
        Ok(())
    }
}

/// A thread that keeps the ladder topped up until stopped.
#[derive(Debug)]
pub(crate) struct Refiller {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<LadderReport>,
}

impl Refiller {
    /// Starts refilling `ladder` through a fresh admin session to `endpoints`.
    pub(crate) fn start(endpoints: Endpoints, credentials: Credentials, catalog: Catalog, ladder: Ladder) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("ladder".to_owned())
            .spawn(move || {
                let mut report =
                    LadderReport { account: ladder.account, levels: ladder.levels.len(), ..LadderReport::default() };
                let result = (|| -> anyhow::Result<()> {
                    let mut admin = setup::admin_session(&endpoints, &credentials)?;
                    let mut next = Instant::now() + REFILL_EVERY;
                    while !stopping.load(Ordering::Acquire) {
                        if Instant::now() < next {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        ladder.refill(&mut admin, &catalog, &mut report)?;
                        next = Instant::now() + REFILL_EVERY;
                    }
                    Ok(())
                })();
                report.error = result.err().map(|error| format!("{error:#}"));
                report
            })
            .expect("spawning the ladder thread");
        Self { stop, handle }
    }

    /// Stops the thread and says what it did.
    pub(crate) fn stop(self) -> LadderReport {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_else(|_| LadderReport {
            error: Some("the ladder thread panicked".to_owned()),
            ..LadderReport::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_up_and_keep_the_first_error() {
        let mut total = LadderReport::default();
        total.absorb(LadderReport {
            account: 7,
            levels: 40,
            passes: 3,
            orders_placed: 2,
            lots_placed: 50,
            ..Default::default()
        });
        total.absorb(LadderReport {
            account: 7,
            levels: 40,
            passes: 1,
            deposits: 1,
            error: Some("first".to_owned()),
            ..Default::default()
        });
        total.absorb(LadderReport { error: Some("second".to_owned()), ..Default::default() });
        assert_eq!((total.passes, total.orders_placed, total.lots_placed, total.deposits), (4, 2, 50, 1));
        assert_eq!(total.error.as_deref(), Some("first"));
        assert_eq!((total.account, total.levels), (7, 40), "a report of nothing keeps what is known");
    }
}
