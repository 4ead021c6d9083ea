//! Who a session or request acts as: an operator (admin, may act for any account) or
//! a client bound to a list of accounts.

use bourse_core::ids::AccountId;
use smallvec::SmallVec;

/// The accounts a session may act for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// An operator: every account.
    Admin,
    /// A client: only these accounts (sorted, no duplicates).
    Accounts(SmallVec<[AccountId; 4]>),
}

impl Principal {
    /// A client principal over `accounts`, sorted and de-duplicated.
    pub fn accounts(accounts: impl IntoIterator<Item = AccountId>) -> Self {
        let mut list: SmallVec<[AccountId; 4]> = accounts.into_iter().collect();
        list.sort_unstable();
        list.dedup();
        Principal::Accounts(list)
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }

    /// Whether this principal may act for (and see) `account`.
    pub fn may_act_for(&self, account: AccountId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Accounts(list) => list.binary_search(&account).is_ok(),
        }
    }

    /// The accounts, for a client; `None` for an operator (all of them).
    pub fn account_list(&self) -> Option<&[AccountId]> {
        match self {
            Principal::Admin => None,
            Principal::Accounts(list) => Some(list),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_acts_only_for_its_accounts() {
        let client = Principal::accounts([AccountId::new(7), AccountId::new(3), AccountId::new(7)]);
        assert_eq!(client.account_list(), Some(&[AccountId::new(3), AccountId::new(7)][..]));
        assert!(client.may_act_for(AccountId::new(3)));
        assert!(!client.may_act_for(AccountId::new(4)));
        assert!(Principal::Admin.may_act_for(AccountId::new(4)));
    }
}
