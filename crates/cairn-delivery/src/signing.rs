//! HMAC-SHA256 keys, tags and constant-time verification shared by every signed artefact (tracking
//! URLs, double opt-in tokens, webhook signatures).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::DeliveryError;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted, in bytes (128 bits).
pub const MIN_KEY_BYTES: usize = 16;

/// A secret HMAC-SHA256 key. Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} bytes)", self.0.len())
    }
}

impl SigningKey {
    /// A key from raw secret bytes; at least [`MIN_KEY_BYTES`] long.
    pub fn new(
        secret: impl Into<Vec<u8>>,
        setting: &'static str,
    ) -> Result<SigningKey, DeliveryError> {
        let secret = secret.into();
        if secret.len() < MIN_KEY_BYTES {
            return Err(DeliveryError::InvalidSetting {
                setting,
                reason: format!(
                    "the secret must be at least {MIN_KEY_BYTES} bytes, got {}",
                    secret.len()
                ),
            });
        }
        Ok(SigningKey(secret))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length: this cannot fail.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("hmac accepts keys of any length"),
        }
    }

    /// The full 32-byte HMAC-SHA256 tag of the concatenation of `parts`.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `parts` (or its left-most bytes, at least 16), in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() < 16 {
            return false;
        }
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.verify_truncated_left(tag).is_ok()
    }
}

/// Base64url without padding (the alphabet of every token in URLs).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes lowercase or uppercase hexadecimal.
pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused() {
        assert!(SigningKey::new(b"short".to_vec(), "x").is_err());
        assert!(SigningKey::new(vec![7; 16], "x").is_ok());
    }

    #[test]
    fn truncated_tags_verify_and_altered_ones_do_not() {
        let key = SigningKey::new(vec![1; 32], "x").unwrap();
        let tag = key.tag(&[b"hello", b"world"]);
        assert!(key.verify(&[b"helloworld"], &tag));
        assert!(key.verify(&[b"helloworld"], &tag[..16]));
        assert!(!key.verify(&[b"helloworld"], &tag[..15]));
        let mut bad = tag;
        bad[3] ^= 1;
        assert!(!key.verify(&[b"helloworld"], &bad));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(hex_decode("00abFF"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(hex_decode("0g"), None);
        assert_eq!(hex_decode("abc"), None);
    }
}
