//! The webhook ops of the JSON API, answered from the service (authorization is
//! `http::authorize`'s: `read` on the account, which `admin` implies).
//!
//! - `register_webhook {account, url, events?}` → `{webhook_id, account, url,
//!   events, secret, note}`: the secret is shown once.
//! - `list_webhooks {account}` → `{account, webhooks: [{webhook_id, url, events,
//!   created, pending, delivered, failed, attempts, last_error, last_attempt,
//!   next_attempt_in_ms}]}` (never a secret).
//! - `delete_webhook {webhook_id}` → `{webhook_id, deleted: true}`, or
//!   `unknown_webhook`.

use bourse_core::ids::Timestamp;
use serde_json::{Value, json};

use super::{EndpointStatus, WebhookError, Webhooks};
use crate::api::request::Op;
use crate::api::{ApiError, render};

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match &error {
            WebhookError::Invalid(invalid) => ApiError::bad_request(invalid.code(), error.to_string()),
            WebhookError::TooMany(_) | WebhookError::TooManyForAccount(_) => {
                ApiError::bad_request("too_many_webhooks", error.to_string())
            }
            WebhookError::Io(_) | WebhookError::Corrupt(_) | WebhookError::Random(_) => {
                log::error!("webhooks: {error}");
                ApiError::internal("the webhook store failed (see the server log)")
            }
        }
    }
}

fn time_of_ms(ms: u64) -> String {
    render::time(Timestamp::from_nanos(ms.saturating_mul(1_000_000)))
}

fn events_value(events: Option<&Vec<String>>) -> Value {
    events.map_or_else(|| Value::from("all"), |events| Value::from(events.clone()))
}

fn status_value(status: &EndpointStatus) -> Value {
    json!({
        "webhook_id": status.id,
        "url": status.url,
        "events": events_value(status.events.as_ref()),
        "created": time_of_ms(status.created_at_ms),
        "pending": status.pending,
        "delivered": status.delivered,
        "failed": status.failed,
        "attempts": status.attempts,
        "last_error": status.last_error,
        "last_attempt": status.last_attempt_ms.map(time_of_ms),
        "next_attempt_in_ms": status.next_attempt_in_ms,
    })
}

/// The `result` of a webhook op (`op` is one of the three).
pub fn answer(webhooks: Option<&Webhooks>, op: &Op) -> Result<Value, ApiError> {
    let webhooks = webhooks.ok_or_else(|| ApiError::unavailable("webhooks are not running"))?;
    match op {
        Op::RegisterWebhook { account, url, events } => {
            let record = webhooks.register(*account, url, events.clone())?.record;
            Ok(json!({
                "webhook_id": record.id,
                "account": account.get(),
                "url": record.url,
                "events": events_value(record.events.as_ref()),
                "secret": record.secret,
                "note": "the secret is shown once: verify each delivery's Bourse-Webhook-Signature with it",
            }))
        }
        Op::ListWebhooks { account } => {
            let list: Vec<Value> = webhooks.list(*account).iter().map(status_value).collect();
            Ok(json!({"account": account.get(), "webhooks": list}))
        }
        Op::DeleteWebhook { account, webhook_id } => {
            if webhooks.delete(*account, webhook_id)? {
                Ok(json!({"webhook_id": webhook_id, "deleted": true}))
            } else {
                Err(ApiError::new(404, "unknown_webhook", format!("no webhook {webhook_id} of account {account}")))
            }
        }
        _ => Err(ApiError::bad_request("invalid_request", "not a webhook op")),
    }
}
