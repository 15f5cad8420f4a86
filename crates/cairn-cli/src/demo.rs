//! `cairn demo`: a demo workspace with generated customers and a realistic event history, then the
//! server, with a slow live stream of new events so the data moves.
//!
//! Generation is deterministic (fixed seed, message ids derived from customer and step), so running the
//! demo twice on the same data directory stores nothing twice.

use crate::config::{Config, WorkspaceConfig};
use cairn_core::segment::{normalize_object, Envelope};
use cairn_engine::Engine;
use cairn_model::{NormalizedMessage, WorkspaceId};
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// The demo workspace and its credentials (printed at start).
pub const DEMO_WORKSPACE: &str = "demo";
pub const DEMO_WRITE_KEY: &str = "demo-write-key";
pub const DEMO_API_TOKEN: &str = "demo-api-token";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many customers to generate.
    #[arg(long, default_value_t = 3000)]
    customers: usize,
    /// Live events per second after loading (0 for none).
    #[arg(long, default_value_t = 5.0)]
    live_rate: f64,
    /// Load the data and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

pub fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    if !config.workspaces.iter().any(|w| w.id == DEMO_WORKSPACE) {
        config.workspaces.push(WorkspaceConfig {
            id: DEMO_WORKSPACE.into(),
            write_keys: vec![DEMO_WRITE_KEY.into()],
            api_tokens: vec![DEMO_API_TOKEN.into()],
        });
    }
    let engine = crate::server::start_engine(&config)?;
    load(&engine, args.customers)?;
    if args.no_serve {
        engine.shutdown();
        return Ok(());
    }
    let listen = config.listen;
    eprintln!(
        "\nCairn demo: workspace `{DEMO_WORKSPACE}`, write key `{DEMO_WRITE_KEY}`, API token `{DEMO_API_TOKEN}`\n\
         \x20 send:   curl -u {DEMO_WRITE_KEY}: http://{listen}/v1/track -H 'content-type: application/json' -d '{{\"userId\":\"user-00001\",\"event\":\"Demo Clicked\"}}'\n\
         \x20 read:   curl -H 'Authorization: Bearer {DEMO_API_TOKEN}' 'http://{listen}/api/v1/profiles/lookup?user_id=user-00001'\n\
         \x20 api:    http://{listen}/api/openapi.json   metrics: http://{listen}/metrics\n"
    );
    let rate = args.live_rate;
    let customers = args.customers.max(1);
    let companion: Option<crate::server::Companion> = (rate > 0.0).then(|| {
        Box::new(move |engine: &Engine| {
            let ingestor = engine.ingestor();
            let clock = engine.clock();
            Box::pin(async move {
                let mut rng = StdRng::from_os_rng();
                let period = std::time::Duration::from_secs_f64(1.0 / rate);
                loop {
                    tokio::time::sleep(period).await;
                    let customer = rng.random_range(0..customers);
                    let now = clock.now();
                    let raw = live_event(&mut rng, customer, now);
                    if let Ok(message) = normalize_object(raw, &Envelope::default(), now) {
                        let _ = ingestor
                            .submit(WorkspaceId::new(DEMO_WORKSPACE), vec![message])
                            .await;
                    }
                }
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        }) as crate::server::Companion
    });
    crate::server::serve_engine(&config, engine, companion)
}

/// Generates and stores the demo history.
fn load(engine: &Engine, customers: usize) -> anyhow::Result<()> {
    let now = engine.clock().now();
    let ingestor = engine.ingestor();
    let workspace = WorkspaceId::new(DEMO_WORKSPACE);
    let mut rng = StdRng::seed_from_u64(7);
    let (mut accepted, mut duplicates) = (0, 0);
    let mut chunk: Vec<NormalizedMessage> = Vec::new();
    for customer in 0..customers {
        for raw in customer_history(&mut rng, customer, now) {
            chunk.push(
                normalize_object(raw, &Envelope::default(), now)
                    .map_err(|r| anyhow::anyhow!("demo event invalid: {}", r.message))?,
            );
        }
        if chunk.len() >= 2000 || customer + 1 == customers {
            let receipt =
                ingestor.submit_blocking(workspace.clone(), std::mem::take(&mut chunk))?;
            accepted += receipt.accepted;
            duplicates += receipt.duplicates;
        }
    }
    eprintln!(
        "demo data: {customers} customers, {accepted} events stored ({duplicates} already there)"
    );
    Ok(())
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Bruno", "Chloe", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivan", "Jade", "Kofi",
    "Lena", "Mateo", "Nora", "Omar", "Priya",
];
const LAST_NAMES: &[&str] = &[
    "Andersen",
    "Baptiste",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("Oslo", "NO", "Europe/Oslo"),
    ("Lyon", "FR", "Europe/Paris"),
    ("Austin", "US", "America/Chicago"),
    ("Seattle", "US", "America/Los_Angeles"),
    ("Toronto", "CA", "America/Toronto"),
    ("Sydney", "AU", "Australia/Sydney"),
    ("Berlin", "DE", "Europe/Berlin"),
    ("São Paulo", "BR", "America/Sao_Paulo"),
];
const PRODUCTS: &[(&str, &str, &str, f64)] = &[
    ("sku-101", "Trail Running Shoes", "shoes", 129.0),
    ("sku-102", "Rain Shell Jacket", "outerwear", 189.0),
    ("sku-103", "Merino Base Layer", "apparel", 79.0),
    ("sku-104", "Daypack 24L", "bags", 99.0),
    ("sku-105", "Headlamp", "gear", 39.0),
    ("sku-106", "Trekking Poles", "gear", 119.0),
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn iso(at: DateTime<Utc>) -> String {
    cairn_core::timestamps::format(at)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// One customer's journey so far: browsing anonymously, perhaps signing up, viewing, buying.
fn customer_history(
    rng: &mut StdRng,
    customer: usize,
    now: DateTime<Utc>,
) -> Vec<Map<String, Value>> {
    let anonymous_id = format!("anon-{customer:05}");
    let user_id = format!("user-{customer:05}");
    let (first, last) = (*pick(rng, FIRST_NAMES), *pick(rng, LAST_NAMES));
    let (city, country, timezone) = *pick(rng, PLACES);
    let mut at = now - Duration::minutes(rng.random_range(60..60 * 24 * 30));
    let mut step = 0;
    let mut events = Vec::new();
    let mut push = |at: DateTime<Utc>, mut body: Value, identified: bool| {
        step += 1;
        body["messageId"] = json!(format!("demo-{customer}-{step}"));
        body["anonymousId"] = json!(anonymous_id);
        if identified {
            body["userId"] = json!(user_id);
        }
        body["timestamp"] = json!(iso(at));
        body["context"] =
            json!({"library": {"name": "cairn-demo", "version": "1"}, "timezone": timezone});
        events.push(object(body));
    };
    push(
        at,
        json!({"type": "page", "name": "Home", "properties": {"path": "/", "referrer": "https://search.example"}}),
        false,
    );
    // The first ten customers always sign up, so the examples printed at start find a profile.
    let identified = customer < 10 || rng.random_bool(0.7);
    let mut signed_up = false;
    for _ in 0..rng.random_range(1..8) {
        at += Duration::minutes(rng.random_range(1..600));
        let (sku, name, category, price) = *pick(rng, PRODUCTS);
        let product = json!({"product_id": sku, "name": name, "category": category, "price": price, "currency": "EUR"});
        if identified && !signed_up && (customer < 10 || rng.random_bool(0.5)) {
            signed_up = true;
            let traits = json!({"firstName": first, "lastName": last, "email": format!("{}.{}{customer}@example.com", first.to_lowercase(), last.to_lowercase()),
                "city": city, "country": country, "timezone": timezone, "plan": *pick(rng, &["free", "plus", "pro"]),
                "birthday": format!("19{}-{:02}-{:02}", rng.random_range(55..99), rng.random_range(1..13), rng.random_range(1..29))});
            push(at, json!({"type": "identify", "traits": traits}), true);
            push(
                at,
                json!({"type": "track", "event": "Signed Up", "properties": {"method": "email"}}),
                true,
            );
        }
        push(
            at,
            json!({"type": "track", "event": "Product Viewed", "properties": product}),
            signed_up,
        );
        if rng.random_bool(0.35) {
            at += Duration::minutes(rng.random_range(1..30));
            push(
                at,
                json!({"type": "track", "event": "Product Added", "properties": product}),
                signed_up,
            );
            if signed_up && rng.random_bool(0.5) {
                at += Duration::minutes(rng.random_range(1..60));
                push(
                    at,
                    json!({"type": "track", "event": "Checkout Started", "properties": {"value": price, "currency": "EUR"}}),
                    true,
                );
                if rng.random_bool(0.6) {
                    push(
                        at + Duration::minutes(3),
                        json!({"type": "track", "event": "Order Completed",
                        "properties": {"order_id": format!("ord-{customer}-{}", at.timestamp()), "revenue": price, "currency": "EUR", "products": [product]}}),
                        true,
                    );
                }
            }
        }
        if at > now {
            break;
        }
    }
    if signed_up && rng.random_bool(0.3) {
        push(
            at,
            json!({"type": "screen", "name": "Loyalty Home", "properties": {"app": "ios"}}),
            true,
        );
        push(
            at,
            json!({"type": "track", "event": "Loyalty Joined", "properties": {"tier": "bronze"}}),
            true,
        );
    }
    events.retain(|event| {
        event
            .get("timestamp")
            .and_then(Value::as_str)
            .is_some_and(|t| t <= iso(now).as_str())
    });
    events
}

/// One live event for the demo stream.
fn live_event(rng: &mut StdRng, customer: usize, now: DateTime<Utc>) -> Map<String, Value> {
    let (sku, name, category, price) = *pick(rng, PRODUCTS);
    object(json!({
        "type": "track", "anonymousId": format!("anon-{customer:05}"), "event": "Product Viewed",
        "messageId": format!("live-{}-{}", now.timestamp_millis(), rng.random::<u32>()),
        "properties": {"product_id": sku, "name": name, "category": category, "price": price, "currency": "EUR"},
        "context": {"library": {"name": "cairn-demo-live", "version": "1"}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_history_is_deterministic_valid_and_in_the_past() {
        let now = Utc
            .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("time");
        let generate = || {
            let mut rng = StdRng::seed_from_u64(7);
            (0..50)
                .flat_map(|c| customer_history(&mut rng, c, now))
                .collect::<Vec<_>>()
        };
        let events = generate();
        assert_eq!(events, generate());
        assert!(events.len() > 100);
        for event in events {
            let message = normalize_object(event, &Envelope::default(), now).expect("valid");
            assert!(message.timestamp <= now);
        }
    }
}
