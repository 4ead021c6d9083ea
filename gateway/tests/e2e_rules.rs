//! Risk rules over the API, end to end: publish versions (JSON and TOML), activate,
//! see a rule refuse a payment naming rule and version, a review hold approved and
//! rejected, diff, roll back; and the rules survive a restart.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, balance, deposit, ok, open_account};
use serde_json::json;

#[tokio::test]
async fn rules_are_published_activated_enforced_reviewed_diffed_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let mut admin = server.admin_http();
    let a = open_account(&mut admin, 1).await;
    let b = open_account(&mut admin, 2).await;
    deposit(&mut admin, a, "USD", "10000.00").await;

    let v1 = json!({"tiers": {"0": {"max_single_payment": {"USD": "1000.00"}, "review_threshold": {"USD": "500.00"}}}});
    let published = ok(admin.call("publish_rules", json!({"rules": v1})));
    assert_eq!(published["events"][0]["type"], "rules_published", "{published}");
    // Published but not active: nothing is refused yet.
    ok(admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1500.00", "key": "t1"})));
    ok(admin.call("activate_rules", json!({"version": 1})));

    let refused = admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1000.01", "key": "t2"}));
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "rule_violation", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_single_payment") && message.contains("version 1"), "{message}");

    // Above the review threshold: held, then approved.
    let held = ok(admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "600.00", "key": "t3"})));
    let hold_event =
        held["events"].as_array().unwrap().iter().find(|e| e["type"] == "held_for_review").unwrap().clone();
    let hold = hold_event["hold"].as_u64().unwrap();
    assert_eq!(held["result"]["held_for_review"]["hold"], hold, "the reply's result shows the hold: {held}");
    assert_eq!(held["result"]["held_for_review"]["rule"], "review_threshold", "{held}");
    assert_eq!(balance(&mut admin, b, "USD").await, Some(("1500.00".into(), "0.00".into())), "not paid while held");
    let approved = ok(admin.call("review_decision", json!({"hold": hold, "approve": true})));
    assert!(approved["events"].as_array().unwrap().iter().any(|e| e["type"] == "transferred"), "{approved}");
    assert_eq!(balance(&mut admin, b, "USD").await, Some(("2100.00".into(), "0.00".into())));

    // Another held and rejected: the funds come back.
    let held = ok(admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "700.00", "key": "t4"})));
    let hold = held["events"].as_array().unwrap().iter().find(|e| e["type"] == "held_for_review").unwrap()["hold"]
        .as_u64()
        .unwrap();
    ok(admin.call("review_decision", json!({"hold": hold, "approve": false})));
    assert_eq!(balance(&mut admin, a, "USD").await, Some(("7900.00".into(), "0.00".into())));

    // Version 2 from TOML; the diff reads; a rollout to everyone, then a rollback.
    let v2 = "[tiers.0]\nmax_single_payment = { USD = \"2000.00\" }\n";
    ok(admin.call("publish_rules", json!({"rules_toml": v2})));
    let diff = ok(admin.call("diff_rules", json!({"a": 1, "b": 2})));
    let lines = diff["result"]["diff"].as_array().unwrap();
    assert!(lines.iter().any(|line| line.as_str().unwrap().contains("2000.00")), "{diff}");
    ok(admin.call("activate_rules", json!({"version": 2, "share_bps": 10000})));
    ok(admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1500.00", "key": "t5"})));
    ok(admin.call("rollback_rules", json!({"to_version": 1})));
    let listed = ok(admin.call("list_rules", json!({})));
    assert_eq!((listed["result"]["versions"].as_u64(), listed["result"]["active"].as_u64()), (Some(2), Some(1)));
    let refused = admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1500.00", "key": "t6"}));
    assert_eq!(refused["error"]["code"], "rule_violation", "version 1 again: {refused}");

    // A bad rule set is a clear error and changes nothing.
    let bad = admin.call("publish_rules", json!({"rules": {"tiers": {"0": {"max_single_payment": {"XYZ": "1"}}}}}));
    assert_eq!(bad["ok"], false, "{bad}");
    // A client key may not touch rules.
    let client = common::create_key(&mut admin, &["read", "trade", "pay"], &[a]).await;
    let forbidden = server.http(Some(client)).call("activate_rules", json!({"version": 2}));
    assert_eq!(forbidden["error"]["code"], "forbidden", "{forbidden}");

    // After a restart the rules, their versions and their effect are the same.
    let (status, _) = server.terminate();
    assert!(status.success());
    let restarted = Server::start(&data);
    let mut admin = restarted.http(Some(server.admin()));
    let listed = ok(admin.call("list_rules", json!({})));
    assert_eq!((listed["result"]["versions"].as_u64(), listed["result"]["active"].as_u64()), (Some(2), Some(1)));
    let shown = ok(admin.call("show_rules", json!({"version": 2})));
    assert!(shown["result"]["toml"].as_str().unwrap().contains("2000.00"), "{shown}");
    let refused = admin.call("transfer", json!({"by": a, "to": b, "asset": "USD", "amount": "1500.00", "key": "t7"}));
    assert_eq!(refused["error"]["code"], "rule_violation", "{refused}");
}
