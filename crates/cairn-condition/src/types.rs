//! The condition language's types and the [`Schema`] that says which paths exist and what they hold.
//!
//! A schema is built per kind of condition: an audience's schema has profile attributes and event names but no
//! `event.*` root; a journey step's schema adds the triggering event's properties and the journey's step
//! outcomes. [`Schema::open`] accepts every path as [`Type::Any`] (ad-hoc queries).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A static type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    Bool,
    Number,
    String,
    /// An instant; in data an ISO-8601 string.
    Timestamp,
    /// A length of time in milliseconds (`30m`, `7d`).
    Duration,
    List(Box<Type>),
    Object,
    /// The type of the `null` literal.
    Null,
    /// Unknown until run time (open schemas, free-form JSON such as `event.context.*`).
    Any,
}

impl Type {
    /// Whether a value of this type may be used where `expected` is required.
    pub fn fits(&self, expected: &Type) -> bool {
        match (self, expected) {
            (Type::Any, _) | (_, Type::Any) | (Type::Null, _) => true,
            (Type::List(item), Type::List(expected_item)) => item.fits(expected_item),
            (actual, expected) => actual == expected,
        }
    }

    /// Whether values of these two types can be compared with `==`.
    pub fn comparable_with(&self, other: &Type) -> bool {
        self.fits(other) || other.fits(self)
    }

    /// The most precise type both fit into (used for list literals and `coalesce`).
    pub fn join(&self, other: &Type) -> Type {
        match (self, other) {
            (Type::Null, other) | (other, Type::Null) => other.clone(),
            (Type::List(left), Type::List(right)) => Type::List(Box::new(left.join(right))),
            (left, right) if left == right => left.clone(),
            _ => Type::Any,
        }
    }

    pub(crate) fn is_orderable(&self) -> bool {
        matches!(
            self,
            Type::Number | Type::String | Type::Timestamp | Type::Duration | Type::Any
        )
    }
}

impl fmt::Display for Type {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => formatter.write_str("bool"),
            Type::Number => formatter.write_str("number"),
            Type::String => formatter.write_str("string"),
            Type::Timestamp => formatter.write_str("timestamp"),
            Type::Duration => formatter.write_str("duration"),
            Type::List(item) => write!(formatter, "list<{item}>"),
            Type::Object => formatter.write_str("object"),
            Type::Null => formatter.write_str("null"),
            Type::Any => formatter.write_str("any"),
        }
    }
}

/// Which paths and events a condition may read, and their types.
///
/// Paths are written without their root and with dots between keys: `profile_attribute("address.city", ..)`
/// declares `profile.address.city`. Declaring a nested path makes its parents objects. Below a path declared
/// [`Type::Object`] or [`Type::Any`], every sub-path is `Any`.
#[derive(Debug, Clone)]
pub struct Schema {
    pub(crate) profile_attributes: BTreeMap<String, Type>,
    pub(crate) events: BTreeSet<String>,
    pub(crate) event_properties: BTreeMap<String, BTreeMap<String, Type>>,
    pub(crate) journey_fields: BTreeMap<String, Type>,
    pub(crate) current_event: Option<String>,
    pub(crate) event_root_allowed: bool,
    pub(crate) journey_root_allowed: bool,
    pub(crate) unknown_profile_attributes_allowed: bool,
    pub(crate) unknown_events_allowed: bool,
    pub(crate) unknown_event_properties_allowed: bool,
    pub(crate) unknown_journey_fields_allowed: bool,
}

/// The same as [`Schema::new`].
impl Default for Schema {
    fn default() -> Schema {
        Schema::new()
    }
}

impl Schema {
    /// A closed schema: nothing is known yet, `event.*` and `journey.*` are allowed, unknown names are errors.
    pub fn new() -> Schema {
        Schema {
            profile_attributes: BTreeMap::new(),
            events: BTreeSet::new(),
            event_properties: BTreeMap::new(),
            journey_fields: BTreeMap::new(),
            current_event: None,
            event_root_allowed: true,
            journey_root_allowed: true,
            unknown_profile_attributes_allowed: false,
            unknown_events_allowed: false,
            unknown_event_properties_allowed: false,
            unknown_journey_fields_allowed: false,
        }
    }

    /// An open schema: every path is `Any`, every event name is allowed.
    pub fn open() -> Schema {
        Schema {
            unknown_profile_attributes_allowed: true,
            unknown_events_allowed: true,
            unknown_event_properties_allowed: true,
            unknown_journey_fields_allowed: true,
            ..Schema::new()
        }
    }

    /// Declares a profile attribute (`"plan"`, `"address.city"`).
    pub fn profile_attribute(&mut self, path: &str, ty: Type) -> &mut Self {
        self.profile_attributes.insert(path.to_owned(), ty);
        self
    }

    /// Declares a known event name (for aggregates and `event.name` comparisons).
    pub fn event(&mut self, name: &str) -> &mut Self {
        self.events.insert(name.to_owned());
        self
    }

    /// Declares a property of an event (`event_property("Order Completed", "total", Type::Number)` types
    /// `event.properties.total`). Declares the event too.
    pub fn event_property(&mut self, event: &str, path: &str, ty: Type) -> &mut Self {
        self.events.insert(event.to_owned());
        self.event_properties
            .entry(event.to_owned())
            .or_default()
            .insert(path.to_owned(), ty);
        self
    }

    /// Says which event `event.*` is (a wait-for-event filter, an event entry): its declared properties type
    /// `event.properties.*`. Without it, a property declared by any event is accepted.
    pub fn current_event(&mut self, name: Option<&str>) -> &mut Self {
        self.current_event = name.map(str::to_owned);
        self
    }

    /// Declares a journey field (`"steps.offer.outcome"`); `entered_at`, `trigger.*`, `id` and `version` are
    /// built in.
    pub fn journey_field(&mut self, path: &str, ty: Type) -> &mut Self {
        self.journey_fields.insert(path.to_owned(), ty);
        self
    }

    /// Whether `event.*` may be read (audiences have no event).
    pub fn allow_event_root(&mut self, allowed: bool) -> &mut Self {
        self.event_root_allowed = allowed;
        self
    }

    /// Whether `journey.*` may be read (audiences and ad-hoc queries have no enrollment).
    pub fn allow_journey_root(&mut self, allowed: bool) -> &mut Self {
        self.journey_root_allowed = allowed;
        self
    }

    /// Whether undeclared profile attributes are accepted (as `Any`).
    pub fn allow_unknown_profile_attributes(&mut self, allowed: bool) -> &mut Self {
        self.unknown_profile_attributes_allowed = allowed;
        self
    }

    /// Whether undeclared event names are accepted.
    pub fn allow_unknown_events(&mut self, allowed: bool) -> &mut Self {
        self.unknown_events_allowed = allowed;
        self
    }

    /// Whether undeclared `event.properties.*` are accepted (as `Any`).
    pub fn allow_unknown_event_properties(&mut self, allowed: bool) -> &mut Self {
        self.unknown_event_properties_allowed = allowed;
        self
    }

    /// Whether undeclared `journey.*` fields are accepted (as `Any`).
    pub fn allow_unknown_journey_fields(&mut self, allowed: bool) -> &mut Self {
        self.unknown_journey_fields_allowed = allowed;
        self
    }

    pub(crate) fn knows_event(&self, name: &str) -> bool {
        self.unknown_events_allowed || self.events.contains(name)
    }

    /// The type of a property path of the current event (or of any event when none is current).
    pub(crate) fn event_property_type(&self, path: &str) -> Option<Type> {
        match &self.current_event {
            Some(event) => self
                .event_properties
                .get(event)
                .and_then(|properties| lookup_declared(properties, path)),
            None => {
                let mut found: Option<Type> = None;
                for properties in self.event_properties.values() {
                    if let Some(ty) = lookup_declared(properties, path) {
                        found = Some(match found {
                            Some(previous) if previous != ty => Type::Any,
                            _ => ty,
                        });
                    }
                }
                found
            }
        }
    }
}

/// Looks a dotted path up in a table of declared paths: the declared type; `Object` if the path is a parent of
/// declared paths; `Any` below a path declared `Object` or `Any`; `None` if unknown.
pub(crate) fn lookup_declared(declared: &BTreeMap<String, Type>, path: &str) -> Option<Type> {
    if let Some(ty) = declared.get(path) {
        return Some(ty.clone());
    }
    let child_prefix = format!("{path}.");
    if declared
        .range(child_prefix.clone()..)
        .next()
        .is_some_and(|(key, _)| key.starts_with(&child_prefix))
    {
        return Some(Type::Object);
    }
    let mut prefix_end = path.len();
    while let Some(dot) = path[..prefix_end].rfind('.') {
        prefix_end = dot;
        if let Some(ty) = declared.get(&path[..prefix_end]) {
            return matches!(ty, Type::Object | Type::Any).then_some(Type::Any);
        }
    }
    None
}

/// The longest proper prefix of `path` that is declared, with its type (to explain why a path below a
/// scalar does not exist).
pub(crate) fn declared_prefix<'p>(
    declared: &BTreeMap<String, Type>,
    path: &'p str,
) -> Option<(&'p str, Type)> {
    let mut prefix_end = path.len();
    while let Some(dot) = path[..prefix_end].rfind('.') {
        prefix_end = dot;
        if let Some(ty) = declared.get(&path[..prefix_end]) {
            return Some((&path[..prefix_end], ty.clone()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_paths_type_their_parents_and_children() {
        let mut declared = BTreeMap::new();
        declared.insert("address.city".to_owned(), Type::String);
        declared.insert("extra".to_owned(), Type::Object);
        declared.insert("plan".to_owned(), Type::String);
        assert_eq!(
            lookup_declared(&declared, "address.city"),
            Some(Type::String)
        );
        assert_eq!(lookup_declared(&declared, "address"), Some(Type::Object));
        assert_eq!(
            lookup_declared(&declared, "extra.deep.key"),
            Some(Type::Any)
        );
        assert_eq!(lookup_declared(&declared, "plan.x"), None);
        assert_eq!(lookup_declared(&declared, "addr"), None);
    }

    #[test]
    fn types_join_and_fit() {
        assert_eq!(Type::Null.join(&Type::Number), Type::Number);
        assert_eq!(Type::String.join(&Type::Number), Type::Any);
        assert!(Type::Any.fits(&Type::Number));
        assert!(!Type::String.fits(&Type::Number));
        assert!(Type::List(Box::new(Type::String)).fits(&Type::List(Box::new(Type::Any))));
    }
}
