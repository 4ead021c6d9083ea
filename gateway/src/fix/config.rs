//! The `[fix]` table of the server configuration: where the acceptor listens and the
//! sessions it accepts.
//!
//! ```toml
//! [fix]
//! listen = "127.0.0.1:9878"
//!
//! [[fix.sessions]]
//! sender_comp_id = "BOURSE"        # our CompID (SenderCompID of what we send)
//! target_comp_id = "CLIENT1"       # theirs
//! username = "client1"             # Logon Username (553) and Password (554), checked
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"  # against this (`bourse hash-password`),
//!                                  #   or `password = "secret"`: a plain test credential
//! reset_on_logon = false           # keep sequence numbers across logons (true: reset to 1)
//! heartbeat_secs = 30              # the largest HeartBtInt (108) a Logon may ask for
//! sending_time_tolerance_secs = 120
//! accounts = [0, 1]                # Bourse accounts this session may act for (first = default)
//! ```

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

use super::limits::{HEARTBEAT_SECS_MAX, SESSIONS_MAX, WORKERS_MAX};

/// The `[fix]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixConfig {
    /// `host:port` to listen on; no FIX acceptor when absent.
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub sessions: Vec<FixSessionConfig>,
    /// Threads running the sessions (0: one per core). Each session is one task; a
    /// single thread caps all of them together at what one core can frame, check and
    /// encode.
    #[serde(default)]
    pub workers: usize,
}

/// One declared session, seen from the acceptor.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixSessionConfig {
    /// Our CompID: SenderCompID (49) of what we send, TargetCompID (56) of what we receive.
    pub sender_comp_id: String,
    /// The counterparty's CompID.
    pub target_comp_id: String,
    /// When set (with `password_hash` or `password`), the Logon must carry this
    /// Username (553)…
    #[serde(default)]
    pub username: Option<String>,
    /// …and the Password (554) this Argon2 hash (a PHC string, `$argon2id$…`, as
    /// `bourse hash-password` prints) was made from: the configuration holds no secret.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// …or, instead, this Password: a plain shared secret in the configuration file,
    /// compared in constant time; for tests.
    #[serde(default)]
    pub password: Option<String>,
    /// Reset both sequence numbers to 1 at every Logon (as if it carried
    /// ResetSeqNumFlag=Y); otherwise they continue across reconnects and restarts.
    #[serde(default)]
    pub reset_on_logon: bool,
    /// The largest HeartBtInt (108) a Logon may ask for, in seconds (1 at least).
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u32,
    /// The Bourse accounts this session may act for; the first is the default Account (1).
    #[serde(default)]
    pub accounts: Vec<u32>,
    /// How far SendingTime (52) may be from our clock, in seconds.
    #[serde(default = "default_sending_time_tolerance_secs")]
    pub sending_time_tolerance_secs: u32,
}

fn default_heartbeat_secs() -> u32 {
    30
}

fn default_sending_time_tolerance_secs() -> u32 {
    120
}

impl fmt::Debug for FixSessionConfig {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixSessionConfig")
            .field("sender_comp_id", &self.sender_comp_id)
            .field("target_comp_id", &self.target_comp_id)
            .field("username", &self.username)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<argon2 hash>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("reset_on_logon", &self.reset_on_logon)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field("accounts", &self.accounts)
            .field("sending_time_tolerance_secs", &self.sending_time_tolerance_secs)
            .finish()
    }
}

impl FixSessionConfig {
    /// A session with the defaults: no credentials, no reset, 30 s, 120 s, no accounts.
    pub fn new(sender_comp_id: &str, target_comp_id: &str) -> Self {
        FixSessionConfig {
            sender_comp_id: sender_comp_id.to_string(),
            target_comp_id: target_comp_id.to_string(),
            username: None,
            password_hash: None,
            password: None,
            reset_on_logon: false,
            heartbeat_secs: default_heartbeat_secs(),
            accounts: Vec::new(),
            sending_time_tolerance_secs: default_sending_time_tolerance_secs(),
        }
    }

    /// `SENDER-TARGET`, the session's name in logs and store files.
    pub fn name(&self) -> String {
        format!("{}-{}", self.sender_comp_id, self.target_comp_id)
    }
}

/// A configuration the acceptor refuses.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FixConfigError {
    #[error("fix: {0}")]
    Toml(String),
    #[error("fix.sessions: CompID {0:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    CompId(String),
    #[error("fix.sessions: session {0} is declared twice")]
    Duplicate(String),
    #[error("fix.sessions: session {0}: a username goes with exactly one of password_hash or password")]
    Credentials(String),
    #[error(
        "fix.sessions: session {0}: password_hash is not an Argon2 PHC string ({1}); `bourse hash-password` makes one"
    )]
    PasswordHash(String, String),
    #[error("fix.sessions: session {0}: heartbeat_secs must be 1 to {HEARTBEAT_SECS_MAX}")]
    Heartbeat(String),
    #[error("fix.sessions: session {0}: sending_time_tolerance_secs must be 1 to 86400")]
    Tolerance(String),
    #[error("fix.sessions: at most {SESSIONS_MAX} sessions")]
    TooManySessions,
    #[error("fix.workers: at most {WORKERS_MAX} (0: one per core)")]
    TooManyWorkers,
}

fn valid_comp_id(comp_id: &str) -> bool {
    (1..=64).contains(&comp_id.len())
        && comp_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

impl FixConfig {
    /// Reads the `[fix]` table of a whole server configuration file (other tables are
    /// ignored); an absent table gives the default (no listener, no sessions).
    pub fn from_server_toml(text: &str) -> Result<Self, FixConfigError> {
        let table: toml::Table =
            text.parse().map_err(|error: toml::de::Error| FixConfigError::Toml(error.to_string()))?;
        let config: FixConfig = match table.get("fix") {
            Some(value) => {
                value.clone().try_into().map_err(|error: toml::de::Error| FixConfigError::Toml(error.to_string()))?
            }
            None => FixConfig::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks CompIDs (also used in store file names), uniqueness, credentials and bounds.
    pub fn validate(&self) -> Result<(), FixConfigError> {
        if self.sessions.len() > SESSIONS_MAX {
            return Err(FixConfigError::TooManySessions);
        }
        if self.workers > WORKERS_MAX {
            return Err(FixConfigError::TooManyWorkers);
        }
        for (index, session) in self.sessions.iter().enumerate() {
            for comp_id in [&session.sender_comp_id, &session.target_comp_id] {
                if !valid_comp_id(comp_id) {
                    return Err(FixConfigError::CompId(comp_id.clone()));
                }
            }
            let name = session.name();
            if self.sessions[..index].iter().any(|earlier| {
                earlier.sender_comp_id == session.sender_comp_id && earlier.target_comp_id == session.target_comp_id
            }) {
                return Err(FixConfigError::Duplicate(name));
            }
            match (&session.username, &session.password_hash, &session.password) {
                (None, None, None) => {}
                (Some(username), None, Some(password)) if !username.is_empty() && !password.is_empty() => {}
                (Some(username), Some(hash), None) if !username.is_empty() => {
                    if let Err(reason) = super::password::check_hash(hash) {
                        return Err(FixConfigError::PasswordHash(name, reason));
                    }
                }
                _ => return Err(FixConfigError::Credentials(name)),
            }
            if !(1..=HEARTBEAT_SECS_MAX).contains(&session.heartbeat_secs) {
                return Err(FixConfigError::Heartbeat(name));
            }
            if !(1..=86_400).contains(&session.sending_time_tolerance_secs) {
                return Err(FixConfigError::Tolerance(name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fix_table_of_a_server_file() {
        let config = FixConfig::from_server_toml(
            "[server]\nanything = 1\n[fix]\nlisten = \"127.0.0.1:0\"\n[[fix.sessions]]\nsender_comp_id = \"ISLD\"\ntarget_comp_id = \"TW44\"\nreset_on_logon = true\n",
        )
        .unwrap();
        assert_eq!(config.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(config.sessions[0].heartbeat_secs, 30);
        assert_eq!(config.sessions[0].sending_time_tolerance_secs, 120);
        assert!(config.sessions[0].reset_on_logon);
    }

    #[test]
    fn refuses_what_cannot_work() {
        let mut config = FixConfig { listen: None, sessions: vec![FixSessionConfig::new("A", "B")], workers: 0 };
        config.sessions.push(FixSessionConfig::new("A", "B"));
        assert_eq!(config.validate(), Err(FixConfigError::Duplicate("A-B".into())));
        config.sessions.pop();
        config.sessions[0].password = Some("x".into());
        assert_eq!(config.validate(), Err(FixConfigError::Credentials("A-B".into())));
        config.sessions[0].password = None;
        config.sessions[0].target_comp_id = "../etc".into();
        assert!(matches!(config.validate(), Err(FixConfigError::CompId(_))));
        config.sessions[0].target_comp_id = "B".into();
        assert_eq!(config.validate(), Ok(()));
        config.workers = WORKERS_MAX + 1;
        assert_eq!(config.validate(), Err(FixConfigError::TooManyWorkers));
        let debug =
            format!("{:?}", FixSessionConfig { password: Some("hunter2".into()), ..FixSessionConfig::new("A", "B") });
        assert!(!debug.contains("hunter2"));
    }

    #[test]
    fn a_username_goes_with_one_checkable_password_hash_or_password() {
        let hash = crate::fix::password::hash(b"hunter2").unwrap();
        let with = |password_hash: Option<&str>, password: Option<&str>| FixConfig {
            listen: None,
            sessions: vec![FixSessionConfig {
                username: Some("tw".into()),
                password_hash: password_hash.map(str::to_owned),
                password: password.map(str::to_owned),
                ..FixSessionConfig::new("A", "B")
            }],
            workers: 0,
        };
        assert_eq!(with(Some(&hash), None).validate(), Ok(()));
        assert_eq!(with(None, Some("hunter2")).validate(), Ok(()));
        assert_eq!(with(Some(&hash), Some("hunter2")).validate(), Err(FixConfigError::Credentials("A-B".into())));
        assert_eq!(with(None, None).validate(), Err(FixConfigError::Credentials("A-B".into())));
        let refused = with(Some("hunter2"), None).validate().unwrap_err();
        assert!(matches!(refused, FixConfigError::PasswordHash(ref name, _) if name == "A-B"), "{refused}");
        assert!(refused.to_string().contains("bourse hash-password"), "{refused}");
        let debug = format!("{:?}", with(Some(&hash), None).sessions[0]);
        assert!(!debug.contains(&hash), "{debug}");
    }
}
