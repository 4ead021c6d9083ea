//! Operator commands for risk and compliance rules: publish a rule set as a new
//! version, activate a version for all accounts or a share of them, roll back, and
//! decide a payment held for review. None moves money but the review decision, and
//! none carries an idempotency key: a decision is idempotent by its hold.

use serde::{Deserialize, Serialize};

use crate::ids::{HoldId, RuleVersion};
use crate::rules::RuleSet;

/// Publishes `rules` as the next version (1, 2, …). Publishing changes no decision:
/// a version decides only once activated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRules {
    pub rules: RuleSet,
}

/// Puts `version` in effect for the accounts whose rollout bucket
/// (`rules::rollout_bucket`) is below `share_bps` (of `limits::ROLLOUT_BUCKETS`); the
/// others keep the fully active version. 10,000 makes `version` the fully active
/// version for everyone (and ends any rollout); 0 ends the rollout in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateRules {
    pub version: RuleVersion,
    pub share_bps: u16,
}

/// Makes `to_version`, earlier than every version in effect, the fully active version
/// for everyone and ends any rollout. `RuleVersion::NONE` lifts every rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRules {
    pub to_version: RuleVersion,
}

/// An operator's decision on a payment held for review: approve (the payment goes
/// ahead) or reject (its funds are released to the payer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDecision {
    pub hold: HoldId,
    pub approve: bool,
}
