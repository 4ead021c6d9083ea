//! The live dashboard: `GET /dashboard` (a page of plain HTML, CSS and JavaScript,
//! embedded in the binary: no build step, nothing fetched from elsewhere), the feed
//! it reads, `GET /v1/dashboard/ws` (a snapshot pushed every [`TICK`]), and the same
//! snapshot once, `GET /v1/dashboard`.
//!
//! A snapshot carries every sample of `/metrics` under its own series name, read back
//! from the same rendering, so the page and a Prometheus scrape cannot disagree on a
//! name or a value; and the best bid and ask of every market from the read model.
//! One ticker task builds one snapshot per tick while anyone watches, and stops when
//! the last viewer leaves; every viewer is sent the same bytes. A `watch` channel holds
//! only the newest snapshot, so a slow viewer skips snapshots instead of queueing them.
//! Public and read-only: counters, latencies and public market data, nothing about
//! any account.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Message, Session};
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::api::ApiError;
use crate::api::render;
use crate::hub::Hub;
use crate::view::ReadModel;

/// How often the feed sends a snapshot.
pub const TICK: Duration = Duration::from_millis(500);
/// Dashboard viewers (feed connections) at once; one more is refused with 503
/// `too_many_viewers`.
pub const VIEWERS_MAX: usize = 64;
/// A viewer that does not take a snapshot this long is disconnected.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// A server ping this often; no pong for three of them closes the feed.
const PING_EVERY: Duration = Duration::from_secs(15);
/// The largest frame a viewer may send (it has nothing to say but close and pong).
const VIEWER_FRAME_BYTES_MAX: usize = 1_024;

const PAGE_HTML: &str = include_str!("../static/dashboard.html");
const PAGE_SCRIPT: &str = include_str!("../static/dashboard.js");
const PAGE_STYLE: &str = include_str!("../static/dashboard.css");

/// The feed: the newest snapshot and who is watching it.
pub struct Dashboard {
    hub: Arc<Hub>,
    /// The newest snapshot, as a text frame (cloning it copies no bytes); `None` until
    /// the first tick.
    frames: watch::Sender<Option<Message>>,
    /// A ticker task is running.
    ticking: AtomicBool,
    viewers: AtomicUsize,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("viewers", &self.viewers.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Dashboard {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub, frames: watch::Sender::new(None), ticking: AtomicBool::new(false), viewers: AtomicUsize::new(0) }
    }

    /// Viewers connected right now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// The snapshot as of now.
    pub fn snapshot(&self) -> Value {
        snapshot(&self.hub, self.viewers())
    }

    /// Takes a viewer's place, unless all [`VIEWERS_MAX`] are taken.
    fn admit(self: &Arc<Self>) -> Option<Viewer> {
        self.viewers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| (count < VIEWERS_MAX).then_some(count + 1))
            .ok()?;
        Some(Viewer(self.clone()))
    }
}

/// A viewer's place; giving it back when dropped.
struct Viewer(Arc<Dashboard>);

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds the dashboard's routes.
pub fn register(config: &mut web::ServiceConfig, dashboard: &web::Data<Dashboard>) {
    config
        .app_data(dashboard.clone())
        .route("/dashboard", web::get().to(page))
        .route("/dashboard/dashboard.js", web::get().to(script))
        .route("/dashboard/dashboard.css", web::get().to(style))
        .route("/v1/dashboard", web::get().to(current))
        .route("/v1/dashboard/ws", web::get().to(feed));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).insert_header(("Cache-Control", "no-cache")).body(body)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE_HTML)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", PAGE_SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", PAGE_STYLE)
}

async fn current(dashboard: web::Data<Dashboard>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(dashboard.snapshot().to_string())
}

/// `GET /v1/dashboard/ws`: a snapshot now (once there is one), then one every tick.
async fn feed(
    req: HttpRequest,
    body: web::Payload,
    dashboard: web::Data<Dashboard>,
) -> Result<HttpResponse, actix_web::Error> {
    let dashboard = dashboard.into_inner();
    let Some(viewer) = dashboard.admit() else {
        dashboard.hub.metrics.gateway_error("too_many_viewers");
        let error = ApiError::new(503, "too_many_viewers", format!("at most {VIEWERS_MAX} dashboard viewers at once"));
        return Ok(HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(error.to_reply(&Value::Null).to_string()));
    };
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(handshake) => handshake,
        Err(error) => return Ok(crate::http::handshake_refusal(&error)),
    };
    let stream = stream
        .max_frame_size(VIEWER_FRAME_BYTES_MAX)
        .aggregate_continuations()
        .max_continuation_size(VIEWER_FRAME_BYTES_MAX);
    // Subscribe before starting the ticker: a ticker that finds no receiver stops.
    let frames = dashboard.frames.subscribe();
    if !dashboard.ticking.swap(true, Ordering::AcqRel) {
        actix_web::rt::spawn(tick(dashboard.clone()));
    }
    actix_web::rt::spawn(async move {
        let mut session = session;
        let reason = watch_feed(&mut session, stream, frames).await;
        let reason = reason.map(|description| actix_ws::CloseReason {
            code: actix_ws::CloseCode::Policy,
            description: Some(description.to_owned()),
        });
        let _ = session.close(reason).await;
        drop(viewer);
    });
    Ok(response)
}

/// Builds a snapshot every tick while the feed has receivers.
async fn tick(dashboard: Arc<Dashboard>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if dashboard.frames.receiver_count() == 0 {
            dashboard.ticking.store(false, Ordering::Release);
            if dashboard.frames.receiver_count() == 0 {
                // No one watches: forget the snapshot, which would be stale for the next
                // viewer.
                dashboard.frames.send_replace(None);
                return;
            }
            // A viewer subscribed between the count and the store, found the ticker
            // still running and did not start one: carry on for it, unless another
            // viewer has started a new ticker since.
            if dashboard.ticking.swap(true, Ordering::AcqRel) {
                return;
            }
        }
        let text = dashboard.snapshot().to_string();
        dashboard.frames.send_replace(Some(Message::Text(text.into())));
    }
}

/// Sends each new snapshot to one viewer until it leaves; the reason to give it when
/// the server ends the feed.
async fn watch_feed(
    session: &mut Session,
    mut stream: AggregatedMessageStream,
    mut frames: watch::Receiver<Option<Message>>,
) -> Option<&'static str> {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_pong = Instant::now();
    frames.mark_changed();
    loop {
        tokio::select! {
            changed = frames.changed() => {
                if changed.is_err() {
                    return None;
                }
                let text = match &*frames.borrow_and_update() {
                    Some(Message::Text(text)) => text.clone(),
                    _ => continue,
                };
                match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => return Some("slow viewer: a snapshot was not taken in time"),
                }
            }
            message = stream.next() => match message {
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return None;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => last_pong = Instant::now(),
                Some(Ok(AggregatedMessage::Text(_) | AggregatedMessage::Binary(_))) => {}
                Some(Ok(AggregatedMessage::Close(_))) | None => return None,
                Some(Err(_)) => return Some("WebSocket protocol error (the feed takes no messages)"),
            },
            _ = ping.tick() => {
                if last_pong.elapsed() > 3 * PING_EVERY {
                    return Some("no pong for 45 s");
                }
                if session.ping(b"").await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// One snapshot: every `/metrics` sample and every market's best bid and ask.
pub fn snapshot(hub: &Hub, viewers: usize) -> Value {
    let time_ms = crate::auth::unix_ms_now();
    let metrics = samples(&hub.metrics.render(hub.runtime_stats(), hub.publisher_queue()));
    // The read lock is held only for what needs the view: with the fused pipeline the
    // engine's thread waits for it to update the view.
    let view = hub.view();
    let (last_seq, markets) = (view.last_seq().map_or(0, bourse_core::ids::Seq::get), markets(&view));
    drop(view);
    json!({
        "type": "dashboard",
        "time_ms": time_ms,
        "tick_ms": TICK.as_millis() as u64,
        "last_seq": last_seq,
        "viewers": viewers,
        "metrics": metrics,
        "markets": markets,
    })
}

/// The samples of a Prometheus text exposition: series (name and labels, as written)
/// → value.
pub fn samples(text: &str) -> Map<String, Value> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            Some((series.to_owned(), number(value)))
        })
        .collect()
}

/// `value` as JSON: an integer when it is one (counters read `12`, not `12.0`).
fn number(value: f64) -> Value {
    // Below 2^53 every integer is exact in an f64 (and in JavaScript).
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 { json!(value as i64) } else { json!(value) }
}

/// Each market's best bid and ask (`[price, qty]` or `null`, as the `bbo` channel
/// sends them), its market-data sequence number and its last trade.
fn markets(view: &ReadModel) -> Vec<Value> {
    view.markets()
        .iter()
        .map(|market| {
            let bbo = render::bbo(view, market);
            let formatter = render::Formatter::new(view);
            let last_trade = market.trades.back().map_or(Value::Null, |trade| {
                json!({
                    "price": formatter.price(market.id, trade.price),
                    "qty": formatter.qty(market.id, trade.qty),
                    "market_seq": trade.market_seq,
                })
            });
            json!({
                "market": market.symbol,
                "market_seq": market.market_seq,
                "bid": bbo["bid"],
                "ask": bbo["ask"],
                "last_trade": last_trade,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use bourse_snapshots::runtime::RuntimeStats;

    #[test]
    fn samples_are_every_sample_line_of_the_exposition_under_its_own_name() {
        let metrics = Metrics::default();
        metrics.command(bourse_core::command::CommandKind::Transfer, crate::metrics::CommandOutcome::Accepted);
        metrics.gateway_error("bad_signature");
        let text = metrics.render(&RuntimeStats::default(), 3);
        let samples = samples(&text);
        let lines: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(samples.len(), lines.len(), "one sample per line, no two lines under one name");
        for line in lines {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert_eq!(samples[series].as_f64(), Some(value.parse::<f64>().unwrap()), "{line}");
        }
        assert_eq!(samples["bourse_commands_total{kind=\"Transfer\",outcome=\"accepted\"}"], json!(1));
        assert_eq!(samples["bourse_gateway_errors_total{code=\"bad_signature\"}"], json!(1));
        assert_eq!(samples["bourse_publisher_queue_depth"], json!(3));
        assert_eq!(samples["bourse_snapshot_age_seconds"], json!(-1));
    }

    #[test]
    fn samples_skip_comments_blank_lines_and_unreadable_values() {
        let samples = samples("# HELP a b\n# TYPE a counter\n\na 1\nb{x=\"y z\"} 2.5e-3\nc not-a-number\n");
        assert_eq!(Value::Object(samples), json!({"a": 1, "b{x=\"y z\"}": 0.0025}));
    }
}
