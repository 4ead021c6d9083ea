//! What each command came to, read from the events it produced: accepted, rejected
//! (and why) or replayed. The workload predicts these counts; the latency pass tallies
//! them from the engine, and the two must agree.

use std::collections::BTreeMap;

use bourse_core::command::CommandKind;
use bourse_core::event::{Event, RejectReason};

/// Accepted and rejected commands of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcomes {
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
}

/// Outcomes per command kind, in a stable order.
pub(crate) type OutcomesByKind = BTreeMap<CommandKind, Outcomes>;

/// Counts one outcome of `kind`.
pub(crate) fn count(outcomes: &mut OutcomesByKind, kind: CommandKind, accepted: bool) {
    let entry = outcomes.entry(kind).or_default();
    if accepted {
        entry.accepted += 1;
    } else {
        entry.rejected += 1;
    }
}

/// Totals over every kind: (accepted, rejected).
pub(crate) fn totals(outcomes: &OutcomesByKind) -> (u64, u64) {
    outcomes.values().fold((0, 0), |(accepted, rejected), each| (accepted + each.accepted, rejected + each.rejected))
}

/// The outcomes of a command stream, as the engine reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) outcomes: OutcomesByKind,
    pub(crate) reasons: BTreeMap<RejectReason, u64>,
    /// Commands answered from the idempotency table: none, in a workload whose keys
    /// are all unique.
    pub(crate) replayed: u64,
}

impl Tally {
    /// Classifies one command of `kind` by the events it produced.
    pub(crate) fn record(&mut self, kind: CommandKind, events: &[Event]) {
        let mut accepted = true;
        for event in events {
            match event {
                Event::Rejected { reason, .. } => {
                    accepted = false;
                    *self.reasons.entry(*reason).or_default() += 1;
                }
                Event::Replayed { .. } => {
                    self.replayed += 1;
                    return;
                }
                _ => {}
            }
        }
        count(&mut self.outcomes, kind, accepted);
    }
}
