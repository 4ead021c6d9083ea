//! The `bourse-snapshot` binary, run as an operator would: data directories are built
//! in a temporary directory (journal records through `JournalWriter`, snapshots
//! through `write_snapshot`, each followed by its checkpoint record, as the runtime
//! does), then damaged on purpose, and the binary's output and exit codes checked.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use bourse_core::command::{Command, SequencedCommand};
use bourse_core::config::Config;
use bourse_core::ids::{Seq, Timestamp};
use bourse_core::{Capacity, Engine};
use bourse_journal::codec::{Checkpoint, command_kind, encode_command};
use bourse_journal::record::{Decoded, KIND_CHECKPOINT, decode};
use bourse_journal::segment::SEGMENT_HEADER_BYTES;
use bourse_journal::{Durability, JournalConfig, JournalWriter, open_and_check};
use bourse_snapshots::open_data_dir;
use bourse_snapshots::snapshot::{SNAPSHOT_HEADER_BYTES, snapshot_name, write_snapshot};
use serde_json::Value;
use tempfile::TempDir;

const CONFIG: &str = r#"
[[assets]]
code = "USD"
scale = 2

[[assets]]
code = "BTC"
scale = 8

[[markets]]
base = "BTC"
quote = "USD"
lot = 10000
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }]
"#;

/// Three accounts, deposits, a transfer, an open authorization, a resting order and a
/// withdrawal: every count `inspect` shows is non-zero. Ends with USD 875.00 / 515.00
/// (10.00 held) and BTC 1.999 (0.001 held by the order).
const SCENARIO: &[&str] = &[
    r#"{"OpenAccount":{"owner":1,"kyc_tier":0}}"#,
    r#"{"OpenAccount":{"owner":2,"kyc_tier":1}}"#,
    r#"{"OpenAccount":{"owner":3,"kyc_tier":0}}"#,
    r#"{"Deposit":{"account":0,"key":1,"asset":0,"amount":100000,"reference":"wire-1"}}"#,
    r#"{"Deposit":{"account":1,"key":1,"asset":0,"amount":50000,"reference":"wire-2"}}"#,
    r#"{"Deposit":{"account":2,"key":1,"asset":1,"amount":200000000,"reference":"chain-1"}}"#,
    r#"{"Transfer":{"by":0,"key":2,"to":1,"asset":0,"amount":2500}}"#,
    r#"{"Authorize":{"by":1,"key":2,"payee":0,"asset":0,"amount":1000,"expires_at":86400000000000}}"#,
    r#"{"PlaceOrder":{"by":2,"market":0,"side":"Sell","price":50000,"size":{"Qty":10},"time_in_force":"Gtc","post_only":false,"stp":null,"client_order_id":null}}"#,
    r#"{"Withdraw":{"account":0,"key":3,"asset":0,"amount":10000,"reference":"out-1"}}"#,
];

fn scenario() -> Vec<Command> {
    SCENARIO.iter().map(|line| serde_json::from_str(line).expect("the scenario's JSON is a command")).collect()
}

/// One-cent deposits to account 0, each with its own key: bulk for several segments.
fn filler(count: u64) -> Vec<Command> {
    (0..count)
        .map(|index| {
            let line = format!(
                r#"{{"Deposit":{{"account":0,"key":{},"asset":0,"amount":1,"reference":"fill"}}}}"#,
                1_000 + index
            );
            serde_json::from_str(&line).expect("a deposit")
        })
        .collect()
}

/// A data directory built from commands, with what the engine said about each.
struct Built {
    temp: TempDir,
    config: PathBuf,
    /// Each command's JSON and events, by sequence number, as the binary prints them.
    lines: BTreeMap<u64, Value>,
    /// The last sequence number written (a command or a checkpoint).
    last_seq: u64,
}

impl Built {
    fn dir(&self) -> &Path {
        self.temp.path()
    }

    fn data_dir(&self) -> String {
        self.dir().display().to_string()
    }

    fn config(&self) -> String {
        self.config.display().to_string()
    }

    fn segment(&self, first_seq: u64) -> PathBuf {
        self.dir().join("journal").join(format!("journal-{first_seq:020}.seg"))
    }
}

/// Journals `commands` (sequence numbers from 1, a millisecond apart) and applies
/// them; after the commands numbered in `snapshot_after` (counting from 1) writes a
/// snapshot and then its checkpoint record, which takes the next sequence number.
fn build(commands: &[Command], snapshot_after: &[usize], segment_bytes: u64) -> Built {
    let temp = TempDir::new().unwrap();
    let config_path = temp.path().join("bourse.toml");
    std::fs::write(&config_path, CONFIG).unwrap();
    let config = Config::from_toml_str(CONFIG).unwrap();
    let stores = open_data_dir(temp.path()).unwrap();
    let report = open_and_check(&stores.journal, true).unwrap();
    let journal_config = JournalConfig { segment_bytes, durability: Durability::Sync };
    let mut writer = JournalWriter::new(stores.journal.clone(), journal_config, &report).unwrap();
    let mut engine = Engine::new(&config);
    let (mut payload, mut events, mut lines) = (Vec::new(), Vec::new(), BTreeMap::new());
    let mut last_seq = 0;
    for (index, command) in commands.iter().enumerate() {
        let timestamp = Timestamp::from_nanos(1_000_000 * (index as u64 + 1));
        encode_command(command, &mut payload);
        let seq = writer.append(timestamp, command_kind(command), &payload).unwrap();
        events.clear();
        let sequenced = SequencedCommand { seq, timestamp, command: command.clone() };
        engine.apply(&sequenced, &mut events);
        let line = serde_json::json!({
            "seq": seq.get(), "timestamp": timestamp.as_nanos(), "command": command, "events": events,
        });
        lines.insert(seq.get(), line);
        last_seq = seq.get();
        if snapshot_after.contains(&(index + 1)) {
            let hash = engine.state_hash();
            write_snapshot(&stores.snapshots, seq, hash, &engine.export_state(), 3).unwrap();
            Checkpoint::new(seq, hash).encode(&mut payload);
            last_seq = writer.append(timestamp, KIND_CHECKPOINT, &payload).unwrap().get();
        }
    }
    writer.sync().unwrap();
    engine.check_invariants();
    Built { temp, config: config_path, lines, last_seq }
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Ran {
    let output = Process::new(env!("CARGO_BIN_EXE_bourse-snapshot")).args(args).output().unwrap();
    let ran = Ran {
        code: output.status.code().expect("the binary exits with a code"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    println!("$ bourse-snapshot {}\n{}{}exit {}", args.join(" "), ran.stdout, ran.stderr, ran.code);
    ran
}

/// Offsets of the records in a segment file, in order.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while let Decoded::Valid(_, len) = decode(&bytes[offset..]) {
        offsets.push(offset);
        offset += len;
    }
    offsets
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|line| serde_json::from_str(line).expect("every line is JSON")).collect()
}

fn seqs(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|line| line["seq"].as_u64().unwrap()).collect()
}

#[test]
fn list_shows_snapshots_segments_and_ranges() {
    // Commands 1..=5, checkpoint 6, commands 7..=11, checkpoint 12.
    let built = build(&scenario(), &[5, 10], 1 << 20);
    let ran = run(&["list", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 0);
    for expected in [
        "snapshot-00000000000000000005.snap",
        "snapshot-00000000000000000011.snap",
        "journal-00000000000000000001.seg",
        "12 record(s), sequences 1..=12; the next record is 13",
    ] {
        assert!(ran.stdout.contains(expected), "{expected:?} in the listing");
    }
    assert_eq!(ran.stdout.matches("valid, state hash").count(), 2);
    assert!(!ran.stdout.contains("TORN"));
}

#[test]
fn inspect_shows_counts_and_totals_at_the_asset_scale() {
    let built = build(&scenario(), &[10], 1 << 20);
    let ran = run(&["inspect", "--data-dir", &built.data_dir(), "--newest"]);
    assert_eq!(ran.code, 0);
    for (label, value) in [
        ("sequence", "10"),
        ("accounts", "3"),
        ("balances", "3"),
        ("payments", "2"),
        ("idempotency entries", "6"),
        ("markets", "1"),
        ("resting orders", "1"),
    ] {
        assert!(ran.stdout.lines().any(|line| line == format!("{label:<20} {value}")), "{label} {value}");
    }
    let usd = ran.stdout.lines().find(|line| line.starts_with("USD")).unwrap();
    // Asset, scale, in accounts, fees, cross-border remainders, deposited, withdrawn.
    assert_eq!(
        usd.split_whitespace().collect::<Vec<_>>(),
        ["USD", "2", "1400.00", "0.00", "0.00", "1500.00", "100.00"]
    );
    let btc = ran.stdout.lines().find(|line| line.starts_with("BTC")).unwrap();
    assert_eq!(
        btc.split_whitespace().collect::<Vec<_>>(),
        ["BTC", "8", "2.00000000", "0.00000000", "0.00000000", "2.00000000", "0.00000000"]
    );

    // By sequence number, as JSON; and the head (snapshot + nothing after it) agrees.
    let ran = run(&["inspect", "--data-dir", &built.data_dir(), "10", "--json"]);
    assert_eq!(ran.code, 0);
    let summary: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(summary["seq"], 10);
    assert_eq!(summary["counts"]["resting_orders"], 1);
    assert_eq!(summary["counts"]["idempotency_entries"], 6);
    assert_eq!(summary["assets"][0]["in_accounts"], "1400.00");
    assert_eq!(summary["assets"][1]["deposited"], "2.00000000");
    let head = run(&["inspect", "--data-dir", &built.data_dir(), "--head", "--json"]);
    let head: Value = serde_json::from_str(&head.stdout).unwrap();
    assert_eq!(head["state_hash"], summary["state_hash"]);

    let missing = run(&["inspect", "--data-dir", &built.data_dir(), "7"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no snapshot snapshot-00000000000000000007.snap"), "{}", missing.stderr);
}

#[test]
fn verify_passes_on_a_sound_directory_across_segments() {
    // About 1600 records per 80 KB segment: two segments, snapshots in both.
    let mut commands = scenario();
    commands.extend(filler(2_500));
    let built = build(&commands, &[10, 1_200, 2_000], 80_000);
    assert!(built.segment(1).exists());
    let ran = run(&["verify", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    assert!(ran.stdout.contains("verify: OK"));
    assert!(ran.stdout.contains("matches the journal's checkpoint"));
    assert!(ran.stdout.contains("check_invariants() holds"));
    let listing = run(&["list", "--data-dir", &built.data_dir()]);
    assert!(listing.stdout.matches("journal-0").count() >= 2, "several segments");

    let full = run(&["verify", "--data-dir", &built.data_dir(), "--full", "--config", &built.config()]);
    assert_eq!(full.code, 0, "{}", full.stdout);
    assert!(full.stdout.contains("the head from the snapshot and from empty agree"));
    assert!(full.stdout.contains("3 checkpoint(s) proved"), "every checkpoint proved from empty");
}

#[test]
fn verify_fails_naming_the_segment_and_offset_of_a_flipped_byte() {
    let built = build(&scenario(), &[], 1 << 20);
    let segment = built.segment(1);
    let mut bytes = std::fs::read(&segment).unwrap();
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 10);
    // A byte inside the fifth record's payload: valid records follow, so corruption.
    let damaged_record = offsets[4];
    bytes[damaged_record + 40] ^= 0x5A;
    std::fs::write(&segment, &bytes).unwrap();

    let ran = run(&["verify", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 1);
    let expected = format!("{} at offset {damaged_record}", segment.display());
    assert!(ran.stdout.contains(&expected), "{expected:?} named");
    assert!(ran.stdout.contains("sequence 5"));
    assert!(ran.stdout.contains("verify: FAILED, 1 problem(s)"), "one damage, reported once");
    let listing = run(&["list", "--data-dir", &built.data_dir()]);
    assert_eq!(listing.code, 1, "a corrupt journal cannot be listed");
    assert!(listing.stderr.contains(&expected), "{expected:?} named");
    let recovered = run(&["recover", "--data-dir", &built.data_dir(), "--config", &built.config()]);
    assert_eq!(recovered.code, 1, "recover refuses corruption");
    assert!(recovered.stderr.contains(&expected));
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "and leaves the file untouched");
}

#[test]
fn verify_fails_on_a_damaged_snapshot_and_falls_back() {
    let built = build(&scenario(), &[5, 10], 1 << 20);
    let newest = built.dir().join("snapshots").join(snapshot_name(Seq::new(11)));
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[SNAPSHOT_HEADER_BYTES + 8] ^= 0x01;
    std::fs::write(&newest, &bytes).unwrap();

    let listing = run(&["list", "--data-dir", &built.data_dir()]);
    assert!(listing.stdout.contains("INVALID: payload checksum mismatch"));
    let ran = run(&["verify", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 1);
    assert!(ran.stdout.contains(&format!("snapshot {} is not valid: payload checksum mismatch", newest.display())));
    // Recovery still reaches the head from the older snapshot.
    assert!(ran.stdout.contains("snapshot-00000000000000000005.snap (sequence 5) + 5 command(s) replayed"));
}

/// A snapshot whose state holds money nothing reserves: it loads (its hash is its own)
/// but must not pass `verify`, and `recover` must not copy it into a new snapshot.
#[test]
fn verify_reports_a_state_that_does_not_reconcile() {
    let built = build(&scenario(), &[], 1 << 20);
    let config = Config::from_toml_str(CONFIG).unwrap();
    let mut engine = Engine::new(&config);
    let mut events = Vec::new();
    for (seq, line) in &built.lines {
        let command: Command = serde_json::from_value(line["command"].clone()).unwrap();
        let timestamp = Timestamp::from_nanos(line["timestamp"].as_u64().unwrap());
        engine.apply(&SequencedCommand { seq: Seq::new(*seq), timestamp, command }, &mut events);
    }
    let mut state = engine.export_state();
    state.balances[0].held += 5;
    state.totals[0].in_accounts += 5;
    state.totals[0].deposited += 5;
    let tampered = Engine::from_state(&state, Capacity::default()).unwrap();
    let stores = open_data_dir(built.dir()).unwrap();
    write_snapshot(&stores.snapshots, Seq::new(10), tampered.state_hash(), &state, 3).unwrap();

    let ran = run(&["verify", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stdout.contains("FAIL  account 0 holds 5 minor units of USD, but its authorizations and orders reserve 0")
    );
    assert!(ran.stdout.contains("FAIL  check_invariants() failed: panicked at"), "the panic caught and named");
    let ran = run(&["recover", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("does not reconcile, so no snapshot is written"));
}

#[test]
fn recover_cuts_a_torn_tail_and_writes_a_snapshot() {
    // Commands 1..=5, checkpoint 6, commands 7..=11; no snapshot at the end.
    let built = build(&scenario(), &[5], 1 << 20);
    let segment = built.segment(1);
    let mut bytes = std::fs::read(&segment).unwrap();
    let offsets = record_offsets(&bytes);
    let end = match decode(&bytes[*offsets.last().unwrap()..]) {
        Decoded::Valid(_, len) => offsets.last().unwrap() + len,
        _ => unreachable!("the last record is valid"),
    };
    bytes[end..end + 20].fill(0xAB);
    std::fs::write(&segment, &bytes).unwrap();
    let torn_at = format!("{} at offset {end}", segment.display());

    let listing = run(&["list", "--data-dir", &built.data_dir()]);
    assert_eq!(listing.code, 0);
    assert!(listing.stdout.contains(&format!("TORN TAIL: {torn_at}")));
    let verified = run(&["verify", "--data-dir", &built.data_dir()]);
    assert_eq!(verified.code, 1);
    assert!(verified.stdout.contains(&format!("torn tail in {torn_at}")));
    // The read-only commands still see every record before the tail, and change nothing.
    let head = run(&["inspect", "--data-dir", &built.data_dir(), "--head", "--json"]);
    assert_eq!(head.code, 0, "{}", head.stderr);
    assert_eq!(serde_json::from_str::<Value>(&head.stdout).unwrap()["seq"], 11);
    assert_eq!(std::fs::read(&segment).unwrap()[end], 0xAB, "inspect repaired nothing");

    let ran = run(&["recover", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains(&format!("torn tail cut in {torn_at}")));
    let written = built.dir().join("snapshots").join(snapshot_name(Seq::new(11)));
    assert!(ran.stdout.contains(&format!("snapshot written: {}", written.display())));
    assert!(written.exists());
    assert!(std::fs::read(&segment).unwrap()[end..end + 20].iter().all(|&byte| byte == 0), "the tail is cut");

    let verified = run(&["verify", "--data-dir", &built.data_dir()]);
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    assert!(verified.stdout.contains("snapshot-00000000000000000011.snap (sequence 11) + 0 command(s) replayed"));
    let again = run(&["recover", "--data-dir", &built.data_dir()]);
    assert!(again.stdout.contains("already at sequence 11: nothing to write"));
}

#[test]
fn replay_prints_a_range_as_json_lines_from_a_snapshot_or_from_empty() {
    // Commands 1..=5, checkpoint 6, commands 7..=11.
    let built = build(&scenario(), &[5], 1 << 20);
    let ran = run(&["replay", "--data-dir", &built.data_dir(), "--from", "7", "--to", "9"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines = json_lines(&ran.stdout);
    assert_eq!(seqs(&lines), [7, 8, 9]);
    for line in &lines {
        assert_eq!(*line, built.lines[&line["seq"].as_u64().unwrap()], "the events the engine gave when live");
    }
    assert!(ran.stderr.contains("snapshot-00000000000000000005.snap"), "replayed from the snapshot");

    // Before any snapshot: needs the configuration.
    let refused = run(&["replay", "--data-dir", &built.data_dir(), "--from", "2", "--to", "4"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("pass --config FILE"), "{}", refused.stderr);
    let ran =
        run(&["replay", "--data-dir", &built.data_dir(), "--from", "2", "--to", "4", "--config", &built.config()]);
    let lines = json_lines(&ran.stdout);
    assert_eq!(seqs(&lines), [2, 3, 4]);
    assert!(lines.iter().all(|line| *line == built.lines[&line["seq"].as_u64().unwrap()]));

    // A range over the checkpoint, and past the end of the journal.
    let ran =
        run(&["replay", "--data-dir", &built.data_dir(), "--from", "5", "--to", "99", "--config", &built.config()]);
    assert_eq!(ran.code, 0);
    assert_eq!(seqs(&json_lines(&ran.stdout)), [5, 7, 8, 9, 10, 11]);
    assert_eq!(built.last_seq, 11);
}

#[test]
fn replay_commands_runs_a_scenario_offline_and_names_a_bad_line() {
    let built = build(&[], &[], 1 << 20);
    let file = built.dir().join("scenario.jsonl");
    let scenario = [
        r#"{"OpenAccount":{"owner":7,"kyc_tier":0}}"#,
        "",
        r#"{"timestamp":5000000,"command":{"Deposit":{"account":0,"key":1,"asset":0,"amount":1250,"reference":"r"}}}"#,
        r#""Tick""#,
        r#"{"Withdraw":{"account":0,"key":2,"asset":0,"amount":99999,"reference":"r"}}"#,
    ];
    std::fs::write(&file, scenario.join("\n")).unwrap();
    let ran =
        run(&["replay", "--commands", &file.display().to_string(), "--config", &built.config(), "--step-ns", "10"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines = json_lines(&ran.stdout);
    assert_eq!(seqs(&lines), [1, 2, 3, 4]);
    let times: Vec<u64> = lines.iter().map(|line| line["timestamp"].as_u64().unwrap()).collect();
    assert_eq!(times, [0, 5_000_000, 5_000_010, 5_000_020]);
    assert_eq!(lines[0]["events"][0]["AccountOpened"]["owner"], 7);
    assert_eq!(lines[1]["events"][1]["BalanceChanged"]["available"], 1250);
    assert_eq!(lines[2]["command"], "Tick");
    assert_eq!(lines[3]["events"][0]["Rejected"]["reason"], "InsufficientFunds");

    let bad = [scenario[0], scenario[2], r#"{"Deposit":{"account":0,"asset":0}}"#, scenario[3]];
    std::fs::write(&file, bad.join("\n")).unwrap();
    let ran = run(&["replay", "--commands", &file.display().to_string(), "--config", &built.config()]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains(&format!("{}: line 3: ", file.display())), "{}", ran.stderr);
    assert!(ran.stderr.contains("missing field `key`"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "nothing runs before every line parses");

    std::fs::write(&file, format!("{}\n{{\"Fly\":{{}}}}\n", scenario[0])).unwrap();
    let ran = run(&["replay", "--commands", &file.display().to_string(), "--config", &built.config()]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("line 2: column") && ran.stderr.contains("unknown variant `Fly`"), "{}", ran.stderr);
}

#[test]
fn export_writes_every_balance_as_csv_and_json() {
    let built = build(&scenario(), &[5], 1 << 20);
    let ran = run(&["export", "--data-dir", &built.data_dir(), "--format", "csv"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        "account,asset,available,held\n0,USD,875.00,0.00\n1,USD,515.00,10.00\n2,BTC,1.99900000,0.00100000\n"
    );
    let ran = run(&["export", "--data-dir", &built.data_dir(), "--format", "json"]);
    assert_eq!(ran.code, 0);
    let export: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(export["seq"], 11);
    assert_eq!(export["balances"].as_array().unwrap().len(), 3);
    assert_eq!(
        export["balances"][1],
        serde_json::json!({"account": 1, "asset": "USD", "available": "515.00", "held": "10.00"})
    );
    // The snapshot at 5 holds only the first deposits.
    let ran = run(&["export", "--data-dir", &built.data_dir(), "--format", "csv", "--newest"]);
    assert_eq!(ran.stdout, "account,asset,available,held\n0,USD,1000.00,0.00\n1,USD,500.00,0.00\n");
}

#[test]
fn without_a_snapshot_a_config_is_needed() {
    let built = build(&scenario(), &[], 1 << 20);
    let ran = run(&["export", "--data-dir", &built.data_dir(), "--format", "csv"]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("needs the engine configuration, pass --config FILE"), "{}", ran.stderr);
    let ran = run(&["export", "--data-dir", &built.data_dir(), "--format", "csv", "--config", &built.config()]);
    assert_eq!(ran.code, 0);
    assert!(ran.stdout.ends_with("2,BTC,1.99900000,0.00100000\n"));
    let ran = run(&["verify", "--data-dir", &built.data_dir(), "--config", &built.config()]);
    assert_eq!(ran.code, 0, "{}", ran.stdout);

    let nowhere = run(&["list", "--data-dir", &built.dir().join("nowhere").display().to_string()]);
    assert_eq!(nowhere.code, 1);
    assert!(nowhere.stderr.contains("does not exist"));
    assert!(!built.dir().join("nowhere").exists(), "nothing is created");
}

#[test]
fn recover_refuses_a_data_directory_another_process_holds() {
    let built = build(&scenario(), &[5], 1 << 20);
    let lock = bourse_snapshots::datadir::DataDirLock::acquire(built.dir()).unwrap();
    let refused = run(&["recover", "--data-dir", &built.data_dir(), "--config", &built.config()]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("in use by another process"), "{}", refused.stderr);
    drop(lock);
    let ran = run(&["recover", "--data-dir", &built.data_dir(), "--config", &built.config()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

/// Rule changes around a snapshot: two published versions, a rollout, a full
/// activation, a payment held for review, a rollback. The rule sets are JSON, as an
/// API would send them.
const RULES: &[&str] = &[
    r#"{"PublishRules":{"rules":{"description":"launch","tiers":{"0":{"daily_outflow":{"USD":"100"},"review_threshold":{"USD":"50"}}}}}}"#,
    r#"{"ActivateRules":{"version":1,"share_bps":10000}}"#,
    r#"{"Transfer":{"by":0,"key":10,"to":1,"asset":0,"amount":6000}}"#,
    r#"{"PublishRules":{"rules":{"description":"tighter","blocked_counterparties":[2],"tiers":{"0":{"daily_outflow":{"USD":"80.00"},"review_threshold":{"USD":"50.00"}}},"accounts":{"1":{"payments_per_minute":3}}}}}"#,
    r#"{"ActivateRules":{"version":2,"share_bps":2500}}"#,
    r#"{"ActivateRules":{"version":2,"share_bps":10000}}"#,
    r#"{"RollbackRules":{"to_version":1}}"#,
];

#[test]
fn rules_lists_every_change_with_its_sequence_and_time_and_shows_and_diffs_versions() {
    let mut commands = scenario();
    commands.extend(RULES.iter().map(|line| serde_json::from_str::<Command>(line).expect("a rule command")));
    // A snapshot after the first rollout (command 15): the history before it comes from
    // the snapshot, the rest from the journal.
    let built = build(&commands, &[15], 1 << 20);
    let ran = run(&["rules", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let changes: Vec<Vec<&str>> = lines
        .iter()
        .filter(|line| line.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|line| line.split_whitespace().collect())
        .collect();
    // Commands 11..=17 (the checkpoint after 15 takes sequence 16).
    let seqs: Vec<&str> = changes.iter().map(|change| change[0]).collect();
    assert_eq!(seqs, ["11", "12", "14", "15", "17", "18"]);
    assert_eq!(changes[0][1], "1970-01-01T00:00:00.011000000Z", "command time of the 11th command");
    for (index, expected) in [
        (0, "published version 1 (\"launch\"; tiers 0)"),
        (1, "activated version 1 for all accounts"),
        (2, "published version 2 (\"tighter\"; tiers 0; 1 account(s) with their own limits; 1 blocked for all)"),
        (3, "rolled out version 2 to 25.00% of accounts (buckets below 2500)"),
        (4, "activated version 2 for all accounts"),
        (5, "rolled back from version 2 to version 1"),
    ] {
        assert_eq!(changes[index][2..].join(" "), expected);
    }
    assert!(lines.contains(&"in effect: version 1 for every account"), "{lines:?}");
    assert!(lines.contains(&"payments waiting for review: 1"), "the 60.00 transfer is held");

    let json = run(&["rules", "--data-dir", &built.data_dir(), "--json"]);
    let listing: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(listing["versions"], 2);
    assert_eq!(listing["changes"][3]["change"], "activated");
    assert_eq!(listing["changes"][3]["share_bps"], 2500);
    assert_eq!(listing["changes"][5]["change"], "rolled_back");
    assert_eq!((listing["changes"][5]["from"].as_u64(), listing["changes"][5]["version"].as_u64()), (Some(2), Some(1)));
    assert_eq!(listing["in_effect"]["version"], 1);
    assert_eq!(listing["seq"], 18);

    let show = run(&["rules", "--data-dir", &built.data_dir(), "--show", "1"]);
    assert_eq!(show.code, 0);
    assert_eq!(
        show.stdout,
        "# rule version 1, published by sequence 11 at 1970-01-01T00:00:00.011000000Z\ndescription = \"launch\"\n\n\
         [tiers.0]\ndaily_outflow = { USD = \"100.00\" }\nreview_threshold = { USD = \"50.00\" }\n"
    );
    let diff = run(&["rules", "--data-dir", &built.data_dir(), "--diff", "1", "2"]);
    assert_eq!(
        diff.stdout.lines().collect::<Vec<_>>(),
        [
            "description: \"launch\" -> \"tighter\"",
            "all accounts: blocked_counterparties +2",
            "tier 0: daily_outflow USD 100.00 -> 80.00",
            "account 1: payments_per_minute (none) -> 3",
        ]
    );
    let same = run(&["rules", "--data-dir", &built.data_dir(), "--diff", "2", "2"]);
    assert_eq!(same.stdout, "versions 2 and 2 set the same limits\n");
    let missing = run(&["rules", "--data-dir", &built.data_dir(), "--show", "3"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("there is no rule version 3: versions 1 to 2 were published"),
        "{}",
        missing.stderr
    );

    // The same history from the journal alone, replayed from empty.
    std::fs::remove_dir_all(built.dir().join("snapshots")).unwrap();
    let from_empty = run(&["rules", "--data-dir", &built.data_dir(), "--config", &built.config(), "--json"]);
    let replayed: Value = serde_json::from_str(&from_empty.stdout).unwrap();
    assert_eq!(replayed["changes"], listing["changes"]);
}

#[test]
fn rules_on_a_directory_without_rules_says_so() {
    let built = build(&scenario(), &[10], 1 << 20);
    let ran = run(&["rules", "--data-dir", &built.data_dir()]);
    assert_eq!(ran.code, 0);
    assert!(ran.stdout.contains("no rule set was ever published"));
    assert!(ran.stdout.contains("in effect: no rules"));
}
