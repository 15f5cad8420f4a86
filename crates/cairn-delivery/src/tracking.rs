//! Signed tracking and unsubscribe URLs, and the HTML rewriting that adds them to an email.
//!
//! A token is `base64url(payload) "." base64url(first 16 bytes of HMAC-SHA256(payload))`, the payload
//! being `t1\n<kind>\n<message id>\n<profile id>\n<kind-specific fields>`. URLs under the configured
//! public base URL:
//! - open pixel: `{base}/t/o/{token}` (kind `o`);
//! - click redirect: `{base}/t/c/{token}` (kind `c`, with the link's index and target URL: the target
//!   is inside the signed token, so the redirect can never be turned into an open redirect);
//! - unsubscribe (page and RFC 8058 one-click POST): `{base}/u/{token}` (kind `u`, with an optional
//!   subscription group).
//!
//! Verification is constant-time and accepts any of the configured keys, so keys can rotate while
//! old emails keep working.

use std::cell::{Cell, RefCell};

use lol_html::html_content::ContentType;
use lol_html::{element, rewrite_str, RewriteStrSettings};

use crate::signing::{b64url, b64url_decode};
use crate::{DeliveryError, SigningKey, SubscriptionGroupId};

/// Whose message a tracking URL belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingIds {
    pub message_id: String,
    pub profile_id: String,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackingClaims {
    Open {
        ids: TrackingIds,
    },
    Click {
        ids: TrackingIds,
        link_index: u32,
        url: String,
    },
    Unsubscribe {
        ids: TrackingIds,
        group: Option<SubscriptionGroupId>,
    },
}

impl TrackingClaims {
    /// The ids the token carries.
    pub fn ids(&self) -> &TrackingIds {
        match self {
            TrackingClaims::Open { ids }
            | TrackingClaims::Click { ids, .. }
            | TrackingClaims::Unsubscribe { ids, .. } => ids,
        }
    }
}

/// Which tracking to add to an email's HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackingOptions {
    pub opens: bool,
    pub clicks: bool,
}

/// Signs and verifies tracking tokens and builds their URLs.
#[derive(Debug, Clone)]
pub struct TrackingSigner {
    base_url: String,
    /// The first key signs; all verify.
    keys: Vec<SigningKey>,
}

impl TrackingSigner {
    /// `base_url` is Cairn's public URL (`https://t.example.com`, no trailing slash needed); `keys`
    /// holds the current key first, then retired keys still accepted.
    pub fn new(base_url: &str, keys: Vec<SigningKey>) -> Result<TrackingSigner, DeliveryError> {
        let base_url = base_url.trim_end_matches('/');
        let parsed = url::Url::parse(base_url).map_err(|error| DeliveryError::InvalidSetting {
            setting: "tracking.base_url",
            reason: format!("`{base_url}` is not a URL: {error}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(DeliveryError::InvalidSetting {
                setting: "tracking.base_url",
                reason: format!("`{base_url}` must be an http(s) URL without query or fragment"),
            });
        }
        if keys.is_empty() {
            return Err(DeliveryError::InvalidSetting {
                setting: "tracking.keys",
                reason: "at least one key is needed".into(),
            });
        }
        Ok(TrackingSigner {
            base_url: base_url.to_owned(),
            keys,
        })
    }

    /// The public base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn token(
        &self,
        kind: char,
        ids: &TrackingIds,
        extra: &[&str],
    ) -> Result<String, DeliveryError> {
        for field in [ids.message_id.as_str(), ids.profile_id.as_str()] {
            if field.is_empty() || field.contains('\n') {
                return Err(DeliveryError::InvalidRecipient {
                    value: field.to_owned(),
                    reason: "not usable in a tracking token",
                });
            }
        }
        let mut payload = format!("t1\n{kind}\n{}\n{}", ids.message_id, ids.profile_id);
        for field in extra {
            payload.push('\n');
            payload.push_str(field);
        }
        let tag = self.keys[0].tag(&[payload.as_bytes()]);
        Ok(format!(
            "{}.{}",
            b64url(payload.as_bytes()),
            b64url(&tag[..16])
        ))
    }

    /// The open pixel's URL.
    pub fn open_url(&self, ids: &TrackingIds) -> Result<String, DeliveryError> {
        Ok(format!(
            "{}/t/o/{}",
            self.base_url,
            self.token('o', ids, &[])?
        ))
    }

    /// The click redirect's URL for `target` (an http(s) URL without line breaks).
    pub fn click_url(
        &self,
        ids: &TrackingIds,
        link_index: u32,
        target: &str,
    ) -> Result<String, DeliveryError> {
        if target.contains('\n') {
            return Err(DeliveryError::HtmlRewrite(
                "a link target contains a line break".into(),
            ));
        }
        Ok(format!(
            "{}/t/c/{}",
            self.base_url,
            self.token('c', ids, &[&link_index.to_string(), target])?
        ))
    }

    /// The unsubscribe URL (the page and the RFC 8058 one-click POST target).
    pub fn unsubscribe_url(
        &self,
        ids: &TrackingIds,
        group: Option<SubscriptionGroupId>,
    ) -> Result<String, DeliveryError> {
        let group = group.map(|g| g.to_string()).unwrap_or_default();
        Ok(format!(
            "{}/u/{}",
            self.base_url,
            self.token('u', ids, &[&group])?
        ))
    }

    /// Verifies a token (the last path segment of a tracking URL) in constant time against every key.
    pub fn verify(&self, token: &str) -> Result<TrackingClaims, DeliveryError> {
        let malformed = DeliveryError::InvalidSignature("malformed tracking token");
        let token = token.strip_suffix(".gif").unwrap_or(token);
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(malformed.clone())?;
        let payload = b64url_decode(payload_b64).ok_or(malformed.clone())?;
        let tag = b64url_decode(tag_b64).ok_or(malformed.clone())?;
        if tag.len() != 16 || !self.keys.iter().any(|key| key.verify(&[&payload], &tag)) {
            return Err(DeliveryError::InvalidSignature(
                "tracking signature does not match",
            ));
        }
        let text = String::from_utf8(payload).map_err(|_| malformed.clone())?;
        let mut fields = text.splitn(6, '\n');
        let (Some("t1"), Some(kind), Some(message_id), Some(profile_id)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed);
        };
        let ids = TrackingIds {
            message_id: message_id.to_owned(),
            profile_id: profile_id.to_owned(),
        };
        match (kind, fields.next(), fields.next()) {
            ("o", None, None) => Ok(TrackingClaims::Open { ids }),
            ("c", Some(index), Some(url)) => {
                let link_index = index.parse().map_err(|_| malformed.clone())?;
                Ok(TrackingClaims::Click {
                    ids,
                    link_index,
                    url: url.to_owned(),
                })
            }
            ("u", Some(group), None) => {
                let group = if group.is_empty() {
                    None
                } else {
                    Some(group.parse().map_err(|_| malformed.clone())?)
                };
                Ok(TrackingClaims::Unsubscribe { ids, group })
            }
            _ => Err(malformed),
        }
    }
}

fn is_trackable(href: &str) -> bool {
    let lower = href
        .trim_start()
        .get(..8)
        .unwrap_or("")
        .to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Rewrites an email's HTML: every `<a href="http(s)://…">` becomes a signed click redirect (except
/// links marked `data-cairn-no-track`, whose marker is removed, and links already under Cairn's base
/// URL, such as the unsubscribe link), and a 1×1 open pixel is appended to `<body>` (or to the end of
/// the document when there is no body). Entities in `href` are decoded before signing, so the
/// redirect goes exactly where the link went.
pub fn instrument_html(
    html: &str,
    signer: &TrackingSigner,
    ids: &TrackingIds,
    options: TrackingOptions,
) -> Result<String, DeliveryError> {
    let link_count = Cell::new(0u32);
    let failure: RefCell<Option<DeliveryError>> = RefCell::new(None);
    let body_seen = Cell::new(false);
    let pixel = if options.opens {
        let url = signer.open_url(ids)?;
        Some(format!(
            r#"<img src="{url}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">"#
        ))
    } else {
        None
    };
    let mut handlers = Vec::new();
    if options.clicks {
        handlers.push(element!("a[href]", |el| {
            if el.has_attribute("data-cairn-no-track") {
                el.remove_attribute("data-cairn-no-track");
                return Ok(());
            }
            let Some(raw) = el.get_attribute("href") else {
                return Ok(());
            };
            let target = html_escape::decode_html_entities(&raw).trim().to_owned();
            if !is_trackable(&target) || target.starts_with(signer.base_url()) {
                return Ok(());
            }
            let index = link_count.get();
            link_count.set(index + 1);
            match signer.click_url(ids, index, &target) {
                Ok(url) => el.set_attribute("href", &url)?,
                Err(error) => *failure.borrow_mut() = Some(error),
            }
            Ok(())
        }));
    }
    if let Some(pixel) = &pixel {
        handlers.push(element!("body", |el| {
            body_seen.set(true);
            el.append(pixel, ContentType::Html);
            Ok(())
        }));
    }
    let settings = RewriteStrSettings {
        element_content_handlers: handlers,
        ..RewriteStrSettings::new()
    };
    let mut output = rewrite_str(html, settings)
        .map_err(|error| DeliveryError::HtmlRewrite(error.to_string()))?;
    if let Some(error) = failure.into_inner() {
        return Err(error);
    }
    if let (Some(pixel), false) = (&pixel, body_seen.get()) {
        output.push_str(pixel);
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> TrackingSigner {
        TrackingSigner::new(
            "https://t.example.com/",
            vec![SigningKey::new(vec![9; 32], "k").unwrap()],
        )
        .unwrap()
    }

    fn ids() -> TrackingIds {
        TrackingIds {
            message_id: "msg_1".into(),
            profile_id: "prof_1".into(),
        }
    }

    fn token_of(url: &str) -> &str {
        url.rsplit('/').next().unwrap()
    }

    #[test]
    fn urls_verify_to_their_claims() {
        let signer = signer();
        let open = signer.open_url(&ids()).unwrap();
        assert!(open.starts_with("https://t.example.com/t/o/"));
        assert_eq!(
            signer.verify(token_of(&open)).unwrap(),
            TrackingClaims::Open { ids: ids() }
        );
        let click = signer
            .click_url(&ids(), 3, "https://shop.example.com/p?a=1&b=2")
            .unwrap();
        assert_eq!(
            signer.verify(token_of(&click)).unwrap(),
            TrackingClaims::Click {
                ids: ids(),
                link_index: 3,
                url: "https://shop.example.com/p?a=1&b=2".into()
            }
        );
        let unsubscribe = signer.unsubscribe_url(&ids(), Some(7)).unwrap();
        assert_eq!(
            signer.verify(token_of(&unsubscribe)).unwrap(),
            TrackingClaims::Unsubscribe {
                ids: ids(),
                group: Some(7)
            }
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_fail_and_rotated_keys_verify() {
        let signer = signer();
        let click = signer
            .click_url(&ids(), 0, "https://a.example.com")
            .unwrap();
        let token = token_of(&click);
        let (payload, tag) = token.split_once('.').unwrap();
        let forged_payload = b64url(b"t1\nc\nmsg_1\nprof_1\n0\nhttps://evil.example.com");
        assert!(signer.verify(&format!("{forged_payload}.{tag}")).is_err());
        assert!(signer
            .verify(&format!("{payload}.{}", b64url(&[0; 16])))
            .is_err());
        let new_key = SigningKey::new(vec![10; 32], "k").unwrap();
        let old_key = SigningKey::new(vec![9; 32], "k").unwrap();
        let rotated = TrackingSigner::new("https://t.example.com", vec![new_key, old_key]).unwrap();
        assert!(
            rotated.verify(token).is_ok(),
            "tokens signed with a retired key still verify"
        );
        assert!(
            TrackingSigner::new("ftp://x", vec![SigningKey::new(vec![1; 16], "k").unwrap()])
                .is_err()
        );
        assert!(TrackingSigner::new("https://x", vec![]).is_err());
    }

    #[test]
    fn html_links_are_rewritten_and_the_pixel_appended() {
        let signer = signer();
        let html = r#"<html><body><p>Hi</p><a href="https://shop.example.com/p?a=1&amp;b=2">Shop</a>
<a href="mailto:x@example.com">Mail</a><a href="https:&#x2f;&#x2f;blog.example.com">Blog</a>
<a href="https://t.example.com/u/abc">Unsubscribe</a><a data-cairn-no-track href="https://raw.example.com">Raw</a></body></html>"#;
        let out = instrument_html(
            html,
            &signer,
            &ids(),
            TrackingOptions {
                opens: true,
                clicks: true,
            },
        )
        .unwrap();
        let hrefs: Vec<&str> = out
            .split("href=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert_eq!(hrefs.len(), 5);
        assert_eq!(
            signer.verify(token_of(hrefs[0])).unwrap(),
            TrackingClaims::Click {
                ids: ids(),
                link_index: 0,
                url: "https://shop.example.com/p?a=1&b=2".into()
            }
        );
        assert_eq!(hrefs[1], "mailto:x@example.com");
        assert_eq!(
            signer.verify(token_of(hrefs[2])).unwrap(),
            TrackingClaims::Click {
                ids: ids(),
                link_index: 1,
                url: "https://blog.example.com".into()
            }
        );
        assert_eq!(
            hrefs[3], "https://t.example.com/u/abc",
            "Cairn's own links are left alone"
        );
        assert_eq!(hrefs[4], "https://raw.example.com");
        assert!(!out.contains("data-cairn-no-track"));
        let pixel_at = out.find("/t/o/").unwrap();
        assert!(
            pixel_at < out.find("</body>").unwrap(),
            "the pixel is inside the body"
        );
    }

    #[test]
    fn fragments_without_body_get_the_pixel_at_the_end() {
        let out = instrument_html(
            "<p>Hello</p>",
            &signer(),
            &ids(),
            TrackingOptions {
                opens: true,
                clicks: false,
            },
        )
        .unwrap();
        assert!(out.starts_with("<p>Hello</p><img src=\"https://t.example.com/t/o/"));
        let none = instrument_html(
            "<p>x</p>",
            &signer(),
            &ids(),
            TrackingOptions {
                opens: false,
                clicks: false,
            },
        )
        .unwrap();
        assert_eq!(none, "<p>x</p>");
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_panic_nor_verify(token in "\\PC{0,120}") {
            prop_assert!(signer().verify(&token).is_err());
        }

        #[test]
        fn any_click_target_round_trips(target in "https://[a-z]{1,10}\\.example\\.com/[ -~]{0,40}", index in any::<u32>()) {
            let signer = signer();
            let url = signer.click_url(&ids(), index, &target).unwrap();
            prop_assert_eq!(signer.verify(token_of(&url)).unwrap(), TrackingClaims::Click { ids: ids(), link_index: index, url: target });
        }

        #[test]
        fn arbitrary_html_never_panics(html in "\\PC{0,200}") {
            let _ = instrument_html(&html, &signer(), &ids(), TrackingOptions { opens: true, clicks: true });
        }
    }
}
