//! The small HTML pages of the unsubscribe link: the confirmation form (a GET never unsubscribes, so
//! link scanners and prefetching mail clients cannot unsubscribe anyone) and the "done" page.
//!
//! The form posts `List-Unsubscribe=One-Click` to the same URL, exactly what an RFC 8058 one-click
//! client posts, so both take the same path; its second button adds `scope=all` (every message).

/// The confirmation page for the unsubscribe URL `action` (`group`: the subscription group the
/// message belongs to, if any).
pub fn confirmation(action: &str, group: Option<u32>) -> String {
    let action = html_escape::encode_double_quoted_attribute(action);
    let what = match group {
        Some(group) => format!("this list (subscription group {group})"),
        None => "these emails".to_string(),
    };
    page(
        "Unsubscribe",
        &format!(
            r#"<h1>Unsubscribe</h1>
<p>Do you want to stop receiving {what}?</p>
<form method="post" action="{action}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
<button type="submit" name="scope" value="all">Unsubscribe from everything</button>
</form>"#
        ),
    )
}

/// The page after unsubscribing.
pub fn done(everything: bool) -> String {
    let what = if everything {
        "You will not receive any more messages from us."
    } else {
        "You will not receive these emails any more."
    };
    page(
        "Unsubscribed",
        &format!("<h1>You are unsubscribed</h1>\n<p>{what}</p>"),
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\n\
<body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">\n{body}\n</body></html>\n"
    )
}

/// What an unsubscribe POST asks for, from its form-encoded body: `None` unless it carries
/// `List-Unsubscribe=One-Click`; `Some(true)` when `scope=all` asks for every message.
pub fn one_click_request(body: &[u8]) -> Option<bool> {
    let mut one_click = false;
    let mut everything = false;
    for (name, value) in url::form_urlencoded::parse(body) {
        match (name.as_ref(), value.as_ref()) {
            ("List-Unsubscribe", "One-Click") => one_click = true,
            ("scope", "all") => everything = true,
            _ => {}
        }
    }
    one_click.then_some(everything)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic_and_need_the_one_click_pair(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let answer = one_click_request(&body);
            if answer.is_some() {
                prop_assert!(url::form_urlencoded::parse(&body).any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click"));
            }
        }

        #[test]
        fn the_form_action_is_always_escaped(action in "\\PC{0,60}") {
            let html = confirmation(&action, None);
            let escaped = html_escape::encode_double_quoted_attribute(&action);
            let expected = format!("action=\"{escaped}\"");
            prop_assert!(html.contains(&expected));
        }
    }

    #[test]
    fn the_form_posts_the_one_click_body_to_the_escaped_url() {
        let html = confirmation("https://t.example.com/u/a\"b", Some(3));
        assert!(html.contains(r#"action="https://t.example.com/u/a&quot;b""#));
        assert!(html.contains(r#"name="List-Unsubscribe" value="One-Click""#));
        assert!(html.contains("subscription group 3"));
        assert!(done(true).contains("any more messages"));
    }

    #[test]
    fn only_one_click_bodies_unsubscribe() {
        assert_eq!(
            one_click_request(b"List-Unsubscribe=One-Click"),
            Some(false)
        );
        assert_eq!(
            one_click_request(b"List-Unsubscribe=One-Click&scope=all"),
            Some(true)
        );
        assert_eq!(one_click_request(b""), None);
        assert_eq!(one_click_request(b"List-Unsubscribe=Two-Clicks"), None);
        assert_eq!(one_click_request(&[0xff, 0xfe]), None);
    }
}
