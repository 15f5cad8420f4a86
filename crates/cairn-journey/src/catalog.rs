//! What a workspace knows, for validation: profile attributes, events, templates per channel, audiences.
//!
//! A [`Catalog`] feeds the condition language's [`Schema`] and answers the journey-specific questions
//! (is this template known for email?). [`Catalog::open`] knows nothing and accepts everything: offline
//! validation of a document without a workspace. A catalog can be read from a JSON/YAML
//! [`CatalogDocument`] (`cairn journey validate --catalog`).

use crate::document::Channel;
use cairn_condition::{Schema, Type};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Known names; a `None` set means "anything goes".
#[derive(Debug, Clone)]
pub struct Catalog {
    schema: Schema,
    profile_attributes: Option<BTreeSet<String>>,
    events: Option<BTreeSet<String>>,
    templates: Option<BTreeMap<Channel, BTreeSet<String>>>,
    audiences: Option<BTreeSet<String>>,
    /// Federated attribute set → whether it declares a write-back.
    federated_sets: Option<BTreeMap<String, bool>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::open()
    }
}

impl Catalog {
    /// A closed catalog: only what is declared is known.
    pub fn new() -> Catalog {
        Catalog {
            schema: Schema::new(),
            profile_attributes: Some(BTreeSet::new()),
            events: Some(BTreeSet::new()),
            templates: Some(BTreeMap::new()),
            audiences: Some(BTreeSet::new()),
            federated_sets: Some(BTreeMap::new()),
        }
    }

    /// An open catalog: every attribute, event, template and audience is accepted.
    pub fn open() -> Catalog {
        Catalog {
            schema: Schema::open(),
            profile_attributes: None,
            events: None,
            templates: None,
            audiences: None,
            federated_sets: None,
        }
    }

    /// Declares a profile attribute (`"plan"`, `"address.city"`; no `profile.` prefix).
    pub fn profile_attribute(&mut self, path: &str, ty: Type) -> &mut Self {
        self.schema.profile_attribute(path, ty);
        if let Some(known) = &mut self.profile_attributes {
            known.insert(path.to_owned());
        }
        self
    }

    /// Declares an event name.
    pub fn event(&mut self, name: &str) -> &mut Self {
        self.schema.event(name);
        if let Some(known) = &mut self.events {
            known.insert(name.to_owned());
        }
        self
    }

    /// Declares a property of an event (and the event).
    pub fn event_property(&mut self, event: &str, path: &str, ty: Type) -> &mut Self {
        self.event(event);
        self.schema.event_property(event, path, ty);
        self
    }

    /// Declares a template for a channel.
    pub fn template(&mut self, channel: Channel, id: &str) -> &mut Self {
        if let Some(known) = &mut self.templates {
            known.entry(channel).or_default().insert(id.to_owned());
        }
        self
    }

    /// Declares an audience.
    pub fn audience(&mut self, id: &str) -> &mut Self {
        if let Some(known) = &mut self.audiences {
            known.insert(id.to_owned());
        }
        self
    }

    /// Declares a federated attribute set (one a `fetch` step may read).
    pub fn federated_set(&mut self, name: &str) -> &mut Self {
        if let Some(known) = &mut self.federated_sets {
            known.entry(name.to_owned()).or_insert(false);
        }
        self
    }

    /// Declares a federated attribute set that can also be written back to its source system.
    pub fn writable_set(&mut self, name: &str) -> &mut Self {
        if let Some(known) = &mut self.federated_sets {
            known.insert(name.to_owned(), true);
        }
        self
    }

    /// Whether a federated attribute set is known.
    pub fn knows_federated_set(&self, name: &str) -> bool {
        self.federated_sets
            .as_ref()
            .is_none_or(|known| known.contains_key(name))
    }

    /// Whether a federated attribute set is known and declares a write-back.
    pub fn knows_writable_set(&self, name: &str) -> bool {
        self.federated_sets
            .as_ref()
            .is_none_or(|known| known.get(name) == Some(&true))
    }

    /// The condition schema (profile attributes, events).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The condition schema, to open parts of it (for example unknown event properties).
    pub fn schema_mut(&mut self) -> &mut Schema {
        &mut self.schema
    }

    /// Accepts every template id (no template store to check against).
    pub fn accept_any_template(&mut self) -> &mut Self {
        self.templates = None;
        self
    }

    /// Whether a profile attribute (or a parent of it) is known.
    pub fn knows_profile_attribute(&self, path: &str) -> bool {
        self.profile_attributes.as_ref().is_none_or(|known| {
            known.contains(path)
                || known.iter().any(|declared| {
                    path.strip_prefix(declared.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
                })
        })
    }

    /// Whether an event name is known.
    pub fn knows_event(&self, name: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|known| known.contains(name))
    }

    /// Whether a template is known for the channel.
    pub fn knows_template(&self, channel: Channel, id: &str) -> bool {
        self.templates.as_ref().is_none_or(|known| {
            known
                .get(&channel)
                .is_some_and(|templates| templates.contains(id))
        })
    }

    /// Whether an audience is known.
    pub fn knows_audience(&self, id: &str) -> bool {
        self.audiences
            .as_ref()
            .is_none_or(|known| known.contains(id))
    }

    /// Builds a closed catalog from its document form.
    pub fn from_document(document: &CatalogDocument) -> Catalog {
        let mut catalog = Catalog::new();
        for (path, ty) in &document.profile_attributes {
            catalog.profile_attribute(path, ty.clone());
        }
        for (event, properties) in &document.events {
            catalog.event(event);
            for (path, ty) in properties {
                catalog.event_property(event, path, ty.clone());
            }
        }
        for (channel, templates) in &document.templates {
            for template in templates {
                catalog.template(*channel, template);
            }
        }
        for audience in &document.audiences {
            catalog.audience(audience);
        }
        for set in &document.federated {
            catalog.federated_set(set);
        }
        for set in &document.write_back {
            catalog.writable_set(set);
        }
        catalog
    }
}

/// A catalog as a document: `{"profile_attributes": {"timezone": "string"}, "events": {"Order Completed":
/// {"total": "number"}}, "templates": {"email": ["cart-1"]}, "audiences": ["lapsed"]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogDocument {
    /// Attribute path → type (`bool`, `number`, `string`, `timestamp`, `duration`, `object`, `any`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub profile_attributes: BTreeMap<String, Type>,
    /// Event name → property path → type.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, BTreeMap<String, String>>")]
    pub events: BTreeMap<String, BTreeMap<String, Type>>,
    /// Channel → template ids.
    #[serde(default)]
    pub templates: BTreeMap<Channel, Vec<String>>,
    /// Audience ids.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Federated attribute sets (what `fetch` steps may read).
    #[serde(default)]
    pub federated: Vec<String>,
    /// Federated attribute sets that declare a write-back.
    #[serde(default)]
    pub write_back: Vec<String>,
}
