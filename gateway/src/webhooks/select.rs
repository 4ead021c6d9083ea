//! Which engine events become notifications, for whom, and what a notification's
//! body says.
//!
//! Adding a notification type is one arm in [`notifications`] and its name in
//! [`EVENT_TYPES`]; the body's `data` is the event as `render::Formatter::event`
//! shows it to an operator, so a new event rendered there needs nothing more here.

use bourse_core::Engine;
use bourse_core::book::MarketId;
use bourse_core::config::Config as EngineConfig;
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, Seq, Timestamp};
use bourse_core::market::MarketSpec;
use serde::Serialize;
use smallvec::SmallVec;

use crate::api::render::{EventOut, Formatter, Time};
use crate::principal::Principal;
use crate::view::ReadModel;

/// A payment reached the account (the payee of a transfer or of a split-payment leg).
pub const PAYMENT_RECEIVED: &str = "payment.received";
/// An authorization was captured, in part or in full (payer and payee).
pub const AUTHORIZATION_CAPTURED: &str = "authorization.captured";
/// An authorization was voided (payer and payee).
pub const AUTHORIZATION_VOIDED: &str = "authorization.voided";
/// An authorization expired and its hold was released (payer and payee).
pub const AUTHORIZATION_EXPIRED: &str = "authorization.expired";
/// A payment was refunded, in part or in full (payer and payee).
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
/// An operator decided a payment held for review (approved or rejected); to the payer.
pub const REVIEW_DECIDED: &str = "review.decided";
/// A cross-border payment reached the account, converted (the payee; like a transfer,
/// the payer who sent it is not told).
pub const CROSSBORDER_COMPLETED: &str = "crossborder.completed";

/// Every notification type, as `events` filters and payloads name them.
pub const EVENT_TYPES: &[&str] = &[
    PAYMENT_RECEIVED,
    AUTHORIZATION_CAPTURED,
    AUTHORIZATION_VOIDED,
    AUTHORIZATION_EXPIRED,
    PAYMENT_REFUNDED,
    REVIEW_DECIDED,
    CROSSBORDER_COMPLETED,
];

/// The notifications `event` gives: (the account told, the type), in that order.
pub fn notifications(event: &Event) -> SmallVec<[(AccountId, &'static str); 2]> {
    let mut out = SmallVec::new();
    match *event {
        Event::Transferred { to, .. } => out.push((to, PAYMENT_RECEIVED)),
        Event::Captured { payer, payee, .. } => out.extend(parties(payer, payee, AUTHORIZATION_CAPTURED)),
        Event::Voided { payer, payee, .. } => out.extend(parties(payer, payee, AUTHORIZATION_VOIDED)),
        Event::AuthorizationExpired { payer, payee, .. } => out.extend(parties(payer, payee, AUTHORIZATION_EXPIRED)),
        Event::Refunded { payer, payee, .. } => out.extend(parties(payer, payee, PAYMENT_REFUNDED)),
        Event::ReviewApproved { payer, .. } | Event::ReviewRejected { payer, .. } => out.push((payer, REVIEW_DECIDED)),
        Event::CrossBorderPaid { payee, .. } => out.push((payee, CROSSBORDER_COMPLETED)),
        _ => {}
    }
    out
}

/// Both parties of a payment are told: the payee first, then the payer.
fn parties(payer: AccountId, payee: AccountId, kind: &'static str) -> [(AccountId, &'static str); 2] {
    [(payee, kind), (payer, kind)]
}

/// A notification's id: unique, and the same every time the same command's events are
/// derived (live, or again from the journal after a crash): the command's sequence
/// number, the event's index among the command's events, and the account told.
pub fn event_id(seq: Seq, index: usize, account: AccountId) -> String {
    format!("evt_{}_{index}_{}", seq.get(), account.get())
}

/// The JSON a receiver gets.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    /// The command time of the command that caused it.
    created: Time,
    account: u32,
    /// The command's journal sequence number.
    seq: u64,
    data: EventOut<'a>,
}

/// Renders notification bodies with the configuration's assets and the markets (the
/// same decimal formatting and market symbols as replies and pushes). It holds an
/// empty read model of the configuration (assets never change at run time), told of
/// each market added at run time (`learn_market`), which a cross-border payment's
/// route may name.
#[derive(Debug)]
pub struct Renderer {
    view: ReadModel,
}

impl Renderer {
    pub fn new(config: &EngineConfig) -> Self {
        Self { view: ReadModel::from_engine(&Engine::new(config)) }
    }

    /// Knows market `id` from now on (one it knows already changes nothing; ids come
    /// in order).
    pub fn learn_market(&mut self, id: MarketId, spec: &MarketSpec) {
        self.view.learn_market(id, spec);
    }

    /// The body of notification `id` of `kind` for `account`; `None` when the event
    /// has no rendering.
    pub fn body(
        &self,
        id: &str,
        kind: &str,
        account: AccountId,
        seq: Seq,
        timestamp: Timestamp,
        event: &Event,
    ) -> Option<String> {
        let data = Formatter::new(&self.view).event(event, &Principal::Admin)?;
        let payload = Payload { id, kind, created: Time(timestamp), account: account.get(), seq: seq.get(), data };
        serde_json::to_string(&payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use bourse_core::ids::{AssetId, PaymentId};
    use bourse_core::money::Amount;

    use super::*;

    fn amount(units: u64) -> Amount {
        Amount::new(units).unwrap()
    }

    #[test]
    fn payment_events_notify_the_payee_and_where_relevant_the_payer() {
        let (payer, payee, asset, payment) = (AccountId::new(1), AccountId::new(2), AssetId::new(0), PaymentId::new(9));
        let transferred = Event::Transferred { payment, from: payer, to: payee, asset, amount: amount(5) };
        assert_eq!(notifications(&transferred).as_slice(), &[(payee, PAYMENT_RECEIVED)]);
        let refunded = Event::Refunded { payment, payer, payee, asset, amount: amount(1), refunded_total: amount(1) };
        assert_eq!(notifications(&refunded).as_slice(), &[(payee, PAYMENT_REFUNDED), (payer, PAYMENT_REFUNDED)]);
        let voided = Event::Voided { payment, payer, payee, asset, released: amount(3) };
        assert_eq!(notifications(&voided).as_slice(), &[(payee, AUTHORIZATION_VOIDED), (payer, AUTHORIZATION_VOIDED)]);
        let balance = Event::BalanceChanged { account: payee, asset, available: amount(1), held: amount(0) };
        assert!(notifications(&balance).is_empty());
        for event in [transferred, refunded, voided] {
            for (_, kind) in notifications(&event) {
                assert!(EVENT_TYPES.contains(&kind), "{kind} is not listed in EVENT_TYPES");
            }
        }
    }

    #[test]
    fn a_cross_border_payment_notifies_its_payee_and_nothing_else_of_it_does() {
        use bourse_core::book::{MarketId, OrderId, Qty, Side};
        use bourse_core::ids::QuoteId;
        use bourse_core::route::Route;

        let config = crate::config::ServerConfig::embedded().unwrap().engine;
        let (eur, jpy) = (config.assets().find("EUR").unwrap().0, config.assets().find("JPY").unwrap().0);
        let market = |base: &str, quote: &str| {
            let symbol = |asset: &str| config.assets().find(asset).unwrap().0;
            let index = config
                .markets()
                .iter()
                .position(|spec| spec.base == symbol(base) && spec.quote == symbol(quote))
                .unwrap();
            MarketId::new(index as u32)
        };
        let (eur_usd, usd_jpy) = (market("EUR", "USD"), market("USD", "JPY"));
        let (payer, payee, payment) = (AccountId::new(3), AccountId::new(4), PaymentId::new(11));
        let route = Route::new(&[eur_usd, usd_jpy]).unwrap();
        let paid = Event::CrossBorderPaid {
            payment,
            payer,
            payee,
            from: eur,
            to: jpy,
            send: amount(100_000),
            receive: amount(179_964),
            route,
            surplus: Amount::ZERO,
            quote: Some(QuoteId::new(2)),
        };
        assert_eq!(notifications(&paid).as_slice(), &[(payee, CROSSBORDER_COMPLETED)]);
        assert!(EVENT_TYPES.contains(&CROSSBORDER_COMPLETED));
        let leg = Event::CrossBorderLeg {
            payment,
            payer,
            payee,
            leg: 0,
            market: eur_usd,
            side: Side::Sell,
            order: OrderId::new(9),
            qty: Qty::new(10).unwrap(),
            input: amount(100_000),
            output: amount(120_006),
            taker_fee: amount(24),
            remainder: amount(6),
        };
        assert!(notifications(&leg).is_empty(), "the legs are the payer's business");
        let moved = Event::RateMoved { payer, asset: eur, limit: amount(1), achievable: amount(2), moved_ppm: 1 };
        assert!(notifications(&moved).is_empty());

        // The body is the event as an operator sees it: amounts at each asset's scale,
        // the route by symbol, the all-in rate.
        let renderer = Renderer::new(&config);
        let id = event_id(Seq::new(42), 5, payee);
        let body = renderer
            .body(&id, CROSSBORDER_COMPLETED, payee, Seq::new(42), Timestamp::from_nanos(1_500_000_000), &paid)
            .unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt_42_5_4","type":"crossborder.completed","created":"1970-01-01T00:00:01.500000000Z","account":4,"seq":42,"data":{"type":"cross_border_paid","payment":11,"payer":3,"payee":4,"from":"EUR","to":"JPY","send":"1000.00","receive":"179964","rate":"179.964","route":["EUR-USD","USD-JPY"],"surplus":"0.00","quote":2}}"#
        );
    }

    #[test]
    fn a_route_names_the_markets_the_renderer_was_told_of() {
        use bourse_core::book::Qty;
        use bourse_core::market::FeeSchedule;
        use bourse_core::route::Route;

        let config = crate::config::ServerConfig::embedded().unwrap().engine;
        let (gbp, jpy) = (config.assets().find("GBP").unwrap().0, config.assets().find("JPY").unwrap().0);
        let added = MarketId::new(config.markets().len() as u32);
        let spec = MarketSpec {
            base: gbp,
            quote: jpy,
            lot: 10_000,
            tick: 1,
            qty_min: Qty::new(1).unwrap(),
            qty_max: Qty::new(1_000).unwrap(),
            fees: FeeSchedule::free(),
        };
        let paid = |market: MarketId| Event::CrossBorderPaid {
            payment: PaymentId::new(1),
            payer: AccountId::new(1),
            payee: AccountId::new(2),
            from: gbp,
            to: jpy,
            send: amount(10_000),
            receive: amount(19_000),
            route: Route::new(&[market]).unwrap(),
            surplus: Amount::ZERO,
            quote: None,
        };
        let route = |renderer: &Renderer, market: MarketId| {
            let (seq, at) = (Seq::new(9), Timestamp::from_nanos(1));
            let body = renderer.body("evt_9_0_2", CROSSBORDER_COMPLETED, AccountId::new(2), seq, at, &paid(market));
            let body: serde_json::Value = serde_json::from_str(&body.unwrap()).unwrap();
            body["data"]["route"].clone()
        };
        let mut renderer = Renderer::new(&config);
        assert_eq!(route(&renderer, added), serde_json::json!(["?"]), "the configuration's markets only");
        renderer.learn_market(MarketId::new(added.get() + 1), &spec);
        assert_eq!(route(&renderer, added), serde_json::json!(["?"]), "ids come in order: a gap is not learnt");
        renderer.learn_market(added, &spec);
        assert_eq!(route(&renderer, added), serde_json::json!(["GBP-JPY"]));
        renderer.learn_market(MarketId::new(0), &spec);
        assert_eq!(route(&renderer, MarketId::new(0)), serde_json::json!(["BTC-USD"]), "a known market stays");
    }

    #[test]
    fn bodies_carry_the_id_type_time_account_and_the_event_in_decimals() {
        let config = crate::config::ServerConfig::embedded().unwrap().engine;
        let renderer = Renderer::new(&config);
        let usd = config.assets().find("USD").unwrap().0;
        let event = Event::Transferred {
            payment: PaymentId::new(7),
            from: AccountId::new(0),
            to: AccountId::new(1),
            asset: usd,
            amount: amount(2_500),
        };
        let id = event_id(Seq::new(42), 0, AccountId::new(1));
        assert_eq!(id, "evt_42_0_1");
        let body = renderer
            .body(&id, PAYMENT_RECEIVED, AccountId::new(1), Seq::new(42), Timestamp::from_nanos(1_500_000_000), &event)
            .unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt_42_0_1","type":"payment.received","created":"1970-01-01T00:00:01.500000000Z","account":1,"seq":42,"data":{"type":"transferred","payment":7,"from":0,"to":1,"asset":"USD","amount":"25.00"}}"#
        );
    }
}
