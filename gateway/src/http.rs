//! HTTP and WebSocket (actix-web, actix-ws).
//!
//! - `POST /v1/rpc`: one JSON request (`{"id", "op", …}`), signed with the
//!   `X-Bourse-*` headers unless the op is public; replies with the same JSON the
//!   WebSocket sends.
//! - `GET /v1/ws`: a WebSocket session. `login` (a signed message) binds it to a key;
//!   then any op, and `subscribe` to the account's pushes and to market data.
//! - `GET /v1/markets`, `/v1/markets/{market}/depth`, `/v1/markets/{market}/trades`:
//!   public market data.
//! - `GET /metrics` (Prometheus text), `/health` (the process is up), `/ready` (recovered
//!   and accepting commands).
//! - `GET /dashboard`, `/v1/dashboard`, `/v1/dashboard/ws`: the live dashboard (`dashboard`).
//!
//! Every refusal is the API's JSON error shape, actix's own too (`json_errors`: a body
//! over the limit or cut short, a query string that does not parse, a WebSocket
//! handshake that is not one); only a request the HTTP parser cannot read at all gets
//! actix's bare status line.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{PayloadError, QueryPayloadError};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Session};
use bourse_core::book::MarketId;
use dashmap::DashMap;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::api::request::{self, Channel, Op, Request};
use crate::api::{ApiError, render};
use crate::auth::{AuthHeaders, Authenticated, KeyStore, Permission, Verifier, unix_ms_now};
use crate::config::ServerSection;
use crate::hub::{Delivery, Hub, SessionHandle};
use crate::metrics::{Metrics, Transport};
use crate::principal::Principal;

/// What every handler shares.
pub struct AppState {
    pub hub: Arc<Hub>,
    pub verifier: Arc<Verifier>,
    pub keys: Arc<KeyStore>,
    pub server: ServerSection,
    /// Merchant webhooks (`None`: not running; the webhook ops answer `unavailable`).
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
    /// Open WebSocket sessions per API key.
    ws_per_key: DashMap<String, usize>,
    connections: AtomicUsize,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("hub", &self.hub).finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(hub: Arc<Hub>, verifier: Arc<Verifier>, keys: Arc<KeyStore>, server: ServerSection) -> Self {
        Self {
            hub,
            verifier,
            keys,
            server,
            webhooks: None,
            ws_per_key: DashMap::new(),
            connections: AtomicUsize::new(0),
        }
    }

    /// Answers the webhook ops from `webhooks`.
    #[must_use]
    pub fn with_webhooks(mut self, webhooks: Arc<crate::webhooks::Webhooks>) -> Self {
        self.webhooks = Some(webhooks);
        self
    }
}

/// Builds the HTTP server on `listener` (not yet running).
pub fn server(state: Arc<AppState>, listener: std::net::TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let workers = if state.server.workers == 0 {
        std::thread::available_parallelism().map_or(2, usize::from)
    } else {
        state.server.workers
    };
    let max_connections = state.server.max_connections;
    let limit = state.server.max_message_bytes;
    let dashboard = web::Data::new(crate::dashboard::Dashboard::new(state.hub.clone()));
    let counters = state.hub.metrics.clone();
    let data = web::Data::from(state);
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(json_errors(limit, counters.clone()))
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(limit))
            .route("/v1/rpc", web::post().to(rpc))
            .route("/v1/ws", web::get().to(websocket))
            .route("/v1/markets", web::get().to(get_markets))
            .route("/v1/markets/{market}/depth", web::get().to(get_depth))
            .route("/v1/markets/{market}/trades", web::get().to(get_trades))
            .route("/metrics", web::get().to(metrics))
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .configure(|config| crate::dashboard::register(config, &dashboard))
            .default_service(web::to(not_found))
    })
    // Replies are small and latency is the product: without TCP_NODELAY, Nagle holds
    // a reply back until the client's delayed ACK (tens of ms at low rates).
    .on_connect(|connection, _| {
        if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Err(error) = stream.set_nodelay(true)
        {
            log::warn!("http: TCP_NODELAY: {error}");
        }
    })
    .workers(workers)
    .max_connections(max_connections)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run())
}

fn json_response(status: u16, value: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(value.to_string())
}

fn json_text_response(status: u16, text: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(text)
}

fn error_response(error: &ApiError, id: &Value) -> HttpResponse {
    let mut response = json_response(error.status, &error.to_reply(id));
    if let Some(ms) = error.retry_after_ms
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&ms.div_ceil(1_000).max(1).to_string())
    {
        response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
    }
    response
}

/// Answers actix's own refusals, made before a handler runs or by an extractor, in the
/// API's error shape, `{"id": null, "ok": false, "error": {code, message}}`, keeping
/// their status and headers (`Allow`, `Upgrade`…); counted like the gateway's own. A
/// response that is JSON already (every handler's) passes as it is.
fn json_errors(limit: usize, metrics: Arc<Metrics>) -> ErrorHandlers<BoxBody> {
    ErrorHandlers::new().default_handler(move |response: ServiceResponse<BoxBody>| {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
        }
        let error = actix_refusal(&response, limit);
        metrics.gateway_error(error.code);
        let (request, refused) = response.into_parts();
        let reply = error_with_headers_of(&error, &refused);
        Ok(ErrorHandlerResponse::Response(ServiceResponse::new(request, reply).map_into_right_body()))
    })
}

/// What an actix refusal means, as an API error with the same status.
fn actix_refusal(response: &ServiceResponse<BoxBody>, limit: usize) -> ApiError {
    let error = response.response().error();
    if let Some(payload) = error.and_then(actix_web::Error::as_error::<PayloadError>) {
        return match payload {
            PayloadError::Overflow => ApiError::new(
                413,
                "payload_too_large",
                format!("the request body is over the limit of {limit} bytes (max_message_bytes)"),
            ),
            other => ApiError::bad_request("bad_payload", format!("the request body could not be read: {other}")),
        };
    }
    if let Some(query) = error.and_then(actix_web::Error::as_error::<QueryPayloadError>) {
        return ApiError::bad_request("invalid_params", format!("the query string: {query}"));
    }
    let status = response.status();
    let request = response.request();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    };
    let what = error.map_or_else(|| status.canonical_reason().unwrap_or("refused").to_owned(), ToString::to_string);
    ApiError::new(status.as_u16(), code, format!("{} {}: {what}", request.method(), request.path()))
}

/// A WebSocket upgrade that is not one (no `Upgrade` header, no key, a version other
/// than 13), with actix's status and headers.
pub(crate) fn handshake_refusal(error: &actix_web::Error) -> HttpResponse {
    let refused = error.error_response();
    let status = refused.status().as_u16();
    let error = ApiError::new(status, "websocket_handshake", format!("not a WebSocket handshake: {error}"));
    error_with_headers_of(&error, &refused)
}

/// `error` as the API's JSON reply, with the headers of actix's `refused` (`Allow`,
/// `Upgrade`…) but its body's type and length.
fn error_with_headers_of<B>(error: &ApiError, refused: &HttpResponse<B>) -> HttpResponse {
    let mut reply = error_response(error, &Value::Null);
    for (name, value) in refused.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            reply.headers_mut().insert(name.clone(), value.clone());
        }
    }
    reply
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let error = ApiError::new(404, "not_found", format!("no such endpoint: {} {}", req.method(), req.path()));
    error_response(&error, &Value::Null)
}

/// Checks that `auth` may run `op`; `Ok(None)` for a public op.
fn authorize(op: &Op, auth: Option<&Authenticated>) -> Result<(), ApiError> {
    let needs = |permission: Permission| -> Result<&Authenticated, ApiError> {
        let auth = auth.ok_or_else(|| {
            ApiError::new(
                401,
                "missing_auth",
                "this op needs a signed API key (X-Bourse-* headers, or login on a WebSocket)",
            )
        })?;
        auth.require(permission)?;
        Ok(auth)
    };
    match op {
        Op::Command { acting_for, permission, .. } => {
            let auth = needs(*permission)?;
            match acting_for {
                Some(account) => auth.require_account(*account)?,
                None => auth.require(Permission::Admin)?,
            }
        }
        Op::Refuse { acting_for, permission, .. } => needs(*permission)?.require_account(*acting_for)?,
        Op::Balances { account }
        | Op::Orders { account }
        | Op::RegisterWebhook { account, .. }
        | Op::ListWebhooks { account }
        | Op::DeleteWebhook { account, .. } => needs(Permission::Read)?.require_account(*account)?,
        Op::CreateKey { .. }
        | Op::RevokeKey { .. }
        | Op::ListKeys
        | Op::ListRules
        | Op::ListReviews { .. }
        | Op::ShowRules { .. }
        | Op::DiffRules { .. } => {
            needs(Permission::Admin)?;
        }
        Op::Subscribe { channel: Channel::Account, .. } | Op::Unsubscribe { channel: Channel::Account, .. } => {
            needs(Permission::Read)?;
        }
        Op::Markets
        | Op::Depth { .. }
        | Op::Trades { .. }
        | Op::Ping
        | Op::Login { .. }
        | Op::Subscribe { .. }
        | Op::Unsubscribe { .. } => {}
    }
    Ok(())
}

fn unknown_version(version: u32) -> ApiError {
    ApiError::bad_request("unknown_rule_version", format!("no rule set was published as version {version}"))
}

/// Answers the ops that the read model or the key store answer (not commands, not
/// session ops).
fn answer(state: &AppState, id: &Value, op: &Op) -> Result<Value, ApiError> {
    let result = match op {
        Op::Balances { account } => {
            let view = state.hub.view();
            render::balances(&view, *account)
                .ok_or_else(|| ApiError::rejected(bourse_core::event::RejectReason::UnknownAccount))?
        }
        Op::Orders { account } => render::orders(&state.hub.view(), *account),
        Op::Markets => render::markets(&state.hub.view()),
        Op::Depth { market, levels } => {
            let copy = {
                let view = state.hub.view();
                render::DepthCopy::of(&view, request::find_market(&view, market)?, *levels)
            };
            copy.render()
        }
        Op::Trades { market, limit } => {
            let view = state.hub.view();
            let market = request::find_market(&view, market)?;
            render::trades(&view, market, *limit)
        }
        Op::CreateKey { permissions, accounts, label } => {
            let key = state
                .keys
                .create(permissions.iter().copied().collect(), accounts.clone(), label)
                .map_err(|error| ApiError::bad_request(error.code(), error.to_string()))?;
            json!({"key_id": key.id, "api_key": key.token(), "note": "the api_key is shown once; the server keeps only a verifier"})
        }
        Op::RevokeKey { key_id } => {
            let revoked =
                state.keys.revoke(key_id).map_err(|error| ApiError::bad_request(error.code(), error.to_string()))?;
            json!({"key_id": key_id, "revoked": revoked})
        }
        Op::ListKeys => {
            let keys: Vec<Value> = state
                .keys
                .list()
                .iter()
                .map(|key| {
                    let accounts: Vec<u32> = key.accounts.iter().map(|account| account.get()).collect();
                    json!({"key_id": key.id, "permissions": key.permissions.to_string(), "accounts": accounts, "label": key.label})
                })
                .collect();
            json!({"keys": keys})
        }
        Op::Ping => json!({"pong": render::time(crate::hub::now_timestamp())}),
        Op::ListRules => {
            let view = state.hub.view();
            let (active, rollout) = view.rules_in_effect();
            json!({
                "versions": view.rule_versions(),
                "active": active,
                "rollout": rollout.map(|(version, share_bps)| json!({"version": version, "share_bps": share_bps})),
            })
        }
        Op::ListReviews { account, limit } => {
            let view = state.hub.view();
            if account.is_some_and(|account| view.account(account).is_none()) {
                return Err(ApiError::rejected(bourse_core::event::RejectReason::UnknownAccount));
            }
            render::reviews(&view, *account, *limit)
        }
        // Rule sets are copied out and rendered after the read-model lock is released:
        // the engine thread waits for readers when it publishes.
        Op::ShowRules { version } => {
            let rules = state.hub.view().rule_set(*version).cloned().ok_or_else(|| unknown_version(*version))?;
            json!({"version": version, "toml": rules.to_toml_string(), "rules": rules})
        }
        Op::DiffRules { a, b } => {
            let (before, after) = {
                let view = state.hub.view();
                (view.rule_set(*a).cloned(), view.rule_set(*b).cloned())
            };
            let before = before.ok_or_else(|| unknown_version(*a))?;
            let after = after.ok_or_else(|| unknown_version(*b))?;
            json!({"a": a, "b": b, "diff": bourse_core::rules::diff(&before, &after)})
        }
        Op::RegisterWebhook { .. } | Op::ListWebhooks { .. } | Op::DeleteWebhook { .. } => {
            crate::webhooks::api::answer(state.webhooks.as_deref(), op)?
        }
        Op::Refuse { error, .. } => return Err(error.clone()),
        Op::Command { .. } | Op::Login { .. } | Op::Subscribe { .. } | Op::Unsubscribe { .. } => {
            return Err(ApiError::bad_request("invalid_request", "this op is answered elsewhere"));
        }
    };
    Ok(json!({"id": id, "ok": true, "result": result}))
}

async fn rpc(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let response = rpc_inner(&req, &body, &state).await;
    state.hub.metrics.end_to_end(Transport::Http).record(started.elapsed());
    response
}

async fn rpc_inner(req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    let header = |name: &'static str| req.headers().get(name).and_then(|value| value.to_str().ok());
    let headers = AuthHeaders::from_lookup(header);
    let signed = headers.key_id.is_some() || headers.signature.is_some();
    // Authenticate first: the signature covers the exact body bytes.
    let auth = if signed {
        match state.verifier.verify_headers(&headers, "POST", req.path(), body, unix_ms_now()) {
            Ok(auth) => Some(auth),
            Err(error) => {
                state.hub.metrics.gateway_error(error.code());
                return error_response(&ApiError::from(error), &Value::Null);
            }
        }
    } else {
        None
    };
    let parsed = request::parse(body, &state.hub.view());
    let Request { id, op } = match parsed {
        Ok(request) => request,
        Err((id, error)) => {
            state.hub.metrics.gateway_error(error.code);
            return error_response(&error, &id);
        }
    };
    if let Err(error) = authorize(&op, auth.as_ref()) {
        state.hub.metrics.gateway_error(error.code);
        return error_response(&error, &id);
    }
    match op {
        Op::Command { command, .. } => match state.hub.call(command).await {
            Ok(Some(delivery)) => {
                let viewer = auth.as_ref().map_or(Principal::Admin, |auth| auth.principal.clone());
                let (reply, ok) = render::reply(&state.hub.view(), &id, &delivery, &viewer);
                json_text_response(if ok { 200 } else { 422 }, reply)
            }
            Ok(None) => error_response(&ApiError::unavailable("the server stopped before this command ran"), &id),
            Err(error) => {
                let error = ApiError::from(error);
                state.hub.metrics.gateway_error(error.code);
                error_response(&error, &id)
            }
        },
        Op::Login { .. } | Op::Subscribe { .. } | Op::Unsubscribe { .. } => error_response(
            &ApiError::bad_request("websocket_only", "login, subscribe and unsubscribe are WebSocket ops (GET /v1/ws)"),
            &id,
        ),
        op => match answer(state, &id, &op) {
            Ok(value) => json_response(200, &value),
            Err(error) => error_response(&error, &id),
        },
    }
}

async fn get_markets(state: web::Data<AppState>) -> HttpResponse {
    json_response(200, &render::markets(&state.hub.view()))
}

#[derive(serde::Deserialize)]
struct DepthQuery {
    levels: Option<usize>,
    limit: Option<usize>,
}

async fn get_depth(path: web::Path<String>, query: web::Query<DepthQuery>, state: web::Data<AppState>) -> HttpResponse {
    let copy = {
        let view = state.hub.view();
        request::find_market(&view, &path)
            .map(|market| render::DepthCopy::of(&view, market, query.levels.unwrap_or(20).min(1_000)))
    };
    match copy {
        Ok(copy) => json_response(200, &copy.render()),
        Err(error) => error_response(&error, &Value::Null),
    }
}

async fn get_trades(
    path: web::Path<String>,
    query: web::Query<DepthQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let view = state.hub.view();
    match request::find_market(&view, &path) {
        Ok(market) => json_response(
            200,
            &render::trades(&view, market, query.limit.unwrap_or(50).min(crate::view::RECENT_TRADES)),
        ),
        Err(error) => error_response(&error, &Value::Null),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let text = state.hub.metrics.render(state.hub.runtime_stats(), state.hub.publisher_queue());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text)
}

async fn health() -> HttpResponse {
    json_response(200, &json!({"status": "up"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.hub.is_accepting() {
        let seq = state.hub.view().last_seq().map_or(0, bourse_core::ids::Seq::get);
        json_response(200, &json!({"status": "ready", "last_seq": seq}))
    } else {
        json_response(503, &json!({"status": "stopping"}))
    }
}

// ---------------------------------------------------------------------------------
// WebSocket sessions.

/// Outgoing messages a WebSocket session may have queued (replies, pushes, market
/// data) before it counts as a slow consumer.
const WS_OUTBOX: usize = 8_192;
/// A server ping this often; no pong for three of them closes the session.
const WS_PING_EVERY: Duration = Duration::from_secs(15);

async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    if state.connections.load(Ordering::Relaxed) >= state.server.max_connections {
        state.hub.metrics.gateway_error("too_many_connections");
        return Ok(error_response(
            &ApiError::new(
                503,
                "too_many_connections",
                format!("at most {} WebSocket sessions", state.server.max_connections),
            ),
            &Value::Null,
        ));
    }
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(handshake) => handshake,
        Err(error) => {
            state.hub.metrics.gateway_error("websocket_handshake");
            return Ok(handshake_refusal(&error));
        }
    };
    let limit = state.server.max_message_bytes;
    let stream = stream.max_frame_size(limit).aggregate_continuations().max_continuation_size(limit);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        state.connections.fetch_add(1, Ordering::Relaxed);
        state.hub.metrics.session_opened(Transport::WebSocket);
        let mut ws = WsSession::new(state.clone(), session);
        ws.run(stream).await;
        ws.close().await;
        state.hub.metrics.session_closed(Transport::WebSocket);
        state.connections.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(response)
}

struct WsSession {
    state: Arc<AppState>,
    ws: Session,
    auth: Option<Authenticated>,
    handle: Option<SessionHandle>,
    deliveries: Option<mpsc::Receiver<Delivery>>,
    /// Request number → (client id, when it was read).
    pending: HashMap<u32, (Value, Instant)>,
    next_request: u32,
    account_feed: bool,
    market_feeds: HashMap<(Channel, MarketId), tokio::task::AbortHandle>,
    outbox_tx: mpsc::Sender<String>,
    outbox_rx: mpsc::Receiver<String>,
    close_reason: Option<String>,
    /// The key was revoked: the session ends.
    revoked: bool,
}

impl WsSession {
    fn new(state: Arc<AppState>, ws: Session) -> Self {
        let (outbox_tx, outbox_rx) = mpsc::channel(WS_OUTBOX);
        Self {
            state,
            ws,
            auth: None,
            handle: None,
            deliveries: None,
            pending: HashMap::new(),
            next_request: 1,
            account_feed: false,
            market_feeds: HashMap::new(),
            outbox_tx,
            outbox_rx,
            close_reason: None,
            revoked: false,
        }
    }

    async fn run(&mut self, mut stream: AggregatedMessageStream) {
        let mut ping = tokio::time::interval(WS_PING_EVERY);
        let mut last_pong = Instant::now();
        loop {
            let deliveries = async {
                match self.deliveries.as_mut() {
                    Some(deliveries) => deliveries.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { return };
                    match message {
                        Ok(AggregatedMessage::Text(text)) => {
                            self.on_text(text.as_bytes()).await;
                            if self.revoked {
                                return;
                            }
                        }
                        Ok(AggregatedMessage::Binary(_)) => {
                            let error = ApiError::bad_request("binary_not_supported", "send JSON text frames, not binary");
                            self.send(&error.to_reply(&Value::Null)).await;
                        }
                        Ok(AggregatedMessage::Ping(bytes)) => {
                            if self.ws.pong(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Ok(AggregatedMessage::Pong(_)) => last_pong = Instant::now(),
                        Ok(AggregatedMessage::Close(_)) => return,
                        Err(error) => {
                            // A frame over the limit, a protocol error: say what, then close.
                            self.state.hub.metrics.gateway_error("bad_frame");
                            let error = ApiError::bad_request("bad_frame", format!("WebSocket protocol error: {error}"));
                            self.send(&error.to_reply(&Value::Null)).await;
                            self.close_reason = Some(error.message);
                            return;
                        }
                    }
                }
                delivery = deliveries => {
                    let Some(delivery) = delivery else {
                        self.close_reason = Some("slow consumer: deliveries were not read in time".into());
                        return;
                    };
                    self.on_delivery(&delivery).await;
                    if self.revoked {
                        return;
                    }
                }
                text = self.outbox_rx.recv() => {
                    if let Some(text) = text && self.ws.text(text).await.is_err() {
                        return;
                    }
                }
                _ = ping.tick() => {
                    if last_pong.elapsed() > 3 * WS_PING_EVERY {
                        self.close_reason = Some("no pong for 45 s".into());
                        return;
                    }
                    if self.ws.ping(b"").await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn close(&mut self) {
        for (_, feed) in self.market_feeds.drain() {
            feed.abort();
        }
        if let Some(auth) = &self.auth {
            self.state.ws_per_key.alter(&auth.key_id, |_, count| count.saturating_sub(1));
        }
        self.handle = None;
        let reason = self.close_reason.take().map(|description| actix_ws::CloseReason {
            code: actix_ws::CloseCode::Policy,
            description: Some(description),
        });
        let _ = self.ws.clone().close(reason).await;
    }

    async fn send(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    async fn send_text(&mut self, text: String) {
        let _ = self.ws.text(text).await;
    }

    async fn on_text(&mut self, text: &[u8]) {
        let started = Instant::now();
        let parsed = request::parse(text, &self.state.hub.view());
        let Request { id, op } = match parsed {
            Ok(request) => request,
            Err((id, error)) => {
                self.state.hub.metrics.gateway_error(error.code);
                return self.send(&error.to_reply(&id)).await;
            }
        };
        if let Some(auth) = &self.auth
            && let Err(error) = self.state.verifier.check_rate(&auth.key_id)
        {
            self.state.hub.metrics.gateway_error(error.code());
            let revoked = matches!(error, crate::auth::AuthError::UnknownKey { .. });
            self.send(&ApiError::from(error).to_reply(&id)).await;
            if revoked {
                self.close_reason = Some("the session's API key was revoked".into());
                self.revoked = true;
            }
            return;
        }
        if let Err(error) = authorize(&op, self.auth.as_ref()) {
            self.state.hub.metrics.gateway_error(error.code);
            return self.send(&error.to_reply(&id)).await;
        }
        let reply = match op {
            Op::Login { key, timestamp, nonce, signature } => self.login(&id, &key, timestamp, &nonce, &signature),
            Op::Command { command, .. } => {
                let Some(handle) = &self.handle else {
                    return self.send(&ApiError::new(401, "missing_auth", "log in first").to_reply(&id)).await;
                };
                let request = self.next_request;
                self.next_request = self.next_request.wrapping_add(1).max(1);
                match handle.submit(request, command) {
                    Ok(()) => {
                        self.pending.insert(request, (id, started));
                        return;
                    }
                    Err(error) => {
                        let error = ApiError::from(error);
                        self.state.hub.metrics.gateway_error(error.code);
                        Err(error)
                    }
                }
            }
            Op::Subscribe { channel, market } => self.subscribe(&id, channel, market.as_deref()),
            Op::Unsubscribe { channel, market } => self.unsubscribe(&id, channel, market.as_deref()),
            op => answer(&self.state, &id, &op),
        };
        let value = reply.unwrap_or_else(|error| error.to_reply(&id));
        self.send(&value).await;
    }

    fn login(
        &mut self,
        id: &Value,
        key: &str,
        timestamp: u64,
        nonce: &str,
        signature: &str,
    ) -> Result<Value, ApiError> {
        if self.auth.is_some() {
            return Err(ApiError::bad_request("already_logged_in", "this session is already logged in"));
        }
        let auth = self
            .state
            .verifier
            .verify(
                key,
                timestamp,
                nonce,
                signature,
                crate::auth::WS_LOGIN_METHOD,
                crate::auth::WS_LOGIN_PATH,
                b"",
                unix_ms_now(),
            )
            .inspect_err(|error| self.state.hub.metrics.gateway_error(error.code()))?;
        let limit = self.state.server.max_sessions_per_key;
        {
            let mut count = self.state.ws_per_key.entry(auth.key_id.clone()).or_insert(0);
            if *count >= limit {
                self.state.hub.metrics.gateway_error("too_many_sessions");
                return Err(ApiError::new(
                    429,
                    "too_many_sessions",
                    format!("at most {limit} WebSocket sessions per key"),
                ));
            }
            *count += 1;
        }
        let (handle, deliveries) = self.state.hub.open_session(auth.principal.clone());
        let accounts: Value = auth
            .principal
            .account_list()
            .map_or(Value::from("all"), |list| list.iter().map(|account| account.get()).collect::<Vec<_>>().into());
        let result = json!({"key_id": auth.key_id, "permissions": auth.permissions.to_string(), "accounts": accounts});
        self.handle = Some(handle);
        self.deliveries = Some(deliveries);
        self.auth = Some(auth);
        Ok(json!({"id": id, "ok": true, "result": result}))
    }

    async fn on_delivery(&mut self, delivery: &Delivery) {
        let viewer = self.auth.as_ref().map_or(Principal::accounts([]), |auth| auth.principal.clone());
        match delivery {
            Delivery::Reply { request, .. } => {
                let Some((id, started)) = self.pending.remove(request) else { return };
                let (text, _) = render::reply(&self.state.hub.view(), &id, delivery, &viewer);
                self.send_text(text).await;
                self.state.hub.metrics.end_to_end(Transport::WebSocket).record(started.elapsed());
            }
            Delivery::Push { .. } => {
                if !self.account_feed {
                    return;
                }
                // A key revoked while its session only listens: stop telling it.
                if let Some(auth) = &self.auth
                    && self.state.keys.get(&auth.key_id).is_none()
                {
                    self.close_reason = Some("the session's API key was revoked".into());
                    self.revoked = true;
                    return;
                }
                let text = render::push(&self.state.hub.view(), delivery, &viewer);
                if let Some(text) = text {
                    self.send_text(text).await;
                }
            }
        }
    }

    fn market_of(&self, market: Option<&str>) -> Result<(MarketId, String), ApiError> {
        let view = self.state.hub.view();
        let market = request::find_market(&view, market.unwrap_or_default())?;
        Ok((market.id, market.symbol.clone()))
    }

    fn subscribe(&mut self, id: &Value, channel: Channel, market: Option<&str>) -> Result<Value, ApiError> {
        if channel == Channel::Account {
            if self.auth.is_none() {
                return Err(ApiError::new(401, "missing_auth", "log in before subscribing to the account channel"));
            }
            self.account_feed = true;
            return Ok(json!({"id": id, "ok": true, "result": {"subscribed": "account"}}));
        }
        let (market, symbol) = self.market_of(market)?;
        if self.market_feeds.contains_key(&(channel, market)) {
            return Ok(
                json!({"id": id, "ok": true, "result": {"subscribed": channel_name(channel), "market": symbol, "already": true}}),
            );
        }
        let feed = self
            .state
            .hub
            .subscribe_market(market)
            .ok_or_else(|| ApiError::bad_request("unknown_market", "no such market"))?;
        let task =
            tokio::task::spawn_local(forward_market(self.state.clone(), feed, market, channel, self.outbox_tx.clone()));
        self.market_feeds.insert((channel, market), task.abort_handle());
        Ok(json!({"id": id, "ok": true, "result": {"subscribed": channel_name(channel), "market": symbol}}))
    }

    fn unsubscribe(&mut self, id: &Value, channel: Channel, market: Option<&str>) -> Result<Value, ApiError> {
        if channel == Channel::Account {
            self.account_feed = false;
            return Ok(json!({"id": id, "ok": true, "result": {"unsubscribed": "account"}}));
        }
        let (market, symbol) = self.market_of(market)?;
        let was = self.market_feeds.remove(&(channel, market)).inspect(tokio::task::AbortHandle::abort).is_some();
        Ok(
            json!({"id": id, "ok": true, "result": {"unsubscribed": channel_name(channel), "market": symbol, "was_subscribed": was}}),
        )
    }
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Account => "account",
        Channel::Book => "book",
        Channel::Bbo => "bbo",
        Channel::Trades => "trades",
    }
}

/// Sends the channel's snapshot, then every update after it; after falling behind
/// (the broadcast lagged), a new snapshot.
async fn forward_market(
    state: Arc<AppState>,
    mut feed: broadcast::Receiver<Arc<crate::hub::MarketUpdate>>,
    market: MarketId,
    channel: Channel,
    outbox: mpsc::Sender<String>,
) {
    let snapshot = |state: &AppState| -> Option<(String, u64)> {
        let view = state.hub.view();
        let view_market = view.market(market)?;
        let value = match channel {
            Channel::Book => {
                // A thousand levels a side are rendered after the lock is released.
                let copy = render::DepthCopy::of(&view, view_market, 1_000);
                drop(view);
                return Some((copy.render().to_string(), copy.market_seq()));
            }
            Channel::Bbo => render::bbo(&view, view_market),
            Channel::Trades => render::trades(&view, view_market, 50),
            Channel::Account => return None,
        };
        Some((value.to_string(), view_market.market_seq))
    };
    let Some((text, mut seen)) = snapshot(&state) else { return };
    if outbox.try_send(text).is_err() {
        return;
    }
    loop {
        match feed.recv().await {
            Ok(update) => {
                if update.market_seq <= seen && channel != Channel::Trades {
                    continue;
                }
                if channel == Channel::Trades && update.trades.iter().all(|trade| trade.market_seq <= seen) {
                    continue;
                }
                seen = update.market_seq;
                let value = render::market_update(&state.hub.view(), &update, channel);
                if let Some(value) = value
                    && outbox.try_send(value.to_string()).is_err()
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let Some((text, market_seq)) = snapshot(&state) else { return };
                seen = market_seq;
                if outbox.try_send(text).is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
