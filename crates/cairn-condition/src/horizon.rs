//! `next_change_after`: the earliest future instant at which a condition's value could change with no new
//! input, so that an audience is kept current with one timer per profile instead of periodic rescans.
//!
//! Each node is analysed at "now" into a [`Trend`] that holds on `[now, until)`:
//! - `Constant`: the value does not change;
//! - `Linear`: a number, timestamp or duration that moves at a fixed rate (`now()`, `now() - 7d`,
//!   `last_at("X") - now()`); a comparison against it is solved for the crossing instant;
//! - `Stepped`: piecewise constant, changing only at known breakpoints (whole days of `days_since`, events
//!   leaving a `count` window, local hours of `hour(now(), tz)`); a comparison of a monotone step function
//!   (`days_since`, windowed `count`) with a constant is solved exactly, anything else is searched by
//!   evaluating the whole condition at successive breakpoints;
//! - `Unknown`: may change at any instant (`string(now())`); the answer is then `now + 1`.
//!
//! Every rule may answer early (the engine re-evaluates then and asks again) but never late; the property
//! tests check this by sampling instants before the answer.

use chrono_tz::Tz;

use crate::compile::{Arithmetic, Comparison, Elapsed, Node, ZoneArgument};
use crate::context::{AtTime, EvalContext};
use crate::eval::{evaluate, resolve_zone};
use crate::time::{self, LocalPart};
use crate::value::Value;

/// How many breakpoints the search visits before answering with the last one visited (still correct: the
/// value is constant up to it).
const SEARCH_LIMIT: usize = 1_000;

#[derive(Debug, Clone)]
enum Trend {
    Constant,
    /// The value changes by `rate` per millisecond.
    Linear(f64),
    Stepped(Steps),
    Unknown,
}

#[derive(Debug, Clone)]
struct Steps {
    breaks: Breaks,
    /// A monotone step function of time that a comparison can solve without searching.
    monotone: Option<Monotone>,
}

#[derive(Debug, Clone)]
enum Breaks {
    /// `first + k * period` for k ≥ 0.
    Every {
        first: i64,
        period: i64,
    },
    /// Explicit instants, ascending.
    Times(Vec<i64>),
    /// Where a local calendar part of `now + offset` may change in `zone`.
    Local {
        zone: Tz,
        part: LocalPart,
        offset: i64,
    },
    Union(Vec<Breaks>),
}

impl Breaks {
    /// The first breakpoint strictly after `after`.
    fn next_after(&self, after: i64) -> Option<i64> {
        match self {
            Breaks::Every { first, period } => {
                if *first > after {
                    return Some(*first);
                }
                let steps = (after - first).div_euclid(*period).checked_add(1)?;
                first.checked_add(steps.checked_mul(*period)?)
            }
            Breaks::Times(times) => times
                .get(times.partition_point(|&time| time <= after))
                .copied(),
            Breaks::Local { zone, part, offset } => {
                let shifted = after.checked_add(*offset)?;
                time::next_local_change(shifted, *zone, *part)?.checked_sub(*offset)
            }
            Breaks::Union(parts) => parts.iter().filter_map(|part| part.next_after(after)).min(),
        }
    }
}

/// Monotone step functions with an exact inverse.
#[derive(Debug, Clone)]
enum Monotone {
    /// `floor((t - instant) / unit)` (Since) or `floor((instant - t) / unit)` (Until).
    Elapsed {
        direction: Elapsed,
        instant: i64,
        unit: i64,
    },
    /// A windowed count: decreases by one at each of these instants (ascending, duplicates allowed).
    Count { drops: Vec<i64> },
}

impl Monotone {
    fn increasing(&self) -> bool {
        matches!(
            self,
            Monotone::Elapsed {
                direction: Elapsed::Since,
                ..
            }
        )
    }

    /// The first instant after `now` at which the integer value reaches `target` (≥ it when increasing, ≤ it
    /// when decreasing), given its value `current` at `now`.
    fn reaches(&self, current: i64, target: i64, now: i64) -> Option<i64> {
        match self {
            Monotone::Elapsed {
                direction: Elapsed::Since,
                instant,
                unit,
            } => instant
                .checked_add(target.checked_mul(*unit)?)
                .filter(|&at| at > now),
            Monotone::Elapsed {
                direction: Elapsed::Until,
                instant,
                unit,
            } => {
                // floor((instant - t) / unit) <= target  ⇔  t > instant - (target + 1) * unit
                let boundary = instant.checked_sub(target.checked_add(1)?.checked_mul(*unit)?)?;
                boundary.checked_add(1).filter(|&at| at > now)
            }
            Monotone::Count { drops } => {
                let needed = usize::try_from(current.checked_sub(target)?).ok()?;
                if needed == 0 {
                    return None;
                }
                drops.get(needed - 1).copied()
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Horizon {
    trend: Trend,
    until: Option<i64>,
}

impl Horizon {
    fn constant(until: Option<i64>) -> Horizon {
        Horizon {
            trend: Trend::Constant,
            until,
        }
    }

    fn with(trend: Trend, until: Option<i64>) -> Horizon {
        Horizon { trend, until }
    }
}

fn earliest(left: Option<i64>, right: Option<i64>) -> Option<i64> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left.min(right)),
        (one, None) | (None, one) => one,
    }
}

pub(crate) fn next_change_after(root: &Node, ctx: &dyn EvalContext) -> Option<i64> {
    let now = ctx.now_ms();
    let horizon = analyse(root, ctx, now);
    let answer = match horizon.trend {
        Trend::Constant => horizon.until,
        Trend::Linear(_) | Trend::Unknown => now.checked_add(1),
        Trend::Stepped(steps) => search(root, ctx, now, &steps.breaks, horizon.until),
    };
    debug_assert!(
        answer.is_none_or(|instant| instant > now),
        "next change must be in the future"
    );
    answer.filter(|&instant| instant > now)
}

/// Evaluates the whole condition at successive breakpoints until its value differs from the current one.
fn search(
    root: &Node,
    ctx: &dyn EvalContext,
    now: i64,
    breaks: &Breaks,
    until: Option<i64>,
) -> Option<i64> {
    let current = evaluate(root, ctx).into_owned();
    let mut instant = now;
    for _ in 0..SEARCH_LIMIT {
        let Some(next) = breaks.next_after(instant) else {
            return until;
        };
        if until.is_some_and(|until| next >= until) {
            return until;
        }
        let later = AtTime {
            inner: ctx,
            now_ms: next,
        };
        if evaluate(root, &later) != current {
            return Some(next);
        }
        instant = next;
    }
    Some(instant)
}

fn combine(horizons: &[Horizon]) -> Horizon {
    let until = horizons
        .iter()
        .fold(None, |until, horizon| earliest(until, horizon.until));
    let mut breaks = Vec::new();
    for horizon in horizons {
        match &horizon.trend {
            Trend::Constant => {}
            Trend::Stepped(steps) => breaks.push(steps.breaks.clone()),
            Trend::Linear(_) | Trend::Unknown => return Horizon::with(Trend::Unknown, until),
        }
    }
    let trend = match breaks.len() {
        0 => Trend::Constant,
        1 => Trend::Stepped(Steps {
            breaks: breaks.remove(0),
            monotone: None,
        }),
        _ => Trend::Stepped(Steps {
            breaks: Breaks::Union(breaks),
            monotone: None,
        }),
    };
    Horizon::with(trend, until)
}

/// A value as a number on the time axis (numbers, timestamps and durations; ISO strings as timestamps).
fn numeric(value: &Value<'_>) -> Option<f64> {
    match value {
        Value::Number(number) => Some(*number),
        Value::Timestamp(ms) | Value::Duration(ms) => Some(*ms as f64),
        Value::String(_) => value.as_timestamp().map(|ms| ms as f64),
        _ => None,
    }
}

fn analyse(node: &Node, ctx: &dyn EvalContext, now: i64) -> Horizon {
    match node {
        Node::Constant(_)
        | Node::Path(_)
        | Node::ComparePath { .. }
        | Node::PathInStrings { .. }
        | Node::EventTime { .. }
        | Node::Count {
            window_ms: None, ..
        } => Horizon::constant(None),
        Node::Now => Horizon::with(Trend::Linear(1.0), None),
        Node::Count {
            event,
            window_ms: Some(window),
        } => count_horizon(event, *window, ctx, now),
        Node::Elapsed {
            direction,
            unit_ms,
            instant,
        } => {
            let inner = analyse(instant, ctx, now);
            if !matches!(inner.trend, Trend::Constant) {
                return Horizon::with(Trend::Unknown, inner.until);
            }
            let Some(instant) = evaluate(instant, ctx).as_timestamp() else {
                return Horizon::constant(inner.until);
            };
            // Since: changes when t - instant crosses a multiple of unit; Until: one millisecond after.
            let anchor = match direction {
                Elapsed::Since => instant,
                Elapsed::Until => instant.saturating_add(1),
            };
            let breaks = Breaks::Every {
                first: anchor,
                period: *unit_ms,
            };
            let monotone = Monotone::Elapsed {
                direction: *direction,
                instant,
                unit: *unit_ms,
            };
            Horizon::with(
                Trend::Stepped(Steps {
                    breaks,
                    monotone: Some(monotone),
                }),
                inner.until,
            )
        }
        Node::LocalPart {
            part,
            instant,
            zone,
        } => local_part_horizon(*part, instant, zone.as_ref(), ctx, now),
        Node::Not(operand) => {
            let inner = analyse(operand, ctx, now);
            match inner.trend {
                Trend::Constant => Horizon::constant(inner.until),
                Trend::Stepped(steps) => Horizon::with(
                    Trend::Stepped(Steps {
                        breaks: steps.breaks,
                        monotone: None,
                    }),
                    inner.until,
                ),
                _ => Horizon::with(Trend::Unknown, inner.until),
            }
        }
        Node::Negate(operand) => {
            let inner = analyse(operand, ctx, now);
            match inner.trend {
                Trend::Linear(rate) => Horizon::with(Trend::Linear(-rate), inner.until),
                _ => combine(&[inner]),
            }
        }
        Node::And(left, right) | Node::Or(left, right) => {
            let is_and = matches!(node, Node::And(..));
            let left_horizon = analyse(left, ctx, now);
            let left_true = evaluate(left, ctx).is_true();
            // `false and x` / `true or x` stays so while the left side does, whatever x does.
            if matches!(left_horizon.trend, Trend::Constant) && left_true != is_and {
                return left_horizon;
            }
            let right_horizon = analyse(right, ctx, now);
            if matches!(right_horizon.trend, Trend::Constant)
                && evaluate(right, ctx).is_true() != is_and
            {
                // Short-circuit from the right is just as valid for the value (no side effects).
                return right_horizon;
            }
            combine(&[left_horizon, right_horizon])
        }
        Node::IsNull { operand, .. } => {
            let inner = analyse(operand, ctx, now);
            match inner.trend {
                // A moving time value is never null, nor does it become null.
                Trend::Linear(_) => Horizon::constant(inner.until),
                _ => combine(&[inner]),
            }
        }
        Node::Compare {
            comparison,
            left,
            right,
        } => compare_horizon(*comparison, left, right, ctx, now),
        Node::Arithmetic {
            operation,
            left,
            right,
        } => arithmetic_horizon(*operation, left, right, ctx, now),
        Node::Date { text, zone } => {
            let mut parts = vec![analyse(text, ctx, now)];
            if let Some(ZoneArgument::Dynamic(zone)) = zone {
                parts.push(analyse(zone, ctx, now));
            }
            combine(&parts)
        }
        Node::List(_) | Node::Member { .. } | Node::Call { .. } | Node::Matches { .. } => {
            let parts: Vec<Horizon> = node
                .children()
                .into_iter()
                .map(|child| analyse(child, ctx, now))
                .collect();
            combine(&parts)
        }
    }
}

fn count_horizon(event: &str, window: i64, ctx: &dyn EvalContext, now: i64) -> Horizon {
    let Some(since) = now.checked_sub(window) else {
        return Horizon::constant(None);
    };
    let times = ctx.recent_event_times(event);
    let in_window = &times[times.partition_point(|&time| time < since)..];
    if ctx.event_count(event, Some(since)) != in_window.len() as u64 {
        // The engine kept fewer recent times than the window needs: any instant may drop one.
        return Horizon::with(Trend::Unknown, None);
    }
    // An event at `time` is counted while `time >= t - window`, so it leaves at `time + window + 1`.
    let drops: Vec<i64> = in_window
        .iter()
        .filter_map(|time| time.checked_add(window)?.checked_add(1))
        .collect();
    if drops.is_empty() {
        return Horizon::constant(None);
    }
    let breaks = Breaks::Times(drops.clone());
    Horizon::with(
        Trend::Stepped(Steps {
            breaks,
            monotone: Some(Monotone::Count { drops }),
        }),
        None,
    )
}

fn local_part_horizon(
    part: LocalPart,
    instant: &Node,
    zone: Option<&ZoneArgument>,
    ctx: &dyn EvalContext,
    now: i64,
) -> Horizon {
    let instant_horizon = analyse(instant, ctx, now);
    let mut parts = Vec::new();
    if let Some(ZoneArgument::Dynamic(zone)) = zone {
        parts.push(analyse(zone, ctx, now));
    }
    match instant_horizon.trend {
        Trend::Linear(1.0) => {
            let zone = resolve_zone(zone, ctx).flatten().unwrap_or(chrono_tz::UTC);
            let offset = evaluate(instant, ctx)
                .as_timestamp()
                .map_or(0, |value| value.saturating_sub(now));
            let breaks = Breaks::Local { zone, part, offset };
            let stepped = Horizon::with(
                Trend::Stepped(Steps {
                    breaks,
                    monotone: None,
                }),
                instant_horizon.until,
            );
            parts.push(stepped);
            combine(&parts)
        }
        _ => {
            parts.push(instant_horizon);
            combine(&parts)
        }
    }
}

fn arithmetic_horizon(
    operation: Arithmetic,
    left: &Node,
    right: &Node,
    ctx: &dyn EvalContext,
    now: i64,
) -> Horizon {
    let left_horizon = analyse(left, ctx, now);
    let right_horizon = analyse(right, ctx, now);
    let until = earliest(left_horizon.until, right_horizon.until);
    let factor = |node: &Node| numeric(&evaluate(node, ctx));
    let trend = match (&left_horizon.trend, &right_horizon.trend, operation) {
        (Trend::Linear(rate), Trend::Constant, Arithmetic::Add | Arithmetic::Subtract)
        | (Trend::Constant, Trend::Linear(rate), Arithmetic::Add) => Trend::Linear(*rate),
        (Trend::Constant, Trend::Linear(rate), Arithmetic::Subtract) => Trend::Linear(-rate),
        (
            Trend::Linear(left_rate),
            Trend::Linear(right_rate),
            Arithmetic::Add | Arithmetic::Subtract,
        ) => {
            let rate = if operation == Arithmetic::Add {
                left_rate + right_rate
            } else {
                left_rate - right_rate
            };
            if rate == 0.0 {
                Trend::Constant
            } else {
                Trend::Linear(rate)
            }
        }
        (Trend::Linear(rate), Trend::Constant, Arithmetic::Multiply | Arithmetic::Divide) => {
            match factor(right) {
                Some(scale) if operation == Arithmetic::Multiply && scale != 0.0 => {
                    Trend::Linear(rate * scale)
                }
                Some(scale) if operation == Arithmetic::Divide && scale != 0.0 => {
                    Trend::Linear(rate / scale)
                }
                // Multiplying by zero, or dividing by zero (null): constant.
                Some(_) => Trend::Constant,
                None => Trend::Constant,
            }
        }
        (Trend::Constant, Trend::Linear(rate), Arithmetic::Multiply) => match factor(left) {
            Some(scale) if scale != 0.0 => Trend::Linear(rate * scale),
            _ => Trend::Constant,
        },
        _ => return combine(&[left_horizon, right_horizon]),
    };
    Horizon::with(trend, until)
}

fn compare_horizon(
    comparison: Comparison,
    left: &Node,
    right: &Node,
    ctx: &dyn EvalContext,
    now: i64,
) -> Horizon {
    let left_horizon = analyse(left, ctx, now);
    let right_horizon = analyse(right, ctx, now);
    let until = earliest(left_horizon.until, right_horizon.until);
    let left_value = numeric(&evaluate(left, ctx));
    let right_value = numeric(&evaluate(right, ctx));
    let rate_of = |trend: &Trend| match trend {
        Trend::Linear(rate) => Some(*rate),
        Trend::Constant => Some(0.0),
        _ => None,
    };
    let has_linear = matches!(left_horizon.trend, Trend::Linear(_))
        || matches!(right_horizon.trend, Trend::Linear(_));
    if has_linear {
        let (Some(left_value), Some(right_value)) = (left_value, right_value) else {
            // A null or non-numeric side stays so: the comparison stays false.
            let other_until = [&left_horizon, &right_horizon]
                .iter()
                .filter(|horizon| !matches!(horizon.trend, Trend::Linear(_) | Trend::Constant))
                .map(|_| now.checked_add(1))
                .fold(until, earliest);
            return Horizon::constant(other_until);
        };
        // A stepped side counts as constant up to its next breakpoint.
        let mut until = until;
        for horizon in [&left_horizon, &right_horizon] {
            match &horizon.trend {
                Trend::Stepped(steps) => until = earliest(until, steps.breaks.next_after(now)),
                Trend::Unknown => until = earliest(until, now.checked_add(1)),
                _ => {}
            }
        }
        let rate = rate_of(&left_horizon.trend).unwrap_or(0.0)
            - rate_of(&right_horizon.trend).unwrap_or(0.0);
        return Horizon::constant(earliest(
            until,
            crossing(left_value - right_value, rate, now),
        ));
    }
    // A monotone step function against a constant: solved exactly.
    let monotone_side = match (&left_horizon.trend, &right_horizon.trend) {
        (
            Trend::Stepped(Steps {
                monotone: Some(monotone),
                ..
            }),
            Trend::Constant,
        ) => Some((monotone, left_value, right_value, true)),
        (
            Trend::Constant,
            Trend::Stepped(Steps {
                monotone: Some(monotone),
                ..
            }),
        ) => Some((monotone, right_value, left_value, false)),
        _ => None,
    };
    if let Some((monotone, stepped_value, constant_value, stepped_on_left)) = monotone_side {
        let (Some(stepped_value), Some(constant_value)) = (stepped_value, constant_value) else {
            return Horizon::constant(until);
        };
        let predicate = |n: f64| {
            let (left, right) = if stepped_on_left {
                (n, constant_value)
            } else {
                (constant_value, n)
            };
            crate::eval::compare(comparison, &Value::Number(left), &Value::Number(right))
        };
        let change = monotone_change(monotone, stepped_value, constant_value, now, predicate);
        return Horizon::constant(earliest(until, change));
    }
    combine(&[left_horizon, right_horizon])
}

/// When `difference + rate * (t - now)` next reaches zero (a comparison can only change there), a
/// millisecond early to absorb rounding.
fn crossing(difference: f64, rate: f64, now: i64) -> Option<i64> {
    if rate == 0.0 || !rate.is_finite() || !difference.is_finite() {
        return None;
    }
    if difference == 0.0 {
        return now.checked_add(1);
    }
    let delay = -difference / rate;
    if delay <= 0.0 {
        return None;
    }
    if rate.abs() == 1.0 && difference.fract() == 0.0 && delay < 9.0e15 {
        // Instants and durations move one millisecond per millisecond: the crossing is exact.
        return now.checked_add(delay as i64);
    }
    let instant = (now as f64 + delay).floor() - 1.0;
    if instant.is_nan() || instant >= 9.0e18 {
        return None;
    }
    Some((instant as i64).max(now.checked_add(1)?))
}

/// When a monotone integer step function with value `current` next makes `predicate` (the comparison with
/// the constant) change. The predicate depends only on the sign of `n - constant`, so only the integers on
/// either side of the constant need checking.
fn monotone_change(
    monotone: &Monotone,
    current: f64,
    constant: f64,
    now: i64,
    predicate: impl Fn(f64) -> bool,
) -> Option<i64> {
    if !constant.is_finite()
        || constant.abs() > 1e15
        || current.fract() != 0.0
        || current.abs() > 1e15
    {
        return None;
    }
    let current_holds = predicate(current);
    let mut candidates = if monotone.increasing() {
        [constant.ceil(), constant.floor() + 1.0]
    } else {
        [constant.floor(), constant.ceil() - 1.0]
    };
    if !monotone.increasing() {
        candidates.sort_by(|left, right| right.total_cmp(left));
    } else {
        candidates.sort_by(f64::total_cmp);
    }
    let ahead = |candidate: f64| {
        if monotone.increasing() {
            candidate > current
        } else {
            candidate < current
        }
    };
    let target = candidates
        .into_iter()
        .find(|&candidate| ahead(candidate) && predicate(candidate) != current_holds)?;
    monotone.reaches(current as i64, target as i64, now)
}
