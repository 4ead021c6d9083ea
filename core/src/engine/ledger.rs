//! The ledger: every account actor, the per-asset running totals, and the only code
//! that changes a balance. Each primitive moves the totals with it, so that
//! "money in accounts = deposits − withdrawals" can be checked in O(1) per command.

use crate::account::Account;
use crate::ids::{AccountId, AssetId};
use crate::money::Amount;
use crate::reconcile::AssetTotals;

#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    accounts: Vec<Account>,
    totals: Vec<AssetTotals>,
    /// The (account, asset) pairs the current command changed, in first-change order;
    /// cleared after each command. Its capacity is kept, so it never allocates in
    /// steady state.
    touched: Vec<(AccountId, AssetId)>,
}

impl Ledger {
    pub(crate) fn new(asset_count: usize, accounts_capacity: usize) -> Self {
        Self {
            accounts: Vec::with_capacity(accounts_capacity),
            totals: vec![AssetTotals::default(); asset_count],
            touched: Vec::with_capacity(2 * crate::limits::SPLIT_LEGS_MAX + 2),
        }
    }

    pub(crate) fn restore(accounts: Vec<Account>, totals: Vec<AssetTotals>) -> Self {
        Self { accounts, totals, touched: Vec::with_capacity(2 * crate::limits::SPLIT_LEGS_MAX + 2) }
    }

    pub(crate) fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    pub(crate) fn totals(&self) -> &[AssetTotals] {
        &self.totals
    }

    pub(crate) fn totals_of(&self, asset: AssetId) -> &AssetTotals {
        &self.totals[asset.index()]
    }

    pub(crate) fn get(&self, account: AccountId) -> Option<&Account> {
        self.accounts.get(account.index())
    }

    pub(crate) fn get_mut(&mut self, account: AccountId) -> Option<&mut Account> {
        self.accounts.get_mut(account.index())
    }

    pub(crate) fn open(&mut self, account: Account) -> AccountId {
        let id = AccountId::new(u32::try_from(self.accounts.len()).expect("bounded by ACCOUNTS_MAX"));
        self.accounts.push(account);
        id
    }

    pub(crate) fn len(&self) -> usize {
        self.accounts.len()
    }

    fn account_mut(&mut self, account: AccountId, asset: AssetId) -> &mut Account {
        if !self.touched.contains(&(account, asset)) {
            self.touched.push((account, asset));
        }
        &mut self.accounts[account.index()]
    }

    /// Money arriving from outside: deposits only.
    pub(crate) fn deposit(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.totals[asset.index()].record_deposit(amount);
        self.credit(account, asset, amount);
    }

    /// Money leaving to outside: withdrawals only.
    pub(crate) fn withdraw(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.totals[asset.index()].record_withdrawal(amount);
        self.debit(account, asset, amount);
    }

    /// Money leaving to outside from a hold: a withdrawal approved after review.
    pub(crate) fn withdraw_held(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.totals[asset.index()].record_withdrawal(amount);
        self.debit_held(account, asset, amount);
    }

    /// Adds to `available`.
    pub(crate) fn credit(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.account_mut(account, asset).add_available(asset, amount);
        self.totals[asset.index()].add_in_accounts(amount);
    }

    /// Takes from `available`; the caller checked there is enough.
    pub(crate) fn debit(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.account_mut(account, asset).sub_available(asset, amount);
        self.totals[asset.index()].sub_in_accounts(amount);
    }

    /// Moves `available` to `held`.
    pub(crate) fn hold(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.account_mut(account, asset).hold(asset, amount);
    }

    /// Moves `held` back to `available`.
    pub(crate) fn release(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.account_mut(account, asset).release(asset, amount);
    }

    /// Takes from `held` (a capture paying out a hold).
    pub(crate) fn debit_held(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        self.account_mut(account, asset).sub_held(asset, amount);
        self.totals[asset.index()].sub_in_accounts(amount);
    }

    /// Moves a fee, already taken from an account, to the house.
    pub(crate) fn collect_fee(&mut self, asset: AssetId, amount: Amount) {
        self.totals[asset.index()].collect_fee(amount);
    }

    /// Moves a cross-border remainder or surplus, already taken from an account, to the
    /// house's remainder account.
    pub(crate) fn collect_remainder(&mut self, asset: AssetId, amount: Amount) {
        self.totals[asset.index()].collect_remainder(amount);
    }

    /// Hands the pairs changed by this command to `each`, then forgets them.
    pub(crate) fn drain_touched(&mut self, mut each: impl FnMut(AccountId, &Account, AssetId)) {
        for &(account, asset) in &self.touched {
            each(account, &self.accounts[account.index()], asset);
        }
        self.touched.clear();
    }

    /// Asserts the O(1) conservation invariant of every asset: what the accounts and
    /// the house hold equals deposits minus withdrawals. A failure is an engine bug.
    pub(crate) fn assert_conserved(&self) {
        for (index, totals) in self.totals.iter().enumerate() {
            assert!(totals.is_conserved(), "asset {index} is not conserved: {totals:?}");
        }
    }
}
