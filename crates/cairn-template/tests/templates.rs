//! Templates end to end: publish-time validation with positions, strict personalized rendering,
//! escaping per part, locale fallback, dates in the customer's zone, numbers and currencies per
//! locale, MJML, versions, preview; property tests that nothing panics.

use std::collections::BTreeMap;

use cairn_template::{
    compile, preview, RenderContext, TemplateChannel, TemplateContent, TemplateDocument,
    TemplateError, TemplateHistory, VariableSchema,
};
use proptest::prelude::*;
use serde_json::json;

fn schema() -> VariableSchema {
    VariableSchema::from_paths([
        "profile.first_name",
        "profile.last_name",
        "profile.nickname",
        "profile.balance",
        "profile.renewal_date",
        "event.properties.*",
        "journey.step",
    ])
}

fn email(variants: &[(&str, TemplateContent)]) -> TemplateDocument {
    TemplateDocument {
        id: "welcome".into(),
        name: "Welcome".into(),
        channel: TemplateChannel::Email,
        default_locale: "en".into(),
        variants: variants
            .iter()
            .map(|(tag, content)| ((*tag).to_owned(), content.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn html_variant(subject: &str, html: &str, text: &str) -> TemplateContent {
    TemplateContent {
        subject: Some(subject.into()),
        html: Some(html.into()),
        text: Some(text.into()),
        ..TemplateContent::default()
    }
}

fn context<'a>(profile: &'a serde_json::Value, locale: Option<&'a str>) -> RenderContext<'a> {
    RenderContext {
        profile,
        event: None,
        journey: None,
        federated: None,
        message_id: "msg_1",
        unsubscribe_url: Some("https://t.example.com/u/tok"),
        locale,
        time_zone: None,
    }
}

#[test]
fn syntax_errors_have_line_and_column() {
    let document = email(&[(
        "en",
        html_variant(
            "Hi",
            "<p>Hello</p>\n<p>{{ profile.first_name </p>",
            "Hello {% if %}",
        ),
    )]);
    let error = compile(&document, &schema()).unwrap_err();
    let issues = error.issues();
    assert_eq!(issues.len(), 2, "{issues:?}");
    let html = issues.iter().find(|i| i.part == "html").unwrap();
    assert_eq!(html.locale, "en");
    assert_eq!(html.line, Some(2));
    assert!(html.column.is_some());
    assert!(html.message.starts_with("syntax error"), "{}", html.message);
    let text = issues.iter().find(|i| i.part == "text").unwrap();
    assert_eq!(text.line, Some(1));
    assert_eq!(error.code().as_str(), "invalid_template");
}

#[test]
fn unknown_variables_are_publish_errors_with_positions() {
    let document = email(&[(
        "en",
        html_variant(
            "Hi {{ profile.first_name }}",
            "<p>Hello {{ profile.frist_name }}</p>\n<p>{{ customer.email }}</p>",
            "{{ profile.nickname | fallback('friend') }} {{ event.properties.sku }} {{ event.name }}",
        ),
    )]);
    let error = compile(&document, &schema()).unwrap_err();
    let messages: Vec<String> = error.issues().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "en/html:1:13: unknown variable `profile.frist_name`: it is not in the profile schema",
            "en/html:2:7: unknown variable `customer.email`: variables live under `profile.`, `event.`, `journey.`, `federated.`, `message.`",
            "en/text:1:75: unknown variable `event.name`: it is not in the event schema",
        ]
    );
}

#[test]
fn bad_mjml_and_structural_problems_are_reported_together() {
    let mut document = email(&[
        (
            "en",
            TemplateContent {
                subject: Some("Hi".into()),
                mjml: Some("<mjml><mj-body><mj-section></mj-body></mjml>".into()),
                ..Default::default()
            },
        ),
        (
            "fr",
            TemplateContent {
                html: Some("<p>Salut</p>".into()),
                ..Default::default()
            },
        ),
        ("not a locale", TemplateContent::default()),
    ]);
    document.variants.get_mut("fr").unwrap().body = Some("sms body?".into());
    let error = compile(&document, &schema()).unwrap_err();
    let messages: Vec<String> = error.issues().iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("en/mjml") && m.contains("invalid MJML")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m == "fr/subject: the `subject` part is required"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m == "fr/body: Email templates have no `body` part"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`not a locale` is not a locale tag")),
        "{messages:?}"
    );
}

#[test]
fn personalization_with_html_escaping_only_in_html() {
    let document = email(&[(
        "en",
        html_variant(
            "Welcome, {{ profile.first_name }}!",
            "<p>Hello {{ profile.first_name }}</p><a href=\"{{ message.unsubscribe_url }}\">Unsubscribe</a>",
            "Hello {{ profile.first_name }}, {{ profile.nickname | fallback('friend') }}",
        ),
    )]);
    let compiled = compile(&document, &schema()).unwrap();
    let profile = json!({"first_name": "Ann <script>&"});
    let rendered = compiled.render(&context(&profile, None)).unwrap();
    assert_eq!(rendered.subject.as_deref(), Some("Welcome, Ann <script>&!"));
    assert_eq!(
        rendered.html.as_deref(),
        Some("<p>Hello Ann &lt;script&gt;&amp;</p><a href=\"https:&#x2f;&#x2f;t.example.com&#x2f;u&#x2f;tok\">Unsubscribe</a>")
    );
    assert_eq!(
        rendered.text.as_deref(),
        Some("Hello Ann <script>&, friend")
    );
}

#[test]
fn a_missing_value_is_a_render_error_not_an_empty_string() {
    let document = email(&[(
        "en",
        html_variant(
            "Hi {{ profile.first_name }}",
            "<p>{{ profile.last_name }}</p>",
            "x",
        ),
    )]);
    let compiled = compile(&document, &schema()).unwrap();
    let profile = json!({"first_name": "Ann"});
    let error = compiled.render(&context(&profile, None)).unwrap_err();
    match &error {
        TemplateError::Render {
            part,
            line,
            message,
        } => {
            assert_eq!(part, "html");
            assert_eq!(*line, Some(1));
            assert!(message.contains("profile.last_name"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.code().as_str(), "template_render_failed");
    // Truthiness checks on missing values are allowed.
    let guarded = email(&[(
        "en",
        html_variant(
            "Hi",
            "{% if profile.nickname %}{{ profile.nickname }}{% else %}you{% endif %}",
            "x",
        ),
    )]);
    assert_eq!(
        compile(&guarded, &schema())
            .unwrap()
            .render(&context(&profile, None))
            .unwrap()
            .html
            .as_deref(),
        Some("you")
    );
}

#[test]
fn locales_fall_back_from_region_to_language_to_default() {
    let document = email(&[
        ("en", html_variant("Hello", "<p>Hello</p>", "Hello")),
        ("fr", html_variant("Bonjour", "<p>Bonjour</p>", "Bonjour")),
        ("fr-CA", html_variant("Allô", "<p>Allô</p>", "Allô")),
    ]);
    let compiled = compile(&document, &schema()).unwrap();
    let profile = json!({});
    let subject = |locale| compiled.render(&context(&profile, locale)).unwrap();
    assert_eq!(subject(Some("fr_CA")).subject.as_deref(), Some("Allô"));
    assert_eq!(subject(Some("fr-BE")).subject.as_deref(), Some("Bonjour"));
    assert_eq!(subject(Some("fr-BE")).locale, "fr");
    assert_eq!(subject(Some("de")).subject.as_deref(), Some("Hello"));
    assert_eq!(subject(None).locale, "en");
}

#[test]
fn dates_are_in_the_customers_zone_and_language() {
    let document = email(&[
        ("en", html_variant("x", "{{ profile.renewal_date | date('long') }} {{ profile.renewal_date | date('%H:%M %Z') }}", "x")),
        ("fr", html_variant("x", "{{ profile.renewal_date | date('long') }} {{ profile.renewal_date | date('%A %H:%M') }}", "x")),
        ("de", html_variant("x", "{{ profile.renewal_date | date('date') }} {{ profile.renewal_date | date('%H:%M', tz='Asia/Tokyo') }}", "x")),
    ]);
    let compiled = compile(&document, &schema()).unwrap();
    // 23:30 UTC on 1 January is already 2 January in Paris and Tokyo, still 1 January in New York.
    let profile = json!({"renewal_date": "2026-01-01T23:30:00Z"});
    let render = |locale: &str, zone| {
        let mut ctx = context(&profile, Some(locale));
        ctx.time_zone = Some(zone);
        compiled.render(&ctx).unwrap().html.unwrap()
    };
    assert_eq!(
        render("en", chrono_tz::America::New_York),
        "January 1, 2026 18:30 EST"
    );
    assert_eq!(
        render("fr", chrono_tz::Europe::Paris),
        "2 janvier 2026 vendredi 00:30"
    );
    assert_eq!(render("de", chrono_tz::Europe::Berlin), "02.01.2026 08:30");
    // Summer time in the same zone.
    let summer = json!({"renewal_date": 1_782_900_000_000i64}); // 2026-07-01T10:00:00Z
    let mut ctx = context(&summer, Some("en"));
    ctx.time_zone = Some(chrono_tz::America::New_York);
    assert_eq!(
        compiled.render(&ctx).unwrap().html.unwrap(),
        "July 1, 2026 06:00 EDT"
    );
    let bad = json!({"renewal_date": "next tuesday"});
    assert!(compiled.render(&context(&bad, Some("en"))).is_err());
}

#[test]
fn numbers_and_currencies_follow_the_locale() {
    let text = "{{ profile.balance | number }} | {{ profile.balance | number(1) }} | {{ profile.balance | currency('EUR') }} | {{ profile.balance | currency('USD') }} | {{ profile.balance | currency('JPY') }}";
    let document = email(&[
        ("en", html_variant("x", "<p></p>", text)),
        ("de", html_variant("x", "<p></p>", text)),
        ("fr", html_variant("x", "<p></p>", text)),
    ]);
    let compiled = compile(&document, &schema()).unwrap();
    let profile = json!({"balance": 1234567.5});
    let render = |locale| {
        compiled
            .render(&context(&profile, Some(locale)))
            .unwrap()
            .text
            .unwrap()
    };
    assert_eq!(
        render("en"),
        "1,234,567.5 | 1,234,567.5 | €1,234,567.50 | $1,234,567.50 | ¥1,234,568"
    );
    assert_eq!(
        render("de"),
        "1.234.567,5 | 1.234.567,5 | 1.234.567,50\u{a0}€ | 1.234.567,50\u{a0}$ | 1.234.568\u{a0}¥"
    );
    assert_eq!(
        render("fr"),
        "1\u{202f}234\u{202f}567,5 | 1\u{202f}234\u{202f}567,5 | 1\u{202f}234\u{202f}567,50\u{a0}€ | 1\u{202f}234\u{202f}567,50\u{a0}$ | 1\u{202f}234\u{202f}568\u{a0}¥"
    );
    let not_a_number = json!({"balance": "lots"});
    assert!(compiled
        .render(&context(&not_a_number, Some("en")))
        .is_err());
}

#[test]
fn mjml_templates_compile_at_publish_and_personalize_at_render() {
    let document = email(&[(
        "en",
        TemplateContent {
            subject: Some("Hi".into()),
            mjml: Some(
                r#"<mjml><mj-body><mj-section><mj-column>
  <mj-text>Hello {{ profile.first_name }}</mj-text>
  <mj-button href="{{ event.properties.url }}">Shop now</mj-button>
</mj-column></mj-section></mj-body></mjml>"#
                    .into(),
            ),
            text: Some("Hello {{ profile.first_name }}".into()),
            ..Default::default()
        },
    )]);
    let compiled = compile(&document, &schema()).unwrap();
    let profile = json!({"first_name": "Zoë & co"});
    let event = json!({"properties": {"url": "https://shop.example.com/?a=1&b=2"}});
    let mut ctx = context(&profile, None);
    ctx.event = Some(&event);
    let html = compiled.render(&ctx).unwrap().html.unwrap();
    assert!(html.contains("Hello Zoë &amp; co"), "{html}");
    assert!(
        html.contains("href=\"https:&#x2f;&#x2f;shop.example.com&#x2f;?a=1&amp;b=2\""),
        "{html}"
    );
    assert!(html.contains("<table"), "MJML became table-based HTML");
}

#[test]
fn webhook_json_bodies_escape_values_as_json() {
    let document = TemplateDocument {
        id: "crm-update".into(),
        name: String::new(),
        channel: TemplateChannel::Webhook,
        default_locale: "en".into(),
        variants: BTreeMap::from([(
            "en".to_owned(),
            TemplateContent {
                json: Some(
                    r#"{"name": {{ profile.first_name }}, "step": {{ journey.step }}}"#.into(),
                ),
                ..Default::default()
            },
        )]),
    };
    let compiled = compile(&document, &schema()).unwrap();
    let profile = json!({"first_name": "Ann \"The\" <Hacker>"});
    let journey = json!({"step": 3});
    let mut ctx = context(&profile, None);
    ctx.journey = Some(&journey);
    let rendered = compiled.render(&ctx).unwrap();
    assert_eq!(
        rendered.json,
        Some(json!({"name": "Ann \"The\" <Hacker>", "step": 3}))
    );
}

#[test]
fn publishing_freezes_numbered_versions_and_a_failed_publish_changes_nothing() {
    let mut history = TemplateHistory::new(email(&[("en", html_variant("v1", "<p>v1</p>", "v1"))]));
    let (first, _) = history.publish(&schema(), 1_000).unwrap();
    assert_eq!(first.version, 1);
    history.draft.variants.get_mut("en").unwrap().subject = Some("{{ profile.unknown }}".into());
    assert!(history.publish(&schema(), 2_000).is_err());
    assert_eq!(history.versions.len(), 1);
    history.draft.variants.get_mut("en").unwrap().subject =
        Some("v2 {{ profile.first_name }}".into());
    let (second, compiled) = history.publish(&schema(), 3_000).unwrap();
    assert_eq!((second.version, second.published_at_ms), (2, 3_000));
    assert_eq!(
        history.version(1).unwrap().document.variants["en"]
            .subject
            .as_deref(),
        Some("v1")
    );
    assert!(history.version(3).is_err());
    let profile = json!({"first_name": "Bo"});
    assert_eq!(
        compiled
            .render(&context(&profile, None))
            .unwrap()
            .subject
            .as_deref(),
        Some("v2 Bo")
    );
}

#[test]
fn preview_renders_a_draft_for_a_given_profile_and_event() {
    let document = email(&[(
        "en",
        html_variant(
            "Your cart: {{ event.properties.product }}",
            "<p>{{ profile.first_name }}</p>",
            "x",
        ),
    )]);
    let profile = json!({"first_name": "Ann"});
    let event = json!({"properties": {"product": "Boots"}});
    let mut ctx = context(&profile, None);
    ctx.event = Some(&event);
    let rendered = preview(&document, &schema(), &ctx).unwrap();
    assert_eq!(rendered.subject.as_deref(), Some("Your cart: Boots"));
    ctx.event = None;
    assert!(
        preview(&document, &schema(), &ctx).is_err(),
        "without the event the subject cannot render"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_sources_never_panic(source in "\\PC{0,80}", fragment in "(\\{\\{|\\}\\}|\\{%|%\\}|profile\\.|\\||\\(|\\)|if |for | in |endif|endfor|[a-z_]{1,6}| ){0,12}") {
        let document = email(&[("en", html_variant(&source, &format!("{fragment}{source}"), &fragment))]);
        if let Ok(compiled) = compile(&document, &schema()) {
            let profile = json!({"first_name": source});
            let _ = compiled.render(&context(&profile, Some("en")));
        }
    }

    #[test]
    fn arbitrary_profile_values_render_or_fail_cleanly(value in any::<f64>(), text in "\\PC{0,20}") {
        let document = email(&[("en", html_variant("{{ profile.first_name }}", "{{ profile.balance | number }} {{ profile.balance | currency('EUR') }} {{ profile.renewal_date | date }}", "{{ profile.first_name }}"))]);
        let compiled = compile(&document, &schema()).unwrap();
        for profile in [json!({"first_name": text, "balance": value, "renewal_date": text}), json!({"first_name": value, "balance": text, "renewal_date": value})] {
            let _ = compiled.render(&context(&profile, Some("fr")));
        }
    }
}

#[test]
fn federated_reads_name_the_attribute_sets_and_unknown_sets_are_errors() {
    let mut known = schema();
    known.close("federated").declare("federated.loyalty.*");
    let document = email(&[(
        "en",
        html_variant(
            "You have {{ federated.loyalty.points }} points",
            "<p>{{ federated.loyalty.tier }}</p>",
            "Tier {{ federated.loyalty.tier }}",
        ),
    )]);
    let compiled = compile(&document, &known).expect("loyalty is declared");
    let reads = compiled.federated_reads();
    assert!(reads.reads("loyalty") && !reads.reads("tickets") && reads.any());
    let profile = json!({"first_name": "Ann"});
    let federated = json!({"loyalty": {"points": 120, "tier": "gold"}});
    let rendered = compiled
        .render(&RenderContext {
            federated: Some(&federated),
            ..context(&profile, None)
        })
        .expect("renders");
    assert_eq!(rendered.subject.as_deref(), Some("You have 120 points"));
    assert_eq!(rendered.text.as_deref(), Some("Tier gold"));

    let typo = email(&[(
        "en",
        html_variant("{{ federated.loyalti.points }}", "<p>x</p>", "x"),
    )]);
    let error = compile(&typo, &known).unwrap_err();
    assert!(
        error.issues()[0]
            .message
            .contains("federated.loyalti.points"),
        "{error}"
    );
    let plain = email(&[("en", html_variant("Hi", "<p>x</p>", "x"))]);
    assert!(!compile(&plain, &known)
        .expect("compiles")
        .federated_reads()
        .any());
}
