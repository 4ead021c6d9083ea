//! The senders: threads that keep the schedule. Open loop: request *i* of a sender is
//! due at `start + i / rate`, whatever became of the requests before it, so a slow
//! server cannot slow the offered load; each request remembers when it was due
//! (latency is measured from then, correcting for coordinated omission) and when it
//! actually left: when the write system call that took its last byte returned. A sender sleeps until the next request is due (the OS wakes it a few
//! tens of microseconds late; that lag is measured and reported), frames everything
//! due into each connection's buffer and writes each buffer with one system call.
//! Sockets are non-blocking: a connection that cannot take more keeps its bytes for
//! the next round, so one slow connection never stalls the others.

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Client, Outbox, SendSide, Shared};
use crate::limits::SEND_BACKLOG_BYTES_MAX;
use crate::stats::{histogram, record};

/// What the senders should be doing, set by the orchestrator.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// 0: keep the schedule; 1: the schedule is over (only control frames); 2: send
    /// each session's barrier once; 3: stop.
    pub(crate) mode: AtomicU8,
    /// A sender could not keep up with a connection (backlog over the limit).
    pub(crate) overflowed: AtomicBool,
}

pub(crate) const MODE_LOAD: u8 = 0;
pub(crate) const MODE_IDLE: u8 = 1;
pub(crate) const MODE_BARRIER: u8 = 2;
pub(crate) const MODE_STOP: u8 = 3;

/// One connection's write side.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) stream: TcpStream,
    pub(crate) side: SendSide,
    pub(crate) outbox: Arc<Outbox>,
    /// The trading session it carries (market-data subscribers have none).
    pub(crate) client: Option<Arc<Client>>,
    /// The connection failed (the server went away): nothing more is written.
    pub(crate) broken: bool,
}

/// The schedule of one sender.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub(crate) start: Instant,
    /// Requests per second over this sender's sessions.
    pub(crate) rate: f64,
    /// Requests this sender sends at most…
    pub(crate) ops: u64,
    /// …and not after this.
    pub(crate) deadline: Instant,
}

/// What a sender measured.
#[derive(Debug)]
pub(crate) struct SenderReport {
    /// Requests sent per whole second since `Shared::since`.
    pub(crate) sent_per_second: Vec<u64>,
    /// How late each request left after it was due.
    pub(crate) lag: Histogram<u64>,
    pub(crate) would_block: u64,
    pub(crate) writes: u64,
}

/// Runs one sender until told to stop.
pub(crate) fn run(mut writers: Vec<Writer>, schedule: Schedule, shared: &Shared, control: &Control) -> SenderReport {
    let clients: Vec<usize> = (0..writers.len()).filter(|index| writers[*index].client.is_some()).collect();
    let mut report = SenderReport { sent_per_second: Vec::new(), lag: histogram(), would_block: 0, writes: 0 };
    let interval_ns = if schedule.rate > 0.0 { 1e9 / schedule.rate } else { f64::INFINITY };
    let mut next: u64 = 0;
    let mut barrier_sent = false;
    loop {
        let mode = control.mode.load(Ordering::Acquire);
        if mode == MODE_STOP {
            break;
        }
        let now = Instant::now();
        let loading = mode == MODE_LOAD && next < schedule.ops && now < schedule.deadline && !clients.is_empty();
        if loading {
            let due = ((now - schedule.start).as_nanos() as f64 / interval_ns).floor() as u64 + 1;
            while next < due.min(schedule.ops) {
                let intended = schedule.start + Duration::from_nanos((next as f64 * interval_ns) as u64);
                let writer = &mut writers[clients[(next % clients.len() as u64) as usize]];
                next += 1;
                if writer.broken {
                    continue;
                }
                let client = writer.client.as_ref().expect("a client writer");
                let sent = client.lock().prepare(&client.identity, shared, intended, &mut writer.side);
                if sent {
                    record(&mut report.lag, Instant::now().saturating_duration_since(intended));
                    let second = intended.saturating_duration_since(shared.since).as_secs() as usize;
                    if report.sent_per_second.len() <= second {
                        report.sent_per_second.resize(second + 1, 0);
                    }
                    report.sent_per_second[second] += 1;
                }
            }
        }
        if mode == MODE_BARRIER && !barrier_sent {
            barrier_sent = true;
            for writer in writers.iter_mut().filter(|writer| !writer.broken) {
                if let Some(client) = &writer.client {
                    client.lock().prepare_barrier(&client.identity, shared, &mut writer.side);
                }
            }
        }
        for writer in &mut writers {
            writer.side.write_controls(&writer.outbox);
            flush(writer, &mut report, control);
        }
        let pause = if loading {
            let next_due = schedule.start + Duration::from_nanos((next as f64 * interval_ns) as u64);
            next_due.saturating_duration_since(Instant::now()).min(Duration::from_millis(1))
        } else {
            Duration::from_millis(1)
        };
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    report
}

/// Writes what the connection can take now; keeps the rest.
fn flush(writer: &mut Writer, report: &mut SenderReport, control: &Control) {
    if writer.side.out.is_empty() || writer.broken {
        return;
    }
    let mut written = 0;
    while written < writer.side.out.len() {
        match writer.stream.write(&writer.side.out[written..]) {
            Ok(0) => {
                writer.broken = true;
                break;
            }
            Ok(count) => {
                written += count;
                report.writes += 1;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                report.would_block += 1;
                break;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                writer.broken = true;
                break;
            }
        }
    }
    writer.side.out.drain(..written);
    stamp_written(writer, written);
    if writer.broken {
        writer.side.out.clear();
        writer.side.unwritten.clear();
    }
    if writer.side.out.len() > SEND_BACKLOG_BYTES_MAX {
        control.overflowed.store(true, Ordering::Release);
        writer.side.out.clear();
        writer.side.unwritten.clear();
        writer.broken = true;
    }
}

/// Stamps the requests the last `written` bytes finished as sent now.
fn stamp_written(writer: &mut Writer, written: usize) {
    let client = writer.client.as_ref();
    settle_written(&mut writer.side.unwritten, written, |finished| {
        if let Some(client) = client {
            client.lock().written(finished.iter().map(|(_, n)| *n), Instant::now());
        }
    });
}

/// Hands `finish` the requests whose last byte is among the first `written` bytes,
/// forgets them, and shifts the others' offsets to the bytes still waiting.
fn settle_written(unwritten: &mut Vec<(usize, u64)>, written: usize, finish: impl FnOnce(&[(usize, u64)])) {
    if written == 0 {
        return;
    }
    let done = unwritten.partition_point(|(end, _)| *end <= written);
    if done > 0 {
        finish(&unwritten[..done]);
        unwritten.drain(..done);
    }
    for (end, _) in unwritten.iter_mut() {
        *end -= written;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_as_sent_when_its_last_byte_is_written() {
        // Three requests framed back to back: bytes 0..10, 10..25, 25..40.
        let mut unwritten = vec![(10, 1), (25, 2), (40, 3)];
        let mut finished = Vec::new();
        settle_written(&mut unwritten, 0, |done| finished.extend(done.iter().map(|(_, n)| *n)));
        assert!(finished.is_empty() && unwritten.len() == 3, "nothing written, nothing sent");
        settle_written(&mut unwritten, 24, |done| finished.extend(done.iter().map(|(_, n)| *n)));
        assert_eq!(finished, [1], "the second lacks its last byte");
        assert_eq!(unwritten, [(1, 2), (16, 3)], "offsets now count from the first unwritten byte");
        settle_written(&mut unwritten, 16, |done| finished.extend(done.iter().map(|(_, n)| *n)));
        assert_eq!(finished, [1, 2, 3]);
        assert!(unwritten.is_empty());
    }
}
