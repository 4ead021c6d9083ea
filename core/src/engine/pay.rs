//! Handlers for payments between accounts. Each checks everything first (the risk
//! rules last, `engine::risk`), then commits with ledger primitives that cannot fail,
//! or holds the payment for review (`engine::review`).

use super::payments::{PaymentKind, PaymentRecord, PaymentState};
use super::review::HeldPayment;
use super::{Engine, Handled, Reviewed};
use crate::command::{Authorize, Capture, CommandKind, Refund, SplitPayment, Transfer, Void};
use crate::event::{Event, Outcome, RejectReason};
use crate::ids::{AccountId, AssetId, PaymentId};
use crate::limits::AUTHORIZATION_DURATION_MAX;
use crate::money::Amount;

impl Engine {
    pub(super) fn transfer(&mut self, command: &Transfer, out: &mut Vec<Event>) -> Reviewed {
        command.check()?;
        self.require_asset(command.asset)?;
        self.require_movable(command.to)?;
        self.require_funds(command.by, command.asset, command.amount)?;
        if !self.payments.has_room(1) {
            return Err(RejectReason::CapacityExceeded);
        }
        let (payer, asset, amount) = (command.by, command.asset, command.amount);
        if let Some(review) = self.gate_payment(CommandKind::Transfer, payer, [command.to], asset, amount, out)? {
            return self.hold_for_review(
                HeldPayment::Transfer { payee: command.to },
                payer,
                asset,
                amount,
                review,
                out,
            );
        }
        self.record_outflow(payer, asset, amount);
        let payment = self.pay(PaymentKind::Transfer, command.by, command.to, command.asset, command.amount);
        out.push(Event::Transferred {
            payment,
            from: command.by,
            to: command.to,
            asset: command.asset,
            amount: command.amount,
        });
        Ok(Outcome::Accepted { payment: Some(payment) })
    }

    pub(super) fn authorize(&mut self, command: &Authorize, out: &mut Vec<Event>) -> Reviewed {
        command.check()?;
        self.require_asset(command.asset)?;
        self.require_movable(command.payee)?;
        let latest = self.now.saturating_add(AUTHORIZATION_DURATION_MAX);
        if command.expires_at <= self.now || command.expires_at > latest {
            return Err(RejectReason::InvalidExpiry);
        }
        self.require_funds(command.by, command.asset, command.amount)?;
        if !self.payments.has_room_for_authorization() {
            return Err(RejectReason::CapacityExceeded);
        }
        let (payer, asset, amount) = (command.by, command.asset, command.amount);
        if let Some(review) = self.gate_payment(CommandKind::Authorize, payer, [command.payee], asset, amount, out)? {
            let held = HeldPayment::Authorize { payee: command.payee, expires_at: command.expires_at };
            return self.hold_for_review(held, payer, asset, amount, review, out);
        }
        // An authorization counts as outflow when it is made: captures only take it.
        self.record_outflow(payer, asset, amount);
        self.ledger.hold(command.by, command.asset, command.amount);
        let payment = self.payments.push(PaymentRecord {
            payer: command.by,
            payee: command.payee,
            asset: command.asset,
            kind: PaymentKind::Authorization,
            state: PaymentState::Open,
            amount: command.amount,
            paid: Amount::ZERO,
            refunded: Amount::ZERO,
            created_at: self.now,
            expires_at: command.expires_at,
        });
        out.push(Event::Authorized {
            payment,
            payer: command.by,
            payee: command.payee,
            asset: command.asset,
            amount: command.amount,
            expires_at: command.expires_at,
        });
        Ok(Outcome::Accepted { payment: Some(payment) })
    }

    pub(super) fn capture(&mut self, command: &Capture, out: &mut Vec<Event>) -> Handled {
        command.check()?;
        let is_payee = self.payments.get(command.payment).is_some_and(|record| command.by == record.payee);
        let record = self.open_authorization(command.payment, is_payee)?;
        if record.asset != command.asset {
            return Err(RejectReason::AssetMismatch);
        }
        let remaining = record.held();
        if command.amount > remaining {
            return Err(RejectReason::ExceedsAuthorization);
        }
        self.require_movable(record.payer)?;
        self.require_movable(record.payee)?;

        self.ledger.debit_held(record.payer, record.asset, command.amount);
        self.ledger.credit(record.payee, record.asset, command.amount);
        let captured_total = record.paid.checked_add(command.amount).expect("bounded by the authorization");
        let mut released = Amount::ZERO;
        if command.last || captured_total == record.amount {
            released = remaining.checked_sub(command.amount).expect("checked above");
            self.ledger.release(record.payer, record.asset, released);
            self.payments.close(command.payment, PaymentState::Captured);
        }
        self.payments.get_mut(command.payment).expect("looked up above").paid = captured_total;
        out.push(Event::Captured {
            payment: command.payment,
            payer: record.payer,
            payee: record.payee,
            asset: record.asset,
            amount: command.amount,
            captured_total,
            released,
        });
        Ok(Some(command.payment))
    }

    pub(super) fn void(&mut self, command: &Void, out: &mut Vec<Event>) -> Handled {
        command.check()?;
        let is_party = self
            .payments
            .get(command.payment)
            .is_some_and(|record| command.by == record.payer || command.by == record.payee);
        let record = self.open_authorization(command.payment, is_party)?;
        let released = record.held();
        self.ledger.release(record.payer, record.asset, released);
        self.payments.close(command.payment, PaymentState::Voided);
        out.push(Event::Voided {
            payment: command.payment,
            payer: record.payer,
            payee: record.payee,
            asset: record.asset,
            released,
        });
        Ok(Some(command.payment))
    }

    pub(super) fn split_payment(&mut self, command: &SplitPayment, out: &mut Vec<Event>) -> Reviewed {
        command.check()?;
        self.require_asset(command.asset)?;
        for leg in &command.legs {
            self.require_movable(leg.payee)?;
        }
        self.require_movable(command.by)?;
        // A total past AMOUNT_MAX is more than any balance can hold.
        let total = command
            .legs
            .iter()
            .try_fold(Amount::ZERO, |total, leg| total.checked_add(leg.amount))
            .ok_or(RejectReason::InsufficientFunds)?;
        self.require_funds(command.by, command.asset, total)?;
        if !self.payments.has_room(command.legs.len()) {
            return Err(RejectReason::CapacityExceeded);
        }
        let (payer, asset) = (command.by, command.asset);
        let payees = command.legs.iter().map(|leg| leg.payee);
        if let Some(review) = self.gate_payment(CommandKind::SplitPayment, payer, payees, asset, total, out)? {
            let held = HeldPayment::Split { legs: command.legs.clone() };
            return self.hold_for_review(held, payer, asset, total, review, out);
        }
        self.record_outflow(payer, asset, total);
        let first_payment = self.payments.next_id();
        for leg in &command.legs {
            let payment = self.pay(PaymentKind::SplitLeg, command.by, leg.payee, command.asset, leg.amount);
            out.push(Event::Transferred {
                payment,
                from: command.by,
                to: leg.payee,
                asset: command.asset,
                amount: leg.amount,
            });
        }
        out.push(Event::SplitPaid {
            first_payment,
            payer: command.by,
            asset: command.asset,
            total,
            legs: command.legs.len() as u8,
        });
        Ok(Outcome::Accepted { payment: Some(first_payment) })
    }

    pub(super) fn refund(&mut self, command: &Refund, out: &mut Vec<Event>) -> Handled {
        command.check()?;
        let record = *self.payments.get(command.payment).ok_or(RejectReason::UnknownPayment)?;
        if command.by != record.payee {
            return Err(RejectReason::NotParty);
        }
        if record.asset != command.asset {
            return Err(RejectReason::AssetMismatch);
        }
        if record.paid.is_zero() {
            return Err(RejectReason::NotRefundable);
        }
        let refundable = record.paid.checked_sub(record.refunded).expect("refunded never exceeds paid");
        if command.amount > refundable {
            return Err(RejectReason::ExceedsRefundable);
        }
        self.require_movable(record.payer)?;
        self.require_funds(record.payee, record.asset, command.amount)?;

        self.ledger.debit(record.payee, record.asset, command.amount);
        self.ledger.credit(record.payer, record.asset, command.amount);
        let refunded_total = record.refunded.checked_add(command.amount).expect("bounded by paid");
        self.payments.get_mut(command.payment).expect("looked up above").refunded = refunded_total;
        out.push(Event::Refunded {
            payment: command.payment,
            payer: record.payer,
            payee: record.payee,
            asset: record.asset,
            amount: command.amount,
            refunded_total,
        });
        Ok(None)
    }

    /// Moves `amount` from `from`'s available balance to `to` and records the payment.
    fn pay(&mut self, kind: PaymentKind, from: AccountId, to: AccountId, asset: AssetId, amount: Amount) -> PaymentId {
        self.ledger.debit(from, asset, amount);
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

    /// The authorization `payment`, if it is still open and `is_party` (the caller's
    /// check of who may act on it) holds.
    fn open_authorization(&self, payment: PaymentId, is_party: bool) -> Result<PaymentRecord, RejectReason> {
        let record = *self.payments.get(payment).ok_or(RejectReason::UnknownPayment)?;
        if record.kind != PaymentKind::Authorization {
            return Err(RejectReason::NotAnAuthorization);
        }
        if !is_party {
            return Err(RejectReason::NotParty);
        }
        match record.state {
            PaymentState::Open => Ok(record),
            PaymentState::Expired => Err(RejectReason::AuthorizationExpired),
            PaymentState::Captured | PaymentState::Voided | PaymentState::Settled => {
                Err(RejectReason::AuthorizationClosed)
            }
        }
    }
}
