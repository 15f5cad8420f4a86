//! Email over SMTP against a real SMTP server (aiosmtpd): the test parses what arrived and checks
//! headers (Message-ID from the message id, From/To/Subject, List-Unsubscribe and
//! List-Unsubscribe-Post), both MIME parts, the personalization, the open pixel and the rewritten
//! links (whose signatures must verify), DKIM, STARTTLS with a self-signed certificate and AUTH.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use cairn_channels::smtp::{DkimSettings, SmtpChannel, SmtpConfig, SmtpSecurity};
use cairn_channels::{
    ChannelError, ChannelProvider, EmailMessage, ListUnsubscribe, OutboundMessage,
};
use cairn_delivery::{
    instrument_html, SigningKey, TrackingClaims, TrackingIds, TrackingOptions, TrackingSigner,
};
use cairn_template::{
    compile, RenderContext, TemplateChannel, TemplateContent, TemplateDocument, VariableSchema,
};
use mailparse::{MailHeaderMap, ParsedMail};
use support::{fixture, Standin};

fn signer() -> TrackingSigner {
    TrackingSigner::new(
        "https://t.example.com",
        vec![SigningKey::new(b"tracking-secret-0123456789".to_vec(), "k").unwrap()],
    )
    .unwrap()
}

fn sink(out: &Path, extra: &[String]) -> Standin {
    let mut args = vec!["--out-dir".to_owned(), out.display().to_string()];
    args.extend_from_slice(extra);
    Standin::start("smtp_sink.py", &args)
}

fn received(out: &Path) -> Vec<(Vec<u8>, serde_json::Value)> {
    let mut names: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let raw = std::fs::read(out.join(&name)).unwrap();
            let meta = std::fs::read_to_string(out.join(name.replace(".eml", ".json"))).unwrap();
            (raw, serde_json::from_str(&meta).unwrap())
        })
        .collect()
}

/// Renders the welcome email for Ann and instruments it, as the dispatcher will.
fn welcome_email(message_id: &str, to: &str) -> EmailMessage {
    let document = TemplateDocument {
        id: "welcome".into(),
        name: "Welcome".into(),
        channel: TemplateChannel::Email,
        default_locale: "en".into(),
        variants: BTreeMap::from([(
            "en".to_owned(),
            TemplateContent {
                subject: Some("Welcome, {{ profile.first_name }}!".into()),
                html: Some(
                    "<html><body><h1>Hello {{ profile.first_name }}</h1>\
                     <p><a href=\"https://shop.example.com/new?utm=welcome&amp;id={{ profile.id }}\">See what's new</a></p>\
                     <p><a href=\"{{ message.unsubscribe_url }}\">Unsubscribe</a></p></body></html>"
                        .into(),
                ),
                text: Some("Hello {{ profile.first_name }}, see what's new: https://shop.example.com/new\nUnsubscribe: {{ message.unsubscribe_url }}".into()),
                ..TemplateContent::default()
            },
        )]),
    };
    let compiled = compile(
        &document,
        &VariableSchema::from_paths(["profile.first_name", "profile.id"]),
    )
    .unwrap();
    let ids = TrackingIds {
        message_id: message_id.into(),
        profile_id: "prof_ann".into(),
    };
    let unsubscribe_url = signer().unsubscribe_url(&ids, Some(3)).unwrap();
    let profile = serde_json::json!({"first_name": "Ann", "id": "42"});
    let rendered = compiled
        .render(&RenderContext {
            profile: &profile,
            event: None,
            journey: None,
            federated: None,
            message_id,
            unsubscribe_url: Some(&unsubscribe_url),
            locale: Some("en"),
            time_zone: None,
        })
        .unwrap();
    let html = instrument_html(
        &rendered.html.unwrap(),
        &signer(),
        &ids,
        TrackingOptions {
            opens: true,
            clicks: true,
        },
    )
    .unwrap();
    EmailMessage {
        message_id: message_id.into(),
        to: to.into(),
        from: None,
        reply_to: None,
        subject: rendered.subject.unwrap(),
        html: Some(html),
        text: rendered.text,
        list_unsubscribe: Some(ListUnsubscribe {
            url: unsubscribe_url,
            mailto: Some("unsubscribe@mail.example.com".into()),
        }),
    }
}

fn hrefs_and_srcs(html: &str) -> (Vec<String>, Vec<String>) {
    let grab = |attribute: &str| {
        html.split(&format!("{attribute}=\""))
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    (grab("href"), grab("src"))
}

/// The token of a tracking URL as found in an href (HTML-escaped by the template).
fn token_of(url: &str) -> String {
    url.replace("&#x2f;", "/")
        .replace("&amp;", "&")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

fn config(port: u16, security: SmtpSecurity) -> SmtpConfig {
    let mut config = SmtpConfig::new(
        "localhost",
        port,
        security,
        "Cairn Shop <news@mail.example.com>",
    );
    config.pool_max_connections = 4;
    config.timeout_ms = 10_000;
    config
}

#[tokio::test]
async fn a_personalized_tracked_dkim_signed_email_arrives_intact() {
    support::init_crypto();
    let out = tempfile::tempdir().unwrap();
    let server = sink(
        out.path(),
        &[
            "--dkim-public-key".into(),
            fixture("test-rsa-public.b64").trim().to_owned(),
        ],
    );
    let mut settings = config(server.port, SmtpSecurity::None);
    settings.dkim = Some(DkimSettings {
        domain: "mail.example.com".into(),
        selector: "cairn".into(),
        private_key_pem: fixture("test-rsa-key.pem"),
    });
    let smtp = SmtpChannel::new(&settings).unwrap();
    let email = welcome_email("msg_0001", "ann@example.com");
    let receipt = smtp
        .send(&OutboundMessage::Email(email), "msg_0001")
        .await
        .unwrap();
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("OK queued as sink-000001")
    );

    let arrived = received(out.path());
    assert_eq!(arrived.len(), 1);
    let (raw, meta) = &arrived[0];
    assert_eq!(meta["rcpt_tos"], serde_json::json!(["ann@example.com"]));
    assert_eq!(meta["mail_from"], "news@mail.example.com");
    assert_eq!(
        meta["dkim_valid"], true,
        "the DKIM signature verifies against the published key"
    );
    let mail = mailparse::parse_mail(raw).unwrap();
    let header = |name: &str| {
        mail.headers
            .get_first_value(name)
            .unwrap_or_else(|| panic!("no {name} header"))
    };
    assert_eq!(header("Message-ID"), "<msg_0001@mail.example.com>");
    assert_eq!(header("From"), "\"Cairn Shop\" <news@mail.example.com>");
    assert_eq!(header("To"), "ann@example.com");
    assert_eq!(header("Subject"), "Welcome, Ann!");
    let unsubscribe = header("List-Unsubscribe");
    let expected_url = signer()
        .unsubscribe_url(
            &TrackingIds {
                message_id: "msg_0001".into(),
                profile_id: "prof_ann".into(),
            },
            Some(3),
        )
        .unwrap();
    assert_eq!(
        unsubscribe,
        format!("<mailto:unsubscribe@mail.example.com>, <{expected_url}>")
    );
    assert_eq!(
        header("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    assert!(header("DKIM-Signature").contains("d=mail.example.com"));

    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let parts: Vec<&ParsedMail> = mail.subparts.iter().collect();
    assert_eq!(
        parts
            .iter()
            .map(|p| p.ctype.mimetype.as_str())
            .collect::<Vec<_>>(),
        ["text/plain", "text/html"]
    );
    let text = parts[0].get_body().unwrap();
    assert!(text.starts_with("Hello Ann, see what's new"), "{text}");
    assert!(text.contains(&expected_url));
    let html = parts[1].get_body().unwrap();
    assert!(html.contains("<h1>Hello Ann</h1>"), "{html}");

    let (hrefs, srcs) = hrefs_and_srcs(&html);
    assert_eq!(hrefs.len(), 2);
    let signer = signer();
    match signer.verify(&token_of(&hrefs[0])).unwrap() {
        TrackingClaims::Click {
            ids,
            link_index,
            url,
        } => {
            assert_eq!(
                (ids.message_id.as_str(), ids.profile_id.as_str(), link_index),
                ("msg_0001", "prof_ann", 0)
            );
            assert_eq!(url, "https://shop.example.com/new?utm=welcome&id=42");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        signer.verify(&token_of(&hrefs[1])).unwrap(),
        TrackingClaims::Unsubscribe {
            ids: TrackingIds {
                message_id: "msg_0001".into(),
                profile_id: "prof_ann".into()
            },
            group: Some(3)
        },
        "the unsubscribe link is left as is"
    );
    assert_eq!(srcs.len(), 1);
    assert!(srcs[0].starts_with("https://t.example.com/t/o/"));
    assert_eq!(
        signer.verify(&token_of(&srcs[0])).unwrap(),
        TrackingClaims::Open {
            ids: TrackingIds {
                message_id: "msg_0001".into(),
                profile_id: "prof_ann".into()
            }
        }
    );
}

#[tokio::test]
async fn starttls_with_a_self_signed_certificate_and_auth() {
    support::init_crypto();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let out = dir.path().join("mail");
    std::fs::create_dir(&out).unwrap();
    let server = sink(
        &out,
        &[
            "--tls-cert".into(),
            cert_path.display().to_string(),
            "--tls-key".into(),
            key_path.display().to_string(),
            "--auth".into(),
            "cairn:s3cret".into(),
        ],
    );
    let mut settings = config(server.port, SmtpSecurity::Starttls);
    settings.extra_root_certificates_pem = vec![certified.cert.pem()];
    settings.username = Some("cairn".into());
    settings.password = Some("s3cret".into());
    let smtp = SmtpChannel::new(&settings).unwrap();
    for index in 0..3 {
        let id = format!("msg_tls_{index}");
        smtp.send(
            &OutboundMessage::Email(welcome_email(&id, "bob@example.com")),
            &id,
        )
        .await
        .unwrap();
    }
    let arrived = received(&out);
    assert_eq!(arrived.len(), 3);
    for (_, meta) in &arrived {
        assert_eq!(meta["tls"], true);
        assert_eq!(meta["login"], "cairn");
    }

    settings.password = Some("wrong".into());
    let wrong_password = SmtpChannel::new(&settings).unwrap();
    let error = wrong_password
        .send(
            &OutboundMessage::Email(welcome_email("msg_x", "bob@example.com")),
            "msg_x",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ChannelError::Permanent { code, .. } if code == "535"),
        "{error:?}"
    );

    settings.password = Some("s3cret".into());
    settings.extra_root_certificates_pem.clear();
    let untrusted = SmtpChannel::new(&settings).unwrap();
    let error = untrusted
        .send(
            &OutboundMessage::Email(welcome_email("msg_y", "bob@example.com")),
            "msg_y",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChannelError::Transient { .. }),
        "an untrusted certificate is not accepted: {error:?}"
    );
    assert_eq!(received(&out).len(), 3);
}

#[tokio::test]
async fn bad_recipients_fail_permanently_and_a_dead_server_transiently() {
    support::init_crypto();
    let out = tempfile::tempdir().unwrap();
    let server = sink(
        out.path(),
        &["--reject-rcpt".into(), "gone@example.com".into()],
    );
    let smtp = SmtpChannel::new(&config(server.port, SmtpSecurity::None)).unwrap();
    let error = smtp
        .send(
            &OutboundMessage::Email(welcome_email("msg_1", "not an address")),
            "msg_1",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ChannelError::Permanent {
                invalid_recipient: true,
                ..
            }
        ),
        "{error:?}"
    );
    let error = smtp
        .send(
            &OutboundMessage::Email(welcome_email("msg_2", "gone@example.com")),
            "msg_2",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ChannelError::Permanent { code, invalid_recipient: true, .. } if code == "550"),
        "{error:?}"
    );
    assert!(received(out.path()).is_empty());

    let port = server.port;
    drop(server);
    let dead = SmtpChannel::new(&config(port, SmtpSecurity::None)).unwrap();
    let error = dead
        .send(
            &OutboundMessage::Email(welcome_email("msg_3", "ann@example.com")),
            "msg_3",
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ChannelError::Transient { .. }), "{error:?}");
}

#[tokio::test]
async fn bad_smtp_settings_are_clear_errors() {
    let base = config(2525, SmtpSecurity::None);
    let cases: Vec<(SmtpConfig, &str)> = vec![
        (
            SmtpConfig {
                host: " ".into(),
                ..base.clone()
            },
            "host",
        ),
        (
            SmtpConfig {
                from: "not a mailbox".into(),
                ..base.clone()
            },
            "from",
        ),
        (
            SmtpConfig {
                username: Some("u".into()),
                ..base.clone()
            },
            "username",
        ),
        (
            SmtpConfig {
                username: Some("u".into()),
                password: Some("p".into()),
                ..base.clone()
            },
            "security",
        ),
        (
            SmtpConfig {
                pool_max_connections: 0,
                ..base.clone()
            },
            "pool_max_connections",
        ),
        (
            SmtpConfig {
                message_id_domain: Some("bad domain".into()),
                ..base.clone()
            },
            "message_id_domain",
        ),
        (
            SmtpConfig {
                dkim: Some(DkimSettings {
                    domain: "d".into(),
                    selector: "s".into(),
                    private_key_pem: "nope".into(),
                }),
                ..base.clone()
            },
            "dkim.private_key_pem",
        ),
        (
            SmtpConfig {
                security: SmtpSecurity::Starttls,
                extra_root_certificates_pem: vec!["junk".into()],
                ..base
            },
            "extra_root_certificates_pem",
        ),
    ];
    for (settings, expected) in cases {
        match SmtpChannel::new(&settings) {
            Err(ChannelError::InvalidConfig {
                provider: "smtp",
                setting,
                reason,
            }) => {
                assert_eq!(setting, expected, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_timeout_after_the_body_is_in_doubt_and_the_server_did_get_the_message() {
    support::init_crypto();
    let out = tempfile::tempdir().unwrap();
    let server = sink(out.path(), &["--slow-data-ms".into(), "3000".into()]);
    let mut settings = config(server.port, SmtpSecurity::None);
    settings.timeout_ms = 1_000;
    let smtp = SmtpChannel::new(&settings).unwrap();
    let error = smtp
        .send(
            &OutboundMessage::Email(welcome_email("msg_doubt", "ann@example.com")),
            "msg_doubt",
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ChannelError::InDoubt { .. }), "{error:?}");
    // The server stored it while the client gave up: exactly why the dispatcher's in-doubt policy
    // (not a blind retry) decides what happens next.
    let stored = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while received(out.path()).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(stored.is_ok());
    let (raw, _) = &received(out.path())[0];
    let mail = mailparse::parse_mail(raw).unwrap();
    assert_eq!(
        mail.headers.get_first_value("Message-ID").unwrap(),
        "<msg_doubt@mail.example.com>"
    );
}
