//! Every bound the load tool keeps, in one place (STYLE §9): how many clients, how
//! fast, how long, how much may wait. A run that would pass one is refused with a
//! message naming it, before it starts.

use std::time::Duration;

/// Trading sessions (WebSocket and FIX together).
pub(crate) const CLIENTS_MAX: usize = 512;
/// Market-data subscriber sessions.
pub(crate) const SUBSCRIBERS_MAX: usize = 64;
/// Offered commands per second, all clients together.
pub(crate) const RATE_MAX: u64 = 2_000_000;
/// Commands one run may send (`--ops` defaults to rate × duration, and may not exceed this).
pub(crate) const OPS_MAX: u64 = 1_000_000_000;
/// Longest run or soak.
pub(crate) const DURATION_MAX: Duration = Duration::from_hours(24);
/// Longest wait for the replies still in flight after the last send.
pub(crate) const DRAIN_MAX: Duration = Duration::from_mins(5);
/// Sender (pacer) threads and reader threads, each.
pub(crate) const THREADS_MAX: usize = 16;

/// Resting orders one client keeps at most: past it, a placement becomes a cancel.
pub(crate) const LIVE_ORDERS_PER_CLIENT_MAX: usize = 64;
/// Open authorizations one client keeps at most: past it, an authorize becomes a capture.
pub(crate) const OPEN_AUTHORIZATIONS_PER_CLIENT_MAX: usize = 32;
/// Open quotes one client keeps at most: past it, a quote becomes an execution.
pub(crate) const OPEN_QUOTES_PER_CLIENT_MAX: usize = 16;
/// Requests one client may have unanswered; past it the client sheds (skips) sends and
/// counts them, so a stalled server cannot make the tool grow without bound.
pub(crate) const IN_FLIGHT_PER_CLIENT_MAX: usize = 200_000;
/// Bytes waiting to be written to one connection (the server stopped reading): past
/// it the run is aborted.
pub(crate) const SEND_BACKLOG_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest WebSocket message or FIX message accepted from the server.
pub(crate) const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Examples of each kind of verification failure kept for the report.
pub(crate) const FAILURE_SAMPLES_MAX: usize = 5;
/// Taker commands remembered for matching makers' execution reports (oldest dropped).
pub(crate) const EXEC_TAKERS_MAX: usize = 1_000_000;

/// One setup call (admin request, login, logon) may take at most this long.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A spawned server must print `ready` within this.
pub(crate) const SERVER_START_TIMEOUT: Duration = Duration::from_mins(2);
/// A spawned server must exit within this after SIGTERM.
pub(crate) const SERVER_STOP_TIMEOUT: Duration = Duration::from_mins(1);
/// After the drain, how long the barrier commands may take to be answered.
pub(crate) const BARRIER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long market-data subscribers may take to catch up with the final books.
pub(crate) const MARKET_DATA_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest and largest latency a histogram records, in nanoseconds (3 significant digits).
pub(crate) const LATENCY_NS_MIN: u64 = 100;
pub(crate) const LATENCY_NS_MAX: u64 = 600_000_000_000;
