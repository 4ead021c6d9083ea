//! `bourse-core`: the domain and the deterministic engine of Bourse.
//!
//! Pure and synchronous: no I/O, no clock, no threads, no randomness. Time and
//! sequence numbers arrive with each command; the same commands always give the same
//! events and the same `Engine::state_hash`.
//!
//! - `limits`: every bound the engine keeps, in one place.
//! - `ids`: newtypes for ids, sequence numbers, timestamps, KYC tiers, references.
//! - `money`: `Amount`, a checked count of minor units.
//! - `asset`: assets with a scale, and the decimal edge (`"12.50"` ⇄ 1250).
//! - `config`: the TOML configuration, validated on load.
//! - `command`: one type per command, and the sequenced command the engine applies.
//! - `event`: what happened, rejections included, and their reasons.
//! - `account`: the account actor's state (balances per asset, tier, freeze).
//! - `rules`: risk and compliance rule sets as data (limits per tier and account,
//!   review thresholds, blocked counterparties), their validation and diff.
//! - `risk`: the account actor's risk counters (daily outflow, payments per minute).
//! - `reconcile`: per-asset running totals and the full reconciliation report.
//! - `route`: the markets a cross-border payment converts through.
//! - `prefetch`: a cache-line prefetch hint (the core's only `unsafe`).
//! - `engine`: the state machine that owns every actor and applies commands.

pub mod account;
pub mod asset;
pub mod book;
pub mod command;
pub mod config;
pub mod engine;
pub mod event;
pub mod ids;
pub mod limits;
pub mod market;
pub mod money;
mod prefetch;
pub mod reconcile;
pub mod risk;
pub mod route;
pub mod rules;
pub mod state;

pub use engine::{Capacity, Depth, Engine, RuleChange, RuleChangeKind, RuleViolation, StateHash};
