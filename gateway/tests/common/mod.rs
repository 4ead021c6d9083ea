//! The end-to-end harness: starts the real `bourse` binary on loopback and talks to it
//! with real clients (signed HTTP with ureq, WebSocket with tokio-tungstenite).
//!
//! Every wait is bounded ([`WAIT`]); a server is stopped when its [`Server`] is
//! dropped (SIGTERM, then SIGKILL if it does not exit in time).

#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc, clippy::must_use_candidate)]

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bourse_gateway::auth::{self, Credentials};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(30);
/// How long a test waits to be sure that something does *not* arrive.
pub const QUIET: Duration = Duration::from_millis(300);

/// A configuration file: `[server]` with `server_lines` (and a 100 ms signature future
/// skew unless they set one), and the embedded default's `[engine]` (assets and
/// markets).
pub fn config_with(server_lines: &str) -> String {
    let default = bourse_gateway::config::DEFAULT_CONFIG;
    let engine = &default[default.find("[[engine.assets]]").expect("the default config has assets")..];
    let skew = if server_lines.contains("signature_future_ms") { "" } else { "\nsignature_future_ms = 100" };
    format!("[server]\n{server_lines}{skew}\n\n{engine}")
}

/// A running `bourse serve`.
pub struct Server {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    /// The admin key printed on the first start of a data directory.
    pub admin_token: Option<String>,
    /// Every stdout line up to and including `ready`.
    pub startup: Vec<String>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// The server's `signature_future_ms`.
    future_ms: u64,
}

impl Server {
    /// Starts a server on `data_dir` with the embedded configuration's engine and
    /// defaults, but a 100 ms future skew for signatures (so a test waits 100 ms, not
    /// the default 2 s, for the start barrier; see `wait_ready`).
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, Some(&config_with("signature_future_ms = 100")))
    }

    /// Starts a server on `data_dir`, with the configuration text `config` (written
    /// beside the data directory) when given.
    pub fn start_with(data_dir: &Path, config: Option<&str>) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bourse"));
        command.arg("serve").arg("--data-dir").arg(data_dir).args(["--http", "127.0.0.1:0", "--fix", "127.0.0.1:0"]);
        if let Some(text) = config {
            let path = data_dir.with_extension("toml");
            std::fs::write(&path, text).expect("writing the config file");
            command.arg("--config").arg(&path);
        }
        command.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting the bourse binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0_u8; 4096];
            while let Ok(read) = stderr_pipe.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                sink.lock().expect("stderr lock").push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        let future_ms = config
            .and_then(|text| {
                text.lines().find_map(|line| {
                    line.trim().strip_prefix("signature_future_ms =").map(str::trim).map(str::to_owned)
                })
            })
            .map_or(2_000, |value| value.parse().expect("signature_future_ms is a number"));
        let mut server = Server {
            future_ms,
            child: Some(child),
            data_dir: data_dir.to_owned(),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: None,
            startup: Vec::new(),
            lines,
            stderr,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(error) => panic!(
                    "the server did not print `ready` ({error}); stdout so far: {:#?}; stderr: {}",
                    self.startup,
                    self.stderr()
                ),
            };
            self.startup.push(line.clone());
            if let Some(token) = line.trim().strip_prefix("export BOURSE_KEY=") {
                self.admin_token = Some(token.to_owned());
            }
            if let Some(rest) = line.strip_prefix("HTTP API:") {
                let url = rest.split_whitespace().next().expect("an URL after `HTTP API:`");
                let address = url.trim_start_matches("http://").trim_end_matches("/v1/rpc");
                self.http = address.parse().expect("the HTTP address");
            }
            if line == "ready" {
                assert_ne!(self.http.port(), 0, "no `HTTP API:` line before ready: {:#?}", self.startup);
                // The server refuses requests stamped at or before its start plus its
                // future skew (their nonces may be a previous process's): let the clock
                // pass that.
                let ready_ms = auth::unix_ms_now() + self.future_ms;
                while auth::unix_ms_now() <= ready_ms {
                    std::thread::sleep(Duration::from_micros(200));
                }
                return;
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.http)
    }

    /// The admin credentials (first start of a data directory only).
    pub fn admin(&self) -> Credentials {
        Credentials::from_token(self.admin_token.as_deref().expect("the admin key was printed")).expect("a valid token")
    }

    /// An HTTP client signing with `credentials`, or unsigned.
    pub fn http(&self, credentials: Option<Credentials>) -> Http {
        Http::new(&self.base_url(), credentials)
    }

    /// An HTTP client signing with the admin key.
    pub fn admin_http(&self) -> Http {
        self.http(Some(self.admin()))
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit status and the
    /// stdout lines printed after `ready`.
    pub fn terminate(&mut self) -> (ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("a running server");
        signal(child.id(), "TERM");
        let status = wait_bounded(&mut child, WAIT).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("the server did not exit within {WAIT:?} of SIGTERM; stderr: {}", self.stderr())
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + WAIT;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            lines.push(line);
        }
        (status, lines)
    }

    /// SIGKILL: the process dies at once, with no shutdown of any kind.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("a running server");
        child.kill().expect("SIGKILL");
        wait_bounded(&mut child, WAIT).expect("a killed process exits");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            if wait_bounded(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().expect("running kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the server") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------
// HTTP

/// An HTTP reply: the status and the body (as JSON when it is JSON).
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    pub text: String,
    pub json: Value,
}

/// A blocking HTTP client for `POST /v1/rpc` (signed with its key, if it has one)
/// and the public GET endpoints.
#[derive(Debug)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
    pub credentials: Option<Credentials>,
    next_id: u64,
    /// The status of the last `call`.
    pub last_status: u16,
}

impl Http {
    pub fn new(base: &str, credentials: Option<Credentials>) -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(WAIT))
            .http_status_as_error(false)
            .max_idle_connections_per_host(1)
            .build();
        Http { agent: config.into(), base: base.to_owned(), credentials, next_id: 1, last_status: 0 }
    }

    /// The four signature headers for `body` at `timestamp_ms` with `nonce`.
    pub fn signature_headers(
        credentials: &Credentials,
        timestamp_ms: u64,
        nonce: &str,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        vec![
            (auth::HEADER_KEY, credentials.key_id.clone()),
            (auth::HEADER_TIMESTAMP, timestamp_ms.to_string()),
            (auth::HEADER_NONCE, nonce.to_owned()),
            (auth::HEADER_SIGNATURE, credentials.sign(timestamp_ms, nonce, "POST", "/v1/rpc", body)),
        ]
    }

    /// `POST /v1/rpc` with exactly these headers and bytes.
    pub fn post_raw(&self, body: &[u8], headers: &[(&str, String)]) -> HttpReply {
        let mut request = self.agent.post(format!("{}/v1/rpc", self.base)).header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send(body).expect("the server answers");
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("Retry-After").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let text = response.body_mut().with_config().limit(16 << 20).read_to_string().expect("a readable body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        HttpReply { status, retry_after, text, json }
    }

    /// `POST /v1/rpc` with `body`, signed now with a fresh nonce when the client has
    /// credentials.
    pub fn post(&self, body: &[u8]) -> HttpReply {
        let headers = match &self.credentials {
            Some(credentials) => Http::signature_headers(credentials, auth::unix_ms_now(), &auth::new_nonce(), body),
            None => Vec::new(),
        };
        self.post_raw(body, &headers)
    }

    /// Sends `request`, signed; `Err` when the server cannot be reached or the
    /// exchange breaks off (no reply: the request may or may not have run).
    pub fn try_request(&self, request: &Value) -> Result<Value, String> {
        let body = request.to_string();
        let credentials = self.credentials.as_ref().ok_or("an unsigned client")?;
        let mut call = self.agent.post(format!("{}/v1/rpc", self.base)).header("Content-Type", "application/json");
        for (name, value) in
            Http::signature_headers(credentials, auth::unix_ms_now(), &auth::new_nonce(), body.as_bytes())
        {
            call = call.header(name, value);
        }
        let mut response = call.send(body.as_bytes()).map_err(|error| error.to_string())?;
        let text = response.body_mut().read_to_string().map_err(|error| error.to_string())?;
        serde_json::from_str(&text).map_err(|error| format!("{error}: {text}"))
    }

    /// Sends `request` as it is (its own `id`, if any).
    pub fn request(&mut self, request: &Value) -> Value {
        let reply = self.post(request.to_string().as_bytes());
        self.last_status = reply.status;
        assert!(!reply.json.is_null(), "HTTP {} with a body that is not JSON: {}", reply.status, reply.text);
        reply.json
    }

    /// `{"id": <next>, "op": op, …params}`; the reply as JSON, whatever the status.
    pub fn call(&mut self, op: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let reply = self.request(&with_id_op(json!(id), op, params));
        // Authentication (401) and the rate limit (429) are checked on the raw bytes,
        // before the body is read as a request: those replies have no id to echo.
        if !matches!(self.last_status, 401 | 429) {
            assert_eq!(reply["id"], json!(id), "the reply echoes the id: {reply}");
        }
        reply
    }

    /// `GET path`: (status, body).
    pub fn get(&self, path: &str) -> HttpReply {
        let mut response = self.agent.get(format!("{}{path}", self.base)).call().expect("the server answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("a readable body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        HttpReply { status, retry_after: None, text, json }
    }
}

/// `{"id": id, "op": op, …params}`.
pub fn with_id_op(id: Value, op: &str, params: Value) -> Value {
    let mut object = match params {
        Value::Object(object) => object,
        Value::Null => Map::new(),
        other => panic!("params must be an object, got {other}"),
    };
    object.insert("id".into(), id);
    object.insert("op".into(), Value::from(op));
    Value::Object(object)
}

// ---------------------------------------------------------------------------------
// WebSocket

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client. Messages that are not the reply being waited for (pushes,
/// market data, other replies) are kept, in order, for [`Ws::next_matching`].
#[derive(Debug)]
pub struct Ws {
    pub stream: WsStream,
    stash: VecDeque<Value>,
    next_id: u64,
    /// The close frame's (code, reason) once the server closed the session.
    pub closed: Option<(u16, String)>,
}

impl Ws {
    pub async fn connect(server: &Server) -> Ws {
        Ws::connect_to(&server.ws_url()).await
    }

    /// Connects to `url` (`ws://…/v1/ws`) on the current runtime.
    pub async fn connect_to(url: &str) -> Ws {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("WebSocket connect in time")
            .expect("WebSocket handshake");
        Ws { stream, stash: VecDeque::new(), next_id: 1, closed: None }
    }

    /// Connects and logs in with `credentials`; panics unless the login succeeds.
    pub async fn login(server: &Server, credentials: &Credentials) -> Ws {
        let mut ws = Ws::connect(server).await;
        let reply = ws.try_login(credentials).await;
        assert_eq!(reply["ok"], true, "login: {reply}");
        ws
    }

    /// Sends a login signed now; returns the reply.
    pub async fn try_login(&mut self, credentials: &Credentials) -> Value {
        let mut login = auth::ws_login(credentials, auth::unix_ms_now());
        login["id"] = json!("login");
        self.request(login).await
    }

    pub async fn send(&mut self, message: Message) {
        tokio::time::timeout(WAIT, self.stream.send(message)).await.expect("send in time").expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    /// Sends `request` (given an id `"ws-N"` unless it has one) and waits for the
    /// reply with that id.
    pub async fn request(&mut self, mut request: Value) -> Value {
        if request.get("id").is_none() {
            request["id"] = json!(format!("ws-{}", self.next_id));
            self.next_id += 1;
        }
        let id = request["id"].clone();
        self.send_text(&request.to_string()).await;
        self.next_matching(|message| is_reply(message) && message["id"] == id).await
    }

    /// Sends `request` (which has an id) and waits for its reply; `None` when the
    /// session breaks off first (the request may or may not have run).
    pub async fn try_request(&mut self, request: &Value) -> Option<Value> {
        let id = request["id"].clone();
        tokio::time::timeout(WAIT, self.stream.send(Message::text(request.to_string()))).await.ok()?.ok()?;
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self.read_json(deadline).await?;
            if is_reply(&message) && message["id"] == id {
                return Some(message);
            }
            self.stash.push_back(message);
        }
    }

    /// `{"id": "ws-N", "op": op, …params}`; the reply.
    pub async fn call(&mut self, op: &str, params: Value) -> Value {
        let id = json!(format!("ws-{}", self.next_id));
        self.next_id += 1;
        self.request(with_id_op(id, op, params)).await
    }

    /// The next message (stashed first), or `None` if nothing arrives within `limit`
    /// or the session closed.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Value> {
        if let Some(message) = self.stash.pop_front() {
            return Some(message);
        }
        self.read_json(Instant::now() + limit).await
    }

    /// The first message that satisfies `matches` (stashed ones first); the others
    /// read on the way are stashed. Panics after [`WAIT`].
    pub async fn next_matching(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(position) = self.stash.iter().position(&matches) {
            return self.stash.remove(position).expect("present");
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let Some(message) = self.read_json(deadline).await else {
                panic!("no matching message within {WAIT:?} (closed: {:?}); stashed: {:#?}", self.closed, self.stash);
            };
            if matches(&message) {
                return message;
            }
            self.stash.push_back(message);
        }
    }

    /// Everything stashed so far, oldest first.
    pub fn take_stash(&mut self) -> Vec<Value> {
        self.stash.drain(..).collect()
    }

    /// Reads frames until a text frame (parsed as JSON), the deadline, or the end.
    async fn read_json(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.stream.next()).await.ok()??;
            match frame {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON text frame: {text}")));
                }
                Ok(Message::Close(frame)) => {
                    self.closed =
                        Some(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string())));
                    return None;
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits (bounded) for the server to close the session; returns the close frame's
    /// code and reason and the text messages read before it.
    pub async fn wait_closed(&mut self) -> ((u16, String), Vec<Value>) {
        let deadline = Instant::now() + WAIT;
        let mut before = self.take_stash();
        while self.closed.is_none() {
            assert!(Instant::now() < deadline, "the session was not closed within {WAIT:?}");
            match self.read_json(deadline).await {
                Some(message) => before.push(message),
                None if self.closed.is_none() => return ((1006, "no close frame".to_owned()), before),
                None => {}
            }
        }
        (self.closed.clone().expect("closed"), before)
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.stream.close(None)).await;
    }
}

/// A reply has `ok`; pushes and market data have `channel` and no `ok`.
pub fn is_reply(message: &Value) -> bool {
    message.get("ok").is_some()
}

// ---------------------------------------------------------------------------------
// One interface over both transports, for scenarios that run over each.

/// Sends one API op and returns the reply (whatever its `ok`).
#[allow(async_fn_in_trait)]
pub trait Rpc {
    async fn call(&mut self, op: &str, params: Value) -> Value;
    fn transport(&self) -> &'static str;
}

impl Rpc for Http {
    async fn call(&mut self, op: &str, params: Value) -> Value {
        Http::call(self, op, params)
    }
    fn transport(&self) -> &'static str {
        "http"
    }
}

impl Rpc for Ws {
    async fn call(&mut self, op: &str, params: Value) -> Value {
        Ws::call(self, op, params).await
    }
    fn transport(&self) -> &'static str {
        "websocket"
    }
}

/// Panics unless `reply` is `ok: true`; returns it.
#[track_caller]
pub fn ok(reply: Value) -> Value {
    assert_eq!(reply["ok"], true, "expected ok, got {reply}");
    reply
}

/// Panics unless `reply` is `ok: false` with `code`; returns it.
#[track_caller]
pub fn rejected(reply: &Value, code: &str) {
    assert_eq!(reply["ok"], false, "expected a rejection {code}, got {reply}");
    assert_eq!(reply["error"]["code"], code, "wrong error code: {reply}");
    assert!(reply["error"]["message"].as_str().is_some_and(|message| !message.is_empty()), "no message: {reply}");
}

/// The events of a reply or push of type `kind`.
pub fn events_of<'a>(reply: &'a Value, kind: &str) -> Vec<&'a Value> {
    reply["events"]
        .as_array()
        .map(|events| events.iter().filter(|event| event["type"] == kind).collect())
        .unwrap_or_default()
}

/// (available, held) of `asset` in `account`, as the `balances` query answers; `None`
/// when the account never held it.
pub async fn balance(rpc: &mut impl Rpc, account: u64, asset: &str) -> Option<(String, String)> {
    let reply = ok(rpc.call("balances", json!({"account": account})).await);
    reply["result"]["balances"].as_array().expect("a balances array").iter().find(|row| row["asset"] == asset).map(
        |row| {
            (row["available"].as_str().expect("available").to_owned(), row["held"].as_str().expect("held").to_owned())
        },
    )
}

/// Panics unless `actual` (as [`balance`] answers) is exactly `available` and `held`.
#[track_caller]
#[allow(clippy::needless_pass_by_value, reason = "takes `balance(..).await` as it comes")]
pub fn assert_balance(actual: Option<(String, String)>, available: &str, held: &str, what: &str) {
    assert_eq!(actual, Some((available.to_owned(), held.to_owned())), "{what}");
}

/// Opens an account for `owner` (as an operator) and returns its id.
pub async fn open_account(rpc: &mut impl Rpc, owner: u64) -> u64 {
    let reply = ok(rpc.call("open_account", json!({"owner": owner})).await);
    reply["result"]["account"].as_u64().expect("an account id")
}

/// Deposits `amount` of `asset` (as an operator).
pub async fn deposit(rpc: &mut impl Rpc, account: u64, asset: &str, amount: &str) {
    ok(rpc.call("deposit", json!({"account": account, "asset": asset, "amount": amount, "reference": "setup"})).await);
}

/// Creates a key with `permissions` for `accounts` (as an operator).
pub async fn create_key(rpc: &mut impl Rpc, permissions: &[&str], accounts: &[u64]) -> Credentials {
    let reply =
        ok(rpc.call("create_key", json!({"permissions": permissions, "accounts": accounts, "label": "test"})).await);
    Credentials::from_token(reply["result"]["api_key"].as_str().expect("an api_key")).expect("a valid token")
}

/// The value of the Prometheus counter `name_and_labels`, an integer.
pub fn counter(text: &str, name_and_labels: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == name_and_labels).then(|| value.parse().expect("an integer counter"))
    })
}

/// The value of the Prometheus sample `name_and_labels` (exact match of the text
/// before the value); `None` when absent.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == name_and_labels).then(|| value.parse().expect("a numeric sample"))
    })
}
