//! Publish-time compilation and validation ([`compile`]), strict rendering
//! ([`CompiledTemplate::render`]) and preview ([`preview`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono_tz::Tz;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use crate::error::{line_and_column, TemplateIssue};
use crate::filters::{self, RENDER_SETTINGS_KEY};
use crate::locale::{fallback_chain, normalize};
use crate::mjml::compile_mjml;
use crate::{TemplateChannel, TemplateContent, TemplateDocument, TemplateError, VariableSchema};

/// The parts a variant can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Subject,
    Html,
    Mjml,
    Text,
    Title,
    Body,
    Json,
}

impl Part {
    const ALL: [Part; 7] = [
        Part::Subject,
        Part::Html,
        Part::Mjml,
        Part::Text,
        Part::Title,
        Part::Body,
        Part::Json,
    ];

    fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Html => "html",
            Part::Mjml => "mjml",
            Part::Text => "text",
            Part::Title => "title",
            Part::Body => "body",
            Part::Json => "json",
        }
    }

    /// The extension of the compiled template's name, which picks the auto-escaping.
    fn extension(self) -> &'static str {
        match self {
            Part::Html | Part::Mjml => "html",
            Part::Json => "json",
            _ => "txt",
        }
    }

    fn source(self, content: &TemplateContent) -> Option<&str> {
        match self {
            Part::Subject => content.subject.as_deref(),
            Part::Html => content.html.as_deref(),
            Part::Mjml => content.mjml.as_deref(),
            Part::Text => content.text.as_deref(),
            Part::Title => content.title.as_deref(),
            Part::Body => content.body.as_deref(),
            Part::Json => content.json.as_deref(),
        }
    }

    /// (allowed, required) for a channel.
    fn rule(self, channel: TemplateChannel) -> (bool, bool) {
        use TemplateChannel::*;
        match (channel, self) {
            (Email, Part::Subject) => (true, true),
            (Email, Part::Html | Part::Mjml | Part::Text) => (true, false),
            (Sms, Part::Body) => (true, true),
            (Push, Part::Title | Part::Body) => (true, true),
            (Push, Part::Json) => (true, false),
            (Webhook, Part::Json) => (true, true),
            _ => (false, false),
        }
    }
}

fn template_name(locale: &str, part: Part) -> String {
    // MJML is stored compiled, under the html name.
    let part = if part == Part::Mjml { Part::Html } else { part };
    format!("{locale}/{}.{}", part.name(), part.extension())
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else if name.ends_with(".json") {
            AutoEscape::Json
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("fallback", filters::fallback);
    env.add_filter("date", filters::date);
    env.add_filter("number", filters::number);
    env.add_filter("currency", filters::currency);
    env
}

/// A validated template, ready to render many times.
pub struct CompiledTemplate {
    id: String,
    channel: TemplateChannel,
    default_locale: String,
    /// Parts per normalized locale tag (MJML recorded as `Html`).
    parts: BTreeMap<String, Vec<Part>>,
    /// Sources by template name, for positions in render errors.
    sources: BTreeMap<String, String>,
    /// The federated attribute sets the template reads (`federated.loyalty.points` → `loyalty`).
    federated: FederatedReads,
    env: Environment<'static>,
}

/// Which federated attribute sets a template reads, so the dispatcher fetches only those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FederatedReads {
    /// Attribute sets read by name.
    pub attributes: BTreeSet<String>,
    /// The template reads `federated` as a whole (every set).
    pub all: bool,
}

impl FederatedReads {
    /// Whether the template reads attribute set `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.all || self.attributes.contains(name)
    }

    /// Whether the template reads any federated attribute.
    pub fn any(&self) -> bool {
        self.all || !self.attributes.is_empty()
    }

    fn note(&mut self, variable: &str) {
        let mut segments = variable.split('.');
        if segments.next() != Some("federated") {
            return;
        }
        match segments.next() {
            Some(name) => {
                self.attributes.insert(name.to_owned());
            }
            None => self.all = true,
        }
    }
}

impl std::fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTemplate")
            .field("id", &self.id)
            .field("locales", &self.parts.keys())
            .finish()
    }
}

fn issue(
    locale: &str,
    part: Part,
    position: Option<(usize, usize)>,
    message: String,
) -> TemplateIssue {
    TemplateIssue {
        locale: locale.to_owned(),
        part: part.name().to_owned(),
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        message,
    }
}

fn syntax_issue(locale: &str, part: Part, source: &str, error: &minijinja::Error) -> TemplateIssue {
    let position = match (error.range(), error.line()) {
        (Some(range), _) => Some(line_and_column(source, range.start)),
        (None, Some(line)) => Some((line, 1)),
        _ => None,
    };
    let detail = error
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| error.kind().to_string());
    issue(locale, part, position, format!("syntax error: {detail}"))
}

/// Where `path` first appears in `source` (best effort, for positions of unknown variables).
fn find_path(source: &str, path: &str) -> Option<(usize, usize)> {
    source
        .find(path)
        .map(|offset| line_and_column(source, offset))
}

/// Validates every variant of `document` against `schema` and compiles it. All problems are reported
/// at once, each with its locale, part and position.
pub fn compile(
    document: &TemplateDocument,
    schema: &VariableSchema,
) -> Result<CompiledTemplate, TemplateError> {
    let mut issues = Vec::new();
    let document_issue = |message: String| TemplateIssue {
        locale: String::new(),
        part: String::new(),
        line: None,
        column: None,
        message,
    };
    if document.id.trim().is_empty() {
        issues.push(document_issue("the template id is empty".into()));
    }
    let default_locale = normalize(&document.default_locale).unwrap_or_else(|| {
        issues.push(document_issue(format!(
            "default locale `{}` is not a locale tag",
            document.default_locale
        )));
        document.default_locale.clone()
    });
    let mut env = new_environment();
    let mut parts = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut default_seen = false;
    let mut federated = FederatedReads::default();
    for (raw_tag, content) in &document.variants {
        let Some(locale) = normalize(raw_tag) else {
            issues.push(document_issue(format!(
                "`{raw_tag}` is not a locale tag (like `en` or `fr-CA`)"
            )));
            continue;
        };
        if parts.contains_key(&locale) {
            issues.push(document_issue(format!(
                "locale `{locale}` has two variants"
            )));
            continue;
        }
        default_seen |= locale == default_locale;
        let mut present = Vec::new();
        for part in Part::ALL {
            let (allowed, required) = part.rule(document.channel);
            let source = part.source(content);
            match (source, allowed, required) {
                (Some(_), false, _) => {
                    issues.push(issue(
                        &locale,
                        part,
                        None,
                        format!(
                            "{:?} templates have no `{}` part",
                            document.channel,
                            part.name()
                        ),
                    ));
                    continue;
                }
                (None, _, true) => {
                    issues.push(issue(
                        &locale,
                        part,
                        None,
                        format!("the `{}` part is required", part.name()),
                    ));
                    continue;
                }
                (None, _, false) => continue,
                (Some(_), true, _) => {}
            }
            let source = source.unwrap_or_default();
            // Syntax and variables are checked on the source the user wrote (MJML included).
            let check_name = format!("check:{locale}/{}", part.name());
            let mut scratch = new_environment();
            if let Err(error) = scratch.add_template_owned(check_name.clone(), source.to_owned()) {
                issues.push(syntax_issue(&locale, part, source, &error));
                continue;
            }
            if let Ok(template) = scratch.get_template(&check_name) {
                let variables = template.undeclared_variables(true);
                for variable in &variables {
                    federated.note(variable);
                }
                let mut unknown: Vec<(Option<(usize, usize)>, String)> = variables
                    .into_iter()
                    .filter_map(|variable| {
                        let message = schema.check(&variable).err()?;
                        Some((find_path(source, &variable), message))
                    })
                    .collect();
                unknown.sort();
                for (position, message) in unknown {
                    issues.push(issue(&locale, part, position, message));
                }
            }
            let compiled_source = if part == Part::Mjml {
                match compile_mjml(source) {
                    Ok(html) => html,
                    Err(error) => {
                        let position = error.line.zip(error.column);
                        issues.push(issue(&locale, part, position, error.message));
                        continue;
                    }
                }
            } else {
                source.to_owned()
            };
            let name = template_name(&locale, part);
            if let Err(error) = env.add_template_owned(name.clone(), compiled_source.clone()) {
                issues.push(syntax_issue(&locale, part, &compiled_source, &error));
                continue;
            }
            sources.insert(name, compiled_source);
            present.push(if part == Part::Mjml { Part::Html } else { part });
        }
        if document.channel == TemplateChannel::Email
            && content.html.is_some() == content.mjml.is_some()
        {
            issues.push(issue(
                &locale,
                Part::Html,
                None,
                "an email variant needs exactly one of `html` and `mjml`".into(),
            ));
        }
        parts.insert(locale, present);
    }
    if !default_seen && normalize(&document.default_locale).is_some() {
        issues.push(document_issue(format!(
            "the default locale `{default_locale}` has no variant"
        )));
    }
    if !issues.is_empty() {
        return Err(TemplateError::Invalid(issues));
    }
    Ok(CompiledTemplate {
        id: document.id.clone(),
        channel: document.channel,
        default_locale,
        parts,
        sources,
        federated,
        env,
    })
}

/// What a render reads. Missing namespaces are undefined: a template reading `event.*` without an
/// event fails to render rather than printing nothing.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    pub profile: &'a serde_json::Value,
    pub event: Option<&'a serde_json::Value>,
    pub journey: Option<&'a serde_json::Value>,
    pub federated: Option<&'a serde_json::Value>,
    /// Cairn's message id (`message.id`).
    pub message_id: &'a str,
    /// The signed unsubscribe URL (`message.unsubscribe_url`).
    pub unsubscribe_url: Option<&'a str>,
    /// The customer's locale (`fr-CA`); the template's default when `None` or without a variant.
    pub locale: Option<&'a str>,
    /// The customer's time zone for the `date` filter (UTC when `None`).
    pub time_zone: Option<Tz>,
}

/// A rendered message. Which fields are set depends on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RenderedMessage {
    /// The variant used, after the fallback chain.
    pub locale: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub json: Option<serde_json::Value>,
}

impl CompiledTemplate {
    /// The template id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The channel.
    pub fn channel(&self) -> TemplateChannel {
        self.channel
    }

    /// The federated attribute sets the template reads.
    pub fn federated_reads(&self) -> &FederatedReads {
        &self.federated
    }

    /// The locale variant a render for `requested` uses.
    pub fn resolve_locale(&self, requested: Option<&str>) -> &str {
        fallback_chain(requested, &self.default_locale)
            .into_iter()
            .find_map(|tag| self.parts.get_key_value(&tag).map(|(key, _)| key.as_str()))
            .unwrap_or(&self.default_locale)
    }

    /// Renders every part for one customer. Fails (never prints an empty string) when a printed
    /// value is missing or a filter gets the wrong type.
    pub fn render(&self, context: &RenderContext<'_>) -> Result<RenderedMessage, TemplateError> {
        let locale = self.resolve_locale(context.locale).to_owned();
        let parts = self
            .parts
            .get(&locale)
            .ok_or_else(|| TemplateError::NotFound(format!("no variant for `{locale}`")))?;
        let mut values = BTreeMap::new();
        values.insert("profile", Value::from_serialize(context.profile));
        if let Some(event) = context.event {
            values.insert("event", Value::from_serialize(event));
        }
        if let Some(journey) = context.journey {
            values.insert("journey", Value::from_serialize(journey));
        }
        if let Some(federated) = context.federated {
            values.insert("federated", Value::from_serialize(federated));
        }
        let mut message = BTreeMap::new();
        message.insert("id", Value::from(context.message_id));
        if let Some(url) = context.unsubscribe_url {
            message.insert("unsubscribe_url", Value::from(url));
        }
        values.insert("message", Value::from_iter(message));
        let zone = context.time_zone.unwrap_or(Tz::UTC);
        let settings: BTreeMap<&str, Value> = BTreeMap::from([
            ("locale", Value::from(locale.as_str())),
            ("tz", Value::from(zone.name())),
        ]);
        values.insert(RENDER_SETTINGS_KEY, Value::from_iter(settings));
        let root = Value::from_iter(values);

        let mut rendered = RenderedMessage {
            locale: locale.clone(),
            ..RenderedMessage::default()
        };
        for &part in parts {
            let name = template_name(&locale, part);
            let output = self.render_part(&name, part, &root)?;
            match part {
                Part::Subject => {
                    rendered.subject = Some(output.split_whitespace().collect::<Vec<_>>().join(" "))
                }
                Part::Html | Part::Mjml => rendered.html = Some(output),
                Part::Text => rendered.text = Some(output),
                Part::Title => rendered.title = Some(output.trim().to_owned()),
                Part::Body => rendered.body = Some(output.trim().to_owned()),
                Part::Json => {
                    let json: serde_json::Value =
                        serde_json::from_str(&output).map_err(|error| TemplateError::Render {
                            part: part.name().into(),
                            line: Some(error.line()),
                            message: format!("the rendered JSON is invalid: {error}"),
                        })?;
                    if self.channel == TemplateChannel::Push && !json.is_object() {
                        return Err(TemplateError::Render {
                            part: part.name().into(),
                            line: None,
                            message: "push data must be a JSON object".into(),
                        });
                    }
                    rendered.json = Some(json);
                }
            }
        }
        Ok(rendered)
    }

    fn render_part(&self, name: &str, part: Part, root: &Value) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|error| TemplateError::NotFound(error.to_string()))?;
        template.render(root).map_err(|error| {
            let source = self.sources.get(name).map(String::as_str).unwrap_or("");
            let snippet = error.range().and_then(|range| source.get(range)).map(str::trim).unwrap_or("");
            let message = match error.kind() {
                ErrorKind::UndefinedError if !snippet.is_empty() => {
                    format!("`{snippet}` is undefined for this message (use `| fallback(...)` for optional values)")
                }
                _ => match (error.detail(), snippet.is_empty()) {
                    (Some(detail), false) => format!("{detail} in `{snippet}`"),
                    (Some(detail), true) => detail.to_owned(),
                    (None, _) => error.kind().to_string(),
                },
            };
            TemplateError::Render { part: part.name().into(), line: error.line(), message }
        })
    }
}

/// Validates a draft (or version) and renders it for one customer: the preview the API shows.
pub fn preview(
    document: &TemplateDocument,
    schema: &VariableSchema,
    context: &RenderContext<'_>,
) -> Result<RenderedMessage, TemplateError> {
    compile(document, schema)?.render(context)
}
