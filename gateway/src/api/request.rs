//! Requests: `{"id": …, "op": "…", …params}` → a checked `Command` (or a query).
//!
//! Each op's parameters are a struct with `deny_unknown_fields`, so a typo is an
//! error naming the field; amounts and prices are decimal strings, converted with the
//! asset's scale and the market's grid; ids may be numbers or numeric strings.
//! Nothing here reaches the engine unless it parsed completely.

use std::fmt;

use bourse_core::book::{ClientOrderId, OrderId, SelfTradePrevention, Side, TimeInForce};
use bourse_core::command::{
    AddMarket, AmendOrder, Authorize, CancelAll, CancelOrder, Capture, Command, CrossBorderAmount, Deposit,
    ExecuteQuote, FreezeAccount, OpenAccount, OrderRef, OrderSize, PayCrossBorder, PlaceOrder, QuotePayment, RateLimit,
    Refund, SetKycTier, SplitLeg, SplitPayment, Transfer, UnfreezeAccount, Void, Withdraw,
};
use bourse_core::ids::{
    AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, PaymentId, QuoteId, Reference, Timestamp,
};
use bourse_core::limits::{AUTHORIZATION_DURATION_MAX, QUOTE_TTL_MAX, ROUTE_HOPS_MAX};
use bourse_core::market::{FeeRate, FeeSchedule, MarketSpec};
use bourse_core::money::Amount;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, IgnoredAny, Visitor};
use serde_json::Value;

use super::ApiError;
use crate::auth::Permission;
use crate::view::{MarketView, ReadModel};

/// A request as parsed: the client's id (echoed), and what it asks.
#[derive(Debug)]
pub struct Request {
    pub id: Value,
    pub op: Op,
}

/// What a request asks.
#[derive(Debug)]
pub enum Op {
    /// A command for the engine, acting for `acting_for` (`None`: an operator command
    /// that acts for nobody in particular).
    Command {
        command: Command,
        acting_for: Option<AccountId>,
        permission: Permission,
    },
    /// A command the gateway already knows the engine would refuse (an amend of an
    /// order that is not open): authorized like the command, then answered with
    /// `error`.
    Refuse {
        acting_for: AccountId,
        permission: Permission,
        error: ApiError,
    },
    Balances {
        account: AccountId,
    },
    Orders {
        account: AccountId,
    },
    Markets,
    Depth {
        market: String,
        levels: usize,
    },
    Trades {
        market: String,
        limit: usize,
    },
    CreateKey {
        permissions: Vec<Permission>,
        accounts: Vec<AccountId>,
        label: String,
    },
    RevokeKey {
        key_id: String,
    },
    ListKeys,
    RegisterWebhook {
        account: AccountId,
        url: String,
        events: Option<Vec<String>>,
    },
    ListWebhooks {
        account: AccountId,
    },
    /// `account` is the one the webhook id names.
    DeleteWebhook {
        account: AccountId,
        webhook_id: String,
    },
    /// A rule set's canonical TOML (`version`), or the diff of two.
    ShowRules {
        version: u32,
    },
    DiffRules {
        a: u32,
        b: u32,
    },
    ListRules,
    /// Payments waiting for review, oldest first: `account`'s (as payer or payee) if
    /// given, at most `limit`.
    ListReviews {
        account: Option<AccountId>,
        limit: usize,
    },
    Login {
        key: String,
        timestamp: u64,
        nonce: String,
        signature: String,
    },
    Subscribe {
        channel: Channel,
        market: Option<String>,
    },
    Unsubscribe {
        channel: Channel,
        market: Option<String>,
    },
    Ping,
}

/// WebSocket subscription channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The session's own orders, executions, balances and payments.
    Account,
    /// L2 depth: a snapshot, then incremental updates.
    Book,
    /// Best bid and offer.
    Bbo,
    Trades,
}

/// The ops a request may name, for the error that lists them.
pub const OPS: &[&str] = &[
    "open_account",
    "freeze_account",
    "unfreeze_account",
    "set_kyc_tier",
    "deposit",
    "withdraw",
    "transfer",
    "authorize",
    "capture",
    "void",
    "split_payment",
    "refund",
    "quote_payment",
    "execute_quote",
    "pay_cross_border",
    "add_market",
    "place_order",
    "cancel_order",
    "cancel_all",
    "amend_order",
    "balances",
    "orders",
    "markets",
    "depth",
    "trades",
    "create_key",
    "revoke_key",
    "list_keys",
    "register_webhook",
    "list_webhooks",
    "delete_webhook",
    "publish_rules",
    "activate_rules",
    "rollback_rules",
    "review_decision",
    "list_reviews",
    "list_rules",
    "show_rules",
    "diff_rules",
    "login",
    "subscribe",
    "unsubscribe",
    "ping",
];

/// Ops anyone may call without a key.
pub fn is_public(op: &str) -> bool {
    matches!(op, "markets" | "depth" | "trades" | "ping")
}

/// The envelope: read first, everything else skipped.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    op: Value,
}

/// Parses `body` (one JSON request) against the current markets and assets: the
/// envelope first, then the body again straight into the op's parameter struct (no
/// intermediate JSON tree). The error carries the client's id (when it could be
/// read), to echo.
#[allow(clippy::result_large_err, reason = "the error path is the malformed-input path; a box buys nothing")]
pub fn parse(body: &[u8], view: &ReadModel) -> Result<Request, (Value, ApiError)> {
    // serde would read `Head` from an array too (by position): only objects are requests.
    if body.iter().find(|byte| !byte.is_ascii_whitespace()).is_some_and(|first| *first != b'{') {
        let error = match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => ApiError::bad_request(
                "invalid_request",
                "a request is a JSON object with \"op\" (and an optional \"id\")",
            ),
            Err(error) => ApiError::bad_request("malformed_json", format!("malformed JSON: {error}")),
        };
        return Err((Value::Null, error));
    }
    let head: Head = serde_json::from_slice(body).map_err(|error| {
        let error = match error.classify() {
            serde_json::error::Category::Data => ApiError::bad_request(
                "invalid_request",
                "a request is a JSON object with \"op\" (and an optional \"id\")",
            ),
            _ => ApiError::bad_request("malformed_json", format!("malformed JSON: {error}")),
        };
        (Value::Null, error)
    })?;
    let id = head.id;
    if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
        return Err((Value::Null, ApiError::bad_request("invalid_request", "\"id\" must be a string or a number")));
    }
    let op = match head.op {
        Value::String(op) => op,
        Value::Null => {
            return Err((id, ApiError::bad_request("invalid_request", "missing \"op\" (what the request asks)")));
        }
        _ => return Err((id, ApiError::bad_request("invalid_request", "\"op\" must be a string"))),
    };
    match parse_op(&op, body, view) {
        Ok(op) => Ok(Request { id, op }),
        Err(error) => Err((id, error)),
    }
}

fn params<T: DeserializeOwned>(op: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::bad_request("invalid_params", format!("{op}: {error}")))
}

fn command(command: Command, acting_for: Option<AccountId>, permission: Permission) -> Op {
    Op::Command { command, acting_for, permission }
}

#[allow(clippy::too_many_lines)]
fn parse_op(op: &str, body: &[u8], view: &ReadModel) -> Result<Op, ApiError> {
    Ok(match op {
        "open_account" => {
            let p: OpenAccountParams = params(op, body)?;
            let kyc_tier = kyc(p.kyc_tier)?;
            command(
                Command::OpenAccount(OpenAccount { owner: OwnerId::new(p.owner.0), kyc_tier }),
                None,
                Permission::Admin,
            )
        }
        "freeze_account" | "unfreeze_account" => {
            let p: AccountParams = params(op, body)?;
            let account = account(p.account);
            let command = if op == "freeze_account" {
                Command::FreezeAccount(FreezeAccount { account })
            } else {
                Command::UnfreezeAccount(UnfreezeAccount { account })
            };
            Op::Command { command, acting_for: None, permission: Permission::Admin }
        }
        "set_kyc_tier" => {
            let p: KycParams = params(op, body)?;
            let kyc_tier = kyc(p.kyc_tier)?;
            command(Command::SetKycTier(SetKycTier { account: account(p.account), kyc_tier }), None, Permission::Admin)
        }
        "deposit" | "withdraw" => {
            let p: FundingParams = params(op, body)?;
            let (asset, amount) = asset_amount(view, &p.asset, &p.amount, "amount")?;
            let reference = Reference::new(&p.reference).ok_or_else(|| {
                invalid(format!(
                    "reference is {} bytes; at most {} are kept",
                    p.reference.len(),
                    bourse_core::limits::REFERENCE_BYTES_MAX
                ))
            })?;
            let (account, key) = (account(p.account), key(p.key.as_deref())?);
            let command = if op == "deposit" {
                Command::Deposit(Deposit { account, key, asset, amount, reference })
            } else {
                Command::Withdraw(Withdraw { account, key, asset, amount, reference })
            };
            Op::Command { command, acting_for: None, permission: Permission::Admin }
        }
        "transfer" => {
            let p: TransferParams = params(op, body)?;
            let (asset, amount) = asset_amount(view, &p.asset, &p.amount, "amount")?;
            let by = account(p.by);
            let transfer = Transfer { by, key: key(p.key.as_deref())?, to: account(p.to), asset, amount };
            command(Command::Transfer(transfer), Some(by), Permission::Pay)
        }
        "authorize" => {
            let p: AuthorizeParams = params(op, body)?;
            let (asset, amount) = asset_amount(view, &p.asset, &p.amount, "amount")?;
            let seconds = p.expires_in.map_or(DEFAULT_AUTHORIZATION_SECS, |seconds| seconds.0);
            let max_secs = AUTHORIZATION_DURATION_MAX.as_nanos() / 1_000_000_000;
            if seconds == 0 || seconds > max_secs {
                return Err(invalid(format!("expires_in must be 1 to {max_secs} seconds, got {seconds}")));
            }
            let expires_at = crate::hub::now_timestamp().saturating_add(Timestamp::from_nanos(seconds * 1_000_000_000));
            let by = account(p.by);
            let authorize =
                Authorize { by, key: key(p.key.as_deref())?, payee: account(p.payee), asset, amount, expires_at };
            command(Command::Authorize(authorize), Some(by), Permission::Pay)
        }
        "capture" => {
            let p: CaptureParams = params(op, body)?;
            let (asset, amount) = asset_amount(view, &p.asset, &p.amount, "amount")?;
            let by = account(p.by);
            let capture = Capture {
                by,
                key: key(p.key.as_deref())?,
                payment: PaymentId::new(p.payment.0),
                asset,
                amount,
                last: p.last,
            };
            command(Command::Capture(capture), Some(by), Permission::Pay)
        }
        "void" => {
            let p: VoidParams = params(op, body)?;
            let by = account(p.by);
            let void = Void { by, key: key(p.key.as_deref())?, payment: PaymentId::new(p.payment.0) };
            command(Command::Void(void), Some(by), Permission::Pay)
        }
        "split_payment" => {
            let p: SplitParams = params(op, body)?;
            let (asset, _) = find_asset(view, &p.asset)?;
            let legs = p
                .legs
                .iter()
                .map(|leg| {
                    Ok(SplitLeg {
                        payee: account(leg.payee),
                        amount: amount_of(view, asset, &leg.amount, "legs.amount")?,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let by = account(p.by);
            command(
                Command::SplitPayment(SplitPayment { by, key: key(p.key.as_deref())?, asset, legs }),
                Some(by),
                Permission::Pay,
            )
        }
        "refund" => {
            let p: RefundParams = params(op, body)?;
            let (asset, amount) = asset_amount(view, &p.asset, &p.amount, "amount")?;
            let by = account(p.by);
            let refund =
                Refund { by, key: key(p.key.as_deref())?, payment: PaymentId::new(p.payment.0), asset, amount };
            command(Command::Refund(refund), Some(by), Permission::Pay)
        }
        "quote_payment" => {
            let p: QuotePaymentParams = params(op, body)?;
            let (from, to) = conversion(view, &p.from, &p.to)?;
            let amount = send_or_receive(view, (from, to), p.send.as_deref(), p.receive.as_deref())?;
            let ttl = p.ttl_ms.map(ttl_of).transpose()?;
            let by = account(p.by);
            let quote =
                QuotePayment { by, payee: account(p.payee), from, to, amount, max_hops: hops(p.max_hops)?, ttl };
            command(Command::QuotePayment(quote), Some(by), Permission::Pay)
        }
        "execute_quote" => {
            let p: ExecuteQuoteParams = params(op, body)?;
            let by = account(p.by);
            let execute = ExecuteQuote { by, key: key(p.key.as_deref())?, quote: QuoteId::new(p.quote.0) };
            command(Command::ExecuteQuote(execute), Some(by), Permission::Pay)
        }
        "pay_cross_border" => {
            let p: PayCrossBorderParams = params(op, body)?;
            let (from, to) = conversion(view, &p.from, &p.to)?;
            let amount = send_or_receive(view, (from, to), p.send.as_deref(), p.receive.as_deref())?;
            let limit = match (&p.min_receive, &p.max_send) {
                (Some(least), None) => RateLimit::MinReceive(amount_of(view, to, least, "min_receive")?),
                (None, Some(most)) => RateLimit::MaxSend(amount_of(view, from, most, "max_send")?),
                (Some(_), Some(_)) => return Err(invalid("give min_receive or max_send, not both")),
                (None, None) => {
                    return Err(invalid(
                        "a cross-border payment needs a rate limit: min_receive (of `to`) or max_send (of `from`)",
                    ));
                }
            };
            let by = account(p.by);
            let pay = PayCrossBorder {
                by,
                key: key(p.key.as_deref())?,
                payee: account(p.payee),
                from,
                to,
                amount,
                limit,
                max_hops: hops(p.max_hops)?,
            };
            command(Command::PayCrossBorder(pay), Some(by), Permission::Pay)
        }
        "add_market" => {
            let p: AddMarketParams = params(op, body)?;
            let (base, _) = find_asset(view, &p.base)?;
            let (quote, _) = find_asset(view, &p.quote)?;
            let qty = |lots: u64, name: &str| {
                bourse_core::book::Qty::new(lots).ok_or_else(|| invalid(format!("{name} of {lots} lots is too large")))
            };
            let rates: Vec<FeeRate> =
                p.fees.iter().map(|fee| FeeRate { maker_bps: fee.maker_bps, taker_bps: fee.taker_bps }).collect();
            let fees = if rates.is_empty() {
                FeeSchedule::free()
            } else {
                FeeSchedule::new(rates).map_err(|error| invalid(error.to_string()))?
            };
            let spec = MarketSpec {
                base,
                quote,
                lot: p.lot,
                tick: p.tick,
                qty_min: qty(p.qty_min, "qty_min")?,
                qty_max: qty(p.qty_max, "qty_max")?,
                fees,
            };
            spec.validate(view.assets()).map_err(|error| invalid(error.to_string()))?;
            command(Command::AddMarket(AddMarket { spec }), None, Permission::Admin)
        }
        "place_order" => {
            let p: PlaceOrderParams = params(op, body)?;
            let market = find_market(view, &p.market)?;
            let assets = view.assets();
            let price = match (&p.order_type, &p.price) {
                (OrderType::Limit, Some(price)) => {
                    Some(market.spec.parse_price(assets, price).map_err(|error| invalid(format!("price: {error}")))?)
                }
                (OrderType::Limit, None) => return Err(invalid("a limit order needs a price")),
                (OrderType::Market, Some(_)) => return Err(invalid("a market order takes no price")),
                (OrderType::Market, None) => None,
            };
            let size = match (&p.qty, &p.quote_budget) {
                (Some(qty), None) => OrderSize::Qty(
                    market.spec.parse_qty(assets, qty).map_err(|error| invalid(format!("qty: {error}")))?,
                ),
                (None, Some(budget)) => {
                    OrderSize::QuoteBudget(amount_of(view, market.spec.quote, budget, "quote_budget")?)
                }
                (Some(_), Some(_)) => return Err(invalid("give qty or quote_budget, not both")),
                (None, None) => return Err(invalid("an order needs qty (or quote_budget for a market buy)")),
            };
            let time_in_force = p.time_in_force.unwrap_or(match p.order_type {
                OrderType::Limit => TimeInForce::Gtc,
                OrderType::Market => TimeInForce::Ioc,
            });
            let by = account(p.by);
            let place = PlaceOrder {
                by,
                market: market.id,
                side: p.side,
                price,
                size,
                time_in_force,
                post_only: p.post_only,
                stp: p.stp,
                client_order_id: p.client_order_id.as_deref().map(client_order_id).transpose()?,
            };
            place.check().map_err(|reason| invalid(super::reject_message(reason)))?;
            command(Command::PlaceOrder(place), Some(by), Permission::Trade)
        }
        "cancel_order" => {
            let p: OrderRefParams = params(op, body)?;
            let by = account(p.by);
            let order = order_ref(p.order_id, p.client_order_id.as_deref())?;
            command(Command::CancelOrder(CancelOrder { by, order }), Some(by), Permission::Trade)
        }
        "cancel_all" => {
            let p: CancelAllParams = params(op, body)?;
            let by = account(p.by);
            let market =
                p.market.as_deref().map(|symbol| find_market(view, symbol).map(|market| market.id)).transpose()?;
            command(Command::CancelAll(CancelAll { by, market }), Some(by), Permission::Trade)
        }
        "amend_order" => {
            let p: AmendParams = params(op, body)?;
            let by = account(p.by);
            let order = order_ref(p.order_id, p.client_order_id.as_deref())?;
            // The order's market gives the grid; an unknown order is the engine's to refuse.
            let market = match order {
                OrderRef::Id(id) => view.order(id).map(|order| order.market),
                OrderRef::Client(client) => view.order_by_client(by, client).map(|order| order.market),
            };
            let market = market.and_then(|market| view.market(market));
            let (price, qty) = match market {
                Some(market) => (
                    p.price
                        .as_deref()
                        .map(|price| market.spec.parse_price(view.assets(), price))
                        .transpose()
                        .map_err(|e| invalid(format!("price: {e}")))?,
                    p.qty
                        .as_deref()
                        .map(|qty| market.spec.parse_qty(view.assets(), qty))
                        .transpose()
                        .map_err(|e| invalid(format!("qty: {e}")))?,
                ),
                // Refused only after authorization, so that no one learns which orders
                // exist without the right to act for the account.
                None => {
                    return Ok(Op::Refuse {
                        acting_for: by,
                        permission: Permission::Trade,
                        error: ApiError::rejected(bourse_core::event::RejectReason::UnknownOrder),
                    });
                }
            };
            let amend = AmendOrder { by, order, price, qty };
            amend.check().map_err(|reason| invalid(super::reject_message(reason)))?;
            command(Command::AmendOrder(amend), Some(by), Permission::Trade)
        }
        "balances" | "orders" => {
            let p: AccountParams = params(op, body)?;
            let account = account(p.account);
            if op == "balances" { Op::Balances { account } } else { Op::Orders { account } }
        }
        "markets" => {
            let _: Empty = params(op, body)?;
            Op::Markets
        }
        "depth" => {
            let p: DepthParams = params(op, body)?;
            Op::Depth { market: p.market, levels: p.levels.map_or(20, |levels| levels.0 as usize).min(1_000) }
        }
        "trades" => {
            let p: TradesParams = params(op, body)?;
            Op::Trades {
                market: p.market,
                limit: p.limit.map_or(50, |limit| limit.0 as usize).min(crate::view::RECENT_TRADES),
            }
        }
        "create_key" => {
            let p: CreateKeyParams = params(op, body)?;
            if p.permissions.is_empty() {
                return Err(invalid("create_key needs at least one permission (read, trade, pay, admin)"));
            }
            let accounts = p.accounts.iter().map(|id| account(*id)).collect();
            Op::CreateKey { permissions: p.permissions, accounts, label: p.label.unwrap_or_default() }
        }
        "revoke_key" => {
            let p: RevokeKeyParams = params(op, body)?;
            Op::RevokeKey { key_id: p.key_id }
        }
        "list_keys" => {
            let _: Empty = params(op, body)?;
            Op::ListKeys
        }
        "register_webhook" => {
            let p: RegisterWebhookParams = params(op, body)?;
            Op::RegisterWebhook { account: account(p.account), url: p.url, events: p.events }
        }
        "list_webhooks" => {
            let p: AccountParams = params(op, body)?;
            Op::ListWebhooks { account: account(p.account) }
        }
        "delete_webhook" => {
            let p: DeleteWebhookParams = params(op, body)?;
            let account = crate::webhooks::registry::account_of_id(&p.webhook_id)
                .ok_or_else(|| invalid(format!("webhook_id {:?} is not a webhook id (wh_…)", p.webhook_id)))?;
            Op::DeleteWebhook { account, webhook_id: p.webhook_id }
        }
        "publish_rules" => {
            let p: PublishRulesParams = params(op, body)?;
            let rules = match (p.rules, p.rules_toml) {
                (Some(rules), None) => rules,
                (None, Some(text)) => bourse_core::rules::RuleSet::from_toml_str(&text)
                    .map_err(|error| invalid(format!("rules_toml: {error}")))?,
                _ => {
                    return Err(invalid(
                        "give the rule set as `rules` (JSON) or `rules_toml` (TOML text), one of them",
                    ));
                }
            };
            command(Command::PublishRules(bourse_core::command::PublishRules { rules }), None, Permission::Admin)
        }
        "activate_rules" => {
            let p: ActivateRulesParams = params(op, body)?;
            let share_bps =
                p.share_bps.map_or(Ok(10_000), |share| u16::try_from(share.0)).ok().filter(|share| *share <= 10_000);
            let share_bps = share_bps.ok_or_else(|| invalid("share_bps must be 0 to 10000"))?;
            let version = bourse_core::ids::RuleVersion::new(
                u32::try_from(p.version.0).map_err(|_| invalid("version is too large"))?,
            );
            command(
                Command::ActivateRules(bourse_core::command::ActivateRules { version, share_bps }),
                None,
                Permission::Admin,
            )
        }
        "rollback_rules" => {
            let p: RollbackRulesParams = params(op, body)?;
            let to_version = bourse_core::ids::RuleVersion::new(
                u32::try_from(p.to_version.0).map_err(|_| invalid("to_version is too large"))?,
            );
            command(Command::RollbackRules(bourse_core::command::RollbackRules { to_version }), None, Permission::Admin)
        }
        "review_decision" => {
            let p: ReviewParams = params(op, body)?;
            let decision = bourse_core::command::ReviewDecision {
                hold: bourse_core::ids::HoldId::new(p.hold.0),
                approve: p.approve,
            };
            command(Command::ReviewDecision(decision), None, Permission::Admin)
        }
        "list_reviews" => {
            let p: ListReviewsParams = params(op, body)?;
            let limit = p.limit.map_or(REVIEWS_LISTED_DEFAULT, |limit| usize::try_from(limit.0).unwrap_or(usize::MAX));
            Op::ListReviews { account: p.account.map(account), limit: limit.min(REVIEWS_LISTED_MAX) }
        }
        "list_rules" => {
            let _: Empty = params(op, body)?;
            Op::ListRules
        }
        "show_rules" => {
            let p: ShowRulesParams = params(op, body)?;
            Op::ShowRules { version: u32::try_from(p.version.0).unwrap_or(u32::MAX) }
        }
        "diff_rules" => {
            let p: DiffRulesParams = params(op, body)?;
            Op::DiffRules { a: u32::try_from(p.a.0).unwrap_or(u32::MAX), b: u32::try_from(p.b.0).unwrap_or(u32::MAX) }
        }
        "login" => {
            let p: LoginParams = params(op, body)?;
            Op::Login { key: p.key, timestamp: p.timestamp.0, nonce: p.nonce, signature: p.signature }
        }
        "subscribe" | "unsubscribe" => {
            let p: SubscribeParams = params(op, body)?;
            if p.channel != Channel::Account && p.market.is_none() {
                return Err(invalid(format!("channel {:?} needs a market", p.channel)));
            }
            if op == "subscribe" {
                Op::Subscribe { channel: p.channel, market: p.market }
            } else {
                Op::Unsubscribe { channel: p.channel, market: p.market }
            }
        }
        "ping" => Op::Ping,
        _ => {
            return Err(ApiError::bad_request(
                "unknown_op",
                format!("unknown op {op:?}; the ops are: {}", OPS.join(", ")),
            ));
        }
    })
}

const DEFAULT_AUTHORIZATION_SECS: u64 = 7 * 24 * 3600;
/// Payments `list_reviews` shows when no `limit` is given.
pub const REVIEWS_LISTED_DEFAULT: usize = 100;
/// The most payments one `list_reviews` shows (a larger `limit` is cut to it).
pub const REVIEWS_LISTED_MAX: usize = 1_000;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_params", message)
}

fn account(id: Num) -> AccountId {
    AccountId::new(u32::try_from(id.0).unwrap_or(u32::MAX))
}

fn kyc(tier: Option<Num>) -> Result<KycTier, ApiError> {
    let tier = tier.map_or(0, |tier| tier.0);
    u8::try_from(tier)
        .ok()
        .and_then(KycTier::new)
        .ok_or_else(|| invalid(format!("kyc_tier {tier} is out of range (0 to {})", bourse_core::limits::KYC_TIER_MAX)))
}

/// An idempotency key: a UUID or 32 hex digits are taken as they are; any other text
/// (1 to 64 bytes) is hashed to 128 bits; no key at all gets a random one (the
/// command is then not protected against a retry).
pub fn key(text: Option<&str>) -> Result<IdempotencyKey, ApiError> {
    let Some(text) = text else {
        let mut bytes = [0_u8; 16];
        getrandom::fill(&mut bytes).map_err(|error| ApiError::internal(format!("no randomness for a key: {error}")))?;
        return Ok(IdempotencyKey::new(u128::from_le_bytes(bytes)));
    };
    if text.is_empty() || text.len() > 64 {
        return Err(invalid(format!("key must be 1 to 64 bytes, got {}", text.len())));
    }
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32
        && let Ok(value) = u128::from_str_radix(&hex, 16)
    {
        return Ok(IdempotencyKey::new(value));
    }
    Ok(IdempotencyKey::new(xxhash_rust::xxh3::xxh3_128(text.as_bytes())))
}

/// The two assets of a conversion, which must differ.
fn conversion(view: &ReadModel, from: &str, to: &str) -> Result<(AssetId, AssetId), ApiError> {
    let (from_id, _) = find_asset(view, from)?;
    let (to_id, _) = find_asset(view, to)?;
    if from_id == to_id {
        return Err(invalid(format!("from and to are both {from}: nothing to convert (a transfer pays in one asset)")));
    }
    Ok((from_id, to_id))
}

/// `send` (of `from`) or `receive` (of `to`): exactly one of them.
fn send_or_receive(
    view: &ReadModel,
    (from, to): (AssetId, AssetId),
    send: Option<&str>,
    receive: Option<&str>,
) -> Result<CrossBorderAmount, ApiError> {
    match (send, receive) {
        (Some(send), None) => Ok(CrossBorderAmount::Send(amount_of(view, from, send, "send")?)),
        (None, Some(receive)) => Ok(CrossBorderAmount::Receive(amount_of(view, to, receive, "receive")?)),
        (Some(_), Some(_)) => Err(invalid(
            "give send (what the payer sends, of `from`) or receive (what the payee gets, of `to`), not both",
        )),
        (None, None) => {
            Err(invalid("give send (what the payer sends, of `from`) or receive (what the payee gets, of `to`)"))
        }
    }
}

/// `max_hops`: 1 to `ROUTE_HOPS_MAX` markets; absent, the server's default.
fn hops(max_hops: Option<Num>) -> Result<Option<u8>, ApiError> {
    max_hops
        .map(|hops| {
            u8::try_from(hops.0)
                .ok()
                .filter(|hops| *hops >= 1 && usize::from(*hops) <= ROUTE_HOPS_MAX)
                .ok_or_else(|| invalid(format!("max_hops must be 1 to {ROUTE_HOPS_MAX}, got {}", hops.0)))
        })
        .transpose()
}

/// `ttl_ms`: how long a quote stays executable, 1 ms to `QUOTE_TTL_MAX`.
fn ttl_of(ttl_ms: Num) -> Result<Timestamp, ApiError> {
    let max_ms = QUOTE_TTL_MAX.as_nanos() / 1_000_000;
    if ttl_ms.0 == 0 || ttl_ms.0 > max_ms {
        return Err(invalid(format!("ttl_ms must be 1 to {max_ms}, got {}", ttl_ms.0)));
    }
    Ok(Timestamp::from_nanos(ttl_ms.0 * 1_000_000))
}

fn client_order_id(text: &str) -> Result<ClientOrderId, ApiError> {
    ClientOrderId::from_text(text)
        .ok_or_else(|| invalid(format!("client_order_id must be 1 to 16 bytes, got {}", text.len())))
}

fn order_ref(order_id: Option<Num>, client: Option<&str>) -> Result<OrderRef, ApiError> {
    match (order_id, client) {
        (Some(id), None) => Ok(OrderRef::Id(OrderId::new(id.0))),
        (None, Some(client)) => Ok(OrderRef::Client(client_order_id(client)?)),
        (Some(_), Some(_)) => Err(invalid("name the order by order_id or client_order_id, not both")),
        (None, None) => Err(invalid("name the order: order_id or client_order_id")),
    }
}

fn find_asset<'a>(view: &'a ReadModel, code: &str) -> Result<(AssetId, &'a bourse_core::asset::Asset), ApiError> {
    view.assets().find(code).ok_or_else(|| {
        let known: Vec<String> = view.assets().iter().map(|(_, asset)| asset.code().as_str().to_owned()).collect();
        ApiError::bad_request("unknown_asset", format!("unknown asset {code:?}; the assets are {}", known.join(", ")))
    })
}

pub fn find_market<'a>(view: &'a ReadModel, symbol: &str) -> Result<&'a MarketView, ApiError> {
    view.market_by_symbol(symbol).ok_or_else(|| {
        let known: Vec<&str> = view.markets().iter().map(|market| market.symbol.as_str()).collect();
        ApiError::bad_request(
            "unknown_market",
            format!("unknown market {symbol:?}; the markets are {}", known.join(", ")),
        )
    })
}

fn amount_of(view: &ReadModel, asset: AssetId, text: &str, field: &str) -> Result<Amount, ApiError> {
    let asset = view.assets().get(asset).ok_or_else(|| invalid("unknown asset"))?;
    asset.parse_amount(text).map_err(|error| invalid(format!("{field}: {error}")))
}

fn asset_amount(view: &ReadModel, code: &str, text: &str, field: &str) -> Result<(AssetId, Amount), ApiError> {
    let (id, _) = find_asset(view, code)?;
    Ok((id, amount_of(view, id, text, field)?))
}

/// A non-negative integer given as a JSON number or a string of digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num(pub u64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumVisitor;
        impl Visitor<'_> for NumVisitor {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer (a number or a string of digits)")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Num, E> {
                Ok(Num(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Num, E> {
                u64::try_from(value).map(Num).map_err(|_| E::custom(format!("{value} is negative")))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Num, E> {
                value.trim().parse().map(Num).map_err(|_| E::custom(format!("{value:?} is not a non-negative integer")))
            }
        }
        deserializer.deserialize_any(NumVisitor)
    }
}

/// A decimal amount: a JSON string ("10.50"); a JSON number is refused, since binary
/// floating point cannot hold most decimal fractions exactly.
#[derive(Debug)]
pub struct DecimalText(pub String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;
        impl Visitor<'_> for DecimalVisitor {
            type Value = DecimalText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"10.50\" (amounts and prices are strings, not JSON numbers)")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<DecimalText, E> {
                Ok(DecimalText(value.to_owned()))
            }
        }
        deserializer.deserialize_str(DecimalVisitor)
    }
}

impl std::ops::Deref for DecimalText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAccountParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    owner: Num,
    kyc_tier: Option<Num>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    account: Num,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KycParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    account: Num,
    kyc_tier: Option<Num>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundingParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    account: Num,
    asset: String,
    amount: DecimalText,
    reference: String,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    to: Num,
    asset: String,
    amount: DecimalText,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    payee: Num,
    asset: String,
    amount: DecimalText,
    /// Seconds from now.
    expires_in: Option<Num>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    payment: Num,
    asset: String,
    amount: DecimalText,
    #[serde(default)]
    last: bool,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoidParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    payment: Num,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegParams {
    payee: Num,
    amount: DecimalText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    asset: String,
    legs: Vec<LegParams>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    payment: Num,
    asset: String,
    amount: DecimalText,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotePaymentParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    /// The payer.
    by: Num,
    payee: Num,
    from: String,
    to: String,
    send: Option<DecimalText>,
    receive: Option<DecimalText>,
    max_hops: Option<Num>,
    ttl_ms: Option<Num>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteQuoteParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    quote: Num,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayCrossBorderParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    payee: Num,
    from: String,
    to: String,
    send: Option<DecimalText>,
    receive: Option<DecimalText>,
    min_receive: Option<DecimalText>,
    max_send: Option<DecimalText>,
    max_hops: Option<Num>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeeParams {
    maker_bps: u16,
    taker_bps: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMarketParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    base: String,
    quote: String,
    lot: u64,
    tick: u64,
    qty_min: u64,
    qty_max: u64,
    #[serde(default)]
    fees: Vec<FeeParams>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "snake_case")]
enum OrderType {
    #[default]
    Limit,
    Market,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceOrderParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    market: String,
    #[serde(deserialize_with = "side")]
    side: Side,
    #[serde(rename = "type", default)]
    order_type: OrderType,
    price: Option<DecimalText>,
    qty: Option<DecimalText>,
    quote_budget: Option<DecimalText>,
    #[serde(default, deserialize_with = "time_in_force")]
    time_in_force: Option<TimeInForce>,
    #[serde(default)]
    post_only: bool,
    #[serde(default, deserialize_with = "stp")]
    stp: Option<SelfTradePrevention>,
    client_order_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRefParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    order_id: Option<Num>,
    client_order_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelAllParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    market: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmendParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    by: Num,
    order_id: Option<Num>,
    client_order_id: Option<String>,
    price: Option<DecimalText>,
    qty: Option<DecimalText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepthParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    market: String,
    levels: Option<Num>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TradesParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    market: String,
    limit: Option<Num>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeyParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    permissions: Vec<Permission>,
    #[serde(default)]
    accounts: Vec<Num>,
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeKeyParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    key_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterWebhookParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    account: Num,
    url: String,
    events: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteWebhookParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    webhook_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRulesParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    rules: Option<bourse_core::rules::RuleSet>,
    rules_toml: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateRulesParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    version: Num,
    share_bps: Option<Num>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRulesParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    to_version: Num,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    hold: Num,
    approve: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListReviewsParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    #[serde(default, deserialize_with = "account_filter")]
    account: Option<Num>,
    #[serde(default, deserialize_with = "limit_param")]
    limit: Option<Num>,
}

/// An optional id or count whose error names `field` (`serde_json`'s own error names
/// only the line and column).
fn named_num<'de, D: de::Deserializer<'de>>(deserializer: D, field: &str) -> Result<Option<Num>, D::Error> {
    Option::<Num>::deserialize(deserializer).map_err(|error| de::Error::custom(format!("{field}: {error}")))
}

fn account_filter<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Option<Num>, D::Error> {
    named_num(deserializer, "account")
}

fn limit_param<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Option<Num>, D::Error> {
    named_num(deserializer, "limit")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowRulesParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    version: Num,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffRulesParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    a: Num,
    b: Num,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    key: String,
    timestamp: Num,
    nonce: String,
    signature: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeParams {
    #[serde(default, rename = "id")]
    _id: IgnoredAny,
    #[serde(default, rename = "op")]
    _op: IgnoredAny,
    channel: Channel,
    market: Option<String>,
}

fn side<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Side, D::Error> {
    match String::deserialize(deserializer)?.as_str() {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(de::Error::custom(format!("side {other:?} is not \"buy\" or \"sell\""))),
    }
}

fn time_in_force<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Option<TimeInForce>, D::Error> {
    match Option::<String>::deserialize(deserializer)?.as_deref() {
        None => Ok(None),
        Some("gtc") => Ok(Some(TimeInForce::Gtc)),
        Some("ioc") => Ok(Some(TimeInForce::Ioc)),
        Some("fok") => Ok(Some(TimeInForce::Fok)),
        Some(other) => Err(de::Error::custom(format!("time_in_force {other:?} is not \"gtc\", \"ioc\" or \"fok\""))),
    }
}

fn stp<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Option<SelfTradePrevention>, D::Error> {
    match Option::<String>::deserialize(deserializer)?.as_deref() {
        None => Ok(None),
        Some("cancel_taker") => Ok(Some(SelfTradePrevention::CancelTaker)),
        Some("cancel_maker") => Ok(Some(SelfTradePrevention::CancelMaker)),
        Some("cancel_both") => Ok(Some(SelfTradePrevention::CancelBoth)),
        Some(other) => Err(de::Error::custom(format!(
            "stp {other:?} is not \"cancel_taker\", \"cancel_maker\" or \"cancel_both\""
        ))),
    }
}
