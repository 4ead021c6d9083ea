//! Commands: what clients and operators ask the engine to do. One type per command,
//! each with its own shape check; `SequencedCommand` is a command as the sequencer
//! stamped it (sequence number and time), which is all the engine ever sees.
//!
//! - `account`: open, freeze, unfreeze, change KYC tier.
//! - `funding`: deposit and withdrawal against an external reference.
//! - `payment`: transfer, authorize / capture / void, split payment, refund.
//! - `order`: add a market; place, cancel, cancel-all, amend orders.
//! - `rules`: publish, activate and roll back rule sets; decide a review hold.
//! - `crossborder`: quote, execute a quote, pay across currencies in one command.

mod account;
mod crossborder;
mod funding;
mod order;
mod payment;
mod rules;

pub use account::{FreezeAccount, OpenAccount, SetKycTier, UnfreezeAccount};
pub use crossborder::{CrossBorderAmount, ExecuteQuote, PayCrossBorder, QuotePayment, RateLimit};
pub use funding::{Deposit, Withdraw};
pub use order::{AddMarket, AmendOrder, CancelAll, CancelOrder, OrderRef, OrderSize, PlaceOrder};
pub use payment::{Authorize, Capture, Refund, SplitLeg, SplitPayment, Transfer, Void};
pub use rules::{ActivateRules, PublishRules, ReviewDecision, RollbackRules};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::event::RejectReason;
use crate::ids::{AccountId, IdempotencyKey, Seq, Timestamp};

/// Everything the engine can be asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    OpenAccount(OpenAccount),
    FreezeAccount(FreezeAccount),
    UnfreezeAccount(UnfreezeAccount),
    SetKycTier(SetKycTier),
    Deposit(Deposit),
    Withdraw(Withdraw),
    Transfer(Transfer),
    Authorize(Authorize),
    Capture(Capture),
    Void(Void),
    SplitPayment(SplitPayment),
    Refund(Refund),
    AddMarket(AddMarket),
    PlaceOrder(PlaceOrder),
    CancelOrder(CancelOrder),
    CancelAll(CancelAll),
    AmendOrder(AmendOrder),
    /// Does nothing but advance command time, so that authorizations expire when no
    /// other command arrives. The sequencer sends one when it has been idle.
    Tick,
    PublishRules(PublishRules),
    ActivateRules(ActivateRules),
    RollbackRules(RollbackRules),
    ReviewDecision(ReviewDecision),
    QuotePayment(QuotePayment),
    ExecuteQuote(ExecuteQuote),
    PayCrossBorder(PayCrossBorder),
}

/// The kind of a command, without its payload: named in rejections and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CommandKind {
    OpenAccount,
    FreezeAccount,
    UnfreezeAccount,
    SetKycTier,
    Deposit,
    Withdraw,
    Transfer,
    Authorize,
    Capture,
    Void,
    SplitPayment,
    Refund,
    AddMarket,
    PlaceOrder,
    CancelOrder,
    CancelAll,
    AmendOrder,
    Tick,
    PublishRules,
    ActivateRules,
    RollbackRules,
    ReviewDecision,
    QuotePayment,
    ExecuteQuote,
    PayCrossBorder,
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::OpenAccount(_) => CommandKind::OpenAccount,
            Command::FreezeAccount(_) => CommandKind::FreezeAccount,
            Command::UnfreezeAccount(_) => CommandKind::UnfreezeAccount,
            Command::SetKycTier(_) => CommandKind::SetKycTier,
            Command::Deposit(_) => CommandKind::Deposit,
            Command::Withdraw(_) => CommandKind::Withdraw,
            Command::Transfer(_) => CommandKind::Transfer,
            Command::Authorize(_) => CommandKind::Authorize,
            Command::Capture(_) => CommandKind::Capture,
            Command::Void(_) => CommandKind::Void,
            Command::SplitPayment(_) => CommandKind::SplitPayment,
            Command::Refund(_) => CommandKind::Refund,
            Command::AddMarket(_) => CommandKind::AddMarket,
            Command::PlaceOrder(_) => CommandKind::PlaceOrder,
            Command::CancelOrder(_) => CommandKind::CancelOrder,
            Command::CancelAll(_) => CommandKind::CancelAll,
            Command::AmendOrder(_) => CommandKind::AmendOrder,
            Command::Tick => CommandKind::Tick,
            Command::PublishRules(_) => CommandKind::PublishRules,
            Command::ActivateRules(_) => CommandKind::ActivateRules,
            Command::RollbackRules(_) => CommandKind::RollbackRules,
            Command::ReviewDecision(_) => CommandKind::ReviewDecision,
            Command::QuotePayment(_) => CommandKind::QuotePayment,
            Command::ExecuteQuote(_) => CommandKind::ExecuteQuote,
            Command::PayCrossBorder(_) => CommandKind::PayCrossBorder,
        }
    }
}

/// A command with the sequence number and time the sequencer gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedCommand {
    pub seq: Seq,
    pub timestamp: Timestamp,
    pub command: Command,
}

/// A money-moving command: it acts for one account (the idempotency scope) under a
/// client-chosen key, and has a fingerprint of its whole content so that a reused key
/// with different content is told apart from an honest retry.
pub(crate) trait Keyed {
    /// The account the command acts for; its keys are a namespace of their own.
    fn principal(&self) -> AccountId;
    fn key(&self) -> IdempotencyKey;
    fn fingerprint(&self) -> u64;
}

/// Builds a content fingerprint from fixed-width fields, one 64-bit word each, on the
/// stack (no byte shuffling: fields go straight into words). Past eight words the full
/// block's hash seeds the next, so every field counts however long the command.
pub(crate) struct Fingerprint {
    words: [u64; Self::WORDS],
    len: usize,
    seed: u64,
}

impl Fingerprint {
    const WORDS: usize = 8;

    pub(crate) fn new(kind: CommandKind) -> Self {
        let mut fingerprint = Self { words: [0; Self::WORDS], len: 0, seed: 0 };
        fingerprint.u64(kind as u64);
        fingerprint
    }

    #[inline]
    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        if self.len == Self::WORDS {
            self.seed = self.block_hash();
            self.len = 0;
        }
        self.words[self.len] = value;
        self.len += 1;
        self
    }

    #[inline]
    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.u64(u64::from(value))
    }

    /// Variable-length bytes: their length, then eight bytes per word.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.u64(bytes.len() as u64);
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.u64(u64::from_le_bytes(word));
        }
        self
    }

    fn block_hash(&self) -> u64 {
        let mut block = [0_u8; Self::WORDS * 8];
        for (index, word) in self.words.iter().enumerate() {
            block[index * 8..index * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        xxh3_64_with_seed(&block[..self.len * 8], self.seed)
    }

    pub(crate) fn finish(&self) -> u64 {
        self.block_hash()
    }
}

/// Shape checks shared by the payment commands.
pub(crate) fn require_positive(amount: crate::money::Amount) -> Result<(), RejectReason> {
    if amount.is_zero() { Err(RejectReason::InvalidAmount) } else { Ok(()) }
}
