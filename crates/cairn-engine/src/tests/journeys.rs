//! Journeys through the engine: commands and events in the log, a manual clock moved by hand, ticks
//! appended by the test, and what the outbox, traces and counters show.

use crate::journeys::{Command, ProfileRef};
use crate::{Clock, Engine, EngineOptions, ManualClock};
use cairn_core::segment::{normalize_object, Envelope};
use cairn_journey::{parse_journey, Format};
use cairn_model::{Identifier, IdentifierKind, WorkspaceId};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) const CART: &str = include_str!("../../../../journeys/templates/cart-abandonment.yaml");

pub(super) struct World {
    _dir: tempfile::TempDir,
    pub(super) engine: Engine,
    pub(super) clock: Arc<ManualClock>,
}

pub(super) fn ws() -> WorkspaceId {
    WorkspaceId::new("shop")
}

pub(super) fn options() -> EngineOptions {
    EngineOptions {
        tick_interval: None,
        ..EngineOptions::default()
    }
}

impl World {
    pub(super) fn start() -> World {
        World::start_with(options())
    }

    /// A world whose engine runs with `options` (manual time unless they say otherwise).
    pub(super) fn start_with(options: EngineOptions) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
                .single()
                .expect("time"),
        ));
        let engine = Engine::start(
            options,
            cairn_store_sqlite::open(dir.path()).expect("store"),
            clock.clone(),
        )
        .expect("engine");
        World {
            _dir: dir,
            engine,
            clock,
        }
    }

    fn restart(self) -> World {
        self.restart_with(options())
    }

    /// Stops the engine (with its last checkpoint) and starts it again on the same store.
    pub(super) fn restart_with(self, options: EngineOptions) -> World {
        self.restart_after(options, |_| {})
    }

    /// Stops the engine, lets `change` alter the stopped store's directory, and starts it again.
    fn restart_after(self, options: EngineOptions, change: impl FnOnce(&std::path::Path)) -> World {
        let World {
            _dir,
            engine,
            clock,
        } = self;
        drop(engine);
        change(_dir.path());
        let engine = Engine::start(
            options,
            cairn_store_sqlite::open(_dir.path()).expect("store"),
            clock.clone(),
        )
        .expect("engine");
        World {
            _dir,
            engine,
            clock,
        }
    }

    pub(super) fn command(&self, command: Command) -> crate::journeys::CommandOutcome {
        let receipt = self
            .engine
            .ingestor()
            .submit_command_blocking(ws(), &command, self.clock.now())
            .expect("command committed");
        self.engine
            .reader()
            .command_outcome(receipt.seq)
            .expect("outcome")
    }

    pub(super) fn publish(&self, yaml: &str) {
        let document = parse_journey(yaml, Format::Yaml).expect("template parses");
        let id = document.id.clone();
        assert!(
            self.command(Command::SaveDraft {
                document: Box::new(document)
            })
            .ok
        );
        let outcome = self.command(Command::Publish { journey: id });
        assert!(outcome.ok, "{outcome:?}");
    }

    pub(super) fn track(&self, user: &str, event: &str, properties: Value) {
        self.submit(
            json!({"type": "track", "userId": user, "event": event, "properties": properties,
            "timestamp": self.clock.now().to_rfc3339()}),
        );
    }

    pub(super) fn identify(&self, user: &str, traits: Value) {
        self.submit(json!({"type": "identify", "userId": user, "traits": traits,
            "timestamp": self.clock.now().to_rfc3339()}));
    }

    fn submit(&self, message: Value) {
        let message = normalize_object(
            message.as_object().cloned().expect("object"),
            &Envelope::default(),
            self.clock.now(),
        )
        .expect("valid");
        self.engine
            .ingestor()
            .submit_blocking(ws(), vec![message])
            .expect("stored");
    }

    pub(super) fn pass(&self, duration: Duration) {
        self.clock.advance(duration);
        self.engine.tick().expect("tick");
    }

    pub(super) fn profile_id(&self, user: &str) -> cairn_model::ProfileId {
        self.engine
            .reader()
            .profile_by_identifier(&ws(), &Identifier::new(IdentifierKind::UserId, user))
            .expect("profile")
            .id
    }

    /// (channel, template) of a user's messages that went out (decided `ready`), oldest first.
    pub(super) fn messages(&self, user: &str) -> Vec<(String, String)> {
        self.decided(user)
            .into_iter()
            .filter(|(_, _, status)| status == "ready")
            .map(|(channel, template, _)| (channel, template))
            .collect()
    }

    /// (channel, template, status) of every message a journey decided for a user, oldest first.
    pub(super) fn decided(&self, user: &str) -> Vec<(String, String, String)> {
        let mut messages = self
            .engine
            .reader()
            .messages(&ws(), &self.profile_id(user), 100)
            .expect("read")
            .expect("profile");
        messages.reverse();
        messages
            .iter()
            .map(|m| {
                (
                    m["channel"].as_str().unwrap_or_default().to_string(),
                    m["template"].as_str().unwrap_or_default().to_string(),
                    match m["delivery"]["decision"].as_str() {
                        Some("send") => "ready".to_string(),
                        Some("delay") => "delayed".to_string(),
                        _ => "skipped".to_string(),
                    },
                )
            })
            .collect()
    }
}

fn email() -> (String, String) {
    ("email".into(), "cart-reminder".into())
}

fn sms() -> (String, String) {
    ("sms".into(), "cart-reminder-sms".into())
}

#[test]
fn cart_abandonment_sends_exactly_what_each_customer_should_get_over_three_days() {
    let world = World::start();
    world.publish(CART);
    // ann buys within the hour; bob never buys and never opens; cy opens the email. Marketing SMS
    // needs an opt-in: bob and cy gave one; dee did not and gets no SMS.
    for user in ["bob", "cy"] {
        world.track(user, "SMS Subscribed", json!({}));
    }
    for user in ["ann", "bob", "cy", "dee"] {
        world.track(user, "Cart Abandoned", json!({"cart_value": 80}));
    }
    world.pass(Duration::minutes(30));
    world.track("ann", "Order Completed", json!({"total": 80}));
    world.pass(Duration::minutes(31));
    assert!(
        world.messages("ann").is_empty(),
        "ann bought before the hour"
    );
    assert_eq!(world.messages("bob"), vec![email()]);
    assert_eq!(world.messages("cy"), vec![email()]);

    // cy opens the email (feedback carries its message id).
    let cy_email = world
        .engine
        .reader()
        .messages(&ws(), &world.profile_id("cy"), 10)
        .expect("read")
        .expect("profile")[0]["message_id"]
        .as_str()
        .expect("id")
        .to_string();
    world.pass(Duration::hours(2));
    world.track("cy", "Email Opened", json!({"message_id": cy_email}));
    world.pass(Duration::days(1));
    world.pass(Duration::days(1));
    assert_eq!(
        world.messages("bob"),
        vec![email(), sms()],
        "a non-opener gets the SMS"
    );
    assert_eq!(world.messages("cy"), vec![email()], "an opener does not");
    assert!(world.messages("ann").is_empty());

    let stats = world
        .engine
        .reader()
        .journey_stats(&ws(), "cart-abandonment")
        .expect("stats");
    let version = &stats["versions"][0];
    assert_eq!(version["entered"], 4);
    assert_eq!(version["current"], 0, "everyone has finished: {stats}");
    assert_eq!(version["ended"]["goal_reached"], 1);
    assert_eq!(version["ended"]["completed"], 3);

    let trace = world
        .engine
        .reader()
        .trace(&ws(), &world.profile_id("bob"), "cart-abandonment")
        .expect("read")
        .expect("profile");
    let decisions: Vec<&str> = trace
        .iter()
        .map(|entry| entry["decision"]["kind"].as_str().unwrap_or_default())
        .collect();
    assert!(decisions.contains(&"event_timeout"), "{trace:#?}");
    assert!(decisions.contains(&"engagement"), "{decisions:?}");
    let engagement = trace
        .iter()
        .find(|entry| entry["decision"]["kind"] == "engagement")
        .expect("engagement decision");
    assert_eq!(engagement["decision"]["yes"], false);
    assert!(engagement["explanation"]
        .as_str()
        .is_some_and(|text| !text.is_empty()));
}

#[test]
fn timers_and_enrollments_survive_a_crash_and_fire_once_after_the_replay() {
    let mut world = World::start();
    world.publish(CART);
    world.track("bob", "SMS Subscribed", json!({}));
    world.track("bob", "Cart Abandoned", json!({}));
    // A crash with nothing checkpointed since the start: the replay rebuilds the enrollment and its
    // timer from the log.
    let options = EngineOptions {
        checkpoint_on_shutdown: false,
        ..options()
    };
    world = world.restart_with(options);
    world.pass(Duration::minutes(61));
    assert_eq!(world.messages("bob"), vec![email()]);
    world = world.restart();
    world.pass(Duration::minutes(1));
    assert_eq!(
        world.messages("bob"),
        vec![email()],
        "the fired timer does not fire again"
    );
    world.pass(Duration::days(2));
    assert_eq!(world.messages("bob"), vec![email(), sms()]);
}

#[test]
fn stopping_a_journey_ends_every_enrollment_and_archiving_needs_a_stop() {
    let world = World::start();
    world.publish(CART);
    world.track("bob", "Cart Abandoned", json!({}));
    assert!(
        !world
            .command(Command::Archive {
                journey: "cart-abandonment".into()
            })
            .ok
    );
    assert!(
        world
            .command(Command::Stop {
                journey: "cart-abandonment".into(),
                reason: "campaign over".into()
            })
            .ok
    );
    world.pass(Duration::hours(2));
    assert!(
        world.messages("bob").is_empty(),
        "a stopped journey sends nothing"
    );
    let stats = world
        .engine
        .reader()
        .journey_stats(&ws(), "cart-abandonment")
        .expect("stats");
    assert_eq!(stats["versions"][0]["ended"]["stopped"], 1);
    world.track("cy", "Cart Abandoned", json!({}));
    assert_eq!(
        stats["versions"][0]["entered"], 1,
        "no entries after a stop"
    );
    assert!(
        world
            .command(Command::Archive {
                journey: "cart-abandonment".into()
            })
            .ok
    );
    let record = world
        .engine
        .reader()
        .journey(&ws(), "cart-abandonment")
        .expect("journey");
    assert_eq!(record.status, crate::journeys::JourneyStatus::Archived);
}

#[test]
fn enrolling_by_api_runs_the_journey_for_that_profile() {
    let world = World::start();
    let yaml = r#"
id: api-welcome
name: Welcome by API
entry:
  api: {}
re_entry: once
start: hello
steps:
  - id: hello
    type: send
    channel: email
    template: welcome
    next: done
  - id: done
    type: exit
"#;
    world.publish(yaml);
    world.track("ann", "Signed Up", json!({}));
    let profile = ProfileRef::Identifier(Identifier::new(IdentifierKind::UserId, "ann"));
    let outcome = world.command(Command::Enroll {
        journey: "api-welcome".into(),
        profile: profile.clone(),
        data: Some(json!({"coupon": "HELLO"})),
    });
    assert!(outcome.ok && outcome.enrollment.is_some(), "{outcome:?}");
    assert_eq!(
        world.messages("ann"),
        vec![("email".to_string(), "welcome".to_string())]
    );
    let again = world.command(Command::Enroll {
        journey: "api-welcome".into(),
        profile,
        data: None,
    });
    assert!(!again.ok, "re-entry once: {again:?}");
    let unknown = world.command(Command::Enroll {
        journey: "api-welcome".into(),
        profile: ProfileRef::Identifier(Identifier::new(IdentifierKind::UserId, "nobody")),
        data: None,
    });
    assert!(!unknown.ok);
}

#[test]
fn an_audience_is_kept_current_by_events_and_by_time_and_can_be_an_entry() {
    let world = World::start();
    let audience = cairn_journey::parse_audience(
        r#"{"id": "browsers", "name": "Browsed, did not buy", "condition": "count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0"}"#,
        Format::Json,
    )
    .expect("audience");
    assert!(
        world
            .command(Command::SaveAudience {
                document: Box::new(audience)
            })
            .ok
    );
    world.publish(
        r#"
id: browse-nudge
name: Nudge browsers
entry:
  audience:
    id: browsers
re_entry: after_exit
start: nudge
steps:
  - id: nudge
    type: send
    channel: push
    template: still-looking
    next: done
  - id: done
    type: exit
"#,
    );
    world.track("ann", "Product Viewed", json!({"sku": "a"}));
    // bob bought this week, so viewing does not make him a member.
    world.track("bob", "Order Completed", json!({}));
    world.track("bob", "Product Viewed", json!({"sku": "b"}));
    let members = |world: &World| {
        let mut ids = world
            .engine
            .reader()
            .audience_members(&ws(), "browsers", 10)
            .expect("audience");
        ids.sort();
        ids
    };
    assert_eq!(members(&world), vec![world.profile_id("ann")]);
    assert_eq!(
        world.messages("ann"),
        vec![("push".to_string(), "still-looking".to_string())]
    );
    assert!(world.messages("bob").is_empty());
    // Eight days later the view falls out of the window: ann leaves without any new event.
    world.pass(Duration::days(8));
    assert!(members(&world).is_empty());
}

/// A journey that waits an hour after `Signed Up` and sends one email with template `template`.
fn tip(id: &str, template: &str) -> String {
    format!(
        "id: {id}\nname: {id}\nentry:\n  event:\n    name: Signed Up\nstart: wait\nsteps:\n  \
         - id: wait\n    type: wait\n    duration: 1h\n    next: tip\n  \
         - id: tip\n    type: send\n    channel: email\n    template: {template}\n    next: done\n  \
         - id: done\n    type: exit\n"
    )
}

#[test]
fn two_enrollments_of_one_profile_due_at_the_same_instant_each_fire_once() {
    let mut world = World::start();
    world.publish(&tip("tip-a", "a"));
    world.publish(&tip("tip-b", "b"));
    world.track("ann", "Signed Up", json!({}));
    world.pass(Duration::minutes(59));
    assert!(world.messages("ann").is_empty(), "not due yet");
    world.pass(Duration::minutes(2));
    let email = |template: &str| ("email".to_string(), template.to_string());
    let mut sent = world.messages("ann");
    sent.sort();
    assert_eq!(sent, vec![email("a"), email("b")]);
    world = world.restart();
    world.pass(Duration::days(1));
    assert_eq!(world.messages("ann").len(), 2, "no timer fires twice");
}

#[test]
fn a_checkpoint_whose_history_counted_waiting_enrollments_restores_the_same_history() {
    let world = World::start();
    world.publish(&tip("tip-a", "a"));
    world.track("ann", "Signed Up", json!({}));
    let history = |world: &World| {
        world
            .engine
            .reader()
            .profile_journeys(&ws(), &world.profile_id("ann"))
            .expect("profile")["history"]
            .clone()
    };
    let waiting = history(&world);
    assert_eq!(waiting[0]["entries"], 1, "{waiting}");
    assert_eq!(waiting[0]["last_ended_at"], Value::Null);
    // Stop (with a last checkpoint) and rewrite ann's journey state as the older writer kept it.
    let world = world.restart_after(options(), |dir| {
        let database =
            rusqlite::Connection::open(dir.join(cairn_store_sqlite::STATE_FILE)).expect("state.db");
        let (rank, extra): (i64, Vec<u8>) = database
            .query_row(
                "SELECT rank, extra FROM profiles WHERE length(extra) > 0",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("ann's journey state");
        database
            .execute(
                "UPDATE profiles SET extra = ?2 WHERE rank = ?1",
                rusqlite::params![rank, crate::state::as_counting_checkpoint(&extra, "tip-a")],
            )
            .expect("rewritten");
    });
    assert_eq!(history(&world), waiting, "the entry is counted once");
    world.pass(Duration::hours(2));
    let ended = history(&world);
    assert_eq!(ended[0]["entries"], 1, "{ended}");
    assert_ne!(ended[0]["last_ended_at"], Value::Null);
    world.track("ann", "Signed Up", json!({}));
    assert_eq!(history(&world), ended, "`once`: no second entry");
    assert_eq!(world.messages("ann"), vec![("email".into(), "a".into())]);
}
