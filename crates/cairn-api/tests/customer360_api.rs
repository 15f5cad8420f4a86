//! Customer 360 over HTTP against the real engine and store: source records in and out, the 360
//! view, lookups, explanations, bad input (each with its stable code, nothing stored), workspace
//! isolation, and federated attributes fetched from the real PostgreSQL (`scripts/services.sh`).

mod common;

use cairn_api::customer360::FederatedByWorkspace;
use cairn_engine::customer360::IdentityConfigs;
use cairn_engine::EngineOptions;
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::{DocumentFormat, Ruleset};
use cairn_model::WorkspaceId;
use common::{assert_code, get, manual_time, post, send, start_with, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const RULES: &str = include_str!("../../../tests/identity/crm-shop.toml");
const POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

/// Identity rules for `acme` only; `globex` keeps exact identity.
fn options() -> EngineOptions {
    let ruleset = Ruleset::parse(RULES, DocumentFormat::Toml, "crm-shop.toml").expect("rules");
    let compiled = Arc::new(CompiledRuleset::new(ruleset).expect("compiles"));
    EngineOptions {
        identity: IdentityConfigs::new(BTreeMap::from([(WorkspaceId::new("acme"), compiled)])),
        ..manual_time()
    }
}

async fn put_record(
    server: &Server,
    token: &str,
    source: &str,
    id: &str,
    body: &str,
) -> (StatusCode, Value) {
    send(
        server,
        Method::PUT,
        &format!("/api/v1/sources/{source}/records/{id}"),
        token,
        Some("application/json"),
        body.to_string(),
    )
    .await
}

async fn delete_record(
    server: &Server,
    token: &str,
    source: &str,
    id: &str,
) -> (StatusCode, Value) {
    send(
        server,
        Method::DELETE,
        &format!("/api/v1/sources/{source}/records/{id}"),
        token,
        None,
        String::new(),
    )
    .await
}

#[tokio::test]
async fn source_records_resolve_into_one_profile_with_a_360_view_lookups_and_explain() {
    let server = start_with(options(), |state| state).await;
    let (status, crm) = put_record(
        &server,
        "tok_acme",
        "crm",
        "c-1",
        r#"{"first": "Jonathan", "last": "Smith", "email": "Jon.Smith@Example.com",
            "mobile": "07911 123456", "tier": "gold", "newsletter": "yes"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{crm}");
    let (status, shop) = put_record(
        &server,
        "tok_acme",
        "shop",
        "s-9",
        r#"{"given": "Jonathon", "family": "Smyth", "phone": "+44 7911 123456"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shop}");
    assert_eq!(shop["profile_id"], crm["profile_id"], "fuzzy name + phone");
    assert_eq!(shop["unified_id"], crm["unified_id"]);
    let profile_id = crm["profile_id"].as_str().expect("id").to_string();

    let (status, found) = get(
        &server,
        "/api/v1/sources/shop/records/s-9/profile",
        "tok_acme",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["profile_id"], json!(profile_id));
    assert_eq!(found["unified_id"], crm["unified_id"]);

    // An event with the record's email reaches the same person.
    let (status, _) = post(
        &server,
        "/v1/identify",
        "wk_acme",
        json!({"userId": "u-77", "traits": {"email": "jon.smith@example.com", "plan": "pro"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, view) = get(
        &server,
        &format!("/api/v1/profiles/{profile_id}/360"),
        "tok_acme",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["identity_configured"], json!(true));
    let records = view["source_records"].as_array().expect("records");
    // The identify's traits are a record of the `web` source, on the same person.
    assert_eq!(records.len(), 3, "{view:#}");
    let web = records
        .iter()
        .find(|record| record["source"] == "web")
        .expect("web record");
    assert_eq!(web["id"], "u-77");
    assert_eq!(web["fields"]["email"], "jon.smith@example.com");
    let shop_record = records
        .iter()
        .find(|record| record["source"] == "shop")
        .expect("shop record");
    assert_eq!(shop_record["id"], "s-9");
    assert_eq!(shop_record["fields"]["given"], "Jonathon", "as received");
    assert_eq!(
        view["reconciled"]["fields"]["first_name"]["value"],
        "Jonathan"
    );
    assert_eq!(
        view["reconciled"]["fields"]["first_name"]["provenance"]["source"],
        "crm"
    );
    assert_eq!(view["traits"]["firstName"], "Jonathan");
    assert_eq!(
        view["traits"]["plan"], "pro",
        "event traits beside source ones"
    );
    assert_eq!(
        view["consents"]["sources"]["email"]["value"], "true",
        "{view:#}"
    );
    let identifiers = view["identifiers"].to_string();
    assert!(
        identifiers.contains("u-77") && identifiers.contains("jon.smith@example.com"),
        "{identifiers}"
    );
    assert_eq!(view["events"].as_array().map(Vec::len), Some(1));
    assert!(view["journeys"]["enrollments"].is_array(), "{view:#}");
    assert_eq!(view["federated"], json!([]));
    // The profile id found from the event's user id is the same person's 360.
    let (_, by_user) = get(&server, "/api/v1/profiles/lookup?user_id=u-77", "tok_acme").await;
    let (_, again) = get(
        &server,
        &format!(
            "/api/v1/profiles/{}/360",
            by_user["id"].as_str().expect("id")
        ),
        "tok_acme",
    )
    .await;
    assert_eq!(again["source_records"].as_array().map(Vec::len), Some(3));

    let (status, explanation) = get(
        &server,
        "/api/v1/identity/explain?a=crm:c-1&b=shop:s-9",
        "tok_acme",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{explanation}");
    assert_eq!(explanation["same_profile"], json!(true));
    assert_eq!(explanation["path"][0]["rule"], "first name and phone");

    // Removing the shop record takes it out of the view; it is then unknown.
    let (status, _) = delete_record(&server, "tok_acme", "shop", "s-9").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(
        &server,
        "/api/v1/sources/shop/records/s-9/profile",
        "tok_acme",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "record_not_found",
        "removed",
    );
    let (status, body) = delete_record(&server, "tok_acme", "shop", "s-9").await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "record_not_found",
        "twice",
    );
    let (_, view) = get(
        &server,
        &format!("/api/v1/profiles/{profile_id}/360"),
        "tok_acme",
    )
    .await;
    assert_eq!(
        view["source_records"].as_array().map(Vec::len),
        Some(2),
        "crm and web remain"
    );
}

#[tokio::test]
async fn deleting_a_record_takes_the_attributes_only_it_gave_off_the_profile() {
    let server = start_with(options(), |state| state).await;
    let (status, crm) = put_record(
        &server,
        "tok_acme",
        "crm",
        "c-1",
        r#"{"first": "Jonathan", "last": "Smith", "mobile": "07911 123456", "tier": "gold",
            "login": "crm-jon"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{crm}");
    let (status, shop) = put_record(
        &server,
        "tok_acme",
        "shop",
        "s-9",
        r#"{"given": "Jonathon", "family": "Smyth", "phone": "+44 7911 123456"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shop}");
    assert_eq!(shop["profile_id"], crm["profile_id"], "fuzzy name + phone");
    let view_path = format!(
        "/api/v1/profiles/{}/360",
        crm["profile_id"].as_str().expect("id")
    );
    let (_, view) = get(&server, &view_path, "tok_acme").await;
    assert_eq!(view["traits"]["tier"], "gold", "{view:#}");
    assert_eq!(view["traits"]["firstName"], "Jonathan");

    let (status, removed) = delete_record(&server, "tok_acme", "crm", "c-1").await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    let (status, view) = get(&server, &view_path, "tok_acme").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["source_records"].as_array().map(Vec::len), Some(1));
    assert!(view["traits"].get("tier").is_none(), "{view:#}");
    assert_eq!(view["traits"]["firstName"], "Jonathon", "the shop's now");
    assert_eq!(view["traits"]["lastName"], "Smyth");
    assert_eq!(
        view["reconciled"]["fields"]["first_name"]["provenance"]["source"],
        "shop"
    );
    // The record's identifiers stay on the profile (events may have used them).
    let (status, by_login) = get(
        &server,
        "/api/v1/profiles/lookup?user_id=crm-jon",
        "tok_acme",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{by_login}");
    assert_eq!(by_login["id"], crm["profile_id"]);
}

#[tokio::test]
async fn bad_source_records_are_refused_with_stable_codes_and_nothing_is_stored() {
    let server = start_with(options(), |state| state).await;
    let cases: [(&str, &str, &str, StatusCode, &str); 6] = [
        (
            "erp",
            "e-1",
            r#"{"name": "x"}"#,
            StatusCode::NOT_FOUND,
            "source_not_found",
        ),
        (
            "crm",
            "c-1",
            r#"{"first": "Ann", "shoe_size": 38}"#,
            StatusCode::BAD_REQUEST,
            "invalid_record",
        ),
        (
            "crm",
            "c-1",
            r#"["Ann", "Lee"]"#,
            StatusCode::BAD_REQUEST,
            "invalid_record",
        ),
        (
            "crm",
            "c-1",
            r#""Ann""#,
            StatusCode::BAD_REQUEST,
            "invalid_record",
        ),
        (
            "crm",
            "c-1",
            r#"{"contact_id": "c-2", "first": "Ann"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_record",
        ),
        (
            "crm",
            "c-1",
            r#"{"first": "#,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
    ];
    for (source, id, body, expected, code) in cases {
        let (status, answer) = put_record(&server, "tok_acme", source, id, body).await;
        assert_code(status, &answer, expected, code, body);
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, body) = get(
        &server,
        "/api/v1/sources/crm/records/c-1/profile",
        "tok_acme",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "record_not_found",
        "nothing stored",
    );
    let (status, body) = get(
        &server,
        "/api/v1/sources/erp/records/c-1/profile",
        "tok_acme",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "source_not_found",
        "lookup",
    );
    let (status, body) = get(
        &server,
        "/api/v1/identity/explain?a=crm:c-1&b=shop:s-1",
        "tok_acme",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "record_not_found",
        "explain",
    );
    let (status, body) = get(
        &server,
        "/api/v1/identity/explain?a=crm-c-1&b=shop:s-1",
        "tok_acme",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "malformed",
    );
    let (status, body) = get(&server, "/api/v1/identity/explain?a=crm:c-1", "tok_acme").await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "missing b",
    );
    let (status, body) = put_record(&server, "", "crm", "c-1", "{}").await;
    assert_code(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "missing_api_token",
        "no token",
    );
}

#[tokio::test]
async fn workspaces_do_not_see_each_others_source_records() {
    let server = start_with(options(), |state| state).await;
    let (status, acme) = put_record(
        &server,
        "tok_acme",
        "crm",
        "c-1",
        r#"{"first": "Ann", "email": "ann@x.org"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{acme}");
    let profile_id = acme["profile_id"].as_str().expect("id");
    // globex has no identity rules: its source routes say so, and acme's profile is not its own.
    let (status, body) =
        put_record(&server, "tok_globex", "crm", "c-1", r#"{"first": "Ann"}"#).await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "identity_not_configured",
        "put",
    );
    let (status, body) = get(
        &server,
        "/api/v1/sources/crm/records/c-1/profile",
        "tok_globex",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "identity_not_configured",
        "lookup",
    );
    let (status, body) = get(
        &server,
        &format!("/api/v1/profiles/{profile_id}/360"),
        "tok_globex",
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "profile_not_found",
        "360",
    );
    let (status, body) = delete_record(&server, "tok_globex", "crm", "c-1").await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "identity_not_configured",
        "delete",
    );
    // A globex profile made by events has a 360 view without source records.
    post(
        &server,
        "/v1/track",
        "wk_globex",
        json!({"userId": "g1", "event": "Seen"}),
    )
    .await;
    let (_, profile) = get(&server, "/api/v1/profiles/lookup?user_id=g1", "tok_globex").await;
    let (status, view) = get(
        &server,
        &format!(
            "/api/v1/profiles/{}/360",
            profile["id"].as_str().expect("id")
        ),
        "tok_globex",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["identity_configured"], json!(false));
    assert_eq!(view["source_records"], json!([]));
}

/// A fresh loyalty table (each test its own: nextest runs tests in parallel processes).
async fn loyalty_table(table: &str) {
    let (client, connection) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is running (scripts/services.sh starts it)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "drop table if exists {table};
             create table {table} (customer_id text primary key, points int, tier text);
             insert into {table} values ('s-9', 120, 'gold');"
        ))
        .await
        .expect("create table");
}

/// `acme`'s federated attributes: `loyalty` from the real PostgreSQL (a fresh `table`), and
/// `tickets` from a source that is down.
async fn federated_acme(table: &str) -> FederatedByWorkspace {
    loyalty_table(table).await;
    let attributes = format!(
        r#"
[[attribute]]
name = "loyalty"
source = "shop"
timeout_ms = 2000
cache_ttl_seconds = 300
[attribute.connector]
kind = "postgres"
url = "{POSTGRES}"
query = "select points, tier from {table} where customer_id = $1"

[[attribute]]
name = "tickets"
source = "shop"
timeout_ms = 500
[attribute.connector]
kind = "postgres"
url = "host=127.0.0.1 port=1 user=postgres dbname=test connect_timeout=1"
query = "select count(*)::int as open from tickets where customer_id = $1"
"#
    );
    let config = cairn_federated::FederatedConfig::parse(&attributes, false, "attributes.toml")
        .expect("attributes");
    let service =
        cairn_federated::FederatedAttributes::new(config, Arc::new(cairn_federated::SystemClock))
            .expect("connectors");
    BTreeMap::from([(WorkspaceId::new("acme"), Arc::new(service))])
}

/// A server with `acme`'s federated attributes (loyalty in `table`) and Jo's shop record `s-9`;
/// answers the record's placement.
async fn jo_in_the_shop(table: &str) -> (Server, Value) {
    let federated = federated_acme(table).await;
    let server = start_with(options(), move |state| state.with_federated(federated)).await;
    let (status, shop) = put_record(
        &server,
        "tok_acme",
        "shop",
        "s-9",
        r#"{"given": "Jo", "mail": "jo@x.org"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shop}");
    (server, shop)
}

#[tokio::test]
async fn the_360_view_fetches_federated_attributes_from_postgres_with_their_source() {
    let (server, shop) = jo_in_the_shop("api360_loyalty").await;
    let path = format!(
        "/api/v1/profiles/{}/360",
        shop["profile_id"].as_str().expect("id")
    );
    let (status, view) = get(&server, &path, "tok_acme").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let federated = view["federated"].as_array().expect("federated");
    assert_eq!(federated.len(), 2, "{view:#}");
    let loyalty = federated
        .iter()
        .find(|f| f["attribute"] == "loyalty")
        .expect("loyalty");
    assert_eq!(loyalty["source"], "shop");
    assert_eq!(loyalty["source_id"], "s-9");
    assert_eq!(loyalty["origin"], "live", "{loyalty}");
    assert_eq!(loyalty["values"]["points"], 120);
    assert_eq!(loyalty["values"]["tier"], "gold");
    let tickets = federated
        .iter()
        .find(|f| f["attribute"] == "tickets")
        .expect("tickets");
    assert_eq!(
        tickets["error"]["code"], "federated_source_failed",
        "{tickets}"
    );
    // A second view is served from the cache.
    let (_, view) = get(&server, &path, "tok_acme").await;
    let loyalty = view["federated"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["attribute"] == "loyalty")
        .cloned()
        .expect("loyalty");
    assert_eq!(loyalty["origin"], "cache", "{loyalty}");
}

#[tokio::test]
async fn an_unmerge_keeps_two_records_apart_and_the_rules_can_be_read() {
    let server = start_with(options(), |state| state).await;
    put_record(
        &server,
        "tok_acme",
        "crm",
        "c-1",
        r#"{"first": "Ann", "mobile": "07911 123456"}"#,
    )
    .await;
    let (_, shop) = put_record(
        &server,
        "tok_acme",
        "shop",
        "s-1",
        r#"{"given": "Anne", "phone": "07911 123456"}"#,
    )
    .await;
    let (_, before) = get(
        &server,
        "/api/v1/identity/explain?a=crm:c-1&b=shop:s-1",
        "tok_acme",
    )
    .await;
    assert_eq!(before["same_profile"], json!(true), "{before}");
    let (status, answer) = common::post_json(
        &server,
        "/api/v1/identity/unmerge",
        "tok_acme",
        json!({"a": "crm:c-1", "b": "shop:s-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["split"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    let (_, after) = get(
        &server,
        "/api/v1/identity/explain?a=crm:c-1&b=shop:s-1",
        "tok_acme",
    )
    .await;
    assert_eq!(after["same_profile"], json!(false), "{after}");
    assert_eq!(after["never_match"], json!(true));
    // The resolver splits the cluster and the engine the profile: the older record (the CRM's)
    // keeps it, the shop record gets a profile of its own, and each 360 view shows its record.
    let (_, placed) = get(
        &server,
        "/api/v1/sources/shop/records/s-1/profile",
        "tok_acme",
    )
    .await;
    assert_ne!(placed["profile_id"], shop["profile_id"], "{placed}");
    assert_ne!(placed["unified_id"], shop["unified_id"]);
    let (_, kept) = get(
        &server,
        "/api/v1/sources/crm/records/c-1/profile",
        "tok_acme",
    )
    .await;
    assert_eq!(kept["profile_id"], shop["profile_id"], "{kept}");
    assert_eq!(
        answer["profiles"][1]["profile_id"], placed["profile_id"],
        "{answer}"
    );
    for (profile, record, first_name) in [(&kept, "c-1", "Ann"), (&placed, "s-1", "Anne")] {
        let id = profile["profile_id"].as_str().expect("id");
        let (status, view) = get(&server, &format!("/api/v1/profiles/{id}/360"), "tok_acme").await;
        assert_eq!(status, StatusCode::OK, "{view}");
        let records: Vec<&str> = view["source_records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|record| record["id"].as_str())
            .collect();
        assert_eq!(records, [record], "{view}");
        assert_eq!(view["traits"]["firstName"], first_name, "{view}");
        assert_eq!(
            view["unified_ids"],
            json!([profile["unified_id"]]),
            "{view}"
        );
    }
    let (status, body) = common::post_json(
        &server,
        "/api/v1/identity/unmerge",
        "tok_acme",
        json!({"a": "crm:c-1", "b": "shop:nobody"}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "record_not_found",
        "unknown record",
    );
    let (status, body) = common::post_json(
        &server,
        "/api/v1/identity/unmerge",
        "tok_acme",
        json!({"a": "crm:c-1"}),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        "missing b",
    );

    let (status, rules) = get(&server, "/api/v1/identity/rules", "tok_acme").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rules["rule"][0]["name"], "first name and email", "{rules}");
    let (status, body) = get(&server, "/api/v1/identity/rules", "tok_globex").await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "identity_not_configured",
        "globex",
    );
}

/// Saves an email template draft whose subject is fixed and whose text (and HTML paragraph) is `text`.
async fn save_text_template(server: &Server, id: &str, text: &str) -> (StatusCode, Value) {
    let body = json!({"id": id, "channel": "email", "default_locale": "en",
        "variants": {"en": {"subject": "Your points", "html": format!("<p>{text}</p>"), "text": text}}});
    send(
        server,
        Method::PUT,
        &format!("/api/v1/templates/{id}"),
        "tok_acme",
        Some("application/json"),
        body.to_string(),
    )
    .await
}

async fn preview_for(server: &Server, profile: &str, id: &str) -> (StatusCode, Value) {
    send(
        server,
        Method::POST,
        &format!("/api/v1/templates/{id}/preview"),
        "tok_acme",
        Some("application/json"),
        json!({"profile_id": profile}).to_string(),
    )
    .await
}

#[tokio::test]
async fn templates_render_federated_attributes_and_unknown_sets_are_refused_at_publish() {
    let (server, shop) = jo_in_the_shop("api360_template_loyalty").await;
    let profile = shop["profile_id"].as_str().expect("id").to_string();
    let (status, saved) = save_text_template(
        &server,
        "points",
        "{{ federated.loyalty.points }} points, tier {{ federated.loyalty.tier }}",
    )
    .await;
    assert_eq!(
        (status, saved["errors"].clone()),
        (StatusCode::OK, json!([])),
        "{saved}"
    );
    let (status, body) = preview_for(&server, &profile, "points").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rendered"]["text"], "120 points, tier gold", "{body}");

    // A misspelled attribute set is an error when the draft is saved, not an empty string later.
    let (status, saved) =
        save_text_template(&server, "typo", "{{ federated.loyalti.points }}").await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let errors = saved["errors"].to_string();
    assert!(errors.contains("federated.loyalti.points"), "{saved}");

    // A source that is down (policy `fail`): the preview says so with the stable code.
    let (status, saved) = save_text_template(
        &server,
        "tickets",
        "{{ federated.tickets.open }} open tickets",
    )
    .await;
    assert_eq!(
        (status, saved["errors"].clone()),
        (StatusCode::OK, json!([])),
        "{saved}"
    );
    let (status, body) = preview_for(&server, &profile, "tickets").await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "federated_source_failed",
        "the tickets source is down",
    );
}

/// POSTs a proposed ruleset to the dry run.
async fn preview_rules(
    server: &Server,
    query: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    send(
        server,
        Method::POST,
        &format!("/api/v1/identity/rules/preview{query}"),
        token,
        Some(content_type),
        body,
    )
    .await
}

#[tokio::test]
async fn a_rule_change_preview_lists_merges_and_splits_and_applies_nothing() {
    let server = start_with(options(), |state| state).await;
    let records = [
        (
            "crm",
            "c-1",
            r#"{"first": "Jonathan", "mobile": "07911 123456"}"#,
        ),
        (
            "shop",
            "s-9",
            r#"{"given": "Jonathon", "phone": "+44 7911 123456"}"#,
        ),
        (
            "crm",
            "c-3",
            r#"{"first": "Robert", "email": "bob@example.com"}"#,
        ),
        (
            "shop",
            "s-3",
            r#"{"given": "Bob", "mail": "Bob@Example.com"}"#,
        ),
        (
            "crm",
            "c-4",
            r#"{"first": "Zoe", "email": "zoe@example.com"}"#,
        ),
    ];
    let mut unified = BTreeMap::new();
    for (source, id, body) in records {
        let (status, placed) = put_record(&server, "tok_acme", source, id, body).await;
        assert_eq!(status, StatusCode::OK, "{placed}");
        unified.insert(format!("{source}:{id}"), placed["unified_id"].clone());
    }
    assert_eq!(
        unified["crm:c-1"], unified["shop:s-9"],
        "fuzzy name + phone"
    );
    assert_ne!(unified["crm:c-3"], unified["shop:s-3"], "Robert is not Bob");

    // Proposed: the email alone is enough, and the phone rule goes.
    let head = RULES.split("[[rule]]").next().expect("sources");
    let proposed = format!(
        "{head}[[rule]]\nname = \"email\"\ncriteria = [{{ field = \"email\", method = \"exact_normalized\" }}]\n"
    );
    let (status, preview) = preview_rules(
        &server,
        "?samples=1",
        "tok_acme",
        "application/toml",
        proposed.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["records"], 5);
    assert_eq!(preview["profiles_before"], 4);
    assert_eq!(preview["profiles_after"], 4);
    assert_eq!(preview["unchanged_profiles"], 1, "zoe: {preview}");
    let merges = preview["merges"].as_array().expect("merges");
    assert_eq!(merges.len(), 1, "{preview}");
    let mut merged: Vec<Value> = merges[0]["before"].as_array().expect("before").clone();
    merged.sort_by_key(|id| id.to_string());
    let mut expected = vec![unified["crm:c-3"].clone(), unified["shop:s-3"].clone()];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(merged, expected);
    assert_eq!(merges[0]["records"], 2);
    assert_eq!(
        merges[0]["sample_records"].as_array().map(Vec::len),
        Some(1)
    );
    let splits = preview["splits"].as_array().expect("splits");
    assert_eq!(splits.len(), 1, "{preview}");
    assert_eq!(splits[0]["before"], json!([unified["crm:c-1"]]));
    assert_eq!(splits[0]["after"].as_array().map(Vec::len), Some(2));
    assert_eq!(preview["unmapped"], json!([]));

    // The same in JSON, and a source the proposal drops: its records are reported, not lost.
    let parsed = Ruleset::parse(&proposed, DocumentFormat::Toml, "proposed").expect("rules");
    let mut json_rules = serde_json::to_value(parsed).expect("json");
    json_rules["source"]
        .as_array_mut()
        .expect("sources")
        .retain(|source| source["name"] != "shop");
    let (status, preview) = preview_rules(
        &server,
        "",
        "tok_acme",
        "application/json",
        json_rules.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let unmapped: Vec<&str> = preview["unmapped"]
        .as_array()
        .expect("unmapped")
        .iter()
        .filter_map(|record| record["id"].as_str())
        .collect();
    assert_eq!(unmapped, ["s-9", "s-3"]);

    // Nothing was applied.
    let (_, found) = get(
        &server,
        "/api/v1/sources/shop/records/s-9/profile",
        "tok_acme",
    )
    .await;
    assert_eq!(found["unified_id"], unified["crm:c-1"]);
    let (_, rules) = get(&server, "/api/v1/identity/rules", "tok_acme").await;
    assert_eq!(rules["rule"][1]["name"], "first name and phone");

    // Bad input: each with its code.
    let (status, body) = preview_rules(
        &server,
        "",
        "tok_acme",
        "application/toml",
        "[[rule]\nname = 1".into(),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_config",
        "bad TOML",
    );
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("line")),
        "{body}"
    );
    let (status, body) =
        preview_rules(&server, "", "tok_acme", "image/png", proposed.clone()).await;
    assert_code(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/toml",
    );
    let (status, body) = preview_rules(
        &server,
        "?samples=1000",
        "tok_acme",
        "application/toml",
        proposed.clone(),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "samples",
    );
    let (status, body) =
        preview_rules(&server, "", "tok_globex", "application/toml", proposed).await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "identity_not_configured",
        "globex",
    );
}

/// PUTs a ruleset to the workspace (applied through the log).
async fn put_rules(
    server: &Server,
    query: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    send(
        server,
        Method::PUT,
        &format!("/api/v1/identity/rules{query}"),
        token,
        Some(content_type),
        body,
    )
    .await
}

#[tokio::test]
async fn a_rule_change_over_the_api_re_resolves_the_records_onto_profiles_and_bad_rules_change_nothing(
) {
    let server = start_with(options(), |state| state).await;
    let records = [
        (
            "crm",
            "c-1",
            r#"{"first": "Jonathan", "mobile": "07911 123456", "login": "crm-jon"}"#,
        ),
        (
            "shop",
            "s-9",
            r#"{"given": "Jonathon", "phone": "+44 7911 123456", "account": "shop-jon"}"#,
        ),
        (
            "crm",
            "c-3",
            r#"{"first": "Robert", "email": "bob@example.com"}"#,
        ),
        (
            "shop",
            "s-3",
            r#"{"given": "Bob", "mail": "Bob@Example.com"}"#,
        ),
    ];
    let mut profiles = BTreeMap::new();
    for (source, id, body) in records {
        let (status, placed) = put_record(&server, "tok_acme", source, id, body).await;
        assert_eq!(status, StatusCode::OK, "{placed}");
        profiles.insert(format!("{source}:{id}"), placed["profile_id"].clone());
    }
    assert_eq!(profiles["crm:c-1"], profiles["shop:s-9"]);
    assert_ne!(profiles["crm:c-3"], profiles["shop:s-3"]);
    let head = RULES.split("[[rule]]").next().expect("sources");
    let proposed = format!(
        "{head}[[rule]]\nname = \"email\"\ncriteria = [{{ field = \"email\", method = \"exact_normalized\" }}]\n"
    );

    // Bad input first: each with its code, and nothing applied.
    let (status, body) = put_rules(
        &server,
        "",
        "tok_acme",
        "application/toml",
        "[[rule]\nname = 1".into(),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_config",
        "bad TOML",
    );
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("line")),
        "{body}"
    );
    let (status, body) = put_rules(
        &server,
        "",
        "tok_acme",
        "application/toml",
        format!("{head}[[rule]]\nname = \"email\"\ncriteria = [{{ field = \"email\", method = \"soundex\" }}]\n"),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_config",
        "unknown method",
    );
    let (status, body) = put_rules(&server, "", "tok_acme", "image/png", proposed.clone()).await;
    assert_code(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "png",
    );
    let (status, body) = put_rules(
        &server,
        "?samples=101",
        "tok_acme",
        "application/toml",
        proposed.clone(),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "samples",
    );
    let (status, body) = put_rules(
        &server,
        "",
        "tok_globex",
        "application/toml",
        proposed.clone(),
    )
    .await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "identity_not_configured",
        "globex",
    );
    let (_, rules) = get(&server, "/api/v1/identity/rules", "tok_acme").await;
    assert_eq!(
        rules["rule"][1]["name"], "first name and phone",
        "unchanged"
    );

    // The change: answered with the preview's summary and the engine's counts.
    let (status, summary) = put_rules(
        &server,
        "?samples=1",
        "tok_acme",
        "application/toml",
        proposed.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["records"], 4, "{summary}");
    assert_eq!(
        summary["merges"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert_eq!(
        summary["splits"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert_eq!(
        summary["merges"][0]["sample_records"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(summary["profiles_created"], 1, "{summary}");
    assert_eq!(summary["profiles_merged"], 1, "{summary}");
    assert_eq!(summary["unmapped"], json!([]));
    let (_, rules) = get(&server, "/api/v1/identity/rules", "tok_acme").await;
    assert_eq!(rules["rule"][0]["name"], "email", "{rules}");
    assert_eq!(rules["rule"].as_array().map(Vec::len), Some(1));
    let placed = |source: &'static str, id: &'static str| {
        let server = &server;
        async move {
            let (status, found) = get(
                server,
                &format!("/api/v1/sources/{source}/records/{id}/profile"),
                "tok_acme",
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{found}");
            found["profile_id"].clone()
        }
    };
    assert_eq!(placed("crm", "c-1").await, profiles["crm:c-1"]);
    assert_ne!(placed("shop", "s-9").await, profiles["crm:c-1"], "split");
    assert_eq!(placed("crm", "c-3").await, profiles["crm:c-3"]);
    assert_eq!(placed("shop", "s-3").await, profiles["crm:c-3"], "merged");
    // The preview of the same rules now changes nothing.
    let (status, preview) =
        preview_rules(&server, "", "tok_acme", "application/toml", proposed).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["merges"], json!([]), "{preview}");
    assert_eq!(preview["splits"], json!([]), "{preview}");
    // The JSON shape of GET is accepted as it is.
    let (status, summary) = put_rules(
        &server,
        "",
        "tok_acme",
        "application/json",
        rules.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["profiles_created"], 0, "{summary}");
}

#[tokio::test]
async fn a_rule_change_shows_its_progress_over_the_api_while_it_runs() {
    let gate = cairn_engine::Gate::default();
    let server = start_with(
        EngineOptions {
            identity_gate: Some(gate.clone()),
            ..options()
        },
        |state| state,
    )
    .await;
    let (status, idle) = get(&server, "/api/v1/identity/rules/progress", "tok_acme").await;
    assert_eq!(status, StatusCode::OK, "{idle}");
    assert_eq!(
        idle,
        json!({"run": 0, "cause": null, "phase": "idle", "records_done": 0,
               "records_total": 0, "started_at": null})
    );
    for (source, id, body) in [
        (
            "crm",
            "c-1",
            r#"{"first": "Jonathan", "mobile": "07911 123456"}"#,
        ),
        (
            "shop",
            "s-9",
            r#"{"given": "Jonathon", "phone": "+44 7911 123456"}"#,
        ),
        (
            "crm",
            "c-3",
            r#"{"first": "Robert", "email": "bob@example.com"}"#,
        ),
    ] {
        let (status, placed) = put_record(&server, "tok_acme", source, id, body).await;
        assert_eq!(status, StatusCode::OK, "{placed}");
    }
    let head = RULES.split("[[rule]]").next().expect("sources");
    let proposed = format!(
        "{head}[[rule]]\nname = \"email\"\ncriteria = [{{ field = \"email\", method = \"exact_normalized\" }}]\n"
    );

    // The applier holds after the first record; the PUT waits for the outcome meanwhile.
    gate.close();
    let base = server.base.clone();
    let change = tokio::spawn(async move {
        let response = common::client()
            .put(format!("{base}/api/v1/identity/rules"))
            .bearer_auth("tok_acme")
            .header("content-type", "application/toml")
            .body(proposed)
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json::<Value>().await.expect("json"),
        )
    });
    let held = {
        let gate = gate.clone();
        tokio::task::spawn_blocking(move || gate.wait_held(std::time::Duration::from_secs(10)))
            .await
            .expect("waited")
    };
    let running = get(&server, "/api/v1/identity/rules/progress", "tok_acme").await;
    gate.open();
    assert!(held, "the rule change reached its breakpoint");
    let (status, running) = running;
    assert_eq!(status, StatusCode::OK, "{running}");
    assert_eq!(running["phase"], "resolving", "{running}");
    assert_eq!(running["cause"], "api", "{running}");
    assert_eq!(running["run"], 1, "{running}");
    assert_eq!(running["records_total"], 3, "{running}");
    let done = running["records_done"].as_u64().expect("count");
    assert!(done > 0 && done < 3, "{running}");
    assert_eq!(running["started_at"], json!(server.now_text()), "{running}");

    // The PUT's answer is the summary, as before; then the figure reads finished.
    let (status, summary) = change.await.expect("answered");
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["records"], 3, "{summary}");
    assert_eq!(
        summary["splits"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    let (status, finished) = get(&server, "/api/v1/identity/rules/progress", "tok_acme").await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    assert_eq!(
        finished,
        json!({"run": 1, "cause": "api", "phase": "finished", "records_done": 3,
               "records_total": 3, "started_at": server.now_text()})
    );
    let (status, body) = get(&server, "/api/v1/identity/rules/progress", "tok_globex").await;
    assert_code(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "identity_not_configured",
        "globex",
    );
}
