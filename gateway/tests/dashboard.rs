//! The live dashboard: its feed (`/v1/dashboard`, `/v1/dashboard/ws`) against
//! `/metrics` and the read model, its viewer bound, the page in a real headless
//! Chromium under load (the numbers move and match `/metrics`), and the Grafana
//! dashboard's JSON.
//!
//! The browser is driven over its debugging protocol (CDP: JSON over a WebSocket,
//! with tokio-tungstenite): no browser-automation crate. Without Chromium the browser test
//! installs Debian's `chromium` package when it runs as root with apt (bounded in
//! time), and otherwise says plainly that it skipped. `BOURSE_CHROMIUM` names a
//! browser binary to use; `BOURSE_NO_BROWSER_INSTALL=1` forbids the install.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{Http, Server, WAIT, ok};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

// ---------------------------------------------------------------------------------
// /metrics, read as the page should show it.

/// The samples of a Prometheus text: series → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().expect("a numeric sample"))
        })
        .collect()
}

/// Metric name → type, from the `# TYPE` lines.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split(' ');
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// Whether a series only grows: counters, summaries' `_count` and `_sum`, and the two
/// sequence-number gauges.
fn only_grows(series: &str, types: &BTreeMap<String, String>) -> bool {
    let name = series.split('{').next().expect("a name");
    if matches!(name, "bourse_journal_durable_seq" | "bourse_snapshot_seq") {
        return true;
    }
    if types.get(name).is_some_and(|kind| kind == "counter") {
        return true;
    }
    ["_count", "_sum"].iter().any(|suffix| {
        name.strip_suffix(suffix).is_some_and(|base| types.get(base).is_some_and(|kind| kind == "summary"))
    })
}

/// The samples that stay put while nothing happens: all but the snapshot's age.
fn steady(text: &str) -> BTreeMap<String, f64> {
    let mut samples = samples(text);
    samples.remove("bourse_snapshot_age_seconds");
    samples
}

fn get_metrics(http: &Http) -> String {
    let reply = http.get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.text
}

// ---------------------------------------------------------------------------------
// The feed, with a plain WebSocket client.

async fn next_snapshot(stream: &mut common::WsStream) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, stream.next())
            .await
            .expect("a snapshot within WAIT")
            .expect("the feed is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let snapshot: Value = serde_json::from_str(&text).expect("a JSON snapshot");
            assert_eq!(snapshot["type"], "dashboard", "{snapshot}");
            return snapshot;
        }
    }
}

async fn connect_feed(server: &Server) -> Result<common::WsStream, tungstenite::Error> {
    let url = format!("ws://{}/v1/dashboard/ws", server.http);
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("a handshake within WAIT")
        .map(|(s, _)| s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_carries_every_metric_and_market_every_tick_and_bounds_its_viewers() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let public = server.http(None);

    // The page and its two files are served, self-contained.
    let page = public.get("/dashboard");
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/dashboard/dashboard.js") && page.text.contains("/dashboard/dashboard.css"));
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "the page fetches nothing from elsewhere"
    );
    let script = public.get("/dashboard/dashboard.js");
    assert_eq!(script.status, 200);
    assert!(script.text.contains("/v1/dashboard/ws"));
    assert_eq!(public.get("/dashboard/dashboard.css").status, 200);

    // One snapshot over HTTP: every /metrics series under its own name; every market.
    let snapshot = public.get("/v1/dashboard").json;
    let metrics = get_metrics(&public);
    let names: BTreeSet<&String> = snapshot["metrics"].as_object().expect("metrics").keys().collect();
    let expected = samples(&metrics);
    assert_eq!(names, expected.keys().collect(), "the snapshot names exactly the series of /metrics");
    let markets: Vec<&str> = snapshot["markets"]
        .as_array()
        .expect("markets")
        .iter()
        .map(|m| m["market"].as_str().expect("a symbol"))
        .collect();
    let listed = public.get("/v1/markets").json;
    let listed: Vec<&str> = listed["markets"]
        .as_array()
        .expect("markets")
        .iter()
        .map(|m| m["market"].as_str().expect("a symbol"))
        .collect();
    assert_eq!(markets, listed);
    assert_eq!(snapshot["markets"][0]["bid"], Value::Null, "an empty book has no bid");

    // Over the WebSocket: a snapshot at once, then one per tick.
    let mut feed = connect_feed(&server).await.expect("the feed opens");
    let first = next_snapshot(&mut feed).await;
    let second = next_snapshot(&mut feed).await;
    let gap = second["time_ms"].as_u64().unwrap() - first["time_ms"].as_u64().unwrap();
    assert!(gap >= 400, "snapshots are a tick (500 ms) apart, not {gap} ms");
    assert_eq!(second["viewers"], 1);

    // A command shows in a later snapshot, and a resting order in the market's bbo.
    let mut admin = server.admin_http();
    let account = ok(admin.call("open_account", json!({"owner": 7})))["result"]["account"].as_u64().unwrap();
    ok(admin.call("deposit", json!({"account": account, "asset": "BTC", "amount": "1", "reference": "r"})));
    ok(admin.call(
        "place_order",
        json!({"by": account, "market": "BTC-USD", "side": "sell", "price": "65000", "qty": "0.25"}),
    ));
    let deadline = Instant::now() + WAIT;
    loop {
        let snapshot = next_snapshot(&mut feed).await;
        let placed = &snapshot["metrics"]["bourse_commands_total{kind=\"PlaceOrder\",outcome=\"accepted\"}"];
        if placed == 1 {
            let btc_usd = snapshot["markets"].as_array().unwrap().iter().find(|m| m["market"] == "BTC-USD").unwrap();
            assert_eq!(btc_usd["ask"], json!(["65000", "0.25"]), "{btc_usd}");
            assert_eq!(btc_usd["bid"], Value::Null);
            break;
        }
        assert!(Instant::now() < deadline, "the order never showed in the feed: {snapshot}");
    }

    // At most VIEWERS_MAX viewers: one more is refused, clearly; a freed place is taken.
    let mut viewers = vec![feed];
    while viewers.len() < bourse_gateway::dashboard::VIEWERS_MAX {
        viewers.push(connect_feed(&server).await.expect("a viewer within the bound"));
    }
    match connect_feed(&server).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("too_many_viewers"), "{body}");
        }
        other => panic!("viewer {} was let in: {other:?}", bourse_gateway::dashboard::VIEWERS_MAX + 1),
    }
    let metrics = get_metrics(&public);
    assert_eq!(common::counter(&metrics, "bourse_gateway_errors_total{code=\"too_many_viewers\"}"), Some(1));
    let mut leaving = viewers.pop().expect("a viewer");
    leaving.close(None).await.expect("a clean close");
    let deadline = Instant::now() + WAIT;
    let mut again = loop {
        // The server gives the place back once it has seen the close: retry until then.
        match connect_feed(&server).await {
            Ok(stream) => break stream,
            Err(error) => assert!(Instant::now() < deadline, "the freed place was never given: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    next_snapshot(&mut again).await; // the newest snapshot, perhaps from before it joined
    let snapshot = next_snapshot(&mut again).await;
    assert_eq!(snapshot["viewers"].as_u64(), Some(bourse_gateway::dashboard::VIEWERS_MAX as u64));
}

// ---------------------------------------------------------------------------------
// The Grafana dashboard.

#[test]
fn the_grafana_dashboard_is_well_formed_and_names_only_metrics_that_exist() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana/bourse-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("grafana/bourse-dashboard.json");
    let dashboard: Value = serde_json::from_str(&text).expect("well-formed JSON");
    assert_eq!(dashboard["uid"], "bourse");
    let variables = dashboard["templating"]["list"].as_array().expect("templating variables");
    assert!(
        variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );

    // The metric names the server exposes (with its summaries' _count and _sum).
    let metrics = bourse_gateway::metrics::Metrics::default();
    let exposition = metrics.render(&bourse_snapshots::runtime::RuntimeStats::default(), 0);
    let mut exposed: BTreeSet<String> = types(&exposition).into_keys().collect();
    exposed.extend(samples(&exposition).keys().map(|series| series.split('{').next().unwrap().to_owned()));

    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in &panels {
        assert!(ids.insert(panel["id"].as_u64().expect("a panel id")), "duplicate panel id: {panel}");
        assert!(panel["title"].as_str().is_some_and(|title| !title.is_empty()), "a title: {panel}");
        for key in ["x", "y", "w", "h"] {
            assert!(panel["gridPos"][key].is_u64(), "gridPos.{key}: {panel}");
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "each panel uses the variable: {}", panel["title"]);
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "a query: {}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} names no bourse metric");
            used.extend(names);
        }
    }
    let unknown: Vec<&String> = used.iter().filter(|name| !exposed.contains(*name)).collect();
    assert!(unknown.is_empty(), "the Grafana dashboard names metrics /metrics does not have: {unknown:?}");
    for wanted in [
        "bourse_commands_total",
        "bourse_rejections_total",
        "bourse_pipeline_latency_seconds",
        "bourse_end_to_end_latency_seconds",
        "bourse_command_queue_depth",
        "bourse_journal_bytes_total",
        "bourse_snapshot_age_seconds",
        "bourse_sessions",
    ] {
        assert!(used.contains(wanted), "the Grafana dashboard has no panel on {wanted}");
    }
}

fn collect_panels<'a>(panels: &'a Value, into: &mut Vec<&'a Value>) {
    for panel in panels.as_array().expect("a panels array") {
        into.push(panel);
        if let Some(inner) = panel.get("panels") {
            collect_panels(inner, into);
        }
    }
}

/// The `bourse_…` identifiers in a Prometheus query.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut at = 0;
    while let Some(found) = expr[at..].find("bourse_") {
        let start = at + found;
        let word_start = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = start + expr[start..].bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
        if word_start {
            names.insert(expr[start..end].to_owned());
        }
        at = end;
    }
    names
}

// ---------------------------------------------------------------------------------
// The page in a real browser.

/// How long one `apt-get install chromium` may take, and one `apt-get update`.
const INSTALL_SECONDS_MAX: u32 = 240;
const UPDATE_SECONDS_MAX: u32 = 120;

/// Where a browser is, or why there is none.
fn chromium() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("BOURSE_CHROMIUM")
        && !path.is_empty()
    {
        return Ok(PathBuf::from(path));
    }
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
            })
        })
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    if std::env::var("BOURSE_NO_BROWSER_INSTALL").is_ok_and(|value| value == "1") {
        return Err("no chromium on PATH and BOURSE_NO_BROWSER_INSTALL=1".into());
    }
    let root =
        Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let apt = Path::new("/usr/bin/apt-get").is_file();
    if !root || !apt {
        return Err(format!("no chromium on PATH, and cannot install it (root: {root}, apt-get: {apt})"));
    }
    let most = 2 * INSTALL_SECONDS_MAX + UPDATE_SECONDS_MAX;
    eprintln!("dashboard browser test: installing Debian's chromium package (at most {most} s)…");
    // The package lists may be stale or missing: update them once if the install fails.
    let install = || apt_get(&["install", "-y", "-q", "--no-install-recommends", "chromium"], INSTALL_SECONDS_MAX);
    let installed = install() || (apt_get(&["update", "-q"], UPDATE_SECONDS_MAX) && install());
    if !installed {
        return Err("`apt-get install chromium` failed or timed out".into());
    }
    find().ok_or_else(|| "chromium was installed but is not on PATH".into())
}

/// Runs `apt-get ARGS` under `timeout`; whether it succeeded.
fn apt_get(args: &[&str], seconds: u32) -> bool {
    Command::new("timeout")
        .arg(seconds.to_string())
        .arg("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A headless Chromium driven over CDP, killed (its whole process
/// group) when dropped.
struct Browser {
    child: Child,
    devtools: common::WsStream,
    next_id: u64,
    /// The page's CDP session.
    session: Option<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--no-proxy-server",
                "--mute-audio",
                "--window-size=1400,2200",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chromium");
        let (tx, rx) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().expect("piped stderr"));
        let kept = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                let mut kept = kept.lock().expect("stderr lock");
                if kept.len() < 200 {
                    kept.push(line);
                }
            }
        });
        let url = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("chromium printed no DevTools address: {:#?}", stderr.lock().expect("stderr lock"))
        });
        let (devtools, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .expect("DevTools handshake in time")
            .expect("DevTools handshake");
        Browser { child, devtools, next_id: 1, session: None, stderr, _profile: profile }
    }

    /// One CDP command (on the page's session once there is one); its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        tokio::time::timeout(WAIT, self.devtools.send(Message::text(message.to_string())))
            .await
            .expect("DevTools send in time")
            .expect("DevTools send");
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.devtools.next())
                .await
                .unwrap_or_else(|_| panic!("no DevTools reply to {method} within {WAIT:?}"))
                .expect("DevTools open")
                .expect("a DevTools frame");
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "DevTools {method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page, collecting its script errors in
    /// `window.__dashboardErrors`.
    async fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"})).await;
        let attached =
            self.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true})).await;
        self.session = Some(attached["sessionId"].as_str().expect("a session id").to_owned());
        self.call("Page.enable", json!({})).await;
        let collect = "window.__dashboardErrors = []; \
            window.addEventListener('error', (e) => window.__dashboardErrors.push(String(e.message)));";
        self.call("Page.addScriptToEvaluateOnNewDocument", json!({"source": collect})).await;
        let navigated = self.call("Page.navigate", json!({"url": url})).await;
        assert!(navigated.get("errorText").is_none(), "navigating to {url}: {navigated}");
    }

    /// Evaluates `expression` in the page; its value.
    async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true})).await;
        assert!(result.get("exceptionDetails").is_none(), "the page threw: {result}");
        result["result"]["value"].clone()
    }

    async fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true})).await;
        let bytes = base64_decode(shot["data"].as_str().expect("base64 data"));
        std::fs::write(path, bytes).expect("writing the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the browser and the renderer and helper processes it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |byte: u8| -> u32 {
        match byte {
            b'A'..=b'Z' => u32::from(byte - b'A'),
            b'a'..=b'z' => u32::from(byte - b'a') + 26,
            b'0'..=b'9' => u32::from(byte - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {byte}"),
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk.iter().copied().filter(|byte| *byte != b'=').collect();
        let word = digits.iter().enumerate().fold(0, |word, (index, byte)| word | value(*byte) << (18 - 6 * index));
        out.extend(word.to_be_bytes()[1..digits.len()].iter());
    }
    out
}

/// What the page shows: every `[data-metric]`, `[data-rate]` and `[data-market]`
/// element, the status and the snapshot it last drew.
const READ_PAGE: &str = r"(() => {
  const cells = (selector, key) => [...document.querySelectorAll(selector)].map((e) => [
    e.getAttribute(key), e.getAttribute('data-value'), e.textContent, e.getAttribute('data-format') || '',
  ]);
  // Before the page has loaded, the document is still about:blank.
  const status = document.getElementById('status');
  const time = document.getElementById('snapshot-time');
  return {
    status: status ? status.textContent : '',
    snapshots: window.bourseDashboard ? window.bourseDashboard.snapshots : 0,
    connects: window.bourseDashboard ? window.bourseDashboard.connects : 0,
    time_ms: Number((time && time.getAttribute('data-value')) || 0),
    errors: window.__dashboardErrors || [],
    metrics: cells('[data-metric]', 'data-metric'),
    rates: cells('[data-rate]', 'data-rate'),
    markets: [...document.querySelectorAll('[data-market]')].map((e) => [
      e.getAttribute('data-market') + '/' + e.getAttribute('data-field'), e.getAttribute('data-value'),
    ]),
  };
})()";

#[derive(Debug)]
struct Cell {
    value: f64,
    text: String,
    format: String,
}

#[derive(Debug)]
struct PageRead {
    status: String,
    snapshots: u64,
    /// Times the page's feed connected.
    connects: u64,
    time_ms: u64,
    metrics: BTreeMap<String, Cell>,
    rates: BTreeMap<String, Option<f64>>,
    markets: BTreeMap<String, String>,
}

async fn read_page(browser: &mut Browser) -> PageRead {
    let page = browser.evaluate(READ_PAGE).await;
    assert_eq!(page["errors"], json!([]), "the page's script failed");
    let rows = |key: &str| page[key].as_array().cloned().unwrap_or_default();
    let mut metrics = BTreeMap::new();
    for row in rows("metrics") {
        let series = row[0].as_str().expect("a series").to_owned();
        let cell = Cell {
            value: row[1].as_str().and_then(|value| value.parse().ok()).unwrap_or(f64::NAN),
            text: row[2].as_str().unwrap_or_default().to_owned(),
            format: row[3].as_str().unwrap_or_default().to_owned(),
        };
        assert!(metrics.insert(series.clone(), cell).is_none(), "{series} is shown twice");
    }
    let rates = rows("rates")
        .iter()
        .map(|row| (row[0].as_str().unwrap_or_default().to_owned(), row[1].as_str().and_then(|v| v.parse().ok())))
        .collect();
    let markets = rows("markets")
        .iter()
        .map(|row| (row[0].as_str().unwrap_or_default().to_owned(), row[1].as_str().unwrap_or_default().to_owned()))
        .collect();
    PageRead {
        status: page["status"].as_str().unwrap_or_default().to_owned(),
        snapshots: page["snapshots"].as_u64().unwrap_or(0),
        connects: page["connects"].as_u64().unwrap_or(0),
        time_ms: page["time_ms"].as_u64().unwrap_or(0),
        metrics,
        rates,
        markets,
    }
}

/// Polls the page (bounded) until `done` holds.
async fn wait_for_page(browser: &mut Browser, what: &str, done: impl Fn(&PageRead) -> bool) -> PageRead {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = read_page(browser).await;
        if done(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}: {page:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// /metrics, then the page once it shows a snapshot built after that, then /metrics
/// again: every growing series on the page lies between the two.
struct Bracket {
    before: String,
    page: PageRead,
    after: String,
}

async fn read_bracketed(browser: &mut Browser, http: &Http) -> Bracket {
    let before = get_metrics(http);
    let fetched_ms = bourse_gateway::auth::unix_ms_now();
    let page = wait_for_page(browser, "a snapshot newer than /metrics", |page| page.time_ms > fetched_ms).await;
    let after = get_metrics(http);
    Bracket { before, page, after }
}

/// Every /metrics series is on the page, once, its text its value; growing series lie
/// between the scrapes before and after.
fn check_bracket(bracket: &Bracket) {
    let kinds = types(&bracket.before);
    let before = samples(&bracket.before);
    let after = samples(&bracket.after);
    for (series, low) in &before {
        let cell = bracket.page.metrics.get(series).unwrap_or_else(|| panic!("{series} is not on the page"));
        check_text(series, cell);
        if only_grows(series, &kinds) {
            let high = after[series];
            let slack = high.abs() * 1e-9; // _sum is a mean times a count, in floating point
            assert!(
                *low - slack <= cell.value && cell.value <= high + slack,
                "{series}: the page shows {}, /metrics said {low} before and {high} after",
                cell.value
            );
        } else {
            assert!(cell.value.is_finite(), "{series}: {cell:?}");
        }
    }
    let extra: Vec<&String> = bracket.page.metrics.keys().filter(|series| !after.contains_key(*series)).collect();
    assert!(extra.is_empty(), "the page shows series /metrics does not have: {extra:?}");
}

/// The text a person reads says the same as the value.
fn check_text(series: &str, cell: &Cell) {
    match cell.format.as_str() {
        "count" if cell.value.fract() == 0.0 => {
            assert_eq!(cell.text.replace(',', ""), format!("{}", cell.value as i64), "{series}: {cell:?}");
        }
        "seconds" | "bytes" => {
            let shown = scaled(&cell.text).unwrap_or_else(|| panic!("{series}: unreadable text {cell:?}"));
            let tolerance = cell.value.abs() * 0.006; // three significant digits
            assert!((shown - cell.value).abs() <= tolerance, "{series}: the text says {shown}: {cell:?}");
        }
        _ => assert!(!cell.text.is_empty() && cell.text != "–", "{series}: {cell:?}"),
    }
}

/// `"35.3 ms"` → 0.0353; `"1.5 KiB"` → 1536; `"0"` → 0.
fn scaled(text: &str) -> Option<f64> {
    let (number, unit) = text.split_once(' ').unwrap_or((text, ""));
    let factor = match unit {
        "" | "s" | "B" => 1.0,
        "ms" => 1e-3,
        "µs" => 1e-6,
        "ns" => 1e-9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * factor)
}

/// A loopback TCP proxy to `target` whose open connections can be cut at once.
struct Proxy {
    address: SocketAddr,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a proxy port");
        let address = listener.local_addr().expect("the proxy address");
        let open = Arc::new(Mutex::new(Vec::new()));
        let kept = open.clone();
        // The accepting thread ends with the test process.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect_timeout(&target, WAIT) else { continue };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                };
                let (Ok(client_in), Ok(upstream_in)) = (client.try_clone(), upstream.try_clone()) else { continue };
                kept.lock().expect("proxy lock").push(client.try_clone().expect("a socket handle"));
                pipe(client_in, upstream);
                pipe(upstream_in, client);
            }
        });
        Proxy { address, open }
    }

    /// Cuts every connection open now.
    fn cut(&self) {
        for stream in self.open.lock().expect("proxy lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Signed requests from one thread until stopped (at most [`LOAD_TIME_MAX`]):
/// transfers (every other one refused for insufficient funds), crossing orders, and
/// now and then a `cancel_all` for each side, which keeps the book small.
struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<LoadCounts>,
}

const LOAD_TIME_MAX: Duration = Duration::from_secs(40);
const LOAD_REQUESTS_MAX: u64 = 400_000;

#[derive(Debug, Default)]
struct LoadCounts {
    transfers_accepted: u64,
    transfers_rejected: u64,
    orders_accepted: u64,
    cancels_accepted: u64,
}

impl Load {
    fn start(server: &Server, buyer: u64, seller: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut http = server.admin_http();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut counts = LoadCounts::default();
            let mut step = 0_u64;
            while !stopping.load(Ordering::Relaxed) && started.elapsed() < LOAD_TIME_MAX && step < LOAD_REQUESTS_MAX {
                let cancel = |by: u64| json!({"by": by, "market": "BTC-USD"});
                let reply = match step % 4 {
                    _ if step % 200 == 198 => http.call("cancel_all", cancel(buyer)),
                    _ if step % 200 == 199 => http.call("cancel_all", cancel(seller)),
                    0 => http.call("transfer", json!({"by": buyer, "to": seller, "asset": "USD", "amount": "1.00"})),
                    1 => http.call("transfer", json!({"by": seller, "to": buyer, "asset": "USD", "amount": "90000000.00"})),
                    2 => http.call(
                        "place_order",
                        json!({"by": buyer, "market": "BTC-USD", "side": "buy", "price": (50_000 + step % 7).to_string(), "qty": "0.01"}),
                    ),
                    _ => http.call(
                        "place_order",
                        json!({"by": seller, "market": "BTC-USD", "side": "sell", "price": (50_003 + step % 5).to_string(), "qty": "0.01"}),
                    ),
                };
                match (step % 4, reply["ok"].as_bool()) {
                    _ if matches!(step % 200, 198 | 199) => {
                        assert_eq!(reply["ok"], true, "cancel_all: {reply}");
                        counts.cancels_accepted += 1;
                    }
                    (0 | 1, Some(true)) => counts.transfers_accepted += 1,
                    (0 | 1, Some(false)) => counts.transfers_rejected += 1,
                    (_, Some(true)) => counts.orders_accepted += 1,
                    _ => panic!("an order was refused: {reply}"),
                }
                step += 1;
            }
            counts
        });
        Load { stop, thread }
    }

    fn stop(self) -> LoadCounts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread")
    }
}

#[test]
#[allow(clippy::float_cmp, reason = "the page shows the very numbers /metrics printed: equal, not close")]
fn a_real_browser_shows_live_numbers_that_move_and_match_metrics() {
    let binary = match chromium() {
        Ok(binary) => binary,
        Err(why) => {
            eprintln!(
                "SKIPPED a_real_browser_shows_live_numbers_that_move_and_match_metrics: {why}. \
                 Install Debian's `chromium` package (or set BOURSE_CHROMIUM) to run it."
            );
            return;
        }
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"));
    let mut admin = server.admin_http();
    let open = |admin: &mut Http, owner: u64| {
        ok(admin.call("open_account", json!({"owner": owner})))["result"]["account"].as_u64().expect("an id")
    };
    let (buyer, seller) = (open(&mut admin, 1), open(&mut admin, 2));
    ok(admin.call("deposit", json!({"account": buyer, "asset": "USD", "amount": "100000000.00", "reference": "r"})));
    ok(admin.call("deposit", json!({"account": seller, "asset": "BTC", "amount": "10000", "reference": "r"})));
    let load = Load::start(&server, buyer, seller);
    let public = server.http(None);
    // The browser reaches the server through a proxy that can cut its connections.
    let proxy = Proxy::start(server.http);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (first, second, settled, counts) = runtime.block_on(async {
        let mut browser = Browser::launch(&binary).await;
        let version = browser.call("Browser.getVersion", json!({})).await;
        eprintln!("dashboard browser test: {} ({})", version["product"], binary.display());
        browser.open(&format!("http://{}/dashboard", proxy.address)).await;
        wait_for_page(&mut browser, "the live feed", |page| page.status == "live" && page.snapshots >= 2).await;

        // Two readings under load: each between two scrapes of /metrics.
        let first = read_bracketed(&mut browser, &public).await;
        let transfers =
            |page: &PageRead| page.metrics["bourse_commands_total{kind=\"Transfer\",outcome=\"accepted\"}"].value;
        // The feed drops (every connection through the proxy is cut): the page connects
        // again by itself and goes on.
        assert_eq!(first.page.connects, 1);
        proxy.cut();
        let floor = transfers(&first.page) + 50.0;
        wait_for_page(&mut browser, "50 more transfers, after connecting again", |page| {
            page.connects >= 2 && page.status == "live" && transfers(page) >= floor
        })
        .await;
        let second = read_bracketed(&mut browser, &public).await;

        // Stopped, with an order resting on each side: the page settles on exactly what
        // /metrics says.
        let mut counts = load.stop();
        for (by, side, price) in [(buyer, "buy", "49000"), (seller, "sell", "51000")] {
            let order = json!({"by": by, "market": "BTC-USD", "side": side, "price": price, "qty": "0.01"});
            ok(admin.call("place_order", order));
            counts.orders_accepted += 1;
        }
        let settling = Instant::now();
        let settled = loop {
            let bracket = read_bracketed(&mut browser, &public).await;
            if steady(&bracket.before) == steady(&bracket.after) || settling.elapsed() > WAIT {
                break bracket;
            }
        };
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
        browser.screenshot(&shot).await;
        eprintln!("dashboard browser test: a screenshot of the page is at {}", shot.display());
        if settled.page.status != "live" {
            eprintln!("chromium said: {:#?}", browser.stderr.lock().expect("stderr lock"));
        }
        (first, second, settled, counts)
    });

    for bracket in [&first, &second, &settled] {
        check_bracket(bracket);
    }
    // The numbers moved between the two readings, and the page's rates saw it.
    for series in [
        "bourse_commands_total{kind=\"Transfer\",outcome=\"accepted\"}",
        "bourse_commands_total{kind=\"Transfer\",outcome=\"rejected\"}",
        "bourse_commands_total{kind=\"PlaceOrder\",outcome=\"accepted\"}",
        "bourse_rejections_total{reason=\"InsufficientFunds\"}",
        "bourse_journal_bytes_total",
        "bourse_journal_durable_seq",
        "bourse_end_to_end_latency_seconds_count{transport=\"http\"}",
    ] {
        let (then, now) = (first.page.metrics[series].value, second.page.metrics[series].value);
        assert!(now > then, "{series} did not move on the page: {then} then {now}");
    }
    assert!(second.page.time_ms > first.page.time_ms);
    let rate = |series: &str| second.page.rates.get(series).copied().flatten().unwrap_or(0.0);
    assert!(rate("bourse_commands_total{kind=\"Transfer\"}") > 0.0, "{:?}", second.page.rates);
    assert!(rate("commands") > 0.0, "{:?}", second.page.rates);
    assert!(rate("bourse_journal_bytes_total") > 0.0, "{:?}", second.page.rates);

    // Settled: the page equals /metrics (but the snapshot's age, which keeps growing),
    // and the counts the load itself saw.
    let metrics = samples(&settled.after);
    for (series, value) in steady(&settled.after) {
        assert_eq!(settled.page.metrics[&series].value, value, "{series}");
    }
    assert_eq!(
        metrics["bourse_commands_total{kind=\"Transfer\",outcome=\"accepted\"}"],
        counts.transfers_accepted as f64
    );
    assert_eq!(
        metrics["bourse_commands_total{kind=\"Transfer\",outcome=\"rejected\"}"],
        counts.transfers_rejected as f64
    );
    assert_eq!(
        metrics["bourse_commands_total{kind=\"PlaceOrder\",outcome=\"accepted\"}"],
        counts.orders_accepted as f64
    );
    assert_eq!(
        metrics["bourse_commands_total{kind=\"CancelAll\",outcome=\"accepted\"}"],
        counts.cancels_accepted as f64
    );
    assert!(counts.transfers_rejected > 0 && counts.orders_accepted > 0, "{counts:?}");

    // Top of book: the page's BTC-USD row is the depth's best levels.
    let depth = public.get("/v1/markets/BTC-USD/depth?levels=1").json;
    let shown = |field: &str| settled.page.markets.get(&format!("BTC-USD/{field}")).cloned().unwrap_or_default();
    let level = |side: &str, index: usize| depth[side][0][index].as_str().map(str::to_owned).unwrap_or_default();
    assert_eq!(shown("market_seq"), depth["market_seq"].to_string(), "{depth}");
    assert_eq!((shown("bid"), shown("bid_qty")), (level("bids", 0), level("bids", 1)), "{depth}");
    assert_eq!((shown("ask"), shown("ask_qty")), (level("asks", 0), level("asks", 1)), "{depth}");
    assert!(!shown("bid").is_empty() && !shown("ask").is_empty(), "the load leaves orders on both sides: {depth}");
    assert!(!shown("last").is_empty(), "the load traded");
    eprintln!(
        "dashboard browser test: {counts:?}; {} snapshots drawn; {:.1?} in all",
        settled.page.snapshots,
        started.elapsed()
    );
}
