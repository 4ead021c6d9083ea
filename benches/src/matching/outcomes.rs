//! What each command came to, read from the events it produced: accepted or rejected
//! (and why), whether it traded, how many fills, and the fees they charged. The
//! verification pass tallies these from the engine; the shadow books predicted them.

use std::collections::BTreeMap;

use bourse_core::book::TimeInForce;
use bourse_core::command::Command;
use bourse_core::event::{CancelReason, Event, RejectReason};

use super::generator::StepKind;

/// The workload's kind of `command` (GTC and IOC placements told apart).
pub(crate) fn kind_of(command: &Command) -> Option<StepKind> {
    match command {
        Command::PlaceOrder(place) if place.time_in_force == TimeInForce::Gtc => Some(StepKind::Gtc),
        Command::PlaceOrder(_) => Some(StepKind::Ioc),
        Command::CancelOrder(_) => Some(StepKind::Cancel),
        Command::AmendOrder(_) => Some(StepKind::Move),
        _ => None,
    }
}

fn kind_index(kind: StepKind) -> usize {
    StepKind::ALL.iter().position(|&each| each == kind).expect("every kind is listed")
}

/// The outcomes of a command stream, as the engine reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Accepted and rejected commands of each kind, in `StepKind::ALL` order.
    pub(crate) accepted: [u64; 4],
    pub(crate) rejected: [u64; 4],
    pub(crate) reasons: BTreeMap<RejectReason, u64>,
    /// Commands with at least one `Trade` event.
    pub(crate) commands_traded: u64,
    pub(crate) trades: u64,
    /// Orders self-trade prevention stopped (the incoming one, under `CancelTaker`).
    pub(crate) self_trade_cancels: u64,
    /// Maker plus taker fees of every trade, in quote minor units (summed over markets).
    pub(crate) fees_minor_units: u128,
    pub(crate) events: u64,
    /// The most events one command produced.
    pub(crate) events_per_command_max: usize,
}

impl Tally {
    /// Classifies one command by the events it produced.
    pub(crate) fn record(&mut self, kind: StepKind, events: &[Event]) {
        let mut accepted = true;
        let mut trades = 0;
        for event in events {
            match event {
                Event::Rejected { reason, .. } => {
                    accepted = false;
                    *self.reasons.entry(*reason).or_default() += 1;
                }
                Event::OrderCancelled { reason: CancelReason::SelfTrade, .. } => self.self_trade_cancels += 1,
                Event::Trade { maker_fee, taker_fee, .. } => {
                    trades += 1;
                    self.fees_minor_units += u128::from(maker_fee.minor_units()) + u128::from(taker_fee.minor_units());
                }
                _ => {}
            }
        }
        let index = kind_index(kind);
        if accepted {
            self.accepted[index] += 1;
        } else {
            self.rejected[index] += 1;
        }
        self.trades += trades;
        self.commands_traded += u64::from(trades > 0);
        self.events += events.len() as u64;
        self.events_per_command_max = self.events_per_command_max.max(events.len());
    }

    pub(crate) fn commands(&self) -> u64 {
        self.accepted.iter().sum::<u64>() + self.rejected.iter().sum::<u64>()
    }

    pub(crate) fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}
