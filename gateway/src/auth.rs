//! API keys, request signatures and rate limits: who is asking, may they, and not too
//! often.
//!
//! **Keys.** A key is handed to its holder once, as the token `<key_id>.<secret>`
//! (`bk_` + 16 hex digits, a dot, 32 random bytes as 64 hex digits). The server never
//! stores the secret: it stores the *verifier* `HMAC-SHA256(key = secret, msg =
//! "bourse-signing-key-v1")`, which is also the key the client signs with
//! ([`signing_key`]). Be clear about what that buys: the verifier is enough to sign
//! requests, so the key file (`keys.json`, written with mode 0600) is exactly as
//! sensitive as the secrets themselves. What it prevents is the printed secret being
//! recovered from the file, or reused as a password anywhere else.
//!
//! **Signatures.** Every signed request carries four headers ([`HEADER_KEY`],
//! [`HEADER_TIMESTAMP`] in Unix milliseconds, [`HEADER_NONCE`], [`HEADER_SIGNATURE`]).
//! The signature is the lowercase hex `HMAC-SHA256(signing_key, string_to_sign)` where
//! the string to sign is `"{timestamp}\n{nonce}\n{METHOD}\n{path}\n"` followed by the
//! body bytes ([`string_to_sign`]). A WebSocket login signs `GET /v1/ws` with an empty
//! body ([`ws_login`]).
//!
//! **Verification** ([`Verifier::verify`]) checks, in this order: the header values are
//! well formed, the key exists, the timestamp is within the window (±30 s by default),
//! the signature matches (constant-time), the nonce has not been seen with this key
//! within the window (it is recorded only once the signature verifies, so nobody but
//! the key holder can spend a key's nonces), and the key's token bucket has a token.
//! Each failure is its own [`AuthError`], with a code, an HTTP status and a message
//! that never contains a secret or a signature.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bourse_core::ids::AccountId;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use hmac::{Hmac, KeyInit as _, Mac as _};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::principal::Principal;

/// The header naming the API key (`bk_…`).
pub const HEADER_KEY: &str = "X-Bourse-Key";
/// The header carrying the request time, Unix milliseconds.
pub const HEADER_TIMESTAMP: &str = "X-Bourse-Timestamp";
/// The header carrying a fresh nonce: 8–64 characters of `[A-Za-z0-9_-]`.
pub const HEADER_NONCE: &str = "X-Bourse-Nonce";
/// The header carrying the signature, 64 hex digits.
pub const HEADER_SIGNATURE: &str = "X-Bourse-Signature";

/// The method a WebSocket login signs.
pub const WS_LOGIN_METHOD: &str = "GET";
/// The path a WebSocket login signs.
pub const WS_LOGIN_PATH: &str = "/v1/ws";

/// Every key id starts with this.
pub const KEY_ID_PREFIX: &str = "bk_";
/// Hex digits after the prefix of a key id.
pub const KEY_ID_HEX_LEN: usize = 16;
/// Random bytes in a secret (given to the holder as twice as many hex digits).
pub const SECRET_LEN_BYTES: usize = 32;
/// Bounds on a nonce's length, in characters.
pub const NONCE_LEN_MIN: usize = 8;
pub const NONCE_LEN_MAX: usize = 64;
/// At most this many keys in a store.
pub const KEYS_MAX: usize = 10_000;
/// At most this many accounts bound to one key.
pub const ACCOUNTS_PER_KEY_MAX: usize = 1_024;
/// A key's label: 1 to this many bytes, no control characters.
pub const LABEL_LEN_MAX: usize = 64;
/// However generous the rate, a key never has more nonces remembered than this.
pub const NONCES_PER_KEY_CEILING: usize = 1 << 20;
/// Bounds on the timestamp window, milliseconds.
pub const TIMESTAMP_WINDOW_MS_MIN: u64 = 1_000;
pub const TIMESTAMP_WINDOW_MS_MAX: u64 = 600_000;

/// The message the verifier is the HMAC of, under the secret.
const SIGNING_KEY_CONTEXT: &[u8] = b"bourse-signing-key-v1";
/// The first field of the key file: its format and version.
const KEY_FILE_FORMAT: &str = "bourse-keys-v1";
/// Signature length in bytes (HMAC-SHA256).
const SIGNATURE_LEN_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------------
// Permissions

/// What a key may do. `Admin` implies every other permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Balances, orders, payments and history of the key's own accounts.
    Read,
    /// Place and cancel orders.
    Trade,
    /// Move money: transfers, authorizations, captures, refunds, withdrawals.
    Pay,
    /// Operator commands, for every account.
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 4] = [Permission::Read, Permission::Trade, Permission::Pay, Permission::Admin];

    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Trade => "trade",
            Permission::Pay => "pay",
            Permission::Admin => "admin",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission name that is none of `read`, `trade`, `pay`, `admin`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?} (expected read, trade, pay or admin)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Permission::ALL.into_iter().find(|p| p.as_str() == text).ok_or_else(|| UnknownPermission(text.to_owned()))
    }
}

/// A set of permissions (a small bitset). Serialized as a list of names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

impl Permissions {
    pub const fn empty() -> Self {
        Permissions(0)
    }

    /// Every permission, `admin` included.
    pub const fn all() -> Self {
        Permissions(0b1111)
    }

    #[must_use]
    pub const fn with(self, permission: Permission) -> Self {
        Permissions(self.0 | permission.bit())
    }

    /// Whether this set grants `permission`: it holds it, or it holds `admin`.
    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & (permission.bit() | Permission::Admin.bit()) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions explicitly in the set (not the ones `admin` implies).
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.0 & p.bit() != 0)
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Permissions::empty(), Permissions::with)
    }
}

/// `read,trade` (commas, optional spaces).
impl FromStr for Permissions {
    type Err = UnknownPermission;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',').map(str::trim).filter(|name| !name.is_empty()).map(Permission::from_str).collect()
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, permission) in self.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            f.write_str(permission.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = Vec::<Permission>::deserialize(deserializer)?;
        Ok(list.into_iter().collect())
    }
}

// ---------------------------------------------------------------------------------
// Keys and the key store

/// An API key as the server knows it: no secret, only the verifier.
///
/// `Serialize` gives the public view (id, permissions, accounts, label, creation
/// time) and leaves the verifier out, so a key can be listed to an operator as is.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    #[serde(skip)]
    verifier: [u8; 32],
    pub permissions: Permissions,
    /// The accounts a non-admin key acts for (sorted, no duplicates; empty for admin).
    pub accounts: Vec<AccountId>,
    pub label: String,
    pub created_at_ms: u64,
}

impl ApiKey {
    /// Who this key acts as: every account with `admin`, else its own accounts.
    pub fn principal(&self) -> Principal {
        if self.permissions.contains(Permission::Admin) {
            Principal::Admin
        } else {
            Principal::accounts(self.accounts.iter().copied())
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("verifier", &"<redacted>")
            .field("permissions", &self.permissions)
            .field("accounts", &self.accounts)
            .field("label", &self.label)
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

/// A key just created: the only time its secret exists outside its holder.
/// `Debug` redacts the secret; print [`NewKey::token`] once, to the operator.
pub struct NewKey {
    pub id: String,
    secret: String,
}

impl NewKey {
    /// What the holder keeps: `<key_id>.<secret>`.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The secret, 64 hex digits.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Credentials to sign with this key.
    pub fn credentials(&self) -> Credentials {
        let mut secret = [0_u8; SECRET_LEN_BYTES];
        hex::decode_to_slice(&self.secret, &mut secret).expect("a new key's secret is 64 hex digits");
        Credentials { key_id: self.id.clone(), signing_key: signing_key(&secret) }
    }
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// Why the key store failed, or refused a change.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("{} is not a valid key file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error("a key needs at least one permission")]
    NoPermissions,
    #[error("an admin key acts for every account; give it no accounts")]
    AdminWithAccounts,
    #[error("a label is 1 to {LABEL_LEN_MAX} bytes without control characters")]
    InvalidLabel,
    #[error("a key is bound to at most {ACCOUNTS_PER_KEY_MAX} accounts")]
    TooManyAccounts,
    #[error("the store holds at most {KEYS_MAX} keys; revoke some first")]
    TooManyKeys,
    #[error("{0} is the last admin key; create another admin key before revoking it")]
    LastAdminKey(String),
}

impl KeyStoreError {
    /// A stable `snake_case` code for API replies.
    pub fn code(&self) -> &'static str {
        match self {
            KeyStoreError::Io { .. } | KeyStoreError::Corrupt { .. } | KeyStoreError::Random(_) => "internal",
            KeyStoreError::NoPermissions => "no_permissions",
            KeyStoreError::AdminWithAccounts => "admin_with_accounts",
            KeyStoreError::InvalidLabel => "invalid_label",
            KeyStoreError::TooManyAccounts => "too_many_accounts",
            KeyStoreError::TooManyKeys => "too_many_keys",
            KeyStoreError::LastAdminKey(_) => "last_admin_key",
        }
    }
}

/// A key as written to the key file (the verifier in hex).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    id: String,
    verifier: String,
    permissions: Permissions,
    accounts: Vec<AccountId>,
    label: String,
    created_at_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    keys: Vec<StoredKey>,
}

/// The API keys, kept in memory and in one JSON file (rewritten whole, atomically,
/// with mode 0600, on every change). Thread-safe; share it in an `Arc`.
pub struct KeyStore {
    path: PathBuf,
    keys: RwLock<BTreeMap<String, Arc<ApiKey>>>,
}

impl KeyStore {
    /// Opens the key file at `path`. When there is none (a first start), creates an
    /// admin key (label `admin`, every permission), writes the file, and returns the
    /// new key so the caller can print its token once. A file that exists is never
    /// given a key it did not have.
    pub fn open(path: impl Into<PathBuf>) -> Result<(KeyStore, Option<NewKey>), KeyStoreError> {
        let path = path.into();
        match fs::read(&path) {
            Ok(bytes) => {
                let keys =
                    parse_key_file(&bytes).map_err(|reason| KeyStoreError::Corrupt { path: path.clone(), reason })?;
                warn_if_readable_by_others(&path);
                Ok((KeyStore { path, keys: RwLock::new(keys) }, None))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(|source| KeyStoreError::Io {
                        action: "create the directory",
                        path: parent.to_owned(),
                        source,
                    })?;
                }
                let store = KeyStore { path, keys: RwLock::new(BTreeMap::new()) };
                let admin = store.create(Permissions::all(), Vec::new(), "admin")?;
                Ok((store, Some(admin)))
            }
            Err(source) => Err(KeyStoreError::Io { action: "read", path, source }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a key, writes the file, and returns the key with its secret (the only
    /// copy). Accounts are sorted and de-duplicated; an admin key takes none.
    pub fn create(
        &self,
        permissions: Permissions,
        accounts: Vec<AccountId>,
        label: &str,
    ) -> Result<NewKey, KeyStoreError> {
        let accounts = validate_new_key(permissions, accounts, label)?;
        let mut keys = self.keys.write();
        if keys.len() >= KEYS_MAX {
            return Err(KeyStoreError::TooManyKeys);
        }
        let (id, secret) = loop {
            let id = format!("{KEY_ID_PREFIX}{}", random_hex(KEY_ID_HEX_LEN / 2).map_err(KeyStoreError::Random)?);
            if !keys.contains_key(&id) {
                let mut secret = [0_u8; SECRET_LEN_BYTES];
                getrandom::fill(&mut secret).map_err(KeyStoreError::Random)?;
                break (id, secret);
            }
        };
        let key = ApiKey {
            id: id.clone(),
            verifier: signing_key(&secret),
            permissions,
            accounts,
            label: label.to_owned(),
            created_at_ms: unix_ms_now(),
        };
        keys.insert(id.clone(), Arc::new(key));
        if let Err(error) = self.persist(&keys) {
            keys.remove(&id);
            return Err(error);
        }
        Ok(NewKey { id, secret: hex::encode(secret) })
    }

    /// Removes a key for good; `Ok(false)` when there was no such key. Refuses to
    /// remove the last admin key (nobody could create keys any more).
    pub fn revoke(&self, id: &str) -> Result<bool, KeyStoreError> {
        let mut keys = self.keys.write();
        let Some(key) = keys.get(id).cloned() else {
            return Ok(false);
        };
        let is_admin = |k: &ApiKey| k.permissions.contains(Permission::Admin);
        if is_admin(&key) && keys.values().filter(|k| is_admin(k)).count() == 1 {
            return Err(KeyStoreError::LastAdminKey(key.id.clone()));
        }
        keys.remove(id);
        if let Err(error) = self.persist(&keys) {
            keys.insert(key.id.clone(), key);
            return Err(error);
        }
        Ok(true)
    }

    /// The key with this id, if any.
    pub fn get(&self, id: &str) -> Option<Arc<ApiKey>> {
        self.keys.read().get(id).cloned()
    }

    /// Every key, ordered by id.
    pub fn list(&self) -> Vec<ApiKey> {
        self.keys.read().values().map(|key| ApiKey::clone(key)).collect()
    }

    pub fn len(&self) -> usize {
        self.keys.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.read().is_empty()
    }

    fn persist(&self, keys: &BTreeMap<String, Arc<ApiKey>>) -> Result<(), KeyStoreError> {
        let file = KeyFile {
            format: KEY_FILE_FORMAT.to_owned(),
            keys: keys
                .values()
                .map(|key| StoredKey {
                    id: key.id.clone(),
                    verifier: hex::encode(key.verifier),
                    permissions: key.permissions,
                    accounts: key.accounts.clone(),
                    label: key.label.clone(),
                    created_at_ms: key.created_at_ms,
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("a key file always serializes");
        bytes.push(b'\n');
        write_atomically(&self.path, &bytes)
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore").field("path", &self.path).field("keys", &self.len()).finish()
    }
}

/// Checks a new key's fields; returns its accounts sorted and de-duplicated.
fn validate_new_key(
    permissions: Permissions,
    mut accounts: Vec<AccountId>,
    label: &str,
) -> Result<Vec<AccountId>, KeyStoreError> {
    if permissions.is_empty() {
        return Err(KeyStoreError::NoPermissions);
    }
    if permissions.contains(Permission::Admin) && !accounts.is_empty() {
        return Err(KeyStoreError::AdminWithAccounts);
    }
    if label.is_empty() || label.len() > LABEL_LEN_MAX || label.chars().any(char::is_control) {
        return Err(KeyStoreError::InvalidLabel);
    }
    accounts.sort_unstable();
    accounts.dedup();
    if accounts.len() > ACCOUNTS_PER_KEY_MAX {
        return Err(KeyStoreError::TooManyAccounts);
    }
    Ok(accounts)
}

/// Reads and checks a key file; the error names what is wrong (never a verifier).
fn parse_key_file(bytes: &[u8]) -> Result<BTreeMap<String, Arc<ApiKey>>, String> {
    let file: KeyFile = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    if file.format != KEY_FILE_FORMAT {
        return Err(format!("format is {:?}, expected {KEY_FILE_FORMAT:?}", file.format));
    }
    if file.keys.len() > KEYS_MAX {
        return Err(format!("{} keys, at most {KEYS_MAX}", file.keys.len()));
    }
    let mut keys = BTreeMap::new();
    for stored in file.keys {
        if !is_valid_key_id(&stored.id) {
            return Err(format!("key id {:?} is not {KEY_ID_PREFIX} and {KEY_ID_HEX_LEN} hex digits", stored.id));
        }
        let mut verifier = [0_u8; 32];
        hex::decode_to_slice(&stored.verifier, &mut verifier)
            .map_err(|_| format!("key {}: the verifier is not 64 hex digits", stored.id))?;
        let accounts = validate_new_key(stored.permissions, stored.accounts, &stored.label)
            .map_err(|error| format!("key {}: {error}", stored.id))?;
        let key = ApiKey {
            id: stored.id,
            verifier,
            permissions: stored.permissions,
            accounts,
            label: stored.label,
            created_at_ms: stored.created_at_ms,
        };
        if let Some(duplicate) = keys.insert(key.id.clone(), Arc::new(key)) {
            return Err(format!("key {} appears twice", duplicate.id));
        }
    }
    Ok(keys)
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never
/// a mix: a fresh temporary file (mode 0600) beside it, fsync, rename, fsync the
/// directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| KeyStoreError::Io { action, path, source }
    };
    match fs::remove_file(&tmp) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(io_error("remove", &tmp)(error)),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io_error("create", &tmp))?;
    file.write_all(bytes).map_err(io_error("write", &tmp))?;
    file.sync_all().map_err(io_error("sync", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error("rename into place", path))?;
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        fs::File::open(parent).and_then(|dir| dir.sync_all()).map_err(io_error("sync the directory", parent))?;
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(metadata) = fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if metadata.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "{} can be read by other users; it is as sensitive as the API secrets (chmod 600 it)",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

// ---------------------------------------------------------------------------------
// Signing

/// The key a client signs with and the server verifies with (the stored verifier):
/// `HMAC-SHA256(key = secret, msg = "bourse-signing-key-v1")`.
pub fn signing_key(secret: &[u8]) -> [u8; 32] {
    hmac_sha256(secret).chain_update(SIGNING_KEY_CONTEXT).finalize().into_bytes().into()
}

/// `"{timestamp}\n{nonce}\n{METHOD}\n{path}\n"` followed by the body. The method is
/// upper-cased; `path` is the request target as sent (path and query, `/v1/rpc`).
pub fn string_to_sign(timestamp_ms: u64, nonce: &str, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{timestamp_ms}\n{nonce}\n{}\n{path}\n", method.to_ascii_uppercase()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The signature of a request: lowercase hex of `HMAC-SHA256(signing_key,
/// string_to_sign(..))`.
pub fn sign(signing_key: &[u8; 32], timestamp_ms: u64, nonce: &str, method: &str, path: &str, body: &[u8]) -> String {
    hex::encode(mac_over(signing_key, timestamp_ms, nonce, method, path, body).finalize().into_bytes())
}

/// The MAC over the string to sign, fed piece by piece (no copy of the body).
fn mac_over(
    signing_key: &[u8; 32],
    timestamp_ms: u64,
    nonce: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> HmacSha256 {
    let header = format!("{timestamp_ms}\n{nonce}\n{}\n{path}\n", method.to_ascii_uppercase());
    hmac_sha256(signing_key).chain_update(header.as_bytes()).chain_update(body)
}

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC-SHA256 takes a key of any length")
}

/// A fresh random nonce: 32 hex digits.
///
/// # Panics
/// If the operating system's random number generator fails.
pub fn new_nonce() -> String {
    random_hex(16).expect("the operating system's random number generator failed")
}

fn random_hex(len_bytes: usize) -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    let bytes = &mut bytes[..len_bytes];
    getrandom::fill(bytes)?;
    Ok(hex::encode(bytes))
}

/// The WebSocket login message for these credentials at `now_ms`: it signs
/// `GET /v1/ws` with an empty body and a fresh nonce.
pub fn ws_login(credentials: &Credentials, now_ms: u64) -> serde_json::Value {
    let nonce = new_nonce();
    let signature = credentials.sign(now_ms, &nonce, WS_LOGIN_METHOD, WS_LOGIN_PATH, b"");
    serde_json::json!({
        "op": "login",
        "key": credentials.key_id,
        "timestamp": now_ms,
        "nonce": nonce,
        "signature": signature,
    })
}

/// Milliseconds since the Unix epoch, by the system clock.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn is_valid_key_id(id: &str) -> bool {
    id.strip_prefix(KEY_ID_PREFIX)
        .is_some_and(|hex| hex.len() == KEY_ID_HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_valid_nonce(nonce: &str) -> bool {
    (NONCE_LEN_MIN..=NONCE_LEN_MAX).contains(&nonce.len())
        && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

// ---------------------------------------------------------------------------------
// Credentials (the client side)

/// What a client signs with: the key id and the signing key derived from the secret.
/// `Debug` redacts the signing key.
#[derive(Clone)]
pub struct Credentials {
    pub key_id: String,
    signing_key: [u8; 32],
}

/// Why no credentials could be read. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no API key configured: set BOURSE_KEY to the key, or BOURSE_KEY_FILE (or --key-file) to a file holding it"
    )]
    NotConfigured,
    #[error("cannot read the key file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("the API key from {origin} is malformed: {reason}")]
    Malformed { origin: String, reason: &'static str },
}

impl Credentials {
    /// Parses a token `<key_id>.<secret>` (surrounding whitespace ignored).
    pub fn from_token(token: &str) -> Result<Credentials, &'static str> {
        let (key_id, secret_hex) = token.trim().split_once('.').ok_or("expected <key_id>.<secret>")?;
        if !is_valid_key_id(key_id) {
            return Err("the key id is not bk_ and 16 hex digits");
        }
        let mut secret = [0_u8; SECRET_LEN_BYTES];
        hex::decode_to_slice(secret_hex, &mut secret).map_err(|_| "the secret is not 64 hex digits")?;
        Ok(Credentials { key_id: key_id.to_owned(), signing_key: signing_key(&secret) })
    }

    /// Reads the token from, in order: `explicit_file` (`--key-file`), the
    /// `BOURSE_KEY` variable (the token itself), the file named by `BOURSE_KEY_FILE`.
    /// Empty variables count as unset. [`CredentialsError::NotConfigured`] when none
    /// is given.
    pub fn from_env_or_file(explicit_file: Option<&Path>) -> Result<Credentials, CredentialsError> {
        let env = |name| std::env::var(name).ok().filter(|value: &String| !value.trim().is_empty());
        Credentials::from_sources(explicit_file, env("BOURSE_KEY"), env("BOURSE_KEY_FILE").map(PathBuf::from))
    }

    fn from_sources(
        explicit_file: Option<&Path>,
        env_token: Option<String>,
        env_file: Option<PathBuf>,
    ) -> Result<Credentials, CredentialsError> {
        let from_file = |path: &Path| {
            let text =
                fs::read_to_string(path).map_err(|source| CredentialsError::Read { path: path.to_owned(), source })?;
            Credentials::from_token(&text)
                .map_err(|reason| CredentialsError::Malformed { origin: path.display().to_string(), reason })
        };
        if let Some(path) = explicit_file {
            return from_file(path);
        }
        if let Some(token) = env_token {
            return Credentials::from_token(&token)
                .map_err(|reason| CredentialsError::Malformed { origin: "BOURSE_KEY".to_owned(), reason });
        }
        match env_file {
            Some(path) => from_file(&path),
            None => Err(CredentialsError::NotConfigured),
        }
    }

    pub fn signing_key(&self) -> &[u8; 32] {
        &self.signing_key
    }

    /// [`sign`] with these credentials.
    pub fn sign(&self, timestamp_ms: u64, nonce: &str, method: &str, path: &str, body: &[u8]) -> String {
        sign(&self.signing_key, timestamp_ms, nonce, method, path, body)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("key_id", &self.key_id).field("signing_key", &"<redacted>").finish()
    }
}

// ---------------------------------------------------------------------------------
// Errors

/// Why a request was not authenticated or not allowed. The message names what was
/// wrong and never contains a secret or a signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing {header} header: this request needs a signed API key")]
    MissingAuth { header: &'static str },
    #[error("malformed {field}: {reason}")]
    MalformedAuth { field: &'static str, reason: &'static str },
    #[error("unknown API key {key_id}")]
    UnknownKey { key_id: String },
    #[error("{}", describe_skew(*skew_ms, *window_ms))]
    StaleTimestamp {
        /// The request's timestamp minus the server's clock: positive when ahead.
        skew_ms: i64,
        window_ms: u64,
    },
    #[error(
        "bad signature: it does not match this request (check the key, the timestamp, the nonce, the method, the path and the exact body bytes)"
    )]
    BadSignature,
    #[error("nonce already used with this key within the timestamp window: use a fresh nonce for every request")]
    ReplayedNonce,
    #[error(
        "too many requests with this key within the timestamp window (at most {nonces_max} nonces held): slow down"
    )]
    TooManyNonces { nonces_max: usize },
    #[error("rate limit exceeded for this key: retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("this API key lacks the {needed} permission")]
    MissingPermission { needed: Permission },
    #[error("this API key may not act for account {account}")]
    NotYourAccount { account: AccountId },
}

fn describe_skew(skew_ms: i64, window_ms: u64) -> String {
    let direction = if skew_ms >= 0 { "ahead of" } else { "behind" };
    let distance_ms = skew_ms.unsigned_abs();
    if distance_ms <= window_ms {
        format!(
            "stale timestamp: {distance_ms} ms {direction} the server clock, but older than the nonces this server still remembers; sign again with the current time"
        )
    } else {
        format!(
            "stale timestamp: {distance_ms} ms {direction} the server clock, more than the {window_ms} ms allowed (is the client clock set?)"
        )
    }
}

impl AuthError {
    /// A stable `snake_case` code for replies.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingAuth { .. } => "missing_auth",
            AuthError::MalformedAuth { .. } => "malformed_auth",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::StaleTimestamp { .. } => "stale_timestamp",
            AuthError::BadSignature => "bad_signature",
            AuthError::ReplayedNonce => "replayed_nonce",
            AuthError::TooManyNonces { .. } => "too_many_nonces",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::MissingPermission { .. } | AuthError::NotYourAccount { .. } => "forbidden",
        }
    }

    /// 401 for a failed authentication, 403 for a forbidden action, 429 for a limit.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::MissingAuth { .. }
            | AuthError::MalformedAuth { .. }
            | AuthError::UnknownKey { .. }
            | AuthError::StaleTimestamp { .. }
            | AuthError::BadSignature
            | AuthError::ReplayedNonce => 401,
            AuthError::MissingPermission { .. } | AuthError::NotYourAccount { .. } => 403,
            AuthError::TooManyNonces { .. } | AuthError::RateLimited { .. } => 429,
        }
    }

    /// For a `Retry-After` header: how long until the request could succeed.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            AuthError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------
// Verification (the server side)

/// A request that passed verification: who it acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub key_id: String,
    pub permissions: Permissions,
    pub principal: Principal,
}

impl Authenticated {
    fn of(key: &ApiKey) -> Self {
        Authenticated { key_id: key.id.clone(), permissions: key.permissions, principal: key.principal() }
    }

    /// `Err(forbidden)` unless the key grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(AuthError::MissingPermission { needed: permission })
        }
    }

    /// `Err(forbidden)` unless the key may act for `account`.
    pub fn require_account(&self, account: AccountId) -> Result<(), AuthError> {
        if self.principal.may_act_for(account) { Ok(()) } else { Err(AuthError::NotYourAccount { account }) }
    }
}

/// The verifier's settings. Deserializes from a config section with defaults for
/// missing fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierConfig {
    /// A request's timestamp may be this far behind the server clock…
    pub timestamp_window_ms: u64,
    /// …and this far ahead of it. Kept small: nonces live only in memory, so after a
    /// restart the server refuses every timestamp up to `start + future_skew_ms`, and a
    /// request stamped further ahead could otherwise be replayed across a restart.
    pub future_skew_ms: u64,
    /// Token bucket per key: tokens added per second…
    pub requests_per_second: NonZeroU32,
    /// …and the bucket's size.
    pub burst: NonZeroU32,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            timestamp_window_ms: 30_000,
            future_skew_ms: 2_000,
            requests_per_second: NonZeroU32::new(50).expect("50 is not zero"),
            burst: NonZeroU32::new(100).expect("100 is not zero"),
        }
    }
}

/// A verifier setting out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timestamp_window_ms is {0}; it must be between {TIMESTAMP_WINDOW_MS_MIN} and {TIMESTAMP_WINDOW_MS_MAX}")]
pub struct InvalidVerifierConfig(pub u64);

impl VerifierConfig {
    pub fn validate(&self) -> Result<(), InvalidVerifierConfig> {
        if (TIMESTAMP_WINDOW_MS_MIN..=TIMESTAMP_WINDOW_MS_MAX).contains(&self.timestamp_window_ms) {
            Ok(())
        } else {
            Err(InvalidVerifierConfig(self.timestamp_window_ms))
        }
    }

    /// How many nonces a key may have remembered at once: enough for a client that
    /// keeps to its rate. A nonce is remembered until its timestamp leaves the window,
    /// at most twice the window after it arrives, so a client within its rate sends
    /// at most `burst + rate × (2 × window + 1 s)` in that time. Capped at
    /// [`NONCES_PER_KEY_CEILING`].
    pub fn nonces_per_key_max(&self) -> usize {
        let seconds = (2 * self.timestamp_window_ms).div_ceil(1_000) + 1;
        let rate = u64::from(self.requests_per_second.get());
        let total = u64::from(self.burst.get()).saturating_add(rate.saturating_mul(seconds));
        usize::try_from(total).unwrap_or(usize::MAX).min(NONCES_PER_KEY_CEILING)
    }
}

/// The four authentication header values of a request, as found (`None` when absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthHeaders<'a> {
    pub key_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl<'a> AuthHeaders<'a> {
    /// Looks each header up by name ([`HEADER_KEY`] …) with `lookup`.
    pub fn from_lookup(lookup: impl Fn(&'static str) -> Option<&'a str>) -> Self {
        AuthHeaders {
            key_id: lookup(HEADER_KEY),
            timestamp: lookup(HEADER_TIMESTAMP),
            nonce: lookup(HEADER_NONCE),
            signature: lookup(HEADER_SIGNATURE),
        }
    }

    /// No authentication header at all: an unsigned request.
    pub fn is_empty(&self) -> bool {
        self.key_id.is_none() && self.timestamp.is_none() && self.nonce.is_none() && self.signature.is_none()
    }
}

/// Per key: the nonces seen whose timestamps are still inside the window.
#[derive(Default)]
struct NonceWindow {
    timestamp_by_nonce: HashMap<Box<str>, u64>,
    by_timestamp: BinaryHeap<Reverse<(u64, Box<str>)>>,
    /// Every nonce with a timestamp at or before this has been forgotten, so a request
    /// stamped then must be refused as stale (it matters only when callers' clocks
    /// disagree by a little: threads reading the clock in a different order).
    forgotten_through_ms: Option<u64>,
}

impl NonceWindow {
    /// Forgets the nonces whose timestamps are older than the window at `now_ms`.
    fn prune(&mut self, now_ms: u64, window_ms: u64) {
        let oldest_live_ms = now_ms.saturating_sub(window_ms);
        while let Some(Reverse((timestamp_ms, _))) = self.by_timestamp.peek()
            && *timestamp_ms < oldest_live_ms
        {
            let Some(Reverse((timestamp_ms, nonce))) = self.by_timestamp.pop() else { break };
            self.timestamp_by_nonce.remove(&nonce);
            self.forgotten_through_ms = self.forgotten_through_ms.max(Some(timestamp_ms));
        }
        debug_assert_eq!(self.timestamp_by_nonce.len(), self.by_timestamp.len());
    }
}

type KeyedLimiter<C> = RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Verifies signed requests and keeps each key to its rate. `Send + Sync`; share one
/// in an `Arc` across workers. `C` is the rate limiter's clock (a fake one in tests).
pub struct Verifier<C: Clock = DefaultClock> {
    store: Arc<KeyStore>,
    config: VerifierConfig,
    nonces_per_key_max: usize,
    nonces: DashMap<String, NonceWindow>,
    limiter: KeyedLimiter<C>,
    clock: C,
    /// Nonces live in memory only: a restart forgets them. Requests stamped at or
    /// before this (the start) are refused as stale, so none signed before a restart
    /// can be replayed after it.
    forgotten_through_ms: Option<u64>,
}

impl Verifier {
    /// A verifier over `store`, its rate limiter on the monotonic clock. A server
    /// adds `.with_start(unix_ms_now())` (see [`Verifier::with_start`]).
    pub fn new(store: Arc<KeyStore>, config: VerifierConfig) -> Result<Self, InvalidVerifierConfig> {
        Verifier::with_clock(store, config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Verifier<C> {
    /// A verifier with the rate limiter on `clock`, and no start time (see
    /// [`Verifier::with_start`]).
    pub fn with_clock(store: Arc<KeyStore>, config: VerifierConfig, clock: C) -> Result<Self, InvalidVerifierConfig> {
        config.validate()?;
        let quota = Quota::per_second(config.requests_per_second).allow_burst(config.burst);
        Ok(Verifier {
            store,
            nonces_per_key_max: config.nonces_per_key_max(),
            config,
            nonces: DashMap::new(),
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
            forgotten_through_ms: None,
        })
    }

    /// Refuses, as stale, every request stamped at or before `started_at_ms`: the
    /// nonces of an earlier process are not known, so its requests could be replayed.
    /// (A client whose clock is behind the server's is refused for that long after a
    /// start.)
    #[must_use]
    pub fn with_start(mut self, started_at_ms: u64) -> Self {
        self.forgotten_through_ms = Some(started_at_ms);
        self
    }

    /// The key store, for operator commands (create, revoke, list).
    pub fn store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies a signed request; see the module documentation for the checks and
    /// their order. `path` is the request target as received; `now_ms` the server's
    /// Unix time in milliseconds.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        key_id: &str,
        timestamp_ms: u64,
        nonce: &str,
        signature_hex: &str,
        method: &str,
        path: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Authenticated, AuthError> {
        if !is_valid_key_id(key_id) {
            return Err(AuthError::MalformedAuth { field: HEADER_KEY, reason: "expected bk_ and 16 hex digits" });
        }
        if !is_valid_nonce(nonce) {
            return Err(AuthError::MalformedAuth { field: HEADER_NONCE, reason: "expected 8 to 64 of [A-Za-z0-9_-]" });
        }
        let mut signature = [0_u8; SIGNATURE_LEN_BYTES];
        hex::decode_to_slice(signature_hex, &mut signature)
            .map_err(|_| AuthError::MalformedAuth { field: HEADER_SIGNATURE, reason: "expected 64 hex digits" })?;
        let key = self.store.get(key_id).ok_or_else(|| AuthError::UnknownKey { key_id: key_id.to_owned() })?;
        self.check_timestamp(timestamp_ms, now_ms)?;
        mac_over(&key.verifier, timestamp_ms, nonce, method, path, body)
            .verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;
        self.record_nonce(&key.id, nonce, timestamp_ms, now_ms)?;
        self.take_token(&key.id)?;
        Ok(Authenticated::of(&key))
    }

    /// [`Verifier::verify`] from header values: a missing header is `missing_auth`, a
    /// timestamp that is not a number of milliseconds is `malformed_auth`.
    pub fn verify_headers(
        &self,
        headers: &AuthHeaders<'_>,
        method: &str,
        path: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Authenticated, AuthError> {
        let key_id = headers.key_id.ok_or(AuthError::MissingAuth { header: HEADER_KEY })?;
        let timestamp = headers.timestamp.ok_or(AuthError::MissingAuth { header: HEADER_TIMESTAMP })?;
        let nonce = headers.nonce.ok_or(AuthError::MissingAuth { header: HEADER_NONCE })?;
        let signature = headers.signature.ok_or(AuthError::MissingAuth { header: HEADER_SIGNATURE })?;
        let timestamp_ms = parse_timestamp(timestamp)?;
        self.verify(key_id, timestamp_ms, nonce, signature, method, path, body, now_ms)
    }

    /// Verifies a WebSocket login message as built by [`ws_login`]: `key`,
    /// `timestamp` (a number), `nonce` and `signature` over `GET /v1/ws`.
    pub fn verify_login(&self, login: &serde_json::Value, now_ms: u64) -> Result<Authenticated, AuthError> {
        let field = |name: &'static str| {
            login.get(name).and_then(serde_json::Value::as_str).ok_or(AuthError::MissingAuth { header: name })
        };
        let key_id = field("key")?;
        let nonce = field("nonce")?;
        let signature = field("signature")?;
        let timestamp_ms = match login.get("timestamp") {
            None => return Err(AuthError::MissingAuth { header: "timestamp" }),
            Some(value) => value.as_u64().ok_or(AuthError::MalformedAuth {
                field: "timestamp",
                reason: "expected Unix milliseconds as a non-negative integer",
            })?,
        };
        self.verify(key_id, timestamp_ms, nonce, signature, WS_LOGIN_METHOD, WS_LOGIN_PATH, b"", now_ms)
    }

    /// Takes one token from the key's bucket: for each message on a logged-in
    /// WebSocket. Fails with `unknown_key` once the key is revoked, so a live session
    /// ends with its key.
    pub fn check_rate(&self, key_id: &str) -> Result<(), AuthError> {
        let key = self.store.get(key_id).ok_or_else(|| AuthError::UnknownKey { key_id: key_id.to_owned() })?;
        self.take_token(&key.id)
    }

    /// Housekeeping, from a timer (every few seconds): forgets expired nonces, the
    /// state of revoked keys, and buckets that are full again. Memory stays bounded
    /// without it (keys × nonces per key); this returns it sooner.
    pub fn prune(&self, now_ms: u64) {
        let window_ms = self.config.timestamp_window_ms;
        self.nonces.retain(|key_id, window| {
            window.prune(now_ms, window_ms);
            let idle = window.timestamp_by_nonce.is_empty()
                && window.forgotten_through_ms.is_none_or(|ms| ms < now_ms.saturating_sub(2 * window_ms));
            !idle && self.store.get(key_id).is_some()
        });
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn check_timestamp(&self, timestamp_ms: u64, now_ms: u64) -> Result<(), AuthError> {
        let window_ms =
            if timestamp_ms > now_ms { self.config.future_skew_ms } else { self.config.timestamp_window_ms };
        if timestamp_ms.abs_diff(now_ms) <= window_ms {
            return Ok(());
        }
        let skew_ms = i64::try_from(i128::from(timestamp_ms) - i128::from(now_ms))
            .unwrap_or(if timestamp_ms > now_ms { i64::MAX } else { i64::MIN });
        Err(AuthError::StaleTimestamp { skew_ms, window_ms })
    }

    fn record_nonce(&self, key_id: &str, nonce: &str, timestamp_ms: u64, now_ms: u64) -> Result<(), AuthError> {
        let window_ms = self.config.timestamp_window_ms;
        let mut window = match self.nonces.get_mut(key_id) {
            Some(window) => window,
            None => self.nonces.entry(key_id.to_owned()).or_default(),
        };
        window.prune(now_ms, window_ms);
        let forgotten_through_ms = window.forgotten_through_ms.max(self.forgotten_through_ms);
        if forgotten_through_ms.is_some_and(|forgotten_ms| timestamp_ms <= forgotten_ms) {
            let skew_ms = i64::try_from(i128::from(timestamp_ms) - i128::from(now_ms)).unwrap_or(i64::MIN);
            return Err(AuthError::StaleTimestamp { skew_ms, window_ms });
        }
        if window.timestamp_by_nonce.contains_key(nonce) {
            return Err(AuthError::ReplayedNonce);
        }
        if window.timestamp_by_nonce.len() >= self.nonces_per_key_max {
            return Err(AuthError::TooManyNonces { nonces_max: self.nonces_per_key_max });
        }
        window.timestamp_by_nonce.insert(nonce.into(), timestamp_ms);
        window.by_timestamp.push(Reverse((timestamp_ms, nonce.into())));
        Ok(())
    }

    fn take_token(&self, key_id: &String) -> Result<(), AuthError> {
        self.limiter.check_key(key_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            AuthError::RateLimited { retry_after_ms: wait.as_millis().max(1) as u64 }
        })
    }
}

impl<C: Clock> fmt::Debug for Verifier<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("nonces_per_key_max", &self.nonces_per_key_max)
            .finish_non_exhaustive()
    }
}

/// A timestamp header: 1 to 20 ASCII digits, Unix milliseconds.
pub fn parse_timestamp(text: &str) -> Result<u64, AuthError> {
    let malformed =
        AuthError::MalformedAuth { field: HEADER_TIMESTAMP, reason: "expected Unix milliseconds (digits only)" };
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    text.parse().map_err(|_| malformed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    const NOW_MS: u64 = 1_750_000_000_000;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<KeyStore>,
        admin: NewKey,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (store, admin) = KeyStore::open(dir.path().join("keys.json")).unwrap();
        Fixture { _dir: dir, store: Arc::new(store), admin: admin.unwrap() }
    }

    fn verifier(store: &Arc<KeyStore>, config: VerifierConfig) -> (Verifier<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (Verifier::with_clock(Arc::clone(store), config, clock.clone()).unwrap(), clock)
    }

    fn trader(store: &KeyStore) -> NewKey {
        let permissions = Permissions::empty().with(Permission::Read).with(Permission::Trade);
        store.create(permissions, vec![AccountId::new(7), AccountId::new(3), AccountId::new(7)], "desk").unwrap()
    }

    /// Signs and verifies one request; `body_sent` is what reaches the server.
    fn check(
        verifier: &Verifier<FakeRelativeClock>,
        credentials: &Credentials,
        timestamp_ms: u64,
        nonce: &str,
        body_sent: &[u8],
        now_ms: u64,
    ) -> Result<Authenticated, AuthError> {
        let signature = credentials.sign(timestamp_ms, nonce, "POST", "/v1/rpc", br#"{"op":"balances"}"#);
        verifier.verify(&credentials.key_id, timestamp_ms, nonce, &signature, "POST", "/v1/rpc", body_sent, now_ms)
    }

    const BODY: &[u8] = br#"{"op":"balances"}"#;

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let tag = hmac_sha256(b"Jefe").chain_update(b"what do ya want for nothing?").finalize().into_bytes();
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn the_string_to_sign_is_timestamp_nonce_method_path_then_body() {
        let text = string_to_sign(1_700_000_000_123, "abcdefgh", "post", "/v1/rpc", b"{\"a\":1}");
        assert_eq!(text, b"1700000000123\nabcdefgh\nPOST\n/v1/rpc\n{\"a\":1}".to_vec());
        let key = signing_key(&[7; 32]);
        let expected = hex::encode(hmac_sha256(&key).chain_update(&text).finalize().into_bytes());
        assert_eq!(sign(&key, 1_700_000_000_123, "abcdefgh", "post", "/v1/rpc", b"{\"a\":1}"), expected);
        assert_eq!(expected.len(), 64);
        assert!(expected.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn a_signed_request_verifies_and_acts_for_its_accounts_only() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let key = trader(&fx.store);
        let credentials = Credentials::from_token(&key.token()).unwrap();
        let authenticated = check(&verifier, &credentials, NOW_MS, "nonce-0001", BODY, NOW_MS).unwrap();
        assert_eq!(authenticated.key_id, key.id);
        assert_eq!(authenticated.principal, Principal::accounts([AccountId::new(3), AccountId::new(7)]));
        assert!(authenticated.require(Permission::Trade).is_ok());
        assert_eq!(
            authenticated.require(Permission::Pay),
            Err(AuthError::MissingPermission { needed: Permission::Pay })
        );
        assert!(authenticated.require_account(AccountId::new(3)).is_ok());
        let refused = authenticated.require_account(AccountId::new(4)).unwrap_err();
        assert_eq!((refused.code(), refused.http_status()), ("forbidden", 403));
        assert_eq!(refused.to_string(), "this API key may not act for account 4");

        let admin = Credentials::from_token(&fx.admin.token()).unwrap();
        let authenticated = check(&verifier, &admin, NOW_MS, "nonce-0002", BODY, NOW_MS).unwrap();
        assert_eq!(authenticated.principal, Principal::Admin);
        assert!(authenticated.require(Permission::Pay).is_ok(), "admin implies every permission");
    }

    #[test]
    fn a_tampered_body_or_path_or_a_wrong_secret_is_a_bad_signature() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let key = trader(&fx.store);
        let credentials = key.credentials();
        let error = check(&verifier, &credentials, NOW_MS, "nonce-0001", br#"{"op":"balancez"}"#, NOW_MS).unwrap_err();
        assert_eq!((error.code(), error.http_status()), ("bad_signature", 401));

        let signature = credentials.sign(NOW_MS, "nonce-0002", "POST", "/v1/rpc", BODY);
        let error =
            verifier.verify(&key.id, NOW_MS, "nonce-0002", &signature, "POST", "/v1/admin", BODY, NOW_MS).unwrap_err();
        assert_eq!(error, AuthError::BadSignature);

        // The admin's secret claiming the trader's key id.
        let forged = Credentials { key_id: key.id.clone(), signing_key: *fx.admin.credentials().signing_key() };
        assert_eq!(check(&verifier, &forged, NOW_MS, "nonce-0003", BODY, NOW_MS), Err(AuthError::BadSignature));
        // And the right one still works, with the nonces the failures used.
        assert!(check(&verifier, &credentials, NOW_MS, "nonce-0001", BODY, NOW_MS).is_ok());
        assert!(check(&verifier, &credentials, NOW_MS, "nonce-0003", BODY, NOW_MS).is_ok());
    }

    #[test]
    fn an_unknown_or_revoked_key_is_refused() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let key = trader(&fx.store);
        let credentials = key.credentials();
        assert!(check(&verifier, &credentials, NOW_MS, "nonce-0001", BODY, NOW_MS).is_ok());
        assert!(verifier.check_rate(&key.id).is_ok());
        assert!(fx.store.revoke(&key.id).unwrap());
        let error = check(&verifier, &credentials, NOW_MS, "nonce-0002", BODY, NOW_MS).unwrap_err();
        assert_eq!((error.code(), error.http_status()), ("unknown_key", 401));
        assert_eq!(error.to_string(), format!("unknown API key {}", key.id));
        assert_eq!(verifier.check_rate(&key.id), Err(AuthError::UnknownKey { key_id: key.id.clone() }));
    }

    #[test]
    fn timestamps_outside_the_window_are_stale_either_way() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let credentials = fx.admin.credentials();
        let behind = check(&verifier, &credentials, NOW_MS - 30_001, "nonce-0001", BODY, NOW_MS).unwrap_err();
        assert_eq!(behind, AuthError::StaleTimestamp { skew_ms: -30_001, window_ms: 30_000 });
        assert_eq!((behind.code(), behind.http_status()), ("stale_timestamp", 401));
        assert!(behind.to_string().contains("30001 ms behind the server clock"), "{behind}");
        // Ahead, the allowance is the small future skew, not the window.
        let ahead = check(&verifier, &credentials, NOW_MS + 2_001, "nonce-0002", BODY, NOW_MS).unwrap_err();
        assert_eq!(ahead, AuthError::StaleTimestamp { skew_ms: 2_001, window_ms: 2_000 });
        assert!(ahead.to_string().contains("2001 ms ahead of the server clock"), "{ahead}");
        // The edges of the window are inside it.
        assert!(check(&verifier, &credentials, NOW_MS - 30_000, "nonce-0003", BODY, NOW_MS).is_ok());
        assert!(check(&verifier, &credentials, NOW_MS + 2_000, "nonce-0004", BODY, NOW_MS).is_ok());
    }

    #[test]
    fn a_replayed_nonce_is_refused_until_its_timestamp_leaves_the_window() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let credentials = fx.admin.credentials();
        assert!(check(&verifier, &credentials, NOW_MS, "nonce-0001", BODY, NOW_MS).is_ok());
        let replay = check(&verifier, &credentials, NOW_MS, "nonce-0001", BODY, NOW_MS + 10).unwrap_err();
        assert_eq!((replay.code(), replay.http_status()), ("replayed_nonce", 401));
        // Another key may use the same nonce.
        let other = trader(&fx.store).credentials();
        assert!(check(&verifier, &other, NOW_MS, "nonce-0001", BODY, NOW_MS).is_ok());
        // Once the original timestamp is out of the window, the replay is stale instead.
        let late = check(&verifier, &credentials, NOW_MS, "nonce-0001", BODY, NOW_MS + 30_001).unwrap_err();
        assert_eq!(late.code(), "stale_timestamp");
    }

    /// Regression guard: a nonce forgotten by a caller with a later clock must not be
    /// accepted again from a caller whose clock reads slightly earlier.
    #[test]
    fn a_request_older_than_the_forgotten_nonces_is_stale_even_inside_the_window() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let credentials = fx.admin.credentials();
        assert!(check(&verifier, &credentials, 1_000_000, "nonce-0001", BODY, 1_000_000).is_ok());
        // A later request prunes the first nonce (1_000_000 < 1_030_001 - 30_000).
        assert!(check(&verifier, &credentials, 1_030_001, "nonce-0002", BODY, 1_030_001).is_ok());
        let error = check(&verifier, &credentials, 1_000_000, "nonce-0001", BODY, 1_029_000).unwrap_err();
        assert_eq!(error, AuthError::StaleTimestamp { skew_ms: -29_000, window_ms: 30_000 });
        assert!(error.to_string().contains("older than the nonces this server still remembers"), "{error}");
    }

    #[test]
    fn a_request_signed_before_the_verifier_started_is_stale() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let verifier = verifier.with_start(NOW_MS);
        let credentials = fx.admin.credentials();
        let error = check(&verifier, &credentials, NOW_MS - 1, "nonce-0001", BODY, NOW_MS + 5).unwrap_err();
        assert_eq!(error, AuthError::StaleTimestamp { skew_ms: -6, window_ms: 30_000 });
        assert!(check(&verifier, &credentials, NOW_MS + 1, "nonce-0001", BODY, NOW_MS + 5).is_ok());
        let now_ms = unix_ms_now();
        let started_now = Verifier::new(Arc::clone(&fx.store), VerifierConfig::default()).unwrap().with_start(now_ms);
        let signature = credentials.sign(now_ms - 1_000, "nonce-0002", "POST", "/v1/rpc", BODY);
        let error = started_now
            .verify(&credentials.key_id, now_ms - 1_000, "nonce-0002", &signature, "POST", "/v1/rpc", BODY, now_ms)
            .unwrap_err();
        assert_eq!(error.code(), "stale_timestamp");
    }

    #[test]
    fn the_rate_limit_refuses_when_the_bucket_is_empty_and_refills_with_time() {
        let fx = fixture();
        let config = VerifierConfig {
            requests_per_second: NonZeroU32::new(2).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
            ..VerifierConfig::default()
        };
        let (verifier, clock) = verifier(&fx.store, config);
        let credentials = fx.admin.credentials();
        for index in 0..3 {
            assert!(check(&verifier, &credentials, NOW_MS, &format!("nonce-{index:04}"), BODY, NOW_MS).is_ok());
        }
        let limited = check(&verifier, &credentials, NOW_MS, "nonce-0003", BODY, NOW_MS).unwrap_err();
        assert_eq!((limited.code(), limited.http_status()), ("rate_limited", 429));
        assert_eq!(limited.retry_after_ms(), Some(500));
        assert_eq!(verifier.check_rate(&fx.admin.id).unwrap_err().code(), "rate_limited");
        // Another key has its own bucket.
        assert!(verifier.check_rate(&trader(&fx.store).id).is_ok());

        clock.advance(Duration::from_millis(500));
        assert!(verifier.check_rate(&fx.admin.id).is_ok(), "one token back after half a second");
        assert_eq!(verifier.check_rate(&fx.admin.id).unwrap_err().code(), "rate_limited");
        clock.advance(Duration::from_secs(2));
        for _ in 0..3 {
            assert!(verifier.check_rate(&fx.admin.id).is_ok(), "the bucket refills to its burst");
        }
        assert!(verifier.check_rate(&fx.admin.id).is_err());
    }

    #[test]
    fn a_full_nonce_cache_refuses_rather_than_forgets() {
        let fx = fixture();
        let config = VerifierConfig {
            timestamp_window_ms: 1_000,
            future_skew_ms: 1_000,
            requests_per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(1).unwrap(),
        };
        assert_eq!(config.nonces_per_key_max(), 4, "burst 1 + 1/s × (2 × 1 s + 1 s)");
        let (verifier, clock) = verifier(&fx.store, config);
        let credentials = fx.admin.credentials();
        assert!(check(&verifier, &credentials, NOW_MS, "nonce-0000", BODY, NOW_MS).is_ok());
        for index in 1..4 {
            let error = check(&verifier, &credentials, NOW_MS, &format!("nonce-{index:04}"), BODY, NOW_MS);
            assert_eq!(error.unwrap_err().code(), "rate_limited");
        }
        let full = check(&verifier, &credentials, NOW_MS, "nonce-0004", BODY, NOW_MS).unwrap_err();
        assert_eq!(full, AuthError::TooManyNonces { nonces_max: 4 });
        assert_eq!(full.http_status(), 429);
        // The first nonce is still refused: nothing was forgotten to make room.
        assert_eq!(
            check(&verifier, &credentials, NOW_MS, "nonce-0000", BODY, NOW_MS + 5),
            Err(AuthError::ReplayedNonce)
        );
        // Once those timestamps leave the window there is room again.
        clock.advance(Duration::from_secs(2));
        assert!(check(&verifier, &credentials, NOW_MS + 1_001, "nonce-0005", BODY, NOW_MS + 1_001).is_ok());
    }

    #[test]
    fn malformed_or_missing_values_are_refused_before_the_key_is_looked_up() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let credentials = fx.admin.credentials();
        let signature = credentials.sign(NOW_MS, "nonce-0001", "POST", "/v1/rpc", BODY);
        let verify = |key_id: &str, nonce: &str, signature: &str| {
            verifier.verify(key_id, NOW_MS, nonce, signature, "POST", "/v1/rpc", BODY, NOW_MS).unwrap_err()
        };
        let field_of = |error: AuthError| match error {
            AuthError::MalformedAuth { field, .. } => field,
            other => panic!("expected malformed_auth, got {other:?}"),
        };
        assert_eq!(field_of(verify("bk_123", "nonce-0001", &signature)), HEADER_KEY);
        assert_eq!(field_of(verify(&credentials.key_id, "short", &signature)), HEADER_NONCE);
        assert_eq!(field_of(verify(&credentials.key_id, "nonce with space", &signature)), HEADER_NONCE);
        assert_eq!(field_of(verify(&credentials.key_id, &"n".repeat(65), &signature)), HEADER_NONCE);
        assert_eq!(field_of(verify(&credentials.key_id, "nonce-0001", "zz")), HEADER_SIGNATURE);
        assert_eq!(field_of(verify(&credentials.key_id, "nonce-0001", &signature[..62])), HEADER_SIGNATURE);
        assert_eq!(verify("bk_0123456789abcdef", "nonce-0001", &signature).code(), "unknown_key");

        let headers = AuthHeaders {
            key_id: Some(&credentials.key_id),
            timestamp: Some("12a"),
            nonce: Some("nonce-0001"),
            signature: Some(&signature),
        };
        let error = verifier.verify_headers(&headers, "POST", "/v1/rpc", BODY, NOW_MS).unwrap_err();
        assert_eq!(field_of(error), HEADER_TIMESTAMP);
        let missing = AuthHeaders { nonce: None, ..headers };
        let error = verifier.verify_headers(&missing, "POST", "/v1/rpc", BODY, NOW_MS).unwrap_err();
        assert_eq!(error, AuthError::MissingAuth { header: HEADER_NONCE });
        assert_eq!((error.code(), error.http_status()), ("missing_auth", 401));
        assert!(AuthHeaders::default().is_empty());
        assert!(!missing.is_empty());

        let timestamp = NOW_MS.to_string();
        let good = AuthHeaders { timestamp: Some(&timestamp), ..headers };
        assert!(verifier.verify_headers(&good, "POST", "/v1/rpc", BODY, NOW_MS).is_ok());
    }

    #[test]
    fn checks_run_in_order_key_then_timestamp_then_signature() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let stale = NOW_MS - 60_000;
        let bad_signature = "00".repeat(32);
        let unknown =
            verifier.verify("bk_0123456789abcdef", stale, "nonce-0001", &bad_signature, "GET", "/", b"", NOW_MS);
        assert_eq!(unknown.unwrap_err().code(), "unknown_key");
        let stale =
            verifier.verify(&fx.admin.id, stale, "nonce-0001", &bad_signature, "GET", "/", b"", NOW_MS).unwrap_err();
        assert_eq!(stale.code(), "stale_timestamp");
    }

    #[test]
    fn a_websocket_login_verifies_once() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let login = ws_login(&fx.admin.credentials(), NOW_MS);
        assert_eq!(login["op"], "login");
        assert_eq!(login["key"], fx.admin.id.as_str());
        assert_eq!(login["timestamp"], NOW_MS);
        let authenticated = verifier.verify_login(&login, NOW_MS + 5).unwrap();
        assert_eq!(authenticated.principal, Principal::Admin);
        assert_eq!(verifier.verify_login(&login, NOW_MS + 6), Err(AuthError::ReplayedNonce));

        let mut forged = ws_login(&fx.admin.credentials(), NOW_MS);
        forged["timestamp"] = serde_json::json!(NOW_MS + 1);
        assert_eq!(verifier.verify_login(&forged, NOW_MS), Err(AuthError::BadSignature));
        forged["timestamp"] = serde_json::json!("soon");
        assert_eq!(verifier.verify_login(&forged, NOW_MS).unwrap_err().code(), "malformed_auth");
        assert_eq!(
            verifier.verify_login(&serde_json::json!({"op": "login"}), NOW_MS),
            Err(AuthError::MissingAuth { header: "key" })
        );
    }

    #[test]
    fn first_open_creates_one_admin_key_and_a_reopen_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("keys.json");
        let (store, admin) = KeyStore::open(&path).unwrap();
        let admin = admin.expect("a first start creates an admin key");
        let keys = store.list();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].id, admin.id);
        assert_eq!(keys[0].label, "admin");
        assert_eq!(keys[0].principal(), Principal::Admin);
        assert!(Permission::ALL.into_iter().all(|p| keys[0].permissions.contains(p)));
        assert!(admin.token().starts_with(&format!("{}.", admin.id)));
        assert!(is_valid_key_id(&admin.id));
        assert_eq!(admin.secret().len(), 64);
        drop(store);

        let (reopened, again) = KeyStore::open(&path).unwrap();
        assert!(again.is_none(), "the admin key is printed once only");
        assert_eq!(reopened.list(), keys);
    }

    #[test]
    fn the_key_file_holds_no_secret_and_only_its_owner_may_read_it() {
        let fx = fixture();
        let key = trader(&fx.store);
        let text = fs::read_to_string(fx.store.path()).unwrap();
        for secret in [fx.admin.secret(), key.secret()] {
            assert!(!text.contains(secret), "the key file must not contain a secret");
        }
        assert!(text.contains(&hex::encode(key.credentials().signing_key())), "it holds the verifier");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(fx.store.path()).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(!fx.store.path().with_file_name("keys.json.tmp").exists());
    }

    #[test]
    fn created_and_revoked_keys_survive_a_reopen() {
        let fx = fixture();
        let key = trader(&fx.store);
        let pay = fx.store.create(Permissions::empty().with(Permission::Pay), vec![AccountId::new(9)], "shop").unwrap();
        assert!(fx.store.revoke(&key.id).unwrap());
        assert!(!fx.store.revoke(&key.id).unwrap(), "revoking twice finds nothing");
        let (reopened, created) = KeyStore::open(fx.store.path()).unwrap();
        assert!(created.is_none());
        assert!(reopened.get(&key.id).is_none());
        let stored = reopened.get(&pay.id).unwrap();
        assert_eq!(stored.accounts, vec![AccountId::new(9)]);
        assert_eq!(stored.label, "shop");
        assert_eq!(stored.permissions, Permissions::empty().with(Permission::Pay));
        assert_eq!(stored.principal(), Principal::accounts([AccountId::new(9)]));
        assert_eq!(reopened.len(), 2);
        // The reopened store verifies what the credentials sign.
        let (verifier, _) = verifier(&Arc::new(reopened), VerifierConfig::default());
        assert!(check(&verifier, &pay.credentials(), NOW_MS, "nonce-0001", BODY, NOW_MS).is_ok());
    }

    #[test]
    fn the_store_refuses_keys_that_make_no_sense_and_keeps_its_last_admin() {
        let fx = fixture();
        let read = Permissions::empty().with(Permission::Read);
        let create =
            |permissions, accounts, label: &str| fx.store.create(permissions, accounts, label).unwrap_err().code();
        assert_eq!(create(Permissions::empty(), vec![], "x"), "no_permissions");
        assert_eq!(create(Permissions::all(), vec![AccountId::new(1)], "x"), "admin_with_accounts");
        assert_eq!(create(read, vec![], ""), "invalid_label");
        assert_eq!(create(read, vec![], "a\nb"), "invalid_label");
        assert_eq!(create(read, vec![], &"x".repeat(LABEL_LEN_MAX + 1)), "invalid_label");
        let too_many = (0..=ACCOUNTS_PER_KEY_MAX as u32).map(AccountId::new).collect();
        assert_eq!(create(read, too_many, "x"), "too_many_accounts");
        assert_eq!(fx.store.len(), 1, "nothing was added");

        let error = fx.store.revoke(&fx.admin.id).unwrap_err();
        assert_eq!(error.code(), "last_admin_key");
        let second = fx.store.create(Permissions::empty().with(Permission::Admin), vec![], "ops").unwrap();
        assert!(fx.store.revoke(&fx.admin.id).unwrap());
        assert!(fx.store.get(&second.id).is_some());
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let verifier_hex = "ab".repeat(32);
        let cases = [
            ("not json", "expected"),
            (r#"{"format":"bourse-keys-v9","keys":[]}"#, "format"),
            (
                &format!(
                    r#"{{"format":"bourse-keys-v1","keys":[{{"id":"bk_0123456789abcdef","verifier":"{verifier_hex}","permissions":["read"],"accounts":[],"label":"a","created_at_ms":0}},{{"id":"bk_0123456789abcdef","verifier":"{verifier_hex}","permissions":["read"],"accounts":[],"label":"b","created_at_ms":0}}]}}"#
                ),
                "appears twice",
            ),
            (
                r#"{"format":"bourse-keys-v1","keys":[{"id":"bk_0123456789abcdef","verifier":"00","permissions":["read"],"accounts":[],"label":"a","created_at_ms":0}]}"#,
                "verifier",
            ),
        ];
        for (text, expected) in cases {
            fs::write(&path, text).unwrap();
            let error = KeyStore::open(&path).unwrap_err();
            assert!(matches!(error, KeyStoreError::Corrupt { .. }), "{error:?}");
            assert!(error.to_string().contains(expected), "{error} should mention {expected}");
            assert!(!error.to_string().contains(&verifier_hex), "no verifier in messages");
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let fx = fixture();
        let credentials = fx.admin.credentials();
        let signing_hex = hex::encode(credentials.signing_key());
        let signing_bytes = format!("{:?}", credentials.signing_key());
        let debug = [
            format!("{:?}", fx.admin),
            format!("{credentials:?}"),
            format!("{:?}", fx.store.get(&fx.admin.id).unwrap()),
            format!("{:?}", fx.store),
        ];
        for text in debug {
            assert!(!text.contains(fx.admin.secret()), "{text}");
            assert!(!text.contains(&signing_hex) && !text.contains(&signing_bytes), "{text}");
        }
        let listed = serde_json::to_string(&fx.store.list()).unwrap();
        assert!(!listed.contains(&signing_hex) && !listed.contains("verifier"), "{listed}");
    }

    #[test]
    fn credentials_come_from_the_explicit_file_then_the_variable_then_the_variable_file() {
        let fx = fixture();
        let dir = tempfile::tempdir().unwrap();
        let admin_file = dir.path().join("admin.key");
        fs::write(&admin_file, format!("  {}\n", fx.admin.token())).unwrap();
        let trader_key = trader(&fx.store);
        let trader_file = dir.path().join("trader.key");
        fs::write(&trader_file, trader_key.token()).unwrap();

        let from = |explicit: Option<&Path>, token: Option<String>, file: Option<PathBuf>| {
            Credentials::from_sources(explicit, token, file).map(|c| c.key_id)
        };
        assert_eq!(from(Some(&admin_file), Some(trader_key.token()), None).unwrap(), fx.admin.id);
        assert_eq!(from(None, Some(trader_key.token()), Some(admin_file.clone())).unwrap(), trader_key.id);
        assert_eq!(from(None, None, Some(trader_file)).unwrap(), trader_key.id);
        assert!(matches!(from(None, None, None), Err(CredentialsError::NotConfigured)));
        let missing = from(None, None, Some(dir.path().join("absent"))).unwrap_err();
        assert!(missing.to_string().contains("absent"), "{missing}");

        let broken = format!("{}.{}", fx.admin.id, &fx.admin.secret()[..63]);
        let error = from(None, Some(broken.clone()), None).unwrap_err();
        assert_eq!(error.to_string(), "the API key from BOURSE_KEY is malformed: the secret is not 64 hex digits");
        assert!(!error.to_string().contains(&broken[20..]));
        assert!(Credentials::from_token("bk_xyz.00").is_err());
        assert!(Credentials::from_token("no-dot").is_err());
    }

    #[test]
    fn permissions_parse_print_and_serialize_as_names() {
        let set: Permissions = "read, trade".parse().unwrap();
        assert!(set.contains(Permission::Read) && set.contains(Permission::Trade));
        assert!(!set.contains(Permission::Pay) && !set.contains(Permission::Admin));
        assert_eq!(set.to_string(), "read,trade");
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"["read","trade"]"#);
        assert_eq!(serde_json::from_str::<Permissions>(r#"["trade","read"]"#).unwrap(), set);
        assert!(serde_json::from_str::<Permissions>(r#"["root"]"#).is_err());
        assert_eq!("read,root".parse::<Permissions>().unwrap_err(), UnknownPermission("root".to_owned()));
        let admin = Permissions::empty().with(Permission::Admin);
        assert!(Permission::ALL.into_iter().all(|p| admin.contains(p)));
        assert_eq!(format!("{admin:?}"), "[Admin]");
    }

    #[test]
    fn every_error_has_its_own_code() {
        let errors = [
            AuthError::MissingAuth { header: HEADER_KEY },
            AuthError::MalformedAuth { field: HEADER_KEY, reason: "x" },
            AuthError::UnknownKey { key_id: "bk_0".into() },
            AuthError::StaleTimestamp { skew_ms: 1, window_ms: 0 },
            AuthError::BadSignature,
            AuthError::ReplayedNonce,
            AuthError::TooManyNonces { nonces_max: 1 },
            AuthError::RateLimited { retry_after_ms: 1 },
            AuthError::MissingPermission { needed: Permission::Admin },
        ];
        let mut codes: Vec<_> = errors.iter().map(AuthError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
    }

    #[test]
    fn the_config_is_validated_and_sizes_the_nonce_cache() {
        assert_eq!(VerifierConfig::default().nonces_per_key_max(), 100 + 50 * 61);
        let config = VerifierConfig { timestamp_window_ms: 999, ..VerifierConfig::default() };
        assert_eq!(config.validate(), Err(InvalidVerifierConfig(999)));
        let fx = fixture();
        assert!(Verifier::new(Arc::clone(&fx.store), config).is_err());
        let huge = VerifierConfig { requests_per_second: NonZeroU32::MAX, ..VerifierConfig::default() };
        assert_eq!(huge.nonces_per_key_max(), NONCES_PER_KEY_CEILING);
        let parsed: VerifierConfig = serde_json::from_str(r#"{"burst": 7}"#).unwrap();
        assert_eq!(parsed, VerifierConfig { burst: NonZeroU32::new(7).unwrap(), ..VerifierConfig::default() });
    }

    #[test]
    fn prune_forgets_expired_nonces_and_revoked_keys() {
        let fx = fixture();
        let (verifier, _) = verifier(&fx.store, VerifierConfig::default());
        let key = trader(&fx.store);
        assert!(check(&verifier, &fx.admin.credentials(), NOW_MS, "nonce-0001", BODY, NOW_MS).is_ok());
        assert!(check(&verifier, &key.credentials(), NOW_MS, "nonce-0001", BODY, NOW_MS).is_ok());
        assert_eq!(verifier.nonces.len(), 2);
        fx.store.revoke(&key.id).unwrap();
        verifier.prune(NOW_MS + 1);
        assert_eq!(verifier.nonces.len(), 1, "the revoked key's nonces are gone");
        assert_eq!(verifier.nonces.get(&fx.admin.id).unwrap().timestamp_by_nonce.len(), 1);
        verifier.prune(NOW_MS + 30_001);
        assert_eq!(verifier.nonces.get(&fx.admin.id).unwrap().timestamp_by_nonce.len(), 0);
        verifier.prune(NOW_MS + 100_000);
        assert!(verifier.nonces.is_empty(), "an idle key's window is dropped");
    }
}
