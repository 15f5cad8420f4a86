//! The lexer: source text to tokens with byte spans. Lexical errors are reported and lexing goes on, so one
//! pass finds every bad character, string and number.

use std::ops::Range;

use crate::ast::{DurationLiteral, DurationUnit};
use crate::diagnostics::{codes, DiagnosticSink};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Identifier(String),
    Number(f64),
    Duration(DurationLiteral),
    String(String),
    And,
    Or,
    Not,
    In,
    True,
    False,
    Null,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Plus,
    Minus,
    Star,
    Slash,
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    Dot,
    /// A token from another language (`&&`, `||`, `!`, `=`): reported by the parser with a hint.
    Foreign(&'static str),
    /// A lexical error already reported; the parser stops quietly on it.
    Error,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Range<usize>,
}

pub(crate) fn describe(kind: &TokenKind) -> String {
    match kind {
        TokenKind::Identifier(name) => format!("`{name}`"),
        TokenKind::Number(_) => "a number".to_owned(),
        TokenKind::Duration(_) => "a duration".to_owned(),
        TokenKind::String(_) => "a string".to_owned(),
        TokenKind::And => "`and`".to_owned(),
        TokenKind::Or => "`or`".to_owned(),
        TokenKind::Not => "`not`".to_owned(),
        TokenKind::In => "`in`".to_owned(),
        TokenKind::True => "`true`".to_owned(),
        TokenKind::False => "`false`".to_owned(),
        TokenKind::Null => "`null`".to_owned(),
        TokenKind::Equal => "`==`".to_owned(),
        TokenKind::NotEqual => "`!=`".to_owned(),
        TokenKind::Less => "`<`".to_owned(),
        TokenKind::LessOrEqual => "`<=`".to_owned(),
        TokenKind::Greater => "`>`".to_owned(),
        TokenKind::GreaterOrEqual => "`>=`".to_owned(),
        TokenKind::Plus => "`+`".to_owned(),
        TokenKind::Minus => "`-`".to_owned(),
        TokenKind::Star => "`*`".to_owned(),
        TokenKind::Slash => "`/`".to_owned(),
        TokenKind::LeftParen => "`(`".to_owned(),
        TokenKind::RightParen => "`)`".to_owned(),
        TokenKind::LeftBracket => "`[`".to_owned(),
        TokenKind::RightBracket => "`]`".to_owned(),
        TokenKind::Comma => "`,`".to_owned(),
        TokenKind::Dot => "`.`".to_owned(),
        TokenKind::Foreign(text) => format!("`{text}`"),
        TokenKind::Error => "an invalid token".to_owned(),
        TokenKind::End => "the end of the condition".to_owned(),
    }
}

fn keyword(word: &str) -> Option<TokenKind> {
    Some(match word {
        "and" => TokenKind::And,
        "or" => TokenKind::Or,
        "not" => TokenKind::Not,
        "in" => TokenKind::In,
        "true" => TokenKind::True,
        "false" => TokenKind::False,
        "null" => TokenKind::Null,
        _ => return None,
    })
}

pub(crate) fn tokenize(source: &str, sink: &mut DiagnosticSink<'_>) -> Vec<Token> {
    let mut lexer = Lexer {
        source,
        bytes: source.as_bytes(),
        position: 0,
        tokens: Vec::new(),
    };
    lexer.run(sink);
    lexer.tokens
}

struct Lexer<'source> {
    source: &'source str,
    bytes: &'source [u8],
    position: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: start..self.position,
        });
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.position + ahead).copied()
    }

    fn run(&mut self, sink: &mut DiagnosticSink<'_>) {
        while let Some(byte) = self.peek(0) {
            let start = self.position;
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => self.position += 1,
                b'0'..=b'9' => self.number(sink),
                b'"' | b'\'' => self.string(byte, sink),
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    while self
                        .peek(0)
                        .is_some_and(|next| next.is_ascii_alphanumeric() || next == b'_')
                    {
                        self.position += 1;
                    }
                    let word = &self.source[start..self.position];
                    let kind =
                        keyword(word).unwrap_or_else(|| TokenKind::Identifier(word.to_owned()));
                    self.push(kind, start);
                }
                _ => self.operator(byte, sink),
            }
        }
        let end = self.source.len();
        self.tokens.push(Token {
            kind: TokenKind::End,
            span: end..end,
        });
    }

    fn operator(&mut self, byte: u8, sink: &mut DiagnosticSink<'_>) {
        let start = self.position;
        let next = self.peek(1);
        let (kind, length) = match (byte, next) {
            (b'=', Some(b'=')) => (TokenKind::Equal, 2),
            (b'!', Some(b'=')) => (TokenKind::NotEqual, 2),
            (b'<', Some(b'=')) => (TokenKind::LessOrEqual, 2),
            (b'>', Some(b'=')) => (TokenKind::GreaterOrEqual, 2),
            (b'&', Some(b'&')) => (TokenKind::Foreign("&&"), 2),
            (b'|', Some(b'|')) => (TokenKind::Foreign("||"), 2),
            (b'=', _) => (TokenKind::Foreign("="), 1),
            (b'!', _) => (TokenKind::Foreign("!"), 1),
            (b'<', _) => (TokenKind::Less, 1),
            (b'>', _) => (TokenKind::Greater, 1),
            (b'+', _) => (TokenKind::Plus, 1),
            (b'-', _) => (TokenKind::Minus, 1),
            (b'*', _) => (TokenKind::Star, 1),
            (b'/', _) => (TokenKind::Slash, 1),
            (b'(', _) => (TokenKind::LeftParen, 1),
            (b')', _) => (TokenKind::RightParen, 1),
            (b'[', _) => (TokenKind::LeftBracket, 1),
            (b']', _) => (TokenKind::RightBracket, 1),
            (b',', _) => (TokenKind::Comma, 1),
            (b'.', _) => (TokenKind::Dot, 1),
            _ => {
                let character = self.source[start..].chars().next().unwrap_or('\u{fffd}');
                self.position += character.len_utf8();
                sink.report(
                    codes::INVALID_CHARACTER,
                    start..self.position,
                    format!("unexpected character `{}`", character.escape_debug()),
                );
                self.push(TokenKind::Error, start);
                return;
            }
        };
        self.position += length;
        self.push(kind, start);
    }

    fn number(&mut self, sink: &mut DiagnosticSink<'_>) {
        let start = self.position;
        let mut is_integer = true;
        while self.peek(0).is_some_and(|byte| byte.is_ascii_digit()) {
            self.position += 1;
        }
        if self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|byte| byte.is_ascii_digit()) {
            is_integer = false;
            self.position += 1;
            while self.peek(0).is_some_and(|byte| byte.is_ascii_digit()) {
                self.position += 1;
            }
        }
        if matches!(self.peek(0), Some(b'e' | b'E'))
            && (self.peek(1).is_some_and(|byte| byte.is_ascii_digit())
                || (matches!(self.peek(1), Some(b'+' | b'-'))
                    && self.peek(2).is_some_and(|byte| byte.is_ascii_digit())))
        {
            is_integer = false;
            self.position += 2;
            while self.peek(0).is_some_and(|byte| byte.is_ascii_digit()) {
                self.position += 1;
            }
        }
        let digits_end = self.position;
        let suffix_start = self.position;
        while self
            .peek(0)
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            self.position += 1;
        }
        let digits = &self.source[start..digits_end];
        let suffix = &self.source[suffix_start..self.position];
        let span = start..self.position;
        if suffix.is_empty() {
            match digits.parse::<f64>() {
                Ok(number) if number.is_finite() => self.push(TokenKind::Number(number), start),
                _ => {
                    sink.report(
                        codes::INVALID_NUMBER,
                        span,
                        format!("`{digits}` is not a finite number"),
                    );
                    self.push(TokenKind::Error, start);
                }
            }
            return;
        }
        let Some(unit) = DurationUnit::from_suffix(suffix) else {
            let message =
                if suffix.starts_with(|first: char| first.is_ascii_alphabetic()) && is_integer {
                    format!("unknown duration unit `{suffix}`; use ms, s, m, h, d or w")
                } else {
                    format!("`{}` is not a number", &self.source[span.clone()])
                };
            let code = if is_integer {
                codes::INVALID_DURATION
            } else {
                codes::INVALID_NUMBER
            };
            sink.report(code, span, message);
            self.push(TokenKind::Error, start);
            return;
        };
        if !is_integer {
            sink.report(
                codes::INVALID_DURATION,
                span,
                "durations take a whole number, such as `90m` for 1.5 hours",
            );
            self.push(TokenKind::Error, start);
            return;
        }
        let literal = digits
            .parse::<u64>()
            .ok()
            .map(|amount| DurationLiteral { amount, unit });
        match literal.filter(|literal| literal.milliseconds().is_some()) {
            Some(literal) => self.push(TokenKind::Duration(literal), start),
            None => {
                sink.report(codes::INVALID_DURATION, span, "duration is too long");
                self.push(TokenKind::Error, start);
            }
        }
    }

    fn string(&mut self, quote: u8, sink: &mut DiagnosticSink<'_>) {
        let start = self.position;
        self.position += 1;
        let mut text = String::new();
        let mut valid = true;
        loop {
            let Some(character) = self.source[self.position..].chars().next() else {
                sink.report(
                    codes::UNTERMINATED_STRING,
                    start..self.position,
                    "string is not closed",
                );
                self.push(TokenKind::Error, start);
                return;
            };
            let character_start = self.position;
            self.position += character.len_utf8();
            match character {
                _ if character as u32 == u32::from(quote) => break,
                '\\' => match self.escape() {
                    Some(escaped) => text.push(escaped),
                    None => {
                        valid = false;
                        sink.report(
                            codes::INVALID_ESCAPE,
                            character_start..self.position,
                            "invalid escape; use \\\", \\', \\\\, \\n, \\r, \\t or \\u{hex}",
                        );
                    }
                },
                other => text.push(other),
            }
        }
        self.push(
            if valid {
                TokenKind::String(text)
            } else {
                TokenKind::Error
            },
            start,
        );
    }

    /// Reads the escape after a backslash; `None` if it is not valid.
    fn escape(&mut self) -> Option<char> {
        let character = self.source[self.position..].chars().next()?;
        self.position += character.len_utf8();
        match character {
            '"' => Some('"'),
            '\'' => Some('\''),
            '\\' => Some('\\'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'u' if self.peek(0) == Some(b'{') => {
                let digits_start = self.position + 1;
                let close = self.source[digits_start..]
                    .find('}')
                    .map(|offset| digits_start + offset)?;
                let digits = &self.source[digits_start..close];
                if digits.is_empty() || digits.len() > 6 {
                    return None;
                }
                let decoded = u32::from_str_radix(digits, 16)
                    .ok()
                    .and_then(char::from_u32)?;
                self.position = close + 1;
                Some(decoded)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        let mut sink = DiagnosticSink::new(source);
        tokenize(source, &mut sink)
            .into_iter()
            .map(|token| token.kind)
            .collect()
    }

    #[test]
    fn durations_numbers_strings_and_operators() {
        assert_eq!(
            kinds("7d >= 1.5e2 'a\\n' != x"),
            vec![
                TokenKind::Duration(DurationLiteral {
                    amount: 7,
                    unit: DurationUnit::Days
                }),
                TokenKind::GreaterOrEqual,
                TokenKind::Number(150.0),
                TokenKind::String("a\n".to_owned()),
                TokenKind::NotEqual,
                TokenKind::Identifier("x".to_owned()),
                TokenKind::End,
            ]
        );
        assert_eq!(kinds("\"\\u{e9}\"")[0], TokenKind::String("é".to_owned()));
    }
}
