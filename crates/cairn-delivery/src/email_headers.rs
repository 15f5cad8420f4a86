//! Email header values Cairn derives: `Message-ID` from Cairn's message id (and back, to attribute
//! bounces), and RFC 8058 one-click unsubscribe (`List-Unsubscribe` with `List-Unsubscribe-Post`).

use crate::DeliveryError;

/// `List-Unsubscribe-Post` value required by RFC 8058 for one-click unsubscribe.
pub const LIST_UNSUBSCRIBE_POST: &str = "List-Unsubscribe=One-Click";

fn is_atext(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte)
}

/// `<message_id@domain>`. The message id must be a dot-atom (letters, digits, `!#$%&'*+-/=?^_{|}~`
/// and single inner dots): Cairn's ids are; anything else is an error, never a malformed header.
pub fn message_id_header(message_id: &str, domain: &str) -> Result<String, DeliveryError> {
    let dot_atom = |text: &str| {
        !text.is_empty()
            && text
                .split('.')
                .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
    };
    if !dot_atom(message_id) {
        return Err(DeliveryError::InvalidRecipient {
            value: message_id.to_owned(),
            reason: "not usable as a Message-ID",
        });
    }
    if !dot_atom(domain) {
        return Err(DeliveryError::InvalidSetting {
            setting: "message_id_domain",
            reason: format!("`{domain}` is not a domain"),
        });
    }
    Ok(format!("<{message_id}@{domain}>"))
}

/// Cairn's message id from a `Message-ID` header value (`<id@domain>`, brackets optional).
pub fn message_id_from_header(value: &str) -> Option<String> {
    let inner = value.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _domain) = inner.rsplit_once('@')?;
    (!local.is_empty()).then(|| local.to_owned())
}

/// The `List-Unsubscribe` value: `<mailto:…>, <https://…>` (mailto first when present). URLs must not
/// contain `<`, `>`, `,` or whitespace (signed Cairn URLs never do).
pub fn list_unsubscribe_header(
    https_url: &str,
    mailto: Option<&str>,
) -> Result<String, DeliveryError> {
    let bad = |text: &str| {
        text.chars()
            .any(|c| matches!(c, '<' | '>' | ',') || c.is_whitespace())
    };
    if !https_url.starts_with("https://") && !https_url.starts_with("http://") || bad(https_url) {
        return Err(DeliveryError::InvalidSetting {
            setting: "unsubscribe_url",
            reason: format!("`{https_url}` is not an http(s) URL usable in List-Unsubscribe"),
        });
    }
    match mailto {
        Some(address) if bad(address) || !address.contains('@') => {
            Err(DeliveryError::InvalidSetting {
                setting: "unsubscribe_mailto",
                reason: format!("`{address}` is not an address usable in List-Unsubscribe"),
            })
        }
        Some(address) => Ok(format!(
            "<mailto:{}>, <{https_url}>",
            address.trim_start_matches("mailto:")
        )),
        None => Ok(format!("<{https_url}>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn message_ids_round_trip() {
        let header = message_id_header("msg_01HXYZ.2", "mail.example.com").unwrap();
        assert_eq!(header, "<msg_01HXYZ.2@mail.example.com>");
        assert_eq!(
            message_id_from_header(&header).as_deref(),
            Some("msg_01HXYZ.2")
        );
        assert!(message_id_header("a b", "example.com").is_err());
        assert!(message_id_header("a", "exa mple.com").is_err());
        assert!(message_id_header("a..b", "example.com").is_err());
    }

    #[test]
    fn list_unsubscribe_values() {
        assert_eq!(
            list_unsubscribe_header("https://c.example.com/u/tok", Some("unsub+tok@example.com"))
                .unwrap(),
            "<mailto:unsub+tok@example.com>, <https://c.example.com/u/tok>"
        );
        assert_eq!(
            list_unsubscribe_header("https://c.example.com/u/t", None).unwrap(),
            "<https://c.example.com/u/t>"
        );
        assert!(list_unsubscribe_header("javascript:alert(1)", None).is_err());
        assert!(list_unsubscribe_header("https://x/a>b", None).is_err());
    }

    proptest! {
        #[test]
        fn parsing_headers_never_panics(value in "\\PC{0,80}") {
            let _ = message_id_from_header(&value);
        }

        #[test]
        fn valid_ids_round_trip(id in "[a-zA-Z0-9_-]{1,40}") {
            let header = message_id_header(&id, "example.com").unwrap();
            prop_assert_eq!(message_id_from_header(&header), Some(id));
        }
    }
}
