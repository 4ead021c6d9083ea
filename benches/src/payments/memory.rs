//! Memory per account, from the counting allocator: the bytes still allocated after
//! an engine is created and the setup commands run, divided by the number of accounts.
//! Measured three ways, because each answers a different question:
//!
//! - pre-sized, accounts only: `Capacity { accounts: N }`, N opens, no deposits — the
//!   account state alone.
//! - pre-sized, two assets: `Capacity { accounts: N, idempotency_keys: 2N }`, N opens
//!   and 2N deposits — what an account with two funded assets costs, including the
//!   idempotency entries its two deposits leave behind for a day of command time.
//! - grown from empty: `Capacity::default()`, same commands — what it costs when
//!   tables double as they fill (live bytes, with their slack), and every byte
//!   allocated on the way (including the copies growth freed).

use bourse_core::config::Config;
use bourse_core::{Capacity, Engine};

use super::EVENTS_CAPACITY;
use super::workload::{SETUP_COMMANDS_PER_ACCOUNT, setup_commands};
use crate::alloc_counter::{AllocDelta, AllocSnapshot};

/// Bytes per account, measured three ways (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Footprint {
    pub(crate) account_only_presized: f64,
    pub(crate) two_assets_presized: f64,
    pub(crate) two_assets_grown_live: f64,
    pub(crate) two_assets_grown_allocated: f64,
}

pub(crate) fn measure(config: &Config, accounts: u32) -> Footprint {
    let count = accounts as usize;
    let setup_count = (SETUP_COMMANDS_PER_ACCOUNT * u64::from(accounts)) as usize;
    let per_account = |bytes: i128| bytes as f64 / f64::from(accounts);

    let opened = allocated_by(config, Capacity { accounts: count, ..Capacity::default() }, count, accounts);
    let funded = allocated_by(
        config,
        Capacity { accounts: count, idempotency_keys: 2 * count, ..Capacity::default() },
        setup_count,
        accounts,
    );
    let grown = allocated_by(config, Capacity::default(), setup_count, accounts);
    Footprint {
        account_only_presized: per_account(opened.bytes_live()),
        two_assets_presized: per_account(funded.bytes_live()),
        two_assets_grown_live: per_account(grown.bytes_live()),
        two_assets_grown_allocated: per_account(i128::from(grown.bytes_allocated)),
    }
}

/// What creating an engine with `capacity` and applying the first `commands` setup
/// commands allocated.
fn allocated_by(config: &Config, capacity: Capacity, commands: usize, accounts: u32) -> AllocDelta {
    let mut events = Vec::with_capacity(EVENTS_CAPACITY);
    let before = AllocSnapshot::now();
    let mut engine = Engine::with_capacity(config, capacity);
    for command in setup_commands(accounts).take(commands) {
        events.clear();
        engine.apply(&command, &mut events);
    }
    let allocated = AllocSnapshot::now().since(before);
    assert_eq!(engine.account_count(), accounts as usize, "every account opened");
    allocated
}
