//! The server's JSON messages as the load reads them: replies, account pushes and
//! market data, deserialized into flat typed structs that borrow from the received
//! text (no `serde_json::Value` tree per message). Fields the load does not use are
//! skipped.

use std::borrow::Cow;

use serde::Deserialize;

/// A reply, a push (`channel: "account"`) or a market-data message.
#[derive(Debug, Deserialize)]
pub(crate) struct Incoming<'a> {
    #[serde(default)]
    pub(crate) id: Option<u64>,
    #[serde(default)]
    pub(crate) ok: Option<bool>,
    #[serde(default)]
    pub(crate) seq: Option<u64>,
    #[serde(default)]
    pub(crate) replayed: bool,
    #[serde(default, borrow)]
    pub(crate) channel: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) error: Option<ErrorBody<'a>>,
    #[serde(default, borrow)]
    pub(crate) result: Option<ResultBody<'a>>,
    #[serde(default, borrow)]
    pub(crate) events: Vec<Event<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(borrow)]
    pub(crate) code: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(crate) message: Cow<'a, str>,
}

/// A command's `result`: the order or payment it made; for cross-border payments and
/// quotes also the parties, the assets and the amounts.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResultBody<'a> {
    #[serde(default)]
    pub(crate) order_id: Option<u64>,
    #[serde(default)]
    pub(crate) payment: Option<u64>,
    #[serde(default)]
    pub(crate) quote: Option<u64>,
    #[serde(default)]
    pub(crate) payer: Option<u64>,
    #[serde(default)]
    pub(crate) payee: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) from: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) to: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) send: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) receive: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) surplus: Option<Cow<'a, str>>,
}

/// `from` and `to` of an event: accounts in `transferred`, asset codes in
/// `cross_border_paid` and `quoted`.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub(crate) enum AccountOrAsset<'a> {
    Account(u64),
    Asset(#[serde(borrow)] Cow<'a, str>),
}

/// Any event of a reply or push: one flat struct, the fields of every type optional.
#[derive(Debug, Deserialize)]
pub(crate) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(default)]
    pub(crate) order_id: Option<u64>,
    #[serde(default)]
    pub(crate) account: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) market: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) side: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) price: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) qty: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) fee: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) remaining: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) liquidity: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) client_order_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) payment: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) from: Option<AccountOrAsset<'a>>,
    #[serde(default, borrow)]
    pub(crate) to: Option<AccountOrAsset<'a>>,
    #[serde(default)]
    pub(crate) payer: Option<u64>,
    #[serde(default)]
    pub(crate) payee: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) amount: Option<Cow<'a, str>>,
    // Cross-border legs and payments.
    #[serde(default)]
    pub(crate) quote: Option<u64>,
    #[serde(default)]
    pub(crate) leg: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) input: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) input_asset: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) output: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) output_asset: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) taker_fee: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) remainder: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) send: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) receive: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) surplus: Option<Cow<'a, str>>,
}

impl Event<'_> {
    /// `from` when it is an account (`transferred`).
    pub(crate) fn account_from(&self) -> Option<u64> {
        match self.from {
            Some(AccountOrAsset::Account(account)) => Some(account),
            _ => None,
        }
    }

    /// `to` when it is an account (`transferred`).
    pub(crate) fn account_to(&self) -> Option<u64> {
        match self.to {
            Some(AccountOrAsset::Account(account)) => Some(account),
            _ => None,
        }
    }

    /// `from` when it is an asset code (`cross_border_paid`, `quoted`).
    pub(crate) fn asset_from(&self) -> Option<&str> {
        match &self.from {
            Some(AccountOrAsset::Asset(code)) => Some(code),
            _ => None,
        }
    }

    /// `to` when it is an asset code (`cross_border_paid`, `quoted`).
    pub(crate) fn asset_to(&self) -> Option<&str> {
        match &self.to {
            Some(AccountOrAsset::Asset(code)) => Some(code),
            _ => None,
        }
    }
}

/// A market-data message (`book`, `bbo`, `trades`), or the reply to a subscription.
#[derive(Debug, Deserialize)]
pub(crate) struct MarketData<'a> {
    #[serde(default)]
    pub(crate) id: Option<u64>,
    #[serde(default)]
    pub(crate) ok: Option<bool>,
    #[serde(default, borrow)]
    pub(crate) channel: Option<Cow<'a, str>>,
    #[serde(default, rename = "type", borrow)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) market: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) market_seq: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) bids: Vec<(Cow<'a, str>, Cow<'a, str>, u64)>,
    #[serde(default, borrow)]
    pub(crate) asks: Vec<(Cow<'a, str>, Cow<'a, str>, u64)>,
    #[serde(default, borrow)]
    pub(crate) changes: Vec<LevelChange<'a>>,
    #[serde(default, borrow)]
    pub(crate) trades: Vec<TradeUpdate<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LevelChange<'a> {
    pub(crate) market_seq: u64,
    #[serde(borrow)]
    pub(crate) side: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) price: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) qty: Cow<'a, str>,
    pub(crate) orders: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TradeUpdate<'a> {
    pub(crate) market_seq: u64,
    #[serde(borrow)]
    pub(crate) qty: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_pushes_and_market_data_parse_from_the_documented_shapes() {
        let reply = br#"{"id":5,"ok":true,"seq":41,"time":"2026-11-26T08:53:18.111956118Z","result":{"order_id":10},"events":[{"type":"order_accepted","order_id":10,"account":1,"market":"BTC-USD","side":"sell","price":"50500","qty":"0.03","time_in_force":"gtc","client_order_id":"ws-ask"},{"type":"balance","account":1,"asset":"BTC","available":"0.89000000","held":"0.03000000"}]}"#;
        let reply: Incoming<'_> = serde_json::from_slice(reply).unwrap();
        assert_eq!((reply.id, reply.ok, reply.seq), (Some(5), Some(true), Some(41)));
        assert_eq!(reply.result.unwrap().order_id, Some(10));
        assert_eq!(reply.events[0].client_order_id.as_deref(), Some("ws-ask"));
        let push = br#"{"channel":"account","seq":43,"time":"t","events":[{"type":"fill","liquidity":"maker","order_id":10,"account":1,"market":"BTC-USD","market_seq":19,"side":"sell","price":"50500","qty":"0.01","fee":"0.10","remaining":"0.02"}]}"#;
        let push: Incoming<'_> = serde_json::from_slice(push).unwrap();
        assert_eq!(push.channel.as_deref(), Some("account"));
        assert_eq!(push.events[0].fee.as_deref(), Some("0.10"));
        let rejected = br#"{"id":1,"ok":false,"seq":7,"time":"t","error":{"code":"insufficient_funds","message":"not enough available balance"}}"#;
        let rejected: Incoming<'_> = serde_json::from_slice(rejected).unwrap();
        assert_eq!(rejected.error.unwrap().code, "insufficient_funds");
        let market_order = br#"{"id":1,"ok":true,"seq":28,"result":{"order_id":3},"events":[{"type":"order_accepted","order_id":3,"price":null,"qty":"0.02"}]}"#;
        assert!(serde_json::from_slice::<Incoming<'_>>(market_order).unwrap().events[0].price.is_none());
        let book = br#"{"channel":"book","type":"snapshot","market":"BTC-USD","market_seq":13,"bids":[["49000","0.05",1]],"asks":[]}"#;
        let book: MarketData<'_> = serde_json::from_slice(book).unwrap();
        assert_eq!(book.bids[0].1, "0.05");
        let update = br#"{"channel":"book","type":"update","market":"BTC-USD","market_seq":20,"changes":[{"market_seq":20,"side":"sell","price":"50500","qty":"0.02","orders":1}]}"#;
        assert_eq!(serde_json::from_slice::<MarketData<'_>>(update).unwrap().changes[0].orders, 1);
    }
}
