//! The delivery benchmark's workload: one compiled 3 KB HTML email template, a policy with two
//! frequency caps (one with a priority reservation) and quiet hours, 1,000 profiles whose histories
//! hold 0–2 recent emails, and the per-message work of the dispatcher: decide, render, instrument.

use cairn_channels::{EmailMessage, ListUnsubscribe};
use cairn_delivery::{
    decide, Channel, ConsentState, Decision, DeliveryPolicy, FrequencyCap, MessageCategory,
    PriorityReservation, QuietHours, SendAttempt, SendHistory, SigningKey, TrackingIds,
    TrackingOptions, TrackingSigner, YieldAction,
};
use cairn_template::{
    compile, CompiledTemplate, RenderContext, TemplateChannel, TemplateContent, TemplateDocument,
    VariableSchema,
};
use std::collections::BTreeMap;
use std::time::Instant;

const DAY: i64 = 86_400_000;
/// The benchmark's "now": 2026-01-02T10:00:00Z (outside the quiet hours in Paris).
pub const NOW_MS: i64 = 1_767_348_000_000;
/// Profiles the messages cycle through.
const PROFILES: usize = 1_000;

/// Everything a message needs, built once.
pub struct Fixture {
    template: CompiledTemplate,
    policy: DeliveryPolicy,
    signer: TrackingSigner,
    histories: Vec<SendHistory>,
    consent: ConsentState,
    attempt: SendAttempt,
}

impl Fixture {
    pub fn new() -> anyhow::Result<Fixture> {
        let policy = policy()?;
        let histories = (0..PROFILES)
            .map(|profile| {
                let mut history = SendHistory::new();
                for day in 1..=(profile % 3) as i64 {
                    history.record(
                        NOW_MS - day * 2 * DAY,
                        Channel::Email,
                        MessageCategory::Marketing,
                        policy.history_retention_ms(),
                    );
                }
                history
            })
            .collect();
        Ok(Fixture {
            template: template()?,
            policy,
            signer: TrackingSigner::new(
                "https://t.example.com",
                vec![SigningKey::new(b"bench-tracking-secret".to_vec(), "k")
                    .map_err(|error| anyhow::anyhow!("tracking key: {error}"))?],
            )
            .map_err(|error| anyhow::anyhow!("tracking signer: {error}"))?,
            histories,
            consent: ConsentState::default(),
            attempt: SendAttempt {
                channel: Channel::Email,
                category: MessageCategory::Marketing,
                subscription_group: None,
                priority: 5,
                when_capped: YieldAction::Delay,
                in_quiet_hours: YieldAction::Delay,
                send_before_ms: None,
            },
        })
    }

    fn decide(&self, index: usize, now_ms: i64) -> Decision {
        decide(
            std::hint::black_box(&self.policy),
            &self.attempt,
            &self.consent,
            &self.histories[index % self.histories.len()],
            Some(chrono_tz::Europe::Paris),
            std::hint::black_box(now_ms),
            || None,
        )
    }

    /// Decide, render and instrument message `index`; `None` when volume control holds it back.
    pub fn prepare(&self, index: usize) -> Option<EmailMessage> {
        if self.decide(index, NOW_MS) != Decision::Send {
            return None;
        }
        let message_id = format!("msg_{index:09}");
        let profile_id = format!("prof_{:06}", index % PROFILES);
        let ids = TrackingIds {
            message_id: message_id.clone(),
            profile_id,
        };
        let unsubscribe_url = self.signer.unsubscribe_url(&ids, None).ok()?;
        let profile = serde_json::json!({"first_name": format!("Customer {index}")});
        let event = serde_json::json!({"properties": {"product": "Trail boots", "price": 129.9, "cart_id": index, "expires": "2026-01-09T23:00:00Z"}});
        let rendered = self
            .template
            .render(&RenderContext {
                profile: &profile,
                event: Some(&event),
                journey: None,
                federated: None,
                message_id: &message_id,
                unsubscribe_url: Some(&unsubscribe_url),
                locale: Some("en"),
                time_zone: Some(chrono_tz::Europe::Paris),
            })
            .ok()?;
        let html = cairn_delivery::instrument_html(
            &rendered.html?,
            &self.signer,
            &ids,
            TrackingOptions {
                opens: true,
                clicks: true,
            },
        )
        .ok()?;
        Some(EmailMessage {
            message_id,
            to: format!("customer{index}@example.com"),
            from: None,
            reply_to: None,
            subject: rendered.subject?,
            html: Some(html),
            text: rendered.text,
            list_unsubscribe: Some(ListUnsubscribe {
                url: unsubscribe_url,
                mailto: None,
            }),
        })
    }

    /// Nanoseconds per `decide` (consent, two caps, quiet hours), over `rounds` calls on one core.
    pub fn decide_cost_ns(&self, rounds: usize) -> f64 {
        let started = Instant::now();
        let mut sends = 0u64;
        for index in 0..rounds {
            sends += u64::from(self.decide(index, NOW_MS + index as i64) == Decision::Send);
        }
        std::hint::black_box(sends);
        started.elapsed().as_nanos() as f64 / rounds.max(1) as f64
    }

    /// Messages decided, rendered and instrumented per second on one core.
    pub fn prepare_rate(&self, count: usize) -> f64 {
        let started = Instant::now();
        let mut bytes = 0usize;
        for index in 0..count {
            if let Some(email) = self.prepare(index) {
                bytes += email.html.map_or(0, |html| html.len());
            }
        }
        std::hint::black_box(bytes);
        count as f64 / started.elapsed().as_secs_f64()
    }
}

fn template() -> anyhow::Result<CompiledTemplate> {
    let html = format!(
        "<html><body><table width=\"600\"><tr><td><h1>Hello {{{{ profile.first_name }}}},</h1>\
         <p>Your cart still holds <b>{{{{ event.properties.product }}}}</b> at {{{{ event.properties.price | currency('EUR') }}}}.</p>\
         {}<p><a href=\"https://shop.example.com/cart?c={{{{ event.properties.cart_id }}}}\">Back to your cart</a></p>\
         <p>Offer valid until {{{{ event.properties.expires | date('long') }}}}.</p>\
         <p><a href=\"{{{{ message.unsubscribe_url }}}}\">Unsubscribe</a></p></td></tr></table></body></html>",
        "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. \
         <a href=\"https://shop.example.com/new\">New arrivals</a></p>"
            .repeat(8)
    );
    let document = TemplateDocument {
        id: "cart".into(),
        name: "Cart abandonment".into(),
        channel: TemplateChannel::Email,
        default_locale: "en".into(),
        variants: BTreeMap::from([(
            "en".to_owned(),
            TemplateContent {
                subject: Some("{{ profile.first_name }}, you left something behind".into()),
                html: Some(html),
                text: Some("Hello {{ profile.first_name }}, your cart still holds {{ event.properties.product }}.\nUnsubscribe: {{ message.unsubscribe_url }}".into()),
                ..TemplateContent::default()
            },
        )]),
    };
    compile(
        &document,
        &VariableSchema::from_paths(["profile.first_name", "event.properties.*"]),
    )
    .map_err(|error| anyhow::anyhow!("the benchmark's template does not compile: {error:?}"))
}

fn policy() -> anyhow::Result<DeliveryPolicy> {
    DeliveryPolicy {
        frequency_caps: vec![
            FrequencyCap {
                channel: Some(Channel::Email),
                window_ms: 7 * DAY,
                max_messages: 3,
                reservation: Some(PriorityReservation {
                    min_priority: 8,
                    slots: 1,
                }),
            },
            FrequencyCap {
                channel: None,
                window_ms: DAY,
                max_messages: 5,
                reservation: None,
            },
        ],
        quiet_hours: Some(
            QuietHours::parse("21:00", "08:00")
                .map_err(|error| anyhow::anyhow!("quiet hours: {error:?}"))?,
        ),
        ..DeliveryPolicy::default()
    }
    .validated()
    .map_err(|error| anyhow::anyhow!("the benchmark's policy is invalid: {error:?}"))
}
