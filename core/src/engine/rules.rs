//! Rule versions: every published rule set (immutable, numbered 1, 2, …), which
//! version is in effect for which account, and the history of every change. Handlers
//! for `PublishRules`, `ActivateRules` and `RollbackRules`.
//!
//! What is in effect: a fully active **base** version (or none) and at most one
//! **rollout** (a version and a share in basis points). An account whose
//! `rules::rollout_bucket` is below the rollout's share uses the rollout's version;
//! every other account uses the base version. Because the bucket depends on the
//! account id alone, a rollout of 10% and then 20% reaches the first 10% again plus
//! another 10%, and a replay puts every account where it was.
//!
//! - `ActivateRules { version, share_bps: 10_000 }`: `version` becomes the base and the
//!   rollout ends. `0 < share_bps < 10_000`: `version` is rolled out to that share (in
//!   place of any other rollout). `share_bps = 0`: the rollout ends.
//! - `RollbackRules { to_version }`: `to_version` (or `RuleVersion::NONE`, no rules)
//!   must be below the highest version in effect; it becomes the base and the rollout
//!   ends.
//!
//! Risk counters run from the first publish on (`RuleBook::counting`), so a version
//! activated later in the day sees the day's earlier outflow.

use super::Engine;
use crate::command::{ActivateRules, CommandKind, PublishRules, RollbackRules};
use crate::event::{Event, RejectReason};
use crate::ids::{AccountId, RuleVersion, Seq, Timestamp};
use crate::limits::{ROLLOUT_BUCKETS, RULE_CHANGES_MAX, RULE_VERSIONS_MAX};
use crate::rules::{CompiledRules, RuleSet, RuleSetError, compile, rollout_bucket};

/// One published version: its canonical rule set and the compiled form the engine
/// decides with.
#[derive(Clone, Debug)]
pub(crate) struct PublishedVersion {
    pub(crate) rules: RuleSet,
    /// `rules` as canonical TOML, made once: what snapshots store and the hash reads.
    pub(crate) text: String,
    pub(crate) compiled: CompiledRules,
}

impl PublishedVersion {
    pub(crate) fn new(rules: RuleSet, compiled: CompiledRules) -> Self {
        Self { text: rules.to_toml_string(), rules, compiled }
    }
}

/// A change of the rules, for the audit history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleChange {
    /// The command that made it.
    pub seq: Seq,
    pub at: Timestamp,
    pub kind: RuleChangeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleChangeKind {
    Published { version: RuleVersion },
    Activated { version: RuleVersion, share_bps: u16 },
    RolledBack { from: RuleVersion, to: RuleVersion },
}

#[derive(Clone, Debug)]
pub(crate) struct RuleBook {
    /// Version `v` is at index `v - 1`.
    versions: Vec<PublishedVersion>,
    base: RuleVersion,
    rollout: Option<(RuleVersion, u16)>,
    history: Vec<RuleChange>,
}

impl Default for RuleBook {
    fn default() -> Self {
        Self { versions: Vec::new(), base: RuleVersion::NONE, rollout: None, history: Vec::new() }
    }
}

impl RuleBook {
    /// A rule book as a snapshot kept it (the caller checked every version number).
    pub(crate) fn restore(
        versions: Vec<PublishedVersion>,
        base: RuleVersion,
        rollout: Option<(RuleVersion, u16)>,
        history: Vec<RuleChange>,
    ) -> Self {
        Self { versions, base, rollout, history }
    }

    /// Whether any rule set was ever published: from then on, payments are counted.
    pub(crate) fn counting(&self) -> bool {
        !self.versions.is_empty()
    }

    /// Whether any version is in effect for anyone.
    #[inline]
    pub(crate) fn any_in_effect(&self) -> bool {
        self.base != RuleVersion::NONE || self.rollout.is_some()
    }

    /// The version in effect for `account`, and its rules; `None` when no rules apply.
    #[inline]
    pub(crate) fn version_of(&self, account: AccountId) -> Option<(RuleVersion, &CompiledRules)> {
        if !self.any_in_effect() {
            return None;
        }
        let version = match self.rollout {
            Some((version, share_bps)) if rollout_bucket(account) < share_bps => version,
            _ => self.base,
        };
        self.get(version).map(|published| (version, &published.compiled))
    }

    pub(crate) fn get(&self, version: RuleVersion) -> Option<&PublishedVersion> {
        let index = (version.get() as usize).checked_sub(1)?;
        self.versions.get(index)
    }

    pub(crate) fn base(&self) -> RuleVersion {
        self.base
    }

    pub(crate) fn rollout(&self) -> Option<(RuleVersion, u16)> {
        self.rollout
    }

    pub(crate) fn history(&self) -> &[RuleChange] {
        &self.history
    }

    pub(crate) fn versions(&self) -> impl ExactSizeIterator<Item = &PublishedVersion> {
        self.versions.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.history.is_empty()
    }

    fn highest_in_effect(&self) -> RuleVersion {
        self.rollout.map_or(self.base, |(version, _)| version.max(self.base))
    }

    fn published(&self, version: RuleVersion) -> bool {
        version != RuleVersion::NONE && self.get(version).is_some()
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.base == RuleVersion::NONE || self.published(self.base), "the base version was published");
        if let Some((version, share_bps)) = self.rollout {
            assert!(self.published(version), "the rollout's version was published");
            assert!(0 < share_bps && share_bps < ROLLOUT_BUCKETS, "a rollout is of a share strictly between");
        }
        assert!(self.history.len() <= RULE_CHANGES_MAX && self.versions.len() <= RULE_VERSIONS_MAX as usize);
        let published = self.history.iter().filter(|change| matches!(change.kind, RuleChangeKind::Published { .. }));
        assert_eq!(published.count(), self.versions.len(), "every version has its publish in the history");
        for pair in self.history.windows(2) {
            assert!(pair[0].seq < pair[1].seq && pair[0].at <= pair[1].at, "history in command order");
        }
    }
}

impl Engine {
    /// Checks a rule set against this engine's assets, as `PublishRules` will, and
    /// returns its canonical form: what the API can call to explain a rejection.
    pub fn validate_rules(&self, rules: &RuleSet) -> Result<RuleSet, RuleSetError> {
        compile(rules, &self.assets).map(|(canonical, _)| canonical)
    }

    fn record_rule_change(&mut self, kind: RuleChangeKind) {
        let seq = self.last_seq.expect("a command is being applied");
        self.rules.history.push(RuleChange { seq, at: self.now, kind });
    }

    pub(super) fn publish_rules(&mut self, command: &PublishRules, out: &mut Vec<Event>) {
        let reject =
            |out: &mut Vec<Event>, reason| out.push(Event::Rejected { kind: CommandKind::PublishRules, reason });
        if self.rules.versions.len() >= RULE_VERSIONS_MAX as usize || self.rules.history.len() >= RULE_CHANGES_MAX {
            return reject(out, RejectReason::CapacityExceeded);
        }
        let Ok((rules, compiled)) = compile(&command.rules, &self.assets) else {
            return reject(out, RejectReason::InvalidRules);
        };
        self.rules.versions.push(PublishedVersion::new(rules, compiled));
        let version = RuleVersion::new(self.rules.versions.len() as u32);
        self.record_rule_change(RuleChangeKind::Published { version });
        out.push(Event::RulesPublished { version });
    }

    pub(super) fn activate_rules(&mut self, command: ActivateRules, out: &mut Vec<Event>) {
        let reject =
            |out: &mut Vec<Event>, reason| out.push(Event::Rejected { kind: CommandKind::ActivateRules, reason });
        let ActivateRules { version, share_bps } = command;
        if !self.rules.published(version) {
            return reject(out, RejectReason::UnknownRuleVersion);
        }
        if share_bps > ROLLOUT_BUCKETS {
            return reject(out, RejectReason::InvalidRules);
        }
        if self.rules.history.len() >= RULE_CHANGES_MAX {
            return reject(out, RejectReason::CapacityExceeded);
        }
        match share_bps {
            0 => self.rules.rollout = None,
            ROLLOUT_BUCKETS => (self.rules.base, self.rules.rollout) = (version, None),
            share_bps => self.rules.rollout = Some((version, share_bps)),
        }
        self.record_rule_change(RuleChangeKind::Activated { version, share_bps });
        out.push(Event::RulesActivated { version, share_bps });
    }

    pub(super) fn rollback_rules(&mut self, command: RollbackRules, out: &mut Vec<Event>) {
        let reject =
            |out: &mut Vec<Event>, reason| out.push(Event::Rejected { kind: CommandKind::RollbackRules, reason });
        let to = command.to_version;
        if to != RuleVersion::NONE && !self.rules.published(to) {
            return reject(out, RejectReason::UnknownRuleVersion);
        }
        let from = self.rules.highest_in_effect();
        if to >= from {
            return reject(out, RejectReason::InvalidRules);
        }
        if self.rules.history.len() >= RULE_CHANGES_MAX {
            return reject(out, RejectReason::CapacityExceeded);
        }
        (self.rules.base, self.rules.rollout) = (to, None);
        self.record_rule_change(RuleChangeKind::RolledBack { from, to });
        out.push(Event::RulesRolledBack { from, to });
    }

    /// Every rule change, in the order made.
    pub fn rule_history(&self) -> &[RuleChange] {
        self.rules.history()
    }

    /// The canonical rule set published as `version`.
    pub fn rule_set(&self, version: RuleVersion) -> Option<&RuleSet> {
        self.rules.get(version).map(|published| &published.rules)
    }

    /// Versions published so far (they are numbered 1 to this).
    pub fn rule_versions(&self) -> u32 {
        self.rules.versions.len() as u32
    }

    /// The fully active version (`RuleVersion::NONE`: none) and the rollout in
    /// progress, if any, with its share in basis points.
    pub fn rules_in_effect(&self) -> (RuleVersion, Option<(RuleVersion, u16)>) {
        (self.rules.base(), self.rules.rollout())
    }

    /// The version whose rules decide for `account` now (`RuleVersion::NONE`: none).
    pub fn rule_version_of(&self, account: AccountId) -> RuleVersion {
        self.rules.version_of(account).map_or(RuleVersion::NONE, |(version, _)| version)
    }
}
