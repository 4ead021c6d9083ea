//! FIX Logon passwords kept as Argon2 hashes (PHC strings, `$argon2id$v=19$…`):
//! `bourse hash-password` makes one, the configuration holds it (`password_hash`), and
//! a Logon's Password (554) is checked against it. A check costs tens of milliseconds
//! and the hash's memory (19 MiB with the defaults) by design, so the acceptor runs it
//! on tokio's blocking pool, never on a session thread.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};

/// The most memory a configured hash may ask a check to use, in KiB: a Logon must not
/// be able to make the server take gigabytes.
pub const MEMORY_KIB_MAX: u32 = 256 * 1024;

/// Argon2id with the crate's default cost (m = 19 MiB, t = 2, p = 1, OWASP's minimum)
/// and a fresh random salt, as a PHC string.
pub fn hash(password: &[u8]) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty".to_string());
    }
    Argon2::default().hash_password(password).map(|hash| hash.to_string()).map_err(|error| error.to_string())
}

/// Whether `hash` is an Argon2 PHC string this server can check, within
/// [`MEMORY_KIB_MAX`]; what is wrong with it if not.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|error| error.to_string())?;
    let algorithm = parsed.algorithm.as_str();
    if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d") {
        return Err(format!("the algorithm is {algorithm}, not argon2id, argon2i or argon2d"));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("it has no salt or no hash".to_string());
    }
    let params = Params::try_from(&parsed).map_err(|error| format!("its parameters: {error}"))?;
    if params.m_cost() > MEMORY_KIB_MAX {
        return Err(format!("it asks for {} KiB of memory, more than {MEMORY_KIB_MAX}", params.m_cost()));
    }
    Ok(())
}

/// Whether `password` is the one `hash` was made from (`false` for a hash that does not
/// parse; the configuration was checked with [`check_hash`] at start).
pub fn verify(hash: &str, password: &[u8]) -> bool {
    Argon2::default().verify_password(password, hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_checks_its_own_password_only() {
        let made = hash(b"s3cret").unwrap();
        assert!(made.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{made}");
        assert_eq!(check_hash(&made), Ok(()));
        assert!(verify(&made, b"s3cret"));
        assert!(!verify(&made, b"s3cret "));
        assert!(!verify(&made, b""));
        assert_ne!(hash(b"s3cret").unwrap(), made, "a fresh salt every time");
        assert!(hash(b"").is_err());
    }

    #[test]
    fn hashes_that_cannot_be_checked_are_refused_with_the_reason() {
        assert!(check_hash("s3cret").is_err(), "a plain password is not a hash");
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert!(check_hash(bcrypt).is_err());
        let scrypt = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        assert!(check_hash(scrypt).unwrap_err().contains("scrypt"));
        let greedy = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$qX8xg+Rc1I2rJ+YbT6tBYNqCMovLLL0wC+4XxBLFxm8";
        assert!(check_hash(greedy).unwrap_err().contains("memory"));
        assert!(!verify("not a hash", b"anything"));
    }
}
