//! `cairn demo`: a demo workspace with generated customers and a realistic event history, journeys
//! that run on it ([`crate::demo_journeys`]), then the server, with a live stream of new events so the
//! data moves: sign-ups, carts, orders and loyalty sign-ups that the journeys react to, so messages
//! reach the outbox from the first minute.
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
            ..WorkspaceConfig::default()
        });
    }
    let engine = crate::server::start_engine(&config)?;
    let workspace = WorkspaceId::new(DEMO_WORKSPACE);
    // The audience first, so the history counts toward it; the journeys after, so the live stream
    // (not the history) drives them.
    let audience = crate::demo_journeys::install_audience(&engine, &workspace)?;
    load(&engine, args.customers)?;
    let journeys = crate::demo_journeys::install_journeys(&engine, &workspace)?;
    eprintln!(
        "demo journeys: {} running; audience `{audience}` kept current",
        journeys.join(", ")
    );
    if args.no_serve {
        engine.shutdown();
        return Ok(());
    }
    let listen = config.listen;
    eprintln!(
        "\nCairn demo: workspace `{DEMO_WORKSPACE}`, write key `{DEMO_WRITE_KEY}`, API token `{DEMO_API_TOKEN}`\n\
         \x20 send:   curl -u {DEMO_WRITE_KEY}: http://{listen}/v1/track -H 'content-type: application/json' -d '{{\"userId\":\"user-00001\",\"event\":\"Demo Clicked\"}}'\n\
         \x20 read:   curl -H 'Authorization: Bearer {DEMO_API_TOKEN}' 'http://{listen}/api/v1/profiles/lookup?user_id=user-00001'\n\
         \x20 api:    http://{listen}/api/openapi.json   metrics: http://{listen}/metrics\n\
         \x20 journeys: cairn --listen {listen} journey list   cairn --listen {listen} journey stats welcome-series\n\
         \x20 audience: curl -H 'Authorization: Bearer {DEMO_API_TOKEN}' http://{listen}/api/v1/audiences/{audience}\n"
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
                    let now = clock.now();
                    let messages: Vec<NormalizedMessage> = live_events(&mut rng, customers, now)
                        .into_iter()
                        .filter_map(|raw| normalize_object(raw, &Envelope::default(), now).ok())
                        .collect();
                    let _ = ingestor
                        .submit(WorkspaceId::new(DEMO_WORKSPACE), messages)
                        .await;
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
                "birthday": format!("19{}-{:02}-{:02}", rng.random_range(55..99), rng.random_range(1..13), rng.random_range(1..29)),
                "onboarded": rng.random_bool(0.4)});
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
                        "properties": {"order_id": format!("ord-{customer}-{}", at.timestamp()), "revenue": price, "total": price, "category": category, "currency": "EUR", "products": [product]}}),
                        true,
                    );
                }
            } else if signed_up {
                // Added to the cart, never checked out.
                push(
                    at + Duration::minutes(30),
                    json!({"type": "track", "event": "Cart Abandoned", "properties": {"cart_value": price, "currency": "EUR", "products": [product]}}),
                    true,
                );
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
        if rng.random_bool(0.1) {
            push(
                at + Duration::days(2),
                json!({"type": "track", "event": "Loyalty Left", "properties": {}}),
                true,
            );
        }
    }
    if signed_up && rng.random_bool(0.03) {
        push(
            at + Duration::hours(1),
            json!({"type": "track", "event": "Unsubscribed", "properties": {"channel": "email"}}),
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

/// The messages of one live happening for the demo stream: mostly browsing, and the sign-ups, carts,
/// orders, loyalty sign-ups and unsubscribes the demo journeys react to.
fn live_events(rng: &mut StdRng, customers: usize, now: DateTime<Utc>) -> Vec<Map<String, Value>> {
    let customer = rng.random_range(0..customers.max(1));
    let (sku, name, category, price) = *pick(rng, PRODUCTS);
    let product = json!({"product_id": sku, "name": name, "category": category, "price": price, "currency": "EUR"});
    let id = format!("live-{}-{}", now.timestamp_millis(), rng.random::<u32>());
    let context = json!({"library": {"name": "cairn-demo-live", "version": "1"}});
    // Known customers act as themselves (their anonymous id links the visit to the profile).
    let known = |event: &str, properties: Value| {
        json!({"type": "track", "userId": format!("user-{customer:05}"), "anonymousId": format!("anon-{customer:05}"),
               "event": event, "properties": properties, "messageId": id, "context": context})
    };
    let bodies = match rng.random_range(0..100) {
        0..50 => vec![
            json!({"type": "track", "anonymousId": format!("anon-{customer:05}"), "event": "Product Viewed",
                              "properties": product, "messageId": id, "context": context}),
        ],
        50..60 => vec![known("Product Added", product)],
        60..70 => vec![known(
            "Cart Abandoned",
            json!({"cart_value": price, "currency": "EUR", "products": [product]}),
        )],
        70..78 => vec![known(
            "Order Completed",
            json!({"order_id": format!("ord-{id}"), "revenue": price, "total": price, "category": category, "currency": "EUR", "products": [product]}),
        )],
        78..90 => {
            // A new customer signs up.
            let (first, last) = (*pick(rng, FIRST_NAMES), *pick(rng, LAST_NAMES));
            let (city, country, timezone) = *pick(rng, PLACES);
            let user_id = format!("user-{id}");
            vec![
                json!({"type": "identify", "userId": user_id, "messageId": format!("{id}-identify"), "context": context,
                       "traits": {"firstName": first, "lastName": last, "email": format!("{}.{}@{id}.example.com", first.to_lowercase(), last.to_lowercase()),
                                  "city": city, "country": country, "timezone": timezone, "onboarded": false}}),
                json!({"type": "track", "userId": user_id, "event": "Signed Up", "properties": {"method": "email"},
                       "messageId": format!("{id}-signup"), "context": context}),
            ]
        }
        90..97 => vec![known("Loyalty Joined", json!({"tier": "bronze"}))],
        _ => vec![known("Unsubscribed", json!({"channel": "email"}))],
    };
    let mut bodies: Vec<Map<String, Value>> = bodies.into_iter().map(object).collect();
    for body in &mut bodies {
        body.insert("timestamp".into(), json!(iso(now)));
    }
    bodies
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_engine::Clock as _;
    use chrono::TimeZone;

    #[test]
    fn the_demo_journeys_validate_on_the_demo_data_and_send_within_the_first_minutes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = std::sync::Arc::new(cairn_engine::ManualClock::new(
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
                .single()
                .expect("time"),
        ));
        let engine = Engine::start(
            cairn_engine::EngineOptions {
                tick_interval: None,
                ..cairn_engine::EngineOptions::default()
            },
            cairn_store_sqlite::open(dir.path()).expect("store"),
            clock.clone(),
        )
        .expect("engine");
        let workspace = WorkspaceId::new(DEMO_WORKSPACE);
        let reader = engine.reader();
        crate::demo_journeys::install_audience(&engine, &workspace).expect("audience");
        load(&engine, 300).expect("history");
        let running =
            crate::demo_journeys::install_journeys(&engine, &workspace).expect("journeys");
        assert_eq!(running.len(), crate::demo_journeys::DEMO_JOURNEYS.len());
        // What `cairn journey push` of the same templates would meet: they validate on the demo data.
        for document in crate::demo_journeys::journey_documents().expect("documents") {
            assert_eq!(
                reader.check_journey(&workspace, &document),
                Vec::new(),
                "{}",
                document.id
            );
        }
        assert!(
            reader
                .audience_members(&workspace, "browsed-not-bought", 1)
                .is_some_and(|members| !members.is_empty()),
            "the history fills the audience"
        );
        // A second run publishes nothing new.
        crate::demo_journeys::install_journeys(&engine, &workspace).expect("again");
        for id in &running {
            assert_eq!(
                reader
                    .journey(&workspace, id)
                    .expect("journey")
                    .versions
                    .len(),
                1
            );
        }

        // Two minutes of the live stream at 5 events a second.
        let mut rng = StdRng::seed_from_u64(11);
        let mut users = std::collections::BTreeSet::new();
        for _ in 0..600 {
            clock.advance(Duration::milliseconds(200));
            let messages: Vec<NormalizedMessage> = live_events(&mut rng, 300, clock.now())
                .into_iter()
                .map(|raw| normalize_object(raw, &Envelope::default(), clock.now()).expect("valid"))
                .collect();
            users.extend(messages.iter().flat_map(|message| {
                message
                    .identifiers
                    .iter()
                    .filter(|identifier| identifier.kind == cairn_model::IdentifierKind::UserId)
                    .map(|identifier| identifier.value.clone())
            }));
            engine
                .ingestor()
                .submit_blocking(workspace.clone(), messages)
                .expect("stored");
        }
        engine.tick().expect("tick");
        let mut templates = std::collections::BTreeMap::<String, usize>::new();
        for user in &users {
            let identifier =
                cairn_model::Identifier::new(cairn_model::IdentifierKind::UserId, user.as_str());
            let profile = reader
                .profile_by_identifier(&workspace, &identifier)
                .expect("profile");
            for message in reader
                .messages(&workspace, &profile.id, 100)
                .expect("read")
                .expect("profile")
            {
                *templates
                    .entry(message["template"].as_str().unwrap_or_default().to_string())
                    .or_default() += 1;
            }
        }
        assert!(
            templates.get("welcome").is_some_and(|&count| count >= 10),
            "{templates:?}"
        );
        assert!(
            templates
                .get("loyalty-welcome")
                .is_some_and(|&count| count >= 5),
            "{templates:?}"
        );
        let stats = reader
            .journey_stats(&workspace, "cart-abandonment")
            .expect("stats");
        assert!(
            stats["versions"][0]["entered"]
                .as_u64()
                .is_some_and(|n| n >= 10),
            "{stats}"
        );
    }

    #[test]
    fn the_live_stream_is_valid_and_carries_what_the_journeys_react_to() {
        let now = Utc
            .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("time");
        let mut rng = StdRng::seed_from_u64(3);
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..500 {
            for raw in live_events(&mut rng, 100, now) {
                let message = normalize_object(raw, &Envelope::default(), now).expect("valid");
                names.extend(message.name);
            }
        }
        for name in [
            "Signed Up",
            "Cart Abandoned",
            "Order Completed",
            "Loyalty Joined",
            "Product Viewed",
        ] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
    }

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
