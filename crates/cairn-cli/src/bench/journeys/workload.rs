//! The journeys benchmark's workload: ten published journeys of mixed shapes and the events that
//! drive them.
//!
//! Journeys: the four shipped templates that start on an event (`journeys/templates/`: cart
//! abandonment, loyalty onboarding, post-purchase cross-sell, welcome series) and six built here:
//! an instant confirmation (entry → send, the latency probe), a timer (entry → 10-minute wait →
//! exit, the timer probe), a browse reminder (wait for an order with a 2-hour timeout), a VIP split
//! (decision split on an event property), a two-step nurture (send, wait a day, send) and a page
//! follow-up (filtered entry, wait, send). Every wait the event mix starts lasts at least an hour,
//! so only the timer probe's 10-minute timers come due in the timer phase.
//!
//! Events are built from one normalized template per kind (parsed and validated once, as the HTTP
//! path would), then cloned with the profile's user id and a fresh message id: building them costs
//! little and is not timed.

use anyhow::Context;
use cairn_core::segment::{normalize_object, Envelope};
use cairn_journey::{parse_journey, Format, JourneyDocument};
use cairn_model::{Identifier, IdentifierKind, NormalizedMessage};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// The journey whose send step is the event-to-outbox probe.
pub const INSTANT_JOURNEY: &str = "bench-instant";
/// The probe events' name.
pub const INSTANT_EVENT: &str = "Checkout Started";
/// The event that arms one timer of [`TIMER_WAIT_MS`] (re-entry is concurrent: one per event).
pub const TIMER_EVENT: &str = "Timer Armed";
/// An event no journey looks at (the baseline of the per-enrollment cost).
pub const NOISE_EVENT: &str = "Session Heartbeat";
/// The timer probe's wait.
pub const TIMER_WAIT_MS: i64 = 10 * 60 * 1000;

const SHIPPED: [(&str, &str); 4] = [
    (
        "cart-abandonment",
        include_str!("../../../../../journeys/templates/cart-abandonment.yaml"),
    ),
    (
        "loyalty-onboarding",
        include_str!("../../../../../journeys/templates/loyalty-onboarding.yaml"),
    ),
    (
        "post-purchase-cross-sell",
        include_str!("../../../../../journeys/templates/post-purchase-cross-sell.yaml"),
    ),
    (
        "welcome-series",
        include_str!("../../../../../journeys/templates/welcome-series.yaml"),
    ),
];

const CONSTRUCTED: [&str; 6] = [
    r#"
id: bench-instant
name: Checkout confirmation
entry:
  event:
    name: Checkout Started
re_entry: concurrent
start: confirm
steps:
  - id: confirm
    type: send
    channel: email
    template: checkout-confirmation
    next: done
  - id: done
    type: exit
"#,
    r#"
id: bench-timer
name: Timer probe
entry:
  event:
    name: Timer Armed
re_entry: concurrent
start: wait
steps:
  - id: wait
    type: wait
    duration: 10m
    next: done
  - id: done
    type: exit
"#,
    r#"
id: bench-browse
name: Browse reminder
entry:
  event:
    name: Product Viewed
re_entry: after_exit
goals:
  - id: bought
    event: Order Completed
start: wait_for_order
steps:
  - id: wait_for_order
    type: wait_for_event
    event: Order Completed
    timeout: 2h
    on_event: done
    on_timeout: reminder
  - id: reminder
    type: send
    channel: email
    template: browse-reminder
    next: done
  - id: done
    type: exit
"#,
    r#"
id: bench-vip
name: VIP thank-you
entry:
  event:
    name: Order Completed
re_entry: concurrent
start: split
steps:
  - id: split
    type: decision_split
    branches:
      - name: big
        condition: event.properties.total >= 100
        next: vip_email
    default: wait_then_survey
  - id: vip_email
    type: send
    channel: email
    template: vip-thanks
    next: done
  - id: wait_then_survey
    type: wait
    duration: 3d
    next: survey
  - id: survey
    type: send
    channel: email
    template: survey
    next: done
  - id: done
    type: exit
"#,
    r#"
id: bench-nurture
name: Newsletter nurture
entry:
  event:
    name: Newsletter Subscribed
start: hello
steps:
  - id: hello
    type: send
    channel: email
    template: nurture-1
    next: wait_a_day
  - id: wait_a_day
    type: wait
    duration: 1d
    next: second
  - id: second
    type: send
    channel: email
    template: nurture-2
    next: done
  - id: done
    type: exit
"#,
    r#"
id: bench-pricing
name: Pricing page follow-up
entry:
  event:
    name: Page Viewed
    filter: event.properties.section == "pricing"
re_entry: after_exit
start: wait
steps:
  - id: wait
    type: wait
    duration: 6h
    next: follow_up
  - id: follow_up
    type: send
    channel: email
    template: pricing-follow-up
    next: done
  - id: done
    type: exit
"#,
];

/// The ten journeys: (origin, document).
pub fn journeys() -> anyhow::Result<Vec<(&'static str, JourneyDocument)>> {
    let shipped = SHIPPED.iter().map(|(name, yaml)| {
        parse_journey(yaml, Format::Yaml)
            .map(|document| ("template", document))
            .map_err(|error| anyhow::anyhow!("template {name} does not parse: {error}"))
    });
    let constructed = CONSTRUCTED.iter().map(|yaml| {
        parse_journey(yaml, Format::Yaml)
            .map(|document| ("built in", document))
            .map_err(|error| anyhow::anyhow!("a constructed journey does not parse: {error}"))
    });
    shipped.chain(constructed).collect()
}

/// The realistic mix: (weight in percent, event name, properties). About one event in four starts
/// an enrollment somewhere; the rest move or end enrollments or touch none.
const MIX: [(u32, &str, &str); 9] = [
    (
        40,
        "Product Viewed",
        r#"{"product":"Trail boots","price":129.9}"#,
    ),
    (20, "Page Viewed", r#"{"section":"blog"}"#),
    (5, "Page Viewed", r#"{"section":"pricing"}"#),
    (10, NOISE_EVENT, r#"{}"#),
    (8, "Cart Abandoned", r#"{"cart_value":80}"#),
    (8, "Order Completed", r#"{"total":64}"#),
    (3, "Order Completed", r#"{"total":240}"#),
    (3, "Signed Up", r#"{"plan":"free"}"#),
    (3, "Newsletter Subscribed", r#"{}"#),
];

/// Builds events from normalized templates.
pub struct EventFactory {
    /// One template per kind; `raw` holds `__USER__` where the user id goes.
    kinds: Vec<(u32, NormalizedMessage)>,
    instant: NormalizedMessage,
    timer: NormalizedMessage,
    noise: NormalizedMessage,
    next_id: u64,
}

const USER_PLACEHOLDER: &str = "__USER__";

impl EventFactory {
    pub fn new(now: DateTime<Utc>) -> anyhow::Result<EventFactory> {
        let kinds = MIX
            .iter()
            .map(|(weight, name, properties)| {
                let properties: Value =
                    serde_json::from_str(properties).context("a mix entry's properties")?;
                Ok((*weight, template(name, properties, now)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(EventFactory {
            kinds,
            instant: template(INSTANT_EVENT, json!({"total": 42}), now)?,
            timer: template(TIMER_EVENT, json!({}), now)?,
            noise: template(NOISE_EVENT, json!({}), now)?,
            next_id: 0,
        })
    }

    /// Event `index` of the mix (deterministic) for `user`.
    pub fn mixed(&mut self, index: u64, user: u64) -> NormalizedMessage {
        let total: u32 = self.kinds.iter().map(|(weight, _)| weight).sum();
        let mut pick = (splitmix(index) % u64::from(total)) as u32;
        let mut chosen = 0;
        for (position, (weight, _)) in self.kinds.iter().enumerate() {
            if pick < *weight {
                chosen = position;
                break;
            }
            pick -= weight;
        }
        let template = self.kinds[chosen].1.clone();
        self.instance(template, user)
    }

    pub fn instant(&mut self, user: u64) -> NormalizedMessage {
        self.instance(self.instant.clone(), user)
    }

    pub fn timer(&mut self, user: u64) -> NormalizedMessage {
        self.instance(self.timer.clone(), user)
    }

    pub fn noise(&mut self, user: u64) -> NormalizedMessage {
        self.instance(self.noise.clone(), user)
    }

    fn instance(&mut self, mut message: NormalizedMessage, user: u64) -> NormalizedMessage {
        let user = user_id(user);
        self.next_id += 1;
        message.message_id = format!("jb-{}", self.next_id);
        message.raw = message.raw.replace(USER_PLACEHOLDER, &user);
        message.identifiers = vec![Identifier::new(IdentifierKind::UserId, user)];
        message
    }
}

/// The user id of profile number `n`.
pub fn user_id(n: u64) -> String {
    format!("u{n:08}")
}

fn template(
    name: &str,
    properties: Value,
    now: DateTime<Utc>,
) -> anyhow::Result<NormalizedMessage> {
    let message = json!({"type": "track", "userId": USER_PLACEHOLDER, "event": name,
        "properties": properties, "timestamp": now.to_rfc3339(),
        "context": {"library": {"name": "cairn-bench", "version": "1"}}});
    let Value::Object(object) = message else {
        anyhow::bail!("an event template is not an object");
    };
    normalize_object(object, &Envelope::default(), now)
        .map_err(|rejection| anyhow::anyhow!("an event template is invalid: {}", rejection.message))
}

/// A fast, well-mixed hash of `n` (SplitMix64).
fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ten_journeys_parse_and_events_carry_their_user() {
        let journeys = journeys().expect("journeys");
        assert_eq!(journeys.len(), 10);
        let mut factory = EventFactory::new(Utc::now()).expect("factory");
        let event = factory.timer(7);
        assert!(event.raw.contains("u00000007"), "{}", event.raw);
        assert_eq!(event.identifiers[0].value, "u00000007");
        let kinds: std::collections::BTreeSet<_> =
            (0..1000).map(|i| factory.mixed(i, i).name).collect();
        assert!(kinds.len() >= 7, "{kinds:?}");
    }
}
