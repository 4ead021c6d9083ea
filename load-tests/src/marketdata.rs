//! Market-data subscribers: public WebSocket sessions subscribed to `book`, `bbo` and
//! `trades` of some markets. Each keeps the L2 book from the snapshot and the updates
//! and checks that `market_seq` only grows on every channel; at the end its book must
//! equal `depth` at the same `market_seq`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;
use serde_json::Value;

use crate::model::Failures;
use crate::wire::MarketData;

/// One side of a book: price → (quantity, orders), as the server writes them.
type Levels = HashMap<String, (String, u64)>;

#[derive(Debug, Default)]
struct Book {
    bids: Levels,
    asks: Levels,
    book_seq: u64,
    bbo_seq: u64,
    trade_seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SubscriberState {
    books: BTreeMap<String, Book>,
    pub(crate) failures: Failures,
    pub(crate) messages: u64,
    pub(crate) book_updates: u64,
    pub(crate) trades: u64,
    pub(crate) snapshots: u64,
}

#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) markets: Vec<String>,
    state: Mutex<SubscriberState>,
}

impl Subscriber {
    pub(crate) fn new(markets: Vec<String>) -> Subscriber {
        Subscriber { markets, state: Mutex::new(SubscriberState::default()) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SubscriberState> {
        self.state.lock().expect("a subscriber's state lock")
    }
}

/// The outcome of comparing a subscriber's book with `depth`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct BookCheck {
    pub(crate) market: String,
    pub(crate) market_seq: u64,
    /// The subscriber had seen the updates up to `market_seq`.
    pub(crate) in_sync: bool,
    pub(crate) levels: usize,
    /// Levels that differ (price present on one side only, or another qty or count).
    pub(crate) differences: usize,
}

impl SubscriberState {
    pub(crate) fn on_message(&mut self, text: &[u8]) {
        self.messages += 1;
        let message: MarketData<'_> = match serde_json::from_slice(text) {
            Ok(message) => message,
            Err(error) => {
                let sample = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
                self.failures.record("md_malformed", || format!("{error}: {sample}"));
                return;
            }
        };
        if message.id.is_some() {
            if message.ok != Some(true) {
                self.failures.record("md_subscribe", || String::from_utf8_lossy(text).into_owned());
            }
            return;
        }
        let market = message.market.as_deref().unwrap_or_default().to_owned();
        let book = self.books.entry(market.clone()).or_default();
        let seq = message.market_seq.unwrap_or_default();
        match (message.channel.as_deref(), message.kind.as_deref()) {
            (Some("book"), Some("snapshot")) => {
                book.bids = message.bids.iter().map(|(p, q, n)| (p.to_string(), (q.to_string(), *n))).collect();
                book.asks = message.asks.iter().map(|(p, q, n)| (p.to_string(), (q.to_string(), *n))).collect();
                book.book_seq = seq;
                self.snapshots += 1;
            }
            (Some("book"), _) => {
                if seq <= book.book_seq {
                    let last = book.book_seq;
                    self.failures.record("md_out_of_order", || format!("{market} book update {seq} after {last}"));
                }
                for change in &message.changes {
                    let side = if change.side == "buy" { &mut book.bids } else { &mut book.asks };
                    if change.qty == "0" {
                        side.remove(change.price.as_ref());
                    } else {
                        side.insert(change.price.to_string(), (change.qty.to_string(), change.orders));
                    }
                    let _ = change.market_seq;
                }
                book.book_seq = book.book_seq.max(seq);
                self.book_updates += 1;
            }
            (Some("bbo"), _) => {
                if seq < book.bbo_seq {
                    let last = book.bbo_seq;
                    self.failures.record("md_out_of_order", || format!("{market} bbo {seq} after {last}"));
                }
                book.bbo_seq = book.bbo_seq.max(seq);
            }
            (Some("trades"), kind) => {
                for trade in &message.trades {
                    if kind == Some("update") && trade.market_seq <= book.trade_seq {
                        let last = book.trade_seq;
                        let this = trade.market_seq;
                        self.failures.record("md_out_of_order", || format!("{market} trade {this} after {last}"));
                    }
                    book.trade_seq = book.trade_seq.max(trade.market_seq);
                    if kind == Some("update") {
                        self.trades += 1;
                    }
                    let _ = &trade.qty;
                }
            }
            _ => self.failures.record("md_unexpected", || String::from_utf8_lossy(text).into_owned()),
        }
    }

    /// The last `market_seq` its book of `market` reflects.
    pub(crate) fn book_seq(&self, market: &str) -> u64 {
        self.books.get(market).map_or(0, |book| book.book_seq)
    }

    /// Compares its book of `market` with a `depth` result.
    pub(crate) fn compare(&mut self, market: &str, depth: &Value) -> BookCheck {
        let market_seq = depth["market_seq"].as_u64().unwrap_or_default();
        let book = self.books.entry(market.to_owned()).or_default();
        let mut differences = 0;
        let mut levels = 0;
        for (name, mine) in [("bids", &book.bids), ("asks", &book.asks)] {
            let theirs: Levels = depth[name]
                .as_array()
                .map(|levels| {
                    levels
                        .iter()
                        .map(|level| {
                            let text = |index: usize| level[index].as_str().unwrap_or_default().to_owned();
                            (text(0), (text(1), level[2].as_u64().unwrap_or_default()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            levels += theirs.len();
            differences += theirs.iter().filter(|(price, level)| mine.get(*price) != Some(level)).count();
            differences += mine.keys().filter(|price| !theirs.contains_key(*price)).count();
        }
        let check = BookCheck {
            market: market.to_owned(),
            market_seq,
            in_sync: book.book_seq == market_seq,
            levels,
            differences,
        };
        if check.differences > 0 || !check.in_sync {
            let detail = format!("{check:?} (subscriber at {})", book.book_seq);
            self.failures.record("md_book", || detail);
        }
        check
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_book_kept_from_updates_equals_the_depth_and_regressions_are_caught() {
        let mut state = SubscriberState::default();
        state.on_message(br#"{"channel":"book","type":"snapshot","market":"BTC-USD","market_seq":3,"bids":[["49000","0.05",1]],"asks":[]}"#);
        state.on_message(br#"{"channel":"book","type":"update","market":"BTC-USD","market_seq":5,"changes":[{"market_seq":4,"side":"sell","price":"50500","qty":"0.03","orders":1},{"market_seq":5,"side":"buy","price":"49000","qty":"0","orders":0}]}"#);
        let depth = json!({"market_seq": 5, "bids": [], "asks": [["50500", "0.03", 1]]});
        let check = state.compare("BTC-USD", &depth);
        assert!(check.in_sync && check.differences == 0, "{check:?}");
        state.on_message(br#"{"channel":"book","type":"update","market":"BTC-USD","market_seq":4,"changes":[]}"#);
        state.on_message(br#"{"channel":"trades","type":"update","market":"BTC-USD","trades":[{"market_seq":9,"qty":"0.01"},{"market_seq":8,"qty":"0.01"}]}"#);
        assert_eq!(state.failures.counts.get("md_out_of_order"), Some(&2));
        let stale = json!({"market_seq": 7, "bids": [["1", "1", 1]], "asks": [["50500", "0.03", 1]]});
        assert_eq!(state.compare("BTC-USD", &stale).differences, 1);
    }
}
