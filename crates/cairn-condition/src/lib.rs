//! Cairn's condition language: one small expression language for journey entry filters, decision splits,
//! goals, exit criteria, audiences and suppression rules.
//!
//! ```text
//! profile.plan == "pro" and days_since(profile.signup_at) > 30
//! count("Product Viewed", 7d) > 0 and count("Order Completed", 7d) == 0
//! ```
//!
//! A condition is parsed ([`parse`]), type-checked against a [`Schema`] and compiled ([`compile`]) once, when
//! a journey or audience is validated; the resulting [`Condition`] evaluates against an [`EvalContext`]
//! without re-parsing and, in the common path, without allocating. The crate is pure: no I/O and no clock
//! reads; "now" comes from the context.
//!
//! Beyond evaluation, a condition says what it reads ([`Condition::references`], so the engine can index
//! conditions by event name and attribute) and when its value can next change by the passage of time alone
//! ([`Condition::next_change_after`], so audiences stay current with one timer per profile instead of
//! rescans). The language is documented in `docs/conditions.md`.
//!
//! Modules: [`lexer`](crate::lexer) → [`parser`](crate::parser) → [`ast`] → `check` (types, against the
//! schema) → `compile` (the evaluable tree) → `eval` / `functions` / `time`; `horizon` answers
//! `next_change_after`; `references` collects what a condition reads.

pub mod ast;
mod check;
mod compile;
mod context;
mod diagnostics;
mod eval;
mod functions;
mod horizon;
mod lexer;
mod parser;
mod references;
mod time;
mod types;
mod value;

pub use ast::{
    BinaryOp, DurationLiteral, DurationUnit, Expr, ExprKind, Path, Root, Segment, UnaryOp,
};
pub use compile::Condition;
pub use context::{EvalContext, MapContext};
pub use diagnostics::{codes, line_and_column, render, Diagnostic};
pub use functions::FUNCTION_NAMES;
pub use references::References;
pub use types::{Schema, Type};
pub use value::{ListValue, Value};

use diagnostics::DiagnosticSink;

/// The crate's error: a condition that does not compile, with every diagnostic found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("invalid condition: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
}

/// Parses a condition into its syntax tree. Reports every lexical error and the first syntax error.
pub fn parse(source: &str) -> Result<Expr, Vec<Diagnostic>> {
    let mut sink = DiagnosticSink::new(source);
    if source.len() > parser::MAX_SOURCE_BYTES {
        sink.report(
            codes::TOO_COMPLEX,
            0..source.len(),
            format!(
                "the condition is longer than {} bytes",
                parser::MAX_SOURCE_BYTES
            ),
        );
        return Err(sink.into_diagnostics());
    }
    let tokens = lexer::tokenize(source, &mut sink);
    let parsed = parser::Parser::new(&tokens, &mut sink).parse_condition();
    match parsed {
        Ok(expr) if sink.is_empty() => Ok(expr),
        _ => Err(sink.into_diagnostics()),
    }
}

/// Parses, type-checks and compiles a condition: its value must be a boolean (or `Any`).
/// Reports every type error found.
pub fn compile(source: &str, schema: &Schema) -> Result<Condition, Vec<Diagnostic>> {
    compile::compile(source, schema, true)
}

/// Like [`compile`], for an expression of any type (a computed value rather than a condition).
pub fn compile_expression(source: &str, schema: &Schema) -> Result<Condition, Vec<Diagnostic>> {
    compile::compile(source, schema, false)
}
