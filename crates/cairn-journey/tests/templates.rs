//! The shipped templates validate against the shipped catalog and behave as documented for scripted
//! customers: exact messages at exact simulated times.

mod common;

use common::{ends, message, messages, run, template};
use serde_json::json;

const TEMPLATES: &[&str] = &[
    "cart-abandonment",
    "welcome-series",
    "win-back",
    "post-purchase-cross-sell",
    "loyalty-onboarding",
    "renewal-reminder",
];

#[test]
fn every_template_validates_against_the_template_catalog() {
    for name in TEMPLATES {
        let journey = template(name);
        assert_eq!(&*journey.id, *name);
    }
}

#[test]
fn every_template_file_in_the_folder_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(common::repo_root().join("journeys/templates"))
        .expect("templates folder")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".yaml").map(str::to_owned))
        .collect();
    found.sort();
    let mut expected: Vec<String> = TEMPLATES.iter().map(|name| (*name).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn cart_abandonment_buyer_within_the_hour_gets_nothing() {
    let report = run(
        &template("cart-abandonment"),
        json!({}),
        r#"{"event": "Cart Abandoned", "timestamp": "2025-03-03T10:00:00Z"}
{"event": "Order Completed", "timestamp": "2025-03-03T10:40:00Z", "properties": {"total": 30}}"#,
        "2025-03-03T00:00:00Z",
        "2025-03-06T00:00:00Z",
    );
    assert!(messages(&report).is_empty());
    assert_eq!(
        ends(&report),
        [("2025-03-03T10:40:00.000Z".to_owned(), "goal_reached")]
    );
}

#[test]
fn cart_abandonment_non_buyer_who_opens_gets_only_the_email() {
    let report = run(
        &template("cart-abandonment"),
        json!({}),
        r#"{"event": "Cart Abandoned", "timestamp": "2025-03-03T10:00:00Z"}
{"event": "Email Opened", "timestamp": "2025-03-03T18:00:00Z", "properties": {"message_step": "reminder_email"}}"#,
        "2025-03-03T00:00:00Z",
        "2025-03-06T00:00:00Z",
    );
    assert_eq!(
        messages(&report),
        [message(
            "2025-03-03T11:00:00.000Z",
            "reminder_email",
            "email",
            "cart-reminder"
        )]
    );
    assert_eq!(
        ends(&report),
        [("2025-03-04T11:00:00.000Z".to_owned(), "completed")]
    );
}

#[test]
fn cart_abandonment_non_buyer_who_does_not_open_gets_the_sms_next_day() {
    let report = run(
        &template("cart-abandonment"),
        json!({}),
        r#"{"event": "Cart Abandoned", "timestamp": "2025-03-03T10:00:00Z"}"#,
        "2025-03-03T00:00:00Z",
        "2025-03-06T00:00:00Z",
    );
    assert_eq!(
        messages(&report),
        [
            message(
                "2025-03-03T11:00:00.000Z",
                "reminder_email",
                "email",
                "cart-reminder"
            ),
            message(
                "2025-03-04T11:00:00.000Z",
                "reminder_sms",
                "sms",
                "cart-reminder-sms"
            ),
        ]
    );
    assert_eq!(
        ends(&report),
        [("2025-03-04T11:00:00.000Z".to_owned(), "completed")]
    );
}

#[test]
fn cart_abandonment_purchase_after_the_email_stops_the_sms() {
    let report = run(
        &template("cart-abandonment"),
        json!({}),
        r#"{"event": "Cart Abandoned", "timestamp": "2025-03-03T10:00:00Z"}
{"event": "Order Completed", "timestamp": "2025-03-03T20:00:00Z"}"#,
        "2025-03-03T00:00:00Z",
        "2025-03-06T00:00:00Z",
    );
    assert_eq!(messages(&report).len(), 1);
    assert_eq!(
        ends(&report),
        [("2025-03-03T20:00:00.000Z".to_owned(), "goal_reached")]
    );
}

#[test]
fn welcome_series_skips_tips_for_onboarded_customers_and_waits_for_a_weekday_morning() {
    // Signed up Thursday 2025-03-06 09:00 Berlin (08:00 UTC). Two days later is Saturday: the offer
    // waits for Monday 10:00 Berlin (09:00 UTC).
    let script = r#"{"event": "Signed Up", "timestamp": "2025-03-06T08:00:00Z"}"#;
    let onboarded = run(
        &template("welcome-series"),
        json!({"timezone": "Europe/Berlin", "onboarded": true}),
        script,
        "2025-03-06T00:00:00Z",
        "2025-03-20T00:00:00Z",
    );
    assert_eq!(
        messages(&onboarded),
        [
            message(
                "2025-03-06T08:00:00.000Z",
                "welcome_email",
                "email",
                "welcome"
            ),
            message(
                "2025-03-10T09:00:00.000Z",
                "offer_email",
                "email",
                "welcome-offer"
            ),
        ]
    );
    let new_customer = run(
        &template("welcome-series"),
        json!({"timezone": "America/New_York"}),
        script,
        "2025-03-06T00:00:00Z",
        "2025-03-20T00:00:00Z",
    );
    // New York: Saturday 03:00 local -> tips at once, offer Monday 10:00 EDT (14:00 UTC; DST began
    // on 2025-03-09).
    assert_eq!(
        messages(&new_customer),
        [
            message(
                "2025-03-06T08:00:00.000Z",
                "welcome_email",
                "email",
                "welcome"
            ),
            message(
                "2025-03-08T08:00:00.000Z",
                "tips_email",
                "email",
                "welcome-tips"
            ),
            message(
                "2025-03-10T14:00:00.000Z",
                "offer_email",
                "email",
                "welcome-offer"
            ),
        ]
    );
}

#[test]
fn win_back_sends_the_offer_and_a_push_to_non_clickers_unless_held_out() {
    let journey = template("win-back");
    let report = run(
        &journey,
        json!({}),
        "",
        "2025-03-03T09:00:00Z",
        "2025-03-20T00:00:00Z",
    );
    let bucket = cairn_journey::random_split::bucket("prof_test", "win-back", "holdout_split");
    if bucket < 90 {
        assert_eq!(
            messages(&report),
            [
                message(
                    "2025-03-03T09:00:00.000Z",
                    "offer_email",
                    "email",
                    "win-back-offer"
                ),
                message(
                    "2025-03-10T09:00:00.000Z",
                    "offer_push",
                    "push",
                    "win-back-push"
                ),
            ]
        );
    } else {
        assert!(messages(&report).is_empty());
    }
    // A click within the week: no push.
    let clicked = run(
        &journey,
        json!({}),
        r#"{"event": "Email Link Clicked", "after": "2d", "properties": {"message_step": "offer_email"}}"#,
        "2025-03-03T09:00:00Z",
        "2025-03-20T00:00:00Z",
    );
    if bucket < 90 {
        assert_eq!(messages(&clicked).len(), 1);
        assert_eq!(
            ends(&clicked),
            [("2025-03-05T09:00:00.000Z".to_owned(), "completed")]
        );
    }
}

#[test]
fn post_purchase_cross_sell_picks_the_category_email_at_six_pm_local() {
    let report = run(
        &template("post-purchase-cross-sell"),
        json!({"timezone": "Europe/Berlin"}),
        r#"{"event": "Order Completed", "timestamp": "2025-03-03T12:00:00Z", "properties": {"total": 80, "category": "shoes"}}
{"event": "Order Completed", "timestamp": "2025-03-04T12:00:00Z", "properties": {"total": 10, "category": "socks"}}"#,
        "2025-03-03T00:00:00Z",
        "2025-03-10T00:00:00Z",
    );
    // Three days after 13:00 Berlin is 2025-03-06 13:00; 18:00 Berlin = 17:00 UTC. The second order is
    // below the entry filter (and the customer is still enrolled).
    assert_eq!(
        messages(&report),
        [message(
            "2025-03-06T17:00:00.000Z",
            "shoe_care_email",
            "email",
            "cross-sell-shoe-care"
        )]
    );
}

#[test]
fn loyalty_onboarding_updates_points_and_rewards_a_first_order() {
    let report = run(
        &template("loyalty-onboarding"),
        json!({"loyalty_points": 20}),
        r#"{"event": "Loyalty Joined", "timestamp": "2025-03-03T12:00:00Z"}
{"event": "Order Completed", "timestamp": "2025-03-05T12:00:00Z", "properties": {"total": 30}}"#,
        "2025-03-03T00:00:00Z",
        "2025-03-30T00:00:00Z",
    );
    assert_eq!(
        messages(&report),
        [
            message(
                "2025-03-03T12:00:00.000Z",
                "welcome_email",
                "email",
                "loyalty-welcome"
            ),
            message(
                "2025-03-05T12:00:00.000Z",
                "points_push",
                "push",
                "loyalty-points-earned"
            ),
        ]
    );
    assert_eq!(report.profile["loyalty_points"], json!(170));
    assert_eq!(report.profile["loyalty_tier"], json!("bronze"));
    let idle = run(
        &template("loyalty-onboarding"),
        json!({}),
        r#"{"event": "Loyalty Joined", "timestamp": "2025-03-03T12:00:00Z"}"#,
        "2025-03-03T00:00:00Z",
        "2025-03-30T00:00:00Z",
    );
    assert_eq!(
        messages(&idle)[1],
        message(
            "2025-03-17T12:00:00.000Z",
            "nudge_email",
            "email",
            "loyalty-nudge"
        )
    );
    assert_eq!(idle.profile["loyalty_points"], json!(100));
}

#[test]
fn renewal_reminder_emails_three_days_before_and_texts_manual_renewers() {
    // Renewal 2025-11-05 in New York: 3 days before = 2025-11-02 09:00 EST (DST ended that night,
    // 14:00 UTC); the day before = 2025-11-04 09:00 EST (14:00 UTC).
    let manual = run(
        &template("renewal-reminder"),
        json!({"renewal_date": "2025-11-05", "auto_renew": false}),
        "",
        "2025-10-20T00:00:00Z",
        "2025-11-10T00:00:00Z",
    );
    assert_eq!(
        messages(&manual),
        [
            message(
                "2025-11-02T14:00:00.000Z",
                "reminder_email",
                "email",
                "renewal-reminder"
            ),
            message(
                "2025-11-04T14:00:00.000Z",
                "last_call_sms",
                "sms",
                "renewal-last-call"
            ),
        ]
    );
    let automatic = run(
        &template("renewal-reminder"),
        json!({"renewal_date": "2025-11-05", "auto_renew": true, "timezone": "Europe/Berlin"}),
        "",
        "2025-10-20T00:00:00Z",
        "2025-11-10T00:00:00Z",
    );
    // Berlin: 09:00 CET = 08:00 UTC.
    assert_eq!(
        messages(&automatic),
        [message(
            "2025-11-02T08:00:00.000Z",
            "reminder_email",
            "email",
            "renewal-reminder"
        )]
    );
    let without_date = run(
        &template("renewal-reminder"),
        json!({}),
        "",
        "2025-10-20T00:00:00Z",
        "2025-11-10T00:00:00Z",
    );
    assert!(messages(&without_date).is_empty());
    assert_eq!(
        ends(&without_date),
        [("2025-10-20T00:00:00.000Z".to_owned(), "completed")]
    );
}
