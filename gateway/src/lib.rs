//! The `bourse` server: the gateway in front of the runtime (DESIGN.md §3). It
//! decodes, authenticates, authorizes, sequences and routes; it decides nothing about
//! money.
//!
//! - `hub`: sessions submit commands through it and receive their replies and pushes;
//!   the publisher thread routes every applied batch and keeps the read model.
//! - `api`: the JSON API (requests → commands, events → JSON), shared by HTTP and
//!   WebSocket.
//! - `http`: actix-web: `/v1/rpc`, `/v1/ws`, public market data, `/metrics`,
//!   `/health`, `/ready`.
//! - `dashboard`: the live dashboard page and its WebSocket feed of metrics and
//!   best bids and asks.
//! - `fix`: the FIX 4.4 acceptor: codec, dictionary, session layer, applications.
//! - `auth`: API keys, request signatures, rate limits.
//! - `webhooks`: merchant webhooks: endpoints, the outbox, signed deliveries with
//!   retries.
//! - `client`: `bourse call`.

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod fix;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod principal;
pub mod server;
pub mod view;
pub mod webhooks;
