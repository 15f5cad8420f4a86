//! Compiles a condition given on the command line against an open schema and evaluates it on a small demo
//! context: `cargo run -p cairn-condition --example try_condition -- 'profile.plan == "pro"'`.

use cairn_condition::{compile, render, MapContext, Schema};
use serde_json::json;

fn main() {
    let source = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "profile.plan == \"pro\"".to_owned());
    let now = 1_780_000_000_000;
    let context = MapContext::new(now)
        .with_profile(json!({"plan": "pro", "signup_at": "2026-01-01T00:00:00Z", "country": "DE", "tags": ["vip"], "timezone": "Europe/Berlin"}))
        .with_event(json!({"type": "track", "event": "Order Completed", "properties": {"total": 120, "currency": "EUR"}}))
        .with_history([("Product Viewed", now - 86_400_000), ("Order Completed", now - 20 * 86_400_000)]);
    match compile(&source, &Schema::open()) {
        Ok(condition) => {
            println!("value: {}", condition.evaluate(&context).to_json());
            println!("next change: {:?}", condition.next_change_after(&context));
            println!(
                "references: {}",
                serde_json::to_string(condition.references()).unwrap_or_default()
            );
        }
        Err(diagnostics) => eprint!("{}", render(&source, &diagnostics)),
    }
}
