//! The account actor's state: who owns it, its KYC tier, whether it is frozen, a
//! balance (`available` and `held`) per asset it has ever touched, and its risk
//! counters (`risk::RiskCounters`), once it has paid under a published rule set.
//!
//! Only the engine's `Ledger` changes balances, so that every change also moves the
//! per-asset running totals that reconciliation checks.

use smallvec::SmallVec;

use crate::ids::{AssetId, KycTier, OwnerId};
use crate::money::Amount;
use crate::risk::RiskCounters;

/// An account's holding of one asset. `available` can be spent; `held` is reserved for
/// open authorizations (and, later, open orders).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    asset: AssetId,
    available: Amount,
    held: Amount,
}

impl Balance {
    const fn empty(asset: AssetId) -> Self {
        Self { asset, available: Amount::ZERO, held: Amount::ZERO }
    }
    pub fn asset(&self) -> AssetId {
        self.asset
    }
    pub fn available(&self) -> Amount {
        self.available
    }
    pub fn held(&self) -> Amount {
        self.held
    }
    /// `available + held`: bounded by the asset's total, so it never overflows.
    pub fn total(&self) -> Amount {
        self.available.checked_add(self.held).expect("a balance is bounded by its asset's total")
    }
}

/// One account. Two assets fit inline; a third spills the balances to the heap once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    balances: SmallVec<[Balance; 2]>,
    owner: OwnerId,
    kyc_tier: KycTier,
    frozen: bool,
    /// Boxed: most accounts never need counters, and a pointer keeps the account small.
    risk: Option<Box<RiskCounters>>,
}

impl Account {
    pub(crate) fn new(owner: OwnerId, kyc_tier: KycTier) -> Self {
        Self { balances: SmallVec::new(), owner, kyc_tier, frozen: false, risk: None }
    }

    pub fn owner(&self) -> OwnerId {
        self.owner
    }
    pub fn kyc_tier(&self) -> KycTier {
        self.kyc_tier
    }
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The balance of `asset`, zero if the account never held it.
    pub fn balance(&self, asset: AssetId) -> Balance {
        self.balances.iter().find(|balance| balance.asset == asset).copied().unwrap_or(Balance::empty(asset))
    }

    pub fn available(&self, asset: AssetId) -> Amount {
        self.balance(asset).available
    }

    /// Every balance the account has, ordered by asset.
    pub fn balances(&self) -> &[Balance] {
        &self.balances
    }

    /// An account as a snapshot recorded it; `balances` must be ordered by asset.
    pub(crate) fn restore(
        owner: OwnerId,
        kyc_tier: KycTier,
        frozen: bool,
        balances: &[(AssetId, Amount, Amount)],
    ) -> Self {
        let balances = balances.iter().map(|&(asset, available, held)| Balance { asset, available, held }).collect();
        Self { balances, owner, kyc_tier, frozen, risk: None }
    }

    /// The risk counters, if the account has paid since the first rule set was
    /// published (and they count anything).
    pub fn risk(&self) -> Option<&RiskCounters> {
        self.risk.as_deref().filter(|counters| !counters.is_empty())
    }

    /// The counters, created on first use.
    pub(crate) fn risk_mut(&mut self) -> &mut RiskCounters {
        self.risk.get_or_insert_with(Box::default)
    }

    pub(crate) fn set_risk(&mut self, counters: RiskCounters) {
        self.risk = Some(Box::new(counters));
    }

    pub(crate) fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }
    pub(crate) fn set_kyc_tier(&mut self, kyc_tier: KycTier) {
        self.kyc_tier = kyc_tier;
    }

    /// The balance of `asset`, created (in asset order) on first use.
    fn slot(&mut self, asset: AssetId) -> &mut Balance {
        let position = match self.balances.binary_search_by_key(&asset, |balance| balance.asset) {
            Ok(position) => position,
            Err(position) => {
                self.balances.insert(position, Balance::empty(asset));
                position
            }
        };
        &mut self.balances[position]
    }

    pub(crate) fn add_available(&mut self, asset: AssetId, amount: Amount) {
        let slot = self.slot(asset);
        slot.available = slot.available.checked_add(amount).expect("credit bounded by the asset total");
    }
    pub(crate) fn sub_available(&mut self, asset: AssetId, amount: Amount) {
        let slot = self.slot(asset);
        slot.available = slot.available.checked_sub(amount).expect("debit checked against available");
    }
    /// `available` → `held`, with one lookup.
    pub(crate) fn hold(&mut self, asset: AssetId, amount: Amount) {
        let slot = self.slot(asset);
        slot.available = slot.available.checked_sub(amount).expect("hold checked against available");
        slot.held = slot.held.checked_add(amount).expect("hold bounded by the asset total");
    }
    /// `held` → `available`, with one lookup.
    pub(crate) fn release(&mut self, asset: AssetId, amount: Amount) {
        let slot = self.slot(asset);
        slot.held = slot.held.checked_sub(amount).expect("a hold never goes negative");
        slot.available = slot.available.checked_add(amount).expect("release bounded by the asset total");
    }
    pub(crate) fn sub_held(&mut self, asset: AssetId, amount: Amount) {
        let slot = self.slot(asset);
        slot.held = slot.held.checked_sub(amount).expect("a hold never goes negative");
    }
}
