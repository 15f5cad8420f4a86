//! The syntax tree produced by [`crate::parse`], and its pretty-printer (`Display`), which prints source that
//! parses back to the same tree.

use std::fmt;
use std::ops::Range;

/// An expression with the byte span of its source.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Range<usize>,
}

/// Trees compare equal when they have the same shape and literals; spans are ignored.
impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.kind == other.kind
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Duration(DurationLiteral),
    List(Vec<Expr>),
    Path(Path),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Call { name: String, arguments: Vec<Expr> },
}

/// A duration literal as written: an amount and a unit (`7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationLiteral {
    pub amount: u64,
    pub unit: DurationUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl DurationUnit {
    pub const ALL: [DurationUnit; 6] = [
        DurationUnit::Milliseconds,
        DurationUnit::Seconds,
        DurationUnit::Minutes,
        DurationUnit::Hours,
        DurationUnit::Days,
        DurationUnit::Weeks,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            DurationUnit::Milliseconds => "ms",
            DurationUnit::Seconds => "s",
            DurationUnit::Minutes => "m",
            DurationUnit::Hours => "h",
            DurationUnit::Days => "d",
            DurationUnit::Weeks => "w",
        }
    }

    pub fn milliseconds(self) -> i64 {
        match self {
            DurationUnit::Milliseconds => 1,
            DurationUnit::Seconds => 1_000,
            DurationUnit::Minutes => 60_000,
            DurationUnit::Hours => 3_600_000,
            DurationUnit::Days => 86_400_000,
            DurationUnit::Weeks => 604_800_000,
        }
    }

    pub fn from_suffix(suffix: &str) -> Option<DurationUnit> {
        DurationUnit::ALL
            .into_iter()
            .find(|unit| unit.suffix() == suffix)
    }
}

impl DurationLiteral {
    /// The length in milliseconds, or `None` if it does not fit in an `i64`.
    pub fn milliseconds(self) -> Option<i64> {
        i64::try_from(self.amount)
            .ok()?
            .checked_mul(self.unit.milliseconds())
    }
}

/// The three roots a path can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Root {
    Profile,
    Event,
    Journey,
}

impl Root {
    pub fn name(self) -> &'static str {
        match self {
            Root::Profile => "profile",
            Root::Event => "event",
            Root::Journey => "journey",
        }
    }

    pub fn from_name(name: &str) -> Option<Root> {
        match name {
            "profile" => Some(Root::Profile),
            "event" => Some(Root::Event),
            "journey" => Some(Root::Journey),
            _ => None,
        }
    }
}

/// `profile.address.city`, `profile["first name"]`, `profile.tags[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub root: Root,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(u64),
}

impl Path {
    /// The path below its root with dots between keys and `[n]` for indexes: `address.city`, `tags[0]`.
    pub fn dotted(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(index) => out.push_str(&format!("[{index}]")),
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Negate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    In,
    NotIn,
    Add,
    Subtract,
    Multiply,
    Divide,
}

/// Binding strength, loosest first. Comparisons do not chain.
pub(crate) mod precedence {
    pub const OR: u8 = 1;
    pub const AND: u8 = 2;
    pub const NOT: u8 = 3;
    pub const COMPARISON: u8 = 4;
    pub const ADDITIVE: u8 = 5;
    pub const MULTIPLICATIVE: u8 = 6;
    pub const NEGATE: u8 = 7;
    pub const PRIMARY: u8 = 8;
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessOrEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterOrEqual => ">=",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "not in",
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
        }
    }

    pub(crate) fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => precedence::OR,
            BinaryOp::And => precedence::AND,
            BinaryOp::Add | BinaryOp::Subtract => precedence::ADDITIVE,
            BinaryOp::Multiply | BinaryOp::Divide => precedence::MULTIPLICATIVE,
            _ => precedence::COMPARISON,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == precedence::COMPARISON
    }
}

impl Expr {
    pub(crate) fn precedence(&self) -> u8 {
        match &self.kind {
            ExprKind::Binary(op, _, _) => op.precedence(),
            ExprKind::Unary(UnaryOp::Not, _) => precedence::NOT,
            ExprKind::Unary(UnaryOp::Negate, _) => precedence::NEGATE,
            _ => precedence::PRIMARY,
        }
    }
}

/// Writes `text` as a double-quoted string literal with escapes.
pub(crate) fn write_string_literal(formatter: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    formatter.write_str("\"")?;
    for character in text.chars() {
        match character {
            '"' => formatter.write_str("\\\"")?,
            '\\' => formatter.write_str("\\\\")?,
            '\n' => formatter.write_str("\\n")?,
            '\r' => formatter.write_str("\\r")?,
            '\t' => formatter.write_str("\\t")?,
            control if control.is_control() => write!(formatter, "\\u{{{:x}}}", control as u32)?,
            other => write!(formatter, "{other}")?,
        }
    }
    formatter.write_str("\"")
}

pub(crate) fn is_identifier(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

fn write_child(
    formatter: &mut fmt::Formatter<'_>,
    child: &Expr,
    minimum_precedence: u8,
) -> fmt::Result {
    if child.precedence() < minimum_precedence {
        write!(formatter, "({child})")
    } else {
        write!(formatter, "{child}")
    }
}

impl fmt::Display for Path {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.root.name())?;
        for segment in &self.segments {
            match segment {
                Segment::Key(key) if is_identifier(key) => write!(formatter, ".{key}")?,
                Segment::Key(key) => {
                    formatter.write_str("[")?;
                    write_string_literal(formatter, key)?;
                    formatter.write_str("]")?;
                }
                Segment::Index(index) => write!(formatter, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Null => formatter.write_str("null"),
            ExprKind::Bool(flag) => write!(formatter, "{flag}"),
            ExprKind::Number(number) => write!(formatter, "{number}"),
            ExprKind::String(text) => write_string_literal(formatter, text),
            ExprKind::Duration(duration) => {
                write!(formatter, "{}{}", duration.amount, duration.unit.suffix())
            }
            ExprKind::List(items) => {
                formatter.write_str("[")?;
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{item}")?;
                }
                formatter.write_str("]")
            }
            ExprKind::Path(path) => write!(formatter, "{path}"),
            ExprKind::Unary(UnaryOp::Not, operand) => {
                formatter.write_str("not ")?;
                write_child(formatter, operand, precedence::NOT)
            }
            ExprKind::Unary(UnaryOp::Negate, operand) => {
                formatter.write_str("-")?;
                // `- -x` would print as `--x`; parenthesize nested negations and negative literals.
                if matches!(operand.kind, ExprKind::Unary(UnaryOp::Negate, _)) {
                    write!(formatter, "({operand})")
                } else {
                    write_child(formatter, operand, precedence::NEGATE)
                }
            }
            ExprKind::Binary(op, left, right) => {
                let own = op.precedence();
                // Left-associative: the left child may have equal precedence, the right must bind tighter.
                // Comparisons do not chain, so both sides of one must bind tighter.
                let left_minimum = if op.is_comparison() { own + 1 } else { own };
                write_child(formatter, left, left_minimum)?;
                write!(formatter, " {} ", op.symbol())?;
                write_child(formatter, right, own + 1)
            }
            ExprKind::Call {
                name, arguments, ..
            } => {
                write!(formatter, "{name}(")?;
                for (position, argument) in arguments.iter().enumerate() {
                    if position > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{argument}")?;
                }
                formatter.write_str(")")
            }
        }
    }
}
