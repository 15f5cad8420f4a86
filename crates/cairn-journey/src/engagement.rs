//! Engagement feedback: which events say a message was opened, clicked or bounced.
//!
//! Feedback is an ordinary event of the profile whose `properties.message_id` is the message's id. The
//! names follow Segment's email spec and its push/SMS counterparts, plus the names Cairn's own tracking
//! links and dispatcher record (`Email Clicked`, `Push Opened`, and `… Failed` for a permanent failure,
//! which a bounced split treats as a bounce); `docs/journeys.md` lists them.

use crate::document::{Channel, Engagement};

/// The events that report an engagement, per channel.
pub const ENGAGEMENT_EVENTS: &[(Channel, Engagement, &str)] = &[
    (Channel::Email, Engagement::Opened, "Email Opened"),
    (Channel::Email, Engagement::Clicked, "Email Link Clicked"),
    // What Cairn's own click redirect records (`docs/channels.md`).
    (Channel::Email, Engagement::Clicked, "Email Clicked"),
    (Channel::Email, Engagement::Bounced, "Email Bounced"),
    // Cairn's dispatcher: refused for good (an SMTP 5xx at send time) or dead-lettered.
    (Channel::Email, Engagement::Bounced, "Email Failed"),
    (
        Channel::Push,
        Engagement::Opened,
        "Push Notification Tapped",
    ),
    (
        Channel::Push,
        Engagement::Clicked,
        "Push Notification Tapped",
    ),
    // What Cairn's feedback routes record for a push the customer opened.
    (Channel::Push, Engagement::Opened, "Push Opened"),
    (Channel::Push, Engagement::Clicked, "Push Opened"),
    (
        Channel::Push,
        Engagement::Bounced,
        "Push Notification Bounced",
    ),
    (Channel::Push, Engagement::Bounced, "Push Failed"),
    (Channel::Sms, Engagement::Clicked, "SMS Link Clicked"),
    (Channel::Sms, Engagement::Opened, "SMS Link Clicked"),
    (Channel::Sms, Engagement::Bounced, "SMS Bounced"),
    // Cairn's dispatcher and Twilio's status callbacks (`failed`, `undelivered`).
    (Channel::Sms, Engagement::Bounced, "SMS Failed"),
    (Channel::Webhook, Engagement::Bounced, "Webhook Failed"),
];

/// The engagements an event name reports (a tapped push is both opened and clicked).
pub fn engagements_of(event_name: &str) -> impl Iterator<Item = Engagement> + '_ {
    ENGAGEMENT_EVENTS
        .iter()
        .filter(move |(_, _, name)| *name == event_name)
        .map(|(_, engagement, _)| *engagement)
}

/// The event names that report this engagement on this channel.
pub fn event_names(channel: Channel, engagement: Engagement) -> impl Iterator<Item = &'static str> {
    ENGAGEMENT_EVENTS
        .iter()
        .filter(move |(known_channel, known_engagement, _)| {
            *known_channel == channel && *known_engagement == engagement
        })
        .map(|(_, _, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_feedback_follows_segment_names() {
        assert_eq!(
            engagements_of("Email Opened").collect::<Vec<_>>(),
            [Engagement::Opened]
        );
        assert_eq!(
            event_names(Channel::Email, Engagement::Clicked).collect::<Vec<_>>(),
            ["Email Link Clicked", "Email Clicked"]
        );
        assert_eq!(
            engagements_of("Email Clicked").collect::<Vec<_>>(),
            [Engagement::Clicked]
        );
        assert_eq!(engagements_of("Order Completed").count(), 0);
    }

    #[test]
    fn what_cairn_records_itself_counts_as_engagement() {
        assert_eq!(
            engagements_of("Push Opened").collect::<Vec<_>>(),
            [Engagement::Opened, Engagement::Clicked]
        );
        for name in ["SMS Failed", "Push Failed", "Email Failed"] {
            assert_eq!(
                engagements_of(name).collect::<Vec<_>>(),
                [Engagement::Bounced],
                "{name}"
            );
        }
    }
}
