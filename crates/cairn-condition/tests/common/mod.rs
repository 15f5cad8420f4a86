//! Shared fixtures for the condition tests: one realistic context and a helper to read instants.

#![allow(dead_code)]

use cairn_condition::MapContext;
use serde_json::json;

pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;

/// Milliseconds since the epoch of an RFC 3339 instant (test input only).
pub fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("test instant")
        .timestamp_millis()
}

/// "Now" in the fixture: 2026-06-15T12:00:00Z, a Monday.
pub fn now() -> i64 {
    at("2026-06-15T12:00:00Z")
}

/// A profile, a triggering event, an enrollment and an event history.
pub fn fixture() -> MapContext {
    let now = now();
    MapContext::new(now)
        .with_profile(json!({
            "plan": "pro",
            "signup_at": "2026-05-01T12:00:00Z",
            "renewal_at": "2026-06-20",
            "country": "DE",
            "tags": ["vip", "beta"],
            "timezone": "Europe/Berlin",
            "bad_timezone": "Mars/Olympus",
            "age": 42,
            "score": "17",
            "first name": "Ada",
            "email": "Ada@Example.com",
            "address": {"city": "Berlin", "zip": "10115"},
            "phone": null,
            "vip": true,
            "scores": [3, 5, 8],
            "not_a_date": "soon"
        }))
        .with_event(json!({
            "type": "track",
            "event": "Order Completed",
            "timestamp": "2026-06-15T11:59:00Z",
            "userId": "u1",
            "properties": {"total": 120.5, "currency": "EUR", "items": [{"sku": "A"}], "coupon": null},
            "context": {"ip": "1.2.3.4", "locale": "de-DE"}
        }))
        .with_journey(json!({
            "id": "cart",
            "version": 3,
            "entered_at": "2026-06-14T12:00:00Z",
            "trigger": {"type": "track", "event": "Cart Updated", "properties": {"cart_value": 75}},
            "steps": {"offer": {"outcome": "clicked"}, "send-email": {"status": "sent"}}
        }))
        .with_history([
            ("Product Viewed", now - DAY_MS),
            ("Product Viewed", now - 3 * DAY_MS),
            ("Product Viewed", now - 10 * DAY_MS),
            ("Order Completed", now - 20 * DAY_MS),
            ("Order Completed", now - 40 * DAY_MS),
        ])
}
