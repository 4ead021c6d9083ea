//! Delivery signatures: what a receiver checks to know a notification came from this
//! server, unchanged, and recently.
//!
//! ```text
//! Bourse-Webhook-Id:        evt_42_0_1          (the notification's id: de-duplicate on it)
//! Bourse-Webhook-Timestamp: 1795681815          (Unix seconds when this attempt was sent)
//! Bourse-Webhook-Signature: v1=<lowercase hex HMAC-SHA256(key = the secret, "{timestamp}.{body}")>
//! ```
//!
//! The key is the endpoint's secret exactly as `register_webhook` returned it
//! (`whsec_` and 64 hex digits, as ASCII bytes). Every attempt is signed again with
//! its own timestamp; the body is the same bytes on every attempt.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// The notification's id (`evt_…`), the same on every attempt.
pub const HEADER_ID: &str = "Bourse-Webhook-Id";
/// Unix seconds when the attempt was sent.
pub const HEADER_TIMESTAMP: &str = "Bourse-Webhook-Timestamp";
/// `v1=<hex>`; a receiver accepts if any comma-separated `v1=` entry matches.
pub const HEADER_SIGNATURE: &str = "Bourse-Webhook-Signature";
/// The scheme of the signature this server sends.
pub const SCHEME: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp_secs: u64, body: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 takes a key of any length")
        .chain_update(timestamp_secs.to_string().as_bytes())
        .chain_update(b".")
        .chain_update(body)
}

/// The `Bourse-Webhook-Signature` value for `body` sent at `timestamp_secs`.
pub fn signature(secret: &str, timestamp_secs: u64, body: &[u8]) -> String {
    format!("{SCHEME}={}", hex::encode(mac(secret, timestamp_secs, body).finalize().into_bytes()))
}

/// Why a delivery does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the timestamp header is not Unix seconds")]
    MalformedTimestamp,
    #[error("the timestamp is {skew_secs} s from now, more than the {tolerance_secs} s allowed")]
    Stale { skew_secs: u64, tolerance_secs: u64 },
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// What a receiver does (a reference implementation, used by the tests): the
/// timestamp is within `tolerance_secs` of `now_secs`, and some `v1=` entry of the
/// signature header is the HMAC of `"{timestamp}.{body}"` (compared in constant time).
pub fn verify(
    secret: &str,
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let timestamp: u64 = timestamp_header
        .trim()
        .parse()
        .ok()
        .filter(|_| timestamp_header.trim().bytes().all(|b| b.is_ascii_digit()))
        .ok_or(VerifyError::MalformedTimestamp)?;
    let skew_secs = now_secs.abs_diff(timestamp);
    if skew_secs > tolerance_secs {
        return Err(VerifyError::Stale { skew_secs, tolerance_secs });
    }
    let matches = signature_header.split(',').filter_map(|entry| entry.trim().strip_prefix("v1=")).any(|hex_text| {
        let mut expected = [0_u8; 32];
        hex::decode_to_slice(hex_text, &mut expected).is_ok()
            && mac(secret, timestamp, body).verify_slice(&expected).is_ok()
    });
    if matches { Ok(()) } else { Err(VerifyError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const BODY: &[u8] = br#"{"id":"evt_42_0_1","type":"payment.received"}"#;

    #[test]
    fn the_documented_test_vector() {
        // docs/API.md shows this vector; a receiver in any language must compute it.
        assert_eq!(
            signature(SECRET, 1_795_681_815, BODY),
            "v1=0359c155680d9c550b5051cf216cafb228dd75d8719c893c1601c4c61463ff34"
        );
    }

    #[test]
    fn a_signature_verifies_and_any_change_does_not() {
        let header = signature(SECRET, 1_000, BODY);
        assert_eq!(verify(SECRET, "1000", BODY, &header, 1_010, 300), Ok(()));
        // Several entries (a rotated secret): one match is enough.
        let several = format!("v1={}, {header}", "00".repeat(32));
        assert_eq!(verify(SECRET, "1000", BODY, &several, 1_000, 300), Ok(()));
        assert_eq!(verify(SECRET, "1001", BODY, &header, 1_000, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(SECRET, "1000", b"{}", &header, 1_000, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(&SECRET.replace('f', "e"), "1000", BODY, &header, 1_000, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(SECRET, "1000", BODY, "v0=abc", 1_000, 300), Err(VerifyError::Mismatch));
        assert_eq!(
            verify(SECRET, "1000", BODY, &header, 2_000, 300),
            Err(VerifyError::Stale { skew_secs: 1_000, tolerance_secs: 300 })
        );
        assert_eq!(verify(SECRET, "-5", BODY, &header, 1_000, 300), Err(VerifyError::MalformedTimestamp));
    }
}
