//! Evaluation of the compiled tree. Total: every node gives a value for every context (null for missing or
//! mismatched data), and nothing here panics.
//!
//! Rules (documented in `docs/conditions.md`): a comparison with a null operand is false (`== null` and
//! `!= null` compile to null checks); a comparison between values of types that cannot be compared is false,
//! for `!=` too; `and`, `or` and `not` treat anything but `true` as false and short-circuit.

use std::borrow::Cow;

use serde_json::Value as Json;

use crate::ast::{Root, Segment};
use crate::compile::{Arithmetic, Comparison, CompiledPath, Elapsed, Node, ZoneArgument};
use crate::context::EvalContext;
use crate::time;
use crate::value::{ListValue, Value};

pub(crate) fn evaluate<'a>(node: &'a Node, ctx: &'a dyn EvalContext) -> Value<'a> {
    match node {
        Node::Constant(value) => value.reborrow(),
        Node::Path(path) => load_path(path, ctx),
        Node::List(items) => Value::List(ListValue::Owned(
            items.iter().map(|item| evaluate(item, ctx)).collect(),
        )),
        Node::Now => Value::Timestamp(ctx.now_ms()),
        Node::Not(operand) => Value::Bool(!evaluate(operand, ctx).is_true()),
        Node::Negate(operand) => match evaluate(operand, ctx) {
            Value::Number(number) => Value::Number(-number),
            Value::Duration(ms) => ms.checked_neg().map_or(Value::Null, Value::Duration),
            _ => Value::Null,
        },
        Node::And(left, right) => {
            Value::Bool(evaluate(left, ctx).is_true() && evaluate(right, ctx).is_true())
        }
        Node::Or(left, right) => {
            Value::Bool(evaluate(left, ctx).is_true() || evaluate(right, ctx).is_true())
        }
        Node::IsNull { operand, negated } => {
            Value::Bool(evaluate(operand, ctx).is_null() != *negated)
        }
        Node::Compare {
            comparison,
            left,
            right,
        } => Value::Bool(compare(
            *comparison,
            &evaluate(left, ctx),
            &evaluate(right, ctx),
        )),
        Node::Member {
            item,
            list,
            negated,
        } => {
            let item = evaluate(item, ctx);
            let found = match evaluate(list, ctx) {
                Value::List(list) => !item.is_null() && list.contains(&item),
                _ => false,
            };
            Value::Bool(found != *negated)
        }
        Node::Arithmetic {
            operation,
            left,
            right,
        } => arithmetic(*operation, evaluate(left, ctx), evaluate(right, ctx)),
        Node::Call {
            function,
            arguments,
        } => match arguments.as_slice() {
            // Up to three arguments live on the stack: no allocation.
            [only] => function.apply(&mut [evaluate(only, ctx)]),
            [first, second] => function.apply(&mut [evaluate(first, ctx), evaluate(second, ctx)]),
            [first, second, third] => function.apply(&mut [
                evaluate(first, ctx),
                evaluate(second, ctx),
                evaluate(third, ctx),
            ]),
            many => function.apply(
                &mut many
                    .iter()
                    .map(|argument| evaluate(argument, ctx))
                    .collect::<Vec<_>>(),
            ),
        },
        Node::Matches { subject, regex } => match evaluate(subject, ctx) {
            Value::String(text) => Value::Bool(regex.is_match(&text)),
            _ => Value::Bool(false),
        },
        Node::Elapsed {
            direction,
            unit_ms,
            instant,
        } => match evaluate(instant, ctx).as_timestamp() {
            Some(instant) => {
                let now = ctx.now_ms();
                let difference = match direction {
                    Elapsed::Since => now.checked_sub(instant),
                    Elapsed::Until => instant.checked_sub(now),
                };
                difference.map_or(Value::Null, |difference| {
                    Value::Number(difference.div_euclid(*unit_ms) as f64)
                })
            }
            None => Value::Null,
        },
        Node::Date { text, zone } => {
            let Some(zone) = resolve_zone(zone.as_ref(), ctx) else {
                return Value::Null;
            };
            match evaluate(text, ctx) {
                Value::Timestamp(ms) => Value::Timestamp(ms),
                Value::String(text) => {
                    time::parse_timestamp_in(&text, zone).map_or(Value::Null, Value::Timestamp)
                }
                _ => Value::Null,
            }
        }
        Node::LocalPart {
            part,
            instant,
            zone,
        } => {
            let (Some(instant), Some(zone)) = (
                evaluate(instant, ctx).as_timestamp(),
                resolve_zone(zone.as_ref(), ctx),
            ) else {
                return Value::Null;
            };
            time::local_part(instant, zone.unwrap_or(chrono_tz::UTC), *part)
                .map_or(Value::Null, Value::Number)
        }
        Node::Count { event, window_ms } => {
            let since = window_ms.and_then(|window| ctx.now_ms().checked_sub(window));
            Value::Number(ctx.event_count(event, since) as f64)
        }
        Node::ComparePath {
            comparison,
            path,
            constant,
        } => Value::Bool(compare(*comparison, &load_path(path, ctx), constant)),
        Node::PathInStrings {
            path,
            items,
            negated,
        } => {
            let found = match load_path(path, ctx) {
                Value::String(text) => items.iter().any(|item| **item == *text),
                _ => false,
            };
            Value::Bool(found != *negated)
        }
        Node::EventTime { event, last } => {
            let (first_at, last_at) = ctx.event_times(event);
            let instant = if *last { last_at } else { first_at };
            instant.map_or(Value::Null, Value::Timestamp)
        }
    }
}

/// The zone to use: `Some(None)` for UTC (no zone given), `Some(Some(zone))`, or `None` when a zone read from
/// data is missing or not an IANA name (the function is then null).
pub(crate) fn resolve_zone(
    zone: Option<&ZoneArgument>,
    ctx: &dyn EvalContext,
) -> Option<Option<chrono_tz::Tz>> {
    match zone {
        None => Some(None),
        Some(ZoneArgument::Fixed(zone)) => Some(Some(*zone)),
        Some(ZoneArgument::Dynamic(node)) => match evaluate(node, ctx) {
            Value::String(name) => time::parse_zone(&name).map(Some),
            _ => None,
        },
    }
}

fn root_json<'a>(root: Root, ctx: &'a dyn EvalContext) -> Option<RootRef<'a>> {
    match root {
        Root::Profile => ctx.profile().map(RootRef::Map),
        Root::Event => ctx.event().map(RootRef::Json),
        Root::Journey => ctx.journey().map(RootRef::Json),
    }
}

enum RootRef<'a> {
    Map(&'a serde_json::Map<String, Json>),
    Json(&'a Json),
}

fn load_path<'a>(path: &CompiledPath, ctx: &'a dyn EvalContext) -> Value<'a> {
    let Some(found) = walk(path, ctx) else {
        return Value::Null;
    };
    let value = match found {
        RootRef::Map(map) => Value::Object(Cow::Borrowed(map)),
        RootRef::Json(json) => Value::from_json(json),
    };
    if path.timestamp {
        return value.as_timestamp().map_or(Value::Null, Value::Timestamp);
    }
    value
}

fn walk<'a>(path: &CompiledPath, ctx: &'a dyn EvalContext) -> Option<RootRef<'a>> {
    let mut current = root_json(path.root, ctx)?;
    for (position, segment) in path.segments.iter().enumerate() {
        let next = match (segment, current) {
            (Segment::Key(key), RootRef::Map(map)) => {
                lookup(map, key, path.event_name_at == Some(position))
            }
            (Segment::Key(key), RootRef::Json(Json::Object(map))) => {
                lookup(map, key, path.event_name_at == Some(position))
            }
            (Segment::Index(index), RootRef::Json(Json::Array(items))) => usize::try_from(*index)
                .ok()
                .and_then(|index| items.get(index)),
            _ => None,
        }?;
        current = RootRef::Json(next);
    }
    Some(current)
}

/// Looks a key up; an event's `name` is Segment's `event` (track) or `name` (page, screen).
fn lookup<'a>(
    map: &'a serde_json::Map<String, Json>,
    key: &str,
    event_name: bool,
) -> Option<&'a Json> {
    if event_name {
        if let Some(name) = map.get("event").filter(|name| name.is_string()) {
            return Some(name);
        }
    }
    map.get(key)
}

pub(crate) fn compare(comparison: Comparison, left: &Value<'_>, right: &Value<'_>) -> bool {
    if left.is_null() || right.is_null() {
        return false;
    }
    match comparison {
        Comparison::Equal => left.equals(right),
        Comparison::NotEqual => comparable(left, right) && !left.equals(right),
        Comparison::Less => left.order(right).is_some_and(std::cmp::Ordering::is_lt),
        Comparison::LessOrEqual => left.order(right).is_some_and(std::cmp::Ordering::is_le),
        Comparison::Greater => left.order(right).is_some_and(std::cmp::Ordering::is_gt),
        Comparison::GreaterOrEqual => left.order(right).is_some_and(std::cmp::Ordering::is_ge),
    }
}

/// Whether two non-null values have types `==` can compare (otherwise `!=` is false too).
fn comparable(left: &Value<'_>, right: &Value<'_>) -> bool {
    match (left, right) {
        (Value::Timestamp(_), other) | (other, Value::Timestamp(_)) => {
            other.as_timestamp().is_some()
        }
        _ => std::mem::discriminant(left) == std::mem::discriminant(right),
    }
}

fn finite(number: f64) -> Value<'static> {
    if number.is_finite() {
        Value::Number(number)
    } else {
        Value::Null
    }
}

pub(crate) fn arithmetic<'a>(
    operation: Arithmetic,
    left: Value<'a>,
    right: Value<'a>,
) -> Value<'a> {
    use Arithmetic::{Add, Divide, Multiply, Subtract};
    let duration = |ms: Option<i64>| ms.map_or(Value::Null, Value::Duration);
    let timestamp = |ms: Option<i64>| ms.map_or(Value::Null, Value::Timestamp);
    match (operation, &left, &right) {
        (_, Value::Number(a), Value::Number(b)) => match operation {
            Add => finite(a + b),
            Subtract => finite(a - b),
            Multiply => finite(a * b),
            Divide => finite(a / b),
        },
        (Add, Value::Duration(a), Value::Duration(b)) => duration(a.checked_add(*b)),
        (Subtract, Value::Duration(a), Value::Duration(b)) => duration(a.checked_sub(*b)),
        (Divide, Value::Duration(a), Value::Duration(b)) => finite(*a as f64 / *b as f64),
        (Multiply, Value::Duration(ms), Value::Number(factor))
        | (Multiply, Value::Number(factor), Value::Duration(ms)) => {
            scaled_duration(*ms as f64 * factor)
        }
        (Divide, Value::Duration(ms), Value::Number(divisor)) => {
            scaled_duration(*ms as f64 / divisor)
        }
        (Add | Subtract, instant, Value::Duration(ms)) => match instant.as_timestamp() {
            Some(instant) if operation == Add => timestamp(instant.checked_add(*ms)),
            Some(instant) => timestamp(instant.checked_sub(*ms)),
            None => Value::Null,
        },
        (Add, Value::Duration(ms), instant) => timestamp(
            instant
                .as_timestamp()
                .and_then(|instant| instant.checked_add(*ms)),
        ),
        (Subtract, later, earlier) => match (later.as_timestamp(), earlier.as_timestamp()) {
            (Some(later), Some(earlier)) => duration(later.checked_sub(earlier)),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

fn scaled_duration(ms: f64) -> Value<'static> {
    if ms.is_finite() && ms.abs() < 9.0e15 {
        Value::Duration(ms.round() as i64)
    } else {
        Value::Null
    }
}
