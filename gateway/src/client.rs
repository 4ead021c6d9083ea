//! `bourse call`: sends one API request, signed with a key taken from the environment
//! or a file, and prints the reply, so operators and the walkthrough never sign by
//! hand.
//!
//! ```text
//! bourse call transfer from:=1 to:=2 asset=USD amount=12.50 idempotency_key=7f3a…
//! bourse call markets                         # a public op: no key needed
//! echo '{"account":1}' | bourse call balances -
//! ```
//!
//! The body is `{"id": <request id>, "op": <op>, …params}`, sent as `POST /v1/rpc`
//! with the four `X-Bourse-*` headers of [`crate::auth`] when a key is configured,
//! unsigned otherwise. The reply is printed as pretty JSON; the exit code is 0 when it
//! says `"ok": true`, 1 otherwise.

use std::io::{self, Read as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::auth::{
    Credentials, CredentialsError, HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, new_nonce, unix_ms_now,
};

/// The server `bourse call` talks to unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Where API requests go.
pub const RPC_PATH: &str = "/v1/rpc";
/// The whole exchange (connect, send, receive) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// At most this much is read from standard input for `-`.
pub const STDIN_BYTES_MAX: u64 = 16 << 20;

/// `bourse call OP [PARAM]…`: send one API request and print the reply.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    #[arg(long, help = "The server's base URL [default: $BOURSE_URL, else http://127.0.0.1:8080]")]
    pub url: Option<String>,
    #[arg(
        long,
        help = "A file holding the API key <key_id>.<secret> [default: $BOURSE_KEY (the key itself), \
                else the file named by $BOURSE_KEY_FILE; without a key the request goes unsigned, \
                which only public ops accept]"
    )]
    pub key_file: Option<PathBuf>,
    /// The parameters as one JSON object (NAME=VALUE parameters may add to it).
    #[arg(long, value_name = "OBJECT")]
    pub json: Option<String>,
    /// The operation: `markets`, `balances`, `transfer`, `place_order`, …
    pub op: String,
    /// NAME=VALUE (VALUE as a JSON string), NAME:=JSON (any JSON value: numbers,
    /// booleans, arrays, objects), or `-` (a JSON object read from standard input).
    pub params: Vec<String>,
}

/// A parameter list that does not make a request object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error(
        "parameter {0:?} is not NAME=VALUE (a string), NAME:=JSON (any JSON value) or - (a JSON object on standard input)"
    )]
    NotAParameter(String),
    #[error("parameter {name}: {value:?} is not valid JSON ({reason}); for a string use {name}=VALUE")]
    BadJson { name: String, value: String, reason: String },
    #[error("{origin} is not a JSON object: {reason}")]
    NotAnObject { origin: &'static str, reason: String },
    #[error("parameter {0} is given twice")]
    Duplicate(String),
    #[error("{0} is set by bourse call itself and cannot be a parameter")]
    Reserved(String),
    #[error("give the whole object once: --json or -, not both (nor - twice)")]
    TwoObjects,
}

/// The request object: `{"id", "op", …params}`. `stdin` is the text read for `-`
/// (the caller reads it only when a parameter is `-`).
pub fn build_request(
    op: &str,
    request_id: u64,
    json: Option<&str>,
    params: &[String],
    stdin: Option<&str>,
) -> Result<Value, ParamError> {
    let mut object = Map::new();
    let mut whole_objects = 0;
    if let Some(text) = json {
        object = parse_object("--json", text)?;
        whole_objects += 1;
    }
    for param in params {
        if param == "-" {
            whole_objects += 1;
            if whole_objects > 1 {
                return Err(ParamError::TwoObjects);
            }
            object = parse_object("standard input", stdin.unwrap_or_default())?;
            continue;
        }
        let (name, value) = parse_param(param)?;
        if object.contains_key(&name) {
            return Err(ParamError::Duplicate(name));
        }
        object.insert(name, value);
    }
    for reserved in ["id", "op"] {
        if object.contains_key(reserved) {
            return Err(ParamError::Reserved(reserved.to_owned()));
        }
    }
    object.insert("id".to_owned(), Value::from(request_id));
    object.insert("op".to_owned(), Value::from(op));
    Ok(Value::Object(object))
}

/// `name=value` → a JSON string; `name:=json` → that JSON value. The first `=`
/// decides, so `memo=a:=b` is the string `a:=b`.
fn parse_param(param: &str) -> Result<(String, Value), ParamError> {
    let not_a_parameter = || ParamError::NotAParameter(param.to_owned());
    let (left, value) = param.split_once('=').ok_or_else(not_a_parameter)?;
    let (name, raw_json) = match left.strip_suffix(':') {
        Some(name) => (name, true),
        None => (left, false),
    };
    if name.is_empty() {
        return Err(not_a_parameter());
    }
    if !raw_json {
        return Ok((name.to_owned(), Value::from(value)));
    }
    let parsed = serde_json::from_str(value).map_err(|error| ParamError::BadJson {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: error.to_string(),
    })?;
    Ok((name.to_owned(), parsed))
}

fn parse_object(origin: &'static str, text: &str) -> Result<Map<String, Value>, ParamError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ParamError::NotAnObject { origin, reason: format!("found {}", json_kind(&other)) }),
        Err(error) => Err(ParamError::NotAnObject { origin, reason: error.to_string() }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The four authentication headers for a request (a fresh nonce each call).
pub fn signed_request_headers(
    credentials: &Credentials,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
) -> Vec<(&'static str, String)> {
    let nonce = new_nonce();
    let signature = credentials.sign(now_ms, &nonce, method, path, body);
    vec![
        (HEADER_KEY, credentials.key_id.clone()),
        (HEADER_TIMESTAMP, now_ms.to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, signature),
    ]
}

/// The server could not be reached, or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the server at {url}: {source}")]
pub struct Unreachable {
    pub url: String,
    #[source]
    pub source: ureq::Error,
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// A small API client: one HTTP agent (connections reused), requests signed when it
/// has credentials.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    base_url: String,
    credentials: Option<Credentials>,
    request_id_next: AtomicU64,
}

impl Client {
    pub fn new(base_url: &str, credentials: Option<Credentials>) -> Self {
        let config = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build();
        Client {
            agent: config.into(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            request_id_next: AtomicU64::new(1),
        }
    }

    pub fn is_signed(&self) -> bool {
        self.credentials.is_some()
    }

    /// A fresh request id (1, 2, 3… per client).
    pub fn next_request_id(&self) -> u64 {
        self.request_id_next.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `body` as `POST /v1/rpc`, signed if the client has credentials. Any
    /// HTTP status is a reply; only a transport failure is an error.
    pub fn post_rpc(&self, body: &[u8]) -> Result<Reply, Unreachable> {
        let url = format!("{}{RPC_PATH}", self.base_url);
        let mut request = self.agent.post(&url).header("Content-Type", "application/json");
        if let Some(credentials) = &self.credentials {
            for (name, value) in signed_request_headers(credentials, "POST", RPC_PATH, body, unix_ms_now()) {
                request = request.header(name, value);
            }
        }
        let unreachable = |source| Unreachable { url: url.clone(), source };
        let mut response = request.send(body).map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(unreachable)?;
        Ok(Reply { status, body })
    }

    /// Sends `op` with `params` and returns the reply as JSON (whatever its `ok`).
    pub fn call(&self, op: &str, params: Map<String, Value>) -> anyhow::Result<Value> {
        let mut object = params;
        object.insert("id".to_owned(), Value::from(self.next_request_id()));
        object.insert("op".to_owned(), Value::from(op));
        let body = serde_json::to_vec(&Value::Object(object))?;
        let reply = self.post_rpc(&body)?;
        serde_json::from_str(&reply.body).map_err(|error| {
            anyhow::anyhow!("the server answered HTTP {} with a body that is not JSON ({error})", reply.status)
        })
    }
}

/// What `bourse call` prints and exits with.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    exit_code: i32,
    stdout: String,
    stderr: Option<String>,
}

/// Runs `bourse call`: prints the reply on stdout and returns the exit code (0 when the
/// reply says `"ok": true`, 1 otherwise). Bad parameters, an unreadable key and an
/// unreachable server are errors, each with a message that says what was wrong.
pub fn run(args: CallArgs) -> anyhow::Result<i32> {
    let credentials = match Credentials::from_env_or_file(args.key_file.as_deref()) {
        Ok(credentials) => Some(credentials),
        Err(CredentialsError::NotConfigured) => None,
        Err(error) => return Err(error.into()),
    };
    let url = args
        .url
        .or_else(|| std::env::var("BOURSE_URL").ok().filter(|url| !url.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let stdin = if args.params.iter().any(|param| param == "-") { Some(read_stdin()?) } else { None };
    let client = Client::new(&url, credentials);
    let outcome = execute(&client, &args.op, args.json.as_deref(), &args.params, stdin.as_deref())?;
    println!("{}", outcome.stdout);
    if let Some(message) = outcome.stderr {
        eprintln!("bourse call: {message}");
    }
    Ok(outcome.exit_code)
}

fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    io::stdin().take(STDIN_BYTES_MAX + 1).read_to_string(&mut text)?;
    anyhow::ensure!(text.len() as u64 <= STDIN_BYTES_MAX, "standard input is larger than {STDIN_BYTES_MAX} bytes");
    Ok(text)
}

fn execute(
    client: &Client,
    op: &str,
    json: Option<&str>,
    params: &[String],
    stdin: Option<&str>,
) -> anyhow::Result<Outcome> {
    let request = build_request(op, client.next_request_id(), json, params, stdin)?;
    let body = serde_json::to_vec(&request)?;
    let reply = client.post_rpc(&body)?;
    let Ok(value) = serde_json::from_str::<Value>(&reply.body) else {
        return Ok(Outcome {
            exit_code: 1,
            stdout: reply.body,
            stderr: Some(format!("the server answered HTTP {} with a body that is not JSON", reply.status)),
        });
    };
    let ok = value.get("ok") == Some(&Value::Bool(true));
    let stderr = (!ok && !client.is_signed()).then(|| {
        "no API key is configured, so the request went unsigned (only public ops accept that): \
         set BOURSE_KEY, or BOURSE_KEY_FILE, or pass --key-file"
            .to_owned()
    });
    let stdout = serde_json::to_string_pretty(&value)?;
    Ok(Outcome { exit_code: i32::from(!ok), stdout, stderr })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use serde_json::json;

    use super::*;
    use crate::auth::{AuthHeaders, KeyStore, NewKey, Verifier, VerifierConfig};

    fn params(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn name_value_is_a_string_and_name_colon_equals_is_json() {
        let request = build_request(
            "transfer",
            7,
            None,
            &params(&["asset=USD", "amount=12.50", "from:=1", "legs:=[{\"to\":2}]", "memo=a:=b=c", "flag:=true"]),
            None,
        )
        .unwrap();
        assert_eq!(
            request,
            json!({
                "id": 7, "op": "transfer", "asset": "USD", "amount": "12.50", "from": 1,
                "legs": [{"to": 2}], "memo": "a:=b=c", "flag": true,
            })
        );
        let empty = build_request("markets", 1, None, &[], None).unwrap();
        assert_eq!(empty, json!({"id": 1, "op": "markets"}));
        let empty_string = build_request("x", 1, None, &params(&["memo="]), None).unwrap();
        assert_eq!(empty_string["memo"], "");
    }

    #[test]
    fn bad_json_after_colon_equals_is_a_clear_error() {
        let error = build_request("transfer", 1, None, &params(&["amount:=12,5"]), None).unwrap_err();
        assert!(matches!(&error, ParamError::BadJson { name, .. } if name == "amount"), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with("parameter amount: \"12,5\" is not valid JSON"), "{message}");
        assert!(message.ends_with("for a string use amount=VALUE"), "{message}");
        let empty = build_request("transfer", 1, None, &params(&["amount:="]), None).unwrap_err();
        assert!(matches!(empty, ParamError::BadJson { .. }));
    }

    #[test]
    fn malformed_duplicate_and_reserved_parameters_are_refused() {
        let refuse = |list: &[&str]| build_request("op", 1, None, &params(list), None).unwrap_err();
        assert_eq!(refuse(&["amount"]), ParamError::NotAParameter("amount".to_owned()));
        assert_eq!(refuse(&["=5"]), ParamError::NotAParameter("=5".to_owned()));
        assert_eq!(refuse(&[":=5"]), ParamError::NotAParameter(":=5".to_owned()));
        assert_eq!(refuse(&["a=1", "a:=2"]), ParamError::Duplicate("a".to_owned()));
        assert_eq!(refuse(&["op=transfer"]), ParamError::Reserved("op".to_owned()));
        assert_eq!(refuse(&["id:=3"]), ParamError::Reserved("id".to_owned()));
        assert!(refuse(&["amount"]).to_string().contains("NAME=VALUE"));
    }

    #[test]
    fn a_whole_object_comes_from_json_or_stdin_and_params_add_to_it() {
        let request = build_request("balances", 2, Some(r#"{"account": 1}"#), &params(&["asset=USD"]), None).unwrap();
        assert_eq!(request, json!({"id": 2, "op": "balances", "account": 1, "asset": "USD"}));
        let request = build_request("balances", 2, None, &params(&["-"]), Some(r#"{"account": 4}"#)).unwrap();
        assert_eq!(request, json!({"id": 2, "op": "balances", "account": 4}));

        let both = build_request("balances", 2, Some("{}"), &params(&["-"]), Some("{}")).unwrap_err();
        assert_eq!(both, ParamError::TwoObjects);
        let array = build_request("balances", 2, Some("[1]"), &[], None).unwrap_err();
        assert_eq!(array.to_string(), "--json is not a JSON object: found an array");
        let broken = build_request("balances", 2, None, &params(&["-"]), Some("{")).unwrap_err();
        assert!(matches!(broken, ParamError::NotAnObject { origin: "standard input", .. }), "{broken:?}");
        let duplicate = build_request("balances", 2, Some(r#"{"a":1}"#), &params(&["a=2"]), None).unwrap_err();
        assert_eq!(duplicate, ParamError::Duplicate("a".to_owned()));
    }

    #[test]
    fn signed_request_headers_verify_on_the_server_side() {
        let dir = tempfile::tempdir().unwrap();
        let (store, admin) = KeyStore::open(dir.path().join("keys.json")).unwrap();
        let verifier = Verifier::new(Arc::new(store), VerifierConfig::default()).unwrap();
        let credentials = admin.unwrap().credentials();
        let now_ms = unix_ms_now();
        let body = br#"{"op":"health"}"#;
        let headers = signed_request_headers(&credentials, "POST", RPC_PATH, body, now_ms);
        let names: Vec<_> = headers.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, [HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE]);
        let lookup = |name| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        let auth = AuthHeaders::from_lookup(lookup);
        assert!(verifier.verify_headers(&auth, "POST", RPC_PATH, body, now_ms).is_ok());
        let again = signed_request_headers(&credentials, "POST", RPC_PATH, body, now_ms);
        assert_ne!(again[2].1, headers[2].1, "every request gets a fresh nonce");
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        call: CallArgs,
    }

    #[test]
    fn the_command_line_takes_an_op_parameters_a_dash_and_options() {
        use clap::{CommandFactory as _, Parser as _};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "call",
            "--url",
            "http://h:1",
            "transfer",
            "amount=1",
            "-",
            "--key-file",
            "k",
            "x:=-5",
        ])
        .unwrap();
        assert_eq!(cli.call.url.as_deref(), Some("http://h:1"));
        assert_eq!(cli.call.key_file, Some(PathBuf::from("k")));
        assert_eq!(cli.call.op, "transfer");
        assert_eq!(cli.call.params, ["amount=1", "-", "x:=-5"]);
        let cli = Cli::try_parse_from(["call", "--json", r#"{"a":1}"#, "markets"]).unwrap();
        assert_eq!((cli.call.json.as_deref(), cli.call.params.len()), (Some(r#"{"a":1}"#), 0));
        assert!(Cli::try_parse_from(["call"]).is_err(), "the op is required");
    }

    /// What the fake server saw.
    struct Seen {
        request_line: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
        verified: Option<Result<String, String>>,
    }

    /// A one-request HTTP server that verifies signed requests with a real `Verifier`
    /// and answers `{"ok": <verified or unsigned>, "id": …}`.
    fn serve_once(verifier: Arc<Verifier>, reply_ok: bool) -> (String, JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = HashMap::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
            }
            let length: usize = headers.get("content-length").map_or(0, |v| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let lookup = |name: &'static str| headers.get(&name.to_ascii_lowercase()).map(String::as_str);
            let auth = AuthHeaders::from_lookup(lookup);
            let verified = (!auth.is_empty()).then(|| {
                verifier
                    .verify_headers(&auth, "POST", RPC_PATH, &body, unix_ms_now())
                    .map(|authenticated| authenticated.key_id)
                    .map_err(|error| error.code().to_owned())
            });
            let request: Value = serde_json::from_slice(&body).unwrap();
            let ok = reply_ok && verified.as_ref().is_none_or(Result::is_ok);
            let reply = json!({"ok": ok, "id": request["id"], "echo": request}).to_string();
            let status = if ok { "200 OK" } else { "400 Bad Request" };
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
            Seen { request_line, headers, body, verified }
        });
        (url, handle)
    }

    fn setup() -> (tempfile::TempDir, Arc<Verifier>, NewKey) {
        let dir = tempfile::tempdir().unwrap();
        let (store, admin) = KeyStore::open(dir.path().join("keys.json")).unwrap();
        let verifier = Verifier::new(Arc::new(store), VerifierConfig::default()).unwrap();
        (dir, Arc::new(verifier), admin.unwrap())
    }

    #[test]
    fn a_signed_call_reaches_the_server_verified_and_exits_zero_on_ok() {
        let (_dir, verifier, admin) = setup();
        let (url, server) = serve_once(Arc::clone(&verifier), true);
        let client = Client::new(&format!("{url}/"), Some(admin.credentials()));
        let outcome = execute(&client, "balances", None, &params(&["account:=3", "asset=USD"]), None).unwrap();
        let seen = server.join().unwrap();
        assert_eq!(seen.request_line.trim_end(), "POST /v1/rpc HTTP/1.1");
        assert_eq!(seen.headers["content-type"], "application/json");
        assert_eq!(seen.verified, Some(Ok(admin.id.clone())));
        let sent: Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(sent, json!({"id": 1, "op": "balances", "account": 3, "asset": "USD"}));
        assert_eq!(outcome.exit_code, 0);
        assert_eq!(outcome.stderr, None);
        let printed: Value = serde_json::from_str(&outcome.stdout).unwrap();
        assert_eq!(printed["ok"], true);
        assert!(outcome.stdout.contains("\n  \"echo\""), "pretty-printed: {}", outcome.stdout);
    }

    #[test]
    fn a_reply_that_is_not_ok_exits_one() {
        let (_dir, verifier, admin) = setup();
        let (url, server) = serve_once(verifier, false);
        let client = Client::new(&url, Some(admin.credentials()));
        let outcome = execute(&client, "transfer", None, &[], None).unwrap();
        assert!(server.join().unwrap().verified.is_some_and(|v| v.is_ok()));
        assert_eq!(outcome.exit_code, 1);
        assert_eq!(outcome.stderr, None, "a signed request needs no hint");
    }

    #[test]
    fn without_a_key_the_request_goes_unsigned_with_a_hint_when_refused() {
        let (_dir, verifier, _) = setup();
        let (url, server) = serve_once(verifier, false);
        let client = Client::new(&url, None);
        let outcome = execute(&client, "balances", None, &[], None).unwrap();
        let seen = server.join().unwrap();
        assert!(seen.headers.keys().all(|name| !name.starts_with("x-bourse")), "{:?}", seen.headers);
        assert_eq!(outcome.exit_code, 1);
        assert!(outcome.stderr.unwrap().contains("BOURSE_KEY"));
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::new(&url, None);
        let error = execute(&client, "markets", None, &[], None).unwrap_err();
        assert!(error.to_string().starts_with(&format!("cannot reach the server at {url}/v1/rpc")), "{error}");
    }
}
