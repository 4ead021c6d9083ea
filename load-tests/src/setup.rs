//! Setting the stage through the API with the admin key: accounts (FIX session `i`
//! trades for account `i`; each WebSocket session gets a trading and a merchant
//! account), deposits, one API key per WebSocket session, the balances before the load
//! (the model's baseline); then the sessions themselves: WebSocket logins and
//! `account` subscriptions, FIX logons, market-data subscriptions.
//! When the mix pays cross-border, the stage also rests the liquidity ladder
//! (`crate::ladder`).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bourse_gateway::auth::{Credentials, unix_ms_now, ws_login};
use serde_json::{Value, json};

use crate::catalog::{Catalog, FUNDING, MARKETS};
use crate::client::{Client, Identity, SendSide};
use crate::fix::{FixMessage, FixWriter, frame_len, tag};
use crate::ladder::Ladder;
use crate::limits::CALL_TIMEOUT;
use crate::marketdata::Subscriber;
use crate::mix::Transport;
use crate::reader::{Owner, ReadSide};
use crate::sender::Writer;
use crate::server::{FIX_PASSWORD, fix_comp_id};
use crate::ws::BlockingWs;

/// Where the server listens.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Endpoints {
    pub(crate) http: SocketAddr,
    pub(crate) fix: Option<SocketAddr>,
}

/// How many sessions of each kind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sessions {
    pub(crate) ws: usize,
    pub(crate) fix: usize,
    pub(crate) subscribers: usize,
}

/// The accounts, keys and sessions of a run.
#[derive(Debug)]
pub(crate) struct Stage {
    pub(crate) clients: Vec<Arc<Client>>,
    pub(crate) credentials: Vec<Option<Credentials>>,
    pub(crate) key_ids: Vec<String>,
    /// Every account the load uses.
    pub(crate) accounts: Vec<u64>,
    /// Balances (`available + held`) before the load, per (account, asset index).
    pub(crate) baseline: HashMap<(u64, usize), i128>,
    pub(crate) subscribers: Vec<Arc<Subscriber>>,
    /// The liquidity ladder, when the mix pays cross-border.
    pub(crate) ladder: Option<Ladder>,
}

/// The admin session: logged in with the admin key.
pub(crate) fn admin_session(endpoints: &Endpoints, credentials: &Credentials) -> anyhow::Result<BlockingWs> {
    let mut admin = BlockingWs::connect(endpoints.http, 0x0AD3_1000)?;
    admin.call_ok(ws_login(credentials, unix_ms_now())).context("admin login (is --key / BOURSE_KEY an admin key?)")?;
    Ok(admin)
}

pub(crate) fn open_account(admin: &mut BlockingWs, owner: u64) -> anyhow::Result<u64> {
    let reply = admin.call_ok(json!({"op": "open_account", "owner": owner}))?;
    reply["result"]["account"].as_u64().context("open_account: no account in the result")
}

/// Account `index` for FIX session `index`: reused when it exists, else opened (on a
/// fresh server the first accounts opened are 0, 1, 2…).
fn fix_account(admin: &mut BlockingWs, index: u64) -> anyhow::Result<u64> {
    let reply = admin.call(json!({"op": "balances", "account": index}))?;
    if reply["ok"] == true {
        admin.call_ok(json!({"op": "cancel_all", "by": index}))?;
        return Ok(index);
    }
    loop {
        let account = open_account(admin, 9_000_000 + index)?;
        if account == index {
            return Ok(index);
        }
        if account > index {
            bail!(
                "FIX session {index} trades for account {index}, which does not exist, and new accounts get higher ids: \
                 start the server on a fresh data directory with the configuration `bourse-load config` prints"
            );
        }
    }
}

/// Deposits `times` [`FUNDING`] into `account`; `round` tells apart the deposits made
/// into one account (their idempotency keys differ), 0 for the first.
pub(crate) fn deposit_funding(
    admin: &mut BlockingWs,
    catalog: &Catalog,
    account: u64,
    seed: u64,
    round: u64,
    times: u128,
) -> anyhow::Result<()> {
    let keyed = seed.wrapping_add(round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for (asset, units) in FUNDING {
        let amount = units.parse::<u128>().context("FUNDING is whole units")? * times;
        let key = format!("{keyed:016x}{account:08x}{:08x}", catalog.asset(asset).unwrap_or_default());
        admin.call_ok(json!({"op": "deposit", "account": account, "asset": asset, "amount": amount.to_string(), "reference": "bourse-load", "key": key}))?;
    }
    Ok(())
}

/// Opens and funds the accounts, creates the keys, and reads the baseline; rests the
/// liquidity ladder when the mix pays cross-border (`liquidity`).
pub(crate) fn stage(
    admin: &mut BlockingWs,
    catalog: &Catalog,
    sessions: Sessions,
    seed: u64,
    liquidity: bool,
) -> anyhow::Result<Stage> {
    let mut identities = Vec::new();
    for index in 0..sessions.fix {
        let account = fix_account(admin, index as u64)?;
        identities.push(Identity {
            index,
            transport: Transport::Fix,
            account,
            merchant: None,
            payees: Vec::new(),
            comp_id: fix_comp_id(index),
        });
    }
    for index in sessions.fix..sessions.fix + sessions.ws {
        let account = open_account(admin, 9_100_000 + index as u64)?;
        let merchant = open_account(admin, 9_200_000 + index as u64)?;
        identities.push(Identity {
            index,
            transport: Transport::Ws,
            account,
            merchant: Some(merchant),
            payees: Vec::new(),
            comp_id: String::new(),
        });
    }
    let accounts: Vec<u64> =
        identities.iter().flat_map(|who| std::iter::once(who.account).chain(who.merchant)).collect();
    for who in &mut identities {
        who.payees = accounts.iter().copied().filter(|account| *account != who.account).collect();
    }
    // Merchants too: they pay the cross-border payments.
    for account in &accounts {
        deposit_funding(admin, catalog, *account, seed, 0, 1)?;
    }
    let ladder =
        if liquidity { Some(Ladder::rest(admin, catalog, seed).context("the liquidity ladder")?) } else { None };
    let mut credentials = Vec::new();
    let mut key_ids = Vec::new();
    for who in &identities {
        let Some(merchant) = who.merchant else {
            credentials.push(None);
            continue;
        };
        let reply = admin.call_ok(json!({"op": "create_key", "permissions": ["read", "trade", "pay"], "accounts": [who.account, merchant], "label": format!("bourse-load {}", who.index)}))?;
        let token = reply["result"]["api_key"].as_str().context("create_key: no api_key")?;
        credentials
            .push(Some(Credentials::from_token(token).map_err(|reason| anyhow::anyhow!("create_key: {reason}"))?));
        key_ids.push(reply["result"]["key_id"].as_str().unwrap_or_default().to_owned());
    }
    let baseline = balances(admin, catalog, &accounts)?;
    let clients = identities.into_iter().map(|who| Arc::new(Client::new(who, seed))).collect();
    let subscribers = (0..sessions.subscribers)
        .map(|index| Arc::new(Subscriber::new(vec![MARKETS[index % MARKETS.len()].0.to_owned()])))
        .collect();
    Ok(Stage { clients, credentials, key_ids, accounts, baseline, subscribers, ladder })
}

/// `available + held` of every asset of `accounts`.
pub(crate) fn balances(
    admin: &mut BlockingWs,
    catalog: &Catalog,
    accounts: &[u64],
) -> anyhow::Result<HashMap<(u64, usize), i128>> {
    let mut totals = HashMap::new();
    for account in accounts {
        let reply = admin.call_ok(json!({"op": "balances", "account": account}))?;
        for balance in reply["result"]["balances"].as_array().context("balances: no list")? {
            let code = balance["asset"].as_str().unwrap_or_default();
            let asset = catalog.asset(code).with_context(|| format!("an unknown asset {code}"))?;
            let amount = |name: &str| balance[name].as_str().and_then(|text| catalog.minor(asset, text));
            let (Some(available), Some(held)) = (amount("available"), amount("held")) else {
                bail!("balances of {account}: {balance}");
            };
            totals.insert((*account, asset), available + held);
        }
    }
    Ok(totals)
}

/// Opens a trading session's connection and logs it in.
pub(crate) fn connect_client(
    endpoints: &Endpoints,
    client: &Arc<Client>,
    credentials: Option<&Credentials>,
    seed: u64,
) -> anyhow::Result<(Writer, ReadSide)> {
    match client.identity.transport {
        Transport::Ws => {
            let credentials = credentials.context("a WebSocket session without a key")?;
            let mut ws = BlockingWs::connect(endpoints.http, seed)?;
            ws.call_ok(ws_login(credentials, unix_ms_now())).context("login")?;
            ws.call_ok(json!({"op": "subscribe", "channel": "account"}))?;
            let (stream, leftover) = ws.into_parts();
            client.lock().connected = true;
            split(stream, leftover, SendSide::new(seed, None), Owner::Ws(Arc::clone(client)), Some(client))
        }
        Transport::Fix => {
            let address = endpoints.fix.context("FIX sessions, but the server has no FIX listener")?;
            let (stream, leftover, writer) = fix_logon(address, &client.identity.comp_id)?;
            client.lock().logged_on(2);
            split(stream, leftover, SendSide::new(seed, Some(writer)), Owner::Fix(Arc::clone(client)), Some(client))
        }
    }
}

fn fix_logon(address: SocketAddr, comp_id: &str) -> anyhow::Result<(TcpStream, Vec<u8>, FixWriter)> {
    let mut stream = TcpStream::connect_timeout(&address, CALL_TIMEOUT)
        .with_context(|| format!("connecting to FIX at {address}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(CALL_TIMEOUT))?;
    let mut writer = FixWriter::new(comp_id, "BOURSE");
    let mut logon = Vec::new();
    writer
        .start("A")
        .field(tag::ENCRYPT_METHOD, 0)
        .field(tag::HEART_BT_INT, 30)
        .field(tag::USERNAME, comp_id.to_lowercase())
        .field(tag::PASSWORD, FIX_PASSWORD)
        .finish(&mut logon);
    stream.write_all(&logon)?;
    let deadline = Instant::now() + CALL_TIMEOUT;
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(len) = frame_len(&buffer)? {
            let message = FixMessage::parse(&buffer[..len])?;
            if message.msg_type() != "A" || message.seq() != Some(1) {
                bail!("FIX {comp_id}: expected Logon seq 1, got 35={} 34={:?}", message.msg_type(), message.seq());
            }
            return Ok((stream, buffer[len..].to_vec(), writer));
        }
        if Instant::now() > deadline {
            bail!("FIX {comp_id}: no Logon reply in time");
        }
        let read = stream.read(&mut chunk).with_context(|| format!("FIX {comp_id}: reading the Logon reply"))?;
        if read == 0 {
            bail!(
                "FIX {comp_id}: the server closed the connection (a bad Logon? is the session declared in its configuration?)"
            );
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Opens a market-data session and asks for its channels; the replies and snapshots
/// are read by the reader.
pub(crate) fn connect_subscriber(
    endpoints: &Endpoints,
    subscriber: &Arc<Subscriber>,
    seed: u64,
) -> anyhow::Result<(Writer, ReadSide)> {
    let mut ws = BlockingWs::connect(endpoints.http, seed)?;
    let mut id = 1;
    for market in &subscriber.markets {
        for channel in ["book", "bbo", "trades"] {
            ws.send_text(&json!({"id": id, "op": "subscribe", "channel": channel, "market": market}).to_string())?;
            id += 1;
        }
    }
    let (stream, leftover) = ws.into_parts();
    split(stream, leftover, SendSide::new(seed, None), Owner::MarketData(Arc::clone(subscriber)), None)
}

fn split(
    stream: TcpStream,
    leftover: Vec<u8>,
    side: SendSide,
    owner: Owner,
    client: Option<&Arc<Client>>,
) -> anyhow::Result<(Writer, ReadSide)> {
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    let read = stream.try_clone()?;
    let outbox = match &owner {
        Owner::Ws(client) | Owner::Fix(client) => Arc::clone(&client.outbox),
        Owner::MarketData(_) => Arc::default(),
    };
    let writer = Writer { stream, side, outbox: Arc::clone(&outbox), client: client.cloned(), broken: false };
    Ok((writer, ReadSide { stream: read, leftover, owner, outbox }))
}

/// Revokes the keys the run created (best effort).
pub(crate) fn revoke_keys(admin: &mut BlockingWs, key_ids: &[String]) {
    for key_id in key_ids {
        let _ = admin.call(json!({"op": "revoke_key", "key_id": key_id}));
    }
}

/// The `depth` of `market` (every level).
pub(crate) fn depth(admin: &mut BlockingWs, market: &str) -> anyhow::Result<Value> {
    Ok(admin.call_ok(json!({"op": "depth", "market": market, "levels": 1000}))?["result"].clone())
}
