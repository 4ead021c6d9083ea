//! The open-loop driver: commands arrive on a fixed schedule whether or not the engine
//! has finished the previous one, and each latency is measured from when the command
//! was *due*, not from when the engine got to it — the coordinated-omission
//! correction. Command i is due at start + i / rate; the driver spins until then if it
//! is early, and applies it at once if it is late, so a stall delays every command
//! queued behind it and each of them records the wait.

use std::hint::spin_loop;
use std::time::Instant;

use bourse_core::Engine;
use bourse_core::command::SequencedCommand;
use bourse_core::event::Event;
use hdrhistogram::Histogram;

use crate::report::latency_histogram;

const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// Two consecutive clock reads of the driver further apart than this mean the thread
/// lost its CPU (a spin iteration takes tens of nanoseconds, an `apply` well under
/// this): a stall that every command due meanwhile waits out.
const STALL_NS_MIN: u64 = 50_000;

/// What one open-loop pass measured.
#[derive(Debug)]
pub(crate) struct OpenLoopRun {
    /// Completion time minus due time, per command, in nanoseconds.
    pub(crate) histogram: Histogram<u64>,
    /// From the first command's due time to the last completion.
    pub(crate) elapsed_ns: u64,
    /// Commands the engine began after their due time (it was still busy).
    pub(crate) started_late: u64,
    /// Each `apply` alone (start to completion, no queueing), from the same clock reads.
    pub(crate) service: Histogram<u64>,
    /// Gaps of at least `STALL_NS_MIN` between consecutive clock reads, and their total.
    pub(crate) stalls: u64,
    pub(crate) stalled_ns: u64,
}

/// Applies `commands` to `engine` at `rate` commands per second.
pub(crate) fn run(
    engine: &mut Engine,
    commands: &[SequencedCommand],
    rate: u64,
    events: &mut Vec<Event>,
) -> OpenLoopRun {
    let mut run = OpenLoopRun {
        histogram: latency_histogram(),
        elapsed_ns: 0,
        started_late: 0,
        service: latency_histogram(),
        stalls: 0,
        stalled_ns: 0,
    };
    let start = Instant::now();
    let mut now_ns = 0;
    for (index, command) in commands.iter().enumerate() {
        let due_ns = (index as u128 * NANOS_PER_SECOND / u128::from(rate)) as u64;
        if now_ns > due_ns {
            run.started_late += 1;
        }
        while now_ns < due_ns {
            spin_loop();
            now_ns = run.read_clock(start, now_ns);
        }
        let began_ns = now_ns;
        events.clear();
        engine.apply(command, events);
        now_ns = run.read_clock(start, now_ns);
        run.histogram.saturating_record(now_ns - due_ns);
        run.service.saturating_record(now_ns - began_ns);
    }
    run.elapsed_ns = now_ns;
    run
}

impl OpenLoopRun {
    /// Nanoseconds since `start`, counting a stall if the previous read was long ago.
    fn read_clock(&mut self, start: Instant, previous_ns: u64) -> u64 {
        let now_ns = start.elapsed().as_nanos() as u64;
        let gap_ns = now_ns - previous_ns;
        if gap_ns >= STALL_NS_MIN {
            self.stalls += 1;
            self.stalled_ns += gap_ns;
        }
        now_ns
    }
}

/// The first `commands.len().min(rate × seconds)` commands: how many an open-loop pass
/// at `rate` applies when it may last at most `seconds`.
pub(crate) fn commands_within(commands: usize, rate: u64, seconds: u64) -> usize {
    usize::try_from(rate.saturating_mul(seconds)).map_or(commands, |most| commands.min(most.max(1)))
}
