//! The load tool end to end, small and bounded: it starts a real server itself (the
//! `bourse` binary beside it when cargo built one, else the same server code linked
//! into `bourse-load`), drives it with WebSocket and FIX sessions and market-data
//! subscribers, and must find nothing lost, duplicated or mismatched and every balance
//! reconciled, cross-border payments among the rest (the default mix); a short soak must find every acknowledged command in the journal after
//! each SIGKILL.

use std::process::Command;

use serde_json::Value;

fn bourse_load(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_bourse-load")).args(args).output().expect("running bourse-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bourse-load {args:?}: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not a JSON report ({error}):\n{stdout}\nstderr:\n{stderr}"))
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a count: {value}"))
}

/// The `ops` entry of `op` over `transport` in a JSON report.
fn op<'a>(report: &'a Value, transport: &str, op: &str) -> &'a Value {
    report["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .find(|entry| entry["transport"] == transport && entry["op"] == op)
        .unwrap_or_else(|| panic!("no {transport} {op} in {:#}", report["ops"]))
}

#[test]
fn a_short_run_loses_nothing_and_every_balance_reconciles() {
    let report = bourse_load(&[
        "run",
        "--spawn-server",
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--ws",
        "4",
        "--fix",
        "2",
        "--md",
        "2",
        "--json",
        "--quiet",
    ]);
    let verification = &report["verification"];
    assert_eq!(report["passed"], true, "{verification:#}");
    assert_eq!(count(&verification["lost"]), 0);
    assert_eq!(verification["failures"], serde_json::json!({}), "{verification:#}");
    assert_eq!(count(&report["sent"]), 4_000);
    assert_eq!(count(&report["acked"]), 4_000, "every request answered");
    assert!(count(&verification["fills"]) > 0, "orders traded");
    assert!(count(&verification["balances_checked"]) >= 12, "{verification:#}");
    assert_eq!(count(&verification["balance_mismatches"]), 0);
    let books = verification["market_data"].as_array().expect("book checks");
    assert_eq!(books.len(), 2);
    assert!(books.iter().all(|book| book["in_sync"] == true && book["differences"] == 0), "{books:#?}");
    // Not vacuous: each subscriber followed a book that had levels and updates.
    assert!(books.iter().all(|book| count(&book["levels"]) > 0 && count(&book["market_seq"]) > 0), "{books:#?}");
    let transports: Vec<&str> =
        report["ops"].as_array().expect("ops").iter().filter_map(|op| op["transport"].as_str()).collect();
    assert!(transports.contains(&"ws") && transports.contains(&"fix"), "{transports:?}");
    // Cross-border payments traded against the load's books and reconciled above; the
    // direct ones and the executed quotes both paid (each its rejections aside).
    for name in ["pay_cross_border", "execute_quote", "quote_payment"] {
        let entry = op(&report, "ws", name);
        assert!(count(&entry["ok"]) > 0, "no {name} succeeded: {entry:#}");
    }
    let paid = op(&report, "ws", "pay_cross_border");
    assert!(count(&paid["ok"]) * 2 > count(&paid["sent"]), "most direct payments pay: {paid:#}");
    let ladder = &verification["ladder"];
    assert!(count(&ladder["passes"]) > 0 && ladder["error"].is_null(), "the ladder was looked after: {ladder:#}");
    assert_eq!(report["server_stopped_cleanly"], true);
}

#[test]
fn payments_that_eat_the_liquidity_ladder_get_it_topped_up() {
    let report = bourse_load(&[
        "run",
        "--spawn-server",
        "--mix",
        "pay_cross_border=1",
        "--rate",
        "2000",
        "--duration",
        "3s",
        "--ws",
        "4",
        "--fix",
        "0",
        "--md",
        "0",
        "--json",
        "--quiet",
    ]);
    let verification = &report["verification"];
    assert_eq!(report["passed"], true, "{verification:#}");
    let ladder = &verification["ladder"];
    assert!(ladder["error"].is_null(), "{ladder:#}");
    assert!(
        count(&ladder["orders_placed"]) > 0 && count(&ladder["lots_placed"]) > 0,
        "levels were topped up: {ladder:#}"
    );
    let paid = op(&report, "ws", "pay_cross_border");
    assert_eq!(count(&paid["sent"]), 6_000);
    // Only the books moving under a payment refuse it; the ladder never runs dry.
    assert_eq!(paid["rejected"].get("insufficient_liquidity"), None, "{paid:#}");
    assert!(count(&paid["ok"]) * 10 > count(&paid["sent"]) * 9, "{paid:#}");
}

#[test]
fn a_short_soak_finds_every_acknowledged_command_after_each_kill() {
    let report = bourse_load(&[
        "soak",
        "--duration",
        "7s",
        "--kill-every",
        "3s",
        "--rate",
        "1000",
        "--ws",
        "3",
        "--fix",
        "1",
        "--md",
        "1",
        "--json",
        "--quiet",
    ]);
    let soak = &report["soak"];
    assert_eq!(soak["passed"], true, "{soak:#}");
    let restarts = soak["restarts"].as_array().expect("restarts");
    assert!(restarts.len() >= 2, "at least one kill and the final stop: {soak:#}");
    assert_eq!(restarts[0]["how"], "kill");
    for restart in restarts {
        assert_eq!(count(&restart["missing"]), 0, "{restart:#}");
        assert_eq!(count(&restart["different"]), 0, "{restart:#}");
        assert_eq!(count(&restart["balances_different"]), 0, "{restart:#}");
        assert!(count(&restart["balances_checked"]) > 0, "{restart:#}");
    }
    assert!(count(&soak["acknowledged"]) > 1_000, "{soak:#}");
    assert_eq!(soak["acknowledged"], soak["accounted_for"]);
    assert_eq!(report["passed"], true, "{:#}", report["verification"]);
}
