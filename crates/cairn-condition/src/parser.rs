//! The recursive-descent parser: tokens to an [`Expr`].
//!
//! Grammar (loosest first; see `docs/conditions.md`):
//! ```text
//! condition  = or EOF
//! or         = and ("or" and)*
//! and        = not ("and" not)*
//! not        = "not" not | comparison
//! comparison = additive (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") additive)?
//! additive   = multiplicative (("+" | "-") multiplicative)*
//! multiplicative = unary (("*" | "/") unary)*
//! unary      = "-" unary | primary
//! primary    = NUMBER | DURATION | STRING | "true" | "false" | "null" | list | "(" or ")"
//!            | IDENT "(" arguments? ")" | ROOT ("." KEY | "[" (STRING | INTEGER) "]")*
//! ```
//! Every lexical error is reported; after a syntax error the parser resumes at the next top-level `and` or
//! `or`, so each clause's first syntax error is reported.

use crate::ast::{BinaryOp, Expr, ExprKind, Path, Root, Segment, UnaryOp};
use crate::diagnostics::{codes, DiagnosticSink};
use crate::lexer::{describe, Token, TokenKind};

/// Deepest nesting accepted, so that a hostile condition cannot overflow the stack.
pub(crate) const MAX_DEPTH: usize = 64;
/// Longest source accepted, in bytes.
pub(crate) const MAX_SOURCE_BYTES: usize = 64 * 1024;

/// A syntax error already reported to the sink.
pub(crate) struct Stop;

type Parsed = Result<Expr, Stop>;

pub(crate) struct Parser<'tokens, 'sink, 'source> {
    tokens: &'tokens [Token],
    position: usize,
    depth: usize,
    sink: &'sink mut DiagnosticSink<'source>,
}

impl<'tokens, 'sink, 'source> Parser<'tokens, 'sink, 'source> {
    pub(crate) fn new(tokens: &'tokens [Token], sink: &'sink mut DiagnosticSink<'source>) -> Self {
        debug_assert!(tokens
            .last()
            .is_some_and(|token| token.kind == TokenKind::End));
        Parser {
            tokens,
            position: 0,
            depth: 0,
            sink,
        }
    }

    pub(crate) fn parse_condition(&mut self) -> Parsed {
        let mut first_result = None;
        loop {
            let result = self.or().and_then(|expr| {
                if self.peek().kind == TokenKind::End {
                    Ok(expr)
                } else {
                    let token = self.peek().clone();
                    Err(self.unexpected(&token, "an operator or the end of the condition"))
                }
            });
            let failed = result.is_err();
            first_result.get_or_insert(result);
            // After a syntax error, resume at the next top-level `and`/`or` so that one pass reports the
            // errors of every clause.
            if !failed || !self.synchronize() {
                break;
            }
        }
        match first_result {
            Some(Ok(expr)) => Ok(expr),
            _ => Err(Stop),
        }
    }

    /// Skips to just after the next `and`/`or` outside the brackets opened since the error; `false` at the end.
    fn synchronize(&mut self) -> bool {
        self.depth = 0;
        let mut nesting = 0usize;
        loop {
            match self.peek().kind {
                TokenKind::End => return false,
                TokenKind::LeftParen | TokenKind::LeftBracket => nesting += 1,
                TokenKind::RightParen | TokenKind::RightBracket => {
                    nesting = nesting.saturating_sub(1)
                }
                TokenKind::And | TokenKind::Or if nesting == 0 => {
                    self.advance();
                    return true;
                }
                _ => {}
            }
            self.advance();
        }
    }

    fn peek(&self) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[self.position.min(last)]
    }

    fn peek_kind_at(&self, ahead: usize) -> &TokenKind {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.position + ahead).min(last)].kind
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.position < self.tokens.len() - 1 {
            self.position += 1;
        }
        token
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if &self.peek().kind == kind {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: &TokenKind, expected: &str) -> Result<Token, Stop> {
        if &self.peek().kind == kind {
            Ok(self.advance())
        } else {
            let token = self.peek().clone();
            Err(self.unexpected(&token, expected))
        }
    }

    /// Reports an unexpected token (quietly stops on a lexical error, which is already reported).
    fn unexpected(&mut self, token: &Token, expected: &str) -> Stop {
        match &token.kind {
            TokenKind::Error => {}
            TokenKind::End => self.sink.report(
                codes::UNEXPECTED_END,
                token.span.clone(),
                format!("the condition ends too early; expected {expected}"),
            ),
            TokenKind::Foreign(text) => {
                let replacement = match *text {
                    "&&" => "and",
                    "||" => "or",
                    "!" => "not",
                    _ => "==",
                };
                self.sink.report(
                    codes::UNEXPECTED_TOKEN,
                    token.span.clone(),
                    format!("`{text}` is not an operator here; use `{replacement}`"),
                );
            }
            other => self.sink.report(
                codes::UNEXPECTED_TOKEN,
                token.span.clone(),
                format!("expected {expected}, found {}", describe(other)),
            ),
        }
        Stop
    }

    fn enter(&mut self) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let span = self.peek().span.clone();
            self.sink.report(
                codes::TOO_COMPLEX,
                span,
                format!("the condition nests deeper than {MAX_DEPTH} levels"),
            );
            return Err(Stop);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        let span = left.span.start..right.span.end;
        Expr {
            kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
            span,
        }
    }

    fn or(&mut self) -> Parsed {
        self.enter()?;
        let mut left = self.and()?;
        while self.eat(&TokenKind::Or) {
            let right = self.and()?;
            left = Self::binary(BinaryOp::Or, left, right);
        }
        self.leave();
        Ok(left)
    }

    fn and(&mut self) -> Parsed {
        let mut left = self.not()?;
        while self.eat(&TokenKind::And) {
            let right = self.not()?;
            left = Self::binary(BinaryOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Parsed {
        if self.peek().kind == TokenKind::Not {
            let start = self.advance().span.start;
            self.enter()?;
            let operand = self.not()?;
            self.leave();
            let span = start..operand.span.end;
            return Ok(Expr {
                kind: ExprKind::Unary(UnaryOp::Not, Box::new(operand)),
                span,
            });
        }
        self.comparison()
    }

    fn comparison_operator(&self) -> Option<(BinaryOp, usize)> {
        Some(match self.peek().kind {
            TokenKind::Equal => (BinaryOp::Equal, 1),
            TokenKind::NotEqual => (BinaryOp::NotEqual, 1),
            TokenKind::Less => (BinaryOp::Less, 1),
            TokenKind::LessOrEqual => (BinaryOp::LessOrEqual, 1),
            TokenKind::Greater => (BinaryOp::Greater, 1),
            TokenKind::GreaterOrEqual => (BinaryOp::GreaterOrEqual, 1),
            TokenKind::In => (BinaryOp::In, 1),
            TokenKind::Not if *self.peek_kind_at(1) == TokenKind::In => (BinaryOp::NotIn, 2),
            _ => return None,
        })
    }

    fn comparison(&mut self) -> Parsed {
        let left = self.additive()?;
        let Some((op, token_count)) = self.comparison_operator() else {
            return Ok(left);
        };
        for _ in 0..token_count {
            self.advance();
        }
        let right = self.additive()?;
        if let Some((second, _)) = self.comparison_operator() {
            let span = self.peek().span.clone();
            self.sink.report(
                codes::CHAINED_COMPARISON,
                span,
                format!(
                    "comparisons do not chain; write `a {} b and b {} c`",
                    op.symbol(),
                    second.symbol()
                ),
            );
            return Err(Stop);
        }
        Ok(Self::binary(op, left, right))
    }

    fn additive(&mut self) -> Parsed {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => BinaryOp::Add,
                TokenKind::Minus => BinaryOp::Subtract,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.multiplicative()?;
            left = Self::binary(op, left, right);
        }
    }

    fn multiplicative(&mut self) -> Parsed {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Star => BinaryOp::Multiply,
                TokenKind::Slash => BinaryOp::Divide,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.unary()?;
            left = Self::binary(op, left, right);
        }
    }

    fn unary(&mut self) -> Parsed {
        if self.peek().kind == TokenKind::Minus {
            let start = self.advance().span.start;
            self.enter()?;
            let operand = self.unary()?;
            self.leave();
            let span = start..operand.span.end;
            return Ok(Expr {
                kind: ExprKind::Unary(UnaryOp::Negate, Box::new(operand)),
                span,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Parsed {
        let token = self.advance();
        let span = token.span.clone();
        let kind = match token.kind {
            TokenKind::Number(number) => ExprKind::Number(number),
            TokenKind::Duration(duration) => ExprKind::Duration(duration),
            TokenKind::String(text) => ExprKind::String(text),
            TokenKind::True => ExprKind::Bool(true),
            TokenKind::False => ExprKind::Bool(false),
            TokenKind::Null => ExprKind::Null,
            TokenKind::LeftParen => {
                let inner = self.or()?;
                let close = self.expect(&TokenKind::RightParen, "`)`")?;
                return Ok(Expr {
                    kind: inner.kind,
                    span: span.start..close.span.end,
                });
            }
            TokenKind::LeftBracket => {
                self.enter()?;
                let (items, end) = self.list_items(&TokenKind::RightBracket, "`,` or `]`")?;
                self.leave();
                return Ok(Expr {
                    kind: ExprKind::List(items),
                    span: span.start..end,
                });
            }
            TokenKind::Identifier(name) => {
                if self.peek().kind == TokenKind::LeftParen {
                    self.advance();
                    self.enter()?;
                    let (arguments, end) = self.list_items(&TokenKind::RightParen, "`,` or `)`")?;
                    self.leave();
                    return Ok(Expr {
                        kind: ExprKind::Call { name, arguments },
                        span: span.start..end,
                    });
                }
                let Some(root) = Root::from_name(&name) else {
                    self.report_unknown_name(&name, span);
                    return Err(Stop);
                };
                return self.path(root, span);
            }
            _ => return Err(self.unexpected(&token, "a value, a path or a function call")),
        };
        Ok(Expr { kind, span })
    }

    fn report_unknown_name(&mut self, name: &str, span: std::ops::Range<usize>) {
        let hint = match name {
            "True" | "TRUE" => " (booleans are `true` and `false`)".to_owned(),
            "False" | "FALSE" => " (booleans are `true` and `false`)".to_owned(),
            "AND" | "OR" | "NOT" | "IN" => format!(" (operators are lowercase: `{}`)", name.to_lowercase()),
            "None" | "nil" | "NULL" | "undefined" => " (use `null`)".to_owned(),
            "properties" | "traits" => format!(" (write `event.{name}.…` or `profile.…`)"),
            _ => format!(" (paths start with `profile.`, `event.` or `journey.`; did you mean `profile.{name}`?)"),
        };
        self.sink.report(
            codes::UNKNOWN_NAME,
            span,
            format!("unknown name `{name}`{hint}"),
        );
    }

    /// Items separated by commas up to `close` (a trailing comma is allowed); returns them and the end offset.
    fn list_items(
        &mut self,
        close: &TokenKind,
        expected: &str,
    ) -> Result<(Vec<Expr>, usize), Stop> {
        let mut items = Vec::new();
        loop {
            if &self.peek().kind == close {
                let end = self.advance().span.end;
                return Ok((items, end));
            }
            items.push(self.or()?);
            if !self.eat(&TokenKind::Comma) {
                let end = self.expect(close, expected)?.span.end;
                return Ok((items, end));
            }
        }
    }

    fn path(&mut self, root: Root, root_span: std::ops::Range<usize>) -> Parsed {
        let mut segments = Vec::new();
        let mut end = root_span.end;
        loop {
            match self.peek().kind {
                TokenKind::Dot => {
                    self.advance();
                    let token = self.advance();
                    let key = match token.kind {
                        TokenKind::Identifier(name) => name,
                        TokenKind::And => "and".to_owned(),
                        TokenKind::Or => "or".to_owned(),
                        TokenKind::Not => "not".to_owned(),
                        TokenKind::In => "in".to_owned(),
                        TokenKind::True => "true".to_owned(),
                        TokenKind::False => "false".to_owned(),
                        TokenKind::Null => "null".to_owned(),
                        _ => {
                            return Err(self.unexpected(
                                &token,
                                "a field name (use `[\"...\"]` for other keys)",
                            ));
                        }
                    };
                    segments.push(Segment::Key(key));
                    end = token.span.end;
                }
                TokenKind::LeftBracket => {
                    self.advance();
                    let token = self.advance();
                    let segment = match token.kind {
                        TokenKind::String(key) => Segment::Key(key),
                        TokenKind::Number(number)
                            if number >= 0.0 && number.fract() == 0.0 && number < 1e15 =>
                        {
                            Segment::Index(number as u64)
                        }
                        TokenKind::Error => return Err(Stop),
                        _ => {
                            self.sink.report(
                                codes::INVALID_PATH,
                                token.span.clone(),
                                "a bracket holds a string key or a whole-number index",
                            );
                            return Err(Stop);
                        }
                    };
                    segments.push(segment);
                    end = self.expect(&TokenKind::RightBracket, "`]`")?.span.end;
                }
                _ => break,
            }
        }
        Ok(Expr {
            kind: ExprKind::Path(Path { root, segments }),
            span: root_span.start..end,
        })
    }
}
