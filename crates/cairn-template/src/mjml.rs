//! MJML → HTML with mrml, done once at publish time. Template tags may appear in text content and
//! attribute values (`<mj-text>Hi {{ profile.first_name }}</mj-text>`, `href="{{ event.url }}"`): they
//! pass through mrml untouched and are rendered by minijinja on the resulting HTML. Control blocks
//! (`{% if %}`) must stay inside one element's text, since MJML must parse before rendering.

use mrml::prelude::parser::Error as ParseError;
use mrml::prelude::render::RenderOptions;

use crate::error::line_and_column;

/// A compile failure with the 1-based line and column when mrml reports a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MjmlError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn error_offset(error: &ParseError) -> Option<usize> {
    match error {
        ParseError::UnexpectedElement { position, .. }
        | ParseError::UnexpectedToken { position, .. }
        | ParseError::MissingAttribute { position, .. }
        | ParseError::InvalidAttribute { position, .. }
        | ParseError::InvalidFormat { position, .. } => Some(position.start),
        _ => None,
    }
}

/// Compiles MJML source to HTML.
pub fn compile_mjml(source: &str) -> Result<String, MjmlError> {
    let parsed = mrml::parse(source).map_err(|error| {
        let (line, column) = match error_offset(&error) {
            Some(offset) => {
                let (line, column) = line_and_column(source, offset);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        let message = error.to_string();
        let message = message
            .split(" at position")
            .next()
            .unwrap_or(&message)
            .to_owned();
        MjmlError {
            line,
            column,
            message: format!("invalid MJML: {message}"),
        }
    })?;
    let options = RenderOptions {
        disable_comments: true,
        ..RenderOptions::default()
    };
    parsed.element.render(&options).map_err(|error| MjmlError {
        line: None,
        column: None,
        message: format!("cannot render MJML: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_keeps_template_tags() {
        let html = compile_mjml(
            r#"<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ profile.first_name }}</mj-text>
<mj-button href="{{ event.url }}">Shop</mj-button>
</mj-column></mj-section></mj-body></mjml>"#,
        )
        .unwrap();
        assert!(html.contains("Hello {{ profile.first_name }}"), "{html}");
        assert!(html.contains(r#"href="{{ event.url }}""#), "{html}");
        assert!(html.contains("<!doctype html>"));
    }

    #[test]
    fn errors_have_positions() {
        let error =
            compile_mjml("<mjml>\n<mj-body>\n  <mj-section>\n</mj-body></mjml>").unwrap_err();
        assert!(error.message.starts_with("invalid MJML"), "{error:?}");
        assert!(compile_mjml("not mjml at all").is_err());
    }
}
