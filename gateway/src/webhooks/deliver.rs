//! The delivery threads: each takes an endpoint whose head notification is due,
//! POSTs it (signed, with a timeout), and records what came of it. An endpoint is
//! served by one thread at a time and only its head is attempted, so its
//! notifications arrive in order: the next waits until the previous was acknowledged
//! (any 2xx) or given up. Threads take due endpoints in turn (round-robin by id).
//!
//! A failed attempt (a status other than 2xx, a refused connection, a timeout) is
//! tried again after `retry_initial_ms`, doubled each time up to `retry_max_ms`; the
//! notification is given up after `attempts_max` failed attempts or once it is
//! `age_max_secs` old. Attempt counts live in memory: after a restart a notification
//! starts its schedule again (its age does not).

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::outbox::Record;
use super::sign::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature};
use super::{Shared, State, pending_bytes};
use crate::metrics::WebhookOutcome;

/// The longest a delivery thread sleeps before looking again (new work wakes it
/// sooner).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// One attempt to make.
#[derive(Debug)]
struct Job {
    endpoint: String,
    url: String,
    secret: String,
    number: u64,
    event_id: String,
    body: String,
}

pub(super) fn run(shared: &Shared) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(shared.config.timeout()))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("bourse-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    while let Some(job) = next_job(shared) {
        let outcome = attempt(&agent, &job);
        finish(shared, &job, outcome);
    }
}

/// Waits for a due head notification and marks its endpoint busy; `None` when
/// stopping.
fn next_job(shared: &Shared) -> Option<Job> {
    let mut state = shared.state.lock();
    loop {
        if shared.stopping.load(Ordering::Acquire) {
            return None;
        }
        let now = Instant::now();
        let (due, earliest) = find_due(&state, now);
        if let Some(id) = due {
            state.next_turn.clone_from(&id);
            let age_max = shared.config.age_max();
            let endpoint = state.endpoints.get_mut(&id).expect("found above");
            let head = endpoint.queue.front().expect("found with a head");
            if age(head.created_ns) > age_max {
                let error = format!("given up: older than {} s before it could be delivered", age_max.as_secs());
                shared.metrics.webhook_delivery(WebhookOutcome::GivenUp);
                complete(shared, &mut state, &id, false, Some(error));
                continue;
            }
            endpoint.busy = true;
            return Some(Job {
                endpoint: id,
                url: endpoint.record.url.clone(),
                secret: endpoint.record.secret.clone(),
                number: head.number,
                event_id: head.event_id.clone(),
                body: head.body.clone(),
            });
        }
        let wait = earliest.map_or(IDLE_WAIT, |at| at.saturating_duration_since(now)).min(IDLE_WAIT);
        shared.wake.wait_for(&mut state, wait.max(Duration::from_millis(1)));
    }
}

/// The next endpoint (after the last one served) with a head due now, and the
/// earliest time another becomes due.
fn find_due(state: &State, now: Instant) -> (Option<String>, Option<Instant>) {
    let after = (Bound::Excluded(state.next_turn.as_str()), Bound::Unbounded);
    let until = (Bound::Unbounded, Bound::Included(state.next_turn.as_str()));
    let mut earliest: Option<Instant> = None;
    for (id, endpoint) in state.endpoints.range::<str, _>(after).chain(state.endpoints.range::<str, _>(until)) {
        if endpoint.busy || endpoint.queue.is_empty() {
            continue;
        }
        match endpoint.next_attempt {
            Some(at) if at > now => earliest = Some(earliest.map_or(at, |earliest| earliest.min(at))),
            _ => return (Some(id.clone()), earliest),
        }
    }
    (None, earliest)
}

fn age(created_ns: u64) -> Duration {
    Duration::from_nanos(crate::hub::wall_clock_nanos().saturating_sub(created_ns))
}

/// POSTs the notification; `Ok` on any 2xx.
fn attempt(agent: &ureq::Agent, job: &Job) -> Result<(), String> {
    let timestamp = crate::auth::unix_ms_now() / 1_000;
    let signature = signature(&job.secret, timestamp, job.body.as_bytes());
    let sent = agent
        .post(&job.url)
        .header("Content-Type", "application/json")
        .header(HEADER_ID, &job.event_id)
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(HEADER_SIGNATURE, &signature)
        .send(job.body.as_bytes());
    match sent {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
        Err(error) => Err(error.to_string()),
    }
}

/// Records the outcome of an attempt: done (delivered, or given up at the limit), or
/// scheduled again after the backoff.
fn finish(shared: &Shared, job: &Job, outcome: Result<(), String>) {
    let mut state = shared.state.lock();
    let config = &shared.config;
    // Deleted while in flight: nothing more to do.
    let Some(endpoint) = state.endpoints.get_mut(&job.endpoint) else { return };
    endpoint.busy = false;
    endpoint.last_attempt_ms = Some(crate::auth::unix_ms_now());
    if endpoint.queue.front().is_none_or(|head| head.number != job.number) {
        return;
    }
    match outcome {
        Ok(()) => {
            endpoint.last_error = None;
            shared.metrics.webhook_delivery(WebhookOutcome::Delivered);
            complete(shared, &mut state, &job.endpoint, true, None);
        }
        Err(error) => {
            endpoint.attempts += 1;
            let created_ns = endpoint.queue.front().map_or(0, |head| head.created_ns);
            if endpoint.attempts >= config.attempts_max || age(created_ns) > config.age_max() {
                let error = format!("given up after {} attempts: {error}", endpoint.attempts);
                shared.metrics.webhook_delivery(WebhookOutcome::GivenUp);
                complete(shared, &mut state, &job.endpoint, false, Some(error));
            } else {
                endpoint.next_attempt = Some(Instant::now() + config.backoff(endpoint.attempts));
                endpoint.last_error = Some(error);
                shared.metrics.webhook_delivery(WebhookOutcome::Retried);
            }
        }
    }
    drop(state);
    shared.wake.notify_all();
}

/// The head notification of `id` is done: off the queue, into the outbox.
fn complete(shared: &Shared, state: &mut State, id: &str, delivered: bool, error: Option<String>) {
    let endpoint = state.endpoints.get_mut(id).expect("the caller holds it");
    let head = endpoint.queue.pop_front().expect("the caller checked the head");
    endpoint.done_through = head.number;
    endpoint.attempts = 0;
    endpoint.next_attempt = None;
    if delivered {
        endpoint.delivered += 1;
    } else {
        endpoint.failed += 1;
        endpoint.last_error.clone_from(&error);
    }
    state.pending -= 1;
    state.pending_bytes -= pending_bytes(&head);
    let record = Record::Done { endpoint: id.to_owned(), number: head.number, delivered, error };
    if let Err(error) = state.outbox.append(&[record]) {
        // It is delivered again after a restart: at least once.
        log::error!("webhooks: writing the outbox: {error}");
    }
    shared.metrics.set_webhook_pending(state.pending as u64);
}
