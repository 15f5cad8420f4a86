//! Cairn's condition language: one small expression language for journey entry filters, decision splits,
//! goals, exit criteria, audiences and suppression rules.
//!
//! ```text
//! profile.plan == "pro" and days_since(profile.signup_at) > 30
//! count("Product Viewed", 7d) > 0 and count("Order Completed", 7d) == 0
//! ```
//!
//! ```
//! use cairn_condition::{compile, MapContext, Schema, Type};
//! use serde_json::json;
//!
//! let mut schema = Schema::new();
//! schema.profile_attribute("plan", Type::String).profile_attribute("signup_at", Type::Timestamp);
//! let source = "profile.plan == \"pro\" and days_since(profile.signup_at) > 30";
//! let condition = compile(source, &schema).unwrap();
//!
//! let now = 1_781_524_800_000; // 2026-06-15T12:00:00Z
//! let profile = json!({"plan": "pro", "signup_at": "2026-05-20"});
//! let context = MapContext::new(now).with_profile(profile);
//! assert!(!condition.matches(&context)); // 26 whole days
//! // True from 31 whole days after signup, with no new input: the engine sets a timer for then.
//! let signup = 1_779_235_200_000; // 2026-05-20T00:00:00Z
//! assert_eq!(condition.next_change_after(&context), Some(signup + 31 * 86_400_000));
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
//! Modules: `lexer` → `parser` → [`ast`] → `check` (types, against the schema) → `compile` (the evaluable
//! tree) → `eval` / `functions` / `time`; `horizon` answers `next_change_after`; `references` collects what a
//! condition reads; `explain` splits it into clauses for traces; `diagnostics` holds the codes; `context` the [`EvalContext`] trait and [`MapContext`].

pub mod ast;
mod check;
mod compile;
mod context;
mod diagnostics;
mod eval;
mod explain;
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
pub use explain::ClauseExplanation;
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

impl From<Vec<Diagnostic>> for ConditionError {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        ConditionError::Invalid(diagnostics)
    }
}

/// Parses a condition into its syntax tree. Reports every lexical error and the first syntax error of each
/// top-level `and`/`or` clause.
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
