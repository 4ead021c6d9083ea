//! Payments held for review: a payment above its payer's `review_threshold` passed
//! every other check; instead of moving, its amount is held in the payer's account
//! (like an authorization's) under a `HoldId`, and its daily outflow and payment
//! count are charged. An operator's `ReviewDecision` then settles it:
//!
//! - **approve**: the payment is made as it would have been, from the hold, and gets
//!   its payment ids then: `ReviewApproved`, then `Transferred`; or `Authorized` (the
//!   hold becomes the authorization, with the expiry asked for, which must still be
//!   in the future); or the legs' `Transferred` and `SplitPaid`; or `Withdrawn`; or,
//!   for a cross-border payment (`PayCrossBorder`, `ExecuteQuote`), the usual
//!   `Trade`s, `CrossBorderLeg`s and `CrossBorderPaid` of a payment routed again on
//!   the books of the decision, under its original protection (the quote's exact
//!   amounts before its expiry, or the limit), sending at most what is held; what it
//!   does not send is released and taken off the day's outflow (`engine::crossborder`).
//!   The rules are not asked again (the operator decided), but the accounts must not
//!   be frozen, the tables must have room, and a cross-border payment must be
//!   possible now; otherwise the decision is rejected with the reason (a `RateMoved`
//!   event first, if the books moved past the protection) and the hold stays pending,
//!   for a later approval or a rejection.
//! - **reject**: the hold is released (`ReviewRejected`), and the amount is taken back
//!   off the payer's daily outflow if it is still the same UTC day. A held quote stays
//!   used: the payer asks for a new one.
//!
//! A decision is idempotent by its hold: repeating it replays the outcome
//! (`Event::Replayed`), the opposite decision is `HoldDecided`. Decided holds are
//! remembered `REVIEW_DECISION_RETENTION` after their decision. A pending hold waits
//! for its decision however long it takes (it does not expire); freezing the payer
//! leaves it pending. Bounds: `REVIEW_HOLDS_PENDING_MAX` pending, `REVIEW_HOLDS_MAX`
//! remembered; past them, a payment that would be held is `CapacityExceeded`.
//!
//! The original command's idempotency key remembers `Outcome::HeldForReview { hold }`:
//! a retry says "held" whatever the decision since (the hold says the rest).

use std::collections::{BTreeMap, VecDeque};

use super::Engine;
use super::crossborder::{HeldCrossBorder, HeldPlan, HeldQuote};
use super::payments::{PaymentKind, PaymentRecord, PaymentState};
use super::risk::RuleViolation;
use crate::command::{CommandKind, ReviewDecision, SplitLeg};
use crate::event::{Event, Outcome, RejectReason};
use crate::ids::{AccountId, AssetId, HoldId, PaymentId, Reference, RuleVersion, Timestamp};
use crate::limits::{REVIEW_DECISION_RETENTION, REVIEW_HOLDS_MAX, REVIEW_HOLDS_PENDING_MAX};
use crate::money::Amount;

/// What a held payment will do if approved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeldPayment {
    Transfer {
        payee: AccountId,
    },
    Authorize {
        payee: AccountId,
        expires_at: Timestamp,
    },
    Split {
        legs: Vec<SplitLeg>,
    },
    Withdraw {
        reference: Reference,
    },
    /// A `PayCrossBorder`: routed again at the decision.
    CrossBorder(HeldCrossBorder),
    /// An `ExecuteQuote`: the quote's terms, executed at the decision.
    ExecuteQuote(HeldQuote),
}

impl HeldPayment {
    pub(crate) fn kind(&self) -> CommandKind {
        match self {
            HeldPayment::Transfer { .. } => CommandKind::Transfer,
            HeldPayment::Authorize { .. } => CommandKind::Authorize,
            HeldPayment::Split { .. } => CommandKind::SplitPayment,
            HeldPayment::Withdraw { .. } => CommandKind::Withdraw,
            HeldPayment::CrossBorder(_) => CommandKind::PayCrossBorder,
            HeldPayment::ExecuteQuote(_) => CommandKind::ExecuteQuote,
        }
    }

    /// The one payee named in events (none for a withdrawal or a split payment).
    pub(crate) fn payee(&self) -> Option<AccountId> {
        match self {
            HeldPayment::Transfer { payee }
            | HeldPayment::Authorize { payee, .. }
            | HeldPayment::CrossBorder(HeldCrossBorder { payee, .. })
            | HeldPayment::ExecuteQuote(HeldQuote { payee, .. }) => Some(*payee),
            HeldPayment::Split { .. } | HeldPayment::Withdraw { .. } => None,
        }
    }
}

/// An operator's decision, once made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) approve: bool,
    pub(crate) at: Timestamp,
    pub(crate) outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReviewHold {
    pub(crate) payment: HeldPayment,
    pub(crate) payer: AccountId,
    pub(crate) asset: AssetId,
    pub(crate) amount: Amount,
    /// The version whose review threshold held it.
    pub(crate) version: RuleVersion,
    pub(crate) created_at: Timestamp,
    pub(crate) decision: Option<Decision>,
}

/// A payment held for review, as the API may show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReviewHoldInfo {
    pub hold: HoldId,
    pub kind: CommandKind,
    pub payer: AccountId,
    pub payee: Option<AccountId>,
    pub asset: AssetId,
    pub amount: Amount,
    pub version: RuleVersion,
    pub created_at: Timestamp,
    /// `None` while pending; `Some(true)` approved, `Some(false)` rejected.
    pub approved: Option<bool>,
}

#[derive(Clone, Debug)]
pub(crate) struct ReviewBook {
    holds: BTreeMap<HoldId, ReviewHold>,
    next_id: u64,
    pending: usize,
    /// Decided holds in decision order (so by time), for forgetting them.
    decided: VecDeque<(Timestamp, HoldId)>,
}

impl Default for ReviewBook {
    fn default() -> Self {
        Self { holds: BTreeMap::new(), next_id: 1, pending: 0, decided: VecDeque::new() }
    }
}

impl ReviewBook {
    /// Holds as a snapshot kept them; `next_id` is above every id.
    pub(crate) fn restore(holds: BTreeMap<HoldId, ReviewHold>, next_id: u64) -> Self {
        let pending = holds.values().filter(|hold| hold.decision.is_none()).count();
        let mut decided: Vec<(Timestamp, HoldId)> =
            holds.iter().filter_map(|(id, hold)| hold.decision.map(|decision| (decision.at, *id))).collect();
        // Holds decided at the same time are forgotten at the same time: any order will do.
        decided.sort_unstable();
        Self { holds, next_id, pending, decided: decided.into() }
    }

    fn has_room(&self) -> bool {
        self.pending < REVIEW_HOLDS_PENDING_MAX && self.holds.len() < REVIEW_HOLDS_MAX
    }

    /// Forgets decided holds whose retention has passed at `now`.
    pub(crate) fn forget(&mut self, now: Timestamp) {
        while let Some(&(at, id)) = self.decided.front() {
            if at.saturating_add(REVIEW_DECISION_RETENTION) > now {
                break;
            }
            self.decided.pop_front();
            let removed = self.holds.remove(&id);
            assert!(removed.is_some_and(|hold| hold.decision.is_some()), "only decided holds are forgotten");
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (HoldId, &ReviewHold)> {
        self.holds.iter().map(|(id, hold)| (*id, hold))
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.holds.is_empty() && self.next_id == 1
    }

    pub(crate) fn check_invariants(&self) {
        let pending = self.holds.values().filter(|hold| hold.decision.is_none()).count();
        assert_eq!(pending, self.pending, "pending review count");
        assert_eq!(self.holds.len() - pending, self.decided.len(), "one retention slot per decided hold");
        assert!(self.pending <= REVIEW_HOLDS_PENDING_MAX && self.holds.len() <= REVIEW_HOLDS_MAX);
        for (id, hold) in &self.holds {
            assert!(id.get() < self.next_id, "hold {id}: ids are assigned in order");
            assert!(!hold.amount.is_zero(), "hold {id}: holds something");
        }
    }
}

impl ReviewHold {
    fn info(&self, hold: HoldId) -> ReviewHoldInfo {
        ReviewHoldInfo {
            hold,
            kind: self.payment.kind(),
            payer: self.payer,
            payee: self.payment.payee(),
            asset: self.asset,
            amount: self.amount,
            version: self.version,
            created_at: self.created_at,
            approved: self.decision.map(|decision| decision.approve),
        }
    }
}

impl Engine {
    /// Holds `amount` of `asset` of `payer` for review instead of making `payment`.
    /// The caller checked everything else (funds included) and `review` said so.
    pub(super) fn hold_for_review(
        &mut self,
        payment: HeldPayment,
        payer: AccountId,
        asset: AssetId,
        amount: Amount,
        review: RuleViolation,
        out: &mut Vec<Event>,
    ) -> Result<Outcome, RejectReason> {
        if !self.reviews.has_room() {
            return Err(RejectReason::CapacityExceeded);
        }
        self.ledger.hold(payer, asset, amount);
        self.record_outflow(payer, asset, amount);
        let hold = HoldId::new(self.reviews.next_id);
        self.reviews.next_id += 1;
        self.reviews.pending += 1;
        let (kind, payee) = (payment.kind(), payment.payee());
        let record =
            ReviewHold { payment, payer, asset, amount, version: review.version, created_at: self.now, decision: None };
        self.reviews.holds.insert(hold, record);
        let (rule, version) = (review.rule, review.version);
        out.push(Event::HeldForReview { hold, kind, payer, payee, asset, amount, rule, version });
        Ok(Outcome::HeldForReview { hold })
    }

    pub(super) fn review_decision(&mut self, command: ReviewDecision, out: &mut Vec<Event>) {
        let kind = CommandKind::ReviewDecision;
        let Some(hold) = self.reviews.holds.get(&command.hold) else {
            return out.push(Event::Rejected { kind, reason: RejectReason::UnknownHold });
        };
        if let Some(decision) = hold.decision {
            return out.push(if decision.approve == command.approve {
                Event::Replayed { kind, original: decision.outcome }
            } else {
                Event::Rejected { kind, reason: RejectReason::HoldDecided }
            });
        }
        let hold = hold.clone();
        let decided = if command.approve {
            self.approve(command.hold, &hold, out)
        } else {
            Ok(self.reject(command.hold, &hold, out))
        };
        match decided {
            Ok(outcome) => {
                let record = self.reviews.holds.get_mut(&command.hold).expect("looked up above");
                record.decision = Some(Decision { approve: command.approve, at: self.now, outcome });
                self.reviews.pending -= 1;
                self.reviews.decided.push_back((self.now, command.hold));
            }
            Err(reason) => out.push(Event::Rejected { kind, reason }),
        }
    }

    fn reject(&mut self, id: HoldId, hold: &ReviewHold, out: &mut Vec<Event>) -> Outcome {
        self.ledger.release(hold.payer, hold.asset, hold.amount);
        self.take_back_outflow(hold.payer, hold.created_at, hold.asset, hold.amount);
        let (payer, payee, asset, amount) = (hold.payer, hold.payment.payee(), hold.asset, hold.amount);
        out.push(Event::ReviewRejected { hold: id, payer, payee, asset, amount });
        Outcome::Accepted { payment: None }
    }

    /// Every check approving `hold` needs (not the rules: the operator decided), and a
    /// cross-border payment's plan on the books of now. `Err` changes nothing.
    fn check_approval(&mut self, hold: &ReviewHold, out: &mut Vec<Event>) -> Result<Option<HeldPlan>, RejectReason> {
        let (payer, asset, amount) = (hold.payer, hold.asset, hold.amount);
        self.require_movable(payer)?;
        let room = match &hold.payment {
            HeldPayment::Transfer { payee } => {
                self.require_movable(*payee)?;
                self.payments.has_room(1)
            }
            HeldPayment::Authorize { payee, expires_at } => {
                self.require_movable(*payee)?;
                if *expires_at <= self.now {
                    return Err(RejectReason::InvalidExpiry);
                }
                self.payments.has_room_for_authorization()
            }
            HeldPayment::Split { legs } => {
                for leg in legs {
                    self.require_movable(leg.payee)?;
                }
                self.payments.has_room(legs.len())
            }
            HeldPayment::Withdraw { .. } => true,
            HeldPayment::CrossBorder(payment) => {
                return self.plan_held_payment(payment, payer, (asset, amount), out).map(Some);
            }
            HeldPayment::ExecuteQuote(quote) => {
                return self.plan_held_quote(quote, payer, (asset, amount), out).map(Some);
            }
        };
        if !room {
            return Err(RejectReason::CapacityExceeded);
        }
        Ok(None)
    }

    /// Makes the held payment, from the hold; checks first, so `Err` changes nothing.
    fn approve(&mut self, id: HoldId, hold: &ReviewHold, out: &mut Vec<Event>) -> Result<Outcome, RejectReason> {
        let (payer, asset, amount) = (hold.payer, hold.asset, hold.amount);
        let planned = self.check_approval(hold, out)?;
        out.push(Event::ReviewApproved { hold: id, payer, payee: hold.payment.payee(), asset, amount });
        if let Some(planned) = planned {
            let payment = self.pay_held(&planned, amount, hold.created_at, out);
            return Ok(Outcome::Accepted { payment: Some(payment) });
        }
        let payment = match &hold.payment {
            HeldPayment::Transfer { payee } => {
                let payment = self.pay_from_hold(PaymentKind::Transfer, payer, *payee, asset, amount);
                out.push(Event::Transferred { payment, from: payer, to: *payee, asset, amount });
                Some(payment)
            }
            HeldPayment::Authorize { payee, expires_at } => {
                Some(self.authorize_held(payer, *payee, asset, amount, *expires_at, out))
            }
            HeldPayment::Split { legs } => {
                let first_payment = self.payments.next_id();
                for leg in legs {
                    let payment = self.pay_from_hold(PaymentKind::SplitLeg, payer, leg.payee, asset, leg.amount);
                    out.push(Event::Transferred { payment, from: payer, to: leg.payee, asset, amount: leg.amount });
                }
                let legs = legs.len() as u8;
                out.push(Event::SplitPaid { first_payment, payer, asset, total: amount, legs });
                Some(first_payment)
            }
            HeldPayment::Withdraw { reference } => {
                self.ledger.withdraw_held(payer, asset, amount);
                out.push(Event::Withdrawn { account: payer, asset, amount, reference: *reference });
                None
            }
            HeldPayment::CrossBorder(_) | HeldPayment::ExecuteQuote(_) => {
                unreachable!("a cross-border approval is planned by check_approval")
            }
        };
        Ok(Outcome::Accepted { payment })
    }

    /// Moves `amount` from `from`'s hold to `to` and records the payment.
    fn pay_from_hold(
        &mut self,
        kind: PaymentKind,
        from: AccountId,
        to: AccountId,
        asset: AssetId,
        amount: Amount,
    ) -> PaymentId {
        self.ledger.debit_held(from, asset, amount);
        self.ledger.credit(to, asset, amount);
        self.payments.push(PaymentRecord {
            payer: from,
            payee: to,
            asset,
            kind,
            state: PaymentState::Settled,
            amount,
            paid: amount,
            refunded: Amount::ZERO,
            created_at: self.now,
            expires_at: self.now,
        })
    }

    /// The hold becomes an open authorization (the funds stay held).
    fn authorize_held(
        &mut self,
        payer: AccountId,
        payee: AccountId,
        asset: AssetId,
        amount: Amount,
        expires_at: Timestamp,
        out: &mut Vec<Event>,
    ) -> PaymentId {
        let payment = self.payments.push(PaymentRecord {
            payer,
            payee,
            asset,
            kind: PaymentKind::Authorization,
            state: PaymentState::Open,
            amount,
            paid: Amount::ZERO,
            refunded: Amount::ZERO,
            created_at: self.now,
            expires_at,
        });
        out.push(Event::Authorized { payment, payer, payee, asset, amount, expires_at });
        payment
    }

    /// A payment held for review, pending or decided (until forgotten).
    pub fn review_hold(&self, hold: HoldId) -> Option<ReviewHoldInfo> {
        self.reviews.holds.get(&hold).map(|record| record.info(hold))
    }

    /// Every payment waiting for review, oldest first.
    pub fn pending_reviews(&self) -> impl Iterator<Item = ReviewHoldInfo> + '_ {
        self.reviews.iter().filter(|(_, hold)| hold.decision.is_none()).map(|(id, hold)| hold.info(id))
    }
}
