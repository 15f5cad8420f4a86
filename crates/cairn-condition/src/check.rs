//! The type checker: walks the syntax tree against a [`Schema`], reports every error it finds, and builds the
//! compiled [`Node`] tree (paths resolved, regexes and time zones built, literals checked).

use std::ops::Range;

use crate::ast::{BinaryOp, Expr, ExprKind, Path, Root, Segment, UnaryOp};
use crate::compile::{Arithmetic, Comparison, CompiledPath, Elapsed, Node, ZoneArgument};
use crate::diagnostics::{codes, DiagnosticSink};
use crate::functions::{Function, FUNCTION_NAMES};
use crate::time::{self, LocalPart, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::types::{declared_prefix, lookup_declared, Schema, Type};
use crate::value::Value;

/// A checked expression: its compiled node and its static type.
pub(crate) struct Checked {
    pub(crate) node: Node,
    pub(crate) ty: Type,
}

impl Checked {
    fn new(node: Node, ty: Type) -> Checked {
        Checked { node, ty }
    }

    /// Stands in for an expression that had an error (already reported); `Any` so no error cascades.
    fn poisoned() -> Checked {
        Checked {
            node: Node::Constant(Value::Null),
            ty: Type::Any,
        }
    }
}

pub(crate) fn check(expr: &Expr, schema: &Schema, sink: &mut DiagnosticSink<'_>) -> Checked {
    Checker { schema, sink }.expr(expr)
}

struct Checker<'a, 'sink, 'source> {
    schema: &'a Schema,
    sink: &'sink mut DiagnosticSink<'source>,
}

fn article(ty: &Type) -> String {
    match ty {
        Type::Any => "a value of unknown type".to_owned(),
        Type::Null => "null".to_owned(),
        Type::Object | Type::Timestamp => format!("an {ty}").replace("an timestamp", "a timestamp"),
        other => format!("a {other}"),
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

impl Checker<'_, '_, '_> {
    fn mismatch(&mut self, span: Range<usize>, message: String) -> Checked {
        self.sink.report(codes::TYPE_MISMATCH, span, message);
        Checked::poisoned()
    }

    fn expr(&mut self, expr: &Expr) -> Checked {
        match &expr.kind {
            ExprKind::Null => Checked::new(Node::Constant(Value::Null), Type::Null),
            ExprKind::Bool(flag) => Checked::new(Node::Constant(Value::Bool(*flag)), Type::Bool),
            ExprKind::Number(number) => {
                Checked::new(Node::Constant(Value::Number(*number)), Type::Number)
            }
            ExprKind::String(text) => {
                Checked::new(Node::Constant(Value::from(text.as_str())), Type::String)
            }
            ExprKind::Duration(duration) => match duration.milliseconds() {
                Some(ms) => Checked::new(Node::Constant(Value::Duration(ms)), Type::Duration),
                None => {
                    self.sink.report(
                        codes::INVALID_DURATION,
                        expr.span.clone(),
                        "duration is too long",
                    );
                    Checked::poisoned()
                }
            },
            ExprKind::List(items) => {
                let mut item_type = Type::Null;
                let mut nodes = Vec::with_capacity(items.len());
                for item in items {
                    let checked = self.expr(item);
                    item_type = if nodes.is_empty() {
                        checked.ty
                    } else {
                        item_type.join(&checked.ty)
                    };
                    nodes.push(checked.node);
                }
                let item_type = if item_type == Type::Null {
                    Type::Any
                } else {
                    item_type
                };
                Checked::new(Node::List(nodes), Type::List(Box::new(item_type)))
            }
            ExprKind::Path(path) => self.path(path, expr.span.clone()),
            ExprKind::Unary(UnaryOp::Not, operand) => {
                let checked = self.expr(operand);
                self.require_boolean(&checked, operand, "`not`");
                Checked::new(Node::Not(Box::new(checked.node)), Type::Bool)
            }
            ExprKind::Unary(UnaryOp::Negate, operand) => {
                let checked = self.expr(operand);
                match checked.ty {
                    Type::Number | Type::Duration | Type::Any => {
                        Checked::new(Node::Negate(Box::new(checked.node)), checked.ty)
                    }
                    other => self.mismatch(
                        operand.span.clone(),
                        format!("cannot negate {}", article(&other)),
                    ),
                }
            }
            ExprKind::Binary(op, left, right) => self.binary(*op, left, right, expr.span.clone()),
            ExprKind::Call { name, arguments } => self.call(
                name,
                expr.span.start..expr.span.start + name.len(),
                arguments,
                expr.span.clone(),
            ),
        }
    }

    fn require_boolean(&mut self, checked: &Checked, expr: &Expr, context: &str) {
        if !matches!(checked.ty, Type::Bool | Type::Any | Type::Null) {
            self.sink.report(
                codes::TYPE_MISMATCH,
                expr.span.clone(),
                format!(
                    "{context} needs true or false, but this is {}",
                    article(&checked.ty)
                ),
            );
        }
    }

    // ---- paths ----

    fn path(&mut self, path: &Path, span: Range<usize>) -> Checked {
        let allowed = match path.root {
            Root::Profile => true,
            Root::Event => self.schema.event_root_allowed,
            Root::Journey => self.schema.journey_root_allowed,
        };
        if !allowed {
            self.sink.report(
                codes::ROOT_NOT_ALLOWED,
                span,
                format!(
                    "`{}.*` cannot be read here (there is no {} in this context)",
                    path.root.name(),
                    path.root.name()
                ),
            );
            return Checked::poisoned();
        }
        // The longest leading run of keys is looked up in the schema; indexes below it follow list types.
        let key_count = path
            .segments
            .iter()
            .take_while(|segment| matches!(segment, Segment::Key(_)))
            .count();
        let keys: Vec<&str> = path.segments[..key_count]
            .iter()
            .filter_map(|segment| match segment {
                Segment::Key(key) => Some(key.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        let (declared, event_name_at) = match path.root {
            Root::Profile => (self.profile_path_type(&keys, &span), None),
            Root::Event => self.event_path_type(&keys, &span, 0),
            Root::Journey => self.journey_path_type(&keys, &span),
        };
        let Some(mut ty) = declared else {
            return Checked::poisoned();
        };
        for segment in &path.segments[key_count..] {
            ty = match (segment, ty) {
                (Segment::Index(_), Type::List(item)) => *item,
                (_, Type::Any | Type::Object) => Type::Any,
                (Segment::Key(key), other) => {
                    return self.mismatch(
                        span,
                        format!("cannot read field `{key}` of {}", article(&other)),
                    );
                }
                (Segment::Index(_), other) => {
                    return self.mismatch(span, format!("cannot index {}", article(&other)));
                }
            };
        }
        let compiled = CompiledPath {
            root: path.root,
            segments: path.segments.clone().into_boxed_slice(),
            event_name_at,
            timestamp: ty == Type::Timestamp,
        };
        Checked::new(Node::Path(compiled), ty)
    }

    fn profile_path_type(&mut self, keys: &[&str], span: &Range<usize>) -> Option<Type> {
        if keys.is_empty() {
            return Some(Type::Object);
        }
        let dotted = keys.join(".");
        if let Some(ty) = lookup_declared(&self.schema.profile_attributes, &dotted) {
            return Some(ty);
        }
        if let Some((prefix, ty)) = declared_prefix(&self.schema.profile_attributes, &dotted) {
            let field = &dotted[prefix.len() + 1..];
            self.sink.report(
                codes::TYPE_MISMATCH,
                span.clone(),
                format!(
                    "`profile.{prefix}` is {}, it has no field `{field}`",
                    article(&ty)
                ),
            );
            return None;
        }
        if self.schema.unknown_profile_attributes_allowed {
            return Some(Type::Any);
        }
        self.sink.report(
            codes::UNKNOWN_ATTRIBUTE,
            span.clone(),
            format!("unknown profile attribute `{dotted}`"),
        );
        None
    }

    /// Types a path inside a Segment message (the current event, or `journey.trigger`); `offset` is the index
    /// of the message's first key within the whole path.
    fn event_path_type(
        &mut self,
        keys: &[&str],
        span: &Range<usize>,
        offset: usize,
    ) -> (Option<Type>, Option<usize>) {
        let Some((first, rest)) = keys.split_first() else {
            return (Some(Type::Object), None);
        };
        let built_in = match *first {
            "name" | "event" | "type" | "userId" | "anonymousId" | "messageId" | "channel" => {
                Some(Type::String)
            }
            "timestamp" | "sentAt" | "receivedAt" | "originalTimestamp" => Some(Type::Timestamp),
            "context" | "traits" | "integrations" => Some(Type::Any),
            "properties" => None,
            _ => None,
        };
        if let Some(ty) = built_in {
            let event_name_at = (*first == "name").then_some(offset);
            if !rest.is_empty() && ty != Type::Any {
                self.sink.report(
                    codes::TYPE_MISMATCH,
                    span.clone(),
                    format!("`{first}` has no fields"),
                );
                return (None, None);
            }
            return (
                Some(if rest.is_empty() { ty } else { Type::Any }),
                event_name_at,
            );
        }
        if *first == "properties" {
            if rest.is_empty() {
                return (Some(Type::Object), None);
            }
            let dotted = rest.join(".");
            if offset == 0 {
                if let Some(ty) = self.schema.event_property_type(&dotted) {
                    return (Some(ty), None);
                }
            }
            if offset > 0 || self.schema.unknown_event_properties_allowed {
                return (Some(Type::Any), None);
            }
            let event = self
                .schema
                .current_event
                .as_deref()
                .map_or(String::new(), |name| format!(" of `{name}`"));
            self.sink.report(
                codes::UNKNOWN_FIELD,
                span.clone(),
                format!("unknown event property `{dotted}`{event}"),
            );
            return (None, None);
        }
        if self.schema.unknown_event_properties_allowed {
            return (Some(Type::Any), None);
        }
        self.sink.report(
            codes::UNKNOWN_FIELD,
            span.clone(),
            format!(
                "unknown event field `{first}`; events have name, type, timestamp, userId, anonymousId, messageId, properties, context and traits"
            ),
        );
        (None, None)
    }

    fn journey_path_type(
        &mut self,
        keys: &[&str],
        span: &Range<usize>,
    ) -> (Option<Type>, Option<usize>) {
        if keys.is_empty() {
            return (Some(Type::Object), None);
        }
        let dotted = keys.join(".");
        if let Some(ty) = lookup_declared(&self.schema.journey_fields, &dotted) {
            return (Some(ty), None);
        }
        match keys[0] {
            "id" if keys.len() == 1 => return (Some(Type::String), None),
            "version" if keys.len() == 1 => return (Some(Type::Number), None),
            "entered_at" if keys.len() == 1 => return (Some(Type::Timestamp), None),
            "trigger" => return self.event_path_type(&keys[1..], span, 1),
            _ => {}
        }
        if self.schema.unknown_journey_fields_allowed {
            return (Some(Type::Any), None);
        }
        self.sink.report(
            codes::UNKNOWN_FIELD,
            span.clone(),
            format!("unknown journey field `{dotted}`"),
        );
        (None, None)
    }

    // ---- operators ----

    fn binary(&mut self, op: BinaryOp, left: &Expr, right: &Expr, span: Range<usize>) -> Checked {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let checked_left = self.expr(left);
                let checked_right = self.expr(right);
                let name = if op == BinaryOp::And { "`and`" } else { "`or`" };
                self.require_boolean(&checked_left, left, name);
                self.require_boolean(&checked_right, right, name);
                let (left_node, right_node) =
                    (Box::new(checked_left.node), Box::new(checked_right.node));
                let node = if op == BinaryOp::And {
                    Node::And(left_node, right_node)
                } else {
                    Node::Or(left_node, right_node)
                };
                Checked::new(node, Type::Bool)
            }
            BinaryOp::Equal | BinaryOp::NotEqual => {
                let negated = op == BinaryOp::NotEqual;
                if matches!(right.kind, ExprKind::Null) || matches!(left.kind, ExprKind::Null) {
                    let operand = if matches!(right.kind, ExprKind::Null) {
                        left
                    } else {
                        right
                    };
                    let checked = self.expr(operand);
                    return Checked::new(
                        Node::IsNull {
                            operand: Box::new(checked.node),
                            negated,
                        },
                        Type::Bool,
                    );
                }
                let checked_left = self.expr(left);
                let checked_right = self.expr(right);
                self.check_event_name_literal(&checked_left, right);
                self.check_event_name_literal(&checked_right, left);
                let (checked_left, checked_right) =
                    self.coerce_timestamp_literals(checked_left, checked_right, left, right);
                if !checked_left.ty.comparable_with(&checked_right.ty) {
                    return self.comparison_mismatch(
                        op,
                        &checked_left.ty,
                        &checked_right.ty,
                        right,
                        span,
                    );
                }
                let comparison = if negated {
                    Comparison::NotEqual
                } else {
                    Comparison::Equal
                };
                Checked::new(
                    Node::Compare {
                        comparison,
                        left: Box::new(checked_left.node),
                        right: Box::new(checked_right.node),
                    },
                    Type::Bool,
                )
            }
            BinaryOp::Less
            | BinaryOp::LessOrEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterOrEqual => {
                let checked_left = self.expr(left);
                let checked_right = self.expr(right);
                let (checked_left, checked_right) =
                    self.coerce_timestamp_literals(checked_left, checked_right, left, right);
                let orderable = checked_left.ty.is_orderable()
                    && checked_right.ty.is_orderable()
                    && checked_left.ty.comparable_with(&checked_right.ty);
                if !orderable {
                    return self.comparison_mismatch(
                        op,
                        &checked_left.ty,
                        &checked_right.ty,
                        right,
                        span,
                    );
                }
                let comparison = match op {
                    BinaryOp::Less => Comparison::Less,
                    BinaryOp::LessOrEqual => Comparison::LessOrEqual,
                    BinaryOp::Greater => Comparison::Greater,
                    _ => Comparison::GreaterOrEqual,
                };
                Checked::new(
                    Node::Compare {
                        comparison,
                        left: Box::new(checked_left.node),
                        right: Box::new(checked_right.node),
                    },
                    Type::Bool,
                )
            }
            BinaryOp::In | BinaryOp::NotIn => {
                let checked_item = self.expr(left);
                let checked_list = self.expr(right);
                match &checked_list.ty {
                    Type::List(item_type) if !checked_item.ty.comparable_with(item_type) => {
                        return self.mismatch(
                            span,
                            format!(
                                "cannot look for {} in a list of {item_type}",
                                article(&checked_item.ty)
                            ),
                        );
                    }
                    Type::List(_) | Type::Any | Type::Null => {}
                    Type::String => {
                        return self.mismatch(
                            right.span.clone(),
                            "`in` needs a list; use `contains(text, part)` to search a string"
                                .to_owned(),
                        );
                    }
                    other => {
                        return self.mismatch(
                            right.span.clone(),
                            format!("`in` needs a list, not {}", article(other)),
                        );
                    }
                }
                if let ExprKind::List(items) = &right.kind {
                    for item in items {
                        if let ExprKind::String(name) = &item.kind {
                            self.check_event_name_string(&checked_item, name, item.span.clone());
                        }
                    }
                }
                Checked::new(
                    Node::Member {
                        item: Box::new(checked_item.node),
                        list: Box::new(checked_list.node),
                        negated: op == BinaryOp::NotIn,
                    },
                    Type::Bool,
                )
            }
            BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide => {
                let checked_left = self.expr(left);
                let checked_right = self.expr(right);
                let Some(result) = arithmetic_type(op, &checked_left.ty, &checked_right.ty) else {
                    return self.mismatch(
                        span,
                        format!(
                            "cannot apply `{}` to {} and {}",
                            op.symbol(),
                            article(&checked_left.ty),
                            article(&checked_right.ty)
                        ),
                    );
                };
                let operation = match op {
                    BinaryOp::Add => Arithmetic::Add,
                    BinaryOp::Subtract => Arithmetic::Subtract,
                    BinaryOp::Multiply => Arithmetic::Multiply,
                    _ => Arithmetic::Divide,
                };
                let node = Node::Arithmetic {
                    operation,
                    left: Box::new(checked_left.node),
                    right: Box::new(checked_right.node),
                };
                Checked::new(node, result)
            }
        }
    }

    fn comparison_mismatch(
        &mut self,
        op: BinaryOp,
        left: &Type,
        right: &Type,
        right_expr: &Expr,
        span: Range<usize>,
    ) -> Checked {
        let hint = if *left == Type::Timestamp && matches!(right_expr.kind, ExprKind::String(_)) {
            " (write the date as `date(\"2026-12-24\")`)"
        } else if *left == Type::Timestamp && *right == Type::Number {
            " (use `days_since(...)` to compare an age in days)"
        } else {
            ""
        };
        self.mismatch(
            span,
            format!(
                "cannot compare {} with {} using `{}`{hint}",
                article(left),
                article(right),
                op.symbol()
            ),
        )
    }

    /// A string literal compared with a timestamp is parsed now (an error if it is not a date).
    fn coerce_timestamp_literals(
        &mut self,
        left: Checked,
        right: Checked,
        left_expr: &Expr,
        right_expr: &Expr,
    ) -> (Checked, Checked) {
        let left_type = left.ty.clone();
        let left = self.timestamp_literal_checked(left, &right.ty, left_expr);
        let right = self.timestamp_literal_checked(right, &left_type, right_expr);
        (left, right)
    }

    fn timestamp_literal_checked(
        &mut self,
        checked: Checked,
        other_type: &Type,
        expr: &Expr,
    ) -> Checked {
        if *other_type != Type::Timestamp || !matches!(expr.kind, ExprKind::String(_)) {
            return checked;
        }
        Checked::new(
            self.timestamp_literal(checked.node, other_type, expr),
            Type::Timestamp,
        )
    }

    fn timestamp_literal(&mut self, node: Node, other_type: &Type, expr: &Expr) -> Node {
        if *other_type != Type::Timestamp {
            return node;
        }
        match (&expr.kind, &node) {
            (ExprKind::String(text), Node::Constant(_)) => match time::parse_timestamp(text) {
                Some(ms) => Node::Constant(Value::Timestamp(ms)),
                None => {
                    self.sink.report(
                        codes::INVALID_DATE,
                        expr.span.clone(),
                        format!("`{text}` is not an ISO-8601 date or date-time"),
                    );
                    node
                }
            },
            _ => node,
        }
    }

    /// `event.name == "Some Event"` with an event name the schema does not know is an error.
    fn check_event_name_literal(&mut self, path_side: &Checked, literal_side: &Expr) {
        if let ExprKind::String(name) = &literal_side.kind {
            self.check_event_name_string(path_side, name, literal_side.span.clone());
        }
    }

    fn check_event_name_string(&mut self, path_side: &Checked, name: &str, span: Range<usize>) {
        let is_event_name = matches!(&path_side.node, Node::Path(path) if path.event_name_at.is_some()
            && path.event_name_at == Some(path.segments.len() - 1));
        if is_event_name && !self.schema.knows_event(name) {
            self.sink.report(
                codes::UNKNOWN_EVENT,
                span,
                format!("unknown event `{name}`"),
            );
        }
    }

    // ---- functions ----

    fn arity(
        &mut self,
        name: &str,
        arguments: &[Expr],
        minimum: usize,
        maximum: usize,
        span: &Range<usize>,
    ) -> bool {
        let count = arguments.len();
        if (minimum..=maximum).contains(&count) {
            return true;
        }
        let expected = if minimum == maximum {
            format!("{minimum} argument{}", plural(minimum))
        } else if maximum == usize::MAX {
            format!("at least {minimum} argument{}", plural(minimum))
        } else {
            format!("{minimum} to {maximum} arguments")
        };
        let hint = if name == "count" && count == 3 {
            " (filtering counted events by property is not supported)"
        } else {
            ""
        };
        self.sink.report(
            codes::WRONG_ARITY,
            span.clone(),
            format!("`{name}` takes {expected}, got {count}{hint}"),
        );
        false
    }

    /// Checks an argument against the types it may have; reports a mismatch naming the function.
    fn argument(&mut self, function: &str, argument: &Expr, allowed: &[Type]) -> Checked {
        let checked = self.expr(argument);
        if allowed.iter().any(|ty| checked.ty.fits(ty)) {
            return checked;
        }
        let expected: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        self.mismatch(
            argument.span.clone(),
            format!(
                "`{function}` expects {}, not {}",
                expected.join(" or "),
                article(&checked.ty)
            ),
        )
    }

    /// An argument that must be an instant: a timestamp, or a string literal holding an ISO-8601 date (checked
    /// now), or a string/any from data (parsed at run time).
    fn instant_argument(&mut self, function: &str, argument: &Expr) -> Checked {
        let checked = self.argument(function, argument, &[Type::Timestamp, Type::String]);
        let node = self.timestamp_literal(checked.node, &Type::Timestamp, argument);
        Checked::new(node, checked.ty)
    }

    fn string_literal<'e>(
        &mut self,
        function: &str,
        argument: &'e Expr,
        what: &str,
    ) -> Option<&'e str> {
        match &argument.kind {
            ExprKind::String(text) => Some(text),
            _ => {
                self.expr(argument);
                self.sink.report(
                    codes::EXPECTED_LITERAL,
                    argument.span.clone(),
                    format!("`{function}` needs {what} as a string literal"),
                );
                None
            }
        }
    }

    fn zone_argument(&mut self, function: &str, argument: Option<&Expr>) -> Option<ZoneArgument> {
        let argument = argument?;
        if let ExprKind::String(name) = &argument.kind {
            return match time::parse_zone(name) {
                Some(zone) => Some(ZoneArgument::Fixed(zone)),
                None => {
                    self.sink.report(
                        codes::INVALID_TIMEZONE,
                        argument.span.clone(),
                        format!("`{name}` is not an IANA time zone (such as \"Europe/Berlin\")"),
                    );
                    None
                }
            };
        }
        let checked = self.argument(function, argument, &[Type::String]);
        Some(ZoneArgument::Dynamic(Box::new(checked.node)))
    }

    fn event_name_argument(&mut self, function: &str, argument: &Expr) -> Option<Box<str>> {
        let name = self.string_literal(function, argument, "the event name")?;
        if !self.schema.knows_event(name) {
            self.sink.report(
                codes::UNKNOWN_EVENT,
                argument.span.clone(),
                format!("unknown event `{name}`"),
            );
            return None;
        }
        Some(name.into())
    }

    fn call(
        &mut self,
        name: &str,
        name_span: Range<usize>,
        arguments: &[Expr],
        span: Range<usize>,
    ) -> Checked {
        let simple = |function: Function| Some(function);
        let plain = match name {
            "exists" => simple(Function::Exists),
            "contains" => simple(Function::Contains),
            "starts_with" => simple(Function::StartsWith),
            "ends_with" => simple(Function::EndsWith),
            "lower" => simple(Function::Lower),
            "upper" => simple(Function::Upper),
            "len" => simple(Function::Len),
            "coalesce" => simple(Function::Coalesce),
            "number" => simple(Function::Number),
            "string" => simple(Function::String),
            _ => None,
        };
        if let Some(function) = plain {
            return self.plain_call(function, arguments, span);
        }
        match name {
            "matches" => {
                if !self.arity(name, arguments, 2, 2, &span) {
                    return Checked::poisoned();
                }
                let subject = self.argument(name, &arguments[0], &[Type::String]);
                let Some(pattern) = self.string_literal(name, &arguments[1], "the pattern") else {
                    return Checked::poisoned();
                };
                match regex::Regex::new(pattern) {
                    Ok(regex) => Checked::new(
                        Node::Matches {
                            subject: Box::new(subject.node),
                            regex: Box::new(regex),
                        },
                        Type::Bool,
                    ),
                    Err(error) => {
                        let detail = error
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .trim_start_matches("error: ")
                            .to_owned();
                        self.sink.report(
                            codes::INVALID_REGEX,
                            arguments[1].span.clone(),
                            format!("invalid regular expression: {detail}"),
                        );
                        Checked::poisoned()
                    }
                }
            }
            "now" => {
                if !self.arity(name, arguments, 0, 0, &span) {
                    return Checked::poisoned();
                }
                Checked::new(Node::Now, Type::Timestamp)
            }
            "days_since" | "hours_since" | "minutes_since" | "days_until" | "hours_until" => {
                if !self.arity(name, arguments, 1, 1, &span) {
                    return Checked::poisoned();
                }
                let instant = self.instant_argument(name, &arguments[0]);
                let (direction, unit_ms) = match name {
                    "days_since" => (Elapsed::Since, DAY_MS),
                    "hours_since" => (Elapsed::Since, HOUR_MS),
                    "minutes_since" => (Elapsed::Since, MINUTE_MS),
                    "days_until" => (Elapsed::Until, DAY_MS),
                    _ => (Elapsed::Until, HOUR_MS),
                };
                Checked::new(
                    Node::Elapsed {
                        direction,
                        unit_ms,
                        instant: Box::new(instant.node),
                    },
                    Type::Number,
                )
            }
            "date" => {
                if !self.arity(name, arguments, 1, 2, &span) {
                    return Checked::poisoned();
                }
                let zone = self.zone_argument(name, arguments.get(1));
                if let ExprKind::String(text) = &arguments[0].kind {
                    let fixed_zone = match &zone {
                        Some(ZoneArgument::Fixed(zone)) => Some(*zone),
                        _ => None,
                    };
                    if matches!(zone, None | Some(ZoneArgument::Fixed(_))) {
                        return match time::parse_timestamp_in(text, fixed_zone) {
                            Some(ms) => {
                                Checked::new(Node::Constant(Value::Timestamp(ms)), Type::Timestamp)
                            }
                            None => {
                                self.sink.report(
                                    codes::INVALID_DATE,
                                    arguments[0].span.clone(),
                                    format!("`{text}` is not an ISO-8601 date or date-time (such as \"2026-12-24\")"),
                                );
                                Checked::poisoned()
                            }
                        };
                    }
                }
                let text = self.argument(name, &arguments[0], &[Type::String, Type::Timestamp]);
                Checked::new(
                    Node::Date {
                        text: Box::new(text.node),
                        zone,
                    },
                    Type::Timestamp,
                )
            }
            "hour" | "weekday" | "day" | "month" | "year" => {
                if !self.arity(name, arguments, 1, 2, &span) {
                    return Checked::poisoned();
                }
                let instant = self.instant_argument(name, &arguments[0]);
                let zone = self.zone_argument(name, arguments.get(1));
                let part = match name {
                    "hour" => LocalPart::Hour,
                    "weekday" => LocalPart::Weekday,
                    "day" => LocalPart::Day,
                    "month" => LocalPart::Month,
                    _ => LocalPart::Year,
                };
                Checked::new(
                    Node::LocalPart {
                        part,
                        instant: Box::new(instant.node),
                        zone,
                    },
                    Type::Number,
                )
            }
            "count" => {
                if !self.arity(name, arguments, 1, 2, &span) {
                    return Checked::poisoned();
                }
                let event = self.event_name_argument(name, &arguments[0]);
                let window_ms = match arguments.get(1) {
                    None => None,
                    Some(window) => match &window.kind {
                        ExprKind::Duration(duration) if duration.amount > 0 => {
                            duration.milliseconds()
                        }
                        ExprKind::Duration(_) => {
                            self.sink.report(
                                codes::INVALID_WINDOW,
                                window.span.clone(),
                                "the window must be longer than zero",
                            );
                            None
                        }
                        _ => {
                            self.expr(window);
                            self.sink.report(
                                codes::EXPECTED_LITERAL,
                                window.span.clone(),
                                "`count` needs the window as a duration literal (such as `7d`)",
                            );
                            None
                        }
                    },
                };
                match event {
                    Some(event) => Checked::new(Node::Count { event, window_ms }, Type::Number),
                    None => Checked::poisoned(),
                }
            }
            "first_at" | "last_at" => {
                if !self.arity(name, arguments, 1, 1, &span) {
                    return Checked::poisoned();
                }
                match self.event_name_argument(name, &arguments[0]) {
                    Some(event) => Checked::new(
                        Node::EventTime {
                            event,
                            last: name == "last_at",
                        },
                        Type::Timestamp,
                    ),
                    None => Checked::poisoned(),
                }
            }
            _ => {
                for argument in arguments {
                    self.expr(argument);
                }
                let hint = closest_function(name).map_or(String::new(), |closest| {
                    format!("; did you mean `{closest}`?")
                });
                self.sink.report(
                    codes::UNKNOWN_FUNCTION,
                    name_span,
                    format!("unknown function `{name}`{hint}"),
                );
                Checked::poisoned()
            }
        }
    }

    fn plain_call(
        &mut self,
        function: Function,
        arguments: &[Expr],
        span: Range<usize>,
    ) -> Checked {
        let name = function.name();
        let (minimum, maximum) = match function {
            Function::Contains | Function::StartsWith | Function::EndsWith => (2, 2),
            Function::Coalesce => (1, usize::MAX),
            _ => (1, 1),
        };
        if !self.arity(name, arguments, minimum, maximum, &span) {
            return Checked::poisoned();
        }
        let string = Type::String;
        let (nodes, ty) = match function {
            Function::Exists | Function::Number | Function::String => {
                let checked = self.expr(&arguments[0]);
                let ty = match function {
                    Function::Exists => Type::Bool,
                    Function::Number => Type::Number,
                    _ => Type::String,
                };
                (vec![checked.node], ty)
            }
            Function::Contains => {
                let haystack = self.expr(&arguments[0]);
                let needle = self.expr(&arguments[1]);
                let fits = match &haystack.ty {
                    Type::String => needle.ty.fits(&Type::String),
                    Type::List(item) => needle.ty.comparable_with(item),
                    Type::Any | Type::Null => true,
                    _ => false,
                };
                if !fits {
                    return self.mismatch(
                        span,
                        format!(
                            "`contains` cannot look for {} in {}",
                            article(&needle.ty),
                            article(&haystack.ty)
                        ),
                    );
                }
                (vec![haystack.node, needle.node], Type::Bool)
            }
            Function::StartsWith | Function::EndsWith => {
                let text = self.argument(name, &arguments[0], std::slice::from_ref(&string));
                let part = self.argument(name, &arguments[1], std::slice::from_ref(&string));
                (vec![text.node, part.node], Type::Bool)
            }
            Function::Lower | Function::Upper => {
                let text = self.argument(name, &arguments[0], std::slice::from_ref(&string));
                (vec![text.node], Type::String)
            }
            Function::Len => {
                let any_list = Type::List(Box::new(Type::Any));
                let value =
                    self.argument(name, &arguments[0], &[Type::String, any_list, Type::Object]);
                (vec![value.node], Type::Number)
            }
            Function::Coalesce => {
                let mut ty = Type::Null;
                let mut nodes = Vec::with_capacity(arguments.len());
                for (position, argument) in arguments.iter().enumerate() {
                    let checked = self.expr(argument);
                    ty = if position == 0 {
                        checked.ty
                    } else {
                        ty.join(&checked.ty)
                    };
                    nodes.push(checked.node);
                }
                (nodes, ty)
            }
        };
        Checked::new(
            Node::Call {
                function,
                arguments: nodes,
            },
            ty,
        )
    }
}

/// The static result type of an arithmetic operation, or `None` if the operands do not fit.
fn arithmetic_type(op: BinaryOp, left: &Type, right: &Type) -> Option<Type> {
    use Type::{Any, Duration, Null, Number, Timestamp};
    // Data never holds durations: an `Any` (or null) operand is a number or an ISO-8601 timestamp string.
    let result = match (op, left, right) {
        (_, Null, _) | (_, _, Null) => Any,
        (
            BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide,
            Number,
            Number,
        ) => Number,
        (
            BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide,
            Number | Any,
            Any,
        )
        | (
            BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide,
            Any,
            Number,
        ) => Any,
        (BinaryOp::Add | BinaryOp::Subtract, Timestamp | Any, Duration) => Timestamp,
        (BinaryOp::Add, Duration, Timestamp | Any) => Timestamp,
        (BinaryOp::Add | BinaryOp::Subtract, Duration, Duration) => Duration,
        (BinaryOp::Subtract, Timestamp, Timestamp | Any) | (BinaryOp::Subtract, Any, Timestamp) => {
            Duration
        }
        (BinaryOp::Multiply, Duration, Number | Any)
        | (BinaryOp::Multiply, Number | Any, Duration) => Duration,
        (BinaryOp::Divide, Duration, Number | Any) => Duration,
        (BinaryOp::Divide, Duration, Duration) => Number,
        _ => return None,
    };
    Some(result)
}

/// The known function nearest to a misspelt name (edit distance at most 2).
fn closest_function(name: &str) -> Option<&'static str> {
    FUNCTION_NAMES
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current.push(
                substitution
                    .min(previous[column + 1] + 1)
                    .min(current[column] + 1),
            );
        }
        previous = current;
    }
    previous[right.len()]
}
