//! Federated attributes against the real PostgreSQL and MariaDB on this machine (started by
//! `scripts/services.sh`) and a real HTTP server: fetch, cache hit, TTL expiry with an injected
//! clock, timeout, a source that is down, failure policies, write-back and its audit record.

use cairn_federated::{
    FederatedAttributes, FederatedConfig, FederatedError, FetchOrigin, ManualClock, WriteOutcome,
};
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use std::sync::Arc;

const POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";
const MARIADB: &str = "mysql://root@127.0.0.1:3306/test";
/// Nothing listens on port 1: connections are refused.
const POSTGRES_DOWN: &str = "host=127.0.0.1 port=1 user=postgres dbname=test connect_timeout=5";
const MARIADB_DOWN: &str = "mysql://root@127.0.0.1:1/test";

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .expect("time"),
    ))
}

fn attributes(toml_text: &str, clock: Arc<ManualClock>) -> FederatedAttributes {
    let config = FederatedConfig::parse(toml_text, false, "test").expect("valid config");
    FederatedAttributes::new(config, clock).expect("attributes")
}

fn declaration(name: &str, kind: &str, url: &str, query: &str, write: &str, extra: &str) -> String {
    format!(
        "[[attribute]]\nname = \"{name}\"\nsource = \"commerce\"\ntimeout_ms = 1500\ncache_ttl_seconds = 60\n{extra}\n\
         [attribute.connector]\nkind = \"{kind}\"\nurl = \"{url}\"\nquery = \"{query}\"\nwrite = \"{write}\"\n"
    )
}

async fn postgres_table(table: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is running (scripts/services.sh starts it)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "drop table if exists {table};
             create table {table} (customer_id int primary key, points int, tier text);
             insert into {table} values (42, 100, 'gold'), (43, 5, null);"
        ))
        .await
        .expect("create table");
    client
}

async fn mariadb_table(table: &str) -> mysql_async::Conn {
    use mysql_async::prelude::Queryable;
    let mut connection = mysql_async::Conn::from_url(MARIADB)
        .await
        .expect("MariaDB is running (scripts/services.sh starts it)");
    connection
        .query_drop(format!(
            "drop table if exists {table};
             create table {table} (customer_id int primary key, points int, tier varchar(20));
             insert into {table} values (42, 100, 'gold'), (43, 5, null);"
        ))
        .await
        .expect("create table");
    connection
}

#[tokio::test]
async fn postgres_fetch_cache_ttl_and_write_back() {
    let table = "cairn_federated_pg_loyalty";
    let admin = postgres_table(table).await;
    let clock = clock();
    let federated = attributes(
        &declaration(
            "loyalty",
            "postgres",
            POSTGRES,
            &format!("select points, tier from {table} where customer_id = $1::int"),
            &format!("update {table} set {{field}} = $1::int where customer_id = $2::int"),
            "",
        ),
        clock.clone(),
    );
    let live = federated.fetch("loyalty", "42").await.expect("fetch");
    assert_eq!(live.origin, FetchOrigin::Live);
    let values = live.values.expect("a row");
    assert_eq!(values["points"], json!(100));
    assert_eq!(values["tier"], json!("gold"));
    assert_eq!(
        federated
            .fetch("loyalty", "43")
            .await
            .expect("fetch")
            .values
            .expect("row")["tier"],
        json!(null)
    );
    assert_eq!(
        federated
            .fetch("loyalty", "999")
            .await
            .expect("fetch")
            .values,
        None
    );

    // The source changes behind Cairn's back: within the TTL the cache answers.
    admin
        .execute(
            &format!("update {table} set points = 150 where customer_id = 42"),
            &[],
        )
        .await
        .expect("update");
    let cached = federated.fetch("loyalty", "42").await.expect("fetch");
    assert_eq!(cached.origin, FetchOrigin::Cache);
    assert_eq!(cached.values.expect("row")["points"], json!(100));
    clock.advance(Duration::seconds(61));
    let refreshed = federated.fetch("loyalty", "42").await.expect("fetch");
    assert_eq!(refreshed.origin, FetchOrigin::Live);
    assert_eq!(refreshed.values.expect("row")["points"], json!(150));

    // Write-back: the source changes, the audit says what happened, the cache is dropped.
    let audit = federated
        .write_back("loyalty", "42", "points", json!(200), "journey:7/step:3")
        .await
        .expect("write-back");
    assert_eq!(audit.outcome, WriteOutcome::Applied { rows: 1 });
    assert_eq!(audit.previous_value, Some(json!(150)));
    assert_eq!(audit.new_value, json!(200));
    assert_eq!(audit.actor, "journey:7/step:3");
    assert_eq!(audit.at, clock_now(&clock));
    let row = admin
        .query_one(
            &format!("select points from {table} where customer_id = 42"),
            &[],
        )
        .await
        .expect("read back");
    assert_eq!(row.get::<_, i32>(0), 200);
    let after = federated.fetch("loyalty", "42").await.expect("fetch");
    assert_eq!(after.origin, FetchOrigin::Live);
    assert_eq!(after.values.expect("row")["points"], json!(200));

    // A write that the database rejects is an error carrying the failed audit record.
    let error = federated
        .write_back("loyalty", "42", "points", json!("lots"), "admin")
        .await
        .unwrap_err();
    match error {
        FederatedError::WriteBack { audit, .. } => {
            assert!(matches!(audit.outcome, WriteOutcome::Failed { .. }))
        }
        other => panic!("expected a write-back error, got {other}"),
    }
    // Field names are never spliced into SQL unchecked.
    assert!(federated
        .write_back("loyalty", "42", "points = 0 --", json!(1), "admin")
        .await
        .is_err());
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    use cairn_federated::Clock;
    clock.now()
}

#[tokio::test]
async fn postgres_timeout_and_failure_policies() {
    let table = "cairn_federated_pg_slow";
    let _admin = postgres_table(table).await;
    let clock = clock();
    let slow_query = format!(
        "select points, tier from {table}, pg_sleep(case when (select count(*) from cairn_federated_pg_slow_switch) > 0 then 3 else 0 end) where customer_id = $1::int"
    );
    let (switch, connection) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    switch
        .batch_execute("drop table if exists cairn_federated_pg_slow_switch; create table cairn_federated_pg_slow_switch (on_ int);")
        .await
        .expect("switch");
    let text = declaration(
        "stale",
        "postgres",
        POSTGRES,
        &slow_query,
        "",
        "on_failure = \"use_stale\"",
    )
    .replace("timeout_ms = 1500", "timeout_ms = 300")
        + &declaration("fails", "postgres", POSTGRES, &slow_query, "", "")
            .replace("timeout_ms = 1500", "timeout_ms = 300")
        + &declaration(
            "defaults",
            "postgres",
            POSTGRES,
            &slow_query,
            "",
            "on_failure = { use_default = { points = 0 } }",
        )
        .replace("timeout_ms = 1500", "timeout_ms = 300");
    let federated = attributes(&text, clock.clone());
    assert_eq!(
        federated.fetch("stale", "42").await.expect("fast").origin,
        FetchOrigin::Live
    );
    switch
        .execute("insert into cairn_federated_pg_slow_switch values (1)", &[])
        .await
        .expect("slow down");
    clock.advance(Duration::seconds(61));

    let started = std::time::Instant::now();
    let stale = federated.fetch("stale", "42").await.expect("stale value");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the timeout cut the query"
    );
    assert!(
        matches!(stale.origin, FetchOrigin::Stale { .. }),
        "{stale:?}"
    );
    assert_eq!(stale.values.expect("row")["points"], json!(100));

    match federated.fetch("fails", "42").await {
        Err(FederatedError::Timeout { timeout_ms, .. }) => assert_eq!(timeout_ms, 300),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let defaulted = federated.fetch("defaults", "42").await.expect("default");
    assert!(matches!(defaulted.origin, FetchOrigin::Default { .. }));
    assert_eq!(defaulted.values.expect("default")["points"], json!(0));
    // Without a cached value "use stale" has nothing to give.
    assert!(federated.fetch("stale", "43").await.is_err());
}

#[tokio::test]
async fn a_source_that_is_down_fails_fast_or_falls_back() {
    let clock = clock();
    let text = declaration(
        "pg_down",
        "postgres",
        POSTGRES_DOWN,
        "select 1 where $1 = ''",
        "",
        "",
    ) + &declaration(
        "my_down",
        "mysql",
        MARIADB_DOWN,
        "select 1 from dual where ? = ''",
        "",
        "",
    ) + &declaration(
        "down_default",
        "postgres",
        POSTGRES_DOWN,
        "select 1 where $1 = ''",
        "",
        "on_failure = { use_default = { tier = \"unknown\" } }",
    );
    let federated = attributes(&text, clock);
    for attribute in ["pg_down", "my_down"] {
        let started = std::time::Instant::now();
        match federated.fetch(attribute, "42").await {
            Err(FederatedError::Source { message, .. }) => {
                assert!(message.contains("cannot connect"), "{message}")
            }
            other => panic!("expected a source error for {attribute}, got {other:?}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_millis(1500));
    }
    let defaulted = federated
        .fetch("down_default", "42")
        .await
        .expect("default");
    assert_eq!(defaulted.values.expect("default")["tier"], json!("unknown"));
    assert!(matches!(
        federated.fetch("nope", "1").await,
        Err(FederatedError::UnknownAttribute(_))
    ));
}

#[tokio::test]
async fn mariadb_fetch_cache_timeout_and_write_back() {
    use mysql_async::prelude::Queryable;
    let table = "cairn_federated_my_loyalty";
    let mut admin = mariadb_table(table).await;
    let clock = clock();
    let text = declaration(
        "loyalty",
        "mysql",
        MARIADB,
        &format!("select points, tier from {table} where customer_id = ?"),
        &format!("update {table} set {{field}} = ? where customer_id = ?"),
        "",
    ) + &declaration(
        "slow",
        "mysql",
        MARIADB,
        &format!("select points, sleep(3) as slept from {table} where customer_id = ?"),
        "",
        "",
    )
    .replace("timeout_ms = 1500", "timeout_ms = 300");
    let federated = attributes(&text, clock.clone());
    let live = federated.fetch("loyalty", "42").await.expect("fetch");
    assert_eq!(live.origin, FetchOrigin::Live);
    let values = live.values.expect("row");
    assert_eq!(values["points"], json!(100));
    assert_eq!(values["tier"], json!("gold"));
    assert_eq!(
        federated
            .fetch("loyalty", "999")
            .await
            .expect("fetch")
            .values,
        None
    );

    admin
        .query_drop(format!(
            "update {table} set points = 150 where customer_id = 42"
        ))
        .await
        .expect("update");
    assert_eq!(
        federated
            .fetch("loyalty", "42")
            .await
            .expect("fetch")
            .origin,
        FetchOrigin::Cache
    );
    clock.advance(Duration::seconds(61));
    let refreshed = federated.fetch("loyalty", "42").await.expect("fetch");
    assert_eq!(refreshed.values.expect("row")["points"], json!(150));

    let audit = federated
        .write_back(
            "loyalty",
            "42",
            "tier",
            json!("platinum"),
            "service-desk:anna",
        )
        .await
        .expect("write-back");
    assert_eq!(audit.outcome, WriteOutcome::Applied { rows: 1 });
    assert_eq!(audit.previous_value, Some(json!("gold")));
    let tier: Option<String> = admin
        .query_first(format!("select tier from {table} where customer_id = 42"))
        .await
        .expect("read back");
    assert_eq!(tier.as_deref(), Some("platinum"));

    let started = std::time::Instant::now();
    assert!(matches!(
        federated.fetch("slow", "42").await,
        Err(FederatedError::Timeout { .. })
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn http_fetch_json_pointers_and_write_back() {
    use axum::extract::{Path, State};
    use axum::routing::get;
    use std::sync::Mutex;
    type Store = Arc<Mutex<serde_json::Value>>;
    let store: Store = Arc::new(Mutex::new(
        json!({"loyalty": {"points": 7, "tier": "silver"}}),
    ));
    async fn read(Path(id): Path<String>, State(store): State<Store>) -> axum::response::Response {
        use axum::response::IntoResponse;
        if id != "c 42" {
            return axum::http::StatusCode::NOT_FOUND.into_response();
        }
        let body = store.lock().map(|value| value.clone()).unwrap_or_default();
        axum::Json(body).into_response()
    }
    async fn patch(
        Path(_id): Path<String>,
        State(store): State<Store>,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::http::StatusCode {
        if let (Ok(mut value), Some(points)) = (store.lock(), body.pointer("/loyalty/points")) {
            value["loyalty"]["points"] = points.clone();
        }
        axum::http::StatusCode::NO_CONTENT
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        "{}"
    }
    let app = axum::Router::new()
        .route("/customers/{id}", get(read).patch(patch))
        .route("/slow/{id}", get(slow))
        .with_state(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let text = format!(
        r#"
[[attribute]]
name = "loyalty"
source = "crm"
timeout_ms = 1000
[attribute.connector]
kind = "http"
url = "http://{address}/customers/{{id}}"
fields = {{ points = "/loyalty/points", tier = "/loyalty/tier", missing = "/nope" }}
write = {{ method = "PATCH", url = "http://{address}/customers/{{id}}" }}

[[attribute]]
name = "slow"
source = "crm"
timeout_ms = 200
[attribute.connector]
kind = "http"
url = "http://{address}/slow/{{id}}"
fields = {{ x = "/x" }}
"#
    );
    let clock = clock();
    let federated = attributes(&text, clock);
    let fetched = federated.fetch("loyalty", "c 42").await.expect("fetch");
    let values = fetched.values.expect("values");
    assert_eq!(values["points"], json!(7));
    assert_eq!(values["tier"], json!("silver"));
    assert_eq!(values["missing"], json!(null));
    assert_eq!(
        federated
            .fetch("loyalty", "other")
            .await
            .expect("404")
            .values,
        None
    );
    let audit = federated
        .write_back("loyalty", "c 42", "points", json!(70), "admin")
        .await
        .expect("write-back");
    assert_eq!(audit.outcome, WriteOutcome::Applied { rows: 1 });
    assert_eq!(store.lock().expect("store")["loyalty"]["points"], json!(70));
    assert_eq!(
        federated
            .fetch("loyalty", "c 42")
            .await
            .expect("fetch")
            .values
            .expect("values")["points"],
        json!(70)
    );
    assert!(matches!(
        federated.fetch("slow", "1").await,
        Err(FederatedError::Timeout { .. })
    ));
    assert!(matches!(
        federated
            .write_back("slow", "1", "x", json!(1), "admin")
            .await,
        Err(FederatedError::WriteBackUnsupported { .. })
    ));
}
