//! The compiled form of a condition: a tree of [`Node`]s whose paths are pre-split, regexes and time zones
//! pre-built and constant sub-expressions pre-computed, and the public [`Condition`] that holds it.

use std::sync::Arc;

use chrono_tz::Tz;
use regex::Regex;

use crate::ast::{Root, Segment};
use crate::context::EvalContext;
use crate::diagnostics::{codes, Diagnostic, DiagnosticSink};
use crate::functions::Function;
use crate::references::References;
use crate::time::LocalPart;
use crate::types::{Schema, Type};
use crate::value::Value;

/// A path resolved at compile time.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPath {
    pub(crate) root: Root,
    pub(crate) segments: Box<[Segment]>,
    /// The segment (if any) that is an event's `name`: read from the Segment field `event` (track), falling
    /// back to `name` (page, screen).
    pub(crate) event_name_at: Option<usize>,
    /// Declared as a timestamp: ISO-8601 strings are converted when loaded.
    pub(crate) timestamp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arithmetic {
    Add,
    Subtract,
    Multiply,
    Divide,
}

/// A time-zone argument: UTC, a literal checked at compile time, or an expression read at run time.
#[derive(Debug, Clone)]
pub(crate) enum ZoneArgument {
    Fixed(Tz),
    Dynamic(Box<Node>),
}

/// `days_since` and friends: whole units between an instant and now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elapsed {
    /// `floor((now - instant) / unit)`
    Since,
    /// `floor((instant - now) / unit)`
    Until,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Constant(Value<'static>),
    Path(CompiledPath),
    List(Vec<Node>),
    Now,
    Not(Box<Node>),
    Negate(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// `x == null` (`negated`: `x != null`).
    IsNull {
        operand: Box<Node>,
        negated: bool,
    },
    Compare {
        comparison: Comparison,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// `item in list` (`negated`: `not in`, which is `not (item in list)`).
    Member {
        item: Box<Node>,
        list: Box<Node>,
        negated: bool,
    },
    Arithmetic {
        operation: Arithmetic,
        left: Box<Node>,
        right: Box<Node>,
    },
    Call {
        function: Function,
        arguments: Vec<Node>,
    },
    Matches {
        subject: Box<Node>,
        regex: Box<Regex>,
    },
    Elapsed {
        direction: Elapsed,
        unit_ms: i64,
        instant: Box<Node>,
    },
    Date {
        text: Box<Node>,
        zone: Option<ZoneArgument>,
    },
    LocalPart {
        part: LocalPart,
        instant: Box<Node>,
        zone: Option<ZoneArgument>,
    },
    Count {
        event: Box<str>,
        window_ms: Option<i64>,
    },
    EventTime {
        event: Box<str>,
        last: bool,
    },
    /// `path <comparison> constant`, specialized (see [`specialize`]).
    ComparePath {
        comparison: Comparison,
        path: CompiledPath,
        constant: Value<'static>,
    },
    /// `path in ["a", "b", ...]` with string literals, specialized.
    PathInStrings {
        path: CompiledPath,
        items: Box<[Box<str>]>,
        negated: bool,
    },
}

impl Node {
    /// The direct children, for generic walks.
    pub(crate) fn children(&self) -> Vec<&Node> {
        match self {
            Node::Constant(_)
            | Node::Path(_)
            | Node::Now
            | Node::Count { .. }
            | Node::EventTime { .. }
            | Node::ComparePath { .. }
            | Node::PathInStrings { .. } => Vec::new(),
            Node::List(items)
            | Node::Call {
                arguments: items, ..
            } => items.iter().collect(),
            Node::Not(operand) | Node::Negate(operand) | Node::IsNull { operand, .. } => {
                vec![operand]
            }
            Node::And(left, right)
            | Node::Or(left, right)
            | Node::Compare { left, right, .. }
            | Node::Arithmetic { left, right, .. }
            | Node::Member {
                item: left,
                list: right,
                ..
            } => vec![left, right],
            Node::Matches { subject, .. } => vec![subject],
            Node::Elapsed { instant, .. } => vec![instant],
            Node::Date {
                text: instant,
                zone,
            }
            | Node::LocalPart { instant, zone, .. } => {
                let mut children = vec![instant.as_ref()];
                if let Some(ZoneArgument::Dynamic(zone)) = zone {
                    children.push(zone);
                }
                children
            }
        }
    }

    /// Whether the node's value depends only on its children (no context, no clock).
    fn is_pure(&self) -> bool {
        !matches!(
            self,
            Node::Path(_)
                | Node::Now
                | Node::Count { .. }
                | Node::EventTime { .. }
                | Node::Elapsed { .. }
                | Node::ComparePath { .. }
                | Node::PathInStrings { .. }
        )
    }
}

impl Comparison {
    /// The comparison with its operands swapped (`a < b` is `b > a`).
    fn flipped(self) -> Comparison {
        match self {
            Comparison::Less => Comparison::Greater,
            Comparison::LessOrEqual => Comparison::GreaterOrEqual,
            Comparison::Greater => Comparison::Less,
            Comparison::GreaterOrEqual => Comparison::LessOrEqual,
            same => same,
        }
    }
}

/// Rewrites the most common shapes into dedicated nodes that evaluate with fewer steps: a path compared with
/// a constant, and a path looked up in a list of string literals. Runs after `references` are collected.
pub(crate) fn specialize(node: Node) -> Node {
    let node = map_children(node, specialize);
    match node {
        Node::Compare {
            comparison,
            left,
            right,
        } => match (*left, *right) {
            (Node::Path(path), Node::Constant(constant)) => Node::ComparePath {
                comparison,
                path,
                constant,
            },
            (Node::Constant(constant), Node::Path(path)) => Node::ComparePath {
                comparison: comparison.flipped(),
                path,
                constant,
            },
            (left, right) => Node::Compare {
                comparison,
                left: Box::new(left),
                right: Box::new(right),
            },
        },
        Node::Member {
            item,
            list,
            negated,
        } => {
            let strings: Option<Box<[Box<str>]>> = match list.as_ref() {
                Node::Constant(Value::List(crate::value::ListValue::Owned(items))) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => Some(Box::from(text.as_ref())),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            };
            match (*item, strings) {
                (Node::Path(path), Some(items)) if !path.timestamp => Node::PathInStrings {
                    path,
                    items,
                    negated,
                },
                (item, _) => Node::Member {
                    item: Box::new(item),
                    list,
                    negated,
                },
            }
        }
        other => other,
    }
}

/// Replaces every pure node whose children are all constants by its value.
pub(crate) fn fold_constants(node: Node) -> Node {
    let node = map_children(node, fold_constants);
    let foldable = node.is_pure()
        && !matches!(node, Node::Constant(_))
        && node
            .children()
            .iter()
            .all(|child| matches!(child, Node::Constant(_)));
    if !foldable {
        return node;
    }
    let context = crate::context::MapContext::new(0);
    let value = crate::eval::evaluate(&node, &context).into_owned();
    Node::Constant(value)
}

fn map_children(node: Node, mut transform: impl FnMut(Node) -> Node) -> Node {
    let mut boxed = |child: Box<Node>| Box::new(transform(*child));
    match node {
        Node::List(items) => Node::List(items.into_iter().map(&mut transform).collect()),
        Node::Call {
            function,
            arguments,
        } => Node::Call {
            function,
            arguments: arguments.into_iter().map(&mut transform).collect(),
        },
        Node::Not(operand) => Node::Not(boxed(operand)),
        Node::Negate(operand) => Node::Negate(boxed(operand)),
        Node::IsNull { operand, negated } => Node::IsNull {
            operand: boxed(operand),
            negated,
        },
        Node::And(left, right) => Node::And(boxed(left), boxed(right)),
        Node::Or(left, right) => Node::Or(boxed(left), boxed(right)),
        Node::Compare {
            comparison,
            left,
            right,
        } => Node::Compare {
            comparison,
            left: boxed(left),
            right: boxed(right),
        },
        Node::Arithmetic {
            operation,
            left,
            right,
        } => Node::Arithmetic {
            operation,
            left: boxed(left),
            right: boxed(right),
        },
        Node::Member {
            item,
            list,
            negated,
        } => Node::Member {
            item: boxed(item),
            list: boxed(list),
            negated,
        },
        Node::Matches { subject, regex } => Node::Matches {
            subject: boxed(subject),
            regex,
        },
        Node::Elapsed {
            direction,
            unit_ms,
            instant,
        } => Node::Elapsed {
            direction,
            unit_ms,
            instant: boxed(instant),
        },
        Node::Date { text, zone } => Node::Date {
            text: boxed(text),
            zone: zone.map(|zone| map_zone(zone, &mut transform)),
        },
        Node::LocalPart {
            part,
            instant,
            zone,
        } => Node::LocalPart {
            part,
            instant: boxed(instant),
            zone: zone.map(|zone| map_zone(zone, &mut transform)),
        },
        leaf => leaf,
    }
}

fn map_zone(zone: ZoneArgument, transform: &mut impl FnMut(Node) -> Node) -> ZoneArgument {
    match zone {
        ZoneArgument::Dynamic(node) => ZoneArgument::Dynamic(Box::new(transform(*node))),
        fixed => fixed,
    }
}

/// A parsed, type-checked and compiled condition. Cheap to clone (shared), `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Condition {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    source: String,
    result_type: Type,
    root: Node,
    references: References,
    explanation: crate::explain::ExplanationPlan,
}

pub(crate) fn compile(
    source: &str,
    schema: &Schema,
    require_boolean: bool,
) -> Result<Condition, Vec<Diagnostic>> {
    let expr = crate::parse(source)?;
    let mut sink = DiagnosticSink::new(source);
    let checked = crate::check::check(&expr, schema, &mut sink);
    if require_boolean && !matches!(checked.ty, Type::Bool | Type::Any) && sink.is_empty() {
        sink.report(
            codes::NOT_BOOLEAN,
            expr.span.clone(),
            format!(
                "a condition must be true or false, but this is a {}",
                checked.ty
            ),
        );
    }
    if !sink.is_empty() {
        return Err(sink.into_diagnostics());
    }
    let root = fold_constants(checked.node);
    let references = crate::references::collect(&root);
    let root = specialize(root);
    let explanation = crate::explain::ExplanationPlan::new(source, &expr, schema);
    Ok(Condition {
        inner: Arc::new(Compiled {
            source: source.to_owned(),
            result_type: checked.ty,
            root,
            references,
            explanation,
        }),
    })
}

impl Condition {
    /// The source text the condition was compiled from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The static type of the condition's value (`Bool` or `Any` for [`crate::compile`]).
    pub fn result_type(&self) -> &Type {
        &self.inner.result_type
    }

    /// Evaluates the condition. Never panics: missing data is null, mismatched data makes comparisons false.
    pub fn evaluate<'a>(&'a self, ctx: &'a dyn EvalContext) -> Value<'a> {
        crate::eval::evaluate(&self.inner.root, ctx)
    }

    /// Whether the condition evaluates to `true` (anything else, null included, is false).
    pub fn matches(&self, ctx: &dyn EvalContext) -> bool {
        crate::eval::evaluate(&self.inner.root, ctx).is_true()
    }

    /// The earliest instant (ms since the epoch) after `ctx.now_ms()` at which the value could change with no
    /// new input, or `None` if time alone cannot change it. May be early (the caller re-evaluates and asks
    /// again), never late.
    pub fn next_change_after(&self, ctx: &dyn EvalContext) -> Option<i64> {
        crate::horizon::next_change_after(&self.inner.root, ctx)
    }

    /// What the condition reads.
    pub fn references(&self) -> &References {
        &self.inner.references
    }

    /// For traces: each top-level clause (split at the outermost `and`s or `or`s) with its value and the
    /// values of the paths and aggregates it read. Slower than [`Condition::evaluate`]; call it when recording
    /// why a decision was made, not on the hot path.
    pub fn explain(&self, ctx: &dyn EvalContext) -> Vec<crate::ClauseExplanation> {
        self.inner.explanation.explain(ctx)
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Condition) -> bool {
        self.inner.source == other.inner.source && self.inner.result_type == other.inner.result_type
    }
}
