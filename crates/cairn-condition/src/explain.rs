//! Explanations for traces: a condition split into its top-level clauses, each with its value and the values
//! of the data it read, so a trace can say why a branch was taken ("days_since(profile.signup_at) > 30 was
//! false: profile.signup_at = 2026-06-01").

use crate::ast::{BinaryOp, Expr, ExprKind};
use crate::check::check;
use crate::compile::{fold_constants, specialize, Node};
use crate::context::EvalContext;
use crate::diagnostics::DiagnosticSink;
use crate::eval::evaluate;
use crate::types::Schema;

/// One top-level clause of a condition and what it evaluated to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClauseExplanation {
    /// The clause's source text.
    pub clause: String,
    /// Its value (timestamps as RFC 3339 strings, durations in milliseconds).
    pub value: serde_json::Value,
    /// The data it read: each path, aggregate and `now()` with its value, in source order.
    pub inputs: Vec<(String, serde_json::Value)>,
}

/// A piece of source and its compiled node.
type Labelled = (String, Node);

/// Compiled clauses and inputs, built once with the condition.
#[derive(Debug)]
pub(crate) struct ExplanationPlan {
    clauses: Vec<(Labelled, Vec<Labelled>)>,
}

impl ExplanationPlan {
    /// Splits a checked expression at its top-level `and`s or `or`s and compiles each clause and input.
    pub(crate) fn new(source: &str, expr: &Expr, schema: &Schema) -> ExplanationPlan {
        let mut clause_exprs = Vec::new();
        match &expr.kind {
            ExprKind::Binary(op @ (BinaryOp::And | BinaryOp::Or), ..) => {
                flatten(expr, *op, &mut clause_exprs)
            }
            _ => clause_exprs.push(expr),
        }
        let compile_part = |part: &Expr| {
            // The whole expression type-checked, so its parts do too; a sink is needed but stays empty.
            let mut sink = DiagnosticSink::new(source);
            let node = specialize(fold_constants(check(part, schema, &mut sink).node));
            debug_assert!(sink.is_empty(), "a part of a checked expression checks");
            (source.get(part.span.clone()).unwrap_or("").to_owned(), node)
        };
        let clauses = clause_exprs
            .into_iter()
            .map(|clause| {
                let (text, node) = compile_part(clause);
                let mut input_exprs = Vec::new();
                collect_inputs(clause, &mut input_exprs);
                let mut inputs: Vec<Labelled> = Vec::new();
                for input in input_exprs {
                    let (label, node) = compile_part(input);
                    if !inputs.iter().any(|(existing, _)| *existing == label) {
                        inputs.push((label, node));
                    }
                }
                ((text, node), inputs)
            })
            .collect();
        ExplanationPlan { clauses }
    }

    pub(crate) fn explain(&self, ctx: &dyn EvalContext) -> Vec<ClauseExplanation> {
        self.clauses
            .iter()
            .map(|((clause, node), inputs)| ClauseExplanation {
                clause: clause.clone(),
                value: evaluate(node, ctx).to_json(),
                inputs: inputs
                    .iter()
                    .map(|(label, node)| (label.clone(), evaluate(node, ctx).to_json()))
                    .collect(),
            })
            .collect()
    }
}

fn flatten<'e>(expr: &'e Expr, op: BinaryOp, out: &mut Vec<&'e Expr>) {
    match &expr.kind {
        ExprKind::Binary(inner, left, right) if *inner == op => {
            flatten(left, op, out);
            flatten(right, op, out);
        }
        _ => out.push(expr),
    }
}

/// Paths, aggregates and `now()` inside an expression, outermost first.
fn collect_inputs<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &expr.kind {
        ExprKind::Path(_) => out.push(expr),
        ExprKind::Call { name, .. }
            if matches!(name.as_str(), "count" | "first_at" | "last_at" | "now") =>
        {
            out.push(expr)
        }
        ExprKind::Call { arguments, .. } => arguments
            .iter()
            .for_each(|argument| collect_inputs(argument, out)),
        ExprKind::List(items) => items.iter().for_each(|item| collect_inputs(item, out)),
        ExprKind::Unary(_, operand) => collect_inputs(operand, out),
        ExprKind::Binary(_, left, right) => {
            collect_inputs(left, out);
            collect_inputs(right, out);
        }
        _ => {}
    }
}
