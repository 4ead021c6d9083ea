//! What the records carry: an engine `Command` (postcard, compact and versioned by
//! the record's kind), or a checkpoint of the engine's state hash.

use bourse_core::StateHash;
use bourse_core::command::Command;
use bourse_core::ids::Seq;
use serde::{Deserialize, Serialize};

use crate::error::JournalError;
use crate::record::KIND_CHECKPOINT;

/// A record's kind for `command`: its `CommandKind` discriminant (`Tick` is 17; the
/// rule commands `PublishRules`, `ActivateRules`, `RollbackRules`, `ReviewDecision`
/// are 18 to 21). Kinds are appended, never renumbered, so old journals still decode.
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
    use std::collections::BTreeMap;

    use bourse_core::command::{
        ActivateRules, CommandKind, CrossBorderAmount, ExecuteQuote, PayCrossBorder, PublishRules, QuotePayment,
        RateLimit, ReviewDecision, RollbackRules,
    };
    use bourse_core::ids::{AccountId, AssetId, HoldId, IdempotencyKey, KycTier, QuoteId, RuleVersion, Timestamp};
    use bourse_core::limits::{
        ACCOUNTS_MAX, ASSET_CODE_BYTES_MAX, ORDERS_PER_ACCOUNT_MAX, PAYMENTS_PER_MINUTE_MAX, RULE_AMOUNT_ENTRIES_MAX,
        RULE_AMOUNT_TEXT_BYTES_MAX, RULE_BLOCKED_MAX, RULE_DESCRIPTION_BYTES_MAX, RULE_OVERRIDES_MAX,
    };
    use bourse_core::money::Amount;
    use bourse_core::rules::{Limits, RuleSet, RuleSetData};

    use super::*;
    use crate::record::PAYLOAD_BYTES_MAX;

    fn round_trip(command: &Command) -> usize {
        let mut payload = Vec::new();
        encode_command(command, &mut payload);
        let decoded = decode_command(Seq::new(1), command_kind(command), &payload).unwrap();
        assert_eq!(&decoded, command);
        payload.len()
    }

    #[test]
    fn rule_commands_have_their_own_kinds_and_round_trip() {
        let commands = [
            Command::PublishRules(PublishRules {
                rules: RuleSet::from_toml_str("[tiers.1]\ndaily_outflow = { USD = \"10.00\" }").unwrap(),
            }),
            Command::ActivateRules(ActivateRules { version: RuleVersion::new(1), share_bps: 2_500 }),
            Command::RollbackRules(RollbackRules { to_version: RuleVersion::NONE }),
            Command::ReviewDecision(ReviewDecision { hold: HoldId::new(3), approve: true }),
        ];
        let kinds: Vec<u16> = commands.iter().map(command_kind).collect();
        assert_eq!(kinds, [18, 19, 20, 21]);
        for command in &commands {
            round_trip(command);
        }
    }

    /// The largest rule set the bounds allow, every string at its longest and every id
    /// at its widest, still fits one journal record: a rule set that passed
    /// `RuleSet::new` can never stop the sequencer with `PayloadTooLarge`.
    #[test]
    fn the_largest_rule_set_fits_a_record() {
        let widest = |index: usize| AccountId::new((ACCOUNTS_MAX - 1 - index) as u32);
        let code = |index: usize| format!("A{index:0>width$}", width = ASSET_CODE_BYTES_MAX - 1);
        let amount = "9".repeat(RULE_AMOUNT_TEXT_BYTES_MAX);
        let full = |blocked: std::ops::Range<usize>, amounts: std::ops::Range<usize>| Limits {
            max_open_orders: Some(ORDERS_PER_ACCOUNT_MAX),
            payments_per_minute: Some(PAYMENTS_PER_MINUTE_MAX),
            blocked_counterparties: blocked.map(widest).collect(),
            max_order_notional: amounts.map(|index| (code(index), amount.clone())).collect(),
            ..Limits::default()
        };
        let tiers: BTreeMap<KycTier, Limits> =
            (0..=9).map(|tier| (KycTier::new(tier).unwrap(), full(0..0, 0..0))).collect();
        let mut accounts: BTreeMap<AccountId, Limits> =
            (0..RULE_OVERRIDES_MAX).map(|index| (widest(index), Limits::default())).collect();
        let first = *accounts.keys().next().unwrap();
        accounts.insert(first, full(0..RULE_BLOCKED_MAX, 0..RULE_AMOUNT_ENTRIES_MAX));
        let data = RuleSetData {
            description: "é".repeat(RULE_DESCRIPTION_BYTES_MAX / 2),
            blocked_counterparties: Vec::new(),
            tiers,
            accounts,
        };
        let rules = RuleSet::new(data).expect("at every bound, not past one");
        let bytes = round_trip(&Command::PublishRules(PublishRules { rules }));
        assert!(bytes <= PAYLOAD_BYTES_MAX, "{bytes} bytes");
        assert!(bytes > PAYLOAD_BYTES_MAX / 2, "{bytes} bytes: the test builds a large rule set");
    }

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
        assert_eq!(kinds.map(|kind| kind as u16), [22, 23, 24]);
        let mut payload = Vec::new();
        for command in commands {
            encode_command(&command, &mut payload);
            let kind = command_kind(&command);
            assert_eq!(decode_command(Seq::new(1), kind, &payload).expect("decodes"), command);
            assert!(decode_command(Seq::new(1), kind + 1, &payload).is_err(), "a payload under another kind");
        }
    }
}
