//! `rules`: the audit trail of the risk and compliance rules. The head is recovered
//! read-only (the newest valid snapshot, whose state carries the history up to it,
//! plus the journal after it), so the listing has every change ever made: each
//! publish, activation (with its share) and rollback, with the sequence number of the
//! command that made it and its command time. Then what is in effect and how many
//! payments wait for review.
//!
//! - `--show V`: version V's rule set, as canonical TOML (what `PublishRules` stored).
//! - `--diff A B`: what changed from version A to version B, one line per value.
//! - `--json`: the listing as one JSON object.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Result, bail};
use bourse_core::ids::RuleVersion;
use bourse_core::limits::ROLLOUT_BUCKETS;
use bourse_core::rules::{RuleSet, diff};
use bourse_core::{Engine, RuleChange, RuleChangeKind};
use serde_json::json;

use super::RulesArgs;
use super::common::{DataDir, Source, format_time, load_state};

pub(super) fn run(args: &RulesArgs, quiet: bool) -> Result<ExitCode> {
    let dir = DataDir::open_read_only(&args.data.data_dir)?;
    let state = load_state(&dir, Source::Head, args.config.config.as_deref(), quiet)?;
    let engine = &state.engine;
    if let Some(version) = args.show {
        let rules = rule_set(engine, version)?;
        let published = engine.rule_history().iter().find(|change| change.kind == published_as(version));
        let mut text = format!("# rule version {version}");
        if let Some(change) = published {
            let _ = write!(text, ", published by sequence {} at {}", change.seq.get(), format_time(change.at));
        }
        println!("{text}\n{}", rules.to_toml_string().trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    if let [from, to] = args.diff[..] {
        let lines = diff(rule_set(engine, from)?, rule_set(engine, to)?);
        if lines.is_empty() {
            println!("versions {from} and {to} set the same limits");
        }
        for line in lines {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        println!("{}", listing_json(engine, &state.origin));
    } else {
        print!("{}", listing_text(engine, &state.origin, &dir.path.display().to_string()));
    }
    Ok(ExitCode::SUCCESS)
}

fn rule_set(engine: &Engine, version: u32) -> Result<&RuleSet> {
    match engine.rule_set(RuleVersion::new(version)) {
        Some(rules) => Ok(rules),
        None => bail!("there is no rule version {version}: versions 1 to {} were published", engine.rule_versions()),
    }
}

fn published_as(version: u32) -> RuleChangeKind {
    RuleChangeKind::Published { version: RuleVersion::new(version) }
}

fn share(share_bps: u16) -> String {
    format!("{}.{:02}%", share_bps / 100, share_bps % 100)
}

fn version_name(version: RuleVersion) -> String {
    if version == RuleVersion::NONE { "no rules (version 0)".to_owned() } else { format!("version {version}") }
}

/// One change in words.
fn describe(engine: &Engine, change: &RuleChange) -> String {
    match change.kind {
        RuleChangeKind::Published { version } => {
            let summary = engine.rule_set(version).map_or_else(String::new, |rules| {
                let data = rules.data();
                let mut parts = Vec::new();
                if !data.description.is_empty() {
                    parts.push(format!("{:?}", data.description));
                }
                let tiers: Vec<String> = data.tiers.keys().map(|tier| tier.get().to_string()).collect();
                if !tiers.is_empty() {
                    parts.push(format!("tiers {}", tiers.join(", ")));
                }
                if !data.accounts.is_empty() {
                    parts.push(format!("{} account(s) with their own limits", data.accounts.len()));
                }
                if !data.blocked_counterparties.is_empty() {
                    parts.push(format!("{} blocked for all", data.blocked_counterparties.len()));
                }
                if parts.is_empty() { " (no limits)".to_owned() } else { format!(" ({})", parts.join("; ")) }
            });
            format!("published version {version}{summary}")
        }
        RuleChangeKind::Activated { version, share_bps: ROLLOUT_BUCKETS } => {
            format!("activated version {version} for all accounts")
        }
        RuleChangeKind::Activated { version, share_bps: 0 } => {
            format!("ended the rollout (activate version {version} at 0 bps)")
        }
        RuleChangeKind::Activated { version, share_bps } => {
            format!("rolled out version {version} to {} of accounts (buckets below {share_bps})", share(share_bps))
        }
        RuleChangeKind::RolledBack { from, to } => {
            format!("rolled back from version {from} to {}", version_name(to))
        }
    }
}

fn in_effect(engine: &Engine) -> String {
    let (base, rollout) = engine.rules_in_effect();
    let others = match base {
        RuleVersion::NONE => "no rules".to_owned(),
        base => format!("version {base}"),
    };
    match rollout {
        None if base == RuleVersion::NONE => "no rules".to_owned(),
        None => format!("{others} for every account"),
        Some((version, share_bps)) => format!(
            "version {version} for {} of accounts (buckets below {share_bps}), {others} for the others",
            share(share_bps)
        ),
    }
}

fn listing_text(engine: &Engine, origin: &str, dir: &str) -> String {
    let mut out = format!("rule changes in {dir} ({origin})\n");
    let history = engine.rule_history();
    if history.is_empty() {
        out.push_str("  no rule set was ever published\n");
    } else {
        let _ = writeln!(out, "  {:>10}  {:<31}  CHANGE", "SEQUENCE", "TIME (UTC)");
        for change in history {
            let _ = writeln!(
                out,
                "  {:>10}  {:<31}  {}",
                change.seq.get(),
                format_time(change.at),
                describe(engine, change)
            );
        }
    }
    let _ = writeln!(out, "in effect: {}", in_effect(engine));
    let _ = writeln!(out, "payments waiting for review: {}", engine.pending_reviews().count());
    out
}

fn listing_json(engine: &Engine, origin: &str) -> serde_json::Value {
    let changes: Vec<serde_json::Value> = engine
        .rule_history()
        .iter()
        .map(|change| {
            let mut line = json!({
                "seq": change.seq.get(),
                "timestamp": change.at.as_nanos(),
                "time": format_time(change.at),
                "description": describe(engine, change),
            });
            let fields = match change.kind {
                RuleChangeKind::Published { version } => json!({"change": "published", "version": version.get()}),
                RuleChangeKind::Activated { version, share_bps } => {
                    json!({"change": "activated", "version": version.get(), "share_bps": share_bps})
                }
                RuleChangeKind::RolledBack { from, to } => {
                    json!({"change": "rolled_back", "from": from.get(), "version": to.get()})
                }
            };
            if let (Some(line), Some(fields)) = (line.as_object_mut(), fields.as_object()) {
                line.extend(fields.clone());
            }
            line
        })
        .collect();
    let (base, rollout) = engine.rules_in_effect();
    let rollout = rollout.map(|(version, share_bps)| json!({"version": version.get(), "share_bps": share_bps}));
    json!({
        "source": origin,
        "seq": engine.last_seq().map_or(0, bourse_core::ids::Seq::get),
        "versions": engine.rule_versions(),
        "changes": changes,
        "in_effect": {"version": base.get(), "rollout": rollout},
        "pending_reviews": engine.pending_reviews().count(),
    })
}
