//! Looking at the whole state: a stable hash of it, a full reconciliation, and the
//! O(n) invariant checks that tests run after every step.

use std::collections::BTreeMap;
use std::fmt;

use xxhash_rust::xxh3::Xxh3;

use super::Engine;
use super::payments::{PaymentKind, PaymentState};
use super::settle::{hold_asset, resting_hold};
use crate::reconcile::{AssetReconciliation, ReconciliationReport};

/// A 128-bit hash of the engine's canonical state: equal states give equal hashes,
/// whatever order their maps were filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateHash(pub u128);

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Engine {
    /// Hashes everything that decides future outcomes, in a canonical order: accounts
    /// by id with balances by asset, payment records by id, idempotency entries in the
    /// order they were made (which is itself determined by the command stream).
    pub fn state_hash(&self) -> StateHash {
        let mut hasher = Xxh3::new();
        let u64s = |hasher: &mut Xxh3, values: &[u64]| {
            for value in values {
                hasher.update(&value.to_le_bytes());
            }
        };
        hasher.update(b"bourse-state-v2");
        u64s(&mut hasher, &[self.last_seq.map_or(0, |seq| seq.get() + 1), self.now.as_nanos()]);
        u64s(&mut hasher, &[self.assets.len() as u64]);
        for (_, asset) in self.assets.iter() {
            hasher.update(asset.code().as_str().as_bytes());
            u64s(&mut hasher, &[u64::from(asset.scale())]);
        }
        u64s(&mut hasher, &[self.ledger.len() as u64]);
        for account in self.ledger.accounts() {
            let flags = u64::from(account.kyc_tier().get()) | (u64::from(account.is_frozen()) << 8);
            u64s(&mut hasher, &[account.owner().get(), flags, account.balances().len() as u64]);
            for balance in account.balances() {
                let values =
                    [u64::from(balance.asset().get()), balance.available().minor_units(), balance.held().minor_units()];
                u64s(&mut hasher, &values);
            }
        }
        for totals in self.ledger.totals() {
            hasher.update(&totals.deposited().to_le_bytes());
            hasher.update(&totals.withdrawn().to_le_bytes());
            u64s(
                &mut hasher,
                &[totals.in_accounts().minor_units(), totals.fees().minor_units(), totals.remainders().minor_units()],
            );
        }
        u64s(&mut hasher, &[self.payments.first_id(), self.payments.len() as u64]);
        for (_, record) in self.payments.iter() {
            let kind = record.kind as u64;
            let state = record.state as u64;
            u64s(
                &mut hasher,
                &[
                    u64::from(record.payer.get()),
                    u64::from(record.payee.get()),
                    u64::from(record.asset.get()) | (kind << 16) | (state << 24),
                    record.amount.minor_units(),
                    record.paid.minor_units(),
                    record.refunded.minor_units(),
                    record.created_at.as_nanos(),
                    record.expires_at.as_nanos(),
                ],
            );
        }
        u64s(&mut hasher, &[self.markets.len() as u64, self.next_order_id]);
        for market in &self.markets {
            let spec = market.spec();
            let bounds = [spec.lot, spec.tick, spec.qty_min.lots(), spec.qty_max.lots()];
            u64s(&mut hasher, &[u64::from(spec.base.get()), u64::from(spec.quote.get())]);
            u64s(&mut hasher, &bounds);
            for rate in spec.fees.tiers() {
                u64s(&mut hasher, &[u64::from(rate.maker_bps) << 16 | u64::from(rate.taker_bps)]);
            }
            u64s(&mut hasher, &[market.market_seq, market.last_price.map_or(0, crate::book::Price::ticks)]);
            for side in [crate::book::Side::Buy, crate::book::Side::Sell] {
                let book_side = market.book.side(side);
                u64s(&mut hasher, &[book_side.len() as u64]);
                for level in book_side.levels() {
                    u64s(&mut hasher, &[level.price().ticks(), level.total().lots(), u64::from(level.count())]);
                    let mut cursor = Some(level.head());
                    while let Some(slot) = cursor {
                        let order = self.orders.get(slot);
                        let flags = u64::from(order.maker_bps())
                            | u64::from(order.taker_bps()) << 16
                            | (order.stp() as u64) << 32
                            | u64::from(order.post_only()) << 40;
                        let client = order.client_order_id().map_or(0, crate::book::ClientOrderId::get);
                        u64s(&mut hasher, &[order.id().get(), u64::from(order.account()), order.remaining().lots()]);
                        u64s(&mut hasher, &[order.held(), flags]);
                        hasher.update(&client.to_le_bytes());
                        cursor = self.orders.next_in_level(slot);
                    }
                }
            }
        }
        self.hash_quotes(&mut hasher);
        u64s(&mut hasher, &[self.idempotency.len() as u64]);
        for (at, (account, key), entry) in self.idempotency.iter_in_order() {
            let (code, value) = entry.outcome.code();
            u64s(&mut hasher, &[at.as_nanos(), u64::from(account.get()), entry.fingerprint, u64::from(code), value]);
            hasher.update(&key.get().to_le_bytes());
        }
        self.hash_rules(&mut hasher);
        StateHash(hasher.digest128())
    }

    /// The rules' share of the state hash: rule versions (their canonical text), what
    /// is in effect, the history, risk counters and review holds. Nothing at all while
    /// no rule set was ever published and no hold exists: not a leftover, but how every
    /// such state hashes under `bourse-state-v2` (what snapshot headers and journal
    /// checkpoints recorded). Hashing the empty section instead would change the hash
    /// of every engine without rules; `tests/state.rs` pins both kinds of value.
    fn hash_rules(&self, hasher: &mut Xxh3) {
        if self.rules.is_empty() && self.reviews.is_empty() {
            return;
        }
        let u64s = |hasher: &mut Xxh3, values: &[u64]| {
            for value in values {
                hasher.update(&value.to_le_bytes());
            }
        };
        hasher.update(b"bourse-rules-v1");
        let (base, rollout) = (self.rules.base(), self.rules.rollout());
        let (rollout_version, rollout_share) = rollout.map_or((0, 0), |(version, share)| (version.get(), share));
        u64s(hasher, &[u64::from(base.get()), u64::from(rollout_version), u64::from(rollout_share)]);
        u64s(hasher, &[self.rules.versions().len() as u64]);
        for published in self.rules.versions() {
            u64s(hasher, &[published.text.len() as u64]);
            hasher.update(published.text.as_bytes());
        }
        u64s(hasher, &[self.rules.history().len() as u64]);
        for change in self.rules.history() {
            let (kind, version, share, from) = match change.kind {
                super::RuleChangeKind::Published { version } => (0, version.get(), 0, 0),
                super::RuleChangeKind::Activated { version, share_bps } => (1, version.get(), share_bps, 0),
                super::RuleChangeKind::RolledBack { from, to } => (2, to.get(), 0, from.get()),
            };
            let packed = u64::from(version) | u64::from(share) << 32 | kind << 48;
            u64s(hasher, &[change.seq.get(), change.at.as_nanos(), packed, u64::from(from)]);
        }
        for (index, account) in self.ledger.accounts().iter().enumerate() {
            let Some(counters) = account.risk() else { continue };
            u64s(hasher, &[index as u64, counters.day(), counters.outflow().len() as u64]);
            for &(asset, amount) in counters.outflow() {
                u64s(hasher, &[u64::from(asset.get()), amount.minor_units()]);
            }
            u64s(hasher, &[counters.payment_times().len() as u64]);
            for at in counters.payment_times() {
                u64s(hasher, &[at.as_nanos()]);
            }
        }
        u64s(hasher, &[u64::MAX, self.reviews.next_id()]);
        for (id, hold) in self.reviews.iter() {
            let (kind, payee) =
                (hold.payment.kind() as u64, hold.payment.payee().map_or(u64::MAX, |payee| u64::from(payee.get())));
            let asset = u64::from(hold.asset.get());
            u64s(hasher, &[id.get(), kind, u64::from(hold.payer.get()), payee, asset, hold.amount.minor_units()]);
            u64s(hasher, &[u64::from(hold.version.get()), hold.created_at.as_nanos()]);
            match &hold.payment {
                super::review::HeldPayment::Authorize { expires_at, .. } => u64s(hasher, &[expires_at.as_nanos()]),
                super::review::HeldPayment::Split { legs } => {
                    for leg in legs {
                        u64s(hasher, &[u64::from(leg.payee.get()), leg.amount.minor_units()]);
                    }
                }
                super::review::HeldPayment::Withdraw { reference } => hasher.update(reference.as_bytes()),
                super::review::HeldPayment::Transfer { .. } => {}
                super::review::HeldPayment::CrossBorder(payment) => {
                    let ((amount_mode, amount), (limit_mode, limit)) = (payment.amount.code(), payment.limit.code());
                    let modes = u64::from(amount_mode) | u64::from(limit_mode) << 8 | u64::from(payment.max_hops) << 16;
                    u64s(hasher, &[u64::from(payment.to.get()), modes, amount, limit]);
                }
                super::review::HeldPayment::ExecuteQuote(quote) => {
                    let values = [quote.quote.get(), u64::from(quote.to.get()), quote.receive.minor_units()];
                    u64s(hasher, &values);
                    u64s(hasher, &[quote.expires_at.as_nanos(), quote.route.hops() as u64]);
                    for market in quote.route.markets() {
                        u64s(hasher, &[u64::from(market.get())]);
                    }
                }
            }
            let decision = hold.decision.map_or([0, 0, 0, 0], |decision| {
                let (code, value) = decision.outcome.code();
                [1 + u64::from(decision.approve), decision.at.as_nanos(), u64::from(code), value]
            });
            u64s(hasher, &decision);
        }
    }

    /// The cross-border defaults and every quote kept, by id.
    fn hash_quotes(&self, hasher: &mut Xxh3) {
        let settings = [
            u64::from(self.crossborder.max_hops),
            self.crossborder.quote_ttl.as_nanos(),
            self.quotes.next_id(),
            self.quotes.len() as u64,
        ];
        for value in settings {
            hasher.update(&value.to_le_bytes());
        }
        for (id, quote) in self.quotes.sorted() {
            let mut route = [0_u64; crate::limits::ROUTE_HOPS_MAX];
            for (slot, market) in route.iter_mut().zip(quote.route.markets()) {
                *slot = u64::from(market.get()) + 1;
            }
            let values = [
                id.get(),
                u64::from(quote.payer.get()) | u64::from(quote.payee.get()) << 32,
                u64::from(quote.from.get()) | u64::from(quote.to.get()) << 16 | u64::from(quote.used) << 32,
                quote.send.minor_units(),
                quote.receive.minor_units(),
                quote.expires_at.as_nanos(),
            ];
            for value in values.into_iter().chain(route) {
                hasher.update(&value.to_le_bytes());
            }
        }
    }

    /// Recomputes every asset's total and every hold from the accounts and payment
    /// records, and compares them with the running totals.
    pub fn reconcile(&self) -> ReconciliationReport {
        let asset_count = self.assets.len();
        let mut recomputed = vec![0_u128; asset_count];
        let mut held = vec![0_u128; asset_count];
        let mut held_expected = vec![0_u128; asset_count];
        let mut expected_by_account: BTreeMap<(u32, u16), u64> = BTreeMap::new();
        let mut reserve = |account: u32, asset: crate::ids::AssetId, amount: u64| {
            if amount > 0 {
                held_expected[asset.index()] += u128::from(amount);
                *expected_by_account.entry((account, asset.get())).or_default() += amount;
            }
        };
        for (_, record) in self.payments.iter() {
            reserve(record.payer.get(), record.asset, record.held().minor_units());
        }
        for (_, hold) in self.reviews.iter().filter(|(_, hold)| hold.decision.is_none()) {
            reserve(hold.payer.get(), hold.asset, hold.amount.minor_units());
        }
        for (_, order) in self.orders.iter() {
            let spec = self.markets[order.market().index()].spec();
            reserve(order.account(), hold_asset(spec, order.side()), order.held());
        }
        let mut held_mismatches = Vec::new();
        for (index, account) in self.ledger.accounts().iter().enumerate() {
            for balance in account.balances() {
                let asset = balance.asset();
                recomputed[asset.index()] += u128::from(balance.total().minor_units());
                held[asset.index()] += u128::from(balance.held().minor_units());
                let expected = expected_by_account.remove(&(index as u32, asset.get())).unwrap_or(0);
                if balance.held().minor_units() != expected {
                    let code = self.assets.get(asset).map_or_else(String::new, |a| a.code().to_string());
                    held_mismatches.push((index as u32, code, balance.held().minor_units(), expected));
                }
            }
        }
        for ((account, asset), expected) in expected_by_account {
            let code =
                self.assets.get(crate::ids::AssetId::new(asset)).map_or_else(String::new, |a| a.code().to_string());
            held_mismatches.push((account, code, 0, expected));
        }
        let assets = self
            .assets
            .iter()
            .map(|(id, asset)| {
                let totals = self.ledger.totals_of(id);
                AssetReconciliation {
                    asset: asset.code().to_string(),
                    deposited: totals.deposited(),
                    withdrawn: totals.withdrawn(),
                    expected: totals.net_inflow(),
                    running_total: u128::from(totals.in_accounts().minor_units()),
                    fees: u128::from(totals.fees().minor_units()),
                    remainders: u128::from(totals.remainders().minor_units()),
                    recomputed_total: recomputed[id.index()],
                    held_recomputed: held[id.index()],
                    held_expected: held_expected[id.index()],
                }
            })
            .collect();
        ReconciliationReport { assets, held_mismatches }
    }

    /// Every invariant, checked the slow way. Panics on the first one broken: a broken
    /// invariant is an engine bug. Tests call this after every step.
    pub fn check_invariants(&self) {
        let report = self.reconcile();
        assert!(report.is_balanced(), "reconciliation failed: {report:#?}");
        for (index, account) in self.ledger.accounts().iter().enumerate() {
            let balances = account.balances();
            for pair in balances.windows(2) {
                assert!(pair[0].asset() < pair[1].asset(), "account {index}: balances ordered by asset, once each");
            }
            for balance in balances {
                assert!(self.assets.contains(balance.asset()), "account {index}: balance of an unknown asset");
            }
        }
        for (id, record) in self.payments.iter() {
            assert!(self.ledger.get(record.payer).is_some(), "payment {id}: payer exists");
            assert!(self.ledger.get(record.payee).is_some(), "payment {id}: payee exists");
            let is_authorization = record.kind == PaymentKind::Authorization;
            assert_eq!(is_authorization, record.state != PaymentState::Settled, "payment {id}: state fits kind");
            if record.state == PaymentState::Open {
                assert!(record.expires_at > self.now, "payment {id}: an open authorization has not expired");
            }
        }
        self.payments.check_invariants();
        self.idempotency.check_invariants();
        self.rules.check_invariants();
        self.reviews.check_invariants();
        for (id, hold) in self.reviews.iter() {
            assert!(self.ledger.get(hold.payer).is_some(), "review hold {id}: payer exists");
            assert!(self.rules.get(hold.version).is_some(), "review hold {id}: its rule version was published");
            if let Some(payee) = hold.payment.payee() {
                assert!(self.ledger.get(payee).is_some() && payee != hold.payer, "review hold {id}: payee");
            }
        }
        self.quotes.check_invariants(self.now);
        self.check_books();
    }

    /// Books are never crossed, levels add up, every order sits in its book and holds
    /// exactly what its remainder needs.
    fn check_books(&self) {
        self.orders.check_invariants();
        let mut resting = 0;
        for market in &self.markets {
            resting += market.book.check_invariants(&self.orders);
        }
        assert_eq!(resting, self.orders.len(), "every resting order is in a book");
        for (_, order) in self.orders.iter() {
            let spec = self.markets[order.market().index()].spec();
            let hold_bps = order.maker_bps().max(order.taker_bps());
            let expected = resting_hold(spec, order.side(), order.price(), order.remaining(), hold_bps);
            assert_eq!(
                expected.map(crate::money::Amount::minor_units),
                Some(order.held()),
                "order {} hold",
                order.id()
            );
            assert!(order.id().get() < self.next_order_id, "order ids are assigned in order");
        }
    }
}
