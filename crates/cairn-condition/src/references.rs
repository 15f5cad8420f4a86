//! What a compiled condition reads, so the engine can index conditions instead of evaluating all of them on
//! every input.

use std::collections::BTreeSet;

use crate::ast::{Path, Root};
use crate::compile::{Comparison, Node};
use crate::value::{ListValue, Value};

/// What a condition reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct References {
    /// Profile attribute paths read, below `profile.` (`plan`, `address.city`, `tags[0]`), sorted; `""`
    /// when the whole profile is read (`len(profile)`).
    pub profile_paths: Vec<String>,
    /// Event names counted or looked up by aggregates (`count`, `first_at`, `last_at`), sorted.
    pub aggregate_events: Vec<String>,
    /// Whether `event.*` is read.
    pub reads_event: bool,
    /// Whether `journey.*` is read.
    pub reads_journey: bool,
    /// Whether the value depends on the current time: `now()`, `days_since` and friends, windowed `count`.
    pub reads_now: bool,
    /// The longest `count` window in milliseconds: the engine keeps recent event times at least this far back.
    pub longest_window_ms: Option<i64>,
    /// When the condition can only be true for an event with one of these names (`event.name == "X"` or
    /// `event.name in [...]` in a top-level `and`), the names, sorted: a goal or filter need only be checked
    /// when such an event arrives. `None` when any event may match.
    pub required_event_names: Option<Vec<String>>,
}

pub(crate) fn collect(root: &Node) -> References {
    let mut collector = Collector::default();
    collector.visit(root);
    References {
        profile_paths: collector.profile_paths.into_iter().collect(),
        aggregate_events: collector.aggregate_events.into_iter().collect(),
        reads_event: collector.reads_event,
        reads_journey: collector.reads_journey,
        reads_now: collector.reads_now,
        longest_window_ms: collector.longest_window_ms,
        required_event_names: required_event_names(root).map(|names| names.into_iter().collect()),
    }
}

#[derive(Default)]
struct Collector {
    profile_paths: BTreeSet<String>,
    aggregate_events: BTreeSet<String>,
    reads_event: bool,
    reads_journey: bool,
    reads_now: bool,
    longest_window_ms: Option<i64>,
}

impl Collector {
    fn visit(&mut self, node: &Node) {
        debug_assert!(
            !matches!(node, Node::ComparePath { .. } | Node::PathInStrings { .. }),
            "references are collected before specialization"
        );
        match node {
            Node::Path(path) => match path.root {
                Root::Profile => {
                    let dotted = Path {
                        root: path.root,
                        segments: path.segments.to_vec(),
                    }
                    .dotted();
                    self.profile_paths.insert(dotted);
                }
                Root::Event => self.reads_event = true,
                Root::Journey => self.reads_journey = true,
            },
            Node::Now | Node::Elapsed { .. } => self.reads_now = true,
            Node::Count { event, window_ms } => {
                self.aggregate_events.insert(event.to_string());
                if let Some(window) = window_ms {
                    self.reads_now = true;
                    self.longest_window_ms = Some(
                        self.longest_window_ms
                            .map_or(*window, |longest| longest.max(*window)),
                    );
                }
            }
            Node::EventTime { event, .. } => {
                self.aggregate_events.insert(event.to_string());
            }
            _ => {}
        }
        for child in node.children() {
            self.visit(child);
        }
    }
}

/// The event names outside which the condition is false, or `None` if it can be true for any event.
fn required_event_names(node: &Node) -> Option<BTreeSet<String>> {
    match node {
        Node::And(left, right) => match (required_event_names(left), required_event_names(right)) {
            (Some(left), Some(right)) => Some(left.intersection(&right).cloned().collect()),
            (Some(names), None) | (None, Some(names)) => Some(names),
            (None, None) => None,
        },
        Node::Or(left, right) => {
            let mut names = required_event_names(left)?;
            names.extend(required_event_names(right)?);
            Some(names)
        }
        Node::Compare {
            comparison: Comparison::Equal,
            left,
            right,
        } => {
            let (path, constant) = match (left.as_ref(), right.as_ref()) {
                (Node::Path(path), Node::Constant(constant))
                | (Node::Constant(constant), Node::Path(path)) => (path, constant),
                _ => return None,
            };
            let is_current_event_name = path.root == Root::Event
                && path.event_name_at == Some(0)
                && path.segments.len() == 1;
            match constant {
                Value::String(name) if is_current_event_name => {
                    Some(BTreeSet::from([name.to_string()]))
                }
                _ => None,
            }
        }
        Node::Member {
            item,
            list,
            negated: false,
        } => {
            let (Node::Path(path), Node::Constant(Value::List(ListValue::Owned(items)))) =
                (item.as_ref(), list.as_ref())
            else {
                return None;
            };
            if !(path.root == Root::Event
                && path.event_name_at == Some(0)
                && path.segments.len() == 1)
            {
                return None;
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(name) => Some(name.to_string()),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}
