//! Human-readable explanations of trace entries: "why did this customer take this path / get this
//! message", with the condition sources and the values they read.

use crate::compiled::{CompiledJourney, StepKind};
use crate::duration::format_duration_ms;
use crate::effects::{Decision, EndDetail, Ended, TraceEntry, WaitReason};
use crate::local_time::format_rfc3339;
use serde_json::Value;

/// One sentence explaining a trace entry.
pub fn explain(journey: &CompiledJourney, entry: &TraceEntry) -> String {
    let step = journey.step(entry.step);
    match &entry.decision {
        Decision::Entered { trigger } => match trigger {
            Some(name) => format!("entered `{}` on event `{name}`", journey.id),
            None => format!("entered `{}`", journey.id),
        },
        Decision::Wait {
            until_ms,
            reason,
            passed,
        } => {
            let until = instant(*until_ms);
            let why = match reason {
                WaitReason::Duration { duration_ms } => {
                    format!("a wait of {}", format_duration_ms(*duration_ms))
                }
                WaitReason::DateTime => "a fixed date-time".to_owned(),
                WaitReason::LocalTime {
                    time_zone,
                    from_profile,
                } => format!(
                    "the next local time in {} ({})",
                    time_zone.name(),
                    zone_source(*from_profile)
                ),
                WaitReason::DateAttribute {
                    date,
                    time_zone,
                    from_profile,
                } => format!(
                    "the date attribute {date} in {} ({})",
                    time_zone.name(),
                    zone_source(*from_profile)
                ),
                WaitReason::AttributeMissing => "the date attribute is missing".to_owned(),
                WaitReason::DatePassed => "the date has passed".to_owned(),
                WaitReason::EventTimeout => match step.map(|step| &step.kind) {
                    Some(StepKind::WaitForEvent { event, .. }) => {
                        format!("waiting for `{event}` until the timeout")
                    }
                    _ => "the event timeout".to_owned(),
                },
                WaitReason::EngagementWindow => "the end of the engagement window".to_owned(),
                WaitReason::ResponseTimeout => "the webhook response timeout".to_owned(),
            };
            if *passed {
                format!("no wait: {why} ({until}) is not in the future")
            } else {
                format!("waits until {until}: {why}")
            }
        }
        Decision::WaitOver => "the wait is over".to_owned(),
        Decision::AwaitedEvent { event } => format!("`{event}` arrived in time: event path"),
        Decision::EventTimeout => "the awaited event did not arrive: timeout path".to_owned(),
        Decision::Branch { branch, reads } => {
            let chosen = match (branch, step.map(|step| &step.kind)) {
                (Some(index), Some(StepKind::DecisionSplit { branches, .. })) => {
                    match branches.get(usize::from(*index)) {
                        Some(found) => format!(
                            "branch {} `{}` matched: {}",
                            index + 1,
                            found.name.as_deref().unwrap_or(""),
                            found.condition.source()
                        ),
                        None => format!("branch {}", index + 1),
                    }
                }
                (Some(index), _) => format!("branch {}", index + 1),
                (None, _) => "no branch matched: default path".to_owned(),
            };
            match reads {
                Some(reads) if !reads.is_empty() => {
                    format!("{chosen} (read {})", render_reads(reads))
                }
                _ => chosen,
            }
        }
        Decision::RandomBranch { bucket, branch } => {
            let name = match step.map(|step| &step.kind) {
                Some(StepKind::RandomSplit { branches }) => branches
                    .get(usize::from(*branch))
                    .map(|found| {
                        format!(
                            "`{}`{}",
                            found.name,
                            if found.holdout { " (holdout)" } else { "" }
                        )
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            format!("bucket {bucket} of 100 falls in branch {name}")
        }
        Decision::Engagement {
            engagement,
            engaged_at_ms,
            window_ends_ms,
            yes,
        } => match (yes, engaged_at_ms) {
            (true, Some(at)) => format!("{} at {}: yes path", engagement.as_str(), instant(*at)),
            _ => format!(
                "not {} by {}: no path",
                engagement.as_str(),
                instant(*window_ends_ms)
            ),
        },
        Decision::EngagementRecorded {
            engagement,
            message_id,
        } => format!("message {message_id} {}", engagement.as_str()),
        Decision::Fetching { message_id } => match step.map(|step| &step.kind) {
            Some(StepKind::Fetch { sets, .. }) => format!(
                "asked for federated attributes {} as request {message_id}",
                sets.iter()
                    .map(|set| format!("`{set}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!("asked for federated attributes as request {message_id}"),
        },
        Decision::Sent { message_id } => match step.map(|step| &step.kind) {
            Some(StepKind::Send(send)) => format!(
                "sent {} `{}` as message {message_id}",
                send.channel.as_str(),
                send.template
            ),
            _ => format!("sent message {message_id}"),
        },
        Decision::DeliveryResult { ok } => {
            if *ok {
                "the webhook answered: success path".to_owned()
            } else {
                "the webhook failed: failure path".to_owned()
            }
        }
        Decision::ResponseTimeout => "no webhook answer in time: timeout path".to_owned(),
        Decision::ProfileUpdated {
            changes,
            written_back: 0,
        } => format!("updated {changes} profile attribute(s)"),
        Decision::ProfileUpdated {
            changes,
            written_back,
        } => format!(
            "updated {changes} profile attribute(s), asked to write back {written_back} federated field(s)"
        ),
        Decision::Held => "held: the journey is paused".to_owned(),
        Decision::Resumed => "released: the journey resumed".to_owned(),
        Decision::CriterionMet { goal, index, reads } => {
            let criteria = if *goal {
                &journey.goals
            } else {
                &journey.exits
            };
            let criterion = criteria.get(usize::from(*index));
            let name = criterion.map_or("?", |criterion| &*criterion.id);
            let source = criterion
                .and_then(|criterion| criterion.condition.as_ref())
                .map(|condition| format!(": {}", condition.source()))
                .unwrap_or_default();
            let kind = if *goal { "goal" } else { "exit criterion" };
            match reads {
                Some(reads) if !reads.is_empty() => {
                    format!("{kind} `{name}` met{source} (read {})", render_reads(reads))
                }
                _ => format!("{kind} `{name}` met{source}"),
            }
        }
        Decision::Ended { reason } => format!("ended: {}", reason.as_str()),
    }
}

/// One sentence for an ended enrollment's detail.
pub fn explain_end(journey: &CompiledJourney, ended: &Ended) -> String {
    match &ended.detail {
        EndDetail::None => ended.reason.as_str().to_owned(),
        EndDetail::Goal(index) => format!(
            "goal `{}`",
            journey
                .goals
                .get(usize::from(*index))
                .map_or("?", |goal| &*goal.id)
        ),
        EndDetail::ExitCriterion(index) => format!(
            "exit criterion `{}`",
            journey
                .exits
                .get(usize::from(*index))
                .map_or("?", |exit| &*exit.id)
        ),
        EndDetail::Stopped(reason) => format!("stopped: {reason}"),
        EndDetail::MergedInto(enrollment) => format!("merged into enrollment {}", enrollment.0),
        EndDetail::Error(message) => format!("error: {message}"),
    }
}

fn zone_source(from_profile: bool) -> &'static str {
    if from_profile {
        "the customer's time zone"
    } else {
        "the journey's default time zone"
    }
}

fn instant(ms: i64) -> String {
    format_rfc3339(ms).unwrap_or_else(|| ms.to_string())
}

fn render_reads(reads: &[(String, Value)]) -> String {
    reads
        .iter()
        .map(|(path, value)| format!("{path} = {value}"))
        .collect::<Vec<_>>()
        .join(", ")
}
