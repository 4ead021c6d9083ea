//! Handlers for the account lifecycle and for money crossing the system's edge.

use super::review::HeldPayment;
use super::{Engine, Handled, Reviewed};
use crate::account::Account;
use crate::command::{CommandKind, Deposit, OpenAccount, SetKycTier, Withdraw};
use crate::event::{CancelReason, Event, Outcome, RejectReason};
use crate::ids::{AccountId, AssetId};
use crate::limits::ACCOUNTS_MAX;

impl Engine {
    pub(super) fn open_account(&mut self, command: &OpenAccount, out: &mut Vec<Event>) {
        if self.ledger.len() >= ACCOUNTS_MAX {
            return out
                .push(Event::Rejected { kind: CommandKind::OpenAccount, reason: RejectReason::CapacityExceeded });
        }
        let account = self.ledger.open(Account::new(command.owner, command.kyc_tier));
        out.push(Event::AccountOpened { account, owner: command.owner, kyc_tier: command.kyc_tier });
    }

    pub(super) fn set_frozen(&mut self, kind: CommandKind, account: AccountId, frozen: bool, out: &mut Vec<Event>) {
        let Some(state) = self.ledger.get_mut(account) else {
            return out.push(Event::Rejected { kind, reason: RejectReason::UnknownAccount });
        };
        state.set_frozen(frozen);
        out.push(if frozen { Event::AccountFrozen { account } } else { Event::AccountUnfrozen { account } });
        if frozen {
            // A frozen account neither sends nor receives: its orders leave the books.
            self.cancel_orders_of(account, None, CancelReason::AccountFrozen, out);
        }
    }

    pub(super) fn set_kyc_tier(&mut self, command: SetKycTier, out: &mut Vec<Event>) {
        let Some(state) = self.ledger.get_mut(command.account) else {
            return out.push(Event::Rejected { kind: CommandKind::SetKycTier, reason: RejectReason::UnknownAccount });
        };
        state.set_kyc_tier(command.kyc_tier);
        out.push(Event::KycTierChanged { account: command.account, kyc_tier: command.kyc_tier });
    }

    pub(super) fn deposit(&mut self, command: &Deposit, out: &mut Vec<Event>) -> Handled {
        command.check()?;
        self.require_asset(command.asset)?;
        self.require_movable(command.account)?;
        if !self.ledger.totals_of(command.asset).has_room_for(command.amount) {
            return Err(RejectReason::Overflow);
        }
        self.ledger.deposit(command.account, command.asset, command.amount);
        out.push(Event::Deposited {
            account: command.account,
            asset: command.asset,
            amount: command.amount,
            reference: command.reference,
        });
        Ok(None)
    }

    pub(super) fn withdraw(&mut self, command: &Withdraw, out: &mut Vec<Event>) -> Reviewed {
        command.check()?;
        self.require_asset(command.asset)?;
        self.require_funds(command.account, command.asset, command.amount)?;
        let (account, asset, amount) = (command.account, command.asset, command.amount);
        if let Some(review) = self.gate_payment(CommandKind::Withdraw, account, [], asset, amount, out)? {
            let held = HeldPayment::Withdraw { reference: command.reference };
            return self.hold_for_review(held, account, asset, amount, review, out);
        }
        self.record_outflow(account, asset, amount);
        self.ledger.withdraw(command.account, command.asset, command.amount);
        out.push(Event::Withdrawn {
            account: command.account,
            asset: command.asset,
            amount: command.amount,
            reference: command.reference,
        });
        Ok(Outcome::Accepted { payment: None })
    }

    // Shared checks, used by the payment handlers too.

    pub(super) fn require_asset(&self, asset: AssetId) -> Result<(), RejectReason> {
        if self.assets.contains(asset) { Ok(()) } else { Err(RejectReason::UnknownAsset) }
    }

    /// The account exists and is not frozen: money may enter or leave it.
    pub(super) fn require_movable(&self, account: AccountId) -> Result<&Account, RejectReason> {
        let state = self.ledger.get(account).ok_or(RejectReason::UnknownAccount)?;
        if state.is_frozen() { Err(RejectReason::AccountFrozen) } else { Ok(state) }
    }

    /// The account may pay `amount` of `asset` from its available balance.
    pub(super) fn require_funds(
        &self,
        account: AccountId,
        asset: AssetId,
        amount: crate::money::Amount,
    ) -> Result<(), RejectReason> {
        let state = self.require_movable(account)?;
        if state.available(asset) < amount { Err(RejectReason::InsufficientFunds) } else { Ok(()) }
    }
}
