//! `inspect`: one state (a snapshot, the newest valid one, or the head) summed up:
//! sequence, time, state hash, how many of each thing it holds, and per asset the
//! running totals formatted at the asset's scale. Text or `--json`.

use std::io::{Write, stdout};
use std::process::ExitCode;

use anyhow::Result;
use bourse_core::Engine;
use bourse_core::ids::AccountId;
use serde::Serialize;

use super::InspectArgs;
use super::common::{DataDir, Source, format_minor, load_state};

#[derive(Debug, Serialize)]
struct Summary {
    source: String,
    /// The last command applied; `None` for an engine that applied none.
    seq: Option<u64>,
    timestamp_ns: u64,
    state_hash: String,
    counts: Counts,
    assets: Vec<AssetSummary>,
}

#[derive(Debug, Serialize)]
struct Counts {
    accounts: usize,
    balances: usize,
    payments: usize,
    idempotency_entries: usize,
    markets: usize,
    resting_orders: usize,
}

/// One asset's running totals, as decimal strings at its scale.
#[derive(Debug, Serialize)]
struct AssetSummary {
    code: String,
    scale: u32,
    in_accounts: String,
    fees: String,
    /// The house's remainder account (cross-border rounding and surpluses).
    remainders: String,
    deposited: String,
    withdrawn: String,
}

pub(super) fn run(args: &InspectArgs, quiet: bool) -> Result<ExitCode> {
    let dir = DataDir::open_read_only(&args.data.data_dir)?;
    let source = match (&args.snapshot, args.newest) {
        (Some(snapshot), _) => Source::Snapshot(snapshot),
        (None, true) => Source::Newest,
        (None, false) => Source::Head,
    };
    let state = load_state(&dir, source, args.config.config.as_deref(), quiet)?;
    let summary = summarize(&state.engine, state.origin);
    let mut out = stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        print_text(&summary, &mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn summarize(engine: &Engine, source: String) -> Summary {
    let account_count = engine.account_count();
    let balances = (0..account_count as u32)
        .filter_map(|index| engine.account(AccountId::new(index)))
        .map(|account| account.balances().len())
        .sum();
    let counts = Counts {
        accounts: account_count,
        balances,
        payments: engine.payment_records(),
        idempotency_entries: engine.idempotency_entries(),
        markets: engine.markets().len(),
        resting_orders: engine.orders().len(),
    };
    let assets = engine
        .assets()
        .iter()
        .zip(engine.totals())
        .map(|((_, asset), totals)| AssetSummary {
            code: asset.code().to_string(),
            scale: asset.scale(),
            in_accounts: asset.format_amount(totals.in_accounts()),
            fees: asset.format_amount(totals.fees()),
            remainders: asset.format_amount(totals.remainders()),
            deposited: format_minor(asset, totals.deposited()),
            withdrawn: format_minor(asset, totals.withdrawn()),
        })
        .collect();
    Summary {
        source,
        seq: engine.last_seq().map(bourse_core::ids::Seq::get),
        timestamp_ns: engine.now().as_nanos(),
        state_hash: engine.state_hash().to_string(),
        counts,
        assets,
    }
}

fn print_text(summary: &Summary, out: &mut impl Write) -> Result<()> {
    let counts = &summary.counts;
    let seq = summary.seq.map_or_else(|| "none (no command applied)".to_owned(), |seq| seq.to_string());
    let lines = [
        ("source", summary.source.clone()),
        ("sequence", seq),
        ("time", format!("{} ns", summary.timestamp_ns)),
        ("state hash", summary.state_hash.clone()),
        ("accounts", counts.accounts.to_string()),
        ("balances", counts.balances.to_string()),
        ("payments", counts.payments.to_string()),
        ("idempotency entries", counts.idempotency_entries.to_string()),
        ("markets", counts.markets.to_string()),
        ("resting orders", counts.resting_orders.to_string()),
    ];
    for (label, value) in lines {
        writeln!(out, "{label:<20} {value}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<12} {:>5} {:>24} {:>24} {:>24} {:>24} {:>24}",
        "ASSET", "SCALE", "IN ACCOUNTS", "FEES", "REMAINDERS", "DEPOSITED", "WITHDRAWN"
    )?;
    for asset in &summary.assets {
        writeln!(
            out,
            "{:<12} {:>5} {:>24} {:>24} {:>24} {:>24} {:>24}",
            asset.code, asset.scale, asset.in_accounts, asset.fees, asset.remainders, asset.deposited, asset.withdrawn
        )?;
    }
    Ok(())
}
