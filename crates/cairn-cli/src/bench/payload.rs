//! Realistic Segment `track` events, built before timing so that the load generator costs little.
//!
//! Each event is about 400 bytes of JSON: an e-commerce event name, a `userId` drawn from a pool of
//! [`USERS`] people (so identity lookups and profile updates are real work, not inserts only),
//! product properties, a `context` with library, IP and user agent, a timestamp and a unique
//! UUID-shaped `messageId`.
//!
//! A [`RequestFactory`] holds a few dozen request-body templates. Every body it hands out is a copy of
//! a template with the `messageId` and `userId` of each event overwritten in place (fixed-width slots),
//! so every event is unique without serializing JSON on the hot path.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinct users the events are spread over (uniformly).
pub const USERS: u64 = 10_000;
/// Templates per factory: enough variety in names, products and user agents.
const TEMPLATES: u64 = 64;
/// Width of the `messageId` slot: a UUID, `8-4-4-4-12` hex digits.
const MESSAGE_ID_WIDTH: usize = 36;
/// Digits of the user number in `user-NNNNN`.
const USER_DIGITS: usize = 5;

const EVENTS: &[&str] = &[
    "Product Viewed",
    "Product Added",
    "Product List Viewed",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
];
const CATEGORIES: &[&str] = &[
    "Footwear",
    "Outerwear",
    "Apparel",
    "Bags",
    "Camping Gear",
    "Electronics",
];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP"];
const LIBRARIES: &[(&str, &str)] = &[
    ("analytics.js", "5.2.1"),
    ("analytics-node", "2.1.0"),
    ("analytics-ios", "4.1.8"),
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile",
];

/// Which run a body belongs to; part of every `messageId`, so phases never collide.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Batch = 1,
    Single = 2,
    Raw = 3,
}

/// SplitMix64's finalizer: a bijection on `u64`, so distinct inputs give distinct outputs.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<'a>(items: &[&'a str], seed: u64) -> &'a str {
    items[(seed % items.len() as u64) as usize]
}

/// Where one event's variable parts sit inside its template.
#[derive(Debug, Clone, Copy)]
struct Slots {
    message_id: usize,
    user: usize,
}

/// One request body with its events' slots.
#[derive(Debug)]
struct Template {
    bytes: Vec<u8>,
    slots: Vec<Slots>,
}

/// Hands out unique request bodies: `/v1/batch` bodies of N events or single `/v1/track` bodies.
#[derive(Debug)]
pub struct RequestFactory {
    templates: Vec<Template>,
    stream: Stream,
    events_per_request: u64,
    next_request: AtomicU64,
}

impl RequestFactory {
    /// Bodies for `/v1/batch` with `events` messages each.
    pub fn batch(stream: Stream, events: usize, now: DateTime<Utc>) -> Self {
        Self::build(stream, events, now, true)
    }

    /// Bodies for `/v1/track`: one message each.
    pub fn single(stream: Stream, now: DateTime<Utc>) -> Self {
        Self::build(stream, 1, now, false)
    }

    fn build(stream: Stream, events: usize, now: DateTime<Utc>, batch: bool) -> Self {
        let sent_at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let templates = (0..TEMPLATES)
            .map(|index| {
                let mut body = String::with_capacity(events * 450 + 64);
                let mut slots = Vec::with_capacity(events);
                if batch {
                    body.push_str("{\"batch\":[");
                }
                for event in 0..events {
                    if event > 0 {
                        body.push(',');
                    }
                    let seed = mix(index << 32 | event as u64);
                    let at = now - chrono::Duration::milliseconds((seed % 5_000) as i64);
                    slots.push(write_event(
                        &mut body,
                        seed,
                        at,
                        (!batch).then_some(sent_at.as_str()),
                    ));
                }
                if batch {
                    let _ = write!(body, "],\"sentAt\":\"{sent_at}\"}}");
                }
                Template {
                    bytes: body.into_bytes(),
                    slots,
                }
            })
            .collect();
        RequestFactory {
            templates,
            stream,
            events_per_request: events as u64,
            next_request: AtomicU64::new(0),
        }
    }

    /// Events in each body.
    pub fn events_per_request(&self) -> u64 {
        self.events_per_request
    }

    /// Mean size of one event's JSON in bytes (a batch body's few bytes of framing included).
    pub fn mean_event_bytes(&self) -> f64 {
        let total: usize = self.templates.iter().map(|t| t.bytes.len()).sum();
        total as f64 / (self.templates.len() as f64 * self.events_per_request as f64)
    }

    /// A new body: a template with fresh message ids and users.
    pub fn next_body(&self) -> Vec<u8> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let template = &self.templates[(request % self.templates.len() as u64) as usize];
        let mut bytes = template.bytes.clone();
        for (index, slots) in template.slots.iter().enumerate() {
            let sequence =
                (self.stream as u64) << 48 | (request * self.events_per_request + index as u64);
            let id = mix(sequence);
            write_uuid(
                &mut bytes[slots.message_id..slots.message_id + MESSAGE_ID_WIDTH],
                id,
                mix(id),
            );
            write_decimal(
                &mut bytes[slots.user..slots.user + USER_DIGITS],
                mix(id ^ 0x5EED) % USERS,
            );
        }
        bytes
    }
}

/// Appends one `track` event with placeholder id and user; returns where those placeholders are.
fn write_event(out: &mut String, seed: u64, at: DateTime<Utc>, sent_at: Option<&str>) -> Slots {
    let (library, version) = LIBRARIES[(seed % LIBRARIES.len() as u64) as usize];
    out.push_str("{\"type\":\"track\",\"messageId\":\"");
    let message_id = out.len();
    out.push_str(&"0".repeat(MESSAGE_ID_WIDTH));
    out.push_str("\",\"userId\":\"user-");
    let user = out.len();
    out.push_str(&"0".repeat(USER_DIGITS));
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "\",\"event\":\"{event}\",\"timestamp\":\"{timestamp}\",\"properties\":{{\"product_id\":\"sku-{sku:05}\",\
         \"price\":{euros}.{cents:02},\"currency\":\"{currency}\",\"category\":\"{category}\"}},\
         \"context\":{{\"library\":{{\"name\":\"{library}\",\"version\":\"{version}\"}},\"ip\":\"10.{a}.{b}.{c}\",\
         \"userAgent\":\"{agent}\"}}",
        event = pick(EVENTS, seed >> 8),
        timestamp = at.to_rfc3339_opts(SecondsFormat::Millis, true),
        sku = (seed >> 16) % 20_000,
        euros = 5 + (seed >> 24) % 300,
        cents = (seed >> 32) % 100,
        currency = pick(CURRENCIES, seed >> 40),
        category = pick(CATEGORIES, seed >> 44),
        a = (seed >> 50) % 256,
        b = (seed >> 54) % 256,
        c = 1 + (seed >> 58) % 250,
        agent = pick(USER_AGENTS, seed >> 60),
    );
    if let Some(sent_at) = sent_at {
        let _ = write!(out, ",\"sentAt\":\"{sent_at}\"");
    }
    out.push('}');
    Slots { message_id, user }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `high` and `low` as a lowercase UUID (`8-4-4-4-12`) into a 36-byte slot.
fn write_uuid(slot: &mut [u8], high: u64, low: u64) {
    let digits = (0..16)
        .map(|i| (high >> (60 - 4 * i)) & 0xF)
        .chain((0..16).map(|i| (low >> (60 - 4 * i)) & 0xF));
    let mut position = 0;
    for (index, digit) in digits.enumerate() {
        if matches!(index, 8 | 12 | 16 | 20) {
            slot[position] = b'-';
            position += 1;
        }
        slot[position] = HEX[digit as usize];
        position += 1;
    }
}

/// Writes `value` zero-padded into the whole slot (the slot is wide enough for every value given).
fn write_decimal(slot: &mut [u8], mut value: u64) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::segment::{normalize, parse_request, Endpoint};
    use cairn_model::MessageKind;
    use std::collections::HashSet;

    #[test]
    fn batch_bodies_are_valid_unique_and_about_400_bytes_per_event() {
        let now = Utc::now();
        let factory = RequestFactory::batch(Stream::Batch, 100, now);
        let size = factory.mean_event_bytes();
        assert!((350.0..=450.0).contains(&size), "mean event size {size}");
        let mut ids = HashSet::new();
        let mut users = HashSet::new();
        for _ in 0..200 {
            let body = String::from_utf8(factory.next_body()).expect("utf-8");
            let parsed = parse_request(&body, Endpoint::Batch).expect("parses");
            assert!(parsed.envelope.sent_at.is_some());
            for message in parsed.messages {
                let message =
                    normalize(message.expect("valid"), &parsed.envelope, now).expect("normalizes");
                assert_eq!(message.kind, MessageKind::Track);
                assert!(
                    ids.insert(message.message_id.clone()),
                    "duplicate id {}",
                    message.message_id
                );
                users.insert(message.identifiers[0].value.clone());
            }
        }
        assert_eq!(ids.len(), 20_000);
        assert!(
            users.len() > 8_000,
            "users spread over the pool: {}",
            users.len()
        );
        assert!(users
            .iter()
            .all(|user| user.len() == "user-".len() + USER_DIGITS));
    }

    #[test]
    fn single_bodies_are_valid_and_streams_never_collide() {
        let now = Utc::now();
        let single = RequestFactory::single(Stream::Single, now);
        let raw = RequestFactory::single(Stream::Raw, now);
        let mut ids = HashSet::new();
        for factory in [&single, &raw] {
            for _ in 0..1_000 {
                let body = String::from_utf8(factory.next_body()).expect("utf-8");
                let parsed =
                    parse_request(&body, Endpoint::Single(MessageKind::Track)).expect("parses");
                for message in parsed.messages {
                    let message = normalize(message.expect("valid"), &parsed.envelope, now)
                        .expect("normalizes");
                    assert!(ids.insert(message.message_id));
                }
            }
        }
    }

    #[test]
    fn uuid_and_decimal_slots_are_filled_exactly() {
        let mut uuid = [b'?'; MESSAGE_ID_WIDTH];
        write_uuid(&mut uuid, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        assert_eq!(&uuid, b"01234567-89ab-cdef-fedc-ba9876543210");
        let mut user = [b'?'; USER_DIGITS];
        write_decimal(&mut user, 42);
        assert_eq!(&user, b"00042");
    }
}
