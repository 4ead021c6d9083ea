//! The registered endpoints: `<data>/webhooks/endpoints.json`, rewritten whole and
//! atomically (a temporary file with mode 0600, fsync, rename, fsync the directory)
//! on every registration and deletion, the way `auth.rs` writes `keys.json`.
//!
//! Honest limit: the file holds every endpoint's secret in the clear. The server
//! signs each delivery with it, so it must have it; the file is as sensitive as the
//! secrets themselves (mode 0600, a warning in the log when others may read it).

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use actix_web::http::Uri;
use bourse_core::ids::AccountId;
use serde::{Deserialize, Serialize};

use super::select::EVENT_TYPES;

/// Webhook ids are `wh_<account>_<16 hex digits>`: the account they belong to is in
/// the id, so a delete is authorized before the registry is consulted.
pub const WEBHOOK_ID_PREFIX: &str = "wh_";
/// Secrets are `whsec_` and 32 random bytes as 64 hex digits.
pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_LEN_BYTES: usize = 32;
const ID_RANDOM_HEX_LEN: usize = 16;
/// The longest URL accepted, in bytes.
pub const URL_BYTES_MAX: usize = 2_048;
const FILE_FORMAT: &str = "bourse-webhooks-v1";

/// One registered endpoint, as stored. `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRecord {
    pub id: String,
    pub account: AccountId,
    pub url: String,
    pub secret: String,
    /// Notification types it receives; `None`: every type, including types added in
    /// later versions.
    pub events: Option<Vec<String>>,
    /// It receives the notifications of commands after this sequence number (the last
    /// one the publisher had seen when it was registered).
    pub from_seq: u64,
    pub created_at_ms: u64,
}

impl std::fmt::Debug for EndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRecord")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("from_seq", &self.from_seq)
            .finish_non_exhaustive()
    }
}

impl EndpointRecord {
    /// Whether this endpoint receives notifications of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.as_ref().is_none_or(|events| events.iter().any(|event| event == kind))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    format: String,
    endpoints: Vec<EndpointRecord>,
}

/// Why a URL or an event list is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEndpoint {
    #[error("url is {0} bytes; at most {URL_BYTES_MAX}")]
    UrlTooLong(usize),
    #[error("url {0:?} is not an absolute http:// or https:// URL")]
    NotHttp(String),
    #[error("url {0:?} has no host")]
    NoHost(String),
    #[error("url must not carry credentials (user:password@)")]
    Credentials,
    #[error("url must not contain spaces, control characters or a fragment (#)")]
    BadCharacters,
    #[error("events must name at least one type (omit it for every type)")]
    NoEvents,
    #[error("unknown event type {0:?}; the types are {types}", types = EVENT_TYPES.join(", "))]
    UnknownEvent(String),
}

impl InvalidEndpoint {
    pub fn code(&self) -> &'static str {
        match self {
            InvalidEndpoint::NoEvents | InvalidEndpoint::UnknownEvent(_) => "invalid_events",
            _ => "invalid_url",
        }
    }
}

/// Checks an endpoint URL: at most [`URL_BYTES_MAX`] bytes, absolute `http` or
/// `https`, a host, no credentials, no fragment, no spaces or control characters.
pub fn validate_url(url: &str) -> Result<(), InvalidEndpoint> {
    if url.len() > URL_BYTES_MAX {
        return Err(InvalidEndpoint::UrlTooLong(url.len()));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#') {
        return Err(InvalidEndpoint::BadCharacters);
    }
    let uri: Uri = url.parse().map_err(|_| InvalidEndpoint::NotHttp(url.to_owned()))?;
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(InvalidEndpoint::NotHttp(url.to_owned()));
    }
    let authority = uri.authority().ok_or_else(|| InvalidEndpoint::NoHost(url.to_owned()))?;
    if authority.as_str().contains('@') {
        return Err(InvalidEndpoint::Credentials);
    }
    if authority.host().trim_matches(['[', ']']).is_empty() {
        return Err(InvalidEndpoint::NoHost(url.to_owned()));
    }
    Ok(())
}

/// Checks an event filter: `None` (every type) or a non-empty list of known types;
/// returns it sorted and de-duplicated.
pub fn validate_events(events: Option<Vec<String>>) -> Result<Option<Vec<String>>, InvalidEndpoint> {
    let Some(mut events) = events else { return Ok(None) };
    if events.is_empty() {
        return Err(InvalidEndpoint::NoEvents);
    }
    if let Some(unknown) = events.iter().find(|event| !EVENT_TYPES.contains(&event.as_str())) {
        return Err(InvalidEndpoint::UnknownEvent(unknown.clone()));
    }
    events.sort_unstable();
    events.dedup();
    Ok(Some(events))
}

/// The account a webhook id names, if the id is well formed.
pub fn account_of_id(id: &str) -> Option<AccountId> {
    let (account, random) = id.strip_prefix(WEBHOOK_ID_PREFIX)?.split_once('_')?;
    let well_formed = random.len() == ID_RANDOM_HEX_LEN
        && random.bytes().all(|b| b.is_ascii_hexdigit())
        && !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit());
    well_formed.then(|| account.parse().ok().map(AccountId::new)).flatten()
}

/// A fresh id for an endpoint of `account` and a fresh secret.
pub fn new_id_and_secret(account: AccountId) -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0_u8; ID_RANDOM_HEX_LEN / 2 + SECRET_LEN_BYTES];
    getrandom::fill(&mut bytes)?;
    let (id_bytes, secret_bytes) = bytes.split_at(ID_RANDOM_HEX_LEN / 2);
    Ok((
        format!("{WEBHOOK_ID_PREFIX}{}_{}", account.get(), hex::encode(id_bytes)),
        format!("{SECRET_PREFIX}{}", hex::encode(secret_bytes)),
    ))
}

/// Reads the registry; an absent file is an empty registry. The error names what is
/// wrong (never a secret).
pub fn load(path: &Path) -> Result<Vec<EndpointRecord>, String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    warn_if_readable_by_others(path);
    let file: RegistryFile = serde_json::from_slice(&bytes)
        .map_err(|error| format!("{} is not a webhook registry: {error}", path.display()))?;
    if file.format != FILE_FORMAT {
        return Err(format!("{}: format is {:?}, expected {FILE_FORMAT:?}", path.display(), file.format));
    }
    for endpoint in &file.endpoints {
        let problem = if account_of_id(&endpoint.id) == Some(endpoint.account) {
            validate_url(&endpoint.url).err().map(|error| error.to_string())
        } else {
            Some("its id does not name its account".to_owned())
        };
        if let Some(problem) = problem {
            return Err(format!("{}: endpoint {}: {problem}", path.display(), endpoint.id));
        }
    }
    Ok(file.endpoints)
}

/// Writes the registry atomically (mode 0600).
pub fn save(path: &Path, endpoints: &[EndpointRecord]) -> io::Result<()> {
    let file = RegistryFile { format: FILE_FORMAT.to_owned(), endpoints: endpoints.to_vec() };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never
/// a mix: a fresh temporary file (mode 0600) beside it, fsync, rename, fsync the
/// directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match fs::remove_file(&tmp) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = private_options().write(true).create_new(true).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Options that create files readable by the owner only.
pub(crate) fn private_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(metadata) = fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if metadata.permissions().mode() & 0o077 != 0 {
            log::warn!("{} can be read by other users; it holds webhook secrets (chmod 600 it)", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_absolute_http_or_https_with_a_host_and_bounded() {
        for good in [
            "https://merchant.example/hooks/bourse",
            "http://127.0.0.1:8081/hook",
            "HTTPS://Example.COM",
            "http://[::1]:9000/x?y=1",
        ] {
            assert_eq!(validate_url(good), Ok(()), "{good}");
        }
        let long = format!("https://example.com/{}", "a".repeat(URL_BYTES_MAX));
        assert_eq!(validate_url(&long), Err(InvalidEndpoint::UrlTooLong(long.len())));
        for (bad, code) in [
            ("ftp://example.com/x", "invalid_url"),
            ("example.com/hook", "invalid_url"),
            ("/hook", "invalid_url"),
            ("https://", "invalid_url"),
            ("https://user:pass@example.com/", "invalid_url"),
            ("https://example.com/a b", "invalid_url"),
            ("https://example.com/#frag", "invalid_url"),
            ("", "invalid_url"),
        ] {
            let error = validate_url(bad).expect_err(bad);
            assert_eq!(error.code(), code, "{bad}: {error}");
        }
        assert_eq!(validate_url("https://user@example.com/"), Err(InvalidEndpoint::Credentials));
    }

    #[test]
    fn event_filters_name_known_types() {
        assert_eq!(validate_events(None), Ok(None));
        let list = vec!["payment.refunded".to_owned(), "payment.received".to_owned(), "payment.received".to_owned()];
        assert_eq!(
            validate_events(Some(list)),
            Ok(Some(vec!["payment.received".to_owned(), "payment.refunded".to_owned()]))
        );
        assert_eq!(validate_events(Some(Vec::new())), Err(InvalidEndpoint::NoEvents));
        let error = validate_events(Some(vec!["payment.recieved".to_owned()])).unwrap_err();
        assert_eq!(error.code(), "invalid_events");
        assert!(error.to_string().contains("payment.received"), "{error}");
    }

    #[test]
    fn ids_name_their_account_and_secrets_are_fresh() {
        let (id, secret) = new_id_and_secret(AccountId::new(42)).unwrap();
        assert_eq!(account_of_id(&id), Some(AccountId::new(42)));
        assert!(secret.starts_with(SECRET_PREFIX) && secret.len() == SECRET_PREFIX.len() + 64);
        assert_ne!(new_id_and_secret(AccountId::new(42)).unwrap().1, secret);
        for bad in ["wh_42", "wh_x_0123456789abcdef", "wh_42_0123", "bk_42_0123456789abcdef", "wh__0123456789abcdef"] {
            assert_eq!(account_of_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_registry_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("endpoints.json");
        assert!(load(&path).unwrap().is_empty());
        let (id, secret) = new_id_and_secret(AccountId::new(3)).unwrap();
        let record = EndpointRecord {
            id,
            account: AccountId::new(3),
            url: "https://example.com/hook".into(),
            secret,
            events: Some(vec!["payment.received".into()]),
            from_seq: 17,
            created_at_ms: 1,
        };
        save(&path, std::slice::from_ref(&record)).unwrap();
        assert_eq!(load(&path).unwrap(), vec![record.clone()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(!format!("{record:?}").contains(&record.secret));
        let mut tampered = record;
        tampered.account = AccountId::new(4);
        save(&path, &[tampered]).unwrap();
        assert!(load(&path).unwrap_err().contains("does not name its account"));
    }
}
