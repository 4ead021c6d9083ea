//! `export`: every balance of a state (the head by default, read-only; or the newest
//! valid snapshot, or a named one) as CSV or JSON, amounts as decimal strings at their
//! asset's scale.
//!
//! - CSV: a header `account,asset,available,held`, then one row per balance. No field
//!   needs quoting: account ids and amounts are digits and a point, asset codes
//!   upper-case letters and digits.
//! - JSON: `{"source":…,"seq":…,"state_hash":…,"balances":[{"account":0,"asset":"USD",
//!   "available":"12.50","held":"0.00"},…]}`, written row by row.
//!
//! Rows come in account order, then asset order, as the engine keeps them.

use std::io::{BufWriter, Write, stdout};
use std::process::ExitCode;

use anyhow::Result;
use bourse_core::Engine;
use bourse_core::ids::AccountId;
use serde::Serialize;

use super::common::{DataDir, Source, load_state};
use super::{ExportArgs, ExportFormat};

/// One balance, as exported.
#[derive(Debug, Serialize)]
struct Row<'a> {
    account: u32,
    asset: &'a str,
    available: String,
    held: String,
}

/// Calls `visit` with every balance of `engine`, in account then asset order.
fn for_each_row(engine: &Engine, mut visit: impl FnMut(Row<'_>) -> Result<()>) -> Result<u64> {
    let assets = engine.assets();
    let codes: Vec<String> = assets.iter().map(|(_, asset)| asset.code().to_string()).collect();
    let mut rows = 0;
    for index in 0..engine.account_count() as u32 {
        let Some(account) = engine.account(AccountId::new(index)) else { continue };
        for balance in account.balances() {
            let asset = assets.get(balance.asset()).expect("balances name known assets");
            visit(Row {
                account: index,
                asset: &codes[usize::from(balance.asset().get())],
                available: asset.format_amount(balance.available()),
                held: asset.format_amount(balance.held()),
            })?;
            rows += 1;
        }
    }
    Ok(rows)
}

pub(super) fn run(args: &ExportArgs, quiet: bool) -> Result<ExitCode> {
    let dir = DataDir::open_read_only(&args.data.data_dir)?;
    let source = match (&args.snapshot, args.newest) {
        (Some(snapshot), _) => Source::Snapshot(snapshot),
        (None, true) => Source::Newest,
        (None, false) => Source::Head,
    };
    let state = load_state(&dir, source, args.config.config.as_deref(), quiet)?;
    let engine = &state.engine;
    let mut out = BufWriter::new(stdout().lock());
    let rows = match args.format {
        ExportFormat::Csv => write_csv(engine, &mut out)?,
        ExportFormat::Json => write_json(engine, &state.origin, &mut out)?,
    };
    out.flush()?;
    if !quiet {
        let seq = engine.last_seq().map_or(0, bourse_core::ids::Seq::get);
        eprintln!("exported {rows} balance(s) at sequence {seq} from {}", state.origin);
    }
    Ok(ExitCode::SUCCESS)
}

fn write_csv(engine: &Engine, out: &mut impl Write) -> Result<u64> {
    writeln!(out, "account,asset,available,held")?;
    for_each_row(engine, |row| {
        writeln!(out, "{},{},{},{}", row.account, row.asset, row.available, row.held)?;
        Ok(())
    })
}

fn write_json(engine: &Engine, origin: &str, out: &mut impl Write) -> Result<u64> {
    #[derive(Serialize)]
    struct Head<'a> {
        source: &'a str,
        seq: Option<u64>,
        state_hash: String,
    }
    let head = Head {
        source: origin,
        seq: engine.last_seq().map(bourse_core::ids::Seq::get),
        state_hash: engine.state_hash().to_string(),
    };
    // The header's fields, then the rows streamed into its "balances" array.
    let head = serde_json::to_string(&head)?;
    let fields = head.strip_suffix('}').expect("an object ends with a brace");
    write!(out, "{fields},\"balances\":[")?;
    let mut first = true;
    let rows = for_each_row(engine, |row| {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        serde_json::to_writer(&mut *out, &row)?;
        Ok(())
    })?;
    writeln!(out, "\n]}}")?;
    Ok(rows)
}
