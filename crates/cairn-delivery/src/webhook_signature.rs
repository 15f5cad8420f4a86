//! The signature of Cairn's outgoing webhooks: header `Cairn-Signature: t=<unix seconds>,v1=<hex>`
//! where `<hex>` is the lowercase hex HMAC-SHA256 of `"<t>." + body` under the endpoint's secret.
//! Receivers recompute it and reject timestamps older than their tolerance (replay protection).
//! During a key rotation several `v1=` entries may appear; one matching is enough.

use crate::signing::{hex, hex_decode};
use crate::{DeliveryError, SigningKey};

/// The header name.
pub const SIGNATURE_HEADER: &str = "Cairn-Signature";

/// The header value for `body` sent at `timestamp_s` (one `v1` per key).
pub fn sign_webhook(keys: &[&SigningKey], timestamp_s: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp_s}");
    let prefix = format!("{timestamp_s}.");
    for key in keys {
        header.push_str(",v1=");
        header.push_str(&hex(&key.tag(&[prefix.as_bytes(), body])));
    }
    header
}

/// Verifies a `Cairn-Signature` header value against `body` at `now_s`, accepting timestamps at most
/// `tolerance_s` away from now.
pub fn verify_webhook(
    key: &SigningKey,
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), DeliveryError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(DeliveryError::InvalidSignature(
        "no timestamp in the signature header",
    ))?;
    if (now_s - timestamp).abs() > tolerance_s {
        return Err(DeliveryError::InvalidSignature(
            "the signature timestamp is outside the tolerance",
        ));
    }
    let prefix = format!("{timestamp}.");
    let matches = signatures
        .iter()
        .filter_map(|signature| hex_decode(signature).filter(|tag| tag.len() == 32))
        .any(|tag| key.verify(&[prefix.as_bytes(), body], &tag));
    if matches {
        Ok(())
    } else {
        Err(DeliveryError::InvalidSignature("no v1 signature matches"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::new(vec![byte; 32], "webhook").unwrap()
    }

    #[test]
    fn signs_timestamp_dot_body_and_verifies() {
        let header = sign_webhook(&[&key(1)], 1_700_000_000, br#"{"a":1}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        assert!(verify_webhook(&key(1), &header, br#"{"a":1}"#, 1_700_000_100, 300).is_ok());
        assert!(
            verify_webhook(&key(1), &header, br#"{"a":2}"#, 1_700_000_100, 300).is_err(),
            "body changed"
        );
        assert!(
            verify_webhook(&key(2), &header, br#"{"a":1}"#, 1_700_000_100, 300).is_err(),
            "wrong key"
        );
        assert!(
            verify_webhook(&key(1), &header, br#"{"a":1}"#, 1_700_001_000, 300).is_err(),
            "too old"
        );
        let rotated = sign_webhook(&[&key(2), &key(1)], 1_700_000_000, b"x");
        assert!(
            verify_webhook(&key(1), &rotated, b"x", 1_700_000_000, 300).is_ok(),
            "any v1 may match"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic_nor_verify(header in "\\PC{0,120}", body in proptest::collection::vec(any::<u8>(), 0..50)) {
            prop_assert!(verify_webhook(&key(1), &header, &body, 0, i64::MAX / 4).is_err());
        }
    }
}
