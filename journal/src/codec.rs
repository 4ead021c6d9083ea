//! What the records carry: an engine `Command` (postcard, compact and versioned by
//! the record's kind), or a checkpoint of the engine's state hash.

use bourse_core::StateHash;
use bourse_core::command::Command;
use bourse_core::ids::Seq;
use serde::{Deserialize, Serialize};

use crate::error::JournalError;
use crate::record::KIND_CHECKPOINT;

/// A record's kind for `command`: its `CommandKind`.
pub fn command_kind(command: &Command) -> u16 {
    command.kind() as u16
}

/// Appends `command`'s encoding to `out`.
pub fn encode_command(command: &Command, out: &mut Vec<u8>) {
    out.clear();
    let encoded = postcard::to_io(command, &mut *out);
    encoded.expect("commands always serialize to memory");
}

pub fn decode_command(seq: Seq, kind: u16, payload: &[u8]) -> Result<Command, JournalError> {
    let command: Command =
        postcard::from_bytes(payload).map_err(|error| JournalError::Decode { seq, reason: error.to_string() })?;
    if command_kind(&command) != kind {
        return Err(JournalError::Decode { seq, reason: format!("kind {kind} does not match the payload's command") });
    }
    Ok(command)
}

/// The engine's state hash after applying every command up to `applied`, recorded
/// when a snapshot is taken so that recovery can prove itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub applied: Seq,
    pub state_hash: u128,
}

impl Checkpoint {
    pub fn new(applied: Seq, state_hash: StateHash) -> Self {
        Self { applied, state_hash: state_hash.0 }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        postcard::to_io(self, &mut *out).expect("checkpoints always serialize to memory");
    }

    pub fn decode(seq: Seq, kind: u16, payload: &[u8]) -> Result<Self, JournalError> {
        if kind != KIND_CHECKPOINT {
            return Err(JournalError::Decode { seq, reason: "not a checkpoint".into() });
        }
        postcard::from_bytes(payload).map_err(|error| JournalError::Decode { seq, reason: error.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use bourse_core::command::{CommandKind, CrossBorderAmount, ExecuteQuote, PayCrossBorder, QuotePayment, RateLimit};
    use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, QuoteId, Timestamp};
    use bourse_core::money::Amount;

    use super::*;

    #[test]
    fn cross_border_commands_round_trip_under_their_own_kinds() {
        let amount = Amount::new(150_000).expect("an amount");
        let (payer, payee) = (AccountId::new(3), AccountId::new(4));
        let (from, to) = (AssetId::new(1), AssetId::new(2));
        let commands = [
            Command::QuotePayment(QuotePayment {
                by: payer,
                payee,
                from,
                to,
                amount: CrossBorderAmount::Receive(amount),
                max_hops: Some(3),
                ttl: Some(Timestamp::from_nanos(5_000_000_000)),
            }),
            Command::ExecuteQuote(ExecuteQuote { by: payer, key: IdempotencyKey::new(9), quote: QuoteId::new(17) }),
            Command::PayCrossBorder(PayCrossBorder {
                by: payer,
                key: IdempotencyKey::new(10),
                payee,
                from,
                to,
                amount: CrossBorderAmount::Send(amount),
                limit: RateLimit::MinReceive(amount),
                max_hops: None,
            }),
        ];
        // Kinds are journaled as numbers: new kinds are appended, never renumbered.
        let kinds = [CommandKind::QuotePayment, CommandKind::ExecuteQuote, CommandKind::PayCrossBorder];
        assert_eq!(kinds.map(|kind| kind as u16), [18, 19, 20]);
        let mut payload = Vec::new();
        for command in commands {
            encode_command(&command, &mut payload);
            let kind = command_kind(&command);
            assert_eq!(decode_command(Seq::new(1), kind, &payload).expect("decodes"), command);
            assert!(decode_command(Seq::new(1), kind + 1, &payload).is_err(), "a payload under another kind");
        }
    }
}
