//! Reconciliation: per asset, the money in accounts (available + held) plus the
//! house's fee and remainder accounts equals deposits minus withdrawals.
//!
//! `AssetTotals` keeps that as O(1) running totals, checked after every command;
//! `ReconciliationReport` recomputes everything from the accounts and compares.

use serde::Serialize;

use crate::money::Amount;

/// Running totals of one asset. `in_accounts` moves with every balance change;
/// `deposited` and `withdrawn` only with money crossing the system's edge. They are
/// kept independently so that their agreement means something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssetTotals {
    in_accounts: u64,
    /// Fees collected: the house's fee account of this asset.
    fees: u64,
    /// Rounding remainders and quote surpluses of cross-border payments: the house's
    /// remainder account of this asset, kept apart from fees.
    remainders: u64,
    deposited: u128,
    withdrawn: u128,
}

impl AssetTotals {
    pub fn in_accounts(&self) -> Amount {
        Amount::new(self.in_accounts).expect("bounded by AMOUNT_MAX")
    }
    pub fn fees(&self) -> Amount {
        Amount::new(self.fees).expect("bounded by AMOUNT_MAX")
    }
    pub fn remainders(&self) -> Amount {
        Amount::new(self.remainders).expect("bounded by AMOUNT_MAX")
    }
    pub fn deposited(&self) -> u128 {
        self.deposited
    }
    pub fn withdrawn(&self) -> u128 {
        self.withdrawn
    }
    /// Deposits minus withdrawals: what the accounts must hold.
    #[allow(clippy::cast_possible_wrap)] // Sums of u64 amounts: 2^63 commands short of i128's range.
    pub fn net_inflow(&self) -> i128 {
        self.deposited as i128 - self.withdrawn as i128
    }
    /// Accounts plus the house hold exactly what came in minus what went out.
    pub fn is_conserved(&self) -> bool {
        i128::from(self.in_accounts) + i128::from(self.fees) + i128::from(self.remainders) == self.net_inflow()
    }
    /// Whether `amount` more can enter the system without passing `limits::AMOUNT_MAX`.
    pub fn has_room_for(&self, amount: Amount) -> bool {
        self.in_accounts()
            .checked_add(self.fees())
            .and_then(|total| total.checked_add(self.remainders()))
            .and_then(|total| total.checked_add(amount))
            .is_some()
    }
    pub(crate) fn collect_fee(&mut self, amount: Amount) {
        self.fees = self.fees().checked_add(amount).expect("fees bounded by the asset total").minor_units();
    }
    pub(crate) fn collect_remainder(&mut self, amount: Amount) {
        self.remainders =
            self.remainders().checked_add(amount).expect("remainders bounded by the asset total").minor_units();
    }

    pub(crate) fn restore(in_accounts: u64, fees: u64, remainders: u64, deposited: u128, withdrawn: u128) -> Self {
        Self { in_accounts, fees, remainders, deposited, withdrawn }
    }

    pub(crate) fn record_deposit(&mut self, amount: Amount) {
        self.deposited += u128::from(amount.minor_units());
    }
    pub(crate) fn record_withdrawal(&mut self, amount: Amount) {
        self.withdrawn += u128::from(amount.minor_units());
    }
    pub(crate) fn add_in_accounts(&mut self, amount: Amount) {
        self.in_accounts = self.in_accounts().checked_add(amount).expect("asset total bounded").minor_units();
    }
    pub(crate) fn sub_in_accounts(&mut self, amount: Amount) {
        self.in_accounts = self.in_accounts.checked_sub(amount.minor_units()).expect("asset total never negative");
    }
}

/// One asset's line of a full reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssetReconciliation {
    pub asset: String,
    pub deposited: u128,
    pub withdrawn: u128,
    /// Deposits minus withdrawals.
    pub expected: i128,
    /// The O(1) running total of the accounts the engine kept.
    pub running_total: u128,
    /// Fees collected (the house's fee account).
    pub fees: u128,
    /// Cross-border rounding remainders and quote surpluses (the house's remainder
    /// account).
    pub remainders: u128,
    /// `available + held` summed over every account, recomputed now.
    pub recomputed_total: u128,
    /// `held` summed over every account, recomputed now.
    pub held_recomputed: u128,
    /// What open authorizations and resting orders reserve, recomputed from them.
    pub held_expected: u128,
}

impl AssetReconciliation {
    pub fn is_balanced(&self) -> bool {
        self.expected >= 0
            && self.expected as u128 == self.running_total + self.fees + self.remainders
            && self.running_total == self.recomputed_total
            && self.held_recomputed == self.held_expected
    }
}

/// A full reconciliation, recomputed from every account and payment record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReconciliationReport {
    pub assets: Vec<AssetReconciliation>,
    /// Accounts whose held balance of an asset differs from what their open
    /// authorizations and orders reserve: `(account, asset code, held, expected)`.
    pub held_mismatches: Vec<(u32, String, u64, u64)>,
}

impl ReconciliationReport {
    pub fn is_balanced(&self) -> bool {
        self.held_mismatches.is_empty() && self.assets.iter().all(AssetReconciliation::is_balanced)
    }
}
